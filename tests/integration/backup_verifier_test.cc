// BackupVerifier against a real etcd (the "live cluster", one member) and the real etcd and
// etcdctl: a good snapshot restores and its HashKV matches; a tampered file fails with the reason
// (bytes flipped: etcd's trailer no longer matches; a value changed and the trailer recomputed:
// the restore works and the HashKV comparison catches it); a cluster compacted since the snapshot
// leaves the hash uncompared but the restore verified; a scratch etcd that never answers is
// stopped at the deadline; and nothing is left behind on any path (no scratch directory, no
// process).
#include "scheduler/shell/backup_verifier.h"

#include <openssl/sha.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "common/encoding.h"
#include "etcd/client.h"
#include "testing/etcd_server.h"
#include "testing/local_system.h"
#include "testing/tempdir.h"

namespace etcd_mesos::scheduler::shell {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void WriteAll(const fs::path& p, const std::string& data) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
}

std::string Sha256(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<char*>(digest), sizeof digest);
}

std::vector<std::string> ScratchDirs(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().starts_with(".verify-")) out.push_back(e.path().string());
  }
  return out;
}

class BackupVerification : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(BackupDir());
    ASSERT_TRUE(live_.StartNewCluster().ok()) << live_.LogTail();
    etcd::Client client(io_, live_.client_endpoint());
    for (int i = 0; i < 100; ++i) {
      auto put = etcd::Await<etcd::PutResponse>(io_, [&](auto cb) {
        client.Put(fmt::format("/v/key-{:04}", i), fmt::format("value-{:04}", i), cb);
      });
      ASSERT_TRUE(put.ok()) << put.error();
    }
  }

  fs::path BackupDir() const { return dir_.path() / "backups"; }

  std::pair<int, std::string> Etcdctl(const std::string& args) {
    return test::RunCommand("ETCDCTL_API=3 etcdctl --endpoints=" + live_.client_url() + " " + args +
                            " 2>&1");
  }

  // `etcdctl snapshot save` of the live member, kept as a backup the way the scheduler keeps
  // one (FinishBackup: the name carries the revision and cluster id, the sidecar the checksums).
  std::string TakeBackup(int second = 0) {
    etcd::Client client(io_, live_.client_endpoint());
    auto status = etcd::Await<etcd::StatusResponse>(io_, [&](auto cb) { client.Status(cb); });
    EXPECT_TRUE(status.ok()) << status.error();
    if (!status.ok()) return "";
    fs::path saved = dir_.path() / "saved.db";
    fs::remove(saved);
    auto r = Etcdctl("snapshot save " + saved.string());
    EXPECT_EQ(r.first, 0) << r.second;
    std::string data = ReadAll(saved);
    std::string trailer = data.substr(data.size() - 32);
    fs::path partial = BackupDir() / ".partial";
    WriteAll(partial, data.substr(0, data.size() - 32));
    WallTime t = WallTime(std::chrono::seconds(1'800'000'000 + second));
    auto done =
        FinishBackup(BackupDir(), partial, HexEncode(trailer),
                     BackupName{"v", t, status->header.revision, status->header.cluster_id}, "n1");
    EXPECT_TRUE(done.ok()) << done.error();
    return done.ok() ? done->name : "";
  }

  std::unique_ptr<BackupVerifier> MakeVerifier(BackupVerifier::Options options = {}) {
    options.backup_dir = BackupDir();
    return std::make_unique<BackupVerifier>(
        io_, options, [this] { return live_endpoints_; },
        [this](const std::string& name, const RestoreCheck& check) {
          verdicts_.emplace_back(name, check);
        });
  }

  // Runs the loop until `n` verdicts are in.
  bool AwaitVerdicts(size_t n, int seconds = 90) {
    auto deadline = Clock::now() + std::chrono::seconds(seconds);
    io_.restart();
    while (verdicts_.size() < n && Clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(50));
    }
    return verdicts_.size() >= n;
  }

  RestoreCheck VerifyOne(BackupVerifier& verifier, const std::string& name) {
    size_t before = verdicts_.size();
    Status queued = verifier.Enqueue(name);
    EXPECT_TRUE(queued.ok()) << queued.error();
    EXPECT_TRUE(AwaitVerdicts(before + 1)) << "no verdict for " << name;
    if (verdicts_.size() <= before) return {};
    EXPECT_EQ(verdicts_.back().first, name);
    EXPECT_TRUE(ScratchDirs(BackupDir()).empty()) << "the scratch directory is removed";
    EXPECT_TRUE(verifier.status().running.empty());
    return verdicts_.back().second;
  }

  json Sidecar(const std::string& name) {
    return json::parse(ReadAll(BackupDir() / (name + ".json")));
  }

  // Rewrites backup `name` with `damage` done to it; `fix` recomputes etcd's trailer over the
  // damaged database (so that only the content can tell); the sidecar is made to match the file
  // either way (so that only etcd's own checks and the hash can tell).
  void Tamper(const std::string& name, const std::function<void(std::string&)>& damage, bool fix) {
    std::string data = ReadAll(BackupDir() / name);
    std::string db = data.substr(0, data.size() - 32);
    damage(db);
    std::string trailer = fix ? Sha256(db) : data.substr(data.size() - 32);
    WriteAll(BackupDir() / name, db + trailer);
    json side = Sidecar(name);
    side["sha256"] = HexEncode(Sha256(db + trailer));
    WriteAll(BackupDir() / (name + ".json"), side.dump());
  }

  test::TempDir dir_{"em-verify"};
  boost::asio::io_context io_;
  test::EtcdServer live_{{.name = "n1", .ip = "127.0.0.1"}, dir_.path()};
  std::vector<std::string> live_endpoints_{live_.client_url()};
  std::vector<std::pair<std::string, RestoreCheck>> verdicts_;
};

TEST_F(BackupVerification, AGoodBackupIsRestoredAndItsHashMatchesTheLiveCluster) {
  std::string name = TakeBackup();
  ASSERT_EQ(Etcdctl("put /v/after-the-backup x").first, 0) << "the cluster moves on";
  auto verifier = MakeVerifier();
  auto t0 = Clock::now();
  RestoreCheck check = VerifyOne(*verifier, name);
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_TRUE(check.restored) << check.error;
  EXPECT_TRUE(check.hash_compared) << check.error;
  EXPECT_EQ(check.error, "");
  ASSERT_TRUE(check.hash && check.live_hash);
  EXPECT_EQ(*check.hash, *check.live_hash);
  EXPECT_GE(check.hash_revision, ParseBackupName(name)->revision);
  EXPECT_EQ(check.compact_revision, -1);

  json side = Sidecar(name);
  EXPECT_EQ(side["verified"], "restored");
  EXPECT_EQ(side["hash_compared"], true);
  EXPECT_EQ(side["hash"], *check.hash);
  EXPECT_EQ(side["hash_revision"], check.hash_revision);
  EXPECT_EQ(side["verify_error"], "");
  EXPECT_EQ(side["size"], fs::file_size(BackupDir() / name)) << "the rest of the sidecar stays";
  auto list = ListBackups(BackupDir());
  ASSERT_EQ(list.size(), 1u);
  ASSERT_TRUE(list[0].restore_check.has_value());
  EXPECT_TRUE(list[0].restore_check->restored);
  EXPECT_TRUE(list[0].verified);
  EXPECT_EQ(verifier->status().restored, 1u);
  EXPECT_EQ(verifier->status().failures, 0u);
  EXPECT_EQ(verifier->status().last_verified, name);
  EXPECT_EQ(verifier->status().last_verified_unix_time, 1'800'000'000);
  std::printf(
      "[figures] a %llu-byte backup verified (restore, scratch etcd, two HashKVs) in "
      "%.2fs (%.2fs by its own count)\n",
      static_cast<unsigned long long>(fs::file_size(BackupDir() / name)), seconds, check.seconds);

  // A restarted scheduler finds it in the sidecar.
  auto again = MakeVerifier();
  again->Recover();
  EXPECT_EQ(again->status().last_verified, name);
}

TEST_F(BackupVerification, BytesFlippedInTheDatabaseFailWithTheReason) {
  std::string name = TakeBackup();
  Tamper(
      name, [](std::string& db) { db[db.size() / 2] ^= 0x5a; }, /*fix=*/false);
  auto verifier = MakeVerifier();
  RestoreCheck check = VerifyOne(*verifier, name);
  EXPECT_FALSE(check.restored);
  EXPECT_THAT(check.error, HasSubstr("corrupt or truncated"));
  json side = Sidecar(name);
  EXPECT_EQ(side["verified"], "failed");
  EXPECT_THAT(side["verify_error"].get<std::string>(), HasSubstr("corrupt or truncated"));
  EXPECT_EQ(verifier->status().failures, 1u);
  EXPECT_THAT(verifier->status().last_failure, HasSubstr(name));
  EXPECT_TRUE(verifier->status().last_verified.empty());
  auto list = ListBackups(BackupDir());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_FALSE(list[0].verified) << "retention no longer counts it as a good one";
}

TEST_F(BackupVerification, AValueChangedWithEtcdsTrailerRecomputedFailsOnTheHash) {
  std::string name = TakeBackup();
  // bbolt keeps no checksum of its data pages: with etcd's trailer recomputed, the file restores
  // and etcd serves it, and only the content says it is not what the cluster held.
  Tamper(
      name,
      [](std::string& db) {
        size_t at = db.find("value-0042");
        ASSERT_NE(at, std::string::npos);
        for (; at != std::string::npos; at = db.find("value-0042", at))
          db.replace(at, 10, "VALUE-0042");
      },
      /*fix=*/true);
  auto verifier = MakeVerifier();
  RestoreCheck check = VerifyOne(*verifier, name);
  EXPECT_FALSE(check.restored);
  EXPECT_TRUE(check.hash_compared);
  ASSERT_TRUE(check.hash && check.live_hash);
  EXPECT_NE(*check.hash, *check.live_hash);
  EXPECT_THAT(check.error, HasSubstr("does not hold what the cluster held"));
  EXPECT_EQ(Sidecar(name)["verified"], "failed");
  EXPECT_EQ(verifier->status().failures, 1u);
}

TEST_F(BackupVerification,
       ACompactionSinceTheSnapshotLeavesTheHashUncomparedButTheRestoreVerified) {
  std::string name = TakeBackup();
  ASSERT_EQ(Etcdctl("put /v/after x").first, 0);
  auto rev = Etcdctl("endpoint status -w json");
  uint64_t revision = json::parse(rev.second)[0]["Status"]["header"]["revision"];
  ASSERT_EQ(Etcdctl(fmt::format("compact {} --physical", revision)).first, 0);
  auto verifier = MakeVerifier();
  RestoreCheck check = VerifyOne(*verifier, name);
  EXPECT_TRUE(check.restored) << check.error;
  EXPECT_FALSE(check.hash_compared);
  EXPECT_THAT(check.error, HasSubstr("compacted its history past revision"));
  json side = Sidecar(name);
  EXPECT_EQ(side["verified"], "restored");
  EXPECT_EQ(side["hash_compared"], false);
  EXPECT_EQ(verifier->status().restored, 1u);
}

TEST_F(BackupVerification, NoLiveMemberLeavesTheHashUncompared) {
  std::string name = TakeBackup();
  live_endpoints_ = {"http://127.0.0.1:1"};  // nothing listens there
  auto verifier = MakeVerifier();
  RestoreCheck check = VerifyOne(*verifier, name);
  EXPECT_TRUE(check.restored) << check.error;
  EXPECT_FALSE(check.hash_compared);
  EXPECT_THAT(check.error, HasSubstr("no live member answered HashKV"));
}

TEST_F(BackupVerification, AScratchEtcdThatNeverAnswersIsStoppedAtTheDeadline) {
  std::string name = TakeBackup();
  fs::path pid_file = dir_.path() / "fake-etcd.pid";
  fs::path fake = dir_.path() / "fake-etcd";
  WriteAll(fake, "#!/bin/sh\necho $$ > " + pid_file.string() + "\nexec sleep 600\n");
  fs::permissions(fake, fs::perms::owner_all);
  BackupVerifier::Options options;
  options.etcd_bin = fake.string();
  options.timeout = std::chrono::seconds(3);
  options.stop_grace = std::chrono::milliseconds(500);
  auto verifier = MakeVerifier(options);
  RestoreCheck check = VerifyOne(*verifier, name);
  EXPECT_FALSE(check.restored);
  EXPECT_THAT(check.error, HasSubstr("timed out after 3 s while waiting for the scratch etcd"));
  pid_t pid = std::atoi(ReadAll(pid_file).c_str());
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(::kill(pid, 0) != 0 && errno == ESRCH) << "the scratch etcd is gone";
}

TEST_F(BackupVerification, RequestsAreCheckedAndQueuedOnce) {
  std::string first = TakeBackup(0);
  std::string second = TakeBackup(1);
  BackupVerifier::Options options;
  options.max_queued = 1;
  auto verifier = MakeVerifier(options);
  EXPECT_EQ(verifier->Enqueue("../../etc/passwd").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(verifier->Enqueue("etcd-v-20200101T000000Z-rev1-0000000000000001.db").error().code,
            ErrorCode::kNotFound);
  ASSERT_TRUE(verifier->Enqueue(first).ok());  // running
  EXPECT_EQ(verifier->Enqueue(first).error().code, ErrorCode::kAlreadyExists);
  ASSERT_TRUE(verifier->Enqueue(second).ok());  // queued
  EXPECT_EQ(verifier->Enqueue(second).error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(verifier->Enqueue(TakeBackup(2)).error().code, ErrorCode::kUnavailable);
  ASSERT_TRUE(AwaitVerdicts(2));
  EXPECT_EQ(verdicts_[0].first, first);
  EXPECT_EQ(verdicts_[1].first, second);
  EXPECT_TRUE(verdicts_[1].second.restored) << verdicts_[1].second.error;
  EXPECT_EQ(verifier->status().last_verified, second) << "the newer of the two";
}

TEST_F(BackupVerification, DestroyedMidCheckLeavesNothingBehindAndRecoverCleansWhatCrashesLeft) {
  std::string name = TakeBackup();
  {
    auto verifier = MakeVerifier();
    ASSERT_TRUE(verifier->Enqueue(name).ok());
    auto deadline = Clock::now() + std::chrono::seconds(30);
    io_.restart();
    while (ScratchDirs(BackupDir()).empty() && Clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(5));
    }
    ASSERT_FALSE(ScratchDirs(BackupDir()).empty());
  }
  EXPECT_TRUE(ScratchDirs(BackupDir()).empty());
  EXPECT_TRUE(verdicts_.empty()) << "no callback after destruction";

  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  fs::path dead = BackupDir() / fmt::format(".verify-{}-{}-1", host, 999'999'999);
  fs::path ours = BackupDir() / fmt::format(".verify-{}-{}-1", host, ::getpid());
  fs::path other_host = BackupDir() / ".verify-elsewhere-999999999-1";
  for (const auto& d : {dead, ours, other_host}) fs::create_directories(d / "data");
  MakeVerifier()->Recover();
  EXPECT_FALSE(fs::exists(dead)) << "its scheduler is gone";
  EXPECT_TRUE(fs::exists(ours)) << "this process's";
  EXPECT_TRUE(fs::exists(other_host)) << "another host's (a shared backup directory)";
}

}  // namespace
}  // namespace etcd_mesos::scheduler::shell
