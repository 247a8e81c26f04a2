#include "local/fetcher.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "common/uri.h"
#include "net/http.h"

namespace etcd_mesos::local {
namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxDownloadBytes = 4ull << 30;  // etcd tarballs are tens of MiB
constexpr auto kDownloadTimeout = std::chrono::minutes(10);
constexpr int kMaxRedirects = 5;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

enum class Archive { kNone, kTar, kZip };

Archive ArchiveKind(std::string_view name) {
  for (std::string_view ext :
       {".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tbz"}) {
    if (EndsWith(name, ext)) return Archive::kTar;
  }
  if (EndsWith(name, ".zip")) return Archive::kZip;
  return Archive::kNone;
}

// The path part of a URI: after "scheme://host" for URLs, the whole text for local paths,
// without any query or fragment.
std::string_view UriPath(std::string_view value) {
  size_t scheme = value.find("://");
  if (scheme != std::string_view::npos) {
    value.remove_prefix(scheme + 3);
    size_t slash = value.find('/');
    value = slash == std::string_view::npos ? std::string_view() : value.substr(slash);
  }
  size_t q = value.find_first_of("?#");
  if (q != std::string_view::npos) value = value.substr(0, q);
  return value;
}

// The cache file of a URI: its whole text hashed (FNV-1a: stable across runs), then the local
// name, so that a listing of the cache says what is in it.
std::string CacheName(std::string_view uri, const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (char c : uri) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}-{}", h, name);
}

// A hard link where the file system allows (instant, even for tens of MB), else a copy.
std::error_code LinkOrCopy(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::remove(to, ec);
  fs::create_hard_link(from, to, ec);
  if (ec) {
    ec.clear();
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  }
  return ec;
}

struct FetchJob : std::enable_shared_from_this<FetchJob> {
  FetchJob(asio::io_context& io, ChildReaper& reaper) : io(io), reaper(reaper) {}

  asio::io_context& io;
  ChildReaper& reaper;
  std::vector<mesos::CommandInfo::URI> uris;
  fs::path sandbox;
  fs::path cache_dir;  // empty: no cache
  fs::path cached;     // the cache file of the URI being fetched, when it may be cached
  std::function<void(Status)> done;
  size_t next = 0;
  bool cancelled = false;

  void Finish(Status status) {
    if (cancelled || !done) return;
    auto cb = std::move(done);
    done = nullptr;
    cb(std::move(status));
  }

  void Step() {
    if (cancelled) return;
    if (next >= uris.size()) return Finish(OkStatus());
    const auto& uri = uris[next++];
    auto name = FetchedName(uri);
    if (!name.ok()) return Finish(name.error());
    fs::path target = sandbox / *name;
    std::error_code mkdir_ec;
    fs::create_directories(target.parent_path(), mkdir_ec);
    std::string_view value = uri.value();
    cached.clear();
    if (uri.cache() && !cache_dir.empty()) {
      cached = cache_dir / CacheName(value, target.filename().string());
      std::error_code ec;
      if (fs::is_regular_file(cached, ec) && !LinkOrCopy(cached, target)) {
        SPDLOG_INFO("fetcher: '{}' from the cache", value);
        cached.clear();  // nothing to store
        return AfterFetch(uri, target);
      }
    }
    if (value.starts_with("http://") || value.starts_with("https://")) {
      auto url = ParseHttpUrl(value);
      if (!url.ok()) return Finish(url.error().Context(fmt::format("fetching '{}'", value)));

      return Download(uri, *url, target, 0);
    }
    std::string local(value);
    if (value.starts_with("file://")) {
      local = std::string(value.substr(7));
    } else if (value.find("://") != std::string_view::npos) {
      return Finish(MakeError(ErrorCode::kInvalidArgument,
                              "fetching '{}': unsupported URI scheme (http://, file:// and local "
                              "paths are supported)",
                              value));
    }
    if (local.empty() || local[0] != '/') {
      return Finish(MakeError(ErrorCode::kInvalidArgument,
                              "fetching '{}': a local path must be absolute", value));
    }
    std::error_code ec;
    if (!fs::is_regular_file(local, ec)) {
      return Finish(MakeError(ErrorCode::kNotFound, "fetching '{}': no such file", value));
    }
    fs::copy_file(local, target, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      return Finish(MakeError(ErrorCode::kUnavailable, "fetching '{}': copy to {} failed: {}",
                              value, target.string(), ec.message()));
    }
    AfterFetch(uri, target);
  }

  void Download(const mesos::CommandInfo::URI& uri, const HttpUrl& url, const fs::path& target,
                int redirects) {
    net::HttpRequest request;
    request.method = net::Verb::get;
    request.endpoint = url.endpoint;
    request.target = url.path;
    request.headers = {{"Host", url.endpoint.ToString()}};
    request.timeout = kDownloadTimeout;
    request.max_body_bytes = kMaxDownloadBytes;
    if (url.scheme == "https") {
      // As Mesos's fetcher (curl): the server is verified against the host's trust store.
      auto tls = net::TlsClientConfig::SystemTrust();
      if (!tls.ok()) return Finish(tls.error().Context(fmt::format("fetching '{}'", uri.value())));
      request.tls = *tls;
    }
    net::HttpFetch(
        io, std::move(request),
        [self = shared_from_this(), uri, url, target,
         redirects](Result<net::HttpResponse> response) {
          if (self->cancelled) return;
          if (!response.ok()) {
            return self->Finish(
                response.error().Context(fmt::format("fetching '{}'", uri.value())));
          }
          if (response->status >= 300 && response->status < 400 && response->Header("Location") &&
              redirects < kMaxRedirects) {
            auto next = ResolveLocation(url, *response->Header("Location"));
            if (next.ok() && (next->scheme == "http" || next->scheme == "https")) {
              return self->Download(uri, *next, target, redirects + 1);
            }
          }
          if (response->status != 200) {
            return self->Finish(MakeError(ErrorCode::kUnavailable, "fetching '{}': HTTP {}",
                                          uri.value(), response->status));
          }
          std::ofstream out(target, std::ios::binary | std::ios::trunc);
          out.write(response->body.data(), static_cast<std::streamsize>(response->body.size()));
          out.close();
          if (!out) {
            return self->Finish(MakeError(ErrorCode::kUnavailable, "fetching '{}': cannot write {}",
                                          uri.value(), target.string()));
          }
          self->AfterFetch(uri, target);
        });
  }

  // Keeps a fetched file for later fetches of the same URI (a failure only costs the cache).
  void Store(const fs::path& target) {
    if (cached.empty()) return;
    std::error_code ec;
    fs::create_directories(cache_dir, ec);
    fs::path tmp = cached;
    tmp += fmt::format(".tmp{}", ::getpid());
    if (!LinkOrCopy(target, tmp)) fs::rename(tmp, cached, ec);
    if (ec) SPDLOG_WARN("fetcher: cannot cache {}: {}", target.string(), ec.message());
    fs::remove(tmp, ec);
  }

  void AfterFetch(const mesos::CommandInfo::URI& uri, const fs::path& target) {
    Store(target);
    if (uri.executable()) {
      std::error_code ec;
      fs::permissions(target,
                      fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                      fs::perm_options::add, ec);
      if (ec) {
        return Finish(MakeError(ErrorCode::kUnavailable, "fetching '{}': chmod +x {}: {}",
                                uri.value(), target.string(), ec.message()));
      }
      return Step();
    }
    Archive kind = ArchiveKind(target.filename().string());
    if (!uri.extract() || kind == Archive::kNone) return Step();
    ProcessSpec spec;
    spec.cwd = sandbox;
    spec.env = {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}};
    spec.stderr_path = sandbox / "stderr";
    if (kind == Archive::kTar) {
      spec.program = "tar";
      spec.argv = {"tar", "-C", sandbox.string(), "-xf", target.string()};
    } else {
      spec.program = "unzip";
      spec.argv = {"unzip", "-o", "-q", "-d", sandbox.string(), target.string()};
    }
    auto pid = SpawnProcess(spec);
    if (!pid.ok()) return Finish(pid.error().Context(fmt::format("extracting '{}'", uri.value())));
    reaper.Watch(*pid, [self = shared_from_this(), uri, kind](int status) {
      if (self->cancelled) return;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return self->Finish(MakeError(ErrorCode::kInvalidArgument, "extracting '{}': {} {}",
                                      uri.value(), kind == Archive::kTar ? "tar" : "unzip",
                                      DescribeWaitStatus(status)));
      }
      self->Step();
    });
  }
};

class FetchHandleImpl : public FetchHandle {
 public:
  explicit FetchHandleImpl(std::shared_ptr<FetchJob> job) : job_(std::move(job)) {}
  ~FetchHandleImpl() override { job_->cancelled = true; }

 private:
  std::shared_ptr<FetchJob> job_;
};

}  // namespace

Result<std::string> FetchedName(const mesos::CommandInfo::URI& uri) {
  std::string name;
  if (uri.has_output_file() && !uri.output_file().empty()) {
    name = uri.output_file();
    fs::path p(name);
    if (p.is_absolute()) {
      return MakeError(ErrorCode::kInvalidArgument, "output_file '{}' of '{}' must be relative",
                       name, uri.value());
    }
    for (const auto& part : p) {
      if (part == "..") {
        return MakeError(ErrorCode::kInvalidArgument,
                         "output_file '{}' of '{}' must stay inside the sandbox", name,
                         uri.value());
      }
    }
    return name;
  }
  std::string_view path = UriPath(uri.value());
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  name = std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
  if (name.empty() || name == "." || name == "..") {
    return MakeError(ErrorCode::kInvalidArgument, "URI '{}' has no file name to fetch it to",
                     uri.value());
  }
  return name;
}

std::unique_ptr<FetchHandle> FetchUris(asio::io_context& io, ChildReaper& reaper,
                                       std::vector<mesos::CommandInfo::URI> uris, fs::path sandbox,
                                       fs::path cache_dir, std::function<void(Status)> done) {
  auto job = std::make_shared<FetchJob>(io, reaper);
  job->uris = std::move(uris);
  job->sandbox = std::move(sandbox);
  job->cache_dir = std::move(cache_dir);
  job->done = std::move(done);
  // Never inline: the caller's state must be in place before `done` can run.
  asio::post(io, [job] { job->Step(); });
  return std::make_unique<FetchHandleImpl>(job);
}

}  // namespace etcd_mesos::local
