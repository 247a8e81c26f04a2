#include "etcd/hashkv.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>

#include "etcd/codec.h"

extern char** environ;

namespace etcd_mesos::etcd {
namespace {

constexpr size_t kMaxOutput = 64 * 1024;  // a hashkv answer is a few hundred bytes
constexpr std::chrono::milliseconds kReapPoll{20};

// One etcdctl run: its output pipe, its deadline, and reaping once the pipe closes.
class HashKvRun : public std::enable_shared_from_this<HashKvRun> {
 public:
  HashKvRun(boost::asio::io_context& io, Callback<HashKvResponse> done)
      : io_(io), pipe_(io), timer_(io), done_(std::move(done)) {}

  void Start(const std::string& etcdctl, const HostPort& endpoint,
             const std::optional<TlsFiles>& tls, uint64_t revision,
             std::chrono::milliseconds timeout) {
    auto seconds =
        std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(timeout).count());
    std::vector<std::string> args = {etcdctl};
    for (auto& flag : EtcdctlEndpointFlags(endpoint, tls)) args.push_back(std::move(flag));
    args.insert(args.end(), {fmt::format("--dial-timeout={}s", seconds),
                             fmt::format("--command-timeout={}s", seconds), "endpoint", "hashkv",
                             fmt::format("--rev={}", revision), "-w", "json"});
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return Finish(Errno("pipe"));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
    // Nothing else of ours (the admin server's listening socket, say) goes with it.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    std::vector<std::string> env_strings = {"ETCDCTL_API=3"};
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string_view(*e).starts_with("ETCDCTL_")) continue;  // ours decide
      env_strings.emplace_back(*e);
    }
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, etcdctl.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      pid_ = -1;
      errno = rc;
      return Finish(Errno("starting " + etcdctl));
    }
    pipe_.assign(fds[0]);
    timer_.expires_after(timeout + std::chrono::seconds(2));  // etcdctl's own timeouts first
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->pid_ <= 0) return;
      self->timed_out_ = true;
      ::kill(self->pid_, SIGKILL);
    });
    Read();
  }

 private:
  Error Errno(const std::string& what) {
    return MakeError(ErrorCode::kInternal, "hashkv: {}: {}", what, std::strerror(errno));
  }

  void Read() {
    pipe_.async_read_some(boost::asio::buffer(chunk_),
                          [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                            if (self->output_.size() < kMaxOutput) {
                              self->output_.append(self->chunk_.data(), n);
                            }
                            if (!ec) return self->Read();
                            self->pipe_.close();
                            self->Reap();
                          });
  }

  // The pipe closed: the child is exiting (or killed). Reaped without blocking the loop.
  void Reap() {
    int status = 0;
    pid_t got = ::waitpid(pid_, &status, WNOHANG);
    if (got == 0) {
      timer_.expires_after(kReapPoll);
      return timer_.async_wait([self = shared_from_this()](boost::system::error_code) {
        if (self->pid_ > 0 && self->reap_polls_++ > 500) ::kill(self->pid_, SIGKILL);
        self->Reap();
      });
    }
    pid_ = -1;
    timer_.cancel();
    if (timed_out_) {
      return Finish(MakeError(ErrorCode::kUnavailable, "hashkv: etcdctl did not finish in time"));
    }
    Result<HashKvResponse> r = DecodeEtcdctlHashKv(output_);
    if (r.ok() && got > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      r = MakeError(ErrorCode::kUnavailable, "hashkv: etcdctl failed: {}", output_.substr(0, 200));
    }
    Finish(std::move(r));
  }

  void Finish(Result<HashKvResponse> r) {
    boost::asio::post(
        io_, [done = std::move(done_), r = std::move(r)]() mutable { done(std::move(r)); });
  }

  boost::asio::io_context& io_;
  boost::asio::posix::stream_descriptor pipe_;
  boost::asio::steady_timer timer_;
  Callback<HashKvResponse> done_;
  pid_t pid_ = -1;
  bool timed_out_ = false;
  int reap_polls_ = 0;
  std::array<char, 4096> chunk_{};
  std::string output_;
};

}  // namespace

void HashKv(boost::asio::io_context& io, const std::string& etcdctl, const HostPort& endpoint,
            const std::optional<TlsFiles>& tls, uint64_t revision,
            std::chrono::milliseconds timeout, Callback<HashKvResponse> done) {
  std::make_shared<HashKvRun>(io, std::move(done))
      ->Start(etcdctl, endpoint, tls, revision, timeout);
}

}  // namespace etcd_mesos::etcd
