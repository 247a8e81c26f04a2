#include "local/status_update_manager.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/encoding.h"
#include "mesos/task_state.h"

namespace etcd_mesos::local {

namespace {}  // namespace

StatusUpdateManager::StatusUpdateManager(boost::asio::io_context& io, Options options,
                                         Forward forward)
    : io_(io), options_(options), forward_(std::move(forward)) {}

StatusUpdateManager::~StatusUpdateManager() { *alive_ = false; }

StatusUpdateManager::Outcome StatusUpdateManager::Update(const mesos::FrameworkID& framework_id,
                                                         const mesos::TaskStatus& status) {
  Key key{framework_id.value(), status.task_id().value()};
  auto& slot = streams_[key];
  if (!slot) {
    slot = std::make_unique<Stream>(io_);
    slot->framework_id = framework_id;
  }
  Stream& stream = *slot;
  if (!stream.received.insert(status.uuid()).second) {
    SPDLOG_DEBUG("agent: duplicate status update {} for task {} ignored",
                 UuidToString(status.uuid()), status.task_id().value());
    return Outcome::kDuplicate;
  }
  stream.pending.push_back(status);
  stream.latest_state = status.state();
  if (stream.pending.size() == 1) {
    SendHead(stream, /*reset_backoff=*/true);
    ArmRetry(key, stream);
  }
  return Outcome::kAccepted;
}

Result<mesos::TaskStatus> StatusUpdateManager::Acknowledge(const mesos::FrameworkID& framework_id,
                                                           const mesos::TaskID& task_id,
                                                           const std::string& uuid) {
  Key key{framework_id.value(), task_id.value()};
  auto it = streams_.find(key);
  if (it == streams_.end()) {
    return MakeError(ErrorCode::kNotFound,
                     "acknowledgement {} for task {} of framework {}: no pending updates",
                     UuidToString(uuid), task_id.value(), framework_id.value());
  }
  Stream& stream = *it->second;
  if (stream.pending.empty() || stream.pending.front().uuid() != uuid) {
    return MakeError(ErrorCode::kNotFound,
                     "unexpected acknowledgement {} for task {} of framework {} (not the update "
                     "in flight)",
                     UuidToString(uuid), task_id.value(), framework_id.value());
  }
  mesos::TaskStatus acked = stream.pending.front();
  stream.pending.erase(stream.pending.begin());
  stream.timer.cancel();
  if (mesos_facts::IsTerminalState(acked.state())) {
    if (!stream.pending.empty()) {
      SPDLOG_WARN(
          "agent: terminal update of task {} acknowledged with {} updates still pending; "
          "they are dropped",
          task_id.value(), stream.pending.size());
    }
    streams_.erase(it);
    return acked;
  }
  if (!stream.pending.empty()) {
    SendHead(stream, /*reset_backoff=*/true);
    ArmRetry(key, stream);
  }
  return acked;
}

void StatusUpdateManager::SendHead(Stream& stream, bool reset_backoff) {
  if (reset_backoff) stream.backoff = options_.retry_min;
  if (paused_ || stream.pending.empty()) return;
  forward_(stream.framework_id, stream.pending.front(), stream.latest_state);
}

void StatusUpdateManager::ArmRetry(const Key& key, Stream& stream) {
  if (paused_ || stream.pending.empty()) return;
  stream.timer.expires_after(stream.backoff);
  stream.timer.async_wait([this, key, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive || paused_) return;
    auto it = streams_.find(key);
    if (it == streams_.end()) return;
    Stream& s = *it->second;
    if (s.pending.empty()) return;
    SPDLOG_INFO("agent: resending status update {} ({}) for task {}: not acknowledged",
                UuidToString(s.pending.front().uuid()),
                mesos::TaskState_Name(s.pending.front().state()), key.second);
    SendHead(s, /*reset_backoff=*/false);
    s.backoff = std::min(s.backoff * 2, options_.retry_max);
    ArmRetry(key, s);
  });
}

void StatusUpdateManager::Pause() {
  paused_ = true;
  for (auto& [key, stream] : streams_) stream->timer.cancel();
}

void StatusUpdateManager::Resume() {
  paused_ = false;
  for (auto& [key, stream] : streams_) {
    SendHead(*stream, /*reset_backoff=*/true);
    ArmRetry(key, *stream);
  }
}

void StatusUpdateManager::ResendFramework(const mesos::FrameworkID& framework_id) {
  for (auto& [key, stream] : streams_) {
    if (key.first != framework_id.value()) continue;
    SendHead(*stream, /*reset_backoff=*/true);
    ArmRetry(key, *stream);
  }
}

void StatusUpdateManager::CleanupFramework(const mesos::FrameworkID& framework_id) {
  std::erase_if(streams_,
                [&](const auto& entry) { return entry.first.first == framework_id.value(); });
}

void StatusUpdateManager::Clear() { streams_.clear(); }

std::optional<mesos::TaskStatus> StatusUpdateManager::Head(const mesos::FrameworkID& framework_id,
                                                           const mesos::TaskID& task_id) const {
  auto it = streams_.find({framework_id.value(), task_id.value()});
  if (it == streams_.end() || it->second->pending.empty()) return std::nullopt;
  return it->second->pending.front();
}

size_t StatusUpdateManager::Pending(const mesos::FrameworkID& framework_id,
                                    const mesos::TaskID& task_id) const {
  auto it = streams_.find({framework_id.value(), task_id.value()});
  return it == streams_.end() ? 0 : it->second->pending.size();
}

}  // namespace etcd_mesos::local
