// The etcd 3.4 v3 JSON gateway's wire format, as pure functions: request bodies out, response
// text in, typed values or an Error back. No I/O, so every decoder runs in unit tests and fuzzers
// without a server. Shapes are the ones recorded in reference/anchors.md section 8.
//
// Decoders treat the response as hostile: text that is not JSON, a field of the wrong type, a
// number that does not fit, or a missing required field is a kInvalidArgument error naming the
// field, never an exception or a crash. Fields etcd omits when zero decode to zero.
//
// Errors from etcd (any HTTP status but 200, body {"error","message","code"}) become an Error whose
// code says what the caller may do: kUnavailable means "retry later" (no leader, unhealthy
// cluster, a learner asked for something only voters answer, gRPC code 14), kRefused means etcd
// understood and said no (HTTP 412 / gRPC 9: "can only promote a learner member which is in sync
// with leader", "too many learner members in cluster"), kNotFound means the member does not exist.
//
// Threading: pure functions, and SnapshotStreamDecoder, a plain object owned by one caller.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "etcd/types.h"

namespace etcd_mesos::etcd {

// ---- Requests --------------------------------------------------------------------------------

std::string EncodeMemberAdd(const std::vector<std::string>& peer_urls, bool as_learner);
std::string EncodeMemberId(uint64_t id);           // promote and remove: {"ID":"<decimal>"}
std::string EncodeMoveLeader(uint64_t target_id);  // {"targetID":"<decimal>"}
std::string EncodeMemberUpdate(uint64_t id, const std::vector<std::string>& peer_urls);
std::string EncodeAlarmList();
std::string EncodeAlarmDisarm(uint64_t member_id, AlarmType type);
// Compaction of the KV history up to `revision`; physical: answered once the space is freed.
std::string EncodeCompaction(uint64_t revision, bool physical);
std::string EncodePut(std::string_view key, std::string_view value);
// A single-key range. `serializable` lets the member answer from its own state without a quorum
// round (possibly stale), which is also what works on a member that lost quorum.
std::string EncodeRange(std::string_view key, bool serializable);
// A transaction that puts `new_value` at `key` if the key holds `expected`, or, when `expected` is
// nullopt, if the key does not exist (its create revision is 0). Nothing happens otherwise.
std::string EncodeCompareAndSwap(std::string_view key, const std::optional<std::string>& expected,
                                 std::string_view new_value);

// ---- Responses -------------------------------------------------------------------------------

// The error etcd reports with a non-200 status. Never fails: a body that is not the usual
// {"error","message","code"} is classified by the HTTP status and quoted (shortened).
Error DecodeError(unsigned http_status, std::string_view body);

// Member list; also the answer of promote, remove and update, which carry the same `members`.
Result<MemberListResponse> DecodeMemberList(std::string_view json);
Result<MemberAddResponse> DecodeMemberAdd(std::string_view json);
Result<StatusResponse> DecodeStatus(std::string_view json);
// GET /health: 200 and 503 both carry {"health":"true"|"false"} (3.5 adds "reason").
Result<HealthResponse> DecodeHealth(unsigned http_status, std::string_view body);
// The Prometheus text of GET /metrics; kInvalidArgument when a series is missing or malformed.
Result<DiskLatencyTotals> DecodeDiskLatency(unsigned http_status, std::string_view body);
// The etcd_network_active_peers series of GET /metrics (none: a member without peers);
// kInvalidArgument naming a malformed one.
Result<PeerConnections> DecodePeerConnections(unsigned http_status, std::string_view body);
Result<AlarmResponse> DecodeAlarms(std::string_view json);
Result<PutResponse> DecodePut(std::string_view json);
Result<RangeResponse> DecodeRange(std::string_view json);
// The answer of POST /v3/kv/txn; "succeeded" is omitted when false.
Result<TxnResponse> DecodeTxn(std::string_view json);
// Defragment answers {} or a header; only its shape is checked.
Result<ResponseHeader> DecodeHeaderOnly(std::string_view json);

// What `etcdctl endpoint hashkv -w json` prints for one endpoint (its stdout, with stderr mixed
// in): the line holding [{"Endpoint","HashKV":{"header","hash","compact_revision"}}], numbers as
// JSON numbers. Without that line, the error etcdctl gave ("Error: ..."), as kUnavailable, or
// kRefused for a revision compacted away or not yet applied.
Result<HashKvResponse> DecodeEtcdctlHashKv(std::string_view output);
// `etcdctl endpoint hashkv --rev=<R> -w json` on stdout: one entry per endpoint that answered,
// [{"Endpoint":"http://...","HashKV":{"header":{...},"hash":N,"compact_revision":C}}], numbers
// as JSON numbers. etcdctl because etcd 3.4's gateway maps HashKV and Hash to the same path
// (POST /v3/maintenance/hash) and Hash wins there: the revision is ignored and the whole
// database, membership included, is hashed. An endpoint that failed is absent (etcdctl says why
// on stderr and exits 1): an empty array is not an error here.
Result<std::vector<HashKV>> DecodeEtcdctlHashKV(std::string_view json);

// The wrapper every call shares: 200 -> `decode(body)`, anything else -> DecodeError.
template <typename Decode>
auto DecodeResponse(unsigned http_status, std::string_view body, Decode decode)
    -> decltype(decode(body)) {
  if (http_status != 200) return DecodeError(http_status, body);
  return decode(body);
}

// ---- Snapshot stream -------------------------------------------------------------------------

// Decodes the body of POST /v3/maintenance/snapshot as it arrives, in pieces of any size:
// newline-delimited {"result":{"blob":"<base64>","remaining_bytes":"<n>"}} messages. The database
// comes in chunks whose remaining_bytes count down to 0 (omitted when 0); one more message then
// carries the SHA-256 of all the database bytes. Each database chunk is handed to `sink` once it
// is known not to be the checksum; Finish() checks the checksum and that nothing is missing.
//
// Every inconsistency is kDataLoss naming it: a line that is not such a message, a base64 error,
// chunk sizes that disagree with remaining_bytes, a message after the checksum, a stream that
// ends early, a checksum that does not match. An {"error":...} line is the error etcd sent.
class SnapshotStreamDecoder {
 public:
  using Sink = std::function<Status(std::string_view database_bytes)>;
  // `max_line_bytes` bounds the memory one message may take (etcd sends 32 KiB chunks, about
  // 44 KiB of base64 per line).
  explicit SnapshotStreamDecoder(Sink sink, size_t max_line_bytes = 4 << 20);
  ~SnapshotStreamDecoder();
  SnapshotStreamDecoder(const SnapshotStreamDecoder&) = delete;
  SnapshotStreamDecoder& operator=(const SnapshotStreamDecoder&) = delete;

  // Feeds the next piece of the body. After an error the decoder stays failed.
  Status Feed(std::string_view data);
  // The body has ended: verifies it was complete and the checksum matches.
  Result<SnapshotInfo> Finish();

  uint64_t database_bytes() const { return written_; }

 private:
  Status HandleLine(std::string_view line);
  Error Fail(Error error);

  Sink sink_;
  size_t max_line_bytes_;
  std::string line_;  // a partial line carried between Feed calls
  bool started_ = false;
  bool saw_end_of_db_ = false;  // a chunk with remaining_bytes 0 has arrived
  bool saw_checksum_ = false;
  std::string checksum_;
  uint64_t remaining_ = 0;  // remaining_bytes of the latest chunk
  uint64_t written_ = 0;
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> sha_;
  std::optional<Error> failed_;
};

}  // namespace etcd_mesos::etcd
