#include "scheduler/shell/membership_route.h"

#include <algorithm>

namespace etcd_mesos::scheduler::shell {

namespace {

bool Leads(const etcd::StatusResponse& s) {
  return s.leader != 0 && s.leader == s.header.member_id && !s.is_learner;
}

// 0: the leader itself; 1: a member that sees a leader (it forwards the change); 2: the rest.
int Rank(const StatusAnswer& a) {
  if (!a.status) return 2;
  if (Leads(*a.status)) return 0;
  return a.status->leader != 0 ? 1 : 2;
}

}  // namespace

MembershipRoute RouteMembershipChange(const std::vector<StatusAnswer>& answers,
                                      uint64_t previous_leader) {
  std::vector<const StatusAnswer*> order;
  for (const auto& a : answers) order.push_back(&a);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto* a, const auto* b) { return Rank(*a) < Rank(*b); });
  MembershipRoute route;
  for (const auto* a : order) route.urls.push_back(a->url);
  if (order.empty() || Rank(*order.front()) != 0) {
    // No leader answered. A follower may still name one, but that is no reason to send: after
    // the leader's death the survivors name it until their election timeout (seen: the change
    // went to a survivor still following the dead leader and waited 5 s).
    for (const auto* a : order) {
      if (a->status && a->status->leader != 0) route.leader = a->status->leader;
    }
    return route;
  }
  const etcd::StatusResponse& leader = *order.front()->status;
  route.leader = leader.leader;
  // A leader that has applied all it committed has applied what it inherited from the previous
  // term; one that already led a round ago has had the time to.
  route.settled =
      leader.raft_applied_index >= leader.raft_index || leader.leader == previous_leader;
  return route;
}

}  // namespace etcd_mesos::scheduler::shell
