#include "scheduler/core/types.h"

#include <algorithm>
#include <charconv>
#include <vector>

#include <fmt/format.h>

namespace etcd_mesos::scheduler {

std::string Member::PeerUrl() const {
  return fmt::format("{}://{}:{}", tls ? "https" : "http", host, peer_port);
}
std::string Member::ClientUrl() const {
  return fmt::format("{}://{}:{}", tls ? "https" : "http", host, client_port);
}
std::string Member::ReseedUrl() const {
  return fmt::format("{}://{}:{}", tls ? "https" : "http", host, reseed_port);
}

std::string FormatTaskId(const Member& m) {
  std::string id =
      fmt::format("{} {} {} {} {}", m.name, m.host, m.peer_port, m.client_port, m.reseed_port);
  if (m.restarts > 0) id += fmt::format(" r{}", m.restarts);
  return id;
}

std::string VolumeIdOf(const std::string& framework_name, const Member& m) {
  return fmt::format("{}.g{}.{}", framework_name, m.generation, m.name);
}

Result<Member> ParseTaskId(std::string_view task_id) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < task_id.size()) {
    while (i < task_id.size() && task_id[i] == ' ') ++i;
    size_t start = i;
    while (i < task_id.size() && task_id[i] != ' ') ++i;
    if (i > start) fields.push_back(task_id.substr(start, i - start));
  }
  if (fields.size() != 5 && fields.size() != 6) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "task id '{}' is not '<name> <host> <peer> <client> <reseed>'", task_id);
  }
  Member m;
  if (fields.size() == 6) {
    std::string_view r = fields[5];
    unsigned n = 0;
    auto [p, ec] =
        std::from_chars(r.data() + std::min<size_t>(1, r.size()), r.data() + r.size(), n);
    if (r.size() < 2 || r[0] != 'r' || ec != std::errc() || p != r.data() + r.size() || n == 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "task id '{}': '{}' is not a restart count r<N>", task_id, r);
    }
    m.restarts = n;
  }
  m.name = std::string(fields[0]);
  m.host = std::string(fields[1]);
  uint16_t* ports[] = {&m.peer_port, &m.client_port, &m.reseed_port};
  for (int k = 0; k < 3; ++k) {
    std::string_view f = fields[2 + k];
    unsigned v = 0;
    auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
    if (ec != std::errc() || p != f.data() + f.size() || v == 0 || v > 65535) {
      return MakeError(ErrorCode::kInvalidArgument, "task id '{}': port '{}' is not 1..65535",
                       task_id, f);
    }
    *ports[k] = static_cast<uint16_t>(v);
  }
  m.task_id = std::string(task_id);
  return m;
}

std::string_view MaintenanceOpName(MaintenanceOp op) {
  switch (op) {
    case MaintenanceOp::kCompact:
      return "compact";
    case MaintenanceOp::kDefragment:
      return "defragment";
    case MaintenanceOp::kDisarmNoSpace:
      return "disarm NOSPACE";
  }
  return "?";
}

std::string_view CaPhaseName(CaPhase phase) {
  switch (phase) {
    case CaPhase::kNone:
      return "none";
    case CaPhase::kTrustBoth:
      return "trust-both";
    case CaPhase::kNewIssuer:
      return "new-issuer";
    case CaPhase::kDropOld:
      return "drop-old";
  }
  return "?";
}

}  // namespace etcd_mesos::scheduler
