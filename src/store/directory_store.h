// DirectoryStore: the StateStore kept in a directory on local disk, the embedded default
// (`--state-dir`) for a scheduler that runs without ZooKeeper.
//
// Layout under the root directory R:
//   R/lock                 flock()ed while a store has R open, so two processes never share it
//   R/tmp/                 scratch space for atomic writes; emptied at open
//   R/c.<name>/record      node /<name>: header (version, size, CRC-32) then the data
//   R/c.<name>/c.<child>/  its children, recursively
// Children carry the "c." prefix so that no node name can collide with "record" or "lock".
// Every change is made in R/tmp, fsync()ed, then rename()d into place and the parent directory
// fsync()ed, so after a crash each node is either entirely old or entirely new. A record that is
// nevertheless damaged (truncated, bad header, bad checksum) answers kDataLoss naming the file.
//
// Threading: as StateStore. File I/O runs on one private worker thread so that the io_context
// thread never waits on the disk; operations run on it in submission order and their results are
// posted back to the io_context.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/result.h"
#include "store/state_store.h"

namespace etcd_mesos::store {

// Creates `root` (and its parents) if missing and locks it. kRefused if another store (in this or
// another process) has it open; kUnavailable if the file system fails us.
class DirectoryStore final : public StateStore {
 public:
  static Result<std::unique_ptr<DirectoryStore>> Open(boost::asio::io_context& io,
                                                      const std::filesystem::path& root);
  // Waits for the operation the worker is running (never long: one node's files), abandons the
  // queued ones and releases the lock.
  ~DirectoryStore() override;
  DirectoryStore(const DirectoryStore&) = delete;
  DirectoryStore& operator=(const DirectoryStore&) = delete;

  void Get(std::string path, std::function<void(Result<Record>)> done) override;
  void Create(std::string path, std::string data,
              std::function<void(Result<Record>)> done) override;
  void Set(std::string path, std::string data, int64_t expected_version,
           std::function<void(Result<Record>)> done) override;
  void Delete(std::string path, int64_t expected_version,
              std::function<void(Status)> done) override;
  void List(std::string path, std::function<void(Result<std::vector<std::string>>)> done) override;
  std::string Describe() const override;
  void SetFence(std::string fence) override { fence_ = std::move(fence); }

  // The file that holds the record of `path` (tests use it to damage records).
  std::filesystem::path RecordFileForTesting(std::string_view path) const;

 private:
  DirectoryStore(boost::asio::io_context& io, std::filesystem::path root, int lock_fd);

  // Runs `work` on the worker thread and posts `done(result)` to the io_context, unless the store
  // has been destroyed by then.
  template <typename T>
  void Run(std::function<T()> work, std::function<void(T)> done);

  // These run on the worker thread only.
  Result<Record> DoGet(const std::string& path);
  Result<Record> DoCreate(const std::string& path, const std::string& data);
  Result<Record> DoSet(const std::string& path, const std::string& data, int64_t expected);
  Status DoDelete(const std::string& path, int64_t expected);
  Status DoCheckFence(const std::string& fence, const std::string& path);
  Result<std::vector<std::string>> DoList(const std::string& path);
  Status CreateNode(const std::string& path, const std::string& data);
  std::filesystem::path NodeDir(std::string_view path) const;
  std::filesystem::path NewTempPath(char kind);

  boost::asio::io_context& io_;
  const std::filesystem::path root_;
  int lock_fd_;
  // Read by handlers already posted to the io_context, which may run after the store is gone.
  std::shared_ptr<std::atomic<bool>> closed_;
  uint64_t temp_counter_ = 0;  // worker thread only
  std::string fence_;          // the issuing thread's: each write takes it along
  // Last member: destroyed (joined) first, while everything the worker uses is still alive.
  std::unique_ptr<boost::asio::thread_pool> worker_;
};

// The same as DirectoryStore::Open, for symmetry with OpenZkStore.
inline Result<std::unique_ptr<DirectoryStore>> OpenDirectoryStore(
    boost::asio::io_context& io, const std::filesystem::path& root) {
  return DirectoryStore::Open(io, root);
}

}  // namespace etcd_mesos::store
