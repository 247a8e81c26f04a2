// MasterDetector: finds the leading Mesos master, as Mesos's own detector does
// (reference/mesos-v1-api.md section 4).
//
// For `--master=host:port` it reports that master once. For `--master=zk://[user:pass@]hosts/path`
// it watches the children of `path`: every contending master holds an ephemeral sequential node
// `json.info_<sequence>` whose data is its MasterInfo as JSON, and the leader is the one with the
// lowest sequence. Other children (`info_` nodes of pre-0.24 masters, `log_replicas`) are ignored,
// as is a node whose data cannot be parsed (logged; the next one in line is taken, which as a
// non-leading master will redirect to the leader). It re-reads on every children watch and on
// (re)connection, and opens a new session when the old one expires.
//
// Threading: lives on one io_context thread; the callback runs there, never inside Start(). The
// ZooKeeper client completes on its own threads; those only post results onto the io_context, and
// a shared state with a closed flag makes destruction safe while completions are in flight.
// Destroying the detector (or Stop()) closes the ZooKeeper session and blocks until the client's
// threads have finished; no callback runs afterwards.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/result.h"
#include "common/uri.h"
#include "mesos/v1.h"

namespace etcd_mesos::mesos_client {

// The leader's node among `children` of the detection path: the lowest sequence among names
// matching ^json\.info_(\d+)$, candidates in leadership order (the leader first).
std::vector<std::string> LeaderCandidates(const std::vector<std::string>& children);

// Where a master serves its API: address.ip (else address.hostname) with address.port, falling
// back to hostname (else the packed ip) with port.
Result<HostPort> MasterEndpoint(const mesos::MasterInfo& info);

class MasterDetector {
 public:
  struct Options {
    std::chrono::milliseconds session_timeout{10'000};  // Mesos's default
    // After a failed read (connection loss mid-read), read again after this long.
    std::chrono::milliseconds retry_interval{1'000};
  };
  // nullopt: no master is leading right now (or the path does not exist). Called when the leader
  // changes: another address, or a new election at the same address (a new leading node, as
  // when a master restarted in place takes over from its own expired session).
  using LeaderCallback = std::function<void(const std::optional<HostPort>& leader)>;

  MasterDetector(boost::asio::io_context& io, MasterAddress address, Options options,
                 LeaderCallback on_leader);
  ~MasterDetector();
  MasterDetector(const MasterDetector&) = delete;
  MasterDetector& operator=(const MasterDetector&) = delete;

  // Starts detecting. The first report comes once the leader (or its absence) is known. Fails
  // only when the ZooKeeper client cannot be created at all.
  Status Start();
  void Stop();

  // The last leader reported (nullopt before the first report too).
  std::optional<HostPort> leader() const;

  // The current ZooKeeper session (id, 16-byte password), for tests that expire it.
  std::optional<std::pair<int64_t, std::string>> ZooKeeperSessionForTesting() const;

  // The newest listing of the path that the detector has finished with: it has reported what the
  // listing shows (or found it changes nothing), or given up on it and scheduled a retry. For
  // tests that must know a change has been handled before they check what was (not) reported.
  struct ListingForTesting {
    int64_t session = 0;                // the ZooKeeper session it was read on
    int rc = 0;                         // ZooKeeper's answer to the listing (ZOK, ZNOAUTH, ...)
    std::vector<std::string> children;  // the path's children, as listed
  };
  std::optional<ListingForTesting> LastListingForTesting() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace etcd_mesos::mesos_client
