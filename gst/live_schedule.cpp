/* gst-mediamtx: LiveSchedule on an rtpjitterbuffer (live_schedule.h). */
#include "live_schedule.h"

#include <gst/rtp/rtp.h>

#include <array>
#include <atomic>
#include <mutex>

namespace gstmtx {

namespace {

/* Arrival running times by sequence number, for the packets between the two pads. */
struct Retimer {
  explicit Retimer(GstClockTime max_ahead) : schedule(max_ahead) {}
  std::mutex lock;
  struct Arrival {
    gint seqnum = -1;
    GstClockTime time = GST_CLOCK_TIME_NONE;
  };
  std::array<Arrival, 4096> arrivals; /* more than a jitter buffer holds (seconds of video) */
  LiveSchedule schedule;
};

constexpr const char *kRetimerKey = "gstmtx-live-schedule";

gint seqnum_of(GstBuffer *buffer) {
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  if (!gst_rtp_buffer_map(buffer, GST_MAP_READ, &rtp))
    return -1;
  const gint seqnum = gst_rtp_buffer_get_seq(&rtp);
  gst_rtp_buffer_unmap(&rtp);
  return seqnum;
}

/* `position` on `pad` as a running time (its segment), or NONE. */
GstClockTime to_running_time(GstPad *pad, GstClockTime position) {
  if (!GST_CLOCK_TIME_IS_VALID(position))
    return GST_CLOCK_TIME_NONE;
  GstEvent *event = gst_pad_get_sticky_event(pad, GST_EVENT_SEGMENT, 0);
  if (!event)
    return GST_CLOCK_TIME_NONE;
  const GstSegment *segment = nullptr;
  gst_event_parse_segment(event, &segment);
  const GstClockTime running =
      segment->format == GST_FORMAT_TIME ? gst_segment_to_running_time(segment, GST_FORMAT_TIME, position)
                                         : GST_CLOCK_TIME_NONE;
  gst_event_unref(event);
  return running;
}

GstClockTime now_running_time(GstElement *element) {
  GstClock *clock = gst_element_get_clock(element);
  if (!clock)
    return GST_CLOCK_TIME_NONE;
  const GstClockTime now = gst_clock_get_time(clock);
  gst_object_unref(clock);
  const GstClockTime base = gst_element_get_base_time(element);
  return now >= base ? now - base : GST_CLOCK_TIME_NONE;
}

void note_arrival(Retimer *retimer, GstPad *pad, GstBuffer *buffer) {
  const gint seqnum = seqnum_of(buffer);
  if (seqnum < 0)
    return;
  GstClockTime arrival = to_running_time(pad, GST_BUFFER_DTS(buffer));
  if (!GST_CLOCK_TIME_IS_VALID(arrival)) {
    GstElement *element = gst_pad_get_parent_element(pad);
    if (element) {
      arrival = now_running_time(element);
      gst_object_unref(element);
    }
  }
  std::lock_guard<std::mutex> guard(retimer->lock);
  retimer->arrivals[seqnum % retimer->arrivals.size()] = {seqnum, arrival};
}

GstPadProbeReturn on_input(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *retimer = static_cast<Retimer *>(data);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    note_arrival(retimer, pad, GST_PAD_PROBE_INFO_BUFFER(info));
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    for (guint i = 0; i < gst_buffer_list_length(list); ++i)
      note_arrival(retimer, pad, gst_buffer_list_get(list, i));
  }
  return GST_PAD_PROBE_OK;
}

/* The jitter buffer's output time less its ts-offset (lip-sync between streams, RTCP): the offset
 * stays as it is. */
GstPadProbeReturn on_output(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *retimer = static_cast<Retimer *>(data);
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  const gint seqnum = seqnum_of(buffer);
  if (seqnum < 0)
    return GST_PAD_PROBE_OK;
  const GstClockTime out = to_running_time(pad, GST_BUFFER_PTS(buffer));
  gint64 ts_offset = 0;
  if (GstElement *element = gst_pad_get_parent_element(pad)) {
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(element), "ts-offset"))
      g_object_get(element, "ts-offset", &ts_offset, nullptr);
    gst_object_unref(element);
  }
  if (!GST_CLOCK_TIME_IS_VALID(out) || (ts_offset < 0 && out < static_cast<GstClockTime>(-ts_offset)))
    return GST_PAD_PROBE_OK;
  const GstClockTime pts = out - ts_offset;
  GstClockTime retimed;
  {
    std::lock_guard<std::mutex> guard(retimer->lock);
    const Retimer::Arrival &arrival = retimer->arrivals[seqnum % retimer->arrivals.size()];
    if (arrival.seqnum != seqnum)
      return GST_PAD_PROBE_OK;
    retimed = retimer->schedule.retime(pts, arrival.time);
  }
  if (retimed == pts || (ts_offset < 0 && retimed < static_cast<GstClockTime>(-ts_offset)))
    return GST_PAD_PROBE_OK;
  GstEvent *event = gst_pad_get_sticky_event(pad, GST_EVENT_SEGMENT, 0);
  if (!event)
    return GST_PAD_PROBE_OK;
  const GstSegment *segment = nullptr;
  gst_event_parse_segment(event, &segment);
  const GstClockTime position = gst_segment_position_from_running_time(segment, GST_FORMAT_TIME, retimed + ts_offset);
  gst_event_unref(event);
  if (!GST_CLOCK_TIME_IS_VALID(position))
    return GST_PAD_PROBE_OK;
  GST_LOG_OBJECT(pad, "packet %d timed %" GST_STIME_FORMAT " after its arrival: at its arrival", seqnum,
                 GST_STIME_ARGS(GST_CLOCK_DIFF(retimed, pts)));
  buffer = gst_buffer_make_writable(buffer);
  GST_BUFFER_PTS(buffer) = position;
  GST_PAD_PROBE_INFO_DATA(info) = buffer;
  return GST_PAD_PROBE_OK;
}

struct NewestInput {
  std::atomic<GstClockTime> pts{GST_CLOCK_TIME_NONE};
};

GstPadProbeReturn on_element_input(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *newest = static_cast<NewestInput *>(data);
  const GstClockTime pts = GST_BUFFER_PTS(GST_PAD_PROBE_INFO_BUFFER(info));
  const GstClockTime previous = newest->pts.load();
  if (GST_CLOCK_TIME_IS_VALID(pts) && (!GST_CLOCK_TIME_IS_VALID(previous) || pts > previous))
    newest->pts.store(pts);
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn on_element_output(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *newest = static_cast<NewestInput *>(data);
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  const GstClockTime pts = GST_BUFFER_PTS(buffer), limit = newest->pts.load();
  if (!GST_CLOCK_TIME_IS_VALID(pts) || !GST_CLOCK_TIME_IS_VALID(limit) || pts <= limit)
    return GST_PAD_PROBE_OK;
  GST_LOG_OBJECT(pad, "output timed %" GST_TIME_FORMAT " after the newest input: timed with it",
                 GST_TIME_ARGS(pts - limit));
  buffer = gst_buffer_make_writable(buffer);
  GST_BUFFER_PTS(buffer) = limit;
  GST_BUFFER_DTS(buffer) = limit;
  GST_PAD_PROBE_INFO_DATA(info) = buffer;
  return GST_PAD_PROBE_OK;
}

}  // namespace

void clamp_to_newest_input(GstElement *element) {
  GstPad *sink = gst_element_get_static_pad(element, "sink");
  GstPad *src = gst_element_get_static_pad(element, "src");
  if (sink && src) {
    auto *newest = new NewestInput();
    gst_pad_add_probe(sink, GST_PAD_PROBE_TYPE_BUFFER, on_element_input, newest, nullptr);
    gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, on_element_output, newest,
                      [](gpointer data) { delete static_cast<NewestInput *>(data); });
  }
  if (sink)
    gst_object_unref(sink);
  if (src)
    gst_object_unref(src);
}

void attach_live_schedule(GstElement *jitterbuffer, GstClockTime max_ahead) {
  GstPad *sink = gst_element_get_static_pad(jitterbuffer, "sink");
  GstPad *src = gst_element_get_static_pad(jitterbuffer, "src");
  if (sink && src) {
    auto *retimer = new Retimer(max_ahead);
    /* the element owns the retimer: its pads (and probes) go with it */
    g_object_set_data_full(G_OBJECT(jitterbuffer), kRetimerKey, retimer,
                           [](gpointer data) { delete static_cast<Retimer *>(data); });
    gst_pad_add_probe(sink, static_cast<GstPadProbeType>(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                      on_input, retimer, nullptr);
    gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, on_output, retimer, nullptr);
  }
  if (sink)
    gst_object_unref(sink);
  if (src)
    gst_object_unref(src);
}

guint64 live_schedule_retimed(GstElement *jitterbuffer) {
  auto *retimer = static_cast<Retimer *>(g_object_get_data(G_OBJECT(jitterbuffer), kRetimerKey));
  if (!retimer)
    return 0;
  std::lock_guard<std::mutex> guard(retimer->lock);
  return retimer->schedule.retimed();
}

}  // namespace gstmtx
