// etcd::Client against real etcd 3.4 members on 127.0.0.x loopback addresses, and against a small
// HTTP server that plays a broken etcd for the snapshot stream.
#include <openssl/sha.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "common/encoding.h"
#include "etcd/client.h"
#include "net/http.h"
#include "testing/etcd_server.h"
#include "testing/ports.h"
#include "testing/process.h"
#include "testing/tempdir.h"

namespace etcd_mesos::etcd {
namespace {

using test::EtcdServer;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

class EtcdClientTest : public ::testing::Test {
 protected:
  std::unique_ptr<EtcdServer> Server(std::string name, std::string ip) {
    return std::make_unique<EtcdServer>(EtcdServer::Options{.name = name, .ip = ip}, dir_.path());
  }

  Client ClientFor(const EtcdServer& server) { return Client(io_, server.client_endpoint()); }

  // Each helper runs one request to completion on io_.
  Result<MemberListResponse> List(Client& c) {
    return Await<MemberListResponse>(io_, [&](auto cb) { c.MemberList(cb); });
  }
  Result<MemberAddResponse> Add(Client& c, const std::string& peer_url, bool learner) {
    return Await<MemberAddResponse>(io_, [&](auto cb) { c.MemberAdd({peer_url}, learner, cb); });
  }
  Result<MemberListResponse> Promote(Client& c, uint64_t id) {
    return Await<MemberListResponse>(io_, [&](auto cb) { c.MemberPromote(id, cb); });
  }
  Result<MemberListResponse> Remove(Client& c, uint64_t id) {
    return Await<MemberListResponse>(io_, [&](auto cb) { c.MemberRemove(id, cb); });
  }
  Result<StatusResponse> StatusOf(Client& c) {
    return Await<StatusResponse>(io_, [&](auto cb) { c.Status(cb); });
  }
  Result<HealthResponse> HealthOf(Client& c) {
    return Await<HealthResponse>(io_, [&](auto cb) { c.Health(cb); });
  }
  Result<PutResponse> Put(Client& c, const std::string& k, const std::string& v) {
    return Await<PutResponse>(io_, [&](auto cb) { c.Put(k, v, cb); });
  }
  Result<RangeResponse> Get(Client& c, const std::string& k, bool serializable = false) {
    return Await<RangeResponse>(io_, [&](auto cb) { c.Get(k, serializable, cb); });
  }
  Result<TxnResponse> Cas(Client& c, const std::string& k, std::optional<std::string> expected,
                          const std::string& v) {
    return Await<TxnResponse>(io_, [&](auto cb) { c.CompareAndSwap(k, expected, v, cb); });
  }
  Result<SnapshotInfo> Snapshot(Client& c, const std::filesystem::path& path) {
    return Await<SnapshotInfo>(io_, [&](auto cb) { c.Snapshot(path, cb); });
  }

  // Retries `op` while it fails with kUnavailable (the leader's 5 s rule after a member joins).
  template <typename T>
  Result<T> RetryUnavailable(const std::function<Result<T>()>& op,
                             std::chrono::seconds limit = std::chrono::seconds(30)) {
    std::optional<Result<T>> r;
    test::WaitFor(
        [&] {
          r = op();
          return r->ok() || !r->error().retryable();
        },
        limit);
    return std::move(*r);
  }

  boost::asio::io_context io_;
  test::TempDir dir_{"em-etcd"};
};

TEST_F(EtcdClientTest, OneMemberListStatusHealthKvAlarmsDefragment) {
  auto n1 = Server("n1", "127.0.0.2");
  ASSERT_TRUE(n1->StartNewCluster().ok()) << n1->LogTail();
  Client c = ClientFor(*n1);

  auto list = List(c);
  ASSERT_TRUE(list.ok()) << list.error();
  ASSERT_EQ(list->members.size(), 1u);
  const Member& m = list->members[0];
  EXPECT_EQ(m.name, "n1");
  EXPECT_NE(m.id, 0u);
  EXPECT_EQ(m.id, list->header.member_id);
  EXPECT_NE(list->header.cluster_id, 0u);
  EXPECT_THAT(m.peer_urls, ::testing::ElementsAre(n1->peer_url()));
  EXPECT_THAT(m.client_urls, ::testing::ElementsAre(n1->client_url()));
  EXPECT_FALSE(m.is_learner);

  auto status = StatusOf(c);
  ASSERT_TRUE(status.ok()) << status.error();
  EXPECT_EQ(status->version, "3.4.23");
  EXPECT_EQ(status->leader, m.id);
  EXPECT_EQ(status->header.member_id, m.id);
  EXPECT_EQ(status->header.cluster_id, list->header.cluster_id);
  EXPECT_GT(status->raft_index, 0u);
  EXPECT_GT(status->raft_term, 0u);
  EXPECT_GT(status->raft_applied_index, 0u);
  EXPECT_GT(status->db_size, 0u);
  EXPECT_GT(status->db_size_in_use, 0u);
  EXPECT_FALSE(status->is_learner);
  EXPECT_TRUE(status->errors.empty());

  auto health = HealthOf(c);
  ASSERT_TRUE(health.ok()) << health.error();
  EXPECT_TRUE(health->healthy);

  // etcd's own disk latency totals: a new cluster has already fsynced its WAL.
  auto latency = Await<DiskLatencyTotals>(io_, [&](auto cb) { c.DiskLatency(cb); });
  ASSERT_TRUE(latency.ok()) << latency.error();
  EXPECT_GT(latency->wal_fsyncs, 0u);
  EXPECT_GT(latency->wal_fsync_seconds, 0.0);

  auto put = Put(c, "greeting", std::string("hello\0world", 11));
  ASSERT_TRUE(put.ok()) << put.error();
  EXPECT_GT(put->header.revision, status->header.revision);
  for (bool serializable : {false, true}) {
    auto got = Get(c, "greeting", serializable);
    ASSERT_TRUE(got.ok()) << got.error();
    ASSERT_EQ(got->kvs.size(), 1u);
    EXPECT_EQ(got->kvs[0].key, "greeting");
    EXPECT_EQ(got->kvs[0].value, std::string("hello\0world", 11));
    EXPECT_EQ(got->kvs[0].mod_revision, put->header.revision);
  }
  auto missing = Get(c, "nothing-here");
  ASSERT_TRUE(missing.ok()) << missing.error();
  EXPECT_TRUE(missing->kvs.empty());

  // Alarms: none, then one raised by hand (etcd's own activate call), seen by status, health and
  // the list, then disarmed through the client.
  auto alarms = Await<AlarmResponse>(io_, [&](auto cb) { c.AlarmList(cb); });
  ASSERT_TRUE(alarms.ok()) << alarms.error();
  EXPECT_TRUE(alarms->alarms.empty());
  net::HttpRequest raise;
  raise.method = net::Verb::post;
  raise.endpoint = n1->client_endpoint();
  raise.target = "/v3/maintenance/alarm";
  raise.body = fmt::format(R"({{"action":"ACTIVATE","memberID":"{}","alarm":"NOSPACE"}})", m.id);
  auto raised = net::HttpFetchSync(raise);
  ASSERT_TRUE(raised.ok() && raised->status == 200) << raised->body;
  alarms = Await<AlarmResponse>(io_, [&](auto cb) { c.AlarmList(cb); });
  ASSERT_TRUE(alarms.ok()) << alarms.error();
  EXPECT_THAT(alarms->alarms, ::testing::ElementsAre(Alarm{m.id, AlarmType::kNoSpace}));
  health = HealthOf(c);
  ASSERT_TRUE(health.ok()) << health.error();
  EXPECT_FALSE(health->healthy);
  status = StatusOf(c);
  ASSERT_TRUE(status.ok()) << status.error();
  EXPECT_THAT(status->errors, ::testing::Contains(HasSubstr("NOSPACE")));
  auto refused_put = Put(c, "k", "v");
  ASSERT_FALSE(refused_put.ok());
  EXPECT_EQ(refused_put.error().code, ErrorCode::kRefused) << refused_put.error();
  EXPECT_THAT(refused_put.error().message, HasSubstr("database space exceeded"));
  auto disarmed =
      Await<AlarmResponse>(io_, [&](auto cb) { c.AlarmDisarm(m.id, AlarmType::kNoSpace, cb); });
  ASSERT_TRUE(disarmed.ok()) << disarmed.error();
  alarms = Await<AlarmResponse>(io_, [&](auto cb) { c.AlarmList(cb); });
  ASSERT_TRUE(alarms.ok()) << alarms.error();
  EXPECT_TRUE(alarms->alarms.empty());
  health = HealthOf(c);
  ASSERT_TRUE(health.ok()) << health.error();
  EXPECT_TRUE(health->healthy);

  auto defrag = Await<ResponseHeader>(io_, [&](auto cb) { c.Defragment(cb); });
  ASSERT_TRUE(defrag.ok()) << defrag.error();

  // Compaction: the history before the revision is gone (an old read fails), the key is not; a
  // second compaction to the same revision is refused with etcd's reason.
  auto second = Put(c, "greeting", "again");
  ASSERT_TRUE(second.ok()) << second.error();
  uint64_t now_rev = second->header.revision;
  auto compacted = Await<ResponseHeader>(io_, [&](auto cb) { c.Compact(now_rev, cb); });
  ASSERT_TRUE(compacted.ok()) << compacted.error();
  auto again = Await<ResponseHeader>(io_, [&](auto cb) { c.Compact(now_rev, cb); });
  ASSERT_FALSE(again.ok());
  EXPECT_THAT(again.error().message, ::testing::HasSubstr("compacted"));
  auto kept = Get(c, "greeting");
  ASSERT_TRUE(kept.ok()) << kept.error();
  ASSERT_EQ(kept->kvs.size(), 1u);
  EXPECT_EQ(kept->kvs[0].value, "again");
}

// Compare-and-swap is one transaction: it applies only when the compare holds, and says which.
TEST_F(EtcdClientTest, CompareAndSwapAppliesOnlyWhenTheCompareHolds) {
  auto n1 = Server("n1", "127.0.0.2");
  ASSERT_TRUE(n1->StartNewCluster().ok()) << n1->LogTail();
  Client c = ClientFor(*n1);
  auto value_of = [&](const std::string& key) -> std::optional<std::string> {
    auto got = Get(c, key);
    EXPECT_TRUE(got.ok()) << got.error();
    if (!got.ok() || got->kvs.empty()) return std::nullopt;
    return got->kvs[0].value;
  };

  auto created = Cas(c, "cas", std::nullopt, "one");  // create: the key must not exist
  ASSERT_TRUE(created.ok()) << created.error();
  EXPECT_TRUE(created->succeeded);
  EXPECT_EQ(value_of("cas"), "one");
  auto again = Cas(c, "cas", std::nullopt, "two");  // it exists now
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_FALSE(again->succeeded);
  EXPECT_EQ(again->header.revision, created->header.revision);  // nothing was written
  EXPECT_EQ(value_of("cas"), "one");

  auto swapped = Cas(c, "cas", "one", "three");
  ASSERT_TRUE(swapped.ok()) << swapped.error();
  EXPECT_TRUE(swapped->succeeded);
  EXPECT_EQ(swapped->header.revision, created->header.revision + 1);
  auto stale = Cas(c, "cas", "one", "four");
  ASSERT_TRUE(stale.ok()) << stale.error();
  EXPECT_FALSE(stale->succeeded);
  EXPECT_EQ(value_of("cas"), "three");

  // A value compare never matches a key that does not exist, not even against "".
  auto on_absent = Cas(c, "absent", "", "x");
  ASSERT_TRUE(on_absent.ok()) << on_absent.error();
  EXPECT_FALSE(on_absent->succeeded);
  EXPECT_EQ(value_of("absent"), std::nullopt);
  ASSERT_TRUE(Put(c, "empty", "").ok());
  auto on_empty = Cas(c, "empty", "", std::string("a\0b", 3));
  ASSERT_TRUE(on_empty.ok()) << on_empty.error();
  EXPECT_TRUE(on_empty->succeeded);
  EXPECT_EQ(value_of("empty"), std::string("a\0b", 3));
}

TEST_F(EtcdClientTest, LearnerIsAddedStartedPromotedAndMembersRemoved) {
  auto n1 = Server("n1", "127.0.0.2");
  auto n2 = Server("n2", "127.0.0.3");
  auto n3 = Server("n3", "127.0.0.4");
  ASSERT_TRUE(n1->StartNewCluster().ok()) << n1->LogTail();
  Client c1 = ClientFor(*n1);
  Client c2 = ClientFor(*n2);

  auto t_add = Clock::now();
  auto added = Add(c1, n2->peer_url(), /*learner=*/true);
  ASSERT_TRUE(added.ok()) << added.error();
  const uint64_t id2 = added->member.id;
  EXPECT_TRUE(added->member.is_learner);
  EXPECT_FALSE(added->member.started());
  EXPECT_EQ(added->members.size(), 2u);

  // Promoting a learner that has not even started: etcd says no, with its reason. This is a
  // refusal ("not yet"), not an unreachable cluster.
  auto early = Promote(c1, id2);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code, ErrorCode::kRefused) << early.error();
  EXPECT_THAT(early.error().message,
              HasSubstr("can only promote a learner member which is in sync with leader"));

  // One learner at a time.
  auto second = Add(c1, n3->peer_url(), /*learner=*/true);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, ErrorCode::kRefused) << second.error();
  EXPECT_THAT(second.error().message, HasSubstr("too many learner members in cluster"));

  auto list = List(c1);
  ASSERT_TRUE(list.ok()) << list.error();
  ASSERT_NE(list->Find(id2), nullptr);
  EXPECT_TRUE(list->Find(id2)->is_learner);
  EXPECT_FALSE(list->Find(id2)->started());

  auto t_start = Clock::now();
  ASSERT_TRUE(n2->JoinExisting(EtcdServer::InitialCluster({n1.get(), n2.get()})).ok())
      << n2->LogTail();

  // The learner answers status (as a learner, seeing the leader) but not member list.
  auto learner_status = StatusOf(c2);
  ASSERT_TRUE(learner_status.ok()) << learner_status.error();
  EXPECT_TRUE(learner_status->is_learner);
  EXPECT_EQ(learner_status->header.member_id, id2);
  EXPECT_EQ(learner_status->leader, list->header.member_id);
  auto learner_list = List(c2);
  ASSERT_FALSE(learner_list.ok());
  EXPECT_EQ(learner_list.error().code, ErrorCode::kUnavailable) << learner_list.error();
  EXPECT_THAT(learner_list.error().message, HasSubstr("rpc not supported for learner"));

  // Promote once in sync: every refusal on the way must be the "not in sync" one.
  int refusals = 0;
  Result<MemberListResponse> promoted = Error{};
  test::WaitFor(
      [&] {
        promoted = Promote(c1, id2);
        if (promoted.ok()) return true;
        if (promoted.error().code != ErrorCode::kRefused ||
            promoted.error().message.find("in sync with leader") == std::string::npos) {
          return true;  // another refusal: stop, and fail below
        }
        ++refusals;
        return false;
      },
      std::chrono::seconds(30));
  auto t_promoted = Clock::now();
  ASSERT_TRUE(promoted.ok()) << promoted.error();
  std::printf("learner add -> promoted %.3f s (process start -> promoted %.3f s, %d refusals)\n",
              Seconds(t_promoted - t_add), Seconds(t_promoted - t_start), refusals);
  RecordProperty("add_to_promoted_ms", static_cast<int>(Seconds(t_promoted - t_add) * 1000));
  ASSERT_NE(promoted->Find(id2), nullptr);
  EXPECT_FALSE(promoted->Find(id2)->is_learner);
  EXPECT_EQ(promoted->Find(id2)->name, "n2");
  EXPECT_THAT(promoted->Find(id2)->client_urls, ::testing::ElementsAre(n2->client_url()));

  // The leader answers the promotion once it has applied the conf change; n2 learns it is a voter
  // only when it applies that entry itself, a moment later (much later on a loaded machine), and
  // until then it still refuses member list as a learner. A real client asks again, so do we: the
  // only refusal allowed on the way is the learner one, and n2 must end up answering as a voter.
  Result<MemberListResponse> voter_list = Error{};
  int learner_refusals = 0;
  test::WaitFor(
      [&] {
        voter_list = List(c2);
        if (voter_list.ok()) return true;
        if (voter_list.error().code != ErrorCode::kUnavailable ||
            voter_list.error().message.find("rpc not supported for learner") == std::string::npos) {
          return true;  // another error: stop, and fail below
        }
        ++learner_refusals;
        return false;
      },
      std::chrono::seconds(30));
  std::printf("promoted -> member list answered by n2 %.3f s (%d learner refusals)\n",
              Seconds(Clock::now() - t_promoted), learner_refusals);
  ASSERT_TRUE(voter_list.ok()) << voter_list.error();
  EXPECT_EQ(voter_list->header.member_id, id2);
  EXPECT_EQ(voter_list->members.size(), 2u);
  ASSERT_NE(voter_list->Find(id2), nullptr);
  EXPECT_FALSE(voter_list->Find(id2)->is_learner);
  auto again = Promote(c1, id2);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kRefused);
  EXPECT_THAT(again.error().message, HasSubstr("can only promote a learner member"));

  // A third member added as a learner (retrying while the leader has not yet seen n2 connected
  // for 5 s), moved to another peer URL, and removed without ever starting.
  auto t_third = Clock::now();
  auto third = RetryUnavailable<MemberAddResponse>([&] { return Add(c1, n3->peer_url(), true); });
  ASSERT_TRUE(third.ok()) << third.error();
  std::printf("third member add accepted after %.3f s\n", Seconds(Clock::now() - t_third));
  const uint64_t id3 = third->member.id;
  std::string moved = fmt::format("http://127.0.0.4:{}", test::FreePort("127.0.0.4"));
  auto updated =
      Await<MemberListResponse>(io_, [&](auto cb) { c1.MemberUpdate(id3, {moved}, cb); });
  ASSERT_TRUE(updated.ok()) << updated.error();
  list = List(c1);
  ASSERT_TRUE(list.ok()) << list.error();
  ASSERT_NE(list->Find(id3), nullptr);
  EXPECT_THAT(list->Find(id3)->peer_urls, ::testing::ElementsAre(moved));
  auto removed3 = Remove(c1, id3);
  ASSERT_TRUE(removed3.ok()) << removed3.error();
  EXPECT_EQ(removed3->Find(id3), nullptr);
  EXPECT_EQ(removed3->members.size(), 2u);

  // Removing the running voter n2: it leaves the membership and its process exits.
  auto removed2 = RetryUnavailable<MemberListResponse>([&] { return Remove(c1, id2); });
  ASSERT_TRUE(removed2.ok()) << removed2.error();
  EXPECT_EQ(removed2->members.size(), 1u);
  EXPECT_EQ(removed2->Find(id2), nullptr);
  EXPECT_TRUE(test::WaitFor([&] { return !n2->Running(); }, std::chrono::seconds(20)))
      << n2->LogTail();

  auto unknown = Remove(c1, id2);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound) << unknown.error();
  EXPECT_THAT(unknown.error().message, HasSubstr("member not found"));
  auto health = HealthOf(c1);
  ASSERT_TRUE(health.ok()) << health.error();
  EXPECT_TRUE(health->healthy);
}

TEST_F(EtcdClientTest, ThreeMembersAgreeAndALoneSurvivorSeesNoLeader) {
  auto n1 = Server("n1", "127.0.0.2");
  auto n2 = Server("n2", "127.0.0.3");
  auto n3 = Server("n3", "127.0.0.4");
  std::string initial = EtcdServer::InitialCluster({n1.get(), n2.get(), n3.get()});
  for (auto* n : {n1.get(), n2.get(), n3.get()}) ASSERT_TRUE(n->Launch(initial, true).ok());
  for (auto* n : {n1.get(), n2.get(), n3.get()}) {
    ASSERT_TRUE(n->WaitUntilHealthy(std::chrono::seconds(30)).ok()) << n->LogTail();
  }
  std::vector<Client> clients = {ClientFor(*n1), ClientFor(*n2), ClientFor(*n3)};
  uint64_t cluster_id = 0;
  uint64_t leader = 0;
  for (auto& c : clients) {
    auto list = List(c);
    ASSERT_TRUE(list.ok()) << list.error();
    ASSERT_EQ(list->members.size(), 3u);
    for (const auto& m : list->members) {
      EXPECT_FALSE(m.is_learner);
      EXPECT_TRUE(m.started());
    }
    if (cluster_id == 0) cluster_id = list->header.cluster_id;
    EXPECT_EQ(list->header.cluster_id, cluster_id);
    auto health = HealthOf(c);
    ASSERT_TRUE(health.ok()) << health.error();
    EXPECT_TRUE(health->healthy);
    // Every member names the same leader (allowing for the first election to settle).
    Result<StatusResponse> status = Error{};
    ASSERT_TRUE(test::WaitFor(
        [&] {
          status = StatusOf(c);
          return status.ok() && status->leader != 0 && (leader == 0 || status->leader == leader);
        },
        std::chrono::seconds(10)))
        << (status.ok() ? "leader " + std::to_string(status->leader) : status.error().ToString());
    leader = status->leader;
    EXPECT_EQ(status->header.cluster_id, cluster_id);
  }

  // Two of three gone: the survivor loses its leader and says so; membership changes are
  // "retry later", and member list is still answered locally.
  n2->Stop();
  n3->Stop();
  Result<StatusResponse> status = Error{};
  ASSERT_TRUE(test::WaitFor(
      [&] {
        status = StatusOf(clients[0]);
        return status.ok() && status->leader == 0;
      },
      std::chrono::seconds(20)))
      << (status.ok() ? "leader " + std::to_string(status->leader) : status.error().ToString());
  EXPECT_THAT(status->errors, ::testing::Contains(HasSubstr("no leader")));
  auto health = HealthOf(clients[0]);
  ASSERT_TRUE(health.ok()) << health.error();
  EXPECT_FALSE(health->healthy);
  auto add = Add(clients[0], "http://127.0.0.5:1", true);
  ASSERT_FALSE(add.ok());
  EXPECT_EQ(add.error().code, ErrorCode::kUnavailable) << add.error();
  auto stale = Get(clients[0], "anything", /*serializable=*/true);
  EXPECT_TRUE(stale.ok()) << stale.error();
  auto list = List(clients[0]);
  ASSERT_TRUE(list.ok()) << list.error();
  EXPECT_EQ(list->members.size(), 3u);
  // Stopped members cannot be asked at all.
  auto gone = StatusOf(clients[1]);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ErrorCode::kUnavailable);
}

std::string FileSha256Hex(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::vector<std::string> DirectoryEntries(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  return out;
}

TEST_F(EtcdClientTest, SnapshotOfARealMemberIsVerifiedAndRestoresWithEtcdctl) {
  auto n1 = Server("n1", "127.0.0.2");
  ASSERT_TRUE(n1->StartNewCluster().ok()) << n1->LogTail();
  Client c = ClientFor(*n1);
  // Enough data for several 32 KiB chunks.
  for (int i = 0; i < 200; ++i) {
    auto put =
        Put(c, fmt::format("key-{:03}", i), std::string(1000, static_cast<char>('a' + i % 26)));
    ASSERT_TRUE(put.ok()) << put.error();
  }
  auto out_dir = dir_.path() / "backups";
  std::filesystem::create_directories(out_dir);
  auto path = out_dir / "snap.db";
  auto info = Snapshot(c, path);
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_GT(info->size, 200'000u);
  EXPECT_EQ(std::filesystem::file_size(path), info->size);
  EXPECT_EQ(FileSha256Hex(path), info->sha256_hex);
  EXPECT_THAT(DirectoryEntries(out_dir), ::testing::ElementsAre("snap.db"));  // no temp left

  // etcdctl restores it (it would check an appended hash; ours is stripped, so it is told so),
  // and a member started on the restored data has the keys.
  auto restored = Server("r1", "127.0.0.5");
  test::ChildProcess restore(
      {"etcdctl", "snapshot", "restore", path.string(), "--name=r1",
       "--data-dir=" + restored->data_dir().string(),
       "--initial-cluster=" + restored->config().InitialClusterEntry(),
       "--initial-advertise-peer-urls=" + restored->peer_url(), "--skip-hash-check=true"},
      dir_.path() / "restore.log", {{"ETCDCTL_API", "3"}});
  int status = restore.Wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << restore.LogTail();
  ASSERT_TRUE(restored->StartNewCluster().ok()) << restored->LogTail();
  Client rc = ClientFor(*restored);
  auto got = Get(rc, "key-123");
  ASSERT_TRUE(got.ok()) << got.error();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, std::string(1000, static_cast<char>('a' + 123 % 26)));

  // etcdctl's own verification: the file with etcd's trailer re-appended passes its hash check,
  // which shows our file is exactly the database etcd hashed.
  std::string raw;
  {
    std::ifstream in(path, std::ios::binary);
    raw.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto with_hash = out_dir / "with-hash.db";
  {
    std::ofstream out(with_hash, std::ios::binary);
    std::string digest;
    auto hex = info->sha256_hex;
    for (size_t i = 0; i < hex.size(); i += 2) {
      digest += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    }
    out << raw << digest;
  }
  test::ChildProcess checked({"etcdctl", "snapshot", "restore", with_hash.string(), "--name=r2",
                              "--data-dir=" + (dir_.path() / "r2-data").string(),
                              "--initial-cluster=r2=http://127.0.0.6:2380",
                              "--initial-advertise-peer-urls=http://127.0.0.6:2380"},
                             dir_.path() / "restore2.log", {{"ETCDCTL_API", "3"}});
  status = checked.Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << checked.LogTail();
}

// ---- A broken etcd: the snapshot stream served by a test server ------------------------------

std::string Sha256(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

std::string Message(std::string_view blob, uint64_t remaining) {
  nlohmann::json result = {{"blob", Base64Encode(blob)}};
  if (remaining != 0) result["remaining_bytes"] = std::to_string(remaining);
  return nlohmann::json{{"result", result}}.dump() + "\n";
}

// What etcd sends for `db`: 32 KiB chunks counting down, then the SHA-256 (`checksum_of`).
std::string EtcdStream(const std::string& db, const std::string& checksum_of) {
  std::string out;
  for (size_t at = 0; at < db.size(); at += 32768) {
    size_t n = std::min<size_t>(32768, db.size() - at);
    out += Message(db.substr(at, n), db.size() - at - n);
  }
  return out + Message(Sha256(checksum_of), 0);
}

class EtcdFakeSnapshotTest : public EtcdClientTest {
 protected:
  // Serves `body` as a chunked stream, in pieces of 1000 bytes so that lines are split.
  void Serve(std::string body, unsigned status = 200) {
    server_ = std::make_unique<net::HttpServer>(
        io_, net::HttpServer::Options{},
        [this, body, status](const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
          requests_.push_back(req.path);
          if (status != 200) return r->Respond(net::JsonResponse(status, body));
          auto out = r->StartStream(200, {{"Content-Type", "application/json"}});
          for (size_t at = 0; at < body.size(); at += 1000) out->Write(body.substr(at, 1000));
          if (!hang_) out->Close();
          if (hang_) parked_ = out;
        });
    auto bound = server_->Listen({"127.0.0.1", 0});
    ASSERT_TRUE(bound.ok()) << bound.error();
    address_ = *bound;
  }

  Result<SnapshotInfo> Download(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    Client c(io_, address_, {.request_timeout = timeout});
    return Snapshot(c, out_dir() / "snap.db");
  }

  std::filesystem::path out_dir() {
    auto d = dir_.path() / "out";
    std::filesystem::create_directories(d);
    return d;
  }

  void ExpectNothingLeft() {
    EXPECT_FALSE(std::filesystem::exists(out_dir() / "snap.db"));
    EXPECT_TRUE(DirectoryEntries(out_dir()).empty())
        << ::testing::PrintToString(DirectoryEntries(out_dir()));
  }

  std::string db_ = [] {
    std::string db(100000, '\0');
    for (size_t i = 0; i < db.size(); ++i) db[i] = static_cast<char>((i * 7919) >> 3);
    return db;
  }();
  std::unique_ptr<net::HttpServer> server_;
  std::shared_ptr<net::ResponseStream> parked_;
  bool hang_ = false;
  HostPort address_;
  std::vector<std::string> requests_;
};

TEST_F(EtcdFakeSnapshotTest, AGoodStreamSplitAcrossReadsIsWrittenWithoutItsChecksum) {
  Serve(EtcdStream(db_, db_));
  auto info = Download();
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(requests_, std::vector<std::string>{"/v3/maintenance/snapshot"});
  EXPECT_EQ(info->size, db_.size());
  std::ifstream in(out_dir() / "snap.db", std::ios::binary);
  std::string written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(written, db_);
  EXPECT_EQ(info->sha256_hex, HexEncode(Sha256(db_)));
}

TEST_F(EtcdFakeSnapshotTest, ACorruptedStreamIsDataLossAndLeavesNoFile) {
  std::string corrupted = db_;
  corrupted[70000] ^= 0x20;
  Serve(EtcdStream(corrupted, db_));  // data changed on the way, checksum of the original
  auto info = Download();
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, ErrorCode::kDataLoss) << info.error();
  EXPECT_THAT(info.error().message, HasSubstr("checksum mismatch"));
  ExpectNothingLeft();
}

TEST_F(EtcdFakeSnapshotTest, ATruncatedStreamIsDataLossAndLeavesNoFile) {
  std::string full = EtcdStream(db_, db_);
  size_t second_line = full.find('\n', full.find('\n') + 1);
  Serve(full.substr(0, second_line + 1));  // ends cleanly after two of four chunks
  auto info = Download();
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, ErrorCode::kDataLoss) << info.error();
  EXPECT_THAT(info.error().message, HasSubstr("truncated"));
  ExpectNothingLeft();
}

TEST_F(EtcdFakeSnapshotTest, AStreamWithoutItsChecksumIsDataLoss) {
  std::string full = EtcdStream(db_, db_);
  Serve(full.substr(0, full.rfind("{\"result\"")));
  auto info = Download();
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, ErrorCode::kDataLoss) << info.error();
  EXPECT_THAT(info.error().message, HasSubstr("SHA-256"));
  ExpectNothingLeft();
}

TEST_F(EtcdFakeSnapshotTest, AMalformedLineIsDataLoss) {
  std::string full = EtcdStream(db_, db_);
  size_t first_line = full.find('\n');
  Serve(full.substr(0, first_line + 1) + "{\"result\": oops}\n" + full.substr(first_line + 1));
  auto info = Download();
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, ErrorCode::kDataLoss) << info.error();
  EXPECT_THAT(info.error().message, HasSubstr("malformed"));
  ExpectNothingLeft();
}

TEST_F(EtcdFakeSnapshotTest, AnErrorStatusIsEtcdsErrorAndAnExistingFileIsKept) {
  {
    std::ofstream old(out_dir() / "snap.db");
    old << "an older backup";
  }
  Serve(R"({"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14})", 503);
  auto info = Download();
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, ErrorCode::kUnavailable) << info.error();
  EXPECT_THAT(info.error().message, HasSubstr("no leader"));
  std::ifstream in(out_dir() / "snap.db");
  std::string kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(kept, "an older backup");
  EXPECT_THAT(DirectoryEntries(out_dir()), ::testing::ElementsAre("snap.db"));
}

TEST_F(EtcdFakeSnapshotTest, AStreamThatGoesSilentTimesOutAsUnavailable) {
  hang_ = true;
  std::string full = EtcdStream(db_, db_);
  Serve(full.substr(0, full.find('\n') + 1));
  auto info = Download(std::chrono::milliseconds(300));
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, ErrorCode::kUnavailable) << info.error();
  EXPECT_THAT(info.error().message, HasSubstr("nothing received"));
  ExpectNothingLeft();
}

TEST_F(EtcdClientTest, ConnectionRefusedIsUnavailable) {
  HostPort nobody{"127.0.0.1", test::FreePort("127.0.0.1")};
  Client c(io_, nobody, {.request_timeout = std::chrono::seconds(2)});
  auto list = List(c);
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.error().code, ErrorCode::kUnavailable) << list.error();
  auto status = StatusOf(c);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kUnavailable) << status.error();
  auto health = HealthOf(c);
  ASSERT_FALSE(health.ok());
  EXPECT_EQ(health.error().code, ErrorCode::kUnavailable) << health.error();
  auto promote = Promote(c, 42);
  ASSERT_FALSE(promote.ok());
  EXPECT_EQ(promote.error().code, ErrorCode::kUnavailable) << promote.error();
  auto snap = Snapshot(c, dir_.path() / "snap.db");
  ASSERT_FALSE(snap.ok());
  EXPECT_EQ(snap.error().code, ErrorCode::kUnavailable) << snap.error();
  EXPECT_TRUE(DirectoryEntries(dir_.path()).empty());
}

}  // namespace
}  // namespace etcd_mesos::etcd
