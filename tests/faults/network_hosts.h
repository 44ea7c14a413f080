/* The three-host topology of the network fault suite (tests/faults/test_network_faults.cpp).
 *
 *   publisher host  eth0 10.78.1.2 ---- to-pub  10.78.1.1 \
 *                                                          server host: the test process and
 *   viewer host     eth0 10.78.2.2 ---- to-view 10.78.2.1 /  MediaMTX (the netns-run.sh namespace)
 *
 * Each client host is a netns-pipeline process (tests/faults/netns_pipeline.cpp) in its own network
 * namespace, joined to the server host by a veth pair; it reaches only the server (no forwarding,
 * no default route). Faults are iptables rules on one link, applied where packets arrive (the
 * server's INPUT from that link and the client's INPUT), so a sender never sees an error the way
 * it would for a packet dropped on its own OUTPUT, and the other link is untouched.
 *
 * Cleanup: a client host dies with the test process (PR_SET_PDEATHSIG), and its namespace, veth
 * pair and firewall rules with it; rules in the server namespace are removed by their LinkFault
 * and flushed by reset_server_firewall() at the start of every test.
 *
 * A host process that dies during a test (a crash, an abort, any exit before the test told it to
 * quit, or a non-zero exit status) is a failure: each TestHost reaps its process as soon as it
 * ends and records how (death()); the tests check it during their waits and at the end. */
#pragma once

#include <gst/gst.h>
#include <sys/types.h>

#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace faults {

/* Frame rate of the test camera (videotestsrc): the basis of "frames lost". */
constexpr int kFps = 30;

/* One client host running a pipeline in its own network namespace. */
class TestHost {
public:
  /* `name`: the server-side interface is "to-<name>" (<= 12 characters); `subnet`: 10.78.<subnet>.0/24 */
  TestHost(std::string name, int subnet);
  ~TestHost();
  TestHost(const TestHost &) = delete;
  TestHost &operator=(const TestHost &) = delete;

  /* Makes the namespace and its link to the server host. False (with the reason printed) when
   * the host could not be set up. */
  bool create();
  /* Plays `pipeline` (gst-launch syntax; frames are counted at the element named "sink"). */
  bool play(const std::string &pipeline);
  /* Stops the pipeline ("quit", then SIGKILL after kQuitTimeoutMs) and removes the namespace.
   * Returns how the process ended when that was not a clean exit after "quit" (see death()),
   * or that it had to be killed; empty when it ended cleanly (or was never started). */
  std::string stop();
  /* Empty while the process runs, or when it exited with status 0 after "quit"; otherwise what
   * happened: "killed by signal 11 (Segmentation fault)", "exited with status 1", "exited on
   * its own with status 0 before the test told it to quit". */
  std::string death() const;
  /* the process has ended (however) */
  bool exited() const;

  std::string address() const { return "10.78." + std::to_string(subnet_) + ".2"; }
  std::string server_address() const { return "10.78." + std::to_string(subnet_) + ".1"; }
  std::string server_interface() const { return "to-" + name_; }
  const std::string &name() const { return name_; }
  pid_t pid() const { return pid_; }
  /* Runs a shell command in the host's network namespace; true on exit status 0. */
  bool run_inside(const std::string &command) const;

  /* monotonic times (us) of every frame at the host's "sink" element */
  std::vector<gint64> frames() const;
  int frame_count() const;
  /* frames rendered by the host's "display" fakesink: {monotonic us, time code us or -1 when
   * unreadable} (netns_pipeline.cpp "shown" lines; benchmarks) */
  std::vector<std::pair<gint64, gint64>> shown() const;
  /* false after timeout_ms, or at once when the process has ended */
  bool wait_frames(int count, int timeout_ms) const;
  /* gst-mediamtx-status messages with this state, received at or after `since` (monotonic us) */
  int status_count(const char *state, gint64 since = 0) const;
  /* gst-mediamtx-status messages whose "<state> <attempt> <reason>" contains `part`, since `since` */
  int status_containing(const std::string &part, gint64 since = 0) const;
  /* the newest such message's "<state> <attempt> <reason>" (empty: none) */
  std::string last_status_containing(const std::string &part, gint64 since = 0) const;
  std::vector<std::string> errors() const;
  /* The host's statistics (see netns_pipeline.cpp: the "src" element's stats plus jb-* fields of
   * its jitter buffers), or nullptr when it does not answer within 3 s. Free with
   * gst_structure_free. */
  GstStructure *stats();
  /* GLib criticals and warnings the host's process logged */
  std::vector<std::string> criticals() const;

private:
  void read_lines();
  std::string death_locked() const; /* lock_ held */

  std::string name_;
  int subnet_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1, stdout_fd_ = -1;
  std::thread reader_;
  mutable std::mutex lock_;
  bool netns_ready_ = false;
  int stats_answers_ = 0;
  std::string last_stats_;
  std::vector<gint64> frames_;
  std::vector<std::pair<gint64, gint64>> shown_;
  std::vector<std::pair<gint64, std::string>> statuses_;
  std::vector<std::string> errors_, criticals_;
  /* the process: reaped by the reader thread once its output ends (under lock_) */
  bool quit_sent_ = false;
  bool exited_ = false;
  bool killed_by_test_ = false;
  int wait_status_ = 0;
};

/* Firewall rules of one fault; removed when it goes out of scope (or by clear()). */
class LinkFault {
public:
  LinkFault() = default;
  ~LinkFault() { clear(); }
  LinkFault(const LinkFault &) = delete;
  LinkFault &operator=(const LinkFault &) = delete;

  /* every packet on the host's link dropped, both ways */
  bool partition(const TestHost &host);
  /* each packet on the link dropped with this probability, each way */
  bool loss(const TestHost &host, double probability);
  /* UDP on the link dropped, both ways */
  bool block_udp(const TestHost &host);
  /* every packet on the link, both ways, sent to NFQUEUE `queue` in the server namespace (mangle
   * PREROUTING from the link, POSTROUTING to it) */
  bool queue(const TestHost &host, int queue);
  /* Inserts `spec` at the top of `chain` of `table` in the server namespace, with iptables and
   * ip6tables (counting rules see packets before any DROP). */
  bool server_rule(const std::string &table, const std::string &chain, const std::string &spec);
  /* Appends `spec` to the host's filter INPUT chain (iptables and ip6tables). */
  bool host_rule(const TestHost &host, const std::string &spec);
  /* Packets the host's own INPUT rules matched so far (the fault's rules on its side: its
   * dropped packets for loss and partitions). */
  long long host_packets(const TestHost &host) const;
  /* packets the server-side rules of `host`'s link (its "to-<name>" interface) matched so far:
   * what they dropped on their way from that host */
  long long server_packets(const TestHost &host) const;
  /* Deletes every rule added so far. */
  void clear();

private:
  bool add(pid_t host, const std::string &table, const std::string &chain, const std::string &spec,
           bool first = false);
  struct Applied {
    pid_t host; /* -1: the server namespace */
    std::string table, chain, spec;
  };
  std::vector<Applied> applied_;
};

/* Packets counted by the server namespace's rules (IPv4 and IPv6) in `table` carrying
 * `-m comment --comment <comment>`; -1 when iptables-save fails. */
long long server_rule_packets(const std::string &table, const std::string &comment);

/* Flushes the server namespace's filter and mangle tables (IPv4 and IPv6). The netns-run.sh
 * namespace is private to this test program, so nothing else owns rules there. */
void reset_server_firewall();

/* tests/faults/nfq_delay.cpp run in the server namespace on one NFQUEUE queue. */
class PacketDelayer {
public:
  PacketDelayer() = default;
  ~PacketDelayer() { stop(); }
  PacketDelayer(const PacketDelayer &) = delete;
  PacketDelayer &operator=(const PacketDelayer &) = delete;
  static bool available();
  /* reorder false: packets leave in arrival order (nfq-delay --no-reorder) */
  bool start(int queue, int delay_ms, int jitter_ms, bool reorder = true);
  /* Releases every held packet and ends the delayer; returns its figures line ("delayed
   * packets=..."), empty if it failed. Remove the NFQUEUE rules first: without the delayer their
   * packets are dropped. */
  std::string stop();
  bool running() const;

private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1, stdout_fd_ = -1;
};

/* Outcome of one fault, read from the viewer's frame times. */
struct Outcome {
  bool recovered = false;
  gint64 recover_ms = -1;  /* heal -> first frame of a steady second (kFps frames, no gap > 500 ms) */
  int frames_lost = 0;     /* kFps x (fault start -> recovery) - frames received in that window */
  int freezes = 0;         /* gaps > 500 ms between frames, fault start -> end of the steady second */
  gint64 longest_gap_ms = 0;
  int reconnects = 0;      /* viewer "reconnecting" status messages since the fault start */
};

/* Waits up to timeout_ms after `healed` for a steady second of frames at `viewer` and measures
 * the fault that began at `started` (monotonic us). Returns early (not recovered) when the
 * viewer's process ended. */
Outcome measure_recovery(const TestHost &viewer, gint64 started, gint64 healed, int timeout_ms);

/* Prints "FAULT name=<name> recovered=yes|no recover_ms=... frames_lost=... freezes=...
 * longest_gap_ms=... reconnects=... <extra>" on stdout. */
void print_outcome(const char *name, const Outcome &outcome, const std::string &extra = "");

}  // namespace faults
