#include "hostile_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "mediamtx_server.h"

namespace testbed {

namespace {
const char *kSdp =
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n";
}

HostileServer::HostileServer() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  listen(listen_fd_, 64);
  acceptor_ = std::thread([this] { accept_loop(); });
}

HostileServer::~HostileServer() {
  stopping_ = true;
  shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  close(listen_fd_);
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> guard(lock_);
    for (int fd : client_fds_)
      shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  for (auto &t : workers)
    t.join();
}

std::string HostileServer::url(const std::string &route) const {
  return "http://" + server_address() + ":" + std::to_string(port_) + "/" + route + "/cam/whep";
}

int HostileServer::requests(const std::string &route, const std::string &method) const {
  std::lock_guard<std::mutex> guard(lock_);
  auto it = counts_.find(route + " " + method);
  return it == counts_.end() ? 0 : it->second;
}

long long HostileServer::bytes_sent(const std::string &route) const {
  std::lock_guard<std::mutex> guard(lock_);
  auto it = bytes_.find(route);
  return it == bytes_.end() ? 0 : it->second;
}

void HostileServer::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0)
      continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0)
      continue;
    std::lock_guard<std::mutex> guard(lock_);
    client_fds_.push_back(fd);
    workers_.emplace_back([this, fd] { serve(fd); });
  }
}

bool HostileServer::send_all(int fd, const std::string &data, const std::string &route) {
  std::size_t off = 0;
  while (off < data.size()) {
    if (stopping_)
      return false;
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, 100) <= 0)
      continue;
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0)
      return false;
    off += static_cast<std::size_t>(n);
    std::lock_guard<std::mutex> guard(lock_);
    bytes_[route] += n;
  }
  return true;
}

/* one request per connection, then close */
void HostileServer::serve(int fd) {
  std::string request;
  char buf[4096];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 65536 && !stopping_) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0)
      continue;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      break;
    request.append(buf, static_cast<std::size_t>(n));
  }
  const std::string method = request.substr(0, request.find(' '));
  const auto path_start = request.find(' ') == std::string::npos ? request.size() : request.find(' ') + 2;
  const std::string route = request.substr(path_start, request.find('/', path_start) - path_start);
  {
    std::lock_guard<std::mutex> guard(lock_);
    counts_[route + " " + method]++;
  }
  const std::string sdp_head = "HTTP/1.1 201 Created\r\nContent-Type: application/sdp\r\nConnection: close\r\n";
  if (route == "slow-body") {
    if (send_all(fd, sdp_head + "\r\nv=0\r\n", route))
      while (!stopping_ && send_all(fd, "a", route))
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } else if (route == "endless-body") {
    const std::string chunk(65536, 'a');
    if (send_all(fd, sdp_head + "\r\nv=0\r\n", route))
      while (!stopping_ && send_all(fd, chunk, route)) {
      }
  } else if (route == "many-links") {
    if (method == "OPTIONS") {
      std::string head = "HTTP/1.1 204 No Content\r\nConnection: close\r\n";
      for (int i = 0; i < 1000; ++i)
        head += "Link: <stun:10.77.0." + std::to_string(i % 250) + ":" + std::to_string(3478 + i) +
                ">; rel=\"ice-server\"\r\n";
      send_all(fd, head + "\r\n", route);
    } else {
      send_all(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", route);
    }
  } else if (route == "many-headers") {
    std::string head = sdp_head;
    for (int i = 0; i < 100000; ++i)
      head += "X-Filler-" + std::to_string(i) + ": x\r\n";
    send_all(fd, head + "Content-Length: " + std::to_string(strlen(kSdp)) + "\r\n\r\n" + kSdp, route);
  } else if (route == "huge-header") {
    send_all(fd, sdp_head + "X-Huge: " + std::string(1 << 20, 'h') + "\r\nContent-Length: " +
                     std::to_string(strlen(kSdp)) + "\r\n\r\n" + kSdp,
             route);
  } else {
    send_all(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", route);
  }
  /* let the client see the end of the answer before the close */
  shutdown(fd, SHUT_WR);
  for (int i = 0; i < 20 && !stopping_; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) > 0 && recv(fd, buf, sizeof buf, 0) <= 0)
      break;
  }
  std::lock_guard<std::mutex> guard(lock_);
  close(fd);
  for (auto &f : client_fds_)
    if (f == fd)
      f = -1;
}

}  // namespace testbed
