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

static std::string value_of(const std::vector<EncoderProperty> &props, const std::string &name) {
  for (const auto &p : props)
    if (p.name == name)
      return p.value;
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
  fail_unless_equals_string(choose_encoder("", prober).factory.c_str(), "x264enc");
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
  fail_unless_equals_string(choose_encoder("openh264enc", prober).factory.c_str(), "openh264enc");
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
  fail_unless_equals_int(keyframe_interval_frames(0, 30, 1), 30);
  fail_unless_equals_int(keyframe_interval_frames(0, 25, 1), 25);
  fail_unless_equals_int(keyframe_interval_frames(0, 30000, 1001), 30);
  fail_unless_equals_int(keyframe_interval_frames(0, 0, 1), 30);
  fail_unless_equals_int(keyframe_interval_frames(0, 1, 2), 1);
  fail_unless_equals_int(keyframe_interval_frames(60, 30, 1), 60);
}
GST_END_TEST;

GST_START_TEST(test_low_latency_settings) {
  EncoderTuning tuning{2500, 15, "main"};
  auto x264 = encoder_settings("x264enc", tuning);
  fail_unless_equals_string(value_of(x264, "tune").c_str(), "zerolatency");
  fail_unless_equals_string(value_of(x264, "bframes").c_str(), "0");
  fail_unless_equals_string(value_of(x264, "key-int-max").c_str(), "15");
  fail_unless_equals_string(value_of(x264, "bitrate").c_str(), "2500"); /* kbit/s */

  auto openh264 = encoder_settings("openh264enc", tuning);
  fail_unless_equals_string(value_of(openh264, "bitrate").c_str(), "2500000"); /* bit/s */
  fail_unless_equals_string(value_of(openh264, "gop-size").c_str(), "15");

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
  tcase_add_test(tc, test_registry_prober);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(encoder_selection);
