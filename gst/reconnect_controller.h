/* gst-mediamtx: the one reconnection controller of whepsrc, mediamtxsink and reconnectbin.
 *
 * Each element owns one ReconnectController and keeps only what is its own (how a session or a
 * child is built and torn down). The controller holds everything the three share:
 *  - the control thread ("mtx-<element>", a gstmtx::EventLoop) and the TaskGate of each run;
 *  - the retry properties, installed once for all (retry-delay, max-retry-delay, max-retries,
 *    retry-jitter) and the read-only `connection-state` (GstMtxConnectionState);
 *  - the retry policy (gstmtx::Backoff: see backoff.h for the rule), the retry timer;
 *  - the `gst-mediamtx-status` message and the shared stats fields;
 *  - one entry point for failures, report_failure(session, Failure), which retries or gives up with the
 *    GStreamer error domain and code of failure_error_code().
 *
 * Sessions: the element calls begin_session() when it starts an attempt (from the `start` hook),
 * then connected() when the session is up, delivered() on its first media (any thread) and
 * report_failure() when it breaks (any thread). Reports about an older session are ignored.
 *
 *   NULL->READY    prepare()        the control thread exists
 *   READY->PAUSED  start()          a run opens; the `start` hook runs on the control thread
 *   any thread     report_failure()/delivered()/post()
 *   PAUSED->READY  stop(last)       the run closes, the retry timer is dropped, `last` runs on
 *                                   the control thread (tear the session down), "stopped" posted
 *   READY->NULL    release()        the control thread ends (kept when called on it)
 *
 * Threads: properties and lifecycle from the application thread; hooks and everything marked
 * "control thread" on the loop; stats and state from any thread (one short lock, never held
 * while calling out).
 */
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "backoff.h"
#include "event_loop.h"
#include "failure.h"
#include "status.h"
#include "task_gate.h"

namespace gstmtx {

/* The retry properties' values; one set per element, read when a run starts and at every failure
 * (so changes while PLAYING apply from the next failure on). */
struct RetrySettings {
  guint retry_delay = 1000;
  guint max_retry_delay = 30000;
  gint max_retries = -1;
  gdouble retry_jitter = 0.2;

  RetryPolicy policy() const;
};

class ReconnectController {
public:
  /* Property ids of install_properties(), relative to the element's first id for them. */
  enum Property : guint {
    kRetryDelay,
    kMaxRetryDelay,
    kMaxRetries,
    kRetryJitter,
    kConnectionState,
    kPropertyCount
  };

  struct Hooks {
    /* Control thread: start an attempt (call begin_session() first). Required. */
    std::function<void()> start;
    /* Control thread: the current session failed: tear it down. Required. */
    std::function<void(const Failure &)> teardown;
    /* Control thread: a retry is scheduled in `delay`, after `failure`. Return true when the
     * element posted its own status (e.g. "fallback"); otherwise "reconnecting" is posted. */
    std::function<bool(const Failure &, Millis delay)> retrying;
    /* Control thread: about to give up on `failure` (fatal, or the retry budget is spent).
     * Return true when the element handled it (posted its own end, or called schedule_retry());
     * otherwise "failed" and an error message are posted. */
    std::function<bool(const Failure &)> giving_up;
    /* Any thread (the one calling post_status()): a status is about to be posted, before its bus
     * message (e.g. whepsrc's placeholder slate shows it). Optional. */
    std::function<void(const StatusUpdate &)> status;
  };

  /* `element_name`: "whepsrc", ... (the thread is "mtx-<element_name>"); `transport`: the
   * status message's default transport ("webrtc", "rtsp", the child's name...). */
  ReconnectController(GstElement *element, std::string element_name, StreamDirection direction);
  ~ReconnectController();
  ReconnectController(const ReconnectController &) = delete;
  ReconnectController &operator=(const ReconnectController &) = delete;

  void set_hooks(Hooks hooks) { hooks_ = std::move(hooks); }

  /* ---- properties (class_init and the element's get/set_property) ---- */
  static void install_properties(GObjectClass *klass, guint first_id);
  /* True when `prop_id` is one of the controller's properties (then handled). */
  bool set_property(guint first_id, guint prop_id, const GValue *value);
  bool get_property(guint first_id, guint prop_id, GValue *value) const;
  RetrySettings settings() const;

  /* ---- lifecycle (application thread) ---- */
  void prepare();
  void start();
  /* False (nothing done) when no run was open. */
  bool stop(const std::function<void()> &last = {});
  void release();

  EventLoop &loop() { return *loop_; }
  TaskGate &gate() { return *gate_; }
  bool has_loop() const { return loop_ != nullptr; }
  bool running() const { return gate_ && gate_->is_open(); }

  /* Any thread: runs fn on the control thread while this run is open. */
  void post(std::function<void()> fn);

  /* ---- sessions ---- */
  /* Control thread: a new attempt; posts "connecting" and returns its id. `announce` false: no
   * status is posted, the element's own one stands (e.g. "fallback" while a fallback plays). */
  unsigned begin_session(const std::string &reason = {}, bool announce = true);
  unsigned current_session() const { return session_.load(); }
  /* Control thread: the session is up. */
  void connected(unsigned session, const std::string &reason = {});
  /* Any thread: the session delivered media; its outage is over (cheap after the first call). */
  void delivered(unsigned session);
  /* Any thread: the session failed (queued to the control thread; ignored when stale). */
  void report_failure(unsigned session, Failure failure);
  /* Control thread: the same, now. */
  void handle_failure(unsigned session, Failure failure);
  /* Control thread: (re)start after `delay` regardless of the budget (e.g. while a fallback plays). */
  void schedule_retry(Millis delay);
  /* Control thread: drop a pending retry. */
  void cancel_retry();
  bool retry_pending() const { return retry_timer_ != 0; }
  /* Control thread: failed attempts in the current outage. */
  int attempts() const { return backoff_.attempts(); }
  /* Control thread: the element ended for good (EOS, gave up): no more attempts in this run. */
  void finish(ConnectionState state, const std::string &reason);
  bool finished() const { return finished_; }

  /* ---- status and stats (any thread) ---- */
  /* Posts a gst-mediamtx-status message and records the state. `transport` empty: the default. */
  void post_status(ConnectionState state, const std::string &reason, gint64 retry_in_ms = -1,
                   const std::string &transport = {});
  ConnectionState state() const;
  void set_transport(const std::string &transport);
  /* state, attempts (failed attempts in this outage), sessions, reconnects, last-error */
  void add_stats(GstStructure *stats) const;

private:
  void give_up(const Failure &failure);

  GstElement *element_;
  std::string name_;
  StreamDirection direction_;
  Hooks hooks_;

  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<TaskGate> gate_;

  /* control thread */
  Backoff backoff_;
  guint retry_timer_ = 0;
  bool finished_ = false;
  std::atomic<unsigned> session_{0};
  std::atomic<unsigned> delivered_session_{0};

  mutable std::mutex lock_; /* guards the fields below */
  RetrySettings settings_;
  ConnectionState state_ = ConnectionState::Idle;
  std::string transport_;
  std::string last_error_;
  int attempt_ = 0;      /* failed attempts in the outage, as last posted */
  guint sessions_ = 0;   /* sessions started in this run */
  guint reconnects_ = 0; /* retries scheduled in this run */
};

}  // namespace gstmtx
