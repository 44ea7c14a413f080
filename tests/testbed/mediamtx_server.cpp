#include "mediamtx_server.h"
#include "pipeline_helpers.h"

#include <arpa/inet.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fcntl.h>
#include <random>

namespace testbed {

namespace {

bool can_bind(int port, int type) {
  int fd = socket(AF_INET, type, 0);
  if (fd < 0)
    return false;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

std::mt19937 &rng() {
  static std::mt19937 gen(std::random_device{}() ^ static_cast<unsigned>(getpid()));
  return gen;
}

}  // namespace

int free_port(bool udp) {
  /* Random probing in a high range rather than port 0: several ports are chosen before the
   * server binds them, and the kernel hands out ephemeral ports sequentially. */
  std::uniform_int_distribution<int> dist(20000, 59999);
  for (int i = 0; i < 1000; ++i) {
    int port = dist(rng());
    if (can_bind(port, SOCK_STREAM) && (!udp || can_bind(port, SOCK_DGRAM)))
      return port;
  }
  g_error("no free port found");
  return 0;
}

int free_udp_pair() {
  std::uniform_int_distribution<int> dist(10000, 29999);
  for (int i = 0; i < 1000; ++i) {
    int port = dist(rng()) * 2;
    if (can_bind(port, SOCK_DGRAM) && can_bind(port + 1, SOCK_DGRAM))
      return port;
  }
  g_error("no free UDP port pair found");
  return 0;
}

bool firewall(const std::string &rule) {
  for (const char *tool : {"iptables", "ip6tables"}) {
    const std::string cmd = std::string(tool) + " " + rule;
    if (system(cmd.c_str()) != 0) {
      g_printerr("firewall: '%s' failed\n", cmd.c_str());
      return false;
    }
  }
  return true;
}

std::string server_address() {
  const char *addr = g_getenv("TESTBED_SERVER_ADDR");
  return addr && *addr ? addr : "127.0.0.1";
}

bool in_test_namespace() {
  if (g_strcmp0(g_getenv("TESTBED_NETNS"), "1") != 0) {
    g_printerr("this test must run inside the namespace made by tests/testbed/netns-run.sh "
               "(use 'meson test' or tests/run.sh)\n");
    return false;
  }
  return true;
}

MediamtxServer::MediamtxServer(MediamtxOptions options) : options_(std::move(options)), host_(server_address()) {
  g_autofree char *dir = g_dir_make_tmp("mediamtx-XXXXXX", nullptr);
  dir_ = dir ? dir : "/tmp";
  if (!options_.tls_cert.empty())
    scheme_ = "https";
}

MediamtxServer::~MediamtxServer() {
  kill_hard();
  g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir_.c_str());
  if (g_str_has_prefix(dir_.c_str(), g_get_tmp_dir()) && dir_.find("mediamtx-") != std::string::npos)
    (void)!system(cmd);
}

void MediamtxServer::write_config() {
  if (!rtsp_port_) {
    rtsp_port_ = free_port();
    rtp_port_ = free_udp_pair();
    webrtc_port_ = free_port();
    hls_port_ = free_port();
    api_port_ = free_port();
    ice_udp_port_ = free_port(true);
    if (options_.ice_tcp)
      ice_tcp_port_ = free_port();
  }
  const bool tls = !options_.tls_cert.empty();
  GString *yml = g_string_new(nullptr);
  g_string_append_printf(yml,
      "logLevel: debug\n"
      "logDestinations: [stdout]\n"
      "api: true\n"
      "apiAddress: %s:%d\n"
      "metrics: false\npprof: false\nplayback: false\nrtmp: false\nsrt: false\nmoq: false\n"
      "rtsp: true\n"
      "rtspTransports: [udp, tcp]\n"
      "rtspAddress: :%d\n"
      "rtpAddress: :%d\n"
      "rtcpAddress: :%d\n"
      "hls: true\n"
      "hlsAddress: :%d\n"
      "webrtc: true\n"
      "webrtcAddress: :%d\n"
      "webrtcLocalUDPAddress: :%d\n"
      "webrtcLocalTCPAddress: \"%s\"\n",
      options_.api_everywhere ? "" : "127.0.0.1", api_port_, rtsp_port_, rtp_port_, rtp_port_ + 1, hls_port_, webrtc_port_, ice_udp_port_,
      ice_tcp_port_ ? (":" + std::to_string(ice_tcp_port_)).c_str() : "");
  if (tls) {
    g_string_append_printf(yml,
        "webrtcEncryption: true\nwebrtcServerKey: %s\nwebrtcServerCert: %s\n"
        "hlsEncryption: true\nhlsServerKey: %s\nhlsServerCert: %s\n",
        options_.tls_key.c_str(), options_.tls_cert.c_str(), options_.tls_key.c_str(), options_.tls_cert.c_str());
  }
  if (!options_.auth_users.empty())
    g_string_append_printf(yml, "authInternalUsers:\n%s\n", options_.auth_users.c_str());
  g_string_append(yml, options_.extra_config.c_str());
  g_string_append(yml, "\npaths:\n");
  g_string_append(yml, options_.paths.empty() ? "  all_others:\n" : options_.paths.c_str());
  std::string path = dir_ + "/mediamtx.yml";
  g_file_set_contents(path.c_str(), yml->str, -1, nullptr);
  g_string_free(yml, TRUE);
}

bool MediamtxServer::start() {
  if (pid_ > 0)
    return true;
  const char *bin = g_getenv("MEDIAMTX_BIN");
  if (!bin || !g_file_test(bin, G_FILE_TEST_IS_EXECUTABLE)) {
    g_printerr("MEDIAMTX_BIN is not set to an executable MediaMTX (tests/run.sh sets it)\n");
    return false;
  }
  write_config();
  std::string config = dir_ + "/mediamtx.yml";
  int log_fd = g_open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  const char *argv[] = {bin, config.c_str(), nullptr};
  GError *err = nullptr;
  GPid pid = 0;
  /* MediaMTX dies with the thread that started it: a failed check ends the forked test process
   * with _exit(), no destructor runs, and an orphan server would keep the namespace alive */
  GSpawnChildSetupFunc die_with_parent = [](gpointer) { prctl(PR_SET_PDEATHSIG, SIGKILL); };
  gboolean ok = g_spawn_async_with_fds(dir_.c_str(), const_cast<char **>(argv), nullptr, G_SPAWN_DO_NOT_REAP_CHILD,
                                       die_with_parent, nullptr, &pid, -1, log_fd, log_fd, &err);
  close(log_fd);
  if (!ok) {
    g_printerr("cannot start MediaMTX: %s\n", err->message);
    g_clear_error(&err);
    return false;
  }
  pid_ = pid;
  if (!wait_ready(15000)) {
    g_printerr("MediaMTX did not become ready; log:\n%s\n", read_log().c_str());
    kill_hard();
    return false;
  }
  return true;
}

static void terminate(pid_t &pid, int sig) {
  if (pid <= 0)
    return;
  ::kill(pid, sig);
  for (int i = 0; i < 500; ++i) {
    int status;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || r < 0)
      break;
    if (i == 300)
      ::kill(pid, SIGKILL);
    g_usleep(10000);
  }
  pid = -1;
}

void MediamtxServer::stop() { terminate(pid_, SIGTERM); }
void MediamtxServer::kill_hard() { terminate(pid_, SIGKILL); }

bool MediamtxServer::wait_ready(int timeout_ms) {
  gint64 deadline = g_get_monotonic_time() + timeout_ms * 1000LL;
  while (g_get_monotonic_time() < deadline) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    guint code = 0;
    api_get("paths/list", &code);
    if (code == 200)
      return true;
    g_usleep(50000);
  }
  return false;
}

std::string MediamtxServer::rtsp_url(const std::string &path) const {
  return "rtsp://" + host_ + ":" + std::to_string(rtsp_port_) + "/" + path;
}
std::string MediamtxServer::webrtc_base_url() const {
  return scheme_ + "://" + host_ + ":" + std::to_string(webrtc_port_);
}
std::string MediamtxServer::whep_url(const std::string &path) const { return webrtc_base_url() + "/" + path + "/whep"; }
std::string MediamtxServer::whip_url(const std::string &path) const { return webrtc_base_url() + "/" + path + "/whip"; }
std::string MediamtxServer::hls_url(const std::string &path) const {
  return scheme_ + "://" + host_ + ":" + std::to_string(hls_port_) + "/" + path + "/index.m3u8";
}

std::string MediamtxServer::api_get(const std::string &what, guint *status) const {
  g_autoptr(SoupSession) session = soup_session_new_with_options("timeout", 2, nullptr);
  std::string url = "http://127.0.0.1:" + std::to_string(api_port_) + "/v3/" + what;
  g_autoptr(SoupMessage) msg = soup_message_new("GET", url.c_str());
  if (!msg) {
    if (status)
      *status = 0;
    return {};
  }
  GError *err = nullptr;
  g_autoptr(GBytes) body = soup_session_send_and_read(session, msg, nullptr, &err);
  if (status)
    *status = err ? 0 : soup_message_get_status(msg);
  g_clear_error(&err);
  if (!body)
    return {};
  gsize size;
  const char *data = static_cast<const char *>(g_bytes_get_data(body, &size));
  return std::string(data ? data : "", size);
}

static JsonNode *parse_json(const std::string &text) {
  g_autoptr(JsonParser) parser = json_parser_new();
  if (!json_parser_load_from_data(parser, text.c_str(), static_cast<gssize>(text.size()), nullptr))
    return nullptr;
  JsonNode *root = json_parser_get_root(parser);
  return root ? json_node_copy(root) : nullptr;
}

bool MediamtxServer::path_ready(const std::string &path) const {
  guint status = 0;
  std::string body = api_get("paths/get/" + path, &status);
  if (status != 200)
    return false;
  g_autoptr(JsonNode) root = parse_json(body);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root))
    return false;
  JsonObject *obj = json_node_get_object(root);
  return json_object_has_member(obj, "ready") && json_object_get_boolean_member(obj, "ready");
}

bool MediamtxServer::wait_path_ready(const std::string &path, int timeout_ms) const {
  gint64 deadline = g_get_monotonic_time() + scaled_ms(timeout_ms) * 1000LL;
  while (g_get_monotonic_time() < deadline) {
    if (path_ready(path))
      return true;
    g_usleep(50000);
  }
  return false;
}

static int count_items(const std::string &body) {
  g_autoptr(JsonNode) root = parse_json(body);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root))
    return -1;
  JsonObject *obj = json_node_get_object(root);
  if (!json_object_has_member(obj, "items"))
    return -1;
  return static_cast<int>(json_array_get_length(json_object_get_array_member(obj, "items")));
}

int MediamtxServer::webrtc_session_count() const { return count_items(api_get("webrtcsessions/list")); }
int MediamtxServer::rtsp_session_count() const { return count_items(api_get("rtspsessions/list")); }

std::string MediamtxServer::read_log() const {
  g_autofree char *contents = nullptr;
  if (!g_file_get_contents(log_path().c_str(), &contents, nullptr, nullptr))
    return "(no log)";
  return contents;
}

}  // namespace testbed
