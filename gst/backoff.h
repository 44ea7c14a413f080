/* gst-mediamtx: the retry policy shared by whepsrc, mediamtxsink and reconnectbin.
 *
 * Exponential backoff with jitter, a cap, a retry budget and a reset after a stable period.
 * Plain C++, no GStreamer: time is passed in by the caller so the policy is unit-testable.
 * Not thread-safe: each element owns one and uses it from its control thread.
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
  Millis initial_delay{1000};   /* delay before the first retry */
  Millis max_delay{30000};      /* cap on any computed delay */
  int max_retries = -1;         /* -1: retry forever; 0: never retry */
  double multiplier = 2.0;      /* growth per failed attempt */
  double jitter = 0.2;          /* +/- fraction of the delay, spreads reconnect storms */
  Millis stable_period{10000};  /* connected this long: the next failure starts from scratch */
  Millis max_server_delay{300000}; /* cap on a server's Retry-After, which may exceed max_delay */
};

class Backoff {
public:
  explicit Backoff(RetryPolicy policy = {}, std::uint64_t seed = std::random_device{}());

  /* Counts one failed attempt and returns how long to wait before the next one, or nothing
   * when the budget is spent. `at_least` lets a server's Retry-After lengthen the wait beyond
   * max_delay, up to max_server_delay (so a hostile header cannot park us for a day). */
  std::optional<Millis> next_delay(Millis at_least = Millis{0});

  /* The connection came up at `now`. */
  void on_connected(Clock::time_point now);
  /* The connection went down at `now`: if it had been up for the stable period, the attempt
   * count starts again from zero. */
  void on_disconnected(Clock::time_point now);

  void reset();
  int attempts() const { return attempts_; }
  bool exhausted() const;
  const RetryPolicy &policy() const { return policy_; }
  void set_policy(const RetryPolicy &policy) { policy_ = policy; }

private:
  RetryPolicy policy_;
  int attempts_ = 0;
  std::optional<Clock::time_point> connected_at_;
  std::mt19937_64 rng_;
};

}  // namespace gstmtx
