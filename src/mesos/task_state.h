// Facts about Mesos task states shared by every component that reasons about tasks.
//
// Threading: pure functions.
#pragma once

#include "mesos/v1.h"

namespace etcd_mesos::mesos_facts {

// Mesos's own notion (protobuf::isTerminalState): the task will not run again. TASK_LOST counts,
// although a non-PARTITION_AWARE framework may see such a task come back as TASK_RUNNING.
constexpr bool IsTerminalState(mesos::TaskState state) {
  switch (state) {
    case mesos::TASK_FINISHED:
    case mesos::TASK_FAILED:
    case mesos::TASK_KILLED:
    case mesos::TASK_ERROR:
    case mesos::TASK_LOST:
    case mesos::TASK_DROPPED:
    case mesos::TASK_GONE:
    case mesos::TASK_GONE_BY_OPERATOR:
      return true;
    default:
      return false;
  }
}

}  // namespace etcd_mesos::mesos_facts
