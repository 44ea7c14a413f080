/* gst-mediamtx: MediaMTX URL conventions.
 *
 *   whep://[user:pw@]host[:port]/path   ->  http://host:port/path/whep   (port 8889 by default)
 *   wheps://...                         ->  https://...
 *   rtsp://host:8554/path              <->  http://host:8889/path/whep (or /whip)
 *
 * Credentials found in a URL's userinfo are split off so they travel as HTTP/RTSP auth and
 * never appear in a logged URL.
 */
#pragma once

#include <optional>
#include <string>

namespace gstmtx {

inline constexpr int kDefaultRtspPort = 8554;
inline constexpr int kDefaultWebrtcPort = 8889;
inline constexpr int kDefaultHlsPort = 8888;

enum class HttpEndpointKind { Whep, Whip };

struct Endpoint {
  std::string url;        /* the URL to use, without userinfo */
  std::string user;       /* from the userinfo, percent-decoded, may be empty */
  std::string password;
  std::string host;       /* host as written (IPv6 without brackets) */
  int port = -1;
  std::string stream_path; /* MediaMTX path name, e.g. "cam" or "site/cam" */
  bool secure = false;
};

/* Parses a WHEP/WHIP location given as whep(s)://, http(s)://host/path (the "/whep" or "/whip"
 * suffix is added if missing) or rtsp(s)://host/path (mapped to MediaMTX's WebRTC port).
 * Returns nothing for anything else, with a reason in *error when given. */
std::optional<Endpoint> parse_webrtc_http_location(const std::string &location, HttpEndpointKind kind,
                                                    std::string *error = nullptr);

/* Parses an RTSP location (rtsp:// or rtsps://), splitting off credentials. */
std::optional<Endpoint> parse_rtsp_location(const std::string &location, std::string *error = nullptr);

/* rtsp://host[:port]/path built from a server ("host", "host:port" or a URL) and a path. */
std::string rtsp_url_for(const std::string &server, const std::string &stream_path, bool secure = false);
/* http://host:8889/path/whep|whip from a server and path. */
std::string webrtc_http_url_for(const std::string &server, const std::string &stream_path, HttpEndpointKind kind,
                                 bool secure = false);
/* http://host:8888/path/index.m3u8 for the same stream as a WHEP endpoint. */
std::string hls_url_for_endpoint(const Endpoint &endpoint);

/* Resolves a Location header against the URL the request went to. */
std::optional<std::string> resolve_location(const std::string &base, const std::string &location);

/* The URL with userinfo and secret query parameters (token, jwt, password...) masked, for logs. */
std::string redact_url(const std::string &url);

}  // namespace gstmtx
