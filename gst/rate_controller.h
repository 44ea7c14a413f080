/* gst-mediamtx: the publisher's send-rate controller (bandwidth adaptation).
 *
 * Plain C++, no GStreamer: the element feeds it what its transport tells about the uplink, at
 * any pace (every 100-250 ms), with the time injected, and applies target_kbps() to its encoder.
 *
 *   RateController rc({min_kbps, max_kbps});
 *   RateFeedback fb; fb.now = ...; fb.queuing_delay_ms = ...; fb.loss = ...; fb.delivered_kbps = ...;
 *   RateDecision d = rc.update(fb);   // d.changed: set the encoder's bitrate; d.deep_cut: keyframe
 *
 * Signals (each optional, -1 / 0 when the transport has none):
 *  - queuing_delay_ms: how long the data sent now waits before it leaves the bottleneck: WHIP:
 *    the one-way delay grown above its recent minimum (TWCC), RTSP over TCP: the socket's send
 *    backlog divided by the rate it drains at. The controller subtracts the minimum of the last
 *    kBaseWindow itself too, so a constant offset (clock offset, a path's fixed delay, the bytes
 *    always in flight) never looks like a queue.
 *  - loss: fraction of packets lost since the last report (TWCC, RTCP receiver reports).
 *  - delivered_kbps: the rate that actually reached the receiver (TWCC) or left the socket, and
 *    sent_kbps, what was sent meanwhile: a delivered rate persistently short of the sent one
 *    (smoothed ratio < kShortfall) is a queue growing even where the delay signal cannot see it
 *    (a path congested from its first packet has no uncongested base delay to compare with).
 *
 * Policy (docs/architecture.md, "Bandwidth adaptation"): ideas of GCC (draft-ietf-rmcat-gcc:
 * delay overuse -> multiplicative decrease to a fraction of the delivered rate; loss > 10 % ->
 * decrease by half the loss; loss < 2 % allows an increase) and RFC 8698 NADA (a queuing delay
 * measured against the base delay; an accelerating ramp-up when the path is clear):
 *  - overuse: smoothed queuing delay > kDelayHigh, a delivery shortfall, or loss > kLossHigh -> down at once to
 *    kBackoff x the delivered rate (or x the target when that is unknown); no second cut for
 *    kHoldAfterCut unless the delay keeps growing;
 *  - clear: smoothed delay < kDelayLow, loss < kLossLow and this report delivered what was sent
 *    (>= 90 %) -> up, by a factor per second that
 *    grows the longer the path stays clear (kRampStart + kRampAccel x seconds clear, at most
 *    kRampMax): small steps right after a cut (no sawtooth on a steady link); at most kRampNear
 *    while within [kNearLow, kNearHigh] x the delivered rate at the last cut (GCC's "near max" caution:
 *    the link was full there), and past that band from kRampStart again until more than
 *    kLiftVolume + kLiftVolumeTime x the estimate was delivered above it: then the limit has
 *    lifted (a tbf's burst and queue cannot hide that much; the feedback's lag does not matter,
 *    the sum is of what it reports) and the ramp goes at kRampLifted (not at the accelerating
 *    ramp's 4-80 %/s all the way to `max`);
 *    Never above kSentHeadroom x what was actually sent lately (GCC's cap at 1.5x the acknowledged
 *    rate): an encoder that does not fill its target (a still scene, a starved CPU) gives no proof
 *    that the link carries more;
 *  - drain: a queue of more than kDrainStart ms (raw, not smoothed: a TCP send backlog built in
 *    the first second after a cut, up to a whole socket buffer) is not left to drain at the small
 *    margin between the link and kBackoff x its rate: the target becomes delivered - queue /
 *    kDrainTime (the queue in kbit: its delay x the delivered rate, which is the link's rate while
 *    a queue stands, or x a measured capacity when lower: a delivered rate lags a cut), floored
 *    at min, so it empties within about kDrainTime; a queue seen growing (queue_now_ms while
 *    delay_overuse) is drained the same way as soon as it passes kDrainStart; below kDrainEnd the
 *    target resumes at kBackoff x the median rate delivered meanwhile (the median: a smoothed
 *    delivered rate lags the cut, a lagging delay estimate outlasts the queue) and the hold after a cut starts;
 *  - between: hold; holding longer than kHoldPatience restarts the ramp from kRampStart (one noisy
 *    report does not). Near the link estimate the ramp stays at kRampNear only for kNearPatience:
 *    a path clear that long past the last cut has probably grown (a lifted limit), so the ramp
 *    accelerates again; until then the target stays below kNearCap x the estimate, so a steady
 *    link settles between kBackoff and kNearCap of its rate with a short probe past it every
 *    few seconds, not in a sawtooth around it that keeps its queue partly full.
 * The target given to the encoder is always within [min_kbps, max_kbps]. The rate the controller
 * works with (wanted_kbps()) is not floored at min_kbps: on a link that cannot carry min_kbps the
 * same policy keeps lowering it (down to kWantedFloorShare x min_kbps), and the element lowers
 * the frame rate so what it sends matches it (gst/frame_rate_floor.h; docs/architecture.md,
 * "Below min-bitrate"). A cut or a drain goes below min_kbps only as far as kBackoff x the link's
 * measured rate (delivered, capacity, a drain's median): on a link above min_kbps a deep queue or
 * a loss is met at min_kbps, as before, and the frame rate stays whole.
 */
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "windowed_minimum.h"

namespace gstmtx {

struct RateFeedback {
  std::chrono::milliseconds now{0};
  double queuing_delay_ms = -1; /* < 0: no delay signal in this report */
  double loss = -1;             /* 0..1; < 0: no loss report in this one */
  int delivered_kbps = 0;       /* 0: unknown */
  int sent_kbps = 0;            /* what was sent over the same span as delivered_kbps; 0: unknown */
  /* From a per-packet delay-gradient estimator (WHIP: gst/twcc_estimator.h), when there is one: */
  bool delay_overuse = false;   /* the queue at the bottleneck keeps growing: overuse now */
  int capacity_kbps = 0;        /* the link's measured rate (0: unknown): the ramp stays below
                                   kCapacityShare x it, a cut goes below it */
  /* the queue at the bottleneck now (ms; < 0: unknown): queuing_delay_ms is a standing queue (a
   * keyframe's burst is not one), this is the latest packets' own. While delay_overuse says the
   * queue is growing (or a drain is under way) it counts for the drain: a cut on a link with a
   * short buffer overflows it within a few hundred ms, long before a queue has stood for long. */
  double queue_now_ms = -1;
};

/* Why the target last moved. */
enum class RateReason { None, Delay, Loss, Probe };
const char *rate_reason_name(RateReason reason);

struct RateDecision {
  int target_kbps = 0;   /* for the encoder: within [min, max] */
  int wanted_kbps = 0;   /* what the link takes: target_kbps, or less when that is below min */
  bool changed = false;  /* differs from the previous update's target */
  bool deep_cut = false; /* fell below half of where this congestion episode started: a keyframe
                            lets new viewers start on the new rate (once per episode; when a
                            drain is under way, at its end: a keyframe into a standing queue
                            only lengthens it, or is dropped by a bottleneck already full) */
  RateReason reason = RateReason::None;
};

/* A queuing delay built from a one-way delay gradient (WHIP: rtpsession's twcc-stats
 * avg-delta-of-delta, the mean growth of the delay from one packet to the next over a feedback
 * window, times the packet rate): the gradient integrated over time, never below zero (an empty
 * queue cannot shrink) nor above kMaxMs, leaking towards zero (kLeakSeconds). GCC's trendline idea (draft-ietf-rmcat-gcc, 5.3): a
 * delay that keeps growing is a queue filling at the bottleneck, seen before it overflows. */
class DelayGradientQueue {
public:
  static constexpr double kMaxMs = 1000.0;
  /* the estimate leaks towards zero with this time constant: integrated noise does not random-walk
   * into a phantom queue (a real one keeps growing while the rate exceeds the link's) */
  static constexpr double kLeakSeconds = 1.5;
  /* growth below this (ms/s, 1.5 % of the link) is noise or a bias of the estimate, not a queue */
  static constexpr double kDeadband = 15.0;
  /* gradient_ms_per_s: how fast the delay grew over the last window; dt: time since the last one */
  double update(double gradient_ms_per_s, std::chrono::milliseconds dt);
  double queuing_ms() const { return queue_ms_; }
  void reset() { queue_ms_ = 0; }

private:
  double queue_ms_ = 0;
};

class RateController {
public:
  using Millis = std::chrono::milliseconds;

  static constexpr double kDelayHigh = 60.0;   /* ms of smoothed queuing delay: overuse */
  static constexpr double kDelayLow = 25.0;    /* ms: clear */
  static constexpr double kLossHigh = 0.10;
  static constexpr double kLossLow = 0.02;
  static constexpr double kBackoff = 0.85;     /* of the delivered rate on overuse */
  static constexpr double kShortfall = 0.92;   /* delivered / sent below this (smoothed): overuse */
  static constexpr double kRampStart = 0.04;   /* per second, right after a cut */
  static constexpr double kRampAccel = 0.12;   /* per second, per second of clear path */
  static constexpr double kRampMax = 0.80;     /* per second */
  static constexpr double kRampNear = 0.08;    /* per second, near the link estimate: */
  static constexpr double kNearLow = 0.9;      /*   from this x the delivered rate at the last cut */
  static constexpr double kNearHigh = 1.15;    /*   to this x */
  static constexpr double kSentHeadroom = 2.0;  /* the target at most this x the recent sent peak */
  static constexpr Millis kHoldAfterCut{1500};
  static constexpr Millis kMinCutInterval{300};
  static constexpr Millis kBaseWindow{10000};  /* base delay: minimum over this window */
  static constexpr double kDrainStart = 150.0; /* ms of queuing delay: drain the queue */
  static constexpr double kDrainEnd = 80.0;    /* ms: drained */
  static constexpr double kDrainTime = 1000.0; /* ms: a queue is drained within about this */
  static constexpr double kQuickDrainTime = 500.0; /* ms: a queue caught growing (update_backlog) */
  static constexpr Millis kNearPatience{2000}; /* clear this long near the link estimate: probe on */
  static constexpr double kNearCap = 0.95;     /* until then the target stays below this x it */
  static constexpr Millis kHoldPatience{1000}; /* holding this long restarts the ramp */
  static constexpr double kCapacityShare = 0.9; /* of a measured capacity: where the ramp stops */
  static constexpr double kCapacityProbeBand = 1.05; /* past a stale one: at kRampNear up to this x it */
  /* past the band around the link estimate, with the path clear, more than this was delivered
   * above the estimate (kbit, plus kLiftVolumeTime s of the estimate: more than a token bucket's
   * burst, tc tbf's 20 KB, and the bottleneck's queue let a probe on a link that did not grow pass
   * before it shows as a queue): the limit has lifted */
  static constexpr double kLiftVolume = 200.0;
  static constexpr double kLiftVolumeTime = 0.4;
  static constexpr double kRampLifted = 1.0; /* per second, once it lifted */
  static constexpr double kWantedFloorShare = 0.1; /* wanted_kbps() never below this x min */
  static constexpr double kProbeQueue = 20.0; /* ms of standing, growing send backlog: a probe too far */

  RateController(int min_kbps, int max_kbps);

  /* New bounds (the element's properties changed); the target is clamped into them. */
  void set_bounds(int min_kbps, int max_kbps);
  /* A new session: back to max, history dropped (a reconnection may take another path). */
  void reset();

  RateDecision update(const RateFeedback &feedback);

  /* Between reports: a send backlog sampled far more often than update() runs (RTSP over TCP,
   * gstmtx::SendBacklogWatch): the queue now (ms at the delivered rate) and the rate delivered
   * over the last ~200 ms. `overloaded` (a standing, growing queue) starts a drain at once, a
   * quick one (kQuickDrainTime: the target goes well below the link while the queue stands);
   * a drain under way ends as soon as the queue is under kDrainEnd. And a probe past the link
   * estimate (target above kNearCap x it) ends as soon as a queue of more than kProbeQueue
   * (`standing_ms` above its minimum of the last kBaseWindow: a path's own in-flight bytes are
   * not a queue) stands and grows: a cut to kBackoff x the delivered rate, which is the link's
   * while a queue stands, and that becomes the estimate. Waiting for kDrainStart there lets every
   * probe build a queue of ~300 ms on a steady link. Nothing else moves here: the ramp, the hold
   * and the loss stay with update(). */
  RateDecision update_backlog(Millis now, double queue_ms, int delivered_kbps, bool overloaded,
                              double standing_ms = -1, bool growing = false);

  /* For the encoder: the wanted rate floored at min. */
  int target_kbps() const { return std::max(min_, wanted_kbps()); }
  /* The rate the link takes, below min when it cannot carry min (within
   * [kWantedFloorShare x min, max]). */
  int wanted_kbps() const { return static_cast<int>(std::lround(target_)); }
  int min_kbps() const { return min_; }
  int max_kbps() const { return max_; }
  /* The delivered rate at the last overuse (0 until one): the link's estimated capacity. */
  int link_estimate_kbps() const { return link_estimate_; }
  double smoothed_delay_ms() const { return smoothed_delay_; }
  RateReason last_reason() const { return last_reason_; }
  /* Draining a standing queue (queuing delay above kDrainStart until below kDrainEnd). */
  bool draining() const { return draining_; }
  /* The probe past the link estimate proved the limit lifted (ramping at kRampLifted). */
  bool lifted() const { return lifted_; }
  /* Why the last cut happened (None before one). */
  RateReason last_cut_reason() const { return last_cut_reason_; }

private:
  double clamp(double kbps) const;
  void cut_made(Millis now); /* into [kWantedFloorShare x min, max] */
  double cut_floor(int link_kbps) const;
  void finish(double before, RateDecision *decision) const;
  void drain(Millis now, double queuing, int delivered_kbps, double drain_time_ms, RateDecision *decision);
  void end_drain(Millis now, double queuing, RateDecision *decision);
  double base_delay(Millis now, double raw);

  int min_, max_;
  double target_; /* the wanted rate (wanted_kbps()) */
  double smoothed_delay_ = 0;
  bool have_delay_ = false;
  double delivery_ratio_ = 1.0; /* smoothed delivered / sent */
  WindowedMinimum delay_base_{kBaseWindow.count()}; /* raw delays' minimum over kBaseWindow */
  WindowedMinimum backlog_base_{kBaseWindow.count()}; /* standing backlogs' minimum (ms) */
  bool have_time_ = false;
  Millis last_update_{0};
  Millis last_cut_{0};
  bool have_cut_ = false;
  double delay_at_cut_ = 0;
  Millis clear_since_{0};
  bool clear_ = false;
  Millis hold_since_{0};
  bool holding_ = false;
  Millis near_since_{0};
  bool near_ = false;
  bool draining_ = false;
  bool keyframe_after_drain_ = false; /* a deep cut's keyframe, asked for when the drain ends */
  std::vector<int> drain_delivered_; /* delivered rates during this drain: their median, the link's */
  double episode_start_kbps_ = 0; /* target when the current congestion episode began (0: none) */
  bool episode_keyframe_ = false;
  int link_estimate_ = 0;
  RateReason last_reason_ = RateReason::None;
  RateReason last_cut_reason_ = RateReason::None;
  double sent_peak_ = 0; /* recent peak of sent_kbps, decaying by half a second (0: unknown) */
  bool above_ = false;  /* clear past the band around the link estimate since above_since_ */
  Millis above_since_{0};
  double excess_kbit_ = 0; /* delivered above the estimate since then */
  bool lifted_ = false;    /* more than kLiftVolume (+ ...) of it: the limit lifted */
  bool capacity_seen_ = false; /* a capacity was measured in this session (link_estimate_ is one) */
};

}  // namespace gstmtx
