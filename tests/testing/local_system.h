// LocalSystem: the whole system in the test process for end-to-end tests. etcd-mesos-local (a
// master and agents on this test process's leased 127.0.0.x addresses) with the real scheduler
// shell on it, launching the real executor (through a small wrapper script, so that the agents do
// not each fetch the sanitizer build's large binary) which runs real etcd.
//
// Threading: everything runs on the test's io_context, on the test thread; RunUntil drives it.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/result.h"
#include "etcd/client.h"
#include "local/cluster.h"
#include "scheduler/shell/flags.h"
#include "scheduler/shell/shell.h"

namespace etcd_mesos::test {

// Runs a shell command, stdout and stderr together. Blocking: for quick etcdctl calls only.
std::pair<int, std::string> RunCommand(const std::string& command);

struct LocalSystemOptions {
  int size = 3;  // --cluster-size; the cluster gets one agent more, for replacements
  std::string cluster_name = "e2e";
  std::string executor_path;             // the real etcd-mesos-executor binary
  std::vector<std::string> extra_flags;  // more scheduler flags; they win over the defaults
  std::chrono::milliseconds dead_member_grace = std::chrono::seconds(3);
};

class LocalSystem {
 public:
  LocalSystem(boost::asio::io_context& io, std::filesystem::path dir);
  ~LocalSystem();
  LocalSystem(const LocalSystem&) = delete;
  LocalSystem& operator=(const LocalSystem&) = delete;

  // Starts the cluster, then the scheduler. Fails the test (ASSERT) on any error: call it inside
  // ASSERT_NO_FATAL_FAILURE.
  void Start(const LocalSystemOptions& options);
  void StartScheduler();
  void StopScheduler();  // as a scheduler restart: no TEARDOWN, the members keep running
  void Stop();

  bool RunUntil(const std::function<bool()>& done, int seconds);
  // `size` running members, all voters and reachable, and the core calls the cluster healthy.
  bool AtSize(int size) const;
  // The client URLs of the members whose task runs, comma-separated.
  std::string Endpoints() const;
  // With TLS (--tls), etcdctl presents the scheduler's client certificate.
  std::pair<int, std::string> Etcdctl(const std::string& args, int command_timeout_s = 10) const;
  // Options for an etcd::Client of the members: with TLS, the scheduler's CA and client
  // certificate (the files it keeps in <state-dir>/tls once it has loaded its CA).
  Result<etcd::Client::Options> EtcdOptions() const;
  // SIGKILLs a member's executor (etcd dies with it), as when its container is lost.
  void KillMember(const std::string& name);

  const scheduler::SchedulerCore& core() const { return scheduler_->core(); }
  local::LocalCluster& cluster() { return *cluster_; }
  scheduler::shell::SchedulerShell* scheduler() { return scheduler_.get(); }
  scheduler::shell::SchedulerFlags& flags() { return flags_; }

 private:
  boost::asio::io_context& io_;
  std::filesystem::path dir_;
  std::unique_ptr<local::LocalCluster> cluster_;
  scheduler::shell::SchedulerFlags flags_;
  std::unique_ptr<scheduler::shell::SchedulerShell> scheduler_;
};

}  // namespace etcd_mesos::test
