// SchedulerCore: every decision of etcd-mesos-scheduler, as a pure state machine.
//
// It bootstraps the cluster (all members at once as one static initial cluster when offers from
// enough distinct agents are in hand, else what it can place, then grows), keeps it at its size
// one membership change at a time (remove the dead, add a learner, launch it, promote it once in
// sync), watches health through probes, counts livelock episodes, reseeds from the survivor with
// the highest raft index after --reseed-timeout of continuous livelock (or when the operator
// asks), and refuses to invent an empty cluster after total loss. While disconnected from the
// master, or until reconciliation has settled, it launches nothing, changes no membership and
// reseeds nothing.
//
// Threading: a plain object; not thread-safe; owned by one event loop (the shell's or the
// simulator's).
#pragma once

#include <deque>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "scheduler/core/types.h"

namespace etcd_mesos::scheduler {

// What the core knows of backups, for /stats, /metrics and the status page.
struct BackupStatus {
  uint64_t taken = 0;              // successful since the scheduler started
  uint64_t failures = 0;           // failed or timed out since the scheduler started
  std::optional<BackupDone> last;  // the newest successful one (also one found at start)
  std::string last_error;
  std::optional<std::string> running;  // "etcd-2 (periodic)" while one is in flight
};

// What the core knows of database maintenance (compaction, defragmentation, the NOSPACE and
// CORRUPT alarms), for /stats, /metrics and the console.
struct MaintenanceStatus {
  uint64_t runs = 0;                  // maintenance runs started
  uint64_t members_defragmented = 0;  // defragmentations that succeeded
  uint64_t nospace_alarms = 0;        // NOSPACE episodes seen
  uint64_t nospace_cleared = 0;       // NOSPACE alarms disarmed by the scheduler
  uint64_t failures = 0;              // runs that stopped at a failure
  std::string last_error;
  std::string running;   // what the run in flight does, "" when none
  bool nospace = false;  // a member reports the NOSPACE alarm now
  bool corrupt = false;  // a member reports the CORRUPT alarm now
};

// A rollout as the admin API shows it (GET /rollout, /stats, the console).
struct RolloutView {
  std::string state;                 // "idle", "waiting", "running", "stopped", "done"
  std::string target_summary;        // what the members are rolled to, in words
  uint64_t total = 0;                // members it had to replace at its start
  std::vector<std::string> pending;  // members still launched otherwise, the leader last
  std::string step;                  // what the step under way does ("" when none)
  std::string reason;                // why it stopped, or what it waits for
};

// What the core knows of its corruption checks (HashKV compared across the voters), for /stats,
// /metrics and the console.
struct HashCheckStatus {
  uint64_t checks = 0;           // hash checks answered
  uint64_t mismatches = 0;       // checks in which some member disagreed with the majority
  uint64_t members_corrupt = 0;  // members marked corrupt (each counted once)
  uint64_t last_revision = 0;    // the revision the last check compared at (0: none yet)
  std::string last_result;       // what the last check found
  std::optional<Time> last_check;
};

// A teardown as the admin API shows it (/stats, the console, the CLI's progress).
struct TeardownView {
  bool active = false;
  size_t tasks = 0;       // members whose task has not ended yet
  size_t volumes = 0;     // volumes (durable members) not released yet
  size_t confirming = 0;  // agents released on, until an offer without the volume confirms it
  uint64_t released = 0;  // volumes released so far (by this scheduler process)
  bool finished = false;  // FinishTeardown was given
};

class SchedulerCore {
 public:
  explicit SchedulerCore(CoreConfig config);

  Actions Handle(const Event& event);

  // Read-only views for the admin API and the tests.
  const CoreConfig& config() const { return config_; }
  const PersistentState& state() const { return state_; }
  bool connected() const { return connected_; }
  bool reconciling() const { return reconciling_; }
  bool healthy() const { return healthy_; }
  bool livelocked() const { return livelock_since_.has_value(); }
  bool total_loss() const { return total_loss_; }
  bool reseeding() const { return state_.reseed.has_value(); }
  const std::string& health_reason() const { return health_reason_; }
  // The cluster size to keep: asked at runtime (POST /cluster-size), else --cluster-size.
  int TargetSize() const;
  // Advances with every completed membership change and reseed; see ProbeCluster::epoch.
  uint64_t membership_epoch() const { return membership_epoch_; }
  const BackupStatus& backups() const { return backup_status_; }
  const MaintenanceStatus& maintenance() const { return maintenance_status_; }
  const HashCheckStatus& hash_checks() const { return hash_status_; }
  // Members a hash check found in the minority, until they are removed: never a reseed survivor
  // nor a backup source.
  const std::set<std::string>& corrupt_members() const { return corrupt_; }
  // A reseed (started or asked for) waits for the backup in flight before it begins.
  bool reseed_waiting_for_backup() const { return reseed_waiting_.has_value(); }
  RolloutView rollout() const;
  TeardownView teardown() const;
  // How long a teardown waits for tasks to end and volumes to be released before it finishes
  // anyway and says what it left behind (an agent that is down may never answer).
  static constexpr Millis kTeardownWait{120'000};
  // The launch configuration members are launched with now: --launch_config and the rolling
  // restarts asked.
  std::string EffectiveLaunch() const;
  // Recent notes (newest last), for the status page.
  const std::deque<Note>& notes() const { return notes_; }

 private:
  struct PendingAdd {  // a learner being added for an offer we hold meanwhile
    std::string offer_id;
    Member member;
    std::optional<Time> first_refused;  // etcd said "not yet" (Unavailable) first then
    std::optional<Time> retry_at;       // set while waiting to ask again; nothing in flight
  };
  struct InFlight {  // the one membership change allowed at a time
    MembershipOp op;
    std::string name;
    Time since;
  };

  void OnStarted(const Started& e, Actions& out);
  void AdoptCaFiles(Actions& out);
  void OnSubscribed(const Subscribed& e, Actions& out);
  void OnDisconnected(const Disconnected& e, Actions& out);
  void OnOffers(const OffersReceived& e, Actions& out);
  void OnRescinded(const OfferRescinded& e, Actions& out);
  void OnTaskUpdate(const TaskUpdate& e, Actions& out);
  void OnTick(const Tick& e, Actions& out);
  void OnProbe(const ProbeResult& e, Actions& out);
  void OnClusterProbe(const ClusterProbeResult& e, Actions& out);
  void OnMembership(const MembershipResult& e, Actions& out);
  void OnReseed(const ReseedResult& e, Actions& out);
  void OnPersist(const PersistResult& e, Actions& out);
  void OnAdminReseed(const AdminReseed& e, Actions& out);
  void OnAdminStartFresh(const AdminStartFresh& e, Actions& out);
  void OnAdminResize(const AdminResize& e, Actions& out);
  bool ShrinkByOne(Time now, Actions& out);
  void OnBackupResult(const BackupResult& e, Actions& out);
  void OnAdminBackup(const AdminBackup& e, Actions& out);
  void OnAdminRestore(const AdminRestore& e, Actions& out);

  // Teardown (teardown.cc): every task killed, each durable member's volume and reservations
  // released when its agent offers them back (and the release confirmed by a later offer
  // without them), then FinishTeardown; within kTeardownWait, after which it finishes anyway
  // and names what it left behind. Nothing else runs meanwhile.
  void OnAdminTeardown(const AdminTeardown& e, Actions& out);
  void BeginTeardown(Time now, Actions& out);
  void TeardownStep(Time now, Actions& out);
  void TeardownOffers(const std::vector<mesos::Offer>& offers, Time now, Actions& out);
  bool TeardownWantsOffers() const;  // volumes are still to come back, or to be confirmed
  // An admin command other than a teardown, refused while one runs; true if it was.
  bool RefusedWhileTearingDown(const Event& event, Actions& out);

  // Maintenance (maintenance.cc): one run at a time, one member at a time, followers first and
  // the leader last, each step only while the cluster is healthy, the member just defragmented
  // answering again before the next. A NOSPACE run compacts first and disarms last, once every
  // database is below kNoSpaceClearShare of the quota.
  void OnMaintenanceResult(const MaintenanceResult& e, Actions& out);
  void OnAdminDefrag(const AdminDefrag& e, Actions& out);
  void MaybeMaintain(Time now, Actions& out);
  void StartMaintenance(std::string reason, bool nospace, std::vector<std::string> members,
                        Time now, Actions& out);
  void NextMaintenanceStep(Time now, Actions& out);
  void EndMaintenance(Time now, const std::string& error, Actions& out);
  void IssueMaintenance(MaintenanceOp op, const Member& on, uint64_t revision, Actions& out);
  const Member* MaintenanceContact() const;  // a healthy voter, the leader first
  std::vector<std::string> LeaderLast(std::vector<std::string> names) const;

  // Rollouts (rollout.cc): members launched with another configuration than EffectiveLaunch()
  // are replaced one at a time, followers first and the leader last (leadership moved away
  // first), each new member added and promoted before the old one is removed when a spare
  // agent offers room within the surge wait, and the cluster whole again before the next.
  struct RolloutStep {
    enum Phase { kAdd, kHandOver, kRemoving, kSettle };
    std::string member;  // the one being replaced
    bool surge = true;   // one member more than the target until `member` is removed
    Phase phase = kAdd;
    Time since;                    // the step's start
    Time phase_since;              // the phase's start
    std::optional<Time> retry_at;  // after a failed hand-over or removal
  };
  void OnAdminRollout(const AdminRollout& e, Actions& out);
  void AdoptUnlabelledMembers(Actions& out);
  void MaybeRollout(Time now, Actions& out);
  void BeginRollout(const std::string& target, size_t stale, Time now, Actions& out);
  bool StartRolloutStep(Time now, Actions& out);
  void StepRollout(Time now, Actions& out);
  void HandOver(Time now, Actions& out);
  void StopRollout(const std::string& why, Actions& out);
  void AdvanceCaRotation(Actions& out);
  void OnMoveLeader(const MembershipResult& e, Actions& out);
  void RolloutRemovalFailed(const MembershipResult& e);
  void RolloutRemoved(const MembershipResult& e);
  // Members in etcd whose task may run and whose launch configuration is not EffectiveLaunch(),
  // leader last.
  std::vector<std::string> StaleMembers() const;
  // Why the served etcd may not replace the members (RefusedVersionChange), if so.
  std::optional<std::string> VersionRefused() const;
  bool VersionsKnown() const;
  // Why no rollout step may start now ("" when one may).
  std::string RolloutBlocked() const;
  // The size to keep: the target, and one more while a rollout step adds before it removes.
  int KeepSize() const;
  // Corruption (corruption.cc): every --hash-check-interval, while the cluster is healthy and
  // nothing else changes it, the voters' HashKV at the lowest revision they have all applied. A
  // member whose hash a strict majority of the voters contradicts (at the same compact revision)
  // is marked corrupt and removed (its task killed); the heal adds a fresh learner from the
  // majority. Never without a strict majority, never when the removal would cost the quorum. A
  // corrupt member, or etcd's CORRUPT alarm, holds the automatic reseed back.
  void OnHashCheckResult(const HashCheckResult& e, Actions& out);
  void OnCertificateIssued(const CertificateIssued& e, Actions& out);
  bool ClusterTls() const;
  // A TLS member whose certificates expire within cert_renew_before (of the wall clock's last
  // tick); Renewing: some member that may run has such certificates.
  bool CertificateExpiring(const Member& m) const;
  bool Renewing() const;
  void MaybeCheckHashes(Time now, Actions& out);
  void RemoveOneCorruptMember(Time now, Actions& out);
  // Whether corruption holds an automatic reseed back (said once per livelock episode).
  bool CorruptionHoldsReseed(Actions& out);
  // Whether the member etcd agrees leads is marked corrupt: a learner added now would copy it.
  bool LeaderMarkedCorrupt() const;

  // Backups.
  const Member* BackupSource(bool allow_unhealthy) const;
  bool StartBackup(Time now, const std::string& reason, bool allow_unhealthy, Actions& out);
  void MaybeBackup(Time now, Actions& out);
  void BackupFinished(Time now, Actions& out);
  // A reseed, after a backup of the best survivor when backups are on (bounded by the backup
  // timeout: a failed or hung backup does not hold the reseed back for longer).
  void BeginReseed(Time now, bool manual, Actions& out);

  // Decisions.
  bool MayAct() const;  // connected, reconciled, not reseeding
  int LiveMembers() const;
  int MembersThatMayStillStart(Time now) const;
  int Voters() const;
  bool NeedsMember() const;
  void Evaluate(Time now, Actions& out);  // health, livelock, heal, total loss
  void UpdateHealth(Time now, Actions& out);
  void ProbeNow(Time now, Actions& out);
  void ReconcileUncertain(Time now, Actions& out);
  // A reseed from the best survivor (or, with none, nothing stopped and a note).
  void StartReseed(Time now, bool manual, Actions& out);
  void NoSurvivorToReseed(Time now, Actions& out);
  // The survivors to try, best first; only the best when the others could form a quorum.
  std::vector<std::string> ReseedCandidates() const;
  void NextReseedCandidate(Time now, Actions& out);
  void StopNonCandidates(const std::string& why, Time now, Actions& out);
  void ResumeReseed(Time now, Actions& out);
  // Keeps etcd's member list and our records in step: removes one dead member (one change at a
  // time), else stops strays and forgets members that ended and etcd no longer lists.
  void TidyMembership(Time now, Actions& out);
  void RetryAdd(Time now, Actions& out);
  void GiveUpAdd(const PendingAdd& add, const std::string& why, Actions& out);
  bool RemoveOneDeadMember(Time now, Actions& out);  // true: removing one, or backing up first
  bool BackUpBeforeRemoving(const std::string& who, int voters, int alive_voters, Time now,
                            Actions& out);  // true: the removal waits for a backup
  // Asks Mesos to kill a task, unless it was asked within kKillRetry.
  void Kill(const std::string& task_id, const std::string& agent_id, std::string why, Time now,
            Actions& out);
  void RemoveMember(const EtcdMember& em, const Member* ours, const std::string& why, Time now,
                    Actions& out);
  void StopStrays(Time now, Actions& out);
  void ForgetEndedMembers(Time now, Actions& out);
  // Advances the generation, keeping only `survivor` ("" for none); see the definition.
  void StartGeneration(const std::string& survivor, const std::string& why, Actions& out);
  void MaybePromote(Time now, Actions& out);
  void ExpireStuck(Time now, Actions& out);
  void HandleOffersForBootstrap(const std::vector<mesos::Offer>& offers, Time now, Actions& out);
  void HandleOffers(const std::vector<mesos::Offer>& offers, Time now, Actions& out);
  void HandleOffersForGrowth(const std::vector<mesos::Offer>& offers, Time now, Actions& out);
  // Durable members (durable.cc). An offer that holds the volume of a member whose task ended
  // relaunches it there; one that holds resources reserved for a member no longer ours releases
  // them. True if the offer was used so.
  bool RestartInPlace(const mesos::Offer& offer, Time now, Actions& out);
  bool ReleaseUnclaimed(const mesos::Offer& offer, Actions& out);
  // A durable member whose task ended (not by our kill) less than replace_after ago: it is
  // restarted in place, not removed from etcd.
  bool AwaitsRestartInPlace(const Member& m, Time now) const;
  // etcd's own view: the leader's peer connections mark a silent member cut off (peer_lost_since),
  // so that its --replace-after counts from then, not from when Mesos notices.
  void OnPeerView(const PeerView& e, Actions& out);
  void ProbePeersIfSilent(Actions& out);
  void NoteDurableEnd(const Member& m, bool killed_by_us, Time now, Actions& out);
  std::optional<Member> Place(const mesos::Offer& offer) const;
  std::string InitialCluster(const std::vector<const Member*>& members) const;
  std::string ClusterToken() const;
  std::vector<std::string> ClientUrlsOfHealthy() const;
  void UpdateOfferInterest(Actions& out);
  void MarkServed(Actions& out);
  void BootstrapAgain(Time now, Actions& out);
  void Persisted(Actions& out);
  // `kind` and `member`: see Note.
  void Say(std::string level, std::string kind, std::string message, Actions& out,
           std::string member = "");

  CoreConfig config_;
  PersistentState state_;
  bool started_ = false;
  bool connected_ = false;
  bool reconciling_ = false;
  std::set<std::string> unanswered_;  // stored tasks reconciliation has not answered yet
  // Task id -> when it was last asked to be killed: one kill per task per kKillRetry, however
  // many updates or decisions ask for it (a healed partition delivered a burst of updates for
  // one stale task, and each one sent a KILL). Forgotten when the task ends.
  std::map<std::string, Time> kills_sent_;
  // Durable members whose task ended by itself (not by our kill), since when: each is restarted
  // in place until replace_after has passed. Not persisted: a restarted scheduler gives the
  // members it finds ended a whole replace_after again.
  std::map<std::string, Time> ended_at_;
  // Volumes (agent id, volume id) of durable members that are no longer ours, until an offer of
  // their agent lets them be released: offers are wanted meanwhile. Dropped when the agent offers
  // without them (its disk went) or after kReleaseWatch. Not persisted: a restarted scheduler
  // releases what it is offered.
  std::map<std::pair<std::string, std::string>, std::optional<Time>> unreleased_;
  static constexpr Millis kReleaseWatch{3'600'000};
  // Agents Mesos removed for good (TASK_GONE or TASK_LOST for REASON_AGENT_REMOVED, as when a
  // new agent registers at the same address; TASK_GONE_BY_OPERATOR): their volumes went with
  // them, nothing comes back there.
  std::set<std::string> gone_agents_;
  void ExpireReleaseWatch(Time now, Actions& out);
  void WatchForgottenVolumes(const std::set<std::pair<std::string, std::string>>& before);
  std::set<std::pair<std::string, std::string>> DurableVolumes() const;
  std::optional<RolloutStep> rollout_step_;
  // Teardown: when it started (this process), agents a release was sent to and not yet
  // confirmed by an offer without our resources (since when), volumes released, and whether
  // FinishTeardown was given.
  std::optional<Time> teardown_since_;
  std::map<std::string, Time> releases_unconfirmed_;
  uint64_t teardown_released_ = 0;
  bool teardown_finished_ = false;
  int64_t unix_now_ = 0;  // the wall clock of the last tick that had one (Unix seconds)
  std::optional<Time> reconcile_started_;
  std::optional<Time> last_reconcile_;
  // Durable members: offers are wanted until then after each periodic reconciliation, so that
  // reservations no watch remembers (unreleased_ is lost with a restart; a release may be lost
  // with the connection) are offered and released within a reconcile interval.
  std::optional<Time> sweep_until_;
  static constexpr Millis kReleaseSweep{10'000};
  std::optional<Time> last_uncertain_reconcile_;
  std::optional<Time> last_probe_;
  bool healthy_ = false;
  std::string health_reason_ = "not started";
  std::optional<ClusterView> view_;
  uint64_t membership_epoch_ = 0;
  bool read_ok_ = false;
  std::optional<Time> livelock_since_;
  // Since when no majority of voters has agreed on a leader; an episode opens (livelock_since_)
  // once that has lasted kLivelockConfirmProbes probe intervals.
  std::optional<Time> disagreed_since_;
  static constexpr int kLivelockConfirmProbes = 5;
  // The generation reached health once; until then (and for at most the staging timeout from
  // forming_since_, the bootstrap's launch) unhealthy is a bootstrap forming, not livelock. A
  // restarted scheduler does not know, so it assumes formed.
  bool formed_ = true;
  std::optional<Time> forming_since_;
  bool total_loss_ = false;
  // Generations in a row whose members all failed before etcd ran, and when the next may launch
  // (1 s, doubling to a minute: a launch that cannot work is not retried in a tight loop).
  int unserved_generations_ = 0;
  std::optional<Time> bootstrap_not_before_;
  bool resume_reseed_ = false;  // a reseed on record from before a restart, to finish
  // A candidate answered that it is reseeding already: asked again then, not the next one.
  std::optional<Time> reseed_retry_at_;
  static constexpr Millis kReseedBusyRetry{2'000};
  std::optional<PendingAdd> pending_add_;
  std::optional<InFlight> in_flight_;
  std::vector<mesos::Offer> gathered_;  // offers held briefly for a one-shot bootstrap
  std::optional<Time> gather_started_;
  bool wants_offers_ = true;
  std::deque<Note> notes_;

  struct BackupRun {
    uint64_t id = 0;
    std::string member;
    std::string reason;
    Time since;
  };
  struct MaintenanceRun {
    std::string reason;
    bool nospace = false;               // compact first, disarm last
    bool compacted = false;             // (a NOSPACE run) the history is compacted
    uint64_t revision = 0;              // compacted to
    std::deque<std::string> queue;      // members still to defragment, in order
    std::optional<uint64_t> in_flight;  // the id of the step asked for
    std::string in_flight_member;
    std::string settling;  // defragmented last: must answer a probe after settle_since
    Time settle_since;
  };
  std::optional<MaintenanceRun> maintenance_run_;
  MaintenanceStatus maintenance_status_;
  std::optional<Time> maintenance_failed_at_;
  uint64_t next_maintenance_id_ = 1;
  HashCheckStatus hash_status_;
  std::set<std::string> corrupt_;           // members marked corrupt, until removed
  std::optional<uint64_t> hash_check_id_;   // the check in flight
  std::optional<Time> hash_check_started_;  // the last one asked (in flight or not)
  uint64_t next_hash_check_id_ = 1;
  // The livelock episode (its start) whose automatic reseed corruption was said to hold back.
  std::optional<Time> reseed_hold_said_;
  BackupStatus backup_status_;
  std::optional<BackupRun> backup_;
  uint64_t next_backup_id_ = 1;
  std::optional<Time> last_backup_ok_;
  std::optional<Time> last_backup_failed_;
  std::optional<Time> last_backup_done_;  // success or failure
  std::optional<bool> reseed_waiting_;    // a reseed (manual?) waits for the backup in flight
};

}  // namespace etcd_mesos::scheduler
