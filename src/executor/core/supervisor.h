// Supervisor: the executor's decisions about its one etcd member, as a pure state machine.
//
// `Handle(Event) -> Actions`: events are facts (Mesos launched a task, etcd started or exited, a
// probe answered, a timer fired carrying `now`, the scheduler asked for a kill or a reseed, the
// agent connection dropped); actions are intentions (start etcd, signal it, probe it, arm a timer,
// send a task status, answer a reseed, exit). It does no I/O, reads no clock and starts no
// threads, so every rule below is unit-tested without processes (tests/unit/executor_core_test.cc)
// and the shell (src/executor/shell) only carries actions out and turns completions into events.
//
// The rules, and why:
//  - TASK_STARTING once etcd has been started; TASK_RUNNING only after the first probe the member
//    answered: the original executor reported RUNNING before etcd served, so the scheduler counted
//    members that did not exist yet.
//  - Each RUNNING status carries `healthy` and the member's facts (executor/task_config.h
//    MemberFacts as JSON in `data`). A new status goes out at once when a fact that matters for
//    decisions changes (healthy, serving, learner/voter, leader, member or cluster id), and only
//    then: the raft index and term move constantly (etcd 3.4's /health itself writes entries),
//    and each update is checkpointed by the agent and acknowledged through the master, load on
//    shared Mesos infrastructure for no decision. The scheduler reads progress from its own
//    probes.
//  - etcd exiting on its own is restarted in place (same data dir, same member identity), after a
//    capped exponential backoff; after the member has served once it restarts with
//    --initial-cluster-state=existing. More than `restart_max` restarts within `restart_window`
//    is a crash loop: TASK_FAILED with the exit status and the tail of etcd's log (the shell reads
//    it), so that the scheduler replaces the member.
//  - KILL or SHUTDOWN: SIGTERM, SIGKILL after the grace period, TASK_KILLED once etcd is gone,
//    then exit. Losing the agent for good (recovery timeout passed): stop etcd the same way, exit.
//  - Reseed: stop etcd; start it on the same data dir with --force-new-cluster; wait until it
//    serves as a one-member cluster that leads itself; stop it; start it once more without the
//    flag (so no later restart can reset membership again); wait until it serves healthy; answer
//    with the outcome and the raft index. A reseed is bounded by a deadline; one at a time.
//
// Stale completions are harmless: each etcd start gets an incarnation number and each timer arm a
// token; events carrying old ones are ignored.
//
// Threading: a plain object, used from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/duration.h"
#include "executor/task_config.h"
#include "mesos/v1.h"

namespace etcd_mesos::executor::core {

using Time = std::chrono::steady_clock::time_point;

enum class TimerId {
  kProbe,           // next probe of the member
  kRestart,         // end of a restart backoff
  kStopGrace,       // SIGTERM sent this long ago: SIGKILL
  kReseedDeadline,  // the running reseed gives up
};
std::string_view TimerName(TimerId id);

// ---- Events ----

// Mesos delivered a task; its data is parsed and validated here.
struct Launched {
  mesos::TaskInfo task;
  Time now;
};
// The shell started etcd for StartEtcd{incarnation}.
struct EtcdStarted {
  uint64_t incarnation = 0;
  int pid = 0;
  Time now;
};
// The shell could not start etcd (missing binary, bad sandbox): counts as an exit.
struct EtcdStartFailed {
  uint64_t incarnation = 0;
  std::string error;
  std::string log_tail;
  Time now;
};
struct EtcdExited {
  uint64_t incarnation = 0;
  std::string how;       // "exited with status 1", "killed by signal 9"
  std::string log_tail;  // the last lines of etcd's log
  Time now;
};
// What one probe learnt from the member (maintenance status, /health, member list).
struct ProbeFacts {
  uint64_t member_id = 0;
  uint64_t cluster_id = 0;
  uint64_t raft_index = 0;
  uint64_t raft_term = 0;
  uint64_t leader = 0;
  bool is_learner = false;
  std::vector<std::string> errors;     // from maintenance status (no leader, alarms)
  std::optional<bool> health;          // GET /health; nullopt when it did not answer
  std::optional<size_t> member_count;  // member list; nullopt when refused (a learner)
};
struct ProbeResult {
  uint64_t incarnation = 0;
  std::optional<ProbeFacts> facts;  // nullopt: maintenance status did not answer
  std::string error;                // why, when facts is nullopt
  Time now;
};
struct KillRequested {
  std::string task_id;
  std::optional<Duration> grace;  // from the kill policy; else CoreOptions::default_kill_grace
  Time now;
};
struct ShutdownRequested {
  Duration grace;
  Time now;
};
struct TimerFired {
  TimerId id = TimerId::kProbe;
  uint64_t token = 0;
  Time now;
};
struct ReseedRequested {
  uint64_t request_id = 0;
  std::optional<Duration> timeout;  // else CoreOptions::reseed_timeout
  Time now;
};
// The reseed listener could not bind: the scheduler could never reseed this member.
struct ReseedListenerFailed {
  std::string error;
  Time now;
};
struct AgentDisconnected {
  std::string reason;
  Time now;
};
struct AgentReconnected {
  Time now;
};
// The executor client gave up on the agent (recovery timeout passed, or no checkpointing).
struct AgentLost {
  std::string reason;
  Time now;
};

using Event = std::variant<Launched, EtcdStarted, EtcdStartFailed, EtcdExited, ProbeResult,
                           KillRequested, ShutdownRequested, TimerFired, ReseedRequested,
                           ReseedListenerFailed, AgentDisconnected, AgentReconnected, AgentLost>;

// ---- Actions ----

// Bind the reseed listener on config.address:config.reseed_port with config.reseed_token.
struct StartReseedListener {
  TaskConfig config;
};
struct StartEtcd {
  uint64_t incarnation = 0;
  TaskConfig config;
  bool new_cluster = true;  // --initial-cluster-state new (else existing)
  bool force_new_cluster = false;
};
enum class Signal { kTerm, kKill };
struct SignalEtcd {
  Signal signal = Signal::kTerm;
};
struct Probe {
  uint64_t incarnation = 0;
};
// Arming a timer replaces any earlier arm of the same id.
struct ArmTimer {
  TimerId id = TimerId::kProbe;
  uint64_t token = 0;
  Duration after{};
};
// executor_id, uuid, source and timestamp are the executor client's to fill.
struct SendStatus {
  mesos::TaskStatus status;
};
enum class ReseedOutcome {
  kReseeded,    // one-member cluster, restarted without --force-new-cluster, serving
  kBusy,        // a reseed is already running
  kNotRunning,  // no task, or the task is stopping
  kFailed,      // a step failed or the deadline passed; `message` says which
};
std::string_view ReseedOutcomeName(ReseedOutcome outcome);
struct AnswerReseed {
  uint64_t request_id = 0;
  ReseedOutcome outcome = ReseedOutcome::kFailed;
  std::string message;
  MemberFacts facts;  // raft_index: the index the member came up with
  Duration took{};
};
struct Log {
  enum class Level { kInfo, kWarn, kError } level = Level::kInfo;
  std::string message;
};
// Everything is done (final status sent, etcd gone): the shell flushes updates and exits.
struct Exit {
  int code = 0;
};

using Action = std::variant<StartReseedListener, StartEtcd, SignalEtcd, Probe, ArmTimer, SendStatus,
                            AnswerReseed, Log, Exit>;
using Actions = std::vector<Action>;

struct CoreOptions {
  Duration restart_backoff_initial = std::chrono::milliseconds(250);
  Duration restart_backoff_max = std::chrono::seconds(15);
  // Probe cadence until the member first serves, and during a reseed (health_interval otherwise).
  Duration fast_probe_interval = std::chrono::milliseconds(100);
  Duration default_kill_grace = std::chrono::seconds(5);
  Duration reseed_timeout = std::chrono::seconds(60);
  Duration reseed_stop_grace = std::chrono::seconds(10);
  Duration agent_lost_grace = std::chrono::seconds(3);
};

class Supervisor {
 public:
  explicit Supervisor(CoreOptions options = {}) : options_(options) {}

  Actions Handle(const Event& event);

  // For the reseed listener's GET /status and for tests.
  const MemberFacts& facts() const { return facts_; }
  bool has_task() const { return task_id_.has_value(); }
  bool reseeding() const { return reseed_.has_value(); }
  bool done() const { return task_ == TaskPhase::kDone; }
  std::optional<int> etcd_pid() const { return pid_; }

 private:
  enum class TaskPhase { kIdle, kActive, kStopping, kDone };
  enum class Proc { kNone, kSpawning, kRunning, kTerminating };
  enum class ReseedStep { kStopOld, kForced, kStopForced, kRestarted };
  struct Reseed {
    uint64_t request_id = 0;
    ReseedStep step = ReseedStep::kStopOld;
    Time started;
  };
  struct Final {
    std::optional<mesos::TaskState> state;  // nullopt: no status (the agent is gone)
    std::string message;
    std::optional<mesos::TaskStatus::Reason> reason;
    int exit_code = 0;
  };

  void OnLaunched(const Launched& e, Actions& out);
  void OnStarted(const EtcdStarted& e, Actions& out);
  void OnExited(uint64_t incarnation, const std::string& how, const std::string& log_tail, Time now,
                Actions& out);
  void OnProbe(const ProbeResult& e, Actions& out);
  void OnTimer(const TimerFired& e, Actions& out);
  void OnReseed(const ReseedRequested& e, Actions& out);

  void Start(bool force_new_cluster, Actions& out);
  void Terminate(Duration grace, Actions& out);
  void Stop(Final final, Duration grace, Actions& out);
  void Finish(Actions& out);
  void Crashed(const std::string& how, const std::string& log_tail, Time now, Actions& out);
  void FailReseed(const std::string& why, Time now, Actions& out);
  void ArmProbe(Duration after, Actions& out);
  void Arm(TimerId id, Duration after, Actions& out);
  void Disarm(TimerId id);
  void ReportFacts(const std::string& message, Actions& out);
  void SendState(mesos::TaskState state, const std::string& message, Actions& out,
                 std::optional<mesos::TaskStatus::Reason> reason = std::nullopt);
  mesos::TaskStatus NewStatus(mesos::TaskState state) const;
  static void Say(Actions& out, Log::Level level, std::string message);

  CoreOptions options_;
  TaskPhase task_ = TaskPhase::kIdle;
  std::optional<mesos::TaskID> task_id_;
  TaskConfig config_;
  Final final_;

  Proc proc_ = Proc::kNone;
  uint64_t incarnation_ = 0;
  std::optional<int> pid_;
  bool stop_when_started_ = false;  // a stop was decided while etcd was still being started
  Duration pending_grace_{};

  bool served_once_ = false;    // the member has answered a probe at least once
  bool running_sent_ = false;   // TASK_RUNNING went out
  bool starting_sent_ = false;  // TASK_STARTING went out
  std::deque<Time> restarts_;   // restarts within the current window
  std::string last_exit_;

  MemberFacts facts_;
  std::optional<MemberFacts> last_sent_;

  std::optional<Reseed> reseed_;

  uint64_t next_token_ = 0;
  // The live token of each timer; a fired timer whose token is not here is stale.
  std::optional<uint64_t> timer_tokens_[4];
};

}  // namespace etcd_mesos::executor::core
