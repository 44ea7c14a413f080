/* gst-mediamtx: a per-packet estimate of the uplink from transport-wide congestion control
 * feedback (TWCC, draft-holmer-rmcat-transport-wide-cc-extensions-01).
 *
 * Plain C++, no GStreamer, time injected. The WHIP publisher hands it, per feedback message, each
 * packet's transport-wide sequence number, its send time (our clock), its arrival time (the
 * receiver's clock, any offset) or "lost", and its size (gst/twcc_feedback.h reads them from
 * rtpsession's "RTPTWCCPackets" event). From them:
 *
 *  - queuing delay: the one-way delay (arrival - send) of each packet group above its minimum over
 *    kBaseWindow (the offset between the two clocks and the path's own delay cancel). `queue_ms`
 *    is the latest group's; `standing_queue_ms` the smallest over the last kStandingWindow, i.e.
 *    the queue that a keyframe's burst does not explain (a burst drains within its GOP; a rate
 *    above the link leaves a queue that no group escapes).
 *  - delay trend (GCC's trendline, draft-ietf-rmcat-gcc 5.3, in a form of our own): packets sent
 *    within kBurst of each other form a group (one video frame); per group the variation
 *    d = (arrival delta) - (send delta) is accumulated and smoothed, and a least-squares line over
 *    the last kTrendGroups groups gives how fast the queue grows, in ms per second (+30 ms/s:
 *    the sender is 3 % above the link). Overuse when that slope stays above an adaptive
 *    threshold (it follows |slope| slowly upwards, quickly downwards, within
 *    [kThresholdMin, kThresholdMax]: jitter that is always there raises it, a clean link lowers it)
 *    for kOveruseTime while the queue is above kOveruseMinQueue ms; underuse when it is below
 *    minus the threshold (the queue drains). A keyframe's burst is one group: a jump, then a
 *    drain; the adaptive threshold and the queue condition keep one burst from reading as overuse.
 *  - link capacity: while the bottleneck holds a queue it sends at its own rate, so the bytes that
 *    arrived between two packets that both waited (queuing delay above kBusyQueue) over the
 *    arrival span between them is the link's rate. Keyframes queue every GOP, so the capacity is
 *    measured whether or not the sender is above the link; the median of the last kBusySamples
 *    busy spans (each at least kBusyMinSpan), forgotten after kCapacityMaxAge.
 *  - delivered / sent: bytes of the packets acknowledged in the last kRateWindow of arrival time,
 *    over their arrival span and over their send span.
 *  - loss: packets reported lost among those sent in the last kLossWindow; a packet reported lost
 *    and later received (reordering) counts as received; duplicates count once.
 * Sequence numbers are unwrapped (16 bits); a jump in either clock by more than kMaxGap restarts
 * the delay history (a reset receiver clock, a long pause).
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <vector>

#include "windowed_minimum.h"

namespace gstmtx {

struct TwccPacket {
  std::uint16_t seq = 0;     /* transport-wide sequence number */
  std::int64_t send_us = -1; /* when we sent it (our clock); < 0: unknown (not ours: ignored) */
  std::int64_t arrival_us = -1; /* when it arrived (the receiver's clock); < 0: reported lost */
  std::uint32_t size = 0;    /* bytes */
};

enum class DelayTrend { Unknown, Normal, Overuse, Underuse };
const char *delay_trend_name(DelayTrend trend);

struct TwccEstimate {
  bool have_delay = false;      /* at least two groups seen */
  double queue_ms = 0;          /* latest group's one-way delay above the base */
  double standing_queue_ms = 0; /* smallest over the last kStandingWindow */
  double trend_ms_per_s = 0;    /* growth of the queue (trendline slope) */
  double threshold_ms_per_s = 0;
  DelayTrend trend = DelayTrend::Unknown;
  int capacity_kbps = 0;        /* 0: not measured lately */
  int delivered_kbps = 0;       /* 0: unknown */
  int sent_kbps = 0;
  double loss = -1;             /* < 0: no packet reported yet */
  std::int64_t newest_send_us = -1; /* send time of the newest packet reported */
  std::int64_t last_lost_send_us = -1; /* send time of the newest packet reported lost (-1: none) */
};

class TwccEstimator {
public:
  using Micros = std::int64_t;
  static constexpr Micros kBurst = 5000;                /* send span of one group */
  static constexpr Micros kBaseWindow = 10'000'000;     /* base delay: minimum over this */
  static constexpr Micros kStandingWindow = 1'000'000;  /* standing queue: minimum over this */
  static constexpr std::size_t kTrendGroups = 20;       /* trendline window (~0.7 s at 30 fps) */
  static constexpr double kSmoothing = 0.9;             /* of the accumulated delay, per group */
  static constexpr double kThresholdStart = 40.0;       /* ms/s */
  static constexpr double kThresholdMin = 20.0;
  static constexpr double kThresholdMax = 400.0;
  static constexpr double kThresholdUp = 0.5;           /* per second, when |trend| is above */
  static constexpr double kThresholdDown = 4.0;         /* per second, when below */
  static constexpr double kThresholdMaxStep = 150.0;    /* a |trend| this far above does not adapt it */
  static constexpr Micros kOveruseTime = 60'000;        /* trend over the threshold this long */
  static constexpr double kOveruseMinQueue = 10.0;      /* ms */
  static constexpr double kBusyQueue = 5.0;             /* ms: the packet waited: the link was busy */
  static constexpr Micros kBusyMinSpan = 60'000;        /* a capacity sample spans at least this */
  static constexpr std::size_t kBusySamples = 9;
  static constexpr Micros kCapacityMaxAge = 2'000'000;
  static constexpr Micros kRateWindow = 500'000;
  static constexpr Micros kLossWindow = 1'000'000;
  static constexpr Micros kMaxGap = 3'000'000;

  /* One feedback message's packets, in any order. */
  void add(const std::vector<TwccPacket> &packets);
  const TwccEstimate &estimate() const { return estimate_; }
  void reset() { *this = TwccEstimator(); }

private:
  struct Record {
    Micros send_us;
    Micros arrival_us; /* < 0: lost so far */
    std::uint32_t size;
  };
  struct Group {
    Micros first_send = 0, last_send = 0, arrival = 0;
    std::uint64_t bytes = 0;
    double queue_ms = 0; /* of its last packet */
    bool open = false;
  };
  void add_received(std::int64_t ext, const Record &r);
  void complete_group(const Group &g);
  void update_busy(Micros send_us, Micros arrival_us, std::uint32_t size, double queue_ms);
  void update_rates();
  void update_loss();
  void restart_delay();

  bool have_seq_ = false;
  std::int64_t last_ext_ = 0;          /* highest unwrapped sequence number seen */
  std::int64_t delay_ext_ = -1;        /* highest one taken into the delay estimate */
  std::map<std::int64_t, Record> packets_; /* recent packets by unwrapped sequence number */

  Group group_;
  bool have_prev_group_ = false;
  Group prev_group_;
  double accumulated_ = 0, smoothed_ = 0;
  std::deque<std::pair<double, double>> trend_points_; /* (arrival ms, smoothed accumulated delay) */
  Micros first_arrival_ = 0;
  std::size_t groups_seen_ = 0;
  double typical_group_bytes_ = 0; /* smoothed size of the groups that are not bursts */
  double threshold_ = kThresholdStart;
  Micros last_threshold_update_ = -1;
  Micros overuse_since_ = -1;
  double last_trend_ = 0;

  WindowedMinimum base_{kBaseWindow};         /* one-way delay (ms) by arrival time */
  WindowedMinimum standing_{kStandingWindow}; /* queue (ms) by arrival time */

  /* the link busy since this packet (arrival, bytes after it), -1: not busy */
  Micros busy_start_ = -1, busy_last_ = -1;
  std::uint64_t busy_bytes_ = 0;
  Micros last_busy_send_ = -1, last_busy_arrival_ = -1; /* the previous packet */
  double last_busy_queue_ = 0;
  std::deque<std::pair<Micros, double>> capacity_samples_; /* (arrival, kbit/s) */

  Micros newest_arrival_ = -1, newest_send_ = -1;
  Micros last_delay_send_ = -1; /* send time of the packet newest_arrival_ belongs to */
  TwccEstimate estimate_;
};

}  // namespace gstmtx
