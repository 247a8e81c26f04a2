#include "testing/local_system.h"

#include <sys/wait.h>

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "local/resources.h"
#include "testing/ports.h"
#include "testing/process.h"
#include "testing/workload.h"

namespace etcd_mesos::test {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::pair<int, std::string> RunCommand(const std::string& command) { return RunShell(command); }

LocalSystem::LocalSystem(boost::asio::io_context& io, fs::path dir)
    : io_(io), dir_(std::move(dir)) {}

LocalSystem::~LocalSystem() { Stop(); }

void LocalSystem::Start(const LocalSystemOptions& o) {
  local::LocalClusterOptions options;
  options.agents = o.size + 1;
  options.resources = *local::ParseResources("cpus:4;mem:4096;disk:4096;ports:[31000-31999]");
  options.first_agent_host = AgentHostBase();
  options.work_dir = dir_ / "mesos";
  options.master.port = 0;
  options.master.allocation_interval = std::chrono::milliseconds(200);
  options.master.agent_unreachable_timeout = std::chrono::seconds(5);
  options.agent.status_update_retry_min = std::chrono::milliseconds(500);
  cluster_ = std::make_unique<local::LocalCluster>(io_, options);
  auto master = cluster_->Start();
  ASSERT_TRUE(master.ok()) << master.error();

  fs::path wrapper = WriteExecutorWrapper(dir_, o.executor_path);
  std::vector<std::string> args = {"--cluster-name=" + o.cluster_name,
                                   "--master=" + master->ToString(),
                                   "--state-dir=" + (dir_ / "state").string(),
                                   "--cluster-size=" + std::to_string(o.size),
                                   "--admin-port=" + std::to_string(FreePort()),
                                   "--cpu-limit=0.5",
                                   "--mem-limit=128",
                                   "--disk-limit=256",
                                   "--executor-bin=" + wrapper.string(),
                                   "--probe-interval=500ms",
                                   "--bootstrap-gather=2s"};
  args.insert(args.end(), o.extra_flags.begin(), o.extra_flags.end());
  auto parsed = scheduler::shell::ParseFlags(args, {{"USER", "root"}}, ".");
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  ASSERT_TRUE(scheduler::shell::LoadFiles(parsed->flags.shell).ok());
  flags_ = parsed->flags;
  flags_.core.dead_member_grace = o.dead_member_grace;
  StartScheduler();
}

void LocalSystem::StartScheduler() {
  scheduler::shell::SchedulerShell::Options options;
  options.on_fatal = [](const Error& e) { ADD_FAILURE() << "scheduler fatal: " << e; };
  options.client.backoff_min = std::chrono::milliseconds(100);
  options.client.backoff_max = std::chrono::milliseconds(500);
  scheduler_ = std::make_unique<scheduler::shell::SchedulerShell>(io_, flags_, options);
  Status s = scheduler_->Start();
  ASSERT_TRUE(s.ok()) << s.error();
}

void LocalSystem::StopScheduler() {
  if (scheduler_) scheduler_->Stop();
  scheduler_.reset();
}

void LocalSystem::Stop() {
  StopScheduler();
  if (cluster_) cluster_->Shutdown();
  cluster_.reset();
  io_.run_for(std::chrono::milliseconds(200));
}

bool LocalSystem::RunUntil(const std::function<bool()>& done, int seconds) {
  auto deadline = Clock::now() + std::chrono::seconds(seconds);
  while (!done() && Clock::now() < deadline) io_.run_for(std::chrono::milliseconds(20));
  return done();
}

bool LocalSystem::AtSize(int size) const {
  if (!scheduler_ || !core().healthy()) return false;
  int voters = 0;
  for (const auto& [name, m] : core().state().members) {
    if (m.task_state == mesos::TASK_RUNNING && !m.learner && m.reachable) ++voters;
  }
  return voters == size;
}

std::string LocalSystem::Endpoints() const {
  std::string out;
  for (const auto& [name, m] : core().state().members) {
    if (m.task_state != mesos::TASK_RUNNING) continue;
    if (!out.empty()) out += ",";
    out += m.ClientUrl();
  }
  return out;
}

std::pair<int, std::string> LocalSystem::Etcdctl(const std::string& args,
                                                 int command_timeout_s) const {
  std::string tls;
  if (flags_.shell.tls != "off") {
    // The scheduler's own client certificate, which it keeps as files for its etcdctl.
    etcd::TlsFiles files = scheduler::shell::SchedulerTlsFiles(flags_.shell.state_dir);
    tls = " --cacert=" + files.ca_file + " --cert=" + files.cert_file + " --key=" + files.key_file;
  }
  return RunCommand("ETCDCTL_API=3 etcdctl --dial-timeout=3s --command-timeout=" +
                    std::to_string(command_timeout_s) + "s --endpoints=" + Endpoints() + tls + " " +
                    args);
}

Result<etcd::Client::Options> LocalSystem::EtcdOptions() const {
  etcd::Client::Options options;
  if (flags_.shell.tls == "off") return options;
  etcd::TlsFiles files = scheduler::shell::SchedulerTlsFiles(flags_.shell.state_dir);
  auto tls = net::TlsClientConfig::FromFiles(files.ca_file, files.cert_file, files.key_file);
  if (!tls.ok()) return tls.error();
  options.tls = *tls;
  return options;
}

void LocalSystem::KillMember(const std::string& name) {
  auto state = cluster_->master().StateJson();
  for (const auto& t : state["frameworks"][0]["tasks"]) {
    if (t["name"].get<std::string>().rfind(name + " ", 0) == 0) {
      Status s = cluster_->KillExecutor(t["executor_id"].get<std::string>());
      ASSERT_TRUE(s.ok()) << s.error();
      return;
    }
  }
  FAIL() << "no task for " << name;
}

}  // namespace etcd_mesos::test
