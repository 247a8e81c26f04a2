#include "testing/etcd_server.h"

#include <signal.h>

#include <fstream>
#include <iterator>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <fmt/format.h>
#include <boost/asio/io_context.hpp>

#include "etcd/client.h"
#include "testing/ports.h"
#include "testing/process.h"

namespace etcd_mesos::test {

EtcdServer::EtcdServer(Options options, const std::filesystem::path& work_dir)
    : options_(std::move(options)) {
  auto dir = work_dir / options_.name;
  std::filesystem::create_directories(dir);
  config_.name = options_.name;
  config_.ip = options_.ip;
  config_.client_port = FreePort(options_.ip);
  config_.peer_port = FreePort(options_.ip);
  config_.data_dir = (dir / "data").string();
  config_.tls = options_.tls;
  log_file_ = dir / "etcd.log";
}

EtcdServer::~EtcdServer() { Stop(); }

std::string EtcdServer::InitialCluster(const std::vector<const EtcdServer*>& servers) {
  std::string out;
  for (const auto* s : servers) {
    if (!out.empty()) out += ",";
    out += s->config().InitialClusterEntry();
  }
  return out;
}

Status EtcdServer::Launch(const std::string& initial_cluster, bool new_cluster) {
  if (process_ && process_->Running()) {
    return MakeError(ErrorCode::kInternal, "etcd {} is already running", name());
  }
  config_.initial_cluster = initial_cluster;
  config_.new_cluster = new_cluster;
  process_ = std::make_unique<ChildProcess>(etcd::MemberCommandLine(config_), log_file_);
  return OkStatus();
}

Status EtcdServer::RestartForcingNewCluster() {
  if (process_ && process_->Running()) {
    return MakeError(ErrorCode::kInternal, "etcd {} is still running", name());
  }
  std::vector<std::string> argv = etcd::MemberCommandLine(config_);
  argv.push_back("--force-new-cluster");
  process_ = std::make_unique<ChildProcess>(argv, log_file_);
  return WaitUntilHealthy(options_.start_timeout);
}

Status EtcdServer::StartNewCluster() {
  if (auto s = Launch(config_.InitialClusterEntry(), true); !s.ok()) return s;
  return WaitUntilHealthy(options_.start_timeout);
}

Status EtcdServer::JoinExisting(const std::string& initial_cluster) {
  if (auto s = Launch(initial_cluster, false); !s.ok()) return s;
  // A learner is healthy too (it sees the leader), but answering is what "started" means here.
  return WaitUntilAnswering(options_.start_timeout);
}

Result<uint64_t> EtcdServer::AddAndJoin(const HostPort& voter, bool as_learner) {
  boost::asio::io_context io;
  etcd::Client client(io, voter, {.tls = options_.client_tls});
  // The leader refuses changes for a few seconds after a member (re)connects ("unhealthy
  // cluster", kUnavailable): retry those.
  Result<etcd::MemberAddResponse> added = Error{};
  test::WaitFor(
      [&] {
        added = etcd::Await<etcd::MemberAddResponse>(
            io, [&](auto cb) { client.MemberAdd({peer_url()}, as_learner, cb); });
        return added.ok() || !added.error().retryable();
      },
      options_.start_timeout);
  if (!added.ok()) return added.error().Context(fmt::format("adding {}", name()));
  std::string initial_cluster;
  for (const auto& m : added->members) {
    if (m.id == added->member.id || m.peer_urls.empty()) continue;
    if (m.name.empty()) {
      return MakeError(ErrorCode::kInternal, "member {:x} has not started: cannot name it", m.id);
    }
    initial_cluster += m.name + "=" + m.peer_urls.front() + ",";
  }
  initial_cluster += config_.InitialClusterEntry();
  if (auto s = JoinExisting(initial_cluster); !s.ok()) return s.error();
  return added->member.id;
}

Status EtcdServer::WaitUntilHealthy(std::chrono::milliseconds timeout) {
  return WaitFor(timeout, true);
}

Status EtcdServer::WaitUntilAnswering(std::chrono::milliseconds timeout) {
  return WaitFor(timeout, false);
}

Status EtcdServer::WaitFor(std::chrono::milliseconds timeout, bool need_healthy) {
  if (!process_) return MakeError(ErrorCode::kInternal, "etcd {} was not started", name());
  boost::asio::io_context io;
  etcd::Client client(io, client_endpoint(),
                      {.request_timeout = std::chrono::seconds(2), .tls = options_.client_tls});
  std::string last = "no answer yet";
  bool exited = false;
  bool ready = test::WaitFor(
      [&] {
        if (!process_->Running()) {
          exited = true;
          return true;
        }
        auto health = etcd::Await<etcd::HealthResponse>(io, [&](auto cb) { client.Health(cb); });
        if (health.ok() && (health->healthy || !need_healthy)) return true;
        last = health.ok() ? health->reason : health.error().ToString();
        return false;
      },
      timeout);
  if (exited) {
    return MakeError(ErrorCode::kUnavailable, "etcd {} exited at start:\n{}", name(), LogTail());
  }
  if (ready) return OkStatus();
  return MakeError(ErrorCode::kUnavailable, "etcd {} not {} within {} ms ({}):\n{}", name(),
                   need_healthy ? "healthy" : "answering", timeout.count(), last, LogTail());
}

void EtcdServer::Stop() {
  if (!process_) return;
  process_->Stop(std::chrono::seconds(10));
  process_.reset();
}

void EtcdServer::Kill() {
  if (!process_) return;
  process_->Kill(SIGKILL);
  process_->Wait();
  process_.reset();
}

bool EtcdServer::Running() { return process_ && process_->Running(); }

std::string EtcdServer::LogTail(size_t max_bytes) const {
  // The log outlives the process, so read the file rather than ask the process object.
  std::ifstream in(log_file_);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return all.size() > max_bytes ? all.substr(all.size() - max_bytes) : all;
}

}  // namespace etcd_mesos::test
