#include "store/zk_store.h"

#include <zookeeper.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <unordered_set>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace etcd_mesos::store {
namespace {

// What a ZooKeeper completion reported, copied out of the client's buffers on its thread.
struct Reply {
  int rc = ZOK;
  std::string data;
  int64_t version = 0;
  std::vector<std::string> children;
  int fence_rc = ZOK;  // a fenced write: the check of the fence, and the write's own result
  int write_rc = ZOK;
};

// A fenced write: one multi-op, the check of the fence node then the write. The client fills
// the results (and the set's stat) on its thread when the answer comes, possibly after the
// caller has given up waiting: these buffers live as long as the call's context.
struct FencedWrite {
  std::string fence, full, data;
  zoo_op_t ops[2];
  zoo_op_result_t results[2]{};
  Stat stat{};
  std::vector<char> created_path = std::vector<char>(1024);
};

// One operation in flight, owned by the io_context side. Its timer bounds the wait for an answer.
struct CallState {
  explicit CallState(boost::asio::io_context& io, std::function<void(Reply)> f)
      : timer(io), finish(std::move(f)) {}
  bool done = false;
  boost::asio::steady_timer timer;
  std::function<void(Reply)> finish;
};

bool IsUnavailable(int rc) {
  switch (rc) {
    case ZCONNECTIONLOSS:
    case ZOPERATIONTIMEOUT:
    case ZSESSIONEXPIRED:
    case ZSESSIONMOVED:
    case ZCLOSING:
    case ZINVALIDSTATE:
    case ZNOTHING:
    case ZNOTREADONLY:
    case ZRECONFIGINPROGRESS:
      return true;
    default:
      return false;
  }
}

// The C client's own log lines (one per failed connection attempt, among others) go to our log at
// debug level; the store logs what matters (session lost, expired, re-opened) itself.
void LogToSpdlog(const char* message) { spdlog::debug("zookeeper client: {}", message); }

void QuietClientLogging() {
  static std::once_flag once;
  std::call_once(once, [] { zoo_set_debug_level(ZOO_LOG_LEVEL_WARN); });
}

void AuthDone(int rc, const void* /*data*/) {
  if (rc != ZOK) spdlog::error("ZooKeeper digest authentication failed: {}", zerror(rc));
}

// Full ZooKeeper paths of the ancestors of `full` ("/a/b/c" -> "/a", "/a/b").
std::vector<std::string> Ancestors(const std::string& full) {
  std::vector<std::string> out;
  for (size_t i = 1; i < full.size(); ++i) {
    if (full[i] == '/') out.push_back(full.substr(0, i));
  }
  return out;
}

}  // namespace

struct ZkStore::Shared : std::enable_shared_from_this<ZkStore::Shared> {
  Shared(boost::asio::io_context& io_in, ZkUrl url_in, ZkStoreOptions options_in)
      : io(io_in), url(std::move(url_in)), options(options_in), reopen_timer(io_in) {}

  // The watcher's context: which session generation the events are about.
  struct WatchContext {
    std::weak_ptr<Shared> shared;
    int generation = 0;
  };
  // A completion's context, owned by the C client until the completion runs.
  struct CallContext {
    std::weak_ptr<Shared> shared;
    std::shared_ptr<CallState> state;
    std::shared_ptr<FencedWrite> fenced;  // the multi-op's buffers, if this call is one
  };

  boost::asio::io_context& io;
  const ZkUrl url;
  const ZkStoreOptions options;
  std::atomic<bool> closed{false};

  // io_context thread only.
  zhandle_t* zh = nullptr;
  WatchContext* watch_context = nullptr;
  int generation = 0;
  int sessions_opened = 0;
  bool connected = false;
  boost::asio::steady_timer reopen_timer;
  std::unordered_set<CallState*> calls;

  std::string Describe() const { return url.ToString(); }
  std::string Full(const std::string& path) const {
    return path == "/" ? url.path : url.path + path;
  }

  const ACL_vector* AclFor(const std::string& full) {
    // With credentials, our own nodes are for our credentials only; the chroot's ancestors may be
    // shared with others (e.g. /mesos), so they stay open.
    bool ours = full.size() >= url.path.size();
    return url.user && ours ? &ZOO_CREATOR_ALL_ACL : &ZOO_OPEN_ACL_UNSAFE;
  }

  Error ToError(int rc, std::string_view op, std::string_view path) const {
    if (IsUnavailable(rc)) {
      return MakeError(ErrorCode::kUnavailable, "{} of store path '{}' on {}: {}; retry later", op,
                       path, Describe(), zerror(rc));
    }
    switch (rc) {
      case ZNONODE:
        return MakeError(ErrorCode::kNotFound, "store path '{}' does not exist", path);
      case ZNODEEXISTS:
        return MakeError(ErrorCode::kAlreadyExists, "store path '{}' already exists", path);
      case ZBADVERSION:
        return MakeError(ErrorCode::kConflict, "{} of store path '{}': version mismatch", op, path);
      case ZNOTEMPTY:
        return MakeError(ErrorCode::kRefused, "store path '{}' has children; delete them first",
                         path);
      case ZNOAUTH:
      case ZAUTHFAILED:
        return MakeError(ErrorCode::kUnauthenticated, "{} of store path '{}' on {}: {}", op, path,
                         Describe(), zerror(rc));
      default:
        return MakeError(ErrorCode::kInternal, "{} of store path '{}' on {}: {} ({})", op, path,
                         Describe(), zerror(rc), rc);
    }
  }

  // --- sessions -------------------------------------------------------------------------------

  Status OpenSession() {
    QuietClientLogging();
    auto* context = new WatchContext{weak_from_this(), ++generation};
    zhandle_t* handle = zookeeper_init2(url.ServersString().c_str(), &Shared::Watcher,
                                        static_cast<int>(options.session_timeout.count()), nullptr,
                                        context, 0, &LogToSpdlog);
    if (handle == nullptr) {
      int err = errno;
      delete context;
      return MakeError(ErrorCode::kUnavailable, "cannot start a ZooKeeper client for {}: {}",
                       Describe(), std::strerror(err));
    }
    if (url.user) {
      std::string credentials = *url.user + ":" + url.password.value_or("");
      zoo_add_auth(handle, "digest", credentials.data(), static_cast<int>(credentials.size()),
                   &AuthDone, nullptr);
    }
    zh = handle;
    watch_context = context;
    connected = false;
    ++sessions_opened;
    return OkStatus();
  }

  void CloseHandle() {
    if (zh == nullptr) return;
    zhandle_t* handle = zh;
    zh = nullptr;
    // Joins the client's threads; operations still pending on it complete (ZCLOSING) before this
    // returns, so the watch context is unused afterwards.
    zookeeper_close(handle);
    delete watch_context;
    watch_context = nullptr;
  }

  void ReopenSession() {
    if (closed) return;
    CloseHandle();
    if (auto s = OpenSession(); !s.ok()) {
      spdlog::error("{}; trying again in 1s", s.error());
      reopen_timer.expires_after(std::chrono::seconds(1));
      reopen_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (!ec) self->ReopenSession();
      });
    }
  }

  // Runs on the client's thread: only posts.
  static void Watcher(zhandle_t* /*zh*/, int type, int state, const char* /*path*/, void* ctx) {
    if (type != ZOO_SESSION_EVENT || ctx == nullptr) return;
    auto* context = static_cast<WatchContext*>(ctx);
    auto self = context->shared.lock();
    if (!self || self->closed) return;
    boost::asio::post(self->io, [self, generation = context->generation, state] {
      self->OnSessionEvent(generation, state);
    });
  }

  void OnSessionEvent(int event_generation, int state) {
    if (closed || event_generation != generation || zh == nullptr) return;
    const clientid_t* id = zoo_client_id(zh);
    int64_t session = id ? id->client_id : 0;
    if (state == ZOO_CONNECTED_STATE) {
      if (!connected)
        spdlog::info("connected to ZooKeeper {} (session 0x{:x})", Describe(), session);
      connected = true;
    } else if (state == ZOO_CONNECTING_STATE) {
      if (connected) spdlog::warn("lost the connection to ZooKeeper {}; reconnecting", Describe());
      connected = false;
    } else if (state == ZOO_EXPIRED_SESSION_STATE) {
      spdlog::warn("ZooKeeper session 0x{:x} on {} expired; opening a new session", session,
                   Describe());
      ReopenSession();
    } else if (state == ZOO_AUTH_FAILED_STATE) {
      spdlog::error("ZooKeeper {} refused our credentials (digest authentication failed)",
                    Describe());
    }
  }

  void Close() {
    closed = true;
    reopen_timer.cancel();
    for (CallState* call : calls) call->timer.cancel();
    calls.clear();
    CloseHandle();
  }

  // --- calls ----------------------------------------------------------------------------------

  // On the io_context thread: starts one asynchronous call; `finish` runs on the io_context
  // thread exactly once, with the reply or a timeout, unless the store is closed first.
  void Call(const std::function<int(zhandle_t*, const void*)>& start,
            std::function<void(Reply)> finish, std::shared_ptr<FencedWrite> fenced = nullptr) {
    if (closed) return;
    if (zh == nullptr) {
      finish(Reply{.rc = ZINVALIDSTATE});
      return;
    }
    auto state = std::make_shared<CallState>(io, std::move(finish));
    auto* context = new CallContext{weak_from_this(), state, std::move(fenced)};
    int rc = start(zh, context);
    if (rc != ZOK) {
      // The completion will not run.
      delete context;
      Complete(state, Reply{.rc = rc});
      return;
    }
    calls.insert(state.get());
    state->timer.expires_after(options.operation_timeout);
    state->timer.async_wait([self = shared_from_this(), state](boost::system::error_code ec) {
      if (!ec) self->Complete(state, Reply{.rc = ZOPERATIONTIMEOUT});
    });
  }

  void Complete(const std::shared_ptr<CallState>& state, Reply reply) {
    if (state->done) return;
    state->done = true;
    calls.erase(state.get());
    state->timer.cancel();
    if (closed) return;
    auto finish = std::move(state->finish);
    finish(std::move(reply));
  }

  // Runs on the client's thread (or inside zookeeper_close): only posts.
  static void Deliver(const void* data, Reply reply) {
    auto* context = static_cast<CallContext*>(const_cast<void*>(data));
    if (auto self = context->shared.lock(); self && !self->closed) {
      boost::asio::post(
          self->io, [self, state = std::move(context->state), reply = std::move(reply)]() mutable {
            self->Complete(state, std::move(reply));
          });
    }
    delete context;
  }

  static void DataDone(int rc, const char* value, int value_len, const Stat* stat,
                       const void* data) {
    Reply reply{.rc = rc};
    if (rc == ZOK) {
      if (value != nullptr && value_len > 0) reply.data.assign(value, value_len);
      if (stat != nullptr) reply.version = stat->version;
    }
    Deliver(data, std::move(reply));
  }
  static void StringDone(int rc, const char* /*value*/, const void* data) {
    Deliver(data, Reply{.rc = rc});
  }
  static void StatDone(int rc, const Stat* stat, const void* data) {
    Reply reply{.rc = rc};
    if (rc == ZOK && stat != nullptr) reply.version = stat->version;
    Deliver(data, std::move(reply));
  }
  static void VoidDone(int rc, const void* data) { Deliver(data, Reply{.rc = rc}); }
  static void MultiDone(int rc, const void* data) {
    const auto* context = static_cast<const CallContext*>(data);
    Reply reply{.rc = rc};
    if (const FencedWrite* w = context->fenced.get()) {
      reply.fence_rc = w->results[0].err;
      reply.write_rc = w->results[1].err;
      reply.version = w->stat.version;
    }
    Deliver(data, std::move(reply));
  }

  // A write fenced on `fence` (already a full path): the multi-op, then `finish` with its
  // reply, whose rc is the write's own when the fence held.
  void CallFenced(std::shared_ptr<FencedWrite> w, std::function<void(Reply)> finish) {
    zoo_check_op_init(&w->ops[0], w->fence.c_str(), -1);
    Call(
        [w](zhandle_t* h, const void* ctx) {
          return zoo_amulti(h, 2, w->ops, w->results, &Shared::MultiDone, ctx);
        },
        [finish = std::move(finish)](Reply r) {
          // A failed multi-op answers the first failing op's error for the whole.
          if (r.rc != ZOK && r.fence_rc == ZOK && r.write_rc != ZOK) r.rc = r.write_rc;
          finish(std::move(r));
        },
        w);
  }
  // The reply of a fenced write as our error, if it failed: the fence's, or the write's.
  std::optional<Error> FenceError(const Reply& r, const std::string& fence,
                                  const std::string& path) const {
    if (r.rc == ZOK) return std::nullopt;
    if (r.fence_rc == ZNONODE) return FenceGone(fence, path);
    return std::nullopt;
  }
  static void StringsDone(int rc, const String_vector* strings, const void* data) {
    Reply reply{.rc = rc};
    if (rc == ZOK && strings != nullptr) {
      for (int i = 0; i < strings->count; ++i) reply.children.emplace_back(strings->data[i]);
    }
    Deliver(data, std::move(reply));
  }

  // --- operations (io_context thread) ---------------------------------------------------------

  void Get(const std::string& path, std::function<void(Result<Record>)> done) {
    if (auto s = ValidatePath(path); !s.ok()) return done(s.error());
    std::string full = Full(path);
    Call([full](zhandle_t* h,
                const void* ctx) { return zoo_aget(h, full.c_str(), 0, &Shared::DataDone, ctx); },
         [this, path, done = std::move(done)](Reply r) {
           if (r.rc != ZOK) return done(ToError(r.rc, "get", path));
           done(Record{std::move(r.data), r.version});
         });
  }

  void Create(const std::string& path, std::string data, const std::string& fence,
              std::function<void(Result<Record>)> done) {
    if (auto s = ValidatePath(path); !s.ok()) return done(s.error());
    if (auto s = ValidateData(path, data); !s.ok()) return done(s.error());
    std::string full = Full(path);
    // Missing parents (the chroot's too) are created by requests sent ahead of the node's own,
    // without waiting for their answers: ZooKeeper runs a session's requests in order, so the
    // parents exist by the time the node is created, and operations issued after this Create are
    // not overtaken by a slow "create the parents, then retry" path. A parent that exists already
    // answers ZNODEEXISTS (or ZNOAUTH when its parent is not ours), which is fine; the first other
    // failure explains a ZNONODE of the node itself.
    auto parent_error = std::make_shared<int>(ZOK);
    for (const std::string& parent : Ancestors(full)) {
      Call(
          [this, parent](zhandle_t* h, const void* ctx) {
            return zoo_acreate(h, parent.c_str(), "", 0, AclFor(parent), 0, &Shared::StringDone,
                               ctx);
          },
          [parent_error](Reply r) {
            if (r.rc != ZOK && r.rc != ZNODEEXISTS && *parent_error == ZOK) *parent_error = r.rc;
          });
    }
    auto created = [this, path, data, fence, parent_error,
                    done = std::move(done)](Reply r) mutable {
      if (auto fenced = FenceError(r, Full(fence), path)) return done(*fenced);
      if (r.rc == ZOK) return done(Record{std::move(data), 0});
      if (r.rc == ZNONODE && *parent_error != ZOK) {
        return done(ToError(*parent_error, "create parent of", path));
      }
      if (r.rc == ZNONODE) {
        return done(MakeError(ErrorCode::kNotFound,
                              "create of store path '{}': a parent was deleted meanwhile", path));
      }
      done(ToError(r.rc, "create", path));
    };
    if (!fence.empty()) {
      auto w = std::make_shared<FencedWrite>();
      w->fence = Full(fence);
      w->full = full;
      w->data = data;
      zoo_create_op_init(&w->ops[1], w->full.c_str(), w->data.data(),
                         static_cast<int>(w->data.size()), AclFor(full), 0, w->created_path.data(),
                         static_cast<int>(w->created_path.size()));
      return CallFenced(w, std::move(created));
    }
    Call(
        [this, full, data](zhandle_t* h, const void* ctx) {
          return zoo_acreate(h, full.c_str(), data.data(), static_cast<int>(data.size()),
                             AclFor(full), 0, &Shared::StringDone, ctx);
        },
        std::move(created));
  }

  void Set(const std::string& path, std::string data, int64_t expected, const std::string& fence,
           std::function<void(Result<Record>)> done) {
    if (auto s = ValidatePath(path); !s.ok()) return done(s.error());
    if (auto s = ValidateData(path, data); !s.ok()) return done(s.error());
    if (expected < kAnyVersion) {
      return done(MakeError(ErrorCode::kInvalidArgument,
                            "expected version {} for store path '{}' is negative", expected, path));
    }
    if (expected > INT32_MAX) {
      // ZooKeeper versions are 32-bit: no node can be at this version.
      return done(
          MakeError(ErrorCode::kConflict, "set of store path '{}': version mismatch", path));
    }
    std::string full = Full(path);
    auto set = [this, path, data, fence, done = std::move(done)](Reply r) mutable {
      if (auto fenced = FenceError(r, Full(fence), path)) return done(*fenced);
      if (r.rc != ZOK) return done(ToError(r.rc, "set", path));
      done(Record{std::move(data), r.version});
    };
    if (!fence.empty()) {
      auto w = std::make_shared<FencedWrite>();
      w->fence = Full(fence);
      w->full = full;
      w->data = data;
      zoo_set_op_init(&w->ops[1], w->full.c_str(), w->data.data(), static_cast<int>(w->data.size()),
                      static_cast<int>(expected), &w->stat);
      return CallFenced(w, std::move(set));
    }
    Call(
        [full, data, expected](zhandle_t* h, const void* ctx) {
          return zoo_aset(h, full.c_str(), data.data(), static_cast<int>(data.size()),
                          static_cast<int>(expected), &Shared::StatDone, ctx);
        },
        std::move(set));
  }

  void Delete(const std::string& path, int64_t expected, const std::string& fence,
              std::function<void(Status)> done) {
    if (auto s = ValidatePath(path); !s.ok()) return done(s.error());
    if (expected < kAnyVersion) {
      return done(MakeError(ErrorCode::kInvalidArgument,
                            "expected version {} for store path '{}' is negative", expected, path));
    }
    if (expected > INT32_MAX) {
      return done(
          MakeError(ErrorCode::kConflict, "delete of store path '{}': version mismatch", path));
    }
    std::string full = Full(path);
    auto deleted = [this, path, fence, done = std::move(done)](Reply r) {
      if (auto fenced = FenceError(r, Full(fence), path)) return done(*fenced);
      if (r.rc != ZOK) return done(ToError(r.rc, "delete", path));
      done(OkStatus());
    };
    if (!fence.empty()) {
      auto w = std::make_shared<FencedWrite>();
      w->fence = Full(fence);
      w->full = full;
      zoo_delete_op_init(&w->ops[1], w->full.c_str(), static_cast<int>(expected));
      return CallFenced(w, std::move(deleted));
    }
    Call(
        [full, expected](zhandle_t* h, const void* ctx) {
          return zoo_adelete(h, full.c_str(), static_cast<int>(expected), &Shared::VoidDone, ctx);
        },
        std::move(deleted));
  }

  void List(const std::string& path, std::function<void(Result<std::vector<std::string>>)> done) {
    if (auto s = ValidatePath(path, /*allow_root=*/true); !s.ok()) return done(s.error());
    std::string full = Full(path);
    Call(
        [full](zhandle_t* h, const void* ctx) {
          return zoo_aget_children(h, full.c_str(), 0, &Shared::StringsDone, ctx);
        },
        [this, path, done = std::move(done)](Reply r) {
          // The root always exists, even before the first Create has made the chroot.
          if (r.rc == ZNONODE && path == "/") return done(std::vector<std::string>{});
          if (r.rc != ZOK) return done(ToError(r.rc, "list", path));
          std::sort(r.children.begin(), r.children.end());
          done(std::move(r.children));
        });
  }
};

Result<std::unique_ptr<ZkStore>> ZkStore::Open(boost::asio::io_context& io, const ZkUrl& url,
                                               ZkStoreOptions options) {
  if (auto s = ValidatePath(url.path); !s.ok()) {
    return s.error().Context(fmt::format("ZooKeeper chroot of {}", url.ToString()));
  }
  if (url.servers.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "{} names no ZooKeeper server", url.ToString());
  }
  auto shared = std::make_shared<Shared>(io, url, options);
  if (auto s = shared->OpenSession(); !s.ok()) return s.error();
  return std::unique_ptr<ZkStore>(new ZkStore(std::move(shared)));
}

ZkStore::ZkStore(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

ZkStore::~ZkStore() { shared_->Close(); }

std::string ZkStore::Describe() const { return shared_->Describe(); }

void ZkStore::Get(std::string path, std::function<void(Result<Record>)> done) {
  boost::asio::post(shared_->io,
                    [s = shared_, path = std::move(path), done = std::move(done)]() mutable {
                      if (!s->closed) s->Get(path, std::move(done));
                    });
}

void ZkStore::Create(std::string path, std::string data, std::function<void(Result<Record>)> done) {
  boost::asio::post(shared_->io, [s = shared_, path = std::move(path), data = std::move(data),
                                  fence = fence_, done = std::move(done)]() mutable {
    if (!s->closed) s->Create(path, std::move(data), fence, std::move(done));
  });
}

void ZkStore::Set(std::string path, std::string data, int64_t expected_version,
                  std::function<void(Result<Record>)> done) {
  boost::asio::post(shared_->io,
                    [s = shared_, path = std::move(path), data = std::move(data), expected_version,
                     fence = fence_, done = std::move(done)]() mutable {
                      if (!s->closed)
                        s->Set(path, std::move(data), expected_version, fence, std::move(done));
                    });
}

void ZkStore::Delete(std::string path, int64_t expected_version, std::function<void(Status)> done) {
  boost::asio::post(shared_->io, [s = shared_, path = std::move(path), expected_version,
                                  fence = fence_, done = std::move(done)]() mutable {
    if (!s->closed) s->Delete(path, expected_version, fence, std::move(done));
  });
}

void ZkStore::List(std::string path, std::function<void(Result<std::vector<std::string>>)> done) {
  boost::asio::post(shared_->io,
                    [s = shared_, path = std::move(path), done = std::move(done)]() mutable {
                      if (!s->closed) s->List(path, std::move(done));
                    });
}

std::optional<ZkStore::SessionId> ZkStore::SessionForTesting() const {
  if (shared_->zh == nullptr) return std::nullopt;
  const clientid_t* id = zoo_client_id(shared_->zh);
  if (id == nullptr) return std::nullopt;
  return SessionId{id->client_id, std::string(id->passwd, sizeof id->passwd)};
}

int ZkStore::SessionsOpenedForTesting() const { return shared_->sessions_opened; }

}  // namespace etcd_mesos::store
