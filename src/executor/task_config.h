// The two JSON documents the scheduler and the executor exchange through Mesos:
//
//  - TaskConfig: what the scheduler puts in TaskInfo.data for one etcd member (who it is, where it
//    listens, which cluster it starts or joins, the reseed token, extra etcd flags, supervision
//    limits). The executor refuses a malformed one with TASK_FAILED naming the bad field.
//  - MemberFacts: what the executor reports about its member in TaskStatus.data and on the reseed
//    listener's GET /status (member id, raft index and term, leader, learner or voter).
//
// Both sides use the same Encode/Parse pair, so the wire shape lives in one place. 64-bit etcd
// identifiers and raft indexes are decimal strings in JSON (as etcd's own gateway writes them): a
// JSON number is a double and cannot hold them.
//
// TaskInfo.data:
//   {"name":"etcd-3","address":"10.0.0.7","peer_port":31001,"client_port":31002,
//    "reseed_port":31003,"initial_cluster":"etcd-1=http://10.0.0.5:31001,etcd-3=http://...",
//    "initial_cluster_state":"new"|"existing","cluster_token":"etcd-mycluster",
//    "reseed_token":"<secret>","extra_flags":["--snapshot-count=10000"],
//    "etcd_binary":"/usr/bin/etcd" (optional),"restart_max":5,"restart_window_s":60,
//    "health_interval_ms":1000,"restore_snapshot":"etcd-c-...-rev42-....db" (optional),
//    "restore_sha256":"<hex of the whole file>" (with restore_snapshot),
//    "tls":{"ca":"<PEM trust bundle>","cert_url":"http://<scheduler>/certificates",
//           "cert_token":"<hex>"} (optional: the member serves TLS)}
// TaskStatus.data (and GET /status):
//   {"name":"etcd-3","member_id":"8455861066767519386","cluster_id":"...","raft_index":"42",
//    "raft_term":"3","leader":"16110641917360169610","is_learner":false,"healthy":true,
//    "serving":true,"client_url":"http://10.0.0.7:31002","peer_url":"http://10.0.0.7:31001",
//    "reseed_url":"http://10.0.0.7:31003"}
//   Before the member has answered once, the etcd fields are "0"/false and serving is false.
//
// Threading: pure functions on values.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace etcd_mesos::executor {

enum class InitialClusterState { kNew, kExisting };

std::string_view InitialClusterStateName(InitialClusterState state);  // "new", "existing"

struct TaskConfig {
  std::string name;     // the etcd member name, e.g. "etcd-3"
  std::string address;  // the agent's IP address (etcd 3.4 binds IPs only; never 0.0.0.0)
  uint16_t peer_port = 0;
  uint16_t client_port = 0;
  uint16_t reseed_port = 0;
  // "name=http://ip:port,..." including this member with http://address:peer_port.
  std::string initial_cluster;
  InitialClusterState initial_cluster_state = InitialClusterState::kNew;
  std::string cluster_token;
  std::string reseed_token;  // the bearer token POST /reseed must carry
  // Further etcd flags ("--name=value"); never the ones the executor owns (name, data dir,
  // listen/advertise URLs, initial cluster).
  std::vector<std::string> extra_flags;
  // The etcd program; absent: ./etcd in the sandbox if Mesos fetched one, else `etcd` on PATH.
  std::optional<std::string> etcd_binary;
  // More than restart_max restarts within restart_window is a crash loop: TASK_FAILED.
  int restart_max = 5;
  std::chrono::seconds restart_window{60};
  std::chrono::milliseconds health_interval{1000};
  // A restore: the snapshot file (fetched by Mesos into the sandbox; a plain file name) that
  // `etcdctl snapshot restore` turns into the data dir before etcd first starts, and its SHA-256,
  // checked first. Only with initial_cluster_state "new" and this member alone in the cluster.
  std::optional<std::string> restore_snapshot;
  std::string restore_sha256;
  // TLS for the member's client and peer ports (absent: plain HTTP). The executor makes its own
  // keys, sends certificate requests to `cert_url` with `cert_token` (a secret for this task
  // only) and keeps what comes back only if it chains to `ca`: no private key leaves the agent.
  struct Tls {
    std::string ca;  // the CA certificates the member trusts, PEM (public)
    std::string cert_url;
    std::string cert_token;
    bool operator==(const Tls&) const = default;
  };
  std::optional<Tls> tls;

  std::string ClientUrl() const;  // http(s)://address:client_port
  std::string PeerUrl() const;    // http(s)://address:peer_port
  std::string ReseedUrl() const;  // http(s)://address:reseed_port, https for a TLS member

  bool operator==(const TaskConfig&) const = default;
};

// Checks every rule ParseTaskConfig checks; kInvalidArgument naming the field.
Status ValidateTaskConfig(const TaskConfig& config);
// The JSON document above. Encodes every field, defaults included.
std::string EncodeTaskConfig(const TaskConfig& config);
// Parses and validates. Unknown fields are refused (a misspelt optional field would otherwise be
// silently ignored). Errors are kInvalidArgument and name the field: `task data: field
// "peer_port": must be an integer in 1..65535`.
Result<TaskConfig> ParseTaskConfig(std::string_view json);

// True when `flag` ("--name" or "--name=value") is one the executor sets itself.
bool IsOwnedEtcdFlag(std::string_view flag);

struct MemberFacts {
  std::string name;
  uint64_t member_id = 0;
  uint64_t cluster_id = 0;
  uint64_t raft_index = 0;
  uint64_t raft_term = 0;
  uint64_t leader = 0;  // 0: the member sees no leader
  bool is_learner = false;
  bool healthy = false;  // answers, sees a leader, no alarm, /health true (a learner: status only)
  bool serving = false;  // the member answers on its client URL
  std::string client_url;
  std::string peer_url;
  std::string reseed_url;

  bool operator==(const MemberFacts&) const = default;
};

std::string EncodeMemberFacts(const MemberFacts& facts);
// Unknown fields are ignored here (a newer executor may report more); a missing one is an error.
Result<MemberFacts> ParseMemberFacts(std::string_view json);

}  // namespace etcd_mesos::executor
