// The backup directory (--backup-dir): etcd v3 snapshots as files, each with a JSON sidecar, and
// the file operations around them (list, verify, finish a download, import a foreign snapshot,
// prune by the retention policy of scheduler/core/backup_retention.h).
//
// A backup file is etcd's snapshot stream exactly as `etcdctl snapshot save` writes it: the bolt
// database followed by etcd's 32-byte SHA-256 of it. Keeping etcd's trailer means a plain
// `etcdctl snapshot restore <file>` checks the file's integrity itself (no --skip-hash-check).
// The sidecar `<name>.json` holds {"name","size","sha256" (of the whole file, as `sha256sum`
// prints it),"db_sha256" (etcd's trailer),"revision","cluster_id","member","time","unix_time"}.
//
// Once the backup has been restored into a scratch etcd (backup_verifier.h), the sidecar also says
// what that found: {"verified": "restored"|"failed", "verified_at", "verified_at_unix",
// "verify_error", "verify_seconds", "hash_compared", "hash_revision", "hash", "live_hash",
// "compact_revision"}.
//
// Files are written durably and atomically: a hidden temporary name (".<...>.partial"), fsync,
// rename, fsync of the directory; the sidecar likewise, after the snapshot.
//
// Threading: plain functions doing blocking file I/O; the shell calls them on its thread (a
// snapshot of a few hundred MB is hashed in about a second).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "scheduler/core/backup_retention.h"
#include "scheduler/core/types.h"

namespace etcd_mesos::scheduler::shell {

// What restoring a backup into a scratch etcd found (backup_verifier.h).
struct RestoreCheck {
  // "restored": etcd restored the file, started on it and answered; else "failed" (a restore
  // etcdctl refused, an etcd that would not serve the data, or a HashKV that differs from the
  // live cluster's at the same revision).
  bool restored = false;
  WallTime at;
  // failed: why. restored: why the hash was not compared, if it was not ("" when it matched).
  std::string error;
  // The live cluster's HashKV at hash_revision was read and compared (a failed check with
  // hash_compared set is a mismatch).
  bool hash_compared = false;
  uint64_t hash_revision = 0;         // the snapshot's revision, as the restored etcd reports it
  std::optional<uint32_t> hash;       // the restored data's HashKV at hash_revision
  std::optional<uint32_t> live_hash;  // the live cluster's, when a member answered
  int64_t compact_revision = -1;      // the restored data's (-1: never compacted)
  double seconds = 0;                 // how long the check took

  std::string Outcome() const { return restored ? "restored" : "failed"; }
};

struct BackupRecord {
  std::string name;
  uint64_t size = 0;   // of the file
  std::string sha256;  // from the sidecar ("" when it has none)
  uint64_t revision = 0;
  uint64_t cluster_id = 0;
  std::string member;
  WallTime time;
  // The sidecar exists, parses and names the file's size, and no restore check failed. (The
  // checksum itself is checked by VerifyBackup, before a restore.) Retention always keeps the
  // newest such backup.
  bool verified = false;
  std::optional<RestoreCheck> restore_check;  // from the sidecar; none until one was made
};

// Backups in `dir` (files whose names ParseBackupName accepts), newest first. Other files are
// ignored. A missing directory is an empty list.
std::vector<BackupRecord> ListBackups(const std::filesystem::path& dir);

// The SHA-256 of a whole file (hex), and of all but its last 32 bytes with those bytes.
struct FileDigests {
  uint64_t size = 0;
  std::string sha256;            // of the whole file
  bool trailer_matches = false;  // the last 32 bytes are the SHA-256 of the rest (etcd's format)
  std::string db_sha256;         // of the bytes before the trailer
};
Result<FileDigests> DigestFile(const std::filesystem::path& path);

// Checks a snapshot file before anything is launched from it: etcd's trailer must match its
// database (a truncated or corrupt file fails), and, if `expected_sha256` is given, the whole
// file's checksum must be it. kDataLoss naming what is wrong.
Result<FileDigests> VerifySnapshotFile(const std::filesystem::path& path,
                                       const std::string& expected_sha256 = "");
// VerifySnapshotFile of `dir`/`name` against its sidecar (which must exist). kInvalidArgument
// for a name that is not a backup's (no path may sneak in), kNotFound for a missing one.
Result<BackupRecord> VerifyBackup(const std::filesystem::path& dir, const std::string& name);

// Writes `check` into the sidecar of backup `name` in `dir` (atomically, keeping what it held).
// kNotFound when the backup or its sidecar is gone (pruned meanwhile): nothing is written.
Status RecordRestoreCheck(const std::filesystem::path& dir, const std::string& name,
                          const RestoreCheck& check);

// Turns a downloaded database at `partial` (etcd's trailer stripped, its hex SHA-256 given) into
// backup `name` in `dir`: appends the trailer, fsyncs, renames, writes the sidecar.
Result<BackupDone> FinishBackup(const std::filesystem::path& dir,
                                const std::filesystem::path& partial,
                                const std::string& db_sha256_hex, const BackupName& name,
                                const std::string& member);

// Copies an operator's snapshot file (from `etcdctl snapshot save`, or one of ours) into `dir`
// as a backup named for `cluster` at `now` (revision and cluster id 0: unknown), after
// verifying it. For --restore-from.
Result<BackupDone> ImportSnapshot(const std::filesystem::path& dir,
                                  const std::filesystem::path& source, const std::string& cluster,
                                  WallTime now);

// Deletes what the policy prunes (file and sidecar); returns the names deleted.
std::vector<std::string> PruneBackups(const std::filesystem::path& dir,
                                      const RetentionPolicy& policy, WallTime now);

}  // namespace etcd_mesos::scheduler::shell
