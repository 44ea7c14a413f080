/* whepsrc placeholder=status against a real MediaMTX (issue 19): what a person watching sees,
 * checked from the pixels a display-paced sink renders and from the slate's words.
 *
 * The publisher sends a solid red picture and the slate is a dark blue-grey, so every rendered
 * frame is told apart by one pixel in its corner (the text is drawn in the middle).
 *
 * With PLACEHOLDER_SNAPSHOTS=<folder> the test writes a PNG of each state it saw there
 * (connecting, waiting, live, reconnecting, error): docs/viewer.md shows them.
 */
#include <gst/base/gstbasesink.h>
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

namespace {

/* The camera: solid red at 640x360 (the slate starts at placeholder-caps' 1280x720). */
std::string red_publisher(const MediamtxServer &server, const std::string &path, bool audio = false) {
  return std::string(audio ? "audiotestsrc is-live=true wave=sine ! audioconvert ! opusenc ! s. " : "") +
         "videotestsrc is-live=true pattern=red ! video/x-raw,width=640,height=360,framerate=30/1 ! "
         "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=300 ! "
         "video/x-h264,profile=constrained-baseline ! rtspclientsink name=s protocols=tcp location=" +
         server.rtsp_url(path);
}

struct Publisher {
  GstElement *pipeline = nullptr;
  explicit Publisher(const std::string &description) {
    pipeline = parse_pipeline(description);
    fail_unless(set_state_and_wait(pipeline, GST_STATE_PLAYING));
  }
  ~Publisher() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(pipeline);
  }
};

enum class Picture { Other, Black, Slate, Camera };

const char *picture_name(Picture p) {
  switch (p) {
  case Picture::Black: return "black";
  case Picture::Slate: return "slate";
  case Picture::Camera: return "camera";
  default: return "other";
  }
}

/* The slate's background is 0x263238; the camera is red. */
Picture classify(guint8 r, guint8 g, guint8 b) {
  auto near = [](int v, int want) { return std::abs(v - want) <= 24; };
  if (r < 20 && g < 20 && b < 20)
    return Picture::Black;
  if (near(r, 0x26) && near(g, 0x32) && near(b, 0x38))
    return Picture::Slate;
  if (r > 170 && g < 80 && b < 80)
    return Picture::Camera;
  return Picture::Other;
}

/* The words of the slate as a short key for snapshots: the state line's first words. */
std::string state_key(const std::string &text) {
  if (text.empty())
    return "live";
  for (const char *key : {"reconnecting", "connecting", "waiting for the camera", "HLS fallback", "error", "connected"})
    if (text.find(key) != std::string::npos)
      return std::string(key) == "waiting for the camera" ? "waiting" : std::string(key) == "HLS fallback" ? "fallback" : key;
  return "other";
}

/* What the display-paced sink rendered, frame by frame (fakesink sync=true, its handoff runs when
 * a frame is due on the clock). */
struct Rendered {
  GstElement *source = nullptr; /* whepsrc, for its placeholder-text */
  std::mutex lock;
  struct Frame {
    Picture picture;
    GstClockTime running_time; /* of the buffer */
    gint64 rendered_us;        /* monotonic, when the sink rendered it */
    int width, height;
    std::string text;          /* placeholder-text when it was rendered */
  };
  std::vector<Frame> frames;
  std::map<std::string, GstSample *> snapshots; /* a frame of each state */
  std::map<std::string, int> seen;              /* frames of each state */
  std::atomic<int> sequence{0};

  ~Rendered() {
    for (auto &s : snapshots)
      gst_sample_unref(s.second);
  }

  static void on_handoff(GstElement *, GstBuffer *buffer, GstPad *pad, gpointer data) {
    auto *self = static_cast<Rendered *>(data);
    g_autoptr(GstCaps) caps = gst_pad_get_current_caps(pad);
    GstVideoInfo info;
    if (!caps || !gst_video_info_from_caps(&info, caps))
      return;
    GstMapInfo map;
    if (!gst_buffer_map(buffer, &map, GST_MAP_READ))
      return;
    const int x = info.width / 20, y = info.height / 20;
    const guint8 *px = map.data + y * GST_VIDEO_INFO_PLANE_STRIDE(&info, 0) + x * 3;
    const Picture picture = classify(px[0], px[1], px[2]);
    gst_buffer_unmap(buffer, &map);
    GstClockTime running_time = GST_CLOCK_TIME_NONE;
    if (GstEvent *ev = gst_pad_get_sticky_event(pad, GST_EVENT_SEGMENT, 0)) {
      const GstSegment *segment;
      gst_event_parse_segment(ev, &segment);
      running_time = gst_segment_to_running_time(segment, GST_FORMAT_TIME, GST_BUFFER_PTS(buffer));
      gst_event_unref(ev);
    }
    GstStructure *stats = nullptr;
    g_object_get(self->source, "stats", &stats, nullptr);
    const char *t = stats ? gst_structure_get_string(stats, "placeholder-text") : nullptr;
    std::string text = t ? t : "";
    if (stats)
      gst_structure_free(stats);
    std::lock_guard<std::mutex> guard(self->lock);
    self->frames.push_back({picture, running_time, g_get_monotonic_time(), info.width, info.height, text});
    self->sequence++;
    /* up to the fifth frame of each state: its words are drawn by then (an error that ends the
     * pipeline leaves two or three) */
    const std::string key = state_key(text);
    if (++self->seen[key] <= 5) {
      if (self->snapshots.count(key))
        gst_sample_unref(self->snapshots[key]);
      self->snapshots[key] = gst_sample_new(buffer, caps, nullptr, nullptr);
    }
  }

  size_t count() {
    std::lock_guard<std::mutex> guard(lock);
    return frames.size();
  }
  /* the last frame (copy); picture Other when none */
  Frame last() {
    std::lock_guard<std::mutex> guard(lock);
    return frames.empty() ? Frame{Picture::Other, GST_CLOCK_TIME_NONE, 0, 0, 0, ""} : frames.back();
  }
  /* frames rendered since index `from` that are `picture` and whose words contain `words` */
  int count_since(size_t from, Picture picture, const char *words = nullptr) {
    std::lock_guard<std::mutex> guard(lock);
    int n = 0;
    for (size_t i = from; i < frames.size(); ++i)
      if (frames[i].picture == picture && (!words || frames[i].text.find(words) != std::string::npos))
        ++n;
    return n;
  }

  /* `only`: the state to write, empty for all */
  void write_snapshots(const std::string &only = {}) {
    const char *dir = g_getenv("PLACEHOLDER_SNAPSHOTS");
    if (!dir || !*dir)
      return;
    std::lock_guard<std::mutex> guard(lock);
    for (auto &s : snapshots) {
      if (!only.empty() && s.first != only)
        continue;
      g_autoptr(GstCaps) png = gst_caps_new_simple("image/png", "width", G_TYPE_INT, 640, "height", G_TYPE_INT, 360,
                                                   nullptr);
      GError *error = nullptr;
      GstSample *out = gst_video_convert_sample(s.second, png, 10 * GST_SECOND, &error);
      if (!out) {
        g_printerr("snapshot %s: %s\n", s.first.c_str(), error ? error->message : "failed");
        g_clear_error(&error);
        continue;
      }
      GstMapInfo map;
      GstBuffer *buffer = gst_sample_get_buffer(out);
      gst_buffer_map(buffer, &map, GST_MAP_READ);
      const std::string path = std::string(dir) + "/" + s.first + ".png";
      fail_unless(g_file_set_contents(path.c_str(), reinterpret_cast<const gchar *>(map.data), map.size, nullptr));
      gst_buffer_unmap(buffer, &map);
      gst_sample_unref(out);
      g_print("snapshot: %s\n", path.c_str());
    }
  }
};

/* whepsrc placeholder=status into a display-paced sink that renders RGB. */
std::string slate_viewer(const std::string &location, const std::string &extra) {
  return "whepsrc name=src placeholder=status audio=false location=" + location + " " + extra +
         " ! videoconvert ! video/x-raw,format=RGB ! fakesink name=sink sync=true signal-handoffs=true";
}

void watch_rendering(TestPipeline &viewer, Rendered &rendered) {
  rendered.source = gst_bin_get_by_name(GST_BIN(viewer.pipeline), "src");
  gst_object_unref(rendered.source); /* the pipeline holds it */
  GstElement *sink = gst_bin_get_by_name(GST_BIN(viewer.pipeline), "sink");
  g_signal_connect(sink, "handoff", G_CALLBACK(Rendered::on_handoff), &rendered);
  gst_object_unref(sink);
}

}  // namespace

/* the path of the first test: as the seed's cameras are named, for the pictures in docs/viewer.md */
static const char *kPath = "raspberry-01";

/* Before the publisher: the slate, naming the path and "waiting for the camera to publish";
 * publisher → the camera; MediaMTX killed → the slate with "reconnecting" within timeout + 1 s at
 * the live picture's size, frames at the rate, running time going on; server back → the camera. */
GST_START_TEST(test_slate_states) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  const int timeout_ms = 2000;
  TestPipeline viewer(slate_viewer(server.whep_url(kPath), "retry-delay=300 max-retry-delay=1000 timeout=" +
                                                               std::to_string(timeout_ms)));
  Rendered rendered;
  watch_rendering(viewer, rendered);
  fail_unless(viewer.play());

  /* no publisher yet: the slate, and its words say so */
  fail_unless(wait_until([&] { return rendered.count_since(0, Picture::Slate, "waiting for the camera to publish") >= 10; },
                         10000),
              "no 'waiting for the camera' slate (last: %s, '%s')", picture_name(rendered.last().picture),
              rendered.last().text.c_str());
  fail_unless(rendered.last().text.rfind(std::string(kPath) + "\n", 0) == 0, "the slate does not name the path: '%s'",
              rendered.last().text.c_str());
  fail_unless_equals_int(rendered.count_since(0, Picture::Camera), 0);
  fail_unless_equals_int(rendered.count_since(0, Picture::Black), 0);
  fail_unless_equals_int(rendered.last().width, 1280); /* placeholder-caps */

  /* the camera starts: its picture, at its size */
  auto *pub = new Publisher(red_publisher(server, kPath));
  size_t mark = rendered.count();
  fail_unless(wait_until([&] { return rendered.count_since(mark, Picture::Camera) >= 30; }, 20000),
              "no camera picture after the publisher started");
  fail_unless_equals_int(rendered.last().width, 640);
  fail_unless(viewer.stats_string("src", "placeholder-text").empty());
  /* the latency the display runs at holds the jitter buffer's (50 ms): computed while only the
   * slate played, it must not be the slate's own */
  GstElement *sink = gst_bin_get_by_name(GST_BIN(viewer.pipeline), "sink");
  const GstClockTime latency = gst_base_sink_get_latency(GST_BASE_SINK(sink));
  gst_object_unref(sink);
  fail_unless(latency >= 50 * GST_MSECOND, "the display runs at %" GST_TIME_FORMAT " latency", GST_TIME_ARGS(latency));

  /* MediaMTX dies: the slate says "reconnecting" within timeout + 1 s */
  server.kill_hard();
  const gint64 killed = g_get_monotonic_time();
  delete pub;
  mark = rendered.count();
  fail_unless(wait_until([&] { return rendered.count_since(mark, Picture::Slate, "reconnecting (attempt") >= 1; },
                         timeout_ms + 1000),
              "no 'reconnecting' slate within %d ms of the kill (last: %s, '%s')", timeout_ms + 1000,
              picture_name(rendered.last().picture), rendered.last().text.c_str());
  g_print("slate 'reconnecting' rendered %" G_GINT64_FORMAT " ms after the kill\n",
          (g_get_monotonic_time() - killed) / 1000);
  /* the slate keeps the live size and the rate: ~30 fps for a second */
  size_t slate_mark = rendered.count();
  g_usleep(G_USEC_PER_SEC);
  const int slate_frames = rendered.count_since(slate_mark, Picture::Slate);
  fail_unless(slate_frames >= 20, "only %d slate frames in 1 s", slate_frames);
  fail_unless_equals_int(rendered.last().width, 640);
  fail_unless_equals_int(rendered.last().height, 360);

  /* the server comes back, then the camera: live again */
  fail_unless(server.start());
  pub = new Publisher(red_publisher(server, kPath));
  mark = rendered.count();
  fail_unless(wait_until([&] { return rendered.count_since(mark, Picture::Camera) >= 30; }, 20000),
              "no camera picture after the server came back");

  /* running time went on: never backwards, no gap beyond the outage's detection */
  {
    std::lock_guard<std::mutex> guard(rendered.lock);
    GstClockTime previous = 0;
    gint64 previous_us = 0, longest_gap_us = 0;
    for (const auto &f : rendered.frames) {
      fail_unless(GST_CLOCK_TIME_IS_VALID(f.running_time));
      fail_unless(f.running_time + 5 * GST_MSECOND >= previous, "running time went back: %" GST_TIME_FORMAT
                  " after %" GST_TIME_FORMAT, GST_TIME_ARGS(f.running_time), GST_TIME_ARGS(previous));
      previous = std::max(previous, f.running_time);
      if (previous_us)
        longest_gap_us = std::max(longest_gap_us, f.rendered_us - previous_us);
      previous_us = f.rendered_us;
    }
    g_print("%zu frames rendered, longest gap %" G_GINT64_FORMAT " ms\n", rendered.frames.size(),
            longest_gap_us / 1000);
    fail_unless(longest_gap_us < (timeout_ms + 1500) * 1000LL, "a gap of %" G_GINT64_FORMAT " ms",
                longest_gap_us / 1000);
  }
  fail_unless(viewer.bus.errors().empty(), "%s", viewer.bus.error_text().c_str());
  fail_unless_equals_int(viewer.bus.eos_count(), 0);
  rendered.write_snapshots();
  viewer.stop();
  delete pub;
}
GST_END_TEST;

/* Wrong credentials: the slate says so, and then the error is posted. */
GST_START_TEST(test_slate_before_error) {
  fail_unless(in_test_namespace());
  MediamtxOptions options;
  options.auth_users =
      "  - user: viewer\n"
      "    pass: s3cret-pw\n"
      "    ips: []\n"
      "    permissions:\n"
      "      - action: read\n"
      "  - user: any\n"
      "    pass:\n"
      "    ips: ['127.0.0.1']\n"
      "    permissions:\n"
      "      - action: api\n";
  MediamtxServer server(options);
  fail_unless(server.start());
  TestPipeline viewer(slate_viewer(server.whep_url(kPath), "user-id=viewer user-pw=wrong-pw"));
  Rendered rendered;
  watch_rendering(viewer, rendered);
  std::atomic<int> error_at{-1};
  std::atomic<int> error_slates_before{0};
  viewer.bus.set_sync_action([&](GstMessage *message) {
    if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR && error_at < 0) {
      error_slates_before = rendered.count_since(0, Picture::Slate, "error: ");
      error_at = rendered.sequence.load();
    }
  });
  fail_unless(viewer.play());
  /* MediaMTX pauses up to 4 s before an authentication failure */
  fail_unless(wait_until([&] { return error_at >= 0; }, 10000), "no error");
  fail_unless(error_slates_before >= 1, "the error was posted before a slate said so");
  const std::string error = viewer.bus.errors().front();
  fail_unless(error.find("credentials") != std::string::npos, "%s", error.c_str());
  const std::string text = viewer.stats_string("src", "placeholder-text");
  fail_unless(text.find("error: ") != std::string::npos && text.find("credentials") != std::string::npos, "%s",
              text.c_str());
  fail_unless(text.find("wrong-pw") == std::string::npos, "password on the slate: %s", text.c_str());
  fail_unless_equals_int(rendered.count_since(0, Picture::Black), 0);
  rendered.write_snapshots("error");
  viewer.stop();
}
GST_END_TEST;

/* WebRTC blocked: the slate says "HLS fallback" until the HLS picture comes, which plays through
 * the same pad; WebRTC back: its picture takes over. */
GST_START_TEST(test_slate_hls_fallback) {
  fail_unless(in_test_namespace());
  MediamtxOptions options;
  options.extra_config = "hlsVariant: fmp4\nhlsSegmentDuration: 1s\n"; /* what 1.22's hlsdemux can follow */
  MediamtxServer server(options);
  fail_unless(server.start());
  Publisher pub(red_publisher(server, kPath));
  fail_unless(server.wait_path_ready(kPath, 10000));
  fail_unless(block_webrtc_media(server, true));
  TestPipeline viewer(slate_viewer(server.whep_url(kPath), "hls-fallback=true hls-fallback-attempts=1 timeout=2500 "
                                                            "retry-delay=500 max-retry-delay=1000 hls-location=" +
                                                                server.hls_url(kPath)));
  Rendered rendered;
  watch_rendering(viewer, rendered);
  fail_unless(viewer.play());
  fail_unless(wait_until([&] { return rendered.count_since(0, Picture::Slate, "HLS fallback") >= 5; }, 15000),
              "no 'HLS fallback' slate (last: %s, '%s')", picture_name(rendered.last().picture),
              rendered.last().text.c_str());
  size_t mark = rendered.count();
  fail_unless(wait_until([&] { return rendered.count_since(mark, Picture::Camera) >= 30; }, 30000),
              "no camera picture over HLS");
  fail_unless(block_webrtc_media(server, false));
  fail_unless(wait_until([&] {
    return viewer.bus.count_element_messages("gst-mediamtx-status", "reason", "WebRTC connected: leaving the HLS fallback") >= 1;
  }, 20000), "did not return to WebRTC");
  mark = rendered.count();
  fail_unless(wait_until([&] { return rendered.count_since(mark, Picture::Camera) >= 30; }, 15000),
              "no camera picture after returning to WebRTC");
  fail_unless(viewer.stats_string("src", "placeholder-text").empty());
  fail_unless(viewer.bus.errors().empty(), "%s", viewer.bus.error_text().c_str());
  fail_unless_equals_int(viewer.bus.eos_count(), 0);
  rendered.write_snapshots("fallback");
  viewer.stop();
}
GST_END_TEST;

/* Audio while down: the audio pad gets GAP events at the slate's pace, then audio again. */
struct AudioCounts {
  std::atomic<int> gaps{0}, buffers{0};
  static GstPadProbeReturn probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *counts = static_cast<AudioCounts *>(data);
    if (info->type & GST_PAD_PROBE_TYPE_BUFFER)
      counts->buffers++;
    else if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_GAP)
      counts->gaps++;
    return GST_PAD_PROBE_OK;
  }
};

GST_START_TEST(test_audio_gaps_while_down) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  auto *pub = new Publisher(red_publisher(server, "cam", true));
  fail_unless(server.wait_path_ready("cam", 10000));
  TestPipeline viewer("whepsrc name=src placeholder=status retry-delay=300 timeout=2000 location=" +
                      server.whep_url("cam") +
                      " src.video_0 ! queue ! videoconvert ! video/x-raw,format=RGB ! "
                      "fakesink name=sink sync=true signal-handoffs=true "
                      "src.audio_0 ! queue ! fakesink name=asink sync=true async=false");
  Rendered rendered;
  watch_rendering(viewer, rendered);
  AudioCounts audio;
  GstElement *asink = gst_bin_get_by_name(GST_BIN(viewer.pipeline), "asink");
  GstPad *apad = gst_element_get_static_pad(asink, "sink");
  const gulong probe = gst_pad_add_probe(
      apad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
      AudioCounts::probe, &audio, nullptr);
  fail_unless(viewer.play());
  fail_unless(wait_until([&] { return audio.buffers >= 50 && rendered.count_since(0, Picture::Camera) >= 10; }, 20000),
              "no audio and pictures (%d audio buffers)", audio.buffers.load());
  fail_unless_equals_int(audio.gaps, 0);
  server.kill_hard();
  delete pub;
  const size_t mark = rendered.count();
  fail_unless(wait_until([&] { return rendered.count_since(mark, Picture::Slate) >= 1; }, 3000));
  const int gaps_at_slate = audio.gaps;
  g_usleep(G_USEC_PER_SEC);
  const int gaps = audio.gaps - gaps_at_slate;
  fail_unless(gaps >= 20, "%d GAP events on the audio pad in 1 s of slate", gaps);
  fail_unless(viewer.bus.errors().empty(), "%s", viewer.bus.error_text().c_str());
  viewer.stop();
  gst_pad_remove_probe(apad, probe);
  gst_object_unref(apad);
  gst_object_unref(asink);
}
GST_END_TEST;

/* Control: placeholder=none invents no frames; placeholder=status comes back in a second run, and
 * with decode=false is refused. */
GST_START_TEST(test_none_and_encoded) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  TestPipeline viewer("whepsrc name=src audio=false retry-delay=300 location=" + server.whep_url("cam") +
                          " ! videoconvert ! fakesink name=sink sync=true async=false",
                      "sink");
  fail_unless(viewer.play());
  fail_unless(wait_until([&] {
    return viewer.bus.count_element_messages("gst-mediamtx-status", "state", "reconnecting") >= 2;
  }, 10000));
  fail_unless_equals_int(viewer.frames.count(), 0);
  fail_unless(viewer.stats_string("src", "placeholder-text").empty());
  viewer.stop();

  /* a second run of the same element: the slate is built again, on the same pad */
  TestPipeline again(slate_viewer(server.whep_url("cam"), "retry-delay=300"));
  Rendered rendered;
  watch_rendering(again, rendered);
  fail_unless(again.play());
  fail_unless(wait_until([&] { return rendered.count_since(0, Picture::Slate) >= 5; }, 5000));
  fail_unless(set_state_and_wait(again.pipeline, GST_STATE_READY));
  const size_t mark = rendered.count();
  fail_unless(again.play());
  fail_unless(wait_until([&] { return rendered.count_since(mark, Picture::Slate) >= 5; }, 5000),
              "no slate in the second run");
  fail_unless(again.bus.errors().empty(), "%s", again.bus.error_text().c_str());
  again.stop();

  TestPipeline encoded("whepsrc name=src placeholder=status decode=false location=" + server.whep_url("cam") +
                       " ! fakesink");
  fail_unless_equals_int(gst_element_set_state(encoded.pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  fail_unless(encoded.bus.error_text().find("decode=true") != std::string::npos, "%s",
              encoded.bus.error_text().c_str());
}
GST_END_TEST;

static Suite *whepsrc_placeholder_suite(void) {
  Suite *s = suite_create("whepsrc-placeholder");
  TCase *tc = tcase_create("mediamtx");
  tcase_set_timeout(tc, 90);
  /* the stock RTSP publisher can emit a GIO critical when MediaMTX dies (pipeline_helpers.h) */
  tcase_add_checked_fixture(tc, tolerate_rtspclientsink_socket_criticals, nullptr);
  tcase_add_test(tc, test_slate_states);
  tcase_add_test(tc, test_slate_before_error);
  tcase_add_test(tc, test_slate_hls_fallback);
  tcase_add_test(tc, test_audio_gaps_while_down);
  tcase_add_test(tc, test_none_and_encoded);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(whepsrc_placeholder);
