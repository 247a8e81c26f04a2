// The scheduler's admin HTTP surface, and the scheduler end to end.
//
// AdminApi: the admin server over real HTTP on loopback, answering from a real SchedulerCore fed
// synthetic events (no master): the original's JSON shapes and /healthz texts, the token guard
// on /reseed and /start-fresh, 404/405/400 with messages, hostile bytes, and the artifacts.
//
// SchedulerEndToEnd: SchedulerShell against etcd-mesos-local (in process) with the real executor
// and real etcd 3.4: bootstrap of three members to three healthy voters, checked through the
// admin API and with etcdctl; a manual reseed of a healthy cluster is refused with the reason.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "local/cluster.h"
#include "local/resources.h"
#include "mesos/scheduler_client.h"
#include "net/http.h"
#include "scheduler/core/scheduler_core.h"
#include "scheduler/shell/admin.h"
#include "scheduler/shell/shell.h"
#include "testing/ports.h"
#include "testing/process.h"
#include "testing/tempdir.h"

namespace etcd_mesos::scheduler::shell {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---- Admin API over a core fed synthetic events ---------------------------------------------

Member M(std::string name, uint16_t base, mesos::TaskState state) {
  Member m;
  m.name = std::move(name);
  m.host = "127.0.0.9";
  m.peer_port = base;
  m.client_port = base + 1;
  m.reseed_port = base + 2;
  m.task_id = FormatTaskId(m);
  m.agent_id = "agent-" + m.name;
  m.member_id = 12345678901234567890ull;
  m.initial = true;
  m.task_state = state;
  return m;
}

class AdminApi : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_.path() / "etcd-mesos-executor") << "#!/bin/sh\necho executor\n";
    PersistentState state;
    state.framework_id = "fw-1";
    state.bootstrapped = true;
    state.members["etcd-1"] = M("etcd-1", 31000, mesos::TASK_RUNNING);
    state.members["etcd-2"] = M("etcd-2", 31100, mesos::TASK_STAGING);
    state.counters.launched_servers = 2;
    state.counters.failed_servers = 1;
    state.counters.cluster_livelocks = 3;
    state.counters.cluster_reseeds = 4;
    state.counters.lost_servers = 5;
    state.healthy = true;  // the leader's last verdict, which only a standby shows
    state.health_reason = "2 of 2 voters agree on a leader";
    for (const auto& a : core_.Handle(Started{state, Clock::now()})) Record(a);
    Start("", /*insecure=*/true);
  }
  // An empty token without `insecure`: the token is not loaded yet.
  void Start(std::string token, bool insecure = false) {
    if (server_) server_->Stop();
    AdminServer::Options options;
    options.listen = HostPort{"127.0.0.1", 0};
    options.token = std::move(token);
    options.insecure = insecure;
    options.tls_mode = tls_mode_;
    options.cluster_name = "prod";
    options.token_hint = "/var/lib/etcd-mesos/admin-token";
    options.trust_bundle = trust_bundle_;
    options.client_certificate = [](const std::string& name) -> Result<std::string> {
      return "certificate for '" + name + "'\n";
    };
    options.artifacts = {{"etcd-mesos-executor", (dir_.path() / "etcd-mesos-executor").string()},
                         {"etcd", "/usr/bin/etcd"},
                         {"etcdctl", (dir_.path() / "missing").string()}};
    server_ = std::make_unique<AdminServer>(io_, options, core_, notes_, [this](Event e) {
      submitted_++;
      for (const auto& a : core_.Handle(e)) Record(a);
    });
    auto bound = server_->Start();
    ASSERT_TRUE(bound.ok()) << bound.error();
    address_ = *bound;
  }
  void Record(const Action& a) {
    if (auto* answer = std::get_if<AnswerAdmin>(&a)) server_->Answer(*answer);
    if (auto* note = std::get_if<Note>(&a)) notes_.Add(*note);
  }
  net::HttpResponse Call(net::Verb verb, std::string target, net::Headers headers = {}) {
    net::HttpRequest req;
    req.method = verb;
    req.endpoint = address_;
    req.target = std::move(target);
    req.headers = std::move(headers);
    req.max_body_bytes = 64ull << 20;
    std::optional<Result<net::HttpResponse>> out;
    net::HttpFetch(io_, req, [&](Result<net::HttpResponse> r) { out.emplace(std::move(r)); });
    io_.restart();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!out && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(out.has_value()) << "no answer to " << req.target;
    if (!out) return {};
    EXPECT_TRUE(out->ok()) << out->error();
    return out->ok() ? std::move(**out) : net::HttpResponse{};
  }
  net::HttpResponse Get(std::string target) { return Call(net::Verb::get, std::move(target)); }

  test::TempDir dir_;
  boost::asio::io_context io_;
  SchedulerCore core_{CoreConfig{}};
  NoteLog notes_;
  std::unique_ptr<AdminServer> server_;
  HostPort address_;
  int submitted_ = 0;
  std::function<std::string()> trust_bundle_;  // set: the scheduler runs TLS
  std::string tls_mode_ = "off";               // --tls, for the console
};

TEST_F(AdminApi, MembersHaveTheOriginalsKeysAndOurs) {
  auto r = Get("/members");
  ASSERT_EQ(r.status, 200u);
  json j = json::parse(r.body);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  const json& m = j[0];
  EXPECT_EQ(m["name"], "etcd-1");
  EXPECT_EQ(m["host"], "127.0.0.9");
  EXPECT_EQ(m["rpcPort"], 31000);
  EXPECT_EQ(m["clientPort"], 31001);
  EXPECT_EQ(m["clientUrl"], "http://127.0.0.9:31001");
  EXPECT_EQ(m["httpPort"], 31002);
  EXPECT_EQ(m["type"], "new");
  EXPECT_EQ(m["slaveID"], "agent-etcd-1");
  EXPECT_EQ(m["agentId"], "agent-etcd-1");
  EXPECT_EQ(m["taskId"], "etcd-1 127.0.0.9 31000 31001 31002");
  EXPECT_EQ(m["taskState"], "TASK_RUNNING");
  EXPECT_EQ(m["memberId"], "ab54a98ceb1f0ad2") << "hex, as etcdctl prints 12345678901234567890";
  EXPECT_EQ(m["learner"], false);
  EXPECT_EQ(m["healthy"], false);
  EXPECT_EQ(m["raftIndex"], 0);
  EXPECT_EQ(j[1]["taskState"], "TASK_STAGING");
}

TEST_F(AdminApi, StatsKeepTheOriginalsKeysInOrder) {
  auto r = Get("/stats");
  ASSERT_EQ(r.status, 200u);
  std::vector<std::string> keys;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key) keys.push_back(parsed);
    return true;
  };
  json j = json::parse(r.body, cb);
  std::vector<std::string> expected = {
      "running_servers", "launched_servers", "failed_servers", "cluster_livelocks",
      "cluster_reseeds", "healthy", "lost_servers", "reseed_attempts", "members_added",
      "members_promoted", "members_removed", "livelocked", "total_loss", "reseeding", "connected",
      "reconciling",
      // Ours after the original's: tasks out of contact now, what the last reseed lost, backups.
      "unreachable_servers", "highest_revision_seen", "last_reseed_survivor_revision",
      "last_reseed_highest_revision", "last_reseed_revisions_lost", "backups_enabled",
      "backups_taken", "backup_failures", "last_backup", "last_backup_time",
      "last_backup_age_seconds", "last_backup_size_bytes", "last_backup_revision",
      "last_backup_error", "backup_running",
      // Backup verification (this instance's restore checks).
      "backup_verification_enabled", "backups_verified", "backup_verify_failures",
      "last_verified_backup", "last_verified_backup_time", "last_verified_backup_checked_at",
      "last_backup_verify_error", "backup_verifying",
      // Which instance answers (scheduler high availability).
      "standby", "leader_url", "holding", "target_size",
      // Maintenance: the alarms, the run in flight, what was done.
      "nospace_alarm", "corrupt_alarm", "maintenance_running", "maintenance_runs",
      "members_defragmented", "nospace_alarms", "nospace_cleared", "maintenance_failures",
      "last_maintenance_error",
      // Rollouts.
      "rollout_state", "rollout_members_pending", "rollout_stopped_reason", "rollouts_done",
      "rollouts_stopped", "members_rolled",
      // Corruption checks: the voters' hashes compared, members found corrupt.
      "hash_checks", "hash_mismatches", "members_corrupt", "corrupt_members", "last_hash_check",
      "last_hash_check_revision",
      // TLS: whether the members serve it, and the first of their certificates to expire; the
      // CA rotations finished and the phase of one under way.
      "tls", "cert_expiry_earliest", "cert_expiry_member", "ca_generation", "ca_rotation",
      // A teardown under way, and what it still waits for.
      "tearing_down", "teardown_tasks_left", "teardown_volumes_left", "teardown_volumes_released",
      "teardown_releases_unconfirmed"};
  EXPECT_EQ(keys, expected);
  EXPECT_EQ(j["ca_generation"], 0);
  EXPECT_EQ(j["ca_rotation"], "none");
  EXPECT_EQ(j["tls"], 0);
  EXPECT_EQ(j["cert_expiry_earliest"], 0);
  EXPECT_EQ(j["backups_enabled"], 0);
  EXPECT_EQ(j["last_reseed_revisions_lost"], 0) << "no reseed: nothing lost";
  EXPECT_EQ(j["last_backup_age_seconds"], -1) << "no backup: -1";
  EXPECT_EQ(j["backup_verification_enabled"], 0);
  EXPECT_TRUE(j["last_verified_backup"].is_null()) << "none verified";
  EXPECT_EQ(j["running_servers"], 1);
  EXPECT_EQ(j["launched_servers"], 2);
  EXPECT_EQ(j["failed_servers"], 1);
  EXPECT_EQ(j["cluster_livelocks"], 3);
  EXPECT_EQ(j["cluster_reseeds"], 4);
  EXPECT_EQ(j["healthy"], 0);
  EXPECT_EQ(j["lost_servers"], 5);
  EXPECT_EQ(j["connected"], 0);
}

TEST_F(AdminApi, HealthzAnswersLikeTheOriginal) {
  auto r = Get("/healthz");
  EXPECT_EQ(r.status, 500u);
  EXPECT_EQ(r.body, "500 internal server error: cluster not healthy.\n");
}

TEST_F(AdminApi, MetricsArePrometheusText) {
  auto r = Get("/metrics");
  ASSERT_EQ(r.status, 200u);
  EXPECT_NE(r.Header("Content-Type").value_or("").find("text/plain"), std::string::npos);
  EXPECT_NE(r.body.find("# TYPE etcd_mesos_healthy gauge\netcd_mesos_healthy 0\n"),
            std::string::npos);
  EXPECT_NE(r.body.find("# TYPE etcd_mesos_cluster_reseeds_total counter\n"
                        "etcd_mesos_cluster_reseeds_total 4\n"),
            std::string::npos);
  EXPECT_NE(r.body.find("# HELP etcd_mesos_running_servers "), std::string::npos);
  EXPECT_NE(r.body.find("etcd_mesos_running_servers 1\n"), std::string::npos);
}

TEST_F(AdminApi, BackupVerificationIsInStatsAndMetricsOnceOn) {
  EXPECT_EQ(Get("/metrics").body.find("verif"), std::string::npos) << "off: not a word of it";
  VerificationStatus v;
  v.enabled = true;
  v.restored = 3;
  v.failures = 1;
  v.last_verified = "etcd-x-20261124T100000Z-rev9-0000000000000abc.db";
  v.last_verified_unix_time = 1'795'514'400;
  v.last_verified_at_unix = 1'795'514'402;
  v.last_failure = "etcd-x-...: the restored data's HashKV differs";
  v.running = "etcd-x-20261124T110000Z-rev9-0000000000000abc.db";
  std::string metrics = RenderMetrics(core_, 1'795'514'500, false, false, &v);
  for (const char* want :
       {"# HELP etcd_mesos_last_verified_backup_timestamp_seconds Unix time of the newest snapshot "
        "that verified.\n# TYPE etcd_mesos_last_verified_backup_timestamp_seconds gauge\n"
        "etcd_mesos_last_verified_backup_timestamp_seconds 1795514400\n",
        "# TYPE etcd_mesos_backups_verified_total counter\netcd_mesos_backups_verified_total 3\n",
        "# TYPE etcd_mesos_backup_verify_failures_total counter\n"
        "etcd_mesos_backup_verify_failures_total 1\n"}) {
    EXPECT_NE(metrics.find(want), std::string::npos) << want << "\nin:\n" << metrics;
  }
  json stats = json::parse(RenderStats(core_, 1'795'514'500, std::nullopt, false, &v));
  EXPECT_EQ(stats["backup_verification_enabled"], 1);
  EXPECT_EQ(stats["backups_verified"], 3);
  EXPECT_EQ(stats["backup_verify_failures"], 1);
  EXPECT_EQ(stats["last_verified_backup"], v.last_verified);
  EXPECT_EQ(stats["last_verified_backup_time"], "2026-11-24T10:00:00Z");
  EXPECT_EQ(stats["last_verified_backup_checked_at"], "2026-11-24T10:00:02Z");
  EXPECT_EQ(stats["last_backup_verify_error"], v.last_failure);
  EXPECT_EQ(stats["backup_verifying"], v.running);
  // Without a verifier (no --backup-dir, or --backup-verify=false) a request says so.
  auto off =
      Call(net::Verb::post, "/backups/etcd-x-20261124T100000Z-rev9-0000000000000abc.db/verify");
  EXPECT_EQ(off.status, 409u) << off.body;
  EXPECT_NE(off.body.find("--backup-verify"), std::string::npos) << off.body;
  // Nothing verified yet: no timestamp to alert on a wrong value of.
  v.last_verified.clear();
  EXPECT_EQ(RenderMetrics(core_, 0, false, false, &v).find("last_verified_backup_timestamp"),
            std::string::npos);
}

TEST_F(AdminApi, StatusPageAndEndpoints) {
  auto page = Get("/");
  ASSERT_EQ(page.status, 200u);
  EXPECT_NE(page.Header("Content-Type").value_or("").find("text/html"), std::string::npos);
  EXPECT_NE(page.body.find("etcd-1"), std::string::npos);
  // The console refreshes in place from /console.json; only a client without scripts reloads.
  EXPECT_NE(page.body.find("<noscript><meta http-equiv=\"refresh\""), std::string::npos);
  EXPECT_EQ(page.body.find("http-equiv=\"refresh\""),
            page.body.find("<noscript><meta http-equiv=\"refresh\"") + 16);
  EXPECT_NE(page.body.find("fetch('/console.json"), std::string::npos);
  EXPECT_NE(page.body.find("loaded state"), std::string::npos);  // the core's note
  // Self-contained: nothing is loaded from elsewhere (it must work on an isolated network).
  EXPECT_EQ(page.body.find("src=\"http"), std::string::npos);
  EXPECT_EQ(page.body.find("href=\"http"), std::string::npos);
  auto endpoints = Get("/endpoints");
  EXPECT_EQ(endpoints.body, "http://127.0.0.9:31001,http://127.0.0.9:31101\n");
}

// The console's data: members with their role, lag and database, the notes with their kind and
// member, the history's samples, each poll asking only for what is new; bad cursors are refused.
TEST_F(AdminApi, ConsoleJsonGivesMembersNotesAndHistoryIncrementally) {
  ClusterHistory history;
  server_->SetHistory(&history);
  server_->SetMasterUrl("http://127.0.0.1:5050");
  Member& one = const_cast<Member&>(core_.state().members.at("etcd-1"));
  one.member_id = 0x11;  // distinct ids: the probes vote for etcd-1 as leader
  auto now = Clock::now();
  for (const auto& a : core_.Handle(ProbeResult{
           "etcd-1", MemberProbe{0x11, 0x11, 500, 2, false, true, 40, 1000000, 250000}, now})) {
    Record(a);
  }
  history.Sample(core_, false, 1000, 1.5);
  history.Sample(core_, false, 11000, std::nullopt);
  notes_.Add(Note{"warn", "removing member etcd-2 (x): lost", "heal", "etcd-2"});

  json d = json::parse(Get("/console.json").body);
  EXPECT_EQ(d["framework"], "etcd-default");
  EXPECT_EQ(d["leader"], "etcd-1");
  ASSERT_EQ(d["members"].size(), 2u);
  const json& leader = d["members"][0];
  EXPECT_EQ(leader["name"], "etcd-1");
  EXPECT_EQ(leader["role"], "leader");
  EXPECT_EQ(leader["lag"], 0);
  EXPECT_EQ(leader["db_size"], 1000000);
  EXPECT_DOUBLE_EQ(leader["fragmented"].get<double>(), 0.75);
  EXPECT_EQ(leader["sandbox_url"],
            "http://127.0.0.1:5050/#/agents/agent-etcd-1/frameworks/fw-1/executors/etcd-1.0/"
            "browse");
  EXPECT_EQ(d["members"][1]["role"], "voter") << "a bootstrap member, staging";
  EXPECT_TRUE(d["members"][1]["lag"].is_null()) << "not answering: no lag to tell";
  const json& items = d["notes"]["items"];
  ASSERT_GE(items.size(), 2u);
  EXPECT_EQ(items.back()["kind"], "heal");
  EXPECT_EQ(items.back()["member"], "etcd-2");
  EXPECT_EQ(items.front()["kind"], "session");  // "loaded state: ..."
  ASSERT_EQ(d["history"]["samples"].size(), 2u);
  EXPECT_EQ(d["history"]["samples"][0], json::parse("[1000, 1, 3, 0, 1000000, 1.5]"));
  EXPECT_TRUE(d["history"]["samples"][1][5].is_null()) << "no latency read: no value, not 0";

  // The next poll asks for what is new only.
  uint64_t last = d["notes"]["last"];
  json next =
      json::parse(Get(fmt::format("/console.json?notes_after={}&samples_after=1000", last)).body);
  EXPECT_TRUE(next["notes"]["items"].empty());
  EXPECT_EQ(next["notes"]["last"], last);
  ASSERT_EQ(next["history"]["samples"].size(), 1u);
  EXPECT_EQ(next["history"]["samples"][0][0], 11000);

  for (const char* bad : {"/console.json?notes_after=abc", "/console.json?samples_after=-1",
                          "/console.json?notes_after=99999999999999999999999"}) {
    auto r = Get(bad);
    EXPECT_EQ(r.status, 400u) << bad;
    EXPECT_NE(r.body.find("_after must be"), std::string::npos) << r.body;
  }
  EXPECT_EQ(Call(net::Verb::post, "/console.json").status, 405u);
}

// TLS on the console: the mode, each member's certificate expiry with the days left, flagged once
// within --cert-renew-before (30 days by default, the core's), and the first to expire. Expiries
// are set around the wall clock, which the console reads.
TEST_F(AdminApi, ConsoleShowsTheTlsModeAndEachMembersCertificateExpiry) {
  tls_mode_ = "auto";
  ASSERT_NO_FATAL_FAILURE(Start("", /*insecure=*/true));
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  constexpr int64_t kDay = 86400;
  auto& members = const_cast<std::map<std::string, Member>&>(core_.state().members);
  members.at("etcd-1").tls = true;
  members.at("etcd-1").cert_not_after = now + 90 * kDay;
  members.at("etcd-2").tls = true;
  members.at("etcd-2").cert_not_after = now + 10 * kDay;

  json d = json::parse(Get("/console.json").body);
  EXPECT_EQ(d["tls"]["mode"], "auto");
  EXPECT_EQ(d["tls"]["renew_before_s"], 30 * kDay);
  EXPECT_EQ(d["tls"]["earliest"], now + 10 * kDay);
  EXPECT_EQ(d["tls"]["earliest_member"], "etcd-2");
  ASSERT_EQ(d["members"].size(), 2u);
  const json& later = d["members"][0];
  ASSERT_EQ(later["name"], "etcd-1");
  EXPECT_EQ(later["cert_not_after"], now + 90 * kDay);
  EXPECT_NEAR(later["cert_days_left"].get<double>(), 90, 0.01);
  EXPECT_EQ(later["cert_renew_due"], false) << "90 days left, outside the 30-day window";
  const json& sooner = d["members"][1];
  EXPECT_EQ(sooner["cert_not_after"], now + 10 * kDay);
  EXPECT_NEAR(sooner["cert_days_left"].get<double>(), 10, 0.01);
  EXPECT_EQ(sooner["cert_renew_due"], true) << "10 days left, within the 30-day window";

  // Without TLS: no expiry to show, and the mode the scheduler was started with.
  members.at("etcd-1").tls = false;
  members.at("etcd-2").tls = false;
  tls_mode_ = "off";
  ASSERT_NO_FATAL_FAILURE(Start("", /*insecure=*/true));
  d = json::parse(Get("/console.json").body);
  EXPECT_EQ(d["tls"]["mode"], "off");
  EXPECT_EQ(d["tls"]["members_tls"], false);
  EXPECT_TRUE(d["tls"]["earliest"].is_null());
  for (const json& m : d["members"]) {
    EXPECT_TRUE(m["cert_not_after"].is_null()) << m["name"];
    EXPECT_TRUE(m["cert_days_left"].is_null()) << m["name"];
    EXPECT_EQ(m["cert_renew_due"], false) << m["name"];
  }
}

// The history and the notes stay bounded however long the scheduler runs; leader changes and
// health flips are counted as they are observed.
TEST(ConsoleHistory, IsBoundedAndCountsLeaderChangesAndHealthFlips) {
  PersistentState state;
  state.framework_id = "fw-1";
  state.bootstrapped = true;
  state.members["etcd-1"] = M("etcd-1", 31000, mesos::TASK_RUNNING);
  state.members["etcd-1"].member_id = 1;
  state.members["etcd-2"] = M("etcd-2", 31100, mesos::TASK_RUNNING);
  state.members["etcd-2"].member_id = 2;
  SchedulerCore core(CoreConfig{});
  core.Handle(Started{state, Clock::now()});
  auto probe = [&](uint64_t leader) {
    for (auto [name, id] : {std::pair{"etcd-1", 1}, std::pair{"etcd-2", 2}}) {
      core.Handle(ProbeResult{
          name, MemberProbe{static_cast<uint64_t>(id), leader, 9, 1, false, leader != 0, 1, 0, 0},
          Clock::now()});
    }
  };
  ClusterHistory history;
  history.Observe(core, false, 5);
  EXPECT_EQ(history.health_since_ms(), 5);
  probe(1);
  history.Observe(core, false, 10);
  probe(2);
  history.Observe(core, false, 20);
  probe(1);
  history.Observe(core, false, 30);
  EXPECT_EQ(history.leader_changes(), 2u);
  probe(0);  // no leader: not a change of leader
  history.Observe(core, false, 40);
  probe(1);
  history.Observe(core, false, 50);
  EXPECT_EQ(history.leader_changes(), 2u);

  for (int64_t t = 0; t < 3000; ++t) history.Sample(core, false, 100 + t, std::nullopt);
  EXPECT_EQ(history.samples().size(), ClusterHistory::kKeep);
  EXPECT_EQ(history.samples().back().unix_ms, 3099);
  EXPECT_EQ(history.samples().back().healthy_voters, 2);
  // A clock that went back still gives increasing times (the console's cursor relies on it).
  history.Sample(core, false, 7, std::nullopt);
  EXPECT_EQ(history.samples().back().unix_ms, 3100);

  NoteLog notes;
  for (int i = 0; i < 5000; ++i) notes.Add(Note{"info", fmt::format("note {}", i), "heal"});
  EXPECT_EQ(notes.notes().size(), NoteLog::kKeep);
  EXPECT_EQ(notes.notes().back().seq, 5000u);
  EXPECT_EQ(notes.notes().front().note.message, fmt::format("note {}", 5000 - NoteLog::kKeep));
}

TEST(ConsoleHistory, MeanFsyncIsTheDeltaOfEtcdsTotals) {
  etcd::DiskLatencyTotals before{0.5, 100, 1, 10};
  etcd::DiskLatencyTotals after{0.7, 140, 1, 10};
  ASSERT_TRUE(ClusterHistory::MeanFsyncMs(before, after).has_value());
  EXPECT_DOUBLE_EQ(*ClusterHistory::MeanFsyncMs(before, after), 5.0);  // 0.2 s over 40
  EXPECT_FALSE(ClusterHistory::MeanFsyncMs(after, after).has_value()) << "no fsync between";
  EXPECT_FALSE(ClusterHistory::MeanFsyncMs(after, before).has_value()) << "a restarted member";
}

// Total loss (every member's task gone for good) is told on the page, in /stats and /metrics, and
// by /healthz; nothing is started until the operator asks.
TEST_F(AdminApi, TotalLossIsToldEverywhereTheOperatorLooks) {
  auto feed = [&](Event e) {
    for (const auto& a : core_.Handle(std::move(e))) Record(a);
  };
  feed(Subscribed{"fw-1", Clock::now()});
  for (const auto& [name, m] : core_.state().members) {
    mesos::TaskStatus gone;
    gone.mutable_task_id()->set_value(m.task_id);
    gone.mutable_agent_id()->set_value(m.agent_id);
    gone.set_state(mesos::TASK_GONE);
    feed(TaskUpdate{gone, Clock::now()});
  }
  feed(Tick{Clock::now() + std::chrono::seconds(1)});
  ASSERT_TRUE(core_.total_loss());
  auto page = Get("/");
  EXPECT_NE(page.body.find("TOTAL CLUSTER LOSS: no member is left"), std::string::npos);
  EXPECT_EQ(json::parse(Get("/stats").body)["total_loss"], 1);
  EXPECT_NE(Get("/metrics").body.find("\netcd_mesos_total_loss 1\n"), std::string::npos)
      << Get("/metrics").body;
  EXPECT_EQ(Get("/healthz").status, 500u);
}

TEST(AdminEndpoints, ALearnerIsNoClientEndpoint) {
  PersistentState state;
  state.framework_id = "fw-1";
  state.bootstrapped = true;
  state.members["etcd-1"] = M("etcd-1", 31000, mesos::TASK_RUNNING);
  state.members["etcd-3"] = M("etcd-3", 31200, mesos::TASK_RUNNING);
  state.members["etcd-3"].learner = true;  // catching up
  SchedulerCore core(CoreConfig{});
  core.Handle(Started{state, Clock::now()});
  EXPECT_EQ(RenderEndpoints(core), "http://127.0.0.9:31001\n")
      << "a learner refuses linearizable requests ('rpc not supported for learner')";
}

TEST_F(AdminApi, ReseedGoesToTheCoreWhichSaysWhyNot) {
  auto r = Get("/reseed");  // GET, as the on-call guide does it
  EXPECT_EQ(r.status, 503u);
  EXPECT_NE(r.body.find("not connected"), std::string::npos) << r.body;
  EXPECT_EQ(submitted_, 1);
  auto fresh = Call(net::Verb::post, "/start-fresh");
  EXPECT_EQ(fresh.status, 409u);
  EXPECT_NE(fresh.body.find("total cluster loss"), std::string::npos) << fresh.body;
  EXPECT_EQ(submitted_, 2);
}

TEST_F(AdminApi, TokenGuardsReseedAndStartFresh) {
  Start("s3cret");
  EXPECT_EQ(Get("/reseed").status, 401u);
  EXPECT_EQ(Get("/reseed?token=wrong").status, 401u);
  EXPECT_EQ(Call(net::Verb::post, "/reseed", {{"Authorization", "Bearer s3cre"}}).status, 401u);
  EXPECT_EQ(Call(net::Verb::post, "/start-fresh", {{"Authorization", "Basic s3cret"}}).status,
            401u);
  EXPECT_EQ(submitted_, 0) << "an unauthenticated request reached the core";
  EXPECT_EQ(Get("/reseed?token=s3cret&force=1").status, 503u);
  EXPECT_EQ(Call(net::Verb::post, "/reseed", {{"Authorization", "Bearer s3cret"}}).status, 503u);
  EXPECT_EQ(Call(net::Verb::post, "/start-fresh", {{"Authorization", "Bearer s3cret"}}).status,
            409u);
  EXPECT_EQ(submitted_, 3);
  // Reading stays open.
  EXPECT_EQ(Get("/stats").status, 200u);
}

// Secure by default: every command is refused (503) until the token is known, then needs it
// (401 without it or with a wrong one, naming where the token is), and reaches the core with it.
TEST_F(AdminApi, EveryCommandNeedsTheTokenOnceItIsKnownAndNoneRunsBefore) {
  Start("");
  const std::vector<std::string> commands = {"/reseed",
                                             "/start-fresh",
                                             "/backup",
                                             "/restore?name=x.db",
                                             "/cluster-size?n=3",
                                             "/defrag",
                                             "/rollout/restart",
                                             "/rollout/resume",
                                             "/backups/x.db/verify",
                                             "/teardown?confirm=prod"};
  for (const auto& c : commands) {
    auto r = Call(net::Verb::post, c);
    EXPECT_EQ(r.status, 503u) << c << ": " << r.body;
    EXPECT_NE(r.body.find("admin token is not loaded yet"), std::string::npos) << r.body;
  }
  server_->SetToken("s3cret");
  for (const auto& c : commands) {
    auto none = Call(net::Verb::post, c);
    EXPECT_EQ(none.status, 401u) << c;
    EXPECT_NE(none.body.find("/var/lib/etcd-mesos/admin-token"), std::string::npos) << none.body;
    EXPECT_EQ(none.Header("WWW-Authenticate").value_or(""), "Bearer realm=\"etcd-mesos\"");
    EXPECT_EQ(none.body.find("s3cret"), std::string::npos) << "the token leaked: " << none.body;
    EXPECT_EQ(Call(net::Verb::post, c, {{"Authorization", "Bearer s3cre"}}).status, 401u) << c;
    EXPECT_EQ(
        Call(net::Verb::post, c + (c.find('?') == std::string::npos ? "?" : "&") + "token=s3cretX")
            .status,
        401u)
        << c;
  }
  EXPECT_EQ(submitted_, 0) << "a command without the token reached the core";
  int reached = 0;
  for (const auto& c : commands) {
    auto r = Call(net::Verb::post, c, {{"Authorization", "Bearer s3cret"}});
    EXPECT_NE(r.status, 401u) << c << ": " << r.body;
    EXPECT_EQ(r.body.find("token"), std::string::npos) << c << ": " << r.body;
    if (c != "/restore?name=x.db" && c != "/backups/x.db/verify") ++reached;
  }
  // The restore and the verification are checked here first (backups are off: 409), the rest
  // reach the core.
  EXPECT_EQ(submitted_, reached);
  EXPECT_EQ(Get("/stats").status, 200u) << "reading stays open";
}

// A teardown destroys the cluster: the token alone does not do it, the cluster's name must be
// confirmed, so that a command pasted against the wrong scheduler is refused. Once asked, other
// commands are refused while it runs, and /stats says so.
TEST_F(AdminApi, ATeardownMustConfirmTheClusterNameAndHoldsOtherCommandsBack) {
  Start("s3cret");
  const net::Headers auth = {{"Authorization", "Bearer s3cret"}};
  for (const char* target : {"/teardown", "/teardown?confirm=", "/teardown?confirm=staging"}) {
    auto r = Call(net::Verb::post, target, auth);
    EXPECT_EQ(r.status, 400u) << target << ": " << r.body;
    EXPECT_NE(r.body.find("confirm it with ?confirm=<cluster name>"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("runs cluster prod"), std::string::npos) << r.body;
  }
  EXPECT_EQ(submitted_, 0) << "an unconfirmed teardown reached the core";
  EXPECT_EQ(Get("/teardown?confirm=prod").status, 405u);
  auto asked = Call(net::Verb::post, "/teardown?confirm=prod", auth);
  EXPECT_EQ(asked.status, 202u) << asked.body;
  EXPECT_NE(asked.body.find("tearing down"), std::string::npos) << asked.body;
  auto stats = json::parse(Get("/stats").body);
  EXPECT_EQ(stats["tearing_down"], 1) << stats.dump();
  auto reseed = Call(net::Verb::post, "/reseed?force=1", auth);
  EXPECT_EQ(reseed.status, 409u) << reseed.body;
  EXPECT_NE(reseed.body.find("being torn down"), std::string::npos) << reseed.body;
}

// GET /ca.crt and /client-cert before the scheduler has loaded its CA: 503 saying so, never a
// 200 with an empty CA that a script would save and hand to etcdctl. Once loaded, the CA is
// open and a client certificate needs the token.
TEST_F(AdminApi, TheCaAndClientCertificatesWaitUntilTheCaIsLoaded) {
  std::string bundle;
  trust_bundle_ = [&bundle] { return bundle; };
  Start("s3cret");
  for (const char* path : {"/ca.crt", "/client-cert?name=ops"}) {
    auto early = Call(net::Verb::get, path, {{"Authorization", "Bearer s3cret"}});
    EXPECT_EQ(early.status, 503u) << path << ": " << early.body;
    EXPECT_NE(early.body.find("CA is not loaded yet"), std::string::npos) << early.body;
  }
  bundle = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
  auto ca = Get("/ca.crt");
  EXPECT_EQ(ca.status, 200u);
  EXPECT_EQ(ca.body, bundle);
  EXPECT_EQ(Get("/client-cert?name=ops").status, 401u);
  auto cert = Call(net::Verb::get, "/client-cert?name=ops", {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(cert.status, 200u) << cert.body;
  EXPECT_EQ(cert.body, "certificate for 'ops'\n");
}

// POST /defrag: guarded by the token, a POST, the core's answer returned (here: not subscribed,
// so not now), the maintenance state on /stats and /metrics.
TEST_F(AdminApi, DefragIsAGuardedCommandAndMaintenanceIsOnStatsAndMetrics) {
  Start("s3cret");
  EXPECT_EQ(Call(net::Verb::post, "/defrag").status, 401u);
  EXPECT_EQ(Get("/defrag?token=s3cret").status, 405u) << "a change is a POST";
  EXPECT_EQ(submitted_, 0);
  auto r = Call(net::Verb::post, "/defrag", {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(r.status, 503u) << r.body;
  EXPECT_NE(r.body.find("not now"), std::string::npos) << r.body;
  EXPECT_EQ(submitted_, 1);
  json stats = json::parse(Get("/stats").body);
  EXPECT_EQ(stats["nospace_alarm"], 0);
  EXPECT_EQ(stats["members_defragmented"], 0);
  EXPECT_TRUE(stats["maintenance_running"].is_null());
  std::string metrics = Get("/metrics").body;
  EXPECT_NE(metrics.find("\netcd_mesos_nospace_alarm 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("# TYPE etcd_mesos_members_defragmented_total counter"),
            std::string::npos);
  EXPECT_EQ(stats["hash_checks"], 0);
  EXPECT_EQ(stats["members_corrupt"], 0);
  EXPECT_EQ(stats["corrupt_members"], json::array());
  EXPECT_TRUE(stats["last_hash_check"].is_null());
  EXPECT_NE(metrics.find("\netcd_mesos_members_corrupt_total 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\netcd_mesos_hash_mismatches_total 0\n"), std::string::npos);
  EXPECT_NE(metrics.find("\netcd_mesos_corrupt_members 0\n"), std::string::npos);
}

// Rollouts: GET /rollout is open, its two commands are guarded like every command, and the
// rollout's state is on /stats and /metrics.
TEST_F(AdminApi, RolloutIsShownAndItsCommandsAreGuarded) {
  Start("s3cret");
  for (const char* path : {"/rollout/restart", "/rollout/resume"}) {
    EXPECT_EQ(Call(net::Verb::post, path).status, 401u) << path;
    EXPECT_EQ(Call(net::Verb::post, path, {{"Authorization", "Bearer wrong"}}).status, 401u);
    EXPECT_EQ(Get(std::string(path) + "?token=s3cret").status, 405u) << "a change is a POST";
  }
  EXPECT_EQ(submitted_, 0);
  auto r = Call(net::Verb::post, "/rollout/restart", {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(submitted_, 1) << r.body;
  auto rollout = Get("/rollout");
  ASSERT_EQ(rollout.status, 200u);
  json j = json::parse(rollout.body);
  EXPECT_EQ(j["state"], "idle") << j.dump();
  EXPECT_TRUE(j["pending"].is_array());
  EXPECT_TRUE(j["members"].is_array());
  EXPECT_EQ(Call(net::Verb::post, "/rollout").status, 405u) << "GET only";
  json stats = json::parse(Get("/stats").body);
  EXPECT_EQ(stats["rollout_state"], "idle");
  EXPECT_EQ(stats["rollout_members_pending"], 0);
  std::string metrics = Get("/metrics").body;
  EXPECT_NE(metrics.find("\netcd_mesos_rollout_stopped 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("# TYPE etcd_mesos_members_rolled_total counter"), std::string::npos);
}

// POST /cluster-size?n=N: guarded by the token like every command, n checked before the core
// hears of it, the core's answer returned, the new target on /stats and /metrics.
TEST_F(AdminApi, ClusterSizeIsACommandWithItsTargetOnStats) {
  Start("s3cret");
  auto auth = net::Headers{{"Authorization", "Bearer s3cret"}};
  EXPECT_EQ(Call(net::Verb::post, "/cluster-size?n=5").status, 401u);
  EXPECT_EQ(Get("/cluster-size?n=5&token=s3cret").status, 405u) << "a change is a POST";
  for (const char* bad :
       {"/cluster-size", "/cluster-size?n=", "/cluster-size?n=five", "/cluster-size?n=0",
        "/cluster-size?n=100", "/cluster-size?n=5x", "/cluster-size?n=5&force=maybe"}) {
    auto r = Call(net::Verb::post, bad, auth);
    EXPECT_EQ(r.status, 400u) << bad << ": " << r.body;
  }
  EXPECT_EQ(submitted_, 0) << "a bad request reached the core";
  auto even = Call(net::Verb::post, "/cluster-size?n=4", auth);
  EXPECT_EQ(even.status, 400u);
  EXPECT_NE(even.body.find("force=1"), std::string::npos) << even.body;
  auto grow = Call(net::Verb::post, "/cluster-size?n=5", auth);
  EXPECT_EQ(grow.status, 202u) << grow.body;
  EXPECT_EQ(json::parse(Get("/stats").body)["target_size"], 5);
  EXPECT_NE(Get("/metrics").body.find("etcd_mesos_cluster_size 5"), std::string::npos);
  EXPECT_EQ(Call(net::Verb::post, "/cluster-size?n=4&force=1", auth).status, 202u);
  EXPECT_EQ(submitted_, 3);
  server_->SetStandby("http://10.0.0.9:12300/");
  EXPECT_EQ(Call(net::Verb::post, "/cluster-size?n=3", auth).status, 307u);
}

// A standby scheduler instance: views of the stored state marked as a standby's, healthz well,
// and every command sent to the leader, token and all, without reaching this core.
TEST_F(AdminApi, AStandbySendsCommandsToTheLeaderAndSaysItIsAStandby) {
  Start("s3cret");
  server_->SetStandby("http://10.0.0.9:12300/");
  for (const char* target :
       {"/reseed?force=1&token=s3cret", "/start-fresh", "/backup", "/restore?name=b.db",
        "/backups/b.db/verify", "/teardown?confirm=prod"}) {
    auto r = Call(net::Verb::post, target, {{"Authorization", "Bearer s3cret"}});
    EXPECT_EQ(r.status, 307u) << target;
    EXPECT_EQ(net::FindHeader(r.headers, "Location").value_or(""),
              std::string("http://10.0.0.9:12300") + target);
  }
  EXPECT_EQ(submitted_, 0) << "a standby's core acted on a command";
  auto stats = json::parse(Get("/stats").body);
  EXPECT_EQ(stats["standby"], 1);
  EXPECT_EQ(stats["leader_url"], "http://10.0.0.9:12300/");
  EXPECT_EQ(stats["launched_servers"], 2) << "the stored state's counters";
  // It does not probe: its health is the leader's verdict as last stored.
  EXPECT_FALSE(core_.healthy()) << "no probe has answered this core";
  EXPECT_EQ(stats["healthy"], 1);
  EXPECT_NE(Get("/metrics").body.find("etcd_mesos_healthy 1"), std::string::npos);
  auto healthz = Get("/healthz");
  EXPECT_EQ(healthz.status, 200u) << "Marathon must not restart a standby";
  EXPECT_NE(healthz.body.find("standby"), std::string::npos) << healthz.body;
  EXPECT_NE(Get("/metrics").body.find("etcd_mesos_standby 1"), std::string::npos);
  auto page = Get("/");
  EXPECT_NE(page.body.find("STANDBY"), std::string::npos);
  EXPECT_NE(page.body.find("http://10.0.0.9:12300/"), std::string::npos);
  EXPECT_NE(page.body.find("as the leader last stored: 2 of 2 voters agree on a leader"),
            std::string::npos);
  // No leader known: commands are refused, saying why.
  server_->SetStandby("");
  auto none = Call(net::Verb::post, "/reseed", {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(none.status, 503u);
  EXPECT_NE(none.body.find("no leader"), std::string::npos) << none.body;
  // Leading again: commands reach the core.
  server_->SetStandby(std::nullopt);
  EXPECT_EQ(Call(net::Verb::post, "/reseed", {{"Authorization", "Bearer s3cret"}}).status, 503u);
  EXPECT_EQ(submitted_, 1);
  EXPECT_EQ(json::parse(Get("/stats").body)["standby"], 0);
  EXPECT_EQ(json::parse(Get("/stats").body)["healthy"], 0) << "a leader shows its own probes";
  // A leader cut off from ZooKeeper says that it holds.
  EXPECT_EQ(json::parse(Get("/stats").body)["holding"], 0);
  server_->SetHolding(true);
  EXPECT_EQ(json::parse(Get("/stats").body)["holding"], 1);
  EXPECT_NE(Get("/metrics").body.find("etcd_mesos_holding 1"), std::string::npos);
}

TEST_F(AdminApi, WrongMethodsUnknownPathsAndBadQueries) {
  auto r = Call(net::Verb::post, "/stats");
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(r.Header("Allow").value_or(""), "GET");
  EXPECT_EQ(Call(net::Verb::delete_, "/reseed").status, 405u);
  EXPECT_EQ(Get("/start-fresh").status, 405u);
  auto nf = Get("/membership");  // the original's docs' wrong name
  EXPECT_EQ(nf.status, 404u);
  EXPECT_NE(nf.body.find("/members"), std::string::npos);
  EXPECT_EQ(Get("/reseed?force=maybe").status, 400u);
  EXPECT_EQ(submitted_, 0);
}

TEST_F(AdminApi, ArtifactsAreServedByNameOnly) {
  auto exec = Get("/artifacts/etcd-mesos-executor");
  EXPECT_EQ(exec.status, 200u);
  EXPECT_EQ(exec.body, "#!/bin/sh\necho executor\n");
  auto etcd = Get("/artifacts/etcd");
  ASSERT_EQ(etcd.status, 200u);
  EXPECT_EQ(etcd.body.size(), fs::file_size("/usr/bin/etcd"));
  EXPECT_EQ(Get("/artifacts/etcdctl").status, 500u);  // configured but unreadable
  EXPECT_EQ(Get("/artifacts/../../etc/passwd").status, 404u);
  EXPECT_EQ(Get("/artifacts/%2e%2e%2fetc%2fpasswd").status, 404u);
  EXPECT_EQ(Get("/artifacts/").status, 404u);
  EXPECT_EQ(Call(net::Verb::post, "/artifacts/etcd").status, 405u);
}

// Launches name each artifact's version in its URL, so that the agents' fetcher cache keeps
// versions apart: the current version is served, and one whose file has changed since is not
// (an agent must never cache new bytes under an old version's URL).
TEST_F(AdminApi, VersionedArtifactsServeOnlyTheCurrentVersion) {
  fs::path exec = dir_.path() / "etcd-mesos-executor";
  auto v1 = ArtifactVersion(exec.string());
  ASSERT_TRUE(v1.ok()) << v1.error();
  EXPECT_EQ(v1->size(), 16u);
  auto served = Get("/artifacts/" + *v1 + "/etcd-mesos-executor");
  EXPECT_EQ(served.status, 200u);
  EXPECT_EQ(served.body, "#!/bin/sh\necho executor\n");

  std::ofstream(exec, std::ios::app) << "# a rebuilt executor\n";
  auto v2 = ArtifactVersion(exec.string());
  ASSERT_TRUE(v2.ok());
  EXPECT_NE(*v2, *v1) << "a changed file kept its version";
  auto stale = Get("/artifacts/" + *v1 + "/etcd-mesos-executor");
  EXPECT_EQ(stale.status, 404u);
  EXPECT_NE(stale.body.find("now version " + *v2), std::string::npos) << stale.body;
  EXPECT_EQ(Get("/artifacts/" + *v2 + "/etcd-mesos-executor").status, 200u);
  EXPECT_EQ(Get("/artifacts/" + *v2 + "/passwd").status, 404u);
  EXPECT_EQ(Get("/artifacts/" + *v2 + "/../etcd").status, 404u);
  EXPECT_FALSE(ArtifactVersion((dir_.path() / "missing").string()).ok());
}

// Raw bytes on a socket: the answer's status line, or "" if the server just closed.
std::string Raw(const HostPort& to, const std::string& bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(to.port);
  ::inet_pton(AF_INET, to.host.c_str(), &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  (void)!::write(fd, bytes.data(), bytes.size());
  ::shutdown(fd, SHUT_WR);
  std::string out;
  std::array<char, 512> buf;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ssize_t n;
  while ((n = ::read(fd, buf.data(), buf.size())) > 0) out.append(buf.data(), n);
  ::close(fd);
  return out.substr(0, out.find("\r\n"));
}

TEST_F(AdminApi, HostileRequestsGet4xxAndDisturbNothing) {
  std::atomic<bool> done{false};
  std::vector<std::string> answers;
  std::thread client([&] {
    answers.push_back(Raw(address_, "GARBAGE\r\n\r\n"));
    answers.push_back(Raw(
        address_, "GET /stats HTTP/1.1\r\nHost: x\r\nX: " + std::string(100000, 'a') + "\r\n\r\n"));
    answers.push_back(
        Raw(address_, "POST /reseed HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nabc"));
    answers.push_back(Raw(address_, "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"));
    done = true;
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done && std::chrono::steady_clock::now() < deadline) {
    io_.run_for(std::chrono::milliseconds(20));
  }
  client.join();
  ASSERT_EQ(answers.size(), 4u);
  for (const auto& a : answers) {
    // Either a 4xx status line or a closed connection; never 2xx or 5xx.
    if (!a.empty()) {
      EXPECT_NE(a.find(" 4"), std::string::npos) << a;
    }
  }
  EXPECT_NE(answers[3].find("404"), std::string::npos) << answers[3];
  EXPECT_EQ(submitted_, 0);
  EXPECT_EQ(Get("/stats").status, 200u);  // still serving
}

// ---- End to end through etcd-mesos-local ----------------------------------------------------

class SchedulerEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    local::LocalClusterOptions options;
    options.agents = 3;
    options.resources = *local::ParseResources("cpus:4;mem:4096;disk:8192;ports:[32000-32099]");
    options.first_agent_host = test::AgentHostBase();
    options.work_dir = dir_.path() / "mesos";
    options.master.port = 0;
    options.master.allocation_interval = std::chrono::milliseconds(100);
    options.master.heartbeat_interval = std::chrono::milliseconds(500);
    options.agent.status_update_retry_min = std::chrono::milliseconds(300);
    options.agent.ping_interval = std::chrono::milliseconds(200);
    options.agent.executor_shutdown_grace_period = std::chrono::milliseconds(2000);
    cluster_ = std::make_unique<local::LocalCluster>(io_, options);
    auto bound = cluster_->Start();
    ASSERT_TRUE(bound.ok()) << bound.error();
    master_ = *bound;
    // What the scheduler logs, to check what it says (and what it never says: secrets).
    log_ = std::make_shared<std::ostringstream>();
    log_sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(*log_);
    spdlog::default_logger()->sinks().push_back(log_sink_);
  }
  void TearDown() override {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), log_sink_), sinks.end());
    if (shell_) shell_->Stop();
    shell_.reset();
    cluster_->Shutdown();
    io_.run_for(std::chrono::milliseconds(200));
  }
  SchedulerFlags Flags() {
    fs::path wrapper = test::WriteExecutorWrapper(dir_.path(), EXECUTOR_PATH);
    std::vector<std::string> args = {"--cluster-name=e2e",
                                     "--master=" + master_.ToString(),
                                     "--state-dir=" + (dir_.path() / "state").string(),
                                     "--cluster-size=3",
                                     "--admin-port=" + std::to_string(test::FreePort()),
                                     "--cpu-limit=0.5",
                                     "--mem-limit=128",
                                     "--disk-limit=256",
                                     "--executor-bin=" + wrapper.string(),
                                     "--probe-interval=500ms",
                                     "--bootstrap-gather=2s"};
    auto parsed = ParseFlags(args, {{"USER", "root"}}, ".");
    EXPECT_TRUE(parsed.ok()) << parsed.error();
    EXPECT_TRUE(LoadFiles(parsed->flags.shell).ok());
    return parsed->flags;
  }
  bool RunUntil(const std::function<bool()>& done, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(20));
    }
    return done();
  }
  net::HttpResponse Admin(net::Verb verb, const std::string& target) {
    net::HttpRequest req;
    req.method = verb;
    req.endpoint = shell_->admin_address();
    req.target = target;
    std::optional<Result<net::HttpResponse>> out;
    net::HttpFetch(io_, req, [&](Result<net::HttpResponse> r) { out.emplace(std::move(r)); });
    RunUntil([&] { return out.has_value(); }, std::chrono::seconds(10));
    if (!out || !out->ok()) return {};
    return std::move(**out);
  }

  test::TempDir dir_;
  boost::asio::io_context io_;
  std::unique_ptr<local::LocalCluster> cluster_;
  HostPort master_;
  std::unique_ptr<SchedulerShell> shell_;
  std::shared_ptr<std::ostringstream> log_;
  spdlog::sink_ptr log_sink_;
};

int HealthyVoters(const SchedulerCore& core) {
  int n = 0;
  for (const auto& [name, m] : core.state().members) {
    n += (m.task_state == mesos::TASK_RUNNING && !m.learner && m.healthy && m.member_id != 0);
  }
  return n;
}

// Another scheduler subscribing as the same framework fails this one over: Mesos sends ERROR on
// the old stream, and this scheduler stops with a reason instead of failing the other one over
// in turn (two schedulers fighting over one etcd cluster).
TEST_F(SchedulerEndToEnd, ASchedulerFailedOverByAnotherStops) {
  std::optional<Error> fatal;
  SchedulerShell::Options options;
  options.on_fatal = [&](const Error& e) { fatal = e; };
  options.client.backoff_min = std::chrono::milliseconds(50);
  options.client.backoff_max = std::chrono::milliseconds(100);
  shell_ = std::make_unique<SchedulerShell>(io_, Flags(), options);
  ASSERT_TRUE(shell_->Start().ok());
  ASSERT_TRUE(RunUntil([&] { return shell_->core().state().framework_id.has_value(); },
                       std::chrono::seconds(30)));
  mesos::FrameworkInfo info;
  info.set_user("root");
  info.set_name("etcd-e2e");
  info.set_failover_timeout(60);
  info.mutable_id()->set_value(*shell_->core().state().framework_id);
  mesos_client::SchedulerClient other(io_, {}, {});
  other.Start(master_, info);
  ASSERT_TRUE(RunUntil([&] { return fatal.has_value(); }, std::chrono::seconds(10)));
  EXPECT_NE(fatal->message.find("Framework failed over"), std::string::npos) << *fatal;
  EXPECT_NE(fatal->message.find("must stay down"), std::string::npos) << *fatal;
  // The newcomer keeps the framework: the stopped scheduler did not come back for it.
  io_.run_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(other.subscribed());
  other.Stop();
}

TEST_F(SchedulerEndToEnd, BootstrapsThreeHealthyVoters) {
  std::optional<Error> fatal;
  SchedulerShell::Options options;
  options.on_fatal = [&](const Error& e) { fatal = e; };
  options.client.backoff_min = std::chrono::milliseconds(100);
  options.client.backoff_max = std::chrono::milliseconds(500);
  shell_ = std::make_unique<SchedulerShell>(io_, Flags(), options);
  ASSERT_TRUE(shell_->Start().ok());
  bool ok = RunUntil(
      [&] { return fatal || (shell_->core().healthy() && HealthyVoters(shell_->core()) == 3); },
      std::chrono::seconds(120));
  ASSERT_FALSE(fatal) << fatal->ToString();
  ASSERT_TRUE(ok) << "not 3 healthy voters; /members: " << Admin(net::Verb::get, "/members").body;

  json stats = json::parse(Admin(net::Verb::get, "/stats").body);
  EXPECT_EQ(stats["healthy"], 1);
  EXPECT_EQ(stats["running_servers"], 3);
  EXPECT_EQ(stats["launched_servers"], 3);
  EXPECT_EQ(Admin(net::Verb::get, "/healthz").body, "cluster is healthy\n");
  json members = json::parse(Admin(net::Verb::get, "/members").body);
  ASSERT_EQ(members.size(), 3u);
  std::set<std::string> hosts;
  for (const auto& m : members) {
    hosts.insert(m["host"]);
    EXPECT_EQ(m["learner"], false);
    // The task name is what the on-call guide reads.
    EXPECT_EQ(m["taskId"], fmt::format("{} {} {} {} {}", m["name"].get<std::string>(),
                                       m["host"].get<std::string>(), m["rpcPort"].get<int>(),
                                       m["clientPort"].get<int>(), m["httpPort"].get<int>()));
  }
  EXPECT_EQ(hosts.size(), 3u) << "one member per agent";

  // etcdctl agrees: three started voters. TLS is on by default: the members serve https to
  // clients of the cluster's CA, such as the scheduler (its certificate is in <state-dir>/tls).
  std::string endpoint = members[0]["clientUrl"];
  EXPECT_TRUE(endpoint.starts_with("https://")) << endpoint;
  etcd::TlsFiles tls = SchedulerTlsFiles((dir_.path() / "state").string());
  std::string cmd = "ETCDCTL_API=3 /usr/bin/etcdctl --endpoints=" + endpoint +
                    " --cacert=" + tls.ca_file + " --cert=" + tls.cert_file +
                    " --key=" + tls.key_file + " member list -w json 2>&1";
  std::string out;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  ::pclose(pipe);
  json list = json::parse(out, nullptr, false);
  ASSERT_TRUE(list.is_object()) << out;
  ASSERT_EQ(list["members"].size(), 3u) << out;
  for (const auto& m : list["members"]) EXPECT_FALSE(m.value("isLearner", false)) << out;

  // Secure by default: no token was given, so one was generated, kept 0600 in the state dir.
  fs::path token_file = dir_.path() / "state" / "admin-token";
  ASSERT_TRUE(fs::exists(token_file));
  EXPECT_EQ(fs::status(token_file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  std::ifstream token_in(token_file);
  std::string token;
  token_in >> token;
  ASSERT_EQ(token.size(), 64u) << "32 random bytes, hex";
  EXPECT_EQ(shell_->core().state().admin_token, token) << "kept in the state too";
  EXPECT_EQ(Admin(net::Verb::get, "/reseed").status, 401u);
  EXPECT_EQ(Admin(net::Verb::post, "/backup?token=" + token.substr(1)).status, 401u);

  // A manual reseed of a healthy cluster is refused with the reason.
  auto reseed = Admin(net::Verb::get, "/reseed?token=" + token);
  EXPECT_EQ(reseed.status, 409u);
  EXPECT_NE(reseed.body.find("healthy"), std::string::npos) << reseed.body;

  // The token is nowhere but in its file and the state store: not in the log, not in the
  // master's state (task labels and all), not in any sandbox or agent file.
  EXPECT_NE(log_->str().find("admin token generated"), std::string::npos) << log_->str();
  EXPECT_EQ(log_->str().find(token), std::string::npos) << "the log holds the token";
  EXPECT_EQ(cluster_->master().StateJson().dump().find(token), std::string::npos);
  for (const auto& entry : fs::recursive_directory_iterator(dir_.path())) {
    if (!entry.is_regular_file() || entry.path() == token_file ||
        entry.path().string().starts_with((dir_.path() / "state").string() + "/c.")) {
      continue;
    }
    // Read whole through the stream buffer: etcd's WAL files alone are 64 MB each, and a
    // character iterator took most of a minute over them in the sanitizer build.
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    EXPECT_EQ(text.str().find(token), std::string::npos)
        << entry.path() << " holds the admin token";
  }

  // The state is on record: framework id both in the state and as plain text.
  EXPECT_TRUE(shell_->core().state().framework_id.has_value());
  std::ifstream id_file(dir_.path() / "state");
  bool found_id = false;
  for (const auto& entry : fs::recursive_directory_iterator(dir_.path() / "state")) {
    if (entry.path().string().find("etcd-e2e_framework_id") != std::string::npos) found_id = true;
  }
  EXPECT_TRUE(found_id);
}

// /healthz with --healthz-max-backup-age over a healthy core: a stale newest backup fails it, a
// fresh one passes; backups are served to agents by name only.
TEST(AdminBackups, HealthzFailsOnAStaleBackupAndOnlyBackupNamesAreServed) {
  test::TempDir dir;
  fs::create_directories(dir.path() / "backups");
  std::string name = "etcd-x-20261124T100000Z-rev5-0000000000000001.db";
  std::ofstream(dir.path() / "backups" / name) << "snapshot bytes";
  std::ofstream(dir.path() / "secret") << "not a backup";
  CoreConfig config;
  config.cluster_size = 1;
  config.backups = true;
  config.backup_interval = std::chrono::hours(1);
  SchedulerCore core(config);
  auto now_unix = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  PersistentState state;
  state.bootstrapped = true;
  state.members["etcd-1"] = M("etcd-1", 31000, mesos::TASK_RUNNING);
  BackupDone stale{name, 14, 5, "etcd-1", std::string(64, 'a'), now_unix - 7200};
  auto t = Clock::now();
  core.Handle(Started{state, t, stale, std::chrono::hours(2)});
  core.Handle(Subscribed{"fw", t});
  mesos::TaskStatus running;
  running.mutable_task_id()->set_value(state.members["etcd-1"].task_id);
  running.set_state(mesos::TASK_RUNNING);
  core.Handle(TaskUpdate{running, t});
  uint64_t id = 12345678901234567890ull;
  core.Handle(ProbeResult{"etcd-1", MemberProbe{id, id, 10, 2, false, true}, t});
  core.Handle(ClusterProbeResult{ClusterView{{{id, "etcd-1", {}, false}}, true}, t, 0});
  Actions tick = core.Handle(Tick{t});
  ASSERT_TRUE(core.healthy()) << core.health_reason();

  boost::asio::io_context io;
  NoteLog notes;
  AdminServer::Options options;
  options.listen = HostPort{"127.0.0.1", 0};
  options.backup_dir = (dir.path() / "backups").string();
  options.healthz_max_backup_age = std::chrono::hours(1);
  AdminServer server(io, options, core, notes, [](Event) {});
  auto bound = server.Start();
  ASSERT_TRUE(bound.ok()) << bound.error();
  auto get = [&](const std::string& target) {
    net::HttpRequest req;
    req.endpoint = *bound;
    req.target = target;
    std::optional<Result<net::HttpResponse>> out;
    net::HttpFetch(io, req, [&](Result<net::HttpResponse> r) { out.emplace(std::move(r)); });
    io.restart();
    while (!out) io.run_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(out->ok());
    return out->ok() ? **out : net::HttpResponse{};
  };
  auto stale_health = get("/healthz");
  EXPECT_EQ(stale_health.status, 500u);
  EXPECT_NE(stale_health.body.find("the newest backup is"), std::string::npos) << stale_health.body;
  // A backup written now: healthy again.
  uint64_t backup_id = 0;
  for (const auto& a : tick) {
    if (auto* b = std::get_if<TakeBackup>(&a)) backup_id = b->id;
  }
  BackupDone fresh{name, 14, 6, "etcd-1", std::string(64, 'b'), now_unix};
  core.Handle(BackupResult{backup_id, fresh, Clock::now()});
  EXPECT_EQ(get("/healthz").status, 200u);
  auto stats = json::parse(get("/stats").body);
  EXPECT_EQ(stats["last_backup"], name);
  EXPECT_LE(stats["last_backup_age_seconds"].get<int64_t>(), 5);

  EXPECT_EQ(get("/artifacts/backups/" + name).body, "snapshot bytes");
  EXPECT_EQ(get("/artifacts/backups/secret").status, 404u);
  EXPECT_EQ(get("/artifacts/backups/..%2Fsecret").status, 404u);
  EXPECT_EQ(get("/artifacts/backups/etcd-x-20261124T100000Z-rev5-0000000000000002.db").status,
            404u);

  // The backup directory hangs (a FIFO stands for a stuck network mount: opening it blocks until
  // a writer comes). GET /backups waits for it; every other endpoint answers meanwhile.
  std::string stuck = "etcd-x-20261124T110000Z-rev7-0000000000000001.db";
  std::ofstream(dir.path() / "backups" / stuck) << "more bytes";
  fs::path fifo = dir.path() / "backups" / (stuck + ".json");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  net::HttpRequest list_request;
  list_request.endpoint = *bound;
  list_request.target = "/backups";
  std::optional<Result<net::HttpResponse>> listed;
  net::HttpFetch(io, list_request,
                 [&](Result<net::HttpResponse> r) { listed.emplace(std::move(r)); });
  io.run_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(listed.has_value()) << "the listing cannot have finished: the directory hangs";
  EXPECT_EQ(get("/stats").status, 200u) << "the admin API serves while the disk hangs";
  EXPECT_EQ(get("/healthz").status, 200u);
  {
    std::ofstream unblock(fifo);  // the mount comes back
    unblock << "{}";
  }
  while (!listed) io.run_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(listed->ok()) << listed->error();
  auto backups = json::parse((*listed)->body);
  ASSERT_EQ(backups.size(), 2u) << (*listed)->body;
  EXPECT_EQ(backups[0]["name"], stuck) << "newest first";
  EXPECT_EQ(backups[1]["name"], name);
  server.Stop();
}

}  // namespace
}  // namespace etcd_mesos::scheduler::shell
