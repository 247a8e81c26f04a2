// ExecutorClient: an executor's connection to its Mesos agent over the v1 executor HTTP API.
//
// It keeps one SUBSCRIBE stream open and hands the agent's events up. It owns the reliability
// half of status updates that belongs to the executor (reference/mesos-v1-api.md 2.3): every
// update gets a fresh UUID and stays in an ordered unacknowledged list until the agent sends
// ACKNOWLEDGED for that UUID; every task received through LAUNCH stays in an unacknowledged list
// until an update for it is acknowledged. When the stream drops and the framework checkpoints,
// it re-subscribes with capped, jittered backoff for up to the recovery timeout, carrying both
// lists in SUBSCRIBE, which is how an update sent while the agent was away reaches it (once, in
// order). Without checkpointing a drop is final, as in Mesos's own executor library.
//
// Calls (UPDATE, MESSAGE) go out one at a time, in order, each on its own connection: the agent
// keeps one queue of updates per task, and two concurrent POSTs could overtake each other.
//
// Threading: lives on one io_context thread; all callbacks run there, never inline inside the call
// that caused them; not thread-safe. Destroying the client ends every callback.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/duration.h"
#include "common/result.h"
#include "common/uri.h"
#include "mesos/codec.h"
#include "mesos/recordio.h"
#include "mesos/v1.h"
#include "net/http.h"

namespace etcd_mesos::mesos_client {

// What the agent tells an executor through its environment (reference/mesos-v1-api.md 2.4).
struct ExecutorEnvironment {
  std::string framework_id;
  std::string executor_id;
  std::string agent_id;  // MESOS_SLAVE_ID; empty when the agent did not say
  // Where calls go: from MESOS_SLAVE_PID (`slave(1)@ip:port` → http://ip:port/slave(1)/api/v1/
  // executor), which is the only form that reaches an agent sharing a port with others; else
  // MESOS_AGENT_ENDPOINT + /api/v1/executor.
  HttpUrl agent_url;
  std::string directory;  // the sandbox on the host
  std::string sandbox;    // the sandbox as the container sees it (= directory without an image)
  bool checkpoint = false;
  // Only meaningful with checkpoint: how long to keep trying to re-subscribe after a drop, and the
  // longest wait between two attempts.
  Duration recovery_timeout = std::chrono::minutes(15);
  Duration subscription_backoff_max = std::chrono::seconds(2);
  // How long the executor has between SHUTDOWN and being killed.
  Duration shutdown_grace_period = std::chrono::seconds(5);
  std::optional<std::string> authentication_token;  // sent as `Authorization: Bearer <token>`
};

using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

// Reads the environment through `lookup` (so tests need not touch the process environment).
// Required: MESOS_FRAMEWORK_ID, MESOS_EXECUTOR_ID, MESOS_DIRECTORY, one of MESOS_SLAVE_PID or
// MESOS_AGENT_ENDPOINT, and with MESOS_CHECKPOINT=1 also MESOS_RECOVERY_TIMEOUT and
// MESOS_SUBSCRIPTION_BACKOFF_MAX (as Mesos's library requires).
// MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD defaults to 5secs, so an executor started by hand still
// works. A missing or malformed variable is kInvalidArgument naming it.
Result<ExecutorEnvironment> ReadExecutorEnvironment(const EnvLookup& lookup);
// The same over this process's environment; then takes MESOS_EXECUTOR_AUTHENTICATION_TOKEN out
// of it, as Mesos's executor library does, so that the executor's children do not inherit it.
Result<ExecutorEnvironment> ReadExecutorEnvironmentFromProcess();

class ExecutorClient {
 public:
  struct Options {
    mesos_codec::ContentType content_type = mesos_codec::ContentType::kProtobuf;
    // First wait before re-subscribing; doubles per attempt up to subscription_backoff_max.
    std::chrono::milliseconds backoff_min{100};
    std::chrono::milliseconds call_timeout{30'000};
    std::chrono::milliseconds subscribe_timeout{30'000};  // until the stream's headers arrive
    // Without checkpointing, how long the first subscription may keep failing (the agent kills an
    // executor that has not subscribed after --executor_registration_timeout, 1 min by default).
    std::chrono::milliseconds registration_timeout{60'000};
    // Bounds on what is kept for re-subscription; SendUpdate refuses beyond it.
    size_t max_unacknowledged_updates = 1024;
    size_t max_unacknowledged_tasks = 1024;
    uint64_t seed = std::random_device{}();
  };
  struct Callbacks {
    std::function<void(const mesos::executor::Event::Subscribed&)> on_subscribed;
    std::function<void(const mesos::TaskInfo&)> on_launch;
    std::function<void(const mesos::TaskGroupInfo&)> on_launch_group;
    std::function<void(const mesos::executor::Event::Kill&)> on_kill;
    // After the update has left the unacknowledged list.
    std::function<void(const mesos::executor::Event::Acknowledged&)> on_acknowledged;
    std::function<void(const std::string& data)> on_message;
    std::function<void()> on_shutdown;
    std::function<void(const std::string& message)> on_error;
    // HEARTBEAT is not in the Debian-shipped executor.proto, so it decodes as an event of type
    // UNKNOWN with no payload; either one counts as a heartbeat.
    std::function<void()> on_heartbeat;
    // The stream ended; with checkpointing the client is re-subscribing.
    std::function<void(const Error&)> on_disconnected;
    // The client gave up (no checkpointing and the connection dropped, recovery timed out, the
    // agent refused SUBSCRIBE): the executor should shut its tasks down and exit.
    std::function<void(const Error&)> on_lost;
    // The agent refused an update (not 202). A 4xx other than 401 and 403 means the update itself
    // is bad: it leaves the unacknowledged list, since resending it would fail the same way.
    std::function<void(const mesos::TaskStatus&, const Error&)> on_update_failed;
    // The agent has answered every call sent so far (or it failed) and none is waiting.
    std::function<void()> on_calls_done;
  };

  ExecutorClient(boost::asio::io_context& io, ExecutorEnvironment env, Options options,
                 Callbacks callbacks);
  ~ExecutorClient();
  ExecutorClient(const ExecutorClient&) = delete;
  ExecutorClient& operator=(const ExecutorClient&) = delete;

  void Start();
  // Closes the stream and stops retrying; no callback runs afterwards.
  void Stop();

  // Sends a status update: fills uuid (fresh), source SOURCE_EXECUTOR, executor_id and timestamp,
  // and keeps it until acknowledged. Returns the uuid (16 raw bytes). While not subscribed the
  // update is queued and goes out with the next SUBSCRIBE. Refused (kUnavailable) when the
  // unacknowledged list is full, and (kCancelled) once the client is stopped or lost.
  Result<std::string> SendUpdate(mesos::TaskStatus status);
  // Sends a framework message. Best effort, as in Mesos: `done` gets kUnavailable when not
  // subscribed, and the HTTP error otherwise.
  void SendMessage(std::string data, std::function<void(Status)> done = nullptr);

  bool subscribed() const { return state_ == State::kSubscribed; }
  // No UPDATE or MESSAGE is queued or waiting for the agent's answer.
  bool calls_done() const { return calls_.empty() && !call_in_flight_; }
  const ExecutorEnvironment& environment() const { return env_; }
  std::vector<mesos::TaskStatus> unacknowledged_updates() const;
  std::vector<mesos::TaskInfo> unacknowledged_tasks() const { return unacked_tasks_; }

 private:
  enum class State { kIdle, kSubscribing, kSubscribed, kWaiting, kDone };
  struct PendingUpdate {
    mesos::TaskStatus status;
    bool sent = false;  // already on its way to the agent on the current subscription
  };
  struct OutgoingCall {
    mesos::executor::Call call;
    std::function<void(Status)> done;
    uint64_t epoch = 0;  // the subscription it was sent on
  };

  void Subscribe();
  void OnStreamHeaders(const net::HttpResponse& head);
  void OnStreamData(std::string_view data);
  void OnStreamEnd(Status status);
  void HandleEvent(const mesos::executor::Event& event);
  void HandleAcknowledged(const mesos::executor::Event::Acknowledged& ack);
  void RememberTask(const mesos::TaskInfo& task);
  void Disconnect(const Error& reason);
  void ScheduleResubscribe();
  void ArmRecoveryTimer(std::chrono::milliseconds timeout, std::string what);
  void Lose(const Error& reason);
  void Enqueue(mesos::executor::Call call, std::function<void(Status)> done);
  void PumpCalls();
  void OnCallDone(Result<net::HttpResponse> response);
  void PostUpdate(const mesos::TaskStatus& status);
  mesos::executor::Call BaseCall(mesos::executor::Call::Type type) const;
  net::HttpRequest BaseRequest(std::string body) const;
  std::chrono::milliseconds NextBackoff();

  boost::asio::io_context& io_;
  ExecutorEnvironment env_;
  Options options_;
  Callbacks callbacks_;
  State state_ = State::kIdle;
  bool ever_subscribed_ = false;
  std::unique_ptr<net::HttpStream> stream_;
  std::optional<net::HttpResponse> stream_head_;
  std::string error_body_;
  recordio::Decoder decoder_;
  std::deque<PendingUpdate> unacked_updates_;  // in the order they were sent
  std::vector<mesos::TaskInfo> unacked_tasks_;
  std::deque<OutgoingCall> calls_;  // calls_.front() is in flight when call_in_flight_
  bool call_in_flight_ = false;
  uint64_t epoch_ = 0;  // counts subscriptions
  boost::asio::steady_timer retry_timer_;
  boost::asio::steady_timer recovery_timer_;
  bool recovering_ = false;
  int attempt_ = 0;
  std::mt19937_64 rng_;
  // Guards completions that may run after destruction or Stop().
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace etcd_mesos::mesos_client
