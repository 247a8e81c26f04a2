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

// The last octet of the first loopback address (127.0.0.x) for this process's simulated agents.
// Test binaries run in parallel and their agents offer the same port range, so each process
// gets its own block of six addresses, leased for the life of the process (a lock file per
// block): two local clusters never bind the same ip:port.
int AgentHostBase();

}  // namespace etcd_mesos::test
