/* gst-mediamtx: the network half of mediamtxsink.
 *
 * mediamtxsink keeps a stable half (ghost pads, encoder, parser) and rebuilds the network half
 * after every failure. A Publisher is that network half: it adds its elements to the bin and
 * links each stream's output pad, and removes them again. RTSP (rtspclientsink) is the first
 * implementation; WHIP (the shared WebRTC-HTTP session + webrtcbin) plugs in the same way.
 *
 * Errors are typed (gstmtx::Failure, failure.h): start() returns why it cannot even start, a
 * publisher with its own protocol code (WHIP) passes its session's Failure through unchanged
 * (FailedCallback), and every element a Publisher adds to the bin is named with
 * network_element_name(), so GstBin::handle_message can tell a network-half error (classified by
 * the element) from any other child's error (forwarded), and which session it belongs to, without
 * a lock.
 */
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "failure.h"
#include "rate_controller.h"

namespace mediamtxsink {

struct PublisherConfig {
  std::string url;        /* without userinfo */
  std::string user;       /* empty: no credentials */
  std::string password;
  std::string auth_token; /* bearer token (WHIP) */
  bool tcp = true;        /* RTSP lower transport */
  bool whip = false;      /* publish over WHIP (webrtcbin) instead of RTSP */
  bool retransmission = true; /* WHIP: send lost packets again when the server asks (NACK) */
  std::string user_agent;
};

/* One input of the publisher: the stable half's output pad and what it carries. */
struct PublisherStream {
  GstPad *pad = nullptr; /* src pad of the stable half (the caller holds a ref during start) */
  bool is_video = false;
};

class Publisher {
public:
  /* Called once the first media leaves for the server (any thread; must not block). */
  using ConnectedCallback = std::function<void(unsigned generation)>;
  /* The session failed, as its protocol code tells (any thread; must not block). */
  using FailedCallback = std::function<void(unsigned generation, gstmtx::Failure failure)>;

  virtual ~Publisher() = default;
  virtual const char *transport_name() const = 0;

  /* Control thread. Adds the network half to `bin` and links every stream's pad to it, then
   * brings it to the bin's state. False with *error when it cannot even start (a missing plugin:
   * MissingPlugin, a stream it cannot carry: Config); the element then tears it down (stop). */
  virtual bool start(GstBin *bin, const std::vector<PublisherStream> &streams, gstmtx::Failure *error) = 0;
  /* Control thread. The stream pads are already unlinked: sets everything start() added to NULL
   * and removes it. `graceful`: the session ended normally (EOS, pipeline stopped), so end it
   * properly with the server (RTSP TEARDOWN, WHIP DELETE) within a short bound; otherwise the
   * connection is already broken and is simply dropped. */
  virtual void stop(GstBin *bin, bool graceful) = 0;
  /* Any thread: a message posted by this publisher's elements (before the bin handles it). */
  virtual void on_message(GstMessage *message) { (void)message; }
  /* Control thread, every tick of the bandwidth adaptation while connected: what the transport
   * learnt about the uplink since the last call (feedback->now is set; fill what is known).
   * False when it has nothing. */
  virtual bool read_feedback(gstmtx::RateFeedback *feedback) { (void)feedback; return false; }
  /* Control thread, every kBacklogTick (rate_adaptation.cpp) while connected: a socket's send
   * backlog now (bytes) and all bytes handed to that socket so far. Only RTSP over TCP has one;
   * false for the others. */
  virtual bool read_send_backlog(std::uint64_t *written, std::int64_t *backlog) {
    (void)written;
    (void)backlog;
    return false;
  }
  /* Control thread: a keyframe that repairs lost packets is already due (WHIP: once the loss has
   * stopped): a deep cut's keyframe would only come before it, into the same congestion. */
  virtual bool repair_keyframe_due() const { return false; }
  /* Control thread, once connected: `callback` (any thread, must not block) is called when the
   * transport's feedback shows the uplink congested between two ticks (WHIP: at a TWCC feedback
   * with a growing queue), so the rate can be cut at once, not at the next tick. */
  using CongestionCallback = std::function<void()>;
  virtual void set_congestion_callback(CongestionCallback callback) { (void)callback; }
  /* Any thread: the transport's own fields of the element's `stats`. */
  virtual void add_stats(GstStructure *stats) const { (void)stats; }
};

/* "mtx-net-<generation>-<what>" */
std::string network_element_name(unsigned generation, const char *what);
/* True when `object` or one of its parents has a network element name; *generation set. */
bool network_element_generation(GstObject *object, unsigned *generation);

}  // namespace mediamtxsink
