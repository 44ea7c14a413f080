/* gst-mediamtx: mediamtxsink, publish a camera to MediaMTX in one element and keep publishing. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_MEDIAMTX_SINK (gst_mediamtx_sink_get_type())
G_DECLARE_FINAL_TYPE(GstMediamtxSink, gst_mediamtx_sink, GST, MEDIAMTX_SINK, GstBin)

#define GST_TYPE_MEDIAMTX_SINK_TRANSPORT (gst_mediamtx_sink_transport_get_type())
GType gst_mediamtx_sink_transport_get_type(void);
#define GST_TYPE_MEDIAMTX_SINK_RTSP_TRANSPORT (gst_mediamtx_sink_rtsp_transport_get_type())
GType gst_mediamtx_sink_rtsp_transport_get_type(void);

G_END_DECLS
