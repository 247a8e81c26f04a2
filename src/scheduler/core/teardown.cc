// Teardown (POST /teardown, `etcd-mesos-scheduler teardown`): the cluster is stopped for good and
// everything it holds on the Mesos cluster given back. Mesos's own TEARDOWN would kill the tasks,
// but not release a durable member's volume and reservations: those belong to the role and
// outlive the framework, and once it is gone nothing offers them to it again. So the core kills
// every task first, releases each volume when its agent offers it back, waits for an offer
// without them to confirm the release, and only then asks the shell to remove its records and
// tear the framework down. The flag is on record before the first kill, so a scheduler restarted
// halfway finishes the teardown instead of healing the cluster back.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/duration.h"
#include "scheduler/core/rules.h"
#include "scheduler/core/scheduler_core.h"

namespace etcd_mesos::scheduler {
namespace {

constexpr double kTeardownRefuseSeconds = 1;  // offers again soon: releases are confirmed so

// Admin commands refused while a teardown runs (the teardown itself is answered by its handler).
template <typename E>
constexpr bool kIsAdminCommand =
    std::is_same_v<E, AdminReseed> || std::is_same_v<E, AdminStartFresh> ||
    std::is_same_v<E, AdminBackup> || std::is_same_v<E, AdminRestore> ||
    std::is_same_v<E, AdminResize> || std::is_same_v<E, AdminDefrag> ||
    std::is_same_v<E, AdminRollout>;

}  // namespace

TeardownView SchedulerCore::teardown() const {
  TeardownView view;
  view.active = state_.tearing_down;
  if (!view.active) return view;
  for (const auto& [name, m] : state_.members) view.tasks += MaybeAlive(m.task_state) ? 1 : 0;
  view.volumes = unreleased_.size();
  for (const auto& [name, m] : state_.members) view.volumes += m.volume.empty() ? 0 : 1;
  view.confirming = releases_unconfirmed_.size();
  view.released = teardown_released_;
  view.finished = teardown_finished_;
  return view;
}

bool SchedulerCore::TeardownWantsOffers() const {
  return config_.durable() && !teardown_finished_ &&
         (!state_.members.empty() || !unreleased_.empty() || !releases_unconfirmed_.empty());
}

bool SchedulerCore::RefusedWhileTearingDown(const Event& event, Actions& out) {
  if (!state_.tearing_down) return false;
  return std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (kIsAdminCommand<E>) {
          out.push_back(AnswerAdmin{e.request, 409,
                                    "refused: the cluster is being torn down (POST /teardown); "
                                    "see GET /stats for its progress"});
          return true;
        } else {
          return false;
        }
      },
      event);
}

void SchedulerCore::OnAdminTeardown(const AdminTeardown& e, Actions& out) {
  if (!started_) {
    out.push_back(AnswerAdmin{e.request, 503, "the state is not loaded yet; try again shortly"});
    return;
  }
  if (state_.tearing_down) {
    TeardownView view = teardown();
    out.push_back(
        AnswerAdmin{e.request, 202,
                    fmt::format("already tearing down: {} task(s) to end, {} volume(s) to release",
                                view.tasks, view.volumes)});
    return;
  }
  size_t tasks = 0, volumes = 0;
  for (const auto& [name, m] : state_.members) {
    tasks += MaybeAlive(m.task_state) ? 1 : 0;
    volumes += m.volume.empty() ? 0 : 1;
  }
  if (volumes > 0 && !config_.durable()) {
    // Mesos offers a role's reservations only to frameworks of that role: run so, this
    // scheduler would kill the members and then wait in vain for their volumes.
    out.push_back(AnswerAdmin{
        e.request, 409,
        fmt::format("refused: {} member(s) hold persistent volumes reserved for a role, but this "
                    "scheduler runs with --role=*, so Mesos would never offer them to it; run "
                    "it with the --role the cluster runs with",
                    volumes)});
    return;
  }
  state_.tearing_down = true;
  Persisted(out);  // on record before the first kill
  Say("warn", "admin",
      fmt::format("operator asked for a TEARDOWN of {}: killing {} task(s), then releasing {} "
                  "volume(s) and their reservations; then the state is removed and the framework "
                  "torn down. A scheduler started after that starts a new, empty cluster",
                  config_.framework_name, tasks, volumes),
      out);
  out.push_back(AnswerAdmin{
      e.request, 202,
      fmt::format("tearing down: killing {} task(s), releasing {} volume(s); the scheduler exits "
                  "once done (at most {}); GET /stats shows the progress",
                  tasks, volumes, ShowDuration(kTeardownWait))});
  BeginTeardown(e.now, out);
}

void SchedulerCore::BeginTeardown(Time now, Actions& out) {
  teardown_since_ = now;
  // Whatever was under way stops: nothing may heal the cluster back, or launch on an offer held.
  state_.reseed.reset();
  reseed_waiting_.reset();
  rollout_step_.reset();
  if (pending_add_) {
    if (!pending_add_->offer_id.empty()) {
      out.push_back(DeclineOffer{pending_add_->offer_id, kTeardownRefuseSeconds});
    }
    pending_add_.reset();
  }
  for (const auto& o : gathered_) out.push_back(DeclineOffer{o.id().value(), 0});
  gathered_.clear();
  healthy_ = false;
  health_reason_ = "tearing down";
  // The interest speaks again: a durable cluster revives (offers declined before may be filtered
  // for a while; revived, the volumes come back at once), any other suppresses.
  wants_offers_ = !config_.durable();
  TeardownStep(now, out);
}

void SchedulerCore::TeardownStep(Time now, Actions& out) {
  if (!started_ || teardown_finished_) return;
  if (!teardown_since_) teardown_since_ = now;
  bool forgot = false;
  for (auto it = state_.members.begin(); it != state_.members.end();) {
    const Member& m = it->second;
    if (Gone(m.task_state)) {
      // Its volume is watched for until released: now, not after this event (Handle's
      // WatchForgottenVolumes), or the teardown below would think nothing is left to release.
      if (!m.volume.empty() && !gone_agents_.count(m.agent_id)) {
        unreleased_.emplace(std::make_pair(m.agent_id, m.volume), std::nullopt);
      }
      it = state_.members.erase(it);
      forgot = true;
      continue;
    }
    if (connected_) Kill(m.task_id, m.agent_id, "the cluster is being torn down", now, out);
    ++it;
  }
  if (forgot) Persisted(out);
  UpdateOfferInterest(out);
  bool waited_out = now - *teardown_since_ >= kTeardownWait;
  bool done = state_.members.empty() && unreleased_.empty() && releases_unconfirmed_.empty();
  if (!connected_ || (!done && !waited_out)) return;

  std::vector<std::string> left;
  for (const auto& [name, m] : state_.members) {
    left.push_back(fmt::format("{}: task {} on agent {} did not end ({})", name, m.task_id,
                               m.agent_id, mesos::TaskState_Name(m.task_state)));
    if (!m.volume.empty()) {
      left.push_back(
          fmt::format("volume {} on agent {}, with its reservations", m.volume, m.agent_id));
    }
  }
  for (const auto& [where, since] : unreleased_) {
    left.push_back(
        fmt::format("volume {} on agent {}, with its reservations: the agent did not "
                    "offer it",
                    where.second, where.first));
  }
  for (const auto& [agent, sent] : releases_unconfirmed_) {
    left.push_back(fmt::format("agent {}: a release was sent but no offer confirmed it", agent));
  }
  teardown_finished_ = true;
  std::string summary =
      left.empty() ? fmt::format("teardown of {} done: every task ended, {} volume(s) released",
                                 config_.framework_name, teardown_released_)
                   : fmt::format(
                         "teardown of {} gave up waiting after {}: {} volume(s) released, {} "
                         "thing(s) left behind: {}",
                         config_.framework_name, ShowDuration(kTeardownWait), teardown_released_,
                         left.size(), fmt::join(left, "; "));
  Say(left.empty() ? "info" : "warn", "admin", summary, out);
  out.push_back(FinishTeardown{std::move(summary), std::move(left)});
}

void SchedulerCore::TeardownOffers(const std::vector<mesos::Offer>& offers, Time now,
                                   Actions& out) {
  for (const auto& o : offers) {
    const std::string& agent = o.agent_id().value();
    if (config_.durable() && !teardown_finished_ && ReleaseUnclaimed(o, out)) {
      teardown_released_ += std::get<ReleaseResources>(out.back()).destroy.size();
      releases_unconfirmed_[agent] = now;
      continue;
    }
    // An offer of that agent without our reservations: what was released there is gone.
    if (!HoldsReservationsOf(o, config_.framework_name)) releases_unconfirmed_.erase(agent);
    out.push_back(DeclineOffer{o.id().value(), kTeardownRefuseSeconds});
  }
  TeardownStep(now, out);
}

}  // namespace etcd_mesos::scheduler
