// A linearizability checker for histories of registers: reads, writes and compare-and-sets on
// independent keys, as recorded by concurrent clients of a store (LinearizableWorkload).
//
// Each key is checked on its own as a linearizable register (P-compositionality: a history of
// independent objects is linearizable iff each object's is), by the Wing & Gong search with
// Lowe's just-in-time linearization and memoization, as Knossos and Porcupine do: depth-first
// over the operations that may be linearized next (those invoked before the earliest pending
// completion), caching (linearized set, register value) to prune, backtracking on failure.
//
// Outcomes. kOk operations took effect between their invoke and complete times. kFailed ones
// definitely did not (etcd refused them before applying) and are ignored. kIndeterminate ones
// (timed out, connection lost) may have taken effect at any time after their invocation, or
// never: their complete time is ignored and taken as infinity. An indeterminate read constrains
// nothing and is dropped. A compare-and-set that is kOk with succeeded = false is a real
// operation: it saw a value other than `expected`.
//
// Times are integers on one monotonic clock (the workload records steady_clock nanoseconds).
// Two operations are ordered only if one completed strictly before the other was invoked.
//
// The search is bounded (CheckOptions::max_steps per key); a key whose search runs out is
// reported kUnknown, never silently passed.
//
// Threading: pure functions on plain values; no shared state.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace etcd_mesos::test {

enum class OpKind { kRead, kWrite, kCas };
enum class Outcome { kOk, kFailed, kIndeterminate };

struct Operation {
  int client = 0;
  std::string key;
  OpKind kind = OpKind::kRead;
  // kWrite and kCas: the value written. kRead: the value observed (nullopt: the key was absent).
  std::optional<std::string> value;
  // kCas: the value compared against (nullopt: the key must be absent).
  std::optional<std::string> expected;
  bool succeeded = false;  // kCas with kOk: whether the compare held and the value was written
  int64_t invoke = 0;
  int64_t complete = 0;  // ignored for kIndeterminate
  Outcome outcome = Outcome::kOk;

  bool operator==(const Operation&) const = default;
};

struct History {
  std::vector<Operation> ops;
  // A key's value before the history; keys not listed start absent.
  std::map<std::string, std::string> initial;

  bool operator==(const History&) const = default;
};

enum class Verdict { kLinearizable, kNotLinearizable, kUnknown };
std::string_view VerdictName(Verdict verdict);

struct CheckOptions {
  // Per key: linearization attempts before the key is declared kUnknown. Each step may keep one
  // cache entry of about ops/8 + 40 bytes: 2M steps on a key of 1000 operations is ~330 MB.
  uint64_t max_steps = 2'000'000;
};

struct KeyResult {
  std::string key;
  Verdict verdict = Verdict::kLinearizable;
  size_t ops = 0;  // the operations checked (failed ones and indeterminate reads excluded)
  uint64_t steps = 0;
  // When kNotLinearizable: the longest linearizable prefix found (indices into History::ops, in
  // linearization order) and the operation that could not follow it.
  std::vector<size_t> longest_prefix;
  std::optional<size_t> stuck_op;
  std::string explanation;  // empty when kLinearizable
};

struct CheckResult {
  Verdict verdict = Verdict::kLinearizable;  // kNotLinearizable if any key is, else kUnknown if
                                             // any key is, else kLinearizable
  std::vector<KeyResult> keys;               // in key order
  uint64_t steps = 0;

  bool linearizable() const { return verdict == Verdict::kLinearizable; }
  // One line per key that is not linearizable or unknown, or "linearizable (N keys)".
  std::string ToString() const;
};

// kInvalidArgument for a history that is not one: an empty key, a completed operation that
// completes before it is invoked, a write without a value, a read with an expected value.
Status Validate(const History& history);

// Checks every key; an invalid history is an error.
Result<CheckResult> CheckLinearizability(const History& history, const CheckOptions& options = {});

// One operation in words, for explanations: `#12 client 3 cas(k, "a" -> "b") = true [10, 25]`.
std::string Describe(const Operation& op, size_t index);

// JSON for replay: {"initial":{key:value}, "ops":[{"client","key","kind","value","expected",
// "succeeded","invoke","complete","outcome"}]}, one operation per line. Absent values are null.
// Keys and values must be UTF-8 (the workload's are ASCII).
std::string ToJson(const History& history);
// kInvalidArgument naming the problem (not JSON, "ops[3]: kind should be ...") on bad input.
Result<History> FromJson(std::string_view text);

}  // namespace etcd_mesos::test
