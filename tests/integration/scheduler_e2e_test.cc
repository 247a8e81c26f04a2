// The whole system on one machine: the scheduler (shell + core) against etcd-mesos-local, with
// the real executor fetched from the scheduler's artifact server and real etcd: bootstrap of 3
// and of 5 at once, and a heal followed by a scheduler restart that disturbs nothing. The
// incidents of the on-call guide (majority loss and reseed, manual reseed, a stopped agent, ...)
// are rehearsed with a checked workload in tests/faults/fault_suite_test.cc.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <utility>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "local/cluster.h"
#include "scheduler/shell/shell.h"
#include "testing/ports.h"
#include "testing/tempdir.h"

namespace etcd_mesos::scheduler {
namespace {

using Clock = std::chrono::steady_clock;

std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, ""};
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class SchedulerHealing : public ::testing::Test {
 protected:
  void StartAll(int size, std::chrono::milliseconds reseed_timeout = std::chrono::seconds(240),
                std::vector<std::string> extra_flags = {}) {
    local::LocalClusterOptions options;
    options.agents = size + 1;
    options.resources = *local::ParseResources("cpus:4;mem:4096;disk:4096;ports:[31000-31999]");
    options.first_agent_host = test::AgentHostBase();
    options.work_dir = dir_.path() / "mesos";
    options.master.port = 0;
    options.master.allocation_interval = std::chrono::milliseconds(200);
    options.master.agent_unreachable_timeout = std::chrono::seconds(5);
    options.agent.status_update_retry_min = std::chrono::milliseconds(500);
    cluster_ = std::make_unique<local::LocalCluster>(io_, options);
    auto master = cluster_->Start();
    ASSERT_TRUE(master.ok()) << master.error();

    // A tiny wrapper stands for the executor so that the agents do not each fetch the
    // sanitizer build's ~170 MB binary; what runs is the real executor.
    std::filesystem::path wrapper = dir_.path() / "etcd-mesos-executor";
    std::ofstream(wrapper) << "#!/bin/sh\nexec " << EXECUTOR_PATH << " \"$@\"\n";
    std::filesystem::permissions(wrapper, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add);
    std::vector<std::string> args = {
        "--cluster-name=e2e",
        "--master=" + master->ToString(),
        "--state-dir=" + (dir_.path() / "state").string(),
        "--cluster-size=" + std::to_string(size),
        "--admin-port=" + std::to_string(test::FreePort()),
        "--cpu-limit=0.5",
        "--mem-limit=128",
        "--disk-limit=256",
        "--executor-bin=" + wrapper.string(),
        "--probe-interval=500ms",
        "--bootstrap-gather=2s",
        "--reseed-timeout=" + std::to_string(reseed_timeout.count()) + "ms"};
    args.insert(args.end(), extra_flags.begin(), extra_flags.end());
    auto parsed = shell::ParseFlags(args, {{"USER", "root"}}, ".");
    ASSERT_TRUE(parsed.ok()) << parsed.error();
    ASSERT_TRUE(shell::LoadFiles(parsed->flags.shell).ok());
    shell::SchedulerFlags flags = parsed->flags;
    flags.core.dead_member_grace = std::chrono::seconds(3);
    flags_ = flags;
    StartScheduler();
  }

  void StartScheduler() {
    shell::SchedulerShell::Options options;
    options.on_fatal = [](const Error& e) { ADD_FAILURE() << "scheduler fatal: " << e; };
    options.client.backoff_min = std::chrono::milliseconds(100);
    options.client.backoff_max = std::chrono::milliseconds(500);
    scheduler_ = std::make_unique<shell::SchedulerShell>(io_, flags_, options);
    Status s = scheduler_->Start();
    ASSERT_TRUE(s.ok()) << s.error();
  }

  void TearDown() override {
    if (scheduler_) scheduler_->Stop();
    scheduler_.reset();
    if (cluster_) cluster_->Shutdown();
    io_.run_for(std::chrono::milliseconds(200));
  }

  bool RunUntil(const std::function<bool()>& done, int seconds) {
    auto deadline = Clock::now() + std::chrono::seconds(seconds);
    while (!done() && Clock::now() < deadline) io_.run_for(std::chrono::milliseconds(20));
    return done();
  }

  const SchedulerCore& core() const { return scheduler_->core(); }

  // N running members, all voters, and the core calls the cluster healthy.
  bool AtSize(int size) const {
    if (!scheduler_ || !core().healthy()) return false;
    int voters = 0;
    for (const auto& [name, m] : core().state().members) {
      if (m.task_state == mesos::TASK_RUNNING && !m.learner && m.reachable) ++voters;
    }
    return voters == size;
  }

  std::string Endpoints() const {
    std::string out;
    for (const auto& [name, m] : core().state().members) {
      if (m.task_state != mesos::TASK_RUNNING) continue;
      if (!out.empty()) out += ",";
      out += m.ClientUrl();
    }
    return out;
  }

  std::pair<int, std::string> Etcdctl(const std::string& args) {
    return RunCommand("ETCDCTL_API=3 etcdctl --dial-timeout=3s --command-timeout=10s --endpoints=" +
                      Endpoints() + " " + args);
  }

  // SIGKILLs a member's executor (etcd dies with it), as when its container is lost.
  void KillMember(const std::string& name) {
    auto state = cluster_->master().StateJson();
    for (const auto& t : state["frameworks"][0]["tasks"]) {
      if (t["name"].get<std::string>().rfind(name + " ", 0) == 0) {
        Status s = cluster_->KillExecutor(t["executor_id"].get<std::string>());
        ASSERT_TRUE(s.ok()) << s.error();
        return;
      }
    }
    FAIL() << "no task for " << name;
  }

  test::TempDir dir_{"em-e2e"};
  boost::asio::io_context io_;
  std::unique_ptr<local::LocalCluster> cluster_;
  shell::SchedulerFlags flags_;
  std::unique_ptr<shell::SchedulerShell> scheduler_;
};

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

TEST_F(SchedulerHealing, BootstrapsThreeHealsALostMemberAndSurvivesARestart) {
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(StartAll(3));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 90)) << core().health_reason();
  std::printf("[timing] bootstrap of 3 -> 3 healthy voters: %.1fs\n", Since(t0));
  auto health = Etcdctl("endpoint health");
  EXPECT_EQ(health.first, 0) << health.second;
  ASSERT_EQ(Etcdctl("put /e2e/before-heal kept").first, 0);

  // A member lost with its executor is replaced; the data stays.
  std::string victim = core().state().members.begin()->first;
  auto t1 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(KillMember(victim));
  ASSERT_TRUE(RunUntil([&] { return core().state().members.count(victim) == 0; }, 60))
      << "the dead member was not removed";
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  std::printf("[timing] member lost -> 3 healthy voters again: %.1fs\n", Since(t1));
  auto get = Etcdctl("get /e2e/before-heal --print-value-only");
  EXPECT_EQ(get.second, "kept\n");
  auto list = Etcdctl("member list");
  EXPECT_EQ(list.first, 0) << list.second;
  EXPECT_EQ(std::count(list.second.begin(), list.second.end(), '\n'), 3) << list.second;
  EXPECT_EQ(list.second.find("true"), std::string::npos) << "no learner left: " << list.second;

  // The scheduler dies and comes back: no member is disturbed.
  auto before = core().state().members;
  auto framework_id = core().state().framework_id;
  ASSERT_TRUE(framework_id.has_value());
  scheduler_->Stop();
  scheduler_.reset();
  io_.run_for(std::chrono::milliseconds(500));
  ASSERT_NO_FATAL_FAILURE(StartScheduler());
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 60)) << core().health_reason();
  io_.run_for(std::chrono::seconds(3));
  EXPECT_EQ(core().state().members.size(), 3u);
  for (const auto& [name, m] : before) {
    ASSERT_EQ(core().state().members.count(name), 1u) << name << " was replaced";
    EXPECT_EQ(core().state().members.at(name).task_id, m.task_id);
  }
  EXPECT_EQ(core().state().counters.members_removed, 1u);
  EXPECT_EQ(core().state().framework_id, framework_id) << "re-subscribed as the same framework";
  EXPECT_EQ(cluster_->master().StateJson()["frameworks"].size(), 1u);
}

TEST_F(SchedulerHealing, BootstrapsFiveMembersAtOnce) {
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(StartAll(5));
  ASSERT_TRUE(RunUntil([&] { return AtSize(5); }, 120)) << core().health_reason();
  std::printf("[timing] bootstrap of 5 -> 5 healthy voters: %.1fs\n", Since(t0));
  EXPECT_EQ(core().state().counters.members_added, 0u) << "one static bootstrap, no joins";
  auto list = Etcdctl("member list");
  EXPECT_EQ(std::count(list.second.begin(), list.second.end(), '\n'), 5) << list.second;
}

}  // namespace
}  // namespace etcd_mesos::scheduler
