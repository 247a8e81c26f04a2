// Backup names and the retention policy (pure).
#include "scheduler/core/backup_retention.h"

#include <algorithm>
#include <random>
#include <set>

#include <gtest/gtest.h>

namespace etcd_mesos::scheduler {
namespace {

using namespace std::chrono_literals;
using std::chrono::sys_days;

WallTime At(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return sys_days{std::chrono::year{y} / mo / d} + std::chrono::hours(h) +
         std::chrono::minutes(mi) + std::chrono::seconds(s);
}

BackupEntry Entry(WallTime t, bool verified = true, uint64_t revision = 1) {
  return BackupEntry{FormatBackupName({"c", t, revision, 7}), t, verified};
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(BackupName, FormatsAndParsesBack) {
  BackupName n{"my-cluster_1", At(2026, 11, 24, 22, 30, 5), 4242, 0xcdf818194e3a8c32};
  std::string s = FormatBackupName(n);
  EXPECT_EQ(s, "etcd-my-cluster_1-20261124T223005Z-rev4242-cdf818194e3a8c32.db");
  auto back = ParseBackupName(s);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->cluster, "my-cluster_1");
  EXPECT_EQ(back->time, n.time);
  EXPECT_EQ(back->revision, 4242u);
  EXPECT_EQ(back->cluster_id, 0xcdf818194e3a8c32u);
  EXPECT_EQ(FormatWallTime(n.time), "2026-11-24T22:30:05Z");
}

TEST(BackupName, RefusesForeignFilesNamingTheProblem) {
  for (const char* bad :
       {"", "notes.txt", "etcd-c-20261124T223005Z-rev1-cdf818194e3a8c32.db.json",
        "etcd-c-20261124T223005Z-rev1-cdf8.db", "etcd-c-20261124T223005Z-revx-cdf818194e3a8c32.db",
        "etcd-c-20261324T223005Z-rev1-cdf818194e3a8c32.db",
        "etcd-c-20261124T253005Z-rev1-cdf818194e3a8c32.db",
        "etcd-c-2026112T223005Z-rev1-cdf818194e3a8c32.db",
        "etcd-20261124T223005Z-rev1-cdf818194e3a8c32.db",
        ".etcd-c-20261124T223005Z-rev1-cdf818194e3a8c32.db.partial-abc"}) {
    auto r = ParseBackupName(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
      EXPECT_NE(r.error().message.find("is not a backup name"), std::string::npos);
    }
  }
}

TEST(Retention, KeepsTheLastKWhenAllAreOld) {
  WallTime now = At(2026, 11, 24);
  std::vector<BackupEntry> all;
  for (int i = 0; i < 10; ++i) all.push_back(Entry(At(2025, 1, 1) + std::chrono::minutes(i)));
  RetentionPolicy p{3, 24h, 24h * 7};
  auto prune = BackupsToPrune(all, p, now);
  EXPECT_EQ(prune.size(), 7u);
  for (int i = 7; i < 10; ++i) {
    EXPECT_EQ(std::count(prune.begin(), prune.end(), all[i].name), 0)
        << i << " is among the last 3";
  }
}

TEST(Retention, KeepsTheNewestOfEachHourWithinTheHourlySpan) {
  WallTime now = At(2026, 11, 24, 12, 0, 0);
  std::vector<BackupEntry> all;
  // Every 20 minutes for the last 6 hours: 18 backups, three per hour.
  for (int i = 0; i < 18; ++i) all.push_back(Entry(now - std::chrono::minutes(20 * i + 5)));
  RetentionPolicy p{1, 6h, 0h};
  auto prune = BackupsToPrune(all, p, now);
  std::set<std::string> kept;
  for (const auto& b : all) {
    if (std::count(prune.begin(), prune.end(), b.name) == 0) kept.insert(b.name);
  }
  // The newest of each hour 06..11 (the :55 ones); the last one is among them.
  std::set<std::string> want;
  for (int h = 6; h <= 11; ++h) want.insert(Entry(At(2026, 11, 24, h, 55)).name);
  EXPECT_EQ(kept, want);
}

TEST(Retention, KeepsTheNewestOfEachDayWithinTheDailySpan) {
  WallTime now = At(2026, 11, 24, 12, 0, 0);
  std::vector<BackupEntry> all;
  // Two a day (01:00 and 13:00) for 20 days.
  for (int d = 0; d < 20; ++d) {
    all.push_back(Entry(At(2026, 11, 24, 1) - std::chrono::days(d)));
    all.push_back(Entry(At(2026, 11, 23, 13) - std::chrono::days(d)));
  }
  RetentionPolicy p{1, 0h, 24h * 7};
  auto prune = BackupsToPrune(all, p, now);
  EXPECT_EQ(all.size() - prune.size(), 8u);  // today's 01:00, and 13:00 of 7 earlier days
  for (int d = 1; d <= 7; ++d) {
    std::string name = Entry(At(2026, 11, 24, 13) - std::chrono::days(d)).name;
    EXPECT_EQ(std::count(prune.begin(), prune.end(), name), 0) << "day -" << d;
  }
  std::string eighth = Entry(At(2026, 11, 24, 13) - std::chrono::days(8)).name;
  EXPECT_EQ(std::count(prune.begin(), prune.end(), eighth), 1);
}

TEST(Retention, NeverDeletesTheOnlyVerifiedSnapshot) {
  WallTime now = At(2026, 11, 24, 12);
  std::vector<BackupEntry> all;
  all.push_back(Entry(At(2026, 1, 1), /*verified=*/true));  // old, the only good one
  for (int i = 0; i < 5; ++i) {
    all.push_back(Entry(now - std::chrono::minutes(i + 1), /*verified=*/false));
  }
  RetentionPolicy p{2, 0h, 0h};
  auto prune = BackupsToPrune(all, p, now);
  EXPECT_EQ(std::count(prune.begin(), prune.end(), all[0].name), 0);
  EXPECT_EQ(prune.size(), 3u);
  // With a newer verified one kept anyway, the old one goes.
  all[1].verified = true;
  prune = BackupsToPrune(all, p, now);
  EXPECT_EQ(std::count(prune.begin(), prune.end(), all[0].name), 1);
}

TEST(Retention, FutureDatedBackupsAreKeptAndNothingIsPrunedBelowK) {
  WallTime now = At(2026, 11, 24, 12);
  std::vector<BackupEntry> all = {Entry(now + 48h), Entry(now - 1h), Entry(now - 2h)};
  RetentionPolicy p{5, 0h, 0h};
  EXPECT_TRUE(BackupsToPrune(all, p, now).empty());
  p.keep_last = 1;
  auto prune = BackupsToPrune(all, p, now);
  EXPECT_EQ(Sorted(prune), Sorted({all[1].name, all[2].name}));
  EXPECT_TRUE(BackupsToPrune({}, p, now).empty());
  p.keep_last = 0;  // taken as 1: never prune everything
  EXPECT_EQ(BackupsToPrune({Entry(now - 1000h)}, p, now).size(), 0u);
}

TEST(Retention, TheAnswerDoesNotDependOnTheOrderOfTheListing) {
  WallTime now = At(2026, 11, 24, 12);
  std::vector<BackupEntry> all;
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    all.push_back(Entry(now - std::chrono::minutes(rng() % (60 * 24 * 30)), rng() % 3 != 0, i));
  }
  RetentionPolicy p{3, 24h, 24h * 7};
  auto want = Sorted(BackupsToPrune(all, p, now));
  for (int round = 0; round < 5; ++round) {
    std::shuffle(all.begin(), all.end(), rng);
    EXPECT_EQ(Sorted(BackupsToPrune(all, p, now)), want);
  }
  // And a pruned set is stable: pruning what is left prunes nothing more.
  std::vector<BackupEntry> left;
  for (const auto& b : all) {
    if (!std::binary_search(want.begin(), want.end(), b.name)) left.push_back(b);
  }
  EXPECT_TRUE(BackupsToPrune(left, p, now).empty());
}

}  // namespace
}  // namespace etcd_mesos::scheduler
