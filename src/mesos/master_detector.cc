#include "mesos/master_detector.h"

#include <zookeeper.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/post_unless_closed.h"
#include "mesos/json_codec.h"

namespace etcd_mesos::mesos_client {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kLeaderPrefix = "json.info_";

std::optional<uint64_t> SequenceOf(std::string_view name) {
  if (!name.starts_with(kLeaderPrefix)) return std::nullopt;
  std::string_view digits = name.substr(kLeaderPrefix.size());
  if (digits.empty()) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return value;
}

// The ZooKeeper C client logs through this once its level allows (errors only, see below).
void LogToSpdlog(const char* message) { SPDLOG_WARN("zookeeper client: {}", message); }

void QuietClientLogging() {
  static std::once_flag once;
  std::call_once(once, [] { zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR); });
}

}  // namespace

std::vector<std::string> LeaderCandidates(const std::vector<std::string>& children) {
  std::vector<std::pair<uint64_t, std::string>> numbered;
  for (const auto& name : children) {
    if (auto seq = SequenceOf(name)) numbered.emplace_back(*seq, name);
  }
  std::sort(numbered.begin(), numbered.end());
  std::vector<std::string> out;
  for (auto& [seq, name] : numbered) out.push_back(std::move(name));
  return out;
}

Result<HostPort> MasterEndpoint(const mesos::MasterInfo& info) {
  HostPort out;
  if (info.has_address()) {
    out.host = !info.address().ip().empty() ? info.address().ip() : info.address().hostname();
    out.port = static_cast<uint16_t>(info.address().port());
    if (info.address().port() <= 0 || info.address().port() > 65535) out.host.clear();
  }
  if (out.host.empty()) {
    out.port = static_cast<uint16_t>(info.port());
    if (info.port() == 0 || info.port() > 65535) {
      return MakeError(ErrorCode::kInvalidArgument, "MasterInfo {} has no valid port", info.id());
    }
    if (!info.hostname().empty()) {
      out.host = info.hostname();
    } else if (info.ip() != 0) {
      // Network byte order read as a little-endian uint32: 10.0.0.1 is 16777226.
      uint32_t ip = info.ip();
      out.host = fmt::format("{}.{}.{}.{}", ip & 0xff, (ip >> 8) & 0xff, (ip >> 16) & 0xff,
                             (ip >> 24) & 0xff);
    }
  }
  if (out.host.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "MasterInfo {} has neither an address nor a host",
                     info.id());
  }
  return out;
}

// State shared with the ZooKeeper client's threads. Those threads only ever lock `mu`, read
// `closed` and post onto the io_context; everything else is touched on the io thread alone.
struct MasterDetector::Impl : std::enable_shared_from_this<Impl> {
  struct WatchContext {
    std::weak_ptr<Impl> impl;
    uint64_t generation;
  };
  struct ReadContext {
    std::weak_ptr<Impl> impl;
    uint64_t generation;
    uint64_t read;
    std::vector<std::string> candidates;
    size_t index = 0;
  };

  Impl(asio::io_context& io, MasterAddress address, Options options, LeaderCallback on_leader)
      : io(io),
        address(std::move(address)),
        options(options),
        on_leader(std::move(on_leader)),
        retry_timer(io),
        work(io.get_executor()) {}
  ~Impl() { CloseHandle(); }

  // ---- ZooKeeper threads ---------------------------------------------------------------------

  static void Watcher(zhandle_t*, int type, int state, const char* path, void* context) {
    auto* watch = static_cast<WatchContext*>(context);
    auto self = watch->impl.lock();
    if (!self) return;
    std::string p = path != nullptr ? path : "";
    PostUnlessClosed(self, [gen = watch->generation, type, state, p](Impl& impl) {
      impl.OnWatch(gen, type, state, p);
    });
  }

  static void ChildrenDone(int rc, const String_vector* strings, const void* data) {
    std::unique_ptr<ReadContext> ctx(static_cast<ReadContext*>(const_cast<void*>(data)));
    auto self = ctx->impl.lock();
    if (!self) return;
    std::vector<std::string> names;
    if (rc == ZOK && strings != nullptr) {
      for (int i = 0; i < strings->count; ++i) names.emplace_back(strings->data[i]);
    }
    PostUnlessClosed(self, [ctx = std::move(ctx), rc, names = std::move(names)](Impl& impl) {
      impl.OnChildren(*ctx, rc, names);
    });
  }

  static void DataDone(int rc, const char* value, int length, const Stat*, const void* data) {
    std::unique_ptr<ReadContext> ctx(static_cast<ReadContext*>(const_cast<void*>(data)));
    auto self = ctx->impl.lock();
    if (!self) return;
    std::string bytes;
    if (rc == ZOK && value != nullptr && length > 0) bytes.assign(value, length);
    PostUnlessClosed(self, [ctx = std::move(ctx), rc, bytes = std::move(bytes)](Impl& impl) {
      impl.OnData(*ctx, rc, bytes);
    });
  }

  static void ExistsDone(int rc, const Stat*, const void* data) {
    std::unique_ptr<ReadContext> ctx(static_cast<ReadContext*>(const_cast<void*>(data)));
    auto self = ctx->impl.lock();
    if (!self) return;
    PostUnlessClosed(self, [ctx = std::move(ctx), rc](Impl& impl) { impl.OnExists(*ctx, rc); });
  }

  static void AuthDone(int rc, const void*) {
    if (rc != ZOK) SPDLOG_ERROR("master detector: ZooKeeper digest auth failed: {}", zerror(rc));
  }

  // ---- io thread -----------------------------------------------------------------------------

  Status Start() {
    if (started) return MakeError(ErrorCode::kInvalidArgument, "master detector already started");
    started = true;
    if (address.direct) {
      asio::post(io, [self = shared_from_this()] {
        if (!self->stopped) self->Report(self->address.direct);
      });
      return OkStatus();
    }
    if (!address.zk) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "master address has neither host:port nor zk://");
    }
    return OpenSession();
  }

  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu);
      closed = true;
    }
    stopped = true;
    retry_timer.cancel();
    CloseHandle();
    work.reset();
  }

  Status OpenSession() {
    QuietClientLogging();
    auto* context = new WatchContext{weak_from_this(), ++generation};
    std::string servers = address.zk->ServersString();
    zhandle_t* handle = zookeeper_init2(servers.c_str(), &Watcher,
                                        static_cast<int>(options.session_timeout.count()), nullptr,
                                        context, 0, &LogToSpdlog);
    if (handle == nullptr) {
      int err = errno;
      delete context;
      return MakeError(ErrorCode::kUnavailable, "cannot start a ZooKeeper client for {}: {}",
                       address.zk->ToString(), std::strerror(err));
    }
    if (address.zk->user) {
      std::string credentials = *address.zk->user + ":" + address.zk->password.value_or("");
      zoo_add_auth(handle, "digest", credentials.data(), static_cast<int>(credentials.size()),
                   &AuthDone, nullptr);
    }
    zh = handle;
    watch_context = context;
    SPDLOG_INFO("master detector: watching {}", address.zk->ToString());
    return OkStatus();
  }

  void CloseHandle() {
    if (zh == nullptr) return;
    zhandle_t* handle = std::exchange(zh, nullptr);
    // Joins the client's threads; pending completions run (ZCLOSING) before this returns, so the
    // watch context is unused afterwards. `mu` is not held: those completions take it.
    zookeeper_close(handle);
    delete std::exchange(watch_context, nullptr);
  }

  void Reconnect() {
    CloseHandle();
    if (auto opened = OpenSession(); !opened.ok()) {
      SPDLOG_ERROR("master detector: {}", opened.error().message);
      ScheduleRetry();
    }
  }

  void ScheduleRetry() {
    last_listing = listing;
    retry_timer.expires_after(options.retry_interval);
    retry_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->stopped) return;
      if (self->zh == nullptr) return self->Reconnect();
      self->Refresh();
    });
  }

  void OnWatch(uint64_t gen, int type, int state, const std::string& path) {
    if (gen != generation) return;  // from a handle already closed
    if (type == ZOO_SESSION_EVENT) {
      if (state == ZOO_CONNECTED_STATE) {
        Refresh();
      } else if (state == ZOO_EXPIRED_SESSION_STATE) {
        SPDLOG_WARN("master detector: ZooKeeper session expired; opening a new one");
        Reconnect();
      } else if (state == ZOO_AUTH_FAILED_STATE) {
        SPDLOG_ERROR("master detector: ZooKeeper authentication failed for {}",
                     address.zk->ToString());
      }
      return;
    }
    spdlog::debug("master detector: watch fired on {}", path);
    Refresh();
  }

  // A context for a ZooKeeper completion belonging to listing `read_id` of this session.
  ReadContext* NewContext(uint64_t read_id) {
    return new ReadContext{weak_from_this(), generation, read_id, {}, 0};
  }

  void Refresh() {
    if (zh == nullptr) return;
    auto* ctx = NewContext(++read);
    int rc = zoo_aget_children(zh, address.zk->path.c_str(), 1, &ChildrenDone, ctx);
    if (rc != ZOK) {
      delete ctx;
      SPDLOG_WARN("master detector: cannot list {}: {}", address.zk->path, zerror(rc));
      ScheduleRetry();
    }
  }

  bool Stale(const ReadContext& ctx) const {
    // Only the newest read may report: an older one could carry an older view.
    return ctx.generation != generation || ctx.read != read;
  }

  void OnChildren(const ReadContext& ctx, int rc, const std::vector<std::string>& names) {
    if (Stale(ctx)) return;
    const clientid_t* id = zh != nullptr ? zoo_client_id(zh) : nullptr;
    listing = ListingForTesting{id != nullptr ? id->client_id : 0, rc, names};
    if (rc == ZNONODE) {
      SPDLOG_WARN("master detector: {} does not exist; no leading master", address.zk->path);
      Report(std::nullopt);
      // Learn when it appears.
      auto* exists = NewContext(read);
      if (zoo_aexists(zh, address.zk->path.c_str(), 1, &ExistsDone, exists) != ZOK) {
        delete exists;
        ScheduleRetry();
      }
      return;
    }
    if (rc == ZNOAUTH) {
      SPDLOG_ERROR("master detector: not allowed to list {}: check the zk:// credentials",
                   address.zk->ToString());
      return ScheduleRetry();
    }
    if (rc != ZOK) {
      SPDLOG_WARN("master detector: listing {} failed: {}", address.zk->path, zerror(rc));
      return ScheduleRetry();
    }
    FetchCandidate(LeaderCandidates(names), 0);
  }

  void OnExists(const ReadContext& ctx, int rc) {
    if (Stale(ctx)) return;
    if (rc == ZOK) return Refresh();  // created in between
    if (rc != ZNONODE) ScheduleRetry();
  }

  void FetchCandidate(std::vector<std::string> candidates, size_t index) {
    if (index >= candidates.size()) return Report(std::nullopt);
    std::string node = address.zk->path + "/" + candidates[index];
    auto* ctx = NewContext(read);  // part of the same listing, not a newer one
    ctx->candidates = std::move(candidates);
    ctx->index = index;
    int rc = zoo_aget(zh, node.c_str(), 0, &DataDone, ctx);
    if (rc != ZOK) {
      delete ctx;
      ScheduleRetry();
    }
  }

  void OnData(const ReadContext& ctx, int rc, const std::string& bytes) {
    if (Stale(ctx)) return;
    const std::string& name = ctx.candidates[ctx.index];
    if (rc == ZNONODE) {
      // Gone since the listing; the children watch brings a fresh listing too.
      return FetchCandidate(ctx.candidates, ctx.index + 1);
    }
    if (rc != ZOK) {
      SPDLOG_WARN("master detector: reading {}/{} failed: {}", address.zk->path, name, zerror(rc));
      return ScheduleRetry();
    }
    mesos::MasterInfo info;
    auto parsed = mesos_codec::MessageFromJsonString(bytes, &info);
    Result<HostPort> endpoint =
        parsed.ok() ? MasterEndpoint(info) : Result<HostPort>(parsed.error());
    if (!endpoint.ok()) {
      SPDLOG_ERROR("master detector: ignoring {}/{}: not a usable MasterInfo: {}", address.zk->path,
                   name, endpoint.error().message);
      return FetchCandidate(ctx.candidates, ctx.index + 1);
    }
    Report(*endpoint, name);
  }

  // `node`: the leader's znode. A new node at the same address is a new election (a master
  // restarted in place) and is reported too: a scheduler waiting for that master to be elected
  // subscribes at once.
  void Report(const std::optional<HostPort>& now, const std::string& node = "") {
    last_listing = listing;
    if (reported && now == leader && node == leader_node) return;
    reported = true;
    leader = now;
    leader_node = node;
    if (now) {
      SPDLOG_INFO("master detector: leading master is {}{}", now->ToString(),
                  node.empty() ? "" : " (" + node + ")");
    } else {
      SPDLOG_WARN("master detector: no leading master");
    }
    if (on_leader) on_leader(now);
  }

  asio::io_context& io;
  const MasterAddress address;
  const Options options;
  LeaderCallback on_leader;

  std::mutex mu;
  bool closed = false;  // guarded by mu

  bool started = false;
  bool stopped = false;
  zhandle_t* zh = nullptr;
  WatchContext* watch_context = nullptr;
  uint64_t generation = 0;  // counts sessions; events of older ones are dropped
  uint64_t read = 0;        // counts listings; results of older ones are dropped
  bool reported = false;
  std::optional<HostPort> leader;
  std::string leader_node;
  // The newest listing read, and the newest one finished with (reported on, or retried).
  std::optional<ListingForTesting> listing;
  std::optional<ListingForTesting> last_listing;
  asio::steady_timer retry_timer;
  // ZooKeeper's threads post onto io at any time: until closed, the loop must not run out of work.
  asio::executor_work_guard<asio::io_context::executor_type> work;
};

MasterDetector::MasterDetector(asio::io_context& io, MasterAddress address, Options options,
                               LeaderCallback on_leader)
    : impl_(std::make_shared<Impl>(io, std::move(address), options, std::move(on_leader))) {}

MasterDetector::~MasterDetector() { impl_->Close(); }

Status MasterDetector::Start() { return impl_->Start(); }

void MasterDetector::Stop() { impl_->Close(); }

std::optional<HostPort> MasterDetector::leader() const { return impl_->leader; }

std::optional<std::pair<int64_t, std::string>> MasterDetector::ZooKeeperSessionForTesting() const {
  if (impl_->zh == nullptr) return std::nullopt;
  const clientid_t* id = zoo_client_id(impl_->zh);
  if (id == nullptr || id->client_id == 0) return std::nullopt;
  return std::make_pair(id->client_id, std::string(id->passwd, sizeof id->passwd));
}

std::optional<MasterDetector::ListingForTesting> MasterDetector::LastListingForTesting() const {
  return impl_->last_listing;
}

}  // namespace etcd_mesos::mesos_client
