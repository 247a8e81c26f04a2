// Durable members: restart in place on a persistent volume, the replacement policy, and the
// release of reservations no member of ours claims. See CoreConfig::replace_after.
#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/duration.h"
#include "mesos/task_state.h"
#include "scheduler/core/rules.h"
#include "scheduler/core/scheduler_core.h"

namespace etcd_mesos::scheduler {
namespace {

bool IsVolume(const mesos::Resource& r) { return r.has_disk() && r.disk().has_persistence(); }

}  // namespace

bool SchedulerCore::AwaitsRestartInPlace(const Member& m, Time now) const {
  // Ended, or out of contact (its agent partitioned or rebooting: Mesos may say so long after
  // etcd does, or never): either way it may come back on its volume until replace_after.
  if (m.volume.empty() || !(Gone(m.task_state) || Uncertain(m.task_state))) return false;
  auto ended = ended_at_.find(m.name);
  return ended != ended_at_.end() && now - ended->second < config_.replace_after;
}

void SchedulerCore::NoteDurableEnd(const Member& m, bool killed_by_us, Time now, Actions& out) {
  if (m.volume.empty()) return;
  if (killed_by_us || config_.replace_after.count() == 0) {
    ended_at_.erase(m.name);
    return;
  }
  if (gone_agents_.count(m.agent_id)) {
    // Nothing to wait for: the agent, and the volume with it, will not be back.
    ended_at_.erase(m.name);
    Say("warn", "heal",
        fmt::format("{} ended with its agent {}, which Mesos removed for good: its volume {} is "
                    "gone, so it is replaced now",
                    m.name, m.agent_id, m.volume),
        out, m.name);
    return;
  }
  // Cut off by etcd's own view first: --replace-after counts from then.
  Time since = m.peer_lost_since ? std::min(*m.peer_lost_since, now) : now;
  if (!ended_at_.emplace(m.name, since).second) return;  // out of contact first: said then
  if (m.peer_lost_since) return;                         // said when etcd's view saw it
  Say("warn", "heal",
      fmt::format("{} {}: it is restarted in place on its volume {} when agent {} offers it "
                  "back; replaced if that has not happened within {}",
                  m.name, Gone(m.task_state) ? "ended" : "is out of contact", m.volume, m.agent_id,
                  ShowDuration(config_.replace_after)),
      out, m.name);
}

bool SchedulerCore::RestartInPlace(const mesos::Offer& offer, Time now, Actions& out) {
  std::string volume;
  for (const auto& r : offer.resources()) {
    if (IsVolume(r)) volume = r.disk().persistence().id();
    if (!volume.empty()) break;
  }
  if (volume.empty()) return false;
  for (auto& [name, m] : state_.members) {
    if (m.volume.empty() || m.agent_id != offer.agent_id().value() || !Gone(m.task_state)) continue;
    if (!AwaitsRestartInPlace(m, now)) continue;
    bool held = false;
    for (const auto& r : offer.resources()) {
      held |= IsVolume(r) && r.disk().persistence().id() == m.volume;
    }
    if (!held) continue;
    ++m.restarts;
    m.task_id = FormatTaskId(m);
    m.task_state = mesos::TASK_STAGING;
    m.launched_at = now;
    m.reachable = false;
    m.healthy = false;
    m.cert_not_after = 0;
    // ended_at_ stays until it runs again: a restart that fails before that gives it no new
    // replace_after, or a member that cannot start on its data would be restarted for ever.
    ++state_.counters.launched_servers;
    std::vector<const Member*> refs;
    for (const auto& [other, o] : state_.members) refs.push_back(&o);
    Persisted(out);  // on record before launch
    out.push_back(LaunchMember{offer.id().value(), m, InitialCluster(refs), false, ClusterToken()});
    Say("warn", "heal",
        fmt::format("restarting {} in place on its volume {} (restart {}): the same etcd member "
                    "{:x} on its own data, no membership change",
                    name, m.volume, m.restarts, m.member_id),
        out, name);
    return true;
  }
  return false;
}

namespace {

// A task that ran etcd (RUNNING, said once etcd serves) or is out of contact since: silence from
// one still starting (a learner just launched, a restart in place) is no sign of being cut off.
bool Served(const Member& m) {
  return m.task_state == mesos::TASK_RUNNING || Uncertain(m.task_state);
}

}  // namespace

void SchedulerCore::ProbePeersIfSilent(Actions& out) {
  const Member* leader = nullptr;
  bool silent = false;
  for (const auto& [name, m] : state_.members) {
    if (m.reachable && m.member_id != 0 && m.member_id == m.leader) leader = &m;
    silent |= !m.volume.empty() && Served(m) && !m.reachable && m.member_id != 0;
  }
  if (leader != nullptr && silent) out.push_back(ProbePeers{leader->name, leader->ClientUrl()});
}

void SchedulerCore::OnPeerView(const PeerView& e, Actions& out) {
  if (!e.active.ok()) return;  // the next probe round asks again
  for (auto& [name, m] : state_.members) {
    auto it = e.active->find(m.member_id);
    if (m.volume.empty() || it == e.active->end() || !Served(m)) continue;
    if (it->second || m.reachable) {
      m.peer_lost_since.reset();
      continue;
    }
    if (m.peer_lost_since) continue;
    m.peer_lost_since = e.now;
    Say("warn", "heal",
        fmt::format("{} is cut off by etcd's own view: its leader {} has no connection to it and "
                    "it does not answer{}; it is restarted in place if it comes back, and "
                    "replaced if it is not back within {}",
                    name, e.name,
                    Uncertain(m.task_state)
                        ? ""
                        : " (Mesos still says " + mesos::TaskState_Name(m.task_state) + ")",
                    ShowDuration(config_.replace_after)),
        out, name);
  }
}

std::set<std::pair<std::string, std::string>> SchedulerCore::DurableVolumes() const {
  std::set<std::pair<std::string, std::string>> out;
  for (const auto& [name, m] : state_.members) {
    if (!m.volume.empty() && !m.agent_id.empty()) out.emplace(m.agent_id, m.volume);
  }
  return out;
}

void SchedulerCore::WatchForgottenVolumes(
    const std::set<std::pair<std::string, std::string>>& before) {
  std::set<std::pair<std::string, std::string>> now = DurableVolumes();
  for (const auto& v : before) {
    if (!now.count(v) && !gone_agents_.count(v.first)) unreleased_.emplace(v, std::nullopt);
  }
}

void SchedulerCore::ExpireReleaseWatch(Time now, Actions& out) {
  for (auto it = unreleased_.begin(); it != unreleased_.end();) {
    if (!it->second) it->second = now;
    if (now - *it->second < kReleaseWatch) {
      ++it;
      continue;
    }
    Say("warn", "heal",
        fmt::format("agent {} has not offered the volume {} of a member no longer ours for {}: "
                    "no longer waiting for it; if that agent comes back, its resources are "
                    "released when they are offered",
                    it->first.first, it->first.second, ShowDuration(kReleaseWatch)),
        out);
    it = unreleased_.erase(it);
  }
}

bool SchedulerCore::ReleaseUnclaimed(const mesos::Offer& offer, Actions& out) {
  ReleaseResources release{offer.id().value(), offer.agent_id().value(), {}, {}, ""};
  std::set<std::string> whose;
  for (const auto& r : offer.resources()) {
    if (ReservationLabel(r, kLabelCluster) != config_.framework_name) continue;
    std::string volume = ReservationLabel(r, kLabelVolume);
    bool claimed = std::any_of(state_.members.begin(), state_.members.end(), [&](const auto& kv) {
      return kv.second.volume == volume && kv.second.agent_id == offer.agent_id().value();
    });
    if (claimed) continue;
    whose.insert(ReservationLabel(r, kLabelMember) + " (" + volume + ")");
    unreleased_.erase({offer.agent_id().value(), volume});
    if (IsVolume(r)) {
      release.destroy.push_back(r);
      mesos::Resource disk = r;
      disk.clear_disk();
      release.unreserve.push_back(disk);
    } else {
      release.unreserve.push_back(r);
    }
  }
  if (release.unreserve.empty()) return false;
  release.why = fmt::format("no member of ours runs on them any more: {}", fmt::join(whose, ", "));
  Say("info", state_.tearing_down ? "admin" : "heal",
      fmt::format("releasing the volume and reservations of {} on agent {}: {}",
                  fmt::join(whose, ", "), offer.agent_id().value(),
                  state_.tearing_down
                      ? "the cluster is being torn down"
                      : "its member was replaced or belongs to an older generation"),
      out);
  out.push_back(std::move(release));
  return true;
}

}  // namespace etcd_mesos::scheduler
