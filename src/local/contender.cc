#include "local/contender.h"

#include <zookeeper.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/post_unless_closed.h"
#include "mesos/json_codec.h"
#include "mesos/master_detector.h"

namespace etcd_mesos::local {

namespace asio = boost::asio;

// State shared with the ZooKeeper client's threads, which only lock `mu`, read `closed` and post
// onto the io_context; everything else is touched on the io thread alone.
struct MasterContender::Impl : std::enable_shared_from_this<Impl> {
  struct SessionContext {
    std::weak_ptr<Impl> impl;
    uint64_t session;
  };

  Impl(asio::io_context& io, ZkUrl url, std::chrono::milliseconds session_timeout,
       mesos::MasterInfo info, Callback on_change)
      : io(io),
        url(std::move(url)),
        session_timeout(session_timeout),
        info(std::move(info)),
        on_change(std::move(on_change)),
        linger_timer(io),
        work(io.get_executor()) {}
  ~Impl() { CloseHandle(); }

  // ---- ZooKeeper threads ---------------------------------------------------------------------

  static void Watcher(zhandle_t*, int type, int state, const char*, void* context) {
    auto* session = static_cast<SessionContext*>(context);
    auto self = session->impl.lock();
    if (!self || type != ZOO_SESSION_EVENT) return;
    PostUnlessClosed(self,
                     [id = session->session, state](Impl& impl) { impl.OnSession(id, state); });
  }

  // Completion of one create; `data` is a heap SessionContext naming the session it ran on.
  static void Created(int rc, const char* value, const void* data) {
    std::unique_ptr<SessionContext> ctx(static_cast<SessionContext*>(const_cast<void*>(data)));
    auto self = ctx->impl.lock();
    if (!self) return;
    std::string path = value != nullptr ? value : "";
    PostUnlessClosed(self,
                     [id = ctx->session, rc, path](Impl& impl) { impl.OnCreated(id, rc, path); });
  }

  // ---- io thread -----------------------------------------------------------------------------

  Status Start() {
    MasterAddress address;
    address.zk = url;
    detector = std::make_unique<mesos_client::MasterDetector>(
        io, address, mesos_client::MasterDetector::Options{.session_timeout = session_timeout},
        [this](const std::optional<HostPort>& leader) { OnLeader(leader); });
    if (auto started = detector->Start(); !started.ok()) return started;
    return OpenSession();
  }

  Status OpenSession() {
    auto* context = new SessionContext{weak_from_this(), ++session};
    zhandle_t* handle =
        zookeeper_init2(url.ServersString().c_str(), &Watcher,
                        static_cast<int>(session_timeout.count()), nullptr, context, 0, nullptr);
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
    linger_timer.cancel();
    if (detector) detector->Stop();
    CloseHandle();
    work.reset();
  }

  void OnSession(uint64_t id, int state) {
    if (id != session) return;
    if (state == ZOO_CONNECTED_STATE && state_node.empty() && !creating) {
      creating = true;
      CreateParent(1);
    } else if (state == ZOO_EXPIRED_SESSION_STATE) {
      SPDLOG_ERROR(
          "master contender: ZooKeeper session expired; {} lost its candidacy, contending "
          "again",
          state_node.empty() ? "this master" : state_node);
      state_node.clear();
      creating = false;
      Update();
      CloseHandle();
      if (auto opened = OpenSession(); !opened.ok()) {
        SPDLOG_ERROR("master contender: {}", opened.error().message);
      }
    }
  }

  // Creates the parents of the path one by one (`/a`, `/a/b`, ...), then the candidacy node.
  void CreateParent(size_t from) {
    size_t slash = url.path.find('/', from);
    std::string prefix = slash == std::string::npos ? url.path : url.path.substr(0, slash);
    next_parent = slash == std::string::npos ? std::string::npos : slash + 1;
    auto* ctx = new SessionContext{weak_from_this(), session};
    if (zoo_acreate(zh, prefix.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, &Created, ctx) != ZOK) {
      delete ctx;
      creating = false;
    }
  }

  void OnCreated(uint64_t id, int rc, const std::string& path) {
    if (id != session) return;
    if (!in_candidacy) {
      if (rc != ZOK && rc != ZNODEEXISTS) {
        SPDLOG_ERROR("master contender: cannot create {}: {}", url.ToString(), zerror(rc));
        creating = false;
        return;
      }
      if (next_parent != std::string::npos) return CreateParent(next_parent);
      in_candidacy = true;
      std::string data = mesos_codec::MessageToJsonString(info);
      std::string prefix = url.path + "/json.info_";
      auto* ctx = new SessionContext{weak_from_this(), session};
      if (zoo_acreate(zh, prefix.c_str(), data.data(), static_cast<int>(data.size()),
                      &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL | ZOO_SEQUENCE, &Created, ctx) != ZOK) {
        delete ctx;
        creating = in_candidacy = false;
      }
      return;
    }
    creating = in_candidacy = false;
    if (rc != ZOK) {
      SPDLOG_ERROR("master contender: cannot create a json.info_ node under {}: {}", url.ToString(),
                   zerror(rc));
      return;
    }
    state_node = path.substr(path.rfind('/') + 1);
    SPDLOG_INFO("master contender: {} contends as {}", info.id(), state_node);
    Update();
  }

  void OnLeader(const std::optional<HostPort>&) { Update(); }

  void Update() {
    Leadership now;
    now.node = state_node;
    now.leader = detector ? detector->leader() : std::nullopt;
    now.elected = !state_node.empty() && detector && detector->leader_node() == state_node;
    if (now == current) return;
    current = now;
    if (silent || !on_change) return;
    on_change(current);
  }

  void Abandon(std::chrono::milliseconds linger) {
    silent = true;
    if (detector) detector->Stop();
    linger_timer.expires_after(linger);
    linger_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->stopped) return;
      SPDLOG_INFO("master contender: the session of {} expires; {} goes", self->info.id(),
                  self->state_node);
      self->Close();
    });
  }

  asio::io_context& io;
  const ZkUrl url;
  const std::chrono::milliseconds session_timeout;
  const mesos::MasterInfo info;
  Callback on_change;

  std::mutex mu;
  bool closed = false;  // guarded by mu

  bool stopped = false;
  bool silent = false;  // abandoned: the session lingers, nothing is reported
  zhandle_t* zh = nullptr;
  SessionContext* session_context = nullptr;
  uint64_t session = 0;
  bool creating = false;      // the parents or the node are being created
  bool in_candidacy = false;  // the create in flight is the node's, not a parent's
  size_t next_parent = std::string::npos;
  std::string state_node;
  std::unique_ptr<mesos_client::MasterDetector> detector;
  Leadership current;
  asio::steady_timer linger_timer;
  asio::executor_work_guard<asio::io_context::executor_type> work;
};

MasterContender::MasterContender(asio::io_context& io, ZkUrl url,
                                 std::chrono::milliseconds session_timeout, mesos::MasterInfo info,
                                 Callback on_change)
    : impl_(std::make_shared<Impl>(io, std::move(url), session_timeout, std::move(info),
                                   std::move(on_change))) {}

MasterContender::~MasterContender() { impl_->Close(); }

Status MasterContender::Start() { return impl_->Start(); }

void MasterContender::Stop() { impl_->Close(); }

void MasterContender::Abandon(std::chrono::milliseconds linger) { impl_->Abandon(linger); }

const MasterContender::Leadership& MasterContender::leadership() const { return impl_->current; }

}  // namespace etcd_mesos::local
