#include "testing/ports.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>

namespace etcd_mesos::test {
namespace {

bool CanBind(const std::string& ip, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// One block per test process, leased with an exclusive flock on a file per block, held (the
// descriptor left open) until the process exits: two test processes running at once never share
// a block, whatever their pids. The search starts at a pid-based block to spread the leases.
constexpr int kBlocks = 40;
int LeasedBlock() {
  static std::once_flag once;
  static int leased = 0;
  std::call_once(once, [] {
    int first = static_cast<int>(::getpid() % kBlocks);
    for (int i = 0; i < kBlocks; ++i) {
      int block = (first + i) % kBlocks;
      std::string path = "/tmp/em-test-block." + std::to_string(block) + ".lock";
      int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
      if (fd < 0) continue;
      if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
        leased = block;
        return;  // fd stays open: the lease lasts as long as the process
      }
      ::close(fd);
    }
    throw std::runtime_error(
        "every block of test addresses and ports is leased by another process");
  });
  return leased;
}

}  // namespace

uint16_t FreePort(const std::string& ip) {
  // Each process hands out ports only from its leased block of 300, below the kernel's
  // ephemeral range (32768+) so outgoing connections never take them: a port this process
  // freed for a while (a server it restarts) is never handed to another test process.
  constexpr uint32_t kPortsPerBlock = 300;
  static std::atomic<uint32_t> next{0};
  uint32_t base = 20000 + static_cast<uint32_t>(LeasedBlock()) * kPortsPerBlock;
  for (uint32_t attempt = 0; attempt < kPortsPerBlock; ++attempt) {
    uint32_t candidate = base + next.fetch_add(1) % kPortsPerBlock;
    if (CanBind(ip, static_cast<uint16_t>(candidate))) return static_cast<uint16_t>(candidate);
  }
  throw std::runtime_error("no free port left in this process's block on " + ip);
}

int AgentHostBase() { return 10 + LeasedBlock() * 6; }

}  // namespace etcd_mesos::test
