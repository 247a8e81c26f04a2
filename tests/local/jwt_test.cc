// The agent's executor tokens (local/jwt.h): the RFC 7515 A.1 example token verifies (so tokens
// are real HS256 JWTs, not merely self-consistent), and every check libprocess makes refuses
// what it refuses, with its message.
#include "local/jwt.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/encoding.h"

namespace etcd_mesos::local {
namespace {

using ::testing::HasSubstr;

// RFC 7515 appendix A.1: an HS256 JWS over the RFC 7519 example claims, and its key.
constexpr char kRfcToken[] =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    "."
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
constexpr char kRfcKey[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
constexpr int64_t kRfcExp = 1300819380;

std::string Part(std::string_view json) {
  std::string out = Base64Encode(json);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

TEST(Jwt, TheRfcExampleVerifiesWithItsKeyUntilItExpires) {
  std::string key = *Base64Decode(kRfcKey);
  auto claims = VerifyJwt(kRfcToken, key, kRfcExp);
  ASSERT_TRUE(claims.ok()) << claims.error();
  EXPECT_EQ((*claims)["iss"], "joe");
  EXPECT_EQ((*claims)["exp"], "1300819380");  // non-strings in their JSON text, as Mesos
  EXPECT_EQ((*claims)["http://example.com/is_root"], "true");
  auto expired = VerifyJwt(kRfcToken, key, kRfcExp + 1);
  ASSERT_FALSE(expired.ok());
  EXPECT_THAT(expired.error().message, HasSubstr("Token has expired"));
  auto wrong_key = VerifyJwt(kRfcToken, "another key", kRfcExp);
  ASSERT_FALSE(wrong_key.ok());
  EXPECT_EQ(wrong_key.error().message, "Token signature does not match");
}

TEST(Jwt, CreatedTokensHaveMesossHeaderAndVerify) {
  std::string token = CreateJwt({{"fid", "F"}, {"eid", "E"}, {"cid", "C"}}, "k");
  EXPECT_EQ(token.substr(0, token.find('.')), Part(R"({"alg":"HS256","typ":"JWT"})"));
  size_t second = token.find('.', token.find('.') + 1);
  EXPECT_EQ(token.substr(token.find('.') + 1, second - token.find('.') - 1),
            Part(R"({"cid":"C","eid":"E","fid":"F"})"));
  EXPECT_EQ(token.find('='), std::string::npos);
  auto claims = VerifyJwt(token, "k", 0);
  ASSERT_TRUE(claims.ok()) << claims.error();
  EXPECT_EQ(*claims, (JwtClaims{{"fid", "F"}, {"eid", "E"}, {"cid", "C"}}));
}

TEST(Jwt, EveryCheckOfLibprocessRefusesWithItsMessage) {
  // Each case fails one check; the checks before it pass (the signature is checked last).
  std::string payload = Part(R"({"eid":"E"})");
  struct Case {
    std::string token;
    std::string message;
  };
  std::string good = CreateJwt({{"eid", "E"}}, "k");
  std::string signature = good.substr(good.rfind('.'));
  std::vector<Case> cases = {
      {"a.b", "Expected 3 components in token, got 2"},
      {"a.b.c.d", "Expected 3 components in token, got 4"},
      {"!!." + payload + signature, "Failed to decode token header"},
      {Part("[1]") + "." + payload + signature, "Failed to decode token header"},
      {Part(R"({"typ":1,"alg":"HS256"})") + "." + payload + signature,
       "Token 'typ' is not a string"},
      {Part(R"({"typ":"JWT"})") + "." + payload + signature,
       "Failed to locate 'alg' in token JSON header"},
      {Part(R"({"alg":256})") + "." + payload + signature, "Token 'alg' field is not a string"},
      {Part(R"({"alg":"HS512"})") + "." + payload + signature,
       "Unsupported token algorithm: HS512"},
      {Part(R"({"alg":"HS256","crit":["x"]})") + "." + payload + signature,
       "Token 'crit' field is unsupported"},
      {Part(R"({"alg":"none"})") + "." + payload + ".",
       "Token 'alg' value \"none\" does not match, expected \"HS256\""},
      {Part(R"({"alg":"RS256"})") + "." + payload + signature,
       "Token 'alg' value \"RS256\" does not match, expected \"HS256\""},
      {Part(R"({"alg":"HS256"})") + "." + Part("not json") + signature,
       "Failed to decode token payload"},
      {Part(R"({"alg":"HS256"})") + "." + Part(R"({"exp":"soon"})") + signature,
       "JSON payload 'exp' field is not a number"},
      {Part(R"({"alg":"HS256"})") + "." + Part(R"({"exp":1})") + signature,
       "Token has expired: exp(1) < now(2)"},
      {good.substr(0, good.rfind('.')) + ".+/+/", "Failed to base64url-decode token signature"},
      {good.substr(0, good.rfind('.')) + "." + Part("short"), "Token signature does not match"},
  };
  for (const auto& c : cases) {
    auto r = VerifyJwt(c.token, "k", 2);
    ASSERT_FALSE(r.ok()) << c.token;
    EXPECT_THAT(r.error().message, HasSubstr(c.message)) << c.token;
  }
}

}  // namespace
}  // namespace etcd_mesos::local
