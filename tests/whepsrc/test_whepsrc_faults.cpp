/* whepsrc against a misbehaving WHEP server: every fault has a documented outcome within a bound
 * (docs/reference/whepsrc.md and docs/reliability.md list them). */
#include <gst/check/gstcheck.h>

#include <string>
#include <vector>

#include "fault_server.h"
#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

struct Outcome {
  bool error = false;
  std::string message;
  gint64 elapsed_ms = 0;
  int frames = 0;
};

/* Runs whepsrc on `url` until it posts an error or `budget_ms` passes. */
static Outcome run_viewer(const std::string &url, const std::string &props, int budget_ms, int want_frames = 0) {
  GstElement *pipeline = parse_pipeline("whepsrc name=src location=" + url + " " + props +
                                        " ! fakesink name=sink sync=false async=false");
  fail_unless(pipeline != nullptr);
  Outcome out;
  {
    BusWatcher bus(pipeline);
    BufferCounter frames;
    frames.attach(pipeline, "sink");
    gint64 start = g_get_monotonic_time();
    fail_unless(set_state_and_wait(pipeline, GST_STATE_PLAYING));
    wait_until([&] { return !bus.errors().empty() || (want_frames && frames.count() >= want_frames); }, budget_ms);
    out.elapsed_ms = (g_get_monotonic_time() - start) / 1000;
    out.error = !bus.errors().empty();
    if (out.error)
      out.message = bus.errors().front();
    out.frames = frames.count();
    gst_element_set_state(pipeline, GST_STATE_NULL);
  }
  gst_object_unref(pipeline);
  return out;
}

#define assert_contains(haystack, needle)                                                                             \
  fail_unless((haystack).find(needle) != std::string::npos, "'%s' not in '%s'", needle, (haystack).c_str())

static const char *kFast = "retry-delay=100 max-retry-delay=200 timeout=1500 ";

GST_START_TEST(test_400_is_fatal) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  Outcome o = run_viewer(faults.url("status-400"), kFast, 5000);
  fail_unless(o.error);
  assert_contains(o.message, "rejected our offer (HTTP 400)");
  fail_unless(o.elapsed_ms < 2000);
  fail_unless_equals_int(faults.requests("status-400", "POST"), 1);
}
GST_END_TEST;

GST_START_TEST(test_415_is_fatal) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  Outcome o = run_viewer(faults.url("status-415"), kFast, 5000);
  fail_unless(o.error);
  assert_contains(o.message, "HTTP 415");
  fail_unless_equals_int(faults.requests("status-415", "POST"), 1);
}
GST_END_TEST;

GST_START_TEST(test_500_retries_then_gives_up) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  Outcome o = run_viewer(faults.url("status-500"), std::string(kFast) + "max-retries=2", 5000);
  fail_unless(o.error);
  assert_contains(o.message, "Gave up after 3 attempts");
  assert_contains(o.message, "HTTP 500");
  fail_unless_equals_int(faults.requests("status-500", "POST"), 3);
}
GST_END_TEST;

GST_START_TEST(test_503_retry_after) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  Outcome o = run_viewer(faults.url("status-503"), std::string(kFast) + "max-retries=1", 6000);
  fail_unless(o.error);
  fail_unless_equals_int(faults.requests("status-503", "POST"), 2);
  /* the server's Retry-After: 1 outweighs retry-delay=100 */
  fail_unless(o.elapsed_ms >= 1000, "retried after %" G_GINT64_FORMAT " ms", o.elapsed_ms);
}
GST_END_TEST;

GST_START_TEST(test_404_retries_forever_by_default) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  Outcome o = run_viewer(faults.url("status-404"), kFast, 2500);
  fail_if(o.error, "%s", o.message.c_str());
  fail_unless(faults.requests("status-404", "POST") >= 3);
}
GST_END_TEST;

GST_START_TEST(test_bad_answers_retry_then_fail) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  const std::pair<const char *, const char *> cases[] = {
      {"garbage", "without a valid SDP answer"},
      {"empty", "without a valid SDP answer"},
      {"wrong-type", "without a valid SDP answer"},
      {"huge", "oversized answer"},
      {"reset", "cannot reach"},
  };
  for (const auto &[fault, expected] : cases) {
    Outcome o = run_viewer(faults.url(fault), std::string(kFast) + "max-retries=1", 6000);
    fail_unless(o.error, "%s: no error", fault);
    assert_contains(o.message, expected);
    fail_unless_equals_int(faults.requests(fault, "POST"), 2);
    fail_unless(o.elapsed_ms < 4000, "%s took %" G_GINT64_FORMAT " ms", fault, o.elapsed_ms);
  }
}
GST_END_TEST;

GST_START_TEST(test_redirect_loop_is_fatal) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  Outcome o = run_viewer(faults.url("loop"), kFast, 5000);
  fail_unless(o.error);
  assert_contains(o.message, "redirects in a loop");
  /* bounded: the first request and 5 redirects */
  fail_unless_equals_int(faults.requests("loop", "POST"), 6);
}
GST_END_TEST;

GST_START_TEST(test_server_never_answers) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  for (const char *fault : {"hang", "hang-body"}) {
    Outcome o = run_viewer(faults.url(fault), std::string(kFast) + "max-retries=1", 8000);
    fail_unless(o.error, "%s: no error", fault);
    assert_contains(o.message, "1500 ms");
    /* two requests of 1.5 s each and a short retry delay */
    fail_unless(o.elapsed_ms >= 3000 && o.elapsed_ms < 5000, "%s: %" G_GINT64_FORMAT " ms", fault, o.elapsed_ms);
  }
}
GST_END_TEST;

GST_START_TEST(test_redirect_and_missing_location_still_play) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  GstElement *pub = parse_pipeline(
      "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! "
      "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! rtspclientsink protocols=tcp location=" +
      server.rtsp_url("cam"));
  fail_unless(set_state_and_wait(pub, GST_STATE_PLAYING));
  fail_unless(server.wait_path_ready("cam", 10000));
  FaultServer faults(server.webrtc_base_url());

  /* 307 to the real endpoint: followed, the session plays, DELETE reaches the server on stop.
   * (A generous no-media bound: a loaded machine must not turn this into a retry.) */
  const std::string relaxed = "retry-delay=100 max-retry-delay=200 timeout=8000 ";
  Outcome o = run_viewer(faults.url("redirect"), relaxed, 15000, 10);
  fail_if(o.error, "%s", o.message.c_str());
  fail_unless(o.frames >= 10);
  fail_unless_equals_int(faults.requests("redirect", "POST"), 1);
  fail_unless_equals_int(faults.requests("relay", "POST"), 1);
  /* the Location pointed at MediaMTX itself: its DELETE ended the session there */
  fail_unless(wait_until([&] { return server.webrtc_session_count() == 0; }, 3000));

  /* no Location: plays (no trickle PATCH, no DELETE possible) */
  o = run_viewer(faults.url("relay-no-location"), relaxed, 15000, 10);
  fail_if(o.error, "%s", o.message.c_str());
  fail_unless(o.frames >= 10);
  fail_unless_equals_int(faults.requests("relay-no-location", "DELETE"), 0);
  fail_unless_equals_int(faults.requests("relay-no-location", "PATCH"), 0);

  /* trickle through this server: the PATCHes carry real candidates only. webrtcbin 1.24+ ends
   * gathering with an empty candidate per transport: the end of candidates, never a PATCH with an
   * empty "a=candidate:" line. */
  o = run_viewer(faults.url("relay-here"), relaxed, 15000, 10);
  fail_if(o.error, "%s", o.message.c_str());
  fail_unless(o.frames >= 10);
  const std::vector<std::string> patches = faults.bodies("relay-here", "PATCH");
  fail_if(patches.empty(), "no trickle PATCH reached the server");
  for (const std::string &body : patches) {
    fail_unless(body.find("a=candidate:") != std::string::npos, "PATCH without a candidate:\n%s", body.c_str());
    for (size_t at = body.find("a=candidate:"); at != std::string::npos; at = body.find("a=candidate:", at + 1)) {
      const size_t end = body.find_first_of("\r\n", at);
      fail_unless(end == std::string::npos || end > at + 12 + 10, "empty or short candidate in PATCH:\n%s",
                  body.c_str());
    }
  }
  fail_unless_equals_int(faults.requests("relay-here", "DELETE"), 1);

  gst_element_set_state(pub, GST_STATE_NULL);
  gst_object_unref(pub);
}
GST_END_TEST;

GST_START_TEST(test_extra_headers_and_auth_sent) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  Outcome o = run_viewer(faults.url("status-400"),
                         "auth-token=tok-123 extra-headers=\"headers,X-Site=(string)north,X-Tag=(string)a1\"", 5000);
  fail_unless(o.error);
  std::string headers = faults.last_headers("status-400");
  fail_unless(headers.find("X-Site: north") != std::string::npos, "%s", headers.c_str());
  fail_unless(headers.find("X-Tag: a1") != std::string::npos, "%s", headers.c_str());
  fail_unless(headers.find("Authorization: Bearer tok-123") != std::string::npos, "%s", headers.c_str());
  fail_unless(headers.find("Content-Type: application/sdp") != std::string::npos, "%s", headers.c_str());
  /* the token never reaches an error message */
  fail_unless(o.message.find("tok-123") == std::string::npos, "%s", o.message.c_str());
}
GST_END_TEST;

static Suite *whepsrc_faults_suite(void) {
  Suite *s = suite_create("whepsrc-faults");
  TCase *tc = tcase_create("faults");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_400_is_fatal);
  tcase_add_test(tc, test_415_is_fatal);
  tcase_add_test(tc, test_500_retries_then_gives_up);
  tcase_add_test(tc, test_503_retry_after);
  tcase_add_test(tc, test_404_retries_forever_by_default);
  tcase_add_test(tc, test_bad_answers_retry_then_fail);
  tcase_add_test(tc, test_redirect_loop_is_fatal);
  tcase_add_test(tc, test_server_never_answers);
  tcase_add_test(tc, test_redirect_and_missing_location_still_play);
  tcase_add_test(tc, test_extra_headers_and_auth_sent);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(whepsrc_faults);
