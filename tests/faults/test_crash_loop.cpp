/* Crash-loop protection (issue 15, "Done when"): a child or session that fails before delivering
 * any media keeps backing off up to max-retry-delay. With retry-delay=100 and max-retry-delay=800,
 * the retry-in-ms of successive `reconnecting` status messages starts near 100, grows, and the
 * later ones are at the cap (800, less at most the 20 % jitter), for:
 *   - reconnectbin whose rtspsrc child cannot connect (a closed port);
 *   - reconnectbin whose child starts but errors on its first buffer, before passing it on;
 *   - whepsrc against a WHEP endpoint answering 500, or 404 (nothing published), forever
 *     (tests/testbed/fault_server);
 *   - mediamtxsink against a closed RTSP port. */
#include <gst/check/gstcheck.h>

#include <string>
#include <vector>

#include "fault_server.h"
#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

namespace {

constexpr int kRetryDelay = 100, kMaxRetryDelay = 800;
constexpr int kMessages = 8; /* 100, 200, 400, then five at the cap */
constexpr double kJitter = 0.2; /* the elements' default (reconnectbin's retry-jitter) */

/* Plays `description` until kMessages `reconnecting` statuses came; checks their retry-in-ms. */
void check_escalates(const char *what, const std::string &description) {
  TestPipeline p(description);
  gst_element_set_state(p.pipeline, GST_STATE_PLAYING);
  /* the waits announced: `reconnecting` with retry-in-ms >= 0 (whepsrc also posts `reconnecting`
   * with -1 when the attempt itself starts) */
  auto waits = [&] {
    std::vector<gint64> delays;
    for (GstStructure *s : p.bus.element_messages("gst-mediamtx-status")) {
      gint64 in_ms = -1;
      if (g_strcmp0(gst_structure_get_string(s, "state"), "reconnecting") == 0 &&
          gst_structure_get_int64(s, "retry-in-ms", &in_ms) && in_ms >= 0)
        delays.push_back(in_ms);
      gst_structure_free(s);
    }
    return delays;
  };
  /* 100 + 200 + 400 + 5 x 800 ms of waits, plus each attempt's own time */
  const bool enough =
      wait_until([&] { return waits().size() >= static_cast<size_t>(kMessages) || !p.bus.errors().empty(); }, 30000);
  const std::vector<gint64> delays = waits();
  p.stop();
  std::string list;
  for (gint64 d : delays)
    list += std::to_string(d) + " ";
  g_print("%s: retry-in-ms %s\n", what, list.c_str());
  fail_unless(p.bus.errors().empty(), "%s: gave up: %s", what, p.bus.error_text().c_str());
  fail_unless(enough && delays.size() >= static_cast<size_t>(kMessages), "%s: only %zu reconnecting messages", what,
              delays.size());
  fail_unless(delays[0] <= kRetryDelay * (1 + kJitter) + 1, "%s: the first retry waits %" G_GINT64_FORMAT " ms", what,
              delays[0]);
  for (size_t i = 0; i < delays.size(); ++i)
    fail_unless(delays[i] <= kMaxRetryDelay, "%s: retry %zu waits %" G_GINT64_FORMAT " ms, over max-retry-delay", what,
                i + 1, delays[i]);
  /* from the 4th on (100, 200, 400, 800 ...) every wait is at the cap, within the jitter: the crash
   * loop never starts again from retry-delay */
  for (size_t i = 3; i < delays.size(); ++i)
    fail_unless(delays[i] >= kMaxRetryDelay * (1 - kJitter) - 1,
                "%s: retry %zu waits %" G_GINT64_FORMAT " ms: the backoff fell back (%s)", what, i + 1, delays[i],
                list.c_str());
}

const std::string kRetry =
    " retry-delay=" + std::to_string(kRetryDelay) + " max-retry-delay=" + std::to_string(kMaxRetryDelay) + " ";

}  // namespace

GST_START_TEST(test_reconnectbin_unreachable_child) {
  fail_unless(in_test_namespace());
  const int port = free_port();
  check_escalates("reconnectbin rtspsrc (closed port)",
                  "reconnectbin name=r" + kRetry + "child=\"rtspsrc protocols=tcp location=rtsp://127.0.0.1:" +
                      std::to_string(port) + "/x ! rtph264depay\" ! fakesink");
}
GST_END_TEST;

GST_START_TEST(test_reconnectbin_child_fails_before_media) {
  fail_unless(in_test_namespace());
  /* the child reaches PLAYING and fails on its first buffer, which never leaves it */
  check_escalates("reconnectbin child failing on its first buffer",
                  "reconnectbin name=r" + kRetry +
                      "child=\"videotestsrc is-live=true ! video/x-raw,width=32,height=24,framerate=30/1 ! "
                      "identity error-after=1\" ! fakesink");
}
GST_END_TEST;

GST_START_TEST(test_whepsrc_server_error_forever) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  check_escalates("whepsrc (HTTP 500 forever)", "whepsrc name=src" + kRetry + "location=" + faults.url("status-500") +
                                                    " ! fakesink sync=false async=false");
}
GST_END_TEST;

GST_START_TEST(test_whepsrc_not_found_forever) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  check_escalates("whepsrc (HTTP 404 forever)", "whepsrc name=src" + kRetry + "location=" + faults.url("status-404") +
                                                    " ! fakesink sync=false async=false");
}
GST_END_TEST;

GST_START_TEST(test_mediamtxsink_closed_port) {
  fail_unless(in_test_namespace());
  const int port = free_port();
  check_escalates("mediamtxsink (closed port)", std::string(kLiveTestVideo) + " ! mediamtxsink name=pub" + kRetry +
                                                    "location=rtsp://127.0.0.1:" + std::to_string(port) + "/x");
}
GST_END_TEST;

static Suite *crash_loop_suite(void) {
  Suite *s = suite_create("crash-loop");
  TCase *tc = tcase_create("crash-loop");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_reconnectbin_unreachable_child);
  tcase_add_test(tc, test_reconnectbin_child_fails_before_media);
  tcase_add_test(tc, test_whepsrc_server_error_forever);
  tcase_add_test(tc, test_whepsrc_not_found_forever);
  tcase_add_test(tc, test_mediamtxsink_closed_port);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(crash_loop);
