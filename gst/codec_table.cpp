#include "codec_table.h"

#include <algorithm>

#include "library_preload.h"

namespace gstmtx {

const std::vector<RtpCodec> &rtp_codecs() {
  /* Never destroyed: an element's loop thread may still read it while exit() runs the static
   * destructors (a use-after-free Valgrind found at process exit with a whepsrc retrying). */
  static const auto *codecs = new std::vector<RtpCodec>{
      {"H264", "video", 90000, "rtph264depay", "rtph264pay", "h264parse",
       "video/x-h264,stream-format=byte-stream,alignment=au; video/x-h264,stream-format=avc,alignment=au",
       "packetization-mode=(string)1,profile-level-id=(string)42e01f,level-asymmetry-allowed=(string)1"},
      {"VP8", "video", 90000, "rtpvp8depay", "rtpvp8pay", nullptr, "video/x-vp8", ""},
      {"VP9", "video", 90000, "rtpvp9depay", "rtpvp9pay", nullptr, "video/x-vp9", ""},
      {"AV1", "video", 90000, "rtpav1depay", "rtpav1pay", "av1parse",
       "video/x-av1,stream-format=obu-stream,alignment=tu", ""},
      {"H265", "video", 90000, "rtph265depay", "rtph265pay", "h265parse",
       "video/x-h265,stream-format=byte-stream,alignment=au; video/x-h265,stream-format=hvc1,alignment=au", ""},
      {"OPUS", "audio", 48000, "rtpopusdepay", "rtpopuspay", "opusparse", "audio/x-opus", ""},
      {"G722", "audio", 8000, "rtpg722depay", "rtpg722pay", nullptr, "audio/G722", "", 9},
      {"PCMU", "audio", 8000, "rtppcmudepay", "rtppcmupay", nullptr, "audio/x-mulaw", "", 0},
      {"PCMA", "audio", 8000, "rtppcmadepay", "rtppcmapay", nullptr, "audio/x-alaw", "", 8},
  };
  return *codecs;
}

const RtpCodec *find_rtp_codec(const std::string &name) {
  for (const auto &codec : rtp_codecs())
    if (g_ascii_strcasecmp(name.c_str(), codec.name) == 0)
      return &codec;
  return nullptr;
}

std::vector<const RtpCodec *> parse_codec_list(const std::string &list, const std::string &media,
                                               std::vector<std::string> *unknown) {
  std::vector<const RtpCodec *> out;
  g_auto(GStrv) names = g_strsplit_set(list.c_str(), ", ;", -1);
  for (char **n = names; n && *n; ++n) {
    if (!**n)
      continue;
    const RtpCodec *codec = find_rtp_codec(*n);
    if (!codec) {
      if (unknown)
        unknown->push_back(*n);
      continue;
    }
    if (media == codec->media && std::find(out.begin(), out.end(), codec) == out.end())
      out.push_back(codec);
  }
  return out;
}

static bool factory_exists(const char *name) {
  if (!name)
    return true;
  GstElementFactory *factory = gst_element_factory_find(name);
  if (!factory)
    return false;
  gst_object_unref(factory);
  return true;
}

bool rtp_codec_receivable(const RtpCodec &codec) {
  return factory_exists(codec.depayloader) && factory_exists(codec.parser);
}

GstCaps *rtp_codecs_offer_caps(const std::vector<const RtpCodec *> &codecs, int first_payload_type) {
  GstCaps *caps = gst_caps_new_empty();
  int pt = first_payload_type;
  for (const RtpCodec *codec : codecs) {
    const int payload = codec->static_payload_type >= 0 ? codec->static_payload_type : pt++;
    std::string text = std::string("application/x-rtp,media=") + codec->media + ",encoding-name=" + codec->name +
                       ",clock-rate=" + std::to_string(codec->clock_rate) + ",payload=" + std::to_string(payload);
    if (std::string(codec->media) == "video")
      text += ",rtcp-fb-nack=(boolean)true,rtcp-fb-nack-pli=(boolean)true,rtcp-fb-ccm-fir=(boolean)true";
    if (std::string(codec->name) == "OPUS")
      text += ",encoding-params=(string)2,minptime=(string)10,useinbandfec=(string)1";
    if (*codec->extra_rtp_caps)
      text += std::string(",") + codec->extra_rtp_caps;
    GstCaps *one = gst_caps_from_string(text.c_str());
    if (one)
      gst_caps_append(caps, one);
  }
  return caps;
}

GstElementFactory *best_decoder_for(const GstCaps *caps) {
  if (!caps || gst_caps_is_empty(caps))
    return nullptr;
  /* WebRTC VP8/VP9 carries no alpha: say so, or vp8alphadecodebin (high rank, alpha streams only)
   * would be chosen */
  g_autoptr(GstCaps) preferred = gst_caps_copy_nth(caps, 0);
  GstStructure *s = gst_caps_get_structure(preferred, 0);
  if (gst_structure_has_name(s, "video/x-vp8") || gst_structure_has_name(s, "video/x-vp9"))
    gst_structure_set(s, "codec-alpha", G_TYPE_BOOLEAN, FALSE, nullptr);
  GList *decoders = gst_element_factory_list_get_elements(GST_ELEMENT_FACTORY_TYPE_DECODER, GST_RANK_MARGINAL);
  GList *usable = gst_element_factory_list_filter(decoders, preferred, GST_PAD_SINK, FALSE);
  usable = g_list_sort(usable, gst_plugin_feature_rank_compare_func);
  GstElementFactory *best = usable ? GST_ELEMENT_FACTORY(gst_object_ref(usable->data)) : nullptr;
  gst_plugin_feature_list_free(usable);
  gst_plugin_feature_list_free(decoders);
  return best;
}

/* Loads `factory`'s plugin if it is not loaded: its libraries first, one at a time
 * (library_preload.h), then the plugin itself. */
static bool load_factory(GstElementFactory *factory) {
  GstPluginFeature *feature = GST_PLUGIN_FEATURE(factory);
  if (GstPlugin *plugin = gst_plugin_feature_get_plugin(feature)) {
    const gchar *file = gst_plugin_get_filename(plugin);
    if (!gst_plugin_is_loaded(plugin) && file)
      preload_library_dependencies(file);
    gst_object_unref(plugin);
  }
  GstPluginFeature *loaded = gst_plugin_feature_load(feature);
  if (loaded)
    gst_object_unref(loaded);
  return loaded != nullptr;
}

int load_element_plugins(const std::vector<const char *> &elements) {
  int loaded = 0;
  for (const char *name : elements)
    if (GstElementFactory *f = gst_element_factory_find(name)) {
      loaded += load_factory(f);
      gst_object_unref(f);
    }
  return loaded;
}

int load_receive_plugins(const RtpCodec &codec, bool decode) {
  std::vector<GstElementFactory *> factories;
  for (const char *name : {codec.depayloader, codec.parser})
    if (name)
      if (GstElementFactory *f = gst_element_factory_find(name))
        factories.push_back(f);
  if (decode) {
    g_autoptr(GstCaps) encoded = gst_caps_from_string(codec.encoded_caps);
    if (GstElementFactory *f = best_decoder_for(encoded))
      factories.push_back(f);
  }
  int loaded = 0;
  for (GstElementFactory *f : factories) {
    loaded += load_factory(f);
    gst_object_unref(f);
  }
  return loaded;
}

}  // namespace gstmtx
