// etcd-mesos-proxy: a local etcd gRPC proxy that follows an etcd-mesos cluster across member
// replacements and reseeds, or (--once) the cluster's client URLs for scripts. Flags and wiring
// only; see src/proxy/proxy.h. Exit codes: 0 after --once or SIGINT/SIGTERM, 1 when no cluster
// was found or the grpc-proxy cannot be kept running, 2 for bad flags.
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "common/logging.h"
#include "proxy/flags.h"
#include "proxy/proxy.h"

extern char** environ;

int main(int argc, char** argv) {
  using namespace etcd_mesos;         // NOLINT: main() wiring
  using namespace etcd_mesos::proxy;  // NOLINT

  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  auto parsed = ParseProxyFlags(std::vector<std::string>(argv + 1, argv + argc), env);
  if (!parsed.ok()) {
    std::cerr << "etcd-mesos-proxy: " << parsed.error().message << "\n";
    return 2;
  }
  if (parsed->help) {
    std::cout << parsed->text;
    return 0;
  }
  ProxyFlags flags = std::move(parsed->flags);
  if (auto s = SetUpLogging("etcd-mesos-proxy", flags.log_level); !s.ok()) {
    std::cerr << "etcd-mesos-proxy: --log-level: " << s.error().message << "\n";
    return 2;
  }

  boost::asio::io_context io;
  int code = 0;
  Proxy proxy(io, flags, [&](int exit_code, const std::string& why) {
    if (!why.empty()) std::cerr << "etcd-mesos-proxy: " << why << "\n";
    code = exit_code;
    io.stop();
  });
  if (auto s = proxy.Start(); !s.ok()) {
    std::cerr << "etcd-mesos-proxy: " << s.error().message << "\n";
    return 1;
  }
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) proxy.Stop();
  });
  io.run();
  return code;
}
