#include "whip_publisher.h"

#include <algorithm>
#include <utility>
#include <gst/rtp/rtp.h>
#include <gst/webrtc/webrtc.h>

#include "codec_table.h"
#include "dtls_certificate.h"
#include "keyframe_gate.h"
#include "mediamtx_url.h"

GST_DEBUG_CATEGORY_EXTERN(gst_mediamtx_sink_debug);
#define GST_CAT_DEFAULT gst_mediamtx_sink_debug

namespace mediamtxsink {

namespace {
constexpr guint64 kQueueMaxTime = 200 * GST_MSECOND;
/* liveness: MediaMTX sends RTCP receiver reports every second; a silent server is gone (libnice
 * 0.1.21 would take far longer to call the ICE connection failed): gst/rtcp_liveness.h. 3 s, as a
 * viewer's: a restarted server is noticed within 3 s, so the path is back soon after it. */
constexpr std::chrono::milliseconds kRtcpSilence{3000};
/* Transport-wide congestion control (the RTP header extension and its RTCP feedback): MediaMTX
 * sends TWCC feedback every 100 ms when the offer carries it. */
constexpr const char *kTwccUri = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
constexpr guint kTwccExtensionId = 3;

/* The payloader and RTP caps for what the stable half outputs. */
struct SendFormat {
  const gstmtx::RtpCodec *codec;
  int payload_type;
};

bool send_format_for(GstPad *pad, bool is_video, SendFormat *format, gstmtx::Failure *error) {
  g_autoptr(GstCaps) caps = gst_pad_get_current_caps(pad);
  if (!caps)
    caps = gst_pad_query_caps(pad, nullptr); /* before the first buffer: what the parser can give */
  const char *name = caps && !gst_caps_is_empty(caps) ? gst_structure_get_name(gst_caps_get_structure(caps, 0)) : "";
  if (is_video && g_str_equal(name, "video/x-h264")) {
    *format = {gstmtx::find_rtp_codec("H264"), gstmtx::kFirstVideoPayloadType};
  } else if (!is_video && g_str_equal(name, "audio/x-opus")) {
    *format = {gstmtx::find_rtp_codec("OPUS"), gstmtx::kFirstAudioPayloadType};
  } else {
    *error = gstmtx::Failure::of_kind(gstmtx::FailureKind::Config,
                                      std::string("WHIP publishing takes H.264 video and Opus audio, not ") +
                                          (*name ? name : "unknown caps") + ": use transport=rtsp");
    return false;
  }
  return true;
}

/* What a user can do when the server refused our offer: MediaMTX's rules for WHIP, and what the
 * server said (the start of its answer). */
void explain_rejection(gstmtx::Failure *failure) {
  const std::size_t body = failure->debug.find(": ");
  if (body != std::string::npos && body + 2 < failure->debug.size())
    failure->message += ": " + failure->debug.substr(body + 2, 200);
  failure->message += ". MediaMTX takes WHIP video only as H.264 constrained baseline (profile-level-id 42001f or "
                      "42e01f, packetization-mode 1) and audio as Opus: keep profile=constrained-baseline for raw "
                      "video, or publish other H.264 over transport=rtsp";
}
}  // namespace

WhipPublisher::WhipPublisher(PublisherConfig config, unsigned generation, gstmtx::EventLoop &loop,
                             gstmtx::HttpClient &http, ConnectedCallback on_connected, FailedCallback on_failed)
    : config_(std::move(config)), generation_(generation), on_connected_(std::move(on_connected)),
      on_failed_(std::move(on_failed)), loop_(loop), http_(http) {}

/* Any thread. After stop() nothing of this publisher is left on the loop. */
WhipPublisher::~WhipPublisher() {
  if (webrtc_ && aux_sender_handler_)
    g_signal_handler_disconnect(webrtc_, aux_sender_handler_);
  {
    std::lock_guard<std::mutex> lk(retransmit_lock_);
    retransmitters_.clear();
  }
  if (last_twcc_)
    gst_structure_free(last_twcc_);
  if (peer_) /* never stopped */
    loop_.run_sync([this] {
      peer_.reset();
    });
  for (GstPad *pad : request_pads_)
    gst_object_unref(pad);
  for (GstElement *e : elements_)
    gst_object_unref(e);
  if (webrtc_)
    gst_object_unref(webrtc_);
}

/* Control thread. */
bool WhipPublisher::start(GstBin *bin, const std::vector<PublisherStream> &streams, gstmtx::Failure *error) {
  std::vector<SendFormat> formats(streams.size());
  for (std::size_t i = 0; i < streams.size(); ++i)
    if (!send_format_for(streams[i].pad, streams[i].is_video, &formats[i], error))
      return false;

  gstmtx::prepare_dtls_default_certificate(); /* before its first DTLS transport: dtls_certificate.h */
  webrtc_ = gst_element_factory_make("webrtcbin", network_element_name(generation_, "webrtcbin").c_str());
  if (!webrtc_) {
    *error = gstmtx::Failure::of_kind(gstmtx::FailureKind::MissingPlugin,
                                      "webrtcbin is missing: install gstreamer1.0-plugins-bad and gstreamer1.0-nice");
    return false;
  }
  gst_object_ref_sink(webrtc_);
  /* max-compat: MediaMTX (pion) refuses the port-0 bundle-only m-lines of max-bundle offers */
  g_object_set(webrtc_, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_COMPAT, nullptr);
  if (config_.retransmission) {
    /* the copies repeat an SRTP index: srtpenc must allow it, or it fails the stream */
    gstmtx::allow_repeated_srtp(webrtc_);
    aux_sender_handler_ = g_signal_connect(webrtc_, "request-aux-sender", G_CALLBACK(make_aux_sender), this);
  }
  gst_bin_add(bin, webrtc_);

  for (std::size_t i = 0; i < streams.size(); ++i) {
    const char *kind = streams[i].is_video ? "video" : "audio";
    GstElement *queue = gst_element_factory_make(
        "queue", network_element_name(generation_, (std::string(kind) + "-queue").c_str()).c_str());
    GstElement *pay = gst_element_factory_make(
        formats[i].codec->payloader, network_element_name(generation_, (std::string(kind) + "-pay").c_str()).c_str());
    if (!queue || !pay) {
      if (queue)
        gst_object_unref(queue);
      if (pay)
        gst_object_unref(pay);
      *error = gstmtx::Failure::of_kind(gstmtx::FailureKind::MissingPlugin,
                                        std::string("element ") + formats[i].codec->payloader +
                                            " is missing: install gstreamer1.0-plugins-good");
      return false;
    }
    gst_object_ref_sink(queue);
    gst_object_ref_sink(pay);
    elements_.push_back(queue);
    if (streams[i].is_video)
      video_queue_ = queue;
    elements_.push_back(pay);
    g_object_set(queue, "max-size-buffers", 0u, "max-size-bytes", 0u, "max-size-time", kQueueMaxTime, nullptr);
    gst_util_set_object_arg(G_OBJECT(queue), "leaky", "downstream");
    g_object_set(pay, "pt", static_cast<guint>(formats[i].payload_type), nullptr);
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(pay), "config-interval"))
      g_object_set(pay, "config-interval", -1, nullptr);
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(pay), "aggregate-mode"))
      gst_util_set_object_arg(G_OBJECT(pay), "aggregate-mode", "zero-latency");
    bool twcc = false;
    if (streams[i].is_video) {
      /* the payloader numbers the packets (all of them: one transport per stream), rtpsession reads
       * the feedback; the offer announces both */
      GstRTPHeaderExtension *ext = gst_rtp_header_extension_create_from_uri(kTwccUri);
      if (ext) {
        gst_rtp_header_extension_set_id(ext, kTwccExtensionId);
        g_signal_emit_by_name(pay, "add-extension", ext);
        gst_object_unref(ext);
        twcc = true;
      } else {
        GST_WARNING("no TWCC header extension (rtpmanager of gst-plugins-good): WHIP adapts on loss only");
      }
    }
    gst_bin_add_many(bin, queue, pay, nullptr);
    gst_element_link(queue, pay);

    /* one sendonly transceiver per stream, with codec preferences so the offer can be made
     * before media has flowed (webrtcbin 1.22 otherwise gives a NULL offer) */
    GstPad *request = gst_element_request_pad_simple(webrtc_, "sink_%u");
    if (!request) {
      *error = gstmtx::Failure::of_kind(gstmtx::FailureKind::Config, "webrtcbin refused a stream");
      return false;
    }
    request_pads_.push_back(request);
    GstWebRTCRTPTransceiver *trans = nullptr;
    g_object_get(request, "transceiver", &trans, nullptr);
    if (trans) {
      g_autoptr(GstCaps) prefs = gstmtx::rtp_codecs_offer_caps({formats[i].codec}, formats[i].payload_type);
      /* a sender offers what it sends: the payloader fills in the stream's own profile and level */
      for (guint n = 0; n < gst_caps_get_size(prefs); ++n)
      {
        GstStructure *pref = gst_caps_get_structure(prefs, n);
        gst_structure_remove_fields(pref, "profile-level-id", "level-asymmetry-allowed", nullptr);
        if (twcc) {
          g_autofree char *extmap = g_strdup_printf("extmap-%u", kTwccExtensionId);
          gst_structure_set(pref, extmap, G_TYPE_STRING, kTwccUri, "rtcp-fb-transport-cc", G_TYPE_BOOLEAN, TRUE,
                            nullptr);
        }
      }
      g_object_set(trans, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, "codec-preferences", prefs,
                   nullptr);
      gst_object_unref(trans);
    }
    g_autoptr(GstPad) pay_src = gst_element_get_static_pad(pay, "src");
    if (twcc)
      twcc_tap_.set_listener([this](const gstmtx::TwccEstimate &estimate) { watch_overflow(estimate); });
    if (twcc)
      twcc_tap_.attach(pay_src);
    g_autoptr(GstPad) queue_sink = gst_element_get_static_pad(queue, "sink");
    if (GST_PAD_LINK_FAILED(gst_pad_link(pay_src, request)) ||
        GST_PAD_LINK_FAILED(gst_pad_link(streams[i].pad, queue_sink))) {
      *error = gstmtx::Failure::of_kind(gstmtx::FailureKind::Config, "cannot link a stream into webrtcbin");
      return false;
    }
  }

  gstmtx::SessionConfig session;
  session.endpoint = config_.url;
  session.kind = gstmtx::HttpEndpointKind::Whip;
  auto endpoint = gstmtx::parse_webrtc_http_location(config_.url, gstmtx::HttpEndpointKind::Whip);
  session.stream_path = endpoint ? endpoint->stream_path : "";
  session.auth_token = config_.auth_token;
  session.user = config_.user;
  session.password = config_.password;
  gstmtx::PeerConfig peer_config;
  peer_config.rtcp_silence = kRtcpSilence;
  peer_config.rtcp_from_connect = true;

  gstmtx::WebrtcPeer::Events events;
  const unsigned generation = generation_;
  events.connected = [this, generation] {
    if (on_connected_)
      on_connected_(generation);
  };
  events.failed = [this, generation](gstmtx::Failure failure) {
    if (failure.kind == gstmtx::FailureKind::Rejected)
      explain_rejection(&failure);
    if (on_failed_)
      on_failed_(generation, std::move(failure));
  };
  loop_.run_sync([&] {
    peer_ = std::make_unique<gstmtx::WebrtcPeer>(loop_, http_, webrtc_, session, peer_config, events);
  });
  /* downstream first */
  gst_element_sync_state_with_parent(webrtc_);
  for (auto it = elements_.rbegin(); it != elements_.rend(); ++it)
    gst_element_sync_state_with_parent(*it);
  loop_.post([this] {
    if (peer_)
      peer_->start();
  });
  return true;
}

namespace {
/* a repair keyframe, and retransmitted packets, wait for the bottleneck's queue to be under this
 * (ms): into a queue still that full they would be dropped too */
constexpr double kRepairQueueMs = 80.0;
/* a TWCC feedback with the queue above this (ms), or the delay trend overusing: the rate
 * adaptation's tick runs at once (Publisher::set_congestion_callback) */
constexpr double kCongestedQueueMs = 40.0;
}  // namespace

/* webrtcbin places the element between its rtprtxsend (which answers only with RTX, which
 * MediaMTX does not negotiate, and drops the requests it cannot serve) and rtpsession, whose
 * retransmission requests reach this element's src pad first. */
GstElement *WhipPublisher::make_aux_sender(GstElement *, GObject *, WhipPublisher *self) {
  GstElement *identity = gst_element_factory_make("identity", nullptr);
  if (!identity)
    return nullptr;
  auto retransmitter = std::make_unique<gstmtx::RtpRetransmitter>();
  g_autoptr(GstPad) src = gst_element_get_static_pad(identity, "src");
  retransmitter->attach(src);
  std::lock_guard<std::mutex> lk(self->retransmit_lock_);
  self->retransmitters_.push_back(std::move(retransmitter));
  return identity;
}

/* rtpsession's RTCP thread, at each TWCC feedback: while the bottleneck's queue is as deep as
 * when a repair keyframe waits, losses are its overflow's: no copies (repair_after_loss). */
void WhipPublisher::watch_overflow(const gstmtx::TwccEstimate &estimate) {
  const bool overflow = estimate.have_delay && estimate.queue_ms > kRepairQueueMs;
  if (overflow)
    full_queue_send_us_.store(estimate.newest_send_us);
  const bool congested = estimate.trend == gstmtx::DelayTrend::Overuse ||
                         (estimate.have_delay && estimate.queue_ms > kCongestedQueueMs);
  each_retransmitter([overflow](gstmtx::RtpRetransmitter &r) { r.set_overflow(overflow); });
  std::lock_guard<std::mutex> lk(retransmit_lock_);
  if (congested && on_congestion_)
    on_congestion_();
}

void WhipPublisher::set_congestion_callback(CongestionCallback callback) {
  std::lock_guard<std::mutex> lk(retransmit_lock_);
  on_congestion_ = std::move(callback);
}

void WhipPublisher::each_retransmitter(const std::function<void(gstmtx::RtpRetransmitter &)> &fn) const {
  std::lock_guard<std::mutex> lk(retransmit_lock_);
  for (const auto &r : retransmitters_)
    fn(*r);
}

gstmtx::RetransmitCounts WhipPublisher::retransmit_counts() const {
  gstmtx::RetransmitCounts total;
  each_retransmitter([&total](gstmtx::RtpRetransmitter &r) {
    const gstmtx::RetransmitCounts c = r.counts();
    total.requests += c.requests;
    total.resent += c.resent;
    total.unrepaired += c.unrepaired;
    total.dropped += c.dropped;
  });
  return total;
}

void WhipPublisher::add_stats(GstStructure *stats) const {
  const gstmtx::RetransmitCounts c = retransmit_counts();
  gst_structure_set(stats, "retransmission-requests", G_TYPE_UINT64, static_cast<guint64>(c.requests),
                    "packets-retransmitted", G_TYPE_UINT64, static_cast<guint64>(c.resent), nullptr);
}

namespace {
/* a typical video RTP packet on the wire (webrtcbin's MTU is 1200: full packets, and the partly
 * filled last one of each frame), to turn TWCC's per-packet delay gradient into one per second */
constexpr double kVideoPacketBytes = 1000.0;
}  // namespace

namespace {
/* per-packet feedback older than this: the aggregate twcc-stats take over again */
constexpr gint64 kPacketFeedbackStaleUs = 1000 * 1000;
/* a loss episode is over when the packets sent this long after the last lost one all arrived */
constexpr gint64 kLossOverUs = 300 * 1000;
/* at most one repair keyframe this often */
constexpr gint64 kRepairIntervalUs = 1000 * 1000;
/* and at least this long with a drained queue */
constexpr gint64 kLossSettleUs = 100 * 1000;
/* a server that answers loss with NACKs does so within this (pion: every 100 ms) */
constexpr gint64 kNackWaitUs = 400 * 1000;
/* retransmissions may add this share of the delivered rate (and at least kMinRetransmitKbps) */
constexpr double kRetransmitShare = 0.5;
constexpr int kMinRetransmitKbps = 100;
/* a repair keyframe waits for the bottleneck's queue to be under kRepairQueueMs for at most this
 * long after the last loss */
constexpr gint64 kRepairWaitUs = 1000 * 1000;
}  // namespace

/* Control thread. After lost packets the viewers' pictures stay broken until the next keyframe
 * (MediaMTX drops its readers' PLIs), unless the packets come again: MediaMTX asks for them
 * (NACK) and waits for them up to 64 packets (its reorder buffer), and the retransmitters answer
 * (gst/rtp_retransmission.h). That works for a loss on a link with room (Wi-Fi's), not for the
 * overflow of a bottleneck: copies would be dropped with the rest until the queue has drained,
 * and by then the server has given up on them (64 packets are ~0.6 s at 1 Mbit/s); while it
 * overflows no copies are sent (watch_overflow). So a keyframe is asked for
 * - for a loss TWCC reports of a packet sent while the bottleneck's queue was full (or until
 *   kNackWaitUs after), or from a server that sends no NACKs (none within kNackWaitUs), or with
 *   retransmission off;
 * - for packets lost for good: a request the retransmitter could not serve, or a receiver report
 *   counting lost packets (the server counts the packets it gave up on).
 * Either way once the loss has stopped: a keyframe into a bottleneck still dropping would break
 * too. The keyframe makes older packets useless: the retransmitters forget them. */
void WhipPublisher::repair_after_loss(const gstmtx::TwccEstimate &estimate, gint64 now_us) {
  const gstmtx::RetransmitCounts counts = retransmit_counts();
  const bool nacked = counts.requests > 0;
  if (counts.requests != requests_seen_)
    GST_DEBUG("retransmission: %" G_GUINT64_FORMAT " packets asked for, %" G_GUINT64_FORMAT " sent again, %"
              G_GUINT64_FORMAT " lost for good, %" G_GUINT64_FORMAT " not sent (overflow) (session totals)",
              counts.requests, counts.resent, counts.unrepaired, counts.dropped);
  requests_seen_ = counts.requests;
  const std::int64_t lost = estimate.last_lost_send_us;
  if (lost >= 0 && lost > repaired_loss_send_us_) {
    const std::int64_t full = full_queue_send_us_.load();
    const bool overflow = full >= 0 && lost <= full + kNackWaitUs;
    if (!config_.retransmission || overflow)
      loss_pending_send_us_ = lost;
    else if (!nacked)
      unanswered_loss_send_us_ = lost; /* repaired by copies, if the server asks for them */
  }
  if (nacked)
    unanswered_loss_send_us_ = -1;
  else if (unanswered_loss_send_us_ >= 0 && estimate.newest_send_us - unanswered_loss_send_us_ >= kNackWaitUs)
    loss_pending_send_us_ = std::max(loss_pending_send_us_, std::exchange(unanswered_loss_send_us_, -1));
  if (nacked && (counts.unrepaired > unrepaired_seen_ || server_lost_)) {
    GST_DEBUG("retransmission: %" G_GUINT64_FORMAT " packets lost for good, the server %s",
              counts.unrepaired - unrepaired_seen_, server_lost_ ? "counted lost packets" : "did not count any yet");
    loss_pending_send_us_ = std::max(loss_pending_send_us_, estimate.newest_send_us);
  }
  unrepaired_seen_ = counts.unrepaired;
  server_lost_ = false;
  if (loss_pending_send_us_ < 0 || (last_repair_us_ && now_us - last_repair_us_ < kRepairIntervalUs) ||
      !video_queue_)
    return;
  /* The loss is over when the bottleneck's queue has room again (a keyframe into a queue still full
   * is lost too) and the packets sent since the last lost one arrived; without a delay estimate,
   * once they did for kLossOverUs; a queue standing above kRepairQueueMs for kRepairWaitUs is the
   * link's own delay, not the overflow's. */
  const gint64 since_loss_us = estimate.newest_send_us - loss_pending_send_us_;
  const bool room = estimate.have_delay ? estimate.queue_ms <= kRepairQueueMs : since_loss_us >= kLossOverUs;
  if (since_loss_us < kLossSettleUs || (!room && since_loss_us < kRepairWaitUs))
    return;
  GST_DEBUG("packets were lost for good, the loss has stopped: asking for a keyframe");
  g_autoptr(GstPad) src = gst_element_get_static_pad(video_queue_, "src");
  gstmtx::KeyframeGate::request(src);
  each_retransmitter([](gstmtx::RtpRetransmitter &r) { r.forget(); });
  repaired_loss_send_us_ = loss_pending_send_us_;
  loss_pending_send_us_ = -1;
  last_repair_us_ = now_us;
}

/* Control thread: the per-packet estimate (gst/twcc_estimator.h) when rtpsession delivers the
 * packets of TWCC feedback (false: none lately; the caller falls back to twcc-stats). */
bool WhipPublisher::read_packet_feedback(gstmtx::RateFeedback *feedback) {
  const gint64 now_us = g_get_monotonic_time();
  gstmtx::TwccEstimate estimate;
  if (twcc_tap_.read(&estimate)) {
    last_packet_feedback_us_ = now_us;
  } else if (!last_packet_feedback_us_ || now_us - last_packet_feedback_us_ > kPacketFeedbackStaleUs) {
    return false;
  } else {
    return true; /* nothing new since the last tick: the video queue's delay alone */
  }
  if (estimate.trend != last_trend_)
    GST_DEBUG("TWCC per packet: %s (trend %.0f ms/s, threshold %.0f), queue %.1f ms (standing %.1f), capacity %d "
              "kbit/s, delivered %d of %d kbit/s, loss %.3f",
              gstmtx::delay_trend_name(estimate.trend), estimate.trend_ms_per_s, estimate.threshold_ms_per_s,
              estimate.queue_ms, estimate.standing_queue_ms, estimate.capacity_kbps, estimate.delivered_kbps,
              estimate.sent_kbps, estimate.loss);
  last_trend_ = estimate.trend;
  repair_after_loss(estimate, now_us);
  {
    const int base = estimate.delivered_kbps > 0 ? estimate.delivered_kbps : estimate.sent_kbps;
    const int budget = std::max(kMinRetransmitKbps, static_cast<int>(kRetransmitShare * base));
    each_retransmitter([budget](gstmtx::RtpRetransmitter &r) { r.set_budget_kbps(budget); });
  }
  if (estimate.have_delay) {
    feedback->queuing_delay_ms += estimate.standing_queue_ms;
    feedback->queue_now_ms = feedback->queuing_delay_ms - estimate.standing_queue_ms + estimate.queue_ms;
  }
  feedback->delay_overuse = estimate.trend == gstmtx::DelayTrend::Overuse;
  feedback->capacity_kbps = estimate.capacity_kbps;
  feedback->delivered_kbps = estimate.delivered_kbps;
  feedback->sent_kbps = estimate.sent_kbps;
  if (estimate.loss >= 0)
    feedback->loss = std::max(feedback->loss, estimate.loss);
  return true;
}

/* Control thread. */
bool WhipPublisher::read_feedback(gstmtx::RateFeedback *feedback) {
  if (!webrtc_)
    return false;
  /* webrtcbin sends no faster than its socket takes: what the uplink cannot carry waits in the
   * video queue in front of it, before TWCC numbers the packets */
  feedback->queuing_delay_ms = queue_delay_ms(video_queue_);
  bool have = true;
  g_autoptr(GstElement) rtpbin = gst_bin_get_by_name(GST_BIN(webrtc_), "rtpbin");
  if (!rtpbin)
    return have;
  double loss = 0;
  if (read_receiver_report(rtpbin, 0, &reports_, &loss)) { /* video: the first stream, session 0 */
    feedback->loss = loss;
    server_lost_ = server_lost_ || loss > 0;
    have = true;
  }
  if (read_packet_feedback(feedback))
    return true;
  GstElement *session = nullptr;
  g_signal_emit_by_name(rtpbin, "get-session", 0u, &session);
  if (!session)
    return have;
  GstStructure *twcc = nullptr;
  g_object_get(session, "twcc-stats", &twcc, nullptr);
  gst_object_unref(session);
  if (!twcc || (last_twcc_ && gst_structure_is_equal(twcc, last_twcc_))) {
    if (twcc)
      gst_structure_free(twcc);
    return have;
  }
  if (!last_twcc_) {
    g_autofree char *text = gst_structure_to_string(twcc);
    GST_DEBUG("first TWCC feedback: %s", text);
  }
  if (last_twcc_)
    gst_structure_free(last_twcc_);
  last_twcc_ = twcc;
  const gint64 now_us = g_get_monotonic_time();
  const gint64 since_us = last_twcc_us_ ? now_us - last_twcc_us_ : 0;
  last_twcc_us_ = now_us;
  guint sent_bps = 0, recv_bps = 0;
  double loss_pct = -1;
  gint64 dod_ns = 0;
  const bool have_dod = gst_structure_get_int64(twcc, "avg-delta-of-delta", &dod_ns);
  gst_structure_get_uint(twcc, "bitrate-sent", &sent_bps);
  gst_structure_get_uint(twcc, "bitrate-recv", &recv_bps);
  gst_structure_get_double(twcc, "packet-loss-pct", &loss_pct);
  if (sent_bps == 0 || recv_bps == 0)
    return have;
  const double sent_kbps = sent_bps / 1000.0, recv_kbps = recv_bps / 1000.0;
  /* The rates are those of the same packets over their send and arrival spans: a queue shows as
   * arrival slower than sending (a shortfall, which the controller judges over about a second)
   * and, once the bottleneck's buffer is full, as loss. Earlier, as the delay gradient:
   * avg-delta-of-delta is the mean growth of the one-way delay from one packet to the next over
   * the window, so times the packet rate it is how fast the bottleneck's queue grows (ms/s);
   * integrated, the queue itself, added to what waits in front of webrtcbin. */
  if (have_dod) {
    const double packets_per_s = recv_bps / (8.0 * kVideoPacketBytes);
    const double gradient = static_cast<double>(dod_ns) / GST_MSECOND * packets_per_s;
    delay_queue_.update(gradient, std::chrono::milliseconds(since_us / 1000));
    feedback->queuing_delay_ms += delay_queue_.queuing_ms();
  }
  feedback->sent_kbps = static_cast<int>(sent_kbps);
  feedback->delivered_kbps = static_cast<int>(recv_kbps);
  if (loss_pct >= 0)
    feedback->loss = std::max(feedback->loss, loss_pct / 100.0);
  return true;
}

/* Control thread (the loop's), or the application thread once the element's control tasks have
 * stopped: DELETE the WHIP session, then take the elements down. On the application thread (the
 * element stopping) the DELETE is waited for, bounded; on the loop thread it completes there
 * later, while the next attempt starts. */
void WhipPublisher::stop(GstBin *bin, bool graceful) {
  (void)graceful; /* a broken session is deleted too, so none lingers on the server */
  twcc_tap_.detach();
  each_retransmitter([](gstmtx::RtpRetransmitter &r) { r.detach(); });
  std::unique_ptr<gstmtx::WebrtcPeer> peer;
  loop_.run_sync([&] { peer = std::move(peer_); });
  if (peer && loop_.on_loop_thread()) {
    peer->release();
    peer.reset();
  } else if (peer) {
    peer->release_sync();
    loop_.run_sync([&] { peer.reset(); });
  }
  /* webrtcbin before the queues: deactivating its pads wakes a queue thread blocked inside it
   * (a full send queue), which the queue's own NULL would otherwise wait for. */
  if (webrtc_) {
    gst_element_set_locked_state(webrtc_, TRUE);
    gst_element_set_state(webrtc_, GST_STATE_NULL);
  }
  /* then the queues and payloaders, downstream first as a bin does */
  for (auto it = elements_.rbegin(); it != elements_.rend(); ++it) {
    gst_element_set_locked_state(*it, TRUE);
    gst_element_set_state(*it, GST_STATE_NULL);
  }
  for (std::size_t i = 0; i < request_pads_.size(); ++i)
    gst_element_release_request_pad(webrtc_, request_pads_[i]);
  for (GstElement *e : elements_)
    gst_bin_remove(bin, e);
  if (webrtc_)
    gst_bin_remove(bin, webrtc_);
}

}  // namespace mediamtxsink
