#include "failure.h"

namespace gstmtx {

const char *failure_kind_name(FailureKind kind) {
  switch (kind) {
  case FailureKind::None: return "none";
  case FailureKind::Retry: return "retry";
  case FailureKind::Unauthorized: return "unauthorized";
  case FailureKind::Rejected: return "rejected";
  case FailureKind::Config: return "config";
  case FailureKind::Tls: return "tls";
  case FailureKind::MissingPlugin: return "missing-plugin";
  }
  return "retry";
}

Failure Failure::retry(std::string message, std::string debug) {
  return of_kind(FailureKind::Retry, std::move(message), std::move(debug));
}

Failure Failure::of_kind(FailureKind kind, std::string message, std::string debug) {
  Failure f;
  f.kind = kind;
  f.message = std::move(message);
  f.debug = std::move(debug);
  return f;
}

void failure_error_code(const Failure &failure, StreamDirection direction, GQuark *domain, int *code) {
  const int open = direction == StreamDirection::Read ? GST_RESOURCE_ERROR_OPEN_READ : GST_RESOURCE_ERROR_OPEN_WRITE;
  *domain = GST_RESOURCE_ERROR;
  switch (failure.kind) {
  case FailureKind::Unauthorized: *code = GST_RESOURCE_ERROR_NOT_AUTHORIZED; return;
  case FailureKind::Rejected: *code = open; return;
  case FailureKind::Config: *code = GST_RESOURCE_ERROR_SETTINGS; return;
  case FailureKind::Tls: *code = GST_RESOURCE_ERROR_OPEN_READ_WRITE; return;
  case FailureKind::MissingPlugin:
    *domain = GST_CORE_ERROR;
    *code = GST_CORE_ERROR_MISSING_PLUGIN;
    return;
  case FailureKind::None:
  case FailureKind::Retry:
    break;
  }
  if (failure.domain) { /* a child's own error */
    *domain = failure.domain;
    *code = failure.code;
    return;
  }
  *code = failure.http_status == 404 ? GST_RESOURCE_ERROR_NOT_FOUND : open;
}

}  // namespace gstmtx
