// Fuzz target: binary protobuf bodies (application/x-protobuf) of the v1 calls and events.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mesos/codec.h"
#include "mesos/json_codec.h"
#include "mesos/v1.h"

namespace {
template <typename M>
void Try(std::string_view body) {
  M message;
  if (etcd_mesos::mesos_codec::Decode(body, etcd_mesos::mesos_codec::ContentType::kProtobuf,
                                      &message)
          .ok()) {
    (void)etcd_mesos::mesos_codec::MessageToJsonString(message);
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  Try<mesos::scheduler::Call>(body);
  Try<mesos::scheduler::Event>(body);
  Try<mesos::executor::Call>(body);
  Try<mesos::executor::Event>(body);
  return 0;
}
