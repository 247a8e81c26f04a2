// Byte encodings shared by the wire formats: standard base64 (with padding, as Mesos and etcd
// write it), hex, and RFC 4122 UUIDs as Mesos carries them in status updates (16 raw bytes).
//
// Threading: pure functions; NewUuid() reads the system's random source and is thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace etcd_mesos {

std::string Base64Encode(std::string_view bytes);
// Accepts standard and URL-safe alphabets, with or without padding; rejects anything else.
Result<std::string> Base64Decode(std::string_view text);

std::string HexEncode(std::string_view bytes);

// A fresh version-4 UUID as 16 raw bytes (the form TaskStatus.uuid carries).
std::string NewUuidBytes();
// True when `bytes` is 16 bytes with an RFC 4122 variant and a known version, as Mesos requires.
bool IsValidUuidBytes(std::string_view bytes);
// 8-4-4-4-12 text form of 16 raw bytes (for logs and stream ids).
std::string UuidToString(std::string_view bytes);

}  // namespace etcd_mesos
