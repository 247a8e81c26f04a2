#include "mesos/recordio.h"

namespace etcd_mesos::recordio {
namespace {
// A uint64 has at most 20 decimal digits; anything longer before the newline is garbage.
constexpr size_t kMaxLengthDigits = 20;
}  // namespace

std::string Encode(std::string_view record) {
  std::string out = std::to_string(record.size());
  out += '\n';
  out += record;
  return out;
}

void Decoder::Feed(std::string_view data) {
  if (failed_) return;
  // Compact once the consumed prefix dominates, keeping appends amortised O(1).
  if (offset_ > 0 && offset_ * 2 >= buffer_.size()) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(data);
}

Result<std::optional<std::string>> Decoder::Next() {
  if (failed_) return *failed_;
  std::string_view rest(buffer_.data() + offset_, buffer_.size() - offset_);
  if (!pending_length_) {
    size_t newline = rest.find('\n');
    std::string_view digits = rest.substr(0, std::min(newline, kMaxLengthDigits + 1));
    for (char c : digits) {
      if (c < '0' || c > '9') {
        failed_ = MakeError(ErrorCode::kDataLoss,
                            "RecordIO: record length contains a non-digit (byte 0x{:02x})",
                            static_cast<unsigned>(static_cast<unsigned char>(c)));
        return *failed_;
      }
    }
    if (newline == std::string_view::npos) {
      if (rest.size() > kMaxLengthDigits) {
        failed_ = MakeError(ErrorCode::kDataLoss, "RecordIO: record length has over {} digits",
                            kMaxLengthDigits);
        return *failed_;
      }
      return std::optional<std::string>();
    }
    if (newline == 0 || newline > kMaxLengthDigits) {
      failed_ = MakeError(ErrorCode::kDataLoss, "RecordIO: record length is {}",
                          newline == 0 ? "empty" : "too long");
      return *failed_;
    }
    uint64_t length = 0;
    for (char c : rest.substr(0, newline)) {
      uint64_t next = length * 10 + static_cast<uint64_t>(c - '0');
      if (next / 10 != length) {
        length = UINT64_MAX;
        break;
      }
      length = next;
    }
    if (length > max_record_bytes_) {
      failed_ = MakeError(ErrorCode::kDataLoss, "RecordIO: record of {} bytes exceeds the limit {}",
                          rest.substr(0, newline), max_record_bytes_);
      return *failed_;
    }
    pending_length_ = length;
    offset_ += newline + 1;
    rest.remove_prefix(newline + 1);
  }
  if (rest.size() < *pending_length_) return std::optional<std::string>();
  std::string record(rest.substr(0, *pending_length_));
  offset_ += *pending_length_;
  pending_length_.reset();
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  return std::optional<std::string>(std::move(record));
}

}  // namespace etcd_mesos::recordio
