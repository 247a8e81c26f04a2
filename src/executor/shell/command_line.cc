#include "executor/shell/command_line.h"

#include <unistd.h>

#include "etcd/launch.h"
#include "executor/shell/member_tls.h"

namespace etcd_mesos::executor::shell {

std::string ResolveEtcdBinary(const TaskConfig& config, const std::string& flag_default,
                              const std::filesystem::path& sandbox) {
  if (config.etcd_binary) return *config.etcd_binary;
  if (!flag_default.empty()) return flag_default;
  auto fetched = sandbox / "etcd";
  if (::access(fetched.c_str(), X_OK) == 0) return fetched.string();
  return "etcd";
}

std::vector<std::string> EtcdCommandLine(const core::StartEtcd& start, const std::string& binary,
                                         const std::filesystem::path& data_dir) {
  const TaskConfig& c = start.config;
  etcd::MemberConfig member;
  member.name = c.name;
  member.ip = c.address;
  member.client_port = c.client_port;
  member.peer_port = c.peer_port;
  member.data_dir = data_dir.string();
  member.initial_cluster = c.initial_cluster;
  member.new_cluster = start.new_cluster;
  member.cluster_token = c.cluster_token;
  member.enable_v2 = true;
  member.etcd_binary = binary;
  if (c.tls) {
    MemberTlsPaths files = MemberTlsFiles(data_dir.parent_path());
    member.tls = files.Server();
    member.peer_tls = files.Peer();
  }
  std::vector<std::string> argv = etcd::MemberCommandLine(member);
  for (const auto& flag : c.extra_flags) argv.push_back(flag);
  if (start.force_new_cluster) argv.push_back("--force-new-cluster");
  return argv;
}

}  // namespace etcd_mesos::executor::shell
