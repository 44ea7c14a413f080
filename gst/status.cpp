#include "status.h"

namespace gstmtx {

namespace {
const GEnumValue kStateValues[] = {
    {static_cast<gint>(ConnectionState::Idle), "Not started", "idle"},
    {static_cast<gint>(ConnectionState::Connecting), "Connecting (first attempt)", "connecting"},
    {static_cast<gint>(ConnectionState::Connected), "Connected", "connected"},
    {static_cast<gint>(ConnectionState::Reconnecting), "Waiting to reconnect", "reconnecting"},
    {static_cast<gint>(ConnectionState::Fallback), "Playing a fallback (HLS, black, freeze...)", "fallback"},
    {static_cast<gint>(ConnectionState::Failed), "Failed: gave up", "failed"},
    {static_cast<gint>(ConnectionState::Stopped), "Stopped", "stopped"},
    {0, nullptr, nullptr},
};
}  // namespace

GType connection_state_get_type() {
  static gsize type = 0;
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstMtxConnectionState", kStateValues));
  return type;
}

const char *connection_state_name(ConnectionState state) {
  for (const GEnumValue *v = kStateValues; v->value_nick; ++v)
    if (v->value == static_cast<gint>(state))
      return v->value_nick;
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
