/* gst-mediamtx: reconnectbin's sink side, the child's input.
 *
 * Upstream is never blocked and never answered with an error: while the child is down its
 * buffers are dropped and counted; sticky events are kept on the ghost pad and replayed to the
 * next child. One flow policy for buffers and buffer lists (a list is passed on as its buffers): a
 * flow error from the child is swallowed, its data counted as dropped, and the child restarted. A
 * restarted child starts on a keyframe (gstmtx::KeyframeGate: deltas dropped, a force-key-unit
 * event upstream). The first data a child accepts is its delivery: the controller's outage ends.
 */
#include "reconnectbin_private.h"

#define GST_CAT_DEFAULT gst_reconnect_bin_debug

/* Control thread: child `generation` starts taking input. Data goes to it from now on, deltas
 * only after a keyframe: asks upstream for one at once (and again while waiting). */
void reconnect_bin_sink_begin(GstMtxReconnectBin *self, guint generation) {
  ReconnectBinSinkSide &sink = self->priv->sink;
  if (!sink.ghost)
    return;
  sink.generation = generation;
  g_autoptr(GstPad) peer = gst_pad_get_peer(sink.ghost);
  GST_DEBUG_OBJECT(self, "child generation %u takes input from a keyframe on", generation);
  sink.keyframe.close(peer); /* the event goes into upstream's src pad */
  sink.up = true;
}

/* Upstream streaming thread: the one flow policy of the sink side, for one buffer. Upstream only
 * ever gets OK (or the EOS it asked for): a buffer the child is down for, or that waits for a
 * keyframe, is dropped and counted; one the child refuses with a flow error is counted as dropped
 * and the child restarted (`*refused` set). */
static GstFlowReturn reconnect_bin_sink_push(GstMtxReconnectBin *self, GstPad *pad, GstObject *parent,
                                             GstBuffer *buffer, bool *refused) {
  ReconnectBinPrivate *priv = self->priv;
  ReconnectBinSinkSide &sink = priv->sink;
  bool admit = sink.up;
  if (admit && sink.keyframe.is_closed()) {
    g_autoptr(GstPad) peer = gst_pad_get_peer(pad); /* a new request goes into upstream's src pad */
    admit = sink.keyframe.admit(peer, buffer);
  }
  if (!admit) {
    priv->buffers_dropped++;
    gst_buffer_unref(buffer);
    return GST_FLOW_OK;
  }
  const guint generation = sink.generation;
  priv->watchdog.note_input(std::chrono::steady_clock::now());
  const GstFlowReturn ret = gst_proxy_pad_chain_default(pad, parent, buffer);
  if (ret == GST_FLOW_OK) {
    priv->controller.delivered(generation); /* cheap after the first: the outage is over */
    return ret;
  }
  if (ret == GST_FLOW_EOS && sink.upstream_eos)
    return ret;
  priv->buffers_dropped++;
  if (ret <= GST_FLOW_NOT_NEGOTIATED && sink.up) {
    *refused = true;
    gstmtx::Failure failure = gstmtx::Failure::retry("the child refused data");
    failure.debug = std::string("flow return ") + gst_flow_get_name(ret);
    failure.domain = GST_STREAM_ERROR;
    failure.code = GST_STREAM_ERROR_FAILED;
    reconnect_bin_report_failure(self, generation, ChildEnd::Error, std::move(failure));
  }
  /* flushing, not linked or EOS of a child being stopped: the child is being (re)started */
  return GST_FLOW_OK;
}

/* Upstream streaming thread: a buffer for the child. */
GstFlowReturn reconnect_bin_sink_chain(GstPad *pad, GstObject *parent, GstBuffer *buffer) {
  bool refused = false;
  return reconnect_bin_sink_push(GST_RECONNECT_BIN(parent), pad, parent, buffer, &refused);
}

/* Upstream streaming thread: a list is treated like its buffers, one by one (so what the child
 * took and what was dropped is known exactly); once the child refused one, the rest of the list
 * is dropped and counted too. */
GstFlowReturn reconnect_bin_sink_chain_list(GstPad *pad, GstObject *parent, GstBufferList *list) {
  GstMtxReconnectBin *self = GST_RECONNECT_BIN(parent);
  const guint n = gst_buffer_list_length(list);
  GstFlowReturn ret = GST_FLOW_OK;
  bool refused = false;
  for (guint i = 0; i < n && ret == GST_FLOW_OK; ++i) {
    if (refused) {
      self->priv->buffers_dropped += n - i;
      break;
    }
    ret = reconnect_bin_sink_push(self, pad, parent, gst_buffer_ref(gst_buffer_list_get(list, i)), &refused);
  }
  gst_buffer_list_unref(list);
  return ret;
}

/* Upstream streaming thread (serialized events) or any thread (flushes). */
gboolean reconnect_bin_sink_event(GstPad *pad, GstObject *parent, GstEvent *event) {
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
        reconnect_bin_stop_fallback(self);
        self->priv->controller.finish(gstmtx::ConnectionState::Stopped, "end of stream from upstream");
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
gboolean reconnect_bin_sink_query(GstPad *pad, GstObject *parent, GstQuery *query) {
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
