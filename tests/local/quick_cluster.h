// QuickClusterOptions: the etcd-mesos-local cluster the local tests start: three agents with the
// usual resources under `work_dir`, a master on a free port, and timers short enough that an
// allocation, a heartbeat or an agent's loss is seen within a second or two.
//
// Threading: a pure function.
#pragma once

#include <chrono>
#include <filesystem>

#include "local/cluster.h"
#include "local/resources.h"

namespace etcd_mesos::local {

inline LocalClusterOptions QuickClusterOptions(const std::filesystem::path& work_dir) {
  using std::chrono::milliseconds;
  LocalClusterOptions options;
  options.agents = 3;
  options.resources = *ParseResources("cpus:4;mem:4096;disk:4096;ports:[31000-31999]");
  options.work_dir = work_dir;
  options.master.port = 0;
  options.master.allocation_interval = milliseconds(100);
  options.master.heartbeat_interval = milliseconds(500);
  options.master.agent_unreachable_timeout = milliseconds(1500);
  options.agent.ping_interval = milliseconds(200);
  options.agent.executor_shutdown_grace_period = milliseconds(1000);
  return options;
}

}  // namespace etcd_mesos::local
