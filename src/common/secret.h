// Small checks on what comes over the network: whether a token someone sent is a secret we hold,
// and whether a host is written as an IP address.
//
// Threading: pure functions.
#pragma once

#include <arpa/inet.h>

#include <string>
#include <string_view>

namespace etcd_mesos {

// Whether `given` is `secret` (a token, a password), compared without an early exit so that the
// answer's timing does not tell how much of a guess matched. An empty secret matches nothing.
inline bool SameSecret(std::string_view given, std::string_view secret) {
  if (secret.empty()) return false;
  unsigned char diff = given.size() == secret.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i) diff |= given[i] ^ secret[i % secret.size()];
  return diff == 0;
}

// An IPv4 or IPv6 address in text form (not a host name).
inline bool IsIpAddress(const std::string& text) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, text.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

}  // namespace etcd_mesos
