// Child processes of etcd-mesos-local: executors, command tasks and archive extractors, started
// the way a Mesos agent's POSIX launcher starts them, and reaped without stealing anyone else's.
//
// SpawnProcess forks and execs one program with exactly the given environment (nothing is
// inherited), in a given working directory, with stdout/stderr appended to files, in a new session
// (so its process group id is its pid and the whole group can be signalled at once), with every
// inherited descriptor beyond 0-2 closed (an inherited listening socket would keep an agent's port
// busy after the agent stopped), and with PR_SET_PDEATHSIG(SIGKILL) so that nothing outlives
// etcd-mesos-local. Note: Linux delivers the death signal when the *thread* that forked exits, so
// spawn only from the long-lived thread that runs the io_context.
//
// ChildReaper waits for the processes it was asked to watch: on SIGCHLD (an asio signal_set) it
// calls waitpid(pid, WNOHANG) for each watched pid only, never waitpid(-1), because the same
// process runs children of its own elsewhere (tests, the scheduler).
//
// Threading: a ChildReaper lives on one io_context thread; exit callbacks run there, posted, never
// inline. SpawnProcess blocks only for fork+exec (it learns about exec failures through a
// close-on-exec pipe).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/result.h"
#include "common/wait_status.h"

namespace etcd_mesos::local {

struct ProcessSpec {
  // The program: a path (relative paths resolve against `cwd`) or a bare name searched in the
  // PATH of `env` (the child's PATH, not ours).
  std::string program;
  std::vector<std::string> argv;  // the complete argv, argv[0] included; empty means {program}
  std::map<std::string, std::string> env;  // the complete environment
  std::filesystem::path cwd;
  std::filesystem::path stdout_path;  // appended; empty means /dev/null
  std::filesystem::path stderr_path;  // appended; empty means /dev/null
};

// Starts the process. The error names the program and why it could not be started (missing file,
// not executable, bad working directory). The new process leads its own process group.
Result<pid_t> SpawnProcess(const ProcessSpec& spec);

// Signals a process group (kill(-pgid, sig)); ESRCH (already gone) is not an error.
void SignalGroup(pid_t pgid, int sig);

// True while `pid` exists (kill(pid, 0)), zombies included.
bool ProcessExists(pid_t pid);

class ChildReaper {
 public:
  using ExitCallback = std::function<void(int wait_status)>;

  explicit ChildReaper(boost::asio::io_context& io);
  // Kills what is still watched: SIGTERM to each group, up to `grace` for them to go, then SIGKILL;
  // reaps them. No callback runs.
  ~ChildReaper();
  ChildReaper(const ChildReaper&) = delete;
  ChildReaper& operator=(const ChildReaper&) = delete;

  // Reaps `pid` when it exits and then calls `on_exit` (posted) with its wait status.
  void Watch(pid_t pid, ExitCallback on_exit);
  // Forgets `pid`; its callback will not run.
  void Forget(pid_t pid);
  bool Watching(pid_t pid) const { return watched_.count(pid) != 0; }
  std::vector<pid_t> Pids() const;

  // SIGKILLs every watched process group and reaps the leaders, blocking until they are gone.
  // Callbacks do not run; the caller treats the processes as lost.
  void KillAllNow();
  // SIGTERM to every watched group, up to `grace`, then SIGKILL; blocking, no callbacks.
  void TerminateAllNow(std::chrono::milliseconds grace);

  // Polls the watched pids now (SIGCHLD does this by itself; exposed for tests and shutdown).
  void ReapNow();

 private:
  void WaitForSignal();

  boost::asio::io_context& io_;
  boost::asio::signal_set sigchld_;
  boost::asio::steady_timer sweep_;
  std::map<pid_t, ExitCallback> watched_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace etcd_mesos::local
