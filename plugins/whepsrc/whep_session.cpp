/* gst-mediamtx: whepsrc's WebRTC sessions.
 *
 * One session is one webrtcbin with recvonly transceivers driven through the WHEP exchange by a
 * gstmtx::WebrtcPeer. Its failures (HTTP outcome, ICE/DTLS, the server's RTCP gone silent, no media
 * for `timeout`, a child's error) go to the ReconnectController, which tears the session down and
 * starts the next one; the hooks below add what is whepsrc's own: the HLS fallback after
 * hls-fallback-attempts failures, and WebRTC tried every max-retry-delay for as long as HLS plays.
 * Everything here runs on the control thread unless said otherwise.
 */
#include "whepsrc_private.h"

#include "dtls_certificate.h"
#include "live_schedule.h"

#include <gst/sdp/sdp.h>

#include <algorithm>

namespace whepsrc {

static void watch_media(GstMtxWhepSrc *self, unsigned session);

/* rtpjitterbuffer's rtx-next-seqnum (on by default) expects the packet after the newest one at an
 * estimated time and, once it is later than that by the latency, requests it and calls it lost;
 * when it then arrives it is dropped as too late. A frame's first packet is often that late (encode
 * time varies from frame to frame), so at small latencies most pictures broke until the next
 * keyframe (docs/benchmarks.md, latency 0 and 5). Retransmissions are requested for real gaps
 * only.
 * At its start the jitter buffer holds the first packet for its whole latency (a reordered packet
 * could still come before it). A new viewer's first picture is often in that window (the
 * publisher's forced keyframe follows the first delta frames by a few ms, docs/benchmarks.md): it
 * starts instead once kFaststartPackets packets came in sequence.
 * After a network stall it times the backlog and the frames after it from the stall's late
 * packet, ~0.7 s behind live for up to seconds: gstmtx::LiveSchedule times a packet held longer
 * than the latency (at least kMinMaxAhead) beyond its arrival at its arrival, and the viewer is
 * live again at once. A queue's spike (a packet later than the latency) would make it start over
 * the same way, and keep the spike's delay for a second or more after the queue drained:
 * gstmtx::SpikeGuard keeps its schedule, and the late frames are shown as they come
 * (live_schedule.h). Called from rtpbin's streaming thread; `data`: the latency in ms. */
constexpr GstClockTime kMinMaxAhead = 100 * GST_MSECOND; /* above the jitter buffer's smoothing */
static void on_new_jitterbuffer(GstElement *, GstElement *jitterbuffer, guint, guint, gpointer data) {
  GObjectClass *klass = G_OBJECT_GET_CLASS(jitterbuffer);
  if (g_object_class_find_property(klass, "rtx-next-seqnum"))
    g_object_set(jitterbuffer, "rtx-next-seqnum", FALSE, nullptr);
  if (g_object_class_find_property(klass, "faststart-min-packets"))
    g_object_set(jitterbuffer, "faststart-min-packets", kFaststartPackets, nullptr);
  const GstClockTime latency = GPOINTER_TO_UINT(data) * GST_MSECOND;
  gstmtx::attach_live_schedule(jitterbuffer, latency, std::max(latency, kMinMaxAhead));
}

/* How many streams the answer says the server will send, to signal no-more-pads once they are all
 * out. */
static int streams_in_answer(const std::string &answer_sdp) {
  GstSDPMessage *sdp = nullptr;
  int streams = 0;
  if (gst_sdp_message_new_from_text(answer_sdp.c_str(), &sdp) == GST_SDP_OK) {
    for (guint i = 0; i < gst_sdp_message_medias_len(sdp); ++i) {
      const GstSDPMedia *m = gst_sdp_message_get_media(sdp, i);
      if (gst_sdp_media_get_port(m) != 0 && !gst_sdp_media_get_attribute_val(m, "inactive") &&
          !gst_sdp_media_get_attribute_val(m, "recvonly"))
        ++streams;
    }
  }
  if (sdp) /* allocated even when parsing fails (e.g. an empty text) */
    gst_sdp_message_free(sdp);
  return streams;
}

/* A webrtcbin with one recvonly transceiver per media we can receive; nullptr and *failure when
 * none can be made. */
static GstElement *make_webrtcbin(const Settings &s, gstmtx::Failure *failure) {
  gstmtx::prepare_dtls_default_certificate(); /* before its first DTLS transport: dtls_certificate.h */
  GstElement *webrtc = gst_element_factory_make("webrtcbin", nullptr);
  if (!webrtc) {
    *failure = gstmtx::Failure::of_kind(gstmtx::FailureKind::MissingPlugin,
                                        "webrtcbin is missing: install gstreamer1.0-plugins-bad and "
                                        "gstreamer1.0-nice");
    return nullptr;
  }
  g_object_set(webrtc, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_COMPAT, "latency", s.latency, nullptr);
  /* Retransmission requests (NACK) only when the jitter buffer can wait for the answer: at
   * latency 0 it passes packets on at once and calls a gap lost at once, so a retransmission
   * always comes too late and is dropped. */
  const bool nack = s.latency > 0;
  if (GstElement *rtpbin = gst_bin_get_by_name(GST_BIN(webrtc), "rtpbin")) {
    g_signal_connect(rtpbin, "new-jitterbuffer", G_CALLBACK(on_new_jitterbuffer), GUINT_TO_POINTER(s.latency));
    gst_object_unref(rtpbin);
  }
  auto add_transceiver = [&](const std::vector<const gstmtx::RtpCodec *> &codecs, bool video) -> int {
    std::vector<const gstmtx::RtpCodec *> usable;
    for (auto *c : codecs)
      if (gstmtx::rtp_codec_receivable(*c))
        usable.push_back(c);
    if (usable.empty())
      return 0;
    g_autoptr(GstCaps) caps = gstmtx::rtp_codecs_offer_caps(
        usable, video ? gstmtx::kFirstVideoPayloadType : gstmtx::kFirstAudioPayloadType);
    GstWebRTCRTPTransceiver *trans = nullptr;
    g_signal_emit_by_name(webrtc, "add-transceiver", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, caps, &trans);
    if (!trans)
      return 0;
    if (video && nack)
      g_object_set(trans, "do-nack", TRUE, nullptr); /* retransmissions: worth it for pictures */
    gst_object_unref(trans);
    return 1;
  };
  int transceivers = add_transceiver(gstmtx::parse_codec_list(s.video_codecs, "video"), true);
  if (s.audio)
    transceivers += add_transceiver(gstmtx::parse_codec_list(s.audio_codecs, "audio"), false);
  if (transceivers == 0) {
    gst_object_unref(webrtc);
    *failure = gstmtx::Failure::of_kind(gstmtx::FailureKind::MissingPlugin,
                                        "None of the requested codecs can be received: their depayloaders "
                                        "are missing");
    return nullptr;
  }
  return webrtc;
}

/* the first receivable codec of a preference list, or nullptr */
static const gstmtx::RtpCodec *first_receivable(const std::string &list, const char *media) {
  for (const gstmtx::RtpCodec *c : gstmtx::parse_codec_list(list, media))
    if (gstmtx::rtp_codec_receivable(*c))
      return c;
  return nullptr;
}

void preload_receive_plugins(GstMtxWhepSrc *self, const Settings &s) {
  static std::atomic<bool> preloaded[2]; /* without, with the decoder */
  const gstmtx::RtpCodec *video = first_receivable(s.video_codecs, "video");
  const gstmtx::RtpCodec *audio = s.audio ? first_receivable(s.audio_codecs, "audio") : nullptr;
  if ((!video && !audio) || preloaded[s.decode].exchange(true) || self->priv->preload.joinable())
    return;
  const bool decode = s.decode;
  self->priv->preload = std::thread([video, audio, decode] {
    const gint64 start = g_get_monotonic_time();
    /* first what the session itself makes, in the order it makes it (webrtcbin's transport:
     * dtls, srtp, nice; rtpbin and its RTX/FEC/storage elements), so that it never waits behind
     * the decoder's plugin for GStreamer's plugin loading lock */
    gstmtx::load_element_plugins({"webrtcbin", "dtlssrtpenc", "srtpenc", "nicesrc", "rtpbin", "rtpstorage"});
    const gint64 session = g_get_monotonic_time();
    int loaded = 0;
    for (const gstmtx::RtpCodec *codec : {video, audio})
      if (codec)
        loaded += gstmtx::load_receive_plugins(*codec, decode);
    GST_DEBUG("preloaded the session's plugins in %.1f ms, %d receive elements (%s%s%s) in %.1f ms",
              (session - start) / 1000.0, loaded, video ? video->name : "", audio ? " " : "",
              audio ? audio->name : "", (g_get_monotonic_time() - session) / 1000.0);
  });
}

/* Creates a webrtcbin with recvonly transceivers and starts the WHEP exchange. The controller's
 * `start` hook. */
void start_session(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  gstmtx::Headers extra;
  const Settings s = settings_snapshot(self, &extra);
  bool on_hls;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    on_hls = priv->hls != nullptr;
  }
  /* while HLS plays, the state stays "fallback" until WebRTC is back */
  const unsigned session =
      priv->controller.begin_session("connecting to " + gstmtx::redact_url(priv->endpoint->url), !on_hls);

  gstmtx::Failure failure;
  GstElement *webrtc = make_webrtcbin(s, &failure);
  if (!webrtc) {
    priv->controller.handle_failure(session, std::move(failure));
    return;
  }
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    priv->generation++;
    priv->exposed_this_generation = 0;
    priv->webrtc = GST_ELEMENT(gst_object_ref(webrtc));
    priv->attempt_started_us = g_get_monotonic_time();
  }
  g_signal_connect(webrtc, "pad-added", G_CALLBACK(on_webrtc_pad_added), self);
  gst_bin_add(GST_BIN(self), webrtc);
  gst_element_sync_state_with_parent(webrtc);

  gstmtx::SessionConfig config;
  config.endpoint = priv->endpoint->url;
  config.kind = gstmtx::HttpEndpointKind::Whep;
  config.stream_path = priv->endpoint->stream_path;
  config.auth_token = s.auth_token;
  config.user = !s.user_id.empty() ? s.user_id : priv->endpoint->user;
  config.password = !s.user_id.empty() ? s.user_pw : priv->endpoint->password;
  config.extra_headers = extra;
  config.request_timeout = gstmtx::Millis(std::min<guint>(s.timeout, 10000));

  gstmtx::PeerConfig peer;
  peer.trickle = s.trickle;
  peer.use_link_headers = s.use_link_headers;
  peer.stun_server = s.stun_server;
  peer.turn_server = s.turn_server;
  peer.ice_transport_policy = s.ice_transport_policy;
  /* a dead server is noticed from its RTCP going quiet (MediaMTX reports every second, also while
   * its publisher is quiet), well before the no-media `timeout` */
  peer.rtcp_silence = gstmtx::Millis(kRtcpSilenceMs);
  peer.rtcp_from_connect = false;
  /* a viewer's media arrives in bursts (a keyframe is tens of packets at once); a busy machine may
   * not drain the default 208 KiB in time: ask for 4 MiB (capped at net.core.rmem_max) */
  peer.receive_buffer_bytes = kReceiveBufferBytes;

  gstmtx::WebrtcPeer::Events events;
  events.answered = [self](const gstmtx::OfferAnswer &answer) {
    const int streams = streams_in_answer(answer.answer_sdp);
    {
      std::lock_guard<std::mutex> guard(self->priv->lock);
      self->priv->expected_streams = streams;
    }
    GST_DEBUG_OBJECT(self, "answer applied: %d streams, resource %s", streams,
                     gstmtx::redact_url(answer.resource_url).c_str());
    update_peer_timings(self);
  };
  events.connected = [self, session]() {
    GstWhepSrcPrivate *priv = self->priv;
    /* media can only flow from now on: the no-media window starts again */
    priv->media_watchdog.note_output(gstmtx::StallWatchdog::Clock::now());
    bool on_hls;
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      on_hls = priv->hls != nullptr;
    }
    priv->controller.connected(session, on_hls ? "WebRTC connected: leaving the HLS fallback" : "WebRTC connected");
    start_stats_ticks(self);
  };
  /* the peer's typed failure, as it is; queued, so the peer is out of its own call when torn down */
  events.failed = [self, session](gstmtx::SessionError error) {
    self->priv->controller.report_failure(session, std::move(error));
  };

  priv->media_seen = false;
  priv->media_watchdog.set_timeout(gstmtx::Millis(s.timeout));
  priv->media_watchdog.arm(gstmtx::StallWatchdog::Clock::now(), false);
  priv->peer = std::make_unique<gstmtx::WebrtcPeer>(priv->controller.loop(), *priv->http, webrtc, config, peer,
                                                    events);
  priv->peer->start();
  update_peer_timings(self);
  watch_media(self, session);
}

/* The no-media watchdog: a timer at the moment a stall could first be seen (StallWatchdog's
 * time_left), re-armed while media keeps coming. */
static void watch_media(GstMtxWhepSrc *self, unsigned session) {
  GstWhepSrcPrivate *priv = self->priv;
  priv->controller.loop().cancel(priv->media_timer);
  priv->media_timer = 0;
  const auto now = gstmtx::StallWatchdog::Clock::now();
  if (priv->media_watchdog.stalled(now)) {
    priv->media_watchdog.disarm();
    const std::string timeout = std::to_string(priv->media_watchdog.timeout().count());
    priv->controller.handle_failure(session, gstmtx::Failure::retry(
        priv->media_seen ? "no media for " + timeout + " ms" : "no media within " + timeout + " ms of connecting"));
    return;
  }
  const auto left = priv->media_watchdog.time_left(now);
  if (left.count() < 0)
    return; /* disarmed */
  priv->media_timer = priv->controller.gate().schedule(std::max(left, gstmtx::Millis{10}), [self, session] {
    self->priv->media_timer = 0;
    if (session == self->priv->controller.current_session())
      watch_media(self, session);
  });
}

/* Tears the current session down: DELETE on the server, webrtcbin and chains out of the bin,
 * ghost pads left in place without a target. Control thread (synchronous_delete=false) or
 * application thread during PAUSED->READY, once the controller's run is closed (true). */
void stop_session(GstMtxWhepSrc *self, bool synchronous_delete) {
  GstWhepSrcPrivate *priv = self->priv;
  gstmtx::EventLoop &loop = priv->controller.loop();
  std::unique_ptr<gstmtx::WebrtcPeer> peer;
  auto take_session = [&] {
    loop.cancel(priv->media_timer);
    priv->media_timer = 0;
    priv->media_watchdog.disarm();
    stop_stats_ticks(self);
    peer = std::move(priv->peer);
  };
  if (synchronous_delete) {
    loop.run_sync(take_session);
    if (peer) {
      peer->release_sync();
      loop.run_sync([&] { peer.reset(); });
    }
  } else {
    take_session();
    if (peer) {
      peer->release();
      peer.reset();
    }
  }

  GstElement *webrtc;
  std::vector<GstElement *> chains;
  std::vector<Output *> outputs; /* live as long as the element */
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    webrtc = priv->webrtc;
    priv->webrtc = nullptr;
    priv->generation++;
    for (auto &out : priv->outputs) {
      if (out->from_hls)
        continue; /* fed by the HLS fallback, which outlives WebRTC sessions */
      if (out->chain)
        chains.push_back(out->chain);
      out->chain = nullptr;
      outputs.push_back(out.get());
    }
  }
  for (Output *out : outputs)
    disconnect_output(self, out);
  if (webrtc) {
    g_signal_handlers_disconnect_by_func(webrtc, reinterpret_cast<gpointer>(on_webrtc_pad_added), self);
    gst_element_set_locked_state(webrtc, TRUE);
    gst_element_set_state(webrtc, GST_STATE_NULL);
    gst_bin_remove(GST_BIN(self), webrtc);
    gst_object_unref(webrtc);
  }
  /* chains of streams that never got a ghost pad are found by walking the bin */
  GstIterator *it = gst_bin_iterate_elements(GST_BIN(self));
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    GstElement *child = GST_ELEMENT(g_value_get_object(&item));
    bool is_hls;
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      is_hls = child == priv->hls;
    }
    if (GST_IS_BIN(child) && !is_hls && !g_object_get_data(G_OBJECT(child), kHlsMarker) && !is_placeholder_bin(child) &&
        std::find(chains.begin(), chains.end(), child) == chains.end())
      chains.push_back(child);
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  for (GstElement *chain : chains) {
    gst_element_set_locked_state(chain, TRUE);
    gst_element_set_state(chain, GST_STATE_NULL);
    gst_bin_remove(GST_BIN(self), chain);
  }
}

/* The controller's hooks: the session part of reconnection is whepsrc's, the rest (backoff,
 * status, timers, giving up with the failure's error code) the controller's. */
void install_controller_hooks(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  gstmtx::ReconnectController::Hooks hooks;
  hooks.start = [self] { start_session(self); };
  hooks.teardown = [self](const gstmtx::Failure &failure) {
    GST_WARNING_OBJECT(self, "session failed: %s (%s)", failure.message.c_str(), failure.debug.c_str());
    placeholder_failure(self, failure);
    stop_session(self, false);
  };
  hooks.status = [self](const gstmtx::StatusUpdate &update) { placeholder_status(self, update); };
  /* after hls-fallback-attempts failures in this outage, play HLS while WebRTC is retried */
  hooks.retrying = [self](const gstmtx::Failure &failure, gstmtx::Millis delay) {
    GstWhepSrcPrivate *priv = self->priv;
    const Settings s = settings_snapshot(self);
    bool on_hls;
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      on_hls = priv->hls != nullptr;
    }
    if (s.hls_fallback && !on_hls && priv->controller.attempts() >= static_cast<int>(s.hls_fallback_attempts)) {
      GST_INFO_OBJECT(self, "WebRTC failed %d times: falling back to HLS", priv->controller.attempts());
      start_hls(self);
      std::lock_guard<std::mutex> guard(priv->lock);
      on_hls = priv->hls != nullptr;
    }
    if (!on_hls)
      return false;
    priv->controller.post_status(gstmtx::ConnectionState::Fallback, "on HLS; WebRTC: " + failure.message,
                                 delay.count(), "hls");
    return true;
  };
  /* the retry budget is spent while HLS plays: keep trying WebRTC every max-retry-delay */
  hooks.giving_up = [self](const gstmtx::Failure &failure) {
    GstWhepSrcPrivate *priv = self->priv;
    bool on_hls;
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      on_hls = priv->hls != nullptr;
    }
    if (failure.fatal() || !on_hls)
      return false;
    const gstmtx::RetrySettings r = priv->controller.settings();
    const gstmtx::Millis delay{std::max(r.max_retry_delay, r.retry_delay)};
    priv->controller.schedule_retry(delay);
    priv->controller.post_status(gstmtx::ConnectionState::Fallback, "on HLS; WebRTC: " + failure.message,
                                 delay.count(), "hls");
    return true;
  };
  priv->controller.set_hooks(std::move(hooks));
}

}  // namespace whepsrc
