/* gst-mediamtx: whepsrc
 *
 * A WHEP (WebRTC-HTTP Egress Protocol) viewer: a GstBin around webrtcbin that negotiates with a
 * WHEP endpoint such as MediaMTX's `POST http://host:8889/<path>/whep`, exposes decoded (default)
 * or depayloaded+parsed encoded streams on sometimes pads `video_%u` / `audio_%u`, and reconnects
 * on its own (ICE/DTLS failure, no media, server gone, 404 before the publisher starts, 5xx) without
 * the application restarting the pipeline: the ghost pads stay and are re-targeted, downstream
 * sees no EOS, flush or second stream-start, and every new session starts on a keyframe.
 *
 *   gst-launch-1.0 whepsrc location=whep://mediamtx/raspberry-01 ! videoconvert ! autovideosink
 *   gst-launch-1.0 playbin uri=whep://mediamtx/raspberry-01
 *
 * Threads: the protocol (HTTP, webrtcbin negotiation, timers, reconnection) runs on the element's
 * private EventLoop thread ("control thread"); receive chains are built on webrtcbin's streaming
 * thread in pad-added; state changes come from the application thread.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstwhepsrc.h"

#include <gst/video/video.h>
#include <gst/webrtc/webrtc.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backoff.h"
#include "codec_table.h"
#include "elements.h"
#include "event_loop.h"
#include "http_client.h"
#include "mediamtx_url.h"
#include "status.h"
#include "webrtc_peer.h"

GST_DEBUG_CATEGORY_STATIC(gst_whep_src_debug);
#define GST_CAT_DEFAULT gst_whep_src_debug

static GstStaticPadTemplate video_template =
    GST_STATIC_PAD_TEMPLATE("video_%u", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS_ANY);
static GstStaticPadTemplate audio_template =
    GST_STATIC_PAD_TEMPLATE("audio_%u", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS_ANY);

enum {
  PROP_0,
  PROP_LOCATION,
  PROP_AUTH_TOKEN,
  PROP_USER_ID,
  PROP_USER_PW,
  PROP_EXTRA_HEADERS,
  PROP_STUN_SERVER,
  PROP_TURN_SERVER,
  PROP_USE_LINK_HEADERS,
  PROP_ICE_TRANSPORT_POLICY,
  PROP_LATENCY,
  PROP_VIDEO_CODECS,
  PROP_AUDIO_CODECS,
  PROP_AUDIO,
  PROP_DECODE,
  PROP_TRICKLE,
  PROP_TIMEOUT,
  PROP_RETRY_DELAY,
  PROP_MAX_RETRY_DELAY,
  PROP_MAX_RETRIES,
  PROP_TLS_CA_FILE,
  PROP_TLS_VALIDATION,
  PROP_HLS_FALLBACK,
  PROP_HLS_LOCATION,
  PROP_HLS_FALLBACK_ATTEMPTS,
  PROP_STATS,
};

#define DEFAULT_LATENCY 50
#define DEFAULT_VIDEO_CODECS gstmtx::kDefaultVideoCodecs
#define DEFAULT_AUDIO_CODECS gstmtx::kDefaultAudioCodecs
#define DEFAULT_TIMEOUT 10000
#define DEFAULT_RETRY_DELAY 1000
#define DEFAULT_MAX_RETRY_DELAY 30000
#define DEFAULT_MAX_RETRIES -1
#define DEFAULT_HLS_FALLBACK_ATTEMPTS 3
/* server RTCP silence that ends a session (at least 3x the server's report interval) */
static constexpr int kRtcpSilenceMs = 3000;

namespace {

struct Settings {
  std::string location;
  std::string auth_token;
  std::string user_id, user_pw;
  GstStructure *extra_headers = nullptr;
  std::string stun_server, turn_server;
  bool use_link_headers = true;
  GstWebRTCICETransportPolicy ice_transport_policy = GST_WEBRTC_ICE_TRANSPORT_POLICY_ALL;
  guint latency = DEFAULT_LATENCY;
  std::string video_codecs = DEFAULT_VIDEO_CODECS;
  std::string audio_codecs = DEFAULT_AUDIO_CODECS;
  bool audio = true;
  bool decode = true;
  bool trickle = true;
  guint timeout = DEFAULT_TIMEOUT;
  guint retry_delay = DEFAULT_RETRY_DELAY;
  guint max_retry_delay = DEFAULT_MAX_RETRY_DELAY;
  gint max_retries = DEFAULT_MAX_RETRIES;
  std::string tls_ca_file;
  bool tls_validation = true;
  bool hls_fallback = false;
  std::string hls_location;
  guint hls_fallback_attempts = DEFAULT_HLS_FALLBACK_ATTEMPTS;
};

/* One exposed output: the ghost pad lives for the element's life, the chain behind it is rebuilt
 * for every session. */
struct Output {
  GstMtxWhepSrc *self = nullptr;
  std::string media;          /* "video" | "audio" */
  GstPad *ghost = nullptr;    /* owned by the element once added */
  GstElement *chain = nullptr;
  guint generation = 0;       /* session that last targeted this pad */
  bool from_hls = false;      /* targeted by the HLS fallback */
  bool sent_stream_start = false;
};

/* HLS timestamps are stream positions: map them onto the pipeline's running time, keeping their
 * spacing, so HLS frames look like a live source's (one offset per HLS session for A/V sync). */
struct HlsClock {
  GstElement *element;
  std::atomic<gint64> last_media_us{0};
  std::mutex lock;
  GstClockTimeDiff offset = 0;
  bool anchored = false;
};

}  // namespace

struct GstWhepSrcPrivate {
  /* `lock` guards settings, outputs, the stats fields below and `webrtc`/`generation`; it is
   * never held across a call into another element. */
  std::mutex lock;
  Settings settings;
  std::vector<std::unique_ptr<Output>> outputs;
  GstElement *webrtc = nullptr;  /* current session's webrtcbin (ref held) */
  guint generation = 0;
  int expected_streams = 0;
  int exposed_this_generation = 0;
  bool no_more_pads_sent = false;
  gstmtx::ConnectionState state = gstmtx::ConnectionState::Idle;
  std::string last_error;
  int attempts = 0;
  int reconnects = 0;
  bool hls_active = false;       /* outputs are fed by the HLS fallback */
  gint64 first_frame_latency_us = -1;

  /* control thread only */
  std::unique_ptr<gstmtx::EventLoop> loop;
  std::unique_ptr<gstmtx::HttpClient> http;
  std::unique_ptr<gstmtx::WebrtcPeer> peer;
  std::optional<gstmtx::Endpoint> endpoint;
  gstmtx::Backoff backoff;
  guint retry_timer = 0;
  guint media_timer = 0;
  bool running = false;
  GstElement *hls = nullptr;     /* the HLS fallback bin, while it runs */
  std::shared_ptr<HlsClock> hls_clock;
  int consecutive_failures = 0;  /* WebRTC failures since it last connected */
  guint hls_restart_timer = 0;
  guint hls_watchdog_timer = 0;
  gint64 hls_started_us = 0;
  gint64 attempt_started_us = 0;

  /* streaming threads */
  std::atomic<gint64> last_media_us{0};
  std::atomic<guint64> frames{0};
  std::atomic<guint64> bytes{0};
  std::atomic<bool> eos_requested{false};
  std::shared_ptr<bool> alive = std::make_shared<bool>(true); /* for timers that outlive a session */
};

struct _GstMtxWhepSrc {
  GstBin parent;
  GstWhepSrcPrivate *priv;
};

static void gst_whep_src_uri_handler_init(gpointer g_iface, gpointer iface_data);

#define gst_whep_src_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE(GstMtxWhepSrc, gst_whep_src, GST_TYPE_BIN,
                        G_IMPLEMENT_INTERFACE(GST_TYPE_URI_HANDLER, gst_whep_src_uri_handler_init));
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE(whepsrc, "whepsrc", GST_RANK_NONE, GST_TYPE_WHEP_SRC,
                                      GST_DEBUG_CATEGORY_INIT(gst_whep_src_debug, "whepsrc", 0,
                                                              "WHEP viewer source"));
/* The same element under a name only this plugin uses: gst-plugins-rs registers a `whepsrc` too, and
 * with both installed the registry keeps whichever it scanned last under that name. */
GST_ELEMENT_REGISTER_DEFINE(mtxwhepsrc, "mtxwhepsrc", GST_RANK_NONE, GST_TYPE_WHEP_SRC);

static void gst_whep_src_finalize(GObject *object);
static void gst_whep_src_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec);
static void gst_whep_src_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec);
static GstStateChangeReturn gst_whep_src_change_state(GstElement *element, GstStateChange transition);
static gboolean gst_whep_src_send_event(GstElement *element, GstEvent *event);
static void gst_whep_src_handle_message(GstBin *bin, GstMessage *message);
static void start_session(GstMtxWhepSrc *self);
static void stop_session(GstMtxWhepSrc *self, bool synchronous_delete);
static void on_session_failed(GstMtxWhepSrc *self, gstmtx::SessionError error);
static void start_hls(GstMtxWhepSrc *self);
static gstmtx::Headers extra_headers_of(const GstStructure *s);
static void stop_hls(GstMtxWhepSrc *self);
static void on_hls_failed(GstMtxWhepSrc *self, const std::string &reason);
static GstStructure *build_stats(GstMtxWhepSrc *self);

static void gst_whep_src_class_init(GstMtxWhepSrcClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);

  gobject_class->finalize = gst_whep_src_finalize;
  gobject_class->set_property = gst_whep_src_set_property;
  gobject_class->get_property = gst_whep_src_get_property;

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);

  g_object_class_install_property(gobject_class, PROP_LOCATION,
      g_param_spec_string("location", "Location",
                          "WHEP endpoint: http(s)://host:8889/<path>/whep, whep(s)://host[:port]/<path> "
                          "(port 8889 by default), or rtsp://host/<path> for the same MediaMTX stream. "
                          "user:password@ in the URL is used as Basic credentials",
                          nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_AUTH_TOKEN,
      g_param_spec_string("auth-token", "Authorization token",
                          "Bearer token sent in the Authorization header (never logged)", nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_USER_ID,
      g_param_spec_string("user-id", "User ID", "User name for HTTP Basic authentication", nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_USER_PW,
      g_param_spec_string("user-pw", "User password",
                          "Password for HTTP Basic authentication (never logged)", nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_EXTRA_HEADERS,
      g_param_spec_boxed("extra-headers", "Extra headers",
                         "Extra HTTP headers for every request, as a GstStructure of strings "
                         "(e.g. \"headers, X-Site=(string)north\")",
                         GST_TYPE_STRUCTURE, rw));
  g_object_class_install_property(gobject_class, PROP_STUN_SERVER,
      g_param_spec_string("stun-server", "STUN server",
                          "STUN server as stun://host:port (in addition to the endpoint's Link headers)",
                          nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_TURN_SERVER,
      g_param_spec_string("turn-server", "TURN server",
                          "TURN server as turn(s)://user:password@host:port (in addition to the endpoint's "
                          "Link headers)",
                          nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_USE_LINK_HEADERS,
      g_param_spec_boolean("use-link-headers", "Use Link headers",
                           "Use the ICE servers the endpoint announces in Link rel=\"ice-server\" headers",
                           TRUE, rw));
  g_object_class_install_property(gobject_class, PROP_ICE_TRANSPORT_POLICY,
      g_param_spec_enum("ice-transport-policy", "ICE transport policy",
                        "all: any candidate; relay: only through TURN", GST_TYPE_WEBRTC_ICE_TRANSPORT_POLICY,
                        GST_WEBRTC_ICE_TRANSPORT_POLICY_ALL, rw));
  g_object_class_install_property(gobject_class, PROP_LATENCY,
      g_param_spec_uint("latency", "Latency",
                        "Jitter buffer size in milliseconds: lower is closer to live, higher rides out more "
                        "network jitter and gives retransmissions time to arrive. Lost video packets are "
                        "requested again (RTCP NACK) when latency > 0; 0 passes packets on at once, "
                        "without retransmission requests (no time for them to arrive)",
                        0, 10000, DEFAULT_LATENCY, rw));
  g_object_class_install_property(gobject_class, PROP_VIDEO_CODECS,
      g_param_spec_string("video-codecs", "Video codecs",
                          "Video codecs to offer, in order of preference (H264, VP8, VP9, AV1, H265); "
                          "empty to receive no video",
                          DEFAULT_VIDEO_CODECS, rw));
  g_object_class_install_property(gobject_class, PROP_AUDIO_CODECS,
      g_param_spec_string("audio-codecs", "Audio codecs", "Audio codecs to offer, in order of preference (OPUS, G722, PCMU, PCMA)",
                          DEFAULT_AUDIO_CODECS, rw));
  g_object_class_install_property(gobject_class, PROP_AUDIO,
      g_param_spec_boolean("audio", "Audio", "Receive the stream's audio too (an audio_%u pad)", TRUE, rw));
  g_object_class_install_property(gobject_class, PROP_DECODE,
      g_param_spec_boolean("decode", "Decode",
                           "Output decoded raw video/audio; false outputs depayloaded, parsed encoded streams "
                           "(H.264/H.265 byte-stream access units, VP8, VP9, AV1, Opus) for recording without "
                           "re-encoding",
                           TRUE, rw));
  g_object_class_install_property(gobject_class, PROP_TRICKLE,
      g_param_spec_boolean("trickle", "Trickle ICE",
                           "POST the offer at once and send local candidates with PATCH (faster); false waits "
                           "for ICE gathering to finish and sends them in the offer",
                           TRUE, rw));
  g_object_class_install_property(gobject_class, PROP_TIMEOUT,
      g_param_spec_uint("timeout", "Timeout",
                        "Milliseconds a session may go without media (from its start, or since the last "
                        "buffer) before it is torn down and retried; also bounds each HTTP request. A server "
                        "that stops sending RTCP reports (MediaMTX sends one a second, also while its "
                        "publisher is quiet) is taken as gone after 3 s (or 3 of its report intervals), "
                        "whatever this timeout",
                        500, G_MAXINT, DEFAULT_TIMEOUT, rw));
  g_object_class_install_property(gobject_class, PROP_RETRY_DELAY,
      g_param_spec_uint("retry-delay", "Retry delay",
                        "Milliseconds before the first reconnection attempt; doubles (with jitter) on each "
                        "failure up to max-retry-delay",
                        0, G_MAXINT, DEFAULT_RETRY_DELAY, rw));
  g_object_class_install_property(gobject_class, PROP_MAX_RETRY_DELAY,
      g_param_spec_uint("max-retry-delay", "Maximum retry delay", "Upper bound of the delay between attempts (ms)",
                        0, G_MAXINT, DEFAULT_MAX_RETRY_DELAY, rw));
  g_object_class_install_property(gobject_class, PROP_MAX_RETRIES,
      g_param_spec_int("max-retries", "Maximum retries",
                       "Reconnection attempts before posting an error; -1 retries forever", -1, G_MAXINT,
                       DEFAULT_MAX_RETRIES, rw));
  g_object_class_install_property(gobject_class, PROP_TLS_CA_FILE,
      g_param_spec_string("tls-ca-file", "TLS CA file",
                          "PEM file with the certificate authorities trusted for https endpoints "
                          "(instead of the system store)",
                          nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_TLS_VALIDATION,
      g_param_spec_boolean("tls-validation", "TLS validation",
                           "Verify https certificates; false accepts any certificate (insecure, warns)", TRUE,
                           rw));
  g_object_class_install_property(gobject_class, PROP_HLS_FALLBACK,
      g_param_spec_boolean("hls-fallback", "HLS fallback",
                           "When WebRTC cannot be established after hls-fallback-attempts tries (UDP blocked, no "
                           "TURN...), play the same path over MediaMTX's HLS through the same pads, keep retrying "
                           "WebRTC in the background and switch back when it connects. Needs MediaMTX hlsVariant "
                           "fmp4 or mpegts: GStreamer 1.22's hlsdemux cannot follow low-latency playlists",
                           FALSE, rw));
  g_object_class_install_property(gobject_class, PROP_HLS_LOCATION,
      g_param_spec_string("hls-location", "HLS location",
                          "Playlist of the HLS fallback; default: http(s)://<host>:8888/<path>/index.m3u8 "
                          "(MediaMTX's HLS server)",
                          nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_HLS_FALLBACK_ATTEMPTS,
      g_param_spec_uint("hls-fallback-attempts", "HLS fallback attempts",
                        "Consecutive failed WebRTC attempts before the HLS fallback starts", 1, 1000,
                        DEFAULT_HLS_FALLBACK_ATTEMPTS, rw));
  g_object_class_install_property(gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
                         "Connection statistics: state, attempts, reconnects, last-error, frames, "
                         "bytes-received, packets-lost, jitter, round-trip-time, selected candidate pair, "
                         "time to first frame, handshake milestones (peer-started-us, offer-created-us, "
                         "answer-received-us, connected-us: monotonic microseconds)",
                         GST_TYPE_STRUCTURE, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template(element_class, &video_template);
  gst_element_class_add_static_pad_template(element_class, &audio_template);
  gst_element_class_set_static_metadata(element_class, "WHEP source", "Source/Network/WebRTC",
                                        "Plays a stream from a WHEP endpoint (MediaMTX and others) with trickle ICE, "
                                        "authentication and automatic reconnection",
                                        "gst-mediamtx developers");

  element_class->change_state = GST_DEBUG_FUNCPTR(gst_whep_src_change_state);
  element_class->send_event = GST_DEBUG_FUNCPTR(gst_whep_src_send_event);
  GST_BIN_CLASS(klass)->handle_message = GST_DEBUG_FUNCPTR(gst_whep_src_handle_message);
}

static void gst_whep_src_init(GstMtxWhepSrc *self) {
  self->priv = new GstWhepSrcPrivate();
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SOURCE);
  gst_bin_set_suppressed_flags(GST_BIN(self),
                               static_cast<GstElementFlags>(GST_ELEMENT_FLAG_SOURCE | GST_ELEMENT_FLAG_SINK));
}

static void gst_whep_src_finalize(GObject *object) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(object);
  GstWhepSrcPrivate *priv = self->priv;
  if (priv->settings.extra_headers)
    gst_structure_free(priv->settings.extra_headers);
  if (priv->webrtc)
    gst_object_unref(priv->webrtc);
  delete priv;
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

static std::string dup_string(const GValue *value) {
  const char *s = g_value_get_string(value);
  return s ? s : "";
}

static void gst_whep_src_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(object);
  std::lock_guard<std::mutex> guard(self->priv->lock);
  Settings &s = self->priv->settings;
  switch (prop_id) {
  case PROP_LOCATION: s.location = dup_string(value); break;
  case PROP_AUTH_TOKEN: s.auth_token = dup_string(value); break;
  case PROP_USER_ID: s.user_id = dup_string(value); break;
  case PROP_USER_PW: s.user_pw = dup_string(value); break;
  case PROP_EXTRA_HEADERS: {
    if (s.extra_headers)
      gst_structure_free(s.extra_headers);
    const GstStructure *h = gst_value_get_structure(value);
    s.extra_headers = h ? gst_structure_copy(h) : nullptr;
    break;
  }
  case PROP_STUN_SERVER: s.stun_server = dup_string(value); break;
  case PROP_TURN_SERVER: s.turn_server = dup_string(value); break;
  case PROP_USE_LINK_HEADERS: s.use_link_headers = g_value_get_boolean(value); break;
  case PROP_ICE_TRANSPORT_POLICY:
    s.ice_transport_policy = static_cast<GstWebRTCICETransportPolicy>(g_value_get_enum(value));
    break;
  case PROP_LATENCY: s.latency = g_value_get_uint(value); break;
  case PROP_VIDEO_CODECS: s.video_codecs = dup_string(value); break;
  case PROP_AUDIO_CODECS: s.audio_codecs = dup_string(value); break;
  case PROP_AUDIO: s.audio = g_value_get_boolean(value); break;
  case PROP_DECODE: s.decode = g_value_get_boolean(value); break;
  case PROP_TRICKLE: s.trickle = g_value_get_boolean(value); break;
  case PROP_TIMEOUT: s.timeout = g_value_get_uint(value); break;
  case PROP_RETRY_DELAY: s.retry_delay = g_value_get_uint(value); break;
  case PROP_MAX_RETRY_DELAY: s.max_retry_delay = g_value_get_uint(value); break;
  case PROP_MAX_RETRIES: s.max_retries = g_value_get_int(value); break;
  case PROP_TLS_CA_FILE: s.tls_ca_file = dup_string(value); break;
  case PROP_TLS_VALIDATION: s.tls_validation = g_value_get_boolean(value); break;
  case PROP_HLS_FALLBACK: s.hls_fallback = g_value_get_boolean(value); break;
  case PROP_HLS_LOCATION: s.hls_location = dup_string(value); break;
  case PROP_HLS_FALLBACK_ATTEMPTS: s.hls_fallback_attempts = g_value_get_uint(value); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

static void gst_whep_src_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(object);
  if (prop_id == PROP_STATS) {
    /* takes the lock itself and calls into webrtcbin without it */
    g_value_take_boxed(value, build_stats(self));
    return;
  }
  std::lock_guard<std::mutex> guard(self->priv->lock);
  const Settings &s = self->priv->settings;
  auto str = [](const std::string &v) { return v.empty() ? nullptr : v.c_str(); };
  switch (prop_id) {
  case PROP_LOCATION: g_value_set_string(value, str(s.location)); break;
  case PROP_AUTH_TOKEN: g_value_set_string(value, str(s.auth_token)); break;
  case PROP_USER_ID: g_value_set_string(value, str(s.user_id)); break;
  case PROP_USER_PW: g_value_set_string(value, str(s.user_pw)); break;
  case PROP_EXTRA_HEADERS: g_value_set_boxed(value, s.extra_headers); break;
  case PROP_STUN_SERVER: g_value_set_string(value, str(s.stun_server)); break;
  case PROP_TURN_SERVER: g_value_set_string(value, str(s.turn_server)); break;
  case PROP_USE_LINK_HEADERS: g_value_set_boolean(value, s.use_link_headers); break;
  case PROP_ICE_TRANSPORT_POLICY: g_value_set_enum(value, s.ice_transport_policy); break;
  case PROP_LATENCY: g_value_set_uint(value, s.latency); break;
  case PROP_VIDEO_CODECS: g_value_set_string(value, s.video_codecs.c_str()); break;
  case PROP_AUDIO_CODECS: g_value_set_string(value, s.audio_codecs.c_str()); break;
  case PROP_AUDIO: g_value_set_boolean(value, s.audio); break;
  case PROP_DECODE: g_value_set_boolean(value, s.decode); break;
  case PROP_TRICKLE: g_value_set_boolean(value, s.trickle); break;
  case PROP_TIMEOUT: g_value_set_uint(value, s.timeout); break;
  case PROP_RETRY_DELAY: g_value_set_uint(value, s.retry_delay); break;
  case PROP_MAX_RETRY_DELAY: g_value_set_uint(value, s.max_retry_delay); break;
  case PROP_MAX_RETRIES: g_value_set_int(value, s.max_retries); break;
  case PROP_TLS_CA_FILE: g_value_set_string(value, str(s.tls_ca_file)); break;
  case PROP_TLS_VALIDATION: g_value_set_boolean(value, s.tls_validation); break;
  case PROP_HLS_FALLBACK: g_value_set_boolean(value, s.hls_fallback); break;
  case PROP_HLS_LOCATION: g_value_set_string(value, str(s.hls_location)); break;
  case PROP_HLS_FALLBACK_ATTEMPTS: g_value_set_uint(value, s.hls_fallback_attempts); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

/* ---- state changes (application thread) ---- */

/* A copy of the settings for use without the lock. The copy never holds the borrowed
 * extra-headers structure: it comes out as header pairs in *extra_headers when asked for.
 * Any thread. */
static Settings settings_snapshot(GstMtxWhepSrc *self, gstmtx::Headers *extra_headers = nullptr) {
  std::lock_guard<std::mutex> guard(self->priv->lock);
  Settings s = self->priv->settings;
  if (extra_headers)
    *extra_headers = extra_headers_of(s.extra_headers);
  s.extra_headers = nullptr;
  return s;
}

/* Validates the settings and creates the control thread and HTTP client. */
static bool prepare(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  const Settings s = settings_snapshot(self);
  if (s.location.empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND, ("No WHEP endpoint set: set the location property "
                                                  "(e.g. whep://mediamtx/raspberry-01)"), (nullptr));
    return false;
  }
  std::string error;
  auto endpoint = gstmtx::parse_webrtc_http_location(s.location, gstmtx::HttpEndpointKind::Whep, &error);
  if (!endpoint) {
    GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND, ("Invalid WHEP location %s: %s",
                                                  gstmtx::redact_url(s.location).c_str(), error.c_str()),
                      (nullptr));
    return false;
  }
  std::vector<std::string> unknown;
  auto video = gstmtx::parse_codec_list(s.video_codecs, "video", &unknown);
  auto audio = gstmtx::parse_codec_list(s.audio_codecs, "audio", &unknown);
  if (!unknown.empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("Unknown codec '%s' in video-codecs/audio-codecs (known: H264, "
                                                 "VP8, VP9, AV1, H265, OPUS, G722, PCMU, PCMA)", unknown.front().c_str()),
                      (nullptr));
    return false;
  }
  if (video.empty() && (audio.empty() || !s.audio)) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("Nothing to receive: video-codecs is empty and audio is off"),
                      (nullptr));
    return false;
  }
  if (!s.tls_validation)
    GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS,
                        ("tls-validation=false: https certificates are not verified, the connection can be "
                         "intercepted"), (nullptr));

  priv->endpoint = endpoint;
  priv->loop = std::make_unique<gstmtx::EventLoop>("whepsrc");
  gstmtx::HttpClientConfig http_config;
  http_config.user_agent = "gst-mediamtx-whepsrc/" PACKAGE_VERSION;
  http_config.tls_ca_file = s.tls_ca_file;
  http_config.tls_validate = s.tls_validation;
  priv->http = std::make_unique<gstmtx::HttpClient>(*priv->loop, http_config);
  if (!priv->http->config_error().empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("%s", priv->http->config_error().c_str()), (nullptr));
    priv->http.reset();
    priv->loop.reset();
    return false;
  }
  gstmtx::RetryPolicy policy;
  policy.initial_delay = gstmtx::Millis(s.retry_delay);
  policy.max_delay = gstmtx::Millis(std::max(s.max_retry_delay, s.retry_delay));
  policy.max_retries = s.max_retries;
  priv->backoff = gstmtx::Backoff(policy);
  return true;
}

static void release(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  if (priv->loop) {
    priv->loop->run_sync([&] {
      priv->http.reset();
    });
  }
  priv->loop.reset();
}

static GstStateChangeReturn gst_whep_src_change_state(GstElement *element, GstStateChange transition) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(element);
  GstWhepSrcPrivate *priv = self->priv;

  switch (transition) {
  case GST_STATE_CHANGE_NULL_TO_READY:
    if (!prepare(self))
      return GST_STATE_CHANGE_FAILURE;
    break;
  case GST_STATE_CHANGE_READY_TO_PAUSED:
    priv->eos_requested = false;
    priv->loop->run_sync([self] {
      self->priv->running = true;
      self->priv->backoff.reset();
      start_session(self);
    });
    break;
  default:
    break;
  }

  GstStateChangeReturn ret = GST_ELEMENT_CLASS(parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;

  switch (transition) {
  case GST_STATE_CHANGE_READY_TO_PAUSED:
  case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
    ret = GST_STATE_CHANGE_NO_PREROLL;
    break;
  case GST_STATE_CHANGE_PAUSED_TO_READY:
    priv->loop->run_sync([self] {
      self->priv->running = false;
      self->priv->loop->cancel(self->priv->retry_timer);
      self->priv->retry_timer = 0;
      stop_hls(self);
      self->priv->consecutive_failures = 0;
    });
    stop_session(self, true);
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      priv->state = gstmtx::ConnectionState::Stopped;
      /* deactivated pads dropped their sticky events: the next start sends stream-start again */
      for (auto &out : priv->outputs)
        out->sent_stream_start = false;
    }
    break;
  case GST_STATE_CHANGE_READY_TO_NULL:
    release(self);
    break;
  default:
    break;
  }
  return ret;
}

/* EOS from the application (gst-launch -e, a recorder's shutdown): end every output so muxers
 * finalize their files. */
static gboolean gst_whep_src_send_event(GstElement *element, GstEvent *event) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(element);
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    self->priv->eos_requested = true;
    std::vector<GstPad *> pads;
    {
      std::lock_guard<std::mutex> guard(self->priv->lock);
      for (auto &out : self->priv->outputs)
        pads.push_back(GST_PAD(gst_object_ref(out->ghost)));
    }
    for (GstPad *pad : pads) {
      gst_pad_push_event(pad, gst_event_ref(event));
      gst_object_unref(pad);
    }
    gst_event_unref(event);
    return TRUE;
  }
  return GST_ELEMENT_CLASS(parent_class)->send_event(element, event);
}

/* Marks the HLS bins, current and retired (a retired one is torn down asynchronously and may still
 * be in the bin for a moment). */
static const char *const kHlsMarker = "gst-mediamtx-hls";

static bool inside_hls_bin(GstObject *object) {
  for (GstObject *o = object ? GST_OBJECT(gst_object_ref(object)) : nullptr; o;) {
    const bool marked = g_object_get_data(G_OBJECT(o), kHlsMarker) != nullptr;
    GstObject *parent = gst_object_get_parent(o);
    gst_object_unref(o);
    if (marked) {
      if (parent)
        gst_object_unref(parent);
      return true;
    }
    o = parent;
  }
  return false;
}

/* An error inside the session (webrtcbin, a depayloader, a decoder) ends that session, not the
 * pipeline: it becomes a warning and a reconnection. Called from the posting thread. */
static void gst_whep_src_handle_message(GstBin *bin, GstMessage *message) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(bin);
  GstElement *hls;
  {
    std::lock_guard<std::mutex> guard(self->priv->lock);
    hls = self->priv->hls ? GST_ELEMENT(gst_object_ref(self->priv->hls)) : nullptr;
  }
  const bool from_hls = hls && (GST_MESSAGE_SRC(message) == GST_OBJECT(hls) ||
                                gst_object_has_as_ancestor(GST_MESSAGE_SRC(message), GST_OBJECT(hls)));
  if (hls)
    gst_object_unref(hls);
  if (!from_hls && inside_hls_bin(GST_MESSAGE_SRC(message))) {
    /* a retired HLS chain on its way out: nothing it says matters any more */
    gst_message_unref(message);
    return;
  }
  if (from_hls && GST_MESSAGE_TYPE(message) == GST_MESSAGE_BUFFERING) {
    /* HLS stands in for a live source: its buffering must not pause the pipeline */
    gst_message_unref(message);
    return;
  }
  if (from_hls && GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
    GError *err = nullptr;
    gst_message_parse_error(message, &err, nullptr);
    std::string text = std::string("HLS: ") + (err ? err->message : "error");
    g_clear_error(&err);
    gst_message_unref(message);
    self->priv->loop->post([self, text] { on_hls_failed(self, text); });
    return;
  }
  if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR && GST_MESSAGE_SRC(message) != GST_OBJECT(self)) {
    GError *err = nullptr;
    gchar *debug = nullptr;
    gst_message_parse_error(message, &err, &debug);
    std::string text = std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(message))) + ": " + (err ? err->message : "error");
    std::string details = debug ? debug : "";
    const bool missing_plugin = err && g_error_matches(err, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN);
    g_clear_error(&err);
    g_free(debug);
    if (!missing_plugin && self->priv->loop) {
      GST_WARNING_OBJECT(self, "session error, reconnecting: %s (%s)", text.c_str(), details.c_str());
      gst_message_unref(message);
      self->priv->loop->post([self, text, details] {
        if (!self->priv->peer)
          return; /* already torn down */
        gstmtx::SessionError e;
        e.kind = gstmtx::SessionErrorKind::Retry;
        e.message = text;
        e.debug = details;
        on_session_failed(self, e);
      });
      return;
    }
  }
  GST_BIN_CLASS(parent_class)->handle_message(bin, message);
}

/* ---- status ---- */

/* called on the control thread */
static void post_status(GstMtxWhepSrc *self, gstmtx::ConnectionState state, const std::string &reason,
                        gint64 retry_in_ms = -1, const char *transport = nullptr) {
  int attempt;
  {
    std::lock_guard<std::mutex> guard(self->priv->lock);
    self->priv->state = state;
    attempt = self->priv->backoff.attempts();
  }
  gstmtx::StatusUpdate update{state, attempt, reason, transport ? transport : "webrtc", retry_in_ms};
  GST_INFO_OBJECT(self, "status %s (attempt %d) %s", gstmtx::connection_state_name(state), attempt, reason.c_str());
  gst_element_post_message(GST_ELEMENT(self), gstmtx::status_message_new(GST_OBJECT(self), update));
}

/* ---- receive chains (webrtcbin streaming thread) ---- */

/* Drops delta units until the first keyframe of a session so decoders and muxers start clean, and
 * asks for a keyframe (RTCP PLI through the depayloader) while waiting. Counts media for stats and
 * the no-media watchdog. Called from the streaming thread. */
struct KeyframeGate {
  GstMtxWhepSrc *self;
  bool is_video;
  bool open = false;
  gint64 last_request_us = 0;
};

static GstPadProbeReturn keyframe_gate_probe(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *gate = static_cast<KeyframeGate *>(data);
  GstWhepSrcPrivate *priv = gate->self->priv;
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  const gint64 now = g_get_monotonic_time();
  priv->last_media_us = now;
  priv->bytes += gst_buffer_get_size(buffer);
  if (gate->is_video && !gate->open) {
    if (GST_BUFFER_FLAG_IS_SET(buffer, GST_BUFFER_FLAG_DELTA_UNIT)) {
      if (now - gate->last_request_us > G_USEC_PER_SEC) {
        gate->last_request_us = now;
        GST_DEBUG_OBJECT(gate->self, "waiting for a keyframe: requesting one");
        gst_pad_send_event(pad, gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 0));
      }
      return GST_PAD_PROBE_DROP;
    }
    gate->open = true;
    std::lock_guard<std::mutex> guard(priv->lock);
    if (priv->first_frame_latency_us < 0 && priv->attempt_started_us > 0)
      priv->first_frame_latency_us = now - priv->attempt_started_us;
  }
  if (gate->is_video)
    priv->frames++;
  return GST_PAD_PROBE_OK;
}

/* Downstream of a ghost pad: one stream-start for the element's life, never a flush or an EOS the
 * application did not ask for. Called from the streaming thread. */
static GstPadProbeReturn ghost_event_probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *out = static_cast<Output *>(data);
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_STREAM_START:
    if (out->sent_stream_start)
      return GST_PAD_PROBE_DROP;
    out->sent_stream_start = true;
    return GST_PAD_PROBE_OK;
  case GST_EVENT_EOS:
    return out->self->priv->eos_requested ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
  case GST_EVENT_FLUSH_START:
  case GST_EVENT_FLUSH_STOP:
    return GST_PAD_PROBE_DROP;
  default:
    return GST_PAD_PROBE_OK;
  }
}

static GstElement *make_element(const char *factory) {
  GstElement *e = gst_element_factory_make(factory, nullptr);
  return e;
}

/* Builds depayloader ! [parser] ! [decoder] for `codec` into a bin with ghost pads "sink"/"src".
 * Called from the streaming thread. */
static GstElement *build_receive_chain(GstMtxWhepSrc *self, const gstmtx::RtpCodec &codec, bool decode,
                                       std::string *error) {
  GstElement *chain = gst_bin_new(nullptr);
  GstElement *depay = make_element(codec.depayloader);
  if (!depay) {
    *error = std::string("element ") + codec.depayloader + " is missing (install gstreamer1.0-plugins-good/bad)";
    gst_object_unref(chain);
    return nullptr;
  }
  gst_bin_add(GST_BIN(chain), depay);
  GstElement *last = depay;
  if (codec.parser) {
    GstElement *parser = make_element(codec.parser);
    if (!parser) {
      *error = std::string("element ") + codec.parser + " is missing";
      gst_object_unref(chain);
      return nullptr;
    }
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(parser), "config-interval"))
      g_object_set(parser, "config-interval", -1, nullptr);
    gst_bin_add(GST_BIN(chain), parser);
    gst_element_link(last, parser);
    last = parser;
  }
  GstElement *filter = gst_element_factory_make("capsfilter", nullptr);
  g_autoptr(GstCaps) encoded = gst_caps_from_string(codec.encoded_caps);
  g_object_set(filter, "caps", encoded, nullptr);
  gst_bin_add(GST_BIN(chain), filter);
  gst_element_link(last, filter);
  last = filter;

  const bool is_video = std::string(codec.media) == "video";
  GstPad *gate_pad = gst_element_get_static_pad(last, "src");
  gst_pad_add_probe(gate_pad, GST_PAD_PROBE_TYPE_BUFFER, keyframe_gate_probe, new KeyframeGate{self, is_video},
                    [](gpointer data) { delete static_cast<KeyframeGate *>(data); });
  gst_object_unref(gate_pad);

  if (decode) {
    GstElementFactory *factory = gstmtx::best_decoder_for(encoded);
    GstElement *decoder = factory ? gst_element_factory_create(factory, nullptr) : nullptr;
    if (factory)
      gst_object_unref(factory);
    if (!decoder) {
      *error = std::string("no decoder installed for ") + codec.name +
               " (install gstreamer1.0-libav or plugins-good/bad), or use decode=false";
      gst_object_unref(chain);
      return nullptr;
    }
    /* low latency: slice threads only (frame threads hold frames back), never output corrupt
     * pictures */
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(decoder), "thread-type"))
      gst_util_set_object_arg(G_OBJECT(decoder), "thread-type", "slice");
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(decoder), "output-corrupt"))
      g_object_set(decoder, "output-corrupt", FALSE, nullptr);
    gst_bin_add(GST_BIN(chain), decoder);
    gst_element_link(last, decoder);
    last = decoder;
  }
  GstPad *sink = gst_element_get_static_pad(depay, "sink");
  GstPad *src = gst_element_get_static_pad(last, "src");
  gst_element_add_pad(chain, gst_ghost_pad_new("sink", sink));
  gst_element_add_pad(chain, gst_ghost_pad_new("src", src));
  gst_object_unref(sink);
  gst_object_unref(src);
  return chain;
}

/* Points this media's ghost pad (made on first use) at `src`, the output of `chain`. From WebRTC
 * (`webrtc` and `generation` identify the session, which must still be current) or from the HLS
 * fallback (`webrtc` nullptr). A WebRTC stream takes a pad back from HLS. Streaming thread. */
static bool attach_output(GstMtxWhepSrc *self, const std::string &media, GstElement *chain, GstPad *src, bool from_hls,
                          GstElement *webrtc, guint generation) {
  GstWhepSrcPrivate *priv = self->priv;
  Output *target = nullptr;
  bool is_new = false;
  bool all_exposed = false;
  bool took_from_hls = false;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (!from_hls && (webrtc != priv->webrtc || generation != priv->generation))
      return false;
    for (auto &out : priv->outputs) {
      if (out->media != media)
        continue;
      const bool free_for_webrtc = !from_hls && (out->from_hls || out->generation != generation);
      const bool free_for_hls = from_hls && out->chain == nullptr;
      if (free_for_webrtc || free_for_hls) {
        target = out.get();
        break;
      }
    }
    if (!target) {
      auto out = std::make_unique<Output>();
      out->self = self;
      out->media = media;
      int index = 0;
      for (auto &o : priv->outputs)
        if (o->media == media)
          ++index;
      std::string name = media + "_" + std::to_string(index);
      GstPadTemplate *templ = gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(self),
                                                                 media == "video" ? "video_%u" : "audio_%u");
      out->ghost = gst_ghost_pad_new_no_target_from_template(name.c_str(), templ);
      gst_pad_add_probe(out->ghost,
                        static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM |
                                                     GST_PAD_PROBE_TYPE_EVENT_FLUSH),
                        ghost_event_probe, out.get(), nullptr);
      target = out.get();
      priv->outputs.push_back(std::move(out));
      is_new = true;
    }
    took_from_hls = !from_hls && target->from_hls;
    target->from_hls = from_hls;
    if (!from_hls)
      target->generation = generation;
    target->chain = chain;
    if (!from_hls) {
      priv->exposed_this_generation++;
      all_exposed = !priv->no_more_pads_sent && priv->expected_streams > 0 &&
                    priv->exposed_this_generation >= priv->expected_streams;
    } else {
      all_exposed = !priv->no_more_pads_sent;
    }
    if (all_exposed)
      priv->no_more_pads_sent = true;
  }
  gst_ghost_pad_set_target(GST_GHOST_PAD(target->ghost), src);
  if (took_from_hls)
    priv->loop->post([self] { stop_hls(self); });
  if (is_new) {
    gst_pad_set_active(target->ghost, TRUE);
    gst_element_add_pad(GST_ELEMENT(self), target->ghost);
    GST_INFO_OBJECT(self, "exposed %s (%s)", GST_PAD_NAME(target->ghost), from_hls ? "HLS" : "WebRTC");
  } else {
    GST_INFO_OBJECT(self, "re-targeted %s to %s", GST_PAD_NAME(target->ghost), from_hls ? "HLS" : "a new WebRTC session");
  }
  if (all_exposed) {
    gst_element_no_more_pads(GST_ELEMENT(self));
  } else if (is_new) {
    /* a stream the answer announced may never send (MediaMTX's silent audio track for a stream
     * without audio): do not leave playbin waiting for it */
    std::weak_ptr<bool> alive = priv->alive;
    priv->loop->schedule(gstmtx::Millis(1500), [self, alive] {
      if (alive.expired())
        return;
      bool send = false;
      {
        std::lock_guard<std::mutex> guard(self->priv->lock);
        send = !self->priv->no_more_pads_sent && !self->priv->outputs.empty();
        self->priv->no_more_pads_sent = true;
      }
      if (send)
        gst_element_no_more_pads(GST_ELEMENT(self));
    });
  }
  return true;
}

/* webrtcbin exposed a stream: build its chain and (re)target our ghost pad.
 * Called from webrtcbin's streaming thread. */
static void on_webrtc_pad_added(GstElement *webrtc, GstPad *pad, gpointer data) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(data);
  GstWhepSrcPrivate *priv = self->priv;
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC)
    return;
  g_autoptr(GstCaps) caps = gst_pad_get_current_caps(pad);
  if (!caps)
    caps = gst_pad_query_caps(pad, nullptr);
  const GstStructure *s = caps && !gst_caps_is_empty(caps) ? gst_caps_get_structure(caps, 0) : nullptr;
  const char *encoding = s ? gst_structure_get_string(s, "encoding-name") : nullptr;
  const gstmtx::RtpCodec *codec = encoding ? gstmtx::find_rtp_codec(encoding) : nullptr;
  bool decode;
  guint generation;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (webrtc != priv->webrtc)
      return; /* a torn-down session */
    decode = priv->settings.decode;
    generation = priv->generation;
  }
  if (!codec) {
    GST_WARNING_OBJECT(self, "ignoring a stream with unsupported caps %" GST_PTR_FORMAT, static_cast<void *>(caps));
    return;
  }
  std::string error;
  GstElement *chain = build_receive_chain(self, *codec, decode, &error);
  if (!chain) {
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN, ("Cannot receive %s: %s", codec->name, error.c_str()), (nullptr));
    return;
  }
  gst_bin_add(GST_BIN(self), chain);
  gst_element_sync_state_with_parent(chain);
  GstPad *chain_sink = gst_element_get_static_pad(chain, "sink");
  GstPadLinkReturn link = gst_pad_link(pad, chain_sink);
  gst_object_unref(chain_sink);
  if (link != GST_PAD_LINK_OK) {
    GST_WARNING_OBJECT(self, "cannot link webrtcbin pad to the %s chain: %d", codec->name, link);
    gst_element_set_state(chain, GST_STATE_NULL);
    gst_bin_remove(GST_BIN(self), chain);
    return;
  }
  GstPad *chain_src = gst_element_get_static_pad(chain, "src");
  if (!attach_output(self, codec->media, chain, chain_src, false, webrtc, generation))
    GST_DEBUG_OBJECT(self, "session torn down while its %s stream appeared", codec->name);
  gst_object_unref(chain_src);
}

/* ---- HLS fallback ---- */



/* Streaming thread of the HLS chain. */
static GstPadProbeReturn hls_clock_probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *clock = static_cast<std::shared_ptr<HlsClock> *>(data)->get();
  if (info->type & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
    GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
    if (GST_EVENT_TYPE(event) == GST_EVENT_SEGMENT) {
      GstSegment segment;
      gst_segment_init(&segment, GST_FORMAT_TIME);
      gst_event_unref(event);
      GST_PAD_PROBE_INFO_DATA(info) = gst_event_new_segment(&segment);
    }
    return GST_PAD_PROBE_OK;
  }
  GstBuffer *buffer = gst_buffer_make_writable(GST_PAD_PROBE_INFO_BUFFER(info));
  GST_PAD_PROBE_INFO_DATA(info) = buffer;
  clock->last_media_us = g_get_monotonic_time();
  GstClockTime ts = GST_BUFFER_PTS_IS_VALID(buffer) ? GST_BUFFER_PTS(buffer) : GST_BUFFER_DTS(buffer);
  GstClock *element_clock = gst_element_get_clock(clock->element);
  if (!element_clock || !GST_CLOCK_TIME_IS_VALID(ts)) {
    if (element_clock)
      gst_object_unref(element_clock);
    return GST_PAD_PROBE_OK;
  }
  const GstClockTime now = gst_clock_get_time(element_clock) - gst_element_get_base_time(clock->element);
  gst_object_unref(element_clock);
  std::lock_guard<std::mutex> guard(clock->lock);
  if (!clock->anchored || static_cast<GstClockTimeDiff>(ts) + clock->offset < GST_CLOCK_DIFF(500 * GST_MSECOND, now)) {
    /* first buffer, or fell half a second behind live: re-anchor on the present */
    clock->offset = GST_CLOCK_DIFF(ts, now);
    clock->anchored = true;
  }
  const GstClockTime dts = GST_BUFFER_DTS(buffer);
  GST_BUFFER_PTS(buffer) = static_cast<GstClockTime>(static_cast<GstClockTimeDiff>(ts) + clock->offset);
  GST_BUFFER_DTS(buffer) = GST_CLOCK_TIME_IS_VALID(dts) && static_cast<GstClockTimeDiff>(dts) + clock->offset >= 0
                               ? static_cast<GstClockTime>(static_cast<GstClockTimeDiff>(dts) + clock->offset)
                               : GST_CLOCK_TIME_NONE;
  return GST_PAD_PROBE_OK;
}

/* decodebin/parsebin of the HLS chain exposed a stream. Streaming thread. */
static void on_hls_stream(GstElement *decoder, GstPad *pad, gpointer data) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(data);
  GstWhepSrcPrivate *priv = self->priv;
  g_autoptr(GstCaps) caps = gst_pad_get_current_caps(pad);
  if (!caps)
    caps = gst_pad_query_caps(pad, nullptr);
  const char *name = caps && !gst_caps_is_empty(caps) ? gst_structure_get_name(gst_caps_get_structure(caps, 0)) : "";
  const std::string media = g_str_has_prefix(name, "video/") ? "video" : g_str_has_prefix(name, "audio/") ? "audio" : "";
  GstElement *hls = GST_ELEMENT(gst_object_get_parent(GST_OBJECT(decoder)));
  std::shared_ptr<HlsClock> clock;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (hls != priv->hls || media.empty()) {
      gst_object_unref(hls);
      return;
    }
    clock = priv->hls_clock;
  }
  gst_pad_add_probe(pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
                    hls_clock_probe, new std::shared_ptr<HlsClock>(clock),
                    [](gpointer d) { delete static_cast<std::shared_ptr<HlsClock> *>(d); });
  GstPad *ghost = gst_ghost_pad_new(nullptr, pad);
  gst_pad_set_active(ghost, TRUE);
  gst_element_add_pad(hls, ghost);
  if (attach_output(self, media, hls, ghost, true, nullptr, 0)) {
    priv->loop->post([self] {
      if (self->priv->hls)
        post_status(self, gstmtx::ConnectionState::Fallback, "playing over HLS while WebRTC is unavailable", -1,
                    "hls");
    });
  }
  gst_object_unref(hls);
}

/* hlsdemux exposed a rendition: decode or parse it. Streaming thread. */
static void on_hls_rendition(GstElement *demux, GstPad *pad, gpointer data) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(data);
  bool decode;
  {
    std::lock_guard<std::mutex> guard(self->priv->lock);
    decode = self->priv->settings.decode;
  }
  GstElement *hls = GST_ELEMENT(gst_object_get_parent(GST_OBJECT(demux)));
  GstElement *decoder = gst_element_factory_make(decode ? "decodebin" : "parsebin", nullptr);
  g_signal_connect(decoder, "pad-added", G_CALLBACK(on_hls_stream), self);
  gst_bin_add(GST_BIN(hls), decoder);
  gst_element_sync_state_with_parent(decoder);
  GstPad *sink = gst_element_get_static_pad(decoder, "sink");
  gst_pad_link(pad, sink);
  gst_object_unref(sink);
  gst_object_unref(hls);
}

/* No HLS media for `timeout_ms` (hlsdemux can stall, e.g. on the gap segments MediaMTX lists while
 * its muxer warms up): restart the HLS chain. Control thread. */
static void schedule_hls_watchdog(GstMtxWhepSrc *self, guint timeout_ms) {
  GstWhepSrcPrivate *priv = self->priv;
  priv->loop->cancel(priv->hls_watchdog_timer);
  priv->hls_watchdog_timer = priv->loop->schedule(gstmtx::Millis(500), [self, timeout_ms] {
    GstWhepSrcPrivate *priv = self->priv;
    priv->hls_watchdog_timer = 0;
    if (!priv->hls || !priv->hls_clock)
      return;
    const gint64 last = std::max<gint64>(priv->hls_clock->last_media_us.load(), priv->hls_started_us);
    if (g_get_monotonic_time() - last > static_cast<gint64>(timeout_ms) * 1000) {
      on_hls_failed(self, "no HLS media for " + std::to_string(timeout_ms) + " ms");
      return;
    }
    schedule_hls_watchdog(self, timeout_ms);
  });
}

/* Starts playing the path over HLS. Control thread. */
static void start_hls(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  if (priv->hls || !priv->running)
    return;
  const Settings s = settings_snapshot(self);
  const std::string location = !s.hls_location.empty() ? s.hls_location : gstmtx::hls_url_for_endpoint(*priv->endpoint);
  GstElement *src = gst_element_factory_make("souphttpsrc", nullptr);
  /* hlsdemux, not hlsdemux2: the 1.22 hlsdemux2 trips over MediaMTX's low-latency playlists */
  GstElement *demux = gst_element_factory_make("hlsdemux", nullptr);
  if (!src || !demux) {
    if (src)
      gst_object_unref(src);
    if (demux)
      gst_object_unref(demux);
    GST_ELEMENT_WARNING(self, CORE, MISSING_PLUGIN,
                        ("HLS fallback unavailable: souphttpsrc or hlsdemux is missing (gstreamer1.0-plugins-good/bad)"),
                        (nullptr));
    return;
  }
  g_object_set(src, "location", location.c_str(), "timeout", 10, nullptr);
  const std::string user = !s.user_id.empty() ? s.user_id : priv->endpoint->user;
  const std::string pass = !s.user_id.empty() ? s.user_pw : priv->endpoint->password;
  if (!user.empty())
    g_object_set(src, "user-id", user.c_str(), "user-pw", pass.c_str(), nullptr);
  if (!s.tls_ca_file.empty())
    g_object_set(src, "ssl-ca-file", s.tls_ca_file.c_str(), nullptr);
  if (!s.tls_validation)
    g_object_set(src, "ssl-strict", FALSE, nullptr);
  GstElement *hls = gst_bin_new(nullptr);
  g_object_set_data(G_OBJECT(hls), kHlsMarker, GINT_TO_POINTER(1));
  gst_bin_add_many(GST_BIN(hls), src, demux, nullptr);
  gst_element_link(src, demux);
  g_signal_connect(demux, "pad-added", G_CALLBACK(on_hls_rendition), self);
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    priv->hls = GST_ELEMENT(gst_object_ref(hls));
    priv->hls_clock = std::make_shared<HlsClock>();
    priv->hls_clock->element = GST_ELEMENT(self);
    priv->hls_active = true;
  }
  GST_INFO_OBJECT(self, "starting the HLS fallback from %s", gstmtx::redact_url(location).c_str());
  gst_bin_add(GST_BIN(self), hls);
  gst_element_sync_state_with_parent(hls);
  priv->hls_started_us = g_get_monotonic_time();
  schedule_hls_watchdog(self, std::max(s.timeout, 5000u));
}

/* Stops the HLS fallback; its outputs lose their target until WebRTC takes them. Control thread. */
static void stop_hls(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  priv->loop->cancel(priv->hls_restart_timer);
  priv->hls_restart_timer = 0;
  priv->loop->cancel(priv->hls_watchdog_timer);
  priv->hls_watchdog_timer = 0;
  GstElement *hls;
  std::vector<GstPad *> ghosts;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    hls = priv->hls;
    priv->hls = nullptr;
    priv->hls_active = false;
    for (auto &out : priv->outputs) {
      if (out->from_hls) {
        out->from_hls = false;
        out->chain = nullptr;
        ghosts.push_back(GST_PAD(gst_object_ref(out->ghost)));
      }
    }
  }
  if (!hls)
    return;
  GST_INFO_OBJECT(self, "stopping the HLS fallback");
  for (GstPad *ghost : ghosts) {
    gst_ghost_pad_set_target(GST_GHOST_PAD(ghost), nullptr);
    gst_object_unref(ghost);
  }
  /* 1.22's hlsdemux can block its state change while a download is being retried: tear it down
   * off the control thread so reconnection never waits on it */
  gst_element_set_locked_state(hls, TRUE);
  gst_object_ref(self);
  gst_element_call_async(
      hls,
      [](GstElement *element, gpointer data) {
        auto *owner = GST_WHEP_SRC(data);
        gst_element_set_state(element, GST_STATE_NULL);
        gst_bin_remove(GST_BIN(owner), element);
        gst_object_unref(owner);
      },
      self, nullptr);
  gst_object_unref(hls);
}

/* An error inside the HLS chain: restart it after the retry delay, unless WebRTC is back. */
static void on_hls_failed(GstMtxWhepSrc *self, const std::string &reason) {
  GstWhepSrcPrivate *priv = self->priv;
  if (!priv->hls)
    return;
  GST_WARNING_OBJECT(self, "HLS fallback failed: %s", reason.c_str());
  stop_hls(self);
  guint delay;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    delay = priv->settings.retry_delay;
  }
  priv->hls_restart_timer = priv->loop->schedule(gstmtx::Millis(std::min(std::max(delay, 500u), 5000u)), [self] {
    self->priv->hls_restart_timer = 0;
    if (self->priv->running && !(self->priv->peer && self->priv->peer->is_connected()))
      start_hls(self);
  });
}

/* ---- sessions (control thread) ---- */

/* Calls fn(field name, value) for every field of s. gst_structure_foreach (quark names) is
 * deprecated from GStreamer 1.26 on, where gst_structure_foreach_id_str replaces it. */
template <typename Fn> static void for_each_field(const GstStructure *s, Fn fn) {
#if GST_CHECK_VERSION(1, 26, 0)
  gst_structure_foreach_id_str(
      s,
      [](const GstIdStr *field, const GValue *value, gpointer data) -> gboolean {
        (*static_cast<Fn *>(data))(gst_id_str_as_str(field), value);
        return TRUE;
      },
      &fn);
#else
  gst_structure_foreach(
      s,
      [](GQuark field, const GValue *value, gpointer data) -> gboolean {
        (*static_cast<Fn *>(data))(g_quark_to_string(field), value);
        return TRUE;
      },
      &fn);
#endif
}

static gstmtx::Headers extra_headers_of(const GstStructure *s) {
  gstmtx::Headers headers;
  if (!s)
    return headers;
  for_each_field(s, [&headers](const char *field, const GValue *value) {
    if (G_VALUE_HOLDS_STRING(value) && g_value_get_string(value))
      headers.emplace_back(field, g_value_get_string(value));
  });
  return headers;
}

static void schedule_media_watchdog(GstMtxWhepSrc *self, guint timeout_ms);

/* rtpjitterbuffer's rtx-next-seqnum (on by default) expects the packet after the newest one at an
 * estimated time and, once it is later than that by the latency, requests it and calls it lost;
 * when it then arrives it is dropped as too late. A frame's first packet is often that late (encode
 * time varies from frame to frame), so at small latencies most pictures broke until the next
 * keyframe (docs/benchmarks.md, latency 0 and 5). Retransmissions are requested for real gaps
 * only. Called from rtpbin's streaming thread. */
static void on_new_jitterbuffer(GstElement *, GstElement *jitterbuffer, guint, guint, gpointer) {
  if (g_object_class_find_property(G_OBJECT_GET_CLASS(jitterbuffer), "rtx-next-seqnum"))
    g_object_set(jitterbuffer, "rtx-next-seqnum", FALSE, nullptr);
}

/* Creates a webrtcbin with recvonly transceivers and starts the WHEP exchange. */
static void start_session(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  if (!priv->running)
    return;
  gstmtx::Headers extra;
  const Settings s = settings_snapshot(self, &extra);
  if (!priv->hls) /* while HLS plays, the state stays "fallback" until WebRTC is back */
    post_status(self, priv->attempts == 0 ? gstmtx::ConnectionState::Connecting : gstmtx::ConnectionState::Reconnecting,
                priv->attempts == 0 ? "connecting to " + gstmtx::redact_url(priv->endpoint->url) : "new session");

  GstElement *webrtc = gst_element_factory_make("webrtcbin", nullptr);
  if (!webrtc) {
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN,
                      ("webrtcbin is missing: install gstreamer1.0-plugins-bad and gstreamer1.0-nice"), (nullptr));
    return;
  }
  g_object_set(webrtc, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_COMPAT, "latency", s.latency, nullptr);
  /* Retransmission requests (NACK) only when the jitter buffer can wait for the answer: at
   * latency 0 it passes packets on at once and calls a gap lost at once, so a retransmission
   * always comes too late and is dropped. */
  const bool nack = s.latency > 0;
  if (GstElement *rtpbin = gst_bin_get_by_name(GST_BIN(webrtc), "rtpbin")) {
    g_signal_connect(rtpbin, "new-jitterbuffer", G_CALLBACK(on_new_jitterbuffer), nullptr);
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
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN,
                      ("None of the requested codecs can be received: their depayloaders are missing"), (nullptr));
    return;
  }

  {
    std::lock_guard<std::mutex> guard(priv->lock);
    priv->generation++;
    priv->exposed_this_generation = 0;
    priv->webrtc = GST_ELEMENT(gst_object_ref(webrtc));
    priv->attempt_started_us = g_get_monotonic_time();
    priv->attempts++;
  }
  g_signal_connect(webrtc, "pad-added", G_CALLBACK(on_webrtc_pad_added), self);
  gst_bin_add(GST_BIN(self), webrtc);
  gst_element_sync_state_with_parent(webrtc);

  gstmtx::SessionConfig session;
  session.endpoint = priv->endpoint->url;
  session.kind = gstmtx::HttpEndpointKind::Whep;
  session.stream_path = priv->endpoint->stream_path;
  session.auth_token = s.auth_token;
  session.user = !s.user_id.empty() ? s.user_id : priv->endpoint->user;
  session.password = !s.user_id.empty() ? s.user_pw : priv->endpoint->password;
  session.extra_headers = extra;
  session.request_timeout = gstmtx::Millis(std::min<guint>(s.timeout, 10000));

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

  gstmtx::WebrtcPeer::Events events;
  events.answered = [self](const gstmtx::OfferAnswer &answer) {
    /* count the streams the server will send, to signal no-more-pads once they are all out */
    GstSDPMessage *sdp = nullptr;
    int streams = 0;
    if (gst_sdp_message_new_from_text(answer.answer_sdp.c_str(), &sdp) == GST_SDP_OK) {
      for (guint i = 0; i < gst_sdp_message_medias_len(sdp); ++i) {
        const GstSDPMedia *m = gst_sdp_message_get_media(sdp, i);
        if (gst_sdp_media_get_port(m) != 0 && !gst_sdp_media_get_attribute_val(m, "inactive") &&
            !gst_sdp_media_get_attribute_val(m, "recvonly"))
          ++streams;
      }
    }
    if (sdp) /* allocated even when parsing fails (e.g. an empty text) */
      gst_sdp_message_free(sdp);
    std::lock_guard<std::mutex> guard(self->priv->lock);
    self->priv->expected_streams = streams;
    GST_DEBUG_OBJECT(self, "answer applied: %d streams, resource %s", streams,
                     gstmtx::redact_url(answer.resource_url).c_str());
  };
  events.connected = [self]() {
    /* media can only flow from now on: the no-media window starts again */
    self->priv->last_media_us = g_get_monotonic_time();
    self->priv->backoff.on_connected(gstmtx::Clock::now());
    self->priv->consecutive_failures = 0;
    post_status(self, gstmtx::ConnectionState::Connected,
                self->priv->hls ? "WebRTC connected: leaving the HLS fallback" : "WebRTC connected");
  };
  events.failed = [self](gstmtx::SessionError error) { on_session_failed(self, std::move(error)); };

  priv->last_media_us = 0;
  priv->peer = std::make_unique<gstmtx::WebrtcPeer>(*priv->loop, *priv->http, webrtc, session, peer, events);
  priv->peer->start();
  schedule_media_watchdog(self, s.timeout);
}

/* No media for `timeout` since the session started or since the last buffer: fail the session. */
static void schedule_media_watchdog(GstMtxWhepSrc *self, guint timeout_ms) {
  GstWhepSrcPrivate *priv = self->priv;
  priv->loop->cancel(priv->media_timer);
  priv->media_timer = priv->loop->schedule(gstmtx::Millis(250), [self, timeout_ms] {
    GstWhepSrcPrivate *priv = self->priv;
    priv->media_timer = 0;
    if (!priv->running || !priv->peer)
      return;
    const gint64 now = g_get_monotonic_time();
    const gint64 last = std::max<gint64>(priv->last_media_us.load(), priv->attempt_started_us);
    if (now - last > static_cast<gint64>(timeout_ms) * 1000) {
      gstmtx::SessionError e;
      e.kind = gstmtx::SessionErrorKind::Retry;
      e.message = priv->last_media_us.load() ? "no media for " + std::to_string(timeout_ms) + " ms"
                                             : "no media within " + std::to_string(timeout_ms) + " ms of connecting";
      on_session_failed(self, e);
      return;
    }
    schedule_media_watchdog(self, timeout_ms);
  });
}

/* Tears the current session down: DELETE on the server, webrtcbin and chains out of the bin,
 * ghost pads left in place without a target. Control thread (synchronous_delete=false) or
 * application thread during a state change (true). */
static void stop_session(GstMtxWhepSrc *self, bool synchronous_delete) {
  GstWhepSrcPrivate *priv = self->priv;
  std::unique_ptr<gstmtx::WebrtcPeer> peer;
  if (synchronous_delete) {
    priv->loop->run_sync([&] {
      priv->loop->cancel(priv->media_timer);
      priv->media_timer = 0;
      peer = std::move(priv->peer);
    });
    if (peer) {
      peer->release_sync();
      priv->loop->run_sync([&] { peer.reset(); });
    }
  } else {
    priv->loop->cancel(priv->media_timer);
    priv->media_timer = 0;
    peer = std::move(priv->peer);
    if (peer) {
      peer->release();
      peer.reset();
    }
  }

  GstElement *webrtc;
  std::vector<GstElement *> chains;
  std::vector<GstPad *> ghosts;
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
      ghosts.push_back(GST_PAD(gst_object_ref(out->ghost)));
    }
  }
  for (GstPad *ghost : ghosts) {
    gst_ghost_pad_set_target(GST_GHOST_PAD(ghost), nullptr);
    gst_object_unref(ghost);
  }
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
    if (GST_IS_BIN(child) && !is_hls && !g_object_get_data(G_OBJECT(child), kHlsMarker) &&
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

/* called on the control thread */
static void on_session_failed(GstMtxWhepSrc *self, gstmtx::SessionError error) {
  GstWhepSrcPrivate *priv = self->priv;
  if (!priv->running)
    return;
  GST_WARNING_OBJECT(self, "session failed: %s (%s)", error.message.c_str(), error.debug.c_str());
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    priv->last_error = error.message;
  }
  const bool was_connected = priv->peer && priv->peer->is_connected();
  stop_session(self, false);
  if (was_connected)
    priv->backoff.on_disconnected(gstmtx::Clock::now());

  if (error.fatal()) {
    post_status(self, gstmtx::ConnectionState::Failed, error.message);
    if (error.kind == gstmtx::SessionErrorKind::Unauthorized)
      GST_ELEMENT_ERROR(self, RESOURCE, NOT_AUTHORIZED, ("%s", error.message.c_str()), ("%s", error.debug.c_str()));
    else
      GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("%s", error.message.c_str()), ("%s", error.debug.c_str()));
    return;
  }
  priv->consecutive_failures++;
  bool hls_fallback;
  guint fallback_attempts, max_retry_delay;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    hls_fallback = priv->settings.hls_fallback;
    fallback_attempts = priv->settings.hls_fallback_attempts;
    max_retry_delay = std::max(priv->settings.max_retry_delay, priv->settings.retry_delay);
  }
  if (hls_fallback && !priv->hls && priv->consecutive_failures >= static_cast<int>(fallback_attempts)) {
    GST_INFO_OBJECT(self, "WebRTC failed %d times: falling back to HLS", priv->consecutive_failures);
    start_hls(self);
  }
  auto delay = priv->backoff.next_delay(error.retry_after);
  if (!delay && priv->hls)
    delay = gstmtx::Millis(max_retry_delay); /* HLS plays: keep trying to get back to WebRTC */
  if (!delay) {
    post_status(self, gstmtx::ConnectionState::Failed, error.message);
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ,
                      ("Gave up after %d attempts: %s", priv->backoff.attempts(), error.message.c_str()),
                      ("%s", error.debug.c_str()));
    return;
  }
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    priv->reconnects++;
  }
  if (priv->hls)
    post_status(self, gstmtx::ConnectionState::Fallback, "on HLS; WebRTC: " + error.message, delay->count(), "hls");
  else
    post_status(self, gstmtx::ConnectionState::Reconnecting, error.message, delay->count());
  priv->retry_timer = priv->loop->schedule(*delay, [self] {
    self->priv->retry_timer = 0;
    start_session(self);
  });
}

/* ---- stats (application thread) ---- */

static GstStructure *build_stats(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  GstElement *webrtc = nullptr;
  GstStructure *s;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    s = gst_structure_new("application/x-whepsrc-stats",
                          "state", G_TYPE_STRING, gstmtx::connection_state_name(priv->state),
                          "attempts", G_TYPE_INT, priv->attempts,
                          "reconnects", G_TYPE_INT, priv->reconnects,
                          "last-error", G_TYPE_STRING, priv->last_error.c_str(),
                          "frames", G_TYPE_UINT64, static_cast<guint64>(priv->frames.load()),
                          "bytes-received", G_TYPE_UINT64, static_cast<guint64>(priv->bytes.load()),
                          "time-to-first-frame-ms", G_TYPE_DOUBLE,
                          priv->first_frame_latency_us < 0 ? -1.0 : priv->first_frame_latency_us / 1000.0,
                          nullptr);
    if (priv->peer) {
      /* the current attempt's handshake milestones, g_get_monotonic_time() microseconds (0: not
       * reached yet), so a caller can split time to first frame into its parts */
      const gstmtx::PeerTimings &t = priv->peer->timings();
      gst_structure_set(s, "peer-started-us", G_TYPE_INT64, t.started, "offer-created-us", G_TYPE_INT64,
                        t.offer_created, "answer-received-us", G_TYPE_INT64, t.answer_received,
                        "connected-us", G_TYPE_INT64, t.connected, nullptr);
    }
    if (priv->webrtc)
      webrtc = GST_ELEMENT(gst_object_ref(priv->webrtc));
  }
  if (!webrtc)
    return s;
  /* webrtcbin's own statistics, bounded so a stuck webrtcbin cannot hang the caller */
  GstPromise *promise = gst_promise_new();
  g_signal_emit_by_name(webrtc, "get-stats", nullptr, promise);
  gint64 deadline = g_get_monotonic_time() + 500 * 1000;
  while (gst_promise_wait(promise) == GST_PROMISE_RESULT_PENDING && g_get_monotonic_time() < deadline)
    g_usleep(1000);
  const GstStructure *reply = gst_promise_get_reply(promise);
  if (reply) {
    /* Candidates are resolved through the selected pair's ids: webrtcbin 1.22 labels local
     * candidates "remote-candidate" and the other way round, but the ids are right. */
    struct Accumulator {
      guint64 packets_lost = 0;
      double jitter = 0, rtt = -1;
      std::string selected_pair, first_pair, pair_local, pair_remote;
      std::map<std::string, std::string> candidates; /* id -> "address:port (type)" */
      std::map<std::string, std::pair<std::string, std::string>> pairs;
    } acc;
    for_each_field(reply, [&acc](const char *, const GValue *value) {
      auto *a = &acc;
      if (!GST_VALUE_HOLDS_STRUCTURE(value))
        return;
      const GstStructure *st = gst_value_get_structure(value);
      GstWebRTCStatsType type;
      if (!gst_structure_get(st, "type", GST_TYPE_WEBRTC_STATS_TYPE, &type, nullptr))
        return;
      const char *id = gst_structure_get_string(st, "id");
      if (type == GST_WEBRTC_STATS_INBOUND_RTP) {
        gint64 lost = 0;
        double j = 0;
        if (gst_structure_get_int64(st, "packets-lost", &lost) && lost > 0)
          a->packets_lost += static_cast<guint64>(lost);
        if (gst_structure_get_double(st, "jitter", &j))
          a->jitter = std::max(a->jitter, j);
      } else if (type == GST_WEBRTC_STATS_REMOTE_INBOUND_RTP || type == GST_WEBRTC_STATS_REMOTE_OUTBOUND_RTP) {
        double r;
        if (gst_structure_get_double(st, "round-trip-time", &r))
          a->rtt = r;
      } else if ((type == GST_WEBRTC_STATS_LOCAL_CANDIDATE || type == GST_WEBRTC_STATS_REMOTE_CANDIDATE) && id) {
        const char *addr = gst_structure_get_string(st, "address");
        guint port = 0;
        gst_structure_get_uint(st, "port", &port);
        const char *ctype = gst_structure_get_string(st, "candidate-type");
        const char *proto = gst_structure_get_string(st, "protocol");
        a->candidates[id] = std::string(addr ? addr : "?") + ":" + std::to_string(port) + " " +
                            (proto ? proto : "") + " " + (ctype ? ctype : "?");
      } else if (type == GST_WEBRTC_STATS_CANDIDATE_PAIR && id) {
        const char *l = gst_structure_get_string(st, "local-candidate-id");
        const char *r = gst_structure_get_string(st, "remote-candidate-id");
        a->pairs[id] = {l ? l : "", r ? r : ""};
        if (a->first_pair.empty())
          a->first_pair = id;
      } else if (type == GST_WEBRTC_STATS_TRANSPORT) {
        if (const char *sel = gst_structure_get_string(st, "selected-candidate-pair-id"))
          a->selected_pair = sel;
      }
    });
    auto pair = acc.pairs.find(acc.selected_pair.empty() ? acc.first_pair : acc.selected_pair);
    if (pair != acc.pairs.end()) {
      acc.pair_local = acc.candidates[pair->second.first];
      acc.pair_remote = acc.candidates[pair->second.second];
    }
    gst_structure_set(s, "packets-lost", G_TYPE_UINT64, acc.packets_lost, "jitter", G_TYPE_DOUBLE, acc.jitter,
                      "round-trip-time", G_TYPE_DOUBLE, acc.rtt, "local-candidate", G_TYPE_STRING,
                      acc.pair_local.c_str(), "remote-candidate", G_TYPE_STRING, acc.pair_remote.c_str(), nullptr);
  }
  gst_promise_unref(promise);
  gst_object_unref(webrtc);
  return s;
}

/* ---- GstURIHandler: whep:// and wheps:// ---- */

static GstURIType gst_whep_src_uri_get_type(GType) { return GST_URI_SRC; }

static const gchar *const *gst_whep_src_uri_get_protocols(GType) {
  static const gchar *protocols[] = {"whep", "wheps", nullptr};
  return protocols;
}

static gchar *gst_whep_src_uri_get_uri(GstURIHandler *handler) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(handler);
  std::lock_guard<std::mutex> guard(self->priv->lock);
  return self->priv->settings.location.empty() ? nullptr : g_strdup(self->priv->settings.location.c_str());
}

static gboolean gst_whep_src_uri_set_uri(GstURIHandler *handler, const gchar *uri, GError **error) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(handler);
  std::string reason;
  if (!gstmtx::parse_webrtc_http_location(uri ? uri : "", gstmtx::HttpEndpointKind::Whep, &reason)) {
    g_set_error(error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI, "Invalid WHEP URI: %s", reason.c_str());
    return FALSE;
  }
  std::lock_guard<std::mutex> guard(self->priv->lock);
  self->priv->settings.location = uri;
  return TRUE;
}

static void gst_whep_src_uri_handler_init(gpointer g_iface, gpointer) {
  auto *iface = static_cast<GstURIHandlerInterface *>(g_iface);
  iface->get_type = gst_whep_src_uri_get_type;
  iface->get_protocols = gst_whep_src_uri_get_protocols;
  iface->get_uri = gst_whep_src_uri_get_uri;
  iface->set_uri = gst_whep_src_uri_set_uri;
}
