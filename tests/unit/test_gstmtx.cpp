/* Unit tests of the gst/ library: retry policy, MediaMTX URL conventions, Link headers, RTCP
 * liveness, the control thread's task gate. */
#include <algorithm>
#include <gst/check/gstcheck.h>

#include <atomic>

#include "ascii_case.h"
#include "backoff.h"
#include "codec_table.h"
#include "event_loop.h"
#include "link_header.h"
#include "mediamtx_url.h"
#include "reconnect_controller.h"
#include "rtcp_liveness.h"
#include "status.h"
#include "task_gate.h"
#include "webrtc_http_session.h"

using namespace gstmtx;

/* Copies `actual` first: fail_unless_equals_string keeps the pointer past a temporary's life. */
#define assert_str(actual, expected)                                                                               \
  do {                                                                                                             \
    const std::string actual_copy_ = (actual);                                                                     \
    fail_unless_equals_string(actual_copy_.c_str(), expected);                                                     \
  } while (0)
using namespace std::chrono_literals;

/* A long outage: attempts ~8 s apart, so the outage-age bound never holds the exponential back. */
GST_START_TEST(test_backoff_grows_and_caps) {
  RetryPolicy p;
  p.initial_delay = 100ms;
  p.max_delay = 1000ms;
  p.jitter = 0.0;
  Backoff b(p, 1);
  auto t = Clock::now();
  auto next = [&] { auto d = b.next_delay(t); t += 8s; return d->count(); };
  fail_unless_equals_int(next(), 100);
  fail_unless_equals_int(next(), 200);
  fail_unless_equals_int(next(), 400);
  fail_unless_equals_int(next(), 800);
  fail_unless_equals_int(next(), 1000);
  for (int i = 0; i < 200; ++i)
    fail_unless_equals_int(next(), 1000);
  fail_unless_equals_int(b.attempts(), 205);
}
GST_END_TEST;

/* Attempts that fail at once, one after the other (a server down, a crash-looping child): the wait
 * stays near the initial delay while the outage is young, then grows with the outage's age up to
 * the cap, never beyond a fifth of the age. */
GST_START_TEST(test_backoff_bounded_by_outage_age) {
  RetryPolicy p;
  p.initial_delay = 1000ms;
  p.max_delay = 30000ms;
  p.jitter = 0.0;
  Backoff b(p, 1);
  auto t = Clock::now();
  const auto t0 = t;
  std::vector<long> waits;
  while (t - t0 < 400s) {
    long d = b.next_delay(t)->count();
    const long age = std::chrono::duration_cast<Millis>(t - t0).count();
    fail_unless(d <= std::max(1000L, age / 5 + 1), "wait %ld ms at outage age %ld ms", d, age);
    waits.push_back(d);
    t += Millis(d);
  }
  /* a 4 s outage never meets a wait longer than the initial delay */
  fail_unless_equals_int(waits[0], 1000);
  fail_unless_equals_int(waits[4], 1000);
  /* and it still backs off to the cap */
  fail_unless_equals_int(waits.back(), 30000);
  fail_unless(waits.size() < 60, "%zu attempts in 400 s", waits.size());
}
GST_END_TEST;

GST_START_TEST(test_backoff_budget) {
  RetryPolicy p;
  p.max_retries = 3;
  Backoff b(p, 1);
  const auto t = Clock::now();
  fail_unless(b.next_delay(t).has_value());
  fail_unless(b.next_delay(t).has_value());
  fail_unless(b.next_delay(t).has_value());
  fail_unless(!b.next_delay(t).has_value());
  fail_unless(b.exhausted());
  /* media delivered: a new outage has the whole budget again */
  b.on_delivered();
  fail_unless(b.next_delay(t).has_value());
  p.max_retries = 0;
  Backoff never(p, 1);
  fail_unless(!never.next_delay(t).has_value());
}
GST_END_TEST;

GST_START_TEST(test_backoff_jitter_bounds) {
  RetryPolicy p;
  p.initial_delay = 1000ms;
  p.max_delay = 100000ms;
  p.multiplier = 1.0;
  p.jitter = 0.25;
  Backoff b(p, 42);
  long lo = 1000000, hi = 0;
  const auto t = Clock::now();
  for (int i = 0; i < 2000; ++i) {
    long d = b.next_delay(t)->count();
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  fail_unless(lo >= 750 && hi <= 1250, "jitter out of bounds: %ld..%ld", lo, hi);
  fail_unless(hi - lo > 300, "jitter does not spread: %ld..%ld", lo, hi);
}
GST_END_TEST;

GST_START_TEST(test_backoff_retry_after_and_delivered_reset) {
  RetryPolicy p;
  p.initial_delay = 100ms;
  p.max_delay = 5000ms;
  p.jitter = 0.0;
  Backoff b(p, 1);
  /* Retry-After lengthens the wait, past max_delay, up to max_server_delay */
  p.max_server_delay = 60000ms;
  b.set_policy(p);
  auto t = Clock::now();
  fail_unless_equals_int(b.next_delay(t, 3000ms)->count(), 3000);
  fail_unless_equals_int(b.next_delay(t, 20000ms)->count(), 20000);
  fail_unless_equals_int(b.next_delay(t, 86400000ms)->count(), 60000);
  fail_unless_equals_int(b.attempts(), 3);
  /* a session that delivered media ends the outage, however short it was */
  b.on_delivered();
  fail_unless_equals_int(b.attempts(), 0);
  t += 100s; /* a new outage: its age starts now */
  fail_unless_equals_int(b.next_delay(t)->count(), 100);
  fail_unless_equals_int(b.next_delay(t + 10s)->count(), 200);
}
GST_END_TEST;

GST_START_TEST(test_url_whep_scheme) {
  std::string err;
  auto ep = parse_webrtc_http_location("whep://cam-host/raspberry-01", HttpEndpointKind::Whep, &err);
  fail_unless(ep.has_value(), "%s", err.c_str());
  assert_str(ep->url.c_str(), "http://cam-host:8889/raspberry-01/whep");
  assert_str(ep->stream_path.c_str(), "raspberry-01");
  fail_unless_equals_int(ep->port, 8889);

  ep = parse_webrtc_http_location("wheps://user:p%40ss@h.example:9443/site/cam?x=1", HttpEndpointKind::Whep, &err);
  fail_unless(ep.has_value(), "%s", err.c_str());
  assert_str(ep->url.c_str(), "https://h.example:9443/site/cam/whep?x=1");
  assert_str(ep->user.c_str(), "user");
  assert_str(ep->password.c_str(), "p@ss");
  assert_str(ep->stream_path.c_str(), "site/cam");
  fail_unless(ep->secure);

  ep = parse_webrtc_http_location("http://10.0.0.5:8889/cam/whep", HttpEndpointKind::Whep, &err);
  assert_str(ep->url.c_str(), "http://10.0.0.5:8889/cam/whep");
  assert_str(ep->stream_path.c_str(), "cam");
  /* the reader page URL gets the endpoint suffix */
  ep = parse_webrtc_http_location("http://10.0.0.5:8889/cam/", HttpEndpointKind::Whep, &err);
  assert_str(ep->url.c_str(), "http://10.0.0.5:8889/cam/whep");
  /* an RTSP URL of the same stream maps to the WebRTC port */
  ep = parse_webrtc_http_location("rtsp://mediamtx:8554/raspberry-01", HttpEndpointKind::Whip, &err);
  assert_str(ep->url.c_str(), "http://mediamtx:8889/raspberry-01/whip");
  ep = parse_webrtc_http_location("whep://[::1]:1234/cam", HttpEndpointKind::Whep, &err);
  assert_str(ep->url.c_str(), "http://[::1]:1234/cam/whep");
  assert_str(ep->host.c_str(), "::1");
}
GST_END_TEST;

GST_START_TEST(test_url_rejects_bad_input) {
  std::string err;
  fail_if(parse_webrtc_http_location("", HttpEndpointKind::Whep, &err).has_value());
  fail_if(parse_webrtc_http_location("ftp://h/cam", HttpEndpointKind::Whep, &err).has_value());
  fail_unless(err.find("ftp") != std::string::npos, "%s", err.c_str());
  fail_if(parse_webrtc_http_location("whep:///cam", HttpEndpointKind::Whep, &err).has_value());
  fail_if(parse_webrtc_http_location("whep://host", HttpEndpointKind::Whep, &err).has_value());
  fail_if(parse_webrtc_http_location("not a url at all", HttpEndpointKind::Whep, &err).has_value());
  fail_if(parse_rtsp_location("http://h/cam", &err).has_value());
  fail_if(parse_rtsp_location("rtsp://h:8554/", &err).has_value());
}
GST_END_TEST;

GST_START_TEST(test_url_rtsp_and_builders) {
  std::string err;
  auto ep = parse_rtsp_location("rtsp://pi:secret@mediamtx:8554/raspberry-01", &err);
  fail_unless(ep.has_value(), "%s", err.c_str());
  assert_str(ep->url.c_str(), "rtsp://mediamtx:8554/raspberry-01");
  assert_str(ep->user.c_str(), "pi");
  assert_str(ep->password.c_str(), "secret");
  assert_str(rtsp_url_for("mediamtx", "raspberry-01").c_str(), "rtsp://mediamtx:8554/raspberry-01");
  assert_str(rtsp_url_for("mediamtx:9000", "/cam/").c_str(), "rtsp://mediamtx:9000/cam");
  assert_str(webrtc_http_url_for("http://m.example", "cam", HttpEndpointKind::Whip).c_str(),
                            "http://m.example:8889/cam/whip");
  auto whep = parse_webrtc_http_location("whep://m/cam", HttpEndpointKind::Whep);
  assert_str(hls_url_for_endpoint(*whep).c_str(), "http://m:8888/cam/index.m3u8");
}
GST_END_TEST;

GST_START_TEST(test_url_resolve_and_redact) {
  assert_str(resolve_location("http://h:8889/cam/whep", "/cam/whep/abc-123")->c_str(),
                            "http://h:8889/cam/whep/abc-123");
  assert_str(resolve_location("http://h:8889/cam/whep", "abc")->c_str(), "http://h:8889/cam/abc");
  assert_str(resolve_location("http://h:8889/cam/whep", "https://o:1/x")->c_str(), "https://o:1/x");
  fail_if(resolve_location("http://h/cam/whep", "").has_value());
  std::string r = redact_url("https://bob:hunter2@h:8889/cam/whep?token=abc.def&x=1");
  fail_unless(r.find("hunter2") == std::string::npos && r.find("bob") == std::string::npos, "%s", r.c_str());
  fail_unless(r.find("abc.def") == std::string::npos, "%s", r.c_str());
  fail_unless(r.find("x=1") != std::string::npos, "%s", r.c_str());
}
GST_END_TEST;

GST_START_TEST(test_link_header_ice_servers) {
  std::vector<std::string> headers = {
      "<stun:stun.example.net:3478>; rel=\"ice-server\"",
      "<turn:turn.example.net:3478?transport=udp>; rel=\"ice-server\"; username=\"u s\"; "
      "credential=\"p/a+s=s\"; credential-type=\"password\", <https://x/y>; rel=\"alternate\""};
  auto servers = ice_servers_from_link_headers(headers);
  fail_unless_equals_int(servers.size(), 2);
  assert_str(servers[0].to_webrtcbin_uri().c_str(), "stun://stun.example.net:3478");
  fail_unless(servers[1].is_turn());
  assert_str(servers[1].to_webrtcbin_uri().c_str(),
                            "turn://u%20s:p%2Fa%2Bs%3Ds@turn.example.net:3478?transport=udp");
}
GST_END_TEST;

GST_START_TEST(test_link_header_hostile) {
  /* unterminated, garbage, control characters, injection attempts, huge input: no crash, nothing usable */
  const char *bad[] = {"<", "<stun:a", ";;;;,,,,", "<stun:a>; rel", "<stun:a\r\nX: y>; rel=ice-server",
                       "<turn:h>; rel=ice-server", /* turn without credentials */
                       "<stun:u@evil/x>; rel=ice-server", "<>; rel=ice-server", "\"<stun:a>\"",
                       "<stun:a>; rel=\"ice-server"};
  for (const char *h : bad) {
    auto servers = ice_servers_from_link_headers({h});
    fail_unless_equals_int(servers.size(), 0);
  }
  std::string huge;
  for (int i = 0; i < 100000; ++i)
    huge += "<stun:a:1>; rel=ice-server, ";
  auto servers = ice_servers_from_link_headers({huge});
  fail_unless(servers.size() <= 16);
  auto links = parse_link_header(huge);
  fail_unless(links.size() <= 32);
}
GST_END_TEST;

GST_START_TEST(test_status_message) {
  StatusUpdate u;
  u.state = ConnectionState::Reconnecting;
  u.attempt = 3;
  u.reason = "HTTP 404";
  u.transport = "webrtc";
  u.retry_in_ms = 1500;
  GstMessage *m = status_message_new(nullptr, u);
  const GstStructure *s = gst_message_get_structure(m);
  fail_unless(gst_structure_has_name(s, "gst-mediamtx-status"));
  assert_str(gst_structure_get_string(s, "state"), "reconnecting");
  int attempt;
  fail_unless(gst_structure_get_int(s, "attempt", &attempt));
  fail_unless_equals_int(attempt, 3);
  gst_message_unref(m);
}
GST_END_TEST;


static HttpResponse response(unsigned status, const std::string &body = "", const std::string &ctype = "") {
  HttpResponse r;
  r.status = status;
  r.body = body;
  r.content_type = ctype;
  r.url = "http://h:8889/cam/whep";
  return r;
}

GST_START_TEST(test_session_classify) {
  SessionConfig c;
  c.endpoint = "http://user:pw@h:8889/cam/whep";
  c.stream_path = "cam";
  const std::string sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
  fail_if(WebrtcHttpSession::classify(response(201, sdp, "application/sdp"), c));
  fail_if(WebrtcHttpSession::classify(response(201, sdp, ""), c)); /* no content type: lenient */
  auto e = WebrtcHttpSession::classify(response(201, "<html>", "text/html"), c);
  fail_unless(e.kind == SessionErrorKind::Retry);
  e = WebrtcHttpSession::classify(response(201, sdp, "text/html"), c);
  fail_unless(e.kind == SessionErrorKind::Retry);
  fail_unless(WebrtcHttpSession::classify(response(401), c).kind == SessionErrorKind::Unauthorized);
  fail_unless(WebrtcHttpSession::classify(response(403), c).kind == SessionErrorKind::Unauthorized);
  e = WebrtcHttpSession::classify(response(404), c);
  fail_unless(e.kind == SessionErrorKind::Retry);
  fail_unless(e.message.find("no stream is being published on path 'cam'") != std::string::npos, "%s",
              e.message.c_str());
  fail_unless(WebrtcHttpSession::classify(response(400), c).kind == SessionErrorKind::Rejected);
  fail_unless(WebrtcHttpSession::classify(response(415), c).kind == SessionErrorKind::Rejected);
  fail_unless(WebrtcHttpSession::classify(response(302), c).kind == SessionErrorKind::Config);
  fail_unless(WebrtcHttpSession::classify(response(500), c).kind == SessionErrorKind::Retry);
  HttpResponse busy = response(503);
  busy.headers.emplace_back("retry-after", "7");
  e = WebrtcHttpSession::classify(busy, c);
  fail_unless(e.kind == SessionErrorKind::Retry);
  fail_unless_equals_int(e.retry_after.count(), 7000);
  HttpResponse loop;
  loop.failure = HttpFailure::RedirectLoop;
  loop.error = "more than 5 redirects";
  fail_unless(WebrtcHttpSession::classify(loop, c).kind == SessionErrorKind::Config);
  HttpResponse down;
  down.failure = HttpFailure::Network;
  down.error = "Connection refused";
  e = WebrtcHttpSession::classify(down, c);
  fail_unless(e.kind == SessionErrorKind::Retry);
  /* no secret in a message: the endpoint is redacted */
  fail_unless(e.message.find("pw") == std::string::npos, "%s", e.message.c_str());
  /* the server's body is kept for debug, bounded and made printable */
  e = WebrtcHttpSession::classify(response(500, std::string(5000, 'x') + "\x01"), c);
  fail_unless(e.debug.size() < 700);
}
GST_END_TEST;

GST_START_TEST(test_session_retry_after) {
  fail_unless_equals_int(WebrtcHttpSession::parse_retry_after("").count(), 0);
  fail_unless_equals_int(WebrtcHttpSession::parse_retry_after(" 12 ").count(), 12000);
  fail_unless_equals_int(WebrtcHttpSession::parse_retry_after("99999999999").count(), 3600000);
  fail_unless_equals_int(WebrtcHttpSession::parse_retry_after("soon").count(), 0);
  fail_unless_equals_int(WebrtcHttpSession::parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").count(), 0);
  g_autoptr(GDateTime) later = g_date_time_new_now_utc();
  g_autoptr(GDateTime) in_a_minute = g_date_time_add_seconds(later, 60);
  g_autofree char *http_date = g_date_time_format(in_a_minute, "%a, %d %b %Y %H:%M:%S GMT");
  long ms = WebrtcHttpSession::parse_retry_after(http_date).count();
  fail_unless(ms > 55000 && ms <= 60000, "%ld", ms);
}
GST_END_TEST;

GST_START_TEST(test_trickle_sdpfrag) {
  std::string frag = make_trickle_sdpfrag("uf", "pw", "video", 0, "video0",
                                          {"candidate:1 1 UDP 2015363327 10.0.0.2 5000 typ host",
                                           "a=candidate:2 1 TCP 1015021823 10.0.0.2 9 typ host tcptype active",
                                           "garbage\r\ninjected: yes",
                                           "candidate:3 1 UDP 1 10.0.0.2 1 typ host\r\na=ice-pwd:evil"},
                                          true);
  assert_str(frag, "a=ice-ufrag:uf\r\na=ice-pwd:pw\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
                   "a=candidate:1 1 UDP 2015363327 10.0.0.2 5000 typ host\r\n"
                   "a=candidate:2 1 TCP 1015021823 10.0.0.2 9 typ host tcptype active\r\n"
                   "a=end-of-candidates\r\n");
  /* a numeric mid is kept */
  frag = make_trickle_sdpfrag("uf", "pw", "audio", 1, "3", {}, false);
  fail_unless(frag.find("a=mid:3\r\n") != std::string::npos);
}
GST_END_TEST;

/* A viewer's server: silence is only judged from the second report on, then against 3 s. */
GST_START_TEST(test_rtcp_liveness_viewer) {
  RtcpLiveness live(3000ms);
  const auto t0 = RtcpLiveness::Clock::now();
  fail_if(live.watching());
  fail_if(live.silent(t0 + 60s)); /* no report yet: a quiet publisher, not a dead server */
  live.report(t0);
  fail_if(live.silent(t0 + 60s)); /* one report: no interval known yet */
  for (int i = 1; i <= 5; ++i)
    live.report(t0 + i * 1000ms);
  fail_unless(live.watching());
  fail_unless(live.silence_bound() == 3000ms);
  fail_if(live.silent(t0 + 5000ms + 3000ms));
  fail_unless(live.silent(t0 + 5000ms + 3001ms));
  /* a report revives it */
  live.report(t0 + 9000ms);
  fail_if(live.silent(t0 + 10000ms));
  live.reset();
  fail_if(live.watching());
  fail_if(live.silent(t0 + 60s));
}
GST_END_TEST;

/* A server that reports every 5 s gets 3 intervals; the bound comes down again once the long
 * interval has left the recent ones. */
GST_START_TEST(test_rtcp_liveness_slow_reporter) {
  RtcpLiveness live(3000ms);
  const auto t0 = RtcpLiveness::Clock::now();
  live.report(t0);
  live.report(t0 + 5000ms);
  fail_unless(live.silence_bound() == 15000ms);
  fail_if(live.silent(t0 + 5000ms + 14000ms));
  fail_unless(live.silent(t0 + 5000ms + 15001ms));
  auto t = t0 + 5000ms;
  for (int i = 0; i < 8; ++i) {
    t += 1000ms;
    live.report(t);
  }
  fail_unless(live.silence_bound() == 3000ms);
}
GST_END_TEST;

/* A publisher's server: owed reports from "connected" on. */
GST_START_TEST(test_rtcp_liveness_armed) {
  RtcpLiveness live(4000ms);
  const auto t0 = RtcpLiveness::Clock::now();
  live.arm(t0);
  fail_unless(live.watching());
  fail_if(live.silent(t0 + 4000ms));
  fail_unless(live.silent(t0 + 4001ms));
  live.report(t0 + 500ms);
  fail_if(live.silent(t0 + 4400ms));
  fail_unless(live.silent(t0 + 4501ms));
}
GST_END_TEST;

GST_START_TEST(test_ascii_lower) {
  assert_str(ascii_lower("Content-Type: Application/SDP"), "content-type: application/sdp");
  /* bytes outside ASCII are left alone, whatever the locale */
  assert_str(ascii_lower("RTSP\xc3\x84\xc4\xb0"), "rtsp\xc3\x84\xc4\xb0");
}
GST_END_TEST;

/* An EventLoop destroyed right after it was made ends its thread (a quit that came before the
 * thread entered g_main_loop_run() used to be lost, and the destructor waited for ever). */
GST_START_TEST(test_event_loop_destroyed_at_once) {
  for (int i = 0; i < 200; ++i)
    EventLoop loop("short");
}
GST_END_TEST;

/* Tasks of a run that was closed never run, not even when the gate opens again for a new run. */
GST_START_TEST(test_task_gate_drops_stale_tasks) {
  EventLoop loop("gate");
  TaskGate gate(loop);
  std::atomic<int> ran{0};
  gate.post([&] { ran++; }); /* closed: dropped */
  fail_unless_equals_int(gate.schedule(1ms, [&] { ran++; }), 0);

  gate.open();
  fail_unless(gate.is_open());
  /* hold the loop until the run has ended, so the next tasks are still queued then */
  loop.post([&] {
    while (gate.is_open())
      g_usleep(1000);
  });
  gate.post([&] { ran += 10; });
  fail_unless(gate.schedule(0ms, [&] { ran += 10; }) != 0);
  gate.close([&] { ran += 100; });
  fail_if(gate.is_open());
  fail_unless_equals_int(ran.load(), 100);

  gate.open();
  gate.close(); /* nothing of the old run leaks into this one either */
  gate.open();
  gate.post([&] { ran += 1000; });
  loop.run_sync([] {});
  fail_unless_equals_int(ran.load(), 1100);
  fail_unless(gate.close());
  fail_if(gate.close([&] { ran++; })); /* closed already: does nothing */
  loop.run_sync([] {});
  fail_unless_equals_int(ran.load(), 1100);
}
GST_END_TEST;

/* close() from a task on the loop thread (a bus handler stopping the element) runs inline. */
GST_START_TEST(test_task_gate_close_from_loop_thread) {
  EventLoop loop("gate");
  TaskGate gate(loop);
  gate.open();
  std::atomic<int> ran{0};
  std::atomic<bool> open_after{true};
  gate.post([&] {
    gate.post([&] { ran += 10; }); /* queued behind this task: dropped by the close below */
    gate.close([&] { ran++; });
    open_after = gate.is_open();
  });
  loop.run_sync([] {});
  loop.run_sync([] {});
  fail_unless_equals_int(ran.load(), 1);
  fail_if(open_after.load());
}
GST_END_TEST;

/* ---- ReconnectController: one run through its hooks, on a plain bin ---- */

namespace {
struct ControllerProbe {
  std::mutex lock;
  std::vector<std::string> states;
  std::vector<gint64> retry_in;
  std::vector<std::string> hooked; /* the status hook's states, each with the messages seen before it */
  std::atomic<int> starts{0}, teardowns{0};
  GQuark error_domain = 0;
  int error_code = 0;
};

GstBusSyncReply controller_bus(GstBus *, GstMessage *message, gpointer data) {
  auto *probe = static_cast<ControllerProbe *>(data);
  std::lock_guard<std::mutex> guard(probe->lock);
  if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ELEMENT &&
      gst_message_has_name(message, kStatusMessageName)) {
    const GstStructure *st = gst_message_get_structure(message);
    probe->states.push_back(gst_structure_get_string(st, "state"));
    gint64 in = -1;
    gst_structure_get_int64(st, "retry-in-ms", &in);
    probe->retry_in.push_back(in);
  } else if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
    GError *error = nullptr;
    gst_message_parse_error(message, &error, nullptr);
    probe->error_domain = error->domain;
    probe->error_code = error->code;
    g_error_free(error);
  }
  gst_message_unref(message); /* a sync handler that drops a message owns it */
  return GST_BUS_DROP;
}

bool wait_for(const std::function<bool()> &done, int ms = 3000) {
  for (int i = 0; i < ms / 10 && !done(); ++i)
    g_usleep(10000);
  return done();
}
}  // namespace

GST_START_TEST(test_controller_retry_and_give_up) {
  GstElement *bin = gst_bin_new("controlled");
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(bin, bus);
  ControllerProbe probe;
  gst_bus_set_sync_handler(bus, controller_bus, &probe, nullptr);
  {
    ReconnectController controller(bin, "unit", StreamDirection::Write);
    GValue v = G_VALUE_INIT;
    g_value_init(&v, G_TYPE_UINT);
    g_value_set_uint(&v, 50);
    fail_unless(controller.set_property(10, 10 + ReconnectController::kRetryDelay, &v));
    fail_if(controller.set_property(10, 9, &v), "not one of the controller's properties");
    g_value_unset(&v);
    ReconnectController::Hooks hooks;
    std::atomic<unsigned> session{0};
    hooks.start = [&] {
      session = controller.begin_session();
      probe.starts++; /* after: the test reads `session` once it sees the count */
    };
    hooks.teardown = [&](const Failure &) { probe.teardowns++; };
    hooks.status = [&](const StatusUpdate &update) {
      std::lock_guard<std::mutex> guard(probe.lock);
      probe.hooked.push_back(std::string(connection_state_name(update.state)) + "@" +
                             std::to_string(probe.states.size()));
    };
    controller.set_hooks(hooks);
    controller.prepare();
    controller.start();
    controller.post(hooks.start);
    fail_unless(wait_for([&] { return probe.starts == 1; }));
    const unsigned first = session;
    controller.report_failure(first, Failure::retry("server went away"));
    fail_unless(wait_for([&] { return probe.starts == 2; }), "no retry");
    /* a report about the first session, after the second began, changes nothing */
    controller.report_failure(first, Failure::retry("late"));
    controller.delivered(session);
    controller.loop().run_sync([] {});
    fail_unless_equals_int(probe.teardowns.load(), 1);
    /* a fatal failure of the current session: no retry, the error's domain and code */
    controller.report_failure(session, Failure::of_kind(FailureKind::Unauthorized, "credentials refused"));
    fail_unless(wait_for([&] {
      std::lock_guard<std::mutex> guard(probe.lock);
      return probe.error_code != 0;
    }));
    g_usleep(200000);
    fail_unless_equals_int(probe.starts.load(), 2);
    fail_unless(probe.error_domain == GST_RESOURCE_ERROR);
    fail_unless_equals_int(probe.error_code, GST_RESOURCE_ERROR_NOT_AUTHORIZED);
    fail_unless(controller.state() == ConnectionState::Failed);
    fail_unless(controller.stop());
    controller.release();
  }
  {
    std::lock_guard<std::mutex> guard(probe.lock);
    const std::vector<std::string> want{"connecting", "reconnecting", "connecting", "failed", "stopped"};
    fail_unless(probe.states == want, "states: %zu", probe.states.size());
    /* the status hook sees every status before its message is posted */
    const std::vector<std::string> hooked{"connecting@0", "reconnecting@1", "connecting@2", "failed@3", "stopped@4"};
    fail_unless(probe.hooked == hooked, "status hook: %zu calls", probe.hooked.size());
    fail_unless(probe.retry_in[1] >= 40 && probe.retry_in[1] <= 60, "retry in %lld ms",
                static_cast<long long>(probe.retry_in[1]));
  }
  gst_bus_set_sync_handler(bus, nullptr, nullptr, nullptr);
  gst_object_unref(bus);
  gst_object_unref(bin);
}
GST_END_TEST;

GST_START_TEST(test_failure_error_codes) {
  GQuark domain;
  int code;
  failure_error_code(Failure::of_kind(FailureKind::Rejected, "415"), StreamDirection::Write, &domain, &code);
  fail_unless(domain == GST_RESOURCE_ERROR && code == GST_RESOURCE_ERROR_OPEN_WRITE);
  failure_error_code(Failure::of_kind(FailureKind::Rejected, "400"), StreamDirection::Read, &domain, &code);
  fail_unless(domain == GST_RESOURCE_ERROR && code == GST_RESOURCE_ERROR_OPEN_READ);
  failure_error_code(Failure::of_kind(FailureKind::Tls, "untrusted"), StreamDirection::Write, &domain, &code);
  fail_unless(domain == GST_RESOURCE_ERROR && code == GST_RESOURCE_ERROR_OPEN_READ_WRITE);
  failure_error_code(Failure::of_kind(FailureKind::Config, "loop"), StreamDirection::Write, &domain, &code);
  fail_unless(domain == GST_RESOURCE_ERROR && code == GST_RESOURCE_ERROR_SETTINGS);
  failure_error_code(Failure::of_kind(FailureKind::MissingPlugin, "x264enc"), StreamDirection::Write, &domain, &code);
  fail_unless(domain == GST_CORE_ERROR && code == GST_CORE_ERROR_MISSING_PLUGIN);
  Failure child = Failure::retry("child failed");
  child.domain = GST_STREAM_ERROR;
  child.code = GST_STREAM_ERROR_DECODE;
  failure_error_code(child, StreamDirection::Read, &domain, &code);
  fail_unless(domain == GST_STREAM_ERROR && code == GST_STREAM_ERROR_DECODE);
}
GST_END_TEST;

/* whepsrc loads its receive chain's plugins before the first packet needs them: afterwards the
 * depayloader, the parser and the best decoder are loaded (each check runs in a fresh process, so
 * nothing loaded them before). */
GST_START_TEST(test_load_receive_plugins) {
  const RtpCodec *h264 = find_rtp_codec("H264");
  fail_unless(h264 != nullptr);
  if (!rtp_codec_receivable(*h264))
    return; /* no rtph264depay/h264parse installed: nothing to load */
  g_autoptr(GstCaps) encoded = gst_caps_from_string(h264->encoded_caps);
  g_autoptr(GstElementFactory) decoder = best_decoder_for(encoded);
  std::vector<const char *> names = {h264->depayloader, h264->parser};
  if (decoder)
    names.push_back(GST_OBJECT_NAME(decoder));
  auto loaded = [](const char *name) {
    g_autoptr(GstElementFactory) f = gst_element_factory_find(name);
    g_autoptr(GstPlugin) plugin = f ? gst_plugin_feature_get_plugin(GST_PLUGIN_FEATURE(f)) : nullptr;
    return plugin && gst_plugin_is_loaded(plugin);
  };
  const bool decoder_before = decoder && loaded(GST_OBJECT_NAME(decoder));
  fail_unless_equals_int(load_receive_plugins(*h264, false), 2);
  fail_unless(loaded(h264->depayloader) && loaded(h264->parser));
  if (decoder && !decoder_before)
    fail_if(loaded(GST_OBJECT_NAME(decoder)), "decode=false loaded the decoder");
  fail_unless_equals_int(load_receive_plugins(*h264, true), decoder ? 3 : 2);
  for (const char *name : names)
    fail_unless(loaded(name), "%s not loaded", name);
}
GST_END_TEST;

static Suite *gstmtx_suite(void) {
  Suite *s = suite_create("gstmtx");
  TCase *tc = tcase_create("backoff");
  tcase_add_test(tc, test_backoff_grows_and_caps);
  tcase_add_test(tc, test_backoff_budget);
  tcase_add_test(tc, test_backoff_jitter_bounds);
  tcase_add_test(tc, test_backoff_retry_after_and_delivered_reset);
  tcase_add_test(tc, test_backoff_bounded_by_outage_age);
  suite_add_tcase(s, tc);
  tc = tcase_create("url");
  tcase_add_test(tc, test_url_whep_scheme);
  tcase_add_test(tc, test_url_rejects_bad_input);
  tcase_add_test(tc, test_url_rtsp_and_builders);
  tcase_add_test(tc, test_url_resolve_and_redact);
  suite_add_tcase(s, tc);
  tc = tcase_create("link");
  tcase_add_test(tc, test_link_header_ice_servers);
  tcase_add_test(tc, test_link_header_hostile);
  tcase_add_test(tc, test_status_message);
  suite_add_tcase(s, tc);
  tc = tcase_create("session");
  tcase_add_test(tc, test_session_classify);
  tcase_add_test(tc, test_session_retry_after);
  tcase_add_test(tc, test_trickle_sdpfrag);
  suite_add_tcase(s, tc);
  tc = tcase_create("liveness");
  tcase_add_test(tc, test_rtcp_liveness_viewer);
  tcase_add_test(tc, test_rtcp_liveness_slow_reporter);
  tcase_add_test(tc, test_rtcp_liveness_armed);
  suite_add_tcase(s, tc);
  tc = tcase_create("control");
  tcase_add_test(tc, test_controller_retry_and_give_up);
  tcase_add_test(tc, test_failure_error_codes);
  tcase_add_test(tc, test_ascii_lower);
  tcase_add_test(tc, test_load_receive_plugins);
  tcase_add_test(tc, test_event_loop_destroyed_at_once);
  tcase_add_test(tc, test_task_gate_drops_stale_tasks);
  tcase_add_test(tc, test_task_gate_close_from_loop_thread);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(gstmtx);
