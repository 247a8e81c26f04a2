#include "proxy/discovery.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "common/uri.h"

namespace etcd_mesos::proxy {
namespace {

using json = nlohmann::json;

ClientUrls Sorted(std::set<std::string> urls) { return ClientUrls(urls.begin(), urls.end()); }

std::string Url(std::string_view scheme, std::string_view host, uint64_t port) {
  return fmt::format("{}://{}:{}", scheme, host, port);
}

bool ValidPort(const json& j) {
  return j.is_number_unsigned() && j.get<uint64_t>() > 0 && j.get<uint64_t>() <= 65535;
}

std::string StringOr(const json& j, const char* key, std::string fallback = "") {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// Host and client port from a task ID "<name> <host> <peer> <client> <reseed>" (ours and the
// original's format).
struct TaskIdFields {
  std::string host;
  uint16_t client_port = 0;
};
std::optional<TaskIdFields> ParseTaskId(const std::string& id) {
  std::istringstream in(id);
  std::vector<std::string> fields;
  for (std::string f; in >> f;) fields.push_back(f);
  if (fields.size() != 5 && fields.size() != 6) return std::nullopt;  // 6: a restart in place
  try {
    size_t used = 0;
    unsigned long port = std::stoul(fields[3], &used);
    if (used != fields[3].size() || port == 0 || port > 65535) return std::nullopt;
    return TaskIdFields{fields[1], static_cast<uint16_t>(port)};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The client port a task announces in its DiscoveryInfo, 0 if none.
uint64_t DiscoveredClientPort(const json& task) {
  auto d = task.find("discovery");
  if (d == task.end() || !d->is_object()) return 0;
  auto ports = d->find("ports");
  if (ports == d->end() || !ports->is_object() || !ports->contains("ports")) return 0;
  for (const auto& p : (*ports)["ports"]) {
    if (!p.is_object() || !p.contains("number") || !ValidPort(p["number"])) continue;
    if (StringOr(p, "name") == "etcd-client" || StringOr(p, "protocol") == "client") {
      return p["number"].get<uint64_t>();
    }
  }
  return 0;
}

// The client URL of one master-state task, or nullopt when it says too little.
std::optional<std::string> TaskClientUrl(const json& task,
                                         const std::map<std::string, std::string>& agent_hosts,
                                         std::string_view scheme) {
  std::string id = StringOr(task, "id");
  auto fields = ParseTaskId(id);
  std::string host = fields ? fields->host : "";
  if (host.empty()) {
    auto agent = agent_hosts.find(StringOr(task, "slave_id"));
    if (agent != agent_hosts.end()) host = agent->second;
  }
  uint64_t port = DiscoveredClientPort(task);
  if (port == 0 && fields) port = fields->client_port;
  if (host.empty() || port == 0) return std::nullopt;
  return Url(scheme, host, port);
}

}  // namespace

Result<ClientUrls> ClientUrlsFromMembers(std::string_view members_json) {
  json j = json::parse(members_json, nullptr, false);
  if (j.is_discarded() || !j.is_array()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the scheduler's /members is not a JSON array of members");
  }
  std::set<std::string> urls;
  for (const auto& m : j) {
    if (!m.is_object() || !m.contains("host") || !m["host"].is_string() ||
        !m.contains("clientPort") || !ValidPort(m["clientPort"])) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "a member in /members has no string 'host' and port 'clientPort': {}",
                       m.dump());
    }
    // A learner refuses most client requests, and a member whose task is not (yet, or any
    // more) running has no etcd to answer: neither belongs behind the proxy.
    auto learner = m.find("learner");
    if (learner != m.end() && learner->is_boolean() && learner->get<bool>()) continue;
    if (StringOr(m, "taskState", "TASK_RUNNING") != "TASK_RUNNING") continue;
    // The scheduler's own URL says whether the member serves https; older schedulers send
    // none, and their members serve plain http.
    auto url = m.find("clientUrl");
    if (url == m.end()) {
      urls.insert(Url("http", m["host"].get<std::string>(), m["clientPort"].get<uint64_t>()));
      continue;
    }
    Result<HttpUrl> parsed = url->is_string() ? ParseHttpUrl(url->get<std::string>())
                                              : Error{ErrorCode::kInvalidArgument, "not text"};
    if (!parsed.ok() || parsed->path != "/") {
      return MakeError(ErrorCode::kInvalidArgument,
                       "a member in /members has a 'clientUrl' that is not http(s)://host:port: {}",
                       m.dump());
    }
    urls.insert(parsed->scheme + "://" + parsed->endpoint.ToString());
  }
  return Sorted(std::move(urls));
}

Result<ClientUrls> ClientUrlsFromMasterState(std::string_view state_json,
                                             std::string_view framework_name,
                                             std::string_view scheme) {
  json j = json::parse(state_json, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("frameworks") ||
      !j["frameworks"].is_array()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the master's answer is not Mesos master state (no 'frameworks' array)");
  }
  std::map<std::string, std::string> agent_hosts;
  if (j.contains("slaves") && j["slaves"].is_array()) {
    for (const auto& a : j["slaves"]) {
      if (a.is_object()) agent_hosts[StringOr(a, "id")] = StringOr(a, "hostname");
    }
  }
  std::vector<const json*> matches;
  std::vector<std::string> names;
  for (const auto& f : j["frameworks"]) {
    if (!f.is_object()) continue;
    std::string name = StringOr(f, "name");
    names.push_back(name);
    if (name == framework_name) matches.push_back(&f);
  }
  if (matches.empty()) {
    std::sort(names.begin(), names.end());
    return MakeError(ErrorCode::kNotFound,
                     "no framework named '{}' is registered with the master (registered: {})",
                     framework_name,
                     names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", ")));
  }
  if (matches.size() > 1) {
    std::vector<std::string> ids;
    for (const json* f : matches) ids.push_back(StringOr(*f, "id"));
    return MakeError(ErrorCode::kConflict,
                     "{} frameworks are named '{}' (ids {}): two clusters under one name; tear "
                     "one down or ask its scheduler (--scheduler)",
                     matches.size(), framework_name, fmt::join(ids, ", "));
  }
  std::set<std::string> urls;
  auto tasks = matches[0]->find("tasks");
  if (tasks != matches[0]->end() && tasks->is_array()) {
    for (const auto& t : *tasks) {
      if (!t.is_object() || StringOr(t, "state") != "TASK_RUNNING") continue;
      if (auto url = TaskClientUrl(t, agent_hosts, scheme)) urls.insert(*url);
    }
  }
  return Sorted(std::move(urls));
}

Status RequireTlsFor(const ClientUrls& urls, bool have_ca_bundle) {
  if (have_ca_bundle) return OkStatus();
  std::vector<std::string> https;
  for (const auto& u : urls) {
    if (u.starts_with("https://")) https.push_back(u);
  }
  if (https.empty()) return OkStatus();
  return MakeError(ErrorCode::kInvalidArgument,
                   "the members serve TLS ({}) but no CA bundle was given: run the proxy with "
                   "--cacert=<the cluster's CA bundle> and --cert=/--key=<a client certificate of "
                   "that CA> (it does not fall back to plain http)",
                   fmt::join(https, ", "));
}

std::string JoinUrls(const ClientUrls& urls) { return fmt::format("{}", fmt::join(urls, ",")); }

std::string DescribeChange(const ClientUrls& before, const ClientUrls& after) {
  std::vector<std::string> parts;
  for (const auto& u : after) {
    if (!std::binary_search(before.begin(), before.end(), u)) parts.push_back("+" + u);
  }
  for (const auto& u : before) {
    if (!std::binary_search(after.begin(), after.end(), u)) parts.push_back("-" + u);
  }
  return parts.empty() ? "no change" : fmt::format("{}", fmt::join(parts, " "));
}

std::chrono::milliseconds BackoffDelay(int attempt, std::chrono::milliseconds min,
                                       std::chrono::milliseconds max, double unit_random) {
  double base = static_cast<double>(min.count()) * std::pow(2.0, std::clamp(attempt, 0, 30));
  base = std::min(base, static_cast<double>(max.count()));
  double jitter = 0.5 + 0.5 * std::clamp(unit_random, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<int64_t>(base * jitter));
}

}  // namespace etcd_mesos::proxy
