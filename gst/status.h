/* gst-mediamtx: the `gst-mediamtx-status` element message all three elements post, so an
 * application shows the same states (loading, connected, error) whatever it runs.
 *
 *   gst-mediamtx-status, state=(string){idle,connecting,connected,reconnecting,fallback,failed,stopped},
 *     attempt=(int), reason=(string), transport=(string), retry-in-ms=(int64)
 */
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <string>

namespace gstmtx {

inline constexpr const char *kStatusMessageName = "gst-mediamtx-status";

enum class ConnectionState { Idle, Connecting, Connected, Reconnecting, Fallback, Failed, Stopped };

/* The registered GEnum "GstMtxConnectionState" (values as ConnectionState, nicks as the message's
 * `state` strings): the type of every element's read-only `connection-state` property. */
GType connection_state_get_type();
/* The state's nick: "idle", "connecting", ... */
const char *connection_state_name(ConnectionState state);

struct StatusUpdate {
  ConnectionState state = ConnectionState::Idle;
  int attempt = 0;          /* retries so far in this outage, 0 on the first try */
  std::string reason;       /* why: "HTTP 404 from endpoint", "ICE failed", "stall" ... (no secrets) */
  std::string transport;    /* "webrtc", "hls", "rtsp", "whip", or the child's name for reconnectbin */
  std::int64_t retry_in_ms = -1; /* when reconnecting: the backoff delay chosen */
};

/* A new element message (transfer full) from `src` describing `update`. */
GstMessage *status_message_new(GstObject *src, const StatusUpdate &update);

}  // namespace gstmtx
