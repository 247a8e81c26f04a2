// Fuzz target: a Mesos event stream as it arrives from the network, split into reads at
// arbitrary points, through the RecordIO decoder and both event decoders. Must never crash,
// hang, or allocate without bound.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mesos/codec.h"
#include "mesos/recordio.h"
#include "mesos/v1.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte chooses the read size, so the fuzzer explores record/read misalignment.
  size_t step = 1 + data[0] % 64;
  std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  etcd_mesos::recordio::Decoder decoder(1 << 20);
  for (size_t at = 0; at < stream.size(); at += step) {
    decoder.Feed(stream.substr(at, step));
    while (true) {
      auto record = decoder.Next();
      if (!record.ok() || !record->has_value()) break;
      mesos::scheduler::Event event;
      (void)etcd_mesos::mesos_codec::Decode(**record, etcd_mesos::mesos_codec::ContentType::kJson,
                                            &event);
      (void)etcd_mesos::mesos_codec::Decode(
          **record, etcd_mesos::mesos_codec::ContentType::kProtobuf, &event);
    }
  }
  return 0;
}
