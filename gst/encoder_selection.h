/* gst-mediamtx: H.264 encoder selection and low-latency tuning for mediamtxsink.
 *
 * Which encoder to use for raw video, and how to configure it, is policy: plain C++ here, with
 * the registry behind an interface (EncoderProber) so unit tests can say which encoders exist and
 * which actually open, without hardware.
 *
 *   choose_encoder("auto", prober)   -> first usable of v4l2h264enc, x264enc, openh264enc
 *   choose_encoder("x264enc", prober) -> x264enc if it exists, else an error a user can act on
 *   encoder_settings("x264enc", tuning) -> property name/value strings (gst_util_set_object_arg)
 */
#pragma once

#include <string>
#include <vector>

namespace gstmtx {

/* What the encoder must produce. bitrate_kbps and keyframe_interval are already resolved (see
 * default_bitrate_kbps / keyframe_interval_frames). */
struct EncoderTuning {
  int bitrate_kbps = 2000;
  int keyframe_interval = 30;        /* frames between keyframes */
  std::string profile = "constrained-baseline"; /* H.264 profile name as in caps; empty: encoder's choice */
};

struct EncoderProperty {
  std::string name;
  std::string value; /* as gst_util_set_object_arg parses it */
};

/* The registry as seen by encoder selection. */
class EncoderProber {
public:
  virtual ~EncoderProber() = default;
  /* an element factory with this name is registered */
  virtual bool exists(const std::string &factory) const = 0;
  /* an instance really opens (reaches READY) and takes raw video in, H.264 out */
  virtual bool usable(const std::string &factory) const = 0;
};

/* The GStreamer registry: makes the element, sets it to READY (a V4L2 encoder opens its device
 * there) and checks its pads' caps, then drops it. Call from a thread that may block briefly. */
class RegistryEncoderProber : public EncoderProber {
public:
  bool exists(const std::string &factory) const override;
  bool usable(const std::string &factory) const override;
};

struct EncoderChoice {
  std::string factory;   /* empty when no encoder could be chosen */
  std::string reason;    /* why this one ("hardware encoder", "requested") or why none */
  bool ok() const { return !factory.empty(); }
};

/* The order `auto` tries: hardware first, then software. */
const std::vector<std::string> &auto_encoder_candidates();
bool is_hardware_encoder(const std::string &factory);

/* `requested` is "auto" (or empty) or an element factory name. */
EncoderChoice choose_encoder(const std::string &requested, const EncoderProber &prober);

/* 0 kbit/s means "from the picture": 2000 at 720p30, 4000 at 1080p30, linear in pixel rate
 * between them, proportional below 720p30 (at least 150) and above 1080p30 (at most 20000). */
int default_bitrate_kbps(int width, int height, int fps_n, int fps_d);
/* 0 frames means one second's worth (30 when the framerate is unknown or variable). */
int keyframe_interval_frames(int requested, int fps_n, int fps_d);

/* Low-latency settings for a known encoder (no B-frames, zero-latency tuning, keyframe interval,
 * bitrate); an unknown encoder gets none (it is used as it comes). */
std::vector<EncoderProperty> encoder_settings(const std::string &factory, const EncoderTuning &tuning);
/* Caps to put after the encoder: byte-stream H.264 with the profile when one is set. */
std::string encoder_output_caps(const std::string &factory, const EncoderTuning &tuning);

}  // namespace gstmtx
