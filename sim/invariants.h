// The simulator's invariants, as pure checks over plain facts.
//
// The world (world.h) gathers facts from its ground truth (which etcd clusters exist, which
// processes run, what the store holds) and from what the scheduler core asked for; these
// functions decide whether a rule was broken. Keeping them apart from the world lets the tests
// feed them fabricated facts, so the checker itself is tested: a checker that never fires would
// let every seed "pass".
//
// Each violation carries a stable invariant name (for the failure report and for grepping) and a
// sentence that says what was seen.
//
// Threading: pure functions over values.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "scheduler/core/types.h"

namespace etcd_mesos::sim {

struct Violation {
  std::string invariant;  // e.g. "too-many-voters"
  std::string detail;
};

// One etcd cluster (one raft group identity) as the world sees it.
struct ClusterFacts {
  uint64_t uid = 0;
  int voters = 0;          // voters in its membership
  int live_processes = 0;  // member processes of it that run (connected or not)
  bool quorum = false;     // a quorum of its voters run and can reach each other
  // The cluster that the latest deliberate reseed (TriggerReseed) created.
  bool reseed_survivor = false;
  // Every running process of it is one the scheduler ordered killed (old generation).
  bool all_ordered_killed = false;
  // Name and launch configuration of each of its running processes: during a CA rotation every
  // two of them must trust each other's certificates (CaTrustOf).
  std::vector<std::pair<std::string, std::string>> launches;
};

// What a member launched with `launch_config` holds, by the CA rotation's suffix on it (core
// rules.h CaLaunchSuffix): the generation of the CA of its certificates and of the CAs it trusts.
struct CaTrust {
  uint64_t certificate = 0;
  std::vector<uint64_t> trusts;
};
CaTrust CaTrustOf(std::string_view launch_config);

// With the operator's CA files (--tls=files), what a member launched with `launch_config` holds:
// the files of the change its "+filesN" suffix names (none: the first ones recorded), by
// `files_by_change` as the cores recorded them; nothing when those are not known.
std::optional<scheduler::CaFiles> CaFilesOf(
    std::string_view launch_config, const std::map<uint64_t, scheduler::CaFiles>& files_by_change);

struct WorldFacts {
  int cluster_size = 0;
  std::vector<ClusterFacts> clusters;
  // --tls=files: the CA files by change, as the cores recorded them (empty otherwise).
  std::map<uint64_t, scheduler::CaFiles> ca_files;
  // Member name -> tasks of that name that are not terminal on their agent.
  std::map<std::string, int> live_tasks_by_member;
  // Durable members: (agent id, persistence id) -> tasks not terminal on their agent that use
  // that volume (as Mesos attached it at launch).
  std::map<std::pair<std::string, std::string>, int> live_tasks_by_volume;
};

// Voters, tasks per member and per volume, and live clusters with quorum.
std::vector<Violation> CheckWorld(const WorldFacts& facts);

// A write that reached the store, against the one before it (none for the first write).
std::optional<Violation> CheckStoreWrite(const std::optional<scheduler::PersistentState>& before,
                                         const scheduler::PersistentState& after);

// A membership change as etcd received it, with the ground truth of its cluster at that moment.
struct ChangeFacts {
  scheduler::MembershipOp op = scheduler::MembershipOp::kRemove;
  std::string name;
  bool target_is_voter = false;
  bool had_quorum = false;
  int voters_after = 0;          // voters once the change is applied
  int running_voters_after = 0;  // of those, how many run and are connected
  // A removal of a voter that runs (our own decision, not a heal of the dead: a shrink or a
  // rollout) must leave a quorum of the target size running. 0: not judged.
  bool target_running = false;
  int target_size = 0;
};
std::optional<Violation> CheckMembershipChange(const ChangeFacts& facts);

// The first TriggerReseed of a reseed run, as the core emitted it.
struct ReseedFacts {
  std::string chosen;
  bool manual = false;  // the operator asked (AdminReseed answered 202 in the same step)
  bool auto_reseed = false;
  scheduler::Millis livelocked_for{0};  // continuous core livelock seen by the world
  scheduler::Millis reseed_timeout{0};
  // Raft indexes of the survivors the scheduler could reach, when indexes were frozen (no
  // leader anywhere among them); empty when they were moving (a forced reseed of a healthy
  // cluster), where "highest" is only approximate.
  std::map<std::string, uint64_t> frozen_indexes;
};
std::optional<Violation> CheckReseedTrigger(const ReseedFacts& facts);

// The answer to an operator's AdminReseed, against the core's state just before it.
struct AdminFacts {
  bool connected = false;
  bool reconciling = false;
  bool reseeding = false;
  bool total_loss = false;
  bool force = false;
  bool healthy = false;
  int answer = 0;          // the HTTP status answered, 0 if none
  int answers = 0;         // how many answers the request got
  bool triggered = false;  // a TriggerReseed came with it
};
std::optional<Violation> CheckAdminReseed(const AdminFacts& facts);

// A durable member launched on a volume that exists on its agent (LaunchMember without reserve:
// a restart in place, same etcd member on its own data), against the generation of the core
// that asked for it when it asked. A member of an older generation belongs to a cluster that a
// reseed or a fresh start has left behind: bringing its data back would revive that cluster.
struct RestartFacts {
  std::string member;
  std::string volume;
  uint64_t member_generation = 0;  // as the launch names it
  uint64_t core_generation = 0;    // the core's, in the batch that asked for the launch
};
std::optional<Violation> CheckRestartInPlace(const RestartFacts& facts);

// One reservation (with its volume, if not destroyed) of this cluster's labels on an agent that
// is up, once the calm has healed the cluster: `claimed` if a member the core holds now has
// that volume on that agent. Whatever the scheduler reserved is used or released in the end.
struct ReservationFacts {
  std::string agent;
  std::string volume;  // the etcd-mesos.volume label
  std::string member;  // the etcd-mesos.member label
  bool claimed = false;
  bool in_use = false;  // a live task uses it
};
std::optional<Violation> CheckReservations(const std::vector<ReservationFacts>& facts);

}  // namespace etcd_mesos::sim
