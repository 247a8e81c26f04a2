// Durations as Mesos writes them in executor environments (stout: `5secs`, `15mins`, `2secs`,
// `100ms`) and as our flags accept them (`30s`, `5m`, `1h`, `250ms`, or a bare number of seconds).
//
// Threading: pure functions.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/result.h"

namespace etcd_mesos {

using Duration = std::chrono::nanoseconds;

// Parses both stout units (ns|us|ms|secs|mins|hrs|days|weeks) and short units (s|m|h|d).
// A bare number means seconds. Negative values are refused.
Result<Duration> ParseDuration(std::string_view text);

// The stout spelling, e.g. "5secs", as agents put it into MESOS_* variables.
std::string FormatStoutDuration(Duration d);

// A short human form for logs: "1.5s", "250ms", "3m0s".
std::string FormatDuration(Duration d);

// The shortest exact form our flags take back ("7d", not "168h"; "61m"), as --help and notes
// name a configured duration; FormatDuration when no unit divides it.
std::string ShowDuration(Duration d);

}  // namespace etcd_mesos
