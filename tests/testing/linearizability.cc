#include "testing/linearizability.h"

#include <algorithm>
#include <random>
#include <set>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace etcd_mesos::test {
namespace {

using json = nlohmann::json;

constexpr int kAbsent = -1;  // the register's value id when the key does not exist
// The value of any write that nothing in the history saw: no completed read returned it and no
// CAS compared against it, so no operation can tell one such value from another.
constexpr int kUnseen = -2;

// One operation of one key, with its values interned to small integers for fast comparison.
struct KeyOp {
  size_t index = 0;  // into History::ops
  const Operation* op = nullptr;
  int value = kAbsent;       // written, or read
  int expected = kAbsent;    // kCas
  bool must_happen = false;  // kOk: it took effect before it completed
  // Indeterminate operations that write kUnseen from the same precondition are interchangeable:
  // the search only ever linearizes the earliest one of a class not yet linearized. -1: none.
  int twin_class = -1;
};

// The register's transition: false when `op` cannot happen in `state`. An indeterminate CAS
// whose compare fails would change nothing, exactly like one that never happened (which is
// always allowed), so it is refused here to keep the search small.
bool Step(const KeyOp& k, int state, int* next) {
  *next = state;
  switch (k.op->kind) {
    case OpKind::kRead:
      return state == k.value;
    case OpKind::kWrite:
      *next = k.value;
      return true;
    case OpKind::kCas:
      if (!k.must_happen || k.op->succeeded) {
        if (state != k.expected) return false;
        *next = k.value;
        return true;
      }
      return state != k.expected;  // an acknowledged CAS that saw another value
  }
  return false;
}

struct CacheKey {
  std::vector<uint64_t> bits;
  int state;
  uint64_t hash;
  bool operator==(const CacheKey& o) const { return state == o.state && bits == o.bits; }
};
struct CacheHash {
  size_t operator()(const CacheKey& k) const { return k.hash; }
};

// The search of one key's history: Lowe's just-in-time linearization over a doubly linked list
// of call and return events, with Porcupine's lift/unlift (dancing links) and a cache of
// (linearized set, state) pairs already explored.
class KeySearch {
 public:
  KeySearch(std::vector<KeyOp> ops, int initial, uint64_t max_steps)
      : ops_(std::move(ops)), state_(initial), max_steps_(max_steps) {
    BuildEvents();
    bits_.assign((ops_.size() + 63) / 64, 0);
    std::mt19937_64 rng(ops_.size());
    for (size_t i = 0; i < ops_.size(); ++i) zobrist_.push_back(rng());
    for (const auto& k : ops_) required_ += k.must_happen ? 1 : 0;
    BuildTwins();
  }

  Verdict Run();
  uint64_t steps() const { return steps_; }
  const std::vector<size_t>& best_prefix() const { return best_prefix_; }
  std::optional<size_t> stuck() const { return stuck_; }
  int best_state() const { return best_state_; }

 private:
  struct Event {
    int64_t time;
    bool is_return;
    size_t op;
    size_t match = 0;  // a call's return event, if it has one
  };

  void BuildEvents();
  void BuildTwins();
  bool IsNextTwin(size_t op) const;
  void Lift(size_t call);
  void Unlift(size_t call);
  bool TryLinearize(size_t call);
  bool Backtrack(size_t at_return, size_t* entry);
  void Toggle(size_t op);

  std::vector<KeyOp> ops_;
  // Per twin class: its operations in call order, and how many of them are linearized (always
  // the first ones: a class's members are linearized in order and undone in reverse).
  std::vector<std::vector<size_t>> twins_;
  std::vector<size_t> twins_used_;
  std::vector<Event> events_;
  std::vector<size_t> next_, prev_;  // index events_.size() is the head of the circular list
  std::vector<uint64_t> bits_;
  std::vector<uint64_t> zobrist_;
  uint64_t hash_ = 0;
  int state_;
  size_t required_ = 0, linearized_required_ = 0;
  uint64_t steps_ = 0, max_steps_;
  std::unordered_set<CacheKey, CacheHash> cache_;
  std::vector<std::pair<size_t, int>> stack_;  // linearized call events and the state before
  std::vector<size_t> best_prefix_;
  std::optional<size_t> stuck_;
  int best_state_ = kAbsent;
};

void KeySearch::BuildEvents() {
  for (size_t i = 0; i < ops_.size(); ++i) {
    events_.push_back({ops_[i].op->invoke, false, i});
    if (ops_[i].must_happen) events_.push_back({ops_[i].op->complete, true, i});
  }
  // Calls before returns at equal times: operations that touch are concurrent, not ordered.
  std::sort(events_.begin(), events_.end(), [](const Event& a, const Event& b) {
    if (a.time != b.time) return a.time < b.time;
    if (a.is_return != b.is_return) return !a.is_return;
    return a.op < b.op;
  });
  std::vector<size_t> call_of(ops_.size());
  for (size_t e = 0; e < events_.size(); ++e) {
    if (!events_[e].is_return) call_of[events_[e].op] = e;
    if (events_[e].is_return) events_[call_of[events_[e].op]].match = e;
  }
  // A circular list: head -> events_[0] -> ... -> events_[n-1] -> head.
  size_t n = events_.size() + 1;
  next_.resize(n);
  prev_.resize(n);
  for (size_t e = 0; e < n; ++e) {
    next_[e] = (e + 1) % n;
    prev_[e] = (e + n - 1) % n;
  }
}

void KeySearch::BuildTwins() {
  for (const auto& e : events_) {
    int c = ops_[e.op].twin_class;
    if (c < 0 || e.is_return) continue;
    if (twins_.size() <= static_cast<size_t>(c)) twins_.resize(c + 1);
    twins_[c].push_back(e.op);
  }
  twins_used_.assign(twins_.size(), 0);
}

// Any member of a class could take this place with the same effect, and the earliest one not
// yet used is invoked whenever any is: trying only it loses no linearization.
bool KeySearch::IsNextTwin(size_t op) const {
  int c = ops_[op].twin_class;
  return c < 0 || twins_[c][twins_used_[c]] == op;
}

void KeySearch::Lift(size_t call) {
  auto unlink = [this](size_t e) {
    next_[prev_[e]] = next_[e];
    prev_[next_[e]] = prev_[e];
  };
  unlink(call);
  if (ops_[events_[call].op].must_happen) unlink(events_[call].match);
}

void KeySearch::Unlift(size_t call) {
  // The reverse of Lift, in the reverse order: each event's own links are still intact.
  auto relink = [this](size_t e) { next_[prev_[e]] = prev_[next_[e]] = e; };
  if (ops_[events_[call].op].must_happen) relink(events_[call].match);
  relink(call);
}

void KeySearch::Toggle(size_t op) {
  bits_[op / 64] ^= uint64_t{1} << (op % 64);
  hash_ ^= zobrist_[op];
  if (!ops_[op].must_happen) return;
  if (bits_[op / 64] >> (op % 64) & 1) {
    ++linearized_required_;
  } else {
    --linearized_required_;
  }
}

// Linearizes the call's operation now if the register allows it and the resulting
// (set, state) has not been explored already.
bool KeySearch::TryLinearize(size_t call) {
  ++steps_;
  size_t op = events_[call].op;
  int next = kAbsent;
  if (!IsNextTwin(op) || !Step(ops_[op], state_, &next)) return false;
  // An indeterminate operation that would change nothing is the same as one that never
  // happened, which is always allowed and leaves it free for later.
  if (!ops_[op].must_happen && next == state_) return false;
  Toggle(op);
  CacheKey key{bits_, next, hash_ ^ (static_cast<uint64_t>(next) * 0x9e3779b97f4a7c15ull)};
  if (!cache_.insert(std::move(key)).second) {
    Toggle(op);
    return false;
  }
  stack_.emplace_back(call, state_);
  state_ = next;
  if (ops_[op].twin_class >= 0) ++twins_used_[ops_[op].twin_class];
  Lift(call);
  return true;
}

// Reached the return of an operation not yet linearized: undo the latest choice. Records the
// deepest point reached, for the explanation. False when there is nothing left to undo.
bool KeySearch::Backtrack(size_t at_return, size_t* entry) {
  if (!stuck_ || stack_.size() > best_prefix_.size()) {
    best_prefix_.clear();
    for (const auto& [call, state] : stack_) best_prefix_.push_back(ops_[events_[call].op].index);
    stuck_ = ops_[events_[at_return].op].index;
    best_state_ = state_;
  }
  if (stack_.empty()) return false;
  auto [call, state] = stack_.back();
  stack_.pop_back();
  state_ = state;
  Toggle(events_[call].op);
  if (int c = ops_[events_[call].op].twin_class; c >= 0) --twins_used_[c];
  Unlift(call);
  *entry = next_[call];
  return true;
}

Verdict KeySearch::Run() {
  const size_t head = events_.size();
  size_t entry = next_[head];
  while (linearized_required_ < required_) {
    if (steps_ >= max_steps_) return Verdict::kUnknown;
    if (entry != head && !events_[entry].is_return) {
      entry = TryLinearize(entry) ? next_[head] : next_[entry];
      continue;
    }
    // A return: no pending operation can be linearized before this one completed. (The end of
    // the list cannot come first: an operation that must happen is pending, and its return is
    // still in the list after every call the walk passed.)
    if (entry == head || !Backtrack(entry, &entry)) return Verdict::kNotLinearizable;
  }
  return Verdict::kLinearizable;
}

std::string Quoted(const std::optional<std::string>& v) {
  return v ? fmt::format("\"{}\"", *v) : "absent";
}

int Intern(std::map<std::string, int>& ids, const std::optional<std::string>& v) {
  if (!v) return kAbsent;
  return ids.emplace(*v, static_cast<int>(ids.size())).first->second;
}

std::string Explain(const History& h, const std::string& key, size_t checked,
                    const KeySearch& search, const std::map<std::string, int>& ids) {
  std::optional<std::string> state;
  for (const auto& [value, id] : ids) {
    if (id == search.best_state()) state = value;
  }
  const auto& prefix = search.best_prefix();
  std::optional<size_t> stuck = search.stuck();  // always set when the search failed
  std::string out = fmt::format(
      "key \"{}\": not linearizable: {} cannot take effect before it completed; the longest "
      "linearizable prefix has {} of {} operations and leaves the register {}",
      key, stuck ? Describe(h.ops[*stuck], *stuck) : "an operation", prefix.size(), checked,
      state                            ? "holding " + Quoted(state)
      : search.best_state() == kUnseen ? "holding a value no operation saw"
                                       : "absent");
  size_t from = prefix.size() > 5 ? prefix.size() - 5 : 0;
  if (!prefix.empty()) out += "; it ends with:";
  for (size_t i = from; i < prefix.size(); ++i) out += " " + Describe(h.ops[prefix[i]], prefix[i]);
  return out;
}

// An indeterminate write or CAS whose value no completed read returned and no CAS (completed or
// not: an indeterminate one may have needed it) compared against.
std::vector<bool> Unobserved(const std::vector<KeyOp>& ops) {
  std::set<int> seen;
  for (const auto& k : ops) {
    if (k.op->kind == OpKind::kRead) seen.insert(k.value);  // only completed reads are here
    if (k.op->kind == OpKind::kCas) seen.insert(k.expected);
  }
  std::vector<bool> out;
  for (const auto& k : ops) out.push_back(!k.must_happen && !seen.count(k.value));
  return out;
}

KeyResult CheckKey(const History& h, const std::string& key, const std::vector<size_t>& indices,
                   const CheckOptions& options) {
  std::map<std::string, int> ids;
  auto initial = h.initial.find(key);
  int start = initial == h.initial.end() ? kAbsent : Intern(ids, initial->second);
  std::vector<KeyOp> ops;
  for (size_t i : indices) {
    const Operation& op = h.ops[i];
    if (op.outcome == Outcome::kFailed) continue;
    if (op.outcome == Outcome::kIndeterminate && op.kind == OpKind::kRead) continue;
    ops.push_back(
        {i, &op, Intern(ids, op.value), Intern(ids, op.expected), op.outcome == Outcome::kOk});
  }
  KeyResult result{.key = key, .ops = ops.size()};
  // Each indeterminate operation may take effect at any time after its call, or never: a few
  // dozen of them (a majority lost mid-run) would multiply the search by every subset of them.
  // Those that left no trace differ only in when they were called, so they become twins.
  auto unobserved = Unobserved(ops);
  std::map<int, int> cas_class;  // expected value -> twin class (class 0: the writes)
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!unobserved[i]) continue;
    ops[i].value = kUnseen;
    ops[i].twin_class =
        ops[i].op->kind == OpKind::kWrite
            ? 0
            : cas_class.emplace(ops[i].expected, cas_class.size() + 1).first->second;
  }
  KeySearch search(std::move(ops), start, options.max_steps);
  result.verdict = search.Run();
  result.steps = search.steps();
  if (result.verdict == Verdict::kUnknown) {
    result.explanation =
        fmt::format("key \"{}\": unknown (budget exhausted after {} steps)", key, result.steps);
  } else if (result.verdict == Verdict::kNotLinearizable) {
    result.longest_prefix = search.best_prefix();
    result.stuck_op = search.stuck();
    result.explanation = Explain(h, key, result.ops, search, ids);
  }
  return result;
}

// ---- JSON ------------------------------------------------------------------------------------

std::string_view KindName(OpKind kind) {
  switch (kind) {
    case OpKind::kRead:
      return "read";
    case OpKind::kWrite:
      return "write";
    case OpKind::kCas:
      return "cas";
  }
  return "?";
}

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kIndeterminate:
      return "indeterminate";
  }
  return "?";
}

// Ordered: the fields of a replay file read in the order of the struct.
using ordered_json = nlohmann::ordered_json;

ordered_json OptionalJson(const std::optional<std::string>& v) {
  return v ? ordered_json(*v) : ordered_json(nullptr);
}

ordered_json OpToJson(const Operation& op) {
  ordered_json j = {{"client", op.client},
                    {"key", op.key},
                    {"kind", KindName(op.kind)},
                    {"value", OptionalJson(op.value)}};
  if (op.kind == OpKind::kCas) {
    j["expected"] = OptionalJson(op.expected);
    j["succeeded"] = op.succeeded;
  }
  j["invoke"] = op.invoke;
  j["complete"] = op.complete;
  j["outcome"] = OutcomeName(op.outcome);
  return j;
}

// Reads one operation; the first problem is returned, named with `where`.
class OpReader {
 public:
  OpReader(const json& j, std::string where) : j_(j), where_(std::move(where)) {}

  Result<Operation> Read() {
    if (!j_.is_object()) return Fail("should be an object");
    Operation op;
    op.client = static_cast<int>(Integer("client"));
    op.key = String("key");
    op.kind = Enum<OpKind>(
        "kind", {{"read", OpKind::kRead}, {"write", OpKind::kWrite}, {"cas", OpKind::kCas}});
    op.outcome = Enum<Outcome>("outcome", {{"ok", Outcome::kOk},
                                           {"failed", Outcome::kFailed},
                                           {"indeterminate", Outcome::kIndeterminate}});
    op.value = Nullable("value");
    op.invoke = Integer("invoke");
    op.complete = Integer("complete");
    if (op.kind == OpKind::kCas && !error_) {
      op.expected = Nullable("expected");
      const json& succeeded = Field("succeeded", &json::is_boolean, "a boolean");
      op.succeeded = !error_ && succeeded.get<bool>();
    }
    if (error_) return *error_;
    return op;
  }

 private:
  Error Fail(std::string_view what) {
    if (!error_) error_ = MakeError(ErrorCode::kInvalidArgument, "{}: {}", where_, what);
    return *error_;
  }
  // The field if it is present and of the right type; null (and an error) otherwise.
  const json& Field(const char* name, bool (json::*is)() const noexcept, const char* type) {
    static const json kNull;
    if (error_) return kNull;
    auto it = j_.find(name);
    if (it == j_.end()) {
      Fail(fmt::format("field \"{}\" is missing", name));
    } else if (!((*it).*is)()) {
      Fail(fmt::format("field \"{}\" should be {}, got {}", name, type, it->dump()));
    }
    return error_ ? kNull : *it;
  }
  int64_t Integer(const char* name) {
    const json& v = Field(name, &json::is_number_integer, "an integer");
    return error_ ? 0 : v.get<int64_t>();
  }
  std::string String(const char* name) {
    const json& v = Field(name, &json::is_string, "a string");
    return error_ ? "" : v.get<std::string>();
  }
  std::optional<std::string> Nullable(const char* name) {
    if (!error_ && j_.contains(name) && j_[name].is_null()) return std::nullopt;
    const json& v = Field(name, &json::is_string, "a string or null");
    if (error_) return std::nullopt;
    return v.get<std::string>();
  }
  template <typename E>
  E Enum(const char* name, std::initializer_list<std::pair<const char*, E>> names) {
    std::string text = String(name);
    for (const auto& [n, e] : names) {
      if (text == n) return e;
    }
    if (!error_) Fail(fmt::format("field \"{}\" has an unknown value \"{}\"", name, text));
    return names.begin()->second;
  }

  const json& j_;
  std::string where_;
  std::optional<Error> error_;
};

}  // namespace

std::string_view VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kLinearizable:
      return "linearizable";
    case Verdict::kNotLinearizable:
      return "not linearizable";
    case Verdict::kUnknown:
      return "unknown (budget exhausted)";
  }
  return "?";
}

std::string Describe(const Operation& op, size_t index) {
  std::string what;
  switch (op.kind) {
    case OpKind::kRead:
      what = fmt::format("read({}) -> {}", op.key, Quoted(op.value));
      break;
    case OpKind::kWrite:
      what = fmt::format("write({}, {})", op.key, Quoted(op.value));
      break;
    case OpKind::kCas:
      what = fmt::format("cas({}, {} -> {}) -> {}", op.key, Quoted(op.expected), Quoted(op.value),
                         op.succeeded);
      break;
  }
  if (op.outcome == Outcome::kIndeterminate) {
    return fmt::format("#{} client {} {} indeterminate [{}, inf)", index, op.client, what,
                       op.invoke);
  }
  return fmt::format("#{} client {} {}{} [{}, {}]", index, op.client, what,
                     op.outcome == Outcome::kFailed ? " failed" : "", op.invoke, op.complete);
}

std::string CheckResult::ToString() const {
  std::string out;
  for (const auto& k : keys) {
    if (k.verdict != Verdict::kLinearizable) out += (out.empty() ? "" : "\n") + k.explanation;
  }
  if (!out.empty()) return out;
  size_t ops = 0;
  for (const auto& k : keys) ops += k.ops;
  return fmt::format("linearizable ({} keys, {} operations checked)", keys.size(), ops);
}

Status Validate(const History& h) {
  for (size_t i = 0; i < h.ops.size(); ++i) {
    const Operation& op = h.ops[i];
    auto fail = [&](std::string_view what) {
      return MakeError(ErrorCode::kInvalidArgument, "ops[{}]: {}: {}", i, what, Describe(op, i));
    };
    if (op.key.empty()) return fail("the key is empty");
    if (op.outcome != Outcome::kIndeterminate && op.complete < op.invoke) {
      return fail("it completes before it is invoked");
    }
    if (op.kind != OpKind::kRead && !op.value) return fail("a write or cas needs a value");
    if (op.kind != OpKind::kCas && op.expected) return fail("only a cas has an expected value");
  }
  return OkStatus();
}

Result<CheckResult> CheckLinearizability(const History& history, const CheckOptions& options) {
  if (Status valid = Validate(history); !valid.ok()) return valid.error();
  std::map<std::string, std::vector<size_t>> by_key;
  for (size_t i = 0; i < history.ops.size(); ++i) by_key[history.ops[i].key].push_back(i);
  CheckResult result;
  bool unknown = false;
  for (const auto& [key, indices] : by_key) {
    result.keys.push_back(CheckKey(history, key, indices, options));
    result.steps += result.keys.back().steps;
    unknown |= result.keys.back().verdict == Verdict::kUnknown;
    if (result.keys.back().verdict == Verdict::kNotLinearizable) {
      result.verdict = Verdict::kNotLinearizable;
    }
  }
  if (unknown && result.verdict == Verdict::kLinearizable) result.verdict = Verdict::kUnknown;
  return result;
}

std::string ToJson(const History& history) {
  // Never throws: bytes that are not UTF-8 are replaced (the header asks for UTF-8).
  auto dump = [](const ordered_json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
  };
  std::string out = "{\"initial\": " + dump(ordered_json(history.initial)) + ",\n \"ops\": [";
  for (size_t i = 0; i < history.ops.size(); ++i) {
    out += (i == 0 ? "\n  " : ",\n  ") + dump(OpToJson(history.ops[i]));
  }
  return out + "\n]}\n";
}

Result<History> FromJson(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return MakeError(ErrorCode::kInvalidArgument, "history: not JSON");
  if (!j.is_object()) return MakeError(ErrorCode::kInvalidArgument, "history: not an object");
  History h;
  if (auto initial = j.find("initial"); initial != j.end()) {
    if (!initial->is_object()) {
      return MakeError(ErrorCode::kInvalidArgument, "history: \"initial\" should be an object");
    }
    for (const auto& [key, value] : initial->items()) {
      if (!value.is_string()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "history: initial[\"{}\"] should be a string, got {}", key, value.dump());
      }
      h.initial[key] = value.get<std::string>();
    }
  }
  auto ops = j.find("ops");
  if (ops == j.end() || !ops->is_array()) {
    return MakeError(ErrorCode::kInvalidArgument, "history: \"ops\" should be an array");
  }
  for (size_t i = 0; i < ops->size(); ++i) {
    auto op = OpReader((*ops)[i], fmt::format("history: ops[{}]", i)).Read();
    if (!op.ok()) return op.error();
    h.ops.push_back(std::move(*op));
  }
  if (Status valid = Validate(h); !valid.ok()) return valid.error().Context("history");
  return h;
}

}  // namespace etcd_mesos::test
