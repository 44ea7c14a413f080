#include "rtsp_publisher.h"

#include <algorithm>
#include <gst/base/gstbasesink.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <dirent.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

GST_DEBUG_CATEGORY_EXTERN(gst_mediamtx_sink_debug);
#define GST_CAT_DEFAULT gst_mediamtx_sink_debug

/* Never a send into a closed connection.
 *
 * rtspclientsink (gst-rtsp-server's gst/rtsp-sink, 1.22 to 1.26) writes media from one "send"
 * thread per stream (GstRTSPStream's send_func: appsink sample -> transport backlog ->
 * do_send_data -> gst_rtsp_connection_send_messages_usec), under its send locks. It closes the
 * connection from other threads without those locks (gst_rtsp_conninfo_close: unrefs the
 * GSocketConnection, which frees its GOutputStream). Two of its paths close while a send thread
 * may be inside a write:
 *  - the in-place reconnect: with `udp-reconnect` TRUE (its default, and despite the name also for
 *    TCP) its receive loop answers end-of-file from the server (e.g. MediaMTX dropping the
 *    session after a partition heals, or a server killed with a clean FIN) with
 *    gst_rtsp_conninfo_reconnect(): close + connect on the same GstRTSPConnection, nothing
 *    stopped first. A send blocked in g_output_stream_writev() on the full socket (the link was
 *    down) returns into the freed stream: g_output_stream_clear_pending() on freed memory, a
 *    GLib critical on 1.22, a segfault with MALLOC_PERTURB_ on 1.26; a send starting after the
 *    close sees NULL (`g_socket_get_timeout`/`g_output_stream_writev` criticals).
 *  - READY->NULL (gst_rtsp_client_sink_stop -> _close(only_close)): closes the connection first
 *    and joins the send threads only afterwards (in _cleanup). Its CLOSE command (PAUSED->READY)
 *    is safe: it stops the transports and joins the send threads before it closes.
 *
 * So this publisher:
 *  1. sets `udp-reconnect=false`: rtspclientsink never reconnects in place. End-of-file becomes a
 *     RESOURCE warning (and the receive loop stops, flushing the connection, which interrupts a
 *     blocked send); on_message turns that warning into this attempt's error, and mediamtxsink
 *     throws the element away and builds a fresh one, as for any other failure.
 *  2. bounds every blocking network call inside rtspclientsink (`tcp-timeout`, kTcpTimeout: the
 *     timeout of each socket write, connect and request): a stalled link fails the attempt within
 *     that time, and a send thread can never stay inside a write longer than that.
 *  3. on stop, first starves the send threads: a drop probe on every sink inside rtspclientsink
 *     (its appsinks feed the send threads), so they get no new work; after a failure it gives
 *     them kSenderDrainTime to fail on the flushed connection; then lets rtspclientsink end
 *     the session with CLOSE where it can (graceful), and then sets NULL. By then a send thread is
 *     idle, or finishing a write that fails at once: NULL's first step flushes (cancels) the
 *     connection whenever rtspclientsink's task is busy, and its task only goes idle through a
 *     path that flushes it too. This is ordering on top of rtspclientsink's single-slot command
 *     queue, not a lock: the test counts are in docs/reliability.md (fix 7); publishing through
 *     our own GstRTSPConnection code would be the way to make it a guarantee.
 * tests/faults/test_network_faults.cpp fails on any crash or GLib critical of the publisher
 * process; docs/reliability.md has the measurements. */

namespace mediamtxsink {

namespace {
constexpr const char *kNetworkPrefix = "mtx-net-";
/* rtspclientsink's `tcp-timeout` (its default is 20 s): see point 2 above. MediaMTX answers
 * every request at once (SETUP after 1 s for "GStreamer" user agents). */
constexpr guint64 kTcpTimeoutUs = 5 * G_USEC_PER_SEC;
/* How long a failed connection's send threads get to fail on it before rtspclientsink changes
 * state (stop()). */
constexpr std::chrono::milliseconds kSenderDrainTime{200};
/* Media older than this is dropped while a connection is being set up or is slow. */
constexpr guint64 kQueueMaxTime = 200 * GST_MSECOND;
/* How long a graceful stop waits for rtspclientsink to finish its TEARDOWN. rtspclientsink 1.22
 * sometimes leaves the CLOSE command queued behind its receive loop (when the PAUSE it sends on
 * PLAYING->PAUSED was answered first); then NULL closes the TCP connection instead, which ends
 * the session on the server just as well. */
constexpr std::chrono::milliseconds kTeardownTimeout{500};
/* The stuck case is visible: rtspclientsink posts progress "close" START when the command is
 * queued and CONTINUE when its thread begins the TEARDOWN; without CONTINUE within this time the
 * command is stuck behind the receive loop and the graceful stop does not wait for it. */
constexpr std::chrono::milliseconds kCloseStartTimeout{60};
}  // namespace

std::string network_element_name(unsigned generation, const char *what) {
  return std::string(kNetworkPrefix) + std::to_string(generation) + "-" + what;
}

bool network_element_generation(GstObject *object, unsigned *generation) {
  for (GstObject *o = object ? GST_OBJECT(gst_object_ref(object)) : nullptr; o;) {
    const char *name = GST_OBJECT_NAME(o);
    if (name && g_str_has_prefix(name, kNetworkPrefix)) {
      *generation = static_cast<unsigned>(std::strtoul(name + std::strlen(kNetworkPrefix), nullptr, 10));
      gst_object_unref(o);
      return true;
    }
    GstObject *parent = gst_object_get_parent(o);
    gst_object_unref(o);
    o = parent;
  }
  return false;
}

RtspPublisher::RtspPublisher(PublisherConfig config, unsigned generation, ConnectedCallback on_connected)
    : config_(std::move(config)), generation_(generation), on_connected_(std::move(on_connected)) {}

namespace {

/* The inodes of this process's sockets (/proc/self/fd), fd by inode. */
std::vector<std::pair<int, ino_t>> process_sockets() {
  std::vector<std::pair<int, ino_t>> sockets;
  DIR *dir = opendir("/proc/self/fd");
  if (!dir)
    return sockets;
  while (struct dirent *entry = readdir(dir)) {
    char *end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    struct stat st;
    if (end == entry->d_name || *end || fd == dirfd(dir) || fstat(static_cast<int>(fd), &st) != 0 ||
        !S_ISSOCK(st.st_mode))
      continue;
    sockets.emplace_back(static_cast<int>(fd), st.st_ino);
  }
  closedir(dir);
  return sockets;
}

/* Sockets some publisher of this process reads already (two sinks to the same server). */
std::mutex claimed_lock;
std::set<ino_t> claimed_sockets;

int rtsp_port(const std::string &url) {
  g_autoptr(GstUri) uri = gst_uri_from_string(url.c_str());
  if (!uri)
    return 554;
  const guint port = gst_uri_get_port(uri);
  if (port != GST_URI_NO_PORT)
    return static_cast<int>(port);
  return g_strcmp0(gst_uri_get_scheme(uri), "rtsps") == 0 ? 322 : 554;
}

/* weight of one reading in the backlog's drain rate */
constexpr double kDrainSmoothing = 0.3;

}  // namespace

RtspPublisher::~RtspPublisher() {
  if (socket_inode_) {
    std::lock_guard<std::mutex> lk(claimed_lock);
    claimed_sockets.erase(socket_inode_);
  }
  if (rtpbin_)
    gst_object_unref(rtpbin_);
  for (GstPad *pad : sender_pads_)
    gst_object_unref(pad);
  for (GstPad *pad : sink_request_pads_)
    gst_object_unref(pad);
  for (GstElement *queue : queues_)
    gst_object_unref(queue);
  if (sink_)
    gst_object_unref(sink_);
}

/* Called from rtspclientsink's threads as it builds its internals (rtpbin, payloaders, sinks).
 * Its sinks wait on the clock for every packet with a live source (~29 ms); media here is
 * already live, so they send at once. The first buffer reaching one of them means RECORD is
 * done and media flows to the server. */
void RtspPublisher::on_deep_element_added(GstBin *, GstBin *, GstElement *element, gpointer user_data) {
  auto *self = static_cast<RtspPublisher *>(user_data);
  if (g_strcmp0(G_OBJECT_TYPE_NAME(element), "GstRtpBin") == 0) {
    std::lock_guard<std::mutex> lk(self->rtpbin_lock_);
    if (!self->rtpbin_)
      self->rtpbin_ = GST_ELEMENT(gst_object_ref(element));
    return;
  }
  if (!GST_IS_BASE_SINK(element))
    return;
  GST_DEBUG_OBJECT(element, "rtspclientsink sink %s: no clock wait", G_OBJECT_TYPE_NAME(element));
  g_object_set(element, "sync", FALSE, "async", FALSE, nullptr);
  GstPad *pad = gst_element_get_static_pad(element, "sink");
  if (!pad)
    return;
  const auto buffers = static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST);
  gst_pad_add_probe(pad, buffers, on_first_data, self, nullptr);
  gst_pad_add_probe(pad, buffers, count_media, self, nullptr);
  /* kept to starve the send threads on stop (a sink added while stopping is starved at once) */
  std::lock_guard<std::mutex> lk(self->senders_lock_);
  if (self->senders_starved_)
    gst_pad_add_probe(pad, buffers, drop_media, nullptr, nullptr);
  self->sender_pads_.push_back(pad);
}

/* Called from rtspclientsink's streaming threads once stop() began. */
GstPadProbeReturn RtspPublisher::drop_media(GstPad *, GstPadProbeInfo *, gpointer) { return GST_PAD_PROBE_DROP; }

/* Control thread: no more media reaches rtspclientsink's stream send threads (point 3). */
void RtspPublisher::starve_senders() {
  std::lock_guard<std::mutex> lk(senders_lock_);
  if (senders_starved_)
    return;
  senders_starved_ = true;
  for (GstPad *pad : sender_pads_)
    gst_pad_add_probe(pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                      drop_media, nullptr, nullptr);
}

/* Called from rtspclientsink's streaming threads: what its send threads write to the connection. */
GstPadProbeReturn RtspPublisher::count_media(GstPad *, GstPadProbeInfo *info, gpointer user_data) {
  auto *self = static_cast<RtspPublisher *>(user_data);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER)
    self->bytes_in_ += gst_buffer_get_size(GST_PAD_PROBE_INFO_BUFFER(info)) + 4; /* + interleaved header */
  else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    self->bytes_in_ += gst_buffer_list_calculate_size(list) + 4 * gst_buffer_list_length(list);
  }
  return GST_PAD_PROBE_OK;
}

/* Control thread: rtspclientsink's TCP connection among this process's sockets: a stream socket
 * opened since start() whose peer is the server's RTSP port, not read by another publisher.
 * rtspclientsink does not expose its connection. */
bool RtspPublisher::find_socket() {
  if (socket_fd_ >= 0) {
    struct stat st;
    if (fstat(socket_fd_, &st) == 0 && st.st_ino == socket_inode_)
      return true;
    socket_fd_ = -1; /* closed (the fd may be another file now) */
    return false;
  }
  if (socket_inode_)
    return false; /* had it: the connection is gone */
  const int port = rtsp_port(config_.url);
  for (const auto &[fd, inode] : process_sockets()) {
    if (sockets_before_.count(inode))
      continue;
    int type = 0;
    socklen_t len = sizeof(type);
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof(peer);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM ||
        getpeername(fd, reinterpret_cast<struct sockaddr *>(&peer), &peer_len) != 0)
      continue;
    int peer_port = -1;
    if (peer.ss_family == AF_INET)
      peer_port = ntohs(reinterpret_cast<struct sockaddr_in *>(&peer)->sin_port);
    else if (peer.ss_family == AF_INET6)
      peer_port = ntohs(reinterpret_cast<struct sockaddr_in6 *>(&peer)->sin6_port);
    if (peer_port != port)
      continue;
    std::lock_guard<std::mutex> lk(claimed_lock);
    if (!claimed_sockets.insert(inode).second)
      continue;
    socket_fd_ = fd;
    socket_inode_ = inode;
    GST_DEBUG("attempt %u: rtspclientsink's connection is fd %d", generation_, fd);
    return true;
  }
  return false;
}

bool RtspPublisher::read_feedback(gstmtx::RateFeedback *feedback) {
  if (!config_.tcp) {
    /* MediaMTX sends receiver reports over UDP, every 10 s */
    GstElement *rtpbin;
    {
      std::lock_guard<std::mutex> lk(rtpbin_lock_);
      rtpbin = rtpbin_ ? GST_ELEMENT(gst_object_ref(rtpbin_)) : nullptr;
    }
    if (!rtpbin)
      return false;
    double loss = 0;
    const bool fresh = read_receiver_report(rtpbin, 0, &reports_, &loss);
    gst_object_unref(rtpbin);
    if (fresh)
      feedback->loss = loss;
    return fresh;
  }
  if (!find_socket())
    return false;
  int backlog = 0;
  if (ioctl(socket_fd_, SIOCOUTQ, &backlog) != 0)
    return false;
  const gint64 now_us = g_get_monotonic_time();
  const guint64 in = bytes_in_.load();
  if (!have_last_) {
    have_last_ = true;
    last_in_ = in;
    last_backlog_ = backlog;
    last_time_us_ = now_us;
    return false;
  }
  const double dt_ms = (now_us - last_time_us_) / 1000.0;
  if (dt_ms <= 0)
    return false;
  const double sent = static_cast<double>(in - last_in_);
  const double drained = std::max(0.0, sent - static_cast<double>(backlog - last_backlog_));
  const double sent_kbps = sent * 8.0 / dt_ms;
  const double drained_kbps = drained * 8.0 / dt_ms;
  drain_kbps_ = drain_kbps_ > 0 ? drain_kbps_ + kDrainSmoothing * (drained_kbps - drain_kbps_) : drained_kbps;
  last_in_ = in;
  last_backlog_ = backlog;
  last_time_us_ = now_us;
  sent_kbps_ = sent_kbps_ > 0 ? sent_kbps_ + kDrainSmoothing * (sent_kbps - sent_kbps_) : sent_kbps;
  /* both smoothed alike: one tick's drain is noisy (ACK clocking, a frame written just before) */
  feedback->sent_kbps = static_cast<int>(sent_kbps_);
  feedback->delivered_kbps = static_cast<int>(drain_kbps_);
  /* how long what is written now waits: in the socket (its backlog at the rate it drains) and, once
   * the socket's buffer is full, in the video queue in front of rtspclientsink */
  feedback->queuing_delay_ms =
      backlog * 8.0 / std::max(drain_kbps_, 50.0) + queue_delay_ms(queues_.empty() ? nullptr : queues_.front());
  return true;
}

bool RtspPublisher::read_send_backlog(std::uint64_t *written, std::int64_t *backlog) {
  if (!config_.tcp || !find_socket())
    return false;
  int queued = 0;
  if (ioctl(socket_fd_, SIOCOUTQ, &queued) != 0)
    return false;
  *written = bytes_in_.load();
  *backlog = queued;
  return true;
}

/* Called from rtspclientsink's streaming threads. */
GstPadProbeReturn RtspPublisher::on_first_data(GstPad *pad, GstPadProbeInfo *, gpointer user_data) {
  auto *self = static_cast<RtspPublisher *>(user_data);
  GST_DEBUG_OBJECT(pad, "first media into rtspclientsink's sink (attempt %u)", self->generation_);
  if (!self->connected_.exchange(true) && self->on_connected_)
    self->on_connected_(self->generation_);
  return GST_PAD_PROBE_REMOVE;
}

bool RtspPublisher::start(GstBin *bin, const std::vector<PublisherStream> &streams, gstmtx::Failure *error) {
  for (const auto &socket : process_sockets())
    sockets_before_.insert(socket.second);
  sink_ = gst_element_factory_make("rtspclientsink", network_element_name(generation_, "rtspclientsink").c_str());
  if (!sink_) {
    *error = gstmtx::Failure::of_kind(gstmtx::FailureKind::MissingPlugin,
                                      "the rtspclientsink element is missing: install gstreamer1.0-rtsp");
    return false;
  }
  gst_object_ref_sink(sink_);
  g_object_set(sink_, "location", config_.url.c_str(), "latency", 0u, nullptr);
  if (!config_.user.empty())
    g_object_set(sink_, "user-id", config_.user.c_str(), "user-pw", config_.password.c_str(), nullptr);
  if (!config_.user_agent.empty())
    g_object_set(sink_, "user-agent", config_.user_agent.c_str(), nullptr);
  gst_util_set_object_arg(G_OBJECT(sink_), "protocols", config_.tcp ? "tcp" : "udp");
  /* points 1 and 2 above: never an in-place reconnect; no network call blocks longer than this */
  g_object_set(sink_, "udp-reconnect", FALSE, "tcp-timeout", kTcpTimeoutUs, nullptr);
  deep_added_id_ = g_signal_connect(sink_, "deep-element-added", G_CALLBACK(on_deep_element_added), this);
  gst_bin_add(bin, sink_);

  for (std::size_t i = 0; i < streams.size(); ++i) {
    std::string name = network_element_name(generation_, streams[i].is_video ? "video-queue" : "audio-queue");
    GstElement *queue = gst_element_factory_make("queue", name.c_str());
    gst_object_ref_sink(queue);
    queues_.push_back(queue);
    g_object_set(queue, "max-size-buffers", 0u, "max-size-bytes", 0u, "max-size-time", kQueueMaxTime, nullptr);
    gst_util_set_object_arg(G_OBJECT(queue), "leaky", "downstream");
    gst_bin_add(bin, queue);
    GstPad *request = gst_element_request_pad_simple(sink_, "sink_%u");
    if (!request) {
      *error = gstmtx::Failure::of_kind(gstmtx::FailureKind::Config, "rtspclientsink refused a stream");
      return false;
    }
    sink_request_pads_.push_back(request);
    g_autoptr(GstPad) queue_src = gst_element_get_static_pad(queue, "src");
    g_autoptr(GstPad) queue_sink = gst_element_get_static_pad(queue, "sink");
    if (GST_PAD_LINK_FAILED(gst_pad_link(queue_src, request)) ||
        GST_PAD_LINK_FAILED(gst_pad_link(streams[i].pad, queue_sink))) {
      *error = gstmtx::Failure::of_kind(gstmtx::FailureKind::Config, "cannot link a stream into rtspclientsink");
      return false;
    }
  }
  /* Downstream first, so a queue never pushes into a sink that is not running yet. */
  gst_element_sync_state_with_parent(sink_);
  for (GstElement *queue : queues_)
    gst_element_sync_state_with_parent(queue);
  return true;
}

/* Any thread (rtspclientsink's task posts its progress and errors). */
void RtspPublisher::on_message(GstMessage *message) {
  if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_WARNING && sink_ && GST_MESSAGE_SRC(message) == GST_OBJECT(sink_) &&
      !stopping_) {
    /* Every RESOURCE warning of rtspclientsink itself is a broken connection it will not recover
     * from without its in-place reconnect ("The server closed the connection.", "Could not send
     * keep-alive"): its receive loop has stopped and its sends fail. This attempt has failed: post
     * it as rtspclientsink's error (on this thread; the bin's handle_message sees it next). */
    GError *warning = nullptr;
    g_autofree char *debug = nullptr;
    gst_message_parse_warning(message, &warning, &debug);
    if (warning && warning->domain == GST_RESOURCE_ERROR && !broken_.exchange(true)) {
      /* the debug text is "file(line): function (): element path:\nwhat happened" */
      const char *what = debug ? std::strrchr(debug, '\n') : nullptr;
      what = what ? what + 1 : warning->message;
      GST_INFO_OBJECT(sink_, "connection broken (attempt %u): %s", generation_, what);
      GError *error =
          g_error_new(GST_RESOURCE_ERROR, warning->code, "The RTSP connection to the server broke: %s", what);
      gst_element_post_message(sink_, gst_message_new_error(GST_OBJECT(sink_), error, debug));
      g_error_free(error);
    }
    g_clear_error(&warning);
    return;
  }
  bool closed = GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR;
  if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_PROGRESS) {
    GstProgressType type;
    g_autofree char *code = nullptr;
    g_autofree char *text = nullptr;
    gst_message_parse_progress(message, &type, &code, &text);
    if (g_strcmp0(code, "close") == 0 && type == GST_PROGRESS_TYPE_CONTINUE) {
      {
        std::lock_guard<std::mutex> lk(close_lock_);
        close_started_ = true;
      }
      close_cond_.notify_all();
    }
    closed = g_strcmp0(code, "close") == 0 &&
             (type == GST_PROGRESS_TYPE_COMPLETE || type == GST_PROGRESS_TYPE_ERROR || type == GST_PROGRESS_TYPE_CANCELED);
  }
  if (!closed)
    return;
  {
    std::lock_guard<std::mutex> lk(close_lock_);
    closed_ = true;
  }
  close_cond_.notify_all();
}

void RtspPublisher::stop(GstBin *bin, bool graceful) {
  stopping_ = true;
  if (sink_) {
    /* point 3 above: before any state change of rtspclientsink */
    starve_senders();
    if (!graceful) {
      /* A failed connection: rtspclientsink's receive loop has usually just stopped and flushed
       * (cancelled) it. Its state changes below start commands that un-flush it for a moment;
       * first give each send thread the time to try the media it was handed before the probes
       * and fail on the flushed connection, which removes its transport for good (no more
       * writes from it). */
      std::this_thread::sleep_for(kSenderDrainTime);
    }
    gst_element_set_locked_state(sink_, TRUE);
    if (graceful && connected_) {
      /* READY queues the TEARDOWN on rtspclientsink's task; NULL right away could stop the task
       * before it is sent. */
      gst_element_set_state(sink_, GST_STATE_READY);
      std::unique_lock<std::mutex> lk(close_lock_);
      if (!close_cond_.wait_for(lk, kCloseStartTimeout, [this] { return closed_ || close_started_; }))
        GST_INFO_OBJECT(sink_, "TEARDOWN not started within %lld ms (queued behind the receive loop): "
                        "closing the connection", static_cast<long long>(kCloseStartTimeout.count()));
      else if (!close_cond_.wait_for(lk, kTeardownTimeout, [this] { return closed_; }))
        GST_INFO_OBJECT(sink_, "no TEARDOWN within %lld ms: closing the connection",
                           static_cast<long long>(kTeardownTimeout.count()));
    }
    /* The sink before the queues: deactivating its pads wakes a queue thread blocked inside it
     * (a session that never reached RECORD). */
    gst_element_set_state(sink_, GST_STATE_NULL);
  }
  for (GstElement *queue : queues_) {
    gst_element_set_locked_state(queue, TRUE);
    gst_element_set_state(queue, GST_STATE_NULL);
  }
  if (sink_) {
    for (GstPad *pad : sink_request_pads_)
      gst_element_release_request_pad(sink_, pad);
  }
  for (GstElement *queue : queues_) {
    if (GST_OBJECT_PARENT(queue) == GST_OBJECT(bin))
      gst_bin_remove(bin, queue);
  }
  if (sink_ && GST_OBJECT_PARENT(sink_) == GST_OBJECT(bin))
    gst_bin_remove(bin, sink_);
  if (sink_ && deep_added_id_) {
    g_signal_handler_disconnect(sink_, deep_added_id_);
    deep_added_id_ = 0;
  }
}

}  // namespace mediamtxsink
