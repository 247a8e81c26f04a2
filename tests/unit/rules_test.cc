// Properties of the scheduler's domain rules (src/scheduler/core/rules.h), each checked over many
// generated inputs (a fixed seed: a failure replays) or over every input where there are few.
#include <algorithm>
#include <random>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "mesos/task_state.h"
#include "scheduler/core/rules.h"

namespace etcd_mesos::scheduler {
namespace {

using namespace std::chrono_literals;

constexpr int kCases = 20'000;

std::vector<mesos::TaskState> AllTaskStates() {
  std::vector<mesos::TaskState> states;
  for (int i = mesos::TaskState_MIN; i <= mesos::TaskState_MAX; ++i) {
    if (mesos::TaskState_IsValid(i)) states.push_back(static_cast<mesos::TaskState>(i));
  }
  return states;
}

// Random members drawn from small pools, so that names, ids, hosts and ports collide often.
class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}

  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Coin() { return Int(0, 1) == 1; }
  uint64_t Id() { return Coin() ? 0 : static_cast<uint64_t>(Int(1, 6)); }

  Member AnyMember() {
    static const std::vector<mesos::TaskState> states = AllTaskStates();
    Member m;
    m.name = fmt::format("etcd-{}", Int(1, 12));
    m.host = fmt::format("10.0.0.{}", Int(1, 3));
    m.peer_port = static_cast<uint16_t>(31000 + Int(0, 3));
    m.client_port = static_cast<uint16_t>(m.peer_port + 1);
    m.member_id = Id();
    m.learner = Int(0, 3) == 0;
    m.task_state = states[Int(0, static_cast<int>(states.size()) - 1)];
    m.reachable = Coin();
    m.healthy = m.reachable && Coin();
    m.leader = m.reachable ? Id() : 0;
    m.raft_index = static_cast<uint64_t>(Int(0, 50));
    return m;
  }

  EtcdMember AnyEtcdMember() {
    EtcdMember em;
    em.id = static_cast<uint64_t>(Int(1, 6));
    em.name = Coin() ? "" : fmt::format("etcd-{}", Int(1, 12));
    em.peer_urls.push_back(fmt::format("http://10.0.0.{}:{}", Int(1, 3), 31000 + Int(0, 3)));
    if (Coin()) em.peer_urls.push_back("http://10.9.9.9:2380");
    em.is_learner = Coin();
    return em;
  }

  // What etcd lists for `m`, in any of the states of etcd's knowledge of it: named or not yet,
  // with its peer URL among others.
  EtcdMember ListingOf(const Member& m) {
    EtcdMember em;
    em.id = m.member_id != 0 ? m.member_id : static_cast<uint64_t>(Int(1, 6));
    em.name = Coin() ? m.name : "";
    em.peer_urls = {m.PeerUrl()};
    if (Coin()) em.peer_urls.insert(em.peer_urls.begin(), "http://10.9.9.9:2380");
    em.is_learner = Coin();
    return em;
  }

  // Members with distinct names (as the core's state is a map by name).
  std::map<std::string, Member> AnyMembers(int max) {
    std::map<std::string, Member> out;
    for (int i = Int(0, max); i > 0; --i) {
      Member m = AnyMember();
      out[m.name] = m;
    }
    return out;
  }

  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

// ---- Task states ------------------------------------------------------------------------------

TEST(TaskStateRules, MaybeAliveIsEverythingButProofOfTheEnd) {
  for (mesos::TaskState s : AllTaskStates()) {
    SCOPED_TRACE(mesos::TaskState_Name(s));
    EXPECT_NE(MaybeAlive(s), Gone(s));
    if (Uncertain(s)) {
      EXPECT_TRUE(MaybeAlive(s));
    }
    // LOST is terminal to Mesos, but reconciliation after a failover says it of live tasks.
    EXPECT_EQ(MaybeAlive(s), !mesos_facts::IsTerminalState(s) || s == mesos::TASK_LOST);
  }
  for (auto s : {mesos::TASK_STAGING, mesos::TASK_STARTING, mesos::TASK_RUNNING,
                 mesos::TASK_KILLING, mesos::TASK_UNREACHABLE, mesos::TASK_UNKNOWN}) {
    EXPECT_TRUE(MaybeAlive(s)) << mesos::TaskState_Name(s);
  }
  for (auto s : {mesos::TASK_FINISHED, mesos::TASK_FAILED, mesos::TASK_KILLED, mesos::TASK_ERROR,
                 mesos::TASK_DROPPED, mesos::TASK_GONE, mesos::TASK_GONE_BY_OPERATOR}) {
    EXPECT_TRUE(Gone(s)) << mesos::TaskState_Name(s);
  }
}

TEST(TaskStateRules, VotersAndLearnersPartitionTheMembersThatMayRun) {
  Gen gen(1);
  for (int i = 0; i < kCases; ++i) {
    Member m = gen.AnyMember();
    EXPECT_FALSE(MaybeVoter(m) && MaybeLearner(m));
    EXPECT_EQ(MaybeVoter(m) || MaybeLearner(m), MaybeAlive(m.task_state));
  }
}

// ---- Identity ---------------------------------------------------------------------------------

TEST(MatchRules, AMemberMatchesItsOwnListingWhateverEtcdKnowsOfIt) {
  Gen gen(2);
  for (int i = 0; i < kCases; ++i) {
    Member m = gen.AnyMember();
    EtcdMember em = gen.ListingOf(m);
    EXPECT_TRUE(Matches(m, em)) << m.name << " " << m.member_id << " vs '" << em.name << "' "
                                << em.id;
  }
}

TEST(MatchRules, KnownIdsDecideAlone) {
  Gen gen(3);
  for (int i = 0; i < kCases; ++i) {
    Member m = gen.AnyMember();
    EtcdMember em = gen.AnyEtcdMember();
    if (m.member_id == 0) continue;
    EXPECT_EQ(Matches(m, em), m.member_id == em.id);
    if (m.member_id == em.id) {
      EXPECT_EQ(MatchOf(m, em), MatchStrength::kId);
    }
  }
}

TEST(MatchRules, APeerUrlNeverOverridesANameOrAnId) {
  Gen gen(4);
  for (int i = 0; i < kCases; ++i) {
    Member m = gen.AnyMember();
    EtcdMember em = gen.AnyEtcdMember();
    if (MatchOf(m, em) != MatchStrength::kPeerUrl) continue;
    // Only an unnamed listing of a member whose id we do not know is matched by its URL.
    EXPECT_EQ(m.member_id, 0u);
    EXPECT_TRUE(em.name.empty());
  }
}

TEST(MatchRules, ANamedListingOfAnotherNameIsNeverOurs) {
  Gen gen(5);
  for (int i = 0; i < kCases; ++i) {
    Member m = gen.AnyMember();
    EtcdMember em = gen.AnyEtcdMember();
    bool ids_agree = m.member_id != 0 && m.member_id == em.id;
    if (!em.name.empty() && em.name != m.name && !ids_agree) {
      EXPECT_FALSE(Matches(m, em));
    }
  }
}

// Matching identifies: it is blind to what describes a member (its state, its role, its probe
// answers) and to the order of etcd's peer URLs.
TEST(MatchRules, OnlyIdentityMatters) {
  Gen gen(6);
  for (int i = 0; i < kCases; ++i) {
    Member m = gen.AnyMember();
    EtcdMember em = gen.Coin() ? gen.ListingOf(m) : gen.AnyEtcdMember();
    MatchStrength before = MatchOf(m, em);
    Member described = gen.AnyMember();
    described.name = m.name;
    described.host = m.host;
    described.peer_port = m.peer_port;
    described.member_id = m.member_id;
    EtcdMember reordered = em;
    std::reverse(reordered.peer_urls.begin(), reordered.peer_urls.end());
    reordered.is_learner = !em.is_learner;
    EXPECT_EQ(MatchOf(described, reordered), before);
  }
}

TEST(MatchRules, OursForIsTheStrongestMatchAndOneThatMatches) {
  Gen gen(7);
  for (int i = 0; i < kCases; ++i) {
    auto members = gen.AnyMembers(5);
    EtcdMember em = gen.AnyEtcdMember();
    const Member* ours = OursFor(members, em);
    bool any = std::any_of(members.begin(), members.end(),
                           [&](const auto& kv) { return Matches(kv.second, em); });
    ASSERT_EQ(ours != nullptr, any);
    if (ours == nullptr) continue;
    for (const auto& [name, m] : members) {
      EXPECT_LE(static_cast<int>(MatchOf(m, em)), static_cast<int>(MatchOf(*ours, em)));
    }
    EXPECT_EQ(InEtcd(*ours, {em}), true);
  }
}

// ---- Leadership and quorum --------------------------------------------------------------------

TEST(QuorumRules, LeaderVotesCountEachReachableVoterOnce) {
  Gen gen(8);
  for (int i = 0; i < kCases; ++i) {
    auto members = gen.AnyMembers(7);
    LeaderVotes v = CountLeaderVotes(members);
    std::map<uint64_t, int> brute;
    int following = 0;
    for (const auto& [name, m] : members) {
      if (m.reachable && !m.learner && m.leader != 0) {
        ++brute[m.leader];
        ++following;
      }
    }
    EXPECT_EQ(v.following, following);
    EXPECT_LE(v.votes, v.following);
    if (brute.empty()) {
      EXPECT_EQ(v.leader, 0u);
      EXPECT_EQ(v.votes, 0);
      continue;
    }
    EXPECT_EQ(v.votes, brute[v.leader]);
    for (const auto& [leader, n] : brute) {
      EXPECT_TRUE(n < v.votes || (n == v.votes && leader >= v.leader));
    }
  }
}

TEST(QuorumRules, AgreementIsAMajorityOfTheVoters) {
  for (int voters = 0; voters <= 15; ++voters) {
    for (int alive = 0; alive <= voters; ++alive) {
      EXPECT_EQ(Agreed(alive, voters), 2 * alive > voters && voters > 0) << alive << "/" << voters;
    }
  }
}

// The safety property: a removal is allowed only if the voters that stay and are alive are a
// quorum (a strict majority) of the new, smaller membership; and whenever they are, it is.
TEST(QuorumRules, RemovalKeepsQuorumNeverLeavesLessThanAQuorumOfTheNewSize) {
  for (int voters = 1; voters <= 15; ++voters) {
    for (int alive = 0; alive <= voters - 1; ++alive) {
      int new_size = voters - 1;
      bool majority_stays = 2 * alive > new_size && alive >= 1;
      EXPECT_EQ(RemovalKeepsQuorum(voters, alive), majority_stays) << alive << "/" << voters;
      if (RemovalKeepsQuorum(voters, alive)) {
        EXPECT_GE(alive, Quorum(new_size));
        EXPECT_TRUE(RemovalKeepsQuorum(voters, alive + 1));  // more alive never hurts
      }
    }
  }
}

TEST(QuorumRules, ABareQuorumIsOneLossFromLosingIt) {
  for (int voters = 1; voters <= 15; ++voters) {
    for (int alive = Quorum(voters); alive <= voters; ++alive) {
      EXPECT_EQ(BareQuorum(voters, alive), !Agreed(alive - 1, voters)) << alive << "/" << voters;
    }
  }
}

TEST(QuorumRules, CouldFormQuorumIsAMajority) {
  for (int voters = 0; voters <= 15; ++voters) {
    for (int members = 0; members <= 15; ++members) {
      EXPECT_EQ(CouldFormQuorum(members, voters), 2 * members > voters);
    }
  }
}

// ---- Health of one member ---------------------------------------------------------------------

TEST(DeathRules, WhyDead) {
  CoreConfig config;
  Gen gen(9);
  const Time t0{};
  for (int i = 0; i < kCases; ++i) {
    Member m = gen.AnyMember();
    Time now = t0 + Millis(gen.Int(0, 300'000));
    if (gen.Coin()) m.last_reachable = t0 + Millis(gen.Int(0, 300'000));
    if (m.learner && gen.Coin()) m.learner_since = t0 + Millis(gen.Int(0, 300'000));
    auto why = WhyDead(&m, now, config);
    if (Gone(m.task_state)) {
      EXPECT_TRUE(why.has_value());
    }
    // A voter whose task runs, or that answers, is never dead: removing it would cost a vote.
    if (!m.learner && (m.task_state == mesos::TASK_RUNNING || m.reachable)) {
      if (!Gone(m.task_state)) {
        EXPECT_FALSE(why.has_value()) << *why;
      }
    }
    // Uncertain and silent for less than the grace: not yet.
    if (Uncertain(m.task_state) && !m.learner && m.last_reachable &&
        now - *m.last_reachable < config.dead_member_grace) {
      EXPECT_FALSE(why.has_value());
    }
    if (m.learner && MaybeAlive(m.task_state) && m.learner_since &&
        now - *m.learner_since >= config.learner_timeout) {
      EXPECT_TRUE(why.has_value());
    }
  }
  EXPECT_EQ(WhyDead(nullptr, t0, config), "no task of ours runs it");
}

TEST(SyncRules, InSyncIsWithinTenPercentOfTheLeader) {
  Gen gen(10);
  for (int i = 0; i < kCases; ++i) {
    uint64_t leader = static_cast<uint64_t>(gen.Int(0, 100'000));
    uint64_t learner = static_cast<uint64_t>(gen.Int(0, 110'000));
    EXPECT_EQ(InSync(learner, leader), leader == 0 || learner * 10 >= leader * 9)
        << learner << " of " << leader;
    if (InSync(learner, leader)) {
      EXPECT_TRUE(InSync(learner + 1, leader));  // monotone
    }
  }
  std::uniform_int_distribution<uint64_t> any;
  for (int i = 0; i < kCases; ++i) {  // near the top of uint64, where the products overflow
    uint64_t leader = any(gen.rng()), learner = any(gen.rng());
    long double exact =
        static_cast<long double>(learner) * 10 - static_cast<long double>(leader) * 9;
    if (exact > -1e6L && exact < 1e6L) continue;  // too close to call in long double
    EXPECT_EQ(InSync(learner, leader), exact >= 0) << learner << " of " << leader;
  }
  EXPECT_TRUE(InSync(0, 0));
  EXPECT_TRUE(InSync(90, 100));
  EXPECT_FALSE(InSync(89, 100));
}

// ---- Reseed -----------------------------------------------------------------------------------

TEST(ReseedRules, RanksBeforeIsAStrictTotalOrder) {
  Gen gen(11);
  for (int i = 0; i < kCases; ++i) {
    Member a = gen.AnyMember(), b = gen.AnyMember(), c = gen.AnyMember();
    EXPECT_FALSE(RanksBefore(a, a));
    if (a.name != b.name) {
      EXPECT_NE(RanksBefore(a, b), RanksBefore(b, a));  // total, asymmetric
    }
    if (RanksBefore(a, b) && RanksBefore(b, c)) {
      EXPECT_TRUE(RanksBefore(a, c));
    }
    if (a.raft_index > b.raft_index) {
      EXPECT_TRUE(RanksBefore(a, b));  // the most data first
    }
  }
}

TEST(ReseedRules, RankSurvivorsIsEveryAnsweringSurvivorHighestRaftIndexFirst) {
  Gen gen(12);
  for (int i = 0; i < kCases / 10; ++i) {
    auto members = gen.AnyMembers(7);
    auto ranked = RankSurvivors(members);
    size_t expected = std::count_if(members.begin(), members.end(), [](const auto& kv) {
      return kv.second.reachable && MaybeAlive(kv.second.task_state);
    });
    EXPECT_EQ(ranked.size(), expected);
    for (size_t k = 1; k < ranked.size(); ++k) {
      EXPECT_GE(ranked[k - 1]->raft_index, ranked[k]->raft_index);
      EXPECT_TRUE(RanksBefore(*ranked[k - 1], *ranked[k]));
    }
    for (const Member* m : ranked) EXPECT_TRUE(m->reachable && MaybeAlive(m->task_state));
  }
}

TEST(Rules, TheReseedWindowNamesTheRevisionsOnlyTheOthersHad) {
  EXPECT_EQ(RevisionsLostByReseed(Revisions{0, 0, 0}), 0u);
  EXPECT_EQ(RevisionsLostByReseed(Revisions{50, 50, 50}), 0u);
  EXPECT_EQ(RevisionsLostByReseed(Revisions{50, 50, 70}), 20u);
  // A highest below the survivor's cannot lose anything (never negative).
  EXPECT_EQ(RevisionsLostByReseed(Revisions{50, 80, 70}), 0u);
  std::string lost = DescribeReseedWindow(Revisions{50, 50, 70});
  EXPECT_NE(lost.find("up to revision 50"), std::string::npos) << lost;
  EXPECT_NE(lost.find("revisions 51..70 (20)"), std::string::npos) << lost;
  EXPECT_NE(lost.find("after the last probe"), std::string::npos) << lost;
  std::string none = DescribeReseedWindow(Revisions{70, 70, 70});
  EXPECT_NE(none.find("the highest any member reported"), std::string::npos) << none;
  EXPECT_EQ(none.find(".."), std::string::npos) << none;
}

TEST(Rules, EtcdVersionChangesGoOneMinorVersionAtATimeAndNeverBack) {
  EXPECT_FALSE(RefusedVersionChange("3.4.23", "3.4.23"));
  EXPECT_FALSE(RefusedVersionChange("3.4.23", "3.4.27")) << "a patch upgrade";
  EXPECT_FALSE(RefusedVersionChange("3.4.23", "3.4.20")) << "patch versions mix either way";
  EXPECT_FALSE(RefusedVersionChange("3.4.23", "3.5.0")) << "the next minor version";
  EXPECT_FALSE(RefusedVersionChange("v3.4.23", "3.5.9-rc.0"));
  auto skip = RefusedVersionChange("3.4.23", "3.6.1");
  ASSERT_TRUE(skip);
  EXPECT_NE(skip->find("one minor version at a time; roll out 3.5 first"), std::string::npos)
      << *skip;
  auto down = RefusedVersionChange("3.5.0", "3.4.23");
  ASSERT_TRUE(down);
  EXPECT_NE(down->find("downgrade"), std::string::npos) << *down;
  EXPECT_TRUE(RefusedVersionChange("3.4.23", "4.0.0"));
  EXPECT_FALSE(RefusedVersionChange("", "3.6.0")) << "unknown: never refused";
  EXPECT_FALSE(RefusedVersionChange("3.4.23", "latest"));
}

// ---- Certificates ------------------------------------------------------------------------------

// Due strictly within the window, expired certificates included; never for a member without TLS,
// without a recorded expiry, or before the wall clock is known.
TEST(CertificateRules, RenewalIsDueWithinTheWindowOfATlsMembersExpiry) {
  Member m;
  m.tls = true;
  m.cert_not_after = 1'000'000;
  const Millis window = 10s;
  EXPECT_FALSE(CertificateRenewalDue(m, 1'000'000 - 10, window)) << "exactly the window left";
  EXPECT_TRUE(CertificateRenewalDue(m, 1'000'000 - 9, window));
  EXPECT_TRUE(CertificateRenewalDue(m, 2'000'000, window)) << "expired";
  EXPECT_FALSE(CertificateRenewalDue(m, 0, window)) << "no wall clock yet";
  Member plain = m;
  plain.tls = false;
  EXPECT_FALSE(CertificateRenewalDue(plain, 999'999, window));
  Member unissued = m;
  unissued.cert_not_after = 0;
  EXPECT_FALSE(CertificateRenewalDue(unissued, 999'999, window));
}

// The earliest expiry among the TLS members whose task may still run; a gone member's
// certificates and a member not yet issued any do not count.
TEST(CertificateRules, TheEarliestExpiryIsAmongMembersThatMayRun) {
  std::map<std::string, Member> members;
  EXPECT_FALSE(EarliestCertificateExpiry(members).tls);
  auto add = [&](std::string name, mesos::TaskState state, int64_t not_after) {
    Member& m = members[name];
    m.name = name;
    m.tls = true;
    m.task_state = state;
    m.cert_not_after = not_after;
  };
  add("etcd-1", mesos::TASK_RUNNING, 300);
  add("etcd-2", mesos::TASK_FAILED, 100);  // gone: its certificates no longer matter
  add("etcd-3", mesos::TASK_STAGING, 0);   // not issued yet
  add("etcd-4", mesos::TASK_UNREACHABLE, 200);
  CertificateExpiry expiry = EarliestCertificateExpiry(members);
  EXPECT_TRUE(expiry.tls);
  EXPECT_EQ(expiry.earliest, 200);
  EXPECT_EQ(expiry.member, "etcd-4");
  members.erase("etcd-4");
  members.erase("etcd-1");
  expiry = EarliestCertificateExpiry(members);
  EXPECT_TRUE(expiry.tls) << "etcd-3 serves TLS";
  EXPECT_EQ(expiry.earliest, 0);
  EXPECT_EQ(expiry.member, "");
}

}  // namespace
}  // namespace etcd_mesos::scheduler
