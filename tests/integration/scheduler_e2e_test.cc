// The whole system on one machine: the scheduler (shell + core) against etcd-mesos-local, with
// the real executor fetched from the scheduler's artifact server and real etcd: bootstrap of 3
// and of 5 at once, and a heal followed by a scheduler restart that disturbs nothing. The
// incidents of the on-call guide (majority loss and reseed, manual reseed, a stopped agent, ...)
// are rehearsed with a checked workload in tests/faults/fault_suite_test.cc.
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "net/http.h"
#include "testing/local_system.h"
#include "testing/tempdir.h"
#include "tls/pki.h"

namespace etcd_mesos::scheduler {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The fixture hands everything to test::LocalSystem; these forward to it so that the tests
// read as the incidents they rehearse.
class SchedulerHealing : public ::testing::Test {
 protected:
  void StartAll(int size, std::chrono::milliseconds reseed_timeout = std::chrono::seconds(240),
                std::vector<std::string> extra_flags = {}) {
    test::LocalSystemOptions options;
    options.size = size;
    options.executor_path = EXECUTOR_PATH;
    options.extra_flags = {"--reseed-timeout=" + std::to_string(reseed_timeout.count()) + "ms"};
    options.extra_flags.insert(options.extra_flags.end(), extra_flags.begin(), extra_flags.end());
    system_.Start(options);
  }
  void StartScheduler() { system_.StartScheduler(); }
  bool RunUntil(const std::function<bool()>& done, int seconds) {
    return system_.RunUntil(done, seconds);
  }
  const SchedulerCore& core() const { return system_.core(); }
  bool AtSize(int size) const { return system_.AtSize(size); }
  std::pair<int, std::string> Etcdctl(const std::string& args) { return system_.Etcdctl(args); }
  void KillMember(const std::string& name) { system_.KillMember(name); }
  // A request to the scheduler's admin server, which runs on io_: answered while io_ runs.
  Result<net::HttpResponse> Admin(net::HttpRequest req) {
    req.endpoint = system_.scheduler()->admin_address();
    std::optional<Result<net::HttpResponse>> out;
    net::HttpFetch(io_, std::move(req), [&](Result<net::HttpResponse> r) { out.emplace(r); });
    RunUntil([&] { return out.has_value(); }, 15);
    if (!out) return MakeError(ErrorCode::kUnavailable, "the admin server did not answer");
    return *out;
  }

  test::TempDir dir_{"em-e2e"};
  boost::asio::io_context io_;
  test::LocalSystem system_{io_, dir_.path()};
};

TEST_F(SchedulerHealing, BootstrapsThreeHealsALostMemberAndSurvivesARestart) {
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(StartAll(3));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 90)) << core().health_reason();
  std::printf("[timing] bootstrap of 3 -> 3 healthy voters: %.1fs\n", Since(t0));
  auto health = Etcdctl("endpoint health");
  EXPECT_EQ(health.first, 0) << health.second;
  ASSERT_EQ(Etcdctl("put /e2e/before-heal kept").first, 0);

  // A member lost with its executor is replaced; the data stays.
  std::string victim = core().state().members.begin()->first;
  auto t1 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(KillMember(victim));
  ASSERT_TRUE(RunUntil([&] { return core().state().members.count(victim) == 0; }, 60))
      << "the dead member was not removed";
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  std::printf("[timing] member lost -> 3 healthy voters again: %.1fs\n", Since(t1));
  auto get = Etcdctl("get /e2e/before-heal --print-value-only");
  EXPECT_EQ(get.second, "kept\n");
  auto list = Etcdctl("member list");
  EXPECT_EQ(list.first, 0) << list.second;
  EXPECT_EQ(std::count(list.second.begin(), list.second.end(), '\n'), 3) << list.second;
  EXPECT_EQ(list.second.find("true"), std::string::npos) << "no learner left: " << list.second;

  // The scheduler dies and comes back: no member is disturbed.
  auto before = core().state().members;
  auto framework_id = core().state().framework_id;
  ASSERT_TRUE(framework_id.has_value());
  system_.StopScheduler();
  io_.run_for(std::chrono::milliseconds(500));
  ASSERT_NO_FATAL_FAILURE(StartScheduler());
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 60)) << core().health_reason();
  io_.run_for(std::chrono::seconds(3));
  EXPECT_EQ(core().state().members.size(), 3u);
  for (const auto& [name, m] : before) {
    ASSERT_EQ(core().state().members.count(name), 1u) << name << " was replaced";
    EXPECT_EQ(core().state().members.at(name).task_id, m.task_id);
  }
  EXPECT_EQ(core().state().counters.members_removed, 1u);
  EXPECT_EQ(core().state().framework_id, framework_id) << "re-subscribed as the same framework";
  EXPECT_EQ(system_.cluster().master().StateJson()["frameworks"].size(), 1u);
}

TEST_F(SchedulerHealing, BootstrapsFiveMembersAtOnce) {
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(StartAll(5));
  ASSERT_TRUE(RunUntil([&] { return AtSize(5); }, 120)) << core().health_reason();
  std::printf("[timing] bootstrap of 5 -> 5 healthy voters: %.1fs\n", Since(t0));
  EXPECT_EQ(core().state().counters.members_added, 0u) << "one static bootstrap, no joins";
  auto list = Etcdctl("member list");
  EXPECT_EQ(std::count(list.second.begin(), list.second.end(), '\n'), 5) << list.second;
}

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// --tls=auto: the scheduler makes the cluster's CA; every member gets its certificates for keys
// its executor made (0600 in its sandbox; no private key in any task or in /master/state), serves
// https only and wants a certificate of the CA from every client and peer. A replacement after a
// death gets its own. A plain client, one without a certificate and one with another CA's are
// refused; so is a certificate request without the task's token.
TEST_F(SchedulerHealing, ATlsClusterBootstrapsHealsAndServesOnlyClientsOfItsCa) {
  auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(StartAll(3, std::chrono::seconds(240), {"--tls=auto"}));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 90)) << core().health_reason();
  std::printf("[timing] TLS bootstrap of 3 -> 3 healthy voters: %.1fs\n", Since(t0));
  for (const auto& [name, m] : core().state().members) {
    EXPECT_TRUE(m.tls) << name;
    EXPECT_EQ(m.ClientUrl().rfind("https://", 0), 0u) << name;
    EXPECT_GT(m.cert_not_after, 0) << name << ": its certificates' expiry is on record";
  }
  ASSERT_EQ(Etcdctl("put /tls/key kept").first, 0);
  auto got = Etcdctl("get /tls/key --print-value-only");
  EXPECT_EQ(got.second, "kept\n");

  const Member& any = core().state().members.begin()->second;
  // Plain http to a client port: no answer.
  net::HttpRequest plain;
  plain.endpoint = HostPort{any.host, any.client_port};
  plain.target = "/health";
  plain.timeout = std::chrono::seconds(3);
  auto refused = net::HttpFetchSync(plain);
  EXPECT_FALSE(refused.ok() && refused->status == 200) << "plain http was served";
  // https without a client certificate, and with another CA's: refused.
  std::filesystem::path dir = dir_.path() / "state" / "tls";
  std::string ca = ReadAll(dir / "ca.crt");
  auto none = net::TlsClientConfig::Create(ca);
  ASSERT_TRUE(none.ok()) << none.error();
  plain.tls = *none;
  auto anonymous = net::HttpFetchSync(plain);
  EXPECT_FALSE(anonymous.ok() && anonymous->status == 200) << "a client without a certificate";
  auto now = std::chrono::system_clock::now();
  auto other =
      tls::NewAuthority("another CA", now - std::chrono::hours(1), now + std::chrono::hours(24));
  ASSERT_TRUE(other.ok());
  auto stranger = tls::Issue(*other, {.common_name = "stranger",
                                      .ip_addresses = {"127.0.0.1"},
                                      .dns_names = {},
                                      .usage = tls::Usage::kClient,
                                      .not_before = now - std::chrono::hours(1),
                                      .not_after = now + std::chrono::hours(24)});
  ASSERT_TRUE(stranger.ok());
  auto foreign = net::TlsClientConfig::Create(ca, stranger->certificate_pem, stranger->key_pem);
  ASSERT_TRUE(foreign.ok()) << foreign.error();
  plain.tls = *foreign;
  auto from_stranger = net::HttpFetchSync(plain);
  EXPECT_FALSE(from_stranger.ok() && from_stranger->status == 200) << "another CA's client";

  // Keys stay where they were made: 0600 in the sandboxes, none in the master's state, and the
  // CA's key in no file but the state store's.
  int keys = 0;
  std::string ca_key_line;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_.path() / "mesos")) {
    if (entry.path().filename() != "server.key" && entry.path().filename() != "peer.key") continue;
    struct stat st {};
    ASSERT_EQ(::stat(entry.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << entry.path();
    ++keys;
  }
  EXPECT_EQ(keys, 6) << "a server and a peer key for each of 3 members";
  std::string master_state = system_.cluster().master().StateJson().dump();
  EXPECT_EQ(master_state.find("PRIVATE KEY"), std::string::npos);

  // An operator's client certificate: the CA from GET /ca.crt, a certificate and its key in one
  // PEM from GET /client-cert (admin token only), and etcdctl takes them as they come.
  net::HttpRequest get;
  get.target = "/ca.crt";
  auto ca_answer = Admin(get);
  ASSERT_TRUE(ca_answer.ok());
  EXPECT_EQ(ca_answer->status, 200u);
  EXPECT_EQ(ca_answer->body, ca);
  get.target = "/client-cert?name=oncall";
  auto no_token = Admin(get);
  ASSERT_TRUE(no_token.ok());
  EXPECT_EQ(no_token->status, 401u);
  std::ifstream token_in(dir_.path() / "state" / "admin-token");
  std::string token;
  token_in >> token;
  get.headers = {{"Authorization", "Bearer " + token}};
  auto issued = Admin(get);
  ASSERT_TRUE(issued.ok());
  ASSERT_EQ(issued->status, 200u) << issued->body;
  auto info = tls::ReadCertificate(issued->body);
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->subject_common_name, "oncall");
  EXPECT_TRUE(info->client_auth);
  std::filesystem::path pem = dir_.path() / "oncall.pem", ca_file = dir_.path() / "ca.pem";
  std::ofstream(pem) << issued->body;
  std::ofstream(ca_file) << ca_answer->body;
  auto oncall = test::RunCommand(
      "ETCDCTL_API=3 etcdctl --dial-timeout=3s --endpoints=" + system_.Endpoints() +
      " --cacert=" + ca_file.string() + " --cert=" + pem.string() + " --key=" + pem.string() +
      " get /tls/key --print-value-only");
  EXPECT_EQ(oncall.first, 0) << oncall.second;
  EXPECT_EQ(oncall.second, "kept\n");

  // The first certificate to expire is on /stats and /metrics, a year away.
  get.headers.clear();
  get.target = "/stats";
  auto stats = Admin(get);
  ASSERT_TRUE(stats.ok());
  auto j = nlohmann::json::parse(stats->body);
  EXPECT_EQ(j["tls"], 1);
  int64_t unix_now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  EXPECT_GT(j["cert_expiry_earliest"].get<int64_t>(), unix_now + 364 * 86400);
  EXPECT_NE(j["cert_expiry_member"].get<std::string>(), "");
  get.target = "/metrics";
  auto metrics = Admin(get);
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("etcd_mesos_cert_expiry_earliest_timestamp_seconds " +
                               std::to_string(j["cert_expiry_earliest"].get<int64_t>())),
            std::string::npos);

  // Certificates go only to a task with its own token (and once: scheduler_shell_test).
  net::HttpRequest again;
  again.method = net::Verb::post;
  again.target = "/certificates";
  auto requests = *tls::NewCertificateRequest("x");
  again.body = nlohmann::json{{"task_id", any.task_id},
                              {"server_csr", requests.request_pem},
                              {"peer_csr", requests.request_pem}}
                   .dump();
  again.headers = {{"Authorization", "Bearer not-the-token"}};
  auto wrong = Admin(again);
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->status, 401u);

  // A member lost is replaced by one with certificates of its own; the data stays.
  std::string victim = core().state().members.begin()->first;
  auto t1 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(KillMember(victim));
  ASSERT_TRUE(RunUntil([&] { return core().state().members.count(victim) == 0; }, 60));
  ASSERT_TRUE(RunUntil([&] { return AtSize(3); }, 120)) << core().health_reason();
  std::printf("[timing] TLS member lost -> 3 healthy voters again: %.1fs\n", Since(t1));
  for (const auto& [name, m] : core().state().members) EXPECT_GT(m.cert_not_after, 0) << name;
  EXPECT_EQ(Etcdctl("get /tls/key --print-value-only").second, "kept\n");
}

}  // namespace
}  // namespace etcd_mesos::scheduler
