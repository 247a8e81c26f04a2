// The whole system on one machine: the scheduler (shell + core) against etcd-mesos-local, with
// the real executor fetched from the scheduler's artifact server and real etcd: bootstrap of 3
// and of 5 at once, and a heal followed by a scheduler restart that disturbs nothing. The
// incidents of the on-call guide (majority loss and reseed, manual reseed, a stopped agent, ...)
// are rehearsed with a checked workload in tests/faults/fault_suite_test.cc.
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "testing/local_system.h"
#include "testing/tempdir.h"

namespace etcd_mesos::scheduler {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The fixture hands everything to test::LocalSystem; these forward to it so that the tests
// read as the incidents they rehearse.
class SchedulerHealing : public ::testing::Test {
 protected:
  void StartAll(int size, std::chrono::milliseconds reseed_timeout = std::chrono::seconds(240),
                std::vector<std::string> extra_flags = {}) {
    test::LocalSystemOptions options;
    options.size = size;
    options.executor_path = EXECUTOR_PATH;
    options.extra_flags = {"--reseed-timeout=" + std::to_string(reseed_timeout.count()) + "ms"};
    options.extra_flags.insert(options.extra_flags.end(), extra_flags.begin(), extra_flags.end());
    system_.Start(options);
  }
  void StartScheduler() { system_.StartScheduler(); }
  bool RunUntil(const std::function<bool()>& done, int seconds) {
    return system_.RunUntil(done, seconds);
  }
  const SchedulerCore& core() const { return system_.core(); }
  bool AtSize(int size) const { return system_.AtSize(size); }
  std::pair<int, std::string> Etcdctl(const std::string& args) { return system_.Etcdctl(args); }
  void KillMember(const std::string& name) { system_.KillMember(name); }

  test::TempDir dir_{"em-e2e"};
  boost::asio::io_context io_;
  test::LocalSystem system_{io_, dir_.path()};
};

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
  system_.StopScheduler();
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
  EXPECT_EQ(system_.cluster().master().StateJson()["frameworks"].size(), 1u);
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
