#include "local/resources.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

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

ResourceBag ResourceBag::From(const google::protobuf::RepeatedPtrField<mesos::Resource>& list) {
  ResourceBag bag;
  for (const auto& r : list) {
    if (r.type() == mesos::Value::SCALAR) {
      bag.scalars_[r.name()] += ToMillis(r.scalar().value());
    } else if (r.type() == mesos::Value::RANGES) {
      auto& ranges = bag.ranges_[r.name()];
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
  for (const auto& [name, v] : other.scalars_) scalars_[name] += v;
  for (const auto& [name, rs] : other.ranges_) {
    auto& mine = ranges_[name];
    mine.insert(mine.end(), rs.begin(), rs.end());
    mine = Normalize(std::move(mine));
  }
}

void ResourceBag::Subtract(const ResourceBag& other) {
  for (const auto& [name, v] : other.scalars_) {
    auto it = scalars_.find(name);
    if (it == scalars_.end()) continue;
    it->second = std::max<int64_t>(0, it->second - v);
    if (it->second == 0) scalars_.erase(it);
  }
  for (const auto& [name, remove] : other.ranges_) {
    auto it = ranges_.find(name);
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
  for (const auto& [name, v] : other.scalars_) {
    if (v > 0 && Scalar(name) * 1000.0 + 0.5 < static_cast<double>(v)) return false;
  }
  for (const auto& [name, wanted] : other.ranges_) {
    auto it = ranges_.find(name);
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
  auto it = scalars_.find(name);
  return it == scalars_.end() ? 0.0 : static_cast<double>(it->second) / 1000.0;
}

std::vector<mesos::Resource> ResourceBag::ToProto() const {
  std::vector<mesos::Resource> out;
  for (const auto& [name, v] : scalars_) {
    mesos::Resource r;
    r.set_name(name);
    r.set_type(mesos::Value::SCALAR);
    r.mutable_scalar()->set_value(static_cast<double>(v) / 1000.0);
    out.push_back(std::move(r));
  }
  for (const auto& [name, rs] : ranges_) {
    mesos::Resource r;
    r.set_name(name);
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
  for (const auto& [name, v] : scalars_) out[name] = static_cast<double>(v) / 1000.0;
  for (const auto& [name, rs] : ranges_) {
    std::string text = "[";
    for (size_t i = 0; i < rs.size(); ++i) {
      if (i > 0) text += ", ";
      text += fmt::format("{}-{}", rs[i].first, rs[i].second);
    }
    out[name] = text + "]";
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
