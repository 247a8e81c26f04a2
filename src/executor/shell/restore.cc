#include "executor/shell/restore.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <thread>

#include <fmt/format.h>

extern char** environ;

namespace etcd_mesos::executor::shell {

namespace {

namespace fs = std::filesystem;

Result<std::string> Sha256OfFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return MakeError(ErrorCode::kNotFound, "the snapshot {} is not in the sandbox (not fetched?)",
                     path.string());
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return MakeError(ErrorCode::kInternal, "SHA-256 is not available");
  }
  std::string buf(1 << 20, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

std::string ReadTail(const fs::path& path, size_t max = 2000) {
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  return all.size() > max ? all.substr(all.size() - max) : all;
}

}  // namespace

std::vector<std::string> RestoreCommandLine(const TaskConfig& config, const std::string& etcdctl,
                                            const fs::path& snapshot, const fs::path& data_dir) {
  return {etcdctl,
          "snapshot",
          "restore",
          snapshot.string(),
          "--name=" + config.name,
          "--data-dir=" + data_dir.string(),
          "--initial-cluster=" + config.initial_cluster,
          "--initial-cluster-token=" + config.cluster_token,
          "--initial-advertise-peer-urls=" + config.PeerUrl()};
}

std::string ResolveEtcdctl(const fs::path& sandbox) {
  std::error_code ec;
  fs::path local = sandbox / "etcdctl";
  if (fs::is_regular_file(local, ec)) return local.string();
  return "etcdctl";
}

Status RestoreDataDir(const TaskConfig& config, const fs::path& sandbox, const fs::path& data_dir,
                      std::chrono::seconds timeout) {
  if (!config.restore_snapshot) return OkStatus();
  fs::path snapshot = sandbox / *config.restore_snapshot;
  auto sha = Sha256OfFile(snapshot);
  if (!sha.ok()) return sha.error();
  if (*sha != config.restore_sha256) {
    return MakeError(ErrorCode::kDataLoss,
                     "the snapshot {} in the sandbox is corrupt or truncated: sha256 {}, the "
                     "scheduler sent {}; not restoring from it",
                     snapshot.string(), *sha, config.restore_sha256);
  }
  fs::path temp = data_dir.parent_path() / (data_dir.filename().string() + ".restoring");
  std::error_code ec;
  fs::remove_all(temp, ec);  // a restore interrupted before
  fs::path log = sandbox / "restore.log";
  auto argv = RestoreCommandLine(config, ResolveEtcdctl(sandbox), snapshot, temp);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<std::string> env_store;
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).starts_with("ETCDCTL_API=")) continue;
    env.push_back(*e);
  }
  env_store.push_back("ETCDCTL_API=3");
  env.push_back(env_store.back().data());
  env.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return MakeError(ErrorCode::kInternal, "cannot start {}: {}", argv[0], std::strerror(rc));
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid) break;
    if (got < 0 && errno != EINTR) {
      return MakeError(ErrorCode::kInternal, "waiting for etcdctl: {}", std::strerror(errno));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      fs::remove_all(temp, ec);
      return MakeError(ErrorCode::kInternal, "etcdctl snapshot restore took more than {} s",
                       timeout.count());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fs::remove_all(temp, ec);
    return MakeError(ErrorCode::kInternal, "etcdctl snapshot restore of {} failed: {}",
                     snapshot.string(), ReadTail(log));
  }
  fs::rename(temp, data_dir, ec);
  if (ec) {
    return MakeError(ErrorCode::kInternal, "cannot rename {} to {}: {}", temp.string(),
                     data_dir.string(), ec.message());
  }
  return OkStatus();
}

}  // namespace etcd_mesos::executor::shell
