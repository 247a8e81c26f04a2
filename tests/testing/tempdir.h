// A temporary directory removed (recursively) when the object dies.
//
// Threading: not shared.
#pragma once

#include <filesystem>
#include <string>

namespace etcd_mesos::test {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "em-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace etcd_mesos::test
