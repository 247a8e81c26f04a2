#include "mesos/scheduler_client.h"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

namespace etcd_mesos::mesos_client {

namespace asio = boost::asio;
using mesos::scheduler::Call;
using mesos::scheduler::Event;

Backoff::Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, uint64_t seed)
    : min_(min), max_(max), rng_(seed) {}

std::chrono::milliseconds Backoff::Next() {
  int64_t cap = min_.count();
  for (int i = 0; i < attempt_ && cap < max_.count(); ++i) cap *= 2;
  cap = std::min(cap, max_.count());
  if (attempt_ < 62) ++attempt_;
  std::uniform_int_distribution<int64_t> pick(min_.count(), std::max(min_.count(), cap));
  return std::chrono::milliseconds(pick(rng_));
}

namespace {

constexpr std::string_view kSchedulerPath = "/api/v1/scheduler";
// How soon to ask again a master that redirects SUBSCRIBE to itself (not elected yet).
constexpr std::chrono::milliseconds kNotElectedRetry{250};

// Maps a refused call to an error code: what the caller may do about it.
ErrorCode CodeForStatus(unsigned status) {
  switch (status) {
    case 400:
      return ErrorCode::kInvalidArgument;
    case 401:
      return ErrorCode::kUnauthenticated;
    case 403:  // not subscribed (yet, or any more): retry once subscribed again
    case 503:  // no leader, or the master is still recovering
      return ErrorCode::kUnavailable;
    default:
      return ErrorCode::kRefused;
  }
}

std::string Shorten(std::string_view body) {
  std::string s(body.substr(0, 300));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

SchedulerClient::SchedulerClient(asio::io_context& io, Options options, Callbacks callbacks)
    : io_(io),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      decoder_(),
      heartbeat_timer_(io),
      retry_timer_(io),
      backoff_(options_.backoff_min, options_.backoff_max, options_.seed) {}

SchedulerClient::~SchedulerClient() {
  *alive_ = false;
  Stop();
}

void SchedulerClient::Start(HostPort master, mesos::FrameworkInfo framework) {
  master_ = std::move(master);
  framework_ = std::move(framework);
  if (framework_.has_id()) framework_id_ = framework_.id().value();
  running_ = true;
  // Posted, so no callback can run inside Start().
  asio::post(io_, [this, alive = alive_] {
    if (*alive && running_ && !stream_) Subscribe();
  });
}

void SchedulerClient::SetMaster(HostPort master) {
  if (master == master_) {
    // A new election won at the same address (a master restarted in place): if we are waiting
    // to subscribe, this is the moment, not the end of a backoff.
    if (!running_ || subscribed_ || stream_) return;
    spdlog::info("master {} was elected again; subscribing now", master_.ToString());
    backoff_.Reset();
    retry_timer_.cancel();
    return Subscribe();
  }
  spdlog::info("leading master is now {} (was {})", master.ToString(), master_.ToString());
  master_ = std::move(master);
  if (!running_) return;
  backoff_.Reset();
  auto alive = alive_;
  Disconnect(
      MakeError(ErrorCode::kUnavailable, "leading master changed to {}", master_.ToString()));
  if (!*alive || !running_) return;
  // The detector has just named it: subscribe now, not after a backoff.
  retry_timer_.cancel();
  Subscribe();
}

void SchedulerClient::UpdateFrameworkInfo(mesos::FrameworkInfo framework) {
  framework_ = std::move(framework);
  if (framework_id_) framework_.mutable_id()->set_value(*framework_id_);
}

void SchedulerClient::Stop() {
  running_ = false;
  subscribed_ = false;
  stream_id_.reset();
  stream_.reset();
  heartbeat_timer_.cancel();
  retry_timer_.cancel();
}

net::HttpRequest SchedulerClient::BaseRequest(std::string body) const {
  net::HttpRequest request;
  request.method = net::Verb::post;
  request.endpoint = master_;
  request.target = std::string(kSchedulerPath);
  std::string media(mesos_codec::MediaType(options_.content_type));
  request.headers = {{"Content-Type", media}, {"Accept", media}};
  if (options_.credential) {
    request.headers.emplace_back(
        "Authorization",
        net::BasicAuthorization(options_.credential->principal, options_.credential->secret));
  }
  request.body = std::move(body);
  return request;
}

void SchedulerClient::Subscribe() {
  Call call;
  call.set_type(Call::SUBSCRIBE);
  *call.mutable_subscribe()->mutable_framework_info() = framework_;
  if (framework_id_) {
    // Re-subscription: the id goes at the top level and inside framework_info, both.
    call.mutable_framework_id()->set_value(*framework_id_);
    call.mutable_subscribe()->mutable_framework_info()->mutable_id()->set_value(*framework_id_);
  }
  auto request = BaseRequest(mesos_codec::Encode(call, options_.content_type));
  request.timeout = options_.subscribe_timeout;
  spdlog::info("subscribing to master {} as {}", master_.ToString(),
               framework_id_ ? "framework " + *framework_id_ : std::string("a new framework"));
  stream_head_.reset();
  error_body_.clear();
  decoder_ = recordio::Decoder();
  auto alive = alive_;
  stream_ = net::OpenHttpStream(io_, std::move(request),
                                {[this, alive](const net::HttpResponse& head) {
                                   if (*alive) OnStreamHeaders(head);
                                 },
                                 [this, alive](std::string_view data) {
                                   if (*alive) OnStreamData(data);
                                 },
                                 [this, alive](Status end) {
                                   if (*alive) OnStreamEnd(std::move(end));
                                 }});
}

void SchedulerClient::OnStreamHeaders(const net::HttpResponse& head) {
  stream_head_ = head;
  if (head.status == 307) {
    auto location = head.Header("Location");
    HttpUrl base{"http", master_, std::string(kSchedulerPath)};
    auto target =
        location
            ? ResolveLocation(base, *location)
            : Result<HttpUrl>(MakeError(ErrorCode::kUnavailable, "307 without a Location header"));
    if (target.ok() && target->endpoint == master_) {
      // Mesos answers so while it is not elected yet (a master restarted in place whose old
      // ZooKeeper session still names it the leader): not a redirect to follow, not a failure
      // to back off from. Ask again shortly; the detector's report of the election comes too.
      redirects_ = 0;
      return AskAgainSoon("redirects to itself: not elected yet");
    }
    if (!target.ok() || ++redirects_ > options_.max_redirects) {
      redirects_ = 0;
      return Disconnect(MakeError(ErrorCode::kUnavailable, "SUBSCRIBE redirect from {}: {}",
                                  master_.ToString(),
                                  target.ok() ? "too many redirects" : target.error().message));
    }
    spdlog::info("master {} is not the leader; following 307 to {}", master_.ToString(),
                 target->endpoint.ToString());
    master_ = target->endpoint;
    stream_.reset();
    return Subscribe();
  }
  redirects_ = 0;
  if (head.status != 200) return;  // the body carries Mesos's reason; reported at the end
  not_ready_logged_ = false;
  auto type = head.Header("Content-Type");
  if (!type || mesos_codec::ParseContentType(*type) != options_.content_type) {
    return Disconnect(MakeError(ErrorCode::kInvalidArgument,
                                "SUBSCRIBE stream has Content-Type '{}', asked for '{}'",
                                type.value_or(""), mesos_codec::MediaType(options_.content_type)));
  }
  stream_id_ = head.Header("Mesos-Stream-Id");
  if (!stream_id_ || stream_id_->empty()) {
    return Disconnect(
        MakeError(ErrorCode::kInvalidArgument, "SUBSCRIBE response has no Mesos-Stream-Id"));
  }
  ArmHeartbeatTimer();
}

void SchedulerClient::OnStreamData(std::string_view data) {
  if (!stream_head_) return;
  if (stream_head_->status != 200) {
    if (error_body_.size() < 4096) error_body_.append(data.substr(0, 4096));
    return;
  }
  decoder_.Feed(data);
  auto alive = alive_;
  while (running_ && stream_) {
    auto record = decoder_.Next();
    if (!record.ok()) return Disconnect(record.error().Context("event stream"));
    if (!record->has_value()) return;
    Event event;
    Status decoded = mesos_codec::Decode(**record, options_.content_type, &event);
    if (!decoded.ok()) {
      // One event we cannot read must not kill the subscription; Mesos resends what matters.
      spdlog::error("dropping an event from master {} that does not decode: {}", master_.ToString(),
                    decoded.error());
      continue;
    }
    HandleEvent(event);
    if (!*alive) return;
  }
}

void SchedulerClient::HandleEvent(const Event& event) {
  ArmHeartbeatTimer();  // any event proves the stream alive
  switch (event.type()) {
    case Event::SUBSCRIBED: {
      const auto& s = event.subscribed();
      framework_id_ = s.framework_id().value();
      framework_.mutable_id()->set_value(*framework_id_);
      if (s.has_heartbeat_interval_seconds() && s.heartbeat_interval_seconds() > 0) {
        heartbeat_interval_ = std::chrono::duration<double>(s.heartbeat_interval_seconds());
      }
      subscribed_ = true;
      backoff_.Reset();
      ArmHeartbeatTimer();
      spdlog::info("subscribed to master {} as framework {} (heartbeat every {}s)",
                   master_.ToString(), *framework_id_, heartbeat_interval_.count());
      if (callbacks_.on_subscribed) callbacks_.on_subscribed(s);
      return;
    }
    case Event::HEARTBEAT:
      return;
    case Event::ERROR: {
      // Mesos sends ERROR when it is done with this subscription: another scheduler failed the
      // framework over, or the framework was removed. Re-subscribing would fail the other
      // instance over in turn, so the client stops; what to do next is its owner's decision.
      spdlog::error("master {} sent ERROR: {}; not re-subscribing", master_.ToString(),
                    event.error().message());
      auto alive = alive_;
      if (callbacks_.on_event) callbacks_.on_event(event);
      if (*alive) Stop();
      return;
    }
    default:
      break;
  }
  if (callbacks_.on_event) callbacks_.on_event(event);
}

// A master that is about to serve (elected but not yet recovered, or not elected yet) is asked
// again every kNotElectedRetry, said once: neither a failure to report nor one to back off from.
void SchedulerClient::AskAgainSoon(const std::string& why) {
  stream_.reset();
  if (!not_ready_logged_) {
    spdlog::info("master {} {}; asking again every {} ms", master_.ToString(), why,
                 kNotElectedRetry.count());
    not_ready_logged_ = true;
  }
  retry_timer_.expires_after(kNotElectedRetry);
  retry_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive || !running_ || stream_) return;
    Subscribe();
  });
}

void SchedulerClient::OnStreamEnd(Status status) {
  if (stream_head_ && stream_head_->status == 503) {
    // Real Mesos 1.11 answers so for a moment after its election ("Master has not finished
    // recovery"); a backoff here cost 0.6 s of a failover.
    return AskAgainSoon("is not ready yet (" + Shorten(error_body_) + ")");
  }
  if (stream_head_ && stream_head_->status == 401)
    return Disconnect(Unauthenticated(*stream_head_));
  if (stream_head_ && stream_head_->status != 200) {
    return Disconnect(MakeError(CodeForStatus(stream_head_->status),
                                "SUBSCRIBE refused by master {}: HTTP {}: {}", master_.ToString(),
                                stream_head_->status, Shorten(error_body_)));
  }
  if (!status.ok()) return Disconnect(status.error());
  Disconnect(
      MakeError(ErrorCode::kUnavailable, "master {} closed the event stream", master_.ToString()));
}

// The operator's to fix: whose credentials the master refused (never the secret), and what the
// master asked for. The client keeps trying with backoff: a master restarted with corrected
// --credentials, or a failover to one that has them, lets it subscribe without a restart.
Error SchedulerClient::Unauthenticated(const net::HttpResponse& head) const {
  std::string challenge = head.Header("WWW-Authenticate").value_or("none");
  if (!options_.credential) {
    return MakeError(ErrorCode::kUnauthenticated,
                     "authentication required: master {} answered SUBSCRIBE with HTTP 401 "
                     "(WWW-Authenticate: {}) and this framework sends no credentials (a "
                     "--principal without --secret-file sends none); give it --principal and "
                     "--secret-file",
                     master_.ToString(), challenge);
  }
  return MakeError(ErrorCode::kUnauthenticated,
                   "authentication failed: master {} refused the credentials of principal '{}' "
                   "(HTTP 401, WWW-Authenticate: {}); check --principal and --secret-file against "
                   "the master's --credentials",
                   master_.ToString(), options_.credential->principal, challenge);
}

void SchedulerClient::Disconnect(const Error& reason) {
  if (!running_) return;
  bool was_subscribed = subscribed_;
  subscribed_ = false;
  stream_id_.reset();
  stream_.reset();
  heartbeat_timer_.cancel();
  auto level =
      reason.code == ErrorCode::kUnauthenticated ? spdlog::level::err : spdlog::level::warn;
  spdlog::log(level, "{} master {}: {}",
              was_subscribed ? "disconnected from" : "could not subscribe to", master_.ToString(),
              reason.message);
  auto alive = alive_;
  if (callbacks_.on_disconnected) callbacks_.on_disconnected(reason);
  if (!*alive || !running_) return;
  ScheduleResubscribe();
}

void SchedulerClient::ArmHeartbeatTimer() {
  heartbeat_timer_.cancel();
  auto silence = std::chrono::duration_cast<std::chrono::milliseconds>(heartbeat_interval_ *
                                                                       options_.missed_heartbeats);
  heartbeat_timer_.expires_after(silence);
  heartbeat_timer_.async_wait([this, alive = alive_, silence](boost::system::error_code ec) {
    if (ec || !*alive || !running_ || !stream_) return;
    Disconnect(
        MakeError(ErrorCode::kUnavailable, "no event or heartbeat for {} ms", silence.count()));
  });
}

void SchedulerClient::ScheduleResubscribe() {
  auto delay = backoff_.Next();
  spdlog::info("re-subscribing in {} ms", delay.count());
  retry_timer_.expires_after(delay);
  retry_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive || !running_ || stream_) return;
    Subscribe();
  });
}

void SchedulerClient::Send(Call call, std::function<void(Status)> done) {
  if (!done) done = [](Status) {};
  if (!subscribed_ || !stream_id_ || !framework_id_) {
    asio::post(io_, [done = std::move(done), type = Call::Type_Name(call.type())] {
      done(MakeError(ErrorCode::kUnavailable, "{} not sent: not subscribed to a master", type));
    });
    return;
  }
  call.mutable_framework_id()->set_value(*framework_id_);
  std::string type = Call::Type_Name(call.type());
  SendTo(master_, mesos_codec::Encode(call, options_.content_type), 0,
         [done = std::move(done), type](Status s) {
           done(s.ok() ? s : Status(s.error().Context(type)));
         });
}

void SchedulerClient::SendTo(HostPort master, std::string body, int redirects,
                             std::function<void(Status)> done) {
  auto request = BaseRequest(body);
  request.endpoint = master;
  request.timeout = options_.call_timeout;
  request.headers.emplace_back("Mesos-Stream-Id", *stream_id_);
  net::HttpFetch(
      io_, std::move(request),
      [this, alive = alive_, master, body = std::move(body), redirects,
       done = std::move(done)](Result<net::HttpResponse> r) mutable {
        if (!r.ok()) return done(r.error());
        unsigned status = r->status;
        if (status == 202 || status == 200) return done(OkStatus());
        if (status == 307 && *alive && redirects < options_.max_redirects && stream_id_) {
          auto location = r->Header("Location");
          HttpUrl base{"http", master, std::string(kSchedulerPath)};
          auto target =
              location
                  ? ResolveLocation(base, *location)
                  : Result<HttpUrl>(MakeError(ErrorCode::kUnavailable, "307 without Location"));
          if (target.ok()) {
            return SendTo(target->endpoint, std::move(body), redirects + 1, std::move(done));
          }
        }
        done(MakeError(CodeForStatus(status), "HTTP {} from master {}: {}", status,
                       master.ToString(), Shorten(r->body)));
      });
}

}  // namespace etcd_mesos::mesos_client
