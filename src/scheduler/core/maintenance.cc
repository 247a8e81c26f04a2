// SchedulerCore's maintenance of the members' databases (see scheduler_core.h): defragmentation
// past --defrag-threshold or on POST /defrag, and the recovery from etcd's NOSPACE alarm
// (compact, defragment every member, disarm once there is room again).
#include <algorithm>

#include <fmt/format.h>

#include "mesos/task_state.h"
#include "scheduler/core/rules.h"
#include "scheduler/core/scheduler_core.h"

namespace etcd_mesos::scheduler {

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

double FreeShare(const Member& m) {
  if (m.db_size == 0 || m.db_size_in_use > m.db_size) return 0;
  return 1.0 - static_cast<double>(m.db_size_in_use) / static_cast<double>(m.db_size);
}

bool Answers(const Member& m) { return m.reachable && !Gone(m.task_state); }

}  // namespace

std::vector<std::string> SchedulerCore::LeaderLast(std::vector<std::string> names) const {
  uint64_t leader = CountLeaderVotes(state_.members).leader;
  std::stable_partition(names.begin(), names.end(), [&](const std::string& name) {
    auto it = state_.members.find(name);
    return it == state_.members.end() || leader == 0 || it->second.member_id != leader;
  });
  return names;
}

const Member* SchedulerCore::MaintenanceContact() const {
  uint64_t leader = CountLeaderVotes(state_.members).leader;
  const Member* any = nullptr;
  for (const auto& [name, m] : state_.members) {
    if (!MaybeVoter(m) || !Answers(m)) continue;
    if (m.member_id != 0 && m.member_id == leader) return &m;
    if (any == nullptr) any = &m;
  }
  return any;
}

void SchedulerCore::MaybeMaintain(Time now, Actions& out) {
  bool nospace = false, corrupt = false;
  for (const auto& [name, m] : state_.members) {
    nospace = nospace || (Answers(m) && m.nospace_alarm);
    corrupt = corrupt || (Answers(m) && m.corrupt_alarm);
  }
  if (nospace && !maintenance_status_.nospace) {
    ++maintenance_status_.nospace_alarms;
    Say("error", "maintenance",
        fmt::format("etcd raised the NOSPACE alarm: a database reached the quota "
                    "(--quota-backend-bytes, {:.0f} MiB) and etcd refuses every write; compacting, "
                    "defragmenting every member and disarming the alarm once there is room",
                    config_.quota_backend_bytes / kMiB),
        out);
  }
  if (corrupt && !maintenance_status_.corrupt) {
    Say("error", "maintenance",
        "etcd raised the CORRUPT alarm: members disagree on their data; no maintenance runs "
        "until an operator has looked (see the guide, 'A member is corrupt')",
        out);
  }
  maintenance_status_.nospace = nospace;
  maintenance_status_.corrupt = corrupt;
  if (maintenance_run_) return NextMaintenanceStep(now, out);
  if (corrupt || !MayAct() || !healthy_ || in_flight_ || pending_add_ || backup_) return;
  if (maintenance_failed_at_ && now - *maintenance_failed_at_ < config_.maintenance_retry) return;
  std::vector<std::string> members;
  if (nospace) {
    for (const auto& [name, m] : state_.members) {
      if (Answers(m)) members.push_back(name);
    }
    return StartMaintenance("the NOSPACE alarm", true, std::move(members), now, out);
  }
  if (config_.defrag_threshold <= 0) return;
  std::vector<std::string> why;
  for (const auto& [name, m] : state_.members) {
    if (!Answers(m) || m.db_size < config_.defrag_min_bytes) continue;
    if (FreeShare(m) < config_.defrag_threshold) continue;
    members.push_back(name);
    why.push_back(
        fmt::format("{} {:.0f}% free of {:.1f} MiB", name, 100 * FreeShare(m), m.db_size / kMiB));
  }
  if (members.empty()) return;
  StartMaintenance(fmt::format("fragmented past --defrag-threshold {:.0f}%: {}",
                               100 * config_.defrag_threshold, fmt::join(why, ", ")),
                   false, std::move(members), now, out);
}

void SchedulerCore::StartMaintenance(std::string reason, bool nospace,
                                     std::vector<std::string> members, Time now, Actions& out) {
  MaintenanceRun run;
  run.reason = std::move(reason);
  run.nospace = nospace;
  members = LeaderLast(std::move(members));
  run.queue.assign(members.begin(), members.end());
  ++maintenance_status_.runs;
  Say("warn", "maintenance",
      fmt::format("maintenance for {}: {}defragmenting {} one at a time (followers first, the "
                  "leader last){}",
                  run.reason, nospace ? "compacting the history, then " : "",
                  fmt::join(members, ", "), nospace ? ", then disarming the alarm" : ""),
      out);
  maintenance_run_ = std::move(run);
  NextMaintenanceStep(now, out);
}

void SchedulerCore::IssueMaintenance(MaintenanceOp op, const Member& on, uint64_t revision,
                                     Actions& out) {
  MaintenanceRun& run = *maintenance_run_;
  run.in_flight = next_maintenance_id_++;
  run.in_flight_member = on.name;
  maintenance_status_.running =
      fmt::format("{} {} ({})", MaintenanceOpName(op), on.name, run.reason);
  out.push_back(Maintain{*run.in_flight, op, on.name, on.ClientUrl(), revision});
}

void SchedulerCore::NextMaintenanceStep(Time now, Actions& out) {
  MaintenanceRun& run = *maintenance_run_;
  if (run.in_flight) return;  // answered by a MaintenanceResult; the shell bounds how long
  if (state_.reseed) return EndMaintenance(now, "stopped: a reseed started", out);
  if (maintenance_status_.corrupt) return EndMaintenance(now, "stopped: the CORRUPT alarm", out);
  // Nothing is touched unless the cluster is healthy; the run resumes when it is again.
  if (!MayAct() || !healthy_) return;
  // The member defragmented last answers again before the next one is made to stop serving.
  if (!run.settling.empty()) {
    auto it = state_.members.find(run.settling);
    bool gone = it == state_.members.end() || Gone(it->second.task_state);
    // A probe interval later, not merely after: an answer to a probe that was in flight while it
    // was defragmented may still carry its old size, and the disarm is judged on the sizes.
    bool answered = !gone && it->second.reachable && it->second.last_reachable &&
                    *it->second.last_reachable >= run.settle_since + config_.probe_interval;
    if (!gone && !answered) return;
    run.settling.clear();
  }
  if (run.nospace && !run.compacted) {
    const Member* contact = MaintenanceContact();
    if (contact == nullptr) return;
    uint64_t revision = 0;
    for (const auto& [name, m] : state_.members) {
      if (Answers(m)) revision = std::max(revision, m.revision);
    }
    if (revision == 0) return;  // no probe has said yet
    run.revision = revision;
    return IssueMaintenance(MaintenanceOp::kCompact, *contact, revision, out);
  }
  while (!run.queue.empty()) {
    auto it = state_.members.find(run.queue.front());
    if (it == state_.members.end() || Gone(it->second.task_state)) {
      run.queue.pop_front();  // replaced meanwhile: its successor's database is fresh
      continue;
    }
    if (!it->second.reachable) return;  // waits for it to answer
    return IssueMaintenance(MaintenanceOp::kDefragment, it->second, 0, out);
  }
  if (!run.nospace) return EndMaintenance(now, "", out);
  // Disarm only with room to write again: else etcd would raise the alarm at the next writes.
  const Member* fullest = nullptr;
  for (const auto& [name, m] : state_.members) {
    if (Answers(m) && (fullest == nullptr || m.db_size > fullest->db_size)) fullest = &m;
  }
  double limit = kNoSpaceClearShare * static_cast<double>(config_.quota_backend_bytes);
  if (fullest != nullptr && static_cast<double>(fullest->db_size) >= limit) {
    return EndMaintenance(
        now,
        fmt::format("after compaction and defragmentation the data itself fills {:.0f}% of the "
                    "quota ({} has {:.1f} of {:.1f} MiB): the NOSPACE alarm stays and writes stay "
                    "refused; raise --quota-backend-bytes or delete data, then POST /defrag",
                    100.0 * fullest->db_size / config_.quota_backend_bytes, fullest->name,
                    fullest->db_size / kMiB, config_.quota_backend_bytes / kMiB),
        out);
  }
  const Member* contact = MaintenanceContact();
  if (contact != nullptr) IssueMaintenance(MaintenanceOp::kDisarmNoSpace, *contact, 0, out);
}

void SchedulerCore::OnMaintenanceResult(const MaintenanceResult& e, Actions& out) {
  if (!maintenance_run_ || maintenance_run_->in_flight != e.id) return;  // a late answer
  MaintenanceRun& run = *maintenance_run_;
  run.in_flight.reset();
  maintenance_status_.running.clear();
  bool compacted_before = e.op == MaintenanceOp::kCompact && !e.status.ok() &&
                          e.status.error().message.find("compacted") != std::string::npos;
  if (!e.status.ok() && !compacted_before) {
    return EndMaintenance(e.now,
                          fmt::format("{} on {} failed: {}", MaintenanceOpName(e.op), e.member,
                                      e.status.error().message),
                          out);
  }
  switch (e.op) {
    case MaintenanceOp::kCompact:
      run.compacted = true;
      Say("info", "maintenance",
          fmt::format("compacted the history to revision {} (through {})", run.revision, e.member),
          out);
      break;
    case MaintenanceOp::kDefragment:
      ++maintenance_status_.members_defragmented;
      if (!run.queue.empty() && run.queue.front() == e.member) run.queue.pop_front();
      run.settling = e.member;
      run.settle_since = e.now;
      Say("info", "maintenance", fmt::format("defragmented {}", e.member), out, e.member);
      break;
    case MaintenanceOp::kDisarmNoSpace:
      ++maintenance_status_.nospace_cleared;
      // The probes answered before the disarm still say NOSPACE: the next ones say whether it is
      // raised again (else the run would start over on what it has just cleared).
      for (auto& [name, m] : state_.members) m.nospace_alarm = false;
      maintenance_status_.nospace = false;
      Say("info", "maintenance",
          "NOSPACE alarm disarmed: every database is below 90% of the quota; etcd takes writes "
          "again",
          out);
      return EndMaintenance(e.now, "", out);
  }
  NextMaintenanceStep(e.now, out);
}

void SchedulerCore::EndMaintenance(Time now, const std::string& error, Actions& out) {
  if (!error.empty()) {
    ++maintenance_status_.failures;
    maintenance_status_.last_error = error;
    maintenance_failed_at_ = now;
    Say("error", "maintenance",
        fmt::format("maintenance for {} stopped: {}; tried again in {} s at the earliest",
                    maintenance_run_->reason, error, config_.maintenance_retry.count() / 1000),
        out);
  } else {
    Say("info", "maintenance", fmt::format("maintenance for {} done", maintenance_run_->reason),
        out);
  }
  maintenance_run_.reset();
  maintenance_status_.running.clear();
}

void SchedulerCore::OnAdminDefrag(const AdminDefrag& e, Actions& out) {
  auto answer = [&](int code, std::string why) {
    out.push_back(AnswerAdmin{e.request, code, std::move(why)});
  };
  if (!MayAct()) return answer(503, "not now: disconnected, reconciling or reseeding; try again");
  if (maintenance_run_) {
    return answer(409, "maintenance is already running for " + maintenance_run_->reason);
  }
  if (maintenance_status_.corrupt) {
    return answer(409, "refused: the CORRUPT alarm is raised; see the guide first");
  }
  if (!healthy_) {
    return answer(409, "refused: the cluster is not healthy (" + health_reason_ +
                           "); defragmentation stops a member at a time, so it waits for health");
  }
  std::vector<std::string> members;
  for (const auto& [name, m] : state_.members) {
    if (Answers(m)) members.push_back(name);
  }
  if (members.empty()) return answer(409, "no member answers");
  maintenance_failed_at_.reset();
  bool nospace = maintenance_status_.nospace;
  StartMaintenance(
      nospace ? "the NOSPACE alarm (asked by the operator)" : "the operator's POST /defrag",
      nospace, members, e.now, out);
  answer(202, fmt::format("defragmenting {} one at a time, followers first and the leader last",
                          fmt::join(LeaderLast(members), ", ")));
}

}  // namespace etcd_mesos::scheduler
