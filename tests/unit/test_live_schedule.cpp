/* Unit tests of gst/live_schedule.h: SpikeGuard and LiveSchedule with the real rtpjitterbuffer
 * they correct: after a network stall the jitter buffer times the backlog and the frames after it
 * from the late packet, far later than they arrived; after a queue's spike it starts over the same
 * way and keeps the spike's delay long after the queue drained. The schedule times the stall's
 * frames at their arrival, the guard keeps the jitter buffer's schedule through a spike, and the
 * smooth case is left alone. And clamp_to_newest_input, the decoder's clamp. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/rtp/rtp.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "live_schedule.h"

using namespace gstmtx;

namespace {

constexpr GstClockTime kFrame = GST_SECOND / 30;
constexpr guint32 kRtpPerFrame = 3000; /* 90 kHz */
constexpr int kFrames = 150;
constexpr int kStallFrom = 60;         /* frames 60..80 come in one burst, 700 ms late for frame 60 */
constexpr int kStallTo = 80;

constexpr int kSpikeFrom = 60;         /* a queue's spike: frames 60..65 later and later (20..120 ms) */
constexpr int kSpikeTop = 65;          /* then it drains: frames 66..69 come 25 ms a frame closer */
constexpr int kSpikeTo = 70;           /* on time again */

enum class Network { Smooth, Stall, Spike };

/* When frame `n` (one RTP packet) reaches the receiver: on time with 0-6 ms of jitter, except the
 * stalled or spiked ones. */
GstClockTime arrival(int n, Network network) {
  const GstClockTime on_time = GST_SECOND + n * kFrame + (n % 3) * 3 * GST_MSECOND;
  if (network == Network::Spike) {
    if (n < kSpikeFrom || n >= kSpikeTo)
      return on_time;
    const int extra_ms = n <= kSpikeTop ? 20 * (n - kSpikeFrom + 1) : 120 - 25 * (n - kSpikeTop);
    return on_time + extra_ms * GST_MSECOND;
  }
  const GstClockTime burst = GST_SECOND + (kStallTo + 1) * kFrame + (n - kStallFrom) * GST_MSECOND;
  if (network == Network::Smooth || n < kStallFrom)
    return on_time;
  return n <= kStallTo ? burst : std::max(on_time, burst);
}

GstBuffer *rtp_packet(int n, Network network) {
  GstBuffer *buffer = gst_rtp_buffer_new_allocate(100, 0, 0);
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  gst_rtp_buffer_map(buffer, GST_MAP_WRITE, &rtp);
  gst_rtp_buffer_set_payload_type(&rtp, 96);
  gst_rtp_buffer_set_seq(&rtp, static_cast<guint16>(1000 + n));
  gst_rtp_buffer_set_timestamp(&rtp, 5000 + n * kRtpPerFrame);
  gst_rtp_buffer_set_ssrc(&rtp, 0x1234);
  gst_rtp_buffer_set_marker(&rtp, TRUE);
  gst_rtp_buffer_unmap(&rtp);
  GST_BUFFER_DTS(buffer) = arrival(n, network);
  return buffer;
}

struct Timing {
  GstClockTime pts, arrival;
};

/* What rtpjitterbuffer (latency 50 ms, mode slave, as in webrtcbin) makes of the frames, with
 * the guard and the schedule (max_ahead 100 ms) when `retimed`. */
constexpr const char *kVideoCaps = "application/x-rtp, media=video, clock-rate=90000, encoding-name=H264, payload=96";

/* rtpbin's answer to the jitter buffer's "request-pt-map" (webrtcbin's caps carry no clock rate) */
GstCaps *map_payload_type(GstElement *, guint pt, gpointer) {
  return pt == 96 ? gst_caps_from_string(kVideoCaps) : nullptr;
}

/* Through the jitter buffer, its caps on the pad, or (`pt_map`) as in webrtcbin: from
 * "request-pt-map". */
std::vector<Timing> through_jitterbuffer(Network network, bool retimed, LiveScheduleCounts *counts = nullptr,
                                         bool pt_map = false) {
  GstHarness *h = gst_harness_new("rtpjitterbuffer");
  g_object_set(h->element, "latency", 50, nullptr);
  if (retimed)
    attach_live_schedule(h->element, 50 * GST_MSECOND, 100 * GST_MSECOND);
  if (pt_map)
    g_signal_connect(h->element, "request-pt-map", G_CALLBACK(map_payload_type), nullptr);
  gst_harness_set_src_caps_str(h, pt_map ? "application/x-rtp" : kVideoCaps);
  std::vector<Timing> out;
  for (int n = 0; n < kFrames; ++n) {
    fail_unless_equals_int(gst_harness_push(h, rtp_packet(n, network)), GST_FLOW_OK);
    if (n == 0) /* the first packet waits for the latency */
      fail_unless(gst_harness_crank_single_clock_wait(h));
    GstBuffer *buffer = gst_harness_pull(h);
    fail_unless(buffer != nullptr);
    out.push_back({GST_BUFFER_PTS(buffer), arrival(n, network)});
    gst_buffer_unref(buffer);
  }
  if (counts)
    *counts = live_schedule_counts(h->element);
  gst_harness_teardown(h);
  return out;
}

GstClockTimeDiff ahead_ms(const Timing &t) { return GST_CLOCK_DIFF(t.arrival, t.pts) / GST_MSECOND; }

}  // namespace

/* The cause, as GStreamer behaves: the smooth frames are timed at (or just before) their
 * arrival, the ones after the stall far later (the stall's late packet became the base). */
GST_START_TEST(test_jitterbuffer_holds_after_stall) {
  const auto timing = through_jitterbuffer(Network::Stall, false);
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
  const auto plain = through_jitterbuffer(Network::Stall, false);
  LiveScheduleCounts counts;
  const auto timing = through_jitterbuffer(Network::Stall, true, &counts);
  for (int n = 0; n < kFrames; ++n) {
    fail_unless(ahead_ms(timing[n]) <= 100, "frame %d still held %" G_GINT64_FORMAT " ms", n, ahead_ms(timing[n]));
    if (n < kStallFrom)
      fail_unless(timing[n].pts == plain[n].pts, "smooth frame %d retimed", n);
    if (n > 0)
      fail_unless(timing[n].pts >= timing[n - 1].pts, "frame %d goes back in time", n);
  }
  fail_unless(counts.retimed >= 10, "only %" G_GUINT64_FORMAT " packets retimed", counts.retimed);
  /* a 700 ms stall is no spike: the jitter buffer starts over, as before */
  fail_unless_equals_uint64(counts.absorbed, 0);
}
GST_END_TEST;

/* A queue's spike (20..120 ms, drained in 0.15 s) as GStreamer behaves: the jitter buffer starts
 * over from a late packet and keeps that delay long after the queue drained. */
GST_START_TEST(test_jitterbuffer_keeps_spike_delay) {
  const auto smooth = through_jitterbuffer(Network::Smooth, false);
  const auto timing = through_jitterbuffer(Network::Spike, false);
  int behind = 0;
  for (int n = kSpikeTo; n < kFrames; ++n)
    if (GST_CLOCK_DIFF(smooth[n].pts, timing[n].pts) > 30 * GST_MSECOND)
      behind++;
  fail_unless(behind >= 15, "only %d frames after the spike timed > 30 ms behind the smooth schedule", behind);
}
GST_END_TEST;

/* The guard on the real element: the jitter buffer keeps its schedule through the spike. Every
 * late frame leaves on time (timed "arrival - latency", so a display shows it as it comes) and
 * the frames after the spike are timed as if there had been none; never back in time. */
static void check_spike_keeps_schedule(bool pt_map) {
  const auto smooth = through_jitterbuffer(Network::Smooth, true);
  LiveScheduleCounts counts;
  const auto timing = through_jitterbuffer(Network::Spike, true, &counts, pt_map);
  for (int n = 0; n < kFrames; ++n) {
    fail_unless(timing[n].pts + 50 * GST_MSECOND >= timing[n].arrival, "frame %d leaves %" G_GINT64_FORMAT " ms late", n,
                GST_CLOCK_DIFF(timing[n].pts + 50 * GST_MSECOND, timing[n].arrival) / GST_MSECOND);
    if (n > 0)
      fail_unless(timing[n].pts >= timing[n - 1].pts, "frame %d goes back in time", n);
    if (n < kSpikeFrom || n >= kSpikeTo + 2)
      fail_unless(std::abs(GST_CLOCK_DIFF(smooth[n].pts, timing[n].pts)) < GST_MSECOND,
                  "frame %d timed %" G_GINT64_FORMAT " us from the smooth schedule", n,
                  GST_CLOCK_DIFF(smooth[n].pts, timing[n].pts) / GST_USECOND);
  }
  /* frames 63..66 are more than the latency late (80..120 ms; 95 ms) */
  fail_unless(counts.absorbed >= 4, "only %" G_GUINT64_FORMAT " packets handed over as on time", counts.absorbed);
  fail_unless(counts.late >= 4, "only %" G_GUINT64_FORMAT " late packets timed to leave on time", counts.late);
  fail_unless_equals_uint64(counts.retimed, 0);
}

GST_START_TEST(test_spike_keeps_schedule) {
  check_spike_keeps_schedule(false);
}
GST_END_TEST;

/* the same where the pad's caps carry no clock rate (webrtcbin's rtpbin) */
GST_START_TEST(test_spike_keeps_schedule_pt_map) {
  check_spike_keeps_schedule(true);
}
GST_END_TEST;

/* SpikeGuard's rules, on injected times: the smallest delay of the last 2 s is the schedule. */
GST_START_TEST(test_spike_guard_rules) {
  SpikeGuard guard(50 * GST_MSECOND, 500 * GST_MSECOND);
  const GstClockTime base = 10 * GST_SECOND;
  /* on time and jitter within the latency: as they came */
  fail_unless_equals_uint64(guard.arrival_for_jitterbuffer(base, 0), base);
  fail_unless_equals_uint64(guard.arrival_for_jitterbuffer(base + 40 * GST_MSECOND, 0), base + 40 * GST_MSECOND);
  fail_unless_equals_uint64(guard.arrival_for_jitterbuffer(base + 133 * GST_MSECOND, 100 * GST_MSECOND),
                            base + 133 * GST_MSECOND);
  fail_unless_equals_uint64(guard.absorbed(), 0);
  /* 80 ms late: handed over at the smallest delay */
  fail_unless_equals_uint64(guard.arrival_for_jitterbuffer(base + 280 * GST_MSECOND, 200 * GST_MSECOND),
                            base + 200 * GST_MSECOND);
  /* never before the one before it: a packet of the same frame 70 ms late */
  fail_unless_equals_uint64(guard.arrival_for_jitterbuffer(base + 270 * GST_MSECOND, 200 * GST_MSECOND),
                            base + 200 * GST_MSECOND);
  fail_unless_equals_uint64(guard.absorbed(), 2);
  /* later than latency + max_spike (a stall): as it came, and the schedule starts over from it
   * as the jitter buffer's does: the next packet at the same delay is on time */
  fail_unless_equals_uint64(guard.arrival_for_jitterbuffer(base + 900 * GST_MSECOND, 300 * GST_MSECOND),
                            base + 900 * GST_MSECOND);
  fail_unless_equals_uint64(guard.arrival_for_jitterbuffer(base + 933 * GST_MSECOND, 333 * GST_MSECOND),
                            base + 933 * GST_MSECOND);
  fail_unless_equals_uint64(guard.absorbed(), 2);
  /* a standing delay outlives the window: once the smallest delay of 2 s is the new one, packets
   * come as they are (the jitter buffer then moves its schedule) */
  SpikeGuard standing(50 * GST_MSECOND, 500 * GST_MSECOND);
  fail_unless_equals_uint64(standing.arrival_for_jitterbuffer(base, 0), base);
  for (int i = 1; i <= 25; ++i) {
    const GstClockTime rtp = 100 * i * GST_MSECOND;
    const GstClockTime expected = i >= 20 ? base + rtp + 100 * GST_MSECOND : base + rtp;
    fail_unless_equals_uint64(standing.arrival_for_jitterbuffer(base + rtp + 100 * GST_MSECOND, rtp), expected);
  }
  fail_unless_equals_uint64(standing.absorbed(), 19);
  /* no times: as they are */
  fail_unless_equals_uint64(guard.arrival_for_jitterbuffer(GST_CLOCK_TIME_NONE, 0), GST_CLOCK_TIME_NONE);
}
GST_END_TEST;

GST_START_TEST(test_schedule_rules) {
  LiveSchedule schedule(50 * GST_MSECOND, 100 * GST_MSECOND);
  /* timed within the latency before its arrival or a little after it, and packets without
   * times: as they are */
  fail_unless_equals_uint64(schedule.retime(1960 * GST_MSECOND, 2 * GST_SECOND), 1960 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.retime(GST_CLOCK_TIME_NONE, 2 * GST_SECOND), GST_CLOCK_TIME_NONE);
  fail_unless_equals_uint64(schedule.retime(1970 * GST_MSECOND, GST_CLOCK_TIME_NONE), 1970 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.retime(2100 * GST_MSECOND, 2 * GST_SECOND), 2100 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.retimed(), 0);
  /* held for more than 100 ms: at its arrival, never before the packet before it */
  fail_unless_equals_uint64(schedule.retime(3 * GST_SECOND, 2050 * GST_MSECOND), 2100 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.retime(3033 * GST_MSECOND, 2200 * GST_MSECOND), 2200 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.retime(3066 * GST_MSECOND, 2201 * GST_MSECOND), 2201 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.retimed(), 3);
  /* a packet timed before the one before it: not before it */
  fail_unless_equals_uint64(schedule.retime(2150 * GST_MSECOND, 2150 * GST_MSECOND), 2201 * GST_MSECOND);
  /* late (timed more than the latency before its arrival): it leaves on time */
  fail_unless_equals_uint64(schedule.retime(2300 * GST_MSECOND, 2400 * GST_MSECOND), 2350 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.late(), 1);
  /* live again: the jitter buffer's times */
  fail_unless_equals_uint64(schedule.retime(3100 * GST_MSECOND, 3090 * GST_MSECOND), 3100 * GST_MSECOND);
  fail_unless_equals_uint64(schedule.retimed(), 3);
  /* audio: a late packet stays as it is */
  LiveSchedule audio(50 * GST_MSECOND, 100 * GST_MSECOND);
  fail_unless_equals_uint64(audio.retime(1 * GST_SECOND, 2 * GST_SECOND, false), 1 * GST_SECOND);
  fail_unless_equals_uint64(audio.late(), 0);
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
  tcase_add_test(tc, test_jitterbuffer_keeps_spike_delay);
  tcase_add_test(tc, test_spike_keeps_schedule);
  tcase_add_test(tc, test_spike_keeps_schedule_pt_map);
  tcase_add_test(tc, test_spike_guard_rules);
  tcase_add_test(tc, test_clamp_to_newest_input);
  suite_add_tcase(s, tc);
  return s;
}

GST_CHECK_MAIN(live_schedule);
