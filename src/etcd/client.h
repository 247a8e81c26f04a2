// Client: an asynchronous client of one etcd 3.4 member's v3 JSON gateway (POST /v3/...), for
// everything etcd-mesos asks of a member: membership (list, add as learner, promote, remove,
// update), maintenance status, health, alarms, defragmentation, a key put/get/compare-and-swap, and
// a verified snapshot download.
//
// One client talks to one member; which member to ask is the caller's decision (a learner answers
// status and health but refuses member list and KV with kUnavailable, so membership goes to
// voters). Every request has a deadline (Options::request_timeout) and fails with kUnavailable
// when the member cannot be reached in time. Results and errors are classified by etcd/codec.h:
// kUnavailable is "retry later", kRefused carries etcd's reason, kNotFound an unknown member.
//
// With Options::tls every request is https: the member's certificate must chain to the
// configuration's CA bundle and name the endpoint's IP address, and the configuration's client
// certificate answers etcd's --client-cert-auth. A failed handshake is kUnavailable, its message
// naming the TLS stage and why.
//
// Threading: the client and every callback live on the io_context passed in, which the owner runs
// on one thread; callbacks are never invoked inside the call that started the request. A callback
// may still arrive after the client is destroyed (a request in flight keeps what it needs), so
// callbacks must not capture the client's owner unguarded. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/result.h"
#include "common/uri.h"
#include "etcd/types.h"

namespace etcd_mesos::net {
class TlsClientConfig;
}

namespace etcd_mesos::etcd {

template <typename T>
using Callback = std::function<void(Result<T>)>;

class Client {
 public:
  struct Options {
    // Deadline of one request; for a snapshot, the longest silence allowed between two pieces.
    std::chrono::milliseconds request_timeout{5000};
    // Largest response body accepted (a member list of a few members is a few KiB).
    uint64_t max_response_bytes = 4ull << 20;
    // Set: https with this configuration (net::TlsClientConfig::Create). Unset: plain http.
    std::shared_ptr<const net::TlsClientConfig> tls;
  };

  Client(boost::asio::io_context& io, HostPort endpoint) : Client(io, std::move(endpoint), {}) {}
  Client(boost::asio::io_context& io, HostPort endpoint, Options options);

  const HostPort& endpoint() const { return endpoint_; }

  // Membership. A learner refuses MemberList with kUnavailable: ask a voter.
  void MemberList(Callback<MemberListResponse> done);
  void MemberAdd(std::vector<std::string> peer_urls, bool as_learner,
                 Callback<MemberAddResponse> done);
  // kRefused while the learner is not in sync with the leader: retry later.
  void MemberPromote(uint64_t id, Callback<MemberListResponse> done);
  void MemberRemove(uint64_t id, Callback<MemberListResponse> done);
  void MemberUpdate(uint64_t id, std::vector<std::string> peer_urls,
                    Callback<MemberListResponse> done);
  // Hands leadership to voter `target_id` (etcd's MoveLeader). Only the leader does it: another
  // member answers kRefused "etcdserver: not leader".
  void MoveLeader(uint64_t target_id, Callback<ResponseHeader> done);

  // Maintenance, answered by this member (a learner too).
  void Status(Callback<StatusResponse> done);
  void Health(Callback<HealthResponse> done);
  void AlarmList(Callback<AlarmResponse> done);
  void AlarmDisarm(uint64_t member_id, AlarmType type, Callback<AlarmResponse> done);
  // GET /metrics, reduced to the disk latency totals (a learner answers too).
  void DiskLatency(Callback<DiskLatencyTotals> done);
  // GET /metrics: this member's peer connections (etcd_network_active_peers).
  void PeerConnections(Callback<etcd::PeerConnections> done);
  // Compacts the cluster's KV history up to `revision` (every member applies it), waiting until
  // the space is freed (physical). kRefused "required revision has been compacted" when already.
  void Compact(uint64_t revision, Callback<ResponseHeader> done);
  // Blocks reads and writes on this member while it runs; do one member at a time.
  void Defragment(Callback<ResponseHeader> done);

  // KV, for tests and the workload checkers.
  void Put(std::string key, std::string value, Callback<PutResponse> done);
  // The value of one key (kvs empty if absent). `serializable` answers from this member's state,
  // without a quorum round: possibly stale, but available on a member that lost quorum.
  void Get(std::string key, bool serializable, Callback<RangeResponse> done);
  // One transaction: puts `new_value` at `key` if it holds `expected` (nullopt: if it does not
  // exist). `succeeded` says whether the compare held; either way the answer is linearizable.
  void CompareAndSwap(std::string key, std::optional<std::string> expected, std::string new_value,
                      Callback<TxnResponse> done);

  // Streams this member's database into a temporary file beside `path`, verifies etcd's trailing
  // SHA-256 (and strips it), fsyncs, and renames the file to `path`. kDataLoss when the stream is
  // corrupt, truncated or malformed; on any error nothing is left at `path` (and an existing file
  // there is left as it was).
  void Snapshot(std::filesystem::path path, Callback<SnapshotInfo> done);

 private:
  // One request: a POST of the JSON `body` when there is one, else a GET (health, metrics);
  // `decode` reads the HTTP status and body.
  template <typename T, typename Decode>
  void Send(std::string target, std::optional<std::string> body, Decode decode, Callback<T> done);
  // A v3 JSON call: a POST whose answer DecodeResponse checks before `decode` reads it.
  template <typename T, typename Decode>
  void Call(std::string target, std::string body, Decode decode, Callback<T> done);

  boost::asio::io_context& io_;
  HostPort endpoint_;
  Options options_;
};

// The endpoint of a member's client URL ("http://ip:port" or "https://ip:port"), checked against
// the options: an https URL needs Options::tls and an http one must not have it, since a member
// serves one or the other. kInvalidArgument naming the URL otherwise.
Result<HostPort> ClientEndpoint(std::string_view client_url, const Client::Options& options);

// Runs `io` until `start`'s callback has delivered its result: for command-line tools and tests,
// never for code that is itself running on `io`.
//   auto list = Await<MemberListResponse>(io, [&](auto cb) { client.MemberList(cb); });
template <typename T>
Result<T> Await(boost::asio::io_context& io, const std::function<void(Callback<T>)>& start) {
  std::optional<Result<T>> out;
  start([&out](Result<T> r) { out.emplace(std::move(r)); });
  io.restart();
  while (!out) {
    if (io.run_one() == 0) {
      return MakeError(ErrorCode::kInternal, "the event loop ran out of work before a result");
    }
  }
  return std::move(*out);
}

}  // namespace etcd_mesos::etcd
