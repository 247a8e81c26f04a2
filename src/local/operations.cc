#include "local/operations.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace etcd_mesos::local {
namespace {

using Operation = mesos::Offer::Operation;
using Resources = google::protobuf::RepeatedPtrField<mesos::Resource>;

Error Invalid(std::string message) { return Error{ErrorCode::kInvalidArgument, message}; }

// Resources::apply's refusal: what is left of the offer does not hold what is asked.
Error NotContained(const ResourceBag& available, const ResourceBag& wanted,
                   const std::string& role) {
  return Invalid(available.Describe(role) + " does not contain " + wanted.Describe(role));
}

// Every reservation role must be a real one: Mesos refuses "*" before anything else.
std::optional<Error> ReservedToStar(const Resources& resources, const std::string& role) {
  for (const auto& given : resources) {
    mesos::Resource r = Normalized(given);
    for (const auto& reservation : r.reservations()) {
      if (reservation.role() != "*") continue;
      return Invalid(fmt::format(
          "Operation attempted with invalid resources: Resource '{}' is invalid: Invalid "
          "reservation: role \"*\" cannot be reserved",
          DescribeResource(r, role)));
    }
  }
  return std::nullopt;
}

std::string RolesSet(const std::vector<std::string>& roles) {
  return fmt::format("{{ {} }}", fmt::join(roles, ", "));
}

std::string AllocationRole(const mesos::Resource& r, const OperationContext& c) {
  return r.has_allocation_info() && r.allocation_info().has_role() ? r.allocation_info().role()
                                                                   : c.allocated_role;
}

Result<Conversion> Reserve(const Operation::Reserve& reserve, const ResourceBag& available,
                           const OperationContext& c) {
  if (auto bad = ReservedToStar(reserve.resources(), c.allocated_role)) return *bad;
  Conversion out;
  for (const auto& given : reserve.resources()) {
    std::string allocated = AllocationRole(given, c);
    mesos::Resource r = Normalized(given);
    if (std::count(c.framework_roles.begin(), c.framework_roles.end(), allocated) == 0) {
      return Invalid(fmt::format(
          "A reserve operation was attempted for a resource allocated to role '{}', but the "
          "framework only has roles '{}'{}",
          allocated, RolesSet(c.framework_roles), c.agent_suffix));
    }
    if (r.reservations_size() == 0) {
      return Invalid("Invalid resources: a RESERVE operation needs reserved resources" +
                     c.agent_suffix);
    }
    const auto& last = r.reservations(r.reservations_size() - 1);
    if (last.role() != allocated) {
      return Invalid(fmt::format(
          "A reserve operation was attempted for a resource with role '{}', but the resource "
          "was allocated to role '{}'{}",
          last.role(), allocated, c.agent_suffix));
    }
    if (c.principal) {
      if (!last.has_principal()) {
        return Invalid(fmt::format(
            "A reserve operation was attempted by principal '{}', but there is a reserved "
            "resource in the request with no principal set{}",
            *c.principal, c.agent_suffix));
      }
      if (last.principal() != *c.principal) {
        return Invalid(fmt::format(
            "A reserve operation was attempted by authenticated principal '{}', which does not "
            "match a reserved resource in the request with principal '{}'{}",
            *c.principal, last.principal(), c.agent_suffix));
      }
    }
    mesos::Resource unreserved = r;
    unreserved.mutable_reservations()->RemoveLast();
    out.consumed.Add(ResourceBag::From(std::vector{unreserved}));
    out.converted.Add(ResourceBag::From(std::vector{r}));
  }
  if (!available.Contains(out.consumed)) {
    return NotContained(available, out.consumed, c.allocated_role);
  }
  return out;
}

Result<Conversion> Unreserve(const Operation::Unreserve& unreserve, const ResourceBag& available,
                             const OperationContext& c) {
  Conversion out;
  for (const auto& given : unreserve.resources()) {
    mesos::Resource r = Normalized(given);
    if (IsPersistentVolume(r)) {
      return Invalid(fmt::format(
          "A dynamically reserved persistent volume {} cannot be unreserved directly. Please "
          "destroy the persistent volume first then unreserve the resource{}",
          DescribeResource(r, c.allocated_role), c.agent_suffix));
    }
    if (r.reservations_size() == 0 || r.reservations(r.reservations_size() - 1).type() !=
                                          mesos::Resource::ReservationInfo::DYNAMIC) {
      return Invalid(fmt::format("Resource {} is not dynamically reserved{}",
                                 DescribeResource(r, c.allocated_role), c.agent_suffix));
    }
    mesos::Resource unreserved = r;
    unreserved.mutable_reservations()->RemoveLast();
    out.consumed.Add(ResourceBag::From(std::vector{r}));
    out.converted.Add(ResourceBag::From(std::vector{unreserved}));
  }
  if (!available.Contains(out.consumed)) {
    return NotContained(available, out.consumed, c.allocated_role);
  }
  return out;
}

// The disk a volume was made of: the same reserved disk without its persistence.
mesos::Resource WithoutVolume(mesos::Resource r) {
  r.mutable_disk()->clear_persistence();
  r.mutable_disk()->clear_volume();
  if (r.disk().ByteSizeLong() == 0) r.clear_disk();
  return r;
}

Result<Conversion> Create(const Operation::Create& create, const ResourceBag& available,
                          const OperationContext& c) {
  Conversion out;
  std::set<std::string> ids;
  for (const auto& v : c.agent_total.Volumes()) ids.insert(v.disk().persistence().id());
  for (const auto& given : create.volumes()) {
    mesos::Resource r = Normalized(given);
    if (!IsPersistentVolume(r)) {
      return Invalid(
          "Invalid resources: Invalid DiskInfo: a CREATE operation needs volumes "
          "with 'disk.persistence'" +
          c.agent_suffix);
    }
    if (r.reservations_size() == 0) {
      return Invalid(
          "Invalid resources: Invalid DiskInfo: Persistent volumes cannot be created from "
          "unreserved resources" +
          c.agent_suffix);
    }
    const std::string& id = r.disk().persistence().id();
    if (id.empty() || id.find('/') != std::string::npos || id == "." || id == "..") {
      return Invalid(fmt::format("Invalid persistence ID '{}'{}", id, c.agent_suffix));
    }
    if (!ids.insert(id).second) {
      return Invalid(fmt::format("Persistence ID '{}' is not unique{}", id, c.agent_suffix));
    }
    if (!r.disk().has_volume() || r.disk().volume().container_path().empty() ||
        r.disk().volume().container_path().front() == '/') {
      return Invalid(
          fmt::format("Invalid resources: Invalid DiskInfo: the volume {} needs a relative "
                      "'disk.volume.container_path'{}",
                      id, c.agent_suffix));
    }
    if (c.principal && r.disk().persistence().has_principal() &&
        r.disk().persistence().principal() != *c.principal) {
      return Invalid(fmt::format(
          "Create volume operation has been attempted by principal '{}', but there is a volume "
          "in the operation with principal '{}'{}",
          *c.principal, r.disk().persistence().principal(), c.agent_suffix));
    }
    out.consumed.Add(ResourceBag::From(std::vector{WithoutVolume(r)}));
    out.converted.Add(ResourceBag::From(std::vector{r}));
  }
  if (!available.Contains(out.consumed)) {
    return NotContained(available, out.consumed, c.allocated_role);
  }
  return out;
}

Result<Conversion> Destroy(const Operation::Destroy& destroy, const ResourceBag& available,
                           const OperationContext& c) {
  Conversion out;
  for (const auto& given : destroy.volumes()) {
    mesos::Resource r = Normalized(given);
    ResourceBag volume = ResourceBag::From(std::vector{r});
    if (!IsPersistentVolume(r) || !c.agent_total.Contains(volume)) {
      return Invalid("Persistent volumes not found" + c.agent_suffix);
    }
    if (c.agent_used.Contains(volume)) return Invalid("Persistent volumes in use" + c.agent_suffix);
    out.consumed.Add(volume);
    out.converted.Add(ResourceBag::From(std::vector{WithoutVolume(r)}));
  }
  if (!available.Contains(out.consumed)) {
    return NotContained(available, out.consumed, c.allocated_role);
  }
  return out;
}

}  // namespace

Result<Conversion> ConvertOffered(const Operation& operation, const ResourceBag& available,
                                  const OperationContext& context) {
  switch (operation.type()) {
    case Operation::RESERVE:
      return Reserve(operation.reserve(), available, context);
    case Operation::UNRESERVE:
      return Unreserve(operation.unreserve(), available, context);
    case Operation::CREATE:
      return Create(operation.create(), available, context);
    case Operation::DESTROY:
      return Destroy(operation.destroy(), available, context);
    default:
      return Invalid(fmt::format("operation {} is not supported by etcd-mesos-local",
                                 Operation::Type_Name(operation.type())));
  }
}

std::string VolumePath(const mesos::Resource& volume) {
  return fmt::format("volumes/roles/{}/{}", ReservationRole(volume),
                     volume.disk().persistence().id());
}

}  // namespace etcd_mesos::local
