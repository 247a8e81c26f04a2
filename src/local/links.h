// The in-process links between the master and the agents of etcd-mesos-local.
//
// Real Mesos joins master and agents by libprocess messages over TCP; here they live in one
// process, so each side calls the other through these interfaces. A Link carries the calls
// asynchronously (posted onto the io_context, never inline), in order, and drops them while the
// link is partitioned, so the master and the agents see the same things they would across a
// network: delays, silence, and an agent that comes back.
//
// Threading: everything runs on the cluster's one io_context thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "mesos/v1.h"

namespace etcd_mesos::local {

// What the master asks of an agent. Mirrors the master→agent messages of real Mesos.
class AgentApi {
 public:
  virtual ~AgentApi() = default;
  // Launch one task on behalf of a framework. The task carries either `executor` (a custom
  // executor, started if not yet running) or `command` (run by the agent's built-in command
  // executor). Status updates come back through MasterApi::StatusUpdate.
  virtual void RunTask(const mesos::FrameworkInfo& framework, const mesos::TaskInfo& task) = 0;
  virtual void KillTask(const mesos::FrameworkID& framework_id, const mesos::TaskID& task_id,
                        const std::optional<mesos::KillPolicy>& kill_policy) = 0;
  virtual void ShutdownExecutor(const mesos::FrameworkID& framework_id,
                                const mesos::ExecutorID& executor_id) = 0;
  // The framework is gone for good (teardown or failover timeout): kill all its executors.
  virtual void ShutdownFramework(const mesos::FrameworkID& framework_id) = 0;
  // The framework (re-)subscribed: resend pending status updates at once, as Mesos does.
  virtual void UpdateFramework(const mesos::FrameworkInfo& framework) = 0;
  // The scheduler acknowledged the status update `uuid` (16 raw bytes) of `task_id`.
  virtual void AcknowledgeUpdate(const mesos::FrameworkID& framework_id,
                                 const mesos::TaskID& task_id, const std::string& uuid) = 0;
  // A scheduler MESSAGE for an executor (best effort).
  virtual void FrameworkMessage(const mesos::FrameworkID& framework_id,
                                const mesos::ExecutorID& executor_id, const std::string& data) = 0;
  // The master heard from an agent it had marked unreachable: tell it what you run
  // (MasterApi::ReregisterAgent).
  virtual void RequestReregistration() = 0;
  // Operations changed the agent's resources (reservations, persistent volumes): keep `total`
  // as what the agent has from now on (and re-registers with), create the directory of each new
  // volume and delete that of each destroyed one (Mesos's CheckpointResourcesMessage).
  virtual void CheckpointResources(const std::vector<mesos::Resource>& total) = 0;
};

// What an agent tells the master. Mirrors the agent→master messages of real Mesos.
class MasterApi {
 public:
  virtual ~MasterApi() = default;
  // A status update to forward to the framework. Reliable updates (executor or agent generated)
  // carry a uuid and are resent by the agent until acknowledged. `latest_state` is the newest
  // state the agent knows for the task (it may be ahead of `status`, which is the oldest
  // unacknowledged update); the master's view of the task follows `latest_state`.
  virtual void StatusUpdate(const mesos::AgentID& agent_id, const mesos::FrameworkID& framework_id,
                            const mesos::TaskStatus& status, mesos::TaskState latest_state) = 0;
  // A custom executor process ended; `wait_status` is the raw waitpid status.
  virtual void ExecutorExited(const mesos::AgentID& agent_id,
                              const mesos::FrameworkID& framework_id,
                              const mesos::ExecutorID& executor_id, int wait_status) = 0;
  // An executor MESSAGE for the scheduler (best effort).
  virtual void ExecutorMessage(const mesos::AgentID& agent_id,
                               const mesos::FrameworkID& framework_id,
                               const mesos::ExecutorID& executor_id, const std::string& data) = 0;
  // The agent is alive and reachable; sent every ping interval while the link is up.
  virtual void AgentPing(const mesos::AgentID& agent_id) = 0;
  // Answer to AgentApi::RequestReregistration, and sent by a restarted agent that kept its work
  // dir: everything the agent runs, so the master can rebuild its view of that agent.
  virtual void ReregisterAgent(const mesos::AgentInfo& agent,
                               const std::vector<mesos::FrameworkInfo>& frameworks,
                               const std::vector<mesos::Task>& tasks,
                               const std::vector<mesos::ExecutorInfo>& executors) = 0;
};

// A two-way link that can be partitioned. Calls through either side are posted onto the
// io_context and dropped while partitioned (both directions, like a network split).
class Link {
 public:
  explicit Link(boost::asio::io_context& io) : io_(io) {}

  void Connect(AgentApi* agent, MasterApi* master) {
    agent_ = agent;
    master_ = master;
  }
  void Disconnect() {
    agent_ = nullptr;
    master_ = nullptr;
  }
  void set_partitioned(bool partitioned) { partitioned_ = partitioned; }
  bool partitioned() const { return partitioned_; }

  // Runs `call` on the agent side later, unless partitioned or disconnected by then.
  void ToAgent(std::function<void(AgentApi&)> call);
  // Runs `call` on the master side later, unless partitioned or disconnected by then.
  void ToMaster(std::function<void(MasterApi&)> call);

 private:
  boost::asio::io_context& io_;
  AgentApi* agent_ = nullptr;
  MasterApi* master_ = nullptr;
  bool partitioned_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

 public:
  ~Link() { *alive_ = false; }
};

}  // namespace etcd_mesos::local
