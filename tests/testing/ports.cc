#include "testing/ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>

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

int AgentHostBase() { return 10 + static_cast<int>(::getpid() % 40) * 6; }

}  // namespace etcd_mesos::test
