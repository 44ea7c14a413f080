/* gst-mediamtx: who reads a MediaMTX path, from the server's control API.
 *
 * MediaMTX never passes a viewer's keyframe request (PLI/FIR) to the publisher and keeps no
 * keyframe cache for WebRTC readers, so a new viewer waits for the publisher's next keyframe. Its
 * control API lists a path's readers (GET /v3/paths/get/<path>, field `readers`, items
 * {"type": "webRTCSession", "id": "<uuid>"}): a publisher that watches the list can send a
 * keyframe the moment a reader joins.
 *
 * A WebRTC reader is listed as soon as its WHEP offer is accepted, before ICE and DTLS are done;
 * MediaMTX sends it media only once its peer connection is established (GET
 * /v3/webrtcsessions/get/<id>, `peerConnectionEstablished`). A keyframe sent before that is lost
 * to it, so a WebRTC reader is "ready" when established; any other reader when listed.
 *
 * ReaderWatch polls on an EventLoop with one keep-alive HTTP connection (PlainHttpGet for http://,
 * else HttpClient): the path every `interval` (by default chosen from the poll's own measured CPU
 * cost, PollBudget; an answer whose readers part is the same as the last one's is not parsed
 * again), a joining WebRTC reader's session every `pending_interval` until it is established (at
 * most `pending_timeout`). Without access to the API it reports once: refused
 * or timed out, it asks again every kUnreachableRetry (the server may come back; an API that has
 * answered before is reported only after kUnreachableRetry of failures); 401/403 or no
 * MediaMTX /v3 API there, it stops (MediaMTX logs and delays every refused login).
 *
 * The parsers, the reader diff, the keyframe rate limit and the interval's choice are plain
 * functions and classes, unit-tested in tests/unit/test_reader_watch.cpp.
 */
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "event_loop.h"
#include "http_client.h"
#include "plain_http_get.h"

namespace gstmtx {

inline constexpr int kDefaultApiPort = 9997;

struct PathReader {
  std::string type; /* webRTCSession, rtspSession, rtspConn, hlsMuxer, rtmpConn, srtConn ... */
  std::string id;
  bool operator<(const PathReader &o) const { return type != o.type ? type < o.type : id < o.id; }
  bool operator==(const PathReader &o) const { return type == o.type && id == o.id; }
};

/* The `readers` of a /v3/paths/get answer; nothing (and *error) when it is not such an answer. */
std::optional<std::vector<PathReader>> parse_path_readers(const std::string &json, std::string *error = nullptr);
/* `peerConnectionEstablished` of a /v3/webrtcsessions/get answer; nothing when absent/invalid. */
std::optional<bool> parse_webrtc_session_established(const std::string &json);
/* True when `json` is MediaMTX's API error object ({"status":"error","error":"..."}). */
bool is_api_error_body(const std::string &json);
/* The text of a /v3/paths/get answer's `readers` value ("[...]" or "null"), "" when there is
 * none: two answers with the same text list the same readers, whatever their byte counters say,
 * so the second needs no JSON parsing. */
std::string readers_part(const std::string &json);

/* http://<host>:9997 ("[::1]" for IPv6 hosts). */
std::string default_api_location(const std::string &host);
/* <api>/v3/paths/get/<path>, <api>/v3/webrtcsessions/get/<id>: the path's segments escaped. */
std::string path_get_url(const std::string &api_location, const std::string &path);
std::string webrtc_session_get_url(const std::string &api_location, const std::string &id);

/* What an answer of the API means for the watch. */
enum class ApiAnswer {
  Readers,       /* 200 with a readers list */
  NoPath,        /* 404 with MediaMTX's error object: the path is not published (yet) */
  Unreachable,   /* connection refused, DNS, TLS, timeout: no API there */
  Unauthorized,  /* 401 / 403: the user may not use the API */
  NotMediamtx,   /* 404 without MediaMTX's error object, another status, or not its JSON */
};
ApiAnswer classify_path_answer(const HttpResponse &response);
/* After an Unreachable answer the watch tries again this much later (silently): the server may
 * restart, or its API be turned on. */
inline constexpr std::chrono::seconds kUnreachableRetry{10};
/* Once the API has answered, an Unreachable answer (a request timed out on a loaded machine, the
 * server restarting) is retried this often, silently, and reported only when the API has stayed
 * unreachable for kUnreachableRetry: the warning is for an API that is not there, not for a blip. */
inline constexpr std::chrono::milliseconds kBlipRetry{500};
/* One sentence for the user: what failed and how to grant the API (no credentials in it). */
std::string explain_api_problem(ApiAnswer answer, const std::string &api_location, const std::string &user,
                                const HttpResponse &response);

/* The readers seen last; update() returns those not seen before (in list order). */
class ReaderSet {
public:
  std::vector<PathReader> update(const std::vector<PathReader> &now);
  std::size_t size() const { return known_.size(); }

private:
  std::set<PathReader> known_;
};

/* The path poll's interval from its CPU cost: keyframe-on-join's polling gets a share of one core
 * (`cpu_share`), so the interval is cost / share, clamped to [floor, ceiling]. The floor also bounds
 * what MediaMTX pays per poll (~0.3 ms of its CPU per request on the benchmark VM: at 100 ms, 0.3 %
 * of a core per camera on the server); the ceiling bounds the wait a joining viewer can get from
 * the poll's phase. docs/benchmarks.md "Cost of keyframe-on-join's polling" has the figures. */
struct PollBudget {
  double cpu_share = 0.0025; /* 0.25 % of one core: half the 0.5 % target, whatever the core */
  std::chrono::milliseconds floor{100};
  std::chrono::milliseconds ceiling{1000};
};
std::chrono::milliseconds choose_poll_interval(std::chrono::nanoseconds cpu_per_poll, const PollBudget &budget);

/* The CPU of one path poll, smoothed: an exponentially weighted mean (weight 1/4 for each new
 * sample; the first one is taken as it is). */
class PollCostMeter {
public:
  void add(std::chrono::nanoseconds sample);
  std::optional<std::chrono::nanoseconds> estimate() const;
  unsigned samples() const { return samples_; }

private:
  double mean_ns_ = 0;
  unsigned samples_ = 0;
};

/* The CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID). */
std::chrono::nanoseconds thread_cpu_time();

/* At most one action per `min_gap`: request(now) says when the next action may run (now, or the
 * end of the gap since the last one); requests while one is already due are merged into it. */
class RateLimit {
public:
  using Clock = std::chrono::steady_clock;
  explicit RateLimit(std::chrono::milliseconds min_gap) : min_gap_(min_gap) {}
  /* nothing: one is already due (merged); else the delay from `now` until it may run */
  std::optional<std::chrono::milliseconds> request(Clock::time_point now);
  /* the action ran at `now` */
  void done(Clock::time_point now);

private:
  std::chrono::milliseconds min_gap_;
  std::optional<Clock::time_point> last_;
  bool due_ = false;
};

class ReaderWatch {
public:
  /* interval 0: chosen from the poll's measured CPU cost (PollBudget) */
  static constexpr std::chrono::milliseconds kAutomaticInterval{0};
  struct Config {
    std::string api_location; /* http(s)://host:port, no path */
    std::string path;         /* MediaMTX path name */
    Headers auth;             /* Authorization, as for publishing (never logged) */
    std::string user;         /* named in the explanation when the API refuses it */
    /* A WebRTC reader is listed ~7 ms after its offer and established ~70-150 ms later; seen
     * while it connects, its session is then asked every pending_interval, so its keyframe
     * leaves a few ms after it is established. The path interval trades the rest of that wait
     * against CPU: docs/benchmarks.md "Cost of keyframe-on-join's polling".
     *
     * Automatic (0): the watch measures the CPU its loop thread spends from one path answer to
     * the next (the timer's wake-up, the request, reading and judging the answer, and anything
     * else on that thread: an upper bound of the poll's cost), smooths it (PollCostMeter) and
     * polls every choose_poll_interval(cost, budget): ~100 ms on a current x86 core, longer on a
     * slower one. Windows in which a reader joined (session polls, keyframe requests: a cost per
     * join, not per poll) are not counted. Until the first window is measured it polls at
     * budget.floor. */
    std::chrono::milliseconds interval{kAutomaticInterval};
    PollBudget budget;
    /* the loop thread's CPU time so far (tests give a fake one); empty: thread_cpu_time() */
    std::function<std::chrono::nanoseconds()> thread_cpu;
    std::chrono::milliseconds pending_interval{10};
    std::chrono::milliseconds pending_timeout{10000};
    /* http:// API locations through PlainHttpGet (a fraction of libsoup's CPU per request);
     * false: always HttpClient (the cost benchmark compares the two) */
    bool plain_http = true;
  };

  struct Events {
    /* a reader that can take a keyframe now joined (loop thread) */
    std::function<void(const PathReader &)> reader_ready;
    /* the API cannot be used: called once, the watch has stopped (loop thread) */
    std::function<void(ApiAnswer, const std::string &explanation)> unavailable;
  };

  /* Lives on `loop` with `http` (both outlive it); construct and destroy on the loop thread. */
  ReaderWatch(EventLoop &loop, HttpClient &http, Config config, Events events);
  ~ReaderWatch();
  ReaderWatch(const ReaderWatch &) = delete;
  ReaderWatch &operator=(const ReaderWatch &) = delete;

  /* Loop thread: polls now, then every interval until destroyed or unavailable. */
  void start();
  /* requests made so far, and path answers whose readers were parsed (for the cost measurements) */
  unsigned requests() const { return requests_; }
  unsigned parsed() const { return parsed_; }
  /* true when requests go through PlainHttpGet */
  bool plain() const { return plain_ != nullptr; }
  /* the path poll's interval now (the fixed one, or the automatic choice) */
  std::chrono::milliseconds interval() const { return interval_; }
  /* the smoothed CPU per path poll; nothing before the first measured window */
  std::optional<std::chrono::nanoseconds> cpu_per_poll() const { return meter_.estimate(); }

private:
  void poll_path();
  void on_path_answer(const HttpResponse &response);
  void poll_pending(const std::string &id);
  /* after a path answer: the window since the last one measured, the interval chosen */
  void calibrate();
  void send(HttpRequest request, HttpClient::Callback done);
  /* runs fn on the loop after delay unless the watch is gone by then */
  void after(std::chrono::milliseconds delay, std::function<void()> fn);

  EventLoop &loop_;
  HttpClient &http_;
  std::unique_ptr<PlainHttpGet> plain_;
  Config config_;
  Events events_;
  ReaderSet readers_;
  std::map<std::string, std::chrono::steady_clock::time_point> pending_; /* WebRTC id -> listed at */
  bool stopped_ = false;
  bool reported_ = false;     /* unavailable() was called */
  bool answered_ = false;     /* the API answered once (Readers, NoPath) */
  std::optional<std::chrono::steady_clock::time_point> unreachable_since_; /* failing since */
  unsigned requests_ = 0;
  unsigned parsed_ = 0;
  std::string last_readers_part_;          /* of the last path answer that listed readers */
  std::chrono::milliseconds interval_;
  PollCostMeter meter_;
  std::optional<std::chrono::nanoseconds> window_start_; /* thread CPU at the last path answer */
  unsigned window_requests_ = 0;           /* requests_ then */
  bool window_joined_ = false;             /* a reader joined in this window */
  std::vector<PathReader> last_readers_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace gstmtx
