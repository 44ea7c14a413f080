/* gst-mediamtx: whepsrc's placeholder slate (`placeholder=status`).
 *
 * With placeholder=status the video pad exists from READY->PAUSED on and never goes quiet: a slate
 * (videotestsrc ! capsfilter ! textoverlay, GStreamer's own elements) and the live stream meet in an
 * input-selector inside a bin of its own, and the element's video ghost pad targets that bin for
 * the element's life:
 *
 *   videotestsrc is-live ─▶ capsfilter ─▶ textoverlay ─▶ input-selector ─▶ [src] ─▶ video_0
 *   receive chain (WebRTC session or HLS fallback) ─▶ [live] ─┘
 *
 * Receive chains link to the bin's `live` pad instead of targeting the ghost pad. The selector shows
 * the slate from the start and from the moment a chain is unlinked (the session failed), and the
 * live input from the first buffer a newly linked chain delivers (receive chains hold video back
 * until a keyframe, so that is the next keyframe after recovery). While live video plays the
 * slate's frames are dropped before the text is drawn. The slate takes the live picture's caps as
 * soon as they are known (its framerate when it has one), so going back to the slate changes no
 * caps downstream; before any live picture it uses placeholder-caps. The slate answers latency
 * queries with the jitter buffer's latency, so the latency a pipeline computes while only the slate
 * plays holds for the live pictures too.
 *
 * Its words come from the ReconnectController's status (the `status` hook): the path name and
 * "connecting…", "waiting for the camera to publish" (MediaMTX answers 404 until a publisher
 * starts), "reconnecting (attempt N): <reason>", "HLS fallback", "error: <message>". Before an
 * error that ends the pipeline is posted, the slate with the error is pushed (waited for, bounded).
 * While the slate shows, each audio pad with no chain behind it gets a GAP event per slate frame.
 *
 * Built at READY->PAUSED with that run's settings, removed at PAUSED->READY.
 *
 * Threads: prepare/expose/release on the application thread (state changes); status and
 * connect/disconnect on the control thread or a streaming thread; the probes on the slate's and
 * the chains' streaming threads. `lock` is the only lock held across a call into another element
 * (the selector's active-pad, which takes only the selector's own lock and never calls back).
 */
#include "whepsrc_private.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <thread>

GType gst_mtx_whep_placeholder_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_MTX_WHEP_PLACEHOLDER_NONE, "Nothing while no picture arrives (no invented frames)", "none"},
      {GST_MTX_WHEP_PLACEHOLDER_STATUS, "A generated slate naming the path and the connection state", "status"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstMtxWhepPlaceholder", values));
  return type;
}

namespace whepsrc {

namespace {
/* the slate's background: a dark blue-grey, neither black nor a test pattern */
constexpr guint kSlateColor = 0xff263238;
constexpr const char *kSlateFont = "Sans 14";
/* marks the placeholder bin, which session teardown must leave in place */
constexpr const char *kPlaceholderMarker = "gst-mediamtx-placeholder";
/* how long a fatal error waits for the slate that announces it to be pushed */
constexpr auto kErrorSlateWait = std::chrono::milliseconds(500);
/* ... and at most this long for the display to show it (the jitter-buffer latency) */
constexpr auto kErrorSlateLatencyWait = std::chrono::milliseconds(1000);
}  // namespace

struct Placeholder {
  GstMtxWhepSrc *self = nullptr;
  GstElement *bin = nullptr; /* ref held */
  GstElement *source = nullptr, *filter = nullptr, *overlay = nullptr, *selector = nullptr;
  GstPad *slate_pad = nullptr; /* selector sink pads (refs held) */
  GstPad *live_pad = nullptr;
  GstPad *src = nullptr;       /* the bin's ghost src pad (ref held) */
  GstPad *live_input = nullptr; /* the bin's ghost sink pad chains link to (ref held) */
  std::string path;
  GstCaps *initial_caps = nullptr; /* placeholder-caps */
  std::atomic<GstClockTime> latency{0}; /* the `latency` property, set at READY->PAUSED */

  std::mutex lock; /* guards the fields below */
  std::condition_variable pushed;
  bool connected = false;    /* a chain is linked to `live_input` */
  bool live_active = false;  /* the selector passes the live input */
  bool switching = false;    /* live pictures arrive: the slate stops, the selector waits for a newer one */
  bool failed_since_live = false; /* a failure in this outage: "connecting" keeps its reason */
  bool last_failure_404 = false;
  std::string state_line = "connecting…";
  std::string text;          /* what the overlay draws */
  guint64 slate_frames = 0;  /* frames the slate pushed */
  GstClockTime slate_end = GST_CLOCK_TIME_NONE; /* end of the slate's last frame */
};

/* The element's placeholder, if any. Any thread. */
static std::shared_ptr<Placeholder> current(GstMtxWhepSrc *self) {
  std::lock_guard<std::mutex> guard(self->priv->lock);
  return self->priv->placeholder;
}

/* ---- the slate's words ---- */

/* Called with p->lock held: the new words; returns them as markup for set_overlay_text(). */
static std::string update_text_locked(Placeholder *p) {
  p->text = p->path + "\n" + p->state_line;
  g_autofree gchar *path = g_markup_escape_text(p->path.c_str(), -1);
  g_autofree gchar *line = g_markup_escape_text(p->state_line.c_str(), -1);
  return std::string("<span size=\"x-large\" weight=\"bold\">") + path + "</span>\n" + line;
}

/* Called without p->lock (textoverlay takes its own lock). */
static void set_overlay_text(Placeholder *p, const std::string &markup) {
  g_object_set(p->overlay, "text", markup.c_str(), nullptr);
}

/* ---- probes ---- */

/* Drops the slate's frames before the text is drawn while the live input plays.
 * The slate's streaming thread. */
static GstPadProbeReturn slate_gate_probe(GstPad *, GstPadProbeInfo *, gpointer data) {
  auto *p = static_cast<Placeholder *>(data);
  std::lock_guard<std::mutex> guard(p->lock);
  return p->live_active || p->switching ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
}

/* Sends a GAP event for the slate frame's time on every audio pad that has no chain behind it. */
static void send_audio_gaps(Placeholder *p, GstBuffer *buffer) {
  if (!GST_BUFFER_PTS_IS_VALID(buffer))
    return;
  GstWhepSrcPrivate *priv = p->self->priv;
  std::vector<GstPad *> pads;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    for (auto &out : priv->outputs)
      if (out->media == "audio" && out->chain == nullptr)
        pads.push_back(GST_PAD(gst_object_ref(out->ghost)));
  }
  for (GstPad *pad : pads) {
    /* a pad that never carried audio has no segment yet: a GAP would come before it */
    if (GstEvent *segment = gst_pad_get_sticky_event(pad, GST_EVENT_SEGMENT, 0)) {
      gst_event_unref(segment);
      gst_pad_push_event(pad, gst_event_new_gap(GST_BUFFER_PTS(buffer), GST_BUFFER_DURATION(buffer)));
    }
    gst_object_unref(pad);
  }
}

/* Counts the slate's frames (a fatal error waits for one), sends audio GAPs, and answers latency
 * queries for the slate with the live stream's jitter-buffer latency: a pipeline computes its
 * latency once, when it starts playing (again only when the application handles a latency message),
 * usually while the slate is all there is, and live pictures arriving later must not find it too
 * short (a display sink would show them on arrival, or drop them as late). The slate's streaming
 * thread. */
static GstPadProbeReturn slate_out_probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *p = static_cast<Placeholder *>(data);
  if (info->type & GST_PAD_PROBE_TYPE_QUERY_UPSTREAM) {
    GstQuery *query = GST_PAD_PROBE_INFO_QUERY(info);
    if (GST_QUERY_TYPE(query) != GST_QUERY_LATENCY)
      return GST_PAD_PROBE_OK;
    gst_query_set_latency(query, TRUE, p->latency.load(), GST_CLOCK_TIME_NONE);
    return GST_PAD_PROBE_HANDLED;
  }
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  {
    std::lock_guard<std::mutex> guard(p->lock);
    p->slate_frames++;
    if (GST_BUFFER_PTS_IS_VALID(buffer))
      p->slate_end = GST_BUFFER_PTS(buffer) + (GST_BUFFER_DURATION_IS_VALID(buffer) ? GST_BUFFER_DURATION(buffer) : 0);
  }
  p->pushed.notify_all();
  send_audio_gaps(p, buffer);
  return GST_PAD_PROBE_OK;
}

/* Slate caps matching the live picture: its format, size, aspect and (when it has one) rate. */
static GstCaps *slate_caps_like(const GstCaps *live, const GstCaps *initial) {
  const GstStructure *s = gst_caps_get_structure(live, 0);
  GstCaps *caps = gst_caps_new_empty_simple("video/x-raw");
  for (const char *field : {"format", "width", "height", "pixel-aspect-ratio", "colorimetry", "chroma-site"})
    if (const GValue *v = gst_structure_get_value(s, field))
      gst_caps_set_value(caps, field, v);
  gint n = 0, d = 1;
  if (gst_structure_get_fraction(s, "framerate", &n, &d) && n > 0) {
    gst_caps_set_simple(caps, "framerate", GST_TYPE_FRACTION, n, d, nullptr);
  } else {
    const GstStructure *i = gst_caps_get_structure(initial, 0);
    if (!gst_structure_get_fraction(i, "framerate", &n, &d) || n <= 0) {
      n = 30;
      d = 1;
    }
    gst_caps_set_simple(caps, "framerate", GST_TYPE_FRACTION, n, d, nullptr);
  }
  return caps;
}

/* On the live input: its caps become the slate's; its first buffer after a chain was linked
 * switches the selector to it. The chain's streaming thread. */
static GstPadProbeReturn live_probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *p = static_cast<Placeholder *>(data);
  if (info->type & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
    GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
    if (GST_EVENT_TYPE(event) != GST_EVENT_CAPS)
      return GST_PAD_PROBE_OK;
    GstCaps *live = nullptr;
    gst_event_parse_caps(event, &live);
    if (!live || gst_caps_is_empty(live) ||
        !gst_structure_has_name(gst_caps_get_structure(live, 0), "video/x-raw"))
      return GST_PAD_PROBE_OK;
    g_autoptr(GstCaps) caps = slate_caps_like(live, p->initial_caps);
    /* the capsfilter marks the slate for renegotiation: it takes the new caps at its next frame */
    g_object_set(p->filter, "caps", caps, nullptr);
    return GST_PAD_PROBE_OK;
  }
  bool switched = false;
  {
    std::lock_guard<std::mutex> guard(p->lock);
    if (p->connected && !p->live_active) {
      /* live pictures are stamped when captured, a jitter-buffer latency before they arrive; the
       * slate's when drawn: the slate stops at the first live picture and the selector switches at
       * the first one newer than the slate's last frame, so running time never goes back (a few
       * decoded frames, not a keyframe, are skipped) */
      p->switching = true;
      GstBuffer *buffer = (info->type & GST_PAD_PROBE_TYPE_BUFFER) ? GST_PAD_PROBE_INFO_BUFFER(info) : nullptr;
      if (buffer && GST_BUFFER_PTS_IS_VALID(buffer) && GST_CLOCK_TIME_IS_VALID(p->slate_end) &&
          GST_BUFFER_PTS(buffer) < p->slate_end) {
        GST_LOG_OBJECT(p->self, "live picture %" GST_TIME_FORMAT " older than the slate's %" GST_TIME_FORMAT,
                       GST_TIME_ARGS(GST_BUFFER_PTS(buffer)), GST_TIME_ARGS(p->slate_end));
        return GST_PAD_PROBE_DROP;
      }
      p->live_active = true;
      p->switching = false;
      p->failed_since_live = false;
      p->last_failure_404 = false;
      g_object_set(p->selector, "active-pad", p->live_pad, nullptr);
      switched = true;
    }
  }
  if (switched) {
    GST_INFO_OBJECT(p->self, "placeholder: live picture");
    /* for applications that recompute latency on request: the live stream (jitter buffer, decoder) is there now */
    gst_element_post_message(GST_ELEMENT(p->self), gst_message_new_latency(GST_OBJECT(p->self)));
  }
  return GST_PAD_PROBE_OK;
}

/* Called with p->lock held. */
static void show_slate_locked(Placeholder *p) {
  p->switching = false;
  if (!p->live_active)
    return;
  p->live_active = false;
  g_object_set(p->selector, "active-pad", p->slate_pad, nullptr);
}

/* ---- building it ---- */

static GstElement *make_element(const char *factory, std::string *missing) {
  GstElement *e = gst_element_factory_make(factory, nullptr);
  if (!e && missing->empty())
    *missing = factory;
  return e;
}

bool placeholder_prepare(GstMtxWhepSrc *self, const Settings &s) {
  GstWhepSrcPrivate *priv = self->priv;
  if (s.placeholder != GST_MTX_WHEP_PLACEHOLDER_STATUS)
    return true;
  if (!s.decode) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("placeholder=status draws a picture and needs decoded video: set "
                                                 "decode=true, or placeholder=none to record encoded streams"),
                      (nullptr));
    return false;
  }
  if (gstmtx::parse_codec_list(s.video_codecs, "video").empty()) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("placeholder=status shows a picture on the video pad, but "
                                                 "video-codecs is empty"), (nullptr));
    return false;
  }
  GstCaps *initial = gst_caps_from_string(s.placeholder_caps.c_str());
  if (!initial || gst_caps_get_size(initial) != 1 ||
      !gst_structure_has_name(gst_caps_get_structure(initial, 0), "video/x-raw")) {
    if (initial)
      gst_caps_unref(initial);
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("placeholder-caps must be one raw video structure (e.g. "
                                                 "video/x-raw,width=1280,height=720,framerate=30/1), not '%s'",
                                                 s.placeholder_caps.c_str()), (nullptr));
    return false;
  }
  std::string missing;
  GstElement *source = make_element("videotestsrc", &missing);
  GstElement *filter = make_element("capsfilter", &missing);
  GstElement *overlay = make_element("textoverlay", &missing);
  GstElement *selector = make_element("input-selector", &missing);
  if (!missing.empty()) {
    for (GstElement *e : {source, filter, overlay, selector})
      if (e)
        gst_object_unref(e);
    gst_caps_unref(initial);
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN, ("placeholder=status needs %s (gstreamer1.0-plugins-base and "
                                                   "its pango plugin)", missing.c_str()), (nullptr));
    return false;
  }
  auto p = std::make_shared<Placeholder>();
  p->self = self;
  p->path = priv->endpoint ? priv->endpoint->stream_path : "";
  p->initial_caps = initial;
  p->source = source;
  p->filter = filter;
  p->overlay = overlay;
  p->selector = selector;
  g_object_set(source, "is-live", TRUE, nullptr);
  gst_util_set_object_arg(G_OBJECT(source), "pattern", "solid-color");
  g_object_set(source, "foreground-color", kSlateColor, nullptr);
  g_object_set(filter, "caps", initial, nullptr);
  gst_util_set_object_arg(G_OBJECT(overlay), "valignment", "center");
  gst_util_set_object_arg(G_OBJECT(overlay), "halignment", "center");
  gst_util_set_object_arg(G_OBJECT(overlay), "line-alignment", "center");
  /* auto-resize (on by default) scales the font with the picture's width, from 640 pixels on */
  g_object_set(overlay, "shaded-background", FALSE, "draw-outline", TRUE, "font-desc", kSlateFont, nullptr);
  /* inactive inputs drop what they get at once: neither waits for the other */
  g_object_set(selector, "sync-streams", FALSE, "cache-buffers", FALSE, nullptr);

  p->bin = gst_bin_new("placeholder");
  gst_object_ref_sink(p->bin);
  g_object_set_data(G_OBJECT(p->bin), kPlaceholderMarker, GINT_TO_POINTER(1));
  gst_bin_add_many(GST_BIN(p->bin), source, filter, overlay, selector, nullptr);
  gst_element_link_many(source, filter, overlay, nullptr);
  p->slate_pad = gst_element_request_pad_simple(selector, "sink_%u");
  p->live_pad = gst_element_request_pad_simple(selector, "sink_%u");
  GstPad *overlay_src = gst_element_get_static_pad(overlay, "src");
  gst_pad_link(overlay_src, p->slate_pad);
  gst_object_unref(overlay_src);
  g_object_set(selector, "active-pad", p->slate_pad, nullptr);

  GstPad *selector_src = gst_element_get_static_pad(selector, "src");
  p->src = gst_ghost_pad_new("src", selector_src);
  gst_object_unref(selector_src);
  p->live_input = gst_ghost_pad_new("live", p->live_pad);
  gst_object_ref(p->src);
  gst_object_ref(p->live_input);
  gst_element_add_pad(p->bin, p->src);
  gst_element_add_pad(p->bin, p->live_input);

  Placeholder *raw = p.get();
  GstPad *filter_src = gst_element_get_static_pad(filter, "src");
  gst_pad_add_probe(filter_src, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                    slate_gate_probe, raw, nullptr);
  gst_object_unref(filter_src);
  gst_pad_add_probe(p->slate_pad, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_QUERY_UPSTREAM),
                    slate_out_probe, raw, nullptr);
  gst_pad_add_probe(p->live_pad,
                    static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST |
                                                 GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
                    live_probe, raw, nullptr);
  {
    std::string markup;
    {
      std::lock_guard<std::mutex> guard(p->lock);
      markup = update_text_locked(raw);
    }
    set_overlay_text(raw, markup);
  }
  gst_bin_add(GST_BIN(self), p->bin);
  std::lock_guard<std::mutex> guard(priv->lock);
  priv->placeholder = std::move(p);
  return true;
}

void placeholder_expose(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  std::shared_ptr<Placeholder> holder = current(self);
  Placeholder *p = holder.get();
  if (!p)
    return;
  p->latency = settings_snapshot(self).latency * GST_MSECOND;
  std::string markup;
  {
    std::lock_guard<std::mutex> guard(p->lock);
    p->connected = false;
    p->failed_since_live = false;
    p->last_failure_404 = false;
    p->state_line = "connecting…";
    markup = update_text_locked(p);
    show_slate_locked(p);
  }
  set_overlay_text(p, markup);
  Output *target = nullptr;
  bool is_new = false;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    for (auto &out : priv->outputs)
      if (out->media == "video") {
        target = out.get();
        break;
      }
    if (!target) {
      auto out = std::make_unique<Output>();
      out->self = self;
      out->media = "video";
      GstPadTemplate *templ = gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(self), "video_%u");
      out->ghost = gst_ghost_pad_new_no_target_from_template("video_0", templ);
      install_output_event_probe(out.get());
      target = out.get();
      priv->outputs.push_back(std::move(out));
      is_new = true;
    }
    target->via_placeholder = true;
  }
  gst_ghost_pad_set_target(GST_GHOST_PAD(target->ghost), p->src);
  if (is_new) {
    gst_pad_set_active(target->ghost, TRUE);
    gst_element_add_pad(GST_ELEMENT(self), target->ghost);
    GST_INFO_OBJECT(self, "exposed %s (placeholder)", GST_PAD_NAME(target->ghost));
  }
}

void placeholder_release(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  std::shared_ptr<Placeholder> p;
  std::vector<GstPad *> ghosts;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    p = std::move(priv->placeholder);
    if (!p)
      return;
    for (auto &out : priv->outputs)
      if (out->via_placeholder) {
        out->via_placeholder = false;
        ghosts.push_back(GST_PAD(gst_object_ref(out->ghost)));
      }
  }
  for (GstPad *ghost : ghosts) {
    gst_ghost_pad_set_target(GST_GHOST_PAD(ghost), nullptr);
    gst_object_unref(ghost);
  }
  gst_element_set_locked_state(p->bin, TRUE);
  gst_element_set_state(p->bin, GST_STATE_NULL);
  gst_bin_remove(GST_BIN(self), p->bin);
  gst_element_release_request_pad(p->selector, p->slate_pad);
  gst_element_release_request_pad(p->selector, p->live_pad);
  gst_object_unref(p->slate_pad);
  gst_object_unref(p->live_pad);
  gst_object_unref(p->src);
  gst_object_unref(p->live_input);
  gst_object_unref(p->bin);
  gst_caps_unref(p->initial_caps);
}

bool is_placeholder_bin(GstElement *element) {
  return g_object_get_data(G_OBJECT(element), kPlaceholderMarker) != nullptr;
}

/* ---- outputs ---- */

void connect_output(GstMtxWhepSrc *self, Output *out, GstPad *src) {
  std::shared_ptr<Placeholder> p = current(self);
  if (!p || !out->via_placeholder) {
    gst_ghost_pad_set_target(GST_GHOST_PAD(out->ghost), src);
    return;
  }
  if (GstPad *old = gst_pad_get_peer(p->live_input)) {
    gst_pad_unlink(old, p->live_input);
    gst_object_unref(old);
  }
  {
    std::lock_guard<std::mutex> guard(p->lock);
    p->connected = true;
  }
  if (gst_pad_link(src, p->live_input) != GST_PAD_LINK_OK)
    GST_WARNING_OBJECT(self, "cannot link %s:%s to the placeholder", GST_DEBUG_PAD_NAME(src));
}

void disconnect_output(GstMtxWhepSrc *self, Output *out) {
  std::shared_ptr<Placeholder> p = current(self);
  if (!p || !out->via_placeholder) {
    gst_ghost_pad_set_target(GST_GHOST_PAD(out->ghost), nullptr);
    return;
  }
  {
    std::lock_guard<std::mutex> guard(p->lock);
    p->connected = false;
    show_slate_locked(p.get());
  }
  if (GstPad *old = gst_pad_get_peer(p->live_input)) {
    gst_pad_unlink(old, p->live_input);
    gst_object_unref(old);
  }
}

/* ---- state ---- */

void placeholder_failure(GstMtxWhepSrc *self, const gstmtx::Failure &failure) {
  std::shared_ptr<Placeholder> p = current(self);
  if (!p)
    return;
  std::lock_guard<std::mutex> guard(p->lock);
  p->failed_since_live = true;
  p->last_failure_404 = failure.http_status == 404;
}

void placeholder_status(GstMtxWhepSrc *self, const gstmtx::StatusUpdate &update) {
  std::shared_ptr<Placeholder> holder = current(self);
  Placeholder *p = holder.get();
  if (!p)
    return;
  std::unique_lock<std::mutex> guard(p->lock);
  switch (update.state) {
  case gstmtx::ConnectionState::Connecting:
    if (p->failed_since_live)
      return; /* another attempt: the reason of the last failure stands */
    p->state_line = "connecting…";
    break;
  case gstmtx::ConnectionState::Connected:
    p->state_line = "connected, waiting for the first picture";
    break;
  case gstmtx::ConnectionState::Reconnecting:
    if (p->last_failure_404)
      p->state_line = "waiting for the camera to publish";
    else
      p->state_line = "reconnecting (attempt " + std::to_string(update.attempt) + "): " + update.reason;
    break;
  case gstmtx::ConnectionState::Fallback:
    p->state_line = "HLS fallback";
    break;
  case gstmtx::ConnectionState::Failed:
    p->state_line = "error: " + update.reason;
    break;
  default:
    return;
  }
  const std::string markup = update_text_locked(p);
  guard.unlock();
  set_overlay_text(p, markup);
  if (update.state != gstmtx::ConnectionState::Failed)
    return;
  /* the error ends the pipeline: let the slate that says so be pushed first */
  guard.lock();
  show_slate_locked(p);
  const guint64 frames = p->slate_frames;
  GstState state = GST_STATE_NULL;
  gst_element_get_state(p->bin, &state, nullptr, 0);
  if (state != GST_STATE_PLAYING)
    return;
  if (!p->pushed.wait_for(guard, kErrorSlateWait, [p, frames] { return p->slate_frames >= frames + 2; }))
    return;
  guard.unlock();
  /* a display shows a frame the pipeline's latency after it was pushed: that long again */
  const auto latency = std::chrono::milliseconds(p->latency.load() / GST_MSECOND);
  std::this_thread::sleep_for(std::min(latency, kErrorSlateLatencyWait));
}

void placeholder_add_stats(GstMtxWhepSrc *self, GstStructure *stats) {
  std::shared_ptr<Placeholder> p = current(self);
  std::string text;
  if (p) {
    std::lock_guard<std::mutex> guard(p->lock);
    if (!p->live_active)
      text = p->text;
  }
  gst_structure_set(stats, "placeholder-text", G_TYPE_STRING, text.c_str(), nullptr);
}

}  // namespace whepsrc
