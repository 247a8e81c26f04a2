// Offer operations of etcd-mesos-local: RESERVE, UNRESERVE, CREATE and DESTROY, validated and
// applied to the resources of an ACCEPT the way Mesos 1.11's master does
// (src/master/validation.cpp, Resources::apply), with its error texts, so that a framework's
// mistakes read here as they would on a real cluster. Each operation turns some of the offered
// resources (`consumed`) into others (`converted`): a reservation, a volume, or back. The
// operations of one ACCEPT apply in order, each to what the ones before left; a failed one is
// dropped and the rest go on.
//
// Threading: pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "local/resources.h"
#include "mesos/v1.h"

namespace etcd_mesos::local {

struct OperationContext {
  std::vector<std::string> framework_roles;  // FrameworkInfo.roles (or its one role)
  std::string allocated_role;                // the role the offer was allocated to
  std::optional<std::string> principal;      // the framework's principal, if any
  ResourceBag agent_total;                   // every resource of the agent, as it stands
  ResourceBag agent_used;                    // what live tasks and executors hold
  // "; on agent <id> at slave(N)@ip:port (host)", as Mesos ends most of its messages.
  std::string agent_suffix;
};

struct Conversion {
  ResourceBag consumed;
  ResourceBag converted;
};

// Validates one of RESERVE, UNRESERVE, CREATE, DESTROY against `available` (what the offer holds
// after the operations before it) and says what it turns into what. kInvalidArgument with
// Mesos's message when the master would drop it; kInvalidArgument for other operation types.
Result<Conversion> ConvertOffered(const mesos::Offer::Operation& operation,
                                  const ResourceBag& available, const OperationContext& context);

// The directory of a persistent volume under an agent's work dir, as Mesos lays it out:
// volumes/roles/<role>/<persistence id>.
std::string VolumePath(const mesos::Resource& volume);

}  // namespace etcd_mesos::local
