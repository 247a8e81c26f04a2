// The executor's pure parts: the TaskInfo/TaskStatus JSON shapes (executor/task_config.h) and
// every transition of the supervisor (executor/core/supervisor.h), driven by hand-made events with
// simulated time.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "executor/core/supervisor.h"
#include "executor/task_config.h"

namespace etcd_mesos::executor {
namespace {

using namespace std::chrono_literals;
using core::Actions;

TaskConfig Config() {
  TaskConfig c;
  c.name = "etcd-2";
  c.address = "10.0.0.7";
  c.peer_port = 31001;
  c.client_port = 31002;
  c.reseed_port = 31003;
  c.initial_cluster = "etcd-1=http://10.0.0.5:31001,etcd-2=http://10.0.0.7:31001";
  c.cluster_token = "etcd-test";
  c.reseed_token = "secret";
  c.extra_flags = {"--snapshot-count=1000"};
  return c;
}

// ---- TaskConfig ----

TEST(TaskConfig, RoundTripsWithDefaults) {
  TaskConfig c = Config();
  auto parsed = ParseTaskConfig(EncodeTaskConfig(c));
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(*parsed, c);
  EXPECT_EQ(parsed->restart_max, 5);
  EXPECT_EQ(parsed->restart_window, 60s);
  EXPECT_EQ(parsed->health_interval, 1000ms);
  EXPECT_FALSE(parsed->etcd_binary.has_value());
  c.etcd_binary = "/usr/bin/etcd";
  c.initial_cluster_state = InitialClusterState::kExisting;
  EXPECT_EQ(*ParseTaskConfig(EncodeTaskConfig(c)), c);
  EXPECT_EQ(c.ClientUrl(), "http://10.0.0.7:31002");
  EXPECT_EQ(c.ReseedUrl(), "http://10.0.0.7:31003");
}

// A TLS member: its URLs are https, and where it gets its certificates round-trips.
TEST(TaskConfig, ATlsMemberHasHttpsUrlsAndKnowsWhereToGetItsCertificates) {
  TaskConfig c = Config();
  c.tls = TaskConfig::Tls{"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                          "http://10.0.0.1:12300/certificates", "0123abcd"};
  c.initial_cluster = "etcd-1=https://10.0.0.5:31001,etcd-2=https://10.0.0.7:31001";
  EXPECT_EQ(c.ClientUrl(), "https://10.0.0.7:31002");
  EXPECT_EQ(c.PeerUrl(), "https://10.0.0.7:31001");
  auto parsed = ParseTaskConfig(EncodeTaskConfig(c));
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(*parsed, c);
  // Its own entry must be its https peer URL.
  c.initial_cluster = "etcd-1=https://10.0.0.5:31001,etcd-2=http://10.0.0.7:31001";
  auto plain = ParseTaskConfig(EncodeTaskConfig(c));
  ASSERT_FALSE(plain.ok());
  EXPECT_NE(plain.error().message.find("initial_cluster"), std::string::npos) << plain.error();
}

// A bad TLS section is named (tls or tls.<field>).
TEST(TaskConfig, EveryBadTlsFieldIsNamed) {
  TaskConfig c = Config();
  c.tls = TaskConfig::Tls{"-----BEGIN CERTIFICATE-----\n", "http://s/c", "t"};
  c.initial_cluster = "etcd-2=https://10.0.0.7:31001";
  const std::vector<std::pair<nlohmann::json, std::string>> cases = {
      {"on", "\"tls\""},
      {{{"ca", "x"}, {"cert_url", "http://s/c"}, {"cert_token", "t"}}, "\"tls.ca\""},
      {{{"ca", "-----BEGIN CERTIFICATE-----"}, {"cert_url", "ftp://s/c"}, {"cert_token", "t"}},
       "\"tls.cert_url\""},
      {{{"ca", "-----BEGIN CERTIFICATE-----"}, {"cert_url", "http://s/c"}, {"cert_token", ""}},
       "\"tls.cert_token\""},
      {{{"ca", "-----BEGIN CERTIFICATE-----"}, {"cert_url", "http://s/c"}}, "\"tls.cert_token\""},
      {{{"ca", "-----BEGIN CERTIFICATE-----"},
        {"cert_url", "http://s/c"},
        {"cert_token", "t"},
        {"key", "x"}},
       "\"tls.key\""},
  };
  ASSERT_TRUE(ParseTaskConfig(EncodeTaskConfig(c)).ok());
  for (const auto& [value, field] : cases) {
    auto doc = nlohmann::json::parse(EncodeTaskConfig(c));
    doc["tls"] = value;
    auto parsed = ParseTaskConfig(doc.dump());
    ASSERT_FALSE(parsed.ok()) << value.dump();
    EXPECT_NE(parsed.error().message.find(field), std::string::npos) << parsed.error();
  }
}

TEST(TaskConfig, OptionalFieldsMayBeOmitted) {
  auto doc = nlohmann::json::parse(EncodeTaskConfig(Config()));
  for (auto field : {"extra_flags", "restart_max", "restart_window_s", "health_interval_ms"}) {
    doc.erase(field);
  }
  auto parsed = ParseTaskConfig(doc.dump());
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_TRUE(parsed->extra_flags.empty());
  EXPECT_EQ(parsed->restart_max, 5);
}

TEST(TaskConfig, EveryBadFieldIsNamed) {
  struct Case {
    const char* field;
    nlohmann::json value;  // null: remove the field
  };
  const Case cases[] = {
      {"name", nullptr},
      {"name", ""},
      {"name", "a,b"},
      {"name", 7},
      {"address", "etcd.example.com"},
      {"address", "0.0.0.0"},
      {"address", nullptr},
      {"peer_port", 0},
      {"peer_port", 70000},
      {"peer_port", "31001"},
      {"client_port", nullptr},
      {"client_port", 31001},  // same as peer_port: reported on peer_port
      {"reseed_port", -1},
      {"initial_cluster", ""},
      {"initial_cluster", "etcd-1=http://10.0.0.5:31001"},          // lacks this member
      {"initial_cluster", "etcd-2=http://10.0.0.8:31001"},          // wrong own URL
      {"initial_cluster", "etcd-2=10.0.0.7:31001"},                 // no scheme
      {"initial_cluster", "etcd-2=http://10.0.0.7:31001,garbage"},  // not name=url
      {"initial_cluster_state", "maybe"},
      {"cluster_token", ""},
      {"reseed_token", ""},
      {"reseed_token", nullptr},
      {"extra_flags", "--x=1"},
      {"extra_flags", nlohmann::json::array({"-x"})},
      {"extra_flags", nlohmann::json::array({"--data-dir=/tmp"})},
      {"extra_flags", nlohmann::json::array({"--listen-client-urls=http://0.0.0.0:2379"})},
      {"extra_flags", nlohmann::json::array({"--initial-cluster-state=new"})},
      {"extra_flags", nlohmann::json::array({"--advertise-client-urls=http://x:1"})},
      {"extra_flags", nlohmann::json::array({"--name=other"})},
      {"extra_flags", nlohmann::json::array({"--force-new-cluster"})},
      {"extra_flags", nlohmann::json::array({1})},
      {"etcd_binary", ""},
      {"restart_max", -1},
      {"restart_window_s", 0},
      {"health_interval_ms", 1},
      {"surprise", 1},  // unknown fields are refused
      {"extra_flags", nlohmann::json::array({"--cert-file=/tmp/x.crt"})},
      {"extra_flags", nlohmann::json::array({"--peer-client-cert-auth=false"})},
      {"extra_flags", nlohmann::json::array({"--client-cert-auth=false"})},
  };
  for (const auto& c : cases) {
    auto doc = nlohmann::json::parse(EncodeTaskConfig(Config()));
    if (c.value.is_null()) {
      doc.erase(c.field);
    } else {
      doc[c.field] = c.value;
    }
    auto parsed = ParseTaskConfig(doc.dump());
    ASSERT_FALSE(parsed.ok()) << c.field << " = " << c.value.dump();
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
    std::string expected_field =
        std::string(c.field) == "client_port" && c.value == 31001 ? "peer_port" : c.field;
    EXPECT_NE(parsed.error().message.find("\"" + expected_field + "\""), std::string::npos)
        << c.field << " = " << c.value.dump() << ": " << parsed.error().message;
  }
}

TEST(TaskConfig, NotJsonOrNotAnObjectIsRefused) {
  for (const char* bad : {"", "{", "[]", "42", "\"x\""}) {
    auto parsed = ParseTaskConfig(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(TaskConfig, ExtraFlagsThatAreNotOursAreKept) {
  EXPECT_FALSE(IsOwnedEtcdFlag("--snapshot-count=5"));
  EXPECT_FALSE(IsOwnedEtcdFlag("--auto-compaction-mode=periodic"));
  EXPECT_TRUE(IsOwnedEtcdFlag("--initial-cluster-token=x"));
  EXPECT_TRUE(IsOwnedEtcdFlag("--wal-dir=/x"));
}

TEST(MemberFacts, RoundTripsWithIdsAsDecimalStrings) {
  MemberFacts f;
  f.name = "etcd-2";
  f.member_id = 18446744073709551615ull;  // beyond a double's exact range
  f.cluster_id = 13943504652224441641ull;
  f.raft_index = 42;
  f.raft_term = 3;
  f.leader = 16110641917360169610ull;
  f.is_learner = true;
  f.healthy = true;
  f.serving = true;
  f.client_url = "http://10.0.0.7:31002";
  std::string json = EncodeMemberFacts(f);
  EXPECT_NE(json.find("\"member_id\":\"18446744073709551615\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"raft_index\":\"42\""), std::string::npos) << json;
  auto parsed = ParseMemberFacts(json);
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(*parsed, f);
  auto doc = nlohmann::json::parse(json);
  doc["member_id"] = "12x";
  EXPECT_FALSE(ParseMemberFacts(doc.dump()).ok());
  doc.erase("member_id");
  EXPECT_FALSE(ParseMemberFacts(doc.dump()).ok());
}

// ---- Supervisor ----

template <typename T>
std::vector<T> All(const Actions& actions) {
  std::vector<T> out;
  for (const auto& a : actions) {
    if (const T* t = std::get_if<T>(&a)) out.push_back(*t);
  }
  return out;
}
template <typename T>
std::optional<T> One(const Actions& actions) {
  auto all = All<T>(actions);
  EXPECT_LE(all.size(), 1u);
  if (all.empty()) return std::nullopt;
  return all[0];
}
std::vector<mesos::TaskStatus> Statuses(const Actions& actions) {
  std::vector<mesos::TaskStatus> out;
  for (const auto& s : All<core::SendStatus>(actions)) out.push_back(s.status);
  return out;
}

core::ProbeFacts Serving(uint64_t index = 10, uint64_t leader = 7, size_t members = 3) {
  core::ProbeFacts p;
  p.member_id = 7;
  p.cluster_id = 99;
  p.raft_index = index;
  p.raft_term = 2;
  p.leader = leader;
  p.health = true;
  p.member_count = members;
  return p;
}

class SupervisorTest : public ::testing::Test {
 protected:
  SupervisorTest() {
    options_.restart_backoff_initial = 250ms;
    options_.restart_backoff_max = 2s;
    options_.fast_probe_interval = 100ms;
    options_.default_kill_grace = 5s;
    options_.reseed_timeout = 30s;
    options_.reseed_stop_grace = 7s;
    options_.agent_lost_grace = 3s;
    sup_ = core::Supervisor(options_);
  }

  Actions H(const core::Event& e) {
    Actions out = sup_.Handle(e);
    for (const auto& a : out) {
      if (auto* t = std::get_if<core::ArmTimer>(&a)) timers_[t->id] = *t;
      if (auto* s = std::get_if<core::StartEtcd>(&a)) starts_.push_back(*s);
    }
    return out;
  }
  void Advance(Duration d) { now_ += d; }
  // Fires the latest arm of `id` after its delay.
  Actions Fire(core::TimerId id) {
    auto it = timers_.find(id);
    EXPECT_NE(it, timers_.end()) << core::TimerName(id) << " was never armed";
    if (it == timers_.end()) return {};
    Advance(it->second.after);
    return H(core::TimerFired{id, it->second.token, now_});
  }

  mesos::TaskInfo Task(const std::string& data, const std::string& id = "etcd-2-task") {
    mesos::TaskInfo t;
    t.mutable_task_id()->set_value(id);
    t.set_name(id);
    t.set_data(data);
    return t;
  }

  Actions Launch(TaskConfig c = Config()) {
    return H(core::Launched{Task(EncodeTaskConfig(c)), now_});
  }
  Actions Started(int pid = 100) {
    return H(core::EtcdStarted{starts_.back().incarnation, pid, now_});
  }
  Actions Exited(const std::string& how = "exited with status 1", const std::string& tail = "") {
    return H(core::EtcdExited{starts_.back().incarnation, how, tail, now_});
  }
  Actions Probe(std::optional<core::ProbeFacts> facts) {
    return H(core::ProbeResult{starts_.back().incarnation, facts, facts ? "" : "refused", now_});
  }
  // Launch, start, first successful probe: TASK_RUNNING sent.
  void Run(TaskConfig c = Config()) {
    Launch(c);
    Started();
    Fire(core::TimerId::kProbe);
    auto out = Probe(Serving());
    ASSERT_EQ(Statuses(out).size(), 1u);
    ASSERT_EQ(Statuses(out)[0].state(), mesos::TASK_RUNNING);
  }

  core::CoreOptions options_;
  core::Supervisor sup_;
  core::Time now_ = core::Time{} + 1000s;
  std::map<core::TimerId, core::ArmTimer> timers_;
  std::vector<core::StartEtcd> starts_;
};

TEST_F(SupervisorTest, LaunchStartsTheListenerAndEtcdThenReportsStarting) {
  auto out = Launch();
  ASSERT_EQ(out.size(), 2u);
  auto listener = std::get_if<core::StartReseedListener>(&out[0]);
  ASSERT_NE(listener, nullptr);
  EXPECT_EQ(listener->config.reseed_port, 31003);
  auto start = std::get_if<core::StartEtcd>(&out[1]);
  ASSERT_NE(start, nullptr);
  EXPECT_TRUE(start->new_cluster);
  EXPECT_FALSE(start->force_new_cluster);
  EXPECT_EQ(start->config, Config());
  EXPECT_TRUE(Statuses(out).empty()) << "nothing is reported before etcd runs";

  out = Started(4242);
  auto statuses = Statuses(out);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].state(), mesos::TASK_STARTING);
  EXPECT_EQ(statuses[0].task_id().value(), "etcd-2-task");
  EXPECT_FALSE(statuses[0].has_healthy());
  EXPECT_EQ(sup_.etcd_pid(), 4242);
  auto arm = One<core::ArmTimer>(out);
  ASSERT_TRUE(arm);
  EXPECT_EQ(arm->id, core::TimerId::kProbe);
  EXPECT_EQ(arm->after, 100ms);
}

TEST_F(SupervisorTest, RunningOnlyAfterTheFirstProbeTheMemberAnswers) {
  Launch();
  Started();
  for (int i = 0; i < 5; ++i) {
    auto fired = Fire(core::TimerId::kProbe);
    ASSERT_TRUE(One<core::Probe>(fired));
    auto out = Probe(std::nullopt);
    EXPECT_TRUE(Statuses(out).empty()) << "no RUNNING while etcd does not answer";
    EXPECT_EQ(One<core::ArmTimer>(out)->after, 100ms) << "fast probes until it serves";
  }
  Fire(core::TimerId::kProbe);
  auto out = Probe(Serving());
  auto statuses = Statuses(out);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].state(), mesos::TASK_RUNNING);
  ASSERT_TRUE(statuses[0].has_healthy());
  EXPECT_TRUE(statuses[0].healthy());
  auto facts = ParseMemberFacts(statuses[0].data());
  ASSERT_TRUE(facts.ok()) << facts.error();
  EXPECT_EQ(facts->member_id, 7u);
  EXPECT_EQ(facts->leader, 7u);
  EXPECT_EQ(facts->raft_index, 10u);
  EXPECT_TRUE(facts->serving);
  EXPECT_EQ(facts->name, "etcd-2");
  EXPECT_EQ(One<core::ArmTimer>(out)->after, 1000ms) << "health_interval once serving";
}

TEST_F(SupervisorTest, HealthFollowsLeaderErrorsAndHealthAndALearnerIsJudgedByStatus) {
  Run();
  auto no_leader = Serving(11, 0);
  auto out = Probe(no_leader);
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_FALSE(Statuses(out)[0].healthy());
  auto alarm = Serving(12, 0);
  alarm.errors = {"memberID:7 alarm:NOSPACE "};
  EXPECT_TRUE(Statuses(Probe(alarm)).empty()) << "still unhealthy: nothing new to say";
  out = Probe(Serving(13));
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_TRUE(Statuses(out)[0].healthy());
  auto bad_health = Serving(14);
  bad_health.health = false;
  out = Probe(bad_health);
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_FALSE(Statuses(out)[0].healthy());
  auto learner = Serving(15);
  learner.is_learner = true;
  learner.health.reset();
  learner.member_count.reset();
  out = Probe(learner);
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_TRUE(Statuses(out)[0].healthy());
  EXPECT_TRUE(ParseMemberFacts(Statuses(out)[0].data())->is_learner);
}

TEST_F(SupervisorTest, StatusIsSentOnChangesThatMatterAndNeverForIndexOnlyChanges) {
  Run();
  // The raft index moves on every probe (etcd's /health writes entries): real Mesos carried an
  // update every 10 s from every member for ever. None goes out, however long it runs.
  int sent = 0;
  for (int i = 0; i < 600; ++i) {
    Advance(1s);
    sent += static_cast<int>(Statuses(Probe(Serving(100 + i))).size());
  }
  EXPECT_EQ(sent, 0) << "10 minutes of index-only changes";
  Advance(20s);
  EXPECT_TRUE(Statuses(Probe(Serving(800))).empty());
  // A leader change goes out at once.
  Advance(1s);
  auto out = Probe(Serving(801, 8));
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_EQ(ParseMemberFacts(Statuses(out)[0].data())->leader, 8u);
  EXPECT_EQ(ParseMemberFacts(Statuses(out)[0].data())->raft_index, 801u) << "facts of the moment";
  // Each says why it went out: two in a row with the same `healthy` are no mystery.
  EXPECT_EQ(Statuses(out)[0].message(), "leader is now 8");
  // Learner -> voter at once.
  auto learner = Serving(802, 8);
  learner.is_learner = true;
  out = Probe(learner);
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_EQ(Statuses(out)[0].message(), "a learner");
  out = Probe(Serving(803, 8));
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_EQ(Statuses(out)[0].message(), "promoted to voter");
  // Healthy flips at once, both ways.
  EXPECT_EQ(Statuses(Probe(std::nullopt)).size(), 1u);
  out = Probe(Serving(804, 8));
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_TRUE(Statuses(out)[0].healthy());
  EXPECT_EQ(Statuses(out)[0].message(), "healthy; answers");
}

TEST_F(SupervisorTest, AnEtcdThatStopsAnsweringIsReportedOnceNotOnEveryProbe) {
  Run();
  Advance(1s);
  auto out = Probe(std::nullopt);
  ASSERT_EQ(Statuses(out).size(), 1u) << "the change to not serving goes out at once";
  EXPECT_FALSE(Statuses(out)[0].healthy());
  EXPECT_NE(Statuses(out)[0].message().find("etcd does not answer: refused"), std::string::npos);
  int more = 0;
  for (int i = 0; i < 30; ++i) {
    Advance(1s);
    more += static_cast<int>(Statuses(Probe(std::nullopt)).size());
  }
  EXPECT_EQ(more, 0) << "30 s of silence after the first report: nothing new to tell";
  Advance(1s);
  out = Probe(Serving());
  ASSERT_EQ(Statuses(out).size(), 1u) << "answering again goes out at once";
  EXPECT_TRUE(Statuses(out)[0].healthy());
}

TEST_F(SupervisorTest, ExistingStateWhenTheTaskSaysSo) {
  TaskConfig c = Config();
  c.initial_cluster_state = InitialClusterState::kExisting;
  Launch(c);
  EXPECT_FALSE(starts_.back().new_cluster);
}

TEST_F(SupervisorTest, MalformedTaskDataFailsTheTaskNamingTheFieldAndExits) {
  auto doc = nlohmann::json::parse(EncodeTaskConfig(Config()));
  doc["client_port"] = "x";
  auto out = H(core::Launched{Task(doc.dump()), now_});
  auto statuses = Statuses(out);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].state(), mesos::TASK_FAILED);
  EXPECT_EQ(statuses[0].reason(), mesos::TaskStatus::REASON_TASK_INVALID);
  EXPECT_NE(statuses[0].message().find("client_port"), std::string::npos);
  EXPECT_TRUE(All<core::StartEtcd>(out).empty());
  ASSERT_TRUE(One<core::Exit>(out));
  EXPECT_EQ(One<core::Exit>(out)->code, 1);
  EXPECT_TRUE(sup_.done());
  EXPECT_TRUE(sup_.Handle(core::ShutdownRequested{1s, now_}).empty());
}

TEST_F(SupervisorTest, ASecondTaskIsRefused) {
  Run();
  auto out = H(core::Launched{Task(EncodeTaskConfig(Config()), "other"), now_});
  auto statuses = Statuses(out);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].task_id().value(), "other");
  EXPECT_EQ(statuses[0].state(), mesos::TASK_FAILED);
  EXPECT_TRUE(All<core::StartEtcd>(out).empty());
  EXPECT_TRUE(All<core::SignalEtcd>(out).empty());
}

TEST_F(SupervisorTest, UnexpectedExitRestartsInPlaceWithCappedExponentialBackoff) {
  TaskConfig c = Config();
  c.restart_max = 100;
  Run(c);
  std::vector<Duration> delays;
  for (int i = 0; i < 6; ++i) {
    auto out = Exited("killed by signal 9 (Killed)");
    if (i == 0) {
      auto statuses = Statuses(out);
      ASSERT_EQ(statuses.size(), 1u);
      EXPECT_EQ(statuses[0].state(), mesos::TASK_RUNNING);
      EXPECT_FALSE(statuses[0].healthy());
      EXPECT_NE(statuses[0].message().find("killed by signal 9"), std::string::npos);
      EXPECT_FALSE(ParseMemberFacts(statuses[0].data())->serving);
    }
    auto arm = One<core::ArmTimer>(out);
    ASSERT_TRUE(arm);
    ASSERT_EQ(arm->id, core::TimerId::kRestart);
    delays.push_back(arm->after);
    EXPECT_TRUE(All<core::StartEtcd>(out).empty()) << "not before the backoff";
    auto fired = Fire(core::TimerId::kRestart);
    auto start = One<core::StartEtcd>(fired);
    ASSERT_TRUE(start);
    EXPECT_FALSE(start->new_cluster) << "after serving once, it restarts as an existing member";
    EXPECT_FALSE(start->force_new_cluster);
    auto started = Started(200 + i);
    EXPECT_TRUE(Statuses(started).empty()) << "no second TASK_STARTING";
  }
  std::vector<Duration> want = {250ms, 500ms, 1000ms, 2000ms, 2000ms, 2000ms};
  EXPECT_EQ(delays, want);
  // Serving again is reported at once (healthy flips back).
  Fire(core::TimerId::kProbe);
  auto out = Probe(Serving(50));
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_TRUE(Statuses(out)[0].healthy());
}

TEST_F(SupervisorTest, StartBeforeServingKeepsTheNewClusterState) {
  Launch();
  Started();
  Exited();
  auto out = Fire(core::TimerId::kRestart);
  ASSERT_TRUE(One<core::StartEtcd>(out));
  EXPECT_TRUE(One<core::StartEtcd>(out)->new_cluster);
}

TEST_F(SupervisorTest, CrashLoopFailsTheTaskWithExitStatusAndLogTail) {
  TaskConfig c = Config();
  c.restart_max = 2;
  c.restart_window = 60s;
  Run(c);
  Exited();
  Fire(core::TimerId::kRestart);
  Started();
  Exited();
  Fire(core::TimerId::kRestart);
  Started();
  auto out = Exited("exited with status 2", "line one\npanic: boom");
  auto statuses = Statuses(out);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].state(), mesos::TASK_FAILED);
  EXPECT_NE(statuses[0].message().find("crash loop"), std::string::npos) << statuses[0].message();
  EXPECT_NE(statuses[0].message().find("exited with status 2"), std::string::npos);
  EXPECT_NE(statuses[0].message().find("panic: boom"), std::string::npos);
  ASSERT_TRUE(One<core::Exit>(out));
  EXPECT_EQ(One<core::Exit>(out)->code, 1);
  EXPECT_TRUE(All<core::StartEtcd>(out).empty());
}

TEST_F(SupervisorTest, RestartsOutsideTheWindowDoNotCount) {
  TaskConfig c = Config();
  c.restart_max = 2;
  c.restart_window = 60s;
  Run(c);
  for (int i = 0; i < 10; ++i) {
    auto out = Exited();
    ASSERT_TRUE(Statuses(out).empty() || Statuses(out)[0].state() == mesos::TASK_RUNNING) << i;
    auto arm = One<core::ArmTimer>(out);
    ASSERT_TRUE(arm);
    EXPECT_LE(arm->after, 500ms) << "the backoff resets as old restarts leave the window";
    Fire(core::TimerId::kRestart);
    Started();
    Advance(31s);
  }
}

TEST_F(SupervisorTest, ZeroRestartsAllowedFailsAtTheFirstExit) {
  TaskConfig c = Config();
  c.restart_max = 0;
  Run(c);
  auto out = Exited();
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_EQ(Statuses(out)[0].state(), mesos::TASK_FAILED);
}

TEST_F(SupervisorTest, StartFailureCountsAsAnExit) {
  TaskConfig c = Config();
  c.restart_max = 1;
  Launch(c);
  auto out =
      H(core::EtcdStartFailed{starts_.back().incarnation, "exec failed: No such file", "", now_});
  ASSERT_TRUE(One<core::ArmTimer>(out));
  Fire(core::TimerId::kRestart);
  out = H(core::EtcdStartFailed{starts_.back().incarnation, "exec failed: No such file", "", now_});
  auto statuses = Statuses(out);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].state(), mesos::TASK_FAILED);
  EXPECT_NE(statuses[0].message().find("No such file"), std::string::npos);
}

TEST_F(SupervisorTest, StartingIsReportedOnceEvenWhenTheFirstStartFailed) {
  Launch();
  auto out =
      H(core::EtcdStartFailed{starts_.back().incarnation, "exec failed: Text file busy", "", now_});
  EXPECT_TRUE(Statuses(out).empty());
  Fire(core::TimerId::kRestart);
  out = Started();
  auto statuses = Statuses(out);
  ASSERT_EQ(statuses.size(), 1u) << "the second attempt started etcd: TASK_STARTING";
  EXPECT_EQ(statuses[0].state(), mesos::TASK_STARTING);
  Exited();
  Fire(core::TimerId::kRestart);
  EXPECT_TRUE(Statuses(Started()).empty()) << "TASK_STARTING goes out once per task";
}

TEST_F(SupervisorTest, KillStopsEtcdWithTermThenReportsKilled) {
  Run();
  auto out = H(core::KillRequested{"etcd-2-task", 2s, now_});
  ASSERT_EQ(All<core::SignalEtcd>(out).size(), 1u);
  EXPECT_EQ(One<core::SignalEtcd>(out)->signal, core::Signal::kTerm);
  EXPECT_EQ(One<core::ArmTimer>(out)->id, core::TimerId::kStopGrace);
  EXPECT_EQ(One<core::ArmTimer>(out)->after, 2s);
  EXPECT_TRUE(Statuses(out).empty()) << "KILLED only once etcd is gone";
  EXPECT_TRUE(H(core::KillRequested{"etcd-2-task", 2s, now_}).empty()) << "a second kill waits";
  out = Exited("killed by signal 15 (Terminated)");
  auto statuses = Statuses(out);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].state(), mesos::TASK_KILLED);
  ASSERT_TRUE(One<core::Exit>(out));
  EXPECT_EQ(One<core::Exit>(out)->code, 0);
  EXPECT_TRUE(All<core::StartEtcd>(out).empty());
}

TEST_F(SupervisorTest, KillGraceExpiryEscalatesToSigkill) {
  Run();
  H(core::KillRequested{"etcd-2-task", std::nullopt, now_});
  EXPECT_EQ(timers_[core::TimerId::kStopGrace].after, 5s) << "default grace";
  auto out = Fire(core::TimerId::kStopGrace);
  ASSERT_TRUE(One<core::SignalEtcd>(out));
  EXPECT_EQ(One<core::SignalEtcd>(out)->signal, core::Signal::kKill);
  out = Exited("killed by signal 9 (Killed)");
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_EQ(Statuses(out)[0].state(), mesos::TASK_KILLED);
}

TEST_F(SupervisorTest, KillWhileEtcdIsBeingStartedStopsItOnceStarted) {
  Launch();
  auto out = H(core::KillRequested{"etcd-2-task", 1s, now_});
  EXPECT_TRUE(All<core::SignalEtcd>(out).empty()) << "no pid to signal yet";
  EXPECT_TRUE(Statuses(out).empty());
  out = Started();
  ASSERT_TRUE(One<core::SignalEtcd>(out));
  EXPECT_EQ(One<core::SignalEtcd>(out)->signal, core::Signal::kTerm);
  EXPECT_TRUE(Statuses(out).empty()) << "no TASK_STARTING for a task being killed";
  out = Exited();
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_EQ(Statuses(out)[0].state(), mesos::TASK_KILLED);
}

TEST_F(SupervisorTest, KillBeforeEtcdServes) {
  Launch();
  Started();
  auto out = H(core::KillRequested{"etcd-2-task", 1s, now_});
  ASSERT_TRUE(One<core::SignalEtcd>(out));
  // A probe answer arriving now is ignored: the task is stopping.
  EXPECT_TRUE(Statuses(Probe(Serving())).empty());
  out = Exited();
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_EQ(Statuses(out)[0].state(), mesos::TASK_KILLED);
}

TEST_F(SupervisorTest, KillDuringRestartBackoffIsImmediate) {
  Run();
  Exited();
  auto out = H(core::KillRequested{"etcd-2-task", 1s, now_});
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_EQ(Statuses(out)[0].state(), mesos::TASK_KILLED);
  EXPECT_TRUE(One<core::Exit>(out));
  EXPECT_TRUE(Fire(core::TimerId::kRestart).empty()) << "the restart timer is dead";
}

TEST_F(SupervisorTest, KillOfAnotherTaskIsIgnored) {
  Run();
  auto out = H(core::KillRequested{"someone-else", 1s, now_});
  EXPECT_TRUE(All<core::SignalEtcd>(out).empty());
  EXPECT_TRUE(Statuses(out).empty());
}

TEST_F(SupervisorTest, ShutdownStopsLikeKillAndWithoutATaskJustExits) {
  Run();
  auto out = H(core::ShutdownRequested{4s, now_});
  ASSERT_TRUE(One<core::SignalEtcd>(out));
  EXPECT_EQ(timers_[core::TimerId::kStopGrace].after, 4s);
  out = Exited();
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_EQ(Statuses(out)[0].state(), mesos::TASK_KILLED);

  core::Supervisor idle(options_);
  out = idle.Handle(core::ShutdownRequested{4s, now_});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<core::Exit>(out[0]));
}

TEST_F(SupervisorTest, StaleEventsAreIgnored) {
  Run();
  uint64_t old = starts_.back().incarnation;
  auto probe_token = timers_[core::TimerId::kProbe].token;
  Exited();
  Fire(core::TimerId::kRestart);
  Started();
  EXPECT_TRUE(H(core::EtcdExited{old, "exited with status 1", "", now_}).empty());
  EXPECT_TRUE(H(core::ProbeResult{old, std::nullopt, "x", now_}).empty());
  EXPECT_TRUE(H(core::EtcdStarted{old, 5, now_}).empty());
  EXPECT_TRUE(H(core::TimerFired{core::TimerId::kProbe, probe_token, now_}).empty());
  EXPECT_TRUE(H(core::TimerFired{core::TimerId::kRestart, 12345, now_}).empty());
}

TEST_F(SupervisorTest, AgentDisconnectionKeepsEtcdRunningAndLossStopsItWithoutAStatus) {
  Run();
  auto out = H(core::AgentDisconnected{"connection reset", now_});
  EXPECT_TRUE(All<core::SignalEtcd>(out).empty());
  EXPECT_TRUE(Statuses(out).empty());
  H(core::AgentReconnected{now_});
  Advance(1s);
  EXPECT_EQ(Statuses(Probe(Serving(10, 0))).size(), 1u) << "facts keep flowing (queued)";
  out = H(core::AgentLost{"recovery timeout", now_});
  ASSERT_TRUE(One<core::SignalEtcd>(out));
  EXPECT_EQ(timers_[core::TimerId::kStopGrace].after, 3s);
  out = Exited();
  EXPECT_TRUE(Statuses(out).empty()) << "nobody to tell";
  ASSERT_TRUE(One<core::Exit>(out));
  EXPECT_EQ(One<core::Exit>(out)->code, 2);
}

TEST_F(SupervisorTest, ReseedListenerFailureFailsTheTask) {
  Launch();
  Started();
  auto out = H(core::ReseedListenerFailed{"address in use", now_});
  ASSERT_TRUE(One<core::SignalEtcd>(out));
  out = Exited("killed by signal 15 (Terminated)");
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_EQ(Statuses(out)[0].state(), mesos::TASK_FAILED);
  EXPECT_NE(Statuses(out)[0].message().find("address in use"), std::string::npos);
}

// The whole reseed: stop, --force-new-cluster until one member leads itself, stop, restart
// without the flag until healthy, answer.
TEST_F(SupervisorTest, ReseedRunsEveryStepInOrder) {
  Run();
  Advance(5s);
  Probe(Serving(20, 0));  // quorum lost: no leader
  auto requested_at = now_;
  auto out = H(core::ReseedRequested{1, std::nullopt, now_});
  ASSERT_TRUE(One<core::SignalEtcd>(out));
  EXPECT_EQ(One<core::SignalEtcd>(out)->signal, core::Signal::kTerm);
  EXPECT_TRUE(All<core::AnswerReseed>(out).empty());
  EXPECT_TRUE(sup_.reseeding());
  EXPECT_EQ(timers_[core::TimerId::kReseedDeadline].after, 30s);
  EXPECT_EQ(timers_[core::TimerId::kStopGrace].after, 7s);

  out = Exited("killed by signal 15 (Terminated)");
  auto start = One<core::StartEtcd>(out);
  ASSERT_TRUE(start) << "no backoff for a planned stop";
  EXPECT_TRUE(start->force_new_cluster);
  EXPECT_FALSE(start->new_cluster);
  Started();
  Fire(core::TimerId::kProbe);
  EXPECT_EQ(timers_[core::TimerId::kProbe].after, 100ms);
  out = Probe(Serving(21, 0, 3));
  EXPECT_TRUE(All<core::SignalEtcd>(out).empty()) << "not yet a one-member cluster";
  EXPECT_TRUE(Statuses(out).empty()) << "no status noise during a reseed";
  out = Probe(Serving(22, 7, 1));
  ASSERT_TRUE(One<core::SignalEtcd>(out)) << "one member leading itself: stop the forced run";

  out = Exited("killed by signal 15 (Terminated)");
  start = One<core::StartEtcd>(out);
  ASSERT_TRUE(start);
  EXPECT_FALSE(start->force_new_cluster) << "the last start is without the flag";
  Started();
  auto unhealthy = Serving(23, 0, 1);
  EXPECT_TRUE(All<core::AnswerReseed>(Probe(unhealthy)).empty());
  Advance(1500ms);
  out = Probe(Serving(24, 7, 1));
  auto answer = One<core::AnswerReseed>(out);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->request_id, 1u);
  EXPECT_EQ(answer->outcome, core::ReseedOutcome::kReseeded);
  EXPECT_EQ(answer->facts.raft_index, 24u);
  EXPECT_EQ(answer->took, now_ - requested_at);
  EXPECT_GE(answer->took, 1500ms);
  EXPECT_FALSE(sup_.reseeding());
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_TRUE(Statuses(out)[0].healthy());

  // Later crashes restart without the flag.
  Exited();
  out = Fire(core::TimerId::kRestart);
  ASSERT_TRUE(One<core::StartEtcd>(out));
  EXPECT_FALSE(One<core::StartEtcd>(out)->force_new_cluster);
  EXPECT_TRUE(Fire(core::TimerId::kReseedDeadline).empty()) << "the deadline is disarmed";
}

TEST_F(SupervisorTest, ReseedIsOneAtATimeAndOnlyForARunningTask) {
  core::Supervisor idle(options_);
  auto out = idle.Handle(core::ReseedRequested{9, std::nullopt, now_});
  ASSERT_TRUE(One<core::AnswerReseed>(out));
  EXPECT_EQ(One<core::AnswerReseed>(out)->outcome, core::ReseedOutcome::kNotRunning);
  Run();
  H(core::ReseedRequested{1, std::nullopt, now_});
  out = H(core::ReseedRequested{2, std::nullopt, now_});
  ASSERT_TRUE(One<core::AnswerReseed>(out));
  EXPECT_EQ(One<core::AnswerReseed>(out)->request_id, 2u);
  EXPECT_EQ(One<core::AnswerReseed>(out)->outcome, core::ReseedOutcome::kBusy);
  EXPECT_TRUE(All<core::SignalEtcd>(out).empty());
}

TEST_F(SupervisorTest, ReseedDeadlineFailsItAndEtcdComesBackWithoutTheFlag) {
  Run();
  H(core::ReseedRequested{1, 10s, now_});
  EXPECT_EQ(timers_[core::TimerId::kReseedDeadline].after, 10s);
  auto out = Fire(core::TimerId::kReseedDeadline);
  auto answer = One<core::AnswerReseed>(out);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->outcome, core::ReseedOutcome::kFailed);
  EXPECT_NE(answer->message.find("timed out"), std::string::npos);
  EXPECT_NE(answer->message.find("stopping etcd"), std::string::npos) << answer->message;
  out = Exited("killed by signal 15 (Terminated)");
  auto start = One<core::StartEtcd>(out);
  ASSERT_TRUE(start) << "back at once, not as a crash";
  EXPECT_FALSE(start->force_new_cluster);
}

TEST_F(SupervisorTest, CrashDuringTheForcedRunFailsTheReseedAndRestartsNormally) {
  Run();
  H(core::ReseedRequested{1, std::nullopt, now_});
  Exited("killed by signal 15 (Terminated)");
  Started();
  auto out = Exited("exited with status 1");
  auto answer = One<core::AnswerReseed>(out);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->outcome, core::ReseedOutcome::kFailed);
  EXPECT_NE(answer->message.find("force-new-cluster"), std::string::npos) << answer->message;
  out = Fire(core::TimerId::kRestart);
  ASSERT_TRUE(One<core::StartEtcd>(out));
  EXPECT_FALSE(One<core::StartEtcd>(out)->force_new_cluster);
}

TEST_F(SupervisorTest, ReseedDuringABackoffStartsTheForcedRunAtOnce) {
  Run();
  Exited();
  auto out = H(core::ReseedRequested{1, std::nullopt, now_});
  ASSERT_TRUE(One<core::StartEtcd>(out));
  EXPECT_TRUE(One<core::StartEtcd>(out)->force_new_cluster);
  EXPECT_TRUE(Fire(core::TimerId::kRestart).empty()) << "the backoff restart is cancelled";
}

TEST_F(SupervisorTest, KillDuringAReseedAnswersItAndKills) {
  Run();
  H(core::ReseedRequested{1, std::nullopt, now_});
  Exited("killed by signal 15 (Terminated)");
  Started();
  auto out = H(core::KillRequested{"etcd-2-task", 2s, now_});
  ASSERT_TRUE(One<core::AnswerReseed>(out));
  EXPECT_EQ(One<core::AnswerReseed>(out)->outcome, core::ReseedOutcome::kFailed);
  ASSERT_TRUE(One<core::SignalEtcd>(out));
  out = Exited();
  ASSERT_EQ(Statuses(out).size(), 1u);
  EXPECT_EQ(Statuses(out)[0].state(), mesos::TASK_KILLED);
  EXPECT_TRUE(All<core::StartEtcd>(out).empty());
}

TEST_F(SupervisorTest, KillWhileAReseedStopsEtcdUsesTheKillGrace) {
  Run();
  H(core::ReseedRequested{1, std::nullopt, now_});
  EXPECT_EQ(timers_[core::TimerId::kStopGrace].after, 7s);
  H(core::KillRequested{"etcd-2-task", 1s, now_});
  EXPECT_EQ(timers_[core::TimerId::kStopGrace].after, 1s);
  auto out = Fire(core::TimerId::kStopGrace);
  ASSERT_TRUE(One<core::SignalEtcd>(out));
  EXPECT_EQ(One<core::SignalEtcd>(out)->signal, core::Signal::kKill);
  out = Exited();
  EXPECT_EQ(Statuses(out)[0].state(), mesos::TASK_KILLED);
}

}  // namespace
}  // namespace etcd_mesos::executor
