// RecordIO, the framing of Mesos event streams: each record is `<decimal length>\n<bytes>`.
// HTTP chunk boundaries are unrelated to record boundaries, so the decoder buffers: feed it
// whatever arrived, then take whole records out.
//
// Threading: an encoder is a pure function; a decoder is owned by one stream reader.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace etcd_mesos::recordio {

std::string Encode(std::string_view record);

class Decoder {
 public:
  // Records longer than `max_record_bytes` are an error (a peer that claims 2^60 bytes must not
  // make us allocate them).
  explicit Decoder(uint64_t max_record_bytes = 64ull << 20) : max_record_bytes_(max_record_bytes) {}

  // Appends bytes as they arrived from the network.
  void Feed(std::string_view data);

  // The next whole record, nullopt when more bytes are needed, or an error when the stream is
  // malformed. After an error the decoder stays failed and returns the same error.
  Result<std::optional<std::string>> Next();

  // Bytes held that do not yet form a whole record.
  size_t buffered() const { return buffer_.size() - offset_; }

 private:
  uint64_t max_record_bytes_;
  std::string buffer_;
  size_t offset_ = 0;
  std::optional<uint64_t> pending_length_;
  std::optional<Error> failed_;
};

}  // namespace etcd_mesos::recordio
