#include "webrtc_peer.h"

#include <gst/sdp/sdp.h>

#include "dtls_certificate.h"

#include <condition_variable>
#include <mutex>

GST_DEBUG_CATEGORY_STATIC(mtx_peer_debug);
#define GST_CAT_DEFAULT mtx_peer_debug

namespace gstmtx {

namespace {
/* Hands a webrtcbin callback to the loop thread, dropped if the peer is gone by then. */
struct Handoff {
  WebrtcPeer *peer;
  std::weak_ptr<bool> alive;
  EventLoop *loop;
};

std::string sdp_text(const GstWebRTCSessionDescription *desc) {
  g_autofree char *text = gst_sdp_message_as_text(desc->sdp);
  return text ? text : "";
}
}  // namespace

WebrtcPeer::WebrtcPeer(EventLoop &loop, HttpClient &http, GstElement *webrtcbin, SessionConfig session,
                       PeerConfig config, Events events)
    : loop_(loop), http_(http), webrtc_(GST_ELEMENT(gst_object_ref(webrtcbin))), session_(http, std::move(session)),
      config_(std::move(config)), events_(std::move(events)) {
  static gsize once = 0;
  if (g_once_init_enter(&once)) {
    GST_DEBUG_CATEGORY_INIT(mtx_peer_debug, "mtxpeer", 0, "gst-mediamtx WebRTC-HTTP negotiation");
    g_once_init_leave(&once, 1);
  }
  /* before webrtcbin makes its first DTLS transport (1.22: in create-offer, from start()) */
  prepare_dtls_default_certificate();
  if (gulong id = use_dtls_certificate(webrtc_)) {
    handlers_.push_back(id);
    dtls_certificate_set_ = true;
  }
}

WebrtcPeer::~WebrtcPeer() {
  *alive_ = false;
  for (gulong id : handlers_)
    g_signal_handler_disconnect(webrtc_, id);
  loop_.cancel(flush_timer_);
  loop_.cancel(gather_timer_);
  loop_.cancel(disconnected_timer_);
  loop_.cancel(liveness_timer_);
  if (rtpbin_) {
    if (rtcp_handler_)
      g_signal_handler_disconnect(rtpbin_, rtcp_handler_);
    gst_object_unref(rtpbin_);
  }
  if (offer_)
    gst_webrtc_session_description_free(offer_);
  gst_object_unref(webrtc_);
}

/* called on the loop thread */
void WebrtcPeer::start() {
  timings_ = PeerTimings{};
  timings_.started = g_get_monotonic_time();
  auto *handoff = new Handoff{this, alive_, &loop_};
  GClosureNotify free_handoff = [](gpointer data, GClosure *) { delete static_cast<Handoff *>(data); };
  handlers_.push_back(g_signal_connect_data(webrtc_, "on-ice-candidate", G_CALLBACK(on_ice_candidate_signal), handoff,
                                            free_handoff, GConnectFlags(0)));
  for (const char *prop : {"notify::ice-connection-state", "notify::connection-state", "notify::ice-gathering-state"}) {
    handoff = new Handoff{this, alive_, &loop_};
    handlers_.push_back(
        g_signal_connect_data(webrtc_, prop, G_CALLBACK(on_notify), handoff, free_handoff, GConnectFlags(0)));
  }

  /* No UPnP-IGD: mapping ports on the local router is not ours to do, and its SSDP discovery
   * multicasts on every interface and can hold up candidate gathering.
   * ICE check pacing (Ta): libnice sends one connectivity check per Ta, default 20 ms, and queues
   * the nominating check behind the checks the server's own checks triggered (every candidate
   * pair: UDP, TCP, IPv6 link-local). Against MediaMTX on one link that put "connected" ~230 ms
   * after the answer (10 queued checks); at 5 ms, the lowest RFC 8445 allows, ~60 ms.
   * Keepalives as binding requests: as the controlling agent libnice then repeats USE-CANDIDATE on
   * the selected pair right after nominating it and every ~5 s. MediaMTX (pion) sometimes misses
   * the single nomination libnice sends otherwise: it never selects the pair and never starts
   * DTLS (it is the DTLS client), and the session hangs until the no-media timeout (1 start in
   * 50-150 here, and 1 in 7 took 200-850 ms instead of ~80); with the repeat, 0 in 150. */
  GObject *ice = nullptr;
  g_object_get(webrtc_, "ice-agent", &ice, nullptr);
  if (ice) {
    GObject *agent = nullptr;
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(ice), "agent"))
      g_object_get(ice, "agent", &agent, nullptr);
    if (agent) {
      if (g_object_class_find_property(G_OBJECT_GET_CLASS(agent), "upnp"))
        g_object_set(agent, "upnp", FALSE, nullptr);
      if (g_object_class_find_property(G_OBJECT_GET_CLASS(agent), "keepalive-conncheck"))
        g_object_set(agent, "keepalive-conncheck", TRUE, nullptr);
      if (config_.check_pacing.count() > 0 &&
          g_object_class_find_property(G_OBJECT_GET_CLASS(agent), "stun-pacing-timer"))
        g_object_set(agent, "stun-pacing-timer", static_cast<guint>(config_.check_pacing.count()), nullptr);
      g_object_unref(agent);
    }
    g_object_unref(ice);
  }
  /* RTCP from the server: rtpbin calls a source active on each report (SR or RR) it receives.
   * The handler owns a reference to the state, which outlives a disconnect racing a report. */
  if (config_.rtcp_silence.count() > 0) {
    liveness_ = std::make_shared<RtcpLiveness>(config_.rtcp_silence);
    rtpbin_ = gst_bin_get_by_name(GST_BIN(webrtc_), "rtpbin");
    if (rtpbin_) {
      rtcp_handler_ = g_signal_connect_data(
          rtpbin_, "on-ssrc-active",
          G_CALLBACK(+[](GstElement *, guint, guint, gpointer data) {
            (*static_cast<std::shared_ptr<RtcpLiveness> *>(data))->report(RtcpLiveness::Clock::now());
          }),
          new std::shared_ptr<RtcpLiveness>(liveness_),
          [](gpointer data, GClosure *) { delete static_cast<std::shared_ptr<RtcpLiveness> *>(data); },
          GConnectFlags(0));
    } else {
      GST_WARNING_OBJECT(webrtc_, "webrtcbin has no rtpbin: the server's RTCP is not watched");
    }
  }
  if (!config_.stun_server.empty())
    g_object_set(webrtc_, "stun-server", config_.stun_server.c_str(), nullptr);
  if (!config_.turn_server.empty())
    g_object_set(webrtc_, "turn-server", config_.turn_server.c_str(), nullptr);
  g_object_set(webrtc_, "ice-transport-policy", config_.ice_transport_policy, nullptr);

  /* ICE servers from the endpoint's Link headers must be known before gathering starts, which
   * set-local-description triggers: ask with OPTIONS while the offer is being made. */
  std::weak_ptr<bool> alive = alive_;
  if (config_.use_link_headers) {
    session_.query_ice_servers([this, alive](std::vector<IceServer> servers, SessionError error) {
      if (alive.expired() || finished_)
        return;
      if (error) {
        fail(error);
        return;
      }
      apply_ice_servers(servers);
      ice_servers_ready_ = true;
      maybe_set_local_description();
    });
  } else {
    ice_servers_ready_ = true;
  }

  auto *offer_handoff = new Handoff{this, alive_, &loop_};
  GstPromise *promise = gst_promise_new_with_change_func(
      [](GstPromise *promise, gpointer data) {
        auto *h = static_cast<Handoff *>(data);
        GstWebRTCSessionDescription *offer = nullptr;
        std::string error;
        const GstStructure *reply = gst_promise_get_reply(promise);
        if (gst_promise_wait(promise) == GST_PROMISE_RESULT_REPLIED && reply) {
          GError *err = nullptr;
          if (gst_structure_get(reply, "error", G_TYPE_ERROR, &err, nullptr) && err) {
            error = err->message;
            g_clear_error(&err);
          }
          gst_structure_get(reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, nullptr);
        }
        std::weak_ptr<bool> alive = h->alive;
        WebrtcPeer *peer = h->peer;
        h->loop->post([peer, alive, offer, error] {
          if (alive.expired() || peer->finished_) {
            if (offer)
              gst_webrtc_session_description_free(offer);
            return;
          }
          if (!offer) {
            SessionError e;
            e.kind = SessionErrorKind::Config;
            e.message = "webrtcbin could not create an offer" + (error.empty() ? "" : ": " + error);
            peer->fail(e);
            return;
          }
          peer->offer_ = offer;
          peer->timings_.offer_created = g_get_monotonic_time();
          peer->maybe_set_local_description();
        });
      },
      offer_handoff, [](gpointer data) { delete static_cast<Handoff *>(data); });
  g_signal_emit_by_name(webrtc_, "create-offer", nullptr, promise);
  gst_promise_unref(promise);
}

void WebrtcPeer::apply_ice_servers(const std::vector<IceServer> &servers) {
  bool stun_set = !config_.stun_server.empty();
  for (const auto &server : servers) {
    std::string uri = server.to_webrtcbin_uri();
    if (uri.empty())
      continue;
    if (server.is_turn()) {
      gboolean ok = FALSE;
      g_signal_emit_by_name(webrtc_, "add-turn-server", uri.c_str(), &ok);
    } else if (!stun_set) {
      g_object_set(webrtc_, "stun-server", uri.c_str(), nullptr);
      stun_set = true;
    }
  }
}

/* called on the loop thread */
void WebrtcPeer::maybe_set_local_description() {
  if (local_set_ || !offer_ || !ice_servers_ready_)
    return;
  local_set_ = true;
  /* our DTLS certificate's real fingerprint (webrtcbin writes a wrong one for it) */
  if (dtls_certificate_set_)
    correct_sdp_fingerprints(offer_->sdp);
  /* remember the ICE credentials and the first m-line for trickle fragments */
  const GstSDPMessage *sdp = offer_->sdp;
  if (gst_sdp_message_medias_len(sdp) > 0) {
    const GstSDPMedia *media = gst_sdp_message_get_media(sdp, 0);
    const char *ufrag = gst_sdp_media_get_attribute_val(media, "ice-ufrag");
    const char *pwd = gst_sdp_media_get_attribute_val(media, "ice-pwd");
    const char *mid = gst_sdp_media_get_attribute_val(media, "mid");
    ufrag_ = ufrag ? ufrag : "";
    pwd_ = pwd ? pwd : "";
    first_mid_ = mid ? mid : "0";
    first_media_ = gst_sdp_media_get_media(media) ? gst_sdp_media_get_media(media) : "video";
  }
  g_signal_emit_by_name(webrtc_, "set-local-description", offer_, nullptr);
  if (config_.trickle) {
    post_offer(sdp_text(offer_));
  } else {
    std::weak_ptr<bool> alive = alive_;
    gather_timer_ = loop_.schedule(config_.gather_timeout, [this, alive] {
      if (alive.expired())
        return;
      gather_timer_ = 0;
      on_gathering_state(GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE);
    });
    GstWebRTCICEGatheringState state;
    g_object_get(webrtc_, "ice-gathering-state", &state, nullptr);
    on_gathering_state(state);
  }
}

void WebrtcPeer::on_gathering_state(GstWebRTCICEGatheringState state) {
  if (config_.trickle) {
    if (state == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE && answered_)
      flush_candidates(true);
    return;
  }
  if (posted_ || !local_set_ || state != GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
    return;
  loop_.cancel(gather_timer_);
  gather_timer_ = 0;
  GstWebRTCSessionDescription *local = nullptr;
  g_object_get(webrtc_, "local-description", &local, nullptr);
  if (!local) {
    SessionError e;
    e.kind = SessionErrorKind::Retry;
    e.message = "webrtcbin has no local description after gathering";
    fail(e);
    return;
  }
  std::string text = sdp_text(local);
  gst_webrtc_session_description_free(local);
  post_offer(text);
}

void WebrtcPeer::post_offer(const std::string &sdp) {
  posted_ = true;
  GST_DEBUG_OBJECT(webrtc_, "posting offer:\n%s", sdp.c_str());
  std::weak_ptr<bool> alive = alive_;
  session_.post_offer(sdp, [this, alive](OfferAnswer answer, SessionError error) {
    if (alive.expired())
      return;
    on_answer(std::move(answer), std::move(error));
  });
}

/* called on the loop thread */
void WebrtcPeer::on_answer(OfferAnswer answer, SessionError error) {
  if (finished_)
    return;
  if (error) {
    fail(error);
    return;
  }
  timings_.answer_received = g_get_monotonic_time();
  GST_DEBUG_OBJECT(webrtc_, "answer:\n%s", answer.answer_sdp.c_str());
  GstSDPMessage *sdp = nullptr;
  if (gst_sdp_message_new_from_text(answer.answer_sdp.c_str(), &sdp) != GST_SDP_OK || !sdp ||
      gst_sdp_message_medias_len(sdp) == 0) {
    if (sdp)
      gst_sdp_message_free(sdp);
    SessionError e;
    e.kind = SessionErrorKind::Retry;
    e.message = "the server's SDP answer could not be parsed";
    e.debug = answer.answer_sdp.substr(0, 512);
    fail(e);
    return;
  }
  if (config_.use_link_headers)
    apply_ice_servers(answer.ice_servers); /* TURN servers still help later candidates */
  GstWebRTCSessionDescription *desc = gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
  auto *handoff = new Handoff{this, alive_, &loop_};
  GstPromise *promise = gst_promise_new_with_change_func(
      [](GstPromise *promise, gpointer data) {
        auto *h = static_cast<Handoff *>(data);
        std::string error;
        const GstStructure *reply = gst_promise_get_reply(promise);
        if (reply) {
          GError *err = nullptr;
          if (gst_structure_get(reply, "error", G_TYPE_ERROR, &err, nullptr) && err) {
            error = err->message;
            g_clear_error(&err);
          }
        }
        std::weak_ptr<bool> alive = h->alive;
        WebrtcPeer *peer = h->peer;
        h->loop->post([peer, alive, error] {
          if (alive.expired() || peer->finished_)
            return;
          if (!error.empty()) {
            SessionError e;
            e.kind = SessionErrorKind::Retry;
            e.message = "the server's SDP answer was not accepted: " + error;
            peer->fail(e);
          }
        });
      },
      handoff, [](gpointer data) { delete static_cast<Handoff *>(data); });
  g_signal_emit_by_name(webrtc_, "set-remote-description", desc, promise);
  gst_promise_unref(promise);
  gst_webrtc_session_description_free(desc);
  answered_ = true;
  apply_receive_buffer();
  if (events_.answered)
    events_.answered(answer);
  if (config_.trickle) {
    flush_candidates(false);
    GstWebRTCICEGatheringState state;
    g_object_get(webrtc_, "ice-gathering-state", &state, nullptr);
    if (state == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
      flush_candidates(true);
  }
}

/* called on the loop thread */
void WebrtcPeer::on_local_candidate(unsigned mline, std::string candidate) {
  if (!config_.trickle || finished_)
    return;
  if (candidate.empty()) {
    /* webrtcbin 1.24+ signals the end of gathering with an empty candidate (once per transport):
     * not a candidate to PATCH, but the end of candidates; send what is still pending. */
    if (answered_)
      flush_candidates(true);
    return;
  }
  (void)mline; /* bundled: every candidate goes with the first m-line */
  pending_candidates_.push_back(std::move(candidate));
  if (!answered_ || flush_timer_)
    return;
  /* batch candidates found together into one PATCH */
  std::weak_ptr<bool> alive = alive_;
  flush_timer_ = loop_.schedule(std::chrono::milliseconds(10), [this, alive] {
    if (alive.expired())
      return;
    flush_timer_ = 0;
    flush_candidates(false);
  });
}

void WebrtcPeer::flush_candidates(bool end_of_candidates) {
  if (session_.resource_url().empty() || (pending_candidates_.empty() && !end_of_candidates))
    return;
  if (pending_candidates_.empty() && end_of_candidates)
    return; /* nothing new to say; MediaMTX needs no explicit end */
  std::string frag = make_trickle_sdpfrag(ufrag_, pwd_, first_media_, 0, first_mid_, pending_candidates_, false);
  pending_candidates_.clear();
  session_.patch_sdpfrag(frag);
}

void WebrtcPeer::on_ice_state(GstWebRTCICEConnectionState state) {
  if (finished_)
    return;
  if (state == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED) {
    SessionError e;
    e.kind = SessionErrorKind::Retry;
    e.message = "ICE failed: no network path to the server's media port (UDP blocked? set a TURN server)";
    fail(e);
  } else if (state == GST_WEBRTC_ICE_CONNECTION_STATE_DISCONNECTED) {
    if (disconnected_timer_)
      return;
    std::weak_ptr<bool> alive = alive_;
    disconnected_timer_ = loop_.schedule(config_.disconnected_grace, [this, alive] {
      if (alive.expired())
        return;
      disconnected_timer_ = 0;
      SessionError e;
      e.kind = SessionErrorKind::Retry;
      e.message = "ICE disconnected for " + std::to_string(config_.disconnected_grace.count()) + " ms";
      fail(e);
    });
  } else if (state == GST_WEBRTC_ICE_CONNECTION_STATE_CONNECTED ||
             state == GST_WEBRTC_ICE_CONNECTION_STATE_COMPLETED) {
    loop_.cancel(disconnected_timer_);
    disconnected_timer_ = 0;
  }
}

void WebrtcPeer::on_connection_state(GstWebRTCPeerConnectionState state) {
  if (finished_)
    return;
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED && !connected_) {
    connected_ = true;
    timings_.connected = g_get_monotonic_time();
    if (liveness_ && rtpbin_) {
      if (config_.rtcp_from_connect)
        liveness_->arm(RtcpLiveness::Clock::now());
      watch_rtcp();
    }
    apply_receive_buffer(); /* the selected pair's socket, in case it came after the answer */
    if (events_.connected)
      events_.connected();
  } else if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED) {
    SessionError e;
    e.kind = SessionErrorKind::Retry;
    e.message = "WebRTC connection failed (ICE or DTLS)";
    fail(e);
  }
}

/* called on the loop thread */
void WebrtcPeer::expect_rtcp() {
  if (liveness_ && !finished_)
    liveness_->arm(RtcpLiveness::Clock::now());
}

/* called on the loop thread, from the connection on */
void WebrtcPeer::watch_rtcp() {
  std::weak_ptr<bool> alive = alive_;
  liveness_timer_ = loop_.schedule(std::chrono::milliseconds(250), [this, alive] {
    if (alive.expired())
      return;
    liveness_timer_ = 0;
    if (finished_)
      return;
    if (liveness_->silent(RtcpLiveness::Clock::now())) {
      SessionError e;
      e.kind = SessionErrorKind::Retry;
      e.message = "no RTCP from the server for " + std::to_string(liveness_->silence_bound().count()) +
                  " ms: it is gone or unreachable";
      fail(e);
      return;
    }
    watch_rtcp();
  });
}

void WebrtcPeer::fail(SessionError error) {
  if (finished_)
    return;
  finished_ = true;
  if (events_.failed)
    events_.failed(std::move(error));
}

void WebrtcPeer::release(std::function<void()> done) {
  finished_ = true;
  session_.delete_resource(std::move(done));
}

void WebrtcPeer::release_sync() {
  /* The session is only ever touched on the loop thread (PATCH completions run there too): send
   * the DELETE from there and wait here, bounded by the DELETE's own deadline. */
  struct Done {
    std::mutex lock;
    std::condition_variable cv;
    bool done = false;
  };
  auto done = std::make_shared<Done>();
  loop_.run_sync([this, done] {
    finished_ = true;
    session_.delete_resource([done] {
      std::lock_guard<std::mutex> guard(done->lock);
      done->done = true;
      done->cv.notify_all();
    });
  });
  std::unique_lock<std::mutex> guard(done->lock);
  done->cv.wait_for(guard, session_.config().delete_timeout + std::chrono::milliseconds(500),
                    [&] { return done->done; });
}

void WebrtcPeer::on_ice_candidate_signal(GstElement *, guint mline, gchar *candidate, gpointer data) {
  auto *h = static_cast<Handoff *>(data);
  std::weak_ptr<bool> alive = h->alive;
  WebrtcPeer *peer = h->peer;
  std::string text = candidate ? candidate : "";
  h->loop->post([peer, alive, mline, text] {
    if (!alive.expired())
      peer->on_local_candidate(mline, text);
  });
}

void WebrtcPeer::on_notify(GObject *webrtc, GParamSpec *pspec, gpointer data) {
  auto *h = static_cast<Handoff *>(data);
  std::weak_ptr<bool> alive = h->alive;
  WebrtcPeer *peer = h->peer;
  const std::string name = g_param_spec_get_name(pspec);
  int value = 0;
  g_object_get(webrtc, name.c_str(), &value, nullptr);
  h->loop->post([peer, alive, name, value] {
    if (alive.expired())
      return;
    if (name == "ice-connection-state")
      peer->on_ice_state(static_cast<GstWebRTCICEConnectionState>(value));
    else if (name == "connection-state")
      peer->on_connection_state(static_cast<GstWebRTCPeerConnectionState>(value));
    else if (name == "ice-gathering-state")
      peer->on_gathering_state(static_cast<GstWebRTCICEGatheringState>(value));
  });
}

/* Loop thread: the receive buffer of every transceiver's ICE transport (bundled: one). */
void WebrtcPeer::apply_receive_buffer() {
  if (config_.receive_buffer_bytes <= 0 || !webrtc_)
    return;
  GArray *transceivers = nullptr;
  g_signal_emit_by_name(webrtc_, "get-transceivers", &transceivers);
  for (guint i = 0; transceivers && i < transceivers->len; ++i) {
    GstWebRTCRTPTransceiver *trans = g_array_index(transceivers, GstWebRTCRTPTransceiver *, i);
    GstWebRTCRTPReceiver *receiver = nullptr;
    g_object_get(trans, "receiver", &receiver, nullptr);
    GstWebRTCDTLSTransport *dtls = nullptr;
    if (receiver)
      g_object_get(receiver, "transport", &dtls, nullptr);
    GstWebRTCICETransport *ice = nullptr;
    if (dtls)
      g_object_get(dtls, "transport", &ice, nullptr);
    if (ice && g_object_class_find_property(G_OBJECT_GET_CLASS(ice), "receive-buffer-size"))
      g_object_set(ice, "receive-buffer-size", config_.receive_buffer_bytes, nullptr);
    if (ice)
      gst_object_unref(ice);
    if (dtls)
      gst_object_unref(dtls);
    if (receiver)
      gst_object_unref(receiver);
  }
  if (transceivers)
    g_array_unref(transceivers);
}

}  // namespace gstmtx
