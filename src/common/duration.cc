#include "common/duration.h"

#include <charconv>
#include <cmath>
#include <utility>

namespace etcd_mesos {

Result<Duration> ParseDuration(std::string_view text) {
  size_t unit_at = 0;
  while (unit_at < text.size() &&
         ((text[unit_at] >= '0' && text[unit_at] <= '9') || text[unit_at] == '.')) {
    ++unit_at;
  }
  std::string_view number = text.substr(0, unit_at);
  std::string_view unit = text.substr(unit_at);
  double value = 0;
  auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (number.empty() || ec != std::errc() || ptr != number.data() + number.size() ||
      !std::isfinite(value)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "'{}' is not a duration (write e.g. 30s, 5m, 250ms or 5secs)", text);
  }
  static const std::pair<std::string_view, double> kUnits[] = {
      {"", 1e9},         {"ns", 1},       {"us", 1e3},         {"ms", 1e6},    {"s", 1e9},
      {"sec", 1e9},      {"secs", 1e9},   {"m", 60e9},         {"min", 60e9},  {"mins", 60e9},
      {"h", 3600e9},     {"hr", 3600e9},  {"hrs", 3600e9},     {"d", 86400e9}, {"day", 86400e9},
      {"days", 86400e9}, {"w", 604800e9}, {"weeks", 604800e9},
  };
  for (const auto& [name, scale] : kUnits) {
    if (unit == name) {
      double ns = value * scale;
      if (ns > 9.2e18) {
        return MakeError(ErrorCode::kInvalidArgument, "duration '{}' is too long", text);
      }
      return Duration(static_cast<int64_t>(ns));
    }
  }
  return MakeError(ErrorCode::kInvalidArgument, "'{}': unknown duration unit '{}'", text, unit);
}

std::string FormatStoutDuration(Duration d) {
  int64_t ns = d.count();
  static const std::pair<int64_t, std::string_view> kUnits[] = {
      {604800'000'000'000, "weeks"},
      {86400'000'000'000, "days"},
      {3600'000'000'000, "hrs"},
      {60'000'000'000, "mins"},
      {1'000'000'000, "secs"},
      {1'000'000, "ms"},
      {1'000, "us"},
  };
  for (const auto& [scale, name] : kUnits) {
    if (ns >= scale && ns % scale == 0) return fmt::format("{}{}", ns / scale, name);
  }
  for (const auto& [scale, name] : kUnits) {
    if (ns >= scale) return fmt::format("{}{}", static_cast<double>(ns) / scale, name);
  }
  return fmt::format("{}ns", ns);
}

std::string FormatDuration(Duration d) {
  int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms < 60'000) return fmt::format("{:.1f}s", ms / 1000.0);
  return fmt::format("{}m{}s", ms / 60'000, (ms % 60'000) / 1000);
}

std::string ShowDuration(Duration d) {
  using std::chrono::duration_cast;
  static const std::pair<Duration, const char*> kUnits[] = {
      {std::chrono::hours(24), "d"},        {std::chrono::hours(1), "h"},
      {std::chrono::minutes(1), "m"},       {std::chrono::seconds(1), "s"},
      {std::chrono::milliseconds(1), "ms"},
  };
  if (d == Duration::zero()) return "0s";
  for (const auto& [unit, name] : kUnits) {
    if (d % unit == Duration::zero()) return fmt::format("{}{}", d / unit, name);
  }
  return FormatDuration(d);
}

}  // namespace etcd_mesos
