#include "pipeline_helpers.h"

#include <gst/check/gstcheck.h>

#include <cstdlib>

namespace testbed {

std::string x264_rtsp_publisher(const MediamtxServer &server, const std::string &path, int width, int height) {
  return "videotestsrc is-live=true ! video/x-raw,width=" + std::to_string(width) + ",height=" +
         std::to_string(height) +
         ",framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=500 ! "
         "video/x-h264,profile=constrained-baseline ! rtspclientsink protocols=tcp location=" +
         server.rtsp_url(path);
}

std::string rtsp_h264_reader(const MediamtxServer &server, const std::string &path, const std::string &user_agent) {
  /* a path with audio too (a WHIP publisher's Opus): its pad goes to a fakesink, or its first
   * packet before the video pad is linked stops rtspsrc with not-linked */
  return "rtspsrc name=reader latency=0 user-agent=" + user_agent + " location=" + server.rtsp_url(path) +
         " reader. ! application/x-rtp,media=video ! rtph264depay ! h264parse ! avdec_h264 ! fakesink name=sink"
         " reader. ! application/x-rtp,media=audio ! fakesink name=audio-sink async=false";
}

GstStructure *element_stats(GstElement *pipeline, const char *element) {
  GstElement *e = gst_bin_get_by_name(GST_BIN(pipeline), element);
  if (!e)
    return nullptr;
  GstStructure *stats = nullptr;
  g_object_get(e, "stats", &stats, nullptr);
  gst_object_unref(e);
  return stats;
}

std::string stats_string(GstElement *pipeline, const char *element, const char *field) {
  GstStructure *stats = element_stats(pipeline, element);
  const char *value = stats ? gst_structure_get_string(stats, field) : nullptr;
  std::string result = value ? value : "";
  if (stats)
    gst_structure_free(stats);
  return result;
}

guint64 stats_uint64(GstElement *pipeline, const char *element, const char *field) {
  GstStructure *stats = element_stats(pipeline, element);
  guint64 value = 0;
  guint u = 0;
  gint i = 0;
  if (stats && gst_structure_get_uint(stats, field, &u))
    value = u;
  else if (stats && gst_structure_get_int(stats, field, &i))
    value = i > 0 ? static_cast<guint64>(i) : 0;
  else if (stats)
    gst_structure_get_uint64(stats, field, &value);
  if (stats)
    gst_structure_free(stats);
  return value;
}

void tolerate_rtspclientsink_socket_criticals() {
  gst_check_add_log_filter("GLib-GIO", G_LOG_LEVEL_CRITICAL,
                           g_regex_new("assertion 'G_IS_(SOCKET|OUTPUT_STREAM|INPUT_STREAM|IO_STREAM) \\(",
                                       G_REGEX_OPTIMIZE, G_REGEX_MATCH_DEFAULT, nullptr),
                           nullptr, nullptr, nullptr);
}

BufferCounter::~BufferCounter() {
  if (pad_) {
    gst_pad_remove_probe(pad_, probe_id_);
    gst_object_unref(pad_);
  }
}

void BufferCounter::attach(GstPad *pad) {
  pad_ = GST_PAD(gst_object_ref(pad));
  probe_id_ = gst_pad_add_probe(pad_, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER |
                                                                   GST_PAD_PROBE_TYPE_BUFFER_LIST |
                                                                   GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
                                &BufferCounter::probe, this, nullptr);
}

void BufferCounter::attach(GstElement *bin, const char *name, const char *pad_name) {
  GstElement *element = gst_bin_get_by_name(GST_BIN(bin), name);
  g_assert_nonnull(element);
  GstPad *pad = gst_element_get_static_pad(element, pad_name);
  g_assert_nonnull(pad);
  attach(pad);
  gst_object_unref(pad);
  gst_object_unref(element);
}

std::string BufferCounter::caps_name() const {
  std::lock_guard<std::mutex> guard(lock_);
  return caps_name_;
}

GstPadProbeReturn BufferCounter::probe(GstPad *, GstPadProbeInfo *info, gpointer user_data) {
  auto *self = static_cast<BufferCounter *>(user_data);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    self->count_++;
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    self->count_ += static_cast<int>(gst_buffer_list_length(GST_PAD_PROBE_INFO_BUFFER_LIST(info)));
  } else if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_CAPS) {
    GstCaps *caps;
    gst_event_parse_caps(GST_PAD_PROBE_INFO_EVENT(info), &caps);
    const GstStructure *s = gst_caps_get_structure(caps, 0);
    int w = 0, h = 0;
    if (gst_structure_get_int(s, "width", &w) && gst_structure_get_int(s, "height", &h)) {
      self->width_ = w;
      self->height_ = h;
    }
    std::lock_guard<std::mutex> guard(self->lock_);
    self->caps_name_ = gst_structure_get_name(s);
  }
  return GST_PAD_PROBE_OK;
}

BusWatcher::BusWatcher(GstElement *pipeline) : bus_(gst_element_get_bus(pipeline)) {
  gst_bus_set_sync_handler(bus_, &BusWatcher::on_message, this, nullptr);
}

BusWatcher::~BusWatcher() {
  gst_bus_set_sync_handler(bus_, nullptr, nullptr, nullptr);
  gst_object_unref(bus_);
  clear();
}

void BusWatcher::clear() {
  std::lock_guard<std::mutex> guard(lock_);
  for (auto *s : elements_)
    gst_structure_free(s);
  elements_.clear();
  errors_.clear();
  warnings_.clear();
}

void BusWatcher::set_sync_action(std::function<void(GstMessage *)> action) {
  std::lock_guard<std::mutex> guard(lock_);
  action_ = action ? std::make_shared<std::function<void(GstMessage *)>>(std::move(action)) : nullptr;
}

GstBusSyncReply BusWatcher::on_message(GstBus *, GstMessage *msg, gpointer user_data) {
  auto *self = static_cast<BusWatcher *>(user_data);
  std::shared_ptr<std::function<void(GstMessage *)>> action;
  {
    std::lock_guard<std::mutex> guard(self->lock_);
    action = self->action_;
  }
  if (action)
    (*action)(msg);
  switch (GST_MESSAGE_TYPE(msg)) {
  case GST_MESSAGE_ERROR:
  case GST_MESSAGE_WARNING: {
    GError *err = nullptr;
    gchar *debug = nullptr;
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR)
      gst_message_parse_error(msg, &err, &debug);
    else
      gst_message_parse_warning(msg, &err, &debug);
    std::string text = std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(msg))) + ": " + err->message +
                       " (" + (debug ? debug : "") + ")";
    {
      std::lock_guard<std::mutex> guard(self->lock_);
      (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR ? self->errors_ : self->warnings_).push_back(text);
    }
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR)
      g_printerr("bus error: %s\n", text.c_str());
    g_clear_error(&err);
    g_free(debug);
    break;
  }
  case GST_MESSAGE_EOS:
    self->eos_++;
    break;
  case GST_MESSAGE_ELEMENT: {
    const GstStructure *s = gst_message_get_structure(msg);
    if (s) {
      std::lock_guard<std::mutex> guard(self->lock_);
      self->elements_.push_back(gst_structure_copy(s));
    }
    break;
  }
  default:
    break;
  }
  gst_message_unref(msg);
  return GST_BUS_DROP;
}

std::vector<std::string> BusWatcher::errors() const {
  std::lock_guard<std::mutex> guard(lock_);
  return errors_;
}

std::vector<std::string> BusWatcher::warnings() const {
  std::lock_guard<std::mutex> guard(lock_);
  return warnings_;
}

std::string BusWatcher::error_text() const {
  std::string all;
  for (const auto &e : errors())
    all += e + "\n";
  return all;
}

std::vector<GstStructure *> BusWatcher::element_messages(const char *name) const {
  std::lock_guard<std::mutex> guard(lock_);
  std::vector<GstStructure *> out;
  for (auto *s : elements_)
    if (gst_structure_has_name(s, name))
      out.push_back(gst_structure_copy(s));
  return out;
}

int BusWatcher::count_element_messages(const char *name, const char *field, const char *value) const {
  std::lock_guard<std::mutex> guard(lock_);
  int n = 0;
  for (auto *s : elements_) {
    if (!gst_structure_has_name(s, name))
      continue;
    if (field && g_strcmp0(gst_structure_get_string(s, field), value) != 0)
      continue;
    ++n;
  }
  return n;
}

int scaled_ms(int timeout_ms) {
  static const int scale = [] {
    const char *env = g_getenv("TESTBED_TIME_SCALE");
    const int value = env ? atoi(env) : 1;
    return value >= 1 ? value : 1;
  }();
  return timeout_ms * scale;
}

bool wait_until(const std::function<bool()> &cond, int timeout_ms) {
  gint64 deadline = g_get_monotonic_time() + scaled_ms(timeout_ms) * 1000LL;
  while (true) {
    if (cond())
      return true;
    if (g_get_monotonic_time() >= deadline)
      return false;
    g_usleep(20000);
  }
}

bool set_state_and_wait(GstElement *element, GstState state, int timeout_ms) {
  GstStateChangeReturn ret = gst_element_set_state(element, state);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return false;
  if (ret == GST_STATE_CHANGE_NO_PREROLL || ret == GST_STATE_CHANGE_SUCCESS)
    return true;
  ret = gst_element_get_state(element, nullptr, nullptr, scaled_ms(timeout_ms) * GST_MSECOND);
  return ret == GST_STATE_CHANGE_SUCCESS || ret == GST_STATE_CHANGE_NO_PREROLL;
}

GstElement *parse_pipeline(const std::string &description) {
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(description.c_str(), &err);
  if (err) {
    g_printerr("cannot parse '%s': %s\n", description.c_str(), err->message);
    g_clear_error(&err);
  }
  return pipeline;
}

static GstElement *parse_or_fail(const std::string &description) {
  GstElement *pipeline = parse_pipeline(description);
  fail_unless(pipeline != nullptr, "cannot parse %s", description.c_str());
  return pipeline;
}

TestPipeline::TestPipeline(const std::string &description, const char *counted)
    : pipeline(parse_or_fail(description)), bus(pipeline) {
  if (counted)
    frames.attach(pipeline, counted);
}

TestPipeline::~TestPipeline() {
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}

bool play_and_stop_on_status(TestPipeline &pipeline, const char *state, int timeout_ms) {
  struct Stop {
    std::atomic<bool> triggered{false}, done{false};
    std::atomic<GstStateChangeReturn> result{GST_STATE_CHANGE_FAILURE};
  };
  auto stop = std::make_shared<Stop>();
  GstElement *element = pipeline.pipeline;
  pipeline.bus.set_sync_action([stop, element, wanted = std::string(state)](GstMessage *msg) {
    const GstStructure *s = gst_message_get_structure(msg);
    if (GST_MESSAGE_TYPE(msg) != GST_MESSAGE_ELEMENT || !s || !gst_structure_has_name(s, "gst-mediamtx-status") ||
        wanted != GST_STR_NULL(gst_structure_get_string(s, "state")) || stop->triggered.exchange(true))
      return;
    stop->result = gst_element_set_state(element, GST_STATE_NULL);
    stop->done = true;
  });
  gst_element_set_state(element, GST_STATE_PLAYING);
  const bool stopped = wait_until([&] { return stop->done.load(); }, timeout_ms);
  pipeline.bus.set_sync_action(nullptr);
  GstState current = GST_STATE_VOID_PENDING;
  gst_element_get_state(element, &current, nullptr, 0);
  if (!stopped || stop->result != GST_STATE_CHANGE_SUCCESS || current != GST_STATE_NULL) {
    g_printerr("stop on '%s' status: %s, %s, now %s\n", state, stopped ? "stopped" : "never stopped",
               gst_element_state_change_return_get_name(stop->result), gst_element_state_get_name(current));
    return false;
  }
  return true;
}

}  // namespace testbed
