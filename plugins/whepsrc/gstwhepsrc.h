/* gst-mediamtx: whepsrc, a WHEP viewer source bin around webrtcbin. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WHEP_SRC (gst_whep_src_get_type())
G_DECLARE_FINAL_TYPE(GstMtxWhepSrc, gst_whep_src, GST, WHEP_SRC, GstBin)

/* What the video pad shows while the session delivers no picture (the `placeholder` property). */
typedef enum {
  GST_MTX_WHEP_PLACEHOLDER_NONE,   /* nothing: no invented frames (recorders, frame counters) */
  GST_MTX_WHEP_PLACEHOLDER_STATUS, /* a generated slate saying what is going on */
} GstMtxWhepPlaceholder;

#define GST_TYPE_MTX_WHEP_PLACEHOLDER (gst_mtx_whep_placeholder_get_type())
GType gst_mtx_whep_placeholder_get_type(void);

G_END_DECLS
