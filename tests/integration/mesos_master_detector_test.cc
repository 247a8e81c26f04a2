// MasterDetector against a real ZooKeeper server: the test plays the contending masters, writing
// ephemeral sequential `json.info_` nodes (and the other children Mesos keeps beside them) with
// the ZooKeeper C client, and checks which leader the detector reports.
#include <zookeeper.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "mesos/json_codec.h"
#include "mesos/master_detector.h"
#include "testing/process.h"
#include "testing/zookeeper_server.h"

namespace etcd_mesos::mesos_client {
namespace {

using Leader = std::optional<HostPort>;

// One ZooKeeper server for the whole binary (a JVM start costs seconds); each test works under a
// path of its own.
test::ZooKeeperServer& Server() {
  static test::ZooKeeperServer* server = [] {
    auto* s = new test::ZooKeeperServer();
    auto started = s->Start();
    if (!started.ok()) {
      ADD_FAILURE() << started.error();
      return s;
    }
    std::atexit([] { delete server; });
    return s;
  }();
  return *server;
}

void IgnoreEvents(zhandle_t*, int, int, const char*, void*) {}
void DiscardLog(const char*) {}

// What a Mesos master writes into its json.info_ node (keys sorted, as stout writes them).
std::string MasterJson(const std::string& ip, int port) {
  mesos::MasterInfo info;
  info.set_id("master-" + ip + "-" + std::to_string(port));
  info.set_ip(16777343);  // 127.0.0.1 packed; address below is what counts
  info.set_port(port);
  info.set_hostname("host-" + std::to_string(port));
  info.set_pid(fmt::format("master@{}:{}", ip, port));
  info.set_version("1.11.0");
  info.mutable_address()->set_hostname("host-" + std::to_string(port));
  info.mutable_address()->set_ip(ip);
  info.mutable_address()->set_port(port);
  return mesos_codec::MessageToJsonString(info);
}

class MasterDetectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Server().running());
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::string("/mesos-") + info->name();
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zh_ = zookeeper_init2(Server().servers().c_str(), &IgnoreEvents, 10000, nullptr, nullptr, 0,
                          &DiscardLog);
    ASSERT_NE(zh_, nullptr);
    ASSERT_TRUE(test::WaitFor([&] { return zoo_state(zh_) == ZOO_CONNECTED_STATE; },
                              std::chrono::seconds(20)));
  }
  void TearDown() override {
    detector_.reset();
    if (zh_ != nullptr) zookeeper_close(zh_);  // ends the session: its ephemeral nodes go
  }

  // Creates a child of the test's path; returns its name.
  std::string Create(const std::string& name, const std::string& data, int flags,
                     const ACL_vector* acl = &ZOO_OPEN_ACL_UNSAFE) {
    std::string full = path_ + "/" + name;
    char created[512] = {};
    int rc = zoo_create(zh_, full.c_str(), data.data(), static_cast<int>(data.size()), acl, flags,
                        created, sizeof created);
    EXPECT_EQ(rc, ZOK) << zerror(rc) << " creating " << full;
    std::string out = created;
    return out.substr(out.rfind('/') + 1);
  }
  void CreatePath(const ACL_vector* acl = &ZOO_OPEN_ACL_UNSAFE) {
    int rc = zoo_create(zh_, path_.c_str(), "", 0, acl, 0, nullptr, 0);
    ASSERT_EQ(rc, ZOK) << zerror(rc);
  }
  std::string Contend(const std::string& ip, int port) {
    return Create("json.info_", MasterJson(ip, port), ZOO_EPHEMERAL | ZOO_SEQUENCE);
  }
  void Delete(const std::string& name) {
    int rc = zoo_delete(zh_, (path_ + "/" + name).c_str(), -1);
    ASSERT_EQ(rc, ZOK) << zerror(rc);
  }

  void StartDetector(std::string url = "") {
    if (url.empty()) url = Server().Url(path_);
    auto address = ParseMasterAddress(url);
    ASSERT_TRUE(address.ok()) << address.error();
    MasterDetector::Options options;
    options.session_timeout = std::chrono::milliseconds(4000);
    options.retry_interval = std::chrono::milliseconds(200);
    detector_ = std::make_unique<MasterDetector>(
        io_, *address, options, [this](const Leader& leader) { reports_.push_back(leader); });
    auto started = detector_->Start();
    ASSERT_TRUE(started.ok()) << started.error();
  }

  // Runs the loop until `done` holds or 20 s have passed; answers `done()`.
  bool RunUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(10));
    }
    return done();
  }
  // Runs the loop until the detector has finished with a listing (reported what it shows, or
  // found it changes nothing, or retried) that `matches`.
  bool RunUntilListing(
      const std::function<bool(const MasterDetector::ListingForTesting&)>& matches) {
    return RunUntil([&] {
      auto listing = detector_->LastListingForTesting();
      return listing && matches(*listing);
    });
  }

  // Runs the loop until the latest report is `want`.
  void ExpectLeader(const Leader& want) {
    RunUntil([&] { return !reports_.empty() && reports_.back() == want; });
    ASSERT_FALSE(reports_.empty()) << "no report";
    EXPECT_EQ(reports_.back(), want)
        << "latest report: " << (reports_.back() ? reports_.back()->ToString() : "none");
  }
  boost::asio::io_context io_;
  zhandle_t* zh_ = nullptr;
  std::string path_;
  std::unique_ptr<MasterDetector> detector_;
  std::vector<Leader> reports_;
};

TEST(MasterDetectorDirect, ReportsTheGivenMasterOnce) {
  boost::asio::io_context io;
  std::vector<Leader> reports;
  auto address = ParseMasterAddress("10.0.0.1:5050");
  ASSERT_TRUE(address.ok());
  MasterDetector detector(io, *address, {}, [&](const Leader& l) { reports.push_back(l); });
  ASSERT_TRUE(detector.Start().ok());
  EXPECT_TRUE(reports.empty()) << "reported inside Start()";
  // A marker posted after Start(): whatever Start() posted has run once the marker has.
  bool marker = false;
  boost::asio::post(io, [&] { marker = true; });
  while (!marker) io.run_one();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0], (HostPort{"10.0.0.1", 5050}));
}

TEST(MasterEndpointTest, PrefersAddressThenHostnameThenPackedIp) {
  mesos::MasterInfo info;
  info.set_id("m");
  info.set_ip(16777226);  // 10.0.0.1
  info.set_port(5050);
  info.set_hostname("m1");
  info.mutable_address()->set_ip("10.0.0.9");
  info.mutable_address()->set_hostname("m9");
  info.mutable_address()->set_port(5051);
  EXPECT_EQ(*MasterEndpoint(info), (HostPort{"10.0.0.9", 5051}));
  info.mutable_address()->clear_ip();
  EXPECT_EQ(*MasterEndpoint(info), (HostPort{"m9", 5051}));
  info.clear_address();
  EXPECT_EQ(*MasterEndpoint(info), (HostPort{"m1", 5050}));
  info.clear_hostname();
  EXPECT_EQ(*MasterEndpoint(info), (HostPort{"10.0.0.1", 5050}));
}

TEST(LeaderCandidatesTest, KeepsOnlyNumberedJsonInfoInSequenceOrder) {
  EXPECT_EQ(LeaderCandidates({"json.info_0000000012", "info_0000000001", "log_replicas",
                              "json.info_0000000003", "json.info_", "json.info_12x",
                              "xjson.info_0000000001", "json.info_0000000100"}),
            (std::vector<std::string>{"json.info_0000000003", "json.info_0000000012",
                                      "json.info_0000000100"}));
}

TEST_F(MasterDetectorTest, LowestSequenceLeadsAndOthersAreIgnored) {
  CreatePath();
  // Lower sequences than any json.info_ node, holding a valid MasterInfo: a detector that took
  // them for contenders would report the wrong master.
  Create("info_", MasterJson("127.0.0.9", 9999), ZOO_EPHEMERAL | ZOO_SEQUENCE);
  Create("log_replicas", MasterJson("127.0.0.8", 8888), 0);
  auto first = Contend("127.0.0.2", 5050);
  auto second = Contend("127.0.0.3", 5050);
  EXPECT_LT(first, second);
  StartDetector();
  ExpectLeader(HostPort{"127.0.0.2", 5050});
  EXPECT_EQ(reports_.size(), 1u);
  EXPECT_EQ(detector_->leader(), (HostPort{"127.0.0.2", 5050}));

  // A newcomer with a higher sequence changes nothing: once the detector has finished with a
  // listing that holds it, it has reported nothing more.
  auto newcomer = Contend("127.0.0.4", 5050);
  ASSERT_TRUE(RunUntilListing([&](const MasterDetector::ListingForTesting& listing) {
    return std::find(listing.children.begin(), listing.children.end(), newcomer) !=
           listing.children.end();
  })) << "the detector never listed the newcomer";
  EXPECT_EQ(reports_.size(), 1u);
}

TEST_F(MasterDetectorTest, DeletingTheLeaderMovesLeadershipToTheNext) {
  CreatePath();
  auto first = Contend("127.0.0.2", 5050);
  auto second = Contend("127.0.0.3", 5051);
  StartDetector();
  ExpectLeader(HostPort{"127.0.0.2", 5050});
  Delete(first);
  ExpectLeader(HostPort{"127.0.0.3", 5051});
  Delete(second);
  ExpectLeader(std::nullopt);
  Contend("127.0.0.4", 5052);
  ExpectLeader(HostPort{"127.0.0.4", 5052});
  EXPECT_EQ(reports_.size(), 4u);
}

// A master restarted in place contends again at its old address while its old session's node
// still leads; when that node goes, the new one leads: a new election at the same address,
// reported so that a scheduler waiting for it subscribes at once (real Mesos 1.11: the
// scheduler learnt of it only at the end of a 7.8 s backoff).
TEST_F(MasterDetectorTest, ANewElectionAtTheSameAddressIsReported) {
  CreatePath();
  auto old_session = Contend("127.0.0.2", 5050);
  StartDetector();
  ExpectLeader(HostPort{"127.0.0.2", 5050});
  Contend("127.0.0.2", 5050);  // the restarted master, not leading yet
  ASSERT_TRUE(RunUntilListing([](const auto& l) { return l.children.size() == 2; }));
  EXPECT_EQ(reports_.size(), 1u) << "the old node still leads: nothing new";
  Delete(old_session);  // the old session expired
  ASSERT_TRUE(RunUntil([&] { return reports_.size() == 2; }));
  EXPECT_EQ(reports_.back(), (HostPort{"127.0.0.2", 5050}));
}

TEST_F(MasterDetectorTest, NoContendersMeansNoLeader) {
  CreatePath();
  Create("log_replicas", "", 0);
  StartDetector();
  ExpectLeader(std::nullopt);
}

TEST_F(MasterDetectorTest, MissingPathMeansNoLeaderUntilItAppears) {
  StartDetector();
  ExpectLeader(std::nullopt);
  CreatePath();
  Contend("127.0.0.2", 5050);
  ExpectLeader(HostPort{"127.0.0.2", 5050});
}

TEST_F(MasterDetectorTest, MalformedNodeIsIgnored) {
  CreatePath();
  auto garbage = Create("json.info_", "{\"address\": not json", ZOO_EPHEMERAL | ZOO_SEQUENCE);
  auto incomplete = Create("json.info_", R"({"hostname":"m"})", ZOO_EPHEMERAL | ZOO_SEQUENCE);
  StartDetector();
  ExpectLeader(std::nullopt);
  Contend("127.0.0.3", 5050);
  ExpectLeader(HostPort{"127.0.0.3", 5050});
  EXPECT_LT(garbage, incomplete);
}

TEST_F(MasterDetectorTest, FollowsChangesAfterSessionExpiry) {
  CreatePath();
  auto first = Contend("127.0.0.2", 5050);
  Contend("127.0.0.3", 5050);
  StartDetector();
  ExpectLeader(HostPort{"127.0.0.2", 5050});
  auto session = detector_->ZooKeeperSessionForTesting();
  ASSERT_TRUE(session.has_value());
  auto expired = test::ExpireZooKeeperSession(Server().servers(), session->first, session->second);
  ASSERT_TRUE(expired.ok()) << expired.error();
  // The detector opens a new session and watches again from there.
  ASSERT_TRUE(RunUntil([&] {
    auto now = detector_->ZooKeeperSessionForTesting();
    return now && now->first != session->first;
  })) << "no new session";
  auto renewed = detector_->ZooKeeperSessionForTesting();
  ASSERT_TRUE(renewed.has_value());
  // The new session has listed the path, setting its watch, before the leader goes.
  ASSERT_TRUE(RunUntilListing([&](const MasterDetector::ListingForTesting& listing) {
    return listing.session == renewed->first;
  })) << "the new session never listed the path";
  Delete(first);
  ExpectLeader(HostPort{"127.0.0.3", 5050});
}

TEST_F(MasterDetectorTest, DestroyingWhileReadsAreInFlightIsSafe) {
  CreatePath();
  for (int i = 0; i < 5; ++i) Contend("127.0.0.2", 5050 + i);
  for (int round = 0; round < 20; ++round) {
    StartDetector();
    io_.run_for(std::chrono::milliseconds(round * 3));
    detector_.reset();
  }
  // Whatever was posted by the dead detectors must not run into freed memory or report. Their
  // destruction joined their ZooKeeper clients' threads, so all they posted is queued: run the
  // loop until it runs out of work. It must run out (nothing of theirs keeps it alive), and then
  // every handler they left has run.
  size_t before = reports_.size();
  io_.restart();
  io_.run_for(std::chrono::seconds(20));
  EXPECT_TRUE(io_.stopped()) << "the destroyed detectors left work on the loop";
  EXPECT_EQ(reports_.size(), before);
}

void AuthDone(int rc, const void* data) {
  *static_cast<std::atomic<int>*>(const_cast<void*>(data)) = rc;
}

TEST_F(MasterDetectorTest, DigestCredentialsAreSent) {
  // Nodes only the digest user etcd:s3cret may read (ZOO_CREATOR_ALL_ACL names the creator's
  // authenticated identity).
  std::atomic<int> auth_rc{1};
  std::string credentials = "etcd:s3cret";
  ASSERT_EQ(zoo_add_auth(zh_, "digest", credentials.data(), static_cast<int>(credentials.size()),
                         &AuthDone, &auth_rc),
            ZOK);
  ASSERT_TRUE(test::WaitFor([&] { return auth_rc != 1; }, std::chrono::seconds(10)));
  ASSERT_EQ(auth_rc, ZOK);
  CreatePath(&ZOO_CREATOR_ALL_ACL);
  Create("json.info_", MasterJson("127.0.0.2", 5050), ZOO_EPHEMERAL | ZOO_SEQUENCE,
         &ZOO_CREATOR_ALL_ACL);

  // Without the credentials the detector cannot learn the leader: its listing is refused.
  StartDetector();
  ASSERT_TRUE(RunUntilListing([](const MasterDetector::ListingForTesting&) { return true; }))
      << "the detector never finished a listing";
  EXPECT_EQ(detector_->LastListingForTesting()->rc, ZNOAUTH);
  for (const auto& report : reports_) EXPECT_FALSE(report.has_value());
  detector_.reset();

  std::string url = Server().Url(path_);
  url.insert(std::string("zk://").size(), "etcd:s3cret@");
  StartDetector(url);
  ExpectLeader(HostPort{"127.0.0.2", 5050});
}

}  // namespace
}  // namespace etcd_mesos::mesos_client
