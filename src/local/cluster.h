// LocalCluster: everything etcd-mesos-local runs in one process: the master, N agents (each a
// host of its own on 127.0.0.2, 127.0.0.3, ...), the links between them, the operator's console
// at `/` (local/console_page.h) with its data at `/faults/state`, a read-only sandbox browser,
// and the fault injection endpoints under `/faults/` that do to a framework what a real cluster
// does (lose a host, restart an agent with or without its work dir, partition an agent from the
// master, kill an executor). Frameworks only ever see the consequences through the normal v1
// events.
//
// Threading: runs on one io_context thread; not thread-safe.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "common/result.h"
#include "local/agent.h"
#include "local/master.h"
#include "local/process.h"

namespace etcd_mesos::local {

struct LocalClusterOptions {
  int agents = 3;
  std::vector<mesos::Resource> resources;  // every agent's, as on identical hosts
  std::filesystem::path work_dir;
  int first_agent_host = 2;  // agents live on 127.0.0.<first_agent_host + i>
  MasterOptions master;
  // Template: index, ip, port, work_dir and resources are filled per agent. Unless the template
  // names one, the agents share one fetcher cache, <work_dir>/fetch-cache: they are one host, and
  // a replacement launched on an agent that never ran a member then links the tens of MB of etcd
  // instead of downloading them again through the process that also runs the master and every
  // agent (on a loaded machine under a sanitizer that took minutes, past the learner timeout).
  // A real Mesos agent keeps its own cache, which it fills at its first launch of each version.
  AgentOptions agent;
};

class LocalCluster {
 public:
  LocalCluster(boost::asio::io_context& io, LocalClusterOptions options);
  ~LocalCluster();

  Result<HostPort> Start();
  // Stops every agent (killing every process they started), the master, and the child command.
  void Shutdown();

  // Fault injection (also at POST /faults/...). Agents are numbered from 1.
  Status StopAgent(int n);   // the host dies with everything on it
  Status CrashAgent(int n);  // the agent process dies; its executors run on, reconnecting
  Status RestartAgent(int n, bool wipe);  // agent process restarts; wipe = new host identity
  Status PartitionAgent(int n);           // master stops hearing from it; it keeps running
  Status HealAgent(int n);
  Status KillExecutor(const std::string& executor_id);
  // Corrupts the etcd data of one member behind its back, as a failing disk would: every copy
  // of `value` (at least 16 bytes: write a key with a distinctive value first) in the member's
  // bolt database (member/snap/db under the executor's sandbox) has each byte flipped (XOR 1), in
  // place. etcd maps that file shared and reads through the map, so the running member's reads
  // and HashKV see the change at once, while its peers keep the right data. Returns the file and
  // the number of copies changed; kNotFound without a sandbox, database or copy. Reads the whole
  // file on the calling thread (the test databases are a few MiB).
  Result<std::pair<std::string, int>> CorruptData(const std::string& executor_id,
                                                  std::string_view value);
  // The master process restarts on the same address with no memory (no registry): schedulers
  // lose their stream and must re-subscribe with their framework id; each agent that is up
  // re-registers with what it runs after `agents_back_after`, and until then the master neither
  // offers its resources nor vouches for its tasks (reconciliation answers TASK_UNKNOWN, or
  // TASK_LOST to frameworks that are not partition-aware), as real Mesos does after failover.
  // With ZooKeeper, the killed master's session lives `session_lives` more (default: the session
  // timeout): the new master redirects to its dead predecessor's address (its own) until the
  // session expires, is elected, recovers, and only then do the agents' timers start.
  Status RestartMaster(std::chrono::milliseconds agents_back_after,
                       std::optional<std::chrono::milliseconds> session_lives = std::nullopt);

  // Where frameworks find the master: ip:port, or with ZooKeeper the zk:// URL.
  std::string MasterUrl() const;
  // Starts `argv` (e.g. the scheduler) as a child once the cluster is up; it is stopped at
  // shutdown. MESOS_MASTER=MasterUrl() is added to its environment.
  Status StartCommand(const std::vector<std::string>& argv);

  // GET /faults/state: what the harness knows that /master/state does not, for the console: per
  // agent its number (as in the fault URLs), id, address, fault state ("running", "partitioned",
  // "crashed" or "stopped"), resources, and every executor it has run with its sandbox directory.
  // In memory only: never blocks.
  nlohmann::json FaultStateJson() const;

  Master& master() { return *master_; }
  int agent_count() const { return static_cast<int>(agents_.size()); }
  Agent* agent(int n);  // nullptr when out of range or stopped for good
  std::vector<int> ProcessIds() const;

 private:
  struct AgentSlot;
  bool HandleExtra(const net::ServerRequest& req, std::shared_ptr<net::Responder>& responder);
  void HandleFault(const net::ServerRequest& req, std::shared_ptr<net::Responder>& responder);
  void ServeIndex(std::shared_ptr<net::Responder>& responder);
  void ServeSandbox(const net::ServerRequest& req, std::shared_ptr<net::Responder>& responder);
  Result<AgentSlot*> Slot(int n);
  Status LaunchAgent(AgentSlot& slot, bool new_identity);
  void ReregisterAgentsAfter(std::chrono::milliseconds delay);

  boost::asio::io_context& io_;
  LocalClusterOptions options_;
  std::unique_ptr<Master> master_;
  std::vector<std::unique_ptr<Master>> retired_masters_;  // stopped; kept until shutdown
  std::unique_ptr<boost::asio::steady_timer> reregistration_timer_;
  std::vector<std::unique_ptr<AgentSlot>> agents_;
  int next_agent_id_ = 0;
  ChildReaper reaper_;
  pid_t command_pid_ = -1;
};

}  // namespace etcd_mesos::local
