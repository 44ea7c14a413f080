/* mediamtxsink against a real MediaMTX (one per test, private network namespace). */
#include <gst/check/gstcheck.h>

#include <gst/base/gstbasesink.h>

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

static const char *kRawVideo = kLiveTestVideo;

static bool reader_gets_frames(const MediamtxServer &server, const std::string &path, int width, int height) {
  TestPipeline reader(rtsp_h264_reader(server, path, "mediamtxsink-test"), "sink");
  bool ok = reader.play() && wait_until([&] { return reader.frames.count() >= 10; }, 15000);
  if (!ok)
    g_printerr("reader got %d frames\n", reader.frames.count());
  if (ok && width > 0) {
    ok = reader.frames.width() == width && reader.frames.height() == height;
    if (!ok)
      g_printerr("reader got %dx%d\n", reader.frames.width(), reader.frames.height());
  }
  return ok;
}

/* A publishing pipeline whose mediamtxsink is named "pub". */
struct Publisher : TestPipeline {
  explicit Publisher(const std::string &description, const char *counted = nullptr)
      : TestPipeline(description, counted) {}
  std::string state() const { return stats_string("pub", "state"); }
  std::string stat(const char *field) const { return stats_string("pub", field); }
  guint64 stat_uint64(const char *field) const { return stats_uint64("pub", field); }
};

/* The domain and code of the first error on a pipeline's bus (recorded from a sync handler). */
struct FirstError {
  explicit FirstError(TestPipeline &p) : pipeline(p) {
    pipeline.bus.set_sync_action([this](GstMessage *msg) {
      if (GST_MESSAGE_TYPE(msg) != GST_MESSAGE_ERROR)
        return;
      GError *err = nullptr;
      gst_message_parse_error(msg, &err, nullptr);
      std::lock_guard<std::mutex> guard(lock);
      if (!domain) {
        domain = err->domain;
        code = err->code;
      }
      g_clear_error(&err);
    });
  }
  ~FirstError() { pipeline.bus.set_sync_action(nullptr); }
  bool is(GQuark d, int c) {
    std::lock_guard<std::mutex> guard(lock);
    if (domain == d && code == c)
      return true;
    g_printerr("first error: %s/%d\n", domain ? g_quark_to_string(domain) : "none", code);
    return false;
  }
  TestPipeline &pipeline;
  std::mutex lock;
  GQuark domain = 0;
  int code = 0;
};

/* The element's connection-state property, as its nick ("connected"...). */
static std::string connection_state(GstElement *pipeline) {
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "pub");
  fail_unless(sink != nullptr);
  gint value = 0;
  g_object_get(sink, "connection-state", &value, nullptr);
  GParamSpec *pspec = g_object_class_find_property(G_OBJECT_GET_CLASS(sink), "connection-state");
  GEnumValue *nick = g_enum_get_value(G_PARAM_SPEC_ENUM(pspec)->enum_class, value);
  gst_object_unref(sink);
  return nick ? nick->value_nick : "";
}

/* True when an element whose klass says "Encoder" is anywhere inside `bin`. */
static bool bin_has_encoder(GstBin *bin) {
  bool found = false;
  GstIterator *it = gst_bin_iterate_recurse(bin);
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    GstElement *element = GST_ELEMENT(g_value_get_object(&item));
    GstElementFactory *factory = gst_element_get_factory(element);
    const char *klass = factory ? gst_element_factory_get_metadata(factory, GST_ELEMENT_METADATA_KLASS) : nullptr;
    if (klass && strstr(klass, "Encoder"))
      found = true;
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  return found;
}

GST_START_TEST(test_publish_raw_video) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub location=" +
                server.rtsp_url("cam"));
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000), "path never ready: %s", server.read_log().c_str());
  fail_unless(reader_gets_frames(server, "cam", 320, 240));

  /* encoder=auto says what it picked, on the bus and in the stats */
  fail_unless_equals_int(pub.bus.count_element_messages("mediamtxsink-encoder", "encoder", "x264enc"), 1);
  std::string encoder = pub.stat("encoder");
  fail_unless_equals_string(encoder.c_str(), "x264enc");
  std::string state = pub.state();
  fail_unless_equals_string(state.c_str(), "connected");
  fail_unless(pub.stat_uint64("frames-sent") > 10);
  fail_unless(pub.stat_uint64("bytes-sent") > 1000);
  fail_unless(pub.bus.count_element_messages("gst-mediamtx-status", "state", "connected") >= 1);
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
}
GST_END_TEST;

/* rtspclientsink's sinks wait on the clock with a live source (~29 ms, docs/architecture.md): inside
 * mediamtxsink they must not. */
GST_START_TEST(test_no_clock_wait_before_the_network) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub location=" +
                server.rtsp_url("cam"));
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000));

  int sinks = 0;
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pub.pipeline), "pub");
  GstIterator *it = gst_bin_iterate_recurse(GST_BIN(sink));
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    GstElement *element = GST_ELEMENT(g_value_get_object(&item));
    if (GST_IS_BASE_SINK(element) && g_str_has_prefix(GST_OBJECT_NAME(element), "appsink")) {
      fail_if(gst_base_sink_get_sync(GST_BASE_SINK(element)), "%s syncs on the clock", GST_OBJECT_NAME(element));
      ++sinks;
    }
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  fail_unless(sinks >= 1, "no rtspclientsink sinks found");
  gst_object_unref(sink);
}
GST_END_TEST;

GST_START_TEST(test_publish_over_udp) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub rtsp-transport=udp location=" +
                server.rtsp_url("cam"));
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000), "path never ready: %s", server.read_log().c_str());
  fail_unless(reader_gets_frames(server, "cam", 320, 240));
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
}
GST_END_TEST;

GST_START_TEST(test_h264_passthrough) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub(std::string(kRawVideo) +
                " ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=500 ! "
                "mediamtxsink name=pub location=" + server.rtsp_url("cam"));
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000), "path never ready: %s", server.read_log().c_str());
  fail_unless(reader_gets_frames(server, "cam", 320, 240));
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pub.pipeline), "pub");
  fail_if(bin_has_encoder(GST_BIN(sink)), "H.264 input must not be re-encoded");
  gst_object_unref(sink);
  std::string encoder = pub.stat("encoder");
  fail_unless_equals_string(encoder.c_str(), "none");
  fail_unless_equals_int(pub.bus.count_element_messages("mediamtxsink-encoder"), 0);
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
}
GST_END_TEST;

GST_START_TEST(test_h265_passthrough) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub(std::string(kRawVideo) + " ! x265enc tune=zerolatency speed-preset=ultrafast "
                "key-int-max=30 bitrate=500 ! mediamtxsink name=pub location=" +
                server.rtsp_url("cam"));
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000), "path never ready: %s", server.read_log().c_str());
  std::string info = server.api_get("paths/get/cam");
  fail_unless(info.find("\"H265\"") != std::string::npos, "no H265 track: %s", info.c_str());
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pub.pipeline), "pub");
  fail_if(bin_has_encoder(GST_BIN(sink)), "H.265 input must not be re-encoded");
  gst_object_unref(sink);
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
}
GST_END_TEST;

GST_START_TEST(test_audio_arrives_as_opus) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub location=" +
                server.rtsp_url("cam") + " audiotestsrc is-live=true ! pub.audio");
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000), "path never ready: %s", server.read_log().c_str());
  std::string info = server.api_get("paths/get/cam");
  fail_unless(info.find("\"Opus\"") != std::string::npos, "no Opus track: %s", info.c_str());
  fail_unless(info.find("\"H264\"") != std::string::npos, "no H264 track: %s", info.c_str());
  fail_unless(reader_gets_frames(server, "cam", 320, 240));
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
}
GST_END_TEST;

/* rtsp_transport: tcp or udp over RTSP; nullptr: over WHIP */
static void check_server_restart(const char *rtsp_transport) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  const int retry_ms = 500, max_retry_ms = 1000;
  const std::string transport = rtsp_transport ? std::string("rtsp-transport=") + rtsp_transport +
                                                     " location=" + server.rtsp_url("cam")
                                               : "transport=whip location=" + server.whip_url("cam");
  Publisher pub(std::string(kRawVideo) + " ! identity name=camera ! mediamtxsink name=pub " +
                transport + " retry-delay=" + std::to_string(retry_ms) + " max-retry-delay=" +
                std::to_string(max_retry_ms), "camera");
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000));
  fail_unless(wait_until([&] { return pub.state() == "connected"; }, 5000), "state %s", pub.state().c_str());
  fail_unless_equals_int(static_cast<int>(pub.stat_uint64("sessions")), 1);
  fail_unless_equals_int(static_cast<int>(pub.stat_uint64("reconnects")), 0);
  fail_unless_equals_int(static_cast<int>(pub.stat_uint64("attempts")), 0);
  const std::string connection = connection_state(pub.pipeline);
  fail_unless_equals_string(connection.c_str(), "connected");

  server.kill_hard();
  /* the camera keeps flowing while the server is gone, and the sink drops and counts */
  int before = pub.frames.count();
  fail_unless(wait_until([&] { return pub.state() == "reconnecting"; }, 10000),
              "state %s", pub.state().c_str());
  fail_unless(wait_until([&] { return pub.frames.count() >= before + 45; }, 10000), "camera blocked: %d -> %d", before,
              pub.frames.count());
  fail_unless(wait_until([&] { return pub.stat_uint64("frames-dropped") > 10; }, 5000));
  fail_unless(pub.bus.count_element_messages("gst-mediamtx-status", "state", "reconnecting") >= 1);

  fail_unless(server.start());
  gint64 back = g_get_monotonic_time();
  fail_unless(server.wait_path_ready("cam", 15000), "path not ready again: %s", server.read_log().c_str());
  gint64 took_ms = (g_get_monotonic_time() - back) / 1000;
  g_print("path ready again %" G_GINT64_FORMAT " ms after the server returned\n", took_ms);
  /* server return + one retry delay + 1 s, with slack for a loaded 2-core machine */
  fail_unless(took_ms <= max_retry_ms + 1000 + 1000, "took %" G_GINT64_FORMAT " ms", took_ms);
  fail_unless(reader_gets_frames(server, "cam", 320, 240));
  std::string state = pub.state();
  fail_unless_equals_string(state.c_str(), "connected");
  /* the outage is over once media flows again: attempts back to 0; every retry was a session */
  fail_unless_equals_int(static_cast<int>(pub.stat_uint64("attempts")), 0);
  fail_unless(pub.stat_uint64("reconnects") >= 1);
  fail_unless_equals_int(static_cast<int>(pub.stat_uint64("sessions")),
                         static_cast<int>(pub.stat_uint64("reconnects")) + 1);
  fail_if(pub.stat("last-error").empty(), "no last-error after the outage");
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
}

/* Audio added to a running publisher: RTSP announces every stream up front, so the element
 * opens a new session with both tracks. */
GST_START_TEST(test_audio_added_while_publishing) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub location=" +
                server.rtsp_url("cam"));
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000));
  fail_unless(server.api_get("paths/get/cam").find("\"Opus\"") == std::string::npos);

  GstElement *audio = gst_element_factory_make("audiotestsrc", nullptr);
  g_object_set(audio, "is-live", TRUE, nullptr);
  gst_bin_add(GST_BIN(pub.pipeline), audio);
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pub.pipeline), "pub");
  GstPad *audio_pad = gst_element_request_pad_simple(sink, "audio");
  fail_unless(audio_pad != nullptr);
  GstPad *src = gst_element_get_static_pad(audio, "src");
  fail_unless_equals_int(gst_pad_link(src, audio_pad), GST_PAD_LINK_OK);
  gst_element_sync_state_with_parent(audio);
  fail_unless(wait_until([&] {
    std::string info = server.api_get("paths/get/cam");
    return info.find("\"Opus\"") != std::string::npos && info.find("\"ready\":true") != std::string::npos;
  }, 10000), "no Opus track: %s", server.api_get("paths/get/cam").c_str());
  fail_unless(reader_gets_frames(server, "cam", 320, 240));
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
  gst_object_unref(src);
  gst_object_unref(audio_pad);
  gst_object_unref(sink);
}
GST_END_TEST;

GST_START_TEST(test_server_restart_keeps_publishing) { check_server_restart("tcp"); }
GST_END_TEST;

GST_START_TEST(test_server_restart_keeps_publishing_udp) { check_server_restart("udp"); }
GST_END_TEST;

/* How each connection attempt's video began: was there an SPS before the first slice, and was
 * that slice an IDR? (The parser may send whole access units or single NAL units.) */
struct FirstFrames {
  std::mutex lock;
  std::vector<std::pair<bool, bool>> frames; /* (first slice is IDR, SPS before it) */
};

struct ConnectionStart {
  FirstFrames *first;
  bool sps = false;
};

/* NAL unit types in a buffer, byte-stream (start codes) or avc (4-byte lengths). */
static std::vector<int> nal_types(GstPad *pad, GstBuffer *buffer) {
  GstCaps *caps = gst_pad_get_current_caps(pad);
  const char *format = caps ? gst_structure_get_string(gst_caps_get_structure(caps, 0), "stream-format") : nullptr;
  const bool avc = format && g_str_has_prefix(format, "avc");
  if (caps)
    gst_caps_unref(caps);
  std::vector<int> types;
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ))
    return types;
  if (avc) {
    for (gsize i = 0; i + 4 < map.size;) {
      gsize len = (gsize(map.data[i]) << 24) | (gsize(map.data[i + 1]) << 16) | (gsize(map.data[i + 2]) << 8) |
                  map.data[i + 3];
      types.push_back(map.data[i + 4] & 0x1f);
      i += 4 + len;
    }
  } else {
    for (gsize i = 0; i + 3 < map.size; ++i) {
      if (map.data[i] == 0 && map.data[i + 1] == 0 && map.data[i + 2] == 1)
        types.push_back(map.data[i + 3] & 0x1f);
    }
  }
  gst_buffer_unmap(buffer, &map);
  return types;
}

static GstPadProbeReturn on_network_buffer(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *start = static_cast<ConnectionStart *>(data);
  int slice = 0;
  for (int type : nal_types(pad, GST_PAD_PROBE_INFO_BUFFER(info))) {
    if (type == 7)
      start->sps = true;
    else if ((type == 1 || type == 5) && !slice)
      slice = type;
    if (slice)
      break;
  }
  if (!slice)
    return GST_PAD_PROBE_OK;
  std::lock_guard<std::mutex> lk(start->first->lock);
  start->first->frames.emplace_back(slice == 5, start->sps);
  return GST_PAD_PROBE_REMOVE;
}

static void on_network_element(GstBin *, GstBin *, GstElement *element, gpointer data) {
  const char *name = GST_OBJECT_NAME(element);
  if (!g_str_has_prefix(name, "mtx-net-") || !g_str_has_suffix(name, "-video-queue"))
    return;
  GstPad *pad = gst_element_get_static_pad(element, "sink");
  auto *start = new ConnectionStart{static_cast<FirstFrames *>(data)};
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, on_network_buffer, start,
                    [](gpointer p) { delete static_cast<ConnectionStart *>(p); });
  gst_object_unref(pad);
}

GST_START_TEST(test_every_connection_starts_with_a_keyframe) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  /* a long GOP: without a forced keyframe the reconnection would start mid-GOP */
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub keyframe-interval=300 "
                "retry-delay=300 max-retry-delay=600 location=" + server.rtsp_url("cam"));
  FirstFrames first;
  g_signal_connect(pub.pipeline, "deep-element-added", G_CALLBACK(on_network_element), &first);
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000));
  g_usleep(1500 * 1000); /* well into the GOP */
  server.kill_hard();
  fail_unless(wait_until([&] { return pub.state() == "reconnecting"; }, 10000));
  fail_unless(server.start());
  fail_unless(server.wait_path_ready("cam", 10000));
  fail_unless(reader_gets_frames(server, "cam", 320, 240));
  {
    std::lock_guard<std::mutex> lk(first.lock);
    fail_unless(first.frames.size() >= 2, "%zu connections seen", first.frames.size());
    for (std::size_t i = 0; i < first.frames.size(); ++i) {
      fail_unless(first.frames[i].first, "connection %zu started with a non-IDR slice", i);
      fail_unless(first.frames[i].second, "connection %zu: no SPS before the first slice", i);
    }
  }
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
}
GST_END_TEST;

GST_START_TEST(test_server_down_at_start) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start()); /* chooses the ports */
  server.kill_hard();
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub retry-delay=300 "
                "max-retry-delay=1000 location=" + server.rtsp_url("cam"));
  fail_unless(pub.play());
  fail_unless(wait_until([&] { return pub.bus.count_element_messages("gst-mediamtx-status", "state", "reconnecting") >= 2; },
                         10000));
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
  GstState state;
  gst_element_get_state(pub.pipeline, &state, nullptr, 0);
  fail_unless_equals_int(state, GST_STATE_PLAYING);

  fail_unless(server.start());
  fail_unless(server.wait_path_ready("cam", 10000), "never published: %s", server.read_log().c_str());
  fail_unless(reader_gets_frames(server, "cam", 320, 240));
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
}
GST_END_TEST;

GST_START_TEST(test_gives_up_after_max_retries) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start()); /* chooses the ports */
  server.kill_hard();
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub max-retries=2 retry-delay=100 "
                "location=" + server.rtsp_url("cam"));
  FirstError first(pub);
  fail_unless(pub.play());
  fail_unless(wait_until([&] { return !pub.bus.errors().empty(); }, 10000), "never gave up");
  std::string error = pub.bus.errors().front();
  /* the controller's give-up text (retry budget spent), then what failed and what to check */
  fail_unless(error.find("Gave up after 3 attempts") != std::string::npos, "%s", error.c_str());
  fail_unless(error.find("could not publish to") != std::string::npos, "%s", error.c_str());
  fail_unless_equals_int(pub.bus.count_element_messages("gst-mediamtx-status", "state", "reconnecting"), 2);
  fail_unless(pub.bus.count_element_messages("gst-mediamtx-status", "state", "failed") == 1);
  std::string state = pub.state();
  fail_unless_equals_string(state.c_str(), "failed");
  fail_unless(first.is(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_WRITE));
}
GST_END_TEST;

GST_START_TEST(test_encoder_falls_back_to_openh264) {
  fail_unless(in_test_namespace());
  /* x264enc gone from this process's registry (each check test runs in its own process) */
  GstPluginFeature *x264 = gst_registry_lookup_feature(gst_registry_get(), "x264enc");
  fail_unless(x264 != nullptr);
  gst_registry_remove_feature(gst_registry_get(), x264);
  gst_object_unref(x264);
  fail_unless(gst_element_factory_find("x264enc") == nullptr);

  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub location=" +
                server.rtsp_url("cam"));
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000), "path never ready: %s", server.read_log().c_str());
  fail_unless_equals_int(pub.bus.count_element_messages("mediamtxsink-encoder", "encoder", "openh264enc"), 1);
  std::string encoder = pub.stat("encoder");
  fail_unless_equals_string(encoder.c_str(), "openh264enc");
  fail_unless(reader_gets_frames(server, "cam", 320, 240));
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
}
GST_END_TEST;

GST_START_TEST(test_server_and_path) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub path=raspberry-01 server=" +
                server.host() + ":" + std::to_string(server.rtsp_port()));
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("raspberry-01", 10000), "path never ready: %s", server.read_log().c_str());
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
  pub.stop();

  /* neither location nor server and path */
  Publisher nowhere(std::string(kRawVideo) + " ! mediamtxsink name=pub");
  fail_unless_equals_int(gst_element_set_state(nowhere.pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  fail_unless(wait_until([&] { return !nowhere.bus.errors().empty(); }, 5000));
  std::string error = nowhere.bus.errors().front();
  fail_unless(error.find("nowhere to publish") != std::string::npos, "%s", error.c_str());
}
GST_END_TEST;

GST_START_TEST(test_missing_encoder_is_an_error) {
  fail_unless(in_test_namespace());
  Publisher pub(std::string(kRawVideo) +
                " ! mediamtxsink name=pub encoder=nosuchh264enc location=rtsp://" +
                server_address() + ":8554/cam");
  fail_unless_equals_int(gst_element_set_state(pub.pipeline, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  fail_unless(wait_until([&] { return !pub.bus.errors().empty(); }, 5000));
  std::string error = pub.bus.errors().front();
  fail_unless(error.find("'nosuchh264enc' is not installed") != std::string::npos, "%s", error.c_str());
}
GST_END_TEST;

/* Another publisher holds the path (MediaMTX with overridePublisher: false): keep retrying with
 * the camera flowing and no error, publish once the path is free. */
GST_START_TEST(test_path_taken_by_another_publisher) {
  fail_unless(in_test_namespace());
  MediamtxOptions options;
  options.paths = "  all_others:\n    overridePublisher: false\n";
  MediamtxServer server(options);
  fail_unless(server.start());
  TestPipeline other(std::string(kRawVideo) + " ! x264enc tune=zerolatency speed-preset=ultrafast ! "
                     "rtspclientsink protocols=tcp location=" + server.rtsp_url("cam"));
  fail_unless(other.play());
  fail_unless(server.wait_path_ready("cam", 10000));
  Publisher pub(std::string(kRawVideo) + " ! identity name=camera ! mediamtxsink name=pub "
                "retry-delay=300 max-retry-delay=600 location=" + server.rtsp_url("cam"),
                "camera");
  fail_unless(pub.play());
  fail_unless(wait_until([&] { return pub.bus.count_element_messages("gst-mediamtx-status", "state", "reconnecting") >= 2; },
                         15000), "no retries while the path is taken");
  int before = pub.frames.count();
  fail_unless(wait_until([&] { return pub.frames.count() >= before + 30; }, 5000), "camera blocked");
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
  /* the other publisher leaves: ours takes the path */
  other.stop();
  fail_unless(wait_until([&] { return pub.state() == "connected"; }, 15000), "state %s",
              pub.state().c_str());
  fail_unless(server.wait_path_ready("cam", 10000));
  fail_unless(reader_gets_frames(server, "cam", 320, 240));
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
}
GST_END_TEST;

/* WHIP: the same WebRTC-HTTP session code as whepsrc, publishing side. */
GST_START_TEST(test_publish_whip) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub transport=whip location=" +
                server.whip_url("cam") + " audiotestsrc is-live=true ! pub.audio");
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000), "path never ready: %s", server.read_log().c_str());
  std::string info = server.api_get("paths/get/cam");
  fail_unless(info.find("webRTCSession") != std::string::npos, "not published over WebRTC: %s", info.c_str());
  fail_unless(info.find("\"Opus\"") != std::string::npos, "no Opus track: %s", info.c_str());
  fail_unless(info.find("\"H264\"") != std::string::npos, "no H264 track: %s", info.c_str());
  /* an RTSP reader and a WHEP reader both get decoded frames of the right size */
  fail_unless(reader_gets_frames(server, "cam", 320, 240));
  {
    TestPipeline viewer("whepsrc name=src audio=false location=" + server.whep_url("cam") +
                            " ! fakesink name=sink sync=false async=false",
                        "sink");
    fail_unless(viewer.play());
    fail_unless(wait_until([&] { return viewer.frames.count() >= 10; }, 15000), "whepsrc got %d frames",
                viewer.frames.count());
    fail_unless_equals_int(viewer.frames.width(), 320);
  }
  const std::string state = pub.state();
  fail_unless_equals_string(state.c_str(), "connected");
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
  pub.stop();
  /* the WHIP session was DELETEd: the path is free at once */
  fail_unless(wait_until([&] { return !server.path_ready("cam"); }, 3000), "WHIP session left on the server");
}
GST_END_TEST;

GST_START_TEST(test_whip_server_restart_keeps_publishing) { check_server_restart(nullptr); }
GST_END_TEST;

GST_START_TEST(test_whip_rejects_h265) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub(std::string(kRawVideo) + " ! x265enc speed-preset=ultrafast tune=zerolatency ! "
                "mediamtxsink name=pub transport=whip location=" + server.whip_url("cam"));
  FirstError first(pub);
  gst_element_set_state(pub.pipeline, GST_STATE_PLAYING);
  fail_unless(wait_until([&] { return !pub.bus.errors().empty(); }, 10000));
  std::string error = pub.bus.errors().front();
  fail_unless(error.find("transport=rtsp") != std::string::npos, "%s", error.c_str());
  /* a setting that cannot work (typed Config), not a missing plugin nor refused credentials */
  fail_unless(first.is(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS));
}
GST_END_TEST;

/* An https WHIP location with a CA file that cannot be read: refused at READY->PAUSED. */
GST_START_TEST(test_whip_unusable_ca_file) {
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub transport=whip "
                "tls-ca-file=/nonexistent/ca.pem location=https://127.0.0.1:8889/cam/whip");
  FirstError first(pub);
  gst_element_set_state(pub.pipeline, GST_STATE_PLAYING);
  fail_unless(wait_until([&] { return !pub.bus.errors().empty(); }, 5000));
  std::string error = pub.bus.errors().front();
  fail_unless(error.find("tls-ca-file") != std::string::npos, "%s", error.c_str());
  fail_unless(first.is(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS));
}
GST_END_TEST;

GST_START_TEST(test_eos_ends_session) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  Publisher pub("videotestsrc is-live=true num-buffers=60 ! "
                "video/x-raw,width=320,height=240,framerate=30/1 ! mediamtxsink name=pub location=" +
                server.rtsp_url("cam"));
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000), "path never ready: %s", server.read_log().c_str());
  fail_unless(wait_until([&] { return pub.bus.eos_count() >= 1; }, 10000), "no EOS from the pipeline");
  /* the session ends with the stream, not when the application stops the pipeline */
  fail_unless(wait_until([&] { return !server.path_ready("cam"); }, 5000), "path still published after EOS");
  /* Normally an RTSP TEARDOWN; rtspclientsink 1.22 sometimes leaves its CLOSE command pending
   * behind its receive loop (PAUSE answered before CLOSE is queued), and then the session ends
   * with the TCP close a moment later. Either way the server ends the session at once. */
  bool teardown = wait_until([&] { return server.read_log().find("torn down") != std::string::npos; }, 2000);
  g_print("session ended by %s\n", teardown ? "RTSP TEARDOWN" : "TCP close");
  g_usleep(200 * 1000);
  fail_unless_equals_int(pub.bus.eos_count(), 1);
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
}
GST_END_TEST;

/* An application that stops the pipeline from a synchronous bus handler when mediamtxsink reports
 * `state`: the handler runs on the element's control thread, which must not wait for itself. The
 * element then plays again. */
static void check_stop_from_bus_handler(const char *state, bool server_up) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  if (!server_up)
    server.kill_hard();
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub retry-delay=100 location=" +
                server.rtsp_url("cam"));
  fail_unless(play_and_stop_on_status(pub, state, 15000), "not stopped on %s", state);
  if (!server_up)
    fail_unless(server.start());
  else
    fail_unless(wait_until([&] { return !server.path_ready("cam"); }, 5000), "still published after the stop");
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000), "not published again: %s", server.read_log().c_str());
}

GST_START_TEST(test_stop_from_bus_handler_connecting) { check_stop_from_bus_handler("connecting", true); }
GST_END_TEST;

GST_START_TEST(test_stop_from_bus_handler_connected) { check_stop_from_bus_handler("connected", true); }
GST_END_TEST;

GST_START_TEST(test_stop_from_bus_handler_reconnecting) { check_stop_from_bus_handler("reconnecting", false); }
GST_END_TEST;

static MediamtxOptions auth_options() {
  MediamtxOptions options;
  options.auth_users =
      "  - user: publisher\n"
      "    pass: s3cret-pw\n"
      "    permissions:\n"
      "      - action: publish\n"
      "      - action: read\n"
      "  - user: any\n"
      "    pass:\n"
      "    ips: ['127.0.0.1', '::1']\n"
      "    permissions:\n"
      "      - action: api\n";
  return options;
}

GST_START_TEST(test_wrong_credentials_are_an_error) {
  fail_unless(in_test_namespace());
  MediamtxServer server(auth_options());
  fail_unless(server.start());
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub user-id=publisher "
                "user-pw=wrong-pw-123 location=" + server.rtsp_url("cam"));
  FirstError first(pub);
  fail_unless(pub.play());
  fail_unless(wait_until([&] { return !pub.bus.errors().empty(); }, 15000), "no error for wrong credentials");
  std::string error = pub.bus.errors().front();
  fail_unless(error.find("refused the credentials") != std::string::npos, "%s", error.c_str());
  fail_unless(error.find("wrong-pw-123") == std::string::npos, "password leaked: %s", error.c_str());
  fail_unless(error.find("set user-id and user-pw") != std::string::npos, "%s", error.c_str());
  std::string state = pub.state();
  fail_unless_equals_string(state.c_str(), "failed");
  /* rtspclientsink's refusal is typed Unauthorized: one attempt, no retries */
  fail_unless(first.is(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_AUTHORIZED));
  fail_unless_equals_int(pub.bus.count_element_messages("gst-mediamtx-status", "state", "reconnecting"), 0);
}
GST_END_TEST;

GST_START_TEST(test_credentials_from_location) {
  fail_unless(in_test_namespace());
  MediamtxServer server(auth_options());
  fail_unless(server.start());
  std::string url = server.rtsp_url("cam");
  url.replace(url.find("rtsp://"), 7, "rtsp://publisher:s3cret-pw@");
  Publisher pub(std::string(kRawVideo) + " ! mediamtxsink name=pub location=" + url);
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000), "path never ready: %s", server.read_log().c_str());
  std::string location = pub.stat("location");
  fail_unless(location.find("s3cret-pw") == std::string::npos, "password in stats: %s", location.c_str());
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
}
GST_END_TEST;

static Suite *mediamtxsink_suite(void) {
  Suite *s = suite_create("mediamtxsink");
  TCase *tc = tcase_create("element");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_publish_raw_video);
  tcase_add_test(tc, test_no_clock_wait_before_the_network);
  tcase_add_test(tc, test_publish_over_udp);
  tcase_add_test(tc, test_h264_passthrough);
  tcase_add_test(tc, test_h265_passthrough);
  tcase_add_test(tc, test_audio_arrives_as_opus);
  tcase_add_test(tc, test_audio_added_while_publishing);
  tcase_add_test(tc, test_server_restart_keeps_publishing);
  tcase_add_test(tc, test_server_restart_keeps_publishing_udp);
  tcase_add_test(tc, test_eos_ends_session);
  tcase_add_test(tc, test_every_connection_starts_with_a_keyframe);
  tcase_add_test(tc, test_server_down_at_start);
  tcase_add_test(tc, test_gives_up_after_max_retries);
  tcase_add_test(tc, test_encoder_falls_back_to_openh264);
  tcase_add_test(tc, test_server_and_path);
  tcase_add_test(tc, test_missing_encoder_is_an_error);
  tcase_add_test(tc, test_publish_whip);
  tcase_add_test(tc, test_path_taken_by_another_publisher);
  tcase_add_test(tc, test_whip_server_restart_keeps_publishing);
  tcase_add_test(tc, test_whip_rejects_h265);
  tcase_add_test(tc, test_whip_unusable_ca_file);
  tcase_add_test(tc, test_wrong_credentials_are_an_error);
  tcase_add_test(tc, test_credentials_from_location);
  tcase_add_test(tc, test_stop_from_bus_handler_connecting);
  tcase_add_test(tc, test_stop_from_bus_handler_connected);
  tcase_add_test(tc, test_stop_from_bus_handler_reconnecting);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(mediamtxsink);
