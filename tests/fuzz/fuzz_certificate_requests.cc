// Fuzz target: POST /certificates, the endpoint a TLS member's executor asks for its
// certificates (scheduler/shell/member_certificates.h). The first line of the input is the
// Authorization header, the rest the body. Whatever comes in, the answer is one of 200, 400, 401
// and 409; it never holds the secret, the task's token or a private key; and a 200 holds two
// certificates of the CA, for the task's own name, valid now.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "scheduler/shell/member_certificates.h"
#include "tls/pki.h"

namespace {

using namespace etcd_mesos;
using scheduler::shell::CertificateSubject;

// The corpus's valid requests carry the token of this secret for this task.
constexpr std::string_view kSecret = "fuzz-secret-0123456789abcdef0123456789abcdef";
constexpr std::string_view kTask = "etcd-1 10.0.0.1 31000 31001 31002";
const auto kNow = std::chrono::system_clock::from_time_t(1'900'000'000);

const tls::Authority& Ca() {
  static const tls::Authority ca = *tls::NewAuthority("fuzz CA", kNow - std::chrono::hours(1),
                                                      kNow + std::chrono::hours(24 * 365));
  return ca;
}

void Check(const scheduler::shell::CertificateAnswer& answer) {
  if (answer.status != 200 && answer.status != 400 && answer.status != 401 &&
      answer.status != 409) {
    __builtin_trap();
  }
  std::string token = scheduler::shell::TaskCertificateToken(kSecret, kTask);
  if (answer.body.find(kSecret) != std::string::npos ||
      answer.body.find(token) != std::string::npos ||
      answer.body.find("PRIVATE KEY") != std::string::npos) {
    __builtin_trap();
  }
  if (answer.status != 200) return;
  auto j = nlohmann::json::parse(answer.body);
  for (const char* field : {"server_cert", "peer_cert"}) {
    std::string cert = j.at(field).get<std::string>();
    auto info = tls::ReadCertificate(cert);
    if (!info.ok() || info->subject_common_name != "etcd-1" ||
        !tls::Verify(cert, Ca().certificate_pem, kNow).ok()) {
      __builtin_trap();
    }
  }
  if (!answer.not_after) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  size_t eol = text.find('\n');
  std::string_view authorization = eol == std::string_view::npos ? text : text.substr(0, eol);
  std::string_view body = eol == std::string_view::npos ? "" : text.substr(eol + 1);
  bool issued = size > 0 && (data[size - 1] & 1);  // both sides of the once-per-task rule
  auto find = [&](const std::string& task) -> std::optional<CertificateSubject> {
    if (task != kTask) return std::nullopt;
    return CertificateSubject{std::string(kTask), "etcd-1", "10.0.0.1", "agent-1", true, issued};
  };
  Check(scheduler::shell::AnswerCertificateRequest(Ca(), Ca().certificate_pem, kSecret, body,
                                                   authorization, find, kNow,
                                                   std::chrono::hours(24 * 90)));
  return 0;
}
