// Browser: a real headless Chromium driven over the Chrome DevTools Protocol (CDP), for tests of
// the pages we serve (the scheduler's status page, the local Mesos master's page). Start launches
// the installed `chromium` as a ChildProcess with a fresh profile directory and the DevTools port
// on a free port, then connects a WebSocket to its one page target; every call after that is a
// CDP command on that page (navigate, evaluate JavaScript, screenshot). While a call waits for its
// reply the driver records the page's console errors and uncaught exceptions (PageErrors), and
// accepts any alert/confirm/prompt dialog at once (Dialogs), so a stray confirm() never hangs a
// test. Every wait has a deadline: a hung browser fails the call, it does not hang the test.
// Destruction kills Chromium's whole process group (it forks renderers) and removes the profile.
//
// Threading: not shared; owned by one test. Blocking calls run a private io_context on the
// caller's thread; events from the page are read only while a call runs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace etcd_mesos::test {

class ChildProcess;
class TempDir;

class Browser {
 public:
  struct Options {
    int width = 1280, height = 900;  // viewport
    std::chrono::milliseconds start_timeout{20000};
    std::chrono::milliseconds call_timeout{15000};  // one CDP call
    std::string binary = "chromium";                // searched in PATH
  };

  // Starts `chromium --headless --no-sandbox --disable-gpu --remote-debugging-port=0
  // --user-data-dir=<fresh temp dir> about:blank` (plus flags that keep it quiet and offline),
  // reads the port from <user-data-dir>/DevToolsActivePort, finds the page target (GET
  // /json/list, type "page") and connects to its webSocketDebuggerUrl; enables the Page and
  // Runtime domains and sets the viewport. kUnavailable naming the problem when chromium is not
  // installed, exits, or does not answer within start_timeout (with the tail of its log).
  static Result<std::unique_ptr<Browser>> Start(Options options);
  static Result<std::unique_ptr<Browser>> Start() { return Start(Options{}); }
  ~Browser();  // closes the socket, kills chromium and its children, removes the profile dir
  Browser(const Browser&) = delete;
  Browser& operator=(const Browser&) = delete;

  // Navigates and waits for the page's load event (Page.loadEventFired); kUnavailable if the
  // navigation fails (Chromium's errorText, e.g. net::ERR_CONNECTION_REFUSED) or times out.
  Status Navigate(const std::string& url);
  // Runtime.evaluate with returnByValue and awaitPromise. Returns the value as JSON (null for
  // undefined; NaN, Infinity and bigints as their text). A thrown exception or a rejected promise
  // is kInvalidArgument with the exception's text in the message; kUnavailable is the browser.
  Result<nlohmann::json> Evaluate(const std::string& expression);
  // Evaluates `expression` every 100 ms until it returns a truthy value (as JavaScript sees it;
  // an exception counts as not yet) and returns that value; kUnavailable naming the expression
  // and its last value (or exception) when `timeout` passes.
  Result<nlohmann::json> WaitFor(const std::string& expression, std::chrono::milliseconds timeout);
  // Page.captureScreenshot of the whole page (beyond the viewport: the size from
  // Page.getLayoutMetrics, at least the viewport) as PNG, written to `png` (parent dirs created).
  Status Screenshot(const std::filesystem::path& png);
  // Every console error (console.error) and uncaught exception seen since start, as text
  // ("console.error: ..." / "uncaught: ..."), so tests can assert a page has none.
  std::vector<std::string> PageErrors() const;
  // Every JavaScript dialog the page opened (all accepted), as "<type>: <message>".
  std::vector<std::string> Dialogs() const;

  pid_t pid() const;  // of the main chromium process, which leads its process group

 private:
  struct Connection;
  Browser(Options options, std::unique_ptr<TempDir> dir);
  Status Launch();
  // Sends one CDP command and waits for its reply (the "result" object) until `deadline`.
  Result<nlohmann::json> Call(const std::string& method, nlohmann::json params,
                              std::chrono::steady_clock::time_point deadline);
  Result<nlohmann::json> Call(const std::string& method, nlohmann::json params = {});
  void OnEvent(const nlohmann::json& message);

  Options options_;
  std::unique_ptr<TempDir> dir_;  // profile/ and chromium.log
  std::unique_ptr<ChildProcess> process_;
  std::unique_ptr<Connection> connection_;
  int load_events_ = 0;
  std::vector<std::string> page_errors_;
  std::vector<std::string> dialogs_;
};

}  // namespace etcd_mesos::test
