// HTTPS: the HTTP client and server of net/http.h with TLS configurations, over real loopback
// sockets, with certificates from the cluster's PKI (tls/pki.h). The client verifies the server's
// chain and name; a server with a client CA refuses clients without a certificate of that CA.
#include <optional>
#include <thread>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio.hpp>

#include "net/http.h"
#include "tls/pki.h"

namespace etcd_mesos::net {
namespace {

namespace asio = boost::asio;
using std::chrono::hours;
using ::testing::HasSubstr;
using ::testing::Not;

// OpenSSL judges validity by the clock during a handshake, so these certificates are valid
// around now; nothing asserts on time.
tls::Authority NewCa(const std::string& name) {
  auto now = std::chrono::system_clock::now();
  auto ca = tls::NewAuthority(name, now - hours(1), now + hours(24));
  EXPECT_TRUE(ca.ok()) << ca.error();
  return *ca;
}

tls::IssuedCertificate Issue(const tls::Authority& ca, tls::Usage usage,
                             std::vector<std::string> ips, std::vector<std::string> dns = {},
                             hours from = hours(-1), hours to = hours(24)) {
  auto now = std::chrono::system_clock::now();
  auto issued = tls::Issue(ca, {.common_name = "test",
                                .ip_addresses = std::move(ips),
                                .dns_names = std::move(dns),
                                .usage = usage,
                                .not_before = now + from,
                                .not_after = now + to});
  EXPECT_TRUE(issued.ok()) << issued.error();
  return *issued;
}

std::shared_ptr<const TlsClientConfig> ClientTls(const std::string& ca_pem,
                                                 const tls::IssuedCertificate* identity = nullptr) {
  auto config = identity
                    ? TlsClientConfig::Create(ca_pem, identity->certificate_pem, identity->key_pem)
                    : TlsClientConfig::Create(ca_pem);
  EXPECT_TRUE(config.ok()) << config.error();
  return config.ok() ? *config : nullptr;
}

class HttpsTest : public ::testing::Test {
 protected:
  // An HTTPS server on 127.0.0.1 with a certificate of ca_ for `ips`, requiring client
  // certificates of `client_ca_pem` when given. Echoes the request body.
  void StartServer(std::vector<std::string> ips = {"127.0.0.1"},
                   const std::string& client_ca_pem = "") {
    auto cert = Issue(ca_, tls::Usage::kServer, std::move(ips), {"localhost"});
    auto server_tls = TlsServerConfig::Create(cert.certificate_pem, cert.key_pem, client_ca_pem);
    ASSERT_TRUE(server_tls.ok()) << server_tls.error();
    StartServerWith(*server_tls);
  }

  void StartServerWith(std::shared_ptr<const TlsServerConfig> server_tls) {
    HttpServer::Options options;
    options.tls = std::move(server_tls);
    server_ = std::make_unique<HttpServer>(
        io_, options, [this](const ServerRequest& req, std::shared_ptr<Responder> r) {
          ++handled_;
          r->Respond(TextResponse(200, "echo " + req.body));
        });
    auto bound = server_->Listen({"127.0.0.1", 0});
    ASSERT_TRUE(bound.ok()) << bound.error();
    address_ = *bound;
  }

  Result<HttpResponse> Fetch(std::shared_ptr<const TlsClientConfig> tls,
                             std::string host = "127.0.0.1") {
    HttpRequest request{Verb::post, {std::move(host), address_.port}, "/echo"};
    request.body = "hello";
    request.tls = std::move(tls);
    std::optional<Result<HttpResponse>> got;
    HttpFetch(io_, request, [&](Result<HttpResponse> r) { got = std::move(r); });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!got && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(10));
    }
    if (!got) return MakeError(ErrorCode::kInternal, "test: no answer within 10 s");
    return std::move(*got);
  }

  // A refused exchange: kUnavailable, and the handler never ran.
  void ExpectRefused(const Result<HttpResponse>& r, std::string_view why) {
    ASSERT_FALSE(r.ok()) << "answered " << r->status << " " << r->body;
    EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
    EXPECT_THAT(r.error().message, HasSubstr(std::string(why)));
    EXPECT_EQ(handled_, 0);
  }

  asio::io_context io_;
  tls::Authority ca_ = NewCa("cluster CA");
  std::unique_ptr<HttpServer> server_;
  HostPort address_;
  int handled_ = 0;
};

TEST_F(HttpsTest, AClientTrustingTheServersCaRoundTrips) {
  StartServer();
  auto r = Fetch(ClientTls(ca_.certificate_pem));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(r->body, "echo hello\n");
}

TEST_F(HttpsTest, AHostNameIsVerifiedAgainstTheCertificatesDnsNames) {
  StartServer();
  auto r = Fetch(ClientTls(ca_.certificate_pem), "localhost");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->body, "echo hello\n");
}

TEST_F(HttpsTest, AClientRefusesAServerOfAnotherCa) {
  StartServer();
  ExpectRefused(Fetch(ClientTls(NewCa("other CA").certificate_pem)),
                "TLS handshake: certificate verify failed");
  auto r = Fetch(ClientTls(NewCa("other CA").certificate_pem));
  EXPECT_THAT(r.error().message, HasSubstr("unable to get local issuer certificate"));
}

TEST_F(HttpsTest, AClientRefusesACertificateThatDoesNotNameTheEndpoint) {
  StartServer({"10.1.2.3"});  // the right CA, the wrong address
  ExpectRefused(Fetch(ClientTls(ca_.certificate_pem)), "IP address mismatch");
}

TEST_F(HttpsTest, AClientRefusesAnExpiredServerCertificate) {
  auto expired = Issue(ca_, tls::Usage::kServer, {"127.0.0.1"}, {}, hours(-3), hours(-2));
  auto server_tls = TlsServerConfig::Create(expired.certificate_pem, expired.key_pem);
  ASSERT_TRUE(server_tls.ok()) << server_tls.error();
  StartServerWith(*server_tls);
  ExpectRefused(Fetch(ClientTls(ca_.certificate_pem)), "certificate has expired");
}

TEST_F(HttpsTest, PlainHttpAndHttpsDoNotMix) {
  StartServer();
  // Plain HTTP to an HTTPS server: the handshake fails on the server, which hangs up.
  ExpectRefused(Fetch(nullptr), "end of stream");
  // HTTPS to a plain HTTP server.
  HttpServer plain(io_, {}, [](const ServerRequest&, std::shared_ptr<Responder> r) {
    r->Respond(TextResponse(200, "plain"));
  });
  auto bound = plain.Listen({"127.0.0.1", 0});
  ASSERT_TRUE(bound.ok());
  address_ = *bound;
  ExpectRefused(Fetch(ClientTls(ca_.certificate_pem)), "TLS handshake: wrong version number");
}

TEST_F(HttpsTest, AServerRequiringClientCertificatesAcceptsOnlyItsCasClients) {
  tls::Authority client_ca = NewCa("operators CA");
  StartServer({"127.0.0.1"}, client_ca.certificate_pem);
  // No certificate: TLS 1.3 clients finish their side of the handshake before the server has
  // judged their certificate, so the refusal arrives on the first read.
  ExpectRefused(Fetch(ClientTls(ca_.certificate_pem)), "alert certificate required");
  auto stranger = Issue(NewCa("other CA"), tls::Usage::kClient, {"127.0.0.1"});
  ExpectRefused(Fetch(ClientTls(ca_.certificate_pem, &stranger)), "alert unknown ca");

  auto operator_cert = Issue(client_ca, tls::Usage::kClient, {"127.0.0.1"});
  auto r = Fetch(ClientTls(ca_.certificate_pem, &operator_cert));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->body, "echo hello\n");
}

TEST_F(HttpsTest, ManyRequestsShareOneConfiguration) {
  StartServer();
  auto client_tls = ClientTls(ca_.certificate_pem);
  for (int i = 0; i < 5; ++i) {
    auto r = Fetch(client_tls);
    ASSERT_TRUE(r.ok()) << r.error();
  }
  EXPECT_EQ(handled_, 5);
}

TEST_F(HttpsTest, AStreamedResponseTravelsOverTls) {
  auto cert = Issue(ca_, tls::Usage::kServer, {"127.0.0.1"});
  HttpServer::Options options;
  options.tls = *TlsServerConfig::Create(cert.certificate_pem, cert.key_pem);
  std::shared_ptr<ResponseStream> out;
  server_ = std::make_unique<HttpServer>(
      io_, options,
      [&](const ServerRequest&, std::shared_ptr<Responder> r) { out = r->StartStream(200, {}); });
  address_ = *server_->Listen({"127.0.0.1", 0});
  HttpRequest request{Verb::post, address_, "/stream"};
  request.tls = ClientTls(ca_.certificate_pem);
  std::string body;
  std::optional<Status> end;
  auto stream = OpenHttpStream(
      io_, request,
      {nullptr, [&](std::string_view d) { body += d; }, [&](Status s) { end = std::move(s); }});
  auto run_until = [&](const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(done()) << "timed out";
  };
  run_until([&] { return out != nullptr; });
  out->Write("first");
  out->Write(std::string(100000, 'z'));
  out->Close();
  run_until([&] { return end.has_value(); });
  ASSERT_TRUE(end->ok()) << end->error();
  EXPECT_EQ(body, "first" + std::string(100000, 'z'));
}

TEST_F(HttpsTest, FetchSyncSpeaksTlsToo) {
  StartServer();
  auto guard = asio::make_work_guard(io_);
  std::thread server_thread([this] { io_.run(); });
  HttpRequest request{Verb::get, address_, "/"};
  request.tls = ClientTls(ca_.certificate_pem);
  auto r = HttpFetchSync(request);
  guard.reset();
  io_.stop();
  server_thread.join();
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->status, 200u);
}

TEST(TlsConfig, NamesWhatDoesNotLoadAndNeverQuotesAKey) {
  tls::Authority ca = NewCa("cluster CA");
  auto cert = Issue(ca, tls::Usage::kServerAndClient, {"127.0.0.1"});
  auto other = Issue(ca, tls::Usage::kServerAndClient, {"127.0.0.1"});

  auto no_ca = TlsClientConfig::Create("");
  ASSERT_FALSE(no_ca.ok());
  EXPECT_EQ(no_ca.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(no_ca.error().message, HasSubstr("TLS CA bundle"));

  auto no_key = TlsClientConfig::Create(ca.certificate_pem, cert.certificate_pem, "");
  ASSERT_FALSE(no_key.ok());
  EXPECT_THAT(no_key.error().message, HasSubstr("needs its key"));

  auto mismatched = TlsServerConfig::Create(cert.certificate_pem, other.key_pem);
  ASSERT_FALSE(mismatched.ok());
  EXPECT_THAT(mismatched.error().message, HasSubstr("TLS private key"));
  EXPECT_THAT(mismatched.error().message, Not(HasSubstr("PRIVATE KEY")));

  auto garbage = TlsServerConfig::Create("not a certificate", cert.key_pem);
  ASSERT_FALSE(garbage.ok());
  EXPECT_THAT(garbage.error().message, HasSubstr("TLS certificate"));

  EXPECT_TRUE(TlsClientConfig::Create(ca.certificate_pem, cert.certificate_pem, cert.key_pem).ok());
  EXPECT_TRUE(TlsServerConfig::Create(cert.certificate_pem, cert.key_pem, ca.certificate_pem).ok());
}

}  // namespace
}  // namespace etcd_mesos::net
