#include "store/directory_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <system_error>

#include <boost/asio/post.hpp>
#include <boost/crc.hpp>

namespace etcd_mesos::store {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMagic = "EMREC1";
constexpr std::string_view kRecordFile = "record";
constexpr std::string_view kChildPrefix = "c.";

Error IoError(std::string_view what, const fs::path& file, int err) {
  return MakeError(ErrorCode::kUnavailable, "{} {}: {}", what, file.string(), std::strerror(err));
}

uint32_t Crc32(std::string_view data) {
  boost::crc_32_type crc;
  crc.process_bytes(data.data(), data.size());
  return crc.checksum();
}

std::string EncodeRecord(int64_t version, std::string_view data) {
  return fmt::format("{} {} {} {:08x}\n", kMagic, version, data.size(), Crc32(data)) +
         std::string(data);
}

Result<Record> DecodeRecord(const fs::path& file, std::string_view bytes) {
  auto corrupt = [&](std::string_view why) {
    return MakeError(ErrorCode::kDataLoss, "record file {} is corrupt: {}", file.string(), why);
  };
  size_t newline = bytes.find('\n');
  if (newline == std::string_view::npos || newline > 80) return corrupt("no header line");
  std::string_view header = bytes.substr(0, newline);
  std::string_view data = bytes.substr(newline + 1);
  if (!header.starts_with(kMagic) || header.size() <= kMagic.size() ||
      header[kMagic.size()] != ' ') {
    return corrupt("bad header (not an etcd-mesos record)");
  }
  header.remove_prefix(kMagic.size() + 1);
  int64_t version = -1;
  uint64_t size = 0;
  uint32_t crc = 0;
  const char* p = header.data();
  const char* end = header.data() + header.size();
  auto r1 = std::from_chars(p, end, version);
  if (r1.ec != std::errc() || r1.ptr == end || *r1.ptr != ' ' || version < 0) {
    return corrupt("bad version in header");
  }
  auto r2 = std::from_chars(r1.ptr + 1, end, size);
  if (r2.ec != std::errc() || r2.ptr == end || *r2.ptr != ' ') return corrupt("bad size in header");
  auto r3 = std::from_chars(r2.ptr + 1, end, crc, 16);
  if (r3.ec != std::errc() || r3.ptr != end) return corrupt("bad checksum field in header");
  if (size != data.size()) {
    return corrupt(fmt::format("header says {} bytes of data, file has {}", size, data.size()));
  }
  if (Crc32(data) != crc) return corrupt("checksum mismatch");
  return Record{std::string(data), version};
}

// Reads a whole file. ENOENT is reported as kNotFound so callers can tell "absent" from "broken".
Result<std::string> ReadFile(const fs::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return MakeError(ErrorCode::kNotFound, "{} does not exist", file.string());
    }
    return IoError("cannot open", file, errno);
  }
  std::string out;
  char buf[64 * 1024];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return IoError("cannot read", file, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    // A valid record is never larger than this; do not read a huge stray file into memory.
    if (out.size() > kMaxDataSize + 4096) {
      ::close(fd);
      return MakeError(ErrorCode::kDataLoss, "record file {} is corrupt: larger than any record",
                       file.string());
    }
  }
  ::close(fd);
  return out;
}

Status FsyncPath(const fs::path& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open for fsync", path, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return IoError("cannot fsync", path, err);
  return OkStatus();
}

// Writes a new file (which must not exist) and fsyncs it.
Status WriteNewFile(const fs::path& file, std::string_view content) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return IoError("cannot create", file, errno);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return IoError("cannot write", file, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    return IoError("cannot fsync", file, err);
  }
  if (::close(fd) != 0) return IoError("cannot close", file, errno);
  return OkStatus();
}

Status Rename(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return MakeError(ErrorCode::kUnavailable, "cannot rename {} to {}: {}", from.string(),
                     to.string(), std::strerror(errno));
  }
  return OkStatus();
}

// True if `dir` is a directory; false if absent; an error for anything else.
Result<bool> IsDirectory(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return false;
    return IoError("cannot stat", dir, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    return MakeError(ErrorCode::kDataLoss, "{} should be a node directory but is not a directory",
                     dir.string());
  }
  return true;
}

std::string NotFound(std::string_view path) {
  return fmt::format("store path '{}' does not exist", path);
}

// The ancestors of "/a/b/c" below the root: "/a", "/a/b".
std::vector<std::string> Ancestors(std::string_view path) {
  std::vector<std::string> out;
  for (size_t i = 1; i < path.size(); ++i) {
    if (path[i] == '/') out.emplace_back(path.substr(0, i));
  }
  return out;
}

fs::path ParentDir(const fs::path& dir) { return dir.parent_path(); }

}  // namespace

Result<std::unique_ptr<DirectoryStore>> DirectoryStore::Open(boost::asio::io_context& io,
                                                             const fs::path& dir) {
  std::error_code ec;
  fs::path root = fs::absolute(dir, ec);
  if (ec) {
    return MakeError(ErrorCode::kInvalidArgument, "state dir '{}': {}", dir.string(), ec.message());
  }
  root = root.lexically_normal();
  if (!root.has_filename() && root != root.root_path()) root = root.parent_path();
  fs::create_directories(root, ec);
  if (ec) {
    return MakeError(ErrorCode::kUnavailable, "cannot create state dir {}: {}", root.string(),
                     ec.message());
  }
  fs::path lock_file = root / "lock";
  int fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot open lock file", lock_file, errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    std::string holder;
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n > 0) holder = fmt::format(" (pid {})", std::string(buf, static_cast<size_t>(n)));
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return MakeError(ErrorCode::kRefused,
                       "state dir {} is in use by another store{}; lock file {} is held",
                       root.string(), holder, lock_file.string());
    }
    return IoError("cannot lock", lock_file, err);
  }
  // Record who holds the lock, for the error message of the next one who tries.
  std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    int err = errno;
    ::close(fd);
    return IoError("cannot write lock file", lock_file, err);
  }
  // Leftovers of writes interrupted by a crash; nothing in tmp/ is ever part of the tree.
  fs::remove_all(root / "tmp", ec);
  if (!ec) fs::create_directory(root / "tmp", ec);
  if (ec) {
    ::close(fd);
    return MakeError(ErrorCode::kUnavailable, "cannot prepare {}: {}", (root / "tmp").string(),
                     ec.message());
  }
  return std::unique_ptr<DirectoryStore>(new DirectoryStore(io, root, fd));
}

DirectoryStore::DirectoryStore(boost::asio::io_context& io, fs::path root, int lock_fd)
    : io_(io),
      root_(std::move(root)),
      lock_fd_(lock_fd),
      closed_(std::make_shared<std::atomic<bool>>(false)),
      worker_(std::make_unique<boost::asio::thread_pool>(1)) {}

DirectoryStore::~DirectoryStore() {
  closed_->store(true);
  worker_->join();
  worker_.reset();
  ::close(lock_fd_);  // releases the flock
}

std::string DirectoryStore::Describe() const { return "dir:" + root_.string(); }

fs::path DirectoryStore::NodeDir(std::string_view path) const {
  fs::path dir = root_;
  size_t start = 1;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    dir /= std::string(kChildPrefix) + std::string(path.substr(start, slash - start));
    start = slash + 1;
  }
  return dir;
}

fs::path DirectoryStore::RecordFileForTesting(std::string_view path) const {
  return NodeDir(path) / kRecordFile;
}

fs::path DirectoryStore::NewTempPath(char kind) {
  return root_ / "tmp" / fmt::format("{}{}", kind, ++temp_counter_);
}

template <typename T>
void DirectoryStore::Run(std::function<T()> work, std::function<void(T)> done) {
  boost::asio::post(*worker_, [this, work = std::move(work), done = std::move(done)]() mutable {
    // The worker is joined before the store dies, so `this` is valid here; but once the store
    // is being destroyed, queued operations are abandoned rather than started.
    if (closed_->load()) return;
    auto result = [&]() -> T {
      try {
        return work();
      } catch (const std::exception& e) {
        return MakeError(ErrorCode::kInternal, "directory store: {}", e.what());
      }
    }();
    boost::asio::post(
        io_, [closed = closed_, done = std::move(done), result = std::move(result)]() mutable {
          if (!closed->load()) done(std::move(result));
        });
  });
}

void DirectoryStore::Get(std::string path, std::function<void(Result<Record>)> done) {
  Run<Result<Record>>([this, path = std::move(path)] { return DoGet(path); }, std::move(done));
}

void DirectoryStore::Create(std::string path, std::string data,
                            std::function<void(Result<Record>)> done) {
  Run<Result<Record>>(
      [this, path = std::move(path), data = std::move(data), fence = fence_]() -> Result<Record> {
        if (auto s = DoCheckFence(fence, path); !s.ok()) return s.error();
        return DoCreate(path, data);
      },
      std::move(done));
}

void DirectoryStore::Set(std::string path, std::string data, int64_t expected_version,
                         std::function<void(Result<Record>)> done) {
  Run<Result<Record>>(
      [this, path = std::move(path), data = std::move(data), expected_version,
       fence = fence_]() -> Result<Record> {
        if (auto s = DoCheckFence(fence, path); !s.ok()) return s.error();
        return DoSet(path, data, expected_version);
      },
      std::move(done));
}

void DirectoryStore::Delete(std::string path, int64_t expected_version,
                            std::function<void(Status)> done) {
  Run<Status>(
      [this, path = std::move(path), expected_version, fence = fence_]() -> Status {
        if (auto s = DoCheckFence(fence, path); !s.ok()) return s;
        return DoDelete(path, expected_version);
      },
      std::move(done));
}

// On the worker, like the write it guards: the fence and the write are one step of the one
// process that holds the directory's lock.
Status DirectoryStore::DoCheckFence(const std::string& fence, const std::string& path) {
  if (fence.empty()) return OkStatus();
  auto node = DoGet(fence);
  if (node.ok()) return OkStatus();
  if (node.error().code == ErrorCode::kNotFound) return FenceGone(fence, path);
  return node.error();
}

void DirectoryStore::List(std::string path,
                          std::function<void(Result<std::vector<std::string>>)> done) {
  Run<Result<std::vector<std::string>>>([this, path = std::move(path)] { return DoList(path); },
                                        std::move(done));
}

Result<Record> DirectoryStore::DoGet(const std::string& path) {
  if (auto s = ValidatePath(path); !s.ok()) return s.error();
  fs::path dir = NodeDir(path);
  auto is_dir = IsDirectory(dir);
  if (!is_dir.ok()) return is_dir.error();
  if (!*is_dir) return MakeError(ErrorCode::kNotFound, "{}", NotFound(path));
  fs::path file = dir / kRecordFile;
  auto bytes = ReadFile(file);
  if (!bytes.ok()) {
    if (bytes.error().code == ErrorCode::kNotFound) {
      return MakeError(ErrorCode::kDataLoss, "record file {} of store path '{}' is missing",
                       file.string(), path);
    }
    return bytes.error();
  }
  return DecodeRecord(file, *bytes);
}

Status DirectoryStore::CreateNode(const std::string& path, const std::string& data) {
  fs::path target = NodeDir(path);
  fs::path temp = NewTempPath('n');
  if (::mkdir(temp.c_str(), 0755) != 0) return IoError("cannot create", temp, errno);
  if (auto s = WriteNewFile(temp / kRecordFile, EncodeRecord(0, data)); !s.ok()) return s;
  if (auto s = FsyncPath(temp, true); !s.ok()) return s;
  if (auto s = Rename(temp, target); !s.ok()) return s;
  return FsyncPath(ParentDir(target), true);
}

Result<Record> DirectoryStore::DoCreate(const std::string& path, const std::string& data) {
  if (auto s = ValidatePath(path); !s.ok()) return s.error();
  if (auto s = ValidateData(path, data); !s.ok()) return s.error();
  auto exists = IsDirectory(NodeDir(path));
  if (!exists.ok()) return exists.error();
  if (*exists) {
    return MakeError(ErrorCode::kAlreadyExists, "store path '{}' already exists", path);
  }
  for (const auto& parent : Ancestors(path)) {
    auto parent_exists = IsDirectory(NodeDir(parent));
    if (!parent_exists.ok()) return parent_exists.error();
    if (*parent_exists) continue;
    if (auto s = CreateNode(parent, ""); !s.ok()) return s.error();
  }
  if (auto s = CreateNode(path, data); !s.ok()) return s.error();
  return Record{data, 0};
}

Result<Record> DirectoryStore::DoSet(const std::string& path, const std::string& data,
                                     int64_t expected) {
  if (auto s = ValidatePath(path); !s.ok()) return s.error();
  if (auto s = ValidateData(path, data); !s.ok()) return s.error();
  if (expected < kAnyVersion) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "expected version {} for store path '{}' is negative", expected, path);
  }
  auto current = DoGet(path);
  if (!current.ok()) return current.error();
  if (expected != kAnyVersion && expected != current->version) {
    return MakeError(ErrorCode::kConflict, "store path '{}' is at version {}, not {}", path,
                     current->version, expected);
  }
  int64_t version = current->version + 1;
  fs::path dir = NodeDir(path);
  fs::path temp = NewTempPath('r');
  if (auto s = WriteNewFile(temp, EncodeRecord(version, data)); !s.ok()) return s.error();
  if (auto s = Rename(temp, dir / kRecordFile); !s.ok()) return s.error();
  if (auto s = FsyncPath(dir, true); !s.ok()) return s.error();
  return Record{data, version};
}

Status DirectoryStore::DoDelete(const std::string& path, int64_t expected) {
  if (auto s = ValidatePath(path); !s.ok()) return s;
  if (expected < kAnyVersion) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "expected version {} for store path '{}' is negative", expected, path);
  }
  fs::path dir = NodeDir(path);
  auto exists = IsDirectory(dir);
  if (!exists.ok()) return exists.error();
  if (!*exists) return MakeError(ErrorCode::kNotFound, "{}", NotFound(path));
  // An unconditional delete does not read the record, so a damaged node can still be removed.
  if (expected != kAnyVersion) {
    auto current = DoGet(path);
    if (!current.ok()) return current.error();
    if (current->version != expected) {
      return MakeError(ErrorCode::kConflict, "store path '{}' is at version {}, not {}", path,
                       current->version, expected);
    }
  }
  auto children = DoList(path);
  if (!children.ok()) return children.error();
  if (!children->empty()) {
    return MakeError(ErrorCode::kRefused, "store path '{}' has {} children; delete them first",
                     path, children->size());
  }
  fs::path temp = NewTempPath('d');
  if (auto s = Rename(dir, temp); !s.ok()) return s;
  if (auto s = FsyncPath(ParentDir(dir), true); !s.ok()) return s;
  std::error_code ec;
  fs::remove_all(temp, ec);  // already out of the tree; leftovers go at the next open
  return OkStatus();
}

Result<std::vector<std::string>> DirectoryStore::DoList(const std::string& path) {
  if (auto s = ValidatePath(path, /*allow_root=*/true); !s.ok()) return s.error();
  fs::path dir = NodeDir(path);
  auto exists = IsDirectory(dir);
  if (!exists.ok()) return exists.error();
  if (!*exists) return MakeError(ErrorCode::kNotFound, "{}", NotFound(path));
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (name.starts_with(kChildPrefix) && it->is_directory(type_ec)) {
      names.push_back(name.substr(kChildPrefix.size()));
    }
  }
  if (ec) {
    return MakeError(ErrorCode::kUnavailable, "cannot list {}: {}", dir.string(), ec.message());
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace etcd_mesos::store
