// BackupVerifier: proves that a backup restores. Each backup is restored into a scratch etcd on
// the scheduler's host and its KV store's HashKV compared with the live cluster's at the same
// revision; the verdict (backups.h's RestoreCheck) goes into the backup's sidecar.
//
// One backup at a time, in these steps, each a child process or an asynchronous request (the
// admin API and the shell's other work go on meanwhile):
//   1. the file's checksums (VerifyBackup), on a thread of the verifier's own;
//   2. `etcdctl snapshot restore` into <backup-dir>/.verify-<host>-<pid>-<n>/data, as a
//      one-member cluster on loopback ports the kernel handed out (etcd wants IPs, not names);
//   3. `etcd` on that data dir, listening on 127.0.0.1 only, until its status answers;
//   4. `etcdctl endpoint hashkv` on it: the snapshot's revision R and its hash at R;
//   5. `etcdctl endpoint hashkv --rev=R` on the live members, the leader first, until one answers;
//   6. the verdict (JudgeRestore); the scratch etcd stopped (SIGTERM, SIGKILL after 5 s) and the
//      scratch directory removed, on every path; the sidecar rewritten.
// A deadline (Options::timeout) bounds all of it. HashKV comes from etcdctl because etcd 3.4's
// JSON gateway answers POST /v3/maintenance/hash with Hash, not HashKV (etcd/codec.h).
//
// A hash that differs from the live cluster's is a failure. A hash that cannot be compared is
// not: the restore worked and the data was served, so the check is "restored" with
// hash_compared false and the reason (the cluster compacted past R since, or was compacted at
// another revision than the snapshot; the snapshot is of another cluster, or of an unknown one;
// no live member answered).
//
// Threading: on the shell's io_context thread (the checksums on a thread of its own, whose
// result is posted back); not thread-safe. Children run in their own process groups and die with
// the scheduler (PR_SET_PDEATHSIG), so start it on the thread that runs the io_context.
#pragma once

#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/result.h"
#include "etcd/launch.h"
#include "etcd/types.h"
#include "scheduler/shell/backups.h"

namespace etcd_mesos::scheduler::shell {

// The verdict of steps 4 and 5: `restored` is the scratch etcd's HashKV (its current revision R),
// `live` the first live member's answer at R, or the error every member asked gave
// (etcdctl's words). `backup_cluster_id`: from the backup's name (0: unknown, an import). Sets
// the hash fields and the outcome of `check`; `at` and `seconds` are the caller's.
void JudgeRestore(const etcd::HashKV& restored, uint64_t backup_cluster_id,
                  const Result<etcd::HashKV>& live, RestoreCheck& check);

// What the verifier has found since the scheduler started (the newest verified backup also from
// the sidecars found at start), for /stats and /metrics.
struct VerificationStatus {
  bool enabled = false;
  uint64_t restored = 0;  // checks that ended "restored"
  uint64_t failures = 0;  // checks that ended "failed"
  // The newest backup (by its own time) whose check ended "restored".
  std::string last_verified;
  int64_t last_verified_unix_time = 0;  // that backup's time
  int64_t last_verified_at_unix = 0;    // when it was checked
  std::string last_failure;             // "<backup>: <why>"
  std::string running;                  // the backup being checked, "" when none
  size_t queued = 0;
};

class BackupVerifier {
 public:
  struct Options {
    std::filesystem::path backup_dir;
    std::string etcd_bin = "etcd";
    std::string etcdctl_bin = "etcdctl";
    std::chrono::milliseconds timeout{60'000};  // of one whole check
    size_t max_queued = 4;                      // further requests are refused
    // How long the scratch etcd may take to stop after SIGTERM before it is killed.
    std::chrono::milliseconds stop_grace{5'000};
  };
  // The live members' client URLs, in the order to ask them (the leader first); read at step 5.
  using LiveEndpoints = std::function<std::vector<std::string>()>;
  // After each check, once the sidecar is written; `check.error` says why it failed.
  using Done = std::function<void(const std::string& backup, const RestoreCheck& check)>;

  BackupVerifier(boost::asio::io_context& io, Options options, LiveEndpoints live, Done done);
  // Kills the children (SIGKILL) and removes the scratch directory; no callback runs.
  ~BackupVerifier();
  BackupVerifier(const BackupVerifier&) = delete;
  BackupVerifier& operator=(const BackupVerifier&) = delete;

  // Removes scratch directories left by verifiers of this host that are gone (a scheduler that
  // was killed mid-check), and takes the newest verified backup from the sidecars.
  void Recover();
  // Queues backup `name` (a file in the backup directory). kInvalidArgument for a name that is
  // not a backup's, kNotFound for a missing one, kAlreadyExists when it is queued or being
  // checked, kUnavailable when the queue is full.
  Status Enqueue(const std::string& name);
  const VerificationStatus& status() const { return status_; }
  // The client certificate for asking a TLS cluster's members (step 5); unset: plain http.
  void SetLiveTls(std::optional<etcd::TlsFiles> tls) { live_tls_ = std::move(tls); }

 private:
  struct Run;
  void StartNext();
  void Restore();
  void StartEtcd();
  void AwaitEtcd();
  void HashRestored();
  void HashLive(size_t next, std::optional<Error> first_error);
  // Runs etcdctl with `args` (after the binary); `done` gets its exit status and stdout.
  void Etcdctl(std::vector<std::string> args, std::function<void(int, std::string)> done);
  void Fail(std::string why);
  void Finish(RestoreCheck check);
  void StopScratch(std::function<void()> then);
  bool Current(uint64_t id) const;
  template <typename F>
  auto Guarded(uint64_t id, F f);

  boost::asio::io_context& io_;
  Options options_;
  LiveEndpoints live_;
  Done done_;
  boost::asio::thread_pool disk_{1};
  std::deque<std::string> queue_;
  std::unique_ptr<Run> run_;
  uint64_t next_id_ = 1;
  VerificationStatus status_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::optional<etcd::TlsFiles> live_tls_;
};

}  // namespace etcd_mesos::scheduler::shell
