#include "scheduler/shell/state_codec.h"

#include <charconv>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace etcd_mesos::scheduler::shell {

namespace {

using json = nlohmann::json;

Error Corrupt(std::string_view field, std::string_view what) {
  return MakeError(ErrorCode::kDataLoss, "state record: field \"{}\": {}", field, what);
}

// Field readers: each names the field in its error. `path` is the field's full name
// ("members[2].peer_port") so that an operator can find it in the record.
Result<const json*> Field(const json& object, std::string_view key, std::string_view path,
                          bool required) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    if (required) return Corrupt(path, "missing");
    return static_cast<const json*>(nullptr);
  }
  return &*it;
}

Result<std::string> String(const json& object, std::string_view key, std::string_view path,
                           bool required = true) {
  auto f = Field(object, key, path, required);
  if (!f.ok()) return f.error();
  if (*f == nullptr) return std::string();
  if (!(*f)->is_string()) return Corrupt(path, "must be a string");
  return (*f)->get<std::string>();
}

Result<uint64_t> Unsigned(const json& object, std::string_view key, std::string_view path,
                          uint64_t max = std::numeric_limits<uint64_t>::max(),
                          bool required = true) {
  auto f = Field(object, key, path, required);
  if (!f.ok()) return f.error();
  if (*f == nullptr) return uint64_t{0};
  if (!(*f)->is_number_unsigned() || (*f)->get<uint64_t>() > max) {
    return Corrupt(path, fmt::format("must be an integer in 0..{}", max));
  }
  return (*f)->get<uint64_t>();
}

Result<bool> Bool(const json& object, std::string_view key, std::string_view path,
                  bool required = true) {
  auto f = Field(object, key, path, required);
  if (!f.ok()) return f.error();
  if (*f == nullptr) return false;
  if (!(*f)->is_boolean()) return Corrupt(path, "must be true or false");
  return (*f)->get<bool>();
}

// A 64-bit id as a decimal string ("0" when unknown).
Result<uint64_t> DecimalString(const json& object, std::string_view key, std::string_view path) {
  auto s = String(object, key, path);
  if (!s.ok()) return s.error();
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (s->empty() || ec != std::errc() || p != s->data() + s->size()) {
    return Corrupt(path, "must be a decimal string of a 64-bit unsigned integer");
  }
  return v;
}

Result<uint16_t> Port(const json& object, std::string_view key, std::string_view path) {
  auto f = Field(object, key, path, true);
  if (!f.ok()) return f.error();
  if (!(*f)->is_number_unsigned() || (*f)->get<uint64_t>() == 0 || (*f)->get<uint64_t>() > 65535) {
    return Corrupt(path, "must be an integer in 1..65535");
  }
  return static_cast<uint16_t>((*f)->get<uint64_t>());
}

// The reseed under way, if any: survivors by name (each must be a member of the record), and
// how many of them were asked.
Result<std::optional<ReseedRun>> DecodeReseed(const json& j,
                                              const std::map<std::string, Member>& members) {
  auto f = Field(j, "reseed", "reseed", false);
  if (!f.ok()) return f.error();
  if (*f == nullptr) return std::optional<ReseedRun>();
  const json& r = **f;
  if (!r.is_object()) return Corrupt("reseed", "must be an object");
  ReseedRun run;
  auto candidates = Field(r, "candidates", "reseed.candidates", true);
  if (!candidates.ok()) return candidates.error();
  if (!(*candidates)->is_array() || (*candidates)->empty()) {
    return Corrupt("reseed.candidates", "must be a non-empty array of member names");
  }
  for (size_t i = 0; i < (*candidates)->size(); ++i) {
    const json& c = (**candidates)[i];
    std::string at = fmt::format("reseed.candidates[{}]", i);
    if (!c.is_string()) return Corrupt(at, "must be a string");
    if (!members.count(c.get<std::string>())) {
      return Corrupt(at, fmt::format("'{}' is not a member of the record", c.get<std::string>()));
    }
    run.candidates.push_back(c.get<std::string>());
  }
  auto next = Unsigned(r, "next", "reseed.next", run.candidates.size());
  if (!next.ok()) return next.error();
  run.next = *next;
  auto manual = Bool(r, "manual", "reseed.manual", /*required=*/false);
  if (!manual.ok()) return manual.error();
  run.manual = *manual;
  for (auto [key, field] : {std::pair{"asked_revision", &ReseedRun::asked_revision},
                            std::pair{"highest_revision", &ReseedRun::highest_revision}}) {
    auto v = Unsigned(r, key, fmt::format("reseed.{}", key), std::numeric_limits<uint64_t>::max(),
                      /*required=*/false);
    if (!v.ok()) return v.error();
    run.*field = *v;
  }
  return std::optional<ReseedRun>(std::move(run));
}

json EncodeMember(const Member& m) {
  json j{
      {"name", m.name},
      {"task_id", m.task_id},
      {"agent_id", m.agent_id},
      {"host", m.host},
      {"peer_port", m.peer_port},
      {"client_port", m.client_port},
      {"reseed_port", m.reseed_port},
      {"member_id", std::to_string(m.member_id)},
      {"generation", m.generation},
      {"learner", m.learner},
      {"initial", m.initial},
      {"task_state", mesos::TaskState_Name(m.task_state)},
      {"launch_config", m.launch_config},
      {"etcd_version", m.etcd_version},
  };
  if (m.tls) j["tls"] = true;
  if (!m.hostname.empty()) j["hostname"] = m.hostname;
  if (m.cert_not_after != 0) j["cert_not_after"] = m.cert_not_after;
  if (!m.volume.empty()) j["volume"] = m.volume;
  return j;
}

Result<Member> DecodeMember(const json& j, size_t index) {
  std::string at = fmt::format("members[{}]", index);
  auto path = [&](std::string_view field) { return fmt::format("{}.{}", at, field); };
  if (!j.is_object()) return Corrupt(at, "must be an object");
  Member m;
  auto name = String(j, "name", path("name"));
  if (!name.ok()) return name.error();
  if (name->empty()) return Corrupt(path("name"), "must not be empty");
  m.name = *name;
  auto task_id = String(j, "task_id", path("task_id"));
  if (!task_id.ok()) return task_id.error();
  m.task_id = *task_id;
  auto agent_id = String(j, "agent_id", path("agent_id"));
  if (!agent_id.ok()) return agent_id.error();
  m.agent_id = *agent_id;
  auto host = String(j, "host", path("host"));
  if (!host.ok()) return host.error();
  if (host->empty()) return Corrupt(path("host"), "must not be empty");
  m.host = *host;
  uint16_t* ports[] = {&m.peer_port, &m.client_port, &m.reseed_port};
  const char* port_keys[] = {"peer_port", "client_port", "reseed_port"};
  for (int k = 0; k < 3; ++k) {
    auto p = Port(j, port_keys[k], path(port_keys[k]));
    if (!p.ok()) return p.error();
    *ports[k] = *p;
  }
  auto member_id = DecimalString(j, "member_id", path("member_id"));
  if (!member_id.ok()) return member_id.error();
  m.member_id = *member_id;
  auto generation = Unsigned(j, "generation", path("generation"));
  if (!generation.ok()) return generation.error();
  m.generation = *generation;
  auto learner = Bool(j, "learner", path("learner"));
  if (!learner.ok()) return learner.error();
  m.learner = *learner;
  auto initial = Bool(j, "initial", path("initial"), /*required=*/false);
  if (!initial.ok()) return initial.error();
  m.initial = *initial;
  // Absent in records written before rollouts: adopted as the current configuration at start.
  auto launch = String(j, "launch_config", path("launch_config"), /*required=*/false);
  if (!launch.ok()) return launch.error();
  m.launch_config = *launch;
  auto version = String(j, "etcd_version", path("etcd_version"), /*required=*/false);
  if (!version.ok()) return version.error();
  m.etcd_version = *version;
  // Absent in records written before TLS: plain members.
  auto tls = Bool(j, "tls", path("tls"), /*required=*/false);
  if (!tls.ok()) return tls.error();
  m.tls = *tls;
  auto hostname = String(j, "hostname", path("hostname"), /*required=*/false);
  if (!hostname.ok()) return hostname.error();
  m.hostname = *hostname;
  if (j.contains("cert_not_after")) {
    const json& v = j["cert_not_after"];
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) {
      return Corrupt(path("cert_not_after"), "must be a positive whole number of Unix seconds");
    }
    m.cert_not_after = v.get<int64_t>();
  }
  // Absent for members whose data is in the sandbox (and in records before durable members).
  auto volume = String(j, "volume", path("volume"), /*required=*/false);
  if (!volume.ok()) return volume.error();
  m.volume = *volume;
  auto state = String(j, "task_state", path("task_state"));
  if (!state.ok()) return state.error();
  if (!mesos::TaskState_Parse(*state, &m.task_state)) {
    return Corrupt(path("task_state"), fmt::format("'{}' is not a Mesos task state", *state));
  }
  // The task id carries the member's identity (the on-call guide reads it); a record whose id
  // disagrees with its fields would make us kill or reconcile the wrong task.
  auto parsed = ParseTaskId(m.task_id);
  if (!parsed.ok()) return Corrupt(path("task_id"), parsed.error().message);
  m.restarts = parsed->restarts;  // the task id is its record
  if (parsed->name != m.name || parsed->host != m.host || parsed->peer_port != m.peer_port ||
      parsed->client_port != m.client_port || parsed->reseed_port != m.reseed_port) {
    return Corrupt(path("task_id"),
                   fmt::format("'{}' disagrees with the member's name, host or ports", m.task_id));
  }
  return m;
}

const std::pair<const char*, uint64_t Counters::*> kCounterFields[] = {
    {"launched_servers", &Counters::launched_servers},
    {"failed_servers", &Counters::failed_servers},
    {"lost_servers", &Counters::lost_servers},
    {"cluster_livelocks", &Counters::cluster_livelocks},
    {"cluster_reseeds", &Counters::cluster_reseeds},
    {"reseed_attempts", &Counters::reseed_attempts},
    {"rollouts_done", &Counters::rollouts_done},
    {"rollouts_stopped", &Counters::rollouts_stopped},
    {"members_rolled", &Counters::members_rolled},
    {"members_added", &Counters::members_added},
    {"members_promoted", &Counters::members_promoted},
    {"members_removed", &Counters::members_removed},
};

const std::pair<const char*, uint64_t Revisions::*> kRevisionFields[] = {
    {"highest_seen", &Revisions::highest_seen},
    {"last_reseed_survivor", &Revisions::last_reseed_survivor},
    {"last_reseed_highest", &Revisions::last_reseed_highest},
};

// An object of optional unsigned fields (counters, revisions) into `out`; an absent object
// (allowed unless `required`) leaves `out` as it is.
template <typename T, size_t N>
Status DecodeUnsignedFields(const json& j, const char* key, bool required,
                            const std::pair<const char*, uint64_t T::*> (&fields)[N], T& out) {
  auto object = Field(j, key, key, required);
  if (!object.ok()) return object.error();
  if (*object == nullptr) return OkStatus();
  if (!(*object)->is_object()) return Corrupt(key, "must be an object");
  for (const auto& [name, field] : fields) {
    auto v = Unsigned(**object, name, fmt::format("{}.{}", key, name),
                      std::numeric_limits<uint64_t>::max(), /*required=*/false);
    if (!v.ok()) return v.error();
    out.*field = *v;
  }
  return OkStatus();
}

template <typename T, size_t N>
json EncodeUnsignedFields(const std::pair<const char*, uint64_t T::*> (&fields)[N], const T& in) {
  json out = json::object();
  for (const auto& [name, field] : fields) out[name] = in.*field;
  return out;
}

// The rollout under way or last done, and the rolling restarts asked; absent in older records.
Status DecodeRollout(const json& j, PersistentState& state) {
  auto restarts = Unsigned(j, "restarts", "restarts", std::numeric_limits<uint64_t>::max(),
                           /*required=*/false);
  if (!restarts.ok()) return restarts.error();
  state.restarts = *restarts;
  auto rollout = Field(j, "rollout", "rollout", /*required=*/false);
  if (!rollout.ok()) return rollout.error();
  if (*rollout == nullptr) return OkStatus();
  const json& r = **rollout;
  if (!r.is_object()) return Corrupt("rollout", "must be an object");
  auto target = String(r, "target", "rollout.target");
  if (!target.ok()) return target.error();
  if (target->empty()) return Corrupt("rollout.target", "must not be empty");
  auto stopped = String(r, "stopped", "rollout.stopped");
  if (!stopped.ok()) return stopped.error();
  auto total = Unsigned(r, "total", "rollout.total", 99);
  if (!total.ok()) return total.error();
  auto done = Bool(r, "done", "rollout.done");
  if (!done.ok()) return done.error();
  state.rollout_target = *target;
  state.rollout_stopped = *stopped;
  state.rollout_total = *total;
  state.rollout_done = *done;
  return OkStatus();
}

// The CA rotation: generation and phase; absent in older records and while none ever ran.
Status DecodeCaRotation(const json& j, PersistentState& state) {
  auto ca = Field(j, "ca", "ca", /*required=*/false);
  if (!ca.ok()) return ca.error();
  if (*ca == nullptr) return OkStatus();
  const json& c = **ca;
  if (!c.is_object()) return Corrupt("ca", "must be an object");
  auto generation =
      Unsigned(c, "generation", "ca.generation", std::numeric_limits<uint64_t>::max());
  if (!generation.ok()) return generation.error();
  auto phase = String(c, "phase", "ca.phase");
  if (!phase.ok()) return phase.error();
  state.ca.generation = *generation;
  for (CaPhase p : {CaPhase::kNone, CaPhase::kTrustBoth, CaPhase::kNewIssuer, CaPhase::kDropOld}) {
    if (CaPhaseName(p) == *phase) {
      state.ca.phase = p;
      return OkStatus();
    }
  }
  return Corrupt("ca.phase", "must be none, trust-both, new-issuer or drop-old");
}

// The CA files recorded with --tls=files; absent in older records and with other modes.
Status DecodeCaFiles(const json& j, PersistentState& state) {
  auto files = Field(j, "ca_files", "ca_files", /*required=*/false);
  if (!files.ok()) return files.error();
  if (*files == nullptr) return OkStatus();
  const json& f = **files;
  if (!f.is_object()) return Corrupt("ca_files", "must be an object");
  auto issuer = String(f, "issuer", "ca_files.issuer");
  if (!issuer.ok()) return issuer.error();
  if (issuer->empty()) return Corrupt("ca_files.issuer", "must not be empty");
  auto changes = Unsigned(f, "changes", "ca_files.changes");
  if (!changes.ok()) return changes.error();
  auto trusted = Field(f, "trusted", "ca_files.trusted", /*required=*/true);
  if (!trusted.ok()) return trusted.error();
  if (!(*trusted)->is_array() || (*trusted)->empty()) {
    return Corrupt("ca_files.trusted", "must be a non-empty array of fingerprints");
  }
  CaFiles out{*issuer, {}, *changes};
  for (const json& t : **trusted) {
    if (!t.is_string() || t.get_ref<const std::string&>().empty()) {
      return Corrupt("ca_files.trusted", "must be a non-empty array of fingerprints");
    }
    out.trusted.push_back(t.get<std::string>());
  }
  state.ca_files = std::move(out);
  return OkStatus();
}

}  // namespace

std::string StatePath(std::string_view framework_name) {
  return fmt::format("/{}/state", framework_name);
}

std::string FrameworkIdPath(std::string_view framework_name) {
  return fmt::format("/{}_framework_id", framework_name);
}

std::string EncodeState(const PersistentState& state) {
  json counters = EncodeUnsignedFields(kCounterFields, state.counters);
  json members = json::array();
  for (const auto& [name, m] : state.members) members.push_back(EncodeMember(m));
  json j = {
      {"format", kStateFormat},
      {"framework_id", state.framework_id ? json(*state.framework_id) : json(nullptr)},
      {"next_member", state.next_member},
      {"generation", state.generation},
      {"bootstrapped", state.bootstrapped},
      {"served", state.served},
      {"reseed_token", state.reseed_token},
      {"counters", counters},
      {"members", members},
  };
  j["revisions"] = EncodeUnsignedFields(kRevisionFields, state.revisions);
  if (!state.restore_snapshot.empty()) j["restore_snapshot"] = state.restore_snapshot;
  if (!state.restored_from.empty()) j["restored_from"] = state.restored_from;
  if (!state.admin_token.empty()) j["admin_token"] = state.admin_token;
  if (state.tearing_down) j["tearing_down"] = true;
  if (state.target_size > 0) {
    j["target_size"] = state.target_size;
    j["target_flag"] = state.target_flag;
  }
  if (!state.rollout_target.empty()) {
    j["rollout"] = json{{"target", state.rollout_target},
                        {"stopped", state.rollout_stopped},
                        {"total", state.rollout_total},
                        {"done", state.rollout_done}};
  }
  if (state.restarts > 0) j["restarts"] = state.restarts;
  if (state.ca.generation > 0 || state.ca.phase != CaPhase::kNone) {
    j["ca"] = json{{"generation", state.ca.generation},
                   {"phase", std::string(CaPhaseName(state.ca.phase))}};
  }
  if (!state.ca_files.issuer.empty()) {
    j["ca_files"] = json{{"issuer", state.ca_files.issuer},
                         {"trusted", state.ca_files.trusted},
                         {"changes", state.ca_files.changes}};
  }
  j["healthy"] = state.healthy;
  j["health_reason"] = state.health_reason;
  if (state.reseed) {
    j["reseed"] = json{{"candidates", state.reseed->candidates},
                       {"next", state.reseed->next},
                       {"manual", state.reseed->manual},
                       {"asked_revision", state.reseed->asked_revision},
                       {"highest_revision", state.reseed->highest_revision}};
  }
  return j.dump();
}

Result<PersistentState> DecodeState(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return MakeError(ErrorCode::kDataLoss, "state record: not valid JSON ({} bytes)", text.size());
  }
  if (!j.is_object()) return Corrupt("(record)", "must be a JSON object");
  auto format = Unsigned(j, "format", "format");
  if (!format.ok()) return format.error();
  if (*format != kStateFormat) {
    return Corrupt("format",
                   fmt::format("{} is not a format this scheduler reads (it reads {}); was the "
                               "state written by a newer etcd-mesos?",
                               *format, kStateFormat));
  }
  PersistentState state;
  auto fid = Field(j, "framework_id", "framework_id", false);
  if (!fid.ok()) return fid.error();
  if (*fid != nullptr) {
    if (!(*fid)->is_string() || (*fid)->get<std::string>().empty()) {
      return Corrupt("framework_id", "must be a non-empty string or null");
    }
    state.framework_id = (*fid)->get<std::string>();
  }
  auto next = Unsigned(j, "next_member", "next_member");
  if (!next.ok()) return next.error();
  if (*next == 0) return Corrupt("next_member", "must be at least 1");
  state.next_member = *next;
  auto generation = Unsigned(j, "generation", "generation");
  if (!generation.ok()) return generation.error();
  state.generation = *generation;
  auto bootstrapped = Bool(j, "bootstrapped", "bootstrapped");
  if (!bootstrapped.ok()) return bootstrapped.error();
  state.bootstrapped = *bootstrapped;
  // Written since etcd-mesos knows a cluster that never served from one that may hold data;
  // absent in an older record, a started cluster is taken to hold data.
  if (j.contains("served")) {
    auto served = Bool(j, "served", "served");
    if (!served.ok()) return served.error();
    state.served = *served;
  } else {
    state.served = state.bootstrapped;
  }
  // A size asked at runtime, and the --cluster-size it was asked under; absent when none was.
  auto target = Unsigned(j, "target_size", "target_size", 99, /*required=*/false);
  if (!target.ok()) return target.error();
  auto target_flag = Unsigned(j, "target_flag", "target_flag", 99, /*required=*/false);
  if (!target_flag.ok()) return target_flag.error();
  state.target_size = static_cast<int>(*target);
  state.target_flag = static_cast<int>(*target_flag);
  // The leader's last health verdict; absent in records written before standbys showed it.
  if (j.contains("healthy")) {
    auto healthy = Bool(j, "healthy", "healthy");
    if (!healthy.ok()) return healthy.error();
    state.healthy = *healthy;
  }
  auto reason = String(j, "health_reason", "health_reason", /*required=*/false);
  if (!reason.ok()) return reason.error();
  state.health_reason = *reason;
  if (Status s = DecodeRollout(j, state); !s.ok()) return s.error();
  if (Status s = DecodeCaRotation(j, state); !s.ok()) return s.error();
  if (Status s = DecodeCaFiles(j, state); !s.ok()) return s.error();
  auto restored = String(j, "restored_from", "restored_from", /*required=*/false);
  if (!restored.ok()) return restored.error();
  state.restored_from = *restored;
  auto token = String(j, "reseed_token", "reseed_token");
  if (!token.ok()) return token.error();
  state.reseed_token = *token;
  auto admin_token = String(j, "admin_token", "admin_token", /*required=*/false);
  if (!admin_token.ok()) return admin_token.error();
  state.admin_token = *admin_token;
  auto tearing_down = Bool(j, "tearing_down", "tearing_down", /*required=*/false);
  if (!tearing_down.ok()) return tearing_down.error();
  state.tearing_down = *tearing_down;
  auto restore = String(j, "restore_snapshot", "restore_snapshot", /*required=*/false);
  if (!restore.ok()) return restore.error();
  state.restore_snapshot = *restore;
  if (Status s = DecodeUnsignedFields(j, "counters", true, kCounterFields, state.counters);
      !s.ok()) {
    return s.error();
  }
  auto members = Field(j, "members", "members", true);
  if (!members.ok()) return members.error();
  if (!(*members)->is_array()) return Corrupt("members", "must be an array");
  for (size_t i = 0; i < (*members)->size(); ++i) {
    auto m = DecodeMember((**members)[i], i);
    if (!m.ok()) return m.error();
    if (state.members.count(m->name)) {
      return Corrupt(fmt::format("members[{}].name", i),
                     fmt::format("'{}' appears twice", m->name));
    }
    std::string name = m->name;
    state.members.emplace(std::move(name), std::move(*m));
  }
  auto reseed = DecodeReseed(j, state.members);
  if (!reseed.ok()) return reseed.error();
  state.reseed = std::move(*reseed);
  // Optional: states written before the revisions were kept have none.
  if (Status s = DecodeUnsignedFields(j, "revisions", false, kRevisionFields, state.revisions);
      !s.ok()) {
    return s.error();
  }
  return state;
}

}  // namespace etcd_mesos::scheduler::shell
