#include "frame_stamp.h"

#include <cstring>

namespace testbed {

namespace {
constexpr int kBlock = 32, kCols = 32, kRows = 2, kX0 = 32, kY0 = 32;

/* never 0 for v = 0 and never 0xffff for all ones: a black or white (or grey) patch must not pass */
guint64 stamp_check(guint64 v) { return (((v * 0x9E3779B97F4A7C15ull) >> 48) ^ 0x5A3C) & 0xffff; }

/* top of the bottom copy: as far from the bottom edge as the top copy is from the top */
int bottom_row(const GstVideoFrame *frame) { return GST_VIDEO_FRAME_HEIGHT(frame) - kY0 - kRows * kBlock; }

GstPadProbeReturn stamp_probe(GstPad *pad, GstPadProbeInfo *info, gpointer both_ends) {
  GstBuffer *buf = gst_buffer_make_writable(GST_PAD_PROBE_INFO_BUFFER(info));
  GST_PAD_PROBE_INFO_DATA(info) = buf;
  g_autoptr(GstCaps) caps = gst_pad_get_current_caps(pad);
  GstVideoInfo vinfo;
  if (!caps || !gst_video_info_from_caps(&vinfo, caps))
    return GST_PAD_PROBE_OK;
  GstVideoFrame frame;
  if (gst_video_frame_map(&frame, &vinfo, buf, GST_MAP_WRITE)) {
    const guint64 now = static_cast<guint64>(g_get_monotonic_time());
    stamp_write(&frame, now);
    if (both_ends)
      stamp_write_at(&frame, now, bottom_row(&frame));
    gst_video_frame_unmap(&frame);
  }
  return GST_PAD_PROBE_OK;
}
}  // namespace

void stamp_write(GstVideoFrame *frame, guint64 us) { stamp_write_at(frame, us, kY0); }

void stamp_write_at(GstVideoFrame *frame, guint64 us, int y0) {
  guint64 word = ((us & 0xffffffffffffull) << 16) | stamp_check(us & 0xffffffffffffull);
  guint8 *y = static_cast<guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(frame, 0));
  int ystride = GST_VIDEO_FRAME_PLANE_STRIDE(frame, 0);
  bool planar420 = GST_VIDEO_FRAME_FORMAT(frame) == GST_VIDEO_FORMAT_I420;
  for (int bit = 0; bit < 64; bit++) {
    int bx = kX0 + (bit % kCols) * kBlock, by = y0 + (bit / kCols) * kBlock;
    guint8 value = ((word >> (63 - bit)) & 1) ? 235 : 16;
    for (int r = 0; r < kBlock; r++)
      memset(y + (by + r) * ystride + bx, value, kBlock);
    if (planar420) {
      for (int plane = 1; plane <= 2; plane++) {
        guint8 *c = static_cast<guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(frame, plane));
        int cs = GST_VIDEO_FRAME_PLANE_STRIDE(frame, plane);
        for (int r = 0; r < kBlock / 2; r++)
          memset(c + (by / 2 + r) * cs + bx / 2, 128, kBlock / 2);
      }
    }
  }
}

bool stamp_read(const GstVideoFrame *frame, guint64 *us) { return stamp_read_at(frame, us, kY0); }

bool stamp_read_at(const GstVideoFrame *frame, guint64 *us, int y0) {
  const guint8 *y = static_cast<const guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(frame, 0));
  int ystride = GST_VIDEO_FRAME_PLANE_STRIDE(frame, 0);
  if (y0 < 0 || GST_VIDEO_FRAME_WIDTH(frame) < kX0 + kCols * kBlock ||
      GST_VIDEO_FRAME_HEIGHT(frame) < y0 + kRows * kBlock)
    return false;
  guint64 word = 0;
  for (int bit = 0; bit < 64; bit++) {
    int bx = kX0 + (bit % kCols) * kBlock + kBlock / 4, by = y0 + (bit / kCols) * kBlock + kBlock / 4;
    unsigned sum = 0;
    for (int r = 0; r < kBlock / 2; r++)
      for (int c = 0; c < kBlock / 2; c++)
        sum += y[(by + r) * ystride + bx + c];
    word = (word << 1) | (sum / (kBlock * kBlock / 4) > 125 ? 1 : 0);
  }
  guint64 v = word >> 16;
  if (v == 0 || v == 0xffffffffffffull || (word & 0xffff) != stamp_check(v))
    return false;
  *us = v;
  return true;
}

bool read_buffer_stamp(GstPad *pad, GstBuffer *buffer, guint64 *us, bool both_ends) {
  g_autoptr(GstCaps) caps = gst_pad_get_current_caps(pad);
  GstVideoInfo info;
  if (!caps || !gst_video_info_from_caps(&info, caps) || !GST_VIDEO_INFO_IS_YUV(&info))
    return false;
  GstVideoFrame frame;
  if (!gst_video_frame_map(&frame, &info, buffer, GST_MAP_READ))
    return false;
  guint64 bottom = 0;
  bool ok = stamp_read(&frame, us) && (!both_ends || (stamp_read_at(&frame, &bottom, bottom_row(&frame)) && bottom == *us));
  gst_video_frame_unmap(&frame);
  return ok;
}

void attach_stamper(GstPad *pad, bool both_ends) {
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, stamp_probe, both_ends ? GINT_TO_POINTER(1) : nullptr, nullptr);
}

}  // namespace testbed
