/* gst-mediamtx: below min-bitrate, a lower frame rate instead of a growing queue.
 *
 * Plain C++, no GStreamer. The rate controller (gst/rate_controller.h) keeps the encoder at
 * min-bitrate when the link takes less (its wanted_kbps() below min_kbps()); an encoder at a
 * constant frame rate budgets bitrate / fps bits per frame (x264enc with tune=zerolatency: the
 * caps' frame rate, not the timestamps; a V4L2 encoder: the rate it was opened with), so encoding
 * a fraction f of the frames sends f x min-bitrate. FrameRateFloor turns the wanted rate into that
 * fraction (control thread); FrameThinner keeps that share of the raw frames before the encoder,
 * evenly spaced (streaming thread).
 *
 *   FrameRateFloor floor;
 *   FrameRateStep s = floor.update(decision.wanted_kbps, min_kbps, input_fps);
 *   thinner.set_fraction(s.fraction);        // s.lowered / s.restored: tell it
 *   ... streaming thread: if (!thinner.keep()) drop the frame;
 *
 * Policy: the frame rate is lowered once the wanted rate falls under kLowerBelow x min (a dip just
 * under min while the controller probes does not), to wanted / min of the input's, never under
 * kMinFps (a picture every 200 ms: still moving, never frozen); it follows the wanted rate while
 * lowered and is back to every frame as soon as the wanted rate reaches min. The band between
 * kLowerBelow x min and min is the hysteresis: a steady link settles on one side of it. A keyframe
 * asked for meanwhile is made on the next frame the encoder gets, i.e. the next kept one.
 */
#pragma once

#include <atomic>

namespace gstmtx {

struct FrameRateStep {
  double fraction = 1.0;  /* share of the input frames to encode (1: all) */
  bool lowered = false;   /* the frame rate was lowered by this update */
  bool restored = false;  /* back to every frame by this update */
};

class FrameRateFloor {
public:
  static constexpr double kLowerBelow = 0.9; /* x min: under this the frame rate is lowered */
  static constexpr double kMinFps = 5.0;     /* never fewer frames per second than this */
  static constexpr double kDefaultFps = 30.0; /* an input of unknown (variable) frame rate */

  /* wanted_kbps: what the link takes (RateDecision::wanted_kbps); min_kbps: where the encoder
   * stays; input_fps: the input's frame rate (<= 0: unknown). */
  FrameRateStep update(int wanted_kbps, int min_kbps, double input_fps);
  void reset() { lowered_ = false; fraction_ = 1.0; }
  bool lowered() const { return lowered_; }
  double fraction() const { return fraction_; }

private:
  bool lowered_ = false;
  double fraction_ = 1.0;
};

/* Keeps a share of the frames, evenly spaced: set_fraction from any thread, keep() from the
 * streaming thread only. */
class FrameThinner {
public:
  void set_fraction(double fraction);
  double fraction() const { return fraction_.load(std::memory_order_relaxed); }
  /* This frame goes to the encoder (false: drop it). */
  bool keep();

private:
  std::atomic<double> fraction_{1.0};
  double credit_ = 0; /* streaming thread: a frame is kept when a whole one has accrued */
};

}  // namespace gstmtx
