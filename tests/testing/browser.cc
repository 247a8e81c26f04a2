#include "testing/browser.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "common/encoding.h"
#include "common/uri.h"
#include "net/http.h"
#include "testing/process.h"
#include "testing/tempdir.h"

namespace etcd_mesos::test {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using json = nlohmann::json;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// The executable `name` resolves to through PATH (or `name` itself when it has a slash), or "".
std::string FindInPath(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// Pids of the live (not zombie) processes whose process group is `pgid`, from /proc.
std::vector<pid_t> LiveProcessesOfGroup(pid_t pgid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    if (!std::getline(in, stat)) continue;
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    char state = 0;
    long ppid = 0, pgrp = 0;
    if (!(rest >> state >> ppid >> pgrp)) continue;
    if (pgrp == pgid && state != 'Z' && state != 'X') out.push_back(std::atoi(stat.c_str()));
  }
  return out;
}

// Text of a CDP RemoteObject, as a console would print it.
std::string RemoteObjectText(const json& object) {
  if (object.contains("value")) {
    const json& v = object["value"];
    return v.is_string() ? v.get<std::string>() : v.dump();
  }
  if (object.contains("unserializableValue")) return object.value("unserializableValue", "");
  if (object.contains("description")) return object.value("description", "");
  return object.value("type", "?");
}

// Text of a CDP ExceptionDetails: "Uncaught Error: boom\n    at ..." or the thrown value.
std::string ExceptionText(const json& details) {
  std::string text = details.value("text", "exception");
  if (details.contains("exception")) text += " " + RemoteObjectText(details["exception"]);
  return text;
}

// Whether JavaScript would take the RemoteObject of a returnByValue evaluation as true.
bool Truthy(const json& object) {
  if (object.contains("unserializableValue")) {
    std::string v = object.value("unserializableValue", "");
    return v != "NaN" && v != "-0" && v != "0n";
  }
  if (!object.contains("value")) return false;  // undefined
  const json& v = object["value"];
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0;
  if (v.is_string()) return !v.get<std::string>().empty();
  return true;  // objects and arrays, even empty ones
}

json RemoteObjectValue(const json& object) {
  if (object.contains("value")) return object["value"];
  if (object.contains("unserializableValue")) return object["unserializableValue"];
  return nullptr;  // undefined, or a value returnByValue cannot carry
}

// The RemoteObject of a Runtime.evaluate reply, or kInvalidArgument with what it threw.
Result<json> EvaluationResult(const std::string& expression, const json& reply) {
  if (reply.contains("exceptionDetails")) {
    return MakeError(ErrorCode::kInvalidArgument, "evaluating `{}` threw: {}", expression,
                     ExceptionText(reply["exceptionDetails"]));
  }
  return reply.value("result", json::object());
}

std::string Elapsed(Clock::time_point since) {
  return fmt::format(
      "{} ms", std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count());
}

}  // namespace

// The WebSocket to the page target. One read is always pending once connected; its handler hands
// replies to `replies` and events to the owner. Writes are queued, one in flight at a time. All of
// it runs on `io`, and only inside RunUntil, on the caller's thread.
struct Browser::Connection {
  explicit Connection(Browser* owner) : owner(owner) {}

  ~Connection() {
    closing = true;  // what the handlers still see is dropped: the owner may be half gone
    beast::error_code ec;
    beast::get_lowest_layer(ws).socket().close(ec);
    io.restart();
    io.poll();  // the aborted handlers run while this object still exists
  }

  void Break(std::string what) {
    if (!broken) broken = MakeError(ErrorCode::kUnavailable, "chromium connection: {}", what);
  }

  void Read() {
    ws.async_read(in, [this](beast::error_code ec, size_t) {
      if (closing) return;
      if (ec) return Break("read: " + ec.message());
      json message = json::parse(beast::buffers_to_string(in.data()), nullptr, false);
      in.consume(in.size());
      if (message.is_discarded()) return Break("a message that is not JSON");
      if (message.contains("id") && message["id"].is_number_integer()) {
        int64_t id = message["id"].get<int64_t>();
        replies[id] = std::move(message);
      } else {
        owner->OnEvent(message);
      }
      if (!broken) Read();
    });
  }

  // Queues a command; returns its id.
  int64_t Send(const std::string& method, json params) {
    int64_t id = ++next_id;
    json message = {{"id", id}, {"method", method}, {"params", std::move(params)}};
    out.push_back(message.dump());
    if (!writing) WriteNext();
    return id;
  }

  void WriteNext() {
    writing = !out.empty() && !broken;
    if (!writing) return;
    ws.text(true);
    ws.async_write(asio::buffer(out.front()), [this](beast::error_code ec, size_t) {
      if (ec) return Break("write: " + ec.message());
      out.pop_front();
      WriteNext();
    });
  }

  // Runs the io_context until `done` holds (true), or the connection breaks or `deadline`
  // passes (false). A deadline leaves the connection usable: the pending read stays pending.
  bool RunUntil(const std::function<bool()>& done, Clock::time_point deadline) {
    while (!done()) {
      if (broken || Clock::now() >= deadline) return false;
      if (io.stopped()) io.restart();
      io.run_one_until(deadline);
    }
    return true;
  }

  Browser* owner;
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws{io};
  beast::flat_buffer in;
  std::deque<std::string> out;
  bool writing = false;
  bool closing = false;
  int64_t next_id = 0;
  std::map<int64_t, json> replies;
  std::optional<Error> broken;
};

Browser::Browser(Options options, std::unique_ptr<TempDir> dir)
    : options_(std::move(options)), dir_(std::move(dir)) {}

Browser::~Browser() {
  connection_.reset();
  if (process_) {
    // Chromium leads its own process group (ChildProcess puts it there), and its zygotes,
    // renderers and GPU/network processes stay in it.
    pid_t group = process_->pid();
    ::kill(-group, SIGKILL);
    process_->Kill(SIGKILL);
    process_->Wait();
    etcd_mesos::test::WaitFor([group] { return LiveProcessesOfGroup(group).empty(); },
                              std::chrono::seconds(5));
    process_.reset();
  }
  dir_.reset();  // the profile, now that nothing writes to it
}

pid_t Browser::pid() const { return process_ ? process_->pid() : -1; }

Result<std::unique_ptr<Browser>> Browser::Start(Options options) {
  if (FindInPath(options.binary).empty()) {
    const char* path = std::getenv("PATH");
    return MakeError(ErrorCode::kUnavailable,
                     "cannot start a browser: `{}` is not installed (not found in PATH={}); "
                     "scripts/install-deps installs the chromium package",
                     options.binary, path != nullptr ? path : "");
  }
  std::unique_ptr<Browser> browser(
      new Browser(std::move(options), std::make_unique<TempDir>("em-browser")));
  Status launched = browser->Launch();
  if (!launched.ok()) return launched.error();
  return browser;
}

Status Browser::Launch() {
  const auto start = Clock::now();
  const auto deadline = start + options_.start_timeout;
  const std::filesystem::path profile = dir_->path() / "profile";
  std::filesystem::create_directories(profile);
  std::vector<std::string> argv = {
      options_.binary,
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--remote-debugging-port=0",
      "--remote-debugging-address=127.0.0.1",
      "--user-data-dir=" + profile.string(),
      // Quiet and offline: no first-run UI, no calls home, nothing loaded but our pages.
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-default-apps",
      "--disable-extensions",
      "--disable-sync",
      "--disable-breakpad",
      "--disable-client-side-phishing-detection",
      "--disable-domain-reliability",
      "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
      "--no-pings",
      "--metrics-recording-only",
      "--password-store=basic",
      "--use-mock-keychain",
      "--mute-audio",
      // Shared memory in the temp dir: /dev/shm can be small in containers.
      "--disable-dev-shm-usage",
      // Screenshots as wide as the viewport asked, with no scrollbar cut out of it.
      "--hide-scrollbars",
      fmt::format("--window-size={},{}", options_.width, options_.height),
      "about:blank",
  };
  try {
    process_ = std::make_unique<ChildProcess>(argv, dir_->path() / "chromium.log");
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kUnavailable, "cannot start {}: {}", options_.binary, e.what());
  }
  auto failed = [&](const std::string& what) {
    return MakeError(ErrorCode::kUnavailable, "{} ({} after start); its log ends:\n{}", what,
                     Elapsed(start), process_->LogTail(2000));
  };

  // Chromium writes "<port>\n<browser target path>\n" there once DevTools listens.
  const std::filesystem::path port_file = profile / "DevToolsActivePort";
  int port = 0;
  while (port == 0) {
    std::ifstream in(port_file);
    std::string line;
    if (std::getline(in, line) && !in.eof()) port = std::atoi(line.c_str());
    if (port != 0) break;
    if (!process_->Running()) return failed(options_.binary + " exited during start");
    if (Clock::now() >= deadline) {
      return failed(fmt::format("{} did not write {} within {} ms", options_.binary,
                                port_file.string(), options_.start_timeout.count()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  // The page target: the about:blank tab. /json/list also lists browser_ui targets (omnibox).
  std::string ws_url;
  std::string last_answer;
  while (ws_url.empty()) {
    net::HttpRequest request;
    request.endpoint = {"127.0.0.1", static_cast<uint16_t>(port)};
    request.target = "/json/list";
    request.timeout = std::chrono::milliseconds(2000);
    auto response = net::HttpFetchSync(request);
    if (response.ok()) {
      last_answer = fmt::format("{} {}", response->status, response->body);
      json targets = json::parse(response->body, nullptr, false);
      if (targets.is_array()) {
        for (const auto& target : targets) {
          if (target.value("type", "") == "page" && target.contains("webSocketDebuggerUrl")) {
            ws_url = target.value("webSocketDebuggerUrl", "");
            break;
          }
        }
      }
    } else {
      last_answer = response.error().ToString();
    }
    if (!ws_url.empty()) break;
    if (!process_->Running()) return failed(options_.binary + " exited during start");
    if (Clock::now() >= deadline) {
      return failed(fmt::format("no page target in GET http://127.0.0.1:{}/json/list: {}", port,
                                last_answer));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  // ws://127.0.0.1:port/devtools/page/<id>
  if (ws_url.rfind("ws://", 0) != 0) return failed("unexpected webSocketDebuggerUrl " + ws_url);
  auto url = ParseHttpUrl("http://" + ws_url.substr(5));
  if (!url.ok()) return failed("unexpected webSocketDebuggerUrl " + ws_url);
  boost::system::error_code address_error;
  auto address = asio::ip::make_address(url->endpoint.host, address_error);
  if (address_error) return failed("unexpected webSocketDebuggerUrl " + ws_url);

  connection_ = std::make_unique<Connection>(this);
  Connection& c = *connection_;
  std::optional<beast::error_code> connected;
  beast::get_lowest_layer(c.ws).async_connect(
      tcp::endpoint(address, url->endpoint.port),
      [&connected](beast::error_code ec) { connected = ec; });
  std::optional<beast::error_code> handshaken;
  if (c.RunUntil([&] { return connected.has_value(); }, deadline) && !*connected) {
    c.ws.async_handshake(url->endpoint.ToString(), url->path,
                         [&handshaken](beast::error_code ec) { handshaken = ec; });
    c.RunUntil([&] { return handshaken.has_value(); }, deadline);
  }
  if (!handshaken || *handshaken) {
    std::string why = !connected    ? "connect timed out"
                      : *connected  ? "connect: " + connected->message()
                      : !handshaken ? "handshake timed out"
                                    : "handshake: " + handshaken->message();
    connection_.reset();  // closes the socket; the handlers above run now, not later
    return failed(fmt::format("cannot open the DevTools WebSocket {}: {}", ws_url, why));
  }
  // Screenshots arrive as one message of base64 PNG: megabytes for a long page.
  c.ws.read_message_max(256ull << 20);
  c.Read();

  for (const auto& [method, params] :
       std::vector<std::pair<std::string, json>>{{"Page.enable", json::object()},
                                                 {"Runtime.enable", json::object()},
                                                 {"Emulation.setDeviceMetricsOverride",
                                                  {{"width", options_.width},
                                                   {"height", options_.height},
                                                   {"deviceScaleFactor", 1},
                                                   {"mobile", false}}}}) {
    auto r = Call(method, params, std::max(deadline, Clock::now() + options_.call_timeout));
    if (!r.ok()) return failed(r.error().ToString());
  }
  return OkStatus();
}

Result<json> Browser::Call(const std::string& method, json params, Clock::time_point deadline) {
  Connection& c = *connection_;
  if (c.broken) return c.broken->Context(method);
  int64_t id = c.Send(method, std::move(params));
  if (!c.RunUntil([&] { return c.replies.count(id) > 0; }, deadline)) {
    if (c.broken) return c.broken->Context(method);
    return MakeError(ErrorCode::kUnavailable, "{}: no reply from chromium in time", method);
  }
  json reply = std::move(c.replies[id]);
  // Calls are one at a time: the replies of earlier ids (a call that timed out, a dialog
  // accepted) have no one waiting for them.
  c.replies.erase(c.replies.begin(), c.replies.upper_bound(id));
  if (reply.contains("error")) {
    return MakeError(ErrorCode::kUnavailable, "{}: chromium answered error {}", method,
                     reply["error"].dump());
  }
  return reply.value("result", json::object());
}

Result<json> Browser::Call(const std::string& method, json params) {
  if (params.is_null()) params = json::object();
  return Call(method, std::move(params), Clock::now() + options_.call_timeout);
}

void Browser::OnEvent(const json& message) {
  const std::string method = message.value("method", "");
  const json params = message.value("params", json::object());
  if (method == "Page.loadEventFired") {
    ++load_events_;
  } else if (method == "Runtime.consoleAPICalled") {
    std::string type = params.value("type", "");
    if (type != "error" && type != "assert") return;
    std::string text;
    for (const auto& arg : params.value("args", json::array())) {
      if (!text.empty()) text += " ";
      text += RemoteObjectText(arg);
    }
    page_errors_.push_back(fmt::format("console.{}: {}", type, text));
  } else if (method == "Runtime.exceptionThrown") {
    page_errors_.push_back("uncaught: " +
                           ExceptionText(params.value("exceptionDetails", json::object())));
  } else if (method == "Page.javascriptDialogOpening") {
    // Accepted at once: a dialog blocks the page (and every evaluation) until answered.
    dialogs_.push_back(params.value("type", "dialog") + ": " + params.value("message", ""));
    connection_->Send("Page.handleJavaScriptDialog",
                      {{"accept", true}, {"promptText", params.value("defaultPrompt", "")}});
  } else if (method == "Inspector.targetCrashed") {
    connection_->Break("the page crashed");
  } else if (method == "Inspector.detached") {
    connection_->Break("detached: " + params.value("reason", "?"));
  }
}

Status Browser::Navigate(const std::string& url) {
  const auto deadline = Clock::now() + options_.call_timeout;
  const int loads_before = load_events_;
  auto r = Call("Page.navigate", {{"url", url}}, deadline);
  if (!r.ok()) return r.error().Context("navigate to " + url);
  std::string error_text = r->value("errorText", "");
  if (!error_text.empty()) {
    return MakeError(ErrorCode::kUnavailable, "navigate to {}: {}", url, error_text);
  }
  Connection& c = *connection_;
  if (!c.RunUntil([&] { return load_events_ > loads_before; }, deadline)) {
    if (c.broken) return c.broken->Context("navigate to " + url);
    return MakeError(ErrorCode::kUnavailable, "navigate to {}: no load event within {} ms", url,
                     options_.call_timeout.count());
  }
  return OkStatus();
}

Result<json> Browser::Evaluate(const std::string& expression) {
  auto r = Call("Runtime.evaluate",
                {{"expression", expression}, {"returnByValue", true}, {"awaitPromise", true}});
  if (!r.ok()) return r.error().Context("evaluate `" + expression + "`");
  auto object = EvaluationResult(expression, *r);
  if (!object.ok()) return object.error();
  return RemoteObjectValue(*object);
}

namespace {

// Chromium's answer to an evaluation in a page that navigated meanwhile: what a wait for the next
// page sees while a click's navigation is under way; the next try runs in the new page.
bool NavigatedAway(const Error& error) {
  return error.message.find("Inspected target navigated or closed") != std::string::npos ||
         error.message.find("Execution context was destroyed") != std::string::npos;
}

}  // namespace

Result<json> Browser::WaitFor(const std::string& expression, std::chrono::milliseconds timeout) {
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  std::string last = "none yet";
  while (true) {
    auto r = Call("Runtime.evaluate",
                  {{"expression", expression}, {"returnByValue", true}, {"awaitPromise", true}});
    if (!r.ok() && !NavigatedAway(r.error())) {
      return r.error().Context("wait for `" + expression + "`");
    }
    auto object = r.ok() ? EvaluationResult(expression, *r) : Result<json>(r.error());
    if (object.ok()) {
      if (Truthy(*object)) return RemoteObjectValue(*object);
      last = object->contains("value") || object->contains("unserializableValue")
                 ? RemoteObjectValue(*object).dump()
                 : "undefined";
    } else {
      last = object.error().message;
    }
    if (Clock::now() >= deadline) {
      return MakeError(ErrorCode::kUnavailable, "wait for `{}`: not true after {}; last value: {}",
                       expression, Elapsed(start), last);
    }
    // Sleeping here would leave events unread; run the connection for the interval instead.
    connection_->RunUntil([] { return false; },
                          std::min(deadline, Clock::now() + std::chrono::milliseconds(100)));
  }
}

Status Browser::Screenshot(const std::filesystem::path& png) {
  auto metrics = Call("Page.getLayoutMetrics");
  if (!metrics.ok()) return metrics.error().Context("screenshot");
  json size = metrics->value("cssContentSize", metrics->value("contentSize", json::object()));
  double width = std::max<double>(size.value("width", 0.0), options_.width);
  double height = std::max<double>(size.value("height", 0.0), options_.height);
  auto shot = Call("Page.captureScreenshot", {{"format", "png"},
                                              {"captureBeyondViewport", true},
                                              {"clip",
                                               {{"x", 0},
                                                {"y", 0},
                                                {"width", std::ceil(width)},
                                                {"height", std::ceil(height)},
                                                {"scale", 1}}}});
  if (!shot.ok()) return shot.error().Context("screenshot");
  auto bytes = Base64Decode(shot->value("data", ""));
  if (!bytes.ok()) return bytes.error().Context("screenshot data");
  std::error_code ec;
  if (png.has_parent_path()) std::filesystem::create_directories(png.parent_path(), ec);
  std::ofstream out(png, std::ios::binary | std::ios::trunc);
  out.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
  out.close();
  if (!out) {
    return MakeError(ErrorCode::kInternal, "screenshot: cannot write {}", png.string());
  }
  return OkStatus();
}

std::vector<std::string> Browser::PageErrors() const { return page_errors_; }

std::vector<std::string> Browser::Dialogs() const { return dialogs_; }

}  // namespace etcd_mesos::test
