/* gst-mediamtx: resume on a keyframe, in one place for every element.
 *
 * After a (re)connection a decoder, a muxer or a server must see a keyframe first: video delta
 * units are dropped until one passes, and upstream is asked for one (a force-key-unit event with
 * all headers: an encoder makes a keyframe with SPS/PPS, a depayloader sends an RTCP PLI) when the
 * gate closes and again at most every `request_interval` while it waits.
 *
 *   any thread (a new session):   gate.close(pad);
 *   streaming thread (a buffer):  if (!gate.admit(pad, buffer)) drop it;
 *
 * Thread-safety: close() and admit() may race; atomics only, never blocks.
 */
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <chrono>

namespace gstmtx {

class KeyframeGate {
public:
  explicit KeyframeGate(std::chrono::milliseconds request_interval = std::chrono::milliseconds{1000})
      : interval_us_(std::chrono::duration_cast<std::chrono::microseconds>(request_interval).count()) {}

  /* Any thread: drop deltas from now on until a keyframe; asks upstream through `pad` (an element's
   * pad: the event is sent from it upstream) at once when given. */
  void close(GstPad *pad = nullptr);
  /* Lets everything through (no keyframe wanted). */
  void open() { closed_ = false; }
  bool is_closed() const { return closed_.load(); }

  /* Streaming thread: true when `buffer` may pass (opens the gate on a keyframe); false to drop it.
   * While closed, asks upstream through `pad` again at most every request interval. */
  bool admit(GstPad *pad, const GstBuffer *buffer);
  /* The same for a list: judged by its first buffer. */
  bool admit(GstPad *pad, GstBufferList *list);

  /* Asks upstream of `pad` for a keyframe with headers now. */
  static void request(GstPad *pad);

private:
  std::atomic<bool> closed_{false};
  std::atomic<gint64> last_request_us_{0};
  const gint64 interval_us_;
};

}  // namespace gstmtx
