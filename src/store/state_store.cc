#include "store/state_store.h"

#include <filesystem>

#include "common/uri.h"
#include "store/directory_store.h"
#include "store/zk_store.h"

namespace etcd_mesos::store {

Result<std::unique_ptr<StateStore>> OpenStateStore(boost::asio::io_context& io,
                                                   std::string_view spec) {
  if (spec.starts_with("zk://")) {
    auto url = ParseZkUrl(spec);
    if (!url.ok()) return url.error();
    auto zk = OpenZkStore(io, *url);
    if (!zk.ok()) return zk.error();
    return std::unique_ptr<StateStore>(std::move(*zk));
  }
  std::string_view dir = spec;
  if (dir.starts_with("dir:")) dir.remove_prefix(4);
  if (dir.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "state store '{}' is neither zk://host:port/path nor a directory", spec);
  }
  if (dir.find("://") != std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "state store '{}': unknown scheme (use zk://host:port/path or a directory)",
                     spec);
  }
  auto ds = OpenDirectoryStore(io, std::filesystem::path(dir));
  if (!ds.ok()) return ds.error();
  return std::unique_ptr<StateStore>(std::move(*ds));
}

}  // namespace etcd_mesos::store
