// Workload and its checker: what the fault suite uses to prove what happened to client data.
//
// Workload writes sequenced keys (<prefix>/0000000001 = "1", ...) one at a time through etcd's
// v3 API to whichever member of the current endpoint list answers, and records every write etcd
// acknowledged. A write that failed or timed out is "indeterminate": it may or may not have been
// applied, so it is neither required nor forbidden afterwards. CheckWorkload (pure) compares the
// acknowledged writes with what a read of the prefix returns after recovery; with a survivor's
// view (a serializable read of the reseed's survivor before the reseed), it separates writes a
// reseed was entitled to lose (the survivor never had them) from writes that were lost anyway.
//
// Threading: Workload runs on the io_context it is given and is not thread-safe; drive that
// io_context from one thread. CheckWorkload and ReadSequences are free functions.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/uri.h"
#include "net/http.h"

namespace etcd_mesos::test {

class Workload {
 public:
  using Endpoints = std::function<std::vector<HostPort>()>;
  struct Options {
    std::string prefix = "/workload";
    std::chrono::milliseconds request_timeout{2000};
    std::chrono::milliseconds pause{10};              // between two writes, to spare the CPU
    std::shared_ptr<const net::TlsClientConfig> tls;  // set: the members serve https
  };

  Workload(boost::asio::io_context& io, Endpoints endpoints, Options options);
  ~Workload();
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  void Start();
  // Stops issuing writes; a write in flight still records its answer.
  void Stop();

  // The client certificate and trust of the requests from now on (an operator's clients given
  // new ones during a CA rotation).
  void SetTls(std::shared_ptr<const net::TlsClientConfig> tls) { options_.tls = std::move(tls); }
  const std::set<uint64_t>& acknowledged() const { return acknowledged_; }
  uint64_t attempted() const { return next_seq_ - 1; }
  uint64_t failed() const { return failed_; }
  const std::string& prefix() const { return options_.prefix; }
  static std::string Key(const std::string& prefix, uint64_t seq);

 private:
  void WriteNext();

  boost::asio::io_context& io_;
  Endpoints endpoints_;
  Options options_;
  boost::asio::steady_timer timer_;
  bool running_ = false;
  bool in_flight_ = false;
  uint64_t next_seq_ = 1;
  size_t endpoint_ = 0;
  uint64_t failed_ = 0;
  std::set<uint64_t> acknowledged_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

struct WorkloadReport {
  size_t acknowledged = 0;
  size_t read = 0;
  // Acknowledged, not readable, and (when a survivor's view is given) held by the survivor, or
  // (without one) at all: these are data loss.
  std::vector<uint64_t> lost;
  // Acknowledged and not readable, but the survivor never had them: what a reseed costs.
  std::vector<uint64_t> lost_to_reseed;
  // Read back though never acknowledged (indeterminate writes that were applied): allowed.
  size_t unacknowledged_present = 0;
  // Keys that are not the workload's sequence numbers, or values that do not match their key.
  std::vector<std::string> corrupt;
  bool ok() const { return lost.empty() && corrupt.empty(); }
  std::string ToString() const;
};

// What a read of the workload's prefix returned: sequence number -> value.
using SequenceRead = std::vector<std::pair<std::string, std::string>>;  // key, value

WorkloadReport CheckWorkload(const std::set<uint64_t>& acknowledged, const std::string& prefix,
                             const SequenceRead& read,
                             const std::optional<std::set<uint64_t>>& survivor = std::nullopt);

// Reads every key under `prefix` with the real etcdctl (linearizable unless `serializable`),
// from `endpoints` ("http://ip:port,..."). Errors carry etcdctl's output.
Result<SequenceRead> ReadSequences(const std::string& endpoints, const std::string& prefix,
                                   bool serializable = false);
// The sequence numbers of a read (entries that are not the workload's are skipped).
std::set<uint64_t> Sequences(const std::string& prefix, const SequenceRead& read);

// Runs `command` with /bin/sh, stdout and stderr together; returns the exit code (-1 if it did
// not exit normally) and the output.
std::pair<int, std::string> RunShell(const std::string& command);

}  // namespace etcd_mesos::test
