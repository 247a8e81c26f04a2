// The vocabulary of the scheduler core: its configuration, the state it persists, the events it
// is told (facts) and the actions it asks for (intentions). The core is a plain object,
// `Handle(Event) -> Actions`: it does no I/O, reads no clock (time arrives in events), starts no
// threads and never blocks. The shell (src/scheduler/shell) turns the world into events and
// carries out the actions; the simulator (sim/) does the same with a simulated world.
//
// Threading: plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/result.h"
#include "mesos/v1.h"

namespace etcd_mesos::scheduler {

using Clock = std::chrono::steady_clock;
using Time = Clock::time_point;  // the shell's monotonic clock; only differences matter
using Millis = std::chrono::milliseconds;

// With --tls=files, the operator's CA files as members are launched from them: the SHA-256
// fingerprints of the CA that issues (the first of --tls-ca-cert) and of every CA trusted (all
// of it, sorted). `changes` counts the times they changed since they were first recorded; each
// change rolls every member once (launch suffix "+filesN"). Empty `issuer`: not recorded.
struct CaFiles {
  std::string issuer;
  std::vector<std::string> trusted;
  uint64_t changes = 0;
  bool SameCas(const CaFiles& o) const { return issuer == o.issuer && trusted == o.trusted; }
};

struct CoreConfig {
  std::string framework_name = "etcd-default";  // etcd-<cluster-name>
  // New clusters serve TLS (--tls auto or files). A running cluster keeps the mode it was
  // started with (its members' `tls`); a fresh start or a restore takes this one.
  bool tls = false;
  int cluster_size = 3;
  std::string role = "*";
  bool single_member_per_agent = true;
  bool auto_reseed = true;
  Millis reseed_timeout{240'000};      // continuous livelock before an automatic reseed
  Millis probe_interval{1'000};        // health probes of every member
  Millis reconcile_interval{900'000};  // periodic implicit reconciliation
  // Tasks in an uncertain state (UNREACHABLE, UNKNOWN) are reconciled explicitly this often: an
  // agent that re-registers after a master restart sends nothing unasked, and executors report
  // changes of state only.
  Millis uncertain_reconcile_interval{10'000};
  Millis reconcile_timeout{30'000};  // explicit reconciliation must settle within this
  Millis bootstrap_gather{3'000};    // wait for offers from enough agents to bootstrap at once
  Millis staging_timeout{180'000};   // a task not RUNNING by then is killed
  Millis learner_timeout{120'000};   // a learner not promoted by then is removed and killed
  Millis dead_member_grace{10'000};  // a member unreachable this long with its task gone is dead
  // Durable members (a role other than "*", which Mesos reserves nothing for): each member's
  // resources are reserved and its data dir is a persistent volume; a member whose task ends is
  // relaunched in place on them (same etcd member, same data) and replaced the usual way only
  // once replace_after has passed without that (0: at once).
  Millis replace_after{300'000};
  bool durable() const { return role != "*"; }
  double refuse_seconds = 15;  // decline filter when nothing is needed
  // Resources of one member's task, and of its executor (both must fit in one offer).
  double task_cpus = 1, task_mem = 1024, task_disk = 4096;
  double executor_cpus = 0.1, executor_mem = 32;
  // Backups (--backup-dir set): periodic snapshots every backup_interval (0: none periodic), and
  // one before every reseed and before removing a voter when only a quorum of voters is left.
  bool backups = false;
  Millis backup_interval{1'800'000};
  Millis backup_timeout{120'000};  // a backup not answered by then counts as failed
  // Before a risky membership change, a backup finished (or failed) within this long will do.
  Millis backup_fresh{300'000};
  // Maintenance. Members run with this backend quota (etcd's --quota-backend-bytes): past it
  // etcd raises NOSPACE and refuses writes until it is disarmed, which is done only once every
  // database is below kNoSpaceClearShare of it. A member whose database is at least
  // defrag_min_bytes and whose free share (1 - in use / size) passes defrag_threshold is
  // defragmented (0: never by itself; POST /defrag still does).
  uint64_t quota_backend_bytes = 2ull << 30;
  double defrag_threshold = 0.5;
  uint64_t defrag_min_bytes = 64ull << 20;
  Millis maintenance_retry{300'000};  // after a maintenance run that failed
  // Rollouts. What a member is launched with (etcd's version, its flags, the task's resources) as
  // a fingerprint ("": unknown, no rollouts) and in words; members launched otherwise are
  // replaced one at a time. A step first adds the new member (a spare agent's offer within
  // rollout_surge_wait), else replaces the old one in place; a step not done within
  // rollout_step_timeout stops the rollout.
  std::string launch_config;
  std::string launch_summary;
  std::string etcd_version;  // of the etcd binary served ("": unknown, no version rules)
  Millis rollout_surge_wait{60'000};
  Millis rollout_step_timeout{600'000};
  // A TLS member whose certificates expire within this is replaced by a rollout (its successor
  // gets new ones): renewal without losing quorum.
  Millis cert_renew_before{30LL * 24 * 3600 * 1000};
  // With --tls=files: the CA files' fingerprints (issuer and trusted; `changes` unused). The
  // shell checks a change against the recorded ones (CaFilesChangeRefused) before the core
  // starts; the core records it and rolls the members to it.
  CaFiles ca_files;
  // Corruption checks: every hash_check_interval (0: never) the voters' HashKV at one revision
  // they have all applied is compared; a member in the minority is marked corrupt and replaced.
  Millis hash_check_interval{300'000};
};

// A NOSPACE alarm is disarmed only once every member's database is below this share of the quota.
inline constexpr double kNoSpaceClearShare = 0.9;

// One etcd member as the scheduler knows it: its task and what etcd says about it.
struct Member {
  std::string name;     // etcd-<n>
  std::string task_id;  // "<name> <host> <peer port> <client port> <reseed port>"
  std::string agent_id;
  std::string host;  // the agent's address (an IP, as etcd 3.4 needs)
  uint16_t peer_port = 0, client_port = 0, reseed_port = 0;
  uint64_t member_id = 0;   // etcd's id, 0 until known
  uint64_t generation = 0;  // the reseed generation it was launched in
  bool learner = false;
  bool initial = false;  // launched as part of a static bootstrap (not added as a learner)
  // Durable members: the id of its persistent volume (its data dir), on agent_id, and how many
  // times it was restarted in place on it (the task id's " r<N>" suffix). "" : in the sandbox.
  std::string volume;
  uint32_t restarts = 0;
  mesos::TaskState task_state = mesos::TASK_STAGING;
  // The launch configuration it runs (CoreConfig::launch_config, with the rolling restart count),
  // and the etcd version it last reported (kept: a standby and a restarted scheduler know it).
  std::string launch_config;
  std::string etcd_version;
  // TLS: the member serves its client and peer ports with certificates (https URLs); set at
  // launch from the cluster's mode and kept for its life. `hostname` is the agent's (a subject
  // alternative name of its certificates, with `host`); `cert_not_after` the expiry of the
  // certificates it was issued, in Unix seconds (0: none issued yet; issued once per task).
  bool tls = false;
  std::string hostname;
  int64_t cert_not_after = 0;
  // Not persisted: what the latest probes said.
  bool reachable = false;
  bool healthy = false;
  uint64_t leader = 0;
  uint64_t raft_index = 0;
  uint64_t raft_term = 0;
  uint64_t revision = 0;        // etcd's KV revision as this member has applied it
  uint64_t db_size = 0;         // bytes of its database file
  uint64_t db_size_in_use = 0;  // of which in use; the rest is free pages a defrag gives back
  bool nospace_alarm = false;   // etcd reports the NOSPACE alarm (raised by any member)
  bool corrupt_alarm = false;   // etcd reports the CORRUPT alarm
  std::optional<Time> launched_at;
  std::optional<Time> last_reachable;
  std::optional<Time> learner_since;
  std::optional<Time> stray_since;  // answering, but neither in etcd's list nor following
  // Durable members: since when etcd's own view has it cut off: its leader has no connection
  // to it (PeerView) and it does not answer the scheduler either, though Mesos may still say
  // RUNNING (an agent is marked unreachable only after minutes). Cleared when it answers.
  std::optional<Time> peer_lost_since;

  std::string PeerUrl() const;
  std::string ClientUrl() const;
  std::string ReseedUrl() const;
};

struct Counters {
  uint64_t launched_servers = 0;
  uint64_t failed_servers = 0;
  uint64_t lost_servers = 0;
  uint64_t cluster_livelocks = 0;
  uint64_t cluster_reseeds = 0;
  uint64_t reseed_attempts = 0;
  uint64_t members_added = 0;
  uint64_t members_promoted = 0;
  uint64_t members_removed = 0;
  uint64_t rollouts_done = 0;
  uint64_t rollouts_stopped = 0;
  uint64_t members_rolled = 0;  // members replaced by a rollout
};

// etcd KV revisions, for what a reseed may lose: a reseed keeps the survivor's data, so writes
// other members had applied past the survivor's revision are gone. The scheduler only knows the
// revisions its probes saw (every probe interval): writes acknowledged after the last probe
// before the majority was lost may be gone too.
struct Revisions {
  uint64_t highest_seen = 0;          // the highest any member reported, this generation
  uint64_t last_reseed_survivor = 0;  // the last reseed's survivor's revision (0: none yet)
  uint64_t last_reseed_highest = 0;   // highest_seen when that reseed happened
};

// A reseed under way. It is written before the reseed's first kill and before each survivor is
// asked to stand alone, so that a scheduler that dies mid-reseed finishes it after its restart
// instead of forgetting which members it stopped (they may come back and form the old cluster
// again next to the reseeded one).
struct ReseedRun {
  std::vector<std::string> candidates;  // survivors, best raft index first
  size_t next = 0;                      // candidates[next - 1] is the one asked (when next > 0)
  bool manual = false;                  // the operator asked for it
  // The revisions when candidates[next - 1] was asked (its own, and the highest any member
  // reported): once it stands alone it takes writes again, so its revision then is not what it
  // kept.
  uint64_t asked_revision = 0;
  uint64_t highest_revision = 0;
};

// What the scheduler writes to its store (ZooKeeper or a directory) and reads after a restart.
// The rotation of the members' CA (POST /rotate-ca, --tls=auto), as three rollouts so that every
// member can talk to every other throughout: first every member comes to trust the old and the
// new CA (certificates still of the old one); then every member gets certificates of the new CA;
// then every member trusts the new CA only. After each of the first two the rotation waits for
// the operator (POST /rotate-ca/next): clients must first trust the new CA, then hold
// certificates of it. `generation` counts the rotations finished (0: the CA made at the first
// start); the shell keeps the CAs themselves and reads the phase from here.
enum class CaPhase { kNone, kTrustBoth, kNewIssuer, kDropOld };
std::string_view CaPhaseName(CaPhase phase);  // "none", "trust-both", "new-issuer", "drop-old"
struct CaRotation {
  uint64_t generation = 0;
  CaPhase phase = CaPhase::kNone;
};

struct PersistentState {
  std::optional<std::string> framework_id;
  std::map<std::string, Member> members;  // by name
  uint64_t next_member = 1;
  uint64_t generation = 0;    // advanced by every reseed and every fresh start
  bool bootstrapped = false;  // a cluster was ever started in this generation
  // A member of this generation ran etcd (its task was RUNNING, or it answered a probe): the
  // cluster may hold data. A generation whose members all failed before that holds none, and is
  // bootstrapped again rather than declared lost.
  bool served = false;
  // The backup this generation was restored from (empty: none): bootstrapped again, it is
  // restored again.
  std::string restored_from;
  std::string reseed_token;
  // The token that guards the admin API's commands when the operator gives none (generated at
  // first start by the shell; the core only carries it, so that every scheduler instance and
  // restart keeps the one the operators were told of).
  std::string admin_token;
  Counters counters;
  Revisions revisions;
  // A restore the operator asked for and that has not launched yet: the backup file's name in
  // --backup-dir, launched as the first member of a fresh one-member cluster.
  std::string restore_snapshot;
  std::optional<ReseedRun> reseed;  // set from the reseed's start until its outcome
  // The cluster size asked for at runtime (POST /cluster-size), and the --cluster-size it was
  // asked under. A scheduler started with another --cluster-size follows the flag (the operator
  // changed it since); one started with the same flag keeps what was asked. 0: none asked.
  int target_size = 0;
  int target_flag = 0;
  // The leader's verdict on the cluster's health as it last turned (written with the next state
  // write, not on every probe): what a standby, which does not probe, shows.
  bool healthy = false;
  std::string health_reason;
  // Rollouts: the launch configuration the members are rolled to (once one is under way), the
  // reason it stopped ("" while it runs or when done), the number of members it had to replace
  // at its start, and the rolling restarts asked (POST /rollout/restart): each makes every
  // member's configuration stale.
  std::string rollout_target;
  std::string rollout_stopped;
  uint64_t rollout_total = 0;
  bool rollout_done = false;
  uint64_t restarts = 0;
  CaRotation ca;
  CaFiles ca_files;
  // The operator asked for a teardown (POST /teardown, `etcd-mesos-scheduler teardown`): kept so
  // that a scheduler restarted halfway finishes it rather than healing the cluster back.
  bool tearing_down = false;
};

// One backup written to --backup-dir, as the shell reports it.
struct BackupDone {
  std::string name;  // file name in --backup-dir
  uint64_t size = 0;
  uint64_t revision = 0;
  std::string member;
  std::string sha256;     // of the whole file, as `sha256sum` prints it
  int64_t unix_time = 0;  // UTC seconds, as in the name (data from the shell, not a clock read)
};

// ---- Events: facts the shell reports ---------------------------------------------------------

struct Started {
  PersistentState state;
  Time now;
  // The newest backup already in --backup-dir and how old it is, so that a restarted scheduler
  // does not back up at once (nor wait a full interval when the last one is old).
  std::optional<BackupDone> newest_backup;
  std::optional<Millis> newest_backup_age;
};
struct Subscribed {
  std::string framework_id;
  Time now;
};
struct Disconnected {
  std::string reason;
  Time now;
};
struct OffersReceived {
  std::vector<mesos::Offer> offers;
  Time now;
};
struct OfferRescinded {
  std::string offer_id;
  Time now;
};
struct TaskUpdate {
  mesos::TaskStatus status;
  Time now;
};
struct Tick {
  Time now;
  // The wall clock, Unix seconds (0: not known, as in the simulator): what certificates' expiry
  // is judged against.
  int64_t unix_now = 0;
};

// What one member said to a probe (maintenance status + health), or why it could not be asked.
struct MemberProbe {
  uint64_t member_id = 0;
  uint64_t leader = 0;
  uint64_t raft_index = 0;
  uint64_t raft_term = 0;
  bool is_learner = false;
  bool healthy = false;
  uint64_t revision = 0;  // etcd's KV revision as this member has applied it (last: positional
                          // initializers of the fields above stay valid)
  uint64_t db_size = 0;
  uint64_t db_size_in_use = 0;
  bool nospace_alarm = false;
  bool corrupt_alarm = false;
  std::string version;  // etcd's server version, "3.4.23"
};
struct ProbeResult {
  std::string name;
  Result<MemberProbe> probe;
  Time now;
};

// etcd's member list and whether a linearizable read succeeded, asked of one member.
struct EtcdMember {
  uint64_t id = 0;
  std::string name;
  std::vector<std::string> peer_urls;
  bool is_learner = false;
};
struct ClusterView {
  std::vector<EtcdMember> members;
  bool linearizable_read_ok = false;
};
struct ClusterProbeResult {
  Result<ClusterView> view;
  Time now;
  uint64_t epoch = 0;  // echoes ProbeCluster::epoch
};

// kMoveLeader hands leadership to `member_id` (etcd's MoveLeader, sent to the leader).
enum class MembershipOp { kAddLearner, kPromote, kRemove, kMoveLeader };
struct MembershipResult {
  MembershipOp op;
  std::string name;        // our member's name ("" for a removal of a stranger)
  uint64_t member_id = 0;  // the id added (kAddLearner) or acted on
  Status status;
  Time now;
};
struct ReseedResult {
  std::string name;
  Result<uint64_t> raft_index;
  Time now;
};
struct PersistResult {
  Status status;
  Time now;
};
struct BackupResult {
  uint64_t id = 0;  // echoes TakeBackup::id
  Result<BackupDone> backup;
  Time now;
};

// Operator commands from the admin API. Each carries an id that the answer echoes.
struct AdminReseed {
  uint64_t request = 0;
  bool force = false;
  Time now;
};
struct AdminStartFresh {
  uint64_t request = 0;
  Time now;
};
// POST /backup: a snapshot now.
struct AdminBackup {
  uint64_t request = 0;
  Time now;
};
// POST /restore?name= (or --restore-from at start): the shell has checked the file's checksums;
// the core decides whether a restore is allowed (total loss, or nothing ever started).
struct AdminRestore {
  uint64_t request = 0;
  std::string snapshot;  // file name in --backup-dir
  Time now;
};

// POST /cluster-size?n=N[&force=1]: a new target size, grown or shrunk to one member at a time.
struct AdminResize {
  uint64_t request = 0;
  int size = 0;
  bool force = false;  // an even size
  Time now;
};

// POST /rollout/restart: replace every member once (a rolling restart); POST /rollout/resume: go
// on with a rollout that stopped at a failure; POST /rotate-ca: rotate the members' CA (the shell
// has made and stored the next CA before it asks); POST /rotate-ca/next: its next phase.
enum class RolloutCommand { kRestart, kResume, kRotateCa, kNextCaPhase };
struct AdminRollout {
  uint64_t request = 0;
  RolloutCommand command;
  Time now;
};

// Maintenance of the members' databases: compaction of the history (to a revision), defragmentation
// of one member (it serves nothing while it runs), disarming the NOSPACE alarm.
enum class MaintenanceOp { kCompact, kDefragment, kDisarmNoSpace };
std::string_view MaintenanceOpName(MaintenanceOp op);  // "compact", "defragment", "disarm NOSPACE"
struct MaintenanceResult {
  uint64_t id = 0;  // echoes Maintain::id
  MaintenanceOp op;
  std::string member;
  Status status;
  Time now;
};
// POST /defrag: defragment every member now, followers first and the leader last.
struct AdminDefrag {
  uint64_t request = 0;
  Time now;
};

// What one member's HashKV answered: the hash of its KV history up to the revision asked, and the
// revision its history is compacted to (hashes are comparable only at the same one).
struct KvHash {
  uint32_t hash = 0;
  int64_t compact_revision = 0;
};
struct MemberHash {
  std::string member;
  Result<KvHash> hash;
};
struct HashCheckResult {
  uint64_t id = 0;  // echoes CheckHashes::id
  uint64_t revision = 0;
  std::vector<MemberHash> hashes;  // one per member asked
  Time now;
};

// POST /teardown: kill every task, release every volume and reservation, then remove the state and
// tear the framework down (FinishTeardown). `etcd-mesos-scheduler teardown` run with no scheduler
// up asks with kCommandLineTeardown: no client waits for the answer.
inline constexpr uint64_t kCommandLineTeardown = ~uint64_t{0};
struct AdminTeardown {
  uint64_t request = 0;
  Time now;
};

// The leader's connections to its peers (etcd_network_active_peers), asked for by ProbePeers:
// etcd member id -> whether a connection to it is active.
struct PeerView {
  std::string name;  // the member asked (the leader)
  Result<std::map<uint64_t, bool>> active;
  Time now;
};

// The shell issued a member's certificates (on its executor's request, once per task): their
// expiry, in Unix seconds, is kept with the member.
struct CertificateIssued {
  std::string task_id;
  int64_t not_after = 0;
};

using Event =
    std::variant<Started, Subscribed, Disconnected, OffersReceived, OfferRescinded, TaskUpdate,
                 Tick, ProbeResult, ClusterProbeResult, MembershipResult, ReseedResult,
                 PersistResult, AdminReseed, AdminStartFresh, BackupResult, AdminBackup,
                 AdminRestore, AdminResize, MaintenanceResult, AdminDefrag, AdminRollout,
                 HashCheckResult, CertificateIssued, AdminTeardown, PeerView>;

// ---- Actions: intentions the shell carries out, in order -----------------------------------

// Launch one member's task on an offer. The shell builds the TaskInfo (name = task_id, executor,
// artifacts, resources of the config, ports) and the executor's task config from these fields.
struct LaunchMember {
  std::string offer_id;
  Member member;
  std::string initial_cluster;  // "name=http://ip:port,..."
  bool new_cluster = false;     // --initial-cluster-state new (bootstrap) or existing (join)
  std::string cluster_token;
  // Non-empty: the backup (file name in --backup-dir) the member's data dir is restored from
  // before etcd first starts, as a one-member new cluster.
  std::string restore_snapshot;
  // A durable member's first launch: RESERVE its resources (labelled by ReservationLabels) and
  // CREATE its volume, in the same ACCEPT. A restart in place launches on what the offer holds.
  bool reserve = false;
};
// DESTROY the volumes and UNRESERVE the resources of members that are no longer ours to run
// (replaced, reseeded away, torn down), all taken from one offer.
struct ReleaseResources {
  std::string offer_id;
  std::string agent_id;
  std::vector<mesos::Resource> destroy;    // persistent volumes, as offered
  std::vector<mesos::Resource> unreserve;  // reserved resources without a volume, as offered
  std::string why;
};
struct DeclineOffer {
  std::string offer_id;
  double refuse_seconds = 5;
};
struct KillTask {
  std::string task_id;
  std::string agent_id;
  std::string why;
};
struct ReconcileTasks {
  std::vector<std::pair<std::string, std::string>> tasks;
};  // id, agent; empty = implicit
struct Revive {};
struct Suppress {};
struct ProbeMember {
  std::string name;
  std::string client_url;
};
// Acknowledges a status update that carries a uuid (Mesos resends it until then). The core asks
// for it after everything the update led to, its state write included: the pipeline holds it
// until that write is done, and drops it if the write failed, so that Mesos resends the update.
struct AcknowledgeUpdate {
  std::string agent_id;
  std::string task_id;
  std::string uuid;  // the update's uuid, bytes as Mesos sent them
};
// Durable members: asks the leader which peers it is connected to (GET /metrics), when a member
// whose task may run does not answer; answered by PeerView.
struct ProbePeers {
  std::string name;
  std::string client_url;
};
struct ProbeCluster {
  std::vector<std::string> client_urls;  // ask any of them, in order
  // The core's membership epoch when it asked; the answer echoes it. A member list asked for
  // before a membership change completed is stale (it may still list a member just removed)
  // and is dropped, so that no change is made twice.
  uint64_t epoch = 0;
};
struct ChangeMembership {
  MembershipOp op;
  std::string name;
  uint64_t member_id = 0;                // promote/remove
  std::string peer_url;                  // add
  std::vector<std::string> client_urls;  // members to send the request to, in order
};
struct TriggerReseed {
  std::string name;
  std::string reseed_url;
  std::string token;
};
// Writes the whole persistent state; the shell runs no later action of the same batch until the
// write is done (write-ahead: a launch is on record before it happens).
struct Persist {
  PersistentState state;
};
// Stream a v3 snapshot from one member into --backup-dir; answered by BackupResult.
struct TakeBackup {
  uint64_t id = 0;
  std::string member;
  std::string client_url;
  std::string reason;
};
// One maintenance step on one member; answered by MaintenanceResult. `revision`: kCompact's.
struct Maintain {
  uint64_t id = 0;
  MaintenanceOp op;
  std::string member;
  std::string client_url;
  uint64_t revision = 0;
};
// HashKV of every member listed at `revision` (all have applied it); answered by one
// HashCheckResult.
struct CheckHashes {
  uint64_t id = 0;
  uint64_t revision = 0;
  std::vector<std::pair<std::string, std::string>> members;  // name, client URL
};
struct AnswerAdmin {
  uint64_t request = 0;
  int http_status = 200;
  std::string message;
};
// A teardown has done what it can: every task ended, every volume and reservation released, or
// the wait for them (SchedulerCore::kTeardownWait) ran out and `left_behind` says what remains.
// The shell removes the scheduler's records from the store, sends TEARDOWN, and exits.
struct FinishTeardown {
  std::string summary;
  std::vector<std::string> left_behind;
};
// For the log, the status page's timeline and each member's history. `kind` groups notes for the
// timeline's filter: session, election, health, livelock, bootstrap, heal, task, reseed, backup,
// restore, resize, admin, store. `member`: the member the note is about, if one.
struct Note {
  std::string level;
  std::string message;
  std::string kind = "";
  std::string member = "";
};

using Action = std::variant<LaunchMember, DeclineOffer, KillTask, ReconcileTasks, Revive, Suppress,
                            ProbeMember, ProbeCluster, ChangeMembership, TriggerReseed, Persist,
                            AnswerAdmin, Note, TakeBackup, Maintain, CheckHashes, ReleaseResources,
                            FinishTeardown, ProbePeers, AcknowledgeUpdate>;
using Actions = std::vector<Action>;

// TaskID and TaskInfo.name: exactly "<etcd ident> <hostname> <peer> <client> <reseed>", as the
// on-call guide reads them, and " r<N>" for the Nth restart in place of a durable member.
std::string FormatTaskId(const Member& member);
// The inverse; kInvalidArgument for anything that is not five fields with valid ports (and an
// optional r<N>).
Result<Member> ParseTaskId(std::string_view task_id);

// Durable members' reservations carry these labels, so that the scheduler knows its own
// resources in any offer after any restart of itself, the master or an agent.
inline constexpr const char* kLabelCluster = "etcd-mesos.cluster";
inline constexpr const char* kLabelGeneration = "etcd-mesos.generation";
inline constexpr const char* kLabelMember = "etcd-mesos.member";
inline constexpr const char* kLabelVolume = "etcd-mesos.volume";  // the member's volume id
// "<framework name>.g<generation>.<member>": unique per role and agent, as Mesos needs.
std::string VolumeIdOf(const std::string& framework_name, const Member& member);

}  // namespace etcd_mesos::scheduler
