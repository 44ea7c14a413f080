/* whepsrc over https against MediaMTX's own TLS (webrtcEncryption): certificates are verified by
 * default, tls-ca-file trusts a private CA, tls-validation=false is explicit and warns. The CA and
 * the server certificate (SAN = the test host's address) are made with openssl at test time. */
#include <gst/check/gstcheck.h>

#include <string>

#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

/* A private CA and a server certificate for `ip`, in a temporary folder removed on destruction. */
struct TestPki {
  std::string dir, ca, server_key, server_cert, other_ca;
  explicit TestPki(const std::string &ip) {
    g_autofree char *d = g_dir_make_tmp("tls-XXXXXX", nullptr);
    dir = d;
    ca = dir + "/ca.pem";
    server_key = dir + "/server.key";
    server_cert = dir + "/server.pem";
    other_ca = dir + "/other-ca.pem";
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    const std::string ca_ext = "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign";
    const std::string script =
        "set -e; cd '" + dir + "'\n" +
        "openssl req -x509 " + ec + " -days 2 -subj /CN=gst-mediamtx-test-ca " + ca_ext +
        " -keyout ca.key -out ca.pem\n"
        "openssl req -x509 " + ec + " -days 2 -subj /CN=unrelated-ca " + ca_ext +
        " -keyout other-ca.key -out other-ca.pem\n"
        "openssl req " + ec + " -subj /CN=" + ip + " -keyout server.key -out server.csr\n"
        "printf 'subjectAltName=IP:" + ip + "\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf\n"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf "
        "-out server.pem\n";
    const std::string path = dir + "/make.sh";
    g_file_set_contents(path.c_str(), script.c_str(), -1, nullptr);
    const std::string cmd = "sh '" + path + "' >'" + dir + "/openssl.log' 2>&1";
    fail_unless(system(cmd.c_str()) == 0, "openssl failed, see %s/openssl.log", dir.c_str());
  }
  ~TestPki() {
    const std::string cmd = "rm -rf '" + dir + "'";
    if (dir.find("/tls-") != std::string::npos)
      (void)!system(cmd.c_str());
  }
};

struct Outcome {
  std::vector<std::string> errors, warnings;
  gint64 elapsed_ms = 0;
  int frames = 0;
  int sessions = 0; /* sessions started: 1 for a fatal failure at the first try */
};

/* Runs whepsrc until an error, `want_frames` decoded frames, or `budget_ms`. */
static Outcome run_viewer(const std::string &url, const std::string &props, int budget_ms, int want_frames) {
  GstElement *pipeline = parse_pipeline("whepsrc name=src location=" + url + " " + props +
                                        " ! videoconvert ! fakesink name=sink sync=false async=false");
  Outcome out;
  {
    BusWatcher bus(pipeline);
    BufferCounter frames;
    frames.attach(pipeline, "sink");
    const gint64 start = g_get_monotonic_time();
    /* a configuration error fails the state change: the error is on the bus all the same */
    if (set_state_and_wait(pipeline, GST_STATE_PLAYING))
      wait_until([&] { return !bus.errors().empty() || (want_frames && frames.count() >= want_frames); },
                 budget_ms);
    out.elapsed_ms = (g_get_monotonic_time() - start) / 1000;
    out.errors = bus.errors();
    out.warnings = bus.warnings();
    out.frames = frames.count();
    GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
    GstStructure *stats = nullptr;
    g_object_get(src, "stats", &stats, nullptr);
    gst_structure_get_int(stats, "sessions", &out.sessions);
    gst_structure_free(stats);
    gst_object_unref(src);
    gst_element_set_state(pipeline, GST_STATE_NULL);
  }
  gst_object_unref(pipeline);
  return out;
}

static bool any_contains(const std::vector<std::string> &texts, const char *needle) {
  for (const auto &t : texts)
    if (t.find(needle) != std::string::npos)
      return true;
  return false;
}

static std::string joined(const std::vector<std::string> &texts) {
  std::string out;
  for (const auto &t : texts)
    out += t + " | ";
  return out;
}

static const char *kFast = "retry-delay=100 max-retry-delay=200 timeout=5000 ";

static GstElement *start_publisher(const MediamtxServer &server) {
  GstElement *pub = parse_pipeline(
      "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! "
      "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! video/x-h264,profile=constrained-baseline ! "
      "rtspclientsink protocols=tcp location=" + server.rtsp_url("cam"));
  fail_unless(set_state_and_wait(pub, GST_STATE_PLAYING));
  fail_unless(server.wait_path_ready("cam", 10000));
  return pub;
}

static void stop_publisher(GstElement *pub) {
  gst_element_set_state(pub, GST_STATE_NULL);
  gst_object_unref(pub);
}

/* Default validation against a certificate no system CA signed: a fatal error at once, no retries. */
GST_START_TEST(test_tls_untrusted_certificate_is_fatal) {
  fail_unless(in_test_namespace());
  TestPki pki(server_address());
  MediamtxServer server(MediamtxOptions{.tls_key = pki.server_key, .tls_cert = pki.server_cert});
  fail_unless(server.start());
  const std::string url = server.whep_url("cam");
  fail_unless(g_str_has_prefix(url.c_str(), "https://"), "%s", url.c_str());
  Outcome o = run_viewer(url, kFast, 8000, 0);
  fail_unless(o.errors.size() == 1, "errors: %s", joined(o.errors).c_str());
  fail_unless(any_contains(o.errors, "TLS"), "%s", joined(o.errors).c_str());
  fail_unless(any_contains(o.errors, "tls-ca-file"), "%s", joined(o.errors).c_str());
  fail_unless_equals_int(o.sessions, 1);
  fail_unless(o.elapsed_ms < 3000, "took %" G_GINT64_FORMAT " ms", o.elapsed_ms);
  /* a CA that did not sign the server's certificate is no better */
  o = run_viewer(url, std::string(kFast) + "tls-ca-file=" + pki.other_ca, 8000, 0);
  fail_unless(any_contains(o.errors, "TLS"), "%s", joined(o.errors).c_str());
  fail_unless_equals_int(o.sessions, 1);
}
GST_END_TEST;

/* tls-ca-file with the private CA: verified, plays decoded frames, no warning. */
GST_START_TEST(test_tls_ca_file_plays) {
  fail_unless(in_test_namespace());
  TestPki pki(server_address());
  MediamtxServer server(MediamtxOptions{.tls_key = pki.server_key, .tls_cert = pki.server_cert});
  fail_unless(server.start());
  GstElement *pub = start_publisher(server);
  Outcome o = run_viewer(server.whep_url("cam"), std::string(kFast) + "tls-ca-file=" + pki.ca, 20000, 10);
  fail_unless(o.errors.empty(), "%s", joined(o.errors).c_str());
  fail_unless(o.frames >= 10, "%d frames", o.frames);
  fail_if(any_contains(o.warnings, "tls-validation"), "%s", joined(o.warnings).c_str());
  stop_publisher(pub);
}
GST_END_TEST;

/* The CA is right but the certificate names another host: the name is checked too. */
GST_START_TEST(test_tls_hostname_mismatch_is_fatal) {
  fail_unless(in_test_namespace());
  TestPki pki("10.77.0.99");
  MediamtxServer server(MediamtxOptions{.tls_key = pki.server_key, .tls_cert = pki.server_cert});
  fail_unless(server.start());
  Outcome o = run_viewer(server.whep_url("cam"), std::string(kFast) + "tls-ca-file=" + pki.ca, 8000, 0);
  fail_unless(any_contains(o.errors, "TLS"), "%s", joined(o.errors).c_str());
  fail_unless_equals_int(o.sessions, 1);
}
GST_END_TEST;

/* tls-validation=false: plays, and says so on the bus. */
GST_START_TEST(test_tls_validation_off_plays_and_warns) {
  fail_unless(in_test_namespace());
  TestPki pki(server_address());
  MediamtxServer server(MediamtxOptions{.tls_key = pki.server_key, .tls_cert = pki.server_cert});
  fail_unless(server.start());
  GstElement *pub = start_publisher(server);
  Outcome o = run_viewer(server.whep_url("cam"), std::string(kFast) + "tls-validation=false", 20000, 10);
  fail_unless(o.errors.empty(), "%s", joined(o.errors).c_str());
  fail_unless(o.frames >= 10, "%d frames", o.frames);
  fail_unless(any_contains(o.warnings, "tls-validation=false"), "warnings: %s", joined(o.warnings).c_str());
  stop_publisher(pub);
}
GST_END_TEST;

/* A CA file that cannot be read: a configuration error before any request. */
GST_START_TEST(test_tls_missing_ca_file_is_fatal) {
  Outcome o = run_viewer("https://127.0.0.1:9/cam/whep", std::string(kFast) + "tls-ca-file=/nonexistent/ca.pem",
                         5000, 0);
  fail_unless(any_contains(o.errors, "cannot load CA file"), "%s", joined(o.errors).c_str());
  fail_unless_equals_int(o.sessions, 0);
}
GST_END_TEST;

static Suite *tls_suite(void) {
  Suite *s = suite_create("whepsrc-tls");
  TCase *tc = tcase_create("tls");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_tls_untrusted_certificate_is_fatal);
  tcase_add_test(tc, test_tls_ca_file_plays);
  tcase_add_test(tc, test_tls_hostname_mismatch_is_fatal);
  tcase_add_test(tc, test_tls_validation_off_plays_and_warns);
  tcase_add_test(tc, test_tls_missing_ca_file_is_fatal);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(tls);
