// Free loopback ports and addresses for tests that start real servers.
//
// Threading: thread-safe; ports handed out are not handed out again by this process.
#pragma once

#include <cstdint>
#include <string>

namespace etcd_mesos::test {

// A TCP port that is free on `ip` right now and that this process has not handed out before.
// Ports come from a range chosen per process (by pid) to keep parallel test binaries apart.
uint16_t FreePort(const std::string& ip = "127.0.0.1");

}  // namespace etcd_mesos::test
