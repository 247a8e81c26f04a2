// Addresses as operators write them: `host:port`, `http://host:port/path`, and ZooKeeper URLs
// `zk://[user:password@]host1:port1,host2:port2/chroot/path` (Mesos masters and our state store).
//
// Threading: pure functions on values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace etcd_mesos {

struct HostPort {
  std::string host;
  uint16_t port = 0;

  std::string ToString() const;
  bool operator==(const HostPort&) const = default;
};

// Parses `host:port` (IPv6 as `[::1]:port`). The port is required and must be 1..65535.
Result<HostPort> ParseHostPort(std::string_view text);

struct HttpUrl {
  std::string scheme = "http";
  HostPort endpoint;
  std::string path = "/";  // always starts with '/'; includes any query string

  std::string ToString() const;
};

// Parses `http://host:port[/path]` (and `https://`). A missing port takes the scheme's default.
Result<HttpUrl> ParseHttpUrl(std::string_view text);

// Resolves an HTTP redirect `Location` against the URL that produced it. Mesos answers 307 with a
// protocol-relative `//host:port/path`, which keeps the scheme of the original request.
Result<HttpUrl> ResolveLocation(const HttpUrl& base, std::string_view location);

struct ZkUrl {
  std::vector<HostPort> servers;
  std::string path;  // chroot, starts with '/', never just "/", no trailing '/'
  std::optional<std::string> user;
  std::optional<std::string> password;

  std::string ServersString() const;  // "h1:p1,h2:p2", as zookeeper_init wants it
  std::string ToString() const;       // without the credentials
};

// Parses `zk://[user:password@]h1:p1,h2:p2/path`. A path is required, as Mesos requires it.
Result<ZkUrl> ParseZkUrl(std::string_view text);

// A `--master` value: either one master `host:port` (also `http://host:port`) or a zk:// URL.
struct MasterAddress {
  std::optional<HostPort> direct;
  std::optional<ZkUrl> zk;
};
Result<MasterAddress> ParseMasterAddress(std::string_view text);

}  // namespace etcd_mesos
