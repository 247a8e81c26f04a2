// Server side of net/http.h.
#include <deque>
#include <unordered_map>

#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "net/http.h"

namespace etcd_mesos::net {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

namespace {

// One connection, whatever its transport: what responders and the server need of it.
class Session {
 public:
  virtual ~Session() = default;
  virtual void Shutdown() = 0;
  virtual void Send(HttpResponse response, bool keep_alive) = 0;
  virtual std::shared_ptr<ResponseStream> BeginStream(unsigned status, Headers headers) = 0;
};

// Shared by the server object and its sessions, so that sessions outliving Stop() stay safe.
struct ServerState {
  asio::io_context& io;
  HttpServer::Options options;
  Handler handler;
  bool stopped = false;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
};

std::string ReasonLine(unsigned status) {
  auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  return fmt::format("HTTP/1.1 {} {}\r\n", status, std::string_view(reason.data(), reason.size()));
}

// The two transports. A plain session runs the code it ran before TLS existed: no handshake, and
// a chunked body written straight to the socket.
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

tcp::socket& Wire(PlainStream& stream) { return stream.socket(); }
TlsStream& Wire(TlsStream& stream) { return stream; }

template <typename Stream>
class ChunkedStream;

template <typename Stream>
class BasicSession : public Session, public std::enable_shared_from_this<BasicSession<Stream>> {
 public:
  // `stream_args` make the stream: the accepted socket, and for TLS the server's context.
  template <typename... StreamArgs>
  explicit BasicSession(std::shared_ptr<ServerState> state, StreamArgs&&... stream_args)
      : stream_(std::forward<StreamArgs>(stream_args)...), state_(std::move(state)) {
    beast::error_code ec;
    auto ep = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    remote_ = ec ? "?" : fmt::format("{}:{}", ep.address().to_string(), ep.port());
  }

  void Start();
  void Shutdown() override;
  void Send(HttpResponse response, bool keep_alive) override;
  std::shared_ptr<ResponseStream> BeginStream(unsigned status, Headers headers) override;

 private:
  friend class ChunkedStream<Stream>;

  void ReadRequest() {
    parser_.emplace();
    parser_->body_limit(state_->options.max_body_bytes);
    parser_->header_limit(state_->options.max_header_bytes);
    beast::get_lowest_layer(stream_).expires_after(state_->options.idle_timeout);
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRequest(ec); });
  }

  void OnRequest(beast::error_code ec) {
    if (state_->stopped) return Shutdown();
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
        ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset) {
      return Shutdown();
    }
    if (ec == bhttp::error::body_limit) {
      return Send(TextResponse(413, fmt::format("request body over {} bytes",
                                                state_->options.max_body_bytes)),
                  false);
    }
    if (ec == bhttp::error::header_limit) {
      return Send(TextResponse(431, "request headers too large"), false);
    }
    if (ec) return Send(TextResponse(400, "malformed HTTP request: " + ec.message()), false);

    auto msg = parser_->release();
    ServerRequest request;
    request.method = msg.method();
    request.method_string = std::string(msg.method_string());
    request.target = std::string(msg.target());
    size_t q = request.target.find('?');
    request.path = request.target.substr(0, q);
    if (q != std::string::npos) request.query = request.target.substr(q + 1);
    for (const auto& f : msg.base()) {
      request.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    }
    request.body = std::move(msg.body());
    request.remote = remote_;
    keep_alive_ = msg.keep_alive();
    DispatchRequest(std::move(request));
  }

  void DispatchRequest(ServerRequest request);

  Stream stream_;
  std::shared_ptr<ServerState> state_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> response_;
  bool keep_alive_ = false;
  bool closed_ = false;
  std::weak_ptr<ChunkedStream<Stream>> chunked_;
};

// A chunked response body written as the application produces it.
template <typename Stream>
class ChunkedStream : public ResponseStream,
                      public std::enable_shared_from_this<ChunkedStream<Stream>> {
 public:
  explicit ChunkedStream(std::shared_ptr<BasicSession<Stream>> session)
      : session_(std::move(session)) {}

  void Begin(std::string head) {
    queue_.push_back(std::move(head));
    Flush();
    WatchPeer();
  }

  bool Write(std::string data) override {
    if (closed_ || ending_) return false;
    if (data.empty()) return true;  // an empty chunk would end the body
    queue_.push_back(fmt::format("{:x}\r\n", data.size()) + data + "\r\n");
    Flush();
    return true;
  }

  void Close() override {
    if (closed_ || ending_) return;
    ending_ = true;
    queue_.push_back("0\r\n\r\n");
    Flush();
  }

  bool closed() const override { return closed_ || ending_; }

  void OnClosed(std::function<void()> callback) override {
    if (closed_) {
      asio::post(session_->stream_.get_executor(), std::move(callback));
      return;
    }
    on_closed_.push_back(std::move(callback));
  }

  void Terminate() {
    if (closed_) return;
    closed_ = true;
    queue_.clear();
    session_->Shutdown();
    auto callbacks = std::move(on_closed_);
    for (auto& cb : callbacks) cb();
  }

 private:
  void Flush() {
    if (writing_ || queue_.empty() || closed_) return;
    writing_ = true;
    asio::async_write(Wire(session_->stream_), asio::buffer(queue_.front()),
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        self->writing_ = false;
                        if (ec) return self->Terminate();
                        if (!self->queue_.empty()) self->queue_.pop_front();
                        if (self->queue_.empty() && self->ending_) return self->Terminate();
                        self->Flush();
                      });
  }

  // The only way to notice that the peer went away while we have nothing to send: a read that
  // completes (with EOF or an error) when the connection closes.
  void WatchPeer() {
    Wire(session_->stream_)
        .async_read_some(asio::buffer(scratch_),
                         [self = this->shared_from_this()](beast::error_code ec, size_t) {
                           if (ec) return self->Terminate();
                           self->WatchPeer();  // a client has no business sending more; ignore it
                         });
  }

  std::shared_ptr<BasicSession<Stream>> session_;
  std::deque<std::string> queue_;
  bool writing_ = false;
  bool ending_ = false;
  bool closed_ = false;
  std::vector<std::function<void()>> on_closed_;
  char scratch_[512];
};

class ResponderImpl : public Responder {
 public:
  ResponderImpl(std::shared_ptr<Session> session, bool keep_alive, std::string what)
      : session_(std::move(session)), keep_alive_(keep_alive), what_(std::move(what)) {}

  ~ResponderImpl() override {
    if (!answered_) {
      spdlog::error("HTTP handler dropped {} without answering; sent 500", what_);
      session_->Send(TextResponse(500, "internal error: request was not answered"), false);
    }
  }

  void Respond(HttpResponse response) override {
    if (answered_) {
      spdlog::error("HTTP handler answered {} twice; second answer dropped", what_);
      return;
    }
    answered_ = true;
    session_->Send(std::move(response), keep_alive_);
  }

  std::shared_ptr<ResponseStream> StartStream(unsigned status, Headers headers) override {
    if (answered_) {
      spdlog::error("HTTP handler answered {} twice; stream refused", what_);
      return nullptr;
    }
    answered_ = true;
    return session_->BeginStream(status, std::move(headers));
  }

 private:
  std::shared_ptr<Session> session_;
  bool keep_alive_;
  std::string what_;
  bool answered_ = false;
};

template <typename Stream>
void BasicSession<Stream>::Start() {
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    // The handshake has the request's deadline: a peer that connects and says nothing is dropped.
    beast::get_lowest_layer(stream_).expires_after(state_->options.idle_timeout);
    stream_.async_handshake(
        ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
          if (ec) {
            // A plain HTTP client, an untrusted or missing client certificate.
            spdlog::info("TLS handshake with {} failed: {}", self->remote_, ec.message());
            return self->Shutdown();
          }
          self->ReadRequest();
        });
  } else {
    ReadRequest();
  }
}

template <typename Stream>
void BasicSession<Stream>::DispatchRequest(ServerRequest request) {
  auto responder = std::make_shared<ResponderImpl>(
      this->shared_from_this(), keep_alive_,
      fmt::format("{} {} from {}", request.method_string, request.path, remote_));
  state_->handler(request, std::move(responder));
}

template <typename Stream>
void BasicSession<Stream>::Send(HttpResponse response, bool keep_alive) {
  if (closed_) return;
  response_ = {};
  response_.version(11);
  response_.result(response.status);
  response_.set(bhttp::field::server, state_->options.server_name);
  for (auto& [k, v] : response.headers) response_.set(k, v);
  response_.body() = std::move(response.body);
  response_.keep_alive(keep_alive && !state_->stopped);
  response_.prepare_payload();
  bool again = response_.keep_alive();
  // The deadline bounds a stuck peer, not a slow link: a large body (the scheduler serves ~20 MB
  // artifacts to several fetchers at once) gets time in proportion, at 256 KiB/s at worst.
  auto body_allowance = std::chrono::seconds(response_.body().size() / (256 << 10));
  beast::get_lowest_layer(stream_).expires_after(state_->options.idle_timeout + body_allowance);
  bhttp::async_write(stream_, response_,
                     [self = this->shared_from_this(), again](beast::error_code ec, size_t) {
                       if (ec || !again) return self->Shutdown();
                       self->ReadRequest();
                     });
}

template <typename Stream>
std::shared_ptr<ResponseStream> BasicSession<Stream>::BeginStream(unsigned status,
                                                                  Headers headers) {
  beast::get_lowest_layer(stream_).expires_never();
  std::string head = ReasonLine(status);
  head += fmt::format("Server: {}\r\n", state_->options.server_name);
  for (const auto& [k, v] : headers) head += fmt::format("{}: {}\r\n", k, v);
  head += "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  auto chunked = std::make_shared<ChunkedStream<Stream>>(this->shared_from_this());
  chunked_ = chunked;
  chunked->Begin(std::move(head));
  return chunked;
}

template <typename Stream>
void BasicSession<Stream>::Shutdown() {
  if (closed_) return;
  closed_ = true;
  beast::error_code ignored;
  beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(stream_).close();
  state_->sessions.erase(this);
  if (auto chunked = chunked_.lock()) chunked->Terminate();
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::io_context& io, Options options, Handler handler)
      : state(
            std::make_shared<ServerState>(ServerState{io, std::move(options), std::move(handler)})),
        acceptor(io) {}

  void Accept() {
    acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
      if (self->state->stopped || !self->acceptor.is_open()) return;
      if (!ec) {
        self->StartSession(std::move(socket));
      } else {
        spdlog::warn("HTTP accept on {} failed: {}", self->bound.ToString(), ec.message());
      }
      self->Accept();
    });
  }

  void StartSession(tcp::socket socket) {
    if (const auto& tls = state->options.tls) {
      Start(std::make_shared<BasicSession<TlsStream>>(state, std::move(socket), tls->context()));
    } else {
      Start(std::make_shared<BasicSession<PlainStream>>(state, std::move(socket)));
    }
  }

  template <typename Stream>
  void Start(std::shared_ptr<BasicSession<Stream>> session) {
    state->sessions[session.get()] = session;
    session->Start();
  }

  std::shared_ptr<ServerState> state;
  tcp::acceptor acceptor;
  HostPort bound;
};

HttpServer::HttpServer(asio::io_context& io, Options options, Handler handler)
    : impl_(std::make_shared<Impl>(io, std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() { Stop(); }

Result<HostPort> HttpServer::Listen(const HostPort& address) {
  beast::error_code ec;
  auto ip = asio::ip::make_address(address.host, ec);
  if (ec) {
    return MakeError(ErrorCode::kInvalidArgument, "listen address '{}' is not an IP address",
                     address.host);
  }
  tcp::endpoint endpoint(ip, address.port);
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    acceptor.close(ignored);
    return MakeError(ErrorCode::kUnavailable, "cannot listen on {}: {}", address.ToString(),
                     ec.message());
  }
  impl_->bound = HostPort{address.host, acceptor.local_endpoint().port()};
  impl_->Accept();
  return impl_->bound;
}

void HttpServer::Stop() {
  if (!impl_ || impl_->state->stopped) return;
  impl_->state->stopped = true;
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
  // Copy first: Shutdown() removes each session from the map.
  std::vector<std::shared_ptr<Session>> open;
  for (auto& [ptr, weak] : impl_->state->sessions) {
    if (auto s = weak.lock()) open.push_back(std::move(s));
  }
  for (auto& s : open) s->Shutdown();
}

HostPort HttpServer::address() const { return impl_->bound; }

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace etcd_mesos::net
