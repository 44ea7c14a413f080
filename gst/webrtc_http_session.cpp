#include "webrtc_http_session.h"

#include <libsoup/soup.h>

#include <algorithm>
#include <cctype>

namespace gstmtx {

namespace {
constexpr std::size_t kMaxDebugBody = 512;

std::string endpoint_name(const SessionConfig &c) { return c.kind == HttpEndpointKind::Whep ? "WHEP" : "WHIP"; }

std::string printable(const std::string &body) {
  std::string out = body.substr(0, kMaxDebugBody);
  for (char &c : out)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\n') || static_cast<unsigned char>(c) == 0x7f)
      c = '?';
  if (body.size() > kMaxDebugBody)
    out += "...";
  return out;
}

bool looks_like_sdp(const std::string &body) {
  return body.rfind("v=0", 0) == 0 && body.find("\nm=") != std::string::npos;
}
}  // namespace

WebrtcHttpSession::WebrtcHttpSession(HttpClient &http, SessionConfig config) : http_(http), config_(std::move(config)) {}

WebrtcHttpSession::~WebrtcHttpSession() { *alive_ = false; }

Headers WebrtcHttpSession::auth_headers() const {
  Headers h = config_.extra_headers;
  add_authorization(h, config_.user, config_.password, config_.auth_token);
  return h;
}

HttpRequest WebrtcHttpSession::make_request(const char *method, const std::string &url) const {
  HttpRequest req;
  req.method = method;
  req.url = url;
  req.headers = auth_headers();
  req.timeout = config_.request_timeout;
  req.max_redirects = config_.max_redirects;
  return req;
}

std::chrono::milliseconds WebrtcHttpSession::parse_retry_after(const std::string &value) {
  using std::chrono::milliseconds;
  constexpr long long kCap = 3600LL * 1000;
  std::string v = value;
  v.erase(0, v.find_first_not_of(" \t"));
  v.erase(v.find_last_not_of(" \t") + 1);
  if (v.empty())
    return milliseconds{0};
  if (std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c); })) {
    if (v.size() > 7)
      return milliseconds{kCap};
    return milliseconds{std::min(std::stoll(v) * 1000, kCap)};
  }
  GDateTime *date = soup_date_time_new_from_http_string(v.c_str());
  if (!date)
    return milliseconds{0};
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  long long diff = g_date_time_difference(date, now) / 1000;
  g_date_time_unref(date);
  return milliseconds{std::clamp(diff, 0LL, kCap)};
}

SessionError WebrtcHttpSession::classify(const HttpResponse &r, const SessionConfig &c) {
  SessionError e;
  const std::string where = endpoint_name(c) + " endpoint " + redact_url(c.endpoint);
  if (!r.ok()) {
    e.debug = r.error;
    switch (r.failure) {
    case HttpFailure::RedirectLoop:
      e.kind = SessionErrorKind::Config;
      e.message = where + " redirects in a loop (" + r.error + "): check the URL";
      return e;
    case HttpFailure::InvalidUrl:
      e.kind = SessionErrorKind::Config;
      e.message = where + " is not a valid URL";
      return e;
    case HttpFailure::Tls:
      /* an untrusted certificate will not become trusted by retrying */
      e.kind = SessionErrorKind::Tls;
      e.message = where + ": " + r.error + " (set tls-ca-file to the server's CA, or tls-validation=false)";
      return e;
    case HttpFailure::TooLarge:
      e.kind = SessionErrorKind::Retry;
      e.message = where + " sent an oversized answer";
      return e;
    default:
      e.kind = SessionErrorKind::Retry;
      e.message = "cannot reach " + where + ": " + r.error;
      return e;
    }
  }
  e.http_status = r.status;
  e.debug = "HTTP " + std::to_string(r.status) + " from " + redact_url(r.url) + ": " + printable(r.body);
  if (r.status == 201 || r.status == 200) {
    if (!looks_like_sdp(r.body)) {
      e.kind = SessionErrorKind::Retry;
      e.message = where + " answered " + std::to_string(r.status) + " without a valid SDP answer";
      return e;
    }
    if (!r.content_type.empty() && r.content_type != "application/sdp") {
      e.kind = SessionErrorKind::Retry;
      e.message = where + " answered with content type '" + r.content_type + "' instead of application/sdp";
      return e;
    }
    return SessionError{};
  }
  const std::string status = "HTTP " + std::to_string(r.status);
  switch (r.status) {
  case 401:
  case 403:
    e.kind = SessionErrorKind::Unauthorized;
    e.message = where + " refused our credentials (" + status +
                "): check user-id/user-pw or auth-token, and the server's permissions for this path";
    return e;
  case 404:
    e.kind = SessionErrorKind::Retry;
    e.message = c.kind == HttpEndpointKind::Whep
                    ? where + " returned 404: no stream is being published on path '" + c.stream_path + "' yet"
                    : where + " returned 404: path '" + c.stream_path + "' is not available for publishing";
    return e;
  case 408:
  case 409:
  case 425:
  case 429:
    e.kind = SessionErrorKind::Retry;
    e.retry_after = parse_retry_after(r.header("retry-after"));
    e.message = where + " is busy (" + status + ")";
    return e;
  default:
    break;
  }
  if (r.status >= 500 && r.status < 600) {
    e.kind = SessionErrorKind::Retry;
    e.retry_after = parse_retry_after(r.header("retry-after"));
    e.message = where + " failed (" + status + ")" +
                (e.retry_after.count() ? ", retry after " + std::to_string(e.retry_after.count()) + " ms" : "");
    return e;
  }
  if (r.status >= 300 && r.status < 400) {
    e.kind = SessionErrorKind::Config;
    e.message = where + " answered with redirect " + status + ", which WHEP/WHIP does not follow (only 307/308)";
    return e;
  }
  e.kind = SessionErrorKind::Rejected;
  e.message = where + " rejected our offer (" + status + ")";
  return e;
}

void WebrtcHttpSession::query_ice_servers(std::function<void(std::vector<IceServer>, SessionError)> done) {
  HttpRequest req = make_request("OPTIONS", config_.endpoint);
  req.max_body = 16 * 1024;
  http_.send(std::move(req), [this, alive = std::weak_ptr<bool>(alive_), done = std::move(done)](HttpResponse r) {
    if (alive.expired())
      return;
    if (r.ok() && (r.status == 401 || r.status == 403)) {
      done({}, classify(r, config_));
      return;
    }
    if (!r.ok() || r.status >= 300) {
      done({}, SessionError{});
      return;
    }
    done(ice_servers_from_link_headers(r.headers_named("link")), SessionError{});
  });
}

void WebrtcHttpSession::post_offer(const std::string &offer_sdp, std::function<void(OfferAnswer, SessionError)> done) {
  HttpRequest req = make_request("POST", config_.endpoint);
  req.headers.emplace_back("Accept", "application/sdp");
  req.content_type = "application/sdp";
  req.body = offer_sdp;
  resource_url_.clear();
  etag_.clear();
  std::weak_ptr<bool> alive = alive_;
  http_.send(std::move(req), [this, alive, done = std::move(done)](HttpResponse r) {
    if (alive.expired())
      return;
    SessionError err = classify(r, config_);
    OfferAnswer answer;
    if (!err) {
      answer.answer_sdp = r.body;
      if (auto loc = resolve_location(r.url, r.header("location")))
        answer.resource_url = *loc;
      answer.etag = r.header("etag");
      answer.ice_servers = ice_servers_from_link_headers(r.headers_named("link"));
      resource_url_ = answer.resource_url;
      etag_ = answer.etag;
    }
    done(std::move(answer), std::move(err));
    if (!alive.expired()) /* done() may have destroyed the session (a failed POST tears it down) */
      pump_patches();
  });
}

void WebrtcHttpSession::patch_sdpfrag(const std::string &sdpfrag, std::function<void(SessionError)> done) {
  patches_.push_back({sdpfrag, std::move(done)});
  pump_patches();
}

/* called on the loop thread */
void WebrtcHttpSession::pump_patches() {
  if (patch_in_flight_ || resource_url_.empty() || patches_.empty())
    return;
  PendingPatch next = std::move(patches_.front());
  patches_.erase(patches_.begin());
  HttpRequest req = make_request("PATCH", resource_url_);
  if (!etag_.empty())
    req.headers.emplace_back("If-Match", etag_);
  req.content_type = "application/trickle-ice-sdpfrag";
  req.body = next.body;
  req.max_body = 64 * 1024;
  patch_in_flight_ = true;
  std::weak_ptr<bool> alive = alive_;
  http_.send(std::move(req), [this, alive, done = std::move(next.done)](HttpResponse r) {
    if (alive.expired())
      return;
    patch_in_flight_ = false;
    SessionError err;
    if (!r.ok() || r.status >= 300) {
      err.kind = SessionErrorKind::Retry;
      err.http_status = r.status;
      err.message = "trickle ICE PATCH failed: " + (r.ok() ? "HTTP " + std::to_string(r.status) : r.error);
      err.debug = printable(r.body);
    }
    if (done)
      done(err);
    if (!alive.expired()) /* done() may have destroyed the session */
      pump_patches();
  });
}

void WebrtcHttpSession::delete_resource(std::function<void()> done) {
  patches_.clear();
  if (resource_url_.empty()) {
    if (done)
      done();
    return;
  }
  HttpRequest req = make_request("DELETE", resource_url_);
  req.timeout = config_.delete_timeout;
  req.max_body = 16 * 1024;
  resource_url_.clear();
  http_.send(std::move(req), [done = std::move(done)](HttpResponse) {
    if (done)
      done();
  });
}

namespace {
/* SDP is line based: a CR or LF inside a value would start a line of its own choosing. */
bool has_line_break(const std::string &s) { return s.find_first_of("\r\n") != std::string::npos; }
std::string first_line(const std::string &s) { return s.substr(0, s.find_first_of("\r\n")); }
}  // namespace

std::string make_trickle_sdpfrag(const std::string &ufrag_in, const std::string &pwd_in, const std::string &media_in,
                                 unsigned mline_index, const std::string &mid,
                                 const std::vector<std::string> &candidates, bool end_of_candidates) {
  const std::string ufrag = first_line(ufrag_in), pwd = first_line(pwd_in), media = first_line(media_in);
  const bool numeric_mid = !mid.empty() && std::all_of(mid.begin(), mid.end(), [](unsigned char ch) {
    return std::isdigit(ch);
  });
  std::string frag;
  frag += "a=ice-ufrag:" + ufrag + "\r\n";
  frag += "a=ice-pwd:" + pwd + "\r\n";
  frag += "m=" + (media.empty() ? std::string("video") : media) + " 9 UDP/TLS/RTP/SAVPF 0\r\n";
  frag += "a=mid:" + (numeric_mid ? mid : std::to_string(mline_index)) + "\r\n";
  for (const auto &candidate : candidates) {
    std::string c = candidate;
    if (c.rfind("a=", 0) == 0)
      c.erase(0, 2);
    if (c.rfind("candidate:", 0) != 0 || has_line_break(c))
      continue; /* not a candidate, or one that would inject lines */
    frag += "a=" + c + "\r\n";
  }
  if (end_of_candidates)
    frag += "a=end-of-candidates\r\n";
  return frag;
}

}  // namespace gstmtx
