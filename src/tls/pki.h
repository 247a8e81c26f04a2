// The cluster's public key infrastructure: a certificate authority (CA) kept by the scheduler, the
// certificates it issues (each etcd member's, for its client and peer ports; operators' client
// certificates), what a certificate says, and whether one chains to a trust bundle at a moment.
//
// Certificates and keys travel as PEM text, which is what etcd, etcdctl and the TLS stacks read.
// Keys are ECDSA P-256 (small, fast, accepted by every etcd and Go TLS client); certificates are
// X.509 v3 signed with SHA-256. A trust bundle is one or more CA certificates in one PEM text:
// while a CA is rotated, members trust the old and the new CA together.
//
// Time is always passed in; nothing here reads the clock, so validity is decided at the moment the
// caller names (tests move through a certificate's lifetime without waiting). Errors name the
// problem and the certificate (by common name), never a private key's contents: kInvalidArgument
// for malformed or inconsistent input, kUnauthenticated for a certificate that does not verify.
//
// Threading: pure functions on values, on OpenSSL 3 (itself thread-safe); callable from any thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace etcd_mesos::tls {

using TimePoint = std::chrono::system_clock::time_point;

// A CA: its self-signed certificate and its private key. Issue() signs with it.
struct Authority {
  std::string certificate_pem;
  std::string key_pem;
};

// What a certificate may prove: a server's identity (serverAuth), a client's (clientAuth), or
// both. An etcd member needs both: peers dial each other with the same certificate they serve,
// and etcd 3.4's JSON gateway dials the member's own gRPC port with its server certificate.
enum class Usage { kServer, kClient, kServerAndClient };

struct CertificateRequest {
  std::string common_name;
  std::vector<std::string> ip_addresses;  // IPv4 or IPv6 text; subject alternative names
  std::vector<std::string> dns_names;     // host names; subject alternative names
  Usage usage = Usage::kServerAndClient;
  TimePoint not_before;
  TimePoint not_after;
};

// A certificate issued by an Authority, with the fresh private key it certifies.
struct IssuedCertificate {
  std::string certificate_pem;
  std::string key_pem;
};

// What one certificate says. Times are whole seconds, as X.509 stores them.
struct CertificateInfo {
  std::string subject_common_name;
  std::string issuer_common_name;
  std::string serial_hex;  // upper-case hex, as `openssl x509 -serial` prints it
  TimePoint not_before;
  TimePoint not_after;
  std::vector<std::string> ip_addresses;
  std::vector<std::string> dns_names;
  bool is_ca = false;        // basicConstraints CA:TRUE
  bool server_auth = false;  // extendedKeyUsage serverAuth
  bool client_auth = false;  // extendedKeyUsage clientAuth
  // SHA-256 of the DER, "AB:CD:...", as `openssl x509 -fingerprint -sha256` prints it.
  std::string sha256_fingerprint;
};

// A new self-signed CA with a fresh key: basicConstraints CA:TRUE (critical), keyUsage
// keyCertSign and cRLSign (critical), a subject key identifier. kInvalidArgument for an empty
// name or a validity that ends before it begins.
Result<Authority> NewAuthority(std::string common_name, TimePoint not_before, TimePoint not_after);

// A CA loaded from its PEM texts. kInvalidArgument when either does not parse, when the key is
// not the certificate's, or when the certificate is not a CA allowed to sign certificates.
Result<Authority> LoadAuthority(std::string_view certificate_pem, std::string_view key_pem);

// A certificate for `request`, signed by `ca`, with its own fresh key and a random 128-bit serial;
// the subject alternative names are exactly the request's addresses and names. kInvalidArgument
// for an empty common name, an address that is not an IP address, no subject alternative name at
// all for a server's certificate (TLS clients match the host against those only; a client-only
// certificate may have none), a validity that ends before it begins, or an unusable `ca`. A
// client-only certificate may have no common name (etcd 3.4's grpc-proxy refuses one): its
// subject is then O=etcd-mesos.
Result<IssuedCertificate> Issue(const Authority& ca, const CertificateRequest& request);

// A fresh P-256 key and a certificate request (PKCS#10) signed with it, both PEM: what a member's
// executor sends for its certificates, so that its private key never leaves its host.
struct KeyAndRequest {
  std::string key_pem;
  std::string request_pem;
};
Result<KeyAndRequest> NewCertificateRequest(const std::string& common_name);

// A certificate signed by `ca` for the key of `request_pem` (whose signature must match it). Only
// the key is taken from the request: the names, usages and validity are `request`'s, decided by
// the issuer. kInvalidArgument for a malformed request, a bad signature, or what Issue() refuses.
Result<std::string> IssueForRequest(const Authority& ca, std::string_view request_pem,
                                    const CertificateRequest& request);

// The first certificate of a PEM text (a leaf followed by its chain, or a bundle). kInvalidArgument
// "certificate PEM: no certificate found" when there is none.
Result<CertificateInfo> ReadCertificate(std::string_view pem);

// Every certificate of a PEM bundle, in order; kInvalidArgument when there is none or one is
// malformed.
Result<std::vector<CertificateInfo>> ReadBundle(std::string_view pem);

// Whether the first certificate of `leaf_pem` (any further ones are taken as intermediates) chains
// to a CA of `trust_bundle_pem` and every certificate of the chain is valid `at` (from not_before
// to just before not_after, as OpenSSL reads the window). kUnauthenticated naming the reason
// (OpenSSL's: "certificate has expired", "certificate is not yet valid", "unable to get local
// issuer certificate", ...) when it does not; kInvalidArgument for malformed PEM.
Status Verify(std::string_view leaf_pem, std::string_view trust_bundle_pem, TimePoint at);

}  // namespace etcd_mesos::tls
