#include "sim/world.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <random>
#include <set>

#include <fmt/format.h>

#include "common/member_health.h"
#include "common/overloaded.h"
#include "executor/core/supervisor.h"
#include "executor/task_config.h"
#include "mesos/task_state.h"
#include "scheduler/core/pipeline.h"
#include "scheduler/core/rules.h"
#include "scheduler/core/scheduler_core.h"
#include "sim/etcd_model.h"
#include "sim/store_model.h"

namespace etcd_mesos::sim {
namespace {

namespace core = etcd_mesos::scheduler;
namespace exec = etcd_mesos::executor::core;
using core::Millis;
using core::Time;
using namespace std::chrono_literals;

constexpr size_t kTailLines = 30;
constexpr Millis kRaftStep{200};
constexpr Millis kMesosStep{100};
constexpr Millis kTickInterval{500};
constexpr Millis kAllocationInterval{1000};
constexpr Millis kAgentPingTimeout{15'000};  // an agent silent this long is unreachable
constexpr uint16_t kPortBegin = 31000;
constexpr uint16_t kPortEnd = 31099;
constexpr uint64_t kLearnerCatchUpPerStep = 400;  // as MembershipModel's, in etcd_model.cc
// Long enough for the scheduler to see a change: a probe interval, a failed probe's timeout and
// one more probe interval.
constexpr Millis kSettle{3'000};
// etcd's HealthInterval: adds are refused until the member asked has been connected to every
// voter this long (MembershipModel's kHealthIntervalSteps).
constexpr Millis kHealthInterval{5'000};
// Where the state lives (the shell's use of its store is scheduler/core/pipeline.h's, shared).
constexpr char kStatePath[] = "/etcd-sim/state";
constexpr Millis kReseedTimeout{150'000};  // the shell's deadline for an executor's reseed answer
// The election's ZooKeeper session (the shell's ZkElection default), and how often the model of
// ZooKeeper looks at its sessions and nodes.
constexpr Millis kSessionTimeout{10'000};
constexpr Millis kElectionStep{100};

// How many scheduler instances a seed runs: one in most seeds (they replay as they did before
// there were more), two or three in 30% of them. Chosen without the random stream, avoiding
// the residues of the seeds pinned in tests/unit/sim_test.cc.
// Whether the operator resizes the cluster now and then in this seed's chaos (POST
// /cluster-size): in a fifth of the seeds, chosen as above.
bool ResizesInSeed(uint64_t seed) { return seed % 20 == 12 || seed % 20 == 16; }
// Whether the operator rolls the members out now and then (a changed launch configuration, a
// rolling restart, a resume): in about 6% of the seeds, residues no pinned seed has.
bool RolloutsInSeed(uint64_t seed) { return seed % 30 == 26 || seed % 30 == 28; }
// Whether one member's data may be corrupted behind etcd's back in this seed's chaos (as the
// local fault /faults/executors/ID/corrupt does): in a tenth of the seeds, chosen as above (and
// half of them with several schedulers).
bool CorruptionInSeed(uint64_t seed) { return seed % 20 == 2 || seed % 20 == 15; }
// Whether the cluster runs the operator's own CA files (--tls=files), which the operator rotates
// by redeploying the scheduler with new files: in half of one residue of the rollout seeds.
bool CaFilesInSeed(uint64_t seed) { return seed % 60 == 28; }

// The number of a CA the sim's operator made ("ca-3" -> 3): higher is newer.
uint64_t CaNumber(const std::string& name) { return std::stoull(name.substr(3)); }

// Whether a seed runs durable members (role "etcd": reservations and persistent volumes), and
// how long a member that ended waits to be restarted in place before it is replaced: 40% of the
// seeds, drawn from a random stream of their own, so that the main stream, and with it every
// seed that is not durable, replays as it did before reservations were modelled.
struct DurableChoice {
  bool durable = false;
  Millis replace_after{0};
};
DurableChoice DurableForSeed(uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0xd0ab'1e00'5eedull);
  DurableChoice c;
  c.durable = std::bernoulli_distribution(0.4)(rng);
  switch (std::uniform_int_distribution<int>(0, 3)(rng)) {
    case 0:
      c.replace_after = Millis(0);  // replaced at once, never restarted in place
      break;
    case 1:
      c.replace_after = Millis(std::uniform_int_distribution<int64_t>(2'000, 8'000)(rng));
      break;
    case 2:
      c.replace_after = Millis(30'000);
      break;
    default:
      c.replace_after = Millis(300'000);  // the default of --replace-after
      break;
  }
  return c;
}

// The value of label `key` of a resource's last reservation, "" if none.
std::string LabelOf(const mesos::Resource& r, const std::string& key) {
  if (r.reservations_size() == 0) return "";
  for (const auto& label : r.reservations(r.reservations_size() - 1).labels().labels()) {
    if (label.key() == key) return label.value();
  }
  return "";
}

int SchedulersForSeed(uint64_t seed) {
  switch (seed % 20) {
    case 10:
    case 11:
      return 3;
    case 12:
    case 15:
    case 16:
    case 18:
      return 2;
    default:
      return 1;
  }
}

bool Terminal(mesos::TaskState s) { return mesos_facts::IsTerminalState(s); }

struct Url {
  std::string host;
  uint16_t port = 0;
};

Url ParseUrl(std::string_view url) {
  if (url.starts_with("http://")) url.remove_prefix(7);
  if (url.starts_with("https://")) url.remove_prefix(8);  // TLS is not modelled: the same member
  Url out;
  size_t colon = url.rfind(':');
  if (colon == std::string_view::npos) return out;
  out.host = std::string(url.substr(0, colon));
  out.port = static_cast<uint16_t>(std::stoi(std::string(url.substr(colon + 1))));
  return out;
}

// "name=http://ip:port,..." as (name, peer url) pairs.
std::vector<std::pair<std::string, std::string>> ParseInitialCluster(const std::string& s) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t comma = s.find(',', i);
    if (comma == std::string::npos) comma = s.size();
    std::string item = s.substr(i, comma - i);
    size_t eq = item.find('=');
    if (eq != std::string::npos) out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    i = comma + 1;
  }
  return out;
}

std::string OpName(core::MembershipOp op) {
  switch (op) {
    case core::MembershipOp::kAddLearner:
      return "add-learner";
    case core::MembershipOp::kPromote:
      return "promote";
    case core::MembershipOp::kRemove:
      return "remove";
    case core::MembershipOp::kMoveLeader:
      return "move-leader";
  }
  return "?";
}

class World {
 public:
  World(const SimOptions& options, uint64_t seed);
  RunResult Run();

 private:
  // ---- The models -------------------------------------------------------------------------
  // One durable member's dynamic reservation on an agent (its cpus, mem, disk and three ports,
  // labelled for it as the shell's DurableResources labels them) and the persistent volume made
  // of its disk. Mesos keeps both for the role across tasks, framework failovers and agent
  // restarts that keep the disk, and offers them, to the role alone, while no task uses them.
  // The member's etcd data live on the volume: a task restarted in place there is the same etcd
  // member with the data it had.
  struct Reservation {
    std::string cluster, generation, member, label_volume;  // the etcd-mesos.* labels
    std::string volume;  // the persistence id; "" once destroyed (the reserved disk is left)
    // What is still reserved (0 or none once unreserved).
    double cpus = 0, mem = 0, disk = 0;
    std::vector<uint16_t> ports;
    std::string task;  // the task that uses it, "" when none (it is offered then)
    int data = -1;     // the process whose etcd data the volume holds (-1: none yet)
    // Since when no task of it has been in contact (its task ended or its agent vanished).
    std::optional<Time> lost_contact;
    bool Empty() const {
      return volume.empty() && cpus == 0 && mem == 0 && disk == 0 && ports.empty();
    }
  };
  struct Agent {
    std::string id;
    std::string ip;
    int incarnation = 0;
    bool up = true;            // the machine runs
    bool master_cut = false;   // the agent cannot reach the master (agent restart, partition)
    bool net_cut = false;      // the machine reaches nobody (master, peers, the scheduler)
    bool unreachable = false;  // the master marked its tasks TASK_UNREACHABLE
    uint64_t outage = 0;
    // Unreserved and free (reserved resources are in `reservations`).
    double cpus = 4, mem = 4096, disk = 8192;
    std::set<uint16_t> ports;
    std::optional<std::string> offer;
    Time filtered_until;
    std::vector<Reservation> reservations;  // kept with the disk
    bool wiped_on_return = false;           // the machine is down and comes back without its disk
  };
  struct PendingUpdate {
    mesos::TaskState state;
    bool from_master = false;  // generated by the master (unreachable, gone, dropped)
    std::string message;
    std::optional<mesos::TaskStatus::Reason> reason;
  };
  struct Task {
    std::string id, name, agent_id;
    int agent = -1;
    mesos::TaskState agent_state = mesos::TASK_STAGING;   // the truth on the agent
    mesos::TaskState master_state = mesos::TASK_STAGING;  // what the master knows
    std::deque<PendingUpdate> pending;                    // reliable updates, per-task FIFO
    bool in_flight = false;
    int process = -1;
    bool kill_ordered = false;
    bool hangs = false;           // its fetch never finishes (it stays in staging until killed)
    bool kill_delivered = false;  // its executor was told to kill it: its etcd is stopping
    double cpus = 0, mem = 0, disk = 0;
    std::vector<uint16_t> ports;
    std::string volume;  // the persistence id of the volume it uses ("": none)
    core::LaunchMember launch;
    // The real executor core, once the task's fetch is done; gone with its machine.
    std::unique_ptr<exec::Supervisor> executor;
    uint64_t executor_gen = 0;      // bumped when the executor dies; its pending events drop
    uint64_t etcd_incarnation = 0;  // the executor's latest StartEtcd
  };
  struct Process {  // one etcd member process; its data lives and dies with it
    std::string task_id;
    int agent = -1;
    uint64_t cluster = 0;
    uint64_t member_id = 0;
    std::string name;
    uint64_t index = 0;
    bool alive = true;
    // Its data were corrupted: its HashKV differs from its cluster's. A member that joins gets
    // its data from the leader's snapshot, but the model does not copy the corruption: it is one
    // member's, as a disk's would be.
    bool corrupt = false;
    std::string host;
    uint16_t peer_port = 0, client_port = 0, reseed_port = 0;
    Time changed_at;   // it started, died, moved or its connectivity changed
    bool tls = false;  // its URLs say https (certificates themselves are not modelled)
    std::string PeerUrl() const {
      return fmt::format("{}://{}:{}", tls ? "https" : "http", host, peer_port);
    }
  };
  using Entry = ModelMember;
  struct Cluster {
    uint64_t uid = 0;
    std::string key;  // token|initial-cluster of a static bootstrap; empty for a reseed
    std::vector<Entry> members;
    uint64_t commit = 0;
    uint64_t leader = 0;
    uint64_t term = 1;
    bool ever_led = false;  // it had a leader once, so clients may have written to it
  };

  // One scheduler process (an instance of the shell with its core). Without HA there is one, and
  // it acts whenever it runs. With HA (two or three, state in ZooKeeper), each holds a node in
  // the election while its session lives; the lowest node leads, and only a leader that knows
  // it leads has a core. The session lives while ZooKeeper hears from the process, and expires
  // kSessionTimeout after it last did; the process notices the loss of its connection after two
  // thirds of that, and a leader then holds its actions (ActionPipeline::Suspend, as the shell).
  struct Instance {
    int id = 0;
    std::unique_ptr<core::SchedulerCore> core;
    // The shell's action pipeline and state writer: the shipped ones (scheduler/core/pipeline.h).
    std::unique_ptr<core::ActionPipeline> pipeline;
    core::StateWriter writer;
    uint64_t epoch = 0;  // this run of it (a restart, or a new term, is a new epoch)
    bool up = true;
    bool zk_cut = false;     // partitioned from ZooKeeper (and so from the store)
    bool mesos_cut = false;  // partitioned from the Mesos master
    uint64_t node = 0;       // its election node, while its session lives (0: none)
    Time zk_heard;           // when ZooKeeper last heard from its session
    bool leading = false;    // it knows it leads: it has a core, or is loading its state
    uint64_t term = 0;       // the node it was elected with
    // Since when its core has seen a livelock (what its reseed decisions are held to).
    std::optional<Time> livelocked_since;
  };

  // ---- Plumbing ---------------------------------------------------------------------------
  struct Scheduled {
    Time at;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Scheduled& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  void At(Time at, std::function<void()> fn) { queue_.push({at, next_seq_++, std::move(fn)}); }
  void After(Millis d, std::function<void()> fn) { At(now_ + d, std::move(fn)); }
  // The instance running as `epoch`, if it still does.
  Instance* ByEpoch(uint64_t epoch) {
    for (auto& s : instances_) {
      if (s.epoch == epoch && s.up) return &s;
    }
    return nullptr;
  }
  // The instance the master streams to (the framework's subscription), if any.
  Instance* Subscriber() { return subscriber_ >= 0 ? &instances_[subscriber_] : nullptr; }
  // The instance that acts now: the subscriber, else a leader with a core (the only one
  // without HA), for the checks and the calm phase.
  Instance* Acting() { return const_cast<Instance*>(ActingInstance()); }
  const Instance* ActingInstance() const {
    if (subscriber_ >= 0 && instances_[subscriber_].core) return &instances_[subscriber_];
    const Instance* latest = nullptr;  // of the leaders with a core, the one elected last
    for (const auto& s : instances_) {
      if (s.core && s.leading && (latest == nullptr || s.term > latest->term)) latest = &s;
    }
    return latest;
  }
  const core::SchedulerCore* ActingCore() const {
    const Instance* s = ActingInstance();
    return s ? s->core.get() : nullptr;
  }
  // Runs fn only if the scheduler run that caused it is still running.
  void ToCore(uint64_t epoch, Millis d, std::function<core::Event()> make) {
    After(d, [this, epoch, make = std::move(make)] {
      if (Instance* s = ByEpoch(epoch)) Deliver(*s, make());
    });
  }
  // From the master: to the instance subscribed now, if it still is when it arrives.
  void ToSubscriber(Millis d, std::function<core::Event()> make) {
    if (Instance* s = Subscriber()) ToCore(s->epoch, d, std::move(make));
  }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  int64_t Uniform(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  Millis Ms(int64_t lo, int64_t hi) { return Millis(Uniform(lo, hi)); }
  void Trace(std::string line);
  void Hash(uint64_t v);
  void Hit(const std::string& what) { ++coverage_[what]; }
  void Fail(Violation v);
  int64_t SinceStart() const { return (now_ - start_) / 1ms; }

  // ---- The scheduler and its shell --------------------------------------------------------
  void StartScheduler(Instance& s);
  void CrashScheduler(Instance& s, bool graceful = false, const std::string& why = "crashes");
  void RestartLater(int id, Millis after);
  void Subscribe(uint64_t epoch);
  void Deliver(Instance& s, const core::Event& event);
  void CheckBatch(Instance& s, const core::Event& event, const core::Actions& out,
                  bool was_reseeding, const AdminFacts& admin);
  std::optional<Violation> CheckBootstrapAgain(const core::Actions& out,
                                               uint64_t generation_before);
  void CheckOneLeaderActs(const Instance& s, const std::string& what);
  void RunActions(Instance& s);
  void Execute(Instance& s, core::Effect effect);
  void Execute(Instance& s, const core::Action& action);

  // ---- The election (HA only) -------------------------------------------------------------
  void ElectionStep();
  void LosesLeadership(Instance& s, const std::string& why);
  void InjectInstanceFault();
  void InjectResize();
  void InjectRollout();
  void InjectCaFilesStep(Instance& s);
  bool RolloutSettled(const core::SchedulerCore& core) const;
  Millis CalmAllowance() const;
  void InjectCorruption();
  void CutFromMesos(Instance& s, Millis d);

  // ---- The store, and the shell's use of it ----------------------------------------------
  // One store operation of the running scheduler: the request travels to the store, is applied
  // there, and the answer travels back; either way the connection may be lost (the client then
  // answers kUnavailable, and for a lost answer nobody knows whether the write was applied).
  using StoreAnswer = std::function<void(Result<store::Record>)>;
  void StoreCall(Instance& s, std::function<Result<store::Record>()> apply, StoreAnswer answer);
  bool StoreDown() const { return now_ < store_down_until_; }
  bool StoreDownFor(const Instance& s) const { return StoreDown() || s.zk_cut; }
  Millis StoreLatency() { return now_ < store_slow_until_ ? Ms(100, 3000) : Ms(1, 40); }
  // The store applies a write of the state node; the stored state must not go backwards.
  // `fence`: the writer's election node (0: none), as the shell's StateStore::SetFence.
  Result<store::Record> ApplyStateWrite(bool create, std::string data, int64_t version,
                                        uint64_t fence);
  bool NodeAlive(uint64_t node) const;
  std::optional<core::PersistentState> StoredState() const;
  // The shell: LoadState at start, DoPersist/WriteStep for a WriteState effect.
  void LoadState(uint64_t epoch, int attempt);
  void Persist(Instance& s, const core::PersistentState& state);
  void WriteStep(uint64_t epoch, const std::string& data, core::StateWriter::Step step,
                 std::function<void(Status)> done);

  // ---- Mesos ------------------------------------------------------------------------------
  bool Visible(const Agent& a) const { return a.up && !a.master_cut && !a.net_cut; }
  void SetCut(int agent, bool master_cut, bool net_cut);
  void Touch(int agent) {
    for (auto& p : processes_) {
      if (p.agent == agent) p.changed_at = now_;
    }
  }
  void BecameInvisible(int agent);
  void BecameVisible(int agent);
  // The machine comes back: without its disk as a new agent (the old one removed for good), or,
  // with durable members, with its disk as the same agent.
  void Reboot(int agent, bool keep_disk = false);
  void MarkUnreachable(int agent, uint64_t outage);
  void Allocate();
  void MesosStep();
  bool CanDeliver(const Task& t) const;
  void DeliverUpdate(const std::string& task_id);
  void Enqueue(Task& t, mesos::TaskState state, bool from_master, std::string message = "",
               std::optional<mesos::TaskStatus::Reason> reason = std::nullopt);
  void Launch(const core::LaunchMember& launch, uint64_t session);
  void StartTask(const std::string& task_id);
  void Kill(const core::KillTask& kill, uint64_t session);
  void Reconcile(const core::ReconcileTasks& r, uint64_t session);
  void DropSession();
  void FreeTaskResources(Task& t);
  bool LaunchDurable(const core::LaunchMember& launch, Agent& a, Task& t);
  // Durable members' resources: what an agent offers of them, and the DESTROY and UNRESERVE of
  // a ReleaseResources.
  Reservation* ReservationWithVolume(Agent& a, const std::string& volume);
  std::vector<mesos::Resource> Offered(const Reservation& r) const;
  void Release(const core::ReleaseResources& release, uint64_t session);
  // Members whose data survive only on a volume, at the calm: `certain` ones a correct core must
  // restart in place (their replace_after is far from over), else the ones it may have given up.
  int VolumeSurvivors(bool certain) const;
  std::optional<Violation> ReservationLeak() const;
  bool HealedAndReleased();
  void Answer(const std::string& task_id, const std::string& agent_id, mesos::TaskState state);

  // ---- etcd -------------------------------------------------------------------------------
  bool Connected(const Process& p) const;
  Process* ProcessAt(const std::string& url, bool reseed_port);
  void StartProcess(Task& t);
  void ProcessDies(const std::string& task_id, mesos::TaskState state, const std::string& why);

  // ---- The executor of each task: the real executor core (src/executor/core) ----------------
  void StartExecutor(Task& t);
  void KillExecutor(Task& t);
  void ToExecutor(const std::string& task_id, const exec::Event& event);
  void ToExecutorAfter(const std::string& task_id, Millis d, std::function<exec::Event()> make);
  void ExecutorAction(const std::string& task_id, const exec::Action& action);
  void StartEtcd(const std::string& task_id, uint64_t incarnation, bool force_new_cluster);
  void EtcdExits(const std::string& task_id, uint64_t incarnation, const std::string& how);
  std::optional<exec::ProbeFacts> LocalProbe(const Process& p) const;
  bool Listed(const Process& p) const;
  void ForceNewCluster(Process& p);
  void RaftStep();
  void TickCore();
  int RunningVoters(const Cluster& c, uint64_t except = 0) const;
  bool HasQuorum(const Cluster& c) const;
  Result<core::MemberProbe> Probe(const std::string& url);
  Result<core::ClusterView> ProbeCluster(const std::vector<std::string>& urls);
  void ChangeMembership(uint64_t epoch, const core::ChangeMembership& change);
  Status MoveLeader(Cluster& c, const Process& via, uint64_t target);
  void Reseed(uint64_t epoch, const core::TriggerReseed& reseed);
  Cluster& NewCluster(std::string key);

  // ---- Faults and phases ------------------------------------------------------------------
  void NextFault();
  bool Faulty() const { return !calm_ && options_.faults; }  // faults may happen now
  void InjectFault();
  void InjectStoreFault();
  void StartCalm();
  bool Healed() const;
  void CheckWorld();
  int Survivors() const;

  SimOptions options_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  core::CoreConfig config_;
  Time start_ = Time() + 1000s;
  Time now_ = start_;
  std::priority_queue<Scheduled, std::vector<Scheduled>, std::greater<>> queue_;
  uint64_t next_seq_ = 0;
  RunResult result_;
  std::deque<std::string> tail_;
  std::map<std::string, uint64_t> coverage_;

  std::vector<Agent> agents_;
  std::set<std::string> retired_agent_ids_;
  std::map<std::string, Task> tasks_;
  std::vector<Process> processes_;
  std::map<uint64_t, Cluster> clusters_;
  uint64_t next_cluster_ = 1;
  uint64_t next_member_id_ = 0;
  uint64_t latest_reseed_uid_ = 0;
  std::map<std::string, int> offers_;  // outstanding offer id -> agent
  uint64_t next_offer_ = 1;
  Time stream_free_at_;  // the master's stream to the scheduler is busy until then

  // The master's view of the framework.
  bool connected_ = false;
  bool suppressed_ = false;
  uint64_t session_ = 0;
  int subscriber_ = -1;  // the instance subscribed now
  std::optional<std::string> framework_id_;
  int frameworks_registered_ = 0;

  // The scheduler processes.
  std::vector<Instance> instances_;
  bool ha_ = false;
  bool resizes_ = false;
  bool rollouts_ = false;
  int launch_configs_ = 1;  // launch configurations the operator has deployed
  // --tls=files: the operator's CAs are ca-0, ca-1, ...; the files as the cores recorded them,
  // by change (what a member launched with "+filesN" holds), for the ca-trust-broken check.
  bool ca_files_ = false;
  uint64_t cas_made_ = 1;
  std::map<uint64_t, core::CaFiles> files_by_change_;
  std::optional<Time> rollout_resumed_;
  std::optional<Time> ca_moved_on_;  // the operator last moved a CA rotation on in the calm
  bool corruption_ = false;          // this seed's chaos may corrupt a member's data
  // Durable members (CoreConfig::role "etcd"): reservations and volumes are modelled.
  bool durable_ = false;
  // The generation of the core when it asked for each launch (by task id), for
  // stale-generation-restart: the launch may be made after the core has moved on.
  std::map<std::string, uint64_t> launch_generation_;
  // The target size of the core when it asked for each removal (by member name), which the
  // removal is judged against (removal-below-target-quorum).
  std::map<std::string, int> removal_target_;
  int volume_survivors_at_calm_ = 0;     // data only on volumes a correct core may have given up
  std::optional<Time> leak_wait_since_;  // healed, but a reservation is not yet released
  int largest_target_ = 0;  // the largest size asked in this run (voters above it are too many)
  uint64_t next_epoch_ = 0;
  uint64_t next_node_ = 0;
  uint64_t acted_term_ = 0;  // the latest leader's term that acted (HA)
  // Nodes of processes killed while their sessions live on, until ZooKeeper expires them.
  struct Lingering {
    int instance;
    uint64_t node;
    Time heard;
  };
  std::vector<Lingering> lingering_;
  int acted_by_ = -1;

  // The store and its faults. Each state write's data names the state it encodes.
  StoreModel store_;
  std::map<std::string, core::PersistentState> encoded_;
  uint64_t next_encoding_ = 0;
  uint64_t next_store_op_ = 0;
  std::map<uint64_t, int> store_ops_in_flight_;  // requests sent and not yet there -> instance
  std::set<uint64_t> store_ops_dropped_;         // of those, the ones a scheduler crash lost
  Time store_down_since_;                        // the latest loss of connection or session began
  Time store_down_until_;                        // and lasts until then
  Time store_slow_until_;
  uint64_t admin_requests_ = 0;
  uint64_t reseed_requests_ = 0;
  struct ReseedAsked {
    std::string name;
    uint64_t epoch;  // the scheduler run that asked, which hears the answer
  };
  std::map<uint64_t, ReseedAsked> reseeds_asked_;  // executor reseed request
  std::optional<Time> operator_asked_;
  // The instance whose core holds an operator's reseed waiting for its backup (-1: none); it is
  // dropped with that core only (a deposed leader's loss says nothing of its successor's).
  int manual_reseed_pending_ = -1;

  bool calm_ = false;
  bool done_ = false;
  int survivors_at_calm_ = -1;
  bool launched_in_calm_ = false;
  bool bootstrapped_again_ = false;  // the core started a generation that never ran etcd again
};

World::World(const SimOptions& options, uint64_t seed)
    : options_(options), seed_(seed), rng_(seed) {
  config_.framework_name = "etcd-sim";
  config_.cluster_size = options_.cluster_size;
  config_.auto_reseed = Chance(0.8);
  config_.reseed_timeout = Millis(Uniform(30, 90) * 1000);
  config_.reconcile_interval = 120s;
  config_.reconcile_timeout = 30s;
  config_.staging_timeout = 60s;
  config_.learner_timeout = 60s;
  config_.task_cpus = 1;
  config_.task_mem = 256;
  config_.task_disk = 256;
  // Backups in some seeds (chosen without the random stream, so that the other seeds, and the
  // pinned ones, replay as before): a snapshot before each reseed and risky removal.
  config_.backups = seed_ % 10 == 2 || seed_ % 10 == 3 || seed_ % 10 == 5 || seed_ % 10 == 9;
  config_.backup_interval = 300s;
  config_.backup_timeout = 30s;
  config_.tls = true;  // the default; rotations of the members' CA need it
  config_.launch_config = "sim-launch-1";
  config_.launch_summary = "etcd 3.4.23 (sim launch configuration 1)";
  config_.etcd_version = "3.4.23";
  next_member_id_ = (rng_() & 0x7fff'ffff'0000'0000ull) | 0x1000;
  int schedulers = options_.schedulers > 0 ? options_.schedulers : SchedulersForSeed(seed_);
  ha_ = schedulers > 1;
  resizes_ = ResizesInSeed(seed_);
  rollouts_ = RolloutsInSeed(seed_);
  corruption_ = CorruptionInSeed(seed_);
  ca_files_ = CaFilesInSeed(seed_);
  DurableChoice durable = DurableForSeed(seed_);
  durable_ = options_.durable.value_or(durable.durable);
  if (durable_) {
    config_.role = "etcd";
    config_.replace_after = durable.replace_after;
  }
  if (ca_files_) config_.ca_files = core::CaFiles{"ca-0", {"ca-0"}, 0};
  config_.hash_check_interval = 60s;
  largest_target_ = options_.cluster_size;
  for (int i = 0; i < schedulers; ++i) {
    instances_.emplace_back();
    instances_.back().id = i;
    instances_.back().zk_heard = start_;
  }
  for (int i = 0; i < options_.agents; ++i) {
    Agent a;
    a.id = fmt::format("S{}", i);
    a.ip = fmt::format("10.0.0.{}", i + 1);
    for (uint16_t p = kPortBegin; p <= kPortEnd; ++p) a.ports.insert(p);
    a.filtered_until = start_;
    agents_.push_back(std::move(a));
  }
  result_.seed = seed;
}

void World::Hash(uint64_t v) {
  // FNV-1a over the bytes of v.
  for (int i = 0; i < 8; ++i) {
    result_.trace_hash ^= (v >> (8 * i)) & 0xff;
    result_.trace_hash *= 0x100000001b3ull;
  }
}

void World::Trace(std::string line) {
  line = fmt::format("{:>9}ms {}", SinceStart(), line);
  for (char c : line) {
    result_.trace_hash ^= static_cast<unsigned char>(c);
    result_.trace_hash *= 0x100000001b3ull;
  }
  if (options_.keep_trace) result_.trace.push_back(line);
  tail_.push_back(std::move(line));
  while (tail_.size() > kTailLines) tail_.pop_front();
}

std::string CoreSummary(const core::SchedulerCore& c) {
  std::string s = fmt::format(
      "core: connected={} reconciling={} healthy={} livelocked={} "
      "reseeding={} total_loss={} generation={} bootstrapped={};",
      c.connected(), c.reconciling(), c.healthy(), c.livelocked(), c.reseeding(), c.total_loss(),
      c.state().generation, c.state().bootstrapped);
  for (const auto& [name, m] : c.state().members) {
    s += fmt::format(" {}[{}{}{} id={:x} index={}]", name, mesos::TaskState_Name(m.task_state),
                     m.learner ? " learner" : "", m.reachable ? " reachable" : "", m.member_id,
                     m.raft_index);
  }
  return s;
}

void World::Fail(Violation v) {
  if (done_ && !result_.ok) return;
  if (const core::SchedulerCore* c = ActingCore()) Trace(CoreSummary(*c));
  Trace("VIOLATION " + v.invariant + ": " + v.detail);
  result_.ok = false;
  result_.violation = std::move(v);
  done_ = true;
}

// ---- The scheduler ------------------------------------------------------------------------

void World::StartScheduler(Instance& s) {
  s.epoch = ++next_epoch_;
  s.leading = true;
  s.pipeline = std::make_unique<core::ActionPipeline>();
  s.writer = core::StateWriter();
  Trace(fmt::format("scheduler {}starts (epoch {}) and reads its state",
                    ha_ ? fmt::format("{} ", s.id) : "", s.epoch));
  LoadState(s.epoch, 0);
}

// As the shell's LoadState: read the state node; absent means a first start; any other failure
// is retried with a growing delay. Only then does the core start and the master hear from us.
void World::LoadState(uint64_t epoch, int attempt) {
  Instance* runs = ByEpoch(epoch);
  if (runs == nullptr) return;
  StoreCall(
      *runs, [this] { return store_.Get(kStatePath); },
      [this, epoch, attempt](Result<store::Record> r) {
        Instance* s = ByEpoch(epoch);
        if (s == nullptr) return;
        core::PersistentState state;
        if (r.ok()) {
          state = encoded_.at(r->data);
          s->writer.Loaded(r->version);
        } else if (r.error().code != ErrorCode::kNotFound) {
          Hit("shell.load_retried");
          Millis delay = core::StateWriter::LoadRetryDelay(attempt);
          After(delay, [this, epoch, attempt] {
            if (ByEpoch(epoch)) LoadState(epoch, attempt + 1);
          });
          return;
        }
        if (state.reseed_token.empty()) state.reseed_token = fmt::format("token-{}", seed_);
        // As the shell's OnLoaded: CA files the members could not all trust stop the process;
        // the operator starts it again with the files the members run.
        if (auto why = core::CaFilesChangeRefused(state, config_.ca_files)) {
          Hit("shell.ca_files_refused");
          Trace("scheduler refuses the CA files: " + *why);
          config_.ca_files = core::CaFiles{state.ca_files.issuer, state.ca_files.trusted, 0};
          CrashScheduler(*s, /*graceful=*/true, "stops, refusing the CA files");
          return;
        }
        s->core = std::make_unique<core::SchedulerCore>(config_);
        Deliver(*s, core::Started{state, now_});
        if (s->core && !s->core->state().ca_files.issuer.empty()) {
          const core::CaFiles& files = s->core->state().ca_files;
          files_by_change_[files.changes] = files;
        }
        After(Ms(100, 2000), [this, epoch] { Subscribe(epoch); });
      });
}

void World::CrashScheduler(Instance& s, bool graceful, const std::string& why) {
  Hit("fault.scheduler_crash");
  Trace(ha_ ? fmt::format("FAULT scheduler {} {}", s.id, why) : "FAULT scheduler crashes");
  bool acted = s.core != nullptr;
  s.core.reset();
  s.epoch = ++next_epoch_;
  s.pipeline.reset();
  s.up = false;
  s.leading = false;
  if (graceful && s.node != 0) {
    // Its session closes with it: the node goes at once, and the next in line leads.
    Trace(fmt::format("ZooKeeper: scheduler {} withdrew; node {} is gone", s.id, s.node));
  } else if (s.node != 0) {
    // Killed: its session, and with it its node, lives on until ZooKeeper expires it.
    lingering_.push_back({s.id, s.node, s.zk_heard});
  }
  s.node = 0;
  // Requests on their way to the store either got there before the process died or not.
  for (const auto& [op, owner] : store_ops_in_flight_) {
    if (owner != s.id) continue;
    if (Chance(0.5)) {
      store_ops_dropped_.insert(op);
      Hit("store.request_lost_in_crash");
    } else {
      Hit("store.request_landed_after_crash");
    }
  }
  s.livelocked_since.reset();
  if ((!ha_ || acted) && manual_reseed_pending_ == s.id) manual_reseed_pending_ = -1;
  if (!ha_ || subscriber_ == s.id) DropSession();
  RestartLater(s.id, Ms(500, 10'000));
}

void World::RestartLater(int id, Millis after) {
  After(after, [this, id] {
    Instance& s = instances_[id];
    if (s.up) return;
    s.up = true;
    if (!ha_) return StartScheduler(s);
    Trace(fmt::format("scheduler {} starts again and contends for the leadership", id));
  });
}

void World::Subscribe(uint64_t epoch) {
  Instance* s = ByEpoch(epoch);
  if (s == nullptr || !s->core || (connected_ && subscriber_ == s->id)) return;
  if (s->mesos_cut) {
    // The client cannot reach the master: it tries again.
    After(Ms(500, 2000), [this, epoch] { Subscribe(epoch); });
    return;
  }
  std::optional<std::string> asked = s->core->state().framework_id;
  if (connected_) {
    // Another instance is subscribed. A SUBSCRIBE with the framework's id fails it over at the
    // master: the old one gets an error event, on which the shell exits. (Without an id on
    // record, the old leader never launched a task: write-ahead puts the id on record first.)
    Instance& old = instances_[subscriber_];
    Hit("mesos.framework_failed_over");
    Trace(fmt::format("master: the framework fails over from scheduler {} to scheduler {}", old.id,
                      s->id));
    DropSession();
    CrashScheduler(old, !old.zk_cut, "exits: its framework failed over to another instance");
  }
  if (!asked) {
    // Mesos registers a new framework when the subscription carries no id.
    framework_id_ = fmt::format("sim-framework-{}", ++frameworks_registered_);
    if (frameworks_registered_ > 1) Hit("mesos.framework_registered_again");
  } else {
    framework_id_ = asked;
  }
  connected_ = true;
  suppressed_ = false;
  ++session_;
  subscriber_ = s->id;
  Deliver(*s, core::Subscribed{*framework_id_, now_});
}

void World::DropSession() {
  connected_ = false;
  subscriber_ = -1;
  ++session_;
  for (auto& [id, agent] : offers_) agents_[agent].offer.reset();
  offers_.clear();  // offers die with the subscription
}

std::string Describe(const core::Event& event) {
  return std::visit(
      [](const auto& e) -> std::string {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, core::Started>) {
          return fmt::format("core <- Started generation {} with {} members", e.state.generation,
                             e.state.members.size());
        } else if constexpr (std::is_same_v<E, core::Subscribed>) {
          return "core <- Subscribed " + e.framework_id;
        } else if constexpr (std::is_same_v<E, core::Disconnected>) {
          return "core <- Disconnected: " + e.reason;
        } else if constexpr (std::is_same_v<E, core::OfferRescinded>) {
          return "core <- Rescinded " + e.offer_id;
        } else if constexpr (std::is_same_v<E, core::TaskUpdate>) {
          return fmt::format("core <- TaskUpdate '{}' {}{}", e.status.task_id().value(),
                             mesos::TaskState_Name(e.status.state()),
                             e.status.has_message() ? " (" + e.status.message() + ")" : "");
        } else if constexpr (std::is_same_v<E, core::MembershipResult>) {
          return fmt::format("core <- MembershipResult {} {} {:x}: {}", OpName(e.op), e.name,
                             e.member_id,
                             e.status.ok() ? std::string("ok") : e.status.error().ToString());
        } else if constexpr (std::is_same_v<E, core::ReseedResult>) {
          return fmt::format("core <- ReseedResult {}: {}", e.name,
                             e.raft_index.ok() ? fmt::format("index {}", *e.raft_index)
                                               : e.raft_index.error().ToString());
        } else if constexpr (std::is_same_v<E, core::AdminReseed>) {
          return fmt::format("core <- AdminReseed #{} force={}", e.request, e.force);
        } else if constexpr (std::is_same_v<E, core::AdminStartFresh>) {
          return fmt::format("core <- AdminStartFresh #{}", e.request);
        } else {
          return "";  // ticks, probes and store answers: too many to keep in the tail
        }
      },
      event);
}

std::string Describe(const core::Action& action) {
  return std::visit(
      [](const auto& a) -> std::string {
        using A = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<A, core::LaunchMember>) {
          return fmt::format("core -> Launch '{}' on {} ({}, {}){}", a.member.task_id, a.offer_id,
                             a.new_cluster ? "new" : "existing", a.initial_cluster,
                             a.member.volume.empty() ? ""
                             : a.reserve             ? " reserving volume " + a.member.volume
                                                     : " on volume " + a.member.volume);
        } else if constexpr (std::is_same_v<A, core::KillTask>) {
          return fmt::format("core -> Kill '{}': {}", a.task_id, a.why);
        } else if constexpr (std::is_same_v<A, core::ReconcileTasks>) {
          return fmt::format("core -> Reconcile {} tasks", a.tasks.size());
        } else if constexpr (std::is_same_v<A, core::Revive>) {
          return "core -> Revive";
        } else if constexpr (std::is_same_v<A, core::Suppress>) {
          return "core -> Suppress";
        } else if constexpr (std::is_same_v<A, core::ChangeMembership>) {
          return fmt::format("core -> ChangeMembership {} {} {:x}", OpName(a.op), a.name,
                             a.member_id);
        } else if constexpr (std::is_same_v<A, core::TriggerReseed>) {
          return "core -> TriggerReseed " + a.name;
        } else if constexpr (std::is_same_v<A, core::Persist>) {
          return fmt::format("core -> Persist generation {} members {} next {}", a.state.generation,
                             a.state.members.size(), a.state.next_member);
        } else if constexpr (std::is_same_v<A, core::AnswerAdmin>) {
          return fmt::format("core -> AnswerAdmin #{} {} {}", a.request, a.http_status, a.message);
        } else if constexpr (std::is_same_v<A, core::ReleaseResources>) {
          return fmt::format("core -> Release {} volume(s), {} reservation(s) on {}: {}",
                             a.destroy.size(), a.unreserve.size(), a.agent_id, a.why);
        } else if constexpr (std::is_same_v<A, core::Note>) {
          return a.level == "info" ? "" : "core note " + a.level + ": " + a.message;
        } else {
          return "";  // declines and probes
        }
      },
      action);
}

void World::Deliver(Instance& s, const core::Event& event) {
  if (!s.core || done_) return;
  Hash(event.index());
  std::string line = Describe(event);
  if (!line.empty()) Trace(ha_ ? fmt::format("[{}] {}", s.id, line) : std::move(line));
  bool was_reseeding = s.core->reseeding();
  uint64_t generation_before = s.core->state().generation;
  AdminFacts admin;
  admin.connected = s.core->connected();
  admin.reconciling = s.core->reconciling();
  admin.reseeding = s.core->reseeding();
  admin.total_loss = s.core->total_loss();
  admin.healthy = s.core->healthy();
  core::Actions out = s.core->Handle(event);
  if (options_.tamper) options_.tamper(*s.core, out);
  CheckBatch(s, event, out, was_reseeding, admin);
  if (auto v = CheckBootstrapAgain(out, generation_before)) return Fail(*v);
  for (auto& a : out) {
    if (const auto* launch = std::get_if<core::LaunchMember>(&a)) {
      launch_generation_[launch->member.task_id] = s.core->state().generation;
    }
    if (const auto* change = std::get_if<core::ChangeMembership>(&a);
        change && change->op == core::MembershipOp::kRemove) {
      removal_target_[change->name] = s.core->TargetSize();
    }
    if (const auto* note = std::get_if<core::Note>(&a);
        note &&
        note->message.find("not restarted in place on its volume within") != std::string::npos) {
      Hit("durable.replaced_after_replace_after");
    }
    Hash(a.index());
    std::string what = Describe(a);
    if (!what.empty()) Trace(ha_ ? fmt::format("[{}] {}", s.id, what) : std::move(what));
  }
  s.pipeline->Add(std::move(out));
  if (s.core->livelocked()) {
    if (!s.livelocked_since) s.livelocked_since = now_;
  } else {
    s.livelocked_since.reset();
  }
  RunActions(s);
}

// The core starts a generation again, unasked, only when none of its members ran etcd: a
// cluster of that generation that ever had a leader may have taken writes, and starting again
// would throw them away (that is a total loss, for the operator to decide).
std::optional<Violation> World::CheckBootstrapAgain(const core::Actions& out,
                                                    uint64_t generation_before) {
  bool again = std::any_of(out.begin(), out.end(), [](const core::Action& a) {
    const auto* n = std::get_if<core::Note>(&a);
    return n != nullptr && n->message.find("failed before etcd ever ran") != std::string::npos;
  });
  if (!again) return std::nullopt;
  Hit("core.bootstrap_again");
  bootstrapped_again_ = true;
  std::string token = fmt::format("{}-{}|", config_.framework_name, generation_before);
  for (const auto& [uid, c] : clusters_) {
    if (c.key.starts_with(token) && c.ever_led) {
      return Violation{"bootstrap-again-after-data",
                       fmt::format("generation {} was started again although its cluster had a "
                                   "leader (clients may have written to it)",
                                   generation_before)};
    }
  }
  return std::nullopt;
}

void World::CheckBatch(Instance& s, const core::Event& event, const core::Actions& out,
                       bool was_reseeding, const AdminFacts& before) {
  if (const auto* admin = std::get_if<core::AdminReseed>(&event)) {
    AdminFacts f = before;
    f.force = admin->force;
    for (const auto& a : out) {
      if (const auto* answer = std::get_if<core::AnswerAdmin>(&a)) {
        if (answer->request != admin->request) continue;
        ++f.answers;
        f.answer = answer->http_status;
      }
      if (std::holds_alternative<core::TriggerReseed>(a)) f.triggered = true;
    }
    if (f.answer == 202 && s.core->reseed_waiting_for_backup()) {
      // Accepted: the reseed begins once its backup is written (or has timed out).
      f.triggered = true;
      manual_reseed_pending_ = s.id;
    }
    Hit(fmt::format("admin.reseed_answer_{}", f.answer));
    if (auto v = CheckAdminReseed(f)) return Fail(*v);
  }
  if (std::holds_alternative<core::Subscribed>(event) && s.core->state().reseed) {
    // A restarted scheduler finishing the reseed its predecessor started (and had written
    // down): it asks only a survivor that was a candidate then.
    for (const auto& a : out) {
      const auto* t = std::get_if<core::TriggerReseed>(&a);
      if (t == nullptr) continue;
      Hit("core.reseed_resumed");
      const auto& candidates = s.core->state().reseed->candidates;
      if (std::find(candidates.begin(), candidates.end(), t->name) == candidates.end()) {
        return Fail({"reseed-resumed-elsewhere",
                     "a restarted scheduler asked " + t->name +
                         " to stand alone, which was no candidate of the reseed on record"});
      }
    }
    return;
  }
  if (was_reseeding) return;
  const core::TriggerReseed* trigger = nullptr;
  for (const auto& a : out) {
    if (const auto* t = std::get_if<core::TriggerReseed>(&a)) {
      trigger = t;
      break;
    }
  }
  if (trigger == nullptr) return;
  if (s.core->corrupt_members().count(trigger->name)) {
    return Fail({"corrupt-reseed-survivor",
                 trigger->name + ", which a hash check found corrupt, was asked to stand alone"});
  }
  ReseedFacts f;
  f.chosen = trigger->name;
  f.manual = std::holds_alternative<core::AdminReseed>(event) || manual_reseed_pending_ == s.id;
  manual_reseed_pending_ = -1;
  f.auto_reseed = config_.auto_reseed;
  f.reseed_timeout = config_.reseed_timeout;
  f.livelocked_for = s.livelocked_since ? Millis((now_ - *s.livelocked_since) / 1ms) : Millis(0);
  Hit(f.manual ? "core.reseed_manual" : "core.reseed_automatic");
  // Indexes are only comparable when frozen: no survivor's cluster has a leader, so no index
  // moves between the probes the core saw and now.
  bool frozen = true;
  std::map<std::string, uint64_t> indexes;
  for (const auto& [name, m] : s.core->state().members) {
    if (!m.reachable) continue;
    auto t = tasks_.find(m.task_id);
    if (t == tasks_.end() || t->second.process < 0) continue;
    const Process& p = processes_[t->second.process];
    if (!p.alive || !Connected(p)) continue;
    if (clusters_.count(p.cluster) && clusters_.at(p.cluster).leader != 0) frozen = false;
    indexes[name] = p.index;
  }
  if (frozen) f.frozen_indexes = indexes;
  if (auto v = CheckReseedTrigger(f)) Fail(*v);
}

void World::RunActions(Instance& s) {
  while (!done_ && s.core && s.pipeline) {
    core::ActionPipeline::Stats before = s.pipeline->stats();
    std::optional<core::Effect> effect = s.pipeline->Next();
    const core::ActionPipeline::Stats& after = s.pipeline->stats();
    if (after.writes_coalesced > before.writes_coalesced) Hit("shell.persist_coalesced");
    if (after.launches_skipped > before.launches_skipped) {
      Hit("shell.launch_skipped_write_failed");
      Trace("shell: a launch is not made: the state write before it failed");
    }
    if (!effect) return;
    Execute(s, std::move(*effect));
  }
}

// With several instances, the leaders' terms only grow: once a leader elected later has acted,
// an earlier one acting again means two leaders at once.
void World::CheckOneLeaderActs(const Instance& s, const std::string& what) {
  if (!ha_) return;
  if (s.term < acted_term_) {
    return Fail({"overlapping-leaders",
                 fmt::format("scheduler {} (elected with node {}) {} after scheduler {} (elected "
                             "with node {}) had acted",
                             s.id, s.term, what, acted_by_, acted_term_)});
  }
  if (s.term > acted_term_ && acted_by_ >= 0) Hit("election.new_leader_acts");
  acted_term_ = s.term;
  acted_by_ = s.id;
}

void World::Execute(Instance& s, core::Effect effect) {
  std::visit(Overloaded{
                 [&](core::Action& a) { Execute(s, a); },
                 [&](core::WriteState& w) {
                   CheckOneLeaderActs(s, "writes the state");
                   Persist(s, w.state);
                 },
                 [&](core::FollowUp& f) {
                   ToCore(s.epoch, Millis(0), [event = std::move(f.event)] { return event; });
                 },
             },
             effect);
}

// ---- The election (HA) -------------------------------------------------------------------

// ZooKeeper's side (sessions live while it hears from their process; a node goes with its
// session) and each process's side (it learns where it stands whenever it reaches ZooKeeper; a
// leader that has not heard from it for two thirds of the timeout holds, as the shell does).
void World::ElectionStep() {
  After(kElectionStep, [this] { ElectionStep(); });
  for (auto& s : instances_) {
    if (!s.up) continue;
    if (s.zk_cut) {
      if (s.leading && s.pipeline && !s.pipeline->suspended() &&
          now_ - s.zk_heard >= kSessionTimeout * 2 / 3 && !options_.leader_ignores_lost_zookeeper) {
        Hit("election.leader_suspended");
        Trace(
            fmt::format("scheduler {} lost ZooKeeper while leading: it holds every action", s.id));
        s.pipeline->Suspend();
      }
      continue;
    }
    if (s.leading && s.node != s.term) {
      LosesLeadership(s, "its ZooKeeper session expired");
    }
    s.zk_heard = now_;
    if (s.node == 0) {
      s.node = ++next_node_;
      Trace(fmt::format("scheduler {} joins the election as node {}", s.id, s.node));
    }
    if (s.leading && s.pipeline && s.pipeline->suspended()) {
      Hit("election.leader_resumed");
      Trace(fmt::format("scheduler {} hears ZooKeeper again within its session: it still leads",
                        s.id));
      s.pipeline->Resume();
      RunActions(s);
      if (done_) return;
    }
  }
  for (auto& s : instances_) {
    if (s.node != 0 && now_ - s.zk_heard > kSessionTimeout) {
      Hit("election.session_expired");
      Trace(fmt::format("ZooKeeper: the session of scheduler {} expired; node {} is gone", s.id,
                        s.node));
      s.node = 0;
    }
  }
  std::erase_if(lingering_, [this](const Lingering& l) {
    if (now_ - l.heard <= kSessionTimeout) return false;
    Hit("election.killed_session_expired");
    Trace(fmt::format("ZooKeeper: the session of killed scheduler {} expired; node {} is gone",
                      l.instance, l.node));
    return true;
  });
  Instance* lowest = nullptr;
  for (auto& s : instances_) {
    if (s.node != 0 && (lowest == nullptr || s.node < lowest->node)) lowest = &s;
  }
  // A killed leader's node still first in line: nobody leads until its session expires.
  for (const auto& l : lingering_) {
    if (lowest != nullptr && l.node < lowest->node) return;
  }
  if (lowest == nullptr || !lowest->up || lowest->zk_cut || lowest->leading) return;
  lowest->term = lowest->node;
  Hit(acted_by_ >= 0 ? "election.failover" : "election.first_leader");
  Trace(fmt::format("scheduler {} is elected (node {})", lowest->id, lowest->node));
  StartScheduler(*lowest);
}

// As the shell told of its session's expiry: it stops (its Mesos connection with it) and a new
// shell in the same process contends again.
void World::LosesLeadership(Instance& s, const std::string& why) {
  Hit("election.leadership_lost");
  Trace(
      fmt::format("scheduler {} lost the leadership ({}): it stops and contends again", s.id, why));
  bool acted = s.core != nullptr;
  s.core.reset();
  s.pipeline.reset();
  s.leading = false;
  s.epoch = ++next_epoch_;
  s.livelocked_since.reset();
  if (acted && manual_reseed_pending_ == s.id) manual_reseed_pending_ = -1;
  if (subscriber_ == s.id) DropSession();
}

void World::InjectInstanceFault() {
  int i = static_cast<int>(Uniform(0, static_cast<int64_t>(instances_.size()) - 1));
  Instance& s = instances_[i];
  if (!s.up) return;
  switch (Uniform(0, 4)) {
    case 0:
      Hit("fault.scheduler_killed");
      return CrashScheduler(s, false, s.leading ? "(the leader) is killed" : "is killed");
    case 1:
      Hit("fault.scheduler_stopped");
      return CrashScheduler(s, true, s.leading ? "(the leader) stops" : "stops");
    case 2: {
      if (s.zk_cut) return;
      Hit(s.leading ? "fault.leader_cut_from_zookeeper" : "fault.standby_cut_from_zookeeper");
      Millis d = Ms(1'000, 40'000);
      Trace(fmt::format("FAULT scheduler {} is cut off from ZooKeeper for {} ms", i, d.count()));
      s.zk_cut = true;
      After(d, [this, i] { instances_[i].zk_cut = false; });
      return;
    }
    case 3: {  // its host loses its route to both ZooKeeper and the master (etcd still answers)
      if (s.zk_cut || s.mesos_cut) return;
      Hit(s.leading ? "fault.leader_cut_from_both" : "fault.standby_cut_from_both");
      Millis d = Ms(1'000, 40'000);
      Trace(fmt::format("FAULT scheduler {} is cut off from ZooKeeper and the master for {} ms", i,
                        d.count()));
      s.zk_cut = true;
      CutFromMesos(s, d);
      After(d, [this, i] { instances_[i].zk_cut = false; });
      return;
    }
    default: {
      if (s.mesos_cut) return;
      Hit("fault.scheduler_cut_from_mesos");
      Millis d = Ms(1'000, 30'000);
      Trace(fmt::format("FAULT scheduler {} is cut off from the master for {} ms", i, d.count()));
      CutFromMesos(s, d);
      return;
    }
  }
}

void World::CutFromMesos(Instance& s, Millis d) {
  int i = s.id;
  s.mesos_cut = true;
  if (subscriber_ == i && s.core) {
    DropSession();
    Deliver(s, core::Disconnected{"connection to the master lost", now_});
  }
  After(d, [this, i] {
    Instance& s = instances_[i];
    s.mesos_cut = false;
    if (s.core) Subscribe(s.epoch);
  });
}

// ---- The store ----------------------------------------------------------------------------

void World::StoreCall(Instance& s, std::function<Result<store::Record>()> apply,
                      StoreAnswer answer) {
  uint64_t epoch = s.epoch;
  int id = s.id;
  auto reply = [this, epoch, answer](Millis after, Result<store::Record> r,
                                     std::optional<Time> applied_at = std::nullopt) {
    After(after, [this, epoch, answer, r, applied_at] {
      Instance* s = ByEpoch(epoch);
      if (s == nullptr) return;
      if ((applied_at && store_down_since_ > *applied_at) || s->zk_cut) {
        // The connection broke while the answer travelled: the client cannot know the outcome.
        Hit(r.ok() ? "store.answer_lost_applied" : "store.answer_lost");
        return answer(Error{ErrorCode::kUnavailable, "store: connection loss, outcome unknown"});
      }
      answer(r);
    });
  };
  if (StoreDownFor(s)) {
    // No connection: the client waits its bounded time for one, then says "retry later".
    Hit("store.op_without_connection");
    return reply(Ms(200, 2000), Error{ErrorCode::kUnavailable, "store: connection loss"});
  }
  uint64_t op = ++next_store_op_;
  store_ops_in_flight_[op] = id;
  After(StoreLatency(), [this, op, id, apply, reply] {
    store_ops_in_flight_.erase(op);
    if (store_ops_dropped_.erase(op)) return;  // the scheduler died before sending it
    if (StoreDown() || instances_[id].zk_cut) {
      Hit("store.request_lost");
      return reply(Ms(1, 500), Error{ErrorCode::kUnavailable, "store: connection loss"});
    }
    Result<store::Record> r = apply();
    if (done_) return;
    Time applied_at = now_;
    if (Faulty() && Chance(0.01)) {
      // The connection breaks just after the store applied the request.
      Hit("fault.store_connection_loss_mid_op");
      store_down_since_ = now_ + Millis(1);
      store_down_until_ = std::max(store_down_until_, now_ + Ms(100, 2'000));
    }
    reply(StoreLatency(), r, applied_at);
  });
}

std::optional<core::PersistentState> World::StoredState() const {
  auto r = store_.Get(kStatePath);
  if (!r.ok()) return std::nullopt;
  return encoded_.at(r->data);
}

bool World::NodeAlive(uint64_t node) const {
  for (const auto& s : instances_) {
    if (s.node == node) return true;
  }
  return std::any_of(lingering_.begin(), lingering_.end(),
                     [node](const Lingering& l) { return l.node == node; });
}

Result<store::Record> World::ApplyStateWrite(bool create, std::string data, int64_t version,
                                             uint64_t fence) {
  if (fence != 0 && !NodeAlive(fence)) {
    Hit("store.write_fenced");
    return store::FenceGone(fmt::format("/etcd-sim/leader/{}", fence), kStatePath);
  }
  std::optional<core::PersistentState> before = StoredState();
  Result<store::Record> r =
      create ? store_.Create(kStatePath, data) : store_.Set(kStatePath, data, version);
  if (!r.ok()) {
    Hit("store.write_" + std::string(ErrorCodeName(r.error().code)));
    return r;
  }
  Hit("store.write_applied");
  if (auto v = CheckStoreWrite(before, encoded_.at(data))) Fail(*v);
  return r;
}

void World::Persist(Instance& s, const core::PersistentState& state) {
  uint64_t epoch = s.epoch;
  if (Faulty() && Chance(0.02)) {
    // The scheduler dies with its write on the way (which then lands or not; CrashScheduler).
    Hit("fault.scheduler_crash_mid_write");
    After(Ms(0, 30), [this, epoch] {
      Instance* s = ByEpoch(epoch);
      if (s != nullptr && s->core) CrashScheduler(*s, false, "crashes with its write on the way");
    });
  }
  std::string data = fmt::format("state#{}", ++next_encoding_);
  encoded_[data] = state;
  WriteStep(epoch, data, s.writer.Begin(data), [this, epoch](Status st) {
    Instance* s = ByEpoch(epoch);
    if (s == nullptr || !s->pipeline) return;
    if (!st.ok() && st.error().code == ErrorCode::kRefused && ha_) {
      // As the shell: a fenced write means our election node is gone; another leads.
      return LosesLeadership(*s, "its state write was fenced: its election node is gone");
    }
    if (!st.ok() && st.error().code == ErrorCode::kConflict) {
      // As the shell: someone else wrote the state; the scheduler stops and is started again.
      Hit("shell.stopped_on_foreign_write");
      Trace("shell: " + st.error().message);
      return CrashScheduler(*s, false, "stops: someone else wrote the state");
    }
    if (!st.ok()) Hit("shell.persist_failed");
    Deliver(*s, s->pipeline->StateWritten(std::move(st), now_));
    RunActions(*s);
  });
}

// One step of the shell's StateWriter against the store model; the answer goes back to it.
void World::WriteStep(uint64_t epoch, const std::string& data, core::StateWriter::Step step,
                      std::function<void(Status)> done) {
  Instance* s = ByEpoch(epoch);
  if (s == nullptr) return;
  auto version = [](const Result<store::Record>& r) -> Result<int64_t> {
    if (!r.ok()) return r.error();
    return r->version;
  };
  auto written = [this, epoch, data, done, version](Result<store::Record> r) {
    if (Instance* s = ByEpoch(epoch)) WriteStep(epoch, data, s->writer.Written(version(r)), done);
  };
  std::visit(Overloaded{
                 [&](core::StateWriter::Create&) {
                   StoreCall(
                       *s, [this, data, f = s->term] { return ApplyStateWrite(true, data, -1, f); },
                       written);
                 },
                 [&](core::StateWriter::Set& set) {
                   StoreCall(
                       *s,
                       [this, data, v = set.version, f = s->term] {
                         return ApplyStateWrite(false, data, v, f);
                       },
                       written);
                 },
                 [&](core::StateWriter::Reread&) {
                   Hit("shell.write_conflict_reread");
                   StoreCall(
                       *s, [this] { return store_.Get(kStatePath); },
                       [this, epoch, data, done](Result<store::Record> cur) {
                         Instance* s = ByEpoch(epoch);
                         if (s == nullptr) return;
                         Result<core::StateWriter::Stored> stored =
                             cur.ok() ? Result<core::StateWriter::Stored>(
                                            core::StateWriter::Stored{cur->version, cur->data})
                                      : Result<core::StateWriter::Stored>(cur.error());
                         WriteStep(epoch, data, s->writer.StoredRead(std::move(stored)), done);
                       });
                 },
                 [&](core::StateWriter::Wait& wait) {
                   Hit("shell.write_retried");
                   After(wait.delay, [this, data, done, epoch] {
                     if (Instance* s = ByEpoch(epoch))
                       WriteStep(epoch, data, s->writer.Waited(), done);
                   });
                 },
                 [&](core::StateWriter::Done& d) { done(std::move(d.status)); },
             },
             step);
}

void World::Execute(Instance& s, const core::Action& action) {
  // Calls to the master go over this instance's subscription: an instance that is not the one
  // subscribed (a leader not yet subscribed, or one failed over) reaches nobody with them.
  uint64_t session = session_;
  if (ha_ && (subscriber_ != s.id || s.mesos_cut)) session = 0;
  uint64_t epoch = s.epoch;
  std::visit(
      [&](const auto& a) {
        using A = std::decay_t<decltype(a)>;
        constexpr bool kReadOnly =
            std::is_same_v<A, core::ProbeMember> || std::is_same_v<A, core::ProbeCluster> ||
            std::is_same_v<A, core::AnswerAdmin> || std::is_same_v<A, core::Note> ||
            std::is_same_v<A, core::CheckHashes>;
        if constexpr (!kReadOnly) {
          if (ha_) CheckOneLeaderActs(s, "acts (" + Describe(core::Action(a)) + ")");
          if (done_) return;
        }
        if constexpr (std::is_same_v<A, core::LaunchMember>) {
          // A restart in place brings back no data of its own: it is not a launch after a loss.
          if (calm_ && (a.reserve || a.member.volume.empty())) launched_in_calm_ = true;
          // A launch on a volume its agent holds is a restart in place: it brings the data
          // there back, which must be of the generation the core runs.
          for (auto& agent : agents_) {
            if (a.reserve || a.member.volume.empty() || agent.id != a.member.agent_id) continue;
            if (ReservationWithVolume(agent, a.member.volume) == nullptr) continue;
            auto asked = launch_generation_.find(a.member.task_id);
            RestartFacts f{a.member.name, a.member.volume, a.member.generation,
                           asked != launch_generation_.end() ? asked->second : 0};
            if (auto v = CheckRestartInPlace(f)) return Fail(*v);
          }
          // Write-ahead: a task is on record in the store before it is launched, so that a
          // scheduler restarted from the store knows every task it may find running.
          std::optional<core::PersistentState> stored = StoredState();
          auto on_record = stored ? stored->members.find(a.member.name)
                                  : std::map<std::string, core::Member>::const_iterator();
          if (!stored || on_record == stored->members.end() ||
              on_record->second.task_id != a.member.task_id) {
            return Fail({"launch-not-on-record",
                         "launching '" + a.member.task_id + "' which the store does not hold"});
          }
          After(Ms(1, 50), [this, a, session] { Launch(a, session); });
        } else if constexpr (std::is_same_v<A, core::ReleaseResources>) {
          After(Ms(1, 50), [this, a, session] { Release(a, session); });
        } else if constexpr (std::is_same_v<A, core::DeclineOffer>) {
          After(Ms(1, 50), [this, a, session] {
            if (session != session_) return;
            auto it = offers_.find(a.offer_id);
            if (it == offers_.end()) return;
            Agent& agent = agents_[it->second];
            agent.offer.reset();
            agent.filtered_until = now_ + Millis(static_cast<int64_t>(a.refuse_seconds * 1000));
            offers_.erase(it);
          });
        } else if constexpr (std::is_same_v<A, core::KillTask>) {
          auto t = tasks_.find(a.task_id);
          if (t != tasks_.end()) t->second.kill_ordered = true;
          After(Ms(1, 50), [this, a, session] { Kill(a, session); });
        } else if constexpr (std::is_same_v<A, core::ReconcileTasks>) {
          After(Ms(1, 50), [this, a, session] { Reconcile(a, session); });
        } else if constexpr (std::is_same_v<A, core::Revive>) {
          After(Ms(1, 50), [this, session] {
            if (session != session_) return;
            suppressed_ = false;
            for (auto& agent : agents_) agent.filtered_until = now_;
          });
        } else if constexpr (std::is_same_v<A, core::Suppress>) {
          After(Ms(1, 50), [this, session] {
            if (session == session_) suppressed_ = true;
          });
        } else if constexpr (std::is_same_v<A, core::ProbeMember>) {
          Result<core::MemberProbe> r = Probe(a.client_url);
          // An unreachable member costs the client its timeout.
          Millis d = r.ok() ? Ms(1, 30) : Ms(300, 1000);
          ToCore(epoch, d, [this, name = a.name, r] { return core::ProbeResult{name, r, now_}; });
        } else if constexpr (std::is_same_v<A, core::ProbeCluster>) {
          Result<core::ClusterView> r = ProbeCluster(a.client_urls);
          Millis d = r.ok() ? Ms(1, 30) : Ms(300, 1000);
          ToCore(epoch, d, [this, r, probe_epoch = a.epoch] {
            return core::ClusterProbeResult{r, now_, probe_epoch};
          });
        } else if constexpr (std::is_same_v<A, core::ChangeMembership>) {
          After(Ms(5, 100), [this, epoch, a] { ChangeMembership(epoch, a); });
        } else if constexpr (std::is_same_v<A, core::TriggerReseed>) {
          After(Ms(50, 2000), [this, epoch, a] { Reseed(epoch, a); });
        } else if constexpr (std::is_same_v<A, core::Persist>) {
          // The pipeline hands every Persist out as a WriteState: this would bypass write-ahead.
          Fail({"persist-outside-pipeline", "a Persist reached the world as a plain action"});
        } else if constexpr (std::is_same_v<A, core::TakeBackup>) {
          // A snapshot streams from a member that answers; one that does not costs a timeout.
          Hit("shell.backup");
          Result<core::MemberProbe> r = Probe(a.client_url);
          Millis d = r.ok() ? Ms(50, 2000) : Ms(300, 1000);
          ToCore(epoch, d, [this, a, ok = r.ok()] {
            Result<core::BackupDone> done =
                ok ? Result<core::BackupDone>(core::BackupDone{"sim.db", 1, 1, a.member, "", 0})
                   : Result<core::BackupDone>(
                         Error{ErrorCode::kUnavailable, "snapshot: member unreachable"});
            return core::BackupResult{a.id, done, now_};
          });
        } else if constexpr (std::is_same_v<A, core::Maintain>) {
          // The simulated members report no database sizes or alarms, so only an operator's
          // POST /defrag would ask; a member that answers does it.
          Result<core::MemberProbe> r = Probe(a.client_url);
          Millis d = r.ok() ? Ms(5, 500) : Ms(300, 1000);
          ToCore(epoch, d, [this, a, ok = r.ok()] {
            Status status = ok ? Status() : Status(Error{ErrorCode::kUnavailable, "unreachable"});
            return core::MaintenanceResult{a.id, a.op, a.member, status, now_};
          });
        } else if constexpr (std::is_same_v<A, core::CheckHashes>) {
          // HashKV: one cluster's members agree (its uid stands for its data) unless corrupt;
          // the answer comes when the slowest member has answered or timed out. Fixed delays,
          // not drawn: the checks leave the random stream, and so the other seeds' runs, as
          // they were.
          Hit("shell.hash_check");
          core::HashCheckResult r{a.id, a.revision, {}, now_};
          Millis slowest{0};
          for (const auto& [name, url] : a.members) {
            Process* p = ProcessAt(url, false);
            if (p == nullptr || p->cluster == 0) {
              r.hashes.push_back({name, Error{ErrorCode::kUnavailable, "deadline exceeded"}});
              slowest = std::max(slowest, Millis(1000));
              continue;
            }
            auto hash = static_cast<uint32_t>(p->cluster) ^ (p->corrupt ? 0xbadu : 0u);
            r.hashes.push_back({name, core::KvHash{hash, 0}});
            slowest = std::max(slowest, Millis(50));
          }
          ToCore(epoch, slowest, [this, r]() mutable {
            r.now = now_;
            return r;
          });
        } else {
          // AnswerAdmin and Note: already in the trace. ProbePeers: not answered yet.
          // AcknowledgeUpdate: never asked for, as the simulated Mesos delivers every update
          // once, without a uuid (at-least-once delivery is not modelled yet).
        }
      },
      action);
}

// ---- Mesos --------------------------------------------------------------------------------

void World::SetCut(int i, bool master_cut, bool net_cut) {
  Agent& a = agents_[i];
  if (a.net_cut != net_cut) Touch(i);
  bool was = Visible(a);
  a.master_cut = master_cut;
  a.net_cut = net_cut;
  bool is = Visible(a);
  if (was && !is) BecameInvisible(i);
  if (!was && is) BecameVisible(i);
}

void World::BecameInvisible(int i) {
  Agent& a = agents_[i];
  ++a.outage;
  for (auto& r : a.reservations) {
    if (!r.task.empty() && !r.lost_contact) r.lost_contact = now_;
  }
  if (a.offer) {
    std::string offer = *a.offer;
    offers_.erase(offer);
    a.offer.reset();
    Hit("mesos.offer_rescinded");
    ToSubscriber(Ms(1, 50), [this, offer] { return core::OfferRescinded{offer, now_}; });
  }
  uint64_t outage = a.outage;
  After(kAgentPingTimeout, [this, i, outage] { MarkUnreachable(i, outage); });
}

void World::MarkUnreachable(int i, uint64_t outage) {
  Agent& a = agents_[i];
  if (a.outage != outage || Visible(a) || a.unreachable) return;
  a.unreachable = true;
  Hit("mesos.agent_unreachable");
  for (auto& [id, t] : tasks_) {
    if (t.agent_id != a.id || Terminal(t.master_state)) continue;
    t.master_state = mesos::TASK_UNREACHABLE;
    Enqueue(t, mesos::TASK_UNREACHABLE, /*from_master=*/true, "agent unreachable");
  }
}

void World::BecameVisible(int i) {
  Agent& a = agents_[i];
  for (auto& r : a.reservations) {
    if (!r.task.empty()) r.lost_contact.reset();  // its task runs on, in contact again
  }
  if (!a.unreachable) return;
  a.unreachable = false;
  Hit("mesos.agent_reregistered");
  // PARTITION_AWARE: the tasks of an agent that comes back report their state again.
  for (auto& [id, t] : tasks_) {
    if (t.agent_id != a.id || t.master_state != mesos::TASK_UNREACHABLE) continue;
    t.master_state = t.agent_state;
    Enqueue(t, t.agent_state, /*from_master=*/true, "agent reregistered");
  }
}

// The machine comes back. Without its disk it has a new identity, and the master removes the
// old agent for good: whatever ran there is gone, reservations and volumes with it. With its
// disk (durable seeds), it is the same agent: its tasks are gone (the master finds them missing
// when it re-registers), its reservations and volumes are still there and offered again.
void World::Reboot(int i, bool keep_disk) {
  Agent& a = agents_[i];
  std::string old = a.id;
  if (!keep_disk) {
    retired_agent_ids_.insert(old);
    a.id = fmt::format("S{}-{}", i, ++a.incarnation);
    bool volumes = std::any_of(a.reservations.begin(), a.reservations.end(),
                               [](const Reservation& r) { return !r.volume.empty(); });
    if (volumes) Hit("durable.volume_lost_with_wiped_agent");
    a.reservations.clear();
  }
  a.up = true;
  a.unreachable = false;
  a.wiped_on_return = false;
  a.cpus = 4;
  a.mem = 4096;
  a.disk = 8192;
  a.ports.clear();
  for (uint16_t p = kPortBegin; p <= kPortEnd; ++p) a.ports.insert(p);
  for (auto& r : a.reservations) {
    a.cpus -= r.cpus;
    a.mem -= r.mem;
    a.disk -= r.disk;
    for (uint16_t p : r.ports) a.ports.erase(p);
    if (!r.task.empty()) {
      r.task.clear();
      if (!r.lost_contact) r.lost_contact = now_;
    }
  }
  a.filtered_until = now_;
  Trace(keep_disk ? fmt::format("agent {} comes back with its disk", old)
                  : fmt::format("agent {} comes back as {}", old, a.id));
  for (auto& [id, t] : tasks_) {
    if (t.agent_id != old) continue;
    std::erase_if(t.pending, [](const PendingUpdate& u) { return !u.from_master; });
    KillExecutor(t);
    t.cpus = t.mem = t.disk = 0;  // the machine's resources were counted afresh above
    t.ports.clear();
    if (!Terminal(t.agent_state)) t.agent_state = mesos::TASK_GONE;
    if (Terminal(t.master_state)) continue;
    t.master_state = mesos::TASK_GONE;
    if (keep_disk) {
      Enqueue(t, mesos::TASK_GONE, /*from_master=*/true,
              "Task was not found on the agent when it re-registered",
              mesos::TaskStatus::REASON_AGENT_RESTARTED);
    } else {
      Enqueue(t, mesos::TASK_GONE, /*from_master=*/true, "agent came back with a new id",
              mesos::TaskStatus::REASON_AGENT_REMOVED);
    }
  }
}

void World::Allocate() {
  After(kAllocationInterval, [this] { Allocate(); });
  Instance* subscriber = Subscriber();
  if (!connected_ || suppressed_ || subscriber == nullptr || !subscriber->core) return;
  std::vector<mesos::Offer> offers;
  for (int i = 0; i < static_cast<int>(agents_.size()); ++i) {
    Agent& a = agents_[i];
    if (!Visible(a) || a.offer || a.filtered_until > now_) continue;
    bool reserved = std::any_of(a.reservations.begin(), a.reservations.end(),
                                [](const Reservation& r) { return r.task.empty(); });
    if ((a.cpus < 0.5 || a.ports.empty()) && !reserved) continue;
    mesos::Offer o;
    std::string id = fmt::format("O{}", next_offer_++);
    o.mutable_id()->set_value(id);
    o.mutable_framework_id()->set_value(*framework_id_);
    o.mutable_agent_id()->set_value(a.id);
    o.set_hostname(fmt::format("host{}", i));
    o.mutable_url()->set_scheme("http");
    o.mutable_url()->mutable_address()->set_ip(a.ip);
    o.mutable_url()->mutable_address()->set_port(5051);
    for (auto [name, v] : {std::pair{"cpus", a.cpus}, {"mem", a.mem}, {"disk", a.disk}}) {
      auto* r = o.add_resources();
      r->set_name(name);
      r->set_type(mesos::Value::SCALAR);
      r->mutable_scalar()->set_value(v);
    }
    auto* ports = o.add_resources();
    ports->set_name("ports");
    ports->set_type(mesos::Value::RANGES);
    for (auto it = a.ports.begin(); it != a.ports.end();) {
      uint16_t begin = *it, end = *it;
      for (++it; it != a.ports.end() && *it == end + 1; ++it) end = *it;
      auto* range = ports->mutable_ranges()->add_range();
      range->set_begin(begin);
      range->set_end(end);
    }
    // Reserved resources (and volumes) no task uses, after the unreserved ones.
    for (const auto& r : a.reservations) {
      if (!r.task.empty()) continue;
      for (auto& resource : Offered(r)) *o.add_resources() = std::move(resource);
    }
    a.offer = id;
    offers_[id] = i;
    offers.push_back(std::move(o));
  }
  if (offers.empty()) return;
  ToCore(subscriber->epoch, Ms(1, 30), [this, offers] {
    return core::OffersReceived{offers, now_};
  });
}

std::vector<mesos::Resource> World::Offered(const Reservation& r) const {
  // As Mesos offers them to a framework with RESERVATION_REFINEMENT, and as the shell's
  // DurableResources reserved them: each piece with its reservation (role, labels).
  auto reserved = [&](mesos::Resource piece) {
    piece.mutable_allocation_info()->set_role(config_.role);
    auto* reservation = piece.add_reservations();
    reservation->set_type(mesos::Resource::ReservationInfo::DYNAMIC);
    reservation->set_role(config_.role);
    for (const auto& [key, value] :
         {std::pair<const char*, std::string>{core::kLabelCluster, r.cluster},
          {core::kLabelGeneration, r.generation},
          {core::kLabelMember, r.member},
          {core::kLabelVolume, r.label_volume}}) {
      auto* label = reservation->mutable_labels()->add_labels();
      label->set_key(key);
      label->set_value(value);
    }
    return piece;
  };
  auto scalar = [&](const char* name, double value) {
    mesos::Resource piece;
    piece.set_name(name);
    piece.set_type(mesos::Value::SCALAR);
    piece.mutable_scalar()->set_value(value);
    return reserved(piece);
  };
  std::vector<mesos::Resource> out;
  if (r.cpus > 0) out.push_back(scalar("cpus", r.cpus));
  if (r.mem > 0) out.push_back(scalar("mem", r.mem));
  if (r.disk > 0) {
    mesos::Resource disk = scalar("disk", r.disk);
    if (!r.volume.empty()) {
      disk.mutable_disk()->mutable_persistence()->set_id(r.volume);
      disk.mutable_disk()->mutable_volume()->set_container_path("data");
      disk.mutable_disk()->mutable_volume()->set_mode(mesos::Volume::RW);
    }
    out.push_back(std::move(disk));
  }
  if (!r.ports.empty()) {
    mesos::Resource ports;
    ports.set_name("ports");
    ports.set_type(mesos::Value::RANGES);
    for (uint16_t p : r.ports) {
      auto* range = ports.mutable_ranges()->add_range();
      range->set_begin(p);
      range->set_end(p);
    }
    out.push_back(reserved(std::move(ports)));
  }
  return out;
}

World::Reservation* World::ReservationWithVolume(Agent& a, const std::string& volume) {
  for (auto& r : a.reservations) {
    if (!volume.empty() && r.volume == volume) return &r;
  }
  return nullptr;
}

// An ACCEPT of DESTROY then UNRESERVE (the shell's DoRelease), each operation validated against
// what the offer holds after the ones before it, as Mesos does: an invalid one is dropped whole
// and the rest goes on.
void World::Release(const core::ReleaseResources& release, uint64_t session) {
  if (session != session_ || !connected_) return;
  auto offer = offers_.find(release.offer_id);
  if (offer == offers_.end() || agents_[offer->second].id != release.agent_id) {
    Hit("mesos.release_on_invalid_offer");
    return;
  }
  Agent& a = agents_[offer->second];
  offers_.erase(offer);
  a.offer.reset();
  a.filtered_until = now_;  // refuse_seconds 0: what is released is offered again at once
  auto offered = [&](const std::string& label_volume) -> Reservation* {
    for (auto& r : a.reservations) {
      if (r.label_volume == label_volume && r.task.empty()) return &r;
    }
    return nullptr;
  };
  bool destroy_valid = true;
  for (const auto& v : release.destroy) {
    Reservation* r = offered(LabelOf(v, core::kLabelVolume));
    bool held = r != nullptr && v.has_disk() && v.disk().has_persistence() &&
                r->volume == v.disk().persistence().id() && r->disk == v.scalar().value();
    destroy_valid = destroy_valid && held;
  }
  if (!destroy_valid) {
    Hit("mesos.destroy_dropped");
    Trace("master: DESTROY dropped: a volume it names is not in the offer");
  } else {
    for (const auto& v : release.destroy) {
      Reservation* r = offered(LabelOf(v, core::kLabelVolume));
      r->volume.clear();
      r->data = -1;  // the member's data go with the volume
      Hit("durable.volume_destroyed");
    }
  }
  // UNRESERVE: each resource must be held, as reserved, whole (a volume must be destroyed first).
  bool unreserve_valid = true;
  std::vector<std::pair<Reservation*, const mesos::Resource*>> pieces;
  for (const auto& u : release.unreserve) {
    Reservation* r = offered(LabelOf(u, core::kLabelVolume));
    bool held = r != nullptr && u.reservations_size() > 0 && !u.has_disk();
    if (held && u.name() == "cpus") held = r->cpus > 0 && r->cpus == u.scalar().value();
    if (held && u.name() == "mem") held = r->mem > 0 && r->mem == u.scalar().value();
    if (held && u.name() == "disk") {
      held = r->disk > 0 && r->volume.empty() && r->disk == u.scalar().value();
    }
    if (held && u.name() == "ports") {
      std::vector<uint16_t> ports;
      for (const auto& range : u.ranges().range()) {
        for (uint64_t p = range.begin(); p <= range.end(); ++p) ports.push_back(p);
      }
      std::vector<uint16_t> mine = r->ports;
      std::sort(ports.begin(), ports.end());
      std::sort(mine.begin(), mine.end());
      held = !mine.empty() && ports == mine;
    }
    if (held && u.name() != "cpus" && u.name() != "mem" && u.name() != "disk" &&
        u.name() != "ports") {
      held = false;
    }
    unreserve_valid = unreserve_valid && held;
    pieces.emplace_back(r, &u);
  }
  if (!unreserve_valid || pieces.empty()) {
    Hit("mesos.unreserve_dropped");
    Trace("master: UNRESERVE dropped: a resource it names is not in the offer as reserved");
    return;
  }
  for (auto [r, u] : pieces) {
    if (u->name() == "cpus") a.cpus += std::exchange(r->cpus, 0);
    if (u->name() == "mem") a.mem += std::exchange(r->mem, 0);
    if (u->name() == "disk") a.disk += std::exchange(r->disk, 0);
    if (u->name() == "ports") {
      for (uint16_t p : r->ports) a.ports.insert(p);
      r->ports.clear();
    }
  }
  std::erase_if(a.reservations, [](const Reservation& r) { return r.Empty(); });
  Hit("durable.released");
  Trace(fmt::format("master: released on agent {}: {}", a.id, release.why));
}

void World::Enqueue(Task& t, mesos::TaskState state, bool from_master, std::string message,
                    std::optional<mesos::TaskStatus::Reason> reason) {
  t.pending.push_back({state, from_master, std::move(message), reason});
}

bool World::CanDeliver(const Task& t) const {
  if (!connected_ || subscriber_ < 0 || !instances_[subscriber_].core || t.pending.empty()) {
    return false;
  }
  if (t.pending.front().from_master) return true;
  const Agent& a = agents_[t.agent];
  return a.id == t.agent_id && Visible(a);
}

void World::MesosStep() {
  After(kMesosStep, [this] { MesosStep(); });
  for (auto& [id, t] : tasks_) {
    // A connected agent tells the master its tasks' latest states whether or not the
    // framework is connected (Mesos's latest_state).
    const Agent& a = agents_[t.agent];
    if (a.id == t.agent_id && Visible(a)) {
      t.master_state = t.agent_state;
    }
    if (t.in_flight || !CanDeliver(t)) continue;
    t.in_flight = true;
    // Delays differ per task, so updates of different tasks overtake each other.
    After(Ms(5, 1500), [this, id = id] { DeliverUpdate(id); });
  }
}

void World::DeliverUpdate(const std::string& task_id) {
  Task& t = tasks_.at(task_id);
  t.in_flight = false;
  if (!CanDeliver(t)) return;  // retried when the path is back
  // One stream carries everything the master tells the scheduler, in order: an update waits
  // behind reconciliation answers already on it.
  if (stream_free_at_ > now_) {
    t.in_flight = true;
    At(stream_free_at_, [this, task_id] { DeliverUpdate(task_id); });
    return;
  }
  stream_free_at_ = now_;
  PendingUpdate u = t.pending.front();
  bool duplicate = Faulty() && Chance(0.08);
  if (duplicate) {
    Hit("mesos.update_duplicated");
  } else {
    t.pending.pop_front();
  }
  mesos::TaskStatus s;
  s.mutable_task_id()->set_value(t.id);
  s.set_state(u.state);
  s.mutable_agent_id()->set_value(t.agent_id);
  if (!u.message.empty()) s.set_message(u.message);
  if (u.reason) s.set_reason(*u.reason);
  Deliver(*Subscriber(), core::TaskUpdate{s, now_});
}

void World::Answer(const std::string& task_id, const std::string& agent_id,
                   mesos::TaskState state) {
  mesos::TaskStatus s;
  s.mutable_task_id()->set_value(task_id);
  s.set_state(state);
  s.set_reason(mesos::TaskStatus::REASON_RECONCILIATION);
  if (!agent_id.empty()) s.mutable_agent_id()->set_value(agent_id);
  uint64_t session = session_;
  // Not reliable: lost with the session. Its content is the master's latest knowledge, which
  // may be newer than reliable updates the scheduler has not yet acknowledged.
  stream_free_at_ = std::max(stream_free_at_, now_ + Ms(1, 300));
  At(stream_free_at_, [this, s, session] {
    if (session == session_ && Subscriber()) Deliver(*Subscriber(), core::TaskUpdate{s, now_});
  });
}

void World::Reconcile(const core::ReconcileTasks& r, uint64_t session) {
  if (session != session_ || !connected_) return;
  if (r.tasks.empty()) {
    Hit("mesos.reconcile_implicit");
    for (const auto& [id, t] : tasks_) {
      if (!Terminal(t.master_state)) Answer(id, t.agent_id, t.master_state);
    }
    return;
  }
  Hit("mesos.reconcile_explicit");
  for (const auto& [id, agent_id] : r.tasks) {
    auto it = tasks_.find(id);
    if (it != tasks_.end()) {
      Answer(id, it->second.agent_id, it->second.master_state);
    } else if (retired_agent_ids_.count(agent_id)) {
      Answer(id, agent_id, mesos::TASK_UNKNOWN);
    } else {
      Answer(id, agent_id, mesos::TASK_GONE);
    }
  }
}

void World::Launch(const core::LaunchMember& launch, uint64_t session) {
  if (session != session_ || !connected_) {
    Hit("mesos.launch_from_stale_session");
    return;  // the call failed; reconciliation tells the scheduler
  }
  const core::Member& m = launch.member;
  auto offer = offers_.find(launch.offer_id);
  bool valid = offer != offers_.end() && agents_[offer->second].id == m.agent_id;
  Task t;
  t.id = m.task_id;
  t.name = m.name;
  t.agent_id = m.agent_id;
  t.launch = launch;
  if (tasks_.count(t.id)) {
    return Fail({"duplicate-task-id", "a task id was launched twice: " + t.id});
  }
  if (!valid) {
    Hit("mesos.launch_on_invalid_offer");
    t.agent = 0;
    t.agent_state = mesos::TASK_DROPPED;
    t.master_state = mesos::TASK_DROPPED;
    Enqueue(t, mesos::TASK_DROPPED, /*from_master=*/true, "invalid offer");
    tasks_.emplace(t.id, std::move(t));
    return;
  }
  t.agent = offer->second;
  Agent& a = agents_[t.agent];
  offers_.erase(offer);
  a.offer.reset();
  if (!m.volume.empty()) {
    if (!LaunchDurable(launch, a, t)) return;
    std::string id = t.id;
    tasks_.emplace(id, std::move(t));
    if (Faulty() && Chance(0.03)) {
      Hit("fault.task_hangs_in_staging");
      tasks_.at(id).hangs = true;
      return;  // the fetch never finishes
    }
    After(Ms(300, 3000), [this, id] { StartTask(id); });
    return;
  }
  for (uint16_t p : {m.peer_port, m.client_port, m.reseed_port}) {
    if (!a.ports.erase(p))
      return Fail({"launch-outside-offer", fmt::format("port {} of {}", p, t.id)});
    t.ports.push_back(p);
  }
  t.cpus = config_.task_cpus + config_.executor_cpus;
  t.mem = config_.task_mem + config_.executor_mem;
  t.disk = config_.task_disk;
  if (a.cpus + 1e-9 < t.cpus || a.mem + 1e-9 < t.mem || a.disk + 1e-9 < t.disk) {
    return Fail({"launch-outside-offer", "resources exceed the offer: " + t.id});
  }
  a.cpus -= t.cpus;
  a.mem -= t.mem;
  a.disk -= t.disk;
  std::string id = t.id;
  tasks_.emplace(id, std::move(t));
  if (Faulty() && Chance(0.03)) {
    Hit("fault.task_hangs_in_staging");
    tasks_.at(id).hangs = true;
    return;  // the fetch never finishes
  }
  After(Ms(300, 3000), [this, id] { StartTask(id); });
}

// A durable member's launch on a valid offer. Its first (reserve) carries RESERVE and CREATE
// before the LAUNCH, as the shell's DoLaunch: the member's cpus, mem, disk and ports become its
// reservation (labelled as the shell labels them) and the disk its volume. A restart in place
// launches on the reservation and volume the offer holds. Either way the executor takes
// unreserved cpus and mem. False (the run failed) if the core launched outside the offer.
bool World::LaunchDurable(const core::LaunchMember& launch, Agent& a, Task& t) {
  const core::Member& m = launch.member;
  std::vector<uint16_t> ports = {m.peer_port, m.client_port, m.reseed_port};
  double exec_cpus = config_.executor_cpus, exec_mem = config_.executor_mem;
  Reservation* r = nullptr;
  if (launch.reserve) {
    for (uint16_t p : ports) {
      if (!a.ports.count(p)) {
        Fail({"launch-outside-offer",
              fmt::format("port {} of {} is not offered unreserved", p, t.id)});
        return false;
      }
    }
    if (a.cpus + 1e-9 < config_.task_cpus + exec_cpus ||
        a.mem + 1e-9 < config_.task_mem + exec_mem || a.disk + 1e-9 < config_.task_disk) {
      Fail({"launch-outside-offer", "unreserved resources of the offer fall short: " + t.id});
      return false;
    }
    if (ReservationWithVolume(a, m.volume)) {
      // Mesos drops the CREATE (the persistence id is in use) after the RESERVE it follows, and
      // the launch then names a volume the offer does not hold.
      Hit("mesos.create_dropped_id_in_use");
      Fail({"launch-outside-offer",
            fmt::format("{} creates volume {}, which agent {} already has", t.id, m.volume, a.id)});
      return false;
    }
    Reservation fresh;
    fresh.cluster = config_.framework_name;
    fresh.generation = std::to_string(m.generation);
    fresh.member = m.name;
    fresh.label_volume = m.volume;
    fresh.volume = m.volume;
    fresh.cpus = config_.task_cpus;
    fresh.mem = config_.task_mem;
    fresh.disk = config_.task_disk;
    fresh.ports = ports;
    a.cpus -= fresh.cpus;
    a.mem -= fresh.mem;
    a.disk -= fresh.disk;
    for (uint16_t p : ports) a.ports.erase(p);
    a.reservations.push_back(std::move(fresh));
    r = &a.reservations.back();
    Hit("durable.reserved_and_created");
  } else {
    r = ReservationWithVolume(a, m.volume);
    if (r == nullptr || !r->task.empty()) {
      Fail({"launch-outside-offer",
            fmt::format("{} is launched on volume {}, which agent {} does not offer", t.id,
                        m.volume, a.id)});
      return false;
    }
    std::vector<uint16_t> mine = r->ports, wanted = ports;
    std::sort(mine.begin(), mine.end());
    std::sort(wanted.begin(), wanted.end());
    if (mine != wanted || r->cpus < config_.task_cpus || r->mem < config_.task_mem) {
      Fail({"launch-outside-offer",
            fmt::format("{} does not fit the reservation of volume {}", t.id, m.volume)});
      return false;
    }
    Hit("durable.restart_in_place");
  }
  if (a.cpus + 1e-9 < exec_cpus || a.mem + 1e-9 < exec_mem) {
    Fail({"launch-outside-offer", "the executor's resources exceed the offer: " + t.id});
    return false;
  }
  a.cpus -= exec_cpus;
  a.mem -= exec_mem;
  t.cpus = exec_cpus;
  t.mem = exec_mem;
  t.volume = m.volume;
  r->task = t.id;
  r->lost_contact.reset();
  return true;
}

void World::FreeTaskResources(Task& t) {
  Agent& a = agents_[t.agent];
  if (a.id != t.agent_id) return;  // the machine came back as a new agent with everything free
  a.cpus += t.cpus;
  a.mem += t.mem;
  a.disk += t.disk;
  for (uint16_t p : t.ports) a.ports.insert(p);
  t.cpus = t.mem = t.disk = 0;
  t.ports.clear();
  // Its volume and reservation stay, offered again.
  for (auto& r : a.reservations) {
    if (r.task != t.id) continue;
    r.task.clear();
    if (!r.lost_contact) r.lost_contact = now_;
  }
}

void World::StartTask(const std::string& task_id) {
  Task& t = tasks_.at(task_id);
  const Agent& a = agents_[t.agent];
  if (t.agent_state != mesos::TASK_STAGING || a.id != t.agent_id || !a.up || t.executor) return;
  StartExecutor(t);
}

void World::Kill(const core::KillTask& kill, uint64_t session) {
  if (session != session_ || !connected_) return;
  auto it = tasks_.find(kill.task_id);
  if (it == tasks_.end()) return;
  Task& t = it->second;
  const Agent& a = agents_[t.agent];
  if (Terminal(t.agent_state) || a.id != t.agent_id) return;
  if (!Visible(a)) {
    Hit("mesos.kill_lost_agent_unreachable");
    return;
  }
  std::string id = t.id;
  if (t.executor) {
    ToExecutorAfter(id, Ms(10, 200), [this, id] {
      return exec::KillRequested{id, std::nullopt, now_};
    });
    return;
  }
  // Still fetching: the agent kills it without an executor, unless the executor has started by
  // the time the kill is carried out (then the kill goes to the executor).
  After(Ms(100, 2000), [this, id] {
    if (tasks_.at(id).executor) {
      Hit("mesos.kill_reached_executor_started_meanwhile");
      return ToExecutor(id, exec::KillRequested{id, std::nullopt, now_});
    }
    ProcessDies(id, mesos::TASK_KILLED, "killed");
  });
}

// ---- etcd ---------------------------------------------------------------------------------

bool World::Connected(const Process& p) const {
  const Agent& a = agents_[p.agent];
  const Task& t = tasks_.at(p.task_id);
  return p.alive && a.up && !a.net_cut && a.id == t.agent_id;
}

World::Process* World::ProcessAt(const std::string& url, bool reseed_port) {
  Url u = ParseUrl(url);
  for (auto& p : processes_) {
    if (!p.alive || p.host != u.host) continue;
    if ((reseed_port ? p.reseed_port : p.client_port) != u.port) continue;
    return Connected(p) ? &p : nullptr;
  }
  return nullptr;
}

World::Cluster& World::NewCluster(std::string key) {
  uint64_t uid = (seed_ << 20) + next_cluster_++;
  Cluster& c = clusters_[uid];
  c.uid = uid;
  c.key = std::move(key);
  return c;
}

void World::StartProcess(Task& t) {
  const core::LaunchMember& l = t.launch;
  Process p;
  p.task_id = t.id;
  p.agent = t.agent;
  p.name = l.member.name;
  p.host = l.member.host;
  p.peer_port = l.member.peer_port;
  p.client_port = l.member.client_port;
  p.reseed_port = l.member.reseed_port;
  p.tls = l.member.tls;
  t.process = static_cast<int>(processes_.size());
  Reservation* volume =
      t.volume.empty() ? nullptr : ReservationWithVolume(agents_[t.agent], t.volume);
  if (volume != nullptr && volume->data >= 0 && processes_[volume->data].cluster != 0) {
    // etcd starts on the data its volume holds: the same member of the same cluster, whatever
    // the flags say (they count only for an empty data dir).
    const Process& before = processes_[volume->data];
    p.cluster = before.cluster;
    p.member_id = before.member_id;
    p.index = before.index;
    p.corrupt = before.corrupt;
    p.changed_at = now_;
    bool twice = std::any_of(processes_.begin(), processes_.end(), [&](const Process& q) {
      return q.alive && q.cluster == p.cluster && q.member_id == p.member_id;
    });
    if (twice) p.cluster = 0;  // another process runs that member: it exits (StartEtcd)
    Hit(twice ? "durable.data_member_runs_elsewhere" : "durable.etcd_on_its_volume_data");
    volume->data = static_cast<int>(processes_.size());
    processes_.push_back(p);
    return;
  }
  if (volume != nullptr) volume->data = static_cast<int>(processes_.size());
  auto members = ParseInitialCluster(l.initial_cluster);
  Cluster* joined = nullptr;
  if (l.new_cluster) {
    // The static members of one bootstrap find each other through the same token and list.
    std::string key = l.cluster_token + "|" + l.initial_cluster;
    for (auto& [uid, c] : clusters_) {
      if (c.key == key) joined = &c;
    }
    if (joined == nullptr) {
      joined = &NewCluster(key);
      for (const auto& [name, url] : members) {
        joined->members.push_back({next_member_id_++, name, url, false});
      }
      Hit("etcd.static_bootstrap");
    }
  } else {
    // Joining: ask the listed peers for the membership, which must hold our peer URL.
    for (const auto& [name, url] : members) {
      if (url == p.PeerUrl()) continue;
      for (const auto& q : processes_) {
        if (!q.alive || q.PeerUrl() != url || !Connected(q)) continue;
        joined = &clusters_.at(q.cluster);
        break;
      }
      if (joined) break;
    }
    if (joined && !agents_[t.agent].net_cut) {
      bool listed = std::any_of(joined->members.begin(), joined->members.end(),
                                [&](const Entry& e) { return e.peer_url == p.PeerUrl(); });
      if (!listed) joined = nullptr;
    } else {
      joined = nullptr;
    }
  }
  Entry* entry = nullptr;
  if (joined) {
    for (auto& e : joined->members) {
      if (e.peer_url == p.PeerUrl()) entry = &e;
    }
  }
  for (const auto& q : processes_) {
    if (entry && q.alive && q.cluster == joined->uid && q.member_id == entry->id) entry = nullptr;
  }
  processes_.push_back(p);
  if (entry == nullptr) {
    Hit("etcd.join_refused");
    processes_.back().cluster = 0;  // it exits (StartEtcd)
    return;
  }
  Process& mine = processes_.back();
  mine.changed_at = now_;
  mine.cluster = joined->uid;
  mine.member_id = entry->id;
  entry->name = mine.name;
}

void World::ProcessDies(const std::string& task_id, mesos::TaskState state,
                        const std::string& why) {
  Task& t = tasks_.at(task_id);
  if (t.process >= 0 && processes_[t.process].alive) {
    processes_[t.process].alive = false;
    processes_[t.process].changed_at = now_;
  }
  if (Terminal(t.agent_state)) return;
  const Agent& a = agents_[t.agent];
  if (a.id != t.agent_id || !a.up) return;  // the machine is gone; the master says GONE later
  t.agent_state = state;
  FreeTaskResources(t);
  Enqueue(t, state, false, why);
}

int World::RunningVoters(const Cluster& c, uint64_t except) const {
  int n = 0;
  for (const auto& e : c.members) {
    if (e.learner || e.id == except) continue;
    for (const auto& p : processes_) {
      if (p.alive && p.cluster == c.uid && p.member_id == e.id && Connected(p)) {
        ++n;
        break;
      }
    }
  }
  return n;
}

bool World::HasQuorum(const Cluster& c) const {
  int voters = static_cast<int>(
      std::count_if(c.members.begin(), c.members.end(), [](const Entry& e) { return !e.learner; }));
  return voters > 0 && RunningVoters(c) * 2 > voters;
}

void World::RaftStep() {
  After(kRaftStep, [this] { RaftStep(); });
  for (auto& [uid, c] : clusters_) {
    if (!HasQuorum(c)) {
      c.leader = 0;
      continue;
    }
    std::vector<Process*> running;
    for (auto& p : processes_) {
      if (p.alive && p.cluster == uid && Connected(p)) running.push_back(&p);
    }
    auto role = [&](const Process* p) -> const Entry* {
      for (const auto& e : c.members) {
        if (e.id == p->member_id) return &e;
      }
      return nullptr;
    };
    bool leader_runs = std::any_of(running.begin(), running.end(), [&](const Process* p) {
      const Entry* e = role(p);
      return e && !e->learner && p->member_id == c.leader;
    });
    if (!leader_runs) {
      const Process* best = nullptr;
      for (const Process* p : running) {
        const Entry* e = role(p);
        if (!e || e->learner) continue;
        if (!best || p->index > best->index) best = p;
      }
      c.leader = best->member_id;
      c.ever_led = true;
      ++c.term;
      c.commit = std::max(c.commit, best->index);
      Hit("etcd.leader_elected");
    }
    c.commit += Uniform(1, 5);  // clients write; progress needs the quorum we have
    for (Process* p : running) {
      const Entry* e = role(p);
      if (e == nullptr) continue;
      p->index = e->learner ? std::min(c.commit, p->index + kLearnerCatchUpPerStep) : c.commit;
    }
  }
}

void World::TickCore() {
  After(kTickInterval, [this] { TickCore(); });
  for (auto& s : instances_) Deliver(s, core::Tick{now_});
  // With auto-reseed off, healing a lost quorum is the operator's job: in the calm phase the
  // world plays the operator who reads the on-call guide and asks for a reseed.
  Instance* acting = Acting();
  bool stuck = acting && acting->livelocked_since &&
               now_ - *acting->livelocked_since >= config_.reseed_timeout;
  bool asked_lately = operator_asked_ && now_ - *operator_asked_ < config_.reseed_timeout;
  if (calm_ && acting && !config_.auto_reseed && stuck && !asked_lately) {
    operator_asked_ = now_;
    Hit("operator.reseed_in_calm");
    Deliver(*acting, core::AdminReseed{++admin_requests_, false, now_});
  }
  // A rollout stopped at a failure during the chaos: the operator, the cause gone, resumes it.
  bool resumed_lately = rollout_resumed_ && now_ - *rollout_resumed_ < 60s;
  if (calm_ && acting && acting->core && acting->core->rollout().state == "stopped" &&
      !resumed_lately) {
    rollout_resumed_ = now_;
    Hit("operator.rollout_resume_in_calm");
    Deliver(*acting, core::AdminRollout{++admin_requests_, core::RolloutCommand::kResume, now_});
  }
  // A CA rotation waits for the operator after its first two phases: in the calm, the operator
  // (whose clients are ready) moves it on, so that rotations are seen to their end.
  const core::SchedulerCore* core = acting ? acting->core.get() : nullptr;
  bool waits = core && core->state().ca.phase != core::CaPhase::kNone &&
               core->state().ca.phase != core::CaPhase::kDropOld && core->rollout().state == "done";
  bool moved_lately = ca_moved_on_ && now_ - *ca_moved_on_ < 60s;
  if (calm_ && waits && !moved_lately) {
    ca_moved_on_ = now_;
    Hit("operator.rotate_ca_next_in_calm");
    Deliver(*acting,
            core::AdminRollout{++admin_requests_, core::RolloutCommand::kNextCaPhase, now_});
  }
}

Result<core::MemberProbe> World::Probe(const std::string& url) {
  Process* p = ProcessAt(url, false);
  if (p == nullptr || p->cluster == 0) {
    return Error{ErrorCode::kUnavailable, "connection refused or timed out"};
  }
  const Cluster& c = clusters_.at(p->cluster);
  core::MemberProbe probe;
  probe.member_id = p->member_id;
  probe.leader = c.leader;
  probe.raft_index = p->index;
  probe.raft_term = c.term;
  probe.revision = p->index;  // the model has no KV: its log stands for the revisions
  probe.version = "3.4.23";
  for (const auto& e : c.members) {
    if (e.id == p->member_id) probe.is_learner = e.learner;
  }
  // The model's /health answers healthy whenever a leader is known (no alarms are modelled).
  probe.healthy = MemberHealthy(c.leader, false, c.leader != 0, probe.is_learner);
  return probe;
}

Result<core::ClusterView> World::ProbeCluster(const std::vector<std::string>& urls) {
  for (const auto& url : urls) {
    Process* p = ProcessAt(url, false);
    if (p == nullptr || p->cluster == 0) continue;
    const Cluster& c = clusters_.at(p->cluster);
    core::ClusterView view;
    for (const auto& e : c.members) {
      view.members.push_back({e.id, e.name, {e.peer_url}, e.learner});
    }
    view.linearizable_read_ok = c.leader != 0;
    return view;
  }
  return Error{ErrorCode::kUnavailable, "no member answers"};
}

// etcd's MoveLeader: only the leader hands over, to a voter that runs and hears it.
Status World::MoveLeader(Cluster& c, const Process& via, uint64_t target) {
  if (via.member_id != c.leader) return Error{ErrorCode::kRefused, "etcdserver: not leader"};
  ChangeContext none;
  Result<uint64_t> valid =
      ApplyMembershipChange(c.members, core::MembershipOp::kMoveLeader, target, "", 0, none);
  if (!valid.ok()) return valid.error();
  bool hears = std::any_of(processes_.begin(), processes_.end(), [&](const Process& p) {
    return p.alive && p.cluster == c.uid && p.member_id == target && Connected(p);
  });
  if (!hears) {
    return Error{ErrorCode::kUnavailable,
                 "etcdserver: request timed out, leader transfer took too long"};
  }
  c.leader = target;
  ++c.term;
  Hit("etcd.leader_moved");
  return OkStatus();
}

void World::ChangeMembership(uint64_t epoch, const core::ChangeMembership& change) {
  Status status = OkStatus();
  uint64_t member_id = change.member_id;
  Process* via = nullptr;
  for (const auto& url : change.client_urls) {
    via = ProcessAt(url, false);
    if (via && via->cluster != 0) break;
    via = nullptr;
  }
  auto answer = [&] {
    if (!status.ok())
      Hit("etcd.change_" + OpName(change.op) + "_" +
          std::string(ErrorCodeName(status.error().code)));
    else
      Hit("etcd.change_" + OpName(change.op) + "_ok");
    ToCore(epoch, Ms(5, 100), [this, change, member_id, status] {
      return core::MembershipResult{change.op, change.name, member_id, status, now_};
    });
  };
  if (via == nullptr) {
    status = Error{ErrorCode::kUnavailable, "no member answers"};
    return answer();
  }
  Cluster& c = clusters_.at(via->cluster);
  if (c.leader == 0) {
    status = Error{ErrorCode::kUnavailable, "etcdserver: no leader"};
    return answer();
  }
  if (change.op == core::MembershipOp::kMoveLeader) {
    status = MoveLeader(c, *via, change.member_id);
    return answer();
  }
  auto entry = std::find_if(c.members.begin(), c.members.end(),
                            [&](const Entry& e) { return e.id == change.member_id; });
  int voters = static_cast<int>(
      std::count_if(c.members.begin(), c.members.end(), [](const Entry& e) { return !e.learner; }));
  // A removal is judged as the scheduler asked for it, whatever etcd would then say: the
  // scheduler removes only members it has reason to think dead, and a member that runs and is
  // connected answers its probes. A promotion is judged as etcd applies it: the scheduler's view
  // of a learner may be a probe interval old, and etcd refuses a learner that is not in sync.
  // The scheduler learns of a death, a start or a partition through probes. A removal is not
  // judged when the scheduler's belief about one of the voters (answers and its task may live)
  // is wrong because of a change less than one settle period old: no scheduler could know yet,
  // and only etcd's own check (below) stands between such a removal and the cluster.
  bool settled = true;
  for (const auto& e : c.members) {
    if (e.learner) continue;
    std::optional<Time> changed;
    bool running = false;
    for (const auto& p : processes_) {
      if (p.cluster != c.uid || p.member_id != e.id) continue;
      if (!changed || p.changed_at > *changed) changed = p.changed_at;
      running = running || (p.alive && Connected(p));
    }
    if (!changed || now_ - *changed >= kSettle) continue;
    std::optional<bool> believed;
    if (const core::SchedulerCore* acting = ActingCore()) {
      for (const auto& [name, m] : acting->state().members) {
        if (m.member_id != e.id) continue;
        believed = m.reachable && !Terminal(m.task_state);
      }
    }
    if (!believed || *believed != running) settled = false;
  }
  if (!settled) Hit("invariant.removal_not_judged_world_unsettled");
  if (settled && change.op == core::MembershipOp::kRemove && entry != c.members.end()) {
    ChangeFacts f;
    f.op = change.op;
    f.name = change.name;
    f.had_quorum = HasQuorum(c);
    f.target_is_voter = !entry->learner;
    f.voters_after = voters - (entry->learner ? 0 : 1);
    f.running_voters_after = RunningVoters(c, entry->id);
    f.target_running = RunningVoters(c) > f.running_voters_after;
    // Judged against the size the core removed it for: the operator may ask another while the
    // removal waits behind a slow state write.
    if (auto asked = removal_target_.find(change.name); asked != removal_target_.end()) {
      f.target_size = asked->second;
    } else if (const core::SchedulerCore* acting = ActingCore()) {
      f.target_size = acting->TargetSize();
    }
    if (auto v = CheckMembershipChange(f)) return Fail(*v);
  }
  // etcd's rules (etcd_model.h) decide the answer; the world adds what a change does to the
  // processes, and judges a promotion as etcd applies it.
  ChangeContext context;
  context.commit = c.commit;
  context.running_voters = [this, &c](uint64_t except) { return RunningVoters(c, except); };
  context.learner_index = [this, &c](uint64_t id) -> uint64_t {
    for (const auto& q : processes_) {
      if (q.alive && q.cluster == c.uid && q.member_id == id && Connected(q)) return q.index;
    }
    return 0;
  };
  // Every voter runs, connected, and has been for 5 s (a process's changed_at moves when it
  // starts or its connectivity changes), and so has the member asked.
  context.connected_to_all_voters_for_5s = [this, &c, via] {
    if (now_ - via->changed_at < kHealthInterval) return false;
    return std::all_of(c.members.begin(), c.members.end(), [&](const Entry& e) {
      if (e.learner) return true;
      return std::any_of(processes_.begin(), processes_.end(), [&](const Process& p) {
        return p.alive && p.cluster == c.uid && p.member_id == e.id && Connected(p) &&
               now_ - p.changed_at >= kHealthInterval;
      });
    });
  };
  bool had_quorum = HasQuorum(c);
  int running_before = RunningVoters(c);
  uint64_t new_id = change.op == core::MembershipOp::kAddLearner ? next_member_id_ : 0;
  Result<uint64_t> applied = ApplyMembershipChange(c.members, change.op, change.member_id,
                                                   change.peer_url, new_id, context);
  if (!applied.ok()) {
    status = applied.error();
    return answer();
  }
  switch (change.op) {
    case core::MembershipOp::kAddLearner:
      member_id = next_member_id_++;
      break;
    case core::MembershipOp::kPromote: {
      ChangeFacts f;
      f.op = change.op;
      f.name = change.name;
      f.had_quorum = had_quorum;
      f.voters_after = voters + 1;
      f.running_voters_after = running_before + 1;
      if (auto v = CheckMembershipChange(f)) return Fail(*v);
      break;
    }
    case core::MembershipOp::kMoveLeader:
      break;  // answered above
    case core::MembershipOp::kRemove: {
      uint64_t id = *applied;
      if (c.leader == id) c.leader = 0;
      // A removed member learns it and stops.
      for (const auto& p : processes_) {
        if (!p.alive || p.cluster != c.uid || p.member_id != id) continue;
        std::string task = p.task_id;
        uint64_t incarnation = tasks_.at(task).etcd_incarnation;
        After(Ms(200, 2000), [this, task, incarnation] {
          EtcdExits(task, incarnation,
                    "exited with status 1 (the member has been permanently removed)");
        });
      }
      break;
    }
  }
  return answer();
}

// The scheduler's POST /reseed reaches the member's reseed listener, that is its executor, which
// stops etcd, starts it with --force-new-cluster (ForceNewCluster), then without, and answers.
void World::Reseed(uint64_t epoch, const core::TriggerReseed& reseed) {
  Process* p = ProcessAt(reseed.reseed_url, true);
  if (p != nullptr && tasks_.at(p->task_id).executor) {
    uint64_t request = ++reseed_requests_;
    reseeds_asked_[request] = {reseed.name, epoch};
    Hit("executor.reseed_requested");
    // As the shell's HTTP request: no answer (the executor died with its machine, or the
    // connection broke) within the deadline is a failed reseed.
    After(kReseedTimeout, [this, request] {
      auto asked = reseeds_asked_.find(request);
      if (asked == reseeds_asked_.end()) return;
      Hit("shell.reseed_request_timed_out");
      ReseedAsked by = asked->second;
      reseeds_asked_.erase(asked);
      ToCore(by.epoch, Millis(1), [this, name = by.name] {
        return core::ReseedResult{
            name, Error{ErrorCode::kUnavailable, "the reseed request timed out"}, now_};
      });
    });
    ToExecutor(p->task_id, exec::ReseedRequested{request, std::nullopt, now_});
    return;
  }
  Result<uint64_t> result = Error{ErrorCode::kUnavailable, "reseed listener does not answer"};
  ToCore(epoch, Ms(5, 100), [this, name = reseed.name, result] {
    return core::ReseedResult{name, result, now_};
  });
}

void World::ForceNewCluster(Process& survivor) {
  Cluster& old = clusters_.at(survivor.cluster);
  std::string name = survivor.name;
  for (const auto& e : old.members) {
    if (e.id == survivor.member_id && !e.name.empty()) name = e.name;
  }
  Cluster& c = NewCluster("");
  c.members.push_back({survivor.member_id, name, survivor.PeerUrl(), false});
  c.commit = survivor.index;
  c.leader = survivor.member_id;
  survivor.cluster = c.uid;
  survivor.changed_at = now_;
  latest_reseed_uid_ = c.uid;
  Hit("etcd.force_new_cluster");
  Trace(fmt::format("{} is now cluster {:x} alone at index {}", name, c.uid, survivor.index));
}

// ---- The executors ------------------------------------------------------------------------

// The agent starts the task's executor with the TaskInfo the shell would build (the parts the
// executor reads: the task id, and the task config in data).
void World::StartExecutor(Task& t) {
  const core::LaunchMember& l = t.launch;
  executor::TaskConfig tc;
  tc.name = l.member.name;
  tc.address = l.member.host;
  tc.peer_port = l.member.peer_port;
  tc.client_port = l.member.client_port;
  tc.reseed_port = l.member.reseed_port;
  tc.initial_cluster = l.initial_cluster;
  tc.initial_cluster_state = l.new_cluster ? executor::InitialClusterState::kNew
                                           : executor::InitialClusterState::kExisting;
  tc.cluster_token = l.cluster_token;
  tc.reseed_token = fmt::format("token-{}", seed_);
  if (l.member.tls) {
    // What the executor's shell would fetch its certificates with; its core never reads it.
    tc.tls = executor::TaskConfig::Tls{
        "-----BEGIN CERTIFICATE-----\n(sim)\n-----END CERTIFICATE-----\n",
        "http://10.0.0.100:12300/certificates", fmt::format("cert-token-{}", seed_)};
  }
  mesos::TaskInfo task;
  task.mutable_task_id()->set_value(t.id);
  task.set_name(t.id);
  task.mutable_agent_id()->set_value(t.agent_id);
  task.set_data(executor::EncodeTaskConfig(tc));
  t.executor = std::make_unique<exec::Supervisor>();
  ++t.executor_gen;
  Hit("executor.started");
  ToExecutor(t.id, exec::Launched{task, now_});
}

void World::KillExecutor(Task& t) {
  if (!t.executor) return;
  t.executor.reset();
  ++t.executor_gen;
}

void World::ToExecutor(const std::string& task_id, const exec::Event& event) {
  Task& t = tasks_.at(task_id);
  if (!t.executor || done_) return;
  if (std::holds_alternative<exec::KillRequested>(event)) t.kill_delivered = true;
  exec::Actions out = t.executor->Handle(event);
  uint64_t gen = t.executor_gen;
  for (const auto& a : out) {
    if (tasks_.at(task_id).executor_gen != gen) return;
    ExecutorAction(task_id, a);
  }
}

void World::ToExecutorAfter(const std::string& task_id, Millis d,
                            std::function<exec::Event()> make) {
  uint64_t gen = tasks_.at(task_id).executor_gen;
  After(d, [this, task_id, gen, make = std::move(make)] {
    if (tasks_.at(task_id).executor_gen == gen) ToExecutor(task_id, make());
  });
}

void World::ExecutorAction(const std::string& id, const exec::Action& action) {
  Task& t = tasks_.at(id);
  std::visit(
      [&](const auto& a) {
        using A = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<A, exec::StartEtcd>) {
          uint64_t gen = t.executor_gen;
          After(Ms(10, 300), [this, id, gen, a] {
            if (tasks_.at(id).executor_gen == gen)
              StartEtcd(id, a.incarnation, a.force_new_cluster);
          });
        } else if constexpr (std::is_same_v<A, exec::SignalEtcd>) {
          bool term = a.signal == exec::Signal::kTerm;
          uint64_t incarnation = t.etcd_incarnation;
          After(term ? Ms(10, 500) : Ms(1, 10), [this, id, incarnation, term] {
            EtcdExits(id, incarnation, term ? "exited with status 0" : "killed by signal 9");
          });
        } else if constexpr (std::is_same_v<A, exec::Probe>) {
          std::optional<exec::ProbeFacts> facts;
          if (t.process >= 0 && t.etcd_incarnation == a.incarnation) {
            facts = LocalProbe(processes_[t.process]);
          }
          ToExecutorAfter(id, Ms(1, 30), [this, incarnation = a.incarnation, facts] {
            return exec::ProbeResult{incarnation, facts, facts ? "" : "connection refused", now_};
          });
        } else if constexpr (std::is_same_v<A, exec::ArmTimer>) {
          auto after = std::chrono::duration_cast<Millis>(a.after);
          ToExecutorAfter(id, std::max(after, Millis(1)), [this, timer = a.id, token = a.token] {
            return exec::TimerFired{timer, token, now_};
          });
        } else if constexpr (std::is_same_v<A, exec::SendStatus>) {
          mesos::TaskState state = a.status.state();
          if (Terminal(t.agent_state)) return;
          const Agent& agent = agents_[t.agent];
          if (agent.id != t.agent_id || !agent.up) return;
          if (state != t.agent_state) Hit("executor.sent_" + mesos::TaskState_Name(state));
          t.agent_state = state;
          if (Terminal(state)) FreeTaskResources(t);
          Enqueue(t, state, false, a.status.message());
        } else if constexpr (std::is_same_v<A, exec::AnswerReseed>) {
          auto asked = reseeds_asked_.find(a.request_id);
          if (asked == reseeds_asked_.end()) return;
          std::string name = asked->second.name;
          uint64_t epoch = asked->second.epoch;
          reseeds_asked_.erase(asked);
          Hit("executor.reseed_" + std::string(exec::ReseedOutcomeName(a.outcome)));
          Result<uint64_t> result = a.facts.raft_index;
          if (a.outcome != exec::ReseedOutcome::kReseeded) {
            // As the shell's ParseReseedAnswer: busy is a conflict, anything else a refusal.
            result = Error{a.outcome == exec::ReseedOutcome::kBusy ? ErrorCode::kConflict
                                                                   : ErrorCode::kRefused,
                           "the executor's reseed outcome is " +
                               std::string(exec::ReseedOutcomeName(a.outcome)) + ": " + a.message};
          }
          ToCore(epoch, Ms(5, 100), [this, name, result] {
            return core::ReseedResult{name, result, now_};
          });
        } else if constexpr (std::is_same_v<A, exec::Log>) {
          if (a.level == exec::Log::Level::kError) Trace("executor of '" + id + "': " + a.message);
        } else {
          // StartReseedListener: it binds. Exit: the executor is done (done() says so).
        }
      },
      action);
}

// The etcd process of the task starts: the first time it bootstraps or joins (StartProcess);
// later on the same data, with --force-new-cluster when asked. A member its cluster does not
// list (removed, or never admitted) exits soon after starting, as etcd does.
void World::StartEtcd(const std::string& id, uint64_t incarnation, bool force_new_cluster) {
  Task& t = tasks_.at(id);
  const Agent& a = agents_[t.agent];
  if (a.id != t.agent_id || !a.up || Terminal(t.agent_state)) return;
  t.etcd_incarnation = incarnation;
  if (t.process < 0) {
    StartProcess(t);
  } else {
    Process& p = processes_[t.process];
    p.alive = true;
    p.changed_at = now_;
    Hit(force_new_cluster ? "executor.etcd_forced_new_cluster" : "executor.etcd_restarted");
    if (force_new_cluster && p.cluster != 0) ForceNewCluster(p);
  }
  if (!Listed(processes_[t.process])) {
    After(Ms(200, 2000), [this, id, incarnation] {
      EtcdExits(id, incarnation, "exited with status 1 (not a member of the cluster)");
    });
  }
  ToExecutor(id, exec::EtcdStarted{incarnation, static_cast<int>(1000 + incarnation), now_});
}

void World::EtcdExits(const std::string& id, uint64_t incarnation, const std::string& how) {
  Task& t = tasks_.at(id);
  if (t.process < 0 || t.etcd_incarnation != incarnation) return;
  Process& p = processes_[t.process];
  if (!p.alive) return;
  p.alive = false;
  p.changed_at = now_;
  ToExecutor(id, exec::EtcdExited{incarnation, how, "", now_});
}

bool World::Listed(const Process& p) const {
  if (p.cluster == 0) return false;
  const Cluster& c = clusters_.at(p.cluster);
  return std::any_of(c.members.begin(), c.members.end(),
                     [&](const Entry& e) { return e.id == p.member_id; });
}

// What the executor's probes of its own member learn (maintenance status, /health, member list).
std::optional<exec::ProbeFacts> World::LocalProbe(const Process& p) const {
  if (!p.alive || !Listed(p)) return std::nullopt;
  const Cluster& c = clusters_.at(p.cluster);
  exec::ProbeFacts f;
  f.member_id = p.member_id;
  f.cluster_id = c.uid;
  f.raft_index = p.index;
  f.raft_term = c.term;
  // A member cut off from its peers sees no leader.
  bool cut = agents_[p.agent].net_cut;
  f.leader = cut ? 0 : c.leader;
  for (const auto& e : c.members) {
    if (e.id == p.member_id) f.is_learner = e.learner;
  }
  if (f.leader == 0) f.errors.push_back("etcdserver: no leader");
  f.health = f.leader != 0;
  if (!f.is_learner) f.member_count = c.members.size();
  return f;
}

// ---- Faults and phases --------------------------------------------------------------------

void World::NextFault() {
  auto mean = static_cast<double>(options_.fault_interval_mean.count());
  auto wait = static_cast<int64_t>(std::exponential_distribution<double>(1.0 / mean)(rng_));
  After(Millis(std::max<int64_t>(wait, 1)), [this] {
    if (calm_) return;
    InjectFault();
    NextFault();
  });
}

void World::InjectFault() {
  // With several schedulers, their faults come more often (the draw only happens in those seeds,
  // so that the others replay as they did).
  if (ha_ && Chance(0.25)) return InjectInstanceFault();
  if (resizes_ && Chance(0.1)) return InjectResize();
  if (rollouts_ && Chance(0.1)) return InjectRollout();
  if (corruption_ && Chance(0.1)) return InjectCorruption();
  int i = static_cast<int>(Uniform(0, static_cast<int64_t>(agents_.size()) - 1));
  Agent& a = agents_[i];
  bool agent_ok = a.up && !a.master_cut && !a.net_cut;
  switch (Uniform(0, 10)) {
    case 0:
    case 1: {  // the machine dies; its processes with it; it reboots later as a new agent
      if (!agent_ok) return;
      bool wipe = Chance(0.5);
      Hit(wipe ? "fault.agent_restart_wiped" : "fault.agent_lost");
      // With durable members the host that is lost for a while comes back with its disk (its
      // reservations and volumes); one that restarts wiped comes back as a new agent without.
      if (durable_ && !wipe) Hit("fault.agent_reboot_kept_disk");
      Trace(fmt::format("FAULT agent {} {}", a.id,
                        wipe       ? "restarts without its work dir"
                        : durable_ ? "lost (its host reboots, keeping its disk)"
                                   : "lost"));
      a.up = false;
      a.wiped_on_return = wipe || !durable_;
      Touch(i);
      for (auto& p : processes_) {
        if (p.agent == i && p.alive && tasks_.at(p.task_id).agent_id == a.id) p.alive = false;
      }
      for (auto& [id, t] : tasks_) {
        if (t.agent == i && t.agent_id == a.id) KillExecutor(t);
      }
      BecameInvisible(i);
      After(wipe ? Ms(1000, 10'000) : Ms(5000, 120'000), [this, i] {
        if (!agents_[i].up) Reboot(i, !agents_[i].wiped_on_return);
      });
      return;
    }
    case 2: {  // the agent process restarts keeping its work dir: tasks keep running
      if (!agent_ok) return;
      Hit("fault.agent_restart_kept");
      Trace("FAULT agent " + a.id + " restarts keeping its work dir");
      SetCut(i, true, false);
      After(Ms(1000, 30'000), [this, i] { SetCut(i, false, agents_[i].net_cut); });
      return;
    }
    case 3:
    case 4: {  // a partition: from the master only, or from everyone
      if (!agent_ok) return;
      bool full = Chance(0.5);
      Hit(full ? "fault.partition_full" : "fault.partition_master");
      Trace(fmt::format("FAULT agent {} partitioned from {}", a.id,
                        full ? "everyone" : "the master"));
      SetCut(i, true, full);
      After(Ms(5000, 90'000), [this, i] { SetCut(i, false, false); });
      return;
    }
    case 5: {  // one etcd process dies
      std::vector<std::string> running;
      for (const auto& p : processes_) {
        if (p.alive) running.push_back(p.task_id);
      }
      if (running.empty()) return;
      std::string id = running[Uniform(0, static_cast<int64_t>(running.size()) - 1)];
      Hit("fault.etcd_crash");
      Trace("FAULT etcd of '" + id + "' exits");
      EtcdExits(id, tasks_.at(id).etcd_incarnation, "exited with status 2");
      return;
    }
    case 6:
      if (ha_) return InjectInstanceFault();
      if (instances_[0].core) CrashScheduler(instances_[0]);
      return;
    case 7: {
      Instance* s = Subscriber();
      if (s == nullptr || !s->core || !connected_) return;
      Hit("fault.master_disconnect");
      Trace("FAULT the master drops the framework's connection");
      DropSession();
      Deliver(*s, core::Disconnected{"connection reset", now_});
      uint64_t epoch = s->epoch;
      After(Ms(500, 10'000), [this, epoch] { Subscribe(epoch); });
      return;
    }
    case 9:
    case 10:
      return InjectStoreFault();
    case 8: {  // the operator asks for a reseed (of the leader: a standby sends it there)
      Instance* s = Acting();
      if (s == nullptr || !Chance(0.3)) return;
      Hit("fault.admin_reseed");
      Deliver(*s, core::AdminReseed{++admin_requests_, Chance(0.3), now_});
      return;
    }
    default:
      return;  // a quiet interval
  }
}

// One running member's data are corrupted behind etcd's back, in a cluster where no member's
// are yet (two corrupt members of three leave no majority to tell which data are right).
void World::InjectCorruption() {
  // Data kept on a volume come back with their member's restart in place, corruption and all.
  std::set<int> on_volumes;
  for (const auto& a : agents_) {
    for (const auto& r : a.reservations) {
      if (r.data >= 0) on_volumes.insert(r.data);
    }
  }
  std::vector<size_t> candidates;
  for (size_t i = 0; i < processes_.size(); ++i) {
    const Process& p = processes_[i];
    if (!p.alive || p.cluster == 0 || p.corrupt) continue;
    bool clean = std::none_of(processes_.begin(), processes_.end(), [&](const Process& q) {
      bool kept = q.alive || on_volumes.count(static_cast<int>(&q - processes_.data()));
      return kept && q.cluster == p.cluster && q.corrupt;
    });
    if (clean) candidates.push_back(i);
  }
  if (candidates.empty()) return;
  Process& p = processes_[candidates[Uniform(0, static_cast<int64_t>(candidates.size()) - 1)]];
  p.corrupt = true;
  Hit("fault.data_corrupted");
  Trace("FAULT the data of '" + p.task_id + "' are corrupted");
}

// The operator asks for another size (odd, within the agents), as the guide's command does.
void World::InjectResize() {
  Instance* s = Acting();
  if (s == nullptr) return;
  int size = Chance(0.5) ? 5 : (Chance(0.8) ? 3 : 1);
  Hit(fmt::format("operator.resize_to_{}", size));
  Trace(fmt::format("OPERATOR asks for {} members", size));
  largest_target_ = std::max(largest_target_, size);
  Deliver(*s, core::AdminResize{++admin_requests_, size, false, now_});
}

// The operator deploys a changed launch configuration (the scheduler restarts with it), asks for
// a rolling restart or a CA rotation (or its next phase), or resumes a stopped rollout.
void World::InjectRollout() {
  Instance* s = Acting();
  if (s == nullptr) return;
  switch (Uniform(0, 4)) {
    case 0:
      if (ha_) break;  // a redeploy changes every instance's flags at once: one instance only
      ++launch_configs_;
      Hit("operator.new_launch_config");
      Trace(fmt::format("OPERATOR redeploys the scheduler with launch configuration {}",
                        launch_configs_));
      config_.launch_config = fmt::format("sim-launch-{}", launch_configs_);
      config_.launch_summary =
          fmt::format("etcd 3.4.23 (sim launch configuration {})", launch_configs_);
      CrashScheduler(*s, /*graceful=*/true, "is redeployed");
      return;
    case 1:
      Hit("operator.rolling_restart");
      Trace("OPERATOR asks for a rolling restart");
      Deliver(*s, core::AdminRollout{++admin_requests_, core::RolloutCommand::kRestart, now_});
      return;
    case 2:
      if (ca_files_) return InjectCaFilesStep(*s);  // the shell refuses /rotate-ca (409)
      Hit("operator.rotate_ca");
      Trace("OPERATOR asks for a rotation of the members' CA");
      Deliver(*s, core::AdminRollout{++admin_requests_, core::RolloutCommand::kRotateCa, now_});
      return;
    case 3:
      if (ca_files_) return InjectCaFilesStep(*s);
      Hit("operator.rotate_ca_next");
      Trace("OPERATOR moves the CA rotation on");
      Deliver(*s, core::AdminRollout{++admin_requests_, core::RolloutCommand::kNextCaPhase, now_});
      return;
    default:
      break;
  }
  Hit("operator.rollout_resume");
  Trace("OPERATOR resumes the rollout");
  Deliver(*s, core::AdminRollout{++admin_requests_, core::RolloutCommand::kResume, now_});
}

// --tls=files: the operator redeploys the scheduler with the next step of a rotation of their
// CA (old+new with the old key, new+old with the new key, new alone), or now and then too soon
// or straight to a new CA, which the scheduler must refuse before it touches anything.
void World::InjectCaFilesStep(Instance& s) {
  if (ha_) return;  // a redeploy changes every instance's flags at once: one instance only
  const core::CaFiles now = config_.ca_files;
  core::CaFiles next;
  if (Chance(0.2)) {
    std::string fresh = fmt::format("ca-{}", cas_made_++);
    next = core::CaFiles{fresh, {fresh}, 0};
    Hit("operator.ca_files_jump");
  } else if (now.trusted.size() == 1) {
    std::string fresh = fmt::format("ca-{}", cas_made_++);
    next = core::CaFiles{now.issuer, {now.issuer, fresh}, 0};
    Hit("operator.ca_files_trust_both");
  } else {
    std::string newer = now.trusted.front();
    for (const auto& ca : now.trusted) {
      if (CaNumber(ca) > CaNumber(newer)) newer = ca;
    }
    if (now.issuer != newer) {
      next = core::CaFiles{newer, now.trusted, 0};
      Hit("operator.ca_files_new_issuer");
    } else {
      next = core::CaFiles{newer, {newer}, 0};
      Hit("operator.ca_files_drop_old");
    }
  }
  std::sort(next.trusted.begin(), next.trusted.end());
  Trace(fmt::format("OPERATOR redeploys the scheduler with CA files: issuer {}, trusting {}",
                    next.issuer, fmt::join(next.trusted, "+")));
  config_.ca_files = next;
  CrashScheduler(s, /*graceful=*/true, "is redeployed");
}

void World::InjectStoreFault() {
  switch (Uniform(0, 3)) {
    case 0:  // the connection to the store is lost for a while; the client retries
      Hit("fault.store_connection_loss");
      Trace("FAULT the store connection is lost");
      store_down_since_ = now_;
      store_down_until_ = std::max(store_down_until_, now_ + Ms(500, 20'000));
      return;
    case 1:  // the session expires: what was in flight fails, a new session follows shortly
      Hit("fault.store_session_expired");
      Trace("FAULT the store session expires");
      store_down_since_ = now_;
      store_down_until_ = std::max(store_down_until_, now_ + Ms(100, 3'000));
      return;
    case 2:
      Hit("fault.store_slow");
      Trace("FAULT the store is slow");
      store_slow_until_ = std::max(store_slow_until_, now_ + Ms(5'000, 60'000));
      return;
    default: {  // another writer touches the state node (same data, new version): a CAS conflict
      auto r = store_.Get(kStatePath);
      if (!r.ok()) return;
      Hit("fault.store_foreign_write");
      Trace("FAULT someone else writes the state node");
      if (!store_.Set(kStatePath, r->data, store::kAnyVersion).ok()) Hit("store.foreign_failed");
      return;
    }
  }
}

int World::Survivors() const {
  // A process ordered killed is an old generation's leftover, unless the scheduler still counts
  // it as a member (the kill was lost, for instance with a removal etcd then refused). One whose
  // kill reached its executor is stopping, whatever the scheduler counts: a reseed that stopped
  // the others and then lost its survivor has lost the cluster (the backup taken before it is
  // the way back).
  std::set<std::string> stored_tasks;
  if (auto stored = StoredState()) {
    for (const auto& [name, m] : stored->members) stored_tasks.insert(m.task_id);
  }
  // Kills the core has asked for that the shell has not sent yet (waiting for a state write):
  // in the calm phase the scheduler no longer crashes, so they will be sent.
  std::set<std::string> kills_queued;
  if (const Instance* acting = ActingInstance(); acting && acting->pipeline) {
    acting->pipeline->ForEachQueued([&](const core::Action& a) {
      if (const auto* k = std::get_if<core::KillTask>(&a)) kills_queued.insert(k->task_id);
    });
  }
  int n = 0;
  for (const auto& p : processes_) {
    // Data survives with a process that runs, or that its executor will start again.
    const Task& t = tasks_.at(p.task_id);
    const Agent& a = agents_[p.agent];
    bool restarts = t.executor && !t.executor->done() && a.up && a.id == t.agent_id;
    if ((!p.alive && !restarts) || p.cluster == 0) continue;
    if (tasks_.at(p.task_id).kill_ordered && !stored_tasks.count(p.task_id)) continue;
    if (t.kill_delivered || kills_queued.count(p.task_id)) continue;  // its data is given up
    const Cluster& c = clusters_.at(p.cluster);
    n += std::any_of(c.members.begin(), c.members.end(),
                     [&](const Entry& e) { return e.id == p.member_id; });
  }
  return n;
}

// A durable member's data outlive its process on its volume. At the calm, whose agents are all
// up, such a member comes back only if the core restarts it in place: certainly when it ended
// well within replace_after (the core counts from when it heard, which is later, and again from
// a restart of its own) and the scheduler holds it as the etcd member on that volume; the rest
// it may have given up (replaced, killed, forgotten), and then the data may be lost.
int World::VolumeSurvivors(bool certain) const {
  // Time for the core to hear of the end and to be offered the volume: a scheduler restart,
  // reconciliation and an allocation.
  constexpr Millis kSlack{60'000};
  std::optional<core::PersistentState> stored = StoredState();
  int n = 0;
  for (const auto& a : agents_) {
    if (!a.up) continue;
    for (const auto& r : a.reservations) {
      if (r.volume.empty() || r.data < 0) continue;
      const Process& p = processes_[r.data];
      if (p.alive || p.cluster == 0 || !Listed(p)) continue;
      const Task& t = tasks_.at(p.task_id);
      auto m = stored ? stored->members.find(p.name)
                      : std::map<std::string, core::Member>::const_iterator();
      bool held = stored && m != stored->members.end() && m->second.volume == r.volume &&
                  m->second.agent_id == a.id && m->second.member_id == p.member_id;
      // A kill of ours (of the task that ran on the data, or of a later one that did not get to
      // run, such as a restart in place stuck in staging) gives the member up.
      auto latest = held ? tasks_.find(m->second.task_id) : tasks_.end();
      bool killed = t.kill_ordered || (latest != tasks_.end() && latest->second.kill_ordered);
      bool waits = held && !killed && config_.replace_after.count() > 0 && r.lost_contact &&
                   now_ - *r.lost_contact + kSlack < config_.replace_after;
      if (!r.task.empty()) {
        // Restarted in place already: its etcd starts on the data once the task is fetched.
        const Task& restart = tasks_.at(r.task);
        if (restart.process >= 0) continue;  // a process: Survivors() counts it
        waits = held && !restart.hangs && !restart.kill_ordered && !Terminal(restart.agent_state);
      }
      if (waits == certain) ++n;
    }
  }
  return n;
}

void World::StartCalm() {
  calm_ = true;
  Trace("CALM: faults stop, partitions heal, machines come back, the store is well");
  store_down_until_ = std::min(store_down_until_, now_);
  store_slow_until_ = std::min(store_slow_until_, now_);
  for (int i = 0; i < static_cast<int>(agents_.size()); ++i) {
    if (!agents_[i].up) Reboot(i, durable_ && !agents_[i].wiped_on_return);
    SetCut(i, false, false);
  }
  for (auto& s : instances_) {
    s.zk_cut = false;
    s.mesos_cut = false;
  }
  survivors_at_calm_ = Survivors();
  Trace(fmt::format("CALM: {} member processes with data survive", survivors_at_calm_));
  if (durable_) {
    int certain = VolumeSurvivors(true);
    volume_survivors_at_calm_ = VolumeSurvivors(false);
    survivors_at_calm_ += certain;
    if (certain + volume_survivors_at_calm_ > 0) Hit("durable.data_only_on_volumes_at_calm");
    Trace(fmt::format("CALM: {} members' data wait on their volumes, {} more may be given up",
                      certain, volume_survivors_at_calm_));
  }
  Instance* s = Acting();
  if (s == nullptr || !s->core) return;  // its restart (or election) is already on its way
  if (!connected_) {
    uint64_t epoch = s->epoch;
    After(Ms(100, 1000), [this, epoch] { Subscribe(epoch); });
  }
}

// In the calm, a rollout under way finishes: no member is left with an older configuration.
// A CA rotation under way rolls every member up to three times, each replacement a minute or
// more in the model: the calm may take that much longer to see it to its end.
Millis World::CalmAllowance() const {
  const core::SchedulerCore* core = ActingCore();
  if (core == nullptr || core->state().ca.phase == core::CaPhase::kNone) return Millis(0);
  return Millis(3 * 120'000 * std::max(core->TargetSize(), 3));
}

bool World::RolloutSettled(const core::SchedulerCore& core) const {
  std::string state = core.rollout().state;
  // A CA rotation is seen to its end: the calm's operator moves it on.
  return state != "running" && state != "waiting" && core.state().ca.phase == core::CaPhase::kNone;
}

bool World::Healed() const {
  const Instance* s = subscriber_ >= 0 ? &instances_[subscriber_] : nullptr;
  if (s == nullptr || !s->core || !s->core->healthy() || !connected_) return false;
  for (const auto& [uid, c] : clusters_) {
    if (c.leader == 0) continue;
    int voters = 0, running = 0;
    bool corrupt = false;  // a corrupt voter must have been found by the hash checks and replaced
    for (const auto& e : c.members) {
      if (e.learner) continue;
      ++voters;
      for (const auto& p : processes_) {
        if (p.alive && p.cluster == uid && p.member_id == e.id && Connected(p)) {
          ++running;
          corrupt = corrupt || p.corrupt;
          break;
        }
      }
    }
    if (voters == s->core->TargetSize() && running == voters && !corrupt) {
      return RolloutSettled(*s->core);
    }
  }
  return false;
}

void World::CheckWorld() {
  WorldFacts f;
  f.ca_files = files_by_change_;
  // A rollout step adds a member's successor before it removes the member (and a scheduler that
  // stops in between leaves the extra voter to its successor to remove).
  f.cluster_size = largest_target_ + (rollouts_ ? 1 : 0);
  for (const auto& [uid, c] : clusters_) {
    ClusterFacts cf;
    cf.uid = uid;
    cf.voters = static_cast<int>(std::count_if(c.members.begin(), c.members.end(),
                                               [](const Entry& e) { return !e.learner; }));
    cf.quorum = HasQuorum(c);
    cf.reseed_survivor = uid == latest_reseed_uid_;
    cf.all_ordered_killed = true;
    for (const auto& p : processes_) {
      if (!p.alive || p.cluster != uid) continue;
      ++cf.live_processes;
      cf.launches.emplace_back(p.name, tasks_.at(p.task_id).launch.member.launch_config);
      if (!tasks_.at(p.task_id).kill_ordered) cf.all_ordered_killed = false;
    }
    f.clusters.push_back(cf);
  }
  for (const auto& [id, t] : tasks_) {
    if (Terminal(t.agent_state)) continue;
    bool runs = (t.process >= 0 && processes_[t.process].alive) ||
                (t.executor ? !t.executor->done()
                            : agents_[t.agent].up && agents_[t.agent].id == t.agent_id);
    if (runs) ++f.live_tasks_by_member[t.name];
    if (runs && !t.volume.empty()) ++f.live_tasks_by_volume[{t.agent_id, t.volume}];
  }
  auto violations = sim::CheckWorld(f);
  if (!violations.empty()) Fail(violations.front());
}

// Once the calm has healed the cluster: a reservation of this cluster on an agent that is up
// belongs to a member the core holds, else it should have been released.
std::optional<Violation> World::ReservationLeak() const {
  const core::SchedulerCore* core = ActingCore();
  if (!durable_ || core == nullptr) return std::nullopt;
  std::vector<ReservationFacts> facts;
  for (const auto& a : agents_) {
    if (!a.up) continue;
    for (const auto& r : a.reservations) {
      if (r.cluster != config_.framework_name) continue;
      ReservationFacts f{a.id, r.label_volume, r.member, false, !r.task.empty()};
      for (const auto& [name, m] : core->state().members) {
        f.claimed = f.claimed || (m.volume == r.label_volume && m.agent_id == a.id);
      }
      facts.push_back(std::move(f));
    }
  }
  return CheckReservations(facts);
}

// The calm has healed the cluster; with durable members, what was reserved for members no longer
// ours must be released too: within a reconcile interval (a durable core looks at every agent's
// offers once per interval, whatever it remembers) and a minute for the offers and the release.
bool World::HealedAndReleased() {
  const Millis leak_window = std::chrono::duration_cast<Millis>(config_.reconcile_interval) + 60s;
  std::optional<Violation> leak = ReservationLeak();
  if (!leak) return true;
  if (!leak_wait_since_) {
    leak_wait_since_ = now_;
    Hit("durable.calm_waits_for_release");
    Trace("CALM: healed, but a reservation is not released yet: " + leak->detail);
  }
  if (now_ - *leak_wait_since_ >= leak_window) Fail(*leak);
  return false;
}

RunResult World::Run() {
  Trace(fmt::format("seed {}: {} agents, cluster size {}, auto-reseed {}, reseed timeout {} ms",
                    seed_, agents_.size(), config_.cluster_size, config_.auto_reseed,
                    config_.reseed_timeout.count()));
  if (durable_) {
    Hit("durable.seed");
    Trace(fmt::format("durable members: role {}, replace after {} ms", config_.role,
                      config_.replace_after.count()));
  }
  if (ha_) {
    After(Millis(0), [this] { ElectionStep(); });
  } else {
    StartScheduler(instances_[0]);
  }
  // The periodic machinery.
  After(kTickInterval, [this] { TickCore(); });
  After(kRaftStep, [this] { RaftStep(); });
  After(kMesosStep, [this] { MesosStep(); });
  After(kAllocationInterval, [this] { Allocate(); });
  if (options_.faults) NextFault();
  Time chaos_end = start_ + options_.chaos;
  Time calm_end = chaos_end + options_.calm_budget;
  while (!done_ && !queue_.empty() && result_.steps < options_.max_steps) {
    Scheduled next = queue_.top();
    queue_.pop();
    now_ = next.at;
    if (!calm_ && now_ >= chaos_end) StartCalm();
    next.fn();
    ++result_.steps;
    Hash(result_.steps);
    if (done_) break;
    CheckWorld();
    if (done_ || !calm_) continue;
    if (survivors_at_calm_ > 0 && Healed()) {
      if (!HealedAndReleased()) continue;
      Trace("CALM: healed");
      done_ = true;
    } else if (survivors_at_calm_ == 0 && bootstrapped_again_ && Healed()) {
      if (!HealedAndReleased()) continue;
      // Nothing had run etcd (CheckBootstrapAgain holds the core to that): nothing was lost.
      Trace("CALM: a generation that never ran etcd was started again, and healed");
      done_ = true;
    } else if (survivors_at_calm_ == 0 && volume_survivors_at_calm_ > 0 && Healed()) {
      if (!HealedAndReleased()) continue;
      // Data only on volumes the core could have given up on, and it did not: restarted there.
      Hit("durable.healed_from_volumes");
      Trace("CALM: healed from members' data on their volumes");
      done_ = true;
    } else if (survivors_at_calm_ == 0 && ActingCore() && ActingCore()->total_loss()) {
      if (launched_in_calm_) {
        Fail({"launch-after-total-loss",
              "a member was launched after every member's data was gone"});
      } else {
        Trace("CALM: total loss reported, as expected");
        result_.total_loss = true;
        done_ = true;
      }
    } else if (now_ >= calm_end + CalmAllowance()) {
      if (survivors_at_calm_ > 0) {
        Fail({"calm-not-healed",
              fmt::format("{} of budget passed without {} healthy voters ({})",
                          options_.calm_budget.count(), options_.cluster_size,
                          ActingCore() ? ActingCore()->health_reason() : "scheduler down")});
      } else {
        Fail({"calm-total-loss-not-reported",
              "every member's data is gone but the core does not report total loss"});
      }
    }
  }
  if (!done_) {
    Fail({"step-bound", fmt::format("the run did not finish within {} steps", options_.max_steps)});
  }
  result_.simulated = Millis((now_ - start_) / 1ms);
  result_.last_events.assign(tail_.begin(), tail_.end());
  result_.coverage = coverage_;
  return std::move(result_);
}

}  // namespace

bool DurableInSeed(uint64_t seed) { return DurableForSeed(seed).durable; }

RunResult RunSeed(const SimOptions& options, uint64_t seed) {
  World world(options, seed);
  return world.Run();
}

}  // namespace etcd_mesos::sim
