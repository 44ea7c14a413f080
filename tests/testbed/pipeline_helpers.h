/* gst-mediamtx tests: small helpers for driving pipelines in gst-check tests. */
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mediamtx_server.h"

namespace testbed {

/* A live raw video source for publishers: 320x240 at 30 fps. */
inline constexpr const char *kLiveTestVideo =
    "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1";

/* A publisher made of stock elements (videotestsrc ! x264enc ! rtspclientsink over TCP, a keyframe
 * every 15 frames), so the element under test is tested on its own. */
std::string x264_rtsp_publisher(const MediamtxServer &server, const std::string &path, int width = 320,
                                int height = 240);

/* A reader of `path` over RTSP that decodes H.264 into fakesink "sink". The user agent must not
 * start with "GStreamer": MediaMTX sleeps 1 s in SETUP for those (docs/architecture.md). */
std::string rtsp_h264_reader(const MediamtxServer &server, const std::string &path, const std::string &user_agent);

/* The `stats` structure of the element named `element` in `pipeline` (free it), nullptr if none. */
GstStructure *element_stats(GstElement *pipeline, const char *element);
/* One field of it: a string ("" when absent), or a number (uint, uint64 or int; 0 when absent). */
std::string stats_string(GstElement *pipeline, const char *element, const char *field);
guint64 stats_uint64(GstElement *pipeline, const char *element, const char *field);

/* rtspclientsink 1.22 (third party, used by every RTSP publisher here) keeps using a connection it
 * has just closed when the server dies: GIO asserts that its socket or stream is one
 * (g_socket_get/set_timeout, g_output_stream_writev, ...). Harmless to the element under test and
 * not ours to fix: for the tests that kill the server, those GIO type assertions (only) are not
 * fatal. */
void tolerate_rtspclientsink_socket_criticals();

/* Counts buffers through a pad and remembers the last video size seen in caps. */
class BufferCounter {
public:
  BufferCounter() = default;
  ~BufferCounter();
  /* attach to `pad` (ref taken) */
  void attach(GstPad *pad);
  /* attach to the sink pad of the element named `name` in `bin` */
  void attach(GstElement *bin, const char *name, const char *pad_name = "sink");
  int count() const { return count_.load(); }
  int width() const { return width_.load(); }
  int height() const { return height_.load(); }
  std::string caps_name() const;
  void reset() { count_ = 0; }

private:
  static GstPadProbeReturn probe(GstPad *pad, GstPadProbeInfo *info, gpointer user_data);
  GstPad *pad_ = nullptr;
  gulong probe_id_ = 0;
  std::atomic<int> count_{0}, width_{0}, height_{0};
  mutable std::mutex lock_;
  std::string caps_name_;
};

/* Collects bus messages on a sync handler so tests can poll for errors and element messages
 * without a main loop. */
class BusWatcher {
public:
  explicit BusWatcher(GstElement *pipeline);
  ~BusWatcher();
  std::vector<std::string> errors() const;
  std::vector<std::string> warnings() const;
  /* every error, one a line: for failure messages */
  std::string error_text() const;
  int eos_count() const { return eos_.load(); }
  /* Runs `action` for every message, on the thread that posts it, before recording it (as an
   * application's synchronous bus handler would); nullptr: none. */
  void set_sync_action(std::function<void(GstMessage *)> action);
  /* element messages with this structure name, copied */
  std::vector<GstStructure *> element_messages(const char *name) const;
  int count_element_messages(const char *name, const char *field = nullptr, const char *value = nullptr) const;
  void clear();

private:
  static GstBusSyncReply on_message(GstBus *bus, GstMessage *msg, gpointer user_data);
  GstBus *bus_;
  mutable std::mutex lock_;
  std::vector<std::string> errors_, warnings_;
  std::vector<GstStructure *> elements_;
  std::shared_ptr<std::function<void(GstMessage *)>> action_;
  std::atomic<int> eos_{0};
};

/* timeout_ms times TESTBED_TIME_SCALE (default 1): the sanitizer and Valgrind runs
 * (tests/faults/asan.sh, valgrind.sh) stretch every wait of the tests that way. */
int scaled_ms(int timeout_ms);

/* Polls cond() every 20 ms for up to scaled_ms(timeout_ms); true as soon as it holds. */
bool wait_until(const std::function<bool()> &cond, int timeout_ms);

/* Sets the state and waits for it, up to scaled_ms(timeout_ms) (live pipelines return NO_PREROLL). */
bool set_state_and_wait(GstElement *element, GstState state, int timeout_ms = 10000);

/* gst_parse_launch or fail the test with the parse error. */
GstElement *parse_pipeline(const std::string &description);

/* A test's pipeline: parsed (the test fails if it does not parse), its bus watched, buffers into
 * the element named `counted` (if any) counted; set to NULL and released when it goes. */
struct TestPipeline {
  explicit TestPipeline(const std::string &description, const char *counted = nullptr);
  ~TestPipeline();
  TestPipeline(const TestPipeline &) = delete;
  TestPipeline &operator=(const TestPipeline &) = delete;

  /* PLAYING, and waits for it (live pipelines return NO_PREROLL) */
  bool play(int timeout_ms = 10000) { return set_state_and_wait(pipeline, GST_STATE_PLAYING, timeout_ms); }
  /* NULL: the pipeline can be checked after it stopped, and played again */
  GstStateChangeReturn stop() { return gst_element_set_state(pipeline, GST_STATE_NULL); }
  std::string stats_string(const char *element, const char *field) const {
    return testbed::stats_string(pipeline, element, field);
  }
  guint64 stats_uint64(const char *element, const char *field) const {
    return testbed::stats_uint64(pipeline, element, field);
  }

  GstElement *const pipeline;
  BusWatcher bus;
  BufferCounter frames;
};

/* Plays the pipeline; on the first gst-mediamtx-status message whose state is `state`, its bus's
 * synchronous handler sets it to NULL right there, on the thread that posts it (the element's
 * control thread), as an application reacting to the status could. True once that returned
 * SUCCESS within timeout_ms and the pipeline is in NULL. */
bool play_and_stop_on_status(TestPipeline &pipeline, const char *state, int timeout_ms);

}  // namespace testbed
