// etcd-mesos-local: a single-machine Mesos (one master, N agents on 127.0.0.2, .3, ...) speaking
// the real v1 scheduler and executor HTTP APIs, with fault injection. Flags and wiring only; see
// src/local/cluster.h.
#include <sys/prctl.h>

#include <charconv>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <utility>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <nlohmann/json.hpp>

#include "common/flags.h"
#include "common/logging.h"
#include "etcd/client.h"
#include "local/cluster.h"
#include "local/resources.h"
#include "net/http.h"

namespace {

using namespace etcd_mesos;  // NOLINT: main() wiring

constexpr int kUsageError = 2;

Result<std::map<std::string, std::string>> ReadCredentials(const std::string& path) {
  std::ifstream in(path);
  if (!in) return MakeError(ErrorCode::kInvalidArgument, "--credentials: cannot read {}", path);
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.contains("credentials") || !j["credentials"].is_array()) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        "--credentials {}: expected {{\"credentials\":[{{\"principal\":..,\"secret\":..}}]}}",
        path);
  }
  std::map<std::string, std::string> out;
  for (const auto& c : j["credentials"]) {
    if (!c.is_object() || !c.contains("principal") || !c["principal"].is_string() ||
        !c.contains("secret") || !c["secret"].is_string()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "--credentials {}: every entry needs string 'principal' and 'secret'", path);
    }
    out[c["principal"]] = c["secret"];
  }
  return out;
}

// The key as Mesos reads it: the whole file, trailing newline included.
Result<std::string> ReadSecretKey(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(ErrorCode::kInvalidArgument, "--jwt-secret-key: cannot read {}", path);
  std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (key.empty())
    return MakeError(ErrorCode::kInvalidArgument, "--jwt-secret-key {} is empty", path);
  std::error_code ec;
  auto perms = std::filesystem::status(path, ec).permissions();
  if (!ec && (perms & std::filesystem::perms::others_all) != std::filesystem::perms::none) {
    spdlog::warn(
        "Permissions on executor secret key file '{}' are too open; it is recommended "
        "that your key file is NOT accessible by others",
        path);
  }
  return key;
}

// The last byte of --first-agent-ip: agents live on 127.0.0.<it>, 127.0.0.<it + 1>, ...
Result<int> FirstAgentHost(const std::string& ip, int agents) {
  constexpr std::string_view kPrefix = "127.0.0.";
  int last = 0;
  const char* begin = ip.data() + std::min(ip.size(), kPrefix.size());
  auto [end, ec] = std::from_chars(begin, ip.data() + ip.size(), last);
  if (!ip.starts_with(kPrefix) || ec != std::errc() || end != ip.data() + ip.size() || last < 2) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--first-agent-ip '{}' is not a loopback address 127.0.0.N with N >= 2", ip);
  }
  if (last + agents - 1 > 254) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--first-agent-ip {} leaves no room for {} agents below 127.0.0.255", ip,
                     agents);
  }
  return last;
}

// `etcd-mesos-local fault ...`: the fault endpoints from the command line.
int RunFault(const std::string& master, const std::vector<std::string>& words) {
  auto hp = ParseHostPort(master);
  if (!hp.ok()) {
    std::cerr << "etcd-mesos-local fault: --master: " << hp.error().message << "\n";
    return kUsageError;
  }
  std::string target;
  if (words.size() >= 2 && (words[0] == "stop-agent" || words[0] == "crash-agent" ||
                            words[0] == "partition-agent" || words[0] == "heal-agent")) {
    std::string action = words[0].substr(0, words[0].find('-'));
    target = "/faults/agents/" + words[1] + "/" + action;
  } else if (words.size() >= 2 && words[0] == "restart-agent") {
    bool wipe = words.size() >= 3 && words[2] == "--wipe";
    target = "/faults/agents/" + words[1] + "/restart" + (wipe ? "?wipe=1" : "");
  } else if (!words.empty() && words[0] == "restart-master") {
    target = "/faults/master/restart";
    if (words.size() >= 2) target += "?agents_after_ms=" + words[1];
    if (words.size() >= 3) target += "&session_lives_ms=" + words[2];
  } else if (words.size() >= 2 && words[0] == "kill-executor") {
    target = "/faults/executors/" + words[1] + "/kill";
  } else {
    std::cerr << "usage: etcd-mesos-local fault [--master=HOST:PORT] "
                 "stop-agent N | crash-agent N | restart-agent N [--wipe] | partition-agent N | "
                 "heal-agent N | kill-executor ID | restart-master [AGENTS_AFTER_MS "
                 "[SESSION_LIVES_MS]]\n";
    return kUsageError;
  }
  net::HttpRequest req;
  req.method = net::Verb::post;
  req.endpoint = *hp;
  req.target = target;
  auto r = net::HttpFetchSync(req);
  if (!r.ok()) {
    std::cerr << "etcd-mesos-local fault: " << r.error().message << "\n";
    return 1;
  }
  std::cout << r->body << (r->body.ends_with('\n') ? "" : "\n");
  return r->status == 200 ? 0 : 1;
}

// `etcd-mesos-local fill-quota`: writes random values to a cluster until etcd refuses a write
// with "database space exceeded" (its NOSPACE alarm), to rehearse the guide's "Disk full".
// An https endpoint takes etcdctl's --cacert, --cert and --key (or its ETCDCTL_ variables).
struct FillQuotaFlags {
  std::string endpoints, cacert, cert, key;
  int value_kib = 500, max_writes = 10000;
};

int RunFillQuota(const FillQuotaFlags& flags) {
  const int value_kib = flags.value_kib, max_writes = flags.max_writes;
  auto usage = [](const Error& e) {
    std::cerr << "etcd-mesos-local fill-quota: " << e.message << "\n";
    return kUsageError;
  };
  etcd::Client::Options options;
  if (!flags.cacert.empty()) {
    auto tls = net::TlsClientConfig::FromFiles(flags.cacert, flags.cert,
                                               flags.key.empty() ? flags.cert : flags.key);
    if (!tls.ok()) return usage(tls.error());
    options.tls = *tls;
  }
  auto endpoint =
      etcd::ClientEndpoint(flags.endpoints.substr(0, flags.endpoints.find(',')), options);
  if (!endpoint.ok()) return usage(endpoint.error().Context("--endpoints"));
  boost::asio::io_context io;
  etcd::Client client(io, *endpoint, options);
  std::string value(static_cast<size_t>(value_kib) * 1024, 'x');
  uint64_t state = 0x9e3779b97f4a7c15ull;  // random-looking bytes defeat bbolt's page reuse
  uint64_t written = 0;
  for (int i = 0; i < max_writes; ++i) {
    for (char& c : value) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;
      c = static_cast<char>('a' + state % 26);
    }
    auto put = etcd::Await<etcd::PutResponse>(io, [&](auto cb) {
      client.Put("/etcd-mesos-local/fill/" + std::to_string(i % 8), value, cb);
    });
    if (!put.ok() && put.error().message.find("database space exceeded") != std::string::npos) {
      std::cout << "NOSPACE after " << i << " writes (" << written / 1024
                << " KiB): " << put.error().message << "\n";
      return 0;
    }
    if (!put.ok()) {
      std::cerr << "etcd-mesos-local fill-quota: write " << i << ": " << put.error().message
                << "\n";
      return 1;
    }
    written += value.size();
  }
  std::cerr << "etcd-mesos-local fill-quota: " << max_writes << " writes (" << written / 1024
            << " KiB) did not fill the quota\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using std::chrono::milliseconds;
  FlagSet flags(
      "etcd-mesos-local",
      "etcd-mesos-local: a single-machine Mesos (one master and N agents, each agent its own host "
      "on 127.0.0.2, 127.0.0.3, ... by default) speaking the real Mesos v1 scheduler and executor "
      "HTTP APIs, with fault injection at POST /faults/... . Put a command after `--` (e.g. the "
      "scheduler) to start it once the cluster is up, with MESOS_MASTER set.");
  flags.app().set_version_flag("--version", "etcd-mesos-local 0.1.0 (Mesos API 1.11)");
  local::LocalClusterOptions options;
  local::MasterOptions& master = options.master;
  local::AgentOptions& agent = options.agent;
  std::string resources = "cpus:4;mem:4096;disk:4096;ports:[31000-31999]";
  std::string work_dir, first_agent_ip = "127.0.0.2", credentials, log_level = "info", zk;
  std::string jwt_secret_key;
  std::vector<std::string> command;
  flags.Add("--agents", &options.agents, "Number of agents (1..250)").Range(1, 250);
  flags
      .Add("--resources", &resources,
           "Each agent's resources, e.g. cpus:4;mem:4096;disk:4096;ports:[31000-31999]")
      .Check([&](const std::string& text) -> Problem {
        auto parsed = local::ParseResources(text);
        if (!parsed.ok()) return parsed.error().message;
        options.resources = *parsed;
        return {};
      });
  flags.Add("--work-dir", &work_dir,
            "Work dir for the master and the agents' sandboxes (default: a new directory under "
            "$TMPDIR)");
  flags.Add("--ip", &master.ip, "Master's IP address");
  flags.Add("--port", &master.port, "Master's HTTP port");
  flags.Add("--first-agent-ip", &first_agent_ip,
            "Loopback address of agent 1; agent N is the N-1th address after it (two "
            "etcd-mesos-local on one machine need disjoint ranges)");
  // The timers of the master and the agents; none may be zero.
  for (auto [name, dest, help] :
       {std::tuple{"--heartbeat-interval", &master.heartbeat_interval, "HEARTBEAT event interval"},
        std::tuple{"--allocation-interval", &master.allocation_interval,
                   "How often offers are made"},
        std::tuple{"--agent-unreachable-timeout", &master.agent_unreachable_timeout,
                   "Silence after which an agent is unreachable (Mesos: 15s x 5 pings)"},
        std::tuple{"--status-update-retry", &agent.status_update_retry_min,
                   "First resend delay of an unacknowledged status update (doubles to 10m)"},
        std::tuple{"--executor-registration-timeout", &agent.executor_registration_timeout,
                   "Time an executor has to subscribe"},
        std::tuple{"--executor-shutdown-grace-period", &agent.executor_shutdown_grace_period,
                   "SIGTERM to SIGKILL grace"}}) {
    flags.Add(name, dest, help).AtLeast(milliseconds(1));
  }
  flags
      .Add("--zk", &zk,
           "zk://host:port[,host:port]/path: the master contends for leadership there as Mesos "
           "masters do (a json.info_ node), and frameworks find it there (MESOS_MASTER is this "
           "URL); needed to see a master failover as on a real Mesos cluster")
      .Check([&](const std::string& text) -> Problem {
        if (text.empty()) return {};
        auto url = ParseZkUrl(text);
        if (!url.ok()) return url.error().message;
        master.zk = *url;
        return {};
      });
  flags
      .Add("--zk-session-timeout", &master.zk_session_timeout,
           "The master's ZooKeeper session timeout: how long a killed master keeps its leadership")
      .AtLeast(milliseconds(1));
  flags.Add("--master-recovery", &master.recovery,
            "With --zk: how long an elected master answers SUBSCRIBE with 503 \"Master has not "
            "finished recovery\"");
  flags.Add("--credentials", &credentials,
            "JSON file {\"credentials\":[{\"principal\":..,\"secret\":..}]}: require HTTP Basic "
            "framework authentication");
  // Mesos's agent flags, by their names: tokens are issued with a key, and required only when
  // asked, so the rollout Mesos documents (issue first, require later) can be rehearsed.
  flags.Add("--jwt-secret-key,--executor-secret-key", &jwt_secret_key,
            "File whose contents sign a JWT (HS256) for every executor the agents launch, given "
            "to it in MESOS_EXECUTOR_AUTHENTICATION_TOKEN (Mesos: --jwt_secret_key)");
  flags.Add("--authenticate-http-executors", &agent.authenticate_http_executors,
            "Calls to the agents' executor API need that token (Authorization: Bearer): else 401, "
            "and 403 for another executor's; needs --jwt-secret-key (Mesos: "
            "--authenticate_http_executors)");
  std::string executor_environment;
  flags.Add("--executor-environment-variables", &executor_environment,
            "JSON object of environment variables given to every executor, e.g. "
            "{\"SSL_CERT_FILE\":\"/etc/ssl/my-ca.pem\"} (Mesos: --executor_environment_variables)");
  flags.Add("--log-level", &log_level, "trace, debug, info, warn or error").Check(LogLevel);
  flags.app().add_option("command", command, "Command to start once the cluster is up (after --)");

  std::string fault_master = "127.0.0.1:5050";
  std::vector<std::string> fault_words;
  auto* fault = flags.app().add_subcommand(
      "fault",
      "Inject a fault into a running etcd-mesos-local: stop-agent N | crash-agent N | "
      "restart-agent N [--wipe] | partition-agent N | heal-agent N | kill-executor ID | "
      "restart-master [AGENTS_AFTER_MS [SESSION_LIVES_MS]]");
  fault->add_option("--master", fault_master, "The etcd-mesos-local master")->capture_default_str();
  fault->add_option("words", fault_words, "The fault and its argument")->required();
  fault->allow_extras(false);
  fault->prefix_command(false);

  FillQuotaFlags fill_flags;
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  fill_flags.cacert = env("ETCDCTL_CACERT");
  fill_flags.cert = env("ETCDCTL_CERT");
  fill_flags.key = env("ETCDCTL_KEY");
  auto* fill = flags.app().add_subcommand(
      "fill-quota",
      "Write random values to an etcd cluster until it refuses writes with its NOSPACE alarm "
      "(\"database space exceeded\"), to rehearse a full disk; keys /etcd-mesos-local/fill/0..7");
  fill->add_option("--endpoints", fill_flags.endpoints,
                   "A member's client URL (http://IP:PORT, or https://IP:PORT with --cacert)")
      ->required();
  fill->add_option("--cacert", fill_flags.cacert,
                   "CA bundle of an https cluster [$ETCDCTL_CACERT], as etcdctl's");
  fill->add_option("--cert", fill_flags.cert,
                   "Client certificate (with its key, as GET /client-cert gives it) "
                   "[$ETCDCTL_CERT]");
  fill->add_option("--key", fill_flags.key, "Its key, when a file of its own [$ETCDCTL_KEY]");
  fill->add_option("--value-kib", fill_flags.value_kib, "Size of each value written")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  fill->add_option("--max-writes", fill_flags.max_writes, "Give up (exit 1) after this many writes")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();

  auto fail = [](const Error& e) {
    std::cerr << "etcd-mesos-local: " << e.message << "\n";
    return kUsageError;
  };
  auto parsed = flags.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed.ok()) return fail(parsed.error());
  if (parsed->exit) {
    std::cout << parsed->text;
    return 0;
  }
  if (fault->parsed()) return RunFault(fault_master, fault_words);
  if (fill->parsed()) return RunFillQuota(fill_flags);

  if (Status s = SetUpLogging("etcd-mesos-local", log_level); !s.ok()) return fail(s.error());
  auto first_host = FirstAgentHost(first_agent_ip, options.agents);
  if (!first_host.ok()) return fail(first_host.error());
  options.first_agent_host = *first_host;
  if (work_dir.empty()) {
    std::string templ =
        (std::filesystem::temp_directory_path() / "etcd-mesos-local-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) {
      return fail(MakeError(ErrorCode::kUnavailable, "cannot create a work dir in $TMPDIR"));
    }
    work_dir = templ;
  }
  options.work_dir = std::filesystem::absolute(work_dir);
  if (!credentials.empty()) {
    auto creds = ReadCredentials(credentials);
    if (!creds.ok()) return fail(creds.error());
    master.credentials = *creds;
  }

  if (!executor_environment.empty()) {
    auto vars = nlohmann::json::parse(executor_environment, nullptr, /*allow_exceptions=*/false);
    if (vars.is_discarded() || !vars.is_object()) {
      return fail(MakeError(ErrorCode::kInvalidArgument,
                            "--executor-environment-variables must be a JSON object"));
    }
    for (const auto& [name, value] : vars.items()) {
      if (!value.is_string()) {
        return fail(MakeError(ErrorCode::kInvalidArgument,
                              "--executor-environment-variables: {} must be a string", name));
      }
      agent.executor_environment[name] = value.get<std::string>();
    }
  }
  if (!jwt_secret_key.empty()) {
    auto key = ReadSecretKey(jwt_secret_key);
    if (!key.ok()) return fail(key.error());
    agent.jwt_secret_key = *key;
  }
  if (agent.authenticate_http_executors && agent.jwt_secret_key.empty()) {
    return fail(MakeError(ErrorCode::kInvalidArgument,
                          "--jwt-secret-key must be given with --authenticate-http-executors"));
  }

  boost::asio::io_context io;
  local::LocalCluster cluster(io, options);
  auto bound = cluster.Start();
  if (!bound.ok()) {
    cluster.Shutdown();
    return fail(bound.error());
  }
  std::cout << "etcd-mesos-local: master at http://" << bound->ToString() << " with "
            << options.agents << " agents; work dir " << options.work_dir.string() << "\n"
            << "  frameworks: --master=" << (zk.empty() ? bound->ToString() : zk) << "\n"
            << "  web page:   http://" << bound->ToString() << "/\n"
            << "  faults:     etcd-mesos-local fault --master=" << bound->ToString()
            << " stop-agent 1\n"
            << std::flush;
  if (!command.empty()) {
    if (Status s = cluster.StartCommand(command); !s.ok()) {
      cluster.Shutdown();
      return fail(s.error());
    }
  }
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("{}: shutting down: stopping the command, every executor and its etcd",
                 signal == SIGINT ? "SIGINT" : "SIGTERM");
    cluster.Shutdown();
    io.stop();
  });
  io.run();
  return 0;
}
