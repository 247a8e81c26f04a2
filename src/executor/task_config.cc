#include "executor/task_config.h"

#include <charconv>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/secret.h"
#include "common/uri.h"

namespace etcd_mesos::executor {
namespace {

using nlohmann::json;

Error FieldError(std::string_view field, std::string_view problem) {
  return MakeError(ErrorCode::kInvalidArgument, "task data: field \"{}\": {}", field, problem);
}

// HostPort brackets an IPv6 literal, as a URL needs.
std::string Url(const std::string& address, uint16_t port, bool tls = false) {
  return (tls ? "https://" : "http://") + HostPort{address, port}.ToString();
}

Status ValidateTls(const TaskConfig::Tls& tls) {
  if (tls.ca.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return FieldError("tls.ca", "must hold PEM certificates");
  }
  if (!tls.cert_url.starts_with("http://") && !tls.cert_url.starts_with("https://")) {
    return FieldError("tls.cert_url", "must be an http:// or https:// URL");
  }
  if (tls.cert_token.empty() || tls.cert_token.find_first_of(" \t\r\n") != std::string::npos) {
    return FieldError("tls.cert_token", "must be a non-empty token without whitespace");
  }
  return OkStatus();
}

Status ValidateInitialCluster(const TaskConfig& c) {
  constexpr std::string_view kField = "initial_cluster";
  if (c.initial_cluster.empty()) return FieldError(kField, "must not be empty");
  std::set<std::string> names;
  bool found_self = false;
  size_t start = 0;
  while (start <= c.initial_cluster.size()) {
    size_t end = c.initial_cluster.find(',', start);
    if (end == std::string::npos) end = c.initial_cluster.size();
    std::string entry = c.initial_cluster.substr(start, end - start);
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == entry.size()) {
      return FieldError(kField, fmt::format("entry \"{}\" is not name=http://ip:port", entry));
    }
    std::string name = entry.substr(0, eq);
    std::string url = entry.substr(eq + 1);
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
      return FieldError(kField, fmt::format("entry \"{}\": the peer URL must start with http:// "
                                            "or https://",
                                            entry));
    }
    // etcd allows several peer URLs per name (repeated entries); the name itself must be sane.
    names.insert(name);
    if (name == c.name) {
      if (url != c.PeerUrl()) {
        return FieldError(kField, fmt::format("this member's entry \"{}\" must use its own peer "
                                              "URL {}",
                                              entry, c.PeerUrl()));
      }
      found_self = true;
    }
    start = end + 1;
    if (end == c.initial_cluster.size()) break;
  }
  if (!found_self) {
    return FieldError(kField, fmt::format("must include this member ({}={})", c.name, c.PeerUrl()));
  }
  return OkStatus();
}

// Reads an integer field within [lo, hi]; absent fields keep their default.
template <typename T>
Status ReadInt(const json& doc, std::string_view field, int64_t lo, int64_t hi, bool required,
               T& out) {
  auto it = doc.find(field);
  if (it == doc.end()) {
    if (required) return FieldError(field, "is required");
    return OkStatus();
  }
  if (!it->is_number_integer()) {
    return FieldError(field, fmt::format("must be an integer in {}..{}", lo, hi));
  }
  int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                  ? INT64_MAX
                  : it->get<int64_t>();
  if (v < lo || v > hi)
    return FieldError(field, fmt::format("must be an integer in {}..{}", lo, hi));
  out = static_cast<T>(v);
  return OkStatus();
}

Status ReadString(const json& doc, std::string_view field, bool required, std::string& out) {
  auto it = doc.find(field);
  if (it == doc.end()) {
    if (required) return FieldError(field, "is required");
    return OkStatus();
  }
  if (!it->is_string()) return FieldError(field, "must be a string");
  out = it->get<std::string>();
  return OkStatus();
}

Result<uint64_t> ReadU64String(const json& doc, std::string_view field) {
  auto it = doc.find(field);
  if (it == doc.end()) {
    return MakeError(ErrorCode::kInvalidArgument, "member facts: field \"{}\" is missing", field);
  }
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (!it->is_string()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "member facts: field \"{}\" must be a decimal string", field);
  }
  const std::string& s = it->get_ref<const std::string&>();
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "member facts: field \"{}\": \"{}\" is not a decimal 64-bit integer", field,
                     s);
  }
  return v;
}

}  // namespace

std::string_view InitialClusterStateName(InitialClusterState state) {
  return state == InitialClusterState::kNew ? "new" : "existing";
}

std::string TaskConfig::ClientUrl() const { return Url(address, client_port, tls.has_value()); }
std::string TaskConfig::PeerUrl() const { return Url(address, peer_port, tls.has_value()); }
std::string TaskConfig::ReseedUrl() const { return Url(address, reseed_port, tls.has_value()); }

bool IsOwnedEtcdFlag(std::string_view flag) {
  std::string_view name = flag.substr(0, flag.find('='));
  while (name.rfind("-", 0) == 0) name.remove_prefix(1);
  static constexpr std::string_view kOwned[] = {
      "name",     "data-dir",        "wal-dir",          "cert-file",
      "key-file", "trusted-ca-file", "client-cert-auth", "auto-tls"};
  // The peer port's TLS is the executor's too (peer-cert-file, peer-client-cert-auth, ...).
  static constexpr std::string_view kOwnedPrefixes[] = {"listen-", "advertise-", "initial-",
                                                        "force-new-cluster", "peer-"};
  for (auto owned : kOwned) {
    if (name == owned) return true;
  }
  for (auto prefix : kOwnedPrefixes) {
    if (name.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

Status ValidateTaskConfig(const TaskConfig& c) {
  if (c.name.empty()) return FieldError("name", "must not be empty");
  for (char ch : c.name) {
    if (ch == ',' || ch == '=' || ch <= ' ') {
      return FieldError("name", fmt::format("\"{}\" must not contain ',', '=' or spaces", c.name));
    }
  }
  if (!IsIpAddress(c.address)) {
    return FieldError("address", fmt::format("\"{}\" is not an IP address (etcd 3.4 binds IP "
                                             "addresses only)",
                                             c.address));
  }
  if (c.address == "0.0.0.0" || c.address == "::") {
    return FieldError("address", "must be the agent's own address, not a wildcard");
  }
  for (auto [field, port] : {std::pair<std::string_view, uint16_t>{"peer_port", c.peer_port},
                             {"client_port", c.client_port},
                             {"reseed_port", c.reseed_port}}) {
    if (port == 0) return FieldError(field, "must be an integer in 1..65535");
  }
  if (c.peer_port == c.client_port || c.peer_port == c.reseed_port ||
      c.client_port == c.reseed_port) {
    return FieldError("peer_port", fmt::format("peer_port {}, client_port {} and reseed_port {} "
                                               "must be distinct",
                                               c.peer_port, c.client_port, c.reseed_port));
  }
  // Before the initial cluster: TLS decides the scheme of this member's own URL.
  if (c.tls) {
    if (auto s = ValidateTls(*c.tls); !s.ok()) return s;
  }
  if (auto s = ValidateInitialCluster(c); !s.ok()) return s;
  if (c.cluster_token.empty()) return FieldError("cluster_token", "must not be empty");
  if (c.reseed_token.empty()) return FieldError("reseed_token", "must not be empty");
  for (const auto& flag : c.extra_flags) {
    if (flag.rfind("--", 0) != 0 || flag.size() < 3) {
      return FieldError("extra_flags", fmt::format("\"{}\" must start with --", flag));
    }
    if (IsOwnedEtcdFlag(flag)) {
      return FieldError(
          "extra_flags",
          fmt::format("\"{}\" is set by the executor and cannot be overridden", flag));
    }
  }
  if (c.etcd_binary && c.etcd_binary->empty()) {
    return FieldError("etcd_binary", "must not be empty when present");
  }
  if (c.restore_snapshot) {
    const std::string& f = *c.restore_snapshot;
    if (f.empty() || f.find('/') != std::string::npos || f == "." || f == ".." ||
        f.find_first_of(" \t\n") != std::string::npos) {
      return FieldError("restore_snapshot", "must be a plain file name in the sandbox");
    }
    if (c.initial_cluster_state != InitialClusterState::kNew ||
        c.initial_cluster != c.name + "=" + c.PeerUrl()) {
      return FieldError("restore_snapshot",
                        "a restore starts a new one-member cluster: initial_cluster_state must "
                        "be \"new\" and initial_cluster this member alone");
    }
    if (c.restore_sha256.size() != 64 ||
        c.restore_sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return FieldError("restore_sha256", "must be 64 lower-case hex digits with restore_snapshot");
    }
  }
  if (c.restart_max < 0 || c.restart_max > 1000) {
    return FieldError("restart_max", "must be an integer in 0..1000");
  }
  if (c.restart_window.count() < 1 || c.restart_window.count() > 86400) {
    return FieldError("restart_window_s", "must be an integer in 1..86400");
  }
  if (c.health_interval.count() < 10 || c.health_interval.count() > 600'000) {
    return FieldError("health_interval_ms", "must be an integer in 10..600000");
  }
  return OkStatus();
}

std::string EncodeTaskConfig(const TaskConfig& c) {
  json doc = {
      {"name", c.name},
      {"address", c.address},
      {"peer_port", c.peer_port},
      {"client_port", c.client_port},
      {"reseed_port", c.reseed_port},
      {"initial_cluster", c.initial_cluster},
      {"initial_cluster_state", InitialClusterStateName(c.initial_cluster_state)},
      {"cluster_token", c.cluster_token},
      {"reseed_token", c.reseed_token},
      {"extra_flags", c.extra_flags},
      {"restart_max", c.restart_max},
      {"restart_window_s", c.restart_window.count()},
      {"health_interval_ms", c.health_interval.count()},
  };
  if (c.etcd_binary) doc["etcd_binary"] = *c.etcd_binary;
  if (c.restore_snapshot) {
    doc["restore_snapshot"] = *c.restore_snapshot;
    doc["restore_sha256"] = c.restore_sha256;
  }
  if (c.tls) {
    doc["tls"] = {
        {"ca", c.tls->ca}, {"cert_url", c.tls->cert_url}, {"cert_token", c.tls->cert_token}};
  }
  return doc.dump();
}

Result<TaskConfig> ParseTaskConfig(std::string_view text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return MakeError(ErrorCode::kInvalidArgument, "task data: not valid JSON ({} bytes)",
                     text.size());
  }
  if (!doc.is_object()) return MakeError(ErrorCode::kInvalidArgument, "task data: not an object");
  static const std::set<std::string, std::less<>> kKnown = {"name",
                                                            "address",
                                                            "peer_port",
                                                            "client_port",
                                                            "reseed_port",
                                                            "initial_cluster",
                                                            "initial_cluster_state",
                                                            "cluster_token",
                                                            "reseed_token",
                                                            "extra_flags",
                                                            "etcd_binary",
                                                            "restart_max",
                                                            "restart_window_s",
                                                            "health_interval_ms",
                                                            "restore_snapshot",
                                                            "restore_sha256",
                                                            "tls"};
  for (const auto& [key, value] : doc.items()) {
    if (kKnown.count(key) == 0) return FieldError(key, "is not a known field");
  }
  TaskConfig c;
  Status s;
  if (s = ReadString(doc, "name", true, c.name); !s.ok()) return s.error();
  if (s = ReadString(doc, "address", true, c.address); !s.ok()) return s.error();
  if (s = ReadInt(doc, "peer_port", 1, 65535, true, c.peer_port); !s.ok()) return s.error();
  if (s = ReadInt(doc, "client_port", 1, 65535, true, c.client_port); !s.ok()) return s.error();
  if (s = ReadInt(doc, "reseed_port", 1, 65535, true, c.reseed_port); !s.ok()) return s.error();
  if (s = ReadString(doc, "initial_cluster", true, c.initial_cluster); !s.ok()) return s.error();
  std::string state;
  if (s = ReadString(doc, "initial_cluster_state", true, state); !s.ok()) return s.error();
  if (state == "new") {
    c.initial_cluster_state = InitialClusterState::kNew;
  } else if (state == "existing") {
    c.initial_cluster_state = InitialClusterState::kExisting;
  } else {
    return FieldError("initial_cluster_state",
                      fmt::format("\"{}\" must be \"new\" or \"existing\"", state));
  }
  if (s = ReadString(doc, "cluster_token", true, c.cluster_token); !s.ok()) return s.error();
  if (s = ReadString(doc, "reseed_token", true, c.reseed_token); !s.ok()) return s.error();
  if (auto it = doc.find("extra_flags"); it != doc.end()) {
    if (!it->is_array()) return FieldError("extra_flags", "must be an array of strings");
    for (const auto& f : *it) {
      if (!f.is_string()) return FieldError("extra_flags", "must be an array of strings");
      c.extra_flags.push_back(f.get<std::string>());
    }
  }
  if (doc.contains("etcd_binary")) {
    std::string binary;
    if (s = ReadString(doc, "etcd_binary", false, binary); !s.ok()) return s.error();
    c.etcd_binary = binary;
  }
  if (doc.contains("restore_snapshot")) {
    std::string file;
    if (s = ReadString(doc, "restore_snapshot", false, file); !s.ok()) return s.error();
    c.restore_snapshot = file;
    if (s = ReadString(doc, "restore_sha256", true, c.restore_sha256); !s.ok()) return s.error();
  }
  if (s = ReadInt(doc, "restart_max", 0, 1000, false, c.restart_max); !s.ok()) return s.error();
  int64_t window = c.restart_window.count();
  if (s = ReadInt(doc, "restart_window_s", 1, 86400, false, window); !s.ok()) return s.error();
  c.restart_window = std::chrono::seconds(window);
  int64_t interval = c.health_interval.count();
  if (s = ReadInt(doc, "health_interval_ms", 10, 600'000, false, interval); !s.ok()) {
    return s.error();
  }
  c.health_interval = std::chrono::milliseconds(interval);
  if (auto it = doc.find("tls"); it != doc.end()) {
    if (!it->is_object()) return FieldError("tls", "must be an object");
    for (const auto& [key, value] : it->items()) {
      if (key != "ca" && key != "cert_url" && key != "cert_token") {
        return FieldError("tls." + key, "is not a known field");
      }
    }
    TaskConfig::Tls tls;
    for (auto [key, into] : {std::pair{"ca", &tls.ca}, std::pair{"cert_url", &tls.cert_url},
                             std::pair{"cert_token", &tls.cert_token}}) {
      auto field = it->find(key);
      if (field == it->end()) return FieldError(std::string("tls.") + key, "is required");
      if (!field->is_string()) return FieldError(std::string("tls.") + key, "must be a string");
      *into = field->get<std::string>();
    }
    c.tls = std::move(tls);
  }
  if (s = ValidateTaskConfig(c); !s.ok()) return s.error();
  return c;
}

std::string EncodeMemberFacts(const MemberFacts& f) {
  json doc = {
      {"name", f.name},
      {"member_id", std::to_string(f.member_id)},
      {"cluster_id", std::to_string(f.cluster_id)},
      {"raft_index", std::to_string(f.raft_index)},
      {"raft_term", std::to_string(f.raft_term)},
      {"leader", std::to_string(f.leader)},
      {"is_learner", f.is_learner},
      {"healthy", f.healthy},
      {"serving", f.serving},
      {"client_url", f.client_url},
      {"peer_url", f.peer_url},
      {"reseed_url", f.reseed_url},
  };
  return doc.dump();
}

Result<MemberFacts> ParseMemberFacts(std::string_view text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "member facts: not a JSON object");
  }
  MemberFacts f;
  struct U64Field {
    std::string_view name;
    uint64_t* out;
  };
  for (auto [name, out] : {U64Field{"member_id", &f.member_id},
                           {"cluster_id", &f.cluster_id},
                           {"raft_index", &f.raft_index},
                           {"raft_term", &f.raft_term},
                           {"leader", &f.leader}}) {
    auto v = ReadU64String(doc, name);
    if (!v.ok()) return v.error();
    *out = *v;
  }
  for (auto [name, out] : {std::pair<std::string_view, bool*>{"is_learner", &f.is_learner},
                           {"healthy", &f.healthy},
                           {"serving", &f.serving}}) {
    auto it = doc.find(name);
    if (it == doc.end() || !it->is_boolean()) {
      return MakeError(ErrorCode::kInvalidArgument, "member facts: field \"{}\" must be a boolean",
                       name);
    }
    *out = it->get<bool>();
  }
  for (auto [name, out] : {std::pair<std::string_view, std::string*>{"name", &f.name},
                           {"client_url", &f.client_url},
                           {"peer_url", &f.peer_url},
                           {"reseed_url", &f.reseed_url}}) {
    auto it = doc.find(name);
    if (it == doc.end() || !it->is_string()) {
      return MakeError(ErrorCode::kInvalidArgument, "member facts: field \"{}\" must be a string",
                       name);
    }
    *out = it->get<std::string>();
  }
  return f;
}

}  // namespace etcd_mesos::executor
