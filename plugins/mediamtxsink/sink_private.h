/* gst-mediamtx: mediamtxsink's instance state, shared by its three files:
 *  - gstmediamtxsink.cpp: GObject glue (properties, stats, state changes, pads, bus messages);
 *  - encode_chain.cpp:    the stable half (encoder choice and tuning, parser, audio to Opus, the
 *                         tail probes that drop and count media while disconnected);
 *  - connection.cpp:      the network half's sessions on the element's gstmtx::ReconnectController
 *                         (connect, teardown, end of stream, typed failures);
 *  - keyframe_on_join.cpp: a keyframe when a reader joins (MediaMTX's control API).
 * Private to the element: nothing here is installed or used by other elements.
 */
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gstmediamtxsink.h"
#include "http_client.h"
#include "keyframe_gate.h"
#include "publisher.h"
#include "rate_adaptation.h"
#include "reconnect_controller.h"

typedef enum {
  GST_MEDIAMTX_SINK_TRANSPORT_RTSP = 0,
  GST_MEDIAMTX_SINK_TRANSPORT_WHIP = 1,
} GstMediamtxSinkTransport;

typedef enum {
  GST_MEDIAMTX_SINK_RTSP_TRANSPORT_TCP = 0,
  GST_MEDIAMTX_SINK_RTSP_TRANSPORT_UDP = 1,
} GstMediamtxSinkRtspTransport;

namespace mediamtxsink {

constexpr const char *kDefaultEncoder = "auto";
constexpr const char *kDefaultProfile = "constrained-baseline";

/* How the tail probes treat media: dropped (no session), sent while a session starts, sent. */
enum class LinkMode : int { Disconnected, Connecting, Connected };
enum class InputKind { None, Raw, Encoded };

struct Settings {
  std::string location, server, path;
  GstMediamtxSinkTransport transport = GST_MEDIAMTX_SINK_TRANSPORT_RTSP;
  GstMediamtxSinkRtspTransport rtsp_transport = GST_MEDIAMTX_SINK_RTSP_TRANSPORT_TCP;
  std::string encoder = kDefaultEncoder;
  guint bitrate = 0;
  guint keyframe_interval = 0;
  std::string profile = kDefaultProfile;
  std::string user_id, user_pw, auth_token;
  std::string tls_ca_file;
  bool tls_validation = true;
  bool keyframe_on_join = true;
  std::string api_location; /* empty: http://<host of location>:9997 */
  guint api_poll_interval = 0; /* ms; 0: chosen from the poll's CPU cost (gstmtx::PollBudget) */
  bool adaptive_bitrate = true;
  guint min_bitrate = kDefaultMinBitrate;
  bool retransmission = true;
};

/* One input: its ghost pad and the stable-half chain built for its caps. */
struct Stream {
  explicit Stream(bool video) : is_video(video) {}
  const bool is_video;
  GstPad *ghost = nullptr;            /* the element's pad; audio: only once requested */
  InputKind kind = InputKind::None;
  std::vector<GstElement *> elements; /* the chain, upstream first (the bin holds them) */
  GstElement *encoder = nullptr;      /* raw video: the encoder in `elements` */
  GstPad *tail = nullptr;             /* ref: the chain's last src pad, feeds the publisher */
  gulong probe_id = 0;
  std::atomic<bool> eos{false};
};

/* What other threads hand the control thread besides failures (those go to the controller). */
enum class Command { StreamsChanged, AllEos, NetworkEos };

class KeyframeOnJoin; /* keyframe_on_join.cpp */

struct Private {
  explicit Private(GstElement *element)
      : controller(element, "mediamtxsink", gstmtx::StreamDirection::Write) {}

  std::mutex lock; /* guards settings, publisher_config, the streams' fields, stats strings,
                      publisher + generation; never held across a call into another element */
  Settings settings;
  PublisherConfig publisher_config; /* resolved at READY->PAUSED */

  /* The control thread, its runs, retries, status and the shared stats. */
  gstmtx::ReconnectController controller;
  /* WHIP's HTTP, on the controller's loop; outlives each session's publisher so a DELETE sent at
   * teardown completes. Created at READY->PAUSED (its TLS settings), dropped at READY->NULL. */
  std::unique_ptr<gstmtx::HttpClient> http;

  Stream video{true};
  Stream audio{false};
  GstElement *eos_anchor = nullptr; /* keeps the bin a sink and posts EOS when disconnected */

  /* read by the tail probes on streaming threads */
  std::atomic<int> mode{static_cast<int>(LinkMode::Disconnected)};
  gstmtx::KeyframeGate keyframes;                 /* video: a new session starts on a keyframe */
  std::atomic<guint64> bytes_sent{0}, frames_sent{0}, frames_dropped{0};

  /* keyframe-on-join's reader watch while running (under lock; keyframe_on_join.cpp) */
  std::shared_ptr<KeyframeOnJoin> keyframe_on_join;

  /* stats (under lock) */
  std::string encoder_name;
  int bitrate_kbps = 0;

  /* The session whose network half is in the bin (= the controller's session id); written on
   * the control thread under lock, read by bus handlers. */
  std::shared_ptr<Publisher> publisher;
  unsigned generation = 0;
  RateState rate; /* bandwidth adaptation (rate_adaptation.h) */
  /* control thread only */
  bool published_audio = false;
  bool draining = false;  /* every input ended: the session sends what it has, then ends */
  guint eos_timer = 0;    /* the grace period of draining */
};

/* ---- keyframe_on_join.cpp: a keyframe when a reader joins ---- */
/* READY->PAUSED, after prepare(): watches the path's readers (when keyframe-on-join is set). */
void keyframe_on_join_start(GstMediamtxSink *self, const gstmtx::HttpClientConfig &http_config);
/* PAUSED->READY: stops watching (waits for its thread). */
void keyframe_on_join_stop(GstMediamtxSink *self);

}  // namespace mediamtxsink

struct _GstMediamtxSink {
  GstBin parent;
  mediamtxsink::Private *priv;
};

namespace mediamtxsink {

/* ---- encode_chain.cpp: the stable half ---- */
/* Input ghost pads' event and query functions (streaming threads). */
gboolean input_pad_event(GstPad *pad, GstObject *parent, GstEvent *event);
gboolean input_pad_query(GstPad *pad, GstObject *parent, GstQuery *query);
/* Application thread, once the control thread is stopped: removes a stream's chain. */
void reset_stream(GstMediamtxSink *self, Stream &stream);
/* Any thread: applies a new bitrate (kbit/s) to a running encoder whose ceiling (`bitrate`) is
 * max_kbps (gstmtx::encoder_rate_settings: below it, x264enc's rate buffer is shorter). */
void set_encoder_bitrate(GstElement *encoder, int kbps, int max_kbps);

/* ---- connection.cpp: the network half's sessions ---- */
/* init: the controller's hooks. */
void connection_init(GstMediamtxSink *self);
/* READY->PAUSED: a new run (WHIP's HTTP client with `http_config`); false after posting an error
 * when that client cannot work (an unusable tls-ca-file). */
bool connection_start(GstMediamtxSink *self, const gstmtx::HttpClientConfig &http_config);
/* PAUSED->READY: no more sessions; the current one ends with the server (bounded). */
void connection_stop(GstMediamtxSink *self);
/* READY->NULL and finalize: the control thread ends (unless this is it). */
void connection_release(GstMediamtxSink *self);
/* Any thread: hands `command` (about session `generation`, for NetworkEos) to the control thread;
 * dropped while the element is not running. */
void push_command(GstMediamtxSink *self, Command command, unsigned generation = 0);
/* Any thread: an error message from the network half of session `generation`. */
void on_network_error(GstMediamtxSink *self, unsigned generation, GstMessage *message);

/* ---- keyframe_on_join.cpp: a keyframe when a reader joins ---- */
/* READY->PAUSED, after prepare(): watches the path's readers (when keyframe-on-join is set). */
void keyframe_on_join_start(GstMediamtxSink *self, const gstmtx::HttpClientConfig &http_config);
/* PAUSED->READY: stops watching (waits for its thread). */
void keyframe_on_join_stop(GstMediamtxSink *self);

}  // namespace mediamtxsink
