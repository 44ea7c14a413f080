/* gst-mediamtx tests: a local WHEP/WHIP HTTP server (libsoup) that misbehaves on purpose, for the
 * faults a real MediaMTX will not produce. It can also relay to a real MediaMTX and alter the
 * answer (drop Location, redirect), so the WebRTC part stays real.
 *
 * Routes, under http://<addr>:<port>/<fault>/whep (or /whip):
 *   status-NNN        answer NNN with a JSON error body (Retry-After: 1 for 503)
 *   garbage           201 application/sdp "this is not SDP"
 *   wrong-type        201 text/html with an HTML body
 *   empty             201 application/sdp, no body
 *   huge              201 with a 2 MiB body
 *   loop              307 to itself
 *   redirect          307 to the relay route
 *   hang              never answers
 *   hang-body         headers, then never the body
 *   reset             closes the connection without an answer
 *   relay             forwards to the real server, returns its answer
 *   relay-no-location forwards, strips Location
 *   relay-here        forwards, Location kept on this route (PATCH and DELETE come here too)
 *   unavailable-once  the first POST: 503 with Retry-After: 2; later requests: as relay
 * Every request is counted per route; request bodies are kept per route and method.
 */
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <glib.h>

typedef struct _SoupServer SoupServer;
typedef struct _GMainContext GMainContext;
typedef struct _GMainLoop GMainLoop;

namespace testbed {

class FaultServer {
public:
  /* relay_base: e.g. "http://10.77.0.1:8889" of a real MediaMTX (may be empty) */
  explicit FaultServer(std::string relay_base = "");
  ~FaultServer();
  std::string base_url() const; /* http://<addr>:<port> */
  std::string url(const std::string &fault, const std::string &path = "cam", const char *kind = "whep") const;
  int requests(const std::string &fault) const;
  int requests(const std::string &fault, const std::string &method) const;
  /* g_get_monotonic_time() of every request to `fault` with `method`, in order */
  std::vector<gint64> request_times(const std::string &fault, const std::string &method) const;
  /* the request headers of the last request to `fault`, "name: value" lines */
  std::string last_headers(const std::string &fault) const;
  /* the bodies of every `method` request to `fault`, in order */
  std::vector<std::string> bodies(const std::string &fault, const std::string &method) const;
  int port() const { return port_; }

  /* internal */
  void count(const std::string &fault, const std::string &method);
  void record_headers(const std::string &fault, const std::string &headers);
  void record_body(const std::string &fault, const std::string &method, std::string body);
  const std::string &relay_base() const { return relay_base_; }

private:
  std::string relay_base_;
  std::string host_;
  int port_ = 0;
  SoupServer *server_ = nullptr;
  GMainContext *context_ = nullptr;
  GMainLoop *loop_ = nullptr;
  std::thread thread_;
  mutable std::mutex lock_;
  std::map<std::string, int> counts_;
  std::map<std::string, std::string> headers_;
  std::map<std::string, std::vector<std::string>> bodies_;
  std::map<std::string, std::vector<gint64>> times_;
};

}  // namespace testbed
