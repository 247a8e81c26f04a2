// PostUnlessClosed: how a completion on a foreign thread (a ZooKeeper client's) reaches the
// io_context that owns the state it answers: the master detector, the local master's contender
// and the scheduler's election all use it. The owner's shared state carries `mu`, a `closed` flag
// guarded by it (set before the handle is closed), a `stopped` flag read on the io thread, and
// `io`. A completion that comes after closing is dropped; one posted just before runs only if the
// owner has not stopped by then.
//
// Threading: called on the foreign thread; `fn` runs on the io_context thread.
#pragma once

#include <memory>
#include <mutex>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <boost/asio/post.hpp>

namespace etcd_mesos {

template <typename Owner, typename Fn>
void PostUnlessClosed(const std::shared_ptr<Owner>& self, Fn fn) {
  std::lock_guard<std::mutex> lock(self->mu);
  if (self->closed) return;
  boost::asio::post(self->io, [self, fn = std::move(fn)]() mutable {
    if (!self->stopped) fn(*self);
  });
}

}  // namespace etcd_mesos
