// Logging: spdlog, one default logger per process, lines that say what happened and why.
//
// Threading: spdlog's default logger is thread-safe; SetUpLogging is called once from main().
#pragma once

#include <string_view>

#include <spdlog/spdlog.h>

#include "common/result.h"

namespace etcd_mesos {

// Configures the default logger: timestamped lines on stderr, tagged with the process name.
// `level` is one of trace, debug, info, warn, error; anything else is an error.
Status SetUpLogging(std::string_view process, std::string_view level);

}  // namespace etcd_mesos
