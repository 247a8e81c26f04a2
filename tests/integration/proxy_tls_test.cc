// etcd-mesos-proxy against a TLS cluster, with real processes: real etcd 3.4 members serving https
// only with --client-cert-auth (certificates from the cluster's PKI, tls/pki.h), a stand-in for
// the scheduler's /members that lists their https URLs, the built proxy and its real
// `etcd grpc-proxy`, and etcdctl as the client.
//   - With --cacert, --cert and --key, a plain etcdctl on the proxy's address writes and reads.
//   - Without --cacert the proxy refuses https members, naming the flags, and starts nothing.
//   - A client certificate of another CA, or a CA bundle the members' certificates do not chain
//     to, ends the proxy with the reason instead of a grpc-proxy that fails every call.
//   - With --listen-cert-file and friends, the proxy's own clients speak TLS too.
//   - An https --scheduler is read with the same --cacert.
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "etcd/launch.h"
#include "net/http.h"
#include "testing/certificates.h"
#include "testing/etcd_server.h"
#include "testing/ports.h"
#include "testing/process.h"
#include "testing/tempdir.h"
#include "testing/workload.h"
#include "tls/pki.h"

namespace etcd_mesos::proxy {
namespace {

using std::chrono::seconds;
using test::EtcdServer;
using ::testing::HasSubstr;
using ::testing::Not;

// The scheduler's admin port as far as the proxy reads it: GET /members, on its own thread (the
// test's thread blocks on processes). Plain HTTP, or HTTPS with `tls`.
class FakeScheduler {
 public:
  explicit FakeScheduler(std::shared_ptr<const net::TlsServerConfig> tls = nullptr) {
    net::HttpServer::Options options;
    options.tls = std::move(tls);
    server_ = std::make_unique<net::HttpServer>(
        io_, options, [this](const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
          std::lock_guard lock(mu_);
          ++requests_;
          if (req.path != "/members") return r->Respond(net::TextResponse(404, "not here\n"));
          r->Respond(net::JsonResponse(200, members_));
        });
    auto bound = server_->Listen({"127.0.0.1", 0});
    EXPECT_TRUE(bound.ok()) << bound.error();
    if (bound.ok()) address_ = *bound;
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeScheduler() {
    boost::asio::post(io_, [this] {
      server_->Stop();
      guard_.reset();
    });
    thread_.join();
  }

  // /members as the scheduler renders it: running voters with their clientUrl.
  void SetMembers(const std::vector<const EtcdServer*>& servers) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto* s : servers) {
      out.push_back({{"name", s->name()},
                     {"host", s->config().ip},
                     {"clientPort", s->config().client_port},
                     {"clientUrl", s->client_url()},
                     {"taskState", "TASK_RUNNING"},
                     {"learner", false}});
    }
    std::lock_guard lock(mu_);
    members_ = out.dump();
  }
  int requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  const HostPort& address() const { return address_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_ =
      boost::asio::make_work_guard(io_);
  std::unique_ptr<net::HttpServer> server_;
  HostPort address_;
  std::mutex mu_;
  std::string members_ = "[]";
  int requests_ = 0;
  std::thread thread_;
};

class ProxyTlsTest : public ::testing::Test {
 protected:
  // A test may change the working directory (relative TLS paths); the next one starts where the
  // runner started.
  void TearDown() override {
    proxy_.reset();
    std::filesystem::current_path(cwd_);
  }

  std::string Write(const std::string& name, const std::string& text, bool secret = false) {
    auto path = dir_.path() / name;
    std::ofstream(path) << text;
    if (secret) ::chmod(path.c_str(), 0600);
    return path.string();
  }

  // A certificate of `ca` for `ips`, written as <name>.pem and <name>-key.pem, with `ca`'s bundle
  // as the trust (<name>-ca.pem).
  etcd::TlsFiles Files(const std::string& name, const tls::Authority& ca,
                       const tls::CertificateRequest& request) {
    auto issued = tls::Issue(ca, request);
    EXPECT_TRUE(issued.ok()) << issued.error();
    return {.ca_file = Write(name + "-ca.pem", ca.certificate_pem),
            .cert_file = Write(name + ".pem", issued->certificate_pem),
            .key_file = Write(name + "-key.pem", issued->key_pem, true)};
  }

  // A client certificate of `issuer` without a Common Name, which is what etcd 3.4's grpc-proxy
  // takes (tls::Issue names every certificate, so this one comes from the openssl command line),
  // for 127.0.0.1, with the cluster's CA (ca_) as the trust.
  etcd::TlsFiles NamelessClientFiles(const std::string& name, const tls::Authority& issuer) {
    std::string dir = dir_.path().string() + "/";
    std::string ca = Write(name + "-issuer.pem", issuer.certificate_pem);
    std::string ca_key = Write(name + "-issuer-key.pem", issuer.key_pem, true);
    std::string ext = Write(name + ".ext",
                            "basicConstraints=critical,CA:FALSE\n"
                            "keyUsage=critical,digitalSignature\n"
                            "extendedKeyUsage=clientAuth\n"
                            "subjectAltName=IP:127.0.0.1\n");
    std::string key = dir + name + "-key.pem", csr = dir + name + ".csr",
                cert = dir + name + ".pem";
    auto [rc, out] = test::RunShell("openssl ecparam -name prime256v1 -genkey -noout -out " + key +
                                    " && chmod 600 " + key + " && openssl req -new -key " + key +
                                    " -subj /O=etcd-mesos-proxy -out " + csr +
                                    " && openssl x509 -req -in " + csr + " -CA " + ca + " -CAkey " +
                                    ca_key + " -set_serial 0x" + std::to_string(++serial_) +
                                    "a5 -days 1 -extfile " + ext + " -out " + cert + " 2>&1");
    EXPECT_EQ(rc, 0) << out;
    return {.ca_file = Write(name + "-ca.pem", ca_.certificate_pem),
            .cert_file = cert,
            .key_file = key};
  }

  // `n` members of one new cluster on 127.0.0.2.., TLS on both ports with certificates of ca_.
  void StartCluster(int n) {
    auto operator_cert =
        tls::Issue(ca_, test::CertificateFor("test", {"127.0.0.1"}, tls::Usage::kClient));
    ASSERT_TRUE(operator_cert.ok()) << operator_cert.error();
    auto client_tls = net::TlsClientConfig::Create(
        ca_.certificate_pem, operator_cert->certificate_pem, operator_cert->key_pem);
    ASSERT_TRUE(client_tls.ok()) << client_tls.error();
    std::vector<const EtcdServer*> all;
    for (int i = 0; i < n; ++i) {
      std::string name = "n" + std::to_string(i + 1);
      std::string ip = "127.0.0." + std::to_string(i + 2);
      EtcdServer::Options options{.name = name, .ip = ip};
      options.tls =
          Files(name, ca_, test::CertificateFor(name, {ip}, tls::Usage::kServerAndClient));
      options.client_tls = *client_tls;
      members_.push_back(std::make_unique<EtcdServer>(options, dir_.path()));
      all.push_back(members_.back().get());
    }
    std::string cluster = EtcdServer::InitialCluster(all);
    for (auto& m : members_) ASSERT_TRUE(m->Launch(cluster, true).ok());
    for (auto& m : members_) {
      ASSERT_TRUE(m->WaitUntilHealthy(seconds(30)).ok()) << m->LogTail();
    }
    scheduler_->SetMembers(all);
  }

  // The built proxy on a free local port, reading the fake scheduler, with `extra` flags.
  void StartProxy(const std::vector<std::string>& extra, const std::string& scheme = "http") {
    listen_ = "127.0.0.1:" + std::to_string(test::FreePort());
    std::vector<std::string> argv = {
        PROXY_PATH, "--scheduler=" + scheme + "://" + scheduler_->address().ToString(),
        "--listen-addr=" + listen_, "--poll-interval=300ms",
        "--data-dir=" + (dir_.path() / ("proxy" + std::to_string(++proxies_))).string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proxy_log_ = dir_.path() / ("proxy" + std::to_string(proxies_) + ".log");
    proxy_ = std::make_unique<test::ChildProcess>(argv, proxy_log_);
  }

  std::string ProxyLog() const {
    std::ifstream in(proxy_log_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  // Waits for the proxy to exit on its own; its exit code, or -1 if it still runs at `timeout`.
  int ProxyExit(std::chrono::milliseconds timeout) {
    if (!test::WaitFor([&] { return !proxy_->Running(); }, timeout)) return -1;
    int status = proxy_->Wait();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // etcdctl (API 3) on the proxy's address with `flags`, retried until it succeeds (the
  // grpc-proxy may still be starting) or `timeout` passes: the last (exit code, output).
  std::pair<int, std::string> Etcdctl(const std::string& flags, const std::string& args,
                                      std::chrono::milliseconds timeout = seconds(20)) {
    std::pair<int, std::string> r;
    test::WaitFor(
        [&] {
          r = test::RunShell("ETCDCTL_API=3 etcdctl --dial-timeout=2s --command-timeout=3s " +
                             flags + " " + args + " 2>&1");
          return r.first == 0;
        },
        timeout);
    return r;
  }

  std::vector<std::string> MemberTlsFlags(const etcd::TlsFiles& files) {
    return {"--cacert=" + files.ca_file, "--cert=" + files.cert_file, "--key=" + files.key_file};
  }

  std::filesystem::path cwd_ = std::filesystem::current_path();
  test::TempDir dir_{"em-proxy-tls"};
  tls::Authority ca_ = test::NewTestAuthority("cluster CA");
  std::unique_ptr<FakeScheduler> scheduler_ = std::make_unique<FakeScheduler>();
  std::vector<std::unique_ptr<EtcdServer>> members_;
  std::string listen_;
  int proxies_ = 0;
  int serial_ = 0;
  std::filesystem::path proxy_log_;
  std::unique_ptr<test::ChildProcess> proxy_;
};

TEST_F(ProxyTlsTest, APlainClientOfTheProxyReadsAndWritesATlsCluster) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  // Relative paths too: the grpc-proxy runs in the data directory, so the proxy resolves them.
  etcd::TlsFiles proxy_files = NamelessClientFiles("proxy", ca_);
  ASSERT_EQ(::chdir(dir_.path().c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(
      StartProxy({"--cacert=proxy-ca.pem", "--cert=proxy.pem", "--key=proxy-key.pem"}));

  auto put = Etcdctl("--endpoints=" + listen_, "put through-the-proxy over-tls");
  ASSERT_EQ(put.first, 0) << put.second << "\nproxy:\n" << ProxyLog();
  auto get = Etcdctl("--endpoints=" + listen_, "get through-the-proxy --print-value-only");
  ASSERT_EQ(get.first, 0) << get.second;
  EXPECT_EQ(get.second, "over-tls\n");

  // What the proxy wrote is in the cluster, read straight from a member over TLS.
  std::string direct;
  for (const auto& f : etcd::EtcdctlEndpointFlags(members_[2]->client_endpoint(), proxy_files)) {
    direct += f + " ";
  }
  auto member = Etcdctl(direct, "get through-the-proxy --print-value-only");
  ASSERT_EQ(member.first, 0) << member.second;
  EXPECT_EQ(member.second, "over-tls\n");
  EXPECT_THAT(ProxyLog(), HasSubstr("-> https://127.0.0.2:"));
  EXPECT_TRUE(proxy_->Running()) << ProxyLog();
}

TEST_F(ProxyTlsTest, WithoutACaBundleTheProxyRefusesHttpsMembers) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(1));
  // A long --wait: the refusal must not wait for it (flags are not going to appear).
  ASSERT_NO_FATAL_FAILURE(StartProxy({"--wait=60s"}));
  EXPECT_EQ(ProxyExit(seconds(20)), 1) << ProxyLog();
  std::string log = ProxyLog();
  EXPECT_THAT(log, HasSubstr("the members serve TLS (" + members_[0]->client_url() + ")"));
  EXPECT_THAT(log, HasSubstr("--cacert="));
  EXPECT_THAT(log, HasSubstr("--cert="));
  EXPECT_THAT(log, HasSubstr("does not fall back to plain http"));
  EXPECT_THAT(log, Not(HasSubstr("grpc-proxy (pid"))) << "a grpc-proxy was started";
}

TEST_F(ProxyTlsTest, CertificatesOfAnotherCaAreRefusedAndTheProxySaysWhy) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(1));
  tls::Authority other = test::NewTestAuthority("other CA");

  // Our client certificate is of another CA: the member hangs up on it.
  etcd::TlsFiles stranger = NamelessClientFiles("stranger", other);
  ASSERT_NO_FATAL_FAILURE(
      StartProxy({"--cacert=" + Write("cluster-ca.pem", ca_.certificate_pem),
                  "--cert=" + stranger.cert_file, "--key=" + stranger.key_file, "--wait=3s"}));
  EXPECT_EQ(ProxyExit(seconds(30)), 1) << ProxyLog();
  std::string log = ProxyLog();
  EXPECT_THAT(log, HasSubstr("no etcd cluster found within --wait=3.0s: no member answered over "
                             "TLS (the members refused the client certificate --cert=" +
                             stranger.cert_file + ": it must be issued by the cluster's CA)"));
  EXPECT_THAT(log, HasSubstr(members_[0]->client_url()));
  EXPECT_THAT(log, Not(HasSubstr("grpc-proxy (pid"))) << "a grpc-proxy was started";

  // No client certificate at all.
  ASSERT_NO_FATAL_FAILURE(
      StartProxy({"--cacert=" + Write("cluster-ca.pem", ca_.certificate_pem), "--wait=3s"}));
  EXPECT_EQ(ProxyExit(seconds(30)), 1) << ProxyLog();
  EXPECT_THAT(ProxyLog(), HasSubstr("the members ask for a client certificate: give --cert and "
                                    "--key"));

  // The member's certificate does not chain to our CA bundle: we hang up on it.
  etcd::TlsFiles good = NamelessClientFiles("proxy", ca_);
  std::string wrong_ca = Write("other-ca.pem", other.certificate_pem);
  ASSERT_NO_FATAL_FAILURE(StartProxy(
      {"--cacert=" + wrong_ca, "--cert=" + good.cert_file, "--key=" + good.key_file, "--wait=3s"}));
  EXPECT_EQ(ProxyExit(seconds(30)), 1) << ProxyLog();
  EXPECT_THAT(ProxyLog(),
              HasSubstr("the members' certificates do not chain to --cacert=" + wrong_ca));
  EXPECT_THAT(ProxyLog(), HasSubstr("certificate verify failed"));
}

TEST_F(ProxyTlsTest, TheProxyServesTlsToItsOwnClients) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(1));
  etcd::TlsFiles upstream = NamelessClientFiles("proxy", ca_);
  // The listener's certificate from a CA of the client machine's own.
  tls::Authority local = test::NewTestAuthority("local CA");
  etcd::TlsFiles listener =
      Files("listener", local,
            test::CertificateFor("proxy listener", {"127.0.0.1"}, tls::Usage::kServer));
  std::vector<std::string> flags = MemberTlsFlags(upstream);
  flags.insert(flags.end(), {"--listen-cert-file=" + listener.cert_file,
                             "--listen-key-file=" + listener.key_file});
  ASSERT_NO_FATAL_FAILURE(StartProxy(flags));

  std::string endpoint = "--endpoints=https://" + listen_;
  std::string app_flags = endpoint + " --cacert=" + listener.ca_file;
  auto put = Etcdctl(app_flags, "put served-over-tls yes");
  ASSERT_EQ(put.first, 0) << put.second << "\nproxy:\n" << ProxyLog();
  auto get = Etcdctl(app_flags, "get served-over-tls --print-value-only");
  ASSERT_EQ(get.first, 0) << get.second;
  EXPECT_EQ(get.second, "yes\n");

  // The listener speaks TLS only, with the certificate it was given (a client trusting only the
  // cluster's CA does not accept it).
  auto plain = Etcdctl("--endpoints=" + listen_, "get served-over-tls", seconds(0));
  EXPECT_NE(plain.first, 0) << plain.second;
  auto misled =
      Etcdctl(endpoint + " --cacert=" + upstream.ca_file, "get served-over-tls", seconds(0));
  EXPECT_NE(misled.first, 0) << misled.second;
}

TEST_F(ProxyTlsTest, AClientCertificateWithACommonNameIsRefusedBeforeTheGrpcProxyDiesOnIt) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(1));
  etcd::TlsFiles named = Files(
      "named", ca_, test::CertificateFor("etcd-mesos-proxy", {"127.0.0.1"}, tls::Usage::kClient));
  ASSERT_NO_FATAL_FAILURE(StartProxy(MemberTlsFlags(named)));
  EXPECT_EQ(ProxyExit(seconds(20)), 1) << ProxyLog();
  EXPECT_THAT(ProxyLog(), HasSubstr("--cert=" + named.cert_file +
                                    ": the certificate has the Common Name 'etcd-mesos-proxy', "
                                    "and etcd's grpc-proxy accepts only client certificates "
                                    "without one"));
  EXPECT_THAT(ProxyLog(), Not(HasSubstr("grpc-proxy (pid")));
}

TEST_F(ProxyTlsTest, AnHttpsSchedulerIsReadWithTheSameCaBundle) {
  auto server_cert = tls::Issue(
      ca_, test::CertificateFor("scheduler", {"127.0.0.1"}, tls::Usage::kServerAndClient));
  ASSERT_TRUE(server_cert.ok()) << server_cert.error();
  auto server_tls =
      net::TlsServerConfig::Create(server_cert->certificate_pem, server_cert->key_pem);
  ASSERT_TRUE(server_tls.ok()) << server_tls.error();
  scheduler_ = std::make_unique<FakeScheduler>(*server_tls);
  ASSERT_NO_FATAL_FAILURE(StartCluster(1));
  std::string proxy = PROXY_PATH;
  std::string scheduler = " --scheduler=https://" + scheduler_->address().ToString();

  auto once = test::RunShell(proxy + scheduler + " --once --wait=10s --log-level=error --cacert=" +
                             Write("ca.pem", ca_.certificate_pem) + " 2>&1");
  EXPECT_EQ(once.first, 0) << once.second;
  EXPECT_EQ(once.second, members_[0]->client_url() + "\n");

  // A CA bundle the scheduler's certificate does not chain to: not read, and said.
  auto wrong = test::RunShell(
      proxy + scheduler + " --once --wait=1s --cacert=" +
      Write("other.pem", test::NewTestAuthority("other CA").certificate_pem) + " 2>&1");
  EXPECT_EQ(wrong.first, 1) << wrong.second;
  EXPECT_THAT(wrong.second, HasSubstr("certificate verify failed"));

  auto no_ca = test::RunShell(proxy + scheduler + " --once 2>&1");
  EXPECT_EQ(no_ca.first, 2) << no_ca.second;
  EXPECT_THAT(no_ca.second, HasSubstr("https needs --cacert"));
}

}  // namespace
}  // namespace etcd_mesos::proxy
