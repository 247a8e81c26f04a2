// The executor client against a fake agent: a real HttpServer on loopback that speaks the agent's
// side of the v1 executor API (exact path and Content-Type, chunked RecordIO event stream, 202 for
// calls) and records every call it receives.
#include <map>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <gtest/gtest.h>
#include <boost/asio.hpp>

#include "common/encoding.h"
#include "mesos/codec.h"
#include "mesos/executor_client.h"
#include "mesos/recordio.h"

namespace etcd_mesos::mesos_codec {
// Names the parameter in test listings instead of "4-byte object <00-00 00-00>".
void PrintTo(ContentType type, std::ostream* os) { *os << MediaType(type); }
}  // namespace etcd_mesos::mesos_codec

namespace etcd_mesos::mesos_client {
namespace {

namespace asio = boost::asio;
using mesos::executor::Call;
using mesos::executor::Event;
using mesos_codec::ContentType;

constexpr std::string_view kPath = "/slave(1)/api/v1/executor";

// ---- Environment ------------------------------------------------------------------------------

std::map<std::string, std::string> GoodEnv() {
  return {{"MESOS_FRAMEWORK_ID", "M-0000"},
          {"MESOS_EXECUTOR_ID", "etcd-exec-1"},
          {"MESOS_SLAVE_ID", "M-S1"},
          {"MESOS_SLAVE_PID", "slave(1)@10.0.0.5:5051"},
          {"MESOS_AGENT_ENDPOINT", "10.0.0.5:5051"},
          {"MESOS_DIRECTORY", "/var/lib/mesos/slaves/x/runs/y"},
          {"MESOS_SANDBOX", "/mnt/mesos/sandbox"},
          {"MESOS_CHECKPOINT", "1"},
          {"MESOS_RECOVERY_TIMEOUT", "15mins"},
          {"MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs"},
          {"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "5secs"},
          {"MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "tok3n"}};
}

EnvLookup LookupIn(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ExecutorEnvironment, ReadsEverythingTheAgentSets) {
  auto env = ReadExecutorEnvironment(LookupIn(GoodEnv()));
  ASSERT_TRUE(env.ok()) << env.error();
  EXPECT_EQ(env->framework_id, "M-0000");
  EXPECT_EQ(env->executor_id, "etcd-exec-1");
  EXPECT_EQ(env->agent_id, "M-S1");
  EXPECT_EQ(env->agent_url.ToString(), "http://10.0.0.5:5051/slave(1)/api/v1/executor");
  EXPECT_EQ(env->directory, "/var/lib/mesos/slaves/x/runs/y");
  EXPECT_EQ(env->sandbox, "/mnt/mesos/sandbox");
  EXPECT_TRUE(env->checkpoint);
  EXPECT_EQ(env->recovery_timeout, std::chrono::minutes(15));
  EXPECT_EQ(env->subscription_backoff_max, std::chrono::seconds(2));
  EXPECT_EQ(env->shutdown_grace_period, std::chrono::seconds(5));
  EXPECT_EQ(env->authentication_token, "tok3n");
}

TEST(ExecutorEnvironment, FallsBackToAgentEndpointAndDefaults) {
  auto vars = GoodEnv();
  vars.erase("MESOS_SLAVE_PID");
  vars.erase("MESOS_SANDBOX");
  vars.erase("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD");
  vars.erase("MESOS_EXECUTOR_AUTHENTICATION_TOKEN");
  vars.erase("MESOS_RECOVERY_TIMEOUT");  // not needed without checkpointing
  vars["MESOS_CHECKPOINT"] = "0";
  auto env = ReadExecutorEnvironment(LookupIn(vars));
  ASSERT_TRUE(env.ok()) << env.error();
  EXPECT_EQ(env->agent_url.ToString(), "http://10.0.0.5:5051/api/v1/executor");
  EXPECT_EQ(env->sandbox, env->directory);
  EXPECT_FALSE(env->checkpoint);
  EXPECT_EQ(env->shutdown_grace_period, std::chrono::seconds(5));
  EXPECT_FALSE(env->authentication_token.has_value());
}

TEST(ExecutorEnvironment, MissingOrMalformedVariablesAreNamed) {
  struct Case {
    std::string variable;
    std::optional<std::string> value;  // nullopt: removed
  };
  std::vector<Case> cases = {
      {"MESOS_FRAMEWORK_ID", std::nullopt},
      {"MESOS_EXECUTOR_ID", std::nullopt},
      {"MESOS_EXECUTOR_ID", ""},
      {"MESOS_DIRECTORY", std::nullopt},
      {"MESOS_SLAVE_PID", "slave(1)10.0.0.5:5051"},
      {"MESOS_SLAVE_PID", "slave(1)@10.0.0.5"},
      {"MESOS_SLAVE_PID", "slave(1)@10.0.0.5:99999"},
      {"MESOS_CHECKPOINT", "true"},
      {"MESOS_RECOVERY_TIMEOUT", std::nullopt},
      {"MESOS_RECOVERY_TIMEOUT", "soon"},
      {"MESOS_SUBSCRIPTION_BACKOFF_MAX", std::nullopt},
      {"MESOS_SUBSCRIPTION_BACKOFF_MAX", "-2secs"},
      {"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "5 parsecs"},
  };
  for (const auto& c : cases) {
    auto vars = GoodEnv();
    if (c.value) {
      vars[c.variable] = *c.value;
    } else {
      vars.erase(c.variable);
    }
    auto env = ReadExecutorEnvironment(LookupIn(vars));
    ASSERT_FALSE(env.ok()) << c.variable << "=" << c.value.value_or("<unset>");
    EXPECT_EQ(env.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(env.error().message.find(c.variable), std::string::npos) << env.error();
  }

  auto vars = GoodEnv();
  vars.erase("MESOS_SLAVE_PID");
  vars.erase("MESOS_AGENT_ENDPOINT");
  auto env = ReadExecutorEnvironment(LookupIn(vars));
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.error().message.find("MESOS_SLAVE_PID"), std::string::npos) << env.error();
  EXPECT_NE(env.error().message.find("MESOS_AGENT_ENDPOINT"), std::string::npos) << env.error();

  vars = GoodEnv();
  vars.erase("MESOS_SLAVE_PID");
  vars["MESOS_AGENT_ENDPOINT"] = "nowhere";
  env = ReadExecutorEnvironment(LookupIn(vars));
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.error().message.find("MESOS_AGENT_ENDPOINT"), std::string::npos) << env.error();
}

// ---- The fake agent ---------------------------------------------------------------------------

class FakeAgent {
 public:
  FakeAgent(asio::io_context& io, ContentType type) : io_(io), type_(type) {}

  void Listen(uint16_t port = 0) {
    server_ = std::make_unique<net::HttpServer>(
        io_, net::HttpServer::Options{},
        [this](const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
          Handle(req, std::move(r));
        });
    auto bound = server_->Listen({"127.0.0.1", port});
    ASSERT_TRUE(bound.ok()) << bound.error();
    address_ = *bound;
  }
  void StopListening() {
    if (server_) server_->Stop();
    server_.reset();
    stream_.reset();
  }

  void SendEvent(const Event& event) {
    ASSERT_TRUE(stream_ != nullptr) << "no executor subscribed";
    stream_->Write(recordio::Encode(mesos_codec::Encode(event, type_)));
  }
  void SendRaw(const std::string& record) {
    ASSERT_TRUE(stream_ != nullptr) << "no executor subscribed";
    stream_->Write(recordio::Encode(record));
  }
  void DropStream() {
    if (stream_) stream_->Close();
    stream_.reset();
  }

  std::vector<Call> CallsOfType(Call::Type type) const {
    std::vector<Call> out;
    for (const auto& c : calls) {
      if (c.type() == type) out.push_back(c);
    }
    return out;
  }

  const HostPort& address() const { return address_; }
  bool streaming() const { return stream_ != nullptr && !stream_->closed(); }

  std::vector<Call> calls;          // every well-formed call, in arrival order
  std::vector<std::string> faults;  // anything the executor got wrong
  unsigned subscribe_status = 200;  // answer SUBSCRIBE with this instead of a stream
  unsigned update_status = 202;
  std::vector<std::string> authorizations;

 private:
  void Handle(const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
    if (req.path != kPath) {
      faults.push_back("wrong path " + req.path);
      return r->Respond(net::TextResponse(404, "no such path"));
    }
    if (req.method != net::Verb::post) {
      faults.push_back("wrong method " + req.method_string);
      return r->Respond(net::TextResponse(405, "POST only"));
    }
    auto content_type = req.Header("Content-Type").value_or("");
    if (content_type != mesos_codec::MediaType(type_)) {
      faults.push_back("wrong Content-Type '" + content_type + "'");
      return r->Respond(net::TextResponse(415, "Unsupported Content-Type"));
    }
    authorizations.push_back(req.Header("Authorization").value_or(""));
    Call call;
    if (auto s = mesos_codec::Decode(req.body, type_, &call); !s.ok()) {
      faults.push_back("undecodable call: " + s.error().message);
      return r->Respond(net::TextResponse(400, s.error().message));
    }
    if (call.framework_id().value() != "M-0000" || call.executor_id().value() != "etcd-exec-1") {
      faults.push_back("wrong ids in " + call.ShortDebugString());
      return r->Respond(net::TextResponse(400, "unknown framework or executor"));
    }
    calls.push_back(call);
    switch (call.type()) {
      case Call::SUBSCRIBE: {
        if (req.Header("Accept") != std::string(mesos_codec::MediaType(type_))) {
          faults.push_back("SUBSCRIBE without an Accept for " +
                           std::string(mesos_codec::MediaType(type_)));
        }
        if (subscribe_status != 200) {
          return r->Respond(net::TextResponse(subscribe_status, "not now"));
        }
        stream_ =
            r->StartStream(200, {{"Content-Type", std::string(mesos_codec::MediaType(type_))}});
        Event subscribed;
        subscribed.set_type(Event::SUBSCRIBED);
        auto* s = subscribed.mutable_subscribed();
        s->mutable_executor_info()->mutable_executor_id()->set_value("etcd-exec-1");
        s->mutable_framework_info()->set_user("root");
        s->mutable_framework_info()->set_name("etcd-test");
        s->mutable_framework_info()->mutable_id()->set_value("M-0000");
        s->mutable_agent_info()->set_hostname("agent-1");
        s->mutable_agent_info()->mutable_id()->set_value("M-S1");
        SendEvent(subscribed);
        return;
      }
      case Call::UPDATE: {
        const auto& status = call.update().status();
        if (!IsValidUuidBytes(status.uuid())) faults.push_back("UPDATE with an invalid uuid");
        if (status.source() != mesos::TaskStatus::SOURCE_EXECUTOR) {
          faults.push_back("UPDATE not from SOURCE_EXECUTOR");
        }
        if (status.executor_id().value() != "etcd-exec-1") faults.push_back("UPDATE executor_id");
        return r->Respond(net::TextResponse(update_status, update_status == 202 ? "" : "bad"));
      }
      default:
        return r->Respond(net::TextResponse(202, ""));
    }
  }

  asio::io_context& io_;
  ContentType type_;
  std::unique_ptr<net::HttpServer> server_;
  std::shared_ptr<net::ResponseStream> stream_;
  HostPort address_;
};

// ---- The client against it --------------------------------------------------------------------

class ExecutorClientTest : public ::testing::TestWithParam<ContentType> {
 protected:
  void SetUp() override {
    agent_ = std::make_unique<FakeAgent>(io_, GetParam());
    agent_->Listen();
  }
  void TearDown() override {
    EXPECT_TRUE(agent_->faults.empty()) << ::testing::PrintToString(agent_->faults);
    client_.reset();
    agent_->StopListening();
  }

  ExecutorEnvironment Env(bool checkpoint) {
    ExecutorEnvironment env;
    env.framework_id = "M-0000";
    env.executor_id = "etcd-exec-1";
    env.agent_url.endpoint = agent_->address();
    env.agent_url.path = std::string(kPath);
    env.directory = env.sandbox = "/tmp";
    env.checkpoint = checkpoint;
    env.recovery_timeout = std::chrono::seconds(30);
    env.subscription_backoff_max = std::chrono::milliseconds(200);
    env.authentication_token = "tok3n";
    return env;
  }

  void StartClient(ExecutorEnvironment env) {
    ExecutorClient::Options options;
    options.content_type = GetParam();
    options.backoff_min = std::chrono::milliseconds(20);
    options.seed = 42;
    ExecutorClient::Callbacks cb;
    cb.on_subscribed = [this](const Event::Subscribed& s) {
      ++subscribed_;
      agent_hostname_ = s.agent_info().hostname();
    };
    cb.on_launch = [this](const mesos::TaskInfo& t) { launched_.push_back(t.task_id().value()); };
    cb.on_kill = [this](const Event::Kill& k) { killed_.push_back(k.task_id().value()); };
    cb.on_acknowledged = [this](const Event::Acknowledged& a) { acked_.push_back(a.uuid()); };
    cb.on_message = [this](const std::string& d) { messages_.push_back(d); };
    cb.on_shutdown = [this] { ++shutdowns_; };
    cb.on_error = [this](const std::string& m) { errors_.push_back(m); };
    cb.on_heartbeat = [this] { ++heartbeats_; };
    cb.on_disconnected = [this](const Error&) { ++disconnects_; };
    cb.on_lost = [this](const Error& e) { lost_ = e; };
    cb.on_update_failed = [this](const mesos::TaskStatus&, const Error& e) {
      update_failures_.push_back(e);
    };
    client_ = std::make_unique<ExecutorClient>(io_, std::move(env), options, std::move(cb));
    client_->Start();
  }

  void RunUntil(const std::function<bool()>& done,
                std::chrono::seconds limit = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(5));
    }
    ASSERT_TRUE(done()) << "timed out";
  }
  void RunFor(std::chrono::milliseconds d) {
    auto deadline = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < deadline) io_.run_for(std::chrono::milliseconds(5));
  }

  static Event Launch(const std::string& task_id) {
    Event e;
    e.set_type(Event::LAUNCH);
    auto* task = e.mutable_launch()->mutable_task();
    task->set_name("etcd member");
    task->mutable_task_id()->set_value(task_id);
    task->mutable_agent_id()->set_value("M-S1");
    return e;
  }
  static Event Ack(const std::string& task_id, const std::string& uuid) {
    Event e;
    e.set_type(Event::ACKNOWLEDGED);
    e.mutable_acknowledged()->mutable_task_id()->set_value(task_id);
    e.mutable_acknowledged()->set_uuid(uuid);
    return e;
  }
  static mesos::TaskStatus MakeStatus(const std::string& task_id, mesos::TaskState state) {
    mesos::TaskStatus s;
    s.mutable_task_id()->set_value(task_id);
    s.set_state(state);
    return s;
  }

  void SubscribeAndLaunch(bool checkpoint, const std::string& task_id) {
    StartClient(Env(checkpoint));
    RunUntil([&] { return subscribed_ == 1; });
    agent_->SendEvent(Launch(task_id));
    RunUntil([&] { return launched_.size() == 1; });
  }

  asio::io_context io_;
  std::unique_ptr<FakeAgent> agent_;
  std::unique_ptr<ExecutorClient> client_;
  int subscribed_ = 0;
  std::string agent_hostname_;
  std::vector<std::string> launched_, killed_, acked_, messages_, errors_;
  int shutdowns_ = 0, heartbeats_ = 0, disconnects_ = 0;
  std::optional<Error> lost_;
  std::vector<Error> update_failures_;
};

TEST_P(ExecutorClientTest, SubscribesLaunchesUpdatesAndForgetsAcknowledged) {
  SubscribeAndLaunch(/*checkpoint=*/true, "etcd-1");
  EXPECT_EQ(agent_hostname_, "agent-1");
  EXPECT_EQ(launched_, std::vector<std::string>{"etcd-1"});
  ASSERT_EQ(client_->unacknowledged_tasks().size(), 1u);
  auto uuid = client_->SendUpdate(MakeStatus("etcd-1", mesos::TASK_RUNNING));
  ASSERT_TRUE(uuid.ok()) << uuid.error();
  EXPECT_TRUE(IsValidUuidBytes(*uuid));
  RunUntil([&] { return agent_->CallsOfType(Call::UPDATE).size() == 1; });
  // MESOS_EXECUTOR_AUTHENTICATION_TOKEN goes on every call, SUBSCRIBE and UPDATE alike.
  EXPECT_EQ(agent_->authorizations, (std::vector<std::string>{"Bearer tok3n", "Bearer tok3n"}));
  auto update = agent_->CallsOfType(Call::UPDATE)[0].update().status();
  EXPECT_EQ(update.uuid(), *uuid);
  EXPECT_EQ(update.source(), mesos::TaskStatus::SOURCE_EXECUTOR);
  EXPECT_EQ(update.executor_id().value(), "etcd-exec-1");
  EXPECT_EQ(update.state(), mesos::TASK_RUNNING);
  auto now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch());
  EXPECT_NEAR(update.timestamp(), now.count(), 60.0);
  ASSERT_EQ(client_->unacknowledged_updates().size(), 1u);

  // An acknowledgement for some other uuid changes nothing.
  agent_->SendEvent(Ack("etcd-1", NewUuidBytes()));
  RunUntil([&] { return acked_.size() == 1; });
  EXPECT_EQ(client_->unacknowledged_updates().size(), 1u);

  agent_->SendEvent(Ack("etcd-1", *uuid));
  RunUntil([&] { return acked_.size() == 2; });
  EXPECT_TRUE(client_->unacknowledged_updates().empty());
  EXPECT_TRUE(client_->unacknowledged_tasks().empty());
}

TEST_P(ExecutorClientTest, HandsUpKillMessageErrorShutdownAndHeartbeat) {
  SubscribeAndLaunch(true, "etcd-1");
  Event kill;
  kill.set_type(Event::KILL);
  kill.mutable_kill()->mutable_task_id()->set_value("etcd-1");
  agent_->SendEvent(kill);
  Event message;
  message.set_type(Event::MESSAGE);
  message.mutable_message()->set_data(std::string("re\0seed", 7));
  agent_->SendEvent(message);
  Event error;
  error.set_type(Event::ERROR);
  error.mutable_error()->set_message("something broke");
  agent_->SendEvent(error);
  // HEARTBEAT (type 9) is not in our .proto; send it as Mesos would.
  agent_->SendRaw(GetParam() == ContentType::kJson ? std::string(R"({"type":"HEARTBEAT"})")
                                                   : std::string("\x08\x09", 2));
  Event shutdown;
  shutdown.set_type(Event::SHUTDOWN);
  agent_->SendEvent(shutdown);
  RunUntil([&] { return shutdowns_ == 1; });
  EXPECT_EQ(killed_, std::vector<std::string>{"etcd-1"});
  EXPECT_EQ(messages_, std::vector<std::string>{std::string("re\0seed", 7)});
  EXPECT_EQ(errors_, std::vector<std::string>{"something broke"});
  EXPECT_EQ(heartbeats_, 1);
}

TEST_P(ExecutorClientTest, SendsMessagesAndUpdatesInOrder) {
  SubscribeAndLaunch(true, "etcd-1");
  std::vector<std::string> uuids;
  for (auto state : {mesos::TASK_STARTING, mesos::TASK_RUNNING, mesos::TASK_FINISHED}) {
    auto uuid = client_->SendUpdate(MakeStatus("etcd-1", state));
    ASSERT_TRUE(uuid.ok());
    uuids.push_back(*uuid);
  }
  std::optional<Status> sent;
  client_->SendMessage("hello", [&](Status s) { sent = s; });
  RunUntil([&] { return sent.has_value(); });
  EXPECT_TRUE(sent->ok()) << sent->error();
  auto updates = agent_->CallsOfType(Call::UPDATE);
  ASSERT_EQ(updates.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(updates[i].update().status().uuid(), uuids[i]);
  auto messages = agent_->CallsOfType(Call::MESSAGE);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].message().data(), "hello");
  EXPECT_EQ(agent_->calls.back().type(), Call::MESSAGE);
}

TEST_P(ExecutorClientTest, ResubscribesWithUnacknowledgedUpdateAndTask) {
  SubscribeAndLaunch(true, "etcd-1");
  auto uuid = client_->SendUpdate(MakeStatus("etcd-1", mesos::TASK_RUNNING));
  ASSERT_TRUE(uuid.ok());
  RunUntil([&] { return agent_->CallsOfType(Call::UPDATE).size() == 1; });

  agent_->DropStream();
  RunUntil([&] { return subscribed_ == 2; });
  EXPECT_EQ(disconnects_, 1);
  EXPECT_FALSE(lost_.has_value());
  auto subscribes = agent_->CallsOfType(Call::SUBSCRIBE);
  ASSERT_EQ(subscribes.size(), 2u);
  EXPECT_EQ(subscribes[0].subscribe().unacknowledged_updates_size(), 0);
  const auto& again = subscribes[1].subscribe();
  ASSERT_EQ(again.unacknowledged_updates_size(), 1);
  EXPECT_EQ(again.unacknowledged_updates(0).status().uuid(), *uuid);
  EXPECT_EQ(again.unacknowledged_updates(0).status().source(), mesos::TaskStatus::SOURCE_EXECUTOR);
  ASSERT_EQ(again.unacknowledged_tasks_size(), 1);
  EXPECT_EQ(again.unacknowledged_tasks(0).task_id().value(), "etcd-1");
  RunFor(std::chrono::milliseconds(100));
  EXPECT_EQ(agent_->CallsOfType(Call::UPDATE).size(), 1u) << "resent outside SUBSCRIBE";

  agent_->SendEvent(Ack("etcd-1", *uuid));
  RunUntil([&] { return acked_.size() == 1; });
  EXPECT_TRUE(client_->unacknowledged_updates().empty());
  EXPECT_TRUE(client_->unacknowledged_tasks().empty());
}

TEST_P(ExecutorClientTest, UpdatesSentWhileDisconnectedGoOutOnceInOrderWithSubscribe) {
  SubscribeAndLaunch(true, "etcd-1");
  agent_->subscribe_status = 503;  // the agent is recovering
  agent_->DropStream();
  RunUntil([&] { return agent_->CallsOfType(Call::SUBSCRIBE).size() >= 2; });
  EXPECT_FALSE(client_->subscribed());
  auto first = client_->SendUpdate(MakeStatus("etcd-1", mesos::TASK_STARTING));
  auto second = client_->SendUpdate(MakeStatus("etcd-1", mesos::TASK_RUNNING));
  ASSERT_TRUE(first.ok() && second.ok());
  RunFor(std::chrono::milliseconds(100));
  EXPECT_TRUE(agent_->CallsOfType(Call::UPDATE).empty());

  agent_->subscribe_status = 200;
  RunUntil([&] { return subscribed_ == 2; });
  RunFor(std::chrono::milliseconds(100));
  EXPECT_FALSE(lost_.has_value());
  const auto sub = agent_->CallsOfType(Call::SUBSCRIBE).back().subscribe();
  ASSERT_EQ(sub.unacknowledged_updates_size(), 2);
  EXPECT_EQ(sub.unacknowledged_updates(0).status().uuid(), *first);
  EXPECT_EQ(sub.unacknowledged_updates(1).status().uuid(), *second);
  EXPECT_TRUE(agent_->CallsOfType(Call::UPDATE).empty()) << "double-sent";
}

TEST_P(ExecutorClientTest, ReconnectsToAnAgentThatRestartsOnTheSamePort) {
  SubscribeAndLaunch(true, "etcd-1");
  auto uuid = client_->SendUpdate(MakeStatus("etcd-1", mesos::TASK_RUNNING));
  ASSERT_TRUE(uuid.ok());
  RunUntil([&] { return agent_->CallsOfType(Call::UPDATE).size() == 1; });
  uint16_t port = agent_->address().port;
  agent_->StopListening();
  RunUntil([&] { return disconnects_ == 1; });
  RunFor(std::chrono::milliseconds(300));  // a few refused attempts
  agent_->Listen(port);
  RunUntil([&] { return subscribed_ == 2; });
  const auto sub = agent_->CallsOfType(Call::SUBSCRIBE).back().subscribe();
  ASSERT_EQ(sub.unacknowledged_updates_size(), 1);
  EXPECT_EQ(sub.unacknowledged_updates(0).status().uuid(), *uuid);
  EXPECT_FALSE(lost_.has_value());
}

TEST_P(ExecutorClientTest, RecoveryTimesOutWhenTheAgentStaysAway) {
  auto env = Env(true);
  env.recovery_timeout = std::chrono::milliseconds(700);
  StartClient(env);
  RunUntil([&] { return subscribed_ == 1; });
  agent_->StopListening();
  auto dropped = std::chrono::steady_clock::now();
  RunUntil([&] { return lost_.has_value(); });
  auto waited = std::chrono::steady_clock::now() - dropped;
  EXPECT_GE(waited, std::chrono::milliseconds(600));
  EXPECT_NE(lost_->message.find("recovery timed out"), std::string::npos) << *lost_;
  EXPECT_EQ(disconnects_, 1);
  EXPECT_FALSE(client_->subscribed());
  // Stopped: nothing more is attempted or reported.
  auto after = client_->SendUpdate(MakeStatus("etcd-1", mesos::TASK_RUNNING));
  EXPECT_FALSE(after.ok());
}

TEST_P(ExecutorClientTest, WithoutCheckpointingADropIsFinal) {
  SubscribeAndLaunch(/*checkpoint=*/false, "etcd-1");
  agent_->DropStream();
  RunUntil([&] { return lost_.has_value(); });
  EXPECT_EQ(disconnects_, 1);
  RunFor(std::chrono::milliseconds(300));
  EXPECT_EQ(agent_->CallsOfType(Call::SUBSCRIBE).size(), 1u);
}

TEST_P(ExecutorClientTest, MalformedUpdateIsReportedAndDropped) {
  SubscribeAndLaunch(true, "etcd-1");
  agent_->update_status = 400;
  auto uuid = client_->SendUpdate(MakeStatus("etcd-1", mesos::TASK_RUNNING));
  ASSERT_TRUE(uuid.ok());
  RunUntil([&] { return update_failures_.size() == 1; });
  EXPECT_EQ(update_failures_[0].code, ErrorCode::kInvalidArgument);
  EXPECT_NE(update_failures_[0].message.find("400"), std::string::npos) << update_failures_[0];
  EXPECT_TRUE(client_->unacknowledged_updates().empty());
  EXPECT_TRUE(client_->subscribed());
  RunFor(std::chrono::milliseconds(200));
  EXPECT_EQ(agent_->CallsOfType(Call::UPDATE).size(), 1u);
}

TEST_P(ExecutorClientTest, KeepsTryingTheFirstSubscriptionWhileTheAgentRecovers) {
  agent_->subscribe_status = 503;
  StartClient(Env(/*checkpoint=*/false));
  RunUntil([&] { return agent_->CallsOfType(Call::SUBSCRIBE).size() >= 3; });
  EXPECT_EQ(subscribed_, 0);
  EXPECT_FALSE(lost_.has_value());
  agent_->subscribe_status = 200;
  RunUntil([&] { return subscribed_ == 1; });
  EXPECT_EQ(disconnects_, 0);  // never subscribed before, so nothing was lost
  EXPECT_FALSE(lost_.has_value());
}

TEST_P(ExecutorClientTest, FirstSubscriptionGivesUpAfterTheRecoveryTimeout) {
  auto env = Env(true);
  env.recovery_timeout = std::chrono::milliseconds(500);
  agent_->StopListening();
  StartClient(env);
  RunUntil([&] { return lost_.has_value(); });
  EXPECT_NE(lost_->message.find("recovery timed out"), std::string::npos) << *lost_;
  EXPECT_EQ(subscribed_, 0);
}

TEST_P(ExecutorClientTest, RefusedSubscriptionIsFinal) {
  agent_->subscribe_status = 400;
  StartClient(Env(true));
  RunUntil([&] { return lost_.has_value(); });
  EXPECT_NE(lost_->message.find("400"), std::string::npos) << *lost_;
  EXPECT_EQ(subscribed_, 0);
}

INSTANTIATE_TEST_SUITE_P(BothMediaTypes, ExecutorClientTest,
                         ::testing::Values(ContentType::kJson, ContentType::kProtobuf),
                         [](const auto& info) {
                           return info.param == ContentType::kJson ? "Json" : "Protobuf";
                         });

}  // namespace
}  // namespace etcd_mesos::mesos_client
