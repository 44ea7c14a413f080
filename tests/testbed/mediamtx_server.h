/* gst-mediamtx tests: a real MediaMTX, started per test on free ports with a generated config.
 *
 * The binary comes from $MEDIAMTX_BIN (tests/run.sh builds and caches it). The server binds all
 * addresses of the test's private network namespace; clients reach it on $TESTBED_SERVER_ADDR
 * (a veth address: libnice gathers no loopback candidates) and its API on 127.0.0.1.
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include <string>

namespace testbed {

struct MediamtxOptions {
  /* YAML for authInternalUsers (the list items, indented by two spaces); empty: anyone may
   * publish and read, the API is open on localhost. */
  std::string auth_users;
  /* extra top-level YAML lines */
  std::string extra_config;
  /* YAML for paths: (indented by two spaces); empty: "all_others:" */
  std::string paths;
  bool ice_tcp = false;        /* also listen for ICE over TCP */
  bool api_everywhere = false; /* API on every address (clients use host()), not only 127.0.0.1 */
  std::string tls_key, tls_cert; /* non-empty: WebRTC/HLS/API served over TLS */
};

class MediamtxServer {
public:
  explicit MediamtxServer(MediamtxOptions options = {});
  ~MediamtxServer();
  MediamtxServer(const MediamtxServer &) = delete;
  MediamtxServer &operator=(const MediamtxServer &) = delete;

  /* Writes the config (ports chosen on first start, kept across restarts), starts the process
   * and waits until its API answers. Returns false (with the log printed) on failure. */
  bool start();
  void stop();          /* SIGTERM, wait */
  void kill_hard();     /* SIGKILL, wait */
  bool restart() { stop(); return start(); }
  bool running() const { return pid_ > 0; }

  std::string host() const { return host_; }
  int rtsp_port() const { return rtsp_port_; }
  int webrtc_port() const { return webrtc_port_; }
  int hls_port() const { return hls_port_; }
  int api_port() const { return api_port_; }
  /* mediamtxsink's api-location for this server (keyframe-on-join reads the path's readers there) */
  std::string api_location() const {
    return "http://" + (options_.api_everywhere ? host_ : std::string("127.0.0.1")) + ":" + std::to_string(api_port_);
  }
  int ice_udp_port() const { return ice_udp_port_; }
  int ice_tcp_port() const { return ice_tcp_port_; }

  std::string rtsp_url(const std::string &path) const;
  std::string whep_url(const std::string &path) const;
  std::string whip_url(const std::string &path) const;
  std::string hls_url(const std::string &path) const;
  std::string webrtc_base_url() const;

  /* GET http://127.0.0.1:api/v3/<what>; returns the body, status in *status. */
  std::string api_get(const std::string &what, guint *status = nullptr) const;
  /* paths/get/<path> reports ready=true */
  bool path_ready(const std::string &path) const;
  /* number of items in webrtcsessions/list (all states) */
  int webrtc_session_count() const;
  int rtsp_session_count() const;
  /* Waits up to timeout_ms for cond(); returns its last value. */
  bool wait_path_ready(const std::string &path, int timeout_ms) const;

  std::string log_path() const { return dir_ + "/mediamtx.log"; }
  std::string read_log() const;

private:
  bool wait_ready(int timeout_ms);
  void write_config();

  MediamtxOptions options_;
  std::string dir_;
  std::string host_;
  std::string scheme_ = "http";
  int rtsp_port_ = 0, rtp_port_ = 0, webrtc_port_ = 0, hls_port_ = 0, api_port_ = 0;
  int ice_udp_port_ = 0, ice_tcp_port_ = 0;
  pid_t pid_ = -1;
};

/* A free TCP (or UDP) port on all addresses right now. */
int free_port(bool udp = false);
/* An even UDP port whose successor is free too (RTP/RTCP pairs). */
int free_udp_pair();

/* Applies an iptables rule ("-A INPUT -p udp -j DROP") with iptables and ip6tables: libnice and
 * MediaMTX also pair the veth's IPv6 link-local addresses. False (and the command printed) when
 * either fails. */
bool firewall(const std::string &rule);

/* blocked: drops UDP and every TCP port but `server`'s RTSP, WHEP, HLS and API ports, so WebRTC
 * cannot connect (no ICE) while HTTP still answers (the HLS fallback's case); false: lifts that. */
bool block_webrtc_media(const MediamtxServer &server, bool blocked);

/* $TESTBED_SERVER_ADDR or 127.0.0.1 */
std::string server_address();
/* Fails loudly when not inside the test namespace made by netns-run.sh. */
bool in_test_namespace();

}  // namespace testbed
