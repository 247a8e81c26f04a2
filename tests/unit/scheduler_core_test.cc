// Scenario tests of the scheduler core: a script of events, and the exact actions expected.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include "scheduler/core/rules.h"
#include "scheduler/core/scheduler_core.h"

namespace etcd_mesos::scheduler {
namespace {

using namespace std::chrono_literals;

template <typename T>
std::vector<T> All(const Actions& actions) {
  std::vector<T> out;
  for (const auto& a : actions) {
    if (const T* t = std::get_if<T>(&a)) out.push_back(*t);
  }
  return out;
}

template <typename T>
bool Has(const Actions& actions) {
  return !All<T>(actions).empty();
}

// Whether a note or an admin answer among `actions` says `words`.
bool Says(const Actions& actions, const std::string& words) {
  for (const auto& n : All<Note>(actions)) {
    if (n.message.find(words) != std::string::npos) return true;
  }
  for (const auto& a : All<AnswerAdmin>(actions)) {
    if (a.message.find(words) != std::string::npos) return true;
  }
  return false;
}

mesos::Offer MakeOffer(int agent,
                       std::vector<std::pair<uint64_t, uint64_t>> ranges = {{31000, 31999}},
                       double cpus = 4, double mem = 4096, double disk = 8192) {
  static int next = 0;
  mesos::Offer o;
  o.mutable_id()->set_value("O" + std::to_string(next++));
  o.mutable_framework_id()->set_value("F");
  o.mutable_agent_id()->set_value("S" + std::to_string(agent));
  o.set_hostname("host" + std::to_string(agent));
  o.mutable_url()->mutable_address()->set_ip("127.0.0." + std::to_string(agent + 1));
  for (auto [name, v] : {std::pair{"cpus", cpus}, {"mem", mem}, {"disk", disk}}) {
    auto* r = o.add_resources();
    r->set_name(name);
    r->set_type(mesos::Value::SCALAR);
    r->mutable_scalar()->set_value(v);
  }
  auto* ports = o.add_resources();
  ports->set_name("ports");
  ports->set_type(mesos::Value::RANGES);
  for (auto [b, e] : ranges) {
    auto* range = ports->mutable_ranges()->add_range();
    range->set_begin(b);
    range->set_end(e);
  }
  return o;
}

class CoreTest : public ::testing::Test {
 protected:
  CoreTest() : core_(Config()) {}

  static CoreConfig Config() {
    CoreConfig c;
    c.framework_name = "etcd-test";
    c.cluster_size = 3;
    c.reseed_timeout = 60s;
    c.bootstrap_gather = 3s;
    c.task_cpus = 1;
    c.task_mem = 256;
    c.task_disk = 256;
    return c;
  }

  Actions On(Event e) { return core_.Handle(e); }

  Actions Start(PersistentState state = {}) {
    if (state.reseed_token.empty()) state.reseed_token = "tok";
    return On(Started{state, now_});
  }

  Actions Subscribe() { return On(Subscribed{"F", now_}); }

  Actions Offers(std::vector<mesos::Offer> offers) { return On(OffersReceived{offers, now_}); }
  // One fresh offer from each of agents 1..3: enough for a bootstrap of three.
  Actions ThreeOffers() { return Offers({MakeOffer(1), MakeOffer(2), MakeOffer(3)}); }

  Actions Update(const std::string& task_id, mesos::TaskState state,
                 const std::string& agent = "") {
    mesos::TaskStatus s;
    s.mutable_task_id()->set_value(task_id);
    s.set_state(state);
    if (!agent.empty()) s.mutable_agent_id()->set_value(agent);
    return On(TaskUpdate{s, now_});
  }

  Actions Advance(Millis by) {
    now_ += by;
    return On(Tick{now_});
  }
  // A tick that sees no majority agree on a leader, and one five probe intervals later: a
  // livelock episode opens only once the disagreement has lasted that long.
  Actions AdvanceUntilLivelockIsConfirmed() {
    Actions out = Advance(1s);
    Actions more = Advance(5s);
    out.insert(out.end(), more.begin(), more.end());
    return out;
  }

  // The master's answer to the periodic explicit reconciliation among `actions`: each task's
  // state as the core has it.
  void AnswerReconciliation(const Actions& actions) {
    for (const auto& r : All<ReconcileTasks>(actions)) {
      for (const auto& [task_id, agent_id] : r.tasks) {
        for (const auto& [name, m] : core_.state().members) {
          if (m.task_id == task_id) Update(task_id, m.task_state, agent_id);
        }
      }
    }
  }

  // Launches a bootstrapped 3-member cluster and makes it healthy, with member ids 1..3 and
  // leader 1.
  std::vector<LaunchMember> Bootstrap() {
    Start();
    Subscribe();
    auto actions = ThreeOffers();
    auto launches = All<LaunchMember>(actions);
    EXPECT_EQ(launches.size(), 3u);
    uint64_t id = 1;
    for (const auto& l : launches) {
      Update(l.member.task_id, mesos::TASK_RUNNING, l.member.agent_id);
      ids_[l.member.name] = id++;
    }
    ProbeAll(/*leader=*/1, 100);
    return launches;
  }

  // Every member answers a probe (but the unreachable), then etcd's member list; what the core
  // asked for in answer to all of them.
  // Every member answers (but `unreachable`); the linearizable read works when there is a leader,
  // unless `reads_fail`.
  std::pair<mesos::Offer, ChangeMembership> ADeadMemberRemovedAndAnAddAsked();
  Actions ProbeAll(uint64_t leader, uint64_t index, std::set<std::string> unreachable = {},
                   bool reads_fail = false) {
    ClusterView view;
    Actions out;
    auto take = [&](Actions a) { out.insert(out.end(), a.begin(), a.end()); };
    auto members = core_.state().members;
    for (const auto& [name, m] : members) {
      if (removed_.count(name)) continue;  // etcd no longer lists it
      uint64_t id = ids_.count(name) ? ids_[name] : m.member_id;
      if (unreachable.count(name)) {
        take(On(ProbeResult{name, Error{ErrorCode::kUnavailable, "refused"}, now_}));
      } else {
        MemberProbe p{id, leader, index, 2, m.learner, true};
        p.version = version_;
        take(On(ProbeResult{name, p, now_}));
      }
      if (id != 0) view.members.push_back({id, name, {m.PeerUrl()}, m.learner});
    }
    view.linearizable_read_ok = leader != 0 && !reads_fail;
    take(On(ClusterProbeResult{view, now_, core_.membership_epoch()}));
    return out;
  }

  // Every member answers a probe with its database size, in use, and whether it reports the
  // NOSPACE alarm; leader 1.
  Actions ProbeDatabases(uint64_t db, uint64_t in_use, bool nospace, uint64_t revision = 40) {
    Actions out;
    for (const auto& [name, m] : core_.state().members) {
      if (Gone(m.task_state)) continue;
      MemberProbe p{ids_[name], 1, 100, 2, m.learner, !nospace, revision, db, in_use};
      p.nospace_alarm = nospace;
      auto a = On(ProbeResult{name, p, now_});
      out.insert(out.end(), a.begin(), a.end());
    }
    return out;
  }

  // A core whose members are launched with `launch` (rollouts on), etcd 3.4.23 served.
  void WithLaunch(const std::string& launch, const std::string& etcd = "3.4.23") {
    WithLaunch(Config(), launch, etcd);
  }
  // The same with TLS members (certificates, their renewal, CA rotations).
  void WithTlsLaunch(const std::string& launch) {
    CoreConfig c = Config();
    c.tls = true;
    WithLaunch(c, launch, "3.4.23");
  }
  void WithLaunch(CoreConfig c, const std::string& launch, const std::string& etcd) {
    c.launch_config = launch;
    c.launch_summary = "config " + launch;
    c.etcd_version = etcd;
    core_ = SchedulerCore(c);
  }

  // The scheduler restarts with launch configuration `launch` (etcd `etcd`) on the state it had;
  // its members run on and answer; etcd's 5 s window passes.
  void RestartWithLaunch(const std::string& launch, const std::string& etcd = "3.4.23") {
    RestartWith(Config(), launch, etcd);
  }
  // The same with a config of the test's own (its TLS, its CA files).
  void RestartWith(CoreConfig c, const std::string& launch, const std::string& etcd) {
    PersistentState stored = core_.state();
    WithLaunch(std::move(c), launch, etcd);
    Start(stored);
    Subscribe();
    for (const auto& [name, m] : core_.state().members) {
      Update(m.task_id, mesos::TASK_RUNNING, m.agent_id);
    }
    ProbeAll(1, 100);
    Advance(6s);
  }

  // One rollout step that adds first: an offer of `agent` takes the successor (id `new_id`),
  // which is launched, runs and is promoted; answers what the next tick asked for after that.
  Actions Successor(int agent, uint64_t new_id, uint64_t leader) {
    auto adds = All<ChangeMembership>(Offers({MakeOffer(agent)}));
    EXPECT_EQ(adds.size(), 1u);
    if (adds.empty()) return {};
    EXPECT_EQ(adds[0].op, MembershipOp::kAddLearner);
    auto launched = All<LaunchMember>(
        On(MembershipResult{MembershipOp::kAddLearner, adds[0].name, new_id, OkStatus(), now_}));
    EXPECT_EQ(launched.size(), 1u);
    if (launched.empty()) return {};
    ids_[adds[0].name] = new_id;
    Update(launched[0].member.task_id, mesos::TASK_RUNNING, launched[0].member.agent_id);
    auto promote = All<ChangeMembership>(ProbeAll(leader, 130));
    EXPECT_EQ(promote.size(), 1u);
    On(MembershipResult{MembershipOp::kPromote, adds[0].name, new_id, OkStatus(), now_});
    ProbeAll(leader, 131);
    return Advance(1s);
  }

  // Answers the removal of `name` (id from ids_) and the end of its task.
  void Removed(const std::string& name) {
    const Member m = core_.state().members.at(name);
    On(MembershipResult{MembershipOp::kRemove, name, ids_[name], OkStatus(), now_});
    Update(m.task_id, mesos::TASK_KILLED, m.agent_id);
    ids_.erase(name);
    removed_.insert(name);
  }

  // Carries the running rollout to its end (not into a next one) step by step as above: each stale
  // member's successor on a free agent (ids from `next_id`), leadership moved first off the leader
  // (`leader` follows it). Answers the members replaced, in order.
  std::vector<std::string> FinishRollout(uint64_t& leader, uint64_t& next_id) {
    std::vector<std::string> replaced;
    std::set<std::string> used;
    for (const auto& [name, m] : core_.state().members) {
      if (MaybeAlive(m.task_state)) used.insert(m.agent_id);
    }
    for (int step = 0; step < 10 && core_.rollout().state == "running"; ++step) {
      int agent = 1;
      while (used.count("S" + std::to_string(agent))) ++agent;
      used.insert("S" + std::to_string(agent));
      auto changes = All<ChangeMembership>(Successor(agent, next_id++, leader));
      if (changes.size() == 1 && changes[0].op == MembershipOp::kMoveLeader) {
        On(MembershipResult{MembershipOp::kMoveLeader, changes[0].name, changes[0].member_id,
                            OkStatus(), now_});
        leader = changes[0].member_id;
        ProbeAll(leader, 131);
        changes = All<ChangeMembership>(Advance(1s));
      }
      if (changes.size() != 1 || changes[0].op != MembershipOp::kRemove) {
        ADD_FAILURE() << "step " << step << ": no removal of the replaced member";
        return replaced;
      }
      used.erase(core_.state().members.at(changes[0].name).agent_id);
      Removed(changes[0].name);
      replaced.push_back(changes[0].name);
      // Successor's indexes: a learner named etcd-10 is probed before a leader named etcd-7, and
      // must not look behind a leader index of an earlier round.
      ProbeAll(leader, 131);
      Advance(1s);  // settled
      ProbeAll(leader, 131);
      Advance(1s);  // the next step, or done
    }
    return replaced;
  }

  SchedulerCore core_;
  Time now_ = Time() + 1000s;
  std::map<std::string, uint64_t> ids_;
  std::set<std::string> removed_;   // by Removed(): out of etcd's member list
  std::string version_ = "3.4.23";  // the etcd version members report in probes
};

TEST(TaskId, FormatsAndParsesTheGuidesFiveFields) {
  Member m;
  m.name = "etcd-7";
  m.host = "127.0.0.3";
  m.peer_port = 31000;
  m.client_port = 31001;
  m.reseed_port = 31002;
  EXPECT_EQ(FormatTaskId(m), "etcd-7 127.0.0.3 31000 31001 31002");
  auto back = ParseTaskId(FormatTaskId(m));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->name, "etcd-7");
  EXPECT_EQ(back->reseed_port, 31002);
  for (const char* bad : {"", "etcd-1 h 1 2", "etcd-1 h 1 2 3 4", "etcd-1 h 0 2 3",
                          "etcd-1 h 1 2 70000", "etcd-1 h a 2 3"}) {
    EXPECT_FALSE(ParseTaskId(bad).ok()) << bad;
  }
}

TEST_F(CoreTest, BootstrapsAllMembersAtOnceAsOneStaticClusterOnDistinctAgents) {
  Start();
  Subscribe();
  auto actions = Offers({MakeOffer(1), MakeOffer(2), MakeOffer(3), MakeOffer(4)});
  // Persist comes first: the launch is on record before it happens.
  size_t persist = actions.size(), first_launch = actions.size();
  for (size_t i = 0; i < actions.size(); ++i) {
    if (std::holds_alternative<Persist>(actions[i]) && persist == actions.size()) persist = i;
    if (std::holds_alternative<LaunchMember>(actions[i]) && first_launch == actions.size()) {
      first_launch = i;
    }
  }
  ASSERT_LT(persist, first_launch);
  auto launches = All<LaunchMember>(actions);
  ASSERT_EQ(launches.size(), 3u);
  std::set<std::string> agents;
  for (const auto& l : launches) {
    EXPECT_TRUE(l.new_cluster);
    EXPECT_EQ(l.initial_cluster, launches[0].initial_cluster);
    EXPECT_NE(l.initial_cluster.find(l.member.name + "=http://" + l.member.host),
              std::string::npos);
    EXPECT_EQ(l.member.task_id, FormatTaskId(l.member));
    EXPECT_GE(l.member.peer_port, 31000);
    EXPECT_LE(l.member.reseed_port, 31999);
    agents.insert(l.member.agent_id);
  }
  EXPECT_EQ(agents.size(), 3u);
  auto declines = All<DeclineOffer>(actions);
  ASSERT_EQ(declines.size(), 1u) << "the fourth agent's offer is not held";
}

// With TLS, every member is launched with https URLs and its agent's host name (for its
// certificates); the expiry of the certificates issued for a task is kept. A scheduler restarted
// with another TLS mode says the cluster keeps its own.
TEST_F(CoreTest, ATlsClusterLaunchesHttpsMembersAndKeepsItsSchemeAcrossARestart) {
  CoreConfig config = Config();
  config.tls = true;
  core_ = SchedulerCore(config);
  Start();
  Subscribe();
  auto launches = All<LaunchMember>(ThreeOffers());
  ASSERT_EQ(launches.size(), 3u);
  for (const auto& l : launches) {
    EXPECT_TRUE(l.member.tls);
    EXPECT_EQ(l.member.hostname, "host" + l.member.agent_id.substr(1));
    EXPECT_NE(l.initial_cluster.find(l.member.name + "=https://" + l.member.host),
              std::string::npos)
        << l.initial_cluster;
  }
  std::string task = launches[0].member.task_id;
  auto issued = On(CertificateIssued{task, 1'900'000'000});
  EXPECT_FALSE(All<Persist>(issued).empty()) << "the expiry is on record";
  for (const auto& [name, m] : core_.state().members) {
    EXPECT_EQ(m.cert_not_after, m.task_id == task ? 1'900'000'000 : 0) << name;
  }

  PersistentState state = core_.state();
  config.tls = false;
  core_ = SchedulerCore(config);
  auto started = Start(state);
  bool said = false;
  for (const auto& n : All<Note>(started))
    said |= n.message.find("with TLS; it keeps") != std::string::npos;
  EXPECT_TRUE(said) << "a restart with another TLS mode says the cluster keeps its own";
}

TEST_F(CoreTest, TooFewAgentsAreHeldBrieflyThenWhatFitsIsLaunched) {
  Start();
  Subscribe();
  auto first = Offers({MakeOffer(1)});
  EXPECT_FALSE(Has<LaunchMember>(first));
  EXPECT_FALSE(Has<DeclineOffer>(first)) << "held for the bootstrap gather";
  auto later = Advance(3s);
  auto launches = All<LaunchMember>(later);
  ASSERT_EQ(launches.size(), 1u);
  EXPECT_TRUE(launches[0].new_cluster);
  // Once that member serves, the cluster grows one learner at a time as agents turn up.
  const Member first_member = launches[0].member;
  ids_[first_member.name] = 1;
  Update(first_member.task_id, mesos::TASK_RUNNING, first_member.agent_id);
  ProbeAll(1, 10);
  Advance(1s);
  ASSERT_TRUE(core_.healthy()) << core_.health_reason();
  auto grow = All<ChangeMembership>(Offers({MakeOffer(2), MakeOffer(3)}));
  ASSERT_EQ(grow.size(), 1u) << "one membership change at a time";
  EXPECT_EQ(grow[0].op, MembershipOp::kAddLearner);
}

TEST_F(CoreTest, PortsComeFromAnyOfferedRangeAndNeverOutside) {
  Start();
  Subscribe();
  auto actions =
      Offers({MakeOffer(1, {{31000, 31000}, {32000, 32001}}), MakeOffer(2), MakeOffer(3)});
  auto launches = All<LaunchMember>(actions);
  ASSERT_EQ(launches.size(), 3u);
  for (const auto& l : launches) {
    if (l.member.agent_id != "S1") continue;
    EXPECT_EQ(l.member.peer_port, 31000);
    EXPECT_EQ(l.member.client_port, 32000);
    EXPECT_EQ(l.member.reseed_port, 32001);
  }
  Start();
}

TEST_F(CoreTest, OffersThatCannotHoldTaskAndExecutorAreDeclined) {
  Start();
  Subscribe();
  auto actions = Offers({MakeOffer(1, {{31000, 31001}}), MakeOffer(2, {{31000, 31999}}, 1.05),
                         MakeOffer(3, {{31000, 31999}}, 4, 270)});
  EXPECT_FALSE(Has<LaunchMember>(actions));
  EXPECT_EQ(All<DeclineOffer>(actions).size(), 3u);
}

TEST_F(CoreTest, NothingHappensWhileDisconnectedOrReconciling) {
  PersistentState stored;
  stored.framework_id = "F";
  stored.bootstrapped = true;
  Member m;
  m.name = "etcd-1";
  m.host = "127.0.0.2";
  m.agent_id = "S1";
  m.peer_port = 1;
  m.client_port = 2;
  m.reseed_port = 3;
  m.task_id = FormatTaskId(m);
  m.task_state = mesos::TASK_RUNNING;
  stored.members[m.name] = m;
  Start(stored);
  auto before = Offers({MakeOffer(2)});
  EXPECT_EQ(All<DeclineOffer>(before).size(), 1u) << "not connected";
  auto sub = Subscribe();
  auto reconciles = All<ReconcileTasks>(sub);
  ASSERT_EQ(reconciles.size(), 2u);
  ASSERT_EQ(reconciles[0].tasks.size(), 1u) << "explicit for the stored task";
  EXPECT_EQ(reconciles[0].tasks[0].first, m.task_id);
  EXPECT_TRUE(reconciles[1].tasks.empty()) << "plus implicit";
  EXPECT_TRUE(core_.reconciling());
  auto during = Offers({MakeOffer(2)});
  EXPECT_FALSE(Has<LaunchMember>(during));
  EXPECT_FALSE(Has<ChangeMembership>(during));
  auto reseed = On(AdminReseed{1, true, now_});
  EXPECT_FALSE(Has<TriggerReseed>(reseed));
  EXPECT_FALSE(Has<KillTask>(reseed));
  ASSERT_EQ(All<AnswerAdmin>(reseed).size(), 1u);
  EXPECT_EQ(All<AnswerAdmin>(reseed)[0].http_status, 503);
  Update(m.task_id, mesos::TASK_RUNNING, "S1");
  EXPECT_FALSE(core_.reconciling());
}

// Disconnected after having been connected: whatever the probes say (a majority silent far past
// the reseed timeout), no launch, no membership change, no kill and no reseed until the master is
// back and reconciliation has settled. What Mesos knows may have changed meanwhile.
TEST_F(CoreTest, NothingChangesWhileDisconnectedAfterBeingConnected) {
  auto launches = Bootstrap();
  Advance(1s);
  ASSERT_TRUE(core_.healthy());
  On(Disconnected{"stream dropped", now_});
  std::set<std::string> silent = {launches[1].member.name, launches[2].member.name};
  Actions seen;
  for (int i = 0; i < 400; ++i) {
    auto probe = ProbeAll(0, 100, silent);
    auto tick = Advance(1s);
    seen.insert(seen.end(), probe.begin(), probe.end());
    seen.insert(seen.end(), tick.begin(), tick.end());
  }
  auto offers = Offers({MakeOffer(2)});
  seen.insert(seen.end(), offers.begin(), offers.end());
  EXPECT_FALSE(Has<LaunchMember>(seen));
  EXPECT_FALSE(Has<ChangeMembership>(seen));
  EXPECT_FALSE(Has<KillTask>(seen));
  EXPECT_FALSE(Has<TriggerReseed>(seen));
  EXPECT_EQ(All<DeclineOffer>(offers).size(), 1u);
  auto reseed = On(AdminReseed{1, true, now_});
  ASSERT_EQ(All<AnswerAdmin>(reseed).size(), 1u);
  EXPECT_EQ(All<AnswerAdmin>(reseed)[0].http_status, 503);
  EXPECT_NE(All<AnswerAdmin>(reseed)[0].message.find("not connected"), std::string::npos);
}

TEST_F(CoreTest, UnansweredReconciliationIsAskedAgain) {
  PersistentState stored;
  stored.bootstrapped = true;
  Member m;
  m.name = "etcd-1";
  m.host = "127.0.0.2";
  m.agent_id = "S1";
  m.peer_port = 1;
  m.client_port = 2;
  m.reseed_port = 3;
  m.task_id = FormatTaskId(m);
  m.task_state = mesos::TASK_RUNNING;
  stored.members[m.name] = m;
  Start(stored);
  Subscribe();
  auto again = Advance(31s);
  auto reconciles = All<ReconcileTasks>(again);
  ASSERT_EQ(reconciles.size(), 1u);
  EXPECT_EQ(reconciles[0].tasks.size(), 1u);
}

TEST_F(CoreTest, HealthyWhenAMajorityAgreesOnALeaderAndReadsWork) {
  Bootstrap();
  Advance(1s);
  EXPECT_TRUE(core_.healthy()) << core_.health_reason();
  ProbeAll(0, 100);
  Advance(1s);
  EXPECT_FALSE(core_.healthy());
  EXPECT_FALSE(core_.livelocked()) << "an election's second is not an episode";
  for (int i = 0; i < 5; ++i) {
    ProbeAll(0, 100);
    Advance(1s);
  }
  EXPECT_TRUE(core_.livelocked()) << "five probe intervals without an agreed leader";
  EXPECT_EQ(core_.state().counters.cluster_livelocks, 1u);
  ProbeAll(0, 100);
  Advance(1s);
  EXPECT_EQ(core_.state().counters.cluster_livelocks, 1u) << "counted once per episode";
  ProbeAll(1, 101);
  Advance(1s);
  EXPECT_TRUE(core_.healthy());
  EXPECT_FALSE(core_.livelocked());
}

// Found by CI under load (three fault tests at once with ASan): one round of probes timed out on
// every member, and a rolling restart that never lost quorum counted a livelock episode. Probes
// that fail for less than five probe intervals leave the cluster unhealthy but open no episode.
TEST_F(CoreTest, ProbesThatAllFailForUnderFiveIntervalsOpenNoLivelockEpisode) {
  Bootstrap();
  Advance(1s);
  ASSERT_TRUE(core_.healthy());
  auto time_out_every_probe = [&] {
    for (const auto& [name, m] : core_.state().members) {
      On(ProbeResult{name, Error{ErrorCode::kUnavailable, "read headers timed out"}, now_});
    }
  };
  for (int round = 0; round < 4; ++round) {
    time_out_every_probe();
    Advance(1s);
    EXPECT_FALSE(core_.healthy());
    EXPECT_FALSE(core_.livelocked()) << "after round " << round;
  }
  ProbeAll(1, 101);
  Advance(1s);
  EXPECT_TRUE(core_.healthy()) << core_.health_reason();
  EXPECT_EQ(core_.state().counters.cluster_livelocks, 0u);
  // The same failures lasting longer are an episode.
  for (int round = 0; round < 7; ++round) {
    time_out_every_probe();
    Advance(1s);
  }
  EXPECT_TRUE(core_.livelocked());
  EXPECT_EQ(core_.state().counters.cluster_livelocks, 1u);
}

// Reads that fail while a majority agrees on a leader (slow reads under load, say) make the
// cluster unhealthy, but that is not livelock: no episode, and no reseed however long it lasts.
TEST_F(CoreTest, FailingReadsWithAnAgreedLeaderAreUnhealthyButNeverLivelock) {
  Bootstrap();
  Advance(1s);
  ASSERT_TRUE(core_.healthy());
  auto fail_reads = [&] { return ProbeAll(1, 100, {}, /*reads_fail=*/true); };
  fail_reads();
  Advance(1s);
  EXPECT_FALSE(core_.healthy());
  EXPECT_EQ(core_.health_reason(), "a linearizable read failed");
  EXPECT_FALSE(core_.livelocked());
  for (int i = 0; i < 400; ++i) {
    auto out = fail_reads();
    auto tick = Advance(1s);
    out.insert(out.end(), tick.begin(), tick.end());
    ASSERT_FALSE(Has<TriggerReseed>(out)) << "after " << i << " s";
    ASSERT_FALSE(Has<KillTask>(out)) << "after " << i << " s";
  }
  EXPECT_EQ(core_.state().counters.cluster_livelocks, 0u);
  EXPECT_EQ(core_.state().counters.cluster_reseeds, 0u);
  ProbeAll(1, 101);
  Advance(1s);
  EXPECT_TRUE(core_.healthy());
}

// A learner that never catches up (etcd keeps refusing to promote it) is removed and its task
// killed after the learner timeout: etcd allows one learner at a time, so a stuck one would block
// every later heal.
TEST_F(CoreTest, ALearnerStuckPastTheLearnerTimeoutIsRemovedAndKilled) {
  auto [offer, add] = ADeadMemberRemovedAndAnAddAsked();
  ASSERT_EQ(add.op, MembershipOp::kAddLearner);
  std::string name = add.name;
  auto launched = All<LaunchMember>(
      On(MembershipResult{MembershipOp::kAddLearner, name, 99, OkStatus(), now_}));
  ASSERT_EQ(launched.size(), 1u);
  ids_[name] = 99;
  Update(launched[0].member.task_id, mesos::TASK_RUNNING, "S3");
  Time added_at = now_;
  std::optional<Time> removed_at;
  bool killed = false;
  // etcd refuses every promotion, whether a probe or a tick prompted it.
  auto refuse_promotions = [&](Actions& out) {
    for (const auto& c : All<ChangeMembership>(Actions(out))) {
      if (c.op != MembershipOp::kPromote) continue;
      auto refused = On(MembershipResult{
          MembershipOp::kPromote, name, 99,
          Error{ErrorCode::kRefused, "can only promote a learner member which is in sync"}, now_});
      out.insert(out.end(), refused.begin(), refused.end());
    }
  };
  for (int i = 0; i < 200 && !removed_at; ++i) {
    Actions out = ProbeAll(1, 200 + i);
    refuse_promotions(out);
    Actions tick = Advance(1s);
    refuse_promotions(tick);
    out.insert(out.end(), tick.begin(), tick.end());
    AnswerReconciliation(out);
    for (const auto& c : All<ChangeMembership>(out)) {
      if (c.op == MembershipOp::kRemove && c.member_id == 99u) removed_at = now_;
    }
    for (const auto& k : All<KillTask>(out)) killed |= k.task_id == launched[0].member.task_id;
  }
  ASSERT_TRUE(removed_at.has_value()) << "the stuck learner was never removed";
  EXPECT_GE(*removed_at - added_at, Config().learner_timeout);
  EXPECT_LE(*removed_at - added_at, Config().learner_timeout + 5s);
  EXPECT_TRUE(killed) << "its task is killed with it";
}

TEST_F(CoreTest, DeadMemberIsRemovedThenALearnerAddedLaunchedAndPromoted) {
  auto launches = Bootstrap();
  Advance(1s);
  ASSERT_TRUE(core_.healthy());
  const Member dead = launches[2].member;
  // Removed as soon as its task is known to have ended, not at the next tick.
  auto failed = Update(dead.task_id, mesos::TASK_FAILED, dead.agent_id);
  EXPECT_EQ(core_.state().counters.failed_servers, 1u);
  auto changes = All<ChangeMembership>(failed);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].op, MembershipOp::kRemove);
  EXPECT_EQ(changes[0].member_id, ids_[dead.name]);
  // A second change waits for the first.
  ProbeAll(1, 120, {dead.name});
  EXPECT_FALSE(Has<ChangeMembership>(Advance(1s)));
  // Offers meanwhile are declined for a second; once the removal is done, they come back.
  EXPECT_TRUE(Has<DeclineOffer>(Offers({MakeOffer(3)})));
  auto removed =
      On(MembershipResult{MembershipOp::kRemove, dead.name, ids_[dead.name], OkStatus(), now_});
  EXPECT_TRUE(Has<Revive>(removed)) << "the decline filters go";
  ids_.erase(dead.name);
  EXPECT_EQ(core_.state().members.count(dead.name), 0u);
  ProbeAll(1, 121);
  Advance(1s);

  // An offer from the dead member's agent: add a learner first, holding the offer.
  auto offer = MakeOffer(3);
  auto add = Offers({offer});
  auto adds = All<ChangeMembership>(add);
  ASSERT_EQ(adds.size(), 1u);
  EXPECT_EQ(adds[0].op, MembershipOp::kAddLearner);
  EXPECT_FALSE(Has<LaunchMember>(add));
  EXPECT_FALSE(Has<DeclineOffer>(add));
  std::string name = adds[0].name;
  auto added = On(MembershipResult{MembershipOp::kAddLearner, name, 99, OkStatus(), now_});
  auto launched = All<LaunchMember>(added);
  ASSERT_EQ(launched.size(), 1u);
  EXPECT_FALSE(launched[0].new_cluster);
  EXPECT_EQ(launched[0].offer_id, offer.id().value());
  EXPECT_NE(launched[0].initial_cluster.find(name + "="), std::string::npos);
  EXPECT_NE(launched[0].initial_cluster.find(launches[0].member.name + "="), std::string::npos);
  EXPECT_EQ(launched[0].initial_cluster.find(dead.name + "="), std::string::npos);
  EXPECT_TRUE(Has<Persist>(added));
  EXPECT_EQ(core_.state().counters.members_added, 1u);

  // Probed as soon as it runs, and promoted as soon as a probe finds it in sync.
  ids_[name] = 99;
  auto running = Update(launched[0].member.task_id, mesos::TASK_RUNNING, "S3");
  auto probes = All<ProbeMember>(running);
  EXPECT_TRUE(std::any_of(probes.begin(), probes.end(),
                          [&](const ProbeMember& p) { return p.name == name; }));
  auto promote = All<ChangeMembership>(ProbeAll(1, 130));
  ASSERT_EQ(promote.size(), 1u);
  EXPECT_EQ(promote[0].op, MembershipOp::kPromote);
  EXPECT_EQ(promote[0].member_id, 99u);
  // A refusal (not in sync yet) is retried later.
  On(MembershipResult{
      MembershipOp::kPromote, name, 99,
      Error{ErrorCode::kRefused, "can only promote a learner member which is in sync"}, now_});
  auto retry = All<ChangeMembership>(ProbeAll(1, 131));
  ASSERT_EQ(retry.size(), 1u);
  On(MembershipResult{MembershipOp::kPromote, name, 99, OkStatus(), now_});
  EXPECT_FALSE(core_.state().members.at(name).learner);
  EXPECT_EQ(core_.state().counters.members_promoted, 1u);
}

// A member of a bootstrapped cluster died and was removed; an offer of its agent came: answers
// the offer and the learner add the core asked for.
std::pair<mesos::Offer, ChangeMembership> CoreTest::ADeadMemberRemovedAndAnAddAsked() {
  auto launches = Bootstrap();
  Advance(1s);
  const Member dead = launches[2].member;
  Update(dead.task_id, mesos::TASK_FAILED, dead.agent_id);
  On(MembershipResult{MembershipOp::kRemove, dead.name, ids_[dead.name], OkStatus(), now_});
  ids_.erase(dead.name);
  ProbeAll(1, 121);
  Advance(1s);
  auto offer = MakeOffer(3);
  auto adds = All<ChangeMembership>(Offers({offer}));
  EXPECT_EQ(adds.size(), 1u);
  return {offer, adds.empty() ? ChangeMembership{} : adds[0]};
}

// etcd refuses an add with "unhealthy cluster" (gRPC Unavailable) until every voter has been
// connected for 5 s, which a promotion or a leader change resets: on real Mesos two refused
// adds in a reseed each used up a name (etcd-10 and etcd-11 never existed) and about 4 s. The
// same add goes again within a second, same name, same offer; given up only after 15 s of
// refusals, and then the name is still the next one's.
TEST_F(CoreTest, ALearnerAddRefusedAsUnhealthyIsRetriedUnderTheSameName) {
  auto [offer, add] = ADeadMemberRemovedAndAnAddAsked();
  ASSERT_EQ(add.op, MembershipOp::kAddLearner);
  const std::string name = add.name;
  const std::string peer = add.peer_url;
  EXPECT_EQ(name, "etcd-4");
  const Error unhealthy{ErrorCode::kUnavailable, "etcdserver: unhealthy cluster"};
  for (int refusal = 0; refusal < 3; ++refusal) {
    auto refused = On(MembershipResult{MembershipOp::kAddLearner, name, 0, unhealthy, now_});
    EXPECT_FALSE(Has<DeclineOffer>(refused)) << "the offer is kept for the retry";
    EXPECT_FALSE(Has<ChangeMembership>(refused)) << "not at once";
    std::vector<ChangeMembership> again;
    for (int i = 0; i < 4 && again.empty(); ++i) {
      now_ += 250ms;
      ProbeAll(1, 130 + refusal);
      again = All<ChangeMembership>(On(Tick{now_}));
    }
    ASSERT_EQ(again.size(), 1u) << "asked again within a second";
    EXPECT_EQ(again[0].op, MembershipOp::kAddLearner);
    EXPECT_EQ(again[0].name, name);
    EXPECT_EQ(again[0].peer_url, peer);
  }
  auto added = On(MembershipResult{MembershipOp::kAddLearner, name, 99, OkStatus(), now_});
  auto launched = All<LaunchMember>(added);
  ASSERT_EQ(launched.size(), 1u);
  EXPECT_EQ(launched[0].offer_id, offer.id().value());
  EXPECT_EQ(launched[0].member.name, name);
  EXPECT_EQ(core_.state().next_member, 5u) << "the name is used up once etcd took it";
}

TEST_F(CoreTest, ALearnerAddRefusedForTooLongIsGivenUpAndItsNameGoesToTheNextAdd) {
  auto [offer, add] = ADeadMemberRemovedAndAnAddAsked();
  ASSERT_EQ(add.op, MembershipOp::kAddLearner);
  const std::string name = add.name;
  const Error unhealthy{ErrorCode::kUnavailable, "etcdserver: unhealthy cluster"};
  auto first = On(MembershipResult{MembershipOp::kAddLearner, name, 0, unhealthy, now_});
  ASSERT_FALSE(Has<DeclineOffer>(first));
  const Time refused_first = now_;
  bool declined = false;
  for (int step = 0; step < 100 && !declined; ++step) {  // 25 s in steps of 250 ms
    now_ += 250ms;
    auto out = ProbeAll(1, 200 + step);
    for (auto& a : On(Tick{now_})) out.push_back(std::move(a));
    if (Has<ChangeMembership>(out)) {  // asked again: refused again
      for (auto& a : On(MembershipResult{MembershipOp::kAddLearner, name, 0, unhealthy, now_})) {
        out.push_back(std::move(a));
      }
    }
    declined = Has<DeclineOffer>(out);
  }
  EXPECT_GE(now_ - refused_first, 15s) << "not given up before 15 s of refusals";
  EXPECT_LE(now_ - refused_first, 17s);
  EXPECT_TRUE(declined) << "given up in the end";
  // A refusal of another kind is not retried: the offer goes back at once.
  auto next = All<ChangeMembership>(Offers({MakeOffer(3)}));
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].name, name) << "no name burnt by the refused adds";
  auto refused = On(
      MembershipResult{MembershipOp::kAddLearner, name, 0,
                       Error{ErrorCode::kRefused, "etcdserver: Peer URLs already exists"}, now_});
  EXPECT_TRUE(Has<DeclineOffer>(refused));
  EXPECT_EQ(core_.state().next_member, 4u);
}

TEST_F(CoreTest, NoVoterIsRemovedWhenThatWouldCostQuorum) {
  auto launches = Bootstrap();
  Advance(1s);
  // Two of three fail: removing either voter would leave one live voter of two: no quorum.
  Update(launches[1].member.task_id, mesos::TASK_FAILED, launches[1].member.agent_id);
  Update(launches[2].member.task_id, mesos::TASK_FAILED, launches[2].member.agent_id);
  ProbeAll(1, 150, {launches[1].member.name, launches[2].member.name});
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(Has<ChangeMembership>(Advance(1s)));
  }
  EXPECT_FALSE(core_.healthy());
}

// etcd lists a static member that has not started yet without a name, and the core does not know
// its id: it is recognised by its peer URL (rules.h, Matches), not removed as a stranger while its
// task is still starting, and its id is learned.
TEST_F(CoreTest, AnUnstartedStaticMemberIsOursByItsPeerUrlNotAStranger) {
  Start();
  Subscribe();
  auto launches = All<LaunchMember>(ThreeOffers());
  ASSERT_EQ(launches.size(), 3u);
  const Member& slow = launches[2].member;  // still staging
  ClusterView view;
  for (int i = 0; i < 2; ++i) {
    const Member& m = launches[i].member;
    Update(m.task_id, mesos::TASK_RUNNING, m.agent_id);
    On(ProbeResult{m.name, MemberProbe{uint64_t(i + 1), 1, 100, 2, false, true}, now_});
    view.members.push_back({uint64_t(i + 1), m.name, {m.PeerUrl()}, false});
  }
  view.members.push_back({3, "", {slow.PeerUrl()}, false});
  view.linearizable_read_ok = true;
  On(ClusterProbeResult{view, now_, core_.membership_epoch()});
  EXPECT_EQ(core_.state().members.at(slow.name).member_id, 3u);
  for (int i = 0; i < 3; ++i) {
    auto actions = Advance(1s);
    EXPECT_FALSE(Has<ChangeMembership>(actions)) << "removed a member whose task is starting";
    EXPECT_FALSE(Has<KillTask>(actions));
  }
  EXPECT_TRUE(core_.healthy());
}

TEST_F(CoreTest, LivelockPastTheTimeoutReseedsFromTheHighestRaftIndex) {
  auto launches = Bootstrap();
  Advance(1s);
  // Leader lost with one follower: the survivors disagree / no leader. The third member's task
  // failed, so the two survivors alone could never form a quorum again: the second is kept as a
  // fallback candidate rather than stopped first.
  Update(launches[2].member.task_id, mesos::TASK_FAILED, launches[2].member.agent_id);
  std::map<std::string, uint64_t> index = {{launches[0].member.name, 500},
                                           {launches[1].member.name, 700}};
  for (auto& [name, idx] : index) {
    On(ProbeResult{name, MemberProbe{ids_[name], 0, idx, 3, false, false}, now_});
  }
  On(ProbeResult{launches[2].member.name, Error{ErrorCode::kUnavailable, "down"}, now_});
  On(ClusterProbeResult{Error{ErrorCode::kUnavailable, "no leader"}, now_,
                        core_.membership_epoch()});
  AdvanceUntilLivelockIsConfirmed();
  ASSERT_TRUE(core_.livelocked());
  EXPECT_FALSE(Has<TriggerReseed>(Advance(30s)));
  for (auto& [name, idx] : index) {
    // Revisions as the raft indexes: the best survivor by index had applied the most writes.
    On(ProbeResult{name, MemberProbe{ids_[name], 0, idx, 3, false, false, idx / 10}, now_});
  }
  auto reseed = Advance(31s);
  auto triggers = All<TriggerReseed>(reseed);
  ASSERT_EQ(triggers.size(), 1u);
  EXPECT_EQ(triggers[0].name, launches[1].member.name) << "highest raft index first";
  EXPECT_EQ(triggers[0].token, "tok");
  EXPECT_EQ(core_.state().counters.cluster_reseeds, 1u);
  // The best fails; the next is tried.
  auto next = On(ReseedResult{launches[1].member.name, Error{ErrorCode::kUnavailable, "x"}, now_});
  auto second = All<TriggerReseed>(next);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].name, launches[0].member.name);
  uint64_t gen = core_.state().generation;
  auto done = On(ReseedResult{launches[0].member.name, uint64_t{500}, now_});
  auto kills = All<KillTask>(done);
  ASSERT_EQ(kills.size(), 1u) << "every other task that may still run";
  // The survivor had applied revision 50; another member had reported 70: 51..70 are lost, and
  // the reseed's note says so, as /stats does from the state.
  EXPECT_EQ(core_.state().revisions.last_reseed_survivor, 50u);
  EXPECT_EQ(core_.state().revisions.last_reseed_highest, 70u);
  EXPECT_EQ(core_.state().revisions.highest_seen, 50u) << "the new generation starts from 50";
  EXPECT_EQ(RevisionsLostByReseed(core_.state().revisions), 20u);
  bool told = false;
  for (const auto& note : All<Note>(done)) {
    told |= note.message.find("revisions 51..70 (20)") != std::string::npos;
  }
  EXPECT_TRUE(told) << "no note names the lost revisions";
  EXPECT_EQ(core_.state().members.size(), 1u);
  EXPECT_EQ(core_.state().generation, gen + 1);
  EXPECT_FALSE(core_.reseeding());
  // Until etcd's view of the reseeded cluster is known, no new livelock episode opens.
  uint64_t livelocks = core_.state().counters.cluster_livelocks;
  On(ProbeResult{launches[0].member.name,
                 MemberProbe{ids_[launches[0].member.name], ids_[launches[0].member.name], 501, 4,
                             false, true},
                 now_});
  Advance(1s);
  EXPECT_EQ(core_.state().counters.cluster_livelocks, livelocks);
  EXPECT_FALSE(core_.livelocked());
}

TEST_F(CoreTest, NoReseedWithAutoReseedOffButTheOperatorCanAskForOne) {
  CoreConfig c = Config();
  c.auto_reseed = false;
  core_ = SchedulerCore(c);
  auto launches = Bootstrap();
  Advance(1s);
  ProbeAll(0, 100);
  AdvanceUntilLivelockIsConfirmed();
  ASSERT_TRUE(core_.livelocked());
  for (int i = 0; i < 10; ++i) {
    ProbeAll(0, 100);
    EXPECT_FALSE(Has<TriggerReseed>(Advance(30s)));
  }
  auto manual = On(AdminReseed{7, false, now_});
  auto answers = All<AnswerAdmin>(manual);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].request, 7u);
  EXPECT_EQ(answers[0].http_status, 202);
  EXPECT_TRUE(Has<TriggerReseed>(manual));
}

TEST_F(CoreTest, ManualReseedOfAHealthyClusterNeedsForce) {
  Bootstrap();
  Advance(1s);
  auto refused = All<AnswerAdmin>(On(AdminReseed{1, false, now_}));
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].http_status, 409);
  EXPECT_NE(refused[0].message.find("healthy"), std::string::npos);
  auto forced = On(AdminReseed{2, true, now_});
  EXPECT_EQ(All<AnswerAdmin>(forced)[0].http_status, 202);
}

TEST_F(CoreTest, NoSurvivorMeansNothingIsKilled) {
  auto launches = Bootstrap();
  Advance(1s);
  for (const auto& l : launches) {
    On(ProbeResult{l.member.name, Error{ErrorCode::kUnavailable, "down"}, now_});
  }
  On(ClusterProbeResult{Error{ErrorCode::kUnavailable, "down"}, now_, core_.membership_epoch()});
  AdvanceUntilLivelockIsConfirmed();
  ASSERT_TRUE(core_.livelocked());
  for (int i = 0; i < 4; ++i) {
    for (const auto& l : launches) {
      On(ProbeResult{l.member.name, Error{ErrorCode::kUnavailable, "down"}, now_});
    }
    auto actions = Advance(30s);
    EXPECT_FALSE(Has<KillTask>(actions));
    EXPECT_FALSE(Has<TriggerReseed>(actions));
  }
  EXPECT_GE(core_.state().counters.reseed_attempts, 1u);
}

TEST_F(CoreTest, TotalLossNeverStartsAnEmptyClusterUntilTheOperatorAsks) {
  auto launches = Bootstrap();
  Advance(1s);
  Actions ended;
  for (const auto& l : launches) {
    auto a = Update(l.member.task_id, mesos::TASK_FAILED, l.member.agent_id);
    ended.insert(ended.end(), a.begin(), a.end());
  }
  EXPECT_TRUE(core_.total_loss()) << "known as soon as the last task ended";
  EXPECT_TRUE(Has<Suppress>(ended));
  ProbeAll(0, 0, {launches[0].member.name, launches[1].member.name, launches[2].member.name});
  Advance(1s);
  EXPECT_TRUE(core_.total_loss());
  auto offers = ThreeOffers();
  EXPECT_FALSE(Has<LaunchMember>(offers));
  EXPECT_FALSE(Has<ChangeMembership>(offers));
  auto fresh = On(AdminStartFresh{3, now_});
  EXPECT_EQ(All<AnswerAdmin>(fresh)[0].http_status, 202);
  EXPECT_TRUE(Has<Revive>(fresh));
  auto relaunch = ThreeOffers();
  EXPECT_EQ(All<LaunchMember>(relaunch).size(), 3u);
}

// What etcd-mesos-local showed: the artifacts could not be fetched, so every member of the
// bootstrap failed before its etcd ever ran, and the scheduler declared TOTAL CLUSTER LOSS of a
// cluster that never held a byte. Such a generation is started again instead, in a new
// generation, after a delay that doubles while it keeps failing.
TEST_F(CoreTest, AGenerationWhoseMembersAllFailedBeforeEtcdRanIsStartedAgainNotLost) {
  Start();
  Subscribe();
  auto first = All<LaunchMember>(ThreeOffers());
  ASSERT_EQ(first.size(), 3u);
  uint64_t generation = core_.state().generation;
  Actions ended;
  for (const auto& l : first) {
    auto a = Update(l.member.task_id, mesos::TASK_FAILED, l.member.agent_id);
    ended.insert(ended.end(), a.begin(), a.end());
  }
  EXPECT_FALSE(core_.total_loss()) << "no member ever ran etcd: no data can be lost";
  EXPECT_EQ(core_.state().generation, generation + 1) << "a new cluster token";
  EXPECT_FALSE(core_.state().bootstrapped);
  EXPECT_TRUE(Has<Persist>(ended));
  bool said = false;
  for (const auto& n : All<Note>(ended)) {
    said = said || n.message.find("failed before etcd ever ran") != std::string::npos;
  }
  EXPECT_TRUE(said) << "the log (and the page's recent events) says why";
  // Not at once: offers within the first second are declined.
  EXPECT_FALSE(Has<LaunchMember>(ThreeOffers()));
  Advance(1s);
  auto second = All<LaunchMember>(ThreeOffers());
  ASSERT_EQ(second.size(), 3u);
  EXPECT_EQ(second[0].cluster_token, fmt::format("etcd-test-{}", generation + 1));
  EXPECT_EQ(second[0].member.name, "etcd-4") << "names are never reused";
  // It fails again: the next try waits twice as long.
  for (const auto& l : second) Update(l.member.task_id, mesos::TASK_FAILED, l.member.agent_id);
  EXPECT_FALSE(core_.total_loss());
  Advance(1s);
  EXPECT_FALSE(Has<LaunchMember>(ThreeOffers()));
  Advance(1s);
  auto third = All<LaunchMember>(ThreeOffers());
  ASSERT_EQ(third.size(), 3u);
  // This time etcd runs: from here on, losing every member is a total loss.
  for (const auto& l : third) Update(l.member.task_id, mesos::TASK_RUNNING, l.member.agent_id);
  EXPECT_TRUE(core_.state().served);
  for (const auto& l : third) Update(l.member.task_id, mesos::TASK_FAILED, l.member.agent_id);
  EXPECT_TRUE(core_.total_loss());
}

// Simulator seed 3296 (three schedulers): a scheduler died with the write of its launches on
// the way; the write landed, the launches were never made, and one member's agent came back with
// a new id. The master answers TASK_UNKNOWN for that member for ever, and the cluster waited on
// it for ever. In a generation that never served, a member unknown to the master for a whole
// staging timeout never ran etcd: the generation is started again. Sooner it may still come.
TEST_F(CoreTest, AMemberTheMasterNeverKnewHoldsANeverServedGenerationOnlyForAStagingTimeout) {
  CoreConfig config = Config();
  config.staging_timeout = 60s;
  core_ = SchedulerCore(config);
  Start();
  Subscribe();
  auto launches = All<LaunchMember>(ThreeOffers());
  ASSERT_EQ(launches.size(), 3u);
  uint64_t generation = core_.state().generation;
  Update(launches[0].member.task_id, mesos::TASK_UNKNOWN, launches[0].member.agent_id);
  for (size_t i = 1; i < 3; ++i) {
    Update(launches[i].member.task_id, mesos::TASK_FAILED, launches[i].member.agent_id);
  }
  Advance(30s);
  EXPECT_EQ(core_.state().generation, generation) << "it may still start: wait";
  EXPECT_FALSE(core_.total_loss());
  Advance(31s);
  EXPECT_EQ(core_.state().generation, generation + 1) << "started again";
  EXPECT_FALSE(core_.total_loss());
}

// An unknown member of a cluster that served may hold data: it is waited for, never replaced
// by a new cluster, however long it takes.
TEST_F(CoreTest, AnUnknownMemberOfAClusterThatServedIsWaitedFor) {
  CoreConfig config = Config();
  config.staging_timeout = 60s;
  core_ = SchedulerCore(config);
  auto launches = Bootstrap();
  uint64_t generation = core_.state().generation;
  Update(launches[0].member.task_id, mesos::TASK_UNKNOWN, launches[0].member.agent_id);
  for (size_t i = 1; i < 3; ++i) {
    Update(launches[i].member.task_id, mesos::TASK_FAILED, launches[i].member.agent_id);
  }
  Advance(300s);
  EXPECT_EQ(core_.state().generation, generation);
  EXPECT_FALSE(core_.total_loss()) << "it may come back with its data";
}

// A record that says otherwise (written by hand, or by a bug) does not make a cluster whose
// members ran etcd look empty.
TEST_F(CoreTest, AStoredMemberWithAnEtcdIdServedWhateverTheRecordSays) {
  auto launches = Bootstrap();
  PersistentState state = core_.state();
  state.served = false;
  core_ = SchedulerCore(Config());
  Start(state);
  EXPECT_TRUE(core_.state().served);
  Subscribe();
  for (const auto& l : launches) Update(l.member.task_id, mesos::TASK_FAILED, l.member.agent_id);
  Advance(1s);
  EXPECT_TRUE(core_.total_loss());
}

// A standby shows the stored state, and a restarted scheduler starts from it: every change of a
// task's state is written (real Mesos showed a standby reading STARTING for running members).
TEST_F(CoreTest, EveryChangeOfATasksStateIsOnRecordButNotARepeat) {
  Start();
  Subscribe();
  auto launches = All<LaunchMember>(ThreeOffers());
  ASSERT_EQ(launches.size(), 3u);
  const auto& m = launches[0].member;
  auto stored = [&](const Actions& out) -> std::optional<mesos::TaskState> {
    auto writes = All<Persist>(out);
    if (writes.empty()) return std::nullopt;
    return writes.back().state.members.at(m.name).task_state;
  };
  EXPECT_EQ(stored(Update(m.task_id, mesos::TASK_STARTING, m.agent_id)), mesos::TASK_STARTING);
  EXPECT_EQ(stored(Update(m.task_id, mesos::TASK_RUNNING, m.agent_id)), mesos::TASK_RUNNING);
  EXPECT_EQ(stored(Update(m.task_id, mesos::TASK_RUNNING, m.agent_id)), std::nullopt)
      << "the same state again is no change";
}

// A standby does not probe: it shows the leader's health verdict from the stored state, which
// the next state write carries (no write of its own: it would hold back membership changes).
TEST_F(CoreTest, TheHealthVerdictGoesOnRecordWithTheNextWrite) {
  auto launches = Bootstrap();
  EXPECT_FALSE(core_.state().healthy);
  Advance(1s);  // health is judged on the tick
  ASSERT_TRUE(core_.healthy());
  EXPECT_TRUE(core_.state().healthy);
  EXPECT_EQ(core_.state().health_reason, core_.health_reason());
  auto failed = Update(launches[0].member.task_id, mesos::TASK_FAILED, launches[0].member.agent_id);
  auto writes = All<Persist>(failed);
  ASSERT_FALSE(writes.empty());
  EXPECT_TRUE(writes.back().state.healthy) << "the verdict as it stands at the write";
}

// ---- Resize at runtime ---------------------------------------------------------------------

TEST_F(CoreTest, AResizeIsOnRecordBeforeAnythingChangesAndGrowsOneLearnerAtATime) {
  Bootstrap();
  Advance(6s);
  ASSERT_TRUE(core_.healthy());
  auto asked = On(AdminResize{7, 5, false, now_});
  auto answers = All<AnswerAdmin>(asked);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].http_status, 202) << answers[0].message;
  auto writes = All<Persist>(asked);
  ASSERT_FALSE(writes.empty());
  EXPECT_EQ(writes.back().state.target_size, 5);
  EXPECT_EQ(writes.back().state.target_flag, 3) << "asked under --cluster-size=3";
  EXPECT_EQ(core_.TargetSize(), 5);
  EXPECT_TRUE(Has<Revive>(asked)) << "offers are wanted again";
  // One learner for the first offer; the second waits until it is promoted.
  auto first = All<ChangeMembership>(Offers({MakeOffer(4), MakeOffer(5)}));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].op, MembershipOp::kAddLearner);
  EXPECT_TRUE(All<ChangeMembership>(Offers({MakeOffer(5)})).empty());
}

// A 5-member cluster asked to be 3: the newest follower goes first, never the leader, and the
// next only once the first is out.
TEST_F(CoreTest, AShrinkRemovesTheNewestFollowerOneAtATimeNeverTheLeader) {
  CoreConfig five = Config();
  five.cluster_size = 5;
  core_ = SchedulerCore(five);
  Start();
  Subscribe();
  auto launches = All<LaunchMember>(
      Offers({MakeOffer(1), MakeOffer(2), MakeOffer(3), MakeOffer(4), MakeOffer(5)}));
  ASSERT_EQ(launches.size(), 5u);
  uint64_t id = 1;
  for (const auto& l : launches) {
    Update(l.member.task_id, mesos::TASK_RUNNING, l.member.agent_id);
    ids_[l.member.name] = id++;
  }
  ids_["etcd-5"] = 1;  // the newest member leads: it must not be the one removed
  ids_["etcd-1"] = 5;
  ProbeAll(/*leader=*/1, 100);
  Advance(6s);
  ASSERT_TRUE(core_.healthy());
  EXPECT_EQ(All<AnswerAdmin>(On(AdminResize{1, 3, false, now_}))[0].http_status, 202);
  auto tick = Advance(1s);
  auto removals = All<ChangeMembership>(tick);
  ASSERT_EQ(removals.size(), 1u);
  EXPECT_EQ(removals[0].op, MembershipOp::kRemove);
  EXPECT_EQ(removals[0].name, "etcd-4") << "the newest follower (etcd-5 leads)";
  ASSERT_EQ(All<KillTask>(tick).size(), 1u);
  EXPECT_TRUE(All<ChangeMembership>(Advance(1s)).empty()) << "one change at a time";
  On(MembershipResult{MembershipOp::kRemove, "etcd-4", 4, OkStatus(), now_});
  Update(launches[3].member.task_id, mesos::TASK_KILLED, launches[3].member.agent_id);
  ProbeAll(1, 101);
  auto next = All<ChangeMembership>(Advance(1s));
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].name, "etcd-3");
  On(MembershipResult{MembershipOp::kRemove, "etcd-3", 3, OkStatus(), now_});
  Update(launches[2].member.task_id, mesos::TASK_KILLED, launches[2].member.agent_id);
  ProbeAll(1, 102);
  EXPECT_TRUE(All<ChangeMembership>(Advance(1s)).empty()) << "at the target: nothing more";
  EXPECT_TRUE(All<ChangeMembership>(Offers({MakeOffer(6)})).empty()) << "and no growth back";
}

TEST_F(CoreTest, AResizeIsRefusedWithTheReasonWhenItCannotBeDone) {
  Bootstrap();
  auto status = [&](int n, bool force) {
    auto a = All<AnswerAdmin>(On(AdminResize{1, n, force, now_}));
    return a.empty() ? 0 : a[0].http_status;
  };
  EXPECT_EQ(status(0, false), 400);
  EXPECT_EQ(status(100, false), 400);
  EXPECT_EQ(status(4, false), 400) << "even sizes only with force";
  EXPECT_EQ(core_.TargetSize(), 3);
  EXPECT_EQ(status(3, false), 200) << "already the target";
  EXPECT_EQ(status(4, true), 202);
  EXPECT_EQ(core_.TargetSize(), 4);
}

// The target asked at runtime holds across restarts with the same --cluster-size; a scheduler
// started with another --cluster-size follows the flag (the operator changed it since).
TEST_F(CoreTest, ARestartKeepsTheAskedSizeUnlessTheFlagChanged) {
  PersistentState state;
  state.target_size = 5;
  state.target_flag = 3;
  Start(state);
  EXPECT_EQ(core_.TargetSize(), 5);
  CoreConfig seven = Config();
  seven.cluster_size = 7;
  core_ = SchedulerCore(seven);
  Start(state);
  EXPECT_EQ(core_.TargetSize(), 7);
}

TEST_F(CoreTest, AClusterThatServedIsATotalLossNotStartedAgain) {
  auto launches = Bootstrap();  // every member RUNNING: etcd served
  uint64_t generation = core_.state().generation;
  for (const auto& l : launches) Update(l.member.task_id, mesos::TASK_FAILED, l.member.agent_id);
  EXPECT_TRUE(core_.total_loss());
  EXPECT_EQ(core_.state().generation, generation);
  EXPECT_FALSE(Has<LaunchMember>(ThreeOffers()));
}

// A member that answered a probe ran etcd, whatever its task updates said before it ended.
TEST_F(CoreTest, AMemberThatAnsweredAProbeServedEvenWithoutARunningUpdate) {
  Start();
  Subscribe();
  auto launches = All<LaunchMember>(ThreeOffers());
  ASSERT_EQ(launches.size(), 3u);
  On(ProbeResult{launches[0].member.name, MemberProbe{7, 7, 10, 2, false, true}, now_});
  EXPECT_TRUE(core_.state().served);
  for (const auto& l : launches) Update(l.member.task_id, mesos::TASK_FAILED, l.member.agent_id);
  EXPECT_TRUE(core_.total_loss());
}

// ---- Backups and restore ----------------------------------------------------------------------

CoreConfig BackupConfig() {
  CoreConfig c;
  c.framework_name = "etcd-test";
  c.cluster_size = 3;
  c.reseed_timeout = 60s;
  c.bootstrap_gather = 3s;
  c.task_cpus = 1;
  c.task_mem = 256;
  c.task_disk = 256;
  c.backups = true;
  c.backup_interval = 600s;
  c.backup_timeout = 20s;
  return c;
}

BackupDone Done(const std::string& member, uint64_t revision = 10) {
  return BackupDone{"etcd-test-20261124T000000Z-rev10-0000000000000001.db",
                    1234,
                    revision,
                    member,
                    "abc",
                    1795996800};
}

TEST_F(CoreTest, PeriodicBackupsComeFromAHealthyFollowerOnSchedule) {
  core_ = SchedulerCore(BackupConfig());
  auto launches = Bootstrap();
  auto first = All<TakeBackup>(Advance(1s));
  ASSERT_EQ(first.size(), 1u) << "no backup yet: one at once";
  EXPECT_NE(first[0].member, launches[0].member.name) << "member 1 leads: spare it";
  EXPECT_EQ(first[0].reason, "periodic");
  EXPECT_EQ(first[0].client_url, core_.state().members.at(first[0].member).ClientUrl());
  // One at a time.
  ProbeAll(1, 101);
  EXPECT_FALSE(Has<TakeBackup>(Advance(1s)));
  On(BackupResult{first[0].id, Done(first[0].member), now_});
  EXPECT_EQ(core_.backups().taken, 1u);
  ASSERT_TRUE(core_.backups().last.has_value());
  EXPECT_EQ(core_.backups().last->member, first[0].member);
  // Not again before the interval; then again.
  for (int i = 0; i < 9; ++i) {
    ProbeAll(1, 102);
    EXPECT_FALSE(Has<TakeBackup>(Advance(60s))) << i;
  }
  ProbeAll(1, 103);
  EXPECT_TRUE(Has<TakeBackup>(Advance(61s)));
}

TEST_F(CoreTest, AFailedOrHungBackupIsCountedAndRetriedWithinAMinute) {
  core_ = SchedulerCore(BackupConfig());
  Bootstrap();
  auto first = All<TakeBackup>(Advance(1s));
  ASSERT_EQ(first.size(), 1u);
  // It hangs: given up after the backup timeout.
  for (int i = 0; i < 3; ++i) {
    ProbeAll(1, 101);
    Advance(5s);
  }
  ProbeAll(1, 101);
  Advance(6s);
  EXPECT_EQ(core_.backups().failures, 1u);
  EXPECT_NE(core_.backups().last_error.find("did not finish"), std::string::npos);
  EXPECT_FALSE(core_.backups().running.has_value());
  ProbeAll(1, 101);
  EXPECT_FALSE(Has<TakeBackup>(Advance(30s)));
  ProbeAll(1, 101);
  auto retry = All<TakeBackup>(Advance(31s));
  ASSERT_EQ(retry.size(), 1u);
  On(BackupResult{retry[0].id, Error{ErrorCode::kDataLoss, "sha256 mismatch"}, now_});
  EXPECT_EQ(core_.backups().failures, 2u);
  EXPECT_NE(core_.backups().last_error.find("sha256 mismatch"), std::string::npos);
  // A late answer of the hung one is ignored if it failed, counted if it wrote a file.
  On(BackupResult{first[0].id, Error{ErrorCode::kUnavailable, "late"}, now_});
  EXPECT_EQ(core_.backups().failures, 2u);
}

TEST_F(CoreTest, NoBackupsWhenTheyAreOffAndTheOperatorIsToldWhy) {
  Bootstrap();
  for (int i = 0; i < 5; ++i) {
    ProbeAll(1, 100);
    EXPECT_FALSE(Has<TakeBackup>(Advance(3600s)));
  }
  auto answer = All<AnswerAdmin>(On(AdminBackup{4, now_}));
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].http_status, 409);
  EXPECT_NE(answer[0].message.find("--backup-dir"), std::string::npos);
}

TEST_F(CoreTest, OperatorBackupStartsAtOnceAndOnlyOneRuns) {
  CoreConfig c = BackupConfig();
  c.backup_interval = 0s;  // no periodic ones
  core_ = SchedulerCore(c);
  Bootstrap();
  EXPECT_FALSE(Has<TakeBackup>(Advance(1s)));
  auto asked = On(AdminBackup{4, now_});
  auto takes = All<TakeBackup>(asked);
  ASSERT_EQ(takes.size(), 1u);
  EXPECT_EQ(takes[0].reason, "operator");
  EXPECT_EQ(All<AnswerAdmin>(asked)[0].http_status, 202);
  auto again = All<AnswerAdmin>(On(AdminBackup{5, now_}));
  EXPECT_EQ(again[0].http_status, 409);
  EXPECT_NE(again[0].message.find("already running"), std::string::npos);
}

TEST_F(CoreTest, StartedWithARecentBackupWaitsForTheRestOfTheInterval) {
  core_ = SchedulerCore(BackupConfig());
  PersistentState state;
  state.reseed_token = "tok";
  On(Started{state, now_, Done("etcd-1"), Millis(300'000)});
  EXPECT_EQ(core_.backups().last->member, "etcd-1");
  Subscribe();
  auto launches = All<LaunchMember>(ThreeOffers());
  uint64_t id = 1;
  for (const auto& l : launches) {
    Update(l.member.task_id, mesos::TASK_RUNNING, l.member.agent_id);
    ids_[l.member.name] = id++;
  }
  ProbeAll(1, 100);
  EXPECT_FALSE(Has<TakeBackup>(Advance(290s)));
  ProbeAll(1, 100);
  EXPECT_TRUE(Has<TakeBackup>(Advance(11s)));
}

TEST_F(CoreTest, AReseedBacksUpTheBestSurvivorFirstAndWaitsBoundedForIt) {
  CoreConfig c = BackupConfig();
  c.backup_interval = 0s;
  core_ = SchedulerCore(c);
  auto launches = Bootstrap();
  Advance(1s);
  Update(launches[2].member.task_id, mesos::TASK_FAILED, launches[2].member.agent_id);
  std::map<std::string, uint64_t> index = {{launches[0].member.name, 500},
                                           {launches[1].member.name, 700}};
  auto probe = [&] {
    for (auto& [name, idx] : index) {
      On(ProbeResult{name, MemberProbe{ids_[name], 0, idx, 3, false, false}, now_});
    }
    On(ClusterProbeResult{Error{ErrorCode::kUnavailable, "no leader"}, now_,
                          core_.membership_epoch()});
  };
  probe();
  AdvanceUntilLivelockIsConfirmed();
  ASSERT_TRUE(core_.livelocked());
  probe();
  Advance(30s);
  probe();
  // (The backup before removing the dead voter, started while the cluster was still healthy,
  // has timed out by now.)
  uint64_t failures = core_.backups().failures;
  auto due = Advance(31s);
  EXPECT_FALSE(Has<TriggerReseed>(due)) << "the backup comes first";
  auto takes = All<TakeBackup>(due);
  ASSERT_EQ(takes.size(), 1u);
  EXPECT_EQ(takes[0].member, launches[1].member.name) << "the survivor with the most data";
  EXPECT_EQ(takes[0].reason, "before reseed");
  // Nothing else meanwhile; an operator's reseed is told one is on its way.
  probe();
  EXPECT_FALSE(Has<TriggerReseed>(Advance(5s)));
  EXPECT_EQ(All<AnswerAdmin>(On(AdminReseed{9, true, now_}))[0].http_status, 409);
  // The backup hangs: the reseed goes ahead after the backup timeout, not later.
  probe();
  Advance(10s);
  probe();
  auto late = Advance(6s);
  auto triggers = All<TriggerReseed>(late);
  ASSERT_EQ(triggers.size(), 1u);
  EXPECT_EQ(triggers[0].name, launches[1].member.name);
  EXPECT_EQ(core_.backups().failures, failures + 1);
}

TEST_F(CoreTest, AManualReseedAnswersAtOnceAndReseedsWhenTheBackupIsWritten) {
  CoreConfig c = BackupConfig();
  c.backup_interval = 0s;
  c.auto_reseed = false;
  core_ = SchedulerCore(c);
  Bootstrap();
  Advance(1s);
  ProbeAll(0, 100);
  AdvanceUntilLivelockIsConfirmed();
  ASSERT_TRUE(core_.livelocked());
  auto asked = On(AdminReseed{7, false, now_});
  auto answers = All<AnswerAdmin>(asked);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].http_status, 202);
  EXPECT_NE(answers[0].message.find("backing up"), std::string::npos);
  auto takes = All<TakeBackup>(asked);
  ASSERT_EQ(takes.size(), 1u);
  EXPECT_FALSE(Has<TriggerReseed>(asked));
  auto written = On(BackupResult{takes[0].id, Done(takes[0].member), now_});
  EXPECT_TRUE(Has<TriggerReseed>(written));
}

TEST_F(CoreTest, RemovingAVoterFromABareQuorumWaitsForABackup) {
  CoreConfig c = BackupConfig();
  c.backup_interval = 0s;
  core_ = SchedulerCore(c);
  auto launches = Bootstrap();
  Advance(1s);
  const Member dead = launches[2].member;
  auto failed = Update(dead.task_id, mesos::TASK_FAILED, dead.agent_id);
  EXPECT_FALSE(Has<ChangeMembership>(failed)) << "two of three left: back up first";
  auto takes = All<TakeBackup>(failed);
  ASSERT_EQ(takes.size(), 1u);
  EXPECT_EQ(takes[0].reason, "before removing voter " + dead.name);
  ProbeAll(1, 121, {dead.name});
  EXPECT_FALSE(Has<ChangeMembership>(Advance(1s)));
  On(BackupResult{takes[0].id, Done(takes[0].member), now_});
  ProbeAll(1, 122, {dead.name});
  auto changes = All<ChangeMembership>(Advance(1s));
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].op, MembershipOp::kRemove);
}

TEST_F(CoreTest, RestoreIsRefusedWhileMembersMayLive) {
  core_ = SchedulerCore(BackupConfig());
  Bootstrap();
  Advance(1s);
  auto refused = On(AdminRestore{3, "b.db", now_});
  auto answers = All<AnswerAdmin>(refused);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].http_status, 409);
  EXPECT_NE(answers[0].message.find("may still be alive"), std::string::npos);
  EXPECT_FALSE(Has<KillTask>(refused));
  EXPECT_TRUE(core_.state().restore_snapshot.empty());
}

TEST_F(CoreTest, RestoreAfterTotalLossStartsOneMemberFromTheBackupThenGrows) {
  core_ = SchedulerCore(BackupConfig());
  auto launches = Bootstrap();
  Advance(1s);
  for (const auto& l : launches) Update(l.member.task_id, mesos::TASK_FAILED, l.member.agent_id);
  ProbeAll(0, 0, {launches[0].member.name, launches[1].member.name, launches[2].member.name});
  Advance(1s);
  ASSERT_TRUE(core_.total_loss());
  uint64_t generation = core_.state().generation;
  auto restore = On(AdminRestore{5, "etcd-test-x.db", now_});
  ASSERT_EQ(All<AnswerAdmin>(restore)[0].http_status, 202);
  EXPECT_TRUE(Has<Persist>(restore));
  EXPECT_TRUE(Has<Revive>(restore));
  EXPECT_EQ(core_.state().generation, generation + 1) << "a fresh cluster token";
  EXPECT_EQ(core_.state().restore_snapshot, "etcd-test-x.db");
  EXPECT_FALSE(core_.total_loss());
  EXPECT_EQ(All<AnswerAdmin>(On(AdminRestore{6, "other.db", now_}))[0].http_status, 409);
  // One offer is enough: one member starts alone from the backup, on record first.
  auto launch = ThreeOffers();
  auto launched = All<LaunchMember>(launch);
  ASSERT_EQ(launched.size(), 1u);
  EXPECT_EQ(launched[0].restore_snapshot, "etcd-test-x.db");
  EXPECT_TRUE(launched[0].new_cluster);
  EXPECT_EQ(launched[0].initial_cluster,
            launched[0].member.name + "=" + launched[0].member.PeerUrl());
  EXPECT_EQ(launched[0].cluster_token, fmt::format("etcd-test-{}", generation + 1));
  EXPECT_EQ(All<DeclineOffer>(launch).size(), 2u);
  EXPECT_TRUE(core_.state().restore_snapshot.empty()) << "launched: not again after a restart";
  // It runs and is healthy alone: the rest join as learners.
  Update(launched[0].member.task_id, mesos::TASK_RUNNING, launched[0].member.agent_id);
  ids_.clear();
  ids_[launched[0].member.name] = 42;
  ProbeAll(42, 10);
  Advance(1s);
  ASSERT_TRUE(core_.healthy());
  auto grow = Offers({MakeOffer(2)});
  auto adds = All<ChangeMembership>(grow);
  ASSERT_EQ(adds.size(), 1u);
  EXPECT_EQ(adds[0].op, MembershipOp::kAddLearner);
}

TEST_F(CoreTest, RestoreOfAClusterThatNeverStartedLaunchesOnlyTheRestoredMember) {
  core_ = SchedulerCore(BackupConfig());
  Start();
  auto before = On(AdminRestore{1, "b.db", now_});  // --restore-from, before subscribing
  EXPECT_EQ(All<AnswerAdmin>(before)[0].http_status, 202);
  // Nothing about offers before the subscription (a Suppress would reach the master after it,
  // and offers would never come; seen end to end).
  EXPECT_FALSE(Has<Suppress>(before));
  EXPECT_FALSE(Has<Revive>(before));
  EXPECT_FALSE(Has<Suppress>(Subscribe()));
  auto launched = All<LaunchMember>(Offers({MakeOffer(1)}));
  ASSERT_EQ(launched.size(), 1u) << "no gather wait for a restore";
  EXPECT_EQ(launched[0].restore_snapshot, "b.db");
}

TEST_F(CoreTest, StartFreshIsRefusedWhileMembersMayLive) {
  Bootstrap();
  auto answer = All<AnswerAdmin>(On(AdminStartFresh{1, now_}));
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].http_status, 409);
}

// A restored member that failed before its etcd ran (say its agent could not fetch the backup)
// is restored again from the same backup, not a total loss and not an empty cluster.
TEST_F(CoreTest, ARestoreWhoseMemberFailedBeforeEtcdRanIsRestoredAgain) {
  core_ = SchedulerCore(BackupConfig());
  Start();
  ASSERT_EQ(All<AnswerAdmin>(On(AdminRestore{1, "b.db", now_}))[0].http_status, 202);
  Subscribe();
  auto first = All<LaunchMember>(Offers({MakeOffer(1)}));
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(first[0].restore_snapshot, "b.db");
  Update(first[0].member.task_id, mesos::TASK_FAILED, first[0].member.agent_id);
  EXPECT_FALSE(core_.total_loss());
  EXPECT_EQ(core_.state().restore_snapshot, "b.db") << "on record for a restarted scheduler too";
  Advance(1s);
  auto again = All<LaunchMember>(Offers({MakeOffer(2)}));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].restore_snapshot, "b.db");
  EXPECT_TRUE(again[0].new_cluster);
}

TEST_F(CoreTest, TaskLostFromReconciliationIsNotTotalLoss) {
  auto launches = Bootstrap();
  Advance(1s);
  for (const auto& l : launches) Update(l.member.task_id, mesos::TASK_LOST, l.member.agent_id);
  ProbeAll(1, 200);  // the members still answer: they are alive whatever Mesos says
  Advance(1s);
  EXPECT_FALSE(core_.total_loss());
  EXPECT_TRUE(core_.healthy());
  EXPECT_FALSE(Has<KillTask>(Advance(1s)));
  EXPECT_EQ(core_.state().counters.lost_servers, 0u) << "nothing is lost while they may come back";
}

// After a master failover, reconciliation answered TASK_UNKNOWN for live tasks whose agents had
// not re-registered, and they came back RUNNING (real Mesos 1.11): no member was lost. A task
// out of contact counts as lost only once it ends or its member is removed.
TEST_F(CoreTest, ATaskOutOfContactCountsAsLostOnlyIfItNeverComesBack) {
  auto launches = Bootstrap();
  for (const auto& l : launches) Update(l.member.task_id, mesos::TASK_UNKNOWN, l.member.agent_id);
  for (const auto& l : launches) Update(l.member.task_id, mesos::TASK_RUNNING, l.member.agent_id);
  EXPECT_EQ(core_.state().counters.lost_servers, 0u);
  EXPECT_EQ(core_.state().counters.failed_servers, 0u);

  const auto& victim = launches[0].member;
  Update(victim.task_id, mesos::TASK_UNREACHABLE, victim.agent_id);
  Update(victim.task_id, mesos::TASK_GONE, victim.agent_id);  // its agent never came back
  EXPECT_EQ(core_.state().counters.lost_servers, 1u);
  EXPECT_EQ(core_.state().counters.failed_servers, 0u) << "lost, not failed in Mesos's sight";

  const auto& failed = launches[1].member;
  Update(failed.task_id, mesos::TASK_FAILED, failed.agent_id);
  EXPECT_EQ(core_.state().counters.failed_servers, 1u);
  EXPECT_EQ(core_.state().counters.lost_servers, 1u);
}

TEST_F(CoreTest, TaskStuckInStagingIsKilled) {
  Start();
  Subscribe();
  auto launches = All<LaunchMember>(ThreeOffers());
  ASSERT_EQ(launches.size(), 3u);
  auto early = Advance(60s);
  EXPECT_FALSE(Has<KillTask>(early));
  auto late = Advance(121s);
  EXPECT_EQ(All<KillTask>(late).size(), 3u);
}

TEST_F(CoreTest, UnknownRunningTaskIsKilled) {
  Bootstrap();
  auto actions = Update("etcd-999 127.0.0.9 1 2 3", mesos::TASK_RUNNING, "S9");
  auto kills = All<KillTask>(actions);
  ASSERT_EQ(kills.size(), 1u);
  EXPECT_EQ(kills[0].agent_id, "S9");
}

// An update with a uuid is acknowledged last, after the Persist of what it changed (the pipeline
// then holds the acknowledgement until that write is done); one without a uuid (the master's own,
// or a reconciliation answer) wants none. Updates the core ignores are acknowledged too, or Mesos
// would resend them for ever.
TEST_F(CoreTest, AnUpdateIsAcknowledgedAfterThePersistOfWhatItChanged) {
  auto launches = Bootstrap();
  mesos::TaskStatus failed;
  failed.mutable_task_id()->set_value(launches[1].member.task_id);
  failed.mutable_agent_id()->set_value(launches[1].member.agent_id);
  failed.set_state(mesos::TASK_FAILED);
  failed.set_uuid(
      std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16));
  Actions actions = On(TaskUpdate{failed, now_});
  ASSERT_FALSE(actions.empty());
  const auto* ack = std::get_if<AcknowledgeUpdate>(&actions.back());
  ASSERT_NE(ack, nullptr) << "the acknowledgement comes last";
  EXPECT_EQ(ack->task_id, launches[1].member.task_id);
  EXPECT_EQ(ack->agent_id, launches[1].member.agent_id);
  EXPECT_EQ(ack->uuid, failed.uuid());
  EXPECT_EQ(All<AcknowledgeUpdate>(actions).size(), 1u);
  EXPECT_FALSE(All<Persist>(actions).empty()) << "a member's end is on record before the ack";

  failed.set_uuid(std::string(16, '\x11'));
  failed.mutable_task_id()->set_value("etcd-999 127.0.0.9 1 2 3");
  actions = On(TaskUpdate{failed, now_});
  ASSERT_EQ(All<AcknowledgeUpdate>(actions).size(), 1u) << "a task the core does not know";
  EXPECT_EQ(All<AcknowledgeUpdate>(actions)[0].task_id, "etcd-999 127.0.0.9 1 2 3");

  EXPECT_TRUE(All<AcknowledgeUpdate>(Update(launches[0].member.task_id, mesos::TASK_RUNNING,
                                            launches[0].member.agent_id))
                  .empty())
      << "no uuid, no acknowledgement";
}

// A healed partition delivers a burst of updates for one stale task: one kill, not one per
// update (real Mesos: 5 KILLs within 80 ms); asked again only after the retry window, or at once
// for a task that ended and shows up again.
TEST_F(CoreTest, AStaleTaskIsKilledOnceHoweverManyUpdatesNameIt) {
  Bootstrap();
  const std::string stale = "etcd-999 127.0.0.9 1 2 3";
  size_t kills = 0;
  for (int i = 0; i < 5; ++i) {
    kills += All<KillTask>(Update(stale, mesos::TASK_RUNNING, "S9")).size();
  }
  EXPECT_EQ(kills, 1u);
  now_ += 6s;
  EXPECT_EQ(All<KillTask>(Update(stale, mesos::TASK_RUNNING, "S9")).size(), 1u)
      << "still there after the retry window: asked again";
  Update(stale, mesos::TASK_KILLED, "S9");
  EXPECT_EQ(All<KillTask>(Update(stale, mesos::TASK_RUNNING, "S9")).size(), 1u)
      << "ended, then seen running again: killed at once";
}

// A member whose agent is unreachable is removed without a kill (the master has dropped the
// task and would answer that it does not know it); if the agent comes back, the task's next
// update names a member that is gone, and it is killed then.
TEST_F(CoreTest, AnUnreachableMemberIsRemovedWithoutAKillAndKilledWhenItShowsUp) {
  auto launches = Bootstrap();
  Advance(1s);
  const Member& lost = launches[2].member;
  Update(lost.task_id, mesos::TASK_UNREACHABLE, lost.agent_id);
  Actions seen;
  for (int i = 0; i < 60 && !Has<ChangeMembership>(seen); ++i) {
    auto probe = ProbeAll(1, 100, {lost.name});
    auto tick = Advance(1s);
    seen.insert(seen.end(), probe.begin(), probe.end());
    seen.insert(seen.end(), tick.begin(), tick.end());
  }
  auto changes = All<ChangeMembership>(seen);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].op, MembershipOp::kRemove);
  EXPECT_EQ(changes[0].name, lost.name);
  for (const auto& k : All<KillTask>(seen)) EXPECT_NE(k.task_id, lost.task_id);
  EXPECT_EQ(core_.state().counters.lost_servers, 0u) << "not lost while it may come back";
  On(MembershipResult{MembershipOp::kRemove, lost.name, ids_[lost.name], OkStatus(), now_});
  EXPECT_EQ(core_.state().counters.lost_servers, 1u) << "removed while out of contact: lost";
  auto back = All<KillTask>(Update(lost.task_id, mesos::TASK_RUNNING, lost.agent_id));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].task_id, lost.task_id);
}

TEST_F(CoreTest, SuppressWhenFullReviveWhenAMemberIsNeeded) {
  auto launches = Bootstrap();
  Advance(1s);
  auto full = Offers({MakeOffer(4)});
  auto declines = All<DeclineOffer>(full);
  ASSERT_EQ(declines.size(), 1u);
  EXPECT_EQ(declines[0].refuse_seconds, 15) << "nothing needed: the configured refuse seconds";
  const Member dead = launches[0].member;
  auto failed = Update(dead.task_id, mesos::TASK_FAILED, dead.agent_id);
  EXPECT_TRUE(Has<Revive>(failed));
  EXPECT_FALSE(Has<Suppress>(failed));
  // The replacement is launched: full again, so offers are suppressed until the next need.
  On(MembershipResult{MembershipOp::kRemove, dead.name, ids_[dead.name], OkStatus(), now_});
  ids_.erase(dead.name);
  ProbeAll(ids_[launches[1].member.name], 121);
  Advance(1s);
  auto adds = All<ChangeMembership>(Offers({MakeOffer(4)}));
  ASSERT_EQ(adds.size(), 1u);
  auto launched =
      On(MembershipResult{MembershipOp::kAddLearner, adds[0].name, 99, OkStatus(), now_});
  ASSERT_TRUE(Has<LaunchMember>(launched));
  auto tick = Advance(1s);
  EXPECT_TRUE(Has<Suppress>(launched) || Has<Suppress>(tick))
      << "a full cluster suppresses offers rather than declining them every interval";
  EXPECT_FALSE(Has<Revive>(tick));
}

TEST_F(CoreTest, OneMemberPerAgent) {
  auto launches = Bootstrap();
  Advance(1s);
  Update(launches[2].member.task_id, mesos::TASK_FAILED, launches[2].member.agent_id);
  ProbeAll(1, 120, {launches[2].member.name});
  Advance(1s);
  On(MembershipResult{MembershipOp::kRemove, launches[2].member.name, ids_[launches[2].member.name],
                      OkStatus(), now_});
  ids_.erase(launches[2].member.name);
  ProbeAll(1, 121);
  Advance(1s);
  // Agents 1 and 2 already host members: their offers are declined, no add.
  auto actions = Offers({MakeOffer(1), MakeOffer(2)});
  EXPECT_FALSE(Has<ChangeMembership>(actions));
  EXPECT_EQ(All<DeclineOffer>(actions).size(), 2u);
}

// Found by the simulator (sim seeds 24, 227, 294 and 5502 before the fix): a reseed while the
// other members could still form a quorum (a forced reseed of a healthy cluster, a cluster still
// bootstrapping, a promotion on its way) left two clusters taking writes until the result came
// back. The others are now stopped in the same batch, before the survivor stands alone.
TEST_F(CoreTest, AReseedStopsTheOthersFirstWhenTheyCouldStillFormAQuorum) {
  auto launches = Bootstrap();
  Advance(1s);
  ASSERT_TRUE(core_.healthy());
  auto forced = On(AdminReseed{1, true, now_});
  auto triggers = All<TriggerReseed>(forced);
  ASSERT_EQ(triggers.size(), 1u);
  auto kills = All<KillTask>(forced);
  ASSERT_EQ(kills.size(), 2u) << "both others";
  size_t first_kill = forced.size(), trigger = forced.size();
  for (size_t i = 0; i < forced.size(); ++i) {
    if (std::holds_alternative<KillTask>(forced[i]) && first_kill == forced.size()) first_kill = i;
    if (std::holds_alternative<TriggerReseed>(forced[i])) trigger = i;
  }
  EXPECT_LT(first_kill, trigger) << "stopped before the survivor is asked";
  for (const auto& k : kills) EXPECT_NE(k.task_id.rfind(triggers[0].name + " ", 0), 0u);
  // The others are on their way out: no fallback candidate is tried.
  auto failed = On(ReseedResult{triggers[0].name, Error{ErrorCode::kUnavailable, "x"}, now_});
  EXPECT_FALSE(Has<TriggerReseed>(failed));
  EXPECT_FALSE(core_.reseeding());
  // The log says plainly who was stopped for the attempt, and that they stay stopped.
  bool told = false;
  for (const auto& n : All<Note>(failed)) {
    told |= n.message.find("reseed failed: no candidate (" + triggers[0].name + ")") == 0 &&
            n.message.find("the members stopped before the reseed (" + launches[1].member.name +
                           ", " + launches[2].member.name + ") stay stopped") != std::string::npos;
  }
  EXPECT_TRUE(told);
}

// Found by the simulator (sim seeds 222 and 368 before the fix): a terminal update lost with its
// agent (wiped before the update was acknowledged) left a dead member looking RUNNING forever,
// because periodic reconciliation was implicit only, and implicit answers name only tasks the
// master thinks non-terminal. The cluster stayed one voter short.
TEST_F(CoreTest, PeriodicReconciliationAsksExplicitlyAboutTasksThatMayLive) {
  Bootstrap();
  Actions tick;
  for (int i = 0; i < 20 && !Has<ReconcileTasks>(tick); ++i) {
    ProbeAll(1, 100 + i);
    tick = Advance(60s);
  }
  auto reconciles = All<ReconcileTasks>(tick);
  ASSERT_EQ(reconciles.size(), 2u);
  EXPECT_EQ(reconciles[0].tasks.size(), 3u) << "explicit: every task that may live";
  EXPECT_TRUE(reconciles[1].tasks.empty()) << "plus implicit, for tasks we do not know";
}

// A task whose agent has not re-registered with a restarted master is TASK_UNKNOWN, and when the
// agent comes back nothing is sent unasked (executors report changes of state only): the
// scheduler asks about exactly those tasks every 10 s until they are certain again.
TEST_F(CoreTest, AnUncertainTaskIsReconciledExplicitlyUntilItIsCertain) {
  auto launches = Bootstrap();
  const std::string uncertain = launches[1].member.task_id;
  Update(uncertain, mesos::TASK_UNKNOWN, launches[1].member.agent_id);
  auto asked = [&](Actions actions) {
    std::vector<ReconcileTasks> explicit_asks;
    for (auto& r : All<ReconcileTasks>(actions)) {
      if (!r.tasks.empty()) explicit_asks.push_back(r);
    }
    return explicit_asks;
  };
  size_t before = 0;
  for (int i = 0; i < 9; ++i) {
    ProbeAll(1, 100 + i);
    before += asked(Advance(1s)).size();
  }
  EXPECT_EQ(before, 0u) << "not before the interval";
  std::vector<ReconcileTasks> asks;
  for (int i = 0; i < 3 && asks.empty(); ++i) asks = asked(Advance(1s));
  ASSERT_EQ(asks.size(), 1u);
  ASSERT_EQ(asks[0].tasks.size(), 1u) << "only the uncertain task";
  EXPECT_EQ(asks[0].tasks[0].first, uncertain);
  EXPECT_EQ(asks[0].tasks[0].second, launches[1].member.agent_id);
  asks.clear();
  for (int i = 0; i < 11 && asks.empty(); ++i) asks = asked(Advance(1s));
  EXPECT_EQ(asks.size(), 1u) << "asked again while it stays uncertain";

  Update(uncertain, mesos::TASK_RUNNING, launches[1].member.agent_id);
  size_t after = 0;
  for (int i = 0; i < 30; ++i) {
    ProbeAll(1, 200 + i);
    after += asked(Advance(1s)).size();
  }
  EXPECT_EQ(after, 0u) << "certain again: no more asks";
}

// Found by the simulator (sim seed 600 before the fix): when every voter was gone and a learner
// survived, no member was asked for etcd's member list (only voters were), so etcd's view stayed
// unknown, no livelock episode could open, and no reseed (automatic or asked for) ever came.
TEST_F(CoreTest, ALearnerIsAskedForEtcdsViewWhenNoVoterIsLeft) {
  PersistentState stored;
  stored.framework_id = "F";
  stored.bootstrapped = true;
  ClusterView view;
  for (int i = 1; i <= 3; ++i) {
    Member m;
    m.name = "etcd-" + std::to_string(i);
    m.host = "127.0.0." + std::to_string(i + 1);
    m.agent_id = "S" + std::to_string(i);
    m.peer_port = 1;
    m.client_port = 2;
    m.reseed_port = 3;
    m.member_id = i;
    m.task_id = FormatTaskId(m);
    m.task_state = i < 3 ? mesos::TASK_GONE : mesos::TASK_RUNNING;
    m.learner = i == 3;
    stored.members[m.name] = m;
    view.members.push_back({m.member_id, m.name, {m.PeerUrl()}, m.learner});
  }
  const Member learner = stored.members["etcd-3"];
  Start(stored);
  Subscribe();
  Update(learner.task_id, mesos::TASK_RUNNING, learner.agent_id);
  auto probes = All<ProbeCluster>(Advance(1s));
  ASSERT_EQ(probes.size(), 1u);
  EXPECT_EQ(probes[0].client_urls, std::vector<std::string>{learner.ClientUrl()});
  On(ProbeResult{learner.name, MemberProbe{3, 0, 90, 2, true, false}, now_});
  On(ClusterProbeResult{view, now_, core_.membership_epoch()});
  AdvanceUntilLivelockIsConfirmed();
  EXPECT_TRUE(core_.livelocked()) << "two voters, neither answers: a reseed can follow";
}

// Found by the simulator (sim seed 230 before the fix): the scheduler restarted in the middle of
// a reseed and never heard the result. The survivor went on as a one-member cluster and grew; an
// old member kept running outside it, answering probes but following no leader, and since it
// held a place of the cluster size the cluster stayed one voter short forever.
TEST_F(CoreTest, AMemberOutsideEtcdsListThatFollowsNoLeaderIsStopped) {
  auto launches = Bootstrap();
  Advance(1s);
  const Member stray = launches[2].member;
  auto probe = [&] {
    ClusterView view;
    for (int i = 0; i < 2; ++i) {
      const Member& m = launches[i].member;
      On(ProbeResult{m.name, MemberProbe{ids_[m.name], 1, 300, 5, false, true}, now_});
      view.members.push_back({ids_[m.name], m.name, {m.PeerUrl()}, false});
    }
    On(ProbeResult{stray.name, MemberProbe{ids_[stray.name], 0, 250, 3, false, false}, now_});
    view.linearizable_read_ok = true;
    On(ClusterProbeResult{view, now_, core_.membership_epoch()});
  };
  probe();
  EXPECT_FALSE(Has<KillTask>(Advance(1s))) << "not within the grace period";
  Actions later;
  for (int i = 0; i < 12 && !Has<KillTask>(later); ++i) {
    probe();
    later = Advance(1s);
  }
  auto kills = All<KillTask>(later);
  ASSERT_EQ(kills.size(), 1u);
  EXPECT_EQ(kills[0].task_id, stray.task_id);
  EXPECT_TRUE(core_.healthy());
  EXPECT_FALSE(Has<ChangeMembership>(later)) << "it is in no member list: nothing to remove";
}

// Found by the simulator (sim seed 467 on the core before the fixes above): a member whose task
// ended kept its last probe answer ("reachable, follows leader 1") forever, because gone members
// are no longer probed. It went on voting for health and counting as a live voter when deciding
// whether a removal keeps quorum.
TEST_F(CoreTest, AGoneMembersLastProbeNoLongerCounts) {
  auto launches = Bootstrap();
  Advance(1s);
  ASSERT_TRUE(core_.healthy());
  Update(launches[1].member.task_id, mesos::TASK_FAILED, launches[1].member.agent_id);
  Update(launches[2].member.task_id, mesos::TASK_FAILED, launches[2].member.agent_id);
  auto tick = Advance(1s);
  EXPECT_FALSE(core_.healthy()) << "one of three voters is left: " << core_.health_reason();
  EXPECT_FALSE(Has<ChangeMembership>(tick)) << "removing either voter would cost quorum";
}

// Seen in CI (SchedulerHealing on etcd-mesos-local under ASan): a member list asked for just
// before a removal completed arrived just after it, still listing the removed member; the core
// took it for a stranger and removed it a second time (counting two removals for one death).
TEST_F(CoreTest, AMemberListAskedBeforeARemovalCompletedIsNotActedOn) {
  auto launches = Bootstrap();
  Advance(1s);
  const Member dead = launches[2].member;
  Update(dead.task_id, mesos::TASK_FAILED, dead.agent_id);
  ProbeAll(1, 120, {dead.name});
  auto asked = All<ProbeCluster>(Advance(1s));
  ASSERT_EQ(asked.size(), 1u);
  ClusterView stale;  // etcd's list when asked: the dead member is still in it
  for (const auto& l : launches) {
    stale.members.push_back({ids_[l.member.name], l.member.name, {l.member.PeerUrl()}, false});
  }
  stale.linearizable_read_ok = true;
  On(MembershipResult{MembershipOp::kRemove, dead.name, ids_[dead.name], OkStatus(), now_});
  EXPECT_EQ(core_.state().counters.members_removed, 1u);
  On(ClusterProbeResult{stale, now_, asked[0].epoch});
  auto after = Advance(1s);
  EXPECT_FALSE(Has<ChangeMembership>(after)) << "removed once already";
  EXPECT_EQ(core_.state().counters.members_removed, 1u);

  // The same list asked for after the change is evidence: etcd really does list a member that
  // no task of ours runs, so it goes.
  auto again = All<ProbeCluster>(Advance(1s));
  ASSERT_FALSE(again.empty());
  EXPECT_NE(again.back().epoch, asked[0].epoch);
  On(ClusterProbeResult{stale, now_, again.back().epoch});
  auto changes = All<ChangeMembership>(Advance(1s));
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].op, MembershipOp::kRemove);
  EXPECT_EQ(changes[0].member_id, ids_[dead.name]);
  // etcd answers "not found": it was gone after all; nothing more is counted.
  On(MembershipResult{MembershipOp::kRemove, "", ids_[dead.name],
                      Error{ErrorCode::kNotFound, "member not found"}, now_});
  EXPECT_EQ(core_.state().counters.members_removed, 1u);
}

// Seen in the fault suite on a loaded host: the members of a bootstrap started seconds apart,
// the first RUNNING one found no leader, and a "livelock episode" was counted for a cluster
// that had never formed: an alert for a normal deployment.
TEST_F(CoreTest, ABootstrapStillFormingIsNotLivelockUntilTheStagingTimeout) {
  Start();
  Subscribe();
  auto launches = All<LaunchMember>(ThreeOffers());
  ASSERT_EQ(launches.size(), 3u);
  Update(launches[0].member.task_id, mesos::TASK_RUNNING, launches[0].member.agent_id);
  ids_[launches[0].member.name] = 1;
  for (int i = 0; i < 10; ++i) {
    ProbeAll(/*leader=*/0, 5);
    Advance(1s);
  }
  EXPECT_FALSE(core_.livelocked()) << core_.health_reason();
  EXPECT_EQ(core_.state().counters.cluster_livelocks, 0u);
  // Never formed within the staging timeout: that is livelock (and may lead to a reseed).
  for (int i = 0; i < 200 && !core_.livelocked(); ++i) {
    ProbeAll(0, 5);
    Advance(1s);
  }
  EXPECT_TRUE(core_.livelocked());
  EXPECT_EQ(core_.state().counters.cluster_livelocks, 1u);
}

// Found by the simulator (sim seeds 21969 and 23523 before the fix): the scheduler died just after
// asking a survivor to stand alone. The restarted one did not know a reseed was under way: the
// members it had stopped (their kills lost to partitioned agents) came back as the old cluster,
// with a quorum, next to the reseeded survivor: two live clusters, and never healthy again.
// The reseed is now on record before its first kill, and a restarted scheduler finishes it.
TEST_F(CoreTest, AReseedInterruptedByARestartIsFinishedNotForgotten) {
  Bootstrap();
  Advance(1s);
  auto forced = On(AdminReseed{1, true, now_});
  auto triggers = All<TriggerReseed>(forced);
  ASSERT_EQ(triggers.size(), 1u);
  const std::string survivor = triggers[0].name;
  // Every write before the trigger carries the reseed, and the first comes before the kills.
  std::optional<PersistentState> written;
  for (const auto& a : forced) {
    if (const auto* p = std::get_if<Persist>(&a)) written = p->state;
    if (std::holds_alternative<KillTask>(a) || std::holds_alternative<TriggerReseed>(a)) {
      ASSERT_TRUE(written && written->reseed) << "a kill or trigger before the reseed is on record";
    }
  }
  EXPECT_EQ(written->reseed->candidates, std::vector<std::string>{survivor});
  EXPECT_EQ(written->reseed->next, 1u);

  // The scheduler dies; its successor starts from what was written. Its kills may never have
  // been sent: the survivor is asked again only once the others are stopped again.
  SchedulerCore restarted(Config());
  EXPECT_FALSE(Has<TriggerReseed>(restarted.Handle(Started{*written, now_})));
  EXPECT_TRUE(restarted.reseeding());
  auto subscribed = restarted.Handle(Subscribed{"F", now_});
  auto again = All<TriggerReseed>(subscribed);
  ASSERT_EQ(again.size(), 1u) << "the survivor is asked again";
  EXPECT_EQ(again[0].name, survivor);
  auto kills = All<KillTask>(subscribed);
  EXPECT_EQ(kills.size(), 2u) << "the others are stopped again";
  for (const auto& k : kills) EXPECT_NE(k.task_id.rfind(survivor + " ", 0), 0u);
  bool killed = false;
  for (const auto& a : subscribed) {
    killed = killed || std::holds_alternative<KillTask>(a);
    if (std::holds_alternative<TriggerReseed>(a)) {
      EXPECT_TRUE(killed) << "kills come first";
    }
  }
  // A reconnect later asks nobody again (the answer is on its way).
  restarted.Handle(Disconnected{"x", now_});
  EXPECT_FALSE(Has<TriggerReseed>(restarted.Handle(Subscribed{"F", now_})));
  // While the outcome is unknown, nothing else is done: no launch on offers.
  auto offers = restarted.Handle(OffersReceived{{MakeOffer(7)}, now_});
  EXPECT_FALSE(Has<LaunchMember>(offers));
  // The outcome: the old members leave the record, and the record of the reseed with them.
  auto done = restarted.Handle(ReseedResult{survivor, uint64_t{700}, now_});
  EXPECT_FALSE(restarted.reseeding());
  EXPECT_EQ(restarted.state().members.size(), 1u);
  EXPECT_EQ(restarted.state().generation, written->generation + 1);
  auto persists = All<Persist>(done);
  ASSERT_FALSE(persists.empty());
  EXPECT_FALSE(persists.back().state.reseed.has_value());
}

// An answer to a trigger from before a restart (or for a candidate given up on) is not the
// outcome of the reseed under way.
TEST_F(CoreTest, AReseedAnswerFromAnotherCandidateIsIgnored) {
  Bootstrap();
  Advance(1s);
  auto triggers = All<TriggerReseed>(On(AdminReseed{1, true, now_}));
  ASSERT_EQ(triggers.size(), 1u);
  std::string other;
  for (const auto& [name, m] : core_.state().members) {
    if (name != triggers[0].name) other = name;
  }
  On(ReseedResult{other, uint64_t{900}, now_});
  EXPECT_TRUE(core_.reseeding());
  EXPECT_EQ(core_.state().members.size(), 3u);
}

// Seen in the fault suite (majority loss) once the core acted on task updates at once: a probe
// answer sent before a member died arrived after its TASK_FAILED, marked it reachable again, and
// the cluster flapped back to "healthy" with one voter of three left.
TEST_F(CoreTest, AProbeAnswerArrivingAfterTheTaskEndedIsHistory) {
  auto launches = Bootstrap();
  Advance(1s);
  for (int i = 0; i < 2; ++i) {
    Update(launches[i].member.task_id, mesos::TASK_FAILED, launches[i].member.agent_id);
  }
  for (int i = 0; i < 2; ++i) {
    const Member& m = launches[i].member;
    On(ProbeResult{m.name, MemberProbe{ids_[m.name], 1, 100, 2, false, true}, now_});
  }
  Advance(1s);
  EXPECT_FALSE(core_.healthy()) << core_.health_reason();
  EXPECT_FALSE(core_.state().members.at(launches[0].member.name).reachable);
}

// ---- Maintenance: defragmentation and NOSPACE ---------------------------------------------

constexpr uint64_t kMiB = 1 << 20;

// Members past --defrag-threshold are defragmented one at a time, followers first and the leader
// last, each only once the one before answers again; then nothing more is asked.
TEST_F(CoreTest, FragmentedMembersAreDefragmentedOneAtATimeTheLeaderLast) {
  Bootstrap();
  Advance(6s);
  ASSERT_TRUE(core_.healthy());
  ProbeDatabases(100 * kMiB, 20 * kMiB, false);
  auto first = All<Maintain>(Advance(1s));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].op, MaintenanceOp::kDefragment);
  EXPECT_EQ(first[0].member, "etcd-2") << "etcd-1 leads: it goes last";
  EXPECT_NE(core_.maintenance().running.find("defragment etcd-2"), std::string::npos);
  EXPECT_TRUE(All<Maintain>(Advance(1s)).empty()) << "one step at a time";
  On(MaintenanceResult{first[0].id, MaintenanceOp::kDefragment, "etcd-2", OkStatus(), now_});
  EXPECT_TRUE(All<Maintain>(Advance(100ms)).empty()) << "etcd-2 has not answered since";
  ProbeDatabases(100 * kMiB, 20 * kMiB, false);
  EXPECT_TRUE(All<Maintain>(Advance(100ms)).empty())
      << "an answer within a probe interval may be to a probe sent before the defragmentation";
  Advance(1s);
  ProbeDatabases(100 * kMiB, 20 * kMiB, false);
  auto second = All<Maintain>(Advance(100ms));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].member, "etcd-3");
  On(MaintenanceResult{second[0].id, MaintenanceOp::kDefragment, "etcd-3", OkStatus(), now_});
  Advance(1s);
  ProbeDatabases(100 * kMiB, 20 * kMiB, false);
  auto third = All<Maintain>(Advance(100ms));
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].member, "etcd-1");
  On(MaintenanceResult{third[0].id, MaintenanceOp::kDefragment, "etcd-1", OkStatus(), now_});
  ProbeDatabases(20 * kMiB, 20 * kMiB, false);  // defragmented: nothing free any more
  EXPECT_TRUE(All<Maintain>(Advance(1s)).empty());
  EXPECT_EQ(core_.maintenance().members_defragmented, 3u);
  EXPECT_EQ(core_.maintenance().runs, 1u);
  EXPECT_TRUE(core_.maintenance().running.empty());
}

TEST_F(CoreTest, SmallOrDenseDatabasesAreLeftAlone) {
  Bootstrap();
  Advance(6s);
  ProbeDatabases(10 * kMiB, 1 * kMiB, false);  // 90% free, but below --defrag-min-size
  EXPECT_TRUE(All<Maintain>(Advance(1s)).empty());
  ProbeDatabases(100 * kMiB, 60 * kMiB, false);  // 40% free: below the threshold
  EXPECT_TRUE(All<Maintain>(Advance(1s)).empty());
}

// A run waits while the cluster is unhealthy and goes on when it is healthy again.
TEST_F(CoreTest, DefragmentationWaitsForHealth) {
  Bootstrap();
  Advance(6s);
  ProbeDatabases(100 * kMiB, 20 * kMiB, false);
  auto first = All<Maintain>(Advance(1s));
  ASSERT_EQ(first.size(), 1u);
  On(MaintenanceResult{first[0].id, MaintenanceOp::kDefragment, "etcd-2", OkStatus(), now_});
  ProbeAll(/*leader=*/0, 100);  // no leader
  auto unhealthy = Advance(1s);
  ASSERT_FALSE(core_.healthy());
  EXPECT_TRUE(All<Maintain>(unhealthy).empty());
  ProbeAll(/*leader=*/1, 101);
  auto next = All<Maintain>(Advance(1s));
  ASSERT_TRUE(core_.healthy());
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].member, "etcd-3");
}

// NOSPACE: compact to the newest revision, defragment every member, and disarm only once every
// database is below 90% of the quota.
TEST_F(CoreTest, NoSpaceIsCompactedDefragmentedAndDisarmedOnceThereIsRoom) {
  CoreConfig c = Config();
  c.quota_backend_bytes = 16 * kMiB;
  core_ = SchedulerCore(c);
  Bootstrap();
  Advance(6s);
  ProbeDatabases(17 * kMiB, 2 * kMiB, /*nospace=*/true, /*revision=*/77);
  auto tick = Advance(1s);
  EXPECT_EQ(core_.maintenance().nospace_alarms, 1u);
  EXPECT_TRUE(core_.maintenance().nospace);
  auto compact = All<Maintain>(tick);
  ASSERT_EQ(compact.size(), 1u);
  EXPECT_EQ(compact[0].op, MaintenanceOp::kCompact);
  EXPECT_EQ(compact[0].revision, 77u);
  EXPECT_EQ(compact[0].member, "etcd-1") << "through the leader";
  // The first defragmentation follows the compaction at once; each next one waits for the
  // member defragmented before it to answer a probe.
  auto step = All<Maintain>(
      On(MaintenanceResult{compact[0].id, MaintenanceOp::kCompact, "etcd-1", OkStatus(), now_}));
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(step.size(), 1u) << i;
    ASSERT_EQ(step[0].op, MaintenanceOp::kDefragment);
    order.push_back(step[0].member);
    EXPECT_TRUE(All<Maintain>(
                    On(MaintenanceResult{step[0].id, step[0].op, step[0].member, OkStatus(), now_}))
                    .empty());
    Advance(1s);
    ProbeDatabases(i < 2 ? 17 * kMiB : 2 * kMiB, 2 * kMiB, true, 77);
    step = All<Maintain>(Advance(100ms));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"etcd-2", "etcd-3", "etcd-1"}));
  auto disarm = step;
  ASSERT_EQ(disarm.size(), 1u);
  EXPECT_EQ(disarm[0].op, MaintenanceOp::kDisarmNoSpace);
  On(MaintenanceResult{disarm[0].id, disarm[0].op, disarm[0].member, OkStatus(), now_});
  EXPECT_EQ(core_.maintenance().nospace_cleared, 1u);
  EXPECT_FALSE(core_.maintenance().nospace);
  EXPECT_TRUE(All<Maintain>(Advance(100ms)).empty())
      << "the probes from before the disarm do not start it over";
  ProbeDatabases(2 * kMiB, 2 * kMiB, false, 77);
  EXPECT_TRUE(All<Maintain>(Advance(1s)).empty());
  EXPECT_FALSE(core_.maintenance().nospace);
  EXPECT_EQ(core_.maintenance().failures, 0u);
}

// If the data itself fills the quota, the alarm stays (etcd would raise it again at once) and the
// run stops with the reason; it is tried again only after --maintenance-retry.
TEST_F(CoreTest, NoSpaceIsNotDisarmedWhileTheDataItselfFillsTheQuota) {
  CoreConfig c = Config();
  c.quota_backend_bytes = 16 * kMiB;
  core_ = SchedulerCore(c);
  Bootstrap();
  Advance(6s);
  ProbeDatabases(17 * kMiB, 16 * kMiB, true);
  auto compact = All<Maintain>(Advance(1s));
  ASSERT_EQ(compact.size(), 1u);
  // Already compacted to that revision (auto-compaction got there first): done, not a failure.
  auto step = All<Maintain>(On(MaintenanceResult{
      compact[0].id, MaintenanceOp::kCompact, "etcd-1",
      Error{ErrorCode::kRefused, "etcdserver: mvcc: required revision has been compacted"}, now_}));
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(step.size(), 1u);
    ASSERT_EQ(step[0].op, MaintenanceOp::kDefragment);
    On(MaintenanceResult{step[0].id, step[0].op, step[0].member, OkStatus(), now_});
    Advance(1s);
    ProbeDatabases(16 * kMiB, 16 * kMiB, true);
    step = All<Maintain>(Advance(100ms));
  }
  EXPECT_TRUE(step.empty()) << "no disarm: no room";
  EXPECT_EQ(core_.maintenance().failures, 1u);
  EXPECT_NE(core_.maintenance().last_error.find("raise --quota-backend-bytes"), std::string::npos)
      << core_.maintenance().last_error;
  EXPECT_TRUE(All<Maintain>(Advance(60s)).empty()) << "not again before the retry interval";
  ProbeDatabases(16 * kMiB, 16 * kMiB, true);
  EXPECT_EQ(All<Maintain>(Advance(c.maintenance_retry)).size(), 1u) << "tried again";
}

TEST_F(CoreTest, TheOperatorsDefragIsRefusedUnlessHealthyAndRunsOnceAtATime) {
  Bootstrap();
  Advance(6s);
  ProbeAll(/*leader=*/0, 100);
  Advance(1s);
  ASSERT_FALSE(core_.healthy());
  auto refused = All<AnswerAdmin>(On(AdminDefrag{1, now_}));
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].http_status, 409);
  EXPECT_NE(refused[0].message.find("not healthy"), std::string::npos);
  ProbeAll(/*leader=*/1, 101);
  Advance(1s);
  auto asked = On(AdminDefrag{2, now_});
  auto answer = All<AnswerAdmin>(asked);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].http_status, 202);
  EXPECT_NE(answer[0].message.find("etcd-2, etcd-3, etcd-1"), std::string::npos)
      << answer[0].message;
  ASSERT_EQ(All<Maintain>(asked).size(), 1u);
  auto again = All<AnswerAdmin>(On(AdminDefrag{3, now_}));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].http_status, 409);
  // A failed step stops the run with the reason.
  On(MaintenanceResult{All<Maintain>(asked)[0].id, MaintenanceOp::kDefragment, "etcd-2",
                       Error{ErrorCode::kUnavailable, "deadline exceeded"}, now_});
  EXPECT_EQ(core_.maintenance().failures, 1u);
  EXPECT_NE(core_.maintenance().last_error.find("defragment on etcd-2 failed"), std::string::npos);
}

// ---- Rollouts -------------------------------------------------------------------------------

// A rolling restart replaces each member once: followers first, each successor added and
// promoted before the member goes, the leader last after leadership moved to a member already
// replaced.
TEST_F(CoreTest, ARolloutReplacesEachMemberOnceFollowersFirstAndTheLeaderLastAfterMovingIt) {
  WithLaunch("lc-A");
  Bootstrap();
  Advance(6s);
  ASSERT_TRUE(core_.healthy());
  EXPECT_EQ(core_.rollout().state, "idle");
  auto asked = On(AdminRollout{1, RolloutCommand::kRestart, now_});
  ASSERT_EQ(All<AnswerAdmin>(asked).size(), 1u);
  EXPECT_EQ(All<AnswerAdmin>(asked)[0].http_status, 202);
  EXPECT_EQ(core_.state().restarts, 1u);
  EXPECT_TRUE(Has<Persist>(asked)) << "on record before anything changes";
  auto begin = Advance(1s);
  EXPECT_TRUE(Has<Revive>(begin)) << "one member more is wanted: the first successor";
  EXPECT_EQ(core_.rollout().state, "running");
  EXPECT_EQ(core_.rollout().pending, (std::vector<std::string>{"etcd-2", "etcd-3", "etcd-1"}));

  // etcd-2 first: its successor etcd-4 on agent 4, then etcd-2 is removed.
  auto after = Successor(4, 10, /*leader=*/1);
  auto removal = All<ChangeMembership>(after);
  ASSERT_EQ(removal.size(), 1u);
  EXPECT_EQ(removal[0].op, MembershipOp::kRemove);
  EXPECT_EQ(removal[0].name, "etcd-2");
  EXPECT_EQ(All<KillTask>(after).size(), 1u);
  Removed("etcd-2");
  ProbeAll(1, 140);
  Advance(1s);  // settled
  ProbeAll(1, 141);
  Advance(1s);  // the next step: etcd-3, its successor on agent 2 (etcd-2's, free again)
  after = Successor(2, 11, /*leader=*/1);
  removal = All<ChangeMembership>(after);
  ASSERT_EQ(removal.size(), 1u);
  EXPECT_EQ(removal[0].name, "etcd-3");
  Removed("etcd-3");
  ProbeAll(1, 150);
  Advance(1s);
  ProbeAll(1, 151);
  Advance(1s);

  // etcd-1 leads: after its successor, leadership moves first to a replaced member.
  after = Successor(3, 12, /*leader=*/1);
  auto move = All<ChangeMembership>(after);
  ASSERT_EQ(move.size(), 1u);
  EXPECT_EQ(move[0].op, MembershipOp::kMoveLeader);
  EXPECT_NE(move[0].name, "etcd-1");
  ASSERT_FALSE(move[0].client_urls.empty());
  EXPECT_EQ(move[0].client_urls[0], core_.state().members.at("etcd-1").ClientUrl())
      << "MoveLeader is sent to the leader";
  EXPECT_TRUE(All<ChangeMembership>(Advance(1s)).empty()) << "one change at a time";
  On(MembershipResult{MembershipOp::kMoveLeader, move[0].name, move[0].member_id, OkStatus(),
                      now_});
  ProbeAll(move[0].member_id, 160);
  removal = All<ChangeMembership>(Advance(1s));
  ASSERT_EQ(removal.size(), 1u);
  EXPECT_EQ(removal[0].op, MembershipOp::kRemove);
  EXPECT_EQ(removal[0].name, "etcd-1");
  Removed("etcd-1");
  ProbeAll(move[0].member_id, 170);
  Advance(1s);
  ProbeAll(move[0].member_id, 171);
  Advance(1s);
  EXPECT_EQ(core_.rollout().state, "done");
  EXPECT_TRUE(core_.rollout().pending.empty());
  EXPECT_EQ(core_.state().counters.members_rolled, 3u);
  EXPECT_EQ(core_.state().counters.rollouts_done, 1u);
  EXPECT_EQ(core_.state().members.size(), 3u);
  for (const auto& [name, m] : core_.state().members) {
    EXPECT_EQ(m.launch_config, core_.EffectiveLaunch()) << name;
  }
  EXPECT_TRUE(All<ChangeMembership>(Offers({MakeOffer(5)})).empty()) << "nothing more to do";
}

// Certificates are renewed before they expire: members whose certificates expire within
// cert_renew_before are replaced one at a time, followers first and the leader last, each
// successor with certificates of its own. Judged at the wall clock the ticks carry (no waiting);
// nothing is renewed early, and a successor with fresh certificates is not replaced again.
TEST_F(CoreTest, ExpiringCertificatesAreRenewedByReplacingEachMemberOnce) {
  WithTlsLaunch("lc-A");
  Bootstrap();
  constexpr int64_t kExpiry = 2'000'000'000, kDay = 86'400;
  std::vector<std::string> tasks;
  for (const auto& [name, m] : core_.state().members) tasks.push_back(m.task_id);
  for (const auto& task : tasks) On(CertificateIssued{task, kExpiry});
  Advance(6s);
  ASSERT_TRUE(core_.healthy());

  now_ += 1s;
  On(Tick{now_, kExpiry - 31 * kDay});
  EXPECT_EQ(core_.rollout().state, "idle") << "31 days left: not yet";
  EXPECT_TRUE(core_.rollout().pending.empty());

  now_ += 1s;
  auto begun = On(Tick{now_, kExpiry - 29 * kDay});
  EXPECT_EQ(core_.rollout().state, "running");
  EXPECT_EQ(core_.rollout().pending, (std::vector<std::string>{"etcd-2", "etcd-3", "etcd-1"}));
  bool said = false;
  for (const auto& n : All<Note>(begun)) {
    said |= n.message.find("certificates renewed") != std::string::npos;
  }
  EXPECT_TRUE(said) << "the timeline says why the members are replaced";

  // etcd-2 first: its successor (etcd-4) is added, gets certificates of its own, and etcd-2 goes.
  auto after = Successor(4, 10, /*leader=*/1);
  auto removal = All<ChangeMembership>(after);
  ASSERT_EQ(removal.size(), 1u);
  EXPECT_EQ(removal[0].op, MembershipOp::kRemove);
  EXPECT_EQ(removal[0].name, "etcd-2");
  said = false;
  for (const auto& n : All<Note>(after)) {
    said |= n.message.find("removing member etcd-2") != std::string::npos &&
            n.message.find("its certificates expire within 30d") != std::string::npos;
  }
  EXPECT_TRUE(said) << "the removal says it is for the certificates";
  const Member& successor = core_.state().members.at("etcd-4");
  EXPECT_TRUE(successor.tls);
  On(CertificateIssued{successor.task_id, kExpiry - 29 * kDay + 365 * kDay});
  Removed("etcd-2");
  EXPECT_EQ(core_.rollout().pending, (std::vector<std::string>{"etcd-3", "etcd-1"}))
      << "the successor's certificates are fresh";
}

// A scheduler that comes back after its members' certificates expired (it was down longer than
// cert_renew_before) renews them the same way, while the members still keep their quorum over
// the peer connections they hold: the clock is passed in, a day past the expiry.
TEST_F(CoreTest, AlreadyExpiredCertificatesAreRenewedOneMemberAtATime) {
  WithTlsLaunch("lc-A");
  Bootstrap();
  constexpr int64_t kExpiry = 2'000'000'000, kDay = 86'400;
  for (const auto& [name, m] : core_.state().members) On(CertificateIssued{m.task_id, kExpiry});
  Advance(6s);
  ASSERT_TRUE(core_.healthy());

  now_ += 1s;
  On(Tick{now_, kExpiry + kDay});
  EXPECT_EQ(core_.rollout().state, "running");
  EXPECT_EQ(core_.rollout().pending, (std::vector<std::string>{"etcd-2", "etcd-3", "etcd-1"}));
  auto after = Successor(4, 10, /*leader=*/1);
  auto removal = All<ChangeMembership>(after);
  ASSERT_EQ(removal.size(), 1u) << "one member at a time, its successor added first";
  EXPECT_EQ(removal[0].name, "etcd-2");
  On(CertificateIssued{core_.state().members.at("etcd-4").task_id, kExpiry + 366 * kDay});
  Removed("etcd-2");
  EXPECT_EQ(core_.rollout().pending, (std::vector<std::string>{"etcd-3", "etcd-1"}));
}

// With --tls=files, the CA files the members run are recorded at the first start (an upgrade
// replaces nothing). A scheduler restarted with changed files rolls every member once per change;
// the three steps of a CA rotation are accepted in turn, each once the last is rolled out, and a
// change that would leave members refusing each other is refused with how to do it.
TEST_F(CoreTest, ChangedCaFilesRollEveryMemberOnceAndAnUnsafeChangeIsRefused) {
  auto files_config = [&](CaFiles files) {
    CoreConfig c = Config();
    c.tls = true;
    c.ca_files = std::move(files);
    return c;
  };
  auto with_files = [&](CaFiles files) { WithLaunch(files_config(files), "lc-A", "3.4.23"); };
  auto restart = [&](CaFiles files) { RestartWith(files_config(files), "lc-A", "3.4.23"); };
  const CaFiles old_only{"OLD", {"OLD"}, 0}, trust_both{"OLD", {"NEW", "OLD"}, 0},
      new_issues{"NEW", {"NEW", "OLD"}, 0}, new_only{"NEW", {"NEW"}, 0};
  with_files(old_only);
  Bootstrap();
  Advance(6s);
  ASSERT_TRUE(core_.healthy());
  EXPECT_EQ(core_.state().ca_files.issuer, "OLD") << "recorded at the first start";
  EXPECT_EQ(core_.EffectiveLaunch(), "lc-A") << "the first files recorded roll nothing";

  auto refused = [&](const CaFiles& next, const std::string& why) {
    auto got = CaFilesChangeRefused(core_.state(), next);
    ASSERT_TRUE(got.has_value()) << why;
    EXPECT_NE(got->find(why), std::string::npos) << *got;
    EXPECT_NE(got->find("three restarts"), std::string::npos) << *got;
  };
  refused(new_only, "does not trust the CA that issued the running members' certificates");
  refused(new_issues, "do not trust the new issuing CA");
  EXPECT_FALSE(CaFilesChangeRefused(core_.state(), old_only)) << "unchanged";

  uint64_t leader = 1, next_id = 10;
  const std::pair<CaFiles, std::string> steps[] = {
      {trust_both, "lc-A+files1"}, {new_issues, "lc-A+files2"}, {new_only, "lc-A+files3"}};
  for (size_t n = 0; n < 3; ++n) {
    const auto& [files, launch] = steps[n];
    SCOPED_TRACE(launch);
    ASSERT_FALSE(CaFilesChangeRefused(core_.state(), files));
    restart(files);
    EXPECT_EQ(core_.EffectiveLaunch(), launch);
    EXPECT_EQ(core_.state().ca_files.changes, n + 1);
    EXPECT_EQ(core_.rollout().state, "running");
    EXPECT_EQ(core_.rollout().pending.size(), 3u) << "every member, once";
    if (n + 1 < 3) {
      // The next step must wait until every member runs this one.
      refused(steps[n + 1].first, "still runs the ones before the last change");
    }
    Advance(1s);
    EXPECT_EQ(FinishRollout(leader, next_id).size(), 3u);
    Advance(5s);
    EXPECT_EQ(core_.rollout().state, "done");
    for (const auto& [name, m] : core_.state().members) EXPECT_EQ(m.launch_config, launch) << name;
  }
  restart(new_only);
  EXPECT_EQ(core_.state().ca_files.changes, 3u) << "a restart with the same files changes nothing";
  EXPECT_TRUE(core_.rollout().pending.empty());
  EXPECT_EQ(core_.state().counters.cluster_livelocks, 0u);
}

// POST /rotate-ca rotates the members' CA in three rollouts, each replacing every member once
// (followers first, the leader last): trust both CAs, then certificates of the new CA, then trust
// the new CA alone. Each phase begins only when every member runs the one before and the operator
// (whose clients must first trust the new CA, then hold its certificates) says POST
// /rotate-ca/next; the launch configuration of a finished rotation names its generation, so
// finishing rolls nothing more.
TEST_F(CoreTest, ACaRotationRollsEveryMemberOncePerPhaseThePhasesInTurn) {
  WithTlsLaunch("lc-A");
  Bootstrap();
  Advance(6s);
  ASSERT_TRUE(core_.healthy());
  EXPECT_EQ(core_.EffectiveLaunch(), "lc-A") << "a cluster that never rotated keeps its config";
  auto status = [&](RolloutCommand command, uint64_t request) {
    auto answers = All<AnswerAdmin>(On(AdminRollout{request, command, now_}));
    return answers.size() == 1 ? answers[0].http_status : -1;
  };
  EXPECT_EQ(status(RolloutCommand::kNextCaPhase, 1), 409) << "no rotation to move on";

  auto asked = On(AdminRollout{2, RolloutCommand::kRotateCa, now_});
  ASSERT_EQ(All<AnswerAdmin>(asked).size(), 1u);
  EXPECT_EQ(All<AnswerAdmin>(asked)[0].http_status, 202);
  EXPECT_TRUE(Has<Persist>(asked)) << "on record before anything changes";
  EXPECT_EQ(core_.state().ca.phase, CaPhase::kTrustBoth);
  auto again = All<AnswerAdmin>(On(AdminRollout{3, RolloutCommand::kRotateCa, now_}));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].http_status, 409);
  EXPECT_NE(again[0].message.find("under way"), std::string::npos) << again[0].message;
  EXPECT_EQ(status(RolloutCommand::kRestart, 4), 409) << "no rolling restart on top";

  uint64_t leader = 1, next_id = 10;
  const std::pair<CaPhase, std::string> phases[] = {{CaPhase::kTrustBoth, "lc-A+ca1-trust"},
                                                    {CaPhase::kNewIssuer, "lc-A+ca1-issue"},
                                                    {CaPhase::kDropOld, "lc-A+ca1"}};
  for (const auto& [phase, launch] : phases) {
    SCOPED_TRACE(std::string(CaPhaseName(phase)));
    ASSERT_EQ(core_.state().ca.phase, phase);
    EXPECT_EQ(core_.EffectiveLaunch(), launch);
    Advance(1s);
    EXPECT_EQ(core_.rollout().state, "running");
    EXPECT_EQ(core_.rollout().pending.size(), 3u) << "every member, once";
    EXPECT_NE(core_.rollout().target_summary.find("CA rotation to CA 1"), std::string::npos)
        << core_.rollout().target_summary;
    EXPECT_EQ(status(RolloutCommand::kNextCaPhase, 5), 409) << "not while members are rolled";
    auto replaced = FinishRollout(leader, next_id);
    ASSERT_EQ(replaced.size(), 3u);
    EXPECT_EQ(core_.state().members.size(), 3u);
    for (const auto& [name, m] : core_.state().members) EXPECT_EQ(m.launch_config, launch) << name;
    if (phase == CaPhase::kDropOld) break;
    // Every member runs the phase: the rotation waits for the operator's clients.
    Advance(5s);
    EXPECT_EQ(core_.state().ca.phase, phase);
    EXPECT_EQ(core_.rollout().state, "done");
    EXPECT_TRUE(core_.rollout().pending.empty());
    EXPECT_EQ(status(RolloutCommand::kNextCaPhase, 6), 202);
  }
  EXPECT_EQ(core_.state().ca.phase, CaPhase::kNone);
  EXPECT_EQ(core_.state().ca.generation, 1u);
  EXPECT_EQ(core_.EffectiveLaunch(), "lc-A+ca1");
  EXPECT_EQ(core_.state().counters.rollouts_done, 3u);
  EXPECT_EQ(core_.state().counters.members_rolled, 9u);
  Advance(1s);
  EXPECT_EQ(core_.rollout().state, "done");
  EXPECT_TRUE(core_.rollout().pending.empty()) << "finishing the rotation rolls nothing more";
  EXPECT_EQ(status(RolloutCommand::kNextCaPhase, 7), 409) << "nothing left to move on";
  EXPECT_TRUE(All<ChangeMembership>(Offers({MakeOffer(6)})).empty());
}

// Without TLS there is no CA to rotate.
TEST_F(CoreTest, ACaRotationIsRefusedWithoutTls) {
  WithLaunch("lc-A");
  Bootstrap();
  Advance(6s);
  auto answer = All<AnswerAdmin>(On(AdminRollout{1, RolloutCommand::kRotateCa, now_}));
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].http_status, 409);
  EXPECT_NE(answer[0].message.find("--tls=off"), std::string::npos) << answer[0].message;
  EXPECT_EQ(core_.state().ca.phase, CaPhase::kNone);
}

// A scheduler started with another launch configuration rolls the members it finds; with no
// agent offering room for a successor within the surge wait, a follower is replaced in place.
TEST_F(CoreTest, ANewLaunchConfigurationRollsOutAndWithoutASpareAgentReplacesInPlace) {
  WithLaunch("lc-A");
  Bootstrap();
  RestartWithLaunch("lc-B");
  ASSERT_TRUE(core_.healthy());
  EXPECT_EQ(core_.rollout().pending.size(), 3u);
  Advance(1s);
  ASSERT_EQ(core_.rollout().state, "running");
  ProbeAll(1, 101);
  EXPECT_TRUE(All<ChangeMembership>(Advance(30s)).empty()) << "waiting for a spare agent";
  ProbeAll(1, 102);
  auto in_place = Advance(31s);
  auto removal = All<ChangeMembership>(in_place);
  ASSERT_EQ(removal.size(), 1u);
  EXPECT_EQ(removal[0].op, MembershipOp::kRemove);
  EXPECT_EQ(removal[0].name, "etcd-2");
  Removed("etcd-2");
  ProbeAll(1, 103);
  Advance(1s);
  // Its successor comes as a heal would: on the agent it left.
  auto adds = All<ChangeMembership>(Offers({MakeOffer(2)}));
  ASSERT_EQ(adds.size(), 1u);
  EXPECT_EQ(adds[0].op, MembershipOp::kAddLearner);
}

// A version etcd cannot take is refused with the reason, and no member is launched with it.
TEST_F(CoreTest, AnEtcdVersionThatSkipsAMinorVersionIsRefusedAndNothingIsLaunchedWithIt) {
  WithLaunch("lc-A");
  Bootstrap();
  RestartWithLaunch("lc-B", "3.6.0");
  auto tick = Advance(1s);
  EXPECT_EQ(core_.rollout().state, "stopped");
  EXPECT_NE(core_.rollout().reason.find("one minor version at a time"), std::string::npos)
      << core_.rollout().reason;
  EXPECT_EQ(core_.state().counters.rollouts_stopped, 1u);
  auto resumed = All<AnswerAdmin>(On(AdminRollout{2, RolloutCommand::kResume, now_}));
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0].http_status, 409) << resumed[0].message;
  // A member dies: its replacement would run 3.6 next to 3.4, so none is added.
  const Member dead = core_.state().members.at("etcd-3");
  Update(dead.task_id, mesos::TASK_FAILED, dead.agent_id);
  On(MembershipResult{MembershipOp::kRemove, "etcd-3", ids_["etcd-3"], OkStatus(), now_});
  ids_.erase("etcd-3");
  ProbeAll(1, 110);
  Advance(1s);
  EXPECT_TRUE(All<ChangeMembership>(Offers({MakeOffer(4)})).empty());
}

// A step that does not finish within the step timeout stops the rollout with the reason; the
// operator's resume goes on.
TEST_F(CoreTest, AStuckRolloutStopsWithTheReasonAndResumes) {
  CoreConfig c = Config();
  c.launch_config = "lc-A";
  c.auto_reseed = false;  // the livelock below is left to the operator
  core_ = SchedulerCore(c);
  Bootstrap();
  Advance(6s);
  On(AdminRollout{1, RolloutCommand::kRestart, now_});
  Advance(1s);
  ASSERT_EQ(core_.rollout().state, "running");
  ProbeAll(/*leader=*/0, 100);  // the cluster loses its leader for good
  for (int i = 0; i < 11; ++i) Advance(60s);
  EXPECT_EQ(core_.rollout().state, "stopped");
  EXPECT_NE(core_.rollout().reason.find("did not finish within 600 s"), std::string::npos)
      << core_.rollout().reason;
  ProbeAll(1, 200);
  Advance(6s);
  auto resumed = All<AnswerAdmin>(On(AdminRollout{2, RolloutCommand::kResume, now_}));
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0].http_status, 202) << resumed[0].message;
  Advance(1s);
  EXPECT_EQ(core_.rollout().state, "running");
  auto again = All<AnswerAdmin>(On(AdminRollout{3, RolloutCommand::kRestart, now_}));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].http_status, 409) << "one rollout at a time";
}

// With backups on, a rollout backs the cluster up before it touches the first member, and its
// first step waits for that backup.
TEST_F(CoreTest, ARolloutBacksUpFirstWhenBackupsAreOn) {
  CoreConfig c = BackupConfig();
  c.launch_config = "lc-A";
  c.etcd_version = "3.4.23";
  core_ = SchedulerCore(c);
  Bootstrap();
  auto periodic = All<TakeBackup>(Advance(1s));
  ASSERT_EQ(periodic.size(), 1u);
  On(BackupResult{periodic[0].id, Done(periodic[0].member), now_});
  ProbeAll(1, 101);
  Advance(6s);
  On(AdminRollout{1, RolloutCommand::kRestart, now_});
  auto begin = Advance(1s);
  auto backups = All<TakeBackup>(begin);
  ASSERT_EQ(backups.size(), 1u) << "a fresh backup before the rollout";
  EXPECT_EQ(backups[0].reason, "before the rollout");
  EXPECT_FALSE(Has<Revive>(begin)) << "no successor until the backup is written";
  ProbeAll(1, 102);
  EXPECT_TRUE(All<ChangeMembership>(Offers({MakeOffer(4)})).empty());
  On(BackupResult{backups[0].id, Done(backups[0].member), now_});
  ProbeAll(1, 103);
  Advance(1s);
  auto adds = All<ChangeMembership>(Offers({MakeOffer(4)}));
  ASSERT_EQ(adds.size(), 1u);
  EXPECT_EQ(adds[0].op, MembershipOp::kAddLearner);
}

// Records from before rollouts have no launch configuration: adopted, not all replaced at once.
TEST_F(CoreTest, MembersRecordedWithoutALaunchConfigurationAreAdopted) {
  Bootstrap();  // rollouts off: no labels
  PersistentState stored = core_.state();
  for (const auto& [name, m] : stored.members) EXPECT_TRUE(m.launch_config.empty());
  WithLaunch("lc-A");
  Start(stored);
  for (const auto& [name, m] : core_.state().members) EXPECT_EQ(m.launch_config, "lc-A");
  EXPECT_TRUE(core_.rollout().pending.empty());
}

// ---- Corruption: hash checks -------------------------------------------------------------

// ---- Durable members: restart in place, the replacement policy, releases -------------------

class DurableTest : public CoreTest {
 protected:
  DurableTest() {
    CoreConfig c = Config();
    c.role = "etcd";
    c.replace_after = 300s;
    core_ = SchedulerCore(c);
  }
  // An offer from `agent` holding `m`'s reserved resources and volume, as Mesos offers them back.
  static mesos::Offer OfferWithVolume(int agent, const Member& m, const std::string& cluster) {
    mesos::Offer o = MakeOffer(agent, {{32000, 32100}}, 1, 512, 1024);
    mesos::Resource disk;
    disk.set_name("disk");
    disk.set_type(mesos::Value::SCALAR);
    disk.mutable_scalar()->set_value(256);
    auto* reservation = disk.add_reservations();
    reservation->set_type(mesos::Resource::ReservationInfo::DYNAMIC);
    reservation->set_role("etcd");
    for (const auto& [key, value] : {std::pair<std::string, std::string>{kLabelCluster, cluster},
                                     {kLabelMember, m.name},
                                     {kLabelVolume, m.volume}}) {
      auto* label = reservation->mutable_labels()->add_labels();
      label->set_key(key);
      label->set_value(value);
    }
    disk.mutable_disk()->mutable_persistence()->set_id(m.volume);
    disk.mutable_disk()->mutable_volume()->set_container_path("data");
    disk.mutable_disk()->mutable_volume()->set_mode(mesos::Volume::RW);
    *o.add_resources() = disk;
    return o;
  }
};

TEST_F(DurableTest, MembersAreLaunchedOnReservedResourcesAndAVolumeNamedForThem) {
  auto launches = Bootstrap();
  ASSERT_EQ(launches.size(), 3u);
  std::set<std::string> volumes;
  for (const auto& l : launches) {
    EXPECT_TRUE(l.reserve) << l.member.name << ": RESERVE and CREATE with the first launch";
    EXPECT_EQ(l.member.volume, "etcd-test.g0." + l.member.name);
    volumes.insert(l.member.volume);
    EXPECT_EQ(core_.state().members.at(l.member.name).volume, l.member.volume) << "on record";
  }
  EXPECT_EQ(volumes.size(), 3u);
}

// A member whose task ends by itself comes back on its own volume as the same etcd member: no
// removal, no learner, the same name with a restart count in its task id.
TEST_F(DurableTest, AMemberWhoseTaskEndsIsRestartedInPlaceWithoutAMembershipChange) {
  auto launches = Bootstrap();
  Advance(1s);
  Member m = core_.state().members.at(launches[1].member.name);
  auto ended = Update(m.task_id, mesos::TASK_FAILED, m.agent_id);
  ProbeAll(1, 101, {m.name});
  auto later = Advance(30s);
  later.insert(later.end(), ended.begin(), ended.end());
  EXPECT_FALSE(Has<ChangeMembership>(later)) << "no removal while it may come back";
  auto relaunch = All<LaunchMember>(Offers({OfferWithVolume(2, m, "etcd-test")}));
  ASSERT_EQ(relaunch.size(), 1u);
  EXPECT_EQ(relaunch[0].member.name, m.name);
  EXPECT_FALSE(relaunch[0].reserve) << "its resources are reserved already";
  EXPECT_FALSE(relaunch[0].new_cluster);
  EXPECT_EQ(relaunch[0].member.task_id, FormatTaskId(m) + " r1");
  EXPECT_EQ(relaunch[0].member.member_id, m.member_id) << "the same etcd member";
  EXPECT_EQ(core_.state().members.at(m.name).task_id, m.task_id + " r1");
  auto parsed = ParseTaskId(relaunch[0].member.task_id);
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed->restarts, 1u);
  Update(relaunch[0].member.task_id, mesos::TASK_RUNNING, m.agent_id);
  ProbeAll(1, 102);
  Advance(1s);
  EXPECT_TRUE(core_.healthy()) << core_.health_reason();
  EXPECT_EQ(core_.state().counters.members_removed, 0u);
  EXPECT_EQ(core_.state().counters.members_added, 0u);
}

// Not back within --replace-after: replaced as a member without a volume is, the note says why.
TEST_F(DurableTest, AMemberNotBackWithinReplaceAfterIsReplaced) {
  auto launches = Bootstrap();
  Advance(1s);
  Member m = core_.state().members.at(launches[2].member.name);
  Update(m.task_id, mesos::TASK_LOST, m.agent_id);
  Actions removal;
  for (int i = 0; i < 320 && !Has<ChangeMembership>(removal); i += 10) {
    ProbeAll(1, 101, {m.name});
    removal = Advance(10s);
    if (i < 290) {
      ASSERT_FALSE(Has<ChangeMembership>(removal)) << "removed after " << i << " s";
    }
  }
  auto changes = All<ChangeMembership>(removal);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].op, MembershipOp::kRemove);
  EXPECT_EQ(changes[0].name, m.name);
  bool said = false;
  for (const auto& n : All<Note>(removal)) {
    said |= n.message.find("not restarted in place on its volume within 5m") != std::string::npos;
  }
  EXPECT_TRUE(said);
}

// Every member ended at once (their hosts rebooted, say), each with its data on its volume: no
// total loss while they may come back within --replace-after, and each is restarted in place
// when its agent offers its volume back. The simulator (seed 533) met the loss reported at once,
// after which nothing was ever restarted.
TEST_F(DurableTest, MembersThatMayComeBackOnTheirVolumesAreNoTotalLoss) {
  auto launches = Bootstrap();
  Advance(1s);
  for (const auto& l : launches) Update(l.member.task_id, mesos::TASK_GONE, l.member.agent_id);
  Advance(10s);
  EXPECT_FALSE(core_.total_loss()) << "their volumes may come back";
  Member m = core_.state().members.at(launches[0].member.name);
  auto relaunch = All<LaunchMember>(Offers({OfferWithVolume(1, m, "etcd-test")}));
  ASSERT_EQ(relaunch.size(), 1u);
  EXPECT_EQ(relaunch[0].member.name, m.name);
  EXPECT_FALSE(relaunch[0].reserve);
}

// None back within --replace-after: that is a total loss.
TEST_F(DurableTest, MembersNotBackOnTheirVolumesWithinReplaceAfterAreATotalLoss) {
  auto launches = Bootstrap();
  Advance(1s);
  for (const auto& l : launches) Update(l.member.task_id, mesos::TASK_GONE, l.member.agent_id);
  Advance(290s);
  EXPECT_FALSE(core_.total_loss());
  Advance(11s);
  EXPECT_TRUE(core_.total_loss());
}

// A durable core looks at every agent's offers for a while after each periodic reconciliation,
// whatever it remembers: a reservation no watch holds (the scheduler that watched it restarted,
// or the release was lost with the connection) is offered, and released, then. The simulator
// (seeds 150, 463, 948) met such reservations never offered to a suppressed scheduler again.
TEST_F(DurableTest, OffersAreWantedForAWhileAfterEachPeriodicReconciliation) {
  Bootstrap();
  Advance(1s);
  EXPECT_FALSE(Has<Revive>(Advance(1s))) << "nothing needed: offers suppressed";
  auto reconciled = Advance(Config().reconcile_interval);
  ASSERT_TRUE(Has<ReconcileTasks>(reconciled));
  EXPECT_TRUE(Has<Revive>(reconciled));
  EXPECT_FALSE(Has<Suppress>(Advance(5s)));
  EXPECT_TRUE(Has<Suppress>(Advance(6s))) << "until the sweep is over";
}

// A member restarted in place that fails again before it runs gets no new --replace-after:
// counted from when it first ended, it is replaced once that has passed, not restarted on its
// volume for ever (sim --seed=102554 --durable=on: a member whose etcd could not start on its
// data was restarted in place every 20 s through the whole calm, and no loss was ever reported).
TEST_F(DurableTest, RestartsInPlaceThatFailDoNotPutOffTheReplacement) {
  auto launches = Bootstrap();
  Advance(1s);
  Member m = core_.state().members.at(launches[1].member.name);
  Update(m.task_id, mesos::TASK_FAILED, m.agent_id);
  Advance(200s);
  auto first = All<LaunchMember>(Offers({OfferWithVolume(2, m, "etcd-test")}));
  ASSERT_EQ(first.size(), 1u);
  Update(first[0].member.task_id, mesos::TASK_FAILED, m.agent_id);
  Advance(101s);
  Member again = core_.state().members.at(m.name);
  for (const auto& l : All<LaunchMember>(Offers({OfferWithVolume(2, again, "etcd-test")}))) {
    EXPECT_NE(l.member.name, m.name) << "restarted again " << 301 << " s after it first ended";
  }
}

// The members a reseed stopped stay stopped if it fails: not restarted in place on their
// volumes, which would bring the old cluster back beside a survivor that may already stand alone
// (sim --seed=103182 --durable=on: two clusters with quorum).
TEST_F(DurableTest, MembersAReseedStoppedAreNotRestartedInPlaceWhenItFails) {
  auto launches = Bootstrap();
  Advance(1s);
  auto forced = On(AdminReseed{1, true, now_});
  auto triggers = All<TriggerReseed>(forced);
  ASSERT_EQ(triggers.size(), 1u);
  auto kills = All<KillTask>(forced);
  ASSERT_EQ(kills.size(), 2u);
  for (const auto& k : kills) Update(k.task_id, mesos::TASK_KILLED, k.agent_id);
  On(ReseedResult{triggers[0].name, Error{ErrorCode::kUnavailable, "x"}, now_});
  ASSERT_FALSE(core_.reseeding());
  Advance(1s);
  for (size_t i = 0; i < launches.size(); ++i) {
    const std::string& name = launches[i].member.name;
    if (name == triggers[0].name) continue;
    Member m = core_.state().members.at(name);
    auto out = Offers({OfferWithVolume(static_cast<int>(i) + 1, m, "etcd-test")});
    for (const auto& l : All<LaunchMember>(out)) {
      EXPECT_NE(l.member.name, name) << "stopped by the reseed, restarted in place";
    }
  }
}

// The same when the scheduler restarted between the stops and the failure: the restarted one
// finds the stopped members ended without knowing who stopped them (sim --seed=201009
// --durable=on: a stopped member restarted in place beside the survivor's new cluster).
TEST_F(DurableTest, MembersAReseedStoppedStayStoppedAcrossASchedulerRestart) {
  auto launches = Bootstrap();
  Advance(1s);
  auto forced = On(AdminReseed{1, true, now_});
  auto triggers = All<TriggerReseed>(forced);
  ASSERT_EQ(triggers.size(), 1u);
  for (const auto& k : All<KillTask>(forced)) Update(k.task_id, mesos::TASK_KILLED, k.agent_id);
  PersistentState stored = core_.state();
  core_ = SchedulerCore(core_.config());
  Start(stored);
  auto subscribed = Subscribe();
  ASSERT_TRUE(Has<TriggerReseed>(subscribed)) << "the reseed is resumed";
  AnswerReconciliation(subscribed);
  ASSERT_FALSE(core_.reconciling());
  On(ReseedResult{triggers[0].name, Error{ErrorCode::kUnavailable, "x"}, now_});
  ASSERT_FALSE(core_.reseeding());
  Advance(1s);
  for (size_t i = 0; i < launches.size(); ++i) {
    const std::string& name = launches[i].member.name;
    if (name == triggers[0].name) continue;
    Member m = core_.state().members.at(name);
    auto out = Offers({OfferWithVolume(static_cast<int>(i) + 1, m, "etcd-test")});
    for (const auto& l : All<LaunchMember>(out)) {
      EXPECT_NE(l.member.name, name) << "stopped by the reseed, restarted in place";
    }
  }
}

// Resources reserved for a member that is no longer ours (replaced, or of an older generation)
// are released when offered: its volume destroyed, its reservations unreserved.
TEST_F(DurableTest, ReservationsNoMemberClaimsAreReleased) {
  Bootstrap();
  Advance(1s);
  Member gone;
  gone.name = "etcd-9";
  gone.volume = "etcd-test.g0.etcd-9";
  auto out = Offers({OfferWithVolume(1, gone, "etcd-test")});
  auto releases = All<ReleaseResources>(out);
  ASSERT_EQ(releases.size(), 1u);
  ASSERT_EQ(releases[0].destroy.size(), 1u);
  EXPECT_EQ(releases[0].destroy[0].disk().persistence().id(), gone.volume);
  ASSERT_EQ(releases[0].unreserve.size(), 1u);
  EXPECT_FALSE(releases[0].unreserve[0].has_disk()) << "unreserved once the volume is destroyed";
  // Another cluster's reservations are none of ours.
  auto other = All<ReleaseResources>(Offers({OfferWithVolume(1, gone, "etcd-other")}));
  EXPECT_TRUE(other.empty());
}

// etcd's own view: a member cut off (a host gone, frozen or partitioned) while Mesos still says
// RUNNING, as it does for minutes on real Mesos. Once it stops answering, the leader is asked for
// its peer connections; with none to it, --replace-after counts from then: replaced after it,
// never sooner.
TEST_F(DurableTest, AMemberCutOffByEtcdsOwnViewIsReplacedAfterReplaceAfterThoughMesosSaysRunning) {
  auto launches = Bootstrap();
  Advance(1s);
  const Member m = core_.state().members.at(launches[2].member.name);
  ASSERT_EQ(m.task_state, mesos::TASK_RUNNING);
  ProbeAll(1, 101, {m.name});
  auto asks = All<ProbePeers>(Advance(1s));
  ASSERT_EQ(asks.size(), 1u) << "the leader is asked who it is connected to";
  const Member& leader = core_.state().members.at(asks[0].name);
  EXPECT_EQ(leader.member_id, 1u);
  std::map<uint64_t, bool> active;
  for (const auto& [name, other] : core_.state().members) {
    if (name != leader.name) active[other.member_id] = name != m.name;
  }
  EXPECT_TRUE(Says(On(PeerView{leader.name, active, now_}), "cut off by etcd's own view"));
  EXPECT_TRUE(core_.state().members.at(m.name).peer_lost_since.has_value());
  Actions removal;
  int waited = 0;
  for (; waited < 320 && !Has<ChangeMembership>(removal); waited += 10) {
    ProbeAll(1, 101, {m.name});
    On(PeerView{leader.name, active, now_});
    removal = Advance(10s);
    ASSERT_EQ(core_.state().members.at(m.name).task_state, mesos::TASK_RUNNING);
  }
  EXPECT_GE(waited, 300) << "removed before --replace-after";
  auto changes = All<ChangeMembership>(removal);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].op, MembershipOp::kRemove);
  EXPECT_EQ(changes[0].name, m.name);
  EXPECT_TRUE(Says(removal, "its leader has had no connection to it")) << "the reason is said";
}

// Both counts are needed: a member the leader is still connected to, or one that answers again,
// is not cut off, and is never replaced for it.
TEST_F(DurableTest, AMemberItsLeaderStillReachesOrThatAnswersAgainIsNotCutOff) {
  auto launches = Bootstrap();
  Advance(1s);
  const Member m = core_.state().members.at(launches[1].member.name);
  std::map<uint64_t, bool> connected;
  for (const auto& [name, other] : core_.state().members) connected[other.member_id] = true;
  ProbeAll(1, 101, {m.name});
  Advance(1s);
  EXPECT_FALSE(Says(On(PeerView{"etcd-1", connected, now_}), "cut off"));
  EXPECT_FALSE(core_.state().members.at(m.name).peer_lost_since.has_value());
  std::map<uint64_t, bool> lost = connected;
  lost[m.member_id] = false;
  On(PeerView{"etcd-1", lost, now_});
  ASSERT_TRUE(core_.state().members.at(m.name).peer_lost_since.has_value());
  EXPECT_TRUE(Says(ProbeAll(1, 102), m.name + " answers again"));
  EXPECT_FALSE(core_.state().members.at(m.name).peer_lost_since.has_value());
  for (int i = 0; i < 32; ++i) {
    ProbeAll(1, 103);
    ASSERT_FALSE(Has<ChangeMembership>(Advance(10s))) << "replaced after " << i * 10 << " s";
  }
}

// Mesos 1.11 says TASK_LOST (REASON_AGENT_REMOVED) of a task whose agent it removed for good, even
// to a PARTITION_AWARE framework: the task is gone (removed from etcd at once, its volume with its
// agent), unlike a TASK_LOST a master failover's reconciliation may answer for a live task.
TEST_F(DurableTest, ATaskLostWithItsAgentRemovedIsGoneAndItsMemberReplacedAtOnce) {
  auto launches = Bootstrap();
  Advance(1s);
  const Member m = core_.state().members.at(launches[1].member.name);
  mesos::TaskStatus lost;
  lost.mutable_task_id()->set_value(m.task_id);
  lost.set_state(mesos::TASK_LOST);
  lost.set_reason(mesos::TaskStatus::REASON_AGENT_REMOVED);
  lost.set_message("Agent 127.0.0.3 removed: a new agent registered at the same address");
  lost.mutable_agent_id()->set_value(m.agent_id);
  auto out = On(TaskUpdate{lost, now_});
  EXPECT_EQ(core_.state().members.at(m.name).task_state, mesos::TASK_GONE);
  EXPECT_TRUE(Says(out, m.name + " ended: TASK_LOST")) << "the note says what Mesos said";
  EXPECT_TRUE(Says(out, "which Mesos removed for good"));
  auto changes = All<ChangeMembership>(out);
  ASSERT_EQ(changes.size(), 1u) << "removed at once, not after --replace-after";
  EXPECT_EQ(changes[0].op, MembershipOp::kRemove);
  EXPECT_EQ(changes[0].name, m.name);

  // A TASK_LOST without that reason (a failover's reconciliation) is only out of contact.
  const Member other = core_.state().members.at(launches[2].member.name);
  mesos::TaskStatus maybe;
  maybe.mutable_task_id()->set_value(other.task_id);
  maybe.set_state(mesos::TASK_LOST);
  maybe.set_reason(mesos::TaskStatus::REASON_RECONCILIATION);
  maybe.mutable_agent_id()->set_value(other.agent_id);
  On(TaskUpdate{maybe, now_});
  EXPECT_EQ(core_.state().members.at(other.name).task_state, mesos::TASK_LOST);
}

// A candidate that answers it is reseeding already (the previous scheduler asked it before it
// died) is standing alone: asking the next candidate would make two clusters. It is asked again.
TEST_F(CoreTest, ACandidateAlreadyReseedingIsAskedAgainNotTheNextCandidate) {
  Bootstrap();
  Advance(6s);
  ProbeAll(1, 100);
  auto asked = All<TriggerReseed>(On(AdminReseed{1, true, now_}));
  ASSERT_EQ(asked.size(), 1u);
  auto busy = On(ReseedResult{
      asked[0].name, Error{ErrorCode::kConflict, "the executor's reseed outcome is busy"}, now_});
  EXPECT_FALSE(Has<TriggerReseed>(busy)) << "no other candidate is asked";
  EXPECT_TRUE(Says(busy, asked[0].name + " is already reseeding"));
  EXPECT_TRUE(core_.reseeding());
  auto again = All<TriggerReseed>(Advance(2s));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].name, asked[0].name);
}

// ---- Teardown ---------------------------------------------------------------------------------

int AgentNumber(const Member& m) { return std::stoi(m.agent_id.substr(1)); }

// The flag is on record before the first kill; every task is killed; the volumes are released as
// their agents offer them back, and only an offer without them confirms it; then, once, the
// shell is told to finish. Nothing is launched meanwhile, and other commands are refused.
TEST_F(DurableTest, ATeardownKillsEveryTaskReleasesEveryVolumeAndFinishesOnceConfirmed) {
  Bootstrap();
  Advance(1s);
  std::map<std::string, Member> members = core_.state().members;
  auto asked = On(AdminTeardown{7, now_});
  size_t persist = asked.size(), first_kill = asked.size();
  for (size_t i = 0; i < asked.size(); ++i) {
    if (const auto* p = std::get_if<Persist>(&asked[i]); p && persist == asked.size()) {
      EXPECT_TRUE(p->state.tearing_down);
      persist = i;
    }
    if (std::holds_alternative<KillTask>(asked[i]) && first_kill == asked.size()) first_kill = i;
  }
  ASSERT_LT(persist, first_kill) << "the teardown is on record before the first kill";
  EXPECT_EQ(All<KillTask>(asked).size(), 3u);
  EXPECT_TRUE(Has<Revive>(asked)) << "offers declined before must not hold the volumes back";
  auto answers = All<AnswerAdmin>(asked);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].http_status, 202);
  EXPECT_TRUE(core_.teardown().active);
  EXPECT_EQ(core_.teardown().tasks, 3u);

  auto refused = All<AnswerAdmin>(On(AdminReseed{8, true, now_}));
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].http_status, 409);
  auto spare = Offers({MakeOffer(4)});
  EXPECT_FALSE(Has<LaunchMember>(spare));
  EXPECT_EQ(All<DeclineOffer>(spare).size(), 1u);

  // Each member ends, its volume is offered back and released, and an offer confirms it, before
  // the next one ends: the last one's volume is still to release when no member is left.
  Actions finish;
  size_t done = 0;
  for (const auto& [name, m] : members) {
    auto ended = Update(m.task_id, mesos::TASK_KILLED, m.agent_id);
    auto tick = Advance(1s);
    ended.insert(ended.end(), tick.begin(), tick.end());
    EXPECT_FALSE(Has<LaunchMember>(ended)) << "no restart in place, no heal";
    EXPECT_FALSE(Has<ChangeMembership>(ended));
    EXPECT_FALSE(Has<FinishTeardown>(ended)) << name << "'s volume is not released yet";
    EXPECT_EQ(core_.state().members.count(name), 0u) << "forgotten once its task ended";
    auto released = Offers({OfferWithVolume(AgentNumber(m), m, "etcd-test")});
    auto releases = All<ReleaseResources>(released);
    ASSERT_EQ(releases.size(), 1u) << name;
    EXPECT_EQ(releases[0].destroy.size(), 1u);
    EXPECT_FALSE(Has<FinishTeardown>(released)) << "not before an offer confirms the release";
    finish = Offers({MakeOffer(AgentNumber(m))});
    if (++done < members.size()) {
      EXPECT_FALSE(Has<FinishTeardown>(finish)) << "finished with members left, after " << name;
    }
  }
  EXPECT_TRUE(core_.state().members.empty());
  auto finished = All<FinishTeardown>(finish);
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_TRUE(finished[0].left_behind.empty());
  EXPECT_NE(finished[0].summary.find("3 volume(s) released"), std::string::npos)
      << finished[0].summary;
  EXPECT_TRUE(core_.teardown().finished);
  EXPECT_FALSE(Has<FinishTeardown>(Advance(10s))) << "finished once";
}

// An agent that never comes back does not hold the teardown for ever: after kTeardownWait it
// finishes and names what it left behind, so that the operator can release it by hand.
TEST_F(DurableTest, ATeardownGivesUpOnAnAgentThatNeverComesBackAndNamesWhatItLeft) {
  Bootstrap();
  Advance(1s);
  std::map<std::string, Member> members = core_.state().members;
  const Member& lost = members.begin()->second;
  Update(lost.task_id, mesos::TASK_UNREACHABLE, lost.agent_id);
  On(AdminTeardown{1, now_});
  for (const auto& [name, m] : members) {
    if (name == lost.name) continue;
    Update(m.task_id, mesos::TASK_KILLED, m.agent_id);
    Offers({OfferWithVolume(AgentNumber(m), m, "etcd-test")});
    Offers({MakeOffer(AgentNumber(m))});
  }
  Actions out;
  for (Millis waited{0}; waited < SchedulerCore::kTeardownWait - 2s; waited += 1s) {
    out = Advance(1s);
    ASSERT_FALSE(Has<FinishTeardown>(out)) << "gave up after " << waited.count() << " ms";
  }
  for (int i = 0; i < 3 && !Has<FinishTeardown>(out); ++i) out = Advance(1s);
  auto finish = All<FinishTeardown>(out);
  ASSERT_EQ(finish.size(), 1u);
  ASSERT_EQ(finish[0].left_behind.size(), 2u)
      << fmt::format("{}", fmt::join(finish[0].left_behind, "; "));
  EXPECT_NE(finish[0].left_behind[0].find(lost.name), std::string::npos);
  EXPECT_NE(finish[0].left_behind[1].find(lost.volume), std::string::npos);
  EXPECT_NE(finish[0].summary.find("2 volume(s) released"), std::string::npos) << finish[0].summary;
}

// A scheduler restarted halfway through a teardown finishes it: it kills what runs and launches
// nothing, even with every member gone. Without volumes nothing waits for offers: it suppresses.
TEST_F(CoreTest, ARestartedSchedulerFinishesATeardownInsteadOfHealingTheCluster) {
  Bootstrap();
  Advance(1s);
  auto asked = On(AdminTeardown{1, now_});
  EXPECT_TRUE(Has<Suppress>(asked)) << "no volumes to wait for";
  EXPECT_TRUE(Says(On(AdminTeardown{2, now_}), "already tearing down"));
  PersistentState stored = core_.state();
  ASSERT_TRUE(stored.tearing_down);
  core_ = SchedulerCore(Config());
  auto started = Start(stored);
  EXPECT_TRUE(Says(started, "a teardown was under way"));
  auto subscribed = Subscribe();
  EXPECT_EQ(All<KillTask>(subscribed).size(), 3u);
  EXPECT_FALSE(Has<LaunchMember>(ThreeOffers()));
  Actions out;
  for (const auto& [name, m] : stored.members) {
    auto a = Update(m.task_id, mesos::TASK_KILLED, m.agent_id);
    out.insert(out.end(), a.begin(), a.end());
  }
  EXPECT_FALSE(Has<LaunchMember>(out));
  auto finish = All<FinishTeardown>(out);
  ASSERT_EQ(finish.size(), 1u);
  EXPECT_TRUE(finish[0].left_behind.empty());
  EXPECT_FALSE(Has<LaunchMember>(ThreeOffers()));
}

// Members on volumes, and a scheduler run with --role=* (say `teardown` without the cluster's
// --role): Mesos would never offer it the volumes, so it refuses rather than kill the members and
// wait in vain.
TEST_F(DurableTest, ATeardownWithoutTheClustersRoleIsRefusedAndChangesNothing) {
  Bootstrap();
  PersistentState stored = core_.state();
  core_ = SchedulerCore(Config());  // role "*"
  Start(stored);
  Subscribe();
  auto out = On(AdminTeardown{3, now_});
  auto answers = All<AnswerAdmin>(out);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].http_status, 409);
  EXPECT_NE(answers[0].message.find("--role=*"), std::string::npos) << answers[0].message;
  EXPECT_FALSE(Has<KillTask>(out));
  EXPECT_FALSE(Has<Persist>(out));
  EXPECT_FALSE(core_.state().tearing_down);
}

class HashCheckTest : public CoreTest {
 protected:
  HashCheckTest() {
    CoreConfig c = Config();
    c.hash_check_interval = 10s;
    core_ = SchedulerCore(c);
  }
  // A healthy cluster of three whose members have applied `revision` (etcd-3 only `lowest`).
  void HealthyAt(uint64_t revision, uint64_t lowest) {
    launches_ = Bootstrap();
    Advance(1s);
    ProbeDatabases(kMiB, kMiB, false, revision);
    On(ProbeResult{"etcd-3", MemberProbe{ids_["etcd-3"], 1, 100, 2, false, true, lowest}, now_});
    ASSERT_TRUE(core_.healthy());
  }
  // The check due after one interval.
  CheckHashes Asked() {
    Advance(1s);
    auto checks = All<CheckHashes>(Advance(10s));
    EXPECT_EQ(checks.size(), 1u);
    return checks.empty() ? CheckHashes{} : checks[0];
  }
  // Each member's answer: (hash, compact revision), or an error for a hash of 0.
  Actions Answer(const CheckHashes& check,
                 const std::map<std::string, std::pair<uint32_t, int64_t>>& answers) {
    HashCheckResult r{check.id, check.revision, {}, now_};
    for (const auto& [name, url] : check.members) {
      auto it = answers.find(name);
      if (it == answers.end() || it->second.first == 0) {
        r.hashes.push_back({name, Error{ErrorCode::kUnavailable, "deadline exceeded"}});
      } else {
        r.hashes.push_back({name, KvHash{it->second.first, it->second.second}});
      }
    }
    return On(r);
  }
  std::vector<ChangeMembership> Removals(const Actions& actions) {
    std::vector<ChangeMembership> out;
    for (const auto& c : All<ChangeMembership>(actions)) {
      if (c.op == MembershipOp::kRemove) out.push_back(c);
    }
    return out;
  }
  std::vector<LaunchMember> launches_;
};

// The voters are compared at the lowest revision they have all applied; the one a majority
// contradicts is marked corrupt, counted, removed from etcd and its task killed, and a fresh
// learner replaces it once the removal is done.
TEST_F(HashCheckTest, AMemberInTheMinorityIsRemovedAndReplaced) {
  ASSERT_NO_FATAL_FAILURE(HealthyAt(50, 45));
  CheckHashes check = Asked();
  EXPECT_EQ(check.revision, 45u) << "every voter has applied it";
  ASSERT_EQ(check.members.size(), 3u);
  EXPECT_TRUE(All<CheckHashes>(Advance(1s)).empty()) << "one check at a time";
  auto found =
      Answer(check, {{"etcd-1", {0xaaaa, 7}}, {"etcd-2", {0xbbbb, 7}}, {"etcd-3", {0xaaaa, 7}}});
  auto removals = Removals(found);
  ASSERT_EQ(removals.size(), 1u);
  EXPECT_EQ(removals[0].name, "etcd-2");
  EXPECT_EQ(removals[0].member_id, ids_["etcd-2"]);
  auto kills = All<KillTask>(found);
  ASSERT_EQ(kills.size(), 1u);
  EXPECT_EQ(kills[0].task_id, core_.state().members.at("etcd-2").task_id);
  bool noted = false;
  for (const auto& note : All<Note>(found)) {
    noted |= note.kind == "corruption" && note.level == "error" && note.member == "etcd-2";
  }
  EXPECT_TRUE(noted);
  EXPECT_EQ(core_.hash_checks().checks, 1u);
  EXPECT_EQ(core_.hash_checks().mismatches, 1u);
  EXPECT_EQ(core_.hash_checks().members_corrupt, 1u);
  EXPECT_EQ(core_.corrupt_members().count("etcd-2"), 1u);
  // The removal done, a learner is added for the next offer.
  On(MembershipResult{MembershipOp::kRemove, "etcd-2", ids_["etcd-2"], OkStatus(), now_});
  ids_.erase("etcd-2");
  ProbeAll(/*leader=*/1, 101);
  Advance(1s);
  auto add = All<ChangeMembership>(Offers({MakeOffer(4)}));
  ASSERT_EQ(add.size(), 1u);
  EXPECT_EQ(add[0].op, MembershipOp::kAddLearner);
  EXPECT_TRUE(core_.corrupt_members().empty()) << "the mark goes with the member";
}

// Without a strict majority of the voters on one hash nothing is removed: two of three that
// disagree with the third unanswered, or three different hashes.
TEST_F(HashCheckTest, NothingIsDoneWithoutAStrictMajority) {
  ASSERT_NO_FATAL_FAILURE(HealthyAt(50, 50));
  CheckHashes first = Asked();
  auto split = Answer(first, {{"etcd-1", {0xaaaa, 7}}, {"etcd-2", {0xbbbb, 7}}});
  EXPECT_TRUE(Removals(split).empty());
  EXPECT_FALSE(Has<KillTask>(split));
  CheckHashes second = Asked();
  auto three =
      Answer(second, {{"etcd-1", {0xaaaa, 7}}, {"etcd-2", {0xbbbb, 7}}, {"etcd-3", {0xcccc, 7}}});
  EXPECT_TRUE(Removals(three).empty());
  EXPECT_FALSE(Has<KillTask>(three));
  EXPECT_EQ(core_.hash_checks().members_corrupt, 0u);
  EXPECT_EQ(core_.hash_checks().mismatches, 2u);
  EXPECT_TRUE(core_.corrupt_members().empty());
}

// Hashes of histories compacted to different revisions are not comparable.
TEST_F(HashCheckTest, DifferentCompactRevisionsAreNotCompared) {
  ASSERT_NO_FATAL_FAILURE(HealthyAt(50, 50));
  CheckHashes check = Asked();
  auto answered =
      Answer(check, {{"etcd-1", {0xaaaa, 7}}, {"etcd-2", {0xbbbb, 9}}, {"etcd-3", {0xaaaa, 7}}});
  EXPECT_TRUE(Removals(answered).empty());
  EXPECT_EQ(core_.hash_checks().mismatches, 0u);
  EXPECT_EQ(core_.hash_checks().members_corrupt, 0u);
  EXPECT_EQ(core_.hash_checks().checks, 1u);
}

// A corrupt member is not removed when that would leave no quorum (etcd-3 does not answer): it
// waits, marked, until the removal is safe.
TEST_F(HashCheckTest, NoRemovalThatWouldCostTheQuorum) {
  ASSERT_NO_FATAL_FAILURE(HealthyAt(50, 50));
  CheckHashes check = Asked();
  ProbeAll(/*leader=*/1, 101, {"etcd-3"});
  ASSERT_TRUE(core_.healthy());
  auto answered =
      Answer(check, {{"etcd-1", {0xaaaa, 7}}, {"etcd-2", {0xbbbb, 7}}, {"etcd-3", {0xaaaa, 7}}});
  EXPECT_TRUE(Removals(answered).empty());
  EXPECT_TRUE(Removals(Advance(1s)).empty());
  EXPECT_EQ(core_.corrupt_members().count("etcd-2"), 1u);
  ProbeAll(/*leader=*/1, 102);  // etcd-3 answers again
  auto removals = Removals(Advance(1s));
  ASSERT_EQ(removals.size(), 1u);
  EXPECT_EQ(removals[0].name, "etcd-2");
}

// No check while the cluster is unhealthy or a membership change is in flight, and none at all
// with --hash-check-interval=0.
TEST_F(HashCheckTest, ChecksOnlyASettledClusterAndNeverWhenOff) {
  ASSERT_NO_FATAL_FAILURE(HealthyAt(50, 50));
  ProbeAll(/*leader=*/0, 100);
  Advance(1s);
  ASSERT_FALSE(core_.healthy());
  EXPECT_FALSE(Has<CheckHashes>(Advance(20s)));
  CoreConfig off = Config();
  off.hash_check_interval = Millis(0);
  core_ = SchedulerCore(off);
  ids_.clear();
  ASSERT_NO_FATAL_FAILURE(HealthyAt(50, 50));
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(Has<CheckHashes>(Advance(60s)));
}

// A member marked corrupt holds the automatic reseed back (the note says why) and is never a
// reseed candidate, even with the highest raft index; the operator's reseed picks another.
TEST_F(HashCheckTest, ACorruptMemberHoldsTheAutomaticReseedAndIsNeverTheSurvivor) {
  ASSERT_NO_FATAL_FAILURE(HealthyAt(50, 50));
  CheckHashes check = Asked();
  // etcd-3 dies before the answers come: its removal is in flight, so etcd-2's must wait.
  ASSERT_EQ(Removals(Update(launches_[2].member.task_id, mesos::TASK_FAILED,
                            launches_[2].member.agent_id))
                .size(),
            1u);
  auto answered =
      Answer(check, {{"etcd-1", {0xaaaa, 7}}, {"etcd-2", {0xbbbb, 7}}, {"etcd-3", {0xaaaa, 7}}});
  EXPECT_TRUE(Removals(answered).empty()) << "one membership change at a time";
  ASSERT_EQ(core_.corrupt_members().count("etcd-2"), 1u);
  // The leader is lost: etcd-2 has the highest raft index.
  On(ProbeResult{"etcd-1", MemberProbe{ids_["etcd-1"], 0, 500, 3, false, false}, now_});
  On(ProbeResult{"etcd-2", MemberProbe{ids_["etcd-2"], 0, 700, 3, false, false}, now_});
  On(ClusterProbeResult{Error{ErrorCode::kUnavailable, "no leader"}, now_,
                        core_.membership_epoch()});
  AdvanceUntilLivelockIsConfirmed();
  ASSERT_TRUE(core_.livelocked());
  Actions held;
  for (int i = 0; i < 5; ++i) {
    auto a = Advance(30s);
    held.insert(held.end(), a.begin(), a.end());
  }
  EXPECT_FALSE(Has<TriggerReseed>(held));
  int said = 0;
  for (const auto& note : All<Note>(held)) {
    said +=
        note.kind == "livelock" && note.message.find("etcd-2 marked corrupt") != std::string::npos;
  }
  EXPECT_EQ(said, 1) << "said once per episode";
  auto triggers = All<TriggerReseed>(On(AdminReseed{1, true, now_}));
  ASSERT_EQ(triggers.size(), 1u);
  EXPECT_EQ(triggers[0].name, "etcd-1");
}

// etcd's own CORRUPT alarm holds the automatic reseed back as well.
TEST_F(HashCheckTest, TheCorruptAlarmHoldsTheAutomaticReseed) {
  ASSERT_NO_FATAL_FAILURE(HealthyAt(50, 50));
  Update(launches_[2].member.task_id, mesos::TASK_FAILED, launches_[2].member.agent_id);
  for (const char* name : {"etcd-1", "etcd-2"}) {
    MemberProbe p{ids_[name], 0, 500, 3, false, false};
    p.corrupt_alarm = true;
    On(ProbeResult{name, p, now_});
  }
  On(ClusterProbeResult{Error{ErrorCode::kUnavailable, "no leader"}, now_,
                        core_.membership_epoch()});
  AdvanceUntilLivelockIsConfirmed();
  ASSERT_TRUE(core_.livelocked());
  Actions held;
  for (int i = 0; i < 5; ++i) {
    auto a = Advance(30s);
    held.insert(held.end(), a.begin(), a.end());
  }
  EXPECT_FALSE(Has<TriggerReseed>(held));
  bool said = false;
  for (const auto& note : All<Note>(held)) {
    said |= note.message.find("CORRUPT alarm reported by etcd-1, etcd-2") != std::string::npos;
  }
  EXPECT_TRUE(said);
}
}  // namespace
}  // namespace etcd_mesos::scheduler
