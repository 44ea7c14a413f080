/* Unit tests of gstmtx::TwccEstimator (gst/twcc_estimator.h) with synthetic per-packet TWCC
 * feedback: a video sender (30 frames a second, packets of at most 1200 bytes sent back to back,
 * optionally a bigger keyframe every second) through a bottleneck of a given capacity with a FIFO
 * in front of it (dropping what would wait longer than its limit), feedback every 100 ms with the
 * receiver's clock at an arbitrary offset. Also the reading of rtpsession's "RTPTWCCPackets"
 * structure (gst/twcc_feedback.h) from well-formed and malformed input, and the estimator driving
 * the RateController (gst/rate_controller.h) on such a link. */
#include <gst/check/gstcheck.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "rate_controller.h"
#include "twcc_estimator.h"
#include "twcc_feedback.h"

using namespace gstmtx;

namespace {

constexpr std::int64_t kFrameUs = 33'333;
constexpr std::int64_t kFeedbackUs = 100'000;
constexpr std::uint32_t kMtu = 1200;

struct Sent {
  std::uint16_t seq;
  std::int64_t send_us, arrival_local_us; /* arrival in our time; -1: dropped */
  std::uint32_t size;
  bool reported = false;
};

/* Sender, bottleneck and receiver. */
struct Sim {
  double capacity_kbps;
  double rate_kbps;
  double queue_limit_ms = 200;
  double random_loss = 0;
  double jitter_ms = 0; /* added after the bottleneck, uniform in [0, jitter_ms] */
  double keyframe_factor = 1; /* a keyframe every second this many times a frame */
  std::int64_t offset_us = 987'654'321; /* receiver clock - ours */
  std::int64_t base_us = 20'000;
  std::uint16_t next_seq = 0;
  std::int64_t now_us = 1'000'000'000;
  std::int64_t link_free_us = 0;
  std::int64_t next_frame_us = 1'000'000'000;
  std::int64_t next_feedback_us = 1'000'000'000 + kFeedbackUs;
  long frames = 0;
  std::vector<Sent> sent;
  std::mt19937 rng{7};
  double max_queue_ms = 0; /* the deepest queue a packet met since the last reset of it */

  void send_frame() {
    double bytes = rate_kbps * 1000.0 / 8.0 / 30.0;
    if (keyframe_factor > 1)
      bytes = frames % 30 == 0 ? bytes * keyframe_factor * 30.0 / (29.0 + keyframe_factor)
                               : bytes * 30.0 / (29.0 + keyframe_factor);
    frames++;
    std::int64_t t = next_frame_us;
    for (double left = bytes; left > 0; left -= kMtu, t += 20) {
      const auto size = static_cast<std::uint32_t>(std::min<double>(left, kMtu));
      const std::int64_t start = std::max(t, link_free_us);
      const double wait_ms = (start - t) / 1000.0;
      std::int64_t arrival = -1;
      if (wait_ms <= queue_limit_ms) {
        link_free_us = start + static_cast<std::int64_t>(size * 8.0 * 1000.0 / capacity_kbps);
        max_queue_ms = std::max(max_queue_ms, wait_ms);
        if (random_loss <= 0 || std::bernoulli_distribution(random_loss)(rng) == false)
          arrival = link_free_us + base_us +
                    static_cast<std::int64_t>(std::uniform_real_distribution<double>(0, jitter_ms * 1000)(rng));
      }
      sent.push_back({next_seq++, t, arrival, size});
    }
    next_frame_us += kFrameUs;
  }

  /* The next feedback message: every packet that arrived by now, and those lost before the last
   * one that arrived, each once. */
  std::vector<TwccPacket> feedback() {
    std::vector<TwccPacket> out;
    std::int64_t newest_arrived_send = -1;
    for (const Sent &s : sent)
      if (s.arrival_local_us >= 0 && s.arrival_local_us <= now_us)
        newest_arrived_send = std::max(newest_arrived_send, s.send_us);
    for (Sent &s : sent) {
      if (s.reported)
        continue;
      const bool arrived = s.arrival_local_us >= 0 && s.arrival_local_us <= now_us;
      const bool lost = s.arrival_local_us < 0 && s.send_us < newest_arrived_send;
      if (!arrived && !lost)
        continue;
      s.reported = true;
      out.push_back({s.seq, s.send_us, arrived ? s.arrival_local_us + offset_us : -1, s.size});
    }
    sent.erase(std::remove_if(sent.begin(), sent.end(), [](const Sent &s) { return s.reported; }), sent.end());
    return out;
  }

  /* Advance by `duration_us`; `on_feedback` gets each message. */
  template <typename F> void run(std::int64_t duration_us, F on_feedback) {
    const std::int64_t end = now_us + duration_us;
    while (now_us < end) {
      const std::int64_t next = std::min(next_frame_us, next_feedback_us);
      now_us = next;
      if (next == next_frame_us)
        send_frame();
      if (next == next_feedback_us) {
        next_feedback_us += kFeedbackUs;
        on_feedback(feedback());
      }
    }
  }
};

struct Counts {
  int overuse = 0, underuse = 0, normal = 0, messages = 0;
  void add(const TwccEstimate &e) {
    messages++;
    overuse += e.trend == DelayTrend::Overuse;
    underuse += e.trend == DelayTrend::Underuse;
    normal += e.trend == DelayTrend::Normal;
  }
};

}  // namespace

/* A steady link with room to spare: no queue, no overuse, no loss; the rates are what is sent. */
GST_START_TEST(test_twcc_steady_link) {
  Sim sim{2000, 1400};
  TwccEstimator est;
  Counts counts;
  sim.run(10'000'000, [&](const std::vector<TwccPacket> &p) {
    est.add(p);
    counts.add(est.estimate());
  });
  const TwccEstimate &e = est.estimate();
  fail_unless_equals_int(counts.overuse, 0);
  fail_unless(e.have_delay);
  fail_unless(e.queue_ms < 5 && e.standing_queue_ms < 5, "queue %.1f / %.1f ms", e.queue_ms, e.standing_queue_ms);
  fail_unless(std::fabs(e.loss) < 1e-9, "loss %.3f", e.loss);
  fail_unless(e.delivered_kbps > 1250 && e.delivered_kbps < 1550, "delivered %d", e.delivered_kbps);
  fail_unless(e.sent_kbps > 1250 && e.sent_kbps < 1550, "sent %d", e.sent_kbps);
  fail_unless(e.trend == DelayTrend::Normal, "trend %s", delay_trend_name(e.trend));
}
GST_END_TEST;

/* The sender goes 10 % past the link: overuse within a few hundred ms of the queue starting, the
 * capacity measured within 5 %; then 40 % below it: underuse while the queue drains, then normal. */
GST_START_TEST(test_twcc_overuse_then_underuse) {
  Sim sim{1000, 700};
  TwccEstimator est;
  sim.run(5'000'000, [&](const std::vector<TwccPacket> &p) { est.add(p); });
  fail_unless(est.estimate().trend == DelayTrend::Normal);
  sim.rate_kbps = 1100;
  sim.queue_limit_ms = 1000;
  std::int64_t detected = -1, measured = -1;
  const std::int64_t start = sim.now_us;
  sim.run(3'000'000, [&](const std::vector<TwccPacket> &p) {
    est.add(p);
    if (detected < 0 && est.estimate().trend == DelayTrend::Overuse)
      detected = sim.now_us - start;
    /* what the rate controller reacts to first: a sending rate above a measured capacity */
    if (measured < 0 && est.estimate().capacity_kbps > 0 && est.estimate().capacity_kbps < 1050)
      measured = sim.now_us - start;
  });
  GST_INFO("10 %% past the link: capacity measured after %.0f ms, overuse after %.0f ms", measured / 1000.0,
           detected / 1000.0);
  fail_unless(measured > 0 && measured <= 300'000, "capacity after %lld us", static_cast<long long>(measured));
  fail_unless(detected > 0 && detected <= 800'000, "overuse after %lld us", static_cast<long long>(detected));
  const int capacity = est.estimate().capacity_kbps;
  fail_unless(capacity > 950 && capacity < 1050, "capacity %d kbit/s of 1000", capacity);
  fail_unless(est.estimate().queue_ms > 100, "queue %.0f ms after 3 s at 110 %%", est.estimate().queue_ms);

  sim.rate_kbps = 600;
  Counts drain;
  sim.run(1'000'000, [&](const std::vector<TwccPacket> &p) {
    est.add(p);
    drain.add(est.estimate());
  });
  fail_unless(drain.underuse >= 3, "underuse in %d of %d messages while draining", drain.underuse, drain.messages);
  sim.run(5'000'000, [&](const std::vector<TwccPacket> &p) { est.add(p); });
  fail_unless(est.estimate().trend == DelayTrend::Normal, "after the drain: %s", delay_trend_name(est.estimate().trend));
  fail_unless(est.estimate().queue_ms < 5, "queue %.1f ms", est.estimate().queue_ms);
}
GST_END_TEST;

/* Keyframes 5 times a frame's size every second at 80 % of the link: each one queues for a moment
 * (which measures the capacity) but the trend never calls it overuse. */
GST_START_TEST(test_twcc_keyframes_are_not_overuse) {
  Sim sim{1000, 800};
  sim.keyframe_factor = 5;
  TwccEstimator est;
  Counts counts;
  int with_capacity = 0;
  double max_queue = 0;
  sim.run(20'000'000, [&](const std::vector<TwccPacket> &p) {
    est.add(p);
    counts.add(est.estimate());
    max_queue = std::max(max_queue, est.estimate().queue_ms);
    if (est.estimate().capacity_kbps > 0) {
      with_capacity++;
      fail_unless(std::abs(est.estimate().capacity_kbps - 1000) < 60, "capacity %d", est.estimate().capacity_kbps);
    }
  });
  GST_INFO("keyframes: overuse %d, underuse %d of %d, capacity in %d, max queue %.0f ms", counts.overuse,
           counts.underuse, counts.messages, with_capacity, max_queue);
  fail_unless(max_queue > 20, "the keyframes did not queue (%.0f ms)", max_queue);
  fail_unless_equals_int(counts.overuse, 0);
  fail_unless(with_capacity > counts.messages / 2, "capacity known in %d of %d", with_capacity, counts.messages);
}
GST_END_TEST;

/* Path jitter (0-15 ms after the bottleneck) at 70 % of the link: delays above the busy threshold
 * that are not a queue must not read as a busy link (the capacity would be the sending rate) nor
 * as overuse. */
GST_START_TEST(test_twcc_jitter_is_not_a_busy_link) {
  Sim sim{2000, 1400};
  sim.jitter_ms = 15;
  TwccEstimator est;
  Counts counts;
  sim.run(15'000'000, [&](const std::vector<TwccPacket> &p) {
    est.add(p);
    counts.add(est.estimate());
    const int capacity = est.estimate().capacity_kbps;
    fail_unless(capacity == 0 || capacity > 1800, "capacity %d kbit/s on a 2000 kbit/s link sent at 1400", capacity);
  });
  fail_unless_equals_int(counts.overuse, 0);
}
GST_END_TEST;

/* Random loss after the bottleneck: measured (10 % +- 4), and it is not a queue. */
GST_START_TEST(test_twcc_random_loss) {
  Sim sim{3000, 1500};
  sim.random_loss = 0.10;
  TwccEstimator est;
  Counts counts;
  double sum = 0;
  int n = 0;
  sim.run(10'000'000, [&](const std::vector<TwccPacket> &p) {
    est.add(p);
    counts.add(est.estimate());
    if (est.estimate().loss >= 0) {
      sum += est.estimate().loss;
      n++;
    }
  });
  const double mean = sum / n;
  fail_unless(mean > 0.06 && mean < 0.14, "mean loss %.3f", mean);
  fail_unless_equals_int(counts.overuse, 0);
}
GST_END_TEST;

/* Reordering and late reports: the messages' packets shuffled, a fifth of the packets first
 * reported lost and then received in the next message, every message delivered twice: the same
 * estimate as the clean feed (no loss, rates within 3 %, same trend). */
GST_START_TEST(test_twcc_reordered_duplicated_late) {
  for (double rate : {800.0, 1100.0}) {
    Sim clean_sim{1000, rate}, messy_sim{1000, rate};
    clean_sim.queue_limit_ms = messy_sim.queue_limit_ms = 2000;
    TwccEstimator clean, messy;
    std::mt19937 rng(3);
    std::vector<TwccPacket> held;
    clean_sim.run(6'000'000, [&](const std::vector<TwccPacket> &p) { clean.add(p); });
    messy_sim.run(6'000'000, [&](const std::vector<TwccPacket> &p) {
      std::vector<TwccPacket> msg = held;
      held.clear();
      for (TwccPacket q : p) {
        if (std::bernoulli_distribution(0.2)(rng)) {
          held.push_back(q);
          q.arrival_us = -1; /* lost in this report, received in the next one */
        }
        msg.push_back(q);
      }
      std::shuffle(msg.begin(), msg.end(), rng);
      messy.add(msg);
      messy.add(msg);
    });
    messy.add(held);
    const TwccEstimate &a = clean.estimate(), &b = messy.estimate();
    GST_INFO("rate %.0f: clean %s q %.1f cap %d del %d; messy %s q %.1f cap %d del %d loss %.3f", rate,
             delay_trend_name(a.trend), a.queue_ms, a.capacity_kbps, a.delivered_kbps, delay_trend_name(b.trend),
             b.queue_ms, b.capacity_kbps, b.delivered_kbps, b.loss);
    fail_unless(b.loss < 0.01, "loss %.3f from late reports", b.loss);
    fail_unless(std::abs(a.delivered_kbps - b.delivered_kbps) <= a.delivered_kbps * 0.03, "delivered %d vs %d",
                a.delivered_kbps, b.delivered_kbps);
    fail_unless(std::abs(a.sent_kbps - b.sent_kbps) <= a.sent_kbps * 0.03, "sent %d vs %d", a.sent_kbps, b.sent_kbps);
    fail_unless(b.trend == a.trend, "trend %s vs %s", delay_trend_name(b.trend), delay_trend_name(a.trend));
    if (rate > 1000)
      fail_unless(b.trend == DelayTrend::Overuse && b.capacity_kbps > 900, "messy feed missed the overuse");
  }
}
GST_END_TEST;

/* Sequence numbers wrapping past 65535 and a receiver clock that jumps by an hour: the same
 * estimate as without them; the jump restarts the delay history instead of reading as a queue. */
GST_START_TEST(test_twcc_wrap_and_clock_jump) {
  Sim plain{1000, 900}, wrapped{1000, 900};
  wrapped.next_seq = 65'000;
  TwccEstimator a, b;
  plain.run(8'000'000, [&](const std::vector<TwccPacket> &p) { a.add(p); });
  wrapped.run(8'000'000, [&](const std::vector<TwccPacket> &p) { b.add(p); });
  fail_unless(std::fabs(a.estimate().queue_ms - b.estimate().queue_ms) < 0.01);
  fail_unless_equals_int(a.estimate().delivered_kbps, b.estimate().delivered_kbps);
  fail_unless(b.estimate().loss < 1e-9, "wrap read as loss: %.3f", b.estimate().loss);

  wrapped.offset_us += 3'600'000'000LL;
  Counts after;
  wrapped.run(3'000'000, [&](const std::vector<TwccPacket> &p) {
    b.add(p);
    after.add(b.estimate());
    fail_unless(b.estimate().queue_ms < 50, "clock jump read as a %.0f ms queue", b.estimate().queue_ms);
  });
  fail_unless_equals_int(after.overuse, 0);
  fail_unless(b.estimate().have_delay);
}
GST_END_TEST;

/* The estimator driving the RateController on a 1000 kbit/s link with keyframes: the sender
 * starts at 2500, is below the link within 1 s, then settles at 80-97 % of the link with a short
 * queue (no packet waits 150 ms after the first 5 s, none dropped) instead of probing past it. */
GST_START_TEST(test_twcc_drives_rate_controller) {
  Sim sim{1000, 2500};
  sim.keyframe_factor = 3;
  TwccEstimator est;
  RateController rc(300, 2500);
  std::int64_t below = -1;
  const std::int64_t start = sim.now_us;
  std::vector<int> targets;
  std::size_t dropped = 0, sent = 0;
  sim.run(30'000'000, [&](const std::vector<TwccPacket> &p) {
    est.add(p);
    const TwccEstimate &e = est.estimate();
    RateFeedback fb;
    fb.now = std::chrono::milliseconds(sim.now_us / 1000);
    fb.queuing_delay_ms = e.have_delay ? e.standing_queue_ms : -1;
    fb.delay_overuse = e.trend == DelayTrend::Overuse;
    fb.capacity_kbps = e.capacity_kbps;
    fb.delivered_kbps = e.delivered_kbps;
    fb.sent_kbps = e.sent_kbps;
    fb.loss = e.loss;
    sim.rate_kbps = rc.update(fb).target_kbps;
    if (below < 0 && sim.rate_kbps < 1000)
      below = sim.now_us - start;
    if (sim.now_us - start > 5'000'000) {
      targets.push_back(static_cast<int>(sim.rate_kbps));
      for (const TwccPacket &q : p) {
        sent++;
        dropped += q.arrival_us < 0;
      }
    }
    if (sim.now_us - start == 5'000'000)
      sim.max_queue_ms = 0;
  });
  double mean = 0;
  for (int t : targets)
    mean += t;
  mean /= targets.size();
  GST_INFO("below the link after %.0f ms; settled mean %.0f kbit/s, max queue %.0f ms, %zu of %zu dropped",
           below / 1000.0, mean, sim.max_queue_ms, dropped, sent);
  fail_unless(below > 0 && below <= 1'000'000, "below the link after %lld us", static_cast<long long>(below));
  fail_unless(mean >= 800 && mean <= 970, "settled at %.0f kbit/s on a 1000 kbit/s link", mean);
  fail_unless(sim.max_queue_ms < 150, "a packet waited %.0f ms after settling", sim.max_queue_ms);
  fail_unless_equals_int(static_cast<int>(dropped), 0);
}
GST_END_TEST;

namespace {
GstStructure *packet_structure(guint seqnum, guint64 local, guint64 remote, guint size, gboolean lost) {
  return gst_structure_new("RTPTWCCPacket", "seqnum", G_TYPE_UINT, seqnum, "local-ts", G_TYPE_UINT64, local,
                           "remote-ts", G_TYPE_UINT64, remote, "payload-type", G_TYPE_UCHAR, 96, "size", G_TYPE_UINT,
                           size, "lost", G_TYPE_BOOLEAN, lost, nullptr);
}

G_GNUC_BEGIN_IGNORE_DEPRECATIONS
void append_value(GValueArray *array, const GValue *value) { g_value_array_append(array, value); }

GstStructure *packets_structure(const std::vector<GstStructure *> &packets, bool add_garbage) {
  GValueArray *array = g_value_array_new(0);
  for (GstStructure *p : packets) {
    GValue v = G_VALUE_INIT;
    g_value_init(&v, GST_TYPE_STRUCTURE);
    g_value_take_boxed(&v, p);
    append_value(array, &v);
    g_value_unset(&v);
  }
  if (add_garbage) {
    GValue v = G_VALUE_INIT;
    g_value_init(&v, G_TYPE_STRING);
    g_value_set_string(&v, "not a packet");
    append_value(array, &v);
    g_value_unset(&v);
    g_value_array_append(array, nullptr); /* an unset value */
  }
  GstStructure *s = gst_structure_new_empty("RTPTWCCPackets");
  GValue value = G_VALUE_INIT;
  g_value_init(&value, g_value_array_get_type());
  g_value_take_boxed(&value, array);
  gst_structure_take_value(s, "packets", &value);
  return s;
}
G_GNUC_END_IGNORE_DEPRECATIONS
}  // namespace

/* rtpsession's event structure: read as it is in GStreamer 1.22-1.26; anything malformed is left out. */
GST_START_TEST(test_twcc_structure_parsing) {
  std::vector<TwccPacket> out;
  GstStructure *good = packets_structure(
      {packet_structure(65535, 5 * GST_SECOND, 9 * GST_SECOND, 1200, FALSE),
       packet_structure(0, 5 * GST_SECOND + GST_MSECOND, GST_CLOCK_TIME_NONE, 900, TRUE),
       packet_structure(1, 5 * GST_SECOND + 2 * GST_MSECOND, 9 * GST_SECOND, 800, TRUE), /* "lost" wins */
       packet_structure(70000, 5 * GST_SECOND, 9 * GST_SECOND, 1200, FALSE),             /* not 16 bits */
       packet_structure(2, GST_CLOCK_TIME_NONE, 9 * GST_SECOND, 1200, FALSE),            /* no send time */
       gst_structure_new("RTPTWCCPacket", "seqnum", G_TYPE_UINT, 3u, nullptr),           /* fields missing */
       gst_structure_new("RTPTWCCPacket", "seqnum", G_TYPE_INT, 4, "local-ts", G_TYPE_INT, 5, nullptr)},
      true);
  fail_unless(twcc_packets_from_structure(good, &out));
  fail_unless_equals_int(static_cast<int>(out.size()), 3);
  fail_unless_equals_int(out[0].seq, 65535);
  fail_unless(out[0].send_us == 5'000'000 && out[0].arrival_us == 9'000'000 && out[0].size == 1200);
  fail_unless(out[1].seq == 0 && out[1].arrival_us == -1 && out[1].send_us == 5'001'000);
  fail_unless(out[2].seq == 1 && out[2].arrival_us == -1);
  gst_structure_free(good);

  out.clear();
  GstStructure *other = gst_structure_new("GstRTPRetransmissionRequest", "seqnum", G_TYPE_UINT, 1u, nullptr);
  fail_if(twcc_packets_from_structure(other, &out));
  gst_structure_free(other);
  GstStructure *no_array = gst_structure_new("RTPTWCCPackets", "packets", G_TYPE_STRING, "x", nullptr);
  fail_if(twcc_packets_from_structure(no_array, &out));
  gst_structure_free(no_array);
  GstStructure *empty = gst_structure_new_empty("RTPTWCCPackets");
  fail_if(twcc_packets_from_structure(empty, &out));
  gst_structure_free(empty);
  fail_if(twcc_packets_from_structure(nullptr, &out));
  fail_unless(out.empty());

  /* an estimator fed garbage values stays sane */
  TwccEstimator est;
  est.add({{1, 0, 0, 0}, {1, 0, 0, 0}, {2, -5, 7, 100}, {3, 1'000'000'000'000LL, 1, 100}, {4, 1, 1'000'000'000'000LL, 1}});
  est.add({});
  fail_unless(std::isfinite(est.estimate().queue_ms) && std::isfinite(est.estimate().trend_ms_per_s));
}
GST_END_TEST;

static Suite *twcc_estimator_suite(void) {
  Suite *s = suite_create("twcc_estimator");
  TCase *tc = tcase_create("twcc");
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_twcc_steady_link);
  tcase_add_test(tc, test_twcc_overuse_then_underuse);
  tcase_add_test(tc, test_twcc_keyframes_are_not_overuse);
  tcase_add_test(tc, test_twcc_jitter_is_not_a_busy_link);
  tcase_add_test(tc, test_twcc_random_loss);
  tcase_add_test(tc, test_twcc_reordered_duplicated_late);
  tcase_add_test(tc, test_twcc_wrap_and_clock_jump);
  tcase_add_test(tc, test_twcc_drives_rate_controller);
  tcase_add_test(tc, test_twcc_structure_parsing);
  return s;
}

GST_CHECK_MAIN(twcc_estimator);
