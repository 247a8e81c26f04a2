// HTTP/1.1 client and server on Boost.Beast, for every process of etcd-mesos.
//
// The client has two shapes: HttpFetch (one request, whole response, one deadline) and HttpStream
// (a long-lived response read as it arrives: the Mesos SUBSCRIBE event stream, an etcd snapshot).
// The server hands each request to a handler that answers now or later, or turns the response
// into an endless chunked stream (what a Mesos master does for SUBSCRIBE).
//
// Both sides speak HTTPS when given a TLS configuration (TlsClientConfig, TlsServerConfig), and
// plain HTTP otherwise. A client verifies the server: its certificate must chain to the client's CA
// bundle and name the endpoint's IP address or host name (subject alternative names). A server may
// require a client certificate that chains to its client CA bundle (etcd's --client-cert-auth).
// A configuration parses its PEM texts and builds its OpenSSL context once, when it is created, so
// a bad certificate or key fails there, and every request that shares it costs no parsing.
//
// Threading: everything runs on the boost::asio::io_context passed in, which the owner runs on one
// thread. Callbacks are invoked on that thread, never inline inside the call that started the
// work. Objects here are not thread-safe; post onto the io_context to use them from elsewhere.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/beast/http/verb.hpp>

#include "common/result.h"
#include "common/uri.h"

namespace boost::asio::ssl {
class context;
}

namespace etcd_mesos::net {

using Verb = boost::beast::http::verb;
using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive lookup of the first header named `name`.
std::optional<std::string> FindHeader(const Headers& headers, std::string_view name);

// "Basic base64(user:secret)" for an Authorization header.
std::string BasicAuthorization(std::string_view user, std::string_view secret);

// TLS for a client: the CA bundle a server's certificate must chain to and, when the server asks
// for one, the client's own certificate (with its chain) and private key. Immutable once created;
// share it between requests and threads.
class TlsClientConfig {
 public:
  // kInvalidArgument naming the part that does not load: an empty or malformed CA bundle, a
  // certificate without its key (or the reverse), a key that is not the certificate's, an
  // encrypted key. Never quotes a key.
  static Result<std::shared_ptr<const TlsClientConfig>> Create(
      std::string_view ca_bundle_pem, std::string_view certificate_pem = {},
      std::string_view key_pem = {});
  // The same from files, as etcdctl's --cacert, --cert and --key name them (the certificate and
  // its key may be one file, as GET /client-cert gives them). Empty cert and key paths: no client
  // certificate. kInvalidArgument naming the file that cannot be read or does not load.
  static Result<std::shared_ptr<const TlsClientConfig>> FromFiles(const std::string& ca_file,
                                                                  const std::string& cert_file,
                                                                  const std::string& key_file);
  // The host's trust store (OpenSSL's default paths: the system's CA certificates, or
  // $SSL_CERT_FILE / $SSL_CERT_DIR when set), as curl and so Mesos's fetcher use it, plus
  // `extra_ca_pem` when given. No client certificate.
  static Result<std::shared_ptr<const TlsClientConfig>> SystemTrust(
      std::string_view extra_ca_pem = {});
  ~TlsClientConfig();

  // For net's own streams: the OpenSSL context every connection of this configuration uses.
  boost::asio::ssl::context& context() const { return *context_; }

 private:
  explicit TlsClientConfig(std::unique_ptr<boost::asio::ssl::context> context);
  std::unique_ptr<boost::asio::ssl::context> context_;
};

// TLS for a server: its certificate (with any chain) and private key and, when set, the CA bundle
// a client's certificate must chain to: a client without such a certificate is refused at the
// handshake. Immutable once created.
class TlsServerConfig {
 public:
  // kInvalidArgument naming the part that does not load; never quotes a key.
  static Result<std::shared_ptr<const TlsServerConfig>> Create(std::string_view certificate_pem,
                                                               std::string_view key_pem,
                                                               std::string_view client_ca_pem = {});
  ~TlsServerConfig();

  boost::asio::ssl::context& context() const { return *context_; }

 private:
  explicit TlsServerConfig(std::unique_ptr<boost::asio::ssl::context> context);
  std::unique_ptr<boost::asio::ssl::context> context_;
};

struct HttpRequest {
  Verb method = Verb::get;
  HostPort endpoint;
  std::string target = "/";  // path and query
  Headers headers;
  std::string body;
  // Deadline for the whole exchange (HttpFetch) or until the response headers (HttpStream).
  std::chrono::milliseconds timeout{10'000};
  // Largest body HttpFetch accepts; a larger one is an error, not a truncation.
  uint64_t max_body_bytes = 16ull << 20;
  // Set: HTTPS with this configuration (the endpoint's host is what the server's certificate must
  // name). Unset: plain HTTP.
  std::shared_ptr<const TlsClientConfig> tls;
};

struct HttpResponse {
  unsigned status = 0;
  Headers headers;
  std::string body;

  std::optional<std::string> Header(std::string_view name) const {
    return FindHeader(headers, name);
  }
};

using FetchCallback = std::function<void(Result<HttpResponse>)>;

// Sends one request on a fresh connection and delivers the whole response. Any HTTP status is a
// response; only failures to exchange are errors: kUnavailable for connect refused, reset,
// timeout, a failed TLS handshake (the message says "TLS handshake:" and why, e.g. the server's
// certificate did not verify) or a malformed response, kInvalidArgument for a body over
// max_body_bytes.
void HttpFetch(boost::asio::io_context& io, HttpRequest request, FetchCallback done);

// The same, blocking on a private io_context: for command-line tools and tests, never for
// code that runs on an event loop.
Result<HttpResponse> HttpFetchSync(HttpRequest request);

// A response read incrementally. Callbacks: on_headers once (status and headers, empty body),
// then on_data for each piece of body as it arrives (pieces are unrelated to HTTP chunks), then
// on_end exactly once: OK when the body ended normally, an error when the connection failed.
// After Close(), or once the handle is destroyed, no callback is invoked again.
class HttpStream {
 public:
  struct Callbacks {
    std::function<void(const HttpResponse& head)> on_headers;
    std::function<void(std::string_view data)> on_data;
    std::function<void(Status end)> on_end;
  };
  virtual ~HttpStream() = default;
  virtual void Close() = 0;
};

std::unique_ptr<HttpStream> OpenHttpStream(boost::asio::io_context& io, HttpRequest request,
                                           HttpStream::Callbacks callbacks);

// ---- Server -------------------------------------------------------------------------------

struct ServerRequest {
  Verb method = Verb::unknown;
  std::string method_string;
  std::string target;  // as sent: path and query
  std::string path;    // target without the query
  std::string query;   // after '?', not decoded
  Headers headers;
  std::string body;
  std::string remote;  // "ip:port" of the peer, for logs

  std::optional<std::string> Header(std::string_view name) const {
    return FindHeader(headers, name);
  }
};

// The body of a streamed (chunked) response. Write() queues data to be sent as one chunk, in
// order; once the peer has gone or Close() was called it returns false and does nothing.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  virtual bool Write(std::string data) = 0;
  virtual void Close() = 0;  // ends the chunked body and the connection
  virtual bool closed() const = 0;
  // Called once when the stream ends for any reason (peer gone, Close(), server stopped).
  virtual void OnClosed(std::function<void()> callback) = 0;
};

// How a handler answers one request: exactly one of Respond() or StartStream(), now or later.
// A Responder that is dropped unanswered answers 500 so that no client hangs.
class Responder {
 public:
  virtual ~Responder() = default;
  virtual void Respond(HttpResponse response) = 0;
  virtual std::shared_ptr<ResponseStream> StartStream(unsigned status, Headers headers) = 0;
};

using Handler = std::function<void(const ServerRequest&, std::shared_ptr<Responder>)>;

class HttpServer {
 public:
  struct Options {
    uint64_t max_body_bytes = 4ull << 20;
    uint32_t max_header_bytes = 16 << 10;
    std::chrono::milliseconds idle_timeout{60'000};  // keep-alive and request read deadline
    std::string server_name = "etcd-mesos";
    // Set: HTTPS only (a plain HTTP request fails its handshake and is closed). Unset: plain HTTP.
    std::shared_ptr<const TlsServerConfig> tls;
  };

  HttpServer(boost::asio::io_context& io, Options options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting. Port 0 picks a free port. Returns the bound address.
  Result<HostPort> Listen(const HostPort& address);
  // Stops accepting and closes every open connection and stream.
  void Stop();
  HostPort address() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Escapes text for HTML element content and attribute values (status pages).
std::string HtmlEscape(std::string_view text);

// Convenience responses.
HttpResponse TextResponse(unsigned status, std::string text);
HttpResponse JsonResponse(unsigned status, std::string json);

}  // namespace etcd_mesos::net
