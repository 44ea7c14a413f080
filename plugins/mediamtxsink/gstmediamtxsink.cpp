/* gst-mediamtx: mediamtxsink — publish a camera to MediaMTX in one element, and keep publishing.
 *
 *   ghost "video" -> [videoconvert ! encoder ! capsfilter] ! h264parse config-interval=-1 -+
 *   ghost "audio" -> [audioconvert ! audioresample ! opusenc | opusparse] ----------------+-> tail pads
 *                                                      stable half (built on first caps) |
 *   tail pads -> network half (a Publisher: RTSP = leaky queue per stream ! rtspclientsink)
 *
 * The stable half lives as long as the element runs. The network half is built, torn down and
 * rebuilt by the element's control thread (never a streaming thread) with gstmtx::Backoff
 * between attempts. A probe on each tail pad drops and counts media while there is no
 * connection, so the camera never blocks and never sees an error; after every (re)connection
 * the first video frame sent is a keyframe with SPS/PPS (force-key-unit upstream, parser
 * config-interval=-1, deltas dropped until the keyframe).
 *
 * Threads: application thread (properties, state changes, request pads); streaming threads
 * (caps -> chain building, tail probes); rtspclientsink's and webrtcbin's threads (messages,
 * first-data probe); the control thread, the element's gstmtx::EventLoop (connect, teardown,
 * retry timer, bus status, and WHIP's HTTP), which other threads reach through a gstmtx::TaskGate
 * open from READY->PAUSED to PAUSED->READY. One lock, priv->lock, guards settings, stats strings
 * and the control objects' pointers; it is never held across a call into another element.
 */
#include "gstmediamtxsink.h"

#include <gst/video/video.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backoff.h"
#include "elements.h"
#include "encoder_selection.h"
#include "event_loop.h"
#include "http_client.h"
#include "mediamtx_url.h"
#include "publisher.h"
#include "rtsp_publisher.h"
#include "status.h"
#include "task_gate.h"
#include "whip_publisher.h"

GST_DEBUG_CATEGORY(gst_mediamtx_sink_debug);
#define GST_CAT_DEFAULT gst_mediamtx_sink_debug

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
  PROP_RETRY_DELAY,
  PROP_MAX_RETRY_DELAY,
  PROP_MAX_RETRIES,
  PROP_STATS,
};

typedef enum {
  GST_MEDIAMTX_SINK_TRANSPORT_RTSP = 0,
  GST_MEDIAMTX_SINK_TRANSPORT_WHIP = 1,
} GstMediamtxSinkTransport;

typedef enum {
  GST_MEDIAMTX_SINK_RTSP_TRANSPORT_TCP = 0,
  GST_MEDIAMTX_SINK_RTSP_TRANSPORT_UDP = 1,
} GstMediamtxSinkRtspTransport;

#define DEFAULT_TRANSPORT GST_MEDIAMTX_SINK_TRANSPORT_RTSP
#define DEFAULT_RTSP_TRANSPORT GST_MEDIAMTX_SINK_RTSP_TRANSPORT_TCP
#define DEFAULT_ENCODER "auto"
#define DEFAULT_BITRATE 0
#define DEFAULT_KEYFRAME_INTERVAL 0
#define DEFAULT_PROFILE "constrained-baseline"
#define DEFAULT_RETRY_DELAY 1000
#define DEFAULT_MAX_RETRY_DELAY 30000
#define DEFAULT_MAX_RETRIES (-1)

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
/* Private state */

namespace {

using mediamtxsink::Publisher;
using mediamtxsink::PublisherConfig;
using mediamtxsink::PublisherStream;

enum class LinkMode : int { Disconnected, Connecting, Connected };
enum class InputKind { None, Raw, Encoded };

struct Settings {
  std::string location, server, path;
  GstMediamtxSinkTransport transport = DEFAULT_TRANSPORT;
  GstMediamtxSinkRtspTransport rtsp_transport = DEFAULT_RTSP_TRANSPORT;
  std::string encoder = DEFAULT_ENCODER;
  guint bitrate = DEFAULT_BITRATE;
  guint keyframe_interval = DEFAULT_KEYFRAME_INTERVAL;
  std::string profile = DEFAULT_PROFILE;
  std::string user_id, user_pw, auth_token;
  guint retry_delay = DEFAULT_RETRY_DELAY;
  guint max_retry_delay = DEFAULT_MAX_RETRY_DELAY;
  gint max_retries = DEFAULT_MAX_RETRIES;
};

/* One input: its ghost pad and the stable-half chain built for its caps. */
struct Stream {
  explicit Stream(bool video) : is_video(video) {}
  const bool is_video;
  GstPad *ghost = nullptr;               /* the element's pad; audio: only once requested */
  InputKind kind = InputKind::None;
  std::vector<GstElement *> elements;    /* the chain, upstream first (the bin holds them) */
  GstElement *encoder = nullptr;         /* raw video: the encoder in `elements` */
  GstPad *tail = nullptr;                /* ref: the chain's last src pad, feeds the publisher */
  gulong probe_id = 0;
  std::atomic<bool> eos{false};
};

struct Command {
  enum Type { StreamsChanged, Connected, ChildError, AllEos, NetworkEos } type = StreamsChanged;
  unsigned generation = 0;
  std::string reason, debug;
  bool fatal = false;
};

/* The retry state of one run (READY->PAUSED to PAUSED->READY); control thread. */
struct ControlState {
  gstmtx::Backoff backoff;
  guint retry_timer = 0; /* a retry is due (EventLoop source id) */
  guint eos_timer = 0;   /* all inputs ended: the network half gets this long to send the rest */
  bool failed = false;
  bool finished = false;
};

}  // namespace

struct MediamtxSinkPrivate {
  std::mutex lock;
  Settings settings;

  /* resolved at READY->PAUSED (under lock) */
  PublisherConfig publisher_config;

  /* The control thread, from NULL->READY to READY->NULL (pointers under lock). `http` serves
   * WHIP and outlives each attempt's publisher, so a DELETE sent at teardown completes. */
  std::unique_ptr<gstmtx::EventLoop> loop;
  std::unique_ptr<gstmtx::TaskGate> control;
  std::unique_ptr<gstmtx::HttpClient> http;

  Stream video{true};
  Stream audio{false};
  GstElement *eos_anchor = nullptr; /* keeps the bin a sink and posts EOS when disconnected */

  /* read by the tail probes on streaming threads */
  std::atomic<int> mode{static_cast<int>(LinkMode::Disconnected)};
  std::atomic<bool> want_keyframe{false};
  std::atomic<unsigned> current_generation{0}; /* the attempt whose network half is in the bin */
  std::atomic<guint64> bytes_sent{0}, frames_sent{0}, frames_dropped{0};

  /* stats (under lock) */
  gstmtx::ConnectionState state = gstmtx::ConnectionState::Idle;
  int attempts = 0;
  std::string last_error;
  std::string encoder_name;
  int bitrate_kbps = 0;

  /* control thread only (the application thread once the gate is closed) */
  ControlState cs;
  std::shared_ptr<Publisher> publisher; /* written under lock */
  unsigned generation = 0;
  bool published_audio = false;
};

struct _GstMediamtxSink {
  GstBin parent;
  MediamtxSinkPrivate *priv;
};

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
static gboolean gst_mediamtx_sink_pad_event(GstPad *pad, GstObject *parent, GstEvent *event);
static gboolean gst_mediamtx_sink_pad_query(GstPad *pad, GstObject *parent, GstQuery *query);
static void push_command(GstMediamtxSink *self, Command command);
static void create_control(GstMediamtxSink *self);
static void start_control(GstMediamtxSink *self);
static void stop_control(GstMediamtxSink *self);
static void release_control(GstMediamtxSink *self);
static void reset_stream(GstMediamtxSink *self, Stream &stream);

/* ------------------------------------------------------------------------------------------ */

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
          GST_TYPE_MEDIAMTX_SINK_TRANSPORT, DEFAULT_TRANSPORT, rw));
  g_object_class_install_property(gobject_class, PROP_RTSP_TRANSPORT,
      g_param_spec_enum("rtsp-transport", "RTSP transport",
          "Lower transport for RTSP: tcp (interleaved, passes firewalls) or udp",
          GST_TYPE_MEDIAMTX_SINK_RTSP_TRANSPORT, DEFAULT_RTSP_TRANSPORT, rw));
  g_object_class_install_property(gobject_class, PROP_ENCODER,
      g_param_spec_string("encoder", "Encoder",
          "H.264 encoder for raw video: auto (a working v4l2h264enc, else x264enc, else openh264enc) or an "
          "element name. Encoded input is never re-encoded",
          DEFAULT_ENCODER, rw));
  g_object_class_install_property(gobject_class, PROP_BITRATE,
      g_param_spec_uint("bitrate", "Bitrate",
          "Video bitrate in kbit/s for raw input; 0: from the picture (2000 at 720p30, 4000 at 1080p30)", 0,
          100000, DEFAULT_BITRATE, rw_playing));
  g_object_class_install_property(gobject_class, PROP_KEYFRAME_INTERVAL,
      g_param_spec_uint("keyframe-interval", "Keyframe interval",
          "Frames between keyframes for raw input; 0: one second's worth", 0, 1000, DEFAULT_KEYFRAME_INTERVAL,
          rw));
  g_object_class_install_property(gobject_class, PROP_PROFILE,
      g_param_spec_string("profile", "Profile",
          "H.264 profile for raw input (constrained-baseline, baseline, main, high); empty: the encoder's "
          "choice",
          DEFAULT_PROFILE, rw));
  g_object_class_install_property(gobject_class, PROP_USER_ID,
      g_param_spec_string("user-id", "User ID",
          "User name for the server (default: from the location's userinfo)", nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_USER_PW,
      g_param_spec_string("user-pw", "User password",
          "Password for the server (default: from the location's userinfo); never logged", nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_AUTH_TOKEN,
      g_param_spec_string("auth-token", "Auth token", "Bearer token for WHIP; never logged", nullptr, rw));
  g_object_class_install_property(gobject_class, PROP_RETRY_DELAY,
      g_param_spec_uint("retry-delay", "Retry delay",
          "Milliseconds before the first retry; later retries back off exponentially", 0, 3600000,
          DEFAULT_RETRY_DELAY, rw));
  g_object_class_install_property(gobject_class, PROP_MAX_RETRY_DELAY,
      g_param_spec_uint("max-retry-delay", "Maximum retry delay", "Cap on the delay between retries, in milliseconds",
          0, 3600000, DEFAULT_MAX_RETRY_DELAY, rw));
  g_object_class_install_property(gobject_class, PROP_MAX_RETRIES,
      g_param_spec_int("max-retries", "Maximum retries",
          "Retries in a row before giving up with an error; -1: retry forever", -1, G_MAXINT, DEFAULT_MAX_RETRIES,
          rw));
  g_object_class_install_property(gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
          "mediamtxsink-stats: state, attempts, last-error, bytes-sent, frames-sent, frames-dropped "
          "(while disconnected), encoder, bitrate (kbit/s), transport, location (without credentials)",
          GST_TYPE_STRUCTURE, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template(element_class, &video_template);
  gst_element_class_add_static_pad_template(element_class, &audio_template);
  gst_element_class_set_static_metadata(element_class, "MediaMTX publisher", "Sink/Network",
      "Publishes video (raw: encoded to H.264 with the best working encoder; or H.264/H.265) and audio "
      "(raw: encoded to Opus; or Opus) to a MediaMTX path over RTSP, reconnecting with backoff",
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
  gst_pad_set_event_function(pad, GST_DEBUG_FUNCPTR(gst_mediamtx_sink_pad_event));
  gst_pad_set_query_function(pad, GST_DEBUG_FUNCPTR(gst_mediamtx_sink_pad_query));
  return pad;
}

static void gst_mediamtx_sink_init(GstMediamtxSink *self) {
  self->priv = new MediamtxSinkPrivate();
  auto *priv = self->priv;

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
  priv->http.reset();
  priv->loop.reset(); /* left running when READY->NULL came from the control thread itself */
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

static void set_encoder_bitrate(GstElement *encoder, int kbps) {
  GParamSpec *pspec = g_object_class_find_property(G_OBJECT_GET_CLASS(encoder), "bitrate");
  if (!pspec)
    return;
  GstElementFactory *f = gst_element_get_factory(encoder);
  std::string name = f ? GST_OBJECT_NAME(f) : "";
  /* x264enc takes kbit/s, openh264enc bit/s; see gstmtx::encoder_settings. Only the rate
   * properties change while running (v4l2h264enc's extra-controls are applied at start only). */
  for (const auto &prop : gstmtx::encoder_settings(name, gstmtx::EncoderTuning{kbps, 30, ""})) {
    if (prop.name == "bitrate" || prop.name == "max-bitrate")
      gst_util_set_object_arg(G_OBJECT(encoder), prop.name.c_str(), prop.value.c_str());
  }
}

static void gst_mediamtx_sink_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec) {
  auto *self = GST_MEDIAMTX_SINK(object);
  auto *priv = self->priv;
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
    case PROP_ENCODER: s.encoder = string_or_empty(value); if (s.encoder.empty()) s.encoder = DEFAULT_ENCODER; break;
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
    case PROP_RETRY_DELAY: s.retry_delay = g_value_get_uint(value); break;
    case PROP_MAX_RETRY_DELAY: s.max_retry_delay = g_value_get_uint(value); break;
    case PROP_MAX_RETRIES: s.max_retries = g_value_get_int(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
    }
  }
  if (retune) {
    set_encoder_bitrate(retune, retune_kbps);
    gst_object_unref(retune);
  }
}

/* Application thread (any thread reading `stats`). */
static GstStructure *make_stats(GstMediamtxSink *self) {
  auto *priv = self->priv;
  std::lock_guard<std::mutex> lk(priv->lock);
  std::string location = priv->publisher_config.url.empty() ? priv->settings.location : priv->publisher_config.url;
  return gst_structure_new("mediamtxsink-stats",
      "state", G_TYPE_STRING, gstmtx::connection_state_name(priv->state),
      "attempts", G_TYPE_INT, priv->attempts,
      "last-error", G_TYPE_STRING, priv->last_error.c_str(),
      "bytes-sent", G_TYPE_UINT64, priv->bytes_sent.load(),
      "frames-sent", G_TYPE_UINT64, priv->frames_sent.load(),
      "frames-dropped", G_TYPE_UINT64, priv->frames_dropped.load(),
      "encoder", G_TYPE_STRING, priv->encoder_name.c_str(),
      "bitrate", G_TYPE_INT, priv->bitrate_kbps,
      "transport", G_TYPE_STRING, priv->settings.transport == GST_MEDIAMTX_SINK_TRANSPORT_WHIP ? "whip" : "rtsp",
      "location", G_TYPE_STRING, gstmtx::redact_url(location).c_str(),
      nullptr);
}

static void gst_mediamtx_sink_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec) {
  auto *self = GST_MEDIAMTX_SINK(object);
  auto *priv = self->priv;
  if (prop_id == PROP_STATS) {
    g_value_take_boxed(value, make_stats(self));
    return;
  }
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
  case PROP_RETRY_DELAY: g_value_set_uint(value, s.retry_delay); break;
  case PROP_MAX_RETRY_DELAY: g_value_set_uint(value, s.max_retry_delay); break;
  case PROP_MAX_RETRIES: g_value_set_int(value, s.max_retries); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* State changes: application thread */

/* Checks the settings and resolves where to publish. Posts an error and returns false when the
 * element cannot run as configured. */
static gboolean prepare(GstMediamtxSink *self) {
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
  /* MediaMTX (gortsplib) sleeps 1 s in SETUP for any User-Agent starting with "GStreamer" (a
   * workaround for an old rtspclientsink race): that second is paid on every reconnection.
   * rtspclientsink 1.22 publishes reliably without it (DESIGN.md, latency budget). */
  config.user_agent = "gst-mediamtx/" PACKAGE_VERSION " mediamtxsink";
  GST_INFO_OBJECT(self, "publishing to %s over %s", gstmtx::redact_url(config.url).c_str(),
                  whip ? "WHIP" : config.tcp ? "RTSP/TCP" : "RTSP/UDP");
  std::lock_guard<std::mutex> lk(priv->lock);
  priv->publisher_config = config;
  priv->state = gstmtx::ConnectionState::Idle;
  priv->attempts = 0;
  priv->last_error.clear();
  priv->bytes_sent = 0;
  priv->frames_sent = 0;
  priv->frames_dropped = 0;
  priv->video.eos = false;
  priv->audio.eos = false;
  return TRUE;
}

static GstStateChangeReturn gst_mediamtx_sink_change_state(GstElement *element, GstStateChange transition) {
  auto *self = GST_MEDIAMTX_SINK(element);
  auto *priv = self->priv;

  switch (transition) {
  case GST_STATE_CHANGE_NULL_TO_READY:
    create_control(self);
    break;
  case GST_STATE_CHANGE_READY_TO_PAUSED:
    if (!prepare(self))
      return GST_STATE_CHANGE_FAILURE;
    start_control(self);
    break;
  case GST_STATE_CHANGE_PAUSED_TO_READY:
    /* Before the children stop: the network half ends its session (TEARDOWN, DELETE). */
    stop_control(self);
    break;
  default:
    break;
  }

  GstStateChangeReturn ret = GST_ELEMENT_CLASS(gst_mediamtx_sink_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
      stop_control(self);
    return ret;
  }

  switch (transition) {
  case GST_STATE_CHANGE_READY_TO_NULL:
    release_control(self);
    break;
  case GST_STATE_CHANGE_PAUSED_TO_READY:
    reset_stream(self, priv->video);
    reset_stream(self, priv->audio);
    {
      std::lock_guard<std::mutex> lk(priv->lock);
      priv->state = gstmtx::ConnectionState::Stopped;
    }
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
  reset_stream(self, priv->audio);
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    priv->audio.ghost = nullptr;
  }
  gst_pad_set_active(pad, FALSE);
  gst_element_remove_pad(element, pad);
  push_command(self, Command{Command::StreamsChanged});
}

/* ------------------------------------------------------------------------------------------ */
/* Messages: any thread (children post from their own threads) */

static void gst_mediamtx_sink_handle_message(GstBin *bin, GstMessage *message) {
  auto *self = GST_MEDIAMTX_SINK(bin);
  unsigned generation = 0;
  const bool from_network = mediamtxsink::network_element_generation(GST_MESSAGE_SRC(message), &generation);
  if (from_network) {
    std::shared_ptr<Publisher> publisher;
    {
      std::lock_guard<std::mutex> lk(self->priv->lock);
      if (generation == self->priv->generation)
        publisher = self->priv->publisher;
    }
    if (publisher)
      publisher->on_message(message);
  }
  if (from_network && GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
    /* The network half failed: the control thread retries; the application sees status
     * messages, and an error only if retrying cannot help. */
    GError *err = nullptr;
    gchar *debug = nullptr;
    gst_message_parse_error(message, &err, &debug);
    Command command{Command::ChildError, generation};
    command.reason = err ? err->message : "unknown error";
    command.debug = debug ? debug : "";
    /* 401: rtspclientsink posts "No supported authentication protocol was found" once the server
     * refused every credential it could offer, then NOT_AUTHORIZED. Retrying cannot help. */
    command.fatal = err && ((err->domain == GST_RESOURCE_ERROR && err->code == GST_RESOURCE_ERROR_NOT_AUTHORIZED) ||
                            command.debug.find("authentication protocol") != std::string::npos);
    GST_INFO_OBJECT(self, "connection attempt %u failed: %s", generation, command.reason.c_str());
    /* Stop feeding the broken session now rather than when the control thread gets to it. */
    if (generation == self->priv->current_generation.load())
      self->priv->mode = static_cast<int>(LinkMode::Disconnected);
    g_clear_error(&err);
    g_free(debug);
    gst_message_unref(message);
    push_command(self, std::move(command));
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
    push_command(self, Command{Command::NetworkEos, generation});
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Stable half: streaming threads */

static Stream &stream_for_pad(GstMediamtxSink *self, GstPad *pad) {
  return pad == self->priv->video.ghost ? self->priv->video : self->priv->audio;
}

/* Called from the streaming thread when a stream reached EOS. */
static void on_stream_eos(GstMediamtxSink *self) {
  auto *priv = self->priv;
  bool all;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    all = priv->video.eos && (!priv->audio.ghost || priv->audio.eos);
  }
  if (!all)
    return;
  GST_INFO_OBJECT(self, "all inputs ended");
  g_autoptr(GstPad) pad = gst_element_get_static_pad(priv->eos_anchor, "sink");
  gst_pad_send_event(pad, gst_event_new_stream_start("mediamtxsink-eos-anchor"));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  gst_pad_send_event(pad, gst_event_new_segment(&segment));
  gst_pad_send_event(pad, gst_event_new_eos());
  push_command(self, Command{Command::AllEos});
}

struct TailProbeContext {
  GstMediamtxSink *self;
  bool is_video;
};

/* Called from the streaming thread for everything leaving the stable half. */
static GstPadProbeReturn tail_probe(GstPad *pad, GstPadProbeInfo *info, gpointer user_data) {
  auto *ctx = static_cast<TailProbeContext *>(user_data);
  auto *priv = ctx->self->priv;
  const auto mode = static_cast<LinkMode>(priv->mode.load());

  if (info->type & GST_PAD_PROBE_TYPE_QUERY_DOWNSTREAM) {
    /* A serialized query (allocation, drain) waits until the network half has sent everything
     * queued: with a stalled connection that would block the camera. Nothing downstream has
     * anything to offer for them. */
    return GST_QUERY_IS_SERIALIZED(GST_PAD_PROBE_INFO_QUERY(info)) ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
  }
  if (info->type & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
    GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
    if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
      (ctx->is_video ? priv->video : priv->audio).eos = true;
      on_stream_eos(ctx->self);
    }
    /* Sticky events stay stored on the pad and are sent again on the next link. */
    return mode == LinkMode::Disconnected ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
  }

  GstBuffer *first = nullptr;
  guint count = 1;
  gsize bytes = 0;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    first = GST_PAD_PROBE_INFO_BUFFER(info);
    bytes = gst_buffer_get_size(first);
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    count = gst_buffer_list_length(list);
    first = count ? gst_buffer_list_get(list, 0) : nullptr;
    bytes = gst_buffer_list_calculate_size(list);
  }
  /* Not linked: a stream added while connected waits for the control thread's new session
   * (pushing would fail the input with not-linked). */
  if (mode == LinkMode::Disconnected || !gst_pad_is_linked(pad)) {
    if (ctx->is_video)
      priv->frames_dropped += count;
    return GST_PAD_PROBE_DROP;
  }
  if (ctx->is_video && priv->want_keyframe.load()) {
    if (!first || GST_BUFFER_FLAG_IS_SET(first, GST_BUFFER_FLAG_DELTA_UNIT)) {
      priv->frames_dropped += count;
      return GST_PAD_PROBE_DROP;
    }
    priv->want_keyframe = false;
  }
  if (ctx->is_video)
    priv->frames_sent += count;
  priv->bytes_sent += bytes;
  return GST_PAD_PROBE_OK;
}

static std::string caps_to_string(const GstCaps *caps) {
  g_autofree char *text = gst_caps_to_string(caps);
  return text ? text : "";
}

static GstElement *make_child(GstMediamtxSink *self, const char *factory, const char *name) {
  GstElement *element = gst_element_factory_make(factory, name);
  if (!element)
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN,
        ("mediamtxsink needs the %s element: install the GStreamer plugin that provides it", factory), (nullptr));
  return element;
}

/* Builds the raw-video chain: videoconvert ! encoder ! capsfilter ! h264parse. */
static bool build_raw_video(GstMediamtxSink *self, Stream &stream, const GstStructure *st,
                            std::vector<GstElement *> &elements) {
  auto *priv = self->priv;
  Settings s;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    s = priv->settings;
  }
  gstmtx::RegistryEncoderProber prober;
  gstmtx::EncoderChoice choice = gstmtx::choose_encoder(s.encoder, prober);
  if (!choice.ok()) {
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN, ("%s", choice.reason.c_str()), (nullptr));
    return false;
  }
  GstElement *encoder = gst_element_factory_make(choice.factory.c_str(), "encoder");
  if (!encoder) {
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN,
        ("encoder %s could not be created: use encoder=auto or another H.264 encoder", choice.factory.c_str()),
        (nullptr));
    return false;
  }
  int width = 0, height = 0, fps_n = 0, fps_d = 1;
  gst_structure_get_int(st, "width", &width);
  gst_structure_get_int(st, "height", &height);
  gst_structure_get_fraction(st, "framerate", &fps_n, &fps_d);
  gstmtx::EncoderTuning tuning;
  tuning.bitrate_kbps = s.bitrate ? static_cast<int>(s.bitrate) : gstmtx::default_bitrate_kbps(width, height, fps_n, fps_d);
  tuning.keyframe_interval = gstmtx::keyframe_interval_frames(static_cast<int>(s.keyframe_interval), fps_n, fps_d);
  tuning.profile = s.profile;
  tuning.width = width;
  tuning.height = height;
  tuning.fps_n = fps_n;
  tuning.fps_d = fps_d;
  for (const auto &prop : gstmtx::encoder_settings(choice.factory, tuning)) {
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(encoder), prop.name.c_str()))
      gst_util_set_object_arg(G_OBJECT(encoder), prop.name.c_str(), prop.value.c_str());
  }
  GstElement *convert = gst_element_factory_make("videoconvert", "convert");
  GstElement *filter = gst_element_factory_make("capsfilter", "encoded-caps");
  GstElement *parser = make_child(self, "h264parse", "parse");
  if (!convert || !filter || !parser) {
    for (GstElement *e : {convert, filter, parser, encoder})
      if (e)
        gst_object_unref(gst_object_ref_sink(e));
    if (!convert || !filter)
      GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN, ("videoconvert or capsfilter is missing: install "
          "gstreamer1.0-plugins-base"), (nullptr));
    return false;
  }
  g_autoptr(GstCaps) out_caps = gst_caps_from_string(gstmtx::encoder_output_caps(choice.factory, tuning).c_str());
  g_object_set(filter, "caps", out_caps, nullptr);
  g_object_set(parser, "config-interval", -1, nullptr);
  elements = {convert, encoder, filter, parser};
  stream.encoder = encoder;

  GST_INFO_OBJECT(self, "encoder %s (%s), %d kbit/s, keyframe every %d frames, %dx%d", choice.factory.c_str(),
                  choice.reason.c_str(), tuning.bitrate_kbps, tuning.keyframe_interval, width, height);
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    priv->encoder_name = choice.factory;
    priv->bitrate_kbps = tuning.bitrate_kbps;
  }
  gst_element_post_message(GST_ELEMENT(self),
      gst_message_new_element(GST_OBJECT(self),
          gst_structure_new("mediamtxsink-encoder",
              "encoder", G_TYPE_STRING, choice.factory.c_str(),
              "hardware", G_TYPE_BOOLEAN, gstmtx::is_hardware_encoder(choice.factory),
              "reason", G_TYPE_STRING, choice.reason.c_str(),
              "bitrate", G_TYPE_INT, tuning.bitrate_kbps,
              "keyframe-interval", G_TYPE_INT, tuning.keyframe_interval,
              nullptr)));
  return true;
}

/* Called from the streaming thread on CAPS: builds the stream's chain the first time. */
static bool ensure_chain(GstMediamtxSink *self, Stream &stream, GstCaps *caps) {
  auto *priv = self->priv;
  const GstStructure *st = gst_caps_get_structure(caps, 0);
  const char *media = gst_structure_get_name(st);
  const bool raw = g_str_has_prefix(media, "video/x-raw") || g_str_has_prefix(media, "audio/x-raw");
  const InputKind kind = raw ? InputKind::Raw : InputKind::Encoded;

  if (stream.kind != InputKind::None) {
    if (stream.kind != kind) {
      GST_ELEMENT_ERROR(self, STREAM, FORMAT,
          ("the %s input switched between raw and encoded while running: restart the pipeline", stream.is_video ?
              "video" : "audio"),
          ("new caps %s", caps_to_string(caps).c_str()));
      return false;
    }
    return true;
  }

  std::vector<GstElement *> elements;
  if (stream.is_video && raw) {
    if (!build_raw_video(self, stream, st, elements))
      return false;
  } else if (stream.is_video) {
    const bool h265 = g_str_equal(media, "video/x-h265");
    GstElement *parser = make_child(self, h265 ? "h265parse" : "h264parse", "parse");
    if (!parser)
      return false;
    g_object_set(parser, "config-interval", -1, nullptr);
    elements = {parser};
    GST_INFO_OBJECT(self, "%s input: passed through without re-encoding", h265 ? "H.265" : "H.264");
    std::lock_guard<std::mutex> lk(priv->lock);
    priv->encoder_name = "none";
  } else if (raw) {
    GstElement *convert = make_child(self, "audioconvert", "audio-convert");
    GstElement *resample = make_child(self, "audioresample", "audio-resample");
    GstElement *encoder = make_child(self, "opusenc", "audio-encoder");
    if (!convert || !resample || !encoder) {
      for (GstElement *e : {convert, resample, encoder})
        if (e)
          gst_object_unref(gst_object_ref_sink(e));
      return false;
    }
    g_object_set(encoder, "frame-size", 10, nullptr); /* ms: lower latency than the default 20 */
    elements = {convert, resample, encoder};
  } else {
    GstElement *parser = make_child(self, "opusparse", "audio-parse");
    if (!parser)
      return false;
    elements = {parser};
  }

  for (GstElement *e : elements)
    gst_bin_add(GST_BIN(self), e);
  for (std::size_t i = 0; i + 1 < elements.size(); ++i) {
    if (!gst_element_link(elements[i], elements[i + 1])) {
      GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("could not link the %s chain", stream.is_video ? "video" : "audio"),
          ("%s ! %s", GST_OBJECT_NAME(elements[i]), GST_OBJECT_NAME(elements[i + 1])));
      return false;
    }
  }
  for (auto it = elements.rbegin(); it != elements.rend(); ++it)
    gst_element_sync_state_with_parent(*it);

  GstPad *tail = gst_element_get_static_pad(elements.back(), "src");
  auto *ctx = new TailProbeContext{self, stream.is_video};
  gulong probe_id = gst_pad_add_probe(tail,
      static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST |
                                   GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM | GST_PAD_PROBE_TYPE_QUERY_DOWNSTREAM),
      tail_probe, ctx, [](gpointer data) { delete static_cast<TailProbeContext *>(data); });
  g_autoptr(GstPad) head = gst_element_get_static_pad(elements.front(), "sink");
  gst_ghost_pad_set_target(GST_GHOST_PAD(stream.ghost), head);
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    stream.elements = elements;
    stream.tail = tail;
    stream.probe_id = probe_id;
    stream.kind = kind;
  }
  push_command(self, Command{Command::StreamsChanged});
  return true;
}

/* Application thread, once the control thread is stopped: removes a stream's chain. */
static void reset_stream(GstMediamtxSink *self, Stream &stream) {
  auto *priv = self->priv;
  std::vector<GstElement *> elements;
  GstPad *tail;
  gulong probe_id;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    elements.swap(stream.elements);
    tail = stream.tail;
    stream.tail = nullptr;
    probe_id = stream.probe_id;
    stream.probe_id = 0;
    stream.kind = InputKind::None;
    stream.encoder = nullptr;
    stream.eos = false;
  }
  if (stream.ghost)
    gst_ghost_pad_set_target(GST_GHOST_PAD(stream.ghost), nullptr);
  if (tail) {
    if (probe_id)
      gst_pad_remove_probe(tail, probe_id);
    gst_object_unref(tail);
  }
  for (GstElement *e : elements) {
    gst_element_set_state(e, GST_STATE_NULL);
    gst_bin_remove(GST_BIN(self), e);
  }
}

static gboolean gst_mediamtx_sink_pad_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_MEDIAMTX_SINK(parent);
  Stream &stream = stream_for_pad(self, pad);
  if (GST_EVENT_TYPE(event) == GST_EVENT_CAPS) {
    GstCaps *caps;
    gst_event_parse_caps(event, &caps);
    if (!ensure_chain(self, stream, caps)) {
      gst_event_unref(event);
      return FALSE;
    }
  } else if (GST_EVENT_TYPE(event) == GST_EVENT_EOS && stream.kind == InputKind::None) {
    /* ended before any caps: nothing to publish on this input */
    stream.eos = true;
    on_stream_eos(self);
    gst_event_unref(event);
    return TRUE;
  }
  return gst_pad_event_default(pad, parent, event);
}

/* Before the chain exists (no caps yet) the ghost pad has no target: answer from the template,
 * raw formats the encoders take natively first. */
static gboolean gst_mediamtx_sink_pad_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  g_autoptr(GstPad) target = gst_ghost_pad_get_target(GST_GHOST_PAD(pad));
  if (target)
    return gst_pad_query_default(pad, parent, query);
  switch (GST_QUERY_TYPE(query)) {
  case GST_QUERY_CAPS: {
    GstCaps *filter;
    gst_query_parse_caps(query, &filter);
    g_autoptr(GstCaps) templ = gst_pad_get_pad_template_caps(pad);
    GstCaps *result = filter ? gst_caps_intersect_full(templ, filter, GST_CAPS_INTERSECT_FIRST) : gst_caps_ref(templ);
    gst_query_set_caps_result(query, result);
    gst_caps_unref(result);
    return TRUE;
  }
  case GST_QUERY_ACCEPT_CAPS: {
    GstCaps *caps;
    gst_query_parse_accept_caps(query, &caps);
    g_autoptr(GstCaps) templ = gst_pad_get_pad_template_caps(pad);
    gst_query_set_accept_caps_result(query, gst_caps_is_subset(caps, templ));
    return TRUE;
  }
  default:
    return FALSE;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Control thread */

static void handle_command(GstMediamtxSink *self, const Command &command);

/* Any thread: hands `command` to the control thread; dropped while the element is not running
 * (READY or below) and when it stops before the command's turn comes. */
static void push_command(GstMediamtxSink *self, Command command) {
  auto *priv = self->priv;
  std::lock_guard<std::mutex> lk(priv->lock);
  if (priv->control)
    priv->control->post([self, command = std::move(command)] { handle_command(self, command); });
}

/* Control thread: records the state for `stats` and posts gst-mediamtx-status. */
static void post_status(GstMediamtxSink *self, gstmtx::ConnectionState state, int attempt, const std::string &reason,
                        std::int64_t retry_in_ms = -1) {
  {
    std::lock_guard<std::mutex> lk(self->priv->lock);
    self->priv->state = state;
    self->priv->attempts = attempt;
    if (!reason.empty() && state != gstmtx::ConnectionState::Connected)
      self->priv->last_error = reason;
  }
  gstmtx::StatusUpdate update;
  update.state = state;
  update.attempt = attempt;
  update.reason = reason;
  update.transport = self->priv->publisher ? self->priv->publisher->transport_name() : "rtsp";
  update.retry_in_ms = retry_in_ms;
  gst_element_post_message(GST_ELEMENT(self), gstmtx::status_message_new(GST_OBJECT(self), update));
}

/* Control thread: asks upstream (encoder or camera) for a keyframe; the parser puts SPS/PPS in
 * front of it (config-interval=-1). */
static void request_keyframe(GstPad *video_tail) {
  if (video_tail)
    gst_pad_send_event(video_tail, gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 0));
}

struct IdleUnlink {
  std::mutex lock;
  std::condition_variable done_cond;
  bool done = false;
};

/* Unlinks `pad` from its peer when no buffer is in flight on it (called from the control
 * thread; the unlink itself may run on the streaming thread). */
static void unlink_when_idle(GstPad *pad) {
  auto state = std::make_shared<IdleUnlink>();
  auto *holder = new std::shared_ptr<IdleUnlink>(state);
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_IDLE,
      [](GstPad *p, GstPadProbeInfo *, gpointer data) -> GstPadProbeReturn {
        auto &s = *static_cast<std::shared_ptr<IdleUnlink> *>(data);
        GstPad *peer = gst_pad_get_peer(p);
        if (peer) {
          gst_pad_unlink(p, peer);
          gst_object_unref(peer);
        }
        {
          std::lock_guard<std::mutex> lk(s->lock);
          s->done = true;
        }
        s->done_cond.notify_all();
        return GST_PAD_PROBE_REMOVE;
      },
      holder, [](gpointer data) { delete static_cast<std::shared_ptr<IdleUnlink> *>(data); });
  std::unique_lock<std::mutex> lk(state->lock);
  state->done_cond.wait_for(lk, std::chrono::seconds(5), [&] { return state->done; });
}

/* Control thread: drops media at the tails, unlinks them and removes the network half. */
static void teardown(GstMediamtxSink *self, bool graceful = false) {
  auto *priv = self->priv;
  priv->mode = static_cast<int>(LinkMode::Disconnected);
  if (!priv->publisher)
    return;
  GstPad *tails[2] = {nullptr, nullptr};
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    if (priv->video.tail)
      tails[0] = GST_PAD(gst_object_ref(priv->video.tail));
    if (priv->audio.tail)
      tails[1] = GST_PAD(gst_object_ref(priv->audio.tail));
  }
  for (GstPad *tail : tails) {
    if (tail) {
      unlink_when_idle(tail);
      gst_object_unref(tail);
    }
  }
  priv->publisher->stop(GST_BIN(self), graceful);
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    priv->publisher.reset();
  }
  priv->published_audio = false;
}

/* Control thread: the network half for the configured transport: RTSP (rtspclientsink) or WHIP
 * (the shared WebRTC-HTTP session + webrtcbin, on this element's loop and HTTP client). */
static std::shared_ptr<Publisher> make_publisher(const PublisherConfig &config, unsigned generation,
                                                 GstMediamtxSink *self) {
  auto connected = [self](unsigned gen) { push_command(self, Command{Command::Connected, gen}); };
  if (config.whip) {
    return std::make_shared<mediamtxsink::WhipPublisher>(
        config, generation, *self->priv->loop, *self->priv->http, connected,
        [self](unsigned gen, std::string reason, std::string debug, bool fatal) {
          Command command{Command::ChildError, gen};
          command.reason = std::move(reason);
          command.debug = std::move(debug);
          command.fatal = fatal;
          push_command(self, std::move(command));
        });
  }
  return std::make_shared<mediamtxsink::RtspPublisher>(config, generation, connected);
}

/* Control thread. */
static void try_connect(GstMediamtxSink *self, ControlState &cs) {
  auto *priv = self->priv;
  std::vector<PublisherStream> streams;
  PublisherConfig config;
  GstPad *video_tail = nullptr;
  bool with_audio = false;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    if (!priv->video.tail || (priv->audio.ghost && !priv->audio.tail))
      return; /* not every input has caps yet: StreamsChanged will come */
    /* refs: a released audio pad may drop its chain meanwhile (application thread) */
    video_tail = GST_PAD(gst_object_ref(priv->video.tail));
    streams.push_back(PublisherStream{GST_PAD(gst_object_ref(priv->video.tail)), true});
    if (priv->audio.tail) {
      streams.push_back(PublisherStream{GST_PAD(gst_object_ref(priv->audio.tail)), false});
      with_audio = true;
    }
    config = priv->publisher_config;
  }
  unsigned generation;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    generation = ++priv->generation;
  }
  priv->current_generation = generation;
  GST_INFO_OBJECT(self, "connecting to %s (attempt %d)", gstmtx::redact_url(config.url).c_str(),
                  cs.backoff.attempts());
  /* "connecting" for every attempt (attempt = retries so far); "reconnecting" carries the delay
   * after a failure. */
  post_status(self, gstmtx::ConnectionState::Connecting, cs.backoff.attempts(), "");
  if (!priv->control->is_open()) {
    /* the application stopped the element from a bus handler, on this thread */
    gst_object_unref(video_tail);
    for (auto &stream : streams)
      gst_object_unref(stream.pad);
    return;
  }
  auto publisher = make_publisher(config, generation, self);
  priv->want_keyframe = true;
  std::string error;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    priv->publisher = std::move(publisher);
  }
  priv->published_audio = with_audio;
  const bool started = priv->publisher->start(GST_BIN(self), streams, &error);
  for (auto &stream : streams)
    gst_object_unref(stream.pad);
  if (!started) {
    teardown(self);
    cs.failed = true;
    post_status(self, gstmtx::ConnectionState::Failed, cs.backoff.attempts(), error);
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN, ("%s", error.c_str()), (nullptr));
    gst_object_unref(video_tail);
    return;
  }
  priv->mode = static_cast<int>(LinkMode::Connecting);
  request_keyframe(video_tail);
  gst_object_unref(video_tail);
}

/* Control thread. */
static void on_failure(GstMediamtxSink *self, ControlState &cs, const Command &command) {
  auto *priv = self->priv;
  const std::string url = gstmtx::redact_url(priv->publisher_config.url);
  teardown(self);
  if (cs.finished)
    return;
  if (command.fatal) {
    cs.failed = true;
    post_status(self, gstmtx::ConnectionState::Failed, cs.backoff.attempts(), command.reason);
    GST_ELEMENT_ERROR(self, RESOURCE, NOT_AUTHORIZED,
        ("MediaMTX at %s refused the credentials (401): set user-id and user-pw (or user:password@ in the "
         "location) to a user allowed to publish on this path", url.c_str()),
        ("%s: %s", command.reason.c_str(), command.debug.c_str()));
    return;
  }
  auto delay = cs.backoff.next_delay(gstmtx::Clock::now());
  if (!delay) {
    cs.failed = true;
    post_status(self, gstmtx::ConnectionState::Failed, cs.backoff.attempts(), command.reason);
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_WRITE,
        ("gave up publishing to %s after %d attempts (max-retries): %s. Check that MediaMTX runs and the path "
         "accepts publishers", url.c_str(), cs.backoff.attempts(), command.reason.c_str()),
        ("%s", command.debug.c_str()));
    return;
  }
  GST_WARNING_OBJECT(self, "publishing to %s failed (%s); retry %d in %lld ms", url.c_str(), command.reason.c_str(),
                     cs.backoff.attempts(), static_cast<long long>(delay->count()));
  post_status(self, gstmtx::ConnectionState::Reconnecting, cs.backoff.attempts(), command.reason, delay->count());
  cs.retry_timer = priv->control->schedule(*delay, [self] {
    ControlState &state = self->priv->cs;
    state.retry_timer = 0;
    if (!state.failed && !state.finished)
      try_connect(self, state);
  });
}

/* Control thread: drops a pending timer. */
static void cancel_timer(GstMediamtxSink *self, guint *id) {
  self->priv->loop->cancel(*id);
  *id = 0;
}

/* Control thread: all inputs ended, and the network half has not finished sending within its
 * grace period: removing it lets the bin post EOS with what it has. */
static void on_eos_timeout(GstMediamtxSink *self) {
  auto *priv = self->priv;
  priv->cs.eos_timer = 0;
  if (!priv->publisher)
    return;
  GST_WARNING_OBJECT(self, "the session did not finish after end of stream: closing it");
  teardown(self, true);
  post_status(self, gstmtx::ConnectionState::Stopped, priv->cs.backoff.attempts(), "end of stream");
}

/* Control thread: everything other threads report (see push_command). Owns the publisher and
 * the backoff. */
static void handle_command(GstMediamtxSink *self, const Command &command) {
  auto *priv = self->priv;
  ControlState &cs = priv->cs;
  switch (command.type) {
  case Command::StreamsChanged: {
    if (cs.failed || cs.finished || cs.retry_timer)
      break;
    bool audio_ready;
    {
      std::lock_guard<std::mutex> lk(priv->lock);
      audio_ready = priv->audio.tail != nullptr;
    }
    if (priv->publisher && audio_ready != priv->published_audio) {
      /* RTSP announces every stream up front: a new or removed stream needs a new session. */
      GST_INFO_OBJECT(self, "inputs changed: reconnecting with %s audio", audio_ready ? "" : "no");
      teardown(self);
    }
    if (!priv->publisher)
      try_connect(self, cs);
    break;
  }
  case Command::Connected: {
    if (!priv->publisher || command.generation != priv->generation)
      break;
    priv->mode = static_cast<int>(LinkMode::Connected);
    cs.backoff.on_delivered(); /* interim: the controller port replaces this */
    GST_INFO_OBJECT(self, "publishing to %s", gstmtx::redact_url(priv->publisher_config.url).c_str());
    post_status(self, gstmtx::ConnectionState::Connected, cs.backoff.attempts(), "");
    GstPad *video_tail = nullptr;
    {
      std::lock_guard<std::mutex> lk(priv->lock);
      if (priv->video.tail)
        video_tail = GST_PAD(gst_object_ref(priv->video.tail));
    }
    /* Frames queued while the session was set up may have been dropped: start a clean GOP. */
    request_keyframe(video_tail);
    if (video_tail)
      gst_object_unref(video_tail);
    break;
  }
  case Command::ChildError:
    if (command.generation != priv->generation || cs.failed)
      break;
    /* A later error of an attempt already being retried only matters when it is fatal (the
     * 401 after a generic failure). */
    if (!priv->publisher && !command.fatal)
      break;
    if (!priv->publisher)
      cancel_timer(self, &cs.retry_timer);
    on_failure(self, cs, command);
    break;
  case Command::AllEos:
    cs.finished = true;
    cancel_timer(self, &cs.retry_timer);
    if (priv->publisher && !cs.eos_timer)
      cs.eos_timer = priv->control->schedule(std::chrono::seconds(3), [self] { on_eos_timeout(self); });
    break;
  case Command::NetworkEos:
    if (!priv->publisher || command.generation != priv->generation)
      break;
    cs.finished = true;
    cancel_timer(self, &cs.retry_timer);
    cancel_timer(self, &cs.eos_timer);
    GST_INFO_OBJECT(self, "end of stream sent: closing the session");
    teardown(self, true);
    post_status(self, gstmtx::ConnectionState::Stopped, cs.backoff.attempts(), "end of stream");
    break;
  }
}

/* Application thread, NULL->READY: the control thread (kept from an earlier run if READY->NULL
 * came from the control thread itself). */
static void create_control(GstMediamtxSink *self) {
  auto *priv = self->priv;
  if (priv->loop)
    return;
  auto loop = std::make_unique<gstmtx::EventLoop>("mediamtxsink");
  auto control = std::make_unique<gstmtx::TaskGate>(*loop);
  std::lock_guard<std::mutex> lk(priv->lock);
  priv->loop = std::move(loop);
  priv->control = std::move(control);
}

/* Application thread, READY->PAUSED: a new run of the control thread with the configured retry
 * policy. Commands from now on reach it. */
static void start_control(GstMediamtxSink *self) {
  auto *priv = self->priv;
  gstmtx::RetryPolicy policy;
  gstmtx::HttpClientConfig http_config;
  bool whip;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    policy.initial_delay = gstmtx::Millis{priv->settings.retry_delay};
    policy.max_delay = gstmtx::Millis{std::max(priv->settings.max_retry_delay, priv->settings.retry_delay)};
    policy.max_retries = priv->settings.max_retries;
    whip = priv->publisher_config.whip;
    http_config.user_agent = priv->publisher_config.user_agent;
  }
  if (whip && !priv->http) {
    auto http = std::make_unique<gstmtx::HttpClient>(*priv->loop, http_config);
    std::lock_guard<std::mutex> lk(priv->lock);
    priv->http = std::move(http);
  }
  /* the gate is closed: no command runs, the control state is ours */
  priv->cs = ControlState{gstmtx::Backoff(policy)};
  priv->control->open();
  GST_DEBUG_OBJECT(self, "control thread running");
}

/* Application thread, PAUSED->READY (or the control thread itself, when the application stops
 * the pipeline from a bus handler there): no more commands or retries; the session ends with the
 * server (RTSP TEARDOWN, WHIP DELETE: bounded). */
static void stop_control(GstMediamtxSink *self) {
  auto *priv = self->priv;
  if (!priv->control || !priv->control->close([self] {
        cancel_timer(self, &self->priv->cs.retry_timer);
        cancel_timer(self, &self->priv->cs.eos_timer);
      }))
    return;
  teardown(self, true);
  post_status(self, gstmtx::ConnectionState::Stopped, priv->cs.backoff.attempts(), "");
  GST_DEBUG_OBJECT(self, "control thread stopped");
}

/* Application thread, READY->NULL: ends the control thread, unless this is that thread (the
 * application set NULL from a bus handler there): then it ends in finalize. */
static void release_control(GstMediamtxSink *self) {
  auto *priv = self->priv;
  std::unique_ptr<gstmtx::EventLoop> loop;
  std::unique_ptr<gstmtx::TaskGate> control;
  std::unique_ptr<gstmtx::HttpClient> http;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    if (!priv->loop || priv->loop->on_loop_thread())
      return;
    loop = std::move(priv->loop);
    control = std::move(priv->control);
    http = std::move(priv->http);
  }
  http.reset(); /* on the loop: cancels what is still in flight */
  loop.reset();
}
