#include "local/cluster.h"

#include <boost/asio/post.hpp>

#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "local/console_page.h"
#include "local/resources.h"
#include "mesos/json_codec.h"

extern char** environ;

namespace etcd_mesos::local {

namespace fs = std::filesystem;
using nlohmann::json;

struct LocalCluster::AgentSlot {
  int n = 0;
  std::string ip;
  uint16_t port = 0;  // kept across restarts: a restarted agent comes back on its old port
  fs::path work_dir;
  std::unique_ptr<Link> link;
  std::unique_ptr<Agent> agent;
  bool running = false;
  bool crashed = false;  // not running because the agent process died (executors run on)
};

namespace {

std::string Html(std::string_view text) { return net::HtmlEscape(text); }

std::string UrlEncode(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string UrlDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int v = 0;
      auto [p, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, v, 16);
      if (ec == std::errc() && p == text.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
        continue;
      }
    }
    out += text[i] == '+' ? ' ' : text[i];
  }
  return out;
}

std::string QueryParam(const std::string& query, std::string_view name) {
  size_t start = 0;
  while (start <= query.size()) {
    size_t amp = query.find('&', start);
    std::string_view part(query.data() + start,
                          (amp == std::string::npos ? query.size() : amp) - start);
    if (part.starts_with(name) && part.size() > name.size() && part[name.size()] == '=') {
      return UrlDecode(part.substr(name.size() + 1));
    }
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
  return "";
}

// A whole non-negative number of milliseconds in `name`, or nothing when absent.
Result<std::optional<std::chrono::milliseconds>> MillisecondsParam(const std::string& query,
                                                                   std::string_view name) {
  std::string text = QueryParam(query, name);
  if (text.empty()) return std::optional<std::chrono::milliseconds>();
  int ms = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
  if (ec != std::errc() || p != text.data() + text.size() || ms < 0) {
    return MakeError(ErrorCode::kInvalidArgument, "{} '{}' is not a number of ms", name, text);
  }
  return std::optional<std::chrono::milliseconds>(ms);
}

net::HttpResponse FaultAnswer(const Status& s, const std::string& done) {
  if (s.ok()) return net::JsonResponse(200, json{{"ok", true}, {"message", done}}.dump());
  unsigned code = s.error().code == ErrorCode::kNotFound ? 404 : 400;
  return net::JsonResponse(code, json{{"ok", false}, {"message", s.error().message}}.dump());
}

}  // namespace

LocalCluster::LocalCluster(boost::asio::io_context& io, LocalClusterOptions options)
    : io_(io), options_(std::move(options)), reaper_(io) {}

LocalCluster::~LocalCluster() { Shutdown(); }

Result<HostPort> LocalCluster::Start() {
  std::error_code ec;
  fs::create_directories(options_.work_dir, ec);
  if (ec) {
    return MakeError(ErrorCode::kInvalidArgument, "cannot create work dir {}: {}",
                     options_.work_dir.string(), ec.message());
  }
  master_ = std::make_unique<Master>(io_, options_.master);
  auto bound =
      master_->Start([this](const net::ServerRequest& req, std::shared_ptr<net::Responder>& r) {
        return HandleExtra(req, r);
      });
  if (!bound.ok()) return bound.error();
  for (int i = 0; i < options_.agents; ++i) {
    auto slot = std::make_unique<AgentSlot>();
    slot->n = i + 1;
    slot->ip = fmt::format("127.0.0.{}", options_.first_agent_host + i);
    slot->port = options_.agent.port;
    slot->work_dir = options_.work_dir / "agents" / std::to_string(slot->n);
    Status s = LaunchAgent(*slot, true);
    if (!s.ok()) return s.error();
    agents_.push_back(std::move(slot));
  }
  return bound;
}

Status LocalCluster::LaunchAgent(AgentSlot& slot, bool new_identity) {
  (void)new_identity;
  AgentOptions options = options_.agent;
  options.index = slot.n;
  options.ip = slot.ip;
  options.port = slot.port;
  options.work_dir = slot.work_dir;
  if (options.fetch_cache_dir.empty()) options.fetch_cache_dir = options_.work_dir / "fetch-cache";
  options.resources = options_.resources;
  options.master_pid = master_->pid();
  mesos::AgentID id;
  id.set_value(fmt::format("{}-S{}", master_->id(), next_agent_id_++));
  slot.link = std::make_unique<Link>(io_);
  slot.agent = std::make_unique<Agent>(io_, options, id, *slot.link);
  slot.link->Connect(slot.agent.get(), master_.get());
  auto bound = slot.agent->Start();
  if (!bound.ok()) {
    return bound.error().Context(fmt::format("agent {} on {}", slot.n, slot.ip));
  }
  slot.port = bound->port;
  slot.running = true;
  slot.crashed = false;
  Agent* agent = slot.agent.get();
  master_->AddAgent({agent->info(), agent->pid(), slot.link.get(),
                     [agent](const std::string& fid, const std::string& eid) {
                       return agent->SandboxOf(fid, eid);
                     }});
  spdlog::info("agent {} ({}) is up at http://{} with work dir {}", slot.n, id.value(),
               bound->ToString(), slot.work_dir.string());
  return OkStatus();
}

void LocalCluster::Shutdown() {
  if (command_pid_ > 0) {
    reaper_.TerminateAllNow(std::chrono::seconds(10));
    command_pid_ = -1;
  }
  for (auto& slot : agents_) {
    if (slot->agent) slot->agent->Stop(Agent::StopMode::kLoseHost);
    slot->agent.reset();
    if (slot->link) slot->link->Disconnect();
    slot->running = false;
  }
  if (reregistration_timer_) reregistration_timer_->cancel();
  if (master_) master_->Stop();
  for (auto& retired : retired_masters_) retired->Stop();  // a lingering session ends too
}

Result<LocalCluster::AgentSlot*> LocalCluster::Slot(int n) {
  if (n < 1 || n > static_cast<int>(agents_.size())) {
    return MakeError(ErrorCode::kNotFound, "there is no agent {} (agents are 1..{})", n,
                     agents_.size());
  }
  return agents_[n - 1].get();
}

Agent* LocalCluster::agent(int n) {
  auto slot = Slot(n);
  return slot.ok() ? (*slot)->agent.get() : nullptr;
}

Status LocalCluster::StopAgent(int n) {
  auto slot = Slot(n);
  if (!slot.ok()) return slot.error();
  AgentSlot& s = **slot;
  if (!s.running) return MakeError(ErrorCode::kRefused, "agent {} is already stopped", n);
  spdlog::warn("fault: stopping agent {} ({}) and everything on it", n, s.ip);
  s.agent->Stop(Agent::StopMode::kLoseHost);
  s.link->set_partitioned(true);  // a dead host neither hears nor answers
  s.running = false;
  s.crashed = false;
  return OkStatus();
}

Status LocalCluster::CrashAgent(int n) {
  auto slot = Slot(n);
  if (!slot.ok()) return slot.error();
  AgentSlot& s = **slot;
  if (!s.running) return MakeError(ErrorCode::kRefused, "agent {} is already stopped", n);
  spdlog::warn(
      "fault: the agent process {} ({}) dies; its executors keep running until it comes "
      "back or their recovery timeout passes",
      n, s.ip);
  s.agent->Stop(Agent::StopMode::kKeepExecutors);
  s.link->set_partitioned(true);
  s.running = false;
  s.crashed = true;
  return OkStatus();
}

Status LocalCluster::RestartAgent(int n, bool wipe) {
  auto slot = Slot(n);
  if (!slot.ok()) return slot.error();
  AgentSlot& s = **slot;
  if (wipe) {
    spdlog::warn("fault: restarting agent {} ({}) with a wiped work dir (a new agent id)", n, s.ip);
    std::string old_id = s.agent->id().value();
    s.agent->Stop(Agent::StopMode::kLoseHost);
    s.link->Disconnect();
    s.agent.reset();
    master_->RemoveAgent(old_id);
    std::error_code ec;
    fs::remove_all(s.work_dir, ec);
    return LaunchAgent(s, true);
  }
  spdlog::warn("fault: restarting agent {} ({}) keeping its work dir and executors", n, s.ip);
  if (s.running) s.agent->Stop(Agent::StopMode::kKeepExecutors);
  s.link->set_partitioned(false);
  auto bound = s.agent->Start();
  if (!bound.ok()) return bound.error();
  s.running = true;
  s.crashed = false;
  return OkStatus();
}

Status LocalCluster::PartitionAgent(int n) {
  auto slot = Slot(n);
  if (!slot.ok()) return slot.error();
  spdlog::warn("fault: partitioning agent {} ({}) from the master", n, (*slot)->ip);
  (*slot)->link->set_partitioned(true);
  return OkStatus();
}

Status LocalCluster::HealAgent(int n) {
  auto slot = Slot(n);
  if (!slot.ok()) return slot.error();
  if (!(*slot)->running) {
    return MakeError(ErrorCode::kRefused, "agent {} is stopped; restart it instead", n);
  }
  spdlog::warn("fault: healing the partition of agent {} ({})", n, (*slot)->ip);
  (*slot)->link->set_partitioned(false);
  return OkStatus();
}

Status LocalCluster::RestartMaster(std::chrono::milliseconds agents_back_after,
                                   std::optional<std::chrono::milliseconds> session_lives) {
  if (!master_) return MakeError(ErrorCode::kRefused, "the master is not running");
  HostPort address = master_->address();
  std::chrono::milliseconds linger = session_lives.value_or(options_.master.zk_session_timeout);
  if (options_.master.zk) {
    spdlog::warn(
        "fault: killing the master on {}; its ZooKeeper session lives {} ms more; a new master "
        "with no memory contends at the same address; agents re-register {} ms after it serves",
        address.ToString(), linger.count(), agents_back_after.count());
  } else {
    spdlog::warn("fault: restarting the master on {} with no memory; agents re-register in {} ms",
                 address.ToString(), agents_back_after.count());
  }
  for (auto& slot : agents_) {
    if (slot->link) slot->link->Disconnect();
  }
  master_->Kill(linger);
  retired_masters_.push_back(std::move(master_));
  MasterOptions options = options_.master;
  options.ip = address.host;
  options.port = address.port;
  master_ = std::make_unique<Master>(io_, options);
  auto bound =
      master_->Start([this](const net::ServerRequest& req, std::shared_ptr<net::Responder>& r) {
        return HandleExtra(req, r);
      });
  if (!bound.ok()) return bound.error().Context("restarting the master");
  // Agents find a master through its election, as real ones do through ZooKeeper.
  if (master_->serving()) {
    ReregisterAgentsAfter(agents_back_after);
  } else {
    master_->OnServing([this, agents_back_after] { ReregisterAgentsAfter(agents_back_after); });
  }
  return OkStatus();
}

void LocalCluster::ReregisterAgentsAfter(std::chrono::milliseconds delay) {
  reregistration_timer_ = std::make_unique<boost::asio::steady_timer>(io_, delay);
  reregistration_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    for (auto& slot : agents_) {
      if (!slot->agent || !slot->link) continue;
      slot->link->Connect(slot->agent.get(), master_.get());
      Agent* agent = slot->agent.get();
      master_->AddAgent({agent->info(), agent->pid(), slot->link.get(),
                         [agent](const std::string& fid, const std::string& eid) {
                           return agent->SandboxOf(fid, eid);
                         }},
                        /*recovered=*/true);
    }
  });
}

Status LocalCluster::KillExecutor(const std::string& executor_id) {
  for (auto& slot : agents_) {
    if (!slot->agent || !slot->running) continue;
    Status s = slot->agent->KillExecutor(executor_id);
    if (s.ok()) {
      spdlog::warn("fault: killed executor {} on agent {}", executor_id, slot->n);
      return s;
    }
    if (s.error().code != ErrorCode::kNotFound) return s;
  }
  return MakeError(ErrorCode::kNotFound, "no running executor '{}' on any agent", executor_id);
}

Result<std::pair<std::string, int>> LocalCluster::CorruptData(const std::string& executor_id,
                                                              std::string_view value) {
  if (value.size() < 16) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "value must be at least 16 bytes, so that only the stored copies match");
  }
  std::string sandbox;
  for (auto& slot : agents_) {
    if (!slot->agent) continue;
    for (const auto& entry : slot->agent->Sandboxes()) {
      if (entry.executor_id == executor_id) sandbox = entry.directory;
    }
  }
  if (sandbox.empty()) {
    return MakeError(ErrorCode::kNotFound, "no sandbox of executor '{}' on any agent", executor_id);
  }
  std::filesystem::path db;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(sandbox, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const auto& path = it->path();
    if (path.filename() == "db" && path.parent_path().filename() == "snap" &&
        path.parent_path().parent_path().filename() == "member") {
      db = path;
    }
  }
  if (db.empty()) {
    return MakeError(ErrorCode::kNotFound, "no etcd database (member/snap/db) under {}", sandbox);
  }
  std::fstream file(db, std::ios::in | std::ios::out | std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(file)), {});
  if (!file.good() && !file.eof()) {
    return MakeError(ErrorCode::kInternal, "cannot read {}", db.string());
  }
  file.clear();
  std::string flipped(value);
  for (char& c : flipped) c = static_cast<char>(c ^ 1);
  int changed = 0;
  for (size_t at = data.find(value); at != std::string::npos; at = data.find(value, at + 1)) {
    // Written in place (the same file, not a new one): etcd's shared map of it sees the bytes.
    file.seekp(static_cast<std::streamoff>(at));
    file.write(flipped.data(), static_cast<std::streamsize>(flipped.size()));
    ++changed;
  }
  file.flush();
  if (!file.good()) return MakeError(ErrorCode::kInternal, "cannot write {}", db.string());
  if (changed == 0) {
    return MakeError(ErrorCode::kNotFound, "the value is not stored in {}", db.string());
  }
  spdlog::warn("fault: corrupted {} copies of a value in {}", changed, db.string());
  return std::make_pair(db.string(), changed);
}

std::string LocalCluster::MasterUrl() const {
  const auto& zk = options_.master.zk;
  if (!zk) return master_->address().ToString();
  if (!zk->user) return zk->ToString();
  std::string text = zk->ToString();  // zk://hosts/path, without the credentials
  return "zk://" + *zk->user + ":" + zk->password.value_or("") + "@" + text.substr(5);
}

Status LocalCluster::StartCommand(const std::vector<std::string>& argv) {
  if (argv.empty()) return MakeError(ErrorCode::kInvalidArgument, "empty command");
  ProcessSpec spec;
  spec.program = argv[0];
  spec.argv = argv;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq != std::string::npos) spec.env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  spec.env["MESOS_MASTER"] = MasterUrl();
  spec.cwd = fs::current_path();
  spec.stdout_path = "/dev/stdout";
  spec.stderr_path = "/dev/stderr";
  auto pid = SpawnProcess(spec);
  if (!pid.ok()) return pid.error();
  command_pid_ = *pid;
  spdlog::info("started '{}' (pid {}) with MESOS_MASTER={}", fmt::join(argv, " "), *pid,
               spec.env["MESOS_MASTER"]);
  reaper_.Watch(*pid, [this, name = argv[0]](int status) {
    spdlog::warn("'{}' {}", name, DescribeWaitStatus(status));
    command_pid_ = -1;
  });
  return OkStatus();
}

std::vector<int> LocalCluster::ProcessIds() const {
  std::vector<int> pids;
  for (const auto& slot : agents_) {
    if (!slot->agent) continue;
    auto more = slot->agent->ProcessIds();
    pids.insert(pids.end(), more.begin(), more.end());
  }
  if (command_pid_ > 0) pids.push_back(command_pid_);
  return pids;
}

json LocalCluster::FaultStateJson() const {
  json agents = json::array();
  for (const auto& slot : agents_) {
    const char* state = "running";
    if (!slot->agent || !slot->running) {
      state = slot->crashed ? "crashed" : "stopped";
    } else if (slot->link && slot->link->partitioned()) {
      state = "partitioned";
    }
    json executors = json::array();
    json a = {{"n", slot->n},
              {"ip", slot->ip},
              {"port", slot->port},
              {"state", state},
              {"running", slot->running},
              {"partitioned", slot->link && slot->link->partitioned()},
              {"work_dir", slot->work_dir.string()}};
    if (slot->agent) {
      a["id"] = slot->agent->id().value();
      a["resources"] = ResourceBag::From(slot->agent->resources()).Summary();
      for (const auto& e : slot->agent->Sandboxes()) {
        executors.push_back({{"framework_id", e.framework_id},
                             {"executor_id", e.executor_id},
                             {"directory", e.directory},
                             {"live", e.live && slot->running}});
      }
    } else {
      a["id"] = "";
      a["resources"] = json::object();
    }
    a["executors"] = std::move(executors);
    agents.push_back(std::move(a));
  }
  json master = json::object();
  if (master_) {
    master = {{"id", master_->id()},
              {"address", master_->address().ToString()},
              {"serving", master_->serving()}};
  }
  return {{"master", std::move(master)},
          {"work_dir", options_.work_dir.string()},
          {"agents", std::move(agents)}};
}

// ---- HTTP: faults, console, sandbox browser ---------------------------------------------------

bool LocalCluster::HandleExtra(const net::ServerRequest& req,
                               std::shared_ptr<net::Responder>& responder) {
  if (req.path.starts_with("/faults")) {
    HandleFault(req, responder);
    return true;
  }
  if (req.path == "/" || req.path == "/index.html") {
    ServeIndex(responder);
    return true;
  }
  if (req.path == "/sandbox") {
    ServeSandbox(req, responder);
    return true;
  }
  return false;
}

void LocalCluster::HandleFault(const net::ServerRequest& req, std::shared_ptr<net::Responder>& r) {
  static constexpr std::string_view kHelp =
      "State (GET):\n"
      "  /faults/state                      JSON: every agent's number N, id, ip, state\n"
      "                                     (running, partitioned, crashed or stopped) and\n"
      "                                     executors with their sandbox directories\n"
      "Fault injection (POST):\n"
      "  /faults/agents/N/stop              the host dies with every executor and etcd on it\n"
      "  /faults/agents/N/crash             the agent process dies; executors run on, and\n"
      "                                     reconnect when it restarts (or stop after their\n"
      "                                     recovery timeout)\n"
      "  /faults/agents/N/restart[?wipe=1]  the agent restarts; wipe=1 loses its work dir\n"
      "  /faults/agents/N/partition         the master stops hearing from it\n"
      "  /faults/agents/N/heal              ends the partition\n"
      "  /faults/executors/ID/kill          SIGKILL one executor\n"
      "  /faults/executors/ID/corrupt?value=TEXT\n"
      "                                     flips every stored copy of TEXT (16 bytes or\n"
      "                                     more) in that member's etcd database, in place,\n"
      "                                     behind the running etcd's back\n"
      "  /faults/master/restart[?agents_after_ms=N][&session_lives_ms=M]\n"
      "                                     the master restarts with no memory; agents\n"
      "                                     re-register N ms (default 5000) after it serves;\n"
      "                                     with --zk, the killed master's ZooKeeper session\n"
      "                                     (and leadership) lives M ms more (default: the\n"
      "                                     session timeout)\n";
  if (req.path == "/faults" || req.path == "/faults/") {
    return r->Respond(net::TextResponse(200, std::string(kHelp)));
  }
  if (req.path == "/faults/state") {
    if (req.method != net::Verb::get && req.method != net::Verb::head) {
      return r->Respond({405, {{"Allow", "GET"}}, "the fault state is read with GET\n"});
    }
    net::HttpResponse answer = net::JsonResponse(200, FaultStateJson().dump());
    answer.headers.push_back({"Cache-Control", "no-store"});
    return r->Respond(std::move(answer));
  }
  if (req.method != net::Verb::post) {
    return r->Respond(
        net::TextResponse(405, "faults are injected with POST\n" + std::string(kHelp)));
  }
  std::vector<std::string> parts;
  std::stringstream ss(req.path);
  for (std::string part; std::getline(ss, part, '/');) {
    if (!part.empty()) parts.push_back(part);
  }
  if (parts.size() == 4 && parts[1] == "agents") {
    int n = 0;
    auto [p, ec] = std::from_chars(parts[2].data(), parts[2].data() + parts[2].size(), n);
    if (ec != std::errc() || p != parts[2].data() + parts[2].size()) {
      return r->Respond(net::TextResponse(400, "agent number '" + parts[2] + "' is not a number"));
    }
    const std::string& action = parts[3];
    if (action == "stop") return r->Respond(FaultAnswer(StopAgent(n), "agent stopped"));
    if (action == "crash") {
      return r->Respond(FaultAnswer(CrashAgent(n), "agent process crashed; executors run on"));
    }
    if (action == "restart") {
      std::string wipe = QueryParam(req.query, "wipe");
      bool w = wipe == "1" || wipe == "true";
      return r->Respond(FaultAnswer(
          RestartAgent(n, w), w ? "agent restarted with a wiped work dir" : "agent restarted"));
    }
    if (action == "partition") return r->Respond(FaultAnswer(PartitionAgent(n), "partitioned"));
    if (action == "heal") return r->Respond(FaultAnswer(HealAgent(n), "partition healed"));
  }
  if (parts.size() == 3 && parts[1] == "master" && parts[2] == "restart") {
    auto agents_after = MillisecondsParam(req.query, "agents_after_ms");
    auto session_lives = MillisecondsParam(req.query, "session_lives_ms");
    if (!agents_after.ok()) return r->Respond(net::TextResponse(400, agents_after.error().message));
    if (!session_lives.ok()) {
      return r->Respond(net::TextResponse(400, session_lives.error().message));
    }
    // Answer first: the restart closes the very server this request came in on.
    r->Respond(net::TextResponse(200, "master restarting\n"));
    auto after = agents_after->value_or(std::chrono::milliseconds(5000));
    boost::asio::post(io_, [this, after, lives = *session_lives] {
      Status s = RestartMaster(after, lives);
      if (!s.ok()) spdlog::error("restarting the master failed: {}", s.error().ToString());
    });
    return;
  }
  if (parts.size() == 4 && parts[1] == "executors" && parts[3] == "kill") {
    return r->Respond(FaultAnswer(KillExecutor(UrlDecode(parts[2])), "executor killed"));
  }
  if (parts.size() == 4 && parts[1] == "executors" && parts[3] == "corrupt") {
    auto done = CorruptData(UrlDecode(parts[2]), QueryParam(req.query, "value"));
    if (!done.ok()) return r->Respond(FaultAnswer(done.error(), ""));
    return r->Respond(FaultAnswer(
        OkStatus(), fmt::format("corrupted {} copies in {}", done->second, done->first)));
  }
  r->Respond(net::TextResponse(404, "unknown fault " + req.path + "\n" + std::string(kHelp)));
}

void LocalCluster::ServeIndex(std::shared_ptr<net::Responder>& r) {
  // The console renders itself from /master/state and /faults/state (local/console_page.h).
  r->Respond({200,
              {{"Content-Type", "text/html; charset=utf-8"}, {"Cache-Control", "no-store"}},
              std::string(LocalConsolePage())});
}

void LocalCluster::ServeSandbox(const net::ServerRequest& req, std::shared_ptr<net::Responder>& r) {
  std::error_code ec;
  fs::path asked = fs::weakly_canonical(QueryParam(req.query, "path"), ec);
  fs::path root = fs::weakly_canonical(options_.work_dir, ec);
  auto rel = asked.lexically_relative(root);
  if (ec || asked.empty() || rel.empty() || rel.native().starts_with("..")) {
    return r->Respond(net::TextResponse(
        403, "only paths inside the work dir " + root.string() + " can be browsed"));
  }
  if (fs::is_directory(asked, ec)) {
    std::string page = fmt::format(
        "<!doctype html><html><head><meta charset=utf-8><title>{0}</title></head><body>"
        "<p><a href=/>etcd-mesos-local</a></p><h2>Sandbox: {0}</h2><ul>",
        Html(asked.string()));
    std::vector<fs::directory_entry> entries;
    for (const auto& e : fs::directory_iterator(asked, ec)) entries.push_back(e);
    std::sort(entries.begin(), entries.end());
    for (const auto& e : entries) {
      page += fmt::format("<li><a href=\"/sandbox?path={}\">{}</a>{}</li>",
                          UrlEncode(e.path().string()), Html(e.path().filename().string()),
                          e.is_directory() ? "/" : fmt::format(" ({} bytes)", e.file_size(ec)));
    }
    page += "</ul></body></html>";
    return r->Respond({200, {{"Content-Type", "text/html; charset=utf-8"}}, std::move(page)});
  }
  std::ifstream in(asked, std::ios::binary);
  if (!in) return r->Respond(net::TextResponse(404, "no such file " + asked.string()));
  // Logs can be large: serve the last MiB, which is what an operator reads.
  constexpr std::streamoff kMax = 1 << 20;
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  in.seekg(size > kMax ? size - kMax : 0);
  std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  r->Respond({200, {{"Content-Type", "text/plain; charset=utf-8"}}, std::move(body)});
}

}  // namespace etcd_mesos::local
