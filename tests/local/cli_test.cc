// The etcd-mesos-local binary itself: bad flags are refused with exit code 2 and a clear
// message, and SIGTERM leaves no process it started behind.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include <gtest/gtest.h>

#include "net/http.h"
#include "testing/ports.h"
#include "testing/process.h"
#include "testing/tempdir.h"

namespace etcd_mesos::local {
namespace {

using test::ChildProcess;

// Every process whose parent chain leads to `root` (read from /proc).
std::set<int> Descendants(int root) {
  std::map<int, int> parent;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    int ppid;
    if (rest >> state >> ppid) parent[std::stoi(name)] = ppid;
  }
  std::set<int> out;
  bool grew = true;
  while (grew) {
    grew = false;
    for (auto [pid, ppid] : parent) {
      if ((ppid == root || out.count(ppid)) && !out.count(pid)) {
        out.insert(pid);
        grew = true;
      }
    }
  }
  return out;
}

int RunToExit(std::vector<std::string> argv, std::string* output) {
  test::TempDir dir("em-cli");
  ChildProcess p(std::move(argv), dir.path() / "out.log");
  int status = p.Wait();
  *output = p.LogTail();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(EtcdMesosLocalCli, BadFlagsExitTwoNamingTheProblem) {
  std::string out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--resources=cpus:lots"}, &out), 2);
  EXPECT_NE(out.find("--resources"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--agents=0"}, &out), 2);
  EXPECT_NE(out.find("--agents"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--heartbeat-interval=soon"}, &out), 2);
  EXPECT_NE(out.find("--heartbeat-interval"), std::string::npos) << out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--no-such-flag"}, &out), 2);
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--help"}, &out), 0);
  EXPECT_NE(out.find("--agents"), std::string::npos);
}

TEST(EtcdMesosLocalCli, BusyPortIsAClearError) {
  boost::asio::io_context io;
  net::HttpServer squatter(io, {},
                           [](const net::ServerRequest&, std::shared_ptr<net::Responder> r) {
                             r->Respond(net::TextResponse(200, "mine"));
                           });
  auto bound = squatter.Listen({"127.0.0.1", 0});
  ASSERT_TRUE(bound.ok());
  test::TempDir work("em-cli-work");
  std::string out;
  EXPECT_EQ(RunToExit({ETCD_MESOS_LOCAL_PATH, "--port=" + std::to_string(bound->port),
                       "--work-dir=" + work.path().string()},
                      &out),
            2);
  EXPECT_NE(out.find(std::to_string(bound->port)), std::string::npos) << out;
}

TEST(EtcdMesosLocalCli, SigtermLeavesNoProcessBehind) {
  test::TempDir work("em-cli-work");
  uint16_t port = test::FreePort();
  // The started command stands for the scheduler; it makes a grandchild of its own too.
  ChildProcess local({ETCD_MESOS_LOCAL_PATH, "--agents=2", "--port=" + std::to_string(port),
                      "--work-dir=" + work.path().string(), "--", "sh", "-c", "sleep 600 & wait"},
                     work.path() / "local.log");
  ASSERT_TRUE(test::WaitFor(
      [&] {
        auto r = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", port}, "/health"});
        return r.ok() && r->status == 200;
      },
      std::chrono::seconds(20)))
      << local.LogTail();
  std::set<int> children;
  ASSERT_TRUE(test::WaitFor(
      [&] {
        children = Descendants(local.pid());
        return children.size() >= 2;  // sh and its sleep
      },
      std::chrono::seconds(10)));
  // The master and the agents answer, and the state shows both agents.
  auto state = net::HttpFetchSync({net::Verb::get, {"127.0.0.1", port}, "/master/state"});
  ASSERT_TRUE(state.ok());
  EXPECT_NE(state->body.find("slave(2)@127.0.0.3"), std::string::npos);
  local.Kill(SIGTERM);
  int status = local.Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << local.LogTail();
  for (int pid : children) {
    EXPECT_TRUE(test::WaitFor([&] { return ::kill(pid, 0) != 0; }, std::chrono::seconds(5)))
        << "process " << pid << " outlived etcd-mesos-local";
  }
}

}  // namespace
}  // namespace etcd_mesos::local
