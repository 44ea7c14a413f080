/* gst-mediamtx: a received packet is never timed far behind its arrival.
 *
 * rtpjitterbuffer (mode slave, as in webrtcbin) times a packet "base + RTP time + skew". When a
 * packet comes later than that by more than the latency (the end of a network stall), it starts
 * over from that late packet: the backlog that follows in a burst is timed at the sender's pace
 * from the stall's end, and the frames after it keep the stall's delay until the skew window has
 * filled again and snaps back. A display sink then plays ~0.7 s behind live for 0.5 s and catches
 * up in a burst (docs/benchmarks.md, "Bandwidth adaptation"). LiveSchedule times such a packet at
 * its arrival (never before the packet before it): the sink shows the backlog at once and is live
 * again. In the smooth case the jitter buffer times a packet at or before its arrival (the
 * skew is the smallest delay seen): nothing changes, and a late packet stays late.
 *
 *   gstmtx::attach_live_schedule(jitterbuffer, max_ahead);   // rtpbin's "new-jitterbuffer"
 */
#pragma once

#include <gst/gst.h>

namespace gstmtx {

class LiveSchedule {
public:
  /* `max_ahead`: how much later than its arrival a packet may be timed (the jitter buffer's
   * smoothing stays below it). */
  explicit LiveSchedule(GstClockTime max_ahead) : max_ahead_(max_ahead) {}

  /* The running time to give a packet the jitter buffer timed `pts` that arrived at `arrival`
   * (running times): its arrival when `pts` is more than max_ahead after it, else `pts`; never
   * before the packet before it (a decoder that sees a time go back stops trusting its input's
   * times: GstVideoDecoder then paces frames by their duration). `pts` invalid: as it is. */
  GstClockTime retime(GstClockTime pts, GstClockTime arrival) {
    if (!GST_CLOCK_TIME_IS_VALID(pts))
      return pts;
    GstClockTime out = pts;
    if (GST_CLOCK_TIME_IS_VALID(arrival) && pts > arrival + max_ahead_) {
      out = arrival;
      retimed_++;
    }
    if (GST_CLOCK_TIME_IS_VALID(last_) && out < last_)
      out = last_;
    last_ = out;
    return out;
  }

  /* how many packets were retimed */
  guint64 retimed() const { return retimed_; }

private:
  GstClockTime max_ahead_;
  GstClockTime last_ = GST_CLOCK_TIME_NONE; /* the previous packet's time */
  guint64 retimed_ = 0;
};

/* Notes each packet's arrival on `jitterbuffer`'s sink pad (its DTS, or the running time when it
 * has none, as rtpjitterbuffer does) and retimes its output with a LiveSchedule. Packets are
 * matched by RTP sequence number. Any thread; the probes live as long as the pads. */
void attach_live_schedule(GstElement *jitterbuffer, GstClockTime max_ahead);

/* A buffer out of `element` (a video decoder) is never timed after the newest time that went into
 * it. After a network stall GstVideoDecoder sees a frame time go back by a few microseconds,
 * stops trusting its input's times and times each frame "previous + frame duration": its output
 * ran up to ~0.5 s ahead of its input, and the display played the backlog at 30 frames a second
 * 0.7-0.9 s behind live before a burst caught up. A correctly timed frame (B-frames included) was
 * always timed at or before the newest input: nothing else changes. Probes on the static "sink"
 * and "src" pads; any thread. */
void clamp_to_newest_input(GstElement *element);

/* How many packets attach_live_schedule() retimed on `jitterbuffer` so far (0 if not attached). */
guint64 live_schedule_retimed(GstElement *jitterbuffer);

}  // namespace gstmtx
