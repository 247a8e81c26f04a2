#include "etcd/client.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "etcd/codec.h"
#include "net/http.h"

namespace etcd_mesos::etcd {
namespace {

namespace asio = boost::asio;

// An error body longer than this is cut: we only quote it.
constexpr size_t kMaxErrorBody = 64 << 10;

Error ErrnoError(ErrorCode code, std::string_view what, const std::filesystem::path& path) {
  return MakeError(code, "{} {}: {}", what, path.string(), std::strerror(errno));
}

Status WriteAll(int fd, std::string_view data, const std::filesystem::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(ErrorCode::kInternal, "snapshot: cannot write", path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return OkStatus();
}

// Makes a rename durable: the new directory entry must reach the disk, not only the file.
void SyncDirectory(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// One snapshot download; owns itself (through the stream's callbacks and the timer) until it
// finishes, then lets go of the stream so that the cycle breaks.
class SnapshotOp : public std::enable_shared_from_this<SnapshotOp> {
 public:
  SnapshotOp(asio::io_context& io, net::HttpRequest request, std::filesystem::path path,
             std::chrono::milliseconds idle_timeout, Callback<SnapshotInfo> done)
      : io_(io),
        request_(std::move(request)),
        path_(std::move(path)),
        idle_timeout_(idle_timeout),
        timer_(io),
        done_(std::move(done)),
        decoder_([this](std::string_view bytes) { return WriteAll(fd_, bytes, temp_); }) {}

  ~SnapshotOp() { CloseAndRemoveTemp(); }

  void Start() {
    // Beside the destination, so that the final rename stays on one filesystem and is atomic.
    std::string templ =
        (path_.parent_path() / ("." + path_.filename().string() + ".partial-XXXXXX")).string();
    fd_ = ::mkostemp(templ.data(), O_CLOEXEC);
    if (fd_ < 0) {
      auto error = ErrnoError(ErrorCode::kInternal, "snapshot: cannot create", templ);
      auto self = shared_from_this();
      asio::post(io_, [self, error] { self->Finish(error); });
      return;
    }
    temp_ = templ;
    auto self = shared_from_this();
    net::HttpStream::Callbacks callbacks;
    callbacks.on_headers = [self](const net::HttpResponse& head) { self->OnHeaders(head); };
    callbacks.on_data = [self](std::string_view data) { self->OnData(data); };
    callbacks.on_end = [self](etcd_mesos::Status end) { self->OnEnd(std::move(end)); };
    stream_ = net::OpenHttpStream(io_, request_, std::move(callbacks));
    ArmTimer();
  }

 private:
  void ArmTimer() {
    timer_.expires_after(idle_timeout_);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->finished_) return;
      if (std::chrono::steady_clock::now() < self->timer_.expiry()) return;  // re-armed since
      self->Finish(MakeError(ErrorCode::kUnavailable,
                             "snapshot from {}: nothing received for {} ms (after {} bytes)",
                             self->request_.endpoint.ToString(), self->idle_timeout_.count(),
                             self->decoder_.database_bytes()));
    });
  }

  void OnHeaders(const net::HttpResponse& head) {
    status_ = head.status;
    ArmTimer();
  }

  void OnData(std::string_view data) {
    if (finished_) return;
    ArmTimer();
    if (status_ != 200) {
      error_body_.append(
          data.substr(0, kMaxErrorBody - std::min(kMaxErrorBody, error_body_.size())));
      return;
    }
    if (auto fed = decoder_.Feed(data); !fed.ok()) Finish(fed.error());
  }

  void OnEnd(etcd_mesos::Status end) {
    if (finished_) return;
    if (!end.ok()) {
      // The transport failed (reset, refused, timeout before headers): retry later.
      return Finish(end.error().Context(fmt::format("snapshot from {} after {} bytes",
                                                    request_.endpoint.ToString(),
                                                    decoder_.database_bytes())));
    }
    if (status_ != 200) return Finish(DecodeError(status_, error_body_).Context("snapshot"));
    auto info = decoder_.Finish();
    if (!info.ok()) return Finish(info.error());
    // Durable before visible: the data reaches the disk, then the name appears.
    if (::fsync(fd_) != 0) {
      return Finish(ErrnoError(ErrorCode::kInternal, "snapshot: cannot fsync", temp_));
    }
    ::close(fd_);
    fd_ = -1;
    if (::rename(temp_.c_str(), path_.c_str()) != 0) {
      return Finish(ErrnoError(ErrorCode::kInternal, "snapshot: cannot rename to", path_));
    }
    temp_.clear();
    SyncDirectory(path_.parent_path());
    Finish(std::move(info));
  }

  void Finish(Result<SnapshotInfo> result) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    CloseAndRemoveTemp();
    // Dropping the stream closes it; its callbacks (which hold us) die with it.
    stream_.reset();
    if (done_) {
      auto done = std::move(done_);
      done(std::move(result));
    }
  }

  void CloseAndRemoveTemp() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (!temp_.empty()) {
      ::unlink(temp_.c_str());
      temp_.clear();
    }
  }

  asio::io_context& io_;
  net::HttpRequest request_;
  std::filesystem::path path_;
  std::filesystem::path temp_;
  std::chrono::milliseconds idle_timeout_;
  asio::steady_timer timer_;
  Callback<SnapshotInfo> done_;
  int fd_ = -1;
  unsigned status_ = 0;
  std::string error_body_;
  bool finished_ = false;
  SnapshotStreamDecoder decoder_;
  std::unique_ptr<net::HttpStream> stream_;
};

}  // namespace

Client::Client(asio::io_context& io, HostPort endpoint, Options options)
    : io_(io), endpoint_(std::move(endpoint)), options_(std::move(options)) {}

Result<HostPort> ClientEndpoint(std::string_view client_url, const Client::Options& options) {
  auto url = ParseHttpUrl(client_url);
  if (!url.ok()) return url.error();
  bool https = url->scheme == "https";
  if (https && !options.tls) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "{}: an https member, and no TLS configuration to reach it with", client_url);
  }
  if (!https && options.tls) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "{}: a plain http member, and TLS is configured: its URL should be https",
                     client_url);
  }
  return url->endpoint;
}

template <typename T, typename Decode>
void Client::Send(std::string target, std::optional<std::string> body, Decode decode,
                  Callback<T> done) {
  net::HttpRequest request;
  request.method = body ? net::Verb::post : net::Verb::get;
  request.endpoint = endpoint_;
  request.target = target;
  if (body) {
    request.headers = {{"Content-Type", "application/json"}};
    request.body = std::move(*body);
  }
  request.timeout = options_.request_timeout;
  request.max_body_bytes = options_.max_response_bytes;
  request.tls = options_.tls;
  // The callback holds copies of what it needs, not the client: it may outlive it.
  net::HttpFetch(io_, std::move(request),
                 [where = endpoint_.ToString() + target, decode,
                  done = std::move(done)](Result<net::HttpResponse> response) {
                   if (!response.ok()) return done(response.error());
                   Result<T> out = decode(response->status, response->body);
                   if (!out.ok()) return done(out.error().Context(where));
                   done(std::move(out));
                 });
}

template <typename T, typename Decode>
void Client::Call(std::string target, std::string body, Decode decode, Callback<T> done) {
  Send<T>(
      std::move(target), std::move(body),
      [decode](unsigned status, std::string_view text) {
        return DecodeResponse(status, text, decode);
      },
      std::move(done));
}

void Client::MemberList(Callback<MemberListResponse> done) {
  Call<MemberListResponse>("/v3/cluster/member/list", "{}", DecodeMemberList, std::move(done));
}

void Client::MemberAdd(std::vector<std::string> peer_urls, bool as_learner,
                       Callback<MemberAddResponse> done) {
  Call<MemberAddResponse>("/v3/cluster/member/add", EncodeMemberAdd(peer_urls, as_learner),
                          DecodeMemberAdd, std::move(done));
}

void Client::MemberPromote(uint64_t id, Callback<MemberListResponse> done) {
  Call<MemberListResponse>("/v3/cluster/member/promote", EncodeMemberId(id), DecodeMemberList,
                           std::move(done));
}

void Client::MemberRemove(uint64_t id, Callback<MemberListResponse> done) {
  Call<MemberListResponse>("/v3/cluster/member/remove", EncodeMemberId(id), DecodeMemberList,
                           std::move(done));
}

void Client::MemberUpdate(uint64_t id, std::vector<std::string> peer_urls,
                          Callback<MemberListResponse> done) {
  Call<MemberListResponse>("/v3/cluster/member/update", EncodeMemberUpdate(id, peer_urls),
                           DecodeMemberList, std::move(done));
}

void Client::Status(Callback<StatusResponse> done) {
  Call<StatusResponse>("/v3/maintenance/status", "{}", DecodeStatus, std::move(done));
}

void Client::Health(Callback<HealthResponse> done) {
  Send<HealthResponse>("/health", std::nullopt, DecodeHealth, std::move(done));
}

void Client::DiskLatency(Callback<DiskLatencyTotals> done) {
  Send<DiskLatencyTotals>("/metrics", std::nullopt, DecodeDiskLatency, std::move(done));
}

void Client::PeerConnections(Callback<etcd::PeerConnections> done) {
  Send<etcd::PeerConnections>("/metrics", std::nullopt, DecodePeerConnections, std::move(done));
}

void Client::AlarmList(Callback<AlarmResponse> done) {
  Call<AlarmResponse>("/v3/maintenance/alarm", EncodeAlarmList(), DecodeAlarms, std::move(done));
}

void Client::AlarmDisarm(uint64_t member_id, AlarmType type, Callback<AlarmResponse> done) {
  Call<AlarmResponse>("/v3/maintenance/alarm", EncodeAlarmDisarm(member_id, type), DecodeAlarms,
                      std::move(done));
}

void Client::Compact(uint64_t revision, Callback<ResponseHeader> done) {
  Call<ResponseHeader>("/v3/kv/compaction", EncodeCompaction(revision, /*physical=*/true),
                       DecodeHeaderOnly, std::move(done));
}

void Client::MoveLeader(uint64_t target_id, Callback<ResponseHeader> done) {
  Call<ResponseHeader>("/v3/maintenance/transfer-leadership", EncodeMoveLeader(target_id),
                       DecodeHeaderOnly, std::move(done));
}

void Client::Defragment(Callback<ResponseHeader> done) {
  Call<ResponseHeader>("/v3/maintenance/defragment", "{}", DecodeHeaderOnly, std::move(done));
}

void Client::Put(std::string key, std::string value, Callback<PutResponse> done) {
  Call<PutResponse>("/v3/kv/put", EncodePut(key, value), DecodePut, std::move(done));
}

void Client::Get(std::string key, bool serializable, Callback<RangeResponse> done) {
  Call<RangeResponse>("/v3/kv/range", EncodeRange(key, serializable), DecodeRange, std::move(done));
}

void Client::CompareAndSwap(std::string key, std::optional<std::string> expected,
                            std::string new_value, Callback<TxnResponse> done) {
  Call<TxnResponse>("/v3/kv/txn", EncodeCompareAndSwap(key, expected, new_value), DecodeTxn,
                    std::move(done));
}

void Client::Snapshot(std::filesystem::path path, Callback<SnapshotInfo> done) {
  net::HttpRequest request;
  request.method = net::Verb::post;
  request.endpoint = endpoint_;
  request.target = "/v3/maintenance/snapshot";
  request.headers = {{"Content-Type", "application/json"}};
  request.body = "{}";
  request.timeout = options_.request_timeout;  // until the headers; then the idle timer rules
  request.tls = options_.tls;
  auto op = std::make_shared<SnapshotOp>(io_, std::move(request), std::move(path),
                                         options_.request_timeout, std::move(done));
  op->Start();
}

}  // namespace etcd_mesos::etcd
