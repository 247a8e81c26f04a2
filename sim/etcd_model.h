// The simulator's model of etcd 3.4's membership rules: what the leader answers to "add this peer
// as a learner", "promote this learner", "remove this member" and "list the members", and what a
// change does to the member list. The world (world.cc) decides who runs, who is connected and how
// far each member's raft log has got; these functions decide, from those facts, what etcd says.
//
// The rules (etcd 3.4, --strict-reconfig-check, as the scheduler runs it):
//   - no member is added unless the member asked has been connected to every voter for etcd's
//     HealthInterval, 5 s (etcdserver mayAddMember, isConnectedFullySince: "unhealthy cluster",
//     gRPC Unavailable): not while a voter is down, nor for 5 s after one (re)connects;
//   - at most one learner at a time ("too many learner members in cluster");
//   - a peer URL is in the list at most once;
//   - a learner is promoted only when its raft index is within 10% of the leader's commit index
//     ("can only promote a learner member which is in sync with leader"); a voter is not promoted;
//   - a voter is removed only if the voters left that run still make a quorum of the voters left
//     (etcd 3.4 says "unhealthy cluster", gRPC Unavailable); a learner always can be;
//   - an unknown member id is not found.
// Each refusal has the code our etcd client (src/etcd/client.h) turns etcd's gRPC code into.
// tests/contract/membership_contract_test.cc runs the same cases against these rules (through
// MembershipModel below) and against a real three-member etcd, which is why the simulator may
// trust them.
//
// Threading: plain values and pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "scheduler/core/types.h"

namespace etcd_mesos::sim {

struct ModelMember {
  uint64_t id = 0;
  std::string name;  // empty until the member's process started
  std::string peer_url;
  bool learner = false;
};

// What the leader can see when it applies a change.
struct ChangeContext {
  // Voters that run and are connected, not counting the member `except` (0: count all).
  std::function<int(uint64_t except)> running_voters;
  // The raft index the learner with this id has reached (0 if it does not run).
  std::function<uint64_t(uint64_t id)> learner_index;
  uint64_t commit = 0;  // the leader's commit index
  // Whether the member the request reached has been connected to every voter for 5 s.
  std::function<bool()> connected_to_all_voters_for_5s;
};

// Whether a learner at `index` is in sync with a leader that committed `commit`.
bool LearnerInSync(uint64_t index, uint64_t commit);

// Applies one change to `members` as etcd's leader would, or answers why not (members unchanged).
// kAddLearner uses `peer_url` and gives the new member `new_id`; kPromote, kRemove and
// kMoveLeader (its target checked, nothing changed) use `member_id`. Answers the id acted on.
Result<uint64_t> ApplyMembershipChange(std::vector<ModelMember>& members,
                                       scheduler::MembershipOp op, uint64_t member_id,
                                       const std::string& peer_url, uint64_t new_id,
                                       const ChangeContext& context);

// A cluster of the model on its own, for the contract suite: voters that all run, learners that
// run once started and catch up a fixed number of raft entries per step.
class MembershipModel {
 public:
  // `voters` running voters named n1..nN at http://10.0.0.i:2380, with the first as leader.
  explicit MembershipModel(int voters);

  Result<uint64_t> AddLearner(const std::string& peer_url);
  Status Promote(uint64_t id);
  Status Remove(uint64_t id);
  // The target's validity only (the model has no leader of its own).
  Status MoveLeader(uint64_t id);
  const std::vector<ModelMember>& List() const { return members_; }
  // The member's process starts (it publishes `name`): a learner begins to catch up; a voter
  // (re)connects, and adds are refused for the next kHealthIntervalSteps steps.
  Status Start(uint64_t id, const std::string& name);
  // The member's process dies (it stays in the list).
  Status Stop(uint64_t id);
  // One raft step (200 ms): the leader commits a few entries; each started learner catches up a
  // little.
  void Step();
  static constexpr uint64_t kHealthIntervalSteps = 25;  // etcd's 5 s, in 200 ms steps

 private:
  struct Running {
    uint64_t id = 0;
    uint64_t index = 0;  // its raft index
    uint64_t since = 0;  // the step it (re)connected at
  };
  ChangeContext Context() const;

  std::vector<ModelMember> members_;
  std::vector<Running> running_;
  uint64_t step_ = 0;
  uint64_t commit_ = 1000;
  uint64_t next_id_ = 0x100;
};

}  // namespace etcd_mesos::sim
