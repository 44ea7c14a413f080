/* gst-mediamtx: drives one webrtcbin through a WHEP or WHIP exchange.
 *
 *   OPTIONS (Link ICE servers)  in parallel with  create-offer
 *   -> apply ICE servers -> set-local-description -> POST offer (trickle: at once; otherwise after
 *      gathering) -> set-remote-description(answer) -> PATCH local candidates as they come
 *   -> report connected / failure (ICE or DTLS failed, disconnected too long, the server's RTCP
 *      gone silent, HTTP outcome)
 *
 * Shared by whepsrc (recvonly transceivers) and mediamtxsink's WHIP transport (sendonly). Lives on
 * the owner's EventLoop: construct, start() and destroy it there. webrtcbin signals arrive on
 * webrtcbin's threads and are handed to the loop; no lock is held across a call into webrtcbin.
 */
#pragma once

#include <gst/gst.h>
#include <gst/webrtc/webrtc.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "event_loop.h"
#include "rtcp_liveness.h"
#include "webrtc_http_session.h"

namespace gstmtx {

struct PeerConfig {
  bool trickle = true;
  bool use_link_headers = true;
  std::string stun_server;          /* webrtcbin form: stun://host:port */
  std::string turn_server;          /* turn(s)://user:pass@host:port */
  GstWebRTCICETransportPolicy ice_transport_policy = GST_WEBRTC_ICE_TRANSPORT_POLICY_ALL;
  std::chrono::milliseconds gather_timeout{3000};       /* non-trickle: POST what we have by then */
  std::chrono::milliseconds disconnected_grace{3000};   /* ICE "disconnected" this long = failure */
  std::chrono::milliseconds check_pacing{5};            /* libnice's Ta between ICE checks; 0 = its 20 ms */
  /* Once connected, the server's RTCP silent for max(rtcp_silence, 3 x its report interval) =
   * failure (gst/rtcp_liveness.h); 0 = not watched. */
  std::chrono::milliseconds rtcp_silence{0};
  /* Silence counts from "connected" (a publisher: the server reports on its media at once); false:
   * from the server's second report (a viewer: nothing is reported before there is media to send,
   * so a quiet publisher is not taken for a dead server). */
  bool rtcp_from_connect = false;
  /* SO_RCVBUF asked for the ICE sockets (webrtcnicetransport receive-buffer-size), 0 = the
   * system's default (net.core.rmem_default, 208 KiB on Debian); the kernel caps it at
   * net.core.rmem_max. Many viewers on a busy machine overflow the default (docs/benchmarks.md). */
  int receive_buffer_bytes = 0;
};

/* Timing of the last attempt's steps, for stats and benchmarks (monotonic µs, 0 = not reached). */
struct PeerTimings {
  gint64 started = 0, offer_created = 0, answer_received = 0, connected = 0;
};

class WebrtcPeer {
public:
  struct Events {
    std::function<void()> connected;                 /* peer connection reached "connected" */
    std::function<void(SessionError)> failed;        /* once; the peer is finished after this */
    std::function<void(const OfferAnswer &)> answered; /* the answer was applied */
  };

  /* webrtcbin must already be in the bin with its transceivers added (codec-preferences set). */
  WebrtcPeer(EventLoop &loop, HttpClient &http, GstElement *webrtcbin, SessionConfig session, PeerConfig config,
             Events events);
  ~WebrtcPeer(); /* disconnects from webrtcbin; does not DELETE (see release()) */

  void start();
  /* Forgets the webrtcbin and DELETEs the server resource (async, bounded). */
  void release(std::function<void()> done = {});
  /* Same, waiting for the DELETE (bounded); from any thread but the loop's: for state changes. */
  void release_sync();

  const PeerTimings &timings() const { return timings_; }
  WebrtcHttpSession &session() { return session_; }
  bool is_connected() const { return connected_; }
  /* Media flows, so the server owes RTCP reports from now on: silence counts from here even before
   * its first report (a server killed in a session's first seconds is noticed as fast as later). */
  void expect_rtcp();

private:
  void maybe_set_local_description();
  void post_offer(const std::string &sdp);
  void on_answer(OfferAnswer answer, SessionError error);
  void on_local_candidate(unsigned mline, std::string candidate);
  void flush_candidates(bool end_of_candidates);
  void on_ice_state(GstWebRTCICEConnectionState state);
  void on_connection_state(GstWebRTCPeerConnectionState state);
  void on_gathering_state(GstWebRTCICEGatheringState state);
  void watch_rtcp();
  void fail(SessionError error);
  void apply_ice_servers(const std::vector<IceServer> &servers);
  void apply_receive_buffer();
  static void on_ice_candidate_signal(GstElement *webrtc, guint mline, gchar *candidate, gpointer data);
  static void on_notify(GObject *webrtc, GParamSpec *pspec, gpointer data);

  EventLoop &loop_;
  HttpClient &http_;
  GstElement *webrtc_;
  WebrtcHttpSession session_;
  PeerConfig config_;
  Events events_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::vector<gulong> handlers_;

  GstWebRTCSessionDescription *offer_ = nullptr;
  bool ice_servers_ready_ = false;
  bool local_set_ = false;
  bool posted_ = false;
  bool answered_ = false;
  bool finished_ = false;
  bool connected_ = false;
  bool dtls_certificate_set_ = false; /* ours (gst/dtls_certificate.h), not webrtcbin's own */
  std::string ufrag_, pwd_, first_media_, first_mid_;
  std::vector<std::string> pending_candidates_;
  guint flush_timer_ = 0;
  guint gather_timer_ = 0;
  guint disconnected_timer_ = 0;
  /* RTCP liveness: reports counted on rtpbin's thread, checked on the loop */
  std::shared_ptr<RtcpLiveness> liveness_;
  GstElement *rtpbin_ = nullptr; /* ref held while watched */
  gulong rtcp_handler_ = 0;
  guint liveness_timer_ = 0;
  PeerTimings timings_;
};

}  // namespace gstmtx
