// The scheduler client against a fake master served over real HTTP in the test: subscription,
// calls with the stream id, a dropped stream, missed heartbeats, a 307 to another master.
#include <set>
#include <utility>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "mesos/codec.h"
#include "mesos/recordio.h"
#include "mesos/scheduler_client.h"

namespace etcd_mesos::mesos_client {
namespace {

using mesos::scheduler::Call;
using mesos::scheduler::Event;
using mesos_codec::ContentType;

// Plays the master's side of the v1 scheduler API, enough to drive the client.
class FakeMaster {
 public:
  FakeMaster(boost::asio::io_context& io, ContentType type) : type_(type) {
    server_ = std::make_unique<net::HttpServer>(
        io, net::HttpServer::Options{},
        [this](const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
          Handle(req, std::move(r));
        });
    address_ = *server_->Listen({"127.0.0.1", 0});
  }

  void Handle(const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
    requests.push_back(req);
    auto ct = mesos_codec::ParseContentType(req.Header("Content-Type").value_or(""));
    if (!ct) return r->Respond(net::TextResponse(415, "bad content type"));
    Call call;
    if (auto s = mesos_codec::Decode(req.body, *ct, &call); !s.ok()) {
      return r->Respond(net::TextResponse(400, s.error().message));
    }
    if (call.type() == Call::SUBSCRIBE) {
      subscribes.push_back(call);
      if (redirect_to) {
        return r->Respond({307, {{"Location", "//" + redirect_to->ToString() + req.path}}, ""});
      }
      if (self_redirects > 0) {  // not elected yet: Mesos names itself as the leader
        --self_redirects;
        return r->Respond({307, {{"Location", "//" + address_.ToString() + req.path}}, ""});
      }
      if (refuse_subscribe) return r->Respond(net::TextResponse(400, "Framework has been removed"));
      if (not_recovered > 0) {  // elected, not recovered yet: real Mesos 1.11 answers 503
        --not_recovered;
        return r->Respond(net::TextResponse(503, "Master has not finished recovery"));
      }
      stream_id = "stream-" + std::to_string(subscribes.size());
      stream = r->StartStream(200, {{"Content-Type", std::string(mesos_codec::MediaType(type_))},
                                    {"Mesos-Stream-Id", stream_id}});
      Event subscribed;
      subscribed.set_type(Event::SUBSCRIBED);
      subscribed.mutable_subscribed()->mutable_framework_id()->set_value(
          call.has_framework_id() ? call.framework_id().value() : "M-0000");
      subscribed.mutable_subscribed()->set_heartbeat_interval_seconds(heartbeat_seconds);
      Send(subscribed);
      return;
    }
    calls.push_back(call);
    call_stream_ids.push_back(req.Header("Mesos-Stream-Id").value_or(""));
    r->Respond({202, {}, ""});
  }

  void Send(const Event& event) {
    ASSERT_TRUE(stream);
    // Split each record in two writes so records straddle HTTP chunks, as on a real network.
    std::string record = recordio::Encode(mesos_codec::Encode(event, type_));
    stream->Write(record.substr(0, record.size() / 2));
    stream->Write(record.substr(record.size() / 2));
  }

  HostPort address_;
  ContentType type_;
  std::unique_ptr<net::HttpServer> server_;
  std::shared_ptr<net::ResponseStream> stream;
  std::string stream_id;
  double heartbeat_seconds = 15;
  bool refuse_subscribe = false;
  std::optional<HostPort> redirect_to;
  int self_redirects = 0;
  int not_recovered = 0;
  std::vector<net::ServerRequest> requests;
  std::vector<Call> subscribes;
  std::vector<Call> calls;
  std::vector<std::string> call_stream_ids;
};

class SchedulerClientTest : public ::testing::TestWithParam<ContentType> {
 protected:
  SchedulerClientTest() : master_(io_, GetParam()) {}

  void RunUntil(const std::function<bool()>& done, int seconds = 10) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(done()) << "timed out";
  }

  void StartClient(SchedulerClient::Options options = {}) {
    options.content_type = GetParam();
    options.backoff_min = std::chrono::milliseconds(20);
    options.backoff_max = std::chrono::milliseconds(100);
    options.seed = 7;
    client_ = std::make_unique<SchedulerClient>(
        io_, options,
        SchedulerClient::Callbacks{[this](const Event::Subscribed& s) {
                                     subscribed_ids_.push_back(s.framework_id().value());
                                   },
                                   [this](const Event& e) { events_.push_back(e); },
                                   [this](const Error& e) { disconnects_.push_back(e); }});
    mesos::FrameworkInfo info;
    info.set_user("root");
    info.set_name("etcd-test");
    info.set_failover_timeout(604800);
    client_->Start(master_.address_, info);
  }

  // A client whose every backoff is a minute: what happens sooner was not a backoff.
  void StartClientWithAMinuteOfBackoff() {
    SchedulerClient::Options options;
    options.content_type = GetParam();
    options.backoff_min = std::chrono::seconds(60);
    options.backoff_max = std::chrono::seconds(60);
    client_ = std::make_unique<SchedulerClient>(
        io_, options, SchedulerClient::Callbacks{nullptr, nullptr, [this](const Error& e) {
                                                   disconnects_.push_back(e);
                                                 }});
    mesos::FrameworkInfo info;
    info.set_user("root");
    info.set_name("etcd-test");
    client_->Start(master_.address_, info);
  }

  boost::asio::io_context io_;
  FakeMaster master_;
  std::unique_ptr<SchedulerClient> client_;
  std::vector<std::string> subscribed_ids_;
  std::vector<Event> events_;
  std::vector<Error> disconnects_;
};

TEST_P(SchedulerClientTest, SubscribesReceivesEventsAndSendsCallsWithStreamId) {
  StartClient();
  RunUntil([&] { return client_->subscribed(); });
  ASSERT_EQ(master_.subscribes.size(), 1u);
  EXPECT_FALSE(master_.subscribes[0].has_framework_id()) << "first subscription carries no id";
  EXPECT_EQ(master_.requests[0].Header("Content-Type"), mesos_codec::MediaType(GetParam()));
  EXPECT_FALSE(master_.requests[0].Header("Mesos-Stream-Id").has_value());
  EXPECT_EQ(client_->framework_id(), "M-0000");
  EXPECT_EQ(subscribed_ids_, std::vector<std::string>{"M-0000"});

  Event heartbeat;
  heartbeat.set_type(Event::HEARTBEAT);
  master_.Send(heartbeat);
  Event offers;
  offers.set_type(Event::OFFERS);
  auto* offer = offers.mutable_offers()->add_offers();
  offer->mutable_id()->set_value("M-O1");
  offer->mutable_framework_id()->set_value("M-0000");
  offer->mutable_agent_id()->set_value("M-S0");
  offer->set_hostname("127.0.0.2");
  master_.Send(offers);
  RunUntil([&] { return !events_.empty(); });
  ASSERT_EQ(events_.size(), 1u) << "HEARTBEAT is handled inside the client";
  EXPECT_EQ(events_[0].offers().offers(0).id().value(), "M-O1");

  Call decline;
  decline.set_type(Call::DECLINE);
  decline.mutable_decline()->add_offer_ids()->set_value("M-O1");
  std::optional<Status> sent;
  client_->Send(decline, [&](Status s) { sent = s; });
  RunUntil([&] { return sent.has_value(); });
  ASSERT_TRUE(sent->ok()) << sent->error();
  ASSERT_EQ(master_.calls.size(), 1u);
  EXPECT_EQ(master_.calls[0].framework_id().value(), "M-0000");
  EXPECT_EQ(master_.call_stream_ids[0], master_.stream_id);
}

TEST_P(SchedulerClientTest, DroppedStreamResubscribesWithFrameworkId) {
  StartClient();
  RunUntil([&] { return client_->subscribed(); });
  master_.stream->Close();
  RunUntil([&] { return master_.subscribes.size() == 2 && client_->subscribed(); });
  ASSERT_EQ(disconnects_.size(), 1u);
  const Call& again = master_.subscribes[1];
  EXPECT_EQ(again.framework_id().value(), "M-0000");
  EXPECT_EQ(again.subscribe().framework_info().id().value(), "M-0000");
  EXPECT_EQ(subscribed_ids_.size(), 2u);
  // Calls now carry the new stream's id.
  std::optional<Status> sent;
  Call revive;
  revive.set_type(Call::REVIVE);
  client_->Send(revive, [&](Status s) { sent = s; });
  RunUntil([&] { return sent.has_value(); });
  EXPECT_EQ(master_.call_stream_ids.back(), "stream-2");
}

TEST_P(SchedulerClientTest, MissedHeartbeatsEndTheStreamAndResubscribe) {
  master_.heartbeat_seconds = 0.1;  // then the fake goes silent while keeping the stream open
  StartClient();
  RunUntil([&] { return master_.subscribes.size() >= 2; });
  ASSERT_FALSE(disconnects_.empty());
  EXPECT_NE(disconnects_[0].message.find("heartbeat"), std::string::npos) << disconnects_[0];
  EXPECT_EQ(master_.subscribes[1].framework_id().value(), "M-0000");
}

TEST_P(SchedulerClientTest, FollowsRedirectToTheLeadingMaster) {
  FakeMaster leader(io_, GetParam());
  master_.redirect_to = leader.address_;
  StartClient();
  RunUntil([&] { return client_->subscribed(); });
  EXPECT_EQ(client_->master(), leader.address_);
  EXPECT_EQ(master_.subscribes.size(), 1u);
  EXPECT_EQ(leader.subscribes.size(), 1u);
  std::optional<Status> sent;
  Call revive;
  revive.set_type(Call::REVIVE);
  client_->Send(revive, [&](Status s) { sent = s; });
  RunUntil([&] { return sent.has_value(); });
  ASSERT_TRUE(sent->ok()) << sent->error();
  EXPECT_EQ(leader.calls.size(), 1u);
  EXPECT_TRUE(master_.calls.empty());
}

// A master restarted in place answers SUBSCRIBE with a 307 to itself until it is elected (its
// old ZooKeeper session still names it the leader). Real Mesos 1.11: the client gave up after 5
// such redirects and backed off up to 7.8 s. It is "not elected yet": asked again shortly, for
// as long as it takes, with no failure reported and no backoff.
TEST_P(SchedulerClientTest, AMasterRedirectingToItselfIsAskedAgainUntilElected) {
  master_.self_redirects = 12;
  SchedulerClient::Options options;
  options.max_redirects = 5;
  StartClient(options);
  RunUntil([&] { return client_->subscribed(); });
  EXPECT_EQ(master_.subscribes.size(), 13u);
  EXPECT_TRUE(disconnects_.empty()) << disconnects_[0];
  EXPECT_EQ(client_->master(), master_.address_);
}

// Just after its election real Mesos answers SUBSCRIBE with 503 "Master has not finished
// recovery" for a moment: asked again shortly, not after a backoff (0.6 s of a failover on real
// Mesos 1.11).
TEST_P(SchedulerClientTest, AMasterNotRecoveredYetIsAskedAgainWithoutBackoff) {
  master_.not_recovered = 3;
  StartClientWithAMinuteOfBackoff();
  RunUntil([&] { return client_->subscribed(); }, 10);  // not after a 60 s backoff
  EXPECT_EQ(master_.subscribes.size(), 4u);
  EXPECT_TRUE(disconnects_.empty()) << disconnects_[0];
}

// The detector reports a new election at the master's address: a client waiting out a backoff
// subscribes at once.
TEST_P(SchedulerClientTest, ANewElectionAtTheSameAddressEndsTheBackoff) {
  master_.refuse_subscribe = true;
  StartClientWithAMinuteOfBackoff();
  RunUntil([&] { return !disconnects_.empty(); });
  master_.refuse_subscribe = false;
  client_->SetMaster(master_.address_);
  RunUntil([&] { return client_->subscribed(); }, 5);  // not after the 60 s backoff
  EXPECT_EQ(master_.subscribes.size(), 2u);
  client_->SetMaster(master_.address_);  // subscribed already: nothing to do
  io_.run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(master_.subscribes.size(), 2u);
  EXPECT_TRUE(client_->subscribed());
}

TEST_P(SchedulerClientTest, RefusedSubscriptionReportsMastersReasonAndRetries) {
  master_.refuse_subscribe = true;
  StartClient();
  RunUntil([&] { return master_.subscribes.size() >= 2; });
  ASSERT_FALSE(disconnects_.empty());
  EXPECT_EQ(disconnects_[0].code, ErrorCode::kInvalidArgument);
  EXPECT_NE(disconnects_[0].message.find("Framework has been removed"), std::string::npos)
      << disconnects_[0];
  EXPECT_FALSE(client_->subscribed());
}

TEST_P(SchedulerClientTest, CallsBeforeSubscriptionAreUnavailable) {
  master_.refuse_subscribe = true;
  StartClient();
  std::optional<Status> sent;
  Call revive;
  revive.set_type(Call::REVIVE);
  client_->Send(revive, [&](Status s) { sent = s; });
  RunUntil([&] { return sent.has_value(); });
  ASSERT_FALSE(sent->ok());
  EXPECT_EQ(sent->error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(master_.calls.empty());
}

TEST_P(SchedulerClientTest, SendsBasicCredentialsWhenConfigured) {
  SchedulerClient::Options options;
  options.credential = Credential{"etcd", "s3cret"};
  StartClient(options);
  RunUntil([&] { return client_->subscribed(); });
  EXPECT_EQ(master_.requests[0].Header("Authorization"), "Basic ZXRjZDpzM2NyZXQ=");
}

TEST_P(SchedulerClientTest, UndecodableEventIsDroppedAndTheStreamLives) {
  StartClient();
  RunUntil([&] { return client_->subscribed(); });
  master_.stream->Write(recordio::Encode("this is not an event"));
  Event offers;
  offers.set_type(Event::RESCIND);
  offers.mutable_rescind()->mutable_offer_id()->set_value("M-O9");
  master_.Send(offers);
  RunUntil([&] { return !events_.empty(); });
  EXPECT_EQ(events_[0].rescind().offer_id().value(), "M-O9");
  EXPECT_TRUE(disconnects_.empty());
}

TEST_P(SchedulerClientTest, MalformedRecordIOEndsTheStreamAndResubscribes) {
  StartClient();
  RunUntil([&] { return client_->subscribed(); });
  master_.stream->Write("x7\nnonsense");
  RunUntil([&] { return master_.subscribes.size() >= 2; });
  ASSERT_FALSE(disconnects_.empty());
  EXPECT_EQ(disconnects_[0].code, ErrorCode::kDataLoss);
}

TEST_P(SchedulerClientTest, AnErrorEventStopsTheClientForGood) {
  StartClient();
  RunUntil([&] { return client_->subscribed(); });
  Event error;
  error.set_type(Event::ERROR);
  error.mutable_error()->set_message("Framework failed over");
  master_.Send(error);
  master_.stream->Close();
  RunUntil([&] { return !events_.empty(); });
  EXPECT_EQ(events_[0].type(), Event::ERROR);
  EXPECT_EQ(events_[0].error().message(), "Framework failed over");
  // Re-subscribing would fail the new scheduler over in turn: the client waits for its owner.
  io_.run_for(std::chrono::milliseconds(500));
  EXPECT_EQ(master_.subscribes.size(), 1u);
  EXPECT_FALSE(client_->subscribed());
}

INSTANTIATE_TEST_SUITE_P(BothContentTypes, SchedulerClientTest,
                         ::testing::Values(ContentType::kJson, ContentType::kProtobuf),
                         [](const auto& info) {
                           return info.param == ContentType::kJson ? "Json" : "Protobuf";
                         });

TEST(Backoff, GrowsToTheCapWithJitter) {
  // Attempt n waits a random time in [min, min(min * 2^n, max)]: the ceiling doubles until the
  // cap, and the jitter spreads reconnecting schedulers over the whole window.
  constexpr int64_t kMin = 100, kMax = 1000;
  constexpr int kAttempts = 8, kSeeds = 200;
  std::vector<std::set<int64_t>> seen(kAttempts);
  std::vector<int64_t> highest(kAttempts, 0);
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    Backoff b(std::chrono::milliseconds(kMin), std::chrono::milliseconds(kMax), seed);
    for (int n = 0; n < kAttempts; ++n) {
      int64_t d = b.Next().count();
      int64_t ceiling = std::min(kMin << n, kMax);
      ASSERT_GE(d, kMin) << "attempt " << n;
      ASSERT_LE(d, ceiling) << "attempt " << n;
      seen[n].insert(d);
      highest[n] = std::max(highest[n], d);
    }
    b.Reset();
    EXPECT_EQ(b.Next().count(), kMin) << "a reset starts again from the minimum";
  }
  EXPECT_EQ(seen[0], std::set<int64_t>{kMin}) << "the first retry waits the minimum";
  // Growth: the highest wait seen rises with the attempts until it nears the cap, and stays there.
  EXPECT_GT(highest[1], 150);
  EXPECT_GT(highest[2], 300);
  EXPECT_GT(highest[3], 700);
  EXPECT_GT(highest[7], 950);
  // Jitter: at each attempt past the first, waits are spread, not one fixed value.
  for (int n = 1; n < kAttempts; ++n) EXPECT_GT(seen[n].size(), 20u) << "attempt " << n;
}

}  // namespace
}  // namespace etcd_mesos::mesos_client
