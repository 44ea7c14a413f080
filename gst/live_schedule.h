/* gst-mediamtx: a received packet is never timed far behind its arrival, nor far before it.
 *
 * rtpjitterbuffer (mode slave, as in webrtcbin) times a packet "base + RTP time + skew", the skew
 * following the smallest delay seen. Two of its habits cost a live picture dearly:
 *  - a packet that comes later than its time plus the latency makes it start over from that late
 *    packet ("reset jitterbuffer"): the frames after it keep the late packet's delay until the
 *    skew window has filled again (1-2 s) and snaps back. After a network stall the display plays
 *    ~0.7 s behind live for 0.5 s and catches up in a burst; after a queue's spike of ~100 ms (a
 *    publisher's bottleneck probed, a Wi-Fi burst) the picture stays 50-100 ms later than live for
 *    a second or more although the queue drained in 0.3 s (docs/benchmarks.md, "Bandwidth
 *    adaptation").
 *  - a late packet it does not start over for is timed before its arrival by more than the
 *    latency: a display sink (max-lateness 20 ms) drops the frame.
 * SpikeGuard hands the jitter buffer a spike's late packets (later than the smallest delay of the
 * last 2 s by more than the latency, by at most max_spike more) as if they had come on time: it
 * keeps its schedule. LiveSchedule then times a packet the jitter buffer times before
 * "arrival - latency" at "arrival - latency" (it leaves on time: the frame is shown as it comes,
 * late only while the queue lasts, and the frames after the spike are live again at once), and a
 * packet timed more than max_ahead after its arrival (the end of a stall longer than a spike, which
 * still starts the jitter buffer over) at its arrival: the sink shows the backlog at once. Never
 * before the packet before it. In the smooth case the jitter buffer times a packet within the
 * latency before its arrival: nothing changes.
 * Video only (audio keeps the jitter buffer's own handling: an audio sink would drop or stretch
 * re-timed samples).
 *
 *   gstmtx::attach_live_schedule(jitterbuffer, latency, max_ahead);   // rtpbin's "new-jitterbuffer"
 */
#pragma once

#include <gst/gst.h>

#include <cstdint>

#include "windowed_minimum.h"

namespace gstmtx {

/* Where the jitter buffer should think a packet arrived. Single-threaded; times in ns, running
 * times (arrival) and any origin (RTP time, extended: it never wraps). */
class SpikeGuard {
public:
  static constexpr GstClockTime kWindow = 2 * GST_SECOND; /* the smallest delay of this long */
  SpikeGuard(GstClockTime latency, GstClockTime max_spike);

  /* The arrival to give the jitter buffer for a packet of RTP time `rtp_time` that arrived at
   * `arrival`: `arrival`, or, for a spike's late packet, the time it would have come at the
   * window's smallest delay (never before the arrival given for the packet before it). */
  GstClockTime arrival_for_jitterbuffer(GstClockTime arrival, GstClockTime rtp_time);
  /* how many packets were handed over as on time */
  guint64 absorbed() const { return absorbed_; }

private:
  GstClockTime latency_, max_spike_;
  WindowedMinimum smallest_delay_{static_cast<std::int64_t>(kWindow)};
  GstClockTime last_given_ = GST_CLOCK_TIME_NONE;
  guint64 absorbed_ = 0;
};

class LiveSchedule {
public:
  /* `latency`: the jitter buffer's; `max_ahead`: how much later than its arrival a packet may be
   * timed (the jitter buffer's smoothing stays below it). */
  LiveSchedule(GstClockTime latency, GstClockTime max_ahead) : latency_(latency), max_ahead_(max_ahead) {}

  /* The running time to give a packet the jitter buffer timed `pts` that arrived at `arrival`
   * (running times): "arrival - latency" when `pts` is before that (late: it leaves on time), its
   * arrival when `pts` is more than max_ahead after it, else `pts`; never before the packet before
   * it (a decoder that sees a time go back stops trusting its input's times: GstVideoDecoder then
   * paces frames by their duration). `pts` invalid: as it is. `late_on_time` false (audio): a
   * late packet stays as it is. */
  GstClockTime retime(GstClockTime pts, GstClockTime arrival, bool late_on_time = true) {
    if (!GST_CLOCK_TIME_IS_VALID(pts))
      return pts;
    GstClockTime out = pts;
    if (GST_CLOCK_TIME_IS_VALID(arrival) && pts > arrival + max_ahead_) {
      out = arrival;
      retimed_++;
    } else if (late_on_time && GST_CLOCK_TIME_IS_VALID(arrival) && arrival > latency_ && pts < arrival - latency_) {
      out = arrival - latency_;
      late_++;
    }
    if (GST_CLOCK_TIME_IS_VALID(last_) && out < last_)
      out = last_;
    last_ = out;
    return out;
  }

  /* how many packets were timed at their arrival (held too long) */
  guint64 retimed() const { return retimed_; }
  /* how many late packets were timed to leave on time */
  guint64 late() const { return late_; }

private:
  GstClockTime latency_, max_ahead_;
  GstClockTime last_ = GST_CLOCK_TIME_NONE; /* the previous packet's time */
  guint64 retimed_ = 0, late_ = 0;
};

/* Notes each packet's arrival on `jitterbuffer`'s sink pad (its DTS, or the running time when it
 * has none, as rtpjitterbuffer does), gives a video packet the DTS its SpikeGuard says (max_spike:
 * kMaxSpike), and retimes the video output with a LiveSchedule. Packets are matched by RTP
 * sequence number. Any thread; the probes live as long as the pads. */
inline constexpr GstClockTime kMaxSpike = 500 * GST_MSECOND;
void attach_live_schedule(GstElement *jitterbuffer, GstClockTime latency, GstClockTime max_ahead);

/* A buffer out of `element` (a video decoder) is never timed after the newest time that went into
 * it. After a network stall GstVideoDecoder sees a frame time go back by a few microseconds,
 * stops trusting its input's times and times each frame "previous + frame duration": its output
 * ran up to ~0.5 s ahead of its input, and the display played the backlog at 30 frames a second
 * 0.7-0.9 s behind live before a burst caught up. A correctly timed frame (B-frames included) was
 * always timed at or before the newest input: nothing else changes. Probes on the static "sink"
 * and "src" pads; any thread. */
void clamp_to_newest_input(GstElement *element);

/* What attach_live_schedule() did on `jitterbuffer` so far (zeros if not attached): packets timed
 * at their arrival, late packets timed to leave on time, spike packets handed over as on time. */
struct LiveScheduleCounts {
  guint64 retimed = 0, late = 0, absorbed = 0;
};
LiveScheduleCounts live_schedule_counts(GstElement *jitterbuffer);

}  // namespace gstmtx
