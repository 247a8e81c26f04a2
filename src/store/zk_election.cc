#include "store/zk_election.h"

#include <zookeeper.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include "common/post_unless_closed.h"

namespace etcd_mesos::store {

namespace asio = boost::asio;

namespace {

std::optional<uint64_t> SequenceOf(std::string_view name, std::string_view prefix) {
  if (!name.starts_with(prefix)) return std::nullopt;
  std::string_view digits = name.substr(prefix.size());
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
    return std::nullopt;
  }
  return value;
}

// The candidates in line, the leader first.
std::vector<std::string> InLine(const std::vector<std::string>& children, std::string_view prefix) {
  std::vector<std::pair<uint64_t, std::string>> numbered;
  for (const auto& c : children) {
    if (auto seq = SequenceOf(c, prefix)) numbered.emplace_back(*seq, c);
  }
  std::sort(numbered.begin(), numbered.end());
  std::vector<std::string> out;
  for (auto& [seq, name] : numbered) out.push_back(std::move(name));
  return out;
}

}  // namespace

// State shared with the ZooKeeper client's threads, which only lock `mu`, read `closed` and post
// onto the io_context; everything else is touched on the io thread alone.
struct ZkElection::Impl : std::enable_shared_from_this<Impl> {
  // Names the session (and for reads, the listing) a completion belongs to.
  struct Context {
    std::weak_ptr<Impl> impl;
    uint64_t session;
    uint64_t listing = 0;
  };

  Impl(asio::io_context& io, ZkUrl url, std::string data, Options options, OnChange on_change,
       OnLost on_lost)
      : io(io),
        url(std::move(url)),
        data(std::move(data)),
        options(options),
        on_change(std::move(on_change)),
        on_lost(std::move(on_lost)),
        work(io.get_executor()) {}
  ~Impl() { CloseHandle(); }

  // ---- ZooKeeper threads ---------------------------------------------------------------------

  static void Watcher(zhandle_t*, int type, int state, const char*, void* context) {
    auto* ctx = static_cast<Context*>(context);
    auto self = ctx->impl.lock();
    if (!self) return;
    PostUnlessClosed(
        self, [id = ctx->session, type, state](Impl& impl) { impl.OnWatch(id, type, state); });
  }

  static void Created(int rc, const char* value, const void* data) {
    std::unique_ptr<Context> ctx(static_cast<Context*>(const_cast<void*>(data)));
    auto self = ctx->impl.lock();
    if (!self) return;
    std::string path = value != nullptr ? value : "";
    PostUnlessClosed(self,
                     [id = ctx->session, rc, path](Impl& impl) { impl.OnCreated(id, rc, path); });
  }

  static void Listed(int rc, const String_vector* strings, const void* data) {
    std::unique_ptr<Context> ctx(static_cast<Context*>(const_cast<void*>(data)));
    auto self = ctx->impl.lock();
    if (!self) return;
    std::vector<std::string> names;
    if (rc == ZOK && strings != nullptr) {
      for (int i = 0; i < strings->count; ++i) names.emplace_back(strings->data[i]);
    }
    PostUnlessClosed(self, [c = *ctx, rc, names = std::move(names)](Impl& impl) {
      impl.OnListed(c, rc, names);
    });
  }

  static void Read(int rc, const char* value, int length, const Stat*, const void* data) {
    std::unique_ptr<Context> ctx(static_cast<Context*>(const_cast<void*>(data)));
    auto self = ctx->impl.lock();
    if (!self) return;
    std::string bytes =
        rc == ZOK && value != nullptr && length > 0 ? std::string(value, length) : std::string();
    PostUnlessClosed(
        self, [c = *ctx, rc, bytes = std::move(bytes)](Impl& impl) { impl.OnRead(c, rc, bytes); });
  }

  // ---- io thread -----------------------------------------------------------------------------

  Status OpenSession() {
    auto* context = new Context{weak_from_this(), ++session};
    zhandle_t* handle = zookeeper_init2(url.ServersString().c_str(), &Watcher,
                                        static_cast<int>(options.session_timeout.count()), nullptr,
                                        context, 0, nullptr);
    if (handle == nullptr) {
      int err = errno;
      delete context;
      return MakeError(ErrorCode::kUnavailable, "cannot start a ZooKeeper client for {}: {}",
                       url.ToString(), std::strerror(err));
    }
    if (url.user) {
      std::string credentials = *url.user + ":" + url.password.value_or("");
      zoo_add_auth(handle, "digest", credentials.data(), static_cast<int>(credentials.size()),
                   nullptr, nullptr);
    }
    zh = handle;
    session_context = context;
    return OkStatus();
  }

  void CloseHandle() {
    if (zh == nullptr) return;
    zhandle_t* handle = std::exchange(zh, nullptr);
    zookeeper_close(handle);  // joins the client's threads; pending completions run first
    delete std::exchange(session_context, nullptr);
  }

  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu);
      closed = true;
    }
    stopped = true;
    CloseHandle();
    work.reset();
  }

  Context* NewContext() { return new Context{weak_from_this(), session, listing}; }

  // Starts one call with a fresh context, which its completion deletes; a call that never
  // starts (a closed handle, bad arguments) has no completion, so its context goes here.
  template <typename Start>
  bool Issue(Start start) {
    Context* context = NewContext();
    if (zh != nullptr && start(context) == ZOK) return true;
    delete context;
    return false;
  }

  void OnWatch(uint64_t id, int type, int state) {
    if (id != session) return;                        // an older session's
    if (type != ZOO_SESSION_EVENT) return Refresh();  // the line of candidates changed
    if (state == ZOO_CONNECTED_STATE) {
      if (node.empty() && !creating) {
        creating = true;
        CreatePath(1);
      } else {
        Refresh();
      }
    } else if (state == ZOO_EXPIRED_SESSION_STATE) {
      OnExpired();
    } else if (state == ZOO_CONNECTING_STATE && current.leading && !current.suspended) {
      SPDLOG_WARN(
          "election: {} lost its connection to ZooKeeper while leading; holding every "
          "action until it is back (or the session expires)",
          node);
      View held = current;
      held.suspended = true;
      Update(held);
    }
  }

  void OnExpired() {
    bool was_leading = current.leading;
    SPDLOG_WARN("election: the ZooKeeper session of {} expired{}", node.empty() ? "us" : node,
                was_leading ? " while leading: leadership lost" : "; contending again");
    node.clear();
    creating = false;
    CloseHandle();
    if (was_leading) {
      current = View{};
      if (on_lost) on_lost("the ZooKeeper session that held the leadership expired");
      return;
    }
    Update(View{});
    if (auto opened = OpenSession(); !opened.ok()) SPDLOG_ERROR("election: {}", opened.error());
  }

  // The election's directory, one component at a time (/a, /a/b, ...), then our node.
  void CreatePath(size_t from) {
    size_t slash = url.path.find('/', from);
    std::string prefix = slash == std::string::npos ? url.path : url.path.substr(0, slash);
    next_component = slash == std::string::npos ? std::string::npos : slash + 1;
    const ACL_vector* acl = url.user ? &ZOO_CREATOR_ALL_ACL : &ZOO_OPEN_ACL_UNSAFE;
    if (!Issue([&](Context* c) {
          return zoo_acreate(zh, prefix.c_str(), "", 0, acl, 0, &Created, c);
        })) {
      creating = false;
    }
  }

  void OnCreated(uint64_t id, int rc, const std::string& path) {
    if (id != session) return;
    if (!creating_node) {
      if (rc != ZOK && rc != ZNODEEXISTS) {
        SPDLOG_ERROR("election: cannot create {}: {}", url.ToString(), zerror(rc));
        creating = false;
        return;
      }
      if (next_component != std::string::npos) return CreatePath(next_component);
      creating_node = true;
      std::string prefix = url.path + "/" + options.node_prefix;
      const ACL_vector* acl = url.user ? &ZOO_CREATOR_ALL_ACL : &ZOO_OPEN_ACL_UNSAFE;
      if (!Issue([&](Context* c) {
            return zoo_acreate(zh, prefix.c_str(), data.data(), static_cast<int>(data.size()), acl,
                               ZOO_EPHEMERAL | ZOO_SEQUENCE, &Created, c);
          })) {
        creating = creating_node = false;
      }
      return;
    }
    creating = creating_node = false;
    if (rc != ZOK) {
      SPDLOG_ERROR("election: cannot join the election under {}: {}", url.ToString(), zerror(rc));
      return;
    }
    node = path.substr(path.rfind('/') + 1);
    SPDLOG_INFO("election: contending as {} under {}", node, url.ToString());
    Refresh();
  }

  void Refresh() {
    if (zh == nullptr || node.empty()) return;
    ++listing;
    if (!Issue(
            [&](Context* c) { return zoo_aget_children(zh, url.path.c_str(), 1, &Listed, c); })) {
      SPDLOG_WARN("election: cannot list {}", url.ToString());
    }
  }

  void OnListed(const Context& c, int rc, const std::vector<std::string>& names) {
    if (c.session != session || c.listing != listing) return;  // a newer listing is coming
    if (rc != ZOK) {
      SPDLOG_WARN("election: listing {} failed: {}", url.ToString(), zerror(rc));
      return;  // the next (re)connection lists again
    }
    auto line = InLine(names, options.node_prefix);
    if (std::find(line.begin(), line.end(), node) == line.end()) {
      // Our node is gone while our session lives: only an operator deletes it so. Join again.
      SPDLOG_WARN("election: our node {} is gone; joining again", node);
      node.clear();
      Update(View{});
      if (stopped) return;  // the owner stopped us on hearing it (a leader that lost its node)
      creating = true;
      return CreatePath(1);
    }
    if (line.front() == node) return Update(View{true, node, std::nullopt, false});
    leader_node = line.front();
    std::string full = url.path + "/" + leader_node;
    if (!Issue([&](Context* c) { return zoo_aget(zh, full.c_str(), 0, &Read, c); })) {
      SPDLOG_WARN("election: cannot read {}", full);
    }
  }

  void OnRead(const Context& c, int rc, const std::string& bytes) {
    if (c.session != session || c.listing != listing) return;
    if (rc == ZNONODE) return Refresh();  // the leader just left
    if (rc != ZOK) return;
    Update(View{false, node, bytes, false});
  }

  void Update(const View& now) {
    if (now == current) return;
    bool was_leading = current.leading;
    current = now;
    if (now.leading && !was_leading) SPDLOG_INFO("election: {} leads", node);
    if (on_change) on_change(current);
  }

  asio::io_context& io;
  const ZkUrl url;
  const std::string data;
  const Options options;
  OnChange on_change;
  OnLost on_lost;

  std::mutex mu;
  bool closed = false;  // guarded by mu

  bool stopped = false;
  zhandle_t* zh = nullptr;
  Context* session_context = nullptr;
  uint64_t session = 0;
  uint64_t listing = 0;
  bool creating = false;       // the directory or our node is being created
  bool creating_node = false;  // the create in flight is our node's
  size_t next_component = std::string::npos;
  std::string node;
  std::string leader_node;
  View current;
  asio::executor_work_guard<asio::io_context::executor_type> work;
};

ZkElection::ZkElection(asio::io_context& io, ZkUrl url, std::string data, Options options,
                       OnChange on_change, OnLost on_lost)
    : impl_(std::make_shared<Impl>(io, std::move(url), std::move(data), options,
                                   std::move(on_change), std::move(on_lost))) {}

ZkElection::~ZkElection() { impl_->Close(); }

Status ZkElection::Start() { return impl_->OpenSession(); }

void ZkElection::Stop() { impl_->Close(); }

const ZkElection::View& ZkElection::view() const { return impl_->current; }

std::optional<std::pair<int64_t, std::string>> ZkElection::SessionForTesting() const {
  if (impl_->zh == nullptr) return std::nullopt;
  const clientid_t* id = zoo_client_id(impl_->zh);
  if (id == nullptr || id->client_id == 0) return std::nullopt;
  return std::make_pair(id->client_id, std::string(id->passwd, sizeof id->passwd));
}

}  // namespace etcd_mesos::store
