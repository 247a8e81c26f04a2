// The operator's console (the status page's live data): a bounded history of the cluster kept in
// memory for the page's charts (healthy voters, leader changes, the leader's disk write latency as
// etcd reports it, database size), when the health verdict last changed, and the JSON the page
// polls (GET /console.json). Everything here is rendered from memory: a poll never waits on etcd,
// the store or the disk, and the history and the notes are bounded however long the scheduler runs.
//
// Threading: ClusterHistory is owned by the shell's event loop and not thread-safe; the renderings
// are pure functions of their arguments.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "etcd/types.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/shell/status_page.h"

namespace etcd_mesos::scheduler::shell {

// One point of the charts.
struct ClusterSample {
  int64_t unix_ms = 0;
  int healthy_voters = 0;
  int target = 0;                      // the cluster size asked for
  uint64_t leader_changes = 0;         // since this instance started
  uint64_t db_size = 0;                // the largest member database, bytes
  std::optional<double> wal_fsync_ms;  // the leader's mean WAL fsync since the previous sample
};

class ClusterHistory {
 public:
  static constexpr size_t kKeep = 1440;                // four hours at one sample per 10 s
  static constexpr int64_t kSampleIntervalMs = 10000;  // how often the shell samples

  // Called often (every shell tick): notices health flips and leader changes as they happen.
  // `standby`: this instance mirrors the leader's stored state and shows its stored verdict.
  void Observe(const SchedulerCore& core, bool standby, int64_t unix_ms);
  // Appends one sample (observing first), dropping the oldest past kKeep.
  void Sample(const SchedulerCore& core, bool standby, int64_t unix_ms,
              std::optional<double> wal_fsync_ms);

  const std::deque<ClusterSample>& samples() const { return samples_; }
  // When the verdict shown last changed (the first observation if it never did); 0 before any.
  int64_t health_since_ms() const { return health_since_ms_; }
  uint64_t leader_changes() const { return leader_changes_; }

  // The mean WAL fsync between two reads of a member's totals, in ms; nullopt when there was no
  // fsync between them or the totals went back (the member restarted).
  static std::optional<double> MeanFsyncMs(const etcd::DiskLatencyTotals& before,
                                           const etcd::DiskLatencyTotals& after);

 private:
  std::deque<ClusterSample> samples_;
  std::optional<bool> healthy_;
  int64_t health_since_ms_ = 0;
  uint64_t leader_ = 0;
  uint64_t leader_changes_ = 0;
};

// What the console needs beyond the core's views.
struct ConsoleContext {
  int64_t now_unix_ms = 0;
  std::optional<std::string> standby_leader;  // as RenderStatusPage's
  bool holding = false;                       // a leader cut off from ZooKeeper
  std::string master_url;        // http://<leading master>, for sandbox links; "" when unknown
  std::string tls_mode = "off";  // --tls: auto, files or off
  // Incremental polls: only notes with a larger sequence number and samples newer than this.
  uint64_t notes_after = 0;
  int64_t samples_after_ms = 0;
};

// The console's JSON. Members carry their role (leader, voter, learner), raft index and lag behind
// the leader, a learner's catch-up progress, database size and its fragmented share, their
// certificates' expiry (and whether it is within --cert-renew-before), and a link to their
// sandbox in the Mesos web UI; notes carry a sequence number, kind and member. `tls` gives the
// mode and the first certificate to expire.
std::string RenderConsoleJson(const SchedulerCore& core, const NoteLog& notes,
                              const ClusterHistory& history, const ConsoleContext& context);

// The Mesos web UI's address of a member's sandbox (the executor's directory on its agent).
std::string SandboxUrl(const std::string& master_url, const std::string& framework_id,
                       const Member& member);

}  // namespace etcd_mesos::scheduler::shell
