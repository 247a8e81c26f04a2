#include "scheduler/shell/admin.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/secret.h"
#include "mesos/task_state.h"
#include "scheduler/core/rules.h"
#include "scheduler/shell/backups.h"
#include "scheduler/shell/status_page.h"

namespace etcd_mesos::scheduler::shell {

namespace {

using json = nlohmann::json;
// nlohmann's ordered_json keeps insertion order: /stats keeps the original's key order.
using ordered_json = nlohmann::ordered_json;

// A non-negative decimal count, all of `text`; nullopt otherwise.
std::optional<uint64_t> ParseCount(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && Hex(s[i + 1]) >= 0 && Hex(s[i + 2]) >= 0) {
      out += static_cast<char>(Hex(s[i + 1]) * 16 + Hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

net::HttpResponse Text(unsigned status, std::string text) {
  return net::TextResponse(status, std::move(text));
}

net::HttpResponse MethodNotAllowed(const net::ServerRequest& req, std::string allow) {
  auto r = Text(405, fmt::format("405 method not allowed: {} {} (allowed: {})\n", req.method_string,
                                 req.path, allow));
  r.headers.emplace_back("Allow", std::move(allow));
  return r;
}

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// GET /backups: the backups in `dir`, newest first. Reads the disk: not on the event loop.
std::string RenderBackupList(const std::string& dir) {
  json out = json::array();
  for (const auto& b : ListBackups(dir)) {
    out.push_back(json{{"name", b.name},
                       {"size", b.size},
                       {"sha256", b.sha256},
                       {"revision", b.revision},
                       {"cluster_id", fmt::format("{:016x}", b.cluster_id)},
                       {"member", b.member},
                       {"time", FormatWallTime(b.time)},
                       {"verified", b.verified}});
    const auto& check = b.restore_check;
    json& entry = out.back();
    entry["restore_check"] = check ? json(check->Outcome()) : json(nullptr);
    entry["verified_at"] = check ? json(FormatWallTime(check->at)) : json(nullptr);
    entry["verify_error"] = check ? check->error : "";
    entry["hash_compared"] = check && check->hash_compared;
    entry["hash_revision"] = check ? check->hash_revision : 0;
  }
  return out.dump() + "\n";
}

// The body of an artifact, or a 500 naming it.
net::HttpResponse ReadArtifact(const std::string& path, const std::string& name) {
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  std::string data(ec ? 0 : size, '\0');
  if (!in || ec || !in.read(data.data(), static_cast<std::streamsize>(data.size()))) {
    spdlog::error("admin: cannot read artifact {} at {}", name, path);
    return Text(500, "500 cannot read " + name + " on the scheduler\n");
  }
  return net::HttpResponse{200, {{"Content-Type", "application/octet-stream"}}, std::move(data)};
}

// A standby's answer to a command: the same request at the leader (307 keeps the method and the
// body), or 503 when no leader is known.
net::HttpResponse ToLeader(const net::ServerRequest& req, const std::string& leader) {
  if (leader.empty()) {
    return Text(503,
                "503 service unavailable: this scheduler is a standby and no leader is "
                "elected yet; try again shortly\n");
  }
  std::string base = leader.ends_with('/') ? leader.substr(0, leader.size() - 1) : leader;
  auto r = Text(307, fmt::format("307: this scheduler is a standby; the leader is {}\n", leader));
  r.headers.emplace_back("Location", base + req.target);
  return r;
}
}  // namespace

Result<std::string> ArtifactVersion(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return MakeError(ErrorCode::kNotFound, "cannot stat artifact {}: {}", path,
                     std::strerror(errno));
  }
  // FNV-1a over size and mtime: stable across processes (std::hash need not be).
  uint64_t h = 1469598103934665603ull;
  for (int64_t v : {static_cast<int64_t>(st.st_size), static_cast<int64_t>(st.st_mtim.tv_sec),
                    static_cast<int64_t>(st.st_mtim.tv_nsec)}) {
    for (int i = 0; i < 8; ++i) {
      h ^= static_cast<uint64_t>(v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  }
  return fmt::format("{:016x}", h);
}

std::string RenderMembers(const SchedulerCore& core) {
  json out = json::array();
  for (const auto& [name, m] : core.state().members) {
    out.push_back(json{
        {"name", m.name},
        {"host", m.host},
        {"rpcPort", m.peer_port},
        {"clientPort", m.client_port},
        // With its scheme: etcd-mesos-proxy dials https members only with TLS flags.
        {"clientUrl", m.ClientUrl()},
        {"httpPort", m.reseed_port},
        {"type", m.initial ? "new" : "existing"},
        {"slaveID", m.agent_id},
        {"taskId", m.task_id},
        {"agentId", m.agent_id},
        {"taskState", mesos::TaskState_Name(m.task_state)},
        // In hex, as etcdctl member list and etcd's own log print it ("" until known).
        {"memberId", m.member_id == 0 ? "" : fmt::format("{:x}", m.member_id)},
        {"learner", m.learner},
        {"healthy", m.healthy},
        {"reachable", m.reachable},
        {"raftIndex", m.raft_index},
    });
  }
  return out.dump() + "\n";
}

namespace {
// Members whose task Mesos has no contact with now (they may come back).
uint64_t UnreachableServers(const SchedulerCore& core) {
  uint64_t n = 0;
  for (const auto& [name, m] : core.state().members) n += Uncertain(m.task_state) ? 1 : 0;
  return n;
}
}  // namespace

std::string RenderStats(const SchedulerCore& core, int64_t now_unix,
                        const std::optional<std::string>& standby_leader, bool holding,
                        const VerificationStatus* verification) {
  const Counters& c = core.state().counters;
  uint64_t running = 0;
  for (const auto& [name, m] : core.state().members) {
    running += m.task_state == mesos::TASK_RUNNING ? 1 : 0;
  }
  ordered_json out;
  out["running_servers"] = running;
  out["launched_servers"] = c.launched_servers;
  out["failed_servers"] = c.failed_servers;
  out["cluster_livelocks"] = c.cluster_livelocks;
  out["cluster_reseeds"] = c.cluster_reseeds;
  // A standby does not probe: it shows the leader's verdict as last stored.
  out["healthy"] = (standby_leader ? core.state().healthy : core.healthy()) ? 1 : 0;
  out["lost_servers"] = c.lost_servers;
  out["reseed_attempts"] = c.reseed_attempts;
  out["members_added"] = c.members_added;
  out["members_promoted"] = c.members_promoted;
  out["members_removed"] = c.members_removed;
  out["livelocked"] = core.livelocked() ? 1 : 0;
  out["total_loss"] = core.total_loss() ? 1 : 0;
  out["reseeding"] = core.reseeding() ? 1 : 0;
  out["connected"] = core.connected() ? 1 : 0;
  out["reconciling"] = core.reconciling() ? 1 : 0;
  out["unreachable_servers"] = UnreachableServers(core);
  // What the last reseed is known to have lost: revisions other members had applied past the
  // survivor's (0 and 0 when there was no reseed).
  const Revisions& r = core.state().revisions;
  out["highest_revision_seen"] = r.highest_seen;
  out["last_reseed_survivor_revision"] = r.last_reseed_survivor;
  out["last_reseed_highest_revision"] = r.last_reseed_highest;
  out["last_reseed_revisions_lost"] = RevisionsLostByReseed(r);
  const BackupStatus& b = core.backups();
  out["backups_enabled"] = core.config().backups ? 1 : 0;
  out["backups_taken"] = b.taken;
  out["backup_failures"] = b.failures;
  out["last_backup"] = b.last ? json(b.last->name) : json(nullptr);
  out["last_backup_time"] =
      b.last ? json(FormatWallTime(WallTime(std::chrono::seconds(b.last->unix_time))))
             : json(nullptr);
  out["last_backup_age_seconds"] = BackupAgeSeconds(core, now_unix);
  out["last_backup_size_bytes"] = b.last ? b.last->size : 0;
  out["last_backup_revision"] = b.last ? b.last->revision : 0;
  out["last_backup_error"] = b.last_error;
  out["backup_running"] = b.running ? json(*b.running) : json(nullptr);
  // The restore checks of backup_verifier.h (this instance's; a standby makes none).
  const VerificationStatus v = verification ? *verification : VerificationStatus{};
  out["backup_verification_enabled"] = v.enabled ? 1 : 0;
  out["backups_verified"] = v.restored;
  out["backup_verify_failures"] = v.failures;
  out["last_verified_backup"] = v.last_verified.empty() ? json(nullptr) : json(v.last_verified);
  out["last_verified_backup_time"] =
      v.last_verified.empty()
          ? json(nullptr)
          : json(FormatWallTime(WallTime(std::chrono::seconds(v.last_verified_unix_time))));
  out["last_verified_backup_checked_at"] =
      v.last_verified.empty()
          ? json(nullptr)
          : json(FormatWallTime(WallTime(std::chrono::seconds(v.last_verified_at_unix))));
  out["last_backup_verify_error"] = v.last_failure;
  out["backup_verifying"] = v.running.empty() ? json(nullptr) : json(v.running);
  out["standby"] = standby_leader ? 1 : 0;
  out["leader_url"] = standby_leader.value_or("");
  out["holding"] = holding ? 1 : 0;
  out["target_size"] = core.TargetSize();
  const MaintenanceStatus& mt = core.maintenance();
  out["nospace_alarm"] = mt.nospace ? 1 : 0;
  out["corrupt_alarm"] = mt.corrupt ? 1 : 0;
  out["maintenance_running"] = mt.running.empty() ? json(nullptr) : json(mt.running);
  out["maintenance_runs"] = mt.runs;
  out["members_defragmented"] = mt.members_defragmented;
  out["nospace_alarms"] = mt.nospace_alarms;
  out["nospace_cleared"] = mt.nospace_cleared;
  out["maintenance_failures"] = mt.failures;
  out["last_maintenance_error"] = mt.last_error;
  RolloutView rollout = core.rollout();
  out["rollout_state"] = rollout.state;
  out["rollout_members_pending"] = rollout.pending.size();
  out["rollout_stopped_reason"] = rollout.state == "stopped" ? rollout.reason : "";
  out["rollouts_done"] = c.rollouts_done;
  out["rollouts_stopped"] = c.rollouts_stopped;
  out["members_rolled"] = c.members_rolled;
  const HashCheckStatus& hc = core.hash_checks();
  out["hash_checks"] = hc.checks;
  out["hash_mismatches"] = hc.mismatches;
  out["members_corrupt"] = hc.members_corrupt;
  out["corrupt_members"] = core.corrupt_members();
  out["last_hash_check"] = hc.last_result.empty() ? json(nullptr) : json(hc.last_result);
  out["last_hash_check_revision"] = hc.last_revision;
  CertificateExpiry expiry = EarliestCertificateExpiry(core.state().members);
  out["tls"] = expiry.tls ? 1 : 0;
  out["cert_expiry_earliest"] = expiry.earliest;
  out["cert_expiry_member"] = expiry.member;
  out["ca_generation"] = core.state().ca.generation;
  out["ca_rotation"] = std::string(CaPhaseName(core.state().ca.phase));
  // A standby shows the leader's record: whether a teardown runs, not its progress.
  TeardownView teardown = core.teardown();
  out["tearing_down"] = teardown.active ? 1 : 0;
  out["teardown_tasks_left"] = teardown.tasks;
  out["teardown_volumes_left"] = teardown.volumes;
  out["teardown_volumes_released"] = teardown.released;
  out["teardown_releases_unconfirmed"] = teardown.confirming;
  return out.dump() + "\n";
}

std::string RenderMetrics(const SchedulerCore& core, int64_t now_unix, bool standby, bool holding,
                          const VerificationStatus* verification) {
  const Counters& c = core.state().counters;
  std::string out;
  auto metric = [&](std::string_view name, std::string_view type, std::string_view help,
                    uint64_t value) {
    out += fmt::format("# HELP etcd_mesos_{0} {1}\n# TYPE etcd_mesos_{0} {2}\netcd_mesos_{0} {3}\n",
                       name, help, type, value);
  };
  uint64_t running = 0, voters = 0, learners = 0, reachable = 0;
  for (const auto& [name, m] : core.state().members) {
    running += m.task_state == mesos::TASK_RUNNING;
    voters += MaybeVoter(m);
    learners += MaybeLearner(m);
    reachable += m.reachable;
  }
  metric("members", "gauge", "Members the scheduler knows of (any task state).",
         core.state().members.size());
  metric("running_servers", "gauge", "Members whose task is TASK_RUNNING.", running);
  metric("voters", "gauge", "Members that are (or are launched as) voters.", voters);
  metric("learners", "gauge", "Members that are learners.", learners);
  metric("reachable_members", "gauge", "Members that answered the latest probe.", reachable);
  metric("cluster_size", "gauge",
         "The cluster size kept: --cluster-size, or what POST /cluster-size asked since.",
         static_cast<uint64_t>(core.TargetSize()));
  metric("generation", "gauge", "The reseed generation (advanced by reseeds and fresh starts).",
         core.state().generation);
  metric("healthy", "gauge",
         "1 when a majority of voters agree on a leader and a linearizable "
         "read succeeds.",
         standby ? core.state().healthy : core.healthy());
  metric("livelocked", "gauge", "1 during a livelock episode.", core.livelocked());
  metric("total_loss", "gauge", "1 after total cluster loss, until the operator acts.",
         core.total_loss());
  metric("reseeding", "gauge", "1 while a reseed runs.", core.reseeding());
  metric("connected", "gauge", "1 while subscribed to the Mesos master.", core.connected());
  metric("standby", "gauge",
         "1 on a standby scheduler instance (it does not act; its views are the stored state).",
         standby);
  metric("holding", "gauge",
         "1 while this leader, cut off from ZooKeeper, holds every action until it hears it "
         "again.",
         holding);
  metric("reconciling", "gauge", "1 until reconciliation settles after a subscription.",
         core.reconciling());
  metric("launched_servers_total", "counter", "Member tasks launched.", c.launched_servers);
  metric("failed_servers_total", "counter", "Member tasks that ended in Mesos's sight.",
         c.failed_servers);
  metric("lost_servers_total", "counter",
         "Member tasks Mesos lost contact with that never came back (ended or removed).",
         c.lost_servers);
  metric("unreachable_servers", "gauge",
         "Member tasks Mesos has no contact with now (TASK_UNREACHABLE, TASK_UNKNOWN, TASK_LOST); "
         "they may come back.",
         UnreachableServers(core));
  metric("cluster_livelocks_total", "counter", "Livelock episodes.", c.cluster_livelocks);
  metric("cluster_reseeds_total", "counter", "Reseeds started.", c.cluster_reseeds);
  metric("reseed_attempts_total", "counter", "Reseeds attempted (started or not).",
         c.reseed_attempts);
  metric("last_reseed_revisions_lost", "gauge",
         "Revisions other members had applied past the last reseed's survivor (lost with it).",
         RevisionsLostByReseed(core.state().revisions));
  metric("members_added_total", "counter", "Learners added to etcd.", c.members_added);
  metric("members_promoted_total", "counter", "Learners promoted to voters.", c.members_promoted);
  metric("members_removed_total", "counter", "Members removed from etcd.", c.members_removed);
  const BackupStatus& b = core.backups();
  metric("backups_total", "counter", "Snapshots written since the scheduler started.", b.taken);
  metric("backup_failures_total", "counter", "Snapshots that failed or timed out.", b.failures);
  if (b.last) {
    metric("last_backup_timestamp_seconds", "gauge", "Unix time of the newest snapshot.",
           static_cast<uint64_t>(std::max<int64_t>(0, b.last->unix_time)));
    metric("last_backup_age_seconds", "gauge", "Age of the newest snapshot.",
           static_cast<uint64_t>(BackupAgeSeconds(core, now_unix)));
    metric("last_backup_size_bytes", "gauge", "Size of the newest snapshot.", b.last->size);
  }
  if (verification) {
    metric("backups_verified_total", "counter",
           "Snapshots restored into a scratch etcd whose data was served (and, when it could be "
           "compared, whose HashKV matched the live cluster's).",
           verification->restored);
    metric("backup_verify_failures_total", "counter",
           "Snapshots that failed verification (restore refused, not served, or a HashKV "
           "differing from the live cluster's).",
           verification->failures);
    if (!verification->last_verified.empty()) {
      metric("last_verified_backup_timestamp_seconds", "gauge",
             "Unix time of the newest snapshot that verified.",
             static_cast<uint64_t>(std::max<int64_t>(0, verification->last_verified_unix_time)));
    }
  }
  const MaintenanceStatus& mt = core.maintenance();
  metric("nospace_alarm", "gauge", "1 while a member reports etcd's NOSPACE alarm.",
         mt.nospace ? 1 : 0);
  metric("corrupt_alarm", "gauge", "1 while a member reports etcd's CORRUPT alarm.",
         mt.corrupt ? 1 : 0);
  metric("members_defragmented_total", "counter", "Defragmentations that succeeded.",
         mt.members_defragmented);
  metric("nospace_alarms_total", "counter", "NOSPACE alarm episodes seen.", mt.nospace_alarms);
  metric("nospace_cleared_total", "counter", "NOSPACE alarms disarmed by the scheduler.",
         mt.nospace_cleared);
  metric("maintenance_failures_total", "counter", "Maintenance runs stopped by a failure.",
         mt.failures);
  RolloutView rollout = core.rollout();
  metric("rollout_members_pending", "gauge",
         "Members launched with another configuration than the current one (a rollout replaces "
         "them).",
         rollout.pending.size());
  metric("rollout_stopped", "gauge", "1 while a rollout is stopped at a failure.",
         rollout.state == "stopped" ? 1 : 0);
  metric("rollouts_done_total", "counter", "Rollouts finished.", c.rollouts_done);
  metric("rollouts_stopped_total", "counter", "Rollouts stopped at a failure.", c.rollouts_stopped);
  metric("members_rolled_total", "counter", "Members replaced by rollouts.", c.members_rolled);
  const HashCheckStatus& hc = core.hash_checks();
  metric("hash_checks_total", "counter", "Comparisons of the voters' HashKV answered.", hc.checks);
  metric("hash_mismatches_total", "counter",
         "Hash checks in which a member disagreed with the others.", hc.mismatches);
  metric("members_corrupt_total", "counter",
         "Members a hash check found in the minority (marked corrupt and replaced).",
         hc.members_corrupt);
  metric("corrupt_members", "gauge", "Members marked corrupt and not yet removed.",
         static_cast<uint64_t>(core.corrupt_members().size()));
  CertificateExpiry expiry = EarliestCertificateExpiry(core.state().members);
  metric("cert_expiry_earliest_timestamp_seconds", "gauge",
         "When the first of the members' certificates expires, Unix seconds (0: TLS off or none "
         "issued); they are renewed --cert-renew-before that.",
         static_cast<uint64_t>(expiry.earliest));
  return out;
}

std::string RenderRollout(const SchedulerCore& core) {
  RolloutView v = core.rollout();
  json members = json::array();
  std::string target = core.EffectiveLaunch();
  for (const auto& [name, m] : core.state().members) {
    if (!MaybeAlive(m.task_state)) continue;
    members.push_back(json{{"name", name},
                           {"etcd_version", m.etcd_version},
                           {"launch_config", m.launch_config},
                           {"current", m.launch_config == target}});
  }
  json out = {{"state", v.state},
              {"target", v.target_summary},
              {"launch_config", target},
              {"etcd_version", core.config().etcd_version},
              {"total", v.total},
              {"pending", v.pending},
              {"step", v.step},
              {"reason", v.reason},
              {"members", members},
              {"rollouts_done", core.state().counters.rollouts_done},
              {"members_rolled", core.state().counters.members_rolled}};
  return out.dump() + "\n";
}

std::string RenderEndpoints(const SchedulerCore& core) {
  std::string out;
  for (const auto& [name, m] : core.state().members) {
    // A learner refuses a client's linearizable requests ("rpc not supported for learner").
    if (!MaybeVoter(m)) continue;
    if (!out.empty()) out += ',';
    out += m.ClientUrl();
  }
  return out + "\n";
}

std::optional<std::string> QueryValue(std::string_view query, std::string_view key) {
  size_t i = 0;
  while (i <= query.size()) {
    size_t end = query.find('&', i);
    if (end == std::string_view::npos) end = query.size();
    std::string_view pair = query.substr(i, end - i);
    size_t eq = pair.find('=');
    std::string name = PercentDecode(pair.substr(0, eq));
    if (name == key) {
      return eq == std::string_view::npos ? std::string() : PercentDecode(pair.substr(eq + 1));
    }
    i = end + 1;
  }
  return std::nullopt;
}

bool Authorized(const net::ServerRequest& request, const std::string& token) {
  if (token.empty()) return false;
  if (auto auth = request.Header("Authorization")) {
    constexpr std::string_view kBearer = "Bearer ";
    if (auth->size() > kBearer.size() && auth->compare(0, kBearer.size(), kBearer) == 0 &&
        SameSecret(std::string_view(*auth).substr(kBearer.size()), token)) {
      return true;
    }
  }
  auto q = QueryValue(request.query, "token");
  return q && SameSecret(*q, token);
}

AdminServer::AdminServer(boost::asio::io_context& io, Options options, const SchedulerCore& core,
                         const NoteLog& notes, Submit submit)
    : io_(io),
      options_(std::move(options)),
      core_(core),
      notes_(notes),
      submit_(std::move(submit)),
      server_(io,
              net::HttpServer::Options{.max_body_bytes = 64 << 10,
                                       .max_header_bytes = 16 << 10,
                                       .idle_timeout = std::chrono::seconds(30),
                                       .server_name = "etcd-mesos-scheduler",
                                       .tls = options_.https},
              [this](const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
                Handle(req, std::move(r));
              }) {}

AdminServer::~AdminServer() {
  Stop();
  *alive_ = false;
  disk_.join();
}

Result<HostPort> AdminServer::Start() {
  auto bound = server_.Listen(options_.listen);
  if (!bound.ok()) return bound.error().Context("admin server on " + options_.listen.ToString());
  return bound;
}

void AdminServer::Stop() {
  for (auto& [id, responder] : pending_) {
    responder->Respond(Text(503, "503 the scheduler is stopping\n"));
  }
  pending_.clear();
  server_.Stop();
}

HostPort AdminServer::address() const { return server_.address(); }

void AdminServer::Answer(const AnswerAdmin& answer) {
  auto it = pending_.find(answer.request);
  if (it == pending_.end()) return;
  auto responder = std::move(it->second);
  pending_.erase(it);
  responder->Respond(Text(answer.http_status, answer.message + "\n"));
}

void AdminServer::Handle(const net::ServerRequest& req, std::shared_ptr<net::Responder> responder) {
  const std::string& path = req.path;
  bool get = req.method == net::Verb::get;
  auto reply = [&](net::HttpResponse r) { responder->Respond(std::move(r)); };

  if (path == "/reseed" || path == "/start-fresh" || path == "/backup" || path == "/restore" ||
      path == "/cluster-size" || path == "/defrag" || path == "/rollout/restart" ||
      path == "/rollout/resume" || path == "/rotate-ca" || path == "/rotate-ca/next" ||
      path == "/teardown") {
    if (standby_) return reply(ToLeader(req, *standby_));
    return Command(req, std::move(responder));
  }
  if (path.starts_with("/backups/") && path.ends_with("/verify")) {
    if (standby_) return reply(ToLeader(req, *standby_));
    return reply(VerifyCommand(req));
  }
  if (path == "/certificates" && options_.issue_certificates) {
    // Answered by any instance that leads; a standby sends the executor to the leader.
    if (standby_) return reply(ToLeader(req, *standby_));
    if (req.method != net::Verb::post) return reply(MethodNotAllowed(req, "POST"));
    CertificateAnswer answer =
        options_.issue_certificates(req.body, req.Header("Authorization").value_or(""));
    return reply(answer.status == 200 ? net::JsonResponse(200, std::move(answer.body))
                                      : Text(answer.status, std::move(answer.body)));
  }
  if ((path == "/ca.crt" || path == "/client-cert") && options_.trust_bundle) {
    if (!get) return reply(MethodNotAllowed(req, "GET"));
    std::string bundle = options_.trust_bundle();
    if (bundle.empty()) {
      // Not a 200 with nothing: a script that saves it would hand etcdctl an empty CA file.
      return reply(Text(503,
                        "503 service unavailable: the cluster's CA is not loaded yet (the "
                        "scheduler is starting); try again shortly\n"));
    }
    if (path == "/ca.crt") {
      auto r = Text(200, std::move(bundle));
      r.headers = {{"Content-Type", "application/x-pem-file"}};
      return reply(std::move(r));
    }
    if (auto refused = Refused(req)) return reply(std::move(*refused));
    std::string name = QueryValue(req.query, "name").value_or("operator");
    // etcd's grpc-proxy (etcd-mesos-proxy) refuses a client certificate with a common name.
    if (QueryValue(req.query, "for") == "proxy") name.clear();
    auto pem = options_.client_certificate(name);
    if (!pem.ok()) {
      return reply(Text(400, fmt::format("400 bad request: {}\n", pem.error().message)));
    }
    spdlog::info("admin: issued a client certificate '{}' to {}",
                 name.empty() ? "(for a proxy)" : name.substr(0, 64), req.remote);
    auto r = Text(200, std::move(*pem));
    r.headers = {{"Content-Type", "application/x-pem-file"}, {"Cache-Control", "no-store"}};
    return reply(std::move(r));
  }
  if (path.starts_with("/artifacts/")) {
    if (!get) return reply(MethodNotAllowed(req, "GET"));
    return ServeArtifact(path.substr(std::string_view("/artifacts/").size()), responder);
  }
  static const char* kReadOnly[] = {"/",        "/members",      "/stats",
                                    "/healthz", "/metrics",      "/endpoints",
                                    "/backups", "/console.json", "/rollout"};
  if (std::none_of(std::begin(kReadOnly), std::end(kReadOnly),
                   [&](const char* p) { return path == p; })) {
    return reply(Text(404, fmt::format("404 not found: {} (try /, /members, /stats, /healthz, "
                                       "/metrics, /endpoints, /backups, /console.json, /rollout, "
                                       "/reseed)\n",
                                       path.substr(0, 200))));
  }
  if (!get) return reply(MethodNotAllowed(req, "GET"));
  if (path == "/console.json") return reply(ServeConsole(req));
  if (path == "/members") return reply(net::JsonResponse(200, RenderMembers(core_)));
  if (path == "/rollout") return reply(net::JsonResponse(200, RenderRollout(core_)));
  if (path == "/stats") {
    return reply(
        net::JsonResponse(200, RenderStats(core_, NowUnix(), standby_, holding_, verification_)));
  }
  if (path == "/backups") return ServeBackups(std::move(responder));
  if (path == "/healthz") {
    // A standby is well if it stands by: its health is not the cluster's (Marathon must not
    // restart it for the cluster's sake).
    if (standby_) {
      return reply(Text(
          200, fmt::format("standby: {}\n", standby_->empty() ? std::string("no leader yet")
                                                              : "the leader is " + *standby_)));
    }
    if (!core_.healthy()) {
      return reply(Text(500, "500 internal server error: cluster not healthy.\n"));
    }
    auto max_age =
        std::chrono::duration_cast<std::chrono::seconds>(options_.healthz_max_backup_age);
    if (max_age.count() > 0) {
      int64_t age = BackupAgeSeconds(core_, NowUnix());
      if (age < 0 || age > max_age.count()) {
        return reply(
            Text(500, fmt::format("500 internal server error: {} (--healthz-max-backup-age "
                                  "{} s).\n",
                                  age < 0 ? std::string("no backup yet")
                                          : fmt::format("the newest backup is {} s old", age),
                                  max_age.count())));
      }
    }
    return reply(Text(200, "cluster is healthy\n"));
  }
  if (path == "/metrics") {
    auto r =
        Text(200, RenderMetrics(core_, NowUnix(), standby_.has_value(), holding_, verification_));
    for (auto& [k, v] : r.headers) {
      if (k == "Content-Type") v = "text/plain; version=0.0.4; charset=utf-8";
    }
    return reply(std::move(r));
  }
  if (path == "/endpoints") return reply(Text(200, RenderEndpoints(core_)));
  net::HttpResponse page{200,
                         {{"Content-Type", "text/html; charset=utf-8"}},
                         RenderStatusPage(core_, notes_, NowUnix(), standby_)};
  reply(std::move(page));
}

void AdminServer::SetStandby(std::optional<std::string> leader) { standby_ = std::move(leader); }

net::HttpResponse AdminServer::ServeConsole(const net::ServerRequest& req) const {
  ConsoleContext context;
  context.now_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  context.standby_leader = standby_;
  context.holding = holding_;
  context.master_url = master_url_;
  context.tls_mode = options_.tls_mode;
  // The page asks only for what it has not seen yet.
  for (auto [key, into] : {std::pair{"notes_after", &context.notes_after}}) {
    auto value = QueryValue(req.query, key);
    if (!value) continue;
    auto parsed = ParseCount(*value);
    if (!parsed)
      return Text(400, fmt::format("400 bad request: {} must be a count, not '{}'\n", key,
                                   value->substr(0, 40)));
    *into = *parsed;
  }
  if (auto value = QueryValue(req.query, "samples_after")) {
    auto parsed = ParseCount(*value);
    if (!parsed || *parsed > static_cast<uint64_t>(INT64_MAX)) {
      return Text(400,
                  fmt::format("400 bad request: samples_after must be a time in ms, not '{}'\n",
                              value->substr(0, 40)));
    }
    context.samples_after_ms = static_cast<int64_t>(*parsed);
  }
  static const ClusterHistory kNoHistory;
  auto r = net::JsonResponse(
      200, RenderConsoleJson(core_, notes_, history_ ? *history_ : kNoHistory, context));
  r.headers.push_back({"Cache-Control", "no-store"});
  return r;
}

namespace {

// A command without the right token: 401 with the challenge, and a log line (never the token).
net::HttpResponse Unauthorized(const net::ServerRequest& req, std::string_view hint) {
  spdlog::warn("admin: refused {} {} from {}: missing or wrong token", req.method_string, req.path,
               req.remote);
  auto r = Text(401, fmt::format("401 unauthorized: send 'Authorization: Bearer <token>' or "
                                 "?token=<token>; the token is in {}\n",
                                 hint));
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"etcd-mesos\"");
  return r;
}

}  // namespace

std::optional<net::HttpResponse> AdminServer::Refused(const net::ServerRequest& req) const {
  if (options_.insecure) return std::nullopt;
  if (options_.token.empty()) {
    return Text(503,
                "503 the admin token is not loaded yet (the state store has not answered); try "
                "again\n");
  }
  if (!Authorized(req, options_.token)) return Unauthorized(req, options_.token_hint);
  return std::nullopt;
}

void AdminServer::Command(const net::ServerRequest& req,
                          std::shared_ptr<net::Responder> responder) {
  bool reseed = req.path == "/reseed";
  // GET /reseed stays because the on-call guide tells people to GET it.
  bool method_ok = req.method == net::Verb::post || (reseed && req.method == net::Verb::get);
  if (!method_ok) return responder->Respond(MethodNotAllowed(req, reseed ? "GET, POST" : "POST"));
  if (auto refused = Refused(req)) return responder->Respond(std::move(*refused));
  if (pending_.size() >= options_.max_pending) {
    return responder->Respond(Text(503, "503 too many admin commands in flight; try again\n"));
  }
  bool force = false;
  if (auto f = QueryValue(req.query, "force")) {
    if (*f == "1" || *f == "true" || f->empty()) {
      force = true;
    } else if (*f != "0" && *f != "false") {
      return responder->Respond(Text(400, "400 bad request: force must be 1 or 0\n"));
    }
  }
  int size = 0;
  if (req.path == "/cluster-size") {
    auto n = QueryValue(req.query, "n");
    char* end = nullptr;
    long parsed = n && !n->empty() ? std::strtol(n->c_str(), &end, 10) : -1;
    if (!n || n->empty() || *end != '\0' || parsed < 1 || parsed > 99) {
      return responder->Respond(
          Text(400, "400 bad request: n=<members> is required, a number in 1..99\n"));
    }
    size = static_cast<int>(parsed);
  }
  if (req.path == "/teardown" && QueryValue(req.query, "confirm") != options_.cluster_name) {
    // Not on a token alone: a command pasted against the wrong scheduler must not destroy it.
    return responder->Respond(
        Text(400, fmt::format("400 bad request: a teardown kills every member of the cluster and "
                              "destroys its data and volumes; confirm it with "
                              "?confirm=<cluster name> (this scheduler runs cluster {})\n",
                              options_.cluster_name)));
  }
  std::string restore_name;
  if (req.path == "/restore") {
    auto name = QueryValue(req.query, "name");
    if (!name || name->empty()) {
      return responder->Respond(
          Text(400, "400 bad request: name=<backup> is required (GET /backups lists them)\n"));
    }
    if (options_.backup_dir.empty()) {
      return responder->Respond(
          Text(409, "409 backups are off: start the scheduler with --backup-dir\n"));
    }
    // Verified before the core hears of it: a corrupt or truncated file launches nothing.
    auto verified = VerifyBackup(options_.backup_dir, *name);
    if (!verified.ok()) {
      spdlog::error("admin: refused POST /restore?name={}: {}", *name, verified.error().ToString());
      unsigned code = verified.error().code == ErrorCode::kNotFound          ? 404
                      : verified.error().code == ErrorCode::kInvalidArgument ? 400
                                                                             : 422;
      return responder->Respond(Text(code, fmt::format("{} refused: {}; nothing was launched\n",
                                                       code, verified.error().message)));
    }
    // Its checksums hold, but a restore of it was tried and failed: only when the operator
    // insists (the only copy left, say).
    const auto& check = verified->restore_check;
    if (check && !check->restored && !force) {
      spdlog::error("admin: refused POST /restore?name={}: it failed verification: {}", *name,
                    check->error);
      return responder->Respond(
          Text(422, fmt::format("422 refused: backup {} failed verification on {}: {}; restore "
                                "another one (GET /backups), or add &force=1 to restore it "
                                "anyway; nothing was launched\n",
                                *name, FormatWallTime(check->at), check->error)));
    }
    restore_name = *name;
  }
  uint64_t id = next_request_++;
  pending_[id] = std::move(responder);
  spdlog::info("admin: {} {}{} from {}", req.method_string, req.path, force ? " (forced)" : "",
               req.remote);
  if (reseed) {
    submit_(AdminReseed{id, force, Clock::now()});
  } else if (req.path == "/backup") {
    submit_(AdminBackup{id, Clock::now()});
  } else if (req.path == "/defrag") {
    submit_(AdminDefrag{id, Clock::now()});
  } else if (req.path == "/rollout/restart") {
    submit_(AdminRollout{id, RolloutCommand::kRestart, Clock::now()});
  } else if (req.path == "/rollout/resume") {
    submit_(AdminRollout{id, RolloutCommand::kResume, Clock::now()});
  } else if (req.path == "/rotate-ca") {
    submit_(AdminRollout{id, RolloutCommand::kRotateCa, Clock::now()});
  } else if (req.path == "/rotate-ca/next") {
    submit_(AdminRollout{id, RolloutCommand::kNextCaPhase, Clock::now()});
  } else if (req.path == "/restore") {
    submit_(AdminRestore{id, restore_name, Clock::now()});
  } else if (req.path == "/cluster-size") {
    submit_(AdminResize{id, size, force, Clock::now()});
  } else if (req.path == "/teardown") {
    submit_(AdminTeardown{id, Clock::now()});
  } else {
    submit_(AdminStartFresh{id, Clock::now()});
  }
}

net::HttpResponse AdminServer::VerifyCommand(const net::ServerRequest& req) {
  if (req.method != net::Verb::post) return MethodNotAllowed(req, "POST");
  if (auto refused = Refused(req)) return std::move(*refused);
  if (!options_.verify_backup) {
    return Text(409,
                "409 backup verification is off: start the scheduler with --backup-dir (and "
                "without --backup-verify=false)\n");
  }
  constexpr std::string_view kPrefix = "/backups/", kSuffix = "/verify";
  std::string name =
      req.path.substr(kPrefix.size(), req.path.size() - kPrefix.size() - kSuffix.size());
  Status queued = options_.verify_backup(name);
  if (!queued.ok()) {
    unsigned code = 500;
    switch (queued.error().code) {
      case ErrorCode::kInvalidArgument:
        code = 400;
        break;
      case ErrorCode::kNotFound:
        code = 404;
        break;
      case ErrorCode::kAlreadyExists:
      case ErrorCode::kRefused:
        code = 409;
        break;
      case ErrorCode::kUnavailable:
        code = 503;
        break;
      default:
        break;
    }
    return Text(code, fmt::format("{} {}\n", code, queued.error().message));
  }
  spdlog::info("admin: verifying backup {} for {}", name, req.remote);
  return Text(202, fmt::format("202 verifying {}: restoring it into a scratch etcd; the verdict "
                               "goes into its sidecar and GET /backups (restore_check)\n",
                               name));
}

void AdminServer::ServeArtifact(const std::string& name,
                                std::shared_ptr<net::Responder> responder) {
  std::string path;
  std::string served = name;
  auto slash = name.find('/');
  auto it = options_.artifacts.find(name);
  if (it != options_.artifacts.end()) {
    path = it->second;
  } else if (name.starts_with("backups/") && !options_.backup_dir.empty() &&
             ParseBackupName(name.substr(8)).ok()) {
    // Only names that parse as backups: no path can reach outside the backup directory.
    path = (std::filesystem::path(options_.backup_dir) / name.substr(8)).string();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      return responder->Respond(Text(404, "404 not found: no backup " + name.substr(8) + "\n"));
    }
    spdlog::info("admin: serving backup {} to an agent", name.substr(8));
  } else if (slash != std::string::npos &&
             options_.artifacts.count(served = name.substr(slash + 1)) > 0) {
    path = options_.artifacts.at(served);
    std::string wanted = name.substr(0, slash);
    auto current = ArtifactVersion(path);
    if (current.ok() && *current != wanted) {
      return responder->Respond(Text(
          404, fmt::format("404 not found: {} version {} is gone: the file {} has changed since "
                           "(now version {})\n",
                           served, wanted, path, *current)));
    }
  } else {
    return responder->Respond(
        Text(404, "404 not found: the artifacts are etcd-mesos-executor, etcd and etcdctl\n"));
  }
  // Read whole, on the disk thread: these are tens of MB (fetched once per agent and version
  // when the agent caches them) and must not hold up the API.
  boost::asio::post(disk_, [path, served, responder, &io = io_, alive = alive_] {
    net::HttpResponse response = ReadArtifact(path, served);
    boost::asio::post(io, [responder, response = std::move(response), alive]() mutable {
      if (*alive) responder->Respond(std::move(response));
    });
  });
}

void AdminServer::ServeBackups(std::shared_ptr<net::Responder> responder) {
  if (options_.backup_dir.empty()) return responder->Respond(net::JsonResponse(200, "[]\n"));
  boost::asio::post(disk_, [dir = options_.backup_dir, responder, &io = io_, alive = alive_] {
    std::string body = RenderBackupList(dir);
    boost::asio::post(io, [responder, body = std::move(body), alive] {
      if (*alive) responder->Respond(net::JsonResponse(200, body));
    });
  });
}

}  // namespace etcd_mesos::scheduler::shell
