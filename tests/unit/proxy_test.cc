// etcd-mesos-proxy's pure parts: the command line, the client URLs read from the scheduler's
// /members and from a Mesos master's /master/state, and the jittered backoff.
#include <map>

#include <gtest/gtest.h>

#include "proxy/discovery.h"
#include "proxy/flags.h"

namespace etcd_mesos::proxy {
namespace {

using std::chrono::milliseconds;

Result<ParsedProxyFlags> Parse(std::vector<std::string> args,
                               const std::map<std::string, std::string>& env = {}) {
  return ParseProxyFlags(args, env);
}

TEST(ProxyFlags, SchedulerSourceWithDefaults) {
  auto p = Parse({"--scheduler=http://10.0.0.1:12300"});
  ASSERT_TRUE(p.ok()) << p.error();
  const ProxyFlags& f = p->flags;
  ASSERT_TRUE(f.scheduler.has_value());
  EXPECT_EQ(f.scheduler->endpoint, (HostPort{"10.0.0.1", 12300}));
  EXPECT_FALSE(f.master.has_value());
  EXPECT_EQ(f.listen_addr, (HostPort{"127.0.0.1", 23790}));
  EXPECT_EQ(f.etcd_bin, "etcd");
  EXPECT_EQ(f.poll_interval, milliseconds(5000));
  EXPECT_EQ(f.wait, milliseconds(30000));
  EXPECT_FALSE(f.once);
}

TEST(ProxyFlags, SchedulerWithoutSchemeIsHttp) {
  auto p = Parse({"--scheduler", "sched:12300", "--once"});
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->flags.scheduler->endpoint, (HostPort{"sched", 12300}));
  EXPECT_TRUE(p->flags.once);
}

TEST(ProxyFlags, MasterSourcesDirectAndZooKeeper) {
  auto direct =
      Parse({"--master=127.0.0.1:5050", "--framework-name=etcd-prod", "--listen-addr=0.0.0.0:2379",
             "--poll-interval=2s", "--wait=0", "--etcd-bin=/opt/etcd", "--data-dir=/var/lib/p"});
  ASSERT_TRUE(direct.ok()) << direct.error();
  ASSERT_TRUE(direct->flags.master->direct.has_value());
  EXPECT_EQ(*direct->flags.master->direct, (HostPort{"127.0.0.1", 5050}));
  EXPECT_EQ(direct->flags.framework_name, "etcd-prod");
  EXPECT_EQ(direct->flags.listen_addr, (HostPort{"0.0.0.0", 2379}));
  EXPECT_EQ(direct->flags.poll_interval, milliseconds(2000));
  EXPECT_EQ(direct->flags.wait, milliseconds(0));
  EXPECT_EQ(direct->flags.etcd_bin, "/opt/etcd");
  EXPECT_EQ(direct->flags.data_dir, "/var/lib/p");

  auto zk = Parse({"--master=zk://zk1:2181,zk2:2181/mesos"});
  ASSERT_TRUE(zk.ok()) << zk.error();
  ASSERT_TRUE(zk->flags.master->zk.has_value());
  EXPECT_EQ(zk->flags.master->zk->path, "/mesos");
  EXPECT_EQ(zk->flags.framework_name, "etcd-default") << "the scheduler's default framework";
}

TEST(ProxyFlags, TheOriginalsGoStyleFlagsWork) {
  auto p = Parse({"-master=127.0.0.1:5050", "-framework-name=etcd", "-etcd-bin=./bin/etcd",
                  "-listen-client-urls=http://127.0.0.1:2379", "-data-dir=proxy.etcd"});
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(*p->flags.master->direct, (HostPort{"127.0.0.1", 5050}));
  EXPECT_EQ(p->flags.framework_name, "etcd");
  EXPECT_EQ(p->flags.etcd_bin, "./bin/etcd");
  EXPECT_EQ(p->flags.listen_addr, (HostPort{"127.0.0.1", 2379}));
  EXPECT_EQ(p->flags.data_dir, "proxy.etcd");
}

TEST(ProxyFlags, HelpExplainsTheSourcesAndOnce) {
  auto p = Parse({"--help"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->help);
  for (const char* word :
       {"--scheduler", "--master", "--framework-name", "--listen-addr", "--once", "--wait",
        "--poll-interval", "--etcd-bin", "ETCDCTL_ENDPOINTS", "grpc-proxy"}) {
    EXPECT_NE(p->text.find(word), std::string::npos) << word;
  }
}

TEST(ProxyFlags, TlsToTheMembersAndOnTheListener) {
  auto p =
      Parse({"--scheduler=https://sched:12300", "--cacert=ca.pem", "--cert=proxy.pem",
             "--key=proxy-key.pem", "--listen-cert-file=l.pem", "--listen-key-file=l-key.pem"});
  ASSERT_TRUE(p.ok()) << p.error();
  const ProxyFlags& f = p->flags;
  EXPECT_EQ(f.scheduler->scheme, "https");
  EXPECT_EQ(f.scheduler->endpoint, (HostPort{"sched", 12300}));
  EXPECT_EQ(f.cacert, "ca.pem");
  EXPECT_EQ(f.cert, "proxy.pem");
  EXPECT_EQ(f.key, "proxy-key.pem");
  EXPECT_EQ(f.listen_cert_file, "l.pem");
  EXPECT_EQ(f.listen_key_file, "l-key.pem");

  // A CA bundle alone: members that do not ask for a client certificate.
  auto ca_only = Parse({"--master=m:5050", "--cacert=ca.pem"});
  ASSERT_TRUE(ca_only.ok()) << ca_only.error();
  EXPECT_TRUE(ca_only->flags.cert.empty());

  // Plain unless asked.
  auto plain = Parse({"--scheduler=sched:12300"});
  ASSERT_TRUE(plain.ok()) << plain.error();
  EXPECT_TRUE(plain->flags.cacert.empty());
  EXPECT_TRUE(plain->flags.listen_cert_file.empty());

  auto help = Parse({"--help"});
  ASSERT_TRUE(help.ok());
  for (const char* word : {"--cacert", "--cert", "--key", "--listen-cert-file", "--listen-key-file",
                           "ETCD_MESOS_PROXY_CACERT", "Common Name", "127.0.0.1", "https://"}) {
    EXPECT_NE(help->text.find(word), std::string::npos) << word;
  }
}

TEST(ProxyFlags, TlsFilesComeFromTheEnvironmentToo) {
  auto p = Parse({"--scheduler=https://sched:12300", "--key=/here/key.pem"},
                 {{"ETCD_MESOS_PROXY_CACERT", "/etc/etcd/ca.pem"},
                  {"ETCD_MESOS_PROXY_CERT", "/etc/etcd/proxy.pem"},
                  {"ETCD_MESOS_PROXY_KEY", "/etc/etcd/proxy-key.pem"},
                  {"ETCD_MESOS_PROXY_LISTEN_CERT_FILE", "/etc/etcd/listener.pem"},
                  {"ETCD_MESOS_PROXY_LISTEN_KEY_FILE", "/etc/etcd/listener-key.pem"}});
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->flags.cacert, "/etc/etcd/ca.pem");
  EXPECT_EQ(p->flags.cert, "/etc/etcd/proxy.pem");
  EXPECT_EQ(p->flags.key, "/here/key.pem") << "the command line wins";
  EXPECT_EQ(p->flags.listen_cert_file, "/etc/etcd/listener.pem");
  EXPECT_EQ(p->flags.listen_key_file, "/etc/etcd/listener-key.pem");
}

void ExpectBad(std::vector<std::string> args, const std::string& mention) {
  auto p = Parse(args);
  ASSERT_FALSE(p.ok()) << "accepted: " << testing::PrintToString(args);
  EXPECT_EQ(p.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(p.error().message.find(mention), std::string::npos) << p.error().message;
  EXPECT_NE(p.error().message.find("--help"), std::string::npos) << p.error().message;
}

TEST(ProxyFlags, BadFlagsNameTheProblem) {
  ExpectBad({}, "exactly one of --scheduler");
  ExpectBad({"--scheduler=http://a:1", "--master=b:2"}, "exactly one of --scheduler");
  ExpectBad({"--scheduler=http://a:99999"}, "--scheduler");
  ExpectBad({"--scheduler=ftp://a:1"}, "--scheduler");
  ExpectBad({"--scheduler=https://a:1"}, "https needs --cacert");
  ExpectBad({"--master=zk://nohosts"}, "--master");
  ExpectBad({"--master=a:1", "--framework-name="}, "--framework-name");
  ExpectBad({"--scheduler=a:1", "--listen-addr=nowhere"}, "--listen-addr");
  ExpectBad({"--scheduler=a:1", "--poll-interval=often"}, "--poll-interval");
  ExpectBad({"--scheduler=a:1", "--poll-interval=1ms"}, "at least");
  ExpectBad({"--scheduler=a:1", "--wait=-1s"}, "--wait");
  ExpectBad({"--scheduler=a:1", "--log-level=loud"}, "--log-level");
  ExpectBad({"--scheduler=a:1", "--no-such-flag"}, "no-such-flag");
  ExpectBad({"--scheduler=a:1", "stray"}, "stray");
  ExpectBad({"--scheduler=a:1", "--listen-client-urls=http://a:1,http://b:2"}, "one address");
  ExpectBad({"--scheduler=a:1", "--listen-client-urls=a:1"}, "--listen-client-urls");
  ExpectBad({"--scheduler=a:1", "--listen-client-urls=http://a:1", "--listen-addr=b:2"}, "listen");
  ExpectBad({"--scheduler=a:1", "--cacert=ca.pem", "--cert=c.pem"}, "--cert and --key go together");
  ExpectBad({"--scheduler=a:1", "--cacert=ca.pem", "--key=k.pem"}, "--cert and --key go together");
  ExpectBad({"--scheduler=a:1", "--cert=c.pem", "--key=k.pem"}, "needs --cacert");
  ExpectBad({"--scheduler=a:1", "--listen-cert-file=c.pem"}, "--listen-key-file");
  ExpectBad({"--scheduler=a:1", "--listen-key-file=k.pem"}, "--listen-cert-file");
  ExpectBad({"--scheduler=a:1", "--listen-trusted-ca-file=ca.pem"}, "listen-trusted-ca-file");
}

TEST(ClientUrlsFromMembers, RunningVotersOnlySortedAndUnique) {
  auto urls = ClientUrlsFromMembers(R"([
    {"name":"etcd-3","host":"127.0.0.4","clientPort":31001,"taskState":"TASK_RUNNING","learner":false},
    {"name":"etcd-1","host":"127.0.0.2","clientPort":31001,"taskState":"TASK_RUNNING","learner":false},
    {"name":"etcd-4","host":"127.0.0.5","clientPort":31005,"taskState":"TASK_RUNNING","learner":true},
    {"name":"etcd-2","host":"127.0.0.3","clientPort":31001,"taskState":"TASK_FAILED","learner":false},
    {"name":"etcd-5","host":"127.0.0.6","clientPort":31001,"taskState":"TASK_STAGING"},
    {"name":"etcd-1b","host":"127.0.0.2","clientPort":31001}
  ])");
  ASSERT_TRUE(urls.ok()) << urls.error();
  EXPECT_EQ(*urls, (ClientUrls{"http://127.0.0.2:31001", "http://127.0.0.4:31001"}));
  EXPECT_EQ(JoinUrls(*urls), "http://127.0.0.2:31001,http://127.0.0.4:31001");
  // A field of an unexpected type is not a crash (nlohmann's value() would throw here).
  auto odd =
      ClientUrlsFromMembers(R"([{"host":"h","clientPort":1,"learner":"yes","taskState":7}])");
  ASSERT_TRUE(odd.ok()) << odd.error();
  EXPECT_EQ(*odd, (ClientUrls{"http://h:1"}));
  auto none = ClientUrlsFromMembers("[]\n");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(ClientUrlsFromMembers, TheSchedulersClientUrlCarriesTheScheme) {
  auto urls = ClientUrlsFromMembers(R"([
    {"host":"127.0.0.4","clientPort":31001,"clientUrl":"https://127.0.0.4:31001"},
    {"host":"127.0.0.2","clientPort":31001,"clientUrl":"https://127.0.0.2:31001/"},
    {"host":"127.0.0.3","clientPort":31001,"clientUrl":"https://127.0.0.3:31001","learner":true}
  ])");
  ASSERT_TRUE(urls.ok()) << urls.error();
  EXPECT_EQ(*urls, (ClientUrls{"https://127.0.0.2:31001", "https://127.0.0.4:31001"}));
  for (const char* body : {R"([{"host":"a","clientPort":1,"clientUrl":"a:1"}])",
                           R"([{"host":"a","clientPort":1,"clientUrl":7}])",
                           R"([{"host":"a","clientPort":1,"clientUrl":"https://a:1/v3"}])"}) {
    auto bad = ClientUrlsFromMembers(body);
    ASSERT_FALSE(bad.ok()) << body;
    EXPECT_NE(bad.error().message.find("clientUrl"), std::string::npos) << bad.error();
  }
}

TEST(RequireTlsFor, HttpsMembersNeedACaBundle) {
  ClientUrls tls = {"http://127.0.0.2:1", "https://127.0.0.3:2"};
  EXPECT_TRUE(RequireTlsFor(tls, true).ok());
  EXPECT_TRUE(RequireTlsFor({"http://127.0.0.2:1"}, false).ok());
  EXPECT_TRUE(RequireTlsFor({}, false).ok());
  auto refused = RequireTlsFor(tls, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  for (const char* word : {"https://127.0.0.3:2", "--cacert", "--cert", "--key", "plain http"}) {
    EXPECT_NE(refused.error().message.find(word), std::string::npos) << refused.error();
  }
  EXPECT_EQ(refused.error().message.find("http://127.0.0.2:1"), std::string::npos)
      << "only the https members are named";
}

TEST(ClientUrlsFromMembers, RefusesWhatIsNotAMemberList) {
  for (const char* body :
       {"", "<html>", "{\"members\":[]}", "[{\"host\":\"a\"}]",
        "[{\"host\":\"a\",\"clientPort\":0}]", "[{\"host\":1,\"clientPort\":2379}]", "[3]"}) {
    auto urls = ClientUrlsFromMembers(body);
    ASSERT_FALSE(urls.ok()) << body;
    EXPECT_EQ(urls.error().code, ErrorCode::kInvalidArgument) << body;
  }
}

// Trimmed from etcd-mesos-local's /master/state (the fields real Mesos serves too).
constexpr const char* kState = R"({
  "frameworks": [
    {"id": "fw-1", "name": "etcd-prod", "tasks": [
      {"id": "etcd-7 127.0.0.2 31000 31001 31002", "name": "etcd-7 127.0.0.2 31000 31001 31002",
       "slave_id": "S1", "state": "TASK_RUNNING",
       "discovery": {"visibility": "EXTERNAL", "name": "etcd-prod", "ports": {"ports": [
         {"number": 31000, "name": "etcd-server", "protocol": "tcp"},
         {"number": 31001, "name": "etcd-client", "protocol": "tcp"}]}}},
      {"id": "etcd-8 127.0.0.3 31000 31001 31002", "slave_id": "S2", "state": "TASK_STAGING"},
      {"id": "etcd-9 127.0.0.4 31010 31011 31012", "slave_id": "S3", "state": "TASK_RUNNING"},
      {"id": "legacy", "slave_id": "S4", "state": "TASK_RUNNING",
       "discovery": {"name": "etcd-server", "ports": {"ports": [
         {"number": 4000, "protocol": "tcp"}, {"number": 4001, "protocol": "client"}]}}},
      {"id": "etcd-10 127.0.0.6 1 2 3", "slave_id": "S5", "state": "TASK_KILLED"}
    ]},
    {"id": "fw-2", "name": "marathon", "tasks": []}
  ],
  "slaves": [{"id": "S1", "hostname": "127.0.0.2"}, {"id": "S4", "hostname": "agent4.example"}]
})";

TEST(ClientUrlsFromMasterState, RunningTasksOfTheNamedFramework) {
  auto urls = ClientUrlsFromMasterState(kState, "etcd-prod");
  ASSERT_TRUE(urls.ok()) << urls.error();
  // DiscoveryInfo's etcd-client port; the task ID's fourth field without DiscoveryInfo; the
  // original's protocol "client" marker with the agent's hostname when the ID says nothing.
  EXPECT_EQ(*urls, (ClientUrls{"http://127.0.0.2:31001", "http://127.0.0.4:31011",
                               "http://agent4.example:4001"}));
}

TEST(ClientUrlsFromMasterState, HttpsWhenTheCallerSaysTheMembersServeTls) {
  auto urls = ClientUrlsFromMasterState(kState, "etcd-prod", "https");
  ASSERT_TRUE(urls.ok()) << urls.error();
  EXPECT_EQ(*urls, (ClientUrls{"https://127.0.0.2:31001", "https://127.0.0.4:31011",
                               "https://agent4.example:4001"}));
}

TEST(ClientUrlsFromMasterState, NamesWhatIsThereWhenTheFrameworkIsNot) {
  auto urls = ClientUrlsFromMasterState(kState, "etcd-test");
  ASSERT_FALSE(urls.ok());
  EXPECT_EQ(urls.error().code, ErrorCode::kNotFound);
  EXPECT_NE(urls.error().message.find("'etcd-test'"), std::string::npos) << urls.error();
  EXPECT_NE(urls.error().message.find("etcd-prod, marathon"), std::string::npos) << urls.error();
}

TEST(ClientUrlsFromMasterState, TwoFrameworksOfOneNameAreAConflict) {
  auto urls = ClientUrlsFromMasterState(
      R"({"frameworks":[{"id":"a","name":"etcd-x","tasks":[]},{"id":"b","name":"etcd-x"}]})",
      "etcd-x");
  ASSERT_FALSE(urls.ok());
  EXPECT_EQ(urls.error().code, ErrorCode::kConflict);
  EXPECT_NE(urls.error().message.find("a, b"), std::string::npos) << urls.error();
}

TEST(ClientUrlsFromMasterState, RefusesWhatIsNotMasterState) {
  for (const char* body : {"", "[]", "{\"tasks\":[]}", "not json"}) {
    auto urls = ClientUrlsFromMasterState(body, "etcd-x");
    ASSERT_FALSE(urls.ok()) << body;
    EXPECT_EQ(urls.error().code, ErrorCode::kInvalidArgument) << body;
  }
  auto empty = ClientUrlsFromMasterState(R"({"frameworks":[{"name":"etcd-x"}]})", "etcd-x");
  ASSERT_TRUE(empty.ok()) << empty.error();
  EXPECT_TRUE(empty->empty());
}

TEST(DescribeChange, SaysWhatJoinedAndWhatLeft) {
  EXPECT_EQ(DescribeChange({"http://a:1", "http://b:1"}, {"http://a:1", "http://c:1"}),
            "+http://c:1 -http://b:1");
  EXPECT_EQ(DescribeChange({"http://a:1"}, {"http://a:1"}), "no change");
}

TEST(BackoffDelay, DoublesToTheCapWithJitterInTheUpperHalf) {
  EXPECT_EQ(BackoffDelay(0, milliseconds(100), milliseconds(1000), 1.0), milliseconds(100));
  EXPECT_EQ(BackoffDelay(2, milliseconds(100), milliseconds(1000), 1.0), milliseconds(400));
  EXPECT_EQ(BackoffDelay(10, milliseconds(100), milliseconds(1000), 1.0), milliseconds(1000));
  EXPECT_EQ(BackoffDelay(10, milliseconds(100), milliseconds(1000), 0.0), milliseconds(500));
  EXPECT_EQ(BackoffDelay(1000, milliseconds(100), milliseconds(1000), 0.5), milliseconds(750));
}

}  // namespace
}  // namespace etcd_mesos::proxy
