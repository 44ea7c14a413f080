/* gst-mediamtx: whepsrc's private state, shared by the element's files.
 *
 *   gstwhepsrc.cpp          GObject glue: properties, state changes, bus messages, URI handler
 *   whep_session.cpp        one WebRTC session: webrtcbin, the WHEP peer, the no-media watchdog,
 *                           the reconnection controller's hooks
 *   whep_receive_chain.cpp  depayload/parse/decode chains, the ghost pads they feed, media probes
 *   whep_hls_fallback.cpp   the HLS fallback through the same ghost pads
 *   whep_stats.cpp          the `stats` property, from a cache the control thread refreshes
 *   whep_placeholder.cpp    placeholder=status: the slate shown while no live picture arrives
 *
 * Threads: "control thread" is the ReconnectController's (its EventLoop); "streaming thread" is
 * webrtcbin's or the HLS chain's; the application thread sets properties and states.
 */
#pragma once

#include "gstwhepsrc.h"

#include <gst/webrtc/webrtc.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "codec_table.h"
#include "http_client.h"
#include "keyframe_gate.h"
#include "mediamtx_url.h"
#include "reconnect_controller.h"
#include "stall_watchdog.h"
#include "webrtc_peer.h"

/* Calls fn(field name, value) for every field of s. gst_structure_foreach (quark names) is
 * deprecated from GStreamer 1.26 on, where gst_structure_foreach_id_str replaces it. */
template <typename Fn> static inline void whepsrc_for_each_field(const GstStructure *s, Fn fn) {
#if GST_CHECK_VERSION(1, 26, 0)
  gst_structure_foreach_id_str(
      s,
      [](const GstIdStr *field, const GValue *value, gpointer data) -> gboolean {
        (*static_cast<Fn *>(data))(gst_id_str_as_str(field), value);
        return TRUE;
      },
      &fn);
#else
  gst_structure_foreach(
      s,
      [](GQuark field, const GValue *value, gpointer data) -> gboolean {
        (*static_cast<Fn *>(data))(g_quark_to_string(field), value);
        return TRUE;
      },
      &fn);
#endif
}

GST_DEBUG_CATEGORY_EXTERN(gst_whep_src_debug);
#define GST_CAT_DEFAULT gst_whep_src_debug

namespace whepsrc {

constexpr guint kDefaultLatency = 50;
constexpr guint kDefaultTimeout = 10000;
constexpr guint kDefaultHlsFallbackAttempts = 3;
/* server RTCP silence that ends a session (at least 3x the server's report interval) */
constexpr int kRtcpSilenceMs = 3000;
/* SO_RCVBUF asked for the ICE sockets (the kernel caps it at net.core.rmem_max) */
constexpr int kReceiveBufferBytes = 4 * 1024 * 1024;
/* the jitter buffer starts after this many packets in sequence instead of holding the first for
 * its latency (rtpjitterbuffer faststart-min-packets, GStreamer 1.18+) */
constexpr guint kFaststartPackets = 1;
/* how often webrtcbin's statistics are read into the stats cache while a session runs */
constexpr int kStatsIntervalMs = 1000;
/* ... and how soon again while the last reading lacks the selected candidate pair */
constexpr int kStatsRetryMs = 100;
/* marks the HLS bins, current and retired (a retired one is torn down asynchronously) */
inline constexpr const char *kHlsMarker = "gst-mediamtx-hls";
/* placeholder-caps by default: the slate's size and rate before any live picture */
inline constexpr const char *kDefaultPlaceholderCaps = "video/x-raw,width=1280,height=720,framerate=30/1";

struct Settings {
  std::string location;
  std::string auth_token;
  std::string user_id, user_pw;
  GstStructure *extra_headers = nullptr;
  std::string stun_server, turn_server;
  bool use_link_headers = true;
  GstWebRTCICETransportPolicy ice_transport_policy = GST_WEBRTC_ICE_TRANSPORT_POLICY_ALL;
  guint latency = kDefaultLatency;
  std::string video_codecs = gstmtx::kDefaultVideoCodecs;
  std::string audio_codecs = gstmtx::kDefaultAudioCodecs;
  bool audio = true;
  bool decode = true;
  bool trickle = true;
  guint timeout = kDefaultTimeout;
  std::string tls_ca_file;
  bool tls_validation = true;
  bool hls_fallback = false;
  std::string hls_location;
  guint hls_fallback_attempts = kDefaultHlsFallbackAttempts;
  GstMtxWhepPlaceholder placeholder = GST_MTX_WHEP_PLACEHOLDER_NONE;
  std::string placeholder_caps = kDefaultPlaceholderCaps;
};

/* One exposed output: the ghost pad lives for the element's life, the chain behind it is rebuilt
 * for every session. */
struct Output {
  GstMtxWhepSrc *self = nullptr;
  std::string media;          /* "video" | "audio" */
  GstPad *ghost = nullptr;    /* owned by the element once added */
  GstElement *chain = nullptr;
  guint generation = 0;       /* session that last targeted this pad */
  bool from_hls = false;      /* targeted by the HLS fallback */
  bool sent_stream_start = false;
  bool via_placeholder = false; /* placeholder=status: chains link to the slate's selector */
};

struct Placeholder; /* whep_placeholder.cpp */

/* HLS timestamps are stream positions: map them onto the pipeline's running time, keeping their
 * spacing, so HLS frames look like a live source's (one offset per HLS session for A/V sync).
 * The watchdog sees each HLS buffer (hlsdemux can stall). */
struct HlsClock {
  GstElement *element = nullptr;
  gstmtx::StallWatchdog watchdog;
  std::mutex lock;
  GstClockTimeDiff offset = 0;
  bool anchored = false;
};

/* webrtcbin's statistics as last read (whep_stats.cpp). */
struct WebrtcStats {
  guint64 packets_lost = 0;
  double jitter = 0;
  double round_trip_time = -1;
  std::string local_candidate, remote_candidate;
};

/* What `stats` reports beyond the controller's fields, refreshed on the control thread and by
 * webrtcbin's stats promise (its own thread); read from any thread. Shared with in-flight
 * promises, so it outlives the element when one is late. */
struct StatsCache {
  std::mutex lock;
  unsigned session = 0; /* the session the fields below describe */
  bool have_webrtc = false;
  WebrtcStats webrtc;
  bool have_timings = false;
  gstmtx::PeerTimings timings;
};

}  // namespace whepsrc

struct GstWhepSrcPrivate {
  explicit GstWhepSrcPrivate(GstMtxWhepSrc *self);

  /* `lock` guards settings, outputs, the fields below it and `webrtc`/`generation`/`hls`; it is
   * never held across a call into another element. */
  std::mutex lock;
  /* Serialises our pad-added / no-more-pads: the audio and the video stream are exposed from two
   * streaming threads, and applications' pad-added handlers (gst-launch's delayed links among
   * them: a use-after-free under ASan when both ran at once) do not expect concurrent calls. */
  std::mutex expose_lock;
  whepsrc::Settings settings;
  std::vector<std::unique_ptr<whepsrc::Output>> outputs;
  GstElement *webrtc = nullptr;  /* current session's webrtcbin (ref held) */
  guint generation = 0;
  int expected_streams = 0;
  int exposed_this_generation = 0;
  bool no_more_pads_sent = false;
  gint64 first_frame_latency_us = -1;
  gint64 attempt_started_us = 0;
  GstElement *hls = nullptr;     /* the HLS fallback bin, while it runs */
  std::shared_ptr<whepsrc::HlsClock> hls_clock;
  /* placeholder=status: from READY->PAUSED to PAUSED->READY (its pointer changes only then) */
  std::shared_ptr<whepsrc::Placeholder> placeholder;

  /* retry properties, control thread, status, stats fields shared by every element */
  gstmtx::ReconnectController controller;

  /* control thread only */
  std::unique_ptr<gstmtx::HttpClient> http;
  std::unique_ptr<gstmtx::WebrtcPeer> peer;
  std::optional<gstmtx::Endpoint> endpoint;
  guint media_timer = 0;
  guint stats_timer = 0;
  guint hls_restart_timer = 0;
  guint hls_watchdog_timer = 0;
  /* loads the session's and the receive chain's plugins from NULL->READY on
   * (preload_receive_plugins); joined at READY->NULL */
  std::thread preload;

  /* streaming threads */
  gstmtx::StallWatchdog media_watchdog; /* no media for `timeout`: the session failed */
  std::atomic<bool> media_seen{false};  /* the current session delivered a buffer */
  std::atomic<guint64> frames{0};
  std::atomic<guint64> bytes{0};
  std::atomic<bool> eos_requested{false};
  std::shared_ptr<whepsrc::StatsCache> stats = std::make_shared<whepsrc::StatsCache>();
};

struct _GstMtxWhepSrc {
  GstBin parent;
  GstWhepSrcPrivate *priv;
};

namespace whepsrc {

/* gstwhepsrc.cpp, any thread: the settings without the lock; extra-headers come out as pairs. */
Settings settings_snapshot(GstMtxWhepSrc *self, gstmtx::Headers *extra_headers = nullptr);
/* NULL->READY: once per process, loads on a thread of its own (priv->preload) the plugins of the
 * WebRTC session and of the preferred video (and audio) codec's receive chain while the session
 * starts, instead of on the threads that need them. Before, the first packets of a fresh process
 * waited ~70 ms on the streaming thread for libav's plugin (76-190 ms to load in one dlopen);
 * started at the answer, that one dlopen held up ICE+DTLS by ~140 ms: GStreamer loads one plugin
 * at a time, and glibc's loader lock stops every pthread_create in the process meanwhile. Now the
 * session's plugins come first and a plugin's libraries are loaded one at a time
 * (gstmtx::load_receive_plugins, library_preload.h), so no thread waits long for another's load
 * (docs/benchmarks.md, "Where a first frame's time goes"). */
void preload_receive_plugins(GstMtxWhepSrc *self, const Settings &s);

/* whep_session.cpp */
void install_controller_hooks(GstMtxWhepSrc *self);
/* control thread (the controller's `start` hook) */
void start_session(GstMtxWhepSrc *self);
/* control thread (synchronous_delete=false) or the application thread on PAUSED->READY (true) */
void stop_session(GstMtxWhepSrc *self, bool synchronous_delete);

/* whep_receive_chain.cpp */
/* webrtcbin's pad-added (its streaming thread) */
void on_webrtc_pad_added(GstElement *webrtc, GstPad *pad, gpointer data);
/* streaming thread: points this media's ghost pad at `src` (WebRTC or, from_hls, the fallback) */
bool attach_output(GstMtxWhepSrc *self, const std::string &media, GstElement *chain, GstPad *src, bool from_hls,
                   GstElement *webrtc, guint generation);

/* ghost pads: one stream-start for the element's life, no flush, no EOS unless asked for */
void install_output_event_probe(Output *out);

/* whep_placeholder.cpp */
/* READY->PAUSED (application thread): builds the slate when placeholder=status; false: error posted */
bool placeholder_prepare(GstMtxWhepSrc *self, const Settings &settings);
/* READY->PAUSED: the video pad, showing the slate, from the start */
void placeholder_expose(GstMtxWhepSrc *self);
/* PAUSED->READY, after the session is gone */
void placeholder_release(GstMtxWhepSrc *self);
/* any thread: the placeholder's bin, which session teardown leaves in place */
bool is_placeholder_bin(GstElement *element);
/* streaming or control thread: feed `out` from `src` (a chain's output), or stop feeding it (the
 * slate takes over when the output goes through the placeholder) */
void connect_output(GstMtxWhepSrc *self, Output *out, GstPad *src);
void disconnect_output(GstMtxWhepSrc *self, Output *out);
/* control thread: the session failed (the teardown hook); any thread: a status is posted */
void placeholder_failure(GstMtxWhepSrc *self, const gstmtx::Failure &failure);
void placeholder_status(GstMtxWhepSrc *self, const gstmtx::StatusUpdate &update);
/* any thread: placeholder-text */
void placeholder_add_stats(GstMtxWhepSrc *self, GstStructure *stats);

/* whep_hls_fallback.cpp, control thread unless said */
void start_hls(GstMtxWhepSrc *self);
void stop_hls(GstMtxWhepSrc *self);
void on_hls_failed(GstMtxWhepSrc *self, const std::string &reason);
/* any thread: `object` is inside an HLS bin, current or retired */
bool inside_hls_bin(GstObject *object);

/* whep_stats.cpp */
/* control thread: refresh the cache now and every kStatsIntervalMs while the session runs */
void start_stats_ticks(GstMtxWhepSrc *self);
void stop_stats_ticks(GstMtxWhepSrc *self);
/* control thread: copy the peer's handshake milestones into the cache */
void update_peer_timings(GstMtxWhepSrc *self);
/* any thread, never blocks on webrtcbin */
GstStructure *build_stats(GstMtxWhepSrc *self);

}  // namespace whepsrc
