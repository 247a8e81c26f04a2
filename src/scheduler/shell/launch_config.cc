#include "scheduler/shell/launch_config.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

extern char** environ;

namespace etcd_mesos::scheduler::shell {

namespace {

uint64_t Fnv1a(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

LaunchConfig DescribeLaunch(const CoreConfig& core, const std::vector<std::string>& etcd_flags,
                            const std::string& etcd_version) {
  LaunchConfig out;
  out.summary = fmt::format(
      "etcd {}, cpus {:g}, mem {:g} MB, disk {:g} MB, executor cpus {:g} mem {:g} MB, {}",
      etcd_version.empty() ? "(version unknown)" : etcd_version, core.task_cpus, core.task_mem,
      core.task_disk, core.executor_cpus, core.executor_mem, fmt::join(etcd_flags, " "));
  out.fingerprint = fmt::format("lc-{:016x}", Fnv1a(out.summary));
  return out;
}

std::string ParseEtcdVersionOutput(const std::string& output) {
  static constexpr std::string_view kPrefix = "etcd Version:";
  size_t at = output.find(kPrefix);
  if (at == std::string::npos) return "";
  size_t begin = output.find_first_not_of(" \t", at + kPrefix.size());
  if (begin == std::string::npos) return "";
  size_t end = output.find_first_of(" \t\r\n", begin);
  return output.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

Result<std::string> EtcdBinaryVersion(const std::string& etcd_bin) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) {
    return MakeError(ErrorCode::kInternal, "pipe: {}", std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  std::string flag = "--version";
  char* argv[] = {const_cast<char*>(etcd_bin.c_str()), flag.data(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawn(&pid, etcd_bin.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    return MakeError(ErrorCode::kInvalidArgument, "cannot run {} --version: {}", etcd_bin,
                     std::strerror(rc));
  }
  std::string output;
  char buffer[4096];
  ssize_t n = 0;
  while (output.size() < (1 << 16) && (n = ::read(pipe_fds[0], buffer, sizeof buffer)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    output.append(buffer, static_cast<size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string version = ParseEtcdVersionOutput(output);
  if (version.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "{} --version printed no 'etcd Version:'",
                     etcd_bin);
  }
  return version;
}

}  // namespace etcd_mesos::scheduler::shell
