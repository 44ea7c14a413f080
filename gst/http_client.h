/* gst-mediamtx: a small libsoup 3 client for the WebRTC-HTTP protocols.
 *
 * Every request runs on the owner's EventLoop thread with its own deadline (covering connect,
 * redirects, headers and body), a cap on the body size and on redirects (307/308 only, method and
 * body kept). Responses are plain structs: no libsoup type leaks to callers.
 */
#pragma once

#include <gio/gio.h>

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "event_loop.h"

typedef struct _SoupSession SoupSession;

namespace gstmtx {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  Headers headers;                 /* sent as given; Authorization is never logged */
  std::string content_type;        /* with a body */
  std::string body;
  std::chrono::milliseconds timeout{5000};
  int max_redirects = 5;
  std::size_t max_body = 256 * 1024;
};

enum class HttpFailure { None, InvalidUrl, Network, Timeout, Cancelled, TooLarge, RedirectLoop, Tls };

struct HttpResponse {
  HttpFailure failure = HttpFailure::None;
  std::string error;               /* transport error text, for failures */
  unsigned status = 0;             /* 0 when failure != None */
  std::string url;                 /* the URL that answered (after redirects) */
  Headers headers;                 /* names lower-cased */
  std::string content_type;        /* media type only, lower-cased */
  std::string body;
  int redirects = 0;

  bool ok() const { return failure == HttpFailure::None; }
  std::string header(const std::string &name) const;              /* first value, name lower-case */
  std::vector<std::string> headers_named(const std::string &name) const;
};

/* Authorization for a request: Bearer `token` when set, else Basic user:password when a user is
 * set, else none (appended to `headers`). */
void add_authorization(Headers &headers, const std::string &user, const std::string &password,
                       const std::string &token);

struct HttpClientConfig {
  std::string user_agent = "gst-mediamtx";
  std::string tls_ca_file;         /* PEM file of extra trusted CAs (replaces the system store) */
  bool tls_validate = true;        /* false: accept any certificate (the element warns) */
};

class HttpClient {
public:
  /* The client lives on `loop`: construct, use and destroy it from any thread, its work runs there. */
  HttpClient(EventLoop &loop, HttpClientConfig config);
  ~HttpClient();
  HttpClient(const HttpClient &) = delete;
  HttpClient &operator=(const HttpClient &) = delete;

  using Callback = std::function<void(HttpResponse)>;
  /* Starts a request; `done` runs on the loop thread, exactly once (also on cancel), unless the
   * request is sent while the client is being destroyed (e.g. from another request's `done`
   * during the destructor's cancellation): then it is dropped, and `done` never runs. */
  void send(HttpRequest request, Callback done);
  /* Sends and waits (never call from the loop thread). */
  HttpResponse send_sync(HttpRequest request);
  /* Cancels every request in flight; their callbacks see HttpFailure::Cancelled. */
  void cancel_all();
  /* Error text of the CA file, if it could not be loaded (checked at construction). */
  const std::string &config_error() const { return config_error_; }

  struct Operation;

private:
  void start(std::shared_ptr<Operation> op);
  void finish(const std::shared_ptr<Operation> &op);
  static void on_sent(GObject *source, GAsyncResult *result, gpointer data);
  static void on_read(GObject *source, GAsyncResult *result, gpointer data);

  EventLoop &loop_;
  HttpClientConfig config_;
  std::string config_error_;
  SoupSession *session_ = nullptr;        /* used on the loop thread only */
  GTlsDatabase *tls_database_ = nullptr;
  std::set<std::shared_ptr<Operation>> in_flight_; /* loop thread only */
  /* false once the destructor has run (loop thread only): a send posted before then but run
   * after finds the client gone */
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace gstmtx
