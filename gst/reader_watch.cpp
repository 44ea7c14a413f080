#include "reader_watch.h"

#include <json-glib/json-glib.h>
#include <time.h>

#include <algorithm>
#include <cmath>

namespace gstmtx {

namespace {

/* The root object of `json`, or nullptr (free with json_node_unref). */
JsonNode *parse_object(const std::string &json) {
  g_autoptr(JsonParser) parser = json_parser_new();
  if (!json_parser_load_from_data(parser, json.data(), static_cast<gssize>(json.size()), nullptr))
    return nullptr;
  JsonNode *root = json_parser_get_root(parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root))
    return nullptr;
  return json_node_copy(root);
}

/* A string member of `object`, or "" when absent or not a string. */
std::string string_member(JsonObject *object, const char *name) {
  JsonNode *node = json_object_get_member(object, name);
  if (!node || !JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_STRING)
    return "";
  const char *s = json_node_get_string(node);
  return s ? s : "";
}

std::string escape_segments(const std::string &path) {
  g_autofree char *escaped = g_uri_escape_string(path.c_str(), "/", FALSE);
  return escaped ? escaped : "";
}

std::string trim_slash(std::string s) {
  while (!s.empty() && s.back() == '/')
    s.pop_back();
  return s;
}

}  // namespace

std::optional<std::vector<PathReader>> parse_path_readers(const std::string &json, std::string *error) {
  auto fail = [error](const char *why) -> std::optional<std::vector<PathReader>> {
    if (error)
      *error = why;
    return std::nullopt;
  };
  g_autoptr(JsonNode) root = parse_object(json);
  if (!root)
    return fail("not a JSON object");
  JsonObject *object = json_node_get_object(root);
  JsonNode *readers = json_object_get_member(object, "readers");
  if (!readers)
    return fail("no readers member");
  std::vector<PathReader> out;
  if (JSON_NODE_HOLDS_NULL(readers))
    return out; /* Go's nil slice */
  if (!JSON_NODE_HOLDS_ARRAY(readers))
    return fail("readers is not a list");
  JsonArray *array = json_node_get_array(readers);
  for (guint i = 0; i < json_array_get_length(array); ++i) {
    JsonNode *item = json_array_get_element(array, i);
    if (!JSON_NODE_HOLDS_OBJECT(item))
      return fail("a reader is not an object");
    JsonObject *reader = json_node_get_object(item);
    PathReader r{string_member(reader, "type"), string_member(reader, "id")};
    if (r.type.empty())
      return fail("a reader has no type");
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<bool> parse_webrtc_session_established(const std::string &json) {
  g_autoptr(JsonNode) root = parse_object(json);
  if (!root)
    return std::nullopt;
  JsonNode *node = json_object_get_member(json_node_get_object(root), "peerConnectionEstablished");
  if (!node || !JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_BOOLEAN)
    return std::nullopt;
  return json_node_get_boolean(node) != FALSE;
}

bool is_api_error_body(const std::string &json) {
  g_autoptr(JsonNode) root = parse_object(json);
  return root && string_member(json_node_get_object(root), "status") == "error";
}

std::string readers_part(const std::string &json) {
  /* "readers" as a member name (followed by ':'), then its value: null or a list, up to the
   * bracket that closes it (brackets inside strings do not count) */
  for (auto at = json.find("\"readers\""); at != std::string::npos; at = json.find("\"readers\"", at + 1)) {
    std::size_t i = json.find_first_not_of(" \t\r\n", at + 9);
    if (i == std::string::npos || json[i] != ':')
      continue;
    i = json.find_first_not_of(" \t\r\n", i + 1);
    if (i == std::string::npos)
      return "";
    if (json.compare(i, 4, "null") == 0)
      return "null";
    if (json[i] != '[')
      return "";
    int depth = 0;
    bool in_string = false;
    for (std::size_t j = i; j < json.size(); ++j) {
      const char c = json[j];
      if (in_string) {
        if (c == '\\')
          ++j;
        else if (c == '"')
          in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '[' || c == '{') {
        ++depth;
      } else if ((c == ']' || c == '}') && --depth == 0) {
        return json.substr(i, j - i + 1);
      }
    }
    return "";
  }
  return "";
}

std::string default_api_location(const std::string &host) {
  const bool ipv6 = host.find(':') != std::string::npos;
  return "http://" + (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(kDefaultApiPort);
}

std::string path_get_url(const std::string &api_location, const std::string &path) {
  return trim_slash(api_location) + "/v3/paths/get/" + escape_segments(path);
}

std::string webrtc_session_get_url(const std::string &api_location, const std::string &id) {
  g_autofree char *escaped = g_uri_escape_string(id.c_str(), nullptr, FALSE);
  return trim_slash(api_location) + "/v3/webrtcsessions/get/" + (escaped ? escaped : "");
}

ApiAnswer classify_path_answer(const HttpResponse &response) {
  switch (response.failure) {
  case HttpFailure::None:
    break;
  case HttpFailure::InvalidUrl:
  case HttpFailure::TooLarge:
  case HttpFailure::RedirectLoop:
    return ApiAnswer::NotMediamtx;
  default:
    return ApiAnswer::Unreachable;
  }
  if (response.status == 401 || response.status == 403)
    return ApiAnswer::Unauthorized;
  if (response.status == 404)
    return is_api_error_body(response.body) ? ApiAnswer::NoPath : ApiAnswer::NotMediamtx;
  if (response.status == 200 && parse_path_readers(response.body))
    return ApiAnswer::Readers;
  return ApiAnswer::NotMediamtx;
}

std::string explain_api_problem(ApiAnswer answer, const std::string &api_location, const std::string &user,
                                const HttpResponse &response) {
  const std::string who = user.empty() ? "anonymous users" : "user '" + user + "'";
  const std::string grant = "grant the 'api' action to " + who +
                            " in MediaMTX's authInternalUsers (permissions: - action: api), or set api-location";
  std::string text = "keyframe-on-join is off: ";
  switch (answer) {
  case ApiAnswer::Unreachable:
    text += "MediaMTX's control API at " + api_location + " cannot be reached (" + response.error +
            "): enable it (api: true, apiAddress) and " + grant;
    break;
  case ApiAnswer::Unauthorized:
    text += "MediaMTX's control API at " + api_location + " refused " + who + " (HTTP " +
            std::to_string(response.status) + "): " + grant;
    break;
  case ApiAnswer::NotMediamtx:
    text += api_location + " does not answer as MediaMTX's v3 control API (" +
            (response.ok() ? "HTTP " + std::to_string(response.status) : response.error) +
            "): set api-location to MediaMTX's API (apiAddress, :9997 by default)";
    break;
  case ApiAnswer::Readers:
  case ApiAnswer::NoPath:
    return "";
  }
  return text + ". New viewers wait for the next regular keyframe";
}

std::vector<PathReader> ReaderSet::update(const std::vector<PathReader> &now) {
  std::vector<PathReader> joined;
  std::set<PathReader> next;
  for (const auto &r : now) {
    if (!next.insert(r).second)
      continue; /* listed twice */
    if (!known_.count(r))
      joined.push_back(r);
  }
  known_.swap(next);
  return joined;
}

std::chrono::milliseconds choose_poll_interval(std::chrono::nanoseconds cpu_per_poll, const PollBudget &budget) {
  using std::chrono::milliseconds;
  if (cpu_per_poll.count() <= 0 || !(budget.cpu_share > 0))
    return budget.floor;
  /* cost / share, rounded up to whole ms */
  const double ms = std::ceil(static_cast<double>(cpu_per_poll.count()) / 1e6 / budget.cpu_share);
  if (ms >= static_cast<double>(budget.ceiling.count()))
    return std::max(budget.ceiling, budget.floor);
  return std::max(milliseconds{static_cast<milliseconds::rep>(ms)}, budget.floor);
}

void PollCostMeter::add(std::chrono::nanoseconds sample) {
  const double ns = static_cast<double>(std::max<std::chrono::nanoseconds::rep>(sample.count(), 0));
  mean_ns_ = samples_ == 0 ? ns : mean_ns_ + (ns - mean_ns_) / 4;
  ++samples_;
}

std::optional<std::chrono::nanoseconds> PollCostMeter::estimate() const {
  if (samples_ == 0)
    return std::nullopt;
  return std::chrono::nanoseconds{static_cast<std::chrono::nanoseconds::rep>(std::llround(mean_ns_))};
}

std::chrono::nanoseconds thread_cpu_time() {
  struct timespec ts {};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec};
}

std::optional<std::chrono::milliseconds> RateLimit::request(Clock::time_point now) {
  if (due_)
    return std::nullopt;
  due_ = true;
  if (!last_ || now - *last_ >= min_gap_)
    return std::chrono::milliseconds{0};
  return std::chrono::duration_cast<std::chrono::milliseconds>(*last_ + min_gap_ - now) + std::chrono::milliseconds{1};
}

void RateLimit::done(Clock::time_point now) {
  due_ = false;
  last_ = now;
}

/* ------------------------------------------------------------------------------------------ */

ReaderWatch::ReaderWatch(EventLoop &loop, HttpClient &http, Config config, Events events)
    : loop_(loop), http_(http), config_(std::move(config)), events_(std::move(events)),
      interval_(config_.interval > std::chrono::milliseconds{0} ? config_.interval : config_.budget.floor) {
  if (!config_.thread_cpu)
    config_.thread_cpu = thread_cpu_time;
  if (config_.plain_http && PlainHttpGet::supports(path_get_url(config_.api_location, config_.path)))
    plain_ = std::make_unique<PlainHttpGet>(loop_, "gst-mediamtx");
}

void ReaderWatch::send(HttpRequest request, HttpClient::Callback done) {
  ++requests_;
  if (plain_)
    plain_->get(std::move(request), std::move(done));
  else
    http_.send(std::move(request), std::move(done));
}

ReaderWatch::~ReaderWatch() { *alive_ = false; }

void ReaderWatch::start() { poll_path(); }

void ReaderWatch::after(std::chrono::milliseconds delay, std::function<void()> fn) {
  std::weak_ptr<bool> alive = alive_;
  loop_.schedule(delay, [alive, fn = std::move(fn)] {
    auto a = alive.lock();
    if (a && *a)
      fn();
  });
}

void ReaderWatch::poll_path() {
  if (stopped_)
    return;
  HttpRequest req;
  req.url = path_get_url(config_.api_location, config_.path);
  req.headers = config_.auth;
  req.timeout = std::chrono::milliseconds{2000};
  req.max_redirects = 0;
  req.max_body = 1024 * 1024; /* a path with thousands of readers */
  std::weak_ptr<bool> alive = alive_;
  send(std::move(req), [this, alive](HttpResponse response) {
    auto a = alive.lock();
    if (a && *a)
      on_path_answer(response);
  });
}

void ReaderWatch::on_path_answer(const HttpResponse &response) {
  if (response.failure == HttpFailure::Cancelled)
    return;
  /* the readers of the last answer, as they were: nothing to parse */
  std::string part = response.ok() && response.status == 200 ? readers_part(response.body) : std::string();
  const bool unchanged = !part.empty() && part == last_readers_part_;
  const ApiAnswer answer = unchanged ? ApiAnswer::Readers : classify_path_answer(response);
  switch (answer) {
  case ApiAnswer::Readers:
  case ApiAnswer::NoPath: {
    answered_ = true;
    unreachable_since_.reset();
    std::vector<PathReader> now;
    if (unchanged) {
      now = last_readers_;
    } else if (answer == ApiAnswer::Readers) {
      now = *parse_path_readers(response.body);
      ++parsed_;
      last_readers_part_ = std::move(part);
      last_readers_ = now;
    } else {
      last_readers_part_.clear();
      last_readers_.clear();
    }
    const auto t = std::chrono::steady_clock::now();
    for (const auto &reader : readers_.update(now)) {
      window_joined_ = true;
      if (reader.type == "webRTCSession" && !reader.id.empty()) {
        /* media flows to it only once its peer connection is up */
        pending_[reader.id] = t;
        poll_pending(reader.id);
      } else if (events_.reader_ready) {
        events_.reader_ready(reader);
      }
    }
    /* readers gone before they were established */
    for (auto it = pending_.begin(); it != pending_.end();) {
      bool listed = false;
      for (const auto &r : now)
        listed = listed || r.id == it->first;
      it = listed ? std::next(it) : pending_.erase(it);
    }
    calibrate();
    after(interval_, [this] { poll_path(); });
    return;
  }
  case ApiAnswer::Unreachable: {
    window_start_.reset(); /* the next window is a retry (a new connection), not a poll */
    const auto t = std::chrono::steady_clock::now();
    if (!unreachable_since_)
      unreachable_since_ = t;
    if (answered_ && t - *unreachable_since_ < kUnreachableRetry) {
      after(kBlipRetry, [this] { poll_path(); });
      return;
    }
    if (!reported_ && events_.unavailable) {
      reported_ = true;
      events_.unavailable(answer, explain_api_problem(answer, config_.api_location, config_.user, response));
    }
    after(kUnreachableRetry, [this] { poll_path(); });
    return;
  }
  case ApiAnswer::Unauthorized:
  case ApiAnswer::NotMediamtx:
    stopped_ = true;
    if (!reported_ && events_.unavailable) {
      reported_ = true;
      events_.unavailable(answer, explain_api_problem(answer, config_.api_location, config_.user, response));
    }
    return;
  }
}

void ReaderWatch::calibrate() {
  const std::chrono::nanoseconds cpu = config_.thread_cpu();
  /* one path request since the last answer, no reader joined: the window is one poll */
  if (window_start_ && requests_ == window_requests_ + 1 && !window_joined_)
    meter_.add(cpu - *window_start_);
  window_start_ = cpu;
  window_requests_ = requests_;
  window_joined_ = false;
  if (config_.interval <= std::chrono::milliseconds{0} && meter_.estimate())
    interval_ = choose_poll_interval(*meter_.estimate(), config_.budget);
}

void ReaderWatch::poll_pending(const std::string &id) {
  auto it = pending_.find(id);
  if (stopped_ || it == pending_.end())
    return;
  if (std::chrono::steady_clock::now() - it->second > config_.pending_timeout) {
    pending_.erase(it); /* never established: nothing to send it */
    return;
  }
  HttpRequest req;
  req.url = webrtc_session_get_url(config_.api_location, id);
  req.headers = config_.auth;
  req.timeout = std::chrono::milliseconds{2000};
  req.max_redirects = 0;
  std::weak_ptr<bool> alive = alive_;
  send(std::move(req), [this, alive, id](HttpResponse response) {
    auto a = alive.lock();
    if (!a || !*a || response.failure == HttpFailure::Cancelled)
      return;
    auto it = pending_.find(id);
    if (it == pending_.end())
      return;
    if (response.ok() && response.status == 404) {
      pending_.erase(it); /* the session ended */
      return;
    }
    if (response.ok() && response.status == 200 && parse_webrtc_session_established(response.body).value_or(false)) {
      pending_.erase(it);
      if (events_.reader_ready)
        events_.reader_ready(PathReader{"webRTCSession", id});
      return;
    }
    after(config_.pending_interval, [this, id] { poll_pending(id); });
  });
}

}  // namespace gstmtx
