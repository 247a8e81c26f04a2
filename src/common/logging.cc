#include "common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace etcd_mesos {

Status SetUpLogging(std::string_view process, std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--log-level '{}' is not one of trace, debug, info, warn, error", level);
  }
  auto logger = spdlog::stderr_color_mt(std::string(process));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ %n: %v");
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
  return OkStatus();
}

}  // namespace etcd_mesos
