/* gst-mediamtx: mediamtxsink's network half and its sessions.
 *
 * A session is one connection attempt: a Publisher (RTSP: rtspclientsink; WHIP: webrtcbin and
 * the shared WebRTC-HTTP session) added to the bin and linked to the stable half's tails. Its id
 * is the ReconnectController's session id, and its elements are named after it
 * (network_element_name), so an error from a session already replaced is told apart and
 * ignored. The controller owns the retry policy, the timer, the status messages and the shared
 * stats; this file owns what is mediamtxsink's own:
 *  - start (the `start` hook, and whenever the inputs change): build the publisher;
 *  - the first media leaving for the server: connected() and delivered() (its outage is over);
 *  - every failure as a typed gstmtx::Failure: the publisher's own (WHIP: the HTTP session's,
 *    RTSP: rtspclientsink's error, 401 -> Unauthorized) to report_failure();
 *  - the end of stream: all inputs ended -> the session sends what it has (3 s at most), is torn
 *    down gracefully, and the controller finishes ("stopped").
 *
 * Threads: everything here runs on the control thread (the controller's loop), except
 * push_command, on_network_error and the publisher callbacks (any thread: they hand work over)
 * and connection_start/stop/release (application thread).
 */
#include <condition_variable>

#include "mediamtx_url.h"
#include "rtsp_publisher.h"
#include "sink_private.h"
#include "whip_publisher.h"

GST_DEBUG_CATEGORY_EXTERN(gst_mediamtx_sink_debug);
#define GST_CAT_DEFAULT gst_mediamtx_sink_debug

namespace mediamtxsink {

namespace {

/* All inputs ended: how long the network half gets to send what it has. */
constexpr std::chrono::seconds kEosGrace{3};

gstmtx::ReconnectController &controller_of(GstMediamtxSink *self) { return self->priv->controller; }

GstPad *video_tail_ref(Private *priv) {
  std::lock_guard<std::mutex> lk(priv->lock);
  return priv->video.tail ? GST_PAD(gst_object_ref(priv->video.tail)) : nullptr;
}

struct IdleUnlink {
  std::mutex lock;
  std::condition_variable done_cond;
  bool done = false;
};

/* Unlinks `pad` from its peer when no buffer is in flight on it (called from the control
 * thread; the unlink itself may run on the streaming thread). */
void unlink_when_idle(GstPad *pad) {
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

/* Control thread (or the application thread once the run is closed): drops media at the tails,
 * unlinks them and removes the network half. `graceful`: end the session with the server. */
void teardown(GstMediamtxSink *self, bool graceful = false) {
  auto *priv = self->priv;
  priv->mode = static_cast<int>(LinkMode::Disconnected);
  std::shared_ptr<Publisher> publisher;
  GstPad *tails[2] = {nullptr, nullptr};
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    publisher = priv->publisher;
    if (priv->video.tail)
      tails[0] = GST_PAD(gst_object_ref(priv->video.tail));
    if (priv->audio.tail)
      tails[1] = GST_PAD(gst_object_ref(priv->audio.tail));
  }
  rate_adaptation_stop(self);
  if (!publisher) {
    for (GstPad *tail : tails)
      if (tail)
        gst_object_unref(tail);
    return;
  }
  for (GstPad *tail : tails) {
    if (tail) {
      unlink_when_idle(tail);
      gst_object_unref(tail);
    }
  }
  publisher->stop(GST_BIN(self), graceful);
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    priv->publisher.reset();
  }
  priv->published_audio = false;
}

/* Any thread: the first media of session `generation` left for the server. */
void on_first_media(GstMediamtxSink *self, unsigned generation) {
  auto &controller = controller_of(self);
  controller.delivered(generation); /* the outage is over: the next failure waits retry-delay */
  controller.post([self, generation] {
    auto *priv = self->priv;
    if (generation != controller_of(self).current_session() || !priv->publisher)
      return;
    priv->mode = static_cast<int>(LinkMode::Connected);
    GST_INFO_OBJECT(self, "publishing to %s", gstmtx::redact_url(priv->publisher_config.url).c_str());
    controller_of(self).connected(generation);
    rate_adaptation_start(self, generation);
    /* Frames queued while the session was set up may have been dropped: start a clean GOP. */
    GstPad *video_tail = video_tail_ref(priv);
    gstmtx::KeyframeGate::request(video_tail);
    if (video_tail)
      gst_object_unref(video_tail);
  });
}

/* Control thread: the network half for the configured transport: RTSP (rtspclientsink) or WHIP
 * (the shared WebRTC-HTTP session + webrtcbin, on the controller's loop and this element's HTTP
 * client). */
std::shared_ptr<Publisher> make_publisher(GstMediamtxSink *self, const PublisherConfig &config, unsigned generation) {
  auto connected = [self](unsigned gen) { on_first_media(self, gen); };
  if (config.whip) {
    return std::make_shared<WhipPublisher>(config, generation, controller_of(self).loop(), *self->priv->http,
                                           connected, [self](unsigned gen, gstmtx::Failure failure) {
                                             if (gen == controller_of(self).current_session())
                                               self->priv->mode = static_cast<int>(LinkMode::Disconnected);
                                             controller_of(self).report_failure(gen, std::move(failure));
                                           });
  }
  return std::make_shared<RtspPublisher>(config, generation, connected);
}

/* Control thread: a new session, when every input has its chain (else StreamsChanged comes). */
void try_connect(GstMediamtxSink *self) {
  auto *priv = self->priv;
  auto &controller = controller_of(self);
  std::vector<PublisherStream> streams;
  PublisherConfig config;
  bool with_audio = false;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    if (!priv->video.tail || (priv->audio.ghost && !priv->audio.tail))
      return;
    /* refs: a released audio pad may drop its chain meanwhile (application thread) */
    streams.push_back(PublisherStream{GST_PAD(gst_object_ref(priv->video.tail)), true});
    if (priv->audio.tail) {
      streams.push_back(PublisherStream{GST_PAD(gst_object_ref(priv->audio.tail)), false});
      with_audio = true;
    }
    config = priv->publisher_config;
  }
  const unsigned generation = controller.begin_session(); /* posts "connecting" */
  GST_INFO_OBJECT(self, "connecting to %s (session %u, attempt %d)", gstmtx::redact_url(config.url).c_str(),
                  generation, controller.attempts());
  auto drop_refs = [&streams] {
    for (auto &stream : streams)
      gst_object_unref(stream.pad);
  };
  if (!controller.running()) {
    /* the application stopped the element from a bus handler, on this thread */
    drop_refs();
    return;
  }
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    priv->publisher = make_publisher(self, config, generation);
    priv->generation = generation;
  }
  priv->published_audio = with_audio;
  /* the first video frame of the session is a keyframe with SPS/PPS: ask for it now */
  priv->keyframes.close(streams.front().pad);
  gstmtx::Failure failure;
  const bool started = priv->publisher->start(GST_BIN(self), streams, &failure);
  drop_refs();
  if (!started) {
    controller.handle_failure(generation, std::move(failure)); /* tears down, gives up or retries */
    return;
  }
  priv->mode = static_cast<int>(LinkMode::Connecting);
}

/* Control thread: all inputs ended, and the network half has not finished sending within its
 * grace period: removing it lets the bin post EOS with what it has. */
void on_eos_timeout(GstMediamtxSink *self) {
  auto *priv = self->priv;
  priv->eos_timer = 0;
  GST_WARNING_OBJECT(self, "the session did not finish after end of stream: closing it");
  teardown(self, true);
  controller_of(self).finish(gstmtx::ConnectionState::Stopped, "end of stream");
}

void cancel_eos_timer(GstMediamtxSink *self) {
  auto *priv = self->priv;
  if (priv->eos_timer)
    controller_of(self).loop().cancel(priv->eos_timer);
  priv->eos_timer = 0;
}

/* Control thread: what other threads report besides failures (see push_command). */
void handle_command(GstMediamtxSink *self, Command command, unsigned generation) {
  auto *priv = self->priv;
  auto &controller = controller_of(self);
  switch (command) {
  case Command::StreamsChanged: {
    if (controller.finished() || controller.retry_pending() || priv->draining)
      break;
    bool audio_ready;
    {
      std::lock_guard<std::mutex> lk(priv->lock);
      audio_ready = priv->audio.tail != nullptr;
    }
    if (priv->publisher && audio_ready != priv->published_audio) {
      /* RTSP announces every stream up front: a new or removed stream needs a new session. */
      GST_INFO_OBJECT(self, "inputs changed: reconnecting with%s audio", audio_ready ? "" : " no");
      teardown(self);
    }
    if (!priv->publisher)
      try_connect(self);
    break;
  }
  case Command::AllEos:
    if (controller.finished() || priv->draining)
      break;
    if (!priv->publisher) {
      controller.finish(gstmtx::ConnectionState::Stopped, "end of stream");
      break;
    }
    /* the session sends what it has; its EOS (NetworkEos) or the grace period ends it */
    priv->draining = true;
    controller.cancel_retry();
    priv->eos_timer = controller.gate().schedule(kEosGrace, [self] { on_eos_timeout(self); });
    break;
  case Command::NetworkEos:
    if (!priv->publisher || generation != priv->generation || controller.finished())
      break;
    cancel_eos_timer(self);
    GST_INFO_OBJECT(self, "end of stream sent: closing the session");
    teardown(self, true);
    controller.finish(gstmtx::ConnectionState::Stopped, "end of stream");
    break;
  }
}

/* The user-facing failure of an error posted by the network half (rtspclientsink or webrtcbin):
 * refused credentials cannot be fixed by retrying; anything else is worth another attempt. */
gstmtx::Failure failure_from_error(GstMediamtxSink *self, const GError *err, const std::string &debug) {
  const std::string url = gstmtx::redact_url(self->priv->publisher_config.url);
  std::string text = err ? err->message : "unknown error";
  while (!text.empty() && (text.back() == '.' || text.back() == ' '))
    text.pop_back(); /* GStreamer's texts end with a period; ours follows */
  /* rtspclientsink posts "No supported authentication protocol was found" (debug) once the server
   * refused every credential it could offer, or RESOURCE/NOT_AUTHORIZED; its text may carry the
   * 401 itself. */
  const bool unauthorized =
      (err && err->domain == GST_RESOURCE_ERROR && err->code == GST_RESOURCE_ERROR_NOT_AUTHORIZED) ||
      debug.find("authentication protocol") != std::string::npos || text.find("401") != std::string::npos ||
      debug.find("401 Unauthorized") != std::string::npos;
  if (unauthorized) {
    gstmtx::Failure f = gstmtx::Failure::of_kind(gstmtx::FailureKind::Unauthorized,
        "MediaMTX at " + url + " refused the credentials (401): set user-id and user-pw (or user:password@ in the "
        "location) to a user allowed to publish on this path", text + (debug.empty() ? "" : ": " + debug));
    f.http_status = 401;
    return f;
  }
  return gstmtx::Failure::retry("could not publish to " + url + ": " + text +
                                    ". Check that MediaMTX runs and the path accepts publishers",
                                debug);
}

}  // namespace

/* ------------------------------------------------------------------------------------------ */

void push_command(GstMediamtxSink *self, Command command, unsigned generation) {
  controller_of(self).post([self, command, generation] { handle_command(self, command, generation); });
}

void on_network_error(GstMediamtxSink *self, unsigned generation, GstMessage *message) {
  GError *err = nullptr;
  gchar *debug = nullptr;
  gst_message_parse_error(message, &err, &debug);
  gstmtx::Failure failure = failure_from_error(self, err, debug ? debug : "");
  GST_INFO_OBJECT(self, "session %u failed: %s", generation, err ? err->message : "");
  /* Stop feeding the broken session now rather than when the control thread gets to it. */
  if (generation == controller_of(self).current_session())
    self->priv->mode = static_cast<int>(LinkMode::Disconnected);
  g_clear_error(&err);
  g_free(debug);
  controller_of(self).report_failure(generation, std::move(failure));
}

void connection_init(GstMediamtxSink *self) {
  gstmtx::ReconnectController::Hooks hooks;
  hooks.start = [self] { try_connect(self); };
  hooks.teardown = [self](const gstmtx::Failure &) {
    teardown(self);
    if (self->priv->draining) {
      /* the inputs ended while the session was still sending: nothing left to publish */
      cancel_eos_timer(self);
      controller_of(self).finish(gstmtx::ConnectionState::Stopped, "end of stream");
    }
  };
  controller_of(self).set_hooks(std::move(hooks));
}

bool connection_start(GstMediamtxSink *self, const gstmtx::HttpClientConfig &http_config) {
  auto *priv = self->priv;
  auto &controller = controller_of(self);
  controller.prepare();
  bool whip;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    whip = priv->publisher_config.whip;
  }
  /* a new client per run: the TLS settings may have changed in READY */
  priv->http.reset();
  if (whip) {
    priv->http = std::make_unique<gstmtx::HttpClient>(controller.loop(), http_config);
    if (!priv->http->config_error().empty()) {
      GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("%s: check tls-ca-file", priv->http->config_error().c_str()),
                        (nullptr));
      priv->http.reset();
      return false;
    }
  }
  controller.set_transport(whip ? "whip" : "rtsp");
  /* the run is closed: no task runs, the control state is ours */
  priv->draining = false;
  priv->eos_timer = 0;
  priv->published_audio = false;
  controller.start();
  GST_DEBUG_OBJECT(self, "control thread running");
  return true;
}

void connection_stop(GstMediamtxSink *self) {
  /* the retry timer goes with the run; the EOS timer is ours */
  if (!controller_of(self).stop([self] { cancel_eos_timer(self); }))
    return;
  /* here, not on the control thread: WHIP waits for its DELETE (bounded) */
  teardown(self, true);
  GST_DEBUG_OBJECT(self, "control thread stopped");
}

void connection_release(GstMediamtxSink *self) {
  auto &controller = controller_of(self);
  if (controller.has_loop() && controller.loop().on_loop_thread())
    return; /* the application set NULL from a bus handler on this thread: all ends in finalize */
  self->priv->http.reset(); /* on the loop: cancels what is still in flight */
  controller.release();
}

}  // namespace mediamtxsink
