// The command line and environment of etcd-mesos-scheduler, parsed into the core's CoreConfig and
// the shell's ShellConfig. Flags keep the original's names where they still make sense (reference
// section 1.1; Go-style `-name=value` is accepted too) and the environment variables of its
// container image still work (FRAMEWORK_NAME, MESOS_MASTER, ZK_PERSIST, CLUSTER_SIZE, ...). A flag
// given on the command line wins over its environment variable, which wins over the default.
//
// ParseFlags is a pure function of argv and an environment map: it checks every value and answers
// kInvalidArgument naming the flag (and the variable, when the value came from one). LoadFiles
// then does the little I/O that configuration needs (binaries exist, secret and token files
// read), with errors that name the flag too. main() turns either error into exit code 2 before
// anything starts.
//
// Threading: plain functions on values.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/uri.h"
#include "scheduler/core/backup_retention.h"
#include "scheduler/core/types.h"

namespace etcd_mesos::scheduler::shell {

struct EtcdUpkeep {
  std::string auto_compaction_mode = "periodic";  // or "revision"
  // periodic: how much history to keep (a duration: "1h"); revision: how many revisions.
  std::string auto_compaction_retention = "1h";
  std::string etcd_retention = "3600s";            // as etcd is given it (set by ParseFlags)
  int64_t quota_backend_bytes = int64_t{2} << 30;  // etcd's own default, 2 GiB
  bool initial_corrupt_check = true;
  std::chrono::milliseconds corrupt_check_time{10 * 60 * 1000};  // 0: no periodic check
};

// The etcd flags of `upkeep` ("--name=value"), for TaskConfig::extra_flags.
std::vector<std::string> EtcdUpkeepFlags(const EtcdUpkeep& upkeep);

struct ShellConfig {
  std::string cluster_name = "default";  // framework name etcd-<cluster-name>
  std::string master_spec = "127.0.0.1:5050";
  MasterAddress master;
  // Where the state lives: a zk:// URL (--zk-framework-persist) or a directory (--state-dir).
  std::string store_spec = "./etcd-mesos-state";
  // --state-dir, also with ZooKeeper: where the generated admin token's file is kept.
  std::string state_dir = "./etcd-mesos-state";
  std::string address = "127.0.0.1";  // the scheduler's own IP: admin server, artifacts, webui
  uint16_t admin_port = 12300;
  bool admin_bind_all = false;  // bind 0.0.0.0 instead of --address
  std::string webui_url;        // default http://<address>:<admin-port>/
  std::string user = "root";
  double failover_timeout_s = 7 * 24 * 3600;
  std::optional<std::string> principal;
  std::string secret_file;
  std::string secret;  // read by LoadFiles
  std::string executor_bin, etcd_bin, etcdctl_bin;
  std::string reseed_token_file;
  // Read by LoadFiles from --reseed-token-file; empty: the shell generates one (admin_token.h)
  // unless admin_insecure leaves the commands open.
  std::string admin_token;
  bool admin_insecure = false;
  // TLS for the members (member_certificates.h): "auto", "files" or "off"; with "files", the
  // operator's CA (read by LoadFiles into tls_ca_cert / tls_ca_key).
  std::string tls = "auto";
  std::string tls_ca_cert_file, tls_ca_key_file;
  std::string tls_ca_cert, tls_ca_key;
  // HTTPS for the admin server (API, console, artifacts, /certificates): the operator's
  // certificate and key files (read by LoadFiles into admin_tls_cert / admin_tls_key). Empty:
  // plain http. The agents' fetcher and the executors verify it with their hosts' trust store.
  std::string admin_tls_cert_file, admin_tls_key_file;
  std::string admin_tls_cert, admin_tls_key;
  std::string AdminScheme() const { return admin_tls_cert_file.empty() ? "http" : "https"; }
  std::chrono::milliseconds cert_lifetime{365LL * 24 * 3600 * 1000};
  std::chrono::milliseconds probe_timeout{1'000};
  // One maintenance step (compaction, defragmentation, disarm): a defragmentation rewrites the
  // database file, seconds per GiB.
  std::chrono::milliseconds maintenance_timeout{300'000};
  // ExecutorInfo.shutdown_grace_period of every member's executor.
  std::chrono::milliseconds executor_shutdown_grace{10'000};
  // etcd's own upkeep, passed to every member launched from now on (a running member keeps what
  // it was started with): auto-compaction, the backend quota and the corruption checks.
  EtcdUpkeep upkeep;
  // Backups: empty dir = off (CoreConfig::backups follows it).
  std::string backup_dir;
  RetentionPolicy retention;
  std::chrono::milliseconds healthz_max_backup_age{0};  // 0: /healthz ignores backups
  std::string restore_from;  // a snapshot file to restore from at start (total loss / empty)
  // Each new backup restored into a scratch etcd and its HashKV compared (backup_verifier.h).
  bool backup_verify = true;
  std::chrono::milliseconds backup_verify_timeout{60'000};
  std::string log_level = "info";
};

struct SchedulerFlags {
  CoreConfig core;
  ShellConfig shell;
};

struct ParsedFlags {
  bool help = false;  // --help was asked: print `text` and exit 0
  std::string text;
  SchedulerFlags flags;
  // The original's flags that have no use here (glog's, the libprocess driver's, the separate
  // artifact server's): accepted so that its command lines still start us, each with a warning
  // to log.
  std::vector<std::string> warnings;
};

// `args` without the program name. `program_dir` is where the scheduler binary lives (the
// default --executor-bin is etcd-mesos-executor beside it).
Result<ParsedFlags> ParseFlags(const std::vector<std::string>& args,
                               const std::map<std::string, std::string>& env,
                               const std::string& program_dir);

// Checks that the three artifacts exist and are regular files, reads --secret-file (trailing
// newline trimmed: the original kept it and failed authentication) and --reseed-token-file.
Status LoadFiles(ShellConfig& config);

}  // namespace etcd_mesos::scheduler::shell
