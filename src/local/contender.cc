#include "local/contender.h"

#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "mesos/json_codec.h"
#include "mesos/master_detector.h"
#include "store/zk_election.h"

namespace etcd_mesos::local {

namespace asio = boost::asio;

struct MasterContender::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, ZkUrl url, std::chrono::milliseconds session_timeout,
       mesos::MasterInfo info, Callback on_change)
      : io(io),
        url(std::move(url)),
        session_timeout(session_timeout),
        info(std::move(info)),
        on_change(std::move(on_change)),
        linger_timer(io) {}

  Status Contend() {
    election = std::make_unique<store::ZkElection>(
        io, url, mesos_codec::MessageToJsonString(info),
        store::ZkElection::Options{.session_timeout = session_timeout, .node_prefix = "json.info_"},
        [this](const store::ZkElection::View& view) { OnView(view); },
        [this](const std::string& why) { OnLost(why); });
    return election->Start();
  }

  void OnView(const store::ZkElection::View& view) {
    Leadership now;
    now.node = view.node;
    now.elected = view.leading;
    if (view.leading) {
      if (auto own = mesos_client::MasterEndpoint(info); own.ok()) now.leader = *own;
    } else if (view.leader_data) {
      // The leader's MasterInfo, as the frameworks' detector reads it.
      mesos::MasterInfo leader;
      if (mesos_codec::MessageFromJsonString(*view.leader_data, &leader).ok()) {
        if (auto endpoint = mesos_client::MasterEndpoint(leader); endpoint.ok()) {
          now.leader = *endpoint;
        }
      }
    }
    if (now == current) return;
    current = now;
    if (!silent && on_change) on_change(current);
  }

  // Mesos aborts a master that loses its leadership; this one reports it and contends again.
  void OnLost(const std::string& why) {
    SPDLOG_ERROR("master contender: {} lost its leadership: {}; contending again", info.id(), why);
    OnView({});
    asio::post(io, [self = shared_from_this()] {
      if (self->silent || !self->election) return;
      if (auto s = self->Contend(); !s.ok()) SPDLOG_ERROR("master contender: {}", s.error());
    });
  }

  void Abandon(std::chrono::milliseconds linger) {
    silent = true;
    linger_timer.expires_after(linger);
    linger_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || !self->election) return;
      SPDLOG_INFO("master contender: the session of {} expires; {} goes", self->info.id(),
                  self->current.node);
      self->election.reset();
    });
  }

  void Stop() {
    silent = true;
    linger_timer.cancel();
    election.reset();  // withdraws: the session and its node go
  }

  asio::io_context& io;
  const ZkUrl url;
  const std::chrono::milliseconds session_timeout;
  const mesos::MasterInfo info;
  Callback on_change;
  std::unique_ptr<store::ZkElection> election;
  Leadership current;
  bool silent = false;  // stopped or abandoned: nothing is reported
  asio::steady_timer linger_timer;
};

MasterContender::MasterContender(asio::io_context& io, ZkUrl url,
                                 std::chrono::milliseconds session_timeout, mesos::MasterInfo info,
                                 Callback on_change)
    : impl_(std::make_shared<Impl>(io, std::move(url), session_timeout, std::move(info),
                                   std::move(on_change))) {}

MasterContender::~MasterContender() { impl_->Stop(); }

Status MasterContender::Start() { return impl_->Contend(); }

void MasterContender::Stop() { impl_->Stop(); }

void MasterContender::Abandon(std::chrono::milliseconds linger) { impl_->Abandon(linger); }

const MasterContender::Leadership& MasterContender::leadership() const { return impl_->current; }

}  // namespace etcd_mesos::local
