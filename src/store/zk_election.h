// ZkElection: one leader among the scheduler instances of a cluster (or the masters of
// etcd-mesos-local), by the standard ZooKeeper recipe. Each instance holds an ephemeral
// sequential node `<path>/<prefix><sequence>` whose data says how to reach it (a scheduler's
// admin URL; a master's MasterInfo as JSON, the prefix then `json.info_` as Mesos's); the lowest
// sequence leads, and the others watch the children of `path` to learn who leads and when it is
// their turn.
//
// Leadership lasts as long as the node's session. ZooKeeper deletes the node, and so lets the
// next instance lead, only once that session has expired. A leader told of its session's expiry
// (on_lost) must stop acting at once (the scheduler exits). A leader cut off from ZooKeeper is
// told so (View::suspended) and must hold every action until it hears again: the client notices
// the loss two thirds of the session timeout after it last heard from ZooKeeper, before the
// server can expire the session (a whole timeout after it last heard from the client), so a
// leader holds before anyone else can be elected. Reconnected within the session, it leads on
// (suspended is cleared); otherwise it hears of the expiry (on_lost). A standby whose session
// expires contends again with a new one.
//
// Threading: lives on one io_context thread; callbacks run there, never inside Start(). The
// ZooKeeper client completes on its own threads, which only post onto the io_context; a shared
// state with a closed flag makes destruction safe while completions are in flight.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/result.h"
#include "common/uri.h"

namespace etcd_mesos::store {

class ZkElection {
 public:
  struct Options {
    std::chrono::milliseconds session_timeout{10'000};
    std::string node_prefix = "candidate_";
  };
  struct View {
    bool leading = false;
    std::string node;                        // ours, once created
    std::optional<std::string> leader_data;  // what the leader wrote into its node (not ours)
    // Leading, but the connection to ZooKeeper is lost: the session may expire (and another
    // instance lead) before it comes back. Hold every action.
    bool suspended = false;
    bool operator==(const View&) const = default;
  };
  using OnChange = std::function<void(const View&)>;
  using OnLost = std::function<void(const std::string& why)>;

  // `url`'s path is the election's directory (created if missing); `data` goes into our node.
  ZkElection(boost::asio::io_context& io, ZkUrl url, std::string data, Options options,
             OnChange on_change, OnLost on_lost);
  ~ZkElection();
  ZkElection(const ZkElection&) = delete;
  ZkElection& operator=(const ZkElection&) = delete;

  // Connects and contends. Fails only when no ZooKeeper client can be created.
  Status Start();
  // Withdraws: the session closes and our node goes with it. No callback afterwards.
  void Stop();

  const View& view() const;
  // The session's id and password, for tests that expire it. Call on the io thread.
  std::optional<std::pair<int64_t, std::string>> SessionForTesting() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace etcd_mesos::store
