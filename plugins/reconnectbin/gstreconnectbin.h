/* gst-mediamtx: reconnectbin, a bin that keeps any child element alive.
 * See gstreconnectbin.cpp for the element documentation. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_RECONNECT_BIN (gst_reconnect_bin_get_type())
G_DECLARE_FINAL_TYPE(GstMtxReconnectBin, gst_reconnect_bin, GST, RECONNECT_BIN, GstBin)

#define GST_TYPE_RECONNECT_BIN_FALLBACK (gst_reconnect_bin_fallback_get_type())
GType gst_reconnect_bin_fallback_get_type(void);

typedef enum {
  GST_RECONNECT_BIN_FALLBACK_NONE,
  GST_RECONNECT_BIN_FALLBACK_BLACK,
  GST_RECONNECT_BIN_FALLBACK_FREEZE,
} GstReconnectBinFallback;

G_END_DECLS
