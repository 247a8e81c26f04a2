// The operator's console in a real browser: headless Chromium (test::Browser, over the DevTools
// protocol) opens the scheduler's status page of a live cluster on etcd-mesos-local (real
// executors, real etcd) and is checked as an operator would use it: the members and the timeline
// render; a member killed is seen healing without a reload; an action with a wrong token shows the
// server's 401 and changes nothing; a livelock is shown and the page's reseed, with the token,
// brings the cluster back. Screenshots of each state go to SCREENSHOT_DIR for review (and for the
// response guide).
//
// The system runs on the test thread's io_context; each browser call runs on another thread while
// the test thread drives the system, so the page's polls are answered meanwhile.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "local/agent.h"
#include "scheduler/core/rules.h"
#include "testing/browser.h"
#include "testing/local_system.h"
#include "testing/tempdir.h"

namespace etcd_mesos::test {
namespace {

using std::chrono::seconds;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

class ConsoleInChromium : public ::testing::Test {
 protected:
  void StartAll(std::vector<std::string> extra_flags) {
    token_file_ = dir_.path() / "admin-token";
    std::ofstream(token_file_) << "console-s3cret\n";
    LocalSystemOptions options;
    options.executor_path = EXECUTOR_PATH;
    options.cluster_name = "console";
    options.extra_flags = {"--reseed-token-file=" + token_file_.string()};
    options.extra_flags.insert(options.extra_flags.end(), extra_flags.begin(), extra_flags.end());
    ASSERT_NO_FATAL_FAILURE(system_.Start(options));
    ASSERT_TRUE(system_.RunUntil([&] { return system_.AtSize(3); }, 90))
        << system_.core().health_reason();
    auto browser = Browser::Start();
    ASSERT_TRUE(browser.ok()) << browser.error();
    browser_ = std::move(*browser);
    url_ = "http://" + system_.scheduler()->admin_address().ToString() + "/";
    auto opened = Drive([&] { return browser_->Navigate(url_); });
    ASSERT_TRUE(opened.ok()) << opened.error();
  }

  // Runs one browser call on another thread while this thread drives the system.
  template <typename F>
  auto Drive(F f) -> decltype(f()) {
    auto call = std::async(std::launch::async, std::move(f));
    system_.RunUntil([&] { return call.wait_for(seconds(0)) == std::future_status::ready; }, 180);
    return call.get();
  }
  Result<json> Eval(const std::string& js) {
    return Drive([&] { return browser_->Evaluate(js); });
  }
  // Waits (driving the system) until the page's `js` is truthy.
  void WaitOnPage(const std::string& js, int timeout_s) {
    auto r = Drive([&] { return browser_->WaitFor(js, seconds(timeout_s)); });
    ASSERT_TRUE(r.ok()) << r.error() << "\nbanner: " << Text("banner");
  }
  std::string Text(const std::string& id) {
    auto r = Eval("(document.getElementById('" + id + "') || {}).textContent || ''");
    return r.ok() && r->is_string() ? r->get<std::string>() : "";
  }
  void Snap(const std::string& name) {
    auto path = std::filesystem::path(SCREENSHOT_DIR) / (name + ".png");
    auto r = Drive([&] { return browser_->Screenshot(path); });
    EXPECT_TRUE(r.ok()) << r.error();
    std::printf("[screenshot] %s\n", path.c_str());
  }
  // Types into the token field as a person does (a change event stores it for the tab).
  void EnterToken(const std::string& token) {
    auto r = Eval("const t = document.getElementById('token'); t.value = " + json(token).dump() +
                  "; t.dispatchEvent(new Event('change')); sessionStorage.getItem("
                  "'etcd-mesos-token')");
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(*r, token);
  }
  // Clicks an action's button, reads the confirmation and confirms it.
  std::string Confirm(const std::string& action) {
    auto r = Eval("document.getElementById('ask-" + action +
                  "').click(); const d = document.getElementById('confirm'); const text = "
                  "d.open ? document.getElementById('confirm-text').textContent : 'NOT OPEN'; "
                  "document.getElementById('confirm-yes').click(); text");
    EXPECT_TRUE(r.ok()) << r.error();
    return r.ok() && r->is_string() ? r->get<std::string>() : "";
  }
  std::vector<std::string> MemberNames() {
    std::vector<std::string> names;
    for (const auto& [name, m] : system_.core().state().members) {
      if (m.task_state == mesos::TASK_RUNNING) names.push_back(name);
    }
    return names;
  }
  // The number of the agent that runs `member`; for "", of one that runs no member (the cluster
  // has one agent more than members); 0 if none.
  int AgentOf(const std::string& member) {
    for (int n = 1; n <= system_.cluster().agent_count(); ++n) {
      local::Agent* agent = system_.cluster().agent(n);
      if (agent == nullptr) continue;
      std::string runs;
      for (const auto& [name, m] : system_.core().state().members) {
        if (m.agent_id == agent->id().value() && m.task_state == mesos::TASK_RUNNING) runs = name;
      }
      if (runs == member) return n;
    }
    return 0;
  }
  std::string LeaderName() {
    uint64_t leader = scheduler::CountLeaderVotes(system_.core().state().members).leader;
    for (const auto& [name, m] : system_.core().state().members) {
      if (m.member_id == leader) return name;
    }
    return "";
  }

  TempDir dir_;
  boost::asio::io_context io_;
  LocalSystem system_{io_, dir_.path()};
  std::filesystem::path token_file_;
  std::unique_ptr<Browser> browser_;
  std::string url_;
};

// The rows of the members table as "name role health" lines, for the checks and their messages.
constexpr const char* kMemberRows =
    "[...document.querySelectorAll('#members tr')].map((r) => [...r.cells].slice(0, 3)"
    ".map((c) => c.textContent).join(' ')).join('\\n')";

TEST_F(ConsoleInChromium, ShowsTheClusterAndAHealWithoutAReloadAndRefusesAWrongToken) {
  // A plain cluster (TLS is the default; the TLS test below shows the certificates).
  ASSERT_NO_FATAL_FAILURE(StartAll({"--tls=off"}));
  // The members, the leader and the timeline of the bootstrap, from the live cluster.
  ASSERT_NO_FATAL_FAILURE(
      WaitOnPage("document.querySelectorAll('#members tr.ok').length === 3 && "
                 "document.getElementById('banner').textContent.startsWith('HEALTHY')",
                 30));
  std::string rows = Eval(kMemberRows)->get<std::string>();
  EXPECT_NE(rows.find(LeaderName() + " leader healthy"), std::string::npos) << rows;
  EXPECT_NE(Text("timeline").find("bootstrapping generation"), std::string::npos)
      << Text("timeline");
  EXPECT_EQ(Text("tls"), "TLS: off") << "a plain cluster: no certificates to expire";
  ASSERT_NO_FATAL_FAILURE(WaitOnPage("document.querySelector('#chart-voters path')", 30));
  Snap("console-healthy");

  // A follower killed: the page shows it lost and then healed, in place.
  ASSERT_TRUE(Eval("window.__sameDocument = 'yes'").ok());
  auto before = MemberNames();
  std::string victim;
  for (const auto& name : before) {
    if (name != LeaderName()) victim = name;
  }
  ASSERT_FALSE(victim.empty());
  // The victim's host dies while the spare agent is down, so the heal waits for a place and the
  // page can be seen in the middle of it; the spare comes back once the page shows the loss.
  int spare = AgentOf("");
  int host = AgentOf(victim);
  ASSERT_GT(spare, 0);
  ASSERT_GT(host, 0);
  ASSERT_TRUE(system_.cluster().StopAgent(spare).ok());
  ASSERT_TRUE(system_.cluster().StopAgent(host).ok());
  ASSERT_NO_FATAL_FAILURE(
      WaitOnPage("!document.getElementById('banner').textContent.startsWith('HEALTHY') && "
                 "document.getElementById('timeline').textContent.includes('" +
                     victim + " ')",
                 30));
  Snap("console-heal-in-progress");
  EXPECT_EQ(*Eval("document.querySelectorAll('#members tr.ok').length"), 2)
      << Eval(kMemberRows)->get<std::string>();
  ASSERT_TRUE(system_.cluster().RestartAgent(spare, /*wipe=*/false).ok());
  ASSERT_NO_FATAL_FAILURE(
      WaitOnPage("document.getElementById('timeline').textContent.includes('promoted to voter') && "
                 "document.getElementById('banner').textContent.startsWith('HEALTHY') && "
                 "document.querySelectorAll('#members tr.ok').length === 3",
                 120));
  EXPECT_EQ(*Eval("window.__sameDocument"), "yes") << "the page was reloaded";
  std::string timeline = Text("timeline");
  EXPECT_NE(timeline.find("removing member " + victim), std::string::npos) << timeline;
  EXPECT_NE(timeline.find("as a learner"), std::string::npos) << timeline;
  // The replacement's own history (its row's last cell) tells how it joined.
  std::string replacement;
  for (const auto& name : MemberNames()) {
    if (std::find(before.begin(), before.end(), name) == before.end()) replacement = name;
  }
  ASSERT_FALSE(replacement.empty());
  auto history = Eval(
      "[...document.querySelectorAll('#members tr')].find((r) => "
      "r.cells[0].textContent === '" +
      replacement + "').lastElementChild.textContent");
  ASSERT_TRUE(history.ok()) << history.error();
  EXPECT_NE(history->get<std::string>().find(replacement + " promoted to voter"), std::string::npos)
      << *history;

  // Reseed with a wrong token: the server's 401 is shown and nothing changes.
  uint64_t attempts = system_.core().state().counters.reseed_attempts;
  uint64_t generation = system_.core().state().generation;
  ASSERT_NO_FATAL_FAILURE(EnterToken("not-the-token"));
  std::string said = Confirm("reseed");
  EXPECT_NE(said.find("LOST"), std::string::npos) << "the confirmation says what may be lost";
  ASSERT_NO_FATAL_FAILURE(
      WaitOnPage("document.getElementById('answer').textContent.includes('HTTP 401')", 15));
  EXPECT_NE(Text("answer").find("unauthorized"), std::string::npos) << Text("answer");
  EXPECT_EQ(system_.core().state().counters.reseed_attempts, attempts);
  EXPECT_EQ(system_.core().state().generation, generation);
  EXPECT_FALSE(system_.core().reseeding());
  EXPECT_TRUE(system_.core().healthy());
  auto errors = browser_->PageErrors();
  EXPECT_TRUE(errors.empty()) << errors.front();
}

TEST_F(ConsoleInChromium, ShowsALivelockAndItsReseedWithTheToken) {
  ASSERT_NO_FATAL_FAILURE(StartAll({"--auto-reseed=false", "--reseed-timeout=2s"}));
  ASSERT_NO_FATAL_FAILURE(
      WaitOnPage("document.querySelectorAll('#members tr.ok').length === 3", 30));
  auto names = MemberNames();
  ASSERT_EQ(names.size(), 3u);
  system_.KillMember(names[0]);
  system_.KillMember(names[1]);
  ASSERT_NO_FATAL_FAILURE(
      WaitOnPage("document.getElementById('banner').textContent.startsWith('LIVELOCK')", 60));
  EXPECT_NE(Text("banner").find("the cluster takes no writes"), std::string::npos)
      << Text("banner");
  Snap("console-livelock");

  // The reseed asked from the page with the right token is taken, and the cluster comes back.
  ASSERT_NO_FATAL_FAILURE(EnterToken("console-s3cret"));
  Confirm("reseed");
  ASSERT_NO_FATAL_FAILURE(
      WaitOnPage("document.getElementById('answer').textContent.includes('HTTP 202')", 30));
  ASSERT_NO_FATAL_FAILURE(
      WaitOnPage("document.getElementById('banner').textContent.startsWith('HEALTHY') && "
                 "document.querySelectorAll('#members tr.ok').length === 3",
                 150));
  EXPECT_EQ(system_.core().state().counters.cluster_reseeds, 1u);
  EXPECT_NE(Text("timeline").find("reseeded from"), std::string::npos);
  auto errors = browser_->PageErrors();
  EXPECT_TRUE(errors.empty()) << errors.front();
}

// A TLS cluster: the page names the mode and the first certificate to expire, and every member's
// row its certificates' expiry date and days left, not flagged (a year's certificates are far from
// the 30-day renewal window).
TEST_F(ConsoleInChromium, ShowsTheTlsModeAndEachMembersCertificateExpiry) {
  ASSERT_NO_FATAL_FAILURE(StartAll({"--tls=auto"}));
  ASSERT_NO_FATAL_FAILURE(
      WaitOnPage("document.querySelectorAll('#members tr.ok').length === 3 && "
                 "document.getElementById('tls').textContent.includes('first certificate')",
                 30));
  EXPECT_EQ(Text("tls").rfind("TLS: auto \u00b7 first certificate to expire: etcd-", 0), 0u)
      << Text("tls");
  auto expiries = Eval(
      "[...document.querySelectorAll('#members tr')].map((r) => r.cells[9].textContent + "
      "(r.cells[9].className === 'warn' ? ' [warn]' : '')).join('\\n')");
  ASSERT_TRUE(expiries.ok()) << expiries.error();
  std::string cells = expiries->get<std::string>();
  int with_days = 0;
  for (size_t at = cells.find(" days left)"); at != std::string::npos;
       at = cells.find(" days left)", at + 1)) {
    ++with_days;
  }
  EXPECT_EQ(with_days, 3) << cells;
  EXPECT_EQ(cells.find("[warn]"), std::string::npos) << cells;
  EXPECT_EQ(cells.find("renewal due"), std::string::npos) << cells;
  Snap("console-tls");
  auto errors = browser_->PageErrors();
  EXPECT_TRUE(errors.empty()) << errors.front();
}

}  // namespace
}  // namespace etcd_mesos::test
