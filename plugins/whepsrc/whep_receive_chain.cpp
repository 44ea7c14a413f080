/* gst-mediamtx: whepsrc's receive chains and output pads.
 *
 * For every stream webrtcbin exposes: depayloader ! [parser] ! capsfilter ! [decoder] in a bin,
 * linked to the session's webrtcbin pad, its output behind one of the element's ghost pads
 * (`video_%u`, `audio_%u`), which live for the element's life and are re-targeted by every new
 * session (and by the HLS fallback). A probe after the capsfilter counts media for stats, feeds the
 * no-media watchdog, tells the controller the session delivered, and holds video back until a
 * keyframe (gstmtx::KeyframeGate).
 */
#include "whepsrc_private.h"

#include "live_schedule.h"

namespace whepsrc {

/* What the media probe of one chain knows. */
struct MediaProbe {
  MediaProbe(GstMtxWhepSrc *self_, bool is_video_, unsigned session_)
      : self(self_), is_video(is_video_), session(session_) {}
  GstMtxWhepSrc *self;
  bool is_video;
  unsigned session;         /* the controller's session the chain belongs to */
  gstmtx::KeyframeGate gate;
  bool flowing = false;     /* [streaming thread] the chain's first buffer was seen */
};

/* Counts media for stats and the no-media watchdog, tells the controller the session delivered,
 * and drops video delta units until the session's first keyframe (asking upstream for one through
 * the depayloader, an RTCP PLI) so decoders and muxers start clean. Streaming thread. */
static GstPadProbeReturn media_probe(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *probe = static_cast<MediaProbe *>(data);
  GstWhepSrcPrivate *priv = probe->self->priv;
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  priv->bytes += gst_buffer_get_size(buffer);
  if (probe->session == priv->controller.current_session()) {
    priv->media_watchdog.note_output(gstmtx::StallWatchdog::Clock::now());
    priv->media_seen = true;
    priv->controller.delivered(probe->session);
    if (!probe->flowing) {
      probe->flowing = true;
      /* from the first media on, a server that goes quiet is gone (3 s), not only from its second
       * RTCP report: a server killed right after a reconnection is noticed as fast */
      GstMtxWhepSrc *self = probe->self;
      const unsigned session = probe->session;
      priv->controller.post([self, session] {
        GstWhepSrcPrivate *p = self->priv;
        if (session == p->controller.current_session() && p->peer)
          p->peer->expect_rtcp();
      });
    }
  }
  if (!probe->is_video)
    return GST_PAD_PROBE_OK;
  const bool waiting = probe->gate.is_closed();
  if (!probe->gate.admit(pad, buffer))
    return GST_PAD_PROBE_DROP;
  if (waiting) {
    GST_DEBUG_OBJECT(probe->self, "first keyframe of session %u", probe->session);
    std::lock_guard<std::mutex> guard(priv->lock);
    if (priv->first_frame_latency_us < 0 && priv->attempt_started_us > 0)
      priv->first_frame_latency_us = g_get_monotonic_time() - priv->attempt_started_us;
  }
  priv->frames++;
  return GST_PAD_PROBE_OK;
}

/* Downstream of a ghost pad: one stream-start for the element's life, never a flush or an EOS the
 * application did not ask for. Called from the streaming thread. */
static GstPadProbeReturn ghost_event_probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *out = static_cast<Output *>(data);
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_STREAM_START:
    if (out->sent_stream_start)
      return GST_PAD_PROBE_DROP;
    out->sent_stream_start = true;
    return GST_PAD_PROBE_OK;
  case GST_EVENT_EOS:
    return out->self->priv->eos_requested ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
  case GST_EVENT_FLUSH_START:
  case GST_EVENT_FLUSH_STOP:
    return GST_PAD_PROBE_DROP;
  default:
    return GST_PAD_PROBE_OK;
  }
}

void install_output_event_probe(Output *out) {
  gst_pad_add_probe(out->ghost,
                    static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM | GST_PAD_PROBE_TYPE_EVENT_FLUSH),
                    ghost_event_probe, out, nullptr);
}

/* Builds depayloader ! [parser] ! [decoder] for `codec` into a bin with ghost pads "sink"/"src".
 * Called from the streaming thread. */
static GstElement *build_receive_chain(GstMtxWhepSrc *self, const gstmtx::RtpCodec &codec, bool decode,
                                       unsigned session, std::string *error) {
  GstElement *chain = gst_bin_new(nullptr);
  GstElement *depay = gst_element_factory_make(codec.depayloader, nullptr);
  if (!depay) {
    *error = std::string("element ") + codec.depayloader + " is missing (install gstreamer1.0-plugins-good/bad)";
    gst_object_unref(chain);
    return nullptr;
  }
  gst_bin_add(GST_BIN(chain), depay);
  GstElement *last = depay;
  if (codec.parser) {
    GstElement *parser = gst_element_factory_make(codec.parser, nullptr);
    if (!parser) {
      *error = std::string("element ") + codec.parser + " is missing";
      gst_object_unref(chain);
      return nullptr;
    }
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(parser), "config-interval"))
      g_object_set(parser, "config-interval", -1, nullptr);
    gst_bin_add(GST_BIN(chain), parser);
    gst_element_link(last, parser);
    last = parser;
  }
  GstElement *filter = gst_element_factory_make("capsfilter", nullptr);
  g_autoptr(GstCaps) encoded = gst_caps_from_string(codec.encoded_caps);
  g_object_set(filter, "caps", encoded, nullptr);
  gst_bin_add(GST_BIN(chain), filter);
  gst_element_link(last, filter);
  last = filter;

  const bool is_video = std::string(codec.media) == "video";
  GstPad *gate_pad = gst_element_get_static_pad(last, "src");
  auto *probe = new MediaProbe(self, is_video, session);
  if (is_video)
    probe->gate.close(); /* the first delta asks upstream for a keyframe */
  gst_pad_add_probe(gate_pad, GST_PAD_PROBE_TYPE_BUFFER, media_probe, probe,
                    [](gpointer data) { delete static_cast<MediaProbe *>(data); });
  gst_object_unref(gate_pad);

  if (decode) {
    GstElementFactory *factory = gstmtx::best_decoder_for(encoded);
    GstElement *decoder = factory ? gst_element_factory_create(factory, nullptr) : nullptr;
    if (factory)
      gst_object_unref(factory);
    if (!decoder) {
      *error = std::string("no decoder installed for ") + codec.name +
               " (install gstreamer1.0-libav or plugins-good/bad), or use decode=false";
      gst_object_unref(chain);
      return nullptr;
    }
    /* low latency: slice threads only (frame threads hold frames back), never output corrupt
     * pictures */
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(decoder), "thread-type"))
      gst_util_set_object_arg(G_OBJECT(decoder), "thread-type", "slice");
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(decoder), "output-corrupt"))
      g_object_set(decoder, "output-corrupt", FALSE, nullptr);
    /* after a stall GstVideoDecoder can time frames ahead of its input (live_schedule.h) */
    gstmtx::clamp_to_newest_input(decoder);
    gst_bin_add(GST_BIN(chain), decoder);
    gst_element_link(last, decoder);
    last = decoder;
  }
  GstPad *sink = gst_element_get_static_pad(depay, "sink");
  GstPad *src = gst_element_get_static_pad(last, "src");
  gst_element_add_pad(chain, gst_ghost_pad_new("sink", sink));
  gst_element_add_pad(chain, gst_ghost_pad_new("src", src));
  gst_object_unref(sink);
  gst_object_unref(src);
  return chain;
}

/* Points this media's ghost pad (made on first use) at `src`, the output of `chain`. From WebRTC
 * (`webrtc` and `generation` identify the session, which must still be current) or from the HLS
 * fallback (`webrtc` nullptr). A WebRTC stream takes a pad back from HLS. Streaming thread. */
bool attach_output(GstMtxWhepSrc *self, const std::string &media, GstElement *chain, GstPad *src, bool from_hls,
                          GstElement *webrtc, guint generation) {
  GstWhepSrcPrivate *priv = self->priv;
  Output *target = nullptr;
  bool is_new = false;
  bool all_exposed = false;
  bool took_from_hls = false;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (!from_hls && (webrtc != priv->webrtc || generation != priv->generation))
      return false;
    for (auto &out : priv->outputs) {
      if (out->media != media)
        continue;
      const bool free_for_webrtc = !from_hls && (out->from_hls || out->generation != generation);
      const bool free_for_hls = from_hls && out->chain == nullptr;
      if (free_for_webrtc || free_for_hls) {
        target = out.get();
        break;
      }
    }
    if (!target) {
      auto out = std::make_unique<Output>();
      out->self = self;
      out->media = media;
      int index = 0;
      for (auto &o : priv->outputs)
        if (o->media == media)
          ++index;
      std::string name = media + "_" + std::to_string(index);
      GstPadTemplate *templ = gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(self),
                                                                 media == "video" ? "video_%u" : "audio_%u");
      out->ghost = gst_ghost_pad_new_no_target_from_template(name.c_str(), templ);
      install_output_event_probe(out.get());
      target = out.get();
      priv->outputs.push_back(std::move(out));
      is_new = true;
    }
    took_from_hls = !from_hls && target->from_hls;
    target->from_hls = from_hls;
    if (!from_hls)
      target->generation = generation;
    target->chain = chain;
    if (!from_hls) {
      priv->exposed_this_generation++;
      all_exposed = !priv->no_more_pads_sent && priv->expected_streams > 0 &&
                    priv->exposed_this_generation >= priv->expected_streams;
    } else {
      all_exposed = !priv->no_more_pads_sent;
    }
    if (all_exposed)
      priv->no_more_pads_sent = true;
  }
  connect_output(self, target, src);
  if (took_from_hls)
    priv->controller.post([self] { stop_hls(self); });
  std::lock_guard<std::mutex> exposing(priv->expose_lock);
  if (is_new) {
    gst_pad_set_active(target->ghost, TRUE);
    gst_element_add_pad(GST_ELEMENT(self), target->ghost);
    GST_INFO_OBJECT(self, "exposed %s (%s)", GST_PAD_NAME(target->ghost), from_hls ? "HLS" : "WebRTC");
  } else {
    GST_INFO_OBJECT(self, "re-targeted %s to %s", GST_PAD_NAME(target->ghost), from_hls ? "HLS" : "a new WebRTC session");
  }
  if (all_exposed) {
    gst_element_no_more_pads(GST_ELEMENT(self));
  } else if (is_new) {
    /* a stream the answer announced may never send (MediaMTX's silent audio track for a stream
     * without audio): do not leave playbin waiting for it */
    priv->controller.gate().schedule(gstmtx::Millis(1500), [self] {
      bool send = false;
      {
        std::lock_guard<std::mutex> guard(self->priv->lock);
        send = !self->priv->no_more_pads_sent && !self->priv->outputs.empty();
        self->priv->no_more_pads_sent = true;
      }
      if (send) {
        std::lock_guard<std::mutex> exposing(self->priv->expose_lock);
        gst_element_no_more_pads(GST_ELEMENT(self));
      }
    });
  }
  return true;
}

/* webrtcbin exposed a stream: build its chain and (re)target our ghost pad.
 * Called from webrtcbin's streaming thread. */
void on_webrtc_pad_added(GstElement *webrtc, GstPad *pad, gpointer data) {
  GstMtxWhepSrc *self = GST_WHEP_SRC(data);
  GstWhepSrcPrivate *priv = self->priv;
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC)
    return;
  g_autoptr(GstCaps) caps = gst_pad_get_current_caps(pad);
  if (!caps)
    caps = gst_pad_query_caps(pad, nullptr);
  const GstStructure *s = caps && !gst_caps_is_empty(caps) ? gst_caps_get_structure(caps, 0) : nullptr;
  const char *encoding = s ? gst_structure_get_string(s, "encoding-name") : nullptr;
  const gstmtx::RtpCodec *codec = encoding ? gstmtx::find_rtp_codec(encoding) : nullptr;
  bool decode;
  guint generation;
  const unsigned session = priv->controller.current_session();
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (webrtc != priv->webrtc)
      return; /* a torn-down session */
    decode = priv->settings.decode;
    generation = priv->generation;
  }
  if (!codec) {
    GST_WARNING_OBJECT(self, "ignoring a stream with unsupported caps %" GST_PTR_FORMAT, static_cast<void *>(caps));
    return;
  }
  std::string error;
  GstElement *chain = build_receive_chain(self, *codec, decode, session, &error);
  if (!chain) {
    priv->controller.report_failure(session, gstmtx::Failure::of_kind(gstmtx::FailureKind::MissingPlugin,
                                                                      std::string("Cannot receive ") + codec->name +
                                                                          ": " + error));
    return;
  }
  gst_bin_add(GST_BIN(self), chain);
  gst_element_sync_state_with_parent(chain);
  GstPad *chain_sink = gst_element_get_static_pad(chain, "sink");
  GstPadLinkReturn link = gst_pad_link(pad, chain_sink);
  gst_object_unref(chain_sink);
  if (link != GST_PAD_LINK_OK) {
    GST_WARNING_OBJECT(self, "cannot link webrtcbin pad to the %s chain: %d", codec->name, link);
    gst_element_set_state(chain, GST_STATE_NULL);
    gst_bin_remove(GST_BIN(self), chain);
    return;
  }
  GstPad *chain_src = gst_element_get_static_pad(chain, "src");
  if (!attach_output(self, codec->media, chain, chain_src, false, webrtc, generation))
    GST_DEBUG_OBJECT(self, "session torn down while its %s stream appeared", codec->name);
  gst_object_unref(chain_src);
}

}  // namespace whepsrc
