#include "keyframe_gate.h"

#include <gst/video/video.h>

namespace gstmtx {

void KeyframeGate::request(GstPad *pad) {
  if (pad)
    gst_pad_send_event(pad, gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 0));
}

void KeyframeGate::close(GstPad *pad) {
  closed_ = true;
  if (pad) {
    last_request_us_ = g_get_monotonic_time();
    request(pad);
  }
}

bool KeyframeGate::admit(GstPad *pad, const GstBuffer *buffer) {
  if (!closed_.load())
    return true;
  if (buffer && !GST_BUFFER_FLAG_IS_SET(buffer, GST_BUFFER_FLAG_DELTA_UNIT)) {
    closed_ = false;
    return true;
  }
  const gint64 now = g_get_monotonic_time();
  gint64 last = last_request_us_.load();
  if (pad && now - last >= interval_us_ && last_request_us_.compare_exchange_strong(last, now))
    request(pad);
  return false;
}

bool KeyframeGate::admit(GstPad *pad, GstBufferList *list) {
  return admit(pad, list && gst_buffer_list_length(list) ? gst_buffer_list_get(list, 0) : nullptr);
}

}  // namespace gstmtx
