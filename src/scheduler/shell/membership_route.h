// Where a membership change is sent, and when.
//
// etcd loses a membership change proposed while the member asked sees no leader, or just after a
// new leader was elected: raft holds the proposal until some leader exists, and a new leader turns
// configuration changes into empty entries until it has applied what it inherited. etcd then
// never answers, and the request waits out the client's whole timeout (5 s after a leader's death,
// seen on real Mesos). So the shell first asks the members for their status and sends the change
// to the member that leads, once that leader answers and is settled (it has applied all it
// committed, or it led in the previous round of asking too); until then it asks again shortly.
//
// Pure: no I/O. Threading: none of its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "etcd/types.h"

namespace etcd_mesos::scheduler::shell {

// One member's answer to a status request (nullopt: it did not answer in time).
struct StatusAnswer {
  std::string url;
  std::optional<etcd::StatusResponse> status;
};

struct MembershipRoute {
  uint64_t leader = 0;  // the leader the answers name (0: none of them sees one)
  // Send now: `urls[0]` is a settled leader. Only a leader's own answer settles it: followers
  // go on naming a dead leader until their election timeout.
  bool settled = false;
  // Every url asked: the leader first, then members that follow a leader, then the rest.
  std::vector<std::string> urls;
};

// `previous_leader`: the leader named in the previous round of asking (0 for the first round).
MembershipRoute RouteMembershipChange(const std::vector<StatusAnswer>& answers,
                                      uint64_t previous_leader);

}  // namespace etcd_mesos::scheduler::shell
