// etcd-mesos-devcluster: a real etcd cluster on this machine, built the way the scheduler builds
// one. Member 1 starts as a new one-member cluster; every other member is added as a learner
// through etcd::Client, started with --initial-cluster-state=existing, and promoted once etcd
// says it is in sync. Members live on 127.0.0.2, .3, ... with free ports, data and logs under
// --work-dir. It prints the membership and the etcdctl commands to try, then runs until SIGINT
// or SIGTERM and stops every etcd it started (they also die with it: parent-death signal).
//
// This is what scripts/run-local starts until etcd-mesos-local and the scheduler exist.
//
// Threading: one thread. Blocking waits run the io_context (etcd::Await), so a signal that
// arrives during start-up is seen and ends it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>

#include "common/duration.h"
#include "common/logging.h"
#include "common/result.h"
#include "etcd/client.h"
#include "etcd/launch.h"

namespace etcd_mesos {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

struct Flags {
  int size = 3;
  std::string work_dir;
  std::string first_ip = "127.0.0.2";
  std::string etcd = "etcd";
  std::string start_timeout = "60s";
  std::string log_level = "info";
};

// A port the kernel considers free on `ip` right now (bind to 0, read it back, release it).
Result<uint16_t> FreePort(const std::string& ip) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return MakeError(ErrorCode::kInternal, "socket: {}", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  ::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    auto error = MakeError(ErrorCode::kUnavailable, "cannot bind {}: {}", ip, std::strerror(errno));
    ::close(fd);
    return error;
  }
  ::close(fd);
  return static_cast<uint16_t>(ntohs(addr.sin_port));
}

// One etcd process we started.
struct Member {
  etcd::MemberConfig config;
  std::filesystem::path log;
  pid_t pid = -1;
  uint64_t id = 0;

  HostPort client_endpoint() const { return {config.ip, config.client_port}; }

  bool Running() {
    if (pid <= 0) return false;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      return false;
    }
    return true;
  }
};

Status Spawn(Member& m) {
  std::vector<std::string> argv = etcd::MemberCommandLine(m.config);
  int log = ::open(m.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) {
    return MakeError(ErrorCode::kInternal, "cannot open {}: {}", m.log.string(),
                     std::strerror(errno));
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log);
    return MakeError(ErrorCode::kInternal, "fork: {}", std::strerror(errno));
  }
  if (pid == 0) {
    // No orphans: the member dies with us, even if we are killed with SIGKILL.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    // Its own process group, so that the terminal's Ctrl-C reaches us only and we stop members
    // in order.
    ::setpgid(0, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(log);
  m.pid = pid;
  spdlog::info("started {} (pid {}): client {} peer {}, log {}", m.config.name, pid,
               m.config.ClientUrl(), m.config.PeerUrl(), m.log.string());
  return OkStatus();
}

void StopAll(std::vector<Member>& members) {
  // One at a time, last started first: a stopping leader hands leadership to a member that is
  // still running instead of waiting on peers that are going away too, and the cluster keeps
  // its quorum for as long as it can.
  for (auto it = members.rbegin(); it != members.rend(); ++it) {
    Member& m = *it;
    if (!m.Running()) continue;
    auto t0 = Clock::now();
    ::kill(m.pid, SIGTERM);
    while (m.Running() && Clock::now() - t0 < std::chrono::seconds(10)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (m.Running()) {
      spdlog::warn("{} did not stop within 10 s: SIGKILL", m.config.name);
      ::kill(m.pid, SIGKILL);
      ::waitpid(m.pid, nullptr, 0);
      m.pid = -1;
    }
    spdlog::info("stopped {} in {}", m.config.name, FormatDuration(Clock::now() - t0));
  }
}

class DevCluster {
 public:
  DevCluster(asio::io_context& io, const Flags& flags, std::filesystem::path work_dir,
             Duration start_timeout)
      : io_(io), flags_(flags), work_dir_(std::move(work_dir)), start_timeout_(start_timeout) {}
  ~DevCluster() { StopAll(members_); }

  void RequestStop() { stopping_ = true; }
  bool stopping() const { return stopping_; }
  std::vector<Member>& members() { return members_; }

  Status Start() {
    auto base = asio::ip::make_address_v4(flags_.first_ip).to_uint();
    for (int i = 0; i < flags_.size; ++i) {
      if (stopping_) return MakeError(ErrorCode::kCancelled, "stopped during start-up");
      Member m;
      m.config.name = fmt::format("etcd-{}", i + 1);
      m.config.ip = asio::ip::address_v4(base + static_cast<uint32_t>(i)).to_string();
      m.config.etcd_binary = flags_.etcd;
      auto client_port = FreePort(m.config.ip);
      if (!client_port.ok()) return client_port.error();
      auto peer_port = FreePort(m.config.ip);
      if (!peer_port.ok()) return peer_port.error();
      m.config.client_port = *client_port;
      m.config.peer_port = *peer_port;
      auto dir = work_dir_ / m.config.name;
      std::filesystem::create_directories(dir);
      m.config.data_dir = (dir / "data").string();
      m.log = dir / "etcd.log";
      members_.push_back(std::move(m));
      Status s = i == 0 ? StartFirst(members_.back()) : AddLearnerAndPromote(members_.back());
      if (!s.ok()) return s;
    }
    return OkStatus();
  }

  Result<etcd::MemberListResponse> List() {
    etcd::Client client(io_, members_.front().client_endpoint());
    return etcd::Await<etcd::MemberListResponse>(io_, [&](auto cb) { client.MemberList(cb); });
  }

 private:
  Status StartFirst(Member& m) {
    m.config.new_cluster = true;
    m.config.initial_cluster = m.config.InitialClusterEntry();
    auto t0 = Clock::now();
    if (auto s = Spawn(m); !s.ok()) return s;
    if (auto s = WaitForHealth(m, /*need_healthy=*/true); !s.ok()) return s;
    spdlog::info("{} is a healthy one-member cluster after {}", m.config.name,
                 FormatDuration(Clock::now() - t0));
    return OkStatus();
  }

  // The scheduler's way to grow a cluster: add as a learner (not counted in quorum while it
  // catches up), start it, promote it once etcd agrees it is in sync.
  Status AddLearnerAndPromote(Member& m) {
    etcd::Client voter(io_, members_.front().client_endpoint());
    auto t0 = Clock::now();
    Result<etcd::MemberAddResponse> added = Error{};
    // The leader refuses changes until it has seen every voter connected for 5 s
    // ("unhealthy cluster", kUnavailable): wait that out.
    std::string last_reason;
    while (true) {
      added = etcd::Await<etcd::MemberAddResponse>(
          io_, [&](auto cb) { voter.MemberAdd({m.config.PeerUrl()}, /*as_learner=*/true, cb); });
      if (added.ok() || !added.error().retryable()) break;
      if (added.error().message != last_reason) {
        spdlog::info("member add of {} not possible yet, retrying: {}", m.config.name,
                     added.error().message);
        last_reason = added.error().message;
      }
      if (auto s = Pause(t0); !s.ok()) return s.error().Context("adding " + m.config.name);
    }
    if (!added.ok()) return added.error().Context("adding " + m.config.name);
    m.id = added->member.id;
    auto t_added = Clock::now();
    spdlog::info("added {} as learner {:x}", m.config.name, m.id);

    std::string initial_cluster;
    for (const auto& other : added->members) {
      if (other.id == m.id || other.peer_urls.empty()) continue;
      if (other.name.empty()) {
        return MakeError(ErrorCode::kInternal,
                         "member {:x} never started: cannot name it in "
                         "--initial-cluster",
                         other.id);
      }
      initial_cluster += other.name + "=" + other.peer_urls.front() + ",";
    }
    m.config.initial_cluster = initial_cluster + m.config.InitialClusterEntry();
    m.config.new_cluster = false;
    auto t_start = Clock::now();
    if (auto s = Spawn(m); !s.ok()) return s;
    if (auto s = WaitForHealth(m, /*need_healthy=*/false); !s.ok()) return s;

    int refusals = 0;
    while (true) {
      auto promoted = etcd::Await<etcd::MemberListResponse>(
          io_, [&](auto cb) { voter.MemberPromote(m.id, cb); });
      if (promoted.ok()) break;
      // Only "not in sync yet" and "unreachable" are worth waiting for; any other refusal is a
      // real problem and ends the start-up.
      bool not_in_sync = promoted.error().code == ErrorCode::kRefused &&
                         promoted.error().message.find("in sync") != std::string::npos;
      if (!not_in_sync && !promoted.error().retryable()) {
        return promoted.error().Context("promoting " + m.config.name);
      }
      ++refusals;
      if (auto s = Pause(t_start); !s.ok()) return s.error().Context("promoting " + m.config.name);
    }
    spdlog::info(
        "promoted {}: learner add accepted -> voter in {} (process start -> voter {}, {} promote "
        "attempts refused; {} waiting for the leader to accept the add)",
        m.config.name, FormatDuration(Clock::now() - t_added),
        FormatDuration(Clock::now() - t_start), refusals, FormatDuration(t_added - t0));
    return OkStatus();
  }

  // A short pause between attempts that still notices signals and the start-up deadline.
  Status Pause(Clock::time_point since) {
    if (Clock::now() - since > start_timeout_) {
      return MakeError(ErrorCode::kUnavailable, "gave up after {}", FormatDuration(start_timeout_));
    }
    io_.restart();
    io_.run_for(std::chrono::milliseconds(100));
    if (stopping_) return MakeError(ErrorCode::kCancelled, "stopped during start-up");
    return OkStatus();
  }

  Status WaitForHealth(Member& m, bool need_healthy) {
    etcd::Client client(io_, m.client_endpoint(), {.request_timeout = std::chrono::seconds(2)});
    auto t0 = Clock::now();
    std::string last = "no answer";
    while (true) {
      if (!m.Running()) {
        return MakeError(ErrorCode::kUnavailable, "{} exited at start; see {}", m.config.name,
                         m.log.string());
      }
      auto health = etcd::Await<etcd::HealthResponse>(io_, [&](auto cb) { client.Health(cb); });
      if (health.ok() && (health->healthy || !need_healthy)) return OkStatus();
      last = health.ok() ? health->reason : health.error().message;
      if (auto s = Pause(t0); !s.ok()) {
        return s.error().Context(fmt::format("waiting for {} ({})", m.config.name, last));
      }
    }
  }

  asio::io_context& io_;
  const Flags& flags_;
  std::filesystem::path work_dir_;
  Duration start_timeout_;
  std::vector<Member> members_;
  bool stopping_ = false;
};

void PrintCluster(const etcd::MemberListResponse& list, const std::vector<Member>& members,
                  const std::filesystem::path& work_dir) {
  std::string endpoints;
  for (const auto& m : members) {
    if (!endpoints.empty()) endpoints += ",";
    endpoints += m.config.ClientUrl();
  }
  std::printf("\netcd cluster %016lx is up with %zu members (work dir %s):\n",
              static_cast<unsigned long>(list.header.cluster_id), list.members.size(),
              work_dir.c_str());
  for (const auto& m : list.members) {
    std::printf("  %016lx  %-8s %-8s peer %s  client %s\n", static_cast<unsigned long>(m.id),
                m.name.c_str(), m.is_learner ? "learner" : "voter",
                m.peer_urls.empty() ? "-" : m.peer_urls.front().c_str(),
                m.client_urls.empty() ? "-" : m.client_urls.front().c_str());
  }
  std::printf(
      "\nTry:\n"
      "  ETCDCTL_API=3 etcdctl --endpoints=%s member list -w table\n"
      "  ETCDCTL_API=3 etcdctl --endpoints=%s endpoint status -w table\n"
      "  ETCDCTL_API=3 etcdctl --endpoints=%s put greeting hello\n"
      "  ETCDCTL_API=2 etcdctl -C %s cluster-health\n"
      "\nCtrl-C (SIGINT) or SIGTERM stops every member.\n\n",
      endpoints.c_str(), endpoints.c_str(), endpoints.c_str(), endpoints.c_str());
  std::fflush(stdout);
}

int Run(int argc, char** argv) {
  Flags flags;
  CLI::App app{
      "Starts a real etcd cluster on 127.0.0.x the way the etcd-mesos scheduler does "
      "(one member, then learners added, started and promoted), until SIGINT/SIGTERM."};
  app.add_option("--size", flags.size, "number of members (1-9)")->capture_default_str();
  app.add_option("--work-dir", flags.work_dir,
                 "where data and logs go (default: a fresh temporary directory, removed at exit)");
  app.add_option("--first-ip", flags.first_ip,
                 "loopback IP of member 1; member i takes the i-1th next address")
      ->capture_default_str();
  app.add_option("--etcd", flags.etcd, "etcd binary")->capture_default_str();
  app.add_option("--start-timeout", flags.start_timeout,
                 "how long one member may take to be added, started and promoted")
      ->capture_default_str();
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  auto usage_error = [](const std::string& message) {
    std::fprintf(stderr, "etcd-mesos-devcluster: %s\n", message.c_str());
    return 2;
  };
  if (auto s = SetUpLogging("etcd-mesos-devcluster", flags.log_level); !s.ok()) {
    return usage_error(s.error().message);
  }
  if (flags.size < 1 || flags.size > 9) {
    return usage_error(fmt::format("--size {} is not between 1 and 9", flags.size));
  }
  boost::system::error_code ec;
  auto first = asio::ip::make_address_v4(flags.first_ip, ec);
  if (ec || (first.to_uint() >> 24) != 127 || (first.to_uint() & 0xff) == 0 ||
      (first.to_uint() & 0xff) + static_cast<uint32_t>(flags.size) > 255) {
    return usage_error(
        fmt::format("--first-ip '{}' must be a 127.x.y.z address with room for {} members after it",
                    flags.first_ip, flags.size));
  }
  auto start_timeout = ParseDuration(flags.start_timeout);
  if (!start_timeout.ok()) {
    return usage_error("--start-timeout: " + start_timeout.error().message);
  }

  std::filesystem::path work_dir;
  bool remove_work_dir = false;
  if (flags.work_dir.empty()) {
    std::string templ =
        (std::filesystem::temp_directory_path() / "etcd-mesos-devcluster-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) {
      spdlog::error("cannot create a temporary directory: {}", std::strerror(errno));
      return 1;
    }
    work_dir = templ;
    remove_work_dir = true;
  } else {
    work_dir = std::filesystem::absolute(flags.work_dir);
    std::error_code fs_ec;
    std::filesystem::create_directories(work_dir, fs_ec);
    if (fs_ec) return usage_error("--work-dir: " + fs_ec.message());
  }

  asio::io_context io;
  int exit_code = 0;
  {
    DevCluster cluster(io, flags, work_dir, *start_timeout);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& error, int signal) {
      if (error) return;
      spdlog::info("signal {}: stopping", signal);
      // Loops check this between steps; stopping the io_context here would cut an Await short.
      cluster.RequestStop();
    });

    Status started = cluster.Start();
    if (!started.ok()) {
      if (started.error().code == ErrorCode::kCancelled) {
        spdlog::info("stopped during start-up");
      } else {
        spdlog::error("start-up failed: {}", started.error());
        exit_code = 1;
      }
    } else {
      auto list = cluster.List();
      if (!list.ok()) {
        spdlog::error("member list failed: {}", list.error());
        exit_code = 1;
      } else {
        PrintCluster(*list, cluster.members(), work_dir);
        // Serve until a signal; check now and then that the members are still there.
        while (!cluster.stopping()) {
          io.restart();
          io.run_for(std::chrono::seconds(1));
          for (auto& m : cluster.members()) {
            if (m.pid > 0 && !m.Running()) {
              spdlog::warn("{} exited; see {}", m.config.name, m.log.string());
            }
          }
        }
      }
    }
    // ~DevCluster stops every member.
  }
  if (remove_work_dir) {
    std::error_code fs_ec;
    std::filesystem::remove_all(work_dir, fs_ec);
  }
  return exit_code;
}

}  // namespace
}  // namespace etcd_mesos

int main(int argc, char** argv) { return etcd_mesos::Run(argc, argv); }
