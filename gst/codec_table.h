/* gst-mediamtx: RTP codecs the elements speak, with the elements that (de)payload, parse and
 * decode them. Used to build offers (codec preferences), receive chains and WHIP send chains.
 */
#pragma once

#include <gst/gst.h>

#include <string>
#include <vector>

namespace gstmtx {

struct RtpCodec {
  const char *name;            /* user-facing and SDP encoding name: H264, H265, VP8, VP9, AV1, OPUS */
  const char *media;           /* "video" or "audio" */
  int clock_rate;
  const char *depayloader;
  const char *payloader;
  const char *parser;          /* may be nullptr */
  const char *encoded_caps;    /* what the receive chain outputs with decode=false, preferred first
                                  (H.264 byte-stream, or avc when downstream is a muxer that wants it) */
  const char *extra_rtp_caps;  /* fmtp-style fields for the offer, may be "" */
  int static_payload_type = -1; /* RFC 3551 static type (PCMU 0, PCMA 8, G722 9), else dynamic */
};

/* All known codecs, video first, in default preference order. */
const std::vector<RtpCodec> &rtp_codecs();
/* Case-insensitive lookup by name; nullptr when unknown. */
const RtpCodec *find_rtp_codec(const std::string &name);
/* Parses "H264,VP8" into codecs of `media`, keeping the order; unknown names go to *unknown. */
std::vector<const RtpCodec *> parse_codec_list(const std::string &list, const std::string &media,
                                               std::vector<std::string> *unknown = nullptr);
/* Whether depayloader (and parser) for this codec are installed. */
bool rtp_codec_receivable(const RtpCodec &codec);
/* Default codec preferences. Audio includes G.711/G.722: MediaMTX adds a silent PCMU track to
 * streams without audio, and an offer that cannot take it is refused. */
inline constexpr const char *kDefaultVideoCodecs = "H264,VP8,VP9,AV1,H265";
inline constexpr const char *kDefaultAudioCodecs = "OPUS,G722,PCMU,PCMA";

/* Offer caps (transfer full) for these codecs, one structure per codec, payload types from
 * `first_payload_type` (keep them distinct across bundled m-lines: video from 96, audio from 111),
 * with NACK/PLI feedback on video. */
GstCaps *rtp_codecs_offer_caps(const std::vector<const RtpCodec *> &codecs, int first_payload_type);
inline constexpr int kFirstVideoPayloadType = 96;
inline constexpr int kFirstAudioPayloadType = 111;
/* The highest-ranked decoder installed for `caps`, or nullptr (transfer full). */
GstElementFactory *best_decoder_for(const GstCaps *caps);
/* Loads the plugins of `codec`'s receive chain (depayloader, parser and, with `decode`, the best
 * decoder) into the process; returns how many of these elements are now loaded. A receive chain
 * is built on the streaming thread that carries the first packets, which wait for it: loading
 * libav there took 40-150 ms of a fresh process's first picture (docs/benchmarks.md). A plugin's
 * libraries are loaded one at a time before it (library_preload.h), so that no single dlopen holds
 * up the process's other threads for long. */
int load_receive_plugins(const RtpCodec &codec, bool decode);
/* The same for the plugins of these elements (by factory name; unknown names are skipped). */
int load_element_plugins(const std::vector<const char *> &elements);

}  // namespace gstmtx
