/* Unit tests of gst/live_schedule.h: LiveSchedule with the real rtpjitterbuffer it
 * corrects: after a network stall the jitter buffer times the backlog and the frames after it
 * from the late packet, far later than they arrived; the schedule times them at their arrival and
 * leaves the smooth case alone. And clamp_to_newest_input, the decoder's clamp. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/rtp/rtp.h>

#include <algorithm>
#include <vector>

#include "live_schedule.h"

using namespace gstmtx;

namespace {

constexpr GstClockTime kFrame = GST_SECOND / 30;
constexpr guint32 kRtpPerFrame = 3000; /* 90 kHz */
constexpr int kFrames = 150;
constexpr int kStallFrom = 60;         /* frames 60..80 come in one burst, 700 ms late for frame 60 */
constexpr int kStallTo = 80;

/* When frame `n` (one RTP packet) reaches the receiver: on time with 0-6 ms of jitter, except the
 * stalled ones. */
GstClockTime arrival(int n) {
  const GstClockTime on_time = GST_SECOND + n * kFrame + (n % 3) * 3 * GST_MSECOND;
  const GstClockTime burst = GST_SECOND + (kStallTo + 1) * kFrame + (n - kStallFrom) * GST_MSECOND;
  if (n < kStallFrom)
    return on_time;
  return n <= kStallTo ? burst : std::max(on_time, burst);
}

GstBuffer *rtp_packet(int n) {
  GstBuffer *buffer = gst_rtp_buffer_new_allocate(100, 0, 0);
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  gst_rtp_buffer_map(buffer, GST_MAP_WRITE, &rtp);
  gst_rtp_buffer_set_payload_type(&rtp, 96);
  gst_rtp_buffer_set_seq(&rtp, static_cast<guint16>(1000 + n));
  gst_rtp_buffer_set_timestamp(&rtp, 5000 + n * kRtpPerFrame);
  gst_rtp_buffer_set_ssrc(&rtp, 0x1234);
  gst_rtp_buffer_set_marker(&rtp, TRUE);
  gst_rtp_buffer_unmap(&rtp);
  GST_BUFFER_DTS(buffer) = arrival(n);
  return buffer;
}

struct Timing {
  GstClockTime pts, arrival;
};

/* What rtpjitterbuffer (latency 50 ms, mode slave, as in webrtcbin) makes of the frames, with
 * LiveSchedule (max_ahead 100 ms) when `retimed`. */
std::vector<Timing> through_jitterbuffer(bool retimed, guint64 *retimed_packets = nullptr) {
  GstHarness *h = gst_harness_new("rtpjitterbuffer");
  g_object_set(h->element, "latency", 50, nullptr);
  if (retimed)
    attach_live_schedule(h->element, 100 * GST_MSECOND);
  gst_harness_set_src_caps_str(h, "application/x-rtp, media=video, clock-rate=90000, encoding-name=H264, "
                                  "payload=96");
  std::vector<Timing> out;
  for (int n = 0; n < kFrames; ++n) {
    fail_unless_equals_int(gst_harness_push(h, rtp_packet(n)), GST_FLOW_OK);
    if (n == 0) /* the first packet waits for the latency */
      fail_unless(gst_harness_crank_single_clock_wait(h));
    GstBuffer *buffer = gst_harness_pull(h);
    fail_unless(buffer != nullptr);
    out.push_back({GST_BUFFER_PTS(buffer), arrival(n)});
    gst_buffer_unref(buffer);
  }
  if (retimed_packets)
    *retimed_packets = live_schedule_retimed(h->element);
  gst_harness_teardown(h);
  return out;
}

GstClockTimeDiff ahead_ms(const Timing &t) { return GST_CLOCK_DIFF(t.arrival, t.pts) / GST_MSECOND; }

}  // namespace

/* The cause, as GStreamer behaves: the smooth frames are timed at (or just before) their
 * arrival, the ones after the stall far later (the stall's late packet became the base). */
GST_START_TEST(test_jitterbuffer_holds_after_stall) {
  const auto timing = through_jitterbuffer(false);
  GstClockTimeDiff most = 0;
  for (int n = 10; n < kStallFrom; ++n)
    fail_unless(ahead_ms(timing[n]) <= 10, "smooth frame %d timed %" G_GINT64_FORMAT " ms after arrival", n,
                ahead_ms(timing[n]));
  for (int n = kStallFrom; n < kFrames; ++n)
    most = std::max(most, ahead_ms(timing[n]));
  fail_unless(most > 300, "after the stall, frames timed at most %" G_GINT64_FORMAT " ms after arrival", most);
}
GST_END_TEST;

/* The fix on the real element: no packet is timed more than max_ahead after its arrival, times
 * never go back after the stall, and the smooth frames keep the jitter buffer's timing. */
GST_START_TEST(test_schedule_back_to_live) {
  const auto plain = through_jitterbuffer(false);
  guint64 retimed = 0;
  const auto timing = through_jitterbuffer(true, &retimed);
  for (int n = 0; n < kFrames; ++n) {
    fail_unless(ahead_ms(timing[n]) <= 100, "frame %d still held %" G_GINT64_FORMAT " ms", n, ahead_ms(timing[n]));
    if (n < kStallFrom)
      fail_unless(timing[n].pts == plain[n].pts, "smooth frame %d retimed", n);
    if (n > 0)
      fail_unless(timing[n].pts >= timing[n - 1].pts, "frame %d goes back in time", n);
  }
  fail_unless(retimed >= 10, "only %" G_GUINT64_FORMAT " packets retimed", retimed);
}
GST_END_TEST;

GST_START_TEST(test_schedule_rules) {
  LiveSchedule schedule(100 * GST_MSECOND);
  /* late or slightly early packets, and packets without times: as they are */
  fail_unless_equals_uint64(schedule.retime(1 * GST_SECOND, 2 * GST_SECOND), 1 * GST_SECOND);
  fail_unless_equals_uint64(schedule.retime(GST_CLOCK_TIME_NONE, 2 * GST_SECOND), GST_CLOCK_TIME_NONE);
  fail_unless_equals_uint64(schedule.retime(1100 * GST_MSECOND, GST_CLOCK_TIME_NONE), 1100 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.retime(2100 * GST_MSECOND, 2 * GST_SECOND), 2100 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.retimed(), 0);
  /* held for more than 100 ms: at its arrival, never before the packet before it */
  fail_unless_equals_uint64(schedule.retime(3 * GST_SECOND, 2050 * GST_MSECOND), 2100 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.retime(3033 * GST_MSECOND, 2200 * GST_MSECOND), 2200 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.retime(3066 * GST_MSECOND, 2201 * GST_MSECOND), 2201 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.retimed(), 3);
  /* a packet timed before the one before it: not before it */
  fail_unless_equals_uint64(schedule.retime(2150 * GST_MSECOND, 2150 * GST_MSECOND), 2201 * GST_MSECOND);
  /* live again: the jitter buffer's times */
  fail_unless_equals_uint64(schedule.retime(3100 * GST_MSECOND, 3090 * GST_MSECOND), 3100 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.retimed(), 3);
}
GST_END_TEST;

/* The decoder clamp, on identity with a probe that times its output ahead of its input (as
 * GstVideoDecoder does after a stall): timed with the newest input; correctly timed output, B-frame
 * order included, untouched. */
static GstPadProbeReturn push_ahead(GstPad *, GstPadProbeInfo *info, gpointer data) {
  if (!*static_cast<bool *>(data))
    return GST_PAD_PROBE_OK;
  GstBuffer *buffer = gst_buffer_make_writable(GST_PAD_PROBE_INFO_BUFFER(info));
  GST_BUFFER_PTS(buffer) += 500 * GST_MSECOND;
  GST_PAD_PROBE_INFO_DATA(info) = buffer;
  return GST_PAD_PROBE_OK;
}

GST_START_TEST(test_clamp_to_newest_input) {
  GstHarness *h = gst_harness_new("identity");
  bool ahead = false;
  GstPad *src = gst_element_get_static_pad(h->element, "src");
  gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, push_ahead, &ahead, nullptr); /* runs first */
  gst_object_unref(src);
  clamp_to_newest_input(h->element);
  gst_harness_set_src_caps_str(h, "video/x-raw");
  auto through = [&](GstClockTime pts) {
    GstBuffer *in = gst_buffer_new();
    GST_BUFFER_PTS(in) = pts;
    GstBuffer *out = gst_harness_push_and_pull(h, in);
    const GstClockTime result = GST_BUFFER_PTS(out);
    gst_buffer_unref(out);
    return result;
  };
  /* presentation order of I P B B: the decoder's input times, shown as they are */
  fail_unless_equals_uint64(through(1000 * GST_MSECOND), 1000 * GST_MSECOND);
  fail_unless_equals_uint64(through(1100 * GST_MSECOND), 1100 * GST_MSECOND);
  fail_unless_equals_uint64(through(1033 * GST_MSECOND), 1033 * GST_MSECOND);
  fail_unless_equals_uint64(through(1066 * GST_MSECOND), 1066 * GST_MSECOND);
  /* output timed ahead of every input: timed with the newest input */
  ahead = true;
  fail_unless_equals_uint64(through(1133 * GST_MSECOND), 1133 * GST_MSECOND);
  fail_unless_equals_uint64(through(1166 * GST_MSECOND), 1166 * GST_MSECOND);
  gst_harness_teardown(h);
}
GST_END_TEST;

static Suite *live_schedule_suite() {
  Suite *s = suite_create("live_schedule");
  TCase *tc = tcase_create("live_schedule");
  tcase_add_test(tc, test_jitterbuffer_holds_after_stall);
  tcase_add_test(tc, test_schedule_back_to_live);
  tcase_add_test(tc, test_schedule_rules);
  tcase_add_test(tc, test_clamp_to_newest_input);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(live_schedule);
