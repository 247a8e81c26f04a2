// ZooKeeperServer: a real standalone ZooKeeper server for tests, run from the Debian package's
// jars (org.apache.zookeeper.server.ZooKeeperServerMain) on 127.0.0.1, a free port and a temporary
// data directory, as a ChildProcess. It can be stopped and started again on the same port and data,
// to test what clients do while their server is away.
//
// Threading: not shared; owned by one test (or one test suite).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "testing/process.h"
#include "testing/tempdir.h"

namespace etcd_mesos::test {

class ZooKeeperServer {
 public:
  struct Options {
    std::string ip = "127.0.0.1";
    // Sessions may last 2..20 ticks; a short tick lets tests expire sessions quickly.
    int tick_ms = 500;
    std::chrono::milliseconds start_timeout{60000};
  };

  ZooKeeperServer() : ZooKeeperServer(Options{}) {}
  explicit ZooKeeperServer(Options options);
  ~ZooKeeperServer();
  ZooKeeperServer(const ZooKeeperServer&) = delete;
  ZooKeeperServer& operator=(const ZooKeeperServer&) = delete;

  // Starts the server (again, after Stop: same port, same data) and waits until a ZooKeeper client
  // session can be established. The error carries the end of the server's log.
  Status Start();
  // Stops it (SIGTERM, then SIGKILL). Data stays for the next Start.
  void Stop();
  bool running() const { return process_ != nullptr; }

  uint16_t port() const { return port_; }
  std::string servers() const;                     // "127.0.0.1:port"
  std::string Url(std::string_view chroot) const;  // "zk://127.0.0.1:port<chroot>"
  std::string LogTail(size_t max_bytes = 4000) const;

 private:
  Options options_;
  TempDir dir_{"em-zk"};
  uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

// Waits up to `timeout` until a client session to `servers` can be established.
Status WaitForZooKeeper(const std::string& servers, std::chrono::milliseconds timeout);

// Ends the session `session_id` (password: the 16 bytes zoo_client_id gives) by attaching a second
// client to it and closing that client, the cheap way to make ZooKeeper expire another client's
// session: the original client learns of it as ZOO_EXPIRED_SESSION_STATE.
Status ExpireZooKeeperSession(const std::string& servers, int64_t session_id,
                              const std::string& password);

}  // namespace etcd_mesos::test
