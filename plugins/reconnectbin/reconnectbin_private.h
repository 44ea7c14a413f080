/* gst-mediamtx: reconnectbin's private state, shared by the files of the element:
 *
 *   gstreconnectbin.cpp     GObject glue, properties, state changes, messages, the control of the
 *                           child (start, restart, failure hooks of the ReconnectController)
 *   child_description.cpp   building a child from its description, adopting children added to
 *                           the bin directly, the summary (factory names) shown to users
 *   fallback_generator.cpp  black/freeze/silence frames or GAP events while a source child is down
 *   source_side.cpp         the child's output: pad probe, event function, running-time shift
 *   sink_side.cpp           the child's input: chain functions (one flow policy), events, queries
 *
 * Not installed; C++ only.
 */
#pragma once

#include "gstreconnectbin.h"

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "keyframe_gate.h"
#include "reconnect_controller.h"
#include "stall_watchdog.h"

#define RECONNECT_BIN_DEFAULT_RESTART_ON_EOS TRUE
#define RECONNECT_BIN_DEFAULT_STALL_TIMEOUT 5000
#define RECONNECT_BIN_DEFAULT_FALLBACK GST_RECONNECT_BIN_FALLBACK_NONE

GST_DEBUG_CATEGORY_EXTERN(gst_reconnect_bin_debug);

/* the bin's pads (sometimes: they appear with the first child that has such a pad) */
extern GstStaticPadTemplate reconnect_bin_src_template;
extern GstStaticPadTemplate reconnect_bin_sink_template;

/* What ended a child run (the controller's Failure says why in words; this is for the stats and
 * for an EOS that exhausts the retry budget). */
enum class ChildEnd { Error, Eos, Stall };

struct ReconnectBinSettings {
  std::string child_description;
  bool restart_on_eos = RECONNECT_BIN_DEFAULT_RESTART_ON_EOS;
  guint stall_timeout = RECONNECT_BIN_DEFAULT_STALL_TIMEOUT;
  GstReconnectBinFallback fallback = RECONNECT_BIN_DEFAULT_FALLBACK;
};

/* The bin's src side: what the child produces, and the fallback while it is down. Fields marked
 * [stream] are guarded by the stream lock of `internal` (held by the child's streaming thread in
 * the probe and by the fallback thread while it pushes). */
struct ReconnectBinSourceSide {
  GstPad *ghost = nullptr;    /* the bin's src pad, lives as long as the bin */
  GstPad *internal = nullptr; /* its internal proxy pad (ref), receives the child's data */
  std::atomic<bool> accepting{false}; /* the current child generation may push */
  std::atomic<guint> run_gen{0};      /* generation of the child allowed to push */
  std::atomic<guint> flowing_gen{0};  /* last generation that pushed a buffer */
  guint probe_gen = 0;                /* [stream] generation the fields below describe */
  bool flowing = false;               /* [stream] this generation pushed its first buffer */
  bool started = false;               /* [stream] a stream-start went downstream */
  bool have_child_segment = false;    /* [stream] */
  GstSegment child_segment;           /* [stream] the child's segment, before our shift */
  std::vector<GstEvent *> pending;    /* [stream] events held until the first buffer */
  GstClockTimeDiff shift = 0;         /* [stream] added to the child's segment base */
  GstClockTime last_rt_end = GST_CLOCK_TIME_NONE; /* [stream] running time downstream reached */
  GstClockTimeDiff lag = 0;           /* [stream] clock running time minus buffer running time */
  bool have_lag = false;              /* [stream] */
  GstClockTimeDiff first_lag = 0;     /* [stream] lag of the very first run */
  bool have_first_lag = false;        /* [stream] */
  GstCaps *caps = nullptr;            /* [stream] last caps from the child */
  GstBuffer *last_frame = nullptr;    /* [stream] last raw video buffer, for freeze */
  GstClockTime last_duration = GST_CLOCK_TIME_NONE; /* [stream] */
  GstQuery *latency = nullptr;        /* last successful latency answer (lock) */
};

/* The bin's sink side. */
struct ReconnectBinSinkSide {
  GstPad *ghost = nullptr;
  std::atomic<bool> up{false};           /* the child is linked and should take data */
  std::atomic<guint> generation{0};      /* the child generation (session) taking data */
  std::atomic<bool> upstream_eos{false}; /* upstream sent EOS: the child's EOS is real */
  gstmtx::KeyframeGate keyframe;         /* a restarted child starts on a keyframe */
};

struct ReconnectBinPrivate {
  explicit ReconnectBinPrivate(GstElement *element)
      : controller(element, "reconnectbin", gstmtx::StreamDirection::Read) {}

  std::mutex lock; /* guards settings, child/generation, latency, own stats strings */
  ReconnectBinSettings settings;

  /* child */
  GstElement *child = nullptr; /* current child instance (in the bin), or nullptr */
  bool child_fresh = false;    /* built and never started: the next start uses it as is */
  guint generation = 0;        /* the controller's session id of the running child */
  guint runs = 0;              /* child runs started since READY->PAUSED */
  bool child_running = false;  /* child started and not being torn down: its messages count */
  guint error_generation = 0;  /* generation whose first error was taken */
  std::string build_error;     /* why the description did not parse */
  std::string summary;         /* factory names only: no URLs, no passwords */
  GstState desired = GST_STATE_NULL; /* state the control thread drives the child to */

  ReconnectBinSourceSide src;
  ReconnectBinSinkSide sink;
  std::atomic<bool> freeze{false}; /* fallback=freeze: the src probe keeps the last frame */

  /* control thread, retry policy, status: the controller; the rest is ours */
  gstmtx::ReconnectController controller;
  ChildEnd last_end = ChildEnd::Error; /* control thread: what ended the run being handled */
  guint watch_timer = 0;               /* control thread: next stall check */
  gstmtx::StallWatchdog watchdog;

  /* fallback thread */
  std::thread fallback;
  std::atomic<bool> fallback_stop{false};
  GstClockID fallback_clock_id = nullptr; /* (lock) */

  /* stats of our own (lock for the strings and counters) */
  std::string last_reason;
  guint restarts = 0;
  guint errors = 0;
  guint eos_count = 0;
  guint stalls = 0;
  std::atomic<guint64> buffers_dropped{0};
  std::atomic<guint64> fallback_buffers{0};
  std::atomic<guint64> buffers_out{0};
};

struct _GstMtxReconnectBin {
  GstBin parent;
  ReconnectBinPrivate *priv;
};

/* ---- gstreconnectbin.cpp ---- */
/* Any thread: runs `command` on the control thread while the bin runs, then checks for a stall. */
void reconnect_bin_post(GstMtxReconnectBin *self, std::function<void()> command);
/* Any thread: child generation `generation` ended (`end`, with the child's own error in
 * `failure`); the controller decides on the control thread. */
void reconnect_bin_report_failure(GstMtxReconnectBin *self, guint generation, ChildEnd end, gstmtx::Failure failure);
/* Control thread: the child of `generation` delivers (source: first buffer; sink: PLAYING). */
void reconnect_bin_on_connected(GstMtxReconnectBin *self, guint generation);

/* ---- child_description.cpp ---- */
/* Application or control thread: builds a fresh child from the description, adds it (state
 * locked) and ghosts or re-targets its pads. */
bool reconnect_bin_build_child(GstMtxReconnectBin *self, std::string *error);
/* Application thread, NULL->READY: turns children added directly into a description (and removes
 * them); `peers` receives the pads the bin's own pads must link to. */
bool reconnect_bin_adopt_children(GstMtxReconnectBin *self, std::string *description, std::string *error,
                                  std::vector<GstPad *> *peers);
/* Factory names of the description, without properties (no URL or password leaks). */
std::string reconnect_bin_summarize(const std::string &description);

/* ---- source_side.cpp ---- */
/* Child streaming thread: probe on the internal side of the src ghost pad. */
GstPadProbeReturn reconnect_bin_src_probe(GstPad *pad, GstPadProbeInfo *info, gpointer user_data);
gboolean reconnect_bin_src_internal_event(GstPad *pad, GstObject *parent, GstEvent *event);
gboolean reconnect_bin_src_query(GstPad *pad, GstObject *parent, GstQuery *query);
/* Application thread, PAUSED->READY: forget the stream state of every run. */
void reconnect_bin_src_reset(GstMtxReconnectBin *self);
/* Any thread: running time of the pipeline clock now, or NONE when not playing. */
GstClockTime reconnect_bin_now_running_time(GstMtxReconnectBin *self);

/* ---- sink_side.cpp ---- */
GstFlowReturn reconnect_bin_sink_chain(GstPad *pad, GstObject *parent, GstBuffer *buffer);
GstFlowReturn reconnect_bin_sink_chain_list(GstPad *pad, GstObject *parent, GstBufferList *list);
gboolean reconnect_bin_sink_event(GstPad *pad, GstObject *parent, GstEvent *event);
gboolean reconnect_bin_sink_query(GstPad *pad, GstObject *parent, GstQuery *query);
/* Control thread: child `generation` starts taking input; it starts on a keyframe. */
void reconnect_bin_sink_begin(GstMtxReconnectBin *self, guint generation);

/* ---- fallback_generator.cpp ---- */
/* Control thread: starts the fallback for a source bin whose child of `failed_generation` went
 * down (only while playing). */
void reconnect_bin_start_fallback(GstMtxReconnectBin *self, guint failed_generation);
/* Control or application thread: stops and joins the fallback thread. */
void reconnect_bin_stop_fallback(GstMtxReconnectBin *self);
