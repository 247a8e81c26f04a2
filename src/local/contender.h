// MasterContender: the candidacy of etcd-mesos-local's master in ZooKeeper, as Mesos's
// ZooKeeperMasterContender and detector together (src/master/contender, src/master/detector):
// the master holds an ephemeral sequential node `<path>/json.info_<sequence>` whose data is its
// MasterInfo as JSON, and it is elected when its node is the lowest in line. It is the
// schedulers' ZkElection with Mesos's node names; the leader's address is read from its node as
// the frameworks' detector reads it (MasterEndpoint). A master restarted in place so sees its own
// previous incarnation (same address, older node) lead until that session expires, and redirects
// to itself meanwhile, as real Mesos 1.11 did.
//
// A contender whose session expires while it leads reports that it no longer leads and contends
// again with a new session (real Mesos aborts the master instead; the local cluster keeps
// serving).
//
// Threading: lives on one io_context thread; the callback runs there, never inside Start().
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/result.h"
#include "common/uri.h"
#include "mesos/v1.h"

namespace etcd_mesos::local {

class MasterContender {
 public:
  struct Leadership {
    bool elected = false;            // this master's node leads
    std::optional<HostPort> leader;  // whoever leads, as the detector names it
    std::string node;                // this master's node, once created
    bool operator==(const Leadership&) const = default;
  };
  using Callback = std::function<void(const Leadership&)>;

  MasterContender(boost::asio::io_context& io, ZkUrl url, std::chrono::milliseconds session_timeout,
                  mesos::MasterInfo info, Callback on_change);
  ~MasterContender();
  MasterContender(const MasterContender&) = delete;
  MasterContender& operator=(const MasterContender&) = delete;

  // Connects and creates the node. Fails only when no ZooKeeper client can be created.
  Status Start();
  // Withdraws at once: the session closes and the node goes with it.
  void Stop();
  // As a master killed with SIGKILL: no more callbacks, but the session (and so the node, and
  // the leadership if it had it) lives on for `linger`, the time ZooKeeper takes to expire it.
  void Abandon(std::chrono::milliseconds linger);

  const Leadership& leadership() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace etcd_mesos::local
