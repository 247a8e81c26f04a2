// What a member is launched with, as one fingerprint the core compares (a change rolls the
// members out one at a time) and a sentence for the operator: the etcd version of the binary
// served, etcd's flags, and the task's and executor's resources. The executor binary is not part
// of it: a new etcd-mesos keeps the members it finds.
//
// Threading: DescribeLaunch is pure; EtcdBinaryVersion runs the binary and blocks (at start).
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "scheduler/core/types.h"

namespace etcd_mesos::scheduler::shell {

struct LaunchConfig {
  std::string fingerprint;  // "lc-<16 hex digits>"
  std::string summary;      // "etcd 3.4.23, cpus 1, mem 1024 MB, disk 4096 MB, --quota-..."
};
LaunchConfig DescribeLaunch(const CoreConfig& core, const std::vector<std::string>& etcd_flags,
                            const std::string& etcd_version);

// The version `etcd --version` prints ("etcd Version: 3.4.23" gives "3.4.23"), or an error
// naming why it could not be read.
Result<std::string> EtcdBinaryVersion(const std::string& etcd_bin);
// The version in `etcd --version`'s output, "" when there is none.
std::string ParseEtcdVersionOutput(const std::string& output);

}  // namespace etcd_mesos::scheduler::shell
