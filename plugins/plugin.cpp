/* gst-mediamtx: the "mediamtx" plugin. Registers the elements built into this module. */
#include <gst/gst.h>

#include "elements.h"

static gboolean plugin_init(GstPlugin *plugin) {
  gboolean ok = TRUE;
  (void)plugin;
#ifdef MEDIAMTX_HAVE_WHEPSRC
  ok &= GST_ELEMENT_REGISTER(whepsrc, plugin);
  ok &= GST_ELEMENT_REGISTER(mtxwhepsrc, plugin);
#endif
#ifdef MEDIAMTX_HAVE_MEDIAMTXSINK
  ok &= GST_ELEMENT_REGISTER(mediamtxsink, plugin);
#endif
#ifdef MEDIAMTX_HAVE_RECONNECTBIN
  ok &= GST_ELEMENT_REGISTER(reconnectbin, plugin);
#endif
  return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, mediamtx,
                  "Low-latency camera streaming through a MediaMTX server: WHEP viewer, RTSP/WHIP publisher, "
                  "reconnecting bin",
                  plugin_init, PACKAGE_VERSION, GST_LICENSE, PACKAGE_NAME, GST_PACKAGE_ORIGIN)
