// Executor: the shell of etcd-mesos-executor around core::Supervisor, on one io_context.
//
// It turns the outside world into supervisor events and carries out the supervisor's actions:
//  - Mesos: an ExecutorClient (v1 executor API, environment from MESOS_*) delivers LAUNCH, KILL,
//    SHUTDOWN and the connection's drops and loss; SendStatus actions become UPDATE calls that the
//    client keeps until the agent acknowledges them.
//  - etcd: an EtcdProcess started with the command line of shell/command_line.h, data dir
//    `<sandbox>/data`, log `<sandbox>/etcd.log`; its exits (with the log's tail) become events.
//  - Probes: maintenance status, then /health and member list, through etcd::Client against the
//    member's client URL (status first: a learner answers it, and it carries the facts).
//  - Timers: one steady_timer per supervisor timer id.
//  - The reseed listener (shell/reseed_listener.h).
//  - TLS (a task with TaskConfig::tls): before etcd first starts, the member's certificates
//    (shell/member_tls.h: keys made here, requests sent to the scheduler); the probes then speak
//    https with the member's certificate.
//  - SIGTERM/SIGINT to the executor: a shutdown with a short grace period.
// Exit: once the supervisor says so, the executor waits (bounded) for the agent to acknowledge the
// last updates, makes sure etcd's process group is gone, and stops the io_context.
//
// Threading: everything on the io_context's thread; not thread-safe.
#pragma once

#include <array>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "etcd/client.h"
#include "executor/core/supervisor.h"
#include "executor/shell/etcd_process.h"
#include "executor/shell/reseed_listener.h"
#include "mesos/executor_client.h"

namespace etcd_mesos::executor::shell {

struct ExecutorOptions {
  std::string etcd_binary;  // --etcd-binary: default when the task names none
  core::CoreOptions core;
  // How long to wait for the agent to acknowledge the last updates before exiting anyway.
  std::chrono::milliseconds exit_flush_timeout{5000};
  std::chrono::milliseconds probe_timeout{2000};
};

class Executor {
 public:
  Executor(boost::asio::io_context& io, mesos_client::ExecutorEnvironment env,
           ExecutorOptions options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Start();
  // Set once the executor is done; the io_context has been stopped.
  std::optional<int> exit_code() const { return exit_code_; }

 private:
  void Feed(const core::Event& event);
  void Post(core::Event event);
  void Do(const core::Action& action);
  void DoStartEtcd(const core::StartEtcd& start);
  void DoProbe(uint64_t incarnation);
  void DoArm(const core::ArmTimer& arm);
  void DoExit(int code);
  void MaybeFinishExit();
  void StartReseedListener(TaskConfig config);
  void WaitForSignals();
  core::Time Now() const { return std::chrono::steady_clock::now(); }

  boost::asio::io_context& io_;
  mesos_client::ExecutorEnvironment env_;
  ExecutorOptions options_;
  std::filesystem::path sandbox_;
  core::Supervisor supervisor_;
  std::unique_ptr<mesos_client::ExecutorClient> client_;
  EtcdProcess etcd_;
  ReseedListener reseed_;
  std::unique_ptr<etcd::Client> etcd_client_;
  std::array<std::unique_ptr<boost::asio::steady_timer>, 4> timers_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer exit_timer_;
  bool subscribed_once_ = false;
  std::string task_id_;  // the task it runs (its certificates are asked for by it)
  bool exiting_ = false;
  bool agent_lost_ = false;
  // After SHUTDOWN the agent acknowledges nothing more (for a framework torn down it drops the
  // updates): the executor exits once the agent has taken its last update.
  bool shutdown_ = false;
  std::optional<core::Time> term_sent_at_;  // SIGTERM to etcd went out then
  // A TLS member's reseed listener waits for its certificates (it serves with them).
  std::optional<TaskConfig> reseed_waits_for_tls_;
  int pending_exit_code_ = 0;
  std::optional<int> exit_code_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace etcd_mesos::executor::shell
