// The admin token's choice and file (admin_token.h).
#include "scheduler/shell/admin_token.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <openssl/rand.h>

#include "common/encoding.h"

namespace etcd_mesos::scheduler::shell {
namespace fs = std::filesystem;

std::string NewSecretToken() {
  std::array<unsigned char, 32> bytes{};
  // RAND_bytes fails only when the generator cannot be seeded: no secret can be made then.
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    std::abort();
  }
  return HexEncode(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

AdminTokenChoice ChooseAdminToken(std::string_view stored, std::string_view in_file,
                                  const std::function<std::string()>& generate) {
  using Source = AdminTokenChoice::Source;
  if (!stored.empty()) return {std::string(stored), Source::kStored};
  if (!in_file.empty()) return {std::string(in_file), Source::kFile};
  return {generate(), Source::kGenerated};
}

fs::path AdminTokenPath(const fs::path& state_dir) { return state_dir / "admin-token"; }

Result<std::string> ReadAdminTokenFile(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::string();
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (!in || !(text << in.rdbuf())) {
    return MakeError(ErrorCode::kInvalidArgument, "the admin token file {}: cannot read it",
                     path.string());
  }
  std::string token = text.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.find_first_of(" \t\r\n") != std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the admin token file {}: holds whitespace inside the token; remove the "
                     "file to have a new token generated",
                     path.string());
  }
  return token;
}

namespace {

Error FileError(const fs::path& path, std::string_view what) {
  return MakeError(ErrorCode::kUnavailable, "file {}: {}: {}", path.string(), what,
                   std::strerror(errno));
}

bool AlreadyHolds(const fs::path& path, std::string_view token) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || (st.st_mode & 0777) != 0600) return false;
  auto held = ReadAdminTokenFile(path);
  return held.ok() && *held == token;
}

}  // namespace

Status WriteAdminTokenFile(const fs::path& path, std::string_view token) {
  if (AlreadyHolds(path, token)) return OkStatus();
  Status written = WritePrivateFile(path, token);
  if (!written.ok()) return written.error().Context("the admin token");
  return OkStatus();
}

Status WritePrivateFile(const fs::path& path, std::string_view token) {
  fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) {
      return MakeError(ErrorCode::kUnavailable, "file {}: cannot create {}: {}", path.string(),
                       dir.string(), ec.message());
    }
    fs::permissions(dir, fs::perms::owner_all, ec);
  }
  fs::path tmp = path;
  tmp += ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return FileError(path, "cannot create " + tmp.string());
  std::string text(token);
  if (!text.ends_with('\n')) text += '\n';
  bool ok = ::fchmod(fd, 0600) == 0 &&
            ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  Error failed = ok ? Error{} : FileError(path, "cannot write " + tmp.string());
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return failed;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = FileError(path, "cannot rename " + tmp.string() + " into place");
    ::unlink(tmp.c_str());
    return e;
  }
  return OkStatus();
}

}  // namespace etcd_mesos::scheduler::shell
