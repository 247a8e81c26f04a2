#include "sim/etcd_model.h"

#include <algorithm>
#include <cassert>

#include <fmt/format.h>

namespace etcd_mesos::sim {

namespace core = etcd_mesos::scheduler;

namespace {
constexpr uint64_t kLearnerCatchUpPerStep = 400;
}  // namespace

bool LearnerInSync(uint64_t index, uint64_t commit) { return index * 10 >= commit * 9; }

Result<uint64_t> ApplyMembershipChange(std::vector<ModelMember>& members, core::MembershipOp op,
                                       uint64_t member_id, const std::string& peer_url,
                                       uint64_t new_id, const ChangeContext& context) {
  auto entry = std::find_if(members.begin(), members.end(),
                            [&](const ModelMember& m) { return m.id == member_id; });
  int voters = static_cast<int>(std::count_if(members.begin(), members.end(),
                                              [](const ModelMember& m) { return !m.learner; }));
  switch (op) {
    case core::MembershipOp::kAddLearner: {
      assert(new_id != 0);
      // Checked before the change is proposed, so before the checks below (which etcd makes as
      // it applies the change); gRPC Unavailable, as for a removal that would lose quorum.
      if (!context.connected_to_all_voters_for_5s()) {
        return Error{ErrorCode::kUnavailable, "etcdserver: unhealthy cluster"};
      }
      if (std::any_of(members.begin(), members.end(),
                      [](const ModelMember& m) { return m.learner; })) {
        return Error{ErrorCode::kRefused, "etcdserver: too many learner members in cluster"};
      }
      if (std::any_of(members.begin(), members.end(),
                      [&](const ModelMember& m) { return m.peer_url == peer_url; })) {
        return Error{ErrorCode::kRefused, "etcdserver: Peer URLs already exists"};
      }
      members.push_back({new_id, "", peer_url, true});
      return new_id;
    }
    case core::MembershipOp::kPromote: {
      if (entry == members.end()) {
        return Error{ErrorCode::kNotFound, "etcdserver: member not found"};
      }
      if (!entry->learner) {
        return Error{ErrorCode::kRefused, "etcdserver: can only promote a learner member"};
      }
      if (!LearnerInSync(context.learner_index(entry->id), context.commit)) {
        return Error{ErrorCode::kRefused,
                     "etcdserver: can only promote a learner member which is in sync with leader"};
      }
      entry->learner = false;
      return member_id;
    }
    case core::MembershipOp::kMoveLeader:
      // Not a membership change: who leads is the world's (it checks the member asked leads).
      // etcd 3.4 refuses an unknown member and a learner alike (FailedPrecondition).
      if (entry == members.end() || entry->learner) {
        return Error{ErrorCode::kRefused, "etcdserver: bad leader transferee"};
      }
      return member_id;
    case core::MembershipOp::kRemove: {
      if (entry == members.end()) {
        return Error{ErrorCode::kNotFound, "etcdserver: member not found"};
      }
      if (!entry->learner) {
        // --strict-reconfig-check: never remove a voter if the rest would lack quorum.
        int after = voters - 1;
        // etcd 3.4 answers gRPC Unavailable here (found by the membership contract suite).
        if (after > 0 && context.running_voters(entry->id) * 2 <= after) {
          return Error{ErrorCode::kUnavailable, "etcdserver: unhealthy cluster"};
        }
      }
      members.erase(entry);
      return member_id;
    }
  }
  return Error{ErrorCode::kInvalidArgument, "unknown membership operation"};
}

MembershipModel::MembershipModel(int voters) {
  for (int i = 1; i <= voters; ++i) {
    uint64_t id = next_id_++;
    members_.push_back({id, fmt::format("n{}", i), fmt::format("http://10.0.0.{}:2380", i), false});
    running_.push_back({id, commit_, step_});
  }
}

ChangeContext MembershipModel::Context() const {
  ChangeContext c;
  c.commit = commit_;
  auto running = [this](uint64_t id) -> const Running* {
    for (const auto& r : running_) {
      if (r.id == id) return &r;
    }
    return nullptr;
  };
  c.running_voters = [this, running](uint64_t except) {
    int n = 0;
    for (const auto& m : members_) {
      if (!m.learner && m.id != except && running(m.id) != nullptr) ++n;
    }
    return n;
  };
  c.learner_index = [running](uint64_t id) -> uint64_t {
    const Running* r = running(id);
    return r != nullptr ? r->index : 0;
  };
  c.connected_to_all_voters_for_5s = [this, running] {
    return std::all_of(members_.begin(), members_.end(), [&](const ModelMember& m) {
      const Running* r = running(m.id);
      return m.learner || (r != nullptr && step_ - r->since >= kHealthIntervalSteps);
    });
  };
  return c;
}

Result<uint64_t> MembershipModel::AddLearner(const std::string& peer_url) {
  auto r = ApplyMembershipChange(members_, core::MembershipOp::kAddLearner, 0, peer_url, next_id_,
                                 Context());
  if (r.ok()) ++next_id_;
  return r;
}

Status MembershipModel::Promote(uint64_t id) {
  auto r = ApplyMembershipChange(members_, core::MembershipOp::kPromote, id, "", 0, Context());
  if (!r.ok()) return r.error();
  return OkStatus();
}

Status MembershipModel::MoveLeader(uint64_t id) {
  auto r = ApplyMembershipChange(members_, core::MembershipOp::kMoveLeader, id, "", 0, Context());
  if (!r.ok()) return r.error();
  return OkStatus();
}

Status MembershipModel::Remove(uint64_t id) {
  auto r = ApplyMembershipChange(members_, core::MembershipOp::kRemove, id, "", 0, Context());
  if (!r.ok()) return r.error();
  std::erase_if(running_, [&](const Running& p) { return p.id == id; });  // it learns, and stops
  return OkStatus();
}

Status MembershipModel::Start(uint64_t id, const std::string& name) {
  for (auto& m : members_) {
    if (m.id != id) continue;
    m.name = name;
    std::erase_if(running_, [&](const Running& p) { return p.id == id; });
    // A voter restarted on its data dir has its log; a new learner has none.
    running_.push_back({id, m.learner ? 0 : commit_, step_});
    return OkStatus();
  }
  return Error{ErrorCode::kNotFound, "member not in the cluster's membership"};
}

Status MembershipModel::Stop(uint64_t id) {
  if (std::erase_if(running_, [&](const Running& p) { return p.id == id; }) == 0) {
    return Error{ErrorCode::kNotFound, "no such member runs"};
  }
  return OkStatus();
}

void MembershipModel::Step() {
  ++step_;
  commit_ += 3;
  for (auto& r : running_) {
    bool learner = std::any_of(members_.begin(), members_.end(),
                               [&](const ModelMember& m) { return m.id == r.id && m.learner; });
    r.index = learner ? std::min(commit_, r.index + kLearnerCatchUpPerStep) : commit_;
  }
}

}  // namespace etcd_mesos::sim
