// The two Mesos HTTP API media types and the choice between them, for requests, responses and
// event streams. Content-Type must match exactly (Mesos answers `application/json;
// charset=utf-8` with 415), so parsing here is exact too.
//
// Threading: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <google/protobuf/message.h>

#include "common/result.h"

namespace etcd_mesos::mesos_codec {

enum class ContentType { kJson, kProtobuf };

inline constexpr std::string_view kJsonMediaType = "application/json";
inline constexpr std::string_view kProtobufMediaType = "application/x-protobuf";

std::string_view MediaType(ContentType type);
// Exact match of a Content-Type header; nullopt for anything else.
std::optional<ContentType> ParseContentType(std::string_view header);
// Mesos's choice for a SUBSCRIBE response from an Accept header: JSON wins when acceptable
// (a missing header accepts everything), else protobuf, else nullopt (406).
std::optional<ContentType> NegotiateAccept(std::optional<std::string_view> accept);

std::string Encode(const google::protobuf::Message& message, ContentType type);
// Decodes into `message`; a malformed body or missing required fields is kInvalidArgument.
Status Decode(std::string_view body, ContentType type, google::protobuf::Message* message);

}  // namespace etcd_mesos::mesos_codec
