// SchedulerShell: the I/O around SchedulerCore, on one io_context. It loads the persisted state
// (the Started event), finds the leading master (MasterDetector) and subscribes (SchedulerClient)
// with the framework's FrameworkInfo, turns every completion into an event for the core, and
// carries out the core's actions in order: launches (ACCEPT with a TaskInfo built here), declines,
// kills, reconciliation, revive/suppress, etcd probes and membership changes, reseed requests to
// executors, state writes and admin answers. It also runs the admin HTTP server (admin.h).
//
// Order and write-ahead are the ActionPipeline's (scheduler/core/pipeline.h), which the simulator
// drives too: actions run strictly in the order the core gave them; a Persist blocks every later
// action until the store has answered, so a launch is on record before it happens; a launch whose
// state write failed is not made. The state node is written as StateWriter says.
//
// Bounds: one probe per member and one cluster probe in flight at a time; store writes retry a
// few times with backoff; every etcd and executor request has a deadline.
//
// Stop() leaves the framework registered: Mesos keeps the tasks running for the failover timeout,
// and a restarted scheduler re-subscribes with the stored framework id.
//
// High availability: with a ZooKeeper store, several instances with the same --cluster-name may
// run; they elect one leader under <chroot>/<framework>/leader (store::ZkElection). Only the
// leader loads the state, subscribes and acts. A standby serves the admin views from the stored
// state (re-read every few seconds), marked as a standby's and naming the leader, and sends
// commands to the leader. A standby elected loads the state and subscribes with the stored
// framework id (a failover at the master). A leader told its ZooKeeper session expired stops at
// once (on_lost_leadership): another may lead by then. With a directory store there is one instance
// (a lock).

//
// Threading: everything runs on the io_context's one thread (ZooKeeper threads only post back);
// not thread-safe.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/result.h"
#include "etcd/client.h"
#include "etcd/launch.h"
#include "mesos/master_detector.h"
#include "mesos/scheduler_client.h"
#include "net/http.h"
#include "scheduler/core/pipeline.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/shell/admin.h"
#include "scheduler/shell/backup_verifier.h"
#include "scheduler/shell/console.h"
#include "scheduler/shell/flags.h"
#include "scheduler/shell/member_certificates.h"
#include "scheduler/shell/task_info.h"
#include "store/state_store.h"
#include "store/zk_election.h"

namespace etcd_mesos::scheduler::shell {

// Where a TLS scheduler keeps its CA and its own client certificate and key as files, for the
// etcdctl it runs (and for tools and tests on the same host): <state-dir>/tls/.
etcd::TlsFiles SchedulerTlsFiles(const std::string& state_dir);

// The raft index in an executor's answer to POST /reseed (tolerant of the shapes it may take).
Result<uint64_t> ParseReseedAnswer(unsigned status, std::string_view body);

class SchedulerShell {
 public:
  struct Options {
    // Called once if the scheduler cannot go on (a corrupt state record); main() exits.
    std::function<void(const Error&)> on_fatal;
    // Called once when this instance, leading, is told its ZooKeeper session expired: it has
    // stopped acting (Stop()); main() starts a new shell, which contends again. Unset: on_fatal.
    std::function<void(const Error&)> on_lost_leadership;
    // Client tuning (tests shorten backoffs).
    mesos_client::SchedulerClient::Options client;
    // Called once when a teardown has finished (the records removed, TEARDOWN sent), or when a
    // standby finds the cluster torn down by the leader it stood by for: what it did, for the
    // operator. main() exits 0. Unset: the shell only stops.
    std::function<void(const std::string& summary)> on_torn_down;
    // `etcd-mesos-scheduler teardown` with no scheduler running: once the state is loaded, tear
    // the cluster down as POST /teardown would (nothing to do without a stored state).
    bool teardown = false;
  };

  SchedulerShell(boost::asio::io_context& io, SchedulerFlags flags, Options options);
  ~SchedulerShell();
  SchedulerShell(const SchedulerShell&) = delete;
  SchedulerShell& operator=(const SchedulerShell&) = delete;

  // Opens the store and the admin server (errors are returned: a busy port must not be silent),
  // then loads the state and subscribes in the background.
  Status Start();
  // Stops everything without tearing the framework down.
  void Stop();

  const SchedulerCore& core() const { return core_; }
  HostPort admin_address() const;
  bool loaded() const { return loaded_; }
  // With a ZooKeeper store: whether this instance leads (always true without one).
  bool leading() const { return !election_ || leading_; }
  // Leading but cut off from ZooKeeper: every action is held until it hears it again.
  bool holding() const { return pipeline_.suspended(); }
  // The election's ZooKeeper session, for tests that expire it.
  std::optional<std::pair<int64_t, std::string>> ElectionSessionForTesting() const {
    return election_ ? election_->SessionForTesting() : std::nullopt;
  }

 private:
  void StartElection();
  void OnElection(const store::ZkElection::View& view);
  void HoldWhileInDoubt(bool in_doubt);
  void LoseLeadership(const std::string& why);
  void RefreshStandby();
  void LoadState(int attempt);
  void OnLoaded(PersistentState state);
  // The admin token (admin_token.h): before the state is loaded, the one in --admin-token-file
  // or this host's file; once it is, the state's (generated at first start) is settled in both.
  Status PrepareAdminToken(AdminServer::Options& admin);
  Status SettleAdminToken(PersistentState& state);
  // TLS (--tls auto or files): the CA (from the store, made at the first start, or the
  // operator's files), then the scheduler's own client certificate; `then` once it is in use.
  void LoadTls(int attempt, std::function<void()> then);
  Status UseTls(TlsRecord record, std::chrono::system_clock::time_point now);
  // At each tick: the CAs the core's CA rotation phase calls for (CaForRotation); the scheduler's
  // client certificate re-issued when they change or it is due for renewal (--cert-renew-before);
  // the TLS record moved on once a rotation has finished.
  void RefreshTls(std::chrono::system_clock::time_point now);
  Status IssueSchedulerCertificate(const CaInUse& ca, std::chrono::system_clock::time_point now);
  void RecordFinishedRotation();
  void ReloadTlsRecord();
  // POST /rotate-ca: the next CA made and stored before the core hears of the request.
  void PrepareCaRotation(AdminRollout request);
  void ExplainFetchFailure(const mesos::TaskStatus& status);
  // A client of a member at `url`: https with the scheduler's certificate when the URL says so.
  etcd::Client::Options EtcdOptions(std::chrono::milliseconds timeout, std::string_view url) const;
  // POST /certificates (member_certificates.h), answered from the core's view of the task.
  CertificateAnswer IssueCertificates(const std::string& body, const std::string& authorization);
  // GET /client-cert: a client certificate named `name` and its key, one PEM text.
  Result<std::string> IssueClientCertificate(const std::string& name);
  void Fatal(const Error& error);
  void StartMaster();
  void OnLeader(const std::optional<HostPort>& leader);
  void OnMesosEvent(const mesos::scheduler::Event& event);

  void Feed(Event event);
  void Drain();
  void Execute(Effect effect);
  void Carry(Action& action);

  void DoLaunch(const LaunchMember& launch);
  void DoRelease(const ReleaseResources& release);
  // The end of a teardown: the scheduler's records removed from the store (its state, TLS record
  // and framework id; the backups in --backup-dir are kept), then TEARDOWN, then on_torn_down.
  void DoFinishTeardown(const FinishTeardown& finish);
  void DoProbePeers(const ProbePeers& probe);
  void DoAcknowledge(const AcknowledgeUpdate& ack);
  void RemoveRecords(std::vector<std::string> paths, std::vector<std::string> failed,
                     std::function<void(std::vector<std::string> failed)> then);
  void TornDown(const std::string& summary);
  void FrameworkGoneInTeardown(const mesos::scheduler::Event& e);
  void DoDecline(const std::string& offer_id, double refuse_seconds);
  void DoKill(const KillTask& kill);
  void DoReconcile(const ReconcileTasks& reconcile);
  void DoReviveOrSuppress(bool revive);
  void DoProbe(const ProbeMember& probe);
  void DoProbeCluster(const ProbeCluster& probe);
  void DoMembership(const ChangeMembership& change);
  void RouteMembership(ChangeMembership change, Clock::time_point started,
                       Clock::time_point deadline, uint64_t previous_leader);
  void SendMembership(const ChangeMembership& change);
  void DoReseed(const TriggerReseed& reseed);
  void DoPersist(const PersistentState& state);
  void WriteStep(std::shared_ptr<const std::string> data, StateWriter::Step step,
                 std::function<void(Status)> done);
  void WriteFrameworkId(const std::string& id);
  void DoNote(const Note& note);
  void DoBackup(const TakeBackup& backup);
  // The client URLs to ask for the live cluster's HashKV when a backup is verified: the leader
  // first, then the other reachable voters.
  std::vector<std::string> LiveHashEndpoints() const;
  void OnBackupVerified(const std::string& name, const RestoreCheck& check);
  void DoMaintain(const Maintain& step);
  // Every member's HashKV at once, each bounded by the probe timeout; one HashCheckResult.
  void DoCheckHashes(const CheckHashes& check);
  void Send(mesos::scheduler::Call call, std::string what);
  void ArmTick();
  // The console's history: observed every second, sampled every ClusterHistory::kSampleIntervalMs
  // with the leader's disk latency as etcd reports it.
  void ArmConsole();
  void ObserveConsole();

  // A guard for callbacks that may complete after the shell is gone.
  template <typename F>
  auto Guarded(F f) {
    return [alive = std::weak_ptr<bool>(alive_), f = std::move(f)](auto&&... args) mutable {
      if (alive.expired()) return;
      f(std::forward<decltype(args)>(args)...);
    };
  }

  boost::asio::io_context& io_;
  SchedulerFlags flags_;
  Options options_;
  SchedulerCore core_;
  NoteLog notes_;
  ClusterHistory history_;
  boost::asio::steady_timer console_timer_;
  int64_t last_sample_ms_ = 0;
  std::optional<etcd::DiskLatencyTotals> fsync_totals_;  // the leader's, at the last sample
  std::string fsync_from_;                               // the member they were read from
  std::unique_ptr<store::StateStore> store_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<BackupVerifier> verifier_;     // with --backup-dir and --backup-verify
  std::unique_ptr<store::ZkElection> election_;  // with a ZooKeeper store
  bool leading_ = false;
  boost::asio::steady_timer standby_timer_;
  int64_t standby_version_ = -1;  // the stored state's version the standby's views show
  std::unique_ptr<mesos_client::MasterDetector> detector_;
  std::unique_ptr<mesos_client::SchedulerClient> client_;
  bool client_started_ = false;
  boost::asio::steady_timer tick_timer_;
  boost::asio::steady_timer retry_timer_;
  bool loaded_ = false;
  bool stopped_ = false;
  bool probing_peers_ = false;       // a ProbePeers is out
  bool finishing_teardown_ = false;  // FinishTeardown carried: the core is done, no more events
  bool saw_teardown_ = false;        // as a standby, the stored state said tearing_down
  std::string artifact_base_;
  std::filesystem::path admin_token_path_;  // <state-dir>/admin-token, when generated
  std::optional<TlsRecord> tls_record_;     // the members' CA, once loaded (--tls not off)
  int64_t tls_version_ = -1;                // its version in the store (--tls=auto)
  std::string client_ca_in_use_;       // the issuer and trust of the scheduler's client certificate
  int64_t client_cert_not_after_ = 0;  // its expiry, Unix seconds
  bool recording_rotation_ = false;    // the finished rotation's record is being written
  std::string ca_error_;               // the last CaForRotation error logged
  std::shared_ptr<const net::TlsClientConfig> etcd_tls_;  // the scheduler's client certificate
  std::optional<etcd::TlsFiles> etcdctl_tls_;             // the same as files, for etcdctl
  std::map<std::string, std::string> artifacts_;          // served name -> local path
  std::string restore_from_name_;  // --restore-from, imported into --backup-dir at Start

  ActionPipeline pipeline_;  // the order of the core's actions; write-ahead
  StateWriter writer_;       // how the state node is written
  bool draining_ = false;    // Drain() is on the stack
  std::string written_framework_id_;

  std::map<std::string, mesos::Offer> offers_;  // outstanding, by id
  std::set<std::string> probing_;               // members with a probe in flight
  bool probing_cluster_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace etcd_mesos::scheduler::shell
