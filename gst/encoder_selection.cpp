#include "encoder_selection.h"

#include <gst/gst.h>

#include <algorithm>
#include <cmath>
#include <cstring>

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
  static const std::vector<std::string> candidates = {"v4l2h264enc", "x264enc", "openh264enc"};
  return candidates;
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
  if (fps_n <= 0 || fps_d <= 0)
    return 30;
  return std::max(1, static_cast<int>(std::lround(static_cast<double>(fps_n) / fps_d)));
}

std::vector<EncoderProperty> encoder_settings(const std::string &factory, const EncoderTuning &tuning) {
  const std::string kbps = std::to_string(tuning.bitrate_kbps);
  const std::string bps = std::to_string(static_cast<long long>(tuning.bitrate_kbps) * 1000);
  const std::string gop = std::to_string(tuning.keyframe_interval);
  if (factory == "x264enc")
    return {{"tune", "zerolatency"}, {"speed-preset", "ultrafast"}, {"bframes", "0"}, {"b-adapt", "false"},
            {"rc-lookahead", "0"}, {"key-int-max", gop}, {"bitrate", kbps}, {"byte-stream", "true"}};
  if (factory == "openh264enc")
    return {{"rate-control", "bitrate"}, {"bitrate", bps}, {"max-bitrate", bps}, {"gop-size", gop},
            {"usage-type", "camera"}, {"complexity", "low"}};
  if (factory == "v4l2h264enc")
    /* Pi 4 (bcm2835-codec): no B-frames by design; SPS/PPS repeated before every IDR. */
    return {{"extra-controls", "controls,video_bitrate=" + bps + ",video_bitrate_mode=1,h264_i_frame_period=" + gop +
                                   ",repeat_sequence_header=1,video_b_frames=0"}};
  return {};
}

std::string encoder_output_caps(const std::string &factory, const EncoderTuning &tuning) {
  std::string caps = "video/x-h264,stream-format=byte-stream,alignment=au";
  if (!tuning.profile.empty())
    caps += ",profile=" + tuning.profile;
  /* v4l2h264enc on a Pi negotiates a level from downstream and fails without one at 1080p. */
  if (factory == "v4l2h264enc")
    caps += ",level=(string)4";
  return caps;
}

}  // namespace gstmtx
