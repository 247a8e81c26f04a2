#include "mesos/json_codec.h"

#include <charconv>
#include <cmath>
#include <limits>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/reflection.h>

#include "common/encoding.h"

namespace etcd_mesos::mesos_codec {
namespace {

namespace pb = google::protobuf;
using FD = pb::FieldDescriptor;
using nlohmann::json;

// ---- Writing ------------------------------------------------------------------------------

json DoubleToJson(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return v;
}

json ScalarToJson(const pb::Message& m, const FD* f, int index) {
  const pb::Reflection* r = m.GetReflection();
  bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FD::CPPTYPE_INT32:
      return rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f);
    case FD::CPPTYPE_INT64:
      return rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f);
    case FD::CPPTYPE_UINT32:
      return rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f);
    case FD::CPPTYPE_UINT64:
      return rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f);
    case FD::CPPTYPE_DOUBLE:
      return DoubleToJson(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
    case FD::CPPTYPE_FLOAT:
      return DoubleToJson(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
    case FD::CPPTYPE_BOOL:
      return rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f);
    case FD::CPPTYPE_ENUM: {
      const pb::EnumValueDescriptor* e = rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f);
      return e->name();
    }
    case FD::CPPTYPE_STRING: {
      std::string s = rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
      if (f->type() == FD::TYPE_BYTES) return Base64Encode(s);
      return s;
    }
    case FD::CPPTYPE_MESSAGE:
      return MessageToJson(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f));
  }
  return nullptr;
}

json DefaultToJson(const FD* f) {
  switch (f->cpp_type()) {
    case FD::CPPTYPE_INT32:
      return f->default_value_int32();
    case FD::CPPTYPE_INT64:
      return f->default_value_int64();
    case FD::CPPTYPE_UINT32:
      return f->default_value_uint32();
    case FD::CPPTYPE_UINT64:
      return f->default_value_uint64();
    case FD::CPPTYPE_DOUBLE:
      return DoubleToJson(f->default_value_double());
    case FD::CPPTYPE_FLOAT:
      return DoubleToJson(f->default_value_float());
    case FD::CPPTYPE_BOOL:
      return f->default_value_bool();
    case FD::CPPTYPE_ENUM:
      return f->default_value_enum()->name();
    case FD::CPPTYPE_STRING:
      return f->type() == FD::TYPE_BYTES ? json(Base64Encode(f->default_value_string()))
                                         : json(f->default_value_string());
    case FD::CPPTYPE_MESSAGE:
      break;
  }
  return nullptr;
}

// Map fields are repeated entry messages on the wire; stout writes them as JSON objects.
json MapToJson(const pb::Message& m, const FD* f) {
  const pb::Reflection* r = m.GetReflection();
  json out = json::object();
  for (int i = 0; i < r->FieldSize(m, f); ++i) {
    const pb::Message& entry = r->GetRepeatedMessage(m, f, i);
    const FD* key = entry.GetDescriptor()->map_key();
    const FD* value = entry.GetDescriptor()->map_value();
    json k = ScalarToJson(entry, key, 0);
    out[k.is_string() ? k.get<std::string>() : k.dump()] = ScalarToJson(entry, value, 0);
  }
  return out;
}

// ---- Reading ------------------------------------------------------------------------------

std::string Where(const std::string& path, const FD* f) {
  return path.empty() ? f->name() : path + "." + f->name();
}

std::string_view TypeName(const json& j) { return j.type_name(); }

template <typename T>
Result<T> ReadInteger(const json& j, const std::string& where) {
  if (j.is_number_integer() || j.is_number_unsigned()) {
    if (j.is_number_unsigned()) {
      auto v = j.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
        return MakeError(ErrorCode::kInvalidArgument, "{}: {} is out of range", where, v);
      }
      return static_cast<T>(v);
    }
    auto v = j.get<int64_t>();
    if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        (v > 0 &&
         static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
      return MakeError(ErrorCode::kInvalidArgument, "{}: {} is out of range", where, v);
    }
    return static_cast<T>(v);
  }
  if (j.is_number_float()) {
    double d = j.get<double>();
    if (std::trunc(d) != d || d < static_cast<double>(std::numeric_limits<T>::min()) ||
        d > static_cast<double>(std::numeric_limits<T>::max())) {
      return MakeError(ErrorCode::kInvalidArgument, "{}: {} is not an integer in range", where, d);
    }
    return static_cast<T>(d);
  }
  if (j.is_string()) {  // Mesos accepts numbers given as strings
    const std::string& s = j.get_ref<const std::string&>();
    T v{};
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
      return MakeError(ErrorCode::kInvalidArgument, "{}: '{}' is not an integer in range", where,
                       s);
    }
    return v;
  }
  return MakeError(ErrorCode::kInvalidArgument, "{}: expected an integer, got {}", where,
                   TypeName(j));
}

Result<double> ReadDouble(const json& j, const std::string& where) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    if (s == "Infinity") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
    if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
    double v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (!s.empty() && ec == std::errc() && ptr == s.data() + s.size()) return v;
    return MakeError(ErrorCode::kInvalidArgument, "{}: '{}' is not a number", where, s);
  }
  return MakeError(ErrorCode::kInvalidArgument, "{}: expected a number, got {}", where,
                   TypeName(j));
}

Status ReadMessage(const json& j, pb::Message* m, const std::string& path);

// Sets (or adds, for repeated fields) one value. Returns OK without setting anything for an
// unknown enum name in a non-required field, as stout does.
Status ReadValue(const json& j, pb::Message* m, const FD* f, const std::string& where) {
  const pb::Reflection* r = m->GetReflection();
  bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FD::CPPTYPE_INT32: {
      auto v = ReadInteger<int32_t>(j, where);
      if (!v.ok()) return v.error();
      rep ? r->AddInt32(m, f, *v) : r->SetInt32(m, f, *v);
      return OkStatus();
    }
    case FD::CPPTYPE_INT64: {
      auto v = ReadInteger<int64_t>(j, where);
      if (!v.ok()) return v.error();
      rep ? r->AddInt64(m, f, *v) : r->SetInt64(m, f, *v);
      return OkStatus();
    }
    case FD::CPPTYPE_UINT32: {
      auto v = ReadInteger<uint32_t>(j, where);
      if (!v.ok()) return v.error();
      rep ? r->AddUInt32(m, f, *v) : r->SetUInt32(m, f, *v);
      return OkStatus();
    }
    case FD::CPPTYPE_UINT64: {
      auto v = ReadInteger<uint64_t>(j, where);
      if (!v.ok()) return v.error();
      rep ? r->AddUInt64(m, f, *v) : r->SetUInt64(m, f, *v);
      return OkStatus();
    }
    case FD::CPPTYPE_DOUBLE:
    case FD::CPPTYPE_FLOAT: {
      auto v = ReadDouble(j, where);
      if (!v.ok()) return v.error();
      if (f->cpp_type() == FD::CPPTYPE_DOUBLE) {
        rep ? r->AddDouble(m, f, *v) : r->SetDouble(m, f, *v);
      } else {
        float fv = static_cast<float>(*v);
        rep ? r->AddFloat(m, f, fv) : r->SetFloat(m, f, fv);
      }
      return OkStatus();
    }
    case FD::CPPTYPE_BOOL: {
      if (!j.is_boolean()) {
        return MakeError(ErrorCode::kInvalidArgument, "{}: expected true or false, got {}", where,
                         TypeName(j));
      }
      rep ? r->AddBool(m, f, j.get<bool>()) : r->SetBool(m, f, j.get<bool>());
      return OkStatus();
    }
    case FD::CPPTYPE_ENUM: {
      if (!j.is_string()) {
        return MakeError(ErrorCode::kInvalidArgument, "{}: expected an enum name, got {}", where,
                         TypeName(j));
      }
      const std::string& name = j.get_ref<const std::string&>();
      const pb::EnumValueDescriptor* e = f->enum_type()->FindValueByName(name);
      if (e == nullptr) {
        if (f->is_required()) {
          return MakeError(ErrorCode::kInvalidArgument, "{}: '{}' is not a value of {}", where,
                           name, f->enum_type()->name());
        }
        return OkStatus();  // newer peer, older us: drop it like Mesos does
      }
      rep ? r->AddEnum(m, f, e) : r->SetEnum(m, f, e);
      return OkStatus();
    }
    case FD::CPPTYPE_STRING: {
      if (!j.is_string()) {
        return MakeError(ErrorCode::kInvalidArgument, "{}: expected a string, got {}", where,
                         TypeName(j));
      }
      std::string s = j.get<std::string>();
      if (f->type() == FD::TYPE_BYTES) {
        auto decoded = Base64Decode(s);
        if (!decoded.ok()) return decoded.error().Context(where);
        s = std::move(*decoded);
      }
      rep ? r->AddString(m, f, std::move(s)) : r->SetString(m, f, std::move(s));
      return OkStatus();
    }
    case FD::CPPTYPE_MESSAGE: {
      pb::Message* child = rep ? r->AddMessage(m, f) : r->MutableMessage(m, f);
      return ReadMessage(j, child, where);
    }
  }
  return MakeError(ErrorCode::kInternal, "{}: unsupported field type", where);
}

Status ReadMap(const json& j, pb::Message* m, const FD* f, const std::string& where) {
  if (!j.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: expected an object, got {}", where,
                     TypeName(j));
  }
  const pb::Reflection* r = m->GetReflection();
  for (const auto& [k, v] : j.items()) {
    pb::Message* entry = r->AddMessage(m, f);
    const FD* key = entry->GetDescriptor()->map_key();
    const FD* value = entry->GetDescriptor()->map_value();
    std::string at = where + "." + k;
    Status s = ReadValue(json(k), entry, key, at);
    if (s.ok()) s = ReadValue(v, entry, value, at);
    if (!s.ok()) return s;
  }
  return OkStatus();
}

// Bounds recursion on hostile input: real Mesos messages nest a dozen levels at most.
constexpr int kMaxDepth = 64;
thread_local int read_depth = 0;

Status ReadMessage(const json& j, pb::Message* m, const std::string& path) {
  struct DepthGuard {
    DepthGuard() { ++read_depth; }
    ~DepthGuard() { --read_depth; }
  } guard;
  if (read_depth > kMaxDepth) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: nested deeper than {} levels", path,
                     kMaxDepth);
  }
  if (!j.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: expected an object, got {}",
                     path.empty() ? "message" : path, TypeName(j));
  }
  const pb::Descriptor* d = m->GetDescriptor();
  for (const auto& [key, value] : j.items()) {
    const FD* f = d->FindFieldByName(key);
    if (f == nullptr || value.is_null()) continue;  // unknown keys are ignored, as in Mesos
    std::string where = Where(path, f);
    Status s;
    if (f->is_map()) {
      s = ReadMap(value, m, f, where);
    } else if (f->is_repeated()) {
      if (!value.is_array()) {
        return MakeError(ErrorCode::kInvalidArgument, "{}: expected an array, got {}", where,
                         TypeName(value));
      }
      for (size_t i = 0; i < value.size() && s.ok(); ++i) {
        s = ReadValue(value[i], m, f, fmt::format("{}[{}]", where, i));
      }
    } else {
      s = ReadValue(value, m, f, where);
    }
    if (!s.ok()) return s;
  }
  return OkStatus();
}

}  // namespace

json MessageToJson(const pb::Message& m) {
  json out = json::object();
  const pb::Descriptor* d = m.GetDescriptor();
  const pb::Reflection* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FD* f = d->field(i);
    if (f->is_map()) {
      if (r->FieldSize(m, f) > 0) out[f->name()] = MapToJson(m, f);
    } else if (f->is_repeated()) {
      int n = r->FieldSize(m, f);
      if (n == 0) continue;
      json arr = json::array();
      for (int k = 0; k < n; ++k) arr.push_back(ScalarToJson(m, f, k));
      out[f->name()] = std::move(arr);
    } else if (r->HasField(m, f)) {
      out[f->name()] = ScalarToJson(m, f, 0);
    } else if (f->has_default_value() && !f->options().deprecated() &&
               f->cpp_type() != FD::CPPTYPE_MESSAGE && !f->real_containing_oneof()) {
      out[f->name()] = DefaultToJson(f);
    }
  }
  return out;
}

std::string DumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string MessageToJsonString(const pb::Message& m) { return DumpJson(MessageToJson(m)); }

Status MessageFromJson(const json& j, pb::Message* m) {
  m->Clear();
  Status s = ReadMessage(j, m, "");
  if (!s.ok()) return s;
  if (!m->IsInitialized()) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: missing required fields: {}",
                     m->GetDescriptor()->name(), m->InitializationErrorString());
  }
  return OkStatus();
}

Status MessageFromJsonString(std::string_view text, pb::Message* m) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: body is not valid JSON",
                     m->GetDescriptor()->name());
  }
  return MessageFromJson(j, m);
}

}  // namespace etcd_mesos::mesos_codec
