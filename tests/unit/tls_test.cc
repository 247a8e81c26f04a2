// The cluster's PKI (tls/pki.h): a CA and the certificates it issues read back as requested, and
// verification judged at a moment passed in (no test waits for a certificate to expire).
#include "tls/pki.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace etcd_mesos::tls {
namespace {

using std::chrono::hours;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

// A fixed moment, so the tests do not depend on the clock.
const TimePoint kNow = std::chrono::system_clock::from_time_t(1'900'000'000);  // 2030-03-17
const TimePoint kYearAgo = kNow - hours(24 * 365);
const TimePoint kInTenYears = kNow + hours(24 * 365 * 10);

Authority NewCa(std::string name) {
  auto ca = NewAuthority(std::move(name), kYearAgo, kInTenYears);
  EXPECT_TRUE(ca.ok()) << ca.error();
  return *ca;
}

CertificateRequest Member(std::string name) {
  return {.common_name = std::move(name),
          .ip_addresses = {"10.0.0.7", "::1"},
          .dns_names = {"agent-7.example.com"},
          .usage = Usage::kServerAndClient,
          .not_before = kNow - hours(1),
          .not_after = kNow + hours(24 * 90)};
}

IssuedCertificate IssueOrDie(const Authority& ca, const CertificateRequest& r) {
  auto issued = Issue(ca, r);
  EXPECT_TRUE(issued.ok()) << issued.error();
  return *issued;
}

TEST(Authority, IsASelfSignedCaThatTrustsItself) {
  Authority ca = NewCa("etcd-mesos cluster CA");
  EXPECT_THAT(ca.certificate_pem, HasSubstr("-----BEGIN CERTIFICATE-----"));
  EXPECT_THAT(ca.key_pem, HasSubstr("-----BEGIN PRIVATE KEY-----"));
  auto info = ReadCertificate(ca.certificate_pem);
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->subject_common_name, "etcd-mesos cluster CA");
  EXPECT_EQ(info->issuer_common_name, "etcd-mesos cluster CA");
  EXPECT_TRUE(info->is_ca);
  EXPECT_EQ(info->not_before, kYearAgo);
  EXPECT_EQ(info->not_after, kInTenYears);
  EXPECT_TRUE(Verify(ca.certificate_pem, ca.certificate_pem, kNow).ok());
}

TEST(Authority, RefusesAnEmptyNameAndABackwardValidity) {
  auto unnamed = NewAuthority("", kYearAgo, kInTenYears);
  ASSERT_FALSE(unnamed.ok());
  EXPECT_EQ(unnamed.error().code, ErrorCode::kInvalidArgument);
  auto backward = NewAuthority("ca", kNow, kNow - seconds(1));
  ASSERT_FALSE(backward.ok());
  EXPECT_THAT(backward.error().message, HasSubstr("validity ends"));
}

TEST(Issue, TheCertificateSaysWhatWasAskedAndChainsToItsAuthority) {
  Authority ca = NewCa("cluster CA");
  CertificateRequest request = Member("etcd-3");
  IssuedCertificate leaf = IssueOrDie(ca, request);
  auto info = ReadCertificate(leaf.certificate_pem);
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->subject_common_name, "etcd-3");
  EXPECT_EQ(info->issuer_common_name, "cluster CA");
  EXPECT_THAT(info->ip_addresses, ElementsAre("10.0.0.7", "::1"));
  EXPECT_THAT(info->dns_names, ElementsAre("agent-7.example.com"));
  EXPECT_TRUE(info->server_auth);
  EXPECT_TRUE(info->client_auth);
  EXPECT_FALSE(info->is_ca);
  EXPECT_EQ(info->not_before, request.not_before);
  EXPECT_EQ(info->not_after, request.not_after);
  EXPECT_THAT(info->serial_hex, MatchesRegex("[0-9A-F]{32}"));
  EXPECT_THAT(info->sha256_fingerprint, MatchesRegex("([0-9A-F]{2}:){31}[0-9A-F]{2}"));
  EXPECT_TRUE(Verify(leaf.certificate_pem, ca.certificate_pem, kNow).ok());
}

TEST(Issue, UsagesAreServerClientOrBoth) {
  Authority ca = NewCa("cluster CA");
  CertificateRequest server = Member("server");
  server.usage = Usage::kServer;
  CertificateRequest client = Member("operator");
  client.usage = Usage::kClient;
  auto server_info = ReadCertificate(IssueOrDie(ca, server).certificate_pem);
  auto client_info = ReadCertificate(IssueOrDie(ca, client).certificate_pem);
  ASSERT_TRUE(server_info.ok() && client_info.ok());
  EXPECT_TRUE(server_info->server_auth);
  EXPECT_FALSE(server_info->client_auth);
  EXPECT_FALSE(client_info->server_auth);
  EXPECT_TRUE(client_info->client_auth);
}

TEST(Issue, EachCertificateHasItsOwnKeyAndSerial) {
  Authority ca = NewCa("cluster CA");
  IssuedCertificate a = IssueOrDie(ca, Member("etcd-1"));
  IssuedCertificate b = IssueOrDie(ca, Member("etcd-1"));
  EXPECT_NE(a.key_pem, b.key_pem);
  EXPECT_NE(a.key_pem, ca.key_pem);
  EXPECT_NE(ReadCertificate(a.certificate_pem)->serial_hex,
            ReadCertificate(b.certificate_pem)->serial_hex);
  // The key is the certificate's: it loads as a pair (LoadAuthority checks the match first).
  auto as_authority = LoadAuthority(a.certificate_pem, a.key_pem);
  ASSERT_FALSE(as_authority.ok());
  EXPECT_THAT(as_authority.error().message, HasSubstr("not a CA"));
}

TEST(Issue, RefusesBadAddressesMissingNamesAndBackwardValidity) {
  Authority ca = NewCa("cluster CA");
  CertificateRequest bad_ip = Member("m");
  bad_ip.ip_addresses = {"10.0.0.300"};
  auto r = Issue(ca, bad_ip);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, HasSubstr("'10.0.0.300' is not an IP address"));

  CertificateRequest injected = Member("m");
  injected.dns_names = {"a.example.com,IP:1.2.3.4"};
  EXPECT_FALSE(Issue(ca, injected).ok());

  CertificateRequest nameless = Member("m");
  nameless.ip_addresses.clear();
  nameless.dns_names.clear();
  r = Issue(ca, nameless);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("no IP address or host name"));
  // A client's certificate names its holder, not a host: it needs none (etcd then does not match
  // the connection's address against it).
  nameless.usage = Usage::kClient;
  auto client = Issue(ca, nameless);
  ASSERT_TRUE(client.ok()) << client.error();
  EXPECT_TRUE(ReadCertificate(client->certificate_pem)->ip_addresses.empty());
  // Nor a common name (etcd's grpc-proxy refuses a client certificate with one); a server's
  // certificate must have one.
  nameless.common_name.clear();
  auto anonymous = Issue(ca, nameless);
  ASSERT_TRUE(anonymous.ok()) << anonymous.error();
  EXPECT_EQ(ReadCertificate(anonymous->certificate_pem)->subject_common_name, "");
  EXPECT_TRUE(Verify(anonymous->certificate_pem, ca.certificate_pem, kNow).ok());
  nameless.usage = Usage::kServerAndClient;
  nameless.ip_addresses = {"10.0.0.1"};
  EXPECT_FALSE(Issue(ca, nameless).ok());

  CertificateRequest backward = Member("m");
  backward.not_after = backward.not_before;
  EXPECT_FALSE(Issue(ca, backward).ok());
}

TEST(Issue, RefusesAnAuthorityWhoseKeyIsNotItsOwn) {
  Authority ca = NewCa("cluster CA");
  Authority other = NewCa("other CA");
  auto r = Issue({ca.certificate_pem, other.key_pem}, Member("m"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("the private key is not the certificate's"));
}

TEST(Verify, HoldsOnlyWithinTheValidityWindow) {
  Authority ca = NewCa("cluster CA");
  CertificateRequest request = Member("etcd-1");
  IssuedCertificate leaf = IssueOrDie(ca, request);
  EXPECT_TRUE(Verify(leaf.certificate_pem, ca.certificate_pem, request.not_before).ok());
  // OpenSSL's window ends just before not_after (RFC 5280 would include that second).
  EXPECT_TRUE(
      Verify(leaf.certificate_pem, ca.certificate_pem, request.not_after - seconds(1)).ok());
  EXPECT_FALSE(Verify(leaf.certificate_pem, ca.certificate_pem, request.not_after).ok());

  Status early = Verify(leaf.certificate_pem, ca.certificate_pem, request.not_before - seconds(1));
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code, ErrorCode::kUnauthenticated);
  EXPECT_THAT(early.error().message, HasSubstr("certificate is not yet valid"));
  EXPECT_THAT(early.error().message, HasSubstr("'etcd-1'"));

  Status late = Verify(leaf.certificate_pem, ca.certificate_pem, request.not_after + hours(1));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, ErrorCode::kUnauthenticated);
  EXPECT_THAT(late.error().message, HasSubstr("certificate has expired"));
}

TEST(Verify, AnExpiredAuthorityFailsItsLeaves) {
  auto ca = NewAuthority("short-lived CA", kNow - hours(2), kNow + hours(1));
  ASSERT_TRUE(ca.ok()) << ca.error();
  IssuedCertificate leaf = IssueOrDie(*ca, Member("etcd-1"));  // outlives its CA
  EXPECT_TRUE(Verify(leaf.certificate_pem, ca->certificate_pem, kNow).ok());
  Status late = Verify(leaf.certificate_pem, ca->certificate_pem, kNow + hours(2));
  ASSERT_FALSE(late.ok());
  EXPECT_THAT(late.error().message, HasSubstr("certificate has expired"));
  EXPECT_THAT(late.error().message, HasSubstr("at certificate 'short-lived CA'"));
}

TEST(Verify, TrustsOnlyTheBundleAndAnyOfItsAuthorities) {
  Authority old_ca = NewCa("old CA");
  Authority new_ca = NewCa("new CA");
  IssuedCertificate leaf = IssueOrDie(old_ca, Member("etcd-1"));

  Status stranger = Verify(leaf.certificate_pem, new_ca.certificate_pem, kNow);
  ASSERT_FALSE(stranger.ok());
  EXPECT_EQ(stranger.error().code, ErrorCode::kUnauthenticated);
  EXPECT_THAT(stranger.error().message, HasSubstr("unable to get local issuer certificate"));

  // The rotation's trust bundle: both CAs, in either order.
  EXPECT_TRUE(
      Verify(leaf.certificate_pem, new_ca.certificate_pem + old_ca.certificate_pem, kNow).ok());
  EXPECT_TRUE(
      Verify(leaf.certificate_pem, old_ca.certificate_pem + new_ca.certificate_pem, kNow).ok());
  IssuedCertificate renewed = IssueOrDie(new_ca, Member("etcd-1"));
  EXPECT_TRUE(
      Verify(renewed.certificate_pem, old_ca.certificate_pem + new_ca.certificate_pem, kNow).ok());
}

TEST(Verify, AForgedCertificateFails) {
  Authority ca = NewCa("cluster CA");
  Authority impostor = NewCa("cluster CA");  // the same name, another key
  IssuedCertificate forged = IssueOrDie(impostor, Member("etcd-1"));
  EXPECT_FALSE(Verify(forged.certificate_pem, ca.certificate_pem, kNow).ok());
}

TEST(ReadBundle, ReadsEveryCertificateInOrderAndReadCertificateTheFirst) {
  Authority a = NewCa("A");
  Authority b = NewCa("B");
  auto bundle = ReadBundle(a.certificate_pem + "\n" + b.certificate_pem);
  ASSERT_TRUE(bundle.ok()) << bundle.error();
  ASSERT_EQ(bundle->size(), 2u);
  EXPECT_EQ((*bundle)[0].subject_common_name, "A");
  EXPECT_EQ((*bundle)[1].subject_common_name, "B");
  auto first = ReadCertificate(a.certificate_pem + b.certificate_pem);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->subject_common_name, "A");
}

TEST(MalformedInput, IsAClearError) {
  auto empty = ReadCertificate("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(empty.error().message, "certificate PEM: no certificate found");

  auto not_pem = ReadCertificate("hello");
  ASSERT_FALSE(not_pem.ok());
  EXPECT_EQ(not_pem.error().message, "certificate PEM: no certificate found");

  auto corrupt = ReadBundle(NewCa("A").certificate_pem +
                            "-----BEGIN CERTIFICATE-----\nAAAA!!!!\n-----END CERTIFICATE-----\n");
  ASSERT_FALSE(corrupt.ok());
  EXPECT_THAT(corrupt.error().message, HasSubstr("certificate 2 is malformed"));

  Authority ca = NewCa("cluster CA");
  Status no_bundle = Verify(ca.certificate_pem, "", kNow);
  ASSERT_FALSE(no_bundle.ok());
  EXPECT_EQ(no_bundle.error().message, "trust bundle PEM: no certificate found");
}

TEST(LoadAuthority, LoadsAGoodPairAndNamesWhatIsWrongWithABadOne) {
  Authority ca = NewCa("cluster CA");
  auto loaded = LoadAuthority(ca.certificate_pem, ca.key_pem);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  IssuedCertificate leaf = IssueOrDie(*loaded, Member("etcd-1"));
  EXPECT_TRUE(Verify(leaf.certificate_pem, ca.certificate_pem, kNow).ok());

  Authority other = NewCa("other CA");
  auto mismatched = LoadAuthority(ca.certificate_pem, other.key_pem);
  ASSERT_FALSE(mismatched.ok());
  EXPECT_EQ(mismatched.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(mismatched.error().message,
              HasSubstr("authority 'cluster CA': the private key is not the certificate's"));
  EXPECT_THAT(mismatched.error().message, Not(HasSubstr("PRIVATE KEY")));

  auto no_key = LoadAuthority(ca.certificate_pem, "not a key");
  ASSERT_FALSE(no_key.ok());
  EXPECT_THAT(no_key.error().message, HasSubstr("authority key PEM: no usable private key"));

  // A key whose body is damaged: the error quotes OpenSSL's reason, never the key's text.
  std::string damaged = other.key_pem;
  damaged.replace(damaged.find('\n') + 5, 8, "!!!!!!!!");
  auto bad_key = LoadAuthority(ca.certificate_pem, damaged);
  ASSERT_FALSE(bad_key.ok());
  EXPECT_THAT(bad_key.error().message, Not(HasSubstr(damaged.substr(30, 20))));
}

// The executor's way: it keeps its key and sends a request; the CA certifies that key with the
// names it decides (not the request's), and a request whose signature does not match its key,
// or that is not a request at all, is refused by name.
TEST(CertificateRequests, CertifyTheRequestersOwnKeyWithTheIssuersNames) {
  Authority ca = NewCa("ca");
  auto req = NewCertificateRequest("a name the requester chose");
  ASSERT_TRUE(req.ok()) << req.error();
  EXPECT_THAT(req->request_pem, HasSubstr("-----BEGIN CERTIFICATE REQUEST-----"));
  EXPECT_THAT(req->key_pem, HasSubstr("-----BEGIN PRIVATE KEY-----"));
  auto cert = IssueForRequest(ca, req->request_pem, Member("etcd-3"));
  ASSERT_TRUE(cert.ok()) << cert.error();
  auto info = ReadCertificate(*cert);
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->subject_common_name, "etcd-3");
  EXPECT_THAT(info->ip_addresses, ElementsAre("10.0.0.7", "::1"));
  EXPECT_TRUE(info->server_auth && info->client_auth);
  EXPECT_TRUE(Verify(*cert, ca.certificate_pem, kNow).ok());
  // The certificate is for the requester's key: the key and the certificate load as a pair.
  EXPECT_TRUE(LoadAuthority(*cert, req->key_pem).error().message.find("not a CA") !=
              std::string::npos)
      << "the key matches (it is refused only for not being a CA)";
  auto other = NewCertificateRequest("x");
  ASSERT_TRUE(other.ok());
  EXPECT_THAT(LoadAuthority(*cert, other->key_pem).error().message, Not(HasSubstr("not a CA")));

  auto garbage = IssueForRequest(ca, "not a request", Member("etcd-3"));
  ASSERT_FALSE(garbage.ok());
  EXPECT_THAT(garbage.error().message, HasSubstr("not a PEM certificate request"));
  // A request whose body was altered after it was signed.
  std::string tampered = req->request_pem;
  size_t at = tampered.find('\n') + 40;
  tampered[at] = tampered[at] == 'A' ? 'B' : 'A';
  auto forged = IssueForRequest(ca, tampered, Member("etcd-3"));
  ASSERT_FALSE(forged.ok());
  EXPECT_EQ(forged.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace etcd_mesos::tls
