/* Crash-loop protection (issue 15, "Done when"): a child or session that fails before delivering
 * any media keeps backing off up to max-retry-delay. With retry-delay=100 and max-retry-delay=800,
 * the retry-in-ms of successive `reconnecting` status messages start near 100, never exceed 800,
 * reach the cap (800 less at most the 20 % jitter) within a generous 15 s of failing, and do not
 * fall back towards retry-delay after that (the next three waits stay at or above half the cap).
 * How fast the waits grow is the policy's business (exponential by attempt, possibly bounded by
 * the outage's age): only that they get there is checked. For:
 *   - reconnectbin whose rtspsrc child cannot connect (a closed port);
 *   - reconnectbin whose child starts but errors on its first buffer, before passing it on;
 *   - whepsrc against a WHEP endpoint answering 500, or 404 (nothing published), forever
 *     (tests/testbed/fault_server);
 *   - mediamtxsink against a closed RTSP port. */
#include <gst/check/gstcheck.h>

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "fault_server.h"
#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

namespace {

constexpr int kRetryDelay = 100, kMaxRetryDelay = 800;
constexpr double kJitter = 0.2;  /* the elements' default (reconnectbin's retry-jitter) */
constexpr int kReachCapMs = 15000; /* generous: exponential growth gets there in ~1.5 s */
constexpr int kAfterCap = 3;       /* waits checked after the first one at the cap */

/* Plays `description` until its waits reached the cap and kAfterCap more came (or 20 s); checks
 * the retry-in-ms of its `reconnecting` messages. */
void check_escalates(const char *what, const std::string &description) {
  TestPipeline p(description);
  /* the waits announced, with when they were announced: `reconnecting` with retry-in-ms >= 0
   * (whepsrc also posts `reconnecting` with -1 when the attempt itself starts) */
  std::mutex lock;
  std::vector<std::pair<gint64, gint64>> waits; /* (ms since play, retry-in-ms) */
  const gint64 start = g_get_monotonic_time();
  p.bus.set_sync_action([&](GstMessage *msg) {
    const GstStructure *s = GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ELEMENT ? gst_message_get_structure(msg) : nullptr;
    gint64 in_ms = -1;
    if (s && gst_structure_has_name(s, "gst-mediamtx-status") &&
        g_strcmp0(gst_structure_get_string(s, "state"), "reconnecting") == 0 &&
        gst_structure_get_int64(s, "retry-in-ms", &in_ms) && in_ms >= 0) {
      std::lock_guard<std::mutex> guard(lock);
      waits.emplace_back((g_get_monotonic_time() - start) / 1000, in_ms);
    }
  });
  const gint64 at_cap = static_cast<gint64>(kMaxRetryDelay * (1 - kJitter)) - 1;
  auto first_at_cap = [&]() -> int {
    for (size_t i = 0; i < waits.size(); ++i)
      if (waits[i].second >= at_cap)
        return static_cast<int>(i);
    return -1;
  };
  gst_element_set_state(p.pipeline, GST_STATE_PLAYING);
  wait_until([&] {
    std::lock_guard<std::mutex> guard(lock);
    const int first = first_at_cap();
    return (first >= 0 && waits.size() >= static_cast<size_t>(first + 1 + kAfterCap)) || !p.bus.errors().empty();
  }, 20000);
  p.stop();
  p.bus.set_sync_action(nullptr);
  std::lock_guard<std::mutex> guard(lock);
  std::string list;
  for (const auto &[t, d] : waits)
    list += std::to_string(d) + "@" + std::to_string(t) + " ";
  g_print("%s: retry-in-ms@ms-since-start %s\n", what, list.c_str());
  fail_unless(p.bus.errors().empty(), "%s: gave up: %s", what, p.bus.error_text().c_str());
  fail_unless(!waits.empty(), "%s: no reconnecting message", what);
  fail_unless(waits[0].second <= kRetryDelay * (1 + kJitter) + 1, "%s: the first retry waits %" G_GINT64_FORMAT " ms",
              what, waits[0].second);
  for (size_t i = 0; i < waits.size(); ++i)
    fail_unless(waits[i].second <= kMaxRetryDelay, "%s: retry %zu waits %" G_GINT64_FORMAT " ms, over max-retry-delay",
                what, i + 1, waits[i].second);
  const int first = first_at_cap();
  fail_unless(first >= 0, "%s: the waits never reached max-retry-delay: %s", what, list.c_str());
  fail_unless(waits[first].first <= kReachCapMs, "%s: max-retry-delay reached only after %" G_GINT64_FORMAT " ms", what,
              waits[first].first);
  fail_unless(waits.size() >= static_cast<size_t>(first + 1 + kAfterCap), "%s: too few waits after the cap: %s", what,
              list.c_str());
  /* a crash loop never starts again from retry-delay */
  for (size_t i = first + 1; i < waits.size(); ++i)
    fail_unless(waits[i].second >= kMaxRetryDelay / 2, "%s: retry %zu waits %" G_GINT64_FORMAT " ms: the backoff fell back (%s)",
                what, i + 1, waits[i].second, list.c_str());
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
