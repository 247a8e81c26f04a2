#include "tls/pki.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace etcd_mesos::tls {
namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;

void FreeCertificateStack(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }
using CertificateStackPtr = std::unique_ptr<STACK_OF(X509), Deleter<FreeCertificateStack>>;

// OpenSSL's reason for the last failure, and an empty error queue for the next call on this thread.
std::string TakeOpenSslReason() {
  std::string reason;
  while (unsigned long e = ERR_get_error()) {
    const char* r = ERR_reason_error_string(e);
    reason = r ? r : fmt::format("OpenSSL error {:x}", e);
  }
  return reason.empty() ? "unknown OpenSSL error" : reason;
}

Error Invalid(std::string_view what) {
  return MakeError(ErrorCode::kInvalidArgument, "{}: {}", what, TakeOpenSslReason());
}

BioPtr ReadOnlyBio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string FormatTime(TimePoint t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::chrono::system_clock::to_time_t(t)));
}

// ---- Reading PEM ---------------------------------------------------------------------------

// Every certificate of a PEM text, in order. `what` names the text in errors.
Result<std::vector<X509Ptr>> ParseCertificates(std::string_view pem, std::string_view what) {
  std::vector<X509Ptr> out;
  auto bio = ReadOnlyBio(pem);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    out.emplace_back(cert);
  }
  // The loop ends at the end of the text (no further PEM block) or at a malformed block.
  unsigned long last = ERR_peek_last_error();
  bool at_end = ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  if (!out.empty() && at_end) ERR_clear_error();
  if (out.empty() && (at_end || last == 0)) {
    ERR_clear_error();
    return MakeError(ErrorCode::kInvalidArgument, "{}: no certificate found", what);
  }
  if (!at_end && last != 0) {
    return Invalid(fmt::format("{}: certificate {} is malformed", what, out.size() + 1));
  }
  return out;
}

Result<X509Ptr> ParseFirstCertificate(std::string_view pem, std::string_view what) {
  auto all = ParseCertificates(pem, what);
  if (!all.ok()) return all.error();
  return std::move(all->front());
}

// A passphrase callback that refuses: an encrypted key is an error, never a terminal prompt.
int NoPassphrase(char*, int, int, void*) { return 0; }

// The key's text never enters a message: only OpenSSL's reason does.
Result<KeyPtr> ParsePrivateKey(std::string_view pem, std::string_view what) {
  auto bio = ReadOnlyBio(pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) {
    return Invalid(
        fmt::format("{}: no usable private key (encrypted keys are not supported)", what));
  }
  return key;
}

// ---- Reading a certificate -----------------------------------------------------------------

std::string CommonName(const X509_NAME* name) {
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return "";
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

TimePoint ToTimePoint(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return TimePoint{};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string IpText(const ASN1_OCTET_STRING* ip) {
  char text[INET6_ADDRSTRLEN] = {};
  int length = ASN1_STRING_length(ip);
  int family = length == 4 ? AF_INET : length == 16 ? AF_INET6 : 0;
  if (family == 0 || !inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof text)) return "?";
  return text;
}

void ReadAlternativeNames(X509* cert, CertificateInfo& info) {
  NamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    int type = 0;
    auto* value = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(names.get(), i), &type);
    if (type == GEN_IPADD)
      info.ip_addresses.push_back(IpText(static_cast<ASN1_OCTET_STRING*>(value)));
    if (type == GEN_DNS) {
      auto* dns = static_cast<ASN1_IA5STRING*>(value);
      info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                  static_cast<size_t>(ASN1_STRING_length(dns)));
    }
  }
}

std::string SerialHex(X509* cert) {
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!serial) return "";
  char* hex = BN_bn2hex(serial.get());
  std::string out = hex ? hex : "";
  OPENSSL_free(hex);
  return out;
}

std::string Sha256Fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (X509_digest(cert, EVP_sha256(), md, &size) != 1) return "";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) out += fmt::format("{}{:02X}", i ? ":" : "", md[i]);
  return out;
}

CertificateInfo Describe(X509* cert) {
  CertificateInfo info;
  info.subject_common_name = CommonName(X509_get_subject_name(cert));
  info.issuer_common_name = CommonName(X509_get_issuer_name(cert));
  info.serial_hex = SerialHex(cert);
  info.not_before = ToTimePoint(X509_get0_notBefore(cert));
  info.not_after = ToTimePoint(X509_get0_notAfter(cert));
  ReadAlternativeNames(cert, info);
  uint32_t flags = X509_get_extension_flags(cert);
  info.is_ca = (flags & EXFLAG_CA) != 0;
  if (flags & EXFLAG_XKUSAGE) {
    uint32_t usages = X509_get_extended_key_usage(cert);
    info.server_auth = (usages & XKU_SSL_SERVER) != 0;
    info.client_auth = (usages & XKU_SSL_CLIENT) != 0;
  }
  info.sha256_fingerprint = Sha256Fingerprint(cert);
  return info;
}

// ---- Writing a certificate -----------------------------------------------------------------

Result<KeyPtr> NewKey() {
  KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return MakeError(ErrorCode::kInternal, "new P-256 key: {}", TakeOpenSslReason());
  return key;
}

Status CheckValidity(TimePoint not_before, TimePoint not_after) {
  if (not_after <= not_before) {
    return MakeError(ErrorCode::kInvalidArgument, "validity ends ({}) before it begins ({})",
                     FormatTime(not_after), FormatTime(not_before));
  }
  return OkStatus();
}

// A random positive 128-bit serial: unique without a counter to keep.
bool SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return false;
  bytes[0] |= 0x01;  // never zero
  BignumPtr serial(BN_bin2bn(bytes, sizeof bytes, nullptr));
  return serial && BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) != nullptr;
}

bool SetCommonName(X509_NAME* name, const std::string& common_name) {
  return X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                    -1, 0) == 1;
}

// CN=<common_name>; without one (a client certificate for etcd's grpc-proxy, which refuses a
// Common Name: etcd would take it for a user name), O=etcd-mesos.
bool SetSubject(X509_NAME* name, const std::string& common_name) {
  if (!common_name.empty()) return SetCommonName(name, common_name);
  return X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>("etcd-mesos"), -1, -1,
                                    0) == 1;
}

// A certificate with everything but its extensions and signature.
Result<X509Ptr> NewCertificate(const std::string& common_name, const X509_NAME* issuer,
                               EVP_PKEY* key, TimePoint not_before, TimePoint not_after) {
  X509Ptr cert(X509_new());
  bool ok =
      cert && X509_set_version(cert.get(), X509_VERSION_3) == 1 && SetRandomSerial(cert.get()) &&
      SetSubject(X509_get_subject_name(cert.get()), common_name) &&
      X509_set_issuer_name(cert.get(), issuer ? issuer : X509_get_subject_name(cert.get())) == 1 &&
      ASN1_TIME_set(X509_getm_notBefore(cert.get()),
                    std::chrono::system_clock::to_time_t(not_before)) != nullptr &&
      ASN1_TIME_set(X509_getm_notAfter(cert.get()),
                    std::chrono::system_clock::to_time_t(not_after)) != nullptr &&
      X509_set_pubkey(cert.get(), key) == 1;
  if (!ok) return MakeError(ErrorCode::kInternal, "new certificate: {}", TakeOpenSslReason());
  return cert;
}

// Adds extensions written as OpenSSL's configuration values ("critical,CA:TRUE").
Status AddExtensions(X509* cert, X509* issuer,
                     const std::vector<std::pair<int, const char*>>& extensions) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
    bool added = ext && X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    if (!added) {
      return MakeError(ErrorCode::kInternal, "extension {}: {}", OBJ_nid2sn(nid),
                       TakeOpenSslReason());
    }
  }
  return OkStatus();
}

bool IsHostName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '*';
    if (!ok) return false;
  }
  return true;
}

// Built name by name, not from a configuration string, so that no name can inject another.
Status AddAlternativeNames(X509* cert, const CertificateRequest& r) {
  // An empty subjectAltName is not allowed (RFC 5280): a client's certificate just has none.
  if (r.ip_addresses.empty() && r.dns_names.empty()) return OkStatus();
  NamesPtr names(sk_GENERAL_NAME_new_null());
  for (const auto& ip : r.ip_addresses) {
    ASN1_OCTET_STRING* octets = a2i_IPADDRESS(ip.c_str());
    if (!octets) {
      ERR_clear_error();
      return MakeError(ErrorCode::kInvalidArgument, "'{}' is not an IP address", ip);
    }
    GENERAL_NAME* name = GENERAL_NAME_new();
    GENERAL_NAME_set0_value(name, GEN_IPADD, octets);
    sk_GENERAL_NAME_push(names.get(), name);
  }
  for (const auto& dns : r.dns_names) {
    if (!IsHostName(dns)) {
      return MakeError(ErrorCode::kInvalidArgument, "'{}' is not a host name", dns);
    }
    ASN1_IA5STRING* text = ASN1_IA5STRING_new();
    ASN1_STRING_set(text, dns.data(), static_cast<int>(dns.size()));
    GENERAL_NAME* name = GENERAL_NAME_new();
    GENERAL_NAME_set0_value(name, GEN_DNS, text);
    sk_GENERAL_NAME_push(names.get(), name);
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return MakeError(ErrorCode::kInternal, "subjectAltName: {}", TakeOpenSslReason());
  }
  return OkStatus();
}

const char* ExtendedKeyUsage(Usage usage) {
  switch (usage) {
    case Usage::kServer:
      return "serverAuth";
    case Usage::kClient:
      return "clientAuth";
    case Usage::kServerAndClient:
      return "serverAuth,clientAuth";
  }
  return "serverAuth,clientAuth";
}

Result<std::string> CertificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509(bio.get(), cert) != 1) {
    return MakeError(ErrorCode::kInternal, "writing certificate PEM: {}", TakeOpenSslReason());
  }
  return BioText(bio.get());
}

// PKCS#8 ("BEGIN PRIVATE KEY"), unencrypted: what etcd reads from --key-file.
Result<std::string> KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return MakeError(ErrorCode::kInternal, "writing private key PEM: {}", TakeOpenSslReason());
  }
  return BioText(bio.get());
}

Status Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) {
    return MakeError(ErrorCode::kInternal, "signing certificate: {}", TakeOpenSslReason());
  }
  return OkStatus();
}

// The certificate and key of `ca`, checked to be a CA whose key is its own.
struct LoadedAuthority {
  X509Ptr certificate;
  KeyPtr key;
};

Result<LoadedAuthority> Load(std::string_view certificate_pem, std::string_view key_pem) {
  auto cert = ParseFirstCertificate(certificate_pem, "authority certificate PEM");
  if (!cert.ok()) return cert.error();
  auto key = ParsePrivateKey(key_pem, "authority key PEM");
  if (!key.ok()) return key.error();
  std::string name = CommonName(X509_get_subject_name(cert->get()));
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return MakeError(ErrorCode::kInvalidArgument,
                     "authority '{}': the private key is not the certificate's", name);
  }
  uint32_t flags = X509_get_extension_flags(cert->get());
  bool can_sign =
      (flags & EXFLAG_KUSAGE) == 0 || (X509_get_key_usage(cert->get()) & KU_KEY_CERT_SIGN);
  if ((flags & EXFLAG_CA) == 0 || !can_sign) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "authority '{}': the certificate is not a CA that may sign certificates",
                     name);
  }
  return LoadedAuthority{std::move(*cert), std::move(*key)};
}

}  // namespace

Result<Authority> NewAuthority(std::string common_name, TimePoint not_before, TimePoint not_after) {
  if (common_name.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "new authority: empty common name");
  }
  if (auto s = CheckValidity(not_before, not_after); !s.ok())
    return s.error().Context("new authority");
  auto key = NewKey();
  if (!key.ok()) return key.error();
  auto cert = NewCertificate(common_name, nullptr, key->get(), not_before, not_after);
  if (!cert.ok()) return cert.error();
  // The subject key identifier first: the issued certificates' authority key identifier is it.
  Status extended = AddExtensions(cert->get(), cert->get(),
                                  {{NID_basic_constraints, "critical,CA:TRUE"},
                                   {NID_key_usage, "critical,keyCertSign,cRLSign"},
                                   {NID_subject_key_identifier, "hash"}});
  if (!extended.ok()) return extended.error().Context("new authority");
  if (auto s = Sign(cert->get(), key->get()); !s.ok()) return s.error();
  auto cert_pem = CertificatePem(cert->get());
  if (!cert_pem.ok()) return cert_pem.error();
  auto key_pem = KeyPem(key->get());
  if (!key_pem.ok()) return key_pem.error();
  return Authority{std::move(*cert_pem), std::move(*key_pem)};
}

Result<Authority> LoadAuthority(std::string_view certificate_pem, std::string_view key_pem) {
  auto loaded = Load(certificate_pem, key_pem);
  if (!loaded.ok()) return loaded.error();
  // Only the first certificate is the authority's own; a bundle's others are not kept.
  auto cert_pem = CertificatePem(loaded->certificate.get());
  if (!cert_pem.ok()) return cert_pem.error();
  auto own_key_pem = KeyPem(loaded->key.get());
  if (!own_key_pem.ok()) return own_key_pem.error();
  return Authority{std::move(*cert_pem), std::move(*own_key_pem)};
}

namespace {

// A certificate for `r` signed by `ca` that certifies `key` (a fresh one, or a request's).
Result<std::string> IssueFor(const Authority& ca, const CertificateRequest& r, EVP_PKEY* key) {
  auto where = fmt::format("issuing '{}'", r.common_name);
  if (r.common_name.empty() && r.usage != Usage::kClient) {
    return MakeError(ErrorCode::kInvalidArgument, "issuing: empty common name");
  }
  if (r.ip_addresses.empty() && r.dns_names.empty() && r.usage != Usage::kClient) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "{}: no IP address or host name (TLS clients match only those)", where);
  }
  if (auto s = CheckValidity(r.not_before, r.not_after); !s.ok()) return s.error().Context(where);
  auto authority = Load(ca.certificate_pem, ca.key_pem);
  if (!authority.ok()) return authority.error().Context(where);
  auto cert = NewCertificate(r.common_name, X509_get_subject_name(authority->certificate.get()),
                             key, r.not_before, r.not_after);
  if (!cert.ok()) return cert.error();
  if (auto s = AddAlternativeNames(cert->get(), r); !s.ok()) return s.error().Context(where);
  Status extended = AddExtensions(cert->get(), authority->certificate.get(),
                                  {{NID_basic_constraints, "critical,CA:FALSE"},
                                   {NID_key_usage, "critical,digitalSignature"},
                                   {NID_ext_key_usage, ExtendedKeyUsage(r.usage)},
                                   {NID_subject_key_identifier, "hash"},
                                   {NID_authority_key_identifier, "keyid:always"}});
  if (!extended.ok()) return extended.error().Context(where);
  if (auto s = Sign(cert->get(), authority->key.get()); !s.ok()) return s.error();
  return CertificatePem(cert->get());
}

using RequestPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;

}  // namespace

Result<IssuedCertificate> Issue(const Authority& ca, const CertificateRequest& r) {
  auto key = NewKey();
  if (!key.ok()) return key.error();
  auto cert_pem = IssueFor(ca, r, key->get());
  if (!cert_pem.ok()) return cert_pem.error();
  auto key_pem = KeyPem(key->get());
  if (!key_pem.ok()) return key_pem.error();
  return IssuedCertificate{std::move(*cert_pem), std::move(*key_pem)};
}

Result<KeyAndRequest> NewCertificateRequest(const std::string& common_name) {
  if (common_name.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "certificate request: empty common name");
  }
  auto key = NewKey();
  if (!key.ok()) return key.error();
  RequestPtr req(X509_REQ_new());
  bool ok = req && X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) == 1 &&
            SetCommonName(X509_REQ_get_subject_name(req.get()), common_name) &&
            X509_REQ_set_pubkey(req.get(), key->get()) == 1 &&
            X509_REQ_sign(req.get(), key->get(), EVP_sha256()) > 0;
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!ok || !bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return MakeError(ErrorCode::kInternal, "certificate request for '{}': {}", common_name,
                     TakeOpenSslReason());
  }
  auto key_pem = KeyPem(key->get());
  if (!key_pem.ok()) return key_pem.error();
  return KeyAndRequest{std::move(*key_pem), BioText(bio.get())};
}

Result<std::string> IssueForRequest(const Authority& ca, std::string_view request_pem,
                                    const CertificateRequest& r) {
  BioPtr bio = ReadOnlyBio(request_pem);
  RequestPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) {
    TakeOpenSslReason();
    return MakeError(ErrorCode::kInvalidArgument,
                     "certificate request for '{}': not a PEM certificate request", r.common_name);
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (key == nullptr || X509_REQ_verify(req.get(), key) != 1) {
    TakeOpenSslReason();
    return MakeError(ErrorCode::kInvalidArgument,
                     "certificate request for '{}': its signature does not match its key",
                     r.common_name);
  }
  return IssueFor(ca, r, key);
}

Result<CertificateInfo> ReadCertificate(std::string_view pem) {
  auto cert = ParseFirstCertificate(pem, "certificate PEM");
  if (!cert.ok()) return cert.error();
  return Describe(cert->get());
}

Result<std::vector<CertificateInfo>> ReadBundle(std::string_view pem) {
  auto certs = ParseCertificates(pem, "certificate bundle PEM");
  if (!certs.ok()) return certs.error();
  std::vector<CertificateInfo> out;
  for (const auto& cert : *certs) out.push_back(Describe(cert.get()));
  return out;
}

Status Verify(std::string_view leaf_pem, std::string_view trust_bundle_pem, TimePoint at) {
  auto chain = ParseCertificates(leaf_pem, "certificate PEM");
  if (!chain.ok()) return chain.error();
  auto anchors = ParseCertificates(trust_bundle_pem, "trust bundle PEM");
  if (!anchors.ok()) return anchors.error();
  // Only the bundle is trusted: no system CA, no default paths.
  StorePtr store(X509_STORE_new());
  for (const auto& anchor : *anchors) X509_STORE_add_cert(store.get(), anchor.get());
  CertificateStackPtr intermediates(sk_X509_new_null());
  for (size_t i = 1; i < chain->size(); ++i) {
    X509_up_ref((*chain)[i].get());
    sk_X509_push(intermediates.get(), (*chain)[i].get());
  }
  X509* leaf = chain->front().get();
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), leaf, intermediates.get()) != 1) {
    return MakeError(ErrorCode::kInternal, "verify: {}", TakeOpenSslReason());
  }
  // Sets X509_V_FLAG_USE_CHECK_TIME: validity is judged at `at`, not by the clock.
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()),
                             std::chrono::system_clock::to_time_t(at));
  if (X509_verify_cert(ctx.get()) == 1) return OkStatus();
  int code = X509_STORE_CTX_get_error(ctx.get());
  X509* failed = X509_STORE_CTX_get_current_cert(ctx.get());
  ERR_clear_error();
  return MakeError(ErrorCode::kUnauthenticated,
                   "certificate '{}' does not verify at {}: {} (at certificate '{}')",
                   CommonName(X509_get_subject_name(leaf)), FormatTime(at),
                   X509_verify_cert_error_string(code),
                   failed ? CommonName(X509_get_subject_name(failed)) : "?");
}

}  // namespace etcd_mesos::tls
