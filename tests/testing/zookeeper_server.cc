#include "testing/zookeeper_server.h"

#include <zookeeper.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include "testing/ports.h"

namespace etcd_mesos::test {
namespace {

void DiscardLog(const char* /*message*/) {}
void IgnoreEvents(zhandle_t*, int, int, const char*, void*) {}

// Opens a client (optionally attached to an existing session) and waits until it is connected.
// Returns the handle or nullptr; `state` gets the last state seen.
zhandle_t* Connect(const std::string& servers, const clientid_t* session,
                   std::chrono::milliseconds timeout, int* state) {
  zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
  zhandle_t* zh =
      zookeeper_init2(servers.c_str(), &IgnoreEvents, 4000, session, nullptr, 0, &DiscardLog);
  if (zh == nullptr) return nullptr;
  bool connected = WaitFor(
      [&] {
        *state = zoo_state(zh);
        return *state == ZOO_CONNECTED_STATE || *state == ZOO_EXPIRED_SESSION_STATE;
      },
      timeout);
  if (!connected || *state != ZOO_CONNECTED_STATE) {
    zookeeper_close(zh);
    return nullptr;
  }
  return zh;
}

}  // namespace

ZooKeeperServer::ZooKeeperServer(Options options) : options_(std::move(options)) {
  port_ = FreePort(options_.ip);
}

ZooKeeperServer::~ZooKeeperServer() { Stop(); }

std::string ZooKeeperServer::servers() const { return fmt::format("{}:{}", options_.ip, port_); }

std::string ZooKeeperServer::Url(std::string_view chroot) const {
  return fmt::format("zk://{}{}", servers(), chroot);
}

std::string ZooKeeperServer::LogTail(size_t max_bytes) const {
  std::ifstream in(dir_.path() / "zookeeper.log");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return all.size() > max_bytes ? all.substr(all.size() - max_bytes) : all;
}

Status ZooKeeperServer::Start() {
  if (process_) return OkStatus();
  auto config = dir_.path() / "zoo.cfg";
  {
    std::ofstream cfg(config, std::ios::trunc);
    cfg << "tickTime=" << options_.tick_ms << "\n"
        << "dataDir=" << (dir_.path() / "data").string() << "\n"
        << "clientPort=" << port_ << "\n"
        << "clientPortAddress=" << options_.ip << "\n"
        << "maxClientCnxns=0\n"
        // The admin server would take port 8080; four-letter words help when debugging by hand.
        << "admin.enableServer=false\n"
        << "4lw.commands.whitelist=*\n";
    if (!cfg) {
      return MakeError(ErrorCode::kInternal, "cannot write {}", config.string());
    }
  }
  // zookeeper.jar's manifest names its dependencies; slf4j-simple makes the server log to our file.
  std::vector<std::string> argv = {"java",
                                   "-Xmx256m",
                                   "-XX:+UseSerialGC",
                                   "-XX:TieredStopAtLevel=1",
                                   "-Dzookeeper.admin.enableServer=false",
                                   "-cp",
                                   "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar",
                                   "org.apache.zookeeper.server.ZooKeeperServerMain",
                                   config.string()};
  process_ = std::make_unique<ChildProcess>(argv, dir_.path() / "zookeeper.log");
  auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
  while (true) {
    if (!process_->Running()) {
      process_.reset();
      return MakeError(ErrorCode::kUnavailable, "ZooKeeper on {} exited at start:\n{}", servers(),
                       LogTail());
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= std::chrono::milliseconds(0)) break;
    if (WaitForZooKeeper(servers(), std::min(left, std::chrono::milliseconds(2000))).ok()) {
      return OkStatus();
    }
  }
  Stop();
  return MakeError(ErrorCode::kUnavailable, "ZooKeeper on {} did not answer within {} ms:\n{}",
                   servers(), options_.start_timeout.count(), LogTail());
}

void ZooKeeperServer::Stop() {
  if (!process_) return;
  process_->Stop(std::chrono::seconds(10));
  process_.reset();
}

Status WaitForZooKeeper(const std::string& servers, std::chrono::milliseconds timeout) {
  int state = 0;
  zhandle_t* zh = Connect(servers, nullptr, timeout, &state);
  if (zh == nullptr) {
    return MakeError(ErrorCode::kUnavailable, "no ZooKeeper session with {} within {} ms", servers,
                     timeout.count());
  }
  zookeeper_close(zh);
  return OkStatus();
}

Status ExpireZooKeeperSession(const std::string& servers, int64_t session_id,
                              const std::string& password) {
  clientid_t id{};
  id.client_id = session_id;
  std::memcpy(id.passwd, password.data(), std::min(password.size(), sizeof id.passwd));
  // Closing a handle ends its session on the server, for every client attached to it. But the
  // session's own client may reconnect in between and take the session back; the server then
  // refuses the close as coming from a connection the session moved away from (seen under load:
  // the session lived on). So: attach and close until the server says the session is expired.
  constexpr int kAttempts = 10;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    int state = 0;
    zhandle_t* zh = Connect(servers, &id, std::chrono::seconds(10), &state);
    if (zh == nullptr) {
      if (state == ZOO_EXPIRED_SESSION_STATE) return OkStatus();
      return MakeError(ErrorCode::kUnavailable, "cannot attach to session 0x{:x} on {} (state {})",
                       session_id, servers, state);
    }
    zookeeper_close(zh);
  }
  return MakeError(ErrorCode::kInternal, "session 0x{:x} on {} still lives after {} closes",
                   session_id, servers, kAttempts);
}

}  // namespace etcd_mesos::test
