// The scheduler's domain rules: small predicates about members, tasks and quorums that every
// decision of the core, and every view of it (the admin API's /endpoints, /metrics and status
// page), must agree on. Each is stated once, here, and each has properties checked over many
// generated inputs (tests/unit/rules_test.cc), so that "is this etcd member ours", "may this task
// still run", "does this removal keep a quorum" mean the same thing wherever they are asked.
//
// Threading: pure functions of their arguments; no state, no I/O, no clock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/core/types.h"

namespace etcd_mesos::scheduler {

// ---- Task states ------------------------------------------------------------------------------

// A task that may still be running somewhere: Mesos is not sure it is gone. After a master
// failover reconciliation can answer TASK_LOST for live tasks, so LOST is "maybe" here, never
// proof of loss; UNREACHABLE and UNKNOWN are not proof either.
bool MaybeAlive(mesos::TaskState state);
// The task will not run again: counted as ended, no longer probed, removed from etcd.
bool Gone(mesos::TaskState state);
// Mesos has lost touch with the task (its agent may come back): alive until it stops answering.
bool Uncertain(mesos::TaskState state);

// ---- Reservations (durable members) -----------------------------------------------------------

// The value of label `key` (kLabelCluster, kLabelMember, ...) of a resource's own (last)
// reservation; "" if it has none.
std::string ReservationLabel(const mesos::Resource& r, std::string_view key);
// Whether an offer holds resources reserved for the cluster `cluster` (by kLabelCluster).
bool HoldsReservationsOf(const mesos::Offer& offer, std::string_view cluster);

// A member that may run as a voter (or was launched as one): what clients may be sent to, and
// what counts as a voter when etcd's own member list is not known.
bool MaybeVoter(const Member& member);
// A member that may run and is still a learner (it refuses clients' linearizable requests).
bool MaybeLearner(const Member& member);

// ---- Identity ---------------------------------------------------------------------------------

// How an etcd member (from etcd's member list) was recognised as one of our records.
enum class MatchStrength { kNone, kPeerUrl, kName, kId };

// Whether the etcd member `theirs` is the member our record `ours` describes, and by what.
//
// Three things could identify a member, and each is trustworthy only under its own condition:
//   - the id is etcd's identity: unique within a cluster and never reused; once both sides know
//     it, it alone decides (a record whose name or peer URL happens to equal another member's
//     must not take that member over, or a live member could be removed on a dead one's account);
//   - the name is ours (etcd-<n>, never reused: next_member is persisted), but etcd lists it only
//     once the member's process has started and published it; an added learner or a static
//     member that has not started yet is listed with an empty name. While our id is unknown, a
//     listed name decides: a different name is a different member, whatever its peer URL;
//   - the peer URL (host:port of an offer) is unique within one member list (etcd refuses a
//     second), but a port is offered again once its task ends, so a later member can have an
//     earlier one's URL. It decides only when nothing else can: our id unknown and etcd has no
//     name yet, i.e. a member that was launched but has not started (which, without this, would
//     look like a stranger and be removed while its task is still starting).
// Learner flags, task states and probe answers play no part: they describe, not identify.
MatchStrength MatchOf(const Member& ours, const EtcdMember& theirs);
bool Matches(const Member& ours, const EtcdMember& theirs);

// Our record of the etcd member `theirs`, or nullptr: the strongest match; among equally strong
// matches (only possible by peer URL) one whose task may still run, then the first by name.
const Member* OursFor(const std::map<std::string, Member>& members, const EtcdMember& theirs);
Member* OursFor(std::map<std::string, Member>& members, const EtcdMember& theirs);

// Whether etcd's member list names a member our record describes.
bool InEtcd(const Member& ours, const std::vector<EtcdMember>& listed);

// ---- Leadership and quorum --------------------------------------------------------------------

// The latest probes' leader votes: each reachable voter of ours that follows a leader votes once
// for the leader it follows.
struct LeaderVotes {
  uint64_t leader = 0;  // the leader with the most votes (the smallest id on a tie); 0 if none
  int votes = 0;        // the votes for `leader`
  int following = 0;    // reachable voters that follow some leader (the voters known alive)
};
LeaderVotes CountLeaderVotes(const std::map<std::string, Member>& members);

// The smallest number of a cluster's `voters` that make a majority (0 voters: 1, nothing can).
int Quorum(int voters);
// Whether `alive` of `voters` voters agree on a leader: a majority of them.
bool Agreed(int alive, int voters);
// Whether removing one (dead) voter of `voters` leaves a quorum of the voters that remain:
// `alive_remaining` voters that stay and are known alive must make a majority of voters - 1.
bool RemovalKeepsQuorum(int voters, int alive_remaining);
// Whether `alive` voters of `voters` are at most a bare quorum: one more loss costs the cluster.
bool BareQuorum(int voters, int alive);
// Whether `members` (that may still run) could form a quorum of `voters` on their own.
bool CouldFormQuorum(int members, int voters);

// ---- Health of one member ---------------------------------------------------------------------

// Why the etcd member whose record is `ours` (nullptr: no record of ours) should be removed from
// etcd, or nullopt when it should stay: no task of ours runs it, its task ended, its task is
// uncertain and it has not answered for the dead-member grace, it stayed a learner past the
// learner timeout, or (durable members) etcd's own view has had it cut off for --replace-after.
std::optional<std::string> WhyDead(const Member* ours, Time now, const CoreConfig& config);
// A member whose task is uncertain (UNKNOWN, UNREACHABLE) and that has not answered for the dead
// member grace: its agent may come back, but the member is given up.
bool UncertainAndSilent(const Member& m, Time now, const CoreConfig& config);

// Whether a learner at raft index `learner_index` is close enough to a leader at `leader_index`
// for etcd to promote it (within 10%, etcd 3.4's rule). An unknown leader index (0) says yes:
// asking early costs only a refusal.
bool InSync(uint64_t learner_index, uint64_t leader_index);

// ---- Reseed -----------------------------------------------------------------------------------

// Whether survivor `a` ranks before `b` as a reseed candidate: the higher raft index (the most of
// the cluster's data) first, then the name, so that the order is total and the same every time.
bool RanksBefore(const Member& a, const Member& b);
// The members a reseed can start from (reachable, task may still run), best first.
std::vector<const Member*> RankSurvivors(const std::map<std::string, Member>& members);

// How many revisions the last reseed is known to have lost (what other members had applied past
// the survivor's revision), and the sentence that tells the operator, revisions included.
uint64_t RevisionsLostByReseed(const Revisions& r);
std::string DescribeReseedWindow(const Revisions& r);

// ---- Certificates ------------------------------------------------------------------------------

// Whether a certificate valid until `not_after` expires within `renew_before` of `unix_now`
// (wall-clock seconds; 0 for either = not known yet, and nothing is due). Also true once expired.
bool RenewalDue(int64_t not_after, int64_t unix_now, Millis renew_before);

// Whether a TLS member's certificates are due (RenewalDue): the core renews such a member by a
// rollout, and the console shows its expiry as a warning.
bool CertificateRenewalDue(const Member& member, int64_t unix_now, Millis renew_before);

// A CA rotation (types.h CaRotation): what its phase adds to the launch configuration members
// are rolled to, and a sentence for the timeline and /rollout ("" when none is under way).
std::string CaLaunchSuffix(const CaRotation& ca);
std::string DescribeCaRotation(const CaRotation& ca);

// With --tls=files (types.h CaFiles): what a change of the CA files adds to the launch
// configuration ("" before the first change, else "+filesN"), and why the scheduler must not
// start with the files `next` given what its state recorded (nothing: it may). Members launched
// from the recorded files and from the new ones run side by side while the change is rolled
// out, so each side must trust the other's issuer; and every member must already run the
// recorded files (a change during the last one's rollout would leave three kinds of member).
// The reason says how to rotate a CA in three steps.
std::string CaFilesLaunchSuffix(const CaFiles& files);
std::optional<std::string> CaFilesChangeRefused(const PersistentState& state, const CaFiles& next);

// The members' certificates as /stats, /metrics and the console tell them: whether any member
// that may still run serves TLS, and the first of their certificates to expire.
struct CertificateExpiry {
  bool tls = false;
  int64_t earliest = 0;  // Unix seconds; 0 when none was issued
  std::string member;    // whose certificates expire first; "" when none was issued
};
CertificateExpiry EarliestCertificateExpiry(const std::map<std::string, Member>& members);

// ---- Rollouts ---------------------------------------------------------------------------------

// Why etcd `next` may not replace members running etcd `running` (versions as etcd reports them,
// "3.4.23"), or nullopt when it may: etcd upgrades one minor version at a time (a 3.4 member
// cannot join a cluster whose members run 3.6 until all are 3.5) and cannot go back to an older
// minor version (its cluster version and data format only move forward). Patch versions of one
// minor version mix either way. A version that does not parse (unknown) is never refused.
std::optional<std::string> RefusedVersionChange(std::string_view running, std::string_view next);

}  // namespace etcd_mesos::scheduler
