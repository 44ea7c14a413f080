/* gst-mediamtx: is the remote WebRTC peer still there? Judged from the RTCP reports it sends.
 *
 * MediaMTX sends a report every second on each stream (sender reports to a WHEP viewer once its
 * publisher has sent media, receiver reports to a WHIP publisher), and keeps sending while the
 * publisher is quiet. A SIGKILLed or unplugged server just stops: libnice 0.1.21 (RFC 5245 mode,
 * no consent checks) never calls that ICE failure, so silence is the signal.
 *
 * The peer is silent when no report came for max(min_silence, 3 x the longest of the recent
 * intervals between reports): a server that reports every 5 s is not declared gone after 3 s.
 * Watching starts at the second report (one interval known), or at arm() for a side that is owed
 * reports at once. Plain C++: time is passed in, so the policy is unit-testable.
 * Thread-safety: report() from any thread (RTCP arrives on a streaming thread), the rest from one
 * control thread; one short internal lock.
 */
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>

namespace gstmtx {

class RtcpLiveness {
public:
  using Clock = std::chrono::steady_clock;
  using Millis = std::chrono::milliseconds;

  explicit RtcpLiveness(Millis min_silence) : min_silence_(min_silence) {}

  /* A report from the peer arrived at `now`. */
  void report(Clock::time_point now);
  /* Silence counts from `now` even before the first report. */
  void arm(Clock::time_point now);
  /* Forgets everything (a new session). */
  void reset();

  /* True when watching and nothing came for longer than silence_bound(). */
  bool silent(Clock::time_point now) const;
  /* The current bound: max(min_silence, 3 x the longest recent interval). */
  Millis silence_bound() const;
  /* Whether silence is being watched (armed, or two reports seen). */
  bool watching() const;

private:
  Millis bound_locked() const;

  static constexpr int kIntervalFactor = 3;
  mutable std::mutex lock_;
  Millis min_silence_;
  bool armed_ = false;
  int reports_ = 0;
  Clock::time_point last_{};
  std::array<Millis, 8> recent_{};  /* ring of the last intervals between reports */
  std::size_t next_ = 0;
};

}  // namespace gstmtx
