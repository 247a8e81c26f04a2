#include "scheduler/shell/flags.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "common/duration.h"

namespace etcd_mesos::scheduler::shell {

namespace {

namespace fs = std::filesystem;

// One flag: its names, the environment variables that may set it, its default, its help. Every
// value is taken as text and converted by us, so that a bad value from the command line and one
// from the environment get the same clear error, naming where it came from.
struct Spec {
  std::string names;              // CLI11 spelling: "--cluster-size"
  std::vector<std::string> envs;  // checked in order
  std::string fallback;           // default, as text ("" = none)
  std::string help;
  bool is_bool = false;
  std::string value;
  CLI::Option* option = nullptr;
};

// Where a value came from, for error messages.
struct Value {
  std::string text;
  std::string origin;  // "--cluster-size" or "--cluster-size (from CLUSTER_SIZE)"
  bool given = false;  // by flag or environment, not the default
};

Error Bad(const Value& v, std::string_view what) {
  return MakeError(ErrorCode::kInvalidArgument, "{}: '{}' {}", v.origin, v.text, what);
}

Result<bool> ToBool(const Value& v) {
  std::string t = v.text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
  if (t == "false" || t == "0" || t == "no" || t == "off") return false;
  return Bad(v, "is not a boolean (true or false)");
}

Result<int64_t> ToInt(const Value& v, int64_t lo, int64_t hi) {
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.text.data(), v.text.data() + v.text.size(), out);
  if (v.text.empty() || ec != std::errc() || p != v.text.data() + v.text.size() || out < lo ||
      out > hi) {
    return Bad(v, fmt::format("is not an integer in {}..{}", lo, hi));
  }
  return out;
}

Result<double> ToDouble(const Value& v, double lo, double hi) {
  double out = 0;
  std::istringstream in(v.text);
  in >> out;
  if (v.text.empty() || in.fail() || !in.eof() || !std::isfinite(out) || out < lo || out > hi) {
    return Bad(v, fmt::format("is not a number in {}..{}", lo, hi));
  }
  return out;
}

Result<std::chrono::milliseconds> ToMillis(const Value& v, std::chrono::milliseconds lo,
                                           std::chrono::milliseconds hi) {
  auto d = ParseDuration(v.text);
  if (!d.ok()) {
    return Bad(v,
               "is not a duration (a number of seconds, or with a unit: 250ms, 30s, 5m, 1h, "
               "7d)");
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  if (ms < lo || ms > hi) {
    return Bad(v, fmt::format("is out of range {}..{}", FormatDuration(lo), FormatDuration(hi)));
  }
  return ms;
}

bool ValidClusterName(std::string_view name) {
  if (name.empty() || name.size() > 48) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::islower(c) || std::isdigit(c) || c == '-' || c == '_';
  });
}

// Go's flag package accepts `-name=value`; the original's users wrote that. CLI11 wants two
// dashes for long names, so a single dash before a long name gets one more.
std::vector<std::string> GoStyle(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const auto& a : args) {
    if (a.size() > 2 && a[0] == '-' && a[1] != '-' &&
        std::isalpha(static_cast<unsigned char>(a[1])) &&
        std::isalpha(static_cast<unsigned char>(a[2]))) {
      out.push_back("-" + a);
    } else {
      out.push_back(a);
    }
  }
  return out;
}

// The original's flags with no use here, and why (reference etcd-mesos.md 1.1: its own, and
// glog's). `takes_value` is false for the booleans, which take a value only after '='.
struct Obsolete {
  std::string_view name;
  bool takes_value;
  std::string_view why;
};
constexpr Obsolete kObsolete[] = {
    {"--artifact-port", true, "artifacts are served by the admin server on --admin-port"},
    {"--driver-port", true, "there is no libprocess driver: the v1 HTTP API needs no port"},
    {"--mesos-authentication-provider", true,
     "the v1 HTTP API authenticates with HTTP Basic (--principal, --secret-file)"},
    {"--logtostderr", false, "the log always goes to stderr; --log-level sets its detail"},
    {"--alsologtostderr", false, "the log always goes to stderr; --log-level sets its detail"},
    {"--v", true, "glog's verbosity: use --log-level=debug"},
    {"-v", true, "glog's verbosity: use --log-level=debug"},
    {"--stderrthreshold", true, "glog's: use --log-level"},
    {"--vmodule", true, "glog's: use --log-level"},
    {"--log_backtrace_at", true, "glog's: not supported"},
    {"--log_dir", true, "glog's: the log goes to stderr (redirect it)"},
};

// Takes the obsolete flags out of `args` (already in -- form), with a warning for each.
std::vector<std::string> DropObsolete(const std::vector<std::string>& args,
                                      std::vector<std::string>* warnings) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string name = a.substr(0, a.find('='));
    const Obsolete* hit = nullptr;
    for (const auto& o : kObsolete) {
      if (name == o.name) hit = &o;
    }
    if (hit == nullptr) {
      out.push_back(a);
      continue;
    }
    if (hit->takes_value && a.find('=') == std::string::npos && i + 1 < args.size()) ++i;
    warnings->push_back(fmt::format("{} (the original's) is ignored: {}", name, hit->why));
  }
  return out;
}

}  // namespace

Result<ParsedFlags> ParseFlags(const std::vector<std::string>& raw_args,
                               const std::map<std::string, std::string>& env,
                               const std::string& program_dir) {
  CoreConfig core_defaults;
  ShellConfig shell_defaults;
  std::string default_executor = (fs::path(program_dir) / "etcd-mesos-executor").string();

  std::vector<Spec> specs = {
      {"--cluster-name",
       {"CLUSTER_NAME", "FRAMEWORK_NAME"},
       "default",
       "Name of this etcd cluster: the framework is registered as etcd-<cluster-name> (one "
       "framework per cluster). Lower-case letters, digits, '-' and '_'. FRAMEWORK_NAME=etcd-x "
       "means cluster x."},
      {"--framework-name",
       {},
       "",
       "The original's spelling: the whole framework name. etcd-x means --cluster-name=x"},
      {"--master",
       {"MESOS_MASTER"},
       "127.0.0.1:5050",
       "Mesos master: host:port, or zk://host:port,.../mesos to follow the leading master"},
      {"--zk-framework-persist",
       {"ZK_PERSIST"},
       "",
       "Keep the scheduler's state in ZooKeeper: zk://[user:pass@]host:port,.../chroot. When "
       "empty, the state is kept in --state-dir"},
      {"--state-dir",
       {},
       "./etcd-mesos-state",
       "Directory for the scheduler's state when --zk-framework-persist is empty"},
      {"--cluster-size", {"CLUSTER_SIZE"}, "3", "Number of etcd members to run (1..99)"},
      {"--address",
       {"LIBPROCESS_IP"},
       "127.0.0.1",
       "The scheduler's own address, reachable from the agents: the admin server binds it, and "
       "the artifact URLs and the web UI link use it"},
      {"--admin-port",
       {"PORT0"},
       "12300",
       "Port of the admin HTTP server: /members, /stats, /reseed, /healthz, /metrics, the "
       "status page, and the artifacts the agents fetch"},
      {"--admin-bind-all",
       {},
       "false",
       "Bind the admin server on all interfaces (0.0.0.0) instead of --address",
       true},
      {"--framework-weburi",
       {"WEBURI"},
       "",
       "FrameworkInfo.webui_url (default http://<address>:<admin-port>/)"},
      {"--user", {}, "", "User the executors run as (default: $USER, else root)"},
      {"--role", {}, "*", "Mesos role to take resources from"},
      {"--principal,--mesos-authentication-principal",
       {},
       "",
       "Principal to authenticate to the master with (and FrameworkInfo.principal)"},
      {"--secret-file,--mesos-authentication-secret-file",
       {},
       "",
       "File holding the principal's secret (a trailing newline is ignored)"},
      {"--failover-timeout,--failover-timeout-seconds",
       {"FRAMEWORK_FAILOVER_TIMEOUT_SECONDS"},
       "604800",
       "How long Mesos keeps the tasks running when the scheduler is gone (seconds, or 30m, 7d, "
       "...); must be more than 0"},
      {"--auto-reseed",
       {"AUTO_RESEED"},
       "true",
       "Reseed the cluster from the best survivor after --reseed-timeout of livelock (a majority "
       "lost)",
       true},
      {"--reseed-timeout",
       {"RESEED_TIMEOUT"},
       "240",
       "Continuous livelock before an automatic reseed (seconds, or with a unit)"},
      {"--reseed-token-file",
       {},
       "",
       "File holding the token that guards /reseed and /start-fresh (Authorization: Bearer "
       "<token>, or ?token=). Empty: unguarded (a warning is logged)"},
      {"--single-instance-per-slave",
       {"SINGLE_INSTANCE_PER_SLAVE"},
       "true",
       "At most one member per agent (false is dangerous: one host loss may cost a quorum)",
       true},
      {"--cpu-limit,--sandbox-cpu-limit",
       {"CPU_LIMIT"},
       fmt::format("{}", core_defaults.task_cpus),
       "CPUs of each member's task"},
      {"--mem-limit,--sandbox-mem-limit",
       {"MEM_LIMIT"},
       fmt::format("{}", core_defaults.task_mem),
       "Memory of each member's task, MB"},
      {"--disk-limit,--sandbox-disk-limit",
       {"DISK_LIMIT"},
       fmt::format("{}", core_defaults.task_disk),
       "Disk of each member's task, MB"},
      {"--executor-cpus",
       {},
       fmt::format("{}", core_defaults.executor_cpus),
       "CPUs of each member's executor (on top of the task's)"},
      {"--executor-mem",
       {},
       fmt::format("{}", core_defaults.executor_mem),
       "Memory of each member's executor, MB (on top of the task's)"},
      {"--mesos-offer-refuse-seconds",
       {},
       fmt::format("{}", core_defaults.refuse_seconds),
       "refuse_seconds of declined offers when no member is needed"},
      {"--executor-bin",
       {},
       default_executor,
       "The etcd-mesos-executor binary served to the agents (must exist)"},
      {"--etcd-bin", {}, "/usr/bin/etcd", "The etcd binary served to the agents (must exist)"},
      {"--etcdctl-bin",
       {},
       "/usr/bin/etcdctl",
       "The etcdctl binary served to the agents (must exist)"},
      {"--probe-interval", {}, "1s", "How often every member's health is probed"},
      {"--reconcile-interval", {}, "15m", "Period of implicit task reconciliation"},
      {"--reconcile-timeout",
       {},
       "30s",
       "Explicit reconciliation not answered by then is asked again"},
      {"--bootstrap-gather",
       {},
       "3s",
       "How long to gather offers from enough agents to bootstrap all members at once"},
      {"--staging-timeout", {}, "3m", "A task not RUNNING by then is killed"},
      {"--learner-timeout", {}, "2m", "A learner not promoted by then is removed"},
      {"--dead-member-grace",
       {},
       "10s",
       "How long a member whose task is lost may stay unreachable before it is replaced"},
      {"--backup-dir",
       {"BACKUP_DIR"},
       "",
       "Directory (local or mounted) for etcd snapshots: periodic ones, one before every reseed "
       "and risky membership change, and POST /backup. Empty: backups are off"},
      {"--backup-interval",
       {"BACKUP_INTERVAL"},
       "30m",
       "Time between periodic snapshots (0: none periodic; the others still happen)"},
      {"--backup-timeout",
       {},
       "2m",
       "A snapshot not written by then counts as failed (a reseed waiting for it goes ahead)"},
      {"--backup-keep", {}, "5", "Retention: keep the last N snapshots (at least 1)"},
      {"--backup-keep-hourly",
       {},
       "24h",
       "Retention: also keep the newest snapshot of every hour within this span (0: none)"},
      {"--backup-keep-daily",
       {},
       "7d",
       "Retention: also keep the newest snapshot of every day within this span (0: none)"},
      {"--healthz-max-backup-age",
       {},
       "0",
       "/healthz fails when the newest snapshot is older than this (0: backups do not count)"},
      {"--restore-from",
       {},
       "",
       "At start, restore the cluster from this snapshot file (ours, or `etcdctl snapshot "
       "save`'s); only allowed when no member may be alive or none ever started. The file is "
       "verified and copied into --backup-dir first"},
      {"--log-level", {}, "info", "trace, debug, info, warn or error"},
  };

  CLI::App app{
      "etcd-mesos-scheduler: the Mesos framework that runs one etcd cluster, keeps it at its "
      "size,\n"
      "heals it and reseeds it after a majority loss.\n\n"
      "Every flag may also be written Go-style (-cluster-size=5). Environment variables (in\n"
      "brackets) apply when the flag is not given. Admin API on http://<address>:<admin-port>/:\n"
      "/members, /stats, /healthz, /metrics, /reseed, /start-fresh, /endpoints, the status page.\n"
      "The original's glog flags (-v, -logtostderr, ...), -artifact-port, -driver-port and\n"
      "-mesos-authentication-provider are accepted and ignored, with a warning that says why.",
      "etcd-mesos-scheduler"};
  app.set_help_flag("-h,--help", "Print this help and exit");
  for (auto& s : specs) {
    std::string help = s.help;
    if (!s.envs.empty()) {
      help += " [";
      for (size_t i = 0; i < s.envs.size(); ++i) help += (i ? ", " : "") + s.envs[i];
      help += "]";
    }
    if (!s.fallback.empty()) help += " (default: " + s.fallback + ")";
    if (s.is_bool) {
      s.option = app.add_flag(s.names + "{true}", s.value, help);
    } else {
      s.option = app.add_option(s.names, s.value, help);
    }
  }

  ParsedFlags out;
  std::vector<std::string> args = DropObsolete(GoStyle(raw_args), &out.warnings);
  std::reverse(args.begin(), args.end());  // CLI11 takes the vector reversed
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    out.help = true;
    out.text = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    return MakeError(ErrorCode::kInvalidArgument, "{} (see --help)", e.what());
  }

  auto get = [&](std::string_view name) -> Value {
    for (const auto& s : specs) {
      std::string first = s.names.substr(0, s.names.find(','));
      if (first != name) continue;
      if (s.option->count() > 0) return Value{s.value, first, true};
      for (const auto& e : s.envs) {
        auto it = env.find(e);
        if (it != env.end()) return Value{it->second, first + " (from " + e + ")", true};
      }
      return Value{s.fallback, first, false};
    }
    return Value{"", std::string(name), false};  // a typo here is a bug the tests catch
  };

  SchedulerFlags& f = out.flags;
  CoreConfig& core = f.core;
  ShellConfig& shell = f.shell;

#define EM_TRY(var, expr) \
  auto var = (expr);      \
  if (!var.ok()) return var.error();

  // Cluster name. FRAMEWORK_NAME and -framework-name were the whole framework name in the
  // original.
  Value name = get("--cluster-name");
  if (Value whole = get("--framework-name"); whole.given && !name.given) {
    if (!whole.text.starts_with("etcd-")) {
      return Bad(whole,
                 "must be etcd-<cluster-name> (the framework name the on-call guide "
                 "looks for); or give --cluster-name");
    }
    name = whole;
  }
  if ((name.origin.find("FRAMEWORK_NAME") != std::string::npos ||
       name.origin.starts_with("--framework-name")) &&
      name.text.starts_with("etcd-")) {
    name.text = name.text.substr(5);
  }
  if (!ValidClusterName(name.text)) {
    return Bad(name, "is not a cluster name (1..48 of a-z, 0-9, '-', '_')");
  }
  shell.cluster_name = name.text;
  core.framework_name = "etcd-" + name.text;

  Value master = get("--master");
  auto master_address = ParseMasterAddress(master.text);
  if (!master_address.ok()) {
    return Bad(master,
               "is not host:port or zk://host:port,.../path: " + master_address.error().message);
  }
  shell.master_spec = master.text;
  shell.master = *master_address;

  Value zk = get("--zk-framework-persist");
  if (!zk.text.empty()) {
    std::string spec = zk.text.starts_with("zk://") ? zk.text : "zk://" + zk.text;
    auto url = ParseZkUrl(spec);
    if (!url.ok()) return Bad(zk, "is not zk://host:port,.../chroot: " + url.error().message);
    shell.store_spec = spec;
  } else {
    Value dir = get("--state-dir");
    if (dir.text.empty()) return Bad(dir, "must not be empty");
    shell.store_spec = dir.text;
  }

  EM_TRY(size, ToInt(get("--cluster-size"), 1, 99));
  core.cluster_size = static_cast<int>(*size);

  Value address = get("--address");
  if (address.text.empty() || address.text.find_first_of(" /:") != std::string::npos) {
    return Bad(address, "is not a host address (an IP the agents can reach)");
  }
  shell.address = address.text;
  EM_TRY(port, ToInt(get("--admin-port"), 1, 65535));
  shell.admin_port = static_cast<uint16_t>(*port);
  EM_TRY(bind_all, ToBool(get("--admin-bind-all")));
  shell.admin_bind_all = *bind_all;
  Value webui = get("--framework-weburi");
  shell.webui_url = webui.text.empty()
                        ? fmt::format("http://{}:{}/", shell.address, shell.admin_port)
                        : webui.text;

  Value user = get("--user");
  if (!user.text.empty()) {
    shell.user = user.text;
  } else if (auto it = env.find("USER"); it != env.end() && !it->second.empty()) {
    shell.user = it->second;
  }
  Value role = get("--role");
  if (role.text.empty() || role.text == "." || role.text == ".." || role.text[0] == '-' ||
      role.text.find_first_of(" /\t\n") != std::string::npos) {
    return Bad(role, "is not a Mesos role");
  }
  core.role = role.text;

  Value principal = get("--principal");
  Value secret_file = get("--secret-file");
  if (!principal.text.empty()) shell.principal = principal.text;
  shell.secret_file = secret_file.text;
  if (!secret_file.text.empty() && principal.text.empty()) {
    return Bad(secret_file, "needs --principal as well");
  }

  Value failover = get("--failover-timeout");
  // The original took a float number of seconds; keep that, and accept units too.
  EM_TRY(failover_ms, ToMillis(failover, std::chrono::seconds(1), std::chrono::hours(24 * 365)));
  shell.failover_timeout_s = std::chrono::duration<double>(*failover_ms).count();

  EM_TRY(auto_reseed, ToBool(get("--auto-reseed")));
  core.auto_reseed = *auto_reseed;
  EM_TRY(reseed_timeout,
         ToMillis(get("--reseed-timeout"), std::chrono::seconds(1), std::chrono::hours(24 * 7)));
  core.reseed_timeout = *reseed_timeout;
  shell.reseed_token_file = get("--reseed-token-file").text;
  EM_TRY(single, ToBool(get("--single-instance-per-slave")));
  core.single_member_per_agent = *single;

  EM_TRY(cpus, ToDouble(get("--cpu-limit"), 0.01, 1024));
  core.task_cpus = *cpus;
  EM_TRY(mem, ToDouble(get("--mem-limit"), 32, 1 << 24));
  core.task_mem = *mem;
  EM_TRY(disk, ToDouble(get("--disk-limit"), 1, 1 << 30));
  core.task_disk = *disk;
  EM_TRY(ecpus, ToDouble(get("--executor-cpus"), 0.01, 64));
  core.executor_cpus = *ecpus;
  EM_TRY(emem, ToDouble(get("--executor-mem"), 16, 1 << 20));
  core.executor_mem = *emem;
  EM_TRY(refuse, ToDouble(get("--mesos-offer-refuse-seconds"), 0, 86400));
  core.refuse_seconds = *refuse;

  shell.executor_bin = get("--executor-bin").text;
  shell.etcd_bin = get("--etcd-bin").text;
  shell.etcdctl_bin = get("--etcdctl-bin").text;

  using std::chrono::milliseconds;
  using std::chrono::seconds;
  EM_TRY(probe, ToMillis(get("--probe-interval"), milliseconds(100), seconds(60)));
  core.probe_interval = *probe;
  shell.probe_timeout = std::max(*probe, milliseconds(500));
  EM_TRY(reconcile, ToMillis(get("--reconcile-interval"), seconds(1), std::chrono::hours(24)));
  core.reconcile_interval = *reconcile;
  EM_TRY(reconcile_timeout,
         ToMillis(get("--reconcile-timeout"), seconds(1), std::chrono::hours(1)));
  core.reconcile_timeout = *reconcile_timeout;
  EM_TRY(gather, ToMillis(get("--bootstrap-gather"), milliseconds(0), std::chrono::minutes(10)));
  core.bootstrap_gather = *gather;
  EM_TRY(staging, ToMillis(get("--staging-timeout"), seconds(5), std::chrono::hours(24)));
  core.staging_timeout = *staging;
  EM_TRY(learner, ToMillis(get("--learner-timeout"), seconds(5), std::chrono::hours(24)));
  core.learner_timeout = *learner;
  EM_TRY(grace, ToMillis(get("--dead-member-grace"), seconds(0), std::chrono::hours(1)));
  core.dead_member_grace = *grace;

  shell.backup_dir = get("--backup-dir").text;
  core.backups = !shell.backup_dir.empty();
  EM_TRY(backup_interval,
         ToMillis(get("--backup-interval"), milliseconds(0), std::chrono::hours(24 * 30)));
  if (backup_interval->count() > 0 && *backup_interval < seconds(1)) {
    return Bad(get("--backup-interval"), "is less than 1s (0 turns periodic snapshots off)");
  }
  core.backup_interval = *backup_interval;
  EM_TRY(backup_timeout, ToMillis(get("--backup-timeout"), seconds(1), std::chrono::hours(6)));
  core.backup_timeout = *backup_timeout;
  EM_TRY(keep, ToInt(get("--backup-keep"), 1, 100000));
  shell.retention.keep_last = static_cast<int>(*keep);
  EM_TRY(hourly,
         ToMillis(get("--backup-keep-hourly"), milliseconds(0), std::chrono::hours(24 * 3660)));
  shell.retention.hourly_span = std::chrono::duration_cast<std::chrono::hours>(*hourly);
  EM_TRY(daily,
         ToMillis(get("--backup-keep-daily"), milliseconds(0), std::chrono::hours(24 * 3660)));
  shell.retention.daily_span = std::chrono::duration_cast<std::chrono::hours>(*daily);
  EM_TRY(max_age,
         ToMillis(get("--healthz-max-backup-age"), milliseconds(0), std::chrono::hours(24 * 365)));
  shell.healthz_max_backup_age = *max_age;
  if (max_age->count() > 0 && !core.backups) {
    return Bad(get("--healthz-max-backup-age"), "needs --backup-dir (backups are off)");
  }
  Value restore = get("--restore-from");
  shell.restore_from = restore.text;
  if (!restore.text.empty() && !core.backups) {
    return Bad(restore, "needs --backup-dir (the snapshot is kept there and served to the agent)");
  }

  Value level = get("--log-level");
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "error"};
  if (std::none_of(std::begin(kLevels), std::end(kLevels),
                   [&](const char* l) { return level.text == l; })) {
    return Bad(level, "is not one of trace, debug, info, warn, error");
  }
  shell.log_level = level.text;
#undef EM_TRY
  return out;
}

namespace {

Result<std::string> ReadWholeFile(const std::string& flag, const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: '{}' is not a readable file", flag, path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: '{}' cannot be read", flag, path);
  }
  std::string data((std::istreambuf_iterator<char>(in)), {});
  while (!data.empty() && (data.back() == '\n' || data.back() == '\r' || data.back() == ' ')) {
    data.pop_back();
  }
  if (data.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: '{}' is empty", flag, path);
  }
  return data;
}

}  // namespace

Status LoadFiles(ShellConfig& config) {
  const std::pair<const char*, const std::string*> artifacts[] = {
      {"--executor-bin", &config.executor_bin},
      {"--etcd-bin", &config.etcd_bin},
      {"--etcdctl-bin", &config.etcdctl_bin},
  };
  for (const auto& [flag, path] : artifacts) {
    std::error_code ec;
    if (!fs::is_regular_file(*path, ec)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "{}: '{}' does not exist or is not a file (the agents fetch it from this "
                       "scheduler)",
                       flag, *path);
    }
  }
  if (!config.secret_file.empty()) {
    auto secret = ReadWholeFile("--secret-file", config.secret_file);
    if (!secret.ok()) return secret.error();
    config.secret = *secret;
  }
  if (!config.reseed_token_file.empty()) {
    auto token = ReadWholeFile("--reseed-token-file", config.reseed_token_file);
    if (!token.ok()) return token.error();
    if (token->find_first_of(" \t\r\n") != std::string::npos) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "--reseed-token-file: '{}' holds whitespace inside the token",
                       config.reseed_token_file);
    }
    config.admin_token = *token;
  }
  if (!config.restore_from.empty()) {
    std::error_code ec;
    if (!fs::is_regular_file(config.restore_from, ec)) {
      return MakeError(ErrorCode::kInvalidArgument, "--restore-from: '{}' is not a readable file",
                       config.restore_from);
    }
  }
  if (!config.backup_dir.empty()) {
    std::error_code ec;
    fs::create_directories(config.backup_dir, ec);
    if (!fs::is_directory(config.backup_dir, ec)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "--backup-dir: '{}' is not a directory and cannot be created",
                       config.backup_dir);
    }
  }
  return OkStatus();
}

}  // namespace etcd_mesos::scheduler::shell
