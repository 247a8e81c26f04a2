// The simulated world in which the real SchedulerCore runs: a Mesos master and its agents, the
// real executor core (src/executor/core Supervisor) for every task, etcd members modelled as raft
// membership (the rules of etcd_model.h), a store (store_model.h) with latency, connection loss,
// session expiry and compare-and-set conflicts, and a scheduler that may crash and restart from
// what it stored; or two or three scheduler instances elected through a model of ZooKeeper's
// sessions and nodes, which may be killed, stopped, or cut off from ZooKeeper, the master or
// both (never two leaders acting in overlapping terms: invariant overlapping-leaders). With
// durable members, Mesos's dynamic reservations and persistent volumes: a member's etcd data
// live on its volume, which outlives its tasks and agent restarts that keep the disk, and goes
// with an agent that comes back wiped (invariants two-members-on-one-volume,
// stale-generation-restart, reservation-leak). It replaces the scheduler's and the executor's
// shells, the way FoundationDB's sim2 and TigerBeetle's VOPR replace the network, the disk and
// the clock. The scheduler shell's own policy (write-ahead
// ordering, coalesced writes, the refusal to launch what a failed write did not record, the store
// write's retries and re-reads) is not copied here: the world drives the same ActionPipeline and
// StateWriter (scheduler/core/pipeline.h) that the shell does.
//
// One run is a function of its seed: one thread, one std::mt19937_64, simulated time (no clock is
// ever read), and an event queue ordered by (time, sequence). A run has two phases:
//   chaos  faults at random for SimOptions::chaos of simulated time; the invariants
//          (invariants.h) are checked after every step;
//   calm   faults stop and partitions heal; the cluster must reach cluster_size healthy voters
//          within SimOptions::calm_budget, unless the chaos destroyed every member's data, in
//          which case the core must report total loss and launch nothing.
// The first broken invariant ends the run; RunResult carries its name, the seed, and the last
// events before it.
//
// The models are simple but honest about what the core relies on: Mesos's per-task FIFO of
// reliable status updates (delayed, duplicated, reordered across tasks), reconciliation answers
// that report the agent's latest state at any time, PARTITION_AWARE unreachable tasks that come
// back; etcd's rules for learners (one at a time, promotion only in sync), quorum for a leader and
// for progress, membership changes only through a leader, the strict reconfiguration check, and
// force-new-cluster. The store model and the membership rules pass the same contract suites as
// ZooKeeper, the directory store and a real etcd (tests/contract).
//
// Threading: RunSeed is a pure function of its arguments; each call builds its own world, so
// different seeds may run on different threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "scheduler/core/scheduler_core.h"
#include "scheduler/core/types.h"
#include "sim/invariants.h"

namespace etcd_mesos::sim {

struct SimOptions {
  uint64_t max_steps = 5'000'000;  // a bound on one run, chaos and calm together
  scheduler::Millis chaos{300'000};
  scheduler::Millis calm_budget{900'000};
  int agents = 5;
  int cluster_size = 3;
  // Mean simulated time between two faults in the chaos phase.
  scheduler::Millis fault_interval_mean{20'000};
  // No faults at all (for the benchmark's floor): the chaos phase is then just time passing.
  bool faults = true;
  bool keep_trace = false;  // keep every trace line (for determinism tests), not only the tail
  // Scheduler instances (two or three: elected through a model of ZooKeeper, state in its
  // store); 0: as the seed says (one in most seeds, two or three in 30% of them).
  int schedulers = 0;
  // Durable members (role "etcd": each member on its own dynamic reservation and persistent
  // volume, restarted in place, released when no longer ours): unset, as the seed says (40% of
  // seeds, drawn from a random stream of their own so that the other seeds replay as they did).
  std::optional<bool> durable;
  // Tests of the simulator itself: rewrites each batch of the core's actions, to stand in for a
  // deliberately broken core that the invariants must catch. Unset in every real run.
  std::function<void(const scheduler::SchedulerCore&, scheduler::Actions&)> tamper;
  // Tests of the simulator: a shell whose leader goes on acting when cut off from ZooKeeper
  // (it does not hold), which the overlapping-leaders invariant must catch. Unset in real runs.
  bool leader_ignores_lost_zookeeper = false;
};

struct RunResult {
  uint64_t seed = 0;
  bool ok = true;
  std::optional<Violation> violation;
  std::vector<std::string> last_events;  // the tail of the trace, oldest first
  std::vector<std::string> trace;        // every line, when SimOptions::keep_trace
  uint64_t trace_hash = 0;               // FNV-1a over every trace line
  uint64_t steps = 0;
  scheduler::Millis simulated{0};
  bool total_loss = false;  // the run ended, as expected, in reported total loss
  // Coverage: how often each fault and each interesting path was hit.
  std::map<std::string, uint64_t> coverage;
};

RunResult RunSeed(const SimOptions& options, uint64_t seed);

// Whether a seed runs durable members when SimOptions::durable leaves it to the seed.
bool DurableInSeed(uint64_t seed);

}  // namespace etcd_mesos::sim
