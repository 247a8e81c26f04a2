// Where the shell sends a membership change: to a settled leader, never blindly to a member that
// sees no leader (etcd would hold the change for the client's whole timeout).
#include "scheduler/shell/membership_route.h"

#include <gtest/gtest.h>

namespace etcd_mesos::scheduler::shell {
namespace {

StatusAnswer Answer(std::string url, uint64_t self, uint64_t leader, uint64_t committed = 10,
                    uint64_t applied = 10) {
  etcd::StatusResponse s;
  s.header.member_id = self;
  s.leader = leader;
  s.raft_index = committed;
  s.raft_applied_index = applied;
  return StatusAnswer{std::move(url), s};
}

StatusAnswer Silent(std::string url) { return StatusAnswer{std::move(url), std::nullopt}; }

TEST(MembershipRoute, TheLeaderGoesFirstAndIsSettledOnceItAppliedAllItCommitted) {
  auto route = RouteMembershipChange(
      {Answer("http://a", 1, 2), Silent("http://c"), Answer("http://b", 2, 2)}, 0);
  EXPECT_TRUE(route.settled);
  EXPECT_EQ(route.leader, 2u);
  EXPECT_EQ(route.urls, (std::vector<std::string>{"http://b", "http://a", "http://c"}));
}

TEST(MembershipRoute, ANewLeaderThatHasNotAppliedWhatItCommittedIsNotSettledUntilTheNextRound) {
  std::vector<StatusAnswer> answers = {Answer("http://a", 1, 2),
                                       Answer("http://b", 2, 2, /*committed=*/12, /*applied=*/11)};
  auto first = RouteMembershipChange(answers, 0);
  EXPECT_FALSE(first.settled);
  EXPECT_EQ(first.leader, 2u);
  EXPECT_EQ(first.urls.front(), "http://b");
  // The same leader a round later: it has had the time to apply its first entry.
  EXPECT_TRUE(RouteMembershipChange(answers, first.leader).settled);
  // A different leader than last round is new again.
  EXPECT_FALSE(RouteMembershipChange(answers, 3).settled);
}

TEST(MembershipRoute, NobodySeesALeaderAfterTheLeadersDeath) {
  auto route = RouteMembershipChange({Answer("http://a", 1, 0), Answer("http://b", 2, 0)}, 0);
  EXPECT_FALSE(route.settled);
  EXPECT_EQ(route.leader, 0u);
  EXPECT_EQ(route.urls, (std::vector<std::string>{"http://a", "http://b"}));
  EXPECT_FALSE(RouteMembershipChange({}, 0).settled);
  EXPECT_FALSE(RouteMembershipChange({Silent("http://a"), Silent("http://b")}, 0).settled);
}

TEST(MembershipRoute, FollowersStillNamingADeadLeaderDoNotSettleIt) {
  // Right after the leader's death the survivors still name it, round after round, until their
  // election timeout: only the leader's own answer settles the route.
  std::vector<StatusAnswer> answers = {Answer("http://a", 1, 3), Answer("http://b", 2, 3),
                                       Silent("http://c")};
  auto first = RouteMembershipChange(answers, 0);
  EXPECT_FALSE(first.settled);
  EXPECT_EQ(first.leader, 3u);
  EXPECT_FALSE(RouteMembershipChange(answers, 3).settled);
}

TEST(MembershipRoute, ALearnerNeverCountsAsTheLeader) {
  StatusAnswer learner = Answer("http://l", 4, 4);
  learner.status->is_learner = true;
  auto route = RouteMembershipChange({learner, Answer("http://a", 1, 0)}, 0);
  EXPECT_FALSE(route.settled);
}

}  // namespace
}  // namespace etcd_mesos::scheduler::shell
