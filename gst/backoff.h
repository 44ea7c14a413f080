/* gst-mediamtx: the retry policy shared by whepsrc, mediamtxsink and reconnectbin.
 *
 * The rule, in a user's words:
 *  - An outage starts with the first failure after a session delivered media (or at start).
 *  - A session that connected and delivered media ends the outage: the next failure starts again
 *    from `initial_delay` (retry-delay), however short that session was.
 *  - Within an outage every failed attempt (one that delivered nothing: a server that is down, a
 *    child that crashes at once) lengthens the wait: exponentially by attempt, but never beyond a
 *    fraction of how long the outage has lasted so far (`outage_fraction`, at least
 *    `initial_delay`), and never beyond `max_delay`. So a server back after a few seconds is met
 *    within about `initial_delay`, and a crash-looping child or a server down for minutes backs
 *    off to `max_delay`.
 *  - A server's Retry-After lengthens one wait up to `max_server_delay`.
 *  - `max_retries` failed attempts in one outage end it (the element gives up).
 * Plain C++, no GStreamer: time is passed in by the caller so the policy is unit-testable.
 * Not thread-safe: each element's ReconnectController uses it from its control thread.
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

namespace gstmtx {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

struct RetryPolicy {
  Millis initial_delay{1000};      /* wait after the first failure of an outage */
  Millis max_delay{30000};         /* cap on any computed wait */
  int max_retries = -1;            /* failed attempts per outage; -1: retry forever; 0: never retry */
  double multiplier = 2.0;         /* growth per failed attempt */
  double jitter = 0.2;             /* +/- fraction of the wait, spreads reconnect storms */
  double outage_fraction = 0.2;    /* a wait is at most this fraction of the outage so far */
  Millis max_server_delay{300000}; /* cap on a server's Retry-After, which may exceed max_delay */
};

class Backoff {
public:
  explicit Backoff(RetryPolicy policy = {}, std::uint64_t seed = std::random_device{}());

  /* Counts one failed attempt at `now` and returns how long to wait before the next one, or
   * nothing when the budget is spent. `at_least` lets a server's Retry-After lengthen the wait
   * beyond max_delay, up to max_server_delay (so a hostile header cannot park us for a day). */
  std::optional<Millis> next_delay(Clock::time_point now, Millis at_least = Millis{0});

  /* A session delivered media: the outage is over. */
  void on_delivered();

  void reset();
  /* failed attempts in the current outage (0 when none) */
  int attempts() const { return attempts_; }
  bool exhausted() const;
  const RetryPolicy &policy() const { return policy_; }
  void set_policy(const RetryPolicy &policy) { policy_ = policy; }

private:
  RetryPolicy policy_;
  int attempts_ = 0;
  Clock::time_point outage_started_{};
  std::mt19937_64 rng_;
};

}  // namespace gstmtx
