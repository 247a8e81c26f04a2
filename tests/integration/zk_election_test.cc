// The scheduler instances' leader election against a real ZooKeeper: one leads and the others
// know who; the next in line leads when the leader withdraws or its session expires; a leader
// told of its session's expiry has lost the leadership; a leader cut off from ZooKeeper holds
// until it is back; nobody leads while ZooKeeper is away.
#include "store/zk_election.h"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "testing/zookeeper_server.h"

namespace etcd_mesos::store {
namespace {

using std::chrono::milliseconds;

class ZkElectionTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(zookeeper_.Start().ok()) << zookeeper_.LogTail(); }

  struct Candidate {
    std::unique_ptr<ZkElection> election;
    std::vector<ZkElection::View> views;
    std::optional<std::string> lost;
    bool leading() const { return election && election->view().leading; }
  };

  std::unique_ptr<Candidate> Join(const std::string& data) {
    auto c = std::make_unique<Candidate>();
    Candidate* raw = c.get();
    c->election = std::make_unique<ZkElection>(
        io_, *ParseZkUrl(zookeeper_.Url("/etcd-mesos/etcd-x/leader")), data,
        ZkElection::Options{.session_timeout = milliseconds(4000)},
        [raw](const ZkElection::View& v) { raw->views.push_back(v); },
        [raw](const std::string& why) { raw->lost = why; });
    EXPECT_TRUE(c->election->Start().ok());
    return c;
  }

  bool RunUntil(const std::function<bool()>& done, int seconds = 20) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!done() && std::chrono::steady_clock::now() < deadline) io_.run_for(milliseconds(10));
    return done();
  }

  test::ZooKeeperServer zookeeper_;
  boost::asio::io_context io_;
};

TEST_F(ZkElectionTest, TheFirstLeadsTheOthersKnowItAndTheNextInLineLeadsWhenItWithdraws) {
  auto a = Join("http://127.0.0.1:1001/");
  ASSERT_TRUE(RunUntil([&] { return a->leading(); }));
  auto b = Join("http://127.0.0.1:1002/");
  // In line in the order their nodes were created: b's first.
  ASSERT_TRUE(RunUntil([&] { return !b->election->view().node.empty(); }));
  auto c = Join("http://127.0.0.1:1003/");
  ASSERT_TRUE(
      RunUntil([&] { return b->election->view().leader_data && c->election->view().leader_data; }));
  EXPECT_EQ(*b->election->view().leader_data, "http://127.0.0.1:1001/");
  EXPECT_FALSE(b->leading());
  EXPECT_FALSE(c->leading());
  a->election->Stop();
  ASSERT_TRUE(RunUntil([&] { return b->leading(); })) << "the next in line did not lead";
  EXPECT_FALSE(c->leading()) << "two leaders";
  ASSERT_TRUE(
      RunUntil([&] { return c->election->view().leader_data == "http://127.0.0.1:1002/"; }));
  EXPECT_FALSE(b->lost);
}

TEST_F(ZkElectionTest, ALeaderWhoseSessionExpiresIsToldItLostAndAnotherLeads) {
  auto a = Join("a");
  ASSERT_TRUE(RunUntil([&] { return a->leading(); }));
  auto b = Join("b");
  ASSERT_TRUE(RunUntil([&] { return b->election->view().leader_data.has_value(); }));
  auto session = a->election->SessionForTesting();
  ASSERT_TRUE(session);
  ASSERT_TRUE(
      test::ExpireZooKeeperSession(zookeeper_.servers(), session->first, session->second).ok());
  ASSERT_TRUE(RunUntil([&] { return a->lost.has_value(); })) << "the old leader was not told";
  EXPECT_FALSE(a->leading());
  EXPECT_TRUE(RunUntil([&] { return b->leading(); }));
}

TEST_F(ZkElectionTest, AStandbyWhoseSessionExpiresContendsAgainBehindTheLeader) {
  auto a = Join("a");
  ASSERT_TRUE(RunUntil([&] { return a->leading(); }));
  auto b = Join("b");
  ASSERT_TRUE(RunUntil([&] { return b->election->view().leader_data.has_value(); }));
  std::string first_node = b->election->view().node;
  auto session = b->election->SessionForTesting();
  ASSERT_TRUE(session);
  ASSERT_TRUE(
      test::ExpireZooKeeperSession(zookeeper_.servers(), session->first, session->second).ok());
  ASSERT_TRUE(RunUntil([&] {
    return !b->election->view().node.empty() && b->election->view().node != first_node &&
           b->election->view().leader_data.has_value();
  }));
  EXPECT_FALSE(b->lost) << "a standby has no leadership to lose";
  EXPECT_TRUE(a->leading());
  EXPECT_FALSE(b->leading());
}

// ZooKeeper restarted within the session timeout: the leader holds while it is away (it cannot
// know whether its session will expire), and leads on, not suspended, once it is back.
TEST_F(ZkElectionTest, ALeaderCutOffFromZooKeeperIsSuspendedUntilItIsBackWithinTheSession) {
  auto a = Join("a");
  ASSERT_TRUE(RunUntil([&] { return a->leading(); }));
  auto b = Join("b");
  ASSERT_TRUE(RunUntil([&] { return b->election->view().leader_data.has_value(); }));
  EXPECT_FALSE(a->election->view().suspended);
  zookeeper_.Stop();
  ASSERT_TRUE(RunUntil([&] { return a->election->view().suspended; }, 10))
      << "a leader cut off from ZooKeeper went on as if nothing happened";
  EXPECT_TRUE(a->leading());
  ASSERT_TRUE(zookeeper_.Start().ok()) << zookeeper_.LogTail();
  ASSERT_TRUE(RunUntil([&] { return !a->election->view().suspended; }));
  EXPECT_TRUE(a->leading());
  EXPECT_FALSE(a->lost);
  EXPECT_FALSE(b->leading());
  // What the shell saw: leading, then leading in doubt, then leading again.
  ASSERT_GE(a->views.size(), 3u);
  EXPECT_TRUE(a->views[a->views.size() - 2].suspended);
  EXPECT_FALSE(a->views.back().suspended);
}

TEST_F(ZkElectionTest, NobodyLeadsWhileZooKeeperIsAwayAndTheFirstLeadsOnceItIsBack) {
  zookeeper_.Stop();
  auto a = Join("a");
  io_.run_for(milliseconds(1500));
  EXPECT_FALSE(a->leading());
  ASSERT_TRUE(zookeeper_.Start().ok()) << zookeeper_.LogTail();
  EXPECT_TRUE(RunUntil([&] { return a->leading(); }));
}

}  // namespace
}  // namespace etcd_mesos::store
