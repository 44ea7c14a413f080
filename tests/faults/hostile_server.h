/* gst-mediamtx tests: a raw-socket HTTP server that attacks the client's resource bounds, for the
 * faults libsoup's own server will not produce (endless or slow bodies, thousands of headers).
 *
 * Routes, under http://<addr>:<port>/<route>/cam/whep:
 *   slow-body      201 application/sdp, no length, then one byte every 100 ms, forever
 *   endless-body   201 application/sdp, no length, then data as fast as the client reads, forever
 *   many-links     OPTIONS: 204 with 1000 Link rel="ice-server" headers (~45 KB, under
 *                  libsoup's 64 KiB header limit); POST: 400
 *   many-headers   201 with 100000 small headers, then an SDP body
 *   huge-header    201 with one 1 MiB header, then an SDP body
 * Every request is counted per route and method. One thread per connection; all stop on
 * destruction.
 */
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace testbed {

class HostileServer {
public:
  HostileServer();
  ~HostileServer();
  HostileServer(const HostileServer &) = delete;
  HostileServer &operator=(const HostileServer &) = delete;

  std::string url(const std::string &route) const;
  int requests(const std::string &route, const std::string &method) const;
  /* bytes written on the route so far (bodies and headers) */
  long long bytes_sent(const std::string &route) const;

private:
  void accept_loop();
  void serve(int fd);
  bool send_all(int fd, const std::string &data, const std::string &route);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable std::mutex lock_;
  std::vector<std::thread> workers_;
  std::vector<int> client_fds_;
  std::map<std::string, int> counts_;
  std::map<std::string, long long> bytes_;
};

}  // namespace testbed
