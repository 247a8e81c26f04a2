#include "scheduler/shell/backup_verifier.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>

#include "common/wait_status.h"
#include "etcd/client.h"
#include "etcd/codec.h"
#include "executor/shell/etcd_process.h"

namespace etcd_mesos::scheduler::shell {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The scratch cluster's identity, the same for the restore and for etcd (etcd starts from what
// the restore wrote, which must agree with its flags).
constexpr const char* kScratchName = "verify";
constexpr const char* kScratchToken = "etcd-mesos-verify";
// The live members asked for their HashKV, at most, before the hash is given up on.
constexpr size_t kLiveTries = 3;
constexpr std::chrono::milliseconds kReadyPoll{100};

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

// "<prefix><pid>-<n>" for this host: the scratch directories of this host's verifiers.
std::string ScratchPrefix() { return ".verify-" + HostName() + "-"; }

// A port the kernel hands out on 127.0.0.1 now; two at once, so that they differ.
Result<std::pair<uint16_t, uint16_t>> TwoFreePorts(boost::asio::io_context& io) {
  namespace ip = boost::asio::ip;
  boost::system::error_code ec;
  ip::tcp::acceptor a(io), b(io);
  ip::tcp::endpoint any(ip::make_address_v4("127.0.0.1"), 0);
  for (auto* acceptor : {&a, &b}) {
    acceptor->open(any.protocol(), ec);
    if (!ec) acceptor->bind(any, ec);
    if (ec)
      return MakeError(ErrorCode::kUnavailable, "no free port on 127.0.0.1: {}", ec.message());
  }
  return std::pair{a.local_endpoint().port(), b.local_endpoint().port()};
}

// What etcdctl said went wrong: its "Error: ..." line (or "Failed to ..." for one endpoint),
// else the end of what it wrote.
std::string EtcdctlComplaint(const fs::path& log) {
  std::string tail = executor::shell::ReadLogTail(log, 40, 8000);
  std::string last_failed;
  size_t pos = 0;
  while (pos < tail.size()) {
    size_t nl = tail.find('\n', pos);
    std::string line = tail.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? tail.size() : nl + 1;
    if (line.starts_with("Error:")) return line;
    if (line.starts_with("Failed")) last_failed = line;
  }
  if (!last_failed.empty()) return last_failed;
  return executor::shell::ReadLogTail(log, 3, 600);
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

bool ExitedZero(int wait_status) { return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0; }

bool Mentions(const Error& e, std::string_view what) {
  return e.message.find(what) != std::string::npos;
}

}  // namespace

void JudgeRestore(const etcd::HashKV& restored, uint64_t backup_cluster_id,
                  const Result<etcd::HashKV>& live, RestoreCheck& check) {
  uint64_t r = restored.header.revision;
  check.hash_revision = r;
  check.hash = restored.hash;
  check.compact_revision = restored.compact_revision;
  check.restored = true;
  check.hash_compared = false;
  if (!live.ok()) {
    if (Mentions(live.error(), "required revision has been compacted")) {
      check.error = fmt::format(
          "hash not compared: the cluster has compacted its history past revision {} since the "
          "snapshot",
          r);
    } else if (Mentions(live.error(), "future revision")) {
      check.error = fmt::format(
          "hash not compared: the cluster is behind the snapshot's revision {} (a reseed or a "
          "restore since?)",
          r);
    } else {
      check.error =
          fmt::format("hash not compared: no live member answered HashKV at revision {}: {}", r,
                      live.error().message);
    }
    return;
  }
  check.live_hash = live->hash;
  if (backup_cluster_id == 0) {
    check.error = "hash not compared: the snapshot's cluster is unknown (an imported file)";
    return;
  }
  if (live->header.cluster_id != backup_cluster_id) {
    check.error = fmt::format(
        "hash not compared: the snapshot is of cluster {:016x}, the live cluster is {:016x} (a "
        "restore since?)",
        backup_cluster_id, live->header.cluster_id);
    return;
  }
  if (live->compact_revision != restored.compact_revision) {
    check.error = fmt::format(
        "hash not compared: the cluster was compacted at revision {}, the snapshot at {} (a "
        "compaction since the snapshot)",
        live->compact_revision, restored.compact_revision);
    return;
  }
  check.hash_compared = true;
  if (live->hash == restored.hash) {
    check.error.clear();
    return;
  }
  check.restored = false;
  check.error = fmt::format(
      "the restored data's HashKV at revision {} is {}, the live cluster's ({}) is {}: the "
      "snapshot does not hold what the cluster held at that revision",
      r, restored.hash, live->endpoint, live->hash);
}

struct BackupVerifier::Run {
  explicit Run(boost::asio::io_context& io) : tool(io), etcd(io), deadline(io), timer(io) {}

  uint64_t id = 0;
  std::string name;
  uint64_t cluster_id = 0;
  WallTime time;
  fs::path scratch;
  Clock::time_point started;
  std::string step;  // what is under way, for a timeout's message
  uint16_t client_port = 0, peer_port = 0;
  executor::shell::EtcdProcess tool;  // etcdctl, one run after the other
  executor::shell::EtcdProcess etcd;  // the scratch etcd
  boost::asio::steady_timer deadline;
  boost::asio::steady_timer timer;  // readiness polls, then the stop grace
  bool finishing = false;           // the verdict is in: only the stop path goes on
  std::function<void()> on_stopped;
  std::optional<etcd::HashKV> restored;
  std::vector<std::string> live;
  RestoreCheck check;

  std::string ClientUrl() const { return fmt::format("http://127.0.0.1:{}", client_port); }
  std::string PeerUrl() const { return fmt::format("http://127.0.0.1:{}", peer_port); }
  fs::path DataDir() const { return scratch / "data"; }
};

BackupVerifier::BackupVerifier(boost::asio::io_context& io, Options options, LiveEndpoints live,
                               Done done)
    : io_(io), options_(std::move(options)), live_(std::move(live)), done_(std::move(done)) {
  status_.enabled = true;
  // The children run in the scratch directory: relative paths would name files there.
  std::error_code ec;
  options_.backup_dir = fs::absolute(options_.backup_dir, ec);
  for (std::string* bin : {&options_.etcd_bin, &options_.etcdctl_bin}) {
    if (bin->find('/') != std::string::npos) *bin = fs::absolute(*bin, ec).string();
  }
}

BackupVerifier::~BackupVerifier() {
  disk_.join();  // a checksum in flight (its answer is dropped)
  if (run_) {
    run_->tool.KillNow();
    run_->etcd.KillNow();
    std::error_code ec;
    fs::remove_all(run_->scratch, ec);
  }
}

bool BackupVerifier::Current(uint64_t id) const { return run_ && run_->id == id; }

// Only while the run `id` is the current one and has no verdict yet.
template <typename F>
auto BackupVerifier::Guarded(uint64_t id, F f) {
  return [this, alive = std::weak_ptr<bool>(alive_), id, f = std::move(f)](auto&&... args) mutable {
    if (alive.expired() || !Current(id) || run_->finishing) return;
    f(std::forward<decltype(args)>(args)...);
  };
}

void BackupVerifier::Recover() {
  std::string prefix = ScratchPrefix();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.backup_dir, ec)) {
    std::string name = entry.path().filename().string();
    if (!name.starts_with(prefix)) continue;
    pid_t pid = static_cast<pid_t>(std::atol(name.c_str() + prefix.size()));
    if (pid == ::getpid() || (pid > 0 && (::kill(pid, 0) == 0 || errno != ESRCH))) continue;
    std::error_code rm;
    fs::remove_all(entry.path(), rm);
    spdlog::info("backup verification: removed {}, left by a scheduler that is gone",
                 entry.path().string());
  }
  for (const auto& b : ListBackups(options_.backup_dir)) {
    if (!b.restore_check || !b.restore_check->restored) continue;
    status_.last_verified = b.name;
    status_.last_verified_unix_time = b.time.time_since_epoch().count();
    status_.last_verified_at_unix = b.restore_check->at.time_since_epoch().count();
    break;  // newest first
  }
}

Status BackupVerifier::Enqueue(const std::string& name) {
  if (auto parsed = ParseBackupName(name); !parsed.ok()) return parsed.error();
  std::error_code ec;
  if (!fs::is_regular_file(options_.backup_dir / name, ec)) {
    return MakeError(ErrorCode::kNotFound, "no backup {} in {} (GET /backups lists them)", name,
                     options_.backup_dir.string());
  }
  if ((run_ && run_->name == name) ||
      std::find(queue_.begin(), queue_.end(), name) != queue_.end()) {
    return MakeError(ErrorCode::kAlreadyExists, "backup {} is being verified already", name);
  }
  if (queue_.size() >= options_.max_queued) {
    return MakeError(ErrorCode::kUnavailable,
                     "{} backups are waiting to be verified already; try again later",
                     queue_.size());
  }
  queue_.push_back(name);
  status_.queued = queue_.size();
  if (!run_) StartNext();
  return OkStatus();
}

void BackupVerifier::StartNext() {
  if (run_ || queue_.empty()) return;
  run_ = std::make_unique<Run>(io_);
  Run& run = *run_;
  run.id = next_id_++;
  run.name = queue_.front();
  queue_.pop_front();
  status_.queued = queue_.size();
  status_.running = run.name;
  if (auto parsed = ParseBackupName(run.name); parsed.ok()) {
    run.cluster_id = parsed->cluster_id;
    run.time = parsed->time;
  }
  run.scratch = options_.backup_dir / fmt::format("{}{}-{}", ScratchPrefix(), ::getpid(), run.id);
  run.started = Clock::now();
  run.step = "checking the file's checksums";
  spdlog::info("backup verification: {}: restoring it into a scratch etcd", run.name);
  run.deadline.expires_after(options_.timeout);
  run.deadline.async_wait(Guarded(run.id, [this](boost::system::error_code ec) {
    if (ec) return;
    Fail(fmt::format("timed out after {} s while {}", options_.timeout.count() / 1000.0,
                     run_->step));
  }));
  // Hundreds of MB are hashed: not on the event loop.
  boost::asio::post(disk_, [this, alive = std::weak_ptr<bool>(alive_), dir = options_.backup_dir,
                            name = run.name, id = run.id, &io = io_] {
    auto verified = VerifyBackup(dir, name);
    boost::asio::post(io, [this, alive, id, verified = std::move(verified)] {
      if (alive.expired() || !Current(id) || run_->finishing) return;
      if (!verified.ok()) return Fail(verified.error().message);
      Restore();
    });
  });
}

void BackupVerifier::Restore() {
  Run& run = *run_;
  std::error_code ec;
  fs::create_directories(run.scratch, ec);
  if (ec) return Fail(fmt::format("cannot create {}: {}", run.scratch.string(), ec.message()));
  auto ports = TwoFreePorts(io_);
  if (!ports.ok()) return Fail(ports.error().message);
  std::tie(run.client_port, run.peer_port) = *ports;
  run.step = "etcdctl snapshot restore ran";
  Etcdctl({"snapshot", "restore", (options_.backup_dir / run.name).string(),
           std::string("--name=") + kScratchName, "--data-dir=" + run.DataDir().string(),
           fmt::format("--initial-cluster={}={}", kScratchName, run.PeerUrl()),
           std::string("--initial-cluster-token=") + kScratchToken,
           "--initial-advertise-peer-urls=" + run.PeerUrl()},
          [this](int status, const std::string&) {
            if (!ExitedZero(status)) {
              return Fail("etcdctl snapshot restore failed (" + DescribeWaitStatus(status) +
                          "): " + EtcdctlComplaint(run_->scratch / "etcdctl.log"));
            }
            StartEtcd();
          });
}

void BackupVerifier::StartEtcd() {
  Run& run = *run_;
  run.step = "the scratch etcd started";
  std::vector<std::string> argv = {
      options_.etcd_bin,
      std::string("--name=") + kScratchName,
      "--data-dir=" + run.DataDir().string(),
      "--listen-client-urls=" + run.ClientUrl(),
      "--advertise-client-urls=" + run.ClientUrl(),
      "--listen-peer-urls=" + run.PeerUrl(),
      "--initial-advertise-peer-urls=" + run.PeerUrl(),
      fmt::format("--initial-cluster={}={}", kScratchName, run.PeerUrl()),
      std::string("--initial-cluster-token=") + kScratchToken};
  fs::path log = run.scratch / "etcd.log";
  uint64_t id = run.id;
  auto started = run.etcd.Start(
      argv, run.scratch, log, [this, alive = std::weak_ptr<bool>(alive_), id, log](int status) {
        if (alive.expired() || !Current(id)) return;
        if (run_->finishing) {
          run_->timer.cancel();
          if (auto then = std::move(run_->on_stopped)) then();
          return;
        }
        Fail(fmt::format("the scratch etcd exited ({}) while {}: {}", DescribeWaitStatus(status),
                         run_->step, executor::shell::ReadLogTail(log, 3, 600)));
      });
  if (!started.ok()) return Fail(started.error().message);
  run.step = "waiting for the scratch etcd to answer";
  AwaitEtcd();
}

void BackupVerifier::AwaitEtcd() {
  Run& run = *run_;
  etcd::Client::Options options;
  options.request_timeout = std::chrono::seconds(1);
  auto client =
      std::make_shared<etcd::Client>(io_, HostPort{"127.0.0.1", run.client_port}, options);
  client->Status(Guarded(run.id, [this, client](Result<etcd::StatusResponse> status) {
    if (status.ok() && status->leader != 0) return HashRestored();
    run_->timer.expires_after(kReadyPoll);
    run_->timer.async_wait(Guarded(run_->id, [this](boost::system::error_code ec) {
      if (!ec) AwaitEtcd();
    }));
  }));
}

void BackupVerifier::HashRestored() {
  run_->step = "etcdctl endpoint hashkv ran on the scratch etcd";
  Etcdctl({"endpoint", "hashkv", "--endpoints=" + run_->ClientUrl(), "-w", "json",
           "--dial-timeout=2s", "--command-timeout=10s"},
          [this](int status, const std::string& out) {
            auto hashes = etcd::DecodeEtcdctlHashKV(out);
            if (!ExitedZero(status) || !hashes.ok() || hashes->size() != 1) {
              return Fail("the scratch etcd did not answer HashKV: " +
                          (hashes.ok() ? EtcdctlComplaint(run_->scratch / "etcdctl.log")
                                       : hashes.error().message));
            }
            run_->restored = hashes->front();
            run_->live = live_ ? live_() : std::vector<std::string>{};
            HashLive(0, std::nullopt);
          });
}

void BackupVerifier::HashLive(size_t next, std::optional<Error> first_error) {
  Run& run = *run_;
  uint64_t revision = run.restored->header.revision;
  auto judge = [this](const Result<etcd::HashKV>& live) {
    JudgeRestore(*run_->restored, run_->cluster_id, live, run_->check);
    if (!run_->check.restored) return Fail(run_->check.error);
    RestoreCheck check = run_->check;
    StopScratch([this, check] { Finish(check); });
  };
  if (next >= run.live.size() || next >= kLiveTries) {
    return judge(first_error ? *first_error
                             : MakeError(ErrorCode::kUnavailable, "no live member to ask"));
  }
  run.step = "etcdctl endpoint hashkv ran on " + run.live[next];
  std::vector<std::string> args = {"endpoint",
                                   "hashkv",
                                   "--endpoints=" + run.live[next],
                                   fmt::format("--rev={}", revision),
                                   "-w",
                                   "json",
                                   "--dial-timeout=2s",
                                   "--command-timeout=10s"};
  if (live_tls_) {
    args.insert(args.end(), {"--cacert=" + live_tls_->ca_file, "--cert=" + live_tls_->cert_file,
                             "--key=" + live_tls_->key_file});
  }
  Etcdctl(std::move(args), [this, next, first_error, judge](int status, const std::string& out) {
    auto hashes = etcd::DecodeEtcdctlHashKV(out);
    if (ExitedZero(status) && hashes.ok() && hashes->size() == 1) {
      return judge(hashes->front());
    }
    Error error = MakeError(ErrorCode::kUnavailable, "{}: {}", run_->live[next],
                            EtcdctlComplaint(run_->scratch / "etcdctl.log"));
    // etcd's own answer about the revision is the cluster's: asking others changes
    // nothing.
    if (Mentions(error, "required revision") || Mentions(error, "future revision")) {
      return judge(error);
    }
    HashLive(next + 1, first_error ? first_error : error);
  });
}

void BackupVerifier::Etcdctl(std::vector<std::string> args,
                             std::function<void(int, std::string)> done) {
  Run& run = *run_;
  fs::path log = run.scratch / "etcdctl.log";
  fs::path out = run.scratch / "etcdctl.out";
  std::error_code ec;
  fs::remove(log, ec);  // the complaint read afterwards is this run's
  args.insert(args.begin(), options_.etcdctl_bin);
  auto started = run.tool.Start(
      args, run.scratch, log,
      Guarded(run.id, [done = std::move(done), out](int status) { done(status, ReadFile(out)); }),
      out);
  if (!started.ok()) Fail(started.error().message);
}

void BackupVerifier::Fail(std::string why) {
  run_->check.restored = false;
  run_->check.error = std::move(why);
  RestoreCheck check = run_->check;
  StopScratch([this, check] { Finish(check); });
}

void BackupVerifier::StopScratch(std::function<void()> then) {
  Run& run = *run_;
  run.finishing = true;
  run.deadline.cancel();
  run.timer.cancel();
  run.tool.KillNow();
  if (!run.etcd.pid()) return then();
  run.on_stopped = std::move(then);
  run.etcd.Signal(SIGTERM);
  run.timer.expires_after(options_.stop_grace);
  run.timer.async_wait(
      [this, alive = std::weak_ptr<bool>(alive_), id = run.id](boost::system::error_code ec) {
        if (ec || alive.expired() || !Current(id) || !run_->on_stopped) return;
        spdlog::warn("backup verification: the scratch etcd did not stop within {} ms; killed",
                     options_.stop_grace.count());
        run_->etcd.KillNow();
        auto then = std::move(run_->on_stopped);
        then();
      });
}

void BackupVerifier::Finish(RestoreCheck check) {
  std::unique_ptr<Run> run = std::move(run_);
  std::error_code ec;
  fs::remove_all(run->scratch, ec);
  if (ec)
    spdlog::warn("backup verification: cannot remove {}: {}", run->scratch.string(), ec.message());
  check.at = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  check.seconds = std::chrono::duration<double>(Clock::now() - run->started).count();
  status_.running.clear();
  Status recorded = RecordRestoreCheck(options_.backup_dir, run->name, check);
  if (!recorded.ok() && recorded.error().code == ErrorCode::kNotFound) {
    spdlog::info("backup verification: {}: {}; its verdict is dropped", run->name,
                 recorded.error().message);
  } else {
    if (!recorded.ok()) {
      spdlog::error("backup verification: {}: cannot record the verdict: {}", run->name,
                    recorded.error().ToString());
    }
    if (check.restored) {
      ++status_.restored;
      int64_t t = run->time.time_since_epoch().count();
      if (status_.last_verified.empty() || t >= status_.last_verified_unix_time) {
        status_.last_verified = run->name;
        status_.last_verified_unix_time = t;
        status_.last_verified_at_unix = check.at.time_since_epoch().count();
      }
    } else {
      ++status_.failures;
      status_.last_failure = run->name + ": " + check.error;
    }
    if (done_) done_(run->name, check);
  }
  // The run's children and timers go once this handler has returned (one of them may be what
  // called us).
  boost::asio::post(io_, [run = std::shared_ptr<Run>(std::move(run))] {});
  StartNext();
}

}  // namespace etcd_mesos::scheduler::shell
