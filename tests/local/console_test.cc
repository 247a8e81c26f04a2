// The operator's console of etcd-mesos-local over HTTP: the page at `/` is one self-contained
// document that refreshes itself from JSON (no external assets, no meta refresh), and
// GET /faults/state, its data from the harness, lists every agent with its number and fault
// state, following the faults, and every executor with its sandbox.
#include <filesystem>
#include <optional>
#include <regex>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "local/cluster.h"
#include "local/resources.h"
#include "mesos/scheduler_client.h"
#include "net/http.h"
#include "quick_cluster.h"
#include "testing/tempdir.h"

namespace etcd_mesos::local {
namespace {

using mesos::scheduler::Call;
using mesos::scheduler::Event;
using nlohmann::json;

class ConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalClusterOptions options = QuickClusterOptions(dir_.path());
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

  net::HttpResponse Request(net::Verb method, const std::string& target) {
    net::HttpRequest req;
    req.method = method;
    req.endpoint = cluster_->master().address();
    req.target = target;
    std::optional<Result<net::HttpResponse>> got;
    net::HttpFetch(io_, req, [&](Result<net::HttpResponse> r) { got = std::move(r); });
    RunUntil([&] { return got.has_value(); });
    EXPECT_TRUE(got.has_value() && got->ok()) << target;
    return got.has_value() && got->ok() ? **got : net::HttpResponse{};
  }
  net::HttpResponse Get(const std::string& target) { return Request(net::Verb::get, target); }
  net::HttpResponse Post(const std::string& target) { return Request(net::Verb::post, target); }

  json FaultState() {
    auto r = Get("/faults/state");
    EXPECT_EQ(r.status, 200u) << r.body;
    EXPECT_EQ(r.Header("Content-Type").value_or("").rfind("application/json", 0), 0u);
    return json::parse(r.body);
  }

  // Agent n's entry in /faults/state (agents are listed in order, numbered from 1).
  json AgentEntry(int n) {
    json state = FaultState();
    for (const auto& a : state["agents"]) {
      if (a["n"] == n) return a;
    }
    ADD_FAILURE() << "no agent " << n << " in " << state.dump();
    return json::object();
  }

  void Connect() {
    mesos::FrameworkInfo info;
    info.set_user("root");
    info.set_name("console-test");
    info.set_failover_timeout(3600);
    info.add_roles("etcd");
    info.add_capabilities()->set_type(mesos::FrameworkInfo::Capability::MULTI_ROLE);
    mesos_client::SchedulerClient::Options options;
    options.backoff_min = std::chrono::milliseconds(50);
    options.backoff_max = std::chrono::milliseconds(200);
    client_ = std::make_unique<mesos_client::SchedulerClient>(
        io_, options,
        mesos_client::SchedulerClient::Callbacks{
            nullptr,
            [this](const Event& e) {
              if (e.type() == Event::OFFERS) {
                for (const auto& o : e.offers().offers()) offers_.push_back(o);
              } else if (e.type() == Event::UPDATE) {
                updates_.push_back(e.update().status());
                if (e.update().status().has_uuid()) {
                  Call ack;
                  ack.set_type(Call::ACKNOWLEDGE);
                  const auto& s = e.update().status();
                  *ack.mutable_acknowledge()->mutable_agent_id() = s.agent_id();
                  *ack.mutable_acknowledge()->mutable_task_id() = s.task_id();
                  ack.mutable_acknowledge()->set_uuid(s.uuid());
                  client_->Send(ack);
                }
              }
            },
            nullptr});
    client_->Start(cluster_->master().address(), info);
    RunUntil([&] { return client_->subscribed(); });
  }

  bool HasUpdate(const std::string& task, mesos::TaskState state) const {
    return std::any_of(updates_.begin(), updates_.end(), [&](const mesos::TaskStatus& s) {
      return s.task_id().value() == task && s.state() == state;
    });
  }

  // Launches a command task `id` running `sleep 600` on the first offer's agent.
  mesos::Offer LaunchSleeper(const std::string& id) {
    RunUntil([&] { return !offers_.empty(); });
    mesos::Offer offer = offers_[0];
    mesos::TaskInfo task;
    task.set_name(id);
    task.mutable_task_id()->set_value(id);
    *task.mutable_agent_id() = offer.agent_id();
    auto* cpus = task.add_resources();
    cpus->set_name("cpus");
    cpus->set_type(mesos::Value::SCALAR);
    cpus->mutable_scalar()->set_value(0.5);
    task.mutable_command()->set_value("sleep 600");
    Call call;
    call.set_type(Call::ACCEPT);
    *call.mutable_accept()->add_offer_ids() = offer.id();
    auto* op = call.mutable_accept()->add_operations();
    op->set_type(mesos::Offer::Operation::LAUNCH);
    *op->mutable_launch()->add_task_infos() = task;
    std::optional<Status> sent;
    client_->Send(call, [&](Status s) { sent = s; });
    RunUntil([&] { return sent.has_value(); });
    EXPECT_TRUE(sent->ok());
    RunUntil([&] { return HasUpdate(id, mesos::TASK_RUNNING); });
    return offer;
  }

  int AgentNumber(const mesos::AgentID& id) {
    for (int n = 1; n <= cluster_->agent_count(); ++n) {
      if (cluster_->agent(n) && cluster_->agent(n)->id().value() == id.value()) return n;
    }
    return -1;
  }

  test::TempDir dir_{"em-console"};
  boost::asio::io_context io_;
  std::unique_ptr<LocalCluster> cluster_;
  std::unique_ptr<mesos_client::SchedulerClient> client_;
  std::vector<mesos::Offer> offers_;
  std::vector<mesos::TaskStatus> updates_;
};

TEST_F(ConsoleTest, IndexIsOneSelfContainedPageThatRefreshesItselfFromJson) {
  for (const char* target : {"/", "/index.html"}) {
    auto page = Get(target);
    ASSERT_EQ(page.status, 200u) << target;
    EXPECT_EQ(page.Header("Content-Type").value_or("").rfind("text/html", 0), 0u)
        << page.Header("Content-Type").value_or("(none)");
    const std::string& body = page.body;

    // No external assets: every src= and href= is relative to this server (no scheme, no
    // protocol-relative //host), and nothing is pulled in any other way.
    std::regex attribute(R"re(\b(src|href)\s*=\s*["']?([^"'\s>]*))re", std::regex::icase);
    int links = 0;
    for (auto it = std::sregex_iterator(body.begin(), body.end(), attribute);
         it != std::sregex_iterator(); ++it) {
      std::string value = (*it)[2];
      ++links;
      EXPECT_FALSE(value.starts_with("//")) << (*it)[0];
      EXPECT_EQ(value.find("://"), std::string::npos) << (*it)[0];
      EXPECT_FALSE(
          std::regex_search(value, std::regex("^(https?|javascript|data):", std::regex::icase)))
          << (*it)[0];
    }
    EXPECT_GE(links, 2) << "the regex must see the page's own links (/master/state, /faults)";
    EXPECT_FALSE(
        std::regex_search(body, std::regex(R"re(<script[^>]*\bsrc\b)re", std::regex::icase)));
    EXPECT_FALSE(std::regex_search(body, std::regex(R"re(<link\b)re", std::regex::icase)));
    EXPECT_FALSE(
        std::regex_search(body, std::regex(R"re(@import|\burl\s*\()re", std::regex::icase)));

    // Refreshed in place by script, never by reloading.
    EXPECT_FALSE(std::regex_search(body, std::regex("http-equiv", std::regex::icase))) << body;
    EXPECT_FALSE(std::regex_search(body, std::regex(R"re(location\.reload)re")));
    EXPECT_NE(body.find("fetchJson('/master/state')"), std::string::npos);
    EXPECT_NE(body.find("fetchJson('/faults/state')"), std::string::npos);
    EXPECT_NE(body.find("await fetch(url"), std::string::npos);
    EXPECT_NE(body.find("POLL_MS = 2000"), std::string::npos);
    EXPECT_NE(body.find("Master not answering since"), std::string::npos);

    // Readable on a phone, and accessible: headings, column headers, a live status region, an
    // in-page confirmation; data goes in through textContent, never innerHTML.
    EXPECT_NE(body.find(R"(<meta name="viewport")"), std::string::npos);
    EXPECT_NE(body.find("<h1>"), std::string::npos);
    EXPECT_NE(body.find(R"(<h2 id="agents-heading">Agents</h2>)"), std::string::npos);
    EXPECT_NE(body.find(R"(<h2 id="frameworks-heading">Frameworks</h2>)"), std::string::npos);
    EXPECT_NE(body.find(R"(<th scope="col">State</th>)"), std::string::npos);
    EXPECT_NE(body.find(R"(role="status")"), std::string::npos);
    EXPECT_NE(body.find(R"(<dialog id="confirm")"), std::string::npos);
    EXPECT_FALSE(std::regex_search(
        body,
        std::regex(R"re(\.(inner|outer)HTML\s*\+?=(?!=)|insertAdjacentHTML|document\.write)re")));
  }
}

TEST_F(ConsoleTest, FaultStateListsEveryAgentAndFollowsTheFaults) {
  json state = FaultState();
  ASSERT_EQ(state["agents"].size(), 3u) << state.dump();
  EXPECT_EQ(state["master"]["id"], cluster_->master().id());
  EXPECT_EQ(state["master"]["address"], cluster_->master().address().ToString());
  for (int n = 1; n <= 3; ++n) {
    const json& a = state["agents"][n - 1];
    EXPECT_EQ(a["n"], n);
    EXPECT_EQ(a["id"], cluster_->agent(n)->id().value());
    EXPECT_EQ(a["ip"], "127.0.0." + std::to_string(n + 1));
    EXPECT_EQ(a["port"], cluster_->agent(n)->address().port);
    EXPECT_EQ(a["state"], "running");
    EXPECT_EQ(a["resources"]["cpus"], 4);
    EXPECT_TRUE(a["executors"].empty());
  }

  auto post = [&](const std::string& target) {
    auto r = Post(target);
    EXPECT_EQ(r.status, 200u) << target << ": " << r.body;
  };
  post("/faults/agents/2/stop");
  EXPECT_EQ(AgentEntry(2)["state"], "stopped");
  EXPECT_EQ(AgentEntry(2)["running"], false);
  EXPECT_EQ(AgentEntry(1)["state"], "running") << "only the agent hit changes";
  EXPECT_EQ(AgentEntry(3)["state"], "running");
  post("/faults/agents/2/restart");
  EXPECT_EQ(AgentEntry(2)["state"], "running");
  EXPECT_EQ(AgentEntry(2)["id"], cluster_->agent(2)->id().value());

  post("/faults/agents/3/crash");
  EXPECT_EQ(AgentEntry(3)["state"], "crashed");
  post("/faults/agents/3/restart");
  EXPECT_EQ(AgentEntry(3)["state"], "running");

  post("/faults/agents/1/partition");
  EXPECT_EQ(AgentEntry(1)["state"], "partitioned");
  EXPECT_EQ(AgentEntry(1)["partitioned"], true);
  post("/faults/agents/1/heal");
  EXPECT_EQ(AgentEntry(1)["state"], "running");

  std::string old_id = AgentEntry(1)["id"];
  post("/faults/agents/1/restart?wipe=1");
  EXPECT_EQ(AgentEntry(1)["state"], "running");
  EXPECT_NE(AgentEntry(1)["id"], old_id) << "a wiped agent comes back as a new one";

  EXPECT_EQ(Post("/faults/state").status, 405u) << "the state is read, not injected";
  EXPECT_NE(Get("/faults").body.find("/faults/state"), std::string::npos) << "in the help";
}

TEST_F(ConsoleTest, FaultStateListsEachExecutorWithItsSandbox) {
  Connect();
  mesos::Offer offer = LaunchSleeper("sleeper");
  int n = AgentNumber(offer.agent_id());
  ASSERT_GE(n, 1);
  json agent = AgentEntry(n);
  ASSERT_EQ(agent["executors"].size(), 1u) << agent.dump();
  const json& e = agent["executors"][0];
  EXPECT_EQ(e["framework_id"], *client_->framework_id());
  EXPECT_EQ(e["executor_id"], "sleeper") << "a command task's executor has the task's id";
  EXPECT_EQ(e["live"], true);
  std::string dir = e["directory"];
  EXPECT_TRUE(std::filesystem::is_directory(dir)) << dir;
  EXPECT_NE(dir.find("/frameworks/" + *client_->framework_id() + "/executors/sleeper/runs/"),
            std::string::npos)
      << dir;
  // The console's sandbox link for it answers.
  auto listing = Get("/sandbox?path=" + dir);
  EXPECT_EQ(listing.status, 200u) << listing.body;
  EXPECT_NE(listing.body.find(">stderr</a>"), std::string::npos) << listing.body;

  // A kill fault reaches it, and the state says it no longer runs; the sandbox stays listed.
  auto killed = Post("/faults/executors/sleeper/kill");
  EXPECT_EQ(killed.status, 200u) << killed.body;
  RunUntil([&] { return HasUpdate("sleeper", mesos::TASK_FAILED); });
  RunUntil([&] {
    json a = AgentEntry(n);
    return a["executors"].size() == 1 && a["executors"][0]["live"] == false &&
           a["executors"][0]["directory"] == dir;
  });

  // The other agents ran nothing.
  for (int other = 1; other <= 3; ++other) {
    if (other == n) continue;
    EXPECT_TRUE(AgentEntry(other)["executors"].empty());
  }
}

}  // namespace
}  // namespace etcd_mesos::local
