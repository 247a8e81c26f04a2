#include "etcd/launch.h"

#include <fmt/format.h>

#include "common/uri.h"

namespace etcd_mesos::etcd {

namespace {

// HostPort brackets an IPv6 literal, as a URL needs.
std::string Url(const std::optional<TlsFiles>& tls, const HostPort& endpoint) {
  return (tls ? "https://" : "http://") + endpoint.ToString();
}

}  // namespace

std::string MemberConfig::ClientUrl() const { return Url(tls, {ip, client_port}); }

std::string MemberConfig::PeerUrl() const { return Url(tls, {ip, peer_port}); }

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
  if (c.tls) {
    const TlsFiles& peer = c.peer_tls ? *c.peer_tls : *c.tls;
    argv.insert(argv.end(),
                {"--cert-file=" + c.tls->cert_file, "--key-file=" + c.tls->key_file,
                 "--trusted-ca-file=" + c.tls->ca_file, "--client-cert-auth=true",
                 "--peer-cert-file=" + peer.cert_file, "--peer-key-file=" + peer.key_file,
                 "--peer-trusted-ca-file=" + peer.ca_file, "--peer-client-cert-auth=true"});
  }
  return argv;
}

std::vector<std::string> EtcdctlEndpointFlags(const HostPort& endpoint,
                                              const std::optional<TlsFiles>& tls) {
  std::vector<std::string> flags = {"--endpoints=" + Url(tls, endpoint)};
  if (tls) {
    flags.insert(flags.end(), {"--cacert=" + tls->ca_file, "--cert=" + tls->cert_file,
                               "--key=" + tls->key_file});
  }
  return flags;
}

}  // namespace etcd_mesos::etcd
