// etcd-mesos-scheduler: the Mesos framework that runs one etcd cluster. Flags and wiring only;
// see src/scheduler/shell/shell.h (the I/O) and src/scheduler/core/scheduler_core.h (every
// decision). `etcd-mesos-scheduler teardown [flags]` stops the cluster for good
// (scheduler/shell/teardown_command.h). Exit codes: 0 after SIGINT/SIGTERM or a teardown, 1 when
// it cannot go on (a busy admin port, an unreadable state record), 2 for bad flags.
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "common/logging.h"
#include "scheduler/shell/flags.h"
#include "scheduler/shell/shell.h"
#include "scheduler/shell/teardown_command.h"

extern char** environ;

int main(int argc, char** argv) {
  using namespace etcd_mesos;                    // NOLINT: main() wiring
  using namespace etcd_mesos::scheduler::shell;  // NOLINT

  std::vector<std::string> args(argv + 1, argv + argc);
  bool teardown = !args.empty() && args[0] == "teardown";
  if (teardown) args.erase(args.begin());
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::string program_dir = ec ? "." : self.parent_path().string();

  auto parsed = ParseFlags(args, env, program_dir);
  if (!parsed.ok()) {
    std::cerr << "etcd-mesos-scheduler: " << parsed.error().message << "\n";
    return 2;
  }
  if (parsed->help) {
    std::cout << (teardown ? TeardownUsage() : "") << parsed->text;
    return 0;
  }
  SchedulerFlags flags = std::move(parsed->flags);
  if (auto s = SetUpLogging("etcd-mesos-scheduler", flags.shell.log_level); !s.ok()) {
    std::cerr << "etcd-mesos-scheduler: --log-level: " << s.error().message << "\n";
    return 2;
  }
  for (const auto& warning : parsed->warnings) spdlog::warn("{}", warning);
  if (auto s = LoadFiles(flags.shell); !s.ok()) {
    std::cerr << "etcd-mesos-scheduler: " << s.error().message << "\n";
    return 2;
  }
  if (!flags.core.single_member_per_agent) {
    spdlog::warn(
        "--single-instance-per-slave=false: one host loss may take several members and "
        "the quorum with them");
  }

  if (teardown) {
    TeardownOutcome outcome = TeardownThroughRunningScheduler(flags, std::cerr);
    if (outcome.handled) return outcome.exit_code;
    // None runs: this process registers as the framework and tears it down itself, on a port
    // of its own (the scheduler's may be taken by whatever else runs here).
    flags.shell.admin_port = 0;
  }

  boost::asio::io_context io;
  int code = 0;
  bool stopping = false;
  std::unique_ptr<SchedulerShell> shell;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& e, int signal) {
    if (e) return;
    // No TEARDOWN: Mesos keeps the members running for the failover timeout, and a restarted
    // scheduler takes them back.
    spdlog::info("signal {}: stopping; the members keep running (failover timeout {} s)", signal,
                 flags.shell.failover_timeout_s);
    stopping = true;
    if (shell) shell->Stop();
    io.stop();
  });
  // A leader that lost its leadership (its ZooKeeper session expired) has stopped acting; a new
  // shell contends again, as a standby behind whoever leads now, or as the leader if none does.
  for (bool first = true; !stopping; first = false) {
    bool lost = false;
    SchedulerShell::Options options;
    options.on_fatal = [&](const Error& error) {
      std::cerr << "etcd-mesos-scheduler: " << error.ToString() << "\n";
      code = 1;
      stopping = true;
      io.stop();
    };
    options.on_lost_leadership = [&](const Error&) {
      lost = true;
      io.stop();
    };
    options.teardown = teardown;
    options.on_torn_down = [&](const std::string& summary) {
      std::cerr << "etcd-mesos-scheduler: " << summary << "\n";
      stopping = true;
      io.stop();
    };
    shell = std::make_unique<SchedulerShell>(io, flags, options);
    if (auto s = shell->Start(); !s.ok()) {
      std::cerr << "etcd-mesos-scheduler: " << s.error().ToString() << "\n";
      return 1;
    }
    if (first && !teardown) {
      HostPort admin = shell->admin_address();
      std::string host = flags.shell.admin_bind_all ? flags.shell.address : admin.host;
      std::string url = flags.shell.AdminScheme() + "://" + HostPort{host, admin.port}.ToString();
      std::cerr << "etcd-mesos-scheduler: framework " << flags.core.framework_name << ", master "
                << flags.shell.master_spec << "\n  status page  " << url << "/\n  members      "
                << url << "/members\n  stats        " << url << "/stats\n";
    }
    io.run();
    shell->Stop();
    shell.reset();
    if (!lost) break;
    spdlog::warn("contending again for the leadership of {}", flags.core.framework_name);
    io.restart();
  }
  return code;
}
