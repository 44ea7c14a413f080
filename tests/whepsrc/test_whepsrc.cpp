/* whepsrc against a real MediaMTX (in the test's network namespace). */
#include <gst/check/gstcheck.h>

#include <string>

#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

/* x264 publisher over RTSP (stock elements, so whepsrc is tested on its own). */
static std::string rtsp_publisher(const MediamtxServer &server, const std::string &path, int width = 320,
                                  int height = 240, bool audio = false) {
  std::string d = "videotestsrc is-live=true ! video/x-raw,width=" + std::to_string(width) + ",height=" +
                  std::to_string(height) +
                  ",framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=500 ! "
                  "video/x-h264,profile=constrained-baseline ! rtspclientsink name=s protocols=tcp location=" +
                  server.rtsp_url(path);
  if (audio)
    d += " audiotestsrc is-live=true wave=ticks ! audioconvert ! opusenc ! s.";
  return d;
}

struct Publisher {
  GstElement *pipeline = nullptr;
  explicit Publisher(const std::string &description) {
    pipeline = parse_pipeline(description);
    fail_unless(pipeline != nullptr);
    fail_unless(set_state_and_wait(pipeline, GST_STATE_PLAYING));
  }
  ~Publisher() { stop(); }
  void stop() {
    if (pipeline) {
      gst_element_set_state(pipeline, GST_STATE_NULL);
      gst_object_unref(pipeline);
      pipeline = nullptr;
    }
  }
};

struct Viewer {
  GstElement *pipeline;
  BusWatcher *bus;
  BufferCounter frames;
  explicit Viewer(const std::string &description, const char *counted = "sink") {
    pipeline = parse_pipeline(description);
    fail_unless(pipeline != nullptr);
    bus = new BusWatcher(pipeline);
    if (counted)
      frames.attach(pipeline, counted);
  }
  ~Viewer() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    delete bus;
    gst_object_unref(pipeline);
  }
  bool play() { return set_state_and_wait(pipeline, GST_STATE_PLAYING); }
  bool wait_frames(int n, int timeout_ms) {
    int start = frames.count();
    return wait_until([&] { return frames.count() >= start + n; }, timeout_ms);
  }
  GstStructure *stats() {
    GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
    GstStructure *s = nullptr;
    g_object_get(src, "stats", &s, nullptr);
    gst_object_unref(src);
    return s;
  }
};

static std::string whep_viewer(const MediamtxServer &server, const std::string &path, const std::string &extra = "") {
  return "whepsrc name=src location=" + server.whep_url(path) + " " + extra +
         " ! queue ! fakesink name=sink sync=false async=false";
}

GST_START_TEST(test_h264_decoded) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub(rtsp_publisher(server, "cam", 320, 240));
  fail_unless(server.wait_path_ready("cam", 10000));
  Viewer viewer(whep_viewer(server, "cam", "audio=false"));
  fail_unless(viewer.play());
  fail_unless(viewer.wait_frames(20, 15000), "only %d frames", viewer.frames.count());
  fail_unless_equals_int(viewer.frames.width(), 320);
  fail_unless_equals_int(viewer.frames.height(), 240);
  std::string caps = viewer.frames.caps_name();
  fail_unless(caps == "video/x-raw", "caps %s", caps.c_str());
  fail_unless(viewer.bus->errors().empty());
  fail_unless(viewer.bus->count_element_messages("gst-mediamtx-status", "state", "connected") >= 1);
  GstStructure *stats = viewer.stats();
  fail_unless(stats != nullptr);
  fail_unless_equals_string(gst_structure_get_string(stats, "state"), "connected");
  guint64 frames = 0;
  gst_structure_get_uint64(stats, "frames", &frames);
  fail_unless(frames >= 20);
  gst_structure_free(stats);
  fail_unless_equals_int(server.webrtc_session_count(), 1);
}
GST_END_TEST;

GST_START_TEST(test_stop_deletes_session) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub(rtsp_publisher(server, "cam"));
  fail_unless(server.wait_path_ready("cam", 10000));
  for (int cycle = 0; cycle < 2; ++cycle) {
    Viewer viewer(whep_viewer(server, "cam"));
    fail_unless(viewer.play());
    fail_unless(viewer.wait_frames(5, 15000));
    fail_unless_equals_int(server.webrtc_session_count(), 1);
    /* PLAYING -> NULL -> PLAYING in the same pipeline */
    fail_unless(set_state_and_wait(viewer.pipeline, GST_STATE_NULL));
    fail_unless(wait_until([&] { return server.webrtc_session_count() == 0; }, 3000),
                "session left on the server after stop: %d", server.webrtc_session_count());
    fail_unless(viewer.play());
    fail_unless(viewer.wait_frames(5, 15000));
  }
  fail_unless(wait_until([&] { return server.webrtc_session_count() == 0; }, 3000));
}
GST_END_TEST;

static Suite *whepsrc_suite(void) {
  Suite *s = suite_create("whepsrc");
  TCase *tc = tcase_create("mediamtx");
  tcase_set_timeout(tc, 90);
  tcase_add_test(tc, test_h264_decoded);
  tcase_add_test(tc, test_stop_deletes_session);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(whepsrc);
