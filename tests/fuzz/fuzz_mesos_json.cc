// Fuzz target: Mesos JSON bodies (calls a master or agent receives, events a framework or
// executor receives) through our stout-compatible JSON mapping, and back out.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mesos/json_codec.h"
#include "mesos/v1.h"

namespace {
template <typename M>
void Try(std::string_view text) {
  M message;
  if (etcd_mesos::mesos_codec::MessageFromJsonString(text, &message).ok()) {
    // Whatever we accept we must be able to write and read again.
    M again;
    if (!etcd_mesos::mesos_codec::MessageFromJsonString(
             etcd_mesos::mesos_codec::MessageToJsonString(message), &again)
             .ok()) {
      __builtin_trap();
    }
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Try<mesos::scheduler::Call>(text);
  Try<mesos::scheduler::Event>(text);
  Try<mesos::executor::Call>(text);
  Try<mesos::executor::Event>(text);
  Try<mesos::MasterInfo>(text);
  return 0;
}
