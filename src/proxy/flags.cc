#include "proxy/flags.h"

#include "common/flags.h"

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

}  // namespace

Result<ParsedProxyFlags> ParseProxyFlags(const std::vector<std::string>& args) {
  using std::chrono::milliseconds;
  ParsedProxyFlags out;
  ProxyFlags& f = out.flags;
  std::string scheduler, master, listen = f.listen_addr.ToString(), listen_urls;

  FlagSet flags("etcd-mesos-proxy", kDescription);
  Flag& scheduler_flag = flags.Add(
      "--scheduler", &scheduler,
      "The scheduler's admin address, http://host:port (its /members lists the members; the "
      "cheapest and most exact source)");
  Flag& master_flag = flags.Add(
      "--master", &master,
      "The Mesos master, host:port or zk://host:port,.../mesos: its /master/state lists the "
      "framework's running tasks (use when the scheduler's address is not known)");
  Flag& framework =
      flags.Add("--framework-name", &f.framework_name,
                "With --master: the framework whose tasks are the members (etcd-<cluster-name>)");
  auto& listen_addr =
      flags.Add("--listen-addr", &listen, "Where the gRPC proxy listens, host:port");
  flags
      .Add("--listen-client-urls", &listen_urls,
           "The original etcd-mesos-proxy's spelling of --listen-addr: one http://host:port")
      .Excludes(listen_addr);
  flags
      .Add("--etcd-bin", &f.etcd_bin,
           "The etcd binary (3.4+) that runs `grpc-proxy start`: a path, or a name searched in "
           "PATH")
      .Check([](const std::string& bin) {
        return bin.empty() ? Problem("must not be empty") : std::nullopt;
      });
  flags.Add("--data-dir", &f.data_dir,
            "Directory for the grpc-proxy's data and log (default: a fresh temporary directory, "
            "removed at exit)");
  flags
      .Add("--poll-interval", &f.poll_interval,
           "How often to ask for the members (jittered; failures back off up to 6x)")
      .AtLeast(milliseconds(100));
  flags
      .Add("--wait", &f.wait,
           "How long to keep looking for the cluster at start before giving up with an error (0: "
           "one try)")
      .AtLeast(milliseconds(0));
  flags.Add("--request-timeout", &f.request_timeout, "Deadline of one HTTP request")
      .AtLeast(milliseconds(100));
  flags.Add("--once", &f.once, "Print the client URLs comma-separated on stdout and exit");
  flags.Add("--log-level", &f.log_level, "trace, debug, info, warn or error").Check(LogLevel);

  auto parsed = flags.Parse(args);
  if (!parsed.ok()) return parsed.error();
  out.help = parsed->exit;
  out.text = std::move(parsed->text);
  if (out.help) return out;

  // Exactly one source of truth about the members.
  if (scheduler.empty() == master.empty()) {
    return Bad("give exactly one of --scheduler=http://host:port and --master=host:port|zk://...");
  }
  if (!scheduler.empty()) {
    auto u = ParseHttpUrl(scheduler.find("://") == std::string::npos ? "http://" + scheduler
                                                                     : scheduler);
    if (!u.ok()) return scheduler_flag.Bad(u.error().message);
    if (u->scheme != "http") return scheduler_flag.Bad("only http:// is supported");
    f.scheduler = *u;
  } else {
    auto m = ParseMasterAddress(master);
    if (!m.ok()) return master_flag.Bad(m.error().message);
    if (f.framework_name.empty()) return framework.Bad("must not be empty");
    f.master = *m;
    f.master_text = master;
  }
  if (!listen_urls.empty()) {
    auto from_urls = ListenFromClientUrls(listen_urls);
    if (!from_urls.ok()) return Bad(from_urls.error().message);
    listen = *from_urls;
  }
  auto l = ParseHostPort(listen);
  if (!l.ok()) return Bad("--listen-addr=" + listen + ": " + l.error().message);
  f.listen_addr = *l;
  return out;
}

}  // namespace etcd_mesos::proxy
