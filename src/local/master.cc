#include "local/master.h"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "common/encoding.h"
#include "local/operations.h"
#include "mesos/json_codec.h"
#include "mesos/recordio.h"
#include "mesos/task_state.h"

namespace etcd_mesos::local {

namespace asio = boost::asio;
using mesos::TaskState;
using mesos::TaskStatus;
using mesos::scheduler::Call;
using mesos::scheduler::Event;
using mesos_codec::ContentType;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {
// FrameworkInfo.role is deprecated, but a master must still honour it for frameworks without
// the MULTI_ROLE capability, as Mesos does.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
bool HasLegacyRole(const mesos::FrameworkInfo& info) { return info.has_role(); }
const std::string& LegacyRole(const mesos::FrameworkInfo& info) { return info.role(); }
#pragma GCC diagnostic pop

}  // namespace

struct Master::TaskRecord {
  mesos::TaskInfo info;
  std::string agent_id;
  TaskState state = mesos::TASK_STAGING;
  std::vector<TaskStatus> statuses;
  std::map<std::string, TaskState> forwarded;  // uuid -> state, until acknowledged
  ResourceBag resources;
  bool released = false;  // resources freed: a terminal state reached the master
  bool unreachable = false;
};

struct Master::Framework {
  mesos::FrameworkInfo info;
  std::string id;
  bool connected = false;
  bool active = false;
  std::shared_ptr<net::ResponseStream> stream;
  std::string stream_id;
  ContentType type = ContentType::kJson;
  std::unique_ptr<asio::steady_timer> heartbeat;
  std::unique_ptr<asio::steady_timer> failover;
  bool suppressed = false;
  std::map<std::string, TaskRecord> tasks;
  std::vector<json> completed_tasks;
  std::map<std::string, mesos::Offer> offers;
  std::map<std::string, Clock::time_point> filters;  // agent id -> refused until
  std::map<std::string, std::map<std::string, mesos::ExecutorInfo>> executors;  // agent -> id
  double registered_time = 0;
  std::optional<std::string> principal;

  bool HasCapability(mesos::FrameworkInfo::Capability::Type type) const {
    for (const auto& c : info.capabilities()) {
      if (c.type() == type) return true;
    }
    return false;
  }
  bool partition_aware() const {
    return HasCapability(mesos::FrameworkInfo::Capability::PARTITION_AWARE);
  }
  bool multi_role() const { return HasCapability(mesos::FrameworkInfo::Capability::MULTI_ROLE); }
  bool reservation_refinement() const {
    return HasCapability(mesos::FrameworkInfo::Capability::RESERVATION_REFINEMENT);
  }
  std::string role() const {
    if (multi_role()) return info.roles_size() > 0 ? info.roles(0) : "*";
    return HasLegacyRole(info) ? LegacyRole(info) : "*";
  }
};

struct Master::AgentState {
  AgentHandle handle;
  std::string id;
  bool reachable = true;
  bool removed = false;
  bool recovered = false;  // known from before a master restart; not re-registered yet
  Clock::time_point last_ping = Clock::now();
  double registered_time = 0;
  double unreachable_time = 0;
  ResourceBag total;
};

namespace {

using mesos_facts::IsTerminalState;

// Mesos's rule for every id: non-empty, at most NAME_MAX bytes, not '.'/'..', no control
// characters, no slashes [src/common/validation.cpp validateID].
std::optional<std::string> InvalidId(const std::string& id) {
  if (id.empty()) return "ID must not be empty";
  if (id.size() > 255) return "ID must not be longer than 255 characters";
  if (id == "." || id == "..") return "'" + id + "' is disallowed";
  for (char c : id) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "ID contains control characters";
    if (c == '/' || c == '\\') return "'" + id + "' contains a path separator";
  }
  return std::nullopt;
}

net::HttpResponse Status400(const std::string& message) { return net::TextResponse(400, message); }

// As libprocess's ServiceUnavailable(message): the message alone as a plain-text body.
net::HttpResponse ServiceUnavailable(const std::string& message) {
  return {503, {{"Content-Type", "text/plain; charset=utf-8"}}, message};
}

}  // namespace

Master::Master(asio::io_context& io, MasterOptions options)
    : io_(io),
      options_(std::move(options)),
      id_(UuidToString(NewUuidBytes())),
      allocation_timer_(io),
      agent_check_timer_(io),
      recovery_timer_(io) {
  if (options_.hostname.empty()) options_.hostname = options_.ip;
  start_time_ = Now();
}

Master::~Master() {
  *alive_ = false;
  Stop();
}

double Master::Now() const {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Master::pid() const { return fmt::format("master@{}:{}", options_.ip, address_.port); }

mesos::MasterInfo Master::info() const {
  mesos::MasterInfo info;
  info.set_id(id_);
  // MasterInfo.ip is the IPv4 address packed in network order, read as a uint32
  // (127.0.0.1 -> 16777343), as Mesos writes it into ZooKeeper and /master/state.
  in_addr packed{};
  info.set_ip(::inet_pton(AF_INET, options_.ip.c_str(), &packed) == 1 ? packed.s_addr : 0);
  info.set_port(address_.port);
  info.set_pid(pid());
  info.set_hostname(options_.hostname);
  info.set_version("1.11.0");
  auto* address = info.mutable_address();
  address->set_hostname(options_.hostname);
  address->set_ip(options_.ip);
  address->set_port(address_.port);
  return info;
}

Result<HostPort> Master::Start(
    std::function<bool(const net::ServerRequest&, std::shared_ptr<net::Responder>&)> extra) {
  extra_ = std::move(extra);
  net::HttpServer::Options server_options;
  server_options.server_name = "etcd-mesos-local master";
  server_ = std::make_unique<net::HttpServer>(
      io_, server_options,
      [this](const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
        Handle(req, std::move(r));
      });
  auto bound = server_->Listen({options_.ip, options_.port});
  if (!bound.ok()) return bound.error();
  address_ = *bound;
  Allocate();
  CheckAgents();
  spdlog::info("master {} listening on http://{}", id_, address_.ToString());
  if (options_.zk) {
    elected_ = recovered_ = false;
    contender_ = std::make_unique<MasterContender>(
        io_, *options_.zk, options_.zk_session_timeout, info(),
        [this](const MasterContender::Leadership& l) { OnLeadership(l); });
    if (auto started = contender_->Start(); !started.ok()) {
      return started.error().Context("contending in ZooKeeper");
    }
  }
  return address_;
}

void Master::OnLeadership(const MasterContender::Leadership& leadership) {
  leader_ = leadership.leader;
  if (leadership.elected == elected_) return;
  elected_ = leadership.elected;
  if (!elected_) {
    // Mesos aborts a master that loses its leadership; this one stops serving frameworks.
    spdlog::error("master {} lost its leadership ({})", id_, leadership.node);
    recovered_ = false;
    recovery_timer_.cancel();
    for (auto& [fid, fw] : frameworks_) {
      if (fw->stream) fw->stream->Close();
    }
    return;
  }
  spdlog::info("master {} elected as the leading master ({}); recovering for {} ms", id_,
               leadership.node, options_.recovery.count());
  recovery_timer_.expires_after(options_.recovery);
  recovery_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive || !elected_) return;
    recovered_ = true;
    spdlog::info("master {} recovered; serving", id_);
    if (on_serving_) on_serving_();
  });
}

void Master::Kill(std::chrono::milliseconds linger) {
  if (contender_) contender_->Abandon(linger);
  StopServing();
}

void Master::Stop() {
  if (contender_) contender_->Stop();
  StopServing();
}

void Master::StopServing() {
  recovery_timer_.cancel();
  allocation_timer_.cancel();
  agent_check_timer_.cancel();
  for (auto& [id, fw] : frameworks_) {
    if (fw->heartbeat) fw->heartbeat->cancel();
    if (fw->failover) fw->failover->cancel();
    if (fw->stream) fw->stream->Close();
  }
  if (server_) server_->Stop();
}

void Master::AddAgent(AgentHandle handle, bool recovered) {
  auto agent = std::make_unique<AgentState>();
  agent->id = handle.info.id().value();
  agent->total = ResourceBag::From(handle.info.resources());
  agent->registered_time = Now();
  agent->handle = std::move(handle);
  if (recovered) {
    // Its first ping makes the master ask it to re-register (see AgentPing).
    agent->recovered = true;
    agent->reachable = false;
    agent->unreachable_time = Now();
    spdlog::info("agent {} at {} awaits re-registration", agent->id, agent->handle.pid);
  } else {
    spdlog::info("agent {} registered at {} ({})", agent->id, agent->handle.pid,
                 agent->total.Summary().dump());
  }
  agents_[agent->id] = std::move(agent);
}

void Master::RemoveAgent(const std::string& agent_id) {
  auto it = agents_.find(agent_id);
  if (it == agents_.end() || it->second->removed) return;
  AgentState& agent = *it->second;
  if (!agent.reachable) {
    // As Mesos 1.11 (seen on a real master): an agent already marked unreachable is not removed
    // when a new agent registers at its address; it and its tasks stay unreachable.
    spdlog::warn("a new agent registered at the address of agent {}, which stays unreachable",
                 agent_id);
    return;
  }
  // Its host came back as a new agent (work dir lost): what ran there is gone for good.
  spdlog::warn("agent {} is gone (its host re-registered with a new identity)", agent_id);
  std::string host = agent.handle.info.hostname();
  agent.removed = true;
  agent.reachable = false;
  agent.handle.link = nullptr;
  for (auto& [fid, fw] : frameworks_) {
    for (auto& [tid, task] : fw->tasks) {
      if (task.agent_id != agent_id || IsTerminalState(task.state)) continue;
      // TASK_LOST even to PARTITION_AWARE frameworks: Mesos's __removeSlave always says so.
      task.state = mesos::TASK_LOST;
      task.unreachable = false;
      task.released = true;
      if (fw->connected) {
        SendUpdate(*fw, MasterStatus(tid, agent_id, task.state, TaskStatus::REASON_AGENT_REMOVED,
                                     "Agent " + host +
                                         " removed: a new agent registered at the same address"));
      }
    }
    fw->executors.erase(agent_id);
    RescindOffers(
        *fw, [&](const mesos::Offer& o) { return o.agent_id().value() == agent_id; }, true);
    Event failure;
    failure.set_type(Event::FAILURE);
    failure.mutable_failure()->mutable_agent_id()->set_value(agent_id);
    Send(*fw, failure);
  }
}

// ---- HTTP ---------------------------------------------------------------------------------

void Master::Handle(const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
  const std::string& path = req.path;
  bool scheduler = path == "/api/v1/scheduler" || path == "/master/api/v1/scheduler";
  bool frameworks = path == "/master/frameworks" || path == "/frameworks";
  bool leaders_only = scheduler || path == "/master/state" || path == "/state" || frameworks ||
                      path == "/master/redirect" || path == "/redirect" ||
                      path == "/master/teardown" || path == "/teardown";
  if (leaders_only && !elected_) return r->Respond(Redirect(req));
  if (scheduler) {
    if (!recovered_) return r->Respond(ServiceUnavailable("Master has not finished recovery"));
    return HandleScheduler(req, std::move(r));
  }
  if (path == "/master/state" || path == "/state") {
    if (req.method != net::Verb::get) return r->Respond(net::TextResponse(405, "use GET"));
    return r->Respond(net::JsonResponse(200, mesos_codec::DumpJson(StateJson())));
  }
  if (frameworks) {
    // Mesos's /master/frameworks: the frameworks part of the state, as tools read it.
    if (req.method != net::Verb::get) return r->Respond(net::TextResponse(405, "use GET"));
    json state = StateJson();
    json out = {{"frameworks", state["frameworks"]},
                {"completed_frameworks", state["completed_frameworks"]},
                {"unregistered_frameworks", json::array()}};
    return r->Respond(net::JsonResponse(200, mesos_codec::DumpJson(out)));
  }
  if (path == "/master/redirect" || path == "/redirect") {
    return r->Respond({307, {{"Location", "//" + address_.ToString()}}, ""});
  }
  if (path == "/health" || path == "/master/health") {
    return r->Respond({200, {}, ""});
  }
  if (path == "/master/teardown" || path == "/teardown") return HandleTeardown(req, std::move(r));
  if (extra_ && extra_(req, r)) return;
  r->Respond(net::TextResponse(404, "no such endpoint: " + path));
}

// As Mesos's Master::Http::redirect: the Location is protocol-relative, to the leader's base URL
// for /redirect itself (no loop) and to the same path and query otherwise.
net::HttpResponse Master::Redirect(const net::ServerRequest& req) const {
  if (!leader_) return ServiceUnavailable("No leader elected");
  std::string base = "//" + leader_->ToString();
  bool redirect = req.path == "/master/redirect" || req.path == "/redirect";
  return {307, {{"Location", redirect ? base : base + req.target}}, ""};
}

std::optional<std::string> Master::AuthenticatedPrincipal(std::string_view authorization) const {
  if (!authorization.starts_with("Basic ")) return std::nullopt;
  auto decoded = Base64Decode(authorization.substr(6));
  if (!decoded.ok()) return std::nullopt;
  size_t colon = decoded->find(':');
  if (colon == std::string::npos || decoded->find(':', colon + 1) != std::string::npos) {
    return std::nullopt;
  }
  std::string user = decoded->substr(0, colon);
  auto it = options_.credentials.find(user);
  if (it == options_.credentials.end() || it->second != decoded->substr(colon + 1)) {
    return std::nullopt;
  }
  return user;
}

// As Mesos's master/http.cpp teardown: POST only, the framework id form-encoded in the body
// (framework ids need no percent-decoding), 400 naming what is wrong, 200 once removed.
void Master::HandleTeardown(const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
  if (!options_.credentials.empty() &&
      !AuthenticatedPrincipal(req.Header("Authorization").value_or(""))) {
    return r->Respond(
        {401, {{"WWW-Authenticate", "Basic realm=\"mesos-master-readwrite\""}}, "Unauthorized"});
  }
  if (req.method != net::Verb::post) {
    return r->Respond({405, {{"Allow", "POST"}}, "Expecting a 'POST' request"});
  }
  std::optional<std::string> id;
  std::string_view body = req.body;
  while (!body.empty()) {
    size_t amp = body.find('&');
    std::string_view pair = body.substr(0, amp);
    if (pair.starts_with("frameworkId=")) id = std::string(pair.substr(12));
    body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
  }
  if (!id) {
    return r->Respond(Status400("Missing 'frameworkId' query parameter in the request body"));
  }
  if (!frameworks_.count(*id)) {
    return r->Respond(Status400("No framework found with specified ID"));
  }
  RemoveFramework(*id, "torn down by an operator (POST /master/teardown)");
  r->Respond({200, {}, ""});
}

void Master::HandleScheduler(const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
  // libprocess authenticates an endpoint's realm before its handler runs, so a request without
  // valid credentials gets 401 whatever its method or Content-Type.
  std::optional<std::string> principal;
  if (!options_.credentials.empty()) {
    principal = AuthenticatedPrincipal(req.Header("Authorization").value_or(""));
    if (!principal) {
      return r->Respond(
          {401, {{"WWW-Authenticate", "Basic realm=\"mesos-master-scheduler\""}}, "Unauthorized"});
    }
  }
  if (req.method != net::Verb::post) {
    return r->Respond({405, {{"Allow", "POST"}}, "Expecting a 'POST' request"});
  }
  auto content_type = req.Header("Content-Type");
  if (!content_type) return r->Respond(Status400("Expecting 'Content-Type' to be present"));
  auto type = mesos_codec::ParseContentType(*content_type);
  if (!type) {
    return r->Respond(net::TextResponse(
        415, fmt::format("Expecting 'Content-Type' of application/json or application/x-protobuf, "
                         "got '{}'",
                         *content_type)));
  }
  Call call;
  if (Status s = mesos_codec::Decode(req.body, *type, &call); !s.ok()) {
    return r->Respond(Status400("Failed to parse body into Call: " + s.error().message));
  }
  // As Mesos: a call without a type fails validation (400); one that says UNKNOWN is a call
  // Mesos does not implement (501).
  if (!call.has_type()) {
    return r->Respond(
        Status400("Failed to validate scheduler::Call: Expecting 'type' to be present"));
  }
  if (call.type() == Call::UNKNOWN) {
    return r->Respond(net::TextResponse(501, "Received 'UNKNOWN' call"));
  }
  if (call.type() == Call::SUBSCRIBE) {
    if (req.Header("Mesos-Stream-Id")) {
      return r->Respond(
          Status400("Subscribe calls should not include the 'Mesos-Stream-Id' header"));
    }
    if (!call.has_subscribe()) return r->Respond(Status400("Expecting 'subscribe' to be present"));
    const auto& info = call.subscribe().framework_info();
    if (call.has_framework_id() != info.has_id() ||
        (call.has_framework_id() && call.framework_id().value() != info.id().value())) {
      return r->Respond(Status400("'framework_id' differs from 'subscribe.framework_info.id'"));
    }
    if (principal && info.has_principal() && info.principal() != *principal) {
      return r->Respond(Status400(fmt::format(
          "Authenticated principal '{}' does not match principal '{}' set in `FrameworkInfo`",
          *principal, info.principal())));
    }
    auto accept = mesos_codec::NegotiateAccept(req.Header("Accept"));
    if (!accept) {
      return r->Respond(net::TextResponse(
          406, "Expecting 'Accept' to allow application/json or application/x-protobuf"));
    }
    if (principal && !info.has_principal()) {
      call.mutable_subscribe()->mutable_framework_info()->set_principal(*principal);
    }
    return Subscribe(call, *accept, std::move(r));
  }
  if (!call.has_framework_id()) {
    return r->Respond(Status400("Expecting 'framework_id' to be present"));
  }
  auto it = frameworks_.find(call.framework_id().value());
  if (it == frameworks_.end()) return r->Respond(Status400("Framework cannot be found"));
  Framework& framework = *it->second;
  if (principal && framework.principal && *principal != *framework.principal) {
    return r->Respond(Status400("Authenticated principal does not match the framework's"));
  }
  if (!framework.connected)
    return r->Respond(net::TextResponse(403, "Framework is not subscribed"));
  auto stream_id = req.Header("Mesos-Stream-Id");
  if (!stream_id) {
    return r->Respond(
        Status400("All non-subscribe calls should include the 'Mesos-Stream-Id' header"));
  }
  if (*stream_id != framework.stream_id) {
    return r->Respond(Status400(fmt::format(
        "The stream ID '{}' included in this request didn't match the stream ID currently "
        "associated with framework ID {}",
        *stream_id, framework.id)));
  }
  r->Respond(Dispatch(framework, call));
}

void Master::Subscribe(const Call& call, ContentType stream_type,
                       std::shared_ptr<net::Responder> responder) {
  mesos::FrameworkInfo info = call.subscribe().framework_info();
  std::string media(mesos_codec::MediaType(stream_type));
  auto refuse = [&](const std::string& message) {
    auto stream = responder->StartStream(
        200, {{"Content-Type", media}, {"Mesos-Stream-Id", UuidToString(NewUuidBytes())}});
    Event error;
    error.set_type(Event::ERROR);
    error.mutable_error()->set_message(message);
    stream->Write(recordio::Encode(mesos_codec::Encode(error, stream_type)));
    stream->Close();
    spdlog::warn("refused subscription of framework '{}': {}", info.name(), message);
  };
  if (info.has_id() && removed_frameworks_.count(info.id().value())) {
    return refuse("Framework has been removed");
  }
  bool multi_role = false;
  for (const auto& c : info.capabilities()) {
    if (c.type() == mesos::FrameworkInfo::Capability::MULTI_ROLE) multi_role = true;
  }
  if (multi_role && HasLegacyRole(info)) {
    return refuse("'FrameworkInfo.role' must not be set when the MULTI_ROLE capability is used");
  }
  if (!multi_role && info.roles_size() > 0) {
    return refuse("'FrameworkInfo.roles' must not be set without the MULTI_ROLE capability");
  }
  for (const auto& role : call.subscribe().suppressed_roles()) {
    bool known = multi_role ? std::count(info.roles().begin(), info.roles().end(), role) > 0
                            : LegacyRole(info) == role || (!HasLegacyRole(info) && role == "*");
    if (!known) return refuse("Suppressed role '" + role + "' is not a role of the framework");
  }

  Framework* framework = nullptr;
  if (info.has_id() && frameworks_.count(info.id().value())) {
    framework = frameworks_[info.id().value()].get();
    if (framework->principal && info.principal() != *framework->principal) {
      return refuse("Changing framework's principal is not allowed");
    }
    if (framework->stream) {
      Event error;
      error.set_type(Event::ERROR);
      error.mutable_error()->set_message("Framework failed over");
      Send(*framework, error);
      auto old = std::move(framework->stream);
      old->Close();
    }
    // user and checkpoint cannot change on re-subscription; Mesos keeps the old values.
    info.set_user(framework->info.user());
    info.set_checkpoint(framework->info.checkpoint());
    spdlog::info("framework {} ({}) re-subscribed", framework->id, info.name());
  } else {
    auto fresh = std::make_unique<Framework>();
    fresh->id =
        info.has_id() ? info.id().value() : fmt::format("{}-{:04d}", id_, next_framework_++);
    fresh->registered_time = Now();
    framework = fresh.get();
    frameworks_[fresh->id] = std::move(fresh);
    spdlog::info("framework {} ({}) subscribed{}", framework->id, info.name(),
                 info.has_id() ? " with its old id (recovered)" : "");
  }
  info.mutable_id()->set_value(framework->id);
  if (info.has_principal()) framework->principal = info.principal();
  framework->info = info;
  framework->type = stream_type;
  framework->stream_id = UuidToString(NewUuidBytes());
  framework->connected = true;
  framework->active = true;
  framework->suppressed = call.subscribe().suppressed_roles_size() > 0;
  framework->offers.clear();  // offers never survive a re-subscription
  if (framework->failover) framework->failover->cancel();
  framework->stream = responder->StartStream(
      200, {{"Content-Type", media}, {"Mesos-Stream-Id", framework->stream_id}});
  std::string fid = framework->id;
  std::string sid = framework->stream_id;
  framework->stream->OnClosed([this, alive = alive_, fid, sid] {
    if (*alive) Disconnected(fid, sid);
  });

  Event subscribed;
  subscribed.set_type(Event::SUBSCRIBED);
  subscribed.mutable_subscribed()->mutable_framework_id()->set_value(fid);
  subscribed.mutable_subscribed()->set_heartbeat_interval_seconds(
      std::chrono::duration<double>(options_.heartbeat_interval).count());
  *subscribed.mutable_subscribed()->mutable_master_info() = this->info();
  Send(*framework, subscribed);
  Event heartbeat;
  heartbeat.set_type(Event::HEARTBEAT);
  Send(*framework, heartbeat);
  ScheduleHeartbeat(fid);

  // Agents resend pending status updates at once when the framework comes back.
  std::set<std::string> agents_with_tasks;
  for (const auto& [tid, task] : framework->tasks) agents_with_tasks.insert(task.agent_id);
  for (const auto& [aid, execs] : framework->executors) agents_with_tasks.insert(aid);
  for (const auto& aid : agents_with_tasks) {
    auto it = agents_.find(aid);
    if (it == agents_.end() || it->second->handle.link == nullptr) continue;
    it->second->handle.link->ToAgent([info](AgentApi& a) { a.UpdateFramework(info); });
  }
}

void Master::ScheduleHeartbeat(const std::string& framework_id) {
  auto it = frameworks_.find(framework_id);
  if (it == frameworks_.end()) return;
  Framework& fw = *it->second;
  if (!fw.heartbeat) fw.heartbeat = std::make_unique<asio::steady_timer>(io_);
  fw.heartbeat->expires_after(options_.heartbeat_interval);
  std::string sid = fw.stream_id;
  fw.heartbeat->async_wait([this, alive = alive_, framework_id, sid](boost::system::error_code ec) {
    if (ec || !*alive) return;
    auto it = frameworks_.find(framework_id);
    if (it == frameworks_.end() || !it->second->connected || it->second->stream_id != sid) return;
    Event heartbeat;
    heartbeat.set_type(Event::HEARTBEAT);
    Send(*it->second, heartbeat);
    ScheduleHeartbeat(framework_id);
  });
}

void Master::Send(Framework& framework, const Event& event) {
  if (!framework.stream || framework.stream->closed()) return;
  framework.stream->Write(recordio::Encode(mesos_codec::Encode(event, framework.type)));
}

void Master::Disconnected(const std::string& framework_id, const std::string& stream_id) {
  auto it = frameworks_.find(framework_id);
  if (it == frameworks_.end()) return;
  Framework& fw = *it->second;
  if (fw.stream_id != stream_id || !fw.connected) return;  // replaced by a newer subscription
  fw.connected = false;
  fw.active = false;
  fw.stream.reset();
  if (fw.heartbeat) fw.heartbeat->cancel();
  fw.offers.clear();
  double timeout = fw.info.failover_timeout();
  spdlog::warn("framework {} disconnected; failover timeout {}s", framework_id, timeout);
  if (!fw.failover) fw.failover = std::make_unique<asio::steady_timer>(io_);
  fw.failover->expires_after(std::chrono::milliseconds(
      static_cast<int64_t>(std::clamp(timeout, 0.0, 10.0 * 365 * 86400) * 1000)));
  fw.failover->async_wait(
      [this, alive = alive_, framework_id, stream_id](boost::system::error_code ec) {
        if (ec || !*alive) return;
        auto it = frameworks_.find(framework_id);
        if (it == frameworks_.end() || it->second->connected) return;
        RemoveFramework(framework_id, "failover timeout expired");
      });
}

json TaskJson(const mesos::TaskInfo& info, const std::string& framework_id, TaskState state,
              const std::vector<TaskStatus>& statuses, const std::string& role,
              const ResourceBag& resources);

void Master::RemoveFramework(const std::string& framework_id, const std::string& why) {
  auto it = frameworks_.find(framework_id);
  if (it == frameworks_.end()) return;
  Framework& fw = *it->second;
  spdlog::warn("removing framework {} ({}): {}", framework_id, fw.info.name(), why);
  std::set<std::string> agents_to_tell;
  for (const auto& [tid, task] : fw.tasks) agents_to_tell.insert(task.agent_id);
  for (const auto& [aid, execs] : fw.executors) agents_to_tell.insert(aid);
  mesos::FrameworkID fid;
  fid.set_value(framework_id);
  for (const auto& aid : agents_to_tell) {
    auto agent = agents_.find(aid);
    if (agent == agents_.end() || agent->second->handle.link == nullptr) continue;
    agent->second->handle.link->ToAgent([fid](AgentApi& a) { a.ShutdownFramework(fid); });
  }
  if (fw.heartbeat) fw.heartbeat->cancel();
  if (fw.failover) fw.failover->cancel();
  if (fw.stream) fw.stream->Close();
  json record = {{"id", framework_id},
                 {"name", fw.info.name()},
                 {"active", false},
                 {"connected", false},
                 {"user", fw.info.user()}};
  json completed = json::array();
  for (const auto& [tid, task] : fw.tasks) {
    completed.push_back(TaskJson(task.info, framework_id,
                                 IsTerminalState(task.state) ? task.state : mesos::TASK_KILLED,
                                 task.statuses, fw.role(), task.resources));
  }
  record["completed_tasks"] = std::move(completed);
  completed_frameworks_.push_back(std::move(record));
  removed_frameworks_.insert(framework_id);
  frameworks_.erase(it);
}

// ---- Calls --------------------------------------------------------------------------------

net::HttpResponse Master::Dispatch(Framework& fw, const Call& call) {
  auto missing = [](const char* field) {
    return Status400(fmt::format("Expecting '{}' to be present", field));
  };
  net::HttpResponse accepted{202, {}, ""};
  switch (call.type()) {
    case Call::TEARDOWN:
      RemoveFramework(fw.id, "the framework asked for TEARDOWN");
      return accepted;
    case Call::ACCEPT:
      if (!call.has_accept()) return missing("accept");
      Accept(fw, call.accept());
      return accepted;
    case Call::DECLINE:
      if (!call.has_decline()) return missing("decline");
      Decline(fw, call.decline().offer_ids(),
              call.decline().has_filters() ? &call.decline().filters() : nullptr);
      return accepted;
    case Call::REVIVE:
      fw.suppressed = false;
      fw.filters.clear();
      // As Mesos's allocator does (reviveOffers ends in an allocation): a framework that asks
      // for offers again gets them now, not at the next allocation interval.
      boost::asio::post(allocation_timer_.get_executor(), [this, alive = alive_] {
        if (*alive) Allocate();
      });
      return accepted;
    case Call::SUPPRESS:
      fw.suppressed = true;
      return accepted;
    case Call::KILL:
      if (!call.has_kill()) return missing("kill");
      Kill(fw, call.kill());
      return accepted;
    case Call::SHUTDOWN: {
      if (!call.has_shutdown()) return missing("shutdown");
      auto agent = agents_.find(call.shutdown().agent_id().value());
      if (agent != agents_.end() && agent->second->handle.link != nullptr) {
        mesos::FrameworkID fid;
        fid.set_value(fw.id);
        auto eid = call.shutdown().executor_id();
        agent->second->handle.link->ToAgent(
            [fid, eid](AgentApi& a) { a.ShutdownExecutor(fid, eid); });
      }
      return accepted;
    }
    case Call::ACKNOWLEDGE:
      if (!call.has_acknowledge()) return missing("acknowledge");
      return Acknowledge(fw, call.acknowledge());
    case Call::RECONCILE:
      if (!call.has_reconcile()) return missing("reconcile");
      Reconcile(fw, call.reconcile());
      return accepted;
    case Call::MESSAGE: {
      if (!call.has_message()) return missing("message");
      auto agent = agents_.find(call.message().agent_id().value());
      if (agent != agents_.end() && agent->second->handle.link != nullptr) {
        mesos::FrameworkID fid;
        fid.set_value(fw.id);
        auto eid = call.message().executor_id();
        std::string data = call.message().data();
        agent->second->handle.link->ToAgent(
            [fid, eid, data](AgentApi& a) { a.FrameworkMessage(fid, eid, data); });
      }
      return accepted;
    }
    case Call::REQUEST:
    case Call::ACCEPT_INVERSE_OFFERS:
    case Call::DECLINE_INVERSE_OFFERS:
      return accepted;  // nothing to do for a framework without operations or inverse offers
    default:
      return net::TextResponse(501, fmt::format("Call '{}' is not supported by etcd-mesos-local",
                                                Call::Type_Name(call.type())));
  }
}

TaskStatus Master::MasterStatus(const std::string& task_id, const std::string& agent_id,
                                TaskState state, TaskStatus::Reason reason,
                                const std::string& message) const {
  TaskStatus status;
  status.mutable_task_id()->set_value(task_id);
  if (!agent_id.empty()) status.mutable_agent_id()->set_value(agent_id);
  status.set_state(state);
  status.set_source(TaskStatus::SOURCE_MASTER);
  status.set_reason(reason);
  if (!message.empty()) status.set_message(message);
  status.set_timestamp(Now());
  return status;
}

void Master::SendUpdate(Framework& fw, const TaskStatus& status) {
  Event event;
  event.set_type(Event::UPDATE);
  *event.mutable_update()->mutable_status() = status;
  Send(fw, event);
}

namespace {

// How long resources a framework left unused stay away from it: Filters.refuse_seconds, 5 s when
// no filter is given (Mesos's default), at most a year.
Clock::time_point RefusedUntil(const mesos::Filters* filters) {
  double refuse = filters ? filters->refuse_seconds() : 5.0;
  if (refuse < 0) refuse = 5.0;
  refuse = std::min(refuse, 31536000.0);
  return Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(refuse * 1000));
}

}  // namespace

void Master::Accept(Framework& fw, const Call::Accept& accept) {
  // Every offer must be outstanding for this framework and all on one agent.
  std::string agent_id;
  std::optional<std::string> invalid;
  ResourceBag available;
  std::vector<std::string> used_offers;
  for (const auto& oid : accept.offer_ids()) {
    auto it = fw.offers.find(oid.value());
    if (it == fw.offers.end()) {
      invalid = fmt::format("Offer {} is no longer valid", oid.value());
      continue;
    }
    if (!agent_id.empty() && it->second.agent_id().value() != agent_id) {
      invalid = "Aggregated offers must belong to one single agent";
    }
    agent_id = it->second.agent_id().value();
    available.Add(ResourceBag::From(it->second.resources()));
    used_offers.push_back(oid.value());
  }
  if (accept.offer_ids_size() == 0) invalid = "No offers specified";
  for (const auto& oid : used_offers) fw.offers.erase(oid);  // used or not, they are spent

  auto agent_it = agents_.find(agent_id);
  if (!invalid && (agent_it == agents_.end() || !agent_it->second->reachable ||
                   agent_it->second->handle.link == nullptr)) {
    invalid = "Agent " + agent_id + " is not reachable";
  }
  for (const auto& op : accept.operations()) {
    if (op.type() != mesos::Offer::Operation::LAUNCH &&
        op.type() != mesos::Offer::Operation::LAUNCH_GROUP) {
      // The agent checkpoints what the operation made before it hears of any later launch on
      // it, as Mesos sends its messages in order.
      if (!invalid && ApplyOperation(fw, *agent_it->second, op, available)) {
        auto total = agent_it->second->total.ToProto();
        agent_it->second->handle.link->ToAgent(
            [total](AgentApi& a) { a.CheckpointResources(total); });
      }
      continue;
    }
    std::vector<const mesos::TaskInfo*> tasks;
    if (op.type() == mesos::Offer::Operation::LAUNCH) {
      for (const auto& t : op.launch().task_infos()) tasks.push_back(&t);
    } else {
      for (const auto& t : op.launch_group().task_group().tasks()) tasks.push_back(&t);
    }
    for (const mesos::TaskInfo* task : tasks) {
      std::string tid = task->task_id().value();
      if (invalid) {
        SendUpdate(fw, MasterStatus(tid, agent_id,
                                    fw.partition_aware() ? mesos::TASK_DROPPED : mesos::TASK_LOST,
                                    TaskStatus::REASON_INVALID_OFFERS, *invalid));
        continue;
      }
      auto error = [&](const std::string& why) {
        spdlog::warn("framework {}: task {} is invalid: {}", fw.id, tid, why);
        SendUpdate(fw, MasterStatus(tid, agent_id, mesos::TASK_ERROR,
                                    TaskStatus::REASON_TASK_INVALID, why));
      };
      if (op.type() == mesos::Offer::Operation::LAUNCH_GROUP) {
        error("LAUNCH_GROUP is not supported by etcd-mesos-local");
        continue;
      }
      if (auto bad = InvalidId(tid)) {
        error("Task ID is invalid: " + *bad);
        continue;
      }
      if (fw.tasks.count(tid)) {
        error("Task has duplicate ID: " + tid);
        continue;
      }
      if (task->has_executor() == task->has_command()) {
        error(
            "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present");
        continue;
      }
      if (task->agent_id().value() != agent_id) {
        error(fmt::format("Task uses agent {} but the offer is for agent {}",
                          task->agent_id().value(), agent_id));
        continue;
      }
      mesos::TaskInfo launched = *task;
      ResourceBag needed = ResourceBag::From(task->resources());
      bool new_executor = false;
      if (launched.has_executor()) {
        auto* exec = launched.mutable_executor();
        if (auto bad = InvalidId(exec->executor_id().value())) {
          error("Executor ID is invalid: " + *bad);
          continue;
        }
        if (!exec->has_framework_id()) exec->mutable_framework_id()->set_value(fw.id);
        auto& execs = fw.executors[agent_id];
        auto existing = execs.find(exec->executor_id().value());
        if (existing != execs.end()) {
          if (existing->second.SerializeAsString() != exec->SerializeAsString()) {
            error("ExecutorInfo is not compatible with the existing executor " +
                  exec->executor_id().value());
            continue;
          }
        } else {
          new_executor = true;
          needed.Add(ResourceBag::From(exec->resources()));
        }
      }
      if (task->resources_size() == 0) {
        error("Task uses no resources");
        continue;
      }
      if (!available.Contains(needed)) {
        error(fmt::format(
            "Total resources {} required by task and its executor is more than available {}",
            needed.Describe(fw.role()), available.Describe(fw.role())));
        continue;
      }
      available.Subtract(needed);
      if (new_executor) {
        fw.executors[agent_id][launched.executor().executor_id().value()] = launched.executor();
      }
      TaskRecord record;
      record.info = launched;
      record.agent_id = agent_id;
      record.resources = ResourceBag::From(task->resources());
      fw.tasks[tid] = std::move(record);
      spdlog::info("framework {}: launching task {} ('{}') on agent {}", fw.id, tid, task->name(),
                   agent_id);
      mesos::FrameworkInfo info = fw.info;
      agent_it->second->handle.link->ToAgent(
          [info, launched](AgentApi& a) { a.RunTask(info, launched); });
    }
  }
  if (!invalid && !available.Empty()) {
    fw.filters[agent_id] = RefusedUntil(accept.has_filters() ? &accept.filters() : nullptr);
  }
}

bool Master::ApplyOperation(Framework& fw, AgentState& agent, const mesos::Offer::Operation& op,
                            ResourceBag& available) {
  OperationContext context;
  if (fw.multi_role()) {
    context.framework_roles.assign(fw.info.roles().begin(), fw.info.roles().end());
  } else {
    context.framework_roles = {fw.role()};
  }
  context.allocated_role = fw.role();
  if (fw.principal) {
    context.principal = fw.principal;
  } else if (fw.info.has_principal()) {
    context.principal = fw.info.principal();
  }
  context.agent_total = agent.total;
  context.agent_used = Used(agent.id);
  context.agent_suffix = fmt::format("; on agent {} at {} ({})", agent.id, agent.handle.pid,
                                     agent.handle.info.hostname());
  std::string type = mesos::Offer::Operation::Type_Name(op.type());
  auto conversion = ConvertOffered(op, available, context);
  if (!conversion.ok()) {
    // Mesos drops an invalid operation; only one with an id (a field the protocol definitions
    // this is built with predate) hears why. The scheduler sees what its offers hold.
    spdlog::warn("Dropping {} operation from framework {} ({}): {}", type, fw.id, fw.info.name(),
                 conversion.error().message);
    return false;
  }
  available.Subtract(conversion->consumed);
  available.Add(conversion->converted);
  agent.total.Subtract(conversion->consumed);
  agent.total.Add(conversion->converted);
  spdlog::info("framework {}: applying {} operation for {} on agent {}", fw.id, type,
               conversion->converted.Describe(), agent.id);
  return true;
}

void Master::Decline(Framework& fw, const google::protobuf::RepeatedPtrField<mesos::OfferID>& ids,
                     const mesos::Filters* filters) {
  Clock::time_point until = RefusedUntil(filters);
  for (const auto& oid : ids) {
    auto it = fw.offers.find(oid.value());
    if (it == fw.offers.end()) continue;
    fw.filters[it->second.agent_id().value()] = until;
    fw.offers.erase(it);
  }
}

void Master::Kill(Framework& fw, const Call::Kill& kill) {
  auto it = fw.tasks.find(kill.task_id().value());
  if (it == fw.tasks.end()) {
    // Unknown task: answer as explicit reconciliation would.
    Call::Reconcile reconcile;
    auto* t = reconcile.add_tasks();
    *t->mutable_task_id() = kill.task_id();
    if (kill.has_agent_id()) *t->mutable_agent_id() = kill.agent_id();
    return Reconcile(fw, reconcile);
  }
  auto agent = agents_.find(it->second.agent_id);
  if (agent == agents_.end() || agent->second->handle.link == nullptr) return;
  mesos::FrameworkID fid;
  fid.set_value(fw.id);
  std::optional<mesos::KillPolicy> policy;
  if (kill.has_kill_policy()) policy = kill.kill_policy();
  auto tid = kill.task_id();
  agent->second->handle.link->ToAgent(
      [fid, tid, policy](AgentApi& a) { a.KillTask(fid, tid, policy); });
}

net::HttpResponse Master::Acknowledge(Framework& fw, const Call::Acknowledge& ack) {
  if (!IsValidUuidBytes(ack.uuid())) {
    return Status400("Failed to validate scheduler::Call: 'uuid' is not a valid UUID");
  }
  auto it = fw.tasks.find(ack.task_id().value());
  auto agent = agents_.find(ack.agent_id().value());
  if (agent == agents_.end() || !agent->second->reachable ||
      agent->second->handle.link == nullptr) {
    return {202, {}, ""};  // dropped; the agent will resend the update later
  }
  if (it != fw.tasks.end()) {
    auto state = it->second.forwarded.find(ack.uuid());
    if (state != it->second.forwarded.end()) {
      bool terminal = IsTerminalState(state->second);
      it->second.forwarded.erase(state);
      if (terminal) {
        fw.completed_tasks.push_back(TaskJson(it->second.info, fw.id, it->second.state,
                                              it->second.statuses, fw.role(),
                                              it->second.resources));
        fw.tasks.erase(it);
      }
    }
  }
  mesos::FrameworkID fid;
  fid.set_value(fw.id);
  auto tid = ack.task_id();
  std::string uuid = ack.uuid();
  agent->second->handle.link->ToAgent(
      [fid, tid, uuid](AgentApi& a) { a.AcknowledgeUpdate(fid, tid, uuid); });
  return {202, {}, ""};
}

void Master::Reconcile(Framework& fw, const Call::Reconcile& reconcile) {
  auto answer = [&](const std::string& tid, const std::string& aid, TaskState state,
                    const TaskStatus* latest) {
    TaskStatus status = MasterStatus(tid, aid, state, TaskStatus::REASON_RECONCILIATION, "");
    if (latest != nullptr) {
      if (latest->has_healthy()) status.set_healthy(latest->healthy());
      if (latest->has_data()) status.set_data(latest->data());
      if (latest->has_executor_id()) *status.mutable_executor_id() = latest->executor_id();
      if (latest->has_message()) status.set_message(latest->message());
      if (latest->has_labels()) *status.mutable_labels() = latest->labels();
    }
    if (state == mesos::TASK_UNREACHABLE) {
      auto agent = agents_.find(aid);
      if (agent != agents_.end()) {
        status.mutable_unreachable_time()->set_nanoseconds(
            static_cast<int64_t>(agent->second->unreachable_time * 1e9));
      }
    }
    SendUpdate(fw, status);
  };
  auto known = [&](const TaskRecord& task, const std::string& tid) {
    TaskState state = task.state;
    if (task.unreachable && !IsTerminalState(state)) {
      state = fw.partition_aware() ? mesos::TASK_UNREACHABLE : mesos::TASK_LOST;
    }
    answer(tid, task.agent_id, state, task.statuses.empty() ? nullptr : &task.statuses.back());
  };
  if (reconcile.tasks_size() == 0) {
    for (const auto& [tid, task] : fw.tasks) known(task, tid);
    return;
  }
  for (const auto& t : reconcile.tasks()) {
    std::string tid = t.task_id().value();
    auto it = fw.tasks.find(tid);
    if (it != fw.tasks.end()) {
      known(it->second, tid);
      continue;
    }
    std::string aid = t.has_agent_id() ? t.agent_id().value() : "";
    TaskState state = mesos::TASK_UNKNOWN;
    auto agent = agents_.find(aid);
    if (agent != agents_.end() && !agent->second->recovered) {
      if (agent->second->removed) {
        state = mesos::TASK_GONE_BY_OPERATOR;
      } else {
        state = agent->second->reachable ? mesos::TASK_GONE : mesos::TASK_UNREACHABLE;
      }
    }
    answer(tid, aid, fw.partition_aware() ? state : mesos::TASK_LOST, nullptr);
  }
}

// ---- Agents -------------------------------------------------------------------------------

void Master::StatusUpdate(const mesos::AgentID& agent_id, const mesos::FrameworkID& framework_id,
                          const TaskStatus& incoming, TaskState latest_state) {
  auto fit = frameworks_.find(framework_id.value());
  if (fit == frameworks_.end()) {
    spdlog::info("status update for unknown framework {} dropped", framework_id.value());
    return;
  }
  Framework& fw = *fit->second;
  TaskStatus status = incoming;
  status.mutable_agent_id()->CopyFrom(agent_id);
  std::string tid = status.task_id().value();
  auto it = fw.tasks.find(tid);
  if (it != fw.tasks.end()) {
    TaskRecord& task = it->second;
    task.state = latest_state;
    task.unreachable = false;
    task.statuses.push_back(status);
    if (task.statuses.size() > 10) task.statuses.erase(task.statuses.begin());
    if (!task.released && (IsTerminalState(latest_state) || IsTerminalState(status.state()))) {
      task.released = true;  // resources go back to the pool at once, as in Mesos
    }
    if (status.has_uuid()) task.forwarded[status.uuid()] = status.state();
  }
  if (!fw.connected) return;  // the agent resends it after re-subscription
  SendUpdate(fw, status);
}

void Master::ExecutorExited(const mesos::AgentID& agent_id, const mesos::FrameworkID& framework_id,
                            const mesos::ExecutorID& executor_id, int wait_status) {
  auto fit = frameworks_.find(framework_id.value());
  if (fit == frameworks_.end()) return;
  Framework& fw = *fit->second;
  fw.executors[agent_id.value()].erase(executor_id.value());
  Event failure;
  failure.set_type(Event::FAILURE);
  *failure.mutable_failure()->mutable_agent_id() = agent_id;
  *failure.mutable_failure()->mutable_executor_id() = executor_id;
  failure.mutable_failure()->set_status(wait_status);
  Send(fw, failure);
}

void Master::ExecutorMessage(const mesos::AgentID& agent_id, const mesos::FrameworkID& framework_id,
                             const mesos::ExecutorID& executor_id, const std::string& data) {
  auto fit = frameworks_.find(framework_id.value());
  if (fit == frameworks_.end()) return;
  Event message;
  message.set_type(Event::MESSAGE);
  *message.mutable_message()->mutable_agent_id() = agent_id;
  *message.mutable_message()->mutable_executor_id() = executor_id;
  message.mutable_message()->set_data(data);
  Send(*fit->second, message);
}

void Master::AgentPing(const mesos::AgentID& agent_id) {
  auto it = agents_.find(agent_id.value());
  if (it == agents_.end() || it->second->removed) return;
  AgentState& agent = *it->second;
  agent.last_ping = Clock::now();
  if (!agent.reachable && agent.handle.link != nullptr) {
    agent.handle.link->ToAgent([](AgentApi& a) { a.RequestReregistration(); });
  }
}

void Master::ReregisterAgent(const mesos::AgentInfo& info,
                             const std::vector<mesos::FrameworkInfo>& frameworks,
                             const std::vector<mesos::Task>& tasks,
                             const std::vector<mesos::ExecutorInfo>& executors) {
  auto it = agents_.find(info.id().value());
  if (it == agents_.end() || it->second->removed) return;
  AgentState& agent = *it->second;
  bool was_unreachable = !agent.reachable;
  bool was_recovered = agent.recovered;
  agent.reachable = true;
  agent.recovered = false;
  agent.last_ping = Clock::now();
  if (was_recovered) RecoverFromAgent(agent, frameworks, tasks);
  std::set<std::pair<std::string, std::string>> reported;  // framework, task
  for (const auto& task : tasks) {
    reported.insert({task.framework_id().value(), task.task_id().value()});
    auto fit = frameworks_.find(task.framework_id().value());
    if (fit == frameworks_.end()) continue;
    auto tit = fit->second->tasks.find(task.task_id().value());
    if (tit == fit->second->tasks.end()) continue;
    tit->second.state = task.state();
    tit->second.unreachable = false;
    // As Mesos does when an unreachable agent comes back (master.cpp ___reregisterSlave; not
    // for an agent recovered from the registry after a master restart): each task's state goes
    // to its framework from the master, with no uuid to acknowledge. This is how a scheduler
    // learns that a task it saw UNREACHABLE runs again.
    if (was_unreachable && !was_recovered && fit->second->connected) {
      TaskStatus status =
          MasterStatus(tit->first, agent.id, task.state(), TaskStatus::REASON_RECONCILIATION,
                       "Unreachable agent re-reregistered");
      // Mesos sets REASON_AGENT_REREGISTERED (32), newer than the mesos.proto Debian ships;
      // decoded with that proto, as every framework here decodes it, the reason is absent.
      status.clear_reason();
      SendUpdate(*fit->second, status);
    }
  }
  for (const auto& exec : executors) {
    auto fit = frameworks_.find(exec.framework_id().value());
    if (fit == frameworks_.end()) continue;
    fit->second->executors[agent.id].emplace(exec.executor_id().value(), exec);
  }
  // Tasks the master placed on this agent that the agent no longer has are gone.
  for (auto& [fid, fw] : frameworks_) {
    for (auto& [tid, task] : fw->tasks) {
      if (task.agent_id != agent.id || IsTerminalState(task.state) || reported.count({fid, tid})) {
        continue;
      }
      if (task.state == mesos::TASK_STAGING && !task.unreachable) continue;  // still in flight
      task.state = fw->partition_aware() ? mesos::TASK_GONE : mesos::TASK_LOST;
      task.unreachable = false;
      task.released = true;
      SendUpdate(*fw, MasterStatus(tid, agent.id, task.state, TaskStatus::REASON_AGENT_RESTARTED,
                                   "Task was not found on the agent when it re-registered"));
    }
  }
  spdlog::info("agent {} re-registered{} with {} tasks", agent.id,
               was_unreachable ? " after being unreachable" : "", tasks.size());
}

// After a master restart: the frameworks and tasks an agent reports are adopted, frameworks as
// disconnected until their scheduler re-subscribes with its id.
void Master::RecoverFromAgent(AgentState& agent,
                              const std::vector<mesos::FrameworkInfo>& frameworks,
                              const std::vector<mesos::Task>& tasks) {
  for (const auto& info : frameworks) {
    if (!info.has_id() || frameworks_.count(info.id().value()) ||
        removed_frameworks_.count(info.id().value())) {
      continue;
    }
    auto fw = std::make_unique<Framework>();
    fw->id = info.id().value();
    fw->info = info;
    fw->registered_time = Now();
    spdlog::info("framework {} ({}) recovered from agent {}; awaiting its scheduler", fw->id,
                 info.name(), agent.id);
    frameworks_[fw->id] = std::move(fw);
  }
  for (const auto& task : tasks) {
    auto fit = frameworks_.find(task.framework_id().value());
    if (fit == frameworks_.end() || fit->second->tasks.count(task.task_id().value())) continue;
    TaskRecord record;
    record.info.set_name(task.name());
    *record.info.mutable_task_id() = task.task_id();
    *record.info.mutable_agent_id() = task.agent_id();
    *record.info.mutable_resources() = task.resources();
    if (task.has_discovery()) *record.info.mutable_discovery() = task.discovery();
    if (task.has_labels()) *record.info.mutable_labels() = task.labels();
    if (task.has_executor_id()) {
      record.info.mutable_executor()->mutable_executor_id()->CopyFrom(task.executor_id());
    }
    record.agent_id = agent.id;
    record.state = task.state();
    record.resources = ResourceBag::From(task.resources());
    record.released = IsTerminalState(task.state());
    fit->second->tasks[task.task_id().value()] = std::move(record);
  }
}

void Master::CheckAgents() {
  auto now = Clock::now();
  for (auto& [id, agent] : agents_) {
    if (agent->reachable && !agent->removed &&
        now - agent->last_ping > options_.agent_unreachable_timeout) {
      MarkUnreachable(*agent);
    }
  }
  auto interval = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(500),
                                                      options_.agent_unreachable_timeout / 4);
  agent_check_timer_.expires_after(interval);
  agent_check_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (!ec && *alive) CheckAgents();
  });
}

void Master::MarkUnreachable(AgentState& agent) {
  agent.reachable = false;
  agent.unreachable_time = Now();
  spdlog::warn("agent {} ({}) is unreachable", agent.id, agent.handle.info.hostname());
  for (auto& [fid, fw] : frameworks_) {
    for (auto& [tid, task] : fw->tasks) {
      if (task.agent_id != agent.id || IsTerminalState(task.state)) continue;
      task.unreachable = true;
      TaskStatus status = MasterStatus(
          tid, agent.id, fw->partition_aware() ? mesos::TASK_UNREACHABLE : mesos::TASK_LOST,
          TaskStatus::REASON_AGENT_REMOVED, "Agent " + agent.id + " is unreachable");
      if (fw->partition_aware()) {
        status.mutable_unreachable_time()->set_nanoseconds(
            static_cast<int64_t>(agent.unreachable_time * 1e9));
      }
      if (fw->connected) SendUpdate(*fw, status);
    }
    RescindOffers(
        *fw, [&](const mesos::Offer& o) { return o.agent_id().value() == agent.id; }, true);
    Event failure;
    failure.set_type(Event::FAILURE);
    failure.mutable_failure()->mutable_agent_id()->set_value(agent.id);
    Send(*fw, failure);
  }
}

void Master::RescindOffers(Framework& fw, const std::function<bool(const mesos::Offer&)>& which,
                           bool notify) {
  for (auto it = fw.offers.begin(); it != fw.offers.end();) {
    if (!which(it->second)) {
      ++it;
      continue;
    }
    if (notify) {
      Event rescind;
      rescind.set_type(Event::RESCIND);
      *rescind.mutable_rescind()->mutable_offer_id() = it->second.id();
      Send(fw, rescind);
    }
    it = fw.offers.erase(it);
  }
}

ResourceBag Master::Used(const std::string& agent_id) const {
  ResourceBag used;
  for (const auto& [fid, fw] : frameworks_) {
    for (const auto& [tid, task] : fw->tasks) {
      if (task.agent_id == agent_id && !task.released) used.Add(task.resources);
    }
    auto execs = fw->executors.find(agent_id);
    if (execs == fw->executors.end()) continue;
    for (const auto& [eid, exec] : execs->second) used.Add(ResourceBag::From(exec.resources()));
  }
  return used;
}

ResourceBag Master::Offered(const std::string& agent_id) const {
  ResourceBag offered;
  for (const auto& [fid, fw] : frameworks_) {
    for (const auto& [oid, offer] : fw->offers) {
      if (offer.agent_id().value() == agent_id) offered.Add(ResourceBag::From(offer.resources()));
    }
  }
  return offered;
}

void Master::Allocate() {
  auto now = Clock::now();
  for (auto& [fid, fw] : frameworks_) {
    if (!fw->connected || !fw->active || fw->suppressed) continue;
    Event event;
    event.set_type(Event::OFFERS);
    for (auto& [aid, agent] : agents_) {
      if (!agent->reachable || agent->removed || agent->handle.link == nullptr) continue;
      auto filter = fw->filters.find(aid);
      if (filter != fw->filters.end()) {
        if (filter->second > now) continue;
        fw->filters.erase(filter);
      }
      ResourceBag all_free = agent->total;
      all_free.Subtract(Used(aid));
      all_free.Subtract(Offered(aid));
      // Unreserved resources, and those reserved to the framework's role: a reservation is
      // offered to its role alone.
      std::string role = fw->role();
      ResourceBag free = all_free.Unreserved();
      if (role != "*") free.Add(all_free.ReservedTo(role));
      if (!free.Allocatable()) continue;
      mesos::Offer offer;
      offer.mutable_id()->set_value(fmt::format("{}-O{}", id_, next_offer_++));
      offer.mutable_framework_id()->set_value(fid);
      offer.mutable_agent_id()->set_value(aid);
      offer.set_hostname(agent->handle.info.hostname());
      auto* url = offer.mutable_url();
      url->set_scheme("http");
      url->mutable_address()->set_hostname(agent->handle.info.hostname());
      url->mutable_address()->set_ip(agent->handle.info.hostname());
      url->mutable_address()->set_port(agent->handle.info.port());
      std::string pid = agent->handle.pid;
      url->set_path("/" + pid.substr(0, pid.find('@')));
      for (auto& r : free.ToProto()) {
        if (!fw->reservation_refinement()) r = ToLegacyFormat(std::move(r));
        if (fw->multi_role()) r.mutable_allocation_info()->set_role(role);
        *offer.add_resources() = std::move(r);
      }
      if (fw->multi_role()) offer.mutable_allocation_info()->set_role(role);
      auto execs = fw->executors.find(aid);
      if (execs != fw->executors.end()) {
        for (const auto& [eid, exec] : execs->second) offer.add_executor_ids()->set_value(eid);
      }
      fw->offers[offer.id().value()] = offer;
      *event.mutable_offers()->add_offers() = std::move(offer);
    }
    if (event.offers().offers_size() > 0) Send(*fw, event);
  }
  allocation_timer_.expires_after(options_.allocation_interval);
  allocation_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (!ec && *alive) Allocate();
  });
}

// ---- State --------------------------------------------------------------------------------

json TaskJson(const mesos::TaskInfo& info, const std::string& framework_id, TaskState state,
              const std::vector<TaskStatus>& statuses, const std::string& role,
              const ResourceBag& resources) {
  json task = {{"id", info.task_id().value()},
               {"name", info.name()},
               {"framework_id", framework_id},
               {"executor_id", info.has_executor() ? info.executor().executor_id().value() : ""},
               {"slave_id", info.agent_id().value()},
               {"state", mesos::TaskState_Name(state)},
               {"role", role},
               {"resources", resources.Summary()}};
  json list = json::array();
  for (const auto& s : statuses) {
    json one = {{"state", mesos::TaskState_Name(s.state())}, {"timestamp", s.timestamp()}};
    if (s.has_healthy()) one["healthy"] = s.healthy();
    if (s.has_labels()) one["labels"] = mesos_codec::MessageToJson(s.labels())["labels"];
    if (s.has_container_status()) {
      one["container_status"] = mesos_codec::MessageToJson(s.container_status());
    }
    list.push_back(std::move(one));
  }
  task["statuses"] = std::move(list);
  if (info.has_labels()) {
    json labels = mesos_codec::MessageToJson(info.labels());
    task["labels"] = labels.contains("labels") ? labels["labels"] : json::array();
  }
  if (info.has_discovery()) task["discovery"] = mesos_codec::MessageToJson(info.discovery());
  return task;
}

json Master::StateJson() const {
  json frameworks = json::array();
  std::map<std::string, ResourceBag> used_by_agent;
  for (const auto& [fid, fw] : frameworks_) {
    json tasks = json::array();
    json unreachable = json::array();
    ResourceBag used;
    for (const auto& [tid, task] : fw->tasks) {
      TaskState state = task.state;
      json j = TaskJson(task.info, fid, state, task.statuses, fw->role(), task.resources);
      if (task.unreachable) {
        j["state"] = mesos::TaskState_Name(fw->partition_aware() ? mesos::TASK_UNREACHABLE
                                                                 : mesos::TASK_LOST);
        unreachable.push_back(std::move(j));
      } else {
        tasks.push_back(std::move(j));
      }
      if (!task.released) used.Add(task.resources);
    }
    json executors = json::array();
    for (const auto& [aid, execs] : fw->executors) {
      auto agent = agents_.find(aid);
      for (const auto& [eid, exec] : execs) {
        json e = mesos_codec::MessageToJson(exec);
        e["slave_id"] = aid;
        if (agent != agents_.end() && agent->second->handle.sandbox_of) {
          e["directory"] = agent->second->handle.sandbox_of(fid, eid);
        }
        executors.push_back(std::move(e));
        used.Add(ResourceBag::From(exec.resources()));
      }
    }
    json offers = json::array();
    ResourceBag offered;
    for (const auto& [oid, offer] : fw->offers) {
      ResourceBag r = ResourceBag::From(offer.resources());
      offered.Add(r);
      offers.push_back({{"id", oid},
                        {"framework_id", fid},
                        {"slave_id", offer.agent_id().value()},
                        {"resources", r.Summary()}});
    }
    json capabilities = json::array();
    for (const auto& c : fw->info.capabilities()) {
      capabilities.push_back(mesos::FrameworkInfo::Capability::Type_Name(c.type()));
    }
    json f = {{"id", fid},
              {"name", fw->info.name()},
              {"hostname", fw->info.hostname()},
              {"webui_url", fw->info.webui_url()},
              {"active", fw->active},
              {"connected", fw->connected},
              {"recovered", false},
              {"user", fw->info.user()},
              {"failover_timeout", fw->info.failover_timeout()},
              {"checkpoint", fw->info.checkpoint()},
              {"registered_time", fw->registered_time},
              {"capabilities", capabilities},
              {"tasks", tasks},
              {"unreachable_tasks", unreachable},
              {"completed_tasks", fw->completed_tasks},
              {"offers", offers},
              {"executors", executors},
              {"resources", used.Summary()},
              {"used_resources", used.Summary()},
              {"offered_resources", offered.Summary()}};
    if (fw->info.has_principal()) f["principal"] = fw->info.principal();
    if (fw->multi_role()) {
      f["roles"] = fw->info.roles();
    } else {
      f["role"] = fw->role();
    }
    frameworks.push_back(std::move(f));
  }
  json slaves = json::array();
  int active = 0;
  int unreachable = 0;
  for (const auto& [aid, agent] : agents_) {
    if (agent->removed) continue;
    agent->reachable ? ++active : ++unreachable;
    if (!agent->reachable) continue;
    ResourceBag used = Used(aid);
    ResourceBag offered = Offered(aid);
    json reserved = json::object();
    json reserved_full = json::object();  // as Mesos: each resource whole, volumes with their id
    for (const auto& [role, bag] : agent->total.ReservedByRole()) {
      reserved[role] = bag.Summary();
      json full = json::array();
      for (const auto& r : bag.ToProto()) full.push_back(mesos_codec::MessageToJson(r));
      reserved_full[role] = std::move(full);
    }
    slaves.push_back({{"id", aid},
                      {"hostname", agent->handle.info.hostname()},
                      {"port", agent->handle.info.port()},
                      {"pid", agent->handle.pid},
                      {"attributes", json::object()},
                      {"registered_time", agent->registered_time},
                      {"resources", agent->total.Summary()},
                      {"used_resources", used.Summary()},
                      {"offered_resources", offered.Summary()},
                      {"reserved_resources", reserved},
                      {"reserved_resources_full", reserved_full},
                      {"unreserved_resources", agent->total.Unreserved().Summary()},
                      {"active", true},
                      {"deactivated", false},
                      {"version", "1.11.0"},
                      {"capabilities", json::array()}});
  }
  json leader_info = mesos_codec::MessageToJson(info());
  return {{"version", "1.11.0"},
          {"build_user", "etcd-mesos-local"},
          {"start_time", start_time_},
          {"elected_time", start_time_},
          {"id", id_},
          {"pid", pid()},
          {"hostname", options_.hostname},
          {"capabilities", json::array()},
          {"activated_slaves", active},
          {"deactivated_slaves", 0},
          {"unreachable_slaves", unreachable},
          {"leader", pid()},
          {"leader_info", leader_info},
          {"flags",
           {{"allocation_interval", fmt::format("{}ms", options_.allocation_interval.count())},
            {"authenticate_http_frameworks", options_.credentials.empty() ? "false" : "true"}}},
          {"slaves", slaves},
          {"recovered_slaves", json::array()},
          {"frameworks", frameworks},
          {"completed_frameworks", completed_frameworks_},
          {"orphan_tasks", json::array()},
          {"unregistered_frameworks", json::array()}};
}

}  // namespace etcd_mesos::local
