/* Bounded memory and time against a hostile server: the HttpClient's caps on body size, header
 * count, redirects and the whole exchange's deadline; the Link parser's bounds; whepsrc's outcome
 * for each; and the peak RSS of a gst-launch-1.0 whepsrc fed endless and huge answers. */
#include <gst/check/gstcheck.h>
#include <signal.h>
#include <sys/wait.h>

#include <string>

#include "event_loop.h"
#include "fault_server.h"
#include "hostile_server.h"
#include "http_client.h"
#include "link_header.h"
#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

static gint64 now_ms() { return g_get_monotonic_time() / 1000; }

static gstmtx::HttpResponse request(gstmtx::HttpClient &http, const std::string &method, const std::string &url,
                                    int timeout_ms, gint64 *elapsed_ms) {
  gstmtx::HttpRequest req;
  req.method = method;
  req.url = url;
  req.timeout = std::chrono::milliseconds(timeout_ms);
  if (method == "POST") {
    req.content_type = "application/sdp";
    req.body = "v=0\r\n";
  }
  const gint64 start = now_ms();
  auto r = http.send_sync(req);
  *elapsed_ms = now_ms() - start;
  return r;
}

GST_START_TEST(test_http_client_bounds) {
  fail_unless(in_test_namespace());
  HostileServer hostile;
  gstmtx::EventLoop loop("bounds");
  gstmtx::HttpClient http(loop, {});
  gint64 elapsed = 0;

  /* a body that trickles forever ends at the deadline, not never */
  auto r = request(http, "POST", hostile.url("slow-body"), 2000, &elapsed);
  fail_unless(r.failure == gstmtx::HttpFailure::Timeout, "slow-body: %s", r.error.c_str());
  fail_unless(elapsed >= 1900 && elapsed < 2600, "slow-body ended after %" G_GINT64_FORMAT " ms", elapsed);
  fail_unless(r.body.size() < 1024);

  /* a body that floods ends at max_body (256 KiB), fast */
  r = request(http, "POST", hostile.url("endless-body"), 5000, &elapsed);
  fail_unless(r.failure == gstmtx::HttpFailure::TooLarge, "endless-body: %s", r.error.c_str());
  fail_unless(r.body.size() <= 256 * 1024);
  fail_unless(elapsed < 2000, "endless-body took %" G_GINT64_FORMAT " ms", elapsed);

  /* 1000 Link headers: at most 256 headers kept, at most 16 ICE servers */
  r = request(http, "OPTIONS", hostile.url("many-links"), 5000, &elapsed);
  fail_unless(r.ok(), "many-links: %s", r.error.c_str());
  fail_unless_equals_int(r.status, 204);
  fail_unless(r.headers.size() <= 256, "%zu headers kept", r.headers.size());
  auto servers = gstmtx::ice_servers_from_link_headers(r.headers_named("link"));
  fail_unless(servers.size() <= 16, "%zu ICE servers", servers.size());
  fail_unless(!servers.empty());

  /* 100000 headers, or one header of 1 MiB: libsoup refuses them (or we keep 256), in time */
  for (const char *route : {"many-headers", "huge-header"}) {
    r = request(http, "POST", hostile.url(route), 5000, &elapsed);
    g_print("%s: failure %d, status %u, %zu headers kept, error '%s', %" G_GINT64_FORMAT " ms\n", route,
            static_cast<int>(r.failure), r.status, r.headers.size(), r.error.c_str(), elapsed);
    fail_unless(!r.ok() || r.headers.size() <= 256, "%s: %zu headers kept", route, r.headers.size());
    fail_unless(elapsed < 5500, "%s took %" G_GINT64_FORMAT " ms", route, elapsed);
  }
}
GST_END_TEST;

GST_START_TEST(test_link_parser_bounds) {
  /* one header value with 100000 entries: 32 parsed, in a bounded time */
  std::string header;
  for (int i = 0; i < 100000; ++i)
    header += "<stun:h" + std::to_string(i) + ":3478>; rel=\"ice-server\"; a=1; b=2, ";
  gint64 start = now_ms();
  auto links = gstmtx::parse_link_header(header);
  fail_unless(links.size() <= 32, "%zu entries", links.size());
  /* one entry with 10000 parameters: 16 kept */
  std::string params = "<stun:h:1>";
  for (int i = 0; i < 10000; ++i)
    params += "; p" + std::to_string(i) + "=v";
  links = gstmtx::parse_link_header(params);
  fail_unless(links.size() == 1 && links[0].params.size() <= 16);
  /* 10000 headers: 16 ICE servers */
  std::vector<std::string> headers(10000, "<turn:t:3478>; rel=\"ice-server\"; username=u; credential=c");
  auto servers = gstmtx::ice_servers_from_link_headers(headers);
  fail_unless_equals_int(servers.size(), 16);
  /* an unterminated quote and an unterminated target of 1 MiB: nothing, quickly */
  fail_unless(gstmtx::parse_link_header("<stun:h:1>; rel=\"" + std::string(1 << 20, 'x')).empty());
  fail_unless(gstmtx::parse_link_header("<" + std::string(1 << 20, 'x')).empty());
  const gint64 elapsed = now_ms() - start;
  fail_unless(elapsed < 1000, "parsing took %" G_GINT64_FORMAT " ms", elapsed);
}
GST_END_TEST;

struct Outcome {
  bool error = false;
  std::string message;
  gint64 elapsed_ms = 0;
};

static Outcome run_viewer(const std::string &url, const std::string &props, int budget_ms) {
  GstElement *pipeline = parse_pipeline("whepsrc name=src location=" + url + " " + props +
                                        " ! fakesink name=sink sync=false async=false");
  Outcome out;
  {
    BusWatcher bus(pipeline);
    const gint64 start = now_ms();
    fail_unless(set_state_and_wait(pipeline, GST_STATE_PLAYING));
    wait_until([&] { return !bus.errors().empty(); }, budget_ms);
    out.elapsed_ms = now_ms() - start;
    out.error = !bus.errors().empty();
    if (out.error)
      out.message = bus.errors().front();
    gst_element_set_state(pipeline, GST_STATE_NULL);
  }
  gst_object_unref(pipeline);
  return out;
}

GST_START_TEST(test_whepsrc_hostile_answers) {
  fail_unless(in_test_namespace());
  HostileServer hostile;
  const std::string fast = "retry-delay=100 max-retry-delay=200 timeout=1500 max-retries=1 ";
  /* slow body: each attempt ends at the 1.5 s bound, then gives up */
  Outcome o = run_viewer(hostile.url("slow-body"), fast, 8000);
  fail_unless(o.error);
  fail_unless(o.message.find("1500 ms") != std::string::npos, "%s", o.message.c_str());
  fail_unless(o.elapsed_ms >= 3000 && o.elapsed_ms < 5000, "%" G_GINT64_FORMAT " ms", o.elapsed_ms);
  /* two attempts; the OPTIONS pre-flight trickles too and takes the whole `timeout`, so an attempt
   * (bounded by `timeout` from its start, to the millisecond now that the no-media watchdog is a
   * timer rather than a 250 ms poll) may end before its POST */
  fail_unless(hostile.requests("slow-body", "POST") + hostile.requests("slow-body", "OPTIONS") >= 2,
              "POST %d, OPTIONS %d", hostile.requests("slow-body", "POST"), hostile.requests("slow-body", "OPTIONS"));
  /* endless body: oversized, retried, gives up */
  o = run_viewer(hostile.url("endless-body"), fast, 6000);
  fail_unless(o.error);
  fail_unless(o.message.find("oversized answer") != std::string::npos, "%s", o.message.c_str());
  fail_unless(o.elapsed_ms < 3000, "%" G_GINT64_FORMAT " ms", o.elapsed_ms);
  /* 1000 Link headers in the OPTIONS answer, then 400: fatal, fast */
  o = run_viewer(hostile.url("many-links"), fast, 6000);
  fail_unless(o.error);
  fail_unless(o.message.find("HTTP 400") != std::string::npos, "%s", o.message.c_str());
  fail_unless(o.elapsed_ms < 2000, "%" G_GINT64_FORMAT " ms", o.elapsed_ms);
  /* huge headers: an error within the attempts' bounds */
  for (const char *route : {"many-headers", "huge-header"}) {
    o = run_viewer(hostile.url(route), fast, 8000);
    fail_unless(o.error, "%s: no error", route);
    g_print("whepsrc %s: %s (%" G_GINT64_FORMAT " ms)\n", route, o.message.c_str(), o.elapsed_ms);
    fail_unless(o.elapsed_ms < 5000, "%s: %" G_GINT64_FORMAT " ms", route, o.elapsed_ms);
  }
}
GST_END_TEST;

/* Peak RSS (VmHWM, kB) of gst-launch-1.0 whepsrc on `url` after `seconds` of retrying. */
static long peak_rss_kb(const std::string &url, int seconds) {
  const std::string location = "location=" + url;
  const char *argv[] = {"gst-launch-1.0", "-q", "whepsrc", location.c_str(), "retry-delay=50", "max-retry-delay=100",
                        "timeout=1000", "!", "fakesink", nullptr};
  GPid pid = 0;
  GError *error = nullptr;
  fail_unless(g_spawn_async(nullptr, const_cast<char **>(argv), nullptr,
                            static_cast<GSpawnFlags>(G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD |
                                                     G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL),
                            nullptr, nullptr, &pid, &error),
              "gst-launch-1.0: %s", error ? error->message : "?");
  g_usleep(seconds * G_USEC_PER_SEC);
  long kb = -1;
  const std::string status_path = "/proc/" + std::to_string(pid) + "/status";
  gchar *status = nullptr;
  if (g_file_get_contents(status_path.c_str(), &status, nullptr, nullptr)) {
    if (const char *hwm = strstr(status, "VmHWM:"))
      kb = strtol(hwm + 6, nullptr, 10);
    g_free(status);
  }
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  fail_unless(kb > 0, "gst-launch-1.0 exited early");
  return kb;
}

GST_START_TEST(test_peak_rss_bounded) {
  fail_unless(in_test_namespace());
  HostileServer hostile;
  FaultServer faults;
  const long baseline = peak_rss_kb(faults.url("status-404"), 3);
  const long huge = peak_rss_kb(faults.url("huge"), 3);
  const long endless = peak_rss_kb(hostile.url("endless-body"), 3);
  const long headers = peak_rss_kb(hostile.url("many-headers"), 3);
  g_print("peak RSS after 3 s of retries: 404 %ld kB, 2 MiB answer %ld kB, endless body %ld kB (%lld MiB sent), "
          "100000 headers %ld kB\n",
          baseline, huge, endless, hostile.bytes_sent("endless-body") >> 20, headers);
  for (long kb : {huge, endless, headers})
    fail_unless(kb - baseline < 16 * 1024, "peak RSS %ld kB vs %ld kB without the fault", kb, baseline);
}
GST_END_TEST;

static Suite *bounds_suite(void) {
  Suite *s = suite_create("bounds");
  TCase *tc = tcase_create("bounds");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_http_client_bounds);
  tcase_add_test(tc, test_link_parser_bounds);
  tcase_add_test(tc, test_whepsrc_hostile_answers);
  tcase_add_test(tc, test_peak_rss_bounded);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(bounds);
