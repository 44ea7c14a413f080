/* reconnectbin against a real MediaMTX (private network namespace): an RTSP reader survives
 * server restarts, an RTSP publisher publishes again after one, fallback frames while the server
 * is down. */
#include <gst/check/gstcheck.h>

#include <atomic>
#include <memory>
#include <string>

#include "mediamtx_server.h"
#include "pipeline_helpers.h"
#include "status.h"

using namespace testbed;

/* A plain publisher (it dies with the server, so the test starts it again). */
static std::unique_ptr<TestPipeline> start_publisher(const MediamtxServer &server, int width = 320, int height = 240) {
  auto publisher = std::make_unique<TestPipeline>(x264_rtsp_publisher(server, "cam", width, height));
  fail_unless(publisher->play());
  return publisher;
}

/* A pipeline around a reconnectbin named "r". */
struct BinPipeline : TestPipeline {
  using TestPipeline::TestPipeline;
  /* one number of the bin's stats */
  guint64 stat(const char *field) const { return stats_uint64("r", field); }
};

static std::string reader_description(const MediamtxServer &server, const std::string &extra, bool sync) {
  return "reconnectbin name=r retry-delay=200 max-retry-delay=1000 " + extra +
         " child=\"rtspsrc latency=0 protocols=tcp user-agent=reconnectbin-test location=" + server.rtsp_url("cam") +
         " ! rtph264depay ! avdec_h264\" ! fakesink name=sink sync=" + (sync ? "true" : "false");
}

GST_START_TEST(test_reader_survives_five_server_restarts) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  auto publisher = start_publisher(server);
  fail_unless(server.wait_path_ready("cam", 15000), "path never became ready: %s", server.read_log().c_str());

  BinPipeline reader(reader_description(server, "", false), "sink");
  fail_unless(reader.play());
  fail_unless(wait_until([&] { return reader.frames.count() >= 10; }, 20000), "only %d frames", reader.frames.count());

  for (int cycle = 1; cycle <= 5; ++cycle) {
    server.kill_hard();
    publisher.reset();
    const int reconnecting_before =
        reader.bus.count_element_messages(gstmtx::kStatusMessageName, "state", "reconnecting");
    fail_unless(wait_until([&] {
      return reader.bus.count_element_messages(gstmtx::kStatusMessageName, "state", "reconnecting") > reconnecting_before;
    }, 15000), "cycle %d: the reader did not notice the server died", cycle);
    fail_unless(server.start(), "cycle %d: server did not restart", cycle);
    /* the last time the stream comes back at another size: caps renegotiate downstream */
    publisher = cycle == 5 ? start_publisher(server, 480, 360) : start_publisher(server);
    fail_unless(server.wait_path_ready("cam", 15000), "cycle %d: path not ready", cycle);
    const int before = reader.frames.count();
    fail_unless(wait_until([&] { return reader.frames.count() >= before + 10; }, 30000),
                "cycle %d: frames did not resume (%d)", cycle, reader.frames.count() - before);
  }
  fail_unless(reader.bus.errors().empty(), "errors on the bus: %s", reader.bus.error_text().c_str());
  fail_unless(reader.stat("restarts") >= 5);
  fail_unless_equals_int(reader.frames.width(), 480);
  fail_unless_equals_int(reader.frames.height(), 360);
}
GST_END_TEST;

GST_START_TEST(test_publisher_publishes_again_after_server_restart) {
  fail_unless(in_test_namespace());

  MediamtxServer server;
  fail_unless(server.start());
  /* counted: the source's output */
  BinPipeline pipeline(
      "videotestsrc name=src is-live=1 ! video/x-raw,width=320,height=240,framerate=30/1 ! "
      "x264enc name=encoder tune=zerolatency speed-preset=ultrafast key-int-max=30 ! "
      "reconnectbin name=r retry-delay=200 max-retry-delay=1000 child=\"rtspclientsink protocols=tcp location=" +
          server.rtsp_url("cam") + "\"",
      "encoder");
  fail_unless(pipeline.play());
  fail_unless(server.wait_path_ready("cam", 15000), "never published: %s", server.read_log().c_str());

  server.kill_hard();
  const int before = pipeline.frames.count();
  /* the source keeps running while the server is gone */
  fail_unless(wait_until([&] { return pipeline.frames.count() >= before + 30; }, 10000), "the source stopped");
  fail_unless(wait_until([&] { return pipeline.stat("buffers-dropped") > 0; }, 10000));
  fail_unless(server.start());
  fail_unless(server.wait_path_ready("cam", 20000), "not published again: %s", server.read_log().c_str());
  fail_unless(pipeline.bus.errors().empty(), "errors on the bus: %s", pipeline.bus.error_text().c_str());
  fail_unless(pipeline.stat("restarts") >= 1);
}
GST_END_TEST;

/* counts what downstream must never see from a restart: flushes, EOS, a second stream-start */
struct DownstreamEvents {
  std::atomic<int> flushes{0}, eos{0}, stream_starts{0};
};

static GstPadProbeReturn count_downstream_events(GstPad *, GstPadProbeInfo *info, gpointer user_data) {
  auto *counts = static_cast<DownstreamEvents *>(user_data);
  switch (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info))) {
  case GST_EVENT_FLUSH_START:
  case GST_EVENT_FLUSH_STOP: counts->flushes++; break;
  case GST_EVENT_EOS: counts->eos++; break;
  case GST_EVENT_STREAM_START: counts->stream_starts++; break;
  default: break;
  }
  return GST_PAD_PROBE_OK;
}

GST_START_TEST(test_fallback_black_while_server_down) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  auto publisher = start_publisher(server);
  fail_unless(server.wait_path_ready("cam", 15000));

  BinPipeline reader(reader_description(server, "fallback=black", true), "sink");
  DownstreamEvents events;
  {
    GstElement *sink = gst_bin_get_by_name(GST_BIN(reader.pipeline), "sink");
    GstPad *pad = gst_element_get_static_pad(sink, "sink");
    gst_pad_add_probe(pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM | GST_PAD_PROBE_TYPE_EVENT_FLUSH),
                      count_downstream_events, &events, nullptr);
    gst_object_unref(pad);
    gst_object_unref(sink);
  }
  fail_unless(reader.play());
  fail_unless(wait_until([&] { return reader.frames.count() >= 10; }, 20000), "only %d frames", reader.frames.count());

  server.kill_hard();
  publisher.reset();
  fail_unless(wait_until([&] { return reader.stat("fallback-buffers") > 0; }, 15000), "no fallback");
  const int start = reader.frames.count();
  g_usleep(3 * G_USEC_PER_SEC);
  const int in_three_seconds = reader.frames.count() - start;
  /* 30 fps; generous bounds for a loaded machine, but not a flood */
  fail_unless(in_three_seconds >= 45 && in_three_seconds <= 120, "%d frames in 3 s while down", in_three_seconds);
  fail_unless_equals_int(reader.frames.width(), 320);

  fail_unless(server.start());
  publisher = start_publisher(server);
  fail_unless(wait_until([&] {
    return reader.bus.count_element_messages(gstmtx::kStatusMessageName, "state", "connected") >= 2;
  }, 30000), "the child did not come back");
  fail_unless(reader.bus.errors().empty());
  fail_unless_equals_int(reader.bus.eos_count(), 0);
  fail_unless_equals_int(events.flushes.load(), 0);
  fail_unless_equals_int(events.eos.load(), 0);
  fail_unless_equals_int(events.stream_starts.load(), 1);
  /* the status names the child by its factories only: no URL */
  auto statuses = reader.bus.element_messages(gstmtx::kStatusMessageName);
  fail_unless(!statuses.empty());
  fail_unless_equals_string(gst_structure_get_string(statuses.back(), "transport"),
                            "rtspsrc ! rtph264depay ! avdec_h264");
  for (auto *st : statuses)
    gst_structure_free(st);
}
GST_END_TEST;

/* gst-launch bin syntax around rtspsrc (a delayed link to the depayloader): rebuilt after a
 * server restart from the description the bin made of its children. */
GST_START_TEST(test_bin_syntax_reader_survives_server_restart) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  auto publisher = start_publisher(server);
  fail_unless(server.wait_path_ready("cam", 15000));

  BinPipeline reader(
      "reconnectbin.( name=r retry-delay=200 max-retry-delay=1000 rtspsrc latency=0 protocols=tcp "
      "user-agent=reconnectbin-test location=" +
          server.rtsp_url("cam") +
          " ! rtph264depay ! avdec_h264 ) ! fakesink name=sink sync=false",
      "sink");
  fail_unless(reader.play());
  fail_unless(wait_until([&] { return reader.frames.count() >= 10; }, 20000), "only %d frames", reader.frames.count());

  server.kill_hard();
  publisher.reset();
  fail_unless(wait_until([&] { return reader.stat("errors") >= 1; }, 15000));
  fail_unless(server.start());
  publisher = start_publisher(server);
  const int before = reader.frames.count();
  fail_unless(wait_until([&] { return reader.frames.count() >= before + 10; }, 30000), "frames did not resume");
  fail_unless(reader.bus.errors().empty(), "errors on the bus: %s", reader.bus.error_text().c_str());
}
GST_END_TEST;

static Suite *reconnectbin_network_suite(void) {
  Suite *s = suite_create("reconnectbin-network");
  TCase *tc = tcase_create("mediamtx");
  tcase_set_timeout(tc, 150);
  tcase_add_checked_fixture(tc, tolerate_rtspclientsink_socket_criticals, nullptr);
  tcase_add_test(tc, test_reader_survives_five_server_restarts);
  tcase_add_test(tc, test_publisher_publishes_again_after_server_restart);
  tcase_add_test(tc, test_fallback_black_while_server_down);
  tcase_add_test(tc, test_bin_syntax_reader_survives_server_restart);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(reconnectbin_network);
