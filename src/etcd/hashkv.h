// HashKv: one member's HashKV (the hash of its KV history up to a revision), asked through
// `etcdctl endpoint hashkv`.
//
// Why etcdctl and not the JSON gateway of etcd/client.h: etcd 3.4's gateway maps both Hash and
// HashKV to POST /v3/maintenance/hash, and Hash answers it (the whole database's hash, at no
// particular revision, with no compact revision), so HashKV is reachable only over gRPC. etcdctl
// (the binary the scheduler already serves to the agents, --etcdctl-bin) speaks gRPC.
//
// The child runs with its own dial and command timeouts and is killed (SIGKILL) if it outlives
// `timeout`; its output is read asynchronously and the child reaped without blocking.
//
// Threading: runs on `io`, whose thread gets `done` (posted, never inline). Callers must not let
// `done` capture an owner that may be gone (the request keeps what it needs alive).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/uri.h"
#include "etcd/client.h"
#include "etcd/launch.h"
#include "etcd/types.h"

namespace etcd_mesos::etcd {

// `tls`: the files etcdctl dials the member with (--cacert, --cert, --key); none for plain http.
void HashKv(boost::asio::io_context& io, const std::string& etcdctl, const HostPort& endpoint,
            const std::optional<TlsFiles>& tls, uint64_t revision,
            std::chrono::milliseconds timeout, Callback<HashKvResponse> done);

}  // namespace etcd_mesos::etcd
