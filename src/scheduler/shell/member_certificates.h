// MemberCertificates: the scheduler's certificate authority for its etcd members when they serve
// TLS (--tls=auto: a CA made at the first start and kept in the state store, next to the state;
// --tls=files: the operator's CA certificate and key, never stored). What it issues:
//  - each member's server and peer certificates, for keys the member's executor made itself: the
//    executor sends certificate requests to POST /certificates with its task's token (an HMAC of
//    the task id under a secret kept with the CA), once per task, so no private key travels;
//  - the scheduler's own client certificate (probes, membership changes, backups, hash checks);
//  - operators' client certificates (GET /client-cert).
// The CA's private key is never in a task, a label, /master/state or a log line.
//
// Threading: values and functions of their arguments (time is passed in); callable from any
// thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "scheduler/core/types.h"
#include "tls/pki.h"

namespace etcd_mesos::scheduler::shell {

// The record at TlsPath(): the CA and the secret the task tokens are made with, and during a CA
// rotation (the core's CaRotation) the CA it brings.
struct TlsRecord {
  std::string ca_cert;       // PEM
  std::string ca_key;        // PEM; empty with --tls=files (the operator's key stays in its file)
  std::string secret;        // hex; the task tokens' HMAC key
  uint64_t generation = 0;   // the rotation generation of ca_cert (0: the CA of the first start)
  std::string next_ca_cert;  // PEM: the CA of generation + 1, made by POST /rotate-ca; "" if none
  std::string next_ca_key;
  // With --tls=files: all of --tls-ca-cert (the issuer first, then any CA also trusted while the
  // operator rotates theirs), which members, the scheduler and /ca.crt trust; never stored.
  // "": ca_cert alone.
  std::string trust;
};

std::string TlsPath(std::string_view framework_name);  // /<framework-name>/tls
std::string EncodeTlsRecord(const TlsRecord& record);
// kDataLoss naming the field for a malformed record.
Result<TlsRecord> DecodeTlsRecord(std::string_view text);
// A new CA for the cluster (valid ten years from `now`, an hour back for clock skew) and secret.
Result<TlsRecord> NewTlsRecord(std::string_view framework_name,
                               std::chrono::system_clock::time_point now);

// Adds to `record` a new CA for generation + 1 (valid ten years from `now`), named apart from the
// old one: both are trusted at once during the rotation.
Status PrepareNextCa(TlsRecord& record, std::string_view framework_name,
                     std::chrono::system_clock::time_point now);

// Which CA does what at a phase of a CA rotation (the core's CaRotation) given the record:
//  - trust-both: members launched now trust the old and the new CA, certificates of the old one;
//  - new-issuer: certificates of the new CA, both trusted;
//  - drop-old:   certificates of the new CA, members trust it alone;
//  - none:       the record's CA, or (once the core has finished the rotation the record was
//                prepared for) its next CA, and `finished` says the record should be moved on.
// The scheduler and operators (/ca.crt) trust both CAs throughout a rotation, and their client
// certificates come from the old CA until every member trusts the new one (new-issuer on).
// kDataLoss when the core is in a rotation the record has no next CA for.
struct CaInUse {
  tls::Authority issuer;         // the members' certificates
  std::string member_trust;      // what members launched now trust (PEM bundle)
  tls::Authority client_issuer;  // the scheduler's and operators' client certificates
  std::string client_trust;      // what the scheduler and operators trust (PEM bundle)
  bool finished = false;
};
Result<CaInUse> CaForRotation(const TlsRecord& record, const CaRotation& rotation);
// The record after a finished rotation: the next CA is the CA, of generation + 1.
TlsRecord FinishedRotation(const TlsRecord& record);

// The token a task presents for its certificates: hex HMAC-SHA256 of the task id under `secret`.
std::string TaskCertificateToken(std::string_view secret, std::string_view task_id);

// What POST /certificates knows of the member a request names, from the core's state.
struct CertificateSubject {
  std::string task_id;
  std::string name;      // etcd-<n>: the certificates' common name
  std::string host;      // the agent's IP: a subject alternative name
  std::string hostname;  // the agent's host name ("" when it is its IP)
  bool may_run = false;  // its task may still run
  bool issued = false;   // its certificates were issued already (once per task)
};

struct CertificateAnswer {
  unsigned status = 200;
  std::string body;                  // JSON on 200, a text naming the problem otherwise
  std::optional<int64_t> not_after;  // on 200: the certificates' expiry, Unix seconds
};

// POST /certificates: body {"task_id":..,"server_csr":PEM,"peer_csr":PEM}, Authorization:
// Bearer <TaskCertificateToken>. `find` looks the task up in the core's state. Answers 200
// {"ca":PEM bundle,"server_cert":PEM,"peer_cert":PEM,"not_after":<unix s>} with certificates
// valid from an hour before `now` for `lifetime` (never past the CA's own end); 400 for a
// malformed body or request, 401 for a wrong or missing token (also for an unknown task: which
// tasks exist is not told), 409 when this task's certificates were issued already or it has
// ended. Never echoes the token or a key.
CertificateAnswer AnswerCertificateRequest(
    const tls::Authority& ca, std::string_view trust_bundle, std::string_view secret,
    std::string_view body, std::string_view authorization,
    const std::function<std::optional<CertificateSubject>(const std::string& task_id)>& find,
    std::chrono::system_clock::time_point now, std::chrono::seconds lifetime);

}  // namespace etcd_mesos::scheduler::shell
