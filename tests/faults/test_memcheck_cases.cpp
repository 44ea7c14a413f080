/* whepsrc fault cases that need no media, with outcomes but no timing asserted, so they hold under
 * Valgrind and sanitizers (tests/faults/valgrind.sh, tests/faults/asan.sh): fatal 400, 500 retried
 * then given up, redirect loop, oversized and garbage answers, connection reset. Also a plain test. */
#include <gst/check/gstcheck.h>

#include <condition_variable>
#include <mutex>
#include <string>

#include "event_loop.h"
#include "fault_server.h"
#include "http_client.h"
#include "webrtc_http_session.h"
#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

/* A long media timeout: under Valgrind on a loaded machine, building webrtcbin and the first request
 * take seconds, and a short watchdog would fail every attempt before the server's answer. */
static std::string first_error(const std::string &url, const std::string &props) {
  GstElement *pipeline = parse_pipeline("whepsrc name=src location=" + url +
                                        " retry-delay=50 max-retry-delay=100 timeout=20000 " + props +
                                        " ! fakesink name=sink sync=false async=false");
  std::string error;
  {
    BusWatcher bus(pipeline);
    fail_unless(set_state_and_wait(pipeline, GST_STATE_PLAYING, 30000));
    wait_until([&] { return !bus.errors().empty(); }, 60000);
    if (!bus.errors().empty())
      error = bus.errors().front();
    gst_element_set_state(pipeline, GST_STATE_NULL);
  }
  gst_object_unref(pipeline);
  return error;
}

#define assert_error(url, props, needle)                                                                              \
  do {                                                                                                                \
    const std::string e = first_error(url, props);                                                                    \
    fail_unless(e.find(needle) != std::string::npos, "expected '%s', got '%s'", needle, e.c_str());                   \
  } while (0)

GST_START_TEST(test_memcheck_fault_cases) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  assert_error(faults.url("status-400"), "max-retries=3", "HTTP 400");
  assert_error(faults.url("status-500"), "max-retries=2", "Gave up after 3 attempts");
  assert_error(faults.url("loop"), "", "redirects in a loop");
  assert_error(faults.url("huge"), "max-retries=1", "oversized answer");
  assert_error(faults.url("garbage"), "max-retries=1", "without a valid SDP answer");
  assert_error(faults.url("reset"), "max-retries=1", "cannot reach");
  assert_error(faults.url("status-401"), "user-id=u user-pw=p", "refused our credentials");
}
GST_END_TEST;

/* Regression: a failed POST's callback destroys the session (as whepsrc's on_session_failed does);
 * the session must not touch itself afterwards (it did: pump_patches() on freed memory). Only
 * Valgrind or ASan see the difference, so this runs in valgrind.sh and asan.sh. */
GST_START_TEST(test_session_destroyed_in_its_callback) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  gstmtx::EventLoop loop("memcheck");
  gstmtx::HttpClient http(loop, {});
  for (const char *fault : {"status-400", "status-500", "garbage"}) {
    gstmtx::SessionConfig config;
    config.endpoint = faults.url(fault);
    config.stream_path = "cam";
    auto *session = new gstmtx::WebrtcHttpSession(http, config);
    session->patch_sdpfrag("a=candidate:1 1 UDP 1 10.77.0.2 9 typ host\r\n"); /* queued: no resource yet */
    std::mutex lock;
    std::condition_variable cv;
    bool done = false;
    loop.post([&, session] {
      session->post_offer("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
                          [&, session](gstmtx::OfferAnswer, gstmtx::SessionError error) {
                            fail_unless(static_cast<bool>(error));
                            delete session;
                            std::lock_guard<std::mutex> guard(lock);
                            done = true;
                            cv.notify_one();
                          });
    });
    std::unique_lock<std::mutex> guard(lock);
    fail_unless(cv.wait_for(guard, std::chrono::seconds(30), [&] { return done; }), "%s: no answer", fault);
  }
}
GST_END_TEST;

static Suite *memcheck_cases_suite(void) {
  Suite *s = suite_create("memcheck-cases");
  TCase *tc = tcase_create("cases");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_memcheck_fault_cases);
  tcase_add_test(tc, test_session_destroyed_in_its_callback);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(memcheck_cases);
