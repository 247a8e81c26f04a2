// etcd-mesos-executor end to end: the real executor binary, fetched by URI into sandboxes of
// etcd-mesos-local's agents (in process), supervising real etcd 3.4 members (/usr/bin/etcd),
// checked with the real etcdctl. These are the "done when" cases of issue 4.
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "executor/task_config.h"
#include "local/cluster.h"
#include "local/resources.h"
#include "mesos/scheduler_client.h"
#include "net/http.h"
#include "testing/ports.h"
#include "testing/tempdir.h"

namespace etcd_mesos::executor {
namespace {

namespace fs = std::filesystem;
using mesos::scheduler::Call;
using mesos::scheduler::Event;
using Clock = std::chrono::steady_clock;

struct CommandResult {
  int status = -1;
  std::string output;
};

// Runs a shell command (stdout and stderr captured). Blocking: only for quick etcdctl calls.
CommandResult Shell(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) result.output.append(buf.data(), n);
  int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// A /proc file of a process that exits while it is read fails with ESRCH, which the stream's
// iterator throws (seen with other tests' processes ending beside this one): read as empty.
std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  try {
    return std::string(std::istreambuf_iterator<char>(in), {});
  } catch (const std::exception&) {
    return "";
  }
}

// The pids of etcd processes whose command line contains `needle` (e.g. "--name=m1"), from /proc.
std::vector<pid_t> EtcdPids(const std::string& needle) {
  std::vector<pid_t> pids;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::string cmdline = ReadFile(entry.path() / "cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    std::string stat = ReadFile(entry.path() / "stat");
    bool zombie = stat.find(") Z") != std::string::npos;
    if (!zombie && cmdline.find("etcd ") != std::string::npos &&
        cmdline.find(needle + " ") != std::string::npos) {
      pids.push_back(std::stoi(name));
    }
  }
  return pids;
}

std::string Cmdline(pid_t pid) {
  std::string cmdline = ReadFile(fs::path("/proc") / std::to_string(pid) / "cmdline");
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  return cmdline;
}

// Where the executor of the running member `name` logs: its sandbox's stderr (the sandbox holds
// the member's data dir, which etcd names on its command line). Empty if etcd is not running.
fs::path ExecutorLogOf(const std::string& name) {
  auto pids = EtcdPids("--name=" + name);
  if (pids.empty()) return {};
  std::string cmdline = Cmdline(pids[0]);
  size_t flag = cmdline.find("--data-dir=");
  if (flag == std::string::npos) return {};
  size_t begin = flag + std::string("--data-dir=").size();
  fs::path data_dir = cmdline.substr(begin, cmdline.find(' ', begin) - begin);
  return data_dir.parent_path() / "stderr";
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    local::LocalClusterOptions options;
    options.agents = 3;
    options.resources = *local::ParseResources("cpus:4;mem:4096;disk:4096;ports:[31000-31999]");
    options.work_dir = dir_.path() / "mesos";
    options.master.port = 0;
    options.master.allocation_interval = std::chrono::milliseconds(100);
    options.master.heartbeat_interval = std::chrono::milliseconds(500);
    options.agent.status_update_retry_min = std::chrono::milliseconds(300);
    options.agent.ping_interval = std::chrono::milliseconds(200);
    options.agent.executor_shutdown_grace_period = std::chrono::milliseconds(3000);
    Customize(options);
    cluster_ = std::make_unique<local::LocalCluster>(io_, options);
    auto bound = cluster_->Start();
    ASSERT_TRUE(bound.ok()) << bound.error();
    Connect();
  }

  // Lets a test suite change the cluster before it starts.
  virtual void Customize(local::LocalClusterOptions&) {}

  void TearDown() override {
    client_.reset();
    cluster_->Shutdown();
    io_.run_for(std::chrono::milliseconds(100));
  }

  bool RunUntil(const std::function<bool()>& done, int seconds = 30) {
    auto deadline = Clock::now() + std::chrono::seconds(seconds);
    while (!done() && Clock::now() < deadline) io_.run_for(std::chrono::milliseconds(10));
    return done();
  }

  void Connect() {
    mesos::FrameworkInfo info;
    info.set_user("root");
    info.set_name("etcd-executor-test");
    info.set_failover_timeout(3600);
    info.set_checkpoint(true);
    mesos_client::SchedulerClient::Options options;
    options.backoff_min = std::chrono::milliseconds(50);
    options.backoff_max = std::chrono::milliseconds(200);
    client_ = std::make_unique<mesos_client::SchedulerClient>(
        io_, options,
        mesos_client::SchedulerClient::Callbacks{
            nullptr,
            [this](const Event& e) {
              if (e.type() == Event::OFFERS) {
                for (const auto& o : e.offers().offers()) offers_[o.agent_id().value()] = o;
              } else if (e.type() == Event::UPDATE) {
                updates_.push_back({Clock::now(), e.update().status()});
                if (e.update().status().has_uuid()) Ack(e.update().status());
              }
            },
            nullptr});
    client_->Start(cluster_->master().address(), info);
    ASSERT_TRUE(RunUntil([&] { return client_->subscribed(); }));
    ASSERT_TRUE(RunUntil([&] { return offers_.size() == 3; }));
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
    return result.value_or(MakeError(ErrorCode::kUnavailable, "no answer"));
  }

  // The agents' offers, in agent order (agent 1 on 127.0.0.2, ...).
  std::vector<mesos::Offer> Offers() {
    std::vector<mesos::Offer> out;
    for (auto& [id, offer] : offers_) out.push_back(offer);
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.hostname() < b.hostname(); });
    return out;
  }

  TaskConfig Member(const std::string& name, const std::string& ip) {
    TaskConfig c;
    c.name = name;
    c.address = ip;
    c.peer_port = test::FreePort(ip);
    c.client_port = test::FreePort(ip);
    c.reseed_port = test::FreePort(ip);
    c.initial_cluster = name + "=" + c.PeerUrl();
    c.cluster_token = "etcd-test";
    c.reseed_token = "s3cret";
    c.etcd_binary = "/usr/bin/etcd";
    c.health_interval = std::chrono::milliseconds(300);
    return c;
  }

  static mesos::Resource Scalar(const std::string& name, double v) {
    mesos::Resource r;
    r.set_name(name);
    r.set_type(mesos::Value::SCALAR);
    r.mutable_scalar()->set_value(v);
    return r;
  }

  mesos::TaskInfo MemberTask(const mesos::Offer& offer, const std::string& id,
                             const std::string& data) {
    mesos::TaskInfo task;
    task.set_name(id);
    task.mutable_task_id()->set_value(id);
    *task.mutable_agent_id() = offer.agent_id();
    *task.add_resources() = Scalar("cpus", 0.5);
    *task.add_resources() = Scalar("mem", 256);
    task.set_data(data);
    auto* exec = task.mutable_executor();
    exec->set_type(mesos::ExecutorInfo::CUSTOM);
    exec->mutable_executor_id()->set_value("exec-" + id);
    exec->mutable_command()->set_value("./etcd-mesos-executor --log-level=debug");
    auto* uri = exec->mutable_command()->add_uris();
    uri->set_value(EXECUTOR_PATH);
    uri->set_executable(true);
    *exec->add_resources() = Scalar("cpus", 0.1);
    *exec->add_resources() = Scalar("mem", 32);
    return task;
  }

  void Launch(const mesos::Offer& offer, const mesos::TaskInfo& task) {
    Call call;
    call.set_type(Call::ACCEPT);
    *call.mutable_accept()->add_offer_ids() = offer.id();
    auto* op = call.mutable_accept()->add_operations();
    op->set_type(mesos::Offer::Operation::LAUNCH);
    *op->mutable_launch()->add_task_infos() = task;
    ASSERT_TRUE(SendCall(call).ok());
    offers_.erase(offer.agent_id().value());
    launched_at_[task.task_id().value()] = Clock::now();
  }

  void Kill(const std::string& task, const mesos::AgentID& agent) {
    Call kill;
    kill.set_type(Call::KILL);
    kill.mutable_kill()->mutable_task_id()->set_value(task);
    *kill.mutable_kill()->mutable_agent_id() = agent;
    ASSERT_TRUE(SendCall(kill).ok());
  }

  const mesos::TaskStatus* Find(const std::string& task, mesos::TaskState state) const {
    for (const auto& [at, s] : updates_) {
      if (s.task_id().value() == task && s.state() == state) return &s;
    }
    return nullptr;
  }
  std::optional<Clock::time_point> FirstAt(const std::string& task, mesos::TaskState state) const {
    for (const auto& [at, s] : updates_) {
      if (s.task_id().value() == task && s.state() == state) return at;
    }
    return std::nullopt;
  }
  const mesos::TaskStatus* Last(const std::string& task) const {
    for (auto it = updates_.rbegin(); it != updates_.rend(); ++it) {
      if (it->second.task_id().value() == task) return &it->second;
    }
    return nullptr;
  }
  MemberFacts LastFacts(const std::string& task) const {
    const auto* s = Last(task);
    if (s == nullptr) return {};
    auto f = ParseMemberFacts(s->data());
    return f.ok() ? *f : MemberFacts{};
  }

  // Waits until the task's latest update is a healthy TASK_RUNNING; returns whether it came.
  bool WaitHealthy(const std::string& task, int seconds = 30) {
    return RunUntil(
        [&] {
          const auto* s = Last(task);
          return s != nullptr && s->state() == mesos::TASK_RUNNING && s->healthy();
        },
        seconds);
  }

  CommandResult Etcdctl(const std::string& endpoints, const std::string& args) {
    // etcdctl blocks this thread; the executor is another process and etcd answers by itself.
    return Shell("ETCDCTL_API=3 etcdctl --dial-timeout=3s --command-timeout=5s --endpoints=" +
                 endpoints + " " + args);
  }

  net::HttpResponse Http(net::Verb method, const TaskConfig& c, const std::string& target,
                         std::optional<std::string> token, std::string body = "",
                         int timeout_s = 60) {
    net::HttpRequest req;
    req.method = method;
    req.endpoint = HostPort{c.address, c.reseed_port};
    req.target = target;
    req.body = std::move(body);
    req.timeout = std::chrono::seconds(timeout_s);
    if (token) req.headers.emplace_back("Authorization", "Bearer " + *token);
    std::optional<Result<net::HttpResponse>> got;
    net::HttpFetch(io_, req, [&](Result<net::HttpResponse> r) { got = std::move(r); });
    RunUntil([&] { return got.has_value(); }, timeout_s + 5);
    if (!got || !got->ok()) return net::HttpResponse{0, {}, got ? got->error().ToString() : ""};
    return **got;
  }

  test::TempDir dir_{"em-executor"};
  boost::asio::io_context io_;
  std::unique_ptr<local::LocalCluster> cluster_;
  std::unique_ptr<mesos_client::SchedulerClient> client_;
  std::map<std::string, mesos::Offer> offers_;
  std::vector<std::pair<Clock::time_point, mesos::TaskStatus>> updates_;
  std::map<std::string, Clock::time_point> launched_at_;
};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

TEST_F(ExecutorTest, OneMemberRunsOnceServingSurvivesKillNineAndIsKilledCleanly) {
  auto offer = Offers()[0];
  TaskConfig c = Member("m1", offer.hostname());
  ASSERT_NO_FATAL_FAILURE(Launch(offer, MemberTask(offer, "m1", EncodeTaskConfig(c))));
  ASSERT_TRUE(RunUntil([&] { return Find("m1", mesos::TASK_RUNNING) != nullptr; }))
      << "no TASK_RUNNING; last: " << (Last("m1") ? Last("m1")->DebugString() : "none");
  // The moment RUNNING arrives, the member serves: etcdctl agrees at once, with no retries.
  auto health = Etcdctl(c.ClientUrl(), "endpoint health");
  EXPECT_EQ(health.status, 0) << health.output;
  EXPECT_NE(health.output.find("is healthy"), std::string::npos) << health.output;
  std::printf("[timing] launch -> TASK_RUNNING: %.2fs\n",
              Seconds(*FirstAt("m1", mesos::TASK_RUNNING) - launched_at_["m1"]));
  ASSERT_TRUE(FirstAt("m1", mesos::TASK_STARTING).has_value());
  EXPECT_LT(*FirstAt("m1", mesos::TASK_STARTING), *FirstAt("m1", mesos::TASK_RUNNING));
  const auto* running = Find("m1", mesos::TASK_RUNNING);
  ASSERT_TRUE(running->has_healthy());
  auto facts = ParseMemberFacts(running->data());
  ASSERT_TRUE(facts.ok()) << facts.error() << " in " << running->data();
  EXPECT_TRUE(facts->serving);
  EXPECT_EQ(facts->name, "m1");
  EXPECT_NE(facts->member_id, 0u);
  EXPECT_FALSE(facts->is_learner);
  ASSERT_TRUE(WaitHealthy("m1"));
  auto v2 = Shell("ETCDCTL_API=2 etcdctl -C " + c.ClientUrl() + " cluster-health");
  EXPECT_EQ(v2.status, 0) << v2.output;
  EXPECT_NE(v2.output.find("cluster is healthy"), std::string::npos) << v2.output;
  // Listens on the agent's address only.
  EXPECT_NE(Cmdline(EtcdPids("--name=m1").at(0)).find("--listen-client-urls=" + c.ClientUrl()),
            std::string::npos);

  // GET /status tells the same facts.
  auto status = Http(net::Verb::get, c, "/status", std::nullopt);
  ASSERT_EQ(status.status, 200u) << status.body;
  auto status_facts = ParseMemberFacts(status.body);
  ASSERT_TRUE(status_facts.ok()) << status.body;
  EXPECT_EQ(status_facts->member_id, facts->member_id);
  EXPECT_NE(status_facts->raft_index, 0u);
  EXPECT_NE(status_facts->raft_term, 0u);
  EXPECT_EQ(status_facts->leader, facts->member_id) << "a one-member cluster leads itself";
  EXPECT_FALSE(status_facts->is_learner);
  auto wrong_method = Http(net::Verb::post, c, "/status", std::nullopt);
  EXPECT_EQ(wrong_method.status, 405u) << wrong_method.body;
  EXPECT_EQ(wrong_method.Header("Allow"), "GET");
  EXPECT_EQ(Http(net::Verb::get, c, "/nothing-here", std::nullopt).status, 404u);
  // The data dir is inside the task's sandbox, where Mesos keeps (and garbage-collects) it.
  std::string first_cmdline = Cmdline(EtcdPids("--name=m1").at(0));
  size_t data_flag = first_cmdline.find("--data-dir=");
  ASSERT_NE(data_flag, std::string::npos) << first_cmdline;
  fs::path data_dir =
      first_cmdline.substr(data_flag + 11, first_cmdline.find(' ', data_flag) - data_flag - 11);
  EXPECT_EQ(data_dir.filename(), "data") << data_dir;
  EXPECT_TRUE(fs::exists(data_dir / "member")) << data_dir;
  EXPECT_NE(data_dir.string().find((dir_.path() / "mesos").string()), std::string::npos)
      << data_dir << " is not under the agents' work dir";
  EXPECT_NE(data_dir.string().find("/executors/"), std::string::npos) << data_dir;
  fs::path sandbox = data_dir.parent_path();

  // kill -9 of etcd: restarted in place, same member, data kept.
  ASSERT_EQ(Etcdctl(c.ClientUrl(), "put /kept yes").status, 0);
  auto pids = EtcdPids("--name=m1");
  ASSERT_EQ(pids.size(), 1u);
  size_t before = updates_.size();
  auto killed_at = Clock::now();
  ASSERT_EQ(::kill(pids[0], SIGKILL), 0);
  ASSERT_TRUE(RunUntil([&] {
    auto now = EtcdPids("--name=m1");
    return now.size() == 1 && now[0] != pids[0] &&
           Etcdctl(c.ClientUrl(), "endpoint health").status == 0;
  }));
  std::printf("[timing] kill -9 etcd -> serving again: %.2fs\n", Seconds(Clock::now() - killed_at));
  ASSERT_TRUE(RunUntil([&] {
    for (size_t i = before; i < updates_.size(); ++i) {
      if (!updates_[i].second.healthy()) return true;
    }
    return false;
  })) << "the crash was reported as unhealthy";
  ASSERT_TRUE(WaitHealthy("m1"));
  EXPECT_EQ(LastFacts("m1").member_id, facts->member_id);
  EXPECT_EQ(Find("m1", mesos::TASK_FAILED), nullptr);
  auto get = Etcdctl(c.ClientUrl(), "get /kept --print-value-only");
  EXPECT_EQ(get.status, 0);
  EXPECT_EQ(get.output, "yes\n");
  // Restarted as an existing member, without --force-new-cluster.
  std::string cmdline = Cmdline(EtcdPids("--name=m1").at(0));
  EXPECT_NE(cmdline.find("--initial-cluster-state=existing"), std::string::npos) << cmdline;
  EXPECT_EQ(cmdline.find("--force-new-cluster"), std::string::npos) << cmdline;

  // KILL: TASK_KILLED and no process left (neither etcd nor the executor).
  auto executor_pids = cluster_->ProcessIds();
  ASSERT_NO_FATAL_FAILURE(Kill("m1", offer.agent_id()));
  ASSERT_TRUE(RunUntil([&] { return Find("m1", mesos::TASK_KILLED) != nullptr; }));
  EXPECT_TRUE(EtcdPids("--name=m1").empty());
  // etcd was asked to stop (SIGTERM) and stopped itself, not SIGKILLed: it says so in its log.
  std::string etcd_log = ReadFile(sandbox / "etcd.log");
  EXPECT_NE(etcd_log.find("\"msg\":\"received signal; shutting down\",\"signal\":\"terminated\""),
            std::string::npos)
      << "no sign of a SIGTERM in " << sandbox / "etcd.log"
      << ":\n"
      << etcd_log.substr(etcd_log.size() > 3000 ? etcd_log.size() - 3000 : 0);
  ASSERT_TRUE(RunUntil([&] {
    return std::none_of(executor_pids.begin(), executor_pids.end(),
                        [](int pid) { return ::kill(pid, 0) == 0; });
  })) << "the executor exits after TASK_KILLED";
  EXPECT_EQ(Find("m1", mesos::TASK_FAILED), nullptr);
}

TEST_F(ExecutorTest, KillingTheExecutorTakesEtcdWithIt) {
  auto offer = Offers()[1];
  TaskConfig c = Member("solo", offer.hostname());
  ASSERT_NO_FATAL_FAILURE(Launch(offer, MemberTask(offer, "solo", EncodeTaskConfig(c))));
  ASSERT_TRUE(RunUntil([&] { return Find("solo", mesos::TASK_RUNNING) != nullptr; }));
  auto etcd = EtcdPids("--name=solo");
  ASSERT_EQ(etcd.size(), 1u);
  auto executors = cluster_->ProcessIds();
  ASSERT_EQ(executors.size(), 1u);
  ASSERT_EQ(::kill(executors[0], SIGKILL), 0);
  EXPECT_TRUE(RunUntil([&] { return EtcdPids("--name=solo").empty(); }, 10))
      << "etcd outlived its executor";
}

TEST_F(ExecutorTest, CrashLoopFailsTheTaskWithTheLogTail) {
  auto offer = Offers()[0];
  fs::path script = dir_.path() / "broken-etcd";
  {
    std::ofstream out(script);
    out << "#!/bin/sh\necho \"broken-etcd: cannot open the data dir (test)\" >&2\nexit 3\n";
  }
  fs::permissions(script, fs::perms::owner_all);
  TaskConfig c = Member("loop", offer.hostname());
  c.etcd_binary = script.string();
  c.restart_max = 2;
  ASSERT_NO_FATAL_FAILURE(Launch(offer, MemberTask(offer, "loop", EncodeTaskConfig(c))));
  ASSERT_TRUE(RunUntil([&] { return Find("loop", mesos::TASK_FAILED) != nullptr; }));
  const auto* failed = Find("loop", mesos::TASK_FAILED);
  EXPECT_NE(failed->message().find("crash loop"), std::string::npos) << failed->message();
  EXPECT_NE(failed->message().find("exited with status 3"), std::string::npos) << failed->message();
  EXPECT_NE(failed->message().find("broken-etcd: cannot open the data dir"), std::string::npos)
      << failed->message();
  EXPECT_EQ(Find("loop", mesos::TASK_RUNNING), nullptr) << "it never served";
}

TEST_F(ExecutorTest, BadTaskDataFailsNamingTheField) {
  auto offer = Offers()[0];
  TaskConfig c = Member("bad", offer.hostname());
  nlohmann::json doc = nlohmann::json::parse(EncodeTaskConfig(c));
  doc["peer_port"] = 70000;
  ASSERT_NO_FATAL_FAILURE(Launch(offer, MemberTask(offer, "bad", doc.dump())));
  ASSERT_TRUE(RunUntil([&] { return Find("bad", mesos::TASK_FAILED) != nullptr; }));
  const auto* failed = Find("bad", mesos::TASK_FAILED);
  EXPECT_NE(failed->message().find("peer_port"), std::string::npos) << failed->message();
  EXPECT_EQ(failed->reason(), mesos::TaskStatus::REASON_TASK_INVALID);
  EXPECT_TRUE(EtcdPids("--name=bad").empty());
}

TEST_F(ExecutorTest, ThreeMembersServeAndTheSurvivorOfTwoKilledIsReseeded) {
  auto offers = Offers();
  ASSERT_EQ(offers.size(), 3u);
  std::vector<TaskConfig> members;
  std::string initial;
  for (int i = 0; i < 3; ++i) {
    members.push_back(Member("e" + std::to_string(i + 1), offers[i].hostname()));
    initial += (i ? "," : "") + members[i].name + "=" + members[i].PeerUrl();
  }
  std::string endpoints;
  for (auto& m : members) {
    m.initial_cluster = initial;
    endpoints += (endpoints.empty() ? "" : ",") + m.ClientUrl();
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_NO_FATAL_FAILURE(
        Launch(offers[i], MemberTask(offers[i], members[i].name, EncodeTaskConfig(members[i]))));
  }
  for (const auto& m : members) {
    ASSERT_TRUE(RunUntil([&] { return Find(m.name, mesos::TASK_RUNNING) != nullptr; })) << m.name;
    // Serving at the moment RUNNING arrived.
    auto facts = ParseMemberFacts(Find(m.name, mesos::TASK_RUNNING)->data());
    ASSERT_TRUE(facts.ok());
    EXPECT_TRUE(facts->serving);
    EXPECT_NE(facts->member_id, 0u);
  }
  for (const auto& m : members) ASSERT_TRUE(WaitHealthy(m.name)) << m.name;
  auto v3 = Etcdctl(endpoints, "endpoint health");
  EXPECT_EQ(v3.status, 0) << v3.output;
  auto v2 = Shell("ETCDCTL_API=2 etcdctl -C " + members[0].ClientUrl() + " cluster-health");
  EXPECT_EQ(v2.status, 0) << v2.output;
  EXPECT_NE(v2.output.find("cluster is healthy"), std::string::npos) << v2.output;
  ASSERT_EQ(Etcdctl(endpoints, "put /before-reseed kept").status, 0);
  uint64_t cluster_id = LastFacts("e1").cluster_id;
  uint64_t member_id = LastFacts("e1").member_id;
  ASSERT_NE(cluster_id, 0u);

  // Refusals first, while the cluster is still whole.
  const TaskConfig& seed = members[0];
  auto no_token = Http(net::Verb::post, seed, "/reseed", std::nullopt);
  EXPECT_EQ(no_token.status, 401u) << no_token.body;
  EXPECT_NE(no_token.body.find("Authorization"), std::string::npos) << no_token.body;
  auto wrong = Http(net::Verb::post, seed, "/reseed", "nope");
  EXPECT_EQ(wrong.status, 401u) << wrong.body;
  EXPECT_NE(wrong.body.find("wrong reseed token"), std::string::npos) << wrong.body;
  auto get = Http(net::Verb::get, seed, "/reseed", seed.reseed_token);
  EXPECT_EQ(get.status, 405u) << get.body;
  EXPECT_EQ(get.Header("Allow").value_or(""), "POST");
  auto garbage = Http(net::Verb::post, seed, "/reseed", seed.reseed_token, "{not json");
  EXPECT_EQ(garbage.status, 400u) << garbage.body;
  EXPECT_EQ(EtcdPids("--name=e1").size(), 1u);

  // Majority lost: two members killed.
  for (int i = 1; i < 3; ++i) {
    ASSERT_NO_FATAL_FAILURE(Kill(members[i].name, offers[i].agent_id()));
  }
  for (int i = 1; i < 3; ++i) {
    ASSERT_TRUE(RunUntil([&] { return Find(members[i].name, mesos::TASK_KILLED) != nullptr; }));
  }
  ASSERT_TRUE(RunUntil([&] {
    const auto* s = Last("e1");
    return s != nullptr && s->has_healthy() && !s->healthy();
  })) << "the survivor reports that it lost its cluster";

  auto started = Clock::now();
  auto reseed = Http(net::Verb::post, seed, "/reseed", seed.reseed_token, "{\"timeout_s\": 60}");
  std::printf("[timing] reseed (POST /reseed -> answer): %.2fs\n", Seconds(Clock::now() - started));
  ASSERT_EQ(reseed.status, 200u) << reseed.body;
  auto answer = nlohmann::json::parse(reseed.body);
  EXPECT_EQ(answer["outcome"], "reseeded");
  EXPECT_NE(answer["facts"]["raft_index"], "0");
  auto members_out = Etcdctl(seed.ClientUrl(), "member list");
  EXPECT_EQ(members_out.status, 0) << members_out.output;
  EXPECT_EQ(std::count(members_out.output.begin(), members_out.output.end(), '\n'), 1)
      << members_out.output;
  auto kept = Etcdctl(seed.ClientUrl(), "get /before-reseed --print-value-only");
  EXPECT_EQ(kept.output, "kept\n");
  ASSERT_TRUE(WaitHealthy("e1"));
  EXPECT_EQ(LastFacts("e1").cluster_id, cluster_id);
  EXPECT_EQ(LastFacts("e1").member_id, member_id);
  auto pids = EtcdPids("--name=e1");
  ASSERT_EQ(pids.size(), 1u);
  EXPECT_EQ(Cmdline(pids[0]).find("--force-new-cluster"), std::string::npos)
      << "the member runs without --force-new-cluster after the reseed";

  // A crash afterwards restarts it without forcing a new cluster again.
  ASSERT_EQ(::kill(pids[0], SIGKILL), 0);
  ASSERT_TRUE(RunUntil([&] {
    auto now = EtcdPids("--name=e1");
    return now.size() == 1 && now[0] != pids[0] &&
           Etcdctl(seed.ClientUrl(), "endpoint health").status == 0;
  }));
  EXPECT_EQ(Cmdline(EtcdPids("--name=e1").at(0)).find("--force-new-cluster"), std::string::npos);
  auto after = Etcdctl(seed.ClientUrl(), "member list -w json");
  ASSERT_EQ(after.status, 0) << after.output;
  auto list = nlohmann::json::parse(after.output, nullptr, false);
  ASSERT_FALSE(list.is_discarded()) << after.output;
  EXPECT_EQ(list["members"].size(), 1u);
  EXPECT_EQ(list["header"]["cluster_id"].get<uint64_t>(), cluster_id);
  EXPECT_EQ(Etcdctl(seed.ClientUrl(), "get /before-reseed --print-value-only").output, "kept\n");
  ASSERT_TRUE(WaitHealthy("e1"));
  EXPECT_EQ(LastFacts("e1").cluster_id, cluster_id);
}

TEST_F(ExecutorTest, AgentRestartKeepsEtcdRunningAndTheExecutorReconnects) {
  auto offer = Offers()[0];
  TaskConfig c = Member("steady", offer.hostname());
  ASSERT_NO_FATAL_FAILURE(Launch(offer, MemberTask(offer, "steady", EncodeTaskConfig(c))));
  ASSERT_TRUE(WaitHealthy("steady"));
  auto pids = EtcdPids("--name=steady");
  ASSERT_EQ(pids.size(), 1u);
  int agent = 0;
  for (int n = 1; n <= cluster_->agent_count(); ++n) {
    if (cluster_->agent(n)->id().value() == offer.agent_id().value()) agent = n;
  }
  ASSERT_GT(agent, 0);
  // The agent process dies, keeping its work dir: etcd must not notice.
  fs::path executor_log = ExecutorLogOf("steady");
  ASSERT_FALSE(executor_log.empty());
  ASSERT_TRUE(cluster_->CrashAgent(agent).ok());
  // The executor logs that it lost the agent, then hands the loss to its core on the same
  // thread. An answer from that thread afterwards (GET /status of its reseed listener) is a
  // marker: the executor has finished with the loss, and any signal it decided to send etcd, it
  // has sent and logged.
  ASSERT_TRUE(RunUntil([&] {
    return ReadFile(executor_log).find("disconnected from agent") != std::string::npos;
  })) << "the executor never noticed the agent going";
  ASSERT_EQ(Http(net::Verb::get, c, "/status", std::nullopt).status, 200u);
  EXPECT_EQ(ReadFile(executor_log).find("sending SIG"), std::string::npos)
      << "the executor signalled etcd when the agent went away";
  EXPECT_EQ(EtcdPids("--name=steady"), pids) << "etcd kept running while the agent was down";
  EXPECT_EQ(Etcdctl(c.ClientUrl(), "endpoint health").status, 0);
  // etcd crashes while the agent is down: the executor restarts it and keeps the update about
  // it until it can deliver it.
  size_t before = updates_.size();
  size_t unhealthy_before = Count(ReadFile(executor_log), "healthy=false");
  ASSERT_EQ(::kill(pids[0], SIGKILL), 0);
  // The executor has sent (while the agent is down) the update saying the member is unhealthy.
  ASSERT_TRUE(RunUntil([&] {
    return Count(ReadFile(executor_log), "healthy=false") > unhealthy_before;
  })) << "the executor sent no update about the crash while the agent was down";
  for (size_t i = before; i < updates_.size(); ++i) {
    EXPECT_NE(updates_[i].second.task_id().value(), "steady")
        << "an update while the agent is down";
  }
  ASSERT_TRUE(cluster_->RestartAgent(agent, /*wipe=*/false).ok());
  // The executor re-subscribed with its unacknowledged update: the crash reaches the framework.
  ASSERT_TRUE(RunUntil([&] {
    for (size_t i = before; i < updates_.size(); ++i) {
      if (updates_[i].second.task_id().value() == "steady" && !updates_[i].second.healthy()) {
        return true;
      }
    }
    return false;
  })) << "the update sent while the agent was down never arrived";
  ASSERT_TRUE(WaitHealthy("steady"));
  EXPECT_EQ(Find("steady", mesos::TASK_FAILED), nullptr);
}

// As Mesos's checkpointing: an executor whose agent never comes back gives up after the recovery
// timeout, stopping etcd first. Nothing is left running on a host whose agent is gone for good.
class ExecutorRecoveryTest : public ExecutorTest {
 protected:
  void Customize(local::LocalClusterOptions& options) override {
    options.agent.recovery_timeout = std::chrono::seconds(3);
  }
};

TEST_F(ExecutorRecoveryTest, AnAgentGoneForGoodStopsEtcdAndTheExecutorAfterTheRecoveryTimeout) {
  auto offer = Offers()[0];
  TaskConfig c = Member("orphan", offer.hostname());
  ASSERT_NO_FATAL_FAILURE(Launch(offer, MemberTask(offer, "orphan", EncodeTaskConfig(c))));
  ASSERT_TRUE(WaitHealthy("orphan"));
  auto executors = cluster_->ProcessIds();
  ASSERT_EQ(executors.size(), 1u);
  int agent = 0;
  for (int n = 1; n <= cluster_->agent_count(); ++n) {
    if (cluster_->agent(n)->id().value() == offer.agent_id().value()) agent = n;
  }
  ASSERT_GT(agent, 0);
  auto crashed_at = Clock::now();
  ASSERT_TRUE(cluster_->CrashAgent(agent).ok());
  EXPECT_TRUE(RunUntil([&] { return EtcdPids("--name=orphan").empty(); }, 20))
      << "etcd still runs long after the recovery timeout";
  // Within the recovery timeout etcd runs on: the executor counts it from when it sees the agent
  // go, which is after the crash, so etcd is gone no sooner than 3 s after it.
  EXPECT_GE(Clock::now() - crashed_at, std::chrono::seconds(3))
      << "etcd was stopped within the recovery timeout";
  EXPECT_TRUE(RunUntil([&] { return ::kill(executors[0], 0) != 0; }, 10))
      << "the executor outlived its recovery timeout";
}

}  // namespace
}  // namespace etcd_mesos::executor
