/* gst-mediamtx: the control tasks of one run of an element, on the element's EventLoop.
 *
 * An element's control thread is its gstmtx::EventLoop. Between READY->PAUSED and PAUSED->READY
 * other threads hand it work (a child failed, the first buffer went out, a retry is due); once the
 * element stops, work still queued from that run must not run, and work from an earlier run must
 * not leak into the next one. A TaskGate does that bookkeeping: open() starts a run, close() ends
 * it, and post()/schedule() only run a task while the run it was queued in is still the open one.
 *
 *   READY->PAUSED:  gate.open();
 *   any thread:     gate.post([self] { ... });        (dropped when closed, now or by then)
 *   control thread: id = gate.schedule(delay, ...);  (a retry timer; loop().cancel(id) to drop it)
 *   PAUSED->READY:  gate.close([self] { ... });      (waits for a running task; runs the last one)
 *
 * Tasks capture no reference to the gate itself, so it may be destroyed before the loop.
 */
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>

#include "event_loop.h"

namespace gstmtx {

class TaskGate {
public:
  explicit TaskGate(EventLoop &loop);
  TaskGate(const TaskGate &) = delete;
  TaskGate &operator=(const TaskGate &) = delete;

  /* Any thread: starts a run; tasks queued from now on run. */
  void open();
  /* Any thread: ends the run. Tasks still queued are dropped; a task running on the loop thread
   * is waited for, then `last` runs there (inline when called on the loop thread, e.g. from a
   * bus handler during a task: that task then goes on after close() returns and should check
   * is_open()). False, and nothing done, when the gate was not open. */
  bool close(const std::function<void()> &last = {});
  bool is_open() const;

  /* Any thread: runs fn on the loop thread soon if this run is still open then. */
  void post(std::function<void()> fn);
  /* Any thread: runs fn on the loop thread after `delay` if this run is still open then. Returns
   * an id for EventLoop::cancel(), 0 when the gate is closed. */
  guint schedule(std::chrono::milliseconds delay, std::function<void()> fn);

  EventLoop &loop() const { return loop_; }

private:
  struct State {
    std::mutex lock;
    bool open = false;
    unsigned run = 0; /* bumped by open() */
  };
  /* Wraps fn to run only while run `run` is open; false when the gate is closed now. */
  bool wrap(std::function<void()> &fn);

  EventLoop &loop_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace gstmtx
