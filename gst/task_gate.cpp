#include "task_gate.h"

namespace gstmtx {

TaskGate::TaskGate(EventLoop &loop) : loop_(loop) {}

void TaskGate::open() {
  std::lock_guard<std::mutex> guard(state_->lock);
  state_->open = true;
  state_->run++;
}

bool TaskGate::close(const std::function<void()> &last) {
  {
    std::lock_guard<std::mutex> guard(state_->lock);
    if (!state_->open)
      return false;
    state_->open = false;
  }
  /* Tasks run in the order they were queued: once this one runs, no earlier task is running. */
  loop_.run_sync([&last] {
    if (last)
      last();
  });
  return true;
}

bool TaskGate::is_open() const {
  std::lock_guard<std::mutex> guard(state_->lock);
  return state_->open;
}

bool TaskGate::wrap(std::function<void()> &fn) {
  unsigned run;
  {
    std::lock_guard<std::mutex> guard(state_->lock);
    if (!state_->open)
      return false;
    run = state_->run;
  }
  fn = [state = state_, run, task = std::move(fn)] {
    {
      std::lock_guard<std::mutex> guard(state->lock);
      if (!state->open || state->run != run)
        return;
    }
    task();
  };
  return true;
}

void TaskGate::post(std::function<void()> fn) {
  if (wrap(fn))
    loop_.post(std::move(fn));
}

guint TaskGate::schedule(std::chrono::milliseconds delay, std::function<void()> fn) {
  return wrap(fn) ? loop_.schedule(delay, std::move(fn)) : 0;
}

}  // namespace gstmtx
