/* gst-mediamtx: reconnectbin — keep any element alive, the GStreamer way.
 *
 * SECTION:element-reconnectbin
 *
 * A bin around a child that has no reconnection of its own (rtspsrc, v4l2src losing its camera,
 * rtspclientsink, souphttpsrc ...). The child is restarted, with the shared backoff policy
 * (gst/backoff.h), when it posts an error, when it ends (EOS, `restart-on-eos`) and when it
 * stalls (`stall-timeout`). The bin's ghost pads are made once from the child's and are
 * re-targeted at every restart, so downstream never sees the child's EOS or a flush:
 *
 *  - source bin (only src pads): while the child is down, `fallback` frames (black or the last
 *    frame for raw video, silence for raw audio) or GAP events keep downstream running on the
 *    pipeline clock; after a restart the child's segment is shifted so running time continues.
 *  - sink bin (only sink pads): upstream buffers are dropped and counted while the child is
 *    down, never blocked and never answered with an error; after a restart a force-key-unit
 *    event goes upstream so an encoder sends a keyframe at once.
 *  - filter bin: both.
 *
 * The child is a bin description (`child="rtspsrc location=... ! rtph264depay"`, built with
 * gst_parse_bin_from_description and its unlinked pads ghosted) or elements added to the bin
 * directly (gst-launch `reconnectbin.( videotestsrc ! x264enc )`). Directly added children are
 * converted once, on NULL->READY, into a description (factory, name, properties that differ
 * from their defaults, links in order) and replaced by a bin built from it: every restart then
 * builds a fresh instance of the same description, whichever way the child was given. Only a
 * linear chain (or separate chains) can be converted; use `child` for anything else.
 *
 * Threads: the application thread sets properties and states; the child's streaming threads
 * run the pad probes and chain functions; the control thread, the element's gstmtx::EventLoop
 * (NULL->READY to READY->NULL; its tasks pass a gstmtx::TaskGate open from READY->PAUSED to
 * PAUSED->READY), does every child state change and restart and runs the retry timer and the
 * stall watchdog; one fallback thread pushes fallback data while a source child is down. The
 * private `lock` is short and never held across calls into other elements; the output's pad
 * stream lock serialises the child's data with the fallback thread's.
 *
 * Example:
 *   gst-launch-1.0 reconnectbin child="rtspsrc location=rtsp://cam:8554/cam user-agent=viewer !
 *     rtph264depay ! avdec_h264" fallback=black ! videoconvert ! autovideosink
 */
#include "gstreconnectbin.h"

#include <gst/audio/audio.h>
#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backoff.h"
#include "elements.h"
#include "event_loop.h"
#include "stall_watchdog.h"
#include "status.h"
#include "task_gate.h"

GST_DEBUG_CATEGORY_STATIC(gst_reconnect_bin_debug);
#define GST_CAT_DEFAULT gst_reconnect_bin_debug

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS_ANY);
static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_SOMETIMES, GST_STATIC_CAPS_ANY);

enum {
  PROP_0,
  PROP_CHILD,
  PROP_RESTART_ON_EOS,
  PROP_STALL_TIMEOUT,
  PROP_RETRY_DELAY,
  PROP_MAX_RETRY_DELAY,
  PROP_MAX_RETRIES,
  PROP_RETRY_JITTER,
  PROP_STABLE_PERIOD,
  PROP_FALLBACK,
  PROP_STATS,
};

#define DEFAULT_RESTART_ON_EOS TRUE
#define DEFAULT_STALL_TIMEOUT 5000
#define DEFAULT_RETRY_DELAY 1000
#define DEFAULT_MAX_RETRY_DELAY 30000
#define DEFAULT_MAX_RETRIES -1
#define DEFAULT_RETRY_JITTER 0.2
#define DEFAULT_STABLE_PERIOD 10000
#define DEFAULT_FALLBACK GST_RECONNECT_BIN_FALLBACK_NONE

/* GAP events every this long while a non-raw source is down */
#define GAP_INTERVAL (100 * GST_MSECOND)
/* a restarted child whose timestamps lag the pipeline clock by more than this (compared with the
 * first run) is moved forward to the clock: it restarted its timeline from zero */
#define RESYNC_TOLERANCE (200 * GST_MSECOND)

namespace {

using gstmtx::ConnectionState;
using SteadyClock = std::chrono::steady_clock;

enum class FailureKind { Error, Eos, Stall };

const char *failure_kind_name(FailureKind kind) {
  switch (kind) {
  case FailureKind::Error: return "error";
  case FailureKind::Eos: return "eos";
  case FailureKind::Stall: return "stall";
  }
  return "error";
}

struct Settings {
  std::string child_description;
  bool restart_on_eos = DEFAULT_RESTART_ON_EOS;
  guint stall_timeout = DEFAULT_STALL_TIMEOUT;
  guint retry_delay = DEFAULT_RETRY_DELAY;
  guint max_retry_delay = DEFAULT_MAX_RETRY_DELAY;
  gint max_retries = DEFAULT_MAX_RETRIES;
  gdouble retry_jitter = DEFAULT_RETRY_JITTER;
  guint stable_period = DEFAULT_STABLE_PERIOD;
  GstReconnectBinFallback fallback = DEFAULT_FALLBACK;
};

/* The bin's src side: what the child produces, and the fallback while it is down. Fields marked
 * [stream] are guarded by the stream lock of `internal` (held by the child's streaming thread in
 * the probe and by the fallback thread while it pushes). */
struct SourceSide {
  GstPad *ghost = nullptr;    /* the bin's src pad, lives as long as the bin */
  GstPad *internal = nullptr; /* its internal proxy pad (ref), receives the child's data */
  std::atomic<bool> accepting{false}; /* the current child generation may push */
  std::atomic<guint> run_gen{0};      /* generation of the child allowed to push */
  std::atomic<guint> flowing_gen{0};  /* last generation that pushed a buffer */
  guint probe_gen = 0;                /* [stream] generation the fields below describe */
  bool flowing = false;               /* [stream] this generation pushed its first buffer */
  bool started = false;               /* [stream] a stream-start went downstream */
  bool have_child_segment = false;    /* [stream] */
  GstSegment child_segment;           /* [stream] the child's segment, before our shift */
  std::vector<GstEvent *> pending;    /* [stream] events held until the first buffer */
  GstClockTimeDiff shift = 0;         /* [stream] added to the child's segment base */
  GstClockTime last_rt_end = GST_CLOCK_TIME_NONE; /* [stream] running time downstream reached */
  GstClockTimeDiff lag = 0;           /* [stream] clock running time minus buffer running time */
  bool have_lag = false;              /* [stream] */
  GstClockTimeDiff first_lag = 0;     /* [stream] lag of the very first run */
  bool have_first_lag = false;        /* [stream] */
  GstCaps *caps = nullptr;            /* [stream] last caps from the child */
  GstBuffer *last_frame = nullptr;    /* [stream] last raw video buffer, for freeze */
  GstClockTime last_duration = GST_CLOCK_TIME_NONE; /* [stream] */
  GstQuery *latency = nullptr;        /* last successful latency answer (lock) */
};

/* The bin's sink side. */
struct SinkSide {
  GstPad *ghost = nullptr;
  std::atomic<bool> up{false};           /* the child is linked and should take data */
  std::atomic<bool> upstream_eos{false}; /* upstream sent EOS: the child's EOS is real */
};

}  // namespace

struct ReconnectBinPrivate {
  std::mutex lock; /* guards settings, child/generation, control pointers, stats, last error */
  Settings settings;

  /* child */
  GstElement *child = nullptr; /* current child instance (in the bin), or nullptr */
  bool child_fresh = false;    /* built and never started: the next start uses it as is */
  guint generation = 0;        /* bumped at every (re)start */
  bool child_running = false;  /* child started and not being torn down: its messages count */
  std::string build_error;     /* why the description did not parse */
  std::string summary;         /* factory names only: no URLs, no passwords */
  GstState desired = GST_STATE_NULL; /* state the control thread drives the child to */

  SourceSide src;
  SinkSide sink;
  std::atomic<bool> freeze{false}; /* fallback=freeze: the src probe keeps the last frame */

  /* control thread (pointers under lock) */
  std::unique_ptr<gstmtx::EventLoop> loop;
  std::unique_ptr<gstmtx::TaskGate> control;
  guint retry_timer = 0; /* (lock) a restart is due: EventLoop source id */
  guint watch_timer = 0; /* next stall check (control thread) */
  bool failed = false;   /* retries exhausted: stay down until READY */
  gstmtx::Backoff backoff;
  gstmtx::StallWatchdog watchdog;

  /* fallback thread */
  std::thread fallback;
  std::atomic<bool> fallback_stop{false};
  GstClockID fallback_clock_id = nullptr; /* (lock) */

  /* last failure, for the final error */
  guint error_generation = 0; /* generation whose first error was taken */
  GQuark error_domain = 0;
  gint error_code = 0;
  std::string error_message;
  std::string error_debug;
  std::string last_reason;

  /* stats (lock) */
  ConnectionState state = ConnectionState::Idle;
  guint restarts = 0;
  guint errors = 0;
  guint eos_count = 0;
  guint stalls = 0;
  std::atomic<guint64> buffers_dropped{0};
  std::atomic<guint64> fallback_buffers{0};
  std::atomic<guint64> buffers_out{0};
};

struct _GstMtxReconnectBin {
  GstBin parent;
  ReconnectBinPrivate *priv;
};

static void gst_reconnect_bin_finalize(GObject *object);
static void gst_reconnect_bin_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec);
static void gst_reconnect_bin_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec);
static GstStateChangeReturn gst_reconnect_bin_change_state(GstElement *element, GstStateChange transition);
static GstClock *gst_reconnect_bin_provide_clock(GstElement *element);
static void gst_reconnect_bin_handle_message(GstBin *bin, GstMessage *message);

static bool reconnect_bin_build_child(GstMtxReconnectBin *self, std::string *error);
static std::string reconnect_bin_summarize(const std::string &description);
static bool reconnect_bin_adopt_children(GstMtxReconnectBin *self, std::string *description, std::string *error,
                                         std::vector<GstPad *> *peers);
static void reconnect_bin_create_control(GstMtxReconnectBin *self);
static void reconnect_bin_release_control(GstMtxReconnectBin *self);
static void reconnect_bin_post(GstMtxReconnectBin *self, std::function<void()> command);
static void reconnect_bin_watch_stall(GstMtxReconnectBin *self);
static void reconnect_bin_report_failure(GstMtxReconnectBin *self, guint generation, FailureKind kind,
                                         const GError *error, const char *debug);
static void reconnect_bin_sync_child_state(GstMtxReconnectBin *self, GstState state);
static void reconnect_bin_on_connected(GstMtxReconnectBin *self, guint generation);
static void reconnect_bin_resync_child(GstMtxReconnectBin *self, guint generation);
static void reconnect_bin_on_failure(GstMtxReconnectBin *self, guint generation, FailureKind kind, GQuark domain,
                                     gint code, const std::string &message, const std::string &debug);
static void reconnect_bin_start_child(GstMtxReconnectBin *self, bool is_restart);
static void reconnect_bin_start_fallback(GstMtxReconnectBin *self, guint failed_generation);
static void reconnect_bin_stop_fallback(GstMtxReconnectBin *self);
static void reconnect_bin_teardown_child(GstMtxReconnectBin *self);
static GstPadProbeReturn reconnect_bin_src_probe(GstPad *pad, GstPadProbeInfo *info, gpointer user_data);
static GstFlowReturn reconnect_bin_sink_chain(GstPad *pad, GstObject *parent, GstBuffer *buffer);
static GstFlowReturn reconnect_bin_sink_chain_list(GstPad *pad, GstObject *parent, GstBufferList *list);
static gboolean reconnect_bin_sink_event(GstPad *pad, GstObject *parent, GstEvent *event);
static gboolean reconnect_bin_sink_query(GstPad *pad, GstObject *parent, GstQuery *query);
static gboolean reconnect_bin_src_query(GstPad *pad, GstObject *parent, GstQuery *query);
static gboolean reconnect_bin_src_internal_event(GstPad *pad, GstObject *parent, GstEvent *event);

GType gst_reconnect_bin_fallback_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_RECONNECT_BIN_FALLBACK_NONE, "Nothing: GAP events keep downstream running", "none"},
      {GST_RECONNECT_BIN_FALLBACK_BLACK, "Black frames (raw video), silence (raw audio)", "black"},
      {GST_RECONNECT_BIN_FALLBACK_FREEZE, "Repeat the last frame (raw video), silence (raw audio)", "freeze"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstReconnectBinFallback", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

G_DEFINE_TYPE(GstMtxReconnectBin, gst_reconnect_bin, GST_TYPE_BIN);
GST_ELEMENT_REGISTER_DEFINE(reconnectbin, "reconnectbin", GST_RANK_NONE, GST_TYPE_RECONNECT_BIN);

static void gst_reconnect_bin_class_init(GstMtxReconnectBinClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstBinClass *bin_class = GST_BIN_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(gst_reconnect_bin_debug, "reconnectbin", 0, "reconnectbin: keep any element alive");

  gobject_class->finalize = gst_reconnect_bin_finalize;
  gobject_class->set_property = gst_reconnect_bin_set_property;
  gobject_class->get_property = gst_reconnect_bin_get_property;

  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  const auto rw_ready = static_cast<GParamFlags>(rw | GST_PARAM_MUTABLE_READY);
  const auto rw_playing = static_cast<GParamFlags>(rw | GST_PARAM_MUTABLE_PLAYING);

  g_object_class_install_property(
      gobject_class, PROP_CHILD,
      g_param_spec_string("child", "Child",
                          "Bin description of the element(s) to keep alive, as for gst-launch "
                          "(e.g. \"rtspsrc location=rtsp://cam:8554/cam ! rtph264depay\"); its unlinked "
                          "pads become the bin's pads. Only settable in the NULL state. Leave empty to "
                          "use elements added to the bin directly",
                          nullptr, static_cast<GParamFlags>(rw)));
  g_object_class_install_property(
      gobject_class, PROP_RESTART_ON_EOS,
      g_param_spec_boolean("restart-on-eos", "Restart on EOS",
                           "Restart the child when it ends on its own (an EOS that came from upstream "
                           "always passes)",
                           DEFAULT_RESTART_ON_EOS, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_STALL_TIMEOUT,
      g_param_spec_uint("stall-timeout", "Stall timeout",
                        "Restart the child when its src pad produced no buffer for this long, in "
                        "milliseconds, counted from its start (a filter child only stalls while it "
                        "receives input; sink-only children are never stalled). 0 disables",
                        0, G_MAXINT, DEFAULT_STALL_TIMEOUT, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_RETRY_DELAY,
      g_param_spec_uint("retry-delay", "Retry delay",
                        "Delay before the first restart in milliseconds; it doubles on each failed "
                        "attempt up to max-retry-delay",
                        0, G_MAXINT, DEFAULT_RETRY_DELAY, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_MAX_RETRY_DELAY,
      g_param_spec_uint("max-retry-delay", "Maximum retry delay",
                        "Cap on the delay between restarts in milliseconds", 0, G_MAXINT,
                        DEFAULT_MAX_RETRY_DELAY, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_MAX_RETRIES,
      g_param_spec_int("max-retries", "Maximum retries",
                       "Restarts allowed in one outage before the child's error is posted (-1: forever, "
                       "0: never restart)",
                       -1, G_MAXINT, DEFAULT_MAX_RETRIES, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_RETRY_JITTER,
      g_param_spec_double("retry-jitter", "Retry jitter",
                          "Random +/- fraction applied to each delay, so many clients do not "
                          "reconnect at once",
                          0.0, 1.0, DEFAULT_RETRY_JITTER, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_STABLE_PERIOD,
      g_param_spec_uint("stable-period", "Stable period",
                        "Once the child has run this long (milliseconds), the next failure starts "
                        "a new outage: the retry count and delay start again from zero",
                        0, G_MAXINT, DEFAULT_STABLE_PERIOD, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_FALLBACK,
      g_param_spec_enum("fallback", "Fallback",
                        "What a source bin sends downstream while its child is down: GAP events only, "
                        "black frames or the last frame (raw video) — raw audio gets silence unless "
                        "none; other formats get GAP events",
                        GST_TYPE_RECONNECT_BIN_FALLBACK, DEFAULT_FALLBACK, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed("stats", "Statistics",
                         "reconnectbin-stats: state, restarts, attempts, errors, eos, stalls, "
                         "buffers-dropped (sink side, while down), fallback-buffers, buffers-out, "
                         "last-error, last-reason, child (factory names)",
                         GST_TYPE_STRUCTURE, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_set_static_metadata(
      element_class, "Reconnecting bin", "Generic/Bin",
      "Keeps a child element alive: restarts it on error, EOS or stall with backoff, keeps "
      "downstream running while it is down",
      "gst-mediamtx developers");

  element_class->change_state = GST_DEBUG_FUNCPTR(gst_reconnect_bin_change_state);
  element_class->provide_clock = GST_DEBUG_FUNCPTR(gst_reconnect_bin_provide_clock);
  bin_class->handle_message = GST_DEBUG_FUNCPTR(gst_reconnect_bin_handle_message);

  gst_type_mark_as_plugin_api(GST_TYPE_RECONNECT_BIN_FALLBACK, static_cast<GstPluginAPIFlags>(0));
}

/* called from the application thread (g_object_new) */
static void gst_reconnect_bin_init(GstMtxReconnectBin *self) {
  self->priv = new ReconnectBinPrivate();
  gst_segment_init(&self->priv->src.child_segment, GST_FORMAT_TIME);
}

/* called from the thread dropping the last reference; the element is in NULL: no threads run */
static void gst_reconnect_bin_finalize(GObject *object) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(object);
  ReconnectBinPrivate *priv = self->priv;
  for (GstEvent *event : priv->src.pending)
    gst_event_unref(event);
  gst_clear_caps(&priv->src.caps);
  gst_clear_buffer(&priv->src.last_frame);
  if (priv->src.latency)
    gst_query_unref(priv->src.latency);
  gst_clear_object(&priv->src.internal);
  priv->loop.reset(); /* left running when READY->NULL came from the control thread itself */
  delete priv;
  G_OBJECT_CLASS(gst_reconnect_bin_parent_class)->finalize(object);
}

static gstmtx::RetryPolicy reconnect_bin_policy(const Settings &settings) {
  gstmtx::RetryPolicy policy;
  policy.initial_delay = gstmtx::Millis{settings.retry_delay};
  policy.max_delay = gstmtx::Millis{std::max(settings.max_retry_delay, settings.retry_delay)};
  policy.max_retries = settings.max_retries;
  policy.jitter = settings.retry_jitter;
  return policy;
}

/* called from the application thread */
static void gst_reconnect_bin_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(object);
  ReconnectBinPrivate *priv = self->priv;
  if (prop_id == PROP_CHILD) {
    if (GST_STATE(self) != GST_STATE_NULL || GST_STATE_TARGET(self) != GST_STATE_NULL) {
      GST_WARNING_OBJECT(self, "child can only be changed in the NULL state; set the pipeline to NULL first");
      return;
    }
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      const char *description = g_value_get_string(value);
      priv->settings.child_description = description ? description : "";
    }
    std::string error;
    if (!reconnect_bin_build_child(self, &error)) {
      GST_WARNING_OBJECT(self, "%s", error.c_str());
      std::lock_guard<std::mutex> guard(priv->lock);
      priv->build_error = error;
    }
    return;
  }

  std::lock_guard<std::mutex> guard(priv->lock);
  Settings &s = priv->settings;
  switch (prop_id) {
  case PROP_RESTART_ON_EOS: s.restart_on_eos = g_value_get_boolean(value); break;
  case PROP_STALL_TIMEOUT:
    s.stall_timeout = g_value_get_uint(value);
    priv->watchdog.set_timeout(gstmtx::Millis{s.stall_timeout});
    break;
  case PROP_RETRY_DELAY: s.retry_delay = g_value_get_uint(value); break;
  case PROP_MAX_RETRY_DELAY: s.max_retry_delay = g_value_get_uint(value); break;
  case PROP_MAX_RETRIES: s.max_retries = g_value_get_int(value); break;
  case PROP_RETRY_JITTER: s.retry_jitter = g_value_get_double(value); break;
  case PROP_STABLE_PERIOD: s.stable_period = g_value_get_uint(value); break;
  case PROP_FALLBACK:
    s.fallback = static_cast<GstReconnectBinFallback>(g_value_get_enum(value));
    priv->freeze = s.fallback == GST_RECONNECT_BIN_FALLBACK_FREEZE;
    break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); return;
  }
  /* the policy is read by the control thread under the same lock */
  priv->backoff.set_policy(reconnect_bin_policy(s));
}

/* called from any application thread */
static void gst_reconnect_bin_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(object);
  ReconnectBinPrivate *priv = self->priv;
  std::lock_guard<std::mutex> guard(priv->lock);
  const Settings &s = priv->settings;
  switch (prop_id) {
  case PROP_CHILD: g_value_set_string(value, s.child_description.empty() ? nullptr : s.child_description.c_str()); break;
  case PROP_RESTART_ON_EOS: g_value_set_boolean(value, s.restart_on_eos); break;
  case PROP_STALL_TIMEOUT: g_value_set_uint(value, s.stall_timeout); break;
  case PROP_RETRY_DELAY: g_value_set_uint(value, s.retry_delay); break;
  case PROP_MAX_RETRY_DELAY: g_value_set_uint(value, s.max_retry_delay); break;
  case PROP_MAX_RETRIES: g_value_set_int(value, s.max_retries); break;
  case PROP_RETRY_JITTER: g_value_set_double(value, s.retry_jitter); break;
  case PROP_STABLE_PERIOD: g_value_set_uint(value, s.stable_period); break;
  case PROP_FALLBACK: g_value_set_enum(value, s.fallback); break;
  case PROP_STATS: {
    GstStructure *stats = gst_structure_new(
        "reconnectbin-stats", "state", G_TYPE_STRING, gstmtx::connection_state_name(priv->state), "restarts",
        G_TYPE_UINT, priv->restarts, "attempts", G_TYPE_INT, priv->backoff.attempts(), "errors", G_TYPE_UINT,
        priv->errors, "eos", G_TYPE_UINT, priv->eos_count, "stalls", G_TYPE_UINT, priv->stalls, "buffers-dropped",
        G_TYPE_UINT64, priv->buffers_dropped.load(), "fallback-buffers", G_TYPE_UINT64,
        priv->fallback_buffers.load(), "buffers-out", G_TYPE_UINT64, priv->buffers_out.load(), "last-error",
        G_TYPE_STRING, priv->error_message.c_str(), "last-reason", G_TYPE_STRING, priv->last_reason.c_str(),
        "child", G_TYPE_STRING, priv->summary.c_str(), nullptr);
    g_value_take_boxed(value, stats);
    break;
  }
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

/* called from the application thread */
static GstStateChangeReturn gst_reconnect_bin_change_state(GstElement *element, GstStateChange transition) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(element);
  ReconnectBinPrivate *priv = self->priv;

  switch (transition) {
  case GST_STATE_CHANGE_NULL_TO_READY: {
    bool have_child, have_description;
    std::string build_error;
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      have_child = priv->child != nullptr;
      have_description = !priv->settings.child_description.empty();
      build_error = priv->build_error;
    }
    if (!have_child && !have_description) {
      std::string description, error;
      std::vector<GstPad *> peers;
      if (!reconnect_bin_adopt_children(self, &description, &error, &peers)) {
        GST_ELEMENT_ERROR(self, CORE, STATE_CHANGE, ("%s", error.c_str()), (nullptr));
        return GST_STATE_CHANGE_FAILURE;
      }
      {
        std::lock_guard<std::mutex> guard(priv->lock);
        priv->settings.child_description = description;
      }
      std::string build_error_now;
      const bool built = reconnect_bin_build_child(self, &build_error_now);
      for (GstPad *peer : peers) {
        GstPad *own = GST_PAD_IS_SINK(peer) ? priv->src.ghost : priv->sink.ghost;
        if (built && own && !gst_pad_is_linked(own)) {
          if (GST_PAD_IS_SINK(peer))
            gst_pad_link(own, peer);
          else
            gst_pad_link(peer, own);
        }
        gst_object_unref(peer);
      }
      if (!built) {
        GST_ELEMENT_ERROR(self, CORE, STATE_CHANGE, ("%s", build_error_now.c_str()), (nullptr));
        return GST_STATE_CHANGE_FAILURE;
      }
      have_child = true;
    }
    if (!have_child) {
      std::string error = build_error;
      if (!have_description || !reconnect_bin_build_child(self, &error)) {
        GST_ELEMENT_ERROR(self, CORE, STATE_CHANGE, ("%s", error.c_str()), (nullptr));
        return GST_STATE_CHANGE_FAILURE;
      }
    }
    reconnect_bin_create_control(self);
    break;
  }
  case GST_STATE_CHANGE_READY_TO_PAUSED: {
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      priv->failed = false;
      priv->retry_timer = 0; /* the last run's timers were cancelled when it stopped */
      priv->backoff.set_policy(reconnect_bin_policy(priv->settings));
      priv->backoff.reset();
      priv->desired = GST_STATE_PAUSED;
      priv->sink.upstream_eos = false;
    }
    priv->control->open();
    break;
  }
  case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
    reconnect_bin_post(self, [self] { reconnect_bin_sync_child_state(self, GST_STATE_PAUSED); });
    break;
  case GST_STATE_CHANGE_PAUSED_TO_READY: {
    /* stop the control thread's tasks first: no restart may race with the shutdown */
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      priv->desired = GST_STATE_READY;
    }
    priv->control->close([self] {
      ReconnectBinPrivate *p = self->priv;
      std::lock_guard<std::mutex> guard(p->lock);
      p->loop->cancel(p->retry_timer);
      p->retry_timer = 0;
      p->loop->cancel(p->watch_timer);
      p->watch_timer = 0;
    });
    reconnect_bin_stop_fallback(self);
    reconnect_bin_teardown_child(self);
    break;
  }
  default:
    break;
  }

  GstStateChangeReturn ret = GST_ELEMENT_CLASS(gst_reconnect_bin_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;
  /* GstBin reports the last return of our locked child (e.g. NO_PREROLL of a live source set to
   * PAUSED earlier): meaningless here, and a NO_PREROLL on PAUSED->PLAYING would make the
   * pipeline commit PLAYING while its sinks still preroll, leaving them paused for good. The
   * child's state is ours to drive: the bin's own transitions succeed at once. */
  ret = GST_STATE_CHANGE_SUCCESS;

  switch (transition) {
  case GST_STATE_CHANGE_READY_TO_PAUSED:
    reconnect_bin_post(self, [self] { reconnect_bin_sync_child_state(self, GST_STATE_PAUSED); });
    /* a source bin behaves as a live source: it never blocks the pipeline's preroll on a child
     * that may be down */
    if (priv->src.ghost && !priv->sink.ghost)
      ret = GST_STATE_CHANGE_NO_PREROLL;
    break;
  case GST_STATE_CHANGE_PAUSED_TO_PLAYING:
    reconnect_bin_post(self, [self] { reconnect_bin_sync_child_state(self, GST_STATE_PLAYING); });
    break;
  case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
    if (priv->src.ghost && !priv->sink.ghost)
      ret = GST_STATE_CHANGE_NO_PREROLL;
    break;
  case GST_STATE_CHANGE_PAUSED_TO_READY: {
    GstPad *internal = priv->src.internal;
    if (internal) {
      GST_PAD_STREAM_LOCK(internal);
      SourceSide &src = priv->src;
      for (GstEvent *event : src.pending)
        gst_event_unref(event);
      src.pending.clear();
      src.flowing = false;
      src.started = false;
      src.have_child_segment = false;
      src.shift = 0;
      src.last_rt_end = GST_CLOCK_TIME_NONE;
      src.have_lag = src.have_first_lag = false;
      gst_clear_buffer(&src.last_frame);
      GST_PAD_STREAM_UNLOCK(internal);
    }
    std::lock_guard<std::mutex> guard(priv->lock);
    priv->state = ConnectionState::Stopped;
    break;
  }
  case GST_STATE_CHANGE_READY_TO_NULL:
    reconnect_bin_release_control(self);
    break;
  default:
    break;
  }
  return ret;
}

/* A child that provides a clock is restarted at will: never let the pipeline pick its clock. */
static GstClock *gst_reconnect_bin_provide_clock(GstElement *) { return nullptr; }

/* Called from whichever thread posts `message` (the child's streaming or internal threads, the
 * control thread during a state change). Child errors become warnings and a restart; the
 * child's asynchronous state changes are ours, not the pipeline's. */
static void gst_reconnect_bin_handle_message(GstBin *bin, GstMessage *message) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(bin);
  ReconnectBinPrivate *priv = self->priv;
  GstObject *src = GST_MESSAGE_SRC(message);

  bool from_child = false, running = false;
  guint generation = 0;
  GstElement *child = nullptr;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (priv->child && src && (src == GST_OBJECT(priv->child) || gst_object_has_as_ancestor(src, GST_OBJECT(priv->child)))) {
      from_child = true;
      child = priv->child;
    }
    running = priv->child_running;
    generation = priv->generation;
    if (from_child && running && GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
      if (priv->error_generation == generation)
        running = false; /* a follow-up error of a child already failing */
      priv->error_generation = generation;
    }
  }
  const bool is_ours = src == GST_OBJECT(self);

  switch (GST_MESSAGE_TYPE(message)) {
  case GST_MESSAGE_ERROR: {
    if (is_ours)
      break;
    if (!from_child || !running) {
      GST_DEBUG_OBJECT(self, "dropping an error from a child being stopped: %" GST_PTR_FORMAT,
                       static_cast<gpointer>(message));
      gst_message_unref(message);
      return;
    }
    GError *err = nullptr;
    gchar *debug = nullptr;
    gst_message_parse_error(message, &err, &debug);
    GST_WARNING_OBJECT(self, "child error, restarting: %s (%s)", err->message, GST_STR_NULL(debug));
    gst_element_post_message(GST_ELEMENT(self), gst_message_new_warning(src, err, debug));
    reconnect_bin_report_failure(self, generation, FailureKind::Error, err, debug);
    g_clear_error(&err);
    g_free(debug);
    gst_message_unref(message);
    return;
  }
  case GST_MESSAGE_ASYNC_DONE:
    if (from_child && src == GST_OBJECT(child)) {
      /* a bin inside a bin does not go on to PLAYING by itself after prerolling: its parent
       * does, and the parent is us */
      reconnect_bin_post(self, [self, generation] { reconnect_bin_resync_child(self, generation); });
    }
    gst_message_unref(message);
    return;
  case GST_MESSAGE_ASYNC_START:
  case GST_MESSAGE_CLOCK_PROVIDE:
  case GST_MESSAGE_CLOCK_LOST:
    if (!is_ours) {
      gst_message_unref(message);
      return;
    }
    break;
  case GST_MESSAGE_EOS:
    if (!is_ours && !from_child) {
      gst_message_unref(message);
      return;
    }
    break;
  case GST_MESSAGE_STATE_CHANGED:
    if (from_child && src == GST_OBJECT(child)) {
      GstState old_state, new_state;
      gst_message_parse_state_changed(message, &old_state, &new_state, nullptr);
      if (new_state == GST_STATE_PLAYING && priv->sink.ghost) {
        /* a sink child is connected once it plays */
        reconnect_bin_post(self, [self, generation] {
          ReconnectBinPrivate *p = self->priv;
          bool current;
          {
            std::lock_guard<std::mutex> guard(p->lock);
            current = generation == p->generation && p->child_running;
          }
          if (!current)
            return;
          reconnect_bin_on_connected(self, generation);
        });
      }
    }
    break;
  default:
    break;
  }
  GST_BIN_CLASS(gst_reconnect_bin_parent_class)->handle_message(bin, message);
}

/* ---- the element's own logic ---------------------------------------------------------------- */

/* -- building the child -- */

/* Turns children added directly (gst-launch bin syntax) into a description, then removes them.
 * Called from the application thread on NULL->READY. */
static bool reconnect_bin_adopt_children(GstMtxReconnectBin *self, std::string *description, std::string *error,
                                         std::vector<GstPad *> *peers) {
  std::vector<GstElement *> elements; /* in the order they were added */
  GST_OBJECT_LOCK(self);
  for (GList *l = GST_BIN_CHILDREN(self); l; l = l->next)
    elements.insert(elements.begin(), GST_ELEMENT(gst_object_ref(l->data)));
  GST_OBJECT_UNLOCK(self);
  if (elements.empty()) {
    *error = "reconnectbin has no child: set the child property (e.g. child=\"videotestsrc is-live=true\") or "
             "add elements to the bin";
    return false;
  }
  /* order: follow the links from each chain's head, so a capsfilter gst-launch added for a
   * filtered link lands between its neighbours */
  auto peer_element = [](GstElement *element, bool src_side) -> GstElement * {
    GstElement *found = nullptr;
    g_autoptr(GstIterator) it = src_side ? gst_element_iterate_src_pads(element) : gst_element_iterate_sink_pads(element);
    GValue item = G_VALUE_INIT;
    while (!found && gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
      g_autoptr(GstPad) peer = gst_pad_get_peer(GST_PAD(g_value_get_object(&item)));
      if (peer)
        found = gst_pad_get_parent_element(peer);
      g_value_reset(&item);
    }
    g_value_unset(&item);
    return found; /* transfer full */
  };
  {
    std::vector<GstElement *> ordered;
    auto seen = [&](GstElement *e) { return std::find(ordered.begin(), ordered.end(), e) != ordered.end(); };
    auto member = [&](GstElement *e) { return std::find(elements.begin(), elements.end(), e) != elements.end(); };
    for (GstElement *head : elements) {
      g_autoptr(GstElement) upstream = peer_element(head, false);
      if (upstream && member(upstream))
        continue;
      for (GstElement *cur = head; cur && member(cur) && !seen(cur);) {
        ordered.push_back(cur);
        g_autoptr(GstElement) next = peer_element(cur, true);
        cur = next;
      }
    }
    for (GstElement *e : elements)
      if (!seen(e))
        ordered.push_back(e);
    elements.swap(ordered);
  }
  auto linked_to = [](GstElement *from, GstElement *to, bool *any_linked_src, bool *to_linked_sink) {
    bool found = false;
    g_autoptr(GstIterator) it = gst_element_iterate_src_pads(from);
    GValue item = G_VALUE_INIT;
    while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
      GstPad *pad = GST_PAD(g_value_get_object(&item));
      g_autoptr(GstPad) peer = gst_pad_get_peer(pad);
      if (peer) {
        *any_linked_src = true;
        g_autoptr(GstElement) owner = gst_pad_get_parent_element(peer);
        if (owner == to)
          found = true;
      }
      g_value_reset(&item);
    }
    g_value_unset(&item);
    *to_linked_sink = false;
    g_autoptr(GstIterator) sit = gst_element_iterate_sink_pads(to);
    while (gst_iterator_next(sit, &item) == GST_ITERATOR_OK) {
      if (gst_pad_is_linked(GST_PAD(g_value_get_object(&item))))
        *to_linked_sink = true;
      g_value_reset(&item);
    }
    g_value_unset(&item);
    return found;
  };

  std::string out;
  bool ok = true;
  for (size_t i = 0; i < elements.size() && ok; ++i) {
    GstElement *element = elements[i];
    GstElementFactory *factory = gst_element_get_factory(element);
    if (!factory) {
      *error = std::string("cannot rebuild child ") + GST_OBJECT_NAME(element) +
               ": it has no factory; use the child property instead";
      ok = false;
      break;
    }
    if (i > 0) {
      bool prev_linked_src = false, linked_sink = false;
      bool linked = linked_to(elements[i - 1], element, &prev_linked_src, &linked_sink);
      /* linked, or both dangling (a delayed link gst-launch makes when a pad appears) */
      out += (linked || (!prev_linked_src && !linked_sink)) ? " ! " : "  ";
    }
    out += GST_OBJECT_NAME(factory);
    out += std::string(" name=") + GST_OBJECT_NAME(element);
    guint n_props = 0;
    g_autofree GParamSpec **props = g_object_class_list_properties(G_OBJECT_GET_CLASS(element), &n_props);
    for (guint p = 0; p < n_props; ++p) {
      GParamSpec *pspec = props[p];
      if ((pspec->flags & G_PARAM_READWRITE) != G_PARAM_READWRITE || g_str_equal(pspec->name, "name") ||
          g_str_equal(pspec->name, "parent"))
        continue;
      GValue v = G_VALUE_INIT;
      g_value_init(&v, pspec->value_type);
      g_object_get_property(G_OBJECT(element), pspec->name, &v);
      const bool null_string = G_VALUE_HOLDS_STRING(&v) && g_value_get_string(&v) == nullptr;
      if (!null_string && !g_param_value_defaults(pspec, &v)) {
        g_autofree char *text = gst_value_serialize(&v);
        if (!text) {
          GST_WARNING_OBJECT(self, "property %s of %s cannot be serialized and is not kept across restarts",
                             pspec->name, GST_OBJECT_NAME(element));
        } else {
          g_autofree char *escaped = g_strescape(text, nullptr);
          out += std::string(" ") + pspec->name + "=\"" + escaped + "\"";
        }
      }
      g_value_unset(&v);
    }
  }
  if (ok) {
    /* gst-launch links such a bin through ghost pads of its own: remember their peers, the
     * bin's own pads take over those links */
    std::vector<GstPad *> foreign;
    GST_OBJECT_LOCK(self);
    for (GList *l = GST_ELEMENT_PADS(self); l; l = l->next)
      if (l->data != self->priv->src.ghost && l->data != self->priv->sink.ghost)
        foreign.push_back(GST_PAD(gst_object_ref(l->data)));
    GST_OBJECT_UNLOCK(self);
    for (GstPad *pad : foreign) {
      GstPad *peer = gst_pad_get_peer(pad);
      if (peer) {
        if (GST_PAD_IS_SRC(pad))
          gst_pad_unlink(pad, peer);
        else
          gst_pad_unlink(peer, pad);
        peers->push_back(peer);
      }
      gst_element_remove_pad(GST_ELEMENT(self), pad);
      gst_object_unref(pad);
    }
    for (GstElement *element : elements) {
      gst_element_set_state(element, GST_STATE_NULL);
      gst_bin_remove(GST_BIN(self), element);
    }
    *description = out;
    GST_INFO_OBJECT(self, "children added directly are rebuilt from a description of: %s",
                    reconnect_bin_summarize(out).c_str());
  }
  for (GstElement *element : elements)
    gst_object_unref(element);
  return ok;
}

/* Factory names of the description, without properties (no URL or password leaks). */
static std::string reconnect_bin_summarize(const std::string &description) {
  std::string out;
  g_auto(GStrv) links = g_strsplit(description.c_str(), "!", -1);
  for (char **link = links; *link; ++link) {
    g_autofree char *trimmed = g_strstrip(g_strdup(*link));
    std::string first(trimmed);
    first = first.substr(0, first.find_first_of(" \t\n"));
    if (first.empty() || first.find('=') != std::string::npos)
      continue;
    if (!out.empty())
      out += " ! ";
    out += first;
  }
  return out;
}

/* Any thread: whether the first element of `description` has a sink pad template, i.e. whether
 * the child can take input at all. */
static bool reconnect_bin_first_element_takes_input(const std::string &description) {
  const std::string summary = reconnect_bin_summarize(description);
  const std::string first = summary.substr(0, summary.find(' '));
  g_autoptr(GstElementFactory) factory = gst_element_factory_find(first.c_str());
  if (!factory)
    return true; /* not a plain element (a bin syntax or a caps string): keep what parse found */
  for (const GList *l = gst_element_factory_get_static_pad_templates(factory); l; l = l->next) {
    auto *templ = static_cast<const GstStaticPadTemplate *>(l->data);
    if (templ->direction == GST_PAD_SINK)
      return true;
  }
  return false;
}

/* Application or control thread: a child such as "rtspclientsink ..." only has request pads,
 * which gst_parse_bin_from_description does not ghost: request one (sink first) and ghost it
 * onto `child` as "sink" or "src". */
static void reconnect_bin_ghost_request_pad(GstBin *child) {
  for (GstPadDirection direction : {GST_PAD_SINK, GST_PAD_SRC}) {
    GST_OBJECT_LOCK(child);
    std::vector<GstElement *> elements;
    for (GList *l = GST_BIN_CHILDREN(child); l; l = l->next)
      elements.push_back(GST_ELEMENT(gst_object_ref(l->data)));
    GST_OBJECT_UNLOCK(child);
    bool done = false;
    for (GstElement *element : elements) {
      for (GList *l = gst_element_class_get_pad_template_list(GST_ELEMENT_GET_CLASS(element)); l && !done;
           l = l->next) {
        GstPadTemplate *templ = GST_PAD_TEMPLATE(l->data);
        if (GST_PAD_TEMPLATE_PRESENCE(templ) != GST_PAD_REQUEST || GST_PAD_TEMPLATE_DIRECTION(templ) != direction)
          continue;
        GstPad *pad = gst_element_request_pad(element, templ, nullptr, nullptr);
        if (!pad)
          continue;
        GstPad *ghost = gst_ghost_pad_new(direction == GST_PAD_SINK ? "sink" : "src", pad);
        gst_object_unref(pad); /* the element keeps its request pad until it is destroyed */
        gst_element_add_pad(GST_ELEMENT(child), ghost);
        done = true;
      }
    }
    for (GstElement *element : elements)
      gst_object_unref(element);
    if (done)
      return;
  }
}

/* GObject/state-change thread, or the control thread. Builds a fresh child instance from the
 * description, adds it (state locked: we drive it) and ghosts/re-targets its pads. */
static bool reconnect_bin_build_child(GstMtxReconnectBin *self, std::string *error) {
  ReconnectBinPrivate *priv = self->priv;
  std::string description;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    description = priv->settings.child_description;
  }
  if (description.empty()) {
    *error = "the child property is empty";
    return false;
  }
  GError *err = nullptr;
  GstElement *child = gst_parse_bin_from_description_full(description.c_str(), TRUE, nullptr,
                                                          GST_PARSE_FLAG_NONE, &err);
  if (!child) {
    /* the summary, not the description: a location may carry a password */
    *error = std::string("cannot build child \"") + reconnect_bin_summarize(description) +
             "\": " + (err ? err->message : "unknown error") + "; check the element names and properties";
    g_clear_error(&err);
    return false;
  }
  if (err) {
    GST_WARNING_OBJECT(self, "child description: %s", err->message);
    g_clear_error(&err);
  }
  g_autoptr(GstPad) child_src = gst_element_get_static_pad(child, "src");
  g_autoptr(GstPad) child_sink = gst_element_get_static_pad(child, "sink");
  if (child_sink && !reconnect_bin_first_element_takes_input(description)) {
    /* e.g. "rtspsrc ! rtph264depay": the depayloader's sink pad was unlinked only until the
     * source's pad appears (a delayed link); it is not an input of the child */
    gst_element_remove_pad(child, child_sink);
    gst_clear_object(&child_sink);
  }
  if (!child_src && !child_sink) {
    reconnect_bin_ghost_request_pad(GST_BIN(child));
    child_sink = gst_element_get_static_pad(child, "sink");
    child_src = gst_element_get_static_pad(child, "src");
  }
  if (!child_src && !child_sink) {
    gst_object_unref(gst_object_ref_sink(child));
    *error = std::string("child \"") + reconnect_bin_summarize(description) +
             "\" has no unlinked static pad; end it with an element that has an always pad (e.g. \"! queue\")";
    return false;
  }
  gst_element_set_locked_state(child, TRUE);

  GstElement *old = nullptr;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    old = priv->child;
    priv->child = nullptr;
  }
  if (old) {
    gst_element_set_state(old, GST_STATE_NULL);
    gst_bin_remove(GST_BIN(self), old);
  }
  if (!gst_bin_add(GST_BIN(self), child)) {
    *error = "cannot add the child to the bin";
    return false;
  }

  if (child_src) {
    if (!priv->src.ghost) {
      g_autoptr(GstPadTemplate) templ = gst_static_pad_template_get(&src_template);
      GstPad *ghost = gst_ghost_pad_new_from_template("src", child_src, templ);
      priv->src.ghost = ghost;
      priv->src.internal = GST_PAD(gst_proxy_pad_get_internal(GST_PROXY_PAD(ghost)));
      gst_pad_set_query_function(ghost, reconnect_bin_src_query);
      gst_pad_set_element_private(priv->src.internal, self);
      gst_pad_set_event_function(priv->src.internal, reconnect_bin_src_internal_event);
      gst_pad_add_probe(priv->src.internal,
                        static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST |
                                                     GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
                        reconnect_bin_src_probe, self, nullptr);
      gst_pad_set_active(ghost, GST_STATE(self) >= GST_STATE_PAUSED);
      gst_element_add_pad(GST_ELEMENT(self), ghost);
    } else {
      gst_ghost_pad_set_target(GST_GHOST_PAD(priv->src.ghost), child_src);
    }
  } else if (priv->src.ghost) {
    GST_WARNING_OBJECT(self, "the new child has no src pad: the bin's src pad stays unconnected");
  }
  if (child_sink) {
    if (!priv->sink.ghost) {
      g_autoptr(GstPadTemplate) templ = gst_static_pad_template_get(&sink_template);
      GstPad *ghost = gst_ghost_pad_new_from_template("sink", child_sink, templ);
      priv->sink.ghost = ghost;
      gst_pad_set_chain_function(ghost, reconnect_bin_sink_chain);
      gst_pad_set_chain_list_function(ghost, reconnect_bin_sink_chain_list);
      gst_pad_set_event_function(ghost, reconnect_bin_sink_event);
      gst_pad_set_query_function(ghost, reconnect_bin_sink_query);
      gst_pad_set_active(ghost, GST_STATE(self) >= GST_STATE_PAUSED);
      gst_element_add_pad(GST_ELEMENT(self), ghost);
    } else {
      gst_ghost_pad_set_target(GST_GHOST_PAD(priv->sink.ghost), child_sink);
    }
  }

  std::lock_guard<std::mutex> guard(priv->lock);
  priv->child = child;
  priv->child_fresh = true;
  priv->generation++;
  priv->summary = reconnect_bin_summarize(description);
  priv->build_error.clear();
  return true;
}

/* -- control thread -- */

/* Application thread, NULL->READY: the control thread (kept from an earlier run if READY->NULL
 * came from the control thread itself). */
static void reconnect_bin_create_control(GstMtxReconnectBin *self) {
  ReconnectBinPrivate *priv = self->priv;
  if (priv->loop)
    return;
  auto loop = std::make_unique<gstmtx::EventLoop>("reconnectbin");
  auto control = std::make_unique<gstmtx::TaskGate>(*loop);
  std::lock_guard<std::mutex> guard(priv->lock);
  priv->loop = std::move(loop);
  priv->control = std::move(control);
}

/* Application thread, READY->NULL: ends the control thread, unless this is that thread (the
 * application set NULL from a bus handler there): then it ends in finalize. */
static void reconnect_bin_release_control(GstMtxReconnectBin *self) {
  ReconnectBinPrivate *priv = self->priv;
  std::unique_ptr<gstmtx::EventLoop> loop;
  std::unique_ptr<gstmtx::TaskGate> control;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (!priv->loop || priv->loop->on_loop_thread())
      return;
    loop = std::move(priv->loop);
    control = std::move(priv->control);
  }
  loop.reset();
}

/* Any thread: queues `command` for the control thread (dropped when the element is not running,
 * or stops before its turn). */
static void reconnect_bin_post(GstMtxReconnectBin *self, std::function<void()> command) {
  ReconnectBinPrivate *priv = self->priv;
  std::lock_guard<std::mutex> guard(priv->lock);
  if (!priv->control)
    return;
  priv->control->post([self, command = std::move(command)] {
    command();
    reconnect_bin_watch_stall(self);
  });
}

/* Control thread (or any thread when it only posts): the shared status message. */
static void reconnect_bin_post_status(GstMtxReconnectBin *self, ConnectionState state, int attempt,
                                      const std::string &reason, gint64 retry_in_ms = -1) {
  ReconnectBinPrivate *priv = self->priv;
  gstmtx::StatusUpdate update;
  update.state = state;
  update.attempt = attempt;
  update.reason = reason;
  update.retry_in_ms = retry_in_ms;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    priv->state = state;
    update.transport = priv->summary;
  }
  gst_element_post_message(GST_ELEMENT(self), gstmtx::status_message_new(GST_OBJECT(self), update));
}

/* Any thread: running time of the pipeline clock now, or NONE when not playing. */
static GstClockTime reconnect_bin_now_running_time(GstMtxReconnectBin *self) {
  if (GST_STATE(self) != GST_STATE_PLAYING)
    return GST_CLOCK_TIME_NONE;
  g_autoptr(GstClock) clock = gst_element_get_clock(GST_ELEMENT(self));
  if (!clock)
    return GST_CLOCK_TIME_NONE;
  GstClockTime now = gst_clock_get_time(clock);
  GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
  return now > base ? now - base : 0;
}

/* Any thread: reports that child generation `generation` failed; the control thread decides. */
static void reconnect_bin_report_failure(GstMtxReconnectBin *self, guint generation, FailureKind kind,
                                         const GError *error, const char *debug) {
  GQuark domain = error ? error->domain : 0;
  gint code = error ? error->code : 0;
  std::string message = error ? error->message : "";
  std::string debug_text = debug ? debug : "";
  reconnect_bin_post(self, [=] { reconnect_bin_on_failure(self, generation, kind, domain, code, message, debug_text); });
}

/* Control thread, after every task and when a stall could first be seen: a child that produced
 * nothing for stall-timeout fails; otherwise the next check is scheduled. */
static void reconnect_bin_watch_stall(GstMtxReconnectBin *self) {
  ReconnectBinPrivate *priv = self->priv;
  const auto now = SteadyClock::now();
  guint generation = 0;
  std::string message;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    priv->loop->cancel(priv->watch_timer);
    priv->watch_timer = 0;
    if (priv->child_running && priv->watchdog.stalled(now)) {
      generation = priv->generation;
      message = "the child produced no data for " + std::to_string(priv->watchdog.timeout().count()) +
                " ms (stall-timeout)";
      priv->watchdog.disarm();
    }
  }
  if (!message.empty())
    reconnect_bin_on_failure(self, generation, FailureKind::Stall, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ,
                             message, "");
  std::lock_guard<std::mutex> guard(priv->lock);
  const auto left = priv->watchdog.time_left(now);
  if (priv->child_running && left.count() >= 0)
    priv->watch_timer = priv->control->schedule(std::max(left, gstmtx::Millis{10}),
                                                [self] { reconnect_bin_watch_stall(self); });
}

/* Control thread (or the application thread on PAUSED->READY once the control thread is
 * joined): unlinks the child, stops it and removes it from the bin. */
static void reconnect_bin_teardown_child(GstMtxReconnectBin *self) {
  ReconnectBinPrivate *priv = self->priv;
  GstElement *old;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    old = priv->child;
    priv->child = nullptr;
    priv->child_running = false;
    priv->child_fresh = false;
  }
  priv->watchdog.disarm();
  priv->src.accepting = false;
  priv->sink.up = false;
  if (!old)
    return;
  if (priv->src.ghost)
    gst_ghost_pad_set_target(GST_GHOST_PAD(priv->src.ghost), nullptr);
  if (priv->sink.ghost)
    gst_ghost_pad_set_target(GST_GHOST_PAD(priv->sink.ghost), nullptr);
  gst_element_set_state(old, GST_STATE_NULL);
  gst_bin_remove(GST_BIN(self), old);
  /* GstBin drops the SINK/SOURCE flag with the last such child; the bin stays what its pads
   * say it is (a sink bin must still count for the pipeline's EOS) */
  GST_OBJECT_LOCK(self);
  if (priv->sink.ghost && !priv->src.ghost)
    GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SINK);
  if (priv->src.ghost && !priv->sink.ghost)
    GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SOURCE);
  GST_OBJECT_UNLOCK(self);
}

/* Control thread: sends a force-key-unit event upstream so the encoder feeding a restarted sink
 * child sends a keyframe now. */
static void reconnect_bin_request_keyframe(GstMtxReconnectBin *self) {
  if (!self->priv->sink.ghost)
    return;
  GST_DEBUG_OBJECT(self, "asking upstream for a keyframe");
  gst_pad_push_event(self->priv->sink.ghost,
                     gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 0));
}

/* Control thread: points the child's clock and times at ours, as GstBin would for an unlocked
 * child. */
static void reconnect_bin_prepare_child_times(GstMtxReconnectBin *self, GstElement *child) {
  g_autoptr(GstClock) clock = gst_element_get_clock(GST_ELEMENT(self));
  gst_element_set_clock(child, clock);
  gst_element_set_base_time(child, gst_element_get_base_time(GST_ELEMENT(self)));
  gst_element_set_start_time(child, gst_element_get_start_time(GST_ELEMENT(self)));
}

/* Control thread: starts the child (a fresh instance unless the one built at setup was never
 * started) in the bin's desired state. */
static void reconnect_bin_start_child(GstMtxReconnectBin *self, bool is_restart) {
  ReconnectBinPrivate *priv = self->priv;
  bool need_build;
  int attempt;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (priv->failed || !priv->control->is_open() || priv->desired < GST_STATE_PAUSED || priv->child_running)
      return;
    need_build = !priv->child || !priv->child_fresh;
    attempt = priv->backoff.attempts();
    if (is_restart)
      priv->restarts++;
  }
  if (need_build) {
    reconnect_bin_teardown_child(self);
    std::string error;
    if (!reconnect_bin_build_child(self, &error)) {
      {
        std::lock_guard<std::mutex> guard(priv->lock);
        priv->failed = true;
      }
      reconnect_bin_post_status(self, ConnectionState::Failed, attempt, error);
      GST_ELEMENT_ERROR(self, CORE, FAILED, ("%s", error.c_str()), (nullptr));
      return;
    }
  }
  GstElement *child;
  GstState desired;
  guint generation;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    child = GST_ELEMENT(gst_object_ref(priv->child));
    priv->child_fresh = false;
    priv->child_running = true;
    generation = priv->generation;
    desired = priv->desired;
  }
  priv->src.run_gen = generation;
  priv->src.accepting = true;
  priv->sink.up = true;
  reconnect_bin_post_status(self, ConnectionState::Connecting, attempt, "");
  if (!priv->control->is_open()) {
    /* the application stopped the bin from a bus handler, on this thread */
    gst_object_unref(child);
    return;
  }
  GST_INFO_OBJECT(self, "starting child generation %u (attempt %d) to %s", generation, attempt,
                  gst_element_state_get_name(desired));

  reconnect_bin_prepare_child_times(self, child);
  GstStateChangeReturn ret = gst_element_set_state(child, desired);
  if (desired == GST_STATE_PLAYING && priv->src.ghost)
    priv->watchdog.arm(SteadyClock::now(), priv->sink.ghost != nullptr);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    /* its error message, if any, was queued first and wins */
    GError err = {GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE,
                  const_cast<char *>("the child failed to start; see the previous warnings for why")};
    reconnect_bin_report_failure(self, generation, FailureKind::Error, &err, nullptr);
  }
  reconnect_bin_request_keyframe(self);
  gst_object_unref(child);
}

/* Control thread: the bin's state changed (PAUSED or PLAYING): drive the child there. */
static void reconnect_bin_sync_child_state(GstMtxReconnectBin *self, GstState state) {
  ReconnectBinPrivate *priv = self->priv;
  GstElement *child = nullptr;
  bool start = false;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    priv->desired = state;
    if (priv->failed)
      return;
    if (priv->child_running && priv->child)
      child = GST_ELEMENT(gst_object_ref(priv->child));
    else if (!priv->retry_timer)
      start = true;
  }
  if (start) {
    reconnect_bin_start_child(self, false);
    return;
  }
  if (!child) {
    /* the child is down, waiting for its restart: the fallback runs only while playing */
    if (state != GST_STATE_PLAYING) {
      reconnect_bin_stop_fallback(self);
    } else {
      guint generation;
      {
        std::lock_guard<std::mutex> guard(priv->lock);
        generation = priv->generation;
      }
      if (!priv->fallback.joinable())
        reconnect_bin_start_fallback(self, generation);
    }
    return;
  }
  reconnect_bin_prepare_child_times(self, child);
  gst_element_set_state(child, state);
  if (state == GST_STATE_PLAYING && priv->src.ghost)
    priv->watchdog.arm(SteadyClock::now(), priv->sink.ghost != nullptr);
  else
    priv->watchdog.disarm();
  gst_object_unref(child);
}

/* Control thread: the child of `generation` finished an asynchronous state change; take it on
 * to the state the bin wants. */
static void reconnect_bin_resync_child(GstMtxReconnectBin *self, guint generation) {
  ReconnectBinPrivate *priv = self->priv;
  GstElement *child;
  GstState desired;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (generation != priv->generation || !priv->child_running || !priv->child)
      return;
    child = GST_ELEMENT(gst_object_ref(priv->child));
    desired = priv->desired;
  }
  GstState current, pending;
  gst_element_get_state(child, &current, &pending, 0);
  if (current != desired && pending == GST_STATE_VOID_PENDING) {
    GST_DEBUG_OBJECT(self, "child prerolled, taking it to %s", gst_element_state_get_name(desired));
    reconnect_bin_prepare_child_times(self, child);
    gst_element_set_state(child, desired);
  }
  gst_object_unref(child);
}

/* Control thread: the child of `generation` delivers (source: first buffer; sink: PLAYING). */
static void reconnect_bin_on_connected(GstMtxReconnectBin *self, guint generation) {
  ReconnectBinPrivate *priv = self->priv;
  int attempt;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (generation != priv->generation || !priv->child_running || priv->state == ConnectionState::Connected)
      return;
    priv->backoff.on_delivered(); /* interim: the controller port replaces this */
    attempt = priv->backoff.attempts();
  }
  GST_INFO_OBJECT(self, "child generation %u connected", generation);
  reconnect_bin_post_status(self, ConnectionState::Connected, attempt, "");
  reconnect_bin_stop_fallback(self);
  reconnect_bin_request_keyframe(self);
}

/* Control thread: child `generation` failed. Restart it after the backoff delay, or give up
 * and post the child's own error. */
static void reconnect_bin_on_failure(GstMtxReconnectBin *self, guint generation, FailureKind kind, GQuark domain,
                                     gint code, const std::string &message, const std::string &debug) {
  ReconnectBinPrivate *priv = self->priv;
  std::optional<gstmtx::Millis> delay;
  int attempt, max_retries;
  std::string reason;
  const auto now = SteadyClock::now();
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (generation != priv->generation || !priv->child_running)
      return;
    priv->child_running = false;
    switch (kind) {
    case FailureKind::Error: priv->errors++; break;
    case FailureKind::Eos: priv->eos_count++; break;
    case FailureKind::Stall: priv->stalls++; break;
    }
    if (kind != FailureKind::Eos || priv->error_message.empty()) {
      priv->error_domain = domain ? domain : GST_STREAM_ERROR;
      priv->error_code = domain ? code : GST_STREAM_ERROR_FAILED;
      priv->error_message = message.empty() ? "the child ended (EOS)" : message;
      priv->error_debug = debug;
    }
    reason = std::string(failure_kind_name(kind)) + ": " + (message.empty() ? "end of stream" : message);
    priv->last_reason = reason;

    delay = priv->backoff.next_delay(now);
    attempt = priv->backoff.attempts();
    max_retries = priv->backoff.policy().max_retries;
    if (!delay)
      priv->failed = true;
    else
      priv->retry_timer = priv->control->schedule(*delay, [self] {
        {
          std::lock_guard<std::mutex> guard(self->priv->lock);
          self->priv->retry_timer = 0;
        }
        reconnect_bin_start_child(self, true);
        reconnect_bin_watch_stall(self);
      });
  }
  priv->watchdog.disarm();
  priv->src.accepting = false;
  priv->sink.up = false;

  if (!delay) {
    GST_WARNING_OBJECT(self, "giving up after %d restarts: %s", attempt, reason.c_str());
    reconnect_bin_post_status(self, ConnectionState::Failed, attempt, reason);
    reconnect_bin_stop_fallback(self);
    reconnect_bin_teardown_child(self);
    GQuark error_domain;
    gint error_code;
    std::string text, error_debug;
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      error_domain = priv->error_domain;
      error_code = priv->error_code;
      text = priv->error_message;
      error_debug = priv->error_debug;
    }
    if (kind == FailureKind::Eos && priv->src.ghost) {
      /* the source really ended: let downstream finish */
      gst_pad_push_event(priv->src.ghost, gst_event_new_eos());
      return;
    }
    g_autofree char *full_debug = g_strdup_printf(
        "%s%sreconnectbin gave up after %d restart(s) (max-retries=%d, last failure: %s); raise max-retries, or "
        "set it to -1 to retry forever",
        error_debug.c_str(), error_debug.empty() ? "" : "\n", attempt, max_retries, failure_kind_name(kind));
    gst_element_message_full(GST_ELEMENT(self), GST_MESSAGE_ERROR, error_domain, error_code, g_strdup(text.c_str()),
                             g_strdup(full_debug), __FILE__, GST_FUNCTION, __LINE__);
    return;
  }

  GST_INFO_OBJECT(self, "child generation %u failed (%s), restart %d in %lld ms", generation, reason.c_str(),
                  attempt, static_cast<long long>(delay->count()));
  reconnect_bin_post_status(self, ConnectionState::Reconnecting, attempt, reason, delay->count());
  reconnect_bin_start_fallback(self, generation);
  reconnect_bin_teardown_child(self);
}

/* ---- source side: the child's data and the fallback ------------------------------------------ */

/* Child streaming thread, stream lock held: forget the previous child run. */
static void reconnect_bin_src_reset_run(SourceSide &src, guint generation) {
  src.probe_gen = generation;
  src.flowing = false;
  src.have_child_segment = false;
  gst_segment_init(&src.child_segment, GST_FORMAT_TIME);
  src.shift = 0;
  for (GstEvent *event : src.pending)
    gst_event_unref(event);
  src.pending.clear();
}

/* Child streaming thread, stream lock held: the child's segment as sent downstream. */
static GstEvent *reconnect_bin_shifted_segment(SourceSide &src, GstEvent *original) {
  GstSegment segment = src.child_segment;
  if (segment.format == GST_FORMAT_TIME && src.shift > 0)
    segment.base += src.shift;
  GstEvent *event = gst_event_new_segment(&segment);
  if (original)
    gst_event_set_seqnum(event, gst_event_get_seqnum(original));
  return event;
}

/* Child streaming thread, stream lock held: the first buffer of a child run at `pts`. Chooses
 * the shift that keeps running time continuous (never backwards, and not behind the clock when
 * a restarted child begins its timeline again from zero), then sends the held events. */
static void reconnect_bin_src_begin_output(GstMtxReconnectBin *self, SourceSide &src, GstClockTime pts) {
  src.shift = 0;
  const GstClockTime now_rt = reconnect_bin_now_running_time(self);
  if (src.child_segment.format == GST_FORMAT_TIME && GST_CLOCK_TIME_IS_VALID(pts)) {
    const GstClockTime buf_rt = gst_segment_to_running_time(&src.child_segment, GST_FORMAT_TIME, pts);
    if (GST_CLOCK_TIME_IS_VALID(buf_rt)) {
      if (GST_CLOCK_TIME_IS_VALID(src.last_rt_end) && buf_rt < src.last_rt_end)
        src.shift = GST_CLOCK_DIFF(buf_rt, src.last_rt_end);
      if (GST_CLOCK_TIME_IS_VALID(now_rt)) {
        if (!src.have_first_lag) {
          src.first_lag = GST_CLOCK_DIFF(buf_rt, now_rt);
          src.have_first_lag = true;
        } else {
          const GstClockTimeDiff expected = GST_CLOCK_DIFF(src.first_lag, static_cast<GstClockTimeDiff>(now_rt));
          const GstClockTimeDiff actual = static_cast<GstClockTimeDiff>(buf_rt) + src.shift;
          if (actual + static_cast<GstClockTimeDiff>(RESYNC_TOLERANCE) < expected)
            src.shift = expected - static_cast<GstClockTimeDiff>(buf_rt);
        }
      }
    }
  }
  GST_DEBUG_OBJECT(self, "child run %u starts, running time shifted by %" GST_STIME_FORMAT, src.probe_gen,
                   GST_STIME_ARGS(src.shift));
  gst_pad_push_event(src.ghost, reconnect_bin_shifted_segment(src, nullptr));
  std::vector<GstEvent *> pending;
  pending.swap(src.pending);
  for (GstEvent *event : pending)
    gst_pad_push_event(src.ghost, event);
}

/* Child streaming thread, stream lock held: bookkeeping for a buffer going downstream. */
static void reconnect_bin_src_track_buffer(GstMtxReconnectBin *self, SourceSide &src, GstBuffer *buffer) {
  if (GST_BUFFER_DURATION_IS_VALID(buffer))
    src.last_duration = GST_BUFFER_DURATION(buffer);
  if (src.child_segment.format == GST_FORMAT_TIME && GST_BUFFER_PTS_IS_VALID(buffer)) {
    GstClockTime rt = gst_segment_to_running_time(&src.child_segment, GST_FORMAT_TIME, GST_BUFFER_PTS(buffer));
    if (GST_CLOCK_TIME_IS_VALID(rt)) {
      rt += src.shift;
      const GstClockTime end = rt + (GST_BUFFER_DURATION_IS_VALID(buffer) ? GST_BUFFER_DURATION(buffer) : 0);
      if (!GST_CLOCK_TIME_IS_VALID(src.last_rt_end) || end > src.last_rt_end)
        src.last_rt_end = end;
      const GstClockTime now_rt = reconnect_bin_now_running_time(self);
      if (GST_CLOCK_TIME_IS_VALID(now_rt)) {
        src.lag = GST_CLOCK_DIFF(rt, now_rt);
        src.have_lag = true;
      }
    }
  }
  /* only for freeze: a buffer held from a pool (v4l2src, a decoder) can keep the old child's
   * device or pool from being released */
  if (self->priv->freeze && src.caps && gst_structure_has_name(gst_caps_get_structure(src.caps, 0), "video/x-raw"))
    gst_buffer_replace(&src.last_frame, buffer);
}

/* Probe on the internal side of the src ghost pad. Called from the child's streaming thread,
 * with the internal pad's stream lock held for serialized data. */
static GstPadProbeReturn reconnect_bin_src_probe(GstPad *, GstPadProbeInfo *info, gpointer user_data) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(user_data);
  ReconnectBinPrivate *priv = self->priv;
  SourceSide &src = priv->src;

  if (!src.accepting) {
    GST_LOG_OBJECT(self, "dropping data from a child being stopped");
    return GST_PAD_PROBE_DROP;
  }
  const guint generation = src.run_gen;
  if (src.probe_gen != generation)
    reconnect_bin_src_reset_run(src, generation);

  if (info->type & (GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST)) {
    GstBuffer *first = nullptr;
    guint n = 1;
    if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
      first = GST_PAD_PROBE_INFO_BUFFER(info);
    } else {
      GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
      n = gst_buffer_list_length(list);
      if (n == 0)
        return GST_PAD_PROBE_OK;
      first = gst_buffer_list_get(list, 0);
    }
    priv->watchdog.note_output(SteadyClock::now());
    priv->buffers_out += n;
    if (!src.flowing) {
      reconnect_bin_src_begin_output(self, src, GST_BUFFER_PTS(first));
      src.flowing = true;
      src.flowing_gen = generation;
      reconnect_bin_post(self, [self, generation] { reconnect_bin_on_connected(self, generation); });
    }
    reconnect_bin_src_track_buffer(self, src, first);
    return GST_PAD_PROBE_OK;
  }

  GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_EOS: {
    bool restart;
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      restart = priv->settings.restart_on_eos;
    }
    if (!restart || priv->sink.upstream_eos)
      return GST_PAD_PROBE_OK;
    GST_INFO_OBJECT(self, "child generation %u ended (EOS): restarting it", generation);
    reconnect_bin_report_failure(self, generation, FailureKind::Eos, nullptr, nullptr);
    return GST_PAD_PROBE_DROP;
  }
  case GST_EVENT_FLUSH_START:
  case GST_EVENT_FLUSH_STOP:
  case GST_EVENT_GAP:
    return src.flowing ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
  default:
    return GST_PAD_PROBE_OK; /* see reconnect_bin_src_internal_event */
  }
}

/* Event function of the internal side of the src ghost pad (after the probe above), called
 * from the child's streaming thread with the stream lock held for serialized events. The
 * internal pad keeps every sticky event it accepts, so the child's data flow stays valid; what
 * goes downstream is decided here. */
static gboolean reconnect_bin_src_internal_event(GstPad *pad, GstObject *, GstEvent *event) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(gst_pad_get_element_private(pad));
  SourceSide &src = self->priv->src;
  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_STREAM_START:
    /* downstream keeps the stream it has: a restart is not a new stream */
    if (src.started) {
      gst_event_unref(event);
      return TRUE;
    }
    src.started = true;
    break;
  case GST_EVENT_CAPS: {
    GstCaps *caps;
    gst_event_parse_caps(event, &caps);
    if (!src.caps || !gst_caps_is_equal(caps, src.caps))
      gst_clear_buffer(&src.last_frame);
    gst_caps_replace(&src.caps, caps);
    break;
  }
  case GST_EVENT_SEGMENT: {
    const GstSegment *segment;
    gst_event_parse_segment(event, &segment);
    gst_segment_copy_into(segment, &src.child_segment);
    src.have_child_segment = true;
    if (!src.flowing) {
      gst_event_unref(event); /* sent, shifted, with the first buffer */
      return TRUE;
    }
    GstEvent *shifted = reconnect_bin_shifted_segment(src, event);
    gst_event_unref(event);
    event = shifted;
    break;
  }
  default:
    if (!src.flowing && src.have_child_segment && GST_EVENT_IS_SERIALIZED(event)) {
      src.pending.push_back(event);
      return TRUE;
    }
    break;
  }
  return gst_pad_push_event(src.ghost, event);
}

/* Fallback thread: makes one black raw video frame in `info`'s format. */
static GstBuffer *reconnect_bin_black_frame(const GstVideoInfo *info) {
  GstVideoInfo ayuv;
  gst_video_info_set_format(&ayuv, GST_VIDEO_FORMAT_AYUV, GST_VIDEO_INFO_WIDTH(info), GST_VIDEO_INFO_HEIGHT(info));
  GST_VIDEO_INFO_FPS_N(&ayuv) = GST_VIDEO_INFO_FPS_N(info);
  GST_VIDEO_INFO_FPS_D(&ayuv) = GST_VIDEO_INFO_FPS_D(info);
  GST_VIDEO_INFO_PAR_N(&ayuv) = GST_VIDEO_INFO_PAR_N(info);
  GST_VIDEO_INFO_PAR_D(&ayuv) = GST_VIDEO_INFO_PAR_D(info);
  g_autoptr(GstBuffer) in = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&ayuv), nullptr);
  GstBuffer *out = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(info), nullptr);
  GstVideoFrame in_frame, out_frame;
  if (!gst_video_frame_map(&in_frame, &ayuv, in, GST_MAP_WRITE)) {
    gst_buffer_unref(out);
    return nullptr;
  }
  for (int y = 0; y < GST_VIDEO_INFO_HEIGHT(&ayuv); ++y) {
    guint8 *line = static_cast<guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(&in_frame, 0)) +
                   y * GST_VIDEO_FRAME_PLANE_STRIDE(&in_frame, 0);
    for (int x = 0; x < GST_VIDEO_INFO_WIDTH(&ayuv); ++x) {
      line[4 * x + 0] = 255;
      line[4 * x + 1] = 16;
      line[4 * x + 2] = 128;
      line[4 * x + 3] = 128;
    }
  }
  if (!gst_video_frame_map(&out_frame, info, out, GST_MAP_WRITE)) {
    gst_video_frame_unmap(&in_frame);
    gst_buffer_unref(out);
    return nullptr;
  }
  GstVideoConverter *converter = gst_video_converter_new(&ayuv, const_cast<GstVideoInfo *>(info), nullptr);
  if (converter) {
    gst_video_converter_frame(converter, &in_frame, &out_frame);
    gst_video_converter_free(converter);
  }
  gst_video_frame_unmap(&out_frame);
  gst_video_frame_unmap(&in_frame);
  if (!converter) {
    gst_buffer_unref(out);
    return nullptr;
  }
  return out;
}

/* Fallback thread: while the source child of `failed_generation` is down, pushes fallback
 * frames, silence or GAP events at the stream's cadence on the pipeline clock. */
static void reconnect_bin_fallback_loop(GstMtxReconnectBin *self, guint failed_generation) {
  ReconnectBinPrivate *priv = self->priv;
  SourceSide &src = priv->src;
  g_autoptr(GstClock) clock = gst_element_get_clock(GST_ELEMENT(self));
  if (!clock)
    return;
  GstReconnectBinFallback mode;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    mode = priv->settings.fallback;
  }
  const GstClockTime base_time = gst_element_get_base_time(GST_ELEMENT(self));

  g_autoptr(GstBuffer) frame = nullptr; /* the template pushed each time; nullptr: GAP events */
  GstClockTime duration = GAP_INTERVAL;
  GstClockTime start_rt;
  GstClockTimeDiff lag;
  GST_PAD_STREAM_LOCK(src.internal);
  if (priv->fallback_stop || src.flowing_gen > failed_generation || !src.caps || !src.started) {
    GST_PAD_STREAM_UNLOCK(src.internal);
    return;
  }
  const GstStructure *s = gst_caps_get_structure(src.caps, 0);
  if (mode != GST_RECONNECT_BIN_FALLBACK_NONE && gst_structure_has_name(s, "video/x-raw")) {
    GstVideoInfo info;
    if (gst_video_info_from_caps(&info, src.caps)) {
      if (mode == GST_RECONNECT_BIN_FALLBACK_FREEZE && src.last_frame) {
        frame = gst_buffer_copy_deep(src.last_frame); /* and give the old child's pool its buffer back */
        gst_clear_buffer(&src.last_frame);
      } else
        frame = reconnect_bin_black_frame(&info);
      if (GST_VIDEO_INFO_FPS_N(&info) > 0)
        duration = gst_util_uint64_scale_int(GST_SECOND, GST_VIDEO_INFO_FPS_D(&info), GST_VIDEO_INFO_FPS_N(&info));
      else if (GST_CLOCK_TIME_IS_VALID(src.last_duration) && src.last_duration > 0)
        duration = src.last_duration;
      else
        duration = 40 * GST_MSECOND;
    }
  } else if (mode != GST_RECONNECT_BIN_FALLBACK_NONE && gst_structure_has_name(s, "audio/x-raw")) {
    GstAudioInfo info;
    if (gst_audio_info_from_caps(&info, src.caps) && GST_AUDIO_INFO_RATE(&info) > 0) {
      const gint samples = std::max(GST_AUDIO_INFO_RATE(&info) / 50, 1); /* 20 ms */
      const gsize size = static_cast<gsize>(samples) * GST_AUDIO_INFO_BPF(&info);
      frame = gst_buffer_new_allocate(nullptr, size, nullptr);
      GstMapInfo map;
      if (gst_buffer_map(frame, &map, GST_MAP_WRITE)) {
        gst_audio_format_info_fill_silence(info.finfo, map.data, map.size);
        gst_buffer_unmap(frame, &map);
      }
      if (GST_AUDIO_INFO_LAYOUT(&info) == GST_AUDIO_LAYOUT_NON_INTERLEAVED)
        gst_buffer_add_audio_meta(frame, &info, samples, nullptr);
      duration = gst_util_uint64_scale_int(samples, GST_SECOND, GST_AUDIO_INFO_RATE(&info));
    }
  }
  lag = src.have_lag ? std::max<GstClockTimeDiff>(src.lag, 0) : 0;
  {
    const GstClockTime now = gst_clock_get_time(clock);
    const GstClockTime now_rt = now > base_time ? now - base_time : 0;
    start_rt = now_rt > static_cast<GstClockTime>(lag) ? now_rt - lag : 0;
    if (GST_CLOCK_TIME_IS_VALID(src.last_rt_end) && src.last_rt_end > start_rt)
      start_rt = src.last_rt_end;
  }
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  gst_pad_push_event(src.ghost, gst_event_new_segment(&segment));
  GST_PAD_STREAM_UNLOCK(src.internal);
  GST_INFO_OBJECT(self, "fallback (%s) from running time %" GST_TIME_FORMAT ", every %" GST_TIME_FORMAT,
                  frame ? "frames" : "gap events", GST_TIME_ARGS(start_rt), GST_TIME_ARGS(duration));

  for (guint64 k = 0;; ++k) {
    const GstClockTime rt = start_rt + k * duration;
    GstClockID id = gst_clock_new_single_shot_id(clock, base_time + rt + lag);
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      priv->fallback_clock_id = id;
    }
    if (!priv->fallback_stop)
      gst_clock_id_wait(id, nullptr);
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      priv->fallback_clock_id = nullptr;
    }
    gst_clock_id_unref(id);
    if (priv->fallback_stop)
      break;

    GST_PAD_STREAM_LOCK(src.internal);
    if (priv->fallback_stop || src.flowing_gen > failed_generation) {
      GST_PAD_STREAM_UNLOCK(src.internal);
      break;
    }
    GstFlowReturn ret = GST_FLOW_OK;
    if (frame) {
      GstBuffer *buffer = gst_buffer_copy(frame);
      GST_BUFFER_PTS(buffer) = rt;
      GST_BUFFER_DTS(buffer) = GST_CLOCK_TIME_NONE;
      GST_BUFFER_DURATION(buffer) = duration;
      GST_BUFFER_OFFSET(buffer) = GST_BUFFER_OFFSET_NONE;
      GST_BUFFER_OFFSET_END(buffer) = GST_BUFFER_OFFSET_NONE;
      GST_BUFFER_FLAGS(buffer) = k == 0 ? GST_BUFFER_FLAG_DISCONT : 0;
      ret = gst_pad_push(src.ghost, buffer);
    } else {
      gst_pad_push_event(src.ghost, gst_event_new_gap(rt, duration));
    }
    src.last_rt_end = rt + duration;
    GST_PAD_STREAM_UNLOCK(src.internal);
    priv->fallback_buffers++;
    if (ret == GST_FLOW_FLUSHING || ret == GST_FLOW_EOS || ret <= GST_FLOW_NOT_NEGOTIATED) {
      GST_DEBUG_OBJECT(self, "fallback stops: downstream returned %s", gst_flow_get_name(ret));
      break;
    }
  }
}

/* Control thread: starts the fallback for a source bin whose child of `failed_generation` went
 * down. */
static void reconnect_bin_start_fallback(GstMtxReconnectBin *self, guint failed_generation) {
  ReconnectBinPrivate *priv = self->priv;
  if (!priv->src.ghost || GST_STATE_TARGET(self) != GST_STATE_PLAYING)
    return;
  reconnect_bin_stop_fallback(self);
  priv->fallback = std::thread(reconnect_bin_fallback_loop, self, failed_generation);
}

/* Control thread or application thread (shutdown): stops and joins the fallback thread. */
static void reconnect_bin_stop_fallback(GstMtxReconnectBin *self) {
  ReconnectBinPrivate *priv = self->priv;
  if (!priv->fallback.joinable())
    return;
  priv->fallback_stop = true;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (priv->fallback_clock_id)
      gst_clock_id_unschedule(priv->fallback_clock_id);
  }
  priv->fallback.join();
  priv->fallback_stop = false;
}

/* Application thread (queries from downstream, any thread): answer latency while the child is
 * down with the last answer it gave. */
static gboolean reconnect_bin_src_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(parent);
  ReconnectBinPrivate *priv = self->priv;
  gboolean ret = gst_pad_query_default(pad, parent, query);
  if (GST_QUERY_TYPE(query) != GST_QUERY_LATENCY)
    return ret;
  std::lock_guard<std::mutex> guard(priv->lock);
  if (ret) {
    if (priv->src.latency)
      gst_query_unref(priv->src.latency);
    priv->src.latency = gst_query_copy(query);
  } else if (priv->src.latency) {
    gboolean live;
    GstClockTime min, max;
    gst_query_parse_latency(priv->src.latency, &live, &min, &max);
    gst_query_set_latency(query, live, min, max);
    ret = TRUE;
  }
  return ret;
}

/* ---- sink side: never block or fail upstream ---------------------------------------------- */

/* Upstream streaming thread: a buffer for the child, dropped and counted while it is down. */
static GstFlowReturn reconnect_bin_sink_chain(GstPad *pad, GstObject *parent, GstBuffer *buffer) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(parent);
  ReconnectBinPrivate *priv = self->priv;
  if (!priv->sink.up) {
    priv->buffers_dropped++;
    gst_buffer_unref(buffer);
    return GST_FLOW_OK;
  }
  priv->watchdog.note_input(SteadyClock::now());
  GstFlowReturn ret = gst_proxy_pad_chain_default(pad, parent, buffer);
  if (ret == GST_FLOW_OK)
    return ret;
  if (ret == GST_FLOW_EOS && priv->sink.upstream_eos)
    return ret;
  priv->buffers_dropped++;
  if (ret <= GST_FLOW_NOT_NEGOTIATED && priv->sink.up) {
    guint generation;
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      generation = priv->generation;
    }
    GError err = {GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED, const_cast<char *>("the child refused data")};
    g_autofree char *debug = g_strdup_printf("flow return %s", gst_flow_get_name(ret));
    reconnect_bin_report_failure(self, generation, FailureKind::Error, &err, debug);
  }
  /* flushing or not linked: the child is being (re)started */
  return GST_FLOW_OK;
}

/* Upstream streaming thread */
static GstFlowReturn reconnect_bin_sink_chain_list(GstPad *pad, GstObject *parent, GstBufferList *list) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(parent);
  ReconnectBinPrivate *priv = self->priv;
  if (!priv->sink.up) {
    priv->buffers_dropped += gst_buffer_list_length(list);
    gst_buffer_list_unref(list);
    return GST_FLOW_OK;
  }
  priv->watchdog.note_input(SteadyClock::now());
  GstFlowReturn ret = gst_proxy_pad_chain_list_default(pad, parent, list);
  if (ret == GST_FLOW_EOS && priv->sink.upstream_eos)
    return ret;
  return ret == GST_FLOW_OK || ret == GST_FLOW_FLUSHING || ret == GST_FLOW_NOT_LINKED || ret == GST_FLOW_EOS
             ? GST_FLOW_OK
             : ret;
}

/* Upstream streaming thread (serialized events) or any thread (flushes). */
static gboolean reconnect_bin_sink_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(parent);
  ReconnectBinPrivate *priv = self->priv;
  const GstEventType type = GST_EVENT_TYPE(event);
  if (type == GST_EVENT_EOS)
    priv->sink.upstream_eos = true;
  else if (type == GST_EVENT_FLUSH_STOP)
    priv->sink.upstream_eos = false;
  const bool sticky = GST_EVENT_IS_STICKY(event);
  if (!priv->sink.up) {
    if (type == GST_EVENT_EOS && !priv->src.ghost) {
      /* the stream is over: no child will post its EOS, and none needs restarting */
      reconnect_bin_post(self, [self] {
        ReconnectBinPrivate *p = self->priv;
        {
          std::lock_guard<std::mutex> guard(p->lock);
          p->loop->cancel(p->retry_timer);
          p->retry_timer = 0;
          p->failed = true; /* nothing more to restart until READY */
        }
        reconnect_bin_stop_fallback(self);
        reconnect_bin_post_status(self, ConnectionState::Stopped, 0, "end of stream from upstream");
      });
      gst_element_post_message(GST_ELEMENT(self), gst_message_new_eos(GST_OBJECT(self)));
    }
    if (sticky) {
      /* stored on the internal pad, sent to the next child when it is linked */
      gst_pad_event_default(pad, parent, event);
    } else {
      gst_event_unref(event);
    }
    return TRUE;
  }
  gboolean ret = gst_pad_event_default(pad, parent, event);
  if (!ret && sticky && type != GST_EVENT_EOS)
    return TRUE; /* the child is restarting: it gets the sticky events when linked */
  return ret;
}

/* Upstream threads: caps questions while the child is down get permissive answers. */
static gboolean reconnect_bin_sink_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(parent);
  if (!self->priv->sink.up) {
    switch (GST_QUERY_TYPE(query)) {
    case GST_QUERY_ACCEPT_CAPS:
      gst_query_set_accept_caps_result(query, TRUE);
      return TRUE;
    case GST_QUERY_CAPS: {
      GstCaps *filter;
      gst_query_parse_caps(query, &filter);
      gst_query_set_caps_result(query, filter ? filter : GST_CAPS_ANY);
      return TRUE;
    }
    default:
      break;
    }
  }
  return gst_pad_query_default(pad, parent, query);
}
