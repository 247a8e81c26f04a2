#include "testing/linearizable_workload.h"

#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <fmt/format.h>

#include "etcd/client.h"

namespace etcd_mesos::test {
LinearizableWorkload::LinearizableWorkload(boost::asio::io_context& io, Endpoints endpoints,
                                           Options options)
    : io_(io), endpoints_(std::move(endpoints)), options_(std::move(options)), rng_(options_.seed) {
  for (int i = 0; i < options_.clients; ++i) {
    // Client i starts on member i: every member serves someone, so a fault anywhere is felt.
    clients_.push_back({.id = i,
                        .endpoint = static_cast<size_t>(i),
                        .timer = std::make_unique<boost::asio::steady_timer>(io_)});
  }
}

LinearizableWorkload::~LinearizableWorkload() { *alive_ = false; }

int64_t LinearizableWorkload::Now() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              start_)
      .count();
}

void LinearizableWorkload::Start() {
  if (running_) return;
  if (history_.ops.empty()) start_ = std::chrono::steady_clock::now();
  running_ = true;
  for (auto& c : clients_) {
    if (!c.busy) Next(c);
  }
}

void LinearizableWorkload::Stop() {
  running_ = false;
  for (auto& c : clients_) c.timer->cancel();
}

void LinearizableWorkload::After(Client& client, std::chrono::milliseconds delay) {
  client.timer->expires_after(delay);
  client.timer->async_wait([this, alive = alive_, id = client.id](boost::system::error_code ec) {
    if (!ec && *alive) Next(clients_[id]);
  });
}

void LinearizableWorkload::Next(Client& client) {
  if (!running_) return;
  std::vector<HostPort> endpoints = endpoints_();
  if (endpoints.empty()) return After(client, std::chrono::milliseconds(200));
  Issue(client, endpoints[client.endpoint % endpoints.size()]);
}

void LinearizableWorkload::Issue(Client& c, const HostPort& target) {
  Operation op{.client = c.id,
               .key = fmt::format("{}/{}", options_.prefix, rng_() % options_.keys),
               .kind = static_cast<OpKind>(rng_() % 3),
               .outcome = Outcome::kIndeterminate};  // until an answer says otherwise
  if (op.kind != OpKind::kRead) op.value = fmt::format("c{}-{}", c.id, ++c.next_value);
  if (op.kind == OpKind::kCas && c.last.count(op.key)) op.expected = c.last[op.key];
  op.invoke = op.complete = Now();
  size_t index = history_.ops.size();
  history_.ops.push_back(op);
  c.busy = true;
  ++in_flight_;
  auto client = std::make_shared<etcd::Client>(
      io_, target,
      etcd::Client::Options{.request_timeout = options_.request_timeout, .tls = options_.tls});
  // Each callback keeps the client alive and finds its operation by index (the vector grows).
  auto answered = [this, alive = alive_, client, index, id = c.id](auto r, auto fill) {
    if (!*alive) return;
    if (r.ok()) fill(history_.ops[index], *r);
    Complete(clients_[id], index, r.ok() ? OkStatus() : Status(r.error()));
  };
  switch (op.kind) {
    case OpKind::kRead:
      client->Get(op.key, /*serializable=*/false, [answered](Result<etcd::RangeResponse> r) {
        answered(std::move(r), [](Operation& op, const etcd::RangeResponse& got) {
          if (!got.kvs.empty()) op.value = got.kvs[0].value;
        });
      });
      break;
    case OpKind::kWrite:
      client->Put(op.key, *op.value, [answered](Result<etcd::PutResponse> r) {
        answered(std::move(r), [](Operation&, const etcd::PutResponse&) {});
      });
      break;
    case OpKind::kCas:
      client->CompareAndSwap(
          op.key, op.expected, *op.value, [answered](Result<etcd::TxnResponse> r) {
            answered(std::move(r), [](Operation& op, const etcd::TxnResponse& txn) {
              op.succeeded = txn.succeeded;
            });
          });
      break;
  }
}

void LinearizableWorkload::Complete(Client& client, size_t index, const Status& status) {
  Operation& op = history_.ops[index];
  op.complete = Now();
  client.busy = false;
  --in_flight_;
  if (status.ok()) {
    op.outcome = Outcome::kOk;
    if (op.kind != OpKind::kCas || op.succeeded) client.last[op.key] = op.value;
  } else {
    // Only an explicit refusal proves the request was not applied; anything else might have been.
    op.outcome =
        status.error().code == ErrorCode::kRefused ? Outcome::kFailed : Outcome::kIndeterminate;
    ++client.endpoint;
  }
  if (running_) After(client, options_.pause);
}

}  // namespace etcd_mesos::test
