// etcd-mesos-executor: the Mesos executor that supervises one etcd member on an agent. Mesos
// starts it in the task's sandbox with the MESOS_* environment; everything about the member comes
// from TaskInfo.data (src/executor/task_config.h). Flags and wiring only; see
// src/executor/shell/executor.h and src/executor/core/supervisor.h.
#include <unistd.h>

#include <iostream>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>

#include "common/logging.h"
#include "executor/shell/executor.h"
#include "mesos/executor_client.h"

int main(int argc, char** argv) {
  using namespace etcd_mesos;  // NOLINT: main() wiring

  CLI::App app{
      "etcd-mesos-executor: supervises one etcd member for the etcd-mesos framework.\n\n"
      "Started by a Mesos agent (it reads MESOS_FRAMEWORK_ID, MESOS_EXECUTOR_ID, MESOS_DIRECTORY,\n"
      "MESOS_SLAVE_PID or MESOS_AGENT_ENDPOINT, MESOS_CHECKPOINT, ...), it takes the member's\n"
      "configuration from the JSON in TaskInfo.data, starts etcd in the sandbox (data in\n"
      "<sandbox>/data, log in <sandbox>/etcd.log), reports TASK_STARTING, then TASK_RUNNING once\n"
      "etcd answers, with health and member facts; restarts etcd in place when it dies; fails the\n"
      "task on a crash loop; stops etcd with SIGTERM then SIGKILL on KILL/SHUTDOWN; and serves\n"
      "GET /status and the token-protected POST /reseed on <agent ip>:<reseed port>."};
  std::string etcd_binary;
  std::string log_level = "info";
  app.add_option("--etcd-binary", etcd_binary,
                 "etcd program used when the task names none (default: ./etcd in the sandbox if "
                 "Mesos fetched it, else etcd on PATH)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (auto s = SetUpLogging("etcd-mesos-executor", log_level); !s.ok()) {
    std::cerr << "etcd-mesos-executor: --log-level: " << s.error().message << "\n";
    return 2;
  }
  auto env = mesos_client::ReadExecutorEnvironmentFromProcess();
  if (!env.ok()) {
    std::cerr << "etcd-mesos-executor: " << env.error().ToString()
              << "\n(this program is started by a Mesos agent; see --help)\n";
    return 2;
  }
  boost::asio::io_context io;
  executor::shell::ExecutorOptions options;
  options.etcd_binary = etcd_binary;
  int code = 1;
  {
    executor::shell::Executor executor(io, *env, options);
    executor.Start();
    io.run();
    code = executor.exit_code().value_or(1);
  }
  return code;
}
