// The member's TLS files in the executor's sandbox, and how it gets them: the executor makes a key
// for its server port and one for its peer port, sends certificate requests for them to the
// scheduler (TaskConfig::Tls: cert_url, with the task's cert_token), and keeps the certificates
// that come back only if they chain to the CA the task names and are for its own keys. The keys
// are written 0600 and never leave the agent; the files stay for the task's life (etcd restarts
// and reseeds reuse them).
//
//   <sandbox>/tls/ca.crt      the trust bundle (the task's, as the scheduler sent it)
//   <sandbox>/tls/server.crt  server.key   the client port's certificate and key
//   <sandbox>/tls/peer.crt    peer.key     the peer port's
//
// Threading: RequestMemberCertificates runs on the io_context passed in and calls back there;
// the other functions block on the local disk (a few KiB).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/result.h"
#include "etcd/launch.h"
#include "executor/task_config.h"
#include "net/http.h"

namespace etcd_mesos::executor::shell {

struct MemberTlsPaths {
  std::filesystem::path ca, server_cert, server_key, peer_cert, peer_key;
  // As etcd's flags take them: the client port's files, and the peer port's.
  etcd::TlsFiles Server() const { return {ca.string(), server_cert.string(), server_key.string()}; }
  etcd::TlsFiles Peer() const { return {ca.string(), peer_cert.string(), peer_key.string()}; }
};

// The files' paths under `sandbox`.
MemberTlsPaths MemberTlsFiles(const std::filesystem::path& sandbox);

// True when every file is there (from an earlier start of etcd in this task).
bool HaveMemberTls(const std::filesystem::path& sandbox);

// Asks for the certificates and writes the files; `done` gets OK, or an error naming what failed
// (the scheduler's answer, a certificate that does not chain to the task's CA, ...).
void RequestMemberCertificates(boost::asio::io_context& io, const TaskConfig& config,
                               const std::string& task_id, const std::filesystem::path& sandbox,
                               std::function<void(Status)> done);

// The client side of the member's TLS for the executor's own probes: its CA bundle and its server
// certificate (which also certifies a client).
Result<std::shared_ptr<const net::TlsClientConfig>> MemberClientTls(
    const std::filesystem::path& sandbox);

// The server side for the reseed listener: the member's server certificate, and clients must
// present a certificate of the CAs the member trusts (as etcd's --client-cert-auth asks).
Result<std::shared_ptr<const net::TlsServerConfig>> MemberServerTls(
    const std::filesystem::path& sandbox);

}  // namespace etcd_mesos::executor::shell
