#include "encoder_selection.h"

#include <gst/gst.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>

namespace gstmtx {

namespace {

constexpr double kPixelRate720p30 = 1280.0 * 720.0 * 30.0;
constexpr double kPixelRate1080p30 = 1920.0 * 1080.0 * 30.0;
constexpr int kKbps720p30 = 2000;
constexpr int kKbps1080p30 = 4000;

/* Releases an element made only for probing, in NULL state. */
struct ProbeElement {
  GstElement *element = nullptr;
  ~ProbeElement() {
    if (element) {
      gst_element_set_state(element, GST_STATE_NULL);
      gst_object_unref(element);
    }
  }
};

bool pad_caps_can_intersect(GstElement *element, const char *pad_name, const char *wanted) {
  g_autoptr(GstPad) pad = gst_element_get_static_pad(element, pad_name);
  if (!pad)
    return false;
  g_autoptr(GstCaps) caps = gst_pad_query_caps(pad, nullptr);
  g_autoptr(GstCaps) want = gst_caps_from_string(wanted);
  return caps && want && gst_caps_can_intersect(caps, want);
}

}  // namespace

bool RegistryEncoderProber::exists(const std::string &factory) const {
  g_autoptr(GstElementFactory) f = gst_element_factory_find(factory.c_str());
  return f != nullptr;
}

bool RegistryEncoderProber::usable(const std::string &factory) const {
  g_autoptr(GstElementFactory) f = gst_element_factory_find(factory.c_str());
  if (!f)
    return false;
  const char *klass = gst_element_factory_get_metadata(f, GST_ELEMENT_METADATA_KLASS);
  if (!klass || !strstr(klass, "Encoder") || !strstr(klass, "Video"))
    return false;
  ProbeElement probe;
  probe.element = gst_element_factory_make(factory.c_str(), nullptr);
  if (!probe.element)
    return false;
  gst_object_ref_sink(probe.element);
  if (gst_element_set_state(probe.element, GST_STATE_READY) == GST_STATE_CHANGE_FAILURE)
    return false;
  /* In READY a V4L2 encoder has opened its device and reports what it really takes. */
  return pad_caps_can_intersect(probe.element, "sink", "video/x-raw") &&
         pad_caps_can_intersect(probe.element, "src", "video/x-h264");
}

const std::vector<std::string> &auto_encoder_candidates() {
  /* never destroyed: a control thread may still read it while exit() runs the static destructors */
  static const auto *candidates = new std::vector<std::string>{"v4l2h264enc", "x264enc", "openh264enc"};
  return *candidates;
}

bool is_hardware_encoder(const std::string &factory) { return factory.rfind("v4l2", 0) == 0; }

EncoderChoice choose_encoder(const std::string &requested, const EncoderProber &prober) {
  EncoderChoice choice;
  if (requested.empty() || requested == "auto") {
    std::string tried;
    for (const auto &candidate : auto_encoder_candidates()) {
      if (!prober.exists(candidate))
        continue;
      if (prober.usable(candidate)) {
        choice.factory = candidate;
        choice.reason = is_hardware_encoder(candidate) ? "auto: hardware encoder" : "auto: software encoder";
        if (!tried.empty())
          choice.reason += " (" + tried + " present but not usable)";
        return choice;
      }
      tried += tried.empty() ? candidate : ", " + candidate;
    }
    choice.reason = "no usable H.264 encoder: install x264enc (gstreamer1.0-plugins-ugly) or openh264enc "
                    "(gstreamer1.0-plugins-bad), or feed encoded H.264";
    if (!tried.empty())
      choice.reason += " (present but not usable: " + tried + ")";
    return choice;
  }
  if (!prober.exists(requested)) {
    choice.reason = "encoder '" + requested + "' is not installed (no such element); use encoder=auto or "
                    "the name of an installed H.264 encoder (gst-inspect-1.0 | grep 264)";
    return choice;
  }
  choice.factory = requested;
  choice.reason = "requested";
  return choice;
}

int default_bitrate_kbps(int width, int height, int fps_n, int fps_d) {
  if (width <= 0 || height <= 0)
    return kKbps720p30;
  double fps = (fps_n > 0 && fps_d > 0) ? static_cast<double>(fps_n) / fps_d : 30.0;
  double rate = static_cast<double>(width) * height * fps;
  double kbps;
  if (rate <= kPixelRate720p30)
    kbps = kKbps720p30 * rate / kPixelRate720p30;
  else if (rate <= kPixelRate1080p30)
    kbps = kKbps720p30 + (kKbps1080p30 - kKbps720p30) * (rate - kPixelRate720p30) / (kPixelRate1080p30 - kPixelRate720p30);
  else
    kbps = kKbps1080p30 * rate / kPixelRate1080p30;
  return static_cast<int>(std::clamp(std::lround(kbps), 150L, 20000L));
}

int keyframe_interval_frames(int requested, int fps_n, int fps_d) {
  if (requested > 0)
    return requested;
  constexpr double kDefaultSeconds = 2.0;
  if (fps_n <= 0 || fps_d <= 0)
    return static_cast<int>(30 * kDefaultSeconds);
  return std::max(1, static_cast<int>(std::lround(kDefaultSeconds * fps_n / fps_d)));
}

std::vector<EncoderProperty> encoder_rate_settings(const std::string &factory, int kbps, int max_kbps) {
  /* vbv-buf-capacity (its default 600 ms): the rate buffer x264 may fill above the bitrate. With
   * a shorter one a lowered bitrate shows in the next frames at once (a cut from 2500 to 300
   * kbit/s at 640x360: 15 kB more than the new rate in the 5 frames after it at 300 ms, 30 kB at
   * 600 ms, i.e. 0.12 vs 0.24 s more queue on a 1 Mbit/s link), and keyframe bursts are smaller.
   * Below the ceiling, shorter still. */
  if (factory == "x264enc")
    return {{"bitrate", std::to_string(kbps)},
            {"vbv-buf-capacity", std::to_string(kbps < max_kbps ? kAdaptedRateBufferMs : kRateBufferMs)}};
  if (factory == "openh264enc") {
    const std::string bps = std::to_string(static_cast<long long>(kbps) * 1000);
    return {{"bitrate", bps}, {"max-bitrate", bps}};
  }
  return {};
}

std::vector<EncoderProperty> encoder_settings(const std::string &factory, const EncoderTuning &tuning) {
  const std::string gop = std::to_string(tuning.keyframe_interval);
  /* the rate properties: those of a running encoder at its ceiling */
  auto with_rate = [&](std::vector<EncoderProperty> props, std::vector<EncoderProperty> tail) {
    for (auto &p : encoder_rate_settings(factory, tuning.bitrate_kbps, tuning.bitrate_kbps))
      props.push_back(std::move(p));
    for (auto &p : tail)
      props.push_back(std::move(p));
    return props;
  };
  if (factory == "x264enc")
    return with_rate({{"tune", "zerolatency"}, {"speed-preset", "ultrafast"}, {"bframes", "0"}, {"b-adapt", "false"},
                      {"rc-lookahead", "0"}, {"key-int-max", gop}},
                     {{"byte-stream", "true"}});
  if (factory == "openh264enc")
    return with_rate({{"rate-control", "bitrate"}},
                     {{"gop-size", gop}, {"usage-type", "camera"}, {"complexity", "low"}});
  if (factory == "v4l2h264enc")
    return {{"extra-controls", v4l2h264enc_extra_controls(tuning)}};
  return {};
}

std::string encoder_output_caps(const std::string &factory, const EncoderTuning &tuning) {
  std::string caps = "video/x-h264,stream-format=byte-stream,alignment=au";
  if (!tuning.profile.empty())
    caps += ",profile=" + tuning.profile;
  /* v4l2h264enc on a Pi negotiates a level from downstream and fails without one at 1080p. */
  if (factory == "v4l2h264enc")
    caps += ",level=(string)" + v4l2h264enc_level(tuning);
  return caps;
}

namespace {

struct H264Level {
  const char *name;
  long max_macroblocks_per_second;
  long max_frame_macroblocks;
  long max_kbps; /* Baseline/Main/Extended */
  int v4l2_control; /* V4L2_MPEG_VIDEO_H264_LEVEL_* */
};

/* ITU-T H.264 Table A-1 (level 1b left out: nothing here asks for it). */
constexpr H264Level kH264Levels[] = {
    {"1", 1485, 99, 64, 0},          {"1.1", 3000, 396, 192, 2},      {"1.2", 6000, 396, 384, 3},
    {"1.3", 11880, 396, 768, 4},     {"2", 11880, 396, 2000, 5},      {"2.1", 19800, 792, 4000, 6},
    {"2.2", 20250, 1620, 4000, 7},   {"3", 40500, 1620, 10000, 8},    {"3.1", 108000, 3600, 14000, 9},
    {"3.2", 216000, 5120, 20000, 10}, {"4", 245760, 8192, 20000, 11}, {"4.1", 245760, 8192, 50000, 12},
    {"4.2", 522240, 8704, 50000, 13}, {"5", 589824, 22080, 135000, 14}, {"5.1", 983040, 36864, 240000, 15},
};

int level_index(const std::string &name) {
  for (size_t i = 0; i < std::size(kH264Levels); i++)
    if (name == kH264Levels[i].name)
      return static_cast<int>(i);
  return -1;
}

}  // namespace

std::string h264_level(const EncoderTuning &tuning) {
  if (tuning.width <= 0 || tuning.height <= 0)
    return "4";
  const long frame_mbs = static_cast<long>((tuning.width + 15) / 16) * ((tuning.height + 15) / 16);
  const double fps = (tuning.fps_n > 0 && tuning.fps_d > 0) ? static_cast<double>(tuning.fps_n) / tuning.fps_d : 30.0;
  const double mbs_per_second = frame_mbs * fps;
  for (const auto &level : kH264Levels) {
    if (frame_mbs <= level.max_frame_macroblocks && mbs_per_second <= level.max_macroblocks_per_second &&
        tuning.bitrate_kbps <= level.max_kbps)
      return level.name;
  }
  return kH264Levels[std::size(kH264Levels) - 1].name;
}

std::string v4l2h264enc_level(const EncoderTuning &tuning) {
  std::string level = h264_level(tuning);
  return level_index(level) > level_index("4.2") ? "4.2" : level;
}

int v4l2_h264_level_control(const std::string &level) {
  int i = level_index(level);
  return i < 0 ? -1 : kH264Levels[i].v4l2_control;
}

std::string v4l2h264enc_extra_controls(const EncoderTuning &tuning) {
  /* bcm2835-codec: no B-frames by design; SPS/PPS repeated before every IDR so that a viewer
   * joining mid-stream can decode from the next keyframe. */
  const long long bps = static_cast<long long>(tuning.bitrate_kbps) * 1000;
  return "controls,video_bitrate=" + std::to_string(bps) + ",video_bitrate_mode=1,h264_i_frame_period=" +
         std::to_string(tuning.keyframe_interval) + ",repeat_sequence_header=1,video_b_frames=0,h264_level=" +
         std::to_string(v4l2_h264_level_control(v4l2h264enc_level(tuning)));
}

std::string camera_source_caps(const std::string &encoder_factory, int width, int height, int fps_n, int fps_d) {
  std::string caps = std::string("video/x-raw,format=") + (encoder_factory == "v4l2h264enc" ? "NV12" : "I420");
  if (width > 0 && height > 0)
    caps += ",width=" + std::to_string(width) + ",height=" + std::to_string(height);
  if (fps_n > 0 && fps_d > 0)
    caps += ",framerate=" + std::to_string(fps_n) + "/" + std::to_string(fps_d);
  return caps;
}

}  // namespace gstmtx
