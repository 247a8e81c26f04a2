// Result<T>: a value or an Error, the way every fallible call in etcd-mesos reports failure.
//
// Errors are values: no exception crosses a module boundary. The code says what the caller may do
// about it; in particular kUnavailable ("retry later": a dropped connection, a server with no
// leader, a ZooKeeper connection loss) is kept apart from the codes that mean "this will not work
// as asked" (a refused membership change, a malformed record, a version conflict).
//
// Threading: plain value types; no shared state.
#pragma once

#include <cassert>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace etcd_mesos {

enum class ErrorCode {
  kInvalidArgument,  // the input is malformed or violates a rule; retrying will not help
  kUnavailable,      // the peer could not be reached or is not ready; retry later
  kRefused,          // the peer understood and said no (e.g. promote of a learner not in sync)
  kNotFound,         // the thing named does not exist
  kConflict,         // a compare-and-set lost: someone else changed it first
  kAlreadyExists,    // create of something that exists
  kDataLoss,         // stored or received data is corrupt (bad checksum, truncated record)
  kUnauthenticated,  // missing or wrong credentials
  kCancelled,        // the operation was abandoned by its owner
  kInternal,         // a bug or an impossible state on our side
};

std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  bool retryable() const { return code == ErrorCode::kUnavailable; }
  std::string ToString() const;
  // Prefixes the message with what was being done, keeping the code.
  Error Context(std::string_view what) const;
};

inline std::ostream& operator<<(std::ostream& os, const Error& e) { return os << e.ToString(); }

template <typename... Args>
Error MakeError(ErrorCode code, fmt::format_string<Args...> f, Args&&... args) {
  return Error{code, fmt::format(f, std::forward<Args>(args)...)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status OkStatus() { return Status(); }

}  // namespace etcd_mesos

template <>
struct fmt::formatter<etcd_mesos::Error> : fmt::formatter<std::string> {
  auto format(const etcd_mesos::Error& e, format_context& ctx) const {
    return fmt::formatter<std::string>::format(e.ToString(), ctx);
  }
};
