#include "frame_rate_floor.h"

#include <algorithm>

namespace gstmtx {

FrameRateStep FrameRateFloor::update(int wanted_kbps, int min_kbps, double input_fps) {
  FrameRateStep step;
  const bool was_lowered = lowered_;
  const double fps = input_fps > 0 ? input_fps : kDefaultFps;
  const double floor = std::min(1.0, kMinFps / fps); /* an input at kMinFps or less: never lowered */
  if (min_kbps <= 0 || wanted_kbps <= 0 || wanted_kbps >= min_kbps || floor >= 1.0)
    lowered_ = false;
  else if (wanted_kbps < kLowerBelow * min_kbps)
    lowered_ = true;
  if (lowered_) {
    fraction_ = std::clamp(static_cast<double>(wanted_kbps) / min_kbps, floor, 1.0);
  } else {
    fraction_ = 1.0;
  }
  step.fraction = fraction_;
  step.lowered = lowered_ && !was_lowered;
  step.restored = was_lowered && !lowered_;
  return step;
}

void FrameThinner::set_fraction(double fraction) {
  fraction_.store(std::clamp(fraction, 0.0, 1.0), std::memory_order_relaxed);
}

bool FrameThinner::keep() {
  const double fraction = fraction_.load(std::memory_order_relaxed);
  if (fraction >= 1.0) {
    credit_ = 0; /* a lowering starts one share after the last frame kept */
    return true;
  }
  credit_ += fraction;
  if (credit_ < 1.0 - 1e-9) /* (rounding: 3 x 1/3 is a whole frame) */
    return false;
  credit_ = std::max(0.0, credit_ - 1.0);
  return true;
}

}  // namespace gstmtx
