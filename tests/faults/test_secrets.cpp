/* Secrets never appear in logs: whepsrc with auth-token, user-id/user-pw and credentials in the
 * URL, everything logged at GST_DEBUG=*:9, against (a) a real MediaMTX with authentication and (b)
 * the fault server. Searched for each secret and for the base64 of "user:password" (the Basic
 * header): the whole debug log, every bus message, the `stats` structure, and, for a separate
 * gst-launch-1.0 process, its GST_DEBUG_FILE, its -m bus printout and its stderr (GLib messages
 * with G_MESSAGES_DEBUG=all).
 *
 * Known exposure outside our code: gst_parse_launch (gst-launch-1.0) logs the pipeline description
 * it parses (GST_PIPELINE and default categories, INFO/DEBUG), so secrets written into a launch
 * line reach a debug log at those levels; set them with g_object_set instead. The gst-launch part
 * allows exactly those lines and reports how many there were. */
#include <gst/check/gstcheck.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>

#include <mutex>
#include <string>
#include <vector>

#include "fault_server.h"
#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

/* Unique per run, so a hit cannot be a coincidence. */
struct Secrets {
  std::string token, user, password, url_user, url_password;
  Secrets() {
    auto unique = [](const char *prefix) {
      return std::string(prefix) + std::to_string(g_random_int()) + "x" + std::to_string(g_random_int());
    };
    token = unique("tok");
    user = "viewer";
    password = unique("pw");
    url_user = "urlviewer";
    url_password = unique("urlpw");
  }
  std::vector<std::string> needles() const {
    auto b64 = [](const std::string &s) {
      g_autofree char *out = g_base64_encode(reinterpret_cast<const guchar *>(s.data()), s.size());
      return std::string(out);
    };
    return {token, password, url_password, b64(user + ":" + password), b64(url_user + ":" + url_password)};
  }
  std::string auth_users() const {
    return "  - user: " + user + "\n    pass: " + password + "\n    ips: []\n    permissions:\n      - action: read\n" +
           "  - user: " + url_user + "\n    pass: " + url_password +
           "\n    ips: []\n    permissions:\n      - action: read\n"
           "  - user: any\n    pass:\n    ips: []\n    permissions:\n      - action: publish\n"
           "  - user: any\n    pass:\n    ips: ['127.0.0.1']\n    permissions:\n      - action: api\n";
  }
  /* url with user:password@ inserted after the scheme */
  std::string with_userinfo(std::string url) const {
    url.replace(url.find("://") + 3, 0, url_user + ":" + url_password + "@");
    return url;
  }
};

/* ---- in-process: a log function at MEMDUMP for every category ---- */

struct LogScan {
  std::mutex lock;
  std::vector<std::string> needles;
  std::vector<std::string> hits;
  guint64 lines = 0;
};
/* Never freed: a streaming thread may still be inside scan_log_line() after the function is
 * removed (GStreamer does not wait for calls in flight), so the state must outlive the scan. */
static LogScan *g_scan = new LogScan();

static void scan_log_line(GstDebugCategory *category, GstDebugLevel level, const gchar *file, const gchar *function,
                          gint line, GObject *object, GstDebugMessage *message, gpointer) {
  gchar *text = gst_debug_log_get_line(category, level, file, function, line, object, message);
  {
    std::lock_guard<std::mutex> guard(g_scan->lock);
    g_scan->lines++;
    for (const auto &needle : g_scan->needles)
      if (strstr(text, needle.c_str()) && g_scan->hits.size() < 20)
        g_scan->hits.push_back(text);
  }
  g_free(text);
}

static void start_log_scan(const Secrets &secrets) {
  {
    std::lock_guard<std::mutex> guard(g_scan->lock);
    g_scan->needles = secrets.needles();
    g_scan->hits.clear();
    g_scan->lines = 0;
  }
  gst_debug_set_active(TRUE);
  gst_debug_remove_log_function(gst_debug_log_default);
  gst_debug_add_log_function(scan_log_line, nullptr, nullptr);
  gst_debug_set_default_threshold(GST_LEVEL_MEMDUMP);
}

static void stop_log_scan() {
  gst_debug_set_default_threshold(GST_LEVEL_NONE);
  gst_debug_remove_log_function(scan_log_line);
  {
    std::lock_guard<std::mutex> guard(g_scan->lock);
    for (const auto &hit : g_scan->hits)
      g_printerr("LEAK in debug log: %s", hit.c_str());
    fail_unless(g_scan->hits.empty(), "%zu debug lines carry a secret", g_scan->hits.size());
    fail_unless(g_scan->lines > 1000, "only %" G_GUINT64_FORMAT " debug lines: was logging on?", g_scan->lines);
    g_print("debug log: %" G_GUINT64_FORMAT " lines, no secret\n", g_scan->lines);
  }
}

/* Every bus message, as text. */
struct BusText {
  std::mutex lock;
  std::string text;
  int errors = 0;
};

static GstBusSyncReply collect_message(GstBus *, GstMessage *msg, gpointer data) {
  auto *bus = static_cast<BusText *>(data);
  std::string line = std::string(GST_MESSAGE_TYPE_NAME(msg)) + " from " +
                     (GST_MESSAGE_SRC(msg) ? GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)) : "?") + ": ";
  if (const GstStructure *s = gst_message_get_structure(msg)) {
    g_autofree char *str = gst_structure_to_string(s);
    line += str;
  }
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR || GST_MESSAGE_TYPE(msg) == GST_MESSAGE_WARNING) {
    GError *err = nullptr;
    gchar *debug = nullptr;
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR)
      gst_message_parse_error(msg, &err, &debug);
    else
      gst_message_parse_warning(msg, &err, &debug);
    line += std::string(" ") + err->message + " / " + (debug ? debug : "");
    g_clear_error(&err);
    g_free(debug);
  }
  std::lock_guard<std::mutex> guard(bus->lock);
  bus->text += line + "\n";
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR)
    bus->errors++;
  return GST_BUS_PASS;
}

static void assert_no_secret(const Secrets &secrets, const std::string &where, const std::string &text) {
  for (const auto &needle : secrets.needles()) {
    auto pos = text.find(needle);
    fail_unless(pos == std::string::npos, "secret in %s: ...%s...", where.c_str(),
                text.substr(pos > 200 ? pos - 200 : 0, 400).c_str());
  }
}

struct Run {
  int frames = 0;
  int errors = 0;
};

/* whepsrc with the secrets set through g_object_set, `extra` from a launch line (no secrets). */
static Run run_in_process(const Secrets &secrets, const std::string &location, bool token, bool basic,
                          int budget_ms, int want_frames) {
  GstElement *pipeline = parse_pipeline("whepsrc name=src retry-delay=100 max-retry-delay=200 timeout=3000 "
                                        "! fakesink name=sink sync=false async=false");
  GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
  g_object_set(src, "location", location.c_str(), nullptr);
  if (token)
    g_object_set(src, "auth-token", secrets.token.c_str(), nullptr);
  if (basic)
    g_object_set(src, "user-id", secrets.user.c_str(), "user-pw", secrets.password.c_str(), nullptr);
  BusText bus;
  GstBus *b = gst_element_get_bus(pipeline);
  gst_bus_set_sync_handler(b, collect_message, &bus, nullptr);
  Run run;
  {
    BufferCounter frames;
    frames.attach(pipeline, "sink");
    if (set_state_and_wait(pipeline, GST_STATE_PLAYING))
      wait_until([&] {
        std::lock_guard<std::mutex> guard(bus.lock);
        return bus.errors > 0 || (want_frames && frames.count() >= want_frames);
      }, budget_ms);
    GstStructure *stats = nullptr;
    g_object_get(src, "stats", &stats, nullptr);
    g_autofree char *stats_text = gst_structure_to_string(stats);
    gst_structure_free(stats);
    assert_no_secret(secrets, "stats", stats_text);
    run.frames = frames.count();
    gst_element_set_state(pipeline, GST_STATE_NULL);
  }
  gst_bus_set_sync_handler(b, nullptr, nullptr, nullptr);
  gst_object_unref(b);
  gst_object_unref(src);
  gst_object_unref(pipeline);
  std::lock_guard<std::mutex> guard(bus.lock);
  assert_no_secret(secrets, "bus messages", bus.text);
  run.errors = bus.errors;
  return run;
}

static const char *kPublisher =
    "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! "
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! video/x-h264,profile=constrained-baseline ! "
    "rtspclientsink protocols=tcp location=";

GST_START_TEST(test_secrets_not_logged_real_server) {
  fail_unless(in_test_namespace());
  Secrets secrets;
  MediamtxOptions options;
  options.auth_users = secrets.auth_users();
  MediamtxServer server(options);
  fail_unless(server.start());
  GstElement *pub = parse_pipeline(kPublisher + server.rtsp_url("cam"));
  fail_unless(set_state_and_wait(pub, GST_STATE_PLAYING));
  fail_unless(server.wait_path_ready("cam", 10000));

  start_log_scan(secrets);
  /* user-id/user-pw: plays (OPTIONS, POST, PATCH, DELETE all carry the Basic header) */
  Run run = run_in_process(secrets, server.whep_url("cam"), false, true, 20000, 10);
  fail_unless(run.frames >= 10, "user-id/user-pw: %d frames", run.frames);
  /* credentials in the URL: plays */
  run = run_in_process(secrets, secrets.with_userinfo(server.whep_url("cam")), false, false, 20000, 10);
  fail_unless(run.frames >= 10, "URL userinfo: %d frames", run.frames);
  /* a Bearer token MediaMTX's internal users do not accept, with a wrong password in the URL too */
  run = run_in_process(secrets, secrets.with_userinfo(server.whep_url("nothing")), true, true, 8000, 0);
  fail_unless(run.errors >= 1, "token: expected 401");
  stop_log_scan();

  gst_element_set_state(pub, GST_STATE_NULL);
  gst_object_unref(pub);
}
GST_END_TEST;

GST_START_TEST(test_secrets_not_logged_fault_server) {
  fail_unless(in_test_namespace());
  Secrets secrets;
  FaultServer faults;
  start_log_scan(secrets);
  for (const char *fault : {"status-401", "status-400", "status-500", "garbage", "loop", "huge", "reset"}) {
    Run run = run_in_process(secrets, secrets.with_userinfo(faults.url(fault)), true, true, 3000, 0);
    (void)run;
  }
  stop_log_scan();
}
GST_END_TEST;

/* ---- a separate gst-launch-1.0 process: GST_DEBUG=*:9 to a file, -m, G_MESSAGES_DEBUG=all ---- */

static std::string read_file(const std::string &path) {
  gchar *contents = nullptr;
  gsize length = 0;
  if (!g_file_get_contents(path.c_str(), &contents, &length, nullptr))
    return {};
  std::string out(contents, length);
  g_free(contents);
  return out;
}

/* gst_parse_launch's own debug lines: they print the launch line, secrets and all. */
static bool is_parse_launch_line(const std::string &line) {
  for (const char *where : {"gstparse.c:", "parse.l:", "grammar.y:", "gst_parse_unescape"})
    if (line.find(where) != std::string::npos)
      return true;
  return false;
}

/* Runs gst-launch-1.0 for `seconds`, then interrupts it; checks its log, stdout and stderr.
 * Returns the number of parse-launch lines that carried a secret. */
static int run_gst_launch(const Secrets &secrets, const std::vector<std::string> &launch_args, int seconds) {
  g_autofree char *dir = g_dir_make_tmp("secrets-XXXXXX", nullptr);
  const std::string log = std::string(dir) + "/gst.log", out = std::string(dir) + "/stdout",
                    err = std::string(dir) + "/stderr";
  std::vector<const char *> argv = {"gst-launch-1.0", "-m"};
  for (const auto &a : launch_args)
    argv.push_back(a.c_str());
  argv.push_back(nullptr);
  gchar **env = g_get_environ();
  env = g_environ_setenv(env, "GST_DEBUG", "*:9", TRUE);
  env = g_environ_setenv(env, "GST_DEBUG_FILE", log.c_str(), TRUE);
  env = g_environ_setenv(env, "GST_DEBUG_NO_COLOR", "1", TRUE);
  env = g_environ_setenv(env, "G_MESSAGES_DEBUG", "all", TRUE);
  int out_fd = g_open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  int err_fd = g_open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  GPid pid = 0;
  GError *error = nullptr;
  gboolean ok = g_spawn_async_with_fds(nullptr, const_cast<char **>(argv.data()), env,
                                       static_cast<GSpawnFlags>(G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD),
                                       nullptr, nullptr, &pid, -1, out_fd, err_fd, &error);
  close(out_fd);
  close(err_fd);
  g_strfreev(env);
  fail_unless(ok, "cannot start gst-launch-1.0: %s", error ? error->message : "?");
  int status = 0;
  bool exited = wait_until([&] { return waitpid(pid, &status, WNOHANG) == pid; }, seconds * 1000);
  if (!exited) {
    kill(pid, SIGINT);
    if (!wait_until([&] { return waitpid(pid, &status, WNOHANG) == pid; }, 5000)) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
  }
  int parse_lines = 0;
  const std::string log_text = read_file(log);
  fail_unless(log_text.size() > 100000, "debug log is only %zu bytes", log_text.size());
  std::size_t start = 0;
  while (start < log_text.size()) {
    std::size_t end = log_text.find('\n', start);
    if (end == std::string::npos)
      end = log_text.size();
    const std::string line = log_text.substr(start, end - start);
    for (const auto &needle : secrets.needles()) {
      if (line.find(needle) == std::string::npos)
        continue;
      if (is_parse_launch_line(line))
        parse_lines++;
      else
        fail("secret in gst-launch's debug log: %s", line.c_str());
      break;
    }
    start = end + 1;
  }
  assert_no_secret(secrets, "gst-launch -m output", read_file(out));
  assert_no_secret(secrets, "gst-launch stderr (GLib messages)", read_file(err));
  g_print("gst-launch: %zu bytes of debug log, %d parse-launch lines with a secret, none elsewhere\n",
          log_text.size(), parse_lines);
  const std::string cleanup = std::string("rm -rf '") + dir + "'";
  (void)!system(cleanup.c_str());
  return parse_lines;
}

GST_START_TEST(test_secrets_gst_launch) {
  fail_unless(in_test_namespace());
  Secrets secrets;
  MediamtxOptions options;
  options.auth_users = secrets.auth_users();
  MediamtxServer server(options);
  fail_unless(server.start());
  GstElement *pub = parse_pipeline(kPublisher + server.rtsp_url("cam"));
  fail_unless(set_state_and_wait(pub, GST_STATE_PLAYING));
  fail_unless(server.wait_path_ready("cam", 10000));
  FaultServer faults;

  /* (a) the real server: Basic from user-id/user-pw plays; URL userinfo; a token */
  int parse_lines = run_gst_launch(secrets, {"whepsrc", "location=" + server.whep_url("cam"), "user-id=" + secrets.user,
                                             "user-pw=" + secrets.password, "!", "fakesink"}, 6);
  parse_lines += run_gst_launch(secrets, {"whepsrc", "location=" + secrets.with_userinfo(server.whep_url("cam")),
                                          "auth-token=" + secrets.token, "!", "fakesink"}, 6);
  /* (b) the fault server refusing everything */
  parse_lines += run_gst_launch(secrets, {"whepsrc", "location=" + secrets.with_userinfo(faults.url("status-401")),
                                          "auth-token=" + secrets.token, "user-id=" + secrets.user,
                                          "user-pw=" + secrets.password, "!", "fakesink"}, 4);
  /* documented, not ours: gst_parse_launch logs the description it parses */
  fail_unless(parse_lines > 0, "parse-launch no longer logs its description: update docs/reliability.md");

  gst_element_set_state(pub, GST_STATE_NULL);
  gst_object_unref(pub);
}
GST_END_TEST;

static Suite *secrets_suite(void) {
  Suite *s = suite_create("whepsrc-secrets");
  TCase *tc = tcase_create("secrets");
  tcase_set_timeout(tc, 90);
  tcase_add_test(tc, test_secrets_not_logged_real_server);
  tcase_add_test(tc, test_secrets_not_logged_fault_server);
  tcase_add_test(tc, test_secrets_gst_launch);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(secrets);
