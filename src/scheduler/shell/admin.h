// AdminServer: the scheduler's HTTP surface on <address>:<admin-port>, for operators (the on-call
// guide's /members, /stats and /reseed), for Marathon (/healthz), for monitoring (/metrics), for
// people (the status page at /), for clients (/endpoints) and for the Mesos fetcher (/artifacts/:
// the executor, etcd and etcdctl binaries).
//
//   GET  /members        JSON array, one object per member, with the original's keys (name, host,
//                        rpcPort = peer, clientPort, httpPort = reseed, type, slaveID) and ours
//                        (clientUrl, with its scheme; taskId, agentId, taskState, memberId as a
//                        decimal string, learner, healthy, reachable, raftIndex).
//   GET  /stats          one JSON object: the original's keys first, in its order (running_servers,
//                        launched_servers, failed_servers, cluster_livelocks, cluster_reseeds,
//                        healthy as 1/0), then ours.
//   GET|POST /reseed     asks the core for a manual reseed (?force=1 even when healthy); 202 or
//                        409/503 with the core's reason. Guarded by the admin token
//                        (Authorization: Bearer <token>, or ?token=<token>; admin_token.h):
//                        401 without it, 503 while it is not loaded yet; every command is
//                        guarded alike, and only --admin-insecure leaves them open.
//   POST /start-fresh    after total loss only, the operator's explicit request for an EMPTY
//                        cluster. Token-guarded like /reseed.
//   GET  /healthz        200 "cluster is healthy\n" or 500 "500 internal server error: cluster not
//                        healthy.\n", exactly as the original (Marathon health checks); with
//                        --healthz-max-backup-age also 500 when the newest backup is older.
//   POST /backup         a snapshot now (token-guarded); 202 naming the member, or 409/503.
//   GET  /backups        JSON array, newest first: name, size, sha256, revision, member, time,
//                        verified (the sidecar is there and names the file's size, and no
//                        restore check failed), and the restore check's verdict from the sidecar
//                        (restore_check: "restored", "failed" or null while none was made;
//                        verified_at, verify_error, hash_compared, hash_revision).
//   POST /backups/<name>/verify  restores the backup into a scratch etcd and compares its HashKV
//                        with the live cluster's (backup_verifier.h): 202, the verdict later in
//                        GET /backups and the sidecar; 404, 409 (already being verified, or
//                        verification is off), 503 (too many queued). Token-guarded.
//   POST /restore?name=  after total loss (or before any start) only: the backup is verified
//                        (etcd's trailer hash and the sidecar's SHA-256) here, before the core is
//                        asked; a bad one gets 422 naming the problem and nothing is launched;
//                        so does one whose restore check failed, unless &force=1.
//                        Token-guarded.
//   POST /certificates   a TLS member's executor sends its certificate requests with its task's
//                        token (not the admin token) and gets its certificates, once per task:
//                        member_certificates.h.
//   POST /rotate-ca      with --tls=auto (admin token): a new CA for the members, brought in by
//                        rollouts (core types.h CaRotation); 202, or 409 while a rollout or
//                        rotation is under way. GET /rollout follows it.
//   POST /rotate-ca/next (admin token) once a phase's rollout is done and the clients are ready:
//                        the next phase (members serve certificates of the new CA; then they
//                        stop trusting the old); 202, or 409 naming what the rotation waits for.
//   GET  /ca.crt         with TLS: the CA certificates clients must trust (PEM; both the old
//                        and the new CA during a rotation).
//   GET  /client-cert    with TLS (admin token): a new client certificate of the CA and its
//                        private key in one PEM text (?name=<common name>, default "operator";
//                        ?for=proxy: none, as etcd's grpc-proxy wants), for --cert and --key.
//   POST /teardown?confirm=<cluster name>  (admin token) stops the cluster for good: every task
//                        killed, every volume and reservation released, then the state removed
//                        and the framework torn down, and the scheduler exits (core
//                        teardown.cc); 202, then /stats shows tearing_down and what is left.
//                        400 without the confirmation; other commands get 409 meanwhile.
//   GET  /metrics        Prometheus text format, etcd_mesos_ prefix.
//   GET  /endpoints      the client URLs of the voters that may be running, comma-separated.
//   GET  /               the status page (members, health, counters, recent notes; refreshes).
//
// On a standby instance (SetStandby) every view shows the state the leader last stored, marked as
// a standby's; /healthz answers 200 "standby"; commands get 307 to the leader's admin URL.
//   GET  /artifacts/<v>/<n>  n = etcd-mesos-executor, etcd or etcdctl at version v (what
//                        ArtifactVersion says of the file now: launches name it, so that the Mesos
//                        fetcher cache keeps each version apart; a version whose file has changed
//                        since gets 404 naming the current one). /artifacts/<n> serves n
//                        unversioned; /artifacts/backups/<backup name> a backup (the agent of a
//                        restored member fetches its snapshot so). Files are read on the disk
//                        thread.
// Unknown paths get 404, wrong methods 405 (with Allow), both with a message.
//
// Every answer comes from the core's in-memory views (and /backups, /restore from files in the
// backup directory); no request ever waits on etcd, ZooKeeper or the master (the original's /stats
// held a lock across etcd calls and hung ~90 s). The only requests answered later are /reseed and
// /start-fresh, which the core answers through an AnswerAdmin action in the same event-loop turn
// (after a state write at most); their number in flight is bounded.
//
// Threading: on the shell's io_context thread; not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/result.h"
#include "common/uri.h"
#include "net/http.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/shell/backup_verifier.h"
#include "scheduler/shell/console.h"
#include "scheduler/shell/member_certificates.h"
#include "scheduler/shell/status_page.h"

namespace etcd_mesos::scheduler::shell {

// The version of the artifact at `path` as launches name it in its URL: 16 hex digits that change
// whenever its size or modification time does (the file is not read: the executor alone is tens
// of MB and is stat'ed at each launch). kNotFound when the file cannot be stat'ed.
Result<std::string> ArtifactVersion(const std::string& path);

// Pure renderings of the core's views (tested directly); the status page is status_page.h's.
// Which members may run, and which of them are voters, is the core's rule (rules.h).
std::string RenderMembers(const SchedulerCore& core);
// `now_unix`: the wall clock (seconds), for the age of the newest backup.
// `standby_leader` as RenderStatusPage's: "standby" and "leader_url" say which instance this is.
// `holding`: a leader cut off from ZooKeeper, holding every action until it hears it again.
// `verification`: the backup verifier's findings (nullptr: verification is off).
std::string RenderStats(const SchedulerCore& core, int64_t now_unix = 0,
                        const std::optional<std::string>& standby_leader = std::nullopt,
                        bool holding = false, const VerificationStatus* verification = nullptr);
std::string RenderMetrics(const SchedulerCore& core, int64_t now_unix = 0, bool standby = false,
                          bool holding = false, const VerificationStatus* verification = nullptr);
std::string RenderEndpoints(const SchedulerCore& core);
// GET /rollout: the rollout's state, what the members are rolled to, and each member's
// configuration and etcd version.
std::string RenderRollout(const SchedulerCore& core);
// True when the request carries `token` (Bearer header or ?token=), compared in constant time.
// An empty token authorizes nothing.
bool Authorized(const net::ServerRequest& request, const std::string& token);
// The value of `key` in a query string, percent-decoded; nullopt when absent.
std::optional<std::string> QueryValue(std::string_view query, std::string_view key);

class AdminServer {
 public:
  struct Options {
    HostPort listen;  // --address (or 0.0.0.0) : --admin-port
    // Guards every command. Empty: not known yet (SetToken gives it once the state is loaded),
    // and commands get 503, unless `insecure` leaves them open (--admin-insecure).
    std::string token;
    bool insecure = false;
    std::string token_hint = "--admin-token-file";  // where an operator finds the token
    std::map<std::string, std::string> artifacts;   // served name -> local path
    size_t max_pending = 16;                        // admin commands awaiting the core's answer
    std::string backup_dir;                         // "" = backups off
    std::chrono::milliseconds healthz_max_backup_age{0};
    // POST /certificates: a TLS member's executor asks for its certificates with its task's
    // token (member_certificates.h); unset: 404.
    std::function<CertificateAnswer(const std::string& body, const std::string& authorization)>
        issue_certificates;
    // GET /ca.crt: the CA certificates clients must trust (public); GET /client-cert (admin
    // token): a new client certificate and its key, PEM. Unset (TLS off): 404.
    std::function<std::string()> trust_bundle;
    std::function<Result<std::string>(const std::string& common_name)> client_certificate;
    std::string tls_mode = "off";  // --tls (auto, files, off), for the console's TLS line
    std::string cluster_name;      // --cluster-name: what POST /teardown must confirm
    // Set: the server speaks HTTPS only (--admin-tls-cert), and no plain HTTP.
    std::shared_ptr<const net::TlsServerConfig> https;
    // POST /backups/<name>/verify: queues the check (BackupVerifier::Enqueue); unset: off.
    std::function<Status(const std::string& name)> verify_backup;
  };
  // Hands an operator command (AdminReseed, AdminStartFresh) to the core.
  using Submit = std::function<void(Event)>;

  AdminServer(boost::asio::io_context& io, Options options, const SchedulerCore& core,
              const NoteLog& notes, Submit submit);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  Result<HostPort> Start();
  void Stop();
  HostPort address() const;
  // Completes the pending request the core answered; unknown ids are ignored (the client left).
  void Answer(const AnswerAdmin& answer);
  // The token chosen once the state is loaded (admin_token.h); commands need it from now on.
  void SetToken(std::string token) { options_.token = std::move(token); }
  // A standby instance (scheduler high availability): the views show the state the leader last
  // stored (the shell keeps the core a mirror of it), /healthz answers 200 naming the leader, and
  // every command is sent to the leader with a 307 (503 when no leader is known). `leader` is the
  // leader's admin URL ("" when none is known); nullopt: this instance leads.
  void SetStandby(std::optional<std::string> leader);
  // A leader cut off from ZooKeeper holds every action: /stats and /metrics say so.
  void SetHolding(bool holding) { holding_ = holding; }
  // The console's history (kept by the shell; outlives this server) and the leading master's
  // web UI address, for its sandbox links.
  void SetHistory(const ClusterHistory* history) { history_ = history; }
  void SetMasterUrl(std::string url) { master_url_ = std::move(url); }
  // The backup verifier's findings for /stats and /metrics (kept by the shell; nullptr: none).
  void SetVerification(const VerificationStatus* status) { verification_ = status; }

 private:
  void Handle(const net::ServerRequest& request, std::shared_ptr<net::Responder> responder);
  void Command(const net::ServerRequest& request, std::shared_ptr<net::Responder> responder);
  // POST /backups/<name>/verify.
  net::HttpResponse VerifyCommand(const net::ServerRequest& request);
  // A command's answer when it may not run: 503 before the token is known, 401 without it;
  // nothing when the request carries the token or the commands are open (--admin-insecure).
  std::optional<net::HttpResponse> Refused(const net::ServerRequest& request) const;
  void ServeArtifact(const std::string& name, std::shared_ptr<net::Responder> responder);
  // GET /console.json[?notes_after=<seq>&samples_after=<ms>]: the status page's live data.
  net::HttpResponse ServeConsole(const net::ServerRequest& request) const;
  // The backup directory may be a network mount that hangs: it is listed on disk_, never on
  // the event loop that serves every other endpoint.
  void ServeBackups(std::shared_ptr<net::Responder> responder);

  boost::asio::io_context& io_;
  Options options_;
  const SchedulerCore& core_;
  std::optional<std::string> standby_;  // the leader's admin URL while this instance stands by
  bool holding_ = false;
  const ClusterHistory* history_ = nullptr;
  const VerificationStatus* verification_ = nullptr;
  std::string master_url_;
  const NoteLog& notes_;
  Submit submit_;
  net::HttpServer server_;
  uint64_t next_request_ = 1;
  std::map<uint64_t, std::shared_ptr<net::Responder>> pending_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  boost::asio::thread_pool disk_{1};  // last: joined first, while the rest still exists
};

}  // namespace etcd_mesos::scheduler::shell
