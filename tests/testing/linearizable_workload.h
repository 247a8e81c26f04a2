// LinearizableWorkload: concurrent clients doing random reads, writes and compare-and-sets on a
// few keys they share, through etcd's v3 API, recording every operation as a History for the
// linearizability checker (testing/linearizability.h).
//
// Each client has one request in flight at a time, sent to its current member of the endpoint
// list (asked anew for every request; client i starts on the i-th); after an error it moves to
// the next member. Reads are
// linearizable (a quorum read, never serializable). Written values are unique over the run
// ("c<client>-<n>"), so a read names the write it saw. A CAS expects the value this client last
// read or wrote on that key (absent if none).
//
// Outcomes: ok when etcd answered; failed when etcd refused the request (kRefused: it was never
// applied); indeterminate for anything else (timeout, connection lost, no leader, an answer we
// could not decode): it may have been applied. An operation still in flight is indeterminate.
// Times are steady_clock nanoseconds since Start(). The keys (<prefix>/0, /1, ...) must not exist
// before Start(): the history starts them absent.
//
// Threading: runs on the io_context it is given and is not thread-safe; drive that io_context
// from one thread, and call Start, Stop and history() on it (or while it is not running).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/uri.h"
#include "net/http.h"
#include "testing/linearizability.h"

namespace etcd_mesos::test {

class LinearizableWorkload {
 public:
  using Endpoints = std::function<std::vector<HostPort>()>;
  struct Options {
    std::string prefix = "/linearizable";
    int clients = 4;
    int keys = 3;  // shared by all clients, so that their operations overlap
    std::chrono::milliseconds request_timeout{1000};
    std::chrono::milliseconds pause{1};  // between two operations of one client
    uint32_t seed = 1;
    std::shared_ptr<const net::TlsClientConfig> tls;  // set: the members serve https
  };

  LinearizableWorkload(boost::asio::io_context& io, Endpoints endpoints, Options options);
  ~LinearizableWorkload();
  LinearizableWorkload(const LinearizableWorkload&) = delete;
  LinearizableWorkload& operator=(const LinearizableWorkload&) = delete;

  void Start();
  // Issues no new operation; one in flight still records its answer when it comes.
  void Stop();

  // The client certificate and trust of the requests from now on (an operator's clients given
  // new ones during a CA rotation).
  void SetTls(std::shared_ptr<const net::TlsClientConfig> tls) { options_.tls = std::move(tls); }
  size_t in_flight() const { return in_flight_; }
  const History& history() const { return history_; }
  // The history's clock (steady_clock nanoseconds since Start()), for operations made outside
  // the workload and added with Record: a final read after recovery, say.
  int64_t Now() const;
  void Record(Operation op) { history_.ops.push_back(std::move(op)); }
  const Options& options() const { return options_; }

 private:
  struct Client {
    int id = 0;
    size_t endpoint = 0;
    uint64_t next_value = 0;
    bool busy = false;                                       // a request in flight
    std::map<std::string, std::optional<std::string>> last;  // what it last read or wrote
    std::unique_ptr<boost::asio::steady_timer> timer;
  };

  void Next(Client& client);
  void Issue(Client& client, const HostPort& target);
  void After(Client& client, std::chrono::milliseconds delay);
  // Records the end of ops[index] (its read value or CAS result already filled in when `status`
  // is ok) and schedules the client's next operation.
  void Complete(Client& client, size_t index, const Status& status);

  boost::asio::io_context& io_;
  Endpoints endpoints_;
  Options options_;
  std::mt19937 rng_;
  std::vector<Client> clients_;
  History history_;
  bool running_ = false;
  size_t in_flight_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace etcd_mesos::test
