// The executor shell's pure pieces: the etcd command line, the reseed request checks, log tails.
#include <fstream>

#include <gtest/gtest.h>

#include "executor/shell/command_line.h"
#include "executor/shell/etcd_process.h"
#include "executor/shell/reseed_listener.h"
#include "testing/tempdir.h"

namespace etcd_mesos::executor::shell {
namespace {

core::StartEtcd Start(bool force) {
  core::StartEtcd s;
  s.config.name = "etcd-2";
  s.config.address = "10.0.0.7";
  s.config.peer_port = 31001;
  s.config.client_port = 31002;
  s.config.initial_cluster = "etcd-1=http://10.0.0.5:31001,etcd-2=http://10.0.0.7:31001";
  s.config.cluster_token = "tok";
  s.config.extra_flags = {"--snapshot-count=1000"};
  s.new_cluster = false;
  s.force_new_cluster = force;
  return s;
}

bool Has(const std::vector<std::string>& argv, const std::string& arg) {
  return std::find(argv.begin(), argv.end(), arg) != argv.end();
}

TEST(EtcdCommandLine, BindsTheAgentAddressAndAddsForceOnlyWhenAsked) {
  auto argv = EtcdCommandLine(Start(false), "/usr/bin/etcd", "/sandbox/data");
  EXPECT_EQ(argv[0], "/usr/bin/etcd");
  for (const char* want :
       {"--name=etcd-2", "--data-dir=/sandbox/data", "--listen-client-urls=http://10.0.0.7:31002",
        "--advertise-client-urls=http://10.0.0.7:31002", "--listen-peer-urls=http://10.0.0.7:31001",
        "--initial-advertise-peer-urls=http://10.0.0.7:31001",
        "--initial-cluster=etcd-1=http://10.0.0.5:31001,etcd-2=http://10.0.0.7:31001",
        "--initial-cluster-state=existing", "--initial-cluster-token=tok", "--enable-v2=true",
        "--snapshot-count=1000"}) {
    EXPECT_TRUE(Has(argv, want)) << want;
  }
  EXPECT_FALSE(Has(argv, "--force-new-cluster"));
  for (const auto& a : argv) EXPECT_EQ(a.find("0.0.0.0"), std::string::npos) << a;
  EXPECT_TRUE(Has(EtcdCommandLine(Start(true), "etcd", "/d"), "--force-new-cluster"));
}

TEST(EtcdCommandLine, BinaryComesFromTheTaskThenTheFlagThenTheSandboxThenPath) {
  test::TempDir dir;
  TaskConfig c;
  EXPECT_EQ(ResolveEtcdBinary(c, "", dir.path()), "etcd");
  { std::ofstream(dir.path() / "etcd") << "#!/bin/sh\n"; }
  std::filesystem::permissions(dir.path() / "etcd", std::filesystem::perms::owner_all);
  EXPECT_EQ(ResolveEtcdBinary(c, "", dir.path()), (dir.path() / "etcd").string());
  EXPECT_EQ(ResolveEtcdBinary(c, "/opt/etcd", dir.path()), "/opt/etcd");
  c.etcd_binary = "/usr/bin/etcd";
  EXPECT_EQ(ResolveEtcdBinary(c, "/opt/etcd", dir.path()), "/usr/bin/etcd");
}

TEST(ReseedRequest, NeedsTheBearerTokenAndAWellFormedBody) {
  net::ServerRequest req;
  req.method = net::Verb::post;
  req.path = "/reseed";
  EXPECT_EQ(CheckReseedRequest(req, "tok").status, 401u);
  req.headers = {{"Authorization", "Basic dG9rOg=="}};
  EXPECT_EQ(CheckReseedRequest(req, "tok").status, 401u);
  req.headers = {{"Authorization", "Bearer to"}};
  EXPECT_EQ(CheckReseedRequest(req, "tok").status, 401u);
  req.headers = {{"Authorization", "Bearer tokk"}};
  EXPECT_EQ(CheckReseedRequest(req, "tok").status, 401u);
  req.headers = {{"authorization", "Bearer tok"}};
  auto ok = CheckReseedRequest(req, "tok");
  EXPECT_EQ(ok.status, 200u) << ok.error;
  EXPECT_FALSE(ok.timeout);
  req.body = "{\"timeout_s\": 20}";
  ok = CheckReseedRequest(req, "tok");
  EXPECT_EQ(ok.status, 200u);
  EXPECT_EQ(ok.timeout, std::chrono::seconds(20));
  for (const char* bad :
       {"{", "[]", "{\"timeout_s\": 0}", "{\"timeout_s\": \"5\"}", "{\"x\": 1}"}) {
    req.body = bad;
    auto check = CheckReseedRequest(req, "tok");
    EXPECT_EQ(check.status, 400u) << bad;
    EXPECT_FALSE(check.error.empty());
  }
}

TEST(LogTail, KeepsTheLastLinesWithinTheByteLimit) {
  test::TempDir dir;
  auto path = dir.path() / "etcd.log";
  EXPECT_EQ(ReadLogTail(path), "");
  {
    std::ofstream out(path);
    for (int i = 0; i < 100; ++i) out << "line " << i << "\n";
  }
  EXPECT_EQ(ReadLogTail(path, 3, 1000), "line 97\nline 98\nline 99");
  std::string tail = ReadLogTail(path, 50, 30);
  EXPECT_LE(tail.size(), 30u);
  EXPECT_EQ(tail.substr(0, 5), "line ") << "no half line at the start: " << tail;
  EXPECT_EQ(tail.substr(tail.size() - 7), "line 99");
}

TEST(WaitStatus, DescribesExitsAndSignals) {
  EXPECT_EQ(DescribeWaitStatus(3 << 8), "exited with status 3");
  EXPECT_NE(DescribeWaitStatus(9).find("killed by signal 9"), std::string::npos);
}

}  // namespace
}  // namespace etcd_mesos::executor::shell
