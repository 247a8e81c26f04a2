// The HTTP client and server against each other over real loopback sockets.
#include <optional>
#include <thread>
#include <utility>  // before asio: boost 1.74 uses std::exchange without it

#include <gtest/gtest.h>
#include <boost/asio.hpp>

#include "net/http.h"

namespace etcd_mesos::net {
namespace {

namespace asio = boost::asio;

class HttpTest : public ::testing::Test {
 protected:
  void StartServer(Handler handler, HttpServer::Options options = {}) {
    server_ = std::make_unique<HttpServer>(io_, options, std::move(handler));
    auto bound = server_->Listen({"127.0.0.1", 0});
    ASSERT_TRUE(bound.ok()) << bound.error();
    address_ = *bound;
  }

  // Runs the loop until `done` is true or 10 s pass.
  void RunUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(done()) << "timed out";
  }

  HttpRequest Request(std::string target, Verb verb = Verb::get, std::string body = "") {
    HttpRequest r;
    r.method = verb;
    r.endpoint = address_;
    r.target = std::move(target);
    r.body = std::move(body);
    return r;
  }

  asio::io_context io_;
  std::unique_ptr<HttpServer> server_;
  HostPort address_;
};

TEST_F(HttpTest, FetchRoundTripsMethodPathQueryHeadersAndBody) {
  ServerRequest seen;
  StartServer([&](const ServerRequest& req, std::shared_ptr<Responder> r) {
    seen = req;
    r->Respond({201, {{"X-Answer", "42"}}, "created " + req.body});
  });
  std::optional<Result<HttpResponse>> got;
  auto req = Request("/v3/kv/put?x=1", Verb::post, "{\"k\":1}");
  req.headers.push_back({"Content-Type", "application/json"});
  HttpFetch(io_, req, [&](Result<HttpResponse> r) { got = std::move(r); });
  RunUntil([&] { return got.has_value(); });
  ASSERT_TRUE(got->ok()) << got->error();
  EXPECT_EQ((*got)->status, 201u);
  EXPECT_EQ((*got)->body, "created {\"k\":1}");
  EXPECT_EQ((*got)->Header("x-answer"), "42");
  EXPECT_EQ(seen.method, Verb::post);
  EXPECT_EQ(seen.path, "/v3/kv/put");
  EXPECT_EQ(seen.query, "x=1");
  EXPECT_EQ(seen.Header("content-type"), "application/json");
}

TEST_F(HttpTest, ConnectionRefusedIsUnavailable) {
  address_ = {"127.0.0.1", 1};
  std::optional<Result<HttpResponse>> got;
  HttpFetch(io_, Request("/"), [&](Result<HttpResponse> r) { got = std::move(r); });
  RunUntil([&] { return got.has_value(); });
  ASSERT_FALSE(got->ok());
  EXPECT_EQ(got->error().code, ErrorCode::kUnavailable);
}

TEST_F(HttpTest, SlowServerTimesOut) {
  std::shared_ptr<Responder> parked;
  StartServer([&](const ServerRequest&, std::shared_ptr<Responder> r) { parked = r; });
  auto req = Request("/slow");
  req.timeout = std::chrono::milliseconds(200);
  std::optional<Result<HttpResponse>> got;
  HttpFetch(io_, req, [&](Result<HttpResponse> r) { got = std::move(r); });
  RunUntil([&] { return got.has_value(); });
  ASSERT_FALSE(got->ok());
  EXPECT_EQ(got->error().code, ErrorCode::kUnavailable);
  EXPECT_NE(got->error().message.find("timed out"), std::string::npos) << got->error();
}

TEST_F(HttpTest, OversizedBodiesAreRefusedBothWays) {
  HttpServer::Options options;
  options.max_body_bytes = 100;
  StartServer(
      [&](const ServerRequest&, std::shared_ptr<Responder> r) {
        r->Respond(TextResponse(200, std::string(5000, 'x')));
      },
      options);
  std::optional<Result<HttpResponse>> big_request;
  HttpFetch(io_, Request("/", Verb::post, std::string(1000, 'y')),
            [&](Result<HttpResponse> r) { big_request = std::move(r); });
  RunUntil([&] { return big_request.has_value(); });
  ASSERT_TRUE(big_request->ok()) << big_request->error();
  EXPECT_EQ((*big_request)->status, 413u);

  auto req = Request("/");
  req.max_body_bytes = 1000;
  std::optional<Result<HttpResponse>> big_response;
  HttpFetch(io_, req, [&](Result<HttpResponse> r) { big_response = std::move(r); });
  RunUntil([&] { return big_response.has_value(); });
  ASSERT_FALSE(big_response->ok());
  EXPECT_EQ(big_response->error().code, ErrorCode::kInvalidArgument) << big_response->error();
}

TEST_F(HttpTest, UnansweredRequestGets500AndServerKeepsServing) {
  int calls = 0;
  StartServer([&](const ServerRequest& req, std::shared_ptr<Responder> r) {
    ++calls;
    if (req.path == "/ok") r->Respond(TextResponse(200, "fine"));
    // otherwise dropped unanswered
  });
  std::optional<Result<HttpResponse>> dropped, ok;
  HttpFetch(io_, Request("/drop"), [&](Result<HttpResponse> r) { dropped = std::move(r); });
  RunUntil([&] { return dropped.has_value(); });
  ASSERT_TRUE(dropped->ok());
  EXPECT_EQ((*dropped)->status, 500u);
  HttpFetch(io_, Request("/ok"), [&](Result<HttpResponse> r) { ok = std::move(r); });
  RunUntil([&] { return ok.has_value(); });
  ASSERT_TRUE(ok->ok());
  EXPECT_EQ((*ok)->body, "fine\n");
  EXPECT_EQ(calls, 2);
}

TEST_F(HttpTest, GarbageRequestGets400) {
  StartServer([&](const ServerRequest&, std::shared_ptr<Responder> r) {
    r->Respond(TextResponse(200, "no"));
  });
  asio::ip::tcp::socket socket(io_);
  socket.connect({asio::ip::make_address("127.0.0.1"), address_.port});
  std::string garbage = "NOT HTTP AT ALL\r\n\r\n";
  asio::write(socket, asio::buffer(garbage));
  // Read on the same loop that runs the server, until the server closes the connection: a reader
  // on its own thread raced the loop for `reply`, and hung when the loop stopped before the close.
  std::string reply;
  std::optional<boost::system::error_code> ended;
  asio::async_read(socket, asio::dynamic_buffer(reply),
                   [&](boost::system::error_code ec, std::size_t) { ended = ec; });
  RunUntil([&] { return ended.has_value(); });
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(*ended, asio::error::eof) << ended->message();
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 400")) << reply;
}

TEST_F(HttpTest, StreamDeliversChunksAsTheyAreWrittenAndSeesTheEnd) {
  std::shared_ptr<ResponseStream> out;
  StartServer([&](const ServerRequest&, std::shared_ptr<Responder> r) {
    out = r->StartStream(200, {{"Content-Type", "application/json"}, {"Mesos-Stream-Id", "s1"}});
  });
  std::optional<HttpResponse> head;
  std::string body;
  std::optional<Status> end;
  auto stream =
      OpenHttpStream(io_, Request("/stream", Verb::post, "{}"),
                     {[&](const HttpResponse& h) { head = h; },
                      [&](std::string_view d) { body += d; }, [&](Status s) { end = s; }});
  RunUntil([&] { return head.has_value() && out != nullptr; });
  EXPECT_EQ(head->status, 200u);
  EXPECT_EQ(head->Header("Mesos-Stream-Id"), "s1");
  out->Write("first");
  RunUntil([&] { return body == "first"; });
  out->Write(std::string(100000, 'z'));
  RunUntil([&] { return body.size() == 100005; });
  out->Close();
  RunUntil([&] { return end.has_value(); });
  EXPECT_TRUE(end->ok()) << end->error();
}

TEST_F(HttpTest, ServerNoticesWhenStreamClientGoesAway) {
  std::shared_ptr<ResponseStream> out;
  bool closed = false;
  StartServer([&](const ServerRequest&, std::shared_ptr<Responder> r) {
    out = r->StartStream(200, {});
    out->OnClosed([&] { closed = true; });
  });
  auto stream = OpenHttpStream(io_, Request("/stream"), {});
  RunUntil([&] { return out != nullptr; });
  stream.reset();  // dropping the handle closes the connection
  RunUntil([&] { return closed; });
  EXPECT_FALSE(out->Write("after"));
}

TEST_F(HttpTest, ClientSeesServerDropAStream) {
  std::shared_ptr<ResponseStream> out;
  StartServer(
      [&](const ServerRequest&, std::shared_ptr<Responder> r) { out = r->StartStream(200, {}); });
  std::optional<Status> end;
  bool headers = false;
  auto stream = OpenHttpStream(
      io_, Request("/stream"),
      {[&](const HttpResponse&) { headers = true; }, nullptr, [&](Status s) { end = s; }});
  RunUntil([&] { return headers; });
  server_->Stop();
  RunUntil([&] { return end.has_value(); });
  EXPECT_FALSE(end->ok());
  EXPECT_EQ(end->error().code, ErrorCode::kUnavailable);
}

TEST_F(HttpTest, KeepAliveServesManyRequestsOnOneConnection) {
  int calls = 0;
  StartServer([&](const ServerRequest&, std::shared_ptr<Responder> r) {
    ++calls;
    r->Respond(TextResponse(200, "n"));
  });
  asio::ip::tcp::socket socket(io_);
  socket.connect({asio::ip::make_address("127.0.0.1"), address_.port});
  std::string two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(socket, asio::buffer(two));
  RunUntil([&] { return calls == 2; });
  EXPECT_EQ(calls, 2);
}

// An artifact of tens of MB must arrive in large reads: each read is a turn of the caller's io
// loop, which in etcd-mesos-local also runs the master and every agent. With 512-byte reads a
// 20 MB download under load took minutes. The server runs on its own loop and thread, so every
// handler the client's loop runs is the client's.
TEST(HttpFetchLargeBody, ArrivesInFewTurnsOfTheLoop) {
  const std::string body(16 << 20, 'x');
  asio::io_context server_io;
  HttpServer server(server_io, {}, [&](const ServerRequest&, std::shared_ptr<Responder> r) {
    r->Respond({200, {}, body});
  });
  auto bound = server.Listen({"127.0.0.1", 0});
  ASSERT_TRUE(bound.ok()) << bound.error();
  auto work = asio::make_work_guard(server_io);
  std::thread server_thread([&] { server_io.run(); });

  asio::io_context client_io;
  std::optional<Result<HttpResponse>> got;
  HttpRequest request{Verb::get, *bound, "/artifact"};
  request.max_body_bytes = body.size();
  HttpFetch(client_io, request, [&](Result<HttpResponse> r) { got = std::move(r); });
  size_t turns = client_io.run();

  asio::post(server_io, [&] {
    server.Stop();
    work.reset();
  });
  server_thread.join();
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->ok()) << got->error();
  EXPECT_EQ((*got)->body.size(), body.size());
  EXPECT_EQ((*got)->body, body);
  // 16 MiB in reads of 4 KiB or more on average (Beast reads up to 64 KiB at once).
  EXPECT_LT(turns, body.size() / (4 << 10)) << "the body arrived in " << turns << " turns";
}

TEST(HttpFetchSync, WorksWithoutAnEventLoop) {
  auto r = HttpFetchSync(HttpRequest{Verb::get, {"127.0.0.1", 1}, "/"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
}

TEST(BasicAuthorization, EncodesPrincipalAndSecret) {
  EXPECT_EQ(BasicAuthorization("etcd", "s3cret"), "Basic ZXRjZDpzM2NyZXQ=");
}

}  // namespace
}  // namespace etcd_mesos::net
