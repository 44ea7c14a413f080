/* mediamtxsink keyframe-on-join against a real MediaMTX (issue 18): a viewer joining mid-GOP at a
 * 10 s keyframe interval gets its first picture within 2 s; without keyframe-on-join it waits for
 * the GOP; readers joining together share forced keyframes at most one per 500 ms; a publisher
 * without the API permission says so once and publishes as before; over WHIP MediaMTX's PLIs reach
 * the encoder at once.
 *
 * Everything runs on one server at the same time (four publishers on four paths), so the waits for
 * the 10 s GOP are paid once. */
#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

namespace {

/* publishers: "pub" may publish and use the API; "nopi" may only publish; anyone may read; the
 * test itself reads the API on 127.0.0.1 */
MediamtxOptions server_options() {
  MediamtxOptions o;
  o.api_everywhere = true;
  o.auth_users =
      "  - user: pub\n    pass: pub-secret-1\n    permissions:\n      - action: publish\n      - action: api\n"
      "  - user: nopi\n    pass: nopi-secret-2\n    permissions:\n      - action: publish\n"
      "  - user: any\n    pass:\n    permissions:\n      - action: read\n"
      "  - user: any\n    pass:\n    ips: ['127.0.0.1', '::1']\n    permissions:\n      - action: api\n";
  return o;
}

gint64 now_ms() { return g_get_monotonic_time() / 1000; }

/* What leaves a publisher's encoder: keyframe times, and the keyframe requests it got. */
struct EncoderLog {
  ~EncoderLog() {
    if (pad) {
      gst_pad_remove_probe(pad, probe);
      gst_object_unref(pad);
    }
  }
  /* true once the encoder inside `sink` exists and is watched */
  bool attach(GstElement *pipeline) {
    GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "pub");
    GstElement *encoder = sink ? gst_bin_get_by_name(GST_BIN(sink), "encoder") : nullptr;
    if (sink)
      gst_object_unref(sink);
    if (!encoder)
      return false;
    pad = gst_element_get_static_pad(encoder, "src");
    gst_object_unref(encoder);
    probe = gst_pad_add_probe(pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_UPSTREAM),
        [](GstPad *, GstPadProbeInfo *info, gpointer data) {
          auto *log = static_cast<EncoderLog *>(data);
          std::lock_guard<std::mutex> lk(log->lock);
          if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
            if (!GST_BUFFER_FLAG_IS_SET(GST_PAD_PROBE_INFO_BUFFER(info), GST_BUFFER_FLAG_DELTA_UNIT))
              log->keyframes.push_back(now_ms());
          } else if (gst_video_event_is_force_key_unit(GST_PAD_PROBE_INFO_EVENT(info))) {
            log->requests.push_back(now_ms());
          }
          return GST_PAD_PROBE_OK;
        },
        this, nullptr);
    return true;
  }
  std::vector<gint64> keyframes_since(gint64 t) {
    std::lock_guard<std::mutex> lk(lock);
    std::vector<gint64> out;
    for (gint64 k : keyframes)
      if (k >= t)
        out.push_back(k);
    return out;
  }
  gint64 last_keyframe() {
    std::lock_guard<std::mutex> lk(lock);
    return keyframes.empty() ? 0 : keyframes.back();
  }
  std::vector<gint64> requests_since(gint64 t) {
    std::lock_guard<std::mutex> lk(lock);
    std::vector<gint64> out;
    for (gint64 r : requests)
      if (r >= t)
        out.push_back(r);
    return out;
  }

  GstPad *pad = nullptr;
  gulong probe = 0;
  std::mutex lock;
  std::vector<gint64> keyframes, requests;
};

/* A raw-video publisher at a 10 s keyframe interval (300 frames at 30 fps). Without bandwidth
 * adaptation: on a loaded machine a send backlog can make it cut deep and send a keyframe of its
 * own, which this test would take for (or against) keyframe-on-join's. */
struct Publisher : TestPipeline {
  Publisher(const std::string &location, const std::string &extra)
      : TestPipeline(std::string(kLiveTestVideo) +
                     " ! mediamtxsink name=pub keyframe-interval=300 adaptive-bitrate=false location=" + location +
                     " " + extra) {
    bus.set_sync_action([this](GstMessage *msg) {
      const GstStructure *s = gst_message_get_structure(msg);
      if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ELEMENT && gst_structure_has_name(s, "mediamtxsink-keyframe-forced")) {
        std::lock_guard<std::mutex> lk(lock);
        forced.push_back(now_ms());
      }
    });
  }
  ~Publisher() { bus.set_sync_action(nullptr); }
  std::vector<gint64> forced_since(gint64 t) {
    std::lock_guard<std::mutex> lk(lock);
    std::vector<gint64> out;
    for (gint64 f : forced)
      if (f >= t)
        out.push_back(f);
    return out;
  }
  std::mutex lock;
  std::vector<gint64> forced;
  EncoderLog encoder;
};

/* A WHEP viewer; first_frame_ms() once it decoded a picture (-1 before). */
struct Viewer : TestPipeline {
  explicit Viewer(const MediamtxServer &server, const std::string &path)
      : TestPipeline("whepsrc name=src latency=0 audio=false location=" + server.whep_url(path) +
                         " ! fakesink name=sink sync=false async=false",
                     "sink") {}
  void start() {
    started = now_ms();
    fail_unless(play());
  }
  /* ms from PLAYING to the first decoded picture, waiting up to timeout_ms; -1: none */
  gint64 first_frame_ms(int timeout_ms) {
    if (!wait_until([&] { return frames.count() > 0; }, timeout_ms))
      return -1;
    if (first < 0)
      first = now_ms() - started;
    return first;
  }
  gint64 started = 0, first = -1;
};

std::string with_user(std::string url, const char *user_pw) {
  url.replace(url.find("://"), 3, std::string("://") + user_pw + "@");
  return url;
}

/* gaps between consecutive times */
std::string gaps_text(const std::vector<gint64> &times) {
  std::string out;
  for (std::size_t i = 1; i < times.size(); ++i)
    out += std::to_string(times[i] - times[i - 1]) + " ";
  return out;
}

}  // namespace

GST_START_TEST(test_keyframe_on_join) {
  fail_unless(in_test_namespace());
  MediamtxServer server(server_options());
  fail_unless(server.start());
  const std::string api = "api-location=" + server.api_location();

  /* kf: keyframe-on-join; ctl: without (the control case); noapi: a user without the api
   * permission; whip: over WHIP without keyframe-on-join (MediaMTX's own PLIs only) */
  Publisher kf(with_user(server.rtsp_url("kf"), "pub:pub-secret-1"), api);
  Publisher ctl(with_user(server.rtsp_url("ctl"), "pub:pub-secret-1"), api + " keyframe-on-join=false");
  Publisher noapi(with_user(server.rtsp_url("noapi"), "nopi:nopi-secret-2"), api);
  Publisher whip(server.whip_url("whip"), api + " transport=whip user-id=pub user-pw=pub-secret-1 keyframe-on-join=false");
  for (Publisher *p : {&kf, &ctl, &noapi, &whip})
    fail_unless(p->play());
  /* the encoders appear with the first caps; their first keyframes may be out before */
  for (Publisher *p : {&kf, &ctl, &whip})
    fail_unless(wait_until([&] { return p->encoder.attach(p->pipeline); }, 5000));
  const gint64 attached = now_ms();
  for (const char *path : {"kf", "ctl", "noapi", "whip"})
    fail_unless(server.wait_path_ready(path, 10000), "%s never ready: %s", path, server.read_log().c_str());
  const gint64 whip_connected = now_ms();

  /* mid-GOP: 3 s after the last keyframe of both kf and ctl (10 s GOP; a new session starts on a
   * keyframe, possibly before the probe saw it) */
  const gint64 gop_start = std::max({attached, kf.encoder.last_keyframe(), ctl.encoder.last_keyframe()});
  g_usleep(static_cast<gulong>(std::max<gint64>(0, gop_start + 3000 - now_ms())) * 1000);

  const gint64 join = now_ms();
  Viewer with_join(server, "kf"), control(server, "ctl");
  with_join.start();
  control.start();
  const gint64 joined_ms = with_join.first_frame_ms(5000);
  /* the control case: no picture before the next regular keyframe (~7 s away) */
  const gint64 control_ms = control.first_frame_ms(12000);
  g_print("keyframe-on-join: first frame %" G_GINT64_FORMAT " ms after PLAYING; without: %" G_GINT64_FORMAT " ms\n",
          joined_ms, control_ms);
  fail_unless(joined_ms >= 0 && joined_ms <= scaled_ms(2000), "first frame after %" G_GINT64_FORMAT " ms",
              joined_ms);
  fail_unless(control_ms > 2000, "without keyframe-on-join the first frame came after %" G_GINT64_FORMAT
              " ms: the test cannot tell the two apart", control_ms);
  fail_unless(kf.forced_since(join).size() >= 1, "no keyframe forced for the viewer");
  fail_unless(ctl.forced_since(0).empty(), "keyframe forced with keyframe-on-join=false");

  /* four readers joining together: forced keyframes at least 500 ms apart (shared), each of them
   * gets a picture */
  g_usleep(600 * 1000);
  const gint64 burst = now_ms();
  {
    std::vector<std::unique_ptr<Viewer>> viewers;
    for (int i = 0; i < 4; ++i)
      viewers.push_back(std::make_unique<Viewer>(server, "kf"));
    for (auto &v : viewers)
      v->start();
    for (auto &v : viewers)
      fail_unless(v->first_frame_ms(5000) >= 0, "a joining viewer got no picture");
    g_usleep(700 * 1000); /* a deferred one would be due by now */
  }
  std::vector<gint64> forced = kf.forced_since(burst);
  std::vector<gint64> keyframes = kf.encoder.keyframes_since(burst);
  g_print("4 joining readers: %zu forced keyframes, gaps %s ms; encoder keyframes gaps %s ms\n", forced.size(),
          gaps_text(forced).c_str(), gaps_text(keyframes).c_str());
  fail_unless(!forced.empty() && forced.size() <= 4);
  for (std::size_t i = 1; i < forced.size(); ++i)
    fail_unless(forced[i] - forced[i - 1] >= 450, "forced keyframes %" G_GINT64_FORMAT " ms apart",
                forced[i] - forced[i - 1]);
  for (std::size_t i = 1; i < keyframes.size(); ++i)
    fail_unless(keyframes[i] - keyframes[i - 1] >= 400, "encoder keyframes %" G_GINT64_FORMAT " ms apart",
                keyframes[i] - keyframes[i - 1]);

  /* without the api permission: one warning that says how to grant it, and it keeps publishing */
  fail_unless(wait_until([&] { return !noapi.bus.warnings().empty(); }, 6000), "no warning without API access");
  std::vector<std::string> warnings = noapi.bus.warnings();
  fail_unless_equals_int(warnings.size(), 1);
  fail_unless(warnings[0].find("'api'") != std::string::npos, "%s", warnings[0].c_str());
  fail_unless(warnings[0].find("nopi") != std::string::npos, "%s", warnings[0].c_str());
  fail_unless(warnings[0].find("nopi-secret-2") == std::string::npos, "password leaked: %s", warnings[0].c_str());
  {
    Viewer v(server, "noapi");
    v.start();
    fail_unless(v.first_frame_ms(15000) >= 0, "publishing without API access broke");
  }
  fail_unless_equals_int(noapi.bus.warnings().size(), 1);
  fail_unless(noapi.forced_since(0).empty());
  for (Publisher *p : {&kf, &ctl, &whip})
    fail_unless(p->bus.warnings().empty(), "%s", p->bus.warnings().front().c_str());

  /* WHIP: MediaMTX asks its WebRTC publishers for a keyframe every 2 s (PLI); webrtcbin turns each
   * into a force-key-unit event up to the encoder, which answers with the next frame */
  std::vector<gint64> requests = whip.encoder.requests_since(whip_connected + 500);
  std::vector<gint64> whip_keyframes = whip.encoder.keyframes_since(whip_connected + 500);
  g_print("WHIP: %zu keyframe requests (gaps %s ms), %zu keyframes\n", requests.size(), gaps_text(requests).c_str(),
          whip_keyframes.size());
  fail_unless(requests.size() >= 3, "MediaMTX's PLIs did not reach the encoder: %zu requests", requests.size());
  for (gint64 r : requests) {
    bool answered = false;
    for (gint64 k : whip_keyframes)
      answered = answered || (k >= r && k - r <= scaled_ms(300));
    fail_unless(answered, "a keyframe request at %" G_GINT64_FORMAT " got no keyframe within 300 ms", r - whip_connected);
  }
  for (Publisher *p : {&kf, &ctl, &noapi, &whip})
    fail_unless(p->bus.errors().empty(), "%s", p->bus.error_text().c_str());
}
GST_END_TEST;

/* An application that stops the pipeline from a synchronous bus handler when the warning comes
 * (posted by the watch's own thread): no deadlock, no crash, the pipeline reaches NULL. */
GST_START_TEST(test_stop_from_warning_handler) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  /* nothing listens there: refused at once */
  const std::string api = "api-location=http://" + server.host() + ":" + std::to_string(free_port());
  TestPipeline pub(std::string(kLiveTestVideo) + " ! mediamtxsink name=pub location=" + server.rtsp_url("cam") + " " +
                   api);
  std::atomic<int> stopped{0};
  pub.bus.set_sync_action([&](GstMessage *msg) {
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_WARNING && stopped.load() == 0) {
      stopped = gst_element_set_state(pub.pipeline, GST_STATE_NULL) == GST_STATE_CHANGE_SUCCESS ? 1 : -1;
    }
  });
  fail_unless(pub.play());
  fail_unless(wait_until([&] { return stopped.load() != 0; }, 10000), "no warning");
  fail_unless_equals_int(stopped.load(), 1);
  pub.bus.set_sync_action(nullptr);
  std::vector<std::string> warnings = pub.bus.warnings();
  fail_unless_equals_int(warnings.size(), 1);
  fail_unless(warnings[0].find("cannot be reached") != std::string::npos, "%s", warnings[0].c_str());
  /* and it runs again */
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000));
}
GST_END_TEST;

static Suite *keyframe_on_join_suite(void) {
  Suite *s = suite_create("mediamtxsink-keyframe-on-join");
  TCase *tc = tcase_create("element");
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_keyframe_on_join);
  tcase_add_test(tc, test_stop_from_warning_handler);
  return s;
}

GST_CHECK_MAIN(keyframe_on_join);
