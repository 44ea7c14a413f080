/* gst-mediamtx: mediamtxsink's bandwidth adaptation: a gstmtx::RateController (gst/rate_controller.h)
 * fed every kRateTick with what the session's publisher learns about the uplink
 * (Publisher::read_feedback: TWCC and receiver reports for WHIP, the socket's send backlog for RTSP
 * over TCP, receiver reports for RTSP over UDP), driving the encoder mediamtxsink chose.
 *
 * Threads: the tick runs on the control thread (the ReconnectController's loop) while a session
 * is connected; stats are read from any thread (atomics). */
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <chrono>
#include <memory>

#include "frame_rate_floor.h"
#include "rate_controller.h"
#include "send_backlog_watch.h"

struct _GstMediamtxSink;
typedef struct _GstMediamtxSink GstMediamtxSink;

namespace mediamtxsink {

/* min-bitrate's default (kbit/s): a 720p30 picture stays readable at this rate. */
constexpr guint kDefaultMinBitrate = 300;

struct RateState {
  /* control thread */
  std::unique_ptr<gstmtx::RateController> controller;
  unsigned generation = 0;  /* the session the tick runs for (0: none) */
  guint timer = 0;
  guint backlog_timer = 0;  /* the send backlog's check between ticks (RTSP over TCP) */
  gstmtx::SendBacklogWatch backlog_watch;
  std::chrono::steady_clock::time_point last_tick{};
  guint64 last_bytes = 0;
  double measured_kbps = 0;
  std::chrono::steady_clock::time_point last_status{};
  int status_kbps = 0;      /* the target the last status message told (0: none yet) */
  int applied_kbps = 0;     /* the rate last set on the encoder by the adaptation (0: bitrate) */
  int last_max_kbps = 0;    /* `bitrate` at the last tick */
  gstmtx::FrameRateFloor frame_rate_floor; /* below min-bitrate: the share of frames encoded */
  /* any thread */
  std::atomic<guint> target_kbps{0};
  std::atomic<guint> measured{0};
  /* raw video: the frames kept before the encoder (streaming thread; its fraction from the
   * control thread), the input's frame rate (the caps'; 0: unknown) and the frames left out */
  gstmtx::FrameThinner thinner;
  std::atomic<double> input_fps{0};
  std::atomic<guint64> frames_thinned{0};
};

/* Where the last receiver report of a session's sender stood (read_receiver_report). */
struct ReceiverReportCursor {
  guint last_seq = 0;
  bool have = false;
};
/* Control thread: the loss fraction of a receiver report about our sender in session
 * `session_id` of `rtpbin` that arrived since `cursor` (false: none new). */
bool read_receiver_report(GstElement *rtpbin, guint session_id, ReceiverReportCursor *cursor, double *loss);

/* Any thread: how long the media in `queue` (a queue element: the leaky one in front of each
 * publisher's network elements) has waited there, in ms; 0 for no queue. When the connection
 * cannot take what is sent, this queue is where the excess waits (and is dropped at its
 * 200 ms bound): a queuing delay of our own process, before any packet numbering. */
double queue_delay_ms(GstElement *queue);

/* Control thread: session `generation` publishes: the tick starts (rate from `bitrate`). */
void rate_adaptation_start(GstMediamtxSink *self, unsigned generation);
/* Control thread (or the application thread once the run is closed): the session ended. */
void rate_adaptation_stop(GstMediamtxSink *self);
/* Raw video: the probe on the encoder's input that keeps RateState::thinner's share of the frames
 * (the frame rate lowered below min-bitrate). Streaming thread, when the chain is built. */
void frame_thinning_attach(GstMediamtxSink *self, GstElement *encoder, int fps_n, int fps_d);
/* Any thread: target-bitrate and measured-bitrate (kbit/s), framerate-fraction, frames-thinned. */
void rate_adaptation_add_stats(GstMediamtxSink *self, GstStructure *stats);

}  // namespace mediamtxsink
