// Certificates for tests that run real etcd with TLS: a CA and the requests it issues from, valid
// around now (OpenSSL and Go judge validity by the clock during handshakes; no test asserts on
// time).
//
// Threading: pure functions but for the clock read.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tls/pki.h"

namespace etcd_mesos::test {

// A certificate for `name` at `ips` (and "localhost"), valid from an hour ago for a day.
inline tls::CertificateRequest CertificateFor(std::string name, std::vector<std::string> ips,
                                              tls::Usage usage) {
  auto now = std::chrono::system_clock::now();
  return {.common_name = std::move(name),
          .ip_addresses = std::move(ips),
          .dns_names = {"localhost"},
          .usage = usage,
          .not_before = now - std::chrono::hours(1),
          .not_after = now + std::chrono::hours(24)};
}

// A CA valid from an hour ago for a year; a failure to make one fails the test.
inline tls::Authority NewTestAuthority(const std::string& name) {
  auto now = std::chrono::system_clock::now();
  auto ca =
      tls::NewAuthority(name, now - std::chrono::hours(1), now + std::chrono::hours(24 * 365));
  EXPECT_TRUE(ca.ok()) << ca.error();
  return ca.ok() ? *ca : tls::Authority{};
}

}  // namespace etcd_mesos::test
