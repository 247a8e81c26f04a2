#include "common/flags.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include <CLI/CLI.hpp>

namespace etcd_mesos {

namespace flags_internal {

Problem ParseBool(const std::string& text, bool* out) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "true" || t == "1" || t == "yes" || t == "on") {
    *out = true;
  } else if (t == "false" || t == "0" || t == "no" || t == "off") {
    *out = false;
  } else {
    return "is not a boolean (true or false)";
  }
  return {};
}

Problem ParseInt(const std::string& text, int64_t lo, int64_t hi, int64_t* out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || *out < lo ||
      *out > hi) {
    return fmt::format("is not an integer in {}..{}", lo, hi);
  }
  return {};
}

Problem ParseNumber(const std::string& text, double lo, double hi, double* out) {
  std::istringstream in(text);
  in >> *out;
  if (text.empty() || in.fail() || !in.eof() || !std::isfinite(*out) || *out < lo || *out > hi) {
    return fmt::format("is not a number in {}..{}", lo, hi);
  }
  return {};
}

Problem ParseDurationIn(const std::string& text, std::optional<Duration> lo,
                        std::optional<Duration> hi, Duration* out) {
  auto d = ParseDuration(text);
  if (!d.ok())
    return "is not a duration (a number of seconds, or with a unit: 250ms, 30s, 5m, 1h, 7d)";
  if (lo && *d < *lo && !hi) return "must be at least " + ShowDuration(*lo);
  if ((lo && *d < *lo) || (hi && *d > *hi)) {
    return fmt::format("is out of range {}..{}", ShowDuration(lo.value_or(Duration::zero())),
                       ShowDuration(*hi));
  }
  *out = *d;
  return {};
}

}  // namespace flags_internal

namespace {

std::vector<std::string> SplitNames(const std::string& names) {
  std::vector<std::string> out;
  std::stringstream in(names);
  for (std::string name; std::getline(in, name, ',');) out.push_back(name);
  return out;
}

// Go's flag package takes `-name=value`, and the original's users wrote that; CLI11 wants two
// dashes before a long name. "-v" and "-h" stay short flags.
std::string GoStyle(const std::string& a) {
  bool go = a.size() > 2 && a[0] == '-' && std::isalpha(static_cast<unsigned char>(a[1])) &&
            std::isalpha(static_cast<unsigned char>(a[2]));
  return go ? "-" + a : a;
}

}  // namespace

Problem OneOf(const std::string& value, const std::vector<std::string>& allowed) {
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return {};
  std::string list;
  for (size_t i = 0; i < allowed.size(); ++i) {
    list += (i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + allowed[i];
  }
  return "is not one of " + list;
}

Problem LogLevel(const std::string& value) {
  return OneOf(value, {"trace", "debug", "info", "warn", "error"});
}

Flag::~Flag() = default;

std::string Flag::origin() const {
  return env_.empty() ? name() : fmt::format("{} (from {})", name(), env_);
}

Error Flag::Bad(std::string_view what) const {
  return MakeError(ErrorCode::kInvalidArgument, "{}={}: {} (see --help)", origin(), text_, what);
}

void Flag::AddEnv(std::string name) {
  set_->Claim("the variable", name);
  envs_.push_back(std::move(name));
}

void Flag::AddExcludes(const Flag& other) { option_->excludes(other.option_); }

FlagSet::FlagSet(std::string program, std::string description)
    : app_(std::make_unique<CLI::App>(std::move(description), std::move(program))) {
  app_->set_help_flag("-h,--help", "Print this help and exit");
}

FlagSet::~FlagSet() = default;

void FlagSet::Claim(const std::string& what, const std::string& name) {
  auto [it, fresh] = claimed_.emplace(name, what);
  if (!fresh) {
    throw std::logic_error(
        fmt::format("{} {} is declared twice (as {} before)", what, name, it->second));
  }
}

void FlagSet::Register(std::unique_ptr<Flag> flag, const std::string& names, std::string help) {
  flag->names_ = SplitNames(names);
  for (const auto& name : flag->names_) Claim("the flag", name);
  flag->set_ = this;
  flag->help_ = std::move(help);
  flag->text_ = flag->DefaultText();
  // Every value reaches us as text, so that a bad one gets the same error from the command line
  // as from a variable. A boolean given bare is "true".
  std::string type = flag->TypeName();
  flag->option_ = type.empty() ? app_->add_flag(names, flag->cli_value_)
                               : app_->add_option(names, flag->cli_value_)->type_name(type);
  flags_.push_back(std::move(flag));
}

void FlagSet::Obsolete(std::string names, bool takes_value, std::string why) {
  auto split = SplitNames(names);
  for (const auto& name : split) Claim("the obsolete flag", name);
  obsolete_.push_back({std::move(split), takes_value, std::move(why)});
}

Result<FlagSet::Parsed> FlagSet::Parse(const std::vector<std::string>& args, const Env& env) {
  Parsed out;
  std::vector<std::string> cooked;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--") {
      cooked.insert(cooked.end(), args.begin() + static_cast<ptrdiff_t>(i), args.end());
      break;
    }
    std::string a = GoStyle(args[i]);
    std::string name = a.substr(0, a.find('='));
    auto hit = std::find_if(obsolete_.begin(), obsolete_.end(), [&](const ObsoleteFlag& o) {
      return std::find(o.names.begin(), o.names.end(), name) != o.names.end();
    });
    if (hit == obsolete_.end()) {
      cooked.push_back(std::move(a));
      continue;
    }
    if (hit->takes_value && a.find('=') == std::string::npos && i + 1 < args.size()) ++i;
    out.warnings.push_back(fmt::format("{} (the original's) is ignored: {}", name, hit->why));
  }

  for (auto& flag : flags_) {
    std::string help = flag->help_;
    for (size_t i = 0; i < flag->envs_.size(); ++i) {
      help += (i == 0 ? " [" : ", ") + flag->envs_[i] + (i + 1 == flag->envs_.size() ? "]" : "");
    }
    if (!flag->text_.empty()) help += " (default: " + flag->text_ + ")";
    flag->option_->description(help);
  }
  std::reverse(cooked.begin(), cooked.end());  // CLI11 takes the arguments reversed
  try {
    app_->parse(cooked);
  } catch (const CLI::CallForVersion& e) {
    out.exit = true;
    out.text = std::string(e.what()) + "\n";
    return out;
  } catch (const CLI::Success&) {
    out.exit = true;
    out.text = app_->help();
    return out;
  } catch (const CLI::ParseError& e) {
    return MakeError(ErrorCode::kInvalidArgument, "{} (see --help)", e.what());
  }

  for (auto& flag : flags_) {
    if (flag->option_->count() > 0) {
      flag->given_ = true;
      flag->text_ = flag->cli_value_;
    } else {
      for (const auto& name : flag->envs_) {
        if (auto it = env.find(name); it != env.end()) {
          flag->given_ = true;
          flag->env_ = name;
          flag->text_ = it->second;
          break;
        }
      }
    }
    if (flag->given_) {
      if (Problem p = flag->Take(flag->text_)) return flag->Bad(*p);
    }
    if (Problem p = flag->Check()) return flag->Bad(*p);
  }
  return out;
}

}  // namespace etcd_mesos
