// Real etcd 3.4 under LinearizableWorkload (concurrent reads, writes and compare-and-sets on a
// few shared keys), checked by the linearizability checker: a three-member cluster that loses a
// follower mid-run must still produce a linearizable history; and, as a negative control, a real
// recorded history with one read corrupted must be rejected.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <thread>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "etcd/client.h"
#include "testing/etcd_server.h"
#include "testing/linearizability.h"
#include "testing/linearizable_workload.h"
#include "testing/process.h"
#include "testing/tempdir.h"

namespace etcd_mesos::test {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

struct Stats {
  std::map<OpKind, size_t> ok;
  size_t cas_succeeded = 0, cas_refused = 0, indeterminate = 0, failed = 0;
  size_t overlapping = 0;  // completed operations that overlap another on the same key
};

Stats Summarize(const History& h) {
  Stats s;
  std::map<std::string, std::vector<const Operation*>> by_key;
  for (const auto& op : h.ops) {
    if (op.outcome == Outcome::kIndeterminate) ++s.indeterminate;
    if (op.outcome == Outcome::kFailed) ++s.failed;
    if (op.outcome != Outcome::kOk) continue;
    ++s.ok[op.kind];
    if (op.kind == OpKind::kCas) ++(op.succeeded ? s.cas_succeeded : s.cas_refused);
    by_key[op.key].push_back(&op);
  }
  for (auto& [key, ops] : by_key) {
    std::sort(ops.begin(), ops.end(), [](auto* a, auto* b) { return a->invoke < b->invoke; });
    int64_t reach = std::numeric_limits<int64_t>::min();  // the latest completion so far
    for (size_t i = 0; i < ops.size(); ++i) {
      bool overlaps_earlier = ops[i]->invoke <= reach;
      bool overlaps_later = i + 1 < ops.size() && ops[i + 1]->invoke <= ops[i]->complete;
      s.overlapping += overlaps_earlier || overlaps_later;
      reach = std::max(reach, ops[i]->complete);
    }
  }
  return s;
}

class EtcdLinearizabilityTest : public ::testing::Test {
 protected:
  void StartCluster(int size) {
    std::vector<const EtcdServer*> refs;
    for (int i = 0; i < size; ++i) {
      servers_.push_back(
          std::make_unique<EtcdServer>(EtcdServer::Options{.name = fmt::format("l{}", i + 1),
                                                           .ip = fmt::format("127.0.0.{}", i + 2)},
                                       dir_.path()));
      refs.push_back(servers_.back().get());
    }
    initial_ = EtcdServer::InitialCluster(refs);
    for (auto& s : servers_) ASSERT_TRUE(s->Launch(initial_, true).ok());
    for (auto& s : servers_) {
      ASSERT_TRUE(s->WaitUntilHealthy(seconds(60)).ok()) << s->LogTail();
    }
  }

  // Runs the workload against every member, on a thread of its own, while `scenario` runs here;
  // then stops it and waits for the answers still due.
  History Run(const std::function<void()>& scenario) {
    boost::asio::io_context io;
    std::vector<HostPort> endpoints;
    for (auto& s : servers_) endpoints.push_back(s->client_endpoint());
    LinearizableWorkload workload(io, [endpoints] { return endpoints; }, {});
    boost::asio::post(io, [&] { workload.Start(); });
    std::thread runner([&] { io.run(); });  // returns once stopped and every answer is in
    scenario();
    boost::asio::post(io, [&] { workload.Stop(); });
    runner.join();
    EXPECT_EQ(workload.in_flight(), 0u);
    return workload.history();
  }

  // The index of a member that is not the leader.
  size_t Follower() {
    boost::asio::io_context io;
    etcd::Client first(io, servers_[0]->client_endpoint());
    Result<etcd::StatusResponse> status = Error{};
    EXPECT_TRUE(WaitFor(
        [&] {
          status = etcd::Await<etcd::StatusResponse>(io, [&](auto cb) { first.Status(cb); });
          return status.ok() && status->leader != 0;
        },
        seconds(10)));
    auto list = etcd::Await<etcd::MemberListResponse>(io, [&](auto cb) { first.MemberList(cb); });
    EXPECT_TRUE(list.ok());
    for (size_t i = 0; status.ok() && list.ok() && i < servers_.size(); ++i) {
      for (const auto& m : list->members) {
        if (m.name == servers_[i]->name() && m.id != status->leader) return i;
      }
    }
    ADD_FAILURE() << "no follower found";
    return 0;
  }

  // Checks `h`, saves it for replay, and prints the one-line summary.
  CheckResult CheckAndReport(const std::string& scenario, const History& h) {
    auto t0 = Clock::now();
    auto result = CheckLinearizability(h);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    EXPECT_TRUE(result.ok()) << result.error();
    if (!result.ok()) return {.verdict = Verdict::kUnknown};
    std::string slug = scenario;
    for (char& c : slug) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
    std::string path = ::testing::TempDir() + "etcd-linearizability-" + slug + ".json";
    std::ofstream(path) << ToJson(h);
    fmt::print("[linearizability] {}: {} ops, {} keys, checked in {} ms, {}\n", scenario,
               h.ops.size(), result->keys.size(), ms, VerdictName(result->verdict));
    fmt::print("[linearizability] history written to {}\n", path);
    return *result;
  }

  TempDir dir_{"em-linearizability"};
  std::vector<std::unique_ptr<EtcdServer>> servers_;
  std::string initial_;
};

TEST_F(EtcdLinearizabilityTest, AFollowerKilledAndRestartedMidRunKeepsTheHistoryLinearizable) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  size_t victim = Follower();
  History h = Run([&] {
    std::this_thread::sleep_for(seconds(2));
    servers_[victim]->Kill();
    std::this_thread::sleep_for(seconds(2));
    ASSERT_TRUE(servers_[victim]->Launch(initial_, true).ok());  // back on its own data
    ASSERT_TRUE(servers_[victim]->WaitUntilHealthy(seconds(30)).ok())
        << servers_[victim]->LogTail();
    std::this_thread::sleep_for(seconds(2));
  });

  Stats s = Summarize(h);
  fmt::print(
      "[linearizability] ok: {} reads, {} writes, {} cas ({} succeeded); {} indeterminate, {} "
      "failed; {} overlap another on their key\n",
      s.ok[OpKind::kRead], s.ok[OpKind::kWrite], s.ok[OpKind::kCas], s.cas_succeeded,
      s.indeterminate, s.failed, s.overlapping);
  EXPECT_GE(h.ops.size(), 300u);
  for (OpKind kind : {OpKind::kRead, OpKind::kWrite, OpKind::kCas}) EXPECT_GE(s.ok[kind], 50u);
  EXPECT_GE(s.cas_succeeded, 10u);
  EXPECT_GE(s.cas_refused, 10u);
  EXPECT_GE(s.overlapping, h.ops.size() / 4);
  EXPECT_GE(s.indeterminate, 1u);  // the kill cut off the requests of the victim's client
  CheckResult r = CheckAndReport("3 members, a follower killed and restarted", h);
  EXPECT_EQ(r.verdict, Verdict::kLinearizable) << r.ToString();
  EXPECT_EQ(r.keys.size(), 3u);
  auto replayed = FromJson(ToJson(h));
  ASSERT_TRUE(replayed.ok()) << replayed.error();
  EXPECT_EQ(*replayed, h);
}

// Negative control: the same machinery must reject a real history once one read lies.
TEST_F(EtcdLinearizabilityTest, OneCorruptedReadOfARealHistoryIsRejected) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(1));
  History h = Run([] { std::this_thread::sleep_for(seconds(2)); });
  ASSERT_EQ(CheckAndReport("1 member, untouched", h).verdict, Verdict::kLinearizable);

  // A stale read: the value of a write w2 that was already overwritten by a definite write w3
  // (w2 completed before w3 began, w3 completed before the read began).
  auto definite = [](const Operation& op) {
    return op.outcome == Outcome::kOk && (op.kind == OpKind::kWrite || op.succeeded);
  };
  std::optional<size_t> victim;
  for (size_t r = h.ops.size() / 2; r < h.ops.size() && !victim; ++r) {
    const Operation& read = h.ops[r];
    if (read.kind != OpKind::kRead || read.outcome != Outcome::kOk) continue;
    for (size_t w3 = 0; w3 < r && !victim; ++w3) {
      if (!definite(h.ops[w3]) || h.ops[w3].key != read.key) continue;
      if (h.ops[w3].complete >= read.invoke) continue;
      for (size_t w2 = 0; w2 < w3 && !victim; ++w2) {
        if (!definite(h.ops[w2]) || h.ops[w2].key != read.key) continue;
        if (h.ops[w2].complete >= h.ops[w3].invoke) continue;
        h.ops[r].value = h.ops[w2].value;
        victim = r;
      }
    }
  }
  ASSERT_TRUE(victim) << "no read to corrupt in " << h.ops.size() << " operations";
  CheckResult r = CheckAndReport("1 member, one read made stale", h);
  EXPECT_EQ(r.verdict, Verdict::kNotLinearizable);
  EXPECT_THAT(r.ToString(), HasSubstr(fmt::format("key \"{}\"", h.ops[*victim].key)));
  fmt::print("[linearizability] {}\n", r.ToString());

  h.ops[*victim].value = "never-written";
  r = CheckAndReport("1 member, one read of a value never written", h);
  EXPECT_EQ(r.verdict, Verdict::kNotLinearizable);
  EXPECT_THAT(r.ToString(), HasSubstr(Describe(h.ops[*victim], *victim)));
}

}  // namespace
}  // namespace etcd_mesos::test
