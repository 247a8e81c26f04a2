// Client side of net/http.h.
#include <limits>
#include <type_traits>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "common/encoding.h"
#include "net/http.h"

namespace etcd_mesos::net {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

std::optional<std::string> FindHeader(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, name)) return v;
  }
  return std::nullopt;
}

std::string BasicAuthorization(std::string_view user, std::string_view secret) {
  return "Basic " + Base64Encode(std::string(user) + ":" + std::string(secret));
}

namespace {

bhttp::request<bhttp::string_body> BuildRequest(const HttpRequest& r) {
  bhttp::request<bhttp::string_body> req{r.method, r.target, 11};
  req.set(bhttp::field::host, r.endpoint.ToString());
  req.set(bhttp::field::user_agent, "etcd-mesos");
  for (const auto& [k, v] : r.headers) req.set(k, v);
  if (!r.body.empty() || r.method == Verb::post || r.method == Verb::put) {
    req.body() = r.body;
    req.prepare_payload();
  }
  return req;
}

template <typename Fields>
Headers CopyHeaders(const Fields& fields) {
  Headers out;
  for (const auto& f : fields)
    out.emplace_back(std::string(f.name_string()), std::string(f.value()));
  return out;
}

Error ExchangeError(const HttpRequest& r, std::string_view stage, const beast::error_code& ec) {
  std::string what = ec == beast::error::timeout ? "timed out" : ec.message();
  return MakeError(ErrorCode::kUnavailable, "{} {}{}: {} {}", bhttp::to_string(r.method),
                   r.endpoint.ToString(), r.target, stage, what);
}

// The two transports: plain TCP, and TLS over it. The exchanges below are written once for both;
// a plain request runs exactly the code it ran before TLS existed (no handshake step, no checks).
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

template <typename Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

// Beast reads a body into the free space of its buffer, at least 512 bytes and at most 64 KiB
// a read, and a flat_buffer only grows when it must: without room made up front a 20 MB artifact
// arrived in 40,000 reads of 512 bytes, each a turn of the io loop, which under load took over
// two minutes. 64 KiB is the most Beast reads at once.
constexpr size_t kBodyReadBytes = 64 << 10;

PlainStream NewStream(asio::io_context& io, const HttpRequest&, PlainStream*) {
  return PlainStream(io);
}
TlsStream NewStream(asio::io_context& io, const HttpRequest& r, TlsStream*) {
  return TlsStream(io, r.tls->context());
}

// What the server's certificate must name (the endpoint's IP address, else its host name), and
// the host name for SNI. Peer verification itself is the configuration's (verify_peer).
Status PrepareHandshake(TlsStream& stream, const std::string& host) {
  SSL* ssl = stream.native_handle();
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  boost::system::error_code not_ip;
  asio::ip::make_address(host, not_ip);
  bool ok = true;
  if (!not_ip) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1;
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    ok = X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) == 1 &&
         SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;
  }
  if (!ok) return MakeError(ErrorCode::kInvalidArgument, "TLS: cannot verify host '{}'", host);
  return OkStatus();
}

// A failed handshake says why: OpenSSL's "certificate verify failed" alone does not tell an
// unknown CA from an expired certificate or a name mismatch.
Error HandshakeError(const HttpRequest& r, TlsStream& stream, const beast::error_code& ec) {
  Error error = ExchangeError(r, "TLS handshake:", ec);
  long verified = SSL_get_verify_result(stream.native_handle());
  if (verified != X509_V_OK) {
    error.message += fmt::format(" ({})", X509_verify_cert_error_string(verified));
  }
  return error;
}

// One whole request/response exchange; owns itself through shared_from_this until done.
template <typename Stream>
class FetchOp : public std::enable_shared_from_this<FetchOp<Stream>> {
 public:
  FetchOp(asio::io_context& io, HttpRequest request, FetchCallback done)
      : resolver_(io),
        stream_(NewStream(io, request, static_cast<Stream*>(nullptr))),
        request_(std::move(request)),
        done_(std::move(done)) {
    parser_.body_limit(request_.max_body_bytes);
    parser_.header_limit(64 << 10);
  }

  void Start() {
    wire_ = BuildRequest(request_);
    beast::get_lowest_layer(stream_).expires_after(request_.timeout);
    resolver_.async_resolve(request_.endpoint.host, std::to_string(request_.endpoint.port),
                            [self = this->shared_from_this()](beast::error_code ec,
                                                              tcp::resolver::results_type results) {
                              self->OnResolve(ec, results);
                            });
  }

 private:
  void OnResolve(beast::error_code ec, const tcp::resolver::results_type& results) {
    if (ec) return Finish(ExchangeError(request_, "resolve", ec));
    beast::get_lowest_layer(stream_).async_connect(
        results, [self = this->shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
          self->OnConnect(ec);
        });
  }

  void OnConnect(beast::error_code ec) {
    if (ec) return Finish(ExchangeError(request_, "connect", ec));
    if constexpr (kIsTls<Stream>) {
      if (auto s = PrepareHandshake(stream_, request_.endpoint.host); !s.ok()) {
        return Finish(s.error());
      }
      stream_.async_handshake(
          ssl::stream_base::client, [self = this->shared_from_this()](beast::error_code ec) {
            if (ec) {
              return self->Finish(HandshakeError(self->request_, self->stream_, ec));
            }
            self->Write();
          });
    } else {
      Write();
    }
  }

  void Write() {
    bhttp::async_write(
        stream_, wire_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
          if (ec) return self->Finish(ExchangeError(self->request_, "write", ec));
          bhttp::async_read_header(self->stream_, self->buffer_, self->parser_,
                                   [self](beast::error_code ec, size_t) { self->OnHeader(ec); });
        });
  }

  // Boost 1.74's response parser ignores body_limit, so the limit is enforced here: on the
  // declared Content-Length, and chunk by chunk for chunked bodies.
  void OnHeader(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) return OnRead(ec);
    if (ec) return Finish(ExchangeError(request_, "read headers", ec));
    auto length = parser_.content_length();
    if (length && *length > request_.max_body_bytes) return OnRead(bhttp::error::body_limit);
    on_chunk_ = [this](uint64_t size, std::string_view, beast::error_code& ec) {
      chunked_total_ += size;
      if (chunked_total_ > request_.max_body_bytes) ec = bhttp::error::body_limit;
    };
    parser_.on_chunk_header(on_chunk_);  // Beast keeps a reference: on_chunk_ is a member
    if (!parser_.is_done()) buffer_.reserve(kBodyReadBytes);
    bhttp::async_read(
        stream_, buffer_, parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) {
      return Finish(MakeError(ErrorCode::kInvalidArgument, "{} {}{}: response body over {} bytes",
                              bhttp::to_string(request_.method), request_.endpoint.ToString(),
                              request_.target, request_.max_body_bytes));
    }
    if (ec) return Finish(ExchangeError(request_, "read", ec));
    auto& msg = parser_.get();
    HttpResponse response{msg.result_int(), CopyHeaders(msg.base()), std::move(msg.body())};
    Finish(std::move(response));
  }

  void Finish(Result<HttpResponse> result) {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(stream_).close();
    if (done_) {
      auto done = std::move(done_);
      done(std::move(result));
    }
  }

  tcp::resolver resolver_;
  Stream stream_;
  HttpRequest request_;
  FetchCallback done_;
  bhttp::request<bhttp::string_body> wire_;
  beast::flat_buffer buffer_;
  bhttp::response_parser<bhttp::string_body> parser_;
  uint64_t chunked_total_ = 0;
  std::function<void(uint64_t, std::string_view, beast::error_code&)> on_chunk_;
};

// A response body read piece by piece until it ends, fails, or Close() is called.
template <typename Stream>
class StreamOp : public HttpStream, public std::enable_shared_from_this<StreamOp<Stream>> {
 public:
  StreamOp(asio::io_context& io, HttpRequest request, Callbacks callbacks)
      : resolver_(io),
        stream_(NewStream(io, request, static_cast<Stream*>(nullptr))),
        request_(std::move(request)),
        cb_(std::move(callbacks)) {
    // The body of an event stream never ends. (Not boost::none: Boost 1.74 compares a known
    // Content-Length against an empty limit as if it were exceeded.)
    parser_.body_limit(std::numeric_limits<uint64_t>::max());
    parser_.header_limit(64 << 10);
  }

  void Start() {
    wire_ = BuildRequest(request_);
    beast::get_lowest_layer(stream_).expires_after(request_.timeout);
    resolver_.async_resolve(request_.endpoint.host, std::to_string(request_.endpoint.port),
                            [self = this->shared_from_this()](beast::error_code ec,
                                                              tcp::resolver::results_type results) {
                              self->OnResolve(ec, results);
                            });
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(stream_).close();
    // Callbacks are kept (not cleared) because Close() may be called from inside one of them;
    // closed_ silences them, and they die with this object once the cancelled reads return.
  }

 private:
  void OnResolve(beast::error_code ec, const tcp::resolver::results_type& results) {
    if (closed_) return;
    if (ec) return End(ExchangeError(request_, "resolve", ec));
    beast::get_lowest_layer(stream_).async_connect(
        results, [self = this->shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
          self->OnConnect(ec);
        });
  }

  void OnConnect(beast::error_code ec) {
    if (closed_) return;
    if (ec) return End(ExchangeError(request_, "connect", ec));
    if constexpr (kIsTls<Stream>) {
      if (auto s = PrepareHandshake(stream_, request_.endpoint.host); !s.ok()) return End(s);
      stream_.async_handshake(
          ssl::stream_base::client, [self = this->shared_from_this()](beast::error_code ec) {
            if (self->closed_) return;
            if (ec) {
              return self->End(HandshakeError(self->request_, self->stream_, ec));
            }
            self->Write();
          });
    } else {
      Write();
    }
  }

  void Write() {
    bhttp::async_write(
        stream_, wire_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
          if (self->closed_) return;
          if (ec) return self->End(ExchangeError(self->request_, "write", ec));
          bhttp::async_read_header(self->stream_, self->buffer_, self->parser_,
                                   [self](beast::error_code ec, size_t) { self->OnHeader(ec); });
        });
  }

  void OnHeader(beast::error_code ec) {
    if (closed_) return;
    if (ec) return End(ExchangeError(request_, "read headers", ec));
    // From here on, liveness is the caller's business (Mesos heartbeats), not a socket deadline.
    beast::get_lowest_layer(stream_).expires_never();
    const auto& msg = parser_.get();
    HttpResponse head{msg.result_int(), CopyHeaders(msg.base()), {}};
    if (cb_.on_headers) cb_.on_headers(head);
    buffer_.reserve(sizeof chunk_);  // see kBodyReadBytes
    ReadMore();
  }

  void ReadMore() {
    if (closed_) return;
    if (parser_.is_done()) return End(OkStatus());
    parser_.get().body().data = chunk_;
    parser_.get().body().size = sizeof chunk_;
    // read_some, not read: a read completes only when the buffer is full, and Mesos events are
    // small and must be delivered as soon as they arrive.
    bhttp::async_read_some(
        stream_, buffer_, parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    if (closed_) return;
    if (ec && ec != bhttp::error::need_buffer) return End(ExchangeError(request_, "read body", ec));
    size_t got = sizeof chunk_ - parser_.get().body().size;
    if (got > 0 && cb_.on_data) cb_.on_data(std::string_view(chunk_, got));
    ReadMore();
  }

  void End(Status status) {
    if (closed_) return;
    auto on_end = std::move(cb_.on_end);
    Close();
    if (on_end) on_end(std::move(status));
  }

  tcp::resolver resolver_;
  Stream stream_;
  HttpRequest request_;
  Callbacks cb_;
  bool closed_ = false;
  bhttp::request<bhttp::string_body> wire_;
  beast::flat_buffer buffer_;
  bhttp::response_parser<bhttp::buffer_body> parser_;
  char chunk_[16 << 10];
};

}  // namespace

namespace {
template <typename Stream>
void StartFetch(asio::io_context& io, HttpRequest request, FetchCallback done) {
  auto op = std::make_shared<FetchOp<Stream>>(io, std::move(request), std::move(done));
  // Posted so that the callback can never run inside this call.
  asio::post(io, [op] { op->Start(); });
}
}  // namespace

void HttpFetch(asio::io_context& io, HttpRequest request, FetchCallback done) {
  if (request.tls) return StartFetch<TlsStream>(io, std::move(request), std::move(done));
  StartFetch<PlainStream>(io, std::move(request), std::move(done));
}

Result<HttpResponse> HttpFetchSync(HttpRequest request) {
  asio::io_context io;
  std::optional<Result<HttpResponse>> out;
  HttpFetch(io, std::move(request), [&](Result<HttpResponse> r) { out.emplace(std::move(r)); });
  io.run();
  if (!out) return MakeError(ErrorCode::kInternal, "HTTP exchange ended without a result");
  return std::move(*out);
}

namespace {
// The caller's handle: dropping it closes the stream, so no callback outlives its owner.
class StreamHandle : public HttpStream {
 public:
  explicit StreamHandle(std::shared_ptr<HttpStream> op) : op_(std::move(op)) {}
  ~StreamHandle() override { op_->Close(); }
  void Close() override { op_->Close(); }

 private:
  std::shared_ptr<HttpStream> op_;
};

template <typename Stream>
std::unique_ptr<HttpStream> StartStream(asio::io_context& io, HttpRequest request,
                                        HttpStream::Callbacks callbacks) {
  auto op = std::make_shared<StreamOp<Stream>>(io, std::move(request), std::move(callbacks));
  asio::post(io, [op] { op->Start(); });
  return std::make_unique<StreamHandle>(std::move(op));
}
}  // namespace

std::unique_ptr<HttpStream> OpenHttpStream(asio::io_context& io, HttpRequest request,
                                           HttpStream::Callbacks callbacks) {
  if (request.tls) return StartStream<TlsStream>(io, std::move(request), std::move(callbacks));
  return StartStream<PlainStream>(io, std::move(request), std::move(callbacks));
}

HttpResponse TextResponse(unsigned status, std::string text) {
  if (!text.empty() && text.back() != '\n') text += '\n';
  return HttpResponse{status, {{"Content-Type", "text/plain; charset=utf-8"}}, std::move(text)};
}

HttpResponse JsonResponse(unsigned status, std::string json) {
  return HttpResponse{status, {{"Content-Type", "application/json"}}, std::move(json)};
}

}  // namespace etcd_mesos::net
