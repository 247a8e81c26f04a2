// The command line of etcd-mesos-proxy, checked as a pure function of argv (and, for the TLS
// files, an environment map) so that every rule
// (one source of truth about the cluster, addresses that parse, durations that make sense) is
// tested without starting anything.
//
// Threading: pure functions on values.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/uri.h"

namespace etcd_mesos::proxy {

struct ProxyFlags {
  // Exactly one of these says where the members are found.
  std::optional<HttpUrl> scheduler;     // --scheduler=http(s)://host:port (its /members)
  std::optional<MasterAddress> master;  // --master=host:port | zk://... (its /master/state)
  std::string master_text;              // as given, for messages
  std::string framework_name = "etcd-default";
  HostPort listen_addr{"127.0.0.1", 23790};
  std::string etcd_bin = "etcd";  // a path, or a name looked up in PATH
  std::string data_dir;           // empty: a fresh temporary directory, removed at exit
  std::chrono::milliseconds poll_interval{5'000};
  std::chrono::milliseconds wait{30'000};  // how long to look for the cluster at start
  std::chrono::milliseconds request_timeout{5'000};
  bool once = false;
  std::string log_level = "info";

  // TLS to the members, as etcdctl names its PEM files. `cacert` set: https members are dialed
  // with it (and an https --scheduler is checked against it); `cert` and `key` are the client
  // certificate the members' --client-cert-auth asks for. All empty: plain http only.
  std::string cacert;
  std::string cert;
  std::string key;

  // TLS on the listen address, for the proxy's own clients (grpc-proxy's --cert-file and
  // --key-file). Empty: plain, which is meant for 127.0.0.1 only. etcd 3.4's grpc-proxy cannot
  // require client certificates (its --trusted-ca-file leaves client-cert-auth off), so there is
  // no flag that would promise it.
  std::string listen_cert_file;
  std::string listen_key_file;
};

struct ParsedProxyFlags {
  bool help = false;  // --help was asked: print `text` and exit 0
  std::string text;
  ProxyFlags flags;
};

// kInvalidArgument with a message naming the flag and the problem (and pointing at --help).
// `env` is the process environment (the TLS flags' ETCD_MESOS_PROXY_* variables); the command
// line wins over it.
Result<ParsedProxyFlags> ParseProxyFlags(const std::vector<std::string>& args,
                                         const std::map<std::string, std::string>& env = {});

}  // namespace etcd_mesos::proxy
