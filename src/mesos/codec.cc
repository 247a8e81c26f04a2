#include "mesos/codec.h"

#include <vector>

#include "mesos/json_codec.h"

namespace etcd_mesos::mesos_codec {

std::string_view MediaType(ContentType type) {
  return type == ContentType::kJson ? kJsonMediaType : kProtobufMediaType;
}

std::optional<ContentType> ParseContentType(std::string_view header) {
  if (header == kJsonMediaType) return ContentType::kJson;
  if (header == kProtobufMediaType) return ContentType::kProtobuf;
  return std::nullopt;
}

namespace {
std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True if one comma-separated Accept entry admits `type` with a non-zero quality.
bool Admits(std::string_view entry, std::string_view type) {
  std::string_view range = Trim(entry.substr(0, entry.find(';')));
  if (size_t q = entry.find("q="); q != std::string_view::npos) {
    std::string_view value = Trim(entry.substr(q + 2));
    if (value == "0" || value == "0.0" || value == "0.00" || value == "0.000") return false;
  }
  if (range == "*/*" || range == type) return true;
  return range == "application/*" && type.starts_with("application/");
}
}  // namespace

std::optional<ContentType> NegotiateAccept(std::optional<std::string_view> accept) {
  if (!accept || Trim(*accept).empty()) return ContentType::kJson;
  std::vector<std::string_view> entries;
  std::string_view rest = *accept;
  while (true) {
    size_t comma = rest.find(',');
    entries.push_back(rest.substr(0, comma));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  for (auto type : {ContentType::kJson, ContentType::kProtobuf}) {
    for (auto e : entries) {
      if (Admits(e, MediaType(type))) return type;
    }
  }
  return std::nullopt;
}

std::string Encode(const google::protobuf::Message& message, ContentType type) {
  if (type == ContentType::kJson) return MessageToJsonString(message);
  // Partial: a message missing a required field is the peer's to refuse; protobuf's checked
  // serializer would abort the whole process instead.
  return message.SerializePartialAsString();
}

Status Decode(std::string_view body, ContentType type, google::protobuf::Message* message) {
  if (type == ContentType::kJson) return MessageFromJsonString(body, message);
  message->Clear();
  if (!message->ParsePartialFromArray(body.data(), static_cast<int>(body.size()))) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: body is not a valid protobuf message",
                     message->GetDescriptor()->name());
  }
  if (!message->IsInitialized()) {
    return MakeError(ErrorCode::kInvalidArgument, "{}: missing required fields: {}",
                     message->GetDescriptor()->name(), message->InitializationErrorString());
  }
  return OkStatus();
}

}  // namespace etcd_mesos::mesos_codec
