#include "fault_server.h"

#include <libsoup/soup.h>

#include <condition_variable>
#include <cstring>

#include "mediamtx_server.h"

namespace testbed {

namespace {

void reply(SoupServerMessage *msg, guint status, const char *content_type, const std::string &body) {
  soup_server_message_set_status(msg, status, nullptr);
  if (content_type)
    soup_server_message_set_response(msg, content_type, SOUP_MEMORY_COPY, body.data(), body.size());
}

/* Forwards the request to the real server synchronously (this thread only serves tests). */
/* location_base: what the answer's Location path is put under ("" drops it). */
void relay(FaultServer *self, SoupServerMessage *msg, const std::string &rest, const std::string &location_base) {
  std::string target = self->relay_base() + rest;
  g_autoptr(SoupSession) session = soup_session_new_with_options("timeout", 5, nullptr);
  g_autoptr(SoupMessage) out = soup_message_new(soup_server_message_get_method(msg), target.c_str());
  SoupMessageBody *in_body = soup_server_message_get_request_body(msg);
  g_autoptr(GBytes) in = soup_message_body_flatten(in_body);
  const char *ctype = soup_message_headers_get_content_type(soup_server_message_get_request_headers(msg), nullptr);
  if (in && g_bytes_get_size(in))
    soup_message_set_request_body_from_bytes(out, ctype, in);
  if (const char *auth = soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization"))
    soup_message_headers_replace(soup_message_get_request_headers(out), "Authorization", auth);
  g_autoptr(GBytes) answer = soup_session_send_and_read(session, out, nullptr, nullptr);
  guint status = soup_message_get_status(out);
  if (status == 0) {
    reply(msg, 502, "text/plain", "relay failed");
    return;
  }
  gsize size = 0;
  const char *data = answer ? static_cast<const char *>(g_bytes_get_data(answer, &size)) : "";
  const char *out_type = soup_message_headers_get_content_type(soup_message_get_response_headers(out), nullptr);
  reply(msg, status, out_type ? out_type : "application/octet-stream", std::string(data ? data : "", size));
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  if (const char *etag = soup_message_headers_get_one(soup_message_get_response_headers(out), "ETag"))
    soup_message_headers_replace(h, "ETag", etag);
  const char *location = soup_message_headers_get_one(soup_message_get_response_headers(out), "Location");
  if (!location_base.empty() && location)
    soup_message_headers_replace(h, "Location", (location_base + location).c_str());
}

void handle(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *, gpointer data) {
  auto *self = static_cast<FaultServer *>(data);
  /* /<fault>/<stream>/whep[/...] */
  std::string p = path;
  std::string fault = p.substr(1, p.find('/', 1) - 1);
  std::string rest = p.substr(fault.size() + 1);
  const std::string method = soup_server_message_get_method(msg);
  self->count(fault, method);
  {
    std::string lines;
    SoupMessageHeadersIter iter;
    const char *name, *value;
    soup_message_headers_iter_init(&iter, soup_server_message_get_request_headers(msg));
    while (soup_message_headers_iter_next(&iter, &name, &value))
      lines += std::string(name) + ": " + value + "\n";
    self->record_headers(fault, lines);
    g_autoptr(GBytes) body = soup_message_body_flatten(soup_server_message_get_request_body(msg));
    gsize size = 0;
    const char *data = body ? static_cast<const char *>(g_bytes_get_data(body, &size)) : nullptr;
    self->record_body(fault, method, data ? std::string(data, size) : std::string());
  }
  const std::string here = self->base_url() + "/relay-here";
  const std::string error_body = "{\"status\":\"error\",\"error\":\"injected fault " + fault + "\"}";

  if (fault.rfind("status-", 0) == 0) {
    guint status = static_cast<guint>(std::atoi(fault.c_str() + 7));
    reply(msg, status, "application/json", error_body);
    if (status == 503)
      soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Retry-After", "1");
  } else if (fault == "unavailable-once" && method == "POST" && self->requests(fault, method) == 1) {
    reply(msg, 503, "application/json", error_body);
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Retry-After", "2");
  } else if (method == "OPTIONS" || method == "DELETE" || method == "PATCH") {
    if (fault == "relay" || fault == "relay-no-location" || fault == "redirect" || fault == "unavailable-once")
      relay(self, msg, rest, self->relay_base());
    else if (fault == "relay-here")
      relay(self, msg, rest, here);
    else
      reply(msg, method == "OPTIONS" ? 204 : 200, nullptr, "");
  } else if (fault == "garbage") {
    reply(msg, 201, "application/sdp", "this is not SDP\r\n");
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Location", "/garbage/x");
  } else if (fault == "wrong-type") {
    reply(msg, 201, "text/html", "<html><body>proxy login page</body></html>");
  } else if (fault == "empty") {
    reply(msg, 201, "application/sdp", "");
  } else if (fault == "huge") {
    std::string body = "v=0\r\n";
    body.append(2 * 1024 * 1024, 'x');
    reply(msg, 201, "application/sdp", body);
  } else if (fault == "loop") {
    soup_server_message_set_redirect(msg, 307, path);
  } else if (fault == "redirect") {
    soup_server_message_set_redirect(msg, 307, ("/relay" + rest).c_str());
  } else if (fault == "hang") {
    soup_server_message_pause(msg);
  } else if (fault == "hang-body") {
    soup_server_message_set_status(msg, 201, nullptr);
    soup_message_headers_set_encoding(soup_server_message_get_response_headers(msg), SOUP_ENCODING_CHUNKED);
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Content-Type", "application/sdp");
    soup_message_body_append(soup_server_message_get_response_body(msg), SOUP_MEMORY_COPY, "v=0\r\n", 5);
    /* headers and a first chunk go out; the rest never comes */
  } else if (fault == "reset") {
    if (GIOStream *stream = soup_server_message_steal_connection(msg)) {
      g_io_stream_close(stream, nullptr, nullptr);
      g_object_unref(stream);
    }
  } else if (fault == "relay" || fault == "unavailable-once") {
    relay(self, msg, rest, self->relay_base());
  } else if (fault == "relay-here") {
    relay(self, msg, rest, here);
  } else if (fault == "relay-no-location") {
    relay(self, msg, rest, "");
  } else {
    reply(msg, 404, "text/plain", "unknown fault route");
  }
}

}  // namespace

FaultServer::FaultServer(std::string relay_base) : relay_base_(std::move(relay_base)), host_(server_address()) {
  context_ = g_main_context_new();
  loop_ = g_main_loop_new(context_, FALSE);
  std::mutex m;
  std::condition_variable cv;
  bool ready = false;
  thread_ = std::thread([&] {
    g_main_context_push_thread_default(context_);
    server_ = soup_server_new(nullptr, nullptr);
    soup_server_add_handler(server_, nullptr, handle, this, nullptr);
    GError *err = nullptr;
    g_autoptr(GInetAddress) addr = g_inet_address_new_from_string(host_.c_str());
    g_autoptr(GSocketAddress) sa = g_inet_socket_address_new(addr, 0);
    if (soup_server_listen(server_, sa, static_cast<SoupServerListenOptions>(0), &err)) {
      GSList *uris = soup_server_get_uris(server_);
      port_ = g_uri_get_port(static_cast<GUri *>(uris->data));
      g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
    } else {
      g_printerr("fault server: %s\n", err->message);
      g_clear_error(&err);
    }
    {
      std::lock_guard<std::mutex> guard(m);
      ready = true;
    }
    cv.notify_one();
    g_main_loop_run(loop_);
    soup_server_disconnect(server_);
    g_object_unref(server_);
    g_main_context_pop_thread_default(context_);
  });
  std::unique_lock<std::mutex> guard(m);
  cv.wait(guard, [&] { return ready; });
}

FaultServer::~FaultServer() {
  g_main_loop_quit(loop_);
  thread_.join();
  g_main_loop_unref(loop_);
  g_main_context_unref(context_);
}

std::string FaultServer::base_url() const { return "http://" + host_ + ":" + std::to_string(port_); }

std::string FaultServer::url(const std::string &fault, const std::string &path, const char *kind) const {
  return base_url() + "/" + fault + "/" + path + "/" + kind;
}

void FaultServer::count(const std::string &fault, const std::string &method) {
  std::lock_guard<std::mutex> guard(lock_);
  counts_[fault]++;
  counts_[fault + " " + method]++;
  times_[fault + " " + method].push_back(g_get_monotonic_time());
}

void FaultServer::record_headers(const std::string &fault, const std::string &headers) {
  std::lock_guard<std::mutex> guard(lock_);
  headers_[fault] = headers;
}

void FaultServer::record_body(const std::string &fault, const std::string &method, std::string body) {
  std::lock_guard<std::mutex> guard(lock_);
  bodies_[fault + " " + method].push_back(std::move(body));
}

std::vector<std::string> FaultServer::bodies(const std::string &fault, const std::string &method) const {
  std::lock_guard<std::mutex> guard(lock_);
  auto it = bodies_.find(fault + " " + method);
  return it == bodies_.end() ? std::vector<std::string>() : it->second;
}

std::string FaultServer::last_headers(const std::string &fault) const {
  std::lock_guard<std::mutex> guard(lock_);
  auto it = headers_.find(fault);
  return it == headers_.end() ? std::string() : it->second;
}

int FaultServer::requests(const std::string &fault) const {
  std::lock_guard<std::mutex> guard(lock_);
  auto it = counts_.find(fault);
  return it == counts_.end() ? 0 : it->second;
}

std::vector<gint64> FaultServer::request_times(const std::string &fault, const std::string &method) const {
  std::lock_guard<std::mutex> guard(lock_);
  auto it = times_.find(fault + " " + method);
  return it == times_.end() ? std::vector<gint64>() : it->second;
}

int FaultServer::requests(const std::string &fault, const std::string &method) const {
  return requests(fault + " " + method);
}

}  // namespace testbed
