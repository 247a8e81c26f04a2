// The TLS configurations of net/http.h: PEM texts loaded into one OpenSSL context each.
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <fmt/format.h>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>

#include "net/http.h"

namespace etcd_mesos::net {
namespace ssl = boost::asio::ssl;

namespace {

using Context = std::unique_ptr<ssl::context>;

Context NewContext(ssl::context::method method) {
  auto context = std::make_unique<ssl::context>(method);
  // TLS 1.2 and 1.3 only, as etcd 3.4 and Go's clients speak them.
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  // An encrypted key fails to load instead of OpenSSL prompting on the terminal.
  context->set_password_callback([](size_t, ssl::context::password_purpose) { return ""; });
  return context;
}

// `what` names the part in the error; OpenSSL's reason never contains key material.
Status Load(
    std::string_view what, std::string_view pem,
    const std::function<void(boost::asio::const_buffer, boost::system::error_code&)>& load) {
  boost::system::error_code ec;
  load(boost::asio::buffer(pem.data(), pem.size()), ec);
  if (ec) return MakeError(ErrorCode::kInvalidArgument, "TLS {}: {}", what, ec.message());
  return OkStatus();
}

Status LoadIdentity(ssl::context& context, std::string_view certificate_pem,
                    std::string_view key_pem) {
  auto loaded = Load("certificate", certificate_pem,
                     [&](auto buffer, auto& ec) { context.use_certificate_chain(buffer, ec); });
  if (!loaded.ok()) return loaded;
  // OpenSSL checks here that the key is the certificate's ("key values mismatch").
  return Load("private key", key_pem, [&](auto buffer, auto& ec) {
    context.use_private_key(buffer, ssl::context::pem, ec);
  });
}

Status LoadTrust(ssl::context& context, std::string_view what, std::string_view ca_bundle_pem) {
  if (ca_bundle_pem.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "TLS {}: empty CA bundle", what);
  }
  // Every certificate of the bundle: during a CA rotation it holds the old and the new CA.
  return Load(what, ca_bundle_pem,
              [&](auto buffer, auto& ec) { context.add_certificate_authority(buffer, ec); });
}

}  // namespace

TlsClientConfig::TlsClientConfig(Context context) : context_(std::move(context)) {}
TlsClientConfig::~TlsClientConfig() = default;

Result<std::shared_ptr<const TlsClientConfig>> TlsClientConfig::Create(
    std::string_view ca_bundle_pem, std::string_view certificate_pem, std::string_view key_pem) {
  if (certificate_pem.empty() != key_pem.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "TLS client: a client certificate needs its key, and a key its certificate");
  }
  Context context = NewContext(ssl::context::tls_client);
  if (auto s = LoadTrust(*context, "CA bundle", ca_bundle_pem); !s.ok()) return s.error();
  if (!certificate_pem.empty()) {
    if (auto s = LoadIdentity(*context, certificate_pem, key_pem); !s.ok()) return s.error();
  }
  context->set_verify_mode(ssl::verify_peer);
  return std::shared_ptr<const TlsClientConfig>(new TlsClientConfig(std::move(context)));
}

Result<std::shared_ptr<const TlsClientConfig>> TlsClientConfig::SystemTrust(
    std::string_view extra_ca_pem) {
  Context context = NewContext(ssl::context::tls_client);
  boost::system::error_code ec;
  context->set_default_verify_paths(ec);
  if (ec) {
    return MakeError(ErrorCode::kInvalidArgument, "TLS client: the system's trust store: {}",
                     ec.message());
  }
  if (!extra_ca_pem.empty()) {
    if (auto s = LoadTrust(*context, "CA bundle", extra_ca_pem); !s.ok()) return s.error();
  }
  context->set_verify_mode(ssl::verify_peer);
  return std::shared_ptr<const TlsClientConfig>(new TlsClientConfig(std::move(context)));
}

Result<std::shared_ptr<const TlsClientConfig>> TlsClientConfig::FromFiles(
    const std::string& ca_file, const std::string& cert_file, const std::string& key_file) {
  std::string pem[3];
  const std::string* files[3] = {&ca_file, &cert_file, &key_file};
  for (int i = 0; i < 3; ++i) {
    if (files[i]->empty()) continue;
    std::ifstream in(*files[i], std::ios::binary);
    if (!in) {
      return MakeError(ErrorCode::kInvalidArgument, "TLS client: cannot read {}: {}", *files[i],
                       std::strerror(errno));
    }
    pem[i].assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto config = Create(pem[0], pem[1], pem[2]);
  if (!config.ok()) {
    return config.error().Context(fmt::format("CA {}, certificate {}, key {}", ca_file,
                                              cert_file.empty() ? "(none)" : cert_file,
                                              key_file.empty() ? "(none)" : key_file));
  }
  return config;
}

TlsServerConfig::TlsServerConfig(Context context) : context_(std::move(context)) {}
TlsServerConfig::~TlsServerConfig() = default;

Result<std::shared_ptr<const TlsServerConfig>> TlsServerConfig::Create(
    std::string_view certificate_pem, std::string_view key_pem, std::string_view client_ca_pem) {
  Context context = NewContext(ssl::context::tls_server);
  if (auto s = LoadIdentity(*context, certificate_pem, key_pem); !s.ok()) return s.error();
  if (!client_ca_pem.empty()) {
    if (auto s = LoadTrust(*context, "client CA bundle", client_ca_pem); !s.ok()) return s.error();
    context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return std::shared_ptr<const TlsServerConfig>(new TlsServerConfig(std::move(context)));
}

}  // namespace etcd_mesos::net
