// Mesos's JSON mapping and the protobuf encoding, on the shapes real Mesos sends and accepts
// (shared/reference/mesos-v1-api.md sections 0 and 1).
#include <gtest/gtest.h>

#include <cmath>

#include "common/encoding.h"
#include "mesos/codec.h"
#include "mesos/json_codec.h"
#include "mesos/v1.h"

namespace etcd_mesos::mesos_codec {
namespace {

using nlohmann::json;

TEST(JsonCodec, DecodesOffersEventWithDoubleNesting) {
  const char* text = R"j({"type":"OFFERS","offers":{"offers":[{"id":{"value":"M-O7"},
    "framework_id":{"value":"M-0000"},"agent_id":{"value":"M-S0"},"hostname":"agent1",
    "url":{"scheme":"http","address":{"hostname":"agent1","ip":"10.0.0.5","port":5051},"path":"/slave(1)"},
    "allocation_info":{"role":"etcd"},
    "resources":[{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":32000}]},
                  "allocation_info":{"role":"etcd"}},
                 {"name":"cpus","type":"SCALAR","scalar":{"value":4}}],
    "some_future_field":{"x":[1,2,3]}}]}})j";
  mesos::scheduler::Event event;
  Status s = MessageFromJsonString(text, &event);
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(event.type(), mesos::scheduler::Event::OFFERS);
  ASSERT_EQ(event.offers().offers_size(), 1);
  const auto& offer = event.offers().offers(0);
  EXPECT_EQ(offer.id().value(), "M-O7");
  EXPECT_EQ(offer.url().path(), "/slave(1)");
  ASSERT_EQ(offer.resources_size(), 2);
  EXPECT_EQ(offer.resources(0).ranges().range(0).end(), 32000u);
  EXPECT_EQ(offer.resources(1).scalar().value(), 4.0);
}

TEST(JsonCodec, ErrorEventHasNestedMessage) {
  mesos::scheduler::Event event;
  ASSERT_TRUE(MessageFromJsonString(
                  R"j({"type":"ERROR","error":{"message":"Framework failed over"}})j", &event)
                  .ok());
  EXPECT_EQ(event.error().message(), "Framework failed over");
}

TEST(JsonCodec, StatusUpdateUuidIsBase64AndTimestampDouble) {
  mesos::scheduler::Event event;
  Status s = MessageFromJsonString(R"j({"type":"UPDATE","update":{"status":{
     "task_id":{"value":"etcd-1.3f9c"},"state":"TASK_RUNNING","source":"SOURCE_EXECUTOR",
     "agent_id":{"value":"M-S0"},"timestamp":1700000000.123,
     "uuid":"1A8/PrvjRK+iMEyx6ucvZw==","message":"member started"}}})j",
                                   &event);
  ASSERT_TRUE(s.ok()) << s.error();
  const auto& status = event.update().status();
  EXPECT_EQ(status.state(), mesos::TASK_RUNNING);
  EXPECT_EQ(status.uuid().size(), 16u);
  EXPECT_TRUE(IsValidUuidBytes(status.uuid()));
  EXPECT_DOUBLE_EQ(status.timestamp(), 1700000000.123);
  // And back: uuid written as the same base64, enum by name.
  json back = MessageToJson(event);
  EXPECT_EQ(back["update"]["status"]["uuid"], "1A8/PrvjRK+iMEyx6ucvZw==");
  EXPECT_EQ(back["update"]["status"]["state"], "TASK_RUNNING");
}

TEST(JsonCodec, SixtyFourBitIntegersReadFromNumbersOrStringsWrittenAsNumbers) {
  mesos::Value::Range range;
  ASSERT_TRUE(
      MessageFromJsonString(R"j({"begin":"18446744073709551615","end":31000})j", &range).ok());
  EXPECT_EQ(range.begin(), UINT64_MAX);
  EXPECT_EQ(range.end(), 31000u);
  json out = MessageToJson(range);
  EXPECT_TRUE(out["begin"].is_number_unsigned());
  EXPECT_EQ(out["end"], 31000);
  EXPECT_FALSE(MessageFromJsonString(R"j({"begin":"12x","end":1})j", &range).ok());
  EXPECT_FALSE(MessageFromJsonString(R"j({"begin":-1,"end":1})j", &range).ok());
  EXPECT_FALSE(MessageFromJsonString(R"j({"begin":1.5,"end":1})j", &range).ok());
}

TEST(JsonCodec, DoublesAcceptInfinityStrings) {
  mesos::Value::Scalar scalar;
  ASSERT_TRUE(MessageFromJsonString(R"j({"value":"Infinity"})j", &scalar).ok());
  EXPECT_TRUE(std::isinf(scalar.value()));
  ASSERT_TRUE(MessageFromJsonString(R"j({"value":"2.5"})j", &scalar).ok());
  EXPECT_EQ(scalar.value(), 2.5);
}

TEST(JsonCodec, MissingRequiredFieldsFailWithTheirNames) {
  mesos::scheduler::Call call;
  Status s = MessageFromJsonString(
      R"j({"type":"SUBSCRIBE","subscribe":{"framework_info":{"name":"etcd"}}})j", &call);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message.find("user"), std::string::npos) << s.error();
}

TEST(JsonCodec, UnknownEnumNameIsDroppedInOptionalButFailsInRequired) {
  mesos::TaskStatus status;
  Status s = MessageFromJsonString(
      R"j({"task_id":{"value":"t"},"state":"TASK_RUNNING","reason":"REASON_FROM_THE_FUTURE"})j",
      &status);
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_FALSE(status.has_reason());
  Status bad =
      MessageFromJsonString(R"j({"task_id":{"value":"t"},"state":"TASK_DANCING"})j", &status);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("TASK_DANCING"), std::string::npos);
}

TEST(JsonCodec, WrongTypesAreErrorsNamingTheField) {
  mesos::scheduler::Call call;
  Status s = MessageFromJsonString(
      R"j({"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n","failover_timeout":[1]}}})j",
      &call);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("subscribe.framework_info.failover_timeout"), std::string::npos)
      << s.error();
  EXPECT_FALSE(MessageFromJsonString("[1,2]", &call).ok());
  EXPECT_FALSE(MessageFromJsonString("{not json", &call).ok());
  EXPECT_FALSE(MessageFromJsonString(R"j({"type":7})j", &call).ok());
  EXPECT_FALSE(MessageFromJsonString(R"j({"subscribe":{"framework_info":"x"}})j", &call).ok());
  EXPECT_FALSE(MessageFromJsonString(R"j({"reconcile":{"tasks":{"task_id":1}}})j", &call).ok());
}

TEST(JsonCodec, HostileNestingIsRefusedNotACrash) {
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "{\"data\":";
  mesos::scheduler::Call call;
  EXPECT_FALSE(MessageFromJsonString(deep, &call).ok());
  // Deep but well-formed JSON inside an ignored key is fine to skip.
  std::string nested = "{\"ignored\":" + std::string(200, '[') + std::string(200, ']') + "}";
  EXPECT_TRUE(MessageFromJsonString(nested, &call).ok());
}

TEST(JsonCodec, InvalidUtf8FromProtobufIsWrittenNotThrown) {
  // proto2 parsing keeps invalid UTF-8 in `string` fields (found by fuzz_mesos_protobuf).
  mesos::TaskID id;
  id.set_value(std::string("etcd-\xff\xfe", 7));
  std::string text;
  ASSERT_NO_THROW(text = MessageToJsonString(id));
  EXPECT_NE(text.find("etcd-"), std::string::npos);
  mesos::TaskID back;
  EXPECT_TRUE(MessageFromJsonString(text, &back).ok());
}

TEST(JsonCodec, DefaultsAreWrittenLikeStout) {
  mesos::Filters filters;
  json out = MessageToJson(filters);
  EXPECT_EQ(out["refuse_seconds"], 5.0);
  mesos::CommandInfo command;
  EXPECT_EQ(MessageToJson(command)["shell"], true);
}

TEST(JsonCodec, RoundTripsAFullSubscribeCall) {
  mesos::scheduler::Call call;
  call.set_type(mesos::scheduler::Call::SUBSCRIBE);
  call.mutable_framework_id()->set_value("M-0001");
  auto* info = call.mutable_subscribe()->mutable_framework_info();
  info->set_user("root");
  info->set_name("etcd-test");
  info->mutable_id()->set_value("M-0001");
  info->set_failover_timeout(604800);
  info->set_checkpoint(true);
  info->add_roles("etcd");
  info->add_capabilities()->set_type(mesos::FrameworkInfo::Capability::PARTITION_AWARE);
  info->add_capabilities()->set_type(mesos::FrameworkInfo::Capability::MULTI_ROLE);
  mesos::scheduler::Call back;
  Status s = MessageFromJson(MessageToJson(call), &back);
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(back.SerializeAsString(), call.SerializeAsString());
  json j = MessageToJson(call);
  EXPECT_EQ(j["subscribe"]["framework_info"]["capabilities"][0]["type"], "PARTITION_AWARE");
  EXPECT_EQ(j["framework_id"]["value"], "M-0001");
}

TEST(Codec, ProtobufRoundTripAndErrors) {
  mesos::scheduler::Event event;
  event.set_type(mesos::scheduler::Event::HEARTBEAT);
  std::string wire = Encode(event, ContentType::kProtobuf);
  mesos::scheduler::Event back;
  ASSERT_TRUE(Decode(wire, ContentType::kProtobuf, &back).ok());
  EXPECT_EQ(back.type(), mesos::scheduler::Event::HEARTBEAT);
  EXPECT_FALSE(Decode("\xff\xff\xff\xff", ContentType::kProtobuf, &back).ok());
  // A TaskStatus without its required task_id is refused.
  mesos::TaskStatus partial;
  partial.set_state(mesos::TASK_RUNNING);
  mesos::TaskStatus out;
  Status s = Decode(partial.SerializePartialAsString(), ContentType::kProtobuf, &out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("task_id"), std::string::npos);
}

TEST(Codec, EncodingAMessageMissingRequiredFieldsDoesNotAbort) {
  // Found by the scale benchmark: protobuf's checked serializer aborts the process.
  mesos::scheduler::Event event;
  event.set_type(mesos::scheduler::Event::OFFERS);
  event.mutable_offers()->add_offers()->mutable_url()->mutable_address()->set_ip("10.0.0.1");
  std::string wire = Encode(event, ContentType::kProtobuf);
  EXPECT_FALSE(wire.empty());
  mesos::scheduler::Event back;
  EXPECT_FALSE(Decode(wire, ContentType::kProtobuf, &back).ok()) << "the receiver refuses it";
}

TEST(Codec, ContentTypeMatchesExactly) {
  EXPECT_EQ(ParseContentType("application/json"), ContentType::kJson);
  EXPECT_EQ(ParseContentType("application/x-protobuf"), ContentType::kProtobuf);
  EXPECT_EQ(ParseContentType("application/json; charset=utf-8"), std::nullopt);
  EXPECT_EQ(ParseContentType("Application/JSON"), std::nullopt);
  EXPECT_EQ(ParseContentType(""), std::nullopt);
}

TEST(Codec, AcceptNegotiationPrefersJson) {
  EXPECT_EQ(NegotiateAccept(std::nullopt), ContentType::kJson);
  EXPECT_EQ(NegotiateAccept("application/x-protobuf"), ContentType::kProtobuf);
  EXPECT_EQ(NegotiateAccept("application/x-protobuf, application/json"), ContentType::kJson);
  EXPECT_EQ(NegotiateAccept("*/*"), ContentType::kJson);
  EXPECT_EQ(NegotiateAccept("application/json;q=0, application/x-protobuf"),
            ContentType::kProtobuf);
  EXPECT_EQ(NegotiateAccept("text/html"), std::nullopt);
}

}  // namespace
}  // namespace etcd_mesos::mesos_codec
