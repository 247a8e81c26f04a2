// RecordIO framing: every split of a stream decodes the same; bad lengths are errors, not
// crashes or hangs.
#include <gtest/gtest.h>

#include "mesos/codec.h"
#include "mesos/recordio.h"
#include "mesos/v1.h"

namespace etcd_mesos::recordio {
namespace {

std::vector<std::string> DecodeAll(Decoder& d) {
  std::vector<std::string> out;
  while (true) {
    auto r = d.Next();
    if (!r.ok()) ADD_FAILURE() << r.error();
    if (!r.ok() || !r->has_value()) return out;
    out.push_back(std::move(**r));
  }
}

std::vector<std::string> SampleEvents() {
  using mesos::scheduler::Event;
  std::vector<std::string> records;
  Event subscribed;
  subscribed.set_type(Event::SUBSCRIBED);
  subscribed.mutable_subscribed()->mutable_framework_id()->set_value("M-0000");
  subscribed.mutable_subscribed()->set_heartbeat_interval_seconds(15);
  Event heartbeat;
  heartbeat.set_type(Event::HEARTBEAT);
  Event error;
  error.set_type(Event::ERROR);
  error.mutable_error()->set_message("Framework failed over\n with a newline");
  for (auto type : {mesos_codec::ContentType::kJson, mesos_codec::ContentType::kProtobuf}) {
    for (const Event* e : {&subscribed, &heartbeat, &error}) {
      records.push_back(mesos_codec::Encode(*e, type));
    }
  }
  records.push_back("");                       // an empty record is legal framing
  records.push_back(std::string(70000, 'x'));  // larger than any read buffer
  return records;
}

TEST(RecordIO, EncodesLengthNewlineBytes) {
  EXPECT_EQ(Encode("hello"), "5\nhello");
  EXPECT_EQ(Encode(""), "0\n");
}

TEST(RecordIO, EverySingleSplitPointDecodesTheSameRecords) {
  auto records = SampleEvents();
  records.pop_back();  // keep the quadratic sweep fast
  std::string stream;
  for (const auto& r : records) stream += Encode(r);
  for (size_t split = 0; split <= stream.size(); ++split) {
    Decoder d;
    d.Feed(std::string_view(stream).substr(0, split));
    auto got = DecodeAll(d);
    d.Feed(std::string_view(stream).substr(split));
    auto rest = DecodeAll(d);
    got.insert(got.end(), rest.begin(), rest.end());
    ASSERT_EQ(got, records) << "split at " << split;
    EXPECT_EQ(d.buffered(), 0u);
  }
}

TEST(RecordIO, ByteAtATimeDecodesTheSameRecords) {
  auto records = SampleEvents();
  std::string stream;
  for (const auto& r : records) stream += Encode(r);
  Decoder d;
  std::vector<std::string> got;
  for (char c : stream) {
    d.Feed(std::string_view(&c, 1));
    auto more = DecodeAll(d);
    got.insert(got.end(), more.begin(), more.end());
  }
  EXPECT_EQ(got, records);
}

TEST(RecordIO, DecodedRecordsAreTheEventsThatWereSent) {
  mesos::scheduler::Event e;
  e.set_type(mesos::scheduler::Event::HEARTBEAT);
  Decoder d;
  d.Feed(Encode(mesos_codec::Encode(e, mesos_codec::ContentType::kJson)));
  auto r = d.Next();
  ASSERT_TRUE(r.ok() && r->has_value());
  mesos::scheduler::Event back;
  ASSERT_TRUE(mesos_codec::Decode(**r, mesos_codec::ContentType::kJson, &back).ok());
  EXPECT_EQ(back.type(), mesos::scheduler::Event::HEARTBEAT);
}

TEST(RecordIO, MalformedLengthsAreErrorsAndStayErrors) {
  for (const std::string& bad :
       std::vector<std::string>{"abc\nxyz", "\nx", "-5\nhello", "12 \nx", "5x\nhello",
                                std::string(25, '9') + "\n", std::string(30, '1')}) {
    Decoder d;
    d.Feed(bad);
    auto r = d.Next();
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kDataLoss);
    d.Feed("5\nhello");
    EXPECT_FALSE(d.Next().ok()) << "a failed decoder must stay failed";
  }
}

TEST(RecordIO, LengthOverTheBoundIsRefusedBeforeBuffering) {
  Decoder d(1024);
  d.Feed("1025\n");
  auto r = d.Next();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("1025"), std::string::npos);
  Decoder huge;
  huge.Feed("18446744073709551615\n");
  EXPECT_FALSE(huge.Next().ok());
  Decoder overflow;
  overflow.Feed("99999999999999999999\n");
  EXPECT_FALSE(overflow.Next().ok());
}

TEST(RecordIO, IncompleteRecordWaitsForMore) {
  Decoder d;
  d.Feed("10\nhello");
  auto r = d.Next();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  d.Feed("world");
  r = d.Next();
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ(**r, "helloworld");
}

}  // namespace
}  // namespace etcd_mesos::recordio
