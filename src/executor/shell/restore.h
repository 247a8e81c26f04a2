// Restoring a member's data dir from an etcd snapshot before etcd first starts (a restore after
// total cluster loss): the snapshot Mesos fetched into the sandbox is checked against the SHA-256
// the scheduler sent, then `etcdctl snapshot restore` (which checks etcd's own trailer hash too)
// writes a new data dir for this member alone, with the task's cluster token, into a temporary
// directory that is renamed to the data dir only when complete. So a failed or interrupted
// restore leaves no data dir, and the next start tries again.
//
// Threading: a blocking function (hashing the file and waiting for etcdctl, bounded by
// `timeout`), called on the executor's thread before etcd is started; nothing else runs then.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"
#include "executor/task_config.h"

namespace etcd_mesos::executor::shell {

// The etcdctl command line that restores `snapshot` into `data_dir` for `config`'s member.
std::vector<std::string> RestoreCommandLine(const TaskConfig& config, const std::string& etcdctl,
                                            const std::filesystem::path& snapshot,
                                            const std::filesystem::path& data_dir);

// `<sandbox>/etcdctl` when Mesos fetched one there, else `etcdctl` (searched in PATH).
std::string ResolveEtcdctl(const std::filesystem::path& sandbox);

// Does the restore described above. kDataLoss when the snapshot does not match its checksum,
// kInternal when etcdctl fails (its output is in the error).
Status RestoreDataDir(const TaskConfig& config, const std::filesystem::path& sandbox,
                      const std::filesystem::path& data_dir,
                      std::chrono::seconds timeout = std::chrono::seconds(600));

}  // namespace etcd_mesos::executor::shell
