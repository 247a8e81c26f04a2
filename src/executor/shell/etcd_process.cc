#include "executor/shell/etcd_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include <fmt/format.h>
#include <boost/asio/post.hpp>

extern char** environ;

namespace etcd_mesos::executor::shell {

std::string ReadLogTail(const std::filesystem::path& path, size_t max_lines, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  std::streamoff size = in.tellg();
  std::streamoff want = std::min<std::streamoff>(size, static_cast<std::streamoff>(max_bytes));
  in.seekg(size - want);
  std::string data(static_cast<size_t>(want), '\0');
  in.read(data.data(), want);
  while (!data.empty() && data.back() == '\n') data.pop_back();
  // Keep the last max_lines lines; drop a first line cut in half by the byte limit.
  size_t pos = data.size();
  for (size_t lines = 0; lines < max_lines; ++lines) {
    size_t nl = pos == 0 ? std::string::npos : data.rfind('\n', pos - 1);
    if (nl == std::string::npos) {
      pos = want < size ? data.find('\n') : std::string::npos;
      pos = pos == std::string::npos ? 0 : pos + 1;
      return data.substr(pos);
    }
    pos = nl;
  }
  return data.substr(pos + 1);
}

EtcdProcess::EtcdProcess(boost::asio::io_context& io) : io_(io), sigchld_(io, SIGCHLD), sweep_(io) {
  WaitForSignal();
}

EtcdProcess::~EtcdProcess() {
  *alive_ = false;
  KillNow();
}

Result<pid_t> EtcdProcess::Start(const std::vector<std::string>& argv,
                                 const std::filesystem::path& cwd,
                                 const std::filesystem::path& log_file, ExitCallback on_exit,
                                 const std::filesystem::path& stdout_file) {
  if (pid_) return MakeError(ErrorCode::kInternal, "etcd is still running (pid {})", *pid_);
  if (argv.empty()) return MakeError(ErrorCode::kInvalidArgument, "empty etcd command line");
  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "ETCD_", 5) != 0 && std::strncmp(*e, "ETCDCTL_", 8) != 0) {
      envp.push_back(*e);
    }
  }
  envp.push_back(nullptr);
  std::string cwd_s = cwd.string();
  std::string log_s = log_file.string();
  std::string out_s = stdout_file.empty() ? log_s : stdout_file.string();
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    return MakeError(ErrorCode::kInternal, "pipe: {}", std::strerror(errno));
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return MakeError(ErrorCode::kUnavailable, "fork: {}", std::strerror(err));
  }
  if (pid == 0) {
    auto fail = [&](int step) {
      int report[2] = {step, errno};
      (void)!::write(pipefd[1], report, sizeof report);
      ::_exit(127);
    };
    ::setsid();
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(0);
    if (::getppid() != parent) ::_exit(1);  // the executor died before prctl took effect
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGCHLD, SIGHUP}) ::signal(sig, SIG_DFL);
    if (::chdir(cwd_s.c_str()) != 0) fail(1);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    int log_fd = ::open(log_s.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (log_fd < 0) fail(2);
    int out_fd =
        out_s == log_s ? log_fd : ::open(out_s.c_str(), O_WRONLY | O_TRUNC | O_CREAT, 0644);
    if (out_fd < 0) fail(2);
    ::dup2(out_fd, 1);
    ::dup2(log_fd, 2);
    // Close everything else but the report pipe (close-on-exec, so exec closes it).
    for (int fd = 3; fd < 1024; ++fd) {
      if (fd != pipefd[1]) ::close(fd);
    }
    ::execvpe(args[0], args.data(), envp.data());
    fail(3);
  }
  ::close(pipefd[1]);
  int report[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(pipefd[0], report, sizeof report);
  } while (n < 0 && errno == EINTR);
  ::close(pipefd[0]);
  if (n == static_cast<ssize_t>(sizeof report)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    static constexpr const char* kSteps[] = {"prctl(PR_SET_PDEATHSIG)", "chdir to the sandbox",
                                             "open the log or output file", "exec"};
    return MakeError(ErrorCode::kInvalidArgument, "cannot start '{}': {} failed: {}", argv[0],
                     kSteps[report[0] & 3], std::strerror(report[1]));
  }
  pid_ = pid;
  on_exit_ = std::move(on_exit);
  Sweep();
  return pid;
}

void EtcdProcess::Signal(int sig) {
  if (pid_) ::kill(-*pid_, sig);
}

void EtcdProcess::KillNow() {
  if (!pid_) return;
  ::kill(-*pid_, SIGKILL);
  int status = 0;
  while (::waitpid(*pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_.reset();
  on_exit_ = nullptr;
  sweep_.cancel();
}

void EtcdProcess::WaitForSignal() {
  sigchld_.async_wait([this, alive = alive_](const boost::system::error_code& ec, int) {
    if (ec || !*alive) return;
    Reap();
    WaitForSignal();
  });
}

// SIGCHLD can be coalesced or, with several signal_sets in one process, land elsewhere: a slow
// sweep makes sure an exit is never missed.
void EtcdProcess::Sweep() {
  sweep_.expires_after(std::chrono::milliseconds(500));
  sweep_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    Reap();
    if (pid_) Sweep();
  });
}

void EtcdProcess::Reap() {
  if (!pid_) return;
  int status = 0;
  pid_t r = ::waitpid(*pid_, &status, WNOHANG);
  if (r != *pid_) return;
  // Anything etcd itself started dies with its group.
  ::kill(-*pid_, SIGKILL);
  pid_.reset();
  sweep_.cancel();
  auto callback = std::move(on_exit_);
  on_exit_ = nullptr;
  if (callback) {
    boost::asio::post(io_, [alive = alive_, callback = std::move(callback), status] {
      if (*alive) callback(status);
    });
  }
}

}  // namespace etcd_mesos::executor::shell
