// The member's TLS files and how the executor gets them (member_tls.h).
#include "executor/shell/member_tls.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "tls/pki.h"

namespace etcd_mesos::executor::shell {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Writes `text` to `path` with `mode`, atomically (a half-written key never exists).
Status WriteFile(const fs::path& path, const std::string& text, mode_t mode) {
  fs::path tmp = path;
  tmp += ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return MakeError(ErrorCode::kUnavailable, "writing {}: {}", path.string(),
                     std::strerror(errno));
  }
  bool ok = ::fchmod(fd, mode) == 0 &&
            ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return MakeError(ErrorCode::kUnavailable, "writing {}: {}", path.string(),
                     std::strerror(ok ? errno : saved));
  }
  return OkStatus();
}

Result<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (!in || !(text << in.rdbuf())) {
    return MakeError(ErrorCode::kUnavailable, "reading {}", path.string());
  }
  return text.str();
}

struct Requests {
  tls::KeyAndRequest server, peer;
};

// The answer's certificates, checked: they chain to the task's CA now and certify our keys.
Status CheckAnswer(const TaskConfig& config, const Requests& keys, const json& answer) {
  auto now = std::chrono::system_clock::now();
  for (auto [field, key] : {std::pair{"server_cert", &keys.server.key_pem},
                            std::pair{"peer_cert", &keys.peer.key_pem}}) {
    if (!answer.contains(field) || !answer[field].is_string()) {
      return MakeError(ErrorCode::kInvalidArgument, "the scheduler's answer has no {}", field);
    }
    const auto& cert = answer[field].get_ref<const std::string&>();
    if (Status s = tls::Verify(cert, config.tls->ca, now); !s.ok()) {
      return s.error().Context(fmt::format("the scheduler's {}", field));
    }
    // A server configuration refuses a key that is not its certificate's.
    auto pair = net::TlsServerConfig::Create(cert, *key);
    if (!pair.ok()) return pair.error().Context(fmt::format("the scheduler's {}", field));
  }
  return OkStatus();
}

Status WriteAll(const MemberTlsPaths& paths, const TaskConfig& config, const Requests& keys,
                const json& answer) {
  std::error_code ec;
  fs::create_directories(paths.ca.parent_path(), ec);
  fs::permissions(paths.ca.parent_path(), fs::perms::owner_all, ec);
  const std::pair<const fs::path*, std::pair<std::string, mode_t>> files[] = {
      {&paths.server_key, {keys.server.key_pem, 0600}},
      {&paths.peer_key, {keys.peer.key_pem, 0600}},
      {&paths.server_cert, {answer["server_cert"].get<std::string>(), 0644}},
      {&paths.peer_cert, {answer["peer_cert"].get<std::string>(), 0644}},
      // Written last: its presence says the set is whole (HaveMemberTls).
      {&paths.ca, {config.tls->ca, 0644}},
  };
  for (const auto& [path, content] : files) {
    if (Status s = WriteFile(*path, content.first, content.second); !s.ok()) return s;
  }
  return OkStatus();
}

}  // namespace

MemberTlsPaths MemberTlsFiles(const fs::path& sandbox) {
  fs::path dir = sandbox / "tls";
  return {dir / "ca.crt", dir / "server.crt", dir / "server.key", dir / "peer.crt",
          dir / "peer.key"};
}

bool HaveMemberTls(const fs::path& sandbox) {
  MemberTlsPaths p = MemberTlsFiles(sandbox);
  std::error_code ec;
  for (const fs::path* f : {&p.server_key, &p.peer_key, &p.server_cert, &p.peer_cert, &p.ca}) {
    if (!fs::is_regular_file(*f, ec)) return false;
  }
  return true;
}

void RequestMemberCertificates(boost::asio::io_context& io, const TaskConfig& config,
                               const std::string& task_id, const fs::path& sandbox,
                               std::function<void(Status)> done) {
  auto url = ParseHttpUrl(config.tls->cert_url);
  if (!url.ok()) return done(url.error().Context("tls.cert_url"));
  auto server = tls::NewCertificateRequest(config.name);
  auto peer = tls::NewCertificateRequest(config.name);
  if (!server.ok()) return done(server.error());
  if (!peer.ok()) return done(peer.error());
  auto keys = std::make_shared<Requests>(Requests{std::move(*server), std::move(*peer)});
  net::HttpRequest req;
  req.method = net::Verb::post;
  req.endpoint = url->endpoint;
  req.target = url->path;
  req.headers = {{"Content-Type", "application/json"},
                 {"Authorization", "Bearer " + config.tls->cert_token}};
  req.body = json{{"task_id", task_id},
                  {"server_csr", keys->server.request_pem},
                  {"peer_csr", keys->peer.request_pem}}
                 .dump();
  req.timeout = std::chrono::seconds(10);
  if (url->scheme == "https") {
    // The scheduler's admin server with --admin-tls-cert: trusted by the host's trust store, as
    // the Mesos fetcher that fetched this executor over the same server trusted it.
    auto client = net::TlsClientConfig::SystemTrust();
    if (!client.ok()) return done(client.error().Context("tls.cert_url"));
    req.tls = *client;
  }
  spdlog::info("asking {} for this member's certificates", url->ToString());
  net::HttpFetch(io, std::move(req),
                 [config, keys, sandbox, done = std::move(done)](Result<net::HttpResponse> r) {
                   if (!r.ok()) return done(r.error().Context("asking for certificates"));
                   if (r->status != 200) {
                     return done(MakeError(ErrorCode::kRefused,
                                           "the scheduler refused the certificates: {} {}",
                                           r->status, r->body.substr(0, 300)));
                   }
                   json answer = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
                   if (answer.is_discarded() || !answer.is_object()) {
                     return done(MakeError(ErrorCode::kInvalidArgument,
                                           "the scheduler's certificates are not a JSON object"));
                   }
                   if (Status s = CheckAnswer(config, *keys, answer); !s.ok()) return done(s);
                   done(WriteAll(MemberTlsFiles(sandbox), config, *keys, answer));
                 });
}

namespace {

// The member's CA bundle, server certificate and key, as PEM texts.
struct ServerPems {
  std::string ca, cert, key;
};
Result<ServerPems> ReadServerPems(const fs::path& sandbox) {
  MemberTlsPaths p = MemberTlsFiles(sandbox);
  auto ca = ReadFile(p.ca);
  auto cert = ReadFile(p.server_cert);
  auto key = ReadFile(p.server_key);
  for (auto* r : {&ca, &cert, &key}) {
    if (!r->ok()) return r->error();
  }
  return ServerPems{std::move(*ca), std::move(*cert), std::move(*key)};
}

}  // namespace

Result<std::shared_ptr<const net::TlsClientConfig>> MemberClientTls(const fs::path& sandbox) {
  auto pems = ReadServerPems(sandbox);
  if (!pems.ok()) return pems.error();
  return net::TlsClientConfig::Create(pems->ca, pems->cert, pems->key);
}

Result<std::shared_ptr<const net::TlsServerConfig>> MemberServerTls(const fs::path& sandbox) {
  auto pems = ReadServerPems(sandbox);
  if (!pems.ok()) return pems.error();
  return net::TlsServerConfig::Create(pems->cert, pems->key, pems->ca);
}

}  // namespace etcd_mesos::executor::shell
