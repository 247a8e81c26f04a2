#include "etcd/codec.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

#include "common/encoding.h"

namespace etcd_mesos::etcd {
namespace {

using json = nlohmann::json;

// Bodies we quote in error messages are cut here, so that a hostile server cannot make our logs
// carry megabytes.
constexpr size_t kQuoteLimit = 200;

std::string Quote(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, kQuoteLimit)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (text.size() > kQuoteLimit) out += "...";
  return out;
}

// Never throws: text that is not JSON yields nullopt.
std::optional<json> Parse(std::string_view text) {
  json value = json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return std::nullopt;
  return value;
}

Result<json> ParseObject(std::string_view text, std::string_view what) {
  auto value = Parse(text);
  if (!value) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: response is not JSON: {}", what,
                     Quote(text));
  }
  if (!value->is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: response is not a JSON object: {}", what,
                     Quote(text));
  }
  return std::move(*value);
}

std::string TypeName(const json& v) { return v.type_name(); }

// Reads typed fields out of one JSON object, keeping the first error. Absent or null fields are
// the zero value, because the gateway omits zero values. Accessors return zero after an error so
// that decoders read straight through and check ok() once.
class Fields {
 public:
  Fields(const json& object, std::string where, std::optional<Error>* error)
      : object_(object), where_(std::move(where)), error_(error) {}

  const json* Get(const char* name) {
    auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  uint64_t U64(const char* name) {
    const json* v = Get(name);
    if (v == nullptr || failed()) return 0;
    auto parsed = ParseU64(*v);
    if (!parsed) Fail(name, "an unsigned 64-bit integer (decimal string)", *v);
    return parsed.value_or(0);
  }

  std::string Str(const char* name) {
    const json* v = Get(name);
    if (v == nullptr || failed()) return {};
    if (!v->is_string()) {
      Fail(name, "a string", *v);
      return {};
    }
    return v->get<std::string>();
  }

  bool Bool(const char* name) {
    const json* v = Get(name);
    if (v == nullptr || failed()) return false;
    if (!v->is_boolean()) {
      Fail(name, "a boolean", *v);
      return false;
    }
    return v->get<bool>();
  }

  std::vector<std::string> Strs(const char* name) {
    std::vector<std::string> out;
    const json* v = Get(name);
    if (v == nullptr || failed()) return out;
    if (!v->is_array()) {
      Fail(name, "an array of strings", *v);
      return out;
    }
    for (const auto& item : *v) {
      if (!item.is_string()) {
        Fail(name, "an array of strings", item);
        return {};
      }
      out.push_back(item.get<std::string>());
    }
    return out;
  }

  // Base64 `bytes` field.
  std::string Bytes(const char* name) {
    std::string text = Str(name);
    if (failed() || text.empty()) return {};
    auto decoded = Base64Decode(text);
    if (!decoded.ok()) {
      Fail(name, "base64 bytes", json(text));
      return {};
    }
    return std::move(*decoded);
  }

  // A nested object (nullptr if absent); anything but an object is an error.
  const json* Object(const char* name) {
    const json* v = Get(name);
    if (v == nullptr || failed()) return nullptr;
    if (!v->is_object()) {
      Fail(name, "an object", *v);
      return nullptr;
    }
    return v;
  }

  const json* Array(const char* name) {
    const json* v = Get(name);
    if (v == nullptr || failed()) return nullptr;
    if (!v->is_array()) {
      Fail(name, "an array", *v);
      return nullptr;
    }
    return v;
  }

  void Require(const char* name) {
    if (!failed() && Get(name) == nullptr) {
      *error_ = MakeError(ErrorCode::kInvalidArgument, "{}: field {} is missing", where_, name);
    }
  }

  bool failed() const { return error_->has_value(); }
  const std::string& where() const { return where_; }
  std::optional<Error>* error() const { return error_; }

  // Exposed for the decoders' own checks.
  void Fail(const char* name, std::string_view expected, const json& got) {
    if (failed()) return;
    *error_ = MakeError(ErrorCode::kInvalidArgument, "{}: field {} should be {}, got {} {}", where_,
                        name, expected, TypeName(got), Quote(got.dump()));
  }

  static std::optional<uint64_t> ParseU64(const json& v) {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer()) {
      int64_t i = v.get<int64_t>();
      if (i < 0) return std::nullopt;
      return static_cast<uint64_t>(i);
    }
    if (!v.is_string()) return std::nullopt;  // floats, too: a double cannot carry an ID
    const auto& s = v.get_ref<const std::string&>();
    if (s.empty() || s.size() > 20) return std::nullopt;
    uint64_t out = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return out;
  }

 private:
  const json& object_;
  std::string where_;
  std::optional<Error>* error_;
};

ResponseHeader ReadHeader(Fields& top) {
  ResponseHeader h;
  const json* obj = top.Object("header");
  if (obj == nullptr) return h;
  Fields f(*obj, top.where() + ": header", top.error());
  h.cluster_id = f.U64("cluster_id");
  h.member_id = f.U64("member_id");
  h.revision = f.U64("revision");
  h.raft_term = f.U64("raft_term");
  return h;
}

Member ReadMember(const json& v, const std::string& where, std::optional<Error>* error) {
  Member m;
  if (!v.is_object()) {
    *error = MakeError(ErrorCode::kInvalidArgument, "{}: should be an object, got {}", where,
                       TypeName(v));
    return m;
  }
  Fields f(v, where, error);
  f.Require("ID");
  m.id = f.U64("ID");
  if (!f.failed() && m.id == 0) {
    *error = MakeError(ErrorCode::kInvalidArgument, "{}: member ID 0 is not a member", where);
  }
  m.name = f.Str("name");
  m.peer_urls = f.Strs("peerURLs");
  m.client_urls = f.Strs("clientURLs");
  m.is_learner = f.Bool("isLearner");
  return m;
}

std::vector<Member> ReadMembers(Fields& top) {
  std::vector<Member> out;
  const json* arr = top.Array("members");
  if (arr == nullptr) return out;
  for (size_t i = 0; i < arr->size() && !top.failed(); ++i) {
    out.push_back(
        ReadMember((*arr)[i], fmt::format("{}: members[{}]", top.where(), i), top.error()));
  }
  return out;
}

template <typename T>
Result<T> Finish(T value, const std::optional<Error>& error) {
  if (error) return *error;
  return value;
}

std::optional<AlarmType> ParseAlarmType(const json& v) {
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (s == "NONE") return AlarmType::kNone;
    if (s == "NOSPACE") return AlarmType::kNoSpace;
    if (s == "CORRUPT") return AlarmType::kCorrupt;
    return std::nullopt;
  }
  if (v.is_number_integer()) {
    auto i = v.get<int64_t>();
    if (i >= 0 && i <= 2) return static_cast<AlarmType>(i);
  }
  return std::nullopt;
}

// gRPC status codes (google.golang.org/grpc/codes) as etcd reports them.
enum GrpcCode {
  kGrpcCancelled = 1,
  kGrpcUnknown = 2,
  kGrpcInvalidArgument = 3,
  kGrpcDeadlineExceeded = 4,
  kGrpcNotFound = 5,
  kGrpcAlreadyExists = 6,
  kGrpcPermissionDenied = 7,
  kGrpcResourceExhausted = 8,
  kGrpcFailedPrecondition = 9,
  kGrpcAborted = 10,
  kGrpcOutOfRange = 11,
  kGrpcUnimplemented = 12,
  kGrpcInternal = 13,
  kGrpcUnavailable = 14,
  kGrpcDataLoss = 15,
  kGrpcUnauthenticated = 16,
};

ErrorCode CodeForHttpStatus(unsigned status) {
  switch (status) {
    case 400:
      return ErrorCode::kInvalidArgument;
    case 401:
    case 403:
      return ErrorCode::kUnauthenticated;
    case 404:
      return ErrorCode::kNotFound;
    case 409:
      return ErrorCode::kConflict;
    case 408:
      return ErrorCode::kUnavailable;
    default:
      break;
  }
  // A server error is the server's trouble, which may pass; a client error is a "no".
  if (status >= 500 && status < 600) return ErrorCode::kUnavailable;
  if (status >= 400 && status < 500) return ErrorCode::kRefused;
  return ErrorCode::kInvalidArgument;  // 1xx/2xx/3xx instead of 200: not the gateway we know
}

ErrorCode CodeForGrpc(int64_t code, unsigned http_status) {
  switch (code) {
    case kGrpcCancelled:
    case kGrpcDeadlineExceeded:
    case kGrpcAborted:
    case kGrpcUnavailable:
      return ErrorCode::kUnavailable;
    case kGrpcInvalidArgument:
    case kGrpcOutOfRange:
      return ErrorCode::kInvalidArgument;
    case kGrpcNotFound:
      return ErrorCode::kNotFound;
    case kGrpcAlreadyExists:
      return ErrorCode::kAlreadyExists;
    case kGrpcPermissionDenied:
    case kGrpcUnauthenticated:
      return ErrorCode::kUnauthenticated;
    // NOSPACE (8) and the membership rules (9) are etcd saying no, with the reason in the text.
    case kGrpcResourceExhausted:
    case kGrpcFailedPrecondition:
    case kGrpcUnimplemented:
      return ErrorCode::kRefused;
    case kGrpcDataLoss:
      return ErrorCode::kDataLoss;
    case kGrpcUnknown:
    case kGrpcInternal:
    default:
      return CodeForHttpStatus(http_status);
  }
}

}  // namespace

std::string_view AlarmTypeName(AlarmType type) {
  switch (type) {
    case AlarmType::kNone:
      return "NONE";
    case AlarmType::kNoSpace:
      return "NOSPACE";
    case AlarmType::kCorrupt:
      return "CORRUPT";
  }
  return "NONE";
}

// ---- Requests --------------------------------------------------------------------------------

std::string EncodeMemberAdd(const std::vector<std::string>& peer_urls, bool as_learner) {
  json body = {{"peerURLs", peer_urls}};
  if (as_learner) body["isLearner"] = true;
  return body.dump();
}

std::string EncodeMemberId(uint64_t id) { return json{{"ID", std::to_string(id)}}.dump(); }

std::string EncodeMoveLeader(uint64_t target_id) {
  return json{{"targetID", std::to_string(target_id)}}.dump();
}

std::string EncodeMemberUpdate(uint64_t id, const std::vector<std::string>& peer_urls) {
  return json{{"ID", std::to_string(id)}, {"peerURLs", peer_urls}}.dump();
}

std::string EncodeAlarmList() { return json{{"action", "GET"}}.dump(); }

std::string EncodeAlarmDisarm(uint64_t member_id, AlarmType type) {
  return json{{"action", "DEACTIVATE"},
              {"memberID", std::to_string(member_id)},
              {"alarm", std::string(AlarmTypeName(type))}}
      .dump();
}

std::string EncodeCompaction(uint64_t revision, bool physical) {
  return json{{"revision", std::to_string(revision)}, {"physical", physical}}.dump();
}

std::string EncodePut(std::string_view key, std::string_view value) {
  return json{{"key", Base64Encode(key)}, {"value", Base64Encode(value)}}.dump();
}

std::string EncodeRange(std::string_view key, bool serializable) {
  json body = {{"key", Base64Encode(key)}};
  if (serializable) body["serializable"] = true;
  return body.dump();
}

std::string EncodeCompareAndSwap(std::string_view key, const std::optional<std::string>& expected,
                                 std::string_view new_value) {
  json compare = {{"key", Base64Encode(key)}, {"result", "EQUAL"}};
  if (expected) {
    // A VALUE compare on a key that does not exist fails in etcd: absent never equals a value.
    compare["target"] = "VALUE";
    compare["value"] = Base64Encode(*expected);
  } else {
    compare["target"] = "CREATE";
    compare["create_revision"] = "0";
  }
  json put = {{"request_put", {{"key", Base64Encode(key)}, {"value", Base64Encode(new_value)}}}};
  return json{{"compare", json::array({compare})}, {"success", json::array({put})}}.dump();
}

// ---- Responses -------------------------------------------------------------------------------

Error DecodeError(unsigned http_status, std::string_view body) {
  std::optional<json> parsed = Parse(body);
  std::string message;
  std::optional<int64_t> grpc;
  if (parsed && parsed->is_object()) {
    const json* source = &*parsed;
    // A streaming call reports {"error":{"grpc_code":14,"message":"..."}} mid-stream.
    auto nested = parsed->find("error");
    if (nested != parsed->end() && nested->is_object()) source = &*nested;
    for (const char* key : {"message", "error"}) {
      auto it = source->find(key);
      if (it != source->end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
        message = it->get<std::string>();
        break;
      }
    }
    for (const char* key : {"code", "grpc_code"}) {
      auto it = source->find(key);
      if (it != source->end() && it->is_number_integer()) {
        grpc = it->get<int64_t>();
        break;
      }
    }
  }
  if (message.empty()) message = body.empty() ? "(empty body)" : Quote(body);
  ErrorCode code = grpc ? CodeForGrpc(*grpc, http_status) : CodeForHttpStatus(http_status);
  if (grpc) {
    return MakeError(code, "etcd answered HTTP {} (gRPC code {}): {}", http_status, *grpc,
                     Quote(message));
  }
  return MakeError(code, "etcd answered HTTP {}: {}", http_status, Quote(message));
}

Result<MemberListResponse> DecodeMemberList(std::string_view text) {
  auto obj = ParseObject(text, "member list");
  if (!obj.ok()) return obj.error();
  std::optional<Error> error;
  Fields f(*obj, "member list", &error);
  MemberListResponse out;
  out.header = ReadHeader(f);
  out.members = ReadMembers(f);
  return Finish(std::move(out), error);
}

Result<MemberAddResponse> DecodeMemberAdd(std::string_view text) {
  auto obj = ParseObject(text, "member add");
  if (!obj.ok()) return obj.error();
  std::optional<Error> error;
  Fields f(*obj, "member add", &error);
  MemberAddResponse out;
  out.header = ReadHeader(f);
  f.Require("member");
  const json* member = f.Object("member");
  if (member != nullptr) out.member = ReadMember(*member, "member add: member", &error);
  out.members = ReadMembers(f);
  return Finish(std::move(out), error);
}

Result<StatusResponse> DecodeStatus(std::string_view text) {
  auto obj = ParseObject(text, "status");
  if (!obj.ok()) return obj.error();
  std::optional<Error> error;
  Fields f(*obj, "status", &error);
  StatusResponse out;
  out.header = ReadHeader(f);
  // Every member knows its version; an answer without one is not a status.
  f.Require("version");
  out.version = f.Str("version");
  out.db_size = f.U64("dbSize");
  out.db_size_in_use = f.U64("dbSizeInUse");
  out.leader = f.U64("leader");
  out.raft_index = f.U64("raftIndex");
  out.raft_term = f.U64("raftTerm");
  out.raft_applied_index = f.U64("raftAppliedIndex");
  out.is_learner = f.Bool("isLearner");
  out.errors = f.Strs("errors");
  return Finish(std::move(out), error);
}

namespace {
// The value of the unlabelled sample `name` in Prometheus text ("name value" on a line of its own).
std::optional<double> PrometheusSample(std::string_view text, std::string_view name) {
  size_t at = 0;
  while ((at = text.find(name, at)) != std::string_view::npos) {
    bool line_start = at == 0 || text[at - 1] == '\n';
    size_t after = at + name.size();
    at = after;
    if (!line_start || after >= text.size() || text[after] != ' ') continue;
    size_t end = text.find('\n', after);
    std::string value(
        text.substr(after + 1, end == std::string_view::npos ? end : end - after - 1));
    char* parsed_end = nullptr;
    double v = std::strtod(value.c_str(), &parsed_end);
    if (parsed_end == value.c_str() || !std::isfinite(v) || v < 0) return std::nullopt;
    return v;
  }
  return std::nullopt;
}
}  // namespace

Result<DiskLatencyTotals> DecodeDiskLatency(unsigned http_status, std::string_view body) {
  if (http_status != 200) return DecodeError(http_status, body);
  DiskLatencyTotals out;
  double wal_count = 0, commit_count = 0;
  for (auto [name, value] :
       {std::pair{"etcd_disk_wal_fsync_duration_seconds_sum", &out.wal_fsync_seconds},
        std::pair{"etcd_disk_wal_fsync_duration_seconds_count", &wal_count},
        std::pair{"etcd_disk_backend_commit_duration_seconds_sum", &out.backend_commit_seconds},
        std::pair{"etcd_disk_backend_commit_duration_seconds_count", &commit_count}}) {
    auto v = PrometheusSample(body, name);
    if (!v) {
      return MakeError(ErrorCode::kInvalidArgument, "metrics: no valid sample of {}", name);
    }
    *value = *v;
  }
  out.wal_fsyncs = static_cast<uint64_t>(wal_count);
  out.backend_commits = static_cast<uint64_t>(commit_count);
  return out;
}

Result<PeerConnections> DecodePeerConnections(unsigned http_status, std::string_view body) {
  if (http_status != 200) return DecodeError(http_status, body);
  constexpr std::string_view kSeries = "etcd_network_active_peers{";
  PeerConnections out;
  size_t at = 0;
  while ((at = body.find(kSeries, at)) != std::string_view::npos) {
    if (at > 0 && body[at - 1] != '\n') {
      at += kSeries.size();
      continue;
    }
    size_t end = body.find('\n', at);
    std::string_view line = body.substr(at, end == std::string_view::npos ? body.npos : end - at);
    at += kSeries.size();
    auto bad = [&] {
      return MakeError(ErrorCode::kInvalidArgument, "metrics: malformed peer series '{}'",
                       line.substr(0, 120));
    };
    auto label = [&](std::string_view key) -> std::optional<uint64_t> {
      std::string quoted = std::string(key) + "=\"";
      size_t from = line.find(quoted);
      if (from == std::string_view::npos) return std::nullopt;
      from += quoted.size();
      size_t to = line.find('"', from);
      if (to == std::string_view::npos || to == from) return std::nullopt;
      uint64_t id = 0;
      auto [ptr, ec] = std::from_chars(line.data() + from, line.data() + to, id, 16);
      if (ec != std::errc() || ptr != line.data() + to) return std::nullopt;
      return id;
    };
    auto remote = label("Remote");
    size_t close = line.find("} ");
    if (!remote || !label("Local") || close == std::string_view::npos) return bad();
    double value = 0;
    std::string number(line.substr(close + 2));
    char* stop = nullptr;
    value = std::strtod(number.c_str(), &stop);
    if (stop == number.c_str()) return bad();
    out[*remote] = value >= 1;
  }
  return out;
}

Result<HealthResponse> DecodeHealth(unsigned http_status, std::string_view body) {
  if (http_status != 200 && http_status != 503) return DecodeError(http_status, body);
  auto obj = ParseObject(body, "health");
  if (!obj.ok()) {
    // A 503 that is not etcd's health document is a server that is not ready: retry later.
    if (http_status == 503) return DecodeError(http_status, body);
    return obj.error();
  }
  std::optional<Error> error;
  Fields f(*obj, "health", &error);
  f.Require("health");
  const json* health = f.Get("health");
  HealthResponse out;
  if (health != nullptr) {
    if (health->is_boolean()) {
      out.healthy = health->get<bool>();
    } else if (health->is_string() && (*health == "true" || *health == "false")) {
      out.healthy = *health == "true";
    } else {
      f.Fail("health", "\"true\" or \"false\"", *health);
    }
  }
  out.reason = f.Str("reason");  // etcd 3.5+; 3.4 gives none
  if (error) return *error;
  if (out.healthy && http_status != 200) {
    return MakeError(ErrorCode::kInvalidArgument, "health: HTTP {} with health true", http_status);
  }
  if (!out.healthy && out.reason.empty()) {
    out.reason =
        "etcd reports unhealthy (an alarm is active, it sees no leader, or a quorum read "
        "failed)";
  }
  return out;
}

Result<AlarmResponse> DecodeAlarms(std::string_view text) {
  auto obj = ParseObject(text, "alarm");
  if (!obj.ok()) return obj.error();
  std::optional<Error> error;
  Fields f(*obj, "alarm", &error);
  AlarmResponse out;
  out.header = ReadHeader(f);
  const json* arr = f.Array("alarms");
  for (size_t i = 0; arr != nullptr && i < arr->size() && !error; ++i) {
    const json& item = (*arr)[i];
    std::string where = fmt::format("alarm: alarms[{}]", i);
    if (!item.is_object()) {
      error = MakeError(ErrorCode::kInvalidArgument, "{}: should be an object", where);
      break;
    }
    Fields a(item, where, &error);
    Alarm alarm;
    alarm.member_id = a.U64("memberID");
    if (const json* type = a.Get("alarm"); type != nullptr && !error) {
      auto parsed = ParseAlarmType(*type);
      if (!parsed) a.Fail("alarm", "NONE, NOSPACE or CORRUPT", *type);
      alarm.type = parsed.value_or(AlarmType::kNone);
    }
    out.alarms.push_back(alarm);
  }
  return Finish(std::move(out), error);
}

Result<PutResponse> DecodePut(std::string_view text) {
  auto obj = ParseObject(text, "put");
  if (!obj.ok()) return obj.error();
  std::optional<Error> error;
  Fields f(*obj, "put", &error);
  PutResponse out;
  f.Require("header");
  out.header = ReadHeader(f);
  return Finish(std::move(out), error);
}

Result<RangeResponse> DecodeRange(std::string_view text) {
  auto obj = ParseObject(text, "range");
  if (!obj.ok()) return obj.error();
  std::optional<Error> error;
  Fields f(*obj, "range", &error);
  RangeResponse out;
  out.header = ReadHeader(f);
  out.count = f.U64("count");
  const json* arr = f.Array("kvs");
  for (size_t i = 0; arr != nullptr && i < arr->size() && !error; ++i) {
    const json& item = (*arr)[i];
    std::string where = fmt::format("range: kvs[{}]", i);
    if (!item.is_object()) {
      error = MakeError(ErrorCode::kInvalidArgument, "{}: should be an object", where);
      break;
    }
    Fields k(item, where, &error);
    KeyValue kv;
    kv.key = k.Bytes("key");
    kv.value = k.Bytes("value");
    kv.create_revision = k.U64("create_revision");
    kv.mod_revision = k.U64("mod_revision");
    kv.version = k.U64("version");
    out.kvs.push_back(std::move(kv));
  }
  return Finish(std::move(out), error);
}

Result<TxnResponse> DecodeTxn(std::string_view text) {
  auto obj = ParseObject(text, "txn");
  if (!obj.ok()) return obj.error();
  std::optional<Error> error;
  Fields f(*obj, "txn", &error);
  TxnResponse out;
  f.Require("header");
  out.header = ReadHeader(f);
  out.succeeded = f.Bool("succeeded");
  f.Array("responses");  // only its type is checked: a put's answer carries nothing we need
  return Finish(std::move(out), error);
}

Result<ResponseHeader> DecodeHeaderOnly(std::string_view text) {
  auto obj = ParseObject(text, "response");
  if (!obj.ok()) return obj.error();
  std::optional<Error> error;
  Fields f(*obj, "response", &error);
  ResponseHeader header = ReadHeader(f);
  return Finish(header, error);
}

Result<HashKvResponse> DecodeEtcdctlHashKv(std::string_view output) {
  std::string_view rest = output;
  std::string error;
  while (!rest.empty()) {
    size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (line.starts_with("Error: ")) error = std::string(line.substr(7));
    if (!line.starts_with("[")) continue;
    auto parsed = Parse(line);
    if (!parsed || !parsed->is_array()) continue;
    if (parsed->empty()) continue;  // etcdctl printed no answer: its error follows
    const json& entry = parsed->front();
    if (!entry.is_object() || !entry.contains("HashKV") || !entry["HashKV"].is_object()) {
      return MakeError(ErrorCode::kInvalidArgument, "hashkv: no HashKV in '{}'", Quote(line));
    }
    const json& kv = entry["HashKV"];
    auto number = [&](const json& in, const char* key, auto& out) -> bool {
      if (!in.contains(key)) return true;  // omitted when zero
      const json& v = in[key];
      if (!v.is_number_integer()) return false;
      using T = std::remove_reference_t<decltype(out)>;
      if (v.is_number_unsigned()) {
        uint64_t u = v.get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
        out = static_cast<T>(u);
        return true;
      }
      int64_t i = v.get<int64_t>();
      if (i < static_cast<int64_t>(std::numeric_limits<T>::min())) return false;
      out = static_cast<T>(i);
      return true;
    };
    HashKvResponse out;
    bool ok = number(kv, "hash", out.hash) && number(kv, "compact_revision", out.compact_revision);
    if (ok && kv.contains("header")) {
      const json& h = kv["header"];
      ok = h.is_object() && number(h, "cluster_id", out.header.cluster_id) &&
           number(h, "member_id", out.header.member_id) &&
           number(h, "revision", out.header.revision) &&
           number(h, "raft_term", out.header.raft_term);
    }
    if (!ok) {
      return MakeError(ErrorCode::kInvalidArgument, "hashkv: malformed answer '{}'", Quote(line));
    }
    return out;
  }
  if (error.empty()) {
    return MakeError(ErrorCode::kUnavailable, "hashkv: etcdctl printed no answer: '{}'",
                     Quote(output));
  }
  bool refused = error.find("compacted") != std::string::npos ||
                 error.find("future revision") != std::string::npos;
  return MakeError(refused ? ErrorCode::kRefused : ErrorCode::kUnavailable, "hashkv: {}",
                   Quote(error));
}

Result<std::vector<HashKV>> DecodeEtcdctlHashKV(std::string_view text) {
  auto value = Parse(text);
  if (!value || !value->is_array()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "etcdctl endpoint hashkv: output is not a JSON array: {}", Quote(text));
  }
  std::optional<Error> error;
  std::vector<HashKV> out;
  for (size_t i = 0; i < value->size() && !error; ++i) {
    const json& item = (*value)[i];
    std::string where = fmt::format("etcdctl endpoint hashkv: [{}]", i);
    if (!item.is_object()) {
      error = MakeError(ErrorCode::kInvalidArgument, "{}: should be an object", where);
      break;
    }
    Fields entry(item, where, &error);
    entry.Require("HashKV");
    HashKV h;
    h.endpoint = entry.Str("Endpoint");
    const json* body = entry.Object("HashKV");
    if (body == nullptr) break;
    Fields f(*body, where + ": HashKV", &error);
    f.Require("hash");
    h.header = ReadHeader(f);
    uint64_t hash = f.U64("hash");
    if (hash > UINT32_MAX) f.Fail("hash", "a 32-bit CRC", (*body)["hash"]);
    h.hash = static_cast<uint32_t>(hash);
    // -1 (never compacted) or a revision.
    if (const json* c = f.Get("compact_revision"); c != nullptr) {
      if (c->is_number_integer() && c->get<int64_t>() >= -1) {
        h.compact_revision = c->get<int64_t>();
      } else {
        f.Fail("compact_revision", "-1 or a revision", *c);
      }
    }
    out.push_back(std::move(h));
  }
  return Finish(std::move(out), error);
}

// ---- Snapshot stream -------------------------------------------------------------------------

SnapshotStreamDecoder::SnapshotStreamDecoder(Sink sink, size_t max_line_bytes)
    : sink_(std::move(sink)),
      max_line_bytes_(max_line_bytes),
      sha_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) {
  if (!sha_ || EVP_DigestInit_ex(sha_.get(), EVP_sha256(), nullptr) != 1) {
    failed_ = MakeError(ErrorCode::kInternal, "snapshot: cannot initialise SHA-256");
  }
}

SnapshotStreamDecoder::~SnapshotStreamDecoder() = default;

Error SnapshotStreamDecoder::Fail(Error error) {
  if (!failed_) failed_ = std::move(error);
  return *failed_;
}

Status SnapshotStreamDecoder::Feed(std::string_view data) {
  if (failed_) return *failed_;
  while (!data.empty()) {
    size_t newline = data.find('\n');
    std::string_view piece = data.substr(0, newline);
    if (line_.size() + piece.size() > max_line_bytes_) {
      return Fail(MakeError(ErrorCode::kDataLoss, "snapshot: a message is longer than {} bytes",
                            max_line_bytes_));
    }
    if (newline == std::string_view::npos) {
      line_.append(piece);
      return OkStatus();
    }
    Status handled = OkStatus();
    if (line_.empty()) {
      handled = HandleLine(piece);  // the common case: a whole line in one piece, no copy
    } else {
      line_.append(piece);
      handled = HandleLine(line_);
      line_.clear();
    }
    if (!handled.ok()) return Fail(handled.error());
    data.remove_prefix(newline + 1);
  }
  return OkStatus();
}

Status SnapshotStreamDecoder::HandleLine(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  if (line.empty()) return OkStatus();
  auto parsed = Parse(line);
  if (!parsed || !parsed->is_object()) {
    return MakeError(ErrorCode::kDataLoss, "snapshot: malformed message: {}", Quote(line));
  }
  if (parsed->contains("error")) {
    return DecodeError(200, line).Context("snapshot: etcd ended the stream with an error");
  }
  auto result = parsed->find("result");
  if (result == parsed->end() || !result->is_object()) {
    return MakeError(ErrorCode::kDataLoss, "snapshot: message without a result: {}", Quote(line));
  }
  std::optional<Error> error;
  Fields f(*result, "snapshot: message", &error);
  uint64_t remaining = f.U64("remaining_bytes");
  std::string blob = f.Bytes("blob");
  if (error) return Error{ErrorCode::kDataLoss, error->message};

  if (saw_checksum_) {
    return MakeError(ErrorCode::kDataLoss, "snapshot: a message arrived after the checksum");
  }
  if (saw_end_of_db_) {
    // The database is complete (remaining_bytes reached 0): this is the SHA-256 message.
    if (remaining != 0) {
      return MakeError(ErrorCode::kDataLoss,
                       "snapshot: remaining_bytes {} after the database was complete", remaining);
    }
    saw_checksum_ = true;
    checksum_ = std::move(blob);
    return OkStatus();
  }
  if (blob.empty()) {
    return MakeError(ErrorCode::kDataLoss, "snapshot: an empty database chunk");
  }
  // Each chunk must take exactly its own size off remaining_bytes; anything else means bytes
  // were lost or invented on the way.
  if (started_ && (remaining_ < blob.size() || remaining_ - blob.size() != remaining)) {
    return MakeError(ErrorCode::kDataLoss,
                     "snapshot: a chunk of {} bytes took remaining_bytes from {} to {}",
                     blob.size(), remaining_, remaining);
  }
  started_ = true;
  remaining_ = remaining;
  if (remaining == 0) saw_end_of_db_ = true;
  if (EVP_DigestUpdate(sha_.get(), blob.data(), blob.size()) != 1) {
    return MakeError(ErrorCode::kInternal, "snapshot: SHA-256 update failed");
  }
  written_ += blob.size();
  return sink_(blob);
}

Result<SnapshotInfo> SnapshotStreamDecoder::Finish() {
  if (failed_) return *failed_;
  std::string_view rest = line_;
  while (!rest.empty() && (rest.back() == '\r' || rest.back() == ' ')) rest.remove_suffix(1);
  if (!rest.empty()) {
    // The last line may lack its newline; take it if it is a whole message.
    if (Status last = HandleLine(rest); !last.ok()) {
      return Fail(MakeError(ErrorCode::kDataLoss,
                            "snapshot: the stream ended inside a message ({})",
                            last.error().message));
    }
    line_.clear();
  }
  if (!started_) {
    return Fail(MakeError(ErrorCode::kDataLoss, "snapshot: the stream ended before any data"));
  }
  if (!saw_end_of_db_) {
    return Fail(MakeError(ErrorCode::kDataLoss,
                          "snapshot: truncated: the stream ended with {} database bytes still to "
                          "come (after {})",
                          remaining_, written_));
  }
  if (!saw_checksum_) {
    return Fail(MakeError(ErrorCode::kDataLoss,
                          "snapshot: truncated: the stream ended without the SHA-256 checksum"));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  if (EVP_DigestFinal_ex(sha_.get(), digest, &digest_size) != 1 || digest_size != 32) {
    return Fail(MakeError(ErrorCode::kInternal, "snapshot: SHA-256 final failed"));
  }
  std::string computed(reinterpret_cast<const char*>(digest), digest_size);
  if (checksum_.size() != 32) {
    return Fail(MakeError(ErrorCode::kDataLoss,
                          "snapshot: the checksum message has {} bytes, a SHA-256 has 32",
                          checksum_.size()));
  }
  if (checksum_ != computed) {
    return Fail(MakeError(ErrorCode::kDataLoss,
                          "snapshot: checksum mismatch: etcd sent {}, the {} bytes received hash "
                          "to {}",
                          HexEncode(checksum_), written_, HexEncode(computed)));
  }
  // Later Finish() calls must not pretend success on a consumed digest.
  failed_ = MakeError(ErrorCode::kInternal, "snapshot: Finish() called twice");
  return SnapshotInfo{written_, HexEncode(computed)};
}

}  // namespace etcd_mesos::etcd
