// Fuzz target: the bodies etcd-mesos-proxy reads from the network (the scheduler's /members, a
// master's /master/state). Whatever is accepted must be a sorted, duplicate-free list of
// http:// URLs; anything else must be an error value, never a crash or an exception.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proxy/discovery.h"

namespace {
void Check(const etcd_mesos::Result<etcd_mesos::proxy::ClientUrls>& urls) {
  if (!urls.ok()) return;
  if (!std::is_sorted(urls->begin(), urls->end()) ||
      std::adjacent_find(urls->begin(), urls->end()) != urls->end()) {
    __builtin_trap();
  }
  for (const auto& u : *urls) {
    if (!u.starts_with("http://")) __builtin_trap();
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Check(etcd_mesos::proxy::ClientUrlsFromMembers(text));
  Check(etcd_mesos::proxy::ClientUrlsFromMasterState(text, "etcd-x"));
  return 0;
}
