// The Mesos messages the scheduler sends that are built from its configuration and the core's
// actions: the TaskInfo that launches one member (resources carved from the offer, the custom
// executor and its artifacts, DiscoveryInfo, the executor's task config) and the FrameworkInfo
// the scheduler subscribes with. Pure functions of their inputs, kept out of the shell so that
// they are tested without any I/O.
//
// Threading: pure functions.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mesos/v1.h"
#include "scheduler/core/types.h"
#include "scheduler/shell/flags.h"

namespace etcd_mesos::scheduler::shell {

// What a TaskInfo needs besides the LaunchMember action (pure inputs, for tests).
struct LaunchContext {
  const CoreConfig* core = nullptr;
  std::string framework_id;
  std::string artifact_base;  // http://<address>:<admin-port>/artifacts/
  std::string reseed_token;   // the executors' token (PersistentState::reseed_token)
  // With LaunchMember::restore_snapshot: the backup's whole-file SHA-256 (from its sidecar,
  // verified just before), which the executor checks again after the fetch.
  std::string restore_sha256;
  // Artifact name -> its version (ArtifactVersion): the URI is then <base><version>/<name>, and
  // the fetcher may cache it. Without a version, <base><name>, never cached.
  std::map<std::string, std::string> artifact_versions;
  // The executor's shutdown_grace_period (0: the agent's --executor_shutdown_grace_period).
  std::chrono::milliseconds executor_shutdown_grace{0};
  // More etcd flags for the member (EtcdUpkeepFlags), into the task config's extra_flags.
  std::vector<std::string> etcd_flags;
  // A TLS member (Member::tls): the CA bundle it trusts, where it asks for its certificates
  // (http://<address>:<admin-port>/certificates) and the task's token for that
  // (TaskCertificateToken of its task id).
  std::string tls_ca;
  std::string cert_url;
  std::string cert_token;
  // The framework's principal: a durable member's reservations and volume carry it, as Mesos
  // requires of a framework that has one.
  std::optional<std::string> principal;
};
// A durable member's task resources (Member::volume set): cpus, mem, its three ports and its
// disk as a persistent volume at container path "data", each dynamically reserved to `role`
// with the labels kLabelCluster, kLabelGeneration, kLabelMember and kLabelVolume.
std::vector<mesos::Resource> DurableResources(const CoreConfig& config, const Member& member,
                                              const std::string& role,
                                              const std::optional<std::string>& principal);
// The TaskInfo for one member: task id and name FormatTaskId(member), resources of the config
// carved from `offer` (keeping each piece's role and allocation) with ports exactly
// [peer],[client],[reseed], the custom executor fetching the three artifacts (versioned and
// cacheable when context.artifact_versions names them), DiscoveryInfo
// naming the peer and client ports, and the executor's task config in data. A restore adds the
// backup as a fourth URI (<artifact_base>backups/<name>) and names it in the task config. `offer`
// may be null (an offer that went away): the master then refuses the launch, as it should.
mesos::TaskInfo BuildTaskInfo(const LaunchMember& launch, const mesos::Offer* offer,
                              const LaunchContext& context);
// The id of the executor that runs `member`: one per member and generation.
std::string ExecutorIdOf(const Member& member);
// The FrameworkInfo this scheduler subscribes with.
mesos::FrameworkInfo BuildFrameworkInfo(const SchedulerFlags& flags,
                                        const std::optional<std::string>& framework_id);

}  // namespace etcd_mesos::scheduler::shell
