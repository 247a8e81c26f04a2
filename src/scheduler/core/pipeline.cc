#include "scheduler/core/pipeline.h"

#include <algorithm>

#include <fmt/format.h>

namespace etcd_mesos::scheduler {

namespace {
// Enough to cover every batch still queued behind a failed write; older ones launch nothing more.
constexpr size_t kFailedBatchesKept = 16;
}  // namespace

// ---- ActionPipeline -------------------------------------------------------------------------

void ActionPipeline::Add(Actions actions) {
  if (actions.empty()) return;
  uint64_t batch = ++next_batch_;
  for (auto& a : actions) queue_.push_back(Queued{std::move(a), batch});
}

std::optional<Effect> ActionPipeline::Next() {
  while (!writing_ && !suspended_) {
    if (!pending_.empty()) {
      Effect e = std::move(pending_.front());
      pending_.pop_front();
      return e;
    }
    if (queue_.empty()) return std::nullopt;
    Queued q = std::move(queue_.front());
    queue_.pop_front();
    if (auto e = Transform(std::move(q))) return e;
  }
  return std::nullopt;
}

std::optional<Effect> ActionPipeline::Transform(Queued q) {
  if (auto* persist = std::get_if<Persist>(&q.action)) {
    if (!queue_.empty() && std::holds_alternative<Persist>(queue_.front().action)) {
      ++stats_.writes_coalesced;  // the later write carries everything this one did
      return std::nullopt;
    }
    writing_ = true;
    writing_batch_ = q.batch;
    ++stats_.writes;
    return WriteState{std::move(persist->state)};
  }
  if (auto* launch = std::get_if<LaunchMember>(&q.action)) {
    if (failed_batches_.count(q.batch)) {
      SkipLaunch(*launch);
      return std::nullopt;
    }
  }
  if (std::holds_alternative<AcknowledgeUpdate>(q.action) && failed_batches_.count(q.batch)) {
    // What the update changed is not on record: unacknowledged, Mesos sends it again.
    ++stats_.acks_withheld;
    return std::nullopt;
  }
  if (auto* answer = std::get_if<AnswerAdmin>(&q.action); answer && answer->request == 0) {
    // Request 0 is --restore-from at start: no client waits; the log and the page say it.
    return Action{Note{answer->http_status < 300 ? "warn" : "error",
                       fmt::format("--restore-from: {} ({})", answer->message, answer->http_status),
                       "restore"}};
  }
  if (auto* answer = std::get_if<AnswerAdmin>(&q.action);
      answer && answer->request == kCommandLineTeardown) {
    return Action{Note{answer->http_status < 300 ? "warn" : "error",
                       fmt::format("teardown: {} ({})", answer->message, answer->http_status),
                       "admin"}};
  }
  return Effect{std::move(q.action)};
}

void ActionPipeline::SkipLaunch(const LaunchMember& launch) {
  ++stats_.launches_skipped;
  // A task that is not on record must not start.
  pending_.push_back(Action{
      Note{"error", "not launching " + launch.member.name + ": the state write before it failed",
           "store", launch.member.name}});
  pending_.push_back(Action{DeclineOffer{launch.offer_id, kSkippedLaunchRefuseSeconds}});
  // The core believes the task launched: tell it the launch never reached Mesos (as Mesos says of
  // a launch it dropped), so that the member is replaced. Otherwise, once its agent is gone,
  // reconciliation answers TASK_UNKNOWN for ever and the member counts as maybe alive, which kept
  // a real total loss from being reported (simulator seeds 5973, 6545, 10576).
  mesos::TaskStatus dropped;
  dropped.mutable_task_id()->set_value(launch.member.task_id);
  dropped.mutable_agent_id()->set_value(launch.member.agent_id);
  dropped.set_state(mesos::TASK_DROPPED);
  dropped.set_message("not launched: the state write before it failed");
  pending_.push_back(FollowUp{TaskUpdate{std::move(dropped), failed_at_}});
}

Event ActionPipeline::StateWritten(Status status, Time now) {
  writing_ = false;
  if (!status.ok()) {
    failed_at_ = now;
    ++stats_.writes_failed;
    failed_batches_.insert(writing_batch_);
    while (failed_batches_.size() > kFailedBatchesKept) {
      failed_batches_.erase(failed_batches_.begin());
    }
  }
  return PersistResult{std::move(status), now};
}

// ---- StateWriter ----------------------------------------------------------------------------

StateWriter::Step StateWriter::Begin(std::string data) {
  data_ = std::move(data);
  attempt_ = 0;
  conflict_.reset();
  return Attempt();
}

StateWriter::Step StateWriter::Attempt() {
  if (version_ < 0) return Create{};
  return Set{version_};
}

StateWriter::Step StateWriter::Written(Result<int64_t> version) {
  if (version.ok()) {
    version_ = *version;
    return Done{OkStatus()};
  }
  ErrorCode code = version.error().code;
  // Fenced (StateStore::SetFence): this writer no longer leads; no retry can change that.
  if (code == ErrorCode::kRefused) return Done{version.error()};
  if (code == ErrorCode::kConflict || code == ErrorCode::kAlreadyExists ||
      code == ErrorCode::kNotFound) {
    // Someone else wrote the state, or our own earlier attempt landed with its answer lost, or
    // the node went away: what is stored tells which.
    conflict_ = version.error();
    return Reread{version.error()};
  }
  return Retry(version.error());
}

StateWriter::Step StateWriter::StoredRead(Result<Stored> stored) {
  Error error = conflict_.value_or(Error{ErrorCode::kConflict, "the state changed"});
  conflict_.reset();
  if (!stored.ok()) {
    if (stored.error().code == ErrorCode::kNotFound) version_ = -1;  // gone: create it again
    return Retry(std::move(error));
  }
  version_ = stored->version;
  if (stored->data == data_) return Done{OkStatus()};  // our own write, its answer lost
  std::string at = where_.empty() ? "" : " at " + where_;
  return Done{MakeError(ErrorCode::kConflict,
                        "the stored state{} was written by someone else ({}): another scheduler "
                        "of this framework, or a late write of a previous one; not overwriting it",
                        at, error.message)};
}

StateWriter::Step StateWriter::Retry(Error error) {
  if (attempt_ + 1 >= kAttempts) {
    std::string to = where_.empty() ? "" : " to " + where_;
    return Done{error.Context(fmt::format("writing the state{} ({} attempts)", to, attempt_ + 1))};
  }
  return Wait{kBackoff * (1 << attempt_), std::move(error)};
}

StateWriter::Step StateWriter::Waited() {
  ++attempt_;
  return Attempt();
}

Millis StateWriter::LoadRetryDelay(int attempt) {
  return std::min<Millis>(kBackoff * (1 << std::clamp(attempt, 0, 5)), kLoadBackoffMax);
}

}  // namespace etcd_mesos::scheduler
