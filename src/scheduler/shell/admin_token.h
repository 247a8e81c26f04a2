// The admin token: the secret that guards the admin API's commands (admin.h: reseed, start fresh,
// backup, restore, resize, rollouts, defragmentation). An operator may give one
// (--admin-token-file); else the scheduler generates one at its first start and keeps it in two
// places: the state record (so that every restart, and every instance of a highly available
// scheduler, guards the commands with the token the operators were told of) and
// <state-dir>/admin-token, mode 0600, where the operators and their scripts read it.
//
// Threading: plain functions. The file functions block on the local disk (a few bytes, once at
// start); nothing here logs the token.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace etcd_mesos::scheduler::shell {

// 32 bytes from OpenSSL's random generator, hex-encoded (64 characters). For the admin token and
// the executors' reseed token: a secret must not come from a seeded pseudo-random sequence.
std::string NewSecretToken();

struct AdminTokenChoice {
  enum class Source { kStored, kFile, kGenerated };
  std::string token;
  Source source = Source::kGenerated;
};

// Which token guards the commands: the state record's (shared by every instance, so it wins over
// this host's file), else this host's file (a scheduler that generated it and stopped before its
// state was written), else a new one from `generate`.
AdminTokenChoice ChooseAdminToken(std::string_view stored, std::string_view in_file,
                                  const std::function<std::string()>& generate);

// <state_dir>/admin-token.
std::filesystem::path AdminTokenPath(const std::filesystem::path& state_dir);

// The token in `path` (a trailing newline is ignored); "" when there is no such file. An error
// names the file: unreadable, or whitespace inside the token.
Result<std::string> ReadAdminTokenFile(const std::filesystem::path& path);

// Writes `token` to `path` atomically with mode 0600 (a new directory is made 0700), unless the
// file already holds it with that mode. An error names the file and what failed.
Status WriteAdminTokenFile(const std::filesystem::path& path, std::string_view token);

// Writes `text` (ending with a newline) to `path` atomically with mode 0600, making a missing
// directory 0700: for secrets (the admin token, the scheduler's TLS key). An error names the file.
Status WritePrivateFile(const std::filesystem::path& path, std::string_view text);

}  // namespace etcd_mesos::scheduler::shell
