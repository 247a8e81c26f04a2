#include "scheduler/shell/teardown_command.h"

#include <chrono>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "mesos/master_detector.h"
#include "net/http.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/shell/admin.h"
#include "scheduler/shell/admin_token.h"

namespace etcd_mesos::scheduler::shell {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kMasterDetectionTimeout = 15s;
constexpr auto kPollInterval = 1s;
// How long the command follows a teardown: the scheduler's own bound, and time to tear the
// framework down after it.
constexpr auto kFollowFor = SchedulerCore::kTeardownWait + 60s;

// The leading master: the flag's address, or the one ZooKeeper names.
Result<HostPort> LeadingMaster(const ShellConfig& shell) {
  if (shell.master.direct) return *shell.master.direct;
  boost::asio::io_context io;
  std::optional<HostPort> leader;
  mesos_client::MasterDetector detector(io, shell.master, {},
                                        [&](const std::optional<HostPort>& l) {
                                          leader = l;
                                          io.stop();
                                        });
  if (Status s = detector.Start(); !s.ok()) return s.error();
  io.run_for(kMasterDetectionTimeout);
  detector.Stop();
  if (!leader) {
    return MakeError(
        ErrorCode::kUnavailable, "no leading Mesos master at {} within {} s", shell.master_spec,
        std::chrono::duration_cast<std::chrono::seconds>(kMasterDetectionTimeout).count());
  }
  return *leader;
}

// GET `target` at `url`'s endpoint, following one redirect (a master that does not lead, a
// standby scheduler): the body, or an error naming what answered.
Result<net::HttpResponse> Call(net::Verb verb, HttpUrl url, const net::Headers& headers) {
  for (int redirects = 0;; ++redirects) {
    net::HttpRequest request;
    request.method = verb;
    request.endpoint = url.endpoint;
    request.target = url.path;
    request.headers = headers;
    request.timeout = 10s;
    if (url.scheme == "https") {
      auto tls = net::TlsClientConfig::SystemTrust();
      if (!tls.ok()) return tls.error();
      request.tls = *tls;
    }
    auto response = net::HttpFetchSync(request);
    if (!response.ok()) return response.error().Context(url.ToString());
    auto location = response->Header("Location");
    if (response->status != 307 || !location || redirects > 0) return response;
    auto next = ResolveLocation(url, *location);
    if (!next.ok()) return next.error().Context("the redirect from " + url.ToString());
    url = *next;
  }
}

struct Framework {
  std::string id;
  std::string webui_url;
  bool active = false;
};

// The master's frameworks named `name` (several: older instances completed), and whether the
// framework `id` is among the completed ones.
struct MasterView {
  std::vector<Framework> frameworks;
  bool completed = false;
};

Result<MasterView> AskMaster(const ShellConfig& shell, const HostPort& master,
                             const std::string& name, const std::string& id) {
  net::Headers headers;
  if (shell.principal) {
    headers.emplace_back("Authorization", net::BasicAuthorization(*shell.principal, shell.secret));
  }
  auto response = Call(net::Verb::get, HttpUrl{"http", master, "/master/frameworks"}, headers);
  if (!response.ok()) return response.error();
  if (response->status != 200) {
    return MakeError(ErrorCode::kUnavailable, "the master at {} answered {} to /master/frameworks",
                     master.ToString(), response->status);
  }
  MasterView view;
  try {
    json j = json::parse(response->body);
    for (const auto& f : j.value("frameworks", json::array())) {
      if (f.value("name", "") != name) continue;
      view.frameworks.push_back(
          {f.value("id", ""), f.value("webui_url", ""), f.value("active", false)});
    }
    for (const auto& f : j.value("completed_frameworks", json::array())) {
      view.completed |= !id.empty() && f.value("id", "") == id;
    }
  } catch (const json::exception& e) {
    return MakeError(ErrorCode::kInvalidArgument, "the master's /master/frameworks: {}", e.what());
  }
  return view;
}

// The token to send: --admin-token-file's, else the one the scheduler keeps in --state-dir.
Result<std::string> AdminToken(const ShellConfig& shell) {
  if (!shell.admin_token.empty()) return shell.admin_token;
  auto path = AdminTokenPath(shell.state_dir);
  auto held = ReadAdminTokenFile(path);
  if (!held.ok()) return held.error();
  if (held->empty()) {
    return MakeError(ErrorCode::kNotFound,
                     "no admin token: give --admin-token-file, or run this where the scheduler "
                     "keeps it ({})",
                     path.string());
  }
  return *held;
}

// One line of progress from the scheduler's /stats, "" when it does not answer.
std::string Progress(const HttpUrl& admin) {
  HttpUrl stats = admin;
  stats.path = "/stats";
  auto response = Call(net::Verb::get, stats, {});
  if (!response.ok() || response->status != 200) return "";
  try {
    json j = json::parse(response->body);
    return fmt::format(
        "{} task(s) still to end, {} volume(s) still to release, {} released ({} release(s) "
        "awaiting an offer that confirms them)",
        j.value("teardown_tasks_left", 0), j.value("teardown_volumes_left", 0),
        j.value("teardown_volumes_released", 0), j.value("teardown_releases_unconfirmed", 0));
  } catch (const json::exception&) {
    return "";
  }
}

}  // namespace

std::string TeardownUsage() {
  return "etcd-mesos-scheduler teardown [flags]: stop the cluster for good.\n"
         "\n"
         "Kills every member, destroys the members' persistent volumes and unreserves their\n"
         "resources (with --role other than *), removes the scheduler's state from its store\n"
         "and tears the framework down at the master. The backups in --backup-dir are kept.\n"
         "A scheduler started afterwards with the same --cluster-name starts a new, EMPTY\n"
         "cluster.\n"
         "\n"
         "Give the flags the scheduler runs with (at least --master, --cluster-name, the store\n"
         "and the admin token's). If that scheduler is running, it is asked (POST /teardown)\n"
         "and followed until the framework is gone; if not, this command registers as the\n"
         "framework and tears it down itself (its admin server then listens on a port of its\n"
         "own, printed in the log). Exit status 0 once torn down.\n"
         "\n";
}

TeardownOutcome TeardownThroughRunningScheduler(const SchedulerFlags& flags, std::ostream& out) {
  const ShellConfig& shell = flags.shell;
  const std::string& name = flags.core.framework_name;
  auto master = LeadingMaster(shell);
  if (!master.ok()) {
    out << "teardown: " << master.error().message << "\n";
    return {true, 1};
  }
  auto view = AskMaster(shell, *master, name, "");
  if (!view.ok()) {
    out << "teardown: " << view.error().message << "\n";
    return {true, 1};
  }
  const Framework* running = nullptr;
  for (const auto& f : view->frameworks) {
    if (f.active) running = &f;
  }
  if (running == nullptr) {
    out << "teardown: no scheduler of " << name << " is connected to the master at "
        << master->ToString() << "; tearing down from here\n";
    return {false, 0};
  }
  Framework framework = *running;
  auto admin = ParseHttpUrl(framework.webui_url);
  if (!admin.ok()) {
    out << "teardown: framework " << framework.id << " has no usable web UI URL ("
        << framework.webui_url << "): " << admin.error().message << "\n";
    return {true, 1};
  }
  net::Headers headers;
  if (!shell.admin_insecure) {
    auto token = AdminToken(shell);
    if (!token.ok()) {
      out << "teardown: " << token.error().message << "\n";
      return {true, 2};
    }
    headers.emplace_back("Authorization", "Bearer " + *token);
  }
  HttpUrl teardown = *admin;
  teardown.path = "/teardown?confirm=" + shell.cluster_name;
  out << "teardown: asking the scheduler of " << name << " (framework " << framework.id << ") at "
      << admin->endpoint.ToString() << "\n";
  auto answer = Call(net::Verb::post, teardown, headers);
  if (!answer.ok()) {
    out << "teardown: " << answer.error().message << "\n";
    return {true, 1};
  }
  out << "teardown: " << answer->status << " " << answer->body;
  if (answer->status != 202) return {true, 1};

  std::string last;
  auto deadline = std::chrono::steady_clock::now() + kFollowFor;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(kPollInterval);
    std::string progress = Progress(*admin);
    if (!progress.empty() && progress != last) out << "teardown: " << progress << "\n";
    if (!progress.empty()) last = progress;
    auto now = AskMaster(shell, *master, name, framework.id);
    if (!now.ok()) continue;  // a master failover: ask again
    if (now->completed) {
      out << "teardown: framework " << framework.id
          << " is torn down at the master; the scheduler's log says what it released\n";
      return {true, 0};
    }
  }
  out << "teardown: framework " << framework.id << " is still registered after "
      << std::chrono::duration_cast<std::chrono::seconds>(kFollowFor).count()
      << " s; see the scheduler's log and GET /stats\n";
  return {true, 1};
}

}  // namespace etcd_mesos::scheduler::shell
