// The headless-Chromium driver (testing/browser.h) against pages served by our own HTTP server:
// DOM reads, awaited promises, exceptions as errors, WaitFor on a page timer and its timeout,
// full-page PNG screenshots of the asked width, console errors and uncaught exceptions recorded,
// dialogs accepted instead of hanging, navigation errors, a missing browser named as such, and no
// Chromium process left behind. Needs the `chromium` package (scripts/install-deps): without it
// every test fails with the driver's error, by design.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "net/http.h"
#include "testing/browser.h"
#include "testing/ports.h"
#include "testing/tempdir.h"

namespace etcd_mesos::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// Serves fixed pages with net::HttpServer on 127.0.0.1, its io_context on a thread of its own
// (the browser calls block the test's thread).
class PageServer {
 public:
  explicit PageServer(std::map<std::string, std::string> pages) : pages_(std::move(pages)) {
    server_ = std::make_unique<net::HttpServer>(
        io_, net::HttpServer::Options{},
        [this](const net::ServerRequest& request, std::shared_ptr<net::Responder> responder) {
          auto page = pages_.find(request.path);
          if (page == pages_.end()) {
            responder->Respond(net::TextResponse(404, "no page " + request.path));
            return;
          }
          bool is_json = request.path.ends_with(".json");
          responder->Respond(net::HttpResponse{
              200,
              {{"Content-Type", is_json ? "application/json" : "text/html; charset=utf-8"}},
              page->second});
        });
    auto bound = server_->Listen({"127.0.0.1", 0});
    if (bound.ok()) address_ = *bound;
    thread_ = std::thread([this] { io_.run(); });
  }

  ~PageServer() {
    std::promise<void> stopped;
    boost::asio::post(io_, [&] {
      server_->Stop();
      server_.reset();
      stopped.set_value();
    });
    stopped.get_future().wait();
    work_.reset();
    io_.stop();
    thread_.join();
  }

  std::string Url(const std::string& path) const { return "http://" + address_.ToString() + path; }
  bool listening() const { return address_.port != 0; }

 private:
  const std::map<std::string, std::string> pages_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  std::unique_ptr<net::HttpServer> server_;
  HostPort address_;
  std::thread thread_;
};

const std::map<std::string, std::string> kPages = {
    {"/hello", R"html(<!doctype html><html><head><title>Hello page</title></head>
<body><h1 id="greeting">Hello from etcd-mesos</h1><p class="n">1</p><p class="n">2</p></body>
</html>)html"},
    {"/data.json", R"html({"members": ["n1", "n2", "n3"]})html"},
    // arm() starts a page timer: after 300 ms it sets window.late and adds #late.
    {"/timer", R"html(<!doctype html><html><body><div id="root"></div><script>
function arm() {
  setTimeout(() => {
    window.late = 'ready';
    const el = document.createElement('span');
    el.id = 'late';
    el.textContent = 'arrived';
    document.getElementById('root').appendChild(el);
  }, 300);
  return true;
}
</script></body></html>)html"},
    // Taller than any viewport: a full-page screenshot is at least 2000 px high.
    {"/tall", R"html(<!doctype html><html><body style="margin:0">
<div style="height:2000px;background:linear-gradient(#3465a4,#f57900)">
<h1 style="margin:0;color:white">etcd-mesos status</h1></div></body></html>)html"},
    {"/errors", R"html(<!doctype html><html><body><script>
console.log('just a log line');
console.error('bad thing', 7);
setTimeout(() => { throw new Error('late-uncaught'); }, 0);
setTimeout(() => { window.after = true; }, 50);
</script></body></html>)html"},
    // An alert while loading and a confirm behind a button: both block the page until answered.
    {"/dialogs", R"html(<!doctype html><html><body>
<button id="remove" onclick="window.answer = confirm('Really remove n2?')">Remove</button>
<script>alert('loading the page');</script></body></html>)html"},
};

// The width and height in the IHDR chunk of a PNG file, after checking its signature.
struct PngSize {
  uint32_t width = 0, height = 0;
};
::testing::AssertionResult ReadPng(const fs::path& file, PngSize* size) {
  std::ifstream in(file, std::ios::binary);
  std::string head(24, '\0');
  if (!in.read(head.data(), static_cast<std::streamsize>(head.size()))) {
    return ::testing::AssertionFailure() << file << " is missing or shorter than a PNG header";
  }
  if (head.substr(0, 8) != std::string("\x89PNG\r\n\x1a\n", 8)) {
    return ::testing::AssertionFailure() << file << " does not start with the PNG signature";
  }
  if (head.substr(12, 4) != "IHDR") {
    return ::testing::AssertionFailure() << file << " has no IHDR chunk first";
  }
  auto be32 = [&](size_t at) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(head[at + i]);
    return v;
  };
  size->width = be32(16);
  size->height = be32(20);
  return ::testing::AssertionSuccess();
}

// Live (not zombie) processes whose process group is `pgid`.
int LiveProcessesInGroup(pid_t pgid) {
  int n = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    if (!std::getline(in, stat)) continue;
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    char state = 0;
    long ppid = 0, pgrp = 0;
    if ((rest >> state >> ppid >> pgrp) && pgrp == pgid && state != 'Z') ++n;
  }
  return n;
}

class BrowserTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.listening()); }

  // Each test starts its own browser, with the options it needs; a failure to start (no
  // chromium installed) fails the test with the driver's error.
  void Start(Browser::Options options = {}) {
    auto started = Browser::Start(options);
    ASSERT_TRUE(started.ok()) << started.error();
    browser_ = std::move(started).value();
  }

  // Navigates to `path` of the page server; on failure, says why.
  ::testing::AssertionResult Open(const std::string& path) {
    Status navigated = browser_->Navigate(server_.Url(path));
    if (navigated.ok()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << navigated.error();
  }

  PageServer server_{kPages};
  std::unique_ptr<Browser> browser_;
};

TEST_F(BrowserTest, NavigateThenEvaluateReadsTheDom) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_TRUE(Open("/hello"));
  auto text = browser_->Evaluate("document.getElementById('greeting').textContent");
  ASSERT_TRUE(text.ok()) << text.error();
  EXPECT_EQ(*text, "Hello from etcd-mesos");
  EXPECT_EQ(*browser_->Evaluate("document.title"), "Hello page");
  EXPECT_EQ(*browser_->Evaluate("[...document.querySelectorAll('p.n')].map(p => +p.textContent)"),
            json::array({1, 2}));
  EXPECT_EQ(*browser_->Evaluate("({a: 1, b: 'two'})"), json({{"a", 1}, {"b", "two"}}));
  EXPECT_TRUE(browser_->Evaluate("undefined")->is_null());
  EXPECT_EQ(*browser_->Evaluate("location.pathname"), "/hello");
  EXPECT_TRUE(browser_->PageErrors().empty());
}

TEST_F(BrowserTest, PromisesAreAwaited) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_TRUE(Open("/hello"));
  auto late = browser_->Evaluate("new Promise(resolve => setTimeout(() => resolve(42), 200))");
  ASSERT_TRUE(late.ok()) << late.error();
  EXPECT_EQ(*late, 42);
  // A real round trip to the server from the page.
  auto fetched = browser_->Evaluate("fetch('/data.json').then(r => r.json())");
  ASSERT_TRUE(fetched.ok()) << fetched.error();
  EXPECT_EQ(*fetched, json({{"members", {"n1", "n2", "n3"}}}));
}

TEST_F(BrowserTest, AThrownExceptionIsAnErrorWithItsMessage) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_TRUE(Open("/hello"));
  auto thrown = browser_->Evaluate("throw new Error('boom-123')");
  ASSERT_FALSE(thrown.ok());
  EXPECT_EQ(thrown.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(thrown.error().message, HasSubstr("boom-123"));
  auto rejected = browser_->Evaluate("Promise.reject(new Error('rejected-456'))");
  ASSERT_FALSE(rejected.ok());
  EXPECT_THAT(rejected.error().message, HasSubstr("rejected-456"));
  auto missing = browser_->Evaluate("document.getElementById('nope').textContent");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.error().message, HasSubstr("TypeError"));
  // The browser is still there for the next call.
  EXPECT_EQ(*browser_->Evaluate("6 * 7"), 42);
}

TEST_F(BrowserTest, WaitForSeesWhatAPageTimerSets) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_TRUE(Open("/timer"));
  auto armed = browser_->Evaluate("arm() && window.late === undefined");
  ASSERT_TRUE(armed.ok()) << armed.error();
  ASSERT_EQ(*armed, true);
  auto start = Clock::now();
  auto late = browser_->WaitFor("window.late", std::chrono::seconds(10));
  auto waited = Clock::now() - start;
  ASSERT_TRUE(late.ok()) << late.error();
  EXPECT_EQ(*late, "ready");
  EXPECT_GE(waited, std::chrono::milliseconds(200));  // it did wait for the timer
  // An expression that throws until the element exists is "not yet", not a failure.
  auto text =
      browser_->WaitFor("document.getElementById('late').textContent", std::chrono::seconds(5));
  ASSERT_TRUE(text.ok()) << text.error();
  EXPECT_EQ(*text, "arrived");
}

TEST_F(BrowserTest, WaitForTimesOutNamingTheExpressionAndItsLastValue) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_TRUE(Open("/timer"));
  auto start = Clock::now();
  auto never = browser_->WaitFor("window.never === 'comes'", std::chrono::milliseconds(600));
  auto waited = Clock::now() - start;
  ASSERT_FALSE(never.ok());
  EXPECT_EQ(never.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(never.error().message, HasSubstr("window.never === 'comes'"));
  EXPECT_THAT(never.error().message, HasSubstr("last value: false"));
  EXPECT_GE(waited, std::chrono::milliseconds(600));
  EXPECT_LT(waited, std::chrono::seconds(5));
}

TEST_F(BrowserTest, ScreenshotIsAPngOfTheWholePageAtTheAskedWidth) {
  Browser::Options options;
  options.width = 800;
  options.height = 600;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  ASSERT_TRUE(Open("/tall"));
  TempDir dir("em-browser-test");
  fs::path png = dir.path() / "nested" / "dirs" / "tall.png";
  auto shot = browser_->Screenshot(png);
  ASSERT_TRUE(shot.ok()) << shot.error();
  PngSize size;
  ASSERT_TRUE(ReadPng(png, &size));
  EXPECT_EQ(size.width, 800u);
  EXPECT_GE(size.height, 2000u);  // beyond the 600 px viewport
  EXPECT_GT(fs::file_size(png), 1000u);
}

TEST_F(BrowserTest, PageErrorsHasConsoleErrorsAndUncaughtExceptions) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_TRUE(Open("/hello"));
  EXPECT_TRUE(browser_->PageErrors().empty());
  ASSERT_TRUE(Open("/errors"));
  // window.after is set by a timer that runs after the throwing one.
  auto after = browser_->WaitFor("window.after", std::chrono::seconds(5));
  ASSERT_TRUE(after.ok()) << after.error();
  auto errors = browser_->PageErrors();
  ASSERT_EQ(errors.size(), 2u) << ::testing::PrintToString(errors);
  EXPECT_EQ(errors[0], "console.error: bad thing 7");
  EXPECT_THAT(errors[1], HasSubstr("uncaught"));
  EXPECT_THAT(errors[1], HasSubstr("late-uncaught"));
}

TEST_F(BrowserTest, DialogsAreAcceptedInsteadOfHanging) {
  Browser::Options options;
  options.call_timeout = std::chrono::seconds(5);  // a hung dialog fails fast
  ASSERT_NO_FATAL_FAILURE(Start(options));
  auto start = Clock::now();
  // The page alerts while loading: its load event waits for the answer.
  ASSERT_TRUE(Open("/dialogs"));
  auto clicked = browser_->Evaluate("document.getElementById('remove').click(); window.answer");
  ASSERT_TRUE(clicked.ok()) << clicked.error();
  EXPECT_EQ(*clicked, true);  // confirm() answered OK
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_THAT(browser_->Dialogs(),
              ::testing::ElementsAre("alert: loading the page", "confirm: Really remove n2?"));
  EXPECT_TRUE(browser_->PageErrors().empty());
}

TEST_F(BrowserTest, NavigatingToADeadServerIsAnError) {
  ASSERT_NO_FATAL_FAILURE(Start());
  std::string url = "http://127.0.0.1:" + std::to_string(FreePort()) + "/";
  auto navigated = browser_->Navigate(url);
  ASSERT_FALSE(navigated.ok());
  EXPECT_THAT(navigated.error().message, HasSubstr("ERR_CONNECTION_REFUSED"));
  EXPECT_THAT(navigated.error().message, HasSubstr(url));
  // Still usable.
  EXPECT_TRUE(Open("/hello"));
}

TEST_F(BrowserTest, DestructionLeavesNoChromiumProcessBehind) {
  ASSERT_NO_FATAL_FAILURE(Start());
  pid_t group = browser_->pid();
  ASSERT_GT(group, 0);
  ASSERT_TRUE(Open("/hello"));
  EXPECT_GT(LiveProcessesInGroup(group), 1);  // it forked its zygotes, renderers, ...
  browser_.reset();
  EXPECT_EQ(LiveProcessesInGroup(group), 0);
}

TEST(BrowserStart, AMissingBrowserIsAClearError) {
  Browser::Options options;
  options.binary = "chromium-not-installed-here";
  auto started = Browser::Start(options);
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(started.error().message, HasSubstr("chromium-not-installed-here"));
  EXPECT_THAT(started.error().message, HasSubstr("not installed"));
}

}  // namespace
}  // namespace etcd_mesos::test
