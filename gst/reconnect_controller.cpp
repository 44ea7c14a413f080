#include "reconnect_controller.h"

#include <algorithm>

GST_DEBUG_CATEGORY_STATIC(mtx_reconnect_debug);
#define GST_CAT_DEFAULT mtx_reconnect_debug

namespace gstmtx {

namespace {
constexpr guint kMaxDelayMs = 3600000; /* one hour: the bound of both delay properties */

void ensure_debug_category() {
  static gsize done = 0;
  if (g_once_init_enter(&done)) {
    GST_DEBUG_CATEGORY_INIT(mtx_reconnect_debug, "mtxreconnect", 0, "gst-mediamtx reconnection controller");
    g_once_init_leave(&done, 1);
  }
}
}  // namespace

RetryPolicy RetrySettings::policy() const {
  RetryPolicy p;
  p.initial_delay = Millis{retry_delay};
  p.max_delay = Millis{std::max(max_retry_delay, retry_delay)};
  p.max_retries = max_retries;
  p.jitter = retry_jitter;
  return p;
}

ReconnectController::ReconnectController(GstElement *element, std::string element_name, StreamDirection direction)
    : element_(element), name_(std::move(element_name)), direction_(direction) {
  ensure_debug_category();
}

ReconnectController::~ReconnectController() {
  gate_.reset();
  loop_.reset(); /* left running when READY->NULL came from the control thread itself */
}

/* ---- properties ---- */

void ReconnectController::install_properties(GObjectClass *klass, guint first_id) {
  const auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);
  const RetrySettings defaults;
  g_object_class_install_property(klass, first_id + kRetryDelay,
      g_param_spec_uint("retry-delay", "Retry delay",
                        "Milliseconds to wait after the first failure of an outage. Each further failed attempt "
                        "of the same outage waits longer (x2, +/- retry-jitter), but never more than a fifth of "
                        "how long the outage has lasted nor max-retry-delay: a server back after a few seconds "
                        "is met within about retry-delay, one down for minutes (or a session that keeps failing "
                        "before delivering anything) is tried every max-retry-delay. A session that delivered "
                        "media ends the outage: the next failure waits retry-delay again. A server's "
                        "Retry-After is honoured (up to 5 minutes). Applies from the next failure",
                        0, kMaxDelayMs, defaults.retry_delay, rw));
  g_object_class_install_property(klass, first_id + kMaxRetryDelay,
      g_param_spec_uint("max-retry-delay", "Maximum retry delay",
                        "Upper bound of the wait between attempts (ms); at least retry-delay", 0, kMaxDelayMs,
                        defaults.max_retry_delay, rw));
  g_object_class_install_property(klass, first_id + kMaxRetries,
      g_param_spec_int("max-retries", "Maximum retries",
                       "Failed attempts in a row (one outage) before giving up with an error; -1: retry forever, "
                       "0: never retry",
                       -1, G_MAXINT, defaults.max_retries, rw));
  g_object_class_install_property(klass, first_id + kRetryJitter,
      g_param_spec_double("retry-jitter", "Retry jitter",
                          "Random spread of each wait, as a fraction (+/-), so many clients do not all come back "
                          "at the same moment after a server restart",
                          0.0, 1.0, defaults.retry_jitter, rw));
  g_object_class_install_property(klass, first_id + kConnectionState,
      g_param_spec_enum("connection-state", "Connection state",
                        "Where the connection stands, as the state of the gst-mediamtx-status messages "
                        "(notify::connection-state on every change)",
                        connection_state_get_type(), static_cast<gint>(ConnectionState::Idle),
                        static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  gst_type_mark_as_plugin_api(connection_state_get_type(), static_cast<GstPluginAPIFlags>(0));
}

bool ReconnectController::set_property(guint first_id, guint prop_id, const GValue *value) {
  if (prop_id < first_id || prop_id >= first_id + kPropertyCount)
    return false;
  std::lock_guard<std::mutex> guard(lock_);
  switch (prop_id - first_id) {
  case kRetryDelay: settings_.retry_delay = g_value_get_uint(value); break;
  case kMaxRetryDelay: settings_.max_retry_delay = g_value_get_uint(value); break;
  case kMaxRetries: settings_.max_retries = g_value_get_int(value); break;
  case kRetryJitter: settings_.retry_jitter = g_value_get_double(value); break;
  default: break; /* read-only */
  }
  return true;
}

bool ReconnectController::get_property(guint first_id, guint prop_id, GValue *value) const {
  if (prop_id < first_id || prop_id >= first_id + kPropertyCount)
    return false;
  std::lock_guard<std::mutex> guard(lock_);
  switch (prop_id - first_id) {
  case kRetryDelay: g_value_set_uint(value, settings_.retry_delay); break;
  case kMaxRetryDelay: g_value_set_uint(value, settings_.max_retry_delay); break;
  case kMaxRetries: g_value_set_int(value, settings_.max_retries); break;
  case kRetryJitter: g_value_set_double(value, settings_.retry_jitter); break;
  case kConnectionState: g_value_set_enum(value, static_cast<gint>(state_)); break;
  default: break;
  }
  return true;
}

RetrySettings ReconnectController::settings() const {
  std::lock_guard<std::mutex> guard(lock_);
  return settings_;
}

/* ---- lifecycle ---- */

void ReconnectController::prepare() {
  if (loop_)
    return;
  loop_ = std::make_unique<EventLoop>("mtx-" + name_);
  gate_ = std::make_unique<TaskGate>(*loop_);
}

void ReconnectController::start() {
  /* the gate is closed: no task runs, the control state is ours */
  backoff_ = Backoff(settings().policy());
  retry_timer_ = 0;
  finished_ = false;
  {
    std::lock_guard<std::mutex> guard(lock_);
    sessions_ = 0;
    reconnects_ = 0;
    attempt_ = 0;
    last_error_.clear();
  }
  gate_->open();
}

bool ReconnectController::stop(const std::function<void()> &last) {
  if (!gate_ || !gate_->close([this, &last] {
        cancel_retry();
        if (last)
          last();
      }))
    return false;
  post_status(ConnectionState::Stopped, "");
  return true;
}

void ReconnectController::release() {
  if (!loop_ || loop_->on_loop_thread())
    return; /* the application set NULL from a bus handler on this thread: the loop ends with us */
  gate_.reset();
  loop_.reset();
}

void ReconnectController::post(std::function<void()> fn) {
  if (gate_)
    gate_->post(std::move(fn));
}

/* ---- sessions ---- */

unsigned ReconnectController::begin_session(const std::string &reason, bool announce) {
  const unsigned session = ++session_;
  int attempt;
  {
    std::lock_guard<std::mutex> guard(lock_);
    sessions_++;
    attempt = attempt_;
  }
  GST_DEBUG_OBJECT(element_, "session %u (attempt %d)", session, attempt);
  if (announce)
    post_status(ConnectionState::Connecting, reason);
  return session;
}

void ReconnectController::connected(unsigned session, const std::string &reason) {
  if (session != session_ || finished_)
    return;
  post_status(ConnectionState::Connected, reason);
}

void ReconnectController::delivered(unsigned session) {
  if (delivered_session_.exchange(session) == session)
    return;
  post([this, session] {
    if (session != session_)
      return;
    backoff_.on_delivered();
    std::lock_guard<std::mutex> guard(lock_);
    attempt_ = 0;
  });
}

void ReconnectController::report_failure(unsigned session, Failure failure) {
  post([this, session, failure = std::move(failure)]() mutable { handle_failure(session, std::move(failure)); });
}

void ReconnectController::handle_failure(unsigned session, Failure failure) {
  if (finished_ || session != session_)
    return;
  if (retry_timer_ != 0) {
    /* this session failed already and a retry is due: only a fatal verdict (the 401 after a
     * generic failure) changes anything */
    if (!failure.fatal())
      return;
    give_up(failure);
    return;
  }
  GST_INFO_OBJECT(element_, "session %u failed (%s): %s", session, failure_kind_name(failure.kind),
                  failure.message.c_str());
  {
    std::lock_guard<std::mutex> guard(lock_);
    last_error_ = failure.message;
  }
  hooks_.teardown(failure);
  if (!running() || finished_)
    return; /* the application stopped the element from a bus handler during the teardown */
  if (failure.fatal()) {
    give_up(failure);
    return;
  }
  backoff_.set_policy(settings().policy());
  const auto delay = backoff_.next_delay(Clock::now(), failure.retry_after);
  if (!delay) {
    give_up(failure);
    return;
  }
  {
    std::lock_guard<std::mutex> guard(lock_);
    attempt_ = backoff_.attempts();
    reconnects_++;
  }
  GST_INFO_OBJECT(element_, "retry %d in %lld ms", backoff_.attempts(), static_cast<long long>(delay->count()));
  schedule_retry(*delay);
  if (!hooks_.retrying || !hooks_.retrying(failure, *delay))
    post_status(ConnectionState::Reconnecting, failure.message, delay->count());
}

void ReconnectController::schedule_retry(Millis delay) {
  cancel_retry();
  retry_timer_ = gate_->schedule(delay, [this] {
    retry_timer_ = 0;
    if (!finished_)
      hooks_.start();
  });
}

void ReconnectController::cancel_retry() {
  if (retry_timer_ && loop_)
    loop_->cancel(retry_timer_);
  retry_timer_ = 0;
}

void ReconnectController::finish(ConnectionState state, const std::string &reason) {
  cancel_retry();
  finished_ = true;
  post_status(state, reason);
}

void ReconnectController::give_up(const Failure &failure) {
  cancel_retry();
  if (hooks_.giving_up && hooks_.giving_up(failure))
    return;
  finish(ConnectionState::Failed, failure.message);
  GQuark domain;
  int code;
  failure_error_code(failure, direction_, &domain, &code);
  const RetrySettings s = settings();
  std::string text = failure.message;
  std::string debug = failure.debug;
  if (!failure.fatal()) {
    /* every retry failed, and so did the first attempt */
    const int failed = backoff_.attempts() + 1;
    text = "Gave up after " + std::to_string(failed) + (failed == 1 ? " attempt: " : " attempts: ") + failure.message;
    debug += std::string(debug.empty() ? "" : "\n") + name_ + " gave up (max-retries=" +
             std::to_string(s.max_retries) + "); raise max-retries, or set it to -1 to retry forever";
  }
  GST_WARNING_OBJECT(element_, "giving up: %s", text.c_str());
  gst_element_message_full(element_, GST_MESSAGE_ERROR, domain, code, g_strdup(text.c_str()),
                           g_strdup(debug.c_str()), __FILE__, GST_FUNCTION, __LINE__);
}

/* ---- status and stats ---- */

void ReconnectController::post_status(ConnectionState state, const std::string &reason, gint64 retry_in_ms,
                                      const std::string &transport) {
  StatusUpdate update;
  bool changed;
  {
    std::lock_guard<std::mutex> guard(lock_);
    changed = state_ != state;
    state_ = state;
    update.attempt = attempt_;
    update.transport = transport.empty() ? transport_ : transport;
  }
  update.state = state;
  update.reason = reason;
  update.retry_in_ms = retry_in_ms;
  GST_INFO_OBJECT(element_, "status %s (attempt %d) %s", connection_state_name(state), update.attempt,
                  reason.c_str());
  if (hooks_.status)
    hooks_.status(update);
  gst_element_post_message(element_, status_message_new(GST_OBJECT(element_), update));
  if (changed && g_object_class_find_property(G_OBJECT_GET_CLASS(element_), "connection-state"))
    g_object_notify(G_OBJECT(element_), "connection-state");
}

ConnectionState ReconnectController::state() const {
  std::lock_guard<std::mutex> guard(lock_);
  return state_;
}

void ReconnectController::set_transport(const std::string &transport) {
  std::lock_guard<std::mutex> guard(lock_);
  transport_ = transport;
}

void ReconnectController::add_stats(GstStructure *stats) const {
  std::lock_guard<std::mutex> guard(lock_);
  gst_structure_set(stats, "state", G_TYPE_STRING, connection_state_name(state_), "attempts", G_TYPE_INT, attempt_,
                    "sessions", G_TYPE_INT, static_cast<gint>(sessions_), "reconnects", G_TYPE_INT,
                    static_cast<gint>(reconnects_), "last-error", G_TYPE_STRING, last_error_.c_str(), nullptr);
}

}  // namespace gstmtx
