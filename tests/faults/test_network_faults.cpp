/* Network faults with a publisher (mediamtxsink) and a viewer (whepsrc) running against a real
 * MediaMTX, on three hosts: publisher, server and viewer each in its own network namespace, joined
 * by veth pairs (tests/faults/network_hosts.h). Each fault test prints one line of figures
 * ("FAULT name=... recovered=... recover_ms=... frames_lost=... freezes=..."), tabulated in
 * docs/reliability.md. The soak at the end runs both pipelines in this process.
 *
 * Every fault test fails when the publisher's or the viewer's process dies (a crash, an abort, any
 * exit before the test ends it, a non-zero exit status, or no exit after "quit"): checked during
 * the waits (ThreeHosts::check_alive) and at the end (ThreeHosts::finish), with any GLib critical
 * or warning either process logged. */
#include <gst/check/gstcheck.h>

#include <dirent.h>
#include <malloc.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "mediamtx_server.h"
#include "network_hosts.h"
#include "pipeline_helpers.h"

using namespace testbed;
using namespace faults;

static const char *kCamera = "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1";
/* the publisher host's camera: a moving picture, so the stream has a realistic packet rate for
 * the loss and delay faults (~100 packets/s) */
static const char *kMovingCamera =
    "videotestsrc is-live=true pattern=smpte horizontal-speed=2 ! video/x-raw,width=640,height=360,framerate=30/1";
/* the viewer's and publisher's settings in every fault: short timeouts and backoff, so a 10 s fault
 * costs seconds, not the default 10 s stall timeout and 30 s backoff cap */
static const char *kViewerSettings = "audio=false retry-delay=300 max-retry-delay=1000 timeout=2000";
static const char *kPublisherSettings = "retry-delay=300 max-retry-delay=1000";

/* MediaMTX on the server host (this process's namespace), a publisher and a viewer host. */
struct ThreeHosts {
  MediamtxServer server;
  TestHost publisher{"pub", 1}, viewer{"view", 2};

  explicit ThreeHosts(MediamtxOptions options = {}) : server(std::move(options)) {
    fail_unless(in_test_namespace());
    reset_server_firewall();
    /* the links before MediaMTX: its ICE agent lists the interfaces when it starts */
    fail_unless(publisher.create(), "publisher host not set up");
    fail_unless(viewer.create(), "viewer host not set up");
    fail_unless(server.start());
  }
  ~ThreeHosts() {
    viewer.stop();
    publisher.stop();
    reset_server_firewall();
  }
  std::string rtsp_url() const {
    return "rtsp://" + publisher.server_address() + ":" + std::to_string(server.rtsp_port()) + "/cam";
  }
  std::string whip_url() const {
    return "http://" + publisher.server_address() + ":" + std::to_string(server.webrtc_port()) + "/cam/whip";
  }
  std::string whep_url() const {
    return "http://" + viewer.server_address() + ":" + std::to_string(server.webrtc_port()) + "/cam/whep";
  }
  /* publisher publishing, viewer showing frames */
  void play(const std::string &publisher_transport = "rtsp", const char *viewer_settings = kViewerSettings,
            const std::string &publisher_extra = "") {
    const std::string location = publisher_transport == "whip" ? whip_url() : rtsp_url();
    fail_unless(publisher.play(std::string(kMovingCamera) + " ! mediamtxsink " + kPublisherSettings + " " +
                               publisher_extra + " transport=" + publisher_transport + " location=" + location));
    const bool published = server.wait_path_ready("cam", 15000);
    check_alive();
    fail_unless(published, "nothing published");
    fail_unless(viewer.play(std::string("whepsrc name=src ") + viewer_settings + " location=" + whep_url() +
                            " ! fakesink name=sink sync=false async=false"));
    const bool frames = viewer.wait_frames(kFps, 20000);
    check_alive();
    fail_unless(frames, "no frames at the viewer (%d)", viewer.frame_count());
  }
  /* Both host processes still run (or ended cleanly when told to). */
  void check_alive() const {
    for (const TestHost *host : {&publisher, &viewer}) {
      const std::string death = host->death();
      fail_unless(death.empty(), "the %s process died during the test: %s%s", host->name().c_str(), death.c_str(),
                  last_critical(*host).c_str());
    }
  }
  /* The end of every fault test: both processes alive, neither host posted an error or logged a
   * GLib critical or warning (as gst-check would fail it in-process), and both exit cleanly on
   * "quit" (status 0, within TestHost's bound). */
  void finish() {
    check_alive();
    fail_unless(publisher.errors().empty(), "publisher error: %s", publisher.errors().front().c_str());
    fail_unless(viewer.errors().empty(), "viewer error: %s", viewer.errors().front().c_str());
    fail_unless(publisher.criticals().empty(), "publisher critical: %s", publisher.criticals().front().c_str());
    fail_unless(viewer.criticals().empty(), "viewer critical: %s", viewer.criticals().front().c_str());
    for (TestHost *host : {&viewer, &publisher}) {
      const std::string end = host->stop();
      fail_unless(end.empty(), "the %s process did not end cleanly: %s%s", host->name().c_str(), end.c_str(),
                  last_critical(*host).c_str());
    }
  }
  static std::string last_critical(const TestHost &host) {
    const auto criticals = host.criticals();
    return criticals.empty() ? "" : " (last critical: " + criticals.back() + ")";
  }
  /* "criticals=N" for the FAULT line; each one printed on its own line */
  std::string criticals() const {
    size_t n = 0;
    for (const TestHost *host : {&publisher, &viewer})
      for (const std::string &c : host->criticals()) {
        g_print("  %s critical: %s\n", host->name().c_str(), c.c_str());
        ++n;
      }
    return "criticals=" + std::to_string(n);
  }
};

static int frames_between(const TestHost &host, gint64 from, gint64 to) {
  int n = 0;
  for (gint64 t : host.frames())
    n += t >= from && t < to;
  return n;
}

/* What the viewer's whepsrc and jitter buffers say (TestHost::stats). */
struct ViewerStats {
  guint64 rtx_requests = 0, jb_lost = 0, jb_late = 0;
  std::string local_candidate, remote_candidate;
  bool read(TestHost &viewer) {
    GstStructure *s = viewer.stats();
    if (!s)
      return false;
    gst_structure_get_uint64(s, "jb-rtx-requests", &rtx_requests);
    gst_structure_get_uint64(s, "jb-lost", &jb_lost);
    gst_structure_get_uint64(s, "jb-late", &jb_late);
    const char *l = gst_structure_get_string(s, "local-candidate");
    const char *r = gst_structure_get_string(s, "remote-candidate");
    local_candidate = l ? l : "";
    remote_candidate = r ? r : "";
    gst_structure_free(s);
    return true;
  }
  /* nack_sent: NACK requests; jitterbuffer_lost: packets the jitter buffer gave up on (never came,
   * or came back after its latency); late: arrived after their slot (retransmissions included) */
  std::string figures() const {
    return "nack_sent=" + std::to_string(rtx_requests) + " jitterbuffer_lost=" + std::to_string(jb_lost) +
           " late=" + std::to_string(jb_late);
  }
};

/* A fault on one link for `seconds`, measured at the viewer; *dropped: the packets the fault
 * dropped on their way to the viewer, or (dropped_host) on their way from that host to the server. */
template <typename Apply>
static Outcome fault_for(ThreeHosts &hosts, int seconds, Apply apply, int recover_timeout_ms = 20000,
                         long long *dropped_at_viewer = nullptr, const TestHost *dropped_host = nullptr) {
  LinkFault fault;
  const gint64 started = g_get_monotonic_time();
  fail_unless(apply(fault));
  const gint64 heal_at = started + seconds * G_USEC_PER_SEC;
  while (g_get_monotonic_time() < heal_at) {
    hosts.check_alive();
    g_usleep(std::min<gint64>(100 * 1000, std::max<gint64>(0, heal_at - g_get_monotonic_time())));
  }
  if (dropped_at_viewer)
    *dropped_at_viewer = dropped_host ? fault.server_packets(*dropped_host) : fault.host_packets(hosts.viewer);
  fault.clear();
  const gint64 healed = g_get_monotonic_time();
  const Outcome outcome = measure_recovery(hosts.viewer, started, healed, recover_timeout_ms);
  hosts.check_alive();
  return outcome;
}

/* The harness itself: a host process that aborts, or exits with an error, is seen as dead at
 * once (so ThreeHosts::check_alive and finish fail the fault test), and one told to quit ends
 * cleanly. */
GST_START_TEST(test_host_death_is_seen) {
  fail_unless(in_test_namespace());
  TestHost crashed("crash", 5), failed("fail", 6), quits("quits", 7);
  fail_unless(crashed.create() && failed.create() && quits.create());
  fail_unless(crashed.play("videotestsrc is-live=true ! fakesink name=sink"));
  fail_unless(quits.play("videotestsrc is-live=true ! fakesink name=sink"));
  fail_unless(crashed.wait_frames(5, 10000) && quits.wait_frames(5, 10000));
  fail_unless(crashed.death().empty() && quits.death().empty());
  /* SIGABRT, as abort() would: a SIGSEGV would also be reported by AddressSanitizer in faults/asan */
  fail_unless(kill(crashed.pid(), SIGABRT) == 0);
  fail_unless(wait_until([&] { return crashed.exited(); }, 5000));
  fail_unless(crashed.death().find("killed by signal 6") == 0, "%s", crashed.death().c_str());
  /* netns-pipeline exits with status 1 on a pipeline it cannot parse */
  fail_unless(failed.play("no-such-element-anywhere"));
  fail_unless(wait_until([&] { return failed.exited(); }, 5000));
  const std::string failure = failed.death();
  fail_unless_equals_string(failure.c_str(), "exited with status 1");
  fail_unless(quits.stop().empty());
  fail_unless(!crashed.stop().empty());
}
GST_END_TEST;

/* The viewer's link cut for 10 s (every packet, both ways): it reconnects on its own and frames
 * resume in the same pipeline. */
GST_START_TEST(test_viewer_partition_10s) {
  ThreeHosts hosts;
  hosts.play();
  const Outcome o = fault_for(hosts, 10, [&](LinkFault &f) { return f.partition(hosts.viewer); });
  print_outcome("viewer-partition-10s", o, hosts.criticals());
  fail_unless(o.recovered, "no steady frames within 20 s of the network coming back");
  fail_unless(o.reconnects >= 1, "the viewer never noticed the partition");
  fail_unless(o.freezes >= 1);
  hosts.finish();
}
GST_END_TEST;

/* The publisher's link cut for 10 s: the publisher recovers on its own (RTSP over TCP, the default),
 * the viewer (untouched link) gets frames again. */
static void publisher_partition(const char *transport, const char *name) {
  ThreeHosts hosts;
  hosts.play(transport);
  const gint64 since = g_get_monotonic_time();
  const Outcome o = fault_for(hosts, 10, [&](LinkFault &f) { return f.partition(hosts.publisher); }, 30000);
  const std::string extra = "publisher_reconnects=" +
                            std::to_string(hosts.publisher.status_count("reconnecting", since)) + " " +
                            hosts.criticals();
  print_outcome(name, o, extra);
  fail_unless(o.recovered, "no steady frames at the viewer within 30 s of the network coming back");
  fail_unless(o.freezes >= 1, "frames kept flowing through a publisher partition?");
  hosts.finish();
}

GST_START_TEST(test_publisher_partition_10s) { publisher_partition("rtsp", "publisher-partition-10s-rtsp"); }
GST_END_TEST;

GST_START_TEST(test_publisher_partition_10s_whip) { publisher_partition("whip", "publisher-partition-10s-whip"); }
GST_END_TEST;

/* MediaMTX SIGKILLed and restarted ten times (0.5 s down each time): publisher and viewer recover
 * every time, neither posts an error. */
GST_START_TEST(test_server_sigkill_x10) {
  ThreeHosts hosts;
  hosts.play();
  Outcome total;
  total.recovered = true;
  gint64 worst_ms = 0, sum_ms = 0;
  for (int cycle = 0; cycle < 10; ++cycle) {
    const gint64 killed = g_get_monotonic_time();
    hosts.server.kill_hard();
    g_usleep(500 * 1000);
    fail_unless(hosts.server.start(), "cycle %d: server did not start", cycle);
    const Outcome o = measure_recovery(hosts.viewer, killed, g_get_monotonic_time(), 20000);
    hosts.check_alive();
    fail_unless(o.recovered, "cycle %d: no steady frames within 20 s of the restart", cycle);
    worst_ms = std::max(worst_ms, o.recover_ms);
    sum_ms += o.recover_ms;
    total.frames_lost += o.frames_lost;
    total.freezes += o.freezes;
    total.longest_gap_ms = std::max(total.longest_gap_ms, o.longest_gap_ms);
    total.reconnects += o.reconnects;
  }
  total.recover_ms = sum_ms / 10;
  print_outcome("server-sigkill-x10", total, "worst_recover_ms=" + std::to_string(worst_ms) + " " + hosts.criticals());
  fail_unless(total.freezes >= 10);
  hosts.finish();
}
GST_END_TEST;

/* 5 % random loss each way on the viewer's link for 10 s: NACK/RTX keep the picture flowing,
 * no reconnection. */
GST_START_TEST(test_loss_5_percent) {
  ThreeHosts hosts;
  hosts.play();
  const gint64 started = g_get_monotonic_time();
  long long dropped = 0;
  const Outcome o = fault_for(hosts, 10, [&](LinkFault &f) { return f.loss(hosts.viewer, 0.05); }, 20000, &dropped);
  const int during = frames_between(hosts.viewer, started, started + 10 * G_USEC_PER_SEC);
  ViewerStats stats;
  fail_unless(stats.read(hosts.viewer), "no stats from the viewer");
  print_outcome("loss-5-percent", o,
                "frames_in_10s=" + std::to_string(during) + " dropped_to_viewer=" + std::to_string(dropped) + " " +
                    stats.figures() + " " + hosts.criticals());
  fail_unless(during >= 8 * kFps, "only %d frames in 10 s under 5 %% loss", during);
  /* NACK/RTX at work: the viewer asked for the lost packets and a good part of them came back in
   * time (without retransmissions the jitter buffer would lose about as many as were dropped) */
  fail_unless(dropped >= 10, "the loss rule dropped only %lld packets", dropped);
  fail_unless(stats.rtx_requests > 0, "no NACK sent: %s", stats.figures().c_str());
  fail_unless(static_cast<long long>(stats.jb_lost) * 4 < dropped * 3, "retransmissions did not fill the gaps: %s",
              stats.figures().c_str());
  fail_unless_equals_int(o.reconnects, 0);
  fail_unless(o.recovered);
  hosts.finish();
}
GST_END_TEST;

/* 5 % random loss each way on a WHIP publisher's link for 10 s: MediaMTX asks for the lost packets
 * (NACK) and holds what follows a gap for up to 64 packets; mediamtxsink sends them again, so the
 * viewer (its own link clean) hardly sees the loss. With `extra` "retransmission=false" (checked by
 * hand) the check on freezes fails. */
static void publisher_loss_whip(const std::string &extra) {
  ThreeHosts hosts;
  hosts.play("whip", kViewerSettings, extra);
  const gint64 started = g_get_monotonic_time();
  long long dropped = 0;
  const Outcome o =
      fault_for(hosts, 10, [&](LinkFault &f) { return f.loss(hosts.publisher, 0.05); }, 20000, &dropped, &hosts.publisher);
  const int during = frames_between(hosts.viewer, started, started + 10 * G_USEC_PER_SEC);
  ViewerStats stats;
  fail_unless(stats.read(hosts.viewer), "no stats from the viewer");
  print_outcome("publisher-loss-5-percent-whip", o,
                "frames_in_10s=" + std::to_string(during) + " dropped_from_publisher=" + std::to_string(dropped) + " " +
                    stats.figures() + " " + hosts.criticals());
  fail_unless(dropped >= 20, "the loss rule dropped only %lld packets", dropped);
  fail_unless(during >= 8 * kFps, "only %d frames in 10 s under 5 %% loss", during);
  /* MediaMTX re-packetizes for each reader: a packet it never got is a broken picture it does not
   * pass on, until the next keyframe (seen: 9 freezes, a 1365 ms gap with retransmission=false) */
  fail_unless(o.freezes <= 2 && o.longest_gap_ms < 1000, "the publisher's losses froze the viewer: %d freezes, %lld ms",
              o.freezes, static_cast<long long>(o.longest_gap_ms));
  fail_unless_equals_int(o.reconnects, 0);
  fail_unless(o.recovered);
  hosts.finish();
}

GST_START_TEST(test_publisher_loss_5_percent_whip) { publisher_loss_whip(""); }
GST_END_TEST;

/* 20 % random loss each way on the viewer's link for 10 s: whatever the picture does meanwhile, it
 * is back within 20 s of the loss ending, without an error. */
GST_START_TEST(test_loss_20_percent) {
  ThreeHosts hosts;
  hosts.play();
  const gint64 started = g_get_monotonic_time();
  long long dropped = 0;
  const Outcome o = fault_for(hosts, 10, [&](LinkFault &f) { return f.loss(hosts.viewer, 0.20); }, 20000, &dropped);
  const int during = frames_between(hosts.viewer, started, started + 10 * G_USEC_PER_SEC);
  ViewerStats stats;
  stats.read(hosts.viewer);
  print_outcome("loss-20-percent", o,
                "frames_in_10s=" + std::to_string(during) + " dropped_to_viewer=" + std::to_string(dropped) + " " +
                    stats.figures() + " " + hosts.criticals());
  fail_unless(o.recovered, "no steady frames within 20 s of the loss ending");
  hosts.finish();
}
GST_END_TEST;

/* 100 ms +/- 30 ms (uniform, per packet, reordering allowed like netem) added to every packet in
 * each direction of the viewer's link for 10 s, by nfq-delay: the picture keeps flowing. */
GST_START_TEST(test_delay_100ms_jitter_30ms) {
  if (!PacketDelayer::available()) {
    g_print("FAULT name=delay-100ms-jitter-30ms skipped: nfq-delay not built (no libnetfilter_queue)\n");
    return;
  }
  ThreeHosts hosts;
  hosts.play();
  PacketDelayer delayer;
  fail_unless(delayer.start(7, 100, 30));
  const gint64 started = g_get_monotonic_time();
  const Outcome o = fault_for(hosts, 10, [&](LinkFault &f) { return f.queue(hosts.viewer, 7); });
  fail_unless(delayer.running(), "nfq-delay died");
  const std::string figures = delayer.stop();
  const int during = frames_between(hosts.viewer, started, started + 10 * G_USEC_PER_SEC);
  ViewerStats stats;
  stats.read(hosts.viewer);
  print_outcome("delay-100ms-jitter-30ms", o,
                "frames_in_10s=" + std::to_string(during) + " " + stats.figures() + " " + hosts.criticals() + " (" +
                    figures + ")");
  long long packets = 0;
  double mean_ms = 0;
  fail_unless(sscanf(figures.c_str(), "delayed packets=%lld min_ms=%*f mean_ms=%lf", &packets, &mean_ms) == 2,
              "no figures from nfq-delay: '%s'", figures.c_str());
  /* the fault really applied: the stream's packets went through the delayer */
  fail_unless(packets >= 200, "only %lld packets delayed", packets);
  fail_unless(mean_ms >= 90 && mean_ms <= 110, "mean delay %.1f ms", mean_ms);
  fail_unless(o.recovered);
  fail_unless_equals_int(o.reconnects, 0);
  fail_unless(during >= 7 * kFps, "only %d frames in 10 s under delay", during);
  hosts.finish();
}
GST_END_TEST;

/* UDP dropped both ways between the viewer and the server, MediaMTX listening for ICE over TCP: the
 * viewer connects over ICE-TCP and frames flow. The server counts the viewer's packets to its TCP
 * ICE port, so the test fails if the media took another way. */
GST_START_TEST(test_udp_blocked_ice_tcp) {
  MediamtxOptions options;
  options.ice_tcp = true;
  ThreeHosts hosts(options);
  LinkFault fault;
  fail_unless(fault.block_udp(hosts.viewer));
  /* and the viewer takes no incoming TCP connection (as behind NAT), or MediaMTX's agent could
   * dial libnice's passive TCP candidate instead */
  fail_unless(fault.host_rule(hosts.viewer, "-p tcp --syn -j DROP"));
  const std::string view_if = hosts.viewer.server_interface();
  fail_unless(fault.server_rule("filter", "INPUT", "-i " + view_if + " -p tcp --dport " +
                                                       std::to_string(hosts.server.ice_tcp_port()) +
                                                       " -m comment --comment ice-tcp"));
  fail_unless(fault.server_rule("filter", "INPUT", "-i " + view_if + " -p udp -m comment --comment udp-from-viewer"));
  const gint64 started = g_get_monotonic_time();
  /* the default 10 s media timeout: libnice nominates the TCP pair only once its UDP checks have
   * timed out, which takes longer than the 2 s of the other tests */
  hosts.play("rtsp", "audio=false retry-delay=300 max-retry-delay=1000");
  const gint64 first = hosts.viewer.frames().front();
  const bool flowing = hosts.viewer.wait_frames(5 * kFps, 15000);
  hosts.check_alive();
  fail_unless(flowing, "frames stopped over ICE-TCP (%d)", hosts.viewer.frame_count());
  const long long tcp_packets = server_rule_packets("filter", "ice-tcp");
  const long long udp_packets = server_rule_packets("filter", "udp-from-viewer");
  Outcome o = measure_recovery(hosts.viewer, started, started, 1000);
  o.recover_ms = (first - started) / 1000; /* here: time to the first frame */
  ViewerStats stats;
  fail_unless(stats.read(hosts.viewer), "no stats from the viewer");
  print_outcome("udp-blocked-ice-tcp", o,
                "ice_tcp_packets=" + std::to_string(tcp_packets) + " udp_dropped=" + std::to_string(udp_packets) +
                    " pair='" + stats.local_candidate + " -> " + stats.remote_candidate + "' " + hosts.criticals());
  fail_unless(tcp_packets >= 100, "only %lld packets to the TCP ICE port: media went another way", tcp_packets);
  fail_unless(stats.local_candidate.find(" tcp ") != std::string::npos &&
                  stats.remote_candidate.find(":" + std::to_string(hosts.server.ice_tcp_port()) + " tcp ") !=
                      std::string::npos,
              "selected pair %s -> %s", stats.local_candidate.c_str(), stats.remote_candidate.c_str());
  hosts.finish();
}
GST_END_TEST;

/* The soak runs both pipelines in this process, against MediaMTX in the netns-run.sh namespace. */
struct Running {
  GstElement *pipeline;
  BusWatcher *bus;
  explicit Running(const std::string &description) {
    pipeline = parse_pipeline(description);
    fail_unless(pipeline != nullptr);
    bus = new BusWatcher(pipeline);
    fail_unless(set_state_and_wait(pipeline, GST_STATE_PLAYING));
  }
  ~Running() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    delete bus;
    gst_object_unref(pipeline);
  }
};

static std::string viewer(const MediamtxServer &server) {
  return std::string("whepsrc name=src ") + kViewerSettings + " location=" + server.whep_url("cam") +
         " ! fakesink name=sink sync=false async=false";
}

static std::string publisher(const MediamtxServer &server) {
  /* the API granted as docs/deploy.md says (MediaMTX grants it to localhost): keyframe-on-join is on */
  return std::string(kCamera) + " ! mediamtxsink " + kPublisherSettings + " api-location=" + server.api_location() +
         " location=" + server.rtsp_url("cam");
}

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
  Running pub(publisher(server));
  fail_unless(server.wait_path_ready("cam", 10000));
  GstElement *view = parse_pipeline(viewer(server));
  BufferCounter frames;
  frames.attach(view, "sink");
  GstElement *pub2 = parse_pipeline(std::string(kCamera) + " ! mediamtxsink api-location=" + server.api_location() +
                                    " location=" + server.rtsp_url("soak"));
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
  tcase_add_test(tc, test_host_death_is_seen);
  tcase_add_test(tc, test_viewer_partition_10s);
  tcase_add_test(tc, test_publisher_partition_10s);
  tcase_add_test(tc, test_publisher_partition_10s_whip);
  tcase_add_test(tc, test_server_sigkill_x10);
  tcase_add_test(tc, test_loss_5_percent);
  tcase_add_test(tc, test_publisher_loss_5_percent_whip);
  tcase_add_test(tc, test_loss_20_percent);
  tcase_add_test(tc, test_delay_100ms_jitter_30ms);
  tcase_add_test(tc, test_udp_blocked_ice_tcp);
  tcase_add_test(tc, test_soak_100_cycles);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(network_faults);
