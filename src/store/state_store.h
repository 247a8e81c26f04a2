// StateStore: the small hierarchical key-value store in which the scheduler keeps what it must not
// forget across restarts (framework ID, task list, reseed bookkeeping). Two implementations pass
// the same contract suite: ZooKeeper (production, `zk://...`) and a directory on local disk (the
// embedded default, `--state-dir`).
//
// The model is ZooKeeper's: nodes named by '/'-separated paths, each holding bytes and a version
// that starts at 0 on create and grows by one per successful Set; writes can be conditional on the
// version (compare-and-set), which is how a restarted or duplicated scheduler finds out that its
// view is stale instead of silently overwriting a newer one.
//
// Threading: asynchronous, built around one boost::asio::io_context that the owner runs on one
// thread. Methods may be called from any thread (usually the io_context's); operations issued from
// one thread take effect in the order they were issued. Every callback is posted onto the
// io_context, never invoked inline inside the call and never from a foreign thread. Once the store
// object is destroyed, no callback of it runs any more (operations still in flight are abandoned;
// each one either took effect entirely or not at all).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/result.h"
#include "store/record.h"

namespace etcd_mesos::store {

class StateStore {
 public:
  virtual ~StateStore() = default;

  // kNotFound if absent.
  virtual void Get(std::string path, std::function<void(Result<Record>)> done) = 0;
  // kAlreadyExists if present; missing parents are created (empty data, version 0).
  virtual void Create(std::string path, std::string data,
                      std::function<void(Result<Record>)> done) = 0;
  // Compare-and-set: kConflict when the version is not expected_version, kNotFound if absent.
  // expected_version == kAnyVersion writes unconditionally. Answers the new record.
  virtual void Set(std::string path, std::string data, int64_t expected_version,
                   std::function<void(Result<Record>)> done) = 0;
  // kConflict on version mismatch, kNotFound if absent, kRefused if the node has children.
  virtual void Delete(std::string path, int64_t expected_version,
                      std::function<void(Status)> done) = 0;
  // Names (not paths) of the children, sorted; kNotFound if the path is absent. "/" can be listed
  // and is never absent.
  virtual void List(std::string path,
                    std::function<void(Result<std::vector<std::string>>)> done) = 0;
  // Where the data lives, for logs: "zk://127.0.0.1:2181/etcd-mesos", "dir:/var/lib/etcd-mesos".
  virtual std::string Describe() const = 0;

  // Fencing (scheduler high availability): every write issued after this call (Create, Set,
  // Delete) takes effect only if the node at `fence` exists when it is applied (with ZooKeeper,
  // in one multi-op with the write), and otherwise fails with kRefused (FenceGone) and changes
  // nothing. A leader fences on its own election node, which goes with its session: a write of
  // a leader whose session expired, however late it arrives, cannot overwrite what the next
  // leader stored. Empty: no fence. Parents that Create makes are not fenced (they are empty).
  // Call it on the thread that issues the writes: each write takes the fence along when issued.
  virtual void SetFence(std::string fence) = 0;
};

// Opens a store from a flag value: "zk://[user:password@]host:port,.../chroot" opens the
// ZooKeeper store; a filesystem path (or "dir:/path") opens the directory store. Opening a
// ZooKeeper store does not wait for the connection (operations wait for it up to a bounded
// time, then answer kUnavailable); opening a directory store creates the directory and locks it.
Result<std::unique_ptr<StateStore>> OpenStateStore(boost::asio::io_context& io,
                                                   std::string_view spec);

}  // namespace etcd_mesos::store
