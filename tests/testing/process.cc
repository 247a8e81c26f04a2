#include "testing/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace etcd_mesos::test {

ChildProcess::ChildProcess(std::vector<std::string> argv, std::filesystem::path log_file,
                           std::map<std::string, std::string> env)
    : log_file_(std::move(log_file)) {
  int fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open log file " + log_file_.string());
  pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::setpgid(0, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    // Nothing else of the test goes with it: a server that inherited, say, the listening socket
    // of a scheduler under test would keep its port bound after the scheduler closed it.
    if (::syscall(SYS_close_range, 3u, ~0u, 0) != 0) {
      for (int other = 3; other < 4096; ++other) ::close(other);
    }
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(fd);
}

ChildProcess::~ChildProcess() {
  if (!reaped_) Stop(std::chrono::seconds(5));
}

bool ChildProcess::Running() {
  if (reaped_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = status;
    return false;
  }
  return true;
}

void ChildProcess::Kill(int signal) {
  if (!reaped_) ::kill(pid_, signal);
}

int ChildProcess::Wait() {
  if (!reaped_) {
    ::waitpid(pid_, &status_, 0);
    reaped_ = true;
  }
  return status_;
}

int ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (!Running()) return status_;
  ::kill(pid_, SIGTERM);
  if (!WaitFor([this] { return !Running(); }, grace)) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
  }
  return Wait();
}

std::string ChildProcess::LogTail(size_t max_bytes) const {
  std::ifstream in(log_file_);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > max_bytes ? all.substr(all.size() - max_bytes) : all;
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::filesystem::path WriteExecutorWrapper(const std::filesystem::path& dir,
                                           const std::string& executor) {
  std::filesystem::path wrapper = dir / "etcd-mesos-executor";
  std::ofstream(wrapper) << "#!/bin/sh\nexec " << executor << " \"$@\"\n";
  std::filesystem::permissions(wrapper, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::add);
  return wrapper;
}

}  // namespace etcd_mesos::test
