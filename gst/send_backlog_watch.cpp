#include "send_backlog_watch.h"

#include <algorithm>

namespace gstmtx {

BacklogReading SendBacklogWatch::sample(Millis now, std::uint64_t written, std::int64_t backlog) {
  BacklogReading reading;
  backlog = std::max<std::int64_t>(backlog, 0);
  if (!samples_.empty() && (now < samples_.back().now || written < samples_.back().written))
    samples_.clear(); /* a new connection (or a clock step): start again */
  samples_.push_back({now, written, backlog});
  while (samples_.size() > 2 && now - samples_[1].now >= kRateWindow)
    samples_.pop_front();
  const Sample &first = samples_.front();
  const auto span = now - first.now;
  /* a rate over less than 3/4 of the window is too noisy (ACK clocking, one frame's write) */
  if (span.count() * 4 < kRateWindow.count() * 3)
    return reading;
  /* what left the socket since `from` (written meanwhile minus the backlog's growth), kbit/s */
  const auto rate_since = [&](const Sample &from) {
    const double drained =
        static_cast<double>(written - from.written) - static_cast<double>(backlog - from.backlog);
    return std::max(0.0, drained) * 8.0 / static_cast<double>(std::max<Millis::rep>((now - from.now).count(), 1));
  };
  const double delivered = rate_since(first);
  reading.valid = true;
  reading.delivered_kbps = static_cast<int>(delivered);
  if (reading.delivered_kbps <= 0)
    return reading;
  reading.queue_ms = static_cast<double>(backlog) * 8.0 / reading.delivered_kbps;
  /* the standing part: the least backlog over kStandingWindow; growing: now above its start */
  std::int64_t standing = backlog, oldest = backlog;
  for (auto it = samples_.rbegin(); it != samples_.rend() && now - it->now <= kStandingWindow; ++it) {
    standing = std::min(standing, it->backlog);
    oldest = it->backlog;
  }
  reading.standing_ms = static_cast<double>(standing) * 8.0 / reading.delivered_kbps;
  reading.growing = backlog > oldest;
  reading.overloaded = reading.standing_ms > kOverloadMs && reading.growing;
  return reading;
}

}  // namespace gstmtx
