/* gstmtx encoder selection and tuning, with an injected registry (no hardware, no network). */
#include <gst/check/gstcheck.h>

#include <set>
#include <string>

#include "encoder_selection.h"

using namespace gstmtx;

/* Says which encoders are installed and which of them really open. */
class FakeProber : public EncoderProber {
public:
  FakeProber(std::set<std::string> present, std::set<std::string> working)
      : present_(std::move(present)), working_(std::move(working)) {}
  bool exists(const std::string &factory) const override { return present_.count(factory) > 0; }
  bool usable(const std::string &factory) const override { return exists(factory) && working_.count(factory) > 0; }

private:
  std::set<std::string> present_, working_;
};

/* points into `props` (not a temporary: fail_unless_equals_string keeps the pointer past the call) */
static const char *value_of(const std::vector<EncoderProperty> &props, const std::string &name) {
  for (const auto &p : props)
    if (p.name == name)
      return p.value.c_str();
  return "<unset>";
}

GST_START_TEST(test_auto_prefers_working_hardware) {
  FakeProber all({"v4l2h264enc", "x264enc", "openh264enc"}, {"v4l2h264enc", "x264enc", "openh264enc"});
  EncoderChoice choice = choose_encoder("auto", all);
  fail_unless(choice.ok());
  fail_unless_equals_string(choice.factory.c_str(), "v4l2h264enc");
  fail_unless(choice.reason.find("hardware") != std::string::npos, "reason: %s", choice.reason.c_str());
  fail_unless(is_hardware_encoder("v4l2h264enc"));
  fail_if(is_hardware_encoder("x264enc"));
}
GST_END_TEST;

GST_START_TEST(test_auto_skips_hardware_that_does_not_open) {
  /* a v4l2h264enc registered on a machine without the codec device (any non-Pi box) */
  FakeProber prober({"v4l2h264enc", "x264enc", "openh264enc"}, {"x264enc", "openh264enc"});
  EncoderChoice choice = choose_encoder("auto", prober);
  fail_unless_equals_string(choice.factory.c_str(), "x264enc");
  fail_unless(choice.reason.find("v4l2h264enc") != std::string::npos, "reason: %s", choice.reason.c_str());
  /* empty means auto too */
  const std::string empty_means_auto = choose_encoder("", prober).factory;
  fail_unless_equals_string(empty_means_auto.c_str(), "x264enc");
}
GST_END_TEST;

GST_START_TEST(test_auto_falls_back_to_openh264) {
  FakeProber prober({"openh264enc"}, {"openh264enc"});
  EncoderChoice choice = choose_encoder("auto", prober);
  fail_unless_equals_string(choice.factory.c_str(), "openh264enc");
}
GST_END_TEST;

GST_START_TEST(test_auto_with_nothing_usable) {
  FakeProber prober({"v4l2h264enc"}, {});
  EncoderChoice choice = choose_encoder("auto", prober);
  fail_if(choice.ok());
  fail_unless(choice.reason.find("x264enc") != std::string::npos, "reason: %s", choice.reason.c_str());
  fail_unless(choice.reason.find("v4l2h264enc") != std::string::npos, "reason: %s", choice.reason.c_str());
}
GST_END_TEST;

GST_START_TEST(test_named_encoder) {
  FakeProber prober({"x264enc", "openh264enc"}, {"x264enc", "openh264enc"});
  const std::string named = choose_encoder("openh264enc", prober).factory;
  fail_unless_equals_string(named.c_str(), "openh264enc");
  EncoderChoice missing = choose_encoder("nvh264enc", prober);
  fail_if(missing.ok());
  fail_unless(missing.reason.find("'nvh264enc' is not installed") != std::string::npos, "reason: %s",
              missing.reason.c_str());
}
GST_END_TEST;

GST_START_TEST(test_default_bitrate) {
  fail_unless_equals_int(default_bitrate_kbps(1280, 720, 30, 1), 2000);
  fail_unless_equals_int(default_bitrate_kbps(1920, 1080, 30, 1), 4000);
  int between = default_bitrate_kbps(1600, 900, 30, 1);
  fail_unless(between > 2000 && between < 4000, "%d", between);
  fail_unless_equals_int(default_bitrate_kbps(1280, 720, 15, 1), 1000);
  fail_unless(default_bitrate_kbps(1920, 1080, 60, 1) == 8000);
  fail_unless(default_bitrate_kbps(160, 120, 5, 1) >= 150);
  fail_unless(default_bitrate_kbps(7680, 4320, 120, 1) <= 20000);
  /* unknown size: the 720p30 figure; unknown framerate: 30 fps */
  fail_unless_equals_int(default_bitrate_kbps(0, 0, 0, 1), 2000);
  fail_unless_equals_int(default_bitrate_kbps(1280, 720, 0, 1), 2000);
}
GST_END_TEST;

GST_START_TEST(test_keyframe_interval) {
  /* 0: two seconds' worth */
  fail_unless_equals_int(keyframe_interval_frames(0, 30, 1), 60);
  fail_unless_equals_int(keyframe_interval_frames(0, 25, 1), 50);
  fail_unless_equals_int(keyframe_interval_frames(0, 30000, 1001), 60);
  fail_unless_equals_int(keyframe_interval_frames(0, 0, 1), 60);
  fail_unless_equals_int(keyframe_interval_frames(0, 1, 2), 1);
  fail_unless_equals_int(keyframe_interval_frames(0, 1, 4), 1);
  fail_unless_equals_int(keyframe_interval_frames(60, 30, 1), 60);
}
GST_END_TEST;

GST_START_TEST(test_low_latency_settings) {
  EncoderTuning tuning{2500, 15, "main"};
  auto x264 = encoder_settings("x264enc", tuning);
  fail_unless_equals_string(value_of(x264, "tune"), "zerolatency");
  fail_unless_equals_string(value_of(x264, "bframes"), "0");
  fail_unless_equals_string(value_of(x264, "key-int-max"), "15");
  fail_unless_equals_string(value_of(x264, "bitrate"), "2500"); /* kbit/s */

  auto openh264 = encoder_settings("openh264enc", tuning);
  fail_unless_equals_string(value_of(openh264, "bitrate"), "2500000"); /* bit/s */
  fail_unless_equals_string(value_of(openh264, "gop-size"), "15");

  auto v4l2 = encoder_settings("v4l2h264enc", tuning);
  std::string controls = value_of(v4l2, "extra-controls");
  fail_unless(controls.find("video_bitrate=2500000") != std::string::npos, "%s", controls.c_str());
  fail_unless(controls.find("h264_i_frame_period=15") != std::string::npos, "%s", controls.c_str());
  fail_unless(controls.find("repeat_sequence_header=1") != std::string::npos, "%s", controls.c_str());
  fail_unless(controls.find("video_b_frames=0") != std::string::npos, "%s", controls.c_str());

  fail_unless(encoder_settings("someotherenc", tuning).empty());

  std::string caps = encoder_output_caps("x264enc", tuning);
  fail_unless(caps.find("profile=main") != std::string::npos, "%s", caps.c_str());
  fail_unless(caps.find("byte-stream") != std::string::npos, "%s", caps.c_str());
  fail_unless(encoder_output_caps("v4l2h264enc", tuning).find("level=") != std::string::npos);
  EncoderTuning no_profile{2000, 30, ""};
  fail_unless(encoder_output_caps("x264enc", no_profile).find("profile") == std::string::npos);
}
GST_END_TEST;

static void expect_level(const std::string &got, const char *want) {
  fail_unless(got == want, "level %s, want %s", got.c_str(), want);
}

/* H.264 level from the picture and bitrate (Table A-1), and the Pi 4 encoder's cap at 4.2. */
GST_START_TEST(test_h264_level) {
  auto tuning = [](int w, int h, int fps, int kbps) {
    EncoderTuning t;
    t.width = w;
    t.height = h;
    t.fps_n = fps;
    t.fps_d = 1;
    t.bitrate_kbps = kbps;
    return t;
  };
  expect_level(h264_level(tuning(640, 480, 30, 1000)), "3");
  expect_level(h264_level(tuning(1280, 720, 30, 2000)), "3.1");
  expect_level(h264_level(tuning(1280, 720, 60, 3000)), "3.2");
  expect_level(h264_level(tuning(1920, 1080, 30, 4000)), "4");
  expect_level(h264_level(tuning(1920, 1080, 30, 25000)), "4.1"); /* bitrate decides */
  expect_level(h264_level(tuning(1920, 1080, 60, 8000)), "4.2");
  expect_level(h264_level(tuning(3840, 2160, 30, 15000)), "5.1");
  expect_level(h264_level(EncoderTuning{}), "4"); /* size unknown */
  expect_level(v4l2h264enc_level(tuning(3840, 2160, 30, 15000)), "4.2");
  expect_level(v4l2h264enc_level(tuning(1280, 720, 30, 2000)), "3.1");
  /* V4L2_MPEG_VIDEO_H264_LEVEL_* (videodev2.h) */
  fail_unless_equals_int(v4l2_h264_level_control("1"), 0);
  fail_unless_equals_int(v4l2_h264_level_control("3.1"), 9);
  fail_unless_equals_int(v4l2_h264_level_control("4"), 11);
  fail_unless_equals_int(v4l2_h264_level_control("4.2"), 13);
  fail_unless_equals_int(v4l2_h264_level_control("9"), -1);
}
GST_END_TEST;

static int structure_int(const GstStructure *st, const char *field) {
  int value = -12345;
  fail_unless(gst_structure_get_int(st, field, &value), "no int field %s in %" GST_PTR_FORMAT, field, st);
  return value;
}

/* Pi 4: what v4l2h264enc gets at 1080p30 4 Mbit/s and at 720p30 2 Mbit/s, read back the way the
 * element reads them (extra-controls is a GstStructure property, the caps a capsfilter's). */
GST_START_TEST(test_v4l2h264enc_configuration) {
  EncoderTuning tuning;
  tuning.bitrate_kbps = 4000;
  tuning.keyframe_interval = 30;
  tuning.width = 1920;
  tuning.height = 1080;
  tuning.fps_n = 30;
  auto props = encoder_settings("v4l2h264enc", tuning);
  fail_unless_equals_int(props.size(), 1);
  fail_unless_equals_string(props[0].name.c_str(), "extra-controls");
  const std::string expected_controls = v4l2h264enc_extra_controls(tuning);
  fail_unless_equals_string(props[0].value.c_str(), expected_controls.c_str());

  GValue value = G_VALUE_INIT;
  g_value_init(&value, GST_TYPE_STRUCTURE);
  fail_unless(gst_value_deserialize(&value, props[0].value.c_str()), "not a GstStructure: %s", props[0].value.c_str());
  const GstStructure *controls = gst_value_get_structure(&value);
  fail_unless(gst_structure_has_name(controls, "controls"));
  fail_unless_equals_int(structure_int(controls, "video_bitrate"), 4000000);
  fail_unless_equals_int(structure_int(controls, "video_bitrate_mode"), 1); /* CBR */
  fail_unless_equals_int(structure_int(controls, "h264_i_frame_period"), 30);
  fail_unless_equals_int(structure_int(controls, "repeat_sequence_header"), 1);
  fail_unless_equals_int(structure_int(controls, "video_b_frames"), 0);
  fail_unless_equals_int(structure_int(controls, "h264_level"), 11); /* level 4 */
  fail_unless_equals_int(gst_structure_n_fields(controls), 6);
  g_value_unset(&value);

  g_autoptr(GstCaps) caps = gst_caps_from_string(encoder_output_caps("v4l2h264enc", tuning).c_str());
  fail_unless(caps && gst_caps_is_fixed(caps), "caps: %" GST_PTR_FORMAT, caps);
  const GstStructure *st = gst_caps_get_structure(caps, 0);
  fail_unless(gst_structure_has_name(st, "video/x-h264"));
  fail_unless_equals_string(gst_structure_get_string(st, "level"), "4");
  fail_unless_equals_string(gst_structure_get_string(st, "profile"), "constrained-baseline");
  fail_unless_equals_string(gst_structure_get_string(st, "stream-format"), "byte-stream");
  fail_unless_equals_string(gst_structure_get_string(st, "alignment"), "au");

  tuning.width = 1280;
  tuning.height = 720;
  tuning.bitrate_kbps = 2000;
  g_autoptr(GstCaps) caps720 = gst_caps_from_string(encoder_output_caps("v4l2h264enc", tuning).c_str());
  fail_unless_equals_string(gst_structure_get_string(gst_caps_get_structure(caps720, 0), "level"), "3.1");
  fail_unless(v4l2h264enc_extra_controls(tuning).find(",h264_level=9") != std::string::npos);
  /* the software encoders' caps carry no level: x264enc picks one itself */
  fail_unless(encoder_output_caps("x264enc", tuning).find("level") == std::string::npos);
}
GST_END_TEST;

/* libcamerasrc caps: NV12 for the Pi 4 encoder, I420 (YUV420) for the software ones (Pi 5), fixed at
 * the size and rate asked for, and accepted by mediamtxsink's video pad as they are. */
GST_START_TEST(test_camera_source_caps) {
  /* fail_unless_equals_string keeps a pointer: no temporaries */
  const std::string pi4 = camera_source_caps("v4l2h264enc", 1280, 720, 30, 1);
  const std::string pi5 = camera_source_caps("x264enc", 1920, 1080, 30, 1);
  const std::string any = camera_source_caps("openh264enc", 0, 0, 0, 1);
  fail_unless_equals_string(pi4.c_str(), "video/x-raw,format=NV12,width=1280,height=720,framerate=30/1");
  fail_unless_equals_string(pi5.c_str(), "video/x-raw,format=I420,width=1920,height=1080,framerate=30/1");
  fail_unless_equals_string(any.c_str(), "video/x-raw,format=I420");

  g_autoptr(GstElement) sink = gst_element_factory_make("mediamtxsink", nullptr);
  fail_unless(sink != nullptr, "mediamtxsink not found (GST_PLUGIN_PATH)");
  gst_object_ref_sink(sink);
  g_autoptr(GstPad) pad = gst_element_get_static_pad(sink, "video");
  for (const char *encoder : {"v4l2h264enc", "x264enc"}) {
    g_autoptr(GstCaps) caps = gst_caps_from_string(camera_source_caps(encoder, 1280, 720, 30, 1).c_str());
    fail_unless(caps && gst_caps_is_fixed(caps));
    fail_unless(gst_pad_query_accept_caps(pad, caps), "mediamtxsink refuses %" GST_PTR_FORMAT, caps);
  }
}
GST_END_TEST;

/* The Pi 5 chain with the camera replaced by videotestsrc: camera caps, x264enc with our settings,
 * our output caps, h264parse; it negotiates and encodes. */
GST_START_TEST(test_software_chain_negotiates) {
  EncoderTuning tuning;
  tuning.width = 640;
  tuning.height = 360;
  tuning.fps_n = 30;
  tuning.bitrate_kbps = default_bitrate_kbps(640, 360, 30, 1);
  tuning.keyframe_interval = 30;
  std::string description = "videotestsrc num-buffers=10 ! " + camera_source_caps("x264enc", 640, 360, 30, 1) +
                            " ! x264enc";
  for (const auto &prop : encoder_settings("x264enc", tuning))
    description += " " + prop.name + "=" + prop.value;
  description += " ! " + encoder_output_caps("x264enc", tuning) + " ! h264parse ! fakesink";
  GError *error = nullptr;
  g_autoptr(GstElement) pipeline = gst_parse_launch(description.c_str(), &error);
  fail_unless(pipeline && !error, "%s: %s", description.c_str(), error ? error->message : "");
  fail_unless(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  g_autoptr(GstBus) bus = gst_element_get_bus(pipeline);
  g_autoptr(GstMessage) msg = gst_bus_timed_pop_filtered(bus, 20 * GST_SECOND,
      static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  fail_unless(msg != nullptr, "no EOS within 20 s: %s", description.c_str());
  fail_unless_equals_int(GST_MESSAGE_TYPE(msg), GST_MESSAGE_EOS);
  gst_element_set_state(pipeline, GST_STATE_NULL);
}
GST_END_TEST;

/* The rate properties of a running encoder: below the ceiling x264enc's rate buffer is shorter. */
GST_START_TEST(test_rate_settings) {
  /* named strings and vectors: fail_unless_equals_string keeps its pointers past the call */
  const std::string full = std::to_string(kRateBufferMs), adapted_ms = std::to_string(kAdaptedRateBufferMs);
  auto at_ceiling = encoder_rate_settings("x264enc", 2500, 2500);
  fail_unless_equals_string(value_of(at_ceiling, "bitrate"), "2500");
  fail_unless_equals_string(value_of(at_ceiling, "vbv-buf-capacity"), full.c_str());
  auto adapted = encoder_rate_settings("x264enc", 900, 2500);
  fail_unless_equals_string(value_of(adapted, "bitrate"), "900");
  fail_unless_equals_string(value_of(adapted, "vbv-buf-capacity"), adapted_ms.c_str());
  fail_unless(kAdaptedRateBufferMs < kRateBufferMs);
  /* the start's settings are the ceiling's */
  EncoderTuning tuning{2500, 60, ""};
  auto start = encoder_settings("x264enc", tuning);
  fail_unless_equals_string(value_of(start, "vbv-buf-capacity"), full.c_str());
  auto openh264 = encoder_rate_settings("openh264enc", 900, 2500);
  fail_unless_equals_string(value_of(openh264, "bitrate"), "900000");
  fail_unless_equals_string(value_of(openh264, "max-bitrate"), "900000");
  fail_unless_equals_string(value_of(openh264, "vbv-buf-capacity"), "<unset>");
  fail_unless(encoder_rate_settings("v4l2h264enc", 900, 2500).empty());
  fail_unless(encoder_rate_settings("someotherenc", 900, 2500).empty());
}
GST_END_TEST;

/* Why: a running x264enc cut from 2500 to 500 kbit/s (the frame before the 31st) spends less above
 * the new rate in the 5 frames after the cut with the adapted rate buffer than with the one it had.
 * Returns those frames' bytes. */
static guint64 bytes_after_cut(bool adapted_buffer) {
  constexpr int kCutFrame = 30, kFrames = 5, kMax = 2500, kCut = 500;
  EncoderTuning tuning{kMax, 60, ""};
  std::string description =
      "videotestsrc pattern=smpte num-buffers=60 ! video/x-raw,format=I420,width=640,height=360,framerate=30/1"
      " ! x264enc name=enc";
  for (const auto &prop : encoder_settings("x264enc", tuning))
    description += " " + prop.name + "=" + prop.value;
  description += " ! fakesink name=out signal-handoffs=true";
  GError *error = nullptr;
  g_autoptr(GstElement) pipeline = gst_parse_launch(description.c_str(), &error);
  fail_unless(pipeline && !error, "%s: %s", description.c_str(), error ? error->message : "");
  struct Run {
    GstElement *enc;
    bool adapted;
    int in = 0, out = 0;
    guint64 bytes = 0;
  } run{gst_bin_get_by_name(GST_BIN(pipeline), "enc"), adapted_buffer};
  g_autoptr(GstPad) sink = gst_element_get_static_pad(run.enc, "sink");
  gst_pad_add_probe(sink, GST_PAD_PROBE_TYPE_BUFFER,
      [](GstPad *, GstPadProbeInfo *, gpointer data) -> GstPadProbeReturn {
        auto *r = static_cast<Run *>(data);
        if (r->in++ == kCutFrame) {
          /* as mediamtxsink sets a cut: encoder_rate_settings, or the bitrate alone */
          for (const auto &prop : encoder_rate_settings("x264enc", kCut, r->adapted ? kMax : kCut))
            gst_util_set_object_arg(G_OBJECT(r->enc), prop.name.c_str(), prop.value.c_str());
        }
        return GST_PAD_PROBE_OK;
      },
      &run, nullptr);
  g_autoptr(GstElement) out = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  g_signal_connect(out, "handoff", G_CALLBACK(+[](GstElement *, GstBuffer *buffer, GstPad *, gpointer data) {
                     auto *r = static_cast<Run *>(data);
                     if (r->out >= kCutFrame && r->out < kCutFrame + kFrames)
                       r->bytes += gst_buffer_get_size(buffer);
                     r->out++;
                   }),
                   &run);
  fail_unless(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  g_autoptr(GstBus) bus = gst_element_get_bus(pipeline);
  g_autoptr(GstMessage) msg = gst_bus_timed_pop_filtered(bus, 20 * GST_SECOND,
      static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  fail_unless(msg != nullptr && GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS, "no EOS: %s", description.c_str());
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(run.enc);
  fail_unless_equals_int(run.out, 60);
  return run.bytes;
}

GST_START_TEST(test_adapted_rate_buffer_follows_a_cut) {
  const guint64 full = bytes_after_cut(false), adapted = bytes_after_cut(true);
  g_print("RATE-BUFFER 5 frames after a cut to 500 kbit/s (83 kbit at the new rate): %" G_GUINT64_FORMAT
          " kbit with the rate buffer of the ceiling, %" G_GUINT64_FORMAT " kbit with the adapted one\n",
          full * 8 / 1000, adapted * 8 / 1000);
  fail_unless(adapted * 10 < full * 8, "adapted rate buffer: %" G_GUINT64_FORMAT " bytes, full: %" G_GUINT64_FORMAT,
              adapted, full);
}
GST_END_TEST;

/* The real registry: x264enc is installed and opens on this machine; nothing named so. */
GST_START_TEST(test_registry_prober) {
  RegistryEncoderProber prober;
  fail_unless(prober.exists("x264enc"));
  fail_unless(prober.usable("x264enc"));
  fail_if(prober.exists("no-such-encoder"));
  fail_if(prober.usable("no-such-encoder"));
  /* an element that exists but does not encode H.264 */
  fail_if(prober.usable("identity"));
}
GST_END_TEST;

static Suite *encoder_selection_suite(void) {
  Suite *s = suite_create("encoder_selection");
  TCase *tc = tcase_create("selection");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_auto_prefers_working_hardware);
  tcase_add_test(tc, test_auto_skips_hardware_that_does_not_open);
  tcase_add_test(tc, test_auto_falls_back_to_openh264);
  tcase_add_test(tc, test_auto_with_nothing_usable);
  tcase_add_test(tc, test_named_encoder);
  tcase_add_test(tc, test_default_bitrate);
  tcase_add_test(tc, test_keyframe_interval);
  tcase_add_test(tc, test_low_latency_settings);
  tcase_add_test(tc, test_rate_settings);
  tcase_add_test(tc, test_adapted_rate_buffer_follows_a_cut);
  tcase_add_test(tc, test_registry_prober);
  tcase_add_test(tc, test_h264_level);
  tcase_add_test(tc, test_v4l2h264enc_configuration);
  tcase_add_test(tc, test_camera_source_caps);
  tcase_add_test(tc, test_software_chain_negotiates);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(encoder_selection);
