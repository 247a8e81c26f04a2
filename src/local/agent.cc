// The agent of etcd-mesos-local. See agent.h for what it is; the comments here say why it does
// things the way real Mesos does (src/slave/slave.cpp, src/slave/http.cpp).
#include "local/agent.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <variant>

#include <spdlog/spdlog.h>
#include <boost/asio/steady_timer.hpp>

#include "common/duration.h"
#include "common/encoding.h"
#include "local/fetcher.h"
#include "local/jwt.h"
#include "local/operations.h"
#include "local/process.h"
#include "local/status_update_manager.h"
#include "mesos/codec.h"
#include "mesos/json_codec.h"
#include "mesos/recordio.h"
#include "mesos/task_state.h"
#include "net/http.h"

namespace etcd_mesos::local {
namespace asio = boost::asio;
namespace fs = std::filesystem;
using mesos::executor::Call;
using mesos::executor::Event;
using mesos_codec::ContentType;

namespace {

constexpr std::string_view kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// The built-in command executor's default kill grace period (Mesos's command executor uses 3 s
// when neither the task nor the KILL carries a kill policy).
constexpr auto kDefaultKillGrace = std::chrono::milliseconds(3000);
// After a shutdown grace period: SIGTERM to the group, then this long before SIGKILL.
constexpr auto kTermToKill = std::chrono::milliseconds(1000);
// How many terminated executors (and frameworks) are kept for /state and sandbox lookups.
constexpr size_t kMaxCompletedExecutors = 100;
constexpr size_t kMaxCompletedFrameworks = 50;
constexpr size_t kMaxCompletedTasks = 1000;

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Mesos's validateID: non-empty, at most NAME_MAX bytes, not "." or "..", no '/', '\' or control
// characters. IDs become path components of the sandbox, so this guards the file system too.
Status ValidatePathId(std::string_view what, const std::string& id) {
  if (id.empty()) return MakeError(ErrorCode::kInvalidArgument, "{} is empty", what);
  if (id.size() > 255) return MakeError(ErrorCode::kInvalidArgument, "{} is too long", what);
  if (id == "." || id == "..") {
    return MakeError(ErrorCode::kInvalidArgument, "{} '{}' is disallowed", what, id);
  }
  for (unsigned char c : id) {
    if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f) {
      return MakeError(ErrorCode::kInvalidArgument, "{} '{}' contains invalid characters", what,
                       id);
    }
  }
  return OkStatus();
}

bool HasCapability(const mesos::FrameworkInfo& info, mesos::FrameworkInfo::Capability::Type type) {
  for (const auto& c : info.capabilities()) {
    if (c.type() == type) return true;
  }
  return false;
}

// The summary form of resources that /state shows (reference/mesos-v1-api.md 5): cpus, gpus, mem
// and disk always present, ranges as "[b-e, b-e]", sets as "{a, b}".
template <typename Container>
nlohmann::json ResourcesSummary(const Container& resources) {
  nlohmann::json j = {{"cpus", 0.0}, {"gpus", 0.0}, {"mem", 0.0}, {"disk", 0.0}};
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> ranges;
  std::map<std::string, std::vector<std::string>> sets;
  for (const mesos::Resource& r : resources) {
    switch (r.type()) {
      case mesos::Value::SCALAR: {
        double prev = j.contains(r.name()) ? j[r.name()].get<double>() : 0.0;
        j[r.name()] = prev + r.scalar().value();
        break;
      }
      case mesos::Value::RANGES:
        for (const auto& range : r.ranges().range()) {
          ranges[r.name()].emplace_back(range.begin(), range.end());
        }
        break;
      case mesos::Value::SET:
        for (const auto& item : r.set().item()) sets[r.name()].push_back(item);
        break;
      default:
        break;
    }
  }
  for (auto& [name, list] : ranges) {
    std::sort(list.begin(), list.end());
    std::string text = "[";
    for (size_t i = 0; i < list.size(); ++i) {
      if (i > 0) text += ", ";
      text += fmt::format("{}-{}", list[i].first, list[i].second);
    }
    j[name] = text + "]";
  }
  for (auto& [name, list] : sets) {
    std::string text = "{";
    for (size_t i = 0; i < list.size(); ++i) text += (i > 0 ? ", " : "") + list[i];
    j[name] = text + "}";
  }
  return j;
}

nlohmann::json TaskJson(const mesos::Task& task) {
  nlohmann::json j = {
      {"id", task.task_id().value()},
      {"name", task.name()},
      {"framework_id", task.framework_id().value()},
      {"executor_id", task.has_executor_id() ? task.executor_id().value() : ""},
      {"slave_id", task.agent_id().value()},
      {"state", mesos::TaskState_Name(task.state())},
      {"resources", ResourcesSummary(task.resources())},
  };
  nlohmann::json statuses = nlohmann::json::array();
  for (const auto& s : task.statuses()) {
    nlohmann::json st = {{"state", mesos::TaskState_Name(s.state())}, {"timestamp", s.timestamp()}};
    if (s.has_container_status() && s.container_status().has_container_id()) {
      st["container_status"] = {
          {"container_id", {{"value", s.container_status().container_id().value()}}}};
    }
    if (s.has_healthy()) st["healthy"] = s.healthy();
    statuses.push_back(std::move(st));
  }
  j["statuses"] = std::move(statuses);
  if (task.has_labels()) {
    nlohmann::json labels = nlohmann::json::array();
    for (const auto& l : task.labels().labels()) {
      labels.push_back({{"key", l.key()}, {"value", l.value()}});
    }
    j["labels"] = std::move(labels);
  }
  return j;
}

mesos::Task TaskFromInfo(const mesos::TaskInfo& info, const mesos::FrameworkID& framework_id,
                         const mesos::AgentID& agent_id) {
  mesos::Task task;
  task.set_name(info.name());
  *task.mutable_task_id() = info.task_id();
  *task.mutable_framework_id() = framework_id;
  if (info.has_executor()) *task.mutable_executor_id() = info.executor().executor_id();
  *task.mutable_agent_id() = agent_id;
  task.set_state(mesos::TASK_STAGING);
  *task.mutable_resources() = info.resources();
  if (info.has_labels()) *task.mutable_labels() = info.labels();
  if (info.has_discovery()) *task.mutable_discovery() = info.discovery();
  if (info.has_container()) *task.mutable_container() = info.container();
  return task;
}

std::chrono::milliseconds FromDurationInfo(const mesos::DurationInfo& d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::nanoseconds(std::max<int64_t>(0, d.nanoseconds())));
}

}  // namespace

// ---- The agent ----------------------------------------------------------------------------------

struct Agent::Impl {
  enum class ExecState { kFetching, kRegistering, kRunning, kTerminating, kTerminated };

  struct Executor {
    explicit Executor(asio::io_context& io)
        : registration_timer(io), shutdown_timer(io), kill_timer(io) {}
    mesos::ExecutorInfo info;
    mesos::FrameworkID framework_id;
    std::string container_id;
    fs::path directory;
    bool command = false;  // the built-in command executor of a CommandInfo task
    ExecState state = ExecState::kFetching;
    pid_t pid = -1;
    bool ever_subscribed = false;
    std::shared_ptr<net::ResponseStream> stream;
    ContentType stream_type = ContentType::kJson;
    std::vector<mesos::TaskInfo> queued;       // not yet delivered to the executor
    std::map<std::string, mesos::Task> tasks;  // delivered; terminal ones until acknowledged
    std::deque<mesos::Task> completed;         // terminal and acknowledged
    std::vector<Event> pending_events;         // KILL/SHUTDOWN while the executor reconnects
    std::unique_ptr<FetchHandle> fetch;
    std::optional<mesos::TaskStatus::Reason> termination_reason;
    std::string termination_message;
    // Command executor only.
    bool kill_requested = false;
    std::optional<mesos::KillPolicy> task_kill_policy;  // from the TaskInfo (Task lacks it)
    asio::steady_timer registration_timer;
    asio::steady_timer shutdown_timer;
    asio::steady_timer kill_timer;
  };

  struct Framework {
    mesos::FrameworkInfo info;
    bool terminating = false;
    std::map<std::string, std::unique_ptr<Executor>> executors;  // live ones
    std::deque<std::unique_ptr<Executor>> completed_executors;
  };

  Impl(asio::io_context& io, AgentOptions options, mesos::AgentID id, Link& link)
      : io(io),
        options(std::move(options)),
        id(std::move(id)),
        link(link),
        reaper(io),
        updates(io, {this->options.status_update_retry_min, this->options.status_update_retry_max},
                [this](const mesos::FrameworkID& fw, const mesos::TaskStatus& status,
                       mesos::TaskState latest) { ForwardUpdate(fw, status, latest); }),
        ping_timer(io),
        total(this->options.resources) {}

  // ---- persistent volumes ----

  // A volume's directory under the work dir: it outlives every task and a restart of the agent,
  // and goes with the work dir.
  fs::path VolumeDirectory(const mesos::Resource& volume) const {
    return options.work_dir / VolumePath(volume);
  }

  void CheckpointResources(const std::vector<mesos::Resource>& now) {
    std::set<std::string> kept;
    for (const auto& v : ResourceBag::From(now).Volumes()) {
      fs::path dir = VolumeDirectory(v);
      kept.insert(dir.string());
      std::error_code ec;
      if (fs::exists(dir, ec)) continue;
      fs::create_directories(dir, ec);
      if (ec) {
        SPDLOG_WARN("agent {}: cannot create persistent volume {}: {}", id.value(), dir.string(),
                    ec.message());
      } else {
        SPDLOG_INFO("agent {}: created persistent volume '{}' at '{}'", id.value(),
                    v.disk().persistence().id(), dir.string());
      }
    }
    for (const auto& v : ResourceBag::From(total).Volumes()) {
      fs::path dir = VolumeDirectory(v);
      if (kept.count(dir.string())) continue;
      std::error_code ec;
      fs::remove_all(dir, ec);
      SPDLOG_INFO("agent {}: deleting persistent volume '{}' at '{}'{}", id.value(),
                  v.disk().persistence().id(), dir.string(), ec ? ": " + ec.message() : "");
    }
    total = now;
  }

  // As Mesos's POSIX filesystem isolator: each volume the task (or its executor) uses appears
  // in the sandbox as a symlink at its container path.
  void LinkVolumes(const Executor& e, const mesos::TaskInfo& task) {
    std::vector<mesos::Resource> all(task.resources().begin(), task.resources().end());
    all.insert(all.end(), e.info.resources().begin(), e.info.resources().end());
    for (const auto& r : all) {
      if (!IsPersistentVolume(r) || !r.disk().has_volume()) continue;
      fs::path target = VolumeDirectory(Normalized(r));
      fs::path link = e.directory / r.disk().volume().container_path();
      std::error_code ec;
      fs::create_directories(target, ec);
      if (fs::is_symlink(link, ec)) continue;
      fs::create_directories(link.parent_path(), ec);
      fs::create_directory_symlink(target, link, ec);
      if (ec) {
        SPDLOG_WARN("agent {}: cannot link persistent volume {} into {}: {}", id.value(),
                    target.string(), link.string(), ec.message());
      } else {
        SPDLOG_INFO("agent {}: added symlink from '{}' to '{}' for persistent volume '{}'",
                    id.value(), target.string(), link.string(), r.disk().persistence().id());
      }
    }
  }

  // ---- lifecycle ----

  Result<HostPort> Start() {
    if (started) return bound;
    // As a Mesos agent refuses to start: without a key every token would be checked against the
    // empty key, which anyone can sign with.
    if (options.authenticate_http_executors && options.jwt_secret_key.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "agent slave({}): executor authentication needs a JWT secret key",
                       options.index);
    }
    uint16_t port = bound.port != 0 ? bound.port : options.port;
    net::HttpServer::Options server_options;
    server_options.server_name = "etcd-mesos-local agent";
    server_options.idle_timeout = std::chrono::milliseconds(60'000);
    auto server_ptr = std::make_unique<net::HttpServer>(
        io, server_options,
        [this, alive = alive](const net::ServerRequest& req,
                              std::shared_ptr<net::Responder> responder) {
          if (!*alive) return responder->Respond(net::TextResponse(503, "agent is gone"));
          HandleHttp(req, std::move(responder));
        });
    auto listening = server_ptr->Listen(HostPort{options.ip, port});
    if (!listening.ok()) {
      return listening.error().Context(fmt::format("agent slave({})", options.index));
    }
    server = std::move(server_ptr);
    bound = *listening;
    started = true;
    SPDLOG_INFO("agent {} (slave({})) serving on {}", id.value(), options.index, bound.ToString());
    Ping();
    updates.Resume();
    if (restarted_keeping_executors) {
      restarted_keeping_executors = false;
      SendReregistration();
      ArmReregistrationTimers();
    }
    return bound;
  }

  void Stop(StopMode mode) {
    bool was_started = started;
    started = false;
    ping_timer.cancel();
    updates.Pause();
    if (server) {
      server->Stop();
      server.reset();
    }
    ForEachLiveExecutor([](Executor& e) {
      auto stream = std::move(e.stream);
      if (stream) stream->Close();
    });
    if (mode == StopMode::kLoseHost) {
      SPDLOG_WARN("agent {}: host lost: killing every process it started", id.value());
      reaper.KillAllNow();
      // The host's memory is gone with it: what it ran is for the master to declare lost.
      for (auto& [fid, fw] : frameworks) {
        for (auto& [eid, e] : fw.executors) CancelExecutorTimers(*e);
      }
      frameworks.clear();
      completed_frameworks.clear();
      updates.Clear();
      restarted_keeping_executors = false;
    } else if (was_started) {
      SPDLOG_WARN("agent {}: stopped; executors keep running", id.value());
      restarted_keeping_executors = true;
    }
  }

  void Shutdown() {
    *alive = false;
    started = false;
    ping_timer.cancel();
    if (server) {
      server->Stop();
      server.reset();
    }
    for (auto& [fid, fw] : frameworks) {
      for (auto& [eid, e] : fw.executors) {
        CancelExecutorTimers(*e);
        e->fetch.reset();
      }
    }
    reaper.TerminateAllNow(std::chrono::milliseconds(1000));
  }

  void Ping() {
    if (!started) return;
    link.ToMaster([agent_id = id](MasterApi& m) { m.AgentPing(agent_id); });
    ping_timer.expires_after(options.ping_interval);
    ping_timer.async_wait([this, alive = alive](const boost::system::error_code& ec) {
      if (ec || !*alive || !started) return;
      Ping();
    });
  }

  // ---- lookups ----

  template <typename F>
  void ForEachLiveExecutor(F f) {
    for (auto& [fid, fw] : frameworks) {
      for (auto& [eid, e] : fw.executors) f(*e);
    }
  }

  Framework* FindFramework(const std::string& fid) {
    auto it = frameworks.find(fid);
    return it == frameworks.end() ? nullptr : &it->second;
  }

  Executor* FindExecutor(const std::string& fid, const std::string& eid) {
    Framework* fw = FindFramework(fid);
    if (fw == nullptr) return nullptr;
    auto it = fw->executors.find(eid);
    return it == fw->executors.end() ? nullptr : it->second.get();
  }

  // The same run of an executor: callbacks carry the container id so that a late callback of a
  // previous run never touches a new one.
  Executor* FindRun(const std::string& fid, const std::string& eid, const std::string& container) {
    Executor* e = FindExecutor(fid, eid);
    return e != nullptr && e->container_id == container ? e : nullptr;
  }

  // The executor (live or completed) that holds a task, delivered or queued.
  Executor* ExecutorOfTask(const std::string& fid, const std::string& tid) {
    Framework* fw = FindFramework(fid);
    if (fw == nullptr) return nullptr;
    auto holds = [&](Executor& e) {
      if (e.tasks.count(tid) != 0) return true;
      for (const auto& t : e.queued) {
        if (t.task_id().value() == tid) return true;
      }
      return false;
    };
    for (auto& [eid, e] : fw->executors) {
      if (holds(*e)) return e.get();
    }
    for (auto& e : fw->completed_executors) {
      if (holds(*e)) return e.get();
    }
    return nullptr;
  }

  mesos::AgentInfo Info() const {
    mesos::AgentInfo info;
    info.set_hostname(options.ip);
    info.set_port(bound.port);
    *info.mutable_id() = id;
    for (const auto& r : total) *info.add_resources() = r;
    return info;
  }

  std::string Pid() const {
    return fmt::format("slave({})@{}:{}", options.index, options.ip, bound.port);
  }

  // ---- status updates ----

  void ForwardUpdate(const mesos::FrameworkID& fw, const mesos::TaskStatus& status,
                     mesos::TaskState latest) {
    if (!started) return;
    link.ToMaster([agent_id = id, fw, status, latest](MasterApi& m) {
      m.StatusUpdate(agent_id, fw, status, latest);
    });
  }

  // Records a new update's state on the task and hands the update to the reliable path.
  // Returns false for a duplicate.
  bool TakeUpdate(Executor& e, mesos::TaskStatus status) {
    status.mutable_agent_id()->CopyFrom(id);
    if (!status.has_executor_id()) *status.mutable_executor_id() = e.info.executor_id();
    if (!status.has_container_status() || !status.container_status().has_container_id()) {
      status.mutable_container_status()->mutable_container_id()->set_value(e.container_id);
    }
    const std::string& tid = status.task_id().value();
    // An update for a task whose terminal update was already acknowledged is stale.
    for (const auto& t : e.completed) {
      if (t.task_id().value() == tid) {
        SPDLOG_WARN("agent: update {} for completed task {} ignored", UuidToString(status.uuid()),
                    tid);
        return false;
      }
    }
    if (updates.Update(e.framework_id, status) == StatusUpdateManager::Outcome::kDuplicate) {
      return false;
    }
    auto it = e.tasks.find(tid);
    if (it == e.tasks.end()) {
      // A queued task the executor reports on (it learned of it some other way), or one the agent
      // never saw (a re-subscribing executor's unacknowledged task): track it from now on.
      auto q = std::find_if(e.queued.begin(), e.queued.end(),
                            [&](const mesos::TaskInfo& t) { return t.task_id().value() == tid; });
      mesos::Task task;
      if (q != e.queued.end()) {
        task = TaskFromInfo(*q, e.framework_id, id);
        e.queued.erase(q);
      } else {
        task.set_name(tid);
        *task.mutable_task_id() = status.task_id();
        *task.mutable_framework_id() = e.framework_id;
        *task.mutable_agent_id() = id;
      }
      if (!e.command) *task.mutable_executor_id() = e.info.executor_id();
      it = e.tasks.emplace(tid, std::move(task)).first;
    }
    it->second.set_state(status.state());
    auto* kept = it->second.add_statuses();
    *kept = status;
    kept->clear_data();  // as Mesos does: /state must not carry executor payloads
    return true;
  }

  mesos::TaskStatus NewStatus(const Executor& e, const mesos::TaskID& task_id,
                              mesos::TaskState state, mesos::TaskStatus::Source source,
                              std::optional<mesos::TaskStatus::Reason> reason,
                              const std::string& message) {
    mesos::TaskStatus status;
    *status.mutable_task_id() = task_id;
    status.set_state(state);
    status.set_source(source);
    if (reason) status.set_reason(*reason);
    if (!message.empty()) status.set_message(message);
    status.set_uuid(NewUuidBytes());
    status.set_timestamp(NowSeconds());
    *status.mutable_executor_id() = e.info.executor_id();
    *status.mutable_agent_id() = id;
    return status;
  }

  void AgentUpdate(Executor& e, const mesos::TaskID& task_id, mesos::TaskState state,
                   mesos::TaskStatus::Reason reason, const std::string& message) {
    TakeUpdate(e, NewStatus(e, task_id, state, mesos::TaskStatus::SOURCE_AGENT, reason, message));
  }

  // ---- running tasks ----

  void RunTask(const mesos::FrameworkInfo& framework, const mesos::TaskInfo& task) {
    if (!started) {
      SPDLOG_WARN("agent {} is down: RunTask {} dropped", id.value(), task.task_id().value());
      return;
    }
    if (!framework.has_id() || framework.id().value().empty()) {
      SPDLOG_ERROR("agent {}: RunTask {} without a framework id dropped", id.value(),
                   task.task_id().value());
      return;
    }
    const std::string& fid = framework.id().value();
    auto [fit, added] = frameworks.try_emplace(fid);
    Framework& fw = fit->second;
    if (added || !fw.terminating) fw.info = framework;
    if (fw.terminating) {
      SPDLOG_WARN("agent: framework {} is terminating; task {} dropped", fid,
                  task.task_id().value());
      return;
    }

    mesos::ExecutorInfo executor;
    bool command = false;
    if (task.has_executor()) {
      executor = task.executor();
    } else {
      command = true;
      *executor.mutable_executor_id() = mesos::ExecutorID();
      executor.mutable_executor_id()->set_value(task.task_id().value());
      std::string shown = task.command().shell() ? "sh -c '" + task.command().value() + "'"
                                                 : task.command().value();
      executor.set_name(
          fmt::format("Command Executor (Task: {}) (Command: {})", task.task_id().value(), shown));
      *executor.mutable_command() = task.command();
    }
    *executor.mutable_framework_id() = framework.id();

    Status valid = ValidatePathId("task id", task.task_id().value());
    if (valid.ok()) valid = ValidatePathId("executor id", executor.executor_id().value());
    if (valid.ok()) valid = ValidatePathId("framework id", fid);
    if (valid.ok() && !task.has_executor() && !task.has_command()) {
      valid = MakeError(ErrorCode::kInvalidArgument, "task has neither executor nor command");
    }
    if (!valid.ok()) {
      // Track it on a placeholder executor so the update is reliable like any other.
      auto e = std::make_unique<Executor>(io);
      e->info = executor;
      e->framework_id = framework.id();
      e->state = ExecState::kTerminated;
      e->queued.push_back(task);
      AgentUpdate(*e, task.task_id(), mesos::TASK_ERROR, mesos::TaskStatus::REASON_TASK_INVALID,
                  valid.error().message);
      Archive(fw, std::move(e));
      return;
    }

    const std::string& eid = executor.executor_id().value();
    if (Executor* e = FindExecutor(fid, eid)) {
      if (e->command || e->state == ExecState::kTerminating) {
        bool aware = HasCapability(fw.info, mesos::FrameworkInfo::Capability::PARTITION_AWARE);
        e->queued.push_back(task);
        AgentUpdate(
            *e, task.task_id(), aware ? mesos::TASK_DROPPED : mesos::TASK_LOST,
            mesos::TaskStatus::REASON_EXECUTOR_TERMINATED,
            e->command ? "A command task with this id already runs" : "Executor is terminating");
        return;
      }
      LinkVolumes(*e, task);
      if (e->state == ExecState::kRunning && e->stream) {
        Deliver(*e, task);
      } else {
        e->queued.push_back(task);
      }
      return;
    }
    LaunchExecutor(fw, executor, command, task);
  }

  void Deliver(Executor& e, const mesos::TaskInfo& task) {
    e.tasks[task.task_id().value()] = TaskFromInfo(task, e.framework_id, id);
    Event event;
    event.set_type(Event::LAUNCH);
    *event.mutable_launch()->mutable_task() = task;
    WriteEvent(e, event);
  }

  void LaunchExecutor(Framework& fw, const mesos::ExecutorInfo& info, bool command,
                      const mesos::TaskInfo& task) {
    auto e = std::make_unique<Executor>(io);
    e->info = info;
    e->framework_id = fw.info.id();
    e->command = command;
    e->container_id = UuidToString(NewUuidBytes());
    fs::path runs = options.work_dir / "slaves" / id.value() / "frameworks" / fw.info.id().value() /
                    "executors" / info.executor_id().value() / "runs";
    e->directory = runs / e->container_id;
    e->queued.push_back(task);
    std::error_code ec;
    fs::create_directories(e->directory, ec);
    if (!ec) {
      fs::path latest = runs / "latest";
      fs::remove(latest, ec);
      fs::create_directory_symlink(e->directory, latest, ec);
      if (ec) {
        SPDLOG_WARN("agent: cannot link {}: {}", latest.string(), ec.message());
        ec.clear();
      }
    }
    if (!ec) LinkVolumes(*e, task);
    sandboxes[{fw.info.id().value(), info.executor_id().value()}] = e->directory.string();
    Executor& ref = *e;
    fw.executors[info.executor_id().value()] = std::move(e);
    SPDLOG_INFO("agent {}: launching {} executor {} of framework {} in {}", id.value(),
                command ? "command" : "custom", info.executor_id().value(), fw.info.id().value(),
                ref.directory.string());
    if (ec) {
      return LaunchFailed(ref, fmt::format("Failed to create the sandbox {}: {}",
                                           ref.directory.string(), ec.message()));
    }
    std::vector<mesos::CommandInfo::URI> uris(info.command().uris().begin(),
                                              info.command().uris().end());
    ref.fetch =
        FetchUris(io, reaper, std::move(uris), ref.directory, FetchCacheDir(),
                  [this, fid = fw.info.id().value(), eid = info.executor_id().value(),
                   cid = ref.container_id](Status fetched) {
                    Executor* e = FindRun(fid, eid, cid);
                    if (e == nullptr || e->state != ExecState::kFetching) return;
                    e->fetch.reset();
                    if (!fetched.ok()) {
                      return LaunchFailed(*e, "Failed to fetch URIs: " + fetched.error().message);
                    }
                    StartProcess(*e);
                  });
  }

  fs::path FetchCacheDir() const {
    return options.fetch_cache_dir.empty() ? options.work_dir / "fetch" : options.fetch_cache_dir;
  }

  std::map<std::string, std::string> Environment(const Executor& e) {
    const Framework* fw = FindFramework(e.framework_id.value());
    bool checkpoint = fw != nullptr && fw->info.checkpoint();
    std::chrono::milliseconds grace = e.info.has_shutdown_grace_period()
                                          ? FromDurationInfo(e.info.shutdown_grace_period())
                                          : options.executor_shutdown_grace_period;
    std::map<std::string, std::string> env = options.executor_environment;
    std::map<std::string, std::string> mesos = {
        {"PATH", std::string(kDefaultPath)},
        {"MESOS_FRAMEWORK_ID", e.framework_id.value()},
        {"MESOS_EXECUTOR_ID", e.info.executor_id().value()},
        {"MESOS_SLAVE_ID", id.value()},
        {"MESOS_SLAVE_PID", Pid()},
        {"MESOS_AGENT_ENDPOINT", bound.ToString()},
        {"MESOS_DIRECTORY", e.directory.string()},
        {"MESOS_SANDBOX", e.directory.string()},
        {"MESOS_CHECKPOINT", checkpoint ? "1" : "0"},
        {"MESOS_HTTP_COMMAND_EXECUTOR", "0"},
        {"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", FormatStoutDuration(grace)},
    };
    for (auto& [name, value] : mesos) env[name] = std::move(value);
    if (checkpoint) {
      env["MESOS_RECOVERY_TIMEOUT"] = FormatStoutDuration(options.recovery_timeout);
      env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = FormatStoutDuration(options.subscription_backoff_max);
    }
    for (const auto& var : e.info.command().environment().variables()) {
      if (var.type() == mesos::Environment::Variable::SECRET) {
        if (var.has_secret() && var.secret().has_value()) {
          env[var.name()] = var.secret().value().data();
        } else {
          SPDLOG_WARN("agent: secret reference for {} not supported; variable left out",
                      var.name());
        }
        continue;
      }
      env[var.name()] = var.value();
    }
    // Last, so that nothing the framework sets can stand in for it. The built-in command
    // executor is the agent itself: its task (a command) is not an executor and gets none.
    if (!options.jwt_secret_key.empty() && !e.command) {
      env["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"] = CreateJwt({{"fid", e.framework_id.value()},
                                                              {"eid", e.info.executor_id().value()},
                                                              {"cid", e.container_id}},
                                                             options.jwt_secret_key);
    }
    return env;
  }

  void StartProcess(Executor& e) {
    const mesos::CommandInfo& command = e.info.command();
    ProcessSpec spec;
    spec.env = Environment(e);
    spec.cwd = e.directory;
    spec.stdout_path = e.directory / "stdout";
    spec.stderr_path = e.directory / "stderr";
    if (command.shell()) {
      spec.program = "/bin/sh";
      spec.argv = {"sh", "-c", command.value()};
    } else {
      spec.program = command.value();
      spec.argv.assign(command.arguments().begin(), command.arguments().end());
    }
    if (spec.program.empty()) return LaunchFailed(e, "Failed to launch: the command is empty");
    auto pid = SpawnProcess(spec);
    if (!pid.ok()) return LaunchFailed(e, "Failed to launch container: " + pid.error().message);
    e.pid = *pid;
    SPDLOG_INFO("agent {}: executor {} started as pid {}", id.value(), e.info.executor_id().value(),
                e.pid);
    reaper.Watch(e.pid, [this, fid = e.framework_id.value(), eid = e.info.executor_id().value(),
                         cid = e.container_id](int status) {
      if (Executor* run = FindRun(fid, eid, cid)) ExecutorExited(*run, status);
    });
    if (e.command) {
      e.state = ExecState::kRunning;
      auto queued = std::move(e.queued);
      e.queued.clear();
      for (const auto& task : queued) {
        if (task.has_kill_policy()) e.task_kill_policy = task.kill_policy();
        // Mesos leaves executor_id unset on a command task (TaskFromInfo does the same).
        e.tasks[task.task_id().value()] = TaskFromInfo(task, e.framework_id, id);
        // The command executor's own updates: STARTING, then RUNNING once the command runs.
        TakeUpdate(e, NewStatus(e, task.task_id(), mesos::TASK_STARTING,
                                mesos::TaskStatus::SOURCE_EXECUTOR, std::nullopt, ""));
        TakeUpdate(e, NewStatus(e, task.task_id(), mesos::TASK_RUNNING,
                                mesos::TaskStatus::SOURCE_EXECUTOR, std::nullopt, ""));
      }
      return;
    }
    e.state = ExecState::kRegistering;
    e.registration_timer.expires_after(options.executor_registration_timeout);
    e.registration_timer.async_wait([this, alive = alive, fid = e.framework_id.value(),
                                     eid = e.info.executor_id().value(),
                                     cid = e.container_id](const boost::system::error_code& ec) {
      if (ec || !*alive) return;
      Executor* run = FindRun(fid, eid, cid);
      if (run == nullptr || run->state != ExecState::kRegistering) return;
      SPDLOG_WARN("agent: executor {} did not subscribe within {}; killing it", eid,
                  FormatDuration(options.executor_registration_timeout));
      run->termination_reason = mesos::TaskStatus::REASON_EXECUTOR_REGISTRATION_TIMEOUT;
      run->termination_message =
          fmt::format("Executor did not register within {}",
                      FormatStoutDuration(options.executor_registration_timeout));
      run->state = ExecState::kTerminating;
      SignalGroup(run->pid, SIGKILL);
    });
  }

  // The container could not be launched (sandbox, fetch or exec failed): its tasks fail with
  // REASON_CONTAINER_LAUNCH_FAILED, as Mesos reports a failed fetch.
  void LaunchFailed(Executor& e, const std::string& message) {
    SPDLOG_ERROR("agent {}: executor {}: {}", id.value(), e.info.executor_id().value(), message);
    e.termination_reason = mesos::TaskStatus::REASON_CONTAINER_LAUNCH_FAILED;
    e.termination_message = message;
    Terminated(e, /*wait_status=*/-1);
  }

  void ExecutorExited(Executor& e, int wait_status) {
    SPDLOG_INFO("agent {}: executor {} (pid {}) {}", id.value(), e.info.executor_id().value(),
                e.pid, DescribeWaitStatus(wait_status));
    e.pid = -1;
    if (e.command) {
      Framework* fw = FindFramework(e.framework_id.value());
      bool send = fw != nullptr && !fw->terminating;
      for (auto& [tid, task] : e.tasks) {
        if (mesos_facts::IsTerminalState(task.state()) || !send) continue;
        mesos::TaskState state;
        std::string message;
        if (WIFEXITED(wait_status)) {
          message = fmt::format("Command exited with status {}", WEXITSTATUS(wait_status));
        } else if (WIFSIGNALED(wait_status)) {
          const char* name = ::strsignal(WTERMSIG(wait_status));
          message = fmt::format("Command terminated with signal {}", name ? name : "?");
        } else {
          message = DescribeWaitStatus(wait_status);
        }
        if (e.kill_requested) {
          state = mesos::TASK_KILLED;
        } else if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) {
          state = mesos::TASK_FINISHED;
        } else {
          state = mesos::TASK_FAILED;
        }
        TakeUpdate(e, NewStatus(e, task.task_id(), state, mesos::TaskStatus::SOURCE_EXECUTOR,
                                std::nullopt, message));
      }
    }
    Terminated(e, wait_status);
  }

  // The executor is gone: every task it had that is not terminal fails (Mesos's
  // executorTerminated), the master hears of a custom executor's exit, and the run is archived.
  void Terminated(Executor& e, int wait_status) {
    CancelExecutorTimers(e);
    e.fetch.reset();
    if (e.stream) {
      auto stream = std::move(e.stream);
      stream->Close();
    }
    e.state = ExecState::kTerminated;
    std::string fid = e.framework_id.value();
    std::string eid = e.info.executor_id().value();
    Framework* fw = FindFramework(fid);
    bool send = fw != nullptr && !fw->terminating;
    if (send) {
      auto reason = e.termination_reason.value_or(mesos::TaskStatus::REASON_EXECUTOR_TERMINATED);
      std::string message =
          !e.termination_message.empty()
              ? e.termination_message
              : (wait_status == -1 ? std::string("Executor terminated")
                                   : "Executor " + DescribeWaitStatus(wait_status));
      std::vector<mesos::TaskID> failing;
      for (const auto& [tid, task] : e.tasks) {
        if (!mesos_facts::IsTerminalState(task.state())) failing.push_back(task.task_id());
      }
      for (const auto& task : e.queued) failing.push_back(task.task_id());
      for (const auto& tid : failing) AgentUpdate(e, tid, mesos::TASK_FAILED, reason, message);
    }
    e.queued.clear();
    if (!e.command && started) {
      link.ToMaster(
          [agent_id = id, fw_id = e.framework_id, exec_id = e.info.executor_id(),
           wait_status](MasterApi& m) { m.ExecutorExited(agent_id, fw_id, exec_id, wait_status); });
    }
    if (fw == nullptr) return;
    auto it = fw->executors.find(eid);
    if (it == fw->executors.end() || it->second.get() != &e) return;
    auto owned = std::move(it->second);
    fw->executors.erase(it);
    Archive(*fw, std::move(owned));
    if (fw->terminating && fw->executors.empty()) {
      completed_frameworks.push_back(fw->info);
      if (completed_frameworks.size() > kMaxCompletedFrameworks) completed_frameworks.pop_front();
      updates.CleanupFramework(fw->info.id());
      frameworks.erase(fid);
    }
  }

  void Archive(Framework& fw, std::unique_ptr<Executor> e) {
    fw.completed_executors.push_back(std::move(e));
    // Drop the oldest runs that nothing waits on any more.
    while (fw.completed_executors.size() > kMaxCompletedExecutors) {
      auto it = std::find_if(fw.completed_executors.begin(), fw.completed_executors.end(),
                             [](const auto& old) { return old->tasks.empty(); });
      if (it == fw.completed_executors.end()) break;
      fw.completed_executors.erase(it);
    }
  }

  void CancelExecutorTimers(Executor& e) {
    e.registration_timer.cancel();
    e.shutdown_timer.cancel();
    e.kill_timer.cancel();
  }

  // ---- killing ----

  void KillTask(const mesos::FrameworkID& framework_id, const mesos::TaskID& task_id,
                const std::optional<mesos::KillPolicy>& kill_policy) {
    if (!started) return;
    const std::string& fid = framework_id.value();
    const std::string& tid = task_id.value();
    Framework* fw = FindFramework(fid);
    Executor* e = fw ? ExecutorOfTask(fid, tid) : nullptr;
    if (e == nullptr || e->state == ExecState::kTerminated) {
      SPDLOG_WARN("agent {}: KillTask {} of framework {}: no such task running here", id.value(),
                  tid, fid);
      return;
    }
    auto q = std::find_if(e->queued.begin(), e->queued.end(),
                          [&](const mesos::TaskInfo& t) { return t.task_id().value() == tid; });
    if (q != e->queued.end()) {
      // Not yet delivered: the agent answers for the executor (Mesos: killTask, REGISTERING).
      AgentUpdate(*e, task_id, mesos::TASK_KILLED,
                  mesos::TaskStatus::REASON_TASK_KILLED_DURING_LAUNCH,
                  "Task killed before it was launched");
      bool idle =
          e->queued.empty() && std::none_of(e->tasks.begin(), e->tasks.end(), [](const auto& t) {
            return !mesos_facts::IsTerminalState(t.second.state());
          });
      if (idle && (e->state == ExecState::kFetching || e->state == ExecState::kRegistering)) {
        // An executor whose every task was killed before it started has nothing to do: Mesos
        // destroys it rather than leave an idle process behind.
        e->state = ExecState::kTerminating;
        if (e->pid > 0) {
          SignalGroup(e->pid, SIGKILL);
        } else {
          Terminated(*e, -1);
        }
      }
      return;
    }
    if (e->command) return CommandKill(*e, kill_policy, std::nullopt);
    Event event;
    event.set_type(Event::KILL);
    *event.mutable_kill()->mutable_task_id() = task_id;
    if (kill_policy) *event.mutable_kill()->mutable_kill_policy() = *kill_policy;
    SendOrHold(*e, event);
  }

  void CommandKill(Executor& e, const std::optional<mesos::KillPolicy>& kill_policy,
                   std::optional<std::chrono::milliseconds> grace_override) {
    if (e.pid <= 0 || e.kill_requested) return;
    e.kill_requested = true;
    std::chrono::milliseconds grace = kDefaultKillGrace;
    if (grace_override) {
      grace = *grace_override;
    } else if (kill_policy && kill_policy->has_grace_period()) {
      grace = FromDurationInfo(kill_policy->grace_period());
    } else if (e.task_kill_policy && e.task_kill_policy->has_grace_period()) {
      grace = FromDurationInfo(e.task_kill_policy->grace_period());
    }
    Framework* fw = FindFramework(e.framework_id.value());
    if (fw && HasCapability(fw->info, mesos::FrameworkInfo::Capability::TASK_KILLING_STATE)) {
      std::vector<mesos::TaskID> live;
      for (const auto& [tid, task] : e.tasks) {
        if (!mesos_facts::IsTerminalState(task.state())) live.push_back(task.task_id());
      }
      for (const auto& tid : live) {
        TakeUpdate(e, NewStatus(e, tid, mesos::TASK_KILLING, mesos::TaskStatus::SOURCE_EXECUTOR,
                                std::nullopt, "Command is being killed"));
      }
    }
    SignalGroup(e.pid, SIGTERM);
    e.kill_timer.expires_after(grace);
    e.kill_timer.async_wait([this, alive = alive, fid = e.framework_id.value(),
                             eid = e.info.executor_id().value(),
                             cid = e.container_id](const boost::system::error_code& ec) {
      if (ec || !*alive) return;
      Executor* run = FindRun(fid, eid, cid);
      if (run != nullptr && run->pid > 0) SignalGroup(run->pid, SIGKILL);
    });
  }

  void ShutdownExecutorRun(Executor& e) {
    if (e.state == ExecState::kTerminating || e.state == ExecState::kTerminated) return;
    std::chrono::milliseconds grace = e.info.has_shutdown_grace_period()
                                          ? FromDurationInfo(e.info.shutdown_grace_period())
                                          : options.executor_shutdown_grace_period;
    if (e.pid <= 0) {  // still fetching: nothing runs yet
      e.state = ExecState::kTerminating;
      return Terminated(e, -1);
    }
    e.state = ExecState::kTerminating;
    if (e.command) return CommandKill(e, std::nullopt, grace);
    Event event;
    event.set_type(Event::SHUTDOWN);
    SendOrHold(e, event);
    e.shutdown_timer.expires_after(grace);
    e.shutdown_timer.async_wait([this, alive = alive, fid = e.framework_id.value(),
                                 eid = e.info.executor_id().value(),
                                 cid = e.container_id](const boost::system::error_code& ec) {
      if (ec || !*alive) return;
      Executor* run = FindRun(fid, eid, cid);
      if (run == nullptr || run->pid <= 0) return;
      SPDLOG_WARN("agent: executor {} still running after its shutdown grace period; SIGTERM", eid);
      SignalGroup(run->pid, SIGTERM);
      run->shutdown_timer.expires_after(kTermToKill);
      run->shutdown_timer.async_wait(
          [this, alive, fid, eid, cid](const boost::system::error_code& ec2) {
            if (ec2 || !*alive) return;
            Executor* again = FindRun(fid, eid, cid);
            if (again != nullptr && again->pid > 0) SignalGroup(again->pid, SIGKILL);
          });
    });
  }

  // ---- executor connection ----

  bool WriteEvent(Executor& e, const Event& event) {
    if (!e.stream || e.stream->closed()) return false;
    return e.stream->Write(recordio::Encode(mesos_codec::Encode(event, e.stream_type)));
  }

  // KILL and SHUTDOWN must not be lost to a reconnecting executor: hold them for its SUBSCRIBE.
  void SendOrHold(Executor& e, const Event& event) {
    if (!WriteEvent(e, event)) e.pending_events.push_back(event);
  }

  void ArmReregistrationTimers() {
    ForEachLiveExecutor([this](Executor& e) {
      if (e.command || !e.ever_subscribed || e.state != ExecState::kRunning) return;
      e.registration_timer.expires_after(options.executor_reregistration_timeout);
      e.registration_timer.async_wait([this, alive = alive, fid = e.framework_id.value(),
                                       eid = e.info.executor_id().value(),
                                       cid = e.container_id](const boost::system::error_code& ec) {
        if (ec || !*alive || !started) return;
        Executor* run = FindRun(fid, eid, cid);
        if (run == nullptr || run->stream || run->state != ExecState::kRunning) return;
        SPDLOG_WARN("agent: executor {} did not re-subscribe within {}; killing it", eid,
                    FormatDuration(options.executor_reregistration_timeout));
        run->termination_reason = mesos::TaskStatus::REASON_EXECUTOR_REREGISTRATION_TIMEOUT;
        run->termination_message = "Executor did not re-register after the agent restarted";
        run->state = ExecState::kTerminating;
        SignalGroup(run->pid, SIGKILL);
      });
    });
  }

  void SendReregistration() {
    std::vector<mesos::FrameworkInfo> fws;
    std::vector<mesos::Task> tasks;
    std::vector<mesos::ExecutorInfo> executors;
    for (auto& [fid, fw] : frameworks) {
      fws.push_back(fw.info);
      auto add_tasks = [&](Executor& e) {
        for (const auto& q : e.queued) tasks.push_back(TaskFromInfo(q, e.framework_id, id));
        for (const auto& [tid, t] : e.tasks) {
          mesos::Task task = t;
          if (auto head = updates.Head(e.framework_id, task.task_id())) {
            task.set_status_update_state(head->state());
            task.set_status_update_uuid(head->uuid());
          }
          tasks.push_back(std::move(task));
        }
      };
      for (auto& [eid, e] : fw.executors) {
        add_tasks(*e);
        if (!e->command) executors.push_back(e->info);
      }
      for (auto& e : fw.completed_executors) add_tasks(*e);
    }
    link.ToMaster([info = Info(), fws = std::move(fws), tasks = std::move(tasks),
                   executors = std::move(executors)](MasterApi& m) {
      m.ReregisterAgent(info, fws, tasks, executors);
    });
  }

  // ---- HTTP ----

  void HandleHttp(const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
    std::string prefix = fmt::format("/slave({})", options.index);
    std::string path = req.path;
    if (path.starts_with(prefix + "/")) path = path.substr(prefix.size());
    if (path == "/api/v1/executor") return HandleExecutorApi(req, std::move(r));
    if (path == "/state" || path == "/health") {
      if (req.method != net::Verb::get && req.method != net::Verb::head) {
        auto resp = net::TextResponse(
            405, fmt::format("Expecting one of {{ 'GET', 'HEAD' }}, but received '{}'",
                             req.method_string));
        resp.headers.emplace_back("Allow", "GET, HEAD");
        return r->Respond(std::move(resp));
      }
      if (path == "/health") return r->Respond(net::TextResponse(200, ""));
      return r->Respond(net::JsonResponse(200, mesos_codec::DumpJson(StateJson())));
    }
    r->Respond(net::TextResponse(404, fmt::format("no such endpoint: {}", req.path)));
  }

  static Status ValidateUpdate(const Call& call, const mesos::TaskStatus& status) {
    const std::string& eid = call.executor_id().value();
    const std::string& fid = call.framework_id().value();
    if (status.has_executor_id() && status.executor_id().value() != eid) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "ExecutorID in Call: {} does not match ExecutorID in TaskStatus: {}", eid,
                       status.executor_id().value());
    }
    if (status.source() != mesos::TaskStatus::SOURCE_EXECUTOR) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "Received Call from executor {} of framework {} with invalid source, "
                       "expecting 'SOURCE_EXECUTOR'",
                       eid, fid);
    }
    if (!status.has_uuid()) {
      return MakeError(ErrorCode::kInvalidArgument, "Expecting 'uuid' to be present");
    }
    if (!IsValidUuidBytes(status.uuid())) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "Invalid 'uuid': expecting the 16 bytes of an RFC 4122 UUID");
    }
    if (status.state() == mesos::TASK_STAGING) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "Received TASK_STAGING from executor {} of framework {} which is not "
                       "allowed",
                       eid, fid);
    }
    return OkStatus();
  }

  static Status ValidateCall(const Call& call) {
    if (!call.has_type()) {
      return MakeError(ErrorCode::kInvalidArgument, "Expecting 'type' to be present");
    }
    switch (call.type()) {
      case Call::SUBSCRIBE:
        if (!call.has_subscribe()) {
          return MakeError(ErrorCode::kInvalidArgument, "Expecting 'subscribe' to be present");
        }
        return OkStatus();
      case Call::UPDATE:
        if (!call.has_update()) {
          return MakeError(ErrorCode::kInvalidArgument, "Expecting 'update' to be present");
        }
        return ValidateUpdate(call, call.update().status());
      case Call::MESSAGE:
        if (!call.has_message()) {
          return MakeError(ErrorCode::kInvalidArgument, "Expecting 'message' to be present");
        }
        return OkStatus();
      default:
        return OkStatus();
    }
  }

  // The realm's authenticator, as libprocess's JWTAuthenticator for "mesos-agent-executor" (what
  // an agent with --authenticate_http_executors and --http_authenticators=jwt runs): the claims of
  // a valid Bearer token, or the 401 with its challenge. No header gets the bare challenge (RFC
  // 6750 3.1); a bad one says why in error_description.
  std::variant<JwtClaims, net::HttpResponse> AuthenticateExecutor(
      const net::ServerRequest& req) const {
    constexpr std::string_view kChallenge = "Bearer realm=\"mesos-agent-executor\"";
    auto refuse = [&](std::string_view why) -> net::HttpResponse {
      std::string challenge(kChallenge);
      if (!why.empty()) {
        challenge += fmt::format(", error=\"invalid_token\", error_description=\"{}\"", why);
      }
      return {401, {{"WWW-Authenticate", challenge}}, ""};
    };
    auto header = req.Header("Authorization");
    if (!header) return refuse("");
    size_t space = header->find(' ');
    if (space == std::string::npos || header->find(' ', space + 1) != std::string::npos) {
      return refuse("Malformed 'Authorization' header");
    }
    std::string scheme = header->substr(0, space);
    if (scheme != "Bearer") return refuse(fmt::format("Scheme '{}' unsupported", scheme));
    auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::system_clock::now().time_since_epoch());
    auto claims = VerifyJwt(std::string_view(*header).substr(space + 1), options.jwt_secret_key,
                            seconds.count());
    if (!claims.ok()) return refuse("Invalid JWT: " + claims.error().message);
    if (claims->empty()) return refuse("JWT claims missing");
    return *claims;
  }

  // Mesos's verifyExecutorClaims (src/slave/http.cpp): a valid token speaks only for the
  // framework, executor and container (this run of the executor) it was issued to.
  static std::optional<std::string> ForeignClaims(const JwtClaims& claims, const Call& call,
                                                  const Executor& e) {
    auto has = [&](const char* name, const std::string& value) {
      auto it = claims.find(name);
      return it != claims.end() && it->second == value;
    };
    std::string principal = nlohmann::json{{"claims", claims}}.dump();
    if (!has("fid", call.framework_id().value())) {
      return fmt::format(
          "Authenticated principal '{}' does not contain an 'fid' claim with the framework ID "
          "{}, which is set in the call",
          principal, call.framework_id().value());
    }
    if (!has("eid", call.executor_id().value())) {
      return fmt::format(
          "Authenticated principal '{}' does not contain an 'eid' claim with the executor ID "
          "{}, which is set in the call",
          principal, call.executor_id().value());
    }
    if (!has("cid", e.container_id)) {
      return fmt::format(
          "Authenticated principal '{}' does not contain a 'cid' claim with the correct active "
          "ContainerID",
          principal);
    }
    return std::nullopt;
  }

  void HandleExecutorApi(const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
    // libprocess authenticates a realm before the endpoint's handler runs: a request without a
    // valid token gets 401 whatever its method or body.
    std::optional<JwtClaims> claims;
    if (options.authenticate_http_executors) {
      auto authenticated = AuthenticateExecutor(req);
      if (auto* refused = std::get_if<net::HttpResponse>(&authenticated)) {
        SPDLOG_WARN("agent {}: executor API call refused: {}", id.value(),
                    refused->Header("WWW-Authenticate").value_or(""));
        return r->Respond(std::move(*refused));
      }
      claims = std::move(std::get<JwtClaims>(authenticated));
    }
    if (req.method != net::Verb::post) {
      auto resp = net::TextResponse(
          405, fmt::format("Expecting one of {{ 'POST' }}, but received '{}'", req.method_string));
      resp.headers.emplace_back("Allow", "POST");
      return r->Respond(std::move(resp));
    }
    auto content_type_header = req.Header("Content-Type");
    if (!content_type_header) {
      return r->Respond(net::TextResponse(400, "Expecting 'Content-Type' to be present"));
    }
    auto content_type = mesos_codec::ParseContentType(*content_type_header);
    if (!content_type) {
      return r->Respond(net::TextResponse(
          415, fmt::format("Expecting 'Content-Type' of {} or {}", mesos_codec::kJsonMediaType,
                           mesos_codec::kProtobufMediaType)));
    }
    Call call;
    if (auto decoded = mesos_codec::Decode(req.body, *content_type, &call); !decoded.ok()) {
      return r->Respond(net::TextResponse(
          400, "Failed to parse body into Call protobuf: " + decoded.error().message));
    }
    if (auto valid = ValidateCall(call); !valid.ok()) {
      return r->Respond(net::TextResponse(
          400, "Failed to validate v1::executor::Call: " + valid.error().message));
    }
    auto accept = mesos_codec::NegotiateAccept(req.Header("Accept"));
    if (!accept) {
      return r->Respond(net::TextResponse(
          406, fmt::format("Expecting 'Accept' to allow {} or {}", mesos_codec::kJsonMediaType,
                           mesos_codec::kProtobufMediaType)));
    }
    if (call.type() == Call::UNKNOWN) {
      return r->Respond(net::TextResponse(501, "Received 'UNKNOWN' call"));
    }
    Framework* fw = FindFramework(call.framework_id().value());
    if (fw == nullptr) return r->Respond(net::TextResponse(400, "Framework cannot be found"));
    Executor* e = FindExecutor(call.framework_id().value(), call.executor_id().value());
    // The built-in command executor lives inside the agent; nothing outside speaks for it.
    if (e == nullptr || e->command) {
      return r->Respond(net::TextResponse(400, "Executor cannot be found"));
    }
    if (claims) {
      if (auto foreign = ForeignClaims(*claims, call, *e)) {
        SPDLOG_WARN("agent {}: executor API call refused: {}", id.value(), *foreign);
        return r->Respond(net::TextResponse(403, *foreign));
      }
    }
    if (call.type() == Call::SUBSCRIBE) return Subscribe(*e, call.subscribe(), *accept, r);
    if (!e->ever_subscribed) {
      return r->Respond(net::TextResponse(403, "Executor is not subscribed"));
    }
    if (call.type() == Call::UPDATE) {
      ExecutorUpdate(*e, call.update().status());
      return r->Respond(net::HttpResponse{202, {}, ""});
    }
    if (call.type() == Call::MESSAGE) {
      if (started) {
        link.ToMaster([agent_id = id, fw_id = call.framework_id(), exec_id = call.executor_id(),
                       data = call.message().data()](MasterApi& m) {
          m.ExecutorMessage(agent_id, fw_id, exec_id, data);
        });
      }
      return r->Respond(net::HttpResponse{202, {}, ""});
    }
    r->Respond(net::TextResponse(501, "Received an unsupported call"));
  }

  // An update from the executor: recorded (unless a duplicate) and acknowledged to the executor
  // at once, duplicates included, which means "the agent has it".
  void ExecutorUpdate(Executor& e, const mesos::TaskStatus& status) {
    TakeUpdate(e, status);
    Event ack;
    ack.set_type(Event::ACKNOWLEDGED);
    *ack.mutable_acknowledged()->mutable_task_id() = status.task_id();
    ack.mutable_acknowledged()->set_uuid(status.uuid());
    WriteEvent(e, ack);
  }

  void Subscribe(Executor& e, const Call::Subscribe& subscribe, ContentType type,
                 const std::shared_ptr<net::Responder>& r) {
    net::Headers headers = {{"Content-Type", std::string(mesos_codec::MediaType(type))}};
    if (e.state == ExecState::kTerminating || e.state == ExecState::kTerminated) {
      // Mesos tells a terminating executor to shut down instead of subscribing it.
      auto stream = r->StartStream(200, headers);
      if (!stream) return;
      Event shutdown;
      shutdown.set_type(Event::SHUTDOWN);
      stream->Write(recordio::Encode(mesos_codec::Encode(shutdown, type)));
      stream->Close();
      return;
    }
    if (e.stream) {
      // A new connection replaces the old one (the executor reconnected).
      auto old = std::move(e.stream);
      old->Close();
    }
    auto stream = r->StartStream(200, headers);
    if (!stream) return;
    bool resubscribing = e.ever_subscribed;
    e.stream = stream;
    e.stream_type = type;
    e.state = ExecState::kRunning;
    e.ever_subscribed = true;
    e.registration_timer.cancel();
    std::weak_ptr<net::ResponseStream> weak = stream;
    stream->OnClosed([this, alive = alive, weak, fid = e.framework_id.value(),
                      eid = e.info.executor_id().value(), cid = e.container_id] {
      if (!*alive) return;
      Executor* run = FindRun(fid, eid, cid);
      if (run != nullptr && run->stream && run->stream == weak.lock()) run->stream.reset();
    });
    SPDLOG_INFO("agent {}: executor {} subscribed ({} unacknowledged updates, {} tasks)",
                id.value(), e.info.executor_id().value(), subscribe.unacknowledged_updates_size(),
                subscribe.unacknowledged_tasks_size());

    Event subscribed;
    subscribed.set_type(Event::SUBSCRIBED);
    auto* s = subscribed.mutable_subscribed();
    *s->mutable_executor_info() = e.info;
    Framework* fw = FindFramework(e.framework_id.value());
    if (fw) *s->mutable_framework_info() = fw->info;
    *s->mutable_agent_info() = Info();
    s->mutable_container_id()->set_value(e.container_id);
    WriteEvent(e, subscribed);

    // Tasks the executor knows of and the agent does not (it lost them) are tracked again.
    for (const auto& task : subscribe.unacknowledged_tasks()) {
      const std::string& tid = task.task_id().value();
      bool known = e.tasks.count(tid) != 0 ||
                   std::any_of(e.queued.begin(), e.queued.end(),
                               [&](const auto& q) { return q.task_id().value() == tid; }) ||
                   std::any_of(e.completed.begin(), e.completed.end(),
                               [&](const auto& c) { return c.task_id().value() == tid; });
      if (!known) e.tasks[tid] = TaskFromInfo(task, e.framework_id, id);
    }
    // Updates it still holds: those the agent lacks are taken; all are acknowledged again.
    Call probe;
    probe.mutable_executor_id()->CopyFrom(e.info.executor_id());
    probe.mutable_framework_id()->CopyFrom(e.framework_id);
    for (const auto& update : subscribe.unacknowledged_updates()) {
      if (auto valid = ValidateUpdate(probe, update.status()); !valid.ok()) {
        SPDLOG_WARN("agent: unacknowledged update from executor {} dropped: {}",
                    e.info.executor_id().value(), valid.error().message);
        continue;
      }
      ExecutorUpdate(e, update.status());
    }
    if (resubscribing) {
      // A task the agent delivered that is still STAGING and that the executor does not list was
      // lost on the old connection (the agent went away right after sending it): Mesos reports it
      // TASK_DROPPED (TASK_LOST) with REASON_AGENT_RESTARTED rather than let it hang in STAGING.
      std::set<std::string> listed;
      for (const auto& task : subscribe.unacknowledged_tasks())
        listed.insert(task.task_id().value());
      bool aware = fw != nullptr &&
                   HasCapability(fw->info, mesos::FrameworkInfo::Capability::PARTITION_AWARE);
      std::vector<mesos::TaskID> lost;
      for (const auto& [tid, task] : e.tasks) {
        if (task.state() == mesos::TASK_STAGING && listed.count(tid) == 0) {
          lost.push_back(task.task_id());
        }
      }
      for (const auto& tid : lost) {
        AgentUpdate(e, tid, aware ? mesos::TASK_DROPPED : mesos::TASK_LOST,
                    mesos::TaskStatus::REASON_AGENT_RESTARTED,
                    "Task launched during agent restart");
      }
    }
    auto queued = std::move(e.queued);
    e.queued.clear();
    for (const auto& task : queued) Deliver(e, task);
    auto held = std::move(e.pending_events);
    e.pending_events.clear();
    for (const auto& event : held) WriteEvent(e, event);
  }

  // ---- state ----

  nlohmann::json ExecutorJson(const Executor& e) const {
    nlohmann::json tasks = nlohmann::json::array();
    nlohmann::json queued = nlohmann::json::array();
    nlohmann::json completed = nlohmann::json::array();
    for (const auto& [tid, task] : e.tasks) {
      // Terminal tasks waiting for acknowledgement are still listed as tasks, as Mesos does.
      tasks.push_back(TaskJson(task));
    }
    for (const auto& q : e.queued) queued.push_back(TaskJson(TaskFromInfo(q, e.framework_id, id)));
    for (const auto& c : e.completed) completed.push_back(TaskJson(c));
    return {{"id", e.info.executor_id().value()},
            {"name", e.info.name()},
            {"container", e.container_id},
            {"directory", e.directory.string()},
            {"type", e.command ? "COMMAND" : "CUSTOM"},
            {"resources", ResourcesSummary(e.info.resources())},
            {"tasks", std::move(tasks)},
            {"queued_tasks", std::move(queued)},
            {"completed_tasks", std::move(completed)}};
  }

  static nlohmann::json FrameworkInfoJson(const mesos::FrameworkInfo& info) {
    return {{"id", info.id().value()},
            {"name", info.name()},
            {"user", info.user()},
            {"hostname", info.hostname()},
            {"roles", info.roles()},
            {"checkpoint", info.checkpoint()},
            {"failover_timeout", info.failover_timeout()}};
  }

  nlohmann::json StateJson() const {
    nlohmann::json fws = nlohmann::json::array();
    for (const auto& [fid, fw] : frameworks) {
      nlohmann::json j = FrameworkInfoJson(fw.info);
      nlohmann::json executors = nlohmann::json::array();
      nlohmann::json completed = nlohmann::json::array();
      for (const auto& [eid, e] : fw.executors) executors.push_back(ExecutorJson(*e));
      for (const auto& e : fw.completed_executors) completed.push_back(ExecutorJson(*e));
      j["executors"] = std::move(executors);
      j["completed_executors"] = std::move(completed);
      fws.push_back(std::move(j));
    }
    nlohmann::json done = nlohmann::json::array();
    for (const auto& info : completed_frameworks) {
      nlohmann::json j = FrameworkInfoJson(info);
      j["executors"] = nlohmann::json::array();
      j["completed_executors"] = nlohmann::json::array();
      done.push_back(std::move(j));
    }
    std::string master_hostname;
    if (auto at = options.master_pid.find('@'); at != std::string::npos) {
      master_hostname = options.master_pid.substr(at + 1);
      if (auto colon = master_hostname.rfind(':'); colon != std::string::npos) {
        master_hostname.resize(colon);
      }
    }
    return {
        {"version", "1.11.0"},
        {"id", id.value()},
        {"pid", Pid()},
        {"hostname", options.ip},
        {"port", bound.port},
        {"resources", ResourcesSummary(options.resources)},
        {"attributes", nlohmann::json::object()},
        {"master_hostname", master_hostname},
        {"flags",
         {{"work_dir", options.work_dir.string()},
          {"port", std::to_string(bound.port)},
          {"ip", options.ip},
          {"executor_registration_timeout",
           FormatStoutDuration(options.executor_registration_timeout)},
          {"executor_shutdown_grace_period",
           FormatStoutDuration(options.executor_shutdown_grace_period)},
          {"authenticate_http_executors", options.authenticate_http_executors ? "true" : "false"}}},
        {"frameworks", std::move(fws)},
        {"completed_frameworks", std::move(done)}};
  }

  // ---- members ----

  asio::io_context& io;
  AgentOptions options;
  mesos::AgentID id;
  Link& link;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  ChildReaper reaper;
  StatusUpdateManager updates;
  asio::steady_timer ping_timer;
  // What the agent has: its resources flag as changed by reservations and volumes since
  // (Mesos checkpoints these in the work dir; a restart that keeps the work dir keeps them).
  std::vector<mesos::Resource> total;
  std::unique_ptr<net::HttpServer> server;
  HostPort bound{options.ip, 0};
  bool started = false;
  bool restarted_keeping_executors = false;
  std::map<std::string, Framework> frameworks;
  std::deque<mesos::FrameworkInfo> completed_frameworks;
  // Every sandbox ever created, by (framework, executor): the latest run's directory.
  std::map<std::pair<std::string, std::string>, std::string> sandboxes;
};

// ---- Agent ------------------------------------------------------------------------------------

Agent::Agent(asio::io_context& io, AgentOptions options, mesos::AgentID id, Link& link)
    : impl_(std::make_unique<Impl>(io, std::move(options), std::move(id), link)) {}

Agent::~Agent() { impl_->Shutdown(); }

Result<HostPort> Agent::Start() { return impl_->Start(); }
void Agent::Stop(StopMode mode) { impl_->Stop(mode); }

Status Agent::KillExecutor(const std::string& executor_id) {
  for (auto& [fid, fw] : impl_->frameworks) {
    auto it = fw.executors.find(executor_id);
    if (it != fw.executors.end() && it->second->pid > 0) {
      SPDLOG_WARN("agent {}: fault injection: SIGKILL executor {} (pid {})", impl_->id.value(),
                  executor_id, it->second->pid);
      SignalGroup(it->second->pid, SIGKILL);
      return OkStatus();
    }
  }
  return MakeError(ErrorCode::kNotFound, "no running executor '{}' on agent {}", executor_id,
                   impl_->id.value());
}

const mesos::AgentID& Agent::id() const { return impl_->id; }
mesos::AgentInfo Agent::info() const { return impl_->Info(); }
HostPort Agent::address() const { return impl_->bound; }
std::string Agent::pid() const { return impl_->Pid(); }
const std::vector<mesos::Resource>& Agent::resources() const { return impl_->options.resources; }

std::string Agent::SandboxOf(const std::string& framework_id,
                             const std::string& executor_id) const {
  auto it = impl_->sandboxes.find({framework_id, executor_id});
  return it == impl_->sandboxes.end() ? "" : it->second;
}

std::vector<Agent::SandboxEntry> Agent::Sandboxes() const {
  std::vector<SandboxEntry> out;
  for (const auto& [key, directory] : impl_->sandboxes) {
    const auto& [fid, eid] = key;
    bool live = false;
    if (auto fw = impl_->frameworks.find(fid); fw != impl_->frameworks.end()) {
      auto e = fw->second.executors.find(eid);
      live = e != fw->second.executors.end() && e->second->pid > 0;
    }
    out.push_back({fid, eid, directory, live});
  }
  return out;
}

std::vector<int> Agent::ProcessIds() const {
  std::vector<int> pids;
  for (pid_t p : impl_->reaper.Pids()) pids.push_back(p);
  return pids;
}

nlohmann::json Agent::StateJson() const { return impl_->StateJson(); }

void Agent::RunTask(const mesos::FrameworkInfo& framework, const mesos::TaskInfo& task) {
  impl_->RunTask(framework, task);
}

void Agent::KillTask(const mesos::FrameworkID& framework_id, const mesos::TaskID& task_id,
                     const std::optional<mesos::KillPolicy>& kill_policy) {
  impl_->KillTask(framework_id, task_id, kill_policy);
}

void Agent::ShutdownExecutor(const mesos::FrameworkID& framework_id,
                             const mesos::ExecutorID& executor_id) {
  if (!impl_->started) return;
  if (auto* e = impl_->FindExecutor(framework_id.value(), executor_id.value())) {
    impl_->ShutdownExecutorRun(*e);
  }
}

void Agent::ShutdownFramework(const mesos::FrameworkID& framework_id) {
  if (!impl_->started) return;
  auto* fw = impl_->FindFramework(framework_id.value());
  if (fw == nullptr) return;
  SPDLOG_INFO("agent {}: shutting down framework {}", impl_->id.value(), framework_id.value());
  fw->terminating = true;
  // No acknowledgement will come for a removed framework: stop retrying its updates now.
  impl_->updates.CleanupFramework(framework_id);
  std::vector<Impl::Executor*> live;
  for (auto& [eid, e] : fw->executors) live.push_back(e.get());
  for (auto* e : live) {
    e->queued.clear();
    impl_->ShutdownExecutorRun(*e);
  }
  // ShutdownExecutorRun may have removed the framework already (nothing was running).
  fw = impl_->FindFramework(framework_id.value());
  if (fw != nullptr && fw->executors.empty()) {
    impl_->completed_frameworks.push_back(fw->info);
    impl_->frameworks.erase(framework_id.value());
  }
}

void Agent::UpdateFramework(const mesos::FrameworkInfo& framework) {
  if (!impl_->started) return;
  if (auto* fw = impl_->FindFramework(framework.id().value()); fw && !fw->terminating) {
    fw->info = framework;
  }
  impl_->updates.ResendFramework(framework.id());
}

void Agent::AcknowledgeUpdate(const mesos::FrameworkID& framework_id, const mesos::TaskID& task_id,
                              const std::string& uuid) {
  if (!impl_->started) return;
  auto acked = impl_->updates.Acknowledge(framework_id, task_id, uuid);
  if (!acked.ok()) {
    SPDLOG_WARN("agent {}: {}", impl_->id.value(), acked.error().message);
    return;
  }
  if (!mesos_facts::IsTerminalState(acked->state())) return;
  // The terminal update is acknowledged: the task is complete (Mesos: completeTask).
  auto* e = impl_->ExecutorOfTask(framework_id.value(), task_id.value());
  if (e == nullptr) return;
  auto it = e->tasks.find(task_id.value());
  if (it == e->tasks.end()) return;
  e->completed.push_back(std::move(it->second));
  e->tasks.erase(it);
  if (e->completed.size() > kMaxCompletedTasks) e->completed.pop_front();
}

void Agent::FrameworkMessage(const mesos::FrameworkID& framework_id,
                             const mesos::ExecutorID& executor_id, const std::string& data) {
  if (!impl_->started) return;
  auto* e = impl_->FindExecutor(framework_id.value(), executor_id.value());
  if (e == nullptr || e->command) {
    SPDLOG_WARN("agent {}: message for unknown executor {} dropped", impl_->id.value(),
                executor_id.value());
    return;
  }
  Event event;
  event.set_type(Event::MESSAGE);
  event.mutable_message()->set_data(data);
  if (!impl_->WriteEvent(*e, event)) {
    SPDLOG_WARN("agent {}: executor {} not connected; message dropped", impl_->id.value(),
                executor_id.value());
  }
}

void Agent::CheckpointResources(const std::vector<mesos::Resource>& total) {
  impl_->CheckpointResources(total);
}

void Agent::RequestReregistration() {
  if (!impl_->started) return;
  impl_->SendReregistration();
}

}  // namespace etcd_mesos::local
