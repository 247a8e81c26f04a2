#include "executor/core/supervisor.h"

#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/member_health.h"
#include "common/overloaded.h"

namespace etcd_mesos::executor::core {
namespace {

// The facts whose change must reach the scheduler at once; raft index and term are left out.
bool SignificantChange(const MemberFacts& a, const MemberFacts& b) {
  return a.healthy != b.healthy || a.serving != b.serving || a.is_learner != b.is_learner ||
         a.leader != b.leader || a.member_id != b.member_id || a.cluster_id != b.cluster_id;
}

// Why an update without a message of its own goes out, in its message: consecutive updates with
// the same `healthy` otherwise look like duplicates to an operator reading the task's statuses.
std::string DescribeChange(const MemberFacts& before, const MemberFacts& now) {
  std::vector<std::string> parts;
  if (before.healthy != now.healthy) parts.push_back(now.healthy ? "healthy" : "unhealthy");
  if (before.serving != now.serving) parts.push_back(now.serving ? "answers" : "does not answer");
  if (before.is_learner != now.is_learner) {
    parts.push_back(now.is_learner ? "a learner" : "promoted to voter");
  }
  if (before.leader != now.leader) {
    parts.push_back(now.leader == 0 ? "sees no leader"
                                    : fmt::format("leader is now {:x}", now.leader));
  }
  if (before.member_id != now.member_id) parts.push_back(fmt::format("member {:x}", now.member_id));
  if (before.cluster_id != now.cluster_id) {
    parts.push_back(fmt::format("cluster {:x}", now.cluster_id));
  }
  return fmt::format("{}", fmt::join(parts, "; "));
}

std::string WithTail(std::string message, const std::string& tail) {
  if (!tail.empty()) message += "; last lines of etcd's log:\n" + tail;
  return message;
}

}  // namespace

std::string_view TimerName(TimerId id) {
  switch (id) {
    case TimerId::kProbe:
      return "probe";
    case TimerId::kRestart:
      return "restart";
    case TimerId::kStopGrace:
      return "stop-grace";
    case TimerId::kReseedDeadline:
      return "reseed-deadline";
  }
  return "?";
}

std::string_view ReseedOutcomeName(ReseedOutcome outcome) {
  switch (outcome) {
    case ReseedOutcome::kReseeded:
      return "reseeded";
    case ReseedOutcome::kBusy:
      return "busy";
    case ReseedOutcome::kNotRunning:
      return "not-running";
    case ReseedOutcome::kFailed:
      return "failed";
  }
  return "?";
}

Actions Supervisor::Handle(const Event& event) {
  Actions out;
  if (task_ == TaskPhase::kDone) return out;  // the shell is exiting; nothing more to decide
  std::visit(
      Overloaded{
          [&](const Launched& e) { OnLaunched(e, out); },
          [&](const EtcdStarted& e) { OnStarted(e, out); },
          [&](const EtcdStartFailed& e) {
            OnExited(e.incarnation, "could not be started: " + e.error, e.log_tail, e.now, out);
          },
          [&](const EtcdExited& e) { OnExited(e.incarnation, e.how, e.log_tail, e.now, out); },
          [&](const ProbeResult& e) { OnProbe(e, out); },
          [&](const KillRequested& e) {
            if (!task_id_ || e.task_id != task_id_->value()) {
              Say(out, Log::Level::kWarn,
                  fmt::format("KILL of unknown task {} ignored", e.task_id));
              return;
            }
            if (task_ != TaskPhase::kActive) return;  // already stopping
            Stop(Final{mesos::TASK_KILLED, "killed: etcd stopped", std::nullopt, 0},
                 e.grace.value_or(options_.default_kill_grace), out);
          },
          [&](const ShutdownRequested& e) {
            if (task_ == TaskPhase::kIdle) {
              task_ = TaskPhase::kDone;
              out.push_back(Exit{0});
              return;
            }
            if (task_ != TaskPhase::kActive) return;
            Stop(Final{mesos::TASK_KILLED, "executor shut down: etcd stopped", std::nullopt, 0},
                 e.grace, out);
          },
          [&](const TimerFired& e) { OnTimer(e, out); },
          [&](const ReseedRequested& e) { OnReseed(e, out); },
          [&](const ReseedListenerFailed& e) {
            if (task_ != TaskPhase::kActive) return;
            Stop(Final{mesos::TASK_FAILED, "the reseed listener could not start: " + e.error,
                       std::nullopt, 1},
                 options_.reseed_stop_grace, out);
          },
          [&](const AgentDisconnected& e) {
            Say(out, Log::Level::kWarn,
                fmt::format("agent connection dropped ({}); etcd keeps running while the "
                            "executor reconnects",
                            e.reason));
          },
          [&](const AgentReconnected&) {
            Say(out, Log::Level::kInfo, "agent connection recovered");
          },
          [&](const AgentLost& e) {
            if (task_ == TaskPhase::kIdle) {
              task_ = TaskPhase::kDone;
              out.push_back(Exit{2});
              return;
            }
            // Nobody can hear a status any more; stop etcd so it does not outlive the task.
            final_.state.reset();
            final_.exit_code = 2;
            if (task_ == TaskPhase::kStopping) return;
            Stop(Final{std::nullopt, "", std::nullopt, 2}, options_.agent_lost_grace, out);
            Say(out, Log::Level::kError,
                fmt::format("agent lost for good ({}); stopping etcd and exiting", e.reason));
          },
      },
      event);
  return out;
}

void Supervisor::OnLaunched(const Launched& e, Actions& out) {
  if (task_id_) {
    mesos::TaskStatus status;
    *status.mutable_task_id() = e.task.task_id();
    status.set_state(mesos::TASK_FAILED);
    status.set_reason(mesos::TaskStatus::REASON_TASK_INVALID);
    status.set_message(
        fmt::format("this executor already runs etcd member task {}; one member "
                    "per executor",
                    task_id_->value()));
    out.push_back(SendStatus{std::move(status)});
    return;
  }
  task_id_ = e.task.task_id();
  auto config = ParseTaskConfig(e.task.data());
  if (!config.ok()) {
    task_ = TaskPhase::kDone;
    SendState(mesos::TASK_FAILED, config.error().message, out,
              mesos::TaskStatus::REASON_TASK_INVALID);
    out.push_back(Exit{1});
    return;
  }
  config_ = std::move(*config);
  task_ = TaskPhase::kActive;
  facts_ = MemberFacts{};
  facts_.name = config_.name;
  facts_.client_url = config_.ClientUrl();
  facts_.peer_url = config_.PeerUrl();
  facts_.reseed_url = config_.ReseedUrl();
  out.push_back(StartReseedListener{config_});
  Start(/*force_new_cluster=*/false, out);
}

void Supervisor::Start(bool force_new_cluster, Actions& out) {
  Disarm(TimerId::kRestart);
  proc_ = Proc::kSpawning;
  pid_.reset();
  ++incarnation_;
  bool new_cluster = !served_once_ && config_.initial_cluster_state == InitialClusterState::kNew;
  out.push_back(StartEtcd{incarnation_, config_, new_cluster, force_new_cluster});
}

void Supervisor::OnStarted(const EtcdStarted& e, Actions& out) {
  if (e.incarnation != incarnation_ || proc_ != Proc::kSpawning) return;
  proc_ = Proc::kRunning;
  pid_ = e.pid;
  if (stop_when_started_) {
    stop_when_started_ = false;
    Terminate(pending_grace_, out);
    return;
  }
  // Once per task, on the first start that succeeds (an earlier attempt may have failed).
  if (!running_sent_ && !starting_sent_) {
    starting_sent_ = true;
    SendState(mesos::TASK_STARTING, fmt::format("etcd started (pid {})", e.pid), out);
  }
  ArmProbe(options_.fast_probe_interval, out);
}

void Supervisor::Terminate(Duration grace, Actions& out) {
  Disarm(TimerId::kProbe);
  if (proc_ == Proc::kSpawning) {
    stop_when_started_ = true;
    pending_grace_ = grace;
    return;
  }
  if (proc_ != Proc::kRunning) return;
  proc_ = Proc::kTerminating;
  out.push_back(SignalEtcd{Signal::kTerm});
  Arm(TimerId::kStopGrace, grace, out);
}

void Supervisor::Stop(Final final, Duration grace, Actions& out) {
  if (reseed_) FailReseed("the task is being stopped", Time{}, out);
  task_ = TaskPhase::kStopping;
  final_ = std::move(final);
  Disarm(TimerId::kRestart);
  Disarm(TimerId::kProbe);
  if (proc_ == Proc::kNone) return Finish(out);
  if (proc_ == Proc::kTerminating) {
    // Already on its way down (a reseed step): the stop's own grace period applies from now.
    Arm(TimerId::kStopGrace, grace, out);
    return;
  }
  Terminate(grace, out);
}

void Supervisor::Finish(Actions& out) {
  for (auto& token : timer_tokens_) token.reset();
  if (final_.state) {
    facts_.serving = false;
    facts_.healthy = false;
    SendState(*final_.state, final_.message, out, final_.reason);
  }
  task_ = TaskPhase::kDone;
  out.push_back(Exit{final_.exit_code});
}

void Supervisor::OnExited(uint64_t incarnation, const std::string& how, const std::string& log_tail,
                          Time now, Actions& out) {
  if (incarnation != incarnation_ || proc_ == Proc::kNone) return;
  bool expected = proc_ == Proc::kTerminating;
  proc_ = Proc::kNone;
  pid_.reset();
  stop_when_started_ = false;
  Disarm(TimerId::kStopGrace);
  Disarm(TimerId::kProbe);
  last_exit_ = how;
  if (task_ == TaskPhase::kStopping) {
    if (final_.state == mesos::TASK_FAILED && !expected) {
      final_.message += "; etcd " + how;
    }
    return Finish(out);
  }
  if (expected && reseed_ && reseed_->step == ReseedStep::kStopOld) {
    Say(out, Log::Level::kInfo, "reseed: etcd stopped; starting it with --force-new-cluster");
    reseed_->step = ReseedStep::kForced;
    return Start(/*force_new_cluster=*/true, out);
  }
  if (expected && reseed_ && reseed_->step == ReseedStep::kStopForced) {
    Say(out, Log::Level::kInfo,
        "reseed: one-member cluster formed; restarting etcd without --force-new-cluster");
    reseed_->step = ReseedStep::kRestarted;
    return Start(/*force_new_cluster=*/false, out);
  }
  if (expected) {
    // A reseed stopped etcd and then gave up: bring it back as it was, no backoff.
    return Start(/*force_new_cluster=*/false, out);
  }
  if (reseed_) FailReseed("etcd " + how, now, out);
  Crashed(how, log_tail, now, out);
}

void Supervisor::Crashed(const std::string& how, const std::string& log_tail, Time now,
                         Actions& out) {
  while (!restarts_.empty() && now - restarts_.front() >= config_.restart_window) {
    restarts_.pop_front();
  }
  facts_.serving = false;
  facts_.healthy = false;
  if (static_cast<int>(restarts_.size()) >= config_.restart_max) {
    final_ = Final{mesos::TASK_FAILED,
                   WithTail(fmt::format("etcd crash loop: {} restarts within {}s, then etcd {}",
                                        restarts_.size(), config_.restart_window.count(), how),
                            log_tail),
                   std::nullopt, 1};
    task_ = TaskPhase::kStopping;
    return Finish(out);
  }
  Duration delay = options_.restart_backoff_initial;
  for (size_t i = 0; i < restarts_.size() && delay < options_.restart_backoff_max; ++i) delay *= 2;
  delay = std::min(delay, options_.restart_backoff_max);
  restarts_.push_back(now);
  std::string message =
      fmt::format("etcd {}; restart {} of at most {} within {}s in {}", how, restarts_.size(),
                  config_.restart_max, config_.restart_window.count(), FormatDuration(delay));
  Say(out, Log::Level::kWarn, message);
  if (running_sent_) ReportFacts(message, out);
  Arm(TimerId::kRestart, delay, out);
}

void Supervisor::OnProbe(const ProbeResult& e, Actions& out) {
  if (e.incarnation != incarnation_ || proc_ != Proc::kRunning) return;
  MemberFacts next = facts_;
  if (e.facts) {
    const ProbeFacts& p = *e.facts;
    next.member_id = p.member_id;
    next.cluster_id = p.cluster_id;
    next.raft_index = p.raft_index;
    next.raft_term = p.raft_term;
    next.leader = p.leader;
    next.is_learner = p.is_learner;
    next.serving = true;
    next.healthy = MemberHealthy(p.leader, !p.errors.empty(), p.health, p.is_learner);
  } else {
    next.serving = false;
    next.healthy = false;
  }
  facts_ = next;
  if (e.facts) served_once_ = true;

  if (reseed_) {
    const ProbeFacts* p = e.facts ? &*e.facts : nullptr;
    bool one_member = p != nullptr && p->member_count == 1u;
    if (reseed_->step == ReseedStep::kForced && one_member && p->leader != 0 &&
        p->leader == p->member_id) {
      reseed_->step = ReseedStep::kStopForced;
      Terminate(options_.reseed_stop_grace, out);
      return;
    }
    if (reseed_->step == ReseedStep::kRestarted && one_member && facts_.healthy) {
      AnswerReseed answer{reseed_->request_id, ReseedOutcome::kReseeded,
                          fmt::format("reseeded: one-member cluster {} at raft index {}",
                                      facts_.cluster_id, facts_.raft_index),
                          facts_, e.now - reseed_->started};
      Disarm(TimerId::kReseedDeadline);
      reseed_.reset();
      Say(out, Log::Level::kInfo, answer.message);
      out.push_back(std::move(answer));
      ReportFacts("reseeded", out);
      ArmProbe(config_.health_interval, out);
      return;
    }
    ArmProbe(options_.fast_probe_interval, out);
    return;
  }

  if (e.facts && !running_sent_) {
    running_sent_ = true;
    ReportFacts("etcd serves on " + config_.ClientUrl(), out);
  } else if (running_sent_) {
    // The reason goes with the update that says etcd stopped answering, once; a message on
    // every failed probe would force an update per probe for as long as etcd stays silent.
    bool newly_silent = !e.facts && last_sent_ && last_sent_->serving;
    if (newly_silent) Say(out, Log::Level::kWarn, "etcd does not answer: " + e.error);
    ReportFacts(newly_silent ? "etcd does not answer: " + e.error : "", out);
  }
  ArmProbe(served_once_ ? config_.health_interval : options_.fast_probe_interval, out);
}

void Supervisor::ReportFacts(const std::string& message, Actions& out) {
  if (!running_sent_) return;
  if (last_sent_ && !SignificantChange(*last_sent_, facts_) && message.empty()) return;
  SendState(mesos::TASK_RUNNING,
            !message.empty() || !last_sent_ ? message : DescribeChange(*last_sent_, facts_), out);
  last_sent_ = facts_;
}

void Supervisor::OnTimer(const TimerFired& e, Actions& out) {
  auto& token = timer_tokens_[static_cast<int>(e.id)];
  if (!token || *token != e.token) return;  // stale: re-armed or disarmed since
  token.reset();
  switch (e.id) {
    case TimerId::kProbe:
      if (proc_ == Proc::kRunning) out.push_back(Probe{incarnation_});
      return;
    case TimerId::kRestart:
      if (task_ == TaskPhase::kActive && proc_ == Proc::kNone) {
        Say(out, Log::Level::kInfo, "restarting etcd in place");
        Start(/*force_new_cluster=*/false, out);
      }
      return;
    case TimerId::kStopGrace:
      if (proc_ == Proc::kTerminating) {
        Say(out, Log::Level::kWarn, "etcd outlived its grace period after SIGTERM; SIGKILL");
        out.push_back(SignalEtcd{Signal::kKill});
      }
      return;
    case TimerId::kReseedDeadline:
      if (reseed_) FailReseed("timed out", e.now, out);
      return;
  }
}

void Supervisor::OnReseed(const ReseedRequested& e, Actions& out) {
  if (task_ != TaskPhase::kActive) {
    out.push_back(AnswerReseed{
        e.request_id, ReseedOutcome::kNotRunning,
        task_ == TaskPhase::kIdle ? "no etcd member runs here yet" : "the task is stopping", facts_,
        Duration{}});
    return;
  }
  if (reseed_) {
    out.push_back(AnswerReseed{e.request_id, ReseedOutcome::kBusy, "a reseed is already running",
                               facts_, Duration{}});
    return;
  }
  reseed_ = Reseed{e.request_id, ReseedStep::kStopOld, e.now};
  Arm(TimerId::kReseedDeadline, e.timeout.value_or(options_.reseed_timeout), out);
  Say(out, Log::Level::kWarn, "reseed requested: stopping etcd");
  facts_.serving = false;
  facts_.healthy = false;
  ReportFacts("reseeding", out);
  switch (proc_) {
    case Proc::kNone:  // in a restart backoff: nothing to stop
      reseed_->step = ReseedStep::kForced;
      Start(/*force_new_cluster=*/true, out);
      return;
    case Proc::kSpawning:
    case Proc::kRunning:
      Terminate(options_.reseed_stop_grace, out);
      return;
    case Proc::kTerminating:
      return;
  }
}

void Supervisor::FailReseed(const std::string& why, Time now, Actions& out) {
  std::string step;
  switch (reseed_->step) {
    case ReseedStep::kStopOld:
      step = "stopping etcd";
      break;
    case ReseedStep::kForced:
      step = "waiting for the one-member cluster (--force-new-cluster)";
      break;
    case ReseedStep::kStopForced:
      step = "stopping the --force-new-cluster run";
      break;
    case ReseedStep::kRestarted:
      step = "waiting for etcd restarted without --force-new-cluster";
      break;
  }
  AnswerReseed answer{reseed_->request_id, ReseedOutcome::kFailed,
                      fmt::format("reseed failed while {}: {}", step, why), facts_,
                      now == Time{} ? Duration{} : now - reseed_->started};
  Say(out, Log::Level::kError, answer.message);
  out.push_back(std::move(answer));
  Disarm(TimerId::kReseedDeadline);
  reseed_.reset();
  if (proc_ == Proc::kRunning && task_ == TaskPhase::kActive) {
    ArmProbe(config_.health_interval, out);
  }
}

void Supervisor::ArmProbe(Duration after, Actions& out) { Arm(TimerId::kProbe, after, out); }

void Supervisor::Arm(TimerId id, Duration after, Actions& out) {
  uint64_t token = ++next_token_;
  timer_tokens_[static_cast<int>(id)] = token;
  out.push_back(ArmTimer{id, token, after});
}

void Supervisor::Disarm(TimerId id) { timer_tokens_[static_cast<int>(id)].reset(); }

mesos::TaskStatus Supervisor::NewStatus(mesos::TaskState state) const {
  mesos::TaskStatus status;
  if (task_id_) *status.mutable_task_id() = *task_id_;
  status.set_state(state);
  return status;
}

void Supervisor::SendState(mesos::TaskState state, const std::string& message, Actions& out,
                           std::optional<mesos::TaskStatus::Reason> reason) {
  mesos::TaskStatus status = NewStatus(state);
  if (!message.empty()) status.set_message(message);
  if (reason) status.set_reason(*reason);
  if (state == mesos::TASK_RUNNING) status.set_healthy(facts_.healthy);
  if (task_ != TaskPhase::kIdle && !config_.name.empty()) {
    status.set_data(EncodeMemberFacts(facts_));
  }
  out.push_back(SendStatus{std::move(status)});
}

void Supervisor::Say(Actions& out, Log::Level level, std::string message) {
  out.push_back(Log{level, std::move(message)});
}

}  // namespace etcd_mesos::executor::core
