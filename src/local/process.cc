#include "local/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

namespace etcd_mesos::local {
namespace asio = boost::asio;

namespace {

// How often the watched pids are polled in case a SIGCHLD notification was lost (another library
// may have installed its own SIGCHLD handler over asio's).
constexpr auto kSweepInterval = std::chrono::milliseconds(500);

// Resolves a bare program name in `path_var` (the child's PATH), as execvp would.
std::string ResolveProgram(const std::string& program, const std::string& path_var) {
  if (program.find('/') != std::string::npos) return program;
  size_t start = 0;
  while (start <= path_var.size()) {
    size_t end = path_var.find(':', start);
    if (end == std::string::npos) end = path_var.size();
    std::string dir = path_var.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return program;  // exec will fail with ENOENT and say so
}

// Closes every descriptor from `from` up, except `keep`. close_range where the kernel has it,
// a loop otherwise. Async-signal-safe.
void CloseDescriptorsFrom(int from, int keep) {
  auto close_range = [](unsigned first, unsigned last) {
    if (first > last) return;
#ifdef SYS_close_range
    if (::syscall(SYS_close_range, first, last, 0) == 0) return;
#endif
    long max = ::sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (long fd = first; fd < max && fd <= static_cast<long>(last); ++fd) ::close(fd);
  };
  close_range(from, keep - 1);
  close_range(keep + 1, ~0U);
}

// Writes errno and a stage marker to the error pipe, then exits. Async-signal-safe.
[[noreturn]] void ChildFail(int pipe_fd, int stage) {
  int payload[2] = {stage, errno};
  ssize_t ignored = ::write(pipe_fd, payload, sizeof(payload));
  (void)ignored;
  ::_exit(127);
}

const char* StageName(int stage) {
  switch (stage) {
    case 1:
      return "setsid";
    case 2:
      return "chdir to the working directory";
    case 3:
      return "open stdout";
    case 4:
      return "open stderr";
    case 5:
      return "exec";
    default:
      return "start";
  }
}

}  // namespace

Result<pid_t> SpawnProcess(const ProcessSpec& spec) {
  // Everything the child needs is prepared before fork: after fork only async-signal-safe calls.
  std::vector<std::string> argv_strings = spec.argv;
  if (argv_strings.empty()) argv_strings.push_back(spec.program);
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_strings;
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  auto path_it = spec.env.find("PATH");
  std::string program =
      ResolveProgram(spec.program, path_it == spec.env.end() ? "/usr/bin:/bin" : path_it->second);
  std::string cwd = spec.cwd.string();
  std::string out_path = spec.stdout_path.empty() ? "/dev/null" : spec.stdout_path.string();
  std::string err_path = spec.stderr_path.empty() ? "/dev/null" : spec.stderr_path.string();

  int error_pipe[2];
  if (::pipe2(error_pipe, O_CLOEXEC) != 0) {
    return MakeError(ErrorCode::kInternal, "cannot start {}: pipe: {}", spec.program,
                     std::strerror(errno));
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(error_pipe[0]);
    ::close(error_pipe[1]);
    return MakeError(ErrorCode::kUnavailable, "cannot start {}: fork: {}", spec.program,
                     std::strerror(err));
  }
  if (pid == 0) {
    int fd = error_pipe[1];
    ::close(error_pipe[0]);
    if (::setsid() < 0) ChildFail(fd, 1);
    // Die with etcd-mesos-local; if it already died before prctl took effect, go now.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // A fresh signal state: our handlers are reset by exec, but masks and ignores are inherited.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGQUIT}) {
      ::sigaction(sig, &dfl, nullptr);
    }
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ChildFail(fd, 2);
    int in = ::open("/dev/null", O_RDONLY);
    if (in >= 0 && in != 0) {
      ::dup2(in, 0);
      ::close(in);
    }
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out < 0) ChildFail(fd, 3);
    ::dup2(out, 1);
    if (out != 1) ::close(out);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (err < 0) ChildFail(fd, 4);
    ::dup2(err, 2);
    if (err != 2) ::close(err);
    if (fd <= 2) ::_exit(127);  // cannot happen: 0-2 were open in the parent
    CloseDescriptorsFrom(3, fd);
    ::execve(program.c_str(), argv.data(), envp.data());
    ChildFail(fd, 5);
  }

  ::close(error_pipe[1]);
  int payload[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(error_pipe[0], payload, sizeof(payload));
  } while (n < 0 && errno == EINTR);
  ::close(error_pipe[0]);
  if (n <= 0) return pid;  // exec succeeded: the pipe closed on exec

  // The child failed before exec and has exited: reap it here, it is ours alone.
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return MakeError(ErrorCode::kInvalidArgument, "cannot start '{}': {} failed: {}", spec.program,
                   StageName(payload[0]), std::strerror(payload[1]));
}

void SignalGroup(pid_t pgid, int sig) {
  if (pgid <= 1) return;  // never kill(-1) or kill(0)
  ::kill(-pgid, sig);
}

bool ProcessExists(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

ChildReaper::ChildReaper(asio::io_context& io) : io_(io), sigchld_(io, SIGCHLD), sweep_(io) {
  WaitForSignal();
}

ChildReaper::~ChildReaper() {
  *alive_ = false;
  TerminateAllNow(std::chrono::milliseconds(2000));
  boost::system::error_code ignored;
  sigchld_.cancel(ignored);
  sweep_.cancel();
}

void ChildReaper::WaitForSignal() {
  sigchld_.async_wait([this, alive = alive_](const boost::system::error_code& ec, int) {
    if (ec || !*alive) return;
    ReapNow();
    WaitForSignal();
  });
}

void ChildReaper::Watch(pid_t pid, ExitCallback on_exit) {
  watched_[pid] = std::move(on_exit);
  // The child may have exited before it was watched; its SIGCHLD is queued, but look anyway.
  asio::post(io_, [this, alive = alive_] {
    if (*alive) ReapNow();
  });
  if (watched_.size() == 1) {
    sweep_.expires_after(kSweepInterval);
    sweep_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
      if (ec || !*alive) return;
      ReapNow();
    });
  }
}

void ChildReaper::Forget(pid_t pid) { watched_.erase(pid); }

std::vector<pid_t> ChildReaper::Pids() const {
  std::vector<pid_t> pids;
  for (const auto& [pid, cb] : watched_) pids.push_back(pid);
  return pids;
}

void ChildReaper::ReapNow() {
  std::vector<std::pair<ExitCallback, int>> exited;
  for (auto it = watched_.begin(); it != watched_.end();) {
    int status = 0;
    pid_t r = ::waitpid(it->first, &status, WNOHANG);
    if (r == it->first || (r < 0 && errno == ECHILD)) {
      // ECHILD: someone else reaped it (should not happen); report it as gone.
      if (r < 0) status = 0;
      // The container is destroyed with its leader, as Mesos's launcher does: the rest of the
      // group (whatever the executor left running) goes too.
      SignalGroup(it->first, SIGKILL);
      exited.emplace_back(std::move(it->second), status);
      it = watched_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [cb, status] : exited) {
    if (cb)
      asio::post(io_, [cb = std::move(cb), status, alive = alive_] {
        if (*alive) cb(status);
      });
  }
  if (!watched_.empty()) {
    sweep_.expires_after(kSweepInterval);
    sweep_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
      if (ec || !*alive) return;
      ReapNow();
    });
  } else {
    sweep_.cancel();
  }
}

void ChildReaper::KillAllNow() {
  for (const auto& [pid, cb] : watched_) SignalGroup(pid, SIGKILL);
  for (const auto& [pid, cb] : watched_) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  watched_.clear();
  sweep_.cancel();
}

void ChildReaper::TerminateAllNow(std::chrono::milliseconds grace) {
  for (const auto& [pid, cb] : watched_) SignalGroup(pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (!watched_.empty() && std::chrono::steady_clock::now() < deadline) {
    for (auto it = watched_.begin(); it != watched_.end();) {
      int status;
      pid_t r = ::waitpid(it->first, &status, WNOHANG);
      if (r == it->first || (r < 0 && errno == ECHILD)) {
        SignalGroup(it->first, SIGKILL);
        it = watched_.erase(it);
      } else {
        ++it;
      }
    }
    if (!watched_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  KillAllNow();
}

}  // namespace etcd_mesos::local
