/* gst-mediamtx: element registration declarations. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS
GST_ELEMENT_REGISTER_DECLARE(whepsrc);
GST_ELEMENT_REGISTER_DECLARE(mtxwhepsrc);
GST_ELEMENT_REGISTER_DECLARE(mediamtxsink);
GST_ELEMENT_REGISTER_DECLARE(reconnectbin);
G_END_DECLS
