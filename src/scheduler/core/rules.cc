#include "scheduler/core/rules.h"

#include <algorithm>
#include <charconv>
#include <chrono>

#include <fmt/format.h>

#include "common/duration.h"
#include "mesos/task_state.h"

namespace etcd_mesos::scheduler {

// ---- Task states ------------------------------------------------------------------------------

bool MaybeAlive(mesos::TaskState state) {
  return Uncertain(state) || !mesos_facts::IsTerminalState(state);
}

bool Gone(mesos::TaskState state) { return !MaybeAlive(state); }

bool Uncertain(mesos::TaskState state) {
  return state == mesos::TASK_LOST || state == mesos::TASK_UNREACHABLE ||
         state == mesos::TASK_UNKNOWN;
}

std::string ReservationLabel(const mesos::Resource& r, std::string_view key) {
  if (r.reservations_size() == 0) return "";
  for (const auto& label : r.reservations(r.reservations_size() - 1).labels().labels()) {
    if (label.key() == key) return label.value();
  }
  return "";
}

bool HoldsReservationsOf(const mesos::Offer& offer, std::string_view cluster) {
  return std::any_of(
      offer.resources().begin(), offer.resources().end(),
      [&](const mesos::Resource& r) { return ReservationLabel(r, kLabelCluster) == cluster; });
}

bool MaybeVoter(const Member& member) { return MaybeAlive(member.task_state) && !member.learner; }

bool MaybeLearner(const Member& member) { return MaybeAlive(member.task_state) && member.learner; }

// ---- Identity ---------------------------------------------------------------------------------

MatchStrength MatchOf(const Member& ours, const EtcdMember& theirs) {
  if (ours.member_id != 0 && theirs.id != 0) {
    return ours.member_id == theirs.id ? MatchStrength::kId : MatchStrength::kNone;
  }
  if (!theirs.name.empty()) {
    return theirs.name == ours.name ? MatchStrength::kName : MatchStrength::kNone;
  }
  const std::string url = ours.PeerUrl();
  bool listed =
      std::find(theirs.peer_urls.begin(), theirs.peer_urls.end(), url) != theirs.peer_urls.end();
  return listed ? MatchStrength::kPeerUrl : MatchStrength::kNone;
}

bool Matches(const Member& ours, const EtcdMember& theirs) {
  return MatchOf(ours, theirs) != MatchStrength::kNone;
}

namespace {

// The one body of both OursFor overloads (Map is the map, const or not).
template <typename Map>
auto* StrongestMatch(Map& members, const EtcdMember& theirs) {
  decltype(&members.begin()->second) best = nullptr;
  auto rank = [&](const Member& m) {
    return std::pair{static_cast<int>(MatchOf(m, theirs)), MaybeAlive(m.task_state)};
  };
  for (auto& [name, m] : members) {
    if (!Matches(m, theirs)) continue;
    if (best == nullptr || rank(m) > rank(*best)) best = &m;
  }
  return best;
}

}  // namespace

const Member* OursFor(const std::map<std::string, Member>& members, const EtcdMember& theirs) {
  return StrongestMatch(members, theirs);
}

Member* OursFor(std::map<std::string, Member>& members, const EtcdMember& theirs) {
  return StrongestMatch(members, theirs);
}

bool InEtcd(const Member& ours, const std::vector<EtcdMember>& listed) {
  return std::any_of(listed.begin(), listed.end(),
                     [&](const EtcdMember& theirs) { return Matches(ours, theirs); });
}

// ---- Leadership and quorum --------------------------------------------------------------------

LeaderVotes CountLeaderVotes(const std::map<std::string, Member>& members) {
  std::map<uint64_t, int> votes;
  LeaderVotes out;
  for (const auto& [name, m] : members) {
    if (!m.reachable || m.learner || m.leader == 0) continue;
    ++votes[m.leader];
    ++out.following;
  }
  for (const auto& [leader, n] : votes) {  // ascending ids: the smallest wins a tie
    if (n > out.votes) out = LeaderVotes{leader, n, out.following};
  }
  return out;
}

int Quorum(int voters) { return voters <= 0 ? 1 : voters / 2 + 1; }

bool Agreed(int alive, int voters) { return voters > 0 && alive >= Quorum(voters); }

bool RemovalKeepsQuorum(int voters, int alive_remaining) {
  return alive_remaining >= Quorum(voters - 1);
}

bool BareQuorum(int voters, int alive) { return alive <= Quorum(voters); }

bool CouldFormQuorum(int members, int voters) { return members >= Quorum(voters); }

// ---- Health of one member ---------------------------------------------------------------------

std::optional<std::string> WhyDead(const Member* ours, Time now, const CoreConfig& config) {
  if (ours == nullptr) return "no task of ours runs it";
  const Member& m = *ours;
  if (Gone(m.task_state)) return "its task ended (" + mesos::TaskState_Name(m.task_state) + ")";
  if (UncertainAndSilent(m, now, config)) {
    return "its task is " + mesos::TaskState_Name(m.task_state) + " and it does not answer";
  }
  if (config.durable() && m.peer_lost_since && !m.reachable &&
      now - *m.peer_lost_since >= config.replace_after) {
    // Mesos may take minutes to notice a host that is gone; etcd's leader and the scheduler's
    // probes both lost it --replace-after ago.
    return "its leader has had no connection to it, and it has not answered, for " +
           ShowDuration(config.replace_after) + " (--replace-after)";
  }
  if (m.learner && m.learner_since && now - *m.learner_since >= config.learner_timeout) {
    return "it stayed a learner past the learner timeout";
  }
  return std::nullopt;
}

bool UncertainAndSilent(const Member& m, Time now, const CoreConfig& config) {
  // An uncertain task is given the grace from its last answer: its agent may only be partitioned
  // for a moment, and a removed member never rejoins.
  bool silent = !m.last_reachable || now - *m.last_reachable >= config.dead_member_grace;
  return Uncertain(m.task_state) && !m.reachable && silent;
}

bool InSync(uint64_t learner_index, uint64_t leader_index) {
  if (leader_index == 0 || learner_index >= leader_index) return true;
  // learner * 10 >= leader * 9, without the products (which overflow near the top of uint64).
  return leader_index - learner_index <= leader_index / 10;
}

// ---- Reseed -----------------------------------------------------------------------------------

bool RanksBefore(const Member& a, const Member& b) {
  if (a.raft_index != b.raft_index) return a.raft_index > b.raft_index;
  return a.name < b.name;
}

std::vector<const Member*> RankSurvivors(const std::map<std::string, Member>& members) {
  std::vector<const Member*> survivors;
  for (const auto& [name, m] : members) {
    if (m.reachable && MaybeAlive(m.task_state)) survivors.push_back(&m);
  }
  std::sort(survivors.begin(), survivors.end(),
            [](const Member* a, const Member* b) { return RanksBefore(*a, *b); });
  return survivors;
}

uint64_t RevisionsLostByReseed(const Revisions& r) {
  return r.last_reseed_highest > r.last_reseed_survivor
             ? r.last_reseed_highest - r.last_reseed_survivor
             : 0;
}

std::string DescribeReseedWindow(const Revisions& r) {
  std::string after = fmt::format(
      "writes acknowledged after the last probe before the majority was lost may be lost as "
      "well (compare the survivor's revision {} with what clients saw)",
      r.last_reseed_survivor);
  if (RevisionsLostByReseed(r) == 0) {
    return fmt::format(
        "the reseed kept the survivor's data up to revision {}, the highest any member "
        "reported; {}",
        r.last_reseed_survivor, after);
  }
  return fmt::format(
      "the reseed kept the survivor's data up to revision {}: revisions {}..{} ({}), which "
      "other members had applied, are lost; {}",
      r.last_reseed_survivor, r.last_reseed_survivor + 1, r.last_reseed_highest,
      RevisionsLostByReseed(r), after);
}

// ---- Rollouts ---------------------------------------------------------------------------------

namespace {

struct EtcdVersion {
  int major = 0, minor = 0, patch = 0;
};

std::optional<EtcdVersion> ParseEtcdVersion(std::string_view text) {
  if (text.starts_with('v')) text.remove_prefix(1);
  EtcdVersion v;
  int* parts[] = {&v.major, &v.minor, &v.patch};
  for (int i = 0; i < 3; ++i) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *parts[i]);
    if (ec != std::errc() || end == text.data()) return std::nullopt;
    text.remove_prefix(end - text.data());
    if (i < 2) {
      if (!text.starts_with('.')) return std::nullopt;
      text.remove_prefix(1);
    }
  }
  return v;  // anything after the patch ("-rc.0") is ignored
}

}  // namespace

// ---- Certificates ------------------------------------------------------------------------------

bool RenewalDue(int64_t not_after, int64_t unix_now, Millis renew_before) {
  auto window = std::chrono::duration_cast<std::chrono::seconds>(renew_before).count();
  return not_after > 0 && unix_now > 0 && not_after - unix_now < window;
}

std::string CaFilesLaunchSuffix(const CaFiles& files) {
  return files.changes == 0 ? "" : fmt::format("+files{}", files.changes);
}

namespace {

constexpr std::string_view kCaFilesSteps =
    "rotate a CA in three restarts, each rolled out before the next: --tls-ca-cert=old+new "
    "bundle with the old key, then new+old with the new key, then new alone";

std::string ShortFingerprint(const std::string& sha256) { return sha256.substr(0, 23); }

bool Trusts(const CaFiles& files, const std::string& issuer) {
  return std::find(files.trusted.begin(), files.trusted.end(), issuer) != files.trusted.end();
}

}  // namespace

std::optional<std::string> CaFilesChangeRefused(const PersistentState& state, const CaFiles& next) {
  const CaFiles& now = state.ca_files;
  if (next.issuer.empty() || now.issuer.empty() || now.SameCas(next)) return std::nullopt;
  std::string suffix = CaFilesLaunchSuffix(now);
  for (const auto& [name, m] : state.members) {
    if (MaybeAlive(m.task_state) && !m.launch_config.empty() &&
        !m.launch_config.ends_with(suffix)) {
      return fmt::format(
          "the CA files changed while {} still runs the ones before the last change (its "
          "rollout is not done): start with the previous --tls-ca-cert and --tls-ca-key until "
          "it is; {}",
          name, kCaFilesSteps);
    }
  }
  if (!Trusts(next, now.issuer)) {
    return fmt::format(
        "the new --tls-ca-cert does not trust the CA that issued the running members' "
        "certificates ({}...): they and the members launched now would refuse each other; {}",
        ShortFingerprint(now.issuer), kCaFilesSteps);
  }
  if (!Trusts(now, next.issuer)) {
    return fmt::format(
        "the running members do not trust the new issuing CA ({}..., the first of "
        "--tls-ca-cert): they and the members launched now would refuse each other; {}",
        ShortFingerprint(next.issuer), kCaFilesSteps);
  }
  return std::nullopt;
}

bool CertificateRenewalDue(const Member& member, int64_t unix_now, Millis renew_before) {
  return member.tls && RenewalDue(member.cert_not_after, unix_now, renew_before);
}

CertificateExpiry EarliestCertificateExpiry(const std::map<std::string, Member>& members) {
  CertificateExpiry out;
  for (const auto& [name, m] : members) {
    if (!MaybeAlive(m.task_state) || !m.tls) continue;
    out.tls = true;
    if (m.cert_not_after > 0 && (out.earliest == 0 || m.cert_not_after < out.earliest)) {
      out.earliest = m.cert_not_after;
      out.member = name;
    }
  }
  return out;
}

// ---- Rollouts ---------------------------------------------------------------------------------

std::optional<std::string> RefusedVersionChange(std::string_view running, std::string_view next) {
  auto from = ParseEtcdVersion(running);
  auto to = ParseEtcdVersion(next);
  if (!from || !to) return std::nullopt;
  if (to->major != from->major) {
    return fmt::format(
        "etcd {} cannot replace etcd {}: a change of major version is not an "
        "upgrade etcd supports",
        next, running);
  }
  if (to->minor < from->minor) {
    return fmt::format(
        "etcd {} cannot replace etcd {}: a downgrade to an older minor version is "
        "refused (etcd's cluster version and data format only move forward); "
        "restore a backup into a new cluster to go back",
        next, running);
  }
  if (to->minor > from->minor + 1) {
    return fmt::format(
        "etcd {} cannot replace etcd {}: etcd upgrades one minor version at a "
        "time; roll out {}.{} first",
        next, running, from->major, from->minor + 1);
  }
  return std::nullopt;
}

}  // namespace etcd_mesos::scheduler
