#include "sim/store_model.h"

#include <cassert>

namespace etcd_mesos::sim {
namespace {

Status CheckVersion(int64_t expected_version) {
  if (expected_version < store::kAnyVersion) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "expected version {} is neither a version nor kAnyVersion", expected_version);
  }
  return OkStatus();
}

// "/a/b/c" -> "/a/b"; "/a" -> "/".
std::string Parent(std::string_view path) {
  size_t slash = path.rfind('/');
  assert(slash != std::string_view::npos);
  return slash == 0 ? std::string("/") : std::string(path.substr(0, slash));
}

}  // namespace

Result<store::Record> StoreModel::Get(std::string_view path) const {
  if (auto s = store::ValidatePath(path); !s.ok()) return s.error();
  auto it = nodes_.find(std::string(path));
  if (it == nodes_.end()) {
    return MakeError(ErrorCode::kNotFound, "store path '{}' does not exist", path);
  }
  return it->second;
}

Result<store::Record> StoreModel::Create(std::string_view path, std::string data) {
  if (auto s = store::ValidatePath(path); !s.ok()) return s.error();
  if (auto s = store::ValidateData(path, data); !s.ok()) return s.error();
  std::string key(path);
  if (nodes_.count(key)) {
    return MakeError(ErrorCode::kAlreadyExists, "store path '{}' already exists", path);
  }
  for (std::string p = Parent(key); p != "/"; p = Parent(p)) {
    nodes_.try_emplace(p, store::Record{"", 0});
  }
  store::Record& r = nodes_[key];
  r = store::Record{std::move(data), 0};
  return r;
}

Result<store::Record> StoreModel::Set(std::string_view path, std::string data,
                                      int64_t expected_version) {
  if (auto s = store::ValidatePath(path); !s.ok()) return s.error();
  if (auto s = store::ValidateData(path, data); !s.ok()) return s.error();
  if (auto s = CheckVersion(expected_version); !s.ok()) return s.error();
  auto it = nodes_.find(std::string(path));
  if (it == nodes_.end()) {
    return MakeError(ErrorCode::kNotFound, "store path '{}' does not exist", path);
  }
  store::Record& r = it->second;
  if (expected_version != store::kAnyVersion && expected_version != r.version) {
    return MakeError(ErrorCode::kConflict, "set of store path '{}': version mismatch", path);
  }
  r.data = std::move(data);
  ++r.version;
  assert(r.version > 0);
  return r;
}

Status StoreModel::Delete(std::string_view path, int64_t expected_version) {
  if (auto s = store::ValidatePath(path); !s.ok()) return s.error();
  if (auto s = CheckVersion(expected_version); !s.ok()) return s.error();
  std::string key(path);
  auto it = nodes_.find(key);
  if (it == nodes_.end()) {
    return MakeError(ErrorCode::kNotFound, "store path '{}' does not exist", path);
  }
  if (expected_version != store::kAnyVersion && expected_version != it->second.version) {
    return MakeError(ErrorCode::kConflict, "delete of store path '{}': version mismatch", path);
  }
  if (HasChildren(key)) {
    return MakeError(ErrorCode::kRefused, "store path '{}' has children", path);
  }
  nodes_.erase(it);
  return OkStatus();
}

Result<std::vector<std::string>> StoreModel::List(std::string_view path) const {
  if (auto s = store::ValidatePath(path, /*allow_root=*/true); !s.ok()) return s.error();
  std::string prefix(path);
  if (prefix != "/") {
    if (!nodes_.count(prefix)) {
      return MakeError(ErrorCode::kNotFound, "store path '{}' does not exist", path);
    }
    prefix += '/';
  }
  std::vector<std::string> names;
  for (auto it = nodes_.lower_bound(prefix); it != nodes_.end(); ++it) {
    std::string_view key = it->first;
    if (!key.starts_with(prefix)) break;
    std::string_view rest = key.substr(prefix.size());
    if (!rest.empty() && rest.find('/') == std::string_view::npos) names.emplace_back(rest);
  }
  return names;  // a map iterates in byte order, which is the order ZooKeeper's list is sorted in
}

bool StoreModel::HasChildren(const std::string& path) const {
  auto it = nodes_.lower_bound(path + '/');
  return it != nodes_.end() && it->first.starts_with(path + '/');
}

Status StoreModel::CheckFence(std::string_view fence, std::string_view path) const {
  if (fence.empty() || Get(fence).ok()) return OkStatus();
  return store::FenceGone(fence, path);
}

}  // namespace etcd_mesos::sim
