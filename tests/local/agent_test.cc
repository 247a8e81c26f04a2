// The agent of etcd-mesos-local against a recording fake master behind a real Link. The test
// plays the master: it calls RunTask/KillTask/AcknowledgeUpdate on the agent and watches what
// comes back. Executors are real processes: test_executor (tests/local/test_executor.cc) fetched
// into the sandbox by URI, and shell commands run by the built-in command executor. The executor
// HTTP API is also driven by hand over real HTTP to check its status codes.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/encoding.h"
#include "local/agent.h"
#include "local/jwt.h"
#include "local/process.h"
#include "local/resources.h"
#include "mesos/codec.h"
#include "mesos/json_codec.h"
#include "mesos/recordio.h"
#include "net/http.h"
#include "testing/tempdir.h"

namespace etcd_mesos::local {
namespace {

namespace fs = std::filesystem;
using mesos::executor::Call;
using mesos::executor::Event;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

constexpr char kFramework[] = "F-0000";
constexpr char kAgentId[] = "M-S1";

class FakeMaster : public MasterApi {
 public:
  struct Update {
    mesos::TaskStatus status;
    mesos::TaskState latest;
    Clock::time_point at;
  };
  void StatusUpdate(const mesos::AgentID& agent_id, const mesos::FrameworkID& framework_id,
                    const mesos::TaskStatus& status, mesos::TaskState latest_state) override {
    EXPECT_EQ(agent_id.value(), kAgentId);
    EXPECT_EQ(framework_id.value(), kFramework);
    updates.push_back({status, latest_state, Clock::now()});
  }
  void ExecutorExited(const mesos::AgentID&, const mesos::FrameworkID&,
                      const mesos::ExecutorID& executor_id, int wait_status) override {
    exited.emplace_back(executor_id.value(), wait_status);
  }
  void ExecutorMessage(const mesos::AgentID&, const mesos::FrameworkID&,
                       const mesos::ExecutorID& executor_id, const std::string& data) override {
    messages.emplace_back(executor_id.value(), data);
  }
  void AgentPing(const mesos::AgentID&) override { ++pings; }
  void ReregisterAgent(const mesos::AgentInfo& agent, const std::vector<mesos::FrameworkInfo>&,
                       const std::vector<mesos::Task>& tasks,
                       const std::vector<mesos::ExecutorInfo>& executors) override {
    reregistrations.push_back({agent, tasks, executors});
  }

  // Updates of one task, in the order they arrived (resends included).
  std::vector<Update> Of(const std::string& task_id) const {
    std::vector<Update> out;
    for (const auto& u : updates) {
      if (u.status.task_id().value() == task_id) out.push_back(u);
    }
    return out;
  }

  struct Reregistration {
    mesos::AgentInfo agent;
    std::vector<mesos::Task> tasks;
    std::vector<mesos::ExecutorInfo> executors;
  };
  std::vector<Update> updates;
  std::vector<std::pair<std::string, int>> exited;
  std::vector<std::pair<std::string, std::string>> messages;
  std::vector<Reregistration> reregistrations;
  int pings = 0;
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::map<std::string, std::string> ReadEnvFile(const fs::path& path) {
  std::map<std::string, std::string> env;
  std::istringstream in(ReadFile(path));
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

// Live (non-zombie) processes in process group `pgid`, from /proc.
int LiveProcessesInGroup(pid_t pgid) {
  int n = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = ReadFile(entry.path() / "stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 2));
    char state;
    int ppid, pgrp;
    fields >> state >> ppid >> pgrp;
    if (pgrp == pgid && state != 'Z') ++n;
  }
  return n;
}

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("EM_AGENT_TEST_SECRET", "must-not-leak", 1);
    options_.index = 1;
    options_.ip = "127.0.0.2";
    options_.work_dir = dir_.path() / "agent";
    options_.master_pid = "master@127.0.0.1:5050";
    options_.resources = *ParseResources("cpus:4;mem:4096;disk:4096;ports:[31000-31999]");
    options_.ping_interval = milliseconds(100);
  }

  void TearDown() override {
    agent_.reset();
    link_.Disconnect();
  }

  void StartAgent() {
    mesos::AgentID id;
    id.set_value(kAgentId);
    agent_ = std::make_unique<Agent>(io_, options_, id, link_);
    link_.Connect(agent_.get(), &master_);
    auto bound = agent_->Start();
    ASSERT_TRUE(bound.ok()) << bound.error();
  }

  // Runs the io_context until `done` holds or `timeout` passes.
  bool RunUntil(const std::function<bool()>& done, milliseconds timeout = milliseconds(20'000)) {
    auto deadline = Clock::now() + timeout;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      io_.run_for(milliseconds(10));
    }
    return true;
  }
  void RunFor(milliseconds d) {
    auto deadline = Clock::now() + d;
    while (Clock::now() < deadline) io_.run_for(milliseconds(10));
  }

  mesos::FrameworkInfo Framework(bool checkpoint = true) {
    mesos::FrameworkInfo fw;
    fw.mutable_id()->set_value(kFramework);
    fw.set_name("etcd-test");
    fw.set_user("nobody");
    fw.set_checkpoint(checkpoint);
    return fw;
  }
  mesos::FrameworkID FrameworkId() {
    mesos::FrameworkID id;
    id.set_value(kFramework);
    return id;
  }

  // A task for test_executor, fetched from its build path into the sandbox.
  mesos::TaskInfo CustomTask(const std::string& task_id, const std::string& data,
                             const std::string& executor_id = "exec-1") {
    mesos::TaskInfo task;
    task.set_name(task_id);
    task.mutable_task_id()->set_value(task_id);
    task.mutable_agent_id()->set_value(kAgentId);
    task.set_data(data);
    auto* executor = task.mutable_executor();
    executor->mutable_executor_id()->set_value(executor_id);
    executor->set_name("test executor");
    auto* command = executor->mutable_command();
    auto* uri = command->add_uris();
    uri->set_value(TEST_EXECUTOR_PATH);
    uri->set_executable(true);
    command->set_value("./test_executor");
    return task;
  }

  mesos::TaskInfo CommandTask(const std::string& task_id, const std::string& shell) {
    mesos::TaskInfo task;
    task.set_name(task_id);
    task.mutable_task_id()->set_value(task_id);
    task.mutable_agent_id()->set_value(kAgentId);
    task.mutable_command()->set_value(shell);
    return task;
  }

  mesos::TaskInfo SleepingExecutorTask(const std::string& task_id, const std::string& executor_id) {
    mesos::TaskInfo task;
    task.set_name(task_id);
    task.mutable_task_id()->set_value(task_id);
    task.mutable_agent_id()->set_value(kAgentId);
    auto* executor = task.mutable_executor();
    executor->mutable_executor_id()->set_value(executor_id);
    executor->mutable_command()->set_value("sleep 60");
    return task;
  }

  // Waits for the n-th (1-based) distinct update of a task, by uuid; returns it.
  std::optional<mesos::TaskStatus> WaitForUpdate(const std::string& task_id, size_t n,
                                                 milliseconds timeout = milliseconds(20'000)) {
    auto distinct = [&] {
      std::vector<mesos::TaskStatus> out;
      for (const auto& u : master_.Of(task_id)) {
        if (out.empty() || out.back().uuid() != u.status.uuid()) out.push_back(u.status);
      }
      return out;
    };
    if (!RunUntil([&] { return distinct().size() >= n; }, timeout)) return std::nullopt;
    return distinct()[n - 1];
  }

  void Ack(const mesos::TaskStatus& status) {
    agent_->AcknowledgeUpdate(FrameworkId(), status.task_id(), status.uuid());
  }

  fs::path SandboxOf(const std::string& executor_id) {
    return agent_->SandboxOf(kFramework, executor_id);
  }

  net::HttpResponse Http(net::Verb verb, const std::string& target, std::string body,
                         net::Headers headers) {
    net::HttpRequest request;
    request.method = verb;
    request.endpoint = agent_->address();
    request.target = target;
    request.body = std::move(body);
    request.headers = std::move(headers);
    std::optional<Result<net::HttpResponse>> result;
    net::HttpFetch(io_, std::move(request), [&](Result<net::HttpResponse> r) { result = r; });
    EXPECT_TRUE(RunUntil([&] { return result.has_value(); }));
    if (!result || !result->ok()) {
      ADD_FAILURE() << "HTTP " << target << " failed";
      return {};
    }
    return result->value();
  }

  net::HttpResponse PostCall(const Call& call, const std::string& content_type = "application/json",
                             const std::string& target = "/slave(1)/api/v1/executor") {
    return Http(net::Verb::post, target, mesos_codec::MessageToJsonString(call),
                {{"Content-Type", content_type}, {"Accept", "application/json"}});
  }

  // A call with `authorization` as its Authorization header (none when empty).
  net::HttpResponse PostWithAuthorization(const Call& call, const std::string& authorization) {
    net::Headers headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    if (!authorization.empty()) headers.push_back({"Authorization", authorization});
    return Http(net::Verb::post, "/slave(1)/api/v1/executor",
                mesos_codec::MessageToJsonString(call), std::move(headers));
  }

  // An executor that is a shell: it writes the token the agent gave it to ./token, then sleeps,
  // so that the test can speak for it (or against it) by hand.
  mesos::TaskInfo TokenWritingExecutorTask(const std::string& task_id,
                                           const std::string& executor_id) {
    mesos::TaskInfo task = SleepingExecutorTask(task_id, executor_id);
    task.mutable_executor()->mutable_command()->set_value(
        "printf %s \"$MESOS_EXECUTOR_AUTHENTICATION_TOKEN\" > token.tmp && mv token.tmp token && "
        "exec sleep 60");
    return task;
  }

  // The token the executor wrote, once it has written it ("" if it never does).
  std::string TokenOf(const std::string& executor_id) {
    std::string token;
    RunUntil([&] {
      if (SandboxOf(executor_id).empty()) return false;
      token = ReadFile(SandboxOf(executor_id) / "token");
      return !token.empty();
    });
    return token;
  }

  static Call CallOf(const std::string& executor_id, Call::Type type) {
    Call call;
    call.mutable_framework_id()->set_value(kFramework);
    call.mutable_executor_id()->set_value(executor_id);
    call.set_type(type);
    if (type == Call::SUBSCRIBE) call.mutable_subscribe();
    return call;
  }

  test::TempDir dir_{"em-agent"};
  boost::asio::io_context io_;
  Link link_{io_};
  FakeMaster master_;
  AgentOptions options_;
  std::unique_ptr<Agent> agent_;
};

// ---- Custom executors
// -----------------------------------------------------------------------------

TEST_F(AgentTest, CustomExecutorGetsSandboxEnvironmentArgvAndReportsRunning) {
  StartAgent();
  auto task = CustomTask("t1", "dump-env;message:hello-master");
  auto* command = task.mutable_executor()->mutable_command();
  command->set_shell(false);
  command->add_arguments("argv-zero");
  command->add_arguments("--flag");
  auto* var = command->mutable_environment()->add_variables();
  var->set_name("FROM_FRAMEWORK");
  var->set_value("yes");
  agent_->RunTask(Framework(/*checkpoint=*/true), task);

  auto running = WaitForUpdate("t1", 1);
  ASSERT_TRUE(running) << "no update reached the master; sandbox stderr:\n"
                       << ReadFile(SandboxOf("exec-1") / "stderr");
  EXPECT_EQ(running->state(), mesos::TASK_RUNNING);
  EXPECT_EQ(running->source(), mesos::TaskStatus::SOURCE_EXECUTOR);
  EXPECT_TRUE(IsValidUuidBytes(running->uuid()));
  EXPECT_EQ(running->agent_id().value(), kAgentId);
  EXPECT_EQ(running->executor_id().value(), "exec-1");

  // Sandbox layout: <work_dir>/slaves/<agent>/frameworks/<fw>/executors/<exec>/runs/<container>.
  fs::path sandbox = SandboxOf("exec-1");
  fs::path runs = options_.work_dir / "slaves" / kAgentId / "frameworks" / kFramework /
                  "executors" / "exec-1" / "runs";
  EXPECT_EQ(sandbox.parent_path(), runs);
  EXPECT_EQ(fs::canonical(runs / "latest"), fs::canonical(sandbox));
  EXPECT_TRUE(fs::exists(sandbox / "stdout"));
  EXPECT_TRUE(fs::exists(sandbox / "stderr"));
  struct stat st {};
  ASSERT_EQ(::stat((sandbox / "test_executor").c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & S_IXUSR);

  // The executor wrote these relative to its working directory: cwd is the sandbox.
  auto env = ReadEnvFile(sandbox / "executor.env");
  EXPECT_EQ(env["PATH"], "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  EXPECT_EQ(env["MESOS_FRAMEWORK_ID"], kFramework);
  EXPECT_EQ(env["MESOS_EXECUTOR_ID"], "exec-1");
  EXPECT_EQ(env["MESOS_SLAVE_ID"], kAgentId);
  EXPECT_EQ(env["MESOS_SLAVE_PID"], agent_->pid());
  EXPECT_EQ(agent_->pid(), "slave(1)@127.0.0.2:" + std::to_string(agent_->address().port));
  EXPECT_EQ(env["MESOS_AGENT_ENDPOINT"], agent_->address().ToString());
  EXPECT_EQ(env["MESOS_DIRECTORY"], sandbox.string());
  EXPECT_EQ(env["MESOS_SANDBOX"], sandbox.string());
  EXPECT_EQ(env["MESOS_CHECKPOINT"], "1");
  EXPECT_EQ(env["MESOS_HTTP_COMMAND_EXECUTOR"], "0");
  EXPECT_EQ(env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"], "5secs");
  EXPECT_EQ(env["MESOS_RECOVERY_TIMEOUT"], "15mins");
  EXPECT_EQ(env["MESOS_SUBSCRIPTION_BACKOFF_MAX"], "2secs");
  EXPECT_EQ(env["FROM_FRAMEWORK"], "yes");
  EXPECT_EQ(env.count("EM_AGENT_TEST_SECRET"), 0u) << "the agent's environment leaked";
  EXPECT_EQ(env.count("HOME"), 0u) << "the agent's environment leaked";
  EXPECT_EQ(ReadFile(sandbox / "executor.argv"), "argv-zero\n--flag\n");

  // The executor's message reaches the master; the master's reaches the executor (echoed).
  ASSERT_TRUE(RunUntil([&] { return !master_.messages.empty(); }));
  EXPECT_EQ(master_.messages[0], (std::pair<std::string, std::string>{"exec-1", "hello-master"}));
  mesos::ExecutorID eid;
  eid.set_value("exec-1");
  agent_->FrameworkMessage(FrameworkId(), eid, "ping");
  ASSERT_TRUE(RunUntil([&] { return master_.messages.size() >= 2; }));
  EXPECT_EQ(master_.messages[1].second, "echo:ping");

  // /slave(1)/state shows the executor, its sandbox and the running task.
  auto state = Http(net::Verb::get, "/slave(1)/state", "", {});
  ASSERT_EQ(state.status, 200u);
  auto json = nlohmann::json::parse(state.body);
  EXPECT_EQ(json["id"], kAgentId);
  EXPECT_EQ(json["pid"], agent_->pid());
  EXPECT_EQ(json["hostname"], "127.0.0.2");
  EXPECT_EQ(json["master_hostname"], "127.0.0.1");
  EXPECT_EQ(json["resources"]["ports"], "[31000-31999]");
  EXPECT_EQ(json["resources"]["cpus"], 4.0);
  EXPECT_EQ(json["resources"]["gpus"], 0.0);
  ASSERT_EQ(json["frameworks"].size(), 1u);
  auto executor = json["frameworks"][0]["executors"][0];
  EXPECT_EQ(executor["id"], "exec-1");
  EXPECT_EQ(executor["directory"], sandbox.string());
  ASSERT_EQ(executor["tasks"].size(), 1u);
  EXPECT_EQ(executor["tasks"][0]["state"], "TASK_RUNNING");
  EXPECT_EQ(Http(net::Verb::get, "/state", "", {}).status, 200u);
  EXPECT_EQ(Http(net::Verb::get, "/health", "", {}).status, 200u);
  EXPECT_GT(master_.pings, 0);
}

TEST_F(AgentTest, UnacknowledgedUpdateIsResentWithTheSameUuidAndTheNextOneWaits) {
  options_.status_update_retry_min = milliseconds(200);
  options_.status_update_retry_max = milliseconds(800);
  StartAgent();
  agent_->RunTask(Framework(), CustomTask("t1", "finish"));
  auto running = WaitForUpdate("t1", 1);
  ASSERT_TRUE(running);
  ASSERT_EQ(running->state(), mesos::TASK_RUNNING);

  // Not acknowledged: resent with the same uuid, backing off; FINISHED (already at the agent, as
  // latest_state shows) is not sent before RUNNING is acknowledged.
  ASSERT_TRUE(RunUntil([&] { return master_.Of("t1").size() >= 3; }));
  auto sent = master_.Of("t1");
  for (const auto& u : sent) {
    EXPECT_EQ(u.status.uuid(), running->uuid());
    EXPECT_EQ(u.status.state(), mesos::TASK_RUNNING);
  }
  EXPECT_GE(sent[1].at - sent[0].at, milliseconds(190));
  EXPECT_GE(sent[2].at - sent[1].at, milliseconds(390)) << "retries must back off";
  EXPECT_TRUE(RunUntil([&] { return master_.Of("t1").back().latest == mesos::TASK_FINISHED; }));

  Ack(*running);
  auto finished = WaitForUpdate("t1", 2, milliseconds(5000));
  ASSERT_TRUE(finished);
  EXPECT_EQ(finished->state(), mesos::TASK_FINISHED);
  EXPECT_NE(finished->uuid(), running->uuid());
  Ack(*finished);
  size_t count = master_.Of("t1").size();
  RunFor(milliseconds(1000));
  EXPECT_EQ(master_.Of("t1").size(), count) << "an acknowledged update was sent again";

  auto state = agent_->StateJson();
  auto executors = state["frameworks"][0]["executors"];
  auto completed = state["frameworks"][0]["completed_executors"];
  // The executor may still run (it has no reason to exit); either way the task is complete.
  auto all = executors;
  for (auto& e : completed) all.push_back(e);
  bool found = false;
  for (auto& e : all) {
    for (auto& t : e["completed_tasks"]) {
      if (t["id"] == "t1") {
        found = true;
        EXPECT_EQ(t["state"], "TASK_FINISHED");
      }
    }
  }
  EXPECT_TRUE(found) << state.dump(2);
}

TEST_F(AgentTest, FrameworkResubscriptionResendsPendingUpdatesAtOnce) {
  options_.status_update_retry_min = milliseconds(30'000);
  StartAgent();
  agent_->RunTask(Framework(), CustomTask("t1", ""));
  ASSERT_TRUE(WaitForUpdate("t1", 1));
  RunFor(milliseconds(300));
  ASSERT_EQ(master_.Of("t1").size(), 1u);
  agent_->UpdateFramework(Framework());
  ASSERT_TRUE(RunUntil([&] { return master_.Of("t1").size() == 2; }, milliseconds(5000)));
  EXPECT_EQ(master_.Of("t1")[1].status.uuid(), master_.Of("t1")[0].status.uuid());
}

TEST_F(AgentTest, KillReachesTheExecutorWhichReportsKilled) {
  StartAgent();
  agent_->RunTask(Framework(), CustomTask("t1", ""));
  auto running = WaitForUpdate("t1", 1);
  ASSERT_TRUE(running);
  Ack(*running);
  agent_->KillTask(FrameworkId(), running->task_id(), std::nullopt);
  auto killed = WaitForUpdate("t1", 2);
  ASSERT_TRUE(killed);
  EXPECT_EQ(killed->state(), mesos::TASK_KILLED);
  EXPECT_EQ(killed->source(), mesos::TaskStatus::SOURCE_EXECUTOR);
  Ack(*killed);
  // It exits once its update is acknowledged by the agent; nothing is left to fail.
  ASSERT_TRUE(RunUntil([&] { return !master_.exited.empty(); }));
  EXPECT_EQ(master_.exited[0].first, "exec-1");
  EXPECT_TRUE(WIFEXITED(master_.exited[0].second));
  EXPECT_EQ(WEXITSTATUS(master_.exited[0].second), 0);
  RunFor(milliseconds(300));
  EXPECT_EQ(master_.Of("t1").back().status.state(), mesos::TASK_KILLED);
}

TEST_F(AgentTest, ExecutorExitFailsItsTasksWithAReliableAgentUpdate) {
  StartAgent();
  agent_->RunTask(Framework(), CustomTask("t1", "exit:3"));
  auto running = WaitForUpdate("t1", 1);
  ASSERT_TRUE(running);
  ASSERT_TRUE(RunUntil([&] { return !master_.exited.empty(); }));
  EXPECT_EQ(master_.exited[0].first, "exec-1");
  ASSERT_TRUE(WIFEXITED(master_.exited[0].second));
  EXPECT_EQ(WEXITSTATUS(master_.exited[0].second), 3);
  Ack(*running);
  auto failed = WaitForUpdate("t1", 2);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->state(), mesos::TASK_FAILED);
  EXPECT_EQ(failed->source(), mesos::TaskStatus::SOURCE_AGENT);
  EXPECT_EQ(failed->reason(), mesos::TaskStatus::REASON_EXECUTOR_TERMINATED);
  EXPECT_TRUE(IsValidUuidBytes(failed->uuid()));
  EXPECT_THAT(failed->message(), HasSubstr("3"));
}

TEST_F(AgentTest, KillExecutorFaultFailsTasks) {
  StartAgent();
  agent_->RunTask(Framework(), CustomTask("t1", ""));
  auto running = WaitForUpdate("t1", 1);
  ASSERT_TRUE(running);
  Ack(*running);
  EXPECT_EQ(agent_->KillExecutor("nope").error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(agent_->KillExecutor("exec-1").ok());
  auto failed = WaitForUpdate("t1", 2);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->state(), mesos::TASK_FAILED);
  EXPECT_EQ(failed->reason(), mesos::TaskStatus::REASON_EXECUTOR_TERMINATED);
  ASSERT_TRUE(RunUntil([&] { return !master_.exited.empty(); }));
  EXPECT_TRUE(WIFSIGNALED(master_.exited[0].second));
  EXPECT_EQ(WTERMSIG(master_.exited[0].second), SIGKILL);
}

TEST_F(AgentTest, RegistrationTimeoutKillsTheExecutorAndFailsItsTask) {
  options_.executor_registration_timeout = milliseconds(500);
  StartAgent();
  agent_->RunTask(Framework(), SleepingExecutorTask("t1", "sleeper"));
  ASSERT_TRUE(RunUntil([&] { return !agent_->ProcessIds().empty(); }));
  int pid = agent_->ProcessIds()[0];
  auto failed = WaitForUpdate("t1", 1);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->state(), mesos::TASK_FAILED);
  EXPECT_EQ(failed->source(), mesos::TaskStatus::SOURCE_AGENT);
  EXPECT_EQ(failed->reason(), mesos::TaskStatus::REASON_EXECUTOR_REGISTRATION_TIMEOUT);
  ASSERT_TRUE(RunUntil([&] { return !master_.exited.empty(); }));
  EXPECT_FALSE(ProcessExists(pid));
  EXPECT_EQ(LiveProcessesInGroup(pid), 0);
}

TEST_F(AgentTest, KillOfAQueuedTaskIsAnsweredByTheAgent) {
  StartAgent();
  agent_->RunTask(Framework(), SleepingExecutorTask("t1", "sleeper"));
  ASSERT_TRUE(RunUntil([&] { return !agent_->ProcessIds().empty(); }));
  int pid = agent_->ProcessIds()[0];
  agent_->KillTask(FrameworkId(), CustomTask("t1", "").task_id(), std::nullopt);
  auto killed = WaitForUpdate("t1", 1);
  ASSERT_TRUE(killed);
  EXPECT_EQ(killed->state(), mesos::TASK_KILLED);
  EXPECT_EQ(killed->source(), mesos::TaskStatus::SOURCE_AGENT);
  EXPECT_EQ(killed->reason(), mesos::TaskStatus::REASON_TASK_KILLED_DURING_LAUNCH);
  // The executor had nothing left to run: it is destroyed rather than left idle.
  ASSERT_TRUE(RunUntil([&] { return !ProcessExists(pid); }));
}

TEST_F(AgentTest, ShutdownEscalatesToSigkillForAnExecutorThatIgnoresIt) {
  options_.executor_shutdown_grace_period = milliseconds(300);
  StartAgent();
  auto task = CustomTask("t1", "ignore-kill");
  // Exec'd directly (no shell in between), so that the process that ignores SIGTERM is the one
  // the agent watches.
  task.mutable_executor()->mutable_command()->set_shell(false);
  task.mutable_executor()->mutable_command()->add_arguments("test_executor");
  agent_->RunTask(Framework(), task);
  auto running = WaitForUpdate("t1", 1);
  ASSERT_TRUE(running);
  Ack(*running);
  mesos::ExecutorID eid;
  eid.set_value("exec-1");
  auto start = Clock::now();
  agent_->ShutdownExecutor(FrameworkId(), eid);
  ASSERT_TRUE(RunUntil([&] { return !master_.exited.empty(); }));
  EXPECT_GE(Clock::now() - start, milliseconds(300));
  EXPECT_TRUE(WIFSIGNALED(master_.exited[0].second));
  EXPECT_EQ(WTERMSIG(master_.exited[0].second), SIGKILL) << "SIGTERM was ignored, SIGKILL is not";
  auto failed = WaitForUpdate("t1", 2);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->state(), mesos::TASK_FAILED);
}

TEST_F(AgentTest, FetchFailureFailsTheTask) {
  StartAgent();
  auto task = CustomTask("t1", "");
  task.mutable_executor()->mutable_command()->mutable_uris(0)->set_value("/nonexistent/executor");
  agent_->RunTask(Framework(), task);
  auto failed = WaitForUpdate("t1", 1);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->state(), mesos::TASK_FAILED);
  EXPECT_EQ(failed->reason(), mesos::TaskStatus::REASON_CONTAINER_LAUNCH_FAILED);
  EXPECT_THAT(failed->message(), HasSubstr("/nonexistent/executor"));
}

TEST_F(AgentTest, TarballIsExtractedIntoTheSandbox) {
  fs::path bundle_dir = dir_.path() / "bundle";
  fs::create_directories(bundle_dir);
  fs::copy_file(TEST_EXECUTOR_PATH, bundle_dir / "test_executor");
  std::string tar = "tar -czf " + (dir_.path() / "executor.tar.gz").string() + " -C " +
                    bundle_dir.string() + " test_executor";
  ASSERT_EQ(std::system(tar.c_str()), 0);
  StartAgent();
  auto task = CustomTask("t1", "");
  auto* uri = task.mutable_executor()->mutable_command()->mutable_uris(0);
  uri->set_value("file://" + (dir_.path() / "executor.tar.gz").string());
  uri->set_executable(false);
  agent_->RunTask(Framework(), task);
  auto running = WaitForUpdate("t1", 1);
  ASSERT_TRUE(running) << ReadFile(SandboxOf("exec-1") / "stderr");
  EXPECT_EQ(running->state(), mesos::TASK_RUNNING);
  EXPECT_TRUE(fs::exists(SandboxOf("exec-1") / "executor.tar.gz"));
}

// A URI fetched with cache: true is kept by the agent and later fetches of the same URI come
// from there (the scheduler versions its artifact URLs, so a cached URI never changes); one
// without cache is fetched fresh every time.
TEST_F(AgentTest, CachedUrisAreFetchedOnceAndUncachedOnesEveryTime) {
  fs::path source = dir_.path() / "artifact.txt";
  std::ofstream(source) << "version 1";
  StartAgent();
  auto launch = [&](const std::string& task_id, const std::string& executor_id, bool cache) {
    auto task = CustomTask(task_id, "", executor_id);
    auto* uri = task.mutable_executor()->mutable_command()->add_uris();
    uri->set_value("file://" + source.string());
    uri->set_cache(cache);
    agent_->RunTask(Framework(), task);
    auto running = WaitForUpdate(task_id, 1);
    EXPECT_TRUE(running && running->state() == mesos::TASK_RUNNING);
    return ReadFile(SandboxOf(executor_id) / "artifact.txt");
  };
  EXPECT_EQ(launch("t1", "exec-1", /*cache=*/true), "version 1");
  std::ofstream(source, std::ios::trunc) << "version 2";
  EXPECT_EQ(launch("t2", "exec-2", /*cache=*/true), "version 1") << "not from the cache";
  EXPECT_EQ(launch("t3", "exec-3", /*cache=*/false), "version 2") << "an uncached URI was cached";
}

// ---- Command tasks ------------------------------------------------------------------------------

TEST_F(AgentTest, CommandTaskRunsAndFinishes) {
  StartAgent();
  agent_->RunTask(Framework(false), CommandTask("echo", "echo hi"));
  std::vector<mesos::TaskState> states;
  for (size_t n = 1; n <= 3; ++n) {
    auto u = WaitForUpdate("echo", n);
    ASSERT_TRUE(u) << "update " << n;
    EXPECT_EQ(u->source(), mesos::TaskStatus::SOURCE_EXECUTOR);
    EXPECT_TRUE(IsValidUuidBytes(u->uuid()));
    states.push_back(u->state());
    // Each update goes out only once the previous one is acknowledged.
    RunFor(milliseconds(100));
    EXPECT_EQ(WaitForUpdate("echo", n + 1, milliseconds(0)), std::nullopt);
    Ack(*u);
  }
  EXPECT_EQ(states, (std::vector<mesos::TaskState>{mesos::TASK_STARTING, mesos::TASK_RUNNING,
                                                   mesos::TASK_FINISHED}));
  EXPECT_EQ(ReadFile(SandboxOf("echo") / "stdout"), "hi\n");
  EXPECT_TRUE(master_.exited.empty()) << "command executors are not reported as executors";
}

TEST_F(AgentTest, CommandTaskFailureCarriesTheExitStatus) {
  StartAgent();
  agent_->RunTask(Framework(), CommandTask("bad", "exit 3"));
  std::optional<mesos::TaskStatus> last;
  for (size_t n = 1; n <= 3; ++n) {
    last = WaitForUpdate("bad", n);
    ASSERT_TRUE(last);
    Ack(*last);
  }
  EXPECT_EQ(last->state(), mesos::TASK_FAILED);
  EXPECT_THAT(last->message(), HasSubstr("status 3"));
}

TEST_F(AgentTest, CommandTaskKillEscalatesAfterTheGracePeriod) {
  StartAgent();
  agent_->RunTask(Framework(),
                  CommandTask("stubborn", "trap '' TERM; while true; do sleep 0.1; done"));
  for (size_t n = 1; n <= 2; ++n) {
    auto u = WaitForUpdate("stubborn", n);
    ASSERT_TRUE(u);
    Ack(*u);
  }
  mesos::KillPolicy policy;
  policy.mutable_grace_period()->set_nanoseconds(400'000'000);
  auto start = Clock::now();
  agent_->KillTask(FrameworkId(), CommandTask("stubborn", "").task_id(), policy);
  auto killed = WaitForUpdate("stubborn", 3);
  ASSERT_TRUE(killed);
  EXPECT_EQ(killed->state(), mesos::TASK_KILLED);
  EXPECT_GE(Clock::now() - start, milliseconds(400));
  EXPECT_TRUE(agent_->ProcessIds().empty());
}

// ---- Executor HTTP API
// ----------------------------------------------------------------------------

TEST_F(AgentTest, ExecutorApiRefusesBadCallsAndAcknowledgesGoodUpdates) {
  StartAgent();
  agent_->RunTask(Framework(), SleepingExecutorTask("t1", "manual"));
  ASSERT_TRUE(RunUntil([&] { return !agent_->ProcessIds().empty(); }));

  Call call;
  call.mutable_framework_id()->set_value(kFramework);
  call.mutable_executor_id()->set_value("manual");
  call.set_type(Call::UPDATE);
  auto* status = call.mutable_update()->mutable_status();
  status->mutable_task_id()->set_value("t1");
  status->set_state(mesos::TASK_RUNNING);
  status->set_source(mesos::TaskStatus::SOURCE_EXECUTOR);
  status->set_uuid(NewUuidBytes());

  EXPECT_EQ(PostCall(call, "application/json; charset=utf-8").status, 415u);
  EXPECT_EQ(Http(net::Verb::get, "/slave(1)/api/v1/executor", "", {}).status, 405u);
  auto malformed = Http(net::Verb::post, "/slave(1)/api/v1/executor", "{not json",
                        {{"Content-Type", "application/json"}});
  EXPECT_EQ(malformed.status, 400u);
  EXPECT_FALSE(malformed.body.empty());
  EXPECT_EQ(Http(net::Verb::post, "/slave(2)/api/v1/executor", "{}",
                 {{"Content-Type", "application/json"}})
                .status,
            404u);
  Call unknown_fw = call;
  unknown_fw.mutable_framework_id()->set_value("other");
  auto r = PostCall(unknown_fw);
  EXPECT_EQ(r.status, 400u);
  EXPECT_THAT(r.body, HasSubstr("Framework cannot be found"));
  Call unknown_exec = call;
  unknown_exec.mutable_executor_id()->set_value("other");
  unknown_exec.mutable_update()->mutable_status()->clear_executor_id();
  EXPECT_EQ(PostCall(unknown_exec).status, 400u);
  r = PostCall(call);
  EXPECT_EQ(r.status, 403u);
  EXPECT_THAT(r.body, HasSubstr("Executor is not subscribed"));

  // SUBSCRIBE by hand: 406 for an unacceptable Accept, then a JSON RecordIO stream.
  Call subscribe;
  subscribe.mutable_framework_id()->set_value(kFramework);
  subscribe.mutable_executor_id()->set_value("manual");
  subscribe.set_type(Call::SUBSCRIBE);
  subscribe.mutable_subscribe();
  EXPECT_EQ(Http(net::Verb::post, "/slave(1)/api/v1/executor",
                 mesos_codec::MessageToJsonString(subscribe),
                 {{"Content-Type", "application/json"}, {"Accept", "text/plain"}})
                .status,
            406u);
  net::HttpRequest request;
  request.method = net::Verb::post;
  request.endpoint = agent_->address();
  request.target = "/api/v1/executor";  // the stand-alone agent's path works too
  request.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
  request.body = mesos_codec::MessageToJsonString(subscribe);
  std::optional<net::HttpResponse> head;
  recordio::Decoder decoder;
  std::vector<Event> events;
  auto stream = net::OpenHttpStream(
      io_, request,
      {[&](const net::HttpResponse& h) { head = h; },
       [&](std::string_view data) {
         decoder.Feed(data);
         while (true) {
           auto record = decoder.Next();
           ASSERT_TRUE(record.ok());
           if (!record->has_value()) break;
           Event event;
           ASSERT_TRUE(mesos_codec::MessageFromJsonString(**record, &event).ok()) << **record;
           events.push_back(event);
         }
       },
       [&](Status) {}});
  ASSERT_TRUE(RunUntil([&] { return events.size() >= 2; }));
  EXPECT_EQ(head->status, 200u);
  EXPECT_EQ(head->Header("Content-Type"), "application/json");
  EXPECT_EQ(events[0].type(), Event::SUBSCRIBED);
  EXPECT_EQ(events[0].subscribed().framework_info().id().value(), kFramework);
  EXPECT_EQ(events[0].subscribed().agent_info().id().value(), kAgentId);
  EXPECT_EQ(events[0].subscribed().executor_info().executor_id().value(), "manual");
  EXPECT_FALSE(events[0].subscribed().container_id().value().empty());
  EXPECT_EQ(events[1].type(), Event::LAUNCH);
  EXPECT_EQ(events[1].launch().task().task_id().value(), "t1");

  auto expect_400 = [&](Call bad, const std::string& mentions) {
    auto resp = PostCall(bad);
    EXPECT_EQ(resp.status, 400u) << mentions;
    EXPECT_THAT(resp.body, HasSubstr(mentions));
  };
  Call bad = call;
  bad.mutable_update()->mutable_status()->set_uuid("not-a-uuid");
  expect_400(bad, "uuid");
  bad = call;
  bad.mutable_update()->mutable_status()->clear_uuid();
  expect_400(bad, "uuid");
  bad = call;
  bad.mutable_update()->mutable_status()->set_state(mesos::TASK_STAGING);
  expect_400(bad, "TASK_STAGING");
  bad = call;
  bad.mutable_update()->mutable_status()->set_source(mesos::TaskStatus::SOURCE_AGENT);
  expect_400(bad, "SOURCE_EXECUTOR");
  bad = call;
  bad.mutable_update()->mutable_status()->mutable_executor_id()->set_value("someone-else");
  expect_400(bad, "does not match");
  EXPECT_TRUE(master_.Of("t1").empty()) << "a refused update reached the master";

  // A good update: 202, ACKNOWLEDGED on the stream at once, and it reaches the master.
  EXPECT_EQ(PostCall(call).status, 202u);
  ASSERT_TRUE(RunUntil([&] { return events.size() >= 3; }));
  EXPECT_EQ(events[2].type(), Event::ACKNOWLEDGED);
  EXPECT_EQ(events[2].acknowledged().uuid(), status->uuid());
  auto got = WaitForUpdate("t1", 1);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->uuid(), status->uuid());
  // A duplicate is acknowledged again but not queued: once the master acknowledges the first,
  // nothing more is sent for the task.
  EXPECT_EQ(PostCall(call).status, 202u);
  ASSERT_TRUE(RunUntil([&] { return events.size() >= 4; }));
  EXPECT_EQ(events[3].type(), Event::ACKNOWLEDGED);
  Ack(*got);
  size_t count = master_.Of("t1").size();
  RunFor(milliseconds(500));
  EXPECT_EQ(master_.Of("t1").size(), count);
  stream->Close();
}

// ---- Executor authentication (Mesos's --jwt_secret_key, --authenticate_http_executors) ----------

constexpr char kKey[] = "agent-jwt-secret-key";
constexpr char kChallenge[] = "Bearer realm=\"mesos-agent-executor\"";

TEST_F(AgentTest, WithoutAKeyNoTokenIsIssuedAndNoneIsAsked) {
  StartAgent();
  agent_->RunTask(Framework(), TokenWritingExecutorTask("t1", "manual"));
  ASSERT_TRUE(RunUntil(
      [&] { return !SandboxOf("manual").empty() && fs::exists(SandboxOf("manual") / "token"); }));
  EXPECT_EQ(ReadFile(SandboxOf("manual") / "token"), "");
  auto state = nlohmann::json::parse(Http(net::Verb::get, "/slave(1)/state", "", {}).body);
  EXPECT_EQ(state["flags"]["authenticate_http_executors"], "false");
  EXPECT_EQ(PostWithAuthorization(CallOf("manual", Call::UPDATE), "").status, 400u)
      << "an unauthenticated call goes through to the handler (an UPDATE without 'update')";
}

TEST_F(AgentTest, ExecutorTokenCarriesFrameworkExecutorAndContainerSignedWithTheKey) {
  options_.jwt_secret_key = kKey;
  StartAgent();
  agent_->RunTask(Framework(), TokenWritingExecutorTask("t1", "manual"));
  std::string token = TokenOf("manual");
  ASSERT_FALSE(token.empty()) << "no MESOS_EXECUTOR_AUTHENTICATION_TOKEN in the executor's env";
  auto claims = VerifyJwt(token, kKey, 0);
  ASSERT_TRUE(claims.ok()) << claims.error();
  EXPECT_EQ((*claims)["fid"], kFramework);
  EXPECT_EQ((*claims)["eid"], "manual");
  // The container id is the sandbox's run directory (runs/<container id>), as on Mesos.
  EXPECT_EQ((*claims)["cid"], SandboxOf("manual").filename().string());
  EXPECT_EQ(claims->size(), 3u);
  EXPECT_FALSE(VerifyJwt(token, "another-key", 0).ok());
  // Tokens are issued without being required (Mesos's first step of enabling it on a cluster).
  EXPECT_EQ(PostWithAuthorization(CallOf("manual", Call::UPDATE), "").status, 400u);
}

TEST_F(AgentTest, ExecutorApiRefusesMissingForgedAndForeignTokensAsMesosDoes) {
  options_.jwt_secret_key = kKey;
  options_.authenticate_http_executors = true;
  StartAgent();
  agent_->RunTask(Framework(), TokenWritingExecutorTask("ta", "manual-a"));
  agent_->RunTask(Framework(), TokenWritingExecutorTask("tb", "manual-b"));
  std::string token_a = TokenOf("manual-a"), token_b = TokenOf("manual-b");
  ASSERT_FALSE(token_a.empty());
  ASSERT_FALSE(token_b.empty());
  auto state = nlohmann::json::parse(Http(net::Verb::get, "/slave(1)/state", "", {}).body);
  EXPECT_EQ(state["flags"]["authenticate_http_executors"], "true");
  Call subscribe = CallOf("manual-a", Call::SUBSCRIBE);

  // No credentials: the bare challenge, before anything else is looked at (even the method).
  auto r = PostWithAuthorization(subscribe, "");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(r.Header("WWW-Authenticate"), kChallenge);
  r = Http(net::Verb::get, "/slave(1)/api/v1/executor", "", {});
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(r.Header("WWW-Authenticate"), kChallenge);

  auto expect_invalid = [&](const std::string& authorization, const std::string& why) {
    auto resp = PostWithAuthorization(subscribe, authorization);
    EXPECT_EQ(resp.status, 401u) << why;
    EXPECT_THAT(resp.Header("WWW-Authenticate").value_or(""),
                HasSubstr(std::string(kChallenge) + ", error=\"invalid_token\""));
    EXPECT_THAT(resp.Header("WWW-Authenticate").value_or(""), HasSubstr(why));
  };
  expect_invalid("Basic " + Base64Encode("etcd:secret"), "Scheme 'Basic' unsupported");
  expect_invalid("Bearer", "Malformed 'Authorization' header");
  expect_invalid("Bearer not-a-jwt", "Expected 3 components in token, got 1");
  // The right claims signed with another key, and a's signature under b's claims.
  expect_invalid("Bearer " + CreateJwt({{"fid", kFramework}, {"eid", "manual-a"}}, "guess"),
                 "Token signature does not match");
  std::string b_payload = token_b.substr(token_b.find('.'), token_b.rfind('.') - token_b.find('.'));
  std::string spliced =
      token_a.substr(0, token_a.find('.')) + b_payload + token_a.substr(token_a.rfind('.'));
  expect_invalid("Bearer " + spliced, "Token signature does not match");
  // An unsigned token ("alg":"none") is not accepted in place of a signed one.
  std::string unsigned_token =
      "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0" +
      token_a.substr(token_a.find('.'), token_a.rfind('.') - token_a.find('.')) + ".";
  expect_invalid("Bearer " + unsigned_token, "does not match, expected \"HS256\"");

  // A valid token of another executor: authenticated, but not this executor's (403, as Mesos).
  r = PostWithAuthorization(subscribe, "Bearer " + token_b);
  EXPECT_EQ(r.status, 403u);
  EXPECT_THAT(r.body, HasSubstr("does not contain an 'eid' claim with the executor ID manual-a"));

  // Its own token: subscribed, and every later call needs the token too.
  net::HttpRequest request;
  request.method = net::Verb::post;
  request.endpoint = agent_->address();
  request.target = "/slave(1)/api/v1/executor";
  request.headers = {{"Content-Type", "application/json"},
                     {"Accept", "application/json"},
                     {"Authorization", "Bearer " + token_a}};
  request.body = mesos_codec::MessageToJsonString(subscribe);
  std::optional<net::HttpResponse> head;
  std::string received;
  auto stream =
      net::OpenHttpStream(io_, request,
                          {[&](const net::HttpResponse& h) { head = h; },
                           [&](std::string_view data) { received += data; }, [&](Status) {}});
  ASSERT_TRUE(RunUntil([&] { return received.find("SUBSCRIBED") != std::string::npos; }));
  EXPECT_EQ(head->status, 200u);
  Call update = CallOf("manual-a", Call::UPDATE);
  auto* status = update.mutable_update()->mutable_status();
  status->mutable_task_id()->set_value("ta");
  status->set_state(mesos::TASK_RUNNING);
  status->set_source(mesos::TaskStatus::SOURCE_EXECUTOR);
  status->set_uuid(NewUuidBytes());
  EXPECT_EQ(PostWithAuthorization(update, "").status, 401u);
  EXPECT_EQ(PostWithAuthorization(update, "Bearer " + token_b).status, 403u);
  EXPECT_TRUE(master_.Of("ta").empty()) << "a refused update reached the master";
  EXPECT_EQ(PostWithAuthorization(update, "Bearer " + token_a).status, 202u);
  auto got = WaitForUpdate("ta", 1);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->uuid(), status->uuid());
  stream->Close();
}

TEST_F(AgentTest, TokenOfAnEarlierRunOfTheSameExecutorIsRefused) {
  options_.jwt_secret_key = kKey;
  options_.authenticate_http_executors = true;
  StartAgent();
  agent_->RunTask(Framework(), TokenWritingExecutorTask("t1", "manual"));
  std::string first = TokenOf("manual");
  ASSERT_FALSE(first.empty());
  fs::path first_sandbox = SandboxOf("manual");
  ASSERT_TRUE(agent_->KillExecutor("manual").ok());
  ASSERT_TRUE(WaitForUpdate("t1", 1));
  agent_->RunTask(Framework(), TokenWritingExecutorTask("t2", "manual"));
  ASSERT_TRUE(RunUntil([&] { return SandboxOf("manual") != first_sandbox; }));
  std::string second = TokenOf("manual");
  ASSERT_FALSE(second.empty());
  ASSERT_NE(first, second);
  auto r = PostWithAuthorization(CallOf("manual", Call::SUBSCRIBE), "Bearer " + first);
  EXPECT_EQ(r.status, 403u);
  EXPECT_THAT(r.body, HasSubstr("'cid' claim with the correct active ContainerID"));
}

TEST_F(AgentTest, OurExecutorAuthenticatesWithItsTokenAndHidesItFromItsChildren) {
  options_.jwt_secret_key = kKey;
  options_.authenticate_http_executors = true;
  StartAgent();
  agent_->RunTask(Framework(), CustomTask("t1", "dump-env;message:hello-master"));
  auto running = WaitForUpdate("t1", 1);
  ASSERT_TRUE(running) << "the executor did not get through; its stderr:\n"
                       << ReadFile(SandboxOf("exec-1") / "stderr");
  EXPECT_EQ(running->state(), mesos::TASK_RUNNING);
  ASSERT_TRUE(RunUntil([&] { return !master_.messages.empty(); }));
  // The executor library takes the token out of its environment once read, as Mesos's does, so
  // what the executor starts (etcd, for ours) does not inherit it.
  auto env = ReadEnvFile(SandboxOf("exec-1") / "executor.env");
  EXPECT_EQ(env.count("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"), 0u);
  EXPECT_EQ(env["MESOS_EXECUTOR_ID"], "exec-1");
}

TEST_F(AgentTest, RequiringExecutorAuthenticationWithoutAKeyIsRefused) {
  options_.authenticate_http_executors = true;
  mesos::AgentID id;
  id.set_value(kAgentId);
  Agent agent(io_, options_, id, link_);
  auto bound = agent.Start();
  ASSERT_FALSE(bound.ok());
  EXPECT_THAT(bound.error().message, HasSubstr("needs a JWT secret key"));
}

// ---- Stopping and restarting --------------------------------------------------------------------

TEST_F(AgentTest, LosingTheHostLeavesNoProcessAlive) {
  StartAgent();
  agent_->RunTask(Framework(), CustomTask("t1", "ignore-kill"));
  agent_->RunTask(Framework(), CommandTask("c1", "sleep 100 & sleep 100; wait"));
  ASSERT_TRUE(WaitForUpdate("t1", 1));
  ASSERT_TRUE(WaitForUpdate("c1", 1));
  auto pids = agent_->ProcessIds();
  ASSERT_EQ(pids.size(), 2u);
  RunFor(milliseconds(200));  // let the command start its children
  EXPECT_GE(LiveProcessesInGroup(pids[0]) + LiveProcessesInGroup(pids[1]), 3);
  agent_->Stop(Agent::StopMode::kLoseHost);
  for (int pid : pids) {
    EXPECT_FALSE(ProcessExists(pid)) << pid;
    // The rest of each group got SIGKILL with its leader; give the kernel a moment to finish them.
    EXPECT_TRUE(RunUntil([&] { return LiveProcessesInGroup(pid) == 0; }, milliseconds(2000)))
        << pid;
  }
  EXPECT_TRUE(agent_->ProcessIds().empty());
  // A ping sent just before the stop is still on its way to the master: deliver what was already
  // sent, then count; only pings sent after the stop would be wrong.
  io_.restart();
  io_.poll();
  int pings = master_.pings;
  RunFor(milliseconds(400));
  EXPECT_EQ(master_.pings, pings) << "a stopped agent must not ping";
  net::HttpRequest health;
  health.endpoint = agent_->address();
  health.target = "/health";
  health.timeout = milliseconds(2000);
  std::optional<Result<net::HttpResponse>> answer;
  net::HttpFetch(io_, health, [&](Result<net::HttpResponse> r) { answer = std::move(r); });
  ASSERT_TRUE(RunUntil([&] { return answer.has_value(); }));
  EXPECT_FALSE(answer->ok()) << "a stopped agent still serves HTTP";
}

TEST_F(AgentTest, RestartKeepingExecutorsLetsThemResubscribeWithTheirUpdates) {
  options_.status_update_retry_min = milliseconds(200);
  options_.status_update_retry_max = milliseconds(400);
  StartAgent();
  // The executor sends RUNNING 1.5 s after LAUNCH: the agent will be down by then.
  agent_->RunTask(Framework(/*checkpoint=*/true), CustomTask("t1", "delay:1500"));
  // Wait until the executor has the task (it logs each LAUNCH to its stderr).
  ASSERT_TRUE(RunUntil([&] {
    return ReadFile(SandboxOf("exec-1") / "stderr").find("launch t1") != std::string::npos;
  }));
  auto pids = agent_->ProcessIds();
  ASSERT_EQ(pids.size(), 1u);
  HostPort address = agent_->address();
  agent_->Stop(Agent::StopMode::kKeepExecutors);
  RunFor(milliseconds(2500));
  EXPECT_TRUE(ProcessExists(pids[0])) << "the executor must survive an agent restart";
  EXPECT_TRUE(master_.Of("t1").empty());

  auto restarted = agent_->Start();
  ASSERT_TRUE(restarted.ok()) << restarted.error();
  EXPECT_EQ(*restarted, address) << "the agent must come back on the same port";
  auto running = WaitForUpdate("t1", 1);
  ASSERT_TRUE(running) << ReadFile(SandboxOf("exec-1") / "stderr");
  EXPECT_EQ(running->state(), mesos::TASK_RUNNING);
  EXPECT_THAT(ReadFile(SandboxOf("exec-1") / "stderr"), HasSubstr("subscribed"));
  ASSERT_FALSE(master_.reregistrations.empty());
  ASSERT_EQ(master_.reregistrations[0].tasks.size(), 1u);
  EXPECT_EQ(master_.reregistrations[0].tasks[0].task_id().value(), "t1");
  EXPECT_EQ(master_.reregistrations[0].executors.size(), 1u);
  Ack(*running);

  // The re-subscribed executor still gets events: KILL goes through and it reports KILLED.
  agent_->KillTask(FrameworkId(), running->task_id(), std::nullopt);
  auto killed = WaitForUpdate("t1", 2);
  ASSERT_TRUE(killed);
  EXPECT_EQ(killed->state(), mesos::TASK_KILLED);
}

}  // namespace
}  // namespace etcd_mesos::local
