// The operator's console of etcd-mesos-local in a real headless Chromium (testing/browser.h):
// a LocalCluster with one framework task, the console showing every agent and the task with its
// sandbox; the real Mesos web UI's sandbox address routed to the sandbox; a stop fault clicked,
// confirmed in the page's dialog, the agent shown stopped and the server's 200 in the status
// region, all without a reload; "master not answering" while the master is silent, and back.
// Writes ${CMAKE_BINARY_DIR}/screenshots/local-console.png. Needs the `chromium` package.
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "local/cluster.h"
#include "local/resources.h"
#include "mesos/scheduler_client.h"
#include "quick_cluster.h"
#include "testing/browser.h"
#include "testing/tempdir.h"

namespace etcd_mesos::local {
namespace {

using mesos::scheduler::Call;
using mesos::scheduler::Event;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

class ConsoleBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalClusterOptions options = QuickClusterOptions(dir_.path());
    cluster_ = std::make_unique<LocalCluster>(io_, options);
    auto bound = cluster_->Start();
    ASSERT_TRUE(bound.ok()) << bound.error();
    base_ = "http://" + bound->ToString();
  }

  void TearDown() override {
    StopServing();
    client_.reset();
    cluster_->Shutdown();
    io_.run_for(milliseconds(100));
  }

  // The browser's calls block this thread: from here on the cluster runs on a thread of its own,
  // and this thread no longer touches it (until StopServing).
  void StartServing() {
    io_.restart();
    serving_ = std::thread([this] {
      auto work = boost::asio::make_work_guard(io_);
      io_.run();
    });
  }
  void StopServing() {
    if (!serving_.joinable()) return;
    io_.stop();
    serving_.join();
    io_.restart();
  }

  void RunUntil(const std::function<bool()>& done, int secs = 20) {
    auto deadline = std::chrono::steady_clock::now() + seconds(secs);
    while (!done() && std::chrono::steady_clock::now() < deadline) io_.run_for(milliseconds(10));
    ASSERT_TRUE(done()) << "timed out";
  }

  // Subscribes a framework and runs one command task, `sleep 600`, on the first offer's agent,
  // reserving cpus:0.25 and disk:64 for its role and making a persistent volume of the disk in
  // the same ACCEPT (the page lists reservations and volumes).
  void RunOneTask(const std::string& id) {
    mesos::FrameworkInfo info;
    info.set_user("root");
    info.set_name("console-browser-test");
    info.set_failover_timeout(3600);
    info.add_roles("etcd");
    info.add_capabilities()->set_type(mesos::FrameworkInfo::Capability::MULTI_ROLE);
    info.add_capabilities()->set_type(mesos::FrameworkInfo::Capability::PARTITION_AWARE);
    info.add_capabilities()->set_type(mesos::FrameworkInfo::Capability::RESERVATION_REFINEMENT);
    mesos_client::SchedulerClient::Options options;
    options.backoff_min = milliseconds(50);
    options.backoff_max = milliseconds(200);
    client_ = std::make_unique<mesos_client::SchedulerClient>(
        io_, options,
        mesos_client::SchedulerClient::Callbacks{
            nullptr,
            [this](const Event& e) {
              if (e.type() == Event::OFFERS) {
                for (const auto& o : e.offers().offers()) offers_.push_back(o);
              } else if (e.type() == Event::UPDATE) {
                const auto& s = e.update().status();
                if (s.task_id().value() == task_id_ && s.state() == mesos::TASK_RUNNING) {
                  running_ = true;
                }
                if (s.has_uuid()) {
                  Call ack;
                  ack.set_type(Call::ACKNOWLEDGE);
                  *ack.mutable_acknowledge()->mutable_agent_id() = s.agent_id();
                  *ack.mutable_acknowledge()->mutable_task_id() = s.task_id();
                  ack.mutable_acknowledge()->set_uuid(s.uuid());
                  client_->Send(ack);
                }
              }
            },
            nullptr});
    client_->Start(cluster_->master().address(), info);
    RunUntil([&] { return client_->subscribed() && !offers_.empty(); });
    framework_id_ = *client_->framework_id();
    mesos::Offer offer = offers_[0];
    agent_id_ = offer.agent_id().value();
    task_id_ = id;
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
    auto reserved = [](const std::string& name, double value) {
      mesos::Resource r;
      r.set_name(name);
      r.set_type(mesos::Value::SCALAR);
      r.mutable_scalar()->set_value(value);
      auto* reservation = r.add_reservations();
      reservation->set_type(mesos::Resource::ReservationInfo::DYNAMIC);
      reservation->set_role("etcd");
      return r;
    };
    auto* reserve = call.mutable_accept()->add_operations();
    reserve->set_type(mesos::Offer::Operation::RESERVE);
    *reserve->mutable_reserve()->add_resources() = reserved("cpus", 0.25);
    *reserve->mutable_reserve()->add_resources() = reserved("disk", 64);
    mesos::Resource volume = reserved("disk", 64);
    volume.mutable_disk()->mutable_persistence()->set_id("console-volume");
    volume.mutable_disk()->mutable_volume()->set_container_path("data");
    volume.mutable_disk()->mutable_volume()->set_mode(mesos::Volume::RW);
    auto* create = call.mutable_accept()->add_operations();
    create->set_type(mesos::Offer::Operation::CREATE);
    *create->mutable_create()->add_volumes() = volume;
    auto* op = call.mutable_accept()->add_operations();
    op->set_type(mesos::Offer::Operation::LAUNCH);
    *op->mutable_launch()->add_task_infos() = task;
    client_->Send(call);
    RunUntil([&] { return running_; });
  }

  static std::string Quoted(const std::string& text) { return json(text).dump(); }

  // The value of `expression`, or null (with a failure) when it could not be evaluated.
  static json Eval(test::Browser& b, const std::string& expression) {
    auto value = b.Evaluate(expression);
    EXPECT_TRUE(value.ok()) << expression << ": " << value.error();
    return value.ok() ? *value : json();
  }

  test::TempDir dir_{"em-console-browser"};
  boost::asio::io_context io_;
  std::thread serving_;
  std::unique_ptr<LocalCluster> cluster_;
  std::string base_;
  std::unique_ptr<mesos_client::SchedulerClient> client_;
  std::vector<mesos::Offer> offers_;
  std::string framework_id_, agent_id_, task_id_;
  bool running_ = false;
};

TEST_F(ConsoleBrowserTest, StopFaultFromTheConsoleShowsTheAgentStoppedWithoutAReload) {
  RunOneTask("sleeper");
  int n = 0;
  std::string ip;
  for (int i = 1; i <= cluster_->agent_count(); ++i) {
    if (cluster_->agent(i)->id().value() == agent_id_) {
      n = i;
      ip = cluster_->agent(i)->address().host;
    }
  }
  ASSERT_GT(n, 0);
  StartServing();

  auto browser = test::Browser::Start();
  ASSERT_TRUE(browser.ok()) << browser.error();
  test::Browser& b = **browser;

  // The real Mesos web UI's address of the task's sandbox lands on our sandbox browser.
  ASSERT_TRUE(b.Navigate(base_ + "/#/agents/" + agent_id_ + "/frameworks/" + framework_id_ +
                         "/executors/" + task_id_ + "/browse")
                  .ok());
  auto sandbox = b.WaitFor(
      "location.pathname === '/sandbox' && document.body.textContent.includes('stderr') && "
      "decodeURIComponent(location.search)",
      seconds(15));
  ASSERT_TRUE(sandbox.ok()) << sandbox.error();
  EXPECT_NE(sandbox->get<std::string>().find("/frameworks/" + framework_id_ + "/executors/" +
                                             task_id_ + "/runs/"),
            std::string::npos)
      << *sandbox;
  // An unknown one says so.
  ASSERT_TRUE(b.Navigate(base_ + "/#/agents/" + agent_id_ + "/frameworks/" + framework_id_ +
                         "/executors/no-such-executor/browse")
                  .ok());
  auto unknown = b.WaitFor(
      "!document.getElementById('route').hidden && "
      "document.getElementById('route').textContent.includes('No such sandbox')",
      seconds(15));
  EXPECT_TRUE(unknown.ok()) << unknown.error();

  // The console: every agent running, the task with its state, agent and sandbox link.
  ASSERT_TRUE(b.Navigate(base_ + "/").ok());
  ASSERT_TRUE(b.Evaluate("window.__marker = 1").ok());
  auto agents = b.WaitFor(
      "(() => { const rows = [...document.querySelectorAll('#agents-body tr[data-agent]')];"
      "  return rows.length === 3 && rows.every((r) => r.dataset.state === 'running' &&"
      "                                               r.textContent.includes('running')); })()",
      seconds(15));
  ASSERT_TRUE(agents.ok()) << agents.error();
  // The task's agent shows what is reserved there, by role, and the volume by its id.
  auto reservations = b.WaitFor(
      "(() => { const cell = [...document.querySelectorAll('#agents-body td')]"
      "      .find((c) => c.dataset.label === 'Reserved' && c.textContent.startsWith('etcd: '));"
      "  return cell && cell.textContent.includes('cpus 0.25') &&"
      "      cell.textContent.includes('disk 64') &&"
      "      cell.textContent.includes('volumes console-volume') && cell.textContent; })()",
      seconds(15));
  ASSERT_TRUE(reservations.ok()) << reservations.error();
  auto task = b.WaitFor(
      "(() => { const row = [...document.querySelectorAll('#frameworks tr')]"
      "      .find((r) => r.cells[0] && r.cells[0].textContent === 'sleeper');"
      "  return row && row.textContent.includes('TASK_RUNNING') &&"
      "      row.textContent.includes(" +
          Quoted(ip) +
          ") && row.querySelector('a[href^=\"/sandbox?path=\"]') &&"
          "      document.getElementById('frameworks').textContent.includes("
          "'console-browser-test'); })()",
      seconds(15));
  ASSERT_TRUE(task.ok()) << task.error();

  // Stop the task's agent: the button opens the dialog, which says what will happen.
  std::string key = "agent-" + std::to_string(n) + "-stop";
  ASSERT_TRUE(
      b.Evaluate("document.querySelector('button[data-key=\"" + key + "\"]').click()").ok());
  auto text = b.WaitFor(
      "document.getElementById('confirm').open && "
      "document.getElementById('confirm-text').textContent",
      seconds(5));
  ASSERT_TRUE(text.ok()) << text.error();
  EXPECT_EQ(*text, "Stop agent " + std::to_string(n) + " (" + ip +
                       "): the host dies with every executor and etcd on it.");
  ASSERT_TRUE(b.Evaluate("document.getElementById('confirm-ok').click()").ok());
  auto stopped = b.WaitFor(
      "(() => { const row = document.querySelector('#agents-body tr[data-agent=\"" +
          std::to_string(n) +
          "\"]');"
          "  const answer = document.getElementById('answer');"
          "  return !document.getElementById('confirm').open && row &&"
          "      row.dataset.state === 'stopped' && row.cells[3].textContent.includes('stopped') &&"
          "      answer.dataset.status === '200' && answer.textContent.includes('200') &&"
          "      answer.textContent.includes('agent stopped') && answer.textContent; })()",
      seconds(15));
  ASSERT_TRUE(stopped.ok()) << stopped.error();
  EXPECT_EQ(Eval(b, "document.getElementById('answer').getAttribute('role')"), "status");
  // The task's agent is gone: the master stops vouching for it, which the page shows too.
  auto unreachable = b.WaitFor(
      "[...document.querySelectorAll('#frameworks tr')].some((r) =>"
      "    r.textContent.includes('sleeper') && r.textContent.includes('TASK_UNREACHABLE'))",
      seconds(15));
  EXPECT_TRUE(unreachable.ok()) << unreachable.error();
  EXPECT_EQ(Eval(b, "window.__marker"), 1) << "the page was reloaded";

  std::filesystem::path png = std::filesystem::path(SCREENSHOT_DIR) / "local-console.png";
  ASSERT_TRUE(b.Screenshot(png).ok());
  EXPECT_GT(std::filesystem::file_size(png), 10000u);

  // The master goes silent (its thread stops): the page says since when, keeping the data.
  StopServing();
  auto silent = b.WaitFor(
      "!document.getElementById('stale').hidden && "
      "document.getElementById('stale').textContent.startsWith('Master not answering since ') && "
      "document.querySelectorAll('#agents-body tr[data-agent]').length === 3",
      seconds(20));
  EXPECT_TRUE(silent.ok()) << silent.error();
  StartServing();
  auto back = b.WaitFor("document.getElementById('stale').hidden", seconds(20));
  EXPECT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(Eval(b, "window.__marker"), 1) << "the page was reloaded";

  EXPECT_TRUE(b.PageErrors().empty()) << json(b.PageErrors()).dump(2);
}

}  // namespace
}  // namespace etcd_mesos::local
