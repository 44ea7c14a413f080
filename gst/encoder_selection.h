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
  /* The picture, for the H.264 level; 0: unknown (level 4 is assumed where one is needed). */
  int width = 0;
  int height = 0;
  int fps_n = 0;
  int fps_d = 1;
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
/* 0 frames means two seconds' worth (60 when the framerate is unknown or variable): against 1 s,
 * 43 % less bitrate at equal quality for a fixed camera's picture (docs/benchmarks.md, "Keyframe
 * interval"); keyframe-on-join gives a joining viewer its keyframe at once where the API is
 * granted, and without it a viewer waits at most 2 s (MediaMTX's own PLI period for WHIP). */
int keyframe_interval_frames(int requested, int fps_n, int fps_d);

/* Low-latency settings for a known encoder (no B-frames, zero-latency tuning, keyframe interval,
 * bitrate); an unknown encoder gets none (it is used as it comes). */
std::vector<EncoderProperty> encoder_settings(const std::string &factory, const EncoderTuning &tuning);

/* x264enc's rate buffer (vbv-buf-capacity, ms): how far above its bitrate it may spend on a frame
 * (a keyframe, a busy scene) and for how long a lowered bitrate can lag. kRateBufferMs at the
 * ceiling (`bitrate`), kAdaptedRateBufferMs while adaptive-bitrate holds the encoder below it:
 * the uplink is full then, and every ms of rate buffer spent is a ms of queue at the bottleneck
 * (docs/benchmarks.md, "The encoder's rate buffer while adapted"). */
constexpr int kRateBufferMs = 300;
constexpr int kAdaptedRateBufferMs = 120;

/* The rate properties to set on a running encoder for `kbps`, `max_kbps` being its ceiling
 * (mediamtxsink's `bitrate`): x264enc's bitrate and vbv-buf-capacity (kAdaptedRateBufferMs below
 * the ceiling), openh264enc's bitrate and max-bitrate; none for the others (v4l2h264enc takes its
 * rate as a control: mediamtxsink sets it). */
std::vector<EncoderProperty> encoder_rate_settings(const std::string &factory, int kbps, int max_kbps);
/* Caps to put after the encoder: byte-stream H.264 with the profile when one is set; for
 * v4l2h264enc also the level (it fails to negotiate without one at 1080p). */
std::string encoder_output_caps(const std::string &factory, const EncoderTuning &tuning);

/* The lowest H.264 level (as in caps: "3.1", "4", "4.2" ...) whose limits (macroblocks per frame
 * and per second, bitrate for Baseline/Main) hold the picture and bitrate; "4" when the size is
 * unknown; "5.1" at most. */
std::string h264_level(const EncoderTuning &tuning);
/* The level the Pi 4's encoder (bcm2835-codec) is given: h264_level capped at 4.2, its maximum. */
std::string v4l2h264enc_level(const EncoderTuning &tuning);
/* V4L2_MPEG_VIDEO_H264_LEVEL_* value of a level string ("4" -> 11); -1 for an unknown one. */
int v4l2_h264_level_control(const std::string &level);
/* v4l2h264enc's extra-controls, as a GstStructure string:
 *   controls,video_bitrate=<bit/s>,video_bitrate_mode=1,h264_i_frame_period=<frames>,
 *   repeat_sequence_header=1,video_b_frames=0,h264_level=<V4L2 enum>
 * (bitrate mode 1: constant bitrate, what a live stream over a fixed uplink wants). */
std::string v4l2h264enc_extra_controls(const EncoderTuning &tuning);

/* Raw caps to ask a camera source (libcamerasrc) for, so that it negotiates the size and rate
 * asked for in the layout the encoder takes without a conversion: NV12 for v4l2h264enc (the Pi
 * ISP's native output, taken by bcm2835-codec as is), I420 (YUV420) for the software encoders. */
std::string camera_source_caps(const std::string &encoder_factory, int width, int height, int fps_n, int fps_d);

}  // namespace gstmtx
