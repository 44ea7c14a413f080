/* gst-mediamtx benchmarks: glass-to-glass latency, time to first frame, recovery after a server
 * restart, and per-stream cost, against a real MediaMTX started on free ports (tests/testbed).
 *
 * Run inside the test network namespace (tests/testbed/netns-run.sh); see tests/bench/run.sh and
 * docs/benchmarks.md. Every measurement prints one "RESULT name key=value ..." line on stdout and,
 * with --out=DIR, writes its raw samples to DIR/<name>.csv.
 *
 * Latency: the publisher's raw frames get the capture time (g_get_monotonic_time, microseconds)
 * drawn as a row of black/white blocks (tests/testbed/frame_stamp.h) before the encoder; the viewer,
 * in the same process, reads the blocks back after the decoder and when the display sink
 * (fakesink sync=true) renders.
 */
#include "dtls_certificate.h"
#include "event_loop.h"
#include "http_client.h"
#include "reader_watch.h"
#include "frame_stamp.h"
#include "mediamtx_server.h"
#include "network_hosts.h"
#include "pipeline_helpers.h"

#include <gst/gst.h>
#include <gst/video/video.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

/* ---- options ---------------------------------------------------------------------------- */

using Options = std::map<std::string, std::string>;

Options parse_options(int argc, char **argv, int first) {
  Options o;
  for (int i = first; i < argc; i++) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0)
      continue;
    auto eq = a.find('=');
    if (eq == std::string::npos)
      o[a.substr(2)] = "1";
    else
      o[a.substr(2, eq - 2)] = a.substr(eq + 1);
  }
  return o;
}

std::string opt(const Options &o, const std::string &k, const std::string &def) {
  auto it = o.find(k);
  return it == o.end() ? def : it->second;
}
int opt_int(const Options &o, const std::string &k, int def) { return std::stoi(opt(o, k, std::to_string(def))); }

double now_ms() { return g_get_monotonic_time() / 1000.0; }
void sleep_ms(int ms) { g_usleep(static_cast<gulong>(ms) * 1000); }

/* ---- statistics --------------------------------------------------------------------------- */

double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return NAN;
  std::sort(v.begin(), v.end());
  double idx = p / 100.0 * (v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(idx)), hi = static_cast<size_t>(std::ceil(idx));
  return v[lo] + (v[hi] - v[lo]) * (idx - lo);
}

std::string summary(const std::string &prefix, const std::vector<double> &v) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s_n=%zu %s_p50=%.1f %s_p95=%.1f %s_p99=%.1f %s_max=%.1f", prefix.c_str(), v.size(),
           prefix.c_str(), percentile(v, 50), prefix.c_str(), percentile(v, 95), prefix.c_str(), percentile(v, 99),
           prefix.c_str(), v.empty() ? NAN : *std::max_element(v.begin(), v.end()));
  return buf;
}

/* Appends rows to DIR/<name>.csv (header written when the file is new). */
class CsvOut {
public:
  CsvOut(const Options &o, const std::string &name, const std::string &header) {
    std::string dir = opt(o, "out", "");
    if (dir.empty())
      return;
    g_mkdir_with_parents(dir.c_str(), 0755);
    std::string path = dir + "/" + name + ".csv";
    bool fresh = !g_file_test(path.c_str(), G_FILE_TEST_EXISTS);
    f_.open(path, std::ios::app);
    if (fresh)
      f_ << header << "\n";
  }
  template <typename... T> void row(const T &...v) {
    if (!f_.is_open())
      return;
    std::ostringstream s;
    ((s << v << ","), ...);
    std::string line = s.str();
    line.pop_back();
    f_ << line << "\n";
  }

private:
  std::ofstream f_;
};

/* ---- pipelines ----------------------------------------------------------------------------- */

/* A parsed pipeline whose errors are printed and remembered (bus sync handler, no main loop). */
class Pipeline {
public:
  explicit Pipeline(const std::string &desc) {
    GError *err = nullptr;
    pipeline_ = gst_parse_launch(desc.c_str(), &err);
    if (!pipeline_) {
      g_printerr("cannot build pipeline '%s': %s\n", desc.c_str(), err ? err->message : "?");
      exit(2);
    }
    if (err)
      g_printerr("warning building pipeline '%s': %s\n", desc.c_str(), err->message);
    g_clear_error(&err);
    g_autoptr(GstBus) bus = gst_element_get_bus(pipeline_);
    gst_bus_set_sync_handler(bus, on_message, this, nullptr);
  }
  ~Pipeline() {
    gst_element_set_state(pipeline_, GST_STATE_NULL);
    g_autoptr(GstBus) bus = gst_element_get_bus(pipeline_);
    gst_bus_set_sync_handler(bus, nullptr, nullptr, nullptr);
    gst_object_unref(pipeline_);
  }
  void play() { gst_element_set_state(pipeline_, GST_STATE_PLAYING); }
  GstElement *element() { return pipeline_; }
  GstElement *get(const char *name) { return gst_bin_get_by_name(GST_BIN(pipeline_), name); /* ref */ }
  int errors() const { return errors_.load(); }
  std::vector<std::string> states() {
    std::lock_guard<std::mutex> g(lock_);
    return states_;
  }
  /* monotonic ms of each status message, by state name */
  std::vector<std::pair<std::string, double>> status_log() {
    std::lock_guard<std::mutex> g(lock_);
    return status_log_;
  }

private:
  static GstBusSyncReply on_message(GstBus *, GstMessage *msg, gpointer data) {
    auto *self = static_cast<Pipeline *>(data);
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
      g_autoptr(GError) err = nullptr;
      g_autofree char *dbg = nullptr;
      gst_message_parse_error(msg, &err, &dbg);
      if (!self->quiet_errors)
        g_printerr("pipeline error from %s: %s\n", GST_OBJECT_NAME(msg->src), err->message);
      self->errors_++;
    } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ELEMENT) {
      const GstStructure *s = gst_message_get_structure(msg);
      if (s && gst_structure_has_name(s, "gst-mediamtx-status")) {
        const char *state = gst_structure_get_string(s, "state");
        std::lock_guard<std::mutex> g(self->lock_);
        self->status_log_.emplace_back(std::string(GST_OBJECT_NAME(msg->src)) + ":" + (state ? state : "?"), now_ms());
      }
    }
    gst_message_unref(msg);
    return GST_BUS_DROP;
  }

public:
  bool quiet_errors = false;

private:
  GstElement *pipeline_;
  std::atomic<int> errors_{0};
  std::mutex lock_;
  std::vector<std::string> states_;
  std::vector<std::pair<std::string, double>> status_log_;
};

struct Video {
  int width = 1280, height = 720, fps = 30, kbps = 2000;
};

Video video_from(const Options &o) {
  Video v;
  v.height = opt_int(o, "height", 720);
  v.width = v.height * 16 / 9;
  v.kbps = opt_int(o, "bitrate", 2000);
  return v;
}

std::string raw_source(const Video &v) {
  /* moving colour bars: a picture x264 has to spend bits on every frame */
  return "videotestsrc is-live=true pattern=smpte horizontal-speed=3 ! video/x-raw,format=I420,width=" +
         std::to_string(v.width) + ",height=" + std::to_string(v.height) + ",framerate=" + std::to_string(v.fps) +
         "/1";
}

/* publisher: "rtsp" or "whip" through mediamtxsink */
std::string publisher_desc(const testbed::MediamtxServer &server, const std::string &transport, const Video &v,
                           int keyint_frames, const std::string &extra = "") {
  std::string sink = transport == "whip" ? "mediamtxsink name=pub transport=whip location=" + server.whip_url("cam")
                                         : "mediamtxsink name=pub location=" + server.rtsp_url("cam");
  return raw_source(v) + " ! identity name=stamp ! " + sink + " bitrate=" + std::to_string(v.kbps) +
         " keyframe-interval=" + std::to_string(keyint_frames) + " " + extra;
}

/* viewer ending in identity name=decoded ! fakesink name=display */
std::string viewer_desc(const testbed::MediamtxServer &server, const std::string &viewer, int latency,
                        bool display_sync = true, const std::string &extra = "") {
  std::string head;
  if (viewer == "rtspsrc")
    head = "rtspsrc name=src location=" + server.rtsp_url("cam") + " latency=" + std::to_string(latency) +
           " user-agent=mtx-bench " + extra +
           /* like whepsrc's decoder: no corrupt pictures before the first keyframe (a grey frame
            * 30 ms after PLAYING is not a first frame) */
           " ! rtph264depay ! h264parse ! avdec_h264 output-corrupt=false";
  else
    head = "whepsrc name=src location=" + server.whep_url("cam") + " latency=" + std::to_string(latency) +
           " audio=false decode=true " + extra;
  return head + " ! identity name=decoded ! fakesink name=display sync=" + (display_sync ? "true" : "false") +
         " signal-handoffs=true";
}

void attach_stamper(Pipeline &pub) {
  g_autoptr(GstElement) stamp = pub.get("stamp");
  g_autoptr(GstPad) pad = gst_element_get_static_pad(stamp, "src");
  testbed::attach_stamper(pad);
}

/* Latencies read at the decoder output and at the display sink's render time. */
struct LatencyCollector {
  std::mutex lock;
  std::vector<double> decoded, display;
  std::atomic<int> frames{0}, unreadable{0};
  std::atomic<double> first_frame_ms{0};
  int skip = 30;  /* first second after the first frame: start-up */
  size_t want = 0;

  static GstPadProbeReturn on_decoded(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
    auto *self = static_cast<LatencyCollector *>(data);
    double t = now_ms();
    if (self->first_frame_ms.load() == 0)
      self->first_frame_ms = t;
    guint64 us;
    if (!testbed::read_buffer_stamp(pad, GST_PAD_PROBE_INFO_BUFFER(info), &us)) {
      self->unreadable++;
      return GST_PAD_PROBE_OK;
    }
    if (++self->frames <= self->skip)
      return GST_PAD_PROBE_OK;
    std::lock_guard<std::mutex> g(self->lock);
    if (self->decoded.size() < self->want)
      self->decoded.push_back(t - us / 1000.0);
    return GST_PAD_PROBE_OK;
  }
  static void on_render(GstElement *sink, GstBuffer *buf, GstPad *pad, gpointer data) {
    auto *self = static_cast<LatencyCollector *>(data);
    (void)sink;
    double t = now_ms();
    guint64 us;
    if (!testbed::read_buffer_stamp(pad, buf, &us))
      return;
    std::lock_guard<std::mutex> g(self->lock);
    if (self->decoded.empty())
      return;  /* still in the start-up skip */
    if (self->display.size() < self->want)
      self->display.push_back(t - us / 1000.0);
  }
  void attach(Pipeline &p) {
    g_autoptr(GstElement) dec = p.get("decoded");
    g_autoptr(GstPad) pad = gst_element_get_static_pad(dec, "src");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, on_decoded, this, nullptr);
    g_autoptr(GstElement) display = p.get("display");
    g_signal_connect(display, "handoff", G_CALLBACK(on_render), this);
  }
  bool done() {
    std::lock_guard<std::mutex> g(lock);
    return decoded.size() >= want && display.size() >= want;
  }
};

bool start_server(testbed::MediamtxServer &server) {
  if (!testbed::in_test_namespace())
    return false;
  return server.start();
}

/* Starts the publisher and waits for the path; nullptr on failure. */
std::unique_ptr<Pipeline> start_publisher(testbed::MediamtxServer &server, const std::string &transport,
                                          const Video &v, int keyint_frames, const std::string &extra = "") {
  auto pub = std::make_unique<Pipeline>(publisher_desc(server, transport, v, keyint_frames, extra));
  attach_stamper(*pub);
  pub->play();
  if (!server.wait_path_ready("cam", 15000)) {
    g_printerr("publisher (%s) did not make path 'cam' ready\n", transport.c_str());
    return nullptr;
  }
  return pub;
}

/* ---- 1. glass-to-glass latency ----------------------------------------------------------- */

struct LatencyResult {
  bool ok = false;
  std::vector<double> decoded, display;
  int unreadable = 0;
};

LatencyResult run_latency(const Options &o) {
  LatencyResult r;
  std::string publisher = opt(o, "publisher", "rtsp"), viewer = opt(o, "viewer", "whepsrc");
  int latency = opt_int(o, "latency", 50), frames = opt_int(o, "frames", 1000);
  Video v = video_from(o);
  testbed::MediamtxServer server;
  if (!start_server(server))
    return r;
  auto pub = start_publisher(server, publisher, v, opt_int(o, "keyint", 30));
  if (!pub)
    return r;
  LatencyCollector col;
  col.want = static_cast<size_t>(frames);
  Pipeline view(viewer_desc(server, viewer, latency));
  col.attach(view);
  view.play();
  double deadline = now_ms() + 20000 + frames * 1000.0 / v.fps * 1.5;
  while (!col.done() && now_ms() < deadline && view.errors() == 0 && pub->errors() == 0)
    sleep_ms(50);
  {
    std::lock_guard<std::mutex> g(col.lock);
    r.decoded = col.decoded;
    r.display = col.display;
  }
  r.unreadable = col.unreadable;
  r.ok = col.done();
  /* what the viewer pipeline says it adds (jitter buffer + decoder + sink): explains display - decoded */
  double pipeline_latency_ms = -1;
  {
    g_autoptr(GstQuery) q = gst_query_new_latency();
    g_autoptr(GstElement) display = view.get("display");
    g_autoptr(GstPad) sinkpad = gst_element_get_static_pad(display, "sink");
    if (gst_pad_peer_query(sinkpad, q)) {
      GstClockTime min_latency;
      gst_query_parse_latency(q, nullptr, &min_latency, nullptr);
      pipeline_latency_ms = min_latency / 1e6;
    }
  }
  CsvOut csv(o, "latency", "publisher,viewer,latency_ms,height,frame,decoded_ms,display_ms");
  for (size_t i = 0; i < std::min(r.decoded.size(), r.display.size()); i++)
    csv.row(publisher, viewer, latency, v.height, i, r.decoded[i], r.display[i]);
  printf("RESULT latency publisher=%s viewer=%s latency=%d height=%d %s %s unreadable=%d "
         "upstream_reported_latency_ms=%.1f ok=%d\n",
         publisher.c_str(), viewer.c_str(), latency, v.height, summary("decoded", r.decoded).c_str(),
         summary("display", r.display).c_str(), r.unreadable, pipeline_latency_ms, r.ok);
  fflush(stdout);
  return r;
}

/* ---- 2. time to first frame ---------------------------------------------------------------- */

struct FirstFrame {
  std::atomic<double> at{0};
  static GstPadProbeReturn probe(GstPad *, GstPadProbeInfo *, gpointer data) {
    auto *self = static_cast<FirstFrame *>(data);
    if (self->at.load() == 0)
      self->at = now_ms();
    return GST_PAD_PROBE_OK;
  }
  void attach(Pipeline &p, const char *element) {
    g_autoptr(GstElement) e = p.get(element);
    g_autoptr(GstPad) pad = gst_element_get_static_pad(e, "src");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, probe, this, nullptr);
  }
};

gint64 stats_int64(GstElement *src, const char *field) {
  GstStructure *s = nullptr;
  g_object_get(src, "stats", &s, nullptr);
  gint64 v = 0;
  if (s) {
    gst_structure_get_int64(s, field, &v);
    gst_structure_free(s);
  }
  return v;
}

struct TtffSample {
  double total = -1, offer = -1, answer = -1, connected = -1, keyframe_wait = -1;
};

std::vector<TtffSample> run_ttff(const Options &o) {
  std::vector<TtffSample> out;
  std::string viewer = opt(o, "viewer", "whepsrc");
  int starts = opt_int(o, "starts", 30);
  double keyint_s = std::stod(opt(o, "keyint-s", "1"));
  Video v = video_from(o);
  int keyint_frames = std::max(1, static_cast<int>(std::lround(keyint_s * v.fps)));
  testbed::MediamtxServer server;
  if (!start_server(server))
    return out;
  auto pub = start_publisher(server, "rtsp", v, keyint_frames);
  if (!pub)
    return out;
  sleep_ms(1000);
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pause(200, 200 + static_cast<int>(keyint_s * 1000));
  CsvOut csv(o, "ttff", "viewer,keyint_s,start,total_ms,offer_ms,answer_ms,connected_ms,keyframe_wait_ms");
  for (int i = 0; i < starts; i++) {
    Pipeline view(viewer_desc(server, viewer, 50, false));
    FirstFrame ff;
    ff.attach(view, "decoded");
    double t0 = now_ms();
    view.play();
    while (ff.at.load() == 0 && now_ms() - t0 < 10000 && view.errors() == 0)
      sleep_ms(2);
    TtffSample s;
    if (ff.at.load() > 0) {
      s.total = ff.at - t0;
      if (viewer == "whepsrc") {
        g_autoptr(GstElement) src = view.get("src");
        auto rel = [&](const char *f) {
          gint64 us = stats_int64(src, f);
          return us > 0 ? us / 1000.0 - t0 : -1.0;
        };
        s.offer = rel("offer-created-us");
        s.answer = rel("answer-received-us");
        s.connected = rel("connected-us");
        if (s.connected >= 0)
          s.keyframe_wait = s.total - s.connected;
      }
      out.push_back(s);
    } else {
      g_printerr("ttff: no frame within 10 s (start %d)\n", i);
    }
    csv.row(viewer, keyint_s, i, s.total, s.offer, s.answer, s.connected, s.keyframe_wait);
    sleep_ms(pause(rng));  /* start at a random phase of the keyframe interval */
  }
  std::vector<double> total, answer, connected, kw;
  for (auto &s : out) {
    total.push_back(s.total);
    if (s.answer >= 0) answer.push_back(s.answer);
    if (s.connected >= 0) connected.push_back(s.connected);
    if (s.keyframe_wait >= 0) kw.push_back(s.keyframe_wait);
  }
  printf("RESULT ttff viewer=%s keyint_s=%.2f starts=%d %s %s %s %s\n", viewer.c_str(), keyint_s, starts,
         summary("total", total).c_str(), summary("answer", answer).c_str(), summary("connected", connected).c_str(),
         summary("keyframe_wait", kw).c_str());
  fflush(stdout);
  return out;
}

/* ---- 2c. where the first frame's time goes (keyframe-on-join) -------------------------------
 * Publisher and a new viewer per start in this process (one clock), probes along the way of the
 * first keyframe: the forced keyframe request reaching the encoder, the next raw frame into it,
 * the keyframe out of it and out of rtspclientsink's payloader; at the viewer the keyframe's first
 * and last packet off the network (nicesrc, matched by RTP sequence number with what the jitter
 * buffer sees decrypted), into and out of the jitter buffer, out of the depayloader, and the
 * first decoded picture. All in ms after the viewer's PLAYING. */

/* The RTP payload of a packet, or nothing for RTCP / not RTP. */
bool rtp_fields(const guint8 *d, gsize n, guint16 *seq, guint32 *ts, bool *marker, const guint8 **payload,
                gsize *payload_len) {
  if (n < 12 || (d[0] & 0xc0) != 0x80 || (d[1] >= 192 && d[1] <= 223))
    return false;
  gsize off = 12 + 4 * (d[0] & 0x0f);
  if (d[0] & 0x10) {
    if (n < off + 4)
      return false;
    off += 4 + 4 * ((d[off + 2] << 8) | d[off + 3]);
  }
  if (n < off)
    return false;
  *seq = static_cast<guint16>((d[2] << 8) | d[3]);
  *ts = (guint32(d[4]) << 24) | (guint32(d[5]) << 16) | (guint32(d[6]) << 8) | d[7];
  *marker = d[1] & 0x80;
  if (payload) {
    *payload = d + off;
    *payload_len = n - off;
  }
  return true;
}

/* An H.264 RTP payload (packetization-mode 1) carrying an IDR slice or an SPS. */
bool h264_payload_is_key(const guint8 *p, gsize n) {
  if (n < 2)
    return false;
  const int type = p[0] & 0x1f;
  if (type == 28)
    return (p[1] & 0x1f) == 5 || (p[1] & 0x1f) == 7;
  if (type == 24) {
    for (gsize off = 1; off + 3 <= n;) {
      const gsize len = (p[off] << 8) | p[off + 1];
      const int inner = p[off + 2] & 0x1f;
      if (inner == 5 || inner == 7)
        return true;
      off += 2 + len;
    }
    return false;
  }
  return type == 5 || type == 7;
}

struct KeyframeTrace {
  std::mutex lock;
  double t0 = 0;                  /* the viewer's PLAYING */
  double force = -1, enc_in = -1, enc_key = -1, pay_key = -1;
  double net_first = -1, net_key_first = -1, net_key_last = -1;
  double jb_key_in = -1, jb_key_out = -1, depay_key = -1;
  std::map<guint16, double> arrivals; /* nicesrc: sequence number -> ms */
  bool have_key = false;
  guint32 key_ts = 0;
  int key_first_seq = -1, key_last_seq = -1;

  /* a new start at `at`: every milestone forgotten */
  void arm(double at) {
    std::lock_guard<std::mutex> g(lock);
    force = enc_in = enc_key = pay_key = net_first = net_key_first = net_key_last = -1;
    jb_key_in = jb_key_out = depay_key = -1;
    arrivals.clear();
    have_key = false;
    key_first_seq = key_last_seq = -1;
    t0 = at;
  }
  double rel(double at) const { return at < 0 ? -1 : at - t0; }

  /* publisher side ----------------------------------------------------------------------- */
  static GstPadProbeReturn encoder_src(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *t = static_cast<KeyframeTrace *>(data);
    const double now = now_ms();
    std::lock_guard<std::mutex> g(t->lock);
    if (t->t0 == 0)
      return GST_PAD_PROBE_OK;
    if (info->type & GST_PAD_PROBE_TYPE_EVENT_UPSTREAM) {
      if (gst_video_event_is_force_key_unit(GST_PAD_PROBE_INFO_EVENT(info)) && t->force < 0)
        t->force = now;
    } else if (t->enc_key < 0 && !GST_BUFFER_FLAG_IS_SET(GST_PAD_PROBE_INFO_BUFFER(info), GST_BUFFER_FLAG_DELTA_UNIT)) {
      t->enc_key = now;
    }
    return GST_PAD_PROBE_OK;
  }
  static GstPadProbeReturn encoder_sink(GstPad *, GstPadProbeInfo *, gpointer data) {
    auto *t = static_cast<KeyframeTrace *>(data);
    const double now = now_ms();
    std::lock_guard<std::mutex> g(t->lock);
    if (t->t0 != 0 && t->force >= 0 && t->enc_in < 0)
      t->enc_in = now;
    return GST_PAD_PROBE_OK;
  }
  static bool buffer_is_key_packet(GstBuffer *buf) {
    GstMapInfo m;
    if (!gst_buffer_map(buf, &m, GST_MAP_READ))
      return false;
    guint16 seq;
    guint32 ts;
    bool marker;
    const guint8 *p;
    gsize n;
    bool key = rtp_fields(m.data, m.size, &seq, &ts, &marker, &p, &n) && h264_payload_is_key(p, n);
    gst_buffer_unmap(buf, &m);
    return key;
  }
  static GstPadProbeReturn payloader_src(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *t = static_cast<KeyframeTrace *>(data);
    const double now = now_ms();
    bool key = false;
    if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
      key = buffer_is_key_packet(GST_PAD_PROBE_INFO_BUFFER(info));
    } else {
      GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
      for (guint i = 0; !key && i < gst_buffer_list_length(list); i++)
        key = buffer_is_key_packet(gst_buffer_list_get(list, i));
    }
    std::lock_guard<std::mutex> g(t->lock);
    if (key && t->t0 != 0 && t->enc_key >= 0 && t->pay_key < 0)
      t->pay_key = now;
    return GST_PAD_PROBE_OK;
  }

  /* viewer side -------------------------------------------------------------------------- */
  static void on_datagram(KeyframeTrace *t, GstBuffer *buf, double now) {
    GstMapInfo m;
    if (!gst_buffer_map(buf, &m, GST_MAP_READ))
      return;
    guint16 seq;
    guint32 ts;
    bool marker;
    if (rtp_fields(m.data, m.size, &seq, &ts, &marker, nullptr, nullptr)) {
      std::lock_guard<std::mutex> g(t->lock);
      if (t->net_first < 0)
        t->net_first = now;
      t->arrivals.emplace(seq, now);
    }
    gst_buffer_unmap(buf, &m);
  }
  static GstPadProbeReturn nicesrc_src(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *t = static_cast<KeyframeTrace *>(data);
    const double now = now_ms();
    if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
      on_datagram(t, GST_PAD_PROBE_INFO_BUFFER(info), now);
    } else {
      GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
      for (guint i = 0; i < gst_buffer_list_length(list); i++)
        on_datagram(t, gst_buffer_list_get(list, i), now);
    }
    return GST_PAD_PROBE_OK;
  }
  static GstPadProbeReturn jitterbuffer_sink(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *t = static_cast<KeyframeTrace *>(data);
    const double now = now_ms();
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    GstMapInfo m;
    if (!gst_buffer_map(buf, &m, GST_MAP_READ))
      return GST_PAD_PROBE_OK;
    guint16 seq;
    guint32 ts;
    bool marker;
    const guint8 *p;
    gsize n;
    if (rtp_fields(m.data, m.size, &seq, &ts, &marker, &p, &n)) {
      std::lock_guard<std::mutex> g(t->lock);
      if (!t->have_key && h264_payload_is_key(p, n)) {
        t->have_key = true;
        t->key_ts = ts;
        t->key_first_seq = seq;
        t->jb_key_in = now;
        auto at = t->arrivals.find(seq);
        t->net_key_first = at == t->arrivals.end() ? -1 : at->second;
      }
      if (t->have_key && t->key_last_seq < 0 && ts == t->key_ts && marker) {
        t->key_last_seq = seq;
        auto at = t->arrivals.find(seq);
        t->net_key_last = at == t->arrivals.end() ? -1 : at->second;
      }
    }
    gst_buffer_unmap(buf, &m);
    return GST_PAD_PROBE_OK;
  }
  static GstPadProbeReturn jitterbuffer_src(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *t = static_cast<KeyframeTrace *>(data);
    const double now = now_ms();
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
    GstMapInfo m;
    if (!gst_buffer_map(buf, &m, GST_MAP_READ))
      return GST_PAD_PROBE_OK;
    guint16 seq;
    guint32 ts;
    bool marker;
    if (rtp_fields(m.data, m.size, &seq, &ts, &marker, nullptr, nullptr)) {
      std::lock_guard<std::mutex> g(t->lock);
      if (t->key_last_seq == seq && t->jb_key_out < 0)
        t->jb_key_out = now;
    }
    gst_buffer_unmap(buf, &m);
    return GST_PAD_PROBE_OK;
  }
  static GstPadProbeReturn depay_src(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *t = static_cast<KeyframeTrace *>(data);
    const double now = now_ms();
    std::lock_guard<std::mutex> g(t->lock);
    if (t->depay_key < 0 && !GST_BUFFER_FLAG_IS_SET(GST_PAD_PROBE_INFO_BUFFER(info), GST_BUFFER_FLAG_DELTA_UNIT))
      t->depay_key = now;
    return GST_PAD_PROBE_OK;
  }
  static void add_probe(GstElement *e, const char *pad_name, GstPadProbeType type, GstPadProbeCallback cb, gpointer data) {
    g_autoptr(GstPad) pad = gst_element_get_static_pad(e, pad_name);
    if (pad)
      gst_pad_add_probe(pad, type, cb, data, nullptr);
  }
  /* the viewer's elements as they are made (called from whichever thread adds them) */
  static void on_viewer_element(GstBin *, GstBin *, GstElement *e, gpointer data) {
    GstElementFactory *f = gst_element_get_factory(e);
    const std::string name = f ? GST_OBJECT_NAME(f) : "";
    const auto buffers = static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST);
    if (name == "nicesrc")
      add_probe(e, "src", buffers, nicesrc_src, data);
    else if (name == "rtpjitterbuffer") {
      add_probe(e, "sink", GST_PAD_PROBE_TYPE_BUFFER, jitterbuffer_sink, data);
      add_probe(e, "src", GST_PAD_PROBE_TYPE_BUFFER, jitterbuffer_src, data);
    } else if (name == "rtph264depay")
      add_probe(e, "src", GST_PAD_PROBE_TYPE_BUFFER, depay_src, data);
  }
  void attach_publisher(Pipeline &pub) {
    g_autoptr(GstElement) encoder = pub.get("encoder");
    if (encoder) {
      add_probe(encoder, "src", static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_UPSTREAM),
                encoder_src, this);
      add_probe(encoder, "sink", GST_PAD_PROBE_TYPE_BUFFER, encoder_sink, this);
    }
  }
  /* rtspclientsink builds its payloader once it records: look for it after the path is ready */
  void attach_payloader(Pipeline &pub) {
    GstIterator *it = gst_bin_iterate_recurse(GST_BIN(pub.element()));
    GValue item = G_VALUE_INIT;
    while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
      GstElement *e = GST_ELEMENT(g_value_get_object(&item));
      GstElementFactory *f = gst_element_get_factory(e);
      const char *klass = f ? gst_element_factory_get_metadata(f, GST_ELEMENT_METADATA_KLASS) : nullptr;
      if (klass && strstr(klass, "Payloader") && strstr(klass, "RTP"))
        add_probe(e, "src", static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                  payloader_src, this);
      g_value_reset(&item);
    }
    g_value_unset(&item);
    gst_iterator_free(it);
  }
};

/* ---- 2b. time to first frame of a fresh viewer process -------------------------------------
 * Each start is a new process (mtx-bench ttff-child): GStreamer's start-up, the plugin load and the
 * DTLS certificate are paid as a user pays them. Reported from the spawn and from PLAYING, per
 * keyframe interval, with the publisher's keyframe-on-join off and on; MediaMTX's own reader page
 * in Chromium (tests/bench/chromium_ttff.js) against the same server and publisher as the
 * reference. */

int ttff_child_main(const Options &o) {
  const double entered = now_ms();
  Pipeline view("whepsrc name=src location=" + opt(o, "url", "") +
                " latency=50 audio=false decode=true ! identity name=decoded ! fakesink sync=false");
  FirstFrame ff;
  ff.attach(view, "decoded");
  KeyframeTrace trace; /* --trace: the viewer's half of ttff-trace --fresh */
  const bool tracing = opt(o, "trace", "0") == "1";
  if (tracing)
    g_signal_connect(view.element(), "deep-element-added", G_CALLBACK(KeyframeTrace::on_viewer_element), &trace);
  const double playing = now_ms();
  trace.arm(playing);
  view.play();
  while (ff.at.load() == 0 && now_ms() - playing < 10000 && view.errors() == 0)
    sleep_ms(1);
  if (ff.at.load() == 0) {
    printf("TTFF_CHILD ok=0\n");
    return 1;
  }
  g_autoptr(GstElement) src = view.get("src");
  auto abs_ms = [&](const char *f) { gint64 us = stats_int64(src, f); return us > 0 ? us / 1000.0 : -1.0; };
  std::string traced;
  if (tracing) {
    std::lock_guard<std::mutex> g(trace.lock);
    char buf[256];
    snprintf(buf, sizeof buf, " net_first=%.3f net_key_first=%.3f net_key_last=%.3f jb_key_in=%.3f jb_key_out=%.3f "
             "depay_key=%.3f", trace.net_first, trace.net_key_first, trace.net_key_last, trace.jb_key_in,
             trace.jb_key_out, trace.depay_key);
    traced = buf;
  }
  printf("TTFF_CHILD ok=1 entered=%.3f playing=%.3f first=%.3f offer=%.3f answer=%.3f connected=%.3f%s\n", entered,
         playing, ff.at.load(), abs_ms("offer-created-us"), abs_ms("answer-received-us"), abs_ms("connected-us"),
         traced.c_str());
  fflush(stdout);
  return 0;
}

double field(const std::string &line, const std::string &key) {
  auto at = line.find(" " + key + "=");
  return at == std::string::npos ? -1 : std::atof(line.c_str() + at + key.size() + 2);
}

struct FreshSample {
  double from_process = -1, from_playing = -1, offer = -1, answer = -1, connected = -1;
};

/* One fresh viewer process; false when it got no frame. */
bool spawn_ttff_child(const std::string &url, FreshSample *s, std::string *line_out = nullptr) {
  std::string url_arg = "--url=" + url;
  const char *argv[] = {"/proc/self/exe", "ttff-child", url_arg.c_str(), line_out ? "--trace" : nullptr, nullptr};
  g_autofree char *out = nullptr;
  gint status = 0;
  const double spawned = now_ms();
  if (!g_spawn_sync(nullptr, const_cast<char **>(argv), nullptr, G_SPAWN_DEFAULT, nullptr, nullptr, &out, nullptr,
                    &status, nullptr))
    return false;
  std::string text = out ? out : "";
  auto at = text.find("TTFF_CHILD ok=1");
  if (at == std::string::npos)
    return false;
  std::string line = text.substr(at, text.find('\n', at) - at);
  const double playing = field(line, "playing"), first = field(line, "first");
  s->from_process = first - spawned;
  s->from_playing = first - playing;
  auto rel = [&](const char *k) { double v = field(line, k); return v > 0 ? v - playing : -1.0; };
  s->offer = rel("offer");
  s->answer = rel("answer");
  s->connected = rel("connected");
  if (line_out)
    *line_out = line;
  return true;
}

/* MediaMTX's reader page in Chromium: one fresh browser per start (tests/bench/chromium_ttff.js). */
std::vector<FreshSample> chromium_ttff(const Options &o, const std::string &page_url, int starts, double keyint_s) {
  std::vector<FreshSample> out;
  std::string script = opt(o, "chromium-script", "");
  if (script.empty())
    return out;
  std::string starts_arg = "--starts=" + std::to_string(starts);
  std::string url_arg = "--url=" + page_url;
  std::string pause_arg = "--max-pause-ms=" + std::to_string(static_cast<int>(keyint_s * 1000));
  const char *argv[] = {"node", script.c_str(), url_arg.c_str(), starts_arg.c_str(), pause_arg.c_str(), nullptr};
  g_autofree char *stdout_text = nullptr;
  gint status = 0;
  g_autoptr(GError) error = nullptr;
  if (!g_spawn_sync(nullptr, const_cast<char **>(argv), nullptr, G_SPAWN_SEARCH_PATH, nullptr, nullptr,
                    &stdout_text, nullptr, &status, &error)) {
    g_printerr("ttff-fresh: cannot run node %s: %s\n", script.c_str(), error->message);
    return out;
  }
  std::istringstream lines(stdout_text ? stdout_text : "");
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("CHROMIUM_TTFF ok=1", 0) != 0)
      continue;
    FreshSample s;
    s.from_process = field(line, "from_launch");
    s.from_playing = field(line, "from_navigation");
    out.push_back(s);
  }
  return out;
}

int run_ttff_fresh(const Options &o) {
  int starts = opt_int(o, "starts", 20), chromium_starts = opt_int(o, "chromium-starts", 10);
  Video v = video_from(o);
  testbed::MediamtxServer server;
  if (!start_server(server))
    return 1;
  const std::string api = "api-location=http://127.0.0.1:" + std::to_string(server.api_port());
  CsvOut csv(o, "ttff_fresh", "client,keyint_s,keyframe_on_join,start,from_process_ms,from_playing_ms,offer_ms,"
                              "answer_ms,connected_ms");
  std::mt19937 rng(42);
  int failures = 0;
  g_auto(GStrv) keyints = g_strsplit(opt(o, "keyints", "1,2,4").c_str(), ",", -1);
  g_auto(GStrv) joins = g_strsplit(opt(o, "keyframe-on-join", "false,true").c_str(), ",", -1);
  for (char **k = keyints; *k; ++k) {
    const double keyint_s = std::atof(*k);
    const int keyint_frames = std::max(1, static_cast<int>(std::lround(keyint_s * v.fps)));
    std::uniform_int_distribution<int> pause(200, 200 + static_cast<int>(keyint_s * 1000));
    for (char **j = joins; *j; ++j) {
      const std::string join = *j;
      auto pub = start_publisher(server, "rtsp", v, keyint_frames, "keyframe-on-join=" + join + " " + api);
      if (!pub)
        return 1;
      sleep_ms(1500);
      auto report = [&](const char *client, const std::vector<FreshSample> &samples, int tried) {
        std::vector<double> proc, play, offer, connected;
        for (auto &s : samples) {
          proc.push_back(s.from_process);
          play.push_back(s.from_playing);
          if (s.offer >= 0) offer.push_back(s.offer);
          if (s.connected >= 0) connected.push_back(s.connected);
        }
        printf("RESULT ttff_fresh client=%s keyint_s=%.2f keyframe_on_join=%s starts=%d %s %s %s %s\n", client,
               keyint_s, join.c_str(), tried, summary("from_process", proc).c_str(),
               summary("from_playing", play).c_str(), summary("offer", offer).c_str(),
               summary("connected", connected).c_str());
        fflush(stdout);
      };
      std::vector<FreshSample> samples;
      for (int i = 0; i < starts; i++) {
        FreshSample s;
        if (spawn_ttff_child(server.whep_url("cam"), &s)) {
          samples.push_back(s);
          csv.row("whepsrc", keyint_s, join, i, s.from_process, s.from_playing, s.offer, s.answer, s.connected);
        } else {
          g_printerr("ttff-fresh: start %d got no frame\n", i);
          failures++;
        }
        sleep_ms(pause(rng));
      }
      report("whepsrc", samples, starts);
      std::string page = server.whep_url("cam");
      page = page.substr(0, page.rfind("/whep"));
      auto browser = chromium_ttff(o, page, chromium_starts, keyint_s);
      for (size_t i = 0; i < browser.size(); i++)
        csv.row("chromium", keyint_s, join, i, browser[i].from_process, browser[i].from_playing, -1, -1, -1);
      if (!opt(o, "chromium-script", "").empty())
        report("chromium", browser, chromium_starts);
    }
  }
  return failures ? 1 : 0;
}

/* A start's milestones (run_ttff_trace's row order) are there and in the order a keyframe takes:
 * connected, (forced,) keyframe out of the encoder, off the network, out of the jitter buffer,
 * decoded. */
bool trace_complete(const std::vector<double> &row, bool forced) {
  const double connected = row[2], force = row[4], enc_key = row[6], net_key = row[8], jb_out = row[11],
               decoded = row[13];
  if (connected < 0 || enc_key < 0 || net_key < 0 || jb_out < 0 || decoded < 0 || (forced && force < 0))
    return false;
  return enc_key <= net_key && net_key <= jb_out && jb_out <= decoded && (!forced || force <= enc_key);
}

int run_ttff_trace(const Options &o) {
  const int starts = opt_int(o, "starts", 20), latency = opt_int(o, "latency", 50);
  const double keyint_s = std::stod(opt(o, "keyint-s", "2"));
  const std::string join = opt(o, "keyframe-on-join", "true");
  Video v = video_from(o);
  const int keyint_frames = std::max(1, static_cast<int>(std::lround(keyint_s * v.fps)));
  testbed::MediamtxServer server;
  if (!start_server(server))
    return 1;
  auto pub = start_publisher(server, "rtsp", v, keyint_frames,
                             "keyframe-on-join=" + join + " api-location=http://127.0.0.1:" +
                                 std::to_string(server.api_port()) + " " + opt(o, "publisher-extra", ""));
  if (!pub)
    return 1;
  KeyframeTrace trace;
  trace.attach_publisher(*pub);
  trace.attach_payloader(*pub);
  sleep_ms(1500);
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> pause(600, 600 + static_cast<int>(keyint_s * 1000));
  CsvOut csv(o, "ttff_trace", "keyint_s,keyframe_on_join,fresh,latency,start,offer,answer,connected,net_first,force,enc_in,"
                              "enc_key,pay_key,net_key_first,net_key_last,jb_key_in,jb_key_out,depay_key,decoded");
  const char *names[] = {"offer", "answer", "connected", "net_first", "force", "enc_in", "enc_key", "pay_key",
                         "net_key_first", "net_key_last", "jb_key_in", "jb_key_out", "depay_key", "decoded"};
  std::vector<std::vector<double>> columns(G_N_ELEMENTS(names));
  int failures = 0;
  const bool fresh = opt(o, "fresh", "0") == "1";
  for (int i = 0; fresh && i < starts; i++) {
    /* the viewer in a new process (mtx-bench ttff-child --trace): same clock, its milestones printed */
    FreshSample s;
    std::string line;
    trace.arm(now_ms());
    const bool ok = spawn_ttff_child(server.whep_url("cam"), &s, &line);
    std::vector<double> row;
    {
      std::lock_guard<std::mutex> g(trace.lock);
      const double playing = field(line, "playing");
      auto child = [&](const char *k) { double v = field(line, k); return v > 0 ? v - playing : -1.0; };
      auto parent = [&](double at) { return at > 0 ? at - playing : -1.0; };
      row = {s.offer, s.answer, s.connected, child("net_first"), parent(trace.force), parent(trace.enc_in),
             parent(trace.enc_key), parent(trace.pay_key), child("net_key_first"), child("net_key_last"),
             child("jb_key_in"), child("jb_key_out"), child("depay_key"), s.from_playing};
      trace.t0 = 0;
    }
    if (!ok) {
      g_printerr("ttff-trace: start %d got no frame\n", i);
      failures++;
      continue;
    }
    if (!trace_complete(row, join == "true")) {
      g_printerr("ttff-trace: start %d: a milestone is missing or out of order\n", i);
      failures++;
    }
    for (size_t c = 0; c < row.size(); c++)
      if (row[c] >= 0)
        columns[c].push_back(row[c]);
    csv.row(keyint_s, join, fresh, latency, i, row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
            row[10], row[11], row[12], row[13]);
    sleep_ms(pause(rng));
  }
  for (int i = 0; !fresh && i < starts; i++) {
    Pipeline view(viewer_desc(server, "whepsrc", latency, false, opt(o, "viewer-extra", "")));
    g_signal_connect(view.element(), "deep-element-added", G_CALLBACK(KeyframeTrace::on_viewer_element), &trace);
    FirstFrame ff;
    ff.attach(view, "decoded");
    const double t0 = now_ms();
    trace.arm(t0);
    view.play();
    while (ff.at.load() == 0 && now_ms() - t0 < 10000 && view.errors() == 0)
      sleep_ms(2);
    if (ff.at.load() == 0) {
      g_printerr("ttff-trace: no frame within 10 s (start %d)\n", i);
      failures++;
      continue;
    }
    g_autoptr(GstElement) src = view.get("src");
    auto stat = [&](const char *f) { gint64 us = stats_int64(src, f); return us > 0 ? us / 1000.0 - t0 : -1.0; };
    std::vector<double> row;
    {
      std::lock_guard<std::mutex> g(trace.lock);
      row = {stat("offer-created-us"), stat("answer-received-us"), stat("connected-us"), trace.rel(trace.net_first),
             trace.rel(trace.force), trace.rel(trace.enc_in), trace.rel(trace.enc_key), trace.rel(trace.pay_key),
             trace.rel(trace.net_key_first), trace.rel(trace.net_key_last), trace.rel(trace.jb_key_in),
             trace.rel(trace.jb_key_out), trace.rel(trace.depay_key), ff.at.load() - t0};
      trace.t0 = 0; /* disarmed while the viewer goes */
    }
    if (!trace_complete(row, join == "true")) {
      g_printerr("ttff-trace: start %d: a milestone is missing or out of order\n", i);
      failures++;
    }
    for (size_t c = 0; c < row.size(); c++)
      if (row[c] >= 0)
        columns[c].push_back(row[c]);
    csv.row(keyint_s, join, fresh, latency, i, row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
            row[10], row[11], row[12], row[13]);
    g_signal_handlers_disconnect_by_data(view.element(), &trace);
    sleep_ms(pause(rng));
  }
  printf("RESULT ttff_trace keyint_s=%.2f keyframe_on_join=%s fresh=%d latency=%d starts=%d", keyint_s, join.c_str(),
         fresh, latency, starts);
  for (size_t c = 0; c < columns.size(); c++)
    printf(" %s_n=%zu %s_p50=%.1f %s_p95=%.1f", names[c], columns[c].size(), names[c], percentile(columns[c], 50),
           names[c], percentile(columns[c], 95));
  printf("\n");
  fflush(stdout);
  return failures ? 1 : 0;
}

/* DTLS certificate cost of a fresh process: what our elements do before their first session
 * (gst/dtls_certificate.h), against stock (the first dtlsdec generating its RSA-2048 key). */
int cert_child_main(const Options &o) {
  const bool stock = opt(o, "mode", "ours") == "stock";
  /* the plugin's own load (dlopen, OpenSSL's library init) is not the certificate: before the clock */
  if (GstPlugin *dtls = gst_plugin_load_by_name("dtls"))
    gst_object_unref(dtls);
  const double t0 = now_ms();
  if (stock) {
    GstElement *dec = gst_element_factory_make("dtlsdec", nullptr);
    if (dec)
      gst_object_unref(gst_object_ref_sink(dec));
  } else {
    gstmtx::prepare_dtls_default_certificate();
    (void)gstmtx::dtls_certificate_pem();
  }
  printf("CERT_CHILD ms=%.3f\n", now_ms() - t0);
  return 0;
}

int run_cert(const Options &o) {
  int runs = opt_int(o, "runs", 20);
  CsvOut csv(o, "cert", "mode,run,ms");
  for (const char *mode : {"stock", "ours"}) {
    std::vector<double> ms;
    std::string mode_arg = std::string("--mode=") + mode;
    for (int i = 0; i < runs; i++) {
      const char *argv[] = {"/proc/self/exe", "cert-child", mode_arg.c_str(), nullptr};
      g_autofree char *out = nullptr;
      if (!g_spawn_sync(nullptr, const_cast<char **>(argv), nullptr, G_SPAWN_DEFAULT, nullptr, nullptr, &out, nullptr,
                        nullptr, nullptr) || !out || !strstr(out, "CERT_CHILD"))
        continue;
      double v = field(std::string(" ") + strstr(out, "ms="), "ms");
      ms.push_back(v);
      csv.row(mode, i, v);
    }
    printf("RESULT cert mode=%s %s\n", mode, summary("ms", ms).c_str());
    fflush(stdout);
  }
  return 0;
}

/* ---- 3. recovery after a server restart ------------------------------------------------- */

struct RecoverySample {
  double first_frame = -1, path_ready = -1, api_up = -1, viewer_noticed = -1;
};

std::vector<RecoverySample> run_recovery(const Options &o) {
  std::vector<RecoverySample> out;
  int runs = opt_int(o, "runs", 5), outage = opt_int(o, "outage-ms", 1000);
  int retry = opt_int(o, "retry-delay", 500), viewer_timeout = opt_int(o, "viewer-timeout", 1000);
  Video v = video_from(o);
  int keyint_frames = opt_int(o, "keyint", 30);
  testbed::MediamtxServer server;
  if (!start_server(server))
    return out;
  std::string retry_props = "retry-delay=" + std::to_string(retry) + " max-retry-delay=" + std::to_string(retry);
  auto pub = start_publisher(server, "rtsp", v, keyint_frames, retry_props + " max-retries=-1");
  if (!pub)
    return out;
  Pipeline view(viewer_desc(server, "whepsrc", 50, false,
                            retry_props + " max-retries=-1 timeout=" + std::to_string(viewer_timeout)));
  view.quiet_errors = pub->quiet_errors = true;
  /* first frame after `since` (ms): reset `first` to 0 and move `since` to re-arm */
  struct Arrivals {
    std::atomic<double> since{0}, first{0};
  } arrivals;
  g_autoptr(GstElement) dec = view.get("decoded");
  g_autoptr(GstPad) pad = gst_element_get_static_pad(dec, "src");
  gst_pad_add_probe(
      pad, GST_PAD_PROBE_TYPE_BUFFER,
      [](GstPad *, GstPadProbeInfo *, gpointer data) -> GstPadProbeReturn {
        auto *a = static_cast<Arrivals *>(data);
        double t = now_ms();
        if (a->first.load() == 0 && t >= a->since.load())
          a->first = t;
        return GST_PAD_PROBE_OK;
      },
      &arrivals, nullptr);
  view.play();
  double t0 = now_ms();
  while (arrivals.first.load() == 0 && now_ms() - t0 < 10000)
    sleep_ms(10);
  CsvOut csv(o, "recovery", "run,outage_ms,retry_delay_ms,viewer_timeout_ms,keyint_frames,viewer_noticed_ms,"
                            "api_up_ms,path_ready_ms,first_frame_ms");
  for (int i = 0; i < runs && arrivals.first.load() > 0; i++) {
    sleep_ms(2000);
    double killed = now_ms();
    server.kill_hard();
    sleep_ms(outage);
    RecoverySample s;
    double back = now_ms();  /* the server process is started again */
    arrivals.since = back;
    arrivals.first = 0;
    if (!server.start())
      break;
    s.api_up = now_ms() - back;
    double ready_at = -1;
    while (now_ms() - back < 20000) {
      if (ready_at < 0 && server.path_ready("cam"))
        ready_at = now_ms();
      if (ready_at > 0 && arrivals.first.load() > 0)
        break;
      sleep_ms(5);
    }
    if (ready_at > 0)
      s.path_ready = ready_at - back;
    if (arrivals.first.load() > 0)
      s.first_frame = arrivals.first.load() - back;
    for (auto &[state, at] : view.status_log())  /* the viewer's first "reconnecting" after the kill */
      if (at >= killed && state.find(":reconnecting") != std::string::npos) {
        s.viewer_noticed = at - killed;
        break;
      }
    out.push_back(s);
    csv.row(i, outage, retry, viewer_timeout, keyint_frames, s.viewer_noticed, s.api_up, s.path_ready, s.first_frame);
  }
  std::vector<double> ff, pr, api, noticed;
  for (auto &s : out) {
    if (s.viewer_noticed >= 0) noticed.push_back(s.viewer_noticed);
    if (s.first_frame >= 0) ff.push_back(s.first_frame);
    if (s.path_ready >= 0) pr.push_back(s.path_ready);
    api.push_back(s.api_up);
  }
  printf("RESULT recovery runs=%d outage_ms=%d retry_delay=%d viewer_timeout=%d keyint_frames=%d %s %s %s %s\n",
         runs, outage, retry, viewer_timeout, keyint_frames, summary("viewer_noticed", noticed).c_str(),
         summary("api_up", api).c_str(), summary("path_ready", pr).c_str(),
         summary("first_frame", ff).c_str());
  fflush(stdout);
  return out;
}

/* ---- 4. cost ----------------------------------------------------------------------------- */

double cpu_seconds_self() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

long peak_rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + (pid ? std::to_string(pid) : std::string("self")) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0)
      return std::stol(line.substr(6));
  return -1;
}

/* utime+stime of a process in seconds, from /proc/<pid>/stat */
double cpu_seconds_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  std::getline(f, s);
  auto close = s.rfind(')');
  if (close == std::string::npos)
    return -1;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  std::vector<std::string> fields;
  while (rest >> field)
    fields.push_back(field);
  if (fields.size() < 13)
    return -1;
  return (std::stod(fields[11]) + std::stod(fields[12])) / sysconf(_SC_CLK_TCK);  /* fields 14, 15 */
}

/* pid of our MediaMTX child */
pid_t find_mediamtx_child() {
  g_autoptr(GDir) dir = g_dir_open("/proc", 0, nullptr);
  const char *name;
  while (dir && (name = g_dir_read_name(dir))) {
    if (!g_ascii_isdigit(name[0]))
      continue;
    std::ifstream f(std::string("/proc/") + name + "/stat");
    std::string s;
    std::getline(f, s);
    auto open = s.find('('), close = s.rfind(')');
    if (open == std::string::npos || close == std::string::npos)
      continue;
    std::string comm = s.substr(open + 1, close - open - 1);
    std::istringstream rest(s.substr(close + 2));
    std::string state;
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid == getpid() && comm.rfind("mediamtx", 0) == 0)
      return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}

/* Child mode: one viewer or publisher; measures its own CPU over a window after a warm-up and
 * prints "CHILD cpu_pct=.. peak_rss_kib=.. frames=.. expected=.. mbps=..". */
int child_main(const Options &o) {
  std::string role = opt(o, "role", "view");
  int warm = opt_int(o, "warm-s", 4), window = opt_int(o, "window-s", 10);
  std::string desc;
  if (role == "view") {
    std::string decode = opt(o, "decode", "0") == "1" ? "true" : "false";
    desc = "whepsrc name=src location=" + opt(o, "url", "") + " audio=false latency=50 decode=" + decode +
           " ! identity name=decoded ! fakesink sync=false";
  } else {
    desc = opt(o, "pipeline", "");
  }
  Pipeline p(desc);
  std::atomic<int> frames{0};
  g_autoptr(GstElement) counted = p.get(role == "view" ? "decoded" : "counted");
  if (counted) {
    g_autoptr(GstPad) pad = gst_element_get_static_pad(counted, "src");
    gst_pad_add_probe(
        pad, GST_PAD_PROBE_TYPE_BUFFER,
        [](GstPad *, GstPadProbeInfo *, gpointer data) -> GstPadProbeReturn {
          (*static_cast<std::atomic<int> *>(data))++;
          return GST_PAD_PROBE_OK;
        },
        &frames, nullptr);
  }
  p.play();
  double t0 = now_ms();
  while (frames.load() == 0 && now_ms() - t0 < 15000)
    sleep_ms(10);
  /* --window-at-ms: every sibling measures over the same window, after all of them started (their
   * start-up, DTLS certificate and ICE, would otherwise land in the others' windows) */
  const double window_at = std::stod(opt(o, "window-at-ms", "0"));
  if (window_at > 0)
    sleep_ms(static_cast<int>(std::max(0.0, window_at - now_ms())));
  else
    sleep_ms(warm * 1000);
  g_autoptr(GstElement) src = p.get("src");
  gint64 bytes0 = 0, bytes1 = 0;
  if (src) {
    GstStructure *s = nullptr;
    g_object_get(src, "stats", &s, nullptr);
    if (s) { gst_structure_get(s, "bytes-received", G_TYPE_UINT64, &bytes0, nullptr); gst_structure_free(s); }
  }
  int f0 = frames.load();
  double c0 = cpu_seconds_self(), w0 = now_ms();
  sleep_ms(window * 1000);
  int f1 = frames.load();
  double c1 = cpu_seconds_self(), w1 = now_ms();
  if (src) {
    GstStructure *s = nullptr;
    g_object_get(src, "stats", &s, nullptr);
    if (s) { gst_structure_get(s, "bytes-received", G_TYPE_UINT64, &bytes1, nullptr); gst_structure_free(s); }
  }
  double wall = (w1 - w0) / 1000.0;
  printf("CHILD cpu_pct=%.2f peak_rss_kib=%ld frames=%d expected=%.0f mbps=%.3f errors=%d\n",
         100.0 * (c1 - c0) / wall, peak_rss_kib(0), f1 - f0, wall * 30, (bytes1 - bytes0) * 8 / wall / 1e6,
         p.errors());
  fflush(stdout);
  return 0;
}

struct ChildResult {
  double cpu_pct = -1, mbps = 0;
  long rss = -1;
  int frames = 0;
  double expected = 0;
  int errors = 0;
};

/* The kernel's UDP counters of this network namespace (/proc/net/snmp "Udp:" lines). */
std::map<std::string, long long> udp_counters() {
  std::ifstream f("/proc/net/snmp");
  std::string names, values, line;
  while (std::getline(f, line)) {
    if (line.rfind("Udp: ", 0) != 0)
      continue;
    if (names.empty())
      names = line;
    else
      values = line;
  }
  std::map<std::string, long long> out;
  std::istringstream n(names), v(values);
  std::string name, value;
  n >> name;
  v >> value;
  while (n >> name && v >> value)
    out[name] = std::stoll(value);
  return out;
}

/* Runs `count` copies of this program in child mode with `args`, staggered, and parses their
 * reports. `common_window`: all of them measure over one window that opens `warm_s` after the last
 * one was spawned (plus time to connect), not each `warm_s` after its own first frame. */
std::vector<ChildResult> run_children(int count, std::vector<std::string> args, bool common_window = false,
                                      int warm_s = 4) {
  std::vector<std::pair<GPid, int>> kids;
  constexpr int kStaggerMs = 150;
  if (common_window) {
    const double at = now_ms() + count * kStaggerMs + 3000 + warm_s * 1000.0;
    args.push_back("--window-at-ms=" + std::to_string(static_cast<long long>(at)));
  }
  for (int i = 0; i < count; i++) {
    std::vector<char *> argv;
    static std::string self = g_file_read_link("/proc/self/exe", nullptr);
    argv.push_back(const_cast<char *>(self.c_str()));
    std::string child = "child";
    argv.push_back(const_cast<char *>(child.c_str()));
    for (auto &a : args)
      argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    GPid pid;
    int out_fd;
    GError *err = nullptr;
    if (!g_spawn_async_with_pipes(nullptr, argv.data(), nullptr, G_SPAWN_DO_NOT_REAP_CHILD, nullptr, nullptr, &pid,
                                  nullptr, &out_fd, nullptr, &err)) {
      g_printerr("spawn failed: %s\n", err->message);
      g_clear_error(&err);
      continue;
    }
    kids.emplace_back(pid, out_fd);
    sleep_ms(kStaggerMs);
  }
  std::vector<ChildResult> results;
  for (auto &[pid, fd] : kids) {
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
      text.append(buf, static_cast<size_t>(n));
    close(fd);
    int status;
    waitpid(pid, &status, 0);
    g_spawn_close_pid(pid);
    ChildResult r;
    auto pos = text.find("CHILD ");
    if (pos != std::string::npos)
      sscanf(text.c_str() + pos, "CHILD cpu_pct=%lf peak_rss_kib=%ld frames=%d expected=%lf mbps=%lf errors=%d",
             &r.cpu_pct, &r.rss, &r.frames, &r.expected, &r.mbps, &r.errors);
    results.push_back(r);
  }
  return results;
}

/* Viewers: 1..N concurrent whepsrc processes; publishers: mediamtxsink encoding vs passthrough. */
int run_cost(const Options &o) {
  Video v = video_from(o);
  std::string counts = opt(o, "viewers", "1,2,4,8,16"), dcounts = opt(o, "decoded-viewers", "1,2,4");
  std::string warm = "--warm-s=" + opt(o, "warm-s", "4"), window = "--window-s=" + opt(o, "window-s", "10");
  const bool common_window = opt(o, "common-window", "1") == "1";
  testbed::MediamtxServer server;
  if (!start_server(server))
    return 1;
  CsvOut csv(o, "cost", "what,count,per_process_cpu_pct_mean,total_cpu_pct,server_cpu_pct,peak_rss_kib_max,"
                        "frames_min,expected,lossless,mbps");
  pid_t mtx = find_mediamtx_child();

  /* publisher cost: each configuration as its own process */
  std::string src = raw_source(v);
  std::string rate = " bitrate=" + std::to_string(v.kbps) + " keyframe-interval=30";
  std::string x264 = " x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=30 bitrate=" +
                     std::to_string(v.kbps) + " ! video/x-h264,profile=constrained-baseline ! h264parse ";
  std::vector<std::pair<std::string, std::string>> pubs = {
      {"publisher_encoding", src + " ! identity name=counted ! mediamtxsink location=" + server.rtsp_url("enc") + rate},
      {"publisher_passthrough", src + " ! " + x264 + " ! identity name=counted ! mediamtxsink location=" +
                                    server.rtsp_url("pass") + rate},
      {"x264enc_to_fakesink", src + " ! " + x264 + " ! identity name=counted ! fakesink sync=false"},
  };
  if (opt(o, "publishers", "1") == "0")
    pubs.clear();
  for (auto &[what, pipe] : pubs) {
    auto r = run_children(1, {"--role=publish", "--pipeline=" + pipe, warm, window});
    if (r.empty())
      continue;
    printf("RESULT cost what=%s cpu_pct=%.2f peak_rss_kib=%ld frames=%d expected=%.0f\n", what.c_str(), r[0].cpu_pct,
           r[0].rss, r[0].frames, r[0].expected);
    csv.row(what, 1, r[0].cpu_pct, r[0].cpu_pct, -1, r[0].rss, r[0].frames, r[0].expected,
            r[0].frames >= r[0].expected - 2, 0);
    fflush(stdout);
  }

  /* viewers of one published stream */
  auto pub = start_publisher(server, "rtsp", v, 30);
  if (!pub)
    return 1;
  sleep_ms(1000);
  auto sweep = [&](const std::string &list, bool decode) {
    gchar **items = g_strsplit(list.c_str(), ",", -1);
    for (gchar **it = items; *it; it++) {
      int n = atoi(*it);
      if (n <= 0)
        continue;
      double s0 = mtx > 0 ? cpu_seconds_of(mtx) : -1, w0 = now_ms();
      auto udp0 = udp_counters();
      auto rs = run_children(n, {"--role=view", "--url=" + server.whep_url("cam"),
                                 std::string("--decode=") + (decode ? "1" : "0"), warm, window},
                             common_window, opt_int(o, "warm-s", 4));
      double s1 = mtx > 0 ? cpu_seconds_of(mtx) : -1, w1 = now_ms();
      auto udp1 = udp_counters();
      /* MediaMTX's per-reader write queue (writeQueueSize) overflowing: "reader is too slow,
       * discarding N frames" in its log (cumulative over the run) */
      const std::string server_log = server.read_log();
      int too_slow = 0;
      for (std::size_t at = server_log.find("reader is too slow"); at != std::string::npos;
           at = server_log.find("reader is too slow", at + 1))
        ++too_slow;
      printf("SERVER count=%d too-slow-lines=%d\n", n, too_slow);
      /* socket buffers: a receive buffer overflow is counted here, whoever the socket belongs to */
      printf("UDP count=%d RcvbufErrors=%lld SndbufErrors=%lld InErrors=%lld InDatagrams=%lld\n", n,
             udp1["RcvbufErrors"] - udp0["RcvbufErrors"], udp1["SndbufErrors"] - udp0["SndbufErrors"],
             udp1["InErrors"] - udp0["InErrors"], udp1["InDatagrams"] - udp0["InDatagrams"]);
      double total = 0, mbps = 0;
      long rss = 0;
      int fmin = 1 << 30, errors = 0;
      double expected = 0;
      for (auto &r : rs) {
        total += r.cpu_pct;
        rss = std::max(rss, r.rss);
        fmin = std::min(fmin, r.frames);
        expected = r.expected;
        mbps += r.mbps;
        errors += r.errors;
      }
      bool lossless = static_cast<int>(rs.size()) == n && fmin >= expected - 2 && errors == 0;
      /* server CPU averaged over the whole step (start-up included): an upper bound */
      double server_pct = s0 >= 0 ? 100.0 * (s1 - s0) / ((w1 - w0) / 1000.0) : -1;
      const char *what = decode ? "viewer_decoded" : "viewer_encoded";
      printf("RESULT cost what=%s count=%d per_process_cpu_pct=%.2f total_cpu_pct=%.1f server_cpu_pct=%.1f "
             "peak_rss_kib=%ld frames_min=%d expected=%.0f lossless=%d mbps_per_viewer=%.2f\n",
             what, n, rs.empty() ? -1 : total / rs.size(), total, server_pct, rss, fmin, expected, lossless,
             rs.empty() ? 0 : mbps / rs.size());
      fflush(stdout);
      csv.row(what, n, rs.empty() ? -1 : total / rs.size(), total, server_pct, rss, fmin, expected, lossless,
              rs.empty() ? 0 : mbps / rs.size());
    }
    g_strfreev(items);
  };
  sweep(counts, false);
  sweep(dcounts, true);
  return 0;
}

/* ---- 5. bandwidth adaptation (issue 17) ----------------------------------------------------- */

/* Three hosts (tests/faults/network_hosts.h): the publisher and the viewer are netns-pipeline
 * processes, each in its own network namespace joined to this one (MediaMTX) by a veth pair. The
 * publisher's uplink (its eth0) is shaped with tc tbf and steps through --steps (kbit/s), one step
 * every --step-s seconds. The publisher stamps each raw frame with its capture time; the viewer
 * (whepsrc, decoding) reports every frame its display sink (fakesink sync=true) renders, with the
 * time code read back or -1 when the picture is broken. Both run on CLOCK_MONOTONIC, like this
 * process. Per second: the publisher's stats (target-bitrate and measured-bitrate when the sink
 * has them), the bytes crossing the uplink and the viewer's link (/proc/net/dev here). */

struct AdaptConfig {
  std::string name, publisher; /* publisher: rtsp, whip (mediamtxsink) or whipclientsink */
  int adaptive = -1;           /* mediamtxsink adaptive-bitrate: 0, 1; -1: not set */
  std::string extra;           /* more mediamtxsink properties */
};

/* rx or tx bytes of an interface of this namespace; -1 when absent */
long long link_bytes(const std::string &ifname, bool rx) {
  std::ifstream f("/proc/net/dev");
  std::string line;
  while (std::getline(f, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos)
      continue;
    std::string name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    if (name != ifname)
      continue;
    std::istringstream fields(line.substr(colon + 1));
    long long v[9] = {0};
    for (auto &x : v)
      fields >> x;
    return rx ? v[0] : v[8];
  }
  return -1;
}

bool sink_has_property(const char *factory, const char *property) {
  g_autoptr(GstElement) e = gst_element_factory_make(factory, nullptr);
  return e && g_object_class_find_property(G_OBJECT_GET_CLASS(e), property);
}

struct AdaptSecond {
  double t_s = 0;  /* end of the second, from the first step */
  int limit = 0;
  gint64 target = -1, measured = -1; /* publisher stats (kbit/s), -1: not reported */
  double uplink_kbps = 0, viewer_kbps = 0;
};

struct AdaptWindow {
  int shown = 0, readable = 0, expected = 0, freezes = 0;
  double longest_gap_ms = 0, p50 = NAN, p95 = NAN;
};

/* Frames rendered in [from, to) (monotonic us): counts, latencies of the readable ones, and
 * freezes (no new picture for more than 500 ms, counting the window's edges). */
AdaptWindow adapt_window(const std::vector<std::pair<gint64, gint64>> &shown, gint64 from, gint64 to, int fps) {
  AdaptWindow w;
  w.expected = static_cast<int>((to - from) * fps / G_USEC_PER_SEC);
  std::vector<double> lat;
  gint64 last = from;
  auto gap = [&](gint64 until) {
    double ms = (until - last) / 1000.0;
    w.longest_gap_ms = std::max(w.longest_gap_ms, ms);
    if (ms > 500)
      w.freezes++;
  };
  for (auto &[at, code] : shown) {
    if (at < from || at >= to)
      continue;
    w.shown++;
    if (code >= 0) {
      w.readable++;
      lat.push_back((at - code) / 1000.0);
    }
    gap(at);
    last = at;
  }
  gap(to);
  w.p50 = percentile(lat, 50);
  w.p95 = percentile(lat, 95);
  return w;
}

std::vector<int> int_list(const std::string &s) {
  std::vector<int> out;
  std::istringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty())
      out.push_back(std::stoi(item));
  return out;
}

/* One configuration: returns false when it could not run (the reason printed as a RESULT line) or
 * when fewer than half of the frames of the first step (no cut yet) were shown readable. */
bool run_adapt_config(const Options &o, const AdaptConfig &c) {
  const Video v{1280, 720, 30, opt_int(o, "bitrate", 2500)};
  const std::vector<int> steps = int_list(opt(o, "steps", "4000,1000,500,4000"));
  const int step_s = opt_int(o, "step-s", 15), warm_s = opt_int(o, "warm-s", 5), settle_s = opt_int(o, "settle-s", 5);
  const int min_bitrate = opt_int(o, "min-bitrate", 0), latency = opt_int(o, "latency", 50);
  const std::string burst = opt(o, "tbf-burst", "20kb"), queue_ms = opt(o, "tbf-latency-ms", "200");
  auto skip = [&](const std::string &why) {
    printf("RESULT adapt config=%s skipped=%s\n", c.name.c_str(), why.c_str());
    fflush(stdout);
    return false;
  };
  if (steps.empty())
    return skip("no-steps");

  testbed::MediamtxServer server;
  if (!start_server(server))
    return skip("no-server");
  faults::TestHost pub("apub", 1), view("aview", 2);
  /* the reference publisher sees only gst-plugins-rs' plugins (no GType clash with ours) */
  const std::string rs_dir = opt(o, "rs-plugins", g_getenv("RS_REFERENCE_PLUGIN_DIR") ? g_getenv("RS_REFERENCE_PLUGIN_DIR") : "");
  std::string saved_path = g_getenv("GST_PLUGIN_PATH") ? g_getenv("GST_PLUGIN_PATH") : "";
  std::string saved_registry = g_getenv("GST_REGISTRY") ? g_getenv("GST_REGISTRY") : "";
  if (c.publisher == "whipclientsink") {
    if (rs_dir.empty())
      return skip("no-rs-plugins(set RS_REFERENCE_PLUGIN_DIR: tests/bench/build-rs-reference.sh)");
    g_setenv("GST_PLUGIN_PATH", rs_dir.c_str(), TRUE);
    g_setenv("GST_REGISTRY", (rs_dir + "/registry.bin").c_str(), TRUE);
  }
  const bool created = pub.create();
  g_setenv("GST_PLUGIN_PATH", saved_path.c_str(), TRUE);
  g_setenv("GST_REGISTRY", saved_registry.c_str(), TRUE);
  if (saved_registry.empty())
    g_unsetenv("GST_REGISTRY");
  if (!created || !view.create())
    return skip("no-hosts");
  auto shape = [&](int kbps) {
    return pub.run_inside("tc qdisc replace dev eth0 root tbf rate " + std::to_string(kbps) + "kbit burst " + burst +
                          " latency " + queue_ms + "ms");
  };
  if (!shape(steps[0]))
    return skip("tc-tbf-failed");
  /* random loss on the uplink (a Wi-Fi's), where its packets arrive (the server host's INPUT): the
   * sender sees no error, as with a loss on the way */
  const double loss_pct = std::atof(opt(o, "loss", "0").c_str());
  std::string loss_rule;
  if (loss_pct > 0) {
    g_autofree char *p = g_strdup_printf("%.4f", loss_pct / 100.0);
    loss_rule = "INPUT -i " + pub.server_interface() + " -m statistic --mode random --probability " + p + " -j DROP";
    if (std::system(("iptables -w -A " + loss_rule).c_str()) != 0)
      return skip("iptables-failed");
  }

  const std::string port = std::to_string(server.webrtc_port());
  std::string sink;
  if (c.publisher == "whipclientsink") {
    /* GCC (rtpgccbwe) between min and the same ceiling as ours; no mitigation modes (downscaling
     * would change the picture size, and with it the time code); its default STUN server is a
     * public name: point it at the server host instead (nothing listens there, MediaMTX is on the
     * same link anyway) */
    sink = "whipclientsink name=pub signaller::whip-endpoint=http://" + pub.server_address() + ":" + port +
           "/cam/whip stun-server=stun://" + pub.server_address() +
           ":3478 congestion-control=gcc enable-mitigation-modes=none video-caps=video/x-h264 start-bitrate=" +
           std::to_string(v.kbps * 1000) + " max-bitrate=" + std::to_string(v.kbps * 1000) +
           (min_bitrate > 0 ? " min-bitrate=" + std::to_string(min_bitrate * 1000) : "");
  } else {
    sink = "mediamtxsink name=pub bitrate=" + std::to_string(v.kbps) + " location=" +
           (c.publisher == "whip" ? "http://" + pub.server_address() + ":" + port + "/cam/whip transport=whip"
                                  : "rtsp://" + pub.server_address() + ":" + std::to_string(server.rtsp_port()) + "/cam");
    if (c.adaptive >= 0) {
      if (!sink_has_property("mediamtxsink", "adaptive-bitrate")) {
        if (c.adaptive == 1)
          return skip("no-adaptive-bitrate-property");
      } else {
        sink += std::string(" adaptive-bitrate=") + (c.adaptive ? "true" : "false");
        if (min_bitrate > 0)
          sink += " min-bitrate=" + std::to_string(min_bitrate);
      }
    }
    if (!c.extra.empty())
      sink += " " + c.extra;
    /* more mediamtxsink properties for every adaptive or fixed configuration (an experiment's) */
    const std::string more = opt(o, "publisher-extra", "");
    if (!more.empty())
      sink += " " + more;
  }
  if (!pub.play(raw_source(v) + " ! identity name=stamp ! " + sink))
    return skip("publisher-not-started");
  if (!server.wait_path_ready("cam", 20000))
    return skip("path-not-ready(" + (pub.errors().empty() ? std::string("?") : pub.errors().front()) + ")");
  view.play("whepsrc name=src location=http://" + view.server_address() + ":" + port + "/cam/whep latency=" +
            std::to_string(latency) + " audio=false decode=true ! fakesink name=display sync=true signal-handoffs=true");
  if (!testbed::wait_until([&] { return view.shown().size() >= 30 || view.exited(); }, 20000))
    return skip("viewer-no-frames");
  sleep_ms(warm_s * 1000);

  /* the steps, one sample a second */
  const std::string up_if = pub.server_interface(), down_if = view.server_interface();
  const gint64 t0 = g_get_monotonic_time();
  /* the last step (the limit lifted) lasts last_s: room to see the bitrate come back */
  const int n_steps = static_cast<int>(steps.size()), last_s = opt_int(o, "last-step-s", 20);
  const int seconds = (n_steps - 1) * step_s + last_s;
  auto step_of = [&](int second) { return std::min(second / step_s, n_steps - 1); };
  std::vector<AdaptSecond> series;
  long long up0 = link_bytes(up_if, true), down0 = link_bytes(down_if, false);
  gint64 prev = t0;
  for (int s = 0; s < seconds; s++) {
    if (s > 0 && step_of(s) != step_of(s - 1) && !shape(steps[step_of(s)]))
      g_printerr("adapt: tc change failed at %d s\n", s);
    const gint64 until = t0 + (s + 1) * G_USEC_PER_SEC;
    while (g_get_monotonic_time() < until)
      g_usleep(static_cast<gulong>(std::min<gint64>(until - g_get_monotonic_time(), 20000) + 1));
    AdaptSecond a;
    const gint64 now = g_get_monotonic_time();
    long long up = link_bytes(up_if, true), down = link_bytes(down_if, false);
    double dt = (now - prev) / 1e6;
    a.t_s = (now - t0) / 1e6;
    a.limit = steps[step_of(s)];
    a.uplink_kbps = (up - up0) * 8 / 1000.0 / dt;
    a.viewer_kbps = (down - down0) * 8 / 1000.0 / dt;
    up0 = up;
    down0 = down;
    prev = now;
    if (GstStructure *st = pub.stats()) {
      guint target = 0, measured = 0;
      if (gst_structure_get_uint(st, "target-bitrate", &target))
        a.target = target;
      if (gst_structure_get_uint(st, "measured-bitrate", &measured))
        a.measured = measured;
      gst_structure_free(st);
    }
    series.push_back(a);
    if (pub.exited() || view.exited())
      break;
  }
  /* a time code not newer than one already shown is a stale picture (the decoder repeated or
   * concealed it): not a readable frame */
  auto shown = view.shown();
  gint64 newest = -1;
  int stale = 0;
  for (auto &frame : shown) {
    if (frame.second >= 0 && frame.second <= newest) {
      frame.second = -1;
      stale++;
    }
    newest = std::max(newest, frame.second);
  }
  const std::string pub_death = pub.stop(), view_death = view.stop();
  if (!loss_rule.empty() && std::system(("iptables -w -D " + loss_rule).c_str()) != 0)
    g_printerr("adapt: could not remove the loss rule\n");
  if (!pub_death.empty() || !view_death.empty())
    g_printerr("adapt %s: publisher %s, viewer %s\n", c.name.c_str(), pub_death.c_str(), view_death.c_str());

  /* per second, per step, recovery */
  CsvOut series_csv(o, "adapt_series",
                    "config,t_s,limit_kbps,target_kbps,measured_kbps,uplink_kbps,viewer_kbps,shown,readable,p95_ms");
  for (auto &a : series) {
    const gint64 end = t0 + static_cast<gint64>(a.t_s * G_USEC_PER_SEC);
    AdaptWindow w = adapt_window(shown, end - G_USEC_PER_SEC, end, v.fps);
    series_csv.row(c.name, a.t_s, a.limit, a.target, a.measured, a.uplink_kbps, a.viewer_kbps, w.shown, w.readable,
                   w.p95);
  }
  CsvOut frames_csv(o, "adapt_frames", "config,t_s,latency_ms");
  for (auto &[at, code] : shown)
    if (at >= t0)
      frames_csv.row(c.name, (at - t0) / 1e6, code >= 0 ? std::to_string((at - code) / 1000.0) : std::string(""));
  CsvOut steps_csv(o, "adapt_steps",
                   "config,step,limit_kbps,window,shown,readable,expected,p50_ms,p95_ms,freezes,longest_gap_ms,"
                   "uplink_kbps,target_kbps");
  auto mean_of = [&](int from_s, int to_s, bool target) {
    double sum = 0;
    int n = 0;
    for (int i = from_s; i < to_s && i < static_cast<int>(series.size()); i++) {
      double x = target ? static_cast<double>(series[i].target) : series[i].uplink_kbps;
      if (target && series[i].target < 0)
        continue;
      sum += x;
      n++;
    }
    return n ? sum / n : NAN;
  };
  bool first_step_seen = false;
  for (size_t i = 0; i < steps.size(); i++) {
    for (int settled = 0; settled < 2; settled++) {
      const int from_s = static_cast<int>(i) * step_s + (settled ? settle_s : 0);
      const int to_s = static_cast<int>(i) + 1 == n_steps ? seconds : (static_cast<int>(i) + 1) * step_s;
      if (from_s >= to_s)
        continue;
      AdaptWindow w = adapt_window(shown, t0 + from_s * G_USEC_PER_SEC, t0 + to_s * G_USEC_PER_SEC, v.fps);
      const double up = mean_of(from_s, to_s, false), target = mean_of(from_s, to_s, true);
      const char *window = settled ? "settled" : "all";
      if (i == 0 && !settled)
        first_step_seen = w.readable * 2 >= w.expected;
      steps_csv.row(c.name, i, steps[i], window, w.shown, w.readable, w.expected, w.p50, w.p95, w.freezes,
                    w.longest_gap_ms, up, target);
      printf("RESULT adapt config=%s step=%zu limit_kbps=%d window=%s from_s=%d to_s=%d shown=%d readable=%d "
             "expected=%d readable_pct=%.1f p50_ms=%.1f p95_ms=%.1f freezes=%d longest_gap_ms=%.0f "
             "uplink_kbps=%.0f target_kbps=%.0f\n",
             c.name.c_str(), i, steps[i], window, from_s, to_s, w.shown, w.readable, w.expected,
             w.expected ? 100.0 * w.readable / w.expected : NAN, w.p50, w.p95, w.freezes, w.longest_gap_ms, up,
             target);
    }
  }
  /* recovery after the last step (the limit lifted): first second of three in a row at full rate */
  const int lift_s = (n_steps - 1) * step_s;
  const double baseline = mean_of(settle_s, step_s, false);
  auto recover = [&](auto ok) {
    for (int i = lift_s; i + 2 < static_cast<int>(series.size()); i++)
      if (ok(i) && ok(i + 1) && ok(i + 2))
        return series[i].t_s - lift_s;
    return -1.0;
  };
  const double uplink_s = recover([&](int i) { return series[i].uplink_kbps >= 0.9 * baseline; });
  const double target_s = recover([&](int i) { return series[i].target >= 0.95 * v.kbps; });
  const double latency_s = recover([&](int i) {
    const gint64 end = t0 + static_cast<gint64>(series[i].t_s * G_USEC_PER_SEC);
    AdaptWindow w = adapt_window(shown, end - G_USEC_PER_SEC, end, v.fps);
    return w.readable >= v.fps * 8 / 10 && w.p95 <= 400;
  });
  CsvOut rec_csv(o, "adapt_recovery", "config,baseline_uplink_kbps,uplink_recover_s,target_recover_s,picture_recover_s");
  rec_csv.row(c.name, baseline, uplink_s, target_s, latency_s);
  printf("RESULT adapt-recovery config=%s baseline_uplink_kbps=%.0f uplink_recover_s=%.1f target_recover_s=%.1f "
         "picture_recover_s=%.1f stale_frames=%d publisher_end=%s viewer_end=%s\n",
         c.name.c_str(), baseline, uplink_s, target_s, latency_s, stale, pub_death.empty() ? "clean" : "died",
         view_death.empty() ? "clean" : "died");
  fflush(stdout);
  /* the harness works: before any cut, at least half the frames reach the viewer readable */
  if (!first_step_seen)
    g_printerr("adapt %s: fewer than half the frames readable before the first cut\n", c.name.c_str());
  return first_step_seen;
}

/* ---- 4b. cost of keyframe-on-join's API polling ------------------------------------------
 * mediamtxsink's reader watch (gst/reader_watch.h) alone in this process, polling a published
 * path of the test server at --interval-ms for --seconds (a publisher and --readers WebRTC readers
 * run as gst-launch-1.0 children, so the answers have their real size). Reports the CPU time per
 * poll of the watch's thread (CLOCK_THREAD_CPUTIME_ID), of the whole process (getrusage, an idle
 * window of the same length subtracted) and of MediaMTX (/proc/PID/stat, idle subtracted). */

double thread_cpu_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

GPid spawn_gst_launch(const std::string &pipeline) {
  g_auto(GStrv) args = nullptr;
  std::string cmd = "gst-launch-1.0 -q " + pipeline;
  if (!g_shell_parse_argv(cmd.c_str(), nullptr, &args, nullptr))
    return 0;
  GPid pid = 0;
  if (!g_spawn_async(nullptr, args, nullptr, static_cast<GSpawnFlags>(G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL),
                     nullptr, nullptr, &pid, nullptr))
    return 0;
  return pid;
}

int run_poll_cost(const Options &o) {
  const int interval_ms = opt_int(o, "interval-ms", 20), seconds = opt_int(o, "seconds", 20);
  const int readers = opt_int(o, "readers", 0);
  testbed::MediamtxServer server;
  if (!start_server(server))
    return 1;
  std::vector<GPid> children;
  children.push_back(spawn_gst_launch("videotestsrc is-live=true ! video/x-raw,width=320,height=180,framerate=30/1 ! "
                                      "mediamtxsink keyframe-on-join=false location=" + server.rtsp_url("cam")));
  auto stop_children = [&] {
    for (GPid pid : children)
      if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, nullptr, 0);
      }
  };
  if (!server.wait_path_ready("cam", 15000)) {
    g_printerr("poll-cost: no publisher\n");
    stop_children();
    return 1;
  }
  for (int i = 0; i < readers; i++)
    children.push_back(spawn_gst_launch("whepsrc location=" + server.whep_url("cam") + " audio=false decode=false ! fakesink"));
  sleep_ms(opt_int(o, "settle-ms", 3000) + 300 * readers);
  const pid_t mtx = find_mediamtx_child();

  /* idle: the same process and server without polling */
  double self0 = cpu_seconds_self(), mtx0 = cpu_seconds_of(mtx);
  sleep_ms(seconds * 1000);
  const double idle_self = cpu_seconds_self() - self0, idle_mtx = cpu_seconds_of(mtx) - mtx0;

  gstmtx::EventLoop loop("mtx-readers");
  std::unique_ptr<gstmtx::HttpClient> http;
  std::unique_ptr<gstmtx::ReaderWatch> watch;
  std::atomic<int> ready{0};
  double thread0 = 0;
  unsigned requests0 = 0, parsed0 = 0;
  loop.run_sync([&] {
    http = std::make_unique<gstmtx::HttpClient>(loop, gstmtx::HttpClientConfig{});
    gstmtx::ReaderWatch::Config config;
    config.api_location = "http://127.0.0.1:" + std::to_string(server.api_port());
    config.path = "cam";
    config.interval = std::chrono::milliseconds(interval_ms);
    config.plain_http = opt(o, "client", "plain") == "plain";
    gstmtx::ReaderWatch::Events events;
    events.reader_ready = [&](const gstmtx::PathReader &) { ready++; };
    watch = std::make_unique<gstmtx::ReaderWatch>(loop, *http, config, events);
    watch->start();
  });
  sleep_ms(1000); /* connection made, first answers parsed */
  loop.run_sync([&] {
    thread0 = thread_cpu_ms();
    requests0 = watch->requests();
    parsed0 = watch->parsed();
  });
  self0 = cpu_seconds_self();
  mtx0 = cpu_seconds_of(mtx);
  sleep_ms(seconds * 1000);
  double thread_ms = 0, estimate_us = NAN;
  unsigned polls = 0, parsed = 0;
  int chosen_ms = 0;
  bool plain = false;
  loop.run_sync([&] {
    thread_ms = thread_cpu_ms() - thread0;
    polls = watch->requests() - requests0;
    parsed = watch->parsed() - parsed0;
    plain = watch->plain();
    chosen_ms = static_cast<int>(watch->interval().count());
    if (auto cost = watch->cpu_per_poll())
      estimate_us = static_cast<double>(cost->count()) / 1e3;
  });
  const double self_s = cpu_seconds_self() - self0 - idle_self, mtx_s = cpu_seconds_of(mtx) - mtx0 - idle_mtx;
  loop.run_sync([&] {
    watch.reset();
    http->cancel_all();
    http.reset();
  });
  const std::string body = server.api_get("paths/get/cam");
  stop_children();
  const double per_poll_thread_us = polls ? thread_ms * 1000 / polls : NAN;
  const double per_poll_process_us = polls ? self_s * 1e6 / polls : NAN;
  const double per_poll_mediamtx_us = polls ? mtx_s * 1e6 / polls : NAN;
  const char *client = plain ? "plain" : "libsoup";
  /* interval_ms 0: automatic; chosen_ms is the watch's interval at the end, estimate_us its own
   * smoothed measure of a poll's CPU (what it chose from) */
  printf("RESULT poll_cost client=%s interval_ms=%d chosen_ms=%d seconds=%d readers=%d body_bytes=%zu polls=%u "
         "parsed=%u readers_ready=%d thread_us_per_poll=%.1f estimate_us=%.1f process_us_per_poll=%.1f "
         "mediamtx_us_per_poll=%.1f thread_pct_at_interval=%.3f mediamtx_pct=%.3f\n",
         client, interval_ms, chosen_ms, seconds, readers, body.size(), polls, parsed, ready.load(), per_poll_thread_us,
         estimate_us, per_poll_process_us, per_poll_mediamtx_us, polls ? thread_ms / (seconds * 1000.0) * 100 : NAN,
         mtx_s / seconds * 100);
  CsvOut csv(o, "poll_cost", "client,interval_ms,seconds,readers,body_bytes,polls,parsed,thread_us_per_poll,"
                             "process_us_per_poll,mediamtx_us_per_poll,chosen_ms,estimate_us");
  csv.row(client, interval_ms, seconds, readers, body.size(), polls, parsed, per_poll_thread_us, per_poll_process_us,
          per_poll_mediamtx_us, chosen_ms, estimate_us);
  fflush(stdout);
  return polls > 0 && plain == (opt(o, "client", "plain") == "plain") ? 0 : 1;
}

int run_adapt(const Options &o) {
  const std::vector<AdaptConfig> all = {{"rtsp-off", "rtsp", 0},
                                        {"rtsp-on", "rtsp", 1},
                                        {"whip-off", "whip", 0},
                                        {"whip-on", "whip", 1},
                                        /* the server's NACKs not answered (as before retransmission) */
                                        {"whip-on-nortx", "whip", 1, "retransmission=false"},
                                        {"whipclientsink", "whipclientsink", -1}};
  const std::string wanted = "," + opt(o, "configs", "rtsp-off,rtsp-on,whip-off,whip-on,whipclientsink") + ",";
  int ran = 0, failed = 0;
  for (auto &c : all)
    if (wanted.find("," + c.name + ",") != std::string::npos)
      (run_adapt_config(o, c) ? ran : failed)++;
  return ran > 0 && failed == 0 ? 0 : 1;
}

/* ---- smoke ---------------------------------------------------------------------------------- */

int run_smoke(const Options &base) {
  int passed = 0, failed = 0;
  auto check = [&](bool ok, const std::string &what) {
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what.c_str());
    fflush(stdout);
    (ok ? passed : failed)++;
  };
  auto sane = [](const std::vector<double> &v, double lo, double hi) {
    return !v.empty() && percentile(v, 50) > lo && percentile(v, 99) < hi;
  };
  Options o = base;
  o["frames"] = "60";
  for (auto [pub, viewer] : {std::pair<const char *, const char *>{"rtsp", "whepsrc"}, {"whip", "whepsrc"},
                             {"rtsp", "rtspsrc"}}) {
    o["publisher"] = pub;
    o["viewer"] = viewer;
    auto r = run_latency(o);
    std::string what = std::string("latency ") + pub + " -> " + viewer;
    check(r.ok, what + ": 60 frames read back");
    check(sane(r.decoded, 0, 3000) && sane(r.display, 0, 3000), what + ": latencies positive and < 3 s");
    check(r.unreadable < 30, what + ": time code readable (" + std::to_string(r.unreadable) + " unreadable)");
  }
  o["viewer"] = "whepsrc";
  o["starts"] = "3";
  auto t = run_ttff(o);
  check(t.size() == 3, "ttff: 3 starts got a frame");
  bool parts = !t.empty();
  for (auto &s : t)
    parts = parts && s.answer > 0 && s.connected >= s.answer && s.total >= s.connected && s.total < 10000;
  check(parts, "ttff: handshake milestones ordered (answer <= connected <= first frame)");
  {
    /* fresh viewer processes (ttff-fresh's unit): a frame, and process start before PLAYING */
    testbed::MediamtxServer server;
    bool ok = start_server(server);
    auto pub = ok ? start_publisher(server, "rtsp", video_from(o), 30,
                                    "keyframe-on-join=true api-location=http://127.0.0.1:" +
                                        std::to_string(server.api_port()))
                  : nullptr;
    int got = 0;
    bool ordered = true;
    for (int i = 0; pub && i < 2; i++) {
      FreshSample s;
      if (!spawn_ttff_child(server.whep_url("cam"), &s))
        continue;
      got++;
      ordered = ordered && s.from_process >= s.from_playing && s.from_playing > 0 && s.offer >= 0 &&
                s.connected >= s.offer && s.from_playing >= s.connected;
    }
    check(got == 2, "ttff-fresh: 2 fresh viewer processes got a frame");
    check(got > 0 && ordered, "ttff-fresh: spawn <= PLAYING <= offer <= connected <= first frame");
  }
  {
    /* ttff-trace's unit: one fresh viewer traced from the forced keyframe to the decoded picture */
    Options t = o;
    t["fresh"] = "1";
    t["starts"] = "1";
    t["keyint-s"] = "4";
    check(run_ttff_trace(t) == 0, "ttff-trace: every milestone of a fresh viewer's first keyframe, in order");
    /* poll-cost's unit: the reader watch polls over plain HTTP and reports its CPU */
    Options p = o;
    p["interval-ms"] = "20";
    p["seconds"] = "1";
    p["settle-ms"] = "500";
    check(run_poll_cost(p) == 0, "poll-cost: the reader watch polled the path over plain HTTP");
  }
  o["runs"] = "1";
  auto rec = run_recovery(o);
  check(rec.size() == 1 && rec[0].first_frame > 0 && rec[0].path_ready > 0,
        "recovery: viewer and publisher back after a server restart");
  auto kids = run_children(1, {"--role=publish", "--pipeline=videotestsrc num-buffers=300 is-live=true ! "
                                                 "identity name=counted ! fakesink",
                               "--warm-s=1", "--window-s=2"});
  check(kids.size() == 1 && kids[0].cpu_pct >= 0 && kids[0].rss > 0 && kids[0].frames > 30,
        "cost: child process reports CPU, peak RSS and frames");
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

void usage() {
  printf(
      "Usage: mtx-bench COMMAND [--key=value ...]   (inside tests/testbed/netns-run.sh)\n"
      "  latency   --publisher=rtsp|whip --viewer=whepsrc|rtspsrc --latency=MS --frames=N [--height=720]\n"
      "  ttff      --viewer=whepsrc|rtspsrc --keyint-s=S --starts=N\n"
      "  ttff-fresh --keyints=1,2,4 --keyframe-on-join=false,true --starts=N [--chromium-script=JS\n"
      "             --chromium-starts=N]: a fresh viewer process per start, from spawn and from PLAYING\n"
      "  ttff-trace --keyint-s=S --keyframe-on-join=true|false --starts=N [--fresh --latency=50\n"
      "             --viewer-extra=PROPS --publisher-extra=PROPS]: where the first frame's time goes, probe by\n"
      "             probe (--fresh: each viewer a new process, latency 50, no extra properties)\n"
      "  cert      --runs=N: DTLS certificate cost of a fresh process, stock vs ours\n"
      "  poll-cost --interval-ms=20 --seconds=20 [--readers=0 --client=plain|soup]: CPU per poll of\n"
      "             keyframe-on-join's reader watch (plain: PlainHttpGet, soup: libsoup's HttpClient;\n"
      "             --interval-ms=0: the watch's automatic interval, chosen from its CPU per poll)\n"
      "  recovery  --runs=N --outage-ms=MS --retry-delay=MS [--keyint=FRAMES]\n"
      "  cost      --viewers=1,2,4 --decoded-viewers=1,2 [--warm-s=4 --window-s=10 --common-window=1 --publishers=1]\n"
      "  adapt     [--configs=rtsp-off,rtsp-on,whip-off,whip-on,whip-on-nortx,whipclientsink] [--steps=4000,1000,500,4000]\n"
      "            [--step-s=15 --last-step-s=20 --warm-s=5 --settle-s=5 --bitrate=2500 --min-bitrate=KBPS]\n"
      "            [--latency=50]\n"
      "            [--tbf-burst=20kb --tbf-latency-ms=200 --loss=PCT --rs-plugins=DIR]  publisher uplink steps (tc tbf),\n"
      "            three hosts; whipclientsink needs DIR (or RS_REFERENCE_PLUGIN_DIR) from\n"
      "            tests/bench/build-rs-reference.sh\n"
      "  smoke     quick run of all of the above with sanity checks; ends with 'N passed, N failed'\n"
      "Common: --out=DIR (append raw samples to DIR/*.csv), --height=720|1080, --bitrate=KBPS\n"
      "Needs MEDIAMTX_BIN and GST_PLUGIN_PATH (tests/run.sh and tests/bench/run.sh set them).\n");
}

}  // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage();
    return argc < 2 ? 1 : 0;
  }
  std::string cmd = argv[1];
  Options o = parse_options(argc, argv, 2);
  if (cmd == "child")
    return child_main(o);
  if (cmd == "ttff-child")
    return ttff_child_main(o);
  if (cmd == "cert-child")
    return cert_child_main(o);
  if (cmd == "cert")
    return run_cert(o);
  if (cmd != "smoke" && !testbed::in_test_namespace()) {
    g_printerr("run inside tests/testbed/netns-run.sh\n");
    return 1;
  }
  if (cmd == "latency")
    return run_latency(o).ok ? 0 : 1;
  if (cmd == "ttff")
    return run_ttff(o).empty() ? 1 : 0;
  if (cmd == "ttff-fresh")
    return run_ttff_fresh(o);
  if (cmd == "ttff-trace")
    return run_ttff_trace(o);
  if (cmd == "recovery")
    return run_recovery(o).empty() ? 1 : 0;
  if (cmd == "cost")
    return run_cost(o);
  if (cmd == "poll-cost")
    return run_poll_cost(o);
  if (cmd == "adapt")
    return run_adapt(o);
  if (cmd == "smoke")
    return run_smoke(o);
  usage();
  return 1;
}
