// The pure part of the StateStore model (state_store.h): the record a node holds, the limits every
// implementation enforces and the rules for paths. It has no I/O and depends on nothing but
// common, so that the simulator's in-memory store (sim/store_model.h) applies exactly the rules
// that ZooKeeper and the directory store apply.
//
// Threading: plain values and pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace etcd_mesos::store {

// Passed as expected_version to Set/Delete: no version check.
inline constexpr int64_t kAnyVersion = -1;

// ZooKeeper refuses requests larger than jute.maxbuffer (1 MiB - 1 byte by default), and that
// limit covers the whole request: path, ACL and headers as well as the data. Keeping data a few KiB
// under 1 MiB and paths short guarantees that every write we accept is one ZooKeeper accepts
// (an oversized request is not refused politely: the server drops the connection, which would look
// like "retry later" forever).
inline constexpr size_t kMaxDataSize = (size_t{1} << 20) - 8 * 1024;
inline constexpr size_t kMaxPathSize = 1024;
// A path component is a directory name in the directory store (plus a 2-byte prefix), and file
// systems limit names to 255 bytes.
inline constexpr size_t kMaxComponentSize = 250;

struct Record {
  std::string data;
  // ZooKeeper stat.version semantics: 0 after Create, +1 per successful Set.
  int64_t version = 0;
};

// Checks a store path: starts with '/', '/'-separated, no empty, "." or ".." components, no NUL or
// control characters, no trailing '/', within the size limits. The root "/" is accepted only when
// allow_root is set (it can be listed, not read or written). The error is kInvalidArgument and
// names the path.
Status ValidatePath(std::string_view path, bool allow_root = false);

// Checks a data size against kMaxDataSize (kInvalidArgument naming the path).
Status ValidateData(std::string_view path, std::string_view data);

// The error of a write refused because its fence (StateStore::SetFence) is gone.
inline Error FenceGone(std::string_view fence, std::string_view path) {
  return MakeError(ErrorCode::kRefused,
                   "write of store path '{}' refused: the fence '{}' is gone (this writer no "
                   "longer leads)",
                   path, fence);
}

}  // namespace etcd_mesos::store
