#include "http_client.h"

#include <libsoup/soup.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "ascii_case.h"
#include "mediamtx_url.h"

namespace gstmtx {

namespace {
gboolean accept_any_certificate(SoupMessage *, GTlsCertificate *, GTlsCertificateFlags, gpointer) { return TRUE; }
}  // namespace

void add_authorization(Headers &headers, const std::string &user, const std::string &password,
                       const std::string &token) {
  if (!token.empty()) {
    headers.emplace_back("Authorization", "Bearer " + token);
  } else if (!user.empty()) {
    std::string pair = user + ":" + password;
    g_autofree char *b64 = g_base64_encode(reinterpret_cast<const guchar *>(pair.data()), pair.size());
    headers.emplace_back("Authorization", std::string("Basic ") + b64);
  }
}

std::string HttpResponse::header(const std::string &name) const {
  for (const auto &[k, v] : headers)
    if (k == name)
      return v;
  return {};
}

std::vector<std::string> HttpResponse::headers_named(const std::string &name) const {
  std::vector<std::string> out;
  for (const auto &[k, v] : headers)
    if (k == name)
      out.push_back(v);
  return out;
}

struct HttpClient::Operation {
  HttpClient *client;
  HttpRequest request;
  Callback done;
  HttpResponse response;
  std::string current_url;
  SoupMessage *message = nullptr;
  GInputStream *stream = nullptr;
  GCancellable *cancellable = g_cancellable_new();
  GSource *deadline = nullptr;
  bool timed_out = false;
  bool finished = false;
  std::shared_ptr<Operation> self; /* keeps the op alive while a GIO call is pending */

  ~Operation() {
    g_clear_object(&message);
    g_clear_object(&stream);
    g_clear_object(&cancellable);
  }
};

HttpClient::HttpClient(EventLoop &loop, HttpClientConfig config) : loop_(loop), config_(std::move(config)) {
  if (!config_.tls_ca_file.empty()) {
    GError *err = nullptr;
    tls_database_ = g_tls_file_database_new(config_.tls_ca_file.c_str(), &err);
    if (!tls_database_) {
      config_error_ = std::string("cannot load CA file '") + config_.tls_ca_file + "': " + err->message;
      g_clear_error(&err);
    }
  }
  loop_.run_sync([this] {
    session_ = soup_session_new_with_options("user-agent", config_.user_agent.c_str(), "max-conns-per-host", 4,
                                             nullptr);
    if (tls_database_)
      soup_session_set_tls_database(session_, tls_database_);
  });
}

HttpClient::~HttpClient() {
  loop_.run_sync([this] {
    cancel_all();
    /* cancelled operations complete asynchronously: run the context until they are gone */
    gint64 deadline = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;
    while (!in_flight_.empty() && g_get_monotonic_time() < deadline)
      g_main_context_iteration(loop_.context(), TRUE);
    for (auto op : std::set<std::shared_ptr<Operation>>(in_flight_)) {
      op->response.failure = HttpFailure::Cancelled;
      finish(op);
    }
    g_clear_object(&session_);
    *alive_ = false;
  });
  g_clear_object(&tls_database_);
}

void HttpClient::send(HttpRequest request, Callback done) {
  auto op = std::make_shared<Operation>();
  op->client = this;
  op->request = std::move(request);
  op->done = std::move(done);
  op->current_url = op->request.url;
  loop_.post([this, op, alive = alive_] {
    if (!*alive) /* sent while the client was destroyed (ASan: a use after free here) */
      return;
    in_flight_.insert(op);
    if (!config_error_.empty()) {
      op->response.failure = HttpFailure::Tls;
      op->response.error = config_error_;
      finish(op);
      return;
    }
    /* one deadline for the whole exchange: connect, redirects, headers and body */
    op->deadline = g_timeout_source_new(static_cast<guint>(std::max<long long>(op->request.timeout.count(), 1)));
    std::weak_ptr<Operation> weak = op;
    auto *holder = new std::weak_ptr<Operation>(weak);
    g_source_set_callback(
        op->deadline,
        [](gpointer data) -> gboolean {
          if (auto op = static_cast<std::weak_ptr<Operation> *>(data)->lock()) {
            op->timed_out = true;
            g_cancellable_cancel(op->cancellable);
          }
          return G_SOURCE_REMOVE;
        },
        holder, [](gpointer data) { delete static_cast<std::weak_ptr<Operation> *>(data); });
    g_source_attach(op->deadline, loop_.context());
    start(op);
  });
}

HttpResponse HttpClient::send_sync(HttpRequest request) {
  std::mutex lock;
  std::condition_variable cv;
  bool done = false;
  HttpResponse result;
  send(std::move(request), [&](HttpResponse response) {
    std::lock_guard<std::mutex> guard(lock);
    result = std::move(response);
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> guard(lock);
  cv.wait(guard, [&] { return done; });
  return result;
}

void HttpClient::cancel_all() {
  loop_.run_sync([this] {
    for (auto &op : in_flight_)
      g_cancellable_cancel(op->cancellable);
  });
}

/* called on the loop thread */
void HttpClient::start(std::shared_ptr<Operation> op) {
  const HttpRequest &req = op->request;
  g_clear_object(&op->message);
  op->message = soup_message_new(req.method.c_str(), op->current_url.c_str());
  if (!op->message) {
    op->response.failure = HttpFailure::InvalidUrl;
    op->response.error = "invalid URL " + redact_url(op->current_url);
    finish(op);
    return;
  }
  soup_message_add_flags(op->message, SOUP_MESSAGE_NO_REDIRECT);
  SoupMessageHeaders *headers = soup_message_get_request_headers(op->message);
  for (const auto &[name, value] : req.headers)
    soup_message_headers_replace(headers, name.c_str(), value.c_str());
  if (!req.body.empty() || !req.content_type.empty()) {
    g_autoptr(GBytes) body = g_bytes_new(req.body.data(), req.body.size());
    soup_message_set_request_body_from_bytes(op->message, req.content_type.empty() ? nullptr : req.content_type.c_str(),
                                             body);
  }
  if (!config_.tls_validate)
    g_signal_connect(op->message, "accept-certificate", G_CALLBACK(accept_any_certificate), nullptr);
  op->self = op;
  soup_session_send_async(session_, op->message, G_PRIORITY_DEFAULT, op->cancellable, &HttpClient::on_sent, op.get());
}

void HttpClient::on_sent(GObject *source, GAsyncResult *result, gpointer data) {
  auto *raw = static_cast<Operation *>(data);
  std::shared_ptr<Operation> op = std::move(raw->self);
  HttpClient *self = op->client;
  GError *err = nullptr;
  GInputStream *stream = soup_session_send_finish(SOUP_SESSION(source), result, &err);
  if (!stream) {
    if (op->timed_out) {
      op->response.failure = HttpFailure::Timeout;
      op->response.error = "no answer within " + std::to_string(op->request.timeout.count()) + " ms";
    } else if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
      op->response.failure = HttpFailure::Cancelled;
      op->response.error = "cancelled";
    } else if (err && err->domain == G_TLS_ERROR) {
      op->response.failure = HttpFailure::Tls;
      op->response.error = std::string("TLS: ") + err->message;
    } else {
      op->response.failure = HttpFailure::Network;
      op->response.error = err ? err->message : "connection failed";
    }
    g_clear_error(&err);
    self->finish(op);
    return;
  }
  op->stream = stream;
  const unsigned status = soup_message_get_status(op->message);
  op->response.status = status;
  op->response.url = op->current_url;
  op->response.headers.clear();
  SoupMessageHeadersIter iter;
  const char *name, *value;
  soup_message_headers_iter_init(&iter, soup_message_get_response_headers(op->message));
  while (soup_message_headers_iter_next(&iter, &name, &value) && op->response.headers.size() < 256)
    op->response.headers.emplace_back(ascii_lower(name), value);
  const char *ctype = soup_message_headers_get_content_type(soup_message_get_response_headers(op->message), nullptr);
  op->response.content_type = ctype ? ascii_lower(ctype) : "";

  if (status == 307 || status == 308) {
    std::string location = op->response.header("location");
    auto next = resolve_location(op->current_url, location);
    g_clear_object(&op->stream);
    if (!next) {
      op->response.failure = HttpFailure::Network;
      op->response.error = "redirect " + std::to_string(status) + " without a usable Location";
      self->finish(op);
      return;
    }
    if (++op->response.redirects > op->request.max_redirects) {
      op->response.failure = HttpFailure::RedirectLoop;
      op->response.error = "more than " + std::to_string(op->request.max_redirects) + " redirects";
      self->finish(op);
      return;
    }
    op->current_url = *next;
    self->start(op);
    return;
  }
  op->self = op;
  g_input_stream_read_bytes_async(op->stream, 16384, G_PRIORITY_DEFAULT, op->cancellable, &HttpClient::on_read,
                                  op.get());
}

void HttpClient::on_read(GObject *source, GAsyncResult *result, gpointer data) {
  auto *raw = static_cast<Operation *>(data);
  std::shared_ptr<Operation> op = std::move(raw->self);
  HttpClient *self = op->client;
  GError *err = nullptr;
  g_autoptr(GBytes) bytes = g_input_stream_read_bytes_finish(G_INPUT_STREAM(source), result, &err);
  if (!bytes) {
    op->response.failure = op->timed_out ? HttpFailure::Timeout
                           : g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED) ? HttpFailure::Cancelled
                                                                                   : HttpFailure::Network;
    op->response.error = op->timed_out ? "body not received within " + std::to_string(op->request.timeout.count()) + " ms"
                                       : std::string("reading body: ") + (err ? err->message : "failed");
    g_clear_error(&err);
    self->finish(op);
    return;
  }
  gsize size = 0;
  const char *chunk = static_cast<const char *>(g_bytes_get_data(bytes, &size));
  if (size == 0) {
    self->finish(op);
    return;
  }
  if (op->response.body.size() + size > op->request.max_body) {
    op->response.failure = HttpFailure::TooLarge;
    op->response.error = "response body larger than " + std::to_string(op->request.max_body) + " bytes";
    self->finish(op);
    return;
  }
  op->response.body.append(chunk, size);
  op->self = op;
  g_input_stream_read_bytes_async(op->stream, 16384, G_PRIORITY_DEFAULT, op->cancellable, &HttpClient::on_read,
                                  op.get());
}

/* called on the loop thread, once per operation */
void HttpClient::finish(const std::shared_ptr<Operation> &op) {
  if (op->finished)
    return;
  op->finished = true;
  if (op->deadline) {
    g_source_destroy(op->deadline);
    g_source_unref(op->deadline);
    op->deadline = nullptr;
  }
  if (op->response.failure != HttpFailure::None)
    op->response.status = 0;
  if (op->stream)
    g_input_stream_close_async(op->stream, G_PRIORITY_DEFAULT, nullptr, nullptr, nullptr);
  in_flight_.erase(op);
  auto done = std::move(op->done);
  if (done)
    done(std::move(op->response));
}

}  // namespace gstmtx
