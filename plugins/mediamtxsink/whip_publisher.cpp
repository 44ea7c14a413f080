#include "whip_publisher.h"

#include <gst/webrtc/webrtc.h>

#include "codec_table.h"
#include "mediamtx_url.h"

GST_DEBUG_CATEGORY_EXTERN(gst_mediamtx_sink_debug);
#define GST_CAT_DEFAULT gst_mediamtx_sink_debug

namespace mediamtxsink {

namespace {
constexpr guint64 kQueueMaxTime = 200 * GST_MSECOND;
constexpr gint64 kRtcpSilenceUs = 4 * G_USEC_PER_SEC;

/* The payloader and RTP caps for what the stable half outputs. */
struct SendFormat {
  const gstmtx::RtpCodec *codec;
  int payload_type;
};

bool send_format_for(GstPad *pad, bool is_video, SendFormat *format, std::string *error) {
  g_autoptr(GstCaps) caps = gst_pad_get_current_caps(pad);
  if (!caps)
    caps = gst_pad_query_caps(pad, nullptr); /* before the first buffer: what the parser can give */
  const char *name = caps && !gst_caps_is_empty(caps) ? gst_structure_get_name(gst_caps_get_structure(caps, 0)) : "";
  if (is_video && g_str_equal(name, "video/x-h264")) {
    *format = {gstmtx::find_rtp_codec("H264"), gstmtx::kFirstVideoPayloadType};
  } else if (!is_video && g_str_equal(name, "audio/x-opus")) {
    *format = {gstmtx::find_rtp_codec("OPUS"), gstmtx::kFirstAudioPayloadType};
  } else {
    *error = std::string("WHIP publishing takes H.264 video and Opus audio, not ") + (*name ? name : "unknown caps") +
             ": use transport=rtsp";
    return false;
  }
  return true;
}
}  // namespace

WhipPublisher::WhipPublisher(PublisherConfig config, unsigned generation, ConnectedCallback on_connected,
                             FailedCallback on_failed)
    : config_(std::move(config)), generation_(generation), on_connected_(std::move(on_connected)),
      on_failed_(std::move(on_failed)) {}

WhipPublisher::~WhipPublisher() {
  if (rtpbin_) {
    if (ssrc_active_id_)
      g_signal_handler_disconnect(rtpbin_, ssrc_active_id_);
    gst_object_unref(rtpbin_);
  }
  if (loop_)
    loop_->run_sync([this] {
      loop_->cancel(liveness_timer_);
      peer_.reset();
      http_.reset();
    });
  loop_.reset();
  for (GstPad *pad : request_pads_)
    gst_object_unref(pad);
  for (GstElement *e : elements_)
    gst_object_unref(e);
  if (webrtc_)
    gst_object_unref(webrtc_);
}

/* Control thread. */
bool WhipPublisher::start(GstBin *bin, const std::vector<PublisherStream> &streams, std::string *error) {
  std::vector<SendFormat> formats(streams.size());
  for (std::size_t i = 0; i < streams.size(); ++i)
    if (!send_format_for(streams[i].pad, streams[i].is_video, &formats[i], error))
      return false;

  webrtc_ = gst_element_factory_make("webrtcbin", network_element_name(generation_, "webrtcbin").c_str());
  if (!webrtc_) {
    *error = "webrtcbin is missing: install gstreamer1.0-plugins-bad and gstreamer1.0-nice";
    return false;
  }
  gst_object_ref_sink(webrtc_);
  /* max-compat: MediaMTX (pion) refuses the port-0 bundle-only m-lines of max-bundle offers */
  g_object_set(webrtc_, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_COMPAT, nullptr);
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
      *error = std::string("element ") + formats[i].codec->payloader + " is missing";
      return false;
    }
    gst_object_ref_sink(queue);
    gst_object_ref_sink(pay);
    elements_.push_back(queue);
    elements_.push_back(pay);
    g_object_set(queue, "max-size-buffers", 0u, "max-size-bytes", 0u, "max-size-time", kQueueMaxTime, nullptr);
    gst_util_set_object_arg(G_OBJECT(queue), "leaky", "downstream");
    g_object_set(pay, "pt", static_cast<guint>(formats[i].payload_type), nullptr);
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(pay), "config-interval"))
      g_object_set(pay, "config-interval", -1, nullptr);
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(pay), "aggregate-mode"))
      gst_util_set_object_arg(G_OBJECT(pay), "aggregate-mode", "zero-latency");
    gst_bin_add_many(bin, queue, pay, nullptr);
    gst_element_link(queue, pay);

    /* one sendonly transceiver per stream, with codec preferences so the offer can be made
     * before media has flowed (webrtcbin 1.22 otherwise gives a NULL offer) */
    GstPad *request = gst_element_request_pad_simple(webrtc_, "sink_%u");
    if (!request) {
      *error = "webrtcbin refused a stream";
      return false;
    }
    request_pads_.push_back(request);
    GstWebRTCRTPTransceiver *trans = nullptr;
    g_object_get(request, "transceiver", &trans, nullptr);
    if (trans) {
      g_autoptr(GstCaps) prefs = gstmtx::rtp_codecs_offer_caps({formats[i].codec}, formats[i].payload_type);
      /* a sender offers what it sends: the payloader fills in the stream's own profile and level */
      for (guint n = 0; n < gst_caps_get_size(prefs); ++n)
        gst_structure_remove_fields(gst_caps_get_structure(prefs, n), "profile-level-id", "level-asymmetry-allowed",
                                    nullptr);
      g_object_set(trans, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, "codec-preferences", prefs,
                   nullptr);
      gst_object_unref(trans);
    }
    g_autoptr(GstPad) pay_src = gst_element_get_static_pad(pay, "src");
    g_autoptr(GstPad) queue_sink = gst_element_get_static_pad(queue, "sink");
    if (GST_PAD_LINK_FAILED(gst_pad_link(pay_src, request)) ||
        GST_PAD_LINK_FAILED(gst_pad_link(streams[i].pad, queue_sink))) {
      *error = "cannot link a stream into webrtcbin";
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

  loop_ = std::make_unique<gstmtx::EventLoop>("whip");
  gstmtx::HttpClientConfig http_config;
  http_config.user_agent = config_.user_agent.empty() ? "gst-mediamtx" : config_.user_agent;
  http_ = std::make_unique<gstmtx::HttpClient>(*loop_, http_config);

  gstmtx::WebrtcPeer::Events events;
  const unsigned generation = generation_;
  events.connected = [this, generation] {
    *last_rtcp_us_ = g_get_monotonic_time();
    watch_liveness();
    if (on_connected_)
      on_connected_(generation);
  };
  events.failed = [this, generation](gstmtx::SessionError e) {
    if (on_failed_)
      on_failed_(generation, e.message, e.debug, e.fatal());
  };
  loop_->run_sync([&] {
    peer_ = std::make_unique<gstmtx::WebrtcPeer>(*loop_, *http_, webrtc_, session, peer_config, events);
  });
  rtpbin_ = gst_bin_get_by_name(GST_BIN(webrtc_), "rtpbin");
  if (rtpbin_) {
    auto *last = new std::shared_ptr<std::atomic<gint64>>(last_rtcp_us_);
    ssrc_active_id_ = g_signal_connect_data(
        rtpbin_, "on-ssrc-active",
        G_CALLBACK(+[](GstElement *, guint, guint, gpointer data) {
          **static_cast<std::shared_ptr<std::atomic<gint64>> *>(data) = g_get_monotonic_time();
        }),
        last, [](gpointer data, GClosure *) { delete static_cast<std::shared_ptr<std::atomic<gint64>> *>(data); },
        GConnectFlags(0));
  }

  /* downstream first */
  gst_element_sync_state_with_parent(webrtc_);
  for (auto it = elements_.rbegin(); it != elements_.rend(); ++it)
    gst_element_sync_state_with_parent(*it);
  loop_->post([this] {
    if (peer_)
      peer_->start();
  });
  return true;
}

/* Loop thread, from the connection on. */
void WhipPublisher::watch_liveness() {
  liveness_timer_ = loop_->schedule(std::chrono::milliseconds(500), [this] {
    liveness_timer_ = 0;
    if (!peer_)
      return;
    if (g_get_monotonic_time() - last_rtcp_us_->load() > kRtcpSilenceUs) {
      if (on_failed_)
        on_failed_(generation_, "no RTCP from the server for " + std::to_string(kRtcpSilenceUs / 1000) + " ms", "",
                   false);
      return;
    }
    watch_liveness();
  });
}

/* Control thread: DELETE the WHIP session (bounded), then take the elements down. */
void WhipPublisher::stop(GstBin *bin, bool graceful) {
  (void)graceful; /* a broken session is deleted too, so none lingers on the server */
  std::unique_ptr<gstmtx::WebrtcPeer> peer;
  if (loop_)
    loop_->run_sync([&] {
      loop_->cancel(liveness_timer_);
      liveness_timer_ = 0;
      peer = std::move(peer_);
    });
  if (peer) {
    peer->release_sync();
    loop_->run_sync([&] { peer.reset(); });
  }
  /* Downstream first, as a bin does: webrtcbin before the queues and payloaders. A queue thread can
   * be blocked inside webrtcbin (its sinks wait for preroll once the pipeline is PAUSED, holding
   * rtpbin's lock on the way); stopping the queue's task first waited for that thread forever
   * (found by Valgrind: test_publish_whip hung in set_state(NULL)). */
  if (webrtc_) {
    gst_element_set_locked_state(webrtc_, TRUE);
    gst_element_set_state(webrtc_, GST_STATE_NULL);
  }
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
