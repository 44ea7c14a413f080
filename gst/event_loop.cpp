#include "event_loop.h"

#include <condition_variable>

#ifdef __linux__
#include <pthread.h>
#endif

namespace gstmtx {

namespace {
struct Task {
  std::function<void()> fn;
};

gboolean run_task(gpointer data) {
  static_cast<Task *>(data)->fn();
  return G_SOURCE_REMOVE;
}

void free_task(gpointer data) { delete static_cast<Task *>(data); }
}  // namespace

EventLoop::EventLoop(std::string name) : context_(g_main_context_new()), loop_(g_main_loop_new(context_, FALSE)) {
  /* The thread holds its own references: when the loop is destroyed from its own thread (detached
   * below), the thread still finishes with them after this object is gone. */
  thread_ = std::thread([context = g_main_context_ref(context_), loop = g_main_loop_ref(loop_), name] {
#ifdef __linux__
    /* visible in top -H, gdb and /proc: "mtx-whepsrc" (the kernel keeps 15 characters) */
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
#endif
    g_main_context_push_thread_default(context);
    g_main_loop_run(loop);
    /* let cancelled async operations deliver their callbacks before the context goes */
    while (g_main_context_iteration(context, FALSE)) {
    }
    g_main_context_pop_thread_default(context);
    g_main_loop_unref(loop);
    g_main_context_unref(context);
  });
  thread_id_ = thread_.get_id();
  /* Return once the loop runs: g_main_loop_run() would forget a quit from a destructor that came
   * before it started, and the thread would never end. */
  run_sync([] {});
}

EventLoop::~EventLoop() {
  g_main_loop_quit(loop_);
  if (thread_.joinable()) {
    if (on_loop_thread())
      thread_.detach(); /* destroyed from its own thread: cannot join itself */
    else
      thread_.join();
  }
  g_main_loop_unref(loop_);
  g_main_context_unref(context_);
}

void EventLoop::post(std::function<void()> fn) {
  GSource *source = g_idle_source_new();
  g_source_set_priority(source, G_PRIORITY_DEFAULT);
  g_source_set_callback(source, run_task, new Task{std::move(fn)}, free_task);
  g_source_attach(source, context_);
  g_source_unref(source);
}

guint EventLoop::schedule(std::chrono::milliseconds delay, std::function<void()> fn) {
  GSource *source = g_timeout_source_new(static_cast<guint>(std::max<long long>(delay.count(), 0)));
  g_source_set_callback(source, run_task, new Task{std::move(fn)}, free_task);
  guint id = g_source_attach(source, context_);
  g_source_unref(source);
  return id;
}

void EventLoop::cancel(guint id) {
  if (id == 0)
    return;
  if (GSource *source = g_main_context_find_source_by_id(context_, id))
    g_source_destroy(source);
}

void EventLoop::run_sync(const std::function<void()> &fn) {
  if (on_loop_thread()) {
    fn();
    return;
  }
  std::mutex lock;
  std::condition_variable done_cv;
  bool done = false;
  post([&] {
    fn();
    std::lock_guard<std::mutex> guard(lock);
    done = true;
    done_cv.notify_one();
  });
  std::unique_lock<std::mutex> guard(lock);
  done_cv.wait(guard, [&] { return done; });
}

}  // namespace gstmtx
