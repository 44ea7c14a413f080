/* Unit tests of gst/reader_watch: MediaMTX's API answers, the reader diff, the keyframe rate limit,
 * and the watch's polling against a scripted local HTTP server (no MediaMTX, no namespace). */
#include <algorithm>
#include <gst/check/gstcheck.h>
#include <libsoup/soup.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include "event_loop.h"
#include "http_client.h"
#include "plain_http_get.h"
#include "reader_watch.h"

using namespace gstmtx;
using namespace std::chrono_literals;

#define assert_str(actual, expected)                                                                               \
  do {                                                                                                             \
    const std::string actual_copy_ = (actual);                                                                     \
    fail_unless_equals_string(actual_copy_.c_str(), expected);                                                     \
  } while (0)

/* The shape MediaMTX v1.20.1 answers /v3/paths/get/<name> with (internal/defs/api_path.go). */
static const char *kPathAnswer =
    "{\"name\":\"cam\",\"confName\":\"all_others\",\"ready\":true,\"readyTime\":\"2026-12-01T19:00:00Z\","
    "\"available\":true,\"online\":true,\"source\":{\"type\":\"rtspSession\",\"id\":\"s1\"},"
    "\"tracks\":[\"H264\"],\"tracks2\":[],\"readers\":[{\"type\":\"webRTCSession\",\"id\":\"a-1\"},"
    "{\"type\":\"rtspSession\",\"id\":\"r-2\"}],\"inboundBytes\":10,\"outboundBytes\":5}";

GST_START_TEST(test_parse_path_readers) {
  auto readers = parse_path_readers(kPathAnswer);
  fail_unless(readers.has_value());
  fail_unless_equals_int(readers->size(), 2);
  assert_str((*readers)[0].type, "webRTCSession");
  assert_str((*readers)[0].id, "a-1");
  assert_str((*readers)[1].type, "rtspSession");
  fail_unless(parse_path_readers("{\"readers\":[]}")->empty());
  fail_unless(parse_path_readers("{\"readers\":null}")->empty());
  std::string error;
  fail_if(parse_path_readers("{\"name\":\"cam\"}", &error).has_value());
  assert_str(error, "no readers member");
  fail_if(parse_path_readers("[1,2]").has_value());
  fail_if(parse_path_readers("not json").has_value());
  fail_if(parse_path_readers("{\"readers\":{}}").has_value());
  fail_if(parse_path_readers("{\"readers\":[1]}").has_value());
  fail_if(parse_path_readers("{\"readers\":[{\"id\":\"x\"}]}").has_value());
  fail_if(parse_path_readers("").has_value());
}
GST_END_TEST;

GST_START_TEST(test_parse_session_and_errors) {
  fail_unless(parse_webrtc_session_established("{\"id\":\"a\",\"peerConnectionEstablished\":true}").value());
  fail_if(parse_webrtc_session_established("{\"peerConnectionEstablished\":false}").value());
  fail_if(parse_webrtc_session_established("{\"peerConnectionEstablished\":\"yes\"}").has_value());
  fail_if(parse_webrtc_session_established("{}").has_value());
  fail_unless(is_api_error_body("{\"status\":\"error\",\"error\":\"path not found\"}"));
  fail_if(is_api_error_body("404 page not found"));
  fail_if(is_api_error_body("{\"status\":\"ok\"}"));
}
GST_END_TEST;

GST_START_TEST(test_urls) {
  assert_str(default_api_location("10.0.0.5"), "http://10.0.0.5:9997");
  assert_str(default_api_location("cam.example"), "http://cam.example:9997");
  assert_str(default_api_location("fd00::1"), "http://[fd00::1]:9997");
  assert_str(path_get_url("http://h:9997", "cam"), "http://h:9997/v3/paths/get/cam");
  assert_str(path_get_url("http://h:9997/", "site/cam 1"), "http://h:9997/v3/paths/get/site/cam%201");
  assert_str(webrtc_session_get_url("http://h:9997", "a/b"), "http://h:9997/v3/webrtcsessions/get/a%2Fb");
}
GST_END_TEST;

static HttpResponse answer(unsigned status, const std::string &body) {
  HttpResponse r;
  r.status = status;
  r.body = body;
  return r;
}

GST_START_TEST(test_classify) {
  fail_unless(classify_path_answer(answer(200, kPathAnswer)) == ApiAnswer::Readers);
  fail_unless(classify_path_answer(answer(404, "{\"status\":\"error\",\"error\":\"path not found\"}")) ==
              ApiAnswer::NoPath);
  fail_unless(classify_path_answer(answer(404, "404 page not found")) == ApiAnswer::NotMediamtx);
  fail_unless(classify_path_answer(answer(401, "{\"status\":\"error\",\"error\":\"authentication error\"}")) ==
              ApiAnswer::Unauthorized);
  fail_unless(classify_path_answer(answer(403, "")) == ApiAnswer::Unauthorized);
  fail_unless(classify_path_answer(answer(200, "<html>")) == ApiAnswer::NotMediamtx);
  fail_unless(classify_path_answer(answer(500, "{}")) == ApiAnswer::NotMediamtx);
  HttpResponse refused;
  refused.failure = HttpFailure::Network;
  refused.error = "Connection refused";
  fail_unless(classify_path_answer(refused) == ApiAnswer::Unreachable);
  refused.failure = HttpFailure::Timeout;
  fail_unless(classify_path_answer(refused) == ApiAnswer::Unreachable);

  std::string text = explain_api_problem(ApiAnswer::Unauthorized, "http://h:9997", "pub", answer(401, ""));
  fail_unless(text.find("'api'") != std::string::npos, "%s", text.c_str());
  fail_unless(text.find("user 'pub'") != std::string::npos, "%s", text.c_str());
  fail_unless(text.find("401") != std::string::npos, "%s", text.c_str());
  fail_unless(explain_api_problem(ApiAnswer::Readers, "x", "", answer(200, "")).empty());
}
GST_END_TEST;

GST_START_TEST(test_reader_set) {
  ReaderSet set;
  std::vector<PathReader> a{{"webRTCSession", "1"}, {"rtspSession", "2"}};
  fail_unless_equals_int(set.update(a).size(), 2);
  fail_unless_equals_int(set.update(a).size(), 0);
  a.push_back({"webRTCSession", "3"});
  auto joined = set.update(a);
  fail_unless_equals_int(joined.size(), 1);
  assert_str(joined[0].id, "3");
  /* one left, then came back under the same id: joined again */
  fail_unless_equals_int(set.update({{"webRTCSession", "1"}}).size(), 0);
  fail_unless_equals_int(set.update(a).size(), 2);
  /* listed twice: once */
  fail_unless_equals_int(set.update({{"x", "9"}, {"x", "9"}}).size(), 1);
  fail_unless_equals_int(set.size(), 1);
}
GST_END_TEST;

GST_START_TEST(test_rate_limit) {
  RateLimit limit(500ms);
  auto t = RateLimit::Clock::now();
  auto d = limit.request(t);
  fail_unless(d && d->count() == 0);
  fail_if(limit.request(t).has_value()); /* merged into the one due */
  limit.done(t);
  d = limit.request(t + 100ms);
  fail_unless(d.has_value());
  fail_unless(d->count() >= 400 && d->count() <= 401, "%d", static_cast<int>(d->count()));
  fail_if(limit.request(t + 200ms).has_value());
  limit.done(t + 501ms);
  d = limit.request(t + 1200ms);
  fail_unless(d && d->count() == 0);
}
GST_END_TEST;

/* The path poll's interval from its CPU cost: cost / 0.25 %, within [100 ms, 1 s]. */
GST_START_TEST(test_choose_poll_interval) {
  const PollBudget budget;
  auto chosen = [&](std::chrono::nanoseconds cost) { return static_cast<int>(choose_poll_interval(cost, budget).count()); };
  fail_unless_equals_int(chosen(500us), 200);
  fail_unless_equals_int(chosen(656us), 263); /* a 164 us poll at 4x: a Pi 4, estimated */
  fail_unless_equals_int(chosen(164us), 100); /* this VM's poll: the floor */
  fail_unless_equals_int(chosen(250us), 100);
  fail_unless_equals_int(chosen(251us), 101);
  fail_unless_equals_int(chosen(2500us), 1000);
  fail_unless_equals_int(chosen(5ms), 1000);   /* the ceiling */
  fail_unless_equals_int(chosen(1h), 1000);
  fail_unless_equals_int(chosen(0ns), 100);    /* nothing measured */
  fail_unless_equals_int(chosen(-1ms), 100);
  PollBudget tight{0.001, 20ms, 5000ms};
  fail_unless_equals_int(choose_poll_interval(500us, tight).count(), 500);
  fail_unless_equals_int(choose_poll_interval(10us, tight).count(), 20);
  PollBudget broken{0.0, 100ms, 1000ms};
  fail_unless_equals_int(choose_poll_interval(500us, broken).count(), 100);
}
GST_END_TEST;

GST_START_TEST(test_poll_cost_meter) {
  PollCostMeter meter;
  fail_if(meter.estimate().has_value());
  meter.add(400us);
  fail_unless_equals_int(meter.estimate()->count(), 400000);
  meter.add(800us); /* a quarter of the way */
  fail_unless_equals_int(meter.estimate()->count(), 500000);
  for (int i = 0; i < 40; i++)
    meter.add(200us);
  fail_unless(std::abs(static_cast<long>(meter.estimate()->count()) - 200000) < 1000);
  fail_unless_equals_int(meter.samples(), 42);
  /* the real clock moves with work done on this thread */
  const auto t0 = thread_cpu_time();
  volatile double x = 1;
  for (int i = 0; i < 2000000; i++)
    x = x * 1.0000001 + 1e-9;
  fail_unless(thread_cpu_time() > t0);
}
GST_END_TEST;

/* The readers' text decides whether an answer needs parsing: the same with other counters, not
 * the same when a reader comes or goes; brackets inside strings do not end it. */
GST_START_TEST(test_readers_part) {
  const std::string a = kPathAnswer;
  std::string counted = a;
  counted.replace(counted.find("\"inboundBytes\":10"), 17, "\"inboundBytes\":99999");
  assert_str(readers_part(a), "[{\"type\":\"webRTCSession\",\"id\":\"a-1\"},{\"type\":\"rtspSession\",\"id\":\"r-2\"}]");
  fail_unless(readers_part(a) == readers_part(counted));
  std::string fewer = a;
  fewer.replace(fewer.find(",{\"type\":\"rtspSession\",\"id\":\"r-2\"}"), 34, "");
  fail_unless(readers_part(a) != readers_part(fewer));
  assert_str(readers_part("{\"readers\":null,\"x\":1}"), "null");
  assert_str(readers_part("{\"readers\" : [ ] }"), "[ ]");
  assert_str(readers_part("{\"readers\":[{\"id\":\"]x[\"}],\"b\":2}"), "[{\"id\":\"]x[\"}]");
  assert_str(readers_part("{\"name\":\"readers\",\"readers\":[]}"), "[]"); /* a value, then the member */
  assert_str(readers_part("{\"ready\":true}"), "");
  assert_str(readers_part("{\"readers\":[{\"id\":\"a\""), ""); /* cut short: parse it */
}
GST_END_TEST;

static HttpResponseReader::Result feed_all(HttpResponseReader &r, const std::string &text, std::size_t piece) {
  HttpResponseReader::Result result = HttpResponseReader::Result::NeedMore;
  for (std::size_t i = 0; i < text.size() && result == HttpResponseReader::Result::NeedMore; i += piece)
    result = r.feed(text.data() + i, std::min(piece, text.size() - i));
  return result;
}

/* Content-Length, chunked (fed a byte at a time and at once), framed by the close, HTTP/1.0,
 * and what it refuses. */
GST_START_TEST(test_response_reader) {
  using R = HttpResponseReader::Result;
  const std::string plain = "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nDate: x\r\n"
                            "Content-Length: 13\r\n\r\n{\"readers\":1}";
  for (std::size_t piece : {std::size_t(1), std::size_t(7), plain.size()}) {
    HttpResponseReader r;
    fail_unless(feed_all(r, plain, piece) == R::Complete);
    fail_unless_equals_int(r.response().status, 200);
    assert_str(r.response().body, "{\"readers\":1}");
    assert_str(r.response().content_type, "application/json");
    assert_str(r.response().header("date"), "x");
    fail_unless(r.keep_alive());
  }
  /* a second response's bytes behind it are not part of it */
  {
    HttpResponseReader r;
    fail_unless(feed_all(r, plain + "HTTP/1.1 404", plain.size() + 12) == R::Complete);
    assert_str(r.response().body, "{\"readers\":1}");
  }
  const std::string chunked = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                              "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
  for (std::size_t piece : {std::size_t(1), chunked.size()}) {
    HttpResponseReader r;
    fail_unless(feed_all(r, chunked, piece) == R::Complete);
    fail_unless_equals_int(r.response().status, 404);
    assert_str(r.response().body, "hello, world");
    fail_if(r.keep_alive());
  }
  {
    HttpResponseReader r; /* no length: the body ends with the connection */
    fail_unless(r.feed("HTTP/1.0 200 OK\r\n\r\nab", 21) == R::NeedMore);
    fail_unless(r.feed("c", 1) == R::NeedMore);
    fail_unless(r.end_of_stream() == R::Complete);
    assert_str(r.response().body, "abc");
    fail_if(r.keep_alive());
  }
  {
    HttpResponseReader r; /* closed in the middle of a framed body */
    fail_unless(feed_all(r, plain.substr(0, plain.size() - 3), 64) == R::NeedMore);
    fail_unless(r.end_of_stream() == R::Invalid);
  }
  {
    HttpResponseReader r(8);
    fail_unless(feed_all(r, plain, 64) == R::Invalid);
    fail_unless(r.too_large());
  }
  for (const char *bad : {"SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}) {
    HttpResponseReader r;
    fail_unless(feed_all(r, bad, 64) == R::Invalid, "%s", bad);
    fail_if(r.error().empty());
  }
  fail_unless(PlainHttpGet::supports("http://127.0.0.1:9997/v3/paths/get/cam"));
  fail_unless(PlainHttpGet::supports("http://[::1]:9997/v3/paths/get/cam"));
  fail_if(PlainHttpGet::supports("https://127.0.0.1:9997/v3/paths/get/cam"));
  fail_if(PlainHttpGet::supports("not a url"));
}
GST_END_TEST;

/* A scripted MediaMTX API on a local port: each path answer is taken from `script` in turn (the
 * last one repeats); webrtcsessions/get answers established after `established_after` asks. */
struct FakeApi {
  /* ipv6: on ::1 only (the API location then is an IPv6 literal) */
  explicit FakeApi(bool ipv6 = false) : on_ipv6(ipv6) {
    thread = std::thread([this] {
      g_main_context_push_thread_default(context);
      server = soup_server_new(nullptr, nullptr);
      soup_server_add_handler(server, "/v3", handle, this, nullptr);
      GError *err = nullptr;
      soup_server_listen_local(server, 0, on_ipv6 ? SOUP_SERVER_LISTEN_IPV6_ONLY : SOUP_SERVER_LISTEN_IPV4_ONLY,
                               &err);
      GSList *uris = soup_server_get_uris(server);
      {
        std::lock_guard<std::mutex> lk(lock);
        port = uris ? g_uri_get_port(static_cast<GUri *>(uris->data)) : -1; /* -1: could not listen */
      }
      g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
      g_clear_error(&err);
      g_main_loop_run(loop);
      g_object_unref(server);
      g_main_context_pop_thread_default(context);
    });
    while (true) {
      std::lock_guard<std::mutex> lk(lock);
      if (port)
        break;
    }
  }
  ~FakeApi() {
    /* from the loop itself: quitting before the thread reached g_main_loop_run would be lost */
    GSource *quit = g_idle_source_new();
    g_source_set_callback(
        quit, [](gpointer data) -> gboolean {
          g_main_loop_quit(static_cast<GMainLoop *>(data));
          return G_SOURCE_REMOVE;
        },
        loop, nullptr);
    g_source_attach(quit, context);
    g_source_unref(quit);
    thread.join();
    g_main_loop_unref(loop);
    g_main_context_unref(context);
  }
  void set_script(std::vector<std::pair<unsigned, std::string>> answers) {
    std::lock_guard<std::mutex> lk(lock);
    script = std::move(answers);
  }
  static void handle(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *, gpointer data) {
    auto *self = static_cast<FakeApi *>(data);
    std::lock_guard<std::mutex> lk(self->lock);
    std::string p = path;
    std::pair<unsigned, std::string> reply;
    if (p.rfind("/v3/paths/get/", 0) == 0) {
      ++self->path_requests;
      const char *auth = soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization");
      self->last_auth = auth ? auth : "";
      const char *host = soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Host");
      self->last_host = host ? host : "";
      reply = self->script[std::min(self->step, self->script.size() - 1)];
      ++self->step;
    } else {
      ++self->session_requests;
      reply = {200, self->session_requests > self->established_after ? "{\"peerConnectionEstablished\":true}"
                                                                     : "{\"peerConnectionEstablished\":false}"};
    }
    if (reply.first == 0) { /* status 0: the connection dropped without an answer */
      if (GIOStream *io = soup_server_message_steal_connection(msg)) {
        g_io_stream_close(io, nullptr, nullptr);
        g_object_unref(io);
      }
      return;
    }
    if (self->close_connections)
      soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Connection", "close");
    ++self->answers;
    soup_server_message_set_status(msg, reply.first, nullptr);
    soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_COPY, reply.second.data(),
                                     reply.second.size());
  }
  std::string url() const {
    fail_unless(port > 0, "the fake API could not listen%s", on_ipv6 ? " on ::1 (no IPv6 loopback?)" : "");
    return std::string(on_ipv6 ? "http://[::1]:" : "http://127.0.0.1:") + std::to_string(port);
  }

  GMainContext *context = g_main_context_new();
  GMainLoop *loop = g_main_loop_new(context, FALSE);
  SoupServer *server = nullptr;
  std::thread thread;
  std::mutex lock;
  int port = 0;
  std::vector<std::pair<unsigned, std::string>> script;
  std::size_t step = 0;
  int path_requests = 0, session_requests = 0, established_after = 2, answers = 0;
  bool close_connections = false; /* "Connection: close" on every answer */
  bool on_ipv6 = false;
  std::string last_auth, last_host;
};

/* PlainHttpGet to an IPv6 literal API location (http://[::1]:port): connects over IPv6, sends
 * the Host header with the literal in brackets (RFC 7230: "::1:port" would be ambiguous) and
 * reads the answer. */
GST_START_TEST(test_plain_http_get_ipv6) {
  FakeApi api(true);
  api.set_script({{200, "{\"readers\":[]}"}});
  EventLoop loop("test-plain-get6");
  std::mutex lock;
  std::optional<HttpResponse> answer;
  std::unique_ptr<PlainHttpGet> get;
  loop.run_sync([&] {
    get = std::make_unique<PlainHttpGet>(loop, "test");
    HttpRequest req;
    req.url = api.url() + "/v3/paths/get/cam";
    req.timeout = 2000ms;
    get->get(std::move(req), [&](HttpResponse r) {
      std::lock_guard<std::mutex> lk(lock);
      answer = std::move(r);
    });
  });
  for (int i = 0; i < 200; i++) {
    {
      std::lock_guard<std::mutex> lk(lock);
      if (answer)
        break;
    }
    std::this_thread::sleep_for(10ms);
  }
  loop.run_sync([&] { get.reset(); });
  std::lock_guard<std::mutex> lk(lock);
  fail_unless(answer.has_value(), "no answer from [::1]");
  fail_unless(answer->ok(), "%s", answer->error.c_str());
  fail_unless_equals_int(answer->status, 200);
  assert_str(answer->body, "{\"readers\":[]}");
  fail_unless_equals_int(api.path_requests, 1);
  const std::string host = "[::1]:" + std::to_string(api.port);
  assert_str(api.last_host, host.c_str());
}
GST_END_TEST;

/* PlainHttpGet on its own: requests queue behind each other on one kept-alive connection, and a
 * server that accepts but never answers ends in a timeout. */
GST_START_TEST(test_plain_http_get) {
  FakeApi api;
  {
    std::lock_guard<std::mutex> lk(api.lock);
    api.script = {{200, "{\"readers\":[]}"}};
  }
  EventLoop loop("test-plain-get");
  std::mutex lock;
  std::vector<HttpResponse> answers;
  unsigned connections = 0;
  std::unique_ptr<PlainHttpGet> get;
  loop.run_sync([&] {
    get = std::make_unique<PlainHttpGet>(loop, "test");
    for (int i = 0; i < 3; i++) {
      HttpRequest req;
      req.url = api.url() + "/v3/paths/get/cam";
      req.timeout = 2000ms;
      get->get(std::move(req), [&](HttpResponse r) {
        std::lock_guard<std::mutex> lk(lock);
        answers.push_back(std::move(r));
      });
    }
  });
  for (int i = 0; i < 200; i++) {
    {
      std::lock_guard<std::mutex> lk(lock);
      if (answers.size() == 3)
        break;
    }
    std::this_thread::sleep_for(10ms);
  }
  loop.run_sync([&] { connections = get->connections(); });
  {
    std::lock_guard<std::mutex> lk(lock);
    fail_unless_equals_int(answers.size(), 3);
    for (const auto &r : answers) {
      fail_unless(r.ok(), "%s", r.error.c_str());
      fail_unless_equals_int(r.status, 200);
      assert_str(r.body, "{\"readers\":[]}");
    }
  }
  fail_unless_equals_int(connections, 1);

  /* a listening socket nobody accepts from: the connection is made, no answer comes */
  g_autoptr(GSocket) silent = g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, nullptr);
  g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new(lo, 0);
  fail_unless(g_socket_bind(silent, any, TRUE, nullptr) && g_socket_listen(silent, nullptr));
  g_autoptr(GSocketAddress) bound = g_socket_get_local_address(silent, nullptr);
  const int port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
  std::atomic<bool> done{false};
  HttpResponse timed_out;
  const gint64 start = g_get_monotonic_time();
  loop.run_sync([&] {
    HttpRequest req;
    req.url = "http://127.0.0.1:" + std::to_string(port) + "/v3/paths/get/cam";
    req.timeout = 200ms;
    get->get(std::move(req), [&](HttpResponse r) {
      timed_out = std::move(r);
      done = true;
    });
  });
  while (!done && g_get_monotonic_time() - start < 3 * G_USEC_PER_SEC)
    std::this_thread::sleep_for(10ms);
  fail_unless(done.load());
  fail_unless(timed_out.failure == HttpFailure::Timeout, "%s", timed_out.error.c_str());
  fail_unless(g_get_monotonic_time() - start < 2 * G_USEC_PER_SEC);
  loop.run_sync([&] { get.reset(); });
}
GST_END_TEST;

/* HttpClient: a request sent on the loop thread and the client destroyed in the same task (as
 * WatchRun's teardown can: the watch's last poll, then the client) is dropped, its callback never
 * runs, and nothing touches the destroyed client (ASan saw a use after free here, in the
 * asan lane's reader-watch: the posted send ran after the destructor). */
GST_START_TEST(test_http_send_then_destroy) {
  EventLoop loop("test-http");
  std::atomic<int> called{0};
  loop.run_sync([&] {
    auto http = std::make_unique<HttpClient>(loop, HttpClientConfig{});
    HttpRequest req;
    req.url = "http://127.0.0.1:9/never";
    req.timeout = 200ms;
    http->send(std::move(req), [&](HttpResponse) { called++; });
    http.reset();
  });
  loop.run_sync([] {});
  std::this_thread::sleep_for(300ms);
  loop.run_sync([] {});
  fail_unless_equals_int(called.load(), 0);
}
GST_END_TEST;

/* Runs a ReaderWatch on its own loop for `duration`; records what it reported. */
struct WatchRun {
  WatchRun(const std::string &api, std::chrono::milliseconds duration, bool plain_http = true,
           const std::function<void(ReaderWatch::Config &)> &configure = nullptr)
      : loop("test-readers") {
    loop.run_sync([&] {
      http = std::make_unique<HttpClient>(loop, HttpClientConfig{});
      ReaderWatch::Config config;
      config.api_location = api;
      config.path = "cam";
      config.user = "pub";
      add_authorization(config.auth, "pub", "secret", "");
      config.interval = 50ms;
      config.pending_interval = 20ms;
      config.plain_http = plain_http;
      if (configure)
        configure(config);
      ReaderWatch::Events events;
      events.reader_ready = [this](const PathReader &r) {
        std::lock_guard<std::mutex> lk(lock);
        ready.push_back(r.id);
      };
      events.unavailable = [this](ApiAnswer a, const std::string &text) {
        std::lock_guard<std::mutex> lk(lock);
        problems.push_back(a);
        explanation = text;
      };
      watch = std::make_unique<ReaderWatch>(loop, *http, config, events);
      watch->start();
    });
    std::this_thread::sleep_for(duration);
    loop.run_sync([&] {
      requests = watch->requests();
      parsed = watch->parsed();
      plain = watch->plain();
      interval = watch->interval();
      cpu_per_poll = watch->cpu_per_poll();
      watch.reset();
      http.reset();
    });
  }
  EventLoop loop;
  std::unique_ptr<HttpClient> http;
  std::unique_ptr<ReaderWatch> watch;
  std::mutex lock;
  std::vector<std::string> ready;
  std::vector<ApiAnswer> problems;
  std::string explanation;
  unsigned requests = 0, parsed = 0;
  bool plain = false;
  std::chrono::milliseconds interval{0};
  std::optional<std::chrono::nanoseconds> cpu_per_poll;
};

/* The same watch through PlainHttpGet (kept-alive, or a new connection per answer when the
 * server says "Connection: close") and through libsoup; answers whose readers did not change are
 * not parsed again. */
static void check_joined_readers(bool plain_http, bool close_connections) {
  FakeApi api;
  {
    std::lock_guard<std::mutex> lk(api.lock);
    api.close_connections = close_connections;
    api.script = {{404, "{\"status\":\"error\",\"error\":\"path not found\"}"},
                  {200, "{\"readers\":[],\"outboundBytes\":1}"},
                  {200, "{\"readers\":[{\"type\":\"rtspSession\",\"id\":\"r\"}],\"outboundBytes\":2}"},
                  {200, "{\"readers\":[{\"type\":\"rtspSession\",\"id\":\"r\"},{\"type\":\"webRTCSession\",\"id\":\"w\"}],\"outboundBytes\":3}"},
                  {200, "{\"readers\":[{\"type\":\"rtspSession\",\"id\":\"r\"},{\"type\":\"webRTCSession\",\"id\":\"w\"}],\"outboundBytes\":4}"}};
  }
  WatchRun run(api.url(), 600ms, plain_http);
  std::lock_guard<std::mutex> lk(api.lock);
  fail_unless(run.plain == plain_http);
  fail_unless_equals_int(run.parsed, 3); /* [], [r], [r,w]; the repeats of [r,w] are not parsed */
  fail_unless(run.problems.empty());
  /* the RTSP reader at once, the WebRTC one once established (after 2 session asks) */
  fail_unless_equals_int(run.ready.size(), 2);
  assert_str(run.ready[0], "r");
  assert_str(run.ready[1], "w");
  fail_unless_equals_int(api.session_requests, 3);
  /* every 50 ms, one at a time: bounded */
  fail_unless(api.path_requests >= 5 && api.path_requests <= 14, "%d", api.path_requests);
  assert_str(api.last_auth, "Basic cHViOnNlY3JldA==");
}

GST_START_TEST(test_watch_reports_joined_readers) {
  check_joined_readers(true, false);
  check_joined_readers(true, true);
  check_joined_readers(false, false);
}
GST_END_TEST;

static const char *kNoReaders = "{\"readers\":[]}";

/* Automatic interval: the watch measures each window from one path answer to the next with its
 * thread's CPU clock (here a fake one that each window moves by `window_cost`) and polls at
 * cost / 0.25 %, from the floor (100 ms) until the first window is measured. */
static WatchRun calibrated_run(FakeApi &api, std::chrono::microseconds window_cost, std::chrono::milliseconds duration,
                               std::chrono::milliseconds per_session_request = 0ms) {
  auto calls = std::make_shared<int>(0);
  return WatchRun(api.url(), duration, true, [&api, calls, window_cost, per_session_request](ReaderWatch::Config &c) {
    c.interval = ReaderWatch::kAutomaticInterval;
    c.thread_cpu = [&api, calls, window_cost, per_session_request]() -> std::chrono::nanoseconds {
      std::lock_guard<std::mutex> lk(api.lock);
      return ++*calls * window_cost + api.session_requests * per_session_request;
    };
  });
}

GST_START_TEST(test_watch_interval_from_cost) {
  {
    FakeApi api;
    api.set_script({{200, kNoReaders}});
    /* 500 us per window -> 200 ms: answers at ~0, 100, 300, 500, 700 ms (fixed 50 ms: ~18) */
    WatchRun run = calibrated_run(api, 500us, 800ms);
    std::lock_guard<std::mutex> lk(api.lock);
    fail_unless_equals_int(run.interval.count(), 200);
    fail_unless(run.cpu_per_poll && run.cpu_per_poll->count() == 500000);
    fail_unless(api.path_requests >= 3 && api.path_requests <= 6, "%d", api.path_requests);
  }
  {
    FakeApi api;
    api.set_script({{200, kNoReaders}});
    /* 5 ms per window -> the ceiling: answers at ~0 and 100 ms, the next one 1 s later */
    WatchRun run = calibrated_run(api, 5000us, 600ms);
    std::lock_guard<std::mutex> lk(api.lock);
    fail_unless_equals_int(run.interval.count(), 1000);
    fail_unless(api.path_requests >= 2 && api.path_requests <= 3, "%d", api.path_requests);
  }
  {
    FakeApi api;
    api.set_script({{200, kNoReaders}});
    /* a pinned interval (mediamtxsink api-poll-interval) stays, whatever the cost; measured all the same */
    auto calls = std::make_shared<int>(0);
    WatchRun run(api.url(), 500ms, true, [calls](ReaderWatch::Config &c) {
      c.interval = 50ms;
      c.thread_cpu = [calls] { return ++*calls * std::chrono::nanoseconds{5ms}; };
    });
    std::lock_guard<std::mutex> lk(api.lock);
    fail_unless_equals_int(run.interval.count(), 50);
    fail_unless(run.cpu_per_poll && *run.cpu_per_poll == 5ms);
    fail_unless(api.path_requests >= 6, "%d", api.path_requests);
  }
}
GST_END_TEST;

/* A reader's join (its session polls, its keyframe) is a cost per join, not per poll: the windows
 * it falls in are not counted. Here each session request costs 50 ms of fake CPU: counted, it
 * would push the interval to the ceiling. */
GST_START_TEST(test_watch_interval_ignores_joins) {
  FakeApi api;
  api.set_script({{200, kNoReaders}, {200, kNoReaders}, {200, "{\"readers\":[{\"type\":\"webRTCSession\",\"id\":\"w\"}]}"}});
  WatchRun run = calibrated_run(api, 400us, 900ms, 50ms);
  std::lock_guard<std::mutex> lk(api.lock);
  fail_unless_equals_int(run.ready.size(), 1);
  fail_unless_equals_int(api.session_requests, 3);
  fail_unless(api.path_requests >= 4, "%d", api.path_requests); /* windows after the join measured too */
  fail_unless_equals_int(run.interval.count(), 160);
  fail_unless(run.cpu_per_poll && run.cpu_per_poll->count() == 400000);
}
GST_END_TEST;

/* With the real thread clock the cost is measured and the interval stays within the budget's
 * bounds (what it is depends on the machine). */
GST_START_TEST(test_watch_interval_measured) {
  FakeApi api;
  api.set_script({{200, kNoReaders}});
  WatchRun run(api.url(), 500ms, true, [](ReaderWatch::Config &c) { c.interval = ReaderWatch::kAutomaticInterval; });
  fail_unless(run.cpu_per_poll.has_value());
  fail_unless(run.cpu_per_poll->count() > 0 && *run.cpu_per_poll < 100ms);
  fail_unless(run.interval >= 100ms && run.interval <= 1000ms, "%d", static_cast<int>(run.interval.count()));
  fail_unless(run.interval == choose_poll_interval(*run.cpu_per_poll, PollBudget{}));
}
GST_END_TEST;

GST_START_TEST(test_watch_unauthorized_once) {
  FakeApi api;
  {
    std::lock_guard<std::mutex> lk(api.lock);
    api.script = {{401, "{\"status\":\"error\",\"error\":\"authentication error\"}"}};
  }
  WatchRun run(api.url(), 400ms);
  std::lock_guard<std::mutex> lk(api.lock);
  fail_unless_equals_int(run.problems.size(), 1);
  fail_unless(run.problems[0] == ApiAnswer::Unauthorized);
  fail_unless(run.explanation.find("'api'") != std::string::npos, "%s", run.explanation.c_str());
  fail_unless(run.explanation.find("secret") == std::string::npos);
  fail_unless_equals_int(api.path_requests, 1); /* no retries: MediaMTX delays and logs each */
}
GST_END_TEST;

GST_START_TEST(test_watch_not_mediamtx_once) {
  FakeApi api;
  {
    std::lock_guard<std::mutex> lk(api.lock);
    api.script = {{404, "404 page not found"}};
  }
  WatchRun run(api.url(), 300ms);
  std::lock_guard<std::mutex> lk(api.lock);
  fail_unless_equals_int(run.problems.size(), 1);
  fail_unless(run.problems[0] == ApiAnswer::NotMediamtx);
  fail_unless_equals_int(api.path_requests, 1);
}
GST_END_TEST;

GST_START_TEST(test_watch_unreachable_once) {
  int port;
  {
    FakeApi gone;
    port = gone.port;
  } /* nothing listens there now */
  WatchRun run("http://127.0.0.1:" + std::to_string(port), 500ms);
  fail_unless_equals_int(run.problems.size(), 1);
  fail_unless(run.problems[0] == ApiAnswer::Unreachable);
  fail_unless_equals_int(run.requests, 1); /* the next try is kUnreachableRetry later */
}
GST_END_TEST;

/* An API that answered and then fails (here: two requests in a row dropped, the kept-alive
 * connection's and the new one's) is asked again soon, silently: no warning for a blip. */
GST_START_TEST(test_watch_blip_not_reported) {
  FakeApi api;
  api.set_script({{200, kNoReaders}, {0, ""}, {0, ""}, {200, kNoReaders}});
  WatchRun run(api.url(), 1200ms);
  std::lock_guard<std::mutex> lk(api.lock);
  fail_unless(run.problems.empty(), "reported: %s", run.explanation.c_str());
  fail_unless(api.answers >= 3, "%d answers", api.answers); /* answered again after the blip */
}
GST_END_TEST;

/* ... but one that stays unreachable is reported once, kUnreachableRetry after it stopped. */
GST_START_TEST(test_watch_lasting_failure_reported) {
  FakeApi api;
  api.set_script({{200, kNoReaders}, {0, ""}});
  WatchRun run(api.url(), kUnreachableRetry + 1500ms);
  fail_unless_equals_int(run.problems.size(), 1);
  fail_unless(run.problems[0] == ApiAnswer::Unreachable);
}
GST_END_TEST;

static Suite *reader_watch_suite(void) {
  Suite *s = suite_create("reader_watch");
  TCase *tc = tcase_create("general");
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_parse_path_readers);
  tcase_add_test(tc, test_parse_session_and_errors);
  tcase_add_test(tc, test_urls);
  tcase_add_test(tc, test_classify);
  tcase_add_test(tc, test_reader_set);
  tcase_add_test(tc, test_rate_limit);
  tcase_add_test(tc, test_choose_poll_interval);
  tcase_add_test(tc, test_poll_cost_meter);
  tcase_add_test(tc, test_readers_part);
  tcase_add_test(tc, test_response_reader);
  tcase_add_test(tc, test_plain_http_get);
  tcase_add_test(tc, test_plain_http_get_ipv6);
  tcase_add_test(tc, test_http_send_then_destroy);
  tcase_add_test(tc, test_watch_reports_joined_readers);
  tcase_add_test(tc, test_watch_interval_from_cost);
  tcase_add_test(tc, test_watch_interval_ignores_joins);
  tcase_add_test(tc, test_watch_interval_measured);
  tcase_add_test(tc, test_watch_unauthorized_once);
  tcase_add_test(tc, test_watch_not_mediamtx_once);
  tcase_add_test(tc, test_watch_unreachable_once);
  tcase_add_test(tc, test_watch_blip_not_reported);
  tcase_add_test(tc, test_watch_lasting_failure_reported);
  return s;
}

GST_CHECK_MAIN(reader_watch);
