/* Proves the testbed with stock elements and a real MediaMTX: RTSP publish, RTSP read, and a WHEP
 * read through a plain webrtcbin with a minimal HTTP POST. */
#include <gst/check/gstcheck.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <libsoup/soup.h>

#include "mediamtx_server.h"
#include "pipeline_helpers.h"

using namespace testbed;

GST_START_TEST(test_rtsp_publish_and_read) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  TestPipeline pub(x264_rtsp_publisher(server, "cam"));
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000), "path never became ready: %s", server.read_log().c_str());

  TestPipeline reader(rtsp_h264_reader(server, "cam", "testbed"), "sink");
  fail_unless(reader.play());
  fail_unless(wait_until([&] { return reader.frames.count() >= 10; }, 10000), "only %d frames",
              reader.frames.count());
  fail_unless_equals_int(reader.frames.width(), 320);
  fail_unless_equals_int(reader.frames.height(), 240);
  fail_unless(reader.bus.errors().empty(), "%s", reader.bus.error_text().c_str());
  fail_unless(pub.bus.errors().empty(), "%s", pub.bus.error_text().c_str());
}
GST_END_TEST;

static GstWebRTCSessionDescription *wait_for_promise_sdp(GstPromise *promise, const char *field) {
  gst_promise_wait(promise);
  const GstStructure *reply = gst_promise_get_reply(promise);
  GstWebRTCSessionDescription *desc = nullptr;
  if (reply)
    gst_structure_get(reply, field, GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &desc, nullptr);
  gst_promise_unref(promise);
  return desc;
}

static void on_webrtc_pad(GstElement *, GstPad *pad, gpointer user_data) {
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC)
    return;
  GstElement *pipeline = GST_ELEMENT(user_data);
  GstElement *decode = gst_parse_bin_from_description("rtph264depay ! h264parse ! avdec_h264", TRUE, nullptr);
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  gst_bin_add(GST_BIN(pipeline), decode);
  gst_element_sync_state_with_parent(decode);
  GstPad *decode_sink = gst_element_get_static_pad(decode, "sink");
  gst_pad_link(pad, decode_sink);
  gst_element_link(decode, sink);
  gst_object_unref(decode_sink);
  gst_object_unref(sink);
}

GST_START_TEST(test_whep_read_with_plain_webrtcbin) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  TestPipeline pub(x264_rtsp_publisher(server, "cam"));
  fail_unless(pub.play());
  fail_unless(server.wait_path_ready("cam", 10000));

  TestPipeline viewer("webrtcbin name=w bundle-policy=max-bundle latency=0 fakesink name=sink async=false", "sink");
  GstElement *webrtc = gst_bin_get_by_name(GST_BIN(viewer.pipeline), "w");
  g_signal_connect(webrtc, "pad-added", G_CALLBACK(on_webrtc_pad), viewer.pipeline);
  GstCaps *caps = gst_caps_from_string(
      "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=96,packetization-mode=(string)1");
  GstWebRTCRTPTransceiver *trans = nullptr;
  g_signal_emit_by_name(webrtc, "add-transceiver", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, caps, &trans);
  gst_caps_unref(caps);
  gst_object_unref(trans);
  fail_unless(viewer.play());

  GstPromise *promise = gst_promise_new();
  g_signal_emit_by_name(webrtc, "create-offer", nullptr, promise);
  GstWebRTCSessionDescription *offer = wait_for_promise_sdp(promise, "offer");
  fail_unless(offer != nullptr);
  g_signal_emit_by_name(webrtc, "set-local-description", offer, nullptr);
  gst_webrtc_session_description_free(offer);
  /* wait for ICE gathering to complete: no trickle here, the plain case */
  fail_unless(wait_until([&] {
    GstWebRTCICEGatheringState state;
    g_object_get(webrtc, "ice-gathering-state", &state, nullptr);
    return state == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE;
  }, 10000));
  GstWebRTCSessionDescription *local = nullptr;
  g_object_get(webrtc, "local-description", &local, nullptr);
  g_autofree char *offer_sdp = gst_sdp_message_as_text(local->sdp);
  gst_webrtc_session_description_free(local);

  g_autoptr(SoupSession) session = soup_session_new_with_options("timeout", 5, nullptr);
  g_autoptr(SoupMessage) msg = soup_message_new("POST", server.whep_url("cam").c_str());
  g_autoptr(GBytes) offer_bytes = g_bytes_new(offer_sdp, strlen(offer_sdp));
  soup_message_set_request_body_from_bytes(msg, "application/sdp", offer_bytes);
  GError *err = nullptr;
  g_autoptr(GBytes) answer_bytes = soup_session_send_and_read(session, msg, nullptr, &err);
  fail_unless(err == nullptr);
  fail_unless_equals_int(soup_message_get_status(msg), 201);
  const char *location = soup_message_headers_get_one(soup_message_get_response_headers(msg), "Location");
  fail_unless(location != nullptr && g_str_has_prefix(location, "/cam/whep/"), "Location: %s", location);

  GstSDPMessage *sdp = nullptr;
  gst_sdp_message_new(&sdp);
  gsize size;
  const char *data = static_cast<const char *>(g_bytes_get_data(answer_bytes, &size));
  fail_unless(gst_sdp_message_parse_buffer(reinterpret_cast<const guint8 *>(data), static_cast<guint>(size), sdp) ==
              GST_SDP_OK);
  GstWebRTCSessionDescription *answer = gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
  g_signal_emit_by_name(webrtc, "set-remote-description", answer, nullptr);
  gst_webrtc_session_description_free(answer);

  fail_unless(wait_until([&] { return viewer.frames.count() >= 10; }, 15000), "only %d frames",
              viewer.frames.count());
  fail_unless_equals_int(viewer.frames.width(), 320);
  fail_unless_equals_int(viewer.frames.height(), 240);
  fail_unless_equals_int(server.webrtc_session_count(), 1);
  fail_unless(viewer.bus.errors().empty(), "%s", viewer.bus.error_text().c_str());
  gst_object_unref(webrtc);
}
GST_END_TEST;

GST_START_TEST(test_mediamtx_restart_keeps_ports) {
  fail_unless(in_test_namespace());
  MediamtxServer server;
  fail_unless(server.start());
  int port = server.rtsp_port();
  server.kill_hard();
  fail_if(server.running());
  fail_unless(server.start());
  fail_unless_equals_int(server.rtsp_port(), port);
  guint status = 0;
  server.api_get("paths/list", &status);
  fail_unless_equals_int(status, 200);
}
GST_END_TEST;

static Suite *testbed_suite(void) {
  Suite *s = suite_create("testbed");
  TCase *tc = tcase_create("mediamtx");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_mediamtx_restart_keeps_ports);
  tcase_add_test(tc, test_rtsp_publish_and_read);
  tcase_add_test(tc, test_whep_read_with_plain_webrtcbin);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(testbed);
