/* gst-mediamtx: mediamtxsink — publish a camera to MediaMTX in one element, and keep publishing.
 *
 *   ghost "video" -> [videoconvert ! encoder ! capsfilter] ! h264parse config-interval=-1 -+
 *   ghost "audio" -> [audioconvert ! audioresample ! opusenc | opusparse] ----------------+-> tail pads
 *                                                      stable half (built on first caps) |
 *   tail pads -> network half (a Publisher: RTSP = leaky queue per stream ! rtspclientsink,
 *                              WHIP = queue ! payloader per stream ! webrtcbin)
 *
 * The stable half (encode_chain.cpp) lives as long as the element runs. The network half
 * (connection.cpp) is built, torn down and rebuilt on the element's control thread by its
 * gstmtx::ReconnectController, which holds the retry properties, the backoff between attempts,
 * the status messages and the shared stats. While there is no session the tails drop and count
 * media, so the camera never blocks and never sees an error; after every (re)connection the first
 * video frame sent is a keyframe with SPS/PPS.
 *
 * This file is the GObject glue: pad templates, properties, stats, state changes, request pads
 * and the bus messages of the children.
 *
 * Threads: application thread (properties, state changes, request pads); streaming threads
 * (caps -> chain building, tail probes); rtspclientsink's and webrtcbin's threads (messages,
 * first-data probe); the control thread (sessions, retries, status, WHIP's HTTP). One lock,
 * priv->lock, guards settings, stats strings and the session's publisher; it is never held
 * across a call into another element.
 */
#include "gstmediamtxsink.h"

#include "encoder_selection.h"
#include "mediamtx_url.h"
#include "sink_private.h"

GST_DEBUG_CATEGORY(gst_mediamtx_sink_debug);
#define GST_CAT_DEFAULT gst_mediamtx_sink_debug

using mediamtxsink::Private;
using mediamtxsink::PublisherConfig;
using mediamtxsink::Settings;
using mediamtxsink::Stream;

/* ------------------------------------------------------------------------------------------ */
/* Pad templates */

#define VIDEO_CAPS                                                                              \
  "video/x-raw, format=(string)I420; video/x-raw, format=(string)NV12; video/x-raw; "           \
  "video/x-h264, stream-format=(string){ byte-stream, avc, avc3 }, alignment=(string){ au, nal }; " \
  "video/x-h265, stream-format=(string){ byte-stream, hvc1, hev1 }, alignment=(string){ au, nal }"
#define AUDIO_CAPS "audio/x-raw, format=(string)S16LE, rate=(int)48000; audio/x-raw; audio/x-opus"

static GstStaticPadTemplate video_template =
    GST_STATIC_PAD_TEMPLATE("video", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(VIDEO_CAPS));
static GstStaticPadTemplate audio_template =
    GST_STATIC_PAD_TEMPLATE("audio", GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS(AUDIO_CAPS));


/* ------------------------------------------------------------------------------------------ */
/* Properties */

enum {
  PROP_0,
  PROP_LOCATION,
  PROP_SERVER,
  PROP_PATH,
  PROP_TRANSPORT,
  PROP_RTSP_TRANSPORT,
  PROP_ENCODER,
  PROP_BITRATE,
  PROP_KEYFRAME_INTERVAL,
  PROP_PROFILE,
  PROP_USER_ID,
  PROP_USER_PW,
  PROP_AUTH_TOKEN,
  PROP_TLS_CA_FILE,
  PROP_TLS_VALIDATION,
  PROP_KEYFRAME_ON_JOIN,
  PROP_API_LOCATION,
  PROP_API_POLL_INTERVAL,
  PROP_ADAPTIVE_BITRATE,
  PROP_MIN_BITRATE,
  PROP_RETRANSMISSION,
  PROP_STATS,
  /* retry-delay, max-retry-delay, max-retries, retry-jitter, connection-state */
  PROP_RECONNECT_FIRST,
  PROP_RECONNECT_LAST = PROP_RECONNECT_FIRST + gstmtx::ReconnectController::kPropertyCount - 1,
};

GType gst_mediamtx_sink_transport_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_MEDIAMTX_SINK_TRANSPORT_RTSP, "RTSP RECORD through rtspclientsink", "rtsp"},
      {GST_MEDIAMTX_SINK_TRANSPORT_WHIP, "WebRTC-HTTP ingestion (WHIP)", "whip"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstMediamtxSinkTransport", values));
  return type;
}

GType gst_mediamtx_sink_rtsp_transport_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_MEDIAMTX_SINK_RTSP_TRANSPORT_TCP, "RTP interleaved in the RTSP TCP connection", "tcp"},
      {GST_MEDIAMTX_SINK_RTSP_TRANSPORT_UDP, "RTP over UDP", "udp"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstMediamtxSinkRtspTransport", values));
  return type;
}

/* ------------------------------------------------------------------------------------------ */

G_DEFINE_TYPE(GstMediamtxSink, gst_mediamtx_sink, GST_TYPE_BIN);
GST_ELEMENT_REGISTER_DEFINE(mediamtxsink, "mediamtxsink", GST_RANK_NONE, GST_TYPE_MEDIAMTX_SINK);

static void gst_mediamtx_sink_finalize(GObject *object);
static void gst_mediamtx_sink_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec);
static void gst_mediamtx_sink_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec);
static GstStateChangeReturn gst_mediamtx_sink_change_state(GstElement *element, GstStateChange transition);
static GstPad *gst_mediamtx_sink_request_new_pad(GstElement *element, GstPadTemplate *templ, const gchar *name,
                                                 const GstCaps *caps);
static void gst_mediamtx_sink_release_pad(GstElement *element, GstPad *pad);
static void gst_mediamtx_sink_handle_message(GstBin *bin, GstMessage *message);

static void gst_mediamtx_sink_class_init(GstMediamtxSinkClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstBinClass *bin_class = GST_BIN_CLASS(klass);

  gobject_class->finalize = gst_mediamtx_sink_finalize;
  gobject_class->set_property = gst_mediamtx_sink_set_property;
  gobject_class->get_property = gst_mediamtx_sink_get_property;

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const auto rw_playing =
      static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);

  g_object_class_install_property(gobject_class, PROP_LOCATION,
      g_param_spec_string("location", "Location",
          "Where to publish: rtsp://[user:password@]host:8554/path or rtsps://...; "
          "http(s)://host:8889/path/whip with transport=whip. Overrides server and path",
          nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_SERVER,
      g_param_spec_string("server", "Server",
          "MediaMTX server as host, host:port or URL, used with path when location is not set "
          "(RTSP port 8554 by default)",
          nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_PATH,
      g_param_spec_string("path", "Path", "MediaMTX path to publish on, e.g. raspberry-01 (with server)", nullptr,
          rw));
  g_object_class_install_property(gobject_class, PROP_TRANSPORT,
      g_param_spec_enum("transport", "Transport", "How to publish to MediaMTX: rtsp (rtspclientsink, the default) or whip (WebRTC through webrtcbin: H.264 and Opus)",
          GST_TYPE_MEDIAMTX_SINK_TRANSPORT, GST_MEDIAMTX_SINK_TRANSPORT_RTSP, rw));
  g_object_class_install_property(gobject_class, PROP_RTSP_TRANSPORT,
      g_param_spec_enum("rtsp-transport", "RTSP transport",
          "Lower transport for RTSP: tcp (interleaved, passes firewalls) or udp",
          GST_TYPE_MEDIAMTX_SINK_RTSP_TRANSPORT, GST_MEDIAMTX_SINK_RTSP_TRANSPORT_TCP, rw));
  g_object_class_install_property(gobject_class, PROP_ENCODER,
      g_param_spec_string("encoder", "Encoder",
          "H.264 encoder for raw video: auto (a working v4l2h264enc, else x264enc, else openh264enc) or an "
          "element name. Encoded input is never re-encoded",
          mediamtxsink::kDefaultEncoder, rw));
  g_object_class_install_property(gobject_class, PROP_BITRATE,
      g_param_spec_uint("bitrate", "Bitrate",
          "Video bitrate in kbit/s for raw input; 0: from the picture (2000 at 720p30, 4000 at 1080p30)", 0,
          100000, 0, rw_playing));
  g_object_class_install_property(gobject_class, PROP_KEYFRAME_INTERVAL,
      g_param_spec_uint("keyframe-interval", "Keyframe interval",
          "Frames between keyframes for raw input; 0: two seconds' worth (a joining viewer gets one at once with keyframe-on-join)", 0, 1000, 0,
          rw));
  g_object_class_install_property(gobject_class, PROP_PROFILE,
      g_param_spec_string("profile", "Profile",
          "H.264 profile for raw input (constrained-baseline, baseline, main, high); empty: the encoder's "
          "choice",
          mediamtxsink::kDefaultProfile, rw));
  g_object_class_install_property(gobject_class, PROP_USER_ID,
      g_param_spec_string("user-id", "User ID",
          "User name for the server (default: from the location's userinfo)", nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_USER_PW,
      g_param_spec_string("user-pw", "User password",
          "Password for the server (default: from the location's userinfo); never logged", nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_AUTH_TOKEN,
      g_param_spec_string("auth-token", "Auth token", "Bearer token for WHIP; never logged", nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_TLS_CA_FILE,
      g_param_spec_string("tls-ca-file", "TLS CA file",
          "PEM file of the certificate authorities to trust for an https WHIP location, instead of the "
          "system's (e.g. the CA of a self-signed MediaMTX certificate)", nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_TLS_VALIDATION,
      g_param_spec_boolean("tls-validation", "TLS validation",
          "Verify the certificate of an https WHIP location; false accepts any certificate (tests only: "
          "anyone on the way can then read and change the stream)", TRUE, rw));
  g_object_class_install_property(gobject_class, PROP_KEYFRAME_ON_JOIN,
      g_param_spec_boolean("keyframe-on-join", "Keyframe on join",
          "Send a keyframe (with SPS/PPS) as soon as a viewer joins the path, at most one per 500 ms, so it does "
          "not wait for the next regular keyframe. Watches the path's readers through MediaMTX's control API "
          "(api-location) with the publishing credentials, which need the 'api' permission; without it one "
          "warning says so and publishing goes on as with false",
          TRUE, rw));
  g_object_class_install_property(gobject_class, PROP_API_LOCATION,
      g_param_spec_string("api-location", "API location",
          "MediaMTX's control API for keyframe-on-join, e.g. http://host:9997; empty: port 9997 on the host of "
          "location (or server)",
          nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_API_POLL_INTERVAL,
      g_param_spec_uint("api-poll-interval", "API poll interval",
          "How often keyframe-on-join asks the control API for the path's readers, in ms: a WebRTC viewer's "
          "keyframe can wait up to the interval minus its ~65 ms handshake for the next poll (on average ~6 ms "
          "at 100 ms, ~70 ms at 250 ms). 0: automatic, from the "
          "poll's measured CPU cost, so that polling uses at most 0.25 % of one core (100 ms to 1 s; ~100 ms on "
          "a current x86 core, longer on a slower one). MediaMTX spends ~0.7 ms of its CPU per poll (x86 VM)",
          0, 60000, 0, rw));
  g_object_class_install_property(gobject_class, PROP_ADAPTIVE_BITRATE,
      g_param_spec_boolean("adaptive-bitrate", "Adaptive bitrate",
          "Follow the uplink: lower the encoder's bitrate within a second when the connection cannot carry it "
          "(WHIP: TWCC feedback and receiver reports; RTSP over TCP: the socket's send backlog; over UDP: "
          "receiver-report loss), back up to bitrate within about 10 s once it can. Raw input only",
          TRUE, rw_playing));
  g_object_class_install_property(gobject_class, PROP_MIN_BITRATE,
      g_param_spec_uint("min-bitrate", "Minimum bitrate",
          "Video bitrate in kbit/s that adaptive-bitrate never goes below (capped at bitrate); an uplink that "
          "takes less gets a lower frame rate instead (down to 5 fps)", 50, 100000,
          mediamtxsink::kDefaultMinBitrate, rw_playing));
  g_object_class_install_property(gobject_class, PROP_RETRANSMISSION,
      g_param_spec_boolean("retransmission", "Retransmission",
          "WHIP: when the server asks for lost packets (RTCP NACK; MediaMTX does, and waits for them up to 64 "
          "packets), send them again as they were, so its viewers do not see the loss; a keyframe then "
          "follows only for packets lost for good. Takes effect at the next session",
          TRUE, rw));
  g_object_class_install_property(gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
          "mediamtxsink-stats: state (as connection-state), attempts (failed attempts in the current outage, 0 "
          "while publishing), sessions (connection attempts in this run), reconnects (retries scheduled in this "
          "run), last-error (why the last session failed), bytes-sent and frames-sent (media handed to the "
          "network half), frames-dropped (video dropped while disconnected or waiting for a keyframe), encoder "
          "(the H.264 encoder chosen, none for encoded input), bitrate (kbit/s), target-bitrate (kbit/s, what "
          "adaptive-bitrate asks of the encoder now), rate-buffer (ms, x264enc's vbv-buf-capacity now: "
          "shorter while adaptive-bitrate holds it below bitrate; 0 for other encoders), measured-bitrate (kbit/s, the video and audio sent over "
          "the last second or so), framerate-fraction (the share of the input's frames encoded: below 1 while "
          "the uplink takes less than min-bitrate), frames-thinned (raw frames left out for that), retransmission-requests and packets-retransmitted "
          "(WHIP: packets the server asked for again, and sent again, in the current session), transport (rtsp or "
          "whip), location (without credentials)",
          GST_TYPE_STRUCTURE, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  /* retry-delay, max-retry-delay, max-retries, retry-jitter, connection-state: the retry rule
   * common to every element of this plugin */
  gstmtx::ReconnectController::install_properties(gobject_class, PROP_RECONNECT_FIRST);

  gst_element_class_add_static_pad_template(element_class, &video_template);
  gst_element_class_add_static_pad_template(element_class, &audio_template);
  gst_element_class_set_static_metadata(element_class, "MediaMTX publisher", "Sink/Network",
      "Publishes video (raw: encoded to H.264 with the best working encoder; or H.264/H.265) and audio "
      "(raw: encoded to Opus; or Opus) to a MediaMTX path over RTSP or WHIP, and keeps publishing: it "
      "reconnects after every failure (see retry-delay) while the camera keeps running",
      "gst-mediamtx");

  element_class->change_state = GST_DEBUG_FUNCPTR(gst_mediamtx_sink_change_state);
  element_class->request_new_pad = GST_DEBUG_FUNCPTR(gst_mediamtx_sink_request_new_pad);
  element_class->release_pad = GST_DEBUG_FUNCPTR(gst_mediamtx_sink_release_pad);
  bin_class->handle_message = GST_DEBUG_FUNCPTR(gst_mediamtx_sink_handle_message);

  gst_type_mark_as_plugin_api(GST_TYPE_MEDIAMTX_SINK_TRANSPORT, static_cast<GstPluginAPIFlags>(0));
  gst_type_mark_as_plugin_api(GST_TYPE_MEDIAMTX_SINK_RTSP_TRANSPORT, static_cast<GstPluginAPIFlags>(0));
  GST_DEBUG_CATEGORY_INIT(gst_mediamtx_sink_debug, "mediamtxsink", 0, "MediaMTX publisher");
}

/* An input ghost pad: no target until its first caps say raw or encoded. */
static GstPad *make_input_pad(GstPadTemplate *templ, const char *name) {
  GstPad *pad = gst_ghost_pad_new_no_target_from_template(name, templ);
  gst_pad_set_event_function(pad, GST_DEBUG_FUNCPTR(mediamtxsink::input_pad_event));
  gst_pad_set_query_function(pad, GST_DEBUG_FUNCPTR(mediamtxsink::input_pad_query));
  return pad;
}

static void gst_mediamtx_sink_init(GstMediamtxSink *self) {
  self->priv = new Private(GST_ELEMENT(self));
  auto *priv = self->priv;
  mediamtxsink::connection_init(self);

  GstPadTemplate *templ = gst_static_pad_template_get(&video_template);
  priv->video.ghost = make_input_pad(templ, "video");
  gst_object_unref(templ);
  gst_element_add_pad(GST_ELEMENT(self), priv->video.ghost);

  /* Never linked: keeps the bin a sink while the network half is down, and carries EOS then. */
  priv->eos_anchor = gst_element_factory_make("fakesink", "eos-anchor");
  g_object_set(priv->eos_anchor, "sync", FALSE, "async", FALSE, "enable-last-sample", FALSE, nullptr);
  gst_bin_add(GST_BIN(self), priv->eos_anchor);
}

static void gst_mediamtx_sink_finalize(GObject *object) {
  auto *self = GST_MEDIAMTX_SINK(object);
  auto *priv = self->priv;
  /* the control thread is left running when READY->NULL came from it: it ends here */
  priv->http.reset();
  if (priv->video.tail)
    gst_object_unref(priv->video.tail);
  if (priv->audio.tail)
    gst_object_unref(priv->audio.tail);
  delete priv;
  G_OBJECT_CLASS(gst_mediamtx_sink_parent_class)->finalize(object);
}

/* ------------------------------------------------------------------------------------------ */
/* Properties: application thread */

static std::string string_or_empty(const GValue *value) {
  const char *s = g_value_get_string(value);
  return s ? s : "";
}

static const char *empty_to_null(const std::string &s) { return s.empty() ? nullptr : s.c_str(); }

static void gst_mediamtx_sink_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec) {
  auto *self = GST_MEDIAMTX_SINK(object);
  auto *priv = self->priv;
  if (priv->controller.set_property(PROP_RECONNECT_FIRST, prop_id, value))
    return;
  GstElement *retune = nullptr;
  int retune_kbps = 0;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    Settings &s = priv->settings;
    switch (prop_id) {
    case PROP_LOCATION: s.location = string_or_empty(value); break;
    case PROP_SERVER: s.server = string_or_empty(value); break;
    case PROP_PATH: s.path = string_or_empty(value); break;
    case PROP_TRANSPORT: s.transport = static_cast<GstMediamtxSinkTransport>(g_value_get_enum(value)); break;
    case PROP_RTSP_TRANSPORT:
      s.rtsp_transport = static_cast<GstMediamtxSinkRtspTransport>(g_value_get_enum(value));
      break;
    case PROP_ENCODER: s.encoder = string_or_empty(value); if (s.encoder.empty()) s.encoder = mediamtxsink::kDefaultEncoder; break;
    case PROP_BITRATE:
      s.bitrate = g_value_get_uint(value);
      if (s.bitrate > 0 && priv->video.encoder) {
        retune = GST_ELEMENT(gst_object_ref(priv->video.encoder));
        retune_kbps = static_cast<int>(s.bitrate);
        priv->bitrate_kbps = retune_kbps;
      }
      break;
    case PROP_KEYFRAME_INTERVAL: s.keyframe_interval = g_value_get_uint(value); break;
    case PROP_PROFILE: s.profile = string_or_empty(value); break;
    case PROP_USER_ID: s.user_id = string_or_empty(value); break;
    case PROP_USER_PW: s.user_pw = string_or_empty(value); break;
    case PROP_AUTH_TOKEN: s.auth_token = string_or_empty(value); break;
    case PROP_TLS_CA_FILE: s.tls_ca_file = string_or_empty(value); break;
    case PROP_TLS_VALIDATION: s.tls_validation = g_value_get_boolean(value); break;
    case PROP_KEYFRAME_ON_JOIN: s.keyframe_on_join = g_value_get_boolean(value); break;
    case PROP_API_LOCATION: s.api_location = string_or_empty(value); break;
    case PROP_API_POLL_INTERVAL: s.api_poll_interval = g_value_get_uint(value); break;
    case PROP_ADAPTIVE_BITRATE: s.adaptive_bitrate = g_value_get_boolean(value); break;
    case PROP_MIN_BITRATE: s.min_bitrate = g_value_get_uint(value); break;
    case PROP_RETRANSMISSION: s.retransmission = g_value_get_boolean(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
    }
  }
  if (retune) {
    mediamtxsink::set_encoder_bitrate(retune, retune_kbps, retune_kbps);
    gst_object_unref(retune);
  }
}

/* Any thread reading `stats`: the controller's fields (state, attempts, sessions, reconnects,
 * last-error), then this element's own; never blocks on the network. */
static GstStructure *make_stats(GstMediamtxSink *self) {
  auto *priv = self->priv;
  GstStructure *stats = gst_structure_new_empty("mediamtxsink-stats");
  priv->controller.add_stats(stats);
  mediamtxsink::rate_adaptation_add_stats(self, stats);
  std::shared_ptr<mediamtxsink::Publisher> publisher;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    publisher = priv->publisher;
  }
  if (publisher)
    publisher->add_stats(stats);
  std::lock_guard<std::mutex> lk(priv->lock);
  std::string location = priv->publisher_config.url.empty() ? priv->settings.location : priv->publisher_config.url;
  gst_structure_set(stats,
      "bytes-sent", G_TYPE_UINT64, priv->bytes_sent.load(),
      "frames-sent", G_TYPE_UINT64, priv->frames_sent.load(),
      "frames-dropped", G_TYPE_UINT64, priv->frames_dropped.load(),
      "encoder", G_TYPE_STRING, priv->encoder_name.c_str(),
      "bitrate", G_TYPE_INT, priv->bitrate_kbps,
      "transport", G_TYPE_STRING, priv->settings.transport == GST_MEDIAMTX_SINK_TRANSPORT_WHIP ? "whip" : "rtsp",
      "location", G_TYPE_STRING, gstmtx::redact_url(location).c_str(),
      nullptr);
  return stats;
}

static void gst_mediamtx_sink_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec) {
  auto *self = GST_MEDIAMTX_SINK(object);
  auto *priv = self->priv;
  if (prop_id == PROP_STATS) {
    g_value_take_boxed(value, make_stats(self));
    return;
  }
  if (priv->controller.get_property(PROP_RECONNECT_FIRST, prop_id, value))
    return;
  std::lock_guard<std::mutex> lk(priv->lock);
  const Settings &s = priv->settings;
  switch (prop_id) {
  case PROP_LOCATION: g_value_set_string(value, empty_to_null(s.location)); break;
  case PROP_SERVER: g_value_set_string(value, empty_to_null(s.server)); break;
  case PROP_PATH: g_value_set_string(value, empty_to_null(s.path)); break;
  case PROP_TRANSPORT: g_value_set_enum(value, s.transport); break;
  case PROP_RTSP_TRANSPORT: g_value_set_enum(value, s.rtsp_transport); break;
  case PROP_ENCODER: g_value_set_string(value, s.encoder.c_str()); break;
  case PROP_BITRATE: g_value_set_uint(value, s.bitrate); break;
  case PROP_KEYFRAME_INTERVAL: g_value_set_uint(value, s.keyframe_interval); break;
  case PROP_PROFILE: g_value_set_string(value, s.profile.c_str()); break;
  case PROP_USER_ID: g_value_set_string(value, empty_to_null(s.user_id)); break;
  case PROP_USER_PW: g_value_set_string(value, empty_to_null(s.user_pw)); break;
  case PROP_AUTH_TOKEN: g_value_set_string(value, empty_to_null(s.auth_token)); break;
  case PROP_TLS_CA_FILE: g_value_set_string(value, empty_to_null(s.tls_ca_file)); break;
  case PROP_TLS_VALIDATION: g_value_set_boolean(value, s.tls_validation); break;
  case PROP_KEYFRAME_ON_JOIN: g_value_set_boolean(value, s.keyframe_on_join); break;
  case PROP_API_LOCATION: g_value_set_string(value, empty_to_null(s.api_location)); break;
  case PROP_API_POLL_INTERVAL: g_value_set_uint(value, s.api_poll_interval); break;
  case PROP_ADAPTIVE_BITRATE: g_value_set_boolean(value, s.adaptive_bitrate); break;
  case PROP_MIN_BITRATE: g_value_set_uint(value, s.min_bitrate); break;
  case PROP_RETRANSMISSION: g_value_set_boolean(value, s.retransmission); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* State changes: application thread */

/* Checks the settings and resolves where to publish (and WHIP's HTTP settings). Posts an error and
 * returns false when the element cannot run as configured. */
static gboolean prepare(GstMediamtxSink *self, gstmtx::HttpClientConfig *http_config) {
  auto *priv = self->priv;
  Settings s;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    s = priv->settings;
  }
  const bool whip = s.transport == GST_MEDIAMTX_SINK_TRANSPORT_WHIP;
  std::string location = s.location;
  if (location.empty()) {
    if (s.server.empty() || s.path.empty()) {
      GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS,
          ("nowhere to publish: set location=rtsp://host:8554/path (or http://host:8889/path/whip with "
           "transport=whip), or server and path"), (nullptr));
      return FALSE;
    }
    location = whip ? gstmtx::webrtc_http_url_for(s.server, s.path, gstmtx::HttpEndpointKind::Whip)
                    : gstmtx::rtsp_url_for(s.server, s.path);
  }
  const bool http_location =
      g_str_has_prefix(location.c_str(), "http://") || g_str_has_prefix(location.c_str(), "https://");
  if (http_location && !whip) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS,
        ("location %s is a WHIP URL: set transport=whip, or publish to rtsp://host:8554/path",
         gstmtx::redact_url(location).c_str()),
        (nullptr));
    return FALSE;
  }
  std::string error;
  /* over WHIP, an rtsp:// location names the same MediaMTX path on its WebRTC port */
  auto endpoint = whip ? gstmtx::parse_webrtc_http_location(location, gstmtx::HttpEndpointKind::Whip, &error)
                       : gstmtx::parse_rtsp_location(location, &error);
  if (!endpoint) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS,
        ("invalid location %s: %s", gstmtx::redact_url(location).c_str(), error.c_str()), (nullptr));
    return FALSE;
  }
  if (s.encoder != "auto") {
    gstmtx::RegistryEncoderProber prober;
    if (!prober.exists(s.encoder)) {
      GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN,
          ("%s", gstmtx::choose_encoder(s.encoder, prober).reason.c_str()), (nullptr));
      return FALSE;
    }
  }
  PublisherConfig config;
  config.url = endpoint->url;
  config.user = s.user_id.empty() ? endpoint->user : s.user_id;
  config.password = s.user_id.empty() && s.user_pw.empty() ? endpoint->password : s.user_pw;
  config.auth_token = s.auth_token;
  config.tcp = s.rtsp_transport == GST_MEDIAMTX_SINK_RTSP_TRANSPORT_TCP;
  config.whip = whip;
  config.retransmission = s.retransmission;
  /* MediaMTX (gortsplib) sleeps 1 s in SETUP for any User-Agent starting with "GStreamer" (a
   * workaround for an old rtspclientsink race): that second is paid on every reconnection.
   * rtspclientsink 1.22 publishes reliably without it (docs/architecture.md, MediaMTX behaviour). */
  config.user_agent = "gst-mediamtx/" PACKAGE_VERSION " mediamtxsink";
  http_config->user_agent = config.user_agent;
  http_config->tls_ca_file = s.tls_ca_file;
  http_config->tls_validate = s.tls_validation;
  if (whip && !s.tls_validation)
    GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS,
        ("tls-validation=false: https certificates are not verified, the connection can be intercepted"),
        (nullptr));
  GST_INFO_OBJECT(self, "publishing to %s over %s", gstmtx::redact_url(config.url).c_str(),
                  whip ? "WHIP" : config.tcp ? "RTSP/TCP" : "RTSP/UDP");
  std::lock_guard<std::mutex> lk(priv->lock);
  priv->publisher_config = config;
  priv->bytes_sent = 0;
  priv->frames_sent = 0;
  priv->frames_dropped = 0;
  priv->rate.frames_thinned = 0;
  priv->video.eos = false;
  priv->audio.eos = false;
  return TRUE;
}

static GstStateChangeReturn gst_mediamtx_sink_change_state(GstElement *element, GstStateChange transition) {
  auto *self = GST_MEDIAMTX_SINK(element);
  auto *priv = self->priv;

  switch (transition) {
  case GST_STATE_CHANGE_NULL_TO_READY:
    priv->controller.prepare();
    break;
  case GST_STATE_CHANGE_READY_TO_PAUSED: {
    gstmtx::HttpClientConfig http_config;
    if (!prepare(self, &http_config) || !mediamtxsink::connection_start(self, http_config))
      return GST_STATE_CHANGE_FAILURE;
    mediamtxsink::keyframe_on_join_start(self, http_config);
    break;
  }
  case GST_STATE_CHANGE_PAUSED_TO_READY:
    /* Before the children stop: the network half ends its session (TEARDOWN, DELETE). */
    mediamtxsink::keyframe_on_join_stop(self);
    mediamtxsink::connection_stop(self);
    break;
  default:
    break;
  }

  GstStateChangeReturn ret = GST_ELEMENT_CLASS(gst_mediamtx_sink_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
      mediamtxsink::keyframe_on_join_stop(self);
      mediamtxsink::connection_stop(self);
    }
    return ret;
  }

  switch (transition) {
  case GST_STATE_CHANGE_READY_TO_NULL:
    mediamtxsink::connection_release(self);
    break;
  case GST_STATE_CHANGE_PAUSED_TO_READY:
    mediamtxsink::reset_stream(self, priv->video);
    mediamtxsink::reset_stream(self, priv->audio);
    break;
  default:
    break;
  }
  return ret;
}

/* ------------------------------------------------------------------------------------------ */
/* Request pads: application thread */

static GstPad *gst_mediamtx_sink_request_new_pad(GstElement *element, GstPadTemplate *templ, const gchar *name,
                                                 const GstCaps *caps) {
  auto *self = GST_MEDIAMTX_SINK(element);
  auto *priv = self->priv;
  (void)name;
  (void)caps;
  if (g_strcmp0(GST_PAD_TEMPLATE_NAME_TEMPLATE(templ), "audio") != 0)
    return nullptr;
  GstPad *pad;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    if (priv->audio.ghost) {
      GST_WARNING_OBJECT(self, "mediamtxsink takes one audio stream; the audio pad is already requested");
      return nullptr;
    }
    pad = make_input_pad(templ, "audio");
    priv->audio.ghost = pad;
  }
  if (GST_STATE(element) > GST_STATE_READY)
    gst_pad_set_active(pad, TRUE);
  gst_element_add_pad(element, pad);
  return pad;
}

static void gst_mediamtx_sink_release_pad(GstElement *element, GstPad *pad) {
  auto *self = GST_MEDIAMTX_SINK(element);
  auto *priv = self->priv;
  if (pad != priv->audio.ghost)
    return;
  mediamtxsink::reset_stream(self, priv->audio);
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    priv->audio.ghost = nullptr;
  }
  gst_pad_set_active(pad, FALSE);
  gst_element_remove_pad(element, pad);
  mediamtxsink::push_command(self, mediamtxsink::Command::StreamsChanged);
}
/* ------------------------------------------------------------------------------------------ */
/* Messages: any thread (children post from their own threads) */

static void gst_mediamtx_sink_handle_message(GstBin *bin, GstMessage *message) {
  auto *self = GST_MEDIAMTX_SINK(bin);
  auto *priv = self->priv;
  unsigned generation = 0;
  const bool from_network = mediamtxsink::network_element_generation(GST_MESSAGE_SRC(message), &generation);
  if (from_network) {
    std::shared_ptr<mediamtxsink::Publisher> publisher;
    {
      std::lock_guard<std::mutex> lk(priv->lock);
      if (generation == priv->generation)
        publisher = priv->publisher;
    }
    if (publisher)
      publisher->on_message(message);
  }
  if (from_network && GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
    /* The network half failed: the controller retries (or gives up on a fatal failure); the
     * application sees status messages, and an error only if retrying cannot help. */
    mediamtxsink::on_network_error(self, generation, message);
    gst_message_unref(message);
    return;
  }
  if (from_network && GST_MESSAGE_TYPE(message) == GST_MESSAGE_WARNING) {
    GError *err = nullptr;
    gst_message_parse_warning(message, &err, nullptr);
    GST_DEBUG_OBJECT(self, "network half warning: %s", err ? err->message : "");
    g_clear_error(&err);
    gst_message_unref(message);
    return;
  }
  const bool network_eos = from_network && GST_MESSAGE_TYPE(message) == GST_MESSAGE_EOS;
  GST_BIN_CLASS(gst_mediamtx_sink_parent_class)->handle_message(bin, message);
  if (network_eos) {
    /* Everything was sent: end the session now (RTSP TEARDOWN) rather than at shutdown. */
    mediamtxsink::push_command(self, mediamtxsink::Command::NetworkEos, generation);
  }
}
