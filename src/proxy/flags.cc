#include "proxy/flags.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "common/duration.h"

namespace etcd_mesos::proxy {
namespace {

constexpr const char* kDescription =
    "etcd-mesos-proxy: a local etcd gRPC proxy that follows an etcd-mesos cluster.\n"
    "\n"
    "Finds the cluster's current members (from the scheduler's /members, or from the Mesos\n"
    "master's /master/state by framework name), runs `etcd grpc-proxy start` on --listen-addr\n"
    "pointed at them, and polls: when members are replaced or the cluster is reseeded, the\n"
    "grpc-proxy is restarted on the new members, so clients that only know --listen-addr keep\n"
    "working. With --once it prints the members' client URLs, comma-separated, and exits:\n"
    "\n"
    "  ETCDCTL_API=3 ETCDCTL_ENDPOINTS=$(etcd-mesos-proxy --once --scheduler=http://sched:12300) "
    "\\\n"
    "      etcdctl member list\n"
    "  etcd-mesos-proxy --master=zk://zk1:2181/mesos --framework-name=etcd-prod\n"
    "\n"
    "Flags may be written Go-style too (-master=...), as the original etcd-mesos-proxy took them.\n"
    "\n"
    "Exit codes: 0 after --once or SIGINT/SIGTERM; 1 when no cluster was found within --wait,\n"
    "or the grpc-proxy cannot be kept running; 2 for bad flags.\n";

Result<std::chrono::milliseconds> Millis(const std::string& flag, const std::string& value,
                                         std::chrono::milliseconds min) {
  auto d = ParseDuration(value);
  if (!d.ok()) return d.error().Context(flag);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  if (ms < min) {
    return MakeError(ErrorCode::kInvalidArgument, "{}={}: must be at least {}", flag, value,
                     FormatDuration(min));
  }
  return ms;
}

// The original Go proxy's users wrote `-master=...`; CLI11 wants `--master=...`.
std::vector<std::string> GoStyle(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const auto& a : args) {
    bool go = a.size() > 2 && a[0] == '-' && std::isalpha(static_cast<unsigned char>(a[1])) &&
              std::isalpha(static_cast<unsigned char>(a[2]));
    out.push_back(go ? "-" + a : a);
  }
  return out;
}

// The original's --listen-client-urls (a list of URLs) as one grpc-proxy listen address.
Result<std::string> ListenFromClientUrls(const std::string& urls) {
  if (urls.find(',') != std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "--listen-client-urls={}: the gRPC proxy listens on one address; give one",
                     urls);
  }
  auto u = ParseHttpUrl(urls);
  if (!u.ok()) return u.error().Context("--listen-client-urls");
  return u->endpoint.ToString();
}

Error Bad(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message) + " (see --help)"};
}

// Flag values as typed, before they are checked.
struct RawFlags {
  std::string scheduler, master, listen_urls;
  std::string listen = "127.0.0.1:23790", poll = "5s", wait = "30s", timeout = "5s";
};

void AddOptions(CLI::App& app, RawFlags& raw, ProxyFlags& f) {
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.add_option("--scheduler", raw.scheduler,
                 "The scheduler's admin address, http://host:port (its /members lists the "
                 "members; the cheapest and most exact source)");
  app.add_option("--master", raw.master,
                 "The Mesos master, host:port or zk://host:port,.../mesos: its /master/state "
                 "lists the framework's running tasks (use when the scheduler's address is not "
                 "known)");
  app.add_option("--framework-name", f.framework_name,
                 "With --master: the framework whose tasks are the members (etcd-<cluster-name>)")
      ->capture_default_str();
  CLI::Option* listen =
      app.add_option("--listen-addr", raw.listen, "Where the gRPC proxy listens, host:port")
          ->capture_default_str();
  app.add_option("--listen-client-urls", raw.listen_urls,
                 "The original etcd-mesos-proxy's spelling of --listen-addr: one http://host:port")
      ->excludes(listen);
  app.add_option("--etcd-bin", f.etcd_bin,
                 "The etcd binary (3.4+) that runs `grpc-proxy start`: a path, or a name "
                 "searched in PATH")
      ->capture_default_str();
  app.add_option("--data-dir", f.data_dir,
                 "Directory for the grpc-proxy's data and log (default: a fresh temporary "
                 "directory, removed at exit)");
  app.add_option("--poll-interval", raw.poll,
                 "How often to ask for the members (jittered; failures back off up to 6x)")
      ->capture_default_str();
  app.add_option("--wait", raw.wait,
                 "How long to keep looking for the cluster at start before giving up with an "
                 "error (0: one try)")
      ->capture_default_str();
  app.add_option("--request-timeout", raw.timeout, "Deadline of one HTTP request")
      ->capture_default_str();
  app.add_flag("--once", f.once, "Print the client URLs comma-separated on stdout and exit");
  app.add_option("--log-level", f.log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
}

// Exactly one source of truth about the members.
Status CheckSource(const RawFlags& raw, ProxyFlags& f) {
  if (raw.scheduler.empty() == raw.master.empty()) {
    return Bad("give exactly one of --scheduler=http://host:port and --master=host:port|zk://...");
  }
  if (!raw.scheduler.empty()) {
    const std::string& given = raw.scheduler;
    std::string url = given.find("://") == std::string::npos ? "http://" + given : given;
    auto u = ParseHttpUrl(url);
    if (!u.ok()) return Bad("--scheduler=" + given + ": " + u.error().message);
    if (u->scheme != "http") return Bad("--scheduler=" + given + ": only http:// is supported");
    f.scheduler = *u;
    return OkStatus();
  }
  auto m = ParseMasterAddress(raw.master);
  if (!m.ok()) return Bad("--master=" + raw.master + ": " + m.error().message);
  f.master = *m;
  f.master_text = raw.master;
  if (f.framework_name.empty()) return Bad("--framework-name must not be empty");
  return OkStatus();
}

Status CheckTheRest(const RawFlags& raw, ProxyFlags& f) {
  std::string listen = raw.listen;
  if (!raw.listen_urls.empty()) {
    auto from_urls = ListenFromClientUrls(raw.listen_urls);
    if (!from_urls.ok()) return Bad(from_urls.error().message);
    listen = *from_urls;
  }
  auto l = ParseHostPort(listen);
  if (!l.ok()) return Bad("--listen-addr=" + listen + ": " + l.error().message);
  f.listen_addr = *l;
  if (f.etcd_bin.empty()) return Bad("--etcd-bin must not be empty");
  auto p = Millis("--poll-interval", raw.poll, std::chrono::milliseconds(100));
  if (!p.ok()) return Bad(p.error().message);
  f.poll_interval = *p;
  auto w = Millis("--wait", raw.wait, std::chrono::milliseconds(0));
  if (!w.ok()) return Bad(w.error().message);
  f.wait = *w;
  auto t = Millis("--request-timeout", raw.timeout, std::chrono::milliseconds(100));
  if (!t.ok()) return Bad(t.error().message);
  f.request_timeout = *t;
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "error"};
  if (std::find(std::begin(kLevels), std::end(kLevels), f.log_level) == std::end(kLevels)) {
    return Bad("--log-level=" + f.log_level + ": expected trace, debug, info, warn or error");
  }
  return OkStatus();
}

}  // namespace

Result<ParsedProxyFlags> ParseProxyFlags(const std::vector<std::string>& args) {
  ParsedProxyFlags out;
  RawFlags raw;
  CLI::App app(kDescription, "etcd-mesos-proxy");
  AddOptions(app, raw, out.flags);
  std::vector<std::string> go = GoStyle(args);
  std::vector<std::string> reversed(go.rbegin(), go.rend());  // CLI11 takes it reversed
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out.help = true;
    out.text = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    return Bad(e.what());
  }
  if (auto s = CheckSource(raw, out.flags); !s.ok()) return s.error();
  if (auto s = CheckTheRest(raw, out.flags); !s.ok()) return s.error();
  return out;
}

}  // namespace etcd_mesos::proxy
