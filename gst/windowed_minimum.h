/* gst-mediamtx: the minimum of a series over a sliding time window, in amortised O(1): a deque
 * of (time, value) kept increasing in value, so its front is the window's minimum. Plain C++;
 * times in any integer unit, non-decreasing. */
#pragma once

#include <cstdint>
#include <deque>
#include <utility>

namespace gstmtx {

class WindowedMinimum {
public:
  explicit WindowedMinimum(std::int64_t window) : window_(window) {}
  /* Adds `value` at `time`; returns the minimum over (time - window, time]. */
  double add(std::int64_t time, double value) {
    while (!samples_.empty() && time - samples_.front().first > window_)
      samples_.pop_front();
    while (!samples_.empty() && samples_.back().second >= value)
      samples_.pop_back();
    samples_.emplace_back(time, value);
    return samples_.front().second;
  }
  void clear() { samples_.clear(); }

private:
  std::int64_t window_;
  std::deque<std::pair<std::int64_t, double>> samples_;
};

}  // namespace gstmtx
