// The etcd membership contract, run against a real three-member etcd 3.4 (through our etcd client)
// and against the simulator's model of etcd's membership rules (sim/etcd_model.h). The simulator
// judges the scheduler core against that model, so the model must answer what etcd answers: the
// same changes succeed, the same ones are refused, with the same error codes.
//
// Each case starts from three running voters. A target may answer kUnavailable ("retry later":
// real etcd refuses changes for a few seconds after a member connects); the helpers retry those
// within a deadline, so the cases see only final answers. Real etcd needs time for a learner to
// catch up and for the leader to notice a dead member; the model advances one raft step per
// retry, so both are polled the same way.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "etcd/client.h"
#include "sim/etcd_model.h"
#include "testing/etcd_server.h"
#include "testing/tempdir.h"

namespace etcd_mesos {
namespace {

using namespace std::chrono_literals;

struct ListedMember {
  uint64_t id = 0;
  std::string peer_url;
  bool learner = false;
};

// One etcd cluster under test: three voters v0..v2, and up to two spare members s0, s1 that can
// be added as learners and started.
class MembershipTarget {
 public:
  virtual ~MembershipTarget() = default;
  virtual Status Prepare() = 0;
  virtual Result<std::vector<ListedMember>> List() = 0;
  virtual Result<uint64_t> AddLearner(const std::string& peer_url) = 0;
  virtual Status Promote(uint64_t id) = 0;
  virtual Status Remove(uint64_t id) = 0;
  // etcd's MoveLeader, sent to the leader; the leader's id (0 where the target has none).
  virtual Status MoveLeader(uint64_t id) = 0;
  virtual uint64_t Leader() = 0;
  virtual std::string VoterPeerUrl(int i) = 0;
  virtual std::string SparePeerUrl(int i) = 0;
  // Starts spare i, already added with `id`, to join the cluster.
  virtual Status StartSpare(int i, uint64_t id) = 0;
  // Kills voter i (not voter 0, which the client talks to).
  virtual Status KillVoter(int i) = 0;
  // Starts killed voter i again on its data; returns once it answers.
  virtual Status RestartVoter(int i) = 0;
  // Lets time pass: a raft step in the model, a short wait for real etcd.
  virtual void Wait() = 0;
};

class RealEtcd : public MembershipTarget {
 public:
  Status Prepare() override {
    for (int i = 0; i < 3; ++i) {
      voters_.push_back(std::make_unique<test::EtcdServer>(
          test::EtcdServer::Options{.name = fmt::format("v{}", i), .ip = "127.0.0.1"},
          dir_.path()));
    }
    for (int i = 0; i < 2; ++i) {
      spares_.push_back(std::make_unique<test::EtcdServer>(
          test::EtcdServer::Options{.name = fmt::format("s{}", i), .ip = "127.0.0.1"},
          dir_.path()));
    }
    std::vector<const test::EtcdServer*> all;
    for (const auto& v : voters_) all.push_back(v.get());
    initial_cluster_ = test::EtcdServer::InitialCluster(all);
    for (auto& v : voters_) {
      if (auto s = v->Launch(initial_cluster_, true); !s.ok()) return s;
    }
    for (auto& v : voters_) {
      if (auto s = v->WaitUntilHealthy(30s); !s.ok()) return s;
    }
    client_ = std::make_unique<etcd::Client>(io_, voters_[0]->client_endpoint());
    return OkStatus();
  }
  Result<std::vector<ListedMember>> List() override {
    auto r = etcd::Await<etcd::MemberListResponse>(io_, [&](auto cb) { client_->MemberList(cb); });
    if (!r.ok()) return r.error();
    std::vector<ListedMember> out;
    for (const auto& m : r->members) {
      out.push_back({m.id, m.peer_urls.empty() ? "" : m.peer_urls.front(), m.is_learner});
    }
    return out;
  }
  Result<uint64_t> AddLearner(const std::string& peer_url) override {
    auto r = etcd::Await<etcd::MemberAddResponse>(
        io_, [&](auto cb) { client_->MemberAdd({peer_url}, true, cb); });
    if (!r.ok()) return r.error();
    return r->member.id;
  }
  Status Promote(uint64_t id) override {
    auto r = etcd::Await<etcd::MemberListResponse>(
        io_, [&](auto cb) { client_->MemberPromote(id, cb); });
    return r.ok() ? OkStatus() : Status(r.error());
  }
  Status Remove(uint64_t id) override {
    auto r =
        etcd::Await<etcd::MemberListResponse>(io_, [&](auto cb) { client_->MemberRemove(id, cb); });
    return r.ok() ? OkStatus() : Status(r.error());
  }
  Status MoveLeader(uint64_t id) override {
    for (auto& v : voters_) {
      etcd::Client client(io_, v->client_endpoint());
      auto status = etcd::Await<etcd::StatusResponse>(io_, [&](auto cb) { client.Status(cb); });
      if (!status.ok() || status->leader != status->header.member_id) continue;
      auto r = etcd::Await<etcd::ResponseHeader>(io_, [&](auto cb) { client.MoveLeader(id, cb); });
      return r.ok() ? OkStatus() : Status(r.error());
    }
    return MakeError(ErrorCode::kUnavailable, "no voter says it leads");
  }
  uint64_t Leader() override {
    etcd::Client client(io_, voters_[0]->client_endpoint());
    auto status = etcd::Await<etcd::StatusResponse>(io_, [&](auto cb) { client.Status(cb); });
    return status.ok() ? status->leader : 0;
  }
  std::string VoterPeerUrl(int i) override { return voters_[i]->peer_url(); }
  std::string SparePeerUrl(int i) override { return spares_[i]->peer_url(); }
  Status StartSpare(int i, uint64_t) override {
    std::string cluster = initial_cluster_ + "," + spares_[i]->config().InitialClusterEntry();
    return spares_[i]->JoinExisting(cluster);
  }
  Status KillVoter(int i) override {
    voters_[i]->Kill();
    return OkStatus();
  }
  Status RestartVoter(int i) override {
    if (auto s = voters_[i]->Launch(initial_cluster_, false); !s.ok()) return s;
    return voters_[i]->WaitUntilAnswering(30s);
  }
  void Wait() override { std::this_thread::sleep_for(200ms); }

 private:
  test::TempDir dir_{"em-membership"};
  boost::asio::io_context io_;
  std::vector<std::unique_ptr<test::EtcdServer>> voters_;
  std::vector<std::unique_ptr<test::EtcdServer>> spares_;
  std::string initial_cluster_;
  std::unique_ptr<etcd::Client> client_;
};

class ModelEtcd : public MembershipTarget {
 public:
  Status Prepare() override {
    for (const auto& m : model_.List()) voters_.push_back(m);  // as first listed, like v0..v2
    return OkStatus();
  }
  Result<std::vector<ListedMember>> List() override {
    std::vector<ListedMember> out;
    for (const auto& m : model_.List()) out.push_back({m.id, m.peer_url, m.learner});
    return out;
  }
  Result<uint64_t> AddLearner(const std::string& peer_url) override {
    return model_.AddLearner(peer_url);
  }
  Status Promote(uint64_t id) override { return model_.Promote(id); }
  Status Remove(uint64_t id) override { return model_.Remove(id); }
  Status MoveLeader(uint64_t id) override { return model_.MoveLeader(id); }
  uint64_t Leader() override { return 0; }
  std::string VoterPeerUrl(int i) override { return voters_[i].peer_url; }
  std::string SparePeerUrl(int i) override { return fmt::format("http://10.0.1.{}:2380", i + 1); }
  Status StartSpare(int i, uint64_t id) override { return model_.Start(id, fmt::format("s{}", i)); }
  Status KillVoter(int i) override { return model_.Stop(voters_[i].id); }
  Status RestartVoter(int i) override { return model_.Start(voters_[i].id, voters_[i].name); }
  void Wait() override { model_.Step(); }

 private:
  sim::MembershipModel model_{3};
  std::vector<sim::ModelMember> voters_;
};

struct Implementation {
  std::string name;
  std::function<std::unique_ptr<MembershipTarget>()> make;
};
std::ostream& operator<<(std::ostream& os, const Implementation& impl) { return os << impl.name; }

class MembershipContract : public ::testing::TestWithParam<Implementation> {
 protected:
  void SetUp() override {
    target_ = GetParam().make();
    auto s = target_->Prepare();
    ASSERT_TRUE(s.ok()) << s.error().ToString();
  }

  // Retries "retry later" answers for a while, letting time pass; answers the first final one.
  template <typename F>
  auto Final(F op) -> decltype(op()) {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (true) {
      auto r = op();
      if (r.ok() || r.error().code != ErrorCode::kUnavailable ||
          std::chrono::steady_clock::now() > deadline) {
        return r;
      }
      target_->Wait();
    }
  }
  // Repeats `op` (letting time pass) until it answers `want` (kOk when nullopt), for up to 30 s.
  Status Eventually(const std::function<Status()>& op, std::optional<ErrorCode> want) {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (true) {
      Status s = Final(op);
      bool got = want ? (!s.ok() && s.error().code == *want) : s.ok();
      if (got || std::chrono::steady_clock::now() > deadline) return s;
      target_->Wait();
    }
  }
  std::vector<ListedMember> Members() {
    auto r = Final([&] { return target_->List(); });
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? *r : std::vector<ListedMember>{};
  }
  std::optional<ListedMember> Find(const std::string& peer_url) {
    for (const auto& m : Members()) {
      if (m.peer_url == peer_url) return m;
    }
    return std::nullopt;
  }
  uint64_t AddLearner(const std::string& peer_url) {
    auto r = Final([&] { return target_->AddLearner(peer_url); });
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? *r : 0;
  }
  static void ExpectCode(const Status& s, ErrorCode want) {
    if (s.ok()) {
      ADD_FAILURE() << "succeeded; want " << ErrorCodeName(want);
    } else {
      EXPECT_EQ(s.error().code, want) << s.error().ToString();
    }
  }

  std::unique_ptr<MembershipTarget> target_;
};

TEST_P(MembershipContract, MemberListShowsTheThreeVoters) {
  auto members = Members();
  ASSERT_EQ(members.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    auto m = Find(target_->VoterPeerUrl(i));
    ASSERT_TRUE(m) << target_->VoterPeerUrl(i);
    EXPECT_FALSE(m->learner);
    EXPECT_NE(m->id, 0u);
  }
}

TEST_P(MembershipContract, AnAddedLearnerIsListedAsALearner) {
  uint64_t id = AddLearner(target_->SparePeerUrl(0));
  ASSERT_NE(id, 0u);
  auto m = Find(target_->SparePeerUrl(0));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->id, id);
  EXPECT_TRUE(m->learner);
  EXPECT_EQ(Members().size(), 4u);
}

TEST_P(MembershipContract, PromotionIsRefusedUntilTheLearnerIsInSyncThenSucceeds) {
  uint64_t id = AddLearner(target_->SparePeerUrl(0));
  ASSERT_NE(id, 0u);
  // Not started: it has none of the log.
  ExpectCode(Final([&] { return target_->Promote(id); }), ErrorCode::kRefused);
  auto started = target_->StartSpare(0, id);
  ASSERT_TRUE(started.ok()) << started.error().ToString();
  auto promoted = Eventually([&] { return target_->Promote(id); }, std::nullopt);
  ASSERT_TRUE(promoted.ok()) << promoted.error().ToString();
  // The member asked may apply the change a moment after the leader answered.
  auto m = Find(target_->SparePeerUrl(0));
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       m && m->learner && std::chrono::steady_clock::now() < deadline;
       m = Find(target_->SparePeerUrl(0))) {
    target_->Wait();
  }
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->learner);
  EXPECT_EQ(Members().size(), 4u);
}

TEST_P(MembershipContract, OnlyOneLearnerAtATime) {
  ASSERT_NE(AddLearner(target_->SparePeerUrl(0)), 0u);
  auto second = Final([&] { return target_->AddLearner(target_->SparePeerUrl(1)); });
  ExpectCode(second.ok() ? OkStatus() : Status(second.error()), ErrorCode::kRefused);
  EXPECT_FALSE(Find(target_->SparePeerUrl(1)));
}

TEST_P(MembershipContract, APeerUrlIsListedOnlyOnce) {
  auto again = Final([&] { return target_->AddLearner(target_->VoterPeerUrl(1)); });
  ExpectCode(again.ok() ? OkStatus() : Status(again.error()), ErrorCode::kRefused);
  EXPECT_EQ(Members().size(), 3u);
}

TEST_P(MembershipContract, AVoterCannotBePromoted) {
  auto voter = Find(target_->VoterPeerUrl(1));
  ASSERT_TRUE(voter);
  ExpectCode(Final([&] { return target_->Promote(voter->id); }), ErrorCode::kRefused);
}

TEST_P(MembershipContract, RemovalOrPromotionOfAnUnknownIdIsNotFound) {
  uint64_t unknown = 0x5eed;
  for (const auto& m : Members()) ASSERT_NE(m.id, unknown);
  ExpectCode(Final([&] { return target_->Remove(unknown); }), ErrorCode::kNotFound);
  ExpectCode(Final([&] { return target_->Promote(unknown); }), ErrorCode::kNotFound);
  EXPECT_EQ(Members().size(), 3u);
}

TEST_P(MembershipContract, LeadershipMovesOnlyToAVoter) {
  ExpectCode(Final([&] { return target_->MoveLeader(0x7777); }), ErrorCode::kRefused);
  uint64_t learner = AddLearner(target_->SparePeerUrl(0));
  ASSERT_NE(learner, 0u);
  ExpectCode(Final([&] { return target_->MoveLeader(learner); }), ErrorCode::kRefused);
  uint64_t leader = target_->Leader();
  uint64_t successor = 0;
  for (const auto& m : Members()) {
    if (!m.learner && m.id != leader) successor = m.id;
  }
  ASSERT_NE(successor, 0u);
  Status moved = Final([&] { return target_->MoveLeader(successor); });
  EXPECT_TRUE(moved.ok()) << moved.error().ToString();
  if (leader != 0) {  // the real cluster: the successor leads now
    uint64_t now_leading = 0;
    for (int i = 0; i < 50 && now_leading != successor; ++i) {
      now_leading = target_->Leader();
      if (now_leading != successor) target_->Wait();
    }
    EXPECT_EQ(now_leading, successor);
  }
}

TEST_P(MembershipContract, ALearnerAndAVoterCanBeRemoved) {
  uint64_t id = AddLearner(target_->SparePeerUrl(0));
  ASSERT_NE(id, 0u);
  auto removed = Final([&] { return target_->Remove(id); });
  ASSERT_TRUE(removed.ok()) << removed.error().ToString();
  EXPECT_FALSE(Find(target_->SparePeerUrl(0)));
  auto voter = Find(target_->VoterPeerUrl(2));
  ASSERT_TRUE(voter);
  auto gone = Final([&] { return target_->Remove(voter->id); });
  ASSERT_TRUE(gone.ok()) << gone.error().ToString();
  auto members = Members();
  EXPECT_EQ(members.size(), 2u);
  EXPECT_FALSE(Find(target_->VoterPeerUrl(2)));
  // A second learner may come once the first is gone.
  EXPECT_NE(AddLearner(target_->SparePeerUrl(1)), 0u);
}

TEST_P(MembershipContract, RemovingAVoterThatWouldLoseQuorumIsRefusedAsUnhealthy) {
  // Voter 2 dies: removing voter 1 would leave voters 0 and 2, of which only 0 runs. etcd 3.4
  // refuses with "unhealthy cluster", which is gRPC Unavailable: our kUnavailable, although
  // retrying helps only once voter 2 is back.
  ASSERT_TRUE(target_->KillVoter(2).ok());
  for (int i = 0; i < 10; ++i) target_->Wait();  // the leader notices the dead peer
  auto voter = Find(target_->VoterPeerUrl(1));
  ASSERT_TRUE(voter);
  Status refused = target_->Remove(voter->id);
  ExpectCode(refused, ErrorCode::kUnavailable);
  if (!refused.ok()) {
    EXPECT_NE(refused.error().message.find("unhealthy cluster"), std::string::npos)
        << refused.error().ToString();
  }
  EXPECT_EQ(Members().size(), 3u);
  // Removing the dead one is safe: two voters left, both running.
  auto dead = Find(target_->VoterPeerUrl(2));
  ASSERT_TRUE(dead);
  auto removed = Final([&] { return target_->Remove(dead->id); });
  ASSERT_TRUE(removed.ok()) << removed.error().ToString();
  EXPECT_EQ(Members().size(), 2u);
}

// etcd 3.4 adds no member (not even a learner) unless the member asked has been connected to
// every voter for 5 s ("unhealthy cluster", gRPC Unavailable). Seen on real Mesos: a learner add
// right after a promotion failed so, twice in one reseed.
TEST_P(MembershipContract, NoMemberIsAddedWhileAVoterIsDown) {
  ASSERT_TRUE(target_->KillVoter(2).ok());
  for (int i = 0; i < 10; ++i) target_->Wait();  // the connection to it is gone
  auto refused = target_->AddLearner(target_->SparePeerUrl(0));
  ExpectCode(refused.ok() ? OkStatus() : Status(refused.error()), ErrorCode::kUnavailable);
  if (!refused.ok()) {
    EXPECT_NE(refused.error().message.find("unhealthy cluster"), std::string::npos)
        << refused.error().ToString();
  }
  EXPECT_FALSE(Find(target_->SparePeerUrl(0)));
}

TEST_P(MembershipContract, NoMemberIsAddedUntilARestartedVoterHasBeenConnectedFor5s) {
  // Long after the cluster formed, an add is taken at once.
  for (int i = 0; i < 30; ++i) target_->Wait();
  uint64_t first = AddLearner(target_->SparePeerUrl(0));
  ASSERT_NE(first, 0u);
  ASSERT_TRUE(Final([&] { return target_->Remove(first); }).ok());
  ASSERT_TRUE(target_->KillVoter(2).ok());
  for (int i = 0; i < 10; ++i) target_->Wait();
  ASSERT_TRUE(target_->RestartVoter(2).ok());
  auto refused = target_->AddLearner(target_->SparePeerUrl(1));
  ExpectCode(refused.ok() ? OkStatus() : Status(refused.error()), ErrorCode::kUnavailable);
  // The same add, asked again, is taken once the voter has been back for 5 s.
  EXPECT_NE(AddLearner(target_->SparePeerUrl(1)), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Etcd, MembershipContract,
    ::testing::Values(Implementation{"Real", [] { return std::make_unique<RealEtcd>(); }},
                      Implementation{"Simulator", [] { return std::make_unique<ModelEtcd>(); }}),
    [](const ::testing::TestParamInfo<Implementation>& info) { return info.param.name; });

}  // namespace
}  // namespace etcd_mesos
