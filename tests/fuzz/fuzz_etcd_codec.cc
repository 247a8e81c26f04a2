// Fuzz target: etcd JSON gateway responses and snapshot streams as they arrive from the network.
// The first byte picks the decoder (and, for the snapshot stream, the read size, so that messages
// split across reads at every point). Must never crash, hang, or allocate without bound.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "etcd/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace etcd_mesos::etcd;  // NOLINT: a fuzz entry point, not library code
  if (size == 0) return 0;
  uint8_t selector = data[0];
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (selector % 9) {
    case 0:
      (void)DecodeMemberList(text);
      break;
    case 1:
      (void)DecodeMemberAdd(text);
      break;
    case 2:
      (void)DecodeStatus(text);
      break;
    case 3:
      (void)DecodeHealth(selector & 0x10 ? 503 : 200, text);
      break;
    case 4:
      (void)DecodeAlarms(text);
      break;
    case 5:
      (void)DecodeRange(text);
      (void)DecodePut(text);
      break;
    case 6:
      (void)DecodeError(selector & 0x10 ? 412 : 503, text);
      (void)DecodeHeaderOnly(text);
      break;
    default: {
      size_t step = 1 + selector / 9;
      SnapshotStreamDecoder decoder([](std::string_view) { return etcd_mesos::OkStatus(); },
                                    1 << 16);
      for (size_t at = 0; at < text.size(); at += step) {
        if (!decoder.Feed(text.substr(at, step)).ok()) return 0;
      }
      (void)decoder.Finish();
    }
  }
  return 0;
}
