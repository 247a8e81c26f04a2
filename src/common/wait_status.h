// How a process ended, in words: one description of a waitpid() status for every program of
// ours (the executor's account of etcd, etcd-mesos-local's of its executors, and the
// scheduler's of an executor failure the master reports, whose `status` is a raw wait status).
//
// Threading: a pure function.
#pragma once

#include <string>

namespace etcd_mesos {

// "exited with status 1", "killed by signal 9 (Killed)"; anything else names the raw number.
std::string DescribeWaitStatus(int wait_status);

}  // namespace etcd_mesos
