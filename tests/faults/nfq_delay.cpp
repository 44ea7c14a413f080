/* nfq-delay: delay and jitter for the network fault suite, where the kernel has no tc netem.
 *
 * Binds an iptables NFQUEUE queue (rules such as `-t mangle -A POSTROUTING -o IF -j NFQUEUE
 * --queue-num N`) and holds each packet's ACCEPT verdict for DELAY +/- JITTER ms, drawn uniformly
 * per packet like netem's `delay DELAY JITTER`. Packets keep their own delays, so a later packet
 * with a shorter delay overtakes an earlier one (netem reorders the same way); --no-reorder
 * releases in arrival order instead (each packet waits at least as long as the one before it).
 *
 * stdout: "ready" once bound; at the end of stdin (or "quit"), every held packet is released and
 * one line of figures is printed:
 *   delayed packets=N min_ms=.. mean_ms=.. max_ms=.. reordered=N max_held=N
 * Exits with its parent (PR_SET_PDEATHSIG). */
#include <arpa/inet.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <queue>
#include <random>
#include <string>
#include <vector>

namespace {

int64_t now_us() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

struct Held {
  int64_t release_us;
  int64_t arrival_us;
  uint64_t sequence; /* arrival order */
  uint32_t packet_id;
  bool operator>(const Held &other) const {
    return release_us != other.release_us ? release_us > other.release_us : sequence > other.sequence;
  }
};

struct Delayer {
  nfq_q_handle *queue = nullptr;
  int64_t delay_us = 100000, jitter_us = 30000;
  bool reorder = true;
  std::mt19937_64 random{std::random_device{}()};
  std::priority_queue<Held, std::vector<Held>, std::greater<Held>> held;
  uint64_t next_sequence = 0, released_up_to = 0, reordered = 0, packets = 0;
  int64_t last_release_us = 0, total_us = 0, min_us = INT64_MAX, max_us = 0;
  size_t max_held = 0;

  void hold(uint32_t packet_id) {
    const int64_t now = now_us();
    std::uniform_int_distribution<int64_t> spread(-jitter_us, jitter_us);
    int64_t release = now + delay_us + spread(random);
    if (!reorder)
      release = std::max(release, last_release_us);
    last_release_us = std::max(last_release_us, release);
    held.push(Held{release, now, next_sequence++, packet_id});
    max_held = std::max(max_held, held.size());
  }

  /* releases every packet due by `until` (all of them with INT64_MAX) */
  void release(int64_t until) {
    while (!held.empty() && held.top().release_us <= until) {
      const Held h = held.top();
      held.pop();
      nfq_set_verdict(queue, h.packet_id, NF_ACCEPT, 0, nullptr);
      const int64_t waited = now_us() - h.arrival_us;
      ++packets;
      total_us += waited;
      min_us = std::min(min_us, waited);
      max_us = std::max(max_us, waited);
      if (h.sequence + 1 < released_up_to)
        ++reordered; /* a later packet went out first */
      released_up_to = std::max(released_up_to, h.sequence + 1);
    }
  }
};

int on_packet(nfq_q_handle *, nfgenmsg *, nfq_data *data, void *user_data) {
  auto *self = static_cast<Delayer *>(user_data);
  const nfqnl_msg_packet_hdr *header = nfq_get_msg_packet_hdr(data);
  if (header)
    self->hold(ntohl(header->packet_id));
  return 0;
}

void usage(const char *argv0) {
  fprintf(stderr,
          "Usage: %s [--queue N] [--delay MS] [--jitter MS] [--no-reorder]\n"
          "Holds the verdict of each packet of NFQUEUE queue N (default 0) for DELAY +/- JITTER ms\n"
          "(uniform; defaults 100 and 30). Stops at the end of stdin and prints its figures. Needs\n"
          "CAP_NET_ADMIN in the namespace of the rules.\n",
          argv0);
}

}  // namespace

int main(int argc, char **argv) {
  Delayer delayer;
  int queue_number = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--help") {
      usage(argv[0]);
      return 0;
    } else if (arg == "--queue" && has_value) {
      queue_number = atoi(argv[++i]);
    } else if (arg == "--delay" && has_value) {
      delayer.delay_us = atoll(argv[++i]) * 1000;
    } else if (arg == "--jitter" && has_value) {
      delayer.jitter_us = atoll(argv[++i]) * 1000;
    } else if (arg == "--no-reorder") {
      delayer.reorder = false;
    } else {
      usage(argv[0]);
      return 2;
    }
  }
  if (delayer.delay_us < 0 || delayer.jitter_us < 0 || delayer.jitter_us > delayer.delay_us) {
    fprintf(stderr, "nfq-delay: need 0 <= jitter <= delay\n");
    return 2;
  }
  const pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    return 1;

  nfq_handle *handle = nfq_open();
  if (!handle) {
    perror("nfq-delay: nfq_open");
    return 1;
  }
  delayer.queue = nfq_create_queue(handle, static_cast<uint16_t>(queue_number), on_packet, &delayer);
  if (!delayer.queue) {
    perror("nfq-delay: nfq_create_queue (queue in use, or no NFQUEUE support?)");
    nfq_close(handle);
    return 1;
  }
  nfq_set_mode(delayer.queue, NFQNL_COPY_META, 0);
  nfq_set_queue_maxlen(delayer.queue, 20000);
  nfnl_rcvbufsiz(nfq_nfnlh(handle), 8 * 1024 * 1024);
  const int fd = nfq_fd(handle);
  printf("ready\n");
  fflush(stdout);

  std::vector<char> buffer(256 * 1024);
  bool running = true;
  while (running) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    timespec timeout{};
    timespec *wait = nullptr;
    if (!delayer.held.empty()) {
      const int64_t left = std::max<int64_t>(0, delayer.held.top().release_us - now_us());
      timeout.tv_sec = left / 1000000;
      timeout.tv_nsec = (left % 1000000) * 1000;
      wait = &timeout;
    }
    if (ppoll(fds, 2, wait, nullptr) < 0 && errno != EINTR) {
      perror("nfq-delay: ppoll");
      break;
    }
    if (fds[0].revents & POLLIN) {
      for (;;) {
        const ssize_t n = recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (n < 0) {
          if (errno == ENOBUFS)
            fprintf(stderr, "nfq-delay: netlink buffer overrun, some packets lost\n");
          break;
        }
        nfq_handle_packet(handle, buffer.data(), static_cast<int>(n));
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP)) {
      char line[64];
      const ssize_t n = read(STDIN_FILENO, line, sizeof line);
      if (n <= 0 || strncmp(line, "quit", 4) == 0)
        running = false;
    }
    delayer.release(now_us());
  }
  delayer.release(INT64_MAX);
  const uint64_t n = delayer.packets;
  printf("delayed packets=%llu min_ms=%.1f mean_ms=%.1f max_ms=%.1f reordered=%llu max_held=%zu\n",
         static_cast<unsigned long long>(n), n ? delayer.min_us / 1000.0 : 0.0,
         n ? delayer.total_us / 1000.0 / static_cast<double>(n) : 0.0, delayer.max_us / 1000.0,
         static_cast<unsigned long long>(delayer.reordered), delayer.max_held);
  fflush(stdout);
  nfq_destroy_queue(delayer.queue);
  nfq_close(handle);
  return 0;
}
