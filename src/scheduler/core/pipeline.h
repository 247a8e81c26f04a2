// ActionPipeline and StateWriter: the policy between the core's actions and the world, shared by
// the scheduler shell (src/scheduler/shell) and the simulator (sim/), so that the simulator runs
// the rules we ship instead of a copy of them.
//
// ActionPipeline takes the core's actions one batch (one Handle call) at a time and hands out
// effects in order:
//   - write-ahead: a Persist becomes WriteState and blocks every later effect, of any batch,
//     until the driver reports the write's outcome (StateWritten), so a launch is on record
//     before it happens;
//   - coalescing: of two Persists in a row, only the later is written (it carries everything the
//     earlier did);
//   - a launch whose batch's state write failed for good is not made: its offer is declined and
//     the core hears, as a FollowUp event, that Mesos dropped it (TASK_DROPPED), so the member is
//     replaced instead of counting as maybe alive for ever;
//   - an acknowledgement whose batch's state write failed for good is not sent: Mesos resends the
//     update, and the core records it again;
//   - an answer to admin request 0 (--restore-from at start: nobody waits) becomes a Note;
//   - while leadership is in doubt (Suspend: the leader lost its connection to the election,
//     whose session may expire and let another instance lead), nothing is handed out; the core
//     goes on deciding, and what it decided flows, in order, once the leadership is confirmed
//     (Resume). A leader that learns it lost the leadership drops the pipeline with the core.
// Every other action passes through unchanged.
//
// StateWriter is how the state node is written: compare-and-set on the version last seen. A
// conflict (or a node that is there when it thought not) is told apart by reading the node back:
// holding exactly what is being written, it was this scheduler's own write whose answer was lost
// (a connection loss after the store applied it), and the write is done; holding anything else,
// someone else wrote it (another scheduler of this framework, or a write of a predecessor that
// landed late) and it is never overwritten: the write ends with kConflict, and the scheduler
// must stop and start again from what is stored (overwriting it lost what the other had recorded
// and let member names go backwards: simulator seed 1345). A node gone is created again. A write
// refused by its fence (kRefused: the writer's election node is gone, so it no longer leads) is
// over at once. Any other failure is retried with a doubling backoff, kAttempts in all.
//
// Both are pure: no I/O, no clock (delays are handed to the driver to wait out), no threads.
// Threading: plain objects; not thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <variant>

#include "common/result.h"
#include "scheduler/core/types.h"

namespace etcd_mesos::scheduler {

// Write the state: the pipeline gives no other effect until StateWritten is called.
struct WriteState {
  PersistentState state;
};
// Feed this event to the core (through the driver's usual path for events).
struct FollowUp {
  Event event;
};
using Effect = std::variant<Action, WriteState, FollowUp>;

class ActionPipeline {
 public:
  // A launch that is not made is declined with this filter, short: the member still needs a home.
  static constexpr double kSkippedLaunchRefuseSeconds = 1;

  // What the pipeline did besides passing actions on (for logs and the simulator's coverage).
  struct Stats {
    uint64_t writes = 0;
    uint64_t writes_coalesced = 0;
    uint64_t writes_failed = 0;
    uint64_t launches_skipped = 0;
    uint64_t acks_withheld = 0;
  };

  // One batch: the actions of one Handle call, in the core's order.
  void Add(Actions actions);
  // The next effect to carry out; nullopt while a state write is out, while suspended, or when
  // nothing is queued.
  std::optional<Effect> Next();
  // The outcome of the WriteState handed out last. Returns the PersistResult for the core; later
  // effects flow again.
  Event StateWritten(Status status, Time now);

  // Holds every effect back until Resume (a write already out is still answered).
  void Suspend() { suspended_ = true; }
  void Resume() { suspended_ = false; }
  bool suspended() const { return suspended_; }

  // Each action queued and not handed out yet, in order (the simulator's invariants look ahead).
  template <typename F>
  void ForEachQueued(F&& f) const {
    for (const auto& q : queue_) f(q.action);
  }

  bool writing() const { return writing_; }
  bool empty() const { return queue_.empty() && pending_.empty(); }
  const Stats& stats() const { return stats_; }

 private:
  struct Queued {
    Action action;
    uint64_t batch;
  };
  std::optional<Effect> Transform(Queued queued);
  void SkipLaunch(const LaunchMember& launch);

  std::deque<Queued> queue_;
  std::deque<Effect> pending_;  // effects one action turned into, handed out first
  uint64_t next_batch_ = 0;
  bool writing_ = false;
  bool suspended_ = false;
  uint64_t writing_batch_ = 0;
  std::set<uint64_t> failed_batches_;  // recent batches whose write failed: they launch nothing
  Time failed_at_{};                   // when the latest write failed (a skipped launch's time)
  Stats stats_;
};

// Writes of the state node, one at a time, by compare-and-set.
class StateWriter {
 public:
  static constexpr int kAttempts = 6;
  static constexpr Millis kBackoff{250};
  static constexpr Millis kLoadBackoffMax{8'000};

  // What the driver does next.
  struct Create {};  // create the node with the data
  struct Set {       // set the node's data if its version is still `version`
    int64_t version;
  };
  struct Reread {  // read the node to learn its version (someone else wrote)
    Error why;
  };
  struct Wait {  // wait, then call Waited()
    Millis delay;
    Error why;  // the failure being retried
  };
  struct Done {  // the write is over: written, or failed for good (kConflict: someone else wrote)
    Status status;
  };
  // The node as read back after a conflict.
  struct Stored {
    int64_t version;
    std::string data;
  };
  using Step = std::variant<Create, Set, Reread, Wait, Done>;

  // Where the state lives, for error messages ("zk://.../etcd-mesos/...").
  void set_where(std::string where) { where_ = std::move(where); }
  // The version read at start (-1: the node does not exist yet).
  void Loaded(int64_t version) { version_ = version; }
  int64_t version() const { return version_; }

  // Starts a write of `data` (the previous one must be Done).
  Step Begin(std::string data);
  // The answer to Create or Set: the node's new version, or the error.
  Step Written(Result<int64_t> version);
  // The answer to Reread: the node as stored, or the error.
  Step StoredRead(Result<Stored> stored);
  // The Wait is over.
  Step Waited();

  // The delay before reading the state again after the attempt-th failed read at start.
  static Millis LoadRetryDelay(int attempt);

 private:
  Step Attempt();
  Step Retry(Error error);

  std::string where_;
  std::string data_;  // what the write under way writes
  int64_t version_ = -1;
  int attempt_ = 0;
  std::optional<Error> conflict_;  // the write error that led to the Reread under way
};

}  // namespace etcd_mesos::scheduler
