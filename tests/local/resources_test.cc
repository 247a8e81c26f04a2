// ParseResources: the agent resources flag of etcd-mesos-local (`cpus:4;ports:[31000-31999]`),
// parsed into Mesos resources, and refused with the offending part named when malformed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "local/operations.h"
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

// ---- Reservations and persistent volumes (the shapes and texts seen on Mesos 1.11) ------------

namespace etcd_mesos::local {
namespace {

mesos::Resource Scalar(const std::string& name, double value) {
  mesos::Resource r;
  r.set_name(name);
  r.set_type(mesos::Value::SCALAR);
  r.mutable_scalar()->set_value(value);
  return r;
}

mesos::Resource Ports(uint64_t begin, uint64_t end) {
  mesos::Resource r;
  r.set_name("ports");
  r.set_type(mesos::Value::RANGES);
  auto* range = r.mutable_ranges()->add_range();
  range->set_begin(begin);
  range->set_end(end);
  return r;
}

mesos::Resource Reserved(mesos::Resource r, const std::string& role = "etcd",
                         const std::string& principal = "etcd-principal",
                         const std::string& member = "etcd-1") {
  auto* reservation = r.add_reservations();
  reservation->set_type(mesos::Resource::ReservationInfo::DYNAMIC);
  reservation->set_role(role);
  if (!principal.empty()) reservation->set_principal(principal);
  auto* labels = reservation->mutable_labels();
  auto* cluster = labels->add_labels();
  cluster->set_key("cluster");
  cluster->set_value("c1");
  auto* name = labels->add_labels();
  name->set_key("member");
  name->set_value(member);
  return r;
}

mesos::Resource Volume(mesos::Resource disk, const std::string& id = "vol-etcd-1") {
  disk.mutable_disk()->mutable_persistence()->set_id(id);
  disk.mutable_disk()->mutable_persistence()->set_principal("etcd-principal");
  disk.mutable_disk()->mutable_volume()->set_container_path("data");
  disk.mutable_disk()->mutable_volume()->set_mode(mesos::Volume::RW);
  return disk;
}

ResourceBag Bag(std::vector<mesos::Resource> resources) { return ResourceBag::From(resources); }

TEST(ResourceBag, KeepsReservationsApartAndTakesAVolumeWhole) {
  ResourceBag agent = Bag({Scalar("cpus", 3), Reserved(Scalar("cpus", 1)), Scalar("disk", 100),
                           Volume(Reserved(Scalar("disk", 1024)))});
  EXPECT_DOUBLE_EQ(agent.Scalar("cpus"), 4);
  EXPECT_DOUBLE_EQ(agent.Unreserved().Scalar("cpus"), 3);
  EXPECT_DOUBLE_EQ(agent.ReservedTo("etcd").Scalar("cpus"), 1);
  EXPECT_TRUE(agent.ReservedTo("other").Empty());
  EXPECT_FALSE(agent.Contains(Bag({Reserved(Scalar("cpus", 2))})))
      << "unreserved cpus do not stand in for reserved ones";
  EXPECT_FALSE(agent.Contains(Bag({Reserved(Scalar("cpus", 1), "etcd", "etcd-principal", "x")})))
      << "other labels are another reservation";
  EXPECT_TRUE(agent.Contains(Bag({Volume(Reserved(Scalar("disk", 1024)))})));
  EXPECT_FALSE(agent.Contains(Bag({Volume(Reserved(Scalar("disk", 512)))})))
      << "a volume is taken whole";
  ASSERT_EQ(agent.Volumes().size(), 1u);
  EXPECT_EQ(agent.Volumes()[0].disk().persistence().id(), "vol-etcd-1");
  EXPECT_EQ(agent.ReservedByRole().count("etcd"), 1u);
  EXPECT_EQ(agent.Summary()["disk"], 1124.0);
}

TEST(ResourceBag, DescribesResourcesAsMesosPrintsThem) {
  EXPECT_EQ(DescribeResource(Reserved(Scalar("cpus", 1)), "etcd"),
            "cpus(allocated: etcd)(reservations: [(DYNAMIC,etcd,etcd-principal,{cluster: c1, "
            "member: etcd-1})]):1");
  EXPECT_EQ(DescribeResource(Volume(Reserved(Scalar("disk", 1024))), "etcd"),
            "disk(allocated: etcd)(reservations: [(DYNAMIC,etcd,etcd-principal,{cluster: c1, "
            "member: etcd-1})])[vol-etcd-1:data]:1024");
  EXPECT_EQ(Bag({Ports(41002, 41099), Scalar("cpus", 2.9)}).Describe("etcd"),
            "cpus(allocated: etcd):2.9; ports(allocated: etcd):[41002-41099]");
}

TEST(ResourceBag, ThePreRefinementFormatRoundTrips) {
  mesos::Resource refined = Reserved(Scalar("mem", 512));
  mesos::Resource legacy = ToLegacyFormat(refined);
  EXPECT_EQ(legacy.reservations_size(), 0);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  EXPECT_EQ(legacy.role(), "etcd");
  EXPECT_EQ(legacy.reservation().principal(), "etcd-principal");
  EXPECT_EQ(legacy.reservation().labels().labels_size(), 2);
  EXPECT_EQ(ToLegacyFormat(Scalar("cpus", 1)).role(), "*");
#pragma GCC diagnostic pop
  EXPECT_EQ(Normalized(legacy).SerializeAsString(), refined.SerializeAsString());
  EXPECT_TRUE(Bag({refined}).Contains(Bag({legacy})));
}

// ---- Offer operations: ConvertOffered, with Mesos 1.11's texts --------------------------------

class OperationsTest : public ::testing::Test {
 protected:
  OperationsTest() {
    context_.framework_roles = {"etcd"};
    context_.allocated_role = "etcd";
    context_.principal = "etcd-principal";
    context_.agent_suffix = "; on agent S1 at slave(1)@127.0.0.12:5051 (127.0.0.12)";
    offered_ =
        Bag({Scalar("cpus", 4), Scalar("mem", 4096), Scalar("disk", 20000), Ports(41000, 41099)});
    context_.agent_total = offered_;
  }
  static mesos::Offer::Operation Op(mesos::Offer::Operation::Type type,
                                    std::vector<mesos::Resource> resources) {
    mesos::Offer::Operation op;
    op.set_type(type);
    for (auto& r : resources) {
      switch (type) {
        case mesos::Offer::Operation::RESERVE:
          *op.mutable_reserve()->add_resources() = r;
          break;
        case mesos::Offer::Operation::UNRESERVE:
          *op.mutable_unreserve()->add_resources() = r;
          break;
        case mesos::Offer::Operation::CREATE:
          *op.mutable_create()->add_volumes() = r;
          break;
        default:
          *op.mutable_destroy()->add_volumes() = r;
      }
    }
    return op;
  }
  // Applies `op` to the offer and the agent as the master does; the error message if refused.
  std::string Apply(const mesos::Offer::Operation& op) {
    auto got = ConvertOffered(op, offered_, context_);
    if (!got.ok()) return got.error().message;
    offered_.Subtract(got->consumed);
    offered_.Add(got->converted);
    context_.agent_total.Subtract(got->consumed);
    context_.agent_total.Add(got->converted);
    return "";
  }
  std::string ReserveAndCreate() {
    std::string reserved = Apply(Op(mesos::Offer::Operation::RESERVE,
                                    {Reserved(Scalar("cpus", 1)), Reserved(Scalar("disk", 1024)),
                                     Reserved(Ports(41000, 41002))}));
    if (!reserved.empty()) return reserved;
    return Apply(Op(mesos::Offer::Operation::CREATE, {Volume(Reserved(Scalar("disk", 1024)))}));
  }
  OperationContext context_;
  ResourceBag offered_;
};

TEST_F(OperationsTest, ReserveCreateDestroyUnreserveInTurn) {
  ASSERT_EQ(ReserveAndCreate(), "");
  EXPECT_DOUBLE_EQ(offered_.Unreserved().Scalar("cpus"), 3);
  EXPECT_DOUBLE_EQ(offered_.ReservedTo("etcd").Scalar("cpus"), 1);
  ASSERT_EQ(context_.agent_total.Volumes().size(), 1u);
  EXPECT_EQ(Apply(Op(mesos::Offer::Operation::DESTROY, {Volume(Reserved(Scalar("disk", 1024)))})),
            "");
  EXPECT_TRUE(context_.agent_total.Volumes().empty());
  EXPECT_EQ(Apply(Op(mesos::Offer::Operation::UNRESERVE,
                     {Reserved(Scalar("cpus", 1)), Reserved(Scalar("disk", 1024)),
                      Reserved(Ports(41000, 41002))})),
            "");
  EXPECT_TRUE(offered_.ReservedTo("etcd").Empty());
  EXPECT_DOUBLE_EQ(offered_.Scalar("disk"), 20000);
  EXPECT_EQ(offered_.Summary()["ports"], "[41000-41099]");
}

TEST_F(OperationsTest, RefusalsReadAsMesossOwn) {
  EXPECT_EQ(Apply(Op(mesos::Offer::Operation::RESERVE, {Reserved(Scalar("cpus", 0.5), "*")})),
            "Operation attempted with invalid resources: Resource 'cpus(allocated: "
            "etcd)(reservations: [(DYNAMIC,*,etcd-principal,{cluster: c1, member: etcd-1})]):0.5' "
            "is invalid: Invalid reservation: role \"*\" cannot be reserved");
  EXPECT_EQ(Apply(Op(mesos::Offer::Operation::RESERVE, {Reserved(Scalar("cpus", 1), "other")})),
            "A reserve operation was attempted for a resource with role 'other', but the resource "
            "was allocated to role 'etcd'" +
                context_.agent_suffix);
  EXPECT_EQ(Apply(Op(mesos::Offer::Operation::RESERVE,
                     {Reserved(Scalar("cpus", 1), "etcd", "someone-else")})),
            "A reserve operation was attempted by authenticated principal 'etcd-principal', which "
            "does not match a reserved resource in the request with principal 'someone-else'" +
                context_.agent_suffix);
  EXPECT_EQ(Apply(Op(mesos::Offer::Operation::RESERVE, {Reserved(Scalar("cpus", 1), "etcd", "")})),
            "A reserve operation was attempted by principal 'etcd-principal', but there is a "
            "reserved resource in the request with no principal set" +
                context_.agent_suffix);
  EXPECT_EQ(Apply(Op(mesos::Offer::Operation::RESERVE, {Reserved(Scalar("cpus", 5))})),
            offered_.Describe("etcd") + " does not contain cpus(allocated: etcd):5");
  EXPECT_EQ(Apply(Op(mesos::Offer::Operation::CREATE, {Volume(Scalar("disk", 10))})),
            "Invalid resources: Invalid DiskInfo: Persistent volumes cannot be created from "
            "unreserved resources" +
                context_.agent_suffix);
  ASSERT_EQ(ReserveAndCreate(), "");
  EXPECT_EQ(Apply(Op(mesos::Offer::Operation::RESERVE, {Reserved(Scalar("disk", 100))})), "");
  EXPECT_EQ(Apply(Op(mesos::Offer::Operation::CREATE, {Volume(Reserved(Scalar("disk", 100)))})),
            "Persistence ID 'vol-etcd-1' is not unique" + context_.agent_suffix);
  EXPECT_EQ(Apply(Op(mesos::Offer::Operation::UNRESERVE, {Volume(Reserved(Scalar("disk", 1024)))})),
            "A dynamically reserved persistent volume disk(allocated: etcd)(reservations: "
            "[(DYNAMIC,etcd,etcd-principal,{cluster: c1, member: etcd-1})])[vol-etcd-1:data]:1024 "
            "cannot be unreserved directly. Please destroy the persistent volume first then "
            "unreserve the resource" +
                context_.agent_suffix);
  EXPECT_EQ(
      Apply(Op(mesos::Offer::Operation::DESTROY, {Volume(Reserved(Scalar("disk", 1024)), "nope")})),
      "Persistent volumes not found" + context_.agent_suffix);
  context_.agent_used = Bag({Volume(Reserved(Scalar("disk", 1024)))});
  EXPECT_EQ(Apply(Op(mesos::Offer::Operation::DESTROY, {Volume(Reserved(Scalar("disk", 1024)))})),
            "Persistent volumes in use" + context_.agent_suffix);
  ASSERT_EQ(context_.agent_total.Volumes().size(), 1u) << "nothing refused changed the agent";
}

TEST_F(OperationsTest, AFrameworkOfRoleStarCannotReserve) {
  context_.framework_roles = {"*"};
  context_.allocated_role = "*";
  EXPECT_EQ(Apply(Op(mesos::Offer::Operation::RESERVE, {Reserved(Scalar("cpus", 1))})),
            "A reserve operation was attempted for a resource with role 'etcd', but the resource "
            "was allocated to role '*'" +
                context_.agent_suffix);
}

}  // namespace
}  // namespace etcd_mesos::local
