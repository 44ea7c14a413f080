/* gst-mediamtx: the WHIP network half of mediamtxsink: per stream a small leaky queue and an RTP
 * payloader into one webrtcbin, negotiated with the WHIP endpoint by the same WebRTC-HTTP code
 * (gst/webrtc_peer.h) that whepsrc uses for WHEP. It runs on the element's control thread (its
 * EventLoop) and sends through the element's HttpClient, which outlive it: a DELETE sent as it
 * stops completes after it is gone. Failures are the WebRTC-HTTP session's own gstmtx::Failure
 * (401/403 Unauthorized, 400/415 Rejected, TLS, redirect loop Config, 503 + Retry-After...),
 * passed on with a hint added where MediaMTX's rules explain a rejected offer. */
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "event_loop.h"
#include "http_client.h"
#include "publisher.h"
#include "rate_adaptation.h"
#include "rtp_retransmission.h"
#include "twcc_feedback.h"
#include "webrtc_peer.h"

namespace mediamtxsink {

class WhipPublisher : public Publisher {
public:
  WhipPublisher(PublisherConfig config, unsigned generation, gstmtx::EventLoop &loop, gstmtx::HttpClient &http,
                ConnectedCallback on_connected, FailedCallback on_failed);
  ~WhipPublisher() override;
  const char *transport_name() const override { return "whip"; }
  bool start(GstBin *bin, const std::vector<PublisherStream> &streams, gstmtx::Failure *error) override;
  void stop(GstBin *bin, bool graceful) override;
  /* The video session's TWCC feedback, per packet (gst/twcc_estimator.h: standing queue, overuse,
   * capacity, delivered vs sent, loss) or, while that has nothing, rtpsession's aggregated
   * twcc-stats (delivered vs sent rate, loss, the delay gradient integrated into a queuing
   * delay); and the server's receiver reports. */
  bool read_feedback(gstmtx::RateFeedback *feedback) override;
  bool repair_keyframe_due() const override { return loss_pending_send_us_ >= 0; }
  void set_congestion_callback(CongestionCallback callback) override;
  /* retransmission-requests, packets-retransmitted: this session's (any thread) */
  void add_stats(GstStructure *stats) const override;

private:
  bool read_packet_feedback(gstmtx::RateFeedback *feedback);
  void repair_after_loss(const gstmtx::TwccEstimate &estimate, gint64 now_us);
  /* webrtcbin's "request-aux-sender" (the thread setting a description): an identity element
   * whose src pad answers the NACKs of that RTP session (gst/rtp_retransmission.h) */
  static GstElement *make_aux_sender(GstElement *webrtcbin, GObject *transport, WhipPublisher *self);
  gstmtx::RetransmitCounts retransmit_counts() const;
  /* any thread: `fn` on each retransmitter, under retransmit_lock_ */
  void each_retransmitter(const std::function<void(gstmtx::RtpRetransmitter &)> &fn) const;
  void watch_overflow(const gstmtx::TwccEstimate &estimate);

  PublisherConfig config_;
  unsigned generation_;
  ConnectedCallback on_connected_;
  FailedCallback on_failed_;
  gstmtx::EventLoop &loop_;
  gstmtx::HttpClient &http_;
  std::unique_ptr<gstmtx::WebrtcPeer> peer_; /* loop thread */
  GstElement *webrtc_ = nullptr;             /* ref held */
  std::vector<GstElement *> elements_;       /* queues and payloaders, ref held */
  GstElement *video_queue_ = nullptr;        /* the video stream's queue (in elements_) */
  std::vector<GstPad *> request_pads_;
  /* bandwidth adaptation, control thread */
  GstStructure *last_twcc_ = nullptr; /* the last twcc-stats read (a new one: new feedback) */
  ReceiverReportCursor reports_;
  gstmtx::DelayGradientQueue delay_queue_; /* the bottleneck's queue from TWCC's delay gradient */
  gint64 last_twcc_us_ = 0;                /* when last_twcc_ was read (monotonic) */
  /* per-packet TWCC feedback (rtpsession's RTPTWCCPackets event on the video payloader's src
   * pad) and the estimator over it; twcc-stats above is the fallback while it has nothing */
  gstmtx::TwccFeedbackTap twcc_tap_;
  gint64 last_packet_feedback_us_ = 0; /* when the tap last had news (monotonic) */
  gstmtx::DelayTrend last_trend_ = gstmtx::DelayTrend::Unknown;
  /* repair keyframes after loss (send times in the estimator's clock, -1: none) */
  std::int64_t loss_pending_send_us_ = -1;  /* newest lost packet not yet repaired */
  std::int64_t repaired_loss_send_us_ = -1; /* newest lost packet a keyframe was asked for */
  gint64 last_repair_us_ = 0;
  /* answering the server's NACKs: one retransmitter per RTP session (webrtcbin's aux senders) */
  mutable std::mutex retransmit_lock_;
  std::vector<std::unique_ptr<gstmtx::RtpRetransmitter>> retransmitters_;
  gulong aux_sender_handler_ = 0;
  std::uint64_t requests_seen_ = 0;   /* control thread: RetransmitCounts::requests at the last tick */
  std::uint64_t unrepaired_seen_ = 0; /* control thread: RetransmitCounts::unrepaired at the last tick */
  bool server_lost_ = false;           /* control thread: a receiver report counted lost packets */
  /* control thread: a loss TWCC reported on a link with room, while no NACK came yet (-1: none) */
  std::int64_t unanswered_loss_send_us_ = -1;
  /* RTCP thread: the newest packet TWCC had reported when the bottleneck's queue was last seen
   * over kRepairQueueMs (estimator's send clock; -1: never) */
  std::atomic<std::int64_t> full_queue_send_us_{-1};
  CongestionCallback on_congestion_; /* under retransmit_lock_ */
};

}  // namespace mediamtxsink
