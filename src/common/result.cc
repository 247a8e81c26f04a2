#include "common/result.h"

namespace etcd_mesos {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kRefused:
      return "refused";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kAlreadyExists:
      return "already exists";
    case ErrorCode::kDataLoss:
      return "data loss";
    case ErrorCode::kUnauthenticated:
      return "unauthenticated";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "unknown";
}

std::string Error::ToString() const { return fmt::format("{}: {}", ErrorCodeName(code), message); }

Error Error::Context(std::string_view what) const {
  return Error{code, fmt::format("{}: {}", what, message)};
}

}  // namespace etcd_mesos
