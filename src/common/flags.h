// A program's command line and environment, each flag declared once and typed: its names, the
// environment variables that may set it, its destination (whose value at declaration is the
// default), its range and checks, its help. FlagSet sits on CLI11, which splits the command line,
// refuses unknown flags and missing values, and writes --help; the rest is ours, because CLI11 has
// one variable per option and errors that do not say where a bad value came from:
//
//   - Go-style single dashes work: -master=x is --master=x (the original Go etcd-mesos took them).
//   - A flag may be set by several variables, the first one set wins; the command line wins over
//     them all, and they over the default.
//   - Every bad value, whatever its type, is an error naming its source and the value:
//     "--cluster-size=x: is not an integer in 1..99" or
//     "--cluster-size (from CLUSTER_SIZE)=x: ...". Checks run on defaults too (they may derive a
//     parsed form of the value, e.g. an address, into another field).
//   - The original's flags with no use any more are accepted and dropped with a warning.
//   - Declaring a name or a variable twice is a programming error: std::logic_error at once.
//
// Durations take ParseDuration's syntax (a bare number is seconds; 250ms, 30s, 5m, 1h, 7d).
//
// Threading: a FlagSet, its flags and their destinations belong to the one thread that declares
// and parses them. The destinations must outlive Parse; a FlagSet is parsed once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "common/duration.h"
#include "common/result.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace etcd_mesos {

// What a check says: nothing for a good value, else what is wrong with it, worded to follow the
// flag and its value ("is not a Mesos role").
using Problem = std::optional<std::string>;

class FlagSet;

// One declared flag. After Parse it tells where its value came from, for errors that involve
// several flags (FlagSet cannot know those rules).
class Flag {
 public:
  virtual ~Flag();
  Flag(const Flag&) = delete;
  Flag& operator=(const Flag&) = delete;

  const std::string& name() const { return names_.front(); }  // the first name: "--role"
  bool given() const { return given_; }              // on the command line or by a variable
  const std::string& env() const { return env_; }    // the variable that set it, or ""
  const std::string& text() const { return text_; }  // the value as given, or the default
  std::string origin() const;                        // "--role", or "--role (from ROLE)"
  // kInvalidArgument: "--role=a/b: is not a Mesos role (see --help)".
  Error Bad(std::string_view what) const;

 protected:
  Flag() = default;
  void AddEnv(std::string name);
  void AddExcludes(const Flag& other);

 private:
  friend class FlagSet;
  virtual Problem Take(const std::string& text) = 0;  // a given value into the destination
  virtual Problem Check() const = 0;                  // the checks, on the destination
  virtual std::string DefaultText() const = 0;
  virtual const char* TypeName() const = 0;  // what --help shows after the name

  FlagSet* set_ = nullptr;
  CLI::Option* option_ = nullptr;
  std::vector<std::string> names_, envs_;
  std::string help_, cli_value_, text_, env_;
  bool given_ = false;
};

namespace flags_internal {
// The conversions behind TypedFlag, each answering what is wrong with the text.
Problem ParseBool(const std::string& text, bool* out);
Problem ParseInt(const std::string& text, int64_t lo, int64_t hi, int64_t* out);
Problem ParseNumber(const std::string& text, double lo, double hi, double* out);
Problem ParseDurationIn(const std::string& text, std::optional<Duration> lo,
                        std::optional<Duration> hi, Duration* out);
}  // namespace flags_internal

// A flag of type T: std::string, bool, an integer, a floating-point number or a std::chrono
// duration. The builder methods return the flag, so that a declaration is one statement.
template <typename T>
class TypedFlag final : public Flag {
  static constexpr bool kDuration = requires { typename T::period; };  // a std::chrono one
  static_assert(std::is_same_v<T, std::string> || std::is_arithmetic_v<T> || kDuration,
                "flags are strings, booleans, numbers or durations");

 public:
  explicit TypedFlag(T* dest) : dest_(dest) {}

  // A variable that sets the flag when the command line does not; several are tried in order.
  TypedFlag& Env(std::string name) {
    AddEnv(std::move(name));
    return *this;
  }
  // CLI11 refuses the two together.
  TypedFlag& Excludes(const Flag& other) {
    AddExcludes(other);
    return *this;
  }
  // Numbers and durations: the accepted values, bounds included.
  TypedFlag& Range(T lo, T hi) {
    static_assert(std::is_arithmetic_v<T> || kDuration, "a range needs a number or a duration");
    lo_ = lo;
    hi_ = hi;
    return *this;
  }
  TypedFlag& AtLeast(T lo) {
    static_assert(std::is_arithmetic_v<T> || kDuration, "a bound needs a number or a duration");
    lo_ = lo;
    return *this;
  }
  // A rule on the converted value (the default included), run in the order declared.
  TypedFlag& Check(std::function<Problem(const T&)> check) {
    checks_.push_back(std::move(check));
    return *this;
  }

 private:
  Problem Take(const std::string& text) override {
    namespace in = flags_internal;
    using Limits = std::numeric_limits<T>;
    if constexpr (std::is_same_v<T, std::string>) {
      *dest_ = text;
      return {};
    } else if constexpr (std::is_same_v<T, bool>) {
      return in::ParseBool(text, dest_);
    } else if constexpr (std::is_integral_v<T>) {
      int64_t v = 0;
      Problem p = in::ParseInt(text, lo_.value_or(Limits::min()), hi_.value_or(Limits::max()), &v);
      if (!p) *dest_ = static_cast<T>(v);
      return p;
    } else if constexpr (std::is_floating_point_v<T>) {
      double v = 0;
      Problem p =
          in::ParseNumber(text, lo_.value_or(Limits::lowest()), hi_.value_or(Limits::max()), &v);
      if (!p) *dest_ = static_cast<T>(v);
      return p;
    } else {
      auto ns = [](const std::optional<T>& b) -> std::optional<Duration> {
        if (!b) return std::nullopt;
        return std::chrono::duration_cast<Duration>(*b);
      };
      Duration d{};
      Problem p = in::ParseDurationIn(text, ns(lo_), ns(hi_), &d);
      if (!p) *dest_ = std::chrono::duration_cast<T>(d);
      return p;
    }
  }
  Problem Check() const override {
    for (const auto& check : checks_) {
      if (Problem p = check(*dest_)) return p;
    }
    return {};
  }
  std::string DefaultText() const override {
    if constexpr (std::is_same_v<T, std::string>) {
      return *dest_;
    } else if constexpr (std::is_same_v<T, bool>) {
      return *dest_ ? "true" : "false";
    } else if constexpr (kDuration) {
      return ShowDuration(std::chrono::duration_cast<Duration>(*dest_));
    } else {
      return fmt::format("{}", *dest_);
    }
  }

  const char* TypeName() const override {
    if constexpr (std::is_same_v<T, bool>) return "";  // --x alone is true; --x=false works too
    if constexpr (std::is_integral_v<T>) return "INT";
    if constexpr (std::is_floating_point_v<T>) return "NUMBER";
    if constexpr (kDuration) return "DURATION";
    return "TEXT";
  }

  T* dest_;
  std::optional<T> lo_, hi_;
  std::vector<std::function<Problem(const T&)>> checks_;
};

// Flag checks more than one program needs.
Problem OneOf(const std::string& value, const std::vector<std::string>& allowed);
Problem LogLevel(const std::string& value);  // trace, debug, info, warn or error

class FlagSet {
 public:
  using Env = std::map<std::string, std::string>;

  struct Parsed {
    bool exit = false;  // --help (or --version) was asked: print `text` and exit 0
    std::string text;
    std::vector<std::string> warnings;  // one for every obsolete flag given
  };

  // `description` opens --help.
  FlagSet(std::string program, std::string description);
  ~FlagSet();
  FlagSet(const FlagSet&) = delete;
  FlagSet& operator=(const FlagSet&) = delete;

  // `names`: "--cluster-size", or with aliases "--principal,--mesos-authentication-principal"
  // (the first is the flag's name in errors). *dest holds the default; Parse writes it.
  template <typename T>
  TypedFlag<T>& Add(std::string names, T* dest, std::string help) {
    auto flag = std::make_unique<TypedFlag<T>>(dest);
    TypedFlag<T>& ref = *flag;
    Register(std::move(flag), names, std::move(help));
    return ref;
  }

  // A flag the original took that has no use here: dropped from the command line (its value too,
  // the next argument unless written with '=', when `takes_value`), with the warning
  // "<name> (the original's) is ignored: <why>".
  void Obsolete(std::string names, bool takes_value, std::string why);

  // For what is not a flag (positional arguments, subcommands, --version).
  CLI::App& app() { return *app_; }

  // `args` without the program name. Arguments after "--" are left as they are.
  Result<Parsed> Parse(const std::vector<std::string>& args, const Env& env = {});

 private:
  friend class Flag;
  void Register(std::unique_ptr<Flag> flag, const std::string& names, std::string help);
  void Claim(const std::string& what, const std::string& name);  // throws on a second claim

  struct ObsoleteFlag {
    std::vector<std::string> names;
    bool takes_value;
    std::string why;
  };
  std::unique_ptr<CLI::App> app_;
  std::vector<std::unique_ptr<Flag>> flags_;
  std::vector<ObsoleteFlag> obsolete_;
  std::map<std::string, std::string> claimed_;  // name or variable -> who claimed it
};

}  // namespace etcd_mesos
