// Resources of etcd-mesos-local: the parser of an agent's resources flag, and the arithmetic of
// the local master's allocator: scalars (cpus, mem, disk, ...) and ranges (ports), added,
// subtracted and compared the way Mesos does for unreserved resources. Scalars keep Mesos's fixed
// point of three decimals so that repeated arithmetic cannot drift.
//
// Threading: values; pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <google/protobuf/repeated_field.h>
#include <nlohmann/json.hpp>

#include "common/result.h"
#include "mesos/v1.h"

namespace etcd_mesos::local {

class ResourceBag {
 public:
  ResourceBag() = default;
  static ResourceBag From(const google::protobuf::RepeatedPtrField<mesos::Resource>& resources);
  static ResourceBag From(const std::vector<mesos::Resource>& resources);

  void Add(const ResourceBag& other);
  void Subtract(const ResourceBag& other);  // clamps at zero; removes emptied ranges
  bool Contains(const ResourceBag& other) const;
  bool Empty() const;
  // Mesos only offers a bundle with at least cpus:0.01 or mem:32.
  bool Allocatable() const;

  double Scalar(const std::string& name) const;
  std::vector<mesos::Resource> ToProto() const;
  // The summary object of /master/state: cpus/gpus/mem/disk always, ranges as "[a-b, c-d]".
  nlohmann::json Summary() const;

 private:
  using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;  // sorted, disjoint, inclusive
  static Ranges Normalize(Ranges ranges);
  std::map<std::string, int64_t> scalars_;  // thousandths
  std::map<std::string, Ranges> ranges_;
};

// Parses an agent resources flag: `cpus:4;mem:4096;disk:4096;ports:[31000-31999]` (ranges may be
// `[a-b,c-d]`; scalars may be fractional). Unknown names become scalar resources. Errors name the
// offending part.
Result<std::vector<mesos::Resource>> ParseResources(std::string_view spec);

}  // namespace etcd_mesos::local
