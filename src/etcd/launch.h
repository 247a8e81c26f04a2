// How an etcd 3.4 member is started: the command line for one member from its name, addresses
// and role in the cluster, shared by everything that starts etcd (the executor, the development
// cluster, the tests) so that they all start it the same way.
//
// etcd 3.4 binds listen URLs only to IP addresses, so members are addressed by IP (127.0.0.x on a
// single machine). A member joining a running cluster must first be added (as a learner, by the
// caller, through etcd::Client) and then started with `existing` and the full initial cluster.
//
// Threading: pure functions on values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace etcd_mesos::etcd {

struct MemberConfig {
  std::string name;
  std::string ip;  // an IP address, not a host name
  uint16_t client_port = 0;
  uint16_t peer_port = 0;
  std::string data_dir;
  // "name1=http://ip1:peer1,name2=..." including this member.
  std::string initial_cluster;
  bool new_cluster = true;  // --initial-cluster-state new, else existing
  std::string cluster_token = "etcd-mesos";
  // The v2 API, so that operators' `ETCDCTL_API=2 etcdctl cluster-health` works.
  bool enable_v2 = true;
  std::string etcd_binary = "etcd";

  std::string ClientUrl() const;  // http://ip:client_port
  std::string PeerUrl() const;    // http://ip:peer_port
  std::string InitialClusterEntry() const { return name + "=" + PeerUrl(); }
};

std::vector<std::string> MemberCommandLine(const MemberConfig& config);

}  // namespace etcd_mesos::etcd
