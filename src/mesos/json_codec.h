// Mesos's own JSON mapping of protobuf messages (stout's, not proto3's canonical mapping):
// keys are proto field names; enums are their names; bytes are standard base64; 64-bit integers
// are written as numbers and read from numbers or strings; doubles also read "Infinity"; unknown
// keys are ignored; an unknown enum name in an optional field is dropped silently but is an error
// in a required one; missing required fields fail the parse. On output, unset optional fields
// with a non-deprecated default are written with that default, as stout does.
// (reference: shared/reference/mesos-v1-api.md section 0)
//
// Threading: pure functions.
#pragma once

#include <string>
#include <string_view>

#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>

#include "common/result.h"

namespace etcd_mesos::mesos_codec {

nlohmann::json MessageToJson(const google::protobuf::Message& message);
// Serializes JSON built from untrusted strings: proto2 `string` fields may hold invalid UTF-8
// (protobuf only logs it), which nlohmann's plain dump() throws on; such bytes become U+FFFD.
std::string DumpJson(const nlohmann::json& json);
std::string MessageToJsonString(const google::protobuf::Message& message);

// Fills `message` (cleared first) from JSON. Errors name the offending field path, e.g.
// "subscribe.framework_info.failover_timeout: expected a number, got an array".
Status MessageFromJson(const nlohmann::json& json, google::protobuf::Message* message);
Status MessageFromJsonString(std::string_view text, google::protobuf::Message* message);

}  // namespace etcd_mesos::mesos_codec
