/* whip_publisher: a test helper that publishes a videotestsrc pattern as H.264 over WHIP, built on
 * the project's gst/ library (WebrtcPeer drives webrtcbin through the WHIP exchange). Stands in for
 * `mediamtxsink transport=whip` in the browser interop tests until that element is merged.
 *
 *   whip_publisher WHIP_URL [PATTERN [WIDTH HEIGHT]]
 *
 * Prints "connected" on stdout once the peer connection is up; runs until SIGINT/SIGTERM, then
 * DELETEs its WHIP resource and exits 0. Exits 1 (message on stderr) when the session fails. */
#include <glib-unix.h>
#include <gst/gst.h>
#include <gst/webrtc/webrtc.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "codec_table.h"
#include "event_loop.h"
#include "http_client.h"
#include "webrtc_peer.h"

namespace {

struct Publisher {
  GMainLoop *main_loop = g_main_loop_new(nullptr, FALSE);
  std::atomic<int> exit_code{0}; /* set from the bus watch (main thread) or the peer's loop */
};

gboolean on_signal(gpointer data) {
  g_main_loop_quit(static_cast<Publisher *>(data)->main_loop);
  return G_SOURCE_REMOVE;
}

gboolean on_bus_message(GstBus *, GstMessage *msg, gpointer data) {
  auto *pub = static_cast<Publisher *>(data);
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    g_autoptr(GError) err = nullptr;
    g_autofree char *debug = nullptr;
    gst_message_parse_error(msg, &err, &debug);
    g_printerr("whip_publisher: pipeline error: %s (%s)\n", err->message, debug ? debug : "");
    pub->exit_code = 1;
    g_main_loop_quit(pub->main_loop);
  }
  return G_SOURCE_CONTINUE;
}

}  // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  if (argc < 2 || std::string(argv[1]) == "--help") {
    g_printerr("Usage: %s WHIP_URL [PATTERN [WIDTH HEIGHT]]\n"
               "Publishes videotestsrc pattern=PATTERN (smpte) at WIDTHxHEIGHT (640x360) as H.264 over WHIP;\n"
               "prints \"connected\" when up, DELETEs the session on SIGINT/SIGTERM.\n", argv[0]);
    return argc < 2 ? 2 : 0;
  }
  const std::string url = argv[1];
  const std::string pattern = argc > 2 ? argv[2] : "smpte";
  const std::string width = argc > 4 ? argv[3] : "640", height = argc > 4 ? argv[4] : "360";

  const gstmtx::RtpCodec *h264 = gstmtx::find_rtp_codec("H264");
  g_autoptr(GstCaps) offer_caps = gstmtx::rtp_codecs_offer_caps({h264}, gstmtx::kFirstVideoPayloadType);
  /* the receive-side profile (42e01f) would not match x264's constrained baseline (42c0xx): let the
   * payloader's caps say which profile is sent */
  offer_caps = gst_caps_make_writable(offer_caps);
  gst_structure_remove_field(gst_caps_get_structure(offer_caps, 0), "profile-level-id");

  /* the source half; webrtcbin is added and linked by hand below */
  g_autoptr(GError) error = nullptr;
  GstElement *pipeline = gst_parse_launch(
      ("videotestsrc is-live=true pattern=" + pattern + " ! video/x-raw,width=" + width + ",height=" + height +
       ",framerate=30/1 ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=1000 ! "
       "video/x-h264,profile=constrained-baseline ! rtph264pay name=pay config-interval=-1 aggregate-mode=zero-latency "
       "pt=" + std::to_string(gstmtx::kFirstVideoPayloadType))
          .c_str(),
      &error);
  if (!pipeline) {
    g_printerr("whip_publisher: %s\n", error->message);
    return 2;
  }
  GstElement *webrtc = gst_element_factory_make("webrtcbin", "webrtc");
  g_object_set(webrtc, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, nullptr);
  gst_bin_add(GST_BIN(pipeline), webrtc);
  /* The sink pad brings its own transceiver (webrtcbin 1.22 does not reuse one added with
   * add-transceiver for a requested pad): make that one send-only, with codec preferences so the
   * offer is complete before the payloader has caps. */
  GstElement *pay = gst_bin_get_by_name(GST_BIN(pipeline), "pay");
  GstPad *pay_src = gst_element_get_static_pad(pay, "src");
  GstPad *webrtc_sink = gst_element_request_pad_simple(webrtc, "sink_%u");
  if (!webrtc_sink || gst_pad_link(pay_src, webrtc_sink) != GST_PAD_LINK_OK) {
    g_printerr("whip_publisher: cannot link the payloader to webrtcbin\n");
    return 2;
  }
  GstWebRTCRTPTransceiver *transceiver = nullptr;
  g_object_get(webrtc_sink, "transceiver", &transceiver, nullptr);
  g_object_set(transceiver, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, "codec-preferences",
               offer_caps, nullptr);
  gst_object_unref(transceiver);
  gst_object_unref(webrtc_sink);
  gst_object_unref(pay_src);
  gst_object_unref(pay);

  Publisher pub;
  GstBus *bus = gst_element_get_bus(pipeline);
  gst_bus_add_watch(bus, on_bus_message, &pub);
  gst_object_unref(bus);
  g_unix_signal_add(SIGINT, on_signal, &pub);
  g_unix_signal_add(SIGTERM, on_signal, &pub);

  gstmtx::EventLoop loop("whip-publisher");
  gstmtx::HttpClient http(loop, gstmtx::HttpClientConfig{});
  gstmtx::SessionConfig session;
  session.endpoint = url;
  session.kind = gstmtx::HttpEndpointKind::Whip;
  gstmtx::WebrtcPeer::Events events;
  events.connected = [] {
    g_print("connected\n");
    fflush(stdout);
  };
  events.failed = [&pub](gstmtx::SessionError e) {
    g_printerr("whip_publisher: session failed: %s (%s)\n", e.message.c_str(), e.debug.c_str());
    pub.exit_code = 1;
    g_main_loop_quit(pub.main_loop);
  };

  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  std::unique_ptr<gstmtx::WebrtcPeer> peer;
  loop.run_sync([&] {
    peer = std::make_unique<gstmtx::WebrtcPeer>(loop, http, webrtc, session, gstmtx::PeerConfig{}, events);
    peer->start();
  });
  g_main_loop_run(pub.main_loop);

  peer->release_sync(); /* DELETE the WHIP resource */
  loop.run_sync([&] { peer.reset(); });
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  g_main_loop_unref(pub.main_loop);
  return pub.exit_code.load();
}
