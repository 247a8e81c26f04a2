// The end-to-end fault suite: every incident of the on-call guide, rehearsed with real processes.
//
// Each scenario runs etcd-mesos-local (master and agents in this process), the scheduler (shell
// and core, in this process, so that it can be killed and restarted), the real executor fetched
// by URI, real etcd, and a workload that writes sequenced keys and records which writes etcd
// acknowledged. The store is a directory in some scenarios and a real ZooKeeper in others. After
// a minority failure every acknowledged write must read back; after a reseed, every acknowledged
// write the chosen survivor held must. The operator's view is checked through the commands of
// docs/response.md itself (blocks tagged `# guide: <name>`), run with curl and etcdctl as an
// operator would, so the guide cannot rot.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "etcd/client.h"
#include "local/cluster.h"
#include "local/resources.h"
#include "net/http.h"
#include "scheduler/core/rules.h"
#include "scheduler/shell/shell.h"
#include "store/state_store.h"
#include "testing/guide.h"
#include "testing/linearizability.h"
#include "testing/linearizable_workload.h"
#include "testing/ports.h"
#include "testing/process.h"
#include "testing/tempdir.h"
#include "testing/workload.h"
#include "testing/zookeeper_server.h"
#include "tls/pki.h"

namespace etcd_mesos::scheduler {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::map<std::string, std::string> GuideCommands() { return test::GuideCommands(GUIDE_PATH); }

enum class Store { kDirectory, kZooKeeper };

struct Scenario {
  Store store = Store::kDirectory;
  int size = 3;
  int agents = 4;
  milliseconds reseed_timeout = seconds(240);
  std::vector<std::string> extra_flags;
  // The master contends in ZooKeeper and the scheduler finds it there (--master=zk://...).
  bool master_in_zookeeper = false;
  // Members speak TLS (--tls=auto), and the suite reaches them as the guide's operator does:
  // with the CA and a client certificate fetched by its `tls-client` block.
  bool tls = true;
};

class FaultSuite : public ::testing::Test {
 protected:
  void StartAll(const Scenario& scenario) {
    scenario_ = scenario;
    if (scenario.store == Store::kZooKeeper || scenario.master_in_zookeeper) {
      zookeeper_ = std::make_unique<test::ZooKeeperServer>();
      Status s = zookeeper_->Start();
      ASSERT_TRUE(s.ok()) << s.error();
    }
    local::LocalClusterOptions options;
    options.agents = scenario.agents;
    options.resources = *local::ParseResources("cpus:4;mem:4096;disk:4096;ports:[31000-31999]");
    options.first_agent_host = test::AgentHostBase();
    options.work_dir = dir_.path() / "mesos";
    options.master.port = 0;
    options.master.allocation_interval = milliseconds(200);
    options.master.agent_unreachable_timeout = seconds(5);
    options.agent.status_update_retry_min = milliseconds(500);
    if (scenario.master_in_zookeeper) {
      options.master.zk = *ParseZkUrl(zookeeper_->Url("/mesos"));
      options.master.zk_session_timeout = seconds(4);
    }
    cluster_ = std::make_unique<local::LocalCluster>(io_, options);
    auto master = cluster_->Start();
    ASSERT_TRUE(master.ok()) << master.error();
    master_ = *master;

    if (scenario.tls) UseOperatorEnvironment();
    std::filesystem::path wrapper = test::WriteExecutorWrapper(dir_.path(), EXECUTOR_PATH);
    token_file_ = dir_.path() / "reseed-token";
    std::ofstream(token_file_) << "s3cret-token\n";
    std::vector<std::string> args = {
        "--cluster-name=faults",
        "--master=" + cluster_->MasterUrl(),
        "--cluster-size=" + std::to_string(scenario.size),
        "--admin-port=" + std::to_string(test::FreePort()),
        "--cpu-limit=0.5",
        "--mem-limit=128",
        "--disk-limit=256",
        "--executor-bin=" + wrapper.string(),
        "--probe-interval=500ms",
        "--bootstrap-gather=2s",
        "--reseed-token-file=" + token_file_.string(),
        "--reseed-timeout=" + std::to_string(scenario.reseed_timeout.count()) + "ms"};
    // The scenario's TLS mode, unless its extra flags name one (--tls=files).
    if (std::none_of(scenario.extra_flags.begin(), scenario.extra_flags.end(),
                     [](const std::string& f) { return f.starts_with("--tls="); })) {
      args.push_back(scenario.tls ? "--tls=auto" : "--tls=off");
    }
    // With the ZooKeeper store the state dir still holds the admin token and the scheduler's
    // TLS files: in the test's own dir, not the working directory's ./etcd-mesos-state.
    args.push_back("--state-dir=" + (dir_.path() / "state").string());
    if (scenario.store == Store::kZooKeeper) {
      args.push_back("--zk-framework-persist=" + zookeeper_->Url("/etcd-mesos-faults"));
    }
    args.insert(args.end(), scenario.extra_flags.begin(), scenario.extra_flags.end());
    auto parsed = shell::ParseFlags(args, {{"USER", "root"}}, ".");
    ASSERT_TRUE(parsed.ok()) << parsed.error();
    ASSERT_TRUE(shell::LoadFiles(parsed->flags.shell).ok());
    flags_ = parsed->flags;
    flags_.core.dead_member_grace = seconds(3);
    ASSERT_NO_FATAL_FAILURE(StartScheduler());
    if (scenario.tls) {
      ASSERT_NO_FATAL_FAILURE(FetchOperatorCertificate());
    }
    auto t0 = Clock::now();
    ASSERT_TRUE(RunUntil([&] { return AtSize(scenario.size); }, 120)) << core().health_reason();
    std::printf("[timing] bootstrap of %d -> %d healthy voters: %.1fs\n", scenario.size,
                scenario.size, Since(t0));
    workload_ = std::make_unique<test::Workload>(
        io_, [this] { return ClientEndpoints(); },
        test::Workload::Options{.prefix = "/faults", .tls = tls_});
    workload_->Start();
    // Beside it, clients whose reads, writes and compare-and-sets on shared keys must form a
    // linearizable history through every incident (checked by CheckData).
    history_ = std::make_unique<test::LinearizableWorkload>(
        io_, [this] { return ClientEndpoints(); },
        test::LinearizableWorkload::Options{
            .prefix = "/linearizable", .clients = 3, .pause = milliseconds(10), .tls = tls_});
    history_->Start();
    ASSERT_TRUE(RunUntil([&] { return workload_->acknowledged().size() >= 20; }, 60))
        << "the workload cannot write to a healthy cluster";
  }

  // Where the guide's `tls-client` block puts the operator's CA and client certificate (its ~),
  // and the ETCDCTL_ variables its export lines set, set here for every etcdctl the suite runs
  // (the scheduler's own etcdctl runs ignore them; the agents' processes never see them).
  void UseOperatorEnvironment() {
    operator_home_ = dir_.path() / "operator";
    std::filesystem::create_directories(operator_home_);
    std::string ca = (operator_home_ / "etcd-ca.pem").string();
    std::string client = (operator_home_ / "etcd-client.pem").string();
    operator_env_ = {{"ETCDCTL_CACERT", ca}, {"ETCDCTL_CERT", client}, {"ETCDCTL_KEY", client}};
    for (const auto& [name, value] : operator_env_) ::setenv(name.c_str(), value.c_str(), 1);
  }

  // Runs the guide's `tls-client` block as the operator would (once the scheduler has loaded its
  // state and CA): its files must give etcd clients that the members accept, and its export
  // lines must set exactly what UseOperatorEnvironment set.
  void FetchOperatorCertificate() {
    std::pair<int, std::string> got;
    RunUntil(
        [&] {
          got = Guide("tls-client", "HOME=" + operator_home_.string() + " USER=fault-suite",
                      "status=$?; env | grep '^ETCDCTL_' | LC_ALL=C sort; exit $status\n");
          return got.first == 0;
        },
        30);
    ASSERT_EQ(got.first, 0) << "the guide's tls-client block failed: " << got.second;
    std::string want;
    for (const auto& [name, value] : operator_env_) want += name + "=" + value + "\n";
    EXPECT_EQ(got.second, want) << "the guide's export lines set other ETCDCTL_ variables";
    auto tls = net::TlsClientConfig::FromFiles(operator_env_.at("ETCDCTL_CACERT"),
                                               operator_env_.at("ETCDCTL_CERT"),
                                               operator_env_.at("ETCDCTL_KEY"));
    ASSERT_TRUE(tls.ok()) << tls.error();
    tls_ = *tls;
  }

  etcd::Client::Options EtcdOptions() const { return etcd::Client::Options{.tls = tls_}; }
  std::string Scheme() const { return tls_ ? "https://" : "http://"; }

  void StartScheduler() {
    scheduler_ = NewScheduler(flags_);
    Status s = scheduler_->Start();
    ASSERT_TRUE(s.ok()) << s.error();
    admin_ = scheduler_->admin_address();
  }
  std::unique_ptr<shell::SchedulerShell> NewScheduler(const shell::SchedulerFlags& flags) {
    shell::SchedulerShell::Options options;
    options.on_fatal = [this](const Error& e) { on_fatal_(e); };
    options.on_torn_down = [this](const std::string& summary) { torn_down_ = summary; };
    options.client.backoff_min = milliseconds(100);
    options.client.backoff_max = milliseconds(500);
    return std::make_unique<shell::SchedulerShell>(io_, flags, options);
  }
  // A second instance with the same flags but its own admin port, standing by once it knows the
  // leader (scheduler high availability, ZooKeeper store).
  std::unique_ptr<shell::SchedulerShell> StartStandby() {
    shell::SchedulerFlags flags = flags_;
    flags.shell.admin_port = test::FreePort();
    flags.shell.webui_url = fmt::format("http://127.0.0.1:{}/", flags.shell.admin_port);
    auto standby = NewScheduler(flags);
    Status s = standby->Start();
    EXPECT_TRUE(s.ok()) << s.error();
    std::string leader = fmt::format("http://{}:{}/", flags_.shell.address, admin_.port);
    EXPECT_TRUE(RunUntil(
        [&] {
          auto stats = HttpJson(standby->admin_address(), "/stats");
          return stats.value("standby", 0) == 1 && stats.value("leader_url", "") == leader;
        },
        30))
        << "the second instance does not stand by behind " << leader;
    EXPECT_FALSE(standby->leading());
    return standby;
  }
  // The leader has stopped: the standby leads, is subscribed, and the cluster is healthy with
  // the members and tasks of `before`, none replaced.
  void ExpectTheStandbyTakesOverReplacingNothing(std::unique_ptr<shell::SchedulerShell> standby,
                                                 const std::map<std::string, Member>& before) {
    scheduler_.reset();
    scheduler_ = std::move(standby);
    admin_ = scheduler_->admin_address();
    ASSERT_TRUE(RunUntil([&] { return scheduler_->leading() && core().connected(); }, 30));
    ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 60)) << core().health_reason();
    for (const auto& [name, m] : before) {
      ASSERT_EQ(core().state().members.count(name), 1u) << name << " was replaced";
      EXPECT_EQ(core().state().members.at(name).task_id, m.task_id);
    }
    on_fatal_ = [](const Error& e) { ADD_FAILURE() << "scheduler fatal: " << e; };
    ExpectGuideSeesHealthyCluster(3);
    CheckData();
  }
  nlohmann::json HttpJson(const HostPort& at, const std::string& path) {
    auto [code, out] = Shell("curl -s -m 5 http://" + at.ToString() + path);
    auto parsed = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
    return code == 0 && parsed.is_object() ? parsed : nlohmann::json::object();
  }
  // The frameworks the master has subscribed (connected) now.
  int SubscribedFrameworks() {
    int n = 0;
    nlohmann::json state = cluster_->master().StateJson();  // the loop must not outlive it
    for (const auto& f : state["frameworks"]) {
      n += f.value("connected", false) ? 1 : 0;
    }
    return n;
  }

  // The scheduler process dies: nothing of it is left but its store.
  void KillScheduler() {
    scheduler_->Stop();
    scheduler_.reset();
  }

  void TearDown() override {
    if (workload_) workload_->Stop();
    if (history_) history_->Stop();
    if (scheduler_) scheduler_->Stop();
    scheduler_.reset();
    if (cluster_) cluster_->Shutdown();
    io_.run_for(milliseconds(200));
    workload_.reset();
    history_.reset();
    if (zookeeper_) zookeeper_->Stop();
    for (const auto& [name, value] : operator_env_) ::unsetenv(name.c_str());
  }

  // After a master restart: every member of `before` runs again under the same task, all at
  // size and RUNNING, with nothing removed, reseeded or lost, as the guide's commands see it.
  void ExpectTheSameMembersAllRunning(const std::map<std::string, Member>& before) {
    ASSERT_TRUE(RunUntil(
        [&] {
          if (!AtSize(3)) return false;
          for (const auto& [name, m] : core().state().members) {
            if (m.task_state != mesos::TASK_RUNNING) return false;
          }
          return true;
        },
        90))
        << core().health_reason();
    for (const auto& [name, m] : before) {
      ASSERT_EQ(core().state().members.count(name), 1u) << name << " was replaced";
      EXPECT_EQ(core().state().members.at(name).task_id, m.task_id);
    }
    EXPECT_EQ(core().state().counters.members_removed, 0u);
    EXPECT_EQ(core().state().counters.cluster_reseeds, 0u);
    EXPECT_FALSE(core().total_loss());
    auto tasks = Guide("master-tasks");
    EXPECT_EQ(tasks.first, 0) << tasks.second;
    EXPECT_EQ(std::count(tasks.second.begin(), tasks.second.end(), '\n'), 3) << tasks.second;
    EXPECT_EQ(tasks.second.find("TASK_LOST"), std::string::npos) << tasks.second;
    ExpectGuideSeesHealthyCluster(3);
    CheckData();
  }

  bool RunUntil(const std::function<bool()>& done, int seconds) {
    auto deadline = Clock::now() + std::chrono::seconds(seconds);
    while (!done() && Clock::now() < deadline) io_.run_for(milliseconds(20));
    return done();
  }
  void RunFor(milliseconds d) {
    auto deadline = Clock::now() + d;
    while (Clock::now() < deadline) io_.run_for(milliseconds(20));
  }

  // Runs a blocking command on another thread while this one keeps serving the cluster and the
  // scheduler (whose admin API the command may be talking to).
  std::pair<int, std::string> Shell(const std::string& command) {
    auto result = std::async(std::launch::async, [command] { return test::RunShell(command); });
    while (result.wait_for(milliseconds(0)) != std::future_status::ready) {
      io_.run_for(milliseconds(20));
    }
    return result.get();
  }

  // Runs the guide's command `name` with the operator's variables set.
  std::pair<int, std::string> Guide(const std::string& name, const std::string& extra_env = "",
                                    const std::string& then = "") {
    static const auto commands = GuideCommands();
    auto it = commands.find(name);
    if (it == commands.end()) {
      ADD_FAILURE() << "docs/response.md has no block tagged '# guide: " << name << "'";
      return {-1, ""};
    }
    std::string env = "export ADMIN=http://" + admin_.ToString() + " MASTER=" + master_.ToString() +
                      " TOKEN_FILE=" + token_file_.string() + " CLUSTER=faults " + extra_env + "\n";
    return Shell(env + it->second + then);
  }

  // The workload's keys as `endpoints` hold them (serializable: what that member alone has).
  Result<test::SequenceRead> Read(const std::string& endpoints, bool serializable) {
    std::string prefix = workload_->prefix();
    auto read = std::async(std::launch::async,
                           [=] { return test::ReadSequences(endpoints, prefix, serializable); });
    while (read.wait_for(milliseconds(0)) != std::future_status::ready) {
      io_.run_for(milliseconds(20));
    }
    return read.get();
  }

  nlohmann::json GuideJson(const std::string& name) {
    auto [code, out] = Guide(name);
    EXPECT_EQ(code, 0) << out;
    auto json = nlohmann::json::parse(out, nullptr, false);
    EXPECT_FALSE(json.is_discarded()) << name << " printed no JSON: " << out;
    return json;
  }

  const SchedulerCore& core() const { return scheduler_->core(); }

  bool AtSize(int size) const {
    if (!scheduler_ || !core().healthy()) return false;
    int voters = 0;
    for (const auto& [name, m] : core().state().members) {
      if (m.task_state == mesos::TASK_RUNNING && !m.learner && m.reachable) ++voters;
    }
    return voters == size && static_cast<int>(core().state().members.size()) == size;
  }

  // What a client knows of the cluster: the scheduler's members, as /endpoints says (the last
  // list is kept while the scheduler is away, as a client's would be).
  std::vector<HostPort> ClientEndpoints() {
    if (scheduler_) {
      std::vector<HostPort> now;
      for (const auto& [name, m] : core().state().members) {
        if (m.task_state == mesos::TASK_RUNNING) now.push_back({m.host, m.client_port});
      }
      if (!now.empty()) known_endpoints_ = now;
    }
    return known_endpoints_;
  }
  // Overwrites five keys with 500 KB values (each put keeps the old value in the history) until
  // etcd refuses a write with NOSPACE.
  // etcd-mesos-local's rehearsal tool writes 500 KiB values until etcd raises NOSPACE.
  void FillTheQuota() {
    std::string first = Scheme() + ClientEndpoints().front().ToString();
    auto fill =
        Shell(std::string(LOCAL_PATH) + " fill-quota --max-writes=400 --endpoints=" + first);
    ASSERT_EQ(fill.first, 0) << fill.second;
    EXPECT_NE(fill.second.find("NOSPACE after"), std::string::npos) << fill.second;
  }

  std::string EndpointsLine() {
    std::string out;
    for (const auto& e : ClientEndpoints())
      out += (out.empty() ? "" : ",") + Scheme() + e.ToString();
    return out;
  }

  // Where a reseed cut the history: the survivor's values of the linearizable workload's keys,
  // read from it alone once the majority was lost (`at`, on the history's clock).
  struct HistorySplit {
    int64_t at = 0;
    std::map<std::string, std::string> survivor_values;
  };

  // Each key of the linearizable workload read from `endpoint` (serializable: that member's
  // own data), as final read operations of the history (linearizable only).
  Result<std::vector<test::Operation>> ReadHistoryKeys(const HostPort& endpoint,
                                                       bool serializable) {
    std::vector<test::Operation> reads;
    etcd::Client client(io_, endpoint, EtcdOptions());
    for (int k = 0; k < history_->options().keys; ++k) {
      test::Operation op{.client = -1, .key = fmt::format("{}/{}", history_->options().prefix, k)};
      op.invoke = history_->Now();
      auto got = etcd::Await<etcd::RangeResponse>(
          io_, [&](auto cb) { client.Get(op.key, serializable, cb); });
      if (!got.ok()) return got.error();
      op.complete = history_->Now();
      if (!got->kvs.empty()) op.value = got->kvs.front().value;
      reads.push_back(std::move(op));
    }
    return reads;
  }

  HistorySplit SplitAtSurvivor(const Member& survivor) {
    HistorySplit split;
    split.at = history_->Now();
    auto held = ReadHistoryKeys({survivor.host, survivor.client_port}, /*serializable=*/true);
    EXPECT_TRUE(held.ok()) << held.error();
    if (!held.ok()) return split;
    for (const auto& read : *held) {
      if (read.value) split.survivor_values[read.key] = *read.value;
    }
    return split;
  }

  // Checks one history and prints what was checked: `[linearizability] <test> <part>: ...`.
  void ExpectLinearizable(const test::History& history, const std::string& part) {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::string file = fmt::format("/tmp/em-linearizability-{}{}.json", test, part);
    std::ofstream(file) << test::ToJson(history);
    auto t0 = Clock::now();
    auto result = test::CheckLinearizability(history);
    ASSERT_TRUE(result.ok()) << result.error();
    size_t ok = std::count_if(history.ops.begin(), history.ops.end(),
                              [](const auto& op) { return op.outcome == test::Outcome::kOk; });
    std::printf("[linearizability] %s%s: %zu ops (%zu ok), %zu keys, checked in %.0f ms, %s\n",
                test.c_str(), part.c_str(), history.ops.size(), ok, result->keys.size(),
                Since(t0) * 1000, std::string(test::VerdictName(result->verdict)).c_str());
    EXPECT_TRUE(result->linearizable()) << result->ToString() << "\nhistory: " << file;
  }

  // Stops the linearizable workload (the caller has let its last operations end), adds a final
  // linearizable read of every key, and checks the history. With a split (a reseed), the part
  // before the majority was lost and the part after it (from the survivor's values) are checked
  // apart: the reseed may lose what the survivor never had, and nothing else.
  void CheckHistory(const std::optional<HistorySplit>& split) {
    history_->Stop();
    auto endpoints = ClientEndpoints();
    ASSERT_FALSE(endpoints.empty());
    // A read that fails observed nothing and is not recorded, so it is asked again, of the next
    // member: an election at this moment ("leader changed") is no finding of the test's.
    auto final_reads = ReadHistoryKeys(endpoints.front(), /*serializable=*/false);
    for (size_t attempt = 1; !final_reads.ok() && attempt < 10; ++attempt) {
      std::printf("[linearizability] final read failed (%s); asking again\n",
                  final_reads.error().ToString().c_str());
      RunFor(milliseconds(500));
      final_reads = ReadHistoryKeys(endpoints[attempt % endpoints.size()], /*serializable=*/false);
    }
    ASSERT_TRUE(final_reads.ok()) << final_reads.error();
    for (auto& read : *final_reads) history_->Record(std::move(read));
    const test::History& all = history_->history();
    if (!split) return ExpectLinearizable(all, "");
    test::History before, after;
    after.initial = split->survivor_values;
    for (const auto& op : all.ops) {
      bool indeterminate = op.outcome == test::Outcome::kIndeterminate;
      // An indeterminate operation may take effect at any time after its invocation: on either
      // side of the split if it was invoked before it.
      if (indeterminate ? op.invoke < split->at : op.complete < split->at) {
        before.ops.push_back(op);
      }
      if (indeterminate || op.complete >= split->at) after.ops.push_back(op);
    }
    ASSERT_NO_FATAL_FAILURE(ExpectLinearizable(before, " before the loss"));
    ASSERT_NO_FATAL_FAILURE(ExpectLinearizable(after, " after the reseed"));
  }

  // A watcher started before an incident, with the real etcdctl: its client follows the
  // endpoints it is given and resumes a broken watch, on another member, after the last
  // revision it saw. It watches the sequenced workload's keys from the revision after `from`.
  struct Watcher {
    uint64_t from = 0;
    std::filesystem::path log;
    std::unique_ptr<test::ChildProcess> process;
  };

  Watcher StartWatcher() {
    Watcher w;
    auto endpoints = ClientEndpoints();
    etcd::Client client(io_, endpoints.front(), EtcdOptions());
    auto status = etcd::Await<etcd::StatusResponse>(io_, [&](auto cb) { client.Status(cb); });
    EXPECT_TRUE(status.ok()) << status.error();
    w.from = status.ok() ? status->header.revision : 0;
    w.log = dir_.path() / "watch.json";
    w.process = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{"etcdctl", "--endpoints=" + EndpointsLine(), "watch", "--prefix",
                                 workload_->prefix() + "/", fmt::format("--rev={}", w.from + 1),
                                 "-w", "json"},
        w.log, std::map<std::string, std::string>{{"ETCDCTL_API", "3"}});
    return w;
  }

  // The watcher's events so far, in the order it printed them: (mod revision, key in base64).
  std::vector<std::pair<uint64_t, std::string>> WatchedEvents(const Watcher& w) {
    std::vector<std::pair<uint64_t, std::string>> events;
    std::ifstream in(w.log);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.contains("Events") || !j["Events"].is_array()) continue;
      for (const auto& e : j["Events"]) {
        events.emplace_back(e["kv"].value("mod_revision", uint64_t{0}),
                            e["kv"].value("key", std::string()));
      }
    }
    return events;
  }

  // After CheckData (no more writes): every key of the prefix written after the watcher's start
  // reached it, in revision order, once, with the revision the cluster holds for it.
  void ExpectWatcherSawEveryRevision(Watcher& w) {
    auto [code, out] = test::RunShell("ETCDCTL_API=3 etcdctl --endpoints=" + EndpointsLine() +
                                      " get --prefix " + workload_->prefix() + "/ -w json");
    ASSERT_EQ(code, 0) << out;
    auto held = nlohmann::json::parse(out, nullptr, false);
    ASSERT_FALSE(held.is_discarded()) << out;
    std::map<std::string, uint64_t> want;  // key -> its revision, for keys written after `from`
    for (const auto& kv : held.value("kvs", nlohmann::json::array())) {
      uint64_t rev = kv.value("mod_revision", uint64_t{0});
      if (rev > w.from) want[kv.value("key", std::string())] = rev;
    }
    ASSERT_FALSE(want.empty()) << "no write after the watcher started";
    uint64_t last = 0;
    for (const auto& [key, rev] : want) last = std::max(last, rev);
    RunUntil(
        [&] {
          auto events = WatchedEvents(w);
          return !events.empty() && events.back().first >= last;
        },
        15);
    w.process->Stop(seconds(2));
    auto events = WatchedEvents(w);
    std::map<std::string, uint64_t> seen;
    uint64_t previous = w.from;
    size_t out_of_order = 0;
    for (const auto& [rev, key] : events) {
      if (rev <= previous) ++out_of_order;  // a duplicate or a step back
      previous = std::max(previous, rev);
      seen[key] = rev;
    }
    EXPECT_EQ(out_of_order, 0u) << "events repeated or out of order; log: " << w.log;
    EXPECT_EQ(seen, want) << "the watcher missed writes or saw others; log: " << w.log;
    std::printf("[watch] %zu events after revision %llu, up to %llu: %s\n", events.size(),
                static_cast<unsigned long long>(w.from), static_cast<unsigned long long>(last),
                out_of_order == 0 && seen == want ? "no gap, no duplicate, in order" : "BROKEN");
  }

  // Stops the workloads, lets their last operations finish, checks every acknowledged write
  // against a linearizable read of the whole prefix, and checks the linearizable history.
  test::WorkloadReport CheckData(const std::optional<std::set<uint64_t>>& survivor = {},
                                 const std::optional<HistorySplit>& split = {}) {
    workload_->Stop();
    history_->Stop();
    RunFor(milliseconds(2500));  // the write in flight times out or is answered
    CheckHistory(split);
    auto got = Read(EndpointsLine(), /*serializable=*/false);
    EXPECT_TRUE(got.ok()) << got.error();
    if (!got.ok()) return {};
    auto report =
        test::CheckWorkload(workload_->acknowledged(), workload_->prefix(), *got, survivor);
    std::printf("[workload] %s (%llu attempted, %llu failed)\n", report.ToString().c_str(),
                static_cast<unsigned long long>(workload_->attempted()),
                static_cast<unsigned long long>(workload_->failed()));
    EXPECT_TRUE(report.ok()) << report.ToString();
    return report;
  }

  // The master's task of `member` (its name is "<member> <host> <ports>"), if it lists one.
  std::optional<nlohmann::json> MasterTaskOf(const std::string& member) {
    auto state = cluster_->master().StateJson();
    for (const auto& t : state["frameworks"][0]["tasks"]) {
      if (t["name"].get<std::string>().rfind(member + " ", 0) == 0) return t;
    }
    return std::nullopt;
  }
  std::string ExecutorOf(const std::string& member) {
    auto task = MasterTaskOf(member);
    return task ? (*task)["executor_id"].get<std::string>() : "";
  }
  void KillMember(const std::string& name) {
    std::string executor = ExecutorOf(name);
    ASSERT_FALSE(executor.empty()) << "no task for " << name;
    Status s = cluster_->KillExecutor(executor);
    ASSERT_TRUE(s.ok()) << s.error();
  }
  // Sends `signal` to a member's executor (ExecutorOf) and everything it started (etcd runs in a
  // session of its own): SIGSTOP and SIGCONT freeze and thaw the member as a host cut off from the
  // network would look to its peers and to the scheduler's probes.
  void SignalExecutor(const std::string& executor, int signal) {
    std::map<int, int> parent;
    std::set<int> targets;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      std::string pid = entry.path().filename();
      if (pid.empty() || !std::all_of(pid.begin(), pid.end(), ::isdigit)) continue;
      std::ifstream stat(entry.path() / "stat");
      std::string line;
      std::getline(stat, line);
      auto close = line.rfind(')');
      if (close == std::string::npos) continue;
      std::istringstream rest(line.substr(close + 2));
      std::string state;
      int ppid = 0;
      rest >> state >> ppid;
      parent[std::stoi(pid)] = ppid;
      std::ifstream environ(entry.path() / "environ");
      std::string env((std::istreambuf_iterator<char>(environ)), {});
      if (env.find("MESOS_EXECUTOR_ID=" + executor + std::string(1, '\0')) != std::string::npos) {
        targets.insert(std::stoi(pid));
      }
    }
    ASSERT_FALSE(targets.empty()) << "no process of executor " << executor;
    for (bool grew = true; grew;) {
      grew = false;
      for (const auto& [pid, ppid] : parent)
        grew |= targets.count(ppid) && targets.insert(pid).second;
    }
    for (int pid : targets) ::kill(pid, signal);
  }
  // kill -9 of a member's executor, then until the dead member is removed and the cluster is
  // back at its size with a replacement.
  void KillAndHeal(const std::string& victim) {
    ASSERT_NO_FATAL_FAILURE(KillMember(victim));
    ASSERT_TRUE(RunUntil([&] { return core().state().members.count(victim) == 0; }, 60));
    ASSERT_TRUE(RunUntil([&] { return AtSize(scenario_.size); }, 120)) << core().health_reason();
  }
  // A member that does not lead (the last by name), as the core has it now.
  Member AFollower() {
    std::string leader = LeaderName();
    Member follower;
    for (const auto& [name, m] : core().state().members) {
      if (name != leader) follower = m;
    }
    return follower;
  }
  // Where a member's persistent volume lives on its agent (durable members).
  std::filesystem::path VolumeDirOf(const Member& m) {
    int agent = AgentOf(m);
    if (agent <= 0) return {};
    return std::filesystem::path(
               cluster_->agent(agent)->StateJson()["flags"]["work_dir"].get<std::string>()) /
           "volumes/roles/etcd" / m.volume;
  }
  int AgentOf(const Member& m) {
    for (int n = 1; n <= cluster_->agent_count(); ++n) {
      if (cluster_->agent(n) && cluster_->agent(n)->id().value() == m.agent_id) return n;
    }
    return 0;
  }
  // Runs until the rollout is done (or `seconds` pass); answers the order in which the members
  // of `before` were removed from etcd, as the scheduler's notes say.
  std::vector<std::string> RunRollout(const std::vector<Member>& before, int seconds) {
    std::vector<std::string> gone;
    RunUntil(
        [&] {
          for (const Note& n : core().notes()) {
            for (const auto& m : before) {
              bool removal = n.message.starts_with("removing member " + m.name + " (");
              if (removal && std::count(gone.begin(), gone.end(), m.name) == 0) {
                gone.push_back(m.name);
              }
            }
          }
          return core().rollout().state == "done" && AtSize(3);
        },
        seconds);
    return gone;
  }
  // Every member refuses a client with `tls` (its certificate and its trust): one of a CA that
  // a rotation has retired.
  void ExpectEveryMemberRefuses(std::shared_ptr<const net::TlsClientConfig> tls) {
    for (const HostPort& member : ClientEndpoints()) {
      std::optional<Result<etcd::RangeResponse>> got;
      auto client = std::make_shared<etcd::Client>(io_, member, etcd::Client::Options{.tls = tls});
      client->Get("/faults/x", /*serializable=*/true,
                  [&](Result<etcd::RangeResponse> r) { got = std::move(r); });
      ASSERT_TRUE(RunUntil([&] { return got.has_value(); }, 30));
      EXPECT_FALSE(got->ok()) << member.ToString() << " answered a client of the old CA";
    }
  }
  // The expiry (Unix seconds) of the certificate a member serves its clients, as openssl reads
  // it off the handshake with the operator's files; 0 if none was read.
  int64_t ServedCertificateExpiry(const HostPort& member) {
    auto [code, out] = Shell(fmt::format(
        "openssl s_client -connect {} -CAfile {} -cert {} -key {} </dev/null 2>/dev/null"
        " | openssl x509 -noout -enddate | cut -d= -f2 | xargs -I{{}} date -d {{}} +%s",
        member.ToString(), operator_env_.at("ETCDCTL_CACERT"), operator_env_.at("ETCDCTL_CERT"),
        operator_env_.at("ETCDCTL_KEY")));
    return code == 0 ? std::atoll(out.c_str()) : 0;
  }
  bool Noted(const std::string& text) const {
    return std::any_of(core().notes().begin(), core().notes().end(),
                       [&](const Note& n) { return n.message.find(text) != std::string::npos; });
  }
  std::string LeaderName() {
    std::string leader;
    RunUntil(
        [&] {
          uint64_t id = CountLeaderVotes(core().state().members).leader;
          for (const auto& [name, m] : core().state().members) {
            if (id != 0 && m.member_id == id) leader = name;
          }
          return !leader.empty();
        },
        30);
    return leader;
  }

  std::vector<Member> Members() const {
    std::vector<Member> out;
    for (const auto& [name, m] : core().state().members) out.push_back(m);
    return out;
  }

  void ExpectGuideSeesHealthyCluster(int size) {
    auto stats = GuideJson("stats");
    EXPECT_EQ(stats.value("healthy", -1), 1) << stats.dump();
    EXPECT_EQ(stats.value("running_servers", -1), size) << stats.dump();
    auto health = Guide("health-v3");
    EXPECT_EQ(health.first, 0) << health.second;
    EXPECT_EQ(std::count(health.second.begin(), health.second.end(), '\n'), size) << health.second;
    auto v2 = Guide("health-v2");
    EXPECT_EQ(v2.first, 0) << v2.second;
    EXPECT_NE(v2.second.find("cluster is healthy"), std::string::npos) << v2.second;
    auto list = Guide("member-list-v3");
    EXPECT_EQ(list.first, 0) << list.second;
    auto members = GuideJson("members");
    EXPECT_EQ(members.size(), static_cast<size_t>(size)) << members.dump();
  }

  test::TempDir dir_{"em-faults"};
  boost::asio::io_context io_;
  Scenario scenario_;
  std::unique_ptr<test::ZooKeeperServer> zookeeper_;
  std::unique_ptr<local::LocalCluster> cluster_;
  HostPort master_;
  HostPort admin_;
  std::filesystem::path token_file_;
  shell::SchedulerFlags flags_;
  std::unique_ptr<shell::SchedulerShell> scheduler_;
  std::string torn_down_;  // what the scheduler said when its teardown finished
  std::function<void(const Error&)> on_fatal_ = [](const Error& e) {
    ADD_FAILURE() << "scheduler fatal: " << e;
  };
  std::unique_ptr<test::Workload> workload_;
  std::unique_ptr<test::LinearizableWorkload> history_;
  std::vector<HostPort> known_endpoints_;
  std::filesystem::path operator_home_;
  std::map<std::string, std::string> operator_env_;  // sorted, as `env | sort` prints them
  std::shared_ptr<const net::TlsClientConfig> tls_;
};

TEST_F(FaultSuite, TheGuideNamesEveryCommandTheSuiteRuns) {
  auto commands = GuideCommands();
  for (const char* name :
       {"stats",          "members",        "endpoints",      "healthz",         "health-v3",
        "health-v2",      "member-list-v3", "member-list-v2", "reseed",          "reseed-get",
        "start-fresh",    "master-tasks",   "backups",        "backup-now",      "restore",
        "cluster-size",   "alarm-list",     "defrag",         "rolling-restart", "rollout",
        "rollout-resume", "hashkv",         "tls-client",     "rotate-ca",       "rotate-ca-next",
        "teardown"}) {
    EXPECT_TRUE(commands.count(name)) << "docs/response.md lacks '# guide: " << name << "'";
  }
}

// Guide: "Growing or shrinking the cluster", under the workloads: to five members and back to
// three, one member at a time; the leader is never the one removed, and every acknowledged write
// is kept.
TEST_F(FaultSuite, TheClusterGrowsToFiveAndShrinksBackToThreeByTheGuide) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.agents = 6}));
  auto t0 = Clock::now();
  auto grow = Guide("cluster-size", "SIZE=5");
  EXPECT_NE(grow.second.find("202"), std::string::npos) << grow.second;
  ASSERT_TRUE(RunUntil([&] { return AtSize(5); }, 240)) << core().health_reason();
  std::printf("[timing] 3 -> 5 healthy voters: %.1fs\n", Since(t0));
  EXPECT_EQ(GuideJson("stats").value("target_size", -1), 5);
  EXPECT_EQ(core().state().counters.members_added, 2u);
  // The leader as every member sees it, before the shrink.
  std::string leader;
  ASSERT_TRUE(RunUntil(
      [&] {
        for (const auto& [name, m] : core().state().members) {
          if (m.member_id != 0 && m.member_id == m.leader) leader = name;
        }
        return !leader.empty();
      },
      30));
  t0 = Clock::now();
  auto shrink = Guide("cluster-size", "SIZE=3");
  EXPECT_NE(shrink.second.find("202"), std::string::npos) << shrink.second;
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 180)) << core().health_reason();
  std::printf("[timing] 5 -> 3 healthy voters: %.1fs\n", Since(t0));
  EXPECT_EQ(core().state().counters.members_removed, 2u);
  EXPECT_EQ(core().state().members.count(leader), 1u) << "the leader " << leader << " was removed";
  auto even = Guide("cluster-size", "SIZE=4");
  EXPECT_NE(even.second.find("400"), std::string::npos) << even.second;
  EXPECT_EQ(GuideJson("stats").value("target_size", -1), 3);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// Guide: "Rolling restarts, configuration changes and etcd upgrades": a rolling restart under
// the workloads replaces every member once, followers first and the leader last after its
// leadership moved, each successor added and promoted before its member is removed; no
// acknowledged write is lost and the cluster never loses its quorum.
TEST_F(FaultSuite, ARollingRestartByTheGuideReplacesEachMemberOnceTheLeaderLast) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  std::vector<Member> before = Members();
  std::string leader = LeaderName();
  ASSERT_FALSE(leader.empty());
  auto t0 = Clock::now();
  auto asked = Guide("rolling-restart");
  EXPECT_NE(asked.second.find("202"), std::string::npos) << asked.second;
  std::vector<std::string> gone = RunRollout(before, 300);
  ASSERT_EQ(core().rollout().state, "done") << core().rollout().reason << core().rollout().step;
  std::printf("[timing] rolling restart of 3 -> 3 healthy voters, all replaced: %.1fs\n",
              Since(t0));
  ASSERT_EQ(gone.size(), 3u);
  EXPECT_EQ(gone.back(), leader) << "the leader goes last";
  EXPECT_TRUE(Noted("moving leadership from " + leader)) << "leadership moved away first";
  for (const auto& m : before) EXPECT_EQ(core().state().members.count(m.name), 0u) << m.name;
  auto rollout = GuideJson("rollout");
  EXPECT_EQ(rollout.value("state", ""), "done") << rollout.dump();
  EXPECT_EQ(rollout.value("members_rolled", 0), 3) << rollout.dump();
  EXPECT_TRUE(rollout["pending"].empty()) << rollout.dump();
  EXPECT_EQ(core().state().counters.members_added, 3u) << "one successor per member";
  EXPECT_EQ(core().state().counters.cluster_livelocks, 0u) << "quorum was never lost";
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// Durable members (--role other than *): a member whose etcd and executor are killed comes back
// on the same agent, on its persistent volume, as the same etcd member (same id, same data): no
// membership change, nothing copied, under both workloads.
TEST_F(FaultSuite, ADurableMemberKilledIsRestartedInPlaceOnItsVolume) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.extra_flags = {"--role=etcd"}}));
  const Member before = AFollower();
  ASSERT_FALSE(before.volume.empty()) << "members are durable with --role=etcd";
  std::filesystem::path volume = VolumeDirOf(before);
  ASSERT_TRUE(std::filesystem::is_directory(volume / "member")) << "etcd's data is on the volume";

  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(KillMember(before.name));
  ASSERT_TRUE(RunUntil(
      [&] {
        auto it = core().state().members.find(before.name);
        return it != core().state().members.end() && it->second.restarts == 1 &&
               it->second.task_state == mesos::TASK_RUNNING && AtSize(3);
      },
      120))
      << core().health_reason();
  std::printf("[timing] durable follower killed -> restarted in place and healthy: %.1fs\n",
              Since(t0));
  const Member& after = core().state().members.at(before.name);
  EXPECT_EQ(after.member_id, before.member_id) << "the same etcd member";
  EXPECT_EQ(after.agent_id, before.agent_id) << "on the same agent";
  EXPECT_EQ(after.volume, before.volume);
  EXPECT_EQ(core().state().counters.members_added, 0u) << "nothing replaced it";
  EXPECT_EQ(core().state().counters.members_removed, 0u);
  EXPECT_TRUE(Noted("restarting " + before.name + " in place on its volume"));
  auto state = cluster_->master().StateJson();
  for (const auto& a : state["slaves"]) {
    if (a["id"] != before.agent_id) continue;
    EXPECT_EQ(a["reserved_resources"]["etcd"]["cpus"], flags_.core.task_cpus) << a.dump();
  }
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// A durable member's host dies with everything on it and comes back with its disk well within
// --replace-after: the member is restarted in place on its volume, nothing is replaced.
TEST_F(FaultSuite, ADurableMemberWhoseHostRebootsIsRestartedInPlace) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.extra_flags = {"--role=etcd"}}));
  Member before = AFollower();
  int agent = AgentOf(before);
  ASSERT_GT(agent, 0);
  ASSERT_TRUE(cluster_->StopAgent(agent).ok());
  auto member = [&]() -> const Member* {
    auto it = core().state().members.find(before.name);
    return it == core().state().members.end() ? nullptr : &it->second;
  };
  ASSERT_TRUE(RunUntil([&] { return member() && Uncertain(member()->task_state); }, 60));
  auto t0 = Clock::now();
  ASSERT_TRUE(cluster_->RestartAgent(agent, /*wipe=*/false).ok());
  // Mesos says TASK_GONE (REASON_AGENT_RESTARTED) of its task: the agent and its disk are back.
  ASSERT_TRUE(RunUntil(
      [&] {
        return !member() || (member()->restarts == 1 &&
                             member()->task_state == mesos::TASK_RUNNING && AtSize(3));
      },
      120))
      << core().health_reason();
  ASSERT_NE(member(), nullptr) << "it was replaced, not restarted in place";
  std::printf("[timing] durable member's host back -> restarted in place and healthy: %.1fs\n",
              Since(t0));
  EXPECT_EQ(member()->member_id, before.member_id);
  EXPECT_EQ(core().state().counters.members_added, 0u) << "nothing replaced it";
  EXPECT_EQ(core().state().counters.members_removed, 0u);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// A durable member's host stays down past --replace-after: the member is replaced elsewhere.
// When the host comes back with its disk, the old member's volume and reservations are released
// (the volume destroyed on the agent) and the cluster is left as it is.
TEST_F(FaultSuite, ADurableMemberGoneLongerThanReplaceAfterIsReplacedAndItsVolumeReleased) {
  ASSERT_NO_FATAL_FAILURE(
      StartAll({.agents = 4, .extra_flags = {"--role=etcd", "--replace-after=4s"}}));
  Member before = AFollower();
  int agent = AgentOf(before);
  std::filesystem::path volume = VolumeDirOf(before);
  ASSERT_TRUE(std::filesystem::is_directory(volume));
  auto t0 = Clock::now();
  ASSERT_TRUE(cluster_->StopAgent(agent).ok());
  ASSERT_TRUE(RunUntil([&] { return core().state().members.count(before.name) == 0; }, 120));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  std::printf("[timing] durable member's host gone -> replaced after --replace-after=4s: %.1fs\n",
              Since(t0));
  EXPECT_TRUE(Noted("not restarted in place on its volume within 4s"));
  EXPECT_EQ(core().state().counters.members_added, 1u);
  uint64_t removed = core().state().counters.members_removed;

  ASSERT_TRUE(cluster_->RestartAgent(agent, /*wipe=*/false).ok());
  ASSERT_TRUE(RunUntil([&] { return !std::filesystem::exists(volume); }, 60))
      << "the replaced member's volume is destroyed once its agent offers it";
  EXPECT_TRUE(Noted("releasing the volume and reservations of " + before.name));
  RunFor(seconds(2));
  EXPECT_EQ(core().state().counters.members_added, 1u) << "the cluster is left as it is";
  EXPECT_EQ(core().state().counters.members_removed, removed);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// A durable member's host is cut off (from the master, and from its peers and the scheduler: its
// processes frozen) past --replace-after: it is replaced elsewhere. When the host comes back, its
// old task, still running there, is killed as no longer ours and its volume destroyed and
// unreserved; the cluster is left as it is.
TEST_F(FaultSuite, ADurableMemberPartitionedPastReplaceAfterIsRefusedWhenItComesBack) {
  ASSERT_NO_FATAL_FAILURE(
      StartAll({.agents = 4, .extra_flags = {"--role=etcd", "--replace-after=4s"}}));
  Member before = AFollower();
  int agent = AgentOf(before);
  ASSERT_GT(agent, 0);
  std::filesystem::path volume = VolumeDirOf(before);
  ASSERT_TRUE(std::filesystem::is_directory(volume));
  const std::string executor = ExecutorOf(before.name);
  ASSERT_FALSE(executor.empty());
  auto t0 = Clock::now();
  ASSERT_TRUE(cluster_->PartitionAgent(agent).ok());
  ASSERT_NO_FATAL_FAILURE(SignalExecutor(executor, SIGSTOP));
  ASSERT_TRUE(RunUntil([&] { return core().state().members.count(before.name) == 0; }, 120));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  std::printf(
      "[timing] durable member's host partitioned -> replaced (--replace-after=4s): %.1fs\n",
      Since(t0));
  EXPECT_TRUE(Noted("not restarted in place on its volume within 4s"));
  const uint64_t added = core().state().counters.members_added;
  const uint64_t removed = core().state().counters.members_removed;
  EXPECT_EQ(added, 1u);

  t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(SignalExecutor(executor, SIGCONT));
  ASSERT_TRUE(cluster_->HealAgent(agent).ok());
  ASSERT_TRUE(RunUntil([&] { return !std::filesystem::exists(volume); }, 60))
      << "the replaced member's volume is destroyed once its agent is back";
  std::printf("[timing] partition healed -> old task gone and its volume released: %.1fs\n",
              Since(t0));
  EXPECT_TRUE(Noted("releasing the volume and reservations of " + before.name));
  // The old task leaves the master's tasks once its TASK_KILLED is acknowledged, which may come
  // just after the release.
  std::optional<nlohmann::json> old_task;
  EXPECT_TRUE(RunUntil([&] { return !(old_task = MasterTaskOf(before.name)); }, 10))
      << "the old task: " << old_task->dump();
  RunFor(seconds(2));
  EXPECT_EQ(core().state().counters.members_added, added) << "the cluster is left as it is";
  EXPECT_EQ(core().state().counters.members_removed, removed);
  EXPECT_EQ(core().state().counters.cluster_reseeds, 0u);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// etcd's own view, without Mesos: a durable member's processes hang (frozen) while its agent is
// well, so Mesos says RUNNING throughout. Its leader loses its connection to it and it does not
// answer: it is replaced after --replace-after, not left for ever. Thawed, the old task is
// killed (no longer a member) and its volume released; nothing else changes.
TEST_F(FaultSuite, ADurableMemberCutOffWhileMesosSaysRunningIsReplacedByEtcdsOwnView) {
  ASSERT_NO_FATAL_FAILURE(
      StartAll({.agents = 4, .extra_flags = {"--role=etcd", "--replace-after=4s"}}));
  Member before = AFollower();
  std::filesystem::path volume = VolumeDirOf(before);
  const std::string executor = ExecutorOf(before.name);
  ASSERT_FALSE(executor.empty());
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(SignalExecutor(executor, SIGSTOP));
  bool mesos_said_running = true;
  ASSERT_TRUE(RunUntil(
      [&] {
        auto it = core().state().members.find(before.name);
        if (it == core().state().members.end()) return true;
        mesos_said_running &= it->second.task_state == mesos::TASK_RUNNING;
        return false;
      },
      120));
  EXPECT_TRUE(mesos_said_running) << "Mesos noticed first: this is not etcd's view at work";
  EXPECT_TRUE(Noted(before.name + " is cut off by etcd's own view"));
  EXPECT_TRUE(Noted("its leader has had no connection to it, and it has not answered, for 4s"));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  std::printf("[timing] durable member frozen (Mesos: RUNNING) -> replaced, 3 healthy: %.1fs\n",
              Since(t0));
  const uint64_t added = core().state().counters.members_added;
  EXPECT_EQ(added, 1u);
  ASSERT_NO_FATAL_FAILURE(SignalExecutor(executor, SIGCONT));
  ASSERT_TRUE(RunUntil([&] { return !std::filesystem::exists(volume); }, 60))
      << "the old member's volume is released once its task is gone";
  RunFor(seconds(2));
  EXPECT_EQ(core().state().counters.members_added, added) << "the cluster is left as it is";
  EXPECT_EQ(core().state().counters.cluster_reseeds, 0u);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// A durable member's agent comes back with a wiped work dir (a new disk, a new agent id): Mesos
// says its task is gone for good, and so is its volume. The member is replaced at once, not after
// --replace-after (5 min by default).
TEST_F(FaultSuite, ADurableMemberWhoseAgentIsWipedIsReplacedAtOnce) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.extra_flags = {"--role=etcd"}}));
  Member before = AFollower();
  int agent = AgentOf(before);
  ASSERT_GT(agent, 0);
  auto t0 = Clock::now();
  ASSERT_TRUE(cluster_->RestartAgent(agent, /*wipe=*/true).ok());
  ASSERT_TRUE(RunUntil([&] { return core().state().members.count(before.name) == 0; }, 60));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  std::printf("[timing] durable member's agent wiped -> replaced, 3 healthy voters: %.1fs\n",
              Since(t0));
  EXPECT_TRUE(Noted("which Mesos removed for good"));
  EXPECT_EQ(core().state().counters.members_added, 1u);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// Guide: "Retiring a cluster for good (teardown)", on a durable TLS cluster: refused without the
// cluster's name; then every task is killed, every volume destroyed on its agent, every
// reservation released, the state removed and the framework completed at the master. A
// scheduler started afterwards runs a new, empty cluster under a new framework and a new CA.
TEST_F(FaultSuite, TheGuideTearsADurableClusterDownAndARedeployStartsAnEmptyOne) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.extra_flags = {"--role=etcd"}}));
  std::vector<std::filesystem::path> volumes;
  for (const auto& m : Members()) {
    volumes.push_back(VolumeDirOf(m));
    ASSERT_TRUE(std::filesystem::is_directory(volumes.back())) << m.name;
  }
  workload_->Stop();
  history_->Stop();
  RunFor(milliseconds(500));
  const std::string framework_id = core().state().framework_id.value_or("");
  ASSERT_FALSE(framework_id.empty());
  const std::string old_key = test::Workload::Key(workload_->prefix(), 1);
  ASSERT_TRUE(workload_->acknowledged().count(1)) << "the first write was acknowledged";

  auto wrong = Guide("teardown", "CLUSTER=other");
  EXPECT_NE(wrong.second.find("400"), std::string::npos) << wrong.second;
  EXPECT_FALSE(core().state().tearing_down);
  auto t0 = Clock::now();
  auto asked = Guide("teardown");
  EXPECT_NE(asked.second.find("tearing down: killing 3 task(s), releasing 3 volume(s)"),
            std::string::npos)
      << asked.second;
  EXPECT_NE(asked.second.find("\n202"), std::string::npos) << asked.second;
  EXPECT_EQ(GuideJson("stats").value("tearing_down", 0), 1);
  ASSERT_TRUE(RunUntil([&] { return !torn_down_.empty(); }, 180)) << core().health_reason();
  std::printf("[timing] teardown of a durable cluster of 3 -> done: %.1fs\n", Since(t0));
  EXPECT_NE(torn_down_.find("every task ended, 3 volume(s) released"), std::string::npos)
      << torn_down_;
  EXPECT_NE(torn_down_.find("framework torn down at the master"), std::string::npos) << torn_down_;
  KillScheduler();  // as main() does once torn down: the process exits

  nlohmann::json state = cluster_->master().StateJson();
  EXPECT_TRUE(state["frameworks"].empty()) << state["frameworks"].dump();
  bool completed = false;
  for (const auto& f : state["completed_frameworks"]) completed |= f["id"] == framework_id;
  EXPECT_TRUE(completed) << "framework " << framework_id << " is not completed";
  for (const auto& a : state["slaves"]) {
    EXPECT_TRUE(a["reserved_resources"].empty()) << a.dump();
  }
  for (const auto& v : volumes) EXPECT_FALSE(std::filesystem::exists(v)) << v;
  const auto records = dir_.path() / "state";
  EXPECT_FALSE(std::filesystem::exists(records / "c.etcd-faults" / "c.state"));
  EXPECT_FALSE(std::filesystem::exists(records / "c.etcd-faults" / "c.tls"));
  EXPECT_FALSE(std::filesystem::exists(records / "c.etcd-faults_framework_id"));

  ASSERT_NO_FATAL_FAILURE(StartScheduler());
  ASSERT_NO_FATAL_FAILURE(FetchOperatorCertificate());  // the new cluster has a CA of its own
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  EXPECT_NE(core().state().framework_id.value_or(framework_id), framework_id);
  EXPECT_EQ(core().state().counters.launched_servers, 3u);
  auto endpoints = ClientEndpoints();
  ASSERT_FALSE(endpoints.empty());
  etcd::Client client(io_, endpoints.front(), EtcdOptions());
  std::optional<Result<etcd::RangeResponse>> got;
  client.Get(old_key, /*serializable=*/false, [&](Result<etcd::RangeResponse> r) { got = r; });
  ASSERT_TRUE(RunUntil([&] { return got.has_value(); }, 10));
  ASSERT_TRUE(got->ok()) << got->error();
  EXPECT_EQ((*got)->count, 0u) << "the torn-down cluster's data is back";
}

// Guide: "Certificates: renewal and rotating the CA", under the workloads: the CA is replaced by
// three rollouts of every member, the operator's clients given the new trust after the first
// and a certificate of the new CA after the second. No acknowledged write is lost, the history
// stays linearizable, quorum is never lost, and afterwards a client of the old CA is refused.
TEST_F(FaultSuite, TheCaIsRotatedByTheGuideUnderTheWorkloadsAndTheOldCaIsRefusedAfter) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  auto old_client = tls_;
  const std::string ca_file = operator_env_.at("ETCDCTL_CACERT");
  auto certificates = [](const std::string& pem) {
    size_t n = 0;
    for (size_t at = pem.find("BEGIN CERTIFICATE"); at != std::string::npos;
         at = pem.find("BEGIN CERTIFICATE", at + 1)) {
      ++n;
    }
    return n;
  };
  ASSERT_EQ(certificates(ReadFile(ca_file)), 1u);
  // The operator's clients take what the guide's tls-client block fetched.
  auto reissue = [&] {
    ASSERT_NO_FATAL_FAILURE(FetchOperatorCertificate());
    workload_->SetTls(tls_);
    history_->SetTls(tls_);
  };
  auto t0 = Clock::now();
  auto asked = Guide("rotate-ca");
  EXPECT_NE(asked.second.find("202"), std::string::npos) << asked.second;
  const CaPhase waits[] = {CaPhase::kTrustBoth, CaPhase::kNewIssuer};
  for (CaPhase phase : waits) {
    std::vector<std::string> gone = RunRollout(Members(), 300);
    ASSERT_EQ(core().rollout().state, "done") << core().rollout().reason << core().rollout().step;
    ASSERT_EQ(core().state().ca.phase, phase);
    EXPECT_EQ(gone.size(), 3u) << CaPhaseName(phase) << ": every member replaced once";
    EXPECT_EQ(GuideJson("stats").value("ca_rotation", ""), CaPhaseName(phase));
    std::printf("[timing] CA rotation, %s: 3 members replaced after %.1fs\n",
                std::string(CaPhaseName(phase)).c_str(), Since(t0));
    ASSERT_NO_FATAL_FAILURE(reissue());
    EXPECT_EQ(certificates(ReadFile(ca_file)), 2u) << "/ca.crt holds both CAs";
    auto next = Guide("rotate-ca-next");
    EXPECT_NE(next.second.find("202"), std::string::npos) << next.second;
  }
  std::vector<std::string> gone = RunRollout(Members(), 300);
  ASSERT_EQ(core().rollout().state, "done") << core().rollout().reason << core().rollout().step;
  ASSERT_EQ(core().state().ca.phase, CaPhase::kNone);
  EXPECT_EQ(core().state().ca.generation, 1u);
  EXPECT_EQ(gone.size(), 3u);
  std::printf("[timing] CA rotation: 9 members replaced in %.1fs\n", Since(t0));
  EXPECT_TRUE(Noted("CA rotation done"));
  auto stats = GuideJson("stats");
  EXPECT_EQ(stats.value("ca_generation", -1), 1) << stats.dump();
  EXPECT_EQ(stats.value("ca_rotation", ""), "none") << stats.dump();
  EXPECT_EQ(core().state().counters.members_rolled, 9u);
  EXPECT_EQ(core().state().counters.cluster_livelocks, 0u) << "quorum was never lost";

  // A client of the old CA (its certificate and its trust) is refused by every member.
  ExpectEveryMemberRefuses(old_client);
  ASSERT_NO_FATAL_FAILURE(reissue());
  EXPECT_EQ(certificates(ReadFile(ca_file)), 1u) << "/ca.crt holds the new CA alone";
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// Guide: "Certificates: renewal and rotating the CA", renewal driven by time alone. The members
// got certificates valid for an hour; the scheduler, restarted to renew within 61 minutes of
// expiry and to issue for three hours, finds every member due and replaces each once, followers
// first and the leader last, under the workloads. Every member then serves (on the wire, as
// openssl sees it) a certificate valid for three hours.
TEST_F(FaultSuite, CertificatesDueForRenewalAreRenewedMemberByMemberUnderTheWorkloads) {
  ASSERT_NO_FATAL_FAILURE(
      StartAll({.extra_flags = {"--cert-lifetime=1h", "--cert-renew-before=20m"}}));
  std::vector<Member> before = Members();
  std::string leader = LeaderName();
  ASSERT_FALSE(leader.empty());
  int64_t now = std::time(nullptr);
  for (const HostPort& member : ClientEndpoints()) {
    int64_t expiry = ServedCertificateExpiry(member);
    EXPECT_GT(expiry, now + 50 * 60) << member.ToString();
    EXPECT_LE(expiry, now + 61 * 60) << member.ToString() << " serves more than an hour";
  }
  KillScheduler();
  flags_.shell.cert_lifetime = std::chrono::hours(3);
  flags_.core.cert_renew_before = std::chrono::minutes(61);
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(StartScheduler());
  std::vector<std::string> gone = RunRollout(before, 300);
  ASSERT_EQ(core().rollout().state, "done") << core().rollout().reason << core().rollout().step;
  std::printf("[timing] certificate renewal of 3 members -> 3 healthy voters: %.1fs\n", Since(t0));
  ASSERT_EQ(gone.size(), 3u);
  EXPECT_EQ(gone.back(), leader) << "the leader goes last";
  EXPECT_TRUE(Noted("with certificates renewed (some expire within 61m)"));
  EXPECT_TRUE(Noted("its certificates expire within 61m; replaced by a member with new ones"));
  EXPECT_EQ(core().state().counters.members_rolled, 3u);
  EXPECT_EQ(core().state().counters.cluster_livelocks, 0u) << "quorum was never lost";
  now = std::time(nullptr);
  for (const auto& [name, m] : core().state().members) {
    EXPECT_GT(m.cert_not_after, now + 2 * 3600) << name << " keeps its old certificates";
  }
  for (const HostPort& member : ClientEndpoints()) {
    EXPECT_GT(ServedCertificateExpiry(member), now + 2 * 3600) << member.ToString();
  }
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// Guide: "Certificates: renewal and rotating the CA", with the operator's own CA (--tls=files):
// the operator rotates it in three restarts of the scheduler, each rolled out before the next
// (old+new with the old key, new+old with the new key, new alone), under the workloads. A
// restart straight to the new CA is refused first, naming the steps, and touches nothing. No
// acknowledged write is lost, quorum is never lost, and afterwards a client of the old CA is
// refused by every member.
TEST_F(FaultSuite, TheOperatorsCaFilesAreRotatedInThreeRestartsUnderTheWorkloads) {
  auto now = std::chrono::system_clock::now();
  auto old_ca = tls::NewAuthority("operator CA 1", now - std::chrono::hours(1),
                                  now + std::chrono::hours(24 * 365));
  auto new_ca = tls::NewAuthority("operator CA 2", now - std::chrono::hours(1),
                                  now + std::chrono::hours(24 * 365));
  ASSERT_TRUE(old_ca.ok() && new_ca.ok());
  std::filesystem::path old_cert = dir_.path() / "operator-ca-1.crt";
  std::filesystem::path old_key = dir_.path() / "operator-ca-1.key";
  std::ofstream(old_cert) << old_ca->certificate_pem;
  std::ofstream(old_key) << old_ca->key_pem;
  ASSERT_NO_FATAL_FAILURE(
      StartAll({.extra_flags = {"--tls=files", "--tls-ca-cert=" + old_cert.string(),
                                "--tls-ca-key=" + old_key.string()}}));
  auto old_client = tls_;
  auto restart_with = [&](const std::string& bundle, const std::string& key) {
    KillScheduler();
    flags_.shell.tls_ca_cert = bundle;
    flags_.shell.tls_ca_key = key;
    ASSERT_NO_FATAL_FAILURE(StartScheduler());
  };

  std::vector<Member> before = Members();
  std::optional<Error> fatal;
  on_fatal_ = [&](const Error& e) { fatal = e; };
  ASSERT_NO_FATAL_FAILURE(restart_with(new_ca->certificate_pem, new_ca->key_pem));
  ASSERT_TRUE(RunUntil([&] { return fatal.has_value(); }, 30)) << "a jump to the new CA started";
  EXPECT_NE(fatal->message.find("does not trust the CA that issued"), std::string::npos) << *fatal;
  EXPECT_NE(fatal->message.find("three restarts"), std::string::npos) << *fatal;
  on_fatal_ = [](const Error& e) { ADD_FAILURE() << "scheduler fatal: " << e; };

  auto t0 = Clock::now();
  const std::pair<std::string, std::string> steps[] = {
      {old_ca->certificate_pem + new_ca->certificate_pem, old_ca->key_pem},
      {new_ca->certificate_pem + old_ca->certificate_pem, new_ca->key_pem},
      {new_ca->certificate_pem, new_ca->key_pem}};
  uint64_t step = 0;
  for (const auto& [bundle, key] : steps) {
    SCOPED_TRACE(++step);
    ASSERT_NO_FATAL_FAILURE(restart_with(bundle, key));
    std::vector<std::string> gone = RunRollout(before, 300);
    before = Members();
    ASSERT_EQ(core().rollout().state, "done") << core().rollout().reason << core().rollout().step;
    EXPECT_EQ(gone.size(), 3u) << "every member replaced once";
    EXPECT_EQ(core().state().ca_files.changes, step);
    std::printf("[timing] operator CA files, step %d: 3 members replaced after %.1fs\n",
                static_cast<int>(step), Since(t0));
    // The operator's clients take the trust and a certificate of the new issuer, as the guide's
    // tls-client block fetches them.
    ASSERT_NO_FATAL_FAILURE(FetchOperatorCertificate());
    workload_->SetTls(tls_);
    history_->SetTls(tls_);
  }
  EXPECT_TRUE(Noted("the CA files changed"));
  EXPECT_EQ(core().state().counters.cluster_livelocks, 0u) << "quorum was never lost";
  ExpectEveryMemberRefuses(old_client);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// A scheduler restarted with a changed etcd flag and more memory rolls both out member by
// member: every member afterwards runs etcd with the new flag in a task with the new memory.
TEST_F(FaultSuite, AChangedEtcdFlagAndMemoryAreRolledOutMemberByMember) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  std::vector<Member> before = Members();
  std::string leader = LeaderName();
  KillScheduler();
  flags_.shell.upkeep.quota_backend_bytes = int64_t{3} << 30;
  flags_.core.task_mem = 160;
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(StartScheduler());
  std::vector<std::string> gone = RunRollout(before, 300);
  ASSERT_EQ(core().rollout().state, "done") << core().rollout().reason << core().rollout().step;
  std::printf("[timing] flag and memory change rolled out to 3 members: %.1fs\n", Since(t0));
  ASSERT_EQ(gone.size(), 3u);
  EXPECT_EQ(gone.back(), leader) << "the leader goes last";
  auto etcds = Shell("ps -eo args | grep -c '^[^ ]*etcd .*--quota-backend-bytes=3221225472'");
  EXPECT_EQ(etcds.second, "3\n") << "every etcd runs with the new flag";
  nlohmann::json state = cluster_->master().StateJson();
  int with_new_memory = 0;
  for (const auto& f : state["frameworks"]) {
    for (const auto& t : f["tasks"]) {
      if (t.value("state", "") != "TASK_RUNNING") continue;
      with_new_memory += t["resources"].value("mem", 0.0) == 160;  // as Mesos's state.json
    }
  }
  EXPECT_EQ(with_new_memory, 3) << state["frameworks"].dump();
  EXPECT_EQ(core().state().counters.cluster_livelocks, 0u);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// An etcd binary two minor versions ahead is refused with the reason: the rollout stops before
// it touches anything, the guide's resume says why, and no member is replaced.
TEST_F(FaultSuite, AnUpgradeThatSkipsAMinorVersionIsRefusedAndTouchesNothing) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  std::vector<Member> before = Members();
  std::filesystem::path fake = dir_.path() / "etcd-3.6";
  std::ofstream(fake) << "#!/bin/sh\n"
                         "if [ \"$1\" = --version ]; then echo 'etcd Version: 3.6.0'; exit 0; fi\n"
                         "exec /usr/bin/etcd \"$@\"\n";
  std::filesystem::permissions(fake, std::filesystem::perms::owner_all);
  KillScheduler();
  flags_.shell.etcd_bin = fake.string();
  ASSERT_NO_FATAL_FAILURE(StartScheduler());
  ASSERT_TRUE(RunUntil([&] { return core().rollout().state == "stopped"; }, 60))
      << core().rollout().state << " " << core().rollout().reason;
  auto rollout = GuideJson("rollout");
  EXPECT_NE(rollout.value("reason", "").find("one minor version at a time"), std::string::npos)
      << rollout.dump();
  auto resume = Guide("rollout-resume");
  EXPECT_NE(resume.second.find("409"), std::string::npos) << resume.second;
  EXPECT_NE(resume.second.find("3.6.0"), std::string::npos) << resume.second;
  RunFor(seconds(5));
  for (const auto& m : before) {
    ASSERT_EQ(core().state().members.count(m.name), 1u) << m.name << " was replaced";
    EXPECT_EQ(core().state().members.at(m.name).task_id, m.task_id);
  }
  EXPECT_EQ(core().state().counters.members_removed, 0u);
  EXPECT_EQ(GuideJson("stats").value("rollout_state", ""), "stopped");
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// Guide: "Disk full (NOSPACE)": writes fill the backend quota until etcd raises NOSPACE and
// refuses them; the scheduler compacts, defragments every member and disarms the alarm by
// itself, writes succeed again, and POST /defrag by the guide defragments every member again.
TEST_F(FaultSuite, ANoSpaceAlarmIsClearedByTheSchedulerAndWritesSucceedAgain) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.extra_flags = {"--quota-backend-bytes=16777216"}}));
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(FillTheQuota());
  ASSERT_TRUE(RunUntil([&] { return core().maintenance().nospace_alarms >= 1; }, 30));
  std::printf("[timing] quota filled -> NOSPACE seen: %.1fs\n", Since(t0));
  t0 = Clock::now();
  ASSERT_TRUE(RunUntil(
      [&] { return core().maintenance().nospace_cleared >= 1 && !core().maintenance().nospace; },
      120))
      << core().maintenance().last_error;
  std::printf("[timing] NOSPACE seen -> disarmed: %.1fs\n", Since(t0));
  auto alarms = Guide("alarm-list");
  EXPECT_EQ(alarms.first, 0) << alarms.second;
  EXPECT_EQ(alarms.second.find("NOSPACE"), std::string::npos) << alarms.second;
  auto put =
      Shell("ETCDCTL_API=3 etcdctl --endpoints=" + EndpointsLine() + " put /after-nospace written");
  EXPECT_EQ(put.first, 0) << put.second;
  auto stats = GuideJson("stats");
  EXPECT_EQ(stats.value("nospace_alarm", -1), 0) << stats.dump();
  EXPECT_EQ(stats.value("nospace_cleared", -1), 1) << stats.dump();
  EXPECT_GE(stats.value("members_defragmented", 0), 3) << stats.dump();
  EXPECT_EQ(stats.value("maintenance_failures", -1), 0) << stats.dump();
  EXPECT_EQ(core().state().counters.cluster_livelocks, 0u) << "no quorum was lost";
  EXPECT_EQ(core().state().counters.members_removed, 0u) << "no member was replaced";

  uint64_t before = core().maintenance().members_defragmented;
  auto defrag = Guide("defrag");
  EXPECT_NE(defrag.second.find("202"), std::string::npos) << defrag.second;
  ASSERT_TRUE(RunUntil([&] { return core().maintenance().members_defragmented >= before + 3; }, 60))
      << core().maintenance().last_error;
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// The guide's HashKV of every member at revision `rev`: member id (hex) -> hash.
std::map<std::string, uint64_t> HashesOf(const std::string& output) {
  std::map<std::string, uint64_t> out;
  auto parsed = nlohmann::json::parse(output, nullptr, false);
  if (!parsed.is_array()) return out;
  for (const auto& e : parsed) {
    const auto& kv = e.value("HashKV", nlohmann::json::object());
    uint64_t id = kv.value("header", nlohmann::json::object()).value("member_id", uint64_t{0});
    out[fmt::format("{:x}", id)] = kv.value("hash", uint64_t{0});
  }
  return out;
}

// Guide: "A member is corrupt": the stored copies of one value in one follower's database are
// changed behind its running etcd's back (etcd-mesos-local's corrupt fault, over its HTTP API).
// Its HashKV then differs from its peers' at the same revision; the scheduler's hash check finds
// it in the minority, removes it and replaces it with a learner from the majority; the cluster is
// healthy again with three members that agree, and no acknowledged write is lost.
TEST_F(FaultSuite, ACorruptMemberIsFoundByTheHashCheckAndReplaced) {
  // Hash checks start after the operator has looked: a check every 3 s from the start could
  // find and replace the victim before the guide's hashkv runs (it did, with TLS's slower
  // etcdctl), and the operator's view would then be of a cluster being healed.
  ASSERT_NO_FATAL_FAILURE(StartAll({.extra_flags = {"--hash-check-interval=0"}}));
  const std::string value(64, 'Z');
  auto put = Shell("ETCDCTL_API=3 etcdctl --endpoints=" + EndpointsLine() + " put /corrupt-me " +
                   value + " -w json");
  ASSERT_EQ(put.first, 0) << put.second;
  uint64_t rev = nlohmann::json::parse(put.second, nullptr, false)
                     .value("header", nlohmann::json::object())
                     .value("revision", uint64_t{0});
  ASSERT_GT(rev, 0u) << put.second;
  std::string victim;
  ASSERT_TRUE(RunUntil(
      [&] {
        uint64_t leader = CountLeaderVotes(core().state().members).leader;
        for (const auto& [name, m] : core().state().members) {
          if (m.member_id != leader && m.revision >= rev) victim = name;
        }
        return !victim.empty();
      },
      10));
  uint64_t victim_id = core().state().members.at(victim).member_id;
  RunFor(milliseconds(500));  // etcd commits its backend every 100 ms
  std::string executor = ExecutorOf(victim);
  std::string encoded;
  for (char c : executor) {
    encoded +=
        std::isalnum(static_cast<unsigned char>(c)) ? std::string(1, c) : fmt::format("%{:02X}", c);
  }
  auto corrupt =
      Shell(fmt::format("curl -s -XPOST 'http://{}/faults/executors/{}/corrupt?value={}'",
                        master_.ToString(), encoded, value));
  ASSERT_NE(corrupt.second.find("\"ok\":true"), std::string::npos) << corrupt.second;
  auto t0 = Clock::now();
  // The operator's view: at the revision of the write, the victim's hash is not its peers'.
  auto hashes = HashesOf(Guide("hashkv", fmt::format("REV={}", rev)).second);
  ASSERT_EQ(hashes.size(), 3u);
  std::string victim_hex = fmt::format("{:x}", victim_id);
  ASSERT_EQ(hashes.count(victim_hex), 1u);
  std::set<uint64_t> peers;
  for (const auto& [id, hash] : hashes) {
    if (id != victim_hex) peers.insert(hash);
  }
  EXPECT_EQ(peers.size(), 1u) << "the two others agree";
  EXPECT_EQ(peers.count(hashes[victim_hex]), 0u) << "the corrupted " << victim << " differs";
  KillScheduler();
  flags_.core.hash_check_interval = seconds(3);
  ASSERT_NO_FATAL_FAILURE(StartScheduler());
  ASSERT_TRUE(RunUntil([&] { return core().hash_checks().members_corrupt >= 1; }, 60))
      << core().hash_checks().last_result;
  std::printf(
      "[timing] data corrupted -> found by the hash check (of a scheduler restarted with "
      "checks every 3 s): %.1fs\n",
      Since(t0));
  EXPECT_EQ(core().hash_checks().last_result, "corrupt: " + victim);
  auto t1 = Clock::now();
  ASSERT_TRUE(RunUntil([&] { return core().state().members.count(victim) == 0; }, 30));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  std::printf("[timing] found -> replaced, 3 healthy voters: %.1fs (corrupted -> healthy: %.1fs)\n",
              Since(t1), Since(t0));
  auto stats = GuideJson("stats");
  EXPECT_EQ(stats.value("members_corrupt", -1), 1) << stats.dump();
  EXPECT_GE(stats.value("hash_mismatches", 0), 1) << stats.dump();
  EXPECT_EQ(stats.value("corrupt_alarm", -1), 0) << stats.dump();
  EXPECT_EQ(stats.value("members_removed", 0), 1) << stats.dump();
  EXPECT_EQ(core().state().counters.cluster_reseeds, 0u);
  // The replacement has the majority's data: every member agrees at a revision all have applied.
  uint64_t common = std::numeric_limits<uint64_t>::max();
  for (const auto& [name, m] : core().state().members) common = std::min(common, m.revision);
  auto after = HashesOf(Guide("hashkv", fmt::format("REV={}", common)).second);
  ASSERT_EQ(after.size(), 3u);
  EXPECT_EQ(after.count(victim_hex), 0u);
  std::set<uint64_t> distinct;
  for (const auto& [id, hash] : after) distinct.insert(hash);
  EXPECT_EQ(distinct.size(), 1u) << "the members disagree after the replacement";
  uint64_t checks = core().hash_checks().checks;
  ASSERT_TRUE(RunUntil([&] { return core().hash_checks().checks > checks; }, 15));
  EXPECT_EQ(core().hash_checks().members_corrupt, 1u) << core().hash_checks().last_result;
  auto alarms = Guide("alarm-list");
  EXPECT_EQ(alarms.first, 0) << alarms.second;
  EXPECT_EQ(alarms.second.find("CORRUPT"), std::string::npos) << alarms.second;
  auto got = Shell("ETCDCTL_API=3 etcdctl --endpoints=" + EndpointsLine() +
                   " get /corrupt-me --print-value-only");
  EXPECT_EQ(got.second, value + "\n");
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// Guide: "A member dies (kill -9 ...)": nothing to do; it is replaced.
TEST_F(FaultSuite, KillNineOfOneMember) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  std::string victim = Members().front().name;
  Watcher watcher = StartWatcher();
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(KillAndHeal(victim));
  std::printf("[timing] kill -9 of one member -> 3 healthy voters: %.1fs\n", Since(t0));
  auto stats = GuideJson("stats");
  EXPECT_GE(stats.value("failed_servers", 0), 1) << stats.dump();
  EXPECT_EQ(stats.value("members_removed", 0), 1) << stats.dump();
  EXPECT_EQ(stats.value("members_promoted", 0), 1) << stats.dump();
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
  ExpectWatcherSawEveryRevision(watcher);
}

// A member dies in the middle of a write burst (writers with no pause between writes, beside the
// linearizable clients): the heal's membership changes go through under load, and no
// acknowledged write is lost or reordered.
TEST_F(FaultSuite, HealDuringAWriteBurst) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  std::vector<std::unique_ptr<test::Workload>> burst;
  for (int i = 0; i < 3; ++i) {
    burst.push_back(std::make_unique<test::Workload>(
        io_, [this] { return ClientEndpoints(); },
        test::Workload::Options{
            .prefix = fmt::format("/burst{}", i), .pause = milliseconds(0), .tls = tls_}));
    burst.back()->Start();
  }
  RunFor(seconds(2));
  std::string victim = Members().back().name;
  std::vector<size_t> at_kill;
  for (auto& w : burst) at_kill.push_back(w->acknowledged().size());
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(KillAndHeal(victim));
  std::printf("[timing] kill -9 during a write burst -> 3 healthy voters: %.1fs\n", Since(t0));
  // The burst ran up to the kill and went on through the heal (how fast depends on the machine:
  // a sanitizer build under load acknowledges about ten writes a second per writer).
  for (size_t i = 0; i < burst.size(); ++i) {
    EXPECT_GT(at_kill[i], 0u) << burst[i]->prefix() << ": no write acknowledged before the kill";
    EXPECT_GT(burst[i]->acknowledged().size(), at_kill[i])
        << burst[i]->prefix() << ": no write acknowledged during the heal";
  }
  for (auto& w : burst) w->Stop();
  RunFor(milliseconds(2500));  // the writes in flight are answered or time out
  for (auto& w : burst) {
    auto held = test::ReadSequences(EndpointsLine(), w->prefix());
    ASSERT_TRUE(held.ok()) << held.error();
    auto report = test::CheckWorkload(w->acknowledged(), w->prefix(), *held);
    std::printf("[burst] %s: %s\n", w->prefix().c_str(), report.ToString().c_str());
    EXPECT_TRUE(report.ok()) << report.ToString();
  }
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// Every member replaced in turn, followers first and the leader last, each heal finished before
// the next death (what a rolling restart or upgrade does to membership): no acknowledged write
// lost, the history linearizable. (No watcher: every address it was given is gone by the end.)
TEST_F(FaultSuite, EveryMemberReplacedInTurnLeaderLast) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  uint64_t leader = CountLeaderVotes(core().state().members).leader;
  std::vector<std::string> order;
  for (const auto& m : Members()) {
    if (m.member_id != leader) order.push_back(m.name);
  }
  for (const auto& m : Members()) {
    if (m.member_id == leader) order.push_back(m.name);
  }
  ASSERT_EQ(order.size(), 3u);
  auto t0 = Clock::now();
  for (const auto& victim : order) {
    ASSERT_NO_FATAL_FAILURE(KillAndHeal(victim));
  }
  std::printf("[timing] three members replaced in turn, leader last -> 3 healthy voters: %.1fs\n",
              Since(t0));
  for (const auto& m : Members()) {
    EXPECT_EQ(std::count(order.begin(), order.end(), m.name), 0) << m.name << " was not replaced";
  }
  EXPECT_EQ(GuideJson("stats").value("members_promoted", 0), 3);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// An idle healthy cluster sends no status update: on real Mesos each member sent TASK_RUNNING
// every 10 s for ever (the raft index always moves), each one checkpointed by the agent and
// acknowledged through the master. Updates carry changes of state and health only.
TEST_F(FaultSuite, AnIdleHealthyClusterSendsNoStatusUpdateForAMinute) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  workload_->Stop();
  history_->Stop();
  RunFor(seconds(3));  // the bootstrap's last updates are delivered
  const double since =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  RunFor(seconds(60));
  auto state = cluster_->master().StateJson();
  ASSERT_EQ(state["frameworks"].size(), 1u);
  size_t tasks = 0, sent = 0;
  for (const auto& task : state["frameworks"][0]["tasks"]) {
    if (task["state"] != "TASK_RUNNING") continue;
    ++tasks;
    for (const auto& status : task["statuses"]) {
      if (status["timestamp"].get<double>() < since) continue;
      ++sent;
      ADD_FAILURE() << task["id"] << " sent " << status.dump() << " while nothing changed";
    }
  }
  EXPECT_EQ(tasks, 3u);
  EXPECT_EQ(sent, 0u);
  EXPECT_TRUE(AtSize(3)) << core().health_reason();
}

// A framework torn down by an operator (the command in docs/administration.md): every executor
// gets SHUTDOWN, stops etcd with SIGTERM and exits within the shutdown grace the scheduler asked
// for. With the agent's 5 s default, etcd's leader, stopped together with its followers, was
// SIGKILLed (it waits up to 7 s for a leadership transfer), and each executor then waited 5 s
// for an acknowledgement the agent never sends (real Mesos 1.11).
TEST_F(FaultSuite, ATeardownStopsEveryEtcdWithSigtermWithinTheShutdownGrace) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  const std::string framework_id = core().state().framework_id.value_or("");
  ASSERT_FALSE(framework_id.empty());
  // The master ends a removed framework's subscription, which stops a scheduler for good.
  KillScheduler();
  ASSERT_FALSE(cluster_->ProcessIds().empty());
  auto t0 = Clock::now();
  auto [code, out] = Shell("curl -sS -f -XPOST http://" + master_.ToString() +
                           "/master/teardown -d frameworkId=" + framework_id);
  ASSERT_EQ(code, 0) << out;
  ASSERT_TRUE(RunUntil([&] { return cluster_->ProcessIds().empty(); }, 60))
      << cluster_->ProcessIds().size() << " processes left";
  double took = Since(t0);
  std::printf("[timing] teardown -> every executor and etcd gone: %.1fs\n", took);
  EXPECT_LT(took, std::chrono::duration<double>(flags_.shell.executor_shutdown_grace).count())
      << "within the shutdown grace: the agent had to kill";
  int members = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_.path() / "mesos")) {
    if (entry.path().filename() != "etcd.log") continue;
    ++members;
    std::string etcd_log = ReadFile(entry.path());
    std::string executor_log = ReadFile(entry.path().parent_path() / "stderr");
    EXPECT_NE(etcd_log.find(R"("msg":"received signal; shutting down","signal":"terminated")"),
              std::string::npos)
        << entry.path() << ": etcd says it was not stopped by SIGTERM:\n"
        << etcd_log;
    EXPECT_NE(executor_log.find("after SIGTERM"), std::string::npos) << executor_log;
    EXPECT_EQ(executor_log.find("SIGKILL"), std::string::npos) << executor_log;
    // And it ran with etcd's upkeep on, the defaults of --auto-compaction-*, --quota-backend-bytes
    // and the corruption checks, as etcd's own log of its configuration says.
    for (const char* setting :
         {R"("auto-compaction-mode":"periodic")", R"("auto-compaction-retention":"1h0m0s")",
          R"("quota-backend-bytes":2147483648)", R"("initial-corrupt-check":true)",
          R"("corrupt-check-time-interval":"10m0s")"}) {
      EXPECT_NE(etcd_log.find(setting), std::string::npos) << entry.path() << ": no " << setting;
    }
    EXPECT_NE(executor_log.find("executor done after SHUTDOWN"), std::string::npos) << executor_log;
  }
  EXPECT_EQ(members, 3);
}

// The same for the etcd leader, a third of real deaths: the survivors elect a leader first, and
// the removal goes to it once it has settled (no change is lost to the election).
TEST_F(FaultSuite, KillNineOfTheLeader) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  std::string victim;
  ASSERT_TRUE(RunUntil(
      [&] {
        uint64_t leader = CountLeaderVotes(core().state().members).leader;
        for (const auto& m : Members()) {
          if (leader != 0 && m.member_id == leader) victim = m.name;
        }
        return !victim.empty();
      },
      30));
  Watcher watcher = StartWatcher();
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(KillAndHeal(victim));
  std::printf("[timing] kill -9 of the leader -> 3 healthy voters: %.1fs\n", Since(t0));
  uint64_t leader = CountLeaderVotes(core().state().members).leader;
  for (const auto& m : Members()) EXPECT_NE(m.name, victim);
  EXPECT_NE(leader, 0u) << "the healed cluster agrees on a leader";
  auto stats = GuideJson("stats");
  EXPECT_EQ(stats.value("members_removed", 0), 1) << stats.dump();
  EXPECT_EQ(stats.value("members_promoted", 0), 1) << stats.dump();
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
  ExpectWatcherSawEveryRevision(watcher);
}

// Guide: a host is lost with everything on it; the member moves to another agent.
TEST_F(FaultSuite, AStoppedAgentWithZooKeeperState) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.store = Store::kZooKeeper}));
  Member victim = Members().front();
  int agent = AgentOf(victim);
  ASSERT_GT(agent, 0);
  auto t0 = Clock::now();
  ASSERT_TRUE(cluster_->StopAgent(agent).ok());
  ASSERT_TRUE(RunUntil([&] { return core().state().members.count(victim.name) == 0; }, 60));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  std::printf("[timing] agent stopped -> 3 healthy voters: %.1fs\n", Since(t0));
  for (const auto& m : Members()) EXPECT_NE(m.agent_id, victim.agent_id);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// A member is lost while no scheduler runs; the scheduler returns (state from ZooKeeper) and
// heals it.
TEST_F(FaultSuite, MinorityLossWhileTheSchedulerIsDown) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.store = Store::kZooKeeper}));
  std::string victim = Members().back().name;
  KillScheduler();
  RunFor(milliseconds(500));
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(KillMember(victim));
  size_t at_kill = workload_->acknowledged().size();
  RunFor(seconds(3));
  // Two of three members still take writes with no scheduler running.
  ASSERT_GT(workload_->acknowledged().size(), at_kill);
  ASSERT_NO_FATAL_FAILURE(StartScheduler());
  ASSERT_TRUE(RunUntil([&] { return core().state().members.count(victim) == 0; }, 60))
      << core().health_reason();
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  std::printf("[timing] minority lost while the scheduler was down -> healed: %.1fs\n", Since(t0));
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// Guide: "Etcd livelock (a majority lost)": with auto-reseed, the survivor with the highest raft
// index is reseeded after the timeout, keeping its data.
TEST_F(FaultSuite, MajorityLossIsReseededAfterTheTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.reseed_timeout = seconds(8)}));
  auto members = Members();
  // The executors' reseed listeners speak HTTPS and want a client certificate of the members' CA:
  // the token never crosses the network in the clear. (The scheduler's reseed below goes there.)
  auto ask = [&](std::shared_ptr<const net::TlsClientConfig> tls, const std::string& token) {
    net::HttpRequest request{net::Verb::post, {members[2].host, members[2].reseed_port}, "/reseed"};
    request.headers.emplace_back("Authorization", "Bearer " + token);
    request.tls = std::move(tls);
    request.timeout = seconds(5);
    std::optional<Result<net::HttpResponse>> got;
    net::HttpFetch(io_, request, [&](Result<net::HttpResponse> r) { got = std::move(r); });
    RunUntil([&] { return got.has_value(); }, 10);
    return got.value_or(MakeError(ErrorCode::kUnavailable, "no answer"));
  };
  auto plain = ask(nullptr, core().state().reseed_token);
  EXPECT_FALSE(plain.ok()) << "plain http answered " << plain->status;
  auto no_cert = net::TlsClientConfig::Create(ReadFile(operator_env_.at("ETCDCTL_CACERT")));
  ASSERT_TRUE(no_cert.ok());
  auto anonymous = ask(*no_cert, "wrong-token");
  EXPECT_FALSE(anonymous.ok() && anonymous->status != 0) << "a client without a certificate";
  auto wrong = ask(tls_, "wrong-token");
  ASSERT_TRUE(wrong.ok()) << wrong.error();
  EXPECT_EQ(wrong->status, 401u) << wrong->body;
  ASSERT_NO_FATAL_FAILURE(KillMember(members[0].name));
  ASSERT_NO_FATAL_FAILURE(KillMember(members[1].name));
  auto t0 = Clock::now();
  ASSERT_TRUE(RunUntil([&] { return core().livelocked(); }, 30)) << core().health_reason();
  auto stats = GuideJson("stats");
  EXPECT_EQ(stats.value("healthy", -1), 0) << stats.dump();
  EXPECT_EQ(stats.value("livelocked", -1), 1) << stats.dump();
  EXPECT_EQ(stats.value("cluster_livelocks", -1), 1) << stats.dump();
  // What the survivor holds, read from it alone before it is reseeded.
  auto held = Read(members[2].ClientUrl(), /*serializable=*/true);
  ASSERT_TRUE(held.ok()) << held.error();
  std::set<uint64_t> survivor_had = test::Sequences(workload_->prefix(), *held);
  HistorySplit split = SplitAtSurvivor(members[2]);
  etcd::Client survivor(io_, HostPort{members[2].host, members[2].client_port}, EtcdOptions());
  auto survivor_status =
      etcd::Await<etcd::StatusResponse>(io_, [&](auto cb) { survivor.Status(cb); });
  ASSERT_TRUE(survivor_status.ok()) << survivor_status.error();
  ASSERT_TRUE(RunUntil([&] { return core().state().counters.cluster_reseeds >= 1; }, 60))
      << core().health_reason();
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 150)) << core().health_reason();
  std::printf("[timing] majority lost -> reseeded (timeout 8s) -> 3 healthy voters: %.1fs\n",
              Since(t0));
  EXPECT_EQ(core().state().members.count(members[2].name), 1u) << "the survivor is the seed";
  ExpectGuideSeesHealthyCluster(3);
  auto report = CheckData(survivor_had, split);
  std::printf(
      "[reseed] %zu acknowledged writes lost to the reseed (the survivor never had "
      "them), %zu lost that it had\n",
      report.lost_to_reseed.size(), report.lost.size());
  // The guide's stats name the revision the survivor kept: the one it answered with alone.
  auto after = GuideJson("stats");
  uint64_t kept = after.value("last_reseed_survivor_revision", uint64_t{0});
  uint64_t highest = after.value("last_reseed_highest_revision", uint64_t{0});
  EXPECT_EQ(kept, survivor_status->header.revision) << after.dump();
  EXPECT_GE(highest, kept) << after.dump();
  EXPECT_EQ(after.value("last_reseed_revisions_lost", uint64_t{99}), highest - kept);
  std::printf("[reseed] the survivor kept revision %lu; the highest any member reported: %lu\n",
              static_cast<unsigned long>(kept), static_cast<unsigned long>(highest));
}

// Guide: with --auto-reseed=false nothing happens until the operator POSTs /reseed.
TEST_F(FaultSuite, WithoutAutoReseedTheOperatorReseedsByTheGuide) {
  ASSERT_NO_FATAL_FAILURE(
      StartAll({.reseed_timeout = seconds(2), .extra_flags = {"--auto-reseed=false"}}));
  auto members = Members();
  ASSERT_NO_FATAL_FAILURE(KillMember(members[0].name));
  ASSERT_NO_FATAL_FAILURE(KillMember(members[1].name));
  ASSERT_TRUE(RunUntil([&] { return core().livelocked(); }, 30));
  RunFor(seconds(6));  // three reseed timeouts
  EXPECT_EQ(core().state().counters.cluster_reseeds, 0u);
  auto held = Read(members[2].ClientUrl(), /*serializable=*/true);
  ASSERT_TRUE(held.ok()) << held.error();
  HistorySplit split = SplitAtSurvivor(members[2]);
  auto t0 = Clock::now();
  auto reseed = Guide("reseed-get");  // the seed guide's GET
  EXPECT_EQ(reseed.first, 0) << reseed.second;
  EXPECT_NE(reseed.second.find("202"), std::string::npos) << reseed.second;
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 150)) << core().health_reason();
  std::printf("[timing] manual /reseed -> 3 healthy voters: %.1fs\n", Since(t0));
  // A second reseed of the healthy cluster is refused with the reason, as the guide says.
  auto again = Guide("reseed");
  EXPECT_NE(again.second.find("409"), std::string::npos) << again.second;
  ExpectGuideSeesHealthyCluster(3);
  CheckData(test::Sequences(workload_->prefix(), *held), split);
}

// Guide: "Total cluster loss": no empty cluster is started by itself; the operator decides.
TEST_F(FaultSuite, TotalLossWaitsForTheOperator) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  for (const auto& m : Members()) ASSERT_NO_FATAL_FAILURE(KillMember(m.name));
  ASSERT_TRUE(RunUntil([&] { return core().total_loss(); }, 60)) << core().health_reason();
  workload_->Stop();  // its writes would land in the fresh cluster
  RunFor(seconds(3));
  auto stats = GuideJson("stats");
  EXPECT_EQ(stats.value("total_loss", -1), 1) << stats.dump();
  EXPECT_EQ(stats.value("healthy", -1), 0) << stats.dump();
  EXPECT_EQ(stats.value("running_servers", -1), 0) << "nothing was started by itself";
  auto healthz = Guide("healthz");
  EXPECT_NE(healthz.second.find("500"), std::string::npos) << healthz.second;
  auto t0 = Clock::now();
  auto fresh = Guide("start-fresh");
  EXPECT_NE(fresh.second.find("202"), std::string::npos) << fresh.second;
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 150)) << core().health_reason();
  std::printf("[timing] start-fresh after total loss -> 3 healthy voters: %.1fs\n", Since(t0));
  ExpectGuideSeesHealthyCluster(3);
  auto read = Read(EndpointsLine(), /*serializable=*/false);
  ASSERT_TRUE(read.ok()) << read.error();
  EXPECT_TRUE(read->empty()) << "start-fresh is an empty cluster, as the guide says";
}

// Guide: "Restore after total cluster loss": a backup taken by the guide's command, every member
// lost, the restore asked for by the guide's command; every write acknowledged before the
// backup is back (the workload stops first, so the snapshot holds all of them).
TEST_F(FaultSuite, TotalLossIsRestoredFromABackupByTheGuide) {
  ASSERT_NO_FATAL_FAILURE(
      StartAll({.extra_flags = {"--backup-dir=" + (dir_.path() / "backups").string()}}));
  workload_->Stop();
  history_->Stop();    // the backup holds all of it: the final reads after the restore must agree
  RunFor(seconds(2));  // the last write answered and applied on every member
  // A periodic backup may be taken at start, before any write: the one to restore is the one
  // asked for now, the highest revision (every write is in it), once it is listed and verified.
  ASSERT_TRUE(RunUntil([&] { return !core().backups().running; }, 60));
  auto now = Guide("backup-now");
  EXPECT_NE(now.second.find("202"), std::string::npos) << now.second;
  std::string snapshot;
  ASSERT_TRUE(RunUntil(
      [&] {
        if (core().backups().running || !core().backups().last) return false;
        auto list = nlohmann::json::parse(Guide("backups").second, nullptr, false);
        if (!list.is_array() || list.empty()) return false;
        const nlohmann::json* newest = &list[0];
        for (const auto& b : list) {
          if (b.value("revision", uint64_t{0}) > newest->value("revision", uint64_t{0})) {
            newest = &b;
          }
        }
        if (!newest->value("verified", false) ||
            newest->value("revision", uint64_t{0}) < core().backups().last->revision) {
          return false;
        }
        snapshot = newest->value("name", "");
        return true;
      },
      60))
      << "no new verified backup listed";
  for (const auto& m : Members()) ASSERT_NO_FATAL_FAILURE(KillMember(m.name));
  ASSERT_TRUE(RunUntil([&] { return core().total_loss(); }, 60)) << core().health_reason();
  EXPECT_EQ(GuideJson("stats").value("total_loss", -1), 1);
  auto t0 = Clock::now();
  auto restore = Guide("restore", "SNAPSHOT=" + snapshot);
  EXPECT_NE(restore.second.find("202"), std::string::npos) << restore.second;
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 180)) << core().health_reason();
  std::printf("[timing] restore after total loss -> 3 healthy voters: %.1fs\n", Since(t0));
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// Guide: "The scheduler restarts or fails over": members keep running, state from ZooKeeper.
TEST_F(FaultSuite, SchedulerFailoverWithStateInZooKeeper) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.store = Store::kZooKeeper}));
  auto before = core().state().members;
  KillScheduler();
  size_t acked_before = workload_->acknowledged().size();
  RunFor(seconds(3));
  EXPECT_GT(workload_->acknowledged().size(), acked_before) << "etcd serves without a scheduler";
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(StartScheduler());
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 60)) << core().health_reason();
  std::printf("[timing] scheduler restarted -> reconciled and healthy: %.1fs\n", Since(t0));
  RunFor(seconds(3));
  for (const auto& [name, m] : before) {
    ASSERT_EQ(core().state().members.count(name), 1u) << name << " was replaced";
    EXPECT_EQ(core().state().members.at(name).task_id, m.task_id);
  }
  EXPECT_EQ(core().state().counters.members_removed, 0u);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// ZooKeeper goes away and comes back: a member lost meanwhile is replaced once the store can
// record it (write-ahead), and the new state is what a restarted scheduler reads.
TEST_F(FaultSuite, ZooKeeperRestartedWhileAMemberIsLost) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.store = Store::kZooKeeper}));
  zookeeper_->Stop();
  std::string victim = Members().front().name;
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(KillMember(victim));
  // Two thirds of the session timeout after it last heard ZooKeeper, the leader cannot know
  // whether another instance will lead: it holds every action, and says so.
  ASSERT_TRUE(RunUntil([&] { return scheduler_->holding(); }, 15)) << "the leader did not hold";
  EXPECT_EQ(GuideJson("stats").value("holding", -1), 1);
  uint64_t removed = core().state().counters.members_removed;
  RunFor(seconds(1));
  EXPECT_EQ(core().state().counters.members_removed, removed) << "a holding leader acted";
  ASSERT_TRUE(zookeeper_->Start().ok());
  ASSERT_TRUE(RunUntil([&] { return !scheduler_->holding(); }, 15))
      << "ZooKeeper is back within the session: the leader carries on";
  ASSERT_TRUE(RunUntil([&] { return core().state().members.count(victim) == 0; }, 60));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  std::printf("[timing] member lost while ZooKeeper was down -> healed: %.1fs\n", Since(t0));
  auto healed = core().state().members;
  RunFor(seconds(2));  // the last write reaches the store
  KillScheduler();
  ASSERT_NO_FATAL_FAILURE(StartScheduler());
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 60)) << core().health_reason();
  for (const auto& [name, m] : healed) {
    EXPECT_EQ(core().state().members.count(name), 1u) << name << " not in the stored state";
  }
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// The Mesos master restarts with no memory: the scheduler loses its stream and re-subscribes;
// until the agents re-register, reconciliation cannot vouch for the members' tasks (real Mesos
// 1.11 answered TASK_LOST for live tasks then). Nothing may be replaced, killed or reseeded.
TEST_F(FaultSuite, MesosMasterRestartedAndTheSchedulerReconnects) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  auto before = core().state().members;
  auto t0 = Clock::now();
  ASSERT_TRUE(cluster_->RestartMaster(seconds(6)).ok());
  ASSERT_TRUE(RunUntil([&] { return !core().connected(); }, 30)) << "the stream did not end";
  ASSERT_TRUE(RunUntil([&] { return core().connected(); }, 30)) << "no re-subscription";
  RunFor(seconds(8));  // the agents re-register meanwhile
  ASSERT_NO_FATAL_FAILURE(ExpectTheSameMembersAllRunning(before));
  std::printf("[timing] master restarted -> re-subscribed, agents back, all RUNNING: %.1fs\n",
              Since(t0));
}

// As on real Mesos 1.11 in ZooKeeper mode: the leading master is killed and restarted in place.
// Its old session keeps the leadership until ZooKeeper expires it, and the new master redirects
// SUBSCRIBE to its own address meanwhile; once elected it answers 503 while it recovers. The
// scheduler follows it as soon as it serves, and nothing is replaced, killed or reseeded.
TEST_F(FaultSuite, MesosMasterKilledInZooKeeperModeIsFollowedOnItsSuccessorsElection) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.master_in_zookeeper = true}));
  auto before = core().state().members;
  auto t0 = Clock::now();
  ASSERT_TRUE(cluster_->RestartMaster(seconds(3), seconds(4)).ok());
  ASSERT_TRUE(RunUntil([&] { return !core().connected(); }, 30)) << "the stream did not end";
  std::optional<Clock::time_point> served;
  ASSERT_TRUE(RunUntil(
      [&] {
        if (!served && cluster_->master().serving()) served = Clock::now();
        return core().connected();
      },
      30))
      << "no re-subscription";
  ASSERT_TRUE(served) << "subscribed before the new master was elected";
  std::printf("[timing] new master serving -> scheduler subscribed: %.0f ms\n",
              std::chrono::duration<double, std::milli>(Clock::now() - *served).count());
  RunFor(seconds(5));  // the agents re-register meanwhile
  ASSERT_NO_FATAL_FAILURE(ExpectTheSameMembersAllRunning(before));
  std::printf("[timing] master killed -> re-subscribed, agents back, all RUNNING: %.1fs\n",
              Since(t0));
}

// Scheduler high availability. A second instance with the same flags stands by: it shows the
// stored state as a standby's and sends commands to the leader. The leader stops (a redeploy, a
// SIGTERM: it withdraws from the election) and a member dies at the same moment: the standby
// leads, takes the framework over at the master with the same id, and heals the member. Nothing
// else is killed or replaced, and the master never has two subscriptions.
TEST_F(FaultSuite, AStandbySchedulerTakesOverAndHealsAMemberLostDuringTheFailover) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.store = Store::kZooKeeper}));
  ASSERT_TRUE(scheduler_->leading());
  auto standby = StartStandby();
  ASSERT_TRUE(standby);
  // Its views are the stored state, in which every member runs.
  EXPECT_TRUE(RunUntil(
      [&] { return HttpJson(standby->admin_address(), "/stats").value("running_servers", 0) == 3; },
      15))
      << HttpJson(standby->admin_address(), "/stats").dump();
  auto [code, redirect] = Shell(
      "curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -XPOST "
      "-H 'Authorization: Bearer s3cret-token' http://" +
      standby->admin_address().ToString() + "/reseed");
  EXPECT_EQ(redirect, fmt::format("307 http://{}:{}/reseed", flags_.shell.address, admin_.port));
  EXPECT_EQ(SubscribedFrameworks(), 1);
  auto before = core().state().members;
  std::string framework_id = core().state().framework_id.value_or("");
  uint64_t removed_before = core().state().counters.members_removed;
  std::string victim = Members().front().name;

  auto t0 = Clock::now();
  KillScheduler();
  ASSERT_NO_FATAL_FAILURE(KillMember(victim));
  scheduler_ = std::move(standby);
  admin_ = scheduler_->admin_address();
  int most_subscribed = 0;
  ASSERT_TRUE(RunUntil(
      [&] {
        most_subscribed = std::max(most_subscribed, SubscribedFrameworks());
        return scheduler_->leading() && core().connected();
      },
      30))
      << "the standby did not take over";
  std::printf("[timing] leader stopped -> standby leads and is subscribed: %.1fs\n", Since(t0));
  EXPECT_EQ(core().state().framework_id.value_or(""), framework_id) << "not a failover";
  ASSERT_TRUE(RunUntil([&] { return core().state().members.count(victim) == 0; }, 60));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  std::printf("[timing] leader stopped and a member killed -> healed by the new leader: %.1fs\n",
              Since(t0));
  EXPECT_LE(most_subscribed, 1) << "two schedulers subscribed at once";
  for (const auto& [name, m] : before) {
    if (name == victim) continue;
    ASSERT_EQ(core().state().members.count(name), 1u) << name << " was replaced";
    EXPECT_EQ(core().state().members.at(name).task_id, m.task_id) << name << " was relaunched";
  }
  EXPECT_EQ(core().state().counters.members_removed, removed_before + 1);
  EXPECT_EQ(GuideJson("stats").value("standby", -1), 0);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// The leader's election node is deleted by hand while its session lives: it no longer leads
// (and any write it still makes is fenced on that node), so it stops; the standby leads and
// nothing is replaced.
TEST_F(FaultSuite, ALeaderWhoseElectionNodeIsDeletedStopsAndTheStandbyLeads) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.store = Store::kZooKeeper}));
  auto standby = StartStandby();
  ASSERT_TRUE(standby);
  auto before = core().state().members;
  std::optional<Error> fatal;
  on_fatal_ = [&](const Error& e) { fatal = e; };
  auto store = store::OpenStateStore(io_, flags_.shell.store_spec);
  ASSERT_TRUE(store.ok()) << store.error();
  std::string line = "/" + flags_.core.framework_name + "/leader";
  std::optional<Result<std::vector<std::string>>> nodes;
  (*store)->List(line, [&](auto r) { nodes = std::move(r); });
  ASSERT_TRUE(RunUntil([&] { return nodes.has_value(); }, 10));
  ASSERT_TRUE(nodes->ok()) << nodes->error();
  ASSERT_EQ((*nodes)->size(), 2u);
  std::optional<Status> deleted;
  (*store)->Delete(line + "/" + (**nodes)[0], store::kAnyVersion,
                   [&](Status s) { deleted = std::move(s); });
  ASSERT_TRUE(RunUntil([&] { return deleted.has_value(); }, 10));
  ASSERT_TRUE(deleted->ok()) << deleted->error();
  ASSERT_TRUE(RunUntil([&] { return fatal.has_value(); }, 30)) << "the old leader went on";
  // It stops on the election's word, before the standby's subscription could fail it over.
  EXPECT_NE(fatal->message.find("lost the leadership"), std::string::npos) << *fatal;
  EXPECT_NE(fatal->message.find("its node is gone"), std::string::npos) << *fatal;
  ExpectTheStandbyTakesOverReplacingNothing(std::move(standby), before);
}

// The leader's ZooKeeper session expires (it was paused, or cut off from ZooKeeper for longer
// than the session timeout): it is told, stops acting at once, and the standby leads.
TEST_F(FaultSuite, ALeaderWhoseZooKeeperSessionExpiresStopsAndTheStandbyLeads) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.store = Store::kZooKeeper}));
  auto standby = StartStandby();
  ASSERT_TRUE(standby);
  auto before = core().state().members;
  std::optional<Error> fatal;
  on_fatal_ = [&](const Error& e) { fatal = e; };
  auto session = scheduler_->ElectionSessionForTesting();
  ASSERT_TRUE(session);
  ASSERT_TRUE(
      test::ExpireZooKeeperSession(zookeeper_->servers(), session->first, session->second).ok());
  ASSERT_TRUE(RunUntil([&] { return fatal.has_value(); }, 30)) << "the old leader went on";
  // Whichever comes first stops it: ZooKeeper telling it of the expiry, or the new leader's
  // SUBSCRIBE failing it over at the master.
  EXPECT_TRUE(fatal->message.find("lost the leadership") != std::string::npos ||
              fatal->message.find("Framework failed over") != std::string::npos)
      << *fatal;
  ExpectTheStandbyTakesOverReplacingNothing(std::move(standby), before);
}

// An agent is cut off from the master but its member keeps serving: nothing is replaced while
// it answers, and the cluster is whole again once the partition heals.
TEST_F(FaultSuite, APartitionedAgentHeals) {
  ASSERT_NO_FATAL_FAILURE(StartAll({}));
  Member cut = Members().front();
  int agent = AgentOf(cut);
  ASSERT_GT(agent, 0);
  ASSERT_TRUE(cluster_->PartitionAgent(agent).ok());
  ASSERT_TRUE(RunUntil(
      [&] {
        auto it = core().state().members.find(cut.name);
        return it != core().state().members.end() &&
               it->second.task_state == mesos::TASK_UNREACHABLE;
      },
      60));
  RunFor(seconds(6));  // past the dead-member grace: it still answers, so it stays
  EXPECT_EQ(core().state().members.count(cut.name), 1u);
  EXPECT_EQ(core().state().counters.members_removed, 0u);
  auto t0 = Clock::now();
  ASSERT_TRUE(cluster_->HealAgent(agent).ok());
  ASSERT_TRUE(RunUntil(
      [&] {
        return AtSize(3) && core().state().members.count(cut.name) &&
               core().state().members.at(cut.name).task_state == mesos::TASK_RUNNING;
      },
      60))
      << core().health_reason();
  std::printf("[timing] partition healed -> its task RUNNING again: %.1fs\n", Since(t0));
  EXPECT_EQ(core().state().counters.members_removed, 0u);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

// Random minority faults for a bounded time, then calm: the cluster must converge to its size
// with every acknowledged write.
TEST_F(FaultSuite, RandomMinorityFaultsThenConvergence) {
  ASSERT_NO_FATAL_FAILURE(StartAll({.agents = 6}));
  uint32_t seed = std::random_device{}();
  std::printf("[random] seed %u\n", seed);
  std::mt19937 rng(seed);
  std::set<int> stopped;
  auto chaos_end = Clock::now() + seconds(45);
  int faults = 0;
  while (Clock::now() < chaos_end) {
    // At most one fault outstanding, and only once the cluster is whole again: a minority.
    if (!RunUntil([&] { return AtSize(3); }, 120)) break;
    auto members = Members();
    const Member& m = members[rng() % members.size()];
    switch (rng() % 3) {
      case 0:
        std::printf("[random] kill -9 %s\n", m.name.c_str());
        ASSERT_NO_FATAL_FAILURE(KillMember(m.name));
        break;
      case 1: {
        int agent = AgentOf(m);
        if (agent == 0 || static_cast<int>(stopped.size()) >= 2) continue;
        std::printf("[random] stop agent %d (%s)\n", agent, m.name.c_str());
        ASSERT_TRUE(cluster_->StopAgent(agent).ok());
        stopped.insert(agent);
        break;
      }
      default: {
        int agent = AgentOf(m);
        if (agent == 0) continue;
        std::printf("[random] restart agent %d (%s), work dir kept\n", agent, m.name.c_str());
        ASSERT_TRUE(cluster_->RestartAgent(agent, /*wipe=*/false).ok());
        break;
      }
    }
    ++faults;
    RunFor(milliseconds(1500 + rng() % 3000));
  }
  auto t0 = Clock::now();
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 150)) << core().health_reason();
  std::printf("[timing] %d random faults, then calm -> 3 healthy voters: %.1fs\n", faults,
              Since(t0));
  EXPECT_GE(faults, 2);
  ExpectGuideSeesHealthyCluster(3);
  CheckData();
}

}  // namespace
}  // namespace etcd_mesos::scheduler
