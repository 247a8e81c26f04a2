// test_executor: a small custom Mesos executor for the tests of etcd-mesos-local, built on our
// ExecutorClient (src/mesos/executor_client.h). It reads the MESOS_* environment, subscribes to
// its agent and runs "tasks" that are nothing but instructions in TaskInfo.data.
//
// Default behaviour:
//   - LAUNCH: sends TASK_RUNNING for the task.
//   - KILL: sends TASK_KILLED for the task; once no task is left running and the agent has
//     acknowledged every update, exits 0.
//   - SHUTDOWN: exits 0 at once.
//   - MESSAGE from the framework: answers with a framework message "echo:<data>".
//   - Losing the agent for good (ExecutorClient on_lost): exits 2.
//   - SIGTERM: dies of it (default disposition).
// Exits use _exit: nothing to flush, and no leak check of what main() still holds.
//
// TaskInfo.data: instructions separated by ';', applied in this order:
//   dump-env       write the environment (sorted NAME=value lines) to ./executor.env and the
//                  argv (one per line) to ./executor.argv, relative to the working directory
//   no-running     do not send TASK_RUNNING
//   delay:MS       send TASK_RUNNING (and what follows it) MS milliseconds after LAUNCH
//   message:TEXT   after TASK_RUNNING, send the framework message TEXT
//   finish         right after TASK_RUNNING, send TASK_FINISHED too (two updates in a row)
//   exit:N         once the agent acknowledged every update sent so far, exit with status N
//   ignore-kill    ignore SIGTERM, KILL and SHUTDOWN (only SIGKILL ends it)
//
// Environment (set through CommandInfo.environment):
//   TEST_EXECUTOR_CONTENT_TYPE=json   speak application/json instead of application/x-protobuf
//
// It logs what it does to stderr (the sandbox's `stderr` file).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "mesos/executor_client.h"

extern char** environ;

namespace {

using etcd_mesos::mesos_client::ExecutorClient;
using etcd_mesos::mesos_client::ReadExecutorEnvironmentFromProcess;

struct Instructions {
  bool dump_env = false;
  bool no_running = false;
  bool finish = false;
  bool ignore_kill = false;
  int delay_ms = 0;
  std::optional<int> exit_code;
  std::optional<std::string> message;
};

Instructions Parse(const std::string& data) {
  Instructions in;
  size_t start = 0;
  while (start <= data.size()) {
    size_t end = data.find(';', start);
    if (end == std::string::npos) end = data.size();
    std::string item = data.substr(start, end - start);
    start = end + 1;
    if (item == "dump-env") in.dump_env = true;
    if (item == "no-running") in.no_running = true;
    if (item == "finish") in.finish = true;
    if (item == "ignore-kill") in.ignore_kill = true;
    if (item.rfind("delay:", 0) == 0) in.delay_ms = std::atoi(item.c_str() + 6);
    if (item.rfind("exit:", 0) == 0) in.exit_code = std::atoi(item.c_str() + 5);
    if (item.rfind("message:", 0) == 0) in.message = item.substr(8);
    if (end == data.size()) break;
  }
  return in;
}

void DumpEnvironment(int argc, char** argv) {
  std::vector<std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) vars.emplace_back(*e);
  std::sort(vars.begin(), vars.end());
  std::ofstream env("executor.env");
  for (const auto& v : vars) env << v << "\n";
  std::ofstream args("executor.argv");
  for (int i = 0; i < argc; ++i) args << argv[i] << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  auto env = ReadExecutorEnvironmentFromProcess();
  if (!env.ok()) {
    std::cerr << "test_executor: " << env.error().ToString() << std::endl;
    return 1;
  }
  boost::asio::io_context io;
  ExecutorClient::Options options;
  const char* ct = std::getenv("TEST_EXECUTOR_CONTENT_TYPE");
  if (ct != nullptr && std::string(ct) == "json") {
    options.content_type = etcd_mesos::mesos_codec::ContentType::kJson;
  }
  std::set<std::string> running;  // task ids not yet ended
  bool ignore_kill = false;
  bool exit_when_acked = false;
  int exit_code = 0;
  std::unique_ptr<ExecutorClient> client;

  auto update = [&](const mesos::TaskID& task_id, mesos::TaskState state) {
    mesos::TaskStatus status;
    *status.mutable_task_id() = task_id;
    status.set_state(state);
    auto sent = client->SendUpdate(status);
    std::cerr << "test_executor: " << mesos::TaskState_Name(state) << " for " << task_id.value()
              << (sent.ok() ? "" : " refused: " + sent.error().ToString()) << std::endl;
  };
  auto maybe_exit = [&] {
    if (exit_when_acked && client->unacknowledged_updates().empty()) {
      std::cerr << "test_executor: exiting with " << exit_code << std::endl;
      ::_exit(exit_code);
    }
  };

  ExecutorClient::Callbacks callbacks;
  callbacks.on_subscribed = [&](const mesos::executor::Event::Subscribed& s) {
    std::cerr << "test_executor: subscribed to agent " << s.agent_info().id().value() << std::endl;
  };
  callbacks.on_launch = [&](const mesos::TaskInfo& task) {
    Instructions in = Parse(task.data());
    std::cerr << "test_executor: launch " << task.task_id().value() << " data '" << task.data()
              << "'" << std::endl;
    if (in.dump_env) DumpEnvironment(argc, argv);
    if (in.ignore_kill) {
      ignore_kill = true;
      ::signal(SIGTERM, SIG_IGN);
    }
    running.insert(task.task_id().value());
    auto proceed = [&, in, task] {
      if (!in.no_running) update(task.task_id(), mesos::TASK_RUNNING);
      if (in.message) client->SendMessage(*in.message);
      if (in.finish) {
        update(task.task_id(), mesos::TASK_FINISHED);
        running.erase(task.task_id().value());
      }
      if (in.exit_code) {
        exit_when_acked = true;
        exit_code = *in.exit_code;
        maybe_exit();
      }
    };
    if (in.delay_ms <= 0) return proceed();
    auto timer = std::make_shared<boost::asio::steady_timer>(io);
    timer->expires_after(std::chrono::milliseconds(in.delay_ms));
    timer->async_wait([timer, proceed](const boost::system::error_code& ec) {
      if (!ec) proceed();
    });
  };
  callbacks.on_kill = [&](const mesos::executor::Event::Kill& kill) {
    if (ignore_kill) {
      std::cerr << "test_executor: ignoring KILL of " << kill.task_id().value() << std::endl;
      return;
    }
    update(kill.task_id(), mesos::TASK_KILLED);
    running.erase(kill.task_id().value());
    if (running.empty()) {
      exit_when_acked = true;
      exit_code = 0;
    }
  };
  callbacks.on_acknowledged = [&](const mesos::executor::Event::Acknowledged&) { maybe_exit(); };
  callbacks.on_message = [&](const std::string& data) { client->SendMessage("echo:" + data); };
  callbacks.on_shutdown = [&] {
    if (ignore_kill) {
      std::cerr << "test_executor: ignoring SHUTDOWN" << std::endl;
      return;
    }
    std::cerr << "test_executor: shutdown" << std::endl;
    ::_exit(0);
  };
  callbacks.on_lost = [&](const etcd_mesos::Error& e) {
    std::cerr << "test_executor: lost the agent: " << e.ToString() << std::endl;
    ::_exit(2);
  };
  client = std::make_unique<ExecutorClient>(io, *env, options, callbacks);
  client->Start();
  io.run();
  return 0;
}
