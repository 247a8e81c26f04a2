// EtcdProcess: the one etcd child of the executor (also the proxy's grpc-proxy, and the
// scheduler's scratch etcd and etcdctl runs when it verifies a backup).
//
// etcd runs in its own session and process group (so a signal reaches etcd and anything it
// started, and the agent's signals to the executor's group do not hit etcd half-way through a
// graceful stop), with PR_SET_PDEATHSIG(SIGKILL) so that it dies with the executor even when the
// executor is SIGKILLed, with its stdout and stderr appended to a log file in the sandbox, with no
// inherited descriptors beyond 0-2, and without the executor's ETCD_* environment variables (etcd
// reads those as flags; its flags come only from our command line).
//
// Exits are noticed through SIGCHLD (an asio signal_set) plus a slow sweep, reaping only our own
// pid with waitpid(pid, WNOHANG).
//
// Threading: lives on one io_context thread; Start must be called from the thread that will keep
// running (Linux sends the parent-death signal when the forking *thread* exits). The exit callback
// is posted, never run inside a call.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/result.h"
#include "common/wait_status.h"

namespace etcd_mesos::executor::shell {

// The last `max_lines` lines of `path`, at most `max_bytes` bytes; "" if unreadable.
std::string ReadLogTail(const std::filesystem::path& path, size_t max_lines = 15,
                        size_t max_bytes = 3000);

class EtcdProcess {
 public:
  using ExitCallback = std::function<void(int wait_status)>;

  explicit EtcdProcess(boost::asio::io_context& io);
  // SIGKILLs the process group if still running and reaps it.
  ~EtcdProcess();
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  // Starts argv[0] (a path, or a name searched in PATH) in `cwd`. Fails (with the reason) if
  // something still runs, or when the program cannot be executed. `on_exit` runs once, posted.
  // stdout goes to `stdout_file` when one is given (a tool whose output is read), else to
  // `log_file` with stderr.
  Result<pid_t> Start(const std::vector<std::string>& argv, const std::filesystem::path& cwd,
                      const std::filesystem::path& log_file, ExitCallback on_exit,
                      const std::filesystem::path& stdout_file = {});
  // Signals etcd's process group. No-op when nothing runs.
  void Signal(int sig);
  // SIGKILL to the group, then reap, blocking; the exit callback does not run.
  void KillNow();
  std::optional<pid_t> pid() const { return pid_; }

 private:
  void WaitForSignal();
  void Sweep();
  void Reap();

  boost::asio::io_context& io_;
  boost::asio::signal_set sigchld_;
  boost::asio::steady_timer sweep_;
  std::optional<pid_t> pid_;
  ExitCallback on_exit_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace etcd_mesos::executor::shell
