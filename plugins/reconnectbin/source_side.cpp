/* gst-mediamtx: reconnectbin's source side, the child's output.
 *
 * Downstream never sees a restart: the child's stream-start, flushes and EOS stop here (an EOS
 * becomes a restart, `restart-on-eos`), the events of a new child run are held until its first
 * buffer, and its segment is shifted so running time never goes back (and, when the restarted
 * child begins its timeline from zero again, so it is not behind the clock). The first buffer of
 * a run is its delivery: the controller's outage is over.
 */
#include "reconnectbin_private.h"

#define GST_CAT_DEFAULT gst_reconnect_bin_debug

/* a restarted child whose timestamps lag the pipeline clock by more than this (compared with the
 * first run) is moved forward to the clock: it restarted its timeline from zero */
#define RESYNC_TOLERANCE (200 * GST_MSECOND)

/* Any thread: running time of the pipeline clock now, or NONE when not playing. */
GstClockTime reconnect_bin_now_running_time(GstMtxReconnectBin *self) {
  if (GST_STATE(self) != GST_STATE_PLAYING)
    return GST_CLOCK_TIME_NONE;
  g_autoptr(GstClock) clock = gst_element_get_clock(GST_ELEMENT(self));
  if (!clock)
    return GST_CLOCK_TIME_NONE;
  GstClockTime now = gst_clock_get_time(clock);
  GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
  return now > base ? now - base : 0;
}

/* Child streaming thread, stream lock held: forget the previous child run. */
static void reconnect_bin_src_reset_run(ReconnectBinSourceSide &src, guint generation) {
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
static GstEvent *reconnect_bin_shifted_segment(ReconnectBinSourceSide &src, GstEvent *original) {
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
static void reconnect_bin_src_begin_output(GstMtxReconnectBin *self, ReconnectBinSourceSide &src, GstClockTime pts) {
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
static void reconnect_bin_src_track_buffer(GstMtxReconnectBin *self, ReconnectBinSourceSide &src, GstBuffer *buffer) {
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
GstPadProbeReturn reconnect_bin_src_probe(GstPad *, GstPadProbeInfo *info, gpointer user_data) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(user_data);
  ReconnectBinPrivate *priv = self->priv;
  ReconnectBinSourceSide &src = priv->src;

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
    priv->watchdog.note_output(std::chrono::steady_clock::now());
    priv->buffers_out += n;
    if (!src.flowing) {
      reconnect_bin_src_begin_output(self, src, GST_BUFFER_PTS(first));
      src.flowing = true;
      src.flowing_gen = generation;
      priv->controller.delivered(generation); /* the outage is over */
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
    reconnect_bin_report_failure(self, generation, ChildEnd::Eos, gstmtx::Failure::retry("the child ended (EOS)"));
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
gboolean reconnect_bin_src_internal_event(GstPad *pad, GstObject *, GstEvent *event) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(gst_pad_get_element_private(pad));
  ReconnectBinSourceSide &src = self->priv->src;
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
/* Application thread (queries from downstream, any thread): answer latency while the child is
 * down with the last answer it gave. */
gboolean reconnect_bin_src_query(GstPad *pad, GstObject *parent, GstQuery *query) {
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


/* Application thread, PAUSED->READY (the child is gone): forget the stream state of every run, so
 * the next run starts a new stream downstream. */
void reconnect_bin_src_reset(GstMtxReconnectBin *self) {
  ReconnectBinSourceSide &src = self->priv->src;
  if (!src.internal)
    return;
  GST_PAD_STREAM_LOCK(src.internal);
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
  GST_PAD_STREAM_UNLOCK(src.internal);
}
