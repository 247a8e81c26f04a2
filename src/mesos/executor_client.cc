#include "mesos/executor_client.h"

#include <algorithm>
#include <cstdlib>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "common/encoding.h"

namespace etcd_mesos::mesos_client {

namespace asio = boost::asio;
using mesos::executor::Call;
using mesos::executor::Event;

namespace {

constexpr size_t kMaxErrorBody = 4096;
constexpr char kTokenVariable[] = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";

Result<std::string> Required(const EnvLookup& lookup, std::string_view name) {
  auto value = lookup(name);
  if (!value || value->empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "{} is not set in the executor environment",
                     name);
  }
  return std::move(*value);
}

Result<Duration> DurationVariable(const EnvLookup& lookup, std::string_view name) {
  auto text = Required(lookup, name);
  if (!text.ok()) return text.error();
  auto d = ParseDuration(*text);
  if (!d.ok()) {
    return MakeError(ErrorCode::kInvalidArgument, "{}='{}' is not a duration: {}", name, *text,
                     d.error().message);
  }
  return *d;
}

// `slave(1)@10.0.0.5:5051` → http://10.0.0.5:5051/slave(1)/api/v1/executor, as Mesos's own
// executor library builds it (src/executor/executor.cpp).
Result<HttpUrl> UrlFromPid(std::string_view pid) {
  size_t at = pid.find('@');
  if (at == std::string_view::npos || at == 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "MESOS_SLAVE_PID='{}' is not of the form id@ip:port", pid);
  }
  std::string_view id = pid.substr(0, at);
  if (id.find_first_of("/ ?#") != std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument, "MESOS_SLAVE_PID='{}' has a malformed process id",
                     pid);
  }
  auto endpoint = ParseHostPort(pid.substr(at + 1));
  if (!endpoint.ok()) {
    return MakeError(ErrorCode::kInvalidArgument, "MESOS_SLAVE_PID='{}': {}", pid,
                     endpoint.error().message);
  }
  HttpUrl url;
  url.endpoint = *endpoint;
  url.path = fmt::format("/{}/api/v1/executor", id);
  return url;
}

// The agent's answer for a log line. A 401's reason is in its challenge (the body is empty), which
// never holds the token itself.
std::string Describe(const net::HttpResponse& response) {
  std::string body = response.body.substr(0, kMaxErrorBody);
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
  std::string text = fmt::format("HTTP {}{}{}", response.status, body.empty() ? "" : ": ", body);
  if (response.status == 401) {
    text += fmt::format(" (executor authentication failed: WWW-Authenticate: {})",
                        response.Header("WWW-Authenticate").value_or("none"));
  }
  return text;
}

double WallClockSeconds() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration<double>(now).count();
}

}  // namespace

Result<ExecutorEnvironment> ReadExecutorEnvironment(const EnvLookup& lookup) {
  ExecutorEnvironment env;
  auto framework_id = Required(lookup, "MESOS_FRAMEWORK_ID");
  if (!framework_id.ok()) return framework_id.error();
  env.framework_id = std::move(*framework_id);
  auto executor_id = Required(lookup, "MESOS_EXECUTOR_ID");
  if (!executor_id.ok()) return executor_id.error();
  env.executor_id = std::move(*executor_id);
  env.agent_id = lookup("MESOS_SLAVE_ID").value_or("");

  if (auto pid = lookup("MESOS_SLAVE_PID"); pid && !pid->empty()) {
    auto url = UrlFromPid(*pid);
    if (!url.ok()) return url.error();
    env.agent_url = std::move(*url);
  } else if (auto endpoint = lookup("MESOS_AGENT_ENDPOINT"); endpoint && !endpoint->empty()) {
    auto hp = ParseHostPort(*endpoint);
    if (!hp.ok()) {
      return MakeError(ErrorCode::kInvalidArgument, "MESOS_AGENT_ENDPOINT='{}': {}", *endpoint,
                       hp.error().message);
    }
    env.agent_url.endpoint = *hp;
    env.agent_url.path = "/api/v1/executor";
  } else {
    return MakeError(ErrorCode::kInvalidArgument,
                     "neither MESOS_SLAVE_PID nor MESOS_AGENT_ENDPOINT is set in the executor "
                     "environment");
  }

  auto directory = Required(lookup, "MESOS_DIRECTORY");
  if (!directory.ok()) return directory.error();
  env.directory = std::move(*directory);
  env.sandbox = lookup("MESOS_SANDBOX").value_or("");
  if (env.sandbox.empty()) env.sandbox = env.directory;

  if (auto checkpoint = lookup("MESOS_CHECKPOINT")) {
    if (*checkpoint == "1") {
      env.checkpoint = true;
    } else if (*checkpoint == "0" || checkpoint->empty()) {
      env.checkpoint = false;
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       "MESOS_CHECKPOINT='{}' is neither \"1\" nor \"0\"", *checkpoint);
    }
  }
  if (env.checkpoint) {
    auto recovery = DurationVariable(lookup, "MESOS_RECOVERY_TIMEOUT");
    if (!recovery.ok()) return recovery.error();
    env.recovery_timeout = *recovery;
    auto backoff = DurationVariable(lookup, "MESOS_SUBSCRIPTION_BACKOFF_MAX");
    if (!backoff.ok()) return backoff.error();
    env.subscription_backoff_max = *backoff;
  }
  if (lookup("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD")) {
    auto grace = DurationVariable(lookup, "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD");
    if (!grace.ok()) return grace.error();
    env.shutdown_grace_period = *grace;
  }
  if (auto token = lookup(kTokenVariable); token && !token->empty()) {
    env.authentication_token = std::move(*token);
  }
  return env;
}

Result<ExecutorEnvironment> ReadExecutorEnvironmentFromProcess() {
  auto env = ReadExecutorEnvironment([](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
  // As Mesos's executor library (src/executor/executor.cpp): once read, the token leaves the
  // environment, so that no process the executor starts (etcd, etcdctl) inherits it.
  ::unsetenv(kTokenVariable);
  return env;
}

// ---- ExecutorClient --------------------------------------------------------------------------

ExecutorClient::ExecutorClient(asio::io_context& io, ExecutorEnvironment env, Options options,
                               Callbacks callbacks)
    : io_(io),
      env_(std::move(env)),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      retry_timer_(io),
      recovery_timer_(io),
      rng_(options_.seed) {}

ExecutorClient::~ExecutorClient() {
  *alive_ = false;
  stream_.reset();
}

void ExecutorClient::Start() {
  if (state_ != State::kIdle) return;
  // The first subscription gets the same bounded patience as a recovery.
  auto patience = env_.checkpoint
                      ? std::chrono::duration_cast<std::chrono::milliseconds>(env_.recovery_timeout)
                      : options_.registration_timeout;
  ArmRecoveryTimer(patience, "subscribe to the agent");
  Subscribe();
}

void ExecutorClient::Stop() {
  if (state_ == State::kDone) return;
  state_ = State::kDone;
  *alive_ = false;
  alive_ = std::make_shared<bool>(true);  // later SendMessage callbacks still get their answer
  stream_.reset();
  retry_timer_.cancel();
  recovery_timer_.cancel();
  recovering_ = false;
  calls_.clear();
  call_in_flight_ = false;
}

std::vector<mesos::TaskStatus> ExecutorClient::unacknowledged_updates() const {
  std::vector<mesos::TaskStatus> out;
  for (const auto& u : unacked_updates_) out.push_back(u.status);
  return out;
}

Call ExecutorClient::BaseCall(Call::Type type) const {
  Call call;
  call.set_type(type);
  call.mutable_framework_id()->set_value(env_.framework_id);
  call.mutable_executor_id()->set_value(env_.executor_id);
  return call;
}

net::HttpRequest ExecutorClient::BaseRequest(std::string body) const {
  net::HttpRequest request;
  request.method = net::Verb::post;
  request.endpoint = env_.agent_url.endpoint;
  request.target = env_.agent_url.path;
  std::string media_type(mesos_codec::MediaType(options_.content_type));
  request.headers = {{"Content-Type", media_type}, {"Accept", media_type}};
  if (env_.authentication_token) {
    request.headers.push_back({"Authorization", "Bearer " + *env_.authentication_token});
  }
  request.body = std::move(body);
  request.timeout = options_.call_timeout;
  return request;
}

std::chrono::milliseconds ExecutorClient::NextBackoff() {
  // Full jitter below a cap that doubles per attempt and never exceeds the agent's
  // MESOS_SUBSCRIPTION_BACKOFF_MAX.
  auto max = std::chrono::duration_cast<std::chrono::milliseconds>(env_.subscription_backoff_max);
  auto cap = options_.backoff_min * (int64_t{1} << std::min(attempt_, 20));
  cap = std::min(cap, max);
  ++attempt_;
  if (cap.count() <= 0) return std::chrono::milliseconds(0);
  std::uniform_int_distribution<int64_t> pick(cap.count() / 2, cap.count());
  return std::chrono::milliseconds(pick(rng_));
}

void ExecutorClient::Subscribe() {
  state_ = State::kSubscribing;
  ++epoch_;
  stream_head_.reset();
  error_body_.clear();
  decoder_ = recordio::Decoder();
  calls_.erase(call_in_flight_ ? calls_.begin() + 1 : calls_.begin(), calls_.end());

  Call call = BaseCall(Call::SUBSCRIBE);
  auto* subscribe = call.mutable_subscribe();
  for (auto& u : unacked_updates_) {
    *subscribe->add_unacknowledged_updates()->mutable_status() = u.status;
    u.sent = true;  // it travels inside SUBSCRIBE; posting it again would be a duplicate
  }
  for (const auto& task : unacked_tasks_) *subscribe->add_unacknowledged_tasks() = task;
  SPDLOG_INFO("executor: subscribing to {} ({} unacknowledged updates, {} tasks)",
              env_.agent_url.ToString(), unacked_updates_.size(), unacked_tasks_.size());

  auto request = BaseRequest(mesos_codec::Encode(call, options_.content_type));
  request.timeout = options_.subscribe_timeout;
  stream_ = net::OpenHttpStream(io_, std::move(request),
                                {[this](const net::HttpResponse& head) { OnStreamHeaders(head); },
                                 [this](std::string_view data) { OnStreamData(data); },
                                 [this](Status end) { OnStreamEnd(std::move(end)); }});
}

void ExecutorClient::OnStreamHeaders(const net::HttpResponse& head) { stream_head_ = head; }

void ExecutorClient::OnStreamData(std::string_view data) {
  if (!stream_head_ || stream_head_->status != 200) {
    if (error_body_.size() < kMaxErrorBody) error_body_.append(data);
    return;
  }
  auto type = mesos_codec::ParseContentType(stream_head_->Header("Content-Type").value_or(""));
  if (type != options_.content_type) {
    return Lose(MakeError(ErrorCode::kInvalidArgument,
                          "agent answered SUBSCRIBE with Content-Type '{}', expected '{}'",
                          stream_head_->Header("Content-Type").value_or(""),
                          mesos_codec::MediaType(options_.content_type)));
  }
  decoder_.Feed(data);
  auto alive = alive_;  // a callback may stop or destroy the client
  while (*alive && (state_ == State::kSubscribing || state_ == State::kSubscribed)) {
    auto record = decoder_.Next();
    if (!record.ok()) {
      return Disconnect(record.error().Context("reading the executor event stream"));
    }
    if (!record->has_value()) return;
    Event event;
    if (auto decoded = mesos_codec::Decode(**record, options_.content_type, &event);
        !decoded.ok()) {
      return Disconnect(decoded.error().Context("decoding an executor event"));
    }
    HandleEvent(event);
  }
}

void ExecutorClient::OnStreamEnd(Status status) {
  if (stream_head_ && stream_head_->status != 200) {
    net::HttpResponse answer = *stream_head_;
    answer.body = error_body_;
    // 503: the agent is still recovering; anything else will not change by asking again.
    if (answer.status == 503) {
      return Disconnect(
          MakeError(ErrorCode::kUnavailable, "agent refused SUBSCRIBE: {}", Describe(answer)));
    }
    return Lose(MakeError(answer.status == 401 ? ErrorCode::kUnauthenticated : ErrorCode::kRefused,
                          "agent refused SUBSCRIBE: {}", Describe(answer)));
  }
  if (status.ok()) {
    return Disconnect(MakeError(ErrorCode::kUnavailable, "agent closed the event stream"));
  }
  Disconnect(status.error().Context("executor event stream"));
}

void ExecutorClient::HandleEvent(const Event& event) {
  switch (event.type()) {
    case Event::SUBSCRIBED: {
      state_ = State::kSubscribed;
      ever_subscribed_ = true;
      attempt_ = 0;
      recovering_ = false;
      recovery_timer_.cancel();
      SPDLOG_INFO("executor: subscribed to agent {}", event.subscribed().agent_info().hostname());
      // Updates that arrived after SUBSCRIBE left go out now, in order.
      for (const auto& u : unacked_updates_) {
        if (!u.sent) PostUpdate(u.status);
      }
      if (callbacks_.on_subscribed) callbacks_.on_subscribed(event.subscribed());
      return;
    }
    case Event::LAUNCH:
      RememberTask(event.launch().task());
      if (callbacks_.on_launch) callbacks_.on_launch(event.launch().task());
      return;
    case Event::LAUNCH_GROUP:
      for (const auto& task : event.launch_group().task_group().tasks()) RememberTask(task);
      if (callbacks_.on_launch_group) callbacks_.on_launch_group(event.launch_group().task_group());
      return;
    case Event::KILL:
      if (callbacks_.on_kill) callbacks_.on_kill(event.kill());
      return;
    case Event::ACKNOWLEDGED:
      HandleAcknowledged(event.acknowledged());
      return;
    case Event::MESSAGE:
      if (callbacks_.on_message) callbacks_.on_message(event.message().data());
      return;
    case Event::SHUTDOWN:
      if (callbacks_.on_shutdown) callbacks_.on_shutdown();
      return;
    case Event::ERROR:
      SPDLOG_ERROR("executor: agent reported an error: {}", event.error().message());
      if (callbacks_.on_error) callbacks_.on_error(event.error().message());
      return;
    case Event::UNKNOWN:
    default:
      // HEARTBEAT (type 9, absent from our .proto) and any newer event land here.
      if (callbacks_.on_heartbeat) callbacks_.on_heartbeat();
      return;
  }
}

void ExecutorClient::HandleAcknowledged(const Event::Acknowledged& ack) {
  auto it = std::find_if(unacked_updates_.begin(), unacked_updates_.end(),
                         [&](const PendingUpdate& u) { return u.status.uuid() == ack.uuid(); });
  if (it == unacked_updates_.end()) {
    // The agent re-acks duplicates; ours was already removed.
    SPDLOG_DEBUG("executor: acknowledgement for unknown update {}", UuidToString(ack.uuid()));
  } else {
    unacked_updates_.erase(it);
  }
  // A task counts as delivered once any update about it is acknowledged.
  std::erase_if(unacked_tasks_, [&](const mesos::TaskInfo& task) {
    return task.task_id().value() == ack.task_id().value();
  });
  if (callbacks_.on_acknowledged) callbacks_.on_acknowledged(ack);
}

void ExecutorClient::RememberTask(const mesos::TaskInfo& task) {
  auto it = std::find_if(unacked_tasks_.begin(), unacked_tasks_.end(), [&](const auto& t) {
    return t.task_id().value() == task.task_id().value();
  });
  if (it != unacked_tasks_.end()) {
    *it = task;
    return;
  }
  if (unacked_tasks_.size() >= options_.max_unacknowledged_tasks) {
    SPDLOG_ERROR("executor: {} unacknowledged tasks; not keeping task {} for re-subscription",
                 unacked_tasks_.size(), task.task_id().value());
    return;
  }
  unacked_tasks_.push_back(task);
}

void ExecutorClient::Disconnect(const Error& reason) {
  if (state_ == State::kDone) return;
  stream_.reset();
  // Queued updates travel in the next SUBSCRIBE; queued messages are best effort and fail now.
  auto first = call_in_flight_ ? calls_.begin() + 1 : calls_.begin();
  std::vector<std::function<void(Status)>> failed;
  for (auto it = first; it != calls_.end(); ++it) {
    if (it->done) failed.push_back(std::move(it->done));
  }
  calls_.erase(first, calls_.end());
  for (auto& done : failed) {
    asio::post(io_, [done = std::move(done), reason] { done(reason); });
  }

  bool was_subscribed = state_ == State::kSubscribed;
  state_ = State::kWaiting;
  SPDLOG_WARN("executor: disconnected from agent: {}", reason.message);
  if (was_subscribed && callbacks_.on_disconnected) {
    auto alive = alive_;
    callbacks_.on_disconnected(reason);
    if (!*alive || state_ != State::kWaiting) return;
  }
  if (ever_subscribed_ && !env_.checkpoint) {
    return Lose(
        reason.Context("connection to the agent lost and the framework does not checkpoint"));
  }
  if (!recovering_) {
    ArmRecoveryTimer(std::chrono::duration_cast<std::chrono::milliseconds>(env_.recovery_timeout),
                     "re-subscribe to the agent");
  }
  ScheduleResubscribe();
}

void ExecutorClient::ArmRecoveryTimer(std::chrono::milliseconds timeout, std::string what) {
  recovering_ = true;
  recovery_timer_.expires_after(timeout);
  recovery_timer_.async_wait(
      [this, alive = alive_, timeout, what = std::move(what)](const boost::system::error_code& ec) {
        if (ec || !*alive || state_ == State::kSubscribed || state_ == State::kDone) return;
        Lose(MakeError(ErrorCode::kUnavailable, "recovery timed out: could not {} within {}", what,
                       FormatDuration(timeout)));
      });
}

void ExecutorClient::ScheduleResubscribe() {
  auto delay = NextBackoff();
  SPDLOG_INFO("executor: re-subscribing in {}", FormatDuration(delay));
  retry_timer_.expires_after(delay);
  retry_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive || state_ != State::kWaiting) return;
    Subscribe();
  });
}

void ExecutorClient::Lose(const Error& reason) {
  if (state_ == State::kDone) return;
  SPDLOG_ERROR("executor: giving up on the agent: {}", reason.message);
  auto on_lost = callbacks_.on_lost;
  Stop();
  if (on_lost) on_lost(reason);
}

Result<std::string> ExecutorClient::SendUpdate(mesos::TaskStatus status) {
  if (state_ == State::kDone) {
    return MakeError(ErrorCode::kCancelled, "executor client is stopped; update for {} not sent",
                     status.task_id().value());
  }
  if (unacked_updates_.size() >= options_.max_unacknowledged_updates) {
    return MakeError(ErrorCode::kUnavailable,
                     "{} status updates are waiting for acknowledgement; update for {} refused",
                     unacked_updates_.size(), status.task_id().value());
  }
  std::string uuid = NewUuidBytes();
  status.set_uuid(uuid);
  status.set_source(mesos::TaskStatus::SOURCE_EXECUTOR);
  status.mutable_executor_id()->set_value(env_.executor_id);
  status.set_timestamp(WallClockSeconds());
  bool now = state_ == State::kSubscribed;
  unacked_updates_.push_back({status, now});
  if (now) PostUpdate(status);
  return uuid;
}

void ExecutorClient::PostUpdate(const mesos::TaskStatus& status) {
  for (auto& u : unacked_updates_) {
    if (u.status.uuid() == status.uuid()) u.sent = true;
  }
  Call call = BaseCall(Call::UPDATE);
  *call.mutable_update()->mutable_status() = status;
  Enqueue(std::move(call), nullptr);
}

void ExecutorClient::SendMessage(std::string data, std::function<void(Status)> done) {
  if (state_ != State::kSubscribed) {
    if (done) {
      asio::post(io_, [done = std::move(done)] {
        done(MakeError(ErrorCode::kUnavailable, "not subscribed to the agent; message dropped"));
      });
    }
    return;
  }
  Call call = BaseCall(Call::MESSAGE);
  call.mutable_message()->set_data(std::move(data));
  Enqueue(std::move(call), std::move(done));
}

void ExecutorClient::Enqueue(Call call, std::function<void(Status)> done) {
  calls_.push_back({std::move(call), std::move(done), epoch_});
  PumpCalls();
}

void ExecutorClient::PumpCalls() {
  if (call_in_flight_ || calls_.empty() || state_ != State::kSubscribed) return;
  call_in_flight_ = true;
  net::HttpFetch(io_, BaseRequest(mesos_codec::Encode(calls_.front().call, options_.content_type)),
                 [this, alive = alive_](Result<net::HttpResponse> response) {
                   if (!*alive) return;
                   OnCallDone(std::move(response));
                 });
}

void ExecutorClient::OnCallDone(Result<net::HttpResponse> response) {
  if (calls_.empty()) return;  // Stop() cleared the queue while the call was out
  OutgoingCall call = std::move(calls_.front());
  calls_.pop_front();
  call_in_flight_ = false;
  // A call from an earlier subscription: its update (if any) went out again inside SUBSCRIBE,
  // and its failure says nothing about the current connection.
  const bool current = call.epoch == epoch_;
  const bool is_update = call.call.type() == Call::UPDATE;
  const char* what = is_update ? "UPDATE" : "MESSAGE";

  Status result;
  if (!response.ok()) {
    result = response.error().Context(what);
  } else if (response->status != 202 && response->status != 200) {
    // 401 and 403 say who may speak, not that the update is bad: it is kept.
    unsigned http = response->status;
    ErrorCode code = http == 401                                ? ErrorCode::kUnauthenticated
                     : http >= 400 && http < 500 && http != 403 ? ErrorCode::kInvalidArgument
                                                                : ErrorCode::kUnavailable;
    result = MakeError(code, "agent answered {} with {}", what, Describe(*response));
  }
  if (call.done) call.done(result);
  if (!result.ok() && is_update && current) {
    const auto& status = call.call.update().status();
    if (result.error().code == ErrorCode::kInvalidArgument) {
      // The agent will never take this update; carrying it into every SUBSCRIBE would only get
      // the subscription refused too.
      SPDLOG_ERROR("executor: update {} for task {} refused, dropping it: {}",
                   UuidToString(status.uuid()), status.task_id().value(), result.error().message);
      std::erase_if(unacked_updates_,
                    [&](const PendingUpdate& u) { return u.status.uuid() == status.uuid(); });
    } else {
      SPDLOG_WARN("executor: update {} for task {} not delivered, kept for re-subscription: {}",
                  UuidToString(status.uuid()), status.task_id().value(), result.error().message);
    }
    auto alive = alive_;
    if (callbacks_.on_update_failed) callbacks_.on_update_failed(status, result.error());
    if (!*alive) return;
  }
  if (!response.ok() && current && state_ == State::kSubscribed) {
    // The agent cannot be reached for calls: the stream is as good as gone.
    return Disconnect(result.error());
  }
  PumpCalls();
  if (calls_done() && callbacks_.on_calls_done) callbacks_.on_calls_done();
}

}  // namespace etcd_mesos::mesos_client
