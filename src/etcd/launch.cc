#include "etcd/launch.h"

#include <fmt/format.h>

#include "common/uri.h"

namespace etcd_mesos::etcd {

// HostPort brackets an IPv6 literal, as a URL needs.
std::string MemberConfig::ClientUrl() const {
  return "http://" + HostPort{ip, client_port}.ToString();
}

std::string MemberConfig::PeerUrl() const { return "http://" + HostPort{ip, peer_port}.ToString(); }

std::vector<std::string> MemberCommandLine(const MemberConfig& c) {
  std::vector<std::string> argv = {
      c.etcd_binary,
      "--name=" + c.name,
      "--data-dir=" + c.data_dir,
      "--listen-client-urls=" + c.ClientUrl(),
      "--advertise-client-urls=" + c.ClientUrl(),
      "--listen-peer-urls=" + c.PeerUrl(),
      "--initial-advertise-peer-urls=" + c.PeerUrl(),
      "--initial-cluster=" +
          (c.initial_cluster.empty() ? c.InitialClusterEntry() : c.initial_cluster),
      std::string("--initial-cluster-state=") + (c.new_cluster ? "new" : "existing"),
      "--initial-cluster-token=" + c.cluster_token,
      // zap writes structured lines to stderr; capnslog (3.4's default) is deprecated.
      "--logger=zap",
      "--log-outputs=stderr",
  };
  if (c.enable_v2) argv.push_back("--enable-v2=true");
  return argv;
}

}  // namespace etcd_mesos::etcd
