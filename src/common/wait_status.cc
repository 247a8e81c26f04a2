#include "common/wait_status.h"

#include <sys/wait.h>

#include <cstring>

#include <fmt/format.h>

namespace etcd_mesos {

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return fmt::format("exited with status {}", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    int sig = WTERMSIG(wait_status);
    const char* name = ::strsignal(sig);
    return fmt::format("killed by signal {} ({})", sig, name != nullptr ? name : "?");
  }
  return fmt::format("ended with wait status {}", wait_status);
}

}  // namespace etcd_mesos
