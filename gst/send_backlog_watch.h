/* gst-mediamtx: a TCP socket's send backlog watched between the rate controller's reports.
 *
 * Plain C++, no GStreamer, time injected. RTSP over TCP tells the publisher nothing about its
 * uplink but its socket's send queue (SIOCOUTQ: bytes written and not yet acknowledged). When the
 * uplink shrinks under the stream, that queue grows by the difference at once (2.6 Mbit/s into a
 * 1 Mbit/s link: 1.6 s of delay per second), so waiting for the next 200 ms report and a smoothed
 * drain rate lets a second of delay build before the first cut. The publisher samples the queue
 * far more often (every ~40 ms: a cheap ioctl) and this class says when a queue *stands*:
 *
 *   SendBacklogWatch watch;
 *   BacklogReading r = watch.sample(now, bytes_written_so_far, siocoutq);
 *   if (r.overloaded) controller.update_backlog(now, r.queue_ms, r.delivered_kbps);
 *
 *  - delivered: what left the socket over the last kRateWindow (written - backlog growth), not
 *    smoothed: while a queue stands, TCP sends at the link's rate, so this is the link's rate
 *    within a window of the cut (a smoothed rate still shows the old one for a second);
 *  - standing queue: the smallest backlog over the last kStandingWindow, in time at that rate.
 *    A keyframe's burst is a backlog too, but one that drains: so overloaded also needs the
 *    backlog to have grown over that window (a queue that keeps filling: the sender is above the
 *    link), and the standing part above kOverloadMs.
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>

namespace gstmtx {

struct BacklogReading {
  bool valid = false;      /* enough samples for a delivered rate */
  bool overloaded = false; /* a standing queue above kOverloadMs that keeps growing */
  double queue_ms = 0;     /* the backlog now, in time at the delivered rate */
  double standing_ms = 0;  /* the least backlog over kStandingWindow, in time at that rate */
  bool growing = false;    /* the backlog now is above the one kStandingWindow ago */
  int delivered_kbps = 0;
};

class SendBacklogWatch {
public:
  using Millis = std::chrono::milliseconds;
  static constexpr Millis kRateWindow{200};     /* the delivered rate over this */
  static constexpr Millis kStandingWindow{120}; /* a queue standing (and growing) this long */
  static constexpr double kOverloadMs = 150.0;  /* ms of standing queue: overloaded */

  /* written: all bytes handed to the socket so far; backlog: its send queue now (bytes) */
  BacklogReading sample(Millis now, std::uint64_t written, std::int64_t backlog);
  void reset() { samples_.clear(); }

private:
  struct Sample {
    Millis now;
    std::uint64_t written;
    std::int64_t backlog;
  };
  std::deque<Sample> samples_;
};

}  // namespace gstmtx
