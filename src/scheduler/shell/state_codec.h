// The scheduler's persistent state as stored: one JSON document for PersistentState (members,
// framework id, reseed generation, counters, the executors' reseed token, the next member number),
// kept at StatePath(), plus the framework id alone as plain text at FrameworkIdPath(), where the
// original etcd-mesos kept it and where operators look for it (reference section 5).
//
// Decoding never trusts the record: anything malformed is kDataLoss naming the field (a corrupt
// state record must stop the scheduler with a clear message, never crash it or be half-read).
// 64-bit etcd member ids are decimal strings in JSON, as etcd's own gateway writes them.
//
//   {"format":1,"framework_id":"...","next_member":4,"generation":0,"bootstrapped":true,
//    "reseed_token":"...","counters":{"launched_servers":3,...},
//    "members":[{"name":"etcd-1","task_id":"etcd-1 10.0.0.5 31000 31001 31002",
//                "agent_id":"...","host":"10.0.0.5","peer_port":31000,"client_port":31001,
//                "reseed_port":31002,"member_id":"8455861066767519386","generation":0,
//                "learner":false,"initial":true,"task_state":"TASK_RUNNING"}]}
//
// Threading: pure functions on values.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "scheduler/core/types.h"

namespace etcd_mesos::scheduler::shell {

inline constexpr int kStateFormat = 1;

// Store paths for a framework. Both live under the store's root (the zk:// chroot or the state
// directory); the state is under a node named after the framework so that several clusters can
// share one chroot, as the original's `<name>_...` nodes could.
std::string StatePath(std::string_view framework_name);        // /<framework-name>/state
std::string FrameworkIdPath(std::string_view framework_name);  // /<framework-name>_framework_id

std::string EncodeState(const PersistentState& state);
// kDataLoss naming the field for anything malformed; unknown fields are ignored (a newer
// scheduler may add some), but a newer "format" is refused.
Result<PersistentState> DecodeState(std::string_view json);

}  // namespace etcd_mesos::scheduler::shell
