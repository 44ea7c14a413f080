/* gst-mediamtx: reconnectbin — keep any element alive, the GStreamer way.
 *
 * SECTION:element-reconnectbin
 *
 * A bin around a child that has no reconnection of its own (rtspsrc, v4l2src losing its camera,
 * rtspclientsink, souphttpsrc ...). The child is restarted when it posts an error, when it ends
 * (EOS, `restart-on-eos`) and when it stalls (`stall-timeout`), by the reconnection controller
 * the three elements share (gst/reconnect_controller.h; the retry rule is in gst/backoff.h). Each
 * child run is one session of the controller: a run that delivered data (source: its first
 * buffer; sink: the first buffer it accepted) ends the outage, so the next failure waits
 * retry-delay again; a child that keeps failing before delivering anything backs off to
 * max-retry-delay. The bin's ghost pads are made once from the child's and are re-targeted at
 * every restart, so downstream never sees the child's EOS or a flush:
 *
 *  - source bin (only src pads): while the child is down, `fallback` frames (black or the last
 *    frame for raw video, silence for raw audio) or GAP events keep downstream running on the
 *    pipeline clock; after a restart the child's segment is shifted so running time continues.
 *  - sink bin (only sink pads): upstream data is dropped and counted while the child is down,
 *    never blocked and never answered with an error (buffers and buffer lists alike); a restarted
 *    child starts on a keyframe (deltas dropped, a force-key-unit event upstream).
 *  - filter bin: both.
 *
 * The child is a bin description (`child="rtspsrc location=... ! rtph264depay"`, built with
 * gst_parse_bin_from_description and its unlinked pads ghosted) or elements added to the bin
 * directly (gst-launch `reconnectbin.( videotestsrc ! x264enc )`), converted once into a
 * description (child_description.cpp): every restart builds a fresh instance.
 *
 * Threads: the application thread sets properties and states; the child's streaming threads
 * run the pad probes and chain functions (source_side.cpp, sink_side.cpp); the control thread
 * "mtx-reconnectbin" (the controller's gstmtx::EventLoop, NULL->READY to READY->NULL; its tasks
 * pass a gstmtx::TaskGate open from READY->PAUSED to PAUSED->READY) does every child state change
 * and restart and runs the retry timer and the stall watchdog; one fallback thread
 * (fallback_generator.cpp) pushes fallback data while a source child is down. The private `lock`
 * is short and never held across calls into other elements; the output's pad stream lock
 * serialises the child's data with the fallback thread's.
 *
 * Example:
 *   gst-launch-1.0 reconnectbin child="rtspsrc location=rtsp://cam:8554/cam user-agent=viewer !
 *     rtph264depay ! avdec_h264" fallback=black ! videoconvert ! autovideosink
 */
#include "reconnectbin_private.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "elements.h"

GST_DEBUG_CATEGORY(gst_reconnect_bin_debug);
#define GST_CAT_DEFAULT gst_reconnect_bin_debug

GstStaticPadTemplate reconnect_bin_src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS_ANY);
GstStaticPadTemplate reconnect_bin_sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_SOMETIMES, GST_STATIC_CAPS_ANY);

enum {
  PROP_0,
  PROP_CHILD,
  PROP_RESTART_ON_EOS,
  PROP_STALL_TIMEOUT,
  PROP_FALLBACK,
  PROP_STATS,
  PROP_RETRY_FIRST, /* ReconnectController::kPropertyCount ids from here: the controller's */
};

using gstmtx::ConnectionState;
using gstmtx::Failure;
using gstmtx::ReconnectController;
using SteadyClock = std::chrono::steady_clock;

static void gst_reconnect_bin_finalize(GObject *object);
static void gst_reconnect_bin_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec);
static void gst_reconnect_bin_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec);
static GstStateChangeReturn gst_reconnect_bin_change_state(GstElement *element, GstStateChange transition);
static GstClock *gst_reconnect_bin_provide_clock(GstElement *element);
static void gst_reconnect_bin_handle_message(GstBin *bin, GstMessage *message);

static void reconnect_bin_set_hooks(GstMtxReconnectBin *self);
static GstStructure *reconnect_bin_stats(GstMtxReconnectBin *self);
static void reconnect_bin_watch_stall(GstMtxReconnectBin *self);
static void reconnect_bin_sync_child_state(GstMtxReconnectBin *self, GstState state);
static void reconnect_bin_resync_child(GstMtxReconnectBin *self, guint generation);
static void reconnect_bin_start_child(GstMtxReconnectBin *self);
static void reconnect_bin_teardown_child(GstMtxReconnectBin *self);

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
                           "always passes). When max-retries is spent by EOS, EOS goes downstream",
                           RECONNECT_BIN_DEFAULT_RESTART_ON_EOS, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_STALL_TIMEOUT,
      g_param_spec_uint("stall-timeout", "Stall timeout",
                        "Restart the child when its src pad produced no buffer for this long, in "
                        "milliseconds, counted from its start (a filter child only stalls while it "
                        "receives input; sink-only children are never stalled). 0 disables",
                        0, G_MAXINT, RECONNECT_BIN_DEFAULT_STALL_TIMEOUT, rw_playing));
  g_object_class_install_property(
      gobject_class, PROP_FALLBACK,
      g_param_spec_enum("fallback", "Fallback",
                        "What a source bin sends downstream while its child is down: GAP events only, "
                        "black frames or the last frame (raw video) — raw audio gets silence unless "
                        "none; other formats get GAP events",
                        GST_TYPE_RECONNECT_BIN_FALLBACK, RECONNECT_BIN_DEFAULT_FALLBACK, rw_ready));
  g_object_class_install_property(
      gobject_class, PROP_STATS,
      g_param_spec_boxed(
          "stats", "Statistics",
          "reconnectbin-stats: state (as connection-state), attempts (failed child runs in the current "
          "outage, 0 once a run delivered data), sessions (child runs started since READY->PAUSED), "
          "reconnects (restarts scheduled), restarts (restarts that started a child), errors, eos, stalls "
          "(child runs ended by each cause), buffers-dropped (sink side: dropped while the child was down, "
          "refused by it or waiting for a keyframe), fallback-buffers (fallback buffers or GAP events "
          "pushed), buffers-out (buffers the child produced), last-error (the last failure), last-reason "
          "(its cause: error, eos or stall, and text), child (factory names of the child)",
          GST_TYPE_STRUCTURE, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  ReconnectController::install_properties(gobject_class, PROP_RETRY_FIRST);

  gst_element_class_add_static_pad_template(element_class, &reconnect_bin_src_template);
  gst_element_class_add_static_pad_template(element_class, &reconnect_bin_sink_template);
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
  self->priv = new ReconnectBinPrivate(GST_ELEMENT(self));
  gst_segment_init(&self->priv->src.child_segment, GST_FORMAT_TIME);
  self->priv->watchdog.set_timeout(gstmtx::Millis{RECONNECT_BIN_DEFAULT_STALL_TIMEOUT});
  reconnect_bin_set_hooks(self);
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
  delete priv; /* the controller ends its control thread (left running when READY->NULL came from it) */
  G_OBJECT_CLASS(gst_reconnect_bin_parent_class)->finalize(object);
}

/* called from the application thread */
static void gst_reconnect_bin_set_property(GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(object);
  ReconnectBinPrivate *priv = self->priv;
  if (priv->controller.set_property(PROP_RETRY_FIRST, prop_id, value))
    return;
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
  ReconnectBinSettings &s = priv->settings;
  switch (prop_id) {
  case PROP_RESTART_ON_EOS: s.restart_on_eos = g_value_get_boolean(value); break;
  case PROP_STALL_TIMEOUT:
    s.stall_timeout = g_value_get_uint(value);
    priv->watchdog.set_timeout(gstmtx::Millis{s.stall_timeout});
    break;
  case PROP_FALLBACK:
    s.fallback = static_cast<GstReconnectBinFallback>(g_value_get_enum(value));
    priv->freeze = s.fallback == GST_RECONNECT_BIN_FALLBACK_FREEZE;
    break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

/* called from any application thread */
static void gst_reconnect_bin_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(object);
  ReconnectBinPrivate *priv = self->priv;
  if (priv->controller.get_property(PROP_RETRY_FIRST, prop_id, value))
    return;
  if (prop_id == PROP_STATS) {
    g_value_take_boxed(value, reconnect_bin_stats(self));
    return;
  }
  std::lock_guard<std::mutex> guard(priv->lock);
  const ReconnectBinSettings &s = priv->settings;
  switch (prop_id) {
  case PROP_CHILD: g_value_set_string(value, s.child_description.empty() ? nullptr : s.child_description.c_str()); break;
  case PROP_RESTART_ON_EOS: g_value_set_boolean(value, s.restart_on_eos); break;
  case PROP_STALL_TIMEOUT: g_value_set_uint(value, s.stall_timeout); break;
  case PROP_FALLBACK: g_value_set_enum(value, s.fallback); break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
  }
}

/* Any thread: the `stats` structure, the controller's fields and ours (documented in the blurb). */
static GstStructure *reconnect_bin_stats(GstMtxReconnectBin *self) {
  ReconnectBinPrivate *priv = self->priv;
  GstStructure *stats = gst_structure_new_empty("reconnectbin-stats");
  priv->controller.add_stats(stats);
  std::lock_guard<std::mutex> guard(priv->lock);
  gst_structure_set(stats, "restarts", G_TYPE_UINT, priv->restarts, "errors", G_TYPE_UINT, priv->errors, "eos",
                    G_TYPE_UINT, priv->eos_count, "stalls", G_TYPE_UINT, priv->stalls, "buffers-dropped",
                    G_TYPE_UINT64, priv->buffers_dropped.load(), "fallback-buffers", G_TYPE_UINT64,
                    priv->fallback_buffers.load(), "buffers-out", G_TYPE_UINT64, priv->buffers_out.load(),
                    "last-reason", G_TYPE_STRING, priv->last_reason.c_str(), "child", G_TYPE_STRING,
                    priv->summary.c_str(), nullptr);
  return stats;
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
    priv->controller.prepare();
    break;
  }
  case GST_STATE_CHANGE_READY_TO_PAUSED: {
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      priv->desired = GST_STATE_PAUSED;
      priv->runs = priv->restarts = priv->errors = priv->eos_count = priv->stalls = 0;
      priv->last_reason.clear();
      priv->sink.upstream_eos = false;
    }
    priv->controller.start();
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
    priv->controller.stop([self] {
      ReconnectBinPrivate *p = self->priv;
      p->controller.loop().cancel(p->watch_timer);
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
  case GST_STATE_CHANGE_PAUSED_TO_READY:
    reconnect_bin_src_reset(self);
    break;
  case GST_STATE_CHANGE_READY_TO_NULL:
    priv->controller.release();
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
    /* the child's own error: posted with its domain and code if the bin gives up */
    Failure failure = Failure::retry(err->message, debug ? debug : "");
    failure.domain = err->domain;
    failure.code = err->code;
    reconnect_bin_report_failure(self, generation, ChildEnd::Error, std::move(failure));
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
        /* a sink child is connected once it plays (it delivers with the first buffer it takes) */
        reconnect_bin_post(self, [self, generation] { reconnect_bin_on_connected(self, generation); });
      }
    }
    break;
  default:
    break;
  }
  GST_BIN_CLASS(gst_reconnect_bin_parent_class)->handle_message(bin, message);
}

/* ---- control of the child: the controller's hooks ----------------------------------------- */

/* Any thread: queues `command` for the control thread (dropped when the element is not running,
 * or stops before its turn); a stall check follows every command. */
void reconnect_bin_post(GstMtxReconnectBin *self, std::function<void()> command) {
  self->priv->controller.post([self, command = std::move(command)] {
    command();
    reconnect_bin_watch_stall(self);
  });
}

/* Any thread: child `generation` ended; the controller decides on the control thread (a report
 * about an older generation is ignored there). */
void reconnect_bin_report_failure(GstMtxReconnectBin *self, guint generation, ChildEnd end, Failure failure) {
  self->priv->controller.post([self, generation, end, failure = std::move(failure)]() mutable {
    ReconnectBinPrivate *priv = self->priv;
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      if (generation != priv->generation || !priv->child_running)
        return; /* an older child, or this one already ended */
    }
    priv->last_end = end;
    priv->controller.handle_failure(generation, std::move(failure));
    reconnect_bin_watch_stall(self);
  });
}

/* Control thread, after every task and when a stall could first be seen: a child that produced
 * nothing for stall-timeout fails; otherwise the next check is scheduled. */
static void reconnect_bin_watch_stall(GstMtxReconnectBin *self) {
  ReconnectBinPrivate *priv = self->priv;
  const auto now = SteadyClock::now();
  priv->controller.loop().cancel(priv->watch_timer);
  priv->watch_timer = 0;
  guint generation = 0;
  bool running;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    running = priv->child_running;
    generation = priv->generation;
  }
  if (running && priv->watchdog.stalled(now)) {
    priv->watchdog.disarm();
    Failure failure = Failure::retry("the child produced no data for " +
                                     std::to_string(priv->watchdog.timeout().count()) + " ms (stall-timeout)");
    failure.domain = GST_RESOURCE_ERROR;
    failure.code = GST_RESOURCE_ERROR_READ;
    priv->last_end = ChildEnd::Stall;
    priv->controller.handle_failure(generation, std::move(failure));
  }
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    running = priv->child_running;
  }
  const auto left = priv->watchdog.time_left(now);
  if (running && left.count() >= 0 && priv->controller.running())
    priv->watch_timer = priv->controller.gate().schedule(std::max(left, gstmtx::Millis{10}),
                                                         [self] { reconnect_bin_watch_stall(self); });
}

/* Control thread (or the application thread on PAUSED->READY once the control thread's tasks
 * are over): unlinks the child, stops it and removes it from the bin. */
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

/* Control thread: points the child's clock and times at ours, as GstBin would for an unlocked
 * child. */
static void reconnect_bin_prepare_child_times(GstMtxReconnectBin *self, GstElement *child) {
  g_autoptr(GstClock) clock = gst_element_get_clock(GST_ELEMENT(self));
  gst_element_set_clock(child, clock);
  gst_element_set_base_time(child, gst_element_get_base_time(GST_ELEMENT(self)));
  gst_element_set_start_time(child, gst_element_get_start_time(GST_ELEMENT(self)));
}

/* Control thread, the controller's `start` hook (first start and every retry): starts a child
 * run, one session of the controller (a fresh instance unless the one built at setup was never
 * started) in the bin's desired state. */
static void reconnect_bin_start_child(GstMtxReconnectBin *self) {
  ReconnectBinPrivate *priv = self->priv;
  bool need_build, is_restart;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (priv->controller.finished() || !priv->controller.running() || priv->desired < GST_STATE_PAUSED ||
        priv->child_running)
      return;
    need_build = !priv->child || !priv->child_fresh;
    is_restart = priv->runs++ > 0;
  }
  if (need_build) {
    reconnect_bin_teardown_child(self);
    std::string error;
    if (!reconnect_bin_build_child(self, &error)) {
      /* the description built before: an element went missing or refuses its properties now */
      const guint session = priv->controller.begin_session();
      {
        std::lock_guard<std::mutex> guard(priv->lock);
        priv->generation = session;
        priv->child_running = true; /* so the failure counts */
      }
      Failure failure = Failure::of_kind(gstmtx::FailureKind::Config, error);
      priv->last_end = ChildEnd::Error;
      priv->controller.handle_failure(session, std::move(failure));
      return;
    }
  }
  GstElement *child;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    child = GST_ELEMENT(gst_object_ref(priv->child));
    priv->child_fresh = false;
  }
  /* posts "connecting": an application may stop the bin from a bus handler, on this thread */
  const guint generation = priv->controller.begin_session();
  GstState desired;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (!priv->controller.running() || priv->child != child) {
      gst_object_unref(child);
      return;
    }
    priv->child_running = true;
    priv->generation = generation;
    desired = priv->desired;
    if (is_restart)
      priv->restarts++;
  }
  priv->src.run_gen = generation;
  priv->src.accepting = true;
  reconnect_bin_sink_begin(self, generation);
  GST_INFO_OBJECT(self, "starting child generation %u (attempt %d) to %s", generation, priv->controller.attempts(),
                  gst_element_state_get_name(desired));

  reconnect_bin_prepare_child_times(self, child);
  GstStateChangeReturn ret = gst_element_set_state(child, desired);
  if (desired == GST_STATE_PLAYING && priv->src.ghost)
    priv->watchdog.arm(SteadyClock::now(), priv->sink.ghost != nullptr);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    /* its error message, if any, was queued first and wins */
    Failure failure = Failure::retry("the child failed to start; see the previous warnings for why");
    failure.domain = GST_CORE_ERROR;
    failure.code = GST_CORE_ERROR_STATE_CHANGE;
    reconnect_bin_report_failure(self, generation, ChildEnd::Error, std::move(failure));
  }
  gst_object_unref(child);
}

/* Control thread: the bin's state changed (PAUSED or PLAYING): drive the child there. */
static void reconnect_bin_sync_child_state(GstMtxReconnectBin *self, GstState state) {
  ReconnectBinPrivate *priv = self->priv;
  GstElement *child = nullptr;
  guint generation;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    priv->desired = state;
    if (priv->child_running && priv->child)
      child = GST_ELEMENT(gst_object_ref(priv->child));
    generation = priv->generation;
  }
  if (priv->controller.finished())
    return;
  if (!child && !priv->controller.retry_pending()) {
    reconnect_bin_start_child(self);
    return;
  }
  if (!child) {
    /* the child is down, waiting for its restart: the fallback runs only while playing */
    if (state != GST_STATE_PLAYING)
      reconnect_bin_stop_fallback(self);
    else if (!priv->fallback.joinable())
      reconnect_bin_start_fallback(self, generation);
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

/* Control thread: the child of `generation` is up (source: first buffer; sink: PLAYING). */
void reconnect_bin_on_connected(GstMtxReconnectBin *self, guint generation) {
  ReconnectBinPrivate *priv = self->priv;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (generation != priv->generation || !priv->child_running)
      return;
  }
  if (priv->controller.state() == ConnectionState::Connected)
    return;
  GST_INFO_OBJECT(self, "child generation %u connected", generation);
  priv->controller.connected(generation);
  reconnect_bin_stop_fallback(self);
}

/* Control thread, the controller's `teardown` hook: the running child failed; count why and
 * tear it down. */
static void reconnect_bin_on_child_failed(GstMtxReconnectBin *self, const Failure &failure) {
  ReconnectBinPrivate *priv = self->priv;
  const ChildEnd end = priv->last_end;
  const char *cause = end == ChildEnd::Eos ? "eos" : end == ChildEnd::Stall ? "stall" : "error";
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    switch (end) {
    case ChildEnd::Error: priv->errors++; break;
    case ChildEnd::Eos: priv->eos_count++; break;
    case ChildEnd::Stall: priv->stalls++; break;
    }
    priv->last_reason = std::string(cause) + ": " + failure.message;
  }
  GST_INFO_OBJECT(self, "child generation %u failed (%s: %s)", priv->generation, cause, failure.message.c_str());
  reconnect_bin_teardown_child(self);
}

/* Control thread, the controller's `giving_up` hook: a source child that kept ending with EOS
 * really ended: downstream gets EOS (true: handled). Otherwise the controller posts the child's
 * own error (false). */
static bool reconnect_bin_on_giving_up(GstMtxReconnectBin *self, const Failure &failure) {
  ReconnectBinPrivate *priv = self->priv;
  reconnect_bin_stop_fallback(self);
  if (priv->last_end != ChildEnd::Eos || !priv->src.ghost)
    return false;
  GST_INFO_OBJECT(self, "the child kept ending (max-retries spent): EOS goes downstream");
  priv->controller.finish(ConnectionState::Failed, failure.message);
  gst_pad_push_event(priv->src.ghost, gst_event_new_eos());
  return true;
}

/* Application thread (init): what the controller calls on the control thread. */
static void reconnect_bin_set_hooks(GstMtxReconnectBin *self) {
  ReconnectController::Hooks hooks;
  hooks.start = [self] {
    reconnect_bin_start_child(self);
    reconnect_bin_watch_stall(self);
  };
  hooks.teardown = [self](const Failure &failure) { reconnect_bin_on_child_failed(self, failure); };
  hooks.retrying = [self](const Failure &, gstmtx::Millis) {
    guint generation;
    {
      std::lock_guard<std::mutex> guard(self->priv->lock);
      generation = self->priv->generation;
    }
    reconnect_bin_start_fallback(self, generation);
    return false; /* the controller posts "reconnecting" */
  };
  hooks.giving_up = [self](const Failure &failure) { return reconnect_bin_on_giving_up(self, failure); };
  self->priv->controller.set_hooks(std::move(hooks));
}
