// Master: the master of etcd-mesos-local. It serves the v1 scheduler API
// (`/api/v1/scheduler`, `/master/api/v1/scheduler`) with the status codes, stream-id rules and
// events of real Mesos 1.11; allocates each agent's free resources as offers every allocation
// interval, honouring decline filters, SUPPRESS and REVIVE; validates and forwards launches, kills
// and acknowledgements to agents; forwards status updates; answers reconciliation; keeps tasks of
// a disconnected framework for its failover timeout; marks agents that fall silent unreachable
// (TASK_UNREACHABLE for PARTITION_AWARE frameworks, TASK_LOST otherwise); and renders
// `/master/state` (and its frameworks part, `/master/frameworks`) with the field shapes tools
// read. Faults are injected elsewhere (LocalCluster); the master only sees their consequences,
// as a real one would.
//
// With a ZooKeeper URL it contends for leadership as Mesos masters do (MasterContender): until it
// is elected it answers the scheduler, state and teardown endpoints with 307 to the leader (or 503
// "No leader elected"), and once elected, SUBSCRIBE with 503 "Master has not finished recovery"
// for `recovery`, as Mesos's master/http.cpp does.
//
// Threading: runs on the cluster's io_context thread; not thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "common/result.h"
#include "local/contender.h"
#include "local/links.h"
#include "local/resources.h"
#include "mesos/codec.h"
#include "mesos/v1.h"
#include "net/http.h"

namespace etcd_mesos::local {

struct MasterOptions {
  std::string ip = "127.0.0.1";
  uint16_t port = 5050;
  std::string hostname;  // defaults to ip
  std::chrono::milliseconds heartbeat_interval{15'000};
  std::chrono::milliseconds allocation_interval{1'000};
  // An agent silent for this long is unreachable (real Mesos: 15 s pings x 5 = 75 s).
  std::chrono::milliseconds agent_unreachable_timeout{75'000};
  // principal -> secret; when non-empty, HTTP Basic framework authentication is required.
  std::map<std::string, std::string> credentials;
  // Contend for leadership under this zk:// path instead of leading from the start.
  std::optional<ZkUrl> zk;
  std::chrono::milliseconds zk_session_timeout{10'000};
  // From its election until it serves SUBSCRIBE (Mesos recovers its registry meanwhile).
  std::chrono::milliseconds recovery{250};
};

class Master : public MasterApi {
 public:
  Master(boost::asio::io_context& io, MasterOptions options);
  ~Master() override;

  // Binds the HTTP server. `extra` handles paths the master does not own (fault injection,
  // agent endpoints sharing the port); it may be empty.
  Result<HostPort> Start(
      std::function<bool(const net::ServerRequest&, std::shared_ptr<net::Responder>&)> extra =
          nullptr);
  void Stop();
  // As a master killed with SIGKILL: it stops serving at once, but its ZooKeeper session (and
  // with it the leadership) lives on for `linger`, until ZooKeeper expires it.
  void Kill(std::chrono::milliseconds linger);
  // Leads (always, without ZooKeeper) and has finished recovery.
  bool serving() const { return elected_ && recovered_; }
  // Called once the master has been elected and has recovered.
  void OnServing(std::function<void()> callback) { on_serving_ = std::move(callback); }

  // Agents join through a Link; the master addresses them by id.
  struct AgentHandle {
    mesos::AgentInfo info;  // id, hostname, port, resources
    std::string pid;        // "slave(N)@ip:port"
    Link* link = nullptr;
    std::function<std::string(const std::string& framework_id, const std::string& executor_id)>
        sandbox_of;
  };
  // `recovered`: an agent of a previous master incarnation (the master restarted without a
  // registry): unknown until it re-registers with what it runs, so it gets no offers and
  // reconciliation cannot vouch for its tasks meanwhile, as on real Mesos.
  void AddAgent(AgentHandle agent, bool recovered = false);
  // The agent's id is gone for good (host replaced): as if its work dir was wiped.
  void RemoveAgent(const std::string& agent_id);

  const std::string& id() const { return id_; }
  std::string pid() const;
  HostPort address() const { return address_; }
  nlohmann::json StateJson() const;
  mesos::MasterInfo info() const;

  // MasterApi
  void StatusUpdate(const mesos::AgentID& agent_id, const mesos::FrameworkID& framework_id,
                    const mesos::TaskStatus& status, mesos::TaskState latest_state) override;
  void ExecutorExited(const mesos::AgentID& agent_id, const mesos::FrameworkID& framework_id,
                      const mesos::ExecutorID& executor_id, int wait_status) override;
  void ExecutorMessage(const mesos::AgentID& agent_id, const mesos::FrameworkID& framework_id,
                       const mesos::ExecutorID& executor_id, const std::string& data) override;
  void AgentPing(const mesos::AgentID& agent_id) override;
  void ReregisterAgent(const mesos::AgentInfo& agent,
                       const std::vector<mesos::FrameworkInfo>& frameworks,
                       const std::vector<mesos::Task>& tasks,
                       const std::vector<mesos::ExecutorInfo>& executors) override;

 private:
  struct Framework;
  struct AgentState;
  struct TaskRecord;

  void Handle(const net::ServerRequest& req, std::shared_ptr<net::Responder> responder);
  // What a master that does not lead answers: 307 to the leader, or 503 when none is known.
  net::HttpResponse Redirect(const net::ServerRequest& req) const;
  void OnLeadership(const MasterContender::Leadership& leadership);
  void StopServing();
  void HandleScheduler(const net::ServerRequest& req, std::shared_ptr<net::Responder> responder);
  // POST /master/teardown with frameworkId=<id> in the body, as Mesos's operator endpoint.
  void HandleTeardown(const net::ServerRequest& req, std::shared_ptr<net::Responder> responder);
  // The principal of valid HTTP Basic credentials in an Authorization header, or nothing.
  std::optional<std::string> AuthenticatedPrincipal(std::string_view authorization) const;
  void Subscribe(const mesos::scheduler::Call& call, mesos_codec::ContentType stream_type,
                 std::shared_ptr<net::Responder> responder);
  net::HttpResponse Dispatch(Framework& framework, const mesos::scheduler::Call& call);
  void Accept(Framework& framework, const mesos::scheduler::Call::Accept& accept);
  // RESERVE, UNRESERVE, CREATE or DESTROY on `available` (what the ACCEPT's offers hold after
  // the operations before it) and on the agent's total; false if it was dropped as invalid.
  bool ApplyOperation(Framework& framework, AgentState& agent, const mesos::Offer::Operation& op,
                      ResourceBag& available);
  void Decline(Framework& framework, const google::protobuf::RepeatedPtrField<mesos::OfferID>& ids,
               const mesos::Filters* filters);
  void Kill(Framework& framework, const mesos::scheduler::Call::Kill& kill);
  net::HttpResponse Acknowledge(Framework& framework,
                                const mesos::scheduler::Call::Acknowledge& ack);
  void Reconcile(Framework& framework, const mesos::scheduler::Call::Reconcile& reconcile);

  void Send(Framework& framework, const mesos::scheduler::Event& event);
  void SendUpdate(Framework& framework, const mesos::TaskStatus& status);
  mesos::TaskStatus MasterStatus(const std::string& task_id, const std::string& agent_id,
                                 mesos::TaskState state, mesos::TaskStatus::Reason reason,
                                 const std::string& message) const;
  void Disconnected(const std::string& framework_id, const std::string& stream_id);
  void RemoveFramework(const std::string& framework_id, const std::string& why);
  void RescindOffers(Framework& framework, const std::function<bool(const mesos::Offer&)>& which,
                     bool notify);
  void Allocate();
  void CheckAgents();
  void RecoverFromAgent(AgentState& agent, const std::vector<mesos::FrameworkInfo>& frameworks,
                        const std::vector<mesos::Task>& tasks);
  void MarkUnreachable(AgentState& agent);
  ResourceBag Used(const std::string& agent_id) const;
  ResourceBag Offered(const std::string& agent_id) const;
  void ScheduleHeartbeat(const std::string& framework_id);
  double Now() const;

  boost::asio::io_context& io_;
  MasterOptions options_;
  std::string id_;
  HostPort address_;
  std::unique_ptr<net::HttpServer> server_;
  std::function<bool(const net::ServerRequest&, std::shared_ptr<net::Responder>&)> extra_;
  std::map<std::string, std::unique_ptr<Framework>> frameworks_;
  std::vector<nlohmann::json> completed_frameworks_;
  std::set<std::string> removed_frameworks_;
  std::map<std::string, std::unique_ptr<AgentState>> agents_;
  uint64_t next_framework_ = 0;
  uint64_t next_offer_ = 0;
  boost::asio::steady_timer allocation_timer_;
  boost::asio::steady_timer agent_check_timer_;
  double start_time_ = 0;
  std::unique_ptr<MasterContender> contender_;
  bool elected_ = true;
  bool recovered_ = true;
  std::optional<HostPort> leader_;  // while not elected: the leader, if ZooKeeper names one
  std::function<void()> on_serving_;
  boost::asio::steady_timer recovery_timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace etcd_mesos::local
