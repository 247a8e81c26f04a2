#include "scheduler/shell/console.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "scheduler/core/rules.h"
#include "scheduler/shell/status_page.h"
#include "scheduler/shell/task_info.h"

namespace etcd_mesos::scheduler::shell {

using json = nlohmann::json;

namespace {

// The verdict the page shows: a standby does not probe, so it shows the leader's stored one.
bool ShownHealthy(const SchedulerCore& core, bool standby) {
  return standby ? core.state().healthy : core.healthy();
}

int HealthyVoters(const SchedulerCore& core) {
  int n = 0;
  for (const auto& [name, m] : core.state().members) n += MaybeVoter(m) && m.healthy ? 1 : 0;
  return n;
}

uint64_t LargestDatabase(const SchedulerCore& core) {
  uint64_t largest = 0;
  for (const auto& [name, m] : core.state().members) largest = std::max(largest, m.db_size);
  return largest;
}

const Member* LeaderMember(const SchedulerCore& core, uint64_t leader) {
  if (leader == 0) return nullptr;
  for (const auto& [name, m] : core.state().members) {
    if (m.member_id == leader && MaybeVoter(m)) return &m;
  }
  return nullptr;
}

std::string_view RoleOf(const Member& m, uint64_t leader) {
  if (MaybeVoter(m)) return m.member_id != 0 && m.member_id == leader ? "leader" : "voter";
  if (MaybeLearner(m)) return "learner";
  return "-";
}

int64_t UnixMs(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

json AlarmsOf(const Member& m) {
  json alarms = json::array();
  if (m.nospace_alarm) alarms.push_back("NOSPACE");
  if (m.corrupt_alarm) alarms.push_back("CORRUPT");
  return alarms;
}

json MemberJson(const SchedulerCore& core, const Member& m, const Member* leader,
                const ConsoleContext& context) {
  uint64_t leader_id = leader ? leader->member_id : 0;
  json out{
      {"name", m.name},
      {"host", m.host},
      {"agent_id", m.agent_id},
      {"task_state", mesos::TaskState_Name(m.task_state)},
      {"role", RoleOf(m, leader_id)},
      {"member_id", m.member_id == 0 ? "" : fmt::format("{:x}", m.member_id)},
      {"generation", m.generation},
      {"healthy", m.healthy},
      {"reachable", m.reachable},
      {"raft_index", m.raft_index},
      {"db_size", m.db_size},
      {"db_size_in_use", m.db_size_in_use},
      {"alarms", AlarmsOf(m)},
      {"client_url", m.ClientUrl()},
      {"lag", nullptr},
      {"catch_up", nullptr},
      {"fragmented", nullptr},
      {"sandbox_url", SandboxUrl(context.master_url, core.state().framework_id.value_or(""), m)},
      {"cert_not_after", nullptr},
      {"cert_days_left", nullptr},
      {"cert_renew_due", false},
  };
  // Only a TLS member's certificates have an expiry; an older cluster's members have none.
  if (m.tls && m.cert_not_after > 0) {
    int64_t now_unix = context.now_unix_ms / 1000;
    out["cert_not_after"] = m.cert_not_after;
    out["cert_days_left"] =
        static_cast<double>(m.cert_not_after * 1000 - context.now_unix_ms) / (86400.0 * 1000);
    out["cert_renew_due"] = CertificateRenewalDue(m, now_unix, core.config().cert_renew_before);
  }
  // Lag and catch-up only from two fresh answers: a member that stopped answering keeps its
  // last index, which would read as a lag that is not there.
  if (leader && leader->reachable && m.reachable && leader->raft_index > 0) {
    out["lag"] = leader->raft_index > m.raft_index ? leader->raft_index - m.raft_index : 0;
    if (MaybeLearner(m)) {
      out["catch_up"] = std::min(1.0, static_cast<double>(m.raft_index) / leader->raft_index);
    }
  }
  // Found in the minority by the scheduler's hash check: shown with etcd's own alarms.
  if (core.corrupt_members().count(m.name)) out["alarms"].push_back("CORRUPT (hash check)");
  if (m.db_size > 0 && m.db_size >= m.db_size_in_use) {
    out["fragmented"] = 1.0 - static_cast<double>(m.db_size_in_use) / m.db_size;
  }
  return out;
}

json CountersJson(const Counters& c) {
  return json{{"launched", c.launched_servers},
              {"failed", c.failed_servers},
              {"lost", c.lost_servers},
              {"livelocks", c.cluster_livelocks},
              {"reseeds", c.cluster_reseeds},
              {"reseed_attempts", c.reseed_attempts},
              {"members_added", c.members_added},
              {"members_promoted", c.members_promoted},
              {"members_removed", c.members_removed}};
}

json BackupsJson(const SchedulerCore& core, int64_t now_unix) {
  const BackupStatus& b = core.backups();
  json out{{"enabled", core.config().backups},
           {"taken", b.taken},
           {"failed", b.failures},
           {"running", b.running ? json(*b.running) : json(nullptr)},
           {"last_error", b.last_error},
           {"newest", nullptr}};
  if (b.last) {
    out["newest"] = json{{"name", b.last->name},
                         {"size", b.last->size},
                         {"revision", b.last->revision},
                         {"age_s", BackupAgeSeconds(core, now_unix)}};
  }
  return out;
}

json MaintenanceJson(const MaintenanceStatus& m) {
  return json{{"nospace_alarm", m.nospace},
              {"corrupt_alarm", m.corrupt},
              {"running", m.running.empty() ? json(nullptr) : json(m.running)},
              {"members_defragmented", m.members_defragmented},
              {"nospace_alarms", m.nospace_alarms},
              {"nospace_cleared", m.nospace_cleared},
              {"failures", m.failures},
              {"last_error", m.last_error}};
}

// The mode the scheduler runs with and the first certificate to expire (as /stats tells it), with
// the renewal window the page judges each member's expiry against.
json TlsJson(const SchedulerCore& core, const ConsoleContext& context) {
  CertificateExpiry expiry = EarliestCertificateExpiry(core.state().members);
  auto renew_before =
      std::chrono::duration_cast<std::chrono::seconds>(core.config().cert_renew_before);
  return json{{"mode", context.tls_mode},
              {"members_tls", expiry.tls},
              {"renew_before_s", renew_before.count()},
              {"earliest", expiry.earliest > 0 ? json(expiry.earliest) : json(nullptr)},
              {"earliest_member", expiry.member}};
}

json RolloutJson(const RolloutView& r) {
  return json{{"state", r.state}, {"target", r.target_summary},
              {"total", r.total}, {"pending", r.pending},
              {"step", r.step},   {"reason", r.reason}};
}

json NotesJson(const NoteLog& notes, uint64_t after) {
  json items = json::array();
  uint64_t last = 0;
  for (const TimedNote& n : notes.notes()) {
    last = n.seq;
    if (n.seq <= after) continue;
    items.push_back(json{{"seq", n.seq},
                         {"t_ms", UnixMs(n.at)},
                         {"level", n.note.level},
                         {"kind", n.note.kind},
                         {"member", n.note.member},
                         {"message", n.note.message}});
  }
  return json{{"last", last}, {"items", std::move(items)}};
}

json HistoryJson(const ClusterHistory& history, int64_t after_ms) {
  json samples = json::array();
  for (const ClusterSample& s : history.samples()) {
    if (s.unix_ms <= after_ms) continue;
    samples.push_back(
        json::array({s.unix_ms, s.healthy_voters, s.target, s.leader_changes, s.db_size,
                     s.wal_fsync_ms ? json(*s.wal_fsync_ms) : json(nullptr)}));
  }
  return json{{"interval_ms", ClusterHistory::kSampleIntervalMs},
              {"keep", ClusterHistory::kKeep},
              {"columns",
               {"t_ms", "healthy_voters", "target", "leader_changes", "db_size", "wal_fsync_ms"}},
              {"samples", std::move(samples)}};
}

}  // namespace

void ClusterHistory::Observe(const SchedulerCore& core, bool standby, int64_t unix_ms) {
  bool healthy = ShownHealthy(core, standby);
  if (!healthy_ || *healthy_ != healthy) {
    healthy_ = healthy;
    health_since_ms_ = unix_ms;
  }
  uint64_t leader = CountLeaderVotes(core.state().members).leader;
  if (leader != 0 && leader != leader_) {
    if (leader_ != 0) ++leader_changes_;
    leader_ = leader;
  }
}

void ClusterHistory::Sample(const SchedulerCore& core, bool standby, int64_t unix_ms,
                            std::optional<double> wal_fsync_ms) {
  Observe(core, standby, unix_ms);
  // Strictly increasing times: the console asks for the samples after the last it has.
  if (!samples_.empty()) unix_ms = std::max(unix_ms, samples_.back().unix_ms + 1);
  samples_.push_back(ClusterSample{unix_ms, HealthyVoters(core), core.TargetSize(), leader_changes_,
                                   LargestDatabase(core), wal_fsync_ms});
  while (samples_.size() > kKeep) samples_.pop_front();
}

std::optional<double> ClusterHistory::MeanFsyncMs(const etcd::DiskLatencyTotals& before,
                                                  const etcd::DiskLatencyTotals& after) {
  if (after.wal_fsyncs <= before.wal_fsyncs || after.wal_fsync_seconds < before.wal_fsync_seconds) {
    return std::nullopt;
  }
  return (after.wal_fsync_seconds - before.wal_fsync_seconds) * 1000.0 /
         static_cast<double>(after.wal_fsyncs - before.wal_fsyncs);
}

std::string SandboxUrl(const std::string& master_url, const std::string& framework_id,
                       const Member& member) {
  if (master_url.empty() || framework_id.empty() || member.agent_id.empty()) return "";
  return fmt::format("{}/#/agents/{}/frameworks/{}/executors/{}/browse", master_url,
                     member.agent_id, framework_id, ExecutorIdOf(member));
}

std::string RenderConsoleJson(const SchedulerCore& core, const NoteLog& notes,
                              const ClusterHistory& history, const ConsoleContext& context) {
  bool standby = context.standby_leader.has_value();
  const Member* leader = LeaderMember(core, CountLeaderVotes(core.state().members).leader);
  json members = json::array();
  for (const auto& [name, m] : core.state().members) {
    members.push_back(MemberJson(core, m, leader, context));
  }
  int64_t now_unix = context.now_unix_ms / 1000;
  json out{
      {"framework", core.config().framework_name},
      {"framework_id", core.state().framework_id.value_or("")},
      {"now_ms", context.now_unix_ms},
      {"standby", standby},
      {"leader_url", standby ? json(*context.standby_leader) : json(nullptr)},
      {"holding", context.holding},
      {"master_url", context.master_url},
      {"health",
       {{"healthy", ShownHealthy(core, standby)},
        {"reason", standby ? core.state().health_reason : core.health_reason()},
        {"since_ms", history.health_since_ms()},
        {"total_loss", core.total_loss()},
        {"livelock", core.livelocked()},
        {"reseeding", core.reseeding()},
        {"connected", core.connected()},
        {"reconciling", core.reconciling()}}},
      {"generation", core.state().generation},
      {"target_size", core.TargetSize()},
      {"healthy_voters", HealthyVoters(core)},
      {"leader", leader ? json(leader->name) : json(nullptr)},
      {"leader_changes", history.leader_changes()},
      {"members", std::move(members)},
      {"counters", CountersJson(core.state().counters)},
      {"backups", BackupsJson(core, now_unix)},
      {"maintenance", MaintenanceJson(core.maintenance())},
      {"rollout", RolloutJson(core.rollout())},
      {"tls", TlsJson(core, context)},
      {"notes", NotesJson(notes, context.notes_after)},
      {"history", HistoryJson(history, context.samples_after_ms)},
  };
  return out.dump() + "\n";
}

}  // namespace etcd_mesos::scheduler::shell
