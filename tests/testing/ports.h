// Free loopback ports and addresses for tests that start real servers.
//
// Each test process leases one block (a lock file per block, held until it exits) of 300 ports
// and six agent addresses; two test processes running at once never share either, so a port a
// test frees for a moment (a server it restarts) cannot be taken by another test.
//
// Threading: thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace etcd_mesos::test {

// A TCP port of this process's block that is free on `ip` right now; the block is cycled
// through, so a port comes back only after the other 299 were handed out.
uint16_t FreePort(const std::string& ip = "127.0.0.1");

// The last octet of the first loopback address (127.0.0.x) for this process's simulated agents.
// Test binaries run in parallel and their agents offer the same port range, so each process's
// agents live on the six addresses of its block: two local clusters never bind one ip:port.
int AgentHostBase();

}  // namespace etcd_mesos::test
