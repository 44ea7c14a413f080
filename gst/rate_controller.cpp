#include "rate_controller.h"

#include <algorithm>
#include <cmath>

namespace gstmtx {

namespace {
/* weight of a new delay sample in the smoothed delay (reports come every 100-250 ms) */
constexpr double kDelaySmoothing = 0.5;
/* weight of a new delivered/sent ratio: ~0.6 s of reports, so a keyframe's burst is not a queue */
constexpr double kRatioSmoothing = 0.3;
/* a cut within kHoldAfterCut needs the delay this much above the one at the last cut */
constexpr double kDelayStillGrowing = 1.2;
/* a report delivering less than this share of what was sent holds the rate (no probe on it) */
constexpr double kShortfallHold = 0.9;
constexpr double kRatioMax = 1.5;
/* how fast the sent peak forgets (per second) */
constexpr double kSentPeakDecayPerSecond = 0.5;
/* longest gap between updates that still counts as time on a clear path */
constexpr std::chrono::milliseconds kMaxStep{1000};
/* measurements of a link's capacity differ by this much from one report to the next */
constexpr double kCapacityNoise = 1.05;
/* the delivered rates of a drain kept for its median (the latest: a drain at the floor may last) */
constexpr std::size_t kDrainSamples = 50;
}  // namespace

const char *rate_reason_name(RateReason reason) {
  switch (reason) {
  case RateReason::Delay: return "delay";
  case RateReason::Loss: return "loss";
  case RateReason::Probe: return "probe";
  case RateReason::None: break;
  }
  return "none";
}

double DelayGradientQueue::update(double gradient_ms_per_s, std::chrono::milliseconds dt) {
  const double dt_s = std::chrono::duration<double>(std::min(dt, kMaxStep)).count();
  if (std::isfinite(gradient_ms_per_s) && dt_s > 0)
    queue_ms_ = std::clamp(queue_ms_ * std::exp(-dt_s / kLeakSeconds) +
                               std::min(gradient_ms_per_s, std::max(0.0, gradient_ms_per_s - kDeadband)) * dt_s,
                           0.0, kMaxMs);
  return queue_ms_;
}

RateController::RateController(int min_kbps, int max_kbps) : min_(min_kbps), max_(max_kbps), target_(max_kbps) {
  set_bounds(min_kbps, max_kbps);
  target_ = max_;
}

void RateController::set_bounds(int min_kbps, int max_kbps) {
  max_ = std::max(1, max_kbps);
  min_ = std::clamp(min_kbps, 1, max_);
  target_ = clamp(target_);
}

void RateController::reset() {
  const int min = min_, max = max_;
  *this = RateController(min, max);
}

double RateController::clamp(double kbps) const {
  return std::clamp(kbps, std::max(1.0, kWantedFloorShare * min_), static_cast<double>(max_));
}

/* How far a cut may take the wanted rate: down to min, below it only as far as kBackoff x the
 * link's measured rate (`link_kbps`; 0: unknown) when that is below min. */
double RateController::cut_floor(int link_kbps) const {
  return link_kbps > 0 ? std::min(static_cast<double>(min_), kBackoff * link_kbps) : min_;
}

/* A cut was made at `now`: the hold after it starts, with the delay it was made at, and delivery
 * is judged again on what is sent from now on. */
void RateController::cut_made(Millis now) {
  last_cut_ = now;
  have_cut_ = true;
  delay_at_cut_ = smoothed_delay_;
  delivery_ratio_ = 1.0;
}

/* The rates of a decision made by an update that started at `before` (the wanted rate then). */
void RateController::finish(double before, RateDecision *decision) const {
  decision->target_kbps = target_kbps();
  decision->wanted_kbps = wanted_kbps();
  decision->changed = decision->target_kbps != std::max(min_, static_cast<int>(std::lround(before)));
}

/* The queuing part of a raw delay: above the minimum of the last kBaseWindow. */
double RateController::base_delay(Millis now, double raw) { return delay_base_.add(now.count(), raw); }

/* A standing queue: drain it within about drain_time_ms (delivered - queue / drain time). */
void RateController::drain(Millis now, double queuing, int delivered_kbps, double drain_time_ms,
                           RateDecision *decision) {
  if (!draining_) {
    draining_ = true;
    drain_delivered_.clear();
    if (episode_start_kbps_ <= 0) {
      episode_start_kbps_ = target_;
      episode_keyframe_ = false;
    }
  }
  clear_ = holding_ = near_ = false;
  /* the median: a smoothed delivered rate lags the cut (too high at first), a delay estimate
   * that lags (a delay gradient) still reads a queue once the bottleneck's has gone and only the
   * lowered target is delivered (too low at the end) */
  if (drain_delivered_.size() >= kDrainSamples)
    drain_delivered_.erase(drain_delivered_.begin());
  drain_delivered_.push_back(delivered_kbps);
  std::vector<int> sorted = drain_delivered_;
  std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
  link_estimate_ = sorted[sorted.size() / 2];
  const double delivered = delivered_kbps;
  /* the lower of the median and this sample: a tbf's burst makes single samples of a slow link look
   * fast, and a link just under min must still take the drain below it */
  const int link_kbps = std::min(link_estimate_, delivered_kbps);
  const double next = clamp(std::max(cut_floor(link_kbps), delivered * (1.0 - queuing / drain_time_ms)));
  if (next < target_) {
    target_ = next;
    decision->reason = RateReason::Delay;
    last_reason_ = last_cut_reason_ = decision->reason;
  }
  last_cut_ = now;
  have_cut_ = true;
  delivery_ratio_ = 1.0;
  if (!episode_keyframe_ && target_ < 0.5 * episode_start_kbps_) {
    /* the keyframe waits for the queue to empty: sent now, it would only lengthen it (TCP) or
     * overflow a bottleneck already full (UDP) */
    keyframe_after_drain_ = true;
    episode_keyframe_ = true;
  }
}

/* Drained: just under the rate the link carried meanwhile; the hold after a cut starts now. */
void RateController::end_drain(Millis now, double queuing, RateDecision *decision) {
  draining_ = false;
  if (keyframe_after_drain_) {
    decision->deep_cut = true;
    keyframe_after_drain_ = false;
  }
  clear_ = holding_ = near_ = false;
  const double resume = clamp(kBackoff * link_estimate_);
  if (resume > target_) {
    target_ = resume;
    decision->reason = RateReason::Probe;
    last_reason_ = decision->reason;
  }
  last_cut_ = now;
  smoothed_delay_ = std::max(queuing, 0.0); /* the drain's delays are history */
  delay_at_cut_ = smoothed_delay_;
}

RateDecision RateController::update_backlog(Millis now, double queue_ms, int delivered_kbps, bool overloaded,
                                            double standing_ms, bool growing) {
  const double before = target_;
  RateDecision decision;
  const double standing = standing_ms >= 0 ? standing_ms - backlog_base_.add(now.count(), standing_ms) : 0;
  if (delivered_kbps > 0 && queue_ms >= 0) {
    if (overloaded || (draining_ && queue_ms > kDrainEnd)) {
      drain(now, queue_ms, delivered_kbps, kQuickDrainTime, &decision);
    } else if (draining_) {
      end_drain(now, queue_ms, &decision);
    } else if (growing && standing > kProbeQueue && link_estimate_ > 0 && target_ > kNearCap * link_estimate_ &&
               (!have_cut_ || now - last_cut_ >= kMinCutInterval)) {
      /* a probe past the estimate found the link full: just under it, no drain needed */
      const double next = clamp(kBackoff * std::min(target_, static_cast<double>(delivered_kbps)));
      if (next < target_) {
        target_ = next;
        decision.reason = RateReason::Delay;
        last_reason_ = last_cut_reason_ = decision.reason;
      }
      link_estimate_ = delivered_kbps;
      clear_ = holding_ = near_ = false;
      cut_made(now);
    }
  }
  finish(before, &decision);
  return decision;
}

RateDecision RateController::update(const RateFeedback &fb) {
  const double before = target_;
  Millis step{0};
  if (have_time_ && fb.now > last_update_)
    step = std::min(fb.now - last_update_, kMaxStep);
  have_time_ = true;
  last_update_ = fb.now;

  double queuing = -1; /* this report's queuing delay, ms (< 0: none) */
  if (fb.queuing_delay_ms >= 0) {
    queuing = fb.queuing_delay_ms - base_delay(fb.now, fb.queuing_delay_ms);
    smoothed_delay_ = have_delay_ ? smoothed_delay_ + kDelaySmoothing * (queuing - smoothed_delay_) : queuing;
    have_delay_ = true;
  }

  if (fb.sent_kbps > 0) {
    const double decay = std::pow(kSentPeakDecayPerSecond, std::chrono::duration<double>(step).count());
    sent_peak_ = std::max(static_cast<double>(fb.sent_kbps), sent_peak_ * decay);
  }
  bool delivering = true; /* this report shows no shortfall */
  if (fb.sent_kbps > 0 && fb.delivered_kbps > 0) {
    /* above 1 while a queue drains: kept (up to kRatioMax), so a burst and its drain average out */
    const double ratio = std::min(kRatioMax, static_cast<double>(fb.delivered_kbps) / fb.sent_kbps);
    delivery_ratio_ += kRatioSmoothing * (ratio - delivery_ratio_);
    delivering = ratio >= kShortfallHold;
  }
  const bool short_delivery = std::min(delivery_ratio_, 1.0) < kShortfall;
  /* a measured capacity (gst/twcc_estimator.h): the link's rate; a target above it is overuse
   * (the ramp went past a capacity it could not measure while no queue formed) */
  const bool above_capacity = fb.capacity_kbps > 0 && target_ > fb.capacity_kbps;
  if (fb.capacity_kbps > 0 && !draining_) {
    link_estimate_ = fb.capacity_kbps;
    capacity_seen_ = true;
  }
  const bool delay_over =
      (have_delay_ && smoothed_delay_ > kDelayHigh) || short_delivery || fb.delay_overuse || above_capacity;
  const bool loss_over = fb.loss > kLossHigh;
  const bool delay_clear = !have_delay_ || smoothed_delay_ < kDelayLow;
  const bool loss_clear = fb.loss < kLossLow; /* no report counts as clear */

  RateDecision decision;
  /* the queue to drain: the standing one, or the bottleneck's own while it is seen growing */
  double drain_queue = queuing;
  const bool queue_growing = fb.delay_overuse || above_capacity;
  if (fb.queue_now_ms >= 0 && (queue_growing || draining_))
    drain_queue = std::max(drain_queue, fb.queue_now_ms);
  /* the link's rate while the queue stands: what was delivered, or a measured capacity when lower
   * (a delivered rate averages over the time before the cut too) */
  int drain_rate = fb.delivered_kbps;
  if (fb.capacity_kbps > 0 && (drain_rate <= 0 || fb.capacity_kbps < drain_rate))
    drain_rate = fb.capacity_kbps;
  const bool can_drain = drain_queue >= 0 && drain_rate > 0;
  /* caught growing: drained quickly, as update_backlog does */
  const bool growing = queue_growing && fb.queue_now_ms > queuing;
  if (can_drain && drain_queue > (draining_ ? kDrainEnd : kDrainStart)) {
    drain(fb.now, drain_queue, drain_rate, growing ? kQuickDrainTime : kDrainTime, &decision);
  } else if (draining_) {
    end_drain(fb.now, queuing, &decision);
  } else if (delay_over || loss_over) {
    clear_ = holding_ = near_ = false;
    const Millis since_cut = fb.now - last_cut_;
    /* after a cut the queue needs time to drain: another one only while it keeps growing, or
     * while the loss goes on (a report after the cut saw what was sent after it) */
    /* a cut to below a measured capacity needs no second one while the queue drains (the
     * encoder takes a moment to follow, the feedback lags the queue) */
    /* (within kCapacityNoise: two measurements of one link differ by a few %) */
    const bool below_capacity = fb.capacity_kbps > 0 && target_ <= kCapacityNoise * kBackoff * fb.capacity_kbps + 1;
    const bool may_cut = !have_cut_ || since_cut >= kHoldAfterCut ||
                         (since_cut >= kMinCutInterval &&
                          (above_capacity || (!below_capacity && (loss_over || smoothed_delay_ >
                                                                                   delay_at_cut_ * kDelayStillGrowing))));
    if (may_cut) {
      if (episode_start_kbps_ <= 0) {
        episode_start_kbps_ = target_;
        episode_keyframe_ = false;
      }
      double next = target_;
      if (delay_over) {
        double basis = fb.delivered_kbps > 0 ? std::min(target_, static_cast<double>(fb.delivered_kbps)) : target_;
        if (fb.capacity_kbps > 0) /* a measured link rate: below it */
          basis = std::min(basis, static_cast<double>(fb.capacity_kbps));
        next = kBackoff * basis;
        decision.reason = RateReason::Delay;
      }
      if (loss_over) {
        double by_loss = target_ * (1.0 - 0.5 * std::min(fb.loss, 1.0));
        /* a bottleneck dropping what exceeds it (not random loss): below what it carried */
        if (short_delivery && fb.delivered_kbps > 0)
          by_loss = std::min(by_loss, kBackoff * fb.delivered_kbps);
        if (!delay_over || by_loss < next) {
          next = by_loss;
          decision.reason = RateReason::Loss;
        }
      }
      /* below min only when the link measured is (a loss cut near min on a wider link is not) */
      const int link_kbps = fb.capacity_kbps > 0 ? fb.capacity_kbps : fb.delivered_kbps;
      target_ = std::min(target_, std::max(clamp(next), cut_floor(link_kbps)));
      if (fb.capacity_kbps > 0)
        link_estimate_ = fb.capacity_kbps;
      else if (fb.delivered_kbps > 0)
        link_estimate_ = fb.delivered_kbps;
      else
        link_estimate_ = static_cast<int>(target_ / kBackoff);
      cut_made(fb.now);
      last_reason_ = decision.reason;
      last_cut_reason_ = decision.reason;
      if (!episode_keyframe_ && target_ < 0.5 * episode_start_kbps_) {
        /* into a bottleneck queue already building up, the keyframe waits for it to empty */
        if (fb.queue_now_ms > kDrainEnd)
          keyframe_after_drain_ = true;
        else
          decision.deep_cut = true;
        episode_keyframe_ = true;
      }
    }
  } else if (delay_clear && loss_clear && delivering) {
    holding_ = false;
    if (!clear_) {
      clear_ = true;
      clear_since_ = fb.now;
      lifted_ = above_ = false;
    }
    episode_start_kbps_ = 0;
    if (target_ < max_ && step.count() > 0) {
      const double clear_s = std::chrono::duration<double>(fb.now - clear_since_).count();
      double rate = std::min(kRampMax, kRampStart + kRampAccel * clear_s);
      /* near the rate the link carried at the last cut, gently: that is where it may be full */
      const bool near = link_estimate_ > 0 && target_ > kNearLow * link_estimate_ &&
                        target_ < kNearHigh * link_estimate_;
      if (near && !near_) {
        near_ = true;
        near_since_ = fb.now;
      } else if (!near) {
        near_ = false;
      }
      bool patient = near && fb.now - near_since_ < kNearPatience;
      if (capacity_seen_) {
        /* the link's rate was measured (not guessed from a cut): sat below it while fresh, now
         * probe past it at kRampNear up to kCapacityProbeBand x it, then as past any band */
        patient = false;
        if (target_ > kNearLow * link_estimate_ && target_ < kCapacityProbeBand * link_estimate_) {
          rate = std::min(rate, kRampNear);
          clear_since_ = fb.now;
        }
      }
      if (patient) {
        rate = std::min(rate, kRampNear);
        clear_since_ = fb.now;
      }
      /* below min, near the link (up to kNearHigh x it) the probe stays at kRampNear however long
       * the path is clear: a probe there that overshoots while the feedback lags climbs over min and
       * brings back every frame for a moment (the frame rate flips on a steady link) */
      if (target_ < min_ && link_estimate_ > 0 && target_ > kNearLow * link_estimate_ &&
          target_ < kNearHigh * link_estimate_) {
        rate = std::min(rate, kRampNear);
        clear_since_ = fb.now;
      }
      /* past the band with the path clear: slow again from kRampStart (the link was full near the
       * estimate), until more was delivered above the estimate than a tbf's burst and queue can
       * hide (the sum is of what the feedback reports: its lag does not matter); then the limit
       * has lifted: kRampLifted */
      const double step_s = std::chrono::duration<double>(step).count();
      const double band_top = capacity_seen_ && target_ >= min_ ? kCapacityProbeBand : kNearHigh;
      if (!above_ && link_estimate_ > 0 && target_ >= band_top * link_estimate_) {
        above_ = true;
        above_since_ = fb.now;
        excess_kbit_ = 0;
      }
      if (above_ && !lifted_) {
        if (fb.delivered_kbps > link_estimate_)
          excess_kbit_ += (fb.delivered_kbps - link_estimate_) * step_s;
        const double past_s = std::chrono::duration<double>(fb.now - above_since_).count();
        rate = std::max(rate, std::min(kRampMax, kRampStart + kRampAccel * past_s));
        if (excess_kbit_ >= kLiftVolume + kLiftVolumeTime * link_estimate_)
          lifted_ = true;
      }
      if (lifted_)
        rate = std::max(rate, kRampLifted);
      double next = target_ * std::pow(1.0 + rate, step_s);
      if (patient)
        next = std::min(next, std::max(target_, kNearCap * link_estimate_));
      if (sent_peak_ > 0)
        next = std::min(next, std::max(target_, kSentHeadroom * sent_peak_));
      if (fb.capacity_kbps > 0) /* a measured link rate: no probe past it is needed */
        next = std::min(next, std::max(target_, kCapacityShare * fb.capacity_kbps));
      target_ = clamp(next);
      decision.reason = RateReason::Probe;
      last_reason_ = decision.reason;
    }
  } else {
    /* hold: between the thresholds; the ramp restarts only when that lasts */
    if (!holding_) {
      holding_ = true;
      hold_since_ = fb.now;
    }
    if (fb.now - hold_since_ >= kHoldPatience)
      clear_ = false;
  }

  /* a deep cut's keyframe held back by a queue (not a drain: end_drain sends it) */
  if (keyframe_after_drain_ && !draining_ && fb.queue_now_ms >= 0 && fb.queue_now_ms <= kDrainEnd) {
    decision.deep_cut = true;
    keyframe_after_drain_ = false;
  }

  finish(before, &decision);
  return decision;
}

}  // namespace gstmtx
