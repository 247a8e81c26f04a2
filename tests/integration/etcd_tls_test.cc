// Real etcd 3.4 members with TLS on both ports (--client-cert-auth, --peer-client-cert-auth) and
// certificates from the cluster's PKI (tls/pki.h): our etcd::Client, etcd::HashKv and the real
// etcdctl reach them with a client certificate of their CA, and nothing else does; three members
// form a cluster over TLS peer links.
#include <sys/stat.h>

#include <fstream>
#include <optional>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "etcd/client.h"
#include "etcd/hashkv.h"
#include "etcd/launch.h"
#include "net/http.h"
#include "testing/certificates.h"
#include "testing/etcd_server.h"
#include "testing/tempdir.h"
#include "testing/workload.h"
#include "tls/pki.h"

namespace etcd_mesos::etcd {
namespace {

using test::EtcdServer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += w + " ";
  return out;
}

class EtcdTlsTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& text, bool secret = false) {
    auto path = dir_.path() / name;
    std::ofstream(path) << text;
    if (secret) ::chmod(path.c_str(), 0600);
    return path.string();
  }

  // A certificate of `ca` written as files, with ca_'s bundle as the trust.
  TlsFiles Files(const std::string& name, const tls::Authority& ca,
                 const tls::CertificateRequest& request) {
    auto issued = tls::Issue(ca, request);
    EXPECT_TRUE(issued.ok()) << issued.error();
    return {.ca_file = Write("ca.pem", ca_.certificate_pem),
            .cert_file = Write(name + ".pem", issued->certificate_pem),
            .key_file = Write(name + "-key.pem", issued->key_pem, true)};
  }

  // A client configuration trusting `trusted` and presenting a certificate of `issuer`, if any.
  std::shared_ptr<const net::TlsClientConfig> ClientTls(const tls::Authority& trusted,
                                                        const tls::Authority* issuer) {
    Result<std::shared_ptr<const net::TlsClientConfig>> config = Error{};
    if (issuer) {
      auto cert =
          tls::Issue(*issuer, test::CertificateFor("operator", {"127.0.0.1"}, tls::Usage::kClient));
      EXPECT_TRUE(cert.ok()) << cert.error();
      config = net::TlsClientConfig::Create(trusted.certificate_pem, cert->certificate_pem,
                                            cert->key_pem);
    } else {
      config = net::TlsClientConfig::Create(trusted.certificate_pem);
    }
    EXPECT_TRUE(config.ok()) << config.error();
    return config.ok() ? *config : nullptr;
  }

  // A member on `ip` serving TLS with a certificate of ca_ for its IP (both usages).
  std::unique_ptr<EtcdServer> Server(const std::string& name, const std::string& ip) {
    EtcdServer::Options options{.name = name, .ip = ip};
    options.tls = Files(name, ca_, test::CertificateFor(name, {ip}, tls::Usage::kServerAndClient));
    options.client_tls = operator_tls_;
    return std::make_unique<EtcdServer>(options, dir_.path());
  }

  Client ClientFor(const EtcdServer& server, std::shared_ptr<const net::TlsClientConfig> tls) {
    return Client(io_, server.client_endpoint(), {.tls = std::move(tls)});
  }

  Result<HealthResponse> HealthOf(Client& c) {
    return Await<HealthResponse>(io_, [&](auto cb) { c.Health(cb); });
  }

  boost::asio::io_context io_;
  test::TempDir dir_{"em-etcd-tls"};
  tls::Authority ca_ = test::NewTestAuthority("cluster CA");
  std::shared_ptr<const net::TlsClientConfig> operator_tls_ = ClientTls(ca_, &ca_);
};

TEST_F(EtcdTlsTest, OneMemberServesClientsWithACertificateOfItsCa) {
  auto n1 = Server("n1", "127.0.0.2");
  ASSERT_TRUE(n1->StartNewCluster().ok()) << n1->LogTail();  // its /health, over TLS
  EXPECT_THAT(n1->client_url(), ::testing::StartsWith("https://"));
  Client c = ClientFor(*n1, operator_tls_);

  auto health = HealthOf(c);
  ASSERT_TRUE(health.ok()) << health.error();
  EXPECT_TRUE(health->healthy);
  auto put = Await<PutResponse>(io_, [&](auto cb) { c.Put("tls/key", "secret value", cb); });
  ASSERT_TRUE(put.ok()) << put.error();
  auto got = Await<RangeResponse>(io_, [&](auto cb) { c.Get("tls/key", false, cb); });
  ASSERT_TRUE(got.ok()) << got.error();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "secret value");
  auto list = Await<MemberListResponse>(io_, [&](auto cb) { c.MemberList(cb); });
  ASSERT_TRUE(list.ok()) << list.error();
  ASSERT_EQ(list->members.size(), 1u);
  EXPECT_THAT(list->members[0].client_urls, ElementsAre(n1->client_url()));
  EXPECT_THAT(list->members[0].peer_urls, ElementsAre(n1->peer_url()));

  // The snapshot stream (HttpStream) over TLS.
  auto snapshot =
      Await<SnapshotInfo>(io_, [&](auto cb) { c.Snapshot(dir_.path() / "n1.snapshot.db", cb); });
  ASSERT_TRUE(snapshot.ok()) << snapshot.error();
  EXPECT_GT(snapshot->size, 0u);
}

TEST_F(EtcdTlsTest, OneMemberRefusesEveryoneElse) {
  auto n1 = Server("n1", "127.0.0.2");
  ASSERT_TRUE(n1->StartNewCluster().ok()) << n1->LogTail();

  // etcd hangs up on plain HTTP without an answer ("read headers end of stream").
  Client plain = ClientFor(*n1, nullptr);
  auto plain_health = HealthOf(plain);
  ASSERT_FALSE(plain_health.ok()) << "plain HTTP was answered";
  EXPECT_EQ(plain_health.error().code, ErrorCode::kUnavailable);

  // Go's TLS 1.3 server judges the client's certificate after the client has finished its side of
  // the handshake and sent its request: the refusal is an alert on the read ("bad certificate")
  // or, when etcd has already hung up, a reset on the write.

  Client anonymous = ClientFor(*n1, ClientTls(ca_, nullptr));
  auto anonymous_health = HealthOf(anonymous);
  ASSERT_FALSE(anonymous_health.ok()) << "a client without a certificate was answered";
  EXPECT_EQ(anonymous_health.error().code, ErrorCode::kUnavailable);

  tls::Authority other = test::NewTestAuthority("other CA");
  Client stranger = ClientFor(*n1, ClientTls(ca_, &other));
  auto stranger_health = HealthOf(stranger);
  ASSERT_FALSE(stranger_health.ok()) << "a certificate of another CA was accepted";
  EXPECT_EQ(stranger_health.error().code, ErrorCode::kUnavailable);

  // And we refuse a member whose certificate is not of the CA we trust.
  Client misled = ClientFor(*n1, ClientTls(other, &ca_));
  auto misled_health = HealthOf(misled);
  ASSERT_FALSE(misled_health.ok());
  EXPECT_THAT(misled_health.error().message,
              HasSubstr("TLS handshake: certificate verify failed (unable to get local issuer "
                        "certificate)"));

  // The member is still fine for its own clients.
  Client c = ClientFor(*n1, operator_tls_);
  auto health = HealthOf(c);
  ASSERT_TRUE(health.ok()) << health.error();
  EXPECT_TRUE(health->healthy);
}

TEST_F(EtcdTlsTest, EtcdctlAndHashKvReachAMemberWithTheTlsFiles) {
  auto n1 = Server("n1", "127.0.0.2");
  ASSERT_TRUE(n1->StartNewCluster().ok()) << n1->LogTail();
  TlsFiles operator_files =
      Files("operator", ca_, test::CertificateFor("operator", {"127.0.0.1"}, tls::Usage::kClient));
  std::string etcdctl =
      "ETCDCTL_API=3 etcdctl " + Join(EtcdctlEndpointFlags(n1->client_endpoint(), operator_files));

  auto [put_rc, put_out] = test::RunShell(etcdctl + "put from-etcdctl yes 2>&1");
  ASSERT_EQ(put_rc, 0) << put_out;
  auto [get_rc, get_out] = test::RunShell(etcdctl + "get from-etcdctl --print-value-only 2>&1");
  ASSERT_EQ(get_rc, 0) << get_out;
  EXPECT_EQ(get_out, "yes\n");

  // Without a client certificate etcdctl is refused.
  std::string no_cert = "ETCDCTL_API=3 etcdctl --endpoints=" + n1->client_url() +
                        " --cacert=" + operator_files.ca_file + " --dial-timeout=2s get x 2>&1";
  auto [refused_rc, refused_out] = test::RunShell(no_cert);
  EXPECT_NE(refused_rc, 0) << refused_out;
  EXPECT_THAT(refused_out, HasSubstr("context deadline exceeded"));

  auto hash = Await<HashKvResponse>(io_, [&](auto cb) {
    HashKv(io_, "/usr/bin/etcdctl", n1->client_endpoint(), operator_files, 0,
           std::chrono::seconds(5), cb);
  });
  ASSERT_TRUE(hash.ok()) << hash.error();
  EXPECT_NE(hash->hash, 0u);
  auto no_tls = Await<HashKvResponse>(io_, [&](auto cb) {
    HashKv(io_, "/usr/bin/etcdctl", n1->client_endpoint(), std::nullopt, 0, std::chrono::seconds(2),
           cb);
  });
  EXPECT_FALSE(no_tls.ok()) << "etcdctl over plain http was answered";
}

TEST_F(EtcdTlsTest, ThreeMembersPeerOverTls) {
  auto n1 = Server("n1", "127.0.0.2");
  auto n2 = Server("n2", "127.0.0.3");
  auto n3 = Server("n3", "127.0.0.4");
  std::string cluster = EtcdServer::InitialCluster({n1.get(), n2.get(), n3.get()});
  EXPECT_THAT(cluster, HasSubstr("n1=https://127.0.0.2:"));
  for (auto* n : {n1.get(), n2.get(), n3.get()}) ASSERT_TRUE(n->Launch(cluster, true).ok());
  for (auto* n : {n1.get(), n2.get(), n3.get()}) {
    ASSERT_TRUE(n->WaitUntilHealthy(std::chrono::seconds(30)).ok()) << n->LogTail();
  }
  Client c1 = ClientFor(*n1, operator_tls_);
  Client c3 = ClientFor(*n3, operator_tls_);
  auto list = Await<MemberListResponse>(io_, [&](auto cb) { c1.MemberList(cb); });
  ASSERT_TRUE(list.ok()) << list.error();
  ASSERT_EQ(list->members.size(), 3u);
  for (const auto& m : list->members) {
    ASSERT_EQ(m.peer_urls.size(), 1u);
    EXPECT_THAT(m.peer_urls[0], ::testing::StartsWith("https://"));
  }
  // A write through one member is read (linearizably, so through the leader) at another.
  auto put = Await<PutResponse>(io_, [&](auto cb) { c1.Put("peered", "over TLS", cb); });
  ASSERT_TRUE(put.ok()) << put.error();
  auto got = Await<RangeResponse>(io_, [&](auto cb) { c3.Get("peered", false, cb); });
  ASSERT_TRUE(got.ok()) << got.error();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "over TLS");
}

}  // namespace
}  // namespace etcd_mesos::etcd
