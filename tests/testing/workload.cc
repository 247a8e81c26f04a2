#include "testing/workload.h"

#include <sys/wait.h>

#include <cerrno>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/encoding.h"
#include "etcd/client.h"

namespace etcd_mesos::test {

Workload::Workload(boost::asio::io_context& io, Endpoints endpoints, Options options)
    : io_(io), endpoints_(std::move(endpoints)), options_(std::move(options)), timer_(io) {}

Workload::~Workload() { *alive_ = false; }

std::string Workload::Key(const std::string& prefix, uint64_t seq) {
  return fmt::format("{}/{:010}", prefix, seq);
}

void Workload::Start() {
  if (running_) return;
  running_ = true;
  if (!in_flight_) WriteNext();
}

void Workload::Stop() {
  running_ = false;
  timer_.cancel();
}

void Workload::WriteNext() {
  if (!running_) return;
  std::vector<HostPort> endpoints = endpoints_();
  if (endpoints.empty()) {
    timer_.expires_after(std::chrono::milliseconds(200));
    timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
      if (!ec && *alive) WriteNext();
    });
    return;
  }
  const HostPort& target = endpoints[endpoint_ % endpoints.size()];
  etcd::Client::Options client_options;
  client_options.request_timeout = options_.request_timeout;
  client_options.tls = options_.tls;
  auto client = std::make_shared<etcd::Client>(io_, target, client_options);
  uint64_t seq = next_seq_++;
  in_flight_ = true;
  client->Put(Key(options_.prefix, seq), std::to_string(seq),
              [this, alive = alive_, client, seq](Result<etcd::PutResponse> r) {
                if (!*alive) return;
                in_flight_ = false;
                if (r.ok()) {
                  acknowledged_.insert(seq);
                } else {
                  ++failed_;
                  ++endpoint_;  // try the next member
                }
                if (!running_) return;
                timer_.expires_after(options_.pause);
                timer_.async_wait([this, alive](boost::system::error_code ec) {
                  if (!ec && *alive) WriteNext();
                });
              });
}

std::string WorkloadReport::ToString() const {
  std::string out = fmt::format(
      "{} acknowledged, {} read back, {} lost, {} lost to the reseed (the survivor never had "
      "them), {} unacknowledged but applied, {} corrupt",
      acknowledged, read, lost.size(), lost_to_reseed.size(), unacknowledged_present,
      corrupt.size());
  for (size_t i = 0; i < lost.size() && i < 10; ++i) out += fmt::format("; lost #{}", lost[i]);
  for (size_t i = 0; i < corrupt.size() && i < 10; ++i) out += "; corrupt " + corrupt[i];
  return out;
}

std::set<uint64_t> Sequences(const std::string& prefix, const SequenceRead& read) {
  std::set<uint64_t> out;
  for (const auto& [key, value] : read) {
    if (!key.starts_with(prefix + "/")) continue;
    std::string digits = key.substr(prefix.size() + 1);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    out.insert(std::stoull(digits));
  }
  return out;
}

WorkloadReport CheckWorkload(const std::set<uint64_t>& acknowledged, const std::string& prefix,
                             const SequenceRead& read,
                             const std::optional<std::set<uint64_t>>& survivor) {
  WorkloadReport report;
  report.acknowledged = acknowledged.size();
  report.read = read.size();
  std::set<uint64_t> present;
  for (const auto& [key, value] : read) {
    std::string digits = key.starts_with(prefix + "/") ? key.substr(prefix.size() + 1) : "";
    bool numeric = !digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos;
    if (!numeric || std::to_string(std::stoull(digits)) != value) {
      report.corrupt.push_back(key + "=" + value);
      continue;
    }
    present.insert(std::stoull(digits));
  }
  for (uint64_t seq : present) report.unacknowledged_present += acknowledged.count(seq) ? 0 : 1;
  for (uint64_t seq : acknowledged) {
    if (present.count(seq)) continue;
    if (survivor && !survivor->count(seq)) {
      report.lost_to_reseed.push_back(seq);
    } else {
      report.lost.push_back(seq);
    }
  }
  return report;
}

std::pair<int, std::string> RunShell(const std::string& command) {
  std::string out;
  // stderr joins stdout for the whole script (etcdctl prints some results on stderr).
  FILE* pipe = ::popen(("exec 2>&1\n" + command).c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buf[4096];
  while (true) {
    size_t n = fread(buf, 1, sizeof buf, pipe);
    out.append(buf, n);
    if (n > 0) continue;
    // A signal handled in this process (SIGCHLD of a child the scheduler or an agent reaps)
    // interrupts the read: go on, or the command dies of SIGPIPE on its next write (exit 141).
    if (ferror(pipe) && errno == EINTR) {
      clearerr(pipe);
      continue;
    }
    break;
  }
  int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

Result<SequenceRead> ReadSequences(const std::string& endpoints, const std::string& prefix,
                                   bool serializable) {
  auto [code, out] = RunShell(fmt::format(
      "ETCDCTL_API=3 etcdctl --dial-timeout=3s --command-timeout=20s --endpoints={} get "
      "--prefix '{}/' -w json{}",
      endpoints, prefix, serializable ? " --consistency=s" : ""));
  if (code != 0) {
    return Error{ErrorCode::kUnavailable, "etcdctl get --prefix failed: " + out};
  }
  auto json = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return Error{ErrorCode::kInvalidArgument, "etcdctl printed no JSON: " + out};
  }
  SequenceRead read;
  for (const auto& kv : json.value("kvs", nlohmann::json::array())) {
    auto key = Base64Decode(kv.value("key", ""));
    auto value = Base64Decode(kv.value("value", ""));
    if (!key.ok() || !value.ok()) {
      return Error{ErrorCode::kInvalidArgument, "etcdctl printed a non-base64 key: " + kv.dump()};
    }
    read.emplace_back(*key, *value);
  }
  return read;
}

}  // namespace etcd_mesos::test
