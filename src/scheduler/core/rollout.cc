// SchedulerCore's rollouts (see scheduler_core.h): a change of what members are launched with
// (etcd's version or flags, the task's resources) or a rolling restart asked by the operator is
// carried out one member at a time. Each step adds the new member first when a spare agent has
// room (the cluster keeps its fault tolerance throughout), else removes the old one first (as a
// heal would after its death); followers go first and the leader last, after leadership was
// handed to a member that already runs the new configuration.
#include <algorithm>

#include <fmt/format.h>

#include "common/duration.h"
#include "mesos/task_state.h"
#include "scheduler/core/rules.h"
#include "scheduler/core/scheduler_core.h"

namespace etcd_mesos::scheduler {

namespace {

// After a failed hand-over or removal, the next attempt waits this long.
constexpr Millis kRolloutRetry{5'000};

bool HasLearner(const ClusterView& view) {
  return std::any_of(view.members.begin(), view.members.end(),
                     [](const EtcdMember& m) { return m.is_learner; });
}

}  // namespace

std::string SchedulerCore::EffectiveLaunch() const {
  if (config_.launch_config.empty()) return "";
  std::string launch = config_.launch_config;
  if (state_.restarts > 0) launch += fmt::format("+restart{}", state_.restarts);
  return launch + CaLaunchSuffix(state_.ca) + CaFilesLaunchSuffix(state_.ca_files);
}

// What a CA rotation adds to the launch configuration: each phase makes every member stale once.
// The last phase names the new generation as a finished rotation does, so that finishing it
// rolls nothing more; a cluster that never rotated keeps the configuration it had.
std::string CaLaunchSuffix(const CaRotation& ca) {
  switch (ca.phase) {
    case CaPhase::kNone:
      return ca.generation == 0 ? "" : fmt::format("+ca{}", ca.generation);
    case CaPhase::kTrustBoth:
      return fmt::format("+ca{}-trust", ca.generation + 1);
    case CaPhase::kNewIssuer:
      return fmt::format("+ca{}-issue", ca.generation + 1);
    case CaPhase::kDropOld:
      return fmt::format("+ca{}", ca.generation + 1);
  }
  return "";
}

std::string DescribeCaRotation(const CaRotation& ca) {
  uint64_t next = ca.generation + 1;
  switch (ca.phase) {
    case CaPhase::kNone:
      return "";
    case CaPhase::kTrustBoth:
      return fmt::format(
          "CA rotation to CA {}, phase 1 of 3: every member comes to trust the old "
          "and the new CA",
          next);
    case CaPhase::kNewIssuer:
      return fmt::format(
          "CA rotation to CA {}, phase 2 of 3: every member gets certificates of the new CA", next);
    case CaPhase::kDropOld:
      return fmt::format(
          "CA rotation to CA {}, phase 3 of 3: every member stops trusting the old "
          "CA",
          next);
  }
  return "";
}

int SchedulerCore::KeepSize() const {
  return TargetSize() + (rollout_step_ && rollout_step_->surge ? 1 : 0);
}

bool SchedulerCore::CertificateExpiring(const Member& m) const {
  return CertificateRenewalDue(m, unix_now_, config_.cert_renew_before);
}

std::vector<std::string> SchedulerCore::StaleMembers() const {
  std::vector<std::string> stale;
  std::string target = EffectiveLaunch();
  if (target.empty() || !view_) return stale;
  for (const auto& [name, m] : state_.members) {
    if (MaybeAlive(m.task_state) && InEtcd(m, view_->members) &&
        (m.launch_config != target || CertificateExpiring(m))) {
      stale.push_back(name);
    }
  }
  return LeaderLast(std::move(stale));
}

bool SchedulerCore::Renewing() const {
  return std::any_of(state_.members.begin(), state_.members.end(), [this](const auto& kv) {
    return MaybeAlive(kv.second.task_state) && CertificateExpiring(kv.second);
  });
}

// Whether every member that may run has said which etcd it runs (when the served one is known),
// so that a rollout is judged against all of them.
bool SchedulerCore::VersionsKnown() const {
  if (config_.etcd_version.empty()) return true;
  return std::all_of(state_.members.begin(), state_.members.end(), [](const auto& kv) {
    return !MaybeAlive(kv.second.task_state) || !kv.second.etcd_version.empty();
  });
}

std::optional<std::string> SchedulerCore::VersionRefused() const {
  if (config_.etcd_version.empty()) return std::nullopt;
  for (const auto& [name, m] : state_.members) {
    if (!MaybeAlive(m.task_state) || m.etcd_version.empty()) continue;
    if (auto why = RefusedVersionChange(m.etcd_version, config_.etcd_version)) {
      return fmt::format("{} (it runs {})", *why, name);
    }
  }
  return std::nullopt;
}

std::string SchedulerCore::RolloutBlocked() const {
  if (!healthy_) return "the cluster is not healthy: " + health_reason_;
  if (in_flight_ || pending_add_) return "a membership change is in flight";
  if (backup_) return "a backup is under way";
  if (maintenance_run_) return "maintenance is under way";
  if (!view_) return "etcd's member list is not known yet";
  if (HasLearner(*view_)) return "a learner is still catching up";
  int voters = Voters();
  if (voters != TargetSize()) {
    return fmt::format("the cluster has {} voters, not its size {}", voters, TargetSize());
  }
  if (CountLeaderVotes(state_.members).following < voters)
    return "not every voter follows the leader";
  return "";
}

RolloutView SchedulerCore::rollout() const {
  RolloutView v;
  v.target_summary = config_.launch_summary;
  if (state_.restarts > 0)
    v.target_summary += fmt::format(" (rolling restart {})", state_.restarts);
  if (state_.ca.phase != CaPhase::kNone)
    v.target_summary += fmt::format(" ({})", DescribeCaRotation(state_.ca));
  v.total = state_.rollout_total;
  v.pending = StaleMembers();
  if (state_.rollout_target.empty() || state_.rollout_target != EffectiveLaunch()) {
    v.state = v.pending.empty() ? "idle" : "waiting";
    if (!v.pending.empty()) v.reason = "not started yet";
    return v;
  }
  if (!state_.rollout_stopped.empty()) {
    v.state = "stopped";
    v.reason = state_.rollout_stopped;
  } else if (state_.rollout_done) {
    v.state = "done";
  } else if (rollout_step_) {
    v.state = "running";
    static constexpr const char* kPhase[] = {"adding its successor", "handing over", "removing it",
                                             "waiting for the cluster to settle"};
    v.step = fmt::format("replacing {}: {}{}", rollout_step_->member, kPhase[rollout_step_->phase],
                         rollout_step_->surge ? "" : " (no spare agent: replaced in place)");
  } else {
    v.state = "running";
    v.reason = RolloutBlocked();
  }
  return v;
}

// Members recorded by a scheduler that did not label launch configurations run what it was
// started with, which is not known: they are taken to run the current one rather than all
// replaced at once by an upgrade of etcd-mesos itself.
void SchedulerCore::AdoptUnlabelledMembers(Actions& out) {
  std::string target = EffectiveLaunch();
  if (target.empty()) return;
  std::vector<std::string> adopted;
  for (auto& [name, m] : state_.members) {
    if (!m.launch_config.empty()) continue;
    m.launch_config = target;
    adopted.push_back(name);
  }
  if (adopted.empty()) return;
  Say("info", "rollout",
      fmt::format("{} recorded without a launch configuration: taken to run {}",
                  fmt::join(adopted, ", "), config_.launch_summary),
      out);
}

void SchedulerCore::OnAdminRollout(const AdminRollout& e, Actions& out) {
  auto answer = [&](int code, std::string text) {
    out.push_back(AnswerAdmin{e.request, code, std::move(text)});
  };
  if (config_.launch_config.empty()) return answer(409, "refused: rollouts are off");
  if (!state_.bootstrapped || total_loss_) return answer(409, "refused: no cluster is running");
  // Under way: a step runs, or members are stale (a rollout runs or begins at the next tick),
  // unless the rollout to this configuration stopped.
  bool stopped = state_.rollout_target == EffectiveLaunch() && !state_.rollout_stopped.empty();
  bool under_way = rollout_step_ || (!stopped && !StaleMembers().empty());
  if (e.command == RolloutCommand::kRotateCa) {
    if (!ClusterTls()) return answer(409, "refused: the members do not serve TLS (--tls=off)");
    if (state_.ca.phase != CaPhase::kNone) {
      return answer(409, "refused: a CA rotation is under way (" + DescribeCaRotation(state_.ca) +
                             "); GET /rollout");
    }
    if (under_way) return answer(409, "refused: a rollout is under way; GET /rollout");
    state_.ca.phase = CaPhase::kTrustBoth;
    Persisted(out);
    Say("warn", "rollout",
        fmt::format("operator asked for a rotation of the members' CA: three rollouts, each "
                    "replacing every member one at a time, the leader last; now {}",
                    DescribeCaRotation(state_.ca)),
        out);
    return answer(202, fmt::format("rotating the members' CA to CA {}: 3 rollouts of {} members "
                                   "each; GET /rollout\n",
                                   state_.ca.generation + 1, StaleMembers().size()));
  }
  if (e.command == RolloutCommand::kNextCaPhase) {
    if (state_.ca.phase == CaPhase::kNone) {
      return answer(409, "refused: no CA rotation is under way");
    }
    if (state_.ca.phase == CaPhase::kDropOld || under_way ||
        state_.rollout_target != EffectiveLaunch() || !state_.rollout_done) {
      return answer(409, "refused: not yet: " + DescribeCaRotation(state_.ca) + "; GET /rollout");
    }
    state_.ca.phase =
        state_.ca.phase == CaPhase::kTrustBoth ? CaPhase::kNewIssuer : CaPhase::kDropOld;
    Persisted(out);
    Say("warn", "rollout", "operator moved the CA rotation on: " + DescribeCaRotation(state_.ca),
        out);
    return answer(202, fmt::format("{}: 1 rollout of {} members; GET /rollout\n",
                                   DescribeCaRotation(state_.ca), StaleMembers().size()));
  }
  if (e.command == RolloutCommand::kRestart) {
    if (under_way) return answer(409, "refused: a rollout is under way; GET /rollout");
    ++state_.restarts;
    Persisted(out);
    Say("warn", "rollout",
        fmt::format("operator asked for a rolling restart: every member is replaced, one at a "
                    "time, the leader last"),
        out);
    return answer(202, fmt::format("rolling restart {} of {} members; GET /rollout",
                                   state_.restarts, StaleMembers().size()));
  }
  if (state_.rollout_stopped.empty() || state_.rollout_target != EffectiveLaunch()) {
    return answer(409, "refused: no rollout is stopped");
  }
  if (auto why = VersionRefused()) return answer(409, "refused: " + *why);
  state_.rollout_stopped.clear();
  Persisted(out);
  Say("warn", "rollout", "operator resumed the rollout", out);
  answer(202, fmt::format("resumed; {} members to replace; GET /rollout", StaleMembers().size()));
}

void SchedulerCore::MaybeRollout(Time now, Actions& out) {
  if (!MayAct() || total_loss_ || !state_.bootstrapped || !view_) return;
  std::string target = EffectiveLaunch();
  if (target.empty()) return;
  std::vector<std::string> stale = StaleMembers();
  // A new configuration, or (after a rollout that finished) certificates about to expire.
  if (state_.rollout_target != target || (state_.rollout_done && !stale.empty())) {
    if (stale.empty() || !VersionsKnown()) return;
    BeginRollout(target, stale.size(), now, out);
  }
  if (state_.rollout_done || !state_.rollout_stopped.empty()) return;
  if (rollout_step_) return StepRollout(now, out);
  if (!stale.empty()) {
    StartRolloutStep(now, out);
    return;
  }
  if (!RolloutBlocked().empty()) return;  // done once the last step has settled
  state_.rollout_done = true;
  ++state_.counters.rollouts_done;
  Persisted(out);
  Say("info", "rollout",
      fmt::format("rollout done: {} members replaced; the cluster runs {}", state_.rollout_total,
                  config_.launch_summary),
      out);
  AdvanceCaRotation(out);
}

// A CA rotation's rollout is done: the operator is told what to do before the next phase, or the
// rotation is over.
void SchedulerCore::AdvanceCaRotation(Actions& out) {
  CaRotation& ca = state_.ca;
  switch (ca.phase) {
    case CaPhase::kNone:
      return;
    case CaPhase::kTrustBoth:
      Say("warn", "rollout",
          fmt::format("CA rotation to CA {}: every member trusts the old and the new CA. Give "
                      "every client the new trust (GET /ca.crt holds both), then POST "
                      "/rotate-ca/next: members will serve certificates of the new CA",
                      ca.generation + 1),
          out);
      return;
    case CaPhase::kNewIssuer:
      Say("warn", "rollout",
          fmt::format("CA rotation to CA {}: every member has certificates of the new CA and "
                      "trusts both. Give every client a certificate of the new CA (GET "
                      "/client-cert), then POST /rotate-ca/next: members will refuse the old CA",
                      ca.generation + 1),
          out);
      return;
    case CaPhase::kDropOld:
      ca.phase = CaPhase::kNone;
      ++ca.generation;
      Persisted(out);
      Say("info", "rollout",
          fmt::format("CA rotation done: every member has certificates of CA {} and trusts it "
                      "alone",
                      ca.generation),
          out);
      return;
  }
}

void SchedulerCore::BeginRollout(const std::string& target, size_t stale, Time now, Actions& out) {
  state_.rollout_target = target;
  state_.rollout_total = stale;
  state_.rollout_done = false;
  state_.rollout_stopped.clear();
  rollout_step_.reset();
  if (auto why = VersionRefused()) {
    StopRollout("refused: " + *why, out);
    return;
  }
  Persisted(out);
  std::string what =
      Renewing() ? fmt::format("{} with certificates renewed (some expire within {})",
                               config_.launch_summary, ShowDuration(config_.cert_renew_before))
                 : config_.launch_summary;
  Say("warn", "rollout",
      fmt::format("rolling out {} to {} members, one at a time, followers first and the leader "
                  "last",
                  what, stale),
      out);
  if (config_.backups) StartBackup(now, "before the rollout", /*allow_unhealthy=*/false, out);
}

bool SchedulerCore::StartRolloutStep(Time now, Actions& out) {
  if (!RolloutBlocked().empty()) return false;
  std::vector<std::string> stale = StaleMembers();
  if (stale.empty()) return false;
  rollout_step_ = RolloutStep{stale.front(), /*surge=*/true, RolloutStep::kAdd, now, now};
  Say("info", "rollout",
      fmt::format("rollout {} of {}: replacing {}; its successor is added first",
                  state_.rollout_total - stale.size() + 1, state_.rollout_total, stale.front()),
      out, stale.front());
  UpdateOfferInterest(out);
  return true;
}

void SchedulerCore::StepRollout(Time now, Actions& out) {
  RolloutStep& step = *rollout_step_;
  if (now - step.since > config_.rollout_step_timeout) {
    std::string blocked = RolloutBlocked();
    StopRollout(fmt::format("replacing {} did not finish within {} s{}", step.member,
                            config_.rollout_step_timeout.count() / 1000,
                            blocked.empty() ? "" : ": " + blocked),
                out);
    return;
  }
  auto it = state_.members.find(step.member);
  bool in_etcd = it != state_.members.end() && MaybeAlive(it->second.task_state) &&
                 InEtcd(it->second, view_->members);
  if (!in_etcd && step.phase != RolloutStep::kSettle) {
    // Its task ended before the removal's answer came (our kill and our removal race), or it
    // died and a heal removed it: the cluster goes back to its size.
    if (step.phase == RolloutStep::kRemoving) ++state_.counters.members_rolled;
    step.surge = false;
    step.phase = RolloutStep::kSettle;
    step.phase_since = now;
    Persisted(out);
    UpdateOfferInterest(out);
  }
  switch (step.phase) {
    case RolloutStep::kAdd: {
      bool grown = healthy_ && !in_flight_ && !pending_add_ && !HasLearner(*view_) &&
                   Voters() == TargetSize() + 1 &&
                   CountLeaderVotes(state_.members).following == Voters();
      if (step.surge && grown) {
        step.phase = RolloutStep::kHandOver;
        step.phase_since = now;
        return HandOver(now, out);
      }
      bool no_spare = !pending_add_ && !in_flight_ && !HasLearner(*view_) &&
                      Voters() == TargetSize() &&
                      now - step.phase_since >= config_.rollout_surge_wait;
      if (no_spare) {
        step.surge = false;
        step.phase = RolloutStep::kHandOver;
        step.phase_since = now;
        Say("warn", "rollout",
            fmt::format("no spare agent offered room for {}'s successor within {} s: replacing "
                        "it in place (one voter fewer until its successor is promoted)",
                        step.member, config_.rollout_surge_wait.count() / 1000),
            out, step.member);
        UpdateOfferInterest(out);
        return HandOver(now, out);
      }
      return;
    }
    case RolloutStep::kHandOver:
      return HandOver(now, out);
    case RolloutStep::kRemoving:
      return;  // until etcd no longer lists it
    case RolloutStep::kSettle:
      if (!RolloutBlocked().empty()) return;
      Say("info", "rollout", fmt::format("{} replaced; the cluster is whole again", step.member),
          out, step.member);
      rollout_step_.reset();
      return;
  }
}

// Takes the old member out: leadership first handed to a healthy follower (one that runs the new
// configuration when there is one), then the removal, only while the rest keeps a quorum.
void SchedulerCore::HandOver(Time now, Actions& out) {
  RolloutStep& step = *rollout_step_;
  if (!healthy_ || in_flight_ || pending_add_ || HasLearner(*view_)) return;
  if (step.retry_at && now < *step.retry_at) return;
  step.retry_at.reset();
  const Member& old = state_.members.at(step.member);
  LeaderVotes votes = CountLeaderVotes(state_.members);
  int voters = Voters();
  if (votes.following < voters) return;
  if (old.member_id != 0 && old.member_id == votes.leader) {
    const Member* successor = nullptr;
    for (const auto& [name, m] : state_.members) {
      if (name == step.member || !MaybeVoter(m) || !m.healthy || m.member_id == 0) continue;
      if (m.leader != votes.leader || !InSync(m.raft_index, old.raft_index)) continue;
      bool better = successor == nullptr || (m.launch_config == EffectiveLaunch() &&
                                             successor->launch_config != EffectiveLaunch());
      if (better) successor = &m;
    }
    if (successor == nullptr) return;
    in_flight_ = InFlight{MembershipOp::kMoveLeader, successor->name, now};
    std::vector<std::string> urls{old.ClientUrl()};  // MoveLeader is the leader's to do
    for (const std::string& url : ClientUrlsOfHealthy()) {
      if (url != old.ClientUrl()) urls.push_back(url);
    }
    out.push_back(ChangeMembership{MembershipOp::kMoveLeader, successor->name, successor->member_id,
                                   "", urls});
    Say("info", "rollout",
        fmt::format("moving leadership from {} to {} before replacing {}", step.member,
                    successor->name, step.member),
        out, step.member);
    return;
  }
  if (!step.surge && !RemovalKeepsQuorum(voters, votes.following - 1)) return;
  const EtcdMember* em = nullptr;
  for (const auto& e : view_->members) {
    if (OursFor(state_.members, e) == &old) em = &e;
  }
  if (em == nullptr) return;
  step.phase = RolloutStep::kRemoving;
  step.phase_since = now;
  std::string why = old.launch_config == EffectiveLaunch()
                        ? fmt::format(
                              "rollout: its certificates expire within {}; replaced by a "
                              "member with new ones",
                              ShowDuration(config_.cert_renew_before))
                        : "rollout: replaced by a member launched with " + config_.launch_summary;
  RemoveMember(*em, &old, why, now, out);
}

void SchedulerCore::OnMoveLeader(const MembershipResult& e, Actions& out) {
  if (!e.status.ok()) {
    if (rollout_step_) rollout_step_->retry_at = e.now + kRolloutRetry;
    Say("warn", "rollout",
        fmt::format("moving leadership to {} failed: {}; trying again", e.name,
                    e.status.error().message),
        out, e.name);
    return;
  }
  Say("info", "rollout", fmt::format("leadership moved to {}", e.name), out, e.name);
  ProbeNow(e.now, out);  // the removal waits until the probes see the new leader
}

// The member a step replaces is out of etcd: the cluster goes back to its size at once (an offer
// answered before the next tick must not bring a fifth member).
void SchedulerCore::RolloutRemoved(const MembershipResult& e) {
  if (!rollout_step_ || rollout_step_->member != e.name) return;
  if (rollout_step_->phase != RolloutStep::kRemoving) return;
  ++state_.counters.members_rolled;
  rollout_step_->surge = false;
  rollout_step_->phase = RolloutStep::kSettle;
  rollout_step_->phase_since = e.now;
}

void SchedulerCore::RolloutRemovalFailed(const MembershipResult& e) {
  if (!rollout_step_ || rollout_step_->member != e.name) return;
  if (rollout_step_->phase != RolloutStep::kRemoving) return;
  rollout_step_->phase = RolloutStep::kHandOver;
  rollout_step_->retry_at = e.now + kRolloutRetry;
}

void SchedulerCore::StopRollout(const std::string& why, Actions& out) {
  std::string member = rollout_step_ ? rollout_step_->member : "";
  rollout_step_.reset();
  state_.rollout_stopped = why;
  ++state_.counters.rollouts_stopped;
  Persisted(out);
  Say("error", "rollout",
      "ROLLOUT STOPPED: " + why +
          ". Members already replaced stay; fix the cause, then POST /rollout/resume",
      out, member);
  UpdateOfferInterest(out);
}

}  // namespace etcd_mesos::scheduler
