// How an etcd 3.4 member is started: the command line for one member from its name, addresses
// and role in the cluster, shared by everything that starts etcd (the executor, the development
// cluster, the tests) so that they all start it the same way.
//
// etcd 3.4 binds listen URLs only to IP addresses, so members are addressed by IP (127.0.0.x on a
// single machine). A member joining a running cluster must first be added (as a learner, by the
// caller, through etcd::Client) and then started with `existing` and the full initial cluster.
//
// With TLS files, both of a member's ports speak https only and require a certificate that chains
// to the CA bundle from every client and every peer (--client-cert-auth, --peer-client-cert-auth).
//
// Threading: pure functions on values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/uri.h"

namespace etcd_mesos::etcd {

// PEM files for TLS, as etcd's and etcdctl's flags take them.
//
// A member's certificate serves both of its ports and also dials: peers connect to each other with
// it, and etcd 3.4's JSON gateway dials the member's own gRPC port with it. So it needs both
// serverAuth and clientAuth (tls::Usage::kServerAndClient) and the member's IP address among its
// subject alternative names. For etcdctl, a client certificate (clientAuth) is enough.
struct TlsFiles {
  std::string ca_file;  // the CA bundle the other side's certificate must chain to
  std::string cert_file;
  std::string key_file;
};

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
  // Set: https on both ports, and certificates required of clients and peers.
  std::optional<TlsFiles> tls;
  // The peer port's own certificate and key (with `tls`); unset: the peer port uses `tls`'s.
  std::optional<TlsFiles> peer_tls;

  std::string ClientUrl() const;  // http://ip:client_port, or https:// with TLS
  std::string PeerUrl() const;    // http://ip:peer_port, or https:// with TLS
  std::string InitialClusterEntry() const { return name + "=" + PeerUrl(); }
};

std::vector<std::string> MemberCommandLine(const MemberConfig& config);

// The flags that point etcdctl (API 3) at one member: --endpoints, and with TLS --cacert, --cert
// and --key.
std::vector<std::string> EtcdctlEndpointFlags(const HostPort& endpoint,
                                              const std::optional<TlsFiles>& tls);

}  // namespace etcd_mesos::etcd
