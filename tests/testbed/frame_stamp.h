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
/* Reads the code from a mapped YUV frame; false when it does not pass its check (a broken or
 * missing picture). */
bool stamp_read(const GstVideoFrame *frame, guint64 *us);
/* stamp_read on a buffer flowing through `pad` (its current caps describe it). */
bool read_buffer_stamp(GstPad *pad, GstBuffer *buffer, guint64 *us);
/* A buffer probe on `pad` that stamps every frame with g_get_monotonic_time(). */
void attach_stamper(GstPad *pad);

}  // namespace testbed
