/* gst-mediamtx tests: small helpers for driving pipelines in gst-check tests. */
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace testbed {

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
  int eos_count() const { return eos_.load(); }
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

}  // namespace testbed
