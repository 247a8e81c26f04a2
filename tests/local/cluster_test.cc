// etcd-mesos-local end to end, in process: a framework on our real scheduler client against the
// real master and agents, with real executor processes (tests/local/test_executor.cc) and
// command tasks. These are the "done when" cases of the local Mesos.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "local/cluster.h"
#include "local/resources.h"
#include "mesos/codec.h"
#include "mesos/json_codec.h"
#include "mesos/scheduler_client.h"
#include "net/http.h"
#include "quick_cluster.h"
#include "testing/tempdir.h"

namespace etcd_mesos::local {
namespace {

using mesos::scheduler::Call;
using mesos::scheduler::Event;

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalClusterOptions options = QuickClusterOptions(dir_.path());
    options.agent.status_update_retry_min = std::chrono::milliseconds(300);
    cluster_ = std::make_unique<LocalCluster>(io_, options);
    auto bound = cluster_->Start();
    ASSERT_TRUE(bound.ok()) << bound.error();
  }

  void TearDown() override {
    client_.reset();
    cluster_->Shutdown();
    io_.run_for(std::chrono::milliseconds(100));
  }

  void RunUntil(const std::function<bool()>& done, int seconds = 20) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(done()) << "timed out";
  }

  void Connect(double failover = 3600, std::optional<std::string> id = std::nullopt,
               bool ack = true) {
    Subscribe(TestFramework(failover, id), ack);
  }

  static mesos::FrameworkInfo TestFramework(double failover = 3600,
                                            std::optional<std::string> id = std::nullopt) {
    mesos::FrameworkInfo info;
    info.set_user("root");
    info.set_name("cluster-test");
    info.set_failover_timeout(failover);
    info.set_checkpoint(true);
    info.add_roles("etcd");
    info.add_capabilities()->set_type(mesos::FrameworkInfo::Capability::MULTI_ROLE);
    info.add_capabilities()->set_type(mesos::FrameworkInfo::Capability::PARTITION_AWARE);
    if (id) info.mutable_id()->set_value(*id);
    return info;
  }

  // Subscribes `info` on the cluster's master; events are recorded, updates acknowledged if
  // `ack`.
  void Subscribe(const mesos::FrameworkInfo& info, bool ack = true) {
    mesos_client::SchedulerClient::Options options;
    options.backoff_min = std::chrono::milliseconds(50);
    options.backoff_max = std::chrono::milliseconds(200);
    auto_ack_ = ack;
    client_ = std::make_unique<mesos_client::SchedulerClient>(
        io_, options,
        mesos_client::SchedulerClient::Callbacks{
            nullptr,
            [this](const Event& e) {
              if (e.type() == Event::OFFERS) {
                for (const auto& o : e.offers().offers()) offers_.push_back(o);
              } else if (e.type() == Event::UPDATE) {
                updates_.push_back(e.update().status());
                if (auto_ack_ && e.update().status().has_uuid()) Ack(e.update().status());
              } else if (e.type() == Event::RESCIND) {
                rescinded_.push_back(e.rescind().offer_id().value());
              } else if (e.type() == Event::MESSAGE) {
                messages_.push_back(e.message());
              }
            },
            nullptr});
    client_->Start(cluster_->master().address(), info);
    RunUntil([&] { return client_->subscribed(); });
  }

  void Ack(const mesos::TaskStatus& status) {
    Call ack;
    ack.set_type(Call::ACKNOWLEDGE);
    *ack.mutable_acknowledge()->mutable_agent_id() = status.agent_id();
    *ack.mutable_acknowledge()->mutable_task_id() = status.task_id();
    ack.mutable_acknowledge()->set_uuid(status.uuid());
    client_->Send(ack);
  }

  Status SendCall(Call call) {
    std::optional<Status> result;
    client_->Send(std::move(call), [&](Status s) { result = s; });
    RunUntil([&] { return result.has_value(); });
    return *result;
  }

  static mesos::Resource Scalar(const std::string& name, double v) {
    mesos::Resource r;
    r.set_name(name);
    r.set_type(mesos::Value::SCALAR);
    r.mutable_scalar()->set_value(v);
    return r;
  }

  mesos::TaskInfo ExecutorTask(const mesos::Offer& offer, const std::string& id,
                               const std::string& data = "") {
    mesos::TaskInfo task;
    task.set_name(id);
    task.mutable_task_id()->set_value(id);
    *task.mutable_agent_id() = offer.agent_id();
    *task.add_resources() = Scalar("cpus", 0.5);
    *task.add_resources() = Scalar("mem", 64);
    task.set_data(data);
    auto* exec = task.mutable_executor();
    exec->set_type(mesos::ExecutorInfo::CUSTOM);
    exec->mutable_executor_id()->set_value("exec-" + id);
    exec->mutable_command()->set_value("./test_executor");
    auto* uri = exec->mutable_command()->add_uris();
    uri->set_value(TEST_EXECUTOR_PATH);
    uri->set_executable(true);
    *exec->add_resources() = Scalar("cpus", 0.1);
    *exec->add_resources() = Scalar("mem", 32);
    return task;
  }

  mesos::TaskInfo CommandTask(const mesos::Offer& offer, const std::string& id,
                              const std::string& command) {
    mesos::TaskInfo task;
    task.set_name(id);
    task.mutable_task_id()->set_value(id);
    *task.mutable_agent_id() = offer.agent_id();
    *task.add_resources() = Scalar("cpus", 0.5);
    task.mutable_command()->set_value(command);
    return task;
  }

  Status Launch(const mesos::Offer& offer, std::vector<mesos::TaskInfo> tasks) {
    Call call;
    call.set_type(Call::ACCEPT);
    *call.mutable_accept()->add_offer_ids() = offer.id();
    auto* op = call.mutable_accept()->add_operations();
    op->set_type(mesos::Offer::Operation::LAUNCH);
    for (auto& t : tasks) *op->mutable_launch()->add_task_infos() = t;
    return SendCall(call);
  }

  bool HasUpdate(const std::string& task, mesos::TaskState state) const {
    return std::any_of(updates_.begin(), updates_.end(), [&](const mesos::TaskStatus& s) {
      return s.task_id().value() == task && s.state() == state;
    });
  }

  Status Kill(const std::string& task, const mesos::AgentID& agent) {
    Call kill;
    kill.set_type(Call::KILL);
    kill.mutable_kill()->mutable_task_id()->set_value(task);
    *kill.mutable_kill()->mutable_agent_id() = agent;
    return SendCall(kill);
  }

  // GET on the master's HTTP server, served by this same loop.
  net::HttpResponse Get(const std::string& target) {
    net::HttpRequest req;
    req.endpoint = cluster_->master().address();
    req.target = target;
    std::optional<Result<net::HttpResponse>> got;
    net::HttpFetch(io_, req, [&](Result<net::HttpResponse> r) { got = std::move(r); });
    RunUntil([&] { return got.has_value(); });
    EXPECT_TRUE(got.has_value() && got->ok()) << target;
    return got.has_value() && got->ok() ? **got : net::HttpResponse{};
  }

  // Once every agent has offered: an offer of one agent and one of another.
  std::pair<mesos::Offer, mesos::Offer> OffersOfTwoAgents() {
    RunUntil([&] {
      std::set<std::string> agents;
      for (const auto& o : offers_) agents.insert(o.agent_id().value());
      return agents.size() == 3;
    });
    mesos::Offer a = offers_[0];
    mesos::Offer b;
    for (const auto& o : offers_) {
      if (o.agent_id().value() != a.agent_id().value()) b = o;
    }
    return {a, b};
  }

  bool HasMessage(const std::string& data) const {
    return std::any_of(messages_.begin(), messages_.end(),
                       [&](const Event::Message& m) { return m.data() == data; });
  }

  int AgentNumber(const mesos::AgentID& id) {
    for (int n = 1; n <= cluster_->agent_count(); ++n) {
      if (cluster_->agent(n) && cluster_->agent(n)->id().value() == id.value()) return n;
    }
    return -1;
  }

  test::TempDir dir_{"em-local"};
  boost::asio::io_context io_;
  std::unique_ptr<LocalCluster> cluster_;
  std::unique_ptr<mesos_client::SchedulerClient> client_;
  std::vector<mesos::Offer> offers_;
  std::vector<mesos::TaskStatus> updates_;
  std::vector<std::string> rescinded_;
  std::vector<Event::Message> messages_;
  bool auto_ack_ = true;
};

TEST_F(ClusterTest, CommandAndCustomExecutorTasksRunAndAreKilled) {
  Connect();
  auto [a, b] = OffersOfTwoAgents();
  ASSERT_TRUE(Launch(a, {CommandTask(a, "cmd", "sleep 600")}).ok());
  ASSERT_TRUE(Launch(b, {ExecutorTask(b, "custom")}).ok());
  RunUntil([&] {
    return HasUpdate("cmd", mesos::TASK_RUNNING) && HasUpdate("custom", mesos::TASK_RUNNING);
  });
  for (const auto& u : updates_) {
    if (u.state() == mesos::TASK_RUNNING) {
      EXPECT_TRUE(u.has_uuid());
      EXPECT_EQ(u.source(), mesos::TaskStatus::SOURCE_EXECUTOR);
    }
  }
  auto pids = cluster_->ProcessIds();
  EXPECT_GE(pids.size(), 2u);
  ASSERT_TRUE(Kill("cmd", a.agent_id()).ok());
  ASSERT_TRUE(Kill("custom", b.agent_id()).ok());
  RunUntil([&] {
    return HasUpdate("cmd", mesos::TASK_KILLED) && HasUpdate("custom", mesos::TASK_KILLED);
  });
  // The state endpoint agrees, and the sandbox of the custom executor is listed.
  RunUntil([&] {
    auto state = cluster_->master().StateJson();
    return state["frameworks"][0]["tasks"].empty() &&
           state["frameworks"][0]["completed_tasks"].size() == 2;
  });
}

// Framework messages go both ways through the master; /master/state, /faults/state, the sandbox
// browser and /master/redirect show a running task the way tools read them.
TEST_F(ClusterTest, MessagesStateAndPagesOfARunningTask) {
  Connect();
  RunUntil([&] { return !offers_.empty(); });
  mesos::Offer a = offers_[0];
  mesos::TaskInfo task = ExecutorTask(a, "m", "message:hello-framework");
  mesos::Resource* ports = task.add_resources();
  ports->set_name("ports");
  ports->set_type(mesos::Value::RANGES);
  auto* range = ports->mutable_ranges()->add_range();
  range->set_begin(31005);
  range->set_end(31005);
  ASSERT_TRUE(Launch(a, {task}).ok());
  RunUntil([&] { return HasUpdate("m", mesos::TASK_RUNNING) && HasMessage("hello-framework"); });
  EXPECT_EQ(messages_[0].agent_id().value(), a.agent_id().value());
  EXPECT_EQ(messages_[0].executor_id().value(), "exec-m");

  Call message;
  message.set_type(Call::MESSAGE);
  *message.mutable_message()->mutable_agent_id() = a.agent_id();
  message.mutable_message()->mutable_executor_id()->set_value("exec-m");
  message.mutable_message()->set_data("ping");
  ASSERT_TRUE(SendCall(message).ok());
  RunUntil([&] { return HasMessage("echo:ping"); });

  auto state = nlohmann::json::parse(Get("/master/state").body);
  const auto& fw = state["frameworks"][0];
  ASSERT_EQ(fw["tasks"].size(), 1u);
  const auto& t = fw["tasks"][0];
  EXPECT_EQ(t["id"], "m");
  EXPECT_EQ(t["slave_id"], a.agent_id().value());
  EXPECT_EQ(t["executor_id"], "exec-m");
  EXPECT_EQ(t["state"], "TASK_RUNNING");
  EXPECT_EQ(t["resources"]["ports"], "[31005-31005]");
  ASSERT_FALSE(t["statuses"].empty());
  EXPECT_EQ(t["statuses"].back()["state"], "TASK_RUNNING");
  ASSERT_EQ(fw["executors"].size(), 1u);
  std::string sandbox = fw["executors"][0]["directory"];
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(sandbox) / "stderr")) << sandbox;
  EXPECT_NE(sandbox.find("/frameworks/" + fw["id"].get<std::string>() + "/executors/exec-m/runs/"),
            std::string::npos)
      << "laid out as a Mesos agent lays out sandboxes: " << sandbox;

  // The console (tests/local/console_test.cc) links the sandbox from /faults/state.
  auto faults = nlohmann::json::parse(Get("/faults/state").body);
  std::string listed;
  for (const auto& agent : faults["agents"]) {
    for (const auto& e : agent["executors"]) {
      if (agent["id"] == a.agent_id().value() && e["executor_id"] == "exec-m")
        listed = e["directory"];
    }
  }
  EXPECT_EQ(listed, sandbox);
  auto listing = Get("/sandbox?path=" + sandbox);
  EXPECT_EQ(listing.status, 200u);
  EXPECT_NE(listing.body.find(">stderr</a>"), std::string::npos) << listing.body;
  // The on-call guide: "the path for the task's sandbox on the slave is visible near the top".
  EXPECT_NE(listing.body.find("<h2>Sandbox: " + sandbox + "</h2>"), std::string::npos)
      << listing.body;
  EXPECT_EQ(Get("/sandbox?path=/etc").status, 403u) << "nothing outside the work dir";

  auto redirect = Get("/master/redirect");
  EXPECT_EQ(redirect.status, 307u);
  EXPECT_EQ(redirect.Header("Location"), "//" + cluster_->master().address().ToString());
}

TEST_F(ClusterTest, ImplicitAndExplicitReconciliationAnswerRealStates) {
  Connect();
  RunUntil([&] { return !offers_.empty(); });
  mesos::Offer a = offers_[0];
  ASSERT_TRUE(Launch(a, {ExecutorTask(a, "r")}).ok());
  RunUntil([&] { return HasUpdate("r", mesos::TASK_RUNNING); });
  updates_.clear();
  Call implicit;
  implicit.set_type(Call::RECONCILE);
  implicit.mutable_reconcile();
  ASSERT_TRUE(SendCall(implicit).ok());
  RunUntil([&] { return HasUpdate("r", mesos::TASK_RUNNING); });
  EXPECT_EQ(updates_[0].reason(), mesos::TaskStatus::REASON_RECONCILIATION);
  updates_.clear();
  Call explicit_call;
  explicit_call.set_type(Call::RECONCILE);
  auto* t = explicit_call.mutable_reconcile()->add_tasks();
  t->mutable_task_id()->set_value("r");
  *t->mutable_agent_id() = a.agent_id();
  auto* gone = explicit_call.mutable_reconcile()->add_tasks();
  gone->mutable_task_id()->set_value("ghost");
  *gone->mutable_agent_id() = a.agent_id();
  ASSERT_TRUE(SendCall(explicit_call).ok());
  RunUntil(
      [&] { return HasUpdate("r", mesos::TASK_RUNNING) && HasUpdate("ghost", mesos::TASK_GONE); });
}

TEST_F(ClusterTest, ResubscribingWithinTheFailoverTimeoutKeepsTasksPastItTheyAreKilled) {
  Connect(/*failover=*/1.0);
  RunUntil([&] { return !offers_.empty(); });
  mesos::Offer a = offers_[0];
  ASSERT_TRUE(Launch(a, {ExecutorTask(a, "keep")}).ok());
  RunUntil([&] { return HasUpdate("keep", mesos::TASK_RUNNING); });
  std::string fid = *client_->framework_id();
  auto pids = cluster_->ProcessIds();
  ASSERT_FALSE(pids.empty());
  client_.reset();
  io_.run_for(std::chrono::milliseconds(300));
  Connect(1.0, fid);
  io_.run_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(cluster_->master().StateJson()["frameworks"][0]["tasks"].size(), 1u);
  for (int pid : pids) EXPECT_EQ(::kill(pid, 0), 0) << "executor " << pid << " must survive";

  client_.reset();  // now stay away past the timeout
  RunUntil([&] { return cluster_->ProcessIds().empty(); });
  for (int pid : pids) {
    RunUntil([&] { return ::kill(pid, 0) != 0; });
  }
  EXPECT_TRUE(cluster_->master().StateJson()["frameworks"].empty());
}

TEST_F(ClusterTest, StoppedAgentYieldsUnreachableAndRescindsItsOffers) {
  Connect();
  RunUntil([&] { return offers_.size() >= 3; });
  mesos::Offer a = offers_[0];
  ASSERT_TRUE(Launch(a, {ExecutorTask(a, "lost")}).ok());
  RunUntil([&] { return HasUpdate("lost", mesos::TASK_RUNNING); });
  // An offer of another agent is still outstanding (never declined); we will stop that agent.
  mesos::Offer other;
  for (const auto& o : offers_) {
    if (o.agent_id().value() != a.agent_id().value()) other = o;
  }
  ASSERT_TRUE(other.has_id());
  auto pids = cluster_->agent(AgentNumber(a.agent_id()))->ProcessIds();
  ASSERT_TRUE(cluster_->StopAgent(AgentNumber(a.agent_id())).ok());
  ASSERT_TRUE(cluster_->StopAgent(AgentNumber(other.agent_id())).ok());
  for (int pid : pids) EXPECT_NE(::kill(pid, 0), 0) << "a lost host takes its executors with it";
  RunUntil([&] { return HasUpdate("lost", mesos::TASK_UNREACHABLE); });
  RunUntil(
      [&] { return std::count(rescinded_.begin(), rescinded_.end(), other.id().value()) == 1; });
}

TEST_F(ClusterTest, UnacknowledgedUpdateIsSentAgainWithTheSameUuid) {
  Connect(3600, std::nullopt, /*ack=*/false);
  RunUntil([&] { return !offers_.empty(); });
  mesos::Offer a = offers_[0];
  ASSERT_TRUE(Launch(a, {ExecutorTask(a, "resend")}).ok());
  RunUntil([&] {
    return std::count_if(updates_.begin(), updates_.end(), [](const mesos::TaskStatus& s) {
             return s.task_id().value() == "resend" && s.state() == mesos::TASK_RUNNING;
           }) >= 2;
  });
  std::vector<std::string> uuids;
  for (const auto& u : updates_) {
    if (u.task_id().value() == "resend") uuids.push_back(u.uuid());
  }
  EXPECT_EQ(uuids[0], uuids[1]);
  Ack(updates_[0]);
  size_t seen = updates_.size();
  io_.run_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(updates_.size(), seen) << "acknowledged updates are not resent";
}

TEST_F(ClusterTest, PartitionedAgentComesBackRunning) {
  Connect();
  RunUntil([&] { return !offers_.empty(); });
  mesos::Offer a = offers_[0];
  ASSERT_TRUE(Launch(a, {ExecutorTask(a, "part")}).ok());
  RunUntil([&] { return HasUpdate("part", mesos::TASK_RUNNING); });
  int n = AgentNumber(a.agent_id());
  ASSERT_TRUE(cluster_->PartitionAgent(n).ok());
  RunUntil([&] { return HasUpdate("part", mesos::TASK_UNREACHABLE); });
  ASSERT_TRUE(cluster_->HealAgent(n).ok());
  io_.run_for(std::chrono::milliseconds(800));
  updates_.clear();
  Call reconcile;
  reconcile.set_type(Call::RECONCILE);
  reconcile.mutable_reconcile();
  ASSERT_TRUE(SendCall(reconcile).ok());
  RunUntil([&] { return HasUpdate("part", mesos::TASK_RUNNING); });
}

// The master restarts with no memory: until the agent re-registers, explicit reconciliation of a
// live task answers TASK_UNKNOWN (not RUNNING, not GONE) and the agent gets no offers; then the
// agent re-registers with its task, which is RUNNING again under the re-subscribed framework.
TEST_F(ClusterTest, MasterRestartForgetsEverythingUntilTheAgentsReregister) {
  Connect();
  RunUntil([&] { return !offers_.empty(); });
  mesos::Offer a = offers_[0];
  ASSERT_TRUE(Launch(a, {ExecutorTask(a, "m")}).ok());
  RunUntil([&] { return HasUpdate("m", mesos::TASK_RUNNING); });
  std::string fid = *client_->framework_id();
  auto pids = cluster_->ProcessIds();

  net::HttpRequest req;
  req.method = net::Verb::post;
  req.endpoint = cluster_->master().address();
  std::optional<Result<net::HttpResponse>> got;
  req.target = "/faults/master/restart?agents_after_ms=soon";
  net::HttpFetch(io_, req, [&](Result<net::HttpResponse> r) { got = std::move(r); });
  RunUntil([&] { return got.has_value(); });
  ASSERT_TRUE(got->ok());
  EXPECT_EQ((*got)->status, 400u) << (*got)->body;
  got.reset();
  req.target = "/faults/master/restart?agents_after_ms=2000";
  net::HttpFetch(io_, req, [&](Result<net::HttpResponse> r) { got = std::move(r); });
  RunUntil([&] { return got.has_value(); });
  ASSERT_TRUE(got->ok());
  EXPECT_EQ((*got)->status, 200u) << (*got)->body;

  client_.reset();
  io_.run_for(std::chrono::milliseconds(300));
  offers_.clear();
  updates_.clear();
  Connect(3600, fid);
  Call reconcile;
  reconcile.set_type(Call::RECONCILE);
  auto* t = reconcile.mutable_reconcile()->add_tasks();
  t->mutable_task_id()->set_value("m");
  *t->mutable_agent_id() = a.agent_id();
  ASSERT_TRUE(SendCall(reconcile).ok());
  RunUntil([&] { return HasUpdate("m", mesos::TASK_UNKNOWN); });
  EXPECT_TRUE(HasUpdate("m", mesos::TASK_UNKNOWN)) << "the new master cannot vouch for it yet";
  for (const auto& o : offers_) {
    EXPECT_NE(o.agent_id().value(), a.agent_id().value()) << "offered before re-registration";
  }
  for (int pid : pids) EXPECT_EQ(::kill(pid, 0), 0) << "executor " << pid << " must survive";

  io_.run_for(std::chrono::milliseconds(3000));  // the agents re-register
  updates_.clear();
  ASSERT_TRUE(SendCall(reconcile).ok());
  RunUntil([&] { return HasUpdate("m", mesos::TASK_RUNNING); });
  EXPECT_TRUE(HasUpdate("m", mesos::TASK_RUNNING));
  auto state = cluster_->master().StateJson();
  ASSERT_EQ(state["frameworks"].size(), 1u);
  EXPECT_EQ(state["frameworks"][0]["id"], fid);
  EXPECT_EQ(state["frameworks"][0]["tasks"].size(), 1u);
}

TEST_F(ClusterTest, FaultEndpointsAnswerAndRefuseNonsense) {
  auto post = [&](const std::string& target) {
    net::HttpRequest req;
    req.method = net::Verb::post;
    req.endpoint = cluster_->master().address();
    req.target = target;
    std::optional<Result<net::HttpResponse>> got;
    net::HttpFetch(io_, req, [&](Result<net::HttpResponse> r) { got = std::move(r); });
    RunUntil([&] { return got.has_value(); });
    return got->ok() ? (*got)->status : 0u;
  };
  EXPECT_EQ(post("/faults/agents/9/stop"), 404u);
  EXPECT_EQ(post("/faults/agents/x/stop"), 400u);
  EXPECT_EQ(post("/faults/agents/1/explode"), 404u);
  EXPECT_EQ(post("/faults/executors/nope/kill"), 404u);
  EXPECT_EQ(post("/faults/agents/2/partition"), 200u);
  EXPECT_EQ(post("/faults/agents/2/heal"), 200u);
  EXPECT_EQ(post("/faults/agents/3/stop"), 200u);
  EXPECT_EQ(post("/faults/agents/3/stop"), 400u) << "already stopped";
  EXPECT_EQ(post("/faults/agents/3/restart"), 200u);
  EXPECT_EQ(post("/faults/agents/1/restart?wipe=1"), 200u);
}

TEST_F(ClusterTest, AgentRestartKeepingItsWorkDirKeepsTasksWipingItLosesThem) {
  Connect();
  RunUntil([&] { return !offers_.empty(); });
  mesos::Offer a = offers_[0];
  ASSERT_TRUE(Launch(a, {ExecutorTask(a, "survivor")}).ok());
  RunUntil([&] { return HasUpdate("survivor", mesos::TASK_RUNNING); });
  int n = AgentNumber(a.agent_id());
  auto pids = cluster_->agent(n)->ProcessIds();
  ASSERT_FALSE(pids.empty());

  ASSERT_TRUE(cluster_->RestartAgent(n, /*wipe=*/false).ok());
  io_.run_for(std::chrono::milliseconds(1000));
  for (int pid : pids) EXPECT_EQ(::kill(pid, 0), 0) << "executors survive an agent restart";
  updates_.clear();
  Call reconcile;
  reconcile.set_type(Call::RECONCILE);
  reconcile.mutable_reconcile();
  ASSERT_TRUE(SendCall(reconcile).ok());
  RunUntil([&] { return HasUpdate("survivor", mesos::TASK_RUNNING); });

  // As Mesos 1.11: TASK_LOST (REASON_AGENT_REMOVED) even to a PARTITION_AWARE framework.
  ASSERT_TRUE(cluster_->RestartAgent(n, /*wipe=*/true).ok());
  RunUntil([&] { return HasUpdate("survivor", mesos::TASK_LOST); });
  for (const auto& u : updates_) {
    if (u.task_id().value() != "survivor" || u.state() != mesos::TASK_LOST) continue;
    EXPECT_EQ(u.reason(), mesos::TaskStatus::REASON_AGENT_REMOVED);
    EXPECT_NE(u.message().find("removed: a new agent registered at the same address"),
              std::string::npos)
        << u.message();
  }
  for (int pid : pids) {
    RunUntil([&] { return ::kill(pid, 0) != 0; });
  }
  EXPECT_NE(cluster_->agent(n)->id().value(), a.agent_id().value()) << "a wiped agent is new";
}

// ---- Persistent volumes on real agents -------------------------------------------------------

class VolumeClusterTest : public ClusterTest {
 protected:
  static mesos::Resource Reserved(mesos::Resource r) {
    auto* reservation = r.add_reservations();
    reservation->set_type(mesos::Resource::ReservationInfo::DYNAMIC);
    reservation->set_role("etcd");
    reservation->set_principal("etcd-principal");
    auto* label = reservation->mutable_labels()->add_labels();
    label->set_key("member");
    label->set_value("etcd-1");
    return r;
  }
  static mesos::Resource Volume() {
    mesos::Resource v = Reserved(Scalar("disk", 64));
    v.mutable_disk()->mutable_persistence()->set_id("vol-1");
    v.mutable_disk()->mutable_persistence()->set_principal("etcd-principal");
    v.mutable_disk()->mutable_volume()->set_container_path("data");
    v.mutable_disk()->mutable_volume()->set_mode(mesos::Volume::RW);
    return v;
  }
  static mesos::Offer::Operation Operation(mesos::Offer::Operation::Type type,
                                           std::vector<mesos::Resource> resources) {
    mesos::Offer::Operation op;
    op.set_type(type);
    for (auto& r : resources) {
      if (type == mesos::Offer::Operation::RESERVE) *op.mutable_reserve()->add_resources() = r;
      if (type == mesos::Offer::Operation::UNRESERVE) *op.mutable_unreserve()->add_resources() = r;
      if (type == mesos::Offer::Operation::CREATE) *op.mutable_create()->add_volumes() = r;
      if (type == mesos::Offer::Operation::DESTROY) *op.mutable_destroy()->add_volumes() = r;
    }
    return op;
  }
  // A command task on the member's reserved cpus and its volume.
  mesos::TaskInfo VolumeTask(const mesos::Offer& offer, const std::string& id,
                             const std::string& command) {
    mesos::TaskInfo task = CommandTask(offer, id, command);
    task.clear_resources();
    *task.add_resources() = Reserved(Scalar("cpus", 0.5));
    *task.add_resources() = Volume();
    return task;
  }
  Status Accept(const mesos::Offer& offer, std::vector<mesos::Offer::Operation> operations) {
    Call call;
    call.set_type(Call::ACCEPT);
    *call.mutable_accept()->add_offer_ids() = offer.id();
    call.mutable_accept()->mutable_filters()->set_refuse_seconds(0);
    for (auto& op : operations) *call.mutable_accept()->add_operations() = op;
    return SendCall(call);
  }
  mesos::Offer::Operation LaunchOp(mesos::TaskInfo task) {
    mesos::Offer::Operation op;
    op.set_type(mesos::Offer::Operation::LAUNCH);
    *op.mutable_launch()->add_task_infos() = std::move(task);
    return op;
  }
  void ConnectDurable() {
    // The fixture's framework, with a principal and RESERVATION_REFINEMENT.
    mesos::FrameworkInfo info = TestFramework();
    info.set_principal("etcd-principal");
    info.add_capabilities()->set_type(mesos::FrameworkInfo::Capability::RESERVATION_REFINEMENT);
    Subscribe(info);
  }
  // The newest offer from `agent` that holds the volume and is still outstanding (not used, not
  // rescinded), once one comes.
  std::optional<mesos::Offer> OfferWithTheVolume(const mesos::AgentID& agent) {
    for (auto it = offers_.rbegin(); it != offers_.rend(); ++it) {
      if (it->agent_id().value() != agent.value()) continue;
      if (std::count(rescinded_.begin(), rescinded_.end(), it->id().value()) != 0) continue;
      for (const auto& r : it->resources()) {
        if (r.has_disk() && r.disk().has_persistence()) return *it;
      }
    }
    return std::nullopt;
  }
  // RESERVE the member's cpus and disk and CREATE its volume, the start of every ACCEPT here.
  std::vector<mesos::Offer::Operation> ReserveAndCreate() {
    return {Operation(mesos::Offer::Operation::RESERVE,
                      {Reserved(Scalar("cpus", 0.5)), Reserved(Scalar("disk", 64))}),
            Operation(mesos::Offer::Operation::CREATE, {Volume()})};
  }
  // Where agent `n` keeps the volume: volumes/roles/<role>/<id> under its work dir.
  std::filesystem::path VolumeDir(int n) {
    return std::filesystem::path(
               cluster_->agent(n)->StateJson()["flags"]["work_dir"].get<std::string>()) /
           "volumes/roles/etcd/vol-1";
  }
  static std::string Read(const std::filesystem::path& file) {
    std::ifstream in(file);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
};

// RESERVE + CREATE + LAUNCH in one ACCEPT; the volume is a directory under the agent's work dir,
// linked into the sandbox at its container path; a relaunch on it finds the data, also after an
// agent restart that keeps the work dir; DESTROY deletes it and UNRESERVE frees the resources.
TEST_F(VolumeClusterTest, AVolumeKeepsItsDataAcrossTasksAndAgentRestartsUntilDestroyed) {
  ConnectDurable();
  RunUntil([&] { return !offers_.empty(); });
  mesos::Offer a = offers_[0];
  int n = AgentNumber(a.agent_id());
  auto operations = ReserveAndCreate();
  operations.push_back(LaunchOp(VolumeTask(a, "first", "echo first > data/log && sleep 1000")));
  ASSERT_TRUE(Accept(a, operations).ok());
  RunUntil([&] { return HasUpdate("first", mesos::TASK_RUNNING); });
  std::filesystem::path volume = VolumeDir(n);
  RunUntil([&] { return Read(volume / "log") == "first\n"; });
  std::string sandbox = cluster_->agent(n)->SandboxOf(a.framework_id().value(), "first");
  ASSERT_FALSE(sandbox.empty());
  EXPECT_TRUE(std::filesystem::is_symlink(std::filesystem::path(sandbox) / "data"));
  EXPECT_EQ(std::filesystem::read_symlink(std::filesystem::path(sandbox) / "data"), volume);

  ASSERT_TRUE(Kill("first", a.agent_id()).ok());
  RunUntil([&] { return HasUpdate("first", mesos::TASK_KILLED); });
  ASSERT_TRUE(cluster_->RestartAgent(n, /*wipe=*/false).ok());
  // The volume may have been offered back already, before the restart: a restart that keeps the
  // agent's id rescinds nothing (as in Mesos), so that offer is still good.
  ASSERT_NO_FATAL_FAILURE(RunUntil([&] { return OfferWithTheVolume(a.agent_id()).has_value(); }));
  mesos::Offer back = *OfferWithTheVolume(a.agent_id());
  ASSERT_TRUE(
      Accept(back, {LaunchOp(VolumeTask(back, "second", "echo second >> data/log && sleep 1000"))})
          .ok());
  std::erase_if(offers_,
                [&](const mesos::Offer& o) { return o.id().value() == back.id().value(); });
  RunUntil([&] { return Read(volume / "log") == "first\nsecond\n"; });

  ASSERT_TRUE(Kill("second", a.agent_id()).ok());
  RunUntil([&] { return HasUpdate("second", mesos::TASK_KILLED); });
  ASSERT_NO_FATAL_FAILURE(RunUntil([&] { return OfferWithTheVolume(a.agent_id()).has_value(); }));
  back = *OfferWithTheVolume(a.agent_id());
  mesos::Resource plain_disk = Volume();
  plain_disk.clear_disk();
  ASSERT_TRUE(Accept(back, {Operation(mesos::Offer::Operation::DESTROY, {Volume()}),
                            Operation(mesos::Offer::Operation::UNRESERVE,
                                      {Reserved(Scalar("cpus", 0.5)), plain_disk})})
                  .ok());
  RunUntil([&] { return !std::filesystem::exists(volume); });
  auto state = nlohmann::json::parse(Get("/master/state").body);
  for (const auto& agent : state["slaves"]) EXPECT_TRUE(agent["reserved_resources"].empty());
}

// A wiped work dir is a new disk: the agent comes back with a new id and neither the volume nor
// the reservation.
TEST_F(VolumeClusterTest, AnAgentRestartedWithAWipedWorkDirHasNoVolumeLeft) {
  ConnectDurable();
  RunUntil([&] { return !offers_.empty(); });
  mesos::Offer a = offers_[0];
  int n = AgentNumber(a.agent_id());
  ASSERT_TRUE(Accept(a, ReserveAndCreate()).ok());
  std::filesystem::path volume = VolumeDir(n);
  RunUntil([&] { return std::filesystem::is_directory(volume); });
  ASSERT_TRUE(cluster_->RestartAgent(n, /*wipe=*/true).ok());
  EXPECT_FALSE(std::filesystem::exists(volume));
  std::string new_id = cluster_->agent(n)->id().value();
  EXPECT_NE(new_id, a.agent_id().value());
  auto state = nlohmann::json::parse(Get("/master/state").body);
  for (const auto& agent : state["slaves"]) {
    EXPECT_TRUE(agent["reserved_resources"].empty()) << agent.dump();
  }
}

// The agents of one etcd-mesos-local are one host and share one fetcher cache: a cached URI that
// agent 1 fetched is linked from there on agent 2 (the source has changed since, so a download
// would give the new bytes), and an uncached URI is fetched afresh.
TEST_F(ClusterTest, AgentsShareOneFetcherCache) {
  Connect();
  auto [a, b] = OffersOfTwoAgents();
  std::filesystem::path source = dir_.path() / "artifact.txt";
  std::ofstream(source) << "version 1";
  std::set<std::string> used;
  auto fetch_and_copy = [&](const mesos::AgentID& agent, const std::string& id, bool cache) {
    const mesos::Offer* fresh = nullptr;
    RunUntil([&] {
      for (const auto& o : offers_) {
        if (o.agent_id().value() == agent.value() && !used.count(o.id().value())) fresh = &o;
      }
      return fresh != nullptr;
    });
    mesos::Offer offer = *fresh;
    used.insert(offer.id().value());
    mesos::TaskInfo task = CommandTask(offer, id, "cp artifact.txt " + (dir_.path() / id).string());
    auto* uri = task.mutable_command()->add_uris();
    uri->set_value("file://" + source.string());
    uri->set_cache(cache);
    EXPECT_TRUE(Launch(offer, {task}).ok());
    RunUntil([&] { return HasUpdate(id, mesos::TASK_FINISHED); });
    std::ifstream in(dir_.path() / id);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  EXPECT_EQ(fetch_and_copy(a.agent_id(), "first", true), "version 1");
  std::ofstream(source, std::ios::trunc) << "version 2";
  EXPECT_EQ(fetch_and_copy(b.agent_id(), "second", true), "version 1") << "agent 2 downloaded";
  EXPECT_EQ(fetch_and_copy(b.agent_id(), "third", false), "version 2") << "an uncached URI cached";
  EXPECT_TRUE(std::filesystem::is_directory(dir_.path() / "fetch-cache"));
}

}  // namespace
}  // namespace etcd_mesos::local
