/* gst-mediamtx: a private GMainContext running on its own thread.
 *
 * Each element owns one: HTTP (libsoup) and the element's control logic (reconnect timers,
 * webrtcbin callbacks handed over from webrtcbin's threads) run there, never on a streaming
 * thread and never on the application's main loop.
 */
#pragma once

#include <glib.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace gstmtx {

class EventLoop {
public:
  explicit EventLoop(std::string name);
  ~EventLoop(); /* stops the thread; pending tasks are dropped */
  EventLoop(const EventLoop &) = delete;
  EventLoop &operator=(const EventLoop &) = delete;

  /* Runs fn on the loop thread soon (called from any thread). */
  void post(std::function<void()> fn);
  /* Runs fn on the loop thread after delay; returns an id for cancel() (called from any thread). */
  guint schedule(std::chrono::milliseconds delay, std::function<void()> fn);
  /* Cancels a scheduled task that has not run yet; 0 is ignored (called from any thread). */
  void cancel(guint id);
  /* Runs fn on the loop thread and waits for it; runs it inline when called on the loop thread. */
  void run_sync(const std::function<void()> &fn);

  bool on_loop_thread() const { return std::this_thread::get_id() == thread_id_; }
  GMainContext *context() const { return context_; }

private:
  GMainContext *context_;
  GMainLoop *loop_;
  std::thread thread_;
  std::thread::id thread_id_;
};

}  // namespace gstmtx
