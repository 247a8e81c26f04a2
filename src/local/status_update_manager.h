// StatusUpdateManager: the agent's half of reliable task status updates, as Mesos's
// TaskStatusUpdateManager does it (reference/mesos-v1-api.md 2.3; src/slave/
// task_status_update_manager.cpp).
//
// Every update carries a uuid. Updates of one task form a FIFO stream; only its head is sent to
// the master, and it is resent with the same uuid after retry_min, doubling up to retry_max,
// until the scheduler's acknowledgement of that uuid arrives; then the next update of the task is
// sent at once. A duplicate (a uuid the stream already received) is ignored. When a terminal
// update is acknowledged the stream ends (any update queued behind it is dropped, as Mesos does).
// While paused (the agent is down) nothing is sent; Resume() sends every head at once with the
// backoff reset, which is also what a framework's re-subscription triggers.
//
// Threading: one io_context thread; `forward` is called from the caller's call (Update/Resume/
// Acknowledge) or from a retry timer on that thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/result.h"
#include "mesos/v1.h"

namespace etcd_mesos::local {

class StatusUpdateManager {
 public:
  struct Options {
    std::chrono::milliseconds retry_min{10'000};
    std::chrono::milliseconds retry_max{600'000};
  };
  // Sends one update to the master. `latest_state` is the newest state received for the task.
  using Forward = std::function<void(const mesos::FrameworkID&, const mesos::TaskStatus&,
                                     mesos::TaskState latest_state)>;

  StatusUpdateManager(boost::asio::io_context& io, Options options, Forward forward);
  ~StatusUpdateManager();

  enum class Outcome { kAccepted, kDuplicate };
  // Takes an update (its uuid must be set). kDuplicate when the stream already has this uuid.
  Outcome Update(const mesos::FrameworkID& framework_id, const mesos::TaskStatus& status);

  // The scheduler acknowledged `uuid` of a task. Returns the acknowledged update, or kNotFound
  // when there is no such stream or `uuid` is not its head (a late duplicate acknowledgement).
  Result<mesos::TaskStatus> Acknowledge(const mesos::FrameworkID& framework_id,
                                        const mesos::TaskID& task_id, const std::string& uuid);

  void Pause();
  bool paused() const { return paused_; }
  // Un-pauses and sends every head now, backoff reset.
  void Resume();
  // Sends the heads of one framework's streams now, backoff reset (the framework re-subscribed).
  void ResendFramework(const mesos::FrameworkID& framework_id);
  // Drops every stream of a framework (it is gone; no acknowledgement will come).
  void CleanupFramework(const mesos::FrameworkID& framework_id);
  void Clear();

  // The oldest unacknowledged update of a task, if any.
  std::optional<mesos::TaskStatus> Head(const mesos::FrameworkID& framework_id,
                                        const mesos::TaskID& task_id) const;
  // How many updates of a task wait for acknowledgement (head included).
  size_t Pending(const mesos::FrameworkID& framework_id, const mesos::TaskID& task_id) const;

 private:
  using Key = std::pair<std::string, std::string>;  // framework id, task id
  struct Stream {
    explicit Stream(boost::asio::io_context& io) : timer(io) {}
    mesos::FrameworkID framework_id;
    std::vector<mesos::TaskStatus> pending;  // pending.front() is the head
    std::set<std::string> received;          // uuids
    mesos::TaskState latest_state = mesos::TASK_STAGING;
    std::chrono::milliseconds backoff{0};
    boost::asio::steady_timer timer;
  };

  void SendHead(Stream& stream, bool reset_backoff);
  void ArmRetry(const Key& key, Stream& stream);

  boost::asio::io_context& io_;
  Options options_;
  Forward forward_;
  bool paused_ = false;
  std::map<Key, std::unique_ptr<Stream>> streams_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace etcd_mesos::local
