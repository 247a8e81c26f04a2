// `etcd-mesos-scheduler teardown`: the operator's command to stop a cluster for good. It takes
// the scheduler's own flags (--master, --cluster-name, the store and token flags), so that the
// command line that runs a cluster is the one that removes it.
//
// With a scheduler running (the master lists an active framework of that name), it asks that
// scheduler (POST <webui_url>/teardown?confirm=<cluster name>, with the admin token) and follows
// the teardown at the master and in /stats until the framework is gone. With none running, the
// caller runs the scheduler itself in teardown mode (SchedulerShell::Options::teardown): it
// re-registers as the framework, tears the cluster down and exits.
//
// Threading: blocking calls on the calling thread (HTTP with deadlines; a ZooKeeper master
// detection runs its own io_context until the leader is known). For the command line only.
#pragma once

#include <ostream>
#include <string>

#include "scheduler/shell/flags.h"

namespace etcd_mesos::scheduler::shell {

// What `teardown --help` prints before the flags.
std::string TeardownUsage();

struct TeardownOutcome {
  // The running scheduler was asked, and what it did is known: exit with `exit_code`. False:
  // no scheduler of that name is connected to the master; tear down in-process.
  bool handled = false;
  int exit_code = 0;
};

// Asks the running scheduler to tear the cluster down and follows it to the end, saying what
// happens on `out`. Errors (no master, no token, a refusal) are said there too, with exit code 1
// (2 for a missing token).
TeardownOutcome TeardownThroughRunningScheduler(const SchedulerFlags& flags, std::ostream& out);

}  // namespace etcd_mesos::scheduler::shell
