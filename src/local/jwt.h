// Executor tokens: compact JSON Web Tokens signed with HMAC-SHA256 (RFC 7519, "HS256"), as a
// Mesos agent issues them to its executors with --jwt_secret_key and checks them on the executor
// API with --authenticate_http_executors (libprocess's jwt.cpp and jwt_authenticator.cpp). The
// signature is OpenSSL's HMAC, compared in constant time.
//
// Threading: pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/result.h"

namespace etcd_mesos::local {

// A token's claims as the agent reads them: every payload member, strings as themselves and other
// JSON values in their JSON text (libprocess's JWTAuthenticator does the same).
using JwtClaims = std::map<std::string, std::string>;

// The token `base64url(header).base64url(payload).base64url(HMAC-SHA256)` (no padding), with the
// header {"alg":"HS256","typ":"JWT"} and the claims as string members, keys sorted as Mesos's
// JSON writes them.
std::string CreateJwt(const JwtClaims& claims, std::string_view key);

// Checks `token` as libprocess's JWT::parse(token, secret) does, in its order: three parts, a
// JSON header whose alg is HS256 and which has no `crit`, a JSON object payload whose `exp`, if
// any, is a number not before `now_seconds`, and a signature equal to the HMAC of the first two
// parts under `key`. The error message is what Mesos puts after "Invalid JWT: " in its challenge.
Result<JwtClaims> VerifyJwt(std::string_view token, std::string_view key, int64_t now_seconds);

}  // namespace etcd_mesos::local
