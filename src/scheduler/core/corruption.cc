// SchedulerCore's corruption checks (see scheduler_core.h): the voters' HashKV compared at one
// revision every --hash-check-interval, the replacement of a member in the minority, and what
// corruption holds back (an automatic reseed, a corrupt reseed survivor or backup source).
#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "mesos/task_state.h"
#include "scheduler/core/rules.h"
#include "scheduler/core/scheduler_core.h"

namespace etcd_mesos::scheduler {

namespace {

// An answer that never comes (the shell bounds every HashKV, so this is a lost answer) does not
// stop the checks for longer than this, or than one interval.
constexpr Millis kHashCheckGiveUp{60'000};

bool Answers(const Member& m) { return m.reachable && !Gone(m.task_state); }

}  // namespace

bool SchedulerCore::LeaderMarkedCorrupt() const {
  uint64_t leader = CountLeaderVotes(state_.members).leader;
  if (leader == 0) return false;
  return std::any_of(corrupt_.begin(), corrupt_.end(), [&](const std::string& name) {
    auto it = state_.members.find(name);
    return it != state_.members.end() && it->second.member_id == leader;
  });
}

bool SchedulerCore::CorruptionHoldsReseed(Actions& out) {
  std::vector<std::string> alarmed;
  for (const auto& [name, m] : state_.members) {
    if (!Gone(m.task_state) && m.corrupt_alarm) alarmed.push_back(name);
  }
  if (alarmed.empty() && corrupt_.empty()) return false;
  if (reseed_hold_said_ != livelock_since_) {
    reseed_hold_said_ = livelock_since_;
    std::string why =
        !corrupt_.empty()
            ? fmt::format("{} marked corrupt by a hash check", fmt::join(corrupt_, ", "))
            : fmt::format("etcd's CORRUPT alarm reported by {}", fmt::join(alarmed, ", "));
    Say("error", "livelock",
        fmt::format("the livelock has lasted past --reseed-timeout, but no automatic reseed "
                    "starts while members disagree on their data ({}): a reseed keeps one "
                    "survivor's data and copies it to every new member, so from the wrong one it "
                    "would spread the corruption. See the guide, 'A member is corrupt'; POST "
                    "/reseed never picks a member marked corrupt",
                    why),
        out);
  }
  return true;
}

void SchedulerCore::MaybeCheckHashes(Time now, Actions& out) {
  // A mark lasts while the member may run; once its task is gone the usual heal takes over.
  std::erase_if(corrupt_, [&](const std::string& name) {
    auto it = state_.members.find(name);
    return it == state_.members.end() || Gone(it->second.task_state);
  });
  if (!corrupt_.empty()) RemoveOneCorruptMember(now, out);
  if (config_.hash_check_interval.count() == 0) return;
  if (hash_check_id_) {
    if (now - *hash_check_started_ < std::max(config_.hash_check_interval, kHashCheckGiveUp)) {
      return;
    }
    hash_check_id_.reset();  // lost; the next one is due
  }
  if (!hash_check_started_) hash_check_started_ = now;  // the first one an interval after start
  if (now - *hash_check_started_ < config_.hash_check_interval) return;
  // Only a settled cluster: a membership change or a defragmentation in flight, or a learner
  // catching up, would compare members that are in the middle of something.
  if (!MayAct() || !healthy_ || in_flight_ || pending_add_ || maintenance_run_ || !view_ ||
      !corrupt_.empty()) {
    return;
  }
  if (std::any_of(view_->members.begin(), view_->members.end(),
                  [](const EtcdMember& m) { return m.is_learner; })) {
    return;
  }
  CheckHashes check;
  uint64_t revision = std::numeric_limits<uint64_t>::max();
  for (const auto& [name, m] : state_.members) {
    if (!MaybeVoter(m) || !Answers(m) || m.member_id == 0 || m.revision == 0) continue;
    check.members.emplace_back(name, m.ClientUrl());
    // HashKV of a revision a member has not applied yet is refused ("future revision"): the
    // lowest the probes saw is one every member has.
    revision = std::min(revision, m.revision);
  }
  if (check.members.size() < 2) return;
  check.id = next_hash_check_id_++;
  check.revision = revision;
  hash_check_id_ = check.id;
  hash_check_started_ = now;
  out.push_back(std::move(check));
}

void SchedulerCore::OnHashCheckResult(const HashCheckResult& e, Actions& out) {
  if (!hash_check_id_ || *hash_check_id_ != e.id) return;  // a late answer
  hash_check_id_.reset();
  ++hash_status_.checks;
  hash_status_.last_check = e.now;
  hash_status_.last_revision = e.revision;
  // Hashes are comparable only between members whose history is compacted to the same revision.
  std::map<int64_t, std::map<uint32_t, std::vector<std::string>>> by_compaction;
  std::vector<std::string> unanswered;
  for (const MemberHash& mh : e.hashes) {
    if (!mh.hash.ok()) {
      unanswered.push_back(fmt::format("{} ({})", mh.member, mh.hash.error().message));
      continue;
    }
    by_compaction[mh.hash->compact_revision][mh.hash->hash].push_back(mh.member);
  }
  int quorum = Quorum(Voters());
  std::vector<std::string> found, undecided;
  for (const auto& [compacted, by_hash] : by_compaction) {
    if (by_hash.size() < 2) continue;
    auto majority = std::find_if(by_hash.begin(), by_hash.end(), [&](const auto& kv) {
      return static_cast<int>(kv.second.size()) >= quorum;
    });
    std::vector<std::string> groups;
    for (const auto& [hash, names] : by_hash) {
      groups.push_back(fmt::format("{} {:08x}", fmt::join(names, ", "), hash));
    }
    std::string described = fmt::format("hashes at revision {} (compacted to {}): {}", e.revision,
                                        compacted, fmt::join(groups, "; "));
    if (majority == by_hash.end()) {
      undecided.push_back(described);
      continue;
    }
    for (const auto& [hash, names] : by_hash) {
      if (hash == majority->first) continue;
      for (const auto& name : names) {
        found.push_back(name);
        Say("error", "corruption",
            fmt::format("{} is corrupt: its data differ from those of a majority of the voters "
                        "({}); it is removed from etcd and replaced by a fresh learner from the "
                        "majority",
                        name, described),
            out, name);
      }
    }
  }
  if (!undecided.empty()) {
    Say("error", "corruption",
        fmt::format("members disagree on their data and no majority of the {} voters agrees ({}): "
                    "nothing is replaced; see the guide, 'A member is corrupt'",
                    Voters(), fmt::join(undecided, " | ")),
        out);
  }
  if (!found.empty() || !undecided.empty()) ++hash_status_.mismatches;
  for (const auto& name : found) {
    if (corrupt_.insert(name).second) ++hash_status_.members_corrupt;
  }
  if (found.empty() && undecided.empty()) {
    hash_status_.last_result = fmt::format("{} members agree at revision {}",
                                           e.hashes.size() - unanswered.size(), e.revision);
  } else if (!found.empty()) {
    hash_status_.last_result = fmt::format("corrupt: {}", fmt::join(found, ", "));
  } else {
    hash_status_.last_result = "members disagree; no majority";
  }
  if (by_compaction.size() > 1) hash_status_.last_result += "; some compacted apart";
  if (!unanswered.empty()) {
    hash_status_.last_result += fmt::format("; unanswered: {}", fmt::join(unanswered, ", "));
  }
  if (!corrupt_.empty()) RemoveOneCorruptMember(e.now, out);
}

void SchedulerCore::RemoveOneCorruptMember(Time now, Actions& out) {
  if (!MayAct() || !healthy_ || in_flight_ || pending_add_ || !view_) return;
  for (const std::string& name : corrupt_) {
    auto it = state_.members.find(name);
    if (it == state_.members.end()) continue;
    const Member& m = it->second;
    for (const EtcdMember& em : view_->members) {
      if (OursFor(state_.members, em) != &m) continue;
      if (!em.is_learner) {
        // The voters that stay and follow a leader must make a quorum of the voters left.
        int following = CountLeaderVotes(state_.members).following;
        bool counted = m.reachable && !m.learner && m.leader != 0;
        if (!RemovalKeepsQuorum(Voters(), following - (counted ? 1 : 0))) continue;
      }
      RemoveMember(em, &m, "its data are corrupt (a hash check found it in the minority)", now,
                   out);
      return;
    }
  }
}

}  // namespace etcd_mesos::scheduler
