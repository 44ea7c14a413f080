/* gst-mediamtx: whepsrc's HLS fallback.
 *
 * When WebRTC cannot be established (UDP blocked, no TURN...) for hls-fallback-attempts failed
 * attempts, the same path plays over MediaMTX's HLS server (souphttpsrc ! hlsdemux ! decodebin or
 * parsebin, in a bin of its own) through the same ghost pads, its timestamps mapped onto running
 * time like a live source's. WebRTC is retried meanwhile (whep_session.cpp); the first WebRTC
 * stream takes its pad back and the fallback stops. A fallback that stalls or fails is restarted.
 * Control thread unless said otherwise.
 */
#include "whepsrc_private.h"

#include <algorithm>

namespace whepsrc {

/* Any thread. */
bool inside_hls_bin(GstObject *object) {
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
  clock->watchdog.note_output(gstmtx::StallWatchdog::Clock::now());
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
    priv->controller.post([self] {
      if (self->priv->hls)
        self->priv->controller.post_status(gstmtx::ConnectionState::Fallback,
                                           "playing over HLS while WebRTC is unavailable", -1, "hls");
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

/* No HLS media for the watchdog's timeout (hlsdemux can stall, e.g. on the gap segments MediaMTX
 * lists while its muxer warms up): restart the HLS chain. A timer at the moment a stall could
 * first be seen (StallWatchdog's time_left). */
static void watch_hls(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  priv->controller.loop().cancel(priv->hls_watchdog_timer);
  priv->hls_watchdog_timer = 0;
  std::shared_ptr<HlsClock> clock;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    clock = priv->hls_clock;
  }
  if (!clock)
    return;
  const auto now = gstmtx::StallWatchdog::Clock::now();
  if (clock->watchdog.stalled(now)) {
    clock->watchdog.disarm();
    on_hls_failed(self, "no HLS media for " + std::to_string(clock->watchdog.timeout().count()) + " ms");
    return;
  }
  const auto left = clock->watchdog.time_left(now);
  if (left.count() < 0)
    return;
  priv->hls_watchdog_timer = priv->controller.gate().schedule(std::max(left, gstmtx::Millis{10}), [self] {
    self->priv->hls_watchdog_timer = 0;
    watch_hls(self);
  });
}

/* Starts playing the path over HLS. Control thread. */
void start_hls(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  if (!priv->controller.running())
    return;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (priv->hls)
      return;
  }
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
    priv->hls_clock->watchdog.set_timeout(gstmtx::Millis(std::max(s.timeout, 5000u)));
    priv->hls_clock->watchdog.arm(gstmtx::StallWatchdog::Clock::now(), false);
  }
  GST_INFO_OBJECT(self, "starting the HLS fallback from %s", gstmtx::redact_url(location).c_str());
  gst_bin_add(GST_BIN(self), hls);
  gst_element_sync_state_with_parent(hls);
  watch_hls(self);
}

/* Stops the HLS fallback; its outputs lose their target until WebRTC takes them. Control thread. */
void stop_hls(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  priv->controller.loop().cancel(priv->hls_restart_timer);
  priv->hls_restart_timer = 0;
  priv->controller.loop().cancel(priv->hls_watchdog_timer);
  priv->hls_watchdog_timer = 0;
  GstElement *hls;
  std::vector<Output *> outputs; /* live as long as the element */
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    hls = priv->hls;
    priv->hls = nullptr;
    priv->hls_clock.reset();
    for (auto &out : priv->outputs) {
      if (out->from_hls) {
        out->from_hls = false;
        out->chain = nullptr;
        outputs.push_back(out.get());
      }
    }
  }
  if (!hls)
    return;
  GST_INFO_OBJECT(self, "stopping the HLS fallback");
  for (Output *out : outputs)
    disconnect_output(self, out);
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
void on_hls_failed(GstMtxWhepSrc *self, const std::string &reason) {
  GstWhepSrcPrivate *priv = self->priv;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (!priv->hls)
      return;
  }
  GST_WARNING_OBJECT(self, "HLS fallback failed: %s", reason.c_str());
  stop_hls(self);
  const guint delay = priv->controller.settings().retry_delay;
  priv->hls_restart_timer =
      priv->controller.gate().schedule(gstmtx::Millis(std::min(std::max(delay, 500u), 5000u)), [self] {
        self->priv->hls_restart_timer = 0;
        if (!(self->priv->peer && self->priv->peer->is_connected()))
          start_hls(self);
      });
}

}  // namespace whepsrc
