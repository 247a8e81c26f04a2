#include <gtest/gtest.h>

#include "common/duration.h"
#include "common/encoding.h"
#include "common/member_health.h"
#include "common/result.h"
#include "common/secret.h"
#include "common/uri.h"

namespace etcd_mesos {
namespace {

TEST(HostPort, ParsesHostAndPort) {
  auto hp = ParseHostPort("127.0.0.2:5050");
  ASSERT_TRUE(hp.ok()) << hp.error();
  EXPECT_EQ(hp->host, "127.0.0.2");
  EXPECT_EQ(hp->port, 5050);
  auto v6 = ParseHostPort("[::1]:80");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->ToString(), "[::1]:80");
}

TEST(HostPort, RejectsMalformed) {
  for (const char* bad : {"", "host", "host:", ":5050", "host:0", "host:65536", "host:12x", "a:b:c",
                          "h/x:1", "[::1]80"}) {
    auto hp = ParseHostPort(bad);
    EXPECT_FALSE(hp.ok()) << bad;
    if (!hp.ok()) {
      EXPECT_EQ(hp.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

TEST(ZkUrl, ParsesServersPathAndCredentials) {
  auto zk = ParseZkUrl("zk://u:p@10.0.0.1:2181,10.0.0.2:2182/mesos/etcd/");
  ASSERT_TRUE(zk.ok()) << zk.error();
  ASSERT_EQ(zk->servers.size(), 2u);
  EXPECT_EQ(zk->servers[1].port, 2182);
  EXPECT_EQ(zk->path, "/mesos/etcd");
  EXPECT_EQ(zk->user, "u");
  EXPECT_EQ(zk->password, "p");
  EXPECT_EQ(zk->ServersString(), "10.0.0.1:2181,10.0.0.2:2182");
  EXPECT_EQ(zk->ToString(), "zk://10.0.0.1:2181,10.0.0.2:2182/mesos/etcd");
}

TEST(ZkUrl, RejectsMissingPathOrServers) {
  EXPECT_FALSE(ParseZkUrl("zk://h:2181").ok());
  EXPECT_FALSE(ParseZkUrl("zk://h:2181/").ok());
  EXPECT_FALSE(ParseZkUrl("zk:///mesos").ok());
  EXPECT_FALSE(ParseZkUrl("zk://h/mesos").ok());
  EXPECT_FALSE(ParseZkUrl("zk://h:1,/mesos").ok());
  EXPECT_FALSE(ParseZkUrl("http://h:1/mesos").ok());
  EXPECT_FALSE(ParseZkUrl("zk://h:1/a//b").ok());
}

TEST(MasterAddress, AcceptsTheFormsMesosAccepts) {
  auto direct = ParseMasterAddress("127.0.0.1:5050");
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(direct->direct->port, 5050);
  auto pid = ParseMasterAddress("master@10.0.0.1:5050");
  ASSERT_TRUE(pid.ok());
  EXPECT_EQ(pid->direct->host, "10.0.0.1");
  auto zk = ParseMasterAddress("zk://h1:2181/mesos");
  ASSERT_TRUE(zk.ok());
  EXPECT_TRUE(zk->zk.has_value());
  auto bad = ParseMasterAddress("localhost");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("--master"), std::string::npos);
}

TEST(HttpUrl, ResolvesProtocolRelativeLocation) {
  auto base = ParseHttpUrl("http://127.0.0.1:5050/api/v1/scheduler");
  ASSERT_TRUE(base.ok());
  auto moved = ResolveLocation(*base, "//127.0.0.9:5051/master/api/v1/scheduler");
  ASSERT_TRUE(moved.ok()) << moved.error();
  EXPECT_EQ(moved->ToString(), "http://127.0.0.9:5051/master/api/v1/scheduler");
  auto abs = ResolveLocation(*base, "/other");
  ASSERT_TRUE(abs.ok());
  EXPECT_EQ(abs->ToString(), "http://127.0.0.1:5050/other");
  auto noport = ParseHttpUrl("http://example");
  ASSERT_TRUE(noport.ok());
  EXPECT_EQ(noport->endpoint.port, 80);
  EXPECT_FALSE(ParseHttpUrl("ftp://x/").ok());
  EXPECT_FALSE(ParseHttpUrl("http://u:p@x/").ok());
}

TEST(Base64, RoundTripsEveryLength) {
  std::string bytes;
  for (int n = 0; n < 40; ++n) {
    auto decoded = Base64Decode(Base64Encode(bytes));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, bytes);
    bytes += static_cast<char>(n * 37 + 200);
  }
  EXPECT_EQ(Base64Encode("hello"), "aGVsbG8=");
  EXPECT_FALSE(Base64Decode("a*bc").ok());
  EXPECT_FALSE(Base64Decode("abcde").ok());
}

TEST(Uuid, FreshUuidsAreValidAndDistinct) {
  std::string a = NewUuidBytes();
  std::string b = NewUuidBytes();
  EXPECT_TRUE(IsValidUuidBytes(a));
  EXPECT_NE(a, b);
  EXPECT_FALSE(IsValidUuidBytes(std::string(16, '\0')));
  EXPECT_FALSE(IsValidUuidBytes("short"));
  EXPECT_EQ(UuidToString(a).size(), 36u);
}

TEST(Duration, ParsesStoutAndShortForms) {
  EXPECT_EQ(*ParseDuration("5secs"), std::chrono::seconds(5));
  EXPECT_EQ(*ParseDuration("15mins"), std::chrono::minutes(15));
  EXPECT_EQ(*ParseDuration("250ms"), std::chrono::milliseconds(250));
  EXPECT_EQ(*ParseDuration("1.5s"), std::chrono::milliseconds(1500));
  EXPECT_EQ(*ParseDuration("240"), std::chrono::seconds(240));
  EXPECT_EQ(*ParseDuration("1weeks"), std::chrono::hours(168));
  EXPECT_FALSE(ParseDuration("").ok());
  EXPECT_FALSE(ParseDuration("-5s").ok());
  EXPECT_FALSE(ParseDuration("5 parsecs").ok());
  EXPECT_EQ(FormatStoutDuration(std::chrono::seconds(5)), "5secs");
  EXPECT_EQ(FormatStoutDuration(std::chrono::minutes(15)), "15mins");
}

// Configured durations are named in the form a flag takes back, the largest exact unit.
TEST(Duration, ShownInTheLargestUnitThatDividesIt) {
  EXPECT_EQ(ShowDuration(std::chrono::hours(168)), "7d");
  EXPECT_EQ(ShowDuration(std::chrono::minutes(61)), "61m");
  EXPECT_EQ(ShowDuration(std::chrono::minutes(120)), "2h");
  EXPECT_EQ(ShowDuration(std::chrono::milliseconds(1500)), "1500ms");
  EXPECT_EQ(ShowDuration(std::chrono::seconds(0)), "0s");
  EXPECT_EQ(*ParseDuration(ShowDuration(std::chrono::minutes(61))), std::chrono::minutes(61));
}

// The one health rule of the scheduler's probes, the executor's updates and the simulator.
TEST(MemberHealthy, AVoterNeedsALeaderNoErrorsAndAHealthyAnswer) {
  EXPECT_TRUE(MemberHealthy(7, false, true, false));
  EXPECT_FALSE(MemberHealthy(0, false, true, false)) << "no leader";
  EXPECT_FALSE(MemberHealthy(7, true, true, false)) << "an alarm in the status";
  EXPECT_FALSE(MemberHealthy(7, false, false, false)) << "/health said unhealthy";
  EXPECT_FALSE(MemberHealthy(7, false, std::nullopt, false)) << "/health did not answer";
}

TEST(MemberHealthy, ForALearnerTheStatusAloneDecides) {
  // A learner refuses the linearizable read behind /health: its answer says nothing.
  for (std::optional<bool> health :
       {std::optional<bool>(true), std::optional<bool>(false), std::optional<bool>()}) {
    EXPECT_TRUE(MemberHealthy(7, false, health, true));
    EXPECT_FALSE(MemberHealthy(0, false, health, true));
    EXPECT_FALSE(MemberHealthy(7, true, health, true));
  }
}

TEST(Result, CarriesValueOrError) {
  Result<int> ok = 3;
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3);
  Result<int> bad = MakeError(ErrorCode::kUnavailable, "no leader on {}", "m1");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.error().retryable());
  EXPECT_EQ(bad.error().ToString(), "unavailable: no leader on m1");
  EXPECT_EQ(bad.error().Context("subscribe").message, "subscribe: no leader on m1");
}

}  // namespace
// Secrets (the admin token, the reseed token, a task's certificate token) are compared whole:
// a prefix, a longer text and anything against an empty secret do not match.
TEST(SameSecret, MatchesOnlyTheWholeSecret) {
  EXPECT_TRUE(SameSecret("s3cret", "s3cret"));
  EXPECT_FALSE(SameSecret("s3cre", "s3cret"));
  EXPECT_FALSE(SameSecret("s3crets", "s3cret"));
  EXPECT_FALSE(SameSecret("s3creT", "s3cret"));
  EXPECT_FALSE(SameSecret("", "s3cret"));
  EXPECT_FALSE(SameSecret("", ""));
  EXPECT_FALSE(SameSecret("x", ""));
}

TEST(IsIpAddress, TellsAddressesFromNames) {
  EXPECT_TRUE(IsIpAddress("10.0.0.7"));
  EXPECT_TRUE(IsIpAddress("::1"));
  EXPECT_FALSE(IsIpAddress("agent-7.example.com"));
  EXPECT_FALSE(IsIpAddress("10.0.0.300"));
  EXPECT_FALSE(IsIpAddress(""));
}

}  // namespace etcd_mesos
