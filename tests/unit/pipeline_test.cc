// The action pipeline and the state writer that both the scheduler shell and the simulator drive.
#include "scheduler/core/pipeline.h"

#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <gtest/gtest.h>

namespace etcd_mesos::scheduler {
namespace {

Time T(int64_t ms) { return Time() + Millis(ms); }

LaunchMember Launch(const std::string& name, const std::string& offer) {
  LaunchMember l;
  l.member.name = name;
  l.member.task_id = name + " 10.0.0.1 1 2 3";
  l.member.agent_id = "agent-" + name;
  l.offer_id = offer;
  return l;
}

Persist PersistGeneration(uint64_t generation) {
  Persist p;
  p.state.generation = generation;
  return p;
}

// Everything the pipeline hands out until it stops (a write out, or nothing queued).
std::vector<Effect> Drain(ActionPipeline& p) {
  std::vector<Effect> out;
  while (auto e = p.Next()) out.push_back(std::move(*e));
  return out;
}

template <typename A>
const A* AsAction(const Effect& e) {
  const Action* a = std::get_if<Action>(&e);
  return a ? std::get_if<A>(a) : nullptr;
}

TEST(ActionPipeline, PassesActionsOnInTheCoresOrder) {
  ActionPipeline p;
  p.Add({KillTask{"t1", "a1", "why"}, Revive{}, DeclineOffer{"o1", 15}});
  p.Add({Suppress{}});
  auto out = Drain(p);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(AsAction<KillTask>(out[0])->task_id, "t1");
  EXPECT_NE(AsAction<Revive>(out[1]), nullptr);
  EXPECT_EQ(AsAction<DeclineOffer>(out[2])->offer_id, "o1");
  EXPECT_NE(AsAction<Suppress>(out[3]), nullptr);
  EXPECT_TRUE(p.empty());
}

TEST(ActionPipeline, AWriteHoldsBackEveryLaterActionOfAnyBatchUntilItIsAnswered) {
  ActionPipeline p;
  p.Add({PersistGeneration(1), Launch("etcd-1", "o1")});
  p.Add({KillTask{"t2", "", "later batch"}});
  auto out = Drain(p);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<WriteState>(out[0]));
  EXPECT_EQ(std::get<WriteState>(out[0]).state.generation, 1u);
  EXPECT_TRUE(p.writing());
  EXPECT_FALSE(p.Next().has_value()) << "nothing while the write is out";

  Event result = p.StateWritten(OkStatus(), T(5));
  ASSERT_TRUE(std::holds_alternative<PersistResult>(result));
  EXPECT_TRUE(std::get<PersistResult>(result).status.ok());
  EXPECT_EQ(std::get<PersistResult>(result).now, T(5));
  out = Drain(p);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(AsAction<LaunchMember>(out[0])->member.name, "etcd-1");
  EXPECT_EQ(AsAction<KillTask>(out[1])->task_id, "t2");
}

TEST(ActionPipeline, ASuspendedPipelineHandsOutNothingUntilResumedThenAllInOrder) {
  ActionPipeline p;
  p.Add({KillTask{"t1", "a1", "why"}});
  p.Suspend();
  EXPECT_TRUE(Drain(p).empty());
  p.Add({PersistGeneration(2), Launch("etcd-2", "o2")});
  EXPECT_TRUE(Drain(p).empty()) << "a leader in doubt neither writes nor launches";
  EXPECT_FALSE(p.empty());
  p.Resume();
  auto out = Drain(p);
  ASSERT_EQ(out.size(), 2u);  // the write holds the launch back, as always
  EXPECT_EQ(AsAction<KillTask>(out[0])->task_id, "t1");
  EXPECT_NE(std::get_if<WriteState>(&out[1]), nullptr);
  // Suspended while the write is out: its answer is taken, the launch waits for Resume.
  p.Suspend();
  (void)p.StateWritten(OkStatus(), T(1));
  EXPECT_TRUE(Drain(p).empty());
  p.Resume();
  out = Drain(p);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(AsAction<LaunchMember>(out[0])->member.name, "etcd-2");
}

TEST(ActionPipeline, OfTwoWritesInARowOnlyTheLaterIsMade) {
  ActionPipeline p;
  p.Add({PersistGeneration(1)});
  p.Add({PersistGeneration(2), Launch("etcd-2", "o2")});
  auto out = Drain(p);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<WriteState>(out[0]).state.generation, 2u);
  EXPECT_EQ(p.stats().writes_coalesced, 1u);
  EXPECT_EQ(p.stats().writes, 1u);
  (void)p.StateWritten(OkStatus(), T(1));
  out = Drain(p);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NE(AsAction<LaunchMember>(out[0]), nullptr);
}

TEST(ActionPipeline, AWriteFollowedByOtherActionsIsNotCoalesced) {
  ActionPipeline p;
  p.Add({PersistGeneration(1), KillTask{"t", "", ""}, PersistGeneration(2)});
  auto out = Drain(p);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(std::get<WriteState>(out[0]).state.generation, 1u);
  (void)p.StateWritten(OkStatus(), T(1));
  out = Drain(p);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NE(AsAction<KillTask>(out[0]), nullptr);
  EXPECT_EQ(std::get<WriteState>(out[1]).state.generation, 2u);
  EXPECT_EQ(p.stats().writes_coalesced, 0u);
}

TEST(ActionPipeline, ALaunchWhoseWriteFailedIsDeclinedAndReportedDroppedToTheCore) {
  ActionPipeline p;
  LaunchMember launch = Launch("etcd-3", "offer-3");
  p.Add({PersistGeneration(1), launch, KillTask{"t", "", "same batch, not a launch"}});
  ASSERT_EQ(Drain(p).size(), 1u);
  Event result = p.StateWritten(Error{ErrorCode::kUnavailable, "store down"}, T(42));
  EXPECT_FALSE(std::get<PersistResult>(result).status.ok());

  auto out = Drain(p);
  ASSERT_EQ(out.size(), 4u);
  const Note* note = AsAction<Note>(out[0]);
  ASSERT_NE(note, nullptr);
  EXPECT_EQ(note->level, "error");
  EXPECT_NE(note->message.find("not launching etcd-3"), std::string::npos) << note->message;
  const DeclineOffer* decline = AsAction<DeclineOffer>(out[1]);
  ASSERT_NE(decline, nullptr);
  EXPECT_EQ(decline->offer_id, "offer-3");
  EXPECT_EQ(decline->refuse_seconds, ActionPipeline::kSkippedLaunchRefuseSeconds);
  const FollowUp* follow = std::get_if<FollowUp>(&out[2]);
  ASSERT_NE(follow, nullptr);
  const TaskUpdate& update = std::get<TaskUpdate>(follow->event);
  EXPECT_EQ(update.status.state(), mesos::TASK_DROPPED);
  EXPECT_EQ(update.status.task_id().value(), launch.member.task_id);
  EXPECT_EQ(update.status.agent_id().value(), launch.member.agent_id);
  EXPECT_EQ(update.now, T(42));
  EXPECT_NE(AsAction<KillTask>(out[3]), nullptr) << "other actions of the batch still run";
  EXPECT_EQ(p.stats().launches_skipped, 1u);
  EXPECT_EQ(p.stats().writes_failed, 1u);
}

TEST(ActionPipeline, AFailedWriteStopsOnlyTheLaunchesOfItsOwnBatch) {
  ActionPipeline p;
  p.Add({PersistGeneration(1), Launch("etcd-1", "o1")});
  p.Add({PersistGeneration(2), Launch("etcd-2", "o2")});
  p.Add({Launch("etcd-3", "o3")});  // a batch without a write of its own
  ASSERT_EQ(Drain(p).size(), 1u);
  (void)p.StateWritten(Error{ErrorCode::kUnavailable, "down"}, T(1));
  auto out = Drain(p);
  // Batch 1's launch is skipped (note, decline, follow-up), then batch 2's write.
  ASSERT_EQ(out.size(), 4u);
  EXPECT_TRUE(std::holds_alternative<FollowUp>(out[2]));
  EXPECT_EQ(std::get<WriteState>(out[3]).state.generation, 2u);
  (void)p.StateWritten(OkStatus(), T(2));
  out = Drain(p);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(AsAction<LaunchMember>(out[0])->member.name, "etcd-2");
  EXPECT_EQ(AsAction<LaunchMember>(out[1])->member.name, "etcd-3");
}

// An update is acknowledged only once what it changed is written: the acknowledgement waits for
// its batch's write, and is never sent if that write failed for good (Mesos then resends the
// update). A batch without a write of its own acknowledges as soon as earlier writes are done.
TEST(ActionPipeline, AnAcknowledgementWaitsForItsWriteAndIsWithheldIfTheWriteFailed) {
  ActionPipeline p;
  p.Add({PersistGeneration(1), AcknowledgeUpdate{"a1", "t1", "u1"}});
  p.Add({AcknowledgeUpdate{"a2", "t2", "u2"}});
  auto out = Drain(p);
  ASSERT_EQ(out.size(), 1u) << "the write first, nothing else meanwhile";
  ASSERT_TRUE(std::holds_alternative<WriteState>(out[0]));
  (void)p.StateWritten(OkStatus(), T(1));
  out = Drain(p);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(AsAction<AcknowledgeUpdate>(out[0])->uuid, "u1");
  EXPECT_EQ(AsAction<AcknowledgeUpdate>(out[1])->uuid, "u2");

  p.Add({PersistGeneration(2), AcknowledgeUpdate{"a3", "t3", "u3"}});
  p.Add({AcknowledgeUpdate{"a4", "t4", "u4"}});
  ASSERT_EQ(Drain(p).size(), 1u);
  (void)p.StateWritten(Error{ErrorCode::kUnavailable, "store down"}, T(2));
  out = Drain(p);
  ASSERT_EQ(out.size(), 1u) << "u3 withheld: its change is not on record";
  EXPECT_EQ(AsAction<AcknowledgeUpdate>(out[0])->uuid, "u4") << "another batch's is sent";
  EXPECT_EQ(p.stats().acks_withheld, 1u);
}

TEST(ActionPipeline, TheAnswerToRestoreFromAtStartIsANoteNotAnHttpAnswer) {
  ActionPipeline p;
  p.Add({AnswerAdmin{0, 202, "restoring from b.db"}, AnswerAdmin{0, 409, "refused"},
         AnswerAdmin{7, 202, "accepted"}});
  auto out = Drain(p);
  ASSERT_EQ(out.size(), 3u);
  const Note* warn = AsAction<Note>(out[0]);
  ASSERT_NE(warn, nullptr);
  EXPECT_EQ(warn->level, "warn");
  EXPECT_EQ(warn->message, "--restore-from: restoring from b.db (202)");
  EXPECT_EQ(AsAction<Note>(out[1])->level, "error");
  EXPECT_EQ(AsAction<AnswerAdmin>(out[2])->request, 7u);
}

// Random batches and write outcomes: whatever happens, nothing is handed out while a write is
// out, every action comes out exactly once in order (a Persist as a write or coalesced, a launch
// as itself or skipped), and a launch comes out only if its batch's latest write succeeded.
TEST(ActionPipeline, PropertiesHoldOverRandomBatchesAndOutcomes) {
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    std::mt19937_64 rng(seed);
    ActionPipeline p;
    std::vector<std::string> expected;  // kill ids and launch names, in order
    std::vector<std::string> seen;
    bool last_write_ok = true;
    int skipped = 0, batches = 0;
    for (int step = 0; step < 60; ++step) {
      if (rng() % 3 != 0) {
        Actions batch;
        bool has_write = rng() % 2 == 0;
        if (has_write) batch.push_back(PersistGeneration(step));
        int n = static_cast<int>(rng() % 3);
        for (int i = 0; i < n; ++i) {
          std::string id = fmt::format("b{}-{}", batches, i);
          if (has_write && rng() % 2 == 0) {
            batch.push_back(Launch(id, "o-" + id));
          } else {
            batch.push_back(KillTask{id, "", ""});
          }
          expected.push_back(id);
        }
        ++batches;
        p.Add(std::move(batch));
      }
      while (auto e = p.Next()) {
        ASSERT_FALSE(p.writing() && !std::holds_alternative<WriteState>(*e)) << "seed " << seed;
        if (std::holds_alternative<WriteState>(*e)) {
          ASSERT_TRUE(p.writing());
          ASSERT_FALSE(p.Next().has_value()) << "seed " << seed;
          last_write_ok = rng() % 4 != 0;
          (void)p.StateWritten(last_write_ok ? OkStatus() : Status(Error{}), T(step));
          continue;
        }
        if (auto* k = AsAction<KillTask>(*e)) seen.push_back(k->task_id);
        if (auto* l = AsAction<LaunchMember>(*e)) {
          ASSERT_TRUE(last_write_ok) << "seed " << seed << ": a launch after a failed write";
          seen.push_back(l->member.name);
        }
        if (auto* f = std::get_if<FollowUp>(&*e)) {
          ASSERT_FALSE(last_write_ok) << "seed " << seed;
          seen.push_back(std::get<TaskUpdate>(f->event).status.agent_id().value().substr(6));
          ++skipped;
        }
      }
    }
    ASSERT_EQ(seen, std::vector<std::string>(expected.begin(), expected.begin() + seen.size()))
        << "seed " << seed;
    EXPECT_EQ(p.stats().launches_skipped, static_cast<uint64_t>(skipped));
  }
}

// ---- StateWriter ----------------------------------------------------------------------------

TEST(StateWriter, CreatesTheNodeFirstThenSetsOnTheVersionItLastSaw) {
  StateWriter w;
  EXPECT_TRUE(std::holds_alternative<StateWriter::Create>(w.Begin("ours")));
  auto done = w.Written(int64_t{0});
  ASSERT_TRUE(std::holds_alternative<StateWriter::Done>(done));
  EXPECT_TRUE(std::get<StateWriter::Done>(done).status.ok());
  auto set = w.Begin("ours");
  ASSERT_TRUE(std::holds_alternative<StateWriter::Set>(set));
  EXPECT_EQ(std::get<StateWriter::Set>(set).version, 0);
  (void)w.Written(int64_t{1});
  EXPECT_EQ(std::get<StateWriter::Set>(w.Begin("ours")).version, 1);
}

TEST(StateWriter, AConflictOverOurOwnLandedWriteIsDone) {
  // The first Set landed but its answer was lost; the retry on the old version conflicts.
  StateWriter w;
  w.Loaded(4);
  EXPECT_EQ(std::get<StateWriter::Set>(w.Begin("ours")).version, 4);
  auto wait = w.Written(Error{ErrorCode::kUnavailable, "connection loss, outcome unknown"});
  ASSERT_TRUE(std::holds_alternative<StateWriter::Wait>(wait));
  EXPECT_EQ(std::get<StateWriter::Set>(w.Waited()).version, 4);
  auto reread = w.Written(Error{ErrorCode::kConflict, "bad version"});
  ASSERT_TRUE(std::holds_alternative<StateWriter::Reread>(reread));
  EXPECT_EQ(std::get<StateWriter::Reread>(reread).why.code, ErrorCode::kConflict);
  auto done = w.StoredRead(StateWriter::Stored{5, "ours"});
  ASSERT_TRUE(std::holds_alternative<StateWriter::Done>(done));
  EXPECT_TRUE(std::get<StateWriter::Done>(done).status.ok());
  EXPECT_EQ(std::get<StateWriter::Set>(w.Begin("next")).version, 5);
}

TEST(StateWriter, SomeoneElsesWriteIsNeverOverwritten) {
  // A late write of a crashed predecessor, or another scheduler of this framework.
  StateWriter w;
  w.set_where("dir:/var/lib/etcd-mesos");
  w.Loaded(4);
  (void)w.Begin("ours");
  ASSERT_TRUE(std::holds_alternative<StateWriter::Reread>(
      w.Written(Error{ErrorCode::kConflict, "bad version"})));
  auto done = w.StoredRead(StateWriter::Stored{5, "theirs"});
  ASSERT_TRUE(std::holds_alternative<StateWriter::Done>(done));
  const Status& s = std::get<StateWriter::Done>(done).status;
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kConflict);
  EXPECT_NE(s.error().message.find("dir:/var/lib/etcd-mesos was written by someone else"),
            std::string::npos)
      << s.error().message;
  // A create that finds a node there is told apart the same way.
  StateWriter fresh;
  EXPECT_TRUE(std::holds_alternative<StateWriter::Create>(fresh.Begin("ours")));
  ASSERT_TRUE(std::holds_alternative<StateWriter::Reread>(
      fresh.Written(Error{ErrorCode::kAlreadyExists, "node exists"})));
  auto theirs = fresh.StoredRead(StateWriter::Stored{0, "theirs"});
  EXPECT_EQ(std::get<StateWriter::Done>(theirs).status.error().code, ErrorCode::kConflict);
}

TEST(StateWriter, ANodeGoneOnRereadIsCreatedAgain) {
  StateWriter w;
  w.Loaded(2);
  (void)w.Begin("ours");
  ASSERT_TRUE(std::holds_alternative<StateWriter::Reread>(
      w.Written(Error{ErrorCode::kNotFound, "no node"})));
  auto wait = w.StoredRead(Error{ErrorCode::kNotFound, "no node"});
  ASSERT_TRUE(std::holds_alternative<StateWriter::Wait>(wait));
  EXPECT_TRUE(std::holds_alternative<StateWriter::Create>(w.Waited()));
  EXPECT_EQ(w.version(), -1);
}

// A write refused by its fence: this writer's election node is gone, another leads. Retrying
// cannot help, and re-reading would mistake the next leader's state for a conflict.
TEST(StateWriter, AFencedWriteIsOverAtOnce) {
  StateWriter w;
  w.Loaded(3);
  ASSERT_TRUE(std::holds_alternative<StateWriter::Set>(w.Begin("s")));
  auto step = w.Written(Error{ErrorCode::kRefused, "the fence '/x/leader/n1' is gone"});
  auto* done = std::get_if<StateWriter::Done>(&step);
  ASSERT_NE(done, nullptr);
  ASSERT_FALSE(done->status.ok());
  EXPECT_EQ(done->status.error().code, ErrorCode::kRefused);
}

TEST(StateWriter, OtherFailuresBackOffDoublingAndGiveUpAfterSixAttemptsSayingWhere) {
  StateWriter w;
  w.set_where("zk://127.0.0.1:2181/etcd-mesos");
  w.Loaded(1);
  (void)w.Begin("ours");
  Millis expected = StateWriter::kBackoff;
  for (int attempt = 1; attempt < StateWriter::kAttempts; ++attempt) {
    auto step = w.Written(Error{ErrorCode::kUnavailable, "connection loss"});
    ASSERT_TRUE(std::holds_alternative<StateWriter::Wait>(step)) << attempt;
    EXPECT_EQ(std::get<StateWriter::Wait>(step).delay, expected);
    EXPECT_EQ(std::get<StateWriter::Wait>(step).why.message, "connection loss");
    expected *= 2;
    ASSERT_TRUE(std::holds_alternative<StateWriter::Set>(w.Waited()));
  }
  auto done = w.Written(Error{ErrorCode::kUnavailable, "connection loss"});
  ASSERT_TRUE(std::holds_alternative<StateWriter::Done>(done));
  const Status& s = std::get<StateWriter::Done>(done).status;
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(s.error().message,
            "writing the state to zk://127.0.0.1:2181/etcd-mesos (6 attempts): connection loss");
  // The next write starts afresh.
  EXPECT_TRUE(std::holds_alternative<StateWriter::Set>(w.Begin("ours")));
  EXPECT_TRUE(std::holds_alternative<StateWriter::Wait>(w.Written(Error{})));
}

TEST(StateWriter, LoadRetriesGrowAndStopAtTheCap) {
  EXPECT_EQ(StateWriter::LoadRetryDelay(0), Millis(250));
  EXPECT_EQ(StateWriter::LoadRetryDelay(1), Millis(500));
  EXPECT_EQ(StateWriter::LoadRetryDelay(4), Millis(4000));
  EXPECT_EQ(StateWriter::LoadRetryDelay(5), Millis(8000));
  EXPECT_EQ(StateWriter::LoadRetryDelay(50), Millis(8000));
}

}  // namespace
}  // namespace etcd_mesos::scheduler
