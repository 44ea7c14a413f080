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

static std::string publisher_description(const MediamtxServer &server, const std::string &path, int width = 320,
                                         int height = 240) {
  return "videotestsrc is-live=true ! video/x-raw,width=" + std::to_string(width) + ",height=" +
         std::to_string(height) + ",framerate=30/1 ! "
         "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! "
         "rtspclientsink protocols=tcp location=" +
         server.rtsp_url(path);
}

/* A plain publisher (it dies with the server, so the test restarts it). */
class Publisher {
public:
  explicit Publisher(const MediamtxServer &server) : server_(server) {}
  ~Publisher() { stop(); }
  void start(int width = 320, int height = 240) {
    stop();
    pipeline_ = parse_pipeline(publisher_description(server_, "cam", width, height));
    fail_unless(pipeline_ != nullptr);
    fail_unless(set_state_and_wait(pipeline_, GST_STATE_PLAYING));
  }
  void stop() {
    if (!pipeline_)
      return;
    gst_element_set_state(pipeline_, GST_STATE_NULL);
    gst_object_unref(pipeline_);
    pipeline_ = nullptr;
  }

private:
  const MediamtxServer &server_;
  GstElement *pipeline_ = nullptr;
};

/* rtspclientsink 1.22 (third party, used by every publisher here) keeps using a connection it
 * has just closed when the server dies: GIO asserts that its socket or stream is one
 * (g_socket_get/set_timeout, g_output_stream_writev). Harmless to these tests and not ours to
 * fix, so those GIO type assertions (only) are not fatal. */
static void ignore_rtspclientsink_socket_criticals(void) {
  gst_check_add_log_filter("GLib-GIO", G_LOG_LEVEL_CRITICAL,
                           g_regex_new("assertion 'G_IS_(SOCKET|OUTPUT_STREAM|INPUT_STREAM|IO_STREAM) \\(",
                                       G_REGEX_OPTIMIZE, G_REGEX_MATCH_DEFAULT, nullptr),
                           nullptr, nullptr, nullptr);
}

static guint64 stat_u64(GstElement *pipeline, const char *field) {
  GstElement *bin = gst_bin_get_by_name(GST_BIN(pipeline), "r");
  fail_unless(bin != nullptr);
  GstStructure *stats = nullptr;
  g_object_get(bin, "stats", &stats, nullptr);
  gst_object_unref(bin);
  guint64 value = 0;
  guint u = 0;
  if (gst_structure_get_uint(stats, field, &u))
    value = u;
  else
    gst_structure_get_uint64(stats, field, &value);
  gst_structure_free(stats);
  return value;
}

static std::string reader_description(const MediamtxServer &server, const std::string &extra, bool sync) {
  return "reconnectbin name=r retry-delay=200 max-retry-delay=1000 " + extra +
         " child=\"rtspsrc latency=0 protocols=tcp user-agent=reconnectbin-test location=" + server.rtsp_url("cam") +
         " ! rtph264depay ! avdec_h264\" ! fakesink name=sink sync=" + (sync ? "true" : "false");
}

GST_START_TEST(test_reader_survives_five_server_restarts) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher publisher(server);
  publisher.start();
  fail_unless(server.wait_path_ready("cam", 15000), "path never became ready: %s", server.read_log().c_str());

  GstElement *reader = parse_pipeline(reader_description(server, "", false));
  fail_unless(reader != nullptr);
  BusWatcher bus(reader);
  BufferCounter frames;
  frames.attach(reader, "sink");
  fail_unless(set_state_and_wait(reader, GST_STATE_PLAYING));
  fail_unless(wait_until([&] { return frames.count() >= 10; }, 20000), "only %d frames", frames.count());

  for (int cycle = 1; cycle <= 5; ++cycle) {
    server.kill_hard();
    publisher.stop();
    const int reconnecting_before =
        bus.count_element_messages(gstmtx::kStatusMessageName, "state", "reconnecting");
    fail_unless(wait_until([&] {
      return bus.count_element_messages(gstmtx::kStatusMessageName, "state", "reconnecting") > reconnecting_before;
    }, 15000), "cycle %d: the reader did not notice the server died", cycle);
    fail_unless(server.start(), "cycle %d: server did not restart", cycle);
    /* the last time the stream comes back at another size: caps renegotiate downstream */
    if (cycle == 5)
      publisher.start(480, 360);
    else
      publisher.start();
    fail_unless(server.wait_path_ready("cam", 15000), "cycle %d: path not ready", cycle);
    const int before = frames.count();
    fail_unless(wait_until([&] { return frames.count() >= before + 10; }, 30000),
                "cycle %d: frames did not resume (%d)", cycle, frames.count() - before);
  }
  fail_unless(bus.errors().empty(), "errors on the bus: %s", bus.errors().empty() ? "" : bus.errors()[0].c_str());
  fail_unless(stat_u64(reader, "restarts") >= 5);
  fail_unless_equals_int(frames.width(), 480);
  fail_unless_equals_int(frames.height(), 360);
  gst_element_set_state(reader, GST_STATE_NULL);
  gst_object_unref(reader);
}
GST_END_TEST;

GST_START_TEST(test_publisher_publishes_again_after_server_restart) {
  fail_unless(in_test_namespace());

  MediamtxServer server;
  fail_unless(server.start());
  GstElement *pipeline = parse_pipeline(
      "videotestsrc name=src is-live=1 ! video/x-raw,width=320,height=240,framerate=30/1 ! "
      "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! "
      "reconnectbin name=r retry-delay=200 max-retry-delay=1000 child=\"rtspclientsink protocols=tcp location=" +
      server.rtsp_url("cam") + "\"");
  fail_unless(pipeline != nullptr);
  BusWatcher bus(pipeline);
  BufferCounter produced;
  produced.attach(pipeline, "src", "src");
  fail_unless(set_state_and_wait(pipeline, GST_STATE_PLAYING));
  fail_unless(server.wait_path_ready("cam", 15000), "never published: %s", server.read_log().c_str());

  server.kill_hard();
  const int before = produced.count();
  /* the source keeps running while the server is gone */
  fail_unless(wait_until([&] { return produced.count() >= before + 30; }, 10000), "the source stopped");
  fail_unless(wait_until([&] { return stat_u64(pipeline, "buffers-dropped") > 0; }, 10000));
  fail_unless(server.start());
  fail_unless(server.wait_path_ready("cam", 20000), "not published again: %s", server.read_log().c_str());
  fail_unless(bus.errors().empty(), "errors on the bus: %s", bus.errors().empty() ? "" : bus.errors()[0].c_str());
  fail_unless(stat_u64(pipeline, "restarts") >= 1);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
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
  Publisher publisher(server);
  publisher.start();
  fail_unless(server.wait_path_ready("cam", 15000));

  GstElement *reader = parse_pipeline(reader_description(server, "fallback=black", true));
  BusWatcher bus(reader);
  BufferCounter frames;
  frames.attach(reader, "sink");
  DownstreamEvents events;
  {
    GstElement *sink = gst_bin_get_by_name(GST_BIN(reader), "sink");
    GstPad *pad = gst_element_get_static_pad(sink, "sink");
    gst_pad_add_probe(pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM | GST_PAD_PROBE_TYPE_EVENT_FLUSH),
                      count_downstream_events, &events, nullptr);
    gst_object_unref(pad);
    gst_object_unref(sink);
  }
  fail_unless(set_state_and_wait(reader, GST_STATE_PLAYING));
  fail_unless(wait_until([&] { return frames.count() >= 10; }, 20000), "only %d frames", frames.count());

  server.kill_hard();
  publisher.stop();
  fail_unless(wait_until([&] { return stat_u64(reader, "fallback-buffers") > 0; }, 15000), "no fallback");
  const int start = frames.count();
  g_usleep(3 * G_USEC_PER_SEC);
  const int in_three_seconds = frames.count() - start;
  /* 30 fps; generous bounds for a loaded machine, but not a flood */
  fail_unless(in_three_seconds >= 45 && in_three_seconds <= 120, "%d frames in 3 s while down", in_three_seconds);
  fail_unless_equals_int(frames.width(), 320);

  fail_unless(server.start());
  publisher.start();
  fail_unless(wait_until([&] {
    return bus.count_element_messages(gstmtx::kStatusMessageName, "state", "connected") >= 2;
  }, 30000), "the child did not come back");
  fail_unless(bus.errors().empty());
  fail_unless_equals_int(bus.eos_count(), 0);
  fail_unless_equals_int(events.flushes.load(), 0);
  fail_unless_equals_int(events.eos.load(), 0);
  fail_unless_equals_int(events.stream_starts.load(), 1);
  /* the status names the child by its factories only: no URL */
  auto statuses = bus.element_messages(gstmtx::kStatusMessageName);
  fail_unless(!statuses.empty());
  fail_unless_equals_string(gst_structure_get_string(statuses.back(), "transport"),
                            "rtspsrc ! rtph264depay ! avdec_h264");
  for (auto *st : statuses)
    gst_structure_free(st);
  gst_element_set_state(reader, GST_STATE_NULL);
  gst_object_unref(reader);
}
GST_END_TEST;

/* gst-launch bin syntax around rtspsrc (a delayed link to the depayloader): rebuilt after a
 * server restart from the description the bin made of its children. */
GST_START_TEST(test_bin_syntax_reader_survives_server_restart) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher publisher(server);
  publisher.start();
  fail_unless(server.wait_path_ready("cam", 15000));

  GstElement *reader = parse_pipeline(
      "reconnectbin.( name=r retry-delay=200 max-retry-delay=1000 rtspsrc latency=0 protocols=tcp "
      "user-agent=reconnectbin-test location=" + server.rtsp_url("cam") +
      " ! rtph264depay ! avdec_h264 ) ! fakesink name=sink sync=false");
  fail_unless(reader != nullptr);
  BusWatcher bus(reader);
  BufferCounter frames;
  frames.attach(reader, "sink");
  fail_unless(set_state_and_wait(reader, GST_STATE_PLAYING));
  fail_unless(wait_until([&] { return frames.count() >= 10; }, 20000), "only %d frames", frames.count());

  server.kill_hard();
  publisher.stop();
  fail_unless(wait_until([&] { return stat_u64(reader, "errors") >= 1; }, 15000));
  fail_unless(server.start());
  publisher.start();
  const int before = frames.count();
  fail_unless(wait_until([&] { return frames.count() >= before + 10; }, 30000), "frames did not resume");
  fail_unless(bus.errors().empty(), "errors on the bus: %s", bus.errors().empty() ? "" : bus.errors()[0].c_str());
  gst_element_set_state(reader, GST_STATE_NULL);
  gst_object_unref(reader);
}
GST_END_TEST;

static Suite *reconnectbin_network_suite(void) {
  Suite *s = suite_create("reconnectbin-network");
  TCase *tc = tcase_create("mediamtx");
  tcase_set_timeout(tc, 150);
  tcase_add_checked_fixture(tc, ignore_rtspclientsink_socket_criticals, nullptr);
  tcase_add_test(tc, test_reader_survives_five_server_restarts);
  tcase_add_test(tc, test_publisher_publishes_again_after_server_restart);
  tcase_add_test(tc, test_fallback_black_while_server_down);
  tcase_add_test(tc, test_bin_syntax_reader_survives_server_restart);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(reconnectbin_network);
