// HS256 tokens as libprocess writes and reads them (3rdparty/libprocess/src/jwt.cpp). The checks
// and their messages follow JWT::parse(token, secret) in its order, so an executor refused here is
// refused for the reason real Mesos would give.
#include "local/jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/encoding.h"

namespace etcd_mesos::local {
namespace {

using nlohmann::json;

std::string Base64UrlEncode(std::string_view bytes) {
  std::string out = Base64Encode(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  std::replace(out.begin(), out.end(), '+', '-');
  std::replace(out.begin(), out.end(), '/', '_');
  return out;
}

// The URL-safe alphabet only (Base64Decode also takes the standard one, which a JWT never uses).
Result<std::string> Base64UrlDecode(std::string_view text) {
  if (text.find_first_of("+/") != std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument, "Failed to base64url-decode: invalid character");
  }
  auto decoded = Base64Decode(text);
  if (!decoded.ok()) {
    return MakeError(ErrorCode::kInvalidArgument, "Failed to base64url-decode: {}",
                     decoded.error().message);
  }
  return decoded;
}

std::string HmacSha256(std::string_view data, std::string_view key) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &size);
  return std::string(reinterpret_cast<const char*>(mac), size);
}

Result<json> DecodeObject(std::string_view part, std::string_view what) {
  auto decoded = Base64UrlDecode(part);
  if (!decoded.ok()) {
    return MakeError(ErrorCode::kInvalidArgument, "Failed to decode token {}: {}", what,
                     decoded.error().message);
  }
  json j = json::parse(*decoded, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "Failed to decode token {}: Failed to parse into JSON", what);
  }
  return j;
}

Status CheckHeader(std::string_view part) {
  auto header = DecodeObject(part, "header");
  if (!header.ok()) return header.error();
  if (header->contains("typ") && !(*header)["typ"].is_string()) {
    return MakeError(ErrorCode::kInvalidArgument, "Token 'typ' is not a string");
  }
  if (!header->contains("alg")) {
    return MakeError(ErrorCode::kInvalidArgument, "Failed to locate 'alg' in token JSON header");
  }
  const json& alg = (*header)["alg"];
  if (!alg.is_string()) {
    return MakeError(ErrorCode::kInvalidArgument, "Token 'alg' field is not a string");
  }
  const std::string& name = alg.get_ref<const std::string&>();
  if (name != "none" && name != "HS256" && name != "RS256") {
    return MakeError(ErrorCode::kInvalidArgument, "Unsupported token algorithm: {}", name);
  }
  if (header->contains("crit")) {
    return MakeError(ErrorCode::kInvalidArgument, "Token 'crit' field is unsupported");
  }
  if (name != "HS256") {
    return MakeError(ErrorCode::kInvalidArgument,
                     "Token 'alg' value \"{}\" does not match, expected \"HS256\"", name);
  }
  return OkStatus();
}

Result<JwtClaims> ReadPayload(std::string_view part, int64_t now_seconds) {
  auto payload = DecodeObject(part, "payload");
  if (!payload.ok()) return payload.error();
  if (payload->contains("exp")) {
    const json& exp = (*payload)["exp"];
    if (!exp.is_number()) {
      return MakeError(ErrorCode::kInvalidArgument, "JSON payload 'exp' field is not a number");
    }
    auto seconds = exp.get<int64_t>();
    if (seconds < now_seconds) {
      return MakeError(ErrorCode::kInvalidArgument, "Token has expired: exp({}) < now({})", seconds,
                       now_seconds);
    }
  }
  JwtClaims claims;
  for (const auto& [key, value] : payload->items()) {
    claims[key] = value.is_string() ? value.get<std::string>() : value.dump();
  }
  return claims;
}

std::vector<std::string_view> SplitDots(std::string_view token) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t dot = token.find('.', start);
    parts.push_back(token.substr(start, dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

}  // namespace

std::string CreateJwt(const JwtClaims& claims, std::string_view key) {
  // nlohmann's object is a sorted map: the keys come out as Mesos's JSON::Object writes them.
  json payload = json::object();
  for (const auto& [name, value] : claims) payload[name] = value;
  std::string signed_part =
      Base64UrlEncode(R"({"alg":"HS256","typ":"JWT"})") + "." + Base64UrlEncode(payload.dump());
  return signed_part + "." + Base64UrlEncode(HmacSha256(signed_part, key));
}

Result<JwtClaims> VerifyJwt(std::string_view token, std::string_view key, int64_t now_seconds) {
  auto parts = SplitDots(token);
  if (parts.size() != 3) {
    return MakeError(ErrorCode::kInvalidArgument, "Expected 3 components in token, got {}",
                     parts.size());
  }
  if (Status header = CheckHeader(parts[0]); !header.ok()) return header.error();
  auto claims = ReadPayload(parts[1], now_seconds);
  if (!claims.ok()) return claims.error();
  auto signature = Base64UrlDecode(parts[2]);
  if (!signature.ok()) {
    return MakeError(ErrorCode::kInvalidArgument, "Failed to base64url-decode token signature: {}",
                     signature.error().message);
  }
  std::string signed_part(token.substr(0, parts[0].size() + 1 + parts[1].size()));
  std::string expected = HmacSha256(signed_part, key);
  // Constant time, so that how long a refusal takes says nothing about the right signature.
  if (signature->size() != expected.size() ||
      CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "Token signature does not match");
  }
  return claims;
}

}  // namespace etcd_mesos::local
