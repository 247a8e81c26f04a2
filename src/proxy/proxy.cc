#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <utility>

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "common/duration.h"
#include "net/http.h"
#include "tls/pki.h"

namespace etcd_mesos::proxy {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kStopGrace{5'000};
constexpr milliseconds kQuickDeath{3'000};  // a child dying sooner than this did not really start
constexpr int kMaxQuickDeaths = 5;
constexpr int kMaxBackoffIntervals = 6;

std::string Snippet(const std::string& body) {
  std::string s = body.substr(0, 200);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// `name` resolved the way execvp would, or an error that says where it was looked for.
Result<std::string> FindExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return name;
    return MakeError(ErrorCode::kInvalidArgument, "--etcd-bin={}: not an executable file", name);
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    std::string dir =
        dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "--etcd-bin={}: not found in PATH ({}); install etcd-server or give a path",
                   name, dirs);
}

// Binding the listen address ourselves first turns "the grpc-proxy died" into "this address is
// taken", which is what the operator needs to read.
Status CheckListenAddress(const HostPort& addr) {
  in_addr ip{};
  if (::inet_pton(AF_INET, addr.host.c_str(), &ip) != 1) return OkStatus();  // a name: let etcd try
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return OkStatus();
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(addr.port);
  sa.sin_addr = ip;
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "--listen-addr={}: cannot listen there: {}",
                     addr.ToString(), std::strerror(err));
  }
  return OkStatus();
}

// The PEM text of the file a flag names; the error names the flag.
Result<std::string> ReadPem(const char* flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return MakeError(ErrorCode::kInvalidArgument, "{}={}: cannot read it: {}", flag, path,
                     std::strerror(errno));
  }
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The grpc-proxy runs in the data directory, so the files it is given must not be relative.
void MakeAbsolute(std::string& path) {
  if (!path.empty()) path = std::filesystem::absolute(path).string();
}

// What an operator should check when no member answered over TLS, from how the handshakes
// failed. Our side's verdict on the member's certificate is explicit; the member's refusal of
// ours comes from Go's TLS 1.3 server after our side finished, as an alert or a reset.
std::string TlsHint(const std::vector<Error>& errors, const ProxyFlags& flags) {
  bool verify_failed = false, refused = false;
  for (const auto& e : errors) {
    verify_failed |= e.message.find("certificate verify failed") != std::string::npos;
    refused |= e.message.find("TLS") != std::string::npos ||
               e.message.find("alert") != std::string::npos ||
               e.message.find("reset") != std::string::npos ||
               e.message.find("end of stream") != std::string::npos;
  }
  if (verify_failed) {
    return fmt::format("the members' certificates do not chain to --cacert={}", flags.cacert);
  }
  if (refused && flags.cert.empty()) {
    return "the members ask for a client certificate: give --cert and --key (one of the "
           "cluster's CA)";
  }
  if (refused) {
    return fmt::format(
        "the members refused the client certificate --cert={}: it must be issued "
        "by the cluster's CA",
        flags.cert);
  }
  return "the members do not answer; check that they run";
}

}  // namespace

// ---- Discoverer ---------------------------------------------------------------------------

Discoverer::Discoverer(boost::asio::io_context& io, const ProxyFlags& flags)
    : io_(io), flags_(flags) {}

Status Discoverer::Start(std::shared_ptr<const net::TlsClientConfig> tls) {
  tls_ = std::move(tls);
  if (flags_.scheduler && flags_.scheduler->scheme == "https") {
    // The scheduler's admin server (--admin-tls-cert): --cacert, and the host's trust store
    // (as the agents' fetcher and the executors trust it).
    std::ifstream in(flags_.cacert, std::ios::binary);
    std::string cacert((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto system = net::TlsClientConfig::SystemTrust(cacert);
    if (!system.ok()) return system.error().Context("--scheduler");
    scheduler_tls_ = *system;
  }
  if (!flags_.master || !flags_.master->zk) return OkStatus();
  detector_ = std::make_unique<mesos_client::MasterDetector>(
      io_, *flags_.master, mesos_client::MasterDetector::Options{},
      [this](const std::optional<HostPort>& leader) {
        if (leader) {
          spdlog::info("leading Mesos master: {}", leader->ToString());
        } else {
          spdlog::warn("no Mesos master is leading right now");
        }
        OnFirstVerdict();
      });
  detector_deadline_ = std::make_unique<boost::asio::steady_timer>(io_);
  detector_deadline_->expires_after(flags_.request_timeout);
  detector_deadline_->async_wait([this](const boost::system::error_code& ec) {
    if (!ec) OnFirstVerdict();  // ZooKeeper is slow or away: the looks fail and say so
  });
  return detector_->Start();
}

void Discoverer::OnFirstVerdict() {
  if (detector_answered_) return;
  detector_answered_ = true;
  detector_deadline_->cancel();
  auto waiting = std::move(waiting_for_detector_);
  waiting_for_detector_.clear();
  for (auto& done : waiting) FetchFromLeader(std::move(done));
}

std::string Discoverer::source() const {
  if (flags_.scheduler) {
    std::string url = flags_.scheduler->ToString();
    if (url.ends_with('/')) url.pop_back();
    return "the scheduler at " + url;
  }
  return fmt::format("the Mesos master {} (framework '{}')", flags_.master_text,
                     flags_.framework_name);
}

void Discoverer::Fetch(Callback done) {
  if (flags_.scheduler) {
    net::HttpRequest req;
    req.endpoint = flags_.scheduler->endpoint;
    std::string prefix = flags_.scheduler->path;
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    req.target = prefix + "/members";
    req.timeout = flags_.request_timeout;
    req.headers = {{"Accept", "application/json"}};
    if (flags_.scheduler->scheme == "https") req.tls = scheduler_tls_;
    net::HttpFetch(io_, req, [done = std::move(done), src = source()](auto r) {
      if (!r.ok()) return done(r.error().Context("asking " + src));
      if (r->status != 200) {
        return done(MakeError(ErrorCode::kUnavailable, "{} answered /members with {}: {}", src,
                              r->status, Snippet(r->body)));
      }
      auto urls = ClientUrlsFromMembers(r->body);
      if (!urls.ok()) return done(urls.error().Context(src));
      done(std::move(urls));
    });
    return;
  }
  if (detector_ && !detector_answered_) {
    waiting_for_detector_.push_back(std::move(done));
    return;
  }
  FetchFromLeader(std::move(done));
}

void Discoverer::FetchFromLeader(Callback done) {
  std::optional<HostPort> leader =
      flags_.master->direct ? flags_.master->direct : detector_->leader();
  if (!leader) {
    return boost::asio::post(io_, [done = std::move(done), src = source()] {
      done(MakeError(ErrorCode::kUnavailable, "{}: no leading master found in ZooKeeper yet", src));
    });
  }
  HttpUrl url;
  url.endpoint = *leader;
  url.path = "/master/state";
  FetchMasterState(url, 3, std::move(done));
}

void Discoverer::FetchMasterState(HttpUrl url, int redirects_left, Callback done) {
  net::HttpRequest req;
  req.endpoint = url.endpoint;
  req.target = url.path;
  req.timeout = flags_.request_timeout;
  req.headers = {{"Accept", "application/json"}};
  net::HttpFetch(
      io_, req,
      [this, url, redirects_left, done = std::move(done), src = source()](auto r) mutable {
        if (!r.ok()) return done(r.error().Context("asking " + src));
        auto location = r->Header("Location");
        // A master that is not leading sends clients to the leader.
        if ((r->status == 307 || r->status == 302) && location && redirects_left > 0) {
          auto next = ResolveLocation(url, *location);
          if (next.ok()) return FetchMasterState(*next, redirects_left - 1, std::move(done));
        }
        if (r->status != 200) {
          return done(MakeError(ErrorCode::kUnavailable, "{} answered {} with {}: {}", src,
                                url.path, r->status, Snippet(r->body)));
        }
        // The master cannot say whether members serve https; --cacert says they do.
        auto urls = ClientUrlsFromMasterState(r->body, flags_.framework_name,
                                              flags_.cacert.empty() ? "http" : "https");
        if (!urls.ok()) return done(urls.error().Context(src));
        done(std::move(urls));
      });
}

// ---- Proxy --------------------------------------------------------------------------------

Proxy::Proxy(boost::asio::io_context& io, ProxyFlags flags, DoneCallback on_done)
    : io_(io),
      flags_(std::move(flags)),
      on_done_(std::move(on_done)),
      discoverer_(io, flags_),
      child_(io),
      poll_timer_(io),
      child_timer_(io) {}

Proxy::~Proxy() {
  *alive_ = false;
  child_.KillNow();
  if (remove_data_dir_) {
    std::error_code ec;
    std::filesystem::remove_all(data_dir_, ec);
  }
}

Status Proxy::Start() {
  if (!flags_.once) {
    auto bin = FindExecutable(flags_.etcd_bin);
    if (!bin.ok()) return bin.error();
    flags_.etcd_bin = *bin;
    if (auto s = CheckListenAddress(flags_.listen_addr); !s.ok()) return s;
    if (flags_.data_dir.empty()) {
      std::string tmpl = (std::filesystem::temp_directory_path() / "etcd-mesos-proxy.XXXXXX");
      if (::mkdtemp(tmpl.data()) == nullptr) {
        return MakeError(ErrorCode::kInternal, "cannot create a temporary directory {}: {}", tmpl,
                         std::strerror(errno));
      }
      data_dir_ = tmpl;
      remove_data_dir_ = true;
    } else {
      data_dir_ = flags_.data_dir;
      std::error_code ec;
      std::filesystem::create_directories(data_dir_, ec);
      if (ec) {
        return MakeError(ErrorCode::kInvalidArgument, "--data-dir={}: {}", flags_.data_dir,
                         ec.message());
      }
    }
    log_file_ = data_dir_ / "grpc-proxy.log";
  }
  if (auto s = LoadTls(); !s.ok()) return s;
  if (auto s = discoverer_.Start(member_tls_); !s.ok()) return s.error().Context("--master");
  give_up_at_ = Clock::now() + flags_.wait;
  spdlog::info("looking for the members through {}", discoverer_.source());
  boost::asio::post(io_, [this, alive = alive_] {
    if (*alive) Poll();
  });
  return OkStatus();
}

void Proxy::Poll() {
  if (stopping_) return;
  discoverer_.Fetch([this, alive = alive_](Result<ClientUrls> urls) {
    if (*alive && !stopping_) OnDiscovered(std::move(urls));
  });
}

void Proxy::OnDiscovered(Result<ClientUrls> urls) {
  if (urls.ok() && urls->empty()) {
    urls =
        MakeError(ErrorCode::kNotFound, "{} lists no running voting member", discoverer_.source());
  }
  if (!urls.ok()) return Retry(urls.error());
  if (flags_.once) return Accept(*urls);  // what is printed is for etcdctl, with its own flags
  // Not retried: the operator has to give the flags, and a proxy that quietly kept old plain
  // members would hide that the cluster moved to TLS.
  if (auto s = RequireTlsFor(*urls, member_tls_ != nullptr); !s.ok()) {
    return Finish(1, s.error().message);
  }
  bool any_https = std::any_of(urls->begin(), urls->end(),
                               [](const std::string& u) { return u.starts_with("https://"); });
  if (any_https && *urls != current_) return CheckMembers(*urls);
  Accept(*urls);
}

Status Proxy::LoadTls() {
  for (std::string* path : {&flags_.cacert, &flags_.cert, &flags_.key, &flags_.listen_cert_file,
                            &flags_.listen_key_file}) {
    MakeAbsolute(*path);
  }
  if (!flags_.cacert.empty()) {
    auto ca = ReadPem("--cacert", flags_.cacert);
    if (!ca.ok()) return ca.error();
    std::string cert, key;
    if (!flags_.cert.empty()) {
      auto c = ReadPem("--cert", flags_.cert);
      if (!c.ok()) return c.error();
      auto k = ReadPem("--key", flags_.key);
      if (!k.ok()) return k.error();
      cert = std::move(*c);
      key = std::move(*k);
      // etcd 3.4's grpc-proxy refuses a client certificate with a Common Name at every start
      // ("cert has non empty Common Name"), since etcd would take the name for a user's when
      // auth is on; said here once rather than by a grpc-proxy that keeps dying.
      auto info = tls::ReadCertificate(cert);
      if (!info.ok()) return info.error().Context("--cert=" + flags_.cert);
      if (!flags_.once && !info->subject_common_name.empty()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "--cert={}: the certificate has the Common Name '{}', and etcd's "
                         "grpc-proxy accepts only client certificates without one (etcd would "
                         "take it for a user name): issue the proxy's certificate with an empty "
                         "CN",
                         flags_.cert, info->subject_common_name);
      }
    }
    auto config = net::TlsClientConfig::Create(*ca, cert, key);
    if (!config.ok()) return config.error().Context("--cacert, --cert, --key");
    member_tls_ = *config;
  }
  // The grpc-proxy would only die on a bad listener certificate, with the reason in its log:
  // load them here so that the operator reads it at once.
  if (!flags_.once && !flags_.listen_cert_file.empty()) {
    auto cert = ReadPem("--listen-cert-file", flags_.listen_cert_file);
    if (!cert.ok()) return cert.error();
    auto key = ReadPem("--listen-key-file", flags_.listen_key_file);
    if (!key.ok()) return key.error();
    auto config = net::TlsServerConfig::Create(*cert, *key);
    if (!config.ok()) return config.error().Context("--listen-cert-file, --listen-key-file");
  }
  return OkStatus();
}

void Proxy::CheckMembers(const ClientUrls& urls) {
  struct Pending {
    size_t left = 0;
    bool any_answered = false;
    std::vector<Error> errors;
  };
  auto pending = std::make_shared<Pending>();
  std::vector<HttpUrl> members;
  for (const auto& u : urls) {
    auto parsed = ParseHttpUrl(u);
    if (parsed.ok() && parsed->scheme == "https") members.push_back(*parsed);
  }
  pending->left = members.size();
  for (const auto& member : members) {
    net::HttpRequest req;
    req.endpoint = member.endpoint;
    req.target = "/health";
    req.timeout = flags_.request_timeout;
    req.tls = member_tls_;
    std::string url = "https://" + member.endpoint.ToString();
    net::HttpFetch(io_, req, [this, alive = alive_, pending, urls, url](auto r) {
      if (!*alive || stopping_) return;
      // Any HTTP answer (an unhealthy member's 503 too) means that TLS let us in.
      if (r.ok()) {
        pending->any_answered = true;
      } else {
        pending->errors.push_back(r.error().Context(url));
      }
      if (--pending->left == 0) {
        OnMembersChecked(urls, pending->any_answered, std::move(pending->errors));
      }
    });
  }
}

void Proxy::OnMembersChecked(const ClientUrls& urls, bool any_answered, std::vector<Error> errors) {
  if (any_answered) return Accept(urls);
  std::vector<std::string> reasons;
  for (const auto& e : errors) reasons.push_back(e.message);
  Error error{ErrorCode::kUnavailable,
              fmt::format("no member answered over TLS ({}): {}", TlsHint(errors, flags_),
                          fmt::join(reasons, "; "))};
  if (!found_) return Retry(error);
  spdlog::warn("{}; pointing the grpc-proxy at them anyway", error.message);
  Accept(urls);
}

void Proxy::Accept(const ClientUrls& urls) {
  if (failures_ > 0 && found_) spdlog::info("{} answers again", discoverer_.source());
  failures_ = 0;
  last_error_.clear();
  found_ = true;
  if (flags_.once) {
    std::cout << JoinUrls(urls) << std::endl;
    return Finish(0, "");
  }
  if (urls != current_) PointAt(urls);
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  ScheduleNextPoll(
      std::chrono::duration_cast<milliseconds>(flags_.poll_interval * jitter(random_)));
}

void Proxy::Retry(const Error& error) {
  if (!found_ && Clock::now() >= give_up_at_) {
    return Finish(1, fmt::format("no etcd cluster found within --wait={}: {}",
                                 FormatDuration(flags_.wait), error.message));
  }
  // Say it once per new reason, not on every retry, so a long outage does not flood the log.
  if (error.message != last_error_) {
    if (found_) {
      spdlog::warn("{}; keeping the grpc-proxy on {}", error.message, JoinUrls(current_));
    } else {
      spdlog::warn("{}; still looking", error.message);
    }
    last_error_ = error.message;
  }
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  milliseconds delay = BackoffDelay(failures_++, std::min(flags_.poll_interval, milliseconds(500)),
                                    flags_.poll_interval * kMaxBackoffIntervals, unit(random_));
  if (!found_) {
    delay = std::min(delay, std::chrono::duration_cast<milliseconds>(give_up_at_ - Clock::now()));
    delay = std::max(delay, milliseconds(0));
  }
  ScheduleNextPoll(delay);
}

void Proxy::ScheduleNextPoll(milliseconds delay) {
  poll_timer_.expires_after(delay);
  poll_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (!ec && *alive) Poll();
  });
}

void Proxy::PointAt(const ClientUrls& urls) {
  if (current_.empty()) {
    spdlog::info("found the members: {}", JoinUrls(urls));
  } else {
    spdlog::info("members changed ({}): restarting the grpc-proxy on {}",
                 DescribeChange(current_, urls), JoinUrls(urls));
  }
  current_ = urls;
  if (!child_.pid()) return StartChild();
  if (restarting_) return;  // the child is on its way out; it restarts on current_
  restarting_ = true;
  child_.Signal(SIGTERM);
  child_timer_.expires_after(kStopGrace);
  child_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive || !child_.pid()) return;
    spdlog::warn("the grpc-proxy did not stop within {}; killing it", FormatDuration(kStopGrace));
    child_.KillNow();  // its exit callback does not run
    restarting_ = false;
    StartChild();
  });
}

void Proxy::StartChild() {
  if (stopping_) return;
  std::vector<std::string> argv = {flags_.etcd_bin,
                                   "grpc-proxy",
                                   "start",
                                   "--endpoints=" + JoinUrls(current_),
                                   "--listen-addr=" + flags_.listen_addr.ToString(),
                                   "--advertise-client-url=" + flags_.listen_addr.ToString(),
                                   "--data-dir=" + (data_dir_ / "grpc-proxy").string()};
  // grpc-proxy's flags for the members (etcdctl's names) and for its own listener.
  if (!flags_.cacert.empty()) argv.push_back("--cacert=" + flags_.cacert);
  if (!flags_.cert.empty()) {
    argv.insert(argv.end(), {"--cert=" + flags_.cert, "--key=" + flags_.key});
  }
  if (!flags_.listen_cert_file.empty()) {
    argv.insert(argv.end(),
                {"--cert-file=" + flags_.listen_cert_file, "--key-file=" + flags_.listen_key_file});
  }
  auto pid = child_.Start(argv, data_dir_, log_file_, [this, alive = alive_](int status) {
    if (*alive) OnChildExit(status);
  });
  if (!pid.ok()) return Finish(1, "cannot start the grpc-proxy: " + pid.error().message);
  child_started_ = Clock::now();
  spdlog::info("grpc-proxy (pid {}) on {} -> {} (log: {})", *pid, flags_.listen_addr.ToString(),
               JoinUrls(current_), log_file_.string());
}

void Proxy::OnChildExit(int wait_status) {
  child_timer_.cancel();
  std::string how = DescribeWaitStatus(wait_status);
  if (stopping_) return Finish(0, "");
  if (restarting_) {
    restarting_ = false;
    return StartChild();
  }
  std::string tail = executor::shell::ReadLogTail(log_file_, 8);
  bool quick = Clock::now() - child_started_ < kQuickDeath;
  quick_deaths_ = quick ? quick_deaths_ + 1 : 0;
  if (quick_deaths_ >= kMaxQuickDeaths) {
    return Finish(1, fmt::format("the grpc-proxy keeps exiting right after start ({}), last "
                                 "log lines:\n{}",
                                 how, tail));
  }
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  milliseconds delay =
      BackoffDelay(quick_deaths_, milliseconds(200), milliseconds(5'000), unit(random_));
  spdlog::error(
      "the grpc-proxy ended on its own ({}); starting it again in {}. Its last log "
      "lines:\n{}",
      how, FormatDuration(delay), tail);
  child_timer_.expires_after(delay);
  child_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (!ec && *alive && !child_.pid()) StartChild();
  });
}

void Proxy::Stop() {
  if (stopping_ || done_) return;
  // A script waiting on `$(etcd-mesos-proxy --once ...)` must not take "interrupted" for "no
  // members".
  if (flags_.once) return Finish(1, "interrupted before the members were found");
  stopping_ = true;
  poll_timer_.cancel();
  child_timer_.cancel();
  if (!child_.pid()) return Finish(0, "");
  spdlog::info("stopping the grpc-proxy (pid {})", *child_.pid());
  child_.Signal(SIGTERM);
  child_timer_.expires_after(kStopGrace);
  child_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive) return;
    child_.KillNow();
    Finish(0, "");
  });
}

void Proxy::Finish(int code, std::string why) {
  if (done_) return;
  done_ = true;
  stopping_ = true;
  poll_timer_.cancel();
  child_timer_.cancel();
  child_.KillNow();
  boost::asio::post(io_, [this, alive = alive_, code, why = std::move(why)] {
    if (*alive) on_done_(code, why);
  });
}

}  // namespace etcd_mesos::proxy
