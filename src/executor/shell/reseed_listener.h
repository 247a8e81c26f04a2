// ReseedListener: the executor's HTTP endpoint on <agent ip>:<reseed port>, for the scheduler.
//
//   GET  /status  -> 200, the member's facts (executor/task_config.h MemberFacts JSON).
//   POST /reseed  -> with `Authorization: Bearer <reseed token>` and an empty body or a JSON
//                    object {"timeout_s": N} (optional, 1..3600): runs the reseed and answers
//                    when it is over (so callers need a timeout longer than the reseed's):
//                    200 {"outcome":"reseeded","message":...,"took_ms":N,"facts":{...}}, or
//                    409 (another reseed runs, or no member runs) / 500 (a step failed or timed
//                    out) with the same shape and the outcome and message saying why.
//   Refusals, each with {"error": "..."}: 401 missing or wrong token, 405 wrong method (with
//   Allow), 400 malformed body, 404 unknown path.
//
// The original listener took any method on any interface without authentication; a reseed throws
// away cluster membership, so ours demands the task's token and binds the agent's IP only. With
// TLS members it speaks HTTPS with the member's server certificate and asks for a client
// certificate of the member's CAs, so the token never crosses the network in the clear.
//
// Threading: on the executor's io_context thread; callbacks run there.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/result.h"
#include "executor/core/supervisor.h"
#include "net/http.h"

namespace etcd_mesos::executor::shell {

// What a POST /reseed asks for once checked; or the refusal (status and message).
struct ReseedRequestCheck {
  unsigned status = 200;  // 200: accepted
  std::string error;
  std::optional<std::chrono::seconds> timeout;
};
// Checks authentication and body of a POST /reseed (pure, for tests).
ReseedRequestCheck CheckReseedRequest(const net::ServerRequest& request, const std::string& token);

class ReseedListener {
 public:
  struct Callbacks {
    std::function<MemberFacts()> facts;
    // A checked reseed request; answer later with Answer(request_id, ...).
    std::function<void(uint64_t request_id, std::optional<std::chrono::seconds> timeout)> on_reseed;
  };

  ReseedListener(boost::asio::io_context& io, Callbacks callbacks);
  ~ReseedListener();

  // HTTPS when `tls` is set (a TLS member: its server certificate, client certificates of its
  // CAs required), else plain HTTP.
  Result<HostPort> Listen(const HostPort& address, std::string token,
                          std::shared_ptr<const net::TlsServerConfig> tls = nullptr);
  void Answer(const core::AnswerReseed& answer);
  void Stop();

 private:
  void Handle(const net::ServerRequest& request, std::shared_ptr<net::Responder> responder);

  boost::asio::io_context& io_;
  Callbacks callbacks_;
  std::string token_;
  std::unique_ptr<net::HttpServer> server_;  // made by Listen
  uint64_t next_request_ = 0;
  std::map<uint64_t, std::shared_ptr<net::Responder>> waiting_;
};

}  // namespace etcd_mesos::executor::shell
