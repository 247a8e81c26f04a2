// The etcd-mesos-local binary itself: bad flags are refused with exit code 2 and a clear
// message, `etcd-mesos-local fault ...` injects faults into a running one, and SIGTERM or SIGINT
// leaves no process it started behind, executors included. And the scheduler binary as an
// operator runs it: its flags, and two instances failing over.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "mesos/scheduler_client.h"
#include "net/http.h"
#include "testing/ports.h"
#include "testing/process.h"
#include "testing/tempdir.h"
#include "testing/workload.h"
#include "testing/zookeeper_server.h"

namespace etcd_mesos::local {
namespace {

using test::ChildProcess;

// Every process whose parent chain leads to `root` (read from /proc).
std::set<int> Descendants(int root) {
  std::map<int, int> parent;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    int ppid;
    if (rest >> state >> ppid) parent[std::stoi(name)] = ppid;
  }
  std::set<int> out;
  bool grew = true;
  while (grew) {
    grew = false;
    for (auto [pid, ppid] : parent) {
      if ((ppid == root || out.count(ppid)) && !out.count(pid)) {
        out.insert(pid);
        grew = true;
      }
    }
  }
  return out;
}

// Agents on this test process's leased block of loopback addresses (tests run in parallel).
std::string AgentIp(int n) { return fmt::format("127.0.0.{}", test::AgentHostBase() + n - 1); }
std::string FirstAgentIpFlag() { return "--first-agent-ip=" + AgentIp(1); }

int RunToExit(std::vector<std::string> argv, std::string* output) {
  test::TempDir dir("em-cli");
  ChildProcess p(std::move(argv), dir.path() / "out.log");
  int status = p.Wait();
  // All of it, not the log's tail: --help is longer than a tail.
  std::ifstream in(dir.path() / "out.log");
  std::stringstream all;
  all << in.rdbuf();
  *output = all.str();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(EtcdMesosLocalCli, BadFlagsExitTwoNamingTheProblem) {
  std::string out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--resources=cpus:lots"}, &out), 2);
  EXPECT_NE(out.find("--resources"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--agents=0"}, &out), 2);
  EXPECT_NE(out.find("--agents"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--heartbeat-interval=soon"}, &out), 2);
  EXPECT_NE(out.find("--heartbeat-interval"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--first-agent-ip=10.0.0.2"}, &out), 2);
  EXPECT_NE(out.find("--first-agent-ip '10.0.0.2' is not a loopback address"), std::string::npos)
      << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--first-agent-ip=127.0.0.250", "--agents=6"}, &out),
            2);
  EXPECT_NE(out.find("no room for 6 agents"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--zk=127.0.0.1:2181/mesos"}, &out), 2);
  EXPECT_NE(out.find("--zk"), std::string::npos) << out;
  EXPECT_NE(out.find("is not a zk:// URL"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--executor-environment-variables=[1]"}, &out), 2);
  EXPECT_NE(out.find("--executor-environment-variables must be a JSON object"), std::string::npos)
      << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, R"(--executor-environment-variables={"A":1})"}, &out),
            2);
  EXPECT_NE(out.find("A must be a string"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--no-such-flag"}, &out), 2);
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--help"}, &out), 0);
  EXPECT_NE(out.find("--agents"), std::string::npos);
  EXPECT_NE(out.find("--zk-session-timeout"), std::string::npos) << out;
}

TEST(EtcdMesosLocalCli, BusyPortIsAClearError) {
  boost::asio::io_context io;
  net::HttpServer squatter(io, {},
                           [](const net::ServerRequest&, std::shared_ptr<net::Responder> r) {
                             r->Respond(net::TextResponse(200, "mine"));
                           });
  auto bound = squatter.Listen({"127.0.0.1", 0});
  ASSERT_TRUE(bound.ok());
  test::TempDir work("em-cli-work");
  std::string out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--port=" + std::to_string(bound->port),
                       "--work-dir=" + work.path().string(), FirstAgentIpFlag()},
                      &out),
            2);
  EXPECT_NE(out.find(std::to_string(bound->port)), std::string::npos) << out;
}

TEST(EtcdMesosLocalCli, SigtermLeavesNoProcessBehind) {
  test::TempDir work("em-cli-work");
  uint16_t port = test::FreePort();
  // The started command stands for the scheduler; it makes a grandchild of its own too.
  ChildProcess local({ETCD_MESOS_LOCAL_PATH, "--agents=2", "--port=" + std::to_string(port),
                      "--work-dir=" + work.path().string(), FirstAgentIpFlag(), "--", "sh", "-c",
                      "sleep 600 & wait"},
                     work.path() / "local.log");
  ASSERT_TRUE(test::WaitFor(
      [&] {
        auto r = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", port}, "/health"});
        return r.ok() && r->status == 200;
      },
      std::chrono::seconds(20)))
      << local.LogTail();
  std::set<int> children;
  ASSERT_TRUE(test::WaitFor(
      [&] {
        children = Descendants(local.pid());
        return children.size() >= 2;  // sh and its sleep
      },
      std::chrono::seconds(10)));
  // The master and the agents answer, and the state shows both agents.
  auto state = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", port}, "/master/state"});
  ASSERT_TRUE(state.ok());
  EXPECT_NE(state->body.find("slave(2)@" + AgentIp(2)), std::string::npos) << state->body;
  local.Kill(SIGTERM);
  int status = local.Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << local.LogTail();
  for (int pid : children) {
    EXPECT_TRUE(test::WaitFor([&] { return ::kill(pid, 0) != 0; }, std::chrono::seconds(5)))
        << "process " << pid << " outlived etcd-mesos-local";
  }
}

// A framework on the scheduler API of a running etcd-mesos-local that launches one task of the
// tests' custom executor and waits for it to run.
class OneTaskFramework {
 public:
  explicit OneTaskFramework(uint16_t port) {
    mesos_client::SchedulerClient::Options options;
    options.backoff_min = std::chrono::milliseconds(50);
    options.backoff_max = std::chrono::milliseconds(200);
    client_ = std::make_unique<mesos_client::SchedulerClient>(
        io_, options,
        mesos_client::SchedulerClient::Callbacks{
            [this](const mesos::scheduler::Event::Subscribed& s) {
              heartbeat_seconds_ = s.heartbeat_interval_seconds();
            },
            [this](const mesos::scheduler::Event& e) {
              if (e.type() == mesos::scheduler::Event::OFFERS && e.offers().offers_size() > 0) {
                offer_ = e.offers().offers(0);
              } else if (e.type() == mesos::scheduler::Event::UPDATE) {
                state_ = e.update().status().state();
              }
            },
            nullptr});
    mesos::FrameworkInfo info;
    info.set_user("root");
    info.set_name("cli-test");
    info.set_failover_timeout(60);
    client_->Start({"127.0.0.1", port}, info);
  }

  // Launches the task on the first agent offered; true once it reports TASK_RUNNING.
  bool LaunchAndWaitUntilRunning() {
    if (!RunUntil([&] { return offer_.has_value(); })) return false;
    mesos::scheduler::Call call;
    call.set_type(mesos::scheduler::Call::ACCEPT);
    *call.mutable_accept()->add_offer_ids() = offer_->id();
    auto* op = call.mutable_accept()->add_operations();
    op->set_type(mesos::Offer::Operation::LAUNCH);
    mesos::TaskInfo* task = op->mutable_launch()->add_task_infos();
    task->set_name("t");
    task->mutable_task_id()->set_value("t");
    *task->mutable_agent_id() = offer_->agent_id();
    *task->add_resources() = Cpus(0.1);
    auto* exec = task->mutable_executor();
    exec->set_type(mesos::ExecutorInfo::CUSTOM);
    exec->mutable_executor_id()->set_value("exec-t");
    exec->mutable_command()->set_value("./test_executor");
    auto* uri = exec->mutable_command()->add_uris();
    uri->set_value(TEST_EXECUTOR_PATH);
    uri->set_executable(true);
    *exec->add_resources() = Cpus(0.1);
    client_->Send(std::move(call));
    return RunUntil([&] { return state_ == mesos::TASK_RUNNING; });
  }

  // The heartbeat interval the master announced in SUBSCRIBED.
  std::optional<double> heartbeat_seconds() const { return heartbeat_seconds_; }

 private:
  static mesos::Resource Cpus(double n) {
    mesos::Resource r;
    r.set_name("cpus");
    r.set_type(mesos::Value::SCALAR);
    r.mutable_scalar()->set_value(n);
    return r;
  }

  bool RunUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(10));
    }
    return done();
  }

  boost::asio::io_context io_;
  std::unique_ptr<mesos_client::SchedulerClient> client_;
  std::optional<mesos::Offer> offer_;
  std::optional<mesos::TaskState> state_;
  std::optional<double> heartbeat_seconds_;
};

// Starts etcd-mesos-local with two agents and waits until it serves.
std::unique_ptr<ChildProcess> StartLocal(const test::TempDir& work, uint16_t port) {
  auto local =
      std::make_unique<ChildProcess>(std::vector<std::string>{ETCD_MESOS_LOCAL_PATH, "--agents=2",
                                                              "--port=" + std::to_string(port),
                                                              "--work-dir=" + work.path().string()},
                                     work.path() / "local.log");
  bool up = test::WaitFor(
      [&] {
        auto r = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", port}, "/health"});
        return r.ok() && r->status == 200;
      },
      std::chrono::seconds(20));
  EXPECT_TRUE(up) << local->LogTail();
  return local;
}

TEST(EtcdMesosLocalCli, FaultCommandInjectsIntoARunningCluster) {
  test::TempDir work("em-cli-work");
  uint16_t port = test::FreePort();
  auto local = StartLocal(work, port);
  std::string master = "--master=127.0.0.1:" + std::to_string(port);
  std::string out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "fault", master, "partition-agent", "2"}, &out), 0)
      << out;
  EXPECT_NE(out.find("partitioned"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "fault", master, "heal-agent", "2"}, &out), 0) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "fault", master, "crash-agent", "2"}, &out), 0)
      << out;
  EXPECT_NE(out.find("executors run on"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "fault", master, "restart-agent", "2"}, &out), 0)
      << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "fault", master, "stop-agent", "1"}, &out), 0) << out;
  EXPECT_NE(out.find("agent stopped"), std::string::npos) << out;
  // The host really went: the cluster refuses to stop it twice.
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "fault", master, "stop-agent", "1"}, &out), 1);
  EXPECT_NE(out.find("agent 1 is already stopped"), std::string::npos) << out;
  // What the master refuses fails the command with the master's reason; nonsense is a usage error.
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "fault", master, "stop-agent", "x"}, &out), 1);
  EXPECT_NE(out.find("'x' is not a number"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "fault", master, "explode"}, &out), 2);
  EXPECT_NE(out.find("usage: etcd-mesos-local fault"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "fault", "--master=nowhere", "restart-master"}, &out),
            2);
  EXPECT_NE(out.find("--master"), std::string::npos) << out;
  EXPECT_EQ(local->Stop(), 0) << local->LogTail();
}

class EtcdMesosLocalSignal : public ::testing::TestWithParam<int> {};

TEST_P(EtcdMesosLocalSignal, StopsItsRunningExecutorsToo) {
  test::TempDir work("em-cli-work");
  uint16_t port = test::FreePort();
  auto local = StartLocal(work, port);
  OneTaskFramework framework(port);
  ASSERT_TRUE(framework.LaunchAndWaitUntilRunning()) << local->LogTail();
  EXPECT_EQ(framework.heartbeat_seconds(), 15.0) << "Mesos's default heartbeat interval";
  std::set<int> children = Descendants(local->pid());
  ASSERT_FALSE(children.empty()) << "the executor runs as a child of etcd-mesos-local";
  local->Kill(GetParam());
  int status = local->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << local->LogTail();
  for (int pid : children) {
    EXPECT_TRUE(test::WaitFor([&] { return ::kill(pid, 0) != 0; }, std::chrono::seconds(5)))
        << "process " << pid << " outlived etcd-mesos-local";
  }
}

INSTANTIATE_TEST_SUITE_P(TermAndInt, EtcdMesosLocalSignal, ::testing::Values(SIGTERM, SIGINT),
                         [](const auto& info) {
                           return info.param == SIGTERM ? "Sigterm" : "Sigint";
                         });

// The README's main job, as scripts/run-local composes it: etcd-mesos-local with the scheduler
// started after `--`, bootstrapping three members; SIGTERM then leaves no process behind (not the
// scheduler, not an executor, not an etcd).
TEST(MainJob, BringsUpAHealthyClusterAndSigtermStopsEverything) {
  test::TempDir work("em-main-job");
  uint16_t port = test::FreePort();
  uint16_t admin = test::FreePort();
  auto wrapper = test::WriteExecutorWrapper(work.path(), EXECUTOR_PATH);
  ChildProcess local(
      {ETCD_MESOS_LOCAL_PATH, "--agents=3", "--port=" + std::to_string(port),
       "--work-dir=" + (work.path() / "mesos").string(), FirstAgentIpFlag(), "--", SCHEDULER_PATH,
       "--master=127.0.0.1:" + std::to_string(port), "--cluster-name=main",
       "--admin-port=" + std::to_string(admin),
       "--state-dir=" + (work.path() / "scheduler-state").string(), "--cpu-limit=0.5",
       "--mem-limit=256", "--disk-limit=512", "--executor-bin=" + wrapper.string()},
      work.path() / "local.log");
  nlohmann::json stats;
  bool healthy = test::WaitFor(
      [&] {
        auto r = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", admin}, "/stats"});
        if (!r.ok() || r->status != 200) return false;
        stats = nlohmann::json::parse(r->body, nullptr, false);
        return stats.is_object() && stats["healthy"] == 1 && stats["running_servers"] == 3;
      },
      std::chrono::seconds(120));
  ASSERT_TRUE(healthy) << stats.dump() << "\n" << local.LogTail();
  auto state = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", port}, "/master/state"});
  ASSERT_TRUE(state.ok());
  auto master = nlohmann::json::parse(state->body);
  ASSERT_EQ(master["frameworks"].size(), 1u);
  EXPECT_EQ(master["frameworks"][0]["name"], "etcd-main");
  EXPECT_EQ(master["frameworks"][0]["tasks"].size(), 3u);

  std::set<int> children = Descendants(local.pid());
  EXPECT_GE(children.size(), 7u) << "the scheduler, and three executors with their etcd";
  local.Kill(SIGTERM);
  int status = local.Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << local.LogTail();
  for (int pid : children) {
    EXPECT_TRUE(test::WaitFor([&] { return ::kill(pid, 0) != 0; }, std::chrono::seconds(15)))
        << "process " << pid << " outlived etcd-mesos-local";
  }
}

TEST(SchedulerCli, BadFlagsExitTwoNamingTheFlagBeforeAnythingStarts) {
  std::string out;
  EXPECT_EQ(RunToExit({SCHEDULER_PATH, "--cluster-size=0"}, &out), 2);
  EXPECT_NE(out.find("--cluster-size"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({SCHEDULER_PATH, "--master=zk://"}, &out), 2);
  EXPECT_NE(out.find("--master"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({SCHEDULER_PATH, "--reseed-timeout=soon"}, &out), 2);
  EXPECT_NE(out.find("--reseed-timeout"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({SCHEDULER_PATH, "--no-such-flag"}, &out), 2);
  EXPECT_EQ(RunToExit({SCHEDULER_PATH, "--help"}, &out), 0);
  EXPECT_NE(out.find("--auto-reseed"), std::string::npos) << out;
}

// The scheduler binary as a leader whose ZooKeeper session expires because it was paused longer
// than the session timeout (SIGSTOP, as a long GC-like stall or a frozen VM): once it runs again
// it learns of the expiry, stops acting, and the same process contends again and, being the
// only instance, leads again, on the same admin port. (A ZooKeeper server that restarts keeps its
// sessions: stopping ZooKeeper would expire nothing.)
TEST(SchedulerCli, ALeaderWhoseSessionExpiredContendsAgainInTheSameProcess) {
  test::ZooKeeperServer zookeeper;
  ASSERT_TRUE(zookeeper.Start().ok()) << zookeeper.LogTail();
  test::TempDir dir("em-cli-ha");
  uint16_t admin = test::FreePort();
  std::ofstream(dir.path() / "token") << "t0ken\n";
  ChildProcess scheduler(
      {SCHEDULER_PATH, "--zk-framework-persist=" + zookeeper.Url("/etcd-mesos"),
       fmt::format("--master=127.0.0.1:{}", test::FreePort()),  // nobody: it need not subscribe
       fmt::format("--admin-port={}", admin), "--executor-bin=" + std::string(EXECUTOR_PATH),
       "--reseed-token-file=" + (dir.path() / "token").string(), "--cluster-name=cli-ha"},
      dir.path() / "scheduler.log");
  auto standby = [&]() -> int {
    net::HttpRequest req;
    req.endpoint = {"127.0.0.1", admin};
    req.target = "/stats";
    req.timeout = std::chrono::seconds(2);
    auto r = net::HttpFetchSync(req);
    if (!r.ok() || r->status != 200) return -1;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_object() ? j.value("standby", -1) : -1;
  };
  auto log = [&] { return scheduler.LogTail(20000); };
  ASSERT_TRUE(test::WaitFor([&] { return standby() == 0; }, std::chrono::seconds(30))) << log();
  ASSERT_NE(log().find("elected: this instance leads etcd-cli-ha"), std::string::npos) << log();
  scheduler.Kill(SIGSTOP);
  std::this_thread::sleep_for(std::chrono::seconds(13));  // past the 10 s session timeout
  scheduler.Kill(SIGCONT);
  ASSERT_TRUE(test::WaitFor(
      [&] { return log().find("contending again for the leadership") != std::string::npos; },
      std::chrono::seconds(30)))
      << log();
  EXPECT_NE(log().find("lost the leadership of etcd-cli-ha"), std::string::npos) << log();
  EXPECT_TRUE(test::WaitFor([&] { return standby() == 0; }, std::chrono::seconds(30)))
      << "not leading again:\n"
      << log();
  EXPECT_TRUE(scheduler.Running()) << log();
}

// Scheduler HA as an operator runs it: two scheduler processes with the same flags, state in
// ZooKeeper, on etcd-mesos-local. kill -9 of the leader leaves its ZooKeeper session alive
// until it expires; the standby then leads, subscribes with the same framework id, kills and
// replaces nothing that runs, and replaces a member whose executor was killed during the
// failover. The master never has more than one framework, nor two subscriptions at once.
TEST(SchedulerCli, KillNineOfTheLeaderLetsTheStandbyLeadAndHealAMemberLostMeanwhile) {
  test::ZooKeeperServer zookeeper;
  ASSERT_TRUE(zookeeper.Start().ok()) << zookeeper.LogTail();
  test::TempDir work("em-cli-kill-leader");
  uint16_t port = test::FreePort();
  auto wrapper = test::WriteExecutorWrapper(work.path(), EXECUTOR_PATH);
  ChildProcess local({ETCD_MESOS_LOCAL_PATH, "--agents=4", "--port=" + std::to_string(port),
                      "--work-dir=" + (work.path() / "mesos").string(), FirstAgentIpFlag()},
                     work.path() / "local.log");
  std::ofstream(work.path() / "token") << "t0ken\n";
  auto start_scheduler = [&](const std::string& name, uint16_t admin) {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{SCHEDULER_PATH, "--master=127.0.0.1:" + std::to_string(port),
                                 "--zk-framework-persist=" + zookeeper.Url("/etcd-mesos"),
                                 "--cluster-name=ha", "--admin-port=" + std::to_string(admin),
                                 "--cpu-limit=0.5", "--mem-limit=256", "--disk-limit=512",
                                 "--executor-bin=" + wrapper.string(),
                                 "--reseed-token-file=" + (work.path() / "token").string()},
        work.path() / (name + ".log"));
  };
  auto get_json = [](uint16_t port, const std::string& path) {
    auto r = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", port}, path});
    if (!r.ok() || r->status != 200) return nlohmann::json();
    return nlohmann::json::parse(r->body, nullptr, false);
  };
  uint16_t admin_a = test::FreePort(), admin_b = test::FreePort();
  auto a = start_scheduler("a", admin_a);
  nlohmann::json stats;
  ASSERT_TRUE(test::WaitFor(
      [&] {
        stats = get_json(admin_a, "/stats");
        return stats.is_object() && stats["healthy"] == 1 && stats["running_servers"] == 3;
      },
      std::chrono::seconds(120)))
      << stats.dump() << "\n"
      << a->LogTail();
  auto b = start_scheduler("b", admin_b);
  ASSERT_TRUE(test::WaitFor(
      [&] {
        stats = get_json(admin_b, "/stats");
        return stats.is_object() && stats["standby"] == 1 && stats["running_servers"] == 3;
      },
      std::chrono::seconds(30)))
      << stats.dump() << "\n"
      << b->LogTail();
  auto master = get_json(port, "/master/state");
  ASSERT_EQ(master["frameworks"].size(), 1u);
  std::string framework_id = master["frameworks"][0]["id"];
  std::set<std::string> tasks_before;
  for (const auto& t : master["frameworks"][0]["tasks"]) tasks_before.insert(t["id"]);
  ASSERT_EQ(tasks_before.size(), 3u);

  a->Kill(SIGKILL);
  a->Wait();
  // A member's executor (and its etcd with it) is killed while nobody leads.
  bool killed = false;
  for (int pid : Descendants(local.pid())) {
    std::ifstream cmdline(fmt::format("/proc/{}/cmdline", pid));
    std::string args((std::istreambuf_iterator<char>(cmdline)), {});
    if (args.find("etcd-mesos-executor") == std::string::npos || getpgid(pid) != pid) continue;
    ASSERT_EQ(::kill(-pid, SIGKILL), 0);
    killed = true;
    break;
  }
  ASSERT_TRUE(killed) << "no executor found to kill";
  int most_connected = 0;
  size_t most_frameworks = 0;
  ASSERT_TRUE(test::WaitFor(
      [&] {
        master = get_json(port, "/master/state");
        int connected = 0;
        for (const auto& f : master["frameworks"]) connected += f.value("connected", false);
        most_connected = std::max(most_connected, connected);
        most_frameworks = std::max(most_frameworks, master["frameworks"].size());
        stats = get_json(admin_b, "/stats");
        return stats.is_object() && stats["standby"] == 0 && stats["connected"] == 1 &&
               stats["members_removed"] == 1 && stats["healthy"] == 1 &&
               stats["running_servers"] == 3;
      },
      std::chrono::seconds(180)))
      << stats.dump() << "\n"
      << b->LogTail(20000);
  EXPECT_NE(b->LogTail(200000).find("elected: this instance leads etcd-ha"), std::string::npos);
  EXPECT_LE(most_connected, 1) << "two schedulers subscribed at once";
  EXPECT_EQ(most_frameworks, 1u) << "the standby registered a framework of its own";
  ASSERT_EQ(master["frameworks"].size(), 1u);
  EXPECT_EQ(master["frameworks"][0]["id"], framework_id) << "not the same framework";
  // Two of the three tasks are the ones that ran before; the third replaces the victim (the
  // master may hear of the victim's end and the replacement's start after the scheduler does).
  // Nothing was killed: the only task that ended is the victim's, and it failed.
  std::set<std::string> tasks_after;
  int kept = 0;
  EXPECT_TRUE(test::WaitFor(
      [&] {
        master = get_json(port, "/master/state");
        tasks_after.clear();
        for (const auto& t : master["frameworks"][0]["tasks"]) {
          if (t["state"] == "TASK_RUNNING") tasks_after.insert(t["id"]);
        }
        kept = 0;
        for (const auto& id : tasks_after) kept += tasks_before.count(id);
        return tasks_after.size() == 3 && kept == 2;
      },
      std::chrono::seconds(60)))
      << tasks_after.size() << " running, " << kept << " of them from before: " << master.dump();
  for (const auto& t : master["frameworks"][0]["completed_tasks"]) {
    EXPECT_NE(t["state"], "TASK_KILLED") << "a task was killed: " << t.dump();
  }
  EXPECT_EQ(b->Stop(), 0) << b->LogTail();
  EXPECT_EQ(local.Stop(), 0) << local.LogTail();
}

// `etcd-mesos-scheduler teardown`, as an operator runs it with the scheduler's own flags, on a
// durable cluster (--role=etcd): with the scheduler running it asks it and follows it; with none
// running it registers as the framework and tears it down itself. Either way nothing is left:
// no task, no reservation, no volume, no state record; the framework is completed at the
// master; and a scheduler started afterwards runs a new, empty cluster.
TEST(SchedulerCli, TeardownLeavesNoTaskReservationVolumeOrStateAndARedeployStartsAnew) {
  test::TempDir work("em-cli-teardown");
  uint16_t port = test::FreePort();
  auto wrapper = test::WriteExecutorWrapper(work.path(), EXECUTOR_PATH);
  ChildProcess local({ETCD_MESOS_LOCAL_PATH, "--agents=3", "--port=" + std::to_string(port),
                      "--work-dir=" + (work.path() / "mesos").string(), FirstAgentIpFlag()},
                     work.path() / "local.log");
  const std::filesystem::path state_dir = work.path() / "state";
  uint16_t admin = test::FreePort();
  const std::vector<std::string> flags = {"--master=127.0.0.1:" + std::to_string(port),
                                          "--cluster-name=td",
                                          "--state-dir=" + state_dir.string(),
                                          "--admin-port=" + std::to_string(admin),
                                          "--role=etcd",
                                          "--tls=off",
                                          "--cpu-limit=0.5",
                                          "--mem-limit=256",
                                          "--disk-limit=512",
                                          "--executor-bin=" + wrapper.string()};
  auto command = [&](std::vector<std::string> head) {
    head.insert(head.end(), flags.begin(), flags.end());
    return head;
  };
  auto get_json = [](uint16_t at, const std::string& path) {
    auto r = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", at}, path});
    if (!r.ok() || r->status != 200) return nlohmann::json();
    return nlohmann::json::parse(r->body, nullptr, false);
  };
  auto healthy_cluster = [&](ChildProcess& scheduler) {
    nlohmann::json stats;
    EXPECT_TRUE(test::WaitFor(
        [&] {
          stats = get_json(admin, "/stats");
          return stats.is_object() && stats["healthy"] == 1 && stats["running_servers"] == 3;
        },
        std::chrono::seconds(120)))
        << stats.dump() << "\n"
        << scheduler.LogTail();
  };
  auto etcdctl = [&](const std::string& args) {
    auto endpoints = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", admin}, "/endpoints"});
    EXPECT_TRUE(endpoints.ok() && endpoints->status == 200);
    std::string list = endpoints.ok() ? endpoints->body : "";
    while (!list.empty() && std::isspace(static_cast<unsigned char>(list.back()))) list.pop_back();
    return test::RunShell("ETCDCTL_API=3 etcdctl --endpoints=" + list + " " + args);
  };
  // What the master and the agents hold for the role, and the volumes on the agents' disks.
  auto reserved = [&] {
    size_t n = 0;
    nlohmann::json state = get_json(port, "/master/state");  // the loop must not outlive it
    for (const auto& a : state["slaves"]) {
      n += a.value("reserved_resources", nlohmann::json::object()).size();
    }
    return n;
  };
  auto volumes = [&] {
    size_t n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(work.path() / "mesos")) {
      n += e.path().parent_path().filename() == "etcd" &&
           e.path().parent_path().parent_path().filename() == "roles";
    }
    return n;
  };
  auto run_teardown = [&](const std::string& name) {
    ChildProcess teardown(command({SCHEDULER_PATH, "teardown"}), work.path() / (name + ".log"));
    EXPECT_TRUE(test::WaitFor([&] { return !teardown.Running(); }, std::chrono::seconds(200)))
        << teardown.LogTail();
    int status = teardown.Wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << teardown.LogTail();
    return teardown.LogTail(20000);
  };
  auto expect_nothing_left = [&](const std::string& framework_id, const std::string& log) {
    nlohmann::json master = get_json(port, "/master/state");
    EXPECT_TRUE(master["frameworks"].empty()) << master["frameworks"].dump();
    bool completed = false;
    for (const auto& f : master["completed_frameworks"]) completed |= f["id"] == framework_id;
    EXPECT_TRUE(completed) << framework_id << " is not completed at the master";
    EXPECT_EQ(reserved(), 0u);
    EXPECT_EQ(volumes(), 0u) << "a volume is left on an agent's disk\n" << log;
    EXPECT_FALSE(std::filesystem::exists(state_dir / "c.etcd-td" / "c.state"))
        << "the state record is left";
    EXPECT_FALSE(std::filesystem::exists(state_dir / "c.etcd-td_framework_id"));
  };

  // 1. The scheduler runs: the command asks it, and it exits once done.
  auto scheduler =
      std::make_unique<ChildProcess>(command({SCHEDULER_PATH}), work.path() / "scheduler-1.log");
  healthy_cluster(*scheduler);
  ASSERT_EQ(reserved(), 3u) << "durable members reserve on their three agents";
  ASSERT_EQ(volumes(), 3u);
  ASSERT_EQ(etcdctl("put /old-cluster kept").first, 0);
  std::string first_id = get_json(port, "/master/state")["frameworks"][0]["id"];
  std::string said = run_teardown("teardown-1");
  EXPECT_NE(said.find("asking the scheduler of etcd-td"), std::string::npos) << said;
  EXPECT_NE(said.find("202 tearing down: killing 3 task(s), releasing 3 volume(s)"),
            std::string::npos)
      << said;
  EXPECT_NE(said.find("is torn down at the master"), std::string::npos) << said;
  ASSERT_TRUE(test::WaitFor([&] { return !scheduler->Running(); }, std::chrono::seconds(30)));
  int status = scheduler->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << scheduler->LogTail();
  std::string log = scheduler->LogTail(200000);
  EXPECT_NE(log.find("teardown of etcd-td done: every task ended, 3 volume(s) released"),
            std::string::npos)
      << log;
  expect_nothing_left(first_id, log);

  // 2. Nothing runs and nothing is stored: nothing to do.
  said = run_teardown("teardown-2");
  EXPECT_NE(said.find("nothing to tear down"), std::string::npos) << said;

  // 3. A redeploy starts a new, empty cluster under a new framework.
  scheduler =
      std::make_unique<ChildProcess>(command({SCHEDULER_PATH}), work.path() / "scheduler-2.log");
  healthy_cluster(*scheduler);
  std::string second_id;
  nlohmann::json redeployed = get_json(port, "/master/state");
  for (const auto& f : redeployed["frameworks"]) second_id = f["id"];
  EXPECT_NE(second_id, first_id);
  auto old_key = etcdctl("get /old-cluster --print-value-only");
  EXPECT_EQ(old_key.first, 0) << old_key.second;
  EXPECT_EQ(old_key.second.find("kept"), std::string::npos) << "the old cluster's data is back";

  // 4. The scheduler is stopped (its members keep running): the command tears down itself.
  EXPECT_EQ(scheduler->Stop(), 0) << scheduler->LogTail();
  said = run_teardown("teardown-3");
  EXPECT_NE(said.find("no scheduler of etcd-td is connected"), std::string::npos) << said;
  EXPECT_NE(said.find("teardown of etcd-td done"), std::string::npos) << said;
  EXPECT_NE(said.find("framework torn down at the master"), std::string::npos) << said;
  expect_nothing_left(second_id, said);
  EXPECT_EQ(local.Stop(), 0) << local.LogTail();
}

}  // namespace
}  // namespace etcd_mesos::local
