#include "local/resources.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace etcd_mesos::local {
namespace {
int64_t ToMillis(double v) { return static_cast<int64_t>(std::llround(v * 1000.0)); }
}  // namespace

ResourceBag::Ranges ResourceBag::Normalize(Ranges ranges) {
  std::sort(ranges.begin(), ranges.end());
  Ranges out;
  for (auto [b, e] : ranges) {
    if (b > e) continue;
    if (!out.empty() && b <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, e);
    } else {
      out.emplace_back(b, e);
    }
  }
  return out;
}

// Resource.role and Resource.reservation are deprecated, but frameworks without
// RESERVATION_REFINEMENT still speak them, as Mesos 1.11 lets them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
mesos::Resource Normalized(mesos::Resource r) {
  r.clear_allocation_info();
  if (r.reservations_size() == 0 && r.has_role() && r.role() != "*") {
    auto* reservation = r.add_reservations();
    reservation->set_role(r.role());
    if (r.has_reservation()) {
      reservation->set_type(mesos::Resource::ReservationInfo::DYNAMIC);
      if (r.reservation().has_principal()) reservation->set_principal(r.reservation().principal());
      if (r.reservation().has_labels()) *reservation->mutable_labels() = r.reservation().labels();
    } else {
      reservation->set_type(mesos::Resource::ReservationInfo::STATIC);
    }
  }
  r.clear_role();
  r.clear_reservation();
  return r;
}

mesos::Resource ToLegacyFormat(mesos::Resource r) {
  if (r.reservations_size() == 0) {
    r.set_role("*");
    return r;
  }
  const auto& last = r.reservations(r.reservations_size() - 1);
  r.set_role(last.role());
  if (last.type() == mesos::Resource::ReservationInfo::DYNAMIC) {
    auto* reservation = r.mutable_reservation();
    if (last.has_principal()) reservation->set_principal(last.principal());
    if (last.has_labels()) *reservation->mutable_labels() = last.labels();
  }
  r.clear_reservations();
  return r;
}
#pragma GCC diagnostic pop

std::string ReservationRole(const mesos::Resource& r) {
  return r.reservations_size() == 0 ? "*" : r.reservations(r.reservations_size() - 1).role();
}

bool IsPersistentVolume(const mesos::Resource& r) {
  return r.has_disk() && r.disk().has_persistence();
}

std::string DescribeResource(const mesos::Resource& r, const std::string& allocated_role) {
  std::string out = r.name();
  if (!allocated_role.empty()) out += "(allocated: " + allocated_role + ")";
  if (r.reservations_size() > 0) {
    std::vector<std::string> each;
    for (const auto& res : r.reservations()) {
      std::string one = mesos::Resource::ReservationInfo::Type_Name(res.type()) + "," + res.role();
      if (res.has_principal()) one += "," + res.principal();
      if (res.has_labels() && res.labels().labels_size() > 0) {
        std::vector<std::string> labels;
        for (const auto& l : res.labels().labels()) labels.push_back(l.key() + ": " + l.value());
        one += ",{" + fmt::format("{}", fmt::join(labels, ", ")) + "}";
      }
      each.push_back("(" + one + ")");
    }
    out += "(reservations: [" + fmt::format("{}", fmt::join(each, ",")) + "])";
  }
  if (IsPersistentVolume(r)) {
    out += "[" + r.disk().persistence().id();
    if (r.disk().has_volume()) out += ":" + r.disk().volume().container_path();
    out += "]";
  }
  out += ":";
  if (r.type() == mesos::Value::RANGES) {
    std::vector<std::string> ranges;
    for (const auto& range : r.ranges().range()) {
      ranges.push_back(fmt::format("{}-{}", range.begin(), range.end()));
    }
    out += "[" + fmt::format("{}", fmt::join(ranges, ", ")) + "]";
  } else {
    out += fmt::format("{}", r.scalar().value());
  }
  return out;
}

ResourceBag::Key ResourceBag::KeyOf(const mesos::Resource& normalized) {
  mesos::Resource shape = normalized;
  shape.clear_name();
  shape.clear_type();
  shape.clear_scalar();
  shape.clear_ranges();
  shape.clear_set();
  return {normalized.name(), shape.SerializePartialAsString()};
}

mesos::Resource ResourceBag::Shape(const Key& key) {
  mesos::Resource r;
  r.ParsePartialFromString(key.second);
  r.set_name(key.first);
  return r;
}

ResourceBag ResourceBag::From(const google::protobuf::RepeatedPtrField<mesos::Resource>& list) {
  ResourceBag bag;
  for (const auto& given : list) {
    mesos::Resource r = Normalized(given);
    Key key = KeyOf(r);
    if (r.type() == mesos::Value::SCALAR) {
      bag.scalars_[key] += ToMillis(r.scalar().value());
    } else if (r.type() == mesos::Value::RANGES) {
      auto& ranges = bag.ranges_[key];
      for (const auto& range : r.ranges().range()) ranges.emplace_back(range.begin(), range.end());
      ranges = Normalize(std::move(ranges));
    }
  }
  return bag;
}

ResourceBag ResourceBag::From(const std::vector<mesos::Resource>& list) {
  google::protobuf::RepeatedPtrField<mesos::Resource> field(list.begin(), list.end());
  return From(field);
}

void ResourceBag::Add(const ResourceBag& other) {
  for (const auto& [key, v] : other.scalars_) scalars_[key] += v;
  for (const auto& [key, rs] : other.ranges_) {
    auto& mine = ranges_[key];
    mine.insert(mine.end(), rs.begin(), rs.end());
    mine = Normalize(std::move(mine));
  }
}

void ResourceBag::Subtract(const ResourceBag& other) {
  for (const auto& [key, v] : other.scalars_) {
    auto it = scalars_.find(key);
    if (it == scalars_.end()) continue;
    it->second = std::max<int64_t>(0, it->second - v);
    if (it->second == 0) scalars_.erase(it);
  }
  for (const auto& [key, remove] : other.ranges_) {
    auto it = ranges_.find(key);
    if (it == ranges_.end()) continue;
    Ranges result;
    for (auto [b, e] : it->second) {
      uint64_t cursor = b;
      for (auto [rb, re] : remove) {
        if (re < cursor || rb > e) continue;
        if (rb > cursor) result.emplace_back(cursor, rb - 1);
        if (re >= e) {
          cursor = e + 1;
          break;
        }
        cursor = re + 1;
      }
      if (cursor <= e) result.emplace_back(cursor, e);
    }
    it->second = Normalize(std::move(result));
    if (it->second.empty()) ranges_.erase(it);
  }
}

bool ResourceBag::Contains(const ResourceBag& other) const {
  for (const auto& [key, v] : other.scalars_) {
    if (v <= 0) continue;
    auto it = scalars_.find(key);
    int64_t have = it == scalars_.end() ? 0 : it->second;
    // A persistent volume is one thing: it is taken whole.
    bool volume = IsPersistentVolume(Shape(key));
    if (volume ? have != v : have < v) return false;
  }
  for (const auto& [key, wanted] : other.ranges_) {
    auto it = ranges_.find(key);
    for (auto [b, e] : wanted) {
      if (it == ranges_.end()) return false;
      bool covered = std::any_of(it->second.begin(), it->second.end(), [&](const auto& have) {
        return have.first <= b && e <= have.second;
      });
      if (!covered) return false;
    }
  }
  return true;
}

bool ResourceBag::Empty() const { return scalars_.empty() && ranges_.empty(); }

bool ResourceBag::Allocatable() const { return Scalar("cpus") >= 0.01 || Scalar("mem") >= 32; }

double ResourceBag::Scalar(const std::string& name) const {
  int64_t total = 0;
  for (auto it = scalars_.lower_bound({name, ""}); it != scalars_.end() && it->first.first == name;
       ++it) {
    total += it->second;
  }
  return static_cast<double>(total) / 1000.0;
}

std::vector<mesos::Resource> ResourceBag::ToProto() const {
  std::vector<mesos::Resource> out;
  for (const auto& [key, v] : scalars_) {
    mesos::Resource r = Shape(key);
    r.set_type(mesos::Value::SCALAR);
    r.mutable_scalar()->set_value(static_cast<double>(v) / 1000.0);
    out.push_back(std::move(r));
  }
  for (const auto& [key, rs] : ranges_) {
    mesos::Resource r = Shape(key);
    r.set_type(mesos::Value::RANGES);
    for (auto [b, e] : rs) {
      auto* range = r.mutable_ranges()->add_range();
      range->set_begin(b);
      range->set_end(e);
    }
    out.push_back(std::move(r));
  }
  return out;
}

nlohmann::json ResourceBag::Summary() const {
  nlohmann::json out = {{"cpus", Scalar("cpus")},
                        {"gpus", Scalar("gpus")},
                        {"mem", Scalar("mem")},
                        {"disk", Scalar("disk")}};
  for (const auto& [key, v] : scalars_) out[key.first] = Scalar(key.first);
  std::map<std::string, Ranges> by_name;
  for (const auto& [key, rs] : ranges_) {
    auto& all = by_name[key.first];
    all.insert(all.end(), rs.begin(), rs.end());
  }
  for (auto& [name, rs] : by_name) {
    rs = Normalize(std::move(rs));
    std::string text = "[";
    for (size_t i = 0; i < rs.size(); ++i) {
      if (i > 0) text += ", ";
      text += fmt::format("{}-{}", rs[i].first, rs[i].second);
    }
    out[name] = text + "]";
  }
  return out;
}

std::string ResourceBag::Describe(const std::string& allocated_role) const {
  std::vector<std::string> each;
  for (const auto& r : ToProto()) each.push_back(DescribeResource(r, allocated_role));
  return fmt::format("{}", fmt::join(each, "; "));
}

template <typename Pred>
ResourceBag ResourceBag::Filter(Pred pred) const {
  ResourceBag out;
  for (const auto& [key, v] : scalars_) {
    if (pred(Shape(key))) out.scalars_[key] = v;
  }
  for (const auto& [key, rs] : ranges_) {
    if (pred(Shape(key))) out.ranges_[key] = rs;
  }
  return out;
}

ResourceBag ResourceBag::Unreserved() const {
  return Filter([](const mesos::Resource& r) { return r.reservations_size() == 0; });
}

ResourceBag ResourceBag::ReservedTo(const std::string& role) const {
  return Filter([&](const mesos::Resource& r) {
    return r.reservations_size() > 0 && ReservationRole(r) == role;
  });
}

std::map<std::string, ResourceBag> ResourceBag::ReservedByRole() const {
  std::map<std::string, ResourceBag> out;
  for (const auto& r : ToProto()) {
    if (r.reservations_size() > 0) out[ReservationRole(r)].Add(From(std::vector{r}));
  }
  return out;
}

std::vector<mesos::Resource> ResourceBag::Volumes() const {
  std::vector<mesos::Resource> out;
  for (const auto& r : ToProto()) {
    if (IsPersistentVolume(r)) out.push_back(r);
  }
  return out;
}

Result<std::vector<mesos::Resource>> ParseResources(std::string_view spec) {
  std::vector<mesos::Resource> out;
  std::map<std::string, bool> seen;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(';', start);
    if (end == std::string_view::npos) end = spec.size();
    std::string_view part = spec.substr(start, end - start);
    start = end + 1;
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (part.empty()) {
      if (end == spec.size()) break;
      continue;
    }
    size_t colon = part.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "resource '{}' is not name:value (e.g. cpus:4 or ports:[31000-31999])",
                       part);
    }
    std::string name(part.substr(0, colon));
    std::string_view value = part.substr(colon + 1);
    for (char c : name) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) {
        return MakeError(ErrorCode::kInvalidArgument, "resource name '{}' is not valid", name);
      }
    }
    if (seen[name]) {
      return MakeError(ErrorCode::kInvalidArgument, "resource '{}' is given twice", name);
    }
    seen[name] = true;
    mesos::Resource r;
    r.set_name(name);
    if (!value.empty() && value.front() == '[') {
      if (value.back() != ']') {
        return MakeError(ErrorCode::kInvalidArgument, "resource '{}': range '{}' lacks ']'", name,
                         value);
      }
      r.set_type(mesos::Value::RANGES);
      std::string_view inner = value.substr(1, value.size() - 2);
      std::vector<std::pair<uint64_t, uint64_t>> ranges;
      size_t s = 0;
      while (s <= inner.size()) {
        size_t e = inner.find(',', s);
        if (e == std::string_view::npos) e = inner.size();
        std::string_view range = inner.substr(s, e - s);
        s = e + 1;
        while (!range.empty() && range.front() == ' ') range.remove_prefix(1);
        while (!range.empty() && range.back() == ' ') range.remove_suffix(1);
        size_t dash = range.find('-');
        uint64_t begin = 0, endv = 0;
        auto parse = [](std::string_view t, uint64_t* v) {
          auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), *v);
          return ec == std::errc() && p == t.data() + t.size() && !t.empty();
        };
        bool ok = dash == std::string_view::npos ? parse(range, &begin) && ((endv = begin), true)
                                                 : parse(range.substr(0, dash), &begin) &&
                                                       parse(range.substr(dash + 1), &endv);
        if (!ok) {
          return MakeError(ErrorCode::kInvalidArgument,
                           "resource '{}': '{}' is not a range like 31000-31999", name, range);
        }
        if (begin > endv) {
          return MakeError(ErrorCode::kInvalidArgument,
                           "resource '{}': range '{}' ends before it begins", name, range);
        }
        ranges.emplace_back(begin, endv);
        if (e == inner.size()) break;
      }
      std::sort(ranges.begin(), ranges.end());
      for (size_t i = 1; i < ranges.size(); ++i) {
        if (ranges[i].first <= ranges[i - 1].second) {
          return MakeError(ErrorCode::kInvalidArgument, "resource '{}': ranges overlap", name);
        }
      }
      for (const auto& [b, e] : ranges) {
        auto* range = r.mutable_ranges()->add_range();
        range->set_begin(b);
        range->set_end(e);
      }
    } else {
      double v = 0;
      std::string text(value);
      char* endp = nullptr;
      if (!text.empty()) v = std::strtod(text.c_str(), &endp);
      if (text.empty() || endp != text.c_str() + text.size() || !std::isfinite(v) || v < 0) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "resource '{}': '{}' is not a non-negative number", name, value);
      }
      r.set_type(mesos::Value::SCALAR);
      r.mutable_scalar()->set_value(v);
    }
    out.push_back(std::move(r));
  }
  if (out.empty()) return MakeError(ErrorCode::kInvalidArgument, "no resources given");
  return out;
}

}  // namespace etcd_mesos::local
