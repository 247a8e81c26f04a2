// The local master in ZooKeeper mode against a real ZooKeeper, raw HTTP and our real master
// detector and scheduler client: who leads, what a master that does not lead answers (as Mesos's
// master/http.cpp: 307 to the leader, 503 "No leader elected", 503 "Master has not finished
// recovery"), and a master killed and restarted in place, which redirects to its own address
// until its predecessor's session expires, as real Mesos 1.11 did.
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "local/master.h"
#include "mesos/json_codec.h"
#include "mesos/master_detector.h"
#include "mesos/scheduler_client.h"
#include "testing/zookeeper_server.h"

namespace etcd_mesos::local {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

class MasterElectionTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(zookeeper_.Start().ok()) << zookeeper_.LogTail(); }

  MasterOptions Options(std::string ip, uint16_t port = 0) {
    MasterOptions options;
    options.ip = std::move(ip);
    options.port = port;
    options.zk = *ParseZkUrl(zookeeper_.Url("/mesos"));
    options.zk_session_timeout = milliseconds(4000);
    options.recovery = milliseconds(300);
    return options;
  }

  std::unique_ptr<Master> StartMaster(MasterOptions options) {
    auto master = std::make_unique<Master>(io_, std::move(options));
    auto bound = master->Start();
    EXPECT_TRUE(bound.ok()) << bound.error();
    return master;
  }

  bool RunUntil(const std::function<bool()>& done, int seconds = 20) {
    auto deadline = Clock::now() + std::chrono::seconds(seconds);
    while (!done() && Clock::now() < deadline) io_.run_for(milliseconds(10));
    return done();
  }

  net::HttpResponse Request(const Master& master, net::Verb method, std::string target,
                            std::string body = "") {
    net::HttpRequest req;
    req.method = method;
    req.endpoint = master.address();
    req.target = std::move(target);
    req.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    req.body = std::move(body);
    req.timeout = milliseconds(2000);
    std::optional<Result<net::HttpResponse>> got;
    net::HttpFetch(io_, req, [&](Result<net::HttpResponse> r) { got = std::move(r); });
    EXPECT_TRUE(RunUntil([&] { return got.has_value(); }));
    EXPECT_TRUE(got && got->ok());
    return got && got->ok() ? **got : net::HttpResponse{};
  }

  net::HttpResponse Subscribe(const Master& master) {
    mesos::scheduler::Call call;
    call.set_type(mesos::scheduler::Call::SUBSCRIBE);
    auto* info = call.mutable_subscribe()->mutable_framework_info();
    info->set_user("root");
    info->set_name("election-test");
    return Request(master, net::Verb::post, "/api/v1/scheduler",
                   mesos_codec::MessageToJsonString(call));
  }

  static std::string Location(const net::HttpResponse& response) {
    return net::FindHeader(response.headers, "Location").value_or("");
  }

  test::ZooKeeperServer zookeeper_;
  boost::asio::io_context io_;
};

TEST_F(MasterElectionTest, TheFirstMasterLeadsAndTheOtherRedirectsToItUntilItWithdraws) {
  auto first = StartMaster(Options("127.0.0.1"));
  ASSERT_TRUE(RunUntil([&] { return first->serving(); })) << "the first master was not elected";
  auto second = StartMaster(Options("127.0.0.2"));
  std::string leader = "//" + first->address().ToString();
  // It knows the leader once its detector has read the path.
  ASSERT_TRUE(RunUntil([&] { return Subscribe(*second).status == 307; }));
  EXPECT_EQ(Location(Subscribe(*second)), leader + "/api/v1/scheduler");
  auto state = Request(*second, net::Verb::get, "/master/state?jsonp=f");
  EXPECT_EQ(state.status, 307u);
  EXPECT_EQ(Location(state), leader + "/master/state?jsonp=f");
  auto redirect = Request(*second, net::Verb::get, "/master/redirect");
  EXPECT_EQ(redirect.status, 307u);
  EXPECT_EQ(Location(redirect), leader) << "/redirect goes to the base URL, not to itself";
  EXPECT_EQ(Request(*second, net::Verb::post, "/master/teardown", "frameworkId=x").status, 307u);
  EXPECT_FALSE(second->serving());

  first->Stop();  // withdraws: its node goes at once
  ASSERT_TRUE(RunUntil([&] { return second->serving(); })) << "the second master was not elected";
  EXPECT_EQ(Request(*second, net::Verb::get, "/master/state").status, 200u);
}

TEST_F(MasterElectionTest, AnElectedMasterAnswers503UntilItHasRecovered) {
  MasterOptions options = Options("127.0.0.1");
  options.recovery = milliseconds(60'000);
  auto master = StartMaster(options);
  // Elected: /master/state no longer redirects, but SUBSCRIBE waits for the recovery.
  ASSERT_TRUE(
      RunUntil([&] { return Request(*master, net::Verb::get, "/master/state").status == 200; }));
  auto refused = Subscribe(*master);
  EXPECT_EQ(refused.status, 503u);
  EXPECT_EQ(refused.body, "Master has not finished recovery");
  EXPECT_FALSE(master->serving());
}

TEST_F(MasterElectionTest, WithNoLeaderKnownAMasterAnswers503NoLeaderElected) {
  zookeeper_.Stop();
  auto master = StartMaster(Options("127.0.0.1"));
  auto refused = Subscribe(*master);
  EXPECT_EQ(refused.status, 503u);
  EXPECT_EQ(refused.body, "No leader elected");
  EXPECT_EQ(Request(*master, net::Verb::get, "/master/redirect").status, 503u);
  ASSERT_TRUE(zookeeper_.Start().ok()) << zookeeper_.LogTail();
  EXPECT_TRUE(RunUntil([&] { return master->serving(); })) << "not elected once ZooKeeper is back";
}

// Real Mesos 1.11 after `kill -9` of the leading master and a restart in place: the new master
// sees its predecessor's node (same address) lead until ZooKeeper expires that session, and
// answers SUBSCRIBE with a 307 to itself meanwhile.
TEST_F(MasterElectionTest, AMasterRestartedInPlaceRedirectsToItselfUntilItsOldSessionExpires) {
  auto old_master = StartMaster(Options("127.0.0.1"));
  ASSERT_TRUE(RunUntil([&] { return old_master->serving(); }));
  HostPort address = old_master->address();
  old_master->Kill(milliseconds(2000));
  auto new_master = StartMaster(Options(address.host, address.port));
  ASSERT_EQ(new_master->address(), address);
  ASSERT_TRUE(RunUntil([&] { return Subscribe(*new_master).status == 307; }));
  EXPECT_EQ(Location(Subscribe(*new_master)), "//" + address.ToString() + "/api/v1/scheduler");
  EXPECT_FALSE(new_master->serving());
  EXPECT_TRUE(RunUntil([&] { return new_master->serving(); })) << "never elected";
}

// The scheduler's side of that failover, with the detector and client the scheduler runs, on
// their default timers: the stream drops (the one failure), the client keeps asking the master
// that redirects to itself and then answers 503 while it recovers, and is subscribed again once
// it serves. None of those refusals counts as a failure, so the backoff never grows past its
// first step (the not-ready cadence, 250 ms, is SchedulerClientTest's).
TEST_F(MasterElectionTest, ASchedulerFollowsAMasterRestartedInPlaceWithoutBackingOff) {
  auto old_master = StartMaster(Options("127.0.0.1"));
  ASSERT_TRUE(RunUntil([&] { return old_master->serving(); }));
  HostPort address = old_master->address();

  mesos_client::SchedulerClient::Options client_options;
  int subscriptions = 0;
  std::vector<std::string> failures;
  mesos_client::SchedulerClient client(
      io_, client_options,
      {[&](const mesos::scheduler::Event::Subscribed&) { ++subscriptions; }, nullptr,
       [&](const Error& e) { failures.push_back(e.message); }});
  mesos_client::MasterDetector detector(io_, *ParseMasterAddress(zookeeper_.Url("/mesos")), {},
                                        [&](const std::optional<HostPort>& leader) {
                                          if (!leader) return;
                                          if (subscriptions == 0 && failures.empty()) {
                                            mesos::FrameworkInfo info;
                                            info.set_user("root");
                                            info.set_name("election-test");
                                            info.set_failover_timeout(3600);
                                            return client.Start(*leader, info);
                                          }
                                          client.SetMaster(*leader);
                                        });
  ASSERT_TRUE(detector.Start().ok());
  ASSERT_TRUE(RunUntil([&] { return client.subscribed(); }));
  std::string framework_id = client.framework_id().value_or("");

  old_master->Kill(milliseconds(2500));
  auto new_master = StartMaster(Options(address.host, address.port));
  std::optional<Clock::time_point> served, resubscribed;
  ASSERT_TRUE(RunUntil(
      [&] {
        if (!served && new_master->serving()) served = Clock::now();
        if (!resubscribed && subscriptions == 2) resubscribed = Clock::now();
        return served && resubscribed;
      },
      30));
  EXPECT_EQ(client.framework_id().value_or(""), framework_id) << "not a failover";
  EXPECT_EQ(failures.size(), 1u) << "only the stream's drop is a failure; a refused SUBSCRIBE "
                                    "while the master is not elected or not recovered is not";
  std::printf("[timing] master restarted in place: serving -> scheduler subscribed %.0f ms\n",
              std::chrono::duration<double, std::milli>(*resubscribed - *served).count());
}

}  // namespace
}  // namespace etcd_mesos::local
