/* gst-mediamtx: mediamtxsink's stable half, built on each input's first caps and kept while the
 * element runs:
 *
 *   ghost "video" -> videoconvert ! encoder ! capsfilter ! h264parse config-interval=-1 (raw)
 *                    h264parse / h265parse config-interval=-1                          (encoded)
 *   ghost "audio" -> audioconvert ! audioresample ! opusenc frame-size=10             (raw)
 *                    opusparse                                                        (Opus)
 *
 * The last src pad of each chain (its "tail") feeds the network half. A probe on each tail drops
 * and counts media while there is no session, so the camera never blocks and never sees an
 * error, and holds video back until a keyframe after every (re)connection (gstmtx::KeyframeGate;
 * the parser puts SPS/PPS in front of it).
 *
 * Threads: streaming threads (caps -> chain building, tail probes, EOS); the application thread
 * (reset_stream at PAUSED->READY, bitrate changes). Fields shared with other threads are under
 * priv->lock or atomic (sink_private.h).
 */
#include <gst/video/video.h>

#include "encoder_selection.h"
#include "sink_private.h"

GST_DEBUG_CATEGORY_EXTERN(gst_mediamtx_sink_debug);
#define GST_CAT_DEFAULT gst_mediamtx_sink_debug

namespace mediamtxsink {

namespace {

Stream &stream_for_pad(GstMediamtxSink *self, GstPad *pad) {
  return pad == self->priv->video.ghost ? self->priv->video : self->priv->audio;
}

/* Called from the streaming thread when a stream reached EOS. */
void on_stream_eos(GstMediamtxSink *self) {
  auto *priv = self->priv;
  bool all;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    all = priv->video.eos && (!priv->audio.ghost || priv->audio.eos);
  }
  if (!all)
    return;
  GST_INFO_OBJECT(self, "all inputs ended");
  g_autoptr(GstPad) pad = gst_element_get_static_pad(priv->eos_anchor, "sink");
  gst_pad_send_event(pad, gst_event_new_stream_start("mediamtxsink-eos-anchor"));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  gst_pad_send_event(pad, gst_event_new_segment(&segment));
  gst_pad_send_event(pad, gst_event_new_eos());
  push_command(self, Command::AllEos);
}

struct TailProbeContext {
  GstMediamtxSink *self;
  bool is_video;
};

/* Called from the streaming thread for everything leaving the stable half. */
GstPadProbeReturn tail_probe(GstPad *pad, GstPadProbeInfo *info, gpointer user_data) {
  auto *ctx = static_cast<TailProbeContext *>(user_data);
  auto *priv = ctx->self->priv;
  const auto mode = static_cast<LinkMode>(priv->mode.load());

  if (info->type & GST_PAD_PROBE_TYPE_QUERY_DOWNSTREAM) {
    /* A serialized query (allocation, drain) waits until the network half has sent everything
     * queued: with a stalled connection that would block the camera. Nothing downstream has
     * anything to offer for them. */
    return GST_QUERY_IS_SERIALIZED(GST_PAD_PROBE_INFO_QUERY(info)) ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
  }
  if (info->type & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
    GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
    if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
      (ctx->is_video ? priv->video : priv->audio).eos = true;
      on_stream_eos(ctx->self);
    }
    /* Sticky events stay stored on the pad and are sent again on the next link. */
    return mode == LinkMode::Disconnected ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
  }

  GstBuffer *first = nullptr;
  guint count = 1;
  gsize bytes = 0;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    first = GST_PAD_PROBE_INFO_BUFFER(info);
    bytes = gst_buffer_get_size(first);
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    count = gst_buffer_list_length(list);
    first = count ? gst_buffer_list_get(list, 0) : nullptr;
    bytes = gst_buffer_list_calculate_size(list);
  }
  /* Not linked: a stream added while connected waits for the control thread's new session
   * (pushing would fail the input with not-linked). */
  if (mode == LinkMode::Disconnected || !gst_pad_is_linked(pad)) {
    if (ctx->is_video)
      priv->frames_dropped += count;
    return GST_PAD_PROBE_DROP;
  }
  /* after a (re)connection: deltas wait for a keyframe (asked upstream at most once a second) */
  if (ctx->is_video && !priv->keyframes.admit(pad, first)) {
    priv->frames_dropped += count;
    return GST_PAD_PROBE_DROP;
  }
  if (ctx->is_video)
    priv->frames_sent += count;
  priv->bytes_sent += bytes;
  return GST_PAD_PROBE_OK;
}

std::string caps_to_string(const GstCaps *caps) {
  g_autofree char *text = gst_caps_to_string(caps);
  return text ? text : "";
}

GstElement *make_child(GstMediamtxSink *self, const char *factory, const char *name) {
  GstElement *element = gst_element_factory_make(factory, name);
  if (!element)
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN,
        ("mediamtxsink needs the %s element: install the GStreamer plugin that provides it", factory), (nullptr));
  return element;
}

/* Builds the raw-video chain: videoconvert ! encoder ! capsfilter ! h264parse. */
bool build_raw_video(GstMediamtxSink *self, Stream &stream, const GstStructure *st,
                            std::vector<GstElement *> &elements) {
  auto *priv = self->priv;
  Settings s;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    s = priv->settings;
  }
  gstmtx::RegistryEncoderProber prober;
  gstmtx::EncoderChoice choice = gstmtx::choose_encoder(s.encoder, prober);
  if (!choice.ok()) {
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN, ("%s", choice.reason.c_str()), (nullptr));
    return false;
  }
  GstElement *encoder = gst_element_factory_make(choice.factory.c_str(), "encoder");
  if (!encoder) {
    GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN,
        ("encoder %s could not be created: use encoder=auto or another H.264 encoder", choice.factory.c_str()),
        (nullptr));
    return false;
  }
  int width = 0, height = 0, fps_n = 0, fps_d = 1;
  gst_structure_get_int(st, "width", &width);
  gst_structure_get_int(st, "height", &height);
  gst_structure_get_fraction(st, "framerate", &fps_n, &fps_d);
  gstmtx::EncoderTuning tuning;
  tuning.bitrate_kbps = s.bitrate ? static_cast<int>(s.bitrate) : gstmtx::default_bitrate_kbps(width, height, fps_n, fps_d);
  tuning.keyframe_interval = gstmtx::keyframe_interval_frames(static_cast<int>(s.keyframe_interval), fps_n, fps_d);
  tuning.profile = s.profile;
  tuning.width = width;
  tuning.height = height;
  tuning.fps_n = fps_n;
  tuning.fps_d = fps_d;
  for (const auto &prop : gstmtx::encoder_settings(choice.factory, tuning)) {
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(encoder), prop.name.c_str()))
      gst_util_set_object_arg(G_OBJECT(encoder), prop.name.c_str(), prop.value.c_str());
  }
  GstElement *convert = gst_element_factory_make("videoconvert", "convert");
  GstElement *filter = gst_element_factory_make("capsfilter", "encoded-caps");
  GstElement *parser = make_child(self, "h264parse", "parse");
  if (!convert || !filter || !parser) {
    for (GstElement *e : {convert, filter, parser, encoder})
      if (e)
        gst_object_unref(gst_object_ref_sink(e));
    if (!convert || !filter)
      GST_ELEMENT_ERROR(self, CORE, MISSING_PLUGIN, ("videoconvert or capsfilter is missing: install "
          "gstreamer1.0-plugins-base"), (nullptr));
    return false;
  }
  g_autoptr(GstCaps) out_caps = gst_caps_from_string(gstmtx::encoder_output_caps(choice.factory, tuning).c_str());
  g_object_set(filter, "caps", out_caps, nullptr);
  g_object_set(parser, "config-interval", -1, nullptr);
  elements = {convert, encoder, filter, parser};
  stream.encoder = encoder;
  frame_thinning_attach(self, encoder, fps_n, fps_d);

  GST_INFO_OBJECT(self, "encoder %s (%s), %d kbit/s, keyframe every %d frames, %dx%d", choice.factory.c_str(),
                  choice.reason.c_str(), tuning.bitrate_kbps, tuning.keyframe_interval, width, height);
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    priv->encoder_name = choice.factory;
    priv->bitrate_kbps = tuning.bitrate_kbps;
  }
  gst_element_post_message(GST_ELEMENT(self),
      gst_message_new_element(GST_OBJECT(self),
          gst_structure_new("mediamtxsink-encoder",
              "encoder", G_TYPE_STRING, choice.factory.c_str(),
              "hardware", G_TYPE_BOOLEAN, gstmtx::is_hardware_encoder(choice.factory),
              "reason", G_TYPE_STRING, choice.reason.c_str(),
              "bitrate", G_TYPE_INT, tuning.bitrate_kbps,
              "keyframe-interval", G_TYPE_INT, tuning.keyframe_interval,
              nullptr)));
  return true;
}

/* Called from the streaming thread on CAPS: builds the stream's chain the first time. */
bool ensure_chain(GstMediamtxSink *self, Stream &stream, GstCaps *caps) {
  auto *priv = self->priv;
  const GstStructure *st = gst_caps_get_structure(caps, 0);
  const char *media = gst_structure_get_name(st);
  const bool raw = g_str_has_prefix(media, "video/x-raw") || g_str_has_prefix(media, "audio/x-raw");
  const InputKind kind = raw ? InputKind::Raw : InputKind::Encoded;

  if (stream.kind != InputKind::None) {
    if (stream.kind != kind) {
      GST_ELEMENT_ERROR(self, STREAM, FORMAT,
          ("the %s input switched between raw and encoded while running: restart the pipeline", stream.is_video ?
              "video" : "audio"),
          ("new caps %s", caps_to_string(caps).c_str()));
      return false;
    }
    return true;
  }

  std::vector<GstElement *> elements;
  if (stream.is_video && raw) {
    if (!build_raw_video(self, stream, st, elements))
      return false;
  } else if (stream.is_video) {
    const bool h265 = g_str_equal(media, "video/x-h265");
    GstElement *parser = make_child(self, h265 ? "h265parse" : "h264parse", "parse");
    if (!parser)
      return false;
    g_object_set(parser, "config-interval", -1, nullptr);
    elements = {parser};
    GST_INFO_OBJECT(self, "%s input: passed through without re-encoding", h265 ? "H.265" : "H.264");
    std::lock_guard<std::mutex> lk(priv->lock);
    priv->encoder_name = "none";
  } else if (raw) {
    GstElement *convert = make_child(self, "audioconvert", "audio-convert");
    GstElement *resample = make_child(self, "audioresample", "audio-resample");
    GstElement *encoder = make_child(self, "opusenc", "audio-encoder");
    if (!convert || !resample || !encoder) {
      for (GstElement *e : {convert, resample, encoder})
        if (e)
          gst_object_unref(gst_object_ref_sink(e));
      return false;
    }
    g_object_set(encoder, "frame-size", 10, nullptr); /* ms: lower latency than the default 20 */
    elements = {convert, resample, encoder};
  } else {
    GstElement *parser = make_child(self, "opusparse", "audio-parse");
    if (!parser)
      return false;
    elements = {parser};
  }

  for (GstElement *e : elements)
    gst_bin_add(GST_BIN(self), e);
  for (std::size_t i = 0; i + 1 < elements.size(); ++i) {
    if (!gst_element_link(elements[i], elements[i + 1])) {
      GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("could not link the %s chain", stream.is_video ? "video" : "audio"),
          ("%s ! %s", GST_OBJECT_NAME(elements[i]), GST_OBJECT_NAME(elements[i + 1])));
      return false;
    }
  }
  for (auto it = elements.rbegin(); it != elements.rend(); ++it)
    gst_element_sync_state_with_parent(*it);

  GstPad *tail = gst_element_get_static_pad(elements.back(), "src");
  auto *ctx = new TailProbeContext{self, stream.is_video};
  gulong probe_id = gst_pad_add_probe(tail,
      static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST |
                                   GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM | GST_PAD_PROBE_TYPE_QUERY_DOWNSTREAM),
      tail_probe, ctx, [](gpointer data) { delete static_cast<TailProbeContext *>(data); });
  g_autoptr(GstPad) head = gst_element_get_static_pad(elements.front(), "sink");
  gst_ghost_pad_set_target(GST_GHOST_PAD(stream.ghost), head);
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    stream.elements = elements;
    stream.tail = tail;
    stream.probe_id = probe_id;
    stream.kind = kind;
  }
  push_command(self, Command::StreamsChanged);
  return true;
}

}  // namespace

void set_encoder_bitrate(GstElement *encoder, int kbps, int max_kbps) {
  GstElementFactory *f = gst_element_get_factory(encoder);
  std::string name = f ? GST_OBJECT_NAME(f) : "";
  if (name == "v4l2h264enc") {
    /* a V4L2 encoder takes its rate as a control: v4l2 sets extra-controls on the open device */
    GstStructure *controls = nullptr;
    g_object_get(encoder, "extra-controls", &controls, nullptr);
    if (!controls)
      controls = gst_structure_new_empty("controls");
    gst_structure_set(controls, "video_bitrate", G_TYPE_INT, kbps * 1000, nullptr);
    g_object_set(encoder, "extra-controls", controls, nullptr);
    gst_structure_free(controls);
    return;
  }
  /* x264enc takes kbit/s, openh264enc bit/s (gstmtx::encoder_rate_settings). A property is set
   * only when its value changes: each set makes x264enc reconfigure at its next frame. */
  for (const auto &prop : gstmtx::encoder_rate_settings(name, kbps, max_kbps)) {
    GParamSpec *spec = g_object_class_find_property(G_OBJECT_GET_CLASS(encoder), prop.name.c_str());
    if (!spec)
      continue;
    GValue now = G_VALUE_INIT;
    g_value_init(&now, spec->value_type);
    g_object_get_property(G_OBJECT(encoder), prop.name.c_str(), &now);
    g_autofree char *text = gst_value_serialize(&now);
    g_value_unset(&now);
    if (!text || prop.value != text)
      gst_util_set_object_arg(G_OBJECT(encoder), prop.name.c_str(), prop.value.c_str());
  }
}

/* Application thread, once the control thread is stopped: removes a stream's chain. */
void reset_stream(GstMediamtxSink *self, Stream &stream) {
  auto *priv = self->priv;
  std::vector<GstElement *> elements;
  GstPad *tail;
  gulong probe_id;
  {
    std::lock_guard<std::mutex> lk(priv->lock);
    elements.swap(stream.elements);
    tail = stream.tail;
    stream.tail = nullptr;
    probe_id = stream.probe_id;
    stream.probe_id = 0;
    stream.kind = InputKind::None;
    stream.encoder = nullptr;
    stream.eos = false;
  }
  if (stream.ghost)
    gst_ghost_pad_set_target(GST_GHOST_PAD(stream.ghost), nullptr);
  if (tail) {
    if (probe_id)
      gst_pad_remove_probe(tail, probe_id);
    gst_object_unref(tail);
  }
  for (GstElement *e : elements) {
    gst_element_set_state(e, GST_STATE_NULL);
    gst_bin_remove(GST_BIN(self), e);
  }
}

gboolean input_pad_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_MEDIAMTX_SINK(parent);
  Stream &stream = stream_for_pad(self, pad);
  if (GST_EVENT_TYPE(event) == GST_EVENT_CAPS) {
    GstCaps *caps;
    gst_event_parse_caps(event, &caps);
    if (!ensure_chain(self, stream, caps)) {
      gst_event_unref(event);
      return FALSE;
    }
  } else if (GST_EVENT_TYPE(event) == GST_EVENT_EOS && stream.kind == InputKind::None) {
    /* ended before any caps: nothing to publish on this input */
    stream.eos = true;
    on_stream_eos(self);
    gst_event_unref(event);
    return TRUE;
  }
  return gst_pad_event_default(pad, parent, event);
}

/* Before the chain exists (no caps yet) the ghost pad has no target: answer from the template,
 * raw formats the encoders take natively first. */
gboolean input_pad_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  g_autoptr(GstPad) target = gst_ghost_pad_get_target(GST_GHOST_PAD(pad));
  if (target)
    return gst_pad_query_default(pad, parent, query);
  switch (GST_QUERY_TYPE(query)) {
  case GST_QUERY_CAPS: {
    GstCaps *filter;
    gst_query_parse_caps(query, &filter);
    g_autoptr(GstCaps) templ = gst_pad_get_pad_template_caps(pad);
    GstCaps *result = filter ? gst_caps_intersect_full(templ, filter, GST_CAPS_INTERSECT_FIRST) : gst_caps_ref(templ);
    gst_query_set_caps_result(query, result);
    gst_caps_unref(result);
    return TRUE;
  }
  case GST_QUERY_ACCEPT_CAPS: {
    GstCaps *caps;
    gst_query_parse_accept_caps(query, &caps);
    g_autoptr(GstCaps) templ = gst_pad_get_pad_template_caps(pad);
    gst_query_set_accept_caps_result(query, gst_caps_is_subset(caps, templ));
    return TRUE;
  }
  default:
    return FALSE;
  }
}

}  // namespace mediamtxsink
