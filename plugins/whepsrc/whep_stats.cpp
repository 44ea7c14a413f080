/* gst-mediamtx: whepsrc's `stats` property.
 *
 * Reading `stats` never waits on webrtcbin (whose operations queue can be busy or blocked): while
 * a session runs, the control thread asks webrtcbin for its statistics once a second (and at once
 * when the session connects) with a promise whose change function parses the reply into the
 * StatsCache; build_stats() combines that cache with the controller's fields and the element's
 * counters, in one function.
 */
#include "whepsrc_private.h"

#include <algorithm>
#include <map>

namespace whepsrc {

/* webrtcbin's get-stats reply, summed up: packets lost and jitter of the inbound streams, the
 * round-trip time, and the selected candidate pair. Any thread. */
static WebrtcStats parse_webrtc_stats(const GstStructure *reply) {
  /* Candidates are resolved through the selected pair's ids: webrtcbin 1.22 labels local
   * candidates "remote-candidate" and the other way round, but the ids are right. */
  struct Accumulator {
    guint64 packets_lost = 0;
    double jitter = 0, rtt = -1;
    std::string selected_pair, first_pair, pair_local, pair_remote;
    std::map<std::string, std::string> candidates; /* id -> "address:port (type)" */
    std::map<std::string, std::pair<std::string, std::string>> pairs;
  } acc;
  whepsrc_for_each_field(reply, [&acc](const char *, const GValue *value) {
    auto *a = &acc;
    if (!GST_VALUE_HOLDS_STRUCTURE(value))
      return;
    const GstStructure *st = gst_value_get_structure(value);
    GstWebRTCStatsType type;
    if (!gst_structure_get(st, "type", GST_TYPE_WEBRTC_STATS_TYPE, &type, nullptr))
      return;
    const char *id = gst_structure_get_string(st, "id");
    if (type == GST_WEBRTC_STATS_INBOUND_RTP) {
      gint64 lost = 0;
      double j = 0;
      if (gst_structure_get_int64(st, "packets-lost", &lost) && lost > 0)
        a->packets_lost += static_cast<guint64>(lost);
      if (gst_structure_get_double(st, "jitter", &j))
        a->jitter = std::max(a->jitter, j);
    } else if (type == GST_WEBRTC_STATS_REMOTE_INBOUND_RTP || type == GST_WEBRTC_STATS_REMOTE_OUTBOUND_RTP) {
      double r;
      if (gst_structure_get_double(st, "round-trip-time", &r))
        a->rtt = r;
    } else if ((type == GST_WEBRTC_STATS_LOCAL_CANDIDATE || type == GST_WEBRTC_STATS_REMOTE_CANDIDATE) && id) {
      const char *addr = gst_structure_get_string(st, "address");
      guint port = 0;
      gst_structure_get_uint(st, "port", &port);
      const char *ctype = gst_structure_get_string(st, "candidate-type");
      const char *proto = gst_structure_get_string(st, "protocol");
      a->candidates[id] = std::string(addr ? addr : "?") + ":" + std::to_string(port) + " " +
                          (proto ? proto : "") + " " + (ctype ? ctype : "?");
    } else if (type == GST_WEBRTC_STATS_CANDIDATE_PAIR && id) {
      const char *l = gst_structure_get_string(st, "local-candidate-id");
      const char *r = gst_structure_get_string(st, "remote-candidate-id");
      a->pairs[id] = {l ? l : "", r ? r : ""};
      if (a->first_pair.empty())
        a->first_pair = id;
    } else if (type == GST_WEBRTC_STATS_TRANSPORT) {
      if (const char *sel = gst_structure_get_string(st, "selected-candidate-pair-id"))
        a->selected_pair = sel;
    }
  });
  auto pair = acc.pairs.find(acc.selected_pair.empty() ? acc.first_pair : acc.selected_pair);
  WebrtcStats out;
  out.packets_lost = acc.packets_lost;
  out.jitter = acc.jitter;
  out.round_trip_time = acc.rtt;
  if (pair != acc.pairs.end()) {
    out.local_candidate = acc.candidates[pair->second.first];
    out.remote_candidate = acc.candidates[pair->second.second];
  }
  return out;
}

/* What a stats promise carries to its change function. */
struct StatsRequest {
  std::shared_ptr<StatsCache> cache;
  unsigned session;
};

/* webrtcbin answered (on its own thread, or on ours when it is shutting down): store the figures
 * when they are still about the current session. */
static void on_webrtc_stats(GstPromise *promise, gpointer data) {
  auto *request = static_cast<StatsRequest *>(data);
  if (gst_promise_wait(promise) != GST_PROMISE_RESULT_REPLIED)
    return;
  const GstStructure *reply = gst_promise_get_reply(promise);
  if (!reply || gst_structure_has_field(reply, "error"))
    return;
  WebrtcStats stats = parse_webrtc_stats(reply);
  std::lock_guard<std::mutex> guard(request->cache->lock);
  if (request->cache->session != request->session)
    return;
  request->cache->webrtc = std::move(stats);
  request->cache->have_webrtc = true;
}

/* Asks the current webrtcbin for its statistics; returns at once. */
static void request_webrtc_stats(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  GstElement *webrtc = nullptr;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (priv->webrtc)
      webrtc = GST_ELEMENT(gst_object_ref(priv->webrtc));
  }
  if (!webrtc)
    return;
  auto *request = new StatsRequest{priv->stats, priv->controller.current_session()};
  GstPromise *promise = gst_promise_new_with_change_func(on_webrtc_stats, request,
                                                         [](gpointer data) { delete static_cast<StatsRequest *>(data); });
  g_signal_emit_by_name(webrtc, "get-stats", nullptr, promise);
  gst_promise_unref(promise);
  gst_object_unref(webrtc);
}

static void stats_tick(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  priv->stats_timer = 0;
  update_peer_timings(self);
  request_webrtc_stats(self);
  /* until webrtcbin reports the selected candidate pair (it may not have one yet when the session
   * connects), ask again soon */
  bool complete;
  {
    std::lock_guard<std::mutex> guard(priv->stats->lock);
    complete = priv->stats->have_webrtc && !priv->stats->webrtc.remote_candidate.empty();
  }
  priv->stats_timer = priv->controller.gate().schedule(gstmtx::Millis(complete ? kStatsIntervalMs : kStatsRetryMs),
                                                       [self] { stats_tick(self); });
}

void start_stats_ticks(GstMtxWhepSrc *self) {
  stop_stats_ticks(self);
  stats_tick(self);
}

void stop_stats_ticks(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  priv->controller.loop().cancel(priv->stats_timer);
  priv->stats_timer = 0;
}

void update_peer_timings(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  const unsigned session = priv->controller.current_session();
  std::lock_guard<std::mutex> guard(priv->stats->lock);
  if (priv->stats->session != session) {
    /* a new session: the last one's figures no longer describe the connection */
    priv->stats->session = session;
    priv->stats->have_webrtc = false;
    priv->stats->webrtc = WebrtcStats{};
  }
  if (priv->peer) {
    priv->stats->timings = priv->peer->timings();
    priv->stats->have_timings = true;
  }
}

GstStructure *build_stats(GstMtxWhepSrc *self) {
  GstWhepSrcPrivate *priv = self->priv;
  GstStructure *s = gst_structure_new_empty("application/x-whepsrc-stats");
  priv->controller.add_stats(s);
  gint64 first_frame_us;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    first_frame_us = priv->first_frame_latency_us;
  }
  gst_structure_set(s, "frames", G_TYPE_UINT64, static_cast<guint64>(priv->frames.load()), "bytes-received",
                    G_TYPE_UINT64, static_cast<guint64>(priv->bytes.load()), "time-to-first-frame-ms", G_TYPE_DOUBLE,
                    first_frame_us < 0 ? -1.0 : first_frame_us / 1000.0, nullptr);
  placeholder_add_stats(self, s);
  std::lock_guard<std::mutex> guard(priv->stats->lock);
  if (priv->stats->have_timings) {
    /* the current attempt's handshake milestones, g_get_monotonic_time() microseconds (0: not
     * reached yet), so a caller can split time to first frame into its parts */
    const gstmtx::PeerTimings &t = priv->stats->timings;
    gst_structure_set(s, "peer-started-us", G_TYPE_INT64, t.started, "offer-created-us", G_TYPE_INT64,
                      t.offer_created, "answer-received-us", G_TYPE_INT64, t.answer_received, "connected-us",
                      G_TYPE_INT64, t.connected, nullptr);
  }
  if (priv->stats->have_webrtc) {
    const WebrtcStats &w = priv->stats->webrtc;
    gst_structure_set(s, "packets-lost", G_TYPE_UINT64, w.packets_lost, "jitter", G_TYPE_DOUBLE, w.jitter,
                      "round-trip-time", G_TYPE_DOUBLE, w.round_trip_time, "local-candidate", G_TYPE_STRING,
                      w.local_candidate.c_str(), "remote-candidate", G_TYPE_STRING, w.remote_candidate.c_str(),
                      nullptr);
  }
  return s;
}

}  // namespace whepsrc
