// The backup directory's file operations (real files in a temp dir), the backup and restore flags,
// the restore fields of the executor's task config, and the restore URI of a TaskInfo.
#include "scheduler/shell/backup_verifier.h"
#include "scheduler/shell/backups.h"

#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "executor/task_config.h"
#include "scheduler/shell/flags.h"
#include "scheduler/shell/shell.h"
#include "testing/tempdir.h"

namespace etcd_mesos::scheduler::shell {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using json = nlohmann::json;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void WriteAll(const fs::path& p, const std::string& data) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << data;
}

WallTime At(int h, int m = 0) {
  return std::chrono::sys_days{std::chrono::year{2026} / 11 / 24} + std::chrono::hours(h) +
         std::chrono::minutes(m);
}

class BackupFiles : public ::testing::Test {
 protected:
  // A "database" of random bytes as etcd's stream would give it (trailer stripped), written as a
  // backup through FinishBackup.
  BackupDone Make(WallTime t, uint64_t revision = 42) {
    std::string db(8192, '\0');
    for (auto& c : db) c = static_cast<char>(rng_());
    fs::path partial = dir_.path() / ".partial";
    WriteAll(partial, db);
    auto digest = DigestFile(partial);
    EXPECT_TRUE(digest.ok());
    auto done = FinishBackup(dir_.path(), partial, digest->sha256,
                             BackupName{"c", t, revision, 0xabc}, "etcd-2");
    EXPECT_TRUE(done.ok()) << done.error();
    return done.ok() ? *done : BackupDone{};
  }

  test::TempDir dir_{"em-backups"};
  std::mt19937 rng_{1};
};

TEST_F(BackupFiles, AFinishedBackupKeepsEtcdsTrailerAndASidecarThatMatches) {
  BackupDone done = Make(At(10), 77);
  EXPECT_EQ(done.name, "etcd-c-20261124T100000Z-rev77-0000000000000abc.db");
  EXPECT_EQ(done.size, 8192u + 32u) << "the database and etcd's 32-byte SHA-256";
  auto digest = DigestFile(dir_.path() / done.name);
  ASSERT_TRUE(digest.ok());
  EXPECT_TRUE(digest->trailer_matches);
  EXPECT_EQ(digest->sha256, done.sha256);
  json side = json::parse(ReadAll(dir_.path() / (done.name + ".json")));
  EXPECT_EQ(side["sha256"], done.sha256);
  EXPECT_EQ(side["size"], done.size);
  EXPECT_EQ(side["revision"], 77);
  EXPECT_EQ(side["member"], "etcd-2");
  EXPECT_EQ(side["time"], "2026-11-24T10:00:00Z");
  EXPECT_FALSE(fs::exists(dir_.path() / ".partial")) << "renamed, not copied";
  auto list = ListBackups(dir_.path());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_TRUE(list[0].verified);
  EXPECT_EQ(list[0].revision, 77u);
  EXPECT_TRUE(VerifyBackup(dir_.path(), done.name).ok());
}

TEST_F(BackupFiles, CorruptTruncatedUnlistedAndForeignNamesAreRefused) {
  BackupDone a = Make(At(10));
  BackupDone b = Make(At(11));
  BackupDone c = Make(At(12));
  // Truncated: the sidecar's checksum and etcd's trailer both disagree.
  std::string data = ReadAll(dir_.path() / a.name);
  WriteAll(dir_.path() / a.name, data.substr(0, data.size() - 100));
  auto truncated = VerifyBackup(dir_.path(), a.name);
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.error().code, ErrorCode::kDataLoss);
  EXPECT_NE(truncated.error().message.find("corrupt or truncated"), std::string::npos);
  // One byte flipped and the sidecar rewritten to match: etcd's trailer still catches it.
  data = ReadAll(dir_.path() / b.name);
  data[100] ^= 1;
  WriteAll(dir_.path() / b.name, data);
  json side = json::parse(ReadAll(dir_.path() / (b.name + ".json")));
  side["sha256"] = DigestFile(dir_.path() / b.name)->sha256;
  WriteAll(dir_.path() / (b.name + ".json"), side.dump());
  auto flipped = VerifyBackup(dir_.path(), b.name);
  ASSERT_FALSE(flipped.ok());
  EXPECT_NE(flipped.error().message.find("not the SHA-256"), std::string::npos);
  // No sidecar: no checksum to hold it to.
  fs::remove(dir_.path() / (c.name + ".json"));
  auto bare = VerifyBackup(dir_.path(), c.name);
  ASSERT_FALSE(bare.ok());
  EXPECT_NE(bare.error().message.find("sidecar"), std::string::npos);
  EXPECT_EQ(VerifyBackup(dir_.path(), "../../etc/passwd").error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(
      VerifyBackup(dir_.path(), "etcd-c-20261124T100000Z-rev1-0000000000000abc.db").error().code,
      ErrorCode::kNotFound);
}

TEST_F(BackupFiles, AnImportedSnapshotIsVerifiedFirst) {
  BackupDone ours = Make(At(9));
  fs::path outside = dir_.path() / "elsewhere.db";
  fs::copy_file(dir_.path() / ours.name, outside);
  fs::path other = dir_.path() / "imported";
  auto imported = ImportSnapshot(other, outside, "c", At(13));
  ASSERT_TRUE(imported.ok()) << imported.error();
  EXPECT_EQ(imported->name, "etcd-c-20261124T130000Z-rev0-0000000000000000.db");
  EXPECT_TRUE(VerifyBackup(other, imported->name).ok());
  WriteAll(outside, std::string(4096 + 32, 'x'));
  auto refused = ImportSnapshot(other, outside, "c", At(14));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kDataLoss);
  EXPECT_EQ(ListBackups(other).size(), 1u) << "nothing kept from the bad file";
}

TEST_F(BackupFiles, PruningFollowsThePolicyAndLeavesForeignFilesAlone) {
  std::vector<BackupDone> all;
  for (int i = 0; i < 6; ++i) all.push_back(Make(At(1, i)));
  WriteAll(dir_.path() / "notes.txt", "mine");
  RetentionPolicy keep2{2, 0h, 0h};
  auto deleted = PruneBackups(dir_.path(), keep2, At(20));
  EXPECT_EQ(deleted.size(), 4u);
  auto left = ListBackups(dir_.path());
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].name, all[5].name);
  EXPECT_EQ(left[1].name, all[4].name);
  EXPECT_FALSE(fs::exists(dir_.path() / (all[0].name + ".json"))) << "the sidecar goes too";
  EXPECT_TRUE(fs::exists(dir_.path() / "notes.txt"));
}

TEST_F(BackupFiles, ARestoreCheckIsKeptInTheSidecarAndAFailedOneIsNoLongerVerified) {
  BackupDone older = Make(At(1));
  BackupDone newer = Make(At(2));
  RestoreCheck good;
  good.restored = true;
  good.at = At(3);
  good.hash_compared = true;
  good.hash_revision = 43;
  good.hash = 4294967295u;
  good.live_hash = 4294967295u;
  good.compact_revision = 7;
  good.seconds = 1.23456;
  ASSERT_TRUE(RecordRestoreCheck(dir_.path(), older.name, good).ok());
  RestoreCheck bad;
  bad.at = At(4);
  bad.error = "etcdctl snapshot restore failed";
  ASSERT_TRUE(RecordRestoreCheck(dir_.path(), newer.name, bad).ok());

  json side = json::parse(ReadAll(dir_.path() / (older.name + ".json")));
  EXPECT_EQ(side["verified"], "restored");
  EXPECT_EQ(side["verified_at"], "2026-11-24T03:00:00Z");
  EXPECT_EQ(side["hash"], 4294967295u);
  EXPECT_EQ(side["verify_seconds"], 1.235);
  EXPECT_EQ(side["sha256"], older.sha256) << "what the sidecar held stays";
  EXPECT_EQ(json::parse(ReadAll(dir_.path() / (newer.name + ".json")))["verified"], "failed");

  auto list = ListBackups(dir_.path());
  ASSERT_EQ(list.size(), 2u);
  ASSERT_EQ(list[0].name, newer.name);
  ASSERT_TRUE(list[0].restore_check && list[1].restore_check);
  EXPECT_FALSE(list[0].restore_check->restored);
  EXPECT_EQ(list[0].restore_check->error, bad.error);
  EXPECT_FALSE(list[0].verified) << "a failed restore check: not a good backup";
  EXPECT_FALSE(list[0].restore_check->hash.has_value());
  const RestoreCheck& read = *list[1].restore_check;
  EXPECT_TRUE(list[1].verified);
  EXPECT_TRUE(read.restored);
  EXPECT_EQ(read.at, At(3));
  EXPECT_TRUE(read.hash_compared);
  EXPECT_EQ(read.hash_revision, 43u);
  EXPECT_EQ(read.hash, 4294967295u);
  EXPECT_EQ(read.live_hash, 4294967295u);
  EXPECT_EQ(read.compact_revision, 7);
  // Retention keeps the newest good one, not the newest.
  auto deleted = PruneBackups(dir_.path(), RetentionPolicy{1, 0h, 0h}, At(20));
  EXPECT_TRUE(deleted.empty()) << "the newest is kept, and the only good one";

  // Gone meanwhile (pruned): nothing is written back.
  fs::remove(dir_.path() / older.name);
  fs::remove(dir_.path() / (older.name + ".json"));
  Status late = RecordRestoreCheck(dir_.path(), older.name, good);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_.path() / (older.name + ".json")));
}

etcd::HashKV Hash(uint32_t hash, uint64_t revision, int64_t compacted, uint64_t cluster = 0xabc) {
  etcd::HashKV h;
  h.endpoint = "http://10.0.0.1:2379";
  h.header.cluster_id = cluster;
  h.header.revision = revision;
  h.hash = hash;
  h.compact_revision = compacted;
  return h;
}

TEST(JudgeRestore, EqualHashesVerifyAndADifferentOneFails) {
  RestoreCheck check;
  JudgeRestore(Hash(11, 40, 5), 0xabc, Hash(11, 90, 5), check);
  EXPECT_TRUE(check.restored);
  EXPECT_TRUE(check.hash_compared);
  EXPECT_EQ(check.error, "");
  EXPECT_EQ(check.hash_revision, 40u) << "the restored etcd's revision is the snapshot's";
  EXPECT_EQ(check.hash, 11u);
  EXPECT_EQ(check.live_hash, 11u);
  EXPECT_EQ(check.compact_revision, 5);

  JudgeRestore(Hash(11, 40, 5), 0xabc, Hash(12, 90, 5), check);
  EXPECT_FALSE(check.restored);
  EXPECT_TRUE(check.hash_compared);
  EXPECT_NE(check.error.find("HashKV at revision 40 is 11"), std::string::npos) << check.error;
  EXPECT_NE(check.error.find("is 12"), std::string::npos) << check.error;
}

TEST(JudgeRestore, WhatCannotBeComparedStillVerifiesTheRestore) {
  struct Case {
    Result<etcd::HashKV> live;
    uint64_t backup_cluster;
    std::string says;
  };
  std::vector<Case> cases = {
      {MakeError(ErrorCode::kUnavailable,
                 "Error: etcdserver: mvcc: required revision has been compacted"),
       0xabc, "compacted its history past revision 40"},
      {MakeError(ErrorCode::kUnavailable,
                 "Error: etcdserver: mvcc: required revision is a future revision"),
       0xabc, "behind the snapshot's revision 40"},
      {MakeError(ErrorCode::kUnavailable, "http://10.0.0.1:2379: context deadline exceeded"), 0xabc,
       "no live member answered HashKV at revision 40: http://10.0.0.1:2379: context"},
      {Hash(12, 90, 5), 0, "the snapshot's cluster is unknown"},
      {Hash(12, 90, 5, 0xdef), 0xabc,
       "the snapshot is of cluster 0000000000000abc, the live cluster is 0000000000000def"},
      {Hash(12, 90, 30), 0xabc, "compacted at revision 30, the snapshot at 5"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.says);
    RestoreCheck check;
    check.hash_compared = true;  // stale values are overwritten
    JudgeRestore(Hash(11, 40, 5), c.backup_cluster, c.live, check);
    EXPECT_TRUE(check.restored);
    EXPECT_FALSE(check.hash_compared);
    EXPECT_NE(check.error.find("hash not compared: "), std::string::npos) << check.error;
    EXPECT_NE(check.error.find(c.says), std::string::npos) << check.error;
    EXPECT_EQ(check.hash, 11u);
  }
}

TEST(BackupFlags, BackupsAreOffUntilADirectoryIsGivenAndBadValuesNameTheFlag) {
  auto off = ParseFlags({}, {}, "/opt");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->flags.core.backups);
  EXPECT_EQ(off->flags.core.backup_interval, 30min);
  auto on = ParseFlags(
      {"--backup-dir=/b", "--backup-interval=1s", "--backup-keep=3", "--backup-keep-hourly=2h",
       "--backup-keep-daily=3d", "--healthz-max-backup-age=1h", "--backup-timeout=30s"},
      {}, "/opt");
  ASSERT_TRUE(on.ok()) << on.error();
  EXPECT_TRUE(on->flags.core.backups);
  EXPECT_EQ(on->flags.core.backup_interval, 1s);
  EXPECT_EQ(on->flags.core.backup_timeout, 30s);
  EXPECT_EQ(on->flags.shell.retention.keep_last, 3);
  EXPECT_EQ(on->flags.shell.retention.hourly_span, 2h);
  EXPECT_EQ(on->flags.shell.retention.daily_span, 72h);
  EXPECT_EQ(on->flags.shell.healthz_max_backup_age, 1h);
  EXPECT_TRUE(on->flags.shell.backup_verify) << "each backup is verified unless told not to";
  EXPECT_EQ(on->flags.shell.backup_verify_timeout, 60s);
  auto unverified = ParseFlags(
      {"--backup-dir=/b", "--backup-verify=false", "--backup-verify-timeout=2m"}, {}, "/opt");
  ASSERT_TRUE(unverified.ok()) << unverified.error();
  EXPECT_FALSE(unverified->flags.shell.backup_verify);
  EXPECT_EQ(unverified->flags.shell.backup_verify_timeout, 2min);
  auto zero = ParseFlags({"--backup-dir=/b", "--backup-interval=0"}, {}, "/opt");
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->flags.core.backup_interval.count(), 0);
  for (auto [args, needle] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--backup-dir=/b", "--backup-interval=500ms"}, "--backup-interval"},
           {{"--backup-dir=/b", "--backup-keep=0"}, "--backup-keep"},
           {{"--healthz-max-backup-age=1h"}, "--healthz-max-backup-age"},
           {{"--restore-from=/tmp/x.db"}, "--restore-from"},
           {{"--backup-dir=/b", "--backup-keep-daily=often"}, "--backup-keep-daily"},
           {{"--backup-dir=/b", "--backup-verify-timeout=1s"}, "--backup-verify-timeout"},
           {{"--backup-dir=/b", "--backup-verify=sometimes"}, "--backup-verify"}}) {
    auto r = ParseFlags(args, {}, "/opt");
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error();
  }
}

executor::TaskConfig RestoreConfig() {
  executor::TaskConfig c;
  c.name = "etcd-4";
  c.address = "127.0.0.2";
  c.peer_port = 31000;
  c.client_port = 31001;
  c.reseed_port = 31002;
  c.initial_cluster = "etcd-4=http://127.0.0.2:31000";
  c.cluster_token = "etcd-x-3";
  c.reseed_token = "t";
  c.restore_snapshot = "etcd-x-20261124T100000Z-rev9-0000000000000abc.db";
  c.restore_sha256 = std::string(64, 'a');
  return c;
}

TEST(RestoreTaskConfig, RoundTripsAndRefusesWhatCannotBeARestore) {
  auto c = RestoreConfig();
  auto back = executor::ParseTaskConfig(executor::EncodeTaskConfig(c));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, c);
  auto bad = c;
  bad.restore_snapshot = "../x.db";
  EXPECT_FALSE(executor::ValidateTaskConfig(bad).ok());
  bad = c;
  bad.initial_cluster_state = executor::InitialClusterState::kExisting;
  EXPECT_FALSE(executor::ValidateTaskConfig(bad).ok());
  bad = c;
  bad.initial_cluster += ",etcd-5=http://127.0.0.3:31000";
  EXPECT_FALSE(executor::ValidateTaskConfig(bad).ok());
  bad = c;
  bad.restore_sha256 = "xyz";
  auto e = executor::ValidateTaskConfig(bad);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("restore_sha256"), std::string::npos);
}

TEST(RestoreTaskInfo, TheSnapshotIsAFourthUriAndNamedInTheTaskConfig) {
  CoreConfig core;
  LaunchMember l;
  l.offer_id = "o1";
  l.member.name = "etcd-4";
  l.member.host = "127.0.0.2";
  l.member.agent_id = "a1";
  l.member.peer_port = 31000;
  l.member.client_port = 31001;
  l.member.reseed_port = 31002;
  l.initial_cluster = "etcd-4=http://127.0.0.2:31000";
  l.new_cluster = true;
  l.cluster_token = "etcd-x-3";
  l.restore_snapshot = "etcd-x-20261124T100000Z-rev9-0000000000000abc.db";
  LaunchContext context{&core, "F", "http://10.0.0.1:12300/artifacts/", "tok",
                        std::string(64, 'b')};
  mesos::TaskInfo task = BuildTaskInfo(l, nullptr, context);
  const auto& uris = task.executor().command().uris();
  ASSERT_EQ(uris.size(), 4);
  EXPECT_EQ(uris[3].value(), "http://10.0.0.1:12300/artifacts/backups/" + l.restore_snapshot);
  EXPECT_FALSE(uris[3].executable());
  EXPECT_FALSE(uris[3].extract());
  auto tc = executor::ParseTaskConfig(task.data());
  ASSERT_TRUE(tc.ok()) << tc.error();
  EXPECT_EQ(tc->restore_snapshot, l.restore_snapshot);
  EXPECT_EQ(tc->restore_sha256, std::string(64, 'b'));
  l.restore_snapshot.clear();
  EXPECT_EQ(BuildTaskInfo(l, nullptr, context).executor().command().uris().size(), 3);
}

}  // namespace
}  // namespace etcd_mesos::scheduler::shell
