/* gst-mediamtx tests: a time code drawn into raw video frames and read back after encode, network
 * and decode, for latency and picture-integrity checks (tests/bench, whepsrc tests).
 *
 * 48 bits (a g_get_monotonic_time() in microseconds) + a 16-bit check, as 2 rows of 32 black/white
 * blocks of 32x32 pixels at (32,32) in the luma plane: big enough to survive 2 Mbit/s H.264 at
 * 720p; the frame must be at least 1056x96. */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

namespace testbed {

/* Draws `us` into a mapped YUV frame. */
void stamp_write(GstVideoFrame *frame, guint64 us);
/* The same with the code's top row at `y0` (a second copy lower in the picture). */
void stamp_write_at(GstVideoFrame *frame, guint64 us, int y0);
/* Reads the code from a mapped YUV frame; false when it does not pass its check (a broken or
 * missing picture). */
bool stamp_read(const GstVideoFrame *frame, guint64 *us);
bool stamp_read_at(const GstVideoFrame *frame, guint64 *us, int y0);
/* stamp_read on a buffer flowing through `pad` (its current caps describe it). both_ends: the
 * frame also carries the copy at the bottom (attach_stamper(pad, true)) and both read the same:
 * a picture broken below its top rows (lost slices, error concealment) fails. */
bool read_buffer_stamp(GstPad *pad, GstBuffer *buffer, guint64 *us, bool both_ends = false);
/* A buffer probe on `pad` that stamps every frame with g_get_monotonic_time(); both_ends: a copy
 * at the bottom of the picture too. */
void attach_stamper(GstPad *pad, bool both_ends = false);

}  // namespace testbed
