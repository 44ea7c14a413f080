#include "status.h"

namespace gstmtx {

const char *connection_state_name(ConnectionState state) {
  switch (state) {
  case ConnectionState::Idle: return "idle";
  case ConnectionState::Connecting: return "connecting";
  case ConnectionState::Connected: return "connected";
  case ConnectionState::Reconnecting: return "reconnecting";
  case ConnectionState::Fallback: return "fallback";
  case ConnectionState::Failed: return "failed";
  case ConnectionState::Stopped: return "stopped";
  }
  return "unknown";
}

GstMessage *status_message_new(GstObject *src, const StatusUpdate &update) {
  GstStructure *s = gst_structure_new(kStatusMessageName,
                                      "state", G_TYPE_STRING, connection_state_name(update.state),
                                      "attempt", G_TYPE_INT, update.attempt,
                                      "reason", G_TYPE_STRING, update.reason.c_str(),
                                      "transport", G_TYPE_STRING, update.transport.c_str(),
                                      "retry-in-ms", G_TYPE_INT64, static_cast<gint64>(update.retry_in_ms),
                                      nullptr);
  return gst_message_new_element(src, s);
}

}  // namespace gstmtx
