// ZkStore: the StateStore kept in ZooKeeper below a chroot
// (`zk://[user:password@]h1:p1,h2:p2/a/b`), the production store, shared by every scheduler that
// may take over the framework.
//
// Built on the ZooKeeper C client (zookeeper_mt) and its asynchronous calls. Store paths are
// prefixed with the chroot by us rather than by the client's own chroot support, because the
// client's chroot must exist before the session can use it: prefixing lets Create make the chroot
// (of any depth) like any other missing parent, and lets a store whose chroot does not exist yet
// answer reads truthfully (not found; the root lists as empty).
//
// Failures: connection loss, not connected, operation timeout and a closing session answer
// kUnavailable ("retry later"); an operation that gets no answer within the operation timeout
// also answers kUnavailable. When the session expires the store closes the handle and opens a new
// session by itself (operations in flight on the old session answer kUnavailable). With
// credentials, "digest" authentication is added to every session and the nodes at and below the
// chroot are created readable and writable by those credentials only.
//
// Threading: as StateStore; destroy the store on the io_context thread (or while the io_context
// is not running). The C client calls back on its own threads; those callbacks only copy
// what they were given and post it to the io_context, where all of the store's state lives. That
// state is shared (shared_ptr) with the callbacks and carries a "closed" flag, so destroying the
// store while operations are in flight is safe: their answers are dropped.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/result.h"
#include "common/uri.h"
#include "store/state_store.h"

namespace etcd_mesos::store {

struct ZkStoreOptions {
  // Asked of the server, which clamps it to [2, 20] x its tickTime.
  std::chrono::milliseconds session_timeout{10000};
  // Bound on every operation, including the wait for a connection; then kUnavailable.
  std::chrono::milliseconds operation_timeout{10000};
};

class ZkStore final : public StateStore {
 public:
  struct Shared;

  // Starts connecting and returns at once. kInvalidArgument for a bad chroot, kUnavailable if the
  // client cannot be started (for example, no server name resolves).
  static Result<std::unique_ptr<ZkStore>> Open(boost::asio::io_context& io, const ZkUrl& url,
                                               ZkStoreOptions options = {});
  // Closes the session; answers of operations in flight are dropped.
  ~ZkStore() override;
  ZkStore(const ZkStore&) = delete;
  ZkStore& operator=(const ZkStore&) = delete;

  void Get(std::string path, std::function<void(Result<Record>)> done) override;
  void Create(std::string path, std::string data,
              std::function<void(Result<Record>)> done) override;
  void Set(std::string path, std::string data, int64_t expected_version,
           std::function<void(Result<Record>)> done) override;
  void Delete(std::string path, int64_t expected_version,
              std::function<void(Status)> done) override;
  void List(std::string path, std::function<void(Result<std::vector<std::string>>)> done) override;
  std::string Describe() const override;
  // Fenced writes are one multi-op: a check of the fence node, then the write.
  void SetFence(std::string fence) override { fence_ = std::move(fence); }

  // The current session's id and password (zoo_client_id), for tests that expire the session by
  // opening and closing a second handle on it; nullopt while there is no handle. Call it on the
  // io_context thread.
  struct SessionId {
    int64_t id = 0;
    std::string password;  // 16 bytes
  };
  std::optional<SessionId> SessionForTesting() const;
  // How many sessions this store has opened (1 + the number of expiries it recovered from).
  // Call it on the io_context thread.
  int SessionsOpenedForTesting() const;

 private:
  explicit ZkStore(std::shared_ptr<Shared> shared);

  std::shared_ptr<Shared> shared_;
  std::string fence_;  // the issuing thread's: each write takes it along
};

inline Result<std::unique_ptr<ZkStore>> OpenZkStore(boost::asio::io_context& io, const ZkUrl& url,
                                                    ZkStoreOptions options = {}) {
  return ZkStore::Open(io, url, options);
}

}  // namespace etcd_mesos::store
