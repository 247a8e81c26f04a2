#include "scheduler/core/scheduler_core.h"

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

#include "common/duration.h"
#include "mesos/task_state.h"
#include "scheduler/core/rules.h"

namespace etcd_mesos::scheduler {

namespace {

constexpr size_t kMaxNotes = 100;
constexpr double kTransientRefuseSeconds = 1;  // we will want this agent again shortly
// A task asked to be killed is not asked again sooner: a kill the agent never got is sent again
// when the task next shows up after that.
constexpr std::chrono::seconds kKillRetry{5};
// etcd refuses to add a member ("unhealthy cluster", gRPC Unavailable) until every voter has
// been connected to it for 5 s, which a promotion, a restart or a leader change resets: the same
// add (same name, same offer) is asked again this often, for at most kAddRetryFor.
constexpr std::chrono::milliseconds kAddRetry{500};
constexpr std::chrono::seconds kAddRetryFor{15};

double ScalarOf(const mesos::Offer& offer, const std::string& name) {
  double total = 0;
  for (const auto& r : offer.resources()) {
    if (r.name() == name && r.type() == mesos::Value::SCALAR) total += r.scalar().value();
  }
  return total;
}

// Three distinct ports from any of the offered ranges (never outside them).
std::optional<std::array<uint16_t, 3>> PickPorts(const mesos::Offer& offer) {
  std::array<uint16_t, 3> ports{};
  size_t got = 0;
  for (const auto& r : offer.resources()) {
    if (r.name() != "ports" || r.type() != mesos::Value::RANGES) continue;
    for (const auto& range : r.ranges().range()) {
      for (uint64_t p = range.begin(); p <= range.end() && got < 3; ++p) {
        if (p == 0 || p > 65535) continue;
        ports[got++] = static_cast<uint16_t>(p);
      }
      if (got == 3) return ports;
    }
  }
  return std::nullopt;
}

std::string HostOf(const mesos::Offer& offer) {
  if (offer.has_url() && offer.url().address().has_ip() && !offer.url().address().ip().empty()) {
    return offer.url().address().ip();
  }
  return offer.hostname();
}

template <typename Duration>
bool Elapsed(const std::optional<Time>& since, Time now, Duration d) {
  return since && now - *since >= d;
}

constexpr int kMaxClusterSize = 99;  // as --cluster-size

// The number in a member's name ("etcd-12" -> 12): names count up, so a higher one is newer.
uint64_t MemberNumber(const std::string& name) {
  size_t dash = name.rfind('-');
  if (dash == std::string::npos) return 0;
  return std::strtoull(name.c_str() + dash + 1, nullptr, 10);
}

}  // namespace

SchedulerCore::SchedulerCore(CoreConfig config) : config_(std::move(config)) {}

Actions SchedulerCore::Handle(const Event& event) {
  Actions out;
  // Whatever forgets a durable member (a replacement, a reseed, a shrink) leaves its volume and
  // reservations on its agent: they are watched for until released.
  std::set<std::pair<std::string, std::string>> durable_before;
  if (config_.durable()) durable_before = DurableVolumes();
  if (RefusedWhileTearingDown(event, out)) return out;
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, Started>)
          OnStarted(e, out);
        else if constexpr (std::is_same_v<E, Subscribed>)
          OnSubscribed(e, out);
        else if constexpr (std::is_same_v<E, Disconnected>)
          OnDisconnected(e, out);
        else if constexpr (std::is_same_v<E, OffersReceived>)
          OnOffers(e, out);
        else if constexpr (std::is_same_v<E, OfferRescinded>)
          OnRescinded(e, out);
        else if constexpr (std::is_same_v<E, TaskUpdate>)
          OnTaskUpdate(e, out);
        else if constexpr (std::is_same_v<E, Tick>)
          OnTick(e, out);
        else if constexpr (std::is_same_v<E, ProbeResult>)
          OnProbe(e, out);
        else if constexpr (std::is_same_v<E, ClusterProbeResult>)
          OnClusterProbe(e, out);
        else if constexpr (std::is_same_v<E, MembershipResult>)
          OnMembership(e, out);
        else if constexpr (std::is_same_v<E, ReseedResult>)
          OnReseed(e, out);
        else if constexpr (std::is_same_v<E, PersistResult>)
          OnPersist(e, out);
        else if constexpr (std::is_same_v<E, AdminReseed>)
          OnAdminReseed(e, out);
        else if constexpr (std::is_same_v<E, AdminStartFresh>)
          OnAdminStartFresh(e, out);
        else if constexpr (std::is_same_v<E, BackupResult>)
          OnBackupResult(e, out);
        else if constexpr (std::is_same_v<E, AdminBackup>)
          OnAdminBackup(e, out);
        else if constexpr (std::is_same_v<E, AdminRestore>)
          OnAdminRestore(e, out);
        else if constexpr (std::is_same_v<E, AdminResize>)
          OnAdminResize(e, out);
        else if constexpr (std::is_same_v<E, MaintenanceResult>)
          OnMaintenanceResult(e, out);
        else if constexpr (std::is_same_v<E, AdminDefrag>)
          OnAdminDefrag(e, out);
        else if constexpr (std::is_same_v<E, AdminRollout>)
          OnAdminRollout(e, out);
        else if constexpr (std::is_same_v<E, HashCheckResult>)
          OnHashCheckResult(e, out);
        else if constexpr (std::is_same_v<E, CertificateIssued>)
          OnCertificateIssued(e, out);
        else if constexpr (std::is_same_v<E, AdminTeardown>)
          OnAdminTeardown(e, out);
        else if constexpr (std::is_same_v<E, PeerView>)
          OnPeerView(e, out);
      },
      event);
  if (config_.durable()) {
    WatchForgottenVolumes(durable_before);
    UpdateOfferInterest(out);
  }
  // Last, after any Persist the update led to: acknowledged before its change is on record, an
  // update is lost to a scheduler that fails over in between (Mesos does not send it again).
  if (const auto* update = std::get_if<TaskUpdate>(&event);
      update != nullptr && !update->status.uuid().empty()) {
    out.push_back(AcknowledgeUpdate{update->status.agent_id().value(),
                                    update->status.task_id().value(), update->status.uuid()});
  }
  return out;
}

void SchedulerCore::Say(std::string level, std::string kind, std::string message, Actions& out,
                        std::string member) {
  Note note{std::move(level), std::move(message), std::move(kind), std::move(member)};
  notes_.push_back(note);
  while (notes_.size() > kMaxNotes) notes_.pop_front();
  out.push_back(std::move(note));
}

void SchedulerCore::Persisted(Actions& out) { out.push_back(Persist{state_}); }

// ---- Session ------------------------------------------------------------------------------

void SchedulerCore::OnStarted(const Started& e, Actions& out) {
  state_ = e.state;
  started_ = true;
  for (auto& [name, m] : state_.members) {
    // A member etcd gave an id, or whose task ran, ran etcd: whatever the record says, this
    // generation may hold data (never started again by itself).
    if (m.member_id != 0 || m.task_state == mesos::TASK_RUNNING) state_.served = true;
    m.reachable = false;
    m.healthy = false;
    m.launched_at = e.now;  // staging timeouts count from now, not from before the restart
    if (m.learner) m.learner_since = e.now;
    // A durable member found ended gets a whole replace_after to come back on its volume.
    if (!m.volume.empty() && (Gone(m.task_state) || Uncertain(m.task_state)) &&
        config_.replace_after.count() > 0) {
      ended_at_[name] = e.now;
    }
  }
  AdoptUnlabelledMembers(out);
  AdoptCaFiles(out);
  if (ClusterTls() != config_.tls) {
    Say("warn", "session",
        fmt::format("the cluster runs {}; it keeps that (the TLS mode applies to a new cluster: "
                    "a fresh start or a restore)",
                    ClusterTls() ? "with TLS" : "without TLS"),
        out);
  }
  if (e.newest_backup) backup_status_.last = e.newest_backup;
  if (e.newest_backup_age) {
    last_backup_ok_ = e.now - *e.newest_backup_age;
    last_backup_done_ = last_backup_ok_;
  }
  Say("info", "session",
      fmt::format("loaded state: framework {}, generation {}, {} members",
                  state_.framework_id.value_or("(none yet)"), state_.generation,
                  state_.members.size()),
      out);
  if (state_.tearing_down) {
    Say("warn", "admin",
        "a teardown was under way when the previous scheduler stopped; it is finished once the "
        "master is back: every task killed, every volume released, then the state removed",
        out);
    BeginTeardown(e.now, out);
    return;
  }
  if (state_.reseed) {
    Say("warn", "reseed",
        fmt::format("a {} reseed from {} was under way when the previous scheduler stopped; it "
                    "is finished once the master is back",
                    state_.reseed->manual ? "manual" : "automatic",
                    fmt::join(state_.reseed->candidates, ", ")),
        out);
    resume_reseed_ = true;
  }
}

// The previous scheduler died during a reseed. The members it stopped may come back (a kill
// does not reach a partitioned agent, and its kills may never have been sent) and form the old
// cluster again next to the survivor it asked to stand alone, so the reseed is finished, not
// forgotten: once subscribed, the others are stopped again (OnSubscribed), and then the survivor
// it asked is asked again (a member already alone is simply forced alone once more).
void SchedulerCore::ResumeReseed(Time now, Actions& out) {
  resume_reseed_ = false;
  ReseedRun& run = *state_.reseed;
  if (run.next > 0) --run.next;  // the candidate in flight is asked again
  Say("warn", "reseed",
      fmt::format("resuming the {} reseed that the previous scheduler started: candidates {}",
                  run.manual ? "manual" : "automatic", fmt::join(run.candidates, ", ")),
      out);
  NextReseedCandidate(now, out);
}

void SchedulerCore::OnSubscribed(const Subscribed& e, Actions& out) {
  connected_ = true;
  bool new_id = state_.framework_id != e.framework_id;
  state_.framework_id = e.framework_id;
  if (new_id) Persisted(out);
  reconciling_ = false;
  unanswered_.clear();
  ReconcileTasks explicit_tasks;
  for (const auto& [name, m] : state_.members) {
    if (Gone(m.task_state)) continue;
    unanswered_.insert(m.task_id);
    explicit_tasks.tasks.emplace_back(m.task_id, m.agent_id);
  }
  if (!explicit_tasks.tasks.empty()) {
    reconciling_ = true;
    reconcile_started_ = e.now;
    out.push_back(std::move(explicit_tasks));
  }
  out.push_back(ReconcileTasks{});  // implicit: also learn of tasks we do not know
  last_reconcile_ = e.now;
  Say("info", "session",
      fmt::format("subscribed as framework {}; reconciling {} stored tasks", e.framework_id,
                  unanswered_.size()),
      out);
  wants_offers_ = !wants_offers_;  // force the next interest update to speak
  UpdateOfferInterest(out);
  // Kills sent before a disconnect (or by a scheduler that then died) may not have reached
  // their agents; the old cluster's members stay stopped until the reseed has its outcome.
  if (state_.reseed) {
    StopNonCandidates("stopped: a reseed is under way", e.now, out);
    if (resume_reseed_) ResumeReseed(e.now, out);
  }
  if (state_.tearing_down) TeardownStep(e.now, out);
}

void SchedulerCore::OnDisconnected(const Disconnected& e, Actions& out) {
  connected_ = false;
  reconciling_ = false;
  gathered_.clear();  // offers die with the subscription
  gather_started_.reset();
  if (pending_add_) pending_add_->offer_id.clear();
  Say("warn", "session",
      "disconnected from the master: " + e.reason + "; no launches or changes until back", out);
}

bool SchedulerCore::MayAct() const {
  return started_ && connected_ && !reconciling_ && !state_.reseed.has_value() &&
         !reseed_waiting_.has_value() && !state_.tearing_down;
}

// ---- Offers -------------------------------------------------------------------------------

std::optional<Member> SchedulerCore::Place(const mesos::Offer& offer) const {
  if (ScalarOf(offer, "cpus") + 1e-9 < config_.task_cpus + config_.executor_cpus) return {};
  if (ScalarOf(offer, "mem") + 1e-9 < config_.task_mem + config_.executor_mem) return {};
  if (ScalarOf(offer, "disk") + 1e-9 < config_.task_disk) return {};
  if (config_.single_member_per_agent) {
    for (const auto& [name, m] : state_.members) {
      if (m.agent_id == offer.agent_id().value() && MaybeAlive(m.task_state)) return {};
    }
    if (pending_add_ && pending_add_->member.agent_id == offer.agent_id().value()) return {};
  }
  auto ports = PickPorts(offer);
  if (!ports) return {};
  Member m;
  m.agent_id = offer.agent_id().value();
  m.host = HostOf(offer);
  m.peer_port = (*ports)[0];
  m.client_port = (*ports)[1];
  m.reseed_port = (*ports)[2];
  m.generation = state_.generation;
  m.launch_config = EffectiveLaunch();
  m.tls = ClusterTls();
  if (offer.hostname() != m.host) m.hostname = offer.hostname();
  return m;
}

// Every member of a cluster speaks one scheme: the one its members run, else (a new cluster)
// the configured one.
bool SchedulerCore::ClusterTls() const {
  for (const auto& [name, m] : state_.members) {
    if (MaybeAlive(m.task_state)) return m.tls;
  }
  return config_.tls;
}

// With --tls=files: the CA files the members are launched from from now on. The first ones seen
// are taken as those the members run; a change (checked by the shell: CaFilesChangeRefused)
// makes every member stale once.
void SchedulerCore::AdoptCaFiles(Actions& out) {
  const CaFiles& files = config_.ca_files;
  if (files.issuer.empty() || state_.ca_files.SameCas(files)) return;
  uint64_t changes = state_.ca_files.issuer.empty() ? 0 : state_.ca_files.changes + 1;
  state_.ca_files = CaFiles{files.issuer, files.trusted, changes};
  Persisted(out);
  if (changes == 0) return;
  Say("warn", "rollout",
      fmt::format("the CA files changed (issuer {}..., {} CA{} trusted): every member is rolled "
                  "to them, one at a time",
                  files.issuer.substr(0, 23), files.trusted.size(),
                  files.trusted.size() == 1 ? "" : "s"),
      out);
}

void SchedulerCore::OnCertificateIssued(const CertificateIssued& e, Actions& out) {
  for (auto& [name, m] : state_.members) {
    if (m.task_id != e.task_id) continue;
    m.cert_not_after = e.not_after;
    Persisted(out);
    return;
  }
}

std::string SchedulerCore::InitialCluster(const std::vector<const Member*>& members) const {
  std::string out;
  for (const Member* m : members) {
    if (!out.empty()) out += ',';
    out += m->name + "=" + m->PeerUrl();
  }
  return out;
}

std::string SchedulerCore::ClusterToken() const {
  return fmt::format("{}-{}", config_.framework_name, state_.generation);
}

int SchedulerCore::LiveMembers() const {
  int n = 0;
  for (const auto& [name, m] : state_.members) n += MaybeAlive(m.task_state) ? 1 : 0;
  return n;
}

// In a generation that never served, a member whose task the master has not known
// (TASK_UNKNOWN) for a whole staging timeout since its launch (or since this scheduler started)
// never ran etcd where anyone heard of it: a launch lost with a scheduler that died before
// making it, on an agent that is gone. It holds no data, and it will not start any more than a
// task stuck in staging would; waiting for it would hold the cluster down for ever.
int SchedulerCore::MembersThatMayStillStart(Time now) const {
  int n = 0;
  for (const auto& [name, m] : state_.members) {
    if (!MaybeAlive(m.task_state)) continue;
    if (m.task_state == mesos::TASK_UNKNOWN &&
        Elapsed(m.launched_at, now, config_.staging_timeout)) {
      continue;
    }
    ++n;
  }
  return n;
}

int SchedulerCore::Voters() const {
  if (view_) {
    return static_cast<int>(std::count_if(view_->members.begin(), view_->members.end(),
                                          [](const EtcdMember& m) { return !m.is_learner; }));
  }
  int n = 0;
  for (const auto& [name, m] : state_.members) n += MaybeVoter(m) ? 1 : 0;
  return n;
}

bool SchedulerCore::NeedsMember() const {
  if (state_.tearing_down) return false;
  if (!state_.bootstrapped) return !total_loss_;
  return !total_loss_ && LiveMembers() < KeepSize();
}

int SchedulerCore::TargetSize() const {
  if (state_.target_size > 0 && state_.target_flag == config_.cluster_size) {
    return state_.target_size;
  }
  return config_.cluster_size;
}

void SchedulerCore::OnOffers(const OffersReceived& e, Actions& out) {
  if (state_.tearing_down) return TeardownOffers(e.offers, e.now, out);
  // Offers are only read here (a 10,000-agent OFFERS event must not be copied); what is kept is
  // copied one offer at a time.
  if (config_.durable() && MayAct() && !total_loss_) {
    // A durable member's own resources come back in an offer from its agent: they restart it in
    // place, or (no member of ours claims them) are released; the rest goes on as any offer.
    std::vector<mesos::Offer> rest;
    bool used = false;
    for (const auto& o : e.offers) {
      if (RestartInPlace(o, e.now, out) || ReleaseUnclaimed(o, out)) {
        used = true;
      } else {
        rest.push_back(o);
      }
    }
    if (used) return HandleOffers(rest, e.now, out);
  }
  HandleOffers(e.offers, e.now, out);
}

void SchedulerCore::HandleOffers(const std::vector<mesos::Offer>& offers, Time now, Actions& out) {
  if (!MayAct() || total_loss_ || !NeedsMember()) {
    double refuse = (!MayAct() || NeedsMember()) ? kTransientRefuseSeconds : config_.refuse_seconds;
    out.reserve(out.size() + offers.size() + 1);
    for (const auto& o : offers) {
      // An agent that still holds a volume to release (its old task may end any moment) must
      // not be filtered for long: the volume comes back with its next offer.
      bool awaited = std::any_of(unreleased_.begin(), unreleased_.end(), [&](const auto& u) {
        return u.first.first == o.agent_id().value();
      });
      out.push_back(DeclineOffer{o.id().value(), awaited ? kTransientRefuseSeconds : refuse});
    }
    UpdateOfferInterest(out);
    return;
  }
  if (!state_.bootstrapped) {
    if (bootstrap_not_before_ && now < *bootstrap_not_before_) {
      for (const auto& o : offers)
        out.push_back(DeclineOffer{o.id().value(), kTransientRefuseSeconds});
      return;
    }
    return HandleOffersForBootstrap(offers, now, out);
  }
  HandleOffersForGrowth(offers, now, out);
}

void SchedulerCore::HandleOffersForBootstrap(const std::vector<mesos::Offer>& offers, Time now,
                                             Actions& out) {
  for (const auto& o : offers) {
    bool usable = Place(o).has_value();
    bool duplicate_agent = std::any_of(
        gathered_.begin(), gathered_.end(),
        [&](const mesos::Offer& g) { return g.agent_id().value() == o.agent_id().value(); });
    if (!usable || (duplicate_agent && config_.single_member_per_agent)) {
      out.push_back(DeclineOffer{o.id().value(), kTransientRefuseSeconds});
      continue;
    }
    gathered_.push_back(o);
  }
  if (gathered_.empty()) return;
  if (!gather_started_) gather_started_ = now;
  // A restore starts one member from the backup; the rest grow back as learners.
  const bool restoring = !state_.restore_snapshot.empty();
  const int wanted = restoring ? 1 : TargetSize();
  bool enough = static_cast<int>(gathered_.size()) >= wanted;
  if (!enough && !Elapsed(gather_started_, now, config_.bootstrap_gather)) return;  // hold briefly

  // Launch every member we can place at once, as one static initial cluster: etcd's own
  // bootstrap is the fastest safe way (no membership change needs the 5 s quorum wait).
  int count = std::min<int>(wanted, static_cast<int>(gathered_.size()));
  std::vector<Member> members;
  for (int i = 0; i < count; ++i) {
    Member m = *Place(gathered_[i]);
    m.name = fmt::format("etcd-{}", state_.next_member++);
    m.initial = true;
    m.task_id = FormatTaskId(m);
    m.launched_at = now;
    if (config_.durable()) m.volume = VolumeIdOf(config_.framework_name, m);
    members.push_back(m);
  }
  std::vector<const Member*> refs;
  for (const auto& m : members) refs.push_back(&m);
  std::string initial_cluster = InitialCluster(refs);
  state_.bootstrapped = true;
  formed_ = false;
  forming_since_ = now;
  for (const auto& m : members) state_.members[m.name] = m;
  state_.counters.launched_servers += members.size();
  std::string restore = std::move(state_.restore_snapshot);
  state_.restore_snapshot.clear();
  state_.restored_from = restore;
  Persisted(out);  // on record before launch
  for (int i = 0; i < count; ++i) {
    LaunchMember launch{
        gathered_[i].id().value(), members[i], initial_cluster, true, ClusterToken(), restore};
    launch.reserve = !members[i].volume.empty();
    out.push_back(std::move(launch));
  }
  if (!restore.empty()) {
    Say("warn", "restore",
        fmt::format("restoring generation {} from backup {}: {} starts alone from it, the others "
                    "join as learners",
                    state_.generation, restore, members.front().name),
        out);
  }
  for (size_t i = count; i < gathered_.size(); ++i) {
    out.push_back(DeclineOffer{gathered_[i].id().value(), kTransientRefuseSeconds});
  }
  Say("info", "bootstrap",
      fmt::format("bootstrapping generation {} with {} of {} members at once: {}",
                  state_.generation, count, TargetSize(), initial_cluster),
      out);
  gathered_.clear();
  gather_started_.reset();
  UpdateOfferInterest(out);
}

void SchedulerCore::HandleOffersForGrowth(const std::vector<mesos::Offer>& offers, Time now,
                                          Actions& out) {
  std::string blocked;
  if (pending_add_ || in_flight_)
    blocked = "a membership change is in flight";
  else if (!healthy_)
    blocked = "the cluster is not healthy";
  else if (LeaderMarkedCorrupt())
    blocked = "the leader is marked corrupt; a learner would copy its data";
  else if (view_ && std::any_of(view_->members.begin(), view_->members.end(),
                                [](const EtcdMember& m) { return m.is_learner; })) {
    blocked = "a learner is still catching up";
  } else if (view_ && static_cast<int>(view_->members.size()) >= KeepSize()) {
    blocked = "dead members must be removed first";
  } else if (!view_) {
    blocked = "etcd's member list is not known yet";
  } else if (auto refused = VersionRefused()) {
    blocked = *refused;
  }
  std::optional<size_t> chosen;
  std::optional<Member> member;
  if (blocked.empty()) {
    for (size_t i = 0; i < offers.size() && !member; ++i) {
      member = Place(offers[i]);
      if (member) chosen = i;
    }
  }
  for (size_t i = 0; i < offers.size(); ++i) {
    if (chosen && i == *chosen) continue;
    out.push_back(DeclineOffer{offers[i].id().value(), kTransientRefuseSeconds});
  }
  if (!member) return;
  // The name is used up only once etcd has taken the member (OnMembership): a refused add, kept
  // or given up, leaves no gap in the names.
  member->name = fmt::format("etcd-{}", state_.next_member);
  member->learner = true;
  member->task_id = FormatTaskId(*member);
  pending_add_ = PendingAdd{offers[*chosen].id().value(), *member};
  in_flight_ = InFlight{MembershipOp::kAddLearner, member->name, now};
  out.push_back(ChangeMembership{MembershipOp::kAddLearner, member->name, 0, member->PeerUrl(),
                                 ClientUrlsOfHealthy()});
  Say("info", "heal",
      fmt::format("adding {} as a learner ({}) before launching it on {}", member->name,
                  member->PeerUrl(), member->host),
      out, member->name);
}

// A learner add etcd refused for now is sent again once its retry time has come; it is given
// up (the offer declined, the name kept for the next add) when the offer went away, the cluster
// turned unhealthy or may not be changed now, or etcd kept refusing for kAddRetryFor.
void SchedulerCore::RetryAdd(Time now, Actions& out) {
  if (!pending_add_ || !pending_add_->retry_at || in_flight_) return;
  PendingAdd& add = *pending_add_;
  std::string why;
  if (add.offer_id.empty())
    why = "its offer went away";
  else if (!MayAct() || !healthy_)
    why = "the cluster may not be changed now";
  if (!why.empty()) {
    PendingAdd dropped = std::move(add);
    pending_add_.reset();
    GiveUpAdd(dropped, "not adding " + dropped.member.name + ": " + why, out);
    return;
  }
  if (now < *add.retry_at) return;
  add.retry_at.reset();
  in_flight_ = InFlight{MembershipOp::kAddLearner, add.member.name, now};
  out.push_back(ChangeMembership{MembershipOp::kAddLearner, add.member.name, 0,
                                 add.member.PeerUrl(), ClientUrlsOfHealthy()});
}

void SchedulerCore::GiveUpAdd(const PendingAdd& add, const std::string& why, Actions& out) {
  if (!add.offer_id.empty()) {
    out.push_back(DeclineOffer{add.offer_id, kTransientRefuseSeconds});
  }
  Say("warn", "heal", why, out, add.member.name);
  UpdateOfferInterest(out);
}

void SchedulerCore::OnRescinded(const OfferRescinded& e, Actions& out) {
  (void)out;
  std::erase_if(gathered_, [&](const mesos::Offer& o) { return o.id().value() == e.offer_id; });
  if (pending_add_ && pending_add_->offer_id == e.offer_id) pending_add_->offer_id.clear();
}

void SchedulerCore::UpdateOfferInterest(Actions& out) {
  // Not while disconnected: a Suppress sent then would reach the master after the next
  // subscription, which then (wants_offers_ flipped back) would never be revived. The
  // subscription itself makes the interest speak again.
  if (!connected_) return;
  bool wants = started_ && connected_ &&
               (state_.tearing_down ? TeardownWantsOffers()
                                    : !total_loss_ && (NeedsMember() || !unreleased_.empty() ||
                                                       sweep_until_.has_value()));
  if (wants == wants_offers_) return;
  wants_offers_ = wants;
  if (wants) {
    out.push_back(Revive{});
  } else {
    out.push_back(Suppress{});
  }
}

std::vector<std::string> SchedulerCore::ClientUrlsOfHealthy() const {
  std::vector<std::pair<int, std::string>> ranked;
  for (const auto& [name, m] : state_.members) {
    if (!MaybeVoter(m)) continue;
    int rank = m.reachable ? (m.member_id != 0 && m.member_id == m.leader ? 0 : 1) : 2;
    ranked.emplace_back(rank, m.ClientUrl());
  }
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::string> urls;
  for (auto& [rank, url] : ranked) urls.push_back(std::move(url));
  return urls;
}

// ---- Tasks --------------------------------------------------------------------------------

void SchedulerCore::OnTaskUpdate(const TaskUpdate& e, Actions& out) {
  // Mesos 1.11 tells even a PARTITION_AWARE framework TASK_LOST (REASON_AGENT_REMOVED) when it
  // removes an agent for good (a new agent registered at its address): that task will never run
  // again, unlike the TASK_LOST a master failover's reconciliation may answer for a live one.
  mesos::TaskStatus status = e.status;
  if (status.state() == mesos::TASK_LOST &&
      status.reason() == mesos::TaskStatus::REASON_AGENT_REMOVED) {
    status.set_state(mesos::TASK_GONE);
  }
  const std::string& task_id = status.task_id().value();
  auto parsed = ParseTaskId(task_id);
  Member* member = nullptr;
  if (parsed.ok()) {
    auto it = state_.members.find(parsed->name);
    if (it != state_.members.end() && it->second.task_id == task_id) member = &it->second;
  }
  if (unanswered_.erase(task_id) > 0 && unanswered_.empty() && reconciling_) {
    reconciling_ = false;
    Say("info", "session", "reconciliation settled: every stored task has an answer", out);
  }
  bool killed_by_us = kills_sent_.count(task_id) > 0;
  // Mesos removed the agent for good (a TASK_GONE for REASON_AGENT_RESTARTED is only the task:
  // the agent, and its disk, came back).
  bool agent_removed = status.state() == mesos::TASK_GONE &&
                       status.reason() == mesos::TaskStatus::REASON_AGENT_REMOVED;
  if (status.has_agent_id() && (agent_removed || status.state() == mesos::TASK_GONE_BY_OPERATOR)) {
    gone_agents_.insert(status.agent_id().value());
  }
  if (!MaybeAlive(status.state())) kills_sent_.erase(task_id);
  if (member == nullptr) {
    if (MaybeAlive(status.state()) && !Uncertain(status.state()) && status.has_agent_id()) {
      Kill(task_id, status.agent_id().value(),
           "a task this scheduler does not know (older generation?)", e.now, out);
    }
    return;
  }
  mesos::TaskState before = member->task_state;
  member->task_state = status.state();
  if (status.has_agent_id() && member->agent_id.empty())
    member->agent_id = status.agent_id().value();
  if (MaybeAlive(before) && Gone(status.state())) {
    // Out of contact first and never back: lost with its agent; else it failed in sight.
    ++(Uncertain(before) ? state_.counters.lost_servers : state_.counters.failed_servers);
    // Its last probe answer is history: a gone member is probed no more, and a stale "reachable,
    // follows leader L" would still count as a vote for health and as a live voter for quorum.
    member->reachable = false;
    member->healthy = false;
    Say("warn", "task",
        fmt::format("{} ended: {} ({}{})", member->name, mesos::TaskState_Name(e.status.state()),
                    status.has_reason() ? mesos::TaskStatus::Reason_Name(status.reason()) : "",
                    status.has_message() ? ": " + status.message() : ""),
        out, member->name);
    if (member->member_id == 0 && (!view_ || !InEtcd(*member, view_->members))) {
      // Never joined etcd: nothing to remove from the membership.
      state_.members.erase(member->name);
    } else {
      NoteDurableEnd(*member, killed_by_us, e.now, out);
    }
    Persisted(out);
  } else if (!Uncertain(before) && Uncertain(status.state())) {
    // Not counted lost yet: after a master failover every task is TASK_UNKNOWN for a while and
    // comes back RUNNING (seen on real Mesos 1.11). It counts once it ends or is removed.
    Say("warn", "task",
        fmt::format("{} is {}: its agent may come back", member->name,
                    mesos::TaskState_Name(status.state())),
        out, member->name);
    NoteDurableEnd(*member, killed_by_us, e.now, out);
  }
  if (status.state() == mesos::TASK_RUNNING) ended_at_.erase(member->name);
  if (status.state() == mesos::TASK_RUNNING)
    MarkServed(out);  // the executor says so once etcd serves
  if (before != status.state() && !(MaybeAlive(before) && Gone(status.state()))) {
    // Every change of a task's state goes on record (an ending one did above): a standby's views
    // and a restarted scheduler start from the stored state.
    Persisted(out);
  }
  if (started_ && before != mesos::TASK_RUNNING && status.state() == mesos::TASK_RUNNING) {
    ProbeNow(e.now, out);  // a learner's promotion waits on its first probe
  }
  if (MaybeAlive(before) && Gone(status.state())) {
    Evaluate(e.now, out);  // a dead member is removed now, not at the next tick
  }
  UpdateOfferInterest(out);
}

// ---- Probes and health ----------------------------------------------------------------------

void SchedulerCore::OnProbe(const ProbeResult& e, Actions& out) {
  auto it = state_.members.find(e.name);
  if (it == state_.members.end()) return;
  Member& m = it->second;
  // An answer that was on its way when the member's task ended is history: counted, it would
  // vote for health (and for quorum) on behalf of a dead member.
  if (Gone(m.task_state)) return;
  if (!e.probe.ok()) {
    m.reachable = false;
    m.healthy = false;
    return;
  }
  const MemberProbe& p = *e.probe;
  MarkServed(out);
  m.reachable = true;
  if (m.peer_lost_since) {
    m.peer_lost_since.reset();
    Say("info", "heal", m.name + " answers again: back in contact", out, m.name);
  }
  m.healthy = p.healthy;
  m.leader = p.leader;
  m.raft_index = p.raft_index;
  m.raft_term = p.raft_term;
  m.revision = p.revision;
  m.db_size = p.db_size;
  m.db_size_in_use = p.db_size_in_use;
  m.nospace_alarm = p.nospace_alarm;
  m.corrupt_alarm = p.corrupt_alarm;
  // Written with the next state write; a restarted scheduler waits for every member's answer
  // before it judges a version change (VersionsKnown).
  if (!p.version.empty()) m.etcd_version = p.version;
  // Written with the next state write: one per probe would be a write a second.
  state_.revisions.highest_seen = std::max(state_.revisions.highest_seen, p.revision);
  m.last_reachable = e.now;
  if (p.member_id != 0 && m.member_id != p.member_id) {
    m.member_id = p.member_id;
    Persisted(out);
  }
  if (m.learner && !p.is_learner && m.member_id != 0) {
    m.learner = false;  // promoted (perhaps by a previous incarnation of the scheduler)
    Persisted(out);
  }
  if (m.learner && MayAct()) MaybePromote(e.now, out);  // in sync now, perhaps
}

void SchedulerCore::OnClusterProbe(const ClusterProbeResult& e, Actions& out) {
  if (!e.view.ok()) {
    read_ok_ = false;
    return;
  }
  if (e.epoch != membership_epoch_) return;  // asked before the last change: stale
  view_ = *e.view;
  read_ok_ = e.view->linearizable_read_ok;
  for (const auto& em : view_->members) {
    Member* ours = OursFor(state_.members, em);
    if (ours == nullptr) continue;
    if (ours->member_id != em.id) {
      ours->member_id = em.id;
      Persisted(out);
    }
    if (ours->learner != em.is_learner) {
      ours->learner = em.is_learner;
      if (ours->learner && !ours->learner_since) ours->learner_since = e.now;
      Persisted(out);
    }
  }
}

void SchedulerCore::UpdateHealth(Time now, Actions& out) {
  // Healthy: a majority of voters agree on one leader, and a linearizable read succeeded.
  int voters = Voters();
  int best = CountLeaderVotes(state_.members).votes;
  bool agreed = Agreed(best, voters);
  bool was = healthy_;
  healthy_ = agreed && read_ok_;
  if (healthy_) {
    health_reason_ = fmt::format("{} of {} voters agree on a leader", best, voters);
  } else if (voters == 0) {
    health_reason_ = "no members";
  } else if (!agreed) {
    health_reason_ = fmt::format("only {} of {} voters agree on a leader", best, voters);
  } else {
    health_reason_ = "a linearizable read failed";
  }
  if (was != healthy_) {
    Say(healthy_ ? "info" : "warn", "health",
        "cluster is " + std::string(healthy_ ? "healthy: " : "unhealthy: ") + health_reason_, out);
    // For the standbys' views, written with the next state write rather than by one of its
    // own: an extra write here would hold back, behind the store, the very membership changes
    // that a change of health calls for (simulator seed 1609: a removal decided while a member
    // was away ran after it was back and another had died).
    state_.healthy = healthy_;
    state_.health_reason = health_reason_;
    if (healthy_ && connected_ && MayAct() && NeedsMember()) {
      // Offers were declined for a second while the cluster was unhealthy (after a leader's
      // death, say); take those filters back so that the replacement's offer comes now.
      wants_offers_ = true;
      out.push_back(Revive{});
    }
  }
  // Livelock: no majority of voters agrees on a leader (unreachable, or split) once the cluster
  // should be up (some member has run), counted once per episode whatever the tasks report.
  // Reads that fail while a majority agrees on a leader make the cluster unhealthy, not
  // livelocked: slow reads under load must never lead to a reseed, which stops members.
  bool ran = std::any_of(state_.members.begin(), state_.members.end(), [](const auto& kv) {
    return kv.second.task_state == mesos::TASK_RUNNING || Uncertain(kv.second.task_state);
  });
  // A bootstrap still forming its first quorum (members start one by one, slower on a loaded
  // host) is not livelock; one that has not formed within the staging timeout is.
  if (agreed) formed_ = true;
  bool forming = !formed_ && forming_since_ && now - *forming_since_ < config_.staging_timeout;
  // Evidence first: right after a reseed or a fresh start etcd's view is not known yet, and a
  // stale failed read must not open a spurious episode.
  // An episode opens only once the disagreement has outlasted kLivelockConfirmProbes probe
  // intervals: an election, or one round of probes timing out on a loaded scheduler host, is
  // not a lost quorum, and every episode may page an operator (alerts watch the counter).
  if (!agreed && ran && !forming && state_.bootstrapped && connected_ && !reconciling_ &&
      !state_.reseed && view_.has_value()) {
    if (!disagreed_since_) disagreed_since_ = now;
    if (!livelock_since_ &&
        now - *disagreed_since_ >= kLivelockConfirmProbes * config_.probe_interval) {
      livelock_since_ = now;
      ++state_.counters.cluster_livelocks;
      Say("warn", "livelock",
          fmt::format("livelock episode started: {} (for {})", health_reason_,
                      FormatDuration(std::chrono::duration_cast<Millis>(now - *disagreed_since_))),
          out);
      Persisted(out);
    }
    return;
  }
  disagreed_since_.reset();
  if (agreed && livelock_since_) {
    livelock_since_.reset();
    Say("info", "livelock", "livelock episode ended", out);
  }
}

// Probes every member that may run and asks for etcd's member list. Besides every probe
// interval, right after a member starts: the next step of a heal (promoting the learner) waits
// on what it says, and a probe interval of waiting would be most of the heal.
void SchedulerCore::ProbeNow(Time now, Actions& out) {
  last_probe_ = now;
  std::vector<std::string> urls;
  for (const auto& [name, m] : state_.members) {
    if (!MaybeAlive(m.task_state)) continue;
    out.push_back(ProbeMember{name, m.ClientUrl()});
  }
  urls = ClientUrlsOfHealthy();
  // Learners last: when no voter is left to ask, a learner's member list is the only evidence
  // of etcd's view, and without a view no livelock episode (and so no reseed) can start.
  for (const auto& [name, m] : state_.members) {
    if (MaybeLearner(m)) urls.push_back(m.ClientUrl());
  }
  if (!urls.empty()) out.push_back(ProbeCluster{urls, membership_epoch_});
  if (config_.durable()) ProbePeersIfSilent(out);
}

// Asks the master about tasks in an uncertain state, every uncertain_reconcile_interval while
// there are any. Nothing else tells the scheduler that such a task runs again when its agent
// re-registers with a restarted master.
void SchedulerCore::ReconcileUncertain(Time now, Actions& out) {
  ReconcileTasks uncertain;
  for (const auto& [name, m] : state_.members) {
    if (Uncertain(m.task_state)) uncertain.tasks.emplace_back(m.task_id, m.agent_id);
  }
  if (uncertain.tasks.empty()) {
    last_uncertain_reconcile_.reset();  // the first uncertain task waits a whole interval
    return;
  }
  if (!last_uncertain_reconcile_) last_uncertain_reconcile_ = now;
  if (!Elapsed(last_uncertain_reconcile_, now, config_.uncertain_reconcile_interval)) return;
  last_uncertain_reconcile_ = now;
  out.push_back(std::move(uncertain));
}

void SchedulerCore::OnTick(const Tick& e, Actions& out) {
  if (!started_) return;
  Time now = e.now;
  if (e.unix_now > 0) unix_now_ = e.unix_now;
  ExpireReleaseWatch(now, out);
  if (sweep_until_ && now >= *sweep_until_) sweep_until_.reset();
  if (connected_ && reconciling_ && Elapsed(reconcile_started_, now, config_.reconcile_timeout)) {
    ReconcileTasks again;
    for (const auto& [name, m] : state_.members) {
      if (unanswered_.count(m.task_id)) again.tasks.emplace_back(m.task_id, m.agent_id);
    }
    reconcile_started_ = now;
    Say("warn", "session",
        fmt::format("{} tasks still unanswered by reconciliation; asking again",
                    unanswered_.size()),
        out);
    out.push_back(std::move(again));
  }
  if (connected_ && !reconciling_ && Elapsed(last_reconcile_, now, config_.reconcile_interval)) {
    last_reconcile_ = now;
    // A durable core also looks at every agent's offers now and then: a reservation it forgot
    // (watched by a scheduler that has since restarted, or whose release was lost on the way)
    // is offered, and released, only while offers are wanted.
    if (config_.durable()) sweep_until_ = now + kReleaseSweep;
    // Explicitly for the tasks we think may live: implicit reconciliation names only tasks the
    // master thinks non-terminal, so a terminal update lost with its agent (removed before the
    // update was acknowledged) would otherwise leave a dead member looking alive forever.
    ReconcileTasks explicit_tasks;
    for (const auto& [name, m] : state_.members) {
      if (!Gone(m.task_state)) explicit_tasks.tasks.emplace_back(m.task_id, m.agent_id);
    }
    if (!explicit_tasks.tasks.empty()) out.push_back(std::move(explicit_tasks));
    out.push_back(ReconcileTasks{});
  }
  if (connected_ && !reconciling_) ReconcileUncertain(now, out);
  if (state_.tearing_down) return TeardownStep(now, out);  // nothing else runs meanwhile
  if (reseed_retry_at_ && now >= *reseed_retry_at_) {
    reseed_retry_at_.reset();
    if (state_.reseed && connected_) NextReseedCandidate(now, out);
  }
  if (!last_probe_ || now - *last_probe_ >= config_.probe_interval) ProbeNow(now, out);
  // A bootstrap gather that waited long enough launches what it has.
  if (!gathered_.empty() && Elapsed(gather_started_, now, config_.bootstrap_gather) && MayAct()) {
    HandleOffersForBootstrap({}, now, out);
  }
  Evaluate(now, out);
  MaybeBackup(now, out);  // after Evaluate: health is known
  MaybeMaintain(now, out);
  MaybeRollout(now, out);
  MaybeCheckHashes(now, out);
}

void SchedulerCore::Evaluate(Time now, Actions& out) {
  if (state_.tearing_down) return TeardownStep(now, out);
  UpdateHealth(now, out);
  // Total loss: a cluster existed and no member can be running any more.
  if (state_.bootstrapped && connected_ && !reconciling_ && !state_.reseed && !total_loss_ &&
      MembersThatMayStillStart(now) == 0 && !pending_add_ && !state_.served) {
    BootstrapAgain(now, out);
  } else if (state_.bootstrapped && connected_ && !reconciling_ && !state_.reseed && !total_loss_ &&
             LiveMembers() == 0 && !pending_add_ &&
             // A durable member whose task ended comes back on its volume, data and all, until
             // replace_after: not a loss yet.
             std::none_of(state_.members.begin(), state_.members.end(),
                          [&](const auto& kv) { return AwaitsRestartInPlace(kv.second, now); })) {
    total_loss_ = true;
    Say("error", "health",
        "TOTAL CLUSTER LOSS: no member is left. Nothing will be started by itself; restore from a "
        "backup, or POST /start-fresh to start an empty cluster",
        out);
    UpdateOfferInterest(out);
  }
  ExpireStuck(now, out);
  RetryAdd(now, out);
  if (!MayAct()) return;
  if (livelock_since_ && config_.auto_reseed &&
      Elapsed(livelock_since_, now, config_.reseed_timeout) && !CorruptionHoldsReseed(out)) {
    BeginReseed(now, /*manual=*/false, out);
    return;
  }
  TidyMembership(now, out);
  MaybePromote(now, out);
  UpdateOfferInterest(out);
}

void SchedulerCore::MarkServed(Actions& out) {
  unserved_generations_ = 0;
  if (state_.served) return;
  state_.served = true;
  Persisted(out);
}

// Every member of this generation failed before its etcd ever ran (a fetch, launch or staging
// failure, etcd refusing to start, or a launch the master never heard of): none can hold data, so
// nothing is lost, and the cluster is started again, in a new generation (a member launched late
// cannot join either), after a delay that doubles while it keeps failing.
void SchedulerCore::BootstrapAgain(Time now, Actions& out) {
  ++unserved_generations_;
  auto delay = std::min<Millis>(Millis(1000) * (1 << std::min(unserved_generations_ - 1, 6)),
                                Millis(60'000));
  std::string restore = state_.restored_from;
  uint64_t failed = state_.generation;
  StartGeneration(/*survivor=*/"", "bootstrap again", out);
  state_.bootstrapped = false;
  state_.restore_snapshot = restore;
  bootstrap_not_before_ = now + delay;
  Persisted(out);
  Say("warn", "bootstrap",
      fmt::format("every member of generation {} failed before etcd ever ran, so no data can be "
                  "lost: starting the cluster again{} in {} ms (attempt {}); see the members' "
                  "task failures above for why they could not start",
                  failed, restore.empty() ? "" : " from backup " + restore, delay.count(),
                  unserved_generations_),
      out);
  UpdateOfferInterest(out);
}

void SchedulerCore::ExpireStuck(Time now, Actions& out) {
  for (auto& [name, m] : state_.members) {
    bool staging = m.task_state == mesos::TASK_STAGING || m.task_state == mesos::TASK_STARTING;
    if (staging && Elapsed(m.launched_at, now, config_.staging_timeout)) {
      Kill(m.task_id, m.agent_id, "not RUNNING within the staging timeout", now, out);
      m.launched_at = now;  // ask once per timeout, not every tick
      Say("warn", "task",
          name + " stuck in " + mesos::TaskState_Name(m.task_state) + "; killing it", out, name);
    }
  }
}

void SchedulerCore::TidyMembership(Time now, Actions& out) {
  if (!healthy_ || in_flight_ || pending_add_ || !view_) return;
  if (RemoveOneDeadMember(now, out)) return;  // one change at a time
  if (ShrinkByOne(now, out)) return;
  StopStrays(now, out);
  ForgetEndedMembers(now, out);
}

bool SchedulerCore::RemoveOneDeadMember(Time now, Actions& out) {
  for (const auto& em : view_->members) {
    const Member* ours = OursFor(state_.members, em);
    std::optional<std::string> why = WhyDead(ours, now, config_);
    if (!why) continue;
    if (ours && AwaitsRestartInPlace(*ours, now)) continue;  // its volume may come back
    if (ours && !ours->volume.empty() && (Gone(ours->task_state) || Uncertain(ours->task_state)) &&
        !gone_agents_.count(ours->agent_id)) {
      *why += fmt::format(", and it was not restarted in place on its volume within {}",
                          ShowDuration(config_.replace_after));
    }
    if (!em.is_learner) {
      // Removing a voter must leave a quorum of the remaining voters alive. The dead voter is
      // never among the ones following a leader (WhyDead needs it gone or silent).
      int voters = Voters();
      int alive_voters = CountLeaderVotes(state_.members).following;
      if (!RemovalKeepsQuorum(voters, alive_voters)) continue;
      if (BackUpBeforeRemoving(ours ? ours->name : em.name, voters, alive_voters, now, out)) {
        return true;  // the change waits for the backup
      }
    }
    RemoveMember(em, ours, *why, now, out);
    return true;
  }
  return false;
}

// Above the target size (POST /cluster-size, or a smaller --cluster-size): one healthy follower
// goes, the newest, never the leader, and only while every voter follows the leader and no
// learner is on its way, so the quorum left is whole.
bool SchedulerCore::ShrinkByOne(Time now, Actions& out) {
  int voters = Voters();
  if (voters <= KeepSize()) return false;
  if (std::any_of(view_->members.begin(), view_->members.end(),
                  [](const EtcdMember& m) { return m.is_learner; })) {
    return false;
  }
  if (CountLeaderVotes(state_.members).following < voters) return false;
  const EtcdMember* chosen = nullptr;
  const Member* chosen_ours = nullptr;
  for (const auto& em : view_->members) {
    const Member* ours = OursFor(state_.members, em);
    if (ours == nullptr || ours->member_id == ours->leader || !ours->healthy) continue;
    // One launched with an older configuration first (a rollout's extra member was added when
    // its scheduler stopped): the rollout's work, not undone.
    bool stale = ours->launch_config != EffectiveLaunch();
    bool chosen_stale = chosen_ours && chosen_ours->launch_config != EffectiveLaunch();
    if (chosen_ours == nullptr || (stale && !chosen_stale) ||
        (stale == chosen_stale && MemberNumber(ours->name) > MemberNumber(chosen_ours->name))) {
      chosen = &em;
      chosen_ours = ours;
    }
  }
  if (chosen == nullptr) return false;
  RemoveMember(*chosen, chosen_ours,
               fmt::format("the cluster shrinks from {} to {} voters", voters, TargetSize()), now,
               out);
  return true;
}

bool SchedulerCore::BackUpBeforeRemoving(const std::string& who, int voters, int alive_voters,
                                         Time now, Actions& out) {
  // Only a bare quorum is left: one more loss during the change costs the cluster. Back up
  // first (bounded: a failed or timed-out backup lets the change go ahead).
  if (!config_.backups || !BareQuorum(voters, alive_voters)) return false;
  if (last_backup_done_ && now - *last_backup_done_ <= config_.backup_fresh) return false;
  if (backup_) return true;
  return StartBackup(now, "before removing voter " + who, /*allow_unhealthy=*/false, out);
}

void SchedulerCore::Kill(const std::string& task_id, const std::string& agent_id, std::string why,
                         Time now, Actions& out) {
  // Tasks that never end (their agent is gone for good) must not stay here for ever.
  std::erase_if(kills_sent_, [&](const auto& kv) { return now - kv.second > 12 * kKillRetry; });
  auto it = kills_sent_.find(task_id);
  if (it != kills_sent_.end() && now - it->second < kKillRetry) return;
  kills_sent_[task_id] = now;
  out.push_back(KillTask{task_id, agent_id, std::move(why)});
}

void SchedulerCore::RemoveMember(const EtcdMember& em, const Member* ours, const std::string& why,
                                 Time now, Actions& out) {
  std::string name = ours ? ours->name : em.name;
  in_flight_ = InFlight{MembershipOp::kRemove, name, now};
  out.push_back(ChangeMembership{MembershipOp::kRemove, name, em.id, "", ClientUrlsOfHealthy()});
  // An uncertain task (its agent unreachable) is not killed now: the master has dropped it and
  // would answer that it does not know it. If its agent comes back, its next update names a
  // task of a member that is gone, and that is killed then.
  if (ours && MaybeAlive(ours->task_state) && !Uncertain(ours->task_state)) {
    Kill(ours->task_id, ours->agent_id, "removed from etcd: " + why, now, out);
  }
  Say("warn", "heal",
      fmt::format("removing member {} ({:x}): {}", name.empty() ? "?" : name, em.id, why), out,
      name);
}

// Strays: a member of ours that runs and answers, but is not in etcd's member list and follows no
// leader the cluster agrees on (for instance the rest of an old generation when the scheduler
// restarted in the middle of a reseed, before it heard the result). It will never rejoin and it
// holds a place of the cluster size: stop it (once per grace period).
void SchedulerCore::StopStrays(Time now, Actions& out) {
  uint64_t agreed = CountLeaderVotes(state_.members).leader;
  for (auto& [name, m] : state_.members) {
    bool stray = MaybeAlive(m.task_state) && m.reachable && m.member_id != 0 &&
                 !InEtcd(m, view_->members) && m.leader != agreed;
    if (!stray) {
      m.stray_since.reset();
      continue;
    }
    if (!m.stray_since) m.stray_since = now;
    if (now - *m.stray_since < config_.dead_member_grace) continue;
    m.stray_since = now;
    Kill(m.task_id, m.agent_id, "not in etcd's member list and follows no leader", now, out);
    Say("warn", "task", name + " is not a member of the cluster; stopping it", out, name);
  }
}

// Records of members that etcd no longer lists and that can do nothing more: their task ended,
// or it is uncertain and the member, once in etcd (it has an id), has been silent past the grace.
// The latter is a removal whose record a previous scheduler did not live to write: the member
// never rejoins, yet it held a place of the cluster size for ever, so no replacement came
// (simulator seed 8147). Its task is killed in case its agent comes back.
void SchedulerCore::ForgetEndedMembers(Time now, Actions& out) {
  size_t dropped = std::erase_if(state_.members, [&](const auto& kv) {
    const Member& m = kv.second;
    if (InEtcd(m, view_->members)) return false;
    if (Gone(m.task_state)) return true;
    if (m.member_id == 0 || !UncertainAndSilent(m, now, config_)) return false;
    ++state_.counters.lost_servers;
    Kill(m.task_id, m.agent_id, "removed from etcd and silent", now, out);
    Say("warn", "heal",
        fmt::format("forgetting {} ({:x}): etcd no longer lists it, its task is {} and it does "
                    "not answer",
                    m.name, m.member_id, mesos::TaskState_Name(m.task_state)),
        out, m.name);
    return true;
  });
  if (dropped > 0) Persisted(out);
}

void SchedulerCore::MaybePromote(Time now, Actions& out) {
  if (!healthy_ || in_flight_ || pending_add_) return;
  uint64_t leader_index = 0;
  for (const auto& [name, m] : state_.members) {
    if (m.reachable && m.member_id != 0 && m.member_id == m.leader) leader_index = m.raft_index;
  }
  for (const auto& [name, m] : state_.members) {
    if (!m.learner || m.member_id == 0 || !m.reachable || m.task_state != mesos::TASK_RUNNING) {
      continue;
    }
    // etcd refuses to promote a learner that is not in sync; asking early only costs a refusal.
    if (!InSync(m.raft_index, leader_index)) continue;
    in_flight_ = InFlight{MembershipOp::kPromote, name, now};
    out.push_back(
        ChangeMembership{MembershipOp::kPromote, name, m.member_id, "", ClientUrlsOfHealthy()});
    return;
  }
}

void SchedulerCore::OnMembership(const MembershipResult& e, Actions& out) {
  in_flight_.reset();
  ++membership_epoch_;  // even a failed change may have been applied
  switch (e.op) {
    case MembershipOp::kAddLearner: {
      if (!pending_add_ || pending_add_->member.name != e.name) return;
      PendingAdd add = std::move(*pending_add_);
      pending_add_.reset();
      if (!e.status.ok()) {
        if (e.status.error().code == ErrorCode::kUnavailable && !add.offer_id.empty()) {
          if (!add.first_refused) add.first_refused = e.now;
          if (!Elapsed(add.first_refused, e.now, kAddRetryFor)) {
            add.retry_at = e.now + kAddRetry;
            Say("info", "heal",
                fmt::format("etcd cannot add {} yet ({}); asking again in {} ms or more (at the "
                            "next tick), same name",
                            add.member.name, e.status.error().message, kAddRetry.count()),
                out, add.member.name);
            pending_add_ = std::move(add);
            return;
          }
        }
        GiveUpAdd(add, "adding " + add.member.name + " failed: " + e.status.error().message, out);
        return;
      }
      if (add.offer_id.empty()) {
        // The offer went away meanwhile: take the learner out again rather than leave a member
        // that nothing will ever start.
        in_flight_ = InFlight{MembershipOp::kRemove, add.member.name, e.now};
        out.push_back(ChangeMembership{MembershipOp::kRemove, add.member.name, e.member_id, "",
                                       ClientUrlsOfHealthy()});
        Say("warn", "heal", "the offer for " + add.member.name + " is gone; removing the learner",
            out, add.member.name);
        return;
      }
      if (add.member.name == fmt::format("etcd-{}", state_.next_member)) ++state_.next_member;
      if (add.first_refused) {
        Say("info", "heal",
            fmt::format("etcd took {} after refusing it for {} ms", add.member.name,
                        std::chrono::duration_cast<Millis>(e.now - *add.first_refused).count()),
            out, add.member.name);
      }
      Member m = add.member;
      m.member_id = e.member_id;
      m.learner = true;
      m.learner_since = e.now;
      m.launched_at = e.now;
      ++state_.counters.members_added;
      ++state_.counters.launched_servers;
      // The new member's initial cluster: every started member etcd knows, plus itself.
      std::vector<const Member*> refs;
      std::vector<Member> strangers;
      if (view_) {
        for (const auto& em : view_->members) {
          if (em.name.empty() || em.peer_urls.empty()) continue;
          auto it = state_.members.find(em.name);
          if (it != state_.members.end()) {
            refs.push_back(&it->second);
          }
        }
      }
      if (config_.durable()) m.volume = VolumeIdOf(config_.framework_name, m);
      state_.members[m.name] = m;
      refs.push_back(&state_.members[m.name]);
      std::string initial_cluster = InitialCluster(refs);
      Persisted(out);
      LaunchMember launch{add.offer_id, m, initial_cluster, false, ClusterToken()};
      launch.reserve = !m.volume.empty();
      out.push_back(std::move(launch));
      Say("info", "heal",
          fmt::format("launching {} to join as a learner: {}", m.name, initial_cluster), out,
          m.name);
      return;
    }
    case MembershipOp::kMoveLeader:
      return OnMoveLeader(e, out);
    case MembershipOp::kPromote: {
      auto it = state_.members.find(e.name);
      if (!e.status.ok()) {
        if (e.status.error().code != ErrorCode::kRefused) {
          Say("warn", "heal", "promoting " + e.name + " failed: " + e.status.error().message, out,
              e.name);
        }
        return;  // retried on a later tick
      }
      if (it != state_.members.end()) {
        it->second.learner = false;
        it->second.learner_since.reset();
      }
      ++state_.counters.members_promoted;
      Persisted(out);
      Say("info", "heal", e.name + " promoted to voter", out, e.name);
      ProbeNow(e.now, out);  // the heal is done once the probes say so
      return;
    }
    case MembershipOp::kRemove: {
      if (!e.status.ok() && e.status.error().code != ErrorCode::kNotFound) {
        Say("warn", "heal", "removing " + e.name + " failed: " + e.status.error().message, out,
            e.name);
        RolloutRemovalFailed(e);
        return;
      }
      if (e.status.ok()) ++state_.counters.members_removed;  // not found: already gone
      RolloutRemoved(e);
      if (view_) {
        std::erase_if(view_->members, [&](const EtcdMember& em) { return em.id == e.member_id; });
      }
      auto it = state_.members.find(e.name);
      if (it != state_.members.end() && it->second.member_id == e.member_id) {
        if (Uncertain(it->second.task_state)) ++state_.counters.lost_servers;
        state_.members.erase(it);
      }
      Persisted(out);
      if (connected_ && NeedsMember()) {
        // Offers that came while the removal was in flight were declined for a second; take
        // those filters back so that the replacement's offer comes now.
        wants_offers_ = true;
        out.push_back(Revive{});
      }
      // The view and the health must catch up before the replacement may be added: waiting for
      // the next probe interval would be most of a heal.
      ProbeNow(e.now, out);
      return;
    }
  }
}

// ---- Reseed -------------------------------------------------------------------------------

void SchedulerCore::StartReseed(Time now, bool manual, Actions& out) {
  ++state_.counters.reseed_attempts;
  std::vector<std::string> candidates = ReseedCandidates();
  if (candidates.empty()) return NoSurvivorToReseed(now, out);
  state_.reseed = ReseedRun{std::move(candidates), 0, manual};
  ++state_.counters.cluster_reseeds;
  const ReseedRun& run = *state_.reseed;
  Say("warn", "reseed",
      fmt::format("{} reseed: candidates by raft index: {}", manual ? "manual" : "automatic",
                  fmt::join(run.candidates, ", ")),
      out);
  Persisted(out);  // write-ahead: a restarted scheduler knows whom it stopped, and finishes
  StopNonCandidates("stopped before reseeding from " + run.candidates.front(), now, out);
  NextReseedCandidate(now, out);
}

void SchedulerCore::NoSurvivorToReseed(Time now, Actions& out) {
  Say("error", "reseed",
      "reseed needed but no survivor can be reseeded (none answers); killing nothing", out);
  livelock_since_ = now;  // wait another full timeout before trying again
  Persisted(out);
}

std::vector<std::string> SchedulerCore::ReseedCandidates() const {
  std::vector<std::string> candidates;
  for (const Member* m : RankSurvivors(state_.members)) {
    if (!corrupt_.count(m->name)) candidates.push_back(m->name);  // would spread its data
  }
  if (candidates.empty()) return candidates;
  // Once the chosen survivor stands alone, the rest of the old cluster must not be able to
  // form a quorum without it, or two clusters would take writes. Every member that is not a
  // candidate is stopped now, but a kill takes time (or waits for a partition to heal), so the
  // other candidates stay as fallbacks only if all the other members that may still run (a
  // learner counts: a promotion may be on its way), together, are no quorum of the old voters;
  // otherwise they are stopped too and only the best is tried.
  int others = 0;
  for (const auto& [name, m] : state_.members) {
    others += (name != candidates.front() && MaybeAlive(m.task_state)) ? 1 : 0;
  }
  // A removal in flight may yet shrink the old voters (simulator seed 1828: a forced reseed of
  // four voters while a dead one was being removed; the two others were then a quorum of three).
  int voters = Voters();
  if (in_flight_ && in_flight_->op == MembershipOp::kRemove && voters > 1) --voters;
  if (CouldFormQuorum(others, voters)) candidates.resize(1);
  return candidates;
}

void SchedulerCore::StopNonCandidates(const std::string& why, Time now, Actions& out) {
  const auto& candidates = state_.reseed->candidates;
  for (const auto& [name, m] : state_.members) {
    bool candidate = std::find(candidates.begin(), candidates.end(), name) != candidates.end();
    if (candidate || !MaybeAlive(m.task_state)) continue;
    // Killed by us: a durable member stopped so is not restarted in place on its volume, which
    // would bring the old cluster back beside the survivor if the reseed fails.
    kills_sent_[m.task_id] = now;
    out.push_back(KillTask{m.task_id, m.agent_id, why});
  }
}

void SchedulerCore::NextReseedCandidate(Time now, Actions& out) {
  while (state_.reseed && state_.reseed->next < state_.reseed->candidates.size()) {
    const std::string& name = state_.reseed->candidates[state_.reseed->next++];
    auto it = state_.members.find(name);
    if (it == state_.members.end()) continue;
    state_.reseed->asked_revision = it->second.revision;
    state_.reseed->highest_revision = std::max(state_.revisions.highest_seen, it->second.revision);
    Persisted(out);  // which candidate was asked, before asking it
    out.push_back(TriggerReseed{name, it->second.ReseedUrl(), state_.reseed_token});
    return;
  }
  // The candidates were never stopped; the members that were not candidates were stopped
  // before the first candidate was asked (two clusters must never take writes), and stay so.
  std::vector<std::string> stopped;
  for (const auto& [name, m] : state_.members) {
    const auto& candidates = state_.reseed->candidates;
    if (std::find(candidates.begin(), candidates.end(), name) == candidates.end()) {
      stopped.push_back(name);
      // Not restarted in place either, though a scheduler that restarted meanwhile found it
      // ended without knowing who stopped it.
      ended_at_.erase(name);
    }
  }
  Say("error", "reseed",
      fmt::format("reseed failed: no candidate ({}) came up alone; the candidates run on as "
                  "they were{}; another attempt follows after a full reseed timeout",
                  fmt::join(state_.reseed->candidates, ", "),
                  stopped.empty() ? ""
                                  : fmt::format(", and the members stopped before the reseed "
                                                "({}) stay stopped",
                                                fmt::join(stopped, ", "))),
      out);
  state_.reseed.reset();
  livelock_since_ = now;
  Persisted(out);
}

void SchedulerCore::OnReseed(const ReseedResult& e, Actions& out) {
  if (!state_.reseed || state_.reseed->next == 0 ||
      state_.reseed->candidates[state_.reseed->next - 1] != e.name) {
    return;  // not the survivor asked last (an answer from before a restart)
  }
  if (!e.raft_index.ok() && e.raft_index.error().code == ErrorCode::kConflict) {
    // Busy: it is standing alone already, at the previous scheduler's request. Asking the next
    // candidate now would make two clusters; it is asked again (forced alone once more) instead.
    Say("warn", "reseed",
        fmt::format("{} is already reseeding (asked before this scheduler restarted): asking it "
                    "again in {} s rather than the next candidate",
                    e.name, kReseedBusyRetry.count() / 1000),
        out, e.name);
    --state_.reseed->next;
    reseed_retry_at_ = e.now + kReseedBusyRetry;
    return;
  }
  if (!e.raft_index.ok()) {
    Say("warn", "reseed", "reseed of " + e.name + " failed: " + e.raft_index.error().message, out,
        e.name);
    NextReseedCandidate(e.now, out);
    return;
  }
  Revisions& r = state_.revisions;
  r.last_reseed_survivor = state_.reseed->asked_revision;
  r.last_reseed_highest = state_.reseed->highest_revision;
  r.highest_seen = r.last_reseed_survivor;  // the new generation goes on from the survivor's data
  StartGeneration(/*survivor=*/e.name, "reseeded from " + e.name, out);
  state_.reseed.reset();
  Persisted(out);
  Say("warn", "reseed",
      fmt::format("reseeded from {} at raft index {}; generation {}; growing back with learners",
                  e.name, *e.raft_index, state_.generation),
      out, e.name);
  Say("warn", "reseed", DescribeReseedWindow(r), out);
  UpdateOfferInterest(out);
}

// A new generation: a fresh cluster token (ClusterToken), so that no member of an older
// generation can join a cluster of the new one. Every member but the survivor (a reseed's; none
// for a fresh start or a restore) is stopped and forgotten; etcd's view of the old cluster is
// history. The caller says what the generation starts from, then persists.
void SchedulerCore::StartGeneration(const std::string& survivor, const std::string& why,
                                    Actions& out) {
  ++state_.generation;
  if (survivor.empty()) {
    state_.revisions.highest_seen = 0;  // a new cluster counts from 1
    state_.served = false;              // a reseed's survivor has its data; a new cluster none
    state_.restored_from.clear();
  }
  for (auto it = state_.members.begin(); it != state_.members.end();) {
    Member& m = it->second;
    if (!survivor.empty() && m.name == survivor) {
      m.learner = false;  // it stands alone: the one voter of the new generation
      m.generation = state_.generation;
      ++it;
      continue;
    }
    if (MaybeAlive(m.task_state)) out.push_back(KillTask{m.task_id, m.agent_id, why});
    it = state_.members.erase(it);
  }
  view_.reset();
  ++membership_epoch_;
  livelock_since_.reset();
  disagreed_since_.reset();
  // A rollout step belongs to the old generation's membership: carried on, it would remove the
  // reseed's survivor once "its successor" joined, leaving one voter (sim seed 7828). The
  // rollout itself goes on once the new generation has grown back.
  if (rollout_step_) {
    Say("warn", "rollout",
        fmt::format("the rollout step replacing {} is abandoned: {}", rollout_step_->member, why),
        out, rollout_step_->member);
    rollout_step_.reset();
  }
}

void SchedulerCore::OnPersist(const PersistResult& e, Actions& out) {
  if (!e.status.ok())
    Say("error", "store", "writing state failed: " + e.status.error().message, out);
}

// ---- Admin --------------------------------------------------------------------------------

void SchedulerCore::OnAdminReseed(const AdminReseed& e, Actions& out) {
  auto answer = [&](int code, std::string message) {
    out.push_back(AnswerAdmin{e.request, code, std::move(message)});
  };
  if (!connected_) return answer(503, "not connected to the Mesos master; try again later");
  if (reconciling_) return answer(503, "reconciliation has not settled yet; try again shortly");
  if (state_.reseed) return answer(409, "a reseed is already running");
  if (reseed_waiting_) return answer(409, "a reseed is already on its way (backing up first)");
  if (total_loss_) return answer(409, "no member is left to reseed from; see /start-fresh");
  if (healthy_ && !e.force) {
    return answer(409,
                  "the cluster is healthy (" + health_reason_ + "); add force=1 to reseed anyway");
  }
  BeginReseed(e.now, /*manual=*/true, out);
  if (reseed_waiting_) {
    answer(202, "backing up " + backup_->member + " first, then reseeding");
  } else if (state_.reseed) {
    answer(202, "reseeding from " + state_.reseed->candidates.front());
  } else {
    answer(409, "no survivor answers; nothing can be reseeded");
  }
}

void SchedulerCore::OnAdminStartFresh(const AdminStartFresh& e, Actions& out) {
  if (!total_loss_) {
    out.push_back(AnswerAdmin{e.request, 409,
                              "refused: members may still be alive; /start-fresh is only for "
                              "total cluster loss"});
    return;
  }
  StartGeneration(/*survivor=*/"", "start fresh", out);
  state_.bootstrapped = false;
  total_loss_ = false;
  Persisted(out);
  Say("warn", "admin",
      fmt::format("operator asked for a fresh, EMPTY cluster: generation {}", state_.generation),
      out);
  out.push_back(AnswerAdmin{e.request, 202, "starting a fresh, empty cluster"});
  UpdateOfferInterest(out);
}

// Grown or shrunk one member at a time by the usual machinery (a learner added and promoted; a
// follower removed and its task killed); the target is on record before anything changes, so a
// restarted scheduler finishes the resize.
void SchedulerCore::OnAdminResize(const AdminResize& e, Actions& out) {
  auto refuse = [&](int code, std::string why) {
    out.push_back(AnswerAdmin{e.request, code, std::move(why)});
  };
  if (e.size < 1 || e.size > kMaxClusterSize) {
    return refuse(400, fmt::format("refused: n must be 1..{}", kMaxClusterSize));
  }
  if (e.size % 2 == 0 && !e.force) {
    return refuse(400, fmt::format("refused: {} members tolerate no more failures than {}; an "
                                   "even size only with force=1",
                                   e.size, e.size - 1));
  }
  if (total_loss_) return refuse(409, "refused: total cluster loss; restore or start fresh first");
  int was = TargetSize();
  if (e.size == was) {
    return out.push_back(AnswerAdmin{e.request, 200, fmt::format("the target is {}", was)});
  }
  state_.target_size = e.size;
  state_.target_flag = config_.cluster_size;
  Persisted(out);
  Say("warn", "resize",
      fmt::format("operator asked for {} members (was {}): {} one member at a time", e.size, was,
                  e.size > was ? "growing" : "shrinking"),
      out);
  out.push_back(AnswerAdmin{e.request, 202,
                            fmt::format("target {} members (was {}); {} one at a time, "
                                        "each healthy before the next",
                                        e.size, was, e.size > was ? "growing" : "shrinking")});
  UpdateOfferInterest(out);
}

// ---- Backups and restore --------------------------------------------------------------------

const Member* SchedulerCore::BackupSource(bool allow_unhealthy) const {
  // A healthy follower first (a snapshot costs its member disk and network: spare the leader),
  // then the healthy leader; when allowed, the reachable member with the highest raft index.
  const Member* best = nullptr;
  int best_rank = 99;
  for (const auto& [name, m] : state_.members) {
    if (!MaybeVoter(m) || !m.reachable || m.member_id == 0 || corrupt_.count(name)) continue;
    int rank = 99;
    if (m.healthy) {
      rank = m.member_id != m.leader ? 0 : 1;
    } else if (allow_unhealthy) {
      rank = 2;
    }
    if (rank == 99) continue;
    if (best == nullptr || rank < best_rank ||
        (rank == best_rank && rank == 2 && m.raft_index > best->raft_index)) {
      best = &m;
      best_rank = rank;
    }
  }
  return best;
}

bool SchedulerCore::StartBackup(Time now, const std::string& reason, bool allow_unhealthy,
                                Actions& out) {
  if (!config_.backups || backup_) return false;
  const Member* source = BackupSource(allow_unhealthy);
  if (source == nullptr) return false;
  backup_ = BackupRun{next_backup_id_++, source->name, reason, now};
  backup_status_.running = source->name + " (" + reason + ")";
  out.push_back(TakeBackup{backup_->id, source->name, source->ClientUrl(), reason});
  Say("info", "backup", fmt::format("backing up from {} ({})", source->name, reason), out,
      source->name);
  return true;
}

void SchedulerCore::MaybeBackup(Time now, Actions& out) {
  if (!config_.backups) return;
  if (backup_ && now - backup_->since >= config_.backup_timeout) {
    ++backup_status_.failures;
    backup_status_.last_error =
        fmt::format("the backup from {} ({}) did not finish within {} s", backup_->member,
                    backup_->reason, config_.backup_timeout.count() / 1000);
    Say("error", "backup", backup_status_.last_error, out);
    last_backup_failed_ = now;
    last_backup_done_ = now;
    BackupFinished(now, out);
  }
  if (backup_ || config_.backup_interval.count() == 0 || !healthy_ || state_.reseed) return;
  bool due = !last_backup_ok_ || now - *last_backup_ok_ >= config_.backup_interval;
  Millis retry = std::min<Millis>(config_.backup_interval, Millis(60'000));
  bool may_retry = !last_backup_failed_ || now - *last_backup_failed_ >= retry;
  if (due && may_retry) StartBackup(now, "periodic", /*allow_unhealthy=*/false, out);
}

void SchedulerCore::OnBackupResult(const BackupResult& e, Actions& out) {
  bool current = backup_ && backup_->id == e.id;
  if (e.backup.ok()) {
    // A late success of a backup given up on still counts: its file is there.
    ++backup_status_.taken;
    backup_status_.last = *e.backup;
    last_backup_ok_ = e.now;
    last_backup_done_ = e.now;
    Say("info", "backup",
        fmt::format("backup {} written: {} bytes, revision {}, from {}", e.backup->name,
                    e.backup->size, e.backup->revision, e.backup->member),
        out);
  } else if (current) {
    ++backup_status_.failures;
    backup_status_.last_error = fmt::format("the backup from {} ({}) failed: {}", backup_->member,
                                            backup_->reason, e.backup.error().message);
    last_backup_failed_ = e.now;
    last_backup_done_ = e.now;
    Say("error", "backup", backup_status_.last_error, out);
  }
  if (current) BackupFinished(e.now, out);
}

void SchedulerCore::BackupFinished(Time now, Actions& out) {
  backup_.reset();
  backup_status_.running.reset();
  if (!reseed_waiting_) return;
  bool manual = *reseed_waiting_;
  reseed_waiting_.reset();
  if (!manual && !livelock_since_) {
    Say("info", "reseed", "the livelock ended while backing up; no reseed", out);
    return;
  }
  if (!connected_ || reconciling_ || state_.reseed || total_loss_) {
    Say("warn", "reseed",
        "the reseed waiting for its backup cannot start now; it will be asked again", out);
    return;
  }
  StartReseed(now, manual, out);
}

void SchedulerCore::BeginReseed(Time now, bool manual, Actions& out) {
  if (config_.backups) {
    if (backup_ || StartBackup(now, "before reseed", /*allow_unhealthy=*/true, out)) {
      reseed_waiting_ = manual;
      Say("warn", "reseed",
          fmt::format("reseed waits for the backup from {} (at most {} s)", backup_->member,
                      config_.backup_timeout.count() / 1000),
          out);
      return;
    }
    Say("warn", "reseed",
        "no member answers to be backed up before the reseed; reseeding without one", out);
  }
  StartReseed(now, manual, out);
}

void SchedulerCore::OnAdminBackup(const AdminBackup& e, Actions& out) {
  auto answer = [&](int code, std::string message) {
    out.push_back(AnswerAdmin{e.request, code, std::move(message)});
  };
  if (!config_.backups) {
    return answer(409, "backups are off: start the scheduler with --backup-dir");
  }
  if (backup_) {
    return answer(
        409, "a backup is already running: from " + backup_->member + " (" + backup_->reason + ")");
  }
  if (!StartBackup(e.now, "operator", /*allow_unhealthy=*/true, out)) {
    return answer(503, "no member answers with its member id; nothing to back up from");
  }
  answer(202, "backing up from " + backup_->member + "; GET /backups lists it when written");
}

void SchedulerCore::OnAdminRestore(const AdminRestore& e, Actions& out) {
  auto answer = [&](int code, std::string message) {
    out.push_back(AnswerAdmin{e.request, code, std::move(message)});
  };
  bool never_started = !state_.bootstrapped && state_.members.empty();
  if (!state_.restore_snapshot.empty()) {
    return answer(409, "a restore from " + state_.restore_snapshot + " is already on its way");
  }
  if (reconciling_) return answer(503, "reconciliation has not settled yet; try again shortly");
  if (!total_loss_ && !never_started) {
    return answer(409, fmt::format("refused: {} members may still be alive; a restore is only for "
                                   "total cluster loss or a cluster that never started",
                                   LiveMembers()));
  }
  StartGeneration(/*survivor=*/"", "restore", out);
  state_.bootstrapped = false;
  state_.restore_snapshot = e.snapshot;
  total_loss_ = false;
  Persisted(out);
  Say("warn", "restore",
      fmt::format("operator asked to restore from backup {}: generation {}", e.snapshot,
                  state_.generation),
      out);
  answer(202, "restoring from " + e.snapshot + ": one member starts from it, the rest join");
  UpdateOfferInterest(out);
}

}  // namespace etcd_mesos::scheduler
