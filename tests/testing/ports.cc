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

}  // namespace

uint16_t FreePort(const std::string& ip) {
  // Below the kernel's ephemeral range (32768+), so outgoing connections never take our ports;
  // each process starts at its own offset so parallel test binaries rarely collide.
  static std::atomic<uint32_t> next{20000 + (static_cast<uint32_t>(::getpid()) * 37) % 10000};
  for (int attempt = 0; attempt < 2000; ++attempt) {
    uint32_t candidate = 20000 + (next.fetch_add(1) - 20000) % 12000;
    if (CanBind(ip, static_cast<uint16_t>(candidate))) return static_cast<uint16_t>(candidate);
  }
  throw std::runtime_error("no free port found on " + ip);
}

int AgentHostBase() {
  // A block is leased with an exclusive flock on a file per block, held (the descriptor left
  // open) until this process exits: two test processes running at once never share a block,
  // whatever their pids. The search starts at a pid-based block to spread the leases.
  static std::once_flag once;
  static int base = 0;
  std::call_once(once, [] {
    constexpr int kBlocks = 40;
    int first = static_cast<int>(::getpid() % kBlocks);
    for (int i = 0; i < kBlocks; ++i) {
      int block = (first + i) % kBlocks;
      std::string path = "/tmp/em-test-agent-hosts." + std::to_string(block) + ".lock";
      int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
      if (fd < 0) continue;
      if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
        base = 10 + block * 6;
        return;  // fd stays open: the lease lasts as long as the process
      }
      ::close(fd);
    }
    throw std::runtime_error("every block of test agent addresses is leased by another process");
  });
  return base;
}

}  // namespace etcd_mesos::test
