/* gst-mediamtx: one WHEP or WHIP session over HTTP, shared by whepsrc and mediamtxsink.
 *
 *   OPTIONS endpoint              -> Link rel="ice-server" (optional pre-flight)
 *   POST endpoint (offer)         -> 201 + answer, Location (resolved), ETag, Link headers
 *   PATCH resource (sdpfrag)      -> trickle ICE, If-Match when the server gave an ETag
 *   DELETE resource               -> on stop, on error, before every reconnect (short bound)
 *
 * Outcomes are classified once, here, so both elements react alike: retry (with an optional
 * Retry-After) or fatal, with a message a user can act on. No element code; runs on the owner's
 * EventLoop through HttpClient.
 */
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "failure.h"
#include "http_client.h"
#include "link_header.h"
#include "mediamtx_url.h"

namespace gstmtx {

/* A session's failures are the elements' Failure (failure.h): classified once, here. */
using SessionErrorKind = FailureKind;
using SessionError = Failure;

struct SessionConfig {
  std::string endpoint;              /* http(s) URL of the WHEP/WHIP endpoint, no userinfo */
  HttpEndpointKind kind = HttpEndpointKind::Whep;
  std::string stream_path;           /* for messages */
  std::string auth_token;            /* Bearer */
  std::string user, password;        /* Basic, when no token */
  Headers extra_headers;
  std::chrono::milliseconds request_timeout{5000};
  std::chrono::milliseconds delete_timeout{1000};
  int max_redirects = 5;
};

struct OfferAnswer {
  std::string answer_sdp;
  std::string resource_url;          /* empty when the server gave no Location */
  std::string etag;
  std::vector<IceServer> ice_servers;
};

class WebrtcHttpSession {
public:
  WebrtcHttpSession(HttpClient &http, SessionConfig config);
  /* Pending PATCHes are abandoned; a created resource is NOT deleted here (call delete_resource). */
  ~WebrtcHttpSession();

  /* All callbacks run on the HttpClient's loop thread. */
  /* OPTIONS pre-flight: the ICE servers of the Link headers; a 401/403 is reported as an
   * Unauthorized error so the caller need not POST to learn it. Other failures are ignored. */
  void query_ice_servers(std::function<void(std::vector<IceServer>, SessionError)> done);
  void post_offer(const std::string &offer_sdp, std::function<void(OfferAnswer, SessionError)> done);
  /* Queues a trickle PATCH (sent in order, one at a time, once the resource is known). */
  void patch_sdpfrag(const std::string &sdpfrag, std::function<void(SessionError)> done = {});
  /* DELETE the resource if there is one; done() runs when it is answered or the bound expires. */
  void delete_resource(std::function<void()> done = {});

  const std::string &resource_url() const { return resource_url_; }
  const SessionConfig &config() const { return config_; }

  /* Classification of a POST answer (public for unit tests). */
  static SessionError classify(const HttpResponse &response, const SessionConfig &config);
  /* Retry-After: delta-seconds or an HTTP date; capped at one hour. */
  static std::chrono::milliseconds parse_retry_after(const std::string &value);

private:
  Headers auth_headers() const;
  /* method, URL, auth and extra headers, the request deadline and the redirect bound */
  HttpRequest make_request(const char *method, const std::string &url) const;
  void pump_patches();

  HttpClient &http_;
  SessionConfig config_;
  std::string resource_url_;
  std::string etag_;
  struct PendingPatch {
    std::string body;
    std::function<void(SessionError)> done;
  };
  std::vector<PendingPatch> patches_;
  bool patch_in_flight_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

/* Builds an RFC 8840 trickle fragment for MediaMTX and other WHEP/WHIP servers. MediaMTX reads
 * `a=mid` as the m-line index, so a non-numeric mid (webrtcbin's "video0") is sent as the index. */
std::string make_trickle_sdpfrag(const std::string &ufrag, const std::string &pwd, const std::string &media,
                                 unsigned mline_index, const std::string &mid,
                                 const std::vector<std::string> &candidates, bool end_of_candidates);

}  // namespace gstmtx
