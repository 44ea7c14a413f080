#include "mediamtx_url.h"

#include <glib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "ascii_case.h"

namespace gstmtx {
namespace {

struct UriDeleter {
  void operator()(GUri *uri) const { g_uri_unref(uri); }
};
using UriPtr = std::unique_ptr<GUri, UriDeleter>;

std::string unescape(const char *s) {
  if (!s)
    return {};
  g_autofree char *out = g_uri_unescape_string(s, nullptr);
  return out ? out : s;
}

std::string trim_slashes(std::string path) {
  while (!path.empty() && path.front() == '/')
    path.erase(path.begin());
  while (!path.empty() && path.back() == '/')
    path.pop_back();
  return path;
}

bool ends_with(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/* GUri percent-decodes the host: "a%40b" comes back as "a@b", which written into a new URL would
 * turn into userinfo and send requests to "b". Only hosts that read back the same are accepted. */
bool host_is_valid(const std::string &host) {
  const bool ipv6 = host.find(':') != std::string::npos; /* may carry a zone: fe80::1%eth0 */
  return !host.empty() && std::none_of(host.begin(), host.end(), [ipv6](unsigned char c) {
    return c <= 0x20 || c == 0x7f || std::strchr("@/?#\\[]", c) != nullptr || (c == '%' && !ipv6);
  });
}

/* Host as it goes back into a URL: IPv6 literals get their brackets back. */
std::string host_for_url(const std::string &host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

UriPtr parse(const std::string &text, std::string *error) {
  GError *err = nullptr;
  GUri *uri = g_uri_parse(text.c_str(), static_cast<GUriFlags>(G_URI_FLAGS_HAS_PASSWORD | G_URI_FLAGS_ENCODED),
                          &err);
  if (!uri) {
    if (error)
      *error = std::string("not a valid URL: ") + (err ? err->message : "parse error");
    g_clear_error(&err);
    return nullptr;
  }
  return UriPtr(uri);
}

Endpoint endpoint_from(GUri *uri, const std::string &scheme, int default_port, const std::string &path_suffix) {
  Endpoint ep;
  ep.user = unescape(g_uri_get_user(uri));
  ep.password = unescape(g_uri_get_password(uri));
  ep.host = g_uri_get_host(uri) ? g_uri_get_host(uri) : "";
  ep.port = g_uri_get_port(uri) > 0 ? g_uri_get_port(uri) : default_port;
  std::string path = g_uri_get_path(uri) ? g_uri_get_path(uri) : "";
  std::string stream = trim_slashes(path);
  if (!path_suffix.empty()) {
    if (ends_with(stream, "/" + path_suffix))
      stream.erase(stream.size() - path_suffix.size() - 1);
    else if (stream == path_suffix)
      stream.clear();
  }
  ep.stream_path = unescape(stream.c_str());
  std::string full_path = "/" + stream + (path_suffix.empty() ? "" : (stream.empty() ? "" : "/") + path_suffix);
  ep.url = scheme + "://" + host_for_url(ep.host) + ":" + std::to_string(ep.port) + full_path;
  if (const char *query = g_uri_get_query(uri))
    ep.url += std::string("?") + query;
  return ep;
}

}  // namespace

std::optional<Endpoint> parse_webrtc_http_location(const std::string &location, HttpEndpointKind kind,
                                                    std::string *error) {
  const std::string suffix = kind == HttpEndpointKind::Whep ? "whep" : "whip";
  UriPtr uri = parse(location, error);
  if (!uri)
    return std::nullopt;
  const std::string scheme = ascii_lower(g_uri_get_scheme(uri.get()));
  if (!g_uri_get_host(uri.get()) || !*g_uri_get_host(uri.get())) {
    if (error)
      *error = "URL has no host";
    return std::nullopt;
  }
  if (!host_is_valid(g_uri_get_host(uri.get()))) {
    if (error)
      *error = "URL has an invalid host";
    return std::nullopt;
  }
  bool secure;
  int default_port;
  if (scheme == "http" || scheme == "https") {
    secure = scheme == "https";
    default_port = secure ? 443 : 80;
  } else if (scheme == "whep" || scheme == "wheps" || scheme == "whip" || scheme == "whips") {
    secure = scheme.back() == 's';
    default_port = kDefaultWebrtcPort;
  } else if (scheme == "rtsp" || scheme == "rtsps") {
    /* The same stream on MediaMTX's WebRTC server, whatever the RTSP port was. */
    secure = scheme == "rtsps";
    default_port = kDefaultWebrtcPort;
    Endpoint ep = endpoint_from(uri.get(), secure ? "https" : "http", default_port, suffix);
    ep.port = kDefaultWebrtcPort;
    ep.url = (secure ? "https://" : "http://") + host_for_url(ep.host) + ":" + std::to_string(ep.port) + "/" +
             ep.stream_path + "/" + suffix;
    ep.secure = secure;
    if (ep.stream_path.empty()) {
      if (error)
        *error = "URL names no stream path";
      return std::nullopt;
    }
    return ep;
  } else {
    if (error)
      *error = "unsupported URL scheme '" + scheme + "' (use http, https, whep or wheps)";
    return std::nullopt;
  }
  Endpoint ep = endpoint_from(uri.get(), secure ? "https" : "http", default_port, suffix);
  ep.secure = secure;
  if (ep.stream_path.empty() && scheme.rfind("wh", 0) == 0) {
    if (error)
      *error = "URL names no stream path";
    return std::nullopt;
  }
  return ep;
}

std::optional<Endpoint> parse_rtsp_location(const std::string &location, std::string *error) {
  UriPtr uri = parse(location, error);
  if (!uri)
    return std::nullopt;
  const std::string scheme = ascii_lower(g_uri_get_scheme(uri.get()));
  if (scheme != "rtsp" && scheme != "rtsps" && scheme != "rtspt") {
    if (error)
      *error = "unsupported URL scheme '" + scheme + "' (use rtsp or rtsps)";
    return std::nullopt;
  }
  if (!g_uri_get_host(uri.get()) || !*g_uri_get_host(uri.get())) {
    if (error)
      *error = "URL has no host";
    return std::nullopt;
  }
  if (!host_is_valid(g_uri_get_host(uri.get()))) {
    if (error)
      *error = "URL has an invalid host";
    return std::nullopt;
  }
  Endpoint ep = endpoint_from(uri.get(), scheme, scheme == "rtsps" ? 8322 : kDefaultRtspPort, "");
  ep.secure = scheme == "rtsps";
  if (ep.stream_path.empty()) {
    if (error)
      *error = "URL names no stream path";
    return std::nullopt;
  }
  return ep;
}

namespace {
/* Splits "host", "host:port", "[v6]:port" or a URL into host and port. */
void split_server(const std::string &server, std::string *host, int *port) {
  std::string s = server;
  auto scheme_end = s.find("://");
  if (scheme_end != std::string::npos)
    s = s.substr(scheme_end + 3);
  auto slash = s.find('/');
  if (slash != std::string::npos)
    s = s.substr(0, slash);
  auto at = s.rfind('@');
  if (at != std::string::npos)
    s = s.substr(at + 1);
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    *host = s.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < s.size() && s[close + 1] == ':')
      *port = std::atoi(s.c_str() + close + 2);
    return;
  }
  auto colon = s.rfind(':');
  if (colon != std::string::npos && s.find(':') == colon) {
    *host = s.substr(0, colon);
    *port = std::atoi(s.c_str() + colon + 1);
  } else {
    *host = s;
  }
}
}  // namespace

std::string rtsp_url_for(const std::string &server, const std::string &stream_path, bool secure) {
  std::string host;
  int port = -1;
  split_server(server, &host, &port);
  if (port <= 0)
    port = secure ? 8322 : kDefaultRtspPort;
  return std::string(secure ? "rtsps://" : "rtsp://") + host_for_url(host) + ":" + std::to_string(port) + "/" +
         trim_slashes(stream_path);
}

std::string webrtc_http_url_for(const std::string &server, const std::string &stream_path, HttpEndpointKind kind,
                                bool secure) {
  std::string host;
  int port = -1;
  split_server(server, &host, &port);
  if (port <= 0)
    port = kDefaultWebrtcPort;
  return std::string(secure ? "https://" : "http://") + host_for_url(host) + ":" + std::to_string(port) + "/" +
         trim_slashes(stream_path) + (kind == HttpEndpointKind::Whep ? "/whep" : "/whip");
}

std::string hls_url_for_endpoint(const Endpoint &endpoint) {
  return std::string(endpoint.secure ? "https://" : "http://") + host_for_url(endpoint.host) + ":" +
         std::to_string(kDefaultHlsPort) + "/" + endpoint.stream_path + "/index.m3u8";
}

std::optional<std::string> resolve_location(const std::string &base, const std::string &location) {
  if (location.empty())
    return std::nullopt;
  GError *err = nullptr;
  g_autofree char *resolved =
      g_uri_resolve_relative(base.c_str(), location.c_str(), G_URI_FLAGS_ENCODED, &err);
  if (!resolved) {
    g_clear_error(&err);
    return std::nullopt;
  }
  return std::string(resolved);
}

std::string redact_url(const std::string &url) {
  GUri *raw = g_uri_parse(url.c_str(), static_cast<GUriFlags>(G_URI_FLAGS_HAS_PASSWORD | G_URI_FLAGS_ENCODED),
                          nullptr);
  if (!raw)
    return "<unparsable URL>";
  UriPtr uri(raw);
  const char *query = g_uri_get_query(uri.get());
  std::string new_query;
  if (query) {
    static const char *const secret_keys[] = {"token", "jwt", "pass", "password", "secret", "key", "auth",
                                              "access_token"};
    g_auto(GStrv) parts = g_strsplit(query, "&", -1);
    for (char **p = parts; *p; ++p) {
      std::string part = *p;
      std::string key = ascii_lower(part.substr(0, part.find('=')));
      bool secret = std::any_of(std::begin(secret_keys), std::end(secret_keys),
                                [&](const char *k) { return key == k; });
      if (!new_query.empty())
        new_query += "&";
      new_query += secret ? key + "=***" : part;
    }
  }
  const bool has_userinfo = g_uri_get_user(uri.get()) != nullptr;
  /* the host comes back percent-decoded: encode it again so "a%40b" cannot print as userinfo */
  const char *raw_host = g_uri_get_host(uri.get());
  g_autofree char *host = raw_host ? g_uri_escape_string(raw_host, "!$&'()*+,;=:", FALSE) : nullptr;
  g_autofree char *out = g_uri_join(G_URI_FLAGS_ENCODED, g_uri_get_scheme(uri.get()), has_userinfo ? "***" : nullptr,
                                    host, g_uri_get_port(uri.get()), g_uri_get_path(uri.get()),
                                    query ? new_query.c_str() : nullptr, g_uri_get_fragment(uri.get()));
  return out ? out : "<unprintable URL>";
}

}  // namespace gstmtx
