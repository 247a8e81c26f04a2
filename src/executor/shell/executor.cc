#include "executor/shell/executor.h"

#include <signal.h>

#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "common/duration.h"
#include "common/overloaded.h"
#include "executor/shell/command_line.h"
#include "executor/shell/member_tls.h"
#include "executor/shell/restore.h"

namespace etcd_mesos::executor::shell {

Executor::Executor(boost::asio::io_context& io, mesos_client::ExecutorEnvironment env,
                   ExecutorOptions options)
    : io_(io),
      env_(std::move(env)),
      options_(std::move(options)),
      sandbox_(env_.sandbox.empty() ? env_.directory : env_.sandbox),
      supervisor_(options_.core),
      etcd_(io),
      reseed_(io, ReseedListener::Callbacks{
                      [this] { return supervisor_.facts(); },
                      [this](uint64_t id, std::optional<std::chrono::seconds> timeout) {
                        std::optional<Duration> t;
                        if (timeout) t = *timeout;
                        Feed(core::ReseedRequested{id, t, Now()});
                      }}),
      signals_(io, SIGTERM, SIGINT),
      exit_timer_(io) {
  for (auto& t : timers_) t = std::make_unique<boost::asio::steady_timer>(io);
}

Executor::~Executor() {
  *alive_ = false;
  if (client_) client_->Stop();
  reseed_.Stop();
  etcd_.KillNow();
}

void Executor::Start() {
  mesos_client::ExecutorClient::Callbacks cb;
  cb.on_subscribed = [this](const mesos::executor::Event::Subscribed& s) {
    spdlog::info("subscribed to agent {} ({})", s.agent_info().id().value(),
                 s.agent_info().hostname());
    if (subscribed_once_) Feed(core::AgentReconnected{Now()});
    subscribed_once_ = true;
  };
  cb.on_launch = [this](const mesos::TaskInfo& task) {
    spdlog::info("launch of task {}", task.task_id().value());
    task_id_ = task.task_id().value();
    Feed(core::Launched{task, Now()});
  };
  cb.on_launch_group = [this](const mesos::TaskGroupInfo& group) {
    for (const auto& task : group.tasks()) {
      mesos::TaskStatus status;
      *status.mutable_task_id() = task.task_id();
      status.set_state(mesos::TASK_FAILED);
      status.set_reason(mesos::TaskStatus::REASON_TASK_INVALID);
      status.set_message("etcd-mesos-executor runs single tasks, not task groups");
      (void)client_->SendUpdate(status);
    }
  };
  cb.on_kill = [this](const mesos::executor::Event::Kill& kill) {
    std::optional<Duration> grace;
    if (kill.has_kill_policy() && kill.kill_policy().has_grace_period()) {
      grace = std::chrono::nanoseconds(kill.kill_policy().grace_period().nanoseconds());
    }
    spdlog::info("KILL of task {}", kill.task_id().value());
    Feed(core::KillRequested{kill.task_id().value(), grace, Now()});
  };
  cb.on_acknowledged = [this](const mesos::executor::Event::Acknowledged&) { MaybeFinishExit(); };
  cb.on_message = [](const std::string& data) {
    spdlog::info("framework message of {} bytes ignored", data.size());
  };
  cb.on_shutdown = [this] {
    // Leave a margin before the agent's own SIGTERM/SIGKILL for the final update.
    Duration grace = env_.shutdown_grace_period;
    Duration margin = std::min<Duration>(grace / 2, std::chrono::seconds(1));
    spdlog::info("SHUTDOWN from the agent: stopping etcd within {} of the {} grace period",
                 FormatDuration(grace - margin), FormatDuration(grace));
    shutdown_ = true;
    Feed(core::ShutdownRequested{grace - margin, Now()});
  };
  cb.on_calls_done = [this] { MaybeFinishExit(); };
  cb.on_error = [](const std::string& message) { spdlog::error("agent error: {}", message); };
  cb.on_disconnected = [this](const Error& e) { Feed(core::AgentDisconnected{e.message, Now()}); };
  cb.on_lost = [this](const Error& e) {
    agent_lost_ = true;
    Feed(core::AgentLost{e.message, Now()});
  };
  cb.on_update_failed = [](const mesos::TaskStatus& status, const Error& e) {
    spdlog::error("the agent refused the {} update of {}: {}",
                  mesos::TaskState_Name(status.state()), status.task_id().value(), e.message);
  };
  client_ = std::make_unique<mesos_client::ExecutorClient>(
      io_, env_, mesos_client::ExecutorClient::Options{}, std::move(cb));
  WaitForSignals();
  client_->Start();
}

void Executor::WaitForSignals() {
  signals_.async_wait([this, alive = alive_](const boost::system::error_code& ec, int sig) {
    if (ec || !*alive) return;
    spdlog::warn("signal {}: stopping etcd and exiting", sig);
    if (supervisor_.has_task()) {
      Feed(core::ShutdownRequested{std::chrono::milliseconds(800), Now()});
    } else {
      Feed(core::ShutdownRequested{Duration{}, Now()});
    }
    WaitForSignals();
  });
}

void Executor::Post(core::Event event) {
  boost::asio::post(io_, [this, alive = alive_, event = std::move(event)] {
    if (*alive) Feed(event);
  });
}

void Executor::Feed(const core::Event& event) {
  for (const auto& action : supervisor_.Handle(event)) Do(action);
}

void Executor::Do(const core::Action& action) {
  std::visit(Overloaded{
                 [&](const core::StartReseedListener& a) { StartReseedListener(a.config); },
                 [&](const core::StartEtcd& a) { DoStartEtcd(a); },
                 [&](const core::SignalEtcd& a) {
                   int sig = a.signal == core::Signal::kTerm ? SIGTERM : SIGKILL;
                   spdlog::info("sending {} to etcd", sig == SIGTERM ? "SIGTERM" : "SIGKILL");
                   if (sig == SIGTERM) term_sent_at_ = Now();
                   etcd_.Signal(sig);
                 },
                 [&](const core::Probe& a) { DoProbe(a.incarnation); },
                 [&](const core::ArmTimer& a) { DoArm(a); },
                 [&](const core::SendStatus& a) {
                   spdlog::info(
                       "status {} healthy={} {}", mesos::TaskState_Name(a.status.state()),
                       a.status.has_healthy() ? (a.status.healthy() ? "true" : "false") : "-",
                       a.status.message());
                   auto sent = client_->SendUpdate(a.status);
                   if (!sent.ok())
                     spdlog::error("status update not sent: {}", sent.error().ToString());
                 },
                 [&](const core::AnswerReseed& a) { reseed_.Answer(a); },
                 [&](const core::Log& a) {
                   switch (a.level) {
                     case core::Log::Level::kInfo:
                       spdlog::info("{}", a.message);
                       break;
                     case core::Log::Level::kWarn:
                       spdlog::warn("{}", a.message);
                       break;
                     case core::Log::Level::kError:
                       spdlog::error("{}", a.message);
                       break;
                   }
                 },
                 [&](const core::Exit& a) { DoExit(a.code); },
             },
             action);
}

// Takes `config` by value: it may be reseed_waits_for_tls_, which this resets.
void Executor::StartReseedListener(TaskConfig config) {
  std::shared_ptr<const net::TlsServerConfig> tls;
  if (config.tls) {
    if (!HaveMemberTls(sandbox_)) {
      reseed_waits_for_tls_ = config;  // listens once the certificates are in
      return;
    }
    auto server = MemberServerTls(sandbox_);
    if (!server.ok()) {
      Post(core::ReseedListenerFailed{server.error().Context("the reseed listener").ToString(),
                                      Now()});
      return;
    }
    tls = *server;
  }
  reseed_waits_for_tls_.reset();
  HostPort at{config.address, config.reseed_port};
  auto bound = reseed_.Listen(at, config.reseed_token, tls);
  if (!bound.ok()) {
    Post(core::ReseedListenerFailed{bound.error().ToString(), Now()});
  } else {
    spdlog::info("reseed listener on {}://{}", tls ? "https" : "http", bound->ToString());
  }
}

void Executor::DoStartEtcd(const core::StartEtcd& start) {
  if (start.config.tls && !HaveMemberTls(sandbox_)) {
    // The first start of a TLS member: its certificates first (asked once per task; an etcd
    // restart or a reseed reuses the files).
    auto alive = alive_;
    RequestMemberCertificates(
        io_, start.config, task_id_, sandbox_, [this, alive, start](Status got) {
          if (!*alive) return;
          if (!got.ok()) {
            spdlog::error("no certificates: {}", got.error().ToString());
            Post(core::EtcdStartFailed{start.incarnation, got.error().ToString(), "", Now()});
            return;
          }
          spdlog::info("certificates in {}", (sandbox_ / "tls").string());
          if (reseed_waits_for_tls_) StartReseedListener(*reseed_waits_for_tls_);
          DoStartEtcd(start);
        });
    return;
  }
  if (!etcd_client_) {
    etcd::Client::Options client{.request_timeout = options_.probe_timeout};
    if (start.config.tls) {
      auto tls = MemberClientTls(sandbox_);
      if (!tls.ok()) {
        Post(core::EtcdStartFailed{start.incarnation, tls.error().ToString(), "", Now()});
        return;
      }
      client.tls = *tls;
    }
    etcd_client_ = std::make_unique<etcd::Client>(
        io_, HostPort{start.config.address, start.config.client_port}, client);
  }
  std::string binary = ResolveEtcdBinary(start.config, options_.etcd_binary, sandbox_);
  std::error_code ec;
  // A durable member's data dir is its persistent volume, linked at <sandbox>/data by the agent:
  // it exists from the start, empty until etcd first writes to it.
  std::filesystem::path data = sandbox_ / "data";
  bool fresh = !std::filesystem::exists(data, ec) || std::filesystem::is_empty(data, ec);
  if (start.config.restore_snapshot && fresh) {
    // A restore after total loss: the data dir comes from the snapshot, once. (Blocks this thread
    // for the restore's duration: nothing else is running yet.)
    spdlog::warn("restoring the data dir from snapshot {} before etcd first starts",
                 *start.config.restore_snapshot);
    auto t0 = std::chrono::steady_clock::now();
    if (std::filesystem::is_symlink(data, ec)) data = std::filesystem::canonical(data, ec);
    Status restored = RestoreDataDir(start.config, sandbox_, data);
    if (!restored.ok()) {
      spdlog::error("restore failed: {}", restored.error().ToString());
      Post(core::EtcdStartFailed{start.incarnation, restored.error().ToString(), "", Now()});
      return;
    }
    spdlog::info(
        "restored the data dir from {} in {} ms", *start.config.restore_snapshot,
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count());
  }
  auto argv = EtcdCommandLine(start, binary, sandbox_ / "data");
  std::string joined;
  for (const auto& a : argv) joined += (joined.empty() ? "" : " ") + a;
  spdlog::info("starting etcd: {}", joined);
  auto log_file = sandbox_ / "etcd.log";
  uint64_t incarnation = start.incarnation;
  auto pid = etcd_.Start(argv, sandbox_, log_file, [this, incarnation, log_file](int status) {
    if (term_sent_at_) {
      spdlog::info("etcd {} {} after SIGTERM", DescribeWaitStatus(status),
                   FormatDuration(Now() - *term_sent_at_));
      term_sent_at_.reset();
    }
    Feed(core::EtcdExited{incarnation, DescribeWaitStatus(status), ReadLogTail(log_file), Now()});
  });
  if (!pid.ok()) {
    Post(core::EtcdStartFailed{incarnation, pid.error().message, ReadLogTail(log_file), Now()});
    return;
  }
  Post(core::EtcdStarted{incarnation, *pid, Now()});
}

void Executor::DoProbe(uint64_t incarnation) {
  if (!etcd_client_) return;
  auto alive = alive_;
  etcd_client_->Status([this, alive, incarnation](Result<etcd::StatusResponse> status) {
    if (!*alive) return;
    if (!status.ok()) {
      Feed(core::ProbeResult{incarnation, std::nullopt, status.error().ToString(), Now()});
      return;
    }
    auto facts = std::make_shared<core::ProbeFacts>();
    facts->member_id = status->header.member_id;
    facts->cluster_id = status->header.cluster_id;
    facts->raft_index = status->raft_index;
    facts->raft_term = status->raft_term;
    facts->leader = status->leader;
    facts->is_learner = status->is_learner;
    facts->errors = status->errors;
    etcd_client_->Health([this, alive, incarnation, facts](Result<etcd::HealthResponse> health) {
      if (!*alive) return;
      if (health.ok()) facts->health = health->healthy;
      if (facts->is_learner) {  // a learner refuses member list
        Feed(core::ProbeResult{incarnation, *facts, "", Now()});
        return;
      }
      etcd_client_->MemberList(
          [this, alive, incarnation, facts](Result<etcd::MemberListResponse> list) {
            if (!*alive) return;
            if (list.ok()) facts->member_count = list->members.size();
            Feed(core::ProbeResult{incarnation, *facts, "", Now()});
          });
    });
  });
}

void Executor::DoArm(const core::ArmTimer& arm) {
  auto& timer = *timers_[static_cast<size_t>(arm.id)];
  timer.expires_after(arm.after);
  timer.async_wait(
      [this, alive = alive_, id = arm.id, token = arm.token](const boost::system::error_code& ec) {
        if (ec || !*alive) return;
        Feed(core::TimerFired{id, token, Now()});
      });
}

void Executor::DoExit(int code) {
  if (exiting_) return;
  exiting_ = true;
  pending_exit_code_ = code;
  // After SHUTDOWN no acknowledgement will come: only the agent's answer to the last update is
  // waited for, within what is left of the grace period.
  auto flush = shutdown_ ? std::min<std::chrono::milliseconds>(options_.exit_flush_timeout,
                                                               std::chrono::seconds(1))
                         : options_.exit_flush_timeout;
  if (shutdown_) {
    spdlog::info("executor done after SHUTDOWN; exiting once the agent has the last update");
  } else {
    spdlog::info("executor done; waiting up to {} for the agent to acknowledge the last updates",
                 FormatDuration(flush));
  }
  exit_timer_.expires_after(flush);
  exit_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive || exit_code_) return;
    spdlog::warn("exiting with {} update(s) unacknowledged",
                 client_->unacknowledged_updates().size());
    exit_code_ = pending_exit_code_;
    io_.stop();
  });
  MaybeFinishExit();
}

void Executor::MaybeFinishExit() {
  if (!exiting_ || exit_code_) return;
  // With the agent gone for good nobody will acknowledge anything: no reason to wait. After
  // SHUTDOWN, the agent's answer to the last update is all that will come.
  if (shutdown_) {
    if (!agent_lost_ && !client_->calls_done()) return;
  } else if (!agent_lost_ && !client_->unacknowledged_updates().empty()) {
    return;
  }
  etcd_.KillNow();  // normally gone already; never leave it behind
  reseed_.Stop();
  exit_code_ = pending_exit_code_;
  // Let the last ACKNOWLEDGED's connection settle, then stop.
  boost::asio::post(io_, [this, alive = alive_] {
    if (*alive) io_.stop();
  });
}

}  // namespace etcd_mesos::executor::shell
