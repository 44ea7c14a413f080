/* gst-mediamtx: mediamtxsink's keyframe-on-join.
 *
 * MediaMTX drops a viewer's keyframe requests and caches no GOP for WebRTC readers: a viewer
 * joining mid-GOP waits for the publisher's next keyframe (up to keyframe-interval). While the
 * element runs, a gstmtx::ReaderWatch polls the path's readers through MediaMTX's control API
 * (api-location, the publishing credentials) and, when a reader joins (a WebRTC reader: once its
 * peer connection is up), a force-key-unit event with all headers goes up the video chain: the
 * encoder makes an IDR, h264parse (config-interval=-1) puts SPS/PPS in front of it. At most one
 * forced keyframe per kMinGap: readers joining together share one.
 *
 * Without access to the API it posts one warning saying how to grant it, and the element
 * publishes as without keyframe-on-join.
 *
 * Threads: created and destroyed on the application thread (READY<->PAUSED); everything else
 * runs on its own EventLoop thread ("mtx-readers"), never on the control thread nor a streaming
 * thread. The force-key-unit event is sent from that thread into the parser's src pad.
 */
#include <gst/video/video.h>

#include <thread>

#include "keyframe_gate.h"
#include "mediamtx_url.h"
#include "reader_watch.h"
#include "sink_private.h"

GST_DEBUG_CATEGORY_EXTERN(gst_mediamtx_sink_debug);
#define GST_CAT_DEFAULT gst_mediamtx_sink_debug

namespace mediamtxsink {

namespace {
constexpr std::chrono::milliseconds kMinGap{500};
}  // namespace

class KeyframeOnJoin {
public:
  KeyframeOnJoin(GstMediamtxSink *self, gstmtx::ReaderWatch::Config config, const gstmtx::HttpClientConfig &http_config)
      : self_(self), loop_("mtx-readers") {
    loop_.run_sync([&] {
      http_ = std::make_unique<gstmtx::HttpClient>(loop_, http_config);
      gstmtx::ReaderWatch::Events events;
      events.reader_ready = [this](const gstmtx::PathReader &reader) { on_reader_ready(reader); };
      events.unavailable = [this](gstmtx::ApiAnswer answer, const std::string &text) { on_unavailable(answer, text); };
      watch_ = std::make_unique<gstmtx::ReaderWatch>(loop_, *http_, std::move(config), std::move(events));
      watch_->start();
    });
  }

  /* Any thread but its own: nothing of it runs once this returns. Touches no element state. */
  ~KeyframeOnJoin() {
    loop_.run_sync([this] {
      if (timer_)
        loop_.cancel(timer_);
      timer_ = 0;
      const auto cost = watch_->cpu_per_poll();
      GST_DEBUG("keyframe-on-join: %u API requests, %u keyframes forced; path polled every %d ms (%.1f us CPU per poll)",
                watch_->requests(), forced_, static_cast<int>(watch_->interval().count()),
                cost ? static_cast<double>(cost->count()) / 1e3 : -1.0);
      watch_.reset();
      http_->cancel_all();
      http_.reset();
    });
  }

  bool on_own_thread() const { return loop_.on_loop_thread(); }

private:
  /* loop thread */
  void on_reader_ready(const gstmtx::PathReader &reader) {
    GST_INFO_OBJECT(self_, "reader %s %s joined: forcing a keyframe", reader.type.c_str(), reader.id.c_str());
    last_reader_ = reader;
    auto delay = limit_.request(std::chrono::steady_clock::now());
    if (!delay)
      return; /* one is already due: this reader gets it too */
    if (delay->count() == 0) {
      force();
      return;
    }
    timer_ = loop_.schedule(*delay, [this] {
      timer_ = 0;
      force();
    });
  }

  /* loop thread */
  void force() {
    limit_.done(std::chrono::steady_clock::now());
    auto *priv = self_->priv;
    GstPad *tail = nullptr;
    {
      std::lock_guard<std::mutex> lk(priv->lock);
      if (priv->video.tail)
        tail = GST_PAD(gst_object_ref(priv->video.tail));
    }
    if (!tail)
      return; /* no video chain yet: the first frame is a keyframe anyway */
    gstmtx::KeyframeGate::request(tail);
    gst_object_unref(tail);
    ++forced_;
    gst_element_post_message(GST_ELEMENT(self_),
        gst_message_new_element(GST_OBJECT(self_),
            gst_structure_new("mediamtxsink-keyframe-forced",
                "reason", G_TYPE_STRING, "reader-joined",
                "reader-type", G_TYPE_STRING, last_reader_.type.c_str(),
                "reader-id", G_TYPE_STRING, last_reader_.id.c_str(),
                nullptr)));
  }

  /* loop thread, once per run */
  void on_unavailable(gstmtx::ApiAnswer answer, const std::string &text) {
    GST_WARNING_OBJECT(self_, "%s", text.c_str());
    switch (answer) {
    case gstmtx::ApiAnswer::Unauthorized:
      GST_ELEMENT_WARNING(self_, RESOURCE, NOT_AUTHORIZED, ("%s", text.c_str()), (nullptr));
      break;
    case gstmtx::ApiAnswer::Unreachable:
      GST_ELEMENT_WARNING(self_, RESOURCE, OPEN_READ, ("%s", text.c_str()), (nullptr));
      break;
    default:
      GST_ELEMENT_WARNING(self_, RESOURCE, SETTINGS, ("%s", text.c_str()), (nullptr));
      break;
    }
  }

  GstMediamtxSink *self_;
  gstmtx::EventLoop loop_;
  /* loop thread only */
  std::unique_ptr<gstmtx::HttpClient> http_;
  std::unique_ptr<gstmtx::ReaderWatch> watch_;
  gstmtx::RateLimit limit_{kMinGap};
  guint timer_ = 0;
  unsigned forced_ = 0;
  gstmtx::PathReader last_reader_;
};

void keyframe_on_join_start(GstMediamtxSink *self, const gstmtx::HttpClientConfig &http_config) {
  auto *priv = self->priv;
  gstmtx::ReaderWatch::Config config;
  PublisherConfig publisher;
  std::string api_location;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    if (!priv->settings.keyframe_on_join)
      return;
    publisher = priv->publisher_config;
    api_location = priv->settings.api_location;
    config.interval = std::chrono::milliseconds{priv->settings.api_poll_interval};
  }
  auto endpoint = publisher.whip
                      ? gstmtx::parse_webrtc_http_location(publisher.url, gstmtx::HttpEndpointKind::Whip)
                      : gstmtx::parse_rtsp_location(publisher.url);
  if (!endpoint || endpoint->stream_path.empty())
    return; /* prepare() has checked the location: nothing to watch */
  config.api_location = api_location.empty() ? gstmtx::default_api_location(endpoint->host) : api_location;
  config.path = endpoint->stream_path;
  config.user = publisher.user;
  gstmtx::add_authorization(config.auth, publisher.user, publisher.password, publisher.auth_token);
  GST_INFO_OBJECT(self, "keyframe-on-join: watching the readers of '%s' at %s every %s", config.path.c_str(),
                  gstmtx::redact_url(config.api_location).c_str(),
                  config.interval.count() > 0 ? (std::to_string(config.interval.count()) + " ms").c_str()
                                              : "interval chosen from the poll's CPU cost");
  auto watch = std::make_shared<KeyframeOnJoin>(self, std::move(config), http_config);
  std::lock_guard<std::mutex> lk(priv->lock);
  priv->keyframe_on_join = std::move(watch);
}

void keyframe_on_join_stop(GstMediamtxSink *self) {
  std::shared_ptr<KeyframeOnJoin> watch;
  {
    std::lock_guard<std::mutex> lk(self->priv->lock);
    watch.swap(self->priv->keyframe_on_join);
  }
  if (watch && watch->on_own_thread()) {
    /* The application stops the element from a synchronous bus handler, on the watch's thread
     * (our warning or keyframe message): that thread cannot wait for itself. Another one ends it
     * once the current task returns (its last use of the element is the message it posts). */
    std::thread([w = std::move(watch)]() mutable { w.reset(); }).detach();
    return;
  }
  watch.reset(); /* outside the lock: waits for its thread */
}

}  // namespace mediamtxsink
