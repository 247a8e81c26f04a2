// Plain values for what etcd 3.4's v3 JSON gateway tells us: members, maintenance status, health,
// alarms, key-values, snapshots; and etcdctl's HashKV (which the 3.4 gateway does not reach).
// Decoded by etcd/codec.h, fetched by etcd/client.h.
//
// 64-bit identifiers are uint64_t: the gateway writes them as decimal strings because a JSON number
// (a double) cannot hold them, and we never round-trip them through a double. Fields the gateway
// omits when zero (isLearner, leader, errors, a new member's name and client URLs) decode to their
// zero values here.
//
// Threading: plain value types; no shared state.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace etcd_mesos::etcd {

// The header every v3 response carries; fields absent from a response stay 0.
struct ResponseHeader {
  uint64_t cluster_id = 0;
  uint64_t member_id = 0;  // the member that answered
  uint64_t revision = 0;
  uint64_t raft_term = 0;

  bool operator==(const ResponseHeader&) const = default;
};

struct Member {
  uint64_t id = 0;
  std::string name;  // empty until the member has started and published itself
  std::vector<std::string> peer_urls;
  std::vector<std::string> client_urls;  // empty until the member has started
  bool is_learner = false;

  bool started() const { return !name.empty(); }
  bool operator==(const Member&) const = default;
};

// The answer of member list, promote, remove and update: the membership after the call.
struct MemberListResponse {
  ResponseHeader header;
  std::vector<Member> members;

  const Member* Find(uint64_t id) const {
    for (const auto& m : members) {
      if (m.id == id) return &m;
    }
    return nullptr;
  }
};

struct MemberAddResponse {
  ResponseHeader header;
  Member member;                // the one added (no name: it has not started)
  std::vector<Member> members;  // everyone, the new one included
};

// Maintenance status, answered by the member asked (a learner answers too).
struct StatusResponse {
  ResponseHeader header;
  std::string version;
  uint64_t db_size = 0;
  uint64_t db_size_in_use = 0;
  uint64_t leader = 0;  // 0: this member sees no leader
  uint64_t raft_index = 0;
  uint64_t raft_term = 0;
  uint64_t raft_applied_index = 0;
  bool is_learner = false;
  std::vector<std::string> errors;  // e.g. "etcdserver: no leader", an active alarm
};

// GET /health. etcd 3.4 says only true or false (false when an alarm is active, when the member
// sees no leader, or when a quorum read fails); `reason` says what we know about why.
struct HealthResponse {
  bool healthy = false;
  std::string reason;
};

// From GET /metrics: the running totals of etcd's disk latency histograms, from which a caller
// that reads them twice gets the mean latency between the two reads.
struct DiskLatencyTotals {
  double wal_fsync_seconds = 0;       // etcd_disk_wal_fsync_duration_seconds_sum
  uint64_t wal_fsyncs = 0;            // ..._count
  double backend_commit_seconds = 0;  // etcd_disk_backend_commit_duration_seconds_sum
  uint64_t backend_commits = 0;       // ..._count
};

// From GET /metrics: a member's connections to its peers, as etcd_network_active_peers reports
// them (one series per peer, labelled with the members' ids in hex): the peer's id -> whether a
// connection to it is active now. A leader that cannot reach a peer shows it 0 within seconds.
using PeerConnections = std::map<uint64_t, bool>;

enum class AlarmType { kNone, kNoSpace, kCorrupt };

std::string_view AlarmTypeName(AlarmType type);  // "NONE", "NOSPACE", "CORRUPT", as etcd spells

struct Alarm {
  uint64_t member_id = 0;
  AlarmType type = AlarmType::kNone;

  bool operator==(const Alarm&) const = default;
};

struct AlarmResponse {
  ResponseHeader header;
  std::vector<Alarm> alarms;  // for a list: the active ones; for a disarm: the one cleared
};

// HashKV of one member: the CRC-32C of its KV history up to the revision asked, from its
// compaction on. Two members' hashes are comparable only at the same compact revision.
struct HashKvResponse {
  ResponseHeader header;
  uint32_t hash = 0;
  int64_t compact_revision = 0;  // -1: never compacted
};

struct KeyValue {
  std::string key;
  std::string value;
  uint64_t create_revision = 0;
  uint64_t mod_revision = 0;
  uint64_t version = 0;
};

struct PutResponse {
  ResponseHeader header;  // header.revision is the revision of this write
};

// The answer of a compare-and-swap transaction (Client::CompareAndSwap).
struct TxnResponse {
  ResponseHeader header;   // header.revision: the store's revision after the transaction
  bool succeeded = false;  // the compare held and the put was applied (etcd omits false)
};

struct RangeResponse {
  ResponseHeader header;
  std::vector<KeyValue> kvs;
  uint64_t count = 0;
};

// One member's HashKV: a CRC-32C of its KV store's history up to `revision`, from the revision
// after `compact_revision` (-1: never compacted) on, with what compaction keeps of older ones.
// Two members, or a member and a restored snapshot, with the same data answer the same hash at
// the same revision as long as they were compacted at the same revision.
struct HashKV {
  std::string endpoint;   // the client URL that answered
  ResponseHeader header;  // header.revision: the member's current revision, not the hashed one
  uint32_t hash = 0;
  int64_t compact_revision = -1;

  bool operator==(const HashKV&) const = default;
};

// What a downloaded snapshot is: the database bytes written, and their SHA-256, which etcd sent
// and we verified.
struct SnapshotInfo {
  uint64_t size = 0;
  std::string sha256_hex;
};

}  // namespace etcd_mesos::etcd
