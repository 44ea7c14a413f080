/* gst-mediamtx: answering a receiver's NACKs by sending the lost RTP packets again, as they were.
 *
 * MediaMTX (pion's NACK interceptor) asks a WHIP publisher for the packets it misses (RTCP
 * generic NACK, every 100 ms for every packet still missing) but negotiates no RTX stream, so the
 * only repair it can take is the original packet again: same SSRC, same sequence number, same
 * payload (RFC 4585 allows it; RFC 4588's separate RTX stream is not on offer). Its reorder
 * buffer holds the packets after a gap for up to 64 packets, so a copy that arrives within that
 * fills the gap and its readers never see the loss. GStreamer's rtprtxsend only sends RTX, so
 * this does it:
 *  - RetransmitHistory keeps the last packets sent (a reference each, by sequence number) and
 *    decides per request: send again, or not (unknown / too old, asked again too soon, the
 *    retransmission budget spent, asked too often). Plain logic on injected time: unit-tested.
 *  - RtpRetransmitter sits on the src pad of the element webrtcbin asks for as its "aux sender"
 *    (between rtprtxsend and rtpsession): rtpsession turns each NACK into an upstream
 *    "GstRTPRetransmissionRequest" event (seqnum, ssrc) that reaches that pad first; the request is
 *    queued there (RTCP thread) and served on the streaming thread, which pushes the kept packet
 *    before the next one it sends: the sending path sees one thread, as it always does. Requests
 *    over the budget wait there for the next packet (paced by the budget's small bucket). While
 *    the publisher says the bottleneck is full (set_overflow) requests are dropped: the loss is
 *    the overflow's, a copy would be dropped with the rest, and by the time the queue has drained
 *    MediaMTX has given up on it (a keyframe is the repair there).
 * SRTP refuses to protect the same packet index twice unless srtpenc's allow-repeat-tx is set,
 * and an index older than its replay window (128 packets by default, ~0.5 s at 2.5 Mbit/s) even
 * then: either is an element error that ends the session. The publisher sets allow-repeat-tx and
 * a window of kSrtpReplayWindow (> RetransmitLimits::max_packets, so no kept packet is older) on
 * every srtpenc of its webrtcbin (allow_repeated_srtp). The payload is the same bytes, so the
 * repeated key stream encrypts the same plaintext: nothing leaks. */
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

namespace gstmtx {

enum class ResendVerdict {
  Resend,     /* send the kept packet again */
  Unknown,    /* not kept: never sent, or sent so long ago it was forgotten */
  TooOld,     /* kept, but sent too long ago for a copy to be of use (a keyframe is the repair) */
  TooSoon,    /* sent again lately: that copy may still be on its way */
  OverBudget, /* the retransmission budget is spent for now (a later request may get it) */
  Exhausted,  /* sent again as often as it may be (a keyframe is the repair) */
};
const char *resend_verdict_name(ResendVerdict verdict);

/* srtpenc's replay window for the copies: more packets than RetransmitLimits::max_packets */
inline constexpr guint kSrtpReplayWindow = 1024;

struct RetransmitLimits {
  /* kept: the last 512 packets of the last 5 s. pion's NACK log is 512 packets long, and it asks
   * again every 100 ms for a missing packet as long as it is in that log: a packet forgotten
   * sooner would be reported unrepaired again at every request. */
  std::size_t max_packets = 512;
  std::int64_t keep_us = 5000 * 1000;
  std::int64_t resend_age_us = 1500 * 1000;  /* older: no copy (MediaMTX gave up long before) */
  /* the same packet again no sooner than this: pion asks every 100 ms, each round may get a copy
   * (MediaMTX waits 64 packets, ~240 ms at 2.5 Mbit/s: a second copy 200 ms after the first came
   * too late under 3 % loss) */
  std::int64_t min_spacing_us = 90 * 1000;
  int max_resends = 3;                       /* per packet */
  /* the budget's bucket holds this much of its rate (at least one packet): copies are paced, a
   * burst of them would overflow the bottleneck that dropped the packets */
  std::int64_t budget_window_us = 40 * 1000;
};

/* One SSRC's last packets. Single-threaded (the streaming thread); time in us, any origin. */
class RetransmitHistory {
public:
  explicit RetransmitHistory(RetransmitLimits limits = {});
  ~RetransmitHistory();
  RetransmitHistory(const RetransmitHistory &) = delete;
  RetransmitHistory &operator=(const RetransmitHistory &) = delete;

  /* An RTP packet was sent (a reference is kept; not an RTP packet: ignored). A packet of
   * another SSRC than the kept ones starts the history again (a new stream). */
  void sent(GstBuffer *rtp, std::int64_t now_us);
  /* A request for (ssrc, seq). On Resend, *out gets a new reference to the packet to push.
   * *given_up (optional) is set when this request made the packet unrepaired: the first TooOld
   * or Exhausted of a kept packet (Unknown never: a packet asked for while kept was reported
   * then, and pion asks on for packets it does not have as long as they are in its log). */
  ResendVerdict request(std::uint32_t ssrc, std::uint16_t seq, std::int64_t now_us, GstBuffer **out,
                        bool *given_up = nullptr);
  /* The retransmissions' rate limit in kbit/s (0: none). */
  void set_budget_kbps(int kbps);
  std::size_t size() const { return entries_.size(); }
  void clear();

private:
  struct Entry {
    GstBuffer *buffer;
    std::uint16_t seq;
    std::int64_t sent_us;
    std::int64_t resent_us;
    int resends;
    std::size_t bytes;
    bool given_up; /* reported unrepaired once (TooOld, Exhausted) */
  };
  Entry *find(std::uint16_t seq);
  void evict(std::int64_t now_us);
  bool spend(std::size_t bytes, std::int64_t now_us);

  RetransmitLimits limits_;
  std::deque<Entry> entries_;
  std::uint32_t ssrc_ = 0;
  int budget_kbps_ = 0;
  double tokens_ = 0;          /* bytes */
  std::int64_t refilled_us_ = -1;
};

/* Counters of an RtpRetransmitter (any thread). */
struct RetransmitCounts {
  std::uint64_t requests = 0;     /* packets asked for */
  std::uint64_t resent = 0;       /* packets sent again */
  std::uint64_t unrepaired = 0;   /* asked for and never to be sent again (once per packet) */
  std::uint64_t dropped = 0;      /* requests dropped while the bottleneck overflowed */
};

/* The pad glue: attach() to the src pad of webrtcbin's aux sender for one RTP session. */
class RtpRetransmitter {
public:
  explicit RtpRetransmitter(RetransmitLimits limits = {});
  ~RtpRetransmitter();
  RtpRetransmitter(const RtpRetransmitter &) = delete;
  RtpRetransmitter &operator=(const RtpRetransmitter &) = delete;

  void attach(GstPad *pad);
  void detach();
  /* Any thread: the budget for the streaming thread's next decisions. */
  void set_budget_kbps(int kbps);
  /* Any thread: while the bottleneck overflows, requests are dropped (RetransmitCounts::dropped)
   * and the packets sent until then forgotten (asked for later, they are Unknown). */
  void set_overflow(bool overflow);
  /* Any thread: the packets sent so far and the requests waiting are of no more use (a keyframe
   * follows): forgotten at the next packet. */
  void forget();
  RetransmitCounts counts() const;

  struct Shared {
    explicit Shared(RetransmitLimits limits) : history(limits) {}
    std::mutex lock; /* the pending requests and the counters; history: streaming thread */
    std::vector<std::pair<std::uint32_t, std::uint16_t>> pending;
    RetransmitCounts counts;
    RetransmitHistory history;
    std::atomic<int> budget_kbps{0};
    std::atomic<bool> overflow{false};
    std::atomic<bool> forget{false};
  };

private:
  std::shared_ptr<Shared> shared_;
  GstPad *pad_ = nullptr; /* ref held while attached */
  gulong data_probe_ = 0;
  gulong event_probe_ = 0;
};

/* Sets allow-repeat-tx and a replay window of kSrtpReplayWindow on every srtpenc that appears in
 * `webrtcbin` (now and later): the retransmitted packets carry an SRTP index already used, up to
 * RetransmitLimits::max_packets back. Returns the handler id. */
gulong allow_repeated_srtp(GstElement *webrtcbin);

}  // namespace gstmtx
