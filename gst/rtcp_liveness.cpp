#include "rtcp_liveness.h"

#include <algorithm>

namespace gstmtx {

void RtcpLiveness::report(Clock::time_point now) {
  std::lock_guard<std::mutex> guard(lock_);
  if (reports_ > 0 || armed_) {
    recent_[next_] = std::chrono::duration_cast<Millis>(now - last_);
    next_ = (next_ + 1) % recent_.size();
  }
  ++reports_;
  last_ = now;
}

void RtcpLiveness::arm(Clock::time_point now) {
  std::lock_guard<std::mutex> guard(lock_);
  armed_ = true;
  last_ = std::max(last_, now);
}

void RtcpLiveness::reset() {
  std::lock_guard<std::mutex> guard(lock_);
  armed_ = false;
  reports_ = 0;
  last_ = {};
  recent_.fill(Millis{0});
  next_ = 0;
}

RtcpLiveness::Millis RtcpLiveness::bound_locked() const {
  Millis longest = *std::max_element(recent_.begin(), recent_.end());
  return std::max(min_silence_, longest * kIntervalFactor);
}

bool RtcpLiveness::silent(Clock::time_point now) const {
  std::lock_guard<std::mutex> guard(lock_);
  if (!armed_ && reports_ < 2)
    return false;
  return now - last_ > bound_locked();
}

RtcpLiveness::Millis RtcpLiveness::silence_bound() const {
  std::lock_guard<std::mutex> guard(lock_);
  return bound_locked();
}

bool RtcpLiveness::watching() const {
  std::lock_guard<std::mutex> guard(lock_);
  return armed_ || reports_ >= 2;
}

}  // namespace gstmtx
