// EtcdServer: a real etcd 3.4 member for tests, started from the installed `etcd` on a loopback IP
// (127.0.0.x: etcd needs IP addresses in its listen URLs), free client and peer ports, a data
// directory under the test's work directory, and the v2 API enabled, as a ChildProcess. It starts
// either as a new one-member cluster, as one of several members of a new cluster, or as a member
// joining a running cluster (--initial-cluster-state=existing), optionally added as a learner
// through etcd::Client first. Start calls wait until the member answers GET /health. With TLS
// files it serves https only and requires certificates of clients and peers; the helper's own
// requests then use Options::client_tls.
//
// Threading: not shared; owned by one test. Blocking calls run a private io_context.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/uri.h"
#include "etcd/launch.h"
#include "net/http.h"
#include "testing/process.h"

namespace etcd_mesos::test {

class EtcdServer {
 public:
  struct Options {
    std::string name = "n1";
    std::string ip = "127.0.0.2";
    std::chrono::milliseconds start_timeout{30000};
    // Set: https on both ports with these files (etcd::MemberConfig::tls).
    std::optional<etcd::TlsFiles> tls;
    // What the helper's health checks and member adds use with `tls`: a CA bundle and a client
    // certificate of the members' CA.
    std::shared_ptr<const net::TlsClientConfig> client_tls;
  };

  // Picks free ports; starts nothing. Data and log live under `work_dir`/<name>.
  EtcdServer(Options options, const std::filesystem::path& work_dir);
  ~EtcdServer();
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  // A new cluster of this member alone; waits until healthy.
  Status StartNewCluster();
  // Starts this member without waiting, with the given initial cluster (which must include it)
  // and state; for bringing up several members of a new cluster together. Then WaitUntilHealthy.
  Status Launch(const std::string& initial_cluster, bool new_cluster);
  // Adds this member to the running cluster through the voter at `voter` (as a learner or a
  // voter), then starts it with --initial-cluster-state=existing and waits until it answers
  // /health. Returns the new member's ID.
  Result<uint64_t> AddAndJoin(const HostPort& voter, bool as_learner);
  // Starts this member as already added (by the caller) to a running cluster whose members are
  // `initial_cluster`; waits until it answers /health.
  Status JoinExisting(const std::string& initial_cluster);
  // Starts this (stopped) member again alone on its own data, with --force-new-cluster: what a
  // reseed does to its survivor. Waits until healthy.
  Status RestartForcingNewCluster();
  // Polls GET /health until it answers healthy; fails early if the process exited.
  Status WaitUntilHealthy(std::chrono::milliseconds timeout);
  // Waits until the member answers /health at all (healthy or not).
  Status WaitUntilAnswering(std::chrono::milliseconds timeout);

  void Stop();  // SIGTERM, then SIGKILL; the data directory stays
  void Kill();  // SIGKILL, as a crash
  bool Running();

  const std::string& name() const { return config_.name; }
  const etcd::MemberConfig& config() const { return config_; }
  std::string client_url() const { return config_.ClientUrl(); }
  std::string peer_url() const { return config_.PeerUrl(); }
  HostPort client_endpoint() const { return {config_.ip, config_.client_port}; }
  std::filesystem::path data_dir() const { return config_.data_dir; }
  std::string LogTail(size_t max_bytes = 4000) const;

  // "n1=http://...,n2=http://..." (https with TLS) for the given servers.
  static std::string InitialCluster(const std::vector<const EtcdServer*>& servers);

 private:
  Status WaitFor(std::chrono::milliseconds timeout, bool need_healthy);

  Options options_;
  etcd::MemberConfig config_;
  std::filesystem::path log_file_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace etcd_mesos::test
