// The Mesos fetcher of etcd-mesos-local: puts a CommandInfo's URIs into a sandbox before the
// executor (or command task) starts, as Mesos's fetcher does (reference/mesos-v1-api.md 2.5).
//
// Each URI is fetched in order: `http://` and `https://` through net::HttpFetch (the scheduler's
// artifact server; https verified against the host's trust store, as Mesos's curl-based fetcher
// does), local paths and `file://` by copy. The local name is `output_file` or the URI's
// basename. `executable: true` makes it executable and skips extraction; otherwise, when
// `extract` (default true) and the name ends in .tar, .tar.gz, .tgz, .tar.xz, .txz, .tar.bz2,
// .tbz2 or .zip, it is extracted into the sandbox with the system `tar` (or `unzip`), run as a
// child process watched by the agent's ChildReaper so the io_context never blocks on it.
// A URI with `cache: true` is kept in `cache_dir` (keyed by its whole text, as Mesos's fetcher
// cache does) and later fetches of it are a hard link from there (a copy across file systems):
// the scheduler names each artifact version in its URL, so a cached URI never changes. No
// eviction: the cache lives as long as the agent's work dir. An empty `cache_dir` caches nothing.
// The first failure ends the fetch with an error that names the URI.
//
// Threading: runs on the io_context thread; `done` is called there exactly once, unless the
// returned handle is destroyed first (which abandons the fetch without calling `done`).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/result.h"
#include "local/process.h"
#include "mesos/v1.h"

namespace etcd_mesos::local {

class FetchHandle {
 public:
  virtual ~FetchHandle() = default;
};

// The local file name a URI is fetched to (output_file, else the basename of its path), or an
// error when that name would escape the sandbox or is empty.
Result<std::string> FetchedName(const mesos::CommandInfo::URI& uri);

std::unique_ptr<FetchHandle> FetchUris(boost::asio::io_context& io, ChildReaper& reaper,
                                       std::vector<mesos::CommandInfo::URI> uris,
                                       std::filesystem::path sandbox,
                                       std::filesystem::path cache_dir,
                                       std::function<void(Status)> done);

}  // namespace etcd_mesos::local
