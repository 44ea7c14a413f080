/* mediamtxsink over WHIP against a misbehaving server (issue 15, "Done when"): an offer rejected
 * with 400 or 415, an untrusted TLS certificate and a redirect loop each end in their own error
 * (text and code), none of them RESOURCE/NOT_AUTHORIZED or about credentials; 401 still is
 * NOT_AUTHORIZED; 503 with Retry-After is waited, then publishing goes on.
 * tests/whepsrc/test_whepsrc_faults.cpp checks the same faults for whepsrc. */
#include <gst/check/gstcheck.h>

#include <mutex>
#include <string>

#include "fault_server.h"
#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

namespace {

struct ErrorSeen {
  bool error = false;
  GQuark domain = 0;
  int code = 0;
  std::string message, debug;
  gint64 elapsed_ms = 0;
};

/* Publishes test video with mediamtxsink over WHIP to `url` until an error or `budget_ms`. */
ErrorSeen publish_until_error(const std::string &url, int budget_ms) {
  TestPipeline pub(std::string(kLiveTestVideo) + " ! mediamtxsink name=pub transport=whip retry-delay=100 "
                   "max-retry-delay=200 location=" + url);
  std::mutex lock;
  ErrorSeen seen;
  pub.bus.set_sync_action([&](GstMessage *msg) {
    if (GST_MESSAGE_TYPE(msg) != GST_MESSAGE_ERROR)
      return;
    GError *err = nullptr;
    gchar *debug = nullptr;
    gst_message_parse_error(msg, &err, &debug);
    std::lock_guard<std::mutex> guard(lock);
    if (!seen.error) {
      seen.error = true;
      seen.domain = err->domain;
      seen.code = err->code;
      seen.message = err->message;
      seen.debug = debug ? debug : "";
    }
    g_clear_error(&err);
    g_free(debug);
  });
  const gint64 start = g_get_monotonic_time();
  gst_element_set_state(pub.pipeline, GST_STATE_PLAYING);
  wait_until([&] { std::lock_guard<std::mutex> guard(lock); return seen.error; }, budget_ms);
  pub.stop();
  pub.bus.set_sync_action(nullptr);
  std::lock_guard<std::mutex> guard(lock);
  seen.elapsed_ms = (g_get_monotonic_time() - start) / 1000;
  g_print("%s: %s %s/%d: '%s' (%s) after %" G_GINT64_FORMAT " ms\n", url.c_str(),
          seen.error ? "error" : "no error", seen.domain ? g_quark_to_string(seen.domain) : "-", seen.code,
          seen.message.c_str(), seen.debug.c_str(), seen.elapsed_ms);
  return seen;
}

bool contains_nocase(const std::string &haystack, const char *needle) {
  g_autofree char *h = g_ascii_strdown(haystack.c_str(), -1);
  g_autofree char *n = g_ascii_strdown(needle, -1);
  return strstr(h, n) != nullptr;
}

/* An error of its own: RESOURCE domain (the server refused), not NOT_AUTHORIZED, not about
 * credentials, and it names what happened (`hint`, case-blind). */
void check_typed_error(const char *what, const ErrorSeen &e, const char *hint) {
  fail_unless(e.error, "%s: no error", what);
  fail_unless(e.domain == GST_RESOURCE_ERROR, "%s: domain %s, not RESOURCE", what, g_quark_to_string(e.domain));
  fail_if(e.code == GST_RESOURCE_ERROR_NOT_AUTHORIZED, "%s: reported as NOT_AUTHORIZED: '%s'", what,
          e.message.c_str());
  fail_if(contains_nocase(e.message, "credential"), "%s: the message blames credentials: '%s'", what,
          e.message.c_str());
  fail_unless(contains_nocase(e.message, hint), "%s: '%s' does not say '%s'", what, e.message.c_str(), hint);
}

/* A self-signed certificate for `ip` (trusted by nobody), in a folder removed on destruction. */
struct SelfSigned {
  std::string dir, key, cert;
  explicit SelfSigned(const std::string &ip) {
    g_autofree char *d = g_dir_make_tmp("whip-tls-XXXXXX", nullptr);
    dir = d;
    key = dir + "/server.key";
    cert = dir + "/server.pem";
    const std::string cmd = "cd '" + dir + "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                            "-days 2 -subj /CN=" + ip + " -addext subjectAltName=IP:" + ip +
                            " -keyout server.key -out server.pem >openssl.log 2>&1";
    fail_unless(system(cmd.c_str()) == 0, "openssl failed, see %s/openssl.log", dir.c_str());
  }
  ~SelfSigned() {
    const std::string cmd = "rm -rf '" + dir + "'";
    if (dir.find("/whip-tls-") != std::string::npos)
      (void)!system(cmd.c_str());
  }
};

}  // namespace

GST_START_TEST(test_whip_400_rejected) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  ErrorSeen e = publish_until_error(faults.url("status-400", "cam", "whip"), 8000);
  check_typed_error("400", e, "400");
  fail_unless_equals_int(faults.requests("status-400", "POST"), 1);
}
GST_END_TEST;

GST_START_TEST(test_whip_415_rejected) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  ErrorSeen e = publish_until_error(faults.url("status-415", "cam", "whip"), 8000);
  check_typed_error("415", e, "415");
  fail_unless_equals_int(faults.requests("status-415", "POST"), 1);
}
GST_END_TEST;

GST_START_TEST(test_whip_redirect_loop) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  ErrorSeen e = publish_until_error(faults.url("loop", "cam", "whip"), 8000);
  check_typed_error("redirect loop", e, "redirect");
}
GST_END_TEST;

GST_START_TEST(test_whip_untrusted_certificate) {
  fail_unless(in_test_namespace());
  SelfSigned pki(server_address());
  MediamtxOptions options;
  options.tls_key = pki.key;
  options.tls_cert = pki.cert;
  MediamtxServer server(options);
  fail_unless(server.start());
  const std::string url = server.whip_url("cam");
  fail_unless(g_str_has_prefix(url.c_str(), "https://"), "%s", url.c_str());
  ErrorSeen e = publish_until_error(url, 8000);
  check_typed_error("TLS", e, "certificate");
  fail_if(server.path_ready("cam"));
}
GST_END_TEST;

/* The message of an error at `url`, with the URL (which differs per fault route) taken out. */
static std::string message_without_url(const std::string &url) {
  std::string m = publish_until_error(url, 8000).message;
  for (size_t at; (at = m.find(url)) != std::string::npos;)
    m.replace(at, url.size(), "<url>");
  return m;
}

/* The faults are told apart: no two share a message (the URL left aside). */
GST_START_TEST(test_whip_errors_differ) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  const std::string m400 = message_without_url(faults.url("status-400", "cam", "whip"));
  const std::string m415 = message_without_url(faults.url("status-415", "cam", "whip"));
  const std::string mloop = message_without_url(faults.url("loop", "cam", "whip"));
  fail_if(m400 == m415, "400 and 415 give the same text: '%s'", m400.c_str());
  fail_if(m400 == mloop, "400 and the redirect loop give the same text: '%s'", m400.c_str());
  fail_if(m415 == mloop, "415 and the redirect loop give the same text: '%s'", m415.c_str());
}
GST_END_TEST;

GST_START_TEST(test_whip_401_is_not_authorized) {
  fail_unless(in_test_namespace());
  FaultServer faults;
  ErrorSeen e = publish_until_error(faults.url("status-401", "cam", "whip"), 8000);
  fail_unless(e.error, "401: no error");
  fail_unless(e.domain == GST_RESOURCE_ERROR && e.code == GST_RESOURCE_ERROR_NOT_AUTHORIZED,
              "401: %s/%d, not RESOURCE/NOT_AUTHORIZED", g_quark_to_string(e.domain), e.code);
  /* not retried: the OPTIONS asking for ICE servers already gets the 401, or else the POST */
  fail_unless(faults.requests("status-401", "POST") <= 1 && faults.requests("status-401") <= 2,
              "401 retried: %d requests", faults.requests("status-401"));
}
GST_END_TEST;

/* 503 with Retry-After: 2 on the first POST: the next POST waits for it (retry-delay is 100 ms),
 * then the session is established through the relay and the path is published. */
GST_START_TEST(test_whip_503_retry_after_waited) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  FaultServer faults(server.webrtc_base_url());
  TestPipeline pub(std::string(kLiveTestVideo) + " ! mediamtxsink name=pub transport=whip retry-delay=100 "
                   "max-retry-delay=200 location=" + faults.url("unavailable-once", "cam", "whip"));
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 20000), "not published after the 503: %s",
              pub.bus.error_text().c_str());
  const std::vector<gint64> posts = faults.request_times("unavailable-once", "POST");
  fail_unless(posts.size() >= 2, "%zu POSTs", posts.size());
  const gint64 gap_ms = (posts[1] - posts[0]) / 1000;
  g_print("503 + Retry-After: 2: the next POST came %" G_GINT64_FORMAT " ms later\n", gap_ms);
  /* 2 s, less a little for the clocks of two threads */
  fail_unless(gap_ms >= 1900, "Retry-After: 2 not waited: the next POST came after %" G_GINT64_FORMAT " ms", gap_ms);
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
  fail_unless(wait_until([&] { return pub.stats_string("pub", "state") == "connected"; }, 5000), "state %s",
              pub.stats_string("pub", "state").c_str());
}
GST_END_TEST;

static Suite *whip_faults_suite(void) {
  Suite *s = suite_create("mediamtxsink-whip-faults");
  TCase *tc = tcase_create("faults");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_whip_400_rejected);
  tcase_add_test(tc, test_whip_415_rejected);
  tcase_add_test(tc, test_whip_redirect_loop);
  tcase_add_test(tc, test_whip_untrusted_certificate);
  tcase_add_test(tc, test_whip_errors_differ);
  tcase_add_test(tc, test_whip_401_is_not_authorized);
  tcase_add_test(tc, test_whip_503_retry_after_waited);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(whip_faults);
