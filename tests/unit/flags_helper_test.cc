// FlagSet (common/flags.h): one declaration per flag gives the command line, the variables, the
// default, the range and the help; every bad value names its source.
#include "common/flags.h"

#include <stdexcept>

#include <gtest/gtest.h>
#include <CLI/CLI.hpp>

namespace etcd_mesos {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A program with one flag of each type.
struct Program {
  Program() {
    flags.Add("--size", &size, "How many").Env("SIZE").Env("OLD_SIZE").Range(1, 99);
    flags.Add("--ratio", &ratio, "How much").Range(0.5, 2.0);
    flags.Add("--timeout", &timeout, "How long").AtLeast(milliseconds(100));
    flags.Add("--span", &span, "How long at most").Range(seconds(0), seconds(3600));
    flags.Add("--name,--old-name", &name, "What").Env("NAME").Check([](const std::string& n) {
      return n.empty() ? Problem("must not be empty") : std::nullopt;
    });
    flags.Add("--on", &on, "Whether").Env("ON");
    flags.Obsolete("--logtostderr", false, "the log goes to stderr");
    flags.Obsolete("--v,-v", true, "use --log-level");
  }
  Result<FlagSet::Parsed> Parse(std::vector<std::string> args, FlagSet::Env env = {}) {
    return flags.Parse(args, env);
  }

  int size = 3;
  double ratio = 1;
  milliseconds timeout{5'000};
  seconds span{60};
  std::string name = "x";
  bool on = false;
  FlagSet flags{"program", "A program."};
};

std::string ErrorOf(std::vector<std::string> args, FlagSet::Env env = {}) {
  Program p;
  auto r = p.Parse(std::move(args), std::move(env));
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  return r.error().message;
}

TEST(FlagSet, DefaultsStayWhenNothingIsGiven) {
  Program p;
  auto r = p.Parse({});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_FALSE(r->exit);
  EXPECT_EQ(p.size, 3);
  EXPECT_EQ(p.timeout, milliseconds(5'000));
  EXPECT_EQ(p.name, "x");
  EXPECT_FALSE(p.on);
}

TEST(FlagSet, EveryTypeFromTheCommandLine) {
  Program p;
  auto r = p.Parse(
      {"--size=7", "--ratio", "1.5", "--timeout=250ms", "--span=5m", "--old-name=y", "--on"});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(p.size, 7);
  EXPECT_EQ(p.ratio, 1.5);
  EXPECT_EQ(p.timeout, milliseconds(250));
  EXPECT_EQ(p.span, seconds(300));
  EXPECT_EQ(p.name, "y");
  EXPECT_TRUE(p.on);
}

TEST(FlagSet, GoStyleSingleDash) {
  Program p;
  auto r = p.Parse({"-size=8", "-timeout", "2s", "-on=false"});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(p.size, 8);
  EXPECT_EQ(p.timeout, seconds(2));
  EXPECT_FALSE(p.on);
}

TEST(FlagSet, CommandLineOverVariablesOverDefault) {
  Program p;
  auto r = p.Parse({"--size=4"}, {{"SIZE", "5"}, {"OLD_SIZE", "6"}, {"NAME", "from-env"}});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(p.size, 4);
  EXPECT_EQ(p.name, "from-env");

  Program first;
  ASSERT_TRUE(first.Parse({}, {{"SIZE", "5"}, {"OLD_SIZE", "6"}}).ok());
  EXPECT_EQ(first.size, 5) << "the first variable declared wins";
  Program second;
  ASSERT_TRUE(second.Parse({}, {{"OLD_SIZE", "6"}}).ok());
  EXPECT_EQ(second.size, 6);
  // A bad variable that the command line overrides is never read.
  Program over;
  EXPECT_TRUE(over.Parse({"--on=true"}, {{"ON", "perhaps"}}).ok());
}

TEST(FlagSet, BadValuesNameTheirSource) {
  EXPECT_EQ(ErrorOf({"--size=x"}), "--size=x: is not an integer in 1..99 (see --help)");
  EXPECT_EQ(ErrorOf({}, {{"OLD_SIZE", "x"}}),
            "--size (from OLD_SIZE)=x: is not an integer in 1..99 (see --help)");
  EXPECT_NE(ErrorOf({}, {{"ON", "perhaps"}}).find("--on (from ON)=perhaps: is not a boolean"),
            std::string::npos);
  EXPECT_NE(ErrorOf({}, {{"NAME", ""}}).find("--name (from NAME)=: must not be empty"),
            std::string::npos);
  // CLI11 refuses an empty value after '=' itself, naming the flag by its first name.
  EXPECT_NE(ErrorOf({"-old-name="}).find("--name"), std::string::npos);
}

TEST(FlagSet, RangesAreChecked) {
  EXPECT_NE(ErrorOf({"--size=0"}).find("1..99"), std::string::npos);
  EXPECT_NE(ErrorOf({"--size=100"}).find("1..99"), std::string::npos);
  EXPECT_NE(ErrorOf({"--ratio=3"}).find("--ratio=3: is not a number in 0.5..2"), std::string::npos);
  EXPECT_NE(ErrorOf({"--ratio=nan"}).find("--ratio"), std::string::npos);
  EXPECT_NE(ErrorOf({"--timeout=1ms"}).find("--timeout=1ms: must be at least 100ms"),
            std::string::npos);
  EXPECT_NE(ErrorOf({"--timeout=soon"}).find("is not a duration"), std::string::npos);
  EXPECT_NE(ErrorOf({"--span=2h"}).find("--span=2h: is out of range 0s..1h"), std::string::npos);
}

TEST(FlagSet, UnknownFlagsStraysAndMissingValuesAreErrors) {
  EXPECT_NE(ErrorOf({"--nope"}).find("--nope"), std::string::npos);
  EXPECT_NE(ErrorOf({"stray"}).find("stray"), std::string::npos);
  EXPECT_NE(ErrorOf({"--size"}).find("--size"), std::string::npos);
}

TEST(FlagSet, ObsoleteFlagsAreDroppedWithAWarning) {
  Program p;
  auto r = p.Parse({"-logtostderr", "-v", "2", "--v=3", "-size=9"});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(p.size, 9);
  ASSERT_EQ(r->warnings.size(), 3u);
  EXPECT_EQ(r->warnings[0], "--logtostderr (the original's) is ignored: the log goes to stderr");
  EXPECT_EQ(r->warnings[1], "-v (the original's) is ignored: use --log-level");
}

TEST(FlagSet, HelpShowsVariablesAndDefaults) {
  Program p;
  auto r = p.Parse({"-h"});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r->exit);
  EXPECT_NE(r->text.find("A program."), std::string::npos) << r->text;
  EXPECT_NE(r->text.find("How many [SIZE, OLD_SIZE] (default: 3)"), std::string::npos) << r->text;
  EXPECT_NE(r->text.find("(default: 5s)"), std::string::npos) << r->text;
  EXPECT_NE(r->text.find("--old-name"), std::string::npos) << r->text;
}

TEST(FlagSet, NothingAfterTheDoubleDashIsTouched) {
  int n = 1;
  std::vector<std::string> rest;
  FlagSet flags("program", "A program.");
  flags.Add("--num", &n, "N");
  flags.Obsolete("--logtostderr", false, "gone");
  flags.app().add_option("rest", rest, "The rest");
  auto r = flags.Parse({"-num=2", "--", "-num=3", "-logtostderr"});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(n, 2);
  EXPECT_EQ(rest, (std::vector<std::string>{"-num=3", "-logtostderr"}));
  EXPECT_TRUE(r->warnings.empty());
}

TEST(FlagSet, ANameOrVariableDeclaredTwiceIsRefusedAtOnce) {
  int a = 0, b = 0;
  FlagSet flags("program", "A program.");
  flags.Add("--a,--alias", &a, "A").Env("A");
  EXPECT_THROW(flags.Add("--a", &b, "again"), std::logic_error);
  EXPECT_THROW(flags.Add("--b,--alias", &b, "alias again"), std::logic_error);
  EXPECT_THROW(flags.Add("--c", &b, "C").Env("A"), std::logic_error);
  EXPECT_THROW(flags.Obsolete("--a", false, "both"), std::logic_error);
}

}  // namespace
}  // namespace etcd_mesos
