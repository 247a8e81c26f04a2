// MemberHealthy: the one rule for "is this etcd member healthy" from what a probe learnt, used by
// the scheduler shell's probes, the executor core's status updates and the simulator, so that the
// scheduler and the executor never disagree about the same member.
//
// A member is healthy when its maintenance status names a leader and reports no errors (no
// alarms), and, for a voter, its GET /health answered healthy. A learner's /health is not asked:
// etcd 3.4 serves it through a linearizable read, which a learner refuses ("rpc not supported
// for learner"), so for a learner the status alone decides.
//
// Threading: a pure function.
#pragma once

#include <cstdint>
#include <optional>

namespace etcd_mesos {

// `health`: GET /health's verdict, nullopt when it did not answer.
inline bool MemberHealthy(uint64_t leader, bool status_errors, std::optional<bool> health,
                          bool is_learner) {
  if (leader == 0 || status_errors) return false;
  return is_learner || health.value_or(false);
}

}  // namespace etcd_mesos
