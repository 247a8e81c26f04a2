#include "executor/shell/reseed_listener.h"

#include <nlohmann/json.hpp>

#include "common/secret.h"

namespace etcd_mesos::executor::shell {
namespace {

using nlohmann::json;

net::HttpResponse ErrorResponse(unsigned status, const std::string& message) {
  return net::JsonResponse(status, json{{"error", message}}.dump());
}

}  // namespace

ReseedRequestCheck CheckReseedRequest(const net::ServerRequest& request, const std::string& token) {
  auto auth = request.Header("Authorization");
  if (!auth) {
    return {401, "missing Authorization header: send 'Authorization: Bearer <reseed token>'", {}};
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (auth->rfind(kBearer, 0) != 0) {
    return {401, "the Authorization header must be 'Bearer <reseed token>'", {}};
  }
  if (!SameSecret(auth->substr(kBearer.size()), token)) return {401, "wrong reseed token", {}};
  ReseedRequestCheck ok;
  if (request.body.find_first_not_of(" \t\r\n") == std::string::npos) return ok;
  json doc = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return {400, "the body must be empty or a JSON object like {\"timeout_s\": 60}", {}};
  }
  for (const auto& [key, value] : doc.items()) {
    if (key != "timeout_s") return {400, "unknown field \"" + key + "\" (known: timeout_s)", {}};
    if (!value.is_number_integer() || value.get<int64_t>() < 1 || value.get<int64_t>() > 3600) {
      return {400, "field \"timeout_s\" must be an integer in 1..3600", {}};
    }
    ok.timeout = std::chrono::seconds(value.get<int64_t>());
  }
  return ok;
}

ReseedListener::ReseedListener(boost::asio::io_context& io, Callbacks callbacks)
    : io_(io), callbacks_(std::move(callbacks)) {}

ReseedListener::~ReseedListener() { Stop(); }

Result<HostPort> ReseedListener::Listen(const HostPort& address, std::string token,
                                        std::shared_ptr<const net::TlsServerConfig> tls) {
  token_ = std::move(token);
  if (server_) server_->Stop();
  server_ = std::make_unique<net::HttpServer>(
      io_,
      net::HttpServer::Options{.max_body_bytes = 64 << 10,
                               .idle_timeout = std::chrono::minutes(10),
                               .server_name = "etcd-mesos-executor",
                               .tls = std::move(tls)},
      [this](const net::ServerRequest& req, std::shared_ptr<net::Responder> r) {
        Handle(req, std::move(r));
      });
  return server_->Listen(address);
}

void ReseedListener::Stop() {
  for (auto& [id, responder] : waiting_) {
    responder->Respond(ErrorResponse(503, "the executor is shutting down"));
  }
  waiting_.clear();
  if (server_) server_->Stop();
}

void ReseedListener::Answer(const core::AnswerReseed& answer) {
  auto it = waiting_.find(answer.request_id);
  if (it == waiting_.end()) return;  // the caller went away; the reseed still happened
  unsigned status = 500;
  switch (answer.outcome) {
    case core::ReseedOutcome::kReseeded:
      status = 200;
      break;
    case core::ReseedOutcome::kBusy:
    case core::ReseedOutcome::kNotRunning:
      status = 409;
      break;
    case core::ReseedOutcome::kFailed:
      status = 500;
      break;
  }
  json body = {
      {"outcome", core::ReseedOutcomeName(answer.outcome)},
      {"message", answer.message},
      {"took_ms", std::chrono::duration_cast<std::chrono::milliseconds>(answer.took).count()},
      {"facts", json::parse(EncodeMemberFacts(answer.facts))},
  };
  it->second->Respond(net::JsonResponse(status, body.dump()));
  waiting_.erase(it);
}

void ReseedListener::Handle(const net::ServerRequest& req,
                            std::shared_ptr<net::Responder> responder) {
  if (req.path == "/status") {
    if (req.method != net::Verb::get) {
      auto r =
          ErrorResponse(405, "method " + req.method_string + " not allowed on /status; use GET");
      r.headers.emplace_back("Allow", "GET");
      return responder->Respond(std::move(r));
    }
    return responder->Respond(net::JsonResponse(200, EncodeMemberFacts(callbacks_.facts())));
  }
  if (req.path == "/reseed") {
    if (req.method != net::Verb::post) {
      auto r =
          ErrorResponse(405, "method " + req.method_string + " not allowed on /reseed; use POST");
      r.headers.emplace_back("Allow", "POST");
      return responder->Respond(std::move(r));
    }
    ReseedRequestCheck check = CheckReseedRequest(req, token_);
    if (check.status != 200) return responder->Respond(ErrorResponse(check.status, check.error));
    uint64_t id = ++next_request_;
    waiting_[id] = std::move(responder);
    callbacks_.on_reseed(id, check.timeout);
    return;
  }
  responder->Respond(ErrorResponse(404, "no such path " + req.path +
                                            " (try GET /status or POST "
                                            "/reseed)"));
}

}  // namespace etcd_mesos::executor::shell
