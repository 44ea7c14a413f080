#include "twcc_estimator.h"

#include <algorithm>
#include <cmath>

namespace gstmtx {

namespace {
/* how long reported packets are kept (send time): the loss and rate windows and late reports */
constexpr std::int64_t kKeepUs = 2'000'000;
constexpr std::size_t kMaxPackets = 16384;
/* a group this many times the typical one is a burst (a keyframe): its jump is its own size
 * queued at the bottleneck, not a rate above the link, and is left out of the trend */
constexpr double kBurstGroupFactor = 2.5;
constexpr double kTypicalSmoothing = 0.1;
constexpr std::size_t kTypicalAfter = 10; /* groups before "typical" means something */
/* a busy span this long gives a capacity sample without waiting for the queue to empty */
constexpr std::int64_t kBusyMaxSpan = 100'000;
}  // namespace

const char *delay_trend_name(DelayTrend trend) {
  switch (trend) {
  case DelayTrend::Normal: return "normal";
  case DelayTrend::Overuse: return "overuse";
  case DelayTrend::Underuse: return "underuse";
  case DelayTrend::Unknown: break;
  }
  return "unknown";
}

void TwccEstimator::restart_delay() {
  group_ = Group();
  have_prev_group_ = false;
  accumulated_ = smoothed_ = 0;
  trend_points_.clear();
  overuse_since_ = -1;
  last_trend_ = 0;
  base_.clear();
  standing_.clear();
  busy_start_ = busy_last_ = -1;
  busy_bytes_ = 0;
  last_busy_send_ = last_busy_arrival_ = -1;
  last_busy_queue_ = 0;
  groups_seen_ = 0;
  typical_group_bytes_ = 0;
  estimate_.have_delay = false;
  estimate_.trend = DelayTrend::Unknown;
  estimate_.trend_ms_per_s = 0;
}

void TwccEstimator::add(const std::vector<TwccPacket> &packets) {
  std::vector<std::pair<std::int64_t, Record>> received;
  for (const TwccPacket &p : packets) {
    if (p.send_us < 0)
      continue; /* not one we know the send time of */
    std::int64_t ext = p.seq;
    if (have_seq_)
      ext = last_ext_ + static_cast<std::int16_t>(static_cast<std::uint16_t>(p.seq - static_cast<std::uint16_t>(last_ext_)));
    if (!have_seq_ || ext > last_ext_)
      last_ext_ = ext;
    have_seq_ = true;
    auto it = packets_.find(ext);
    if (it != packets_.end()) {
      /* reported before: a duplicate, or a packet reported lost that arrived after all */
      if (it->second.arrival_us >= 0 || p.arrival_us < 0)
        continue;
      it->second.arrival_us = p.arrival_us;
    } else {
      it = packets_.emplace(ext, Record{p.send_us, p.arrival_us, p.size}).first;
    }
    newest_send_ = std::max(newest_send_, p.send_us);
    if (p.arrival_us >= 0)
      received.emplace_back(ext, it->second);
  }
  /* the delay in send order; one that arrived after later ones were taken (reordered, or
   * reported lost first) counts for the rates and the loss only */
  std::sort(received.begin(), received.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
  for (const auto &[ext, record] : received) {
    if (ext <= delay_ext_)
      continue;
    add_received(ext, record);
  }
  while (!packets_.empty() &&
         (packets_.size() > kMaxPackets || newest_send_ - packets_.begin()->second.send_us > kKeepUs))
    packets_.erase(packets_.begin());
  update_rates();
  update_loss();
}

void TwccEstimator::add_received(std::int64_t ext, const Record &r) {
  if (delay_ext_ >= 0 && newest_arrival_ >= 0) {
    /* either clock jumped (a receiver clock reset, a reference time wrap, a long pause) */
    const Micros variation = (r.arrival_us - newest_arrival_) - (r.send_us - last_delay_send_);
    if (std::llabs(variation) > kMaxGap || std::llabs(r.send_us - last_delay_send_) > kMaxGap)
      restart_delay();
  }
  delay_ext_ = ext;
  newest_arrival_ = r.arrival_us;
  last_delay_send_ = r.send_us;

  const double owd_ms = static_cast<double>(r.arrival_us - r.send_us) / 1000.0;
  const double queue = owd_ms - base_.add(r.arrival_us, owd_ms);
  estimate_.queue_ms = queue;
  estimate_.standing_queue_ms = standing_.add(r.arrival_us, queue);

  update_busy(r.send_us, r.arrival_us, r.size, queue);

  if (group_.open && r.send_us - group_.first_send <= kBurst) {
    group_.last_send = std::max(group_.last_send, r.send_us);
    group_.arrival = std::max(group_.arrival, r.arrival_us);
    group_.bytes += r.size;
    group_.queue_ms = queue;
    return;
  }
  if (group_.open)
    complete_group(group_);
  group_ = Group{r.send_us, r.send_us, r.arrival_us, r.size, queue, true};
}

void TwccEstimator::complete_group(const Group &g) {
  if (!have_prev_group_) {
    prev_group_ = g;
    have_prev_group_ = true;
    first_arrival_ = g.arrival;
    return;
  }
  const double d = static_cast<double>((g.arrival - prev_group_.arrival) - (g.last_send - prev_group_.last_send)) / 1000.0;
  const bool burst = groups_seen_ >= kTypicalAfter && g.bytes > kBurstGroupFactor * typical_group_bytes_;
  if (!burst) {
    typical_group_bytes_ = groups_seen_ == 0 ? g.bytes
                                             : typical_group_bytes_ + kTypicalSmoothing * (g.bytes - typical_group_bytes_);
    accumulated_ += d;
  } else if (d < 0) {
    accumulated_ += d; /* a burst that arrived early is still a drain */
  }
  groups_seen_++;
  smoothed_ = kSmoothing * smoothed_ + (1.0 - kSmoothing) * accumulated_;
  prev_group_ = g;
  const double t_ms = static_cast<double>(g.arrival - first_arrival_) / 1000.0;
  trend_points_.emplace_back(t_ms, smoothed_);
  while (trend_points_.size() > kTrendGroups)
    trend_points_.pop_front();
  estimate_.have_delay = true;
  if (trend_points_.size() < kTrendGroups / 2)
    return;

  /* least squares: slope of the smoothed accumulated delay over arrival time */
  double mean_t = 0, mean_y = 0;
  for (const auto &[t, y] : trend_points_) {
    mean_t += t;
    mean_y += y;
  }
  mean_t /= trend_points_.size();
  mean_y /= trend_points_.size();
  double num = 0, den = 0;
  for (const auto &[t, y] : trend_points_) {
    num += (t - mean_t) * (y - mean_y);
    den += (t - mean_t) * (t - mean_t);
  }
  const double trend = den > 0 ? num / den * 1000.0 : 0.0; /* ms per s */
  estimate_.trend_ms_per_s = trend;

  /* the adaptive threshold: follows |trend| (not a far outlier), slowly up, quickly down */
  if (last_threshold_update_ >= 0) {
    const double dt = std::min(0.1, static_cast<double>(g.arrival - last_threshold_update_) / 1e6);
    const double magnitude = std::fabs(trend);
    if (dt > 0 && magnitude - threshold_ < kThresholdMaxStep) {
      const double k = magnitude > threshold_ ? kThresholdUp : kThresholdDown;
      threshold_ += std::min(1.0, k * dt) * (magnitude - threshold_);
      threshold_ = std::clamp(threshold_, kThresholdMin, kThresholdMax);
    }
  }
  last_threshold_update_ = g.arrival;
  estimate_.threshold_ms_per_s = threshold_;

  if (trend > threshold_ && g.queue_ms > kOveruseMinQueue) {
    if (overuse_since_ < 0)
      overuse_since_ = g.arrival;
    /* GCC: overuse once it has lasted, unless the growth is already slowing */
    if (g.arrival - overuse_since_ >= kOveruseTime && trend >= 0.9 * last_trend_)
      estimate_.trend = DelayTrend::Overuse;
    else if (estimate_.trend != DelayTrend::Overuse)
      estimate_.trend = DelayTrend::Normal;
  } else if (trend < -threshold_) {
    overuse_since_ = -1;
    estimate_.trend = DelayTrend::Underuse;
  } else {
    overuse_since_ = -1;
    estimate_.trend = DelayTrend::Normal;
  }
  last_trend_ = trend;
}

/* Capacity: while packets keep waiting at the bottleneck it sends at its own rate. Two packets in a
 * row are a busy pair when the second one waited (queue above kBusyQueue) and was sent before the
 * first left the queue (the link never idled between them). */
void TwccEstimator::update_busy(Micros send_us, Micros arrival_us, std::uint32_t size, double queue_ms) {
  const bool busy_pair = queue_ms > kBusyQueue && last_busy_arrival_ >= 0 && arrival_us >= last_busy_arrival_ &&
                         static_cast<double>(send_us - last_busy_send_) / 1000.0 < last_busy_queue_;
  auto close = [&] {
    const Micros span = busy_last_ - busy_start_;
    if (busy_start_ >= 0 && span >= kBusyMinSpan && busy_bytes_ > 0) {
      const double kbps = static_cast<double>(busy_bytes_) * 8.0 * 1000.0 / static_cast<double>(span);
      capacity_samples_.emplace_back(busy_last_, kbps);
      while (capacity_samples_.size() > kBusySamples)
        capacity_samples_.pop_front();
    }
    busy_start_ = busy_last_ = -1;
    busy_bytes_ = 0;
  };
  if (busy_pair) {
    if (busy_start_ < 0) {
      busy_start_ = last_busy_arrival_;
      busy_bytes_ = 0;
    }
    busy_bytes_ += size;
    busy_last_ = arrival_us;
    if (busy_last_ - busy_start_ >= kBusyMaxSpan) {
      close();
      busy_start_ = busy_last_ = arrival_us; /* a standing queue: the next sample starts here */
    }
  } else {
    close();
  }
  last_busy_send_ = send_us;
  last_busy_arrival_ = arrival_us;
  last_busy_queue_ = queue_ms;
}

void TwccEstimator::update_rates() {
  /* capacity: the median of the recent busy spans */
  while (!capacity_samples_.empty() && newest_arrival_ - capacity_samples_.front().first > kCapacityMaxAge)
    capacity_samples_.pop_front();
  if (capacity_samples_.empty()) {
    estimate_.capacity_kbps = 0;
  } else {
    std::vector<double> values;
    for (const auto &s : capacity_samples_)
      values.push_back(s.second);
    std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
    estimate_.capacity_kbps = static_cast<int>(std::lround(values[values.size() / 2]));
  }

  /* delivered over the arrival span of the packets that arrived in the last kRateWindow; sent
   * over the send span of the same packets */
  Micros newest = -1;
  for (const auto &[ext, r] : packets_)
    newest = std::max(newest, r.arrival_us);
  if (newest < 0)
    return;
  Micros first_arrival = newest, first_send = -1, last_send = -1;
  std::uint64_t bytes = 0, first_bytes = 0;
  for (const auto &[ext, r] : packets_) {
    if (r.arrival_us < 0 || newest - r.arrival_us > kRateWindow)
      continue;
    bytes += r.size;
    if (r.arrival_us <= first_arrival) {
      first_arrival = r.arrival_us;
      first_bytes = r.size;
    }
    first_send = first_send < 0 ? r.send_us : std::min(first_send, r.send_us);
    last_send = std::max(last_send, r.send_us);
  }
  /* the first packet's bytes arrived before the span began */
  const Micros arrival_span = newest - first_arrival, send_span = last_send - first_send;
  if (arrival_span < kRateWindow / 4 || send_span <= 0 || bytes <= first_bytes)
    return;
  estimate_.delivered_kbps = static_cast<int>((bytes - first_bytes) * 8.0 * 1000.0 / arrival_span);
  std::uint64_t sent_bytes = 0;
  for (const auto &[ext, r] : packets_)
    if (r.send_us > first_send && r.send_us <= last_send)
      sent_bytes += r.size;
  estimate_.sent_kbps = static_cast<int>(sent_bytes * 8.0 * 1000.0 / send_span);
}

void TwccEstimator::update_loss() {
  std::size_t total = 0, lost = 0;
  estimate_.newest_send_us = newest_send_;
  estimate_.last_lost_send_us = -1;
  for (auto it = packets_.rbegin(); it != packets_.rend(); ++it) {
    if (newest_send_ - it->second.send_us > kLossWindow)
      break;
    total++;
    if (it->second.arrival_us < 0) {
      lost++;
      estimate_.last_lost_send_us = std::max(estimate_.last_lost_send_us, it->second.send_us);
    }
  }
  if (total > 0)
    estimate_.loss = static_cast<double>(lost) / static_cast<double>(total);
}

}  // namespace gstmtx
