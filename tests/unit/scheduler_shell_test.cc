// The pure builders of the scheduler shell: the TaskInfo of a member (resources carved from the
// offer with its role, exact ports, executor, discovery, task config), the FrameworkInfo, and the
// executor's reseed answer.
#include "scheduler/shell/shell.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "executor/task_config.h"
#include "scheduler/shell/admin_token.h"
#include "scheduler/shell/launch_config.h"
#include "scheduler/shell/member_certificates.h"
#include "testing/tempdir.h"

namespace etcd_mesos::scheduler::shell {
namespace {

mesos::Resource Scalar(const std::string& name, double v, const std::string& role) {
  mesos::Resource r;
  r.set_name(name);
  r.set_type(mesos::Value::SCALAR);
  r.mutable_scalar()->set_value(v);
  r.mutable_allocation_info()->set_role(role);
  return r;
}

mesos::Offer TwoRangeOffer() {
  mesos::Offer o;
  o.mutable_id()->set_value("o1");
  o.mutable_agent_id()->set_value("a1");
  o.set_hostname("127.0.0.2");
  *o.add_resources() = Scalar("cpus", 4, "etcd");
  *o.add_resources() = Scalar("mem", 4096, "etcd");
  *o.add_resources() = Scalar("disk", 8192, "etcd");
  mesos::Resource ports;
  ports.set_name("ports");
  ports.set_type(mesos::Value::RANGES);
  ports.mutable_allocation_info()->set_role("etcd");
  auto* r1 = ports.mutable_ranges()->add_range();
  r1->set_begin(1026);
  r1->set_end(1027);
  auto* r2 = ports.mutable_ranges()->add_range();
  r2->set_begin(1038);
  r2->set_end(1040);
  *o.add_resources() = ports;
  return o;
}

LaunchMember Launch() {
  LaunchMember l;
  l.offer_id = "o1";
  l.member.name = "etcd-7";
  l.member.host = "127.0.0.2";
  l.member.agent_id = "a1";
  l.member.peer_port = 1026;
  l.member.client_port = 1027;
  l.member.reseed_port = 1038;
  l.member.generation = 2;
  l.member.task_id = FormatTaskId(l.member);
  l.initial_cluster = "etcd-7=http://127.0.0.2:1026";
  l.new_cluster = true;
  l.cluster_token = "etcd-x-2";
  return l;
}

double Sum(const google::protobuf::RepeatedPtrField<mesos::Resource>& rs, const std::string& n) {
  double total = 0;
  for (const auto& r : rs) {
    if (r.name() == n) total += r.scalar().value();
  }
  return total;
}

TEST(SchedulerShellBuild, TaskInfoCarvesExactResourcesWithTheOffersRole) {
  CoreConfig config;
  config.framework_name = "etcd-x";
  config.task_cpus = 1;
  config.task_mem = 256;
  config.task_disk = 512;
  config.executor_cpus = 0.1;
  config.executor_mem = 32;
  mesos::Offer offer = TwoRangeOffer();
  LaunchContext ctx{&config, "fw-1", "http://10.0.0.1:12300/artifacts/", "tok"};
  mesos::TaskInfo t = BuildTaskInfo(Launch(), &offer, ctx);

  EXPECT_EQ(t.task_id().value(), "etcd-7 127.0.0.2 1026 1027 1038");
  EXPECT_EQ(t.name(), t.task_id().value());
  EXPECT_EQ(t.agent_id().value(), "a1");
  EXPECT_DOUBLE_EQ(Sum(t.resources(), "cpus"), 1);
  EXPECT_DOUBLE_EQ(Sum(t.resources(), "mem"), 256);
  EXPECT_DOUBLE_EQ(Sum(t.resources(), "disk"), 512);
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& r : t.resources()) {
    EXPECT_EQ(r.allocation_info().role(), "etcd") << r.name();
    if (r.name() != "ports") continue;
    for (const auto& range : r.ranges().range()) ranges.emplace_back(range.begin(), range.end());
  }
  // Exactly [peer],[client],[reseed], across the offer's two ranges.
  std::vector<std::pair<uint64_t, uint64_t>> want = {{1026, 1026}, {1027, 1027}, {1038, 1038}};
  EXPECT_EQ(ranges, want);

  const auto& e = t.executor();
  EXPECT_EQ(e.type(), mesos::ExecutorInfo::CUSTOM);
  EXPECT_EQ(e.executor_id().value(), "etcd-7.2");
  EXPECT_EQ(e.framework_id().value(), "fw-1");
  EXPECT_EQ(e.command().value(), "./etcd-mesos-executor");
  ASSERT_EQ(e.command().uris_size(), 3);
  EXPECT_EQ(e.command().uris(0).value(), "http://10.0.0.1:12300/artifacts/etcd-mesos-executor");
  EXPECT_EQ(e.command().uris(1).value(), "http://10.0.0.1:12300/artifacts/etcd");
  EXPECT_EQ(e.command().uris(2).value(), "http://10.0.0.1:12300/artifacts/etcdctl");
  for (const auto& u : e.command().uris()) EXPECT_TRUE(u.executable());
  for (const auto& u : e.command().uris()) EXPECT_FALSE(u.cache()) << "unversioned, cached";
  EXPECT_FALSE(e.has_shutdown_grace_period()) << "none asked: the agent's default";
  ctx.executor_shutdown_grace = std::chrono::seconds(10);
  EXPECT_EQ(BuildTaskInfo(Launch(), &offer, ctx).executor().shutdown_grace_period().nanoseconds(),
            10'000'000'000);

  // With versions, each URL names its version and may be cached by the agent.
  ctx.artifact_versions = {{"etcd-mesos-executor", "00000000000000a1"},
                           {"etcd", "00000000000000b2"},
                           {"etcdctl", "00000000000000c3"}};
  const auto versioned = BuildTaskInfo(Launch(), &offer, ctx).executor().command();
  ASSERT_EQ(versioned.uris_size(), 3);
  EXPECT_EQ(versioned.uris(0).value(),
            "http://10.0.0.1:12300/artifacts/00000000000000a1/etcd-mesos-executor");
  EXPECT_EQ(versioned.uris(1).value(), "http://10.0.0.1:12300/artifacts/00000000000000b2/etcd");
  EXPECT_EQ(versioned.uris(2).value(), "http://10.0.0.1:12300/artifacts/00000000000000c3/etcdctl");
  for (const auto& u : versioned.uris()) {
    EXPECT_TRUE(u.cache());
    EXPECT_TRUE(u.executable());
  }
  EXPECT_EQ(versioned.uris(1).output_file(), "etcd");
  EXPECT_DOUBLE_EQ(Sum(e.resources(), "cpus"), 0.1);
  EXPECT_DOUBLE_EQ(Sum(e.resources(), "mem"), 32);
  for (const auto& r : e.resources()) EXPECT_EQ(r.allocation_info().role(), "etcd");

  ASSERT_TRUE(t.has_discovery());
  EXPECT_EQ(t.discovery().visibility(), mesos::DiscoveryInfo::EXTERNAL);
  EXPECT_EQ(t.discovery().name(), "etcd-x");
  ASSERT_EQ(t.discovery().ports().ports_size(), 2);
  EXPECT_EQ(t.discovery().ports().ports(0).number(), 1026u);
  EXPECT_EQ(t.discovery().ports().ports(0).name(), "etcd-server");
  EXPECT_EQ(t.discovery().ports().ports(0).protocol(), "tcp");
  EXPECT_EQ(t.discovery().ports().ports(1).number(), 1027u);
  EXPECT_EQ(t.discovery().ports().ports(1).name(), "etcd-client");

  auto tc = executor::ParseTaskConfig(t.data());
  ASSERT_TRUE(tc.ok()) << tc.error();
  EXPECT_EQ(tc->name, "etcd-7");
  EXPECT_EQ(tc->address, "127.0.0.2");
  EXPECT_EQ(tc->peer_port, 1026);
  EXPECT_EQ(tc->client_port, 1027);
  EXPECT_EQ(tc->reseed_port, 1038);
  EXPECT_EQ(tc->initial_cluster, "etcd-7=http://127.0.0.2:1026");
  EXPECT_EQ(tc->initial_cluster_state, executor::InitialClusterState::kNew);
  EXPECT_EQ(tc->cluster_token, "etcd-x-2");
  EXPECT_EQ(tc->reseed_token, "tok");
  EXPECT_TRUE(tc->extra_flags.empty());
  // etcd's upkeep flags go to the executor, which passes them on to etcd.
  ctx.etcd_flags = EtcdUpkeepFlags(EtcdUpkeep{});
  auto upkept = executor::ParseTaskConfig(BuildTaskInfo(Launch(), &offer, ctx).data());
  ASSERT_TRUE(upkept.ok()) << upkept.error();
  EXPECT_EQ(upkept->extra_flags, ctx.etcd_flags);
}

// What members are launched with: any change of etcd's version, its flags or the resources
// changes the fingerprint (a rollout follows); the same inputs give the same one in any process.
TEST(SchedulerShellBuild, TheLaunchConfigurationNamesWhatAMemberRunsWith) {
  CoreConfig core;
  std::vector<std::string> flags = {"--quota-backend-bytes=2147483648",
                                    "--auto-compaction-mode=periodic"};
  LaunchConfig base = DescribeLaunch(core, flags, "3.4.23");
  EXPECT_EQ(base.fingerprint, DescribeLaunch(core, flags, "3.4.23").fingerprint);
  EXPECT_EQ(base.fingerprint.substr(0, 3), "lc-");
  EXPECT_NE(base.summary.find("etcd 3.4.23"), std::string::npos) << base.summary;
  EXPECT_NE(base.summary.find("--quota-backend-bytes=2147483648"), std::string::npos);
  EXPECT_NE(base.fingerprint, DescribeLaunch(core, flags, "3.4.24").fingerprint);
  auto other_flags = flags;
  other_flags[0] = "--quota-backend-bytes=4294967296";
  EXPECT_NE(base.fingerprint, DescribeLaunch(core, other_flags, "3.4.23").fingerprint);
  CoreConfig more_mem = core;
  more_mem.task_mem = 2048;
  LaunchConfig bigger = DescribeLaunch(more_mem, flags, "3.4.23");
  EXPECT_NE(base.fingerprint, bigger.fingerprint);
  EXPECT_NE(bigger.summary.find("mem 2048 MB"), std::string::npos) << bigger.summary;
}

TEST(SchedulerShellBuild, TheServedEtcdsVersionIsAskedOfTheBinary) {
  EXPECT_EQ(ParseEtcdVersionOutput("etcd Version: 3.4.23\nGit SHA: Not provided\n"), "3.4.23");
  EXPECT_EQ(ParseEtcdVersionOutput("something else"), "");
  auto real = EtcdBinaryVersion("/usr/bin/etcd");
  ASSERT_TRUE(real.ok()) << real.error();
  EXPECT_TRUE(real->starts_with("3.")) << *real;
  auto missing = EtcdBinaryVersion("/nonexistent/etcd");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/etcd"), std::string::npos);
  auto not_etcd = EtcdBinaryVersion("/bin/true");
  ASSERT_FALSE(not_etcd.ok());
  EXPECT_NE(not_etcd.error().message.find("printed no"), std::string::npos);
}

TEST(SchedulerShellBuild, FrameworkInfo) {
  SchedulerFlags f;
  f.core.framework_name = "etcd-x";
  f.core.role = "etcd";
  f.shell.user = "u";
  f.shell.failover_timeout_s = 300;
  f.shell.webui_url = "http://10.0.0.1:12300/";
  f.shell.principal = "p";
  mesos::FrameworkInfo info = BuildFrameworkInfo(f, std::string("fw-9"));
  EXPECT_EQ(info.name(), "etcd-x");
  EXPECT_EQ(info.user(), "u");
  ASSERT_EQ(info.roles_size(), 1);
  EXPECT_EQ(info.roles(0), "etcd");
  EXPECT_TRUE(info.checkpoint());
  EXPECT_EQ(info.failover_timeout(), 300);
  EXPECT_EQ(info.webui_url(), "http://10.0.0.1:12300/");
  EXPECT_EQ(info.principal(), "p");
  EXPECT_EQ(info.id().value(), "fw-9");
  std::set<int> caps;
  for (const auto& c : info.capabilities()) caps.insert(c.type());
  EXPECT_TRUE(caps.count(mesos::FrameworkInfo::Capability::MULTI_ROLE));
  EXPECT_TRUE(caps.count(mesos::FrameworkInfo::Capability::PARTITION_AWARE));
  EXPECT_TRUE(caps.count(mesos::FrameworkInfo::Capability::TASK_KILLING_STATE));
  EXPECT_FALSE(BuildFrameworkInfo(f, std::nullopt).has_id());
}

TEST(SchedulerShellBuild, ReseedAnswer) {
  auto ok = ParseReseedAnswer(
      200, R"({"outcome":"reseeded","message":"ok","took_ms":5,"facts":{"raft_index":"42"}})");
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(*ok, 42u);
  EXPECT_EQ(*ParseReseedAnswer(200, R"({"raft_index":7})"), 7u);
  auto busy = ParseReseedAnswer(409, R"({"outcome":"busy","message":"another reseed runs"})");
  ASSERT_FALSE(busy.ok());
  // Busy is a conflict: the member stands alone already, and the core asks it again.
  EXPECT_EQ(busy.error().code, ErrorCode::kConflict);
  EXPECT_NE(busy.error().message.find("another reseed runs"), std::string::npos);
  auto not_running = ParseReseedAnswer(409, R"({"outcome":"not-running","message":"no etcd"})");
  ASSERT_FALSE(not_running.ok());
  EXPECT_NE(not_running.error().code, ErrorCode::kConflict);
  EXPECT_EQ(ParseReseedAnswer(401, R"({"error":"wrong reseed token"})").error().code,
            ErrorCode::kUnauthenticated);
  EXPECT_FALSE(ParseReseedAnswer(200, "ok").ok());  // the original's answer carries no index
  EXPECT_FALSE(ParseReseedAnswer(200, R"({"facts":{"raft_index":"x"}})").ok());
  EXPECT_FALSE(ParseReseedAnswer(200, R"({"outcome":"failed","facts":{"raft_index":"1"}})").ok());
}

// ---- The admin token (admin_token.h) ----------------------------------------------------------

TEST(AdminToken, ASecretIs32RandomBytesInHex) {
  std::string a = NewSecretToken(), b = NewSecretToken();
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos) << a;
  EXPECT_NE(a, b);
}

// The store's token wins (every instance shares it); this host's file is taken when the store has
// none yet (generated, then the scheduler stopped before writing its state); a new one only when
// neither has one.
TEST(AdminToken, TheStoredTokenWinsThenTheFileThenANewOne) {
  int generated = 0;
  auto generate = [&] {
    ++generated;
    return std::string("new");
  };
  using Source = AdminTokenChoice::Source;
  auto stored = ChooseAdminToken("stored", "file", generate);
  EXPECT_EQ(stored.token, "stored");
  EXPECT_EQ(stored.source, Source::kStored);
  auto file = ChooseAdminToken("", "file", generate);
  EXPECT_EQ(file.token, "file");
  EXPECT_EQ(file.source, Source::kFile);
  EXPECT_EQ(generated, 0);
  auto fresh = ChooseAdminToken("", "", generate);
  EXPECT_EQ(fresh.token, "new");
  EXPECT_EQ(fresh.source, Source::kGenerated);
  EXPECT_EQ(generated, 1);
}

mode_t Mode(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 0777;
}

TEST(AdminToken, TheFileIsWrittenOwnerOnlyAndReadBack) {
  test::TempDir dir;
  auto path = AdminTokenPath(dir.path() / "state");
  EXPECT_EQ(path, dir.path() / "state" / "admin-token");
  auto none = ReadAdminTokenFile(path);
  ASSERT_TRUE(none.ok()) << none.error();
  EXPECT_EQ(*none, "") << "no file: no token";
  ASSERT_TRUE(WriteAdminTokenFile(path, "abc123").ok());
  EXPECT_EQ(Mode(path), 0600u);
  EXPECT_EQ(Mode(path.parent_path()), 0700u) << "a directory it made is the owner's only";
  auto held = ReadAdminTokenFile(path);
  ASSERT_TRUE(held.ok()) << held.error();
  EXPECT_EQ(*held, "abc123");
  // A file opened up by hand is put back to 0600; another token replaces the old one.
  ::chmod(path.c_str(), 0644);
  ASSERT_TRUE(WriteAdminTokenFile(path, "abc123").ok());
  EXPECT_EQ(Mode(path), 0600u);
  ASSERT_TRUE(WriteAdminTokenFile(path, "def456").ok());
  EXPECT_EQ(*ReadAdminTokenFile(path), "def456");
  EXPECT_FALSE(std::filesystem::exists(path.string() + ".tmp"));
}

TEST(AdminToken, ABadFileIsNamed) {
  test::TempDir dir;
  auto path = dir.path() / "admin-token";
  std::ofstream(path) << "two words\n";
  auto bad = ReadAdminTokenFile(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find(path.string()), std::string::npos) << bad.error();
  EXPECT_NE(bad.error().message.find("whitespace"), std::string::npos) << bad.error();
  EXPECT_EQ(bad.error().message.find("two words"), std::string::npos) << "the token is not told";
  auto unwritable = WriteAdminTokenFile(path / "below-a-file", "x");
  ASSERT_FALSE(unwritable.ok());
  EXPECT_NE(unwritable.error().message.find("admin token"), std::string::npos)
      << unwritable.error();
  EXPECT_NE(unwritable.error().message.find((path / "below-a-file").string()), std::string::npos)
      << unwritable.error();
}

// ---- Member certificates (member_certificates.h) ----------------------------------------------

const auto kCertNow = std::chrono::system_clock::from_time_t(1'900'000'000);

TEST(MemberCertificates, TheRecordRoundTripsAndABadOneIsNamed) {
  auto record = NewTlsRecord("etcd-prod", kCertNow);
  ASSERT_TRUE(record.ok()) << record.error();
  auto ca = tls::ReadCertificate(record->ca_cert);
  ASSERT_TRUE(ca.ok());
  EXPECT_EQ(ca->subject_common_name, "etcd-mesos etcd-prod CA");
  EXPECT_TRUE(ca->is_ca);
  EXPECT_EQ(TlsPath("etcd-prod"), "/etcd-prod/tls");
  auto back = DecodeTlsRecord(EncodeTlsRecord(*record));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->ca_cert, record->ca_cert);
  EXPECT_EQ(back->ca_key, record->ca_key);
  EXPECT_EQ(back->secret, record->secret);
  auto other = NewTlsRecord("etcd-prod", kCertNow);
  TlsRecord mixed = *record;
  mixed.ca_key = other->ca_key;
  auto bad = DecodeTlsRecord(EncodeTlsRecord(mixed));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kDataLoss);
  EXPECT_NE(bad.error().message.find("not the certificate's"), std::string::npos) << bad.error();
  EXPECT_EQ(bad.error().message.find("PRIVATE KEY"), std::string::npos) << "no key is told";
  EXPECT_FALSE(DecodeTlsRecord("{}").ok());
  EXPECT_FALSE(DecodeTlsRecord("[").ok());
}

// A CA rotation: the next CA is kept with the record (named apart, so that both can be trusted at
// once); each phase of the core's rotation picks which CA issues and which are trusted; once the
// core has finished, the record moves on to the next CA. A record that cannot serve the phase the
// state is in is an error that names both, not a guess.
// With --tls=files the record's trust is the operator's whole --tls-ca-cert: its first CA issues,
// and members, the scheduler and /ca.crt trust every CA of it; the trust is never stored.
TEST(MemberCertificates, TheOperatorsBundleIsTrustedAndItsFirstCaIssues) {
  auto own = NewTlsRecord("etcd-prod", kCertNow);
  auto other = NewTlsRecord("etcd-other", kCertNow);
  ASSERT_TRUE(own.ok() && other.ok());
  TlsRecord record = *own;
  record.trust = own->ca_cert + other->ca_cert;
  auto in_use = CaForRotation(record, {0, CaPhase::kNone});
  ASSERT_TRUE(in_use.ok()) << in_use.error();
  EXPECT_EQ(in_use->issuer.certificate_pem, own->ca_cert);
  EXPECT_EQ(in_use->client_issuer.certificate_pem, own->ca_cert);
  EXPECT_EQ(in_use->member_trust, record.trust);
  EXPECT_EQ(in_use->client_trust, record.trust);
  EXPECT_EQ(EncodeTlsRecord(record).find(other->ca_cert.substr(30, 40)), std::string::npos);
}

TEST(MemberCertificates, EachPhaseOfACaRotationPicksItsIssuerAndTrust) {
  auto record = NewTlsRecord("etcd-prod", kCertNow);
  ASSERT_TRUE(record.ok()) << record.error();
  const std::string old_ca = record->ca_cert;
  auto plain = CaForRotation(*record, {0, CaPhase::kNone});
  ASSERT_TRUE(plain.ok()) << plain.error();
  EXPECT_EQ(plain->issuer.certificate_pem, old_ca);
  EXPECT_EQ(plain->member_trust, old_ca);
  EXPECT_EQ(plain->client_trust, old_ca);
  EXPECT_FALSE(plain->finished);
  EXPECT_FALSE(CaForRotation(*record, {0, CaPhase::kTrustBoth}).ok()) << "no next CA made";

  TlsRecord next = *record;
  ASSERT_TRUE(PrepareNextCa(next, "etcd-prod", kCertNow).ok());
  const std::string new_ca = next.next_ca_cert;
  EXPECT_EQ(tls::ReadCertificate(new_ca)->subject_common_name, "etcd-mesos etcd-prod CA 1");
  auto stored = DecodeTlsRecord(EncodeTlsRecord(next));
  ASSERT_TRUE(stored.ok()) << stored.error();
  EXPECT_EQ(stored->next_ca_cert, new_ca);
  EXPECT_EQ(stored->next_ca_key, next.next_ca_key);
  EXPECT_EQ(stored->generation, 0u);

  auto prepared = CaForRotation(next, {0, CaPhase::kNone});
  EXPECT_EQ(prepared->issuer.certificate_pem, old_ca) << "prepared but not begun (refused)";
  EXPECT_EQ(prepared->member_trust, old_ca);

  auto trust = CaForRotation(next, {0, CaPhase::kTrustBoth});
  ASSERT_TRUE(trust.ok()) << trust.error();
  EXPECT_EQ(trust->issuer.certificate_pem, old_ca);
  EXPECT_EQ(trust->client_issuer.certificate_pem, old_ca) << "some members trust the old alone";
  EXPECT_EQ(trust->member_trust, new_ca + old_ca);

  auto issue = CaForRotation(next, {0, CaPhase::kNewIssuer});
  EXPECT_EQ(issue->issuer.certificate_pem, new_ca);
  EXPECT_EQ(issue->client_issuer.certificate_pem, new_ca) << "every member trusts both now";
  EXPECT_EQ(issue->member_trust, new_ca + old_ca);

  auto drop = CaForRotation(next, {0, CaPhase::kDropOld});
  EXPECT_EQ(drop->issuer.certificate_pem, new_ca);
  EXPECT_EQ(drop->member_trust, new_ca) << "members launched now trust the new CA alone";
  EXPECT_EQ(drop->client_trust, new_ca + old_ca);
  EXPECT_FALSE(drop->finished);

  auto done = CaForRotation(next, {1, CaPhase::kNone});
  EXPECT_EQ(done->issuer.certificate_pem, new_ca);
  EXPECT_EQ(done->member_trust, new_ca);
  EXPECT_EQ(done->client_trust, new_ca);
  EXPECT_TRUE(done->finished);
  TlsRecord finished = FinishedRotation(next);
  EXPECT_EQ(finished.ca_cert, new_ca);
  EXPECT_EQ(finished.generation, 1u);
  EXPECT_TRUE(finished.next_ca_cert.empty());
  EXPECT_EQ(finished.secret, record->secret) << "the tasks' tokens stay valid";
  auto after = CaForRotation(finished, {1, CaPhase::kNone});
  EXPECT_EQ(after->issuer.certificate_pem, new_ca);
  EXPECT_FALSE(after->finished);
  auto back = DecodeTlsRecord(EncodeTlsRecord(finished));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->generation, 1u);

  auto stale = CaForRotation(finished, {0, CaPhase::kNewIssuer});
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, ErrorCode::kDataLoss);
  EXPECT_NE(stale.error().message.find("CA 1"), std::string::npos) << stale.error();

  TlsRecord broken = next;
  broken.next_ca_key = NewTlsRecord("x", kCertNow)->ca_key;
  auto refused = DecodeTlsRecord(EncodeTlsRecord(broken));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("next_ca_cert"), std::string::npos) << refused.error();
}

TEST(MemberCertificates, ATaskTokenIsTheTasksAlone) {
  std::string a = TaskCertificateToken("secret-1", "etcd-1 10.0.0.1 1 2 3");
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a, TaskCertificateToken("secret-1", "etcd-1 10.0.0.1 1 2 3"));
  EXPECT_NE(a, TaskCertificateToken("secret-1", "etcd-2 10.0.0.1 1 2 3"));
  EXPECT_NE(a, TaskCertificateToken("secret-2", "etcd-1 10.0.0.1 1 2 3"));
}

class CertificateRequests : public ::testing::Test {
 protected:
  void SetUp() override {
    auto record = NewTlsRecord("etcd-c", kCertNow - std::chrono::hours(24));
    ASSERT_TRUE(record.ok());
    record_ = *record;
    ca_ = tls::Authority{record_.ca_cert, record_.ca_key};
    subject_ = CertificateSubject{kTask, "etcd-4", "10.0.0.4", "agent-4.example", true, false};
  }
  std::string Body(const std::string& task = kTask) {
    server_ = *tls::NewCertificateRequest("x");
    peer_ = *tls::NewCertificateRequest("y");
    return nlohmann::json{
        {"task_id", task}, {"server_csr", server_.request_pem}, {"peer_csr", peer_.request_pem}}
        .dump();
  }
  CertificateAnswer Ask(const std::string& body, const std::string& authorization) {
    return AnswerCertificateRequest(
        ca_, record_.ca_cert, record_.secret, body, authorization,
        [&](const std::string& task) -> std::optional<CertificateSubject> {
          if (task != subject_.task_id) return std::nullopt;
          return subject_;
        },
        kCertNow, std::chrono::hours(24 * 365));
  }
  std::string Bearer(const std::string& task = kTask) {
    return "Bearer " + TaskCertificateToken(record_.secret, task);
  }

  static constexpr const char* kTask = "etcd-4 10.0.0.4 31000 31001 31002";
  TlsRecord record_;
  tls::Authority ca_;
  CertificateSubject subject_;
  tls::KeyAndRequest server_, peer_;
};

TEST_F(CertificateRequests, TheTaskGetsCertificatesForItsOwnKeysWithItsAddresses) {
  auto answer = Ask(Body(), Bearer());
  ASSERT_EQ(answer.status, 200u) << answer.body;
  auto j = nlohmann::json::parse(answer.body);
  EXPECT_EQ(j["ca"], record_.ca_cert);
  for (const char* field : {"server_cert", "peer_cert"}) {
    std::string cert = j[field];
    auto info = tls::ReadCertificate(cert);
    ASSERT_TRUE(info.ok()) << info.error();
    EXPECT_EQ(info->subject_common_name, "etcd-4");
    EXPECT_EQ(info->ip_addresses, std::vector<std::string>{"10.0.0.4"});
    EXPECT_EQ(info->dns_names, std::vector<std::string>{"agent-4.example"});
    EXPECT_TRUE(info->server_auth && info->client_auth) << "peers dial with it too";
    EXPECT_EQ(info->not_after, kCertNow + std::chrono::hours(24 * 365));
    EXPECT_TRUE(tls::Verify(cert, record_.ca_cert, kCertNow).ok());
  }
  // Each certificate is for the key its request was made with.
  EXPECT_NE(tls::LoadAuthority(j["server_cert"].get<std::string>(), server_.key_pem)
                .error()
                .message.find("not a CA"),
            std::string::npos);
  EXPECT_NE(tls::LoadAuthority(j["peer_cert"].get<std::string>(), peer_.key_pem)
                .error()
                .message.find("not a CA"),
            std::string::npos);
  ASSERT_TRUE(answer.not_after.has_value());
  EXPECT_EQ(*answer.not_after, j["not_after"].get<int64_t>());
  EXPECT_EQ(answer.body.find("PRIVATE KEY"), std::string::npos) << "no key travels";
}

// Agents on loopback addresses (etcd-mesos-local): peers connect from 127.0.0.1, which etcd
// matches against the certificate, so a loopback member's certificates name it too.
TEST_F(CertificateRequests, ALoopbackMemberIsAlsoNamed127001) {
  subject_.host = "127.0.0.5";
  subject_.hostname = "";
  auto answer = Ask(Body(), Bearer());
  ASSERT_EQ(answer.status, 200u) << answer.body;
  auto j = nlohmann::json::parse(answer.body);
  auto info = tls::ReadCertificate(j["peer_cert"].get<std::string>());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->ip_addresses, (std::vector<std::string>{"127.0.0.5", "127.0.0.1"}));
  EXPECT_TRUE(info->dns_names.empty());
}

TEST_F(CertificateRequests, OnlyTheTaskWithItsTokenGetsThemAndOnlyOnce) {
  std::string token = TaskCertificateToken(record_.secret, kTask);
  for (const std::string& auth : {std::string(), "Bearer " + token.substr(1), "Basic " + token,
                                  Bearer("etcd-9 10.0.0.9 1 2 3")}) {
    auto answer = Ask(Body(), auth);
    EXPECT_EQ(answer.status, 401u) << auth;
    EXPECT_EQ(answer.body.find(token), std::string::npos);
  }
  // Another task's token for an unknown task: the same 401, telling nothing of what exists.
  EXPECT_EQ(Ask(Body("etcd-9 10.0.0.9 1 2 3"), Bearer("etcd-9 10.0.0.9 1 2 3")).status, 401u);
  subject_.issued = true;
  auto again = Ask(Body(), Bearer());
  EXPECT_EQ(again.status, 409u);
  EXPECT_NE(again.body.find("issued already"), std::string::npos) << again.body;
  subject_.issued = false;
  subject_.may_run = false;
  EXPECT_EQ(Ask(Body(), Bearer()).status, 409u);
}

TEST_F(CertificateRequests, MalformedRequestsAreNamed) {
  EXPECT_EQ(Ask("not json", Bearer()).status, 400u);
  EXPECT_EQ(Ask("[]", Bearer()).status, 400u);
  auto missing =
      Ask(R"({"task_id":"etcd-4 10.0.0.4 31000 31001 31002","server_csr":"x"})", Bearer());
  EXPECT_EQ(missing.status, 400u);
  EXPECT_NE(missing.body.find("peer_csr"), std::string::npos) << missing.body;
  auto j = nlohmann::json::parse(Body());
  j["peer_csr"] = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
  auto bad = Ask(j.dump(), Bearer());
  EXPECT_EQ(bad.status, 400u);
  EXPECT_NE(bad.body.find("peer_csr"), std::string::npos) << bad.body;
  j["peer_csr"] = std::string(20000, 'A');
  EXPECT_EQ(Ask(j.dump(), Bearer()).status, 400u);
}

}  // namespace
}  // namespace etcd_mesos::scheduler::shell
