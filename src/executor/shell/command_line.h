// How the executor starts etcd for one StartEtcd action: the program to run and its argv.
//
// The command line is etcd/launch.h's (the one every part of etcd-mesos uses), with the data dir
// in the sandbox, the member's own IP in every listen and advertise URL (etcd 3.4 binds IPs only,
// and a wildcard would expose the member on every interface), the v2 API on (the on-call guide's
// `etcdctl -C ... cluster-health`), the task's extra flags, and --force-new-cluster only when the
// supervisor asks for it (one step of a reseed, never a plain restart). A TLS task serves both
// ports over https with the certificates in the sandbox (member_tls.h; the sandbox is the data
// dir's parent) and requires certificates of its CA from clients and peers.
//
// Threading: pure functions on values.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "executor/core/supervisor.h"

namespace etcd_mesos::executor::shell {

// The etcd program: the task's etcd_binary if set; else `flag_default` if non-empty; else
// `<sandbox>/etcd` when Mesos fetched one there; else `etcd` (searched in PATH).
std::string ResolveEtcdBinary(const TaskConfig& config, const std::string& flag_default,
                              const std::filesystem::path& sandbox);

std::vector<std::string> EtcdCommandLine(const core::StartEtcd& start, const std::string& binary,
                                         const std::filesystem::path& data_dir);

}  // namespace etcd_mesos::executor::shell
