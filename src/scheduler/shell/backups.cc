#include "scheduler/shell/backups.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/encoding.h"

namespace etcd_mesos::scheduler::shell {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr size_t kShaSize = 32;

std::string Hex(const unsigned char* data, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 15];
  }
  return out;
}

Result<std::string> Unhex(const std::string& hex) {
  if (hex.size() % 2 != 0) return MakeError(ErrorCode::kInvalidArgument, "odd hex length");
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    int v = 0;
    for (int k = 0; k < 2; ++k) {
      char c = hex[i + k];
      int d = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0) return MakeError(ErrorCode::kInvalidArgument, "not hex: {}", hex);
      v = v * 16 + d;
    }
    out += static_cast<char>(v);
  }
  return out;
}

Error Errno(std::string_view what, const fs::path& path) {
  return MakeError(ErrorCode::kInternal, "{} {}: {}", what, path.string(), std::strerror(errno));
}

void SyncDirectory(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

Status SyncFile(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", path);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("cannot fsync", path);
  return OkStatus();
}

// Writes `data` to `path` atomically and durably.
Status WriteFileAtomically(const fs::path& path, const std::string& data) {
  fs::path temp = path.parent_path() / ("." + path.filename().string() + ".partial");
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out || !out.write(data.data(), static_cast<std::streamsize>(data.size()))) {
      return Errno("cannot write", temp);
    }
  }
  if (auto s = SyncFile(temp); !s.ok()) return s;
  if (::rename(temp.c_str(), path.c_str()) != 0) return Errno("cannot rename to", path);
  SyncDirectory(path.parent_path());
  return OkStatus();
}

fs::path SidecarOf(const fs::path& dir, const std::string& name) { return dir / (name + ".json"); }

Status WriteSidecar(const fs::path& dir, const BackupDone& done, const BackupName& name,
                    const std::string& db_sha256) {
  json j = {{"name", done.name},          {"size", done.size},
            {"sha256", done.sha256},      {"db_sha256", db_sha256},
            {"revision", done.revision},  {"cluster_id", fmt::format("{:016x}", name.cluster_id)},
            {"member", done.member},      {"time", FormatWallTime(name.time)},
            {"unix_time", done.unix_time}};
  return WriteFileAtomically(SidecarOf(dir, done.name), j.dump(2) + "\n");
}

std::optional<RestoreCheck> ReadRestoreCheck(const json& side) {
  auto it = side.find("verified");
  if (it == side.end() || !it->is_string()) return std::nullopt;
  if (*it != "restored" && *it != "failed") return std::nullopt;
  RestoreCheck c;
  c.restored = *it == "restored";
  auto get = [&](const char* key, auto fallback) {
    auto v = side.find(key);
    using T = decltype(fallback);
    if (v == side.end()) return fallback;
    if constexpr (std::is_same_v<T, std::string>) {
      return v->is_string() ? v->get<std::string>() : fallback;
    } else if constexpr (std::is_same_v<T, bool>) {
      return v->is_boolean() ? v->get<bool>() : fallback;
    } else {
      return v->is_number() ? v->get<T>() : fallback;
    }
  };
  c.at = WallTime(std::chrono::seconds(get("verified_at_unix", int64_t{0})));
  c.error = get("verify_error", std::string());
  c.seconds = get("verify_seconds", 0.0);
  c.hash_compared = get("hash_compared", false);
  c.hash_revision = get("hash_revision", uint64_t{0});
  c.compact_revision = get("compact_revision", int64_t{-1});
  for (auto [key, into] : {std::pair{"hash", &c.hash}, std::pair{"live_hash", &c.live_hash}}) {
    auto v = side.find(key);
    if (v != side.end() && v->is_number_unsigned() && v->get<uint64_t>() <= UINT32_MAX) {
      *into = v->get<uint32_t>();
    }
  }
  return c;
}

}  // namespace

Status RecordRestoreCheck(const fs::path& dir, const std::string& name, const RestoreCheck& check) {
  std::error_code ec;
  if (!fs::is_regular_file(dir / name, ec)) {
    return MakeError(ErrorCode::kNotFound, "backup {} is gone (pruned?)", name);
  }
  std::ifstream in(SidecarOf(dir, name));
  json side = in ? json::parse(in, nullptr, /*allow_exceptions=*/false) : json();
  if (!side.is_object()) {
    return MakeError(ErrorCode::kNotFound, "backup {} has no readable sidecar", name);
  }
  side["verified"] = check.Outcome();
  side["verified_at"] = FormatWallTime(check.at);
  side["verified_at_unix"] = check.at.time_since_epoch().count();
  side["verify_error"] = check.error;
  side["verify_seconds"] = std::round(check.seconds * 1000) / 1000;
  side["hash_compared"] = check.hash_compared;
  side["hash_revision"] = check.hash_revision;
  side["hash"] = check.hash ? json(*check.hash) : json(nullptr);
  side["live_hash"] = check.live_hash ? json(*check.live_hash) : json(nullptr);
  side["compact_revision"] = check.compact_revision;
  return WriteFileAtomically(SidecarOf(dir, name), side.dump(2) + "\n");
}

Result<FileDigests> DigestFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(ErrorCode::kNotFound, "cannot read {}", path.string());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> whole(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> db(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!whole || !db || EVP_DigestInit_ex(whole.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestInit_ex(db.get(), EVP_sha256(), nullptr) != 1) {
    return MakeError(ErrorCode::kInternal, "SHA-256 is not available");
  }
  // The last 32 bytes are held back from the database digest until the end is known.
  std::string held;
  std::string buf(1 << 20, '\0');
  uint64_t size = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    size_t n = static_cast<size_t>(in.gcount());
    if (n == 0) break;
    size += n;
    EVP_DigestUpdate(whole.get(), buf.data(), n);
    held.append(buf.data(), n);
    if (held.size() > kShaSize) {
      size_t release = held.size() - kShaSize;
      EVP_DigestUpdate(db.get(), held.data(), release);
      held.erase(0, release);
    }
  }
  if (in.bad()) return MakeError(ErrorCode::kInternal, "reading {} failed", path.string());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  FileDigests out;
  out.size = size;
  EVP_DigestFinal_ex(whole.get(), digest, &len);
  out.sha256 = Hex(digest, len);
  EVP_DigestFinal_ex(db.get(), digest, &len);
  out.db_sha256 = Hex(digest, len);
  out.trailer_matches =
      held.size() == kShaSize && std::memcmp(held.data(), digest, kShaSize) == 0 && size > kShaSize;
  return out;
}

Result<FileDigests> VerifySnapshotFile(const fs::path& path, const std::string& expected_sha256) {
  auto d = DigestFile(path);
  if (!d.ok()) return d.error();
  if (d->size <= kShaSize) {
    return MakeError(ErrorCode::kDataLoss, "snapshot {} is truncated: {} bytes", path.string(),
                     d->size);
  }
  if (!d->trailer_matches) {
    return MakeError(ErrorCode::kDataLoss,
                     "snapshot {} is corrupt or truncated: its last 32 bytes are not the SHA-256 "
                     "of the {} bytes before them (etcd's snapshot format)",
                     path.string(), d->size - kShaSize);
  }
  if (!expected_sha256.empty() && d->sha256 != expected_sha256) {
    return MakeError(ErrorCode::kDataLoss,
                     "snapshot {} does not match its recorded checksum: sha256 {} on disk, {} "
                     "recorded",
                     path.string(), d->sha256, expected_sha256);
  }
  return d;
}

std::vector<BackupRecord> ListBackups(const fs::path& dir) {
  std::vector<BackupRecord> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    auto parsed = ParseBackupName(name);
    if (!parsed.ok() || !entry.is_regular_file(ec)) continue;
    BackupRecord r;
    r.name = name;
    r.size = entry.file_size(ec);
    r.revision = parsed->revision;
    r.cluster_id = parsed->cluster_id;
    r.time = parsed->time;
    std::ifstream in(SidecarOf(dir, name));
    if (in) {
      json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("size") && j["size"].is_number_unsigned()) {
        r.verified = j["size"].get<uint64_t>() == r.size;
        if (j.contains("sha256") && j["sha256"].is_string()) r.sha256 = j["sha256"];
        if (j.contains("member") && j["member"].is_string()) r.member = j["member"];
        if (j.contains("revision") && j["revision"].is_number_unsigned())
          r.revision = j["revision"];
        r.restore_check = ReadRestoreCheck(j);
        if (r.restore_check && !r.restore_check->restored) r.verified = false;
      }
    }
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(), [](const BackupRecord& a, const BackupRecord& b) {
    if (a.time != b.time) return a.time > b.time;
    return a.name > b.name;
  });
  return out;
}

Result<BackupRecord> VerifyBackup(const fs::path& dir, const std::string& name) {
  if (auto parsed = ParseBackupName(name); !parsed.ok()) return parsed.error();
  std::error_code ec;
  if (!fs::is_regular_file(dir / name, ec)) {
    return MakeError(ErrorCode::kNotFound, "no backup {} in {} (GET /backups lists them)", name,
                     dir.string());
  }
  for (const auto& r : ListBackups(dir)) {
    if (r.name != name) continue;
    if (r.sha256.empty()) {
      return MakeError(ErrorCode::kDataLoss,
                       "backup {} has no readable sidecar {}.json with its checksum; refusing it",
                       name, name);
    }
    auto d = VerifySnapshotFile(dir / name, r.sha256);
    if (!d.ok()) return d.error();
    return r;
  }
  return MakeError(ErrorCode::kNotFound, "no backup {} in {}", name, dir.string());
}

Result<BackupDone> FinishBackup(const fs::path& dir, const fs::path& partial,
                                const std::string& db_sha256_hex, const BackupName& name,
                                const std::string& member) {
  auto trailer = Unhex(db_sha256_hex);
  if (!trailer.ok() || trailer->size() != kShaSize) {
    return MakeError(ErrorCode::kInternal, "bad snapshot digest {}", db_sha256_hex);
  }
  {
    std::ofstream out(partial, std::ios::binary | std::ios::app);
    if (!out || !out.write(trailer->data(), kShaSize)) return Errno("cannot append to", partial);
  }
  if (auto s = SyncFile(partial); !s.ok()) return s.error();
  // Read back and check before the name appears: what is on disk is what etcd sent.
  auto d = VerifySnapshotFile(partial);
  if (!d.ok()) return d.error();
  if (d->db_sha256 != db_sha256_hex) {
    return MakeError(ErrorCode::kDataLoss, "snapshot on disk differs from what etcd sent");
  }
  BackupDone done;
  done.name = FormatBackupName(name);
  done.size = d->size;
  done.revision = name.revision;
  done.member = member;
  done.sha256 = d->sha256;
  done.unix_time = name.time.time_since_epoch().count();
  fs::path final_path = dir / done.name;
  std::error_code ec;
  if (fs::exists(final_path, ec)) {
    return MakeError(ErrorCode::kAlreadyExists, "backup {} exists already", done.name);
  }
  if (::rename(partial.c_str(), final_path.c_str()) != 0)
    return Errno("cannot rename to", final_path);
  SyncDirectory(dir);
  if (auto s = WriteSidecar(dir, done, name, d->db_sha256); !s.ok()) return s.error();
  return done;
}

Result<BackupDone> ImportSnapshot(const fs::path& dir, const fs::path& source,
                                  const std::string& cluster, WallTime now) {
  auto d = VerifySnapshotFile(source);
  if (!d.ok()) return d.error();
  BackupName name{cluster, now, 0, 0};
  BackupDone done;
  done.name = FormatBackupName(name);
  done.size = d->size;
  done.member = "imported from " + source.string();
  done.sha256 = d->sha256;
  done.unix_time = now.time_since_epoch().count();
  std::error_code ec;
  fs::create_directories(dir, ec);
  fs::path temp = dir / ("." + done.name + ".partial");
  fs::copy_file(source, temp, fs::copy_options::overwrite_existing, ec);
  if (ec) {
    return MakeError(ErrorCode::kInternal, "cannot copy {} to {}: {}", source.string(),
                     temp.string(), ec.message());
  }
  auto copied = VerifySnapshotFile(temp, d->sha256);
  if (!copied.ok()) return copied.error();
  if (auto s = SyncFile(temp); !s.ok()) return s.error();
  if (::rename(temp.c_str(), (dir / done.name).c_str()) != 0) {
    return Errno("cannot rename to", dir / done.name);
  }
  SyncDirectory(dir);
  if (auto s = WriteSidecar(dir, done, name, d->db_sha256); !s.ok()) return s.error();
  return done;
}

std::vector<std::string> PruneBackups(const fs::path& dir, const RetentionPolicy& policy,
                                      WallTime now) {
  std::vector<BackupEntry> entries;
  for (const auto& r : ListBackups(dir)) entries.push_back({r.name, r.time, r.verified});
  std::vector<std::string> deleted;
  for (const auto& name : BackupsToPrune(entries, policy, now)) {
    std::error_code ec;
    fs::remove(dir / name, ec);
    if (ec) continue;
    fs::remove(SidecarOf(dir, name), ec);
    deleted.push_back(name);
  }
  if (!deleted.empty()) SyncDirectory(dir);
  return deleted;
}

}  // namespace etcd_mesos::scheduler::shell
