// The scheduler's status page (GET / on the admin server): one HTML page for people, with the
// cluster's health, the members, the counters, the backups and the recent notes, refreshing
// itself. It is a pure rendering of the core's views (and of the notes the shell collected); the
// admin server (admin.h) only routes to it. Which members count as voters or learners is the
// core's rule (scheduler/core/rules.h), so the page never disagrees with /endpoints, /metrics or
// the core's own decisions.
//
// Threading: NoteLog is owned by the shell's event loop and not thread-safe; the renderings are
// pure functions of their arguments.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "scheduler/core/scheduler_core.h"

namespace etcd_mesos::scheduler::shell {

// The last notes of the core and of the shell, with wall-clock time, for the status page.
struct TimedNote {
  std::chrono::system_clock::time_point at;
  Note note;
  uint64_t seq = 0;  // 1, 2, ...: the console asks for the notes after the last it has
};
// Bounded: the oldest notes go first (a few hours of a busy cluster's decisions).
class NoteLog {
 public:
  static constexpr size_t kKeep = 1000;
  void Add(Note note);
  const std::deque<TimedNote>& notes() const { return notes_; }

 private:
  std::deque<TimedNote> notes_;
  uint64_t next_seq_ = 1;
};

// Seconds since the newest backup was written (`now_unix`: the wall clock); -1 when there is none.
int64_t BackupAgeSeconds(const SchedulerCore& core, int64_t now_unix);

// The whole page. `now_unix`: the wall clock (seconds), for the age of the newest backup.
// `standby_leader`: set on a standby instance (the leader's admin URL, empty when none is known),
// whose page shows the state the leader last stored, under a banner naming the leader.
std::string RenderStatusPage(const SchedulerCore& core, const NoteLog& notes, int64_t now_unix = 0,
                             const std::optional<std::string>& standby_leader = std::nullopt);

}  // namespace etcd_mesos::scheduler::shell
