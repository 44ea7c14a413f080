/* gst-mediamtx: mediamtxsink's bandwidth adaptation (rate_adaptation.h says what it is).
 *
 * Every kRateTick on the control thread, while a session publishes:
 *  - the measured send rate: bytes that left the stable half (the tail probes' count), smoothed;
 *  - the publisher's feedback (Publisher::read_feedback) into the RateController;
 *  - a new target goes to the encoder (set_encoder_bitrate), a deep cut asks for a keyframe (new
 *    viewers start on the new rate, not behind a stale GOP at the old one);
 *  - below min-bitrate (the controller's wanted rate under it), the encoder stays at min-bitrate and
 *    only a share of the raw frames reaches it (gstmtx::FrameRateFloor, gstmtx::FrameThinner in a
 *    probe on the encoder's sink pad): a lower frame rate, never a growing queue;
 *  - the status message tells when the rate moves, at most every kStatusInterval, and at once when
 *    the frame rate is lowered or back to full.
 * Over WHIP a tick comes early (early_tick, not sooner than kEarlyTickGap after the last) when a
 * TWCC feedback between ticks shows the queue growing (Publisher::set_congestion_callback).
 * Every kBacklogTick as well, over RTSP/TCP: the socket's send backlog (Publisher::read_send_backlog)
 * into a gstmtx::SendBacklogWatch: a queue caught growing starts a quick drain at once
 * (RateController::update_backlog) instead of a tick or more later.
 * Without an encoder (encoded input) or with adaptive-bitrate=false only the measurement runs
 * and target-bitrate stays at `bitrate`.
 */
#include "rate_adaptation.h"

#include <algorithm>

#include "sink_private.h"

GST_DEBUG_CATEGORY_EXTERN(gst_mediamtx_sink_debug);
#define GST_CAT_DEFAULT gst_mediamtx_sink_debug

namespace mediamtxsink {

namespace {

constexpr std::chrono::milliseconds kRateTick{200};
/* a tick brought forward by the publisher's congestion signal comes no sooner than this after
 * the last one */
constexpr std::chrono::milliseconds kEarlyTickGap{50};
/* RTSP over TCP: the socket's send backlog is read this often between the ticks */
constexpr std::chrono::milliseconds kBacklogTick{40};
constexpr std::chrono::seconds kStatusInterval{2};
/* weight of one tick in measured-bitrate (~1 s) */
constexpr double kMeasureSmoothing = 0.2;
/* the status tells a move of at least this fraction since the last one it told */
constexpr double kStatusStep = 0.15;

void schedule_tick(GstMediamtxSink *self);
void schedule_backlog_tick(GstMediamtxSink *self, std::chrono::milliseconds delay);

/* Control thread: the frame rate back to full (adaptation off or a new session). */
void restore_frame_rate(RateState &rate) {
  rate.frame_rate_floor.reset();
  rate.thinner.set_fraction(1.0);
}

/* Control thread: the share of the frames encoded for the wanted rate (below min-bitrate: less
 * than all); the status tells when the frame rate is lowered or back to full. */
void apply_frame_rate(GstMediamtxSink *self, const gstmtx::RateDecision &decision, int min_kbps) {
  RateState &rate = self->priv->rate;
  const double fps = rate.input_fps.load();
  const gstmtx::FrameRateStep step = rate.frame_rate_floor.update(decision.wanted_kbps, min_kbps, fps);
  if (step.fraction != rate.thinner.fraction())
    GST_DEBUG_OBJECT(self, "frame rate x%.2f (wanted %d kbit/s, min-bitrate %d)", step.fraction,
                     decision.wanted_kbps, min_kbps);
  rate.thinner.set_fraction(step.fraction);
  if (!step.lowered && !step.restored)
    return;
  const double shown = (fps > 0 ? fps : gstmtx::FrameRateFloor::kDefaultFps) * step.fraction;
  char text[200];
  if (step.lowered)
    g_snprintf(text, sizeof text,
               "frame rate lowered to %.0f fps: the uplink takes about %d kbit/s, below min-bitrate (%d kbit/s)",
               shown, decision.wanted_kbps, min_kbps);
  else
    g_snprintf(text, sizeof text, "frame rate back to full: the uplink carries min-bitrate (%d kbit/s)", min_kbps);
  GST_INFO_OBJECT(self, "%s", text);
  self->priv->controller.post_status(gstmtx::ConnectionState::Connected, text);
}

/* Control thread: a decision of the controller to the encoder, and a keyframe for a deep cut (new
 * viewers start on the new rate, not behind a stale GOP at the old one). */
void apply_decision(GstMediamtxSink *self, Publisher &publisher, GstElement *encoder,
                    const gstmtx::RateDecision &decision, int max_kbps) {
  auto *priv = self->priv;
  RateState &rate = priv->rate;
  if (rate.controller)
    apply_frame_rate(self, decision, rate.controller->min_kbps());
  const int before = rate.applied_kbps ? rate.applied_kbps : max_kbps; /* what the encoder has */
  rate.target_kbps = static_cast<guint>(decision.target_kbps);
  if (decision.target_kbps != before) {
    set_encoder_bitrate(encoder, decision.target_kbps, max_kbps);
    rate.applied_kbps = decision.target_kbps;
    GST_DEBUG_OBJECT(self, "bitrate %d -> %d kbit/s (%s; measured %u kbit/s)", before, decision.target_kbps,
                     gstmtx::rate_reason_name(decision.reason), rate.measured.load());
  }
  if (decision.deep_cut && publisher.repair_keyframe_due()) {
    GST_INFO_OBJECT(self, "deep cut (target %d kbit/s): the keyframe repairing the loss will do", decision.target_kbps);
  } else if (decision.deep_cut) {
    GST_INFO_OBJECT(self, "deep cut (target %d kbit/s): asking for a keyframe", decision.target_kbps);
    GstPad *tail = nullptr;
    {
      std::lock_guard<std::mutex> lk(priv->lock);
      if (priv->video.tail)
        tail = GST_PAD(gst_object_ref(priv->video.tail));
    }
    gstmtx::KeyframeGate::request(tail);
    if (tail)
      gst_object_unref(tail);
  }
}

/* What a tick needs of the element, taken under its lock: nothing when this tick's session is
 * gone. The encoder is a new reference (or null). */
struct TickInputs {
  std::shared_ptr<Publisher> publisher;
  GstElement *encoder = nullptr;
  int max_kbps = 0;
  bool enabled = false;
  guint min_kbps = 0;
};

bool tick_inputs(GstMediamtxSink *self, unsigned generation, TickInputs *in) {
  auto *priv = self->priv;
  std::lock_guard<std::mutex> lk(priv->lock);
  if (generation != priv->rate.generation || generation != priv->generation || !priv->publisher)
    return false;
  in->publisher = priv->publisher;
  if (priv->video.encoder)
    in->encoder = GST_ELEMENT(gst_object_ref(priv->video.encoder));
  in->max_kbps = priv->bitrate_kbps;
  in->enabled = priv->settings.adaptive_bitrate;
  in->min_kbps = priv->settings.min_bitrate;
  return true;
}

/* Control thread, every kBacklogTick: the socket's send backlog between the ticks (RTSP over TCP
 * only; gstmtx::SendBacklogWatch says why). A queue caught growing is drained at once. */
void backlog_tick(GstMediamtxSink *self, unsigned generation) {
  auto *priv = self->priv;
  RateState &rate = priv->rate;
  rate.backlog_timer = 0;
  TickInputs in;
  if (!tick_inputs(self, generation, &in))
    return;
  std::uint64_t written = 0;
  std::int64_t backlog = 0;
  const bool have_backlog = in.publisher->read_send_backlog(&written, &backlog);
  /* a transport without a send backlog (or a socket not found yet) is asked at the tick's pace */
  schedule_backlog_tick(self, have_backlog ? kBacklogTick : kRateTick);
  /* the controller is made (and its bounds kept current) by the tick */
  if (have_backlog && in.encoder && in.enabled && in.max_kbps > 0 && rate.controller) {
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now().time_since_epoch());
    const gstmtx::BacklogReading reading = rate.backlog_watch.sample(now, written, backlog);
    GST_TRACE_OBJECT(self, "send backlog %lld bytes, %.0f ms at %d kbit/s%s", static_cast<long long>(backlog),
                     reading.queue_ms, reading.delivered_kbps, reading.overloaded ? " (growing)" : "");
    if (reading.valid) {
      const gstmtx::RateDecision decision =
          rate.controller->update_backlog(now, reading.queue_ms, reading.delivered_kbps, reading.overloaded,
                                          reading.standing_ms, reading.growing);
      if (decision.changed)
        GST_LOG_OBJECT(self, "send backlog %lld bytes, %.0f ms at %d kbit/s%s -> %d kbit/s",
                       static_cast<long long>(backlog), reading.queue_ms, reading.delivered_kbps,
                       reading.overloaded ? " (growing)" : "", decision.target_kbps);
      apply_decision(self, *in.publisher, in.encoder, decision, in.max_kbps);
    }
  }
  if (in.encoder)
    gst_object_unref(in.encoder);
}

/* Control thread. */
void tick(GstMediamtxSink *self, unsigned generation) {
  auto *priv = self->priv;
  RateState &rate = priv->rate;
  rate.timer = 0;
  TickInputs in;
  if (!tick_inputs(self, generation, &in))
    return;
  schedule_tick(self);

  const auto now = std::chrono::steady_clock::now();
  const guint64 bytes = priv->bytes_sent.load();
  const double dt_ms = std::chrono::duration<double, std::milli>(now - rate.last_tick).count();
  if (dt_ms > 0 && bytes >= rate.last_bytes) {
    const double kbps = static_cast<double>(bytes - rate.last_bytes) * 8.0 / dt_ms;
    rate.measured_kbps += kMeasureSmoothing * (kbps - rate.measured_kbps);
    rate.measured = static_cast<guint>(rate.measured_kbps + 0.5);
  }
  rate.last_tick = now;
  rate.last_bytes = bytes;

  gstmtx::RateFeedback feedback;
  feedback.now = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  const bool have_feedback = in.publisher->read_feedback(&feedback);
  if (!in.encoder || !in.enabled || in.max_kbps <= 0) {
    /* adaptive-bitrate turned off while adapted: back to bitrate */
    if (in.encoder && rate.applied_kbps && rate.applied_kbps != in.max_kbps && in.max_kbps > 0)
      set_encoder_bitrate(in.encoder, in.max_kbps, in.max_kbps);
    rate.applied_kbps = 0;
    rate.controller.reset();
    restore_frame_rate(rate);
    rate.target_kbps = static_cast<guint>(std::max(in.max_kbps, 0));
    if (in.encoder)
      gst_object_unref(in.encoder);
    return;
  }
  if (!rate.controller)
    rate.controller = std::make_unique<gstmtx::RateController>(static_cast<int>(in.min_kbps), in.max_kbps);
  auto &controller = *rate.controller;
  /* a new `bitrate` while playing was set on the encoder by set_property: that is what it has now */
  if (rate.last_max_kbps && rate.last_max_kbps != in.max_kbps)
    rate.applied_kbps = in.max_kbps;
  rate.last_max_kbps = in.max_kbps;
  controller.set_bounds(static_cast<int>(in.min_kbps), in.max_kbps);
  gstmtx::RateDecision decision = controller.update(feedback);
  if (have_feedback)
    GST_LOG_OBJECT(self,
                   "feedback: delay %.1f ms (now %.1f%s), loss %.3f, delivered %d of %d kbit/s, capacity %d -> %d "
                   "kbit/s (%s; estimate %d%s)",
                   feedback.queuing_delay_ms, feedback.queue_now_ms, feedback.delay_overuse ? ", overuse" : "",
                   feedback.loss, feedback.delivered_kbps, feedback.sent_kbps, feedback.capacity_kbps,
                   decision.target_kbps, gstmtx::rate_reason_name(decision.reason), controller.link_estimate_kbps(),
                   controller.lifted() ? ", lifted" : "");
  apply_decision(self, *in.publisher, in.encoder, decision, in.max_kbps);
  gst_object_unref(in.encoder);

  /* the status: when the rate moved enough since the last one told, rate-limited */
  const int told = rate.status_kbps ? rate.status_kbps : in.max_kbps;
  const bool moved = std::abs(decision.target_kbps - told) >= kStatusStep * told ||
                     (decision.target_kbps == in.max_kbps && told != in.max_kbps);
  if (moved && now - rate.last_status >= kStatusInterval) {
    rate.last_status = now;
    rate.status_kbps = decision.target_kbps;
    std::string reason;
    if (decision.target_kbps >= in.max_kbps)
      reason = "bitrate back to " + std::to_string(decision.target_kbps) + " kbit/s: the uplink carries it";
    else if (decision.target_kbps < told)
      reason = "bitrate lowered to " + std::to_string(decision.target_kbps) + " kbit/s: the uplink is congested (" +
               gstmtx::rate_reason_name(controller.last_cut_reason()) + ")";
    else
      reason = "bitrate raised to " + std::to_string(decision.target_kbps) + " kbit/s";
    GST_INFO_OBJECT(self, "%s", reason.c_str());
    priv->controller.post_status(gstmtx::ConnectionState::Connected, reason);
  }
}

void schedule_backlog_tick(GstMediamtxSink *self, std::chrono::milliseconds delay) {
  RateState &rate = self->priv->rate;
  const unsigned generation = rate.generation;
  rate.backlog_timer =
      self->priv->controller.gate().schedule(delay, [self, generation] { backlog_tick(self, generation); });
}

void schedule_tick(GstMediamtxSink *self) {
  RateState &rate = self->priv->rate;
  const unsigned generation = rate.generation;
  rate.timer = self->priv->controller.gate().schedule(kRateTick, [self, generation] { tick(self, generation); });
}

/* Control thread: the publisher saw congestion between two ticks: the tick now. */
void early_tick(GstMediamtxSink *self, unsigned generation) {
  auto *priv = self->priv;
  RateState &rate = priv->rate;
  if (!rate.timer || std::chrono::steady_clock::now() - rate.last_tick < kEarlyTickGap)
    return;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    if (generation != rate.generation)
      return;
  }
  priv->controller.loop().cancel(rate.timer);
  rate.timer = 0;
  tick(self, generation);
}

}  // namespace

double queue_delay_ms(GstElement *queue) {
  if (!queue)
    return 0;
  guint64 level = 0;
  g_object_get(queue, "current-level-time", &level, nullptr);
  return static_cast<double>(level) / GST_MSECOND;
}

bool read_receiver_report(GstElement *rtpbin, guint session_id, ReceiverReportCursor *cursor, double *loss) {
  if (!rtpbin)
    return false;
  GstElement *session = nullptr;
  g_signal_emit_by_name(rtpbin, "get-session", session_id, &session);
  if (!session)
    return false;
  GstStructure *stats = nullptr;
  g_object_get(session, "stats", &stats, nullptr);
  gst_object_unref(session);
  if (!stats)
    return false;
  bool fresh = false;
  const GValue *sources = gst_structure_get_value(stats, "source-stats");
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS /* rtpsession's stats are a GValueArray (1.22 to 1.26) */
  if (sources && G_VALUE_HOLDS(sources, g_value_array_get_type())) {
    auto *array = static_cast<GValueArray *>(g_value_get_boxed(sources));
    for (guint i = 0; array && i < array->n_values && !fresh; ++i) {
      const GstStructure *source = gst_value_get_structure(g_value_array_get_nth(array, i));
      gboolean internal = FALSE, have_rb = FALSE;
      guint fraction = 0, seq = 0;
      if (!source || !gst_structure_get_boolean(source, "internal", &internal) || !internal ||
          !gst_structure_get_boolean(source, "have-rb", &have_rb) || !have_rb ||
          !gst_structure_get_uint(source, "rb-fractionlost", &fraction) ||
          !gst_structure_get_uint(source, "rb-exthighestseq", &seq))
        continue;
      if (!cursor->have || seq != cursor->last_seq) {
        fresh = cursor->have; /* the first one seen may be old */
        cursor->have = true;
        cursor->last_seq = seq;
        *loss = fraction / 256.0;
      }
    }
  }
  G_GNUC_END_IGNORE_DEPRECATIONS
  gst_structure_free(stats);
  return fresh;
}

void rate_adaptation_start(GstMediamtxSink *self, unsigned generation) {
  auto *priv = self->priv;
  RateState &rate = priv->rate;
  rate_adaptation_stop(self);
  int max_kbps;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    rate.generation = generation;
    max_kbps = priv->bitrate_kbps;
  }
  /* a new session starts at `bitrate` again: a reconnection may take another path */
  if (rate.controller) {
    rate.controller->reset();
    GstElement *encoder = nullptr;
    {
      std::lock_guard<std::mutex> lk(priv->lock);
      if (priv->video.encoder)
        encoder = GST_ELEMENT(gst_object_ref(priv->video.encoder));
    }
    if (encoder) {
      set_encoder_bitrate(encoder, max_kbps, max_kbps);
      gst_object_unref(encoder);
    }
  }
  rate.target_kbps = static_cast<guint>(std::max(max_kbps, 0));
  rate.applied_kbps = 0;
  rate.last_max_kbps = max_kbps;
  rate.status_kbps = 0;
  restore_frame_rate(rate);
  rate.last_tick = std::chrono::steady_clock::now();
  rate.last_bytes = priv->bytes_sent.load();
  rate.backlog_watch.reset();
  schedule_tick(self);
  schedule_backlog_tick(self, kBacklogTick);
  std::shared_ptr<Publisher> publisher;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    publisher = priv->publisher;
  }
  if (publisher)
    publisher->set_congestion_callback([self, generation] {
      self->priv->controller.gate().post([self, generation] { early_tick(self, generation); });
    });
}

void rate_adaptation_stop(GstMediamtxSink *self) {
  auto *priv = self->priv;
  RateState &rate = priv->rate;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    rate.generation = 0;
  }
  if (rate.timer && priv->controller.has_loop())
    priv->controller.loop().cancel(rate.timer);
  if (rate.backlog_timer && priv->controller.has_loop())
    priv->controller.loop().cancel(rate.backlog_timer);
  rate.timer = 0;
  rate.backlog_timer = 0;
  rate.measured = 0;
  rate.measured_kbps = 0;
  restore_frame_rate(rate);
}

namespace {
/* Streaming thread, on the encoder's sink pad: the frames left out below min-bitrate. */
GstPadProbeReturn thinning_probe(GstPad *, GstPadProbeInfo *, gpointer user_data) {
  RateState &rate = static_cast<GstMediamtxSink *>(user_data)->priv->rate;
  if (rate.thinner.keep())
    return GST_PAD_PROBE_OK;
  rate.frames_thinned++;
  return GST_PAD_PROBE_DROP;
}
}  // namespace

void frame_thinning_attach(GstMediamtxSink *self, GstElement *encoder, int fps_n, int fps_d) {
  self->priv->rate.input_fps = fps_n > 0 && fps_d > 0 ? static_cast<double>(fps_n) / fps_d : 0.0;
  g_autoptr(GstPad) pad = gst_element_get_static_pad(encoder, "sink");
  /* the pad and its probe go with the encoder (reset_stream) */
  if (pad)
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, thinning_probe, self, nullptr);
}

void rate_adaptation_add_stats(GstMediamtxSink *self, GstStructure *stats) {
  auto *priv = self->priv;
  guint target = priv->rate.target_kbps.load();
  if (target == 0) { /* no session yet: the configured rate */
    std::lock_guard<std::mutex> lk(priv->lock);
    target = static_cast<guint>(std::max(priv->bitrate_kbps, 0));
  }
  /* x264enc's rate buffer now (gstmtx::encoder_rate_settings) */
  guint rate_buffer = 0;
  GstElement *encoder = nullptr;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    if (priv->video.encoder)
      encoder = GST_ELEMENT(gst_object_ref(priv->video.encoder));
  }
  if (encoder) {
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(encoder), "vbv-buf-capacity"))
      g_object_get(encoder, "vbv-buf-capacity", &rate_buffer, nullptr);
    gst_object_unref(encoder);
  }
  gst_structure_set(stats, "rate-buffer", G_TYPE_UINT, rate_buffer, "target-bitrate", G_TYPE_UINT, target,
                    "measured-bitrate", G_TYPE_UINT,
                    priv->rate.measured.load(), "framerate-fraction", G_TYPE_DOUBLE, priv->rate.thinner.fraction(),
                    "frames-thinned", G_TYPE_UINT64, priv->rate.frames_thinned.load(), nullptr);
}

}  // namespace mediamtxsink
