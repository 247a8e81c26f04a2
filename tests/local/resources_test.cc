// ParseResources: the agent resources flag of etcd-mesos-local (`cpus:4;ports:[31000-31999]`),
// parsed into Mesos resources, and refused with the offending part named when malformed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "local/resources.h"

namespace etcd_mesos::local {
namespace {

using ::testing::HasSubstr;

TEST(ParseResources, ParsesScalarsAndRanges) {
  auto r = ParseResources("cpus:4;mem:4096;disk:4096;ports:[31000-31999]");
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0].name(), "cpus");
  EXPECT_EQ((*r)[0].type(), mesos::Value::SCALAR);
  EXPECT_DOUBLE_EQ((*r)[0].scalar().value(), 4);
  EXPECT_EQ((*r)[0].reservations_size(), 0);
  EXPECT_DOUBLE_EQ((*r)[1].scalar().value(), 4096);
  EXPECT_EQ((*r)[3].name(), "ports");
  EXPECT_EQ((*r)[3].type(), mesos::Value::RANGES);
  ASSERT_EQ((*r)[3].ranges().range_size(), 1);
  EXPECT_EQ((*r)[3].ranges().range(0).begin(), 31000u);
  EXPECT_EQ((*r)[3].ranges().range(0).end(), 31999u);

  auto more = ParseResources("cpus:0.5; ports:[32000-32010,31000-31005]; gpus:0;");
  ASSERT_TRUE(more.ok()) << more.error();
  EXPECT_DOUBLE_EQ((*more)[0].scalar().value(), 0.5);
  ASSERT_EQ((*more)[1].ranges().range_size(), 2);
  EXPECT_EQ((*more)[1].ranges().range(0).begin(), 31000u);  // sorted
  EXPECT_EQ((*more)[2].name(), "gpus");
}

TEST(ParseResources, RejectsMalformedSpecsNamingThePart) {
  struct Case {
    const char* spec;
    const char* mentions;
  };
  for (const Case& c : {Case{"", "no resources"}, Case{"cpus", "cpus"}, Case{"cpus:four", "four"},
                        Case{"cpus:-1", "-1"}, Case{"mem:1;mem:2", "twice"},
                        Case{"ports:[31000-30000]", "31000-30000"}, Case{"ports:[31000-31999", "]"},
                        Case{"ports:[a-b]", "a-b"}, Case{"ports:[1-10,5-20]", "overlap"},
                        Case{":4", ":4"}, Case{"cpus:nan", "nan"}}) {
    auto r = ParseResources(c.spec);
    ASSERT_FALSE(r.ok()) << c.spec;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << c.spec;
    EXPECT_THAT(r.error().message, HasSubstr(c.mentions)) << c.spec;
  }
}

}  // namespace
}  // namespace etcd_mesos::local
