// The admin server over HTTPS (--admin-tls-cert, --admin-tls-key), end to end with the real
// binaries as an operator runs them: etcd-mesos-local with the scheduler after `--`, the admin
// certificate issued by a CA that the hosts trust ($SSL_CERT_FILE standing for the system's
// trust store, given to the agents and, by --executor-environment-variables, their executors). The
// agents fetch the executor, etcd and etcdctl over https, each executor gets its member's
// certificates over https, and three TLS members serve. The API answers https to a client of that
// CA; plain http and a client that trusts another CA get nothing. The on-call guide's blocks work
// as written with an https ADMIN.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "net/http.h"
#include "testing/certificates.h"
#include "testing/guide.h"
#include "testing/ports.h"
#include "testing/process.h"
#include "testing/tempdir.h"
#include "testing/workload.h"

namespace etcd_mesos {
namespace {

namespace fs = std::filesystem;

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
}

// Writes an admin CA, a certificate of it for 127.0.0.1 and its key (ca.pem, admin.crt,
// admin.key) into `dir`; answers the CA.
tls::Authority WriteAdminCertificate(const fs::path& dir) {
  tls::Authority ca = test::NewTestAuthority("operator's admin CA");
  auto cert = tls::Issue(ca, test::CertificateFor("scheduler", {"127.0.0.1"}, tls::Usage::kServer));
  EXPECT_TRUE(cert.ok()) << cert.error();
  WriteFile(dir / "ca.pem", ca.certificate_pem);
  WriteFile(dir / "admin.crt", cert.ok() ? cert->certificate_pem : "");
  WriteFile(dir / "admin.key", cert.ok() ? cert->key_pem : "");
  return ca;
}

// etcd-mesos-local with three agents on `port` (and `agent_flags`), and the scheduler after `--`
// with its admin server on https://127.0.0.1:`admin` with dir's admin.crt.
std::vector<std::string> LocalWithHttpsScheduler(const fs::path& dir, uint16_t port, uint16_t admin,
                                                 std::vector<std::string> agent_flags) {
  std::vector<std::string> args = {
      ETCD_MESOS_LOCAL_PATH, "--agents=3", "--port=" + std::to_string(port),
      "--work-dir=" + (dir / "mesos").string(),
      fmt::format("--first-agent-ip=127.0.0.{}", test::AgentHostBase())};
  args.insert(args.end(), agent_flags.begin(), agent_flags.end());
  auto wrapper = test::WriteExecutorWrapper(dir, EXECUTOR_PATH);
  for (std::string flag :
       {std::string("--"), std::string(SCHEDULER_PATH),
        "--master=127.0.0.1:" + std::to_string(port), std::string("--cluster-name=https"),
        "--admin-port=" + std::to_string(admin),
        "--state-dir=" + (dir / "scheduler-state").string(), std::string("--cpu-limit=0.5"),
        std::string("--mem-limit=256"), std::string("--disk-limit=512"),
        "--executor-bin=" + wrapper.string(), "--admin-tls-cert=" + (dir / "admin.crt").string(),
        "--admin-tls-key=" + (dir / "admin.key").string()}) {
    args.push_back(flag);
  }
  return args;
}

TEST(AdminHttps, ThreeMembersBootstrapThroughAnHttpsAdminServer) {
  test::TempDir work{"em-admin-https"};
  tls::Authority ca = WriteAdminCertificate(work.path());
  uint16_t port = test::FreePort(), admin = test::FreePort();
  test::ChildProcess local(
      LocalWithHttpsScheduler(
          work.path(), port, admin,
          // The agents' hosts trust the admin CA: Mesos's agents pass such settings to their
          // executors (their own environment, or --executor_environment_variables).
          {nlohmann::json{{"SSL_CERT_FILE", (work.path() / "ca.pem").string()}}.dump().insert(
              0, "--executor-environment-variables=")}),
      work.path() / "local.log",
      // The hosts' trust store, as the system's: etcd-mesos-local's fetcher (Mesos's: curl)
      // reads it from the agent's environment.
      {{"SSL_CERT_FILE", (work.path() / "ca.pem").string()}});

  auto trusted = net::TlsClientConfig::Create(ca.certificate_pem);
  ASSERT_TRUE(trusted.ok()) << trusted.error();
  auto get = [&](const std::string& target, std::shared_ptr<const net::TlsClientConfig> tls) {
    net::HttpRequest request{net::Verb::get, {"127.0.0.1", admin}, target};
    request.tls = std::move(tls);
    request.timeout = std::chrono::seconds(5);
    return net::HttpFetchSync(std::move(request));
  };
  nlohmann::json stats;
  bool healthy = test::WaitFor(
      [&] {
        auto r = get("/stats", *trusted);
        if (!r.ok() || r->status != 200) return false;
        stats = nlohmann::json::parse(r->body, nullptr, false);
        return !stats.is_discarded() && stats["healthy"] == 1 && stats["running_servers"] == 3;
      },
      std::chrono::seconds(120));
  ASSERT_TRUE(healthy) << stats.dump() << "\n" << local.LogTail(20000);

  // Every artifact and every member's certificates came over https.
  std::string log = local.LogTail(1 << 22);
  EXPECT_NE(log.find(fmt::format("admin server on https://127.0.0.1:{}/", admin)),
            std::string::npos);
  EXPECT_EQ(log.find(fmt::format("http://127.0.0.1:{}/artifacts", admin)), std::string::npos);
  EXPECT_EQ(log.find("refused a certificate request"), std::string::npos);
  auto members = get("/members", *trusted);
  ASSERT_TRUE(members.ok()) << members.error();
  EXPECT_NE(members->body.find("https://"), std::string::npos) << "TLS members: " << members->body;
  auto master = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", port}, "/master/state"});
  ASSERT_TRUE(master.ok()) << master.error();
  EXPECT_NE(master->body.find(fmt::format("https://127.0.0.1:{}/artifacts/", admin)),
            std::string::npos)
      << "the executors' URIs name the https server";

  // The on-call guide as written, with ADMIN an https URL and curl given the CA as the guide says:
  // its tls-client block fetches the CA and a client certificate over https, and its health
  // block reaches every member with them.
  auto guide = test::GuideCommands(GUIDE_PATH);
  ASSERT_EQ(guide.count("tls-client"), 1u);
  ASSERT_EQ(guide.count("health-v3"), 1u);
  fs::create_directories(work.path() / "operator");
  std::string env = fmt::format(
      "export ADMIN=https://127.0.0.1:{} CURL_CA_BUNDLE={} TOKEN_FILE={} HOME={} USER=e2e\n", admin,
      (work.path() / "ca.pem").string(), (work.path() / "scheduler-state" / "admin-token").string(),
      (work.path() / "operator").string());
  auto [status, out] = test::RunShell(env + guide["tls-client"] + guide["health-v3"]);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 3) << out;
  EXPECT_EQ(out.find("unhealthy"), std::string::npos) << out;

  // Plain http, and a client that trusts another CA, get nothing.
  auto plain = get("/stats", nullptr);
  EXPECT_FALSE(plain.ok() && plain->status == 200) << "plain http answered";
  auto stranger = net::TlsClientConfig::Create(test::NewTestAuthority("other CA").certificate_pem);
  ASSERT_TRUE(stranger.ok());
  auto untrusted = get("/stats", *stranger);
  ASSERT_FALSE(untrusted.ok());
  EXPECT_NE(untrusted.error().message.find("certificate verify failed"), std::string::npos)
      << untrusted.error();
}

// Agents whose hosts do not trust the admin certificate's CA cannot fetch the executor: Mesos
// says only that the fetch failed, and the scheduler says where the fetcher's error is and that
// the agents must trust that CA.
TEST(AdminHttps, AFetchRefusedByUntrustingAgentsIsExplained) {
  test::TempDir work{"em-admin-https-untrusted"};
  WriteAdminCertificate(work.path());  // its CA is trusted nowhere
  uint16_t port = test::FreePort(), admin = test::FreePort();
  test::ChildProcess local(LocalWithHttpsScheduler(work.path(), port, admin, {}),
                           work.path() / "local.log");
  std::string want = fmt::format("could not fetch its artifacts from https://127.0.0.1:{}/", admin);
  bool explained =
      test::WaitFor([&] { return local.LogTail(1 << 22).find(want) != std::string::npos; },
                    std::chrono::seconds(60));
  std::string log = local.LogTail(1 << 22);
  ASSERT_TRUE(explained) << local.LogTail(20000);
  EXPECT_NE(log.find("the agents' hosts must trust the CA of that certificate"), std::string::npos);
  EXPECT_NE(log.find("file stderr"), std::string::npos);
}

}  // namespace
}  // namespace etcd_mesos
