#include "common/uri.h"

#include <charconv>

namespace etcd_mesos {
namespace {

Result<uint16_t> ParsePort(std::string_view text, std::string_view whole) {
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || value == 0 ||
      value > 65535) {
    return MakeError(ErrorCode::kInvalidArgument, "'{}': port '{}' is not a number in 1..65535",
                     whole, text);
  }
  return static_cast<uint16_t>(value);
}

bool ValidHost(std::string_view host) {
  if (host.empty()) return false;
  for (char c : host) {
    if (c <= ' ' || c == '/' || c == '@' || c == '?' || c == '#' || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Result<HostPort> ParseHostPort(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return MakeError(ErrorCode::kInvalidArgument, "'{}' is not [ipv6]:port", text);
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return MakeError(ErrorCode::kInvalidArgument, "'{}' is not host:port (no port)", text);
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "'{}' is not host:port (write IPv6 addresses as [addr]:port)", text);
    }
  }
  if (!ValidHost(host)) {
    return MakeError(ErrorCode::kInvalidArgument, "'{}': host '{}' is empty or malformed", text,
                     host);
  }
  auto p = ParsePort(port, text);
  if (!p.ok()) return p.error();
  return HostPort{std::string(host), *p};
}

std::string HttpUrl::ToString() const {
  return fmt::format("{}://{}{}", scheme, endpoint.ToString(), path);
}

Result<HttpUrl> ParseHttpUrl(std::string_view text) {
  HttpUrl url;
  std::string_view rest;
  if (text.starts_with("http://")) {
    url.scheme = "http";
    rest = text.substr(7);
  } else if (text.starts_with("https://")) {
    url.scheme = "https";
    rest = text.substr(8);
  } else {
    return MakeError(ErrorCode::kInvalidArgument, "'{}' is not an http:// or https:// URL", text);
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  url.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (authority.find('@') != std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "'{}': credentials in URLs are not supported; use the secret flags", text);
  }
  bool has_port = !authority.empty() && authority.back() != ']' &&
                  authority.find(':', authority.starts_with('[') ? authority.find(']') : 0) !=
                      std::string_view::npos;
  if (has_port) {
    auto hp = ParseHostPort(authority);
    if (!hp.ok()) return hp.error().Context(fmt::format("'{}'", text));
    url.endpoint = *hp;
  } else {
    std::string_view host = authority;
    if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
    if (!ValidHost(host)) {
      return MakeError(ErrorCode::kInvalidArgument, "'{}': host is empty or malformed", text);
    }
    url.endpoint =
        HostPort{std::string(host), static_cast<uint16_t>(url.scheme == "https" ? 443 : 80)};
  }
  return url;
}

Result<HttpUrl> ResolveLocation(const HttpUrl& base, std::string_view location) {
  if (location.starts_with("//")) {
    return ParseHttpUrl(fmt::format("{}:{}", base.scheme, location));
  }
  if (location.starts_with("/")) {
    HttpUrl url = base;
    url.path = std::string(location);
    return url;
  }
  return ParseHttpUrl(location);
}

std::string ZkUrl::ServersString() const {
  std::string out;
  for (const auto& s : servers) {
    if (!out.empty()) out += ',';
    out += s.ToString();
  }
  return out;
}

std::string ZkUrl::ToString() const { return fmt::format("zk://{}{}", ServersString(), path); }

Result<ZkUrl> ParseZkUrl(std::string_view text) {
  if (!text.starts_with("zk://")) {
    return MakeError(ErrorCode::kInvalidArgument, "'{}' is not a zk:// URL", text);
  }
  std::string_view rest = text.substr(5);
  ZkUrl url;
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument, "'{}': a path is required (zk://host:port/path)",
                     text);
  }
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = rest.substr(slash);
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path == "/" || path.find("//") != std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument, "'{}': path '{}' must name a znode below '/'",
                     text, path);
  }
  url.path = std::string(path);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = authority.substr(0, at);
    authority = authority.substr(at + 1);
    size_t colon = cred.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return MakeError(ErrorCode::kInvalidArgument, "'{}': credentials must be user:password",
                       text);
    }
    url.user = std::string(cred.substr(0, colon));
    url.password = std::string(cred.substr(colon + 1));
  }
  if (authority.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "'{}': no ZooKeeper servers given", text);
  }
  size_t start = 0;
  while (start <= authority.size()) {
    size_t comma = authority.find(',', start);
    std::string_view one = authority.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    auto hp = ParseHostPort(one);
    if (!hp.ok()) return hp.error().Context(fmt::format("'{}'", text));
    url.servers.push_back(*hp);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return url;
}

Result<MasterAddress> ParseMasterAddress(std::string_view text) {
  MasterAddress out;
  if (text.starts_with("zk://")) {
    auto zk = ParseZkUrl(text);
    if (!zk.ok()) return zk.error();
    out.zk = *zk;
    return out;
  }
  if (text.starts_with("http://") || text.starts_with("https://")) {
    auto url = ParseHttpUrl(text);
    if (!url.ok()) return url.error();
    out.direct = url->endpoint;
    return out;
  }
  if (text.starts_with("master@")) text.remove_prefix(7);
  auto hp = ParseHostPort(text);
  if (!hp.ok()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--master '{}' is neither host:port nor zk://host:port/path ({})", text,
                     hp.error().message);
  }
  out.direct = *hp;
  return out;
}

}  // namespace etcd_mesos
