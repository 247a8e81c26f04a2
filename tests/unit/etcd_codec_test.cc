// The etcd 3.4 JSON gateway codec against the shapes recorded on etcd 3.4.23
// (reference/anchors.md section 8, copied verbatim), and against malformed and hostile input.
#include <openssl/sha.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/encoding.h"
#include "etcd/client.h"
#include "etcd/codec.h"
#include "etcd/launch.h"
#include "net/http.h"
#include "tls/pki.h"

namespace etcd_mesos::etcd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

// ---- Shapes from anchors.md section 8 ---------------------------------------------------------

TEST(EtcdCodec, MemberListWithAnUnstartedLearner) {
  auto r = DecodeMemberList(
      R"({"header":{"cluster_id":"13943504652224441641","member_id":"16110641917360169610","raft_term":"2"},
 "members":[{"ID":"8455861066767519386","peerURLs":["http://127.0.0.1:23802"],"isLearner":true},
            {"ID":"16110641917360169610","name":"n1","peerURLs":["http://127.0.0.1:23801"],
             "clientURLs":["http://127.0.0.1:23791"]}]})");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->header.cluster_id, 13943504652224441641ull);
  EXPECT_EQ(r->header.member_id, 16110641917360169610ull);
  EXPECT_EQ(r->header.raft_term, 2u);
  EXPECT_EQ(r->header.revision, 0u);  // omitted: zero
  ASSERT_EQ(r->members.size(), 2u);
  const Member& learner = r->members[0];
  EXPECT_EQ(learner.id, 8455861066767519386ull);
  EXPECT_EQ(learner.name, "");
  EXPECT_FALSE(learner.started());
  EXPECT_THAT(learner.peer_urls, ElementsAre("http://127.0.0.1:23802"));
  EXPECT_TRUE(learner.client_urls.empty());
  EXPECT_TRUE(learner.is_learner);
  const Member& voter = r->members[1];
  EXPECT_EQ(voter.id, 16110641917360169610ull);
  EXPECT_EQ(voter.name, "n1");
  EXPECT_TRUE(voter.started());
  EXPECT_THAT(voter.client_urls, ElementsAre("http://127.0.0.1:23791"));
  EXPECT_FALSE(voter.is_learner);
  EXPECT_EQ(r->Find(8455861066767519386ull), &r->members[0]);
  EXPECT_EQ(r->Find(1), nullptr);
}

TEST(EtcdCodec, MemberAddAsLearner) {
  EXPECT_EQ(json::parse(EncodeMemberAdd({"http://127.0.0.1:23802"}, true)),
            json::parse(R"({"peerURLs":["http://127.0.0.1:23802"],"isLearner":true})"));
  EXPECT_EQ(json::parse(EncodeMemberAdd({"http://127.0.0.1:23802"}, false)),
            json::parse(R"({"peerURLs":["http://127.0.0.1:23802"]})"));
  auto r = DecodeMemberAdd(
      R"({"header":{"cluster_id":"13943504652224441641","member_id":"16110641917360169610","raft_term":"2"},
           "member":{"ID":"8455861066767519386","peerURLs":["http://127.0.0.1:23802"],"isLearner":true},
           "members":[{"ID":"8455861066767519386","peerURLs":["http://127.0.0.1:23802"],"isLearner":true},
            {"ID":"16110641917360169610","name":"n1","peerURLs":["http://127.0.0.1:23801"],
             "clientURLs":["http://127.0.0.1:23791"]}]})");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->member.id, 8455861066767519386ull);
  EXPECT_TRUE(r->member.is_learner);
  EXPECT_EQ(r->member.name, "");
  EXPECT_EQ(r->members.size(), 2u);
}

TEST(EtcdCodec, MemberAddWithoutTheNewMemberIsAnError) {
  auto r = DecodeMemberAdd(R"({"header":{},"members":[]})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, HasSubstr("member"));
}

TEST(EtcdCodec, PromoteRemoveUpdateRequestsAndAnswers) {
  EXPECT_EQ(EncodeMemberId(8455861066767519386ull), R"({"ID":"8455861066767519386"})");
  EXPECT_EQ(json::parse(EncodeMemberUpdate(42, {"http://127.0.0.2:1"})),
            json::parse(R"({"ID":"42","peerURLs":["http://127.0.0.2:1"]})"));
  auto r = DecodeMemberList(
      R"({"header":{"cluster_id":"1","member_id":"2"},"members":[{"ID":"8455861066767519386","name":"n2",
           "peerURLs":["http://127.0.0.1:23802"],"clientURLs":["http://127.0.0.1:23792"]}]})");
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(r->members.size(), 1u);
  EXPECT_EQ(r->members[0].name, "n2");
  EXPECT_FALSE(r->members[0].is_learner);
}

TEST(EtcdCodec, StatusOfAHealthyVoter) {
  auto r = DecodeStatus(
      R"({"header":{"cluster_id":"13943504652224441641","member_id":"16110641917360169610","revision":"1","raft_term":"2"},
                 "version":"3.4.23","dbSize":"20480","leader":"16110641917360169610","raftIndex":"5",
                 "raftTerm":"2","raftAppliedIndex":"5","dbSizeInUse":"16384"})");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->header.member_id, 16110641917360169610ull);
  EXPECT_EQ(r->header.revision, 1u);
  EXPECT_EQ(r->version, "3.4.23");
  EXPECT_EQ(r->db_size, 20480u);
  EXPECT_EQ(r->db_size_in_use, 16384u);
  EXPECT_EQ(r->leader, 16110641917360169610ull);
  EXPECT_EQ(r->raft_index, 5u);
  EXPECT_EQ(r->raft_term, 2u);
  EXPECT_EQ(r->raft_applied_index, 5u);
  EXPECT_FALSE(r->is_learner);
  EXPECT_TRUE(r->errors.empty());
}

TEST(EtcdCodec, StatusOfALearnerWithoutQuorumAndUnderAlarm) {
  auto learner = DecodeStatus(
      R"({"header":{"member_id":"7"},"version":"3.4.23","leader":"9","isLearner":true})");
  ASSERT_TRUE(learner.ok()) << learner.error();
  EXPECT_TRUE(learner->is_learner);

  auto no_quorum = DecodeStatus(
      R"({"header":{"member_id":"7","raft_term":"3"},"version":"3.4.23","dbSize":"20480","raftIndex":"9","raftTerm":"3","errors":["etcdserver: no leader"]})");
  ASSERT_TRUE(no_quorum.ok()) << no_quorum.error();
  EXPECT_EQ(no_quorum->leader, 0u);
  EXPECT_THAT(no_quorum->errors, ElementsAre("etcdserver: no leader"));

  auto alarm = DecodeStatus(
      R"({"header":{},"version":"3.4.23","leader":"1","errors":["memberID:16110641917360169610 alarm:NOSPACE "]})");
  ASSERT_TRUE(alarm.ok()) << alarm.error();
  EXPECT_THAT(alarm->errors, ElementsAre(HasSubstr("alarm:NOSPACE")));
}

// As etcd 3.4.23's leader printed them with one peer frozen (SIGSTOP) for four seconds.
TEST(EtcdCodec, PeerConnectionsFromMetrics) {
  const char* text =
      "# HELP etcd_network_active_peers The current number of active peer connections.\n"
      "# TYPE etcd_network_active_peers gauge\n"
      "etcd_network_active_peers{Local=\"5fd4fcbd6eaa01fd\",Remote=\"c450033e296dbd7\"} 1\n"
      "etcd_network_active_peers{Local=\"5fd4fcbd6eaa01fd\",Remote=\"f9cc8264366c886e\"} 0\n"
      "etcd_network_peer_sent_failures_total{To=\"f9cc8264366c886e\"} 28\n";
  auto peers = DecodePeerConnections(200, text);
  ASSERT_TRUE(peers.ok()) << peers.error();
  ASSERT_EQ(peers->size(), 2u);
  EXPECT_TRUE(peers->at(0xc450033e296dbd7));
  EXPECT_FALSE(peers->at(0xf9cc8264366c886e));
  // A member without peers has no series; a malformed one is named, never guessed at.
  auto alone = DecodePeerConnections(200, "etcd_server_is_leader 1\n");
  ASSERT_TRUE(alone.ok()) << alone.error();
  EXPECT_TRUE(alone->empty());
  for (const char* bad : {"etcd_network_active_peers{Local=\"5f\",Remote=\"zz\"} 1\n",
                          "etcd_network_active_peers{Local=\"5f\"} 1\n",
                          "etcd_network_active_peers{Local=\"5f\",Remote=\"c4\"} up\n"}) {
    auto r = DecodePeerConnections(200, bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_THAT(r.error().message, HasSubstr("malformed peer series")) << bad;
  }
  EXPECT_FALSE(DecodePeerConnections(503, "").ok());
}

TEST(EtcdCodec, DiskLatencyFromMetrics) {
  const char* text =
      "# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync.\n"
      "# TYPE etcd_disk_wal_fsync_duration_seconds histogram\n"
      "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 3\n"
      "etcd_disk_wal_fsync_duration_seconds_sum 0.125\n"
      "etcd_disk_wal_fsync_duration_seconds_count 50\n"
      "etcd_disk_backend_commit_duration_seconds_sum 2.5e-01\n"
      "etcd_disk_backend_commit_duration_seconds_count 20\n";
  auto totals = DecodeDiskLatency(200, text);
  ASSERT_TRUE(totals.ok()) << totals.error();
  EXPECT_DOUBLE_EQ(totals->wal_fsync_seconds, 0.125);
  EXPECT_EQ(totals->wal_fsyncs, 50u);
  EXPECT_DOUBLE_EQ(totals->backend_commit_seconds, 0.25);
  EXPECT_EQ(totals->backend_commits, 20u);
  // A series missing, or a value that is not a number, is named.
  auto missing = DecodeDiskLatency(200, "etcd_disk_wal_fsync_duration_seconds_sum 1\n");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.error().message, HasSubstr("etcd_disk_wal_fsync_duration_seconds_count"));
  std::string garbled = text;
  garbled.replace(garbled.find("0.125"), 5, "fast!");
  auto bad = DecodeDiskLatency(200, garbled);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message, HasSubstr("etcd_disk_wal_fsync_duration_seconds_sum"));
  EXPECT_FALSE(DecodeDiskLatency(404, "404 page not found").ok());
}

TEST(EtcdCodec, Health) {
  auto ok = DecodeHealth(200, R"({"health":"true"})");
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_TRUE(ok->healthy);
  auto bad = DecodeHealth(503, R"({"health":"false"})");
  ASSERT_TRUE(bad.ok()) << bad.error();
  EXPECT_FALSE(bad->healthy);
  EXPECT_THAT(bad->reason, HasSubstr("no leader"));
  auto with_reason = DecodeHealth(503, R"({"health":"false","reason":"RAFT NO LEADER"})");
  ASSERT_TRUE(with_reason.ok());
  EXPECT_EQ(with_reason->reason, "RAFT NO LEADER");
  // A 503 that is not a health document: a server not ready yet.
  auto starting = DecodeHealth(503, "Service Unavailable");
  ASSERT_FALSE(starting.ok());
  EXPECT_EQ(starting.error().code, ErrorCode::kUnavailable);
  auto not_etcd = DecodeHealth(404, "404 page not found");
  ASSERT_FALSE(not_etcd.ok());
  EXPECT_EQ(not_etcd.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(DecodeHealth(200, R"({"health":"maybe"})").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(DecodeHealth(200, R"({})").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(DecodeHealth(503, R"({"health":"true"})").error().code, ErrorCode::kInvalidArgument);
}

TEST(EtcdCodec, Alarms) {
  EXPECT_EQ(EncodeAlarmList(), R"({"action":"GET"})");
  EXPECT_EQ(json::parse(EncodeAlarmDisarm(16110641917360169610ull, AlarmType::kNoSpace)),
            json::parse(
                R"({"action":"DEACTIVATE","memberID":"16110641917360169610","alarm":"NOSPACE"})"));
  auto none = DecodeAlarms("{}");
  ASSERT_TRUE(none.ok()) << none.error();
  EXPECT_TRUE(none->alarms.empty());
  auto some = DecodeAlarms(
      R"({"alarms":[{"memberID":"16110641917360169610","alarm":"NOSPACE"},{"memberID":"3","alarm":"CORRUPT"}]})");
  ASSERT_TRUE(some.ok()) << some.error();
  EXPECT_THAT(some->alarms, ElementsAre(Alarm{16110641917360169610ull, AlarmType::kNoSpace},
                                        Alarm{3, AlarmType::kCorrupt}));
  EXPECT_EQ(DecodeAlarms(R"({"alarms":[{"memberID":"3","alarm":"FIRE"}]})").error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(DecodeAlarms(R"({"alarms":["NOSPACE"]})").error().code, ErrorCode::kInvalidArgument);
}

TEST(EtcdCodec, PutAndRange) {
  EXPECT_EQ(json::parse(EncodePut("foo", "bar")), json::parse(R"({"key":"Zm9v","value":"YmFy"})"));
  EXPECT_EQ(json::parse(EncodeRange("foo", true)),
            json::parse(R"({"key":"Zm9v","serializable":true})"));
  EXPECT_EQ(json::parse(EncodeRange("foo", false)), json::parse(R"({"key":"Zm9v"})"));
  auto put =
      DecodePut(R"({"header":{"cluster_id":"1","member_id":"2","revision":"7","raft_term":"2"}})");
  ASSERT_TRUE(put.ok()) << put.error();
  EXPECT_EQ(put->header.revision, 7u);
  auto range = DecodeRange(
      R"({"header":{"revision":"7"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"7","version":"3","value":"YmFy"}],"count":"1"})");
  ASSERT_TRUE(range.ok()) << range.error();
  ASSERT_EQ(range->kvs.size(), 1u);
  EXPECT_EQ(range->kvs[0].key, "foo");
  EXPECT_EQ(range->kvs[0].value, "bar");
  EXPECT_EQ(range->kvs[0].create_revision, 2u);
  EXPECT_EQ(range->kvs[0].mod_revision, 7u);
  EXPECT_EQ(range->kvs[0].version, 3u);
  EXPECT_EQ(range->count, 1u);
  auto empty = DecodeRange(R"({"header":{"revision":"7"}})");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->kvs.empty());
  EXPECT_EQ(DecodeRange(R"({"kvs":[{"key":"!!!"}]})").error().code, ErrorCode::kInvalidArgument);
}

// Shapes recorded on etcd 3.4.23 with curl: a CAS that creates, then the same create again.
TEST(EtcdCodec, CompareAndSwapRequestShapes) {
  EXPECT_EQ(json::parse(EncodeCompareAndSwap("foo", "bar", "baz")), json::parse(R"({
    "compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFy"}],
    "success":[{"request_put":{"key":"Zm9v","value":"YmF6"}}]})"));
  EXPECT_EQ(json::parse(EncodeCompareAndSwap("foo", std::nullopt, "bar")), json::parse(R"({
    "compare":[{"key":"Zm9v","result":"EQUAL","target":"CREATE","create_revision":"0"}],
    "success":[{"request_put":{"key":"Zm9v","value":"YmFy"}}]})"));
  // An empty expected value is a value compare (the key exists and is empty), not a create.
  EXPECT_EQ(json::parse(EncodeCompareAndSwap("k", "", "v"))["compare"][0]["target"], "VALUE");
  // Bytes that are not UTF-8 travel as base64.
  EXPECT_EQ(
      json::parse(EncodeCompareAndSwap(std::string("\xff\x00", 2), "x", "y"))["compare"][0]["key"],
      "/wA=");
}

TEST(EtcdCodec, CompareAndSwapAnswerOmitsSucceededWhenFalse) {
  auto won = DecodeTxn(
      R"({"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"2"}}}]})");
  ASSERT_TRUE(won.ok()) << won.error();
  EXPECT_TRUE(won->succeeded);
  EXPECT_EQ(won->header.revision, 2u);
  EXPECT_EQ(won->header.member_id, 13668033151171901709ull);
  auto lost = DecodeTxn(
      R"({"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"}})");
  ASSERT_TRUE(lost.ok()) << lost.error();
  EXPECT_FALSE(lost->succeeded);
  EXPECT_EQ(lost->header.revision, 2u);
  EXPECT_THAT(DecodeTxn(R"({"header":{},"succeeded":"true"})").error().message,
              HasSubstr("succeeded"));
  EXPECT_THAT(DecodeTxn(R"({"succeeded":true})").error().message, HasSubstr("header"));
  EXPECT_EQ(DecodeTxn(R"({"header":{},"responses":{}})").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(DecodeTxn("not json").error().code, ErrorCode::kInvalidArgument);
  // etcd's refusal of a malformed compare (HTTP 400, gRPC InvalidArgument).
  auto refused = DecodeResponse(
      400,
      R"({"error":"unknown value \"BOGUS\" for enum etcdserverpb.Compare_CompareTarget","message":"unknown value \"BOGUS\" for enum etcdserverpb.Compare_CompareTarget","code":3})",
      DecodeTxn);
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(refused.error().message, HasSubstr("BOGUS"));
}

TEST(EtcdCodec, DefragmentAnswersEmptyObjectOrHeader) {
  EXPECT_TRUE(DecodeHeaderOnly("{}").ok());
  auto h = DecodeHeaderOnly(R"({"header":{"member_id":"5"}})");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->member_id, 5u);
}

// etcdctl 3.4.23's `endpoint hashkv -w json`, verbatim: a compacted member and a restored one that
// never was (-1).
TEST(EtcdCodec, EtcdctlHashKV) {
  auto list = DecodeEtcdctlHashKV(
      R"([{"Endpoint":"http://127.0.0.1:23791","HashKV":{"header":{"cluster_id":)"
      R"(15118495548433857066,"member_id":13668033151171901709,"revision":8,"raft_term":2},)"
      R"("hash":1095425422,"compact_revision":3}},{"Endpoint":"http://127.0.0.1:23792",)"
      R"("HashKV":{"header":{"cluster_id":1763263672009699311,"member_id":975050037397374526,)"
      R"("revision":7,"raft_term":2},"hash":4294967295,"compact_revision":-1}}])"
      "\n");
  ASSERT_TRUE(list.ok()) << list.error();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].endpoint, "http://127.0.0.1:23791");
  EXPECT_EQ((*list)[0].header.cluster_id, 15118495548433857066u) << "no double in between";
  EXPECT_EQ((*list)[0].header.revision, 8u);
  EXPECT_EQ((*list)[0].hash, 1095425422u);
  EXPECT_EQ((*list)[0].compact_revision, 3);
  EXPECT_EQ((*list)[1].hash, 4294967295u);
  EXPECT_EQ((*list)[1].compact_revision, -1);
  // Every endpoint failed: etcdctl prints [] (and says why on stderr).
  auto none = DecodeEtcdctlHashKV("[]\n");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(EtcdCodec, EtcdctlHashKVMalformed) {
  for (const char* bad :
       {"", "{}", "Error: context deadline exceeded", "[1]", R"([{"Endpoint":"x"}])",
        R"([{"HashKV":{"hash":"x"}}])", R"([{"HashKV":{"hash":4294967296}}])",
        R"([{"HashKV":{"hash":-1}}])", R"([{"HashKV":{"hash":1,"compact_revision":-2}}])",
        R"([{"HashKV":{"hash":1,"compact_revision":1.5}}])",
        R"([{"HashKV":{"compact_revision":1}}])"}) {
    SCOPED_TRACE(bad);
    auto r = DecodeEtcdctlHashKV(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(r.error().message, HasSubstr("etcdctl endpoint hashkv"));
  }
}

// ---- Errors: the catalogue of anchors.md section 8 -------------------------------------------

struct ErrorCase {
  unsigned http;
  const char* body;
  ErrorCode code;
  const char* text;
};

TEST(EtcdCodec, ErrorCatalogueIsClassified) {
  const ErrorCase cases[] = {
      {412,
       R"({"error":"etcdserver: too many learner members in cluster","message":"etcdserver: too many learner members in cluster","code":9})",
       ErrorCode::kRefused, "too many learner members in cluster"},
      {412,
       R"({"error":"etcdserver: can only promote a learner member which is in sync with leader","message":"etcdserver: can only promote a learner member which is in sync with leader","code":9})",
       ErrorCode::kRefused, "in sync with leader"},
      {412, R"({"error":"etcdserver: can only promote a learner member","code":9})",
       ErrorCode::kRefused, "can only promote a learner member"},
      {404,
       R"({"error":"etcdserver: member not found","message":"etcdserver: member not found","code":5})",
       ErrorCode::kNotFound, "member not found"},
      {503,
       R"({"error":"etcdserver: rpc not supported for learner","message":"etcdserver: rpc not supported for learner","code":14})",
       ErrorCode::kUnavailable, "rpc not supported for learner"},
      {503,
       R"({"error":"etcdserver: unhealthy cluster","message":"etcdserver: unhealthy cluster","code":14})",
       ErrorCode::kUnavailable, "unhealthy cluster"},
      {503, R"({"error":"etcdserver: no leader","code":14})", ErrorCode::kUnavailable, "no leader"},
      {429,
       R"({"error":"etcdserver: mvcc: database space exceeded","message":"etcdserver: mvcc: database space exceeded","code":8})",
       ErrorCode::kRefused, "database space exceeded"},
      // Without a gRPC code, the HTTP status decides.
      {503, "upstream down", ErrorCode::kUnavailable, "upstream down"},
      {412, "", ErrorCode::kRefused, "empty body"},
      {404, "404 page not found\n", ErrorCode::kNotFound, "404 page not found"},
      {400, R"({"error":"bad"})", ErrorCode::kInvalidArgument, "bad"},
      {500, R"({"error":"boom","code":2})", ErrorCode::kUnavailable, "boom"},
      {302, "", ErrorCode::kInvalidArgument, "HTTP 302"},
      // The form a streaming call uses mid-stream.
      {200,
       R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}})",
       ErrorCode::kUnavailable, "no leader"},
  };
  for (const auto& c : cases) {
    Error e = DecodeError(c.http, c.body);
    EXPECT_EQ(e.code, c.code) << c.http << " " << c.body << " -> " << e;
    EXPECT_THAT(e.message, HasSubstr(c.text)) << e;
  }
}

TEST(EtcdCodec, DecodeResponseRoutesNon200ToErrors) {
  auto r =
      DecodeResponse(412, R"({"error":"etcdserver: too many learner members in cluster","code":9})",
                     DecodeMemberList);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kRefused);
  EXPECT_TRUE(DecodeResponse(200, R"({"members":[]})", DecodeMemberList).ok());
}

// ---- Hostile input ---------------------------------------------------------------------------

TEST(EtcdCodec, MalformedInputIsInvalidArgumentNeverACrash) {
  const char* bad_member_lists[] = {
      "",
      "not json",
      "[]",
      "null",
      "\"members\"",
      R"({"members":{}})",
      R"({"members":[1]})",
      R"({"members":[{}]})",          // no ID
      R"({"members":[{"ID":"0"}]})",  // ID 0 is nobody
      R"({"members":[{"ID":"-1"}]})",
      R"({"members":[{"ID":"18446744073709551616"}]})",  // 2^64
      R"({"members":[{"ID":"99999999999999999999999999"}]})",
      R"({"members":[{"ID":1e30}]})",
      R"({"members":[{"ID":1.5}]})",
      R"({"members":[{"ID":-3}]})",
      R"({"members":[{"ID":" 12"}]})",
      R"({"members":[{"ID":"12abc"}]})",
      R"({"members":[{"ID":"+12"}]})",
      R"({"members":[{"ID":""}]})",
      R"({"members":[{"ID":true}]})",
      R"({"members":[{"ID":"1","name":7}]})",
      R"({"members":[{"ID":"1","peerURLs":"http://x"}]})",
      R"({"members":[{"ID":"1","peerURLs":[1]}]})",
      R"({"members":[{"ID":"1","isLearner":"true"}]})",
      R"({"header":[],"members":[]})",
      R"({"header":{"cluster_id":{}}})",
      R"({"members":[{"ID":"1"}])",  // truncated
  };
  for (const char* text : bad_member_lists) {
    auto r = DecodeMemberList(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << text << " -> " << r.error();
  }
  const char* bad_statuses[] = {
      R"({})",  // no version: not a status
      R"({"version":3})",
      R"({"version":"3.4.23","dbSize":-1})",
      R"({"version":"3.4.23","leader":"x"})",
      R"({"version":"3.4.23","errors":"etcdserver: no leader"})",
      R"({"version":"3.4.23","errors":[null]})",
      R"({"version":"3.4.23","raftIndex":1e400})",
  };
  for (const char* text : bad_statuses) {
    auto r = DecodeStatus(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << text << " -> " << r.error();
  }
  // Bare numbers are accepted for IDs (etcd accepts both), nulls are absent fields.
  auto numeric = DecodeMemberList(R"({"members":[{"ID":12,"name":null,"isLearner":null}]})");
  ASSERT_TRUE(numeric.ok()) << numeric.error();
  EXPECT_EQ(numeric->members[0].id, 12u);
  auto max = DecodeMemberList(R"({"members":[{"ID":"18446744073709551615"}]})");
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(max->members[0].id, 18446744073709551615ull);
}

TEST(EtcdCodec, ErrorMessagesNameTheFieldAndStayShort) {
  auto r = DecodeStatus(R"({"version":"3.4.23","dbSize":")" + std::string(100000, '9') + R"("})");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("dbSize"));
  EXPECT_LT(r.error().message.size(), 400u);
  Error e = DecodeError(503, std::string(100000, 'x'));
  EXPECT_LT(e.message.size(), 400u);
}

TEST(EtcdCodec, DeeplyNestedJsonDoesNotCrash) {
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_FALSE(DecodeStatus(deep).ok());
  EXPECT_FALSE(DecodeMemberList(R"({"members":)" + deep + "}").ok());
  Error e = DecodeError(503, deep);
  EXPECT_EQ(e.code, ErrorCode::kUnavailable);
}

// ---- Snapshot stream -------------------------------------------------------------------------

std::string Sha256(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

std::string Message(std::string_view blob, uint64_t remaining) {
  json result = {{"blob", Base64Encode(blob)}};
  if (remaining != 0) result["remaining_bytes"] = std::to_string(remaining);
  return json{{"result", result}}.dump() + "\n";
}

// The stream etcd sends for `db`: chunks of `chunk` bytes, then the SHA-256 message.
std::string Stream(const std::string& db, size_t chunk) {
  std::string out;
  for (size_t at = 0; at < db.size(); at += chunk) {
    size_t n = std::min(chunk, db.size() - at);
    out += Message(db.substr(at, n), db.size() - at - n);
  }
  return out + Message(Sha256(db), 0);
}

std::string TestDatabase(size_t size) {
  std::string db(size, '\0');
  for (size_t i = 0; i < size; ++i) db[i] = static_cast<char>((i * 7919) >> 3);
  return db;
}

struct Decoded {
  Result<SnapshotInfo> info = Error{};
  std::string bytes;
};

// Feeds `stream` in pieces of `piece` bytes (0: all at once).
Decoded DecodeStream(std::string_view stream, size_t piece = 0) {
  Decoded out;
  SnapshotStreamDecoder decoder([&](std::string_view b) {
    out.bytes.append(b);
    return OkStatus();
  });
  if (piece == 0) piece = stream.size() + 1;
  for (size_t at = 0; at < stream.size(); at += piece) {
    if (auto fed = decoder.Feed(stream.substr(at, piece)); !fed.ok()) {
      out.info = fed.error();
      return out;
    }
  }
  out.info = decoder.Finish();
  return out;
}

TEST(EtcdSnapshotStream, DecodesAndVerifiesWhateverThePieceSizes) {
  std::string db = TestDatabase(100000);
  std::string stream = Stream(db, 32768);
  for (size_t piece : {0, 1, 7, 4096, 44000, 50000}) {
    auto d = DecodeStream(stream, piece);
    ASSERT_TRUE(d.info.ok()) << "piece " << piece << ": " << d.info.error();
    EXPECT_EQ(d.bytes, db);
    EXPECT_EQ(d.info->size, db.size());
    EXPECT_EQ(d.info->sha256_hex, HexEncode(Sha256(db)));
  }
}

TEST(EtcdSnapshotStream, OneChunkDatabaseAndCrLfAndMissingLastNewline) {
  std::string db = TestDatabase(1000);
  std::string stream = Stream(db, 32768);
  ASSERT_TRUE(DecodeStream(stream).info.ok());
  std::string no_final_newline = stream.substr(0, stream.size() - 1);
  auto d = DecodeStream(no_final_newline);
  ASSERT_TRUE(d.info.ok()) << d.info.error();
  std::string crlf;
  for (char c : stream) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  ASSERT_TRUE(DecodeStream(crlf).info.ok());
}

void ExpectDataLoss(const std::string& stream, std::string_view text) {
  auto d = DecodeStream(stream);
  ASSERT_FALSE(d.info.ok()) << "accepted a bad stream, expected: " << text;
  EXPECT_EQ(d.info.error().code, ErrorCode::kDataLoss) << d.info.error();
  EXPECT_THAT(d.info.error().message, HasSubstr(text));
}

TEST(EtcdSnapshotStream, CorruptionAndTruncationAreDataLoss) {
  std::string db = TestDatabase(100000);
  std::string good = Stream(db, 32768);

  std::string flipped = db;
  flipped[5000] ^= 1;
  std::string wrong_sum = Stream(flipped, 32768);
  // Keep the original checksum with the altered data.
  wrong_sum = wrong_sum.substr(0, wrong_sum.rfind("{\"result\"")) + Message(Sha256(db), 0);
  ExpectDataLoss(wrong_sum, "checksum mismatch");

  std::string short_sum = good.substr(0, good.rfind("{\"result\"")) + Message("0123456789", 0);
  ExpectDataLoss(short_sum, "has 10 bytes");

  ExpectDataLoss(good.substr(0, good.rfind("{\"result\"")), "without the SHA-256");

  // Only the first two chunks: remaining_bytes never reached 0.
  size_t second = good.find('\n', good.find('\n') + 1);
  ExpectDataLoss(good.substr(0, second + 1), "still to come");

  // Cut inside a line.
  ExpectDataLoss(good.substr(0, good.size() / 2), "ended inside a message");

  ExpectDataLoss("", "before any data");

  // A chunk lost in the middle: remaining_bytes jumps.
  size_t first = good.find('\n');
  ExpectDataLoss(good.substr(0, first + 1) + good.substr(second + 1), "took remaining_bytes");

  ExpectDataLoss(good + Message("extra", 0), "after the checksum");
  ExpectDataLoss("this is not json\n", "malformed message");
  ExpectDataLoss(R"({"nothing":1})"
                 "\n",
                 "without a result");
  ExpectDataLoss(R"({"result":{"blob":"***"}})"
                 "\n",
                 "blob");
  ExpectDataLoss(R"({"result":{"blob":5}})"
                 "\n",
                 "blob");
  ExpectDataLoss(R"({"result":{"blob":"","remaining_bytes":"10"}})"
                 "\n",
                 "empty database chunk");
  ExpectDataLoss(R"({"result":{"blob":"QUJD","remaining_bytes":"x"}})"
                 "\n",
                 "remaining_bytes");
}

TEST(EtcdSnapshotStream, ErrorLineIsEtcdsError) {
  auto d =
      DecodeStream(Message("abc", 10) +
                   R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}})"
                   "\n");
  ASSERT_FALSE(d.info.ok());
  EXPECT_EQ(d.info.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(d.info.error().message, HasSubstr("no leader"));
}

TEST(EtcdSnapshotStream, LongLinesAreRefusedAndSinkErrorsStop) {
  SnapshotStreamDecoder small([](std::string_view) { return OkStatus(); }, 100);
  auto fed = small.Feed(std::string(101, 'x'));
  ASSERT_FALSE(fed.ok());
  EXPECT_EQ(fed.error().code, ErrorCode::kDataLoss);
  EXPECT_FALSE(small.Feed("{}\n").ok());  // stays failed

  SnapshotStreamDecoder failing(
      [](std::string_view) { return Status(MakeError(ErrorCode::kInternal, "disk full")); });
  auto r = failing.Feed(Message("abc", 0));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("disk full"));
  EXPECT_FALSE(failing.Finish().ok());
}

// ---- Command line ------------------------------------------------------------------------------

// What etcdctl 3.4.23 printed (recorded): numbers as JSON numbers, -1 for never compacted, and
// the retry warning and error it mixes in on stderr.
TEST(EtcdHashKv, DecodesEtcdctlsAnswerAndItsErrors) {
  auto ok = DecodeEtcdctlHashKv(
      R"([{"Endpoint":"127.0.0.1:23791","HashKV":{"header":{"cluster_id":15118495548433857066,)"
      R"("member_id":13668033151171901709,"revision":9,"raft_term":2},"hash":3190942102,)"
      R"("compact_revision":3}}])"
      "\n");
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok->hash, 3190942102u);
  EXPECT_EQ(ok->compact_revision, 3);
  EXPECT_EQ(ok->header.member_id, 13668033151171901709ull);
  EXPECT_EQ(ok->header.revision, 9u);
  auto never = DecodeEtcdctlHashKv(
      R"([{"Endpoint":"e","HashKV":{"header":{"revision":2},"hash":1,"compact_revision":-1}}])");
  ASSERT_TRUE(never.ok()) << never.error();
  EXPECT_EQ(never->compact_revision, -1);
  auto compacted = DecodeEtcdctlHashKv(
      "[]\n"
      R"({"level":"warn","msg":"retrying of unary invoker failed","error":"rpc error: code = )"
      R"(OutOfRange desc = etcdserver: mvcc: required revision has been compacted"})"
      "\nFailed to get the hash of endpoint 127.0.0.1:23791 (etcdserver: mvcc: required revision "
      "has been compacted)\nError: etcdserver: mvcc: required revision has been compacted\n");
  ASSERT_FALSE(compacted.ok());
  EXPECT_EQ(compacted.error().code, ErrorCode::kRefused);
  EXPECT_NE(compacted.error().message.find("required revision has been compacted"),
            std::string::npos);
  auto down = DecodeEtcdctlHashKv("Error: context deadline exceeded\n");
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().code, ErrorCode::kUnavailable);
  EXPECT_FALSE(DecodeEtcdctlHashKv("").ok());
  auto malformed = DecodeEtcdctlHashKv(R"([{"HashKV":{"hash":"x"}}])");
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(DecodeEtcdctlHashKv(R"([{"HashKV":{"hash":4294967296}}])").ok()) << "not 32 bits";
}

TEST(EtcdLaunch, CommandLineForNewAndJoiningMembers) {
  MemberConfig c;
  c.name = "n2";
  c.ip = "127.0.0.3";
  c.client_port = 2379;
  c.peer_port = 2380;
  c.data_dir = "/tmp/d";
  c.initial_cluster = "n1=http://127.0.0.2:2380,n2=http://127.0.0.3:2380";
  c.new_cluster = false;
  auto argv = MemberCommandLine(c);
  EXPECT_EQ(argv[0], "etcd");
  EXPECT_THAT(argv,
              ::testing::IsSupersetOf(
                  {"--name=n2", "--data-dir=/tmp/d", "--listen-client-urls=http://127.0.0.3:2379",
                   "--advertise-client-urls=http://127.0.0.3:2379",
                   "--listen-peer-urls=http://127.0.0.3:2380",
                   "--initial-advertise-peer-urls=http://127.0.0.3:2380",
                   "--initial-cluster=n1=http://127.0.0.2:2380,n2=http://127.0.0.3:2380",
                   "--initial-cluster-state=existing", "--enable-v2=true"}));
  c.new_cluster = true;
  c.initial_cluster.clear();
  c.enable_v2 = false;
  argv = MemberCommandLine(c);
  EXPECT_THAT(argv, ::testing::Contains("--initial-cluster=n2=http://127.0.0.3:2380"));
  EXPECT_THAT(argv, ::testing::Contains("--initial-cluster-state=new"));
  EXPECT_THAT(argv, ::testing::Not(::testing::Contains("--enable-v2=true")));
  // An IPv6 address is bracketed in every URL, as etcd's URL parsing needs.
  c.ip = "fd00::3";
  argv = MemberCommandLine(c);
  EXPECT_THAT(argv, ::testing::IsSupersetOf({"--listen-client-urls=http://[fd00::3]:2379",
                                             "--listen-peer-urls=http://[fd00::3]:2380",
                                             "--initial-cluster=n2=http://[fd00::3]:2380"}));
}

TEST(EtcdLaunch, WithTlsBothPortsAreHttpsAndRequireCertificates) {
  MemberConfig c;
  c.name = "n1";
  c.ip = "10.0.0.7";
  c.client_port = 2379;
  c.peer_port = 2380;
  c.tls = TlsFiles{.ca_file = "/s/ca.pem", .cert_file = "/s/n1.pem", .key_file = "/s/n1-key.pem"};
  EXPECT_EQ(c.ClientUrl(), "https://10.0.0.7:2379");
  EXPECT_EQ(c.PeerUrl(), "https://10.0.0.7:2380");
  EXPECT_THAT(
      MemberCommandLine(c),
      ::testing::IsSupersetOf(
          {"--listen-client-urls=https://10.0.0.7:2379",
           "--advertise-client-urls=https://10.0.0.7:2379",
           "--listen-peer-urls=https://10.0.0.7:2380",
           "--initial-advertise-peer-urls=https://10.0.0.7:2380",
           "--initial-cluster=n1=https://10.0.0.7:2380", "--cert-file=/s/n1.pem",
           "--key-file=/s/n1-key.pem", "--trusted-ca-file=/s/ca.pem", "--client-cert-auth=true",
           "--peer-cert-file=/s/n1.pem", "--peer-key-file=/s/n1-key.pem",
           "--peer-trusted-ca-file=/s/ca.pem", "--peer-client-cert-auth=true"}));
}

TEST(EtcdLaunch, EtcdctlIsPointedAtAMemberWithItsTlsFiles) {
  EXPECT_THAT(EtcdctlEndpointFlags({"10.0.0.7", 2379}, std::nullopt),
              ElementsAre("--endpoints=http://10.0.0.7:2379"));
  TlsFiles files{.ca_file = "ca.pem", .cert_file = "op.pem", .key_file = "op-key.pem"};
  EXPECT_THAT(EtcdctlEndpointFlags({"10.0.0.7", 2379}, files),
              ElementsAre("--endpoints=https://10.0.0.7:2379", "--cacert=ca.pem", "--cert=op.pem",
                          "--key=op-key.pem"));
}

TEST(ClientEndpoint, AnHttpsMemberNeedsTlsAndAnHttpOneMustNotHaveIt) {
  auto now = std::chrono::system_clock::now();
  auto ca = tls::NewAuthority("CA", now, now + std::chrono::hours(1));
  ASSERT_TRUE(ca.ok()) << ca.error();
  Client::Options with_tls;
  with_tls.tls = *net::TlsClientConfig::Create(ca->certificate_pem);
  Client::Options plain;

  auto https = ClientEndpoint("https://10.0.0.7:2379", with_tls);
  ASSERT_TRUE(https.ok()) << https.error();
  EXPECT_EQ(*https, (HostPort{"10.0.0.7", 2379}));
  auto http = ClientEndpoint("http://10.0.0.7:2379", plain);
  ASSERT_TRUE(http.ok()) << http.error();
  EXPECT_EQ(*http, (HostPort{"10.0.0.7", 2379}));

  auto unreachable = ClientEndpoint("https://10.0.0.7:2379", plain);
  ASSERT_FALSE(unreachable.ok());
  EXPECT_EQ(unreachable.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(unreachable.error().message, HasSubstr("no TLS configuration"));
  auto downgraded = ClientEndpoint("http://10.0.0.7:2379", with_tls);
  ASSERT_FALSE(downgraded.ok());
  EXPECT_THAT(downgraded.error().message, HasSubstr("should be https"));
  EXPECT_FALSE(ClientEndpoint("10.0.0.7", plain).ok());
}

}  // namespace
}  // namespace etcd_mesos::etcd
