// Agent: one simulated Mesos agent of etcd-mesos-local, a host of its own. It has its own
// loopback address (127.0.0.2, 127.0.0.3, ...), its own HTTP port serving the v1 executor API
// (`/slave(N)/api/v1/executor`, and `/api/v1/executor` as a stand-alone agent does) and
// `/slave(N)/state`, its own work dir with sandboxes laid out as real Mesos lays them out, and its
// own resources. It starts custom executors as child processes in their sandboxes with the full
// MESOS_* environment, runs CommandInfo tasks with a built-in command executor, fetches URIs,
// and keeps status updates reliable (per-task FIFO, one in flight, resent with the same uuid
// until the scheduler acknowledges). With a JWT secret key it issues executor tokens and can
// require them, as a Mesos agent does. It talks to the master only through a Link.
//
// Threading: runs on the cluster's io_context thread; not thread-safe.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "common/result.h"
#include "common/uri.h"
#include "local/links.h"
#include "mesos/v1.h"

namespace etcd_mesos::local {

struct AgentOptions {
  int index = 1;                   // N in slave(N); agents are numbered from 1
  std::string ip = "127.0.0.2";    // the agent's own loopback address; also its hostname
  uint16_t port = 0;               // 0 picks a free port
  std::filesystem::path work_dir;  // this agent's own work dir
  // Where fetched URIs marked `cache` are kept (Mesos's --fetcher_cache_dir). Empty: the agent's
  // own <work_dir>/fetch, as on a real host.
  std::filesystem::path fetch_cache_dir;
  std::vector<mesos::Resource> resources;
  std::string master_pid;  // "master@ip:port", for /slave(N)/state
  std::chrono::milliseconds executor_registration_timeout{60'000};
  // After a restart that kept executors (Stop(kKeepExecutors) then Start()), how long a
  // subscribed executor has to re-subscribe before it is killed and its tasks fail with
  // REASON_EXECUTOR_REREGISTRATION_TIMEOUT (Mesos: --executor_reregistration_timeout, 2 s there;
  // longer here because sanitizer builds are slow and executors back off up to 2 s).
  std::chrono::milliseconds executor_reregistration_timeout{10'000};
  std::chrono::milliseconds executor_shutdown_grace_period{5'000};
  std::chrono::milliseconds status_update_retry_min{10'000};  // doubles up to retry_max
  std::chrono::milliseconds status_update_retry_max{600'000};
  std::chrono::milliseconds ping_interval{1'000};
  std::chrono::milliseconds recovery_timeout{900'000};        // MESOS_RECOVERY_TIMEOUT
  std::chrono::milliseconds subscription_backoff_max{2'000};  // MESOS_SUBSCRIPTION_BACKOFF_MAX
  // Mesos's --executor_environment_variables: added to every executor's environment (a host's
  // trust store, SSL_CERT_FILE, say). Mesos's executors inherit the agent's own environment when
  // that flag is unset; these agents share one process with their master, so they pass nothing
  // of theirs but what this names.
  std::map<std::string, std::string> executor_environment;
  // Mesos's --jwt_secret_key (the file's contents): each executor launched gets a JWT signed with
  // it (claims fid, eid, cid) in MESOS_EXECUTOR_AUTHENTICATION_TOKEN. Empty: no tokens.
  std::string jwt_secret_key;
  // Mesos's --authenticate_http_executors (needs jwt_secret_key): calls to the executor API must
  // carry `Authorization: Bearer <token>`: else 401 with a Bearer challenge for the realm
  // mesos-agent-executor; a valid token of another executor or run gets 403.
  bool authenticate_http_executors = false;
};

class Agent : public AgentApi {
 public:
  Agent(boost::asio::io_context& io, AgentOptions options, mesos::AgentID id, Link& link);
  ~Agent() override;  // kills every process it started (SIGTERM, then SIGKILL)

  // Binds the HTTP server on options.ip:port and starts pinging the master.
  Result<HostPort> Start();

  enum class StopMode {
    kLoseHost,      // the host died: every executor (and its children) is SIGKILLed at once
    kKeepExecutors  // the agent process restarts: executors keep running and will re-subscribe
  };
  // Stops serving HTTP and pinging. With kKeepExecutors, Start() later resumes with the same id,
  // the same sandboxes and the same in-memory (as if checkpointed) state; executors re-subscribe.
  void Stop(StopMode mode);

  // Fault injection: SIGKILL one executor's process group (the agent then reports TASK_FAILED
  // for its tasks, as for any executor exit). kNotFound if no such running executor.
  Status KillExecutor(const std::string& executor_id);

  const mesos::AgentID& id() const;
  mesos::AgentInfo info() const;
  HostPort address() const;  // ip and bound HTTP port
  std::string pid() const;   // "slave(N)@ip:port"
  const std::vector<mesos::Resource>& resources() const;
  // Sandbox directory of a running or completed executor ("" if unknown), for /master/state.
  std::string SandboxOf(const std::string& framework_id, const std::string& executor_id) const;
  // Every executor this agent has run, live or completed, with its sandbox directory: what the
  // console lists per agent (no disk I/O).
  struct SandboxEntry {
    std::string framework_id;
    std::string executor_id;
    std::string directory;
    bool live = false;  // its process runs now (a kill fault can reach it)
  };
  std::vector<SandboxEntry> Sandboxes() const;
  // The pids of every live process this agent started (executors and command tasks).
  std::vector<int> ProcessIds() const;
  // The JSON document of GET /slave(N)/state.
  nlohmann::json StateJson() const;

  // AgentApi (called by the master through the Link).
  void RunTask(const mesos::FrameworkInfo& framework, const mesos::TaskInfo& task) override;
  void KillTask(const mesos::FrameworkID& framework_id, const mesos::TaskID& task_id,
                const std::optional<mesos::KillPolicy>& kill_policy) override;
  void ShutdownExecutor(const mesos::FrameworkID& framework_id,
                        const mesos::ExecutorID& executor_id) override;
  void ShutdownFramework(const mesos::FrameworkID& framework_id) override;
  void UpdateFramework(const mesos::FrameworkInfo& framework) override;
  void AcknowledgeUpdate(const mesos::FrameworkID& framework_id, const mesos::TaskID& task_id,
                         const std::string& uuid) override;
  void FrameworkMessage(const mesos::FrameworkID& framework_id,
                        const mesos::ExecutorID& executor_id, const std::string& data) override;
  void RequestReregistration() override;
  void CheckpointResources(const std::vector<mesos::Resource>& total) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace etcd_mesos::local
