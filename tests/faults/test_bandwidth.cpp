/* mediamtxsink's bandwidth adaptation (issue 17) on three hosts (tests/faults/network_hosts.h):
 * the publisher's uplink limited with `tc qdisc ... tbf` to 1000 kbit/s while it publishes at
 * 2500 kbit/s, then the limit lifted. Not timing-tight (timings are benchmarks'):
 *  - with adaptive-bitrate (the default), over RTSP/TCP and WHIP: frames keep reaching a whepsrc
 *    viewer at >= 24 fps over a window after a settle time, the target bitrate (`stats`) falls
 *    below the limit; lifted, the target climbs back towards `bitrate`;
 *    and a gst-mediamtx-status message tells the new rate; x264enc's rate buffer (`stats`
 *    rate-buffer) is the adapted one whenever the target is below `bitrate`, the ceiling's again
 *    once it is back there;
 *  - the control: adaptive-bitrate=false keeps the target at `bitrate` under the same limit (so
 *    a target that never moved cannot pass the first case);
 *  - below min-bitrate (a 200 kbit/s limit, min-bitrate 300 by default), over RTSP/TCP: the frame
 *    rate is lowered instead of a queue growing: after a settle time frames reach the viewer at
 *    >= 6 fps (9.5-25 measured in 11 runs) with no gap over 1 s, `stats` shows framerate-fraction
 *    < 1 and the target stays at min-bitrate, a status message tells it; lifted,
 *    framerate-fraction is back to 1 and then the target at 95 % of `bitrate`. Without the lowered
 *    frame rate the encoder's 300 kbit/s do not fit: the TCP send queue and the publisher's leaky
 *    queue drop and delay frames, seconds pass between pictures at the viewer.
 * Each case prints a "BANDWIDTH ..." line with its figures. */
#include <gst/check/gstcheck.h>

#include <algorithm>
#include <string>

#include "encoder_selection.h"
#include "mediamtx_server.h"
#include "network_hosts.h"
#include "pipeline_helpers.h"

using namespace testbed;
using namespace faults;

namespace {

constexpr int kBitrate = 2500;   /* kbit/s, the configured rate */
constexpr int kLimit = 1000;     /* kbit/s, the publisher's uplink while limited */
constexpr int kSettleMs = 5000;  /* after the limit: the rate comes down, the queues drain */
constexpr int kWindowMs = 6000;  /* the window frames are counted over */
constexpr int kClimbMs = 20000;  /* the limit lifted: the target climbs back within this (generous: a
                                    busy machine; the benchmark measures it) */

/* snow: every frame is new, so the encoder fills whatever rate it is given; small, so a busy
 * machine still encodes (and the viewer decodes) every frame */
const char *kCamera = "videotestsrc is-live=true pattern=snow ! video/x-raw,width=320,height=240,framerate=30/1";

struct Hosts {
  MediamtxServer server;
  TestHost publisher{"bwpub", 11}, viewer{"bwview", 12};

  Hosts() {
    fail_unless(in_test_namespace());
    reset_server_firewall();
    fail_unless(publisher.create(), "publisher host not set up");
    fail_unless(viewer.create(), "viewer host not set up");
    fail_unless(server.start());
  }
  ~Hosts() {
    viewer.stop();
    publisher.stop();
  }
  std::string location(const std::string &transport) const {
    const std::string host = publisher.server_address();
    if (transport == "whip")
      return "http://" + host + ":" + std::to_string(server.webrtc_port()) + "/cam/whip";
    return "rtsp://" + host + ":" + std::to_string(server.rtsp_port()) + "/cam";
  }
  /* the publisher's uplink: at most `kbps`, 0: unlimited */
  bool limit(int kbps) {
    if (kbps == 0)
      return publisher.run_inside("tc qdisc del dev eth0 root");
    return publisher.run_inside("tc qdisc add dev eth0 root tbf rate " + std::to_string(kbps) +
                                "kbit burst 16kb latency 300ms");
  }
  /* the publisher's mediamtxsink stats: target-bitrate, measured-bitrate and rate-buffer (x264enc's,
   * ms); -1 each when there was no answer */
  struct Rates {
    int target = -1, measured = -1, rate_buffer = -1;
  };
  Rates sample() {
    Rates r;
    GstStructure *stats = publisher.stats();
    if (!stats)
      return r;
    guint target = 0, measured = 0, buffer = 0;
    if (gst_structure_get_uint(stats, "target-bitrate", &target) &&
        gst_structure_get_uint(stats, "measured-bitrate", &measured) &&
        gst_structure_get_uint(stats, "rate-buffer", &buffer))
      r = Rates{static_cast<int>(target), static_cast<int>(measured), static_cast<int>(buffer)};
    gst_structure_free(stats);
    return r;
  }
  std::pair<int, int> rates() {
    const Rates r = sample();
    return {r.target, r.measured};
  }
};

void start(Hosts &hosts, const std::string &transport, bool adaptive, bool viewer) {
  fail_unless(hosts.publisher.play(std::string(kCamera) + " ! mediamtxsink name=src retry-delay=300 max-retry-delay=1000"
                                   " bitrate=" + std::to_string(kBitrate) + " adaptive-bitrate=" +
                                   (adaptive ? "true" : "false") + " transport=" + transport +
                                   " location=" + hosts.location(transport)));
  fail_unless(hosts.server.wait_path_ready("cam", 15000), "nothing published over %s", transport.c_str());
  if (!viewer)
    return;
  fail_unless(hosts.viewer.play("whepsrc name=src audio=false retry-delay=300 max-retry-delay=1000 location=http://" +
                                hosts.viewer.server_address() + ":" + std::to_string(hosts.server.webrtc_port()) +
                                "/cam/whep ! fakesink name=sink sync=false async=false"));
  fail_unless(hosts.viewer.wait_frames(kFps, 20000), "no frames at the viewer (%d)", hosts.viewer.frame_count());
}

void adapts(const std::string &transport) {
  Hosts hosts;
  start(hosts, transport, true, true);
  fail_unless(hosts.limit(kLimit), "tc tbf failed");
  const gint64 limited = g_get_monotonic_time();
  int lowest = kBitrate;
  wait_until([&] {
    lowest = std::min(lowest, hosts.rates().first);
    g_usleep(250 * 1000);
    return false;
  }, kSettleMs);
  /* the window: the target sampled every 250 ms (it probes around the link: judged on average) */
  const gint64 from = g_get_monotonic_time();
  std::vector<int> targets, measured;
  /* x264enc's rate buffer while the target is below bitrate (gstmtx::encoder_rate_settings) */
  int adapted_samples = 0, short_buffer = 0;
  wait_until([&] {
    const auto now = hosts.sample(); /* one stats answer for both */
    if (now.target >= 0) {
      targets.push_back(now.target);
      measured.push_back(now.measured);
    }
    if (now.target > 0 && now.target < kBitrate) {
      adapted_samples++;
      short_buffer += now.rate_buffer == gstmtx::kAdaptedRateBufferMs;
    }
    g_usleep(250 * 1000);
    return false;
  }, kWindowMs);
  const gint64 to = g_get_monotonic_time();
  auto mean = [](const std::vector<int> &v) {
    long sum = 0;
    for (int x : v)
      sum += x;
    return v.empty() ? -1 : static_cast<int>(sum / static_cast<long>(v.size()));
  };
  const int target_mean = mean(targets), measured_mean = mean(measured);
  const int target_max = targets.empty() ? -1 : *std::max_element(targets.begin(), targets.end());
  lowest = std::min(lowest, targets.empty() ? lowest : *std::min_element(targets.begin(), targets.end()));
  int frames = 0;
  for (gint64 t : hosts.viewer.frames())
    frames += t >= from && t < to;
  const double fps = frames * 1e6 / static_cast<double>(to - from);

  fail_unless(hosts.limit(0), "tc del failed");
  const gint64 lifted = g_get_monotonic_time();
  int climbed = -1;
  const bool back = wait_until([&] {
    climbed = hosts.rates().first;
    if (climbed >= kBitrate * 9 / 10)
      return true;
    g_usleep(200 * 1000);
    return false;
  }, kClimbMs);
  const double climb_s = (g_get_monotonic_time() - lifted) / 1e6;
  /* at bitrate again: the rate buffer of the ceiling */
  Hosts::Rates at_ceiling;
  wait_until([&] {
    at_ceiling = hosts.sample();
    if (at_ceiling.target == kBitrate)
      return true;
    g_usleep(200 * 1000);
    return false;
  }, kClimbMs);
  g_print("BANDWIDTH transport=%s adaptive=true window_target_mean=%d window_target_max=%d lowest=%d "
          "window_measured_mean=%d samples=%zu fps=%.1f climbed_to=%d climb_s=%.1f since_limit_s=%.1f "
          "rate_buffer_adapted=%d/%d rate_buffer_at_bitrate=%d\n",
          transport.c_str(), target_mean, target_max, lowest, measured_mean, targets.size(), fps, climbed, climb_s,
          (from - limited) / 1e6, short_buffer, adapted_samples, at_ceiling.rate_buffer);
  fail_unless(hosts.publisher.death().empty(), "the publisher died: %s", hosts.publisher.death().c_str());
  /* the status message told the change (state connected again, with the new rate as reason) */
  fail_unless(hosts.publisher.status_count("connected", limited) >= 1, "no status message about the new rate");
  fail_unless(targets.size() >= 5, "only %zu stats answers in the window", targets.size());
  fail_unless(target_mean > 0 && target_mean < kLimit, "target %d kbit/s on average under a %d kbit/s limit",
              target_mean, kLimit);
  fail_unless(target_max < kBitrate, "the target went back to %d kbit/s under the limit", target_max);
  fail_unless(fps >= 24.0, "%.1f fps at the viewer under the limit", fps);
  fail_unless(back, "the target stayed at %d kbit/s for %d s after the limit lifted", climbed, kClimbMs / 1000);
  fail_unless(adapted_samples > 0 && short_buffer == adapted_samples,
              "x264enc's rate buffer was %d ms in %d of %d samples below bitrate", gstmtx::kAdaptedRateBufferMs,
              short_buffer, adapted_samples);
  fail_unless(at_ceiling.target == kBitrate && at_ceiling.rate_buffer == gstmtx::kRateBufferMs,
              "back at %d kbit/s: rate buffer %d ms, not %d", at_ceiling.target, at_ceiling.rate_buffer,
              gstmtx::kRateBufferMs);
  fail_unless(hosts.publisher.errors().empty(), "publisher error: %s", hosts.publisher.errors().front().c_str());
}

}  // namespace

GST_START_TEST(test_adapts_rtsp_tcp) { adapts("rtsp"); }
GST_END_TEST;

GST_START_TEST(test_adapts_whip) { adapts("whip"); }
GST_END_TEST;

/* Below the floor: a 200 kbit/s uplink, min-bitrate 300: the frame rate comes down, frames keep
 * arriving; lifted: every frame again. */
GST_START_TEST(test_below_floor_lowers_frame_rate) {
  constexpr int kFloorLimit = 200; /* kbit/s, below min-bitrate's default 300 */
  constexpr int kFloorSettleMs = 6000, kFloorWindowMs = 6000;
  /* lifted: every frame again within this (generous: the ramp below min-bitrate is slow near the
   * old link's rate, and over RTSP/TCP at a few frames per tick a noisy delivered/sent ratio holds
   * it now and then: 1-7 s measured, once over 15 s on a busy machine) */
  constexpr int kRestoreMs = 25000;
  /* lifted: the target back at 95 % of `bitrate` within this (measured: 4-10 s; a target that
   * stays near the old link's rate fails it) */
  constexpr int kFullMs = 25000;
  Hosts hosts;
  start(hosts, "rtsp", true, true);
  fail_unless(hosts.limit(kFloorLimit), "tc tbf failed");
  const gint64 limited = g_get_monotonic_time();
  g_usleep(kFloorSettleMs * 1000);
  const gint64 from = g_get_monotonic_time();
  double fraction_max = 0, fraction_min = 2;
  int target_min = kBitrate, target_max = 0, samples = 0;
  wait_until([&] {
    if (GstStructure *stats = hosts.publisher.stats()) {
      double fraction = -1;
      guint target = 0;
      if (gst_structure_get_double(stats, "framerate-fraction", &fraction) &&
          gst_structure_get_uint(stats, "target-bitrate", &target)) {
        fraction_max = std::max(fraction_max, fraction);
        fraction_min = std::min(fraction_min, fraction);
        target_min = std::min(target_min, static_cast<int>(target));
        target_max = std::max(target_max, static_cast<int>(target));
        samples++;
      }
      gst_structure_free(stats);
    }
    g_usleep(250 * 1000);
    return false;
  }, kFloorWindowMs);
  const gint64 to = g_get_monotonic_time();
  /* frames in the window, and the longest gap between two (the window's edges count) */
  int frames = 0;
  gint64 last = from, gap = 0;
  for (gint64 t : hosts.viewer.frames()) {
    if (t < from || t >= to)
      continue;
    frames++;
    gap = std::max(gap, t - last);
    last = t;
  }
  gap = std::max(gap, to - last);
  const double fps = frames * 1e6 / static_cast<double>(to - from);
  const int lowered = hosts.publisher.status_containing("frame rate lowered", limited);

  fail_unless(hosts.limit(0), "tc del failed");
  const gint64 lifted = g_get_monotonic_time();
  double fraction = -1;
  const bool restored = wait_until([&] {
    if (GstStructure *stats = hosts.publisher.stats()) {
      gst_structure_get_double(stats, "framerate-fraction", &fraction);
      gst_structure_free(stats);
    }
    if (fraction >= 1.0)
      return true;
    g_usleep(200 * 1000);
    return false;
  }, kRestoreMs);
  const double restore_s = (g_get_monotonic_time() - lifted) / 1e6;
  /* and the full bitrate (issue 17: within 10 s of the lift, from any cut; the benchmark measures
   * it, the bound here is generous for a busy machine) */
  int climbed = -1;
  const bool full = restored && wait_until([&] {
    climbed = hosts.rates().first;
    if (climbed >= kBitrate * 95 / 100)
      return true;
    g_usleep(200 * 1000);
    return false;
  }, static_cast<int>(kFullMs - (g_get_monotonic_time() - lifted) / 1000));
  const double full_s = (g_get_monotonic_time() - lifted) / 1e6;
  g_print("BANDWIDTH transport=rtsp limit=%d fps=%.1f longest_gap_ms=%.0f fraction_min=%.2f fraction_max=%.2f "
          "target_min=%d target_max=%d samples=%d lowered_status=%d restored=%d restore_s=%.1f full=%d full_s=%.1f\n",
          kFloorLimit, fps, gap / 1e3, fraction_min, fraction_max, target_min, target_max, samples, lowered,
          restored, restore_s, full, full_s);
  fail_unless(hosts.publisher.death().empty(), "the publisher died: %s", hosts.publisher.death().c_str());
  /* the viewer first: what fails without the lowered frame rate (seconds without a picture) */
  fail_unless(fps >= 6.0, "%.1f fps at the viewer under a %d kbit/s limit", fps, kFloorLimit);
  fail_unless(gap <= G_USEC_PER_SEC, "%.0f ms without a frame at the viewer", gap / 1e3);
  fail_unless(samples >= 5, "only %d stats answers in the window", samples);
  fail_unless(fraction_max < 1.0, "framerate-fraction %.2f under a %d kbit/s limit", fraction_max, kFloorLimit);
  fail_unless(target_min >= 300 && target_max <= 300, "target %d..%d kbit/s, not min-bitrate", target_min,
              target_max);
  fail_unless(lowered >= 1, "no status message about the lowered frame rate");
  fail_unless(restored, "framerate-fraction %.2f %d s after the limit lifted", fraction, kRestoreMs / 1000);
  fail_unless(full, "target %d kbit/s %d s after the limit lifted", climbed, kFullMs / 1000);
  /* the frame rate's last word since the limit: back to full (told after the lift, or just before
   * it when a probe brought every frame back then: nothing new to tell after the lift) */
  fail_unless(wait_until([&] {
                return hosts.publisher.last_status_containing("frame rate", limited).find("frame rate back to full") !=
                       std::string::npos;
              }, 3000),
              "no status message about the frame rate back to full (last: '%s')",
              hosts.publisher.last_status_containing("frame rate", limited).c_str());
  fail_unless(hosts.publisher.errors().empty(), "publisher error: %s", hosts.publisher.errors().front().c_str());
}
GST_END_TEST;

/* adaptive-bitrate=false: the same limit leaves the target at `bitrate` */
GST_START_TEST(test_fixed_rate_control) {
  Hosts hosts;
  start(hosts, "rtsp", false, false);
  fail_unless(hosts.limit(kLimit), "tc tbf failed");
  g_usleep(4 * G_USEC_PER_SEC);
  auto [target, measured] = hosts.rates();
  g_print("BANDWIDTH transport=rtsp adaptive=false target=%d measured=%d\n", target, measured);
  fail_unless_equals_int(target, kBitrate);
  fail_unless(measured > 0, "no measured bitrate");
}
GST_END_TEST;

static Suite *bandwidth_suite(void) {
  Suite *s = suite_create("bandwidth");
  TCase *tc = tcase_create("bandwidth");
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_adapts_rtsp_tcp);
  tcase_add_test(tc, test_adapts_whip);
  tcase_add_test(tc, test_fixed_rate_control);
  tcase_add_test(tc, test_below_floor_lowers_frame_rate);
  return s;
}

GST_CHECK_MAIN(bandwidth);
