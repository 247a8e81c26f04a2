// Backups and restore end to end: the scheduler (shell + core) against etcd-mesos-local, the real
// executor and real etcd/etcdctl. Snapshots appear on schedule, verify with etcdctl, and are
// pruned, and each is verified (restored into a scratch etcd, its HashKV the cluster's); POST
// /backup and POST /backups/<name>/verify need the token; after a total loss (every agent's host
// lost and wiped) a restore brings the cluster back to its size with every key the snapshot held; a
// corrupt or truncated snapshot is refused and nothing is launched from it.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <utility>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "etcd/client.h"
#include "scheduler/shell/backups.h"
#include "testing/etcd_server.h"
#include "testing/local_system.h"
#include "testing/ports.h"
#include "testing/tempdir.h"

namespace etcd_mesos::scheduler {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

using test::RunCommand;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

constexpr const char* kToken = "s3cret-token";

class SchedulerBackups : public ::testing::Test {
 protected:
  fs::path BackupDir() const { return dir_.path() / "backups"; }

  void StartAll(int size, std::vector<std::string> extra_flags) {
    fs::path token = dir_.path() / "token";
    std::ofstream(token) << kToken << "\n";
    test::LocalSystemOptions options;
    options.size = size;
    options.cluster_name = "bk";
    options.executor_path = EXECUTOR_PATH;
    options.extra_flags = {"--reseed-token-file=" + token.string(),
                           "--backup-dir=" + BackupDir().string()};
    options.extra_flags.insert(options.extra_flags.end(), extra_flags.begin(), extra_flags.end());
    system_.Start(options);
  }

  bool RunUntil(const std::function<bool()>& done, int seconds) {
    return system_.RunUntil(done, seconds);
  }
  const SchedulerCore& core() const { return system_.core(); }
  bool AtSize(int size) const { return system_.AtSize(size); }
  std::string Endpoints() const { return system_.Endpoints(); }
  std::pair<int, std::string> Etcdctl(const std::string& args) {
    return system_.Etcdctl(args, /*command_timeout_s=*/20);
  }

  net::HttpResponse Admin(net::Verb method, const std::string& target, bool with_token) {
    net::HttpRequest req;
    req.method = method;
    req.endpoint = system_.scheduler()->admin_address();
    req.target = target;
    req.timeout = std::chrono::seconds(30);
    if (with_token) req.headers.emplace_back("Authorization", std::string("Bearer ") + kToken);
    std::optional<Result<net::HttpResponse>> got;
    net::HttpFetch(io_, req, [&](Result<net::HttpResponse> r) { got = std::move(r); });
    RunUntil([&] { return got.has_value(); }, 40);
    if (!got || !got->ok()) {
      ADD_FAILURE() << "no answer to " << target;
      return {};
    }
    return **got;
  }

  // GET /stats until `done` says so (each a fresh read), or `seconds` pass.
  json StatsUntil(const std::function<bool(const json&)>& done, int seconds) {
    auto deadline = Clock::now() + std::chrono::seconds(seconds);
    json stats;
    while (Clock::now() < deadline) {
      stats = json::parse(Admin(net::Verb::get, "/stats", false).body);
      if (done(stats)) break;
      io_.run_for(std::chrono::milliseconds(200));
    }
    return stats;
  }

  // Writes n keys /bk/key-0000 = value-0000 ... through the v3 API, one member at a time.
  void PutKeys(int n) {
    std::string first = core().state().members.begin()->second.ClientUrl();
    auto options = system_.EtcdOptions();
    ASSERT_TRUE(options.ok()) << options.error();
    auto endpoint = etcd::ClientEndpoint(first, *options);
    ASSERT_TRUE(endpoint.ok()) << endpoint.error();
    etcd::Client client(io_, *endpoint, *options);
    int done = 0;
    std::function<void(int)> put = [&](int i) {
      if (i == n) return;
      client.Put(fmt::format("/bk/key-{:04}", i), fmt::format("value-{:04}", i),
                 [&, i](Result<etcd::PutResponse> r) {
                   ASSERT_TRUE(r.ok()) << r.error();
                   ++done;
                   put(i + 1);
                 });
    };
    put(0);
    ASSERT_TRUE(RunUntil([&] { return done == n; }, 60)) << done << " of " << n << " written";
  }

  test::TempDir dir_{"em-backup"};
  boost::asio::io_context io_;
  test::LocalSystem system_{io_, dir_.path()};
};

TEST_F(SchedulerBackups, SnapshotsAppearOnScheduleVerifyAndArePruned) {
  ASSERT_NO_FATAL_FAILURE(
      StartAll(3, {"--backup-interval=1s", "--backup-keep=2", "--backup-keep-hourly=0",
                   "--backup-keep-daily=0", "--healthz-max-backup-age=1h"}));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 60)) << core().health_reason();
  ASSERT_EQ(Etcdctl("put /bk/scheduled yes").first, 0);
  auto t0 = Clock::now();
  ASSERT_TRUE(RunUntil([&] { return core().backups().taken >= 5; }, 40))
      << core().backups().taken << " taken; " << core().backups().last_error;
  double per_backup = Since(t0) / 5;
  EXPECT_EQ(core().backups().failures, 0u) << core().backups().last_error;
  io_.run_for(std::chrono::milliseconds(300));  // the retention of the latest one

  // Pruned to the last two; each verifies, and etcdctl itself reads it as a snapshot.
  auto backups = shell::ListBackups(BackupDir());
  ASSERT_GE(backups.size(), 1u);
  EXPECT_LE(backups.size(), 3u) << "keep 2 (plus perhaps one being written)";
  auto status = Etcdctl("endpoint status -w json");
  ASSERT_EQ(status.first, 0) << status.second;
  uint64_t cluster_id = json::parse(status.second)[0]["Status"]["header"]["cluster_id"];
  for (const auto& b : backups) {
    SCOPED_TRACE(b.name);
    EXPECT_TRUE(b.verified);
    auto verified = shell::VerifyBackup(BackupDir(), b.name);
    EXPECT_TRUE(verified.ok()) << verified.error();
    EXPECT_EQ(b.cluster_id, cluster_id) << "the name carries etcd's cluster id";
    EXPECT_GT(b.revision, 1u);
    EXPECT_FALSE(b.member.empty());
    auto snap = RunCommand("ETCDCTL_API=3 etcdctl snapshot status -w json " +
                           (BackupDir() / b.name).string());
    ASSERT_EQ(snap.first, 0) << snap.second;
    EXPECT_GE(json::parse(snap.second)["revision"].get<uint64_t>(), b.revision);
    auto sum = RunCommand("sha256sum " + (BackupDir() / b.name).string());
    EXPECT_EQ(sum.second.substr(0, 64), b.sha256) << "the sidecar's sha256 is sha256sum's";
  }
  // The followers are preferred: the leader is spared.
  std::printf("[figures] periodic backup every ~%.2fs; newest %s, %llu bytes\n", per_backup,
              backups.front().name.c_str(), static_cast<unsigned long long>(backups.front().size));

  // The admin surface tells the same.
  auto list = Admin(net::Verb::get, "/backups", false);
  EXPECT_EQ(list.status, 200u);
  auto listed = json::parse(list.body);
  ASSERT_TRUE(listed.is_array());
  EXPECT_GE(listed.size(), 1u);
  EXPECT_EQ(listed[0]["sha256"].get<std::string>().size(), 64u);
  auto stats = json::parse(Admin(net::Verb::get, "/stats", false).body);
  EXPECT_GE(stats["backups_taken"].get<uint64_t>(), 5u);
  EXPECT_EQ(stats["backup_failures"], 0);
  EXPECT_LE(stats["last_backup_age_seconds"].get<int64_t>(), 5);
  EXPECT_GT(stats["last_backup_size_bytes"].get<uint64_t>(), 0u);
  auto metrics = Admin(net::Verb::get, "/metrics", false).body;
  EXPECT_NE(metrics.find("etcd_mesos_backups_total "), std::string::npos);
  EXPECT_NE(metrics.find("etcd_mesos_last_backup_age_seconds "), std::string::npos);
  EXPECT_EQ(Admin(net::Verb::get, "/healthz", false).status, 200u);
  EXPECT_NE(Admin(net::Verb::get, "/", false).body.find("backups: newest etcd-bk-"),
            std::string::npos);

  // Each is verified in the background while the next ones are taken and pruned: none fails.
  stats = StatsUntil([](const json& s) { return s["backups_verified"].get<uint64_t>() >= 2; }, 30);
  EXPECT_GE(stats["backups_verified"].get<uint64_t>(), 2u) << stats.dump();
  EXPECT_EQ(stats["backup_verify_failures"], 0) << stats["last_backup_verify_error"];
  EXPECT_EQ(stats["backup_verification_enabled"], 1);
}

TEST_F(SchedulerBackups, TotalLossIsRestoredFromABackupWithEveryKeyAndBadSnapshotsAreRefused) {
  ASSERT_NO_FATAL_FAILURE(StartAll(3, {"--backup-interval=0"}));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 60)) << core().health_reason();
  ASSERT_NO_FATAL_FAILURE(PutKeys(200));

  // On demand, with the token only.
  EXPECT_EQ(Admin(net::Verb::post, "/backup", false).status, 401u);
  auto t0 = Clock::now();
  auto asked = Admin(net::Verb::post, "/backup", true);
  EXPECT_EQ(asked.status, 202u) << asked.body;
  ASSERT_TRUE(RunUntil([&] { return core().backups().taken == 1; }, 30))
      << core().backups().last_error;
  double backup_s = Since(t0);
  auto backups = shell::ListBackups(BackupDir());
  ASSERT_EQ(backups.size(), 1u);
  const shell::BackupRecord good = backups[0];
  std::printf("[figures] POST /backup -> %s written: %llu bytes in %.2fs\n", good.name.c_str(),
              static_cast<unsigned long long>(good.size), backup_s);

  // Verified in the background: restored into a scratch etcd, its HashKV the cluster's.
  auto stats = StatsUntil([](const json& s) { return s["backups_verified"] == 1; }, 30);
  ASSERT_EQ(stats["backups_verified"], 1) << stats.dump();
  EXPECT_EQ(stats["last_verified_backup"], good.name);
  EXPECT_EQ(stats["backup_verify_failures"], 0) << stats["last_backup_verify_error"];
  json listed = json::parse(Admin(net::Verb::get, "/backups", false).body)[0];
  EXPECT_EQ(listed["restore_check"], "restored") << listed.dump();
  EXPECT_EQ(listed["hash_compared"], true) << listed["verify_error"];
  EXPECT_GE(listed["hash_revision"].get<uint64_t>(), good.revision);
  EXPECT_EQ(listed["verified"], true);
  std::ifstream side_in(BackupDir() / (good.name + ".json"));
  EXPECT_EQ(json::parse(side_in)["verified"], "restored");
  auto metrics = Admin(net::Verb::get, "/metrics", false).body;
  EXPECT_NE(metrics.find(fmt::format("etcd_mesos_last_verified_backup_timestamp_seconds {}\n",
                                     good.time.time_since_epoch().count())),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("etcd_mesos_backup_verify_failures_total 0\n"), std::string::npos);
  std::printf("[figures] POST /backup -> written and verified (HashKV compared) after %.2fs\n",
              Since(t0));

  // On demand, with the token only; bad names are refused.
  std::string verify = "/backups/" + good.name + "/verify";
  EXPECT_EQ(Admin(net::Verb::post, verify, false).status, 401u);
  EXPECT_EQ(Admin(net::Verb::get, verify, true).status, 405u);
  EXPECT_EQ(Admin(net::Verb::post, "/backups/nonsense/verify", true).status, 400u);
  EXPECT_EQ(Admin(net::Verb::post,
                  "/backups/etcd-bk-20200101T000000Z-rev1-0000000000000001.db/verify", true)
                .status,
            404u);
  auto again = Admin(net::Verb::post, verify, true);
  EXPECT_EQ(again.status, 202u) << again.body;
  stats = StatsUntil([](const json& s) { return s["backups_verified"] == 2; }, 30);
  EXPECT_EQ(stats["backups_verified"], 2) << stats.dump();
  ASSERT_EQ(Etcdctl("put /bk/after-backup lost").first, 0);

  // A restore while the cluster lives is refused.
  auto alive = Admin(net::Verb::post, "/restore?name=" + good.name, true);
  EXPECT_EQ(alive.status, 409u) << alive.body;

  // Total loss: every agent's host is lost and comes back wiped.
  uint64_t generation = core().state().generation;
  for (int n = 1; n <= system_.cluster().agent_count(); ++n) {
    ASSERT_TRUE(system_.cluster().RestartAgent(n, /*wipe=*/true).ok());
  }
  ASSERT_TRUE(RunUntil([&] { return core().total_loss(); }, 40)) << core().health_reason();

  // A truncated snapshot (its sidecar copied: the checksum differs) and a corrupt one (the
  // sidecar rewritten to match: only etcd's trailer hash catches it) are refused.
  auto copy = [&](const std::string& name, const std::function<void(std::string&)>& damage,
                  bool fix_sidecar) {
    std::ifstream in(BackupDir() / good.name, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), {});
    damage(data);
    std::ofstream(BackupDir() / name, std::ios::binary) << data;
    std::ifstream side_in(BackupDir() / (good.name + ".json"));
    json side = json::parse(side_in);
    side["name"] = name;
    side["size"] = data.size();
    if (fix_sidecar) {
      auto d = shell::DigestFile(BackupDir() / name);
      side["sha256"] = d->sha256;
    }
    std::ofstream(BackupDir() / (name + ".json")) << side.dump();
  };
  std::string truncated = "etcd-bk-20200101T000000Z-rev1-0000000000000001.db";
  std::string corrupt = "etcd-bk-20200101T000001Z-rev1-0000000000000001.db";
  copy(
      truncated, [](std::string& d) { d.resize(d.size() / 2); }, false);
  copy(
      corrupt, [](std::string& d) { d[d.size() / 3] ^= 0x5a; }, true);
  uint64_t launched = core().state().counters.launched_servers;
  for (const auto& bad : {truncated, corrupt}) {
    auto refused = Admin(net::Verb::post, "/restore?name=" + bad, true);
    EXPECT_EQ(refused.status, 422u) << refused.body;
    EXPECT_NE(refused.body.find("nothing was launched"), std::string::npos) << refused.body;
  }
  // Verified on demand, the corrupt one fails with the reason (and is no longer listed as a
  // good backup).
  ASSERT_EQ(Admin(net::Verb::post, "/backups/" + corrupt + "/verify", true).status, 202u);
  stats = StatsUntil([](const json& s) { return s["backup_verify_failures"] == 1; }, 30);
  EXPECT_EQ(stats["backup_verify_failures"], 1) << stats.dump();
  EXPECT_NE(stats["last_backup_verify_error"].get<std::string>().find("corrupt or truncated"),
            std::string::npos)
      << stats["last_backup_verify_error"];
  EXPECT_EQ(stats["last_verified_backup"], good.name) << "still the newest good one";
  for (const auto& b : json::parse(Admin(net::Verb::get, "/backups", false).body)) {
    if (b["name"] != corrupt) continue;
    EXPECT_EQ(b["restore_check"], "failed");
    EXPECT_EQ(b["verified"], false);
  }
  EXPECT_NE(Admin(net::Verb::get, "/metrics", false)
                .body.find("etcd_mesos_backup_verify_failures_total 1\n"),
            std::string::npos);
  // Intact, but its restore check failed: refused unless forced.
  std::string unrestorable = "etcd-bk-20200101T000002Z-rev1-0000000000000001.db";
  copy(
      unrestorable, [](std::string&) {}, true);
  {
    std::ifstream in(BackupDir() / (unrestorable + ".json"));
    json side = json::parse(in);
    side["verified"] = "failed";
    side["verify_error"] = "the scratch etcd exited";
    std::ofstream(BackupDir() / (unrestorable + ".json")) << side.dump();
  }
  auto unverified = Admin(net::Verb::post, "/restore?name=" + unrestorable, true);
  EXPECT_EQ(unverified.status, 422u) << unverified.body;
  EXPECT_NE(unverified.body.find("failed verification"), std::string::npos) << unverified.body;
  EXPECT_NE(unverified.body.find("force=1"), std::string::npos) << unverified.body;
  EXPECT_EQ(Admin(net::Verb::post, "/restore?name=../../etc/passwd", true).status, 400u);
  EXPECT_EQ(Admin(net::Verb::post, "/restore?name=" + good.name, false).status, 401u);
  io_.run_for(std::chrono::seconds(2));
  EXPECT_EQ(core().state().counters.launched_servers, launched) << "nothing launched";
  EXPECT_TRUE(core().total_loss());
  EXPECT_TRUE(core().state().restore_snapshot.empty());

  // The good one: back to three voters with every key the snapshot held.
  auto t1 = Clock::now();
  auto restore = Admin(net::Verb::post, "/restore?name=" + good.name, true);
  ASSERT_EQ(restore.status, 202u) << restore.body;
  ASSERT_TRUE(RunUntil([&] { return AtSize(1) || AtSize(2) || AtSize(3); }, 60))
      << core().health_reason();
  double first_s = Since(t1);
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 90)) << core().health_reason();
  std::printf("[figures] restore: first member healthy after %.1fs, 3 voters after %.1fs\n",
              first_s, Since(t1));
  EXPECT_GT(core().state().generation, generation);
  auto keys = Etcdctl("get /bk/key- --prefix");
  ASSERT_EQ(keys.first, 0) << keys.second;
  for (int i = 0; i < 200; ++i) {
    std::string kv = fmt::format("/bk/key-{:04}\nvalue-{:04}\n", i, i);
    ASSERT_NE(keys.second.find(kv), std::string::npos) << "missing key " << i;
  }
  EXPECT_EQ(Etcdctl("get /bk/after-backup --print-value-only").second, "")
      << "written after the snapshot: not in it";
  auto list = Etcdctl("member list");
  EXPECT_EQ(std::count(list.second.begin(), list.second.end(), '\n'), 3) << list.second;
  EXPECT_EQ(list.second.find("true"), std::string::npos) << "no learner left: " << list.second;
  // The restored cluster takes writes.
  EXPECT_EQ(Etcdctl("put /bk/after-restore yes").first, 0);
}

TEST_F(SchedulerBackups, RestoreFromAnEtcdctlSnapshotAtStartOnAnEmptyCluster) {
  // A snapshot taken with plain `etcdctl snapshot save` from an etcd outside Mesos.
  fs::path file = dir_.path() / "outside.db";
  {
    test::EtcdServer outside({.name = "outside", .ip = "127.0.0.1"}, dir_.path() / "outside");
    ASSERT_TRUE(outside.StartNewCluster().ok());
    std::string ep = "--endpoints=" + outside.client_url();
    for (int i = 0; i < 50; ++i) {
      ASSERT_EQ(
          RunCommand(fmt::format("ETCDCTL_API=3 etcdctl {} put /outside/k{:02} v{:02}", ep, i, i))
              .first,
          0);
    }
    auto saved = RunCommand("ETCDCTL_API=3 etcdctl " + ep + " snapshot save " + file.string());
    ASSERT_EQ(saved.first, 0) << saved.second;
  }
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(StartAll(3, {"--backup-interval=0", "--restore-from=" + file.string()}));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 90)) << core().health_reason();
  std::printf("[figures] --restore-from at start -> 3 voters after %.1fs\n", Since(t0));
  EXPECT_EQ(core().state().counters.members_added, 2u) << "one restored, two joined";
  auto keys = Etcdctl("get /outside/ --prefix --print-value-only");
  ASSERT_EQ(keys.first, 0) << keys.second;
  EXPECT_EQ(std::count(keys.second.begin(), keys.second.end(), '\n'), 50) << keys.second;
  EXPECT_EQ(shell::ListBackups(BackupDir()).size(), 1u) << "kept as a backup";
}

TEST(SchedulerRestoreFrom, ACorruptSnapshotStopsTheSchedulerBeforeAnythingStarts) {
  test::TempDir dir("em-restore-from");
  fs::path bad = dir.path() / "snapshot.db";
  std::ofstream(bad, std::ios::binary) << std::string(4096 + 32, 'x');
  fs::path wrapper = dir.path() / "etcd-mesos-executor";
  std::ofstream(wrapper) << "#!/bin/sh\n";
  std::vector<std::string> args = {"--cluster-name=rf",
                                   "--master=127.0.0.1:1",
                                   "--state-dir=" + (dir.path() / "state").string(),
                                   "--admin-port=" + std::to_string(test::FreePort()),
                                   "--executor-bin=" + wrapper.string(),
                                   "--backup-dir=" + (dir.path() / "backups").string(),
                                   "--restore-from=" + bad.string()};
  auto parsed = shell::ParseFlags(args, {{"USER", "root"}}, ".");
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  ASSERT_TRUE(shell::LoadFiles(parsed->flags.shell).ok());
  boost::asio::io_context io;
  shell::SchedulerShell scheduler(io, parsed->flags, {});
  Status s = scheduler.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().ToString().find("corrupt or truncated"), std::string::npos) << s.error();
  EXPECT_NE(s.error().ToString().find("nothing was launched"), std::string::npos) << s.error();
  EXPECT_FALSE(scheduler.loaded());
  EXPECT_TRUE(shell::ListBackups(dir.path() / "backups").empty()) << "nothing kept from it";
}

}  // namespace
}  // namespace etcd_mesos::scheduler
