/* gst-mediamtx: whepsrc, a WHEP viewer source bin around webrtcbin. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WHEP_SRC (gst_whep_src_get_type())
G_DECLARE_FINAL_TYPE(GstMtxWhepSrc, gst_whep_src, GST, WHEP_SRC, GstBin)

G_END_DECLS
