#include "stall_watchdog.h"

#include <algorithm>

namespace gstmtx {

void StallWatchdog::arm(Clock::time_point now, bool filter) {
  const std::int64_t t = ticks(now);
  armed_at_ = t;
  last_output_ = t;
  last_input_ = 0;
  filter_ = filter;
  armed_ = true;
}

bool StallWatchdog::stalled(Clock::time_point now) const {
  const std::int64_t timeout_us = timeout_ms_.load() * 1000;
  if (!armed_ || timeout_us <= 0)
    return false;
  const std::int64_t last_out = std::max(last_output_.load(), armed_at_.load());
  if (ticks(now) - last_out < timeout_us)
    return false;
  /* a filter waiting for input is starved, not stalled */
  if (filter_ && last_input_.load() <= last_out)
    return false;
  return true;
}

StallWatchdog::Millis StallWatchdog::time_left(Clock::time_point now) const {
  const std::int64_t timeout_us = timeout_ms_.load() * 1000;
  if (!armed_ || timeout_us <= 0)
    return Millis{-1};
  const std::int64_t last_out = std::max(last_output_.load(), armed_at_.load());
  const std::int64_t left_us = std::max<std::int64_t>(last_out + timeout_us - ticks(now), 0);
  return Millis{(left_us + 999) / 1000};
}

}  // namespace gstmtx
