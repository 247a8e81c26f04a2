// Backup names and retention: which etcd snapshots in --backup-dir to keep, as pure functions.
//
// A backup is one file `etcd-<cluster>-<YYYYmmddTHHMMSSZ>-rev<R>-<clusterid hex>.db` (UTC time,
// the revision the snapshot holds at least, etcd's cluster id) with a sidecar `<name>.json`
// (size, sha256, revision, member, time). "Verified" means the sidecar exists and its checksum
// matched the file when the caller last looked; the caller decides that, this module only uses it.
//
// Retention keeps the union of:
//   - the `keep_last` newest backups;
//   - for every clock hour within `hourly_span` of `now`, the newest backup of that hour;
//   - for every UTC day within `daily_span` of `now`, the newest backup of that day;
//   - the newest verified backup, always (the only verified snapshot is never deleted, even when
//     every rule above would drop it).
// Everything else is pruned. Backups dated in the future (a clock step) are kept: they are
// counted as the newest, never pruned for their age.
//
// Threading: pure functions on values. No clock is read: `now` is an argument.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace etcd_mesos::scheduler {

using WallTime = std::chrono::sys_seconds;  // UTC, whole seconds (as in backup names)

struct BackupName {
  std::string cluster;  // --cluster-name
  WallTime time;
  uint64_t revision = 0;
  uint64_t cluster_id = 0;
};

// "etcd-<cluster>-20261124T223000Z-rev42-cdf818194e3a8c32.db"
std::string FormatBackupName(const BackupName& name);
// The inverse; kInvalidArgument (naming what is wrong) for anything else, so that foreign files in
// the backup directory are never taken for backups (nor deleted).
Result<BackupName> ParseBackupName(std::string_view file_name);
// "2026-11-24T22:30:00Z"
std::string FormatWallTime(WallTime t);

struct RetentionPolicy {
  int keep_last = 5;  // at least 1
  std::chrono::hours hourly_span{24};
  std::chrono::hours daily_span{24 * 7};
};

struct BackupEntry {
  std::string name;  // file name, for the answer
  WallTime time;
  bool verified = false;
};

// The names of the backups to delete under `policy` at `now`. Order of `backups` does not matter.
std::vector<std::string> BackupsToPrune(const std::vector<BackupEntry>& backups,
                                        const RetentionPolicy& policy, WallTime now);

}  // namespace etcd_mesos::scheduler
