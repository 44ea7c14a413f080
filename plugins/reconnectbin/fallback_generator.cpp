/* gst-mediamtx: reconnectbin's fallback generator.
 *
 * While a source child is down (and the bin plays), one fallback thread keeps downstream running
 * on the pipeline clock, at the stream's cadence: black frames or the last frame for raw video
 * (`fallback=black|freeze`), 20 ms of silence for raw audio, GAP events otherwise or with
 * `fallback=none`. It pushes under the stream lock of the src ghost pad's internal pad, so its
 * data and a restarted child's never interleave; the child's first buffer ends it.
 */
#include "reconnectbin_private.h"

#include <gst/audio/audio.h>
#include <gst/video/video.h>

#include <algorithm>

#define GST_CAT_DEFAULT gst_reconnect_bin_debug

/* GAP events every this long while a non-raw source is down */
#define GAP_INTERVAL (100 * GST_MSECOND)

/* Fallback thread: makes one black raw video frame in `info`'s format. */
static GstBuffer *reconnect_bin_black_frame(const GstVideoInfo *info) {
  GstVideoInfo ayuv;
  gst_video_info_set_format(&ayuv, GST_VIDEO_FORMAT_AYUV, GST_VIDEO_INFO_WIDTH(info), GST_VIDEO_INFO_HEIGHT(info));
  GST_VIDEO_INFO_FPS_N(&ayuv) = GST_VIDEO_INFO_FPS_N(info);
  GST_VIDEO_INFO_FPS_D(&ayuv) = GST_VIDEO_INFO_FPS_D(info);
  GST_VIDEO_INFO_PAR_N(&ayuv) = GST_VIDEO_INFO_PAR_N(info);
  GST_VIDEO_INFO_PAR_D(&ayuv) = GST_VIDEO_INFO_PAR_D(info);
  g_autoptr(GstBuffer) in = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&ayuv), nullptr);
  GstBuffer *out = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(info), nullptr);
  GstVideoFrame in_frame, out_frame;
  if (!gst_video_frame_map(&in_frame, &ayuv, in, GST_MAP_WRITE)) {
    gst_buffer_unref(out);
    return nullptr;
  }
  for (int y = 0; y < GST_VIDEO_INFO_HEIGHT(&ayuv); ++y) {
    guint8 *line = static_cast<guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(&in_frame, 0)) +
                   y * GST_VIDEO_FRAME_PLANE_STRIDE(&in_frame, 0);
    for (int x = 0; x < GST_VIDEO_INFO_WIDTH(&ayuv); ++x) {
      line[4 * x + 0] = 255;
      line[4 * x + 1] = 16;
      line[4 * x + 2] = 128;
      line[4 * x + 3] = 128;
    }
  }
  if (!gst_video_frame_map(&out_frame, info, out, GST_MAP_WRITE)) {
    gst_video_frame_unmap(&in_frame);
    gst_buffer_unref(out);
    return nullptr;
  }
  GstVideoConverter *converter = gst_video_converter_new(&ayuv, const_cast<GstVideoInfo *>(info), nullptr);
  if (converter) {
    gst_video_converter_frame(converter, &in_frame, &out_frame);
    gst_video_converter_free(converter);
  }
  gst_video_frame_unmap(&out_frame);
  gst_video_frame_unmap(&in_frame);
  if (!converter) {
    gst_buffer_unref(out);
    return nullptr;
  }
  return out;
}

/* Fallback thread: while the source child of `failed_generation` is down, pushes fallback
 * frames, silence or GAP events at the stream's cadence on the pipeline clock. */
static void reconnect_bin_fallback_loop(GstMtxReconnectBin *self, guint failed_generation) {
  ReconnectBinPrivate *priv = self->priv;
  ReconnectBinSourceSide &src = priv->src;
  g_autoptr(GstClock) clock = gst_element_get_clock(GST_ELEMENT(self));
  if (!clock)
    return;
  GstReconnectBinFallback mode;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    mode = priv->settings.fallback;
  }
  const GstClockTime base_time = gst_element_get_base_time(GST_ELEMENT(self));

  g_autoptr(GstBuffer) frame = nullptr; /* the template pushed each time; nullptr: GAP events */
  GstClockTime duration = GAP_INTERVAL;
  GstClockTime start_rt;
  GstClockTimeDiff lag;
  GST_PAD_STREAM_LOCK(src.internal);
  if (priv->fallback_stop || src.flowing_gen > failed_generation || !src.caps || !src.started) {
    GST_PAD_STREAM_UNLOCK(src.internal);
    return;
  }
  const GstStructure *s = gst_caps_get_structure(src.caps, 0);
  if (mode != GST_RECONNECT_BIN_FALLBACK_NONE && gst_structure_has_name(s, "video/x-raw")) {
    GstVideoInfo info;
    if (gst_video_info_from_caps(&info, src.caps)) {
      if (mode == GST_RECONNECT_BIN_FALLBACK_FREEZE && src.last_frame) {
        frame = gst_buffer_copy_deep(src.last_frame); /* and give the old child's pool its buffer back */
        gst_clear_buffer(&src.last_frame);
      } else
        frame = reconnect_bin_black_frame(&info);
      if (GST_VIDEO_INFO_FPS_N(&info) > 0)
        duration = gst_util_uint64_scale_int(GST_SECOND, GST_VIDEO_INFO_FPS_D(&info), GST_VIDEO_INFO_FPS_N(&info));
      else if (GST_CLOCK_TIME_IS_VALID(src.last_duration) && src.last_duration > 0)
        duration = src.last_duration;
      else
        duration = 40 * GST_MSECOND;
    }
  } else if (mode != GST_RECONNECT_BIN_FALLBACK_NONE && gst_structure_has_name(s, "audio/x-raw")) {
    GstAudioInfo info;
    if (gst_audio_info_from_caps(&info, src.caps) && GST_AUDIO_INFO_RATE(&info) > 0) {
      const gint samples = std::max(GST_AUDIO_INFO_RATE(&info) / 50, 1); /* 20 ms */
      const gsize size = static_cast<gsize>(samples) * GST_AUDIO_INFO_BPF(&info);
      frame = gst_buffer_new_allocate(nullptr, size, nullptr);
      GstMapInfo map;
      if (gst_buffer_map(frame, &map, GST_MAP_WRITE)) {
        gst_audio_format_info_fill_silence(info.finfo, map.data, map.size);
        gst_buffer_unmap(frame, &map);
      }
      if (GST_AUDIO_INFO_LAYOUT(&info) == GST_AUDIO_LAYOUT_NON_INTERLEAVED)
        gst_buffer_add_audio_meta(frame, &info, samples, nullptr);
      duration = gst_util_uint64_scale_int(samples, GST_SECOND, GST_AUDIO_INFO_RATE(&info));
    }
  }
  lag = src.have_lag ? std::max<GstClockTimeDiff>(src.lag, 0) : 0;
  {
    const GstClockTime now = gst_clock_get_time(clock);
    const GstClockTime now_rt = now > base_time ? now - base_time : 0;
    start_rt = now_rt > static_cast<GstClockTime>(lag) ? now_rt - lag : 0;
    if (GST_CLOCK_TIME_IS_VALID(src.last_rt_end) && src.last_rt_end > start_rt)
      start_rt = src.last_rt_end;
  }
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  gst_pad_push_event(src.ghost, gst_event_new_segment(&segment));
  GST_PAD_STREAM_UNLOCK(src.internal);
  GST_INFO_OBJECT(self, "fallback (%s) from running time %" GST_TIME_FORMAT ", every %" GST_TIME_FORMAT,
                  frame ? "frames" : "gap events", GST_TIME_ARGS(start_rt), GST_TIME_ARGS(duration));

  for (guint64 k = 0;; ++k) {
    const GstClockTime rt = start_rt + k * duration;
    GstClockID id = gst_clock_new_single_shot_id(clock, base_time + rt + lag);
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      priv->fallback_clock_id = id;
    }
    if (!priv->fallback_stop)
      gst_clock_id_wait(id, nullptr);
    {
      std::lock_guard<std::mutex> guard(priv->lock);
      priv->fallback_clock_id = nullptr;
    }
    gst_clock_id_unref(id);
    if (priv->fallback_stop)
      break;

    GST_PAD_STREAM_LOCK(src.internal);
    if (priv->fallback_stop || src.flowing_gen > failed_generation) {
      GST_PAD_STREAM_UNLOCK(src.internal);
      break;
    }
    GstFlowReturn ret = GST_FLOW_OK;
    if (frame) {
      GstBuffer *buffer = gst_buffer_copy(frame);
      GST_BUFFER_PTS(buffer) = rt;
      GST_BUFFER_DTS(buffer) = GST_CLOCK_TIME_NONE;
      GST_BUFFER_DURATION(buffer) = duration;
      GST_BUFFER_OFFSET(buffer) = GST_BUFFER_OFFSET_NONE;
      GST_BUFFER_OFFSET_END(buffer) = GST_BUFFER_OFFSET_NONE;
      GST_BUFFER_FLAGS(buffer) = k == 0 ? GST_BUFFER_FLAG_DISCONT : 0;
      ret = gst_pad_push(src.ghost, buffer);
    } else {
      gst_pad_push_event(src.ghost, gst_event_new_gap(rt, duration));
    }
    src.last_rt_end = rt + duration;
    GST_PAD_STREAM_UNLOCK(src.internal);
    priv->fallback_buffers++;
    if (ret == GST_FLOW_FLUSHING || ret == GST_FLOW_EOS || ret <= GST_FLOW_NOT_NEGOTIATED) {
      GST_DEBUG_OBJECT(self, "fallback stops: downstream returned %s", gst_flow_get_name(ret));
      break;
    }
  }
}

/* Control thread: starts the fallback for a source bin whose child of `failed_generation` went
 * down. */
void reconnect_bin_start_fallback(GstMtxReconnectBin *self, guint failed_generation) {
  ReconnectBinPrivate *priv = self->priv;
  if (!priv->src.ghost || GST_STATE_TARGET(self) != GST_STATE_PLAYING)
    return;
  reconnect_bin_stop_fallback(self);
  priv->fallback = std::thread(reconnect_bin_fallback_loop, self, failed_generation);
}

/* Control thread or application thread (shutdown): stops and joins the fallback thread. */
void reconnect_bin_stop_fallback(GstMtxReconnectBin *self) {
  ReconnectBinPrivate *priv = self->priv;
  if (!priv->fallback.joinable())
    return;
  priv->fallback_stop = true;
  {
    std::lock_guard<std::mutex> guard(priv->lock);
    if (priv->fallback_clock_id)
      gst_clock_id_unschedule(priv->fallback_clock_id);
  }
  priv->fallback.join();
  priv->fallback_stop = false;
}

