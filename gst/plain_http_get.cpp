#include "plain_http_get.h"

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "ascii_case.h"
#include "mediamtx_url.h"

namespace gstmtx {

namespace {
constexpr std::size_t kMaxHeaderBytes = 64 * 1024;
constexpr std::size_t kMaxChunkLine = 1024;

std::string trim(const std::string &s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos)
    return "";
  const auto end = s.find_last_not_of(" \t");
  return s.substr(begin, end - begin + 1);
}
}  // namespace

/* ---- HttpResponseReader ------------------------------------------------------------------- */

HttpResponseReader::Result HttpResponseReader::reject(const std::string &why, bool too_large) {
  error_ = why;
  too_large_ = too_large;
  return Result::Invalid;
}

HttpResponseReader::Result HttpResponseReader::feed(const char *data, std::size_t size) {
  if (done_)
    return Result::Complete;
  if (!error_.empty())
    return Result::Invalid;
  buffer_.append(data, size);
  if (!headers_done_) {
    const Result r = parse_headers();
    if (r != Result::Complete)
      return r;
  }
  return parse_body();
}

HttpResponseReader::Result HttpResponseReader::parse_headers() {
  const auto end = buffer_.find("\r\n\r\n");
  if (end == std::string::npos)
    return buffer_.size() > kMaxHeaderBytes ? reject("response headers too long") : Result::NeedMore;
  const std::string head = buffer_.substr(0, end);
  buffer_.erase(0, end + 4);
  std::size_t line_end = head.find("\r\n");
  const std::string status_line = head.substr(0, line_end);
  /* HTTP/1.x SSS reason */
  if (status_line.size() < 12 || status_line.compare(0, 7, "HTTP/1.") != 0 || status_line[8] != ' ' ||
      !g_ascii_isdigit(status_line[9]) || !g_ascii_isdigit(status_line[10]) || !g_ascii_isdigit(status_line[11]) ||
      (status_line.size() > 12 && status_line[12] != ' '))
    return reject("not an HTTP/1.x status line");
  const bool http11 = status_line[7] == '1';
  response_.status = static_cast<unsigned>(std::atoi(status_line.substr(9, 3).c_str()));
  if (response_.status < 200)
    return reject("unexpected interim response " + std::to_string(response_.status));
  std::string connection;
  std::string transfer_encoding;
  while (line_end != std::string::npos) {
    const std::size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    const std::string line = head.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
    const auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0)
      return reject("malformed header line");
    const std::string name = ascii_lower(trim(line.substr(0, colon)));
    const std::string value = trim(line.substr(colon + 1));
    if (response_.headers.size() < 256)
      response_.headers.emplace_back(name, value);
    if (name == "content-length") {
      if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos || value.size() > 18)
        return reject("invalid Content-Length");
      const long long length = std::atoll(value.c_str());
      if (content_length_ >= 0 && content_length_ != length)
        return reject("conflicting Content-Length headers");
      content_length_ = length;
    } else if (name == "transfer-encoding") {
      transfer_encoding = ascii_lower(value);
    } else if (name == "connection") {
      connection = ascii_lower(value);
    } else if (name == "content-type") {
      response_.content_type = ascii_lower(trim(value.substr(0, value.find(';'))));
    }
  }
  keep_alive_ = http11 ? connection.find("close") == std::string::npos
                       : connection.find("keep-alive") != std::string::npos;
  if (!transfer_encoding.empty()) {
    if (transfer_encoding != "chunked")
      return reject("unsupported Transfer-Encoding '" + transfer_encoding + "'");
    chunked_ = true;
    content_length_ = -1;
  } else if (response_.status == 204 || response_.status == 304) {
    content_length_ = 0;
  } else if (content_length_ < 0) {
    until_close_ = true;
    keep_alive_ = false;
  }
  if (content_length_ > static_cast<long long>(max_body_))
    return reject("response body larger than " + std::to_string(max_body_) + " bytes", true);
  headers_done_ = true;
  return Result::Complete;
}

HttpResponseReader::Result HttpResponseReader::parse_body() {
  std::string &body = response_.body;
  if (content_length_ >= 0) {
    if (buffer_.size() < static_cast<std::size_t>(content_length_))
      return Result::NeedMore;
    body.assign(buffer_, 0, static_cast<std::size_t>(content_length_));
    buffer_.clear();
    done_ = true;
    return Result::Complete;
  }
  if (until_close_) {
    body += buffer_;
    buffer_.clear();
    return body.size() > max_body_ ? reject("response body larger than " + std::to_string(max_body_) + " bytes", true)
                                   : Result::NeedMore;
  }
  /* chunked: size line, data, CRLF ... a zero size, trailers, an empty line */
  for (;;) {
    if (chunk_left_ < 0) {
      const auto eol = buffer_.find("\r\n");
      if (eol == std::string::npos ? buffer_.size() > kMaxChunkLine : eol > kMaxChunkLine)
        return reject("chunk size line too long"); /* however the bytes came */
      if (eol == std::string::npos)
        return Result::NeedMore;
      const std::string size_text = trim(buffer_.substr(0, std::min(eol, buffer_.find(';'))));
      if (size_text.empty() || size_text.size() > 15 ||
          size_text.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
        return reject("invalid chunk size");
      const long long size = std::strtoll(size_text.c_str(), nullptr, 16);
      if (size == 0) {
        /* the last chunk: optional trailer lines, then an empty line */
        const std::size_t after = eol + 2;
        if (buffer_.compare(after, 2, "\r\n") == 0 || buffer_.find("\r\n\r\n", eol) != std::string::npos) {
          buffer_.clear();
          done_ = true;
          return Result::Complete;
        }
        return buffer_.size() > kMaxHeaderBytes ? reject("trailer too long") : Result::NeedMore;
      }
      if (body.size() + static_cast<std::size_t>(size) > max_body_)
        return reject("response body larger than " + std::to_string(max_body_) + " bytes", true);
      buffer_.erase(0, eol + 2);
      chunk_left_ = size;
    }
    if (buffer_.size() < static_cast<std::size_t>(chunk_left_) + 2)
      return Result::NeedMore;
    if (buffer_.compare(static_cast<std::size_t>(chunk_left_), 2, "\r\n") != 0)
      return reject("chunk not followed by CRLF");
    body.append(buffer_, 0, static_cast<std::size_t>(chunk_left_));
    buffer_.erase(0, static_cast<std::size_t>(chunk_left_) + 2);
    chunk_left_ = -1;
  }
}

HttpResponseReader::Result HttpResponseReader::end_of_stream() {
  if (done_)
    return Result::Complete;
  if (error_.empty() && headers_done_ && until_close_) {
    done_ = true;
    return Result::Complete;
  }
  if (error_.empty())
    error_ = "the server closed the connection before the response was complete";
  return Result::Invalid;
}

/* ---- PlainHttpGet ------------------------------------------------------------------------- */

namespace {
struct Target {
  std::string host;   /* as for connecting: no brackets */
  int port = 80;
  std::string origin; /* Host header: host[:port], IPv6 in brackets */
  std::string path;   /* path and query */
};

std::optional<Target> parse_target(const std::string &url) {
  g_autoptr(GUri) uri = g_uri_parse(url.c_str(), G_URI_FLAGS_ENCODED, nullptr);
  if (!uri || g_strcmp0(g_uri_get_scheme(uri), "http") != 0 || !g_uri_get_host(uri) || !*g_uri_get_host(uri))
    return std::nullopt;
  Target t;
  t.host = g_uri_get_host(uri);
  t.port = g_uri_get_port(uri) > 0 ? g_uri_get_port(uri) : 80;
  const bool ipv6 = t.host.find(':') != std::string::npos;
  t.origin = (ipv6 ? "[" + t.host + "]" : t.host) + ":" + std::to_string(t.port);
  t.path = g_uri_get_path(uri) && *g_uri_get_path(uri) ? g_uri_get_path(uri) : "/";
  if (g_uri_get_query(uri))
    t.path += std::string("?") + g_uri_get_query(uri);
  return t;
}

struct ConnectHandoff {
  PlainHttpGet *self;
  std::weak_ptr<bool> alive;
};
}  // namespace

bool PlainHttpGet::supports(const std::string &url) { return parse_target(url).has_value(); }

PlainHttpGet::PlainHttpGet(EventLoop &loop, std::string user_agent) : loop_(loop), user_agent_(std::move(user_agent)) {}

PlainHttpGet::~PlainHttpGet() {
  *alive_ = false;
  if (deadline_) {
    g_source_destroy(deadline_);
    g_source_unref(deadline_);
  }
  close_connection();
  g_clear_object(&client_);
}

void PlainHttpGet::get(HttpRequest request, HttpClient::Callback done) {
  queue_.push_back(Pending{std::move(request), std::move(done)});
  if (!busy_)
    next();
}

void PlainHttpGet::next() {
  if (busy_ || queue_.empty())
    return;
  busy_ = true;
  retried_ = false;
  const HttpRequest &req = queue_.front().request;
  reader_ = std::make_unique<HttpResponseReader>(req.max_body);
  auto target = parse_target(req.url);
  if (!target) {
    HttpResponse r;
    r.failure = HttpFailure::InvalidUrl;
    r.error = "not a plain http:// URL: " + redact_url(req.url);
    finish(std::move(r), true);
    return;
  }
  deadline_ = g_timeout_source_new(static_cast<guint>(std::max<long long>(req.timeout.count(), 1)));
  g_source_set_callback(
      deadline_,
      [](gpointer data) -> gboolean {
        auto *self = static_cast<PlainHttpGet *>(data);
        HttpResponse r;
        r.failure = HttpFailure::Timeout;
        r.error = "no answer within " + std::to_string(self->queue_.front().request.timeout.count()) + " ms";
        self->finish(std::move(r), false);
        return G_SOURCE_REMOVE;
      },
      this, nullptr);
  g_source_attach(deadline_, loop_.context());
  if (connection_ && origin_ == target->origin) {
    reused_ = true;
    send_request();
  } else {
    close_connection();
    connect();
  }
}

void PlainHttpGet::connect() {
  reused_ = false;
  auto target = parse_target(queue_.front().request.url);
  if (!client_) {
    client_ = g_socket_client_new();
    g_socket_client_set_enable_proxy(client_, FALSE);
  }
  origin_ = target->origin;
  cancellable_ = g_cancellable_new();
  /* host[:port] as GIO parses it: an IPv6 literal in brackets */
  const std::string host = target->host.find(':') != std::string::npos ? "[" + target->host + "]" : target->host;
  g_socket_client_connect_to_host_async(
      client_, host.c_str(), static_cast<guint16>(target->port), cancellable_,
      [](GObject *source, GAsyncResult *result, gpointer data) {
        std::unique_ptr<ConnectHandoff> h(static_cast<ConnectHandoff *>(data));
        GError *err = nullptr;
        GSocketConnection *connection = g_socket_client_connect_to_host_finish(G_SOCKET_CLIENT(source), result, &err);
        auto alive = h->alive.lock();
        if (!alive || !*alive || g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
          g_clear_object(&connection);
          g_clear_error(&err);
          return;
        }
        PlainHttpGet *self = h->self;
        g_clear_object(&self->cancellable_);
        if (!connection) {
          HttpResponse r;
          r.failure = HttpFailure::Network;
          r.error = err ? err->message : "connection failed";
          g_clear_error(&err);
          self->finish(std::move(r), false);
          return;
        }
        self->connection_ = connection;
        self->connections_++;
        g_socket_set_blocking(g_socket_connection_get_socket(connection), FALSE);
        self->send_request();
      },
      new ConnectHandoff{this, alive_});
}

void PlainHttpGet::send_request() {
  const HttpRequest &req = queue_.front().request;
  auto target = parse_target(req.url);
  std::string text = "GET " + target->path + " HTTP/1.1\r\nHost: " + target->origin + "\r\nUser-Agent: " + user_agent_ +
                     "\r\nAccept: application/json\r\n";
  for (const auto &[name, value] : req.headers)
    text += name + ": " + value + "\r\n";
  text += "\r\n";
  GSocket *socket = g_socket_connection_get_socket(connection_);
  std::size_t sent = 0;
  while (sent < text.size()) {
    GError *err = nullptr;
    const gssize n = g_socket_send(socket, text.data() + sent, text.size() - sent, nullptr, &err);
    if (n <= 0) {
      /* a kept-alive connection the server has closed: open a new one, once */
      const bool retry = reused_ && !retried_ && sent == 0;
      HttpResponse r;
      r.failure = HttpFailure::Network;
      r.error = std::string("sending the request: ") + (err ? err->message : "nothing sent");
      g_clear_error(&err);
      if (retry) {
        retried_ = true;
        close_connection();
        connect();
        return;
      }
      finish(std::move(r), false);
      return;
    }
    sent += static_cast<std::size_t>(n);
  }
  read_source_ = g_socket_create_source(socket, static_cast<GIOCondition>(G_IO_IN | G_IO_ERR | G_IO_HUP), nullptr);
  g_source_set_callback(
      read_source_,
      reinterpret_cast<GSourceFunc>(+[](GSocket *, GIOCondition, gpointer data) -> gboolean {
        static_cast<PlainHttpGet *>(data)->on_readable();
        return G_SOURCE_CONTINUE; /* finish() destroys the source when done */
      }),
      this, nullptr);
  g_source_attach(read_source_, loop_.context());
}

void PlainHttpGet::on_readable() {
  GSocket *socket = g_socket_connection_get_socket(connection_);
  char buf[16384];
  for (;;) {
    GError *err = nullptr;
    const gssize n = g_socket_receive(socket, buf, sizeof buf, nullptr, &err);
    if (n < 0 && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      g_clear_error(&err);
      return;
    }
    HttpResponseReader::Result result;
    if (n <= 0) {
      /* closed (or reset) before anything of the answer came: a kept-alive connection the server
       * timed out, once more on a new one */
      if (reused_ && !retried_ && reader_->empty()) {
        g_clear_error(&err);
        retried_ = true;
        close_connection();
        connect();
        return;
      }
      result = n == 0 ? reader_->end_of_stream() : HttpResponseReader::Result::Invalid;
      if (result != HttpResponseReader::Result::Complete) {
        HttpResponse r;
        r.failure = HttpFailure::Network;
        r.error = n == 0 ? reader_->error() : std::string("reading the response: ") + (err ? err->message : "failed");
        g_clear_error(&err);
        finish(std::move(r), false);
        return;
      }
    } else {
      result = reader_->feed(buf, static_cast<std::size_t>(n));
    }
    if (result == HttpResponseReader::Result::Invalid) {
      HttpResponse r;
      r.failure = reader_->too_large() ? HttpFailure::TooLarge : HttpFailure::Network;
      r.error = reader_->error();
      finish(std::move(r), false);
      return;
    }
    if (result == HttpResponseReader::Result::Complete) {
      HttpResponse r = reader_->response();
      finish(std::move(r), n > 0 && reader_->keep_alive());
      return;
    }
  }
}

void PlainHttpGet::finish(HttpResponse response, bool keep_connection) {
  if (deadline_) {
    g_source_destroy(deadline_);
    g_source_unref(deadline_);
    deadline_ = nullptr;
  }
  if (read_source_) {
    g_source_destroy(read_source_);
    g_source_unref(read_source_);
    read_source_ = nullptr;
  }
  if (!keep_connection)
    close_connection();
  Pending done = std::move(queue_.front());
  queue_.pop_front();
  busy_ = false;
  if (response.failure != HttpFailure::None)
    response.status = 0;
  response.url = done.request.url;
  std::weak_ptr<bool> alive = alive_;
  if (done.done)
    done.done(std::move(response));
  auto a = alive.lock();
  if (a && *a)
    next();
}

void PlainHttpGet::close_connection() {
  if (read_source_) {
    g_source_destroy(read_source_);
    g_source_unref(read_source_);
    read_source_ = nullptr;
  }
  if (cancellable_) {
    g_cancellable_cancel(cancellable_);
    g_clear_object(&cancellable_);
  }
  if (connection_) {
    g_io_stream_close(G_IO_STREAM(connection_), nullptr, nullptr);
    g_clear_object(&connection_);
  }
  origin_.clear();
}

}  // namespace gstmtx
