// A child process for tests: started with an argv, its output sent to a log file, stopped with
// SIGTERM then SIGKILL when the object dies, so no test leaves a server behind.
//
// Threading: not shared; owned by one test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace etcd_mesos::test {

class ChildProcess {
 public:
  // Starts `argv` (argv[0] searched in PATH) with stdout+stderr appended to `log_file`.
  // `env` entries are added to the inherited environment. The child dies with the test process.
  ChildProcess(std::vector<std::string> argv, std::filesystem::path log_file,
               std::map<std::string, std::string> env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  // SIGTERM, wait up to `grace`, then SIGKILL; returns the wait status.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  void Kill(int signal);  // send a signal; does not wait
  int Wait();             // wait for exit; returns the wait status
  std::string LogTail(size_t max_bytes = 4000) const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  std::filesystem::path log_file_;
};

// Writes `dir`/etcd-mesos-executor, a two-line script that execs `executor`, and returns its
// path. Given as --executor-bin, it spares every agent fetching the sanitizer build's large
// binary; what runs is still the real executor.
std::filesystem::path WriteExecutorWrapper(const std::filesystem::path& dir,
                                           const std::string& executor);

// Polls `condition` every 50 ms until it is true or `timeout` passes; returns its last value.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

}  // namespace etcd_mesos::test
