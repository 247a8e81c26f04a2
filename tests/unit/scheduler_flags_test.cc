// The scheduler's flags and environment: defaults, the original's names and variables, flags over
// environment, and a clear error naming the flag for every bad value.
#include "scheduler/shell/flags.h"

#include <fstream>

#include <gtest/gtest.h>

#include "testing/tempdir.h"

namespace etcd_mesos::scheduler::shell {
namespace {

using Env = std::map<std::string, std::string>;

Result<ParsedFlags> Parse(std::vector<std::string> args, Env env = {}) {
  return ParseFlags(args, env, "/opt/em/bin");
}

SchedulerFlags Ok(std::vector<std::string> args, Env env = {}) {
  auto r = Parse(std::move(args), std::move(env));
  EXPECT_TRUE(r.ok()) << r.error();
  if (!r.ok()) return {};
  EXPECT_FALSE(r->help);
  return r->flags;
}

// The error for these flags names `needle` (the flag, and the variable if from one).
void ExpectError(std::vector<std::string> args, const std::string& needle, Env env = {}) {
  auto r = Parse(args, env);
  ASSERT_FALSE(r.ok()) << "accepted: " << ::testing::PrintToString(args);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find(needle), std::string::npos)
      << "'" << r.error().message << "' does not name " << needle;
}

TEST(SchedulerFlags, Defaults) {
  SchedulerFlags f = Ok({});
  EXPECT_EQ(f.core.framework_name, "etcd-default");
  EXPECT_EQ(f.core.cluster_size, 3);
  EXPECT_TRUE(f.core.auto_reseed);
  EXPECT_EQ(f.core.reseed_timeout, std::chrono::seconds(240));
  EXPECT_TRUE(f.core.single_member_per_agent);
  EXPECT_EQ(f.core.role, "*");
  EXPECT_EQ(f.core.refuse_seconds, 15);
  EXPECT_EQ(f.core.probe_interval, std::chrono::seconds(1));
  EXPECT_EQ(f.shell.admin_port, 12300);
  EXPECT_EQ(f.shell.address, "127.0.0.1");
  EXPECT_FALSE(f.shell.admin_bind_all);
  EXPECT_EQ(f.shell.webui_url, "http://127.0.0.1:12300/");
  EXPECT_EQ(f.shell.failover_timeout_s, 604800);
  EXPECT_EQ(f.shell.store_spec, "./etcd-mesos-state");
  ASSERT_TRUE(f.shell.master.direct.has_value());
  EXPECT_EQ(f.shell.master.direct->ToString(), "127.0.0.1:5050");
  EXPECT_EQ(f.shell.executor_bin, "/opt/em/bin/etcd-mesos-executor");
  EXPECT_EQ(f.shell.etcd_bin, "/usr/bin/etcd");
  EXPECT_EQ(f.shell.etcdctl_bin, "/usr/bin/etcdctl");
  EXPECT_TRUE(f.shell.reseed_token_file.empty());
  EXPECT_FALSE(f.shell.admin_insecure) << "the commands are guarded by default";
  EXPECT_EQ(f.shell.state_dir, "./etcd-mesos-state");
  EXPECT_FALSE(f.shell.principal.has_value());
}

// TLS: auto by default; auto and files turn the core's TLS on, off turns it off; files needs both
// CA files and only files takes them; anything else is named.
// HTTPS for the admin server: certificate and key together; the URLs it hands out say https.
TEST(SchedulerFlags, AdminHttpsFlagsGoTogetherAndMakeTheUrlsHttps) {
  EXPECT_EQ(Ok({}).shell.AdminScheme(), "http");
  EXPECT_EQ(Ok({}).shell.webui_url, "http://127.0.0.1:12300/");
  SchedulerFlags https = Ok({"--admin-tls-cert=/etc/a.crt", "--admin-tls-key=/etc/a.key"});
  EXPECT_EQ(https.shell.AdminScheme(), "https");
  EXPECT_EQ(https.shell.webui_url, "https://127.0.0.1:12300/");
  ExpectError({"--admin-tls-cert=/etc/a.crt"}, "--admin-tls-key");
  ExpectError({"--admin-tls-key=/etc/a.key"}, "--admin-tls-cert");
}

TEST(SchedulerFlags, TlsFlags) {
  SchedulerFlags secure = Ok({});
  EXPECT_EQ(secure.shell.tls, "auto");
  EXPECT_TRUE(secure.core.tls);
  EXPECT_EQ(secure.shell.cert_lifetime, std::chrono::hours(24 * 365));
  SchedulerFlags off = Ok({"--tls=off"});
  EXPECT_FALSE(off.core.tls);
  // A probe waits at least a probe interval, and at least 2 s for a TLS handshake and request.
  EXPECT_EQ(Ok({"--probe-interval=500ms"}).shell.probe_timeout, std::chrono::seconds(2));
  EXPECT_EQ(Ok({"--probe-interval=500ms", "--tls=off"}).shell.probe_timeout,
            std::chrono::milliseconds(500));
  EXPECT_EQ(Ok({"--probe-interval=3s"}).shell.probe_timeout, std::chrono::seconds(3));
  EXPECT_FALSE(Ok({}, {{"ETCD_TLS", "off"}}).core.tls);
  SchedulerFlags on = Ok({"--tls=auto", "--cert-lifetime=90d"});
  EXPECT_TRUE(on.core.tls);
  EXPECT_EQ(on.shell.cert_lifetime, std::chrono::hours(24 * 90));
  SchedulerFlags files = Ok({"--tls=files", "--tls-ca-cert=/ca.crt", "--tls-ca-key=/ca.key"});
  EXPECT_TRUE(files.core.tls);
  EXPECT_EQ(files.shell.tls_ca_cert_file, "/ca.crt");
  EXPECT_TRUE(Ok({}, {{"ETCD_TLS", "auto"}}).core.tls);
  ExpectError({"--tls=maybe"}, "--tls");
  ExpectError({"--tls=files", "--tls-ca-cert=/ca.crt"}, "--tls-ca-cert");
  ExpectError({"--tls=auto", "--tls-ca-cert=/ca.crt", "--tls-ca-key=/k"}, "--tls-ca-cert");
  ExpectError({"--cert-lifetime=1m"}, "--cert-lifetime");
  EXPECT_EQ(off.core.cert_renew_before, std::chrono::hours(24 * 30));
  EXPECT_EQ(Ok({"--cert-renew-before=7d"}).core.cert_renew_before, std::chrono::hours(24 * 7));
  ExpectError({"--cert-lifetime=40d"}, "--cert-renew-before");
  ExpectError({"--cert-renew-before=200d"}, "--cert-renew-before");
}

// The admin token: --admin-token-file is --reseed-token-file's other name; with ZooKeeper the
// state dir still says where a generated token's file goes; --admin-insecure opens the commands
// and contradicts a token file.
TEST(SchedulerFlags, AdminTokenFlags) {
  EXPECT_EQ(Ok({"--admin-token-file=/t"}).shell.reseed_token_file, "/t");
  SchedulerFlags zk = Ok({"--zk-framework-persist=zk://z1:2181/em", "--state-dir=/var/lib/em"});
  EXPECT_EQ(zk.shell.store_spec, "zk://z1:2181/em");
  EXPECT_EQ(zk.shell.state_dir, "/var/lib/em");
  EXPECT_TRUE(Ok({"--admin-insecure"}).shell.admin_insecure);
  ExpectError({"--admin-insecure", "--admin-token-file=/t"}, "--admin-insecure");
}

TEST(SchedulerFlags, EveryFlag) {
  SchedulerFlags f = Ok({"--cluster-name=prod",
                         "--master=zk://z1:2181,z2:2181/mesos",
                         "--zk-framework-persist=zk://z1:2181/etcd-mesos",
                         "--cluster-size=5",
                         "--address=10.1.2.3",
                         "--admin-port=8080",
                         "--admin-bind-all",
                         "--auto-reseed=false",
                         "--reseed-timeout=90",
                         "--failover-timeout=1h",
                         "--single-instance-per-slave=false",
                         "--role=etcd",
                         "--principal=p",
                         "--secret-file=/s",
                         "--cpu-limit=0.5",
                         "--mem-limit=256",
                         "--disk-limit=100",
                         "--mesos-offer-refuse-seconds=30",
                         "--executor-bin=/x/exec",
                         "--etcd-bin=/x/etcd",
                         "--etcdctl-bin=/x/ctl",
                         "--reseed-token-file=/t",
                         "--probe-interval=500ms",
                         "--log-level=debug",
                         "--user=etcd",
                         "--staging-timeout=1m",
                         "--learner-timeout=30s"});
  EXPECT_EQ(f.core.framework_name, "etcd-prod");
  EXPECT_EQ(f.shell.cluster_name, "prod");
  ASSERT_TRUE(f.shell.master.zk.has_value());
  EXPECT_EQ(f.shell.master.zk->path, "/mesos");
  EXPECT_EQ(f.shell.store_spec, "zk://z1:2181/etcd-mesos");
  EXPECT_EQ(f.core.cluster_size, 5);
  EXPECT_EQ(f.shell.address, "10.1.2.3");
  EXPECT_EQ(f.shell.admin_port, 8080);
  EXPECT_TRUE(f.shell.admin_bind_all);
  EXPECT_EQ(f.shell.webui_url, "http://10.1.2.3:8080/");
  EXPECT_FALSE(f.core.auto_reseed);
  EXPECT_EQ(f.core.reseed_timeout, std::chrono::seconds(90));
  EXPECT_EQ(f.shell.failover_timeout_s, 3600);
  EXPECT_FALSE(f.core.single_member_per_agent);
  EXPECT_EQ(f.core.role, "etcd");
  EXPECT_EQ(f.shell.principal, "p");
  EXPECT_EQ(f.shell.secret_file, "/s");
  EXPECT_EQ(f.core.task_cpus, 0.5);
  EXPECT_EQ(f.core.task_mem, 256);
  EXPECT_EQ(f.core.task_disk, 100);
  EXPECT_EQ(f.core.refuse_seconds, 30);
  EXPECT_EQ(f.shell.executor_bin, "/x/exec");
  EXPECT_EQ(f.shell.etcd_bin, "/x/etcd");
  EXPECT_EQ(f.shell.etcdctl_bin, "/x/ctl");
  EXPECT_EQ(f.shell.reseed_token_file, "/t");
  EXPECT_EQ(f.core.probe_interval, std::chrono::milliseconds(500));
  EXPECT_EQ(f.shell.log_level, "debug");
  EXPECT_EQ(f.shell.user, "etcd");
  EXPECT_EQ(f.core.staging_timeout, std::chrono::minutes(1));
  EXPECT_EQ(f.core.learner_timeout, std::chrono::seconds(30));
}

TEST(SchedulerFlags, TheOriginalsSpellingsWork) {
  SchedulerFlags f =
      Ok({"-cluster-size=7", "-mesos-authentication-principal=p", "-failover-timeout-seconds=300.5",
          "-sandbox-mem-limit=2048", "-zk-framework-persist=z1:2181/etcd-mesos"});
  EXPECT_EQ(f.core.cluster_size, 7);
  EXPECT_EQ(f.shell.principal, "p");
  EXPECT_EQ(f.shell.failover_timeout_s, 300.5);
  EXPECT_EQ(f.core.task_mem, 2048);
  EXPECT_EQ(f.shell.store_spec, "zk://z1:2181/etcd-mesos");  // zk:// was optional
}

// The original's command lines start us: -framework-name is the whole framework name, and its
// flags with no use here (glog's, the driver's, the artifact server's) are ignored with a warning
// that says why, whether their value follows '=' or comes as the next argument.
TEST(SchedulerFlags, TheOriginalsLeftoverFlagsAreIgnoredWithAWarning) {
  auto r = Parse({"-framework-name=etcd-orders", "-alsologtostderr=true", "-logtostderr", "-v=2",
                  "-artifact-port", "12301", "-driver-port=0",
                  "-mesos-authentication-provider=SASL", "-cluster-size=5"},
                 {});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->flags.core.framework_name, "etcd-orders");
  EXPECT_EQ(r->flags.core.cluster_size, 5) << "the value after -artifact-port was not taken";
  ASSERT_EQ(r->warnings.size(), 6u);
  EXPECT_NE(r->warnings[3].find("--artifact-port (the original's) is ignored: artifacts are "
                                "served by the admin server"),
            std::string::npos)
      << r->warnings[3];
  // --cluster-name wins over the original's spelling; a framework name without the etcd- prefix
  // is refused, naming the flag.
  EXPECT_EQ(Ok({"--cluster-name=a", "-framework-name=etcd-b"}).core.framework_name, "etcd-a");
  auto bad = Parse({"-framework-name=orders"}, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("--framework-name"), std::string::npos) << bad.error();
}

TEST(SchedulerFlags, EnvironmentOfTheContainerImage) {
  Env env = {{"FRAMEWORK_NAME", "etcd-orders"},
             {"MESOS_MASTER", "10.0.0.1:5050"},
             {"ZK_PERSIST", "zk://10.0.0.1:2181/etcd-mesos"},
             {"CLUSTER_SIZE", "5"},
             {"AUTO_RESEED", "false"},
             {"RESEED_TIMEOUT", "60"},
             {"CPU_LIMIT", "2"},
             {"MEM_LIMIT", "512"},
             {"DISK_LIMIT", "1024"},
             {"FRAMEWORK_FAILOVER_TIMEOUT_SECONDS", "300"},
             {"SINGLE_INSTANCE_PER_SLAVE", "false"},
             {"PORT0", "31555"},
             {"USER", "mesos"}};
  SchedulerFlags f = Ok({}, env);
  EXPECT_EQ(f.core.framework_name, "etcd-orders");  // not etcd-etcd-orders
  EXPECT_EQ(f.shell.master.direct->ToString(), "10.0.0.1:5050");
  EXPECT_EQ(f.shell.store_spec, "zk://10.0.0.1:2181/etcd-mesos");
  EXPECT_EQ(f.core.cluster_size, 5);
  EXPECT_FALSE(f.core.auto_reseed);
  EXPECT_EQ(f.core.reseed_timeout, std::chrono::seconds(60));
  EXPECT_EQ(f.core.task_cpus, 2);
  EXPECT_EQ(f.core.task_mem, 512);
  EXPECT_EQ(f.core.task_disk, 1024);
  EXPECT_EQ(f.shell.failover_timeout_s, 300);
  EXPECT_FALSE(f.core.single_member_per_agent);
  EXPECT_EQ(f.shell.admin_port, 31555);
  EXPECT_EQ(f.shell.user, "mesos");
}

TEST(SchedulerFlags, FrameworkNameWithoutPrefixIsTheClusterName) {
  EXPECT_EQ(Ok({}, {{"FRAMEWORK_NAME", "orders"}}).core.framework_name, "etcd-orders");
  EXPECT_EQ(Ok({}, {{"CLUSTER_NAME", "etcd-x"}}).core.framework_name, "etcd-etcd-x");
}

TEST(SchedulerFlags, FlagsWinOverEnvironment) {
  Env env = {{"CLUSTER_SIZE", "9"}, {"PORT0", "1"}, {"AUTO_RESEED", "nonsense"}};
  SchedulerFlags f = Ok({"--cluster-size=3", "--admin-port=2000", "--auto-reseed=true"}, env);
  EXPECT_EQ(f.core.cluster_size, 3);
  EXPECT_EQ(f.shell.admin_port, 2000);
  EXPECT_TRUE(f.core.auto_reseed);
}

TEST(SchedulerFlags, BadValuesNameTheFlag) {
  ExpectError({"--cluster-size=0"}, "--cluster-size");
  ExpectError({"--cluster-size=three"}, "--cluster-size");
  ExpectError({"--cluster-size=3x"}, "--cluster-size");
  ExpectError({"--admin-port=70000"}, "--admin-port");
  ExpectError({"--admin-port=-1"}, "--admin-port");
  ExpectError({"--auto-reseed=maybe"}, "--auto-reseed");
  ExpectError({"--reseed-timeout=soon"}, "--reseed-timeout");
  ExpectError({"--reseed-timeout=0"}, "--reseed-timeout");
  ExpectError({"--failover-timeout=0"}, "--failover-timeout");
  ExpectError({"--failover-timeout=60*60*24*7"}, "--failover-timeout");  // the Dockerfile's
  ExpectError({"--master=nowhere"}, "--master");
  ExpectError({"--master=zk://"}, "--master");
  ExpectError({"--zk-framework-persist=zk://h:2181"}, "--zk-framework-persist");
  ExpectError({"--cluster-name=Prod!"}, "--cluster-name");
  ExpectError({"--cluster-name="}, "--cluster-name");
  ExpectError({"--cpu-limit=0"}, "--cpu-limit");
  ExpectError({"--mem-limit=lots"}, "--mem-limit");
  ExpectError({"--disk-limit=nan"}, "--disk-limit");
  ExpectError({"--probe-interval=1ms"}, "--probe-interval");
  ExpectError({"--log-level=loud"}, "--log-level");
  ExpectError({"--role=a/b"}, "--role");
  ExpectError({"--address=http://x"}, "--address");
  ExpectError({"--secret-file=/s"}, "--principal");
  ExpectError({"--state-dir="}, "--state-dir");
}

// etcd's upkeep: on by default, every flag a member gets, and values etcd would refuse named
// here rather than found when a member crash-loops on the agent.
TEST(SchedulerFlags, EtcdUpkeepIsOnByDefaultAndReachesEtcdAsItsOwnFlags) {
  SchedulerFlags f = Ok({});
  EXPECT_EQ(EtcdUpkeepFlags(f.shell.upkeep),
            (std::vector<std::string>{
                "--auto-compaction-mode=periodic", "--auto-compaction-retention=3600s",
                "--quota-backend-bytes=2147483648", "--experimental-initial-corrupt-check=true",
                "--experimental-corrupt-check-time=600s"}));
  f = Ok({"--auto-compaction-mode=revision", "--auto-compaction-retention=5000",
          "--quota-backend-bytes=4294967296", "--initial-corrupt-check=false",
          "--corrupt-check-time=0"});
  EXPECT_EQ(EtcdUpkeepFlags(f.shell.upkeep),
            (std::vector<std::string>{
                "--auto-compaction-mode=revision", "--auto-compaction-retention=5000",
                "--quota-backend-bytes=4294967296", "--experimental-initial-corrupt-check=false",
                "--experimental-corrupt-check-time=0s"}));
  // Go has no days: a week of history reaches etcd in seconds.
  f = Ok({"--auto-compaction-retention=7d"});
  EXPECT_EQ(EtcdUpkeepFlags(f.shell.upkeep)[1], "--auto-compaction-retention=604800s");
  EXPECT_EQ(EtcdUpkeepFlags(Ok({"--auto-compaction-retention=0"}).shell.upkeep)[1],
            "--auto-compaction-retention=0");
  ExpectError({"--auto-compaction-mode=hourly"}, "--auto-compaction-mode");
  ExpectError({"--auto-compaction-retention=soon"}, "--auto-compaction-retention");
  ExpectError({"--auto-compaction-mode=revision", "--auto-compaction-retention=1h"},
              "--auto-compaction-retention");
  ExpectError({"--quota-backend-bytes=1"}, "--quota-backend-bytes");
  ExpectError({"--quota-backend-bytes=17179869184"}, "--quota-backend-bytes");
  ExpectError({"--corrupt-check-time=forever"}, "--corrupt-check-time");
  auto help = Parse({"--help"});
  ASSERT_TRUE(help.ok());
  for (const char* flag :
       {"--auto-compaction-mode", "--auto-compaction-retention", "--quota-backend-bytes",
        "--initial-corrupt-check", "--corrupt-check-time"}) {
    EXPECT_NE(help->text.find(flag), std::string::npos) << flag;
  }
}

// The scheduler's own corruption check: every 5 minutes by default, 0 turns it off, and less
// than a second is refused (each check runs etcdctl against every member).
TEST(SchedulerFlags, HashCheckIntervalDefaultsToFiveMinutesAndZeroTurnsItOff) {
  EXPECT_EQ(Ok({}).core.hash_check_interval, std::chrono::minutes(5));
  EXPECT_EQ(Ok({"--hash-check-interval=30s"}).core.hash_check_interval, std::chrono::seconds(30));
  EXPECT_EQ(Ok({"--hash-check-interval=0"}).core.hash_check_interval.count(), 0);
  ExpectError({"--hash-check-interval=500ms"}, "--hash-check-interval");
  ExpectError({"--hash-check-interval=often"}, "--hash-check-interval");
}

TEST(SchedulerFlags, BadEnvironmentValuesNameFlagAndVariable) {
  ExpectError({}, "--cluster-size (from CLUSTER_SIZE)", {{"CLUSTER_SIZE", "x"}});
  ExpectError({}, "FRAMEWORK_FAILOVER_TIMEOUT_SECONDS",
              {{"FRAMEWORK_FAILOVER_TIMEOUT_SECONDS", "60*60*24*7"}});
  ExpectError({}, "AUTO_RESEED", {{"AUTO_RESEED", "perhaps"}});
  ExpectError({}, "PORT0", {{"PORT0", "0"}});
}

TEST(SchedulerFlags, UnknownFlagsAndMissingValuesAreErrors) {
  ExpectError({"--no-such-flag=1"}, "--no-such-flag");
  ExpectError({"--cluster-size"}, "--cluster-size");
  ExpectError({"stray"}, "stray");
}

TEST(SchedulerFlags, HelpExplainsEveryFlag) {
  auto r = Parse({"--help"});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r->help);
  for (const char* flag : {"--cluster-name",
                           "--master",
                           "--zk-framework-persist",
                           "--state-dir",
                           "--cluster-size",
                           "--admin-port",
                           "--address",
                           "--auto-reseed",
                           "--reseed-timeout",
                           "--failover-timeout",
                           "--single-instance-per-slave",
                           "--role",
                           "--principal",
                           "--secret-file",
                           "--cpu-limit",
                           "--mem-limit",
                           "--disk-limit",
                           "--mesos-offer-refuse-seconds",
                           "--executor-bin",
                           "--etcd-bin",
                           "--etcdctl-bin",
                           "--reseed-token-file",
                           "--probe-interval",
                           "--log-level",
                           "CLUSTER_SIZE",
                           "MESOS_MASTER",
                           "ZK_PERSIST",
                           "PORT0"}) {
    EXPECT_NE(r->text.find(flag), std::string::npos) << flag;
  }
}

class SchedulerFlagsFiles : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& data) {
    auto path = dir_.path() / name;
    std::ofstream(path) << data;
    return path.string();
  }
  ShellConfig Config() {
    ShellConfig c;
    c.executor_bin = Write("exec", "x");
    c.etcd_bin = Write("etcd", "x");
    c.etcdctl_bin = Write("etcdctl", "x");
    return c;
  }
  test::TempDir dir_;
};

TEST_F(SchedulerFlagsFiles, ReadsSecretAndTokenTrimmed) {
  ShellConfig c = Config();
  c.principal = "p";
  c.secret_file = Write("secret", "s3cret\n");
  c.reseed_token_file = Write("token", "tok123\n");
  ASSERT_TRUE(LoadFiles(c).ok());
  EXPECT_EQ(c.secret, "s3cret");
  EXPECT_EQ(c.admin_token, "tok123");
}

TEST_F(SchedulerFlagsFiles, MissingFilesNameTheFlag) {
  const std::pair<std::string ShellConfig::*, std::string> cases[] = {
      {&ShellConfig::executor_bin, "--executor-bin"},
      {&ShellConfig::etcd_bin, "--etcd-bin"},
      {&ShellConfig::etcdctl_bin, "--etcdctl-bin"},
      {&ShellConfig::secret_file, "--secret-file"},
      {&ShellConfig::reseed_token_file, "--reseed-token-file"},
  };
  for (const auto& [field, flag] : cases) {
    ShellConfig c = Config();
    c.*field = (dir_.path() / "absent").string();
    auto s = LoadFiles(c);
    ASSERT_FALSE(s.ok()) << flag;
    EXPECT_NE(s.error().message.find(flag), std::string::npos) << s.error().message;
  }
  ShellConfig c = Config();
  c.reseed_token_file = Write("empty", "\n");
  EXPECT_FALSE(LoadFiles(c).ok());
  c = Config();
  c.reseed_token_file = Write("spaced", "a b");
  EXPECT_FALSE(LoadFiles(c).ok());
  c = Config();
  c.executor_bin = dir_.path().string();  // a directory is not a binary
  EXPECT_FALSE(LoadFiles(c).ok());
}

}  // namespace
}  // namespace etcd_mesos::scheduler::shell
