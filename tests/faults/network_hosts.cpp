#include "network_hosts.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "pipeline_helpers.h"

#ifndef NETNS_PIPELINE_PATH
#error "NETNS_PIPELINE_PATH (the netns-pipeline program) must be defined by the build"
#endif

namespace faults {

namespace {

/* how long a host gets to stop its pipeline and exit after "quit" (generous: sanitizer builds) */
constexpr int kQuitTimeoutMs = 15000;

bool run(const std::string &command) {
  const int status = system(command.c_str());
  if (status != 0) {
    g_printerr("network_hosts: '%s' failed (status %d)\n", command.c_str(), status);
    return false;
  }
  return true;
}

/* Waits up to timeout_ms for the child to exit; SIGKILL (and reap) after that. */
void reap(pid_t &pid, int timeout_ms) {
  if (pid <= 0)
    return;
  const gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000LL;
  int status;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (g_get_monotonic_time() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    g_usleep(10000);
  }
  pid = -1;
}

bool spawn(const std::vector<std::string> &args, pid_t *pid, int *stdin_fd, int *stdout_fd) {
  /* a write to a host that died must fail, not end the test program */
  signal(SIGPIPE, SIG_IGN);
  std::vector<char *> argv;
  for (const auto &a : args)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  GError *err = nullptr;
  GPid child = 0;
  const auto flags = static_cast<GSpawnFlags>(G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH);
  if (!g_spawn_async_with_pipes(nullptr, argv.data(), nullptr, flags, nullptr, nullptr, &child, stdin_fd, stdout_fd,
                                nullptr, &err)) {
    g_printerr("cannot start %s: %s\n", args[0].c_str(), err->message);
    g_clear_error(&err);
    return false;
  }
  *pid = child;
  return true;
}

}  // namespace

TestHost::TestHost(std::string name, int subnet) : name_(std::move(name)), subnet_(subnet) {}

TestHost::~TestHost() { stop(); }

bool TestHost::create() {
  /* NETNS_PIPELINE_WRAPPER: a command the host program runs under (e.g. "valgrind
   * --error-exitcode=99 ..."), for the hosts named in NETNS_PIPELINE_WRAP (comma-separated;
   * default: every host). A tool's non-zero exit status then fails the test like any death. */
  std::vector<std::string> args;
  const char *wrapper = g_getenv("NETNS_PIPELINE_WRAPPER");
  const char *wrapped = g_getenv("NETNS_PIPELINE_WRAP");
  g_auto(GStrv) names = g_strsplit(wrapped ? wrapped : "", ",", -1);
  if (wrapper && *wrapper && (!wrapped || !*wrapped || g_strv_contains(names, name_.c_str()))) {
    g_auto(GStrv) words = nullptr;
    if (!g_shell_parse_argv(wrapper, nullptr, &words, nullptr)) {
      g_printerr("host %s: cannot parse NETNS_PIPELINE_WRAPPER\n", name_.c_str());
      return false;
    }
    for (char **w = words; *w; ++w)
      args.emplace_back(*w);
  }
  args.emplace_back(NETNS_PIPELINE_PATH);
  if (!spawn(args, &pid_, &stdin_fd_, &stdout_fd_))
    return false;
  reader_ = std::thread([this] { read_lines(); });
  if (!testbed::wait_until([this] { std::lock_guard<std::mutex> g(lock_); return netns_ready_; }, 5000)) {
    g_printerr("host %s: no network namespace\n", name_.c_str());
    return false;
  }
  const std::string server_if = server_interface();
  const std::string pid = std::to_string(pid_);
  /* a link left by a host of the previous test that is still being torn down */
  (void)!system(("ip link del " + server_if + " 2>/dev/null").c_str());
  if (!run("ip link add " + server_if + " type veth peer name eth0 netns " + pid) ||
      !run("ip addr add " + server_address() + "/24 dev " + server_if) || !run("ip link set " + server_if + " up") ||
      !run_inside("ip link set lo up && ip addr add " + address() + "/24 dev eth0 && ip link set eth0 up"))
    return false;
  return true;
}

bool TestHost::play(const std::string &pipeline) {
  const std::string line = "play " + pipeline + "\n";
  return stdin_fd_ >= 0 && write(stdin_fd_, line.data(), line.size()) == static_cast<ssize_t>(line.size());
}

std::string TestHost::stop() {
  if (stdin_fd_ >= 0) {
    {
      std::lock_guard<std::mutex> guard(lock_);
      if (!exited_)
        quit_sent_ = true;
    }
    if (write(stdin_fd_, "quit\n", 5) != 5)
      g_printerr("host %s: already gone\n", name_.c_str());
    close(stdin_fd_);
    stdin_fd_ = -1;
  }
  if (pid_ > 0 && !testbed::wait_until([this] { return exited(); }, kQuitTimeoutMs)) {
    g_printerr("host %s: still running %d ms after quit: killing it\n", name_.c_str(), kQuitTimeoutMs);
    {
      std::lock_guard<std::mutex> guard(lock_);
      killed_by_test_ = true;
    }
    kill(pid_, SIGKILL);
  }
  if (reader_.joinable())
    reader_.join(); /* it reaps the process */
  pid_ = -1;
  if (stdout_fd_ >= 0) {
    close(stdout_fd_);
    stdout_fd_ = -1;
  }
  /* normally gone with the namespace */
  (void)!system(("ip link del " + server_interface() + " 2>/dev/null").c_str());
  std::lock_guard<std::mutex> guard(lock_);
  if (killed_by_test_)
    return "did not exit within " + std::to_string(kQuitTimeoutMs) + " ms of quit (killed)";
  return death_locked();
}

bool TestHost::exited() const {
  std::lock_guard<std::mutex> guard(lock_);
  return exited_;
}

std::string TestHost::death() const {
  std::lock_guard<std::mutex> guard(lock_);
  return death_locked();
}

std::string TestHost::death_locked() const {
  if (!exited_ || killed_by_test_)
    return "";
  if (wait_status_ == -1)
    return "ended, exit status unknown";
  if (WIFSIGNALED(wait_status_))
    return "killed by signal " + std::to_string(WTERMSIG(wait_status_)) + " (" + strsignal(WTERMSIG(wait_status_)) +
           ")" + (WCOREDUMP(wait_status_) ? ", core dumped" : "");
  if (WIFEXITED(wait_status_) && WEXITSTATUS(wait_status_) != 0)
    return "exited with status " + std::to_string(WEXITSTATUS(wait_status_));
  if (!quit_sent_)
    return "exited on its own with status 0 before the test told it to quit";
  return "";
}

bool TestHost::run_inside(const std::string &command) const {
  g_autofree char *quoted = g_shell_quote(command.c_str());
  return run("nsenter -t " + std::to_string(pid_) + " -n sh -c " + quoted);
}

/* the reader thread: one line at a time until the host exits */
void TestHost::read_lines() {
  FILE *in = fdopen(dup(stdout_fd_), "r");
  if (!in)
    return;
  char *line = nullptr;
  size_t size = 0;
  ssize_t n;
  while ((n = getline(&line, &size, in)) > 0) {
    std::string text(line, static_cast<size_t>(n));
    if (!text.empty() && text.back() == '\n')
      text.pop_back();
    const gint64 now = g_get_monotonic_time();
    std::lock_guard<std::mutex> guard(lock_);
    if (text.compare(0, 6, "frame ") == 0) {
      frames_.push_back(g_ascii_strtoll(text.c_str() + 6, nullptr, 10));
    } else if (text.compare(0, 6, "shown ") == 0) {
      char *rest = nullptr;
      const gint64 at = g_ascii_strtoll(text.c_str() + 6, &rest, 10);
      shown_.emplace_back(at, g_ascii_strtoll(rest, nullptr, 10));
    } else if (text.compare(0, 7, "status ") == 0) {
      statuses_.emplace_back(now, text.substr(7));
    } else if (text.compare(0, 6, "error ") == 0) {
      errors_.push_back(text.substr(6));
      g_printerr("host %s: error %s\n", name_.c_str(), text.c_str() + 6);
    } else if (text.compare(0, 9, "critical ") == 0) {
      criticals_.push_back(text.substr(9));
    } else if (text.compare(0, 6, "stats ") == 0) {
      last_stats_ = text.substr(6);
      ++stats_answers_;
    } else if (text.compare(0, 6, "netns ") == 0) {
      netns_ready_ = true;
    }
  }
  free(line);
  fclose(in);
  /* the output ends when the process does: reap it now, so a death is seen during the test */
  int status = 0;
  pid_t reaped;
  do
    reaped = waitpid(pid_, &status, 0);
  while (reaped < 0 && errno == EINTR);
  std::lock_guard<std::mutex> guard(lock_);
  exited_ = true;
  wait_status_ = reaped == pid_ ? status : -1;
  if (!quit_sent_)
    g_printerr("host %s: process ended during the test\n", name_.c_str());
}

std::vector<gint64> TestHost::frames() const {
  std::lock_guard<std::mutex> guard(lock_);
  return frames_;
}

std::vector<std::pair<gint64, gint64>> TestHost::shown() const {
  std::lock_guard<std::mutex> guard(lock_);
  return shown_;
}

int TestHost::frame_count() const {
  std::lock_guard<std::mutex> guard(lock_);
  return static_cast<int>(frames_.size());
}

bool TestHost::wait_frames(int count, int timeout_ms) const {
  testbed::wait_until([&] { return frame_count() >= count || exited(); }, timeout_ms);
  return frame_count() >= count;
}

int TestHost::status_count(const char *state, gint64 since) const {
  std::lock_guard<std::mutex> guard(lock_);
  const std::string prefix = std::string(state) + " ";
  int n = 0;
  for (const auto &s : statuses_)
    if (s.first >= since && s.second.compare(0, prefix.size(), prefix) == 0)
      ++n;
  return n;
}

int TestHost::status_containing(const std::string &part, gint64 since) const {
  std::lock_guard<std::mutex> guard(lock_);
  int n = 0;
  for (const auto &s : statuses_)
    if (s.first >= since && s.second.find(part) != std::string::npos)
      ++n;
  return n;
}

std::string TestHost::last_status_containing(const std::string &part, gint64 since) const {
  std::lock_guard<std::mutex> guard(lock_);
  for (auto s = statuses_.rbegin(); s != statuses_.rend(); ++s)
    if (s->first >= since && s->second.find(part) != std::string::npos)
      return s->second;
  return "";
}

std::vector<std::string> TestHost::errors() const {
  std::lock_guard<std::mutex> guard(lock_);
  return errors_;
}

GstStructure *TestHost::stats() {
  int asked;
  {
    std::lock_guard<std::mutex> guard(lock_);
    asked = stats_answers_;
  }
  if (stdin_fd_ < 0 || write(stdin_fd_, "stats\n", 6) != 6)
    return nullptr;
  if (!testbed::wait_until([&] { std::lock_guard<std::mutex> g(lock_); return stats_answers_ > asked; }, 3000))
    return nullptr;
  std::lock_guard<std::mutex> guard(lock_);
  return gst_structure_from_string(last_stats_.c_str(), nullptr);
}

std::vector<std::string> TestHost::criticals() const {
  std::lock_guard<std::mutex> guard(lock_);
  return criticals_;
}

bool LinkFault::add(pid_t host, const std::string &table, const std::string &chain, const std::string &spec,
                    bool first) {
  for (const char *tool : {"iptables", "ip6tables"}) {
    const std::string rule = std::string(tool) + " -w -t " + table + (first ? " -I " : " -A ") + chain +
                             (first ? " 1 " : " ") + spec;
    const std::string command =
        host < 0 ? rule : "nsenter -t " + std::to_string(host) + " -n " + rule;
    if (!run(command))
      return false;
  }
  applied_.push_back(Applied{host, table, chain, spec});
  return true;
}

bool LinkFault::server_rule(const std::string &table, const std::string &chain, const std::string &spec) {
  return add(-1, table, chain, spec, true);
}

bool LinkFault::host_rule(const TestHost &host, const std::string &spec) {
  return add(host.pid(), "filter", "INPUT", spec);
}

namespace {
/* The packets the INPUT rules of a namespace matched (`prefix`: "" for this one, "nsenter ... "
 * for a host's), IPv4 and IPv6; only rules whose listing has `word` when it is not empty; -1 when
 * iptables could not be read. */
long long input_rule_packets(const std::string &prefix, const std::string &word) {
  long long total = 0;
  for (const char *tool : {"iptables", "ip6tables"}) {
    FILE *out = popen((prefix + tool + " -w -L INPUT -v -x -n").c_str(), "r");
    if (!out)
      return -1;
    char line[1024];
    while (fgets(line, sizeof line, out)) {
      long long packets = 0;
      if (sscanf(line, " %lld", &packets) == 1 && (word.empty() || std::string(line).find(word) != std::string::npos))
        total += packets;
    }
    if (pclose(out) != 0)
      return -1;
  }
  return total;
}
}  // namespace

long long LinkFault::host_packets(const TestHost &host) const {
  return input_rule_packets("nsenter -t " + std::to_string(host.pid()) + " -n ", "");
}

long long LinkFault::server_packets(const TestHost &host) const {
  return input_rule_packets("", " " + host.server_interface() + " ");
}

bool LinkFault::partition(const TestHost &host) {
  return add(-1, "filter", "INPUT", "-i " + host.server_interface() + " -j DROP") &&
         add(host.pid(), "filter", "INPUT", "-i eth0 -j DROP");
}

bool LinkFault::loss(const TestHost &host, double probability) {
  g_autofree char *p = g_strdup_printf("%.4f", probability);
  const std::string random = std::string("-m statistic --mode random --probability ") + p + " -j DROP";
  return add(-1, "filter", "INPUT", "-i " + host.server_interface() + " " + random) &&
         add(host.pid(), "filter", "INPUT", "-i eth0 " + random);
}

bool LinkFault::block_udp(const TestHost &host) {
  return add(-1, "filter", "INPUT", "-i " + host.server_interface() + " -p udp -j DROP") &&
         add(host.pid(), "filter", "INPUT", "-i eth0 -p udp -j DROP");
}

bool LinkFault::queue(const TestHost &host, int queue) {
  const std::string target = " -j NFQUEUE --queue-num " + std::to_string(queue);
  return add(-1, "mangle", "PREROUTING", "-i " + host.server_interface() + target) &&
         add(-1, "mangle", "POSTROUTING", "-o " + host.server_interface() + target);
}

void LinkFault::clear() {
  /* newest first; a host that already exited took its rules with it */
  for (auto it = applied_.rbegin(); it != applied_.rend(); ++it) {
    if (it->host >= 0 && kill(it->host, 0) != 0)
      continue;
    for (const char *tool : {"iptables", "ip6tables"}) {
      const std::string rule = std::string(tool) + " -w -t " + it->table + " -D " + it->chain + " " + it->spec;
      run(it->host < 0 ? rule : "nsenter -t " + std::to_string(it->host) + " -n " + rule);
    }
  }
  applied_.clear();
}

long long server_rule_packets(const std::string &table, const std::string &comment) {
  long long total = 0;
  for (const char *tool : {"iptables-save", "ip6tables-save"}) {
    const std::string command = std::string(tool) + " -c -t " + table;
    FILE *out = popen(command.c_str(), "r");
    if (!out)
      return -1;
    char line[1024];
    while (fgets(line, sizeof line, out)) {
      long long packets = 0, bytes = 0;
      if (strstr(line, ("--comment " + comment).c_str()) && sscanf(line, "[%lld:%lld]", &packets, &bytes) == 2)
        total += packets;
    }
    if (pclose(out) != 0)
      return -1;
  }
  return total;
}

void reset_server_firewall() {
  for (const char *tool : {"iptables", "ip6tables"})
    for (const char *table : {"filter", "mangle"})
      run(std::string(tool) + " -w -t " + table + " -F");
}

bool PacketDelayer::available() {
#ifdef NFQ_DELAY_PATH
  return g_file_test(NFQ_DELAY_PATH, G_FILE_TEST_IS_EXECUTABLE);
#else
  return false;
#endif
}

bool PacketDelayer::start(int queue, int delay_ms, int jitter_ms, bool reorder) {
#ifdef NFQ_DELAY_PATH
  std::vector<std::string> args = {NFQ_DELAY_PATH, "--queue", std::to_string(queue), "--delay",
                                   std::to_string(delay_ms), "--jitter", std::to_string(jitter_ms)};
  if (!reorder)
    args.push_back("--no-reorder");
  if (!spawn(args, &pid_, &stdin_fd_, &stdout_fd_))
    return false;
  char line[16] = {0};
  const ssize_t n = read(stdout_fd_, line, sizeof line - 1); /* "ready\n" */
  if (n <= 0 || strncmp(line, "ready", 5) != 0) {
    g_printerr("nfq-delay did not start\n");
    stop();
    return false;
  }
  return true;
#else
  (void)queue;
  (void)delay_ms;
  (void)jitter_ms;
  (void)reorder;
  return false;
#endif
}

bool PacketDelayer::running() const {
  int status;
  return pid_ > 0 && waitpid(pid_, &status, WNOHANG) == 0;
}

std::string PacketDelayer::stop() {
  if (pid_ <= 0)
    return {};
  close(stdin_fd_); /* end of stdin: release everything, print the figures */
  stdin_fd_ = -1;
  std::string figures;
  char buffer[512];
  ssize_t n;
  while ((n = read(stdout_fd_, buffer, sizeof buffer)) > 0)
    figures.append(buffer, static_cast<size_t>(n));
  close(stdout_fd_);
  stdout_fd_ = -1;
  reap(pid_, 5000);
  while (!figures.empty() && figures.back() == '\n')
    figures.pop_back();
  return figures;
}

namespace {

/* first frame at or after `from` that starts kFps frames with no gap over max_gap; -1 if none yet */
gint64 steady_from(const std::vector<gint64> &frames, gint64 from, gint64 max_gap) {
  auto first = std::lower_bound(frames.begin(), frames.end(), from);
  for (auto it = first; it != frames.end(); ++it) {
    auto end = it;
    int run = 1;
    while (run < kFps && end + 1 != frames.end() && *(end + 1) - *end <= max_gap) {
      ++end;
      ++run;
    }
    if (run == kFps)
      return *it;
    if (end + 1 == frames.end())
      return -1; /* the run is still going */
    it = end;    /* the next run starts after the gap */
  }
  return -1;
}

}  // namespace

Outcome measure_recovery(const TestHost &viewer, gint64 started, gint64 healed, int timeout_ms) {
  const gint64 kFreeze = 500 * 1000;
  Outcome out;
  gint64 steady = -1;
  /* (the steady second has arrived when this returns) */
  testbed::wait_until(
      [&] { return (steady = steady_from(viewer.frames(), healed, kFreeze)) >= 0 || viewer.exited(); }, timeout_ms);
  const std::vector<gint64> frames = viewer.frames();
  const gint64 end = steady >= 0 ? steady : g_get_monotonic_time();
  out.recovered = steady >= 0;
  out.recover_ms = steady >= 0 ? std::max<gint64>(0, (steady - healed) / 1000) : -1;
  const auto received = std::count_if(frames.begin(), frames.end(), [&](gint64 t) { return t >= started && t < end; });
  const int expected = static_cast<int>((end - started) * kFps / G_USEC_PER_SEC);
  out.frames_lost = std::max(0, expected - static_cast<int>(received));
  /* gaps ending inside [started, end + 1 s], including the one that spans the fault start */
  for (size_t i = 1; i < frames.size(); ++i) {
    if (frames[i] < started || frames[i] > end + G_USEC_PER_SEC)
      continue;
    const gint64 gap = frames[i] - frames[i - 1];
    out.longest_gap_ms = std::max(out.longest_gap_ms, gap / 1000);
    if (gap > kFreeze)
      ++out.freezes;
  }
  out.reconnects = viewer.status_count("reconnecting", started);
  return out;
}

void print_outcome(const char *name, const Outcome &o, const std::string &extra) {
  g_print("FAULT name=%s recovered=%s recover_ms=%" G_GINT64_FORMAT " frames_lost=%d freezes=%d "
          "longest_gap_ms=%" G_GINT64_FORMAT " reconnects=%d%s%s\n",
          name, o.recovered ? "yes" : "no", o.recover_ms, o.frames_lost, o.freezes, o.longest_gap_ms, o.reconnects,
          extra.empty() ? "" : " ", extra.c_str());
}

}  // namespace faults
