// The stored form of the scheduler's state: round trips, and corrupt records refused with an
// error that names the field (never a crash, never a half-read state).
#include "scheduler/shell/state_codec.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace etcd_mesos::scheduler::shell {
namespace {

using json = nlohmann::json;

Member SampleMember(std::string name, uint16_t base) {
  Member m;
  m.name = std::move(name);
  m.host = "10.0.0.7";
  m.peer_port = base;
  m.client_port = base + 1;
  m.reseed_port = base + 2;
  m.task_id = FormatTaskId(m);
  m.agent_id = "agent-" + m.name;
  m.member_id = 18446744073709551557ull;  // above 2^53: must survive as a string
  m.generation = 4;
  m.learner = true;
  m.initial = false;
  m.task_state = mesos::TASK_RUNNING;
  m.launch_config = "lc-0123456789abcdef";
  m.etcd_version = "3.4.23";
  return m;
}

PersistentState Sample() {
  PersistentState s;
  s.framework_id = "fw-1234-0001";
  s.members["etcd-3"] = SampleMember("etcd-3", 31000);
  s.members["etcd-4"] = SampleMember("etcd-4", 31100);
  s.members["etcd-4"].learner = false;
  s.members["etcd-4"].initial = true;
  s.members["etcd-4"].task_state = mesos::TASK_UNREACHABLE;
  s.next_member = 5;
  s.generation = 4;
  s.bootstrapped = true;
  s.reseed_token = "tok-abc";
  s.counters.launched_servers = 1;
  s.counters.failed_servers = 2;
  s.counters.lost_servers = 3;
  s.counters.cluster_livelocks = 4;
  s.counters.cluster_reseeds = 5;
  s.counters.reseed_attempts = 6;
  s.counters.members_added = 7;
  s.counters.members_promoted = 8;
  s.counters.members_removed = 9;
  return s;
}

void ExpectSameMember(const Member& a, const Member& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.task_id, b.task_id);
  EXPECT_EQ(a.agent_id, b.agent_id);
  EXPECT_EQ(a.host, b.host);
  EXPECT_EQ(a.peer_port, b.peer_port);
  EXPECT_EQ(a.client_port, b.client_port);
  EXPECT_EQ(a.reseed_port, b.reseed_port);
  EXPECT_EQ(a.member_id, b.member_id);
  EXPECT_EQ(a.generation, b.generation);
  EXPECT_EQ(a.learner, b.learner);
  EXPECT_EQ(a.initial, b.initial);
  EXPECT_EQ(a.task_state, b.task_state);
  EXPECT_EQ(a.launch_config, b.launch_config);
  EXPECT_EQ(a.etcd_version, b.etcd_version);
}

TEST(SchedulerStateCodec, RoundTripsEveryPersistedField) {
  PersistentState s = Sample();
  auto decoded = DecodeState(EncodeState(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_EQ(decoded->framework_id, s.framework_id);
  EXPECT_EQ(decoded->next_member, 5u);
  EXPECT_EQ(decoded->generation, 4u);
  EXPECT_TRUE(decoded->bootstrapped);
  EXPECT_EQ(decoded->reseed_token, "tok-abc");
  EXPECT_EQ(decoded->restore_snapshot, "");
  EXPECT_EQ(decoded->counters.launched_servers, 1u);
  EXPECT_EQ(decoded->counters.failed_servers, 2u);
  EXPECT_EQ(decoded->counters.lost_servers, 3u);
  EXPECT_EQ(decoded->counters.cluster_livelocks, 4u);
  EXPECT_EQ(decoded->counters.cluster_reseeds, 5u);
  EXPECT_EQ(decoded->counters.reseed_attempts, 6u);
  EXPECT_EQ(decoded->counters.members_added, 7u);
  EXPECT_EQ(decoded->counters.members_promoted, 8u);
  EXPECT_EQ(decoded->counters.members_removed, 9u);
  ASSERT_EQ(decoded->members.size(), 2u);
  for (const auto& [name, m] : s.members) ExpectSameMember(decoded->members.at(name), m);
}

// A rollout under way (or stopped, with its reason) and the rolling restarts asked survive a
// restart; a record without them (older, or none asked) reads as none; a bad one is named.
TEST(SchedulerStateCodec, TheRolloutAndTheRestartsAreKept) {
  PersistentState s = Sample();
  s.rollout_target = "lc-1+restart2";
  s.rollout_stopped = "replacing etcd-3 did not finish within 600 s";
  s.rollout_total = 3;
  s.restarts = 2;
  s.counters.rollouts_done = 4;
  s.counters.rollouts_stopped = 5;
  s.counters.members_rolled = 6;
  auto decoded = DecodeState(EncodeState(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_EQ(decoded->rollout_target, s.rollout_target);
  EXPECT_EQ(decoded->rollout_stopped, s.rollout_stopped);
  EXPECT_EQ(decoded->rollout_total, 3u);
  EXPECT_FALSE(decoded->rollout_done);
  EXPECT_EQ(decoded->restarts, 2u);
  EXPECT_EQ(decoded->counters.rollouts_done, 4u);
  EXPECT_EQ(decoded->counters.rollouts_stopped, 5u);
  EXPECT_EQ(decoded->counters.members_rolled, 6u);
  json j = json::parse(EncodeState(Sample()));
  EXPECT_FALSE(j.contains("rollout"));
  for (auto& m : j["members"]) m.erase("launch_config");
  auto older = DecodeState(j.dump());
  ASSERT_TRUE(older.ok()) << older.error();
  EXPECT_EQ(older->restarts, 0u);
  EXPECT_TRUE(older->members.at("etcd-3").launch_config.empty());
  j["rollout"] = json{{"target", ""}, {"stopped", ""}, {"total", 1}, {"done", false}};
  auto bad = DecodeState(j.dump());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("rollout.target"), std::string::npos) << bad.error();
}

// A CA rotation under way survives a restart in its phase, and the generation of a finished one
// too (it is part of the launch configuration members run); none reads as generation 0; a bad
// phase is named.
TEST(SchedulerStateCodec, TheCaRotationIsKept) {
  for (CaPhase phase :
       {CaPhase::kTrustBoth, CaPhase::kNewIssuer, CaPhase::kDropOld, CaPhase::kNone}) {
    PersistentState s = Sample();
    s.ca = {2, phase};
    auto decoded = DecodeState(EncodeState(s));
    ASSERT_TRUE(decoded.ok()) << decoded.error();
    EXPECT_EQ(decoded->ca.generation, 2u);
    EXPECT_EQ(decoded->ca.phase, phase) << CaPhaseName(phase);
  }
  json j = json::parse(EncodeState(Sample()));
  EXPECT_FALSE(j.contains("ca")) << "a cluster that never rotated writes what it wrote before";
  auto none = DecodeState(j.dump());
  ASSERT_TRUE(none.ok()) << none.error();
  EXPECT_EQ(none->ca.generation, 0u);
  EXPECT_EQ(none->ca.phase, CaPhase::kNone);
  j["ca"] = json{{"generation", 1}, {"phase", "half-done"}};
  auto bad = DecodeState(j.dump());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("ca.phase"), std::string::npos) << bad.error();
}

// The CA files recorded with --tls=files are kept (issuer, trusted, changes); a record without
// them reads as none; a malformed one is named.
TEST(SchedulerStateCodec, TheCaFilesAreKept) {
  PersistentState s = Sample();
  s.ca_files = {"AA:01", {"AA:01", "BB:02"}, 2};
  auto decoded = DecodeState(EncodeState(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_EQ(decoded->ca_files.issuer, "AA:01");
  EXPECT_EQ(decoded->ca_files.trusted, (std::vector<std::string>{"AA:01", "BB:02"}));
  EXPECT_EQ(decoded->ca_files.changes, 2u);
  json j = json::parse(EncodeState(Sample()));
  EXPECT_FALSE(j.contains("ca_files"));
  auto none = DecodeState(j.dump());
  ASSERT_TRUE(none.ok()) << none.error();
  EXPECT_TRUE(none->ca_files.issuer.empty());
  j["ca_files"] = json{{"issuer", "AA:01"}, {"trusted", json::array()}, {"changes", 0}};
  auto bad = DecodeState(j.dump());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("ca_files.trusted"), std::string::npos) << bad.error();
}

// The generated admin token is kept so that every restart and instance guards the commands with
// the one the operators were told of; an older record without it reads as none (generated then);
// a token that is not a string is named.
// A TLS member keeps its scheme, its agent's host name and its certificates' expiry; a plain
// member (and an older record) has none; a bad expiry is named.
TEST(SchedulerStateCodec, AMembersTlsIsKept) {
  PersistentState s = Sample();
  Member& m = s.members.at("etcd-3");
  m.tls = true;
  m.hostname = "agent-3.example";
  m.cert_not_after = 1'900'000'000;
  auto decoded = DecodeState(EncodeState(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  const Member& back = decoded->members.at("etcd-3");
  EXPECT_TRUE(back.tls);
  EXPECT_EQ(back.hostname, "agent-3.example");
  EXPECT_EQ(back.cert_not_after, 1'900'000'000);
  EXPECT_EQ(back.ClientUrl(), "https://" + m.host + ":" + std::to_string(m.client_port));
  const Member& plain = decoded->members.at("etcd-4");
  EXPECT_FALSE(plain.tls);
  EXPECT_EQ(plain.cert_not_after, 0);
  json j = json::parse(EncodeState(s));
  EXPECT_FALSE(j["members"][1].contains("tls")) << "a plain member's record is as before";
  j["members"][0]["cert_not_after"] = "soon";
  auto bad = DecodeState(j.dump());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("members[0].cert_not_after"), std::string::npos)
      << bad.error();
}

TEST(SchedulerStateCodec, TheAdminTokenIsKept) {
  PersistentState s = Sample();
  s.admin_token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  auto decoded = DecodeState(EncodeState(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_EQ(decoded->admin_token, s.admin_token);
  json j = json::parse(EncodeState(Sample()));
  EXPECT_FALSE(j.contains("admin_token"));
  auto older = DecodeState(j.dump());
  ASSERT_TRUE(older.ok()) << older.error();
  EXPECT_TRUE(older->admin_token.empty());
  j["admin_token"] = 42;
  auto bad = DecodeState(j.dump());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("admin_token"), std::string::npos) << bad.error();
}

// A teardown under way is on record: a scheduler restarted halfway finishes it.
TEST(SchedulerStateCodec, ATeardownUnderWayIsKept) {
  PersistentState s = Sample();
  s.tearing_down = true;
  auto decoded = DecodeState(EncodeState(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_TRUE(decoded->tearing_down);
  json j = json::parse(EncodeState(Sample()));
  EXPECT_FALSE(j.contains("tearing_down")) << "a record without one is as before";
  auto older = DecodeState(j.dump());
  ASSERT_TRUE(older.ok()) << older.error();
  EXPECT_FALSE(older->tearing_down);
  j["tearing_down"] = "yes";
  auto bad = DecodeState(j.dump());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("tearing_down"), std::string::npos) << bad.error();
}

TEST(SchedulerStateCodec, APendingRestoreIsKept) {
  PersistentState s = Sample();
  s.restore_snapshot = "etcd-c-20261124T223005Z-rev9-00000000000000ab.db";
  auto decoded = DecodeState(EncodeState(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_EQ(decoded->restore_snapshot, s.restore_snapshot);
  auto bad = DecodeState(R"({"format":1,"next_member":1,"generation":0,"bootstrapped":false,
      "reseed_token":"t","counters":{},"members":[],"restore_snapshot":7})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("restore_snapshot"), std::string::npos) << bad.error();
}

// Whether the generation ever served decides between starting it again and total loss.
TEST(SchedulerStateCodec, WhetherTheGenerationServedIsKeptAndAnOlderRecordIsTakenToHaveServed) {
  PersistentState s = Sample();
  s.served = false;
  s.restored_from = "b.db";
  auto decoded = DecodeState(EncodeState(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_FALSE(decoded->served);
  EXPECT_EQ(decoded->restored_from, "b.db");
  s.served = true;
  decoded = DecodeState(EncodeState(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_TRUE(decoded->served);
  // Written before the field existed: a started cluster may hold data.
  auto old = DecodeState(R"({"format":1,"next_member":4,"generation":1,"bootstrapped":true,
      "reseed_token":"t","counters":{},"members":[]})");
  ASSERT_TRUE(old.ok()) << old.error();
  EXPECT_TRUE(old->served);
  auto bad = DecodeState(R"({"format":1,"next_member":1,"generation":0,"bootstrapped":true,
      "served":"yes","reseed_token":"t","counters":{},"members":[]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("served"), std::string::npos) << bad.error();
}

// A cluster size asked at runtime and the flag it was asked under; absent when none was.
TEST(SchedulerStateCodec, AnAskedClusterSizeIsKept) {
  PersistentState s = Sample();
  s.target_size = 5;
  s.target_flag = 3;
  auto decoded = DecodeState(EncodeState(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_EQ(decoded->target_size, 5);
  EXPECT_EQ(decoded->target_flag, 3);
  s.target_size = 0;
  std::string encoded = EncodeState(s);
  EXPECT_EQ(encoded.find("target_size"), std::string::npos) << "none asked: not written";
  decoded = DecodeState(encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_EQ(decoded->target_size, 0);
  auto bad = DecodeState(R"({"format":1,"next_member":1,"generation":0,"bootstrapped":true,
      "target_size":-2,"reseed_token":"t","counters":{},"members":[]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("target_size"), std::string::npos) << bad.error();
}

// The leader's health verdict, which a standby shows; absent in older records (not healthy).
TEST(SchedulerStateCodec, TheLeadersHealthVerdictIsKept) {
  PersistentState s = Sample();
  s.healthy = true;
  s.health_reason = "3 of 3 voters agree on a leader";
  auto decoded = DecodeState(EncodeState(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_TRUE(decoded->healthy);
  EXPECT_EQ(decoded->health_reason, "3 of 3 voters agree on a leader");
  auto old = DecodeState(R"({"format":1,"next_member":4,"generation":1,"bootstrapped":true,
      "reseed_token":"t","counters":{},"members":[]})");
  ASSERT_TRUE(old.ok()) << old.error();
  EXPECT_FALSE(old->healthy);
  EXPECT_EQ(old->health_reason, "");
}

TEST(SchedulerStateCodec, AReseedUnderWayIsKept) {
  PersistentState s = Sample();
  s.reseed = ReseedRun{{"etcd-4", "etcd-3"}, 1, true, 40, 55};
  auto decoded = DecodeState(EncodeState(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  ASSERT_TRUE(decoded->reseed.has_value());
  EXPECT_EQ(decoded->reseed->asked_revision, 40u);
  EXPECT_EQ(decoded->reseed->highest_revision, 55u);
  EXPECT_EQ(decoded->reseed->candidates, (std::vector<std::string>{"etcd-4", "etcd-3"}));
  EXPECT_EQ(decoded->reseed->next, 1u);
  EXPECT_TRUE(decoded->reseed->manual);
  EXPECT_FALSE(DecodeState(EncodeState(Sample()))->reseed.has_value());
}

// What the last reseed lost is kept across restarts; states written before it was kept decode
// with zeros; a corrupt record names its field.
TEST(SchedulerStateCodec, TheRevisionsOfTheLastReseedAreKept) {
  PersistentState s = Sample();
  s.revisions = Revisions{120, 90, 130};
  auto decoded = DecodeState(EncodeState(s));
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_EQ(decoded->revisions.highest_seen, 120u);
  EXPECT_EQ(decoded->revisions.last_reseed_survivor, 90u);
  EXPECT_EQ(decoded->revisions.last_reseed_highest, 130u);

  json j = json::parse(EncodeState(s));
  j.erase("revisions");
  auto old = DecodeState(j.dump());
  ASSERT_TRUE(old.ok()) << old.error();
  EXPECT_EQ(old->revisions.last_reseed_highest, 0u);
  j["revisions"] = json{{"last_reseed_survivor", -1}};
  auto bad = DecodeState(j.dump());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("revisions.last_reseed_survivor"), std::string::npos)
      << bad.error();
  j["revisions"] = "many";
  EXPECT_FALSE(DecodeState(j.dump()).ok());
}

TEST(SchedulerStateCodec, ACorruptReseedRecordNamesItsField) {
  json j = json::parse(EncodeState(Sample()));
  auto refused = [&](json reseed, std::string_view field) {
    j["reseed"] = std::move(reseed);
    auto bad = DecodeState(j.dump());
    ASSERT_FALSE(bad.ok()) << field;
    EXPECT_NE(bad.error().message.find(field), std::string::npos) << bad.error();
  };
  refused(json::array(), "\"reseed\"");
  refused(json{{"candidates", json::array()}, {"next", 0}}, "reseed.candidates");
  refused(json{{"candidates", {"etcd-9"}}, {"next", 0}}, "reseed.candidates[0]");
  refused(json{{"candidates", {"etcd-3"}}, {"next", 2}}, "reseed.next");
  refused(json{{"candidates", {"etcd-3"}}, {"next", 1}, {"manual", "yes"}}, "reseed.manual");
}

TEST(SchedulerStateCodec, EmptyStateRoundTripsWithoutFrameworkId) {
  PersistentState s;
  std::string text = EncodeState(s);
  EXPECT_TRUE(json::parse(text)["framework_id"].is_null());
  auto decoded = DecodeState(text);
  ASSERT_TRUE(decoded.ok()) << decoded.error();
  EXPECT_FALSE(decoded->framework_id.has_value());
  EXPECT_TRUE(decoded->members.empty());
  EXPECT_EQ(decoded->next_member, 1u);
}

TEST(SchedulerStateCodec, MemberIdIsADecimalString) {
  json j = json::parse(EncodeState(Sample()));
  EXPECT_EQ(j["members"][0]["member_id"], "18446744073709551557");
  EXPECT_EQ(j["members"][0]["task_state"], "TASK_RUNNING");
  EXPECT_EQ(j["members"][0]["task_id"], "etcd-3 10.0.0.7 31000 31001 31002");
}

TEST(SchedulerStateCodec, PathsAreUnderTheFrameworkName) {
  EXPECT_EQ(StatePath("etcd-prod"), "/etcd-prod/state");
  EXPECT_EQ(FrameworkIdPath("etcd-prod"), "/etcd-prod_framework_id");
}

// Each corruption names the field it found wrong, with kDataLoss.
struct Corruption {
  std::string what;
  std::function<void(json&)> mutate;
  std::string field;  // expected in the message
};

class CorruptState : public ::testing::TestWithParam<Corruption> {};

TEST_P(CorruptState, IsDataLossNamingTheField) {
  json j = json::parse(EncodeState(Sample()));
  GetParam().mutate(j);
  auto decoded = DecodeState(j.dump());
  ASSERT_FALSE(decoded.ok()) << GetParam().what;
  EXPECT_EQ(decoded.error().code, ErrorCode::kDataLoss);
  EXPECT_NE(decoded.error().message.find("\"" + GetParam().field + "\""), std::string::npos)
      << decoded.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Fields, CorruptState,
    ::testing::Values(
        Corruption{"format", [](json& j) { j["format"] = 99; }, "format"},
        Corruption{"no format", [](json& j) { j.erase("format"); }, "format"},
        Corruption{"framework id", [](json& j) { j["framework_id"] = 7; }, "framework_id"},
        Corruption{"next_member", [](json& j) { j["next_member"] = -1; }, "next_member"},
        Corruption{"next_member 0", [](json& j) { j["next_member"] = 0; }, "next_member"},
        Corruption{"generation", [](json& j) { j["generation"] = "x"; }, "generation"},
        Corruption{"bootstrapped", [](json& j) { j["bootstrapped"] = 1; }, "bootstrapped"},
        Corruption{"healthy", [](json& j) { j["healthy"] = "yes"; }, "healthy"},
        Corruption{"health reason", [](json& j) { j["health_reason"] = 3; }, "health_reason"},
        Corruption{"token", [](json& j) { j.erase("reseed_token"); }, "reseed_token"},
        Corruption{"counters", [](json& j) { j["counters"] = json::array(); }, "counters"},
        Corruption{"a counter", [](json& j) { j["counters"]["failed_servers"] = 1.5; },
                   "counters.failed_servers"},
        Corruption{"members", [](json& j) { j["members"] = json::object(); }, "members"},
        Corruption{"member", [](json& j) { j["members"][1] = 3; }, "members[1]"},
        Corruption{"port 0", [](json& j) { j["members"][0]["peer_port"] = 0; },
                   "members[0].peer_port"},
        Corruption{"port big", [](json& j) { j["members"][1]["client_port"] = 70000; },
                   "members[1].client_port"},
        Corruption{"member id number", [](json& j) { j["members"][0]["member_id"] = 12; },
                   "members[0].member_id"},
        Corruption{"member id text", [](json& j) { j["members"][0]["member_id"] = "12x"; },
                   "members[0].member_id"},
        Corruption{"task state", [](json& j) { j["members"][0]["task_state"] = "TASK_SLEEPING"; },
                   "members[0].task_state"},
        Corruption{"task id", [](json& j) { j["members"][0]["task_id"] = "etcd-3"; },
                   "members[0].task_id"},
        Corruption{"task id disagrees",
                   [](json& j) { j["members"][0]["task_id"] = "etcd-3 10.0.0.7 31000 31001 1"; },
                   "members[0].task_id"},
        Corruption{"empty name", [](json& j) { j["members"][0]["name"] = ""; }, "members[0].name"},
        Corruption{"no host", [](json& j) { j["members"][0].erase("host"); }, "members[0].host"},
        Corruption{"duplicate", [](json& j) { j["members"][1] = j["members"][0]; },
                   "members[1].name"}),
    [](const auto& info) {
      std::string n = info.param.what;
      for (char& c : n) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return n;
    });

TEST(SchedulerStateCodec, GarbageIsDataLossNotACrash) {
  for (std::string text : {"", "{", "null", "[]", "\"x\"", "{\"format\":1}", "\xff\xfe"}) {
    auto decoded = DecodeState(text);
    ASSERT_FALSE(decoded.ok()) << text;
    EXPECT_EQ(decoded.error().code, ErrorCode::kDataLoss) << text;
  }
}

TEST(SchedulerStateCodec, UnknownFieldsAreIgnored) {
  json j = json::parse(EncodeState(Sample()));
  j["added_later"] = {1, 2};
  j["members"][0]["also_later"] = true;
  EXPECT_TRUE(DecodeState(j.dump()).ok());
}

}  // namespace
}  // namespace etcd_mesos::scheduler::shell
