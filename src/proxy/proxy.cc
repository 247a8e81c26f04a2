#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "common/duration.h"
#include "net/http.h"

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

}  // namespace

// ---- Discoverer ---------------------------------------------------------------------------

Discoverer::Discoverer(boost::asio::io_context& io, const ProxyFlags& flags)
    : io_(io), flags_(flags) {}

Status Discoverer::Start() {
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
        auto urls = ClientUrlsFromMasterState(r->body, flags_.framework_name);
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
  if (auto s = discoverer_.Start(); !s.ok()) return s.error().Context("--master");
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
  if (failures_ > 0 && found_) spdlog::info("{} answers again", discoverer_.source());
  failures_ = 0;
  last_error_.clear();
  found_ = true;
  if (flags_.once) {
    std::cout << JoinUrls(*urls) << std::endl;
    return Finish(0, "");
  }
  if (*urls != current_) PointAt(*urls);
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
