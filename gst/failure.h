/* gst-mediamtx: why a connection attempt failed, as one type for every element.
 *
 * A Failure is what a session (WHEP, WHIP, RTSP) or a restarted child reports to the element's
 * ReconnectController: its kind decides between retrying and giving up, and, when the element
 * gives up, which GStreamer error domain and code the application sees. The mapping from kind to
 * domain and code lives in failure_error_code(), once. Plain C++ over GLib quarks.
 */
#pragma once

#include <gst/gst.h>

#include <chrono>
#include <string>

namespace gstmtx {

enum class FailureKind {
  None,
  Retry,         /* worth another attempt: network, timeout, 5xx, 404 (nothing published yet), 409,
                    429, a bad answer, ICE failure, no media, a child's error, EOS or stall */
  Unauthorized,  /* 401/403, RTSP 401: credentials refused (fatal) */
  Rejected,      /* 400/406/415/422/488 and other 4xx: the server refused our offer (fatal) */
  Config,        /* a setting that cannot work: bad URL, redirect loop, unusable CA file (fatal) */
  Tls,           /* the server's certificate is not trusted, or the TLS handshake failed (fatal) */
  MissingPlugin, /* an element this needs is not installed (fatal) */
};

const char *failure_kind_name(FailureKind kind);

/* Which side of the stream the element is on: a viewer reads, a publisher writes. */
enum class StreamDirection { Read, Write };

struct Failure {
  FailureKind kind = FailureKind::None;
  unsigned http_status = 0;                 /* HTTP status when the failure is an HTTP answer */
  std::chrono::milliseconds retry_after{0}; /* the server's Retry-After, capped */
  std::string message;                      /* for users: what happened, what to do; no secrets */
  std::string debug;                        /* server body (truncated), child debug text */
  /* The error a child element posted (reconnectbin): kept so the application sees the child's own
   * domain and code when the element gives up. 0 when the failure is ours. */
  GQuark domain = 0;
  int code = 0;

  bool fatal() const {
    return kind == FailureKind::Unauthorized || kind == FailureKind::Rejected || kind == FailureKind::Config ||
           kind == FailureKind::Tls || kind == FailureKind::MissingPlugin;
  }
  explicit operator bool() const { return kind != FailureKind::None; }

  static Failure retry(std::string message, std::string debug = {});
  static Failure of_kind(FailureKind kind, std::string message, std::string debug = {});
};

/* The GStreamer error domain and code a failure is posted with when the element gives up:
 * Unauthorized -> RESOURCE/NOT_AUTHORIZED, Rejected -> RESOURCE/OPEN_READ or OPEN_WRITE,
 * Config -> RESOURCE/SETTINGS, Tls -> RESOURCE/OPEN_READ_WRITE, MissingPlugin ->
 * CORE/MISSING_PLUGIN; a child's own error keeps its domain and code; a retryable failure whose
 * budget is spent -> RESOURCE/OPEN_READ or OPEN_WRITE (NOT_FOUND when the path had no stream). */
void failure_error_code(const Failure &failure, StreamDirection direction, GQuark *domain, int *code);

}  // namespace gstmtx
