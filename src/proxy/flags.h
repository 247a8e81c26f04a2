// The command line of etcd-mesos-proxy, checked as a pure function of argv so that every rule
// (one source of truth about the cluster, addresses that parse, durations that make sense) is
// tested without starting anything.
//
// Threading: pure functions on values.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/uri.h"

namespace etcd_mesos::proxy {

struct ProxyFlags {
  // Exactly one of these says where the members are found.
  std::optional<HttpUrl> scheduler;     // --scheduler=http://host:port (its /members)
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
};

struct ParsedProxyFlags {
  bool help = false;  // --help was asked: print `text` and exit 0
  std::string text;
  ProxyFlags flags;
};

// kInvalidArgument with a message naming the flag and the problem (and pointing at --help).
Result<ParsedProxyFlags> ParseProxyFlags(const std::vector<std::string>& args);

}  // namespace etcd_mesos::proxy
