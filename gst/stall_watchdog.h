/* gst-mediamtx: stall detection shared by elements that restart a stalled connection.
 *
 * A stream is stalled when it has produced nothing for `timeout` since it was armed or since
 * its last output. For a filter (input and output), it only counts as stalled when input
 * arrived after the last output: a filter starved by its upstream is not stalled.
 * Plain C++, no GStreamer: time is passed in by the caller so the policy is unit-testable.
 * Thread-safety: note_output()/note_input() may be called from any thread (streaming threads)
 * concurrently with stalled(); arm()/disarm()/set_timeout() come from one control thread.
 */
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace gstmtx {

class StallWatchdog {
public:
  using Clock = std::chrono::steady_clock;
  using Millis = std::chrono::milliseconds;

  /* timeout 0 disables detection */
  explicit StallWatchdog(Millis timeout = Millis{0}) : timeout_ms_(timeout.count()) {}

  void set_timeout(Millis timeout) { timeout_ms_ = timeout.count(); }
  Millis timeout() const { return Millis{timeout_ms_.load()}; }

  /* Starts watching at `now`: the stream must produce within the timeout. `filter`: only
   * count a stall when input keeps arriving. */
  void arm(Clock::time_point now, bool filter);
  /* Stops watching (stream down or element stopping). */
  void disarm() { armed_ = false; }
  bool armed() const { return armed_.load(); }

  /* The stream produced (buffer out) / consumed (buffer in) at `now`. */
  void note_output(Clock::time_point now) { last_output_ = ticks(now); }
  void note_input(Clock::time_point now) { last_input_ = ticks(now); }

  /* True when armed, enabled and stalled at `now`. */
  bool stalled(Clock::time_point now) const;
  /* How long until stalled() could first become true, for a timer; Millis{-1} when disabled. */
  Millis time_left(Clock::time_point now) const;

private:
  static std::int64_t ticks(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  }
  std::atomic<std::int64_t> timeout_ms_;
  std::atomic<bool> armed_{false};
  std::atomic<bool> filter_{false};
  std::atomic<std::int64_t> armed_at_{0};
  std::atomic<std::int64_t> last_output_{0};
  std::atomic<std::int64_t> last_input_{0};
};

}  // namespace gstmtx
