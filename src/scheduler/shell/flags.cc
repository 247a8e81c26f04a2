#include "scheduler/shell/flags.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <limits>

#include <fmt/format.h>

#include "common/flags.h"

namespace etcd_mesos::scheduler::shell {

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using namespace std::chrono_literals;  // NOLINT: bounds read best as 100ms..60s

constexpr const char* kDescription =
    "etcd-mesos-scheduler: the Mesos framework that runs one etcd cluster, keeps it at its "
    "size,\n"
    "heals it and reseeds it after a majority loss.\n\n"
    "Every flag may also be written Go-style (-cluster-size=5). Environment variables (in\n"
    "brackets) apply when the flag is not given. Admin API on http://<address>:<admin-port>/\n"
    "(https with --admin-tls-cert): /members, /stats, /healthz, /metrics, /endpoints, /rollout,\n"
    "the console, and commands (/reseed, /start-fresh, /backup, /restore, /cluster-size,\n"
    "/rollout/restart, /rotate-ca, /teardown, ...) that need the admin token\n"
    "(--admin-token-file, else generated: <state-dir>/admin-token).\n"
    "`etcd-mesos-scheduler teardown [flags]` stops the cluster for good (teardown --help).\n"
    "The original's glog flags (-v, -logtostderr, ...), -artifact-port, -driver-port and\n"
    "-mesos-authentication-provider are accepted and ignored, with a warning that says why.";

bool ValidClusterName(std::string_view name) {
  if (name.empty() || name.size() > 48) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::islower(c) || std::isdigit(c) || c == '-' || c == '_';
  });
}

// The original's flags with no use here, and why (reference etcd-mesos.md 1.1: its own, and
// glog's). The booleans take a value only after '='.
void DeclareObsolete(FlagSet& flags) {
  flags.Obsolete("--artifact-port", true,
                 "artifacts are served by the admin server on --admin-port");
  flags.Obsolete("--driver-port", true,
                 "there is no libprocess driver: the v1 HTTP API needs no port");
  flags.Obsolete("--mesos-authentication-provider", true,
                 "the v1 HTTP API authenticates with HTTP Basic (--principal, --secret-file)");
  for (const char* name : {"--logtostderr", "--alsologtostderr"}) {
    flags.Obsolete(name, false, "the log always goes to stderr; --log-level sets its detail");
  }
  flags.Obsolete("--v,-v", true, "glog's verbosity: use --log-level=debug");
  flags.Obsolete("--stderrthreshold", true, "glog's: use --log-level");
  flags.Obsolete("--vmodule", true, "glog's: use --log-level");
  flags.Obsolete("--log_backtrace_at", true, "glog's: not supported");
  flags.Obsolete("--log_dir", true, "glog's: the log goes to stderr (redirect it)");
}

// etcd takes a retention as a Go duration (periodic) or a count (revision); "0" turns it off.
// Sets what etcd is given: a periodic retention in seconds, which Go reads whatever unit
// (7d, say) the operator wrote.
Problem CheckRetention(EtcdUpkeep& upkeep) {
  const std::string& text = upkeep.auto_compaction_retention;
  upkeep.etcd_retention = text;
  if (text == "0") return {};
  if (upkeep.auto_compaction_mode == "revision") {
    int64_t n = 0;
    if (Problem p = flags_internal::ParseInt(text, 1, std::numeric_limits<int64_t>::max(), &n)) {
      return "with --auto-compaction-mode=revision, a number of revisions: " + *p;
    }
    return {};
  }
  Duration d{};
  if (Problem p =
          flags_internal::ParseDurationIn(text, std::chrono::seconds(1), std::nullopt, &d)) {
    return "with --auto-compaction-mode=periodic, a duration such as 1h or 30m: " + *p;
  }
  upkeep.etcd_retention =
      fmt::format("{}s", std::chrono::duration_cast<std::chrono::seconds>(d).count());
  return {};
}

}  // namespace

Result<ParsedFlags> ParseFlags(const std::vector<std::string>& args,
                               const std::map<std::string, std::string>& env,
                               const std::string& program_dir) {
  ParsedFlags out;
  CoreConfig& core = out.flags.core;
  ShellConfig& shell = out.flags.shell;
  // The defaults that are not the configs' own (those are the flags' defaults as they stand).
  shell.executor_bin = (fs::path(program_dir) / "etcd-mesos-executor").string();
  shell.etcd_bin = "/usr/bin/etcd";
  shell.etcdctl_bin = "/usr/bin/etcdctl";
  std::string framework_name, zk, state_dir = shell.store_spec, user, principal;
  std::chrono::duration<double> failover(shell.failover_timeout_s);

  FlagSet flags("etcd-mesos-scheduler", kDescription);
  Flag& name =
      flags
          .Add("--cluster-name", &shell.cluster_name,
               "Name of this etcd cluster: the framework is registered as etcd-<cluster-name> "
               "(one framework per cluster). Lower-case letters, digits, '-' and '_'. "
               "FRAMEWORK_NAME=etcd-x means cluster x.")
          .Env("CLUSTER_NAME")
          .Env("FRAMEWORK_NAME");
  Flag& whole =
      flags.Add("--framework-name", &framework_name,
                "The original's spelling: the whole framework name. etcd-x means --cluster-name=x");
  flags
      .Add("--master", &shell.master_spec,
           "Mesos master: host:port, or zk://host:port,.../mesos to follow the leading master")
      .Env("MESOS_MASTER")
      .Check([&](const std::string& text) -> Problem {
        auto master = ParseMasterAddress(text);
        if (!master.ok()) {
          return "is not host:port or zk://host:port,.../path: " + master.error().message;
        }
        shell.master = *master;
        return {};
      });
  flags
      .Add("--zk-framework-persist", &zk,
           "Keep the scheduler's state in ZooKeeper: zk://[user:pass@]host:port,.../chroot. When "
           "empty, the state is kept in --state-dir")
      .Env("ZK_PERSIST")
      .Check([&](const std::string& text) -> Problem {
        if (text.empty()) return {};
        std::string spec = text.starts_with("zk://") ? text : "zk://" + text;  // was optional
        auto url = ParseZkUrl(spec);
        if (!url.ok()) return "is not zk://host:port,.../chroot: " + url.error().message;
        shell.store_spec = spec;
        return {};
      });
  Flag& state = flags.Add("--state-dir", &state_dir,
                          "Directory for the scheduler's state when --zk-framework-persist is "
                          "empty; the generated admin token's file (admin-token) is kept here "
                          "in either case");
  flags.Add("--cluster-size", &core.cluster_size, "Number of etcd members to run (1..99)")
      .Env("CLUSTER_SIZE")
      .Range(1, 99);
  flags
      .Add("--address", &shell.address,
           "The scheduler's own address, reachable from the agents: the admin server binds it, "
           "and the artifact URLs and the web UI link use it")
      .Env("LIBPROCESS_IP")
      .Check([](const std::string& text) -> Problem {
        if (!text.empty() && text.find_first_of(" /:") == std::string::npos) return {};
        return "is not a host address (an IP the agents can reach)";
      });
  flags
      .Add("--admin-port", &shell.admin_port,
           "Port of the admin HTTP server: /members, /stats, /reseed, /healthz, /metrics, the "
           "status page, and the artifacts the agents fetch")
      .Env("PORT0")
      .Range(1, 65535);
  flags.Add("--admin-bind-all", &shell.admin_bind_all,
            "Bind the admin server on all interfaces (0.0.0.0) instead of --address");
  flags
      .Add("--framework-weburi", &shell.webui_url,
           "FrameworkInfo.webui_url (default http(s)://<address>:<admin-port>/)")
      .Env("WEBURI");
  flags.Add("--user", &user, "User the executors run as (default: $USER, else root)");
  flags
      .Add("--role", &core.role,
           "Mesos role to take resources from. Any role but * makes members durable: each "
           "member's resources are reserved and its data dir is a persistent volume, so a member "
           "whose task ends is restarted in place on its own data (see --replace-after)")
      .Check([](const std::string& role) -> Problem {
        if (role.empty() || role == "." || role == ".." || role[0] == '-' ||
            role.find_first_of(" /\t\n") != std::string::npos) {
          return "is not a Mesos role";
        }
        return {};
      });
  flags.Add("--principal,--mesos-authentication-principal", &principal,
            "Principal to authenticate to the master with (and FrameworkInfo.principal)");
  Flag& secret_file =
      flags.Add("--secret-file,--mesos-authentication-secret-file", &shell.secret_file,
                "File holding the principal's secret (a trailing newline is ignored)");
  // The original took a float number of seconds; that still works, and so do units.
  flags
      .Add("--failover-timeout,--failover-timeout-seconds", &failover,
           "How long Mesos keeps the tasks running when the scheduler is gone (seconds, or 30m, "
           "7d, ...); must be more than 0")
      .Env("FRAMEWORK_FAILOVER_TIMEOUT_SECONDS")
      .Range(1s, 24h * 365);
  flags
      .Add("--auto-reseed", &core.auto_reseed,
           "Reseed the cluster from the best survivor after --reseed-timeout of livelock (a "
           "majority lost)")
      .Env("AUTO_RESEED");
  flags
      .Add("--reseed-timeout", &core.reseed_timeout,
           "Continuous livelock before an automatic reseed (seconds, or with a unit)")
      .Env("RESEED_TIMEOUT")
      .Range(1s, 24h * 7);
  flags.Add("--reseed-token-file,--admin-token-file", &shell.reseed_token_file,
            "File holding the token that guards every admin command (/reseed, /start-fresh, "
            "/backup, /restore, /cluster-size, ...: Authorization: Bearer <token>, or ?token=). "
            "Empty: the scheduler generates one at first start, keeps it in the state store and "
            "in <state-dir>/admin-token (mode 0600), and logs where it is");
  Flag& insecure =
      flags.Add("--admin-insecure", &shell.admin_insecure,
                "Leave the admin commands open to anyone who can reach the admin port (no token; "
                "a warning is logged). Only for a trusted network");
  flags
      .Add("--single-instance-per-slave", &core.single_member_per_agent,
           "At most one member per agent (false is dangerous: one host loss may cost a quorum)")
      .Env("SINGLE_INSTANCE_PER_SLAVE");
  flags.Add("--cpu-limit,--sandbox-cpu-limit", &core.task_cpus, "CPUs of each member's task")
      .Env("CPU_LIMIT")
      .Range(0.01, 1024);
  flags.Add("--mem-limit,--sandbox-mem-limit", &core.task_mem, "Memory of each member's task, MB")
      .Env("MEM_LIMIT")
      .Range(32, 1 << 24);
  flags.Add("--disk-limit,--sandbox-disk-limit", &core.task_disk, "Disk of each member's task, MB")
      .Env("DISK_LIMIT")
      .Range(1, 1 << 30);
  flags
      .Add("--executor-cpus", &core.executor_cpus,
           "CPUs of each member's executor (on top of the task's)")
      .Range(0.01, 64);
  flags
      .Add("--executor-mem", &core.executor_mem,
           "Memory of each member's executor, MB (on top of the task's)")
      .Range(16, 1 << 20);
  flags
      .Add("--mesos-offer-refuse-seconds", &core.refuse_seconds,
           "refuse_seconds of declined offers when no member is needed")
      .Range(0, 86400);
  flags.Add("--executor-bin", &shell.executor_bin,
            "The etcd-mesos-executor binary served to the agents (must exist)");
  flags.Add("--etcd-bin", &shell.etcd_bin, "The etcd binary served to the agents (must exist)");
  flags.Add("--etcdctl-bin", &shell.etcdctl_bin,
            "The etcdctl binary served to the agents (must exist)");
  // The core's timers, each within bounds that keep it sane.
  for (auto [name, dest, lo, hi, help] :
       {std::tuple{"--probe-interval", &core.probe_interval, 100ms, 60s,
                   "How often every member's health is probed"},
        {"--reconcile-interval", &core.reconcile_interval, 1s, 24h,
         "Period of implicit task reconciliation"},
        {"--reconcile-timeout", &core.reconcile_timeout, 1s, 1h,
         "Explicit reconciliation not answered by then is asked again"},
        {"--bootstrap-gather", &core.bootstrap_gather, 0s, 10min,
         "How long to gather offers from enough agents to bootstrap all members at once"},
        {"--staging-timeout", &core.staging_timeout, 5s, 24h,
         "A task not RUNNING by then is killed"},
        {"--learner-timeout", &core.learner_timeout, 5s, 24h,
         "A learner not promoted by then is removed"},
        {"--dead-member-grace", &core.dead_member_grace, 0s, 1h,
         "How long a member whose task is lost may stay unreachable before it is replaced"},
        {"--replace-after", &core.replace_after, 0s, 24h,
         "Durable members (--role other than *): how long a member whose task ended waits to be "
         "restarted in place on its volume before it is replaced by a new member elsewhere and "
         "its volume and reservation are released (0: replace at once)"},
        {"--rollout-surge-wait", &core.rollout_surge_wait, 0s, 1h,
         "A rollout adds each member's successor before removing it when an agent without a "
         "member offers room within this long; else it replaces the member in place"},
        {"--rollout-step-timeout", &core.rollout_step_timeout, 10s, 24h,
         "A rollout stops (resume with POST /rollout/resume) when replacing one member takes "
         "longer"}}) {
    flags.Add(name, dest, help).Range(lo, hi);
  }
  flags
      .Add("--backup-dir", &shell.backup_dir,
           "Directory (local or mounted) for etcd snapshots: periodic ones, one before every "
           "reseed and risky membership change, and POST /backup. Empty: backups are off")
      .Env("BACKUP_DIR");
  flags
      .Add("--backup-interval", &core.backup_interval,
           "Time between periodic snapshots (0: none periodic; the others still happen)")
      .Env("BACKUP_INTERVAL")
      .Range(0ms, 24h * 30)
      .Check([](milliseconds d) -> Problem {
        if (d.count() > 0 && d < 1s) {
          return "is less than 1s (0 turns periodic snapshots off)";
        }
        return {};
      });
  flags
      .Add("--backup-timeout", &core.backup_timeout,
           "A snapshot not written by then counts as failed (a reseed waiting for it goes ahead)")
      .Range(1s, 6h);
  flags
      .Add("--backup-keep", &shell.retention.keep_last,
           "Retention: keep the last N snapshots (at least 1)")
      .Range(1, 100000);
  flags
      .Add("--backup-keep-hourly", &shell.retention.hourly_span,
           "Retention: also keep the newest snapshot of every hour within this span (0: none)")
      .Range(0h, 24h * 3660);
  flags
      .Add("--backup-keep-daily", &shell.retention.daily_span,
           "Retention: also keep the newest snapshot of every day within this span (0: none)")
      .Range(0h, 24h * 3660);
  flags
      .Add("--tls", &shell.tls,
           "TLS for the etcd members' client and peer ports: auto (a cluster CA made at the first "
           "start and kept in the state store issues every member's certificates), files (the CA "
           "of --tls-ca-cert and --tls-ca-key issues them), or off (plain http, for clients that "
           "cannot present a certificate). With TLS every client must present a certificate of "
           "the CA (GET /client-cert). A running cluster keeps the mode it was started with, so an "
           "upgrade of etcd-mesos never switches a plain cluster to TLS by itself")
      .Env("ETCD_TLS")
      .Check([](const std::string& v) {
        return OneOf(v, {"auto", "files", "off"});
      });
  Flag& ca_cert = flags.Add("--tls-ca-cert", &shell.tls_ca_cert_file,
                            "With --tls=files: the CA certificate (PEM) that issues the members' "
                            "and clients' certificates, optionally followed by other CAs that "
                            "are trusted too. A change of this file rolls every member once; "
                            "rotate a CA in three restarts, each rolled out before the next: "
                            "old+new with the old key, new+old with the new key, new alone");
  flags.Add("--tls-ca-key", &shell.tls_ca_key_file,
            "With --tls=files: that CA's private key (PEM, unencrypted); read at start, never "
            "stored or sent anywhere");
  Flag& admin_cert = flags.Add(
      "--admin-tls-cert", &shell.admin_tls_cert_file,
      "Serve the admin server (API, console, the artifacts and certificates the agents fetch) "
      "over HTTPS with this certificate (PEM; with its chain). It must name --address, and the "
      "agents' hosts must trust its CA (the Mesos fetcher and the executors use the system's "
      "trust store)");
  flags.Add("--admin-tls-key", &shell.admin_tls_key_file,
            "The private key of --admin-tls-cert (PEM, unencrypted)");
  flags
      .Add("--cert-lifetime", &shell.cert_lifetime,
           "How long the certificates issued to members and clients are valid")
      .Range(1h, 24h * 3650);
  Flag& renew =
      flags
          .Add("--cert-renew-before", &core.cert_renew_before,
               "Members whose certificates expire within this are replaced one at a time "
               "(followers first, the leader last), each successor with new certificates; less "
               "than half of --cert-lifetime")
          .Range(1min, 24h * 3650);
  flags.Add("--backup-verify", &shell.backup_verify,
            "Verify each new snapshot: restore it into a scratch etcd on this host (--etcd-bin, "
            "--etcdctl-bin, on loopback ports, under --backup-dir) and compare its HashKV with "
            "the live cluster's at the snapshot's revision; the verdict goes into its sidecar");
  flags
      .Add("--backup-verify-timeout", &shell.backup_verify_timeout,
           "A verification not done by then fails (its scratch etcd is stopped and removed)")
      .Range(5s, 6h);
  Flag& max_age =
      flags
          .Add("--healthz-max-backup-age", &shell.healthz_max_backup_age,
               "/healthz fails when the newest snapshot is older than this (0: backups do not "
               "count)")
          .Range(0ms, 24h * 365);
  Flag& restore = flags.Add(
      "--restore-from", &shell.restore_from,
      "At start, restore the cluster from this snapshot file (ours, or `etcdctl snapshot "
      "save`'s); only allowed when no member may be alive or none ever started. The file is "
      "verified and copied into --backup-dir first");
  flags
      .Add("--executor-shutdown-grace", &shell.executor_shutdown_grace,
           "How long the agent lets a member's executor stop after SHUTDOWN (framework teardown, "
           "agent shutdown) before killing it; etcd gets all but a second of it after SIGTERM. "
           "etcd's leader, stopped together with the rest of its cluster, waits up to 7 s for a "
           "leadership transfer before it exits")
      .Range(2s, 10min);
  flags
      .Add("--auto-compaction-mode", &shell.upkeep.auto_compaction_mode,
           "etcd's auto-compaction of old revisions: periodic (keep --auto-compaction-retention "
           "of history) or revision (keep that many revisions)")
      .Check([](const std::string& v) {
        return OneOf(v, {"periodic", "revision"});
      });
  Flag& retention =
      flags.Add("--auto-compaction-retention", &shell.upkeep.auto_compaction_retention,
                "History etcd keeps: a duration for periodic compaction (1h, 30m), a number of "
                "revisions for revision compaction; 0 turns auto-compaction off");
  flags
      .Add("--quota-backend-bytes", &shell.upkeep.quota_backend_bytes,
           "etcd's backend quota: past it, etcd raises the NOSPACE alarm and refuses writes "
           "(etcd advises at most 8 GiB)")
      .Range(int64_t{16} << 20, int64_t{8} << 30);
  flags
      .Add("--defrag-threshold", &core.defrag_threshold,
           "Defragment a member (one at a time, followers first, the leader last, only while the "
           "cluster is healthy) when this share of its database file is free pages: 1 - "
           "dbSizeInUse / dbSize from etcd's status (0: never by itself; POST /defrag still does)")
      .Range(0.0, 0.99);
  int64_t defrag_min_size = static_cast<int64_t>(core.defrag_min_bytes);
  flags
      .Add("--defrag-min-size", &defrag_min_size,
           "Bytes: a database smaller than this is never defragmented by itself")
      .Range(int64_t{0}, int64_t{1} << 40);
  flags.Add("--initial-corrupt-check", &shell.upkeep.initial_corrupt_check,
            "A starting member compares its data's hash with its peers' and refuses to serve "
            "when they differ (etcd's --experimental-initial-corrupt-check)");
  flags
      .Add("--corrupt-check-time", &shell.upkeep.corrupt_check_time,
           "How often etcd's leader compares the members' data hashes and raises the CORRUPT "
           "alarm on a mismatch (0: never; etcd's --experimental-corrupt-check-time)")
      .Range(0ms, 24h * 7);
  flags
      .Add("--hash-check-interval", &core.hash_check_interval,
           "How often the scheduler compares the voters' HashKV at a revision they have all "
           "applied, and replaces a member whose data a majority contradicts (0: never)")
      .Range(0ms, 24h * 7)
      .Check([](milliseconds d) -> Problem {
        if (d.count() > 0 && d < 1s) return "is less than 1s (0 turns the checks off)";
        return {};
      });
  flags.Add("--log-level", &shell.log_level, "trace, debug, info, warn or error").Check(LogLevel);
  DeclareObsolete(flags);

  auto parsed = flags.Parse(args, env);
  if (!parsed.ok()) return parsed.error();
  out.help = parsed->exit;
  out.text = std::move(parsed->text);
  out.warnings = std::move(parsed->warnings);
  if (out.help) return out;

  // FRAMEWORK_NAME and -framework-name were the whole framework name in the original.
  const Flag* named = &name;
  if (whole.given() && !name.given()) {
    if (!framework_name.starts_with("etcd-")) {
      return whole.Bad(
          "must be etcd-<cluster-name> (the framework name the on-call guide looks for); or give "
          "--cluster-name");
    }
    named = &whole;
    shell.cluster_name = framework_name;
  }
  if ((named == &whole || name.env() == "FRAMEWORK_NAME") &&
      shell.cluster_name.starts_with("etcd-")) {
    shell.cluster_name = shell.cluster_name.substr(5);
  }
  if (!ValidClusterName(shell.cluster_name)) {
    return named->Bad("is not a cluster name (1..48 of a-z, 0-9, '-', '_')");
  }
  core.framework_name = "etcd-" + shell.cluster_name;

  if ((shell.tls == "files") !=
      (!shell.tls_ca_cert_file.empty() && !shell.tls_ca_key_file.empty())) {
    return ca_cert.Bad(shell.tls == "files" ? "and --tls-ca-key are both needed with --tls=files"
                                            : "and --tls-ca-key are for --tls=files only");
  }
  core.tls = shell.tls != "off";
  if (shell.admin_tls_cert_file.empty() != shell.admin_tls_key_file.empty()) {
    return admin_cert.Bad("and --admin-tls-key go together");
  }
  if (core.cert_renew_before * 2 > shell.cert_lifetime) {
    return renew.Bad(
        "must be less than half of --cert-lifetime (else every renewal would be "
        "due again at once)");
  }
  if (state_dir.empty()) return state.Bad("must not be empty");
  shell.state_dir = state_dir;
  if (zk.empty()) shell.store_spec = state_dir;
  if (shell.admin_insecure && !shell.reseed_token_file.empty()) {
    return insecure.Bad("contradicts --reseed-token-file (a token guards the commands); drop one");
  }
  if (shell.webui_url.empty()) {
    shell.webui_url =
        fmt::format("{}://{}:{}/", shell.AdminScheme(), shell.address, shell.admin_port);
  }
  if (!user.empty()) {
    shell.user = user;
  } else if (auto it = env.find("USER"); it != env.end() && !it->second.empty()) {
    shell.user = it->second;
  }
  if (!principal.empty()) shell.principal = principal;
  if (!shell.secret_file.empty() && principal.empty()) {
    return secret_file.Bad("needs --principal as well");
  }
  shell.failover_timeout_s = failover.count();
  // A TLS probe is a handshake (two more round trips, each a wait for both processes to be
  // scheduled) before its request: on a loaded host whole rounds of healthy members' probes
  // timed out together, which read as a cluster without a leader (at 500 ms often, at 1 s in
  // one ASan run in three; the stalls seen lasted up to 1.3 s). A member that is gone refuses
  // at once; only a hung or partitioned one waits this long.
  shell.probe_timeout = std::max(core.probe_interval, shell.tls == "off" ? 500ms : 2000ms);
  core.defrag_min_bytes = static_cast<uint64_t>(defrag_min_size);
  core.quota_backend_bytes = static_cast<uint64_t>(shell.upkeep.quota_backend_bytes);
  core.backups = !shell.backup_dir.empty();
  if (shell.healthz_max_backup_age.count() > 0 && !core.backups) {
    return max_age.Bad("needs --backup-dir (backups are off)");
  }
  if (!shell.restore_from.empty() && !core.backups) {
    return restore.Bad("needs --backup-dir (the snapshot is kept there and served to the agent)");
  }
  if (Problem p = CheckRetention(shell.upkeep)) return retention.Bad(*p);
  return out;
}

std::vector<std::string> EtcdUpkeepFlags(const EtcdUpkeep& upkeep) {
  return {
      "--auto-compaction-mode=" + upkeep.auto_compaction_mode,
      "--auto-compaction-retention=" + upkeep.etcd_retention,
      fmt::format("--quota-backend-bytes={}", upkeep.quota_backend_bytes),
      fmt::format("--experimental-initial-corrupt-check={}", upkeep.initial_corrupt_check),
      // etcd reads a Go duration; "0s" turns the periodic check off.
      fmt::format(
          "--experimental-corrupt-check-time={}s",
          std::chrono::duration_cast<std::chrono::seconds>(upkeep.corrupt_check_time).count()),
  };
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
  if (config.tls == "files") {
    for (auto [flag, path, into] :
         {std::tuple{"--tls-ca-cert", &config.tls_ca_cert_file, &config.tls_ca_cert},
          std::tuple{"--tls-ca-key", &config.tls_ca_key_file, &config.tls_ca_key}}) {
      auto text = ReadWholeFile(flag, *path);
      if (!text.ok()) return text.error();
      *into = *text;
    }
  }
  if (!config.admin_tls_cert_file.empty()) {
    for (auto [flag, path, into] :
         {std::tuple{"--admin-tls-cert", &config.admin_tls_cert_file, &config.admin_tls_cert},
          std::tuple{"--admin-tls-key", &config.admin_tls_key_file, &config.admin_tls_key}}) {
      auto text = ReadWholeFile(flag, *path);
      if (!text.ok()) return text.error();
      *into = *text + "\n";
    }
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
