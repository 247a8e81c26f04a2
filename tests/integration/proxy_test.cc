// etcd-mesos-proxy end to end: the built binary against the scheduler (shell + core) on
// etcd-mesos-local with the real executor and real etcd, and etcdctl as the client.
//   - A client that only knows the proxy's address keeps writing and reading while a member is
//     killed and replaced and across a reseed; the same proxy process follows both.
//   - /master/state carries each task's DiscoveryInfo (etcd-server and etcd-client ports), and
//     `--once --master` reads the members from it.
//   - Bad flags and unreachable sources end with a clear message and a non-zero exit.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zookeeper.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "mesos/json_codec.h"
#include "net/http.h"
#include "testing/local_system.h"
#include "testing/ports.h"
#include "testing/process.h"
#include "testing/tempdir.h"
#include "testing/zookeeper_server.h"

namespace etcd_mesos::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct CommandResult {
  int code = -1;
  std::string out;  // stdout and stderr
};

// Runs `command` through the shell; its stderr is captured too unless `stdout_only` (etcdctl
// logs its own retries on stderr, which is not the value read).
CommandResult RunCommand(const std::string& command, bool stdout_only = false) {
  CommandResult r;
  FILE* pipe = ::popen((command + (stdout_only ? " 2>/dev/null" : " 2>&1")).c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) r.out.append(buf, n);
  int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string Etcdctl(const std::string& endpoint, const std::string& args) {
  return "ETCDCTL_API=3 etcdctl --dial-timeout=2s --command-timeout=3s --endpoints=" + endpoint +
         " " + args;
}

// A client that knows only the proxy: puts /px/<n> and reads it back, over and over, from its
// own thread (the cluster and the scheduler run on the test's thread).
class Client {
 public:
  explicit Client(std::string endpoint) : endpoint_(std::move(endpoint)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Client() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void Pause(bool paused) { paused_ = paused; }
  std::vector<std::string> Acked() {
    std::lock_guard lock(mu_);
    return acked_;
  }
  size_t AckedSince(Clock::time_point t) {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (auto at : acked_at_) n += at >= t ? 1 : 0;
    return n;
  }
  // When the first write after `t` was acknowledged, if one was.
  std::optional<Clock::time_point> FirstAckedSince(Clock::time_point t) {
    std::lock_guard lock(mu_);
    for (auto at : acked_at_) {
      if (at >= t) return at;
    }
    return std::nullopt;
  }
  // Reads that gave a wrong value, or none after a few seconds of retries.
  std::vector<std::string> BadReads() {
    std::lock_guard lock(mu_);
    return bad_reads_;
  }

 private:
  void Run() {
    for (int i = 0; !stop_; ++i) {
      if (paused_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      std::string key = "/px/" + std::to_string(i);
      if (RunCommand(Etcdctl(endpoint_, "put " + key + " v" + std::to_string(i))).code == 0) {
        {
          std::lock_guard lock(mu_);
          acked_.push_back(key);
          acked_at_.push_back(Clock::now());
        }
        // Read it back at once, through the proxy (a linearizable read). A read may meet the
        // moment the proxy restarts its grpc-proxy, so it is retried as a client would; a wrong
        // value is never excused.
        Read(key, "v" + std::to_string(i) + "\n");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  void Read(const std::string& key, const std::string& want) {
    CommandResult got;
    test::WaitFor(
        [&] {
          got = RunCommand(Etcdctl(endpoint_, "get " + key + " --print-value-only"), true);
          return got.code == 0;
        },
        std::chrono::seconds(3));
    if (got.code == 0 && got.out == want) return;
    std::lock_guard lock(mu_);
    bad_reads_.push_back(key + ": " + got.out);
  }

  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> paused_{false};
  std::mutex mu_;
  std::vector<std::string> acked_;
  std::vector<Clock::time_point> acked_at_;
  std::vector<std::string> bad_reads_;
  std::thread thread_;
};

class ProxyTest : public ::testing::Test {
 protected:
  // The scheduler's flags are its defaults (TLS on) plus `extra`: the tests of the proxy's plain
  // mode pass --tls=off, and AProxyWithTheSchedulersCertificateServesATlsCluster keeps TLS.
  void StartAll(std::chrono::milliseconds reseed_timeout, std::vector<std::string> extra = {}) {
    test::LocalSystemOptions options;
    options.size = 3;
    options.cluster_name = "px";
    options.executor_path = EXECUTOR_PATH;
    options.extra_flags = {"--reseed-timeout=" + std::to_string(reseed_timeout.count()) + "ms"};
    options.extra_flags.insert(options.extra_flags.end(), extra.begin(), extra.end());
    system_.Start(options);
    master_ = system_.cluster().master().address();
  }

  void TearDown() override {
    client_.reset();
    proxy_.reset();
    system_.Stop();
  }

  bool RunUntil(const std::function<bool()>& done, int seconds) {
    return system_.RunUntil(done, seconds);
  }

  // A command that talks to the cluster or the scheduler, run off the test's thread so that
  // they keep serving meanwhile.
  CommandResult RunServing(const std::string& command) {
    auto f = std::async(std::launch::async, [command] { return RunCommand(command); });
    RunUntil([&] { return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }, 120);
    return f.get();
  }

  const scheduler::SchedulerCore& core() const { return system_.core(); }
  bool AtSize(int size) const { return system_.AtSize(size); }

  // What the proxy should point at: the running voters' client URLs, sorted.
  std::string Voters() const {
    std::set<std::string> urls;
    for (const auto& [name, m] : core().state().members) {
      if (m.task_state == mesos::TASK_RUNNING && !m.learner) urls.insert(m.ClientUrl());
    }
    std::string out;
    for (const auto& u : urls) out += (out.empty() ? "" : ",") + u;
    return out;
  }

  void StartProxy(std::vector<std::string> extra = {}) {
    listen_ = "127.0.0.1:" + std::to_string(test::FreePort());
    proxy_log_ = dir_.path() / "proxy.log";
    std::vector<std::string> argv = {
        PROXY_PATH, "--scheduler=http://" + system_.scheduler()->admin_address().ToString(),
        "--listen-addr=" + listen_, "--poll-interval=300ms",
        "--data-dir=" + (dir_.path() / "proxy").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proxy_ = std::make_unique<test::ChildProcess>(argv, proxy_log_);
  }

  std::string ProxyLog() const {
    std::ifstream in(proxy_log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // Every "grpc-proxy (pid N) on ADDR -> URLS" line the proxy logged: (pid, urls).
  std::vector<std::pair<int, std::string>> GrpcProxies() const {
    static const std::regex line(R"(grpc-proxy \(pid (\d+)\) on \S+ -> (\S+))");
    std::vector<std::pair<int, std::string>> out;
    std::string log = ProxyLog();
    for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it) {
      out.emplace_back(std::stoi((*it)[1]), (*it)[2]);
    }
    return out;
  }
  std::string ProxyPointsAt() const {
    auto all = GrpcProxies();
    return all.empty() ? "" : all.back().second;
  }

  void KillMember(const std::string& name) { system_.KillMember(name); }

  test::TempDir dir_{"em-proxy"};
  boost::asio::io_context io_;
  test::LocalSystem system_{io_, dir_.path()};
  HostPort master_;
  std::string listen_;
  std::filesystem::path proxy_log_;
  std::unique_ptr<test::ChildProcess> proxy_;
  std::unique_ptr<Client> client_;
};

TEST_F(ProxyTest, AClientOfTheProxyKeepsWorkingAcrossAHealAndAReseed) {
  ASSERT_NO_FATAL_FAILURE(StartAll(std::chrono::seconds(5), {"--tls=off"}));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 90)) << core().health_reason();
  ASSERT_NO_FATAL_FAILURE(StartProxy());
  ASSERT_TRUE(RunUntil([&] { return ProxyPointsAt() == Voters(); }, 30)) << ProxyLog();
  client_ = std::make_unique<Client>(listen_);
  ASSERT_TRUE(RunUntil([&] { return client_->Acked().size() >= 3; }, 30)) << ProxyLog();

  // One member lost with its executor: writes go on through the proxy while it is replaced,
  // and the proxy moves to the new member set.
  std::string victim = core().state().members.begin()->first;
  std::string victim_url = core().state().members.begin()->second.ClientUrl();
  size_t proxies_before = GrpcProxies().size();
  auto killed = Clock::now();
  ASSERT_NO_FATAL_FAILURE(KillMember(victim));
  ASSERT_TRUE(RunUntil([&] { return core().state().members.count(victim) == 0; }, 60));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  auto healed = Clock::now();
  // Writes go on through the proxy across the replacement: the client's first write after the
  // kill is acknowledged soon, whether the heal is slower than that or (as it now often is)
  // faster. (Each write is an etcdctl run, a few hundred ms under the sanitizers; one sent to the
  // dead member waits for the proxy to give up on it.)
  ASSERT_TRUE(RunUntil([&] { return client_->FirstAckedSince(killed).has_value(); }, 30))
      << "no write got through since a member was killed";
  double outage = std::chrono::duration<double>(*client_->FirstAckedSince(killed) - killed).count();
  EXPECT_LT(outage, 10.0) << "the first write after the kill took " << outage << " s";
  ASSERT_TRUE(RunUntil([&] { return ProxyPointsAt() == Voters(); }, 30))
      << "the proxy did not follow the replacement: " << ProxyLog();
  // The replacement may reuse the dead member's host and ports; in between, the proxy was
  // pointed at the survivors alone.
  bool followed_removal = false;
  auto proxies = GrpcProxies();
  for (size_t i = proxies_before; i < proxies.size(); ++i) {
    followed_removal |= proxies[i].second.find(victim_url) == std::string::npos;
  }
  EXPECT_TRUE(followed_removal) << victim_url << " was never dropped: " << ProxyLog();
  ASSERT_TRUE(RunUntil([&] { return client_->AckedSince(healed) >= 3; }, 30)) << ProxyLog();

  // A majority lost: after the reseed the same proxy process serves the new cluster. The client
  // pauses first so that what it was told is written has reached the survivor.
  client_->Pause(true);
  io_.run_for(std::chrono::milliseconds(1500));
  std::vector<std::string> names;
  for (const auto& [name, m] : core().state().members) names.push_back(name);
  ASSERT_NO_FATAL_FAILURE(KillMember(names[0]));
  ASSERT_NO_FATAL_FAILURE(KillMember(names[1]));
  client_->Pause(false);
  ASSERT_TRUE(RunUntil([&] { return core().state().counters.cluster_reseeds >= 1; }, 60))
      << core().health_reason();
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 150)) << core().health_reason();
  auto reseeded = Clock::now();
  ASSERT_TRUE(RunUntil([&] { return ProxyPointsAt() == Voters(); }, 30))
      << "the proxy did not follow the reseed: " << ProxyLog();
  ASSERT_TRUE(RunUntil([&] { return client_->AckedSince(reseeded) >= 3; }, 60)) << ProxyLog();
  client_->Stop();

  // Every write the client was told succeeded is there, read through the proxy.
  auto keys = RunServing(Etcdctl(listen_, "get /px/ --prefix --keys-only"));
  ASSERT_EQ(keys.code, 0) << keys.out;
  for (const auto& key : client_->Acked()) {
    EXPECT_NE(keys.out.find(key + "\n"), std::string::npos) << key << " was lost";
  }
  EXPECT_EQ(client_->BadReads(), std::vector<std::string>{})
      << "a read through the proxy missed a write just made";

  // One proxy process all along, and it restarted its grpc-proxy for each change.
  EXPECT_TRUE(proxy_->Running()) << ProxyLog();
  auto children = GrpcProxies();
  EXPECT_GE(children.size(), 3u) << ProxyLog();
  for (const auto& [pid, urls] : children)
    std::printf("[proxy] grpc-proxy %d -> %s\n", pid, urls.c_str());
  EXPECT_NE(ProxyLog().find("members changed"), std::string::npos);

  // SIGTERM stops it and its grpc-proxy; nothing is left behind.
  int status = proxy_->Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << ProxyLog();
  for (const auto& [pid, urls] : children) {
    EXPECT_TRUE(::kill(pid, 0) != 0 && errno == ESRCH) << "grpc-proxy " << pid << " survived";
  }
}

void IgnoreZooKeeperEvents(zhandle_t*, int, int, const char*, void*) {}

// Announces `master` under `chroot` in ZooKeeper as a leading Mesos master does: a sequential
// `json.info_` node holding its MasterInfo as JSON. (Persistent here, so that the announcing
// session may end.)
Status AnnounceMaster(const test::ZooKeeperServer& zk, const std::string& chroot,
                      const HostPort& master) {
  mesos::MasterInfo info;
  info.set_id("px-master");
  info.set_ip(0);
  info.set_port(master.port);
  info.set_hostname(master.host);
  info.set_pid("master@" + master.ToString());
  info.mutable_address()->set_ip(master.host);
  info.mutable_address()->set_port(master.port);
  std::string data = mesos_codec::MessageToJsonString(info);
  zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
  zhandle_t* zh =
      zookeeper_init(zk.servers().c_str(), &IgnoreZooKeeperEvents, 30000, nullptr, nullptr, 0);
  if (zh == nullptr) return MakeError(ErrorCode::kUnavailable, "zookeeper_init failed");
  if (!test::WaitFor([&] { return zoo_state(zh) == ZOO_CONNECTED_STATE; },
                     std::chrono::seconds(60))) {
    zookeeper_close(zh);
    return MakeError(ErrorCode::kUnavailable, "no ZooKeeper session to {}", zk.servers());
  }
  int rc = zoo_create(zh, chroot.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0);
  if (rc == ZOK || rc == ZNODEEXISTS) {
    rc = zoo_create(zh, (chroot + "/json.info_").c_str(), data.data(),
                    static_cast<int>(data.size()), &ZOO_OPEN_ACL_UNSAFE, ZOO_SEQUENCE, nullptr, 0);
  }
  zookeeper_close(zh);
  if (rc != ZOK) return MakeError(ErrorCode::kUnavailable, "zoo_create: {}", zerror(rc));
  return OkStatus();
}

// A TLS cluster run by the scheduler (--tls=auto): the proxy gets the CA from GET /ca.crt and a
// certificate without a common name (as etcd's grpc-proxy wants) from GET /client-cert?for=proxy,
// follows the https members from /members, and its plain local clients read and write through
// it, across a heal.
TEST_F(ProxyTest, AProxyWithTheSchedulersCertificateServesATlsCluster) {
  ASSERT_NO_FATAL_FAILURE(StartAll(std::chrono::seconds(240), {"--tls=auto"}));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 90)) << core().health_reason();
  std::string admin = "http://" + system_.scheduler()->admin_address().ToString();
  std::filesystem::path ca = dir_.path() / "ca.pem", pem = dir_.path() / "proxy.pem";
  std::filesystem::path token =
      std::filesystem::path(system_.flags().shell.state_dir) / "admin-token";
  auto fetched = RunServing("curl -sf " + admin + "/ca.crt -o " + ca.string() +
                            " && curl -sf -H \"Authorization: Bearer $(cat " + token.string() +
                            ")\" '" + admin + "/client-cert?for=proxy' -o " + pem.string());
  ASSERT_EQ(fetched.code, 0) << fetched.out;
  ASSERT_EQ(Voters().rfind("https://", 0), 0u) << Voters();
  ASSERT_NO_FATAL_FAILURE(
      StartProxy({"--cacert=" + ca.string(), "--cert=" + pem.string(), "--key=" + pem.string()}));
  ASSERT_TRUE(RunUntil([&] { return ProxyPointsAt() == Voters(); }, 30)) << ProxyLog();
  auto put = RunServing("ETCDCTL_API=3 etcdctl --dial-timeout=3s --endpoints=" + listen_ +
                        " put /px/tls through-the-proxy");
  ASSERT_EQ(put.code, 0) << put.out << ProxyLog();

  std::string victim = core().state().members.begin()->first;
  ASSERT_NO_FATAL_FAILURE(KillMember(victim));
  ASSERT_TRUE(RunUntil([&] { return core().state().members.count(victim) == 0; }, 60));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  ASSERT_TRUE(RunUntil([&] { return ProxyPointsAt() == Voters(); }, 30)) << ProxyLog();
  auto get = RunServing("ETCDCTL_API=3 etcdctl --dial-timeout=3s --endpoints=" + listen_ +
                        " get /px/tls --print-value-only");
  EXPECT_EQ(get.code, 0) << get.out;
  EXPECT_EQ(get.out, "through-the-proxy\n");
}

TEST_F(ProxyTest, MasterStateCarriesDiscoveryInfoThatTheProxyReads) {
  // A real ZooKeeper, for --master=zk://... below. Started from this thread: its process dies
  // with the thread that started it.
  test::ZooKeeperServer zk_server;
  Status zk_started = zk_server.Start();
  ASSERT_TRUE(zk_started.ok()) << zk_started.error();
  ASSERT_NO_FATAL_FAILURE(StartAll(std::chrono::seconds(240), {"--tls=off"}));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 90)) << core().health_reason();

  // /master/state over HTTP, as mesos-dns reads it.
  std::optional<Result<net::HttpResponse>> got;
  net::HttpRequest req;
  req.endpoint = master_;
  req.target = "/master/state";
  net::HttpFetch(io_, req, [&](Result<net::HttpResponse> r) { got = std::move(r); });
  ASSERT_TRUE(RunUntil([&] { return got.has_value(); }, 10));
  ASSERT_TRUE(got->ok()) << got->error();
  json state = json::parse((*got)->body);
  ASSERT_EQ(state["frameworks"].size(), 1u);
  const json& fw = state["frameworks"][0];
  EXPECT_EQ(fw["name"], "etcd-px");
  int checked = 0;
  for (const auto& [name, m] : core().state().members) {
    const json* task = nullptr;
    for (const auto& t : fw["tasks"]) {
      if (t["id"] == m.task_id) task = &t;
    }
    ASSERT_NE(task, nullptr) << name;
    ASSERT_TRUE(task->contains("discovery")) << task->dump();
    const json& d = (*task)["discovery"];
    EXPECT_EQ(d["name"], "etcd-px");
    EXPECT_EQ(d["visibility"], "EXTERNAL");
    const json& ports = d["ports"]["ports"];
    ASSERT_EQ(ports.size(), 2u) << d.dump();
    EXPECT_EQ(ports[0],
              json({{"number", m.peer_port}, {"name", "etcd-server"}, {"protocol", "tcp"}}));
    EXPECT_EQ(ports[1],
              json({{"number", m.client_port}, {"name", "etcd-client"}, {"protocol", "tcp"}}));
    ++checked;
  }
  EXPECT_EQ(checked, 3);

  // --once reads the same members from the master as from the scheduler.
  std::string proxy = PROXY_PATH;
  auto from_master = RunServing(proxy + " --once --wait=10s --master=" + master_.ToString() +
                                " --framework-name=etcd-px --log-level=error");
  EXPECT_EQ(from_master.code, 0) << from_master.out;
  EXPECT_EQ(from_master.out, Voters() + "\n");
  auto from_scheduler = RunServing(proxy + " --once --wait=10s --log-level=error --scheduler=" +
                                   system_.scheduler()->admin_address().ToString());
  EXPECT_EQ(from_scheduler.code, 0) << from_scheduler.out;
  EXPECT_EQ(from_scheduler.out, Voters() + "\n");
  // And what it prints is what etcdctl takes.
  auto health = RunServing(
      "ETCDCTL_API=3 ETCDCTL_ENDPOINTS=$(" + proxy + " --once --log-level=error --scheduler=" +
      system_.scheduler()->admin_address().ToString() + ") etcdctl endpoint health");
  EXPECT_EQ(health.code, 0) << health.out;
  EXPECT_EQ(std::count(health.out.begin(), health.out.end(), '\n'), 3) << health.out;

  // The master found through ZooKeeper, as with --master=zk://... in production.
  Status announced = AnnounceMaster(zk_server, "/mesos", master_);
  ASSERT_TRUE(announced.ok()) << announced.error() << "\n" << zk_server.LogTail();
  auto from_zk = RunServing(proxy + " --once --wait=20s --log-level=error --master=" +
                            zk_server.Url("/mesos") + " --framework-name=etcd-px");
  EXPECT_EQ(from_zk.code, 0) << from_zk.out;
  EXPECT_EQ(from_zk.out, Voters() + "\n");
  // It waits for ZooKeeper's first answer before it looks: no warning about a missing master
  // that it finds milliseconds later (real Mesos 1.11: "no leading master found yet", 8 ms
  // before it found one).
  auto logged = RunServing(proxy + " --once --wait=20s --master=" + zk_server.Url("/mesos") +
                           " --framework-name=etcd-px");
  EXPECT_EQ(logged.code, 0) << logged.out;
  EXPECT_NE(logged.out.find("leading Mesos master"), std::string::npos) << logged.out;
  EXPECT_EQ(logged.out.find("no leading master"), std::string::npos) << logged.out;
  EXPECT_EQ(logged.out.find("[warning]"), std::string::npos) << logged.out;

  // A framework that is not there is named, with what is.
  auto missing = RunServing(proxy + " --once --wait=1s --master=" + master_.ToString() +
                            " --framework-name=etcd-nope");
  EXPECT_EQ(missing.code, 1) << missing.out;
  EXPECT_NE(missing.out.find("no framework named 'etcd-nope'"), std::string::npos) << missing.out;
  EXPECT_NE(missing.out.find("etcd-px"), std::string::npos) << missing.out;
}

// A port nobody listens on, for "unreachable".
uint16_t DeadPort() { return test::FreePort(); }

TEST(ProxyCommandLine, BadFlagsAndUnreachableSourcesFailClearly) {
  std::string proxy = PROXY_PATH;
  struct Case {
    std::string args;
    int code;
    std::vector<std::string> says;
  };
  std::string dead = "127.0.0.1:" + std::to_string(DeadPort());
  std::vector<Case> cases = {
      {"", 2, {"exactly one of --scheduler"}},
      {"--scheduler=http://a:1 --master=b:2", 2, {"exactly one of"}},
      {"--scheduler=" + dead + " --listen-addr=nowhere", 2, {"--listen-addr=nowhere"}},
      {"--scheduler=" + dead + " --wait=soon", 2, {"--wait"}},
      {"--scheduler=" + dead + " --frobnicate", 2, {"frobnicate"}},
      {"--scheduler=" + dead + " --once --wait=1s",
       1,
       {"no etcd cluster found within --wait=1.0s", dead, "Connection refused"}},
      {"--master=" + dead + " --framework-name=etcd-x --wait=1s",
       1,
       {"no etcd cluster found", "Mesos master " + dead, "Connection refused"}},
      {"--scheduler=" + dead + " --etcd-bin=/nonexistent/etcd", 1, {"--etcd-bin", "not an"}},
  };
  for (const auto& c : cases) {
    auto t0 = Clock::now();
    auto r = RunCommand(proxy + " " + c.args);
    EXPECT_EQ(r.code, c.code) << c.args << "\n" << r.out;
    for (const auto& s : c.says) {
      EXPECT_NE(r.out.find(s), std::string::npos) << c.args << " should say '" << s << "':\n"
                                                  << r.out;
    }
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(15)) << c.args << " took too long";
  }

  // A listen address already taken is named before anything starts.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  auto busy = RunCommand(proxy + " --scheduler=" + dead +
                         " --listen-addr=127.0.0.1:" + std::to_string(ntohs(sa.sin_port)));
  ::close(fd);
  EXPECT_EQ(busy.code, 1) << busy.out;
  EXPECT_NE(busy.out.find("cannot listen there"), std::string::npos) << busy.out;

  auto help = RunCommand(proxy + " --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("ETCDCTL_ENDPOINTS=$(etcd-mesos-proxy --once"), std::string::npos);
}

}  // namespace
}  // namespace etcd_mesos::proxy
