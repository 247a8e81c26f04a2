#include "scheduler/shell/status_page.h"

#include <algorithm>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "net/http.h"
#include "scheduler/core/rules.h"
#include "scheduler/shell/console_page.h"

namespace etcd_mesos::scheduler::shell {

void NoteLog::Add(Note note) {
  notes_.push_back(TimedNote{std::chrono::system_clock::now(), std::move(note), next_seq_++});
  while (notes_.size() > kKeep) notes_.pop_front();
}

int64_t BackupAgeSeconds(const SchedulerCore& core, int64_t now_unix) {
  const auto& last = core.backups().last;
  if (!last) return -1;
  return std::max<int64_t>(0, now_unix - last->unix_time);
}

namespace {

std::string Html(std::string_view s) { return net::HtmlEscape(s); }

// The member's part in the cluster as the core counts it: a member whose task ended is neither
// a voter nor a learner any more, whatever it was.
std::string_view Role(const Member& m) {
  if (MaybeVoter(m)) return "voter";
  if (MaybeLearner(m)) return "learner";
  return "-";
}

// One table row per member.
std::string MemberRows(const SchedulerCore& core) {
  std::string rows;
  for (const auto& [name, m] : core.state().members) {
    rows += fmt::format(
        "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
        m.healthy ? "ok" : "bad", Html(m.name), Html(m.host), m.peer_port, m.client_port,
        m.reseed_port, Html(mesos::TaskState_Name(m.task_state)), Role(m),
        m.member_id == 0 ? "-" : fmt::format("{:x}", m.member_id), m.raft_index,
        m.healthy ? "yes" : (m.reachable ? "reachable" : "no"));
  }
  if (rows.empty()) rows = "<tr><td colspan=\"10\">no members</td></tr>\n";
  return rows;
}

// One table row per note, newest first.
std::string NoteRows(const NoteLog& notes) {
  std::string rows;
  int shown = 0;
  for (auto it = notes.notes().rbegin(); it != notes.notes().rend() && shown++ < 100; ++it) {
    rows += fmt::format(
        "<tr class=\"{}\"><td>{:%Y-%m-%d %H:%M:%S}</td><td>{}</td><td>{}</td>"
        "</tr>\n",
        Html(it->note.level), fmt::localtime(std::chrono::system_clock::to_time_t(it->at)),
        Html(it->note.level), Html(it->note.message));
  }
  return rows;
}

// Healthy as this instance can tell: a standby does not probe, and shows the leader's verdict
// as last stored.
bool Healthy(const SchedulerCore& core, bool standby) {
  return standby ? core.state().healthy : core.healthy();
}

// The headline: total loss above all, else health and why.
std::string HealthLine(const SchedulerCore& core, bool standby) {
  if (core.total_loss()) {
    return "TOTAL CLUSTER LOSS: no member is left. Restore from a backup, or POST /start-fresh "
           "for an empty cluster.";
  }
  std::string reason =
      standby ? "as the leader last stored: " + core.state().health_reason : core.health_reason();
  return std::string(Healthy(core, standby) ? "healthy" : "NOT healthy") + ": " + reason;
}

std::string BackupLine(const SchedulerCore& core, int64_t now_unix) {
  const BackupStatus& b = core.backups();
  if (!core.config().backups) return "backups: OFF (no --backup-dir)";
  std::string running = b.running ? "; running: " + *b.running : "";
  std::string error = b.last_error.empty() ? "" : "; last error: " + b.last_error;
  if (!b.last) return fmt::format("backups: NONE yet; {} failed{}{}", b.failures, running, error);
  return fmt::format(
      "backups: newest {} ({} bytes, revision {}, {} s old); {} taken, {} failed{}{}", b.last->name,
      b.last->size, b.last->revision, BackupAgeSeconds(core, now_unix), b.taken, b.failures,
      running, error);
}

}  // namespace

std::string StandbyBanner(const std::optional<std::string>& leader) {
  if (!leader) return "";
  std::string who = leader->empty()
                        ? std::string("no leader is elected yet")
                        : fmt::format("the leader is <a href=\"{0}\">{0}</a>", Html(*leader));
  return fmt::format(
      "<p class=\"warn\"><b>STANDBY: this instance does not act; {}. Below is the state the "
      "leader last stored; commands go to the leader.</b></p>\n",
      who);
}

std::string RenderStatusPage(const SchedulerCore& core, const NoteLog& notes, int64_t now_unix,
                             const std::optional<std::string>& standby_leader) {
  const Counters& c = core.state().counters;
  const BackupStatus& b = core.backups();
  return fmt::format(
      R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<noscript><meta http-equiv="refresh" content="5"></noscript>
<title>etcd-mesos: {0}</title>
<style>{22}</style></head><body>
<div id="snapshot">
<h1>etcd-mesos: {0}</h1>
{21}<p class="{1}"><b>{2}</b></p>
<p>master: {3}; reconciliation: {4}; livelock: {5}; reseed: {6}; generation {7};
cluster size {8}</p>
<h2>members</h2>
<table><tr><th>name</th><th>host</th><th>peer port</th><th>client port</th><th>reseed port</th>
<th>task state</th><th>role</th><th>member id</th><th>raft index</th><th>healthy</th></tr>
{9}</table>
<h2>counters</h2>
<table><tr><th>running</th><th>launched</th><th>failed</th><th>lost</th><th>livelocks</th>
<th>reseeds</th><th>reseed attempts</th><th>added</th><th>promoted</th><th>removed</th></tr>
<tr><td>{10}</td><td>{11}</td><td>{12}</td><td>{13}</td><td>{14}</td><td>{15}</td><td>{16}</td>
<td>{17}</td><td>{18}</td><td>{19}</td></tr></table>
<p><a href="/members">/members</a> <a href="/stats">/stats</a> <a href="/healthz">/healthz</a>
<a href="/metrics">/metrics</a> <a href="/endpoints">/endpoints</a></p>
<h2>recent events</h2>
<table><tr><th>time</th><th>level</th><th>message</th></tr>
{20}</table>
</div>
{23}
<script>{24}</script>
</body></html>
)",
      Html(core.config().framework_name), Healthy(core, standby_leader.has_value()) ? "ok" : "bad",
      Html(HealthLine(core, standby_leader.has_value())) + "</b></p>\n<p class=\"" +
          (core.config().backups && b.last && b.last_error.empty() ? "ok" : "warn") + "\"><b>" +
          Html(BackupLine(core, now_unix)),
      core.connected() ? "connected" : "DISCONNECTED",
      core.reconciling() ? "in progress" : "settled", core.livelocked() ? "YES" : "no",
      core.reseeding() ? "RUNNING" : "none", core.state().generation, core.TargetSize(),
      MemberRows(core),
      std::count_if(core.state().members.begin(), core.state().members.end(),
                    [](const auto& kv) { return kv.second.task_state == mesos::TASK_RUNNING; }),
      c.launched_servers, c.failed_servers, c.lost_servers, c.cluster_livelocks, c.cluster_reseeds,
      c.reseed_attempts, c.members_added, c.members_promoted, c.members_removed, NoteRows(notes),
      StandbyBanner(standby_leader), ConsoleStyle(), ConsoleBody(), ConsoleScript());
}

}  // namespace etcd_mesos::scheduler::shell
