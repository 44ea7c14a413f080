#include "fuzz_targets.h"

#include <algorithm>
#include <gst/gst.h>
#include <gst/sdp/sdp.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ascii_case.h"
#include "link_header.h"
#include "mediamtx_url.h"
#include "plain_http_get.h"
#include "reader_watch.h"
#include "webrtc_http_session.h"

namespace fuzz {
namespace {

/* A broken promise: say which, then abort so libFuzzer saves the input. */
[[noreturn]] void broken(const char *target, const std::string &what) {
  std::fprintf(stderr, "fuzz %s: %s\n", target, what.c_str());
  std::abort();
}

std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto end = s.find(sep, start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos)
      return out;
    start = end + 1;
  }
}

bool contains(const std::string &haystack, const std::string &needle) {
  return !needle.empty() && haystack.find(needle) != std::string::npos;
}

bool has_line_break(const std::string &s) { return s.find_first_of("\r\n") != std::string::npos; }

/* A URL as logged must carry no userinfo but the "***" mask. */
void check_redacted(const char *target, const std::string &redacted) {
  if (redacted.rfind('<', 0) == 0)
    return; /* "<unparsable URL>" */
  GUri *uri = g_uri_parse(redacted.c_str(), static_cast<GUriFlags>(G_URI_FLAGS_HAS_PASSWORD | G_URI_FLAGS_ENCODED),
                          nullptr);
  if (!uri)
    return;
  const char *user = g_uri_get_user(uri);
  const char *password = g_uri_get_password(uri);
  const bool leaked = (user && std::string(user) != "***") || password;
  g_uri_unref(uri);
  if (leaked)
    broken(target, "redact_url left userinfo in '" + redacted + "'");
}

constexpr const char *kSecretToken = "fuzz-secret-token-7d1e";
constexpr const char *kSecretPassword = "fuzz-secret-password-91c4";

}  // namespace

void init() {
  static bool done = false;
  if (!done) {
    gst_init(nullptr, nullptr);
    done = true;
  }
}

/* Link headers: one header value per line, as a hostile server would send them. */
int link_header(const uint8_t *data, size_t size) {
  const std::string text(reinterpret_cast<const char *>(data), size);
  const auto entries = gstmtx::parse_link_header(text);
  if (entries.size() > 32)
    broken("link_header", "more than 32 entries");
  for (const auto &entry : entries) {
    if (entry.params.size() > 16)
      broken("link_header", "more than 16 parameters");
    if (entry.target.size() > 16 * 1024)
      broken("link_header", "target longer than the header bound");
  }
  const auto servers = gstmtx::ice_servers_from_link_headers(split(text, '\n'));
  if (servers.size() > 16)
    broken("link_header", "more than 16 ICE servers");
  for (const auto &server : servers) {
    const std::string uri = server.to_webrtcbin_uri();
    if (uri.empty())
      broken("link_header", "kept an ICE server without a usable URI");
    for (unsigned char c : uri)
      if (c < 0x20 || c == 0x7f || c == ' ')
        broken("link_header", "control character or space in a webrtcbin URI");
  }
  return 0;
}

/* Locations: line 1 the URL, line 2 a Location header to resolve against it. */
int location(const uint8_t *data, size_t size) {
  const std::string text(reinterpret_cast<const char *>(data), size);
  const auto lines = split(text, '\n');
  const std::string &url = lines[0];
  std::string error;
  for (auto kind : {gstmtx::HttpEndpointKind::Whep, gstmtx::HttpEndpointKind::Whip}) {
    if (auto ep = gstmtx::parse_webrtc_http_location(url, kind, &error)) {
      /* the URL used for requests (and logged, redacted) carries no credentials */
      if (contains(ep->url, "@") && (!ep->user.empty() || !ep->password.empty())) {
        GUri *uri = g_uri_parse(ep->url.c_str(), G_URI_FLAGS_ENCODED, nullptr);
        const bool has_user = uri && g_uri_get_userinfo(uri);
        if (uri)
          g_uri_unref(uri);
        if (has_user)
          broken("location", "endpoint URL kept its userinfo: " + ep->url);
      }
      check_redacted("location", gstmtx::redact_url(ep->url));
      (void)gstmtx::hls_url_for_endpoint(*ep);
      (void)gstmtx::rtsp_url_for(ep->host, ep->stream_path);
    }
  }
  if (auto ep = gstmtx::parse_rtsp_location(url, &error))
    check_redacted("location", gstmtx::redact_url(ep->url));
  check_redacted("location", gstmtx::redact_url(url));
  (void)gstmtx::webrtc_http_url_for(url, "cam", gstmtx::HttpEndpointKind::Whep);
  (void)gstmtx::rtsp_url_for(url, url);
  if (lines.size() > 1) {
    if (auto resolved = gstmtx::resolve_location(url, lines[1]))
      check_redacted("location", gstmtx::redact_url(*resolved));
  }
  return 0;
}

int retry_after(const uint8_t *data, size_t size) {
  const std::string text(reinterpret_cast<const char *>(data), size);
  const auto delay = gstmtx::WebrtcHttpSession::parse_retry_after(text);
  if (delay.count() < 0 || delay.count() > 3600LL * 1000)
    broken("retry_after", "delay out of [0, 1 h]: " + std::to_string(delay.count()));
  return 0;
}

/* A server's answer: byte 0 the transport outcome, bytes 1-2 the status, then lines:
 * content type, the URL that answered, headers ("name: value") up to an empty line, the body. */
int classify(const uint8_t *data, size_t size) {
  if (size < 3)
    return 0;
  gstmtx::HttpResponse r;
  r.failure = static_cast<gstmtx::HttpFailure>(data[0] % 8);
  r.status = r.failure == gstmtx::HttpFailure::None ? static_cast<unsigned>(data[1] << 8 | data[2]) % 1000 : 0;
  r.error = r.failure == gstmtx::HttpFailure::None ? "" : "transport failure";
  const std::string rest(reinterpret_cast<const char *>(data + 3), size - 3);
  const auto lines = split(rest, '\n');
  std::size_t i = 0;
  r.content_type = i < lines.size() ? lines[i++] : "";
  r.url = i < lines.size() ? lines[i++] : "";
  for (; i < lines.size() && !lines[i].empty(); ++i) {
    auto colon = lines[i].find(':');
    r.headers.emplace_back(lines[i].substr(0, colon), colon == std::string::npos ? "" : lines[i].substr(colon + 1));
  }
  for (++i; i < lines.size(); ++i)
    r.body += lines[i] + (i + 1 < lines.size() ? "\n" : "");

  gstmtx::SessionConfig config;
  config.endpoint = std::string("http://user:") + kSecretPassword + "@10.77.0.1:8889/cam/whep?token=" + kSecretToken;
  config.stream_path = "cam";
  config.auth_token = kSecretToken;
  config.user = "user";
  config.password = kSecretPassword;
  const auto error = gstmtx::WebrtcHttpSession::classify(r, config);
  /* a server may echo anything it was sent; only what it did not send counts as a leak. Case-blind:
   * header names are shown lower-cased, so a server's "...tokeN..." name comes back as the token. */
  const std::string rest_lower = gstmtx::ascii_lower(rest);
  const bool echoed = contains(rest_lower, kSecretToken) || contains(rest_lower, kSecretPassword);
  for (const std::string *text : {&error.message, &error.debug})
    if (!echoed && (contains(*text, kSecretToken) || contains(*text, kSecretPassword)))
      broken("classify", "a secret in the error text: " + *text);
  if (error.message.find('\n') != std::string::npos)
    broken("classify", "line break in the user message");
  if (error.debug.size() > 1024 + r.url.size() * 3 + 64)
    broken("classify", "debug text not bounded by the body cap: " + std::to_string(error.debug.size()));
  if (error.retry_after.count() < 0 || error.retry_after.count() > 3600LL * 1000)
    broken("classify", "retry-after out of bounds");
  if (r.failure == gstmtx::HttpFailure::None && (r.status == 200 || r.status == 201) && !error)
    if (r.body.rfind("v=0", 0) != 0)
      broken("classify", "accepted an answer that is not SDP");
  return 0;
}

/* Trickle fragments: lines are ufrag, pwd, media, mid, then candidates; a candidate may carry
 * CR or LF (escaped as \r and \n in the input) to try to inject SDP lines. */
int sdpfrag(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  std::string text(reinterpret_cast<const char *>(data + 1), size - 1);
  for (std::size_t p = 0; (p = text.find("\\r", p)) != std::string::npos;)
    text.replace(p, 2, "\r");
  for (std::size_t p = 0; (p = text.find("\\n", p)) != std::string::npos;)
    text.replace(p, 2, "\x01");
  auto fields = split(text, '\n');
  for (auto &f : fields)
    for (char &c : f)
      if (c == '\x01')
        c = '\n';
  fields.resize(std::max<std::size_t>(fields.size(), 4));
  const std::vector<std::string> candidates(fields.begin() + 4, fields.end());
  const std::string frag =
      gstmtx::make_trickle_sdpfrag(fields[0], fields[1], fields[2], data[0], fields[3], candidates, data[0] & 1);
  /* every line is one of ours: a=ice-ufrag, a=ice-pwd, m=, a=mid, a=candidate, a=end-of-candidates */
  int m_lines = 0, ufrag_lines = 0, pwd_lines = 0;
  std::size_t start = 0;
  while (start < frag.size()) {
    auto end = frag.find("\r\n", start);
    if (end == std::string::npos)
      broken("sdpfrag", "fragment does not end in CRLF");
    const std::string line = frag.substr(start, end - start);
    if (has_line_break(line))
      broken("sdpfrag", "bare CR or LF inside a line: injection");
    if (line.rfind("m=", 0) == 0)
      ++m_lines;
    else if (line.rfind("a=ice-ufrag:", 0) == 0)
      ++ufrag_lines;
    else if (line.rfind("a=ice-pwd:", 0) == 0)
      ++pwd_lines;
    else if (line.rfind("a=mid:", 0) != 0 && line.rfind("a=candidate:", 0) != 0 && line != "a=end-of-candidates")
      broken("sdpfrag", "unexpected line '" + line + "'");
    start = end + 2;
  }
  if (m_lines != 1 || ufrag_lines != 1 || pwd_lines != 1)
    broken("sdpfrag", "injected m=/ufrag/pwd lines");
  return 0;
}

/* An SDP answer, parsed and walked as whepsrc does (gstwhepsrc.cpp, events.answered). */
int sdp_answer(const uint8_t *data, size_t size) {
  init();
  const std::string text(reinterpret_cast<const char *>(data), size);
  GstSDPMessage *sdp = nullptr;
  if (gst_sdp_message_new_from_text(text.c_str(), &sdp) != GST_SDP_OK) {
    /* the message is allocated even when parsing fails: whepsrc leaked it (fixed) */
    if (sdp)
      gst_sdp_message_free(sdp);
    return 0;
  }
  int streams = 0;
  for (guint i = 0; i < gst_sdp_message_medias_len(sdp); ++i) {
    const GstSDPMedia *m = gst_sdp_message_get_media(sdp, i);
    if (gst_sdp_media_get_port(m) != 0 && !gst_sdp_media_get_attribute_val(m, "inactive") &&
        !gst_sdp_media_get_attribute_val(m, "recvonly"))
      ++streams;
    for (guint a = 0; a < gst_sdp_media_attributes_len(m); ++a)
      (void)gst_sdp_media_get_attribute(m, a);
    (void)gst_sdp_media_get_attribute_val(m, "rtpmap");
    (void)gst_sdp_media_get_attribute_val(m, "fmtp");
  }
  (void)streams;
  gchar *again = gst_sdp_message_as_text(sdp);
  g_free(again);
  gst_sdp_message_free(sdp);
  return 0;
}

/* A MediaMTX control API answer (mediamtxsink keyframe-on-join): the first byte picks the status,
 * the rest is the body. Promises: the classification agrees with the parser (Readers exactly when a
 * 200 parses), every parsed reader has a type, the explanation never carries the password. */
int api_answer(const uint8_t *data, size_t size) {
  init();
  if (size == 0)
    return 0;
  static const unsigned kStatus[] = {200, 401, 403, 404, 500};
  gstmtx::HttpResponse response;
  response.status = kStatus[data[0] % 5];
  response.body.assign(reinterpret_cast<const char *>(data) + 1, size - 1);
  const auto readers = gstmtx::parse_path_readers(response.body);
  if (readers)
    for (const auto &r : *readers)
      if (r.type.empty())
        broken("api_answer", "a reader without a type");
  const gstmtx::ApiAnswer answer = gstmtx::classify_path_answer(response);
  if ((answer == gstmtx::ApiAnswer::Readers) != (response.status == 200 && readers.has_value()))
    broken("api_answer", "classification disagrees with the parser");
  (void)gstmtx::parse_webrtc_session_established(response.body);
  const std::string text = gstmtx::explain_api_problem(answer, "http://h:9997", "pub", response);
  if (text.find("Authorization") != std::string::npos || text.size() > 1000)
    broken("api_answer", "explanation carries headers or is unbounded");
  return 0;
}

/* The bytes a connection delivers to PlainHttpGet's response reader (keyframe-on-join's API
 * polling): the first byte picks the piece size. Promises: the outcome does not depend on how the
 * bytes are cut; a complete body is bounded by max_body; the readers text of a body is a part of it. */
int http_response(const uint8_t *data, size_t size) {
  init();
  if (size == 0)
    return 0;
  const std::size_t piece = 1 + data[0] % 64;
  const char *text = reinterpret_cast<const char *>(data) + 1;
  const std::size_t length = size - 1;
  using R = gstmtx::HttpResponseReader::Result;
  auto read = [&](std::size_t step, gstmtx::HttpResponseReader &reader) {
    R r = R::NeedMore;
    for (std::size_t i = 0; i < length && r == R::NeedMore; i += step)
      r = reader.feed(text + i, std::min(step, length - i));
    return r == R::NeedMore ? reader.end_of_stream() : r;
  };
  gstmtx::HttpResponseReader whole(4096), cut(4096);
  const R a = read(length ? length : 1, whole), b = read(piece, cut);
  if (a != b)
    broken("http_response", "the outcome depends on how the bytes were cut");
  if (a == R::Complete) {
    if (whole.response().body != cut.response().body || whole.response().status != cut.response().status)
      broken("http_response", "the response depends on how the bytes were cut");
    if (whole.response().body.size() > 4096)
      broken("http_response", "body beyond max_body");
    const std::string part = gstmtx::readers_part(whole.response().body);
    if (part != "null" && !part.empty() && whole.response().body.find(part) == std::string::npos)
      broken("http_response", "readers text not taken from the body");
  }
  return 0;
}

/* one per line: tests/fuzz/build.sh reads the names from here */
// clang-format off
const Target kTargets[] = {
    {"link_header", link_header},
    {"location", location},
    {"retry_after", retry_after},
    {"classify", classify},
    {"sdpfrag", sdpfrag},
    {"sdp_answer", sdp_answer},
    {"api_answer", api_answer},
    {"http_response", http_response},
    {nullptr, nullptr},
};
// clang-format on

}  // namespace fuzz
