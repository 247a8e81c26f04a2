#include "scheduler/core/backup_retention.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include <fmt/format.h>

namespace etcd_mesos::scheduler {

namespace {

bool ValidClusterPart(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

template <typename T>
bool ParseNumber(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

Error BadName(std::string_view name, std::string_view why) {
  return MakeError(ErrorCode::kInvalidArgument,
                   "'{}' is not a backup name (etcd-<cluster>-<YYYYmmddTHHMMSSZ>-rev<R>-<cluster "
                   "id>.db): {}",
                   name, why);
}

}  // namespace

std::string FormatWallTime(WallTime t) {
  auto day = std::chrono::floor<std::chrono::days>(t);
  std::chrono::year_month_day ymd{day};
  std::chrono::hh_mm_ss hms{t - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

std::string FormatBackupName(const BackupName& name) {
  auto day = std::chrono::floor<std::chrono::days>(name.time);
  std::chrono::year_month_day ymd{day};
  std::chrono::hh_mm_ss hms{name.time - day};
  return fmt::format("etcd-{}-{:04}{:02}{:02}T{:02}{:02}{:02}Z-rev{}-{:016x}.db", name.cluster,
                     static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()), hms.hours().count(), hms.minutes().count(),
                     hms.seconds().count(), name.revision, name.cluster_id);
}

Result<BackupName> ParseBackupName(std::string_view file) {
  std::string_view s = file;
  if (!s.starts_with("etcd-")) return BadName(file, "it does not start with etcd-");
  if (!s.ends_with(".db")) return BadName(file, "it does not end with .db");
  s.remove_prefix(5);
  s.remove_suffix(3);
  // From the right: <cluster id>, rev<R>, <time>; what is left is the cluster name (which may
  // itself hold '-').
  auto last = s.rfind('-');
  if (last == std::string_view::npos) return BadName(file, "no cluster id");
  std::string_view id = s.substr(last + 1);
  s = s.substr(0, last);
  auto rev_at = s.rfind('-');
  if (rev_at == std::string_view::npos) return BadName(file, "no revision");
  std::string_view rev = s.substr(rev_at + 1);
  s = s.substr(0, rev_at);
  auto time_at = s.rfind('-');
  if (time_at == std::string_view::npos) return BadName(file, "no time");
  std::string_view when = s.substr(time_at + 1);
  std::string_view cluster = s.substr(0, time_at);

  BackupName out;
  if (!ValidClusterPart(cluster)) return BadName(file, "bad cluster name");
  out.cluster = std::string(cluster);
  if (id.size() != 16 || !ParseNumber(id, out.cluster_id, 16)) {
    return BadName(file, "the cluster id is not 16 hex digits");
  }
  if (!rev.starts_with("rev") || !ParseNumber(rev.substr(3), out.revision)) {
    return BadName(file, "the revision is not rev<number>");
  }
  // YYYYmmddTHHMMSSZ
  if (when.size() != 16 || when[8] != 'T' || when[15] != 'Z') {
    return BadName(file, "the time is not YYYYmmddTHHMMSSZ");
  }
  int y = 0;
  unsigned mo = 0, d = 0, h = 0, mi = 0, se = 0;
  if (!ParseNumber(when.substr(0, 4), y) || !ParseNumber(when.substr(4, 2), mo) ||
      !ParseNumber(when.substr(6, 2), d) || !ParseNumber(when.substr(9, 2), h) ||
      !ParseNumber(when.substr(11, 2), mi) || !ParseNumber(when.substr(13, 2), se)) {
    return BadName(file, "the time is not YYYYmmddTHHMMSSZ");
  }
  std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{mo},
                                  std::chrono::day{d}};
  if (!ymd.ok() || h > 23 || mi > 59 || se > 59) return BadName(file, "the time is not a date");
  out.time = std::chrono::sys_days{ymd} + std::chrono::hours(h) + std::chrono::minutes(mi) +
             std::chrono::seconds(se);
  return out;
}

std::vector<std::string> BackupsToPrune(const std::vector<BackupEntry>& backups,
                                        const RetentionPolicy& policy, WallTime now) {
  std::vector<const BackupEntry*> sorted;
  for (const auto& b : backups) sorted.push_back(&b);
  // Newest first; ties by name, so that the answer does not depend on the input's order.
  std::sort(sorted.begin(), sorted.end(), [](const BackupEntry* a, const BackupEntry* b) {
    if (a->time != b->time) return a->time > b->time;
    return a->name > b->name;
  });
  std::set<const BackupEntry*> keep;
  int keep_last = std::max(policy.keep_last, 1);
  for (size_t i = 0; i < sorted.size() && static_cast<int>(i) < keep_last; ++i) {
    keep.insert(sorted[i]);
  }
  // The newest of each bucket within its span (the first met, since newest come first).
  std::set<int64_t> hours_seen, days_seen;
  for (const BackupEntry* b : sorted) {
    if (b->time > now) {
      keep.insert(b);  // from the future: the clock stepped; not ours to judge by age
      continue;
    }
    auto age = now - b->time;
    if (age <= policy.hourly_span) {
      int64_t hour = std::chrono::floor<std::chrono::hours>(b->time).time_since_epoch().count();
      if (hours_seen.insert(hour).second) keep.insert(b);
    }
    if (age <= policy.daily_span) {
      int64_t day = std::chrono::floor<std::chrono::days>(b->time).time_since_epoch().count();
      if (days_seen.insert(day).second) keep.insert(b);
    }
  }
  // Never prune the last verified snapshot.
  for (const BackupEntry* b : sorted) {
    if (b->verified) {
      keep.insert(b);
      break;
    }
  }
  std::vector<std::string> prune;
  for (const BackupEntry* b : sorted) {
    if (!keep.count(b)) prune.push_back(b->name);
  }
  return prune;
}

}  // namespace etcd_mesos::scheduler
