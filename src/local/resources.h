// Resources of etcd-mesos-local: the parser of an agent's resources flag, and the arithmetic of
// the local master's allocator: scalars (cpus, mem, disk, ...) and ranges (ports), added,
// subtracted and compared the way Mesos does. A resource is kept apart from another of the same
// name when its reservations (role, principal, labels) or its persistent volume differ, as in
// Mesos's Resources; a persistent volume is taken whole or not at all. Reservations are held in
// the post-refinement form (`reservations`); frameworks without RESERVATION_REFINEMENT read and
// write the older `role` + `reservation` form, converted at the edge (ToLegacyFormat,
// Normalized). Scalars keep Mesos's fixed point of three decimals so that repeated arithmetic
// cannot drift.
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
  // Each resource Normalized first; allocation_info is not part of what is kept.
  static ResourceBag From(const google::protobuf::RepeatedPtrField<mesos::Resource>& resources);
  static ResourceBag From(const std::vector<mesos::Resource>& resources);

  void Add(const ResourceBag& other);
  void Subtract(const ResourceBag& other);  // clamps at zero; removes emptied ranges
  bool Contains(const ResourceBag& other) const;
  bool Empty() const;
  // Mesos only offers a bundle with at least cpus:0.01 or mem:32.
  bool Allocatable() const;

  // The amount of `name` over every reservation and volume.
  double Scalar(const std::string& name) const;
  std::vector<mesos::Resource> ToProto() const;
  // The summary object of /master/state: cpus/gpus/mem/disk always, ranges as "[a-b, c-d]".
  nlohmann::json Summary() const;
  // As Mesos prints resources: "cpus(allocated: etcd)(reservations: [(DYNAMIC,etcd,p,{k: v})])
  // [vol-1:data]:1; ports:[31000-31002]", with `allocated_role` when the resources are allocated.
  std::string Describe(const std::string& allocated_role = "") const;

  ResourceBag Unreserved() const;
  // Reserved to `role` (their last reservation's role).
  ResourceBag ReservedTo(const std::string& role) const;
  std::map<std::string, ResourceBag> ReservedByRole() const;
  // The persistent volumes, each whole.
  std::vector<mesos::Resource> Volumes() const;

 private:
  using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;  // sorted, disjoint, inclusive
  // What tells two resources of one name apart: the deterministic encoding of the resource
  // without its name, type, value and allocation.
  using Key = std::pair<std::string, std::string>;  // name, identity
  static Ranges Normalize(Ranges ranges);
  static Key KeyOf(const mesos::Resource& normalized);
  static mesos::Resource Shape(const Key& key);
  template <typename Pred>
  ResourceBag Filter(Pred pred) const;
  std::map<Key, int64_t> scalars_;  // thousandths
  std::map<Key, Ranges> ranges_;
};

// The resource in the post-refinement form with no allocation: a pre-refinement `role` (other
// than "*") and `reservation` become one entry of `reservations`.
mesos::Resource Normalized(mesos::Resource resource);
// The pre-refinement form a framework without RESERVATION_REFINEMENT reads: `role` ("*" when
// unreserved) and, for a dynamic reservation, `reservation` {principal, labels}.
mesos::Resource ToLegacyFormat(mesos::Resource resource);
// The role a resource is reserved to (its last reservation), or "*".
std::string ReservationRole(const mesos::Resource& resource);
bool IsPersistentVolume(const mesos::Resource& resource);
// One resource as Mesos prints it (see ResourceBag::Describe).
std::string DescribeResource(const mesos::Resource& resource, const std::string& allocated_role);

// Parses an agent resources flag: `cpus:4;mem:4096;disk:4096;ports:[31000-31999]` (ranges may be
// `[a-b,c-d]`; scalars may be fractional). Unknown names become scalar resources. Errors name the
// offending part.
Result<std::vector<mesos::Resource>> ParseResources(std::string_view spec);

}  // namespace etcd_mesos::local
