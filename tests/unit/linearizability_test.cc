// The register linearizability checker on hand-made histories (the classic examples), on its
// JSON form, on its search budget, and on random histories built from a real register: those are
// linearizable by construction, and one injected anomaly must be caught.
#include "testing/linearizability.h"

#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace etcd_mesos::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using V = std::optional<std::string>;

constexpr auto kOk = Outcome::kOk;
constexpr auto kLost = Outcome::kIndeterminate;  // timed out: may or may not have happened
constexpr auto kFailed = Outcome::kFailed;

Operation Read(int client, V seen, int64_t invoke, int64_t complete, Outcome o = kOk) {
  return {.client = client,
          .key = "x",
          .kind = OpKind::kRead,
          .value = seen,
          .invoke = invoke,
          .complete = complete,
          .outcome = o};
}
Operation Write(int client, std::string v, int64_t invoke, int64_t complete, Outcome o = kOk) {
  return {.client = client,
          .key = "x",
          .kind = OpKind::kWrite,
          .value = v,
          .invoke = invoke,
          .complete = complete,
          .outcome = o};
}
Operation Cas(int client, V expected, std::string v, bool succeeded, int64_t invoke,
              int64_t complete, Outcome o = kOk) {
  return {.client = client,
          .key = "x",
          .kind = OpKind::kCas,
          .value = v,
          .expected = expected,
          .succeeded = succeeded,
          .invoke = invoke,
          .complete = complete,
          .outcome = o};
}

CheckResult Check(const History& h, uint64_t max_steps = 1'000'000) {
  auto r = CheckLinearizability(h, {.max_steps = max_steps});
  EXPECT_TRUE(r.ok()) << r.error();
  return r.ok() ? *r : CheckResult{.verdict = Verdict::kUnknown};
}
Verdict VerdictOf(std::vector<Operation> ops, std::map<std::string, std::string> initial = {}) {
  return Check({std::move(ops), std::move(initial)}).verdict;
}

constexpr auto kYes = Verdict::kLinearizable;
constexpr auto kNo = Verdict::kNotLinearizable;

TEST(Linearizability, SequentialHistoriesOfARegister) {
  EXPECT_EQ(VerdictOf({}), kYes);
  EXPECT_EQ(VerdictOf({Read(1, V(), 0, 1), Write(1, "a", 2, 3), Read(2, "a", 4, 5)}), kYes);
  // Intervals that only touch are not ordered: the read may come first.
  EXPECT_EQ(VerdictOf({Write(1, "a", 0, 10), Read(2, V(), 10, 20)}), kYes);
  EXPECT_EQ(VerdictOf({Write(1, "a", 0, 10), Read(2, V(), 11, 20)}), kNo);
  EXPECT_EQ(VerdictOf({Read(1, "a", 0, 1)}, {{"x", "a"}}), kYes);  // a given initial value
  EXPECT_EQ(VerdictOf({Read(1, V(), 0, 1)}, {{"x", "a"}}), kNo);
}

TEST(Linearizability, AStaleReadAfterACompletedWriteIsNot) {
  History h{{Write(1, "1", 0, 10), Write(1, "2", 20, 30), Read(2, "1", 40, 50)}};
  CheckResult r = Check(h);
  ASSERT_EQ(r.verdict, kNo);
  ASSERT_EQ(r.keys.size(), 1u);
  EXPECT_EQ(r.keys[0].stuck_op, 2u);
  EXPECT_THAT(r.keys[0].longest_prefix, ElementsAre(0, 1));
  EXPECT_THAT(r.ToString(), HasSubstr(R"(key "x": not linearizable: #2 client 2 read(x) -> "1")"));
  EXPECT_THAT(r.ToString(), HasSubstr(R"(leaves the register holding "2")"));
}

TEST(Linearizability, AReadOfAValueBeforeItsWriteWasInvokedIsNot) {
  CheckResult r = Check({{Read(1, "1", 0, 10), Write(2, "1", 20, 30)}});
  ASSERT_EQ(r.verdict, kNo);
  EXPECT_EQ(r.keys[0].stuck_op, 0u);
  EXPECT_TRUE(r.keys[0].longest_prefix.empty());
}

TEST(Linearizability, AReadOfAValueNeverWrittenIsNot) {
  CheckResult r = Check({{Write(1, "a", 0, 10), Read(2, "ghost", 5, 15), Read(1, "a", 20, 30)}});
  ASSERT_EQ(r.verdict, kNo);
  EXPECT_EQ(r.keys[0].stuck_op, 1u);
  EXPECT_THAT(r.ToString(), HasSubstr(R"(read(x) -> "ghost")"));
}

// The textbook examples of Herlihy & Wing / Lamport: a read concurrent with a write may return
// the old or the new value, but once some read returned the new value, a later read may not
// return the old one (a "new-old inversion": allowed for a regular register, not an atomic one).
TEST(Linearizability, HerlihyWingRegisterExamples) {
  EXPECT_EQ(VerdictOf({Write(1, "1", 0, 100), Read(2, V(), 10, 20)}), kYes);
  EXPECT_EQ(VerdictOf({Write(1, "1", 0, 100), Read(2, "1", 10, 20)}), kYes);
  EXPECT_EQ(VerdictOf({Write(1, "1", 0, 100), Read(2, V(), 10, 20), Read(3, "1", 30, 40)}), kYes);
  EXPECT_EQ(VerdictOf({Write(1, "1", 0, 100), Read(2, "1", 10, 20), Read(3, V(), 30, 40)}), kNo);
  // The same with two writers: C saw B's 1, then A reads A's older 0.
  EXPECT_EQ(VerdictOf({Write(1, "0", 0, 10), Write(2, "1", 12, 30), Read(3, "1", 14, 20),
                       Read(1, "0", 22, 28)}),
            kNo);
  // Overlapping reads may see the two values in either order.
  EXPECT_EQ(VerdictOf({Write(1, "0", 0, 10), Write(2, "1", 12, 30), Read(3, "1", 14, 24),
                       Read(1, "0", 13, 28)}),
            kYes);
}

TEST(Linearizability, ConcurrentWritesMayTakeEitherOrderButOnlyOne) {
  EXPECT_EQ(VerdictOf({Write(1, "a", 0, 10), Write(2, "b", 0, 10), Read(3, "a", 20, 30)}), kYes);
  EXPECT_EQ(VerdictOf({Write(1, "a", 0, 10), Write(2, "b", 0, 10), Read(3, "b", 20, 30)}), kYes);
  EXPECT_EQ(VerdictOf({Write(1, "a", 0, 10), Write(2, "b", 0, 10), Read(3, "a", 20, 30),
                       Read(3, "b", 40, 50)}),
            kNo);
}

TEST(Linearizability, TwoCasWithTheSameExpectedValueCannotBothSucceed) {
  std::map<std::string, std::string> zero{{"x", "0"}};
  EXPECT_EQ(VerdictOf({Cas(1, "0", "a", true, 0, 10), Cas(2, "0", "b", true, 5, 15)}, zero), kNo);
  EXPECT_EQ(VerdictOf({Cas(1, "0", "a", true, 0, 10), Cas(2, "0", "b", false, 5, 15)}, zero), kYes);
  // A CAS that answered false saw another value: alone on "0", it cannot have.
  EXPECT_EQ(VerdictOf({Cas(1, "0", "a", false, 0, 10)}, zero), kNo);
  EXPECT_EQ(VerdictOf({Cas(1, "0", "a", false, 0, 10), Write(2, "1", 0, 10)}, zero), kYes);
  // Create-if-absent: expected nullopt.
  EXPECT_EQ(VerdictOf({Cas(1, V(), "a", true, 0, 10), Cas(2, V(), "b", true, 20, 30)}), kNo);
  EXPECT_EQ(VerdictOf({Cas(1, V(), "a", true, 0, 10), Cas(2, V(), "b", false, 20, 30)}), kYes);
}

TEST(Linearizability, IndeterminateWritesMayExplainALaterReadOrNeverHappen) {
  EXPECT_EQ(VerdictOf({Write(1, "1", 0, 5, kLost), Read(2, "1", 100, 110)}), kYes);
  EXPECT_EQ(VerdictOf({Write(1, "1", 0, 5, kLost), Read(2, V(), 100, 110)}), kYes);
  EXPECT_EQ(VerdictOf({Write(1, "1", 0, 5, kLost), Read(2, V(), 50, 60), Read(2, "1", 100, 110)}),
            kYes);
  // It happens once: after it was seen, the old value cannot come back.
  EXPECT_EQ(VerdictOf({Write(1, "1", 0, 5, kLost), Read(2, "1", 50, 60), Read(2, V(), 100, 110)}),
            kNo);
  // Invoked after the read completed: it cannot explain it.
  EXPECT_EQ(VerdictOf({Read(2, "1", 0, 10), Write(1, "1", 20, 25, kLost)}), kNo);
  // An indeterminate CAS explains a read only if its compare could hold.
  std::map<std::string, std::string> zero{{"x", "0"}};
  EXPECT_EQ(VerdictOf({Cas(1, "0", "1", false, 0, 5, kLost), Read(2, "1", 50, 60)}, zero), kYes);
  EXPECT_EQ(VerdictOf({Cas(1, "7", "1", false, 0, 5, kLost), Read(2, "1", 50, 60)}, zero), kNo);
}

// What a majority loss leaves behind: a few dozen writes that timed out while no quorum was
// there, none of them ever seen, then a long run of ordinary traffic. Each of them may happen at
// any point after its call, so a search that told them apart would meet every subset of them in
// every order; they differ only in when they were called, and are searched as such.
TEST(Linearizability, ManyUnseenIndeterminateWritesDoNotExhaustTheSearch) {
  History h;
  for (int i = 0; i < 30; ++i) {
    h.ops.push_back(
        i % 2 ? Write(i % 3, "lost-" + std::to_string(i), i * 10, i * 10 + 5, kLost)
              : Cas(i % 3, V(), "lost-" + std::to_string(i), false, i * 10, i * 10 + 5, kLost));
  }
  std::string last;
  for (int i = 0; i < 300; ++i) {
    int64_t t = 1000 + i * 10;
    std::string v = "v" + std::to_string(i);
    h.ops.push_back(i % 3 == 2 ? Cas(i % 4, last, v, true, t, t + 15) : Write(i % 4, v, t, t + 5));
    h.ops.push_back(Read(4, v, t + 6, t + 9));
    last = v;
  }
  CheckResult r = Check(h, /*max_steps=*/200'000);
  EXPECT_EQ(r.verdict, kYes) << r.ToString();
  // A stale read among them is still caught.
  h.ops.push_back(Read(5, "v7", 5000, 5001));
  CheckResult stale = Check(h, CheckOptions{}.max_steps);  // the fault suite's budget
  EXPECT_EQ(stale.verdict, kNo) << stale.ToString();
}

// An unseen indeterminate write can still be the only explanation: an acknowledged CAS that
// found another value than the only one ever written.
TEST(Linearizability, AnUnseenIndeterminateWriteMayExplainAFailedCas) {
  std::map<std::string, std::string> zero{{"x", "0"}};
  EXPECT_EQ(VerdictOf({Write(1, "u", 0, 5, kLost), Cas(2, "0", "1", false, 50, 60)}, zero), kYes);
  EXPECT_EQ(VerdictOf({Write(1, "u", 0, 5, kFailed), Cas(2, "0", "1", false, 50, 60)}, zero), kNo);
  EXPECT_EQ(VerdictOf({Cas(2, "0", "1", false, 50, 60), Write(1, "u", 70, 75, kLost)}, zero), kNo);
}

TEST(Linearizability, FailedOperationsAndIndeterminateReadsConstrainNothing) {
  EXPECT_EQ(VerdictOf({Write(1, "1", 0, 10, kFailed), Read(2, "1", 20, 30)}), kNo);
  EXPECT_EQ(VerdictOf({Write(1, "1", 0, 10, kFailed), Read(2, V(), 20, 30)}), kYes);
  CheckResult r = Check({{Read(1, "ghost", 0, 10, kLost), Read(1, "ghost", 0, 10, kFailed)}});
  EXPECT_EQ(r.verdict, kYes);
  EXPECT_EQ(r.keys[0].ops, 0u);
}

TEST(Linearizability, KeysAreCheckedIndependently) {
  Operation y = Read(2, "from-x", 20, 30);
  y.key = "y";
  CheckResult r = Check({{Write(1, "from-x", 0, 10), y, Read(3, "from-x", 20, 30)}});
  ASSERT_EQ(r.keys.size(), 2u);
  EXPECT_EQ(r.keys[0].verdict, kYes);
  EXPECT_EQ(r.keys[1].verdict, kNo);
  EXPECT_EQ(r.verdict, kNo);
  EXPECT_THAT(r.ToString(), HasSubstr(R"(key "y")"));
  EXPECT_THAT(r.ToString(), ::testing::Not(HasSubstr(R"(key "x")")));
}

TEST(Linearizability, InvalidHistoriesAreRefused) {
  EXPECT_THAT(CheckLinearizability({{Read(1, V(), 10, 5)}}).error().message,
              HasSubstr("ops[0]: it completes before it is invoked"));
  Operation no_value = Write(1, "a", 0, 1);
  no_value.value.reset();
  EXPECT_THAT(CheckLinearizability({{no_value}}).error().message, HasSubstr("needs a value"));
  // An indeterminate operation has no completion: any time is accepted.
  EXPECT_TRUE(CheckLinearizability({{Write(1, "a", 10, 5, kLost)}}).ok());
}

// n writes all concurrent with a read of a value none wrote: every order of every subset of the
// writes is a distinct state of the search.
History Exponential(int n) {
  History h;
  for (int i = 0; i < n; ++i) h.ops.push_back(Write(i, std::to_string(i), 0, 100));
  h.ops.push_back(Read(n, "ghost", 50, 100));
  h.ops.push_back(Read(n, "0", 200, 300));
  return h;
}

TEST(Linearizability, ASearchOverItsBudgetIsUnknownNotPassed) {
  CheckResult r = Check(Exponential(18), /*max_steps=*/5000);
  EXPECT_EQ(r.verdict, Verdict::kUnknown);
  EXPECT_EQ(r.keys[0].steps, 5000u);
  EXPECT_THAT(r.ToString(), HasSubstr("unknown (budget exhausted after 5000 steps)"));
  EXPECT_EQ(Check(Exponential(6)).verdict, kNo);  // small enough to finish
}

TEST(Linearizability, JsonRoundTrip) {
  Operation y = Cas(4, V(), "c", false, 7, 9, kFailed);
  y.key = "y";
  History h{{Read(1, V(), 0, 1), Write(2, "a\"\\", 1, 2, kLost), Cas(3, "a", "b", true, 2, 3), y},
            {{"x", "init"}}};
  std::string text = ToJson(h);
  auto back = FromJson(text);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, h);
  EXPECT_THAT(text, HasSubstr(R"("kind":"cas","value":"b","expected":"a","succeeded":true)"));
  EXPECT_THAT(text, HasSubstr(R"("kind":"read","value":null)"));
}

TEST(Linearizability, MalformedJsonIsRefusedNamingTheProblem) {
  auto error = [](std::string_view text) {
    auto r = FromJson(text);
    return r.ok() ? std::string("accepted") : r.error().message;
  };
  const std::string op =
      R"({"client":1,"key":"x","kind":"write","value":"a","invoke":1,"complete":2,"outcome":"ok"})";
  EXPECT_EQ(error(R"({"ops":[)" + op + "]}"), "accepted");
  EXPECT_THAT(error("{"), HasSubstr("not JSON"));
  EXPECT_THAT(error("[]"), HasSubstr("not an object"));
  EXPECT_THAT(error(R"({"ops":{}})"), HasSubstr(R"("ops" should be an array)"));
  EXPECT_THAT(error(R"({"initial":{"x":1},"ops":[]})"), HasSubstr(R"(initial["x"] should be a)"));
  EXPECT_THAT(error(R"({"ops":[1]})"), HasSubstr("ops[0]: should be an object"));
  auto with = [&](std::string from, std::string to) {
    std::string s = op;
    s.replace(s.find(from), from.size(), to);
    return R"({"ops":[)" + op + "," + s + "]}";
  };
  EXPECT_THAT(error(with(R"("kind":"write")", R"("kind":"delete")")),
              HasSubstr(R"(ops[1]: field "kind" has an unknown value "delete")"));
  EXPECT_THAT(error(with(R"("invoke":1)", R"("invoke":"1")")),
              HasSubstr(R"(ops[1]: field "invoke" should be an integer, got "1")"));
  EXPECT_THAT(error(with(R"("outcome":"ok")", R"("outcom":"ok")")),
              HasSubstr(R"(ops[1]: field "outcome" is missing)"));
  EXPECT_THAT(error(with(R"("kind":"write")", R"("kind":"cas")")),
              HasSubstr(R"(ops[1]: field "expected" is missing)"));
  EXPECT_THAT(error(with(R"("complete":2)", R"("complete":0)")),
              HasSubstr("ops[1]: it completes before it is invoked"));
  EXPECT_THAT(error(with(R"("value":"a")", R"("value":null)")), HasSubstr("needs a value"));
}

// ---- Random histories from a real register ---------------------------------------------------

// Operations on a few keys, applied one by one to a map (the register model) at linearization
// points 10 apart, then given invoke and complete times around their point: the points are a
// linearization, so the history is linearizable whatever the overlaps. Values are unique.
History RandomHistory(std::mt19937& rng, int n) {
  auto pick = [&rng](int k) { return static_cast<int>(rng() % k); };
  History h;
  std::map<std::string, V> model;
  for (int i = 0; i < n; ++i) {
    std::string key = "k" + std::to_string(pick(3));
    V& now = model[key];
    Operation op{.client = pick(5), .key = key, .kind = static_cast<OpKind>(pick(3))};
    int64_t point = 10 * i;
    op.invoke = point - pick(40);
    op.complete = point + pick(40);
    if (op.kind == OpKind::kRead) {
      op.value = now;
    } else {
      op.value = "v" + std::to_string(i);
      if (op.kind == OpKind::kCas) op.expected = pick(2) ? now : "v" + std::to_string(pick(i + 1));
      bool applies = op.kind == OpKind::kWrite || op.expected == now;
      op.succeeded = op.kind == OpKind::kCas && applies;
      if (applies) now = op.value;
      // Some acknowledgements are lost; a lost operation that did not apply may also have never
      // reached the store (failed) or hung (indeterminate).
      if (pick(10) == 0) op.outcome = kLost;
      if (!applies && pick(3) == 0) op.outcome = pick(2) ? kLost : kFailed;
    }
    h.ops.push_back(op);
  }
  return h;
}

bool Writes(const Operation& op) {
  return op.outcome == kOk && (op.kind == OpKind::kWrite || op.succeeded);
}

// Makes some acknowledged read return a value that another definite write had overwritten before
// the read began: w2 completed before w3 was invoked, w3 completed before the read. False if this
// history has no such triple.
bool InjectStaleRead(History& h) {
  for (auto& read : h.ops) {
    if (read.kind != OpKind::kRead || read.outcome != kOk) continue;
    for (const auto& w3 : h.ops) {
      if (!Writes(w3) || w3.key != read.key || w3.complete >= read.invoke) continue;
      for (const auto& w2 : h.ops) {
        if (!Writes(w2) || w2.key != read.key || w2.complete >= w3.invoke) continue;
        read.value = w2.value;
        return true;
      }
    }
  }
  return false;
}

TEST(Linearizability, RandomRegisterHistoriesPassAndOneInjectedAnomalyIsCaught) {
  std::mt19937 rng(20240601);
  int stale_injected = 0;
  for (int round = 0; round < 300; ++round) {
    History h = RandomHistory(rng, 60);
    CheckResult r = Check(h);
    ASSERT_EQ(r.verdict, kYes) << "round " << round << ": " << r.ToString() << "\n" << ToJson(h);

    History ghost = h;
    std::vector<size_t> reads;
    for (size_t i = 0; i < h.ops.size(); ++i) {
      if (h.ops[i].kind == OpKind::kRead && h.ops[i].outcome == kOk) reads.push_back(i);
    }
    if (reads.empty()) continue;
    size_t victim = reads[rng() % reads.size()];
    ghost.ops[victim].value = "never-written";
    CheckResult bad = Check(ghost);
    ASSERT_EQ(bad.verdict, kNo) << "round " << round << "\n" << ToJson(ghost);
    EXPECT_THAT(bad.ToString(), HasSubstr("never-written"));

    History stale = h;
    if (!InjectStaleRead(stale)) continue;
    ++stale_injected;
    ASSERT_EQ(Check(stale).verdict, kNo) << "round " << round << "\n" << ToJson(stale);
  }
  EXPECT_GT(stale_injected, 100);  // the stale-read case was really exercised
}

}  // namespace
}  // namespace etcd_mesos::test
