// Mesos authentication end to end, with the real binaries as an operator runs them:
// etcd-mesos-local requiring HTTP Basic framework authentication (--credentials) and executor
// authentication (--jwt-secret-key, --authenticate-http-executors), the scheduler started after
// `--` with --principal and --secret-file, the real executors and etcd. Three members bootstrap
// and serve; no secret and no executor token is in any log, sandbox or /master/state; etcd does
// not inherit its executor's token. A wrong secret is an error in the scheduler's log naming the
// principal, and the scheduler keeps asking.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/encoding.h"
#include "net/http.h"
#include "testing/ports.h"
#include "testing/process.h"
#include "testing/tempdir.h"
#include "testing/workload.h"

namespace etcd_mesos {
namespace {

namespace fs = std::filesystem;
using test::ChildProcess;

constexpr char kPrincipal[] = "etcd-framework";

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

// A secret no file holds by chance.
std::string FreshSecret(const std::string& what) { return what + "-" + HexEncode(NewUuidBytes()); }

// For each of `needles`, the files under `dir` (logs, sandboxes, etcd's data, the scheduler's
// state) that contain it. Each file is read once: with the executor binaries fetched into the
// sandboxes and etcd's WAL files, the tree holds over a gigabyte in the sanitizer build.
std::vector<std::vector<std::string>> FilesContaining(const fs::path& dir,
                                                      const std::vector<std::string>& needles) {
  std::vector<std::vector<std::string>> found(needles.size());
  for (const auto& entry :
       fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied)) {
    if (!entry.is_regular_file() || entry.is_symlink()) continue;
    std::string text = ReadAll(entry.path());
    for (size_t i = 0; i < needles.size(); ++i) {
      if (text.find(needles[i]) != std::string::npos) found[i].push_back(entry.path().string());
    }
  }
  return found;
}

// Every live process that runs for `framework_id` (MESOS_FRAMEWORK_ID in its initial
// environment, which /proc shows as it was at exec), with that environment.
struct Proc {
  int pid;
  std::string comm;
  std::map<std::string, std::string> env;
};
std::vector<Proc> ProcessesOf(const std::string& framework_id) {
  std::vector<Proc> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string raw = ReadAll(entry.path() / "environ");
    Proc p{std::stoi(name), ReadAll(entry.path() / "comm"), {}};
    while (!p.comm.empty() && p.comm.back() == '\n') p.comm.pop_back();
    std::istringstream vars(raw);
    std::string var;
    while (std::getline(vars, var, '\0')) {
      auto eq = var.find('=');
      if (eq != std::string::npos) p.env[var.substr(0, eq)] = var.substr(eq + 1);
    }
    if (p.env["MESOS_FRAMEWORK_ID"] == framework_id) out.push_back(std::move(p));
  }
  return out;
}

std::optional<nlohmann::json> GetJson(uint16_t port, const std::string& target) {
  auto r = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", port}, target});
  if (!r.ok() || r->status != 200) return std::nullopt;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

class MesosAuthentication : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(secrets_);
    std::ofstream(secrets_ / "credentials.json")
        << nlohmann::json{{"credentials", {{{"principal", kPrincipal}, {"secret", secret_}}}}}
               .dump();
    std::ofstream(secrets_ / "jwt-key") << jwt_key_;
    fs::permissions(secrets_ / "jwt-key", fs::perms::owner_read | fs::perms::owner_write);
  }

  // etcd-mesos-local requiring both authentications, the scheduler after `--` with `secret`.
  std::unique_ptr<ChildProcess> Start(const std::string& secret) {
    std::ofstream(secrets_ / "secret") << secret << "\n";
    auto wrapper = test::WriteExecutorWrapper(work_.path(), EXECUTOR_PATH);
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{ETCD_MESOS_LOCAL_PATH,
                                 "--agents=3",
                                 "--port=" + std::to_string(port_),
                                 "--work-dir=" + (work_.path() / "mesos").string(),
                                 fmt::format("--first-agent-ip=127.0.0.{}", test::AgentHostBase()),
                                 "--credentials=" + (secrets_ / "credentials.json").string(),
                                 "--jwt-secret-key=" + (secrets_ / "jwt-key").string(),
                                 "--authenticate-http-executors",
                                 "--",
                                 SCHEDULER_PATH,
                                 "--master=127.0.0.1:" + std::to_string(port_),
                                 "--cluster-name=auth",
                                 "--admin-port=" + std::to_string(admin_),
                                 "--state-dir=" + (work_.path() / "scheduler-state").string(),
                                 "--cpu-limit=0.5",
                                 "--mem-limit=256",
                                 "--disk-limit=512",
                                 "--executor-bin=" + wrapper.string(),
                                 std::string("--principal=") + kPrincipal,
                                 "--secret-file=" + (secrets_ / "secret").string()},
        work_.path() / "local.log");
  }

  test::TempDir work_{"em-auth-e2e"};
  test::TempDir secrets_dir_{"em-auth-secrets"};  // outside what the leak check reads
  fs::path secrets_ = secrets_dir_.path();
  uint16_t port_ = test::FreePort();
  uint16_t admin_ = test::FreePort();
  std::string secret_ = FreshSecret("framework-secret");
  std::string jwt_key_ = FreshSecret("jwt-key");
};

TEST_F(MesosAuthentication, ThreeMembersServeWithFrameworkAndExecutorAuthenticationRequired) {
  auto local = Start(secret_);
  nlohmann::json stats;
  bool healthy = test::WaitFor(
      [&] {
        auto s = GetJson(admin_, "/stats");
        if (s) stats = *s;
        return s && stats["healthy"] == 1 && stats["running_servers"] == 3;
      },
      std::chrono::seconds(120));
  ASSERT_TRUE(healthy) << stats.dump() << "\n" << local->LogTail(20000);

  // The cluster serves.
  auto endpoints = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", admin_}, "/endpoints"});
  ASSERT_TRUE(endpoints.ok() && endpoints->status == 200);
  std::string urls = endpoints->body;
  while (!urls.empty() && urls.back() == '\n') urls.pop_back();
  // TLS is on by default: etcdctl presents the scheduler's own client certificate.
  EXPECT_TRUE(urls.starts_with("https://")) << urls;
  fs::path tls = work_.path() / "scheduler-state" / "tls";
  std::string etcdctl = "ETCDCTL_API=3 etcdctl --cacert=" + (tls / "ca.crt").string() +
                        " --cert=" + (tls / "scheduler.crt").string() +
                        " --key=" + (tls / "scheduler.key").string() + " --endpoints=" + urls;
  auto [put, put_out] = test::RunShell(etcdctl + " put auth-key served");
  ASSERT_EQ(put, 0) << put_out;
  auto [get, get_out] = test::RunShell(etcdctl + " get --print-value-only auth-key");
  ASSERT_EQ(get, 0) << get_out;
  EXPECT_EQ(get_out, "served\n");

  // Both authentications were on: the framework authenticated as its principal, and the
  // agents refuse an executor call without a token.
  auto r = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", port_}, "/master/state"});
  ASSERT_TRUE(r.ok() && r->status == 200);
  std::string master_state = r->body;
  auto state = nlohmann::json::parse(master_state);
  EXPECT_EQ(state["flags"]["authenticate_http_frameworks"], "true");
  ASSERT_EQ(state["frameworks"].size(), 1u);
  EXPECT_EQ(state["frameworks"][0]["principal"], kPrincipal);
  std::string framework_id = state["frameworks"][0]["id"];
  std::string pid = state["slaves"][0]["pid"];  // slave(N)@ip:port
  auto at = pid.find('@'), colon = pid.rfind(':');
  net::HttpRequest call;
  call.method = net::Verb::post;
  call.endpoint = {pid.substr(at + 1, colon - at - 1),
                   static_cast<uint16_t>(std::stoi(pid.substr(colon + 1)))};
  call.target = "/" + pid.substr(0, at) + "/api/v1/executor";
  call.headers = {{"Content-Type", "application/json"}};
  call.body = "{}";
  auto refused = net::HttpFetchSync(call);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 401u);
  EXPECT_EQ(refused->Header("WWW-Authenticate"), "Bearer realm=\"mesos-agent-executor\"");

  // Each executor was given its own token; etcd, started by it, was not.
  std::set<std::string> tokens;
  int etcds = 0;
  for (const auto& p : ProcessesOf(framework_id)) {
    auto token = p.env.find("MESOS_EXECUTOR_AUTHENTICATION_TOKEN");
    if (p.comm == "etcd") {
      ++etcds;
      EXPECT_EQ(token, p.env.end()) << "etcd (pid " << p.pid << ") inherited the token";
    } else if (p.comm == "etcd-mesos-exec") {  // comm is cut at 15 characters
      ASSERT_NE(token, p.env.end()) << "executor pid " << p.pid << " has no token";
      tokens.insert(token->second);
    }
  }
  EXPECT_EQ(etcds, 3);
  EXPECT_EQ(tokens.size(), 3u) << "one token per executor";

  // No secret and no token in the logs (etcd-mesos-local's and the scheduler's, both in
  // local.log; the executors' and etcd's in the sandboxes), anything else under the work dir,
  // or /master/state.
  std::vector<std::pair<std::string, std::string>> secrets = {{"the framework secret", secret_},
                                                              {"the JWT key", jwt_key_}};
  for (const auto& token : tokens) secrets.emplace_back("an executor token", token);
  std::vector<std::string> values;
  for (const auto& secret : secrets) values.push_back(secret.second);
  std::vector<std::vector<std::string>> holders = FilesContaining(work_.path(), values);
  for (size_t i = 0; i < secrets.size(); ++i) {
    const auto& [what, value] = secrets[i];
    EXPECT_EQ(holders[i], std::vector<std::string>{}) << what;
    EXPECT_EQ(master_state.find(value), std::string::npos) << what << " in /master/state";
  }
  EXPECT_EQ(local->Stop(), 0) << local->LogTail();
}

TEST_F(MesosAuthentication, AWrongSecretIsAnErrorNamingThePrincipalAndTheSchedulerKeepsAsking) {
  std::string wrong = FreshSecret("wrong-secret");
  auto local = Start(wrong);
  auto refusals = [&] {
    std::string log = ReadAll(work_.path() / "local.log");
    std::string line = fmt::format("refused the credentials of principal '{}'", kPrincipal);
    size_t n = 0;
    for (size_t at = log.find(line); at != std::string::npos; at = log.find(line, at + 1)) ++n;
    return n;
  };
  ASSERT_TRUE(test::WaitFor([&] { return refusals() >= 2; }, std::chrono::seconds(60)))
      << local->LogTail(20000);
  std::string log = ReadAll(work_.path() / "local.log");
  size_t at = log.find("could not subscribe to master 127.0.0.1:" + std::to_string(port_) +
                       ": authentication failed");
  ASSERT_NE(at, std::string::npos) << log;
  std::string line = log.substr(log.rfind('\n', at) + 1, log.find('\n', at) - log.rfind('\n', at));
  EXPECT_NE(line.find(" E etcd-mesos-scheduler: "), std::string::npos) << "not an error: " << line;
  EXPECT_EQ(log.find(wrong), std::string::npos) << "the secret it sent is in the log";
  EXPECT_EQ(log.find(secret_), std::string::npos);
  // Still up (its admin API answers) and not subscribed: the master has no framework.
  auto stats = GetJson(admin_, "/stats");
  EXPECT_TRUE(stats.has_value()) << "the scheduler exited";
  auto state = GetJson(port_, "/master/state");
  ASSERT_TRUE(state.has_value());
  EXPECT_TRUE((*state)["frameworks"].empty());
  EXPECT_EQ(local->Stop(), 0) << local->LogTail();
}

}  // namespace
}  // namespace etcd_mesos
