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
 * This file is the GObject glue: properties, state changes, bus messages of the children, the URI
 * handler. whepsrc_private.h lists the other files. Reconnection (retry properties, backoff,
 * status messages, the control thread) is gstmtx::ReconnectController's.
 *
 * Threads: the protocol (HTTP, webrtcbin negotiation, timers, reconnection) runs on the
 * controller's thread "mtx-whepsrc" ("control thread"); receive chains are built on webrtcbin's
 * streaming thread in pad-added; state changes come from the application thread.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "whepsrc_private.h"

#include "elements.h"

GST_DEBUG_CATEGORY(gst_whep_src_debug);

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
  PROP_TLS_CA_FILE,
  PROP_TLS_VALIDATION,
  PROP_HLS_FALLBACK,
  PROP_HLS_LOCATION,
  PROP_HLS_FALLBACK_ATTEMPTS,
  PROP_PLACEHOLDER,
  PROP_PLACEHOLDER_CAPS,
  PROP_CONTROLLER_FIRST, /* retry-delay, max-retry-delay, max-retries, retry-jitter, connection-state */
  PROP_STATS = PROP_CONTROLLER_FIRST + gstmtx::ReconnectController::kPropertyCount,
};

GstWhepSrcPrivate::GstWhepSrcPrivate(GstMtxWhepSrc *self)
    : controller(GST_ELEMENT(self), "whepsrc", gstmtx::StreamDirection::Read) {
  controller.set_transport("webrtc");
}

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
                        0, 10000, whepsrc::kDefaultLatency, rw));
  g_object_class_install_property(gobject_class, PROP_VIDEO_CODECS,
      g_param_spec_string("video-codecs", "Video codecs",
                          "Video codecs to offer, in order of preference (H264, VP8, VP9, AV1, H265); "
                          "empty to receive no video",
                          gstmtx::kDefaultVideoCodecs, rw));
  g_object_class_install_property(gobject_class, PROP_AUDIO_CODECS,
      g_param_spec_string("audio-codecs", "Audio codecs", "Audio codecs to offer, in order of preference (OPUS, G722, PCMU, PCMA)",
                          gstmtx::kDefaultAudioCodecs, rw));
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
                        500, G_MAXINT, whepsrc::kDefaultTimeout, rw));
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
                        "Failed WebRTC attempts in one outage (see retry-delay) before the HLS fallback starts", 1, 1000,
                        whepsrc::kDefaultHlsFallbackAttempts, rw));
  g_object_class_install_property(gobject_class, PROP_PLACEHOLDER,
      g_param_spec_enum("placeholder", "Placeholder",
                        "What the video pad shows while the session delivers no picture (before the first one, "
                        "while connecting, waiting for the publisher, reconnecting, on the way to the HLS "
                        "fallback, and before an error that ends the pipeline). none: nothing, no invented frames; "
                        "status: a generated slate at the stream's size and rate (placeholder-caps until the "
                        "first picture) naming the path and the state, and GAP events on audio pads; needs "
                        "decode=true",
                        GST_TYPE_MTX_WHEP_PLACEHOLDER, GST_MTX_WHEP_PLACEHOLDER_NONE, rw));
  g_object_class_install_property(gobject_class, PROP_PLACEHOLDER_CAPS,
      g_param_spec_boxed("placeholder-caps", "Placeholder caps",
                         "Raw video caps of the placeholder slate before the first live picture (afterwards it "
                         "takes the live picture's size and rate)",
                         GST_TYPE_CAPS, rw));
  gstmtx::ReconnectController::install_properties(gobject_class, PROP_CONTROLLER_FIRST);
  g_object_class_install_property(gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
                         "Connection statistics (never waits on webrtcbin: its figures are read every second "
                         "while a session runs). state: as connection-state; attempts: failed attempts in the "
                         "current outage (0 once a session delivered media); sessions: sessions started since "
                         "READY->PAUSED; reconnects: retries scheduled; last-error: the last failure; frames: "
                         "video frames passed on; bytes-received: media bytes received; time-to-first-frame-ms: "
                         "from the start of the session that produced the first picture (-1: none yet); "
                         "packets-lost, jitter (s), round-trip-time (s, -1: unknown), local-candidate and "
                         "remote-candidate (the selected ICE pair): webrtcbin's figures for the current session; "
                         "peer-started-us, offer-created-us, answer-received-us, connected-us: its handshake "
                         "milestones (monotonic microseconds, 0: not reached); placeholder-text: the words on the "
                         "placeholder slate while it shows (placeholder=status), empty while live pictures play",
                         GST_TYPE_STRUCTURE, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_type_mark_as_plugin_api(GST_TYPE_MTX_WHEP_PLACEHOLDER, static_cast<GstPluginAPIFlags>(0));
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
  self->priv = new GstWhepSrcPrivate(self);
  whepsrc::install_controller_hooks(self);
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
  if (priv->preload.joinable())
    priv->preload.join();
  delete priv;
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

static std::string dup_string(const GValue *value) {
  const char *s = g_value_get_string(value);
  return s ? s : "";
}

static void gst_whep_src_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(object);
  if (self->priv->controller.set_property(PROP_CONTROLLER_FIRST, prop_id, value))
    return;
  std::lock_guard<std::mutex> guard(self->priv->lock);
  whepsrc::Settings &s = self->priv->settings;
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
  case PROP_TLS_CA_FILE: s.tls_ca_file = dup_string(value); break;
  case PROP_TLS_VALIDATION: s.tls_validation = g_value_get_boolean(value); break;
  case PROP_HLS_FALLBACK: s.hls_fallback = g_value_get_boolean(value); break;
  case PROP_HLS_LOCATION: s.hls_location = dup_string(value); break;
  case PROP_HLS_FALLBACK_ATTEMPTS: s.hls_fallback_attempts = g_value_get_uint(value); break;
  case PROP_PLACEHOLDER: s.placeholder = static_cast<GstMtxWhepPlaceholder>(g_value_get_enum(value)); break;
  case PROP_PLACEHOLDER_CAPS: {
    const GstCaps *caps = gst_value_get_caps(value);
    if (caps) {
      g_autofree gchar *text = gst_caps_to_string(caps);
      s.placeholder_caps = text;
    } else {
      s.placeholder_caps = whepsrc::kDefaultPlaceholderCaps;
    }
    break;
  }
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

static void gst_whep_src_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(object);
  if (prop_id == PROP_STATS) {
    /* from the stats cache: never waits on webrtcbin */
    g_value_take_boxed(value, whepsrc::build_stats(self));
    return;
  }
  if (self->priv->controller.get_property(PROP_CONTROLLER_FIRST, prop_id, value))
    return;
  std::lock_guard<std::mutex> guard(self->priv->lock);
  const whepsrc::Settings &s = self->priv->settings;
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
  case PROP_TLS_CA_FILE: g_value_set_string(value, str(s.tls_ca_file)); break;
  case PROP_TLS_VALIDATION: g_value_set_boolean(value, s.tls_validation); break;
  case PROP_HLS_FALLBACK: g_value_set_boolean(value, s.hls_fallback); break;
  case PROP_HLS_LOCATION: g_value_set_string(value, str(s.hls_location)); break;
  case PROP_HLS_FALLBACK_ATTEMPTS: g_value_set_uint(value, s.hls_fallback_attempts); break;
  case PROP_PLACEHOLDER: g_value_set_enum(value, s.placeholder); break;
  case PROP_PLACEHOLDER_CAPS: g_value_take_boxed(value, gst_caps_from_string(s.placeholder_caps.c_str())); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

/* ---- state changes (application thread) ---- */

static gstmtx::Headers extra_headers_of(const GstStructure *s) {
  gstmtx::Headers headers;
  if (!s)
    return headers;
  whepsrc_for_each_field(s, [&headers](const char *field, const GValue *value) {
    if (G_VALUE_HOLDS_STRING(value) && g_value_get_string(value))
      headers.emplace_back(field, g_value_get_string(value));
  });
  return headers;
}

/* A copy of the settings for use without the lock. The copy never holds the borrowed
 * extra-headers structure: it comes out as header pairs in *extra_headers when asked for.
 * Any thread. */
whepsrc::Settings whepsrc::settings_snapshot(GstMtxWhepSrc *self, gstmtx::Headers *extra_headers) {
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
  const whepsrc::Settings s = whepsrc::settings_snapshot(self);
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
  priv->controller.prepare();
  gstmtx::HttpClientConfig http_config;
  http_config.user_agent = "gst-mediamtx-whepsrc/" PACKAGE_VERSION;
  http_config.tls_ca_file = s.tls_ca_file;
  http_config.tls_validate = s.tls_validation;
  auto http = std::make_unique<gstmtx::HttpClient>(priv->controller.loop(), http_config);
  if (!http->config_error().empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("%s", http->config_error().c_str()), (nullptr));
    priv->controller.loop().run_sync([&] { http.reset(); });
    priv->controller.release();
    return false;
  }
  priv->http = std::move(http);
  /* while the session starts: the plugins it and its first packets need */
  whepsrc::preload_receive_plugins(self, s);
  return true;
}

static void release(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  if (priv->preload.joinable())
    priv->preload.join();
  if (priv->controller.has_loop())
    priv->controller.loop().run_sync([&] { priv->http.reset(); });
  priv->controller.release();
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
    /* the slate, built for each run with the settings of the run */
    if (!whepsrc::placeholder_prepare(self, whepsrc::settings_snapshot(self)))
      return GST_STATE_CHANGE_FAILURE;
    priv->eos_requested = false;
    whepsrc::placeholder_expose(self);
    priv->controller.start();
    priv->controller.post([self] { whepsrc::start_session(self); });
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
    /* the run ends: no retry, no timer, no HLS; the session goes with a bounded DELETE */
    priv->controller.stop([self] { whepsrc::stop_hls(self); });
    whepsrc::stop_session(self, true);
    whepsrc::placeholder_release(self);
    {
      std::lock_guard<std::mutex> guard(priv->lock);
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

/* An error inside the session (webrtcbin, a depayloader, a decoder) ends that session, not the
 * pipeline: it becomes a failure the controller retries (a missing plugin: one it gives up on).
 * Errors of the HLS fallback restart the fallback. Called from the posting thread. */
static void gst_whep_src_handle_message(GstBin *bin, GstMessage *message) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(bin);
  GstWhepSrcPrivate *priv = self->priv;
  GstElement *hls;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    hls = priv->hls ? GST_ELEMENT(gst_object_ref(priv->hls)) : nullptr;
  }
  const bool from_hls = hls && (GST_MESSAGE_SRC(message) == GST_OBJECT(hls) ||
                                gst_object_has_as_ancestor(GST_MESSAGE_SRC(message), GST_OBJECT(hls)));
  if (hls)
    gst_object_unref(hls);
  if (!from_hls && whepsrc::inside_hls_bin(GST_MESSAGE_SRC(message))) {
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
    priv->controller.post([self, text] { whepsrc::on_hls_failed(self, text); });
    return;
  }
  if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR && GST_MESSAGE_SRC(message) != GST_OBJECT(self) &&
      priv->controller.running()) {
    GError *err = nullptr;
    gchar *debug = nullptr;
    gst_message_parse_error(message, &err, &debug);
    gstmtx::Failure failure = gstmtx::Failure::retry(
        std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(message))) + ": " + (err ? err->message : "error"),
        debug ? debug : "");
    if (err && g_error_matches(err, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN)) {
      failure.kind = gstmtx::FailureKind::MissingPlugin;
    } else if (err) {
      failure.domain = err->domain; /* the child's own error, should the element give up on it */
      failure.code = err->code;
    }
    g_clear_error(&err);
    g_free(debug);
    GST_WARNING_OBJECT(self, "session error: %s (%s)", failure.message.c_str(), failure.debug.c_str());
    gst_message_unref(message);
    priv->controller.report_failure(priv->controller.current_session(), std::move(failure));
    return;
  }
  GST_BIN_CLASS(parent_class)->handle_message(bin, message);
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
