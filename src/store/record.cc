#include "store/record.h"

namespace etcd_mesos::store {

Status ValidatePath(std::string_view path, bool allow_root) {
  if (path.empty() || path.front() != '/') {
    return MakeError(ErrorCode::kInvalidArgument, "store path '{}' must start with '/'", path);
  }
  if (path.size() > kMaxPathSize) {
    return MakeError(ErrorCode::kInvalidArgument, "store path '{}...' is longer than {} bytes",
                     path.substr(0, 40), kMaxPathSize);
  }
  if (path == "/") {
    if (allow_root) return OkStatus();
    return MakeError(ErrorCode::kInvalidArgument,
                     "store path '/' is the root, which can be listed but holds no data");
  }
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "store path '{}' contains a NUL or control character (0x{:02x})",
                       path.substr(0, 200), u);
    }
  }
  std::string_view rest = path.substr(1);
  while (true) {
    size_t slash = rest.find('/');
    std::string_view component = rest.substr(0, slash);
    if (component.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "store path '{}' has an empty component (doubled or trailing '/')", path);
    }
    if (component == "." || component == "..") {
      return MakeError(ErrorCode::kInvalidArgument, "store path '{}' has a '{}' component", path,
                       component);
    }
    if (component.size() > kMaxComponentSize) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "store path '{}' has a component longer than {} bytes", path,
                       kMaxComponentSize);
    }
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  return OkStatus();
}

Status ValidateData(std::string_view path, std::string_view data) {
  if (data.size() > kMaxDataSize) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "data for store path '{}' is {} bytes, more than the limit of {} bytes", path,
                     data.size(), kMaxDataSize);
  }
  return OkStatus();
}

}  // namespace etcd_mesos::store
