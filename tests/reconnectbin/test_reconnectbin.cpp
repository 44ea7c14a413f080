/* reconnectbin without network: restart on EOS, error and stall, the retry budget and rule, the
 * sink side (drops while down, force-key-unit after a restart), fallback frames, gst-launch bin
 * syntax. Buffer lists on the sink side: test_reconnectbin_lists.cpp. */
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include <string>
#include <vector>

#include "pipeline_helpers.h"
#include "status.h"

using namespace testbed;

/* A pipeline around a reconnectbin named "r". */
struct BinPipeline : TestPipeline {
  using TestPipeline::TestPipeline;
  /* one number of the bin's stats */
  guint64 stat(const char *field) const { return stats_uint64("r", field); }
};

static bool any_contains(const std::vector<std::string> &texts, const char *needle) {
  for (const auto &t : texts)
    if (t.find(needle) != std::string::npos)
      return true;
  return false;
}

/* Fast restart cycles: a non-live child that ends after a few buffers, 50 times. Also run under
 * valgrind by valgrind.sh (GST_CHECKS=test_fifty_eos_restarts). */
GST_START_TEST(test_fifty_eos_restarts) {
  BinPipeline pipeline(
      "reconnectbin name=r retry-delay=1 max-retry-delay=2 retry-jitter=0 "
      "child=\"videotestsrc num-buffers=3 ! capsfilter caps=video/x-raw,width=32,height=24,framerate=100/1\" "
      "! fakesink name=sink sync=false",
      "sink");
  fail_unless(pipeline.play());
  fail_unless(wait_until([&] { return pipeline.stat("restarts") >= 50; }, 60000), "only %d restarts",
              static_cast<int>(pipeline.stat("restarts")));
  fail_unless(pipeline.bus.errors().empty());
  fail_unless_equals_int(pipeline.bus.eos_count(), 0);
  fail_unless(pipeline.frames.count() >= 150, "only %d frames", pipeline.frames.count());
  fail_unless(pipeline.stat("eos") >= 50);
  fail_unless_equals_int(pipeline.stop(), GST_STATE_CHANGE_SUCCESS);
}
GST_END_TEST;

/* The retry budget: a child that can never start is restarted max-retries times, then the
 * child's own error is posted, once. */
GST_START_TEST(test_failing_child_posts_one_error) {
  BinPipeline pipeline("reconnectbin name=r max-retries=3 retry-delay=20 max-retry-delay=50 "
                       "child=\"filesrc location=/nonexistent\" ! fakesink");
  gst_element_set_state(pipeline.pipeline, GST_STATE_PLAYING);
  fail_unless(wait_until([&] { return !pipeline.bus.errors().empty(); }, 20000));
  g_usleep(500 * 1000); /* nothing else may follow */
  auto errors = pipeline.bus.errors();
  fail_unless_equals_int(errors.size(), 1);
  fail_unless(any_contains(errors, "nonexistent"), "the error must carry the child's message: %s",
              errors[0].c_str());
  fail_unless(any_contains(errors, "max-retries=3"), "the debug text says what to change: %s", errors[0].c_str());
  fail_unless_equals_int(pipeline.stat("restarts"), 3);
  fail_unless_equals_int(pipeline.bus.warnings().size(), 4); /* first start and three restarts */
  fail_unless_equals_int(pipeline.bus.count_element_messages(gstmtx::kStatusMessageName, "state", "reconnecting"), 3);
  fail_unless_equals_int(pipeline.bus.count_element_messages(gstmtx::kStatusMessageName, "state", "failed"), 1);
  fail_unless_equals_int(pipeline.bus.count_element_messages(gstmtx::kStatusMessageName, "state", "connecting"), 4);
  auto statuses = pipeline.bus.element_messages(gstmtx::kStatusMessageName);
  fail_unless(!statuses.empty());
  fail_unless_equals_string(gst_structure_get_string(statuses[0], "transport"), "filesrc");
  for (auto *s : statuses)
    gst_structure_free(s);
  fail_unless_equals_int(pipeline.stop(), GST_STATE_CHANGE_SUCCESS);
}
GST_END_TEST;

/* A child that stops producing without an error is restarted after stall-timeout. */
GST_START_TEST(test_stall_restarts_child) {
  BinPipeline pipeline(
      "reconnectbin name=r stall-timeout=1000 retry-delay=50 "
      "child=\"videotestsrc is-live=true ! capsfilter caps=video/x-raw,width=32,height=24,framerate=30/1 ! "
      "valve name=v\" ! fakesink name=sink",
      "sink");
  fail_unless(pipeline.play());
  fail_unless(wait_until([&] { return pipeline.frames.count() >= 10; }, 10000));
  GstElement *valve = gst_bin_get_by_name(GST_BIN(pipeline.pipeline), "v");
  fail_unless(valve != nullptr);
  g_object_set(valve, "drop", TRUE, nullptr); /* the child goes silent */
  gst_object_unref(valve);
  fail_unless(wait_until([&] { return pipeline.stat("stalls") >= 1; }, 10000));
  const int before = pipeline.frames.count();
  /* the restarted child is a fresh instance, with its valve open */
  fail_unless(wait_until([&] { return pipeline.frames.count() >= before + 10; }, 10000), "frames did not resume");
  fail_unless(pipeline.stat("restarts") >= 1);
  fail_unless(pipeline.bus.errors().empty());
  fail_unless(pipeline.bus.count_element_messages(gstmtx::kStatusMessageName, "state", "reconnecting") >= 1);
  fail_unless_equals_int(pipeline.stop(), GST_STATE_CHANGE_SUCCESS);
}
GST_END_TEST;

/* A child error becomes a warning and a restart; the upstream source never notices. */
static GstPadProbeReturn count_force_key_unit(GstPad *, GstPadProbeInfo *info, gpointer user_data) {
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
  if (gst_video_event_is_force_key_unit(event))
    (*static_cast<std::atomic<int> *>(user_data))++;
  return GST_PAD_PROBE_OK;
}

GST_START_TEST(test_sink_side_drops_while_down) {
  BinPipeline pipeline(
      "videotestsrc name=src is-live=true ! video/x-raw,width=32,height=24,framerate=50/1 ! "
      "reconnectbin name=r retry-delay=300 max-retry-delay=300 child=\"identity error-after=10 ! fakesink\"");
  BufferCounter produced;
  GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline.pipeline), "src");
  GstPad *src_pad = gst_element_get_static_pad(src, "src");
  produced.attach(src_pad);
  std::atomic<int> key_unit_requests{0};
  gst_pad_add_probe(src_pad, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, count_force_key_unit, &key_unit_requests, nullptr);
  gst_object_unref(src_pad);
  gst_object_unref(src);
  fail_unless(pipeline.play());
  fail_unless(wait_until([&] { return pipeline.stat("restarts") >= 3; }, 20000));
  fail_unless(pipeline.stat("buffers-dropped") > 0, "buffers must be dropped while the child is down");
  const int before = produced.count();
  fail_unless(wait_until([&] { return produced.count() >= before + 20; }, 10000), "the source stopped");
  fail_unless(pipeline.bus.errors().empty());
  fail_unless(pipeline.bus.warnings().size() >= 3);
  fail_unless(key_unit_requests.load() >= 3, "a force-key-unit goes upstream after each restart (%d)",
              key_unit_requests.load());
  fail_unless_equals_int(pipeline.stop(), GST_STATE_CHANGE_SUCCESS);
}
GST_END_TEST;

/* Upstream ends while the sink child is down: the bin ends too (EOS on the bus) and stops
 * restarting. */
GST_START_TEST(test_sink_side_upstream_eos_while_down) {
  BinPipeline pipeline(
      "videotestsrc is-live=true num-buffers=20 ! video/x-raw,width=32,height=24,framerate=30/1 ! "
      "reconnectbin name=r retry-delay=3000 max-retry-delay=3000 child=\"identity error-after=3 ! fakesink\"");
  fail_unless(pipeline.play());
  fail_unless(wait_until([&] { return pipeline.bus.eos_count() >= 1; }, 10000), "no EOS");
  g_usleep(3500 * 1000); /* past the retry delay: no restart may follow */
  fail_unless_equals_int(pipeline.stat("restarts"), 0);
  fail_unless(pipeline.bus.count_element_messages(gstmtx::kStatusMessageName, "state", "stopped") >= 1);
  fail_unless(pipeline.bus.errors().empty());
  fail_unless_equals_int(pipeline.stop(), GST_STATE_CHANGE_SUCCESS);
}
GST_END_TEST;

/* The retry rule: a child run that delivered data ends the outage, so a child that delivers and
 * then ends is always restarted after retry-delay, however short its runs (the old stable-period
 * rule doubled the delay here). A child failing before delivering anything backs off to
 * max-retry-delay: tests/faults/test_crash_loop.cpp. */
static std::vector<gint64> retry_delays(const TestPipeline &pipeline) {
  std::vector<gint64> delays;
  for (GstStructure *s : pipeline.bus.element_messages(gstmtx::kStatusMessageName)) {
    gint64 ms = -1;
    if (g_strcmp0(gst_structure_get_string(s, "state"), "reconnecting") == 0 &&
        gst_structure_get_int64(s, "retry-in-ms", &ms))
      delays.push_back(ms);
    gst_structure_free(s);
  }
  return delays;
}

GST_START_TEST(test_delivered_run_ends_outage) {
  BinPipeline pipeline("reconnectbin name=r retry-delay=30 max-retry-delay=2000 retry-jitter=0 "
                       "child=\"videotestsrc num-buffers=3 ! capsfilter caps=video/x-raw,width=32,height=24\" "
                       "! fakesink sync=false");
  fail_unless(pipeline.play());
  fail_unless(wait_until([&] { return pipeline.stat("restarts") >= 10; }, 30000), "only %d restarts",
              static_cast<int>(pipeline.stat("restarts")));
  const auto delays = retry_delays(pipeline);
  fail_unless(delays.size() >= 10);
  for (gint64 ms : delays)
    fail_unless(ms == 30, "a run that delivered data must end the outage: retry in %lld ms",
                static_cast<long long>(ms));
  fail_unless(pipeline.bus.errors().empty());
  fail_unless_equals_int(pipeline.stop(), GST_STATE_CHANGE_SUCCESS);
}
GST_END_TEST;

/* The first byte of the last buffer fakesink "sink" rendered. */
static int last_sample_first_byte(GstElement *pipeline) {
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  GstSample *sample = nullptr;
  g_object_get(sink, "last-sample", &sample, nullptr);
  gst_object_unref(sink);
  fail_unless(sample != nullptr);
  GstMapInfo map;
  GstBuffer *buffer = gst_sample_get_buffer(sample);
  fail_unless(gst_buffer_map(buffer, &map, GST_MAP_READ));
  const int value = map.data[0];
  gst_buffer_unmap(buffer, &map);
  gst_sample_unref(sample);
  return value;
}

/* fallback=black: downstream keeps receiving black frames at the stream's rate on the clock. */
GST_START_TEST(test_fallback_black_frames_while_down) {
  BinPipeline pipeline(
      "reconnectbin name=r retry-delay=3000 max-retry-delay=3000 retry-jitter=0 fallback=black "
      "child=\"videotestsrc is-live=true num-buffers=15 pattern=white ! "
      "capsfilter caps=video/x-raw,format=I420,width=64,height=48,framerate=30/1\" ! fakesink name=sink sync=true",
      "sink");
  fail_unless(pipeline.play());
  fail_unless(wait_until([&] { return pipeline.stat("eos") >= 1; }, 30000), "the child never ended: %d frames",
              pipeline.frames.count());
  const guint64 fallback_start = pipeline.stat("fallback-buffers");
  g_usleep(2000 * 1000);
  const guint64 in_two_seconds = pipeline.stat("fallback-buffers") - fallback_start;
  /* 30 fps for 2 s; generous bounds for a loaded machine */
  fail_unless(in_two_seconds >= 30 && in_two_seconds <= 75, "%d fallback frames in 2 s",
              static_cast<int>(in_two_seconds));
  fail_unless_equals_int(pipeline.frames.width(), 64);
  const int luma = last_sample_first_byte(pipeline.pipeline);
  fail_unless(luma == 16, "luma of a black I420 frame is 16, got %d", luma);
  fail_unless(pipeline.bus.errors().empty());
  fail_unless_equals_int(pipeline.bus.eos_count(), 0);
  fail_unless_equals_int(pipeline.stop(), GST_STATE_CHANGE_SUCCESS);
}
GST_END_TEST;

/* fallback=freeze repeats the last frame (white here); raw audio gets silence. */
GST_START_TEST(test_fallback_freeze_and_silence) {
  BinPipeline pipeline(
      "reconnectbin name=r retry-delay=5000 max-retry-delay=5000 retry-jitter=0 fallback=freeze "
      "child=\"videotestsrc is-live=true num-buffers=10 pattern=white ! "
      "capsfilter caps=video/x-raw,format=I420,width=64,height=48,framerate=30/1\" ! fakesink name=sink sync=true");
  fail_unless(pipeline.play());
  fail_unless(wait_until([&] { return pipeline.stat("fallback-buffers") >= 10; }, 30000));
  fail_unless(last_sample_first_byte(pipeline.pipeline) == 235, "a frozen white I420 frame has luma 235, got %d",
              last_sample_first_byte(pipeline.pipeline));
  fail_unless(pipeline.bus.errors().empty());
  fail_unless_equals_int(pipeline.stop(), GST_STATE_CHANGE_SUCCESS);

  BinPipeline audio(
      "reconnectbin name=r retry-delay=5000 max-retry-delay=5000 retry-jitter=0 fallback=black "
      "child=\"audiotestsrc is-live=true num-buffers=5 wave=square volume=0.8 ! "
      "capsfilter caps=audio/x-raw,format=S16LE,rate=8000,channels=1\" ! fakesink name=sink sync=true");
  fail_unless(audio.play());
  fail_unless(wait_until([&] { return audio.stat("fallback-buffers") >= 10; }, 30000));
  fail_unless_equals_int(last_sample_first_byte(audio.pipeline), 0); /* S16 silence */
  fail_unless(audio.bus.errors().empty());
  fail_unless_equals_int(audio.stop(), GST_STATE_CHANGE_SUCCESS);
}
GST_END_TEST;

/* EOS passes when restart-on-eos=false. */
GST_START_TEST(test_eos_passes_without_restart_on_eos) {
  BinPipeline pipeline("reconnectbin name=r restart-on-eos=false "
                       "child=\"videotestsrc num-buffers=5\" ! fakesink sync=false");
  fail_unless(pipeline.play());
  fail_unless(wait_until([&] { return pipeline.bus.eos_count() == 1; }, 10000));
  fail_unless_equals_int(pipeline.stat("restarts"), 0);
  fail_unless_equals_int(pipeline.stop(), GST_STATE_CHANGE_SUCCESS);
}
GST_END_TEST;

/* gst-launch bin syntax: the elements added to the bin are rebuilt from a description. */
GST_START_TEST(test_bin_syntax_children_are_rebuilt) {
  BinPipeline pipeline(
      "reconnectbin.( name=r retry-delay=10 max-retry-delay=20 videotestsrc num-buffers=4 pattern=ball ! "
      "video/x-raw,width=40,height=30 ! identity ) ! fakesink name=sink sync=false",
      "sink");
  fail_unless(pipeline.play());
  fail_unless(wait_until([&] { return pipeline.stat("restarts") >= 3; }, 20000));
  fail_unless(wait_until([&] { return pipeline.frames.count() >= 12; }, 10000));
  fail_unless_equals_int(pipeline.frames.width(), 40);
  GstElement *bin = gst_bin_get_by_name(GST_BIN(pipeline.pipeline), "r");
  gchar *description = nullptr;
  g_object_get(bin, "child", &description, nullptr);
  gst_object_unref(bin);
  fail_unless(description != nullptr);
  fail_unless(strstr(description, "videotestsrc") && strstr(description, "num-buffers=\"4\"") &&
                  strstr(description, "pattern=\"ball\"") && strstr(description, "capsfilter"),
              "description: %s", description);
  g_free(description);
  fail_unless(pipeline.bus.errors().empty());
  fail_unless_equals_int(pipeline.stop(), GST_STATE_CHANGE_SUCCESS);
}
GST_END_TEST;

/* An application that stops the pipeline from a synchronous bus handler when the bin reports
 * `state`: the handler runs on the bin's control thread, which must not wait for itself. The bin
 * then plays again. */
static void check_stop_from_bus_handler(const char *child, const char *state) {
  TestPipeline pipeline(std::string("reconnectbin name=r retry-delay=50 max-retry-delay=50 child=\"") + child +
                            "\" ! fakesink name=sink sync=false async=false",
                        "sink");
  fail_unless(play_and_stop_on_status(pipeline, state, 10000), "not stopped on %s", state);
  const int connecting = pipeline.bus.count_element_messages(gstmtx::kStatusMessageName, "state", "connecting");
  fail_unless(pipeline.play());
  fail_unless(wait_until([&] {
    return pipeline.bus.count_element_messages(gstmtx::kStatusMessageName, "state", "connecting") > connecting;
  }, 10000), "the bin did not start again");
}

GST_START_TEST(test_stop_from_bus_handler) {
  const char *source = "videotestsrc is-live=true ! capsfilter caps=video/x-raw,width=32,height=24,framerate=30/1";
  check_stop_from_bus_handler(source, "connecting");
  check_stop_from_bus_handler(source, "connected");
  check_stop_from_bus_handler("filesrc location=/nonexistent", "reconnecting");
}
GST_END_TEST;

/* A description that does not parse fails the state change with a clear error. */
GST_START_TEST(test_bad_description) {
  GstElement *bin = gst_element_factory_make("reconnectbin", nullptr);
  fail_unless(bin != nullptr);
  g_object_set(bin, "child", "no-such-element ! fakesink", nullptr);
  fail_unless(gst_element_set_state(bin, GST_STATE_READY) == GST_STATE_CHANGE_FAILURE);
  gst_element_set_state(bin, GST_STATE_NULL);
  gst_object_unref(bin);
}
GST_END_TEST;

static Suite *reconnectbin_suite(void) {
  Suite *s = suite_create("reconnectbin");
  TCase *tc = tcase_create("element");
  tcase_set_timeout(tc, 90);
  tcase_add_test(tc, test_fifty_eos_restarts);
  tcase_add_test(tc, test_failing_child_posts_one_error);
  tcase_add_test(tc, test_stall_restarts_child);
  tcase_add_test(tc, test_sink_side_drops_while_down);
  tcase_add_test(tc, test_sink_side_upstream_eos_while_down);
  tcase_add_test(tc, test_delivered_run_ends_outage);
  tcase_add_test(tc, test_fallback_black_frames_while_down);
  tcase_add_test(tc, test_fallback_freeze_and_silence);
  tcase_add_test(tc, test_eos_passes_without_restart_on_eos);
  tcase_add_test(tc, test_bin_syntax_children_are_rebuilt);
  tcase_add_test(tc, test_bad_description);
  tcase_add_test(tc, test_stop_from_bus_handler);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(reconnectbin);
