// etcd-mesos-proxy's pure parts: the command line, the client URLs read from the scheduler's
// /members and from a Mesos master's /master/state, and the jittered backoff.
#include <gtest/gtest.h>

#include "proxy/discovery.h"
#include "proxy/flags.h"

namespace etcd_mesos::proxy {
namespace {

using std::chrono::milliseconds;

Result<ParsedProxyFlags> Parse(std::vector<std::string> args) { return ParseProxyFlags(args); }

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
  ExpectBad({"--scheduler=https://a:1"}, "only http://");
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
