// The scheduler's certificate authority for its members (member_certificates.h).
#include "scheduler/shell/member_certificates.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/encoding.h"
#include "common/secret.h"
#include "scheduler/shell/admin_token.h"

namespace etcd_mesos::scheduler::shell {
namespace {

using json = nlohmann::json;
using std::chrono::hours;

constexpr int kRecordFormat = 1;
constexpr size_t kMaxRequestField = 16 << 10;  // a P-256 request is under 1 KiB

Error Corrupt(std::string_view field, std::string_view what) {
  return MakeError(ErrorCode::kDataLoss, "TLS record: field \"{}\": {}", field, what);
}

CertificateAnswer Refuse(unsigned status, std::string text) {
  return {status, std::move(text) + "\n", std::nullopt};
}

std::optional<std::string> BearerToken(std::string_view authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (!authorization.starts_with(kBearer) || authorization.size() == kBearer.size()) {
    return std::nullopt;
  }
  return std::string(authorization.substr(kBearer.size()));
}

}  // namespace

std::string TlsPath(std::string_view framework_name) {
  return fmt::format("/{}/tls", framework_name);
}

std::string EncodeTlsRecord(const TlsRecord& r) {
  json j = {{"format", kRecordFormat},
            {"ca_cert", r.ca_cert},
            {"ca_key", r.ca_key},
            {"secret", r.secret}};
  if (r.generation > 0) j["generation"] = r.generation;
  if (!r.next_ca_cert.empty()) {
    j["next_ca_cert"] = r.next_ca_cert;
    j["next_ca_key"] = r.next_ca_key;
  }
  return j.dump();
}

Result<TlsRecord> DecodeTlsRecord(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return MakeError(ErrorCode::kDataLoss, "TLS record: not a JSON object ({} bytes)", text.size());
  }
  if (!j.contains("format") || !j["format"].is_number_integer() ||
      j["format"].get<int>() != kRecordFormat) {
    return Corrupt("format", fmt::format("must be {}", kRecordFormat));
  }
  TlsRecord r;
  for (auto [key, into] : {std::pair{"ca_cert", &r.ca_cert}, std::pair{"ca_key", &r.ca_key},
                           std::pair{"secret", &r.secret}}) {
    if (!j.contains(key) || !j[key].is_string()) return Corrupt(key, "must be a string");
    *into = j[key].get<std::string>();
  }
  if (r.secret.size() < 32) return Corrupt("secret", "is too short");
  auto ca = tls::LoadAuthority(r.ca_cert, r.ca_key);
  if (!ca.ok()) return Corrupt("ca_cert", ca.error().message);
  // A rotation's fields, absent in records of schedulers before rotations and between them.
  if (j.contains("generation")) {
    if (!j["generation"].is_number_unsigned()) return Corrupt("generation", "must be a count");
    r.generation = j["generation"].get<uint64_t>();
  }
  if (j.contains("next_ca_cert") || j.contains("next_ca_key")) {
    for (auto [key, into] :
         {std::pair{"next_ca_cert", &r.next_ca_cert}, std::pair{"next_ca_key", &r.next_ca_key}}) {
      if (!j.contains(key) || !j[key].is_string()) return Corrupt(key, "must be a string");
      *into = j[key].get<std::string>();
    }
    auto next = tls::LoadAuthority(r.next_ca_cert, r.next_ca_key);
    if (!next.ok()) return Corrupt("next_ca_cert", next.error().message);
  }
  return r;
}

Status PrepareNextCa(TlsRecord& record, std::string_view framework_name,
                     std::chrono::system_clock::time_point now) {
  auto ca =
      tls::NewAuthority(fmt::format("etcd-mesos {} CA {}", framework_name, record.generation + 1),
                        now - hours(1), now + hours(24 * 365 * 10));
  if (!ca.ok()) return ca.error();
  record.next_ca_cert = ca->certificate_pem;
  record.next_ca_key = ca->key_pem;
  return OkStatus();
}

Result<CaInUse> CaForRotation(const TlsRecord& record, const CaRotation& rotation) {
  tls::Authority old_ca{record.ca_cert, record.ca_key};
  tls::Authority next_ca{record.next_ca_cert, record.next_ca_key};
  std::string both = record.next_ca_cert + record.ca_cert;
  bool has_next = !record.next_ca_cert.empty();
  if (rotation.phase == CaPhase::kNone) {
    if (has_next && rotation.generation == record.generation + 1) {
      return CaInUse{next_ca, record.next_ca_cert, next_ca, record.next_ca_cert, true};
    }
    const std::string& trust = record.trust.empty() ? record.ca_cert : record.trust;
    return CaInUse{old_ca, trust, old_ca, trust, false};
  }
  if (!has_next || rotation.generation != record.generation) {
    return MakeError(ErrorCode::kDataLoss,
                     "the state says a CA rotation to CA {} is under way ({}), but the TLS record "
                     "holds CA {} and {}",
                     rotation.generation + 1, CaPhaseName(rotation.phase), record.generation,
                     has_next ? "a next CA of another rotation" : "no next CA");
  }
  switch (rotation.phase) {
    case CaPhase::kTrustBoth:
      return CaInUse{old_ca, both, old_ca, both, false};
    case CaPhase::kNewIssuer:
      return CaInUse{next_ca, both, next_ca, both, false};
    default:  // kDropOld
      return CaInUse{next_ca, record.next_ca_cert, next_ca, both, false};
  }
}

TlsRecord FinishedRotation(const TlsRecord& record) {
  TlsRecord out = record;
  out.ca_cert = record.next_ca_cert;
  out.ca_key = record.next_ca_key;
  out.generation = record.generation + 1;
  out.next_ca_cert.clear();
  out.next_ca_key.clear();
  return out;
}

Result<TlsRecord> NewTlsRecord(std::string_view framework_name,
                               std::chrono::system_clock::time_point now) {
  auto ca = tls::NewAuthority(fmt::format("etcd-mesos {} CA", framework_name), now - hours(1),
                              now + hours(24 * 365 * 10));
  if (!ca.ok()) return ca.error();
  return TlsRecord{ca->certificate_pem, ca->key_pem, NewSecretToken()};
}

std::string TaskCertificateToken(std::string_view secret, std::string_view task_id) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(task_id.data()), task_id.size(), mac, &length);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(mac), length));
}

CertificateAnswer AnswerCertificateRequest(
    const tls::Authority& ca, std::string_view trust_bundle, std::string_view secret,
    std::string_view body, std::string_view authorization,
    const std::function<std::optional<CertificateSubject>(const std::string& task_id)>& find,
    std::chrono::system_clock::time_point now, std::chrono::seconds lifetime) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Refuse(400,
                  "400 bad request: the body must be a JSON object with task_id, "
                  "server_csr and peer_csr");
  }
  for (const char* key : {"task_id", "server_csr", "peer_csr"}) {
    if (!j.contains(key) || !j[key].is_string() || j[key].get_ref<const std::string&>().empty() ||
        j[key].get_ref<const std::string&>().size() > kMaxRequestField) {
      return Refuse(400, fmt::format("400 bad request: {} must be a non-empty string", key));
    }
  }
  std::string task_id = j["task_id"].get<std::string>();
  auto token = BearerToken(authorization);
  auto subject = find(task_id);
  // An unknown task gets the same answer as a wrong token: which tasks exist is not told.
  if (!token || !subject || !SameSecret(*token, TaskCertificateToken(secret, task_id))) {
    return Refuse(401, "401 unauthorized: send 'Authorization: Bearer <the task's cert_token>'");
  }
  if (subject->issued) {
    return Refuse(409, fmt::format("409 the certificates of task '{}' were issued already (once "
                                   "per task)",
                                   task_id));
  }
  if (!subject->may_run) {
    return Refuse(409, fmt::format("409 task '{}' has ended", task_id));
  }
  auto ca_info = tls::ReadCertificate(ca.certificate_pem);
  if (!ca_info.ok()) return Refuse(500, "500 the CA certificate is unreadable");
  auto not_after = std::min(now + lifetime, ca_info->not_after);
  tls::CertificateRequest request{.common_name = subject->name,
                                  .ip_addresses = {},
                                  .dns_names = {},
                                  .usage = tls::Usage::kServerAndClient,
                                  .not_before = now - hours(1),
                                  .not_after = not_after};
  for (const std::string& name : {subject->host, subject->hostname}) {
    if (name.empty()) continue;
    (IsIpAddress(name) ? request.ip_addresses : request.dns_names).push_back(name);
  }
  // etcd matches a peer's (and a client's) certificate against the address the connection comes
  // from. Between loopback addresses (agents on 127.0.0.x, as etcd-mesos-local runs them) that
  // is 127.0.0.1, whatever address the member listens on.
  if (subject->host.starts_with("127.") && subject->host != "127.0.0.1") {
    request.ip_addresses.push_back("127.0.0.1");
  }
  json out = {{"ca", std::string(trust_bundle)}};
  for (auto [field, cert_field] :
       {std::pair{"server_csr", "server_cert"}, std::pair{"peer_csr", "peer_cert"}}) {
    auto cert = tls::IssueForRequest(ca, j[field].get<std::string>(), request);
    if (!cert.ok()) {
      return Refuse(400, fmt::format("400 bad request: {}: {}", field, cert.error().message));
    }
    out[cert_field] = *cert;
  }
  auto expiry = std::chrono::duration_cast<std::chrono::seconds>(not_after.time_since_epoch());
  out["not_after"] = expiry.count();
  return {200, out.dump(), expiry.count()};
}

}  // namespace etcd_mesos::scheduler::shell
