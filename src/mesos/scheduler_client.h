// SchedulerClient: a framework's connection to the leading Mesos master over the v1 scheduler
// HTTP API. It keeps one SUBSCRIBE stream open (re-subscribing with the framework id after any
// drop), sends calls on separate connections with the current Mesos-Stream-Id, follows a 307 to
// the leading master (the Location is protocol-relative), treats silence longer than
// `missed_heartbeats` heartbeat intervals as a dead stream, and backs off with capped jitter
// between attempts. It makes no decisions about offers or tasks: it hands events up. With a
// Credential every request carries HTTP Basic authentication; a master that refuses it (401) is
// logged as an error naming the principal (never the secret) and asked again with backoff.
//
// Threading: lives on one io_context thread; all callbacks run there; not thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/result.h"
#include "common/uri.h"
#include "mesos/codec.h"
#include "mesos/recordio.h"
#include "mesos/v1.h"
#include "net/http.h"

namespace etcd_mesos::mesos_client {

// Capped exponential backoff with full jitter: delay = uniform(min, min(max, min * 2^attempt)).
class Backoff {
 public:
  Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, uint64_t seed);
  std::chrono::milliseconds Next();
  void Reset() { attempt_ = 0; }

 private:
  std::chrono::milliseconds min_;
  std::chrono::milliseconds max_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

struct Credential {
  std::string principal;
  std::string secret;
};

class SchedulerClient {
 public:
  struct Options {
    mesos_codec::ContentType content_type = mesos_codec::ContentType::kProtobuf;
    std::optional<Credential> credential;
    // Silence for this many heartbeat intervals means the stream is dead (Mesos suggests ~5).
    int missed_heartbeats = 5;
    std::chrono::milliseconds backoff_min{500};
    std::chrono::milliseconds backoff_max{15'000};
    std::chrono::milliseconds call_timeout{30'000};
    std::chrono::milliseconds subscribe_timeout{30'000};  // until the stream's headers arrive
    int max_redirects = 5;
    uint64_t seed = std::random_device{}();
  };
  struct Callbacks {
    // The master accepted the subscription; the framework id is known from here on.
    std::function<void(const mesos::scheduler::Event::Subscribed&)> on_subscribed;
    // Every event except SUBSCRIBED and HEARTBEAT (which the client handles). After an ERROR
    // the client has stopped: Mesos is done with this subscription.
    std::function<void(const mesos::scheduler::Event&)> on_event;
    // The subscription ended (stream dropped, heartbeats missed, refused); the client will try
    // again after a backoff unless Stop() is called.
    std::function<void(const Error&)> on_disconnected;
  };

  SchedulerClient(boost::asio::io_context& io, Options options, Callbacks callbacks);
  ~SchedulerClient();
  SchedulerClient(const SchedulerClient&) = delete;
  SchedulerClient& operator=(const SchedulerClient&) = delete;

  // Starts subscribing to `master` with `framework`. If framework.id is set, it re-subscribes
  // with that id (framework failover).
  void Start(HostPort master, mesos::FrameworkInfo framework);
  // Points the client at a newly detected leading master and subscribes there at once (no
  // backoff). The same address again (a new election) subscribes at once if not subscribed.
  // A master that answers SUBSCRIBE with a redirect to itself (not elected yet) or with 503 (not
  // recovered yet) is asked again every 250 ms, without counting as a failure.
  void SetMaster(HostPort master);
  // Replaces the FrameworkInfo used for the next (re-)subscription.
  void UpdateFrameworkInfo(mesos::FrameworkInfo framework);
  void Stop();

  // Sends a call on its own connection. framework_id is filled in. `done` gets OK on 202 (or
  // 200), kUnavailable when not subscribed or the master could not be reached, and otherwise an
  // error carrying the HTTP status and Mesos's message.
  void Send(mesos::scheduler::Call call, std::function<void(Status)> done = nullptr);

  bool subscribed() const { return subscribed_; }
  const std::optional<std::string>& framework_id() const { return framework_id_; }
  const HostPort& master() const { return master_; }

 private:
  void Subscribe();
  void OnStreamHeaders(const net::HttpResponse& head);
  void OnStreamData(std::string_view data);
  void OnStreamEnd(Status status);
  void HandleEvent(const mesos::scheduler::Event& event);
  void Disconnect(const Error& reason);
  Error Unauthenticated(const net::HttpResponse& head) const;
  void ArmHeartbeatTimer();
  void ScheduleResubscribe();
  void AskAgainSoon(const std::string& why);
  net::HttpRequest BaseRequest(std::string body) const;
  void SendTo(HostPort master, std::string body, int redirects, std::function<void(Status)> done);

  boost::asio::io_context& io_;
  Options options_;
  Callbacks callbacks_;
  mesos::FrameworkInfo framework_;
  HostPort master_;
  bool running_ = false;
  bool subscribed_ = false;
  int redirects_ = 0;
  bool not_ready_logged_ = false;  // "not elected / not ready yet" said once per episode
  std::optional<std::string> framework_id_;
  std::optional<std::string> stream_id_;
  std::chrono::duration<double> heartbeat_interval_{15.0};
  std::unique_ptr<net::HttpStream> stream_;
  std::optional<net::HttpResponse> stream_head_;
  std::string error_body_;
  recordio::Decoder decoder_;
  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::steady_timer retry_timer_;
  Backoff backoff_;
  // Guards callbacks that may run after destruction (posted completions).
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace etcd_mesos::mesos_client
