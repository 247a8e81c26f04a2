// The workload checker itself: it must see every kind of loss the fault suite relies on it to
// see, on fabricated reads and on a real etcd from which an acknowledged write is deliberately
// deleted behind the workload's back.
#include "testing/workload.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "testing/etcd_server.h"
#include "testing/ports.h"
#include "testing/process.h"
#include "testing/tempdir.h"

namespace etcd_mesos::test {
namespace {

SequenceRead Read(const std::string& prefix, std::initializer_list<uint64_t> seqs) {
  SequenceRead read;
  for (uint64_t s : seqs) read.emplace_back(Workload::Key(prefix, s), std::to_string(s));
  return read;
}

TEST(WorkloadChecker, AllAcknowledgedReadBackIsOk) {
  auto report = CheckWorkload({1, 2, 3}, "/w", Read("/w", {1, 2, 3, 4}));
  EXPECT_TRUE(report.ok()) << report.ToString();
  EXPECT_EQ(report.unacknowledged_present, 1u) << "4 was indeterminate and applied: allowed";
}

TEST(WorkloadChecker, AMissingAcknowledgedWriteIsLost) {
  auto report = CheckWorkload({1, 2, 3}, "/w", Read("/w", {1, 3}));
  EXPECT_FALSE(report.ok());
  ASSERT_EQ(report.lost.size(), 1u);
  EXPECT_EQ(report.lost[0], 2u);
}

TEST(WorkloadChecker, AfterAReseedOnlyWhatTheSurvivorHadMustSurvive) {
  std::set<uint64_t> survivor = {1, 2, 3};
  auto entitled = CheckWorkload({1, 2, 3, 4, 5}, "/w", Read("/w", {1, 2, 3}), survivor);
  EXPECT_TRUE(entitled.ok()) << entitled.ToString();
  EXPECT_EQ(entitled.lost_to_reseed, (std::vector<uint64_t>{4, 5}));
  auto lost = CheckWorkload({1, 2, 3, 4, 5}, "/w", Read("/w", {1, 3}), survivor);
  EXPECT_FALSE(lost.ok());
  EXPECT_EQ(lost.lost, std::vector<uint64_t>{2}) << "the survivor had it: data loss";
}

TEST(WorkloadChecker, AWrongValueOrAForeignKeyIsCorrupt) {
  SequenceRead read = Read("/w", {1});
  read.emplace_back(Workload::Key("/w", 2), "3");
  read.emplace_back("/w/x", "1");
  auto report = CheckWorkload({1}, "/w", read);
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.corrupt.size(), 2u) << report.ToString();
}

// The workload against a real one-member etcd: everything acknowledged reads back; then one
// acknowledged write is deleted behind its back, and the checker must name exactly that one.
TEST(WorkloadChecker, CatchesAWriteDeliberatelyLostFromARealEtcd) {
  TempDir dir("em-workload");
  EtcdServer server(EtcdServer::Options{.name = "w1", .ip = "127.0.0.1"}, dir.path());
  ASSERT_TRUE(server.StartNewCluster().ok()) << server.LogTail();
  boost::asio::io_context io;
  Workload workload(
      io, [&] { return std::vector<HostPort>{server.client_endpoint()}; },
      Workload::Options{.prefix = "/checked"});
  workload.Start();
  WaitFor(
      [&] {
        io.run_for(std::chrono::milliseconds(20));
        return workload.acknowledged().size() >= 50;
      },
      std::chrono::seconds(60));
  workload.Stop();
  io.run_for(std::chrono::milliseconds(500));  // the write in flight, if any, is answered
  ASSERT_GE(workload.acknowledged().size(), 50u);

  auto read = ReadSequences(server.client_url(), "/checked");
  ASSERT_TRUE(read.ok()) << read.error();
  auto clean = CheckWorkload(workload.acknowledged(), "/checked", *read);
  EXPECT_TRUE(clean.ok()) << clean.ToString();
  EXPECT_EQ(clean.acknowledged, workload.acknowledged().size());

  uint64_t victim = *std::next(workload.acknowledged().begin(), 17);
  auto del = RunShell("ETCDCTL_API=3 etcdctl --endpoints=" + server.client_url() + " del " +
                      Workload::Key("/checked", victim));
  ASSERT_EQ(del.first, 0) << del.second;
  auto after = ReadSequences(server.client_url(), "/checked");
  ASSERT_TRUE(after.ok()) << after.error();
  auto report = CheckWorkload(workload.acknowledged(), "/checked", *after);
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.lost, std::vector<uint64_t>{victim}) << report.ToString();
}

}  // namespace
}  // namespace etcd_mesos::test
