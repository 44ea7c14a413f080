/* gst-mediamtx: SpikeGuard and LiveSchedule on an rtpjitterbuffer (live_schedule.h). */
#include "live_schedule.h"

#include <gst/rtp/rtp.h>

#include <array>
#include <atomic>
#include <mutex>

namespace gstmtx {

SpikeGuard::SpikeGuard(GstClockTime latency, GstClockTime max_spike) : latency_(latency), max_spike_(max_spike) {}

GstClockTime SpikeGuard::arrival_for_jitterbuffer(GstClockTime arrival, GstClockTime rtp_time) {
  if (!GST_CLOCK_TIME_IS_VALID(arrival) || !GST_CLOCK_TIME_IS_VALID(rtp_time))
    return arrival;
  /* the delay up to a constant (the sender's clock origin): only its changes mean anything */
  const double delay = static_cast<double>(GST_CLOCK_DIFF(rtp_time, arrival));
  const double late = delay - smallest_delay_.add(static_cast<std::int64_t>(arrival), delay);
  GstClockTime given = arrival;
  if (late > static_cast<double>(latency_ + max_spike_)) {
    /* a stall, or a new stream's times: the jitter buffer starts over from this packet, so do we */
    smallest_delay_.clear();
    smallest_delay_.add(static_cast<std::int64_t>(arrival), delay);
  } else if (late > static_cast<double>(latency_)) {
    given = arrival - static_cast<GstClockTime>(late);
    if (GST_CLOCK_TIME_IS_VALID(last_given_) && given < last_given_)
      given = last_given_;
    absorbed_++;
  }
  last_given_ = given;
  return given;
}

namespace {

template <std::size_t N = 128> std::array<gint, N> filled(gint value) {
  std::array<gint, N> a;
  a.fill(value);
  return a;
}

/* Arrival running times by sequence number, for the packets between the two pads; the guard and
 * the schedule of one jitter buffer. */
struct Retimer {
  Retimer(GstClockTime latency, GstClockTime max_ahead) : guard(latency, kMaxSpike), schedule(latency, max_ahead) {}
  std::mutex lock;
  struct Arrival {
    gint seqnum = -1;
    GstClockTime time = GST_CLOCK_TIME_NONE;
  };
  std::array<Arrival, 4096> arrivals; /* more than a jitter buffer holds (seconds of video) */
  SpikeGuard guard;
  LiveSchedule schedule;
  /* RTP time of the input, extended (gst_rtp_buffer_ext_timestamp) */
  guint64 ext_rtp_time = GST_CLOCK_TIME_NONE;
  /* per payload type: the video clock rate, 0 not video, -1 not known yet (video_clock_rate) */
  std::array<gint, 128> clock_rates = filled(-1);
};

constexpr const char *kRetimerKey = "gstmtx-live-schedule";

/* An RTP packet's sequence number and payload type (-1 each: not RTP). */
struct RtpHeader {
  gint seqnum = -1, payload_type = -1;
};

RtpHeader rtp_header_of(GstBuffer *buffer) {
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  if (!gst_rtp_buffer_map(buffer, GST_MAP_READ, &rtp))
    return {};
  const RtpHeader header{gst_rtp_buffer_get_seq(&rtp), gst_rtp_buffer_get_payload_type(&rtp)};
  gst_rtp_buffer_unmap(&rtp);
  return header;
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

/* The clock rate in `caps` when they are RTP video, 0 for other media, -1 when they do not say. */
gint video_clock_rate_of(const GstCaps *caps) {
  const GstStructure *s = caps && gst_caps_get_size(caps) > 0 ? gst_caps_get_structure(caps, 0) : nullptr;
  gint rate = 0;
  if (!s || !gst_structure_get_int(s, "clock-rate", &rate) || rate <= 0)
    return -1;
  return g_strcmp0(gst_structure_get_string(s, "media"), "video") == 0 ? rate : 0;
}

/* The clock rate of payload type `pt` when it is video, 0 for anything else (audio keeps the
 * jitter buffer's own handling). The pad's caps say it, or, in rtpbin (webrtcbin), where they
 * carry no clock rate, the jitter buffer's "request-pt-map" does, as the jitter buffer asks it
 * itself; remembered per payload type. Not under the retimer's lock (the signal goes to rtpbin). */
gint video_clock_rate(Retimer *retimer, GstPad *pad, guint8 pt) {
  {
    std::lock_guard<std::mutex> guard(retimer->lock);
    if (retimer->clock_rates[pt & 0x7f] >= 0)
      return retimer->clock_rates[pt & 0x7f];
  }
  GstCaps *caps = gst_pad_get_current_caps(pad);
  gint rate = video_clock_rate_of(caps);
  if (caps)
    gst_caps_unref(caps);
  if (rate < 0) {
    GstElement *element = gst_pad_get_parent_element(pad);
    GstCaps *mapped = nullptr;
    if (element && g_signal_lookup("request-pt-map", G_OBJECT_TYPE(element)) != 0)
      g_signal_emit_by_name(element, "request-pt-map", static_cast<guint>(pt), &mapped);
    rate = video_clock_rate_of(mapped);
    if (mapped)
      gst_caps_unref(mapped);
    if (element)
      gst_object_unref(element);
    if (rate < 0)
      return 0; /* not known yet: asked again with the next packet */
  }
  std::lock_guard<std::mutex> guard(retimer->lock);
  retimer->clock_rates[pt & 0x7f] = rate;
  return rate;
}

/* Notes a packet's arrival; returns the DTS to give it instead of its own (a spike's late video
 * packet: SpikeGuard), or NONE to leave it. */
GstClockTime note_arrival(Retimer *retimer, GstPad *pad, GstBuffer *buffer) {
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  if (!gst_rtp_buffer_map(buffer, GST_MAP_READ, &rtp))
    return GST_CLOCK_TIME_NONE;
  const gint seqnum = gst_rtp_buffer_get_seq(&rtp);
  const guint32 timestamp = gst_rtp_buffer_get_timestamp(&rtp);
  const guint8 pt = gst_rtp_buffer_get_payload_type(&rtp);
  gst_rtp_buffer_unmap(&rtp);
  const gint clock_rate = video_clock_rate(retimer, pad, pt);
  GstClockTime arrival = to_running_time(pad, GST_BUFFER_DTS(buffer));
  if (!GST_CLOCK_TIME_IS_VALID(arrival)) {
    GstElement *element = gst_pad_get_parent_element(pad);
    if (element) {
      arrival = now_running_time(element);
      gst_object_unref(element);
    }
  }
  /* a retransmitted packet is late by nature: the jitter buffer leaves it out of its schedule too */
  const bool guarded = clock_rate > 0 && !GST_BUFFER_FLAG_IS_SET(buffer, GST_RTP_BUFFER_FLAG_RETRANSMISSION);
  GstClockTime given = arrival;
  std::lock_guard<std::mutex> guard(retimer->lock);
  retimer->arrivals[seqnum % retimer->arrivals.size()] = {seqnum, arrival};
  if (guarded) {
    const guint64 ext = gst_rtp_buffer_ext_timestamp(&retimer->ext_rtp_time, timestamp);
    given = retimer->guard.arrival_for_jitterbuffer(arrival, gst_util_uint64_scale_int(ext, GST_SECOND, clock_rate));
  }
  return given != arrival ? given : GST_CLOCK_TIME_NONE;
}

/* `running` as a position of `pad`'s segment, or NONE. */
GstClockTime to_position(GstPad *pad, GstClockTime running) {
  GstEvent *event = gst_pad_get_sticky_event(pad, GST_EVENT_SEGMENT, 0);
  if (!event)
    return GST_CLOCK_TIME_NONE;
  const GstSegment *segment = nullptr;
  gst_event_parse_segment(event, &segment);
  const GstClockTime position = segment->format == GST_FORMAT_TIME
                                    ? gst_segment_position_from_running_time(segment, GST_FORMAT_TIME, running)
                                    : GST_CLOCK_TIME_NONE;
  gst_event_unref(event);
  return position;
}

GstPadProbeReturn on_input(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *retimer = static_cast<Retimer *>(data);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    const GstClockTime given = note_arrival(retimer, pad, GST_PAD_PROBE_INFO_BUFFER(info));
    const GstClockTime position = GST_CLOCK_TIME_IS_VALID(given) ? to_position(pad, given) : GST_CLOCK_TIME_NONE;
    if (GST_CLOCK_TIME_IS_VALID(position)) {
      GstBuffer *buffer = gst_buffer_make_writable(GST_PAD_PROBE_INFO_BUFFER(info));
      GST_BUFFER_DTS(buffer) = position;
      GST_PAD_PROBE_INFO_DATA(info) = buffer;
    }
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    for (guint i = 0; i < gst_buffer_list_length(list); ++i) {
      const GstClockTime given = note_arrival(retimer, pad, gst_buffer_list_get(list, i));
      const GstClockTime position = GST_CLOCK_TIME_IS_VALID(given) ? to_position(pad, given) : GST_CLOCK_TIME_NONE;
      if (!GST_CLOCK_TIME_IS_VALID(position))
        continue;
      list = gst_buffer_list_make_writable(list);
      GST_PAD_PROBE_INFO_DATA(info) = list;
      GST_BUFFER_DTS(gst_buffer_list_get_writable(list, i)) = position;
    }
  }
  return GST_PAD_PROBE_OK;
}

/* The jitter buffer's output time less its ts-offset (lip-sync between streams, RTCP): the offset
 * stays as it is. */
GstPadProbeReturn on_output(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *retimer = static_cast<Retimer *>(data);
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  const RtpHeader header = rtp_header_of(buffer);
  const gint seqnum = header.seqnum;
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
  const bool video = video_clock_rate(retimer, pad, static_cast<guint8>(header.payload_type)) > 0;
  GstClockTime retimed, arrival_time;
  {
    std::lock_guard<std::mutex> guard(retimer->lock);
    const Retimer::Arrival &arrival = retimer->arrivals[seqnum % retimer->arrivals.size()];
    if (arrival.seqnum != seqnum)
      return GST_PAD_PROBE_OK;
    arrival_time = arrival.time;
    retimed = retimer->schedule.retime(pts, arrival_time, video);
  }
  if (retimed == pts || (ts_offset < 0 && retimed < static_cast<GstClockTime>(-ts_offset)))
    return GST_PAD_PROBE_OK;
  const GstClockTime position = to_position(pad, retimed + ts_offset);
  if (!GST_CLOCK_TIME_IS_VALID(position))
    return GST_PAD_PROBE_OK;
  GST_LOG_OBJECT(pad, "packet %d timed %" GST_STIME_FORMAT " from its arrival: %" GST_STIME_FORMAT " later", seqnum,
                 GST_STIME_ARGS(GST_CLOCK_DIFF(arrival_time, pts)), GST_STIME_ARGS(GST_CLOCK_DIFF(pts, retimed)));
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

void attach_live_schedule(GstElement *jitterbuffer, GstClockTime latency, GstClockTime max_ahead) {
  GstPad *sink = gst_element_get_static_pad(jitterbuffer, "sink");
  GstPad *src = gst_element_get_static_pad(jitterbuffer, "src");
  if (sink && src) {
    auto *retimer = new Retimer(latency, max_ahead);
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

LiveScheduleCounts live_schedule_counts(GstElement *jitterbuffer) {
  auto *retimer = static_cast<Retimer *>(g_object_get_data(G_OBJECT(jitterbuffer), kRetimerKey));
  if (!retimer)
    return {};
  std::lock_guard<std::mutex> guard(retimer->lock);
  return {retimer->schedule.retimed(), retimer->schedule.late(), retimer->guard.absorbed()};
}

}  // namespace gstmtx
