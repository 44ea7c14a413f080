/* gst-mediamtx: repeated GET requests over one kept-alive plain-HTTP connection, without libsoup.
 *
 * keyframe-on-join polls MediaMTX's control API several times a second for as long as a
 * publisher runs (gst/reader_watch.h). Through libsoup (gst/http_client.h) each of those requests
 * cost ~0.6 ms of CPU on this project's 2-core test VM (message and header objects, GTask,
 * sources and signals per request: docs/benchmarks.md "Cost of keyframe-on-join's polling"); here
 * a request is one send() of a prepared text and the answer one or two recv() calls on a
 * non-blocking socket watched by the owner's EventLoop.
 *
 * Only what that polling needs: GET, http:// (no TLS, no proxy, no redirects: an https API
 * location keeps using HttpClient), one request on the wire at a time (others queue), answers
 * framed by Content-Length or chunked transfer coding (or ended by the server closing the
 * connection). A kept-alive connection the server closed between two requests is opened again
 * once, silently.
 *
 * HttpResponseReader, the incremental parser, is a plain class unit-tested in
 * tests/unit/test_reader_watch.cpp.
 */
#pragma once

#include <gio/gio.h>

#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include "event_loop.h"
#include "http_client.h"

namespace gstmtx {

/* Reads one HTTP/1.x response from the bytes a connection delivers. */
class HttpResponseReader {
public:
  enum class Result { NeedMore, Complete, Invalid };
  explicit HttpResponseReader(std::size_t max_body = 256 * 1024) : max_body_(max_body) {}

  /* Bytes as they come; Complete once the whole response is in (bytes after it are ignored). */
  Result feed(const char *data, std::size_t size);
  /* The server closed the connection: Complete when the response was framed by the close. */
  Result end_of_stream();

  /* status, headers (names lower-cased), content_type, body; valid once Complete */
  const HttpResponse &response() const { return response_; }
  /* the connection may carry the next request (HTTP/1.1 without "Connection: close") */
  bool keep_alive() const { return keep_alive_; }
  /* nothing of a response seen yet */
  bool empty() const { return buffer_.empty() && !headers_done_; }
  /* why the response is Invalid; `too_large` when it is bigger than max_body */
  const std::string &error() const { return error_; }
  bool too_large() const { return too_large_; }

private:
  Result parse_headers();
  Result parse_body();
  Result reject(const std::string &why, bool too_large = false);

  std::size_t max_body_;
  std::string buffer_;          /* unparsed bytes */
  HttpResponse response_;
  bool headers_done_ = false;
  bool chunked_ = false;
  bool until_close_ = false;
  long long content_length_ = -1;
  long long chunk_left_ = -1;   /* -1: a chunk size line is next */
  bool keep_alive_ = false;
  bool done_ = false;
  std::string error_;
  bool too_large_ = false;
};

class PlainHttpGet {
public:
  /* Lives on `loop` (which outlives it): construct, use and destroy on the loop thread. */
  PlainHttpGet(EventLoop &loop, std::string user_agent);
  ~PlainHttpGet(); /* closes the connection; callbacks of queued requests are never called */
  PlainHttpGet(const PlainHttpGet &) = delete;
  PlainHttpGet &operator=(const PlainHttpGet &) = delete;

  /* Whether `url` is one it can fetch: http://host[:port]/... */
  static bool supports(const std::string &url);

  /* Loop thread: queues a GET (request.method, body and redirects are ignored); `done` runs on
   * the loop thread once it is answered, failed or timed out (never after destruction). */
  void get(HttpRequest request, HttpClient::Callback done);

  /* connections opened so far (for tests and the cost measurement) */
  unsigned connections() const { return connections_; }

private:
  struct Pending {
    HttpRequest request;
    HttpClient::Callback done;
  };
  void next();
  void connect();
  void send_request();
  void on_readable();
  void finish(HttpResponse response, bool keep_connection);
  void close_connection();

  EventLoop &loop_;
  std::string user_agent_;
  std::deque<Pending> queue_;      /* the head is on the wire */
  bool busy_ = false;
  std::string origin_;             /* host:port of the open connection */
  std::string host_header_;
  GSocketClient *client_ = nullptr;
  GSocketConnection *connection_ = nullptr;
  GCancellable *cancellable_ = nullptr; /* the connect in progress */
  GSource *read_source_ = nullptr;
  GSource *deadline_ = nullptr;
  std::unique_ptr<HttpResponseReader> reader_;
  bool reused_ = false;            /* the request went out on a connection opened before it */
  bool retried_ = false;
  unsigned connections_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace gstmtx
