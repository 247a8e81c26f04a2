// system_bench: how fast etcd-mesos bootstraps, heals and reseeds a cluster, each figure against
// a floor measured in the same run on the same machine, and what supervising etcd costs.
//
//   bootstrap N   scheduler start -> N healthy voters, through etcd-mesos-local with default
//                 scheduler flags; floor: N bare etcd processes started as one static cluster
//                 until all are healthy.
//   heal          kill -9 of the leader's or a follower's executor (and its etcd) -> N healthy
//                 voters again, each timed from the kill; floor: the same kill on bare etcd, then
//                 the same steps by hand as fast as etcd accepts them (once the survivors have a
//                 leader: remove the dead member, add a learner, start it, promote it) until
//                 healthy.
//   failover      scheduler HA (state in ZooKeeper): the leader stops -> the standby leads,
//                 subscribed with the same framework id and reconciled; floor: one scheduler
//                 restarted from the same stored state to the same point. And the leader stopped
//                 with a follower killed at once -> 3 healthy voters by the new leader; floor: the
//                 heal floor. (A kill -9 of the leader adds its session timeout, 10 s.)
//   reseed        the reseed decision -> N healthy voters; floor: the survivor restarted with
//                 --force-new-cluster, then N-1 learners joined and promoted one at a time.
//   resize        POST /cluster-size?n=5 on a healthy 3 -> 5 healthy voters; floor: two learners
//                 added, started and promoted by hand, one at a time, on bare etcd.
//   rollout       POST /rollout/restart on a healthy 3 -> every member replaced, 3 healthy
//                 voters; floor: by hand on bare etcd, for each member (followers first, the
//                 leader last after MoveLeader): add a learner, start it, promote it, remove the
//                 old member, stop it.
//   host-death    durable members with the defaults (--replace-after=5m, Mesos's agent timeouts:
//                 75 s): a follower's host dies with everything on it -> the member replaced
//                 elsewhere, 3 healthy voters; floor: --replace-after plus the heal floor (the
//                 policy's wait, then the same steps by hand on bare etcd). Over five minutes a
//                 run: only with --only=host-death, never in the smoke pass.
//   supervision   the executors' CPU and memory against the etcd processes they supervise, idle
//                 and under a write load.
//   TLS           bootstrap of 3, a follower's heal and supervision again with --tls=auto (the
//                 scheduler's CA, each member's certificates, https with client certificates
//                 required on both ports); the floors then run bare etcd with TLS the same way:
//                 certificates of a CA made with em_tls for each member's IP, --client-cert-auth
//                 and --peer-client-cert-auth, and a client certificate for every request.
//
// Prints a table (median of --runs, with min..max) and writes JSON (--out). Timings are never
// judged here; CI runs `--runs=1 --quick` as a smoke pass.
//
// Threading: one thread drives one io_context (the local cluster, the scheduler and the
// workload); blocking floor steps run on the same thread between figures.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "etcd/client.h"
#include "local/cluster.h"
#include "local/resources.h"
#include "net/http.h"
#include "scheduler/core/rules.h"
#include "scheduler/shell/shell.h"
#include "testing/certificates.h"
#include "testing/etcd_server.h"
#include "testing/ports.h"
#include "testing/process.h"
#include "testing/tempdir.h"
#include "testing/workload.h"  // RunShell
#include "testing/zookeeper_server.h"
#include "tls/pki.h"

namespace etcd_mesos::bench {
namespace {

using Clock = std::chrono::steady_clock;
using scheduler::Member;
using scheduler::SchedulerCore;
using std::chrono::milliseconds;
using std::chrono::seconds;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Figure {
  std::string name;
  std::vector<double> runs;
  std::vector<double> floors;
  std::map<std::string, std::vector<double>> breakdown;  // phase -> seconds per run
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Whether a figure runs with TLS: the system with --tls=auto, its floor with the same on bare etcd.
enum class Tls { kOff, kOn };

std::string Titled(const std::string& name, Tls tls) {
  return tls == Tls::kOn ? name + " (TLS)" : name;
}

// ---- The system: etcd-mesos-local + the scheduler with default flags ------------------------

class System {
 public:
  // `store`: where the scheduler keeps its state; empty: a directory of its own.
  System(boost::asio::io_context& io, int size, milliseconds reseed_timeout,
         const std::string& store = "", int agents = 0, Tls tls = Tls::kOff,
         const std::vector<std::string>& extra_flags = {})
      : io_(io) {
    local::LocalClusterOptions options;
    options.agents = agents > 0 ? agents : size + 1;
    options.resources = *local::ParseResources("cpus:4;mem:4096;disk:4096;ports:[31000-31999]");
    options.first_agent_host = test::AgentHostBase();
    options.work_dir = dir_.path() / "mesos";
    options.master.port = 0;
    cluster_ = std::make_unique<local::LocalCluster>(io_, options);
    auto master = cluster_->Start();
    if (!master.ok()) throw std::runtime_error(master.error().ToString());
    std::filesystem::path wrapper = test::WriteExecutorWrapper(dir_.path(), EXECUTOR_PATH);
    std::filesystem::path token = dir_.path() / "admin-token";
    std::ofstream(token) << kToken << "\n";
    // Default flags, but for where things are and what a member may use on this machine.
    std::vector<std::string> args = {
        "--cluster-name=bench",
        "--admin-token-file=" + token.string(),
        "--master=" + master->ToString(),
        store.empty() ? "--state-dir=" + (dir_.path() / "state").string()
                      : "--zk-framework-persist=" + store,
        "--cluster-size=" + std::to_string(size),
        "--admin-port=" + std::to_string(test::FreePort()),
        "--cpu-limit=0.5",
        "--mem-limit=256",
        "--disk-limit=512",
        "--executor-bin=" + wrapper.string(),
        "--reseed-timeout=" + std::to_string(reseed_timeout.count()) + "ms"};
    // Said both ways: the scheduler's default is --tls=auto.
    args.push_back(tls == Tls::kOn ? "--tls=auto" : "--tls=off");
    args.insert(args.end(), extra_flags.begin(), extra_flags.end());
    auto parsed = scheduler::shell::ParseFlags(args, {{"USER", "root"}}, ".");
    if (!parsed.ok()) throw std::runtime_error(parsed.error().ToString());
    if (auto s = scheduler::shell::LoadFiles(parsed->flags.shell); !s.ok()) {
      throw std::runtime_error(s.error().ToString());
    }
    flags_ = parsed->flags;
  }
  ~System() {
    if (standby_) standby_->Stop();
    standby_.reset();
    if (scheduler_) scheduler_->Stop();
    scheduler_.reset();
    cluster_->Shutdown();
    io_.run_for(milliseconds(300));
  }

  void StartScheduler() { scheduler_ = NewScheduler(flags_); }
  // A second instance with the same flags but its own admin port (HA: state in ZooKeeper).
  void StartStandby() {
    scheduler::shell::SchedulerFlags flags = flags_;
    flags.shell.admin_port = test::FreePort();
    standby_ = NewScheduler(flags);
  }
  // The leader stops as on SIGTERM (it withdraws from the election); the standby is the one
  // measured from then on.
  void StopLeaderForStandby() {
    scheduler_->Stop();
    scheduler_ = std::move(standby_);
  }
  bool Leads() const { return scheduler_ && scheduler_->leading(); }
  void StopAll() {
    if (scheduler_) scheduler_->Stop();
    scheduler_.reset();
  }

  const SchedulerCore& core() const { return scheduler_->core(); }
  local::LocalCluster& cluster() { return *cluster_; }

  bool AtSize(int size) const {
    if (!scheduler_ || !core().healthy()) return false;
    int voters = 0;
    for (const auto& [name, m] : core().state().members) {
      if (m.task_state == mesos::TASK_RUNNING && !m.learner && m.reachable) ++voters;
    }
    return voters == size && static_cast<int>(core().state().members.size()) == size;
  }

  bool RunUntil(const std::function<bool()>& done, int limit_seconds) {
    auto deadline = Clock::now() + seconds(limit_seconds);
    while (!done() && Clock::now() < deadline) io_.run_for(milliseconds(5));
    return done();
  }
  void RunFor(milliseconds d) {
    auto deadline = Clock::now() + d;
    while (Clock::now() < deadline) io_.run_for(milliseconds(5));
  }

  void KillMember(const std::string& name) {
    auto state = cluster_->master().StateJson();
    for (const auto& t : state["frameworks"][0]["tasks"]) {
      if (t["name"].get<std::string>().rfind(name + " ", 0) == 0) {
        auto s = cluster_->KillExecutor(t["executor_id"].get<std::string>());
        if (!s.ok()) throw std::runtime_error(s.error().ToString());
        return;
      }
    }
    throw std::runtime_error("no task for " + name);
  }

  static constexpr const char* kToken = "bench-admin-token";  // --admin-token-file's

  // POSTs to the scheduler's admin API, with the token, while the loop keeps serving it;
  // answers the HTTP status.
  std::string Post(const std::string& path) {
    std::string command = fmt::format(
        "curl -s -o /dev/null -w '%{{http_code}}' -XPOST -H 'Authorization: Bearer {}' http://{}{}",
        kToken, scheduler_->admin_address().ToString(), path);
    auto result = std::async(std::launch::async, [command] { return test::RunShell(command); });
    while (result.wait_for(milliseconds(0)) != std::future_status::ready) {
      io_.run_for(milliseconds(5));
    }
    return result.get().second;
  }

  // What the bench's own requests to the members present with --tls=auto: the client certificate
  // the scheduler wrote for itself under its state directory (once it has loaded its CA).
  std::shared_ptr<const net::TlsClientConfig> ClientTls() const {
    etcd::TlsFiles files = scheduler::shell::SchedulerTlsFiles((dir_.path() / "state").string());
    auto config = net::TlsClientConfig::FromFiles(files.ca_file, files.cert_file, files.key_file);
    if (!config.ok()) {
      throw std::runtime_error("the scheduler's client certificate: " + config.error().ToString());
    }
    return *config;
  }

  std::vector<HostPort> ClientEndpoints() const {
    std::vector<HostPort> out;
    for (const auto& [name, m] : core().state().members) {
      if (m.task_state == mesos::TASK_RUNNING) out.push_back({m.host, m.client_port});
    }
    return out;
  }

 private:
  boost::asio::io_context& io_;
  test::TempDir dir_{"em-bench"};
  std::unique_ptr<local::LocalCluster> cluster_;
  scheduler::shell::SchedulerFlags flags_;
  std::unique_ptr<scheduler::shell::SchedulerShell> scheduler_;
  std::unique_ptr<scheduler::shell::SchedulerShell> standby_;

  std::unique_ptr<scheduler::shell::SchedulerShell> NewScheduler(
      const scheduler::shell::SchedulerFlags& flags) {
    scheduler::shell::SchedulerShell::Options options;
    options.on_fatal = [](const Error& e) {
      spdlog::critical("scheduler fatal: {}", e.ToString());
    };
    auto shell = std::make_unique<scheduler::shell::SchedulerShell>(io_, flags, options);
    if (auto s = shell->Start(); !s.ok()) throw std::runtime_error(s.error().ToString());
    return shell;
  }
};

double Bootstrap(boost::asio::io_context& io, int size, Tls tls) {
  System system(io, size, seconds(240), "", 0, tls);
  auto t0 = Clock::now();
  system.StartScheduler();
  if (!system.RunUntil([&] { return system.AtSize(size); }, 180)) {
    throw std::runtime_error(
        fmt::format("bootstrap of {} did not finish: {}", size, system.core().health_reason()));
  }
  return Since(t0);
}

enum class Victim { kFollower, kLeader };

const char* VictimName(Victim v) { return v == Victim::kLeader ? "leader" : "follower"; }

// The name of a member the core knows to be the etcd leader (or a voter that is not), once every
// member reports the same leader.
std::optional<std::string> PickVictim(const SchedulerCore& core, Victim kind) {
  uint64_t leader = 0;
  for (const auto& [name, m] : core.state().members) {
    if (m.leader == 0 || (leader != 0 && m.leader != leader)) return std::nullopt;
    leader = m.leader;
  }
  for (const auto& [name, m] : core.state().members) {
    if ((m.member_id == leader) == (kind == Victim::kLeader)) return name;
  }
  return std::nullopt;
}

// kill -9 of the leader's or a follower's executor (and so its etcd) -> healthy at size, with the
// phases: detection (the dead member removed), offer wait (a learner added for an offer), launch
// (the learner's task RUNNING), join and promote.
double Heal(boost::asio::io_context& io, Victim kind, std::map<std::string, double>& phases,
            Tls tls) {
  System system(io, 3, seconds(240), "", 0, tls);
  system.StartScheduler();
  if (!system.RunUntil([&] { return system.AtSize(3); }, 180)) {
    throw std::runtime_error("no cluster to heal");
  }
  system.RunFor(seconds(6));  // past etcd's 5 s "connected to all peers" window after start
  std::optional<std::string> picked;
  if (!system.RunUntil([&] { return (picked = PickVictim(system.core(), kind)).has_value(); },
                       30)) {
    throw std::runtime_error(fmt::format("no {} to kill", VictimName(kind)));
  }
  std::string victim = *picked;
  uint64_t promoted = system.core().state().counters.members_promoted;
  auto t0 = Clock::now();
  system.KillMember(victim);
  std::optional<double> removed, added, running;
  std::string learner;
  auto done = [&] {
    const auto& members = system.core().state().members;
    if (!removed && !members.count(victim)) removed = Since(t0);
    for (const auto& [name, m] : members) {
      if (name == victim || !m.learner) continue;
      if (!added) {
        added = Since(t0);
        learner = name;
      }
      if (!running && m.task_state == mesos::TASK_RUNNING) running = Since(t0);
    }
    return system.core().state().counters.members_promoted > promoted && system.AtSize(3);
  };
  if (!system.RunUntil(done, 180)) throw std::runtime_error("the lost member was not replaced");
  double total = Since(t0);
  double r = removed.value_or(0), a = added.value_or(r), run = running.value_or(a);
  phases = {{"detect+remove", r},
            {"offer+add learner", a - r},
            {"launch", run - a},
            {"join+promote", total - run}};
  return total;
}

// A durable cluster of 3 (--role=etcd) healthy past etcd's 5 s window; answers a follower.
std::optional<std::string> DurableFollower(System& system) {
  system.StartScheduler();
  if (!system.RunUntil([&] { return system.AtSize(3); }, 180)) {
    throw std::runtime_error("no durable cluster of 3");
  }
  system.RunFor(seconds(6));
  std::optional<std::string> picked;
  if (!system.RunUntil(
          [&] { return (picked = PickVictim(system.core(), Victim::kFollower)).has_value(); },
          30)) {
    throw std::runtime_error("no follower to kill");
  }
  return picked;
}

// Durable members (--role=etcd): kill -9 of a follower's executor (and so its etcd) -> the member
// restarted in place on its volume (same etcd member) and the cluster healthy at size.
double RestartInPlace(boost::asio::io_context& io) {
  System system(io, 3, seconds(240), "", 0, Tls::kOff, {"--role=etcd"});
  std::optional<std::string> picked = DurableFollower(system);
  uint32_t restarts = system.core().state().members.at(*picked).restarts;
  auto t0 = Clock::now();
  system.KillMember(*picked);
  auto back = [&] {
    const auto& members = system.core().state().members;
    auto it = members.find(*picked);
    return it != members.end() && it->second.restarts > restarts &&
           it->second.task_state == mesos::TASK_RUNNING && system.AtSize(3);
  };
  if (!system.RunUntil(back, 180))
    throw std::runtime_error("the member was not restarted in place");
  if (system.core().state().counters.members_added != 0) {
    throw std::runtime_error("the member was replaced, not restarted in place");
  }
  return Since(t0);
}

// Durable members with the default --replace-after and Mesos's default agent timeouts: a
// follower's host dies with everything on it -> replaced elsewhere and 3 healthy voters. The
// phases: cut off (etcd's own view, or Mesos's if first), removed from etcd, healthy again.
double HostDeath(boost::asio::io_context& io, std::map<std::string, double>& phases) {
  System system(io, 3, seconds(240), "", 4, Tls::kOff, {"--role=etcd"});
  std::optional<std::string> picked = DurableFollower(system);
  const std::string agent_id = system.core().state().members.at(*picked).agent_id;
  int agent = 0;
  for (int n = 1; n <= system.cluster().agent_count(); ++n) {
    if (system.cluster().agent(n) && system.cluster().agent(n)->id().value() == agent_id) agent = n;
  }
  if (agent == 0) throw std::runtime_error("no agent runs " + *picked);
  auto t0 = Clock::now();
  if (auto s = system.cluster().StopAgent(agent); !s.ok())
    throw std::runtime_error(s.error().ToString());
  auto member = [&]() -> const Member* {
    auto it = system.core().state().members.find(*picked);
    return it == system.core().state().members.end() ? nullptr : &it->second;
  };
  auto cut_off = [&] {
    return !member() || member()->peer_lost_since.has_value() ||
           scheduler::Uncertain(member()->task_state);
  };
  if (!system.RunUntil(cut_off, 120)) throw std::runtime_error("the member was never cut off");
  double cut = Since(t0);
  if (!system.RunUntil([&] { return member() == nullptr; }, 600)) {
    throw std::runtime_error("the member was never replaced");
  }
  double removed = Since(t0);
  if (!system.RunUntil([&] { return system.AtSize(3); }, 300)) {
    throw std::runtime_error("not healthy after the replacement: " + system.core().health_reason());
  }
  double total = Since(t0);
  phases = {{"cut off", cut}, {"removed", removed - cut}, {"healthy", total - removed}};
  return total;
}

// A healthy cluster of 3 (past etcd's 5 s window), with `agents` agents.
std::unique_ptr<System> HealthyThree(boost::asio::io_context& io, int agents) {
  auto system = std::make_unique<System>(io, 3, seconds(240), "", agents);
  system->StartScheduler();
  if (!system->RunUntil([&] { return system->AtSize(3); }, 180)) {
    throw std::runtime_error("no cluster of 3");
  }
  system->RunFor(seconds(6));
  return system;
}

// POST /cluster-size?n=5 -> 5 healthy voters.
double Resize(boost::asio::io_context& io) {
  auto system = HealthyThree(io, 6);
  auto t0 = Clock::now();
  if (std::string code = system->Post("/cluster-size?n=5"); code != "202") {
    throw std::runtime_error("POST /cluster-size answered " + code);
  }
  if (!system->RunUntil([&] { return system->AtSize(5); }, 300)) {
    throw std::runtime_error("the cluster did not grow to 5: " + system->core().health_reason());
  }
  return Since(t0);
}

// POST /rollout/restart -> every member replaced, 3 healthy voters.
double Rollout(boost::asio::io_context& io) {
  auto system = HealthyThree(io, 4);
  auto t0 = Clock::now();
  if (std::string code = system->Post("/rollout/restart"); code != "202") {
    throw std::runtime_error("POST /rollout/restart answered " + code);
  }
  auto done = [&] { return system->core().rollout().state == "done" && system->AtSize(3); };
  if (!system->RunUntil(done, 600)) {
    throw std::runtime_error("the rolling restart did not finish: " +
                             system->core().rollout().reason + system->core().rollout().step);
  }
  return Since(t0);
}

// Scheduler HA (state in ZooKeeper, a standby behind the leader): the leader stops -> the
// standby leads, is subscribed with the same framework id and has reconciled (`failover`); with
// a follower's executor killed at the same moment, -> 3 healthy voters again by the new leader
// (`heal`). A leader killed with kill -9 adds its ZooKeeper session's timeout (10 s) before the
// standby can lead.
struct FailoverTimes {
  double failover = 0;
  double heal = 0;
};
FailoverTimes Failover(boost::asio::io_context& io, const test::ZooKeeperServer& zookeeper,
                       int run) {
  System system(io, 3, seconds(240), zookeeper.Url(fmt::format("/bench-{}", run)));
  system.StartScheduler();
  if (!system.RunUntil([&] { return system.Leads() && system.AtSize(3); }, 180)) {
    throw std::runtime_error("no cluster to fail over");
  }
  system.StartStandby();
  system.RunFor(seconds(6));  // the standby in line; past etcd's 5 s window, as Heal
  std::optional<std::string> victim;
  if (!system.RunUntil(
          [&] { return (victim = PickVictim(system.core(), Victim::kFollower)).has_value(); },
          30)) {
    throw std::runtime_error("no follower to kill");
  }
  std::string framework = system.core().state().framework_id.value_or("");
  auto t0 = Clock::now();
  system.StopLeaderForStandby();
  system.KillMember(*victim);
  FailoverTimes times;
  if (!system.RunUntil(
          [&] {
            return system.Leads() && system.core().connected() && !system.core().reconciling();
          },
          60)) {
    throw std::runtime_error("the standby did not take over");
  }
  times.failover = Since(t0);
  if (system.core().state().framework_id.value_or("") != framework) {
    throw std::runtime_error("the standby subscribed as another framework");
  }
  if (!system.RunUntil(
          [&] { return !system.core().state().members.count(*victim) && system.AtSize(3); }, 180)) {
    throw std::runtime_error("the member lost during the failover was not replaced");
  }
  times.heal = Since(t0);
  return times;
}

// What a standby saves: one scheduler restarted from the same stored state (the process start
// itself, by a supervisor, not counted) -> subscribed and reconciled.
double RestartFloor(boost::asio::io_context& io, const test::ZooKeeperServer& zookeeper, int run) {
  System system(io, 3, seconds(240), zookeeper.Url(fmt::format("/bench-floor-{}", run)));
  system.StartScheduler();
  if (!system.RunUntil([&] { return system.Leads() && system.AtSize(3); }, 180)) {
    throw std::runtime_error("no cluster for the restart floor");
  }
  system.StopAll();
  system.RunFor(seconds(1));
  auto t0 = Clock::now();
  system.StartScheduler();
  if (!system.RunUntil(
          [&] {
            return system.Leads() && system.core().connected() && !system.core().reconciling();
          },
          60)) {
    throw std::runtime_error("the restarted scheduler did not reconcile");
  }
  return Since(t0);
}

// The reseed decision (the core starts reseeding) -> healthy at size.
double Reseed(boost::asio::io_context& io) {
  System system(io, 3, seconds(5));
  system.StartScheduler();
  if (!system.RunUntil([&] { return system.AtSize(3); }, 180)) {
    throw std::runtime_error("no cluster to reseed");
  }
  std::vector<std::string> names;
  for (const auto& [name, m] : system.core().state().members) names.push_back(name);
  system.KillMember(names[0]);
  system.KillMember(names[1]);
  if (!system.RunUntil([&] { return system.core().reseeding(); }, 120)) {
    throw std::runtime_error("no reseed decision");
  }
  auto t0 = Clock::now();
  if (!system.RunUntil([&] { return !system.core().reseeding() && system.AtSize(3); }, 240)) {
    throw std::runtime_error("the reseeded cluster did not grow back");
  }
  return Since(t0);
}

// ---- Floors: the same outcomes with bare etcd processes -------------------------------------

// TLS on bare etcd as --tls=auto sets it up on the members: a P-256 CA made with em_tls, for each
// member a certificate of it naming the member's IP (server and client usages: etcd dials its
// peers and its own gRPC gateway with it), https on both ports with --client-cert-auth and
// --peer-client-cert-auth, and a client certificate of the CA for every request the floor makes.
// The scheduler gives a member one certificate per port; one for both costs etcd the same
// handshakes. A member's certificate is issued when its options are made, inside the floor's
// time as the scheduler's issuing is inside the system's (about a millisecond each).
class FloorTls {
 public:
  explicit FloorTls(std::filesystem::path dir) : dir_(std::move(dir)) {
    auto now = std::chrono::system_clock::now();
    auto ca = tls::NewAuthority("bench floor CA", now - std::chrono::hours(1),
                                now + std::chrono::hours(24));
    if (!ca.ok()) throw std::runtime_error(ca.error().ToString());
    ca_ = *ca;
    ca_file_ = Write("ca.crt", ca_.certificate_pem);
    auto client = Issue(test::CertificateFor("bench-client", {}, tls::Usage::kClient));
    auto config =
        net::TlsClientConfig::Create(ca_.certificate_pem, client.certificate_pem, client.key_pem);
    if (!config.ok()) throw std::runtime_error(config.error().ToString());
    client_ = *config;
  }

  test::EtcdServer::Options Member(const std::string& name, const std::string& ip) const {
    tls::IssuedCertificate issued =
        Issue(test::CertificateFor(name, {ip}, tls::Usage::kServerAndClient));
    test::EtcdServer::Options options{.name = name, .ip = ip};
    options.tls = etcd::TlsFiles{.ca_file = ca_file_,
                                 .cert_file = Write(name + ".crt", issued.certificate_pem),
                                 .key_file = Write(name + ".key", issued.key_pem)};
    options.client_tls = client_;
    return options;
  }
  const std::shared_ptr<const net::TlsClientConfig>& client() const { return client_; }

 private:
  tls::IssuedCertificate Issue(const tls::CertificateRequest& request) const {
    auto issued = tls::Issue(ca_, request);
    if (!issued.ok()) throw std::runtime_error(issued.error().ToString());
    return *issued;
  }
  std::string Write(const std::string& name, const std::string& text) const {
    std::filesystem::path path = dir_ / name;
    std::ofstream(path) << text;
    std::filesystem::permissions(
        path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return path.string();
  }

  std::filesystem::path dir_;
  tls::Authority ca_;
  std::string ca_file_;
  std::shared_ptr<const net::TlsClientConfig> client_;
};

// A floor member's options: plain http without `tls`.
test::EtcdServer::Options FloorMember(const FloorTls* tls, const std::string& name,
                                      const std::string& ip) {
  return tls ? tls->Member(name, ip) : test::EtcdServer::Options{.name = name, .ip = ip};
}

// The floor's own etcd client options: with `tls`, its client certificate.
etcd::Client::Options FloorClient(const FloorTls* tls, etcd::Client::Options options = {}) {
  if (tls) options.tls = tls->client();
  return options;
}

std::vector<std::unique_ptr<test::EtcdServer>> StaticCluster(const std::filesystem::path& dir,
                                                             int size, int first_host,
                                                             const FloorTls* tls = nullptr) {
  std::vector<std::unique_ptr<test::EtcdServer>> servers;
  std::vector<const test::EtcdServer*> refs;
  for (int i = 0; i < size; ++i) {
    servers.push_back(std::make_unique<test::EtcdServer>(
        FloorMember(tls, fmt::format("f{}", i + 1), fmt::format("127.0.0.{}", first_host + i)),
        dir));
    refs.push_back(servers.back().get());
  }
  std::string initial = test::EtcdServer::InitialCluster(refs);
  for (auto& s : servers) {
    if (auto st = s->Launch(initial, true); !st.ok()) throw std::runtime_error(st.error().message);
  }
  for (auto& s : servers) {
    if (auto st = s->WaitUntilHealthy(seconds(60)); !st.ok()) {
      throw std::runtime_error(st.error().message + "\n" + s->LogTail());
    }
  }
  return servers;
}

double BootstrapFloor(int size, Tls tls) {
  test::TempDir dir("em-bench-floor");
  std::optional<FloorTls> pki;
  if (tls == Tls::kOn) pki.emplace(dir.path());
  auto t0 = Clock::now();
  auto servers = StaticCluster(dir.path(), size, test::AgentHostBase(), pki ? &*pki : nullptr);
  return Since(t0);
}

// Retries `call` (an etcd membership change) every 20 ms until it succeeds.
template <typename T>
T Retry(boost::asio::io_context& io, const std::function<void(etcd::Callback<T>)>& call) {
  auto deadline = Clock::now() + seconds(120);
  while (true) {
    Result<T> r = etcd::Await<T>(io, call);
    if (r.ok()) return *r;
    if (Clock::now() > deadline) throw std::runtime_error(r.error().ToString());
    std::this_thread::sleep_for(milliseconds(20));
  }
}

// Adds a learner through `voter`, starts it, promotes it; returns when the promote succeeded.
void JoinLearner(boost::asio::io_context& io, etcd::Client& voter, test::EtcdServer& joiner) {
  auto added = Retry<etcd::MemberAddResponse>(
      io, [&](auto cb) { voter.MemberAdd({joiner.peer_url()}, /*as_learner=*/true, cb); });
  std::string initial;
  for (const auto& m : added.members) {
    if (m.id == added.member.id || m.name.empty() || m.peer_urls.empty()) continue;
    initial += m.name + "=" + m.peer_urls.front() + ",";
  }
  initial += joiner.config().InitialClusterEntry();
  if (auto s = joiner.JoinExisting(initial); !s.ok()) throw std::runtime_error(s.error().message);
  Retry<etcd::MemberListResponse>(io, [&](auto cb) { voter.MemberPromote(added.member.id, cb); });
}

double WaitHealthy(std::vector<test::EtcdServer*> servers) {
  for (auto* s : servers) {
    if (auto st = s->WaitUntilHealthy(seconds(60)); !st.ok()) {
      throw std::runtime_error(st.error().message);
    }
  }
  return 0;
}

// Asks the members at `endpoints` who leads until one of them names a leader among them; returns
// that leader's index.
size_t WaitForLeader(boost::asio::io_context& io, const std::vector<HostPort>& endpoints,
                     const std::vector<uint64_t>& ids, const FloorTls* tls) {
  auto deadline = Clock::now() + seconds(60);
  etcd::Client::Options quick = FloorClient(tls);
  quick.request_timeout = milliseconds(200);
  while (Clock::now() < deadline) {
    for (const auto& endpoint : endpoints) {
      etcd::Client client(io, endpoint, quick);
      auto st = etcd::Await<etcd::StatusResponse>(io, [&](auto cb) { client.Status(cb); });
      if (!st.ok()) continue;
      for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] == st->leader) return i;
      }
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  throw std::runtime_error("the survivors elected no leader");
}

// The heal done by hand on bare etcd, as fast as etcd accepts each step: kill the leader or a
// follower; once the survivors have a leader, remove the dead member through it (a proposal made
// while there is no leader is lost: each attempt is short, and "not found" means an earlier one
// applied), add a learner, start it, promote it; until the three are healthy. Timed from the kill.
double HealFloor(Victim kind, Tls tls = Tls::kOff) {
  test::TempDir dir("em-bench-floor");
  std::optional<FloorTls> pki;
  if (tls == Tls::kOn) pki.emplace(dir.path());
  const FloorTls* floor_tls = pki ? &*pki : nullptr;
  int base = test::AgentHostBase();
  auto servers = StaticCluster(dir.path(), 3, base, floor_tls);
  std::this_thread::sleep_for(seconds(6));  // as the system run: past etcd's 5 s window
  boost::asio::io_context io;
  etcd::Client first(io, servers[0]->client_endpoint(), FloorClient(floor_tls));
  auto list = etcd::Await<etcd::MemberListResponse>(io, [&](auto cb) { first.MemberList(cb); });
  auto status = etcd::Await<etcd::StatusResponse>(io, [&](auto cb) { first.Status(cb); });
  if (!list.ok() || !status.ok()) throw std::runtime_error("the floor cluster does not answer");
  size_t victim = 0;
  std::vector<uint64_t> ids(servers.size());
  for (const auto& m : list->members) {
    for (size_t i = 0; i < servers.size(); ++i) {
      if (m.name == servers[i]->name()) ids[i] = m.id;
    }
  }
  for (size_t i = 0; i < servers.size(); ++i) {
    if ((ids[i] == status->leader) == (kind == Victim::kLeader)) victim = i;
  }
  std::vector<test::EtcdServer*> survivors;
  std::vector<HostPort> endpoints;
  std::vector<uint64_t> survivor_ids;
  for (size_t i = 0; i < servers.size(); ++i) {
    if (i == victim) continue;
    survivors.push_back(servers[i].get());
    endpoints.push_back(servers[i]->client_endpoint());
    survivor_ids.push_back(ids[i]);
  }
  servers[victim]->Kill();
  auto t0 = Clock::now();
  etcd::Client::Options short_attempts = FloorClient(floor_tls);
  short_attempts.request_timeout = milliseconds(500);
  etcd::Client leader(io, endpoints[WaitForLeader(io, endpoints, survivor_ids, floor_tls)],
                      short_attempts);
  Retry<bool>(io, [&](etcd::Callback<bool> cb) {
    leader.MemberRemove(ids[victim], [cb](Result<etcd::MemberListResponse> r) {
      if (r.ok() || r.error().code == ErrorCode::kNotFound) return cb(true);
      cb(r.error());
    });
  });
  test::EtcdServer joiner(FloorMember(floor_tls, "f4", fmt::format("127.0.0.{}", base + 3)),
                          dir.path());
  JoinLearner(io, leader, joiner);
  survivors.push_back(&joiner);
  WaitHealthy(survivors);
  return Since(t0);
}

// The restart-in-place floor: a bare etcd follower killed and started again on its own data dir
// by hand, timed from the kill until all three are healthy.
double RestartInPlaceFloor() {
  test::TempDir dir("em-bench-floor");
  auto servers = StaticCluster(dir.path(), 3, test::AgentHostBase());
  std::this_thread::sleep_for(seconds(6));  // as the system run: past etcd's 5 s window
  boost::asio::io_context io;
  etcd::Client first(io, servers[0]->client_endpoint(), FloorClient(nullptr));
  auto status = etcd::Await<etcd::StatusResponse>(io, [&](auto cb) { first.Status(cb); });
  if (!status.ok()) throw std::runtime_error("the floor cluster does not answer");
  std::vector<const test::EtcdServer*> refs;
  for (const auto& server : servers) refs.push_back(server.get());
  // A follower: the second member, unless it leads (then the third).
  size_t victim = 1;
  etcd::Client second(io, servers[1]->client_endpoint(), FloorClient(nullptr));
  auto own = etcd::Await<etcd::StatusResponse>(io, [&](auto cb) { second.Status(cb); });
  if (own.ok() && own->header.member_id == status->leader) victim = 2;
  servers[victim]->Kill();
  auto t0 = Clock::now();
  if (auto st = servers[victim]->Launch(test::EtcdServer::InitialCluster(refs), false); !st.ok()) {
    throw std::runtime_error(st.error().message);
  }
  std::vector<test::EtcdServer*> all;
  for (auto& server : servers) all.push_back(server.get());
  WaitHealthy(all);
  return Since(t0);
}

// Two learners added, started and promoted by hand, one at a time: 3 -> 5.
double ResizeFloor() {
  test::TempDir dir("em-bench-floor");
  int base = test::AgentHostBase();
  auto servers = StaticCluster(dir.path(), 3, base);
  std::this_thread::sleep_for(seconds(6));  // as the system run: past etcd's 5 s window
  boost::asio::io_context io;
  etcd::Client voter(io, servers[0]->client_endpoint());
  auto t0 = Clock::now();
  std::vector<test::EtcdServer*> all;
  for (auto& s : servers) all.push_back(s.get());
  for (int i = 0; i < 2; ++i) {
    servers.push_back(std::make_unique<test::EtcdServer>(
        test::EtcdServer::Options{.name = fmt::format("g{}", i + 1),
                                  .ip = fmt::format("127.0.0.{}", base + 3 + i)},
        dir.path()));
    JoinLearner(io, voter, *servers.back());
    all.push_back(servers.back().get());
  }
  WaitHealthy(all);
  return Since(t0);
}

// A rolling restart by hand with etcdctl's operations: for each member, followers first and the
// leader last, a successor added as a learner, started and promoted; leadership moved to it when
// the member leads; the member removed and stopped.
double RolloutFloor() {
  test::TempDir dir("em-bench-floor");
  int base = test::AgentHostBase();
  auto servers = StaticCluster(dir.path(), 3, base);
  std::this_thread::sleep_for(seconds(6));
  boost::asio::io_context io;
  auto id_of = [&](etcd::Client& client) {
    return Retry<etcd::StatusResponse>(io, [&](auto cb) { client.Status(cb); });
  };
  etcd::Client first(io, servers[0]->client_endpoint());
  uint64_t leader = id_of(first).leader;
  std::vector<size_t> order;
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < servers.size(); ++i) {
    etcd::Client c(io, servers[i]->client_endpoint());
    ids.push_back(id_of(c).header.member_id);
  }
  for (size_t i = 0; i < 3; ++i) {
    if (ids[i] != leader) order.push_back(i);
  }
  for (size_t i = 0; i < 3; ++i) {
    if (ids[i] == leader) order.push_back(i);
  }
  auto t0 = Clock::now();
  std::vector<std::unique_ptr<test::EtcdServer>> successors;
  size_t host = 3;  // the spare host, then each old member's, as the scheduler does
  for (size_t n = 0; n < order.size(); ++n) {
    size_t old = order[n];
    // Ask a member that stays (the leader while it stays, else a successor).
    test::EtcdServer* via = old == order.back() && !successors.empty()
                                ? successors.front().get()
                                : servers[order.back()].get();
    etcd::Client voter(io, via->client_endpoint());
    successors.push_back(std::make_unique<test::EtcdServer>(
        test::EtcdServer::Options{.name = fmt::format("r{}", n + 1),
                                  .ip = fmt::format("127.0.0.{}", base + host)},
        dir.path()));
    host = old;
    JoinLearner(io, voter, *successors.back());
    etcd::Client successor(io, successors.back()->client_endpoint());
    uint64_t successor_id = id_of(successor).header.member_id;
    if (ids[old] == leader) {
      etcd::Client current(io, servers[old]->client_endpoint());
      Retry<etcd::ResponseHeader>(io, [&](auto cb) { current.MoveLeader(successor_id, cb); });
    }
    etcd::Client remover(io, successors.back()->client_endpoint());
    Retry<etcd::MemberListResponse>(io, [&](auto cb) { remover.MemberRemove(ids[old], cb); });
    servers[old]->Stop();
  }
  std::vector<test::EtcdServer*> all;
  for (auto& s : successors) all.push_back(s.get());
  WaitHealthy(all);
  return Since(t0);
}

double ReseedFloor() {
  test::TempDir dir("em-bench-floor");
  int base = test::AgentHostBase();
  auto servers = StaticCluster(dir.path(), 3, base);
  servers[0]->Kill();
  servers[1]->Kill();
  auto t0 = Clock::now();
  servers[2]->Stop();
  if (auto s = servers[2]->RestartForcingNewCluster(); !s.ok()) {
    throw std::runtime_error(s.error().message);
  }
  boost::asio::io_context io;
  etcd::Client voter(io, servers[2]->client_endpoint());
  std::vector<std::unique_ptr<test::EtcdServer>> joiners;
  for (int i = 0; i < 2; ++i) {
    joiners.push_back(std::make_unique<test::EtcdServer>(
        test::EtcdServer::Options{.name = fmt::format("g{}", i + 1),
                                  .ip = fmt::format("127.0.0.{}", base + 3 + i)},
        dir.path()));
    JoinLearner(io, voter, *joiners.back());
  }
  WaitHealthy({servers[2].get(), joiners[0].get(), joiners[1].get()});
  return Since(t0);
}

// ---- Supervision overhead -------------------------------------------------------------------

struct ProcessUse {
  double cpu_seconds = 0;
  double rss_mb = 0;
};

ProcessUse Use(int pid) {
  ProcessUse use;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  if (close == std::string::npos) return use;
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> f{std::istream_iterator<std::string>(rest), {}};
  if (f.size() > 22) {
    double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    use.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;  // utime, stime
    use.rss_mb = std::stod(f[21]) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / 1048576.0;
  }
  return use;
}

std::vector<int> ChildrenOf(int parent) {
  std::vector<int> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back(std::stoi(name));
  }
  return out;
}

struct Supervision {
  ProcessUse executor_idle, etcd_idle, executor_load, etcd_load;
  uint64_t writes = 0;
};

std::string Comm(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

// Sums the CPU used over `window` and the RSS at its end of everything the agents started for
// the members, split into etcd itself and the rest (the executors, and any shell Mesos put in
// between): the cost of supervision.
std::pair<ProcessUse, ProcessUse> Measure(System& system, milliseconds window) {
  std::vector<int> supervisors, etcds, pending = system.cluster().ProcessIds();
  while (!pending.empty()) {
    int pid = pending.back();
    pending.pop_back();
    (Comm(pid) == "etcd" ? etcds : supervisors).push_back(pid);
    for (int child : ChildrenOf(pid)) pending.push_back(child);
  }
  auto sum = [](const std::vector<int>& pids) {
    ProcessUse total;
    for (int pid : pids) {
      ProcessUse u = Use(pid);
      total.cpu_seconds += u.cpu_seconds;
      total.rss_mb += u.rss_mb;
    }
    return total;
  };
  ProcessUse e0 = sum(supervisors), d0 = sum(etcds);
  system.RunFor(window);
  ProcessUse e1 = sum(supervisors), d1 = sum(etcds);
  return {{e1.cpu_seconds - e0.cpu_seconds, e1.rss_mb},
          {d1.cpu_seconds - d0.cpu_seconds, d1.rss_mb}};
}

// The fastest sequential write load one client gives: one put at a time, each on a connection of
// its own (as etcd::Client makes them: with TLS every put pays a handshake), to the next member
// after a failure. The same load with TLS on and off.
class WriteLoad {
 public:
  WriteLoad(boost::asio::io_context& io, std::vector<HostPort> endpoints,
            etcd::Client::Options options)
      : io_(io), endpoints_(std::move(endpoints)), options_(std::move(options)) {}
  ~WriteLoad() { *alive_ = false; }

  void Start() {
    running_ = true;
    Next();
  }
  void Stop() { running_ = false; }
  uint64_t acknowledged() const { return acknowledged_; }

 private:
  void Next() {
    if (!running_ || endpoints_.empty()) return;
    auto client =
        std::make_shared<etcd::Client>(io_, endpoints_[endpoint_ % endpoints_.size()], options_);
    client->Put(fmt::format("/bench/{:010}", ++writes_), "v",
                [this, alive = alive_, client](Result<etcd::PutResponse> r) {
                  if (!*alive) return;
                  if (r.ok()) {
                    ++acknowledged_;
                  } else {
                    ++endpoint_;
                  }
                  Next();
                });
  }

  boost::asio::io_context& io_;
  std::vector<HostPort> endpoints_;
  etcd::Client::Options options_;
  bool running_ = false;
  uint64_t writes_ = 0, acknowledged_ = 0;
  size_t endpoint_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

Supervision MeasureSupervision(boost::asio::io_context& io, milliseconds window, Tls tls) {
  System system(io, 3, seconds(240), "", 0, tls);
  system.StartScheduler();
  if (!system.RunUntil([&] { return system.AtSize(3); }, 180)) {
    throw std::runtime_error("no cluster to measure");
  }
  system.RunFor(seconds(2));
  Supervision out;
  std::tie(out.executor_idle, out.etcd_idle) = Measure(system, window);
  etcd::Client::Options client;
  client.request_timeout = milliseconds(2000);
  if (tls == Tls::kOn) client.tls = system.ClientTls();
  WriteLoad load(io, system.ClientEndpoints(), client);
  load.Start();
  std::tie(out.executor_load, out.etcd_load) = Measure(system, window);
  load.Stop();
  out.writes = load.acknowledged();
  system.RunFor(milliseconds(500));
  return out;
}

void PrintSupervision(const std::string& title, const Supervision& sup) {
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0; };
  std::printf("%-42s %9s %9s %7s\n", title.c_str(), "executors", "etcds", "ratio");
  std::printf("%-42s %9.1f %9.1f %7.3f\n", "  memory idle, MB RSS", sup.executor_idle.rss_mb,
              sup.etcd_idle.rss_mb, ratio(sup.executor_idle.rss_mb, sup.etcd_idle.rss_mb));
  std::printf("%-42s %9.2f %9.2f %7.3f\n", "  CPU idle, s", sup.executor_idle.cpu_seconds,
              sup.etcd_idle.cpu_seconds,
              ratio(sup.executor_idle.cpu_seconds, sup.etcd_idle.cpu_seconds));
  std::printf("%-42s %9.2f %9.2f %7.3f\n",
              fmt::format("  CPU under load ({} writes), s", sup.writes).c_str(),
              sup.executor_load.cpu_seconds, sup.etcd_load.cpu_seconds,
              ratio(sup.executor_load.cpu_seconds, sup.etcd_load.cpu_seconds));
  std::printf("%-42s %9.1f %9.1f %7.3f\n", "  memory under load, MB RSS", sup.executor_load.rss_mb,
              sup.etcd_load.rss_mb, ratio(sup.executor_load.rss_mb, sup.etcd_load.rss_mb));
}

nlohmann::json SupervisionJson(const Supervision& sup) {
  return {{"executor_idle_rss_mb", sup.executor_idle.rss_mb},
          {"etcd_idle_rss_mb", sup.etcd_idle.rss_mb},
          {"executor_idle_cpu_s", sup.executor_idle.cpu_seconds},
          {"etcd_idle_cpu_s", sup.etcd_idle.cpu_seconds},
          {"executor_load_cpu_s", sup.executor_load.cpu_seconds},
          {"etcd_load_cpu_s", sup.etcd_load.cpu_seconds},
          {"executor_load_rss_mb", sup.executor_load.rss_mb},
          {"etcd_load_rss_mb", sup.etcd_load.rss_mb},
          {"writes", sup.writes}};
}

}  // namespace
}  // namespace etcd_mesos::bench

int main(int argc, char** argv) {
  using namespace etcd_mesos::bench;
  CLI::App app{
      "system_bench: bootstrap, heal and reseed through etcd-mesos-local with the real scheduler, "
      "executor and etcd, each against a bare-etcd floor measured in the same run; and the "
      "executors' CPU and memory against their etcds'."};
  int runs = 3;
  bool quick = false;
  std::string out = "system_bench.json";
  app.add_option("--runs", runs, "Runs of each figure and floor (the median is reported)")
      ->check(CLI::Range(1, 50))
      ->capture_default_str();
  app.add_flag("--quick", quick,
               "Only bootstrap of 3, heal and failover (TLS: bootstrap of 3 and a follower's "
               "heal), with short supervision windows");
  app.add_option("--out", out, "Where to write the JSON results")->capture_default_str();
  bool verbose = false;
  app.add_flag("--verbose", verbose, "Log what the scheduler and the local cluster do (info)");
  std::vector<std::string> only;
  app.add_option("--only", only,
                 "Measure only these figures (bootstrap, heal, failover, resize, rollout, reseed, "
                 "supervision, bootstrap-tls, heal-tls, supervision-tls, restart-in-place; "
                 "host-death only when named)")
      ->check(CLI::IsMember({"bootstrap", "heal", "failover", "resize", "rollout", "reseed",
                             "supervision", "bootstrap-tls", "heal-tls", "supervision-tls",
                             "restart-in-place", "host-death"}))
      ->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(verbose ? spdlog::level::info : spdlog::level::warn);

  auto named = [&](const std::string& figure) {
    return std::find(only.begin(), only.end(), figure) != only.end();
  };
  auto wanted = [&](const std::string& figure) { return only.empty() || named(figure); };
  boost::asio::io_context io;
  std::vector<Figure> figures;
  try {
    for (int size : !wanted("bootstrap") ? std::vector<int>{}
                    : quick              ? std::vector<int>{3}
                                         : std::vector<int>{3, 5}) {
      Figure f{fmt::format("bootstrap of {} -> {} healthy voters", size, size)};
      for (int i = 0; i < runs; ++i) {
        f.floors.push_back(BootstrapFloor(size, Tls::kOff));
        f.runs.push_back(Bootstrap(io, size, Tls::kOff));
      }
      figures.push_back(f);
    }
    if (wanted("bootstrap-tls")) {
      Figure f{Titled("bootstrap of 3 -> 3 healthy voters", Tls::kOn)};
      for (int i = 0; i < runs; ++i) {
        f.floors.push_back(BootstrapFloor(3, Tls::kOn));
        f.runs.push_back(Bootstrap(io, 3, Tls::kOn));
      }
      figures.push_back(f);
    }
    // With TLS only a follower's heal: a leader's is the same steps behind an election, which TLS
    // does not change.
    std::vector<std::pair<Victim, Tls>> heals;
    if (wanted("heal")) heals = {{Victim::kFollower, Tls::kOff}, {Victim::kLeader, Tls::kOff}};
    if (wanted("heal-tls")) heals.push_back({Victim::kFollower, Tls::kOn});
    for (auto [kind, tls] : heals) {
      Figure heal{
          Titled(fmt::format("kill -9 of the {} -> 3 healthy voters", VictimName(kind)), tls)};
      for (int i = 0; i < runs; ++i) {
        heal.floors.push_back(HealFloor(kind, tls));
        std::map<std::string, double> phases;
        heal.runs.push_back(Heal(io, kind, phases, tls));
        for (const auto& [phase, s] : phases) heal.breakdown[phase].push_back(s);
      }
      figures.push_back(heal);
    }
    if (wanted("restart-in-place")) {
      // Goal: at most twice the floor plus one allocation interval (1 s), the offer's wait.
      Figure restart{"durable follower killed -> restarted in place, 3 healthy voters"};
      for (int i = 0; i < runs; ++i) {
        restart.floors.push_back(RestartInPlaceFloor());
        restart.runs.push_back(RestartInPlace(io));
      }
      figures.push_back(restart);
    }
    if (named("host-death")) {
      Figure death{"durable follower's host dies (defaults) -> replaced, 3 healthy voters"};
      const double replace_after =
          std::chrono::duration<double>(etcd_mesos::scheduler::CoreConfig{}.replace_after).count();
      for (int i = 0; i < runs; ++i) {
        death.floors.push_back(replace_after + HealFloor(Victim::kFollower));
        std::map<std::string, double> phases;
        death.runs.push_back(HostDeath(io, phases));
        for (const auto& [phase, s] : phases) death.breakdown[phase].push_back(s);
      }
      figures.push_back(death);
    }
    if (wanted("failover")) {
      etcd_mesos::test::ZooKeeperServer zookeeper;
      if (auto s = zookeeper.Start(); !s.ok()) {
        throw std::runtime_error("ZooKeeper: " + s.error().ToString() + "\n" + zookeeper.LogTail());
      }
      Figure failover{"leader stops -> standby subscribed, reconciled"};
      Figure heal{"leader stops, follower killed -> 3 voters"};
      for (int i = 0; i < runs; ++i) {
        failover.floors.push_back(RestartFloor(io, zookeeper, i));
        heal.floors.push_back(HealFloor(Victim::kFollower));
        FailoverTimes t = Failover(io, zookeeper, i);
        failover.runs.push_back(t.failover);
        heal.runs.push_back(t.heal);
      }
      figures.push_back(failover);
      figures.push_back(heal);
    }
    if (!quick && wanted("resize")) {
      Figure resize{"grow 3 -> 5 healthy voters"};
      for (int i = 0; i < runs; ++i) {
        resize.floors.push_back(ResizeFloor());
        resize.runs.push_back(Resize(io));
      }
      figures.push_back(resize);
    }
    if (!quick && wanted("rollout")) {
      Figure rollout{"rolling restart of 3 -> all replaced"};
      for (int i = 0; i < runs; ++i) {
        rollout.floors.push_back(RolloutFloor());
        rollout.runs.push_back(Rollout(io));
      }
      figures.push_back(rollout);
    }
    if (!quick && wanted("reseed")) {
      Figure reseed{"reseed decision -> 3 healthy voters"};
      for (int i = 0; i < runs; ++i) {
        reseed.floors.push_back(ReseedFloor());
        reseed.runs.push_back(Reseed(io));
      }
      figures.push_back(reseed);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "system_bench: %s\n", e.what());
    return 1;
  }
  std::optional<Supervision> sup, sup_tls;
  try {
    milliseconds window = quick ? seconds(2) : seconds(10);
    if (wanted("supervision")) sup = MeasureSupervision(io, window, Tls::kOff);
    if (wanted("supervision-tls")) sup_tls = MeasureSupervision(io, window, Tls::kOn);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "system_bench: supervision: %s\n", e.what());
    return 1;
  }

  nlohmann::json json;
  std::printf("%-42s %9s %15s %9s %7s\n", "figure (seconds)", "median", "min..max", "floor",
              "ratio");
  for (const auto& f : figures) {
    double m = Median(f.runs), fl = Median(f.floors);
    auto [lo, hi] = std::minmax_element(f.runs.begin(), f.runs.end());
    std::printf("%-42s %9.2f %7.2f..%-7.2f %9.2f %7.2f\n", f.name.c_str(), m, *lo, *hi, fl,
                fl > 0 ? m / fl : 0);
    nlohmann::json entry = {{"median_s", m},
                            {"runs_s", f.runs},
                            {"floor_median_s", fl},
                            {"floor_runs_s", f.floors},
                            {"ratio", fl > 0 ? m / fl : 0}};
    for (const auto& [phase, v] : f.breakdown) {
      std::printf("    %-38s %9.2f\n", phase.c_str(), Median(v));
      entry["breakdown_median_s"][phase] = Median(v);
    }
    json[f.name] = entry;
  }
  if (sup) {
    PrintSupervision("supervision (3 members)", *sup);
    json["supervision"] = SupervisionJson(*sup);
  }
  if (sup_tls) {
    PrintSupervision("supervision with TLS (3 members)", *sup_tls);
    json["supervision_tls"] = SupervisionJson(*sup_tls);
  }
  std::ofstream(out) << json.dump(2) << "\n";
  return 0;
}
