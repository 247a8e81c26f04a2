#include "sim/invariants.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "scheduler/core/rules.h"

namespace etcd_mesos::sim {

CaTrust CaTrustOf(std::string_view launch) {
  size_t at = launch.rfind("+ca");
  if (at == std::string_view::npos) return {0, {0}};
  std::string_view rest = launch.substr(at + 3);
  uint64_t n = 0;
  size_t digits = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') {
    n = n * 10 + static_cast<uint64_t>(rest[digits++] - '0');
  }
  rest.remove_prefix(digits);
  if (n > 0 && rest == "-trust") return {n - 1, {n - 1, n}};
  if (n > 0 && rest == "-issue") return {n, {n - 1, n}};
  return {n, {n}};
}

std::optional<scheduler::CaFiles> CaFilesOf(
    std::string_view launch, const std::map<uint64_t, scheduler::CaFiles>& files_by_change) {
  uint64_t change = 0;
  if (size_t at = launch.rfind("+files"); at != std::string_view::npos) {
    std::string_view digits = launch.substr(at + 6);
    if (std::from_chars(digits.data(), digits.data() + digits.size(), change).ec != std::errc()) {
      return std::nullopt;
    }
  }
  auto it = files_by_change.find(change);
  if (it == files_by_change.end()) return std::nullopt;
  return it->second;
}

namespace {

// Whether a member launched with `a` trusts the certificates of one launched with `b`.
bool Trusts(std::string_view a, std::string_view b, const WorldFacts& facts) {
  auto files_a = CaFilesOf(a, facts.ca_files), files_b = CaFilesOf(b, facts.ca_files);
  if (files_a && files_b) {
    return std::find(files_a->trusted.begin(), files_a->trusted.end(), files_b->issuer) !=
           files_a->trusted.end();
  }
  CaTrust ta = CaTrustOf(a);
  uint64_t cert_b = CaTrustOf(b).certificate;
  return std::find(ta.trusts.begin(), ta.trusts.end(), cert_b) != ta.trusts.end();
}

}  // namespace

std::vector<Violation> CheckWorld(const WorldFacts& facts) {
  std::vector<Violation> out;
  for (const auto& c : facts.clusters) {
    for (const auto& [a, launch_a] : c.launches) {
      for (const auto& [b, launch_b] : c.launches) {
        if (Trusts(launch_a, launch_b, facts)) continue;
        out.push_back({"ca-trust-broken",
                       fmt::format("in cluster {:x}, {} ({}) does not trust the CA of {}'s "
                                   "certificates ({}): they cannot talk",
                                   c.uid, a, launch_a, b, launch_b)});
      }
    }
    if (c.live_processes > 0 && c.voters > facts.cluster_size) {
      out.push_back(
          {"too-many-voters", fmt::format("live cluster {:x} has {} voters; the cluster size is {}",
                                          c.uid, c.voters, facts.cluster_size)});
    }
  }
  for (const auto& [name, n] : facts.live_tasks_by_member) {
    if (n > 1) {
      out.push_back(
          {"two-live-tasks-for-one-member", fmt::format("{} live tasks run member {}", n, name)});
    }
  }
  // Mesos never offers a volume a task uses: two tasks on one volume would run two etcd
  // processes on one data dir.
  for (const auto& [volume, n] : facts.live_tasks_by_volume) {
    if (n > 1) {
      out.push_back(
          {"two-members-on-one-volume",
           fmt::format("{} live tasks use volume {} on agent {}", n, volume.second, volume.first)});
    }
  }
  // Two clusters with quorum can both accept writes: a split brain. The only excuse is a
  // deliberate reseed whose old generation is on its way out (every process ordered killed).
  int with_quorum = 0;
  std::string which;
  bool excused = true;
  for (const auto& c : facts.clusters) {
    if (!c.quorum || c.live_processes == 0) continue;
    ++with_quorum;
    which += fmt::format(" {:x}{}", c.uid, c.reseed_survivor ? "(reseed survivor)" : "");
    if (!c.reseed_survivor && !c.all_ordered_killed) excused = false;
  }
  if (with_quorum > 1 && !excused) {
    out.push_back({"two-live-clusters-with-quorum",
                   fmt::format("{} clusters have quorum:{}; an old generation was not ordered "
                               "killed",
                               with_quorum, which)});
  }
  return out;
}

std::optional<Violation> CheckStoreWrite(const std::optional<scheduler::PersistentState>& before,
                                         const scheduler::PersistentState& after) {
  if (!before) return std::nullopt;
  if (after.generation < before->generation) {
    return Violation{"stored-state-went-backwards",
                     fmt::format("generation {} was stored after generation {}", after.generation,
                                 before->generation)};
  }
  if (before->framework_id && after.framework_id != before->framework_id) {
    return Violation{"stored-state-went-backwards",
                     fmt::format("framework id changed from {} to {}", *before->framework_id,
                                 after.framework_id.value_or("(none)"))};
  }
  if (after.next_member < before->next_member) {
    return Violation{"stored-state-went-backwards",
                     fmt::format("next member number {} was stored after {} (names reused)",
                                 after.next_member, before->next_member)};
  }
  if (before->bootstrapped && !after.bootstrapped && after.generation == before->generation) {
    return Violation{"stored-state-went-backwards",
                     "bootstrapped was cleared without a new generation"};
  }
  return std::nullopt;
}

std::optional<Violation> CheckMembershipChange(const ChangeFacts& f) {
  if (f.op == scheduler::MembershipOp::kAddLearner) return std::nullopt;  // learners never vote
  if (f.op == scheduler::MembershipOp::kRemove && !f.target_is_voter) return std::nullopt;
  if (!f.had_quorum) return std::nullopt;
  bool quorum_after = f.voters_after > 0 && f.running_voters_after * 2 > f.voters_after;
  if (quorum_after) {
    if (f.op == scheduler::MembershipOp::kRemove && f.target_running && f.target_size > 0 &&
        f.running_voters_after < scheduler::Quorum(f.target_size)) {
      return Violation{
          "removal-below-target-quorum",
          fmt::format("removal of running voter {} leaves {} running voters, fewer than a quorum "
                      "({}) of the target size {}",
                      f.name, f.running_voters_after, scheduler::Quorum(f.target_size),
                      f.target_size)};
    }
    return std::nullopt;
  }
  return Violation{
      "membership-change-breaks-quorum",
      fmt::format("{} of {} leaves {} running voters of {}: the cluster had quorum and loses it",
                  f.op == scheduler::MembershipOp::kRemove ? "removal" : "promotion", f.name,
                  f.running_voters_after, f.voters_after)};
}

std::optional<Violation> CheckReseedTrigger(const ReseedFacts& f) {
  if (!f.manual) {
    if (!f.auto_reseed) {
      return Violation{"reseed-without-cause",
                       fmt::format("automatic reseed from {} with auto-reseed off", f.chosen)};
    }
    if (f.livelocked_for < f.reseed_timeout) {
      return Violation{"reseed-without-cause",
                       fmt::format("automatic reseed from {} after {} ms of livelock; the reseed "
                                   "timeout is {} ms",
                                   f.chosen, f.livelocked_for.count(), f.reseed_timeout.count())};
    }
  }
  auto chosen = f.frozen_indexes.find(f.chosen);
  if (chosen == f.frozen_indexes.end()) return std::nullopt;
  for (const auto& [name, index] : f.frozen_indexes) {
    if (index > chosen->second) {
      return Violation{"reseed-not-highest-index",
                       fmt::format("reseed picked {} at raft index {}, but {} is reachable at {}",
                                   f.chosen, chosen->second, name, index)};
    }
  }
  return std::nullopt;
}

std::optional<Violation> CheckAdminReseed(const AdminFacts& f) {
  auto wrong = [&](std::string why) {
    return Violation{"admin-reseed-answer", fmt::format("answered {} ({} answers, trigger {}): {}",
                                                        f.answer, f.answers, f.triggered, why)};
  };
  if (f.answers != 1) return wrong("every request gets exactly one answer");
  if (!f.connected || f.reconciling) {
    if (f.answer != 503) return wrong("not ready (disconnected or reconciling) must be 503");
  } else if (f.reseeding || f.total_loss) {
    if (f.answer != 409) return wrong("a running reseed or total loss must be 409");
  } else if (f.healthy && !f.force) {
    if (f.answer != 409) return wrong("a healthy cluster without force must be 409");
  } else if (f.answer != 202 && f.answer != 409) {
    return wrong("an accepted request is 202, or 409 when no survivor answers");
  }
  if ((f.answer == 202) != f.triggered) return wrong("202 if and only if a reseed was triggered");
  return std::nullopt;
}

std::optional<Violation> CheckRestartInPlace(const RestartFacts& f) {
  if (f.member_generation >= f.core_generation) return std::nullopt;
  return Violation{"stale-generation-restart",
                   fmt::format("{} of generation {} restarted in place on volume {} while the core "
                               "is at generation {}: its data belong to a cluster left behind",
                               f.member, f.member_generation, f.volume, f.core_generation)};
}

std::optional<Violation> CheckReservations(const std::vector<ReservationFacts>& facts) {
  for (const auto& r : facts) {
    if (r.claimed) continue;
    return Violation{
        "reservation-leak",
        fmt::format("volume {} of {} on agent {} ({}) belongs to no member of the healed cluster "
                    "and was not released",
                    r.volume, r.member, r.agent, r.in_use ? "in use by a task" : "idle")};
  }
  return std::nullopt;
}

}  // namespace etcd_mesos::sim
