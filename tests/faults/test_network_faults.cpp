/* Network faults with a publisher (mediamtxsink) and a viewer (whepsrc) running against a real
 * MediaMTX in the test namespace: packet loss, a partition of the viewer, repeated server kills,
 * and a connect/disconnect soak. Each test prints its measured figures (docs/reliability.md). */
#include <gst/check/gstcheck.h>

#include <dirent.h>
#include <malloc.h>

#include <cstdio>
#include <string>

#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

static const char *kCamera = "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1";

struct Running {
  GstElement *pipeline;
  BusWatcher *bus;
  BufferCounter frames;
  Running(const std::string &description, const char *counted) {
    pipeline = parse_pipeline(description);
    fail_unless(pipeline != nullptr);
    bus = new BusWatcher(pipeline);
    if (counted)
      frames.attach(pipeline, counted);
    fail_unless(set_state_and_wait(pipeline, GST_STATE_PLAYING));
  }
  ~Running() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    delete bus;
    gst_object_unref(pipeline);
  }
  int reconnects() const { return bus->count_element_messages("gst-mediamtx-status", "state", "reconnecting"); }
};

static std::string viewer(const MediamtxServer &server, const std::string &extra = "") {
  return "whepsrc name=src audio=false retry-delay=300 max-retry-delay=1000 timeout=2000 location=" +
         server.whep_url("cam") + " " + extra + " ! fakesink name=sink sync=false async=false";
}

static std::string publisher(const MediamtxServer &server) {
  return std::string(kCamera) + " ! mediamtxsink retry-delay=300 max-retry-delay=1000 location=" +
         server.rtsp_url("cam");
}

/* 5 % random loss of every UDP packet (media and RTCP, both ways): NACK/RTX keep the picture
 * flowing without a reconnection. */
GST_START_TEST(test_packet_loss_5_percent) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Running pub(publisher(server), nullptr);
  fail_unless(server.wait_path_ready("cam", 10000));
  Running view(viewer(server), "sink");
  fail_unless(wait_until([&] { return view.frames.count() >= 30; }, 15000));
  fail_unless(firewall("-A INPUT -p udp -m statistic --mode random --probability 0.05 -j DROP"));
  const int before = view.frames.count();
  g_usleep(10 * G_USEC_PER_SEC);
  const int during = view.frames.count() - before;
  fail_unless(firewall("-D INPUT -p udp -m statistic --mode random --probability 0.05 -j DROP"));
  g_print("5%% loss: %d frames in 10 s (30 fps source), %d reconnections\n", during, view.reconnects());
  /* a frozen or reconnecting picture would show far fewer */
  fail_unless(during >= 240, "only %d frames in 10 s under 5%% loss", during);
  fail_unless_equals_int(view.reconnects(), 0);
  fail_unless(view.bus->errors().empty());
}
GST_END_TEST;

/* The viewer loses the network for 10 s (every packet but the publisher's dropped), then gets it
 * back: it reconnects on its own, frames resume in the same pipeline. */
GST_START_TEST(test_viewer_partition_10s) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Running pub(publisher(server), nullptr);
  fail_unless(server.wait_path_ready("cam", 10000));
  Running view(viewer(server), "sink");
  fail_unless(wait_until([&] { return view.frames.count() >= 30; }, 15000));
  /* Everything but the publisher's RTSP connection: every UDP packet and every other TCP segment
   * (WHEP over HTTP, ICE over TCP), whatever candidate pair ICE is on. Server and viewer share this
   * namespace's addresses, so a rule on the viewer's address alone leaves pairs such as
   * 10.77.0.1 <-> 10.77.0.1 open, and with UDP alone cut a new session comes back over ICE-TCP. */
  const std::string rtsp = std::to_string(server.rtsp_port());
  const std::string rules[] = {"INPUT -p tcp --dport " + rtsp + " -j ACCEPT", "INPUT -p tcp --sport " + rtsp + " -j ACCEPT",
                               "INPUT -p tcp -j DROP", "INPUT -p udp -j DROP"};
  for (const auto &r : rules)
    fail_unless(firewall("-A " + r));
  g_usleep(G_USEC_PER_SEC);
  const int cut = view.frames.count();
  g_usleep(9 * G_USEC_PER_SEC);
  const int during = view.frames.count() - cut;
  for (const auto &r : rules)
    fail_unless(firewall("-D " + r));
  const gint64 healed = g_get_monotonic_time();
  fail_unless(during <= 2, "%d frames arrived through the partition", during);
  const int before = view.frames.count();
  fail_unless(wait_until([&] { return view.frames.count() >= before + 30; }, 20000), "no frames after the partition");
  g_print("partition 10 s: frames again %" G_GINT64_FORMAT " ms after the network came back (%d reconnections)\n",
          (g_get_monotonic_time() - healed) / 1000, view.reconnects());
  fail_unless(view.reconnects() >= 1);
  fail_unless(view.bus->errors().empty());
  fail_unless_equals_int(view.bus->eos_count(), 0);
}
GST_END_TEST;

/* MediaMTX SIGKILLed and restarted ten times under a running publisher and viewer: both recover
 * every time, neither pipeline errors. */
GST_START_TEST(test_server_sigkill_x10) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Running pub(publisher(server), nullptr);
  fail_unless(server.wait_path_ready("cam", 10000));
  Running view(viewer(server), "sink");
  fail_unless(wait_until([&] { return view.frames.count() >= 30; }, 15000));
  gint64 worst_ms = 0, total_ms = 0;
  for (int cycle = 0; cycle < 10; ++cycle) {
    server.kill_hard();
    g_usleep(500 * 1000);
    fail_unless(server.start(), "cycle %d: server did not start", cycle);
    const gint64 back = g_get_monotonic_time();
    const int before = view.frames.count();
    fail_unless(wait_until([&] { return view.frames.count() >= before + 10; }, 20000), "cycle %d: no frames", cycle);
    const gint64 took = (g_get_monotonic_time() - back) / 1000;
    worst_ms = std::max(worst_ms, took);
    total_ms += took;
  }
  g_print("10 server kills: frames at the viewer again after %" G_GINT64_FORMAT " ms on average, %" G_GINT64_FORMAT
          " ms at worst\n", total_ms / 10, worst_ms);
  fail_unless(pub.bus->errors().empty());
  fail_unless(view.bus->errors().empty());
}
GST_END_TEST;

static int count_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int n = 0;
  while (readdir(d))
    ++n;
  closedir(d);
  return n - 2;
}

/* resident memory after glibc returns what it holds free (so only live memory counts) */
static long rss_kib() {
  malloc_trim(0);
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  if (f)
    fclose(f);
  return kib;
}

/* 100 connect/disconnect cycles of a viewer and of a publisher in one process: file descriptors,
 * threads and memory stay flat (after a warm-up, within small bounds). */
GST_START_TEST(test_soak_100_cycles) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Running pub(publisher(server), nullptr);
  fail_unless(server.wait_path_ready("cam", 10000));
  GstElement *view = parse_pipeline(viewer(server));
  BufferCounter frames;
  frames.attach(view, "sink");
  GstElement *pub2 = parse_pipeline(std::string(kCamera) + " ! mediamtxsink location=" + server.rtsp_url("soak"));
  int fds0 = 0, threads0 = 0;
  long rss0 = 0;
  const char *only = g_getenv("SOAK_ONLY"); /* "viewer" or "publisher": attribution runs */
  const bool do_view = g_strcmp0(only, "publisher") != 0, do_pub = g_strcmp0(only, "viewer") != 0;
  for (int cycle = 0; cycle < 100; ++cycle) {
    const int before = frames.count();
    if (do_view)
      fail_unless(set_state_and_wait(view, GST_STATE_PLAYING));
    if (do_pub)
      fail_unless(set_state_and_wait(pub2, GST_STATE_PLAYING));
    if (do_view)
      fail_unless(wait_until([&] { return frames.count() > before; }, 15000), "cycle %d: no frame", cycle);
    if (do_pub)
      fail_unless(wait_until([&] { return server.path_ready("soak"); }, 15000), "cycle %d: not published", cycle);
    fail_unless(set_state_and_wait(view, GST_STATE_NULL));
    fail_unless(set_state_and_wait(pub2, GST_STATE_NULL));
    if (cycle == 9) { /* after a warm-up: registry, codecs, TLS/DTLS and thread pools are loaded */
      fds0 = count_dir("/proc/self/fd");
      threads0 = count_dir("/proc/self/task");
      rss0 = rss_kib();
    }
  }
  /* thread pools wind down lazily */
  wait_until([&] { return count_dir("/proc/self/task") <= threads0 + 2; }, 5000);
  const int fds = count_dir("/proc/self/fd"), threads = count_dir("/proc/self/task");
  const long rss = rss_kib();
  g_print("soak: after cycle 10 -> 100: fds %d -> %d, threads %d -> %d, RSS %ld -> %ld KiB\n", fds0, fds, threads0,
          threads, rss0, rss);
  fail_unless(fds <= fds0 + 4, "file descriptors grew %d -> %d", fds0, fds);
  fail_unless(threads <= threads0 + 4, "threads grew %d -> %d", threads0, threads);
  fail_unless(rss <= rss0 + 30 * 1024, "RSS grew %ld -> %ld KiB", rss0, rss);
  fail_unless(wait_until([&] { return server.webrtc_session_count() == 0; }, 3000));
  gst_object_unref(view);
  gst_object_unref(pub2);
}
GST_END_TEST;

static Suite *network_faults_suite(void) {
  Suite *s = suite_create("network-faults");
  TCase *tc = tcase_create("faults");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, test_packet_loss_5_percent);
  tcase_add_test(tc, test_viewer_partition_10s);
  tcase_add_test(tc, test_server_sigkill_x10);
  tcase_add_test(tc, test_soak_100_cycles);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(network_faults);
