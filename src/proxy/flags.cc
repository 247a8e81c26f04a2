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
    "A TLS cluster (its members serve https and ask every client for a certificate of the\n"
    "cluster's CA) needs --cacert, --cert and --key, as etcdctl does: the proxy checks that it\n"
    "gets in, then hands them to the grpc-proxy. etcd 3.4's grpc-proxy takes only a client\n"
    "certificate with an empty Common Name (CN). Without --cacert the proxy refuses https\n"
    "members rather than fall back to plain http. Its own listener stays plain (for clients on\n"
    "127.0.0.1) unless --listen-cert-file and --listen-key-file are given:\n"
    "\n"
    "  etcd-mesos-proxy --scheduler=https://sched:12300 --cacert=ca.pem --cert=proxy.pem \\\n"
    "      --key=proxy-key.pem\n"
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

Result<ParsedProxyFlags> ParseProxyFlags(const std::vector<std::string>& args,
                                         const std::map<std::string, std::string>& env) {
  using std::chrono::milliseconds;
  ParsedProxyFlags out;
  ProxyFlags& f = out.flags;
  std::string scheduler, master, listen = f.listen_addr.ToString(), listen_urls;

  FlagSet flags("etcd-mesos-proxy", kDescription);
  Flag& scheduler_flag = flags.Add(
      "--scheduler", &scheduler,
      "The scheduler's admin address, http://host:port or https://host:port with --cacert "
      "(its certificate is checked against --cacert and the system's trust store; its /members "
      "lists the members: the cheapest and most exact source)");
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
  flags
      .Add("--cacert", &f.cacert,
           "TLS to the members: the CA bundle (PEM) their certificates must chain "
           "to, also for an https --scheduler. Required when the members serve "
           "https; with --master it says that they do")
      .Env("ETCD_MESOS_PROXY_CACERT");
  Flag& cert = flags
                   .Add("--cert", &f.cert,
                        "TLS to the members: the client certificate (PEM) the proxy and its "
                        "grpc-proxy present, issued by the cluster's CA (members require one)")
                   .Env("ETCD_MESOS_PROXY_CERT");
  Flag& key =
      flags.Add("--key", &f.key, "The private key (PEM) of --cert").Env("ETCD_MESOS_PROXY_KEY");
  Flag& listen_cert =
      flags
          .Add("--listen-cert-file", &f.listen_cert_file,
               "TLS on --listen-addr: the proxy's server certificate (PEM). Default: plain, meant "
               "for local clients on 127.0.0.1. etcd 3.4's grpc-proxy encrypts but cannot require "
               "client certificates: do not expose it beyond the machine's trusted clients")
          .Env("ETCD_MESOS_PROXY_LISTEN_CERT_FILE");
  Flag& listen_key = flags
                         .Add("--listen-key-file", &f.listen_key_file,
                              "The private key (PEM) of --listen-cert-file")
                         .Env("ETCD_MESOS_PROXY_LISTEN_KEY_FILE");

  auto parsed = flags.Parse(args, env);
  if (!parsed.ok()) return parsed.error();
  out.help = parsed->exit;
  out.text = std::move(parsed->text);
  if (out.help) return out;

  // Exactly one source of truth about the members.
  if (scheduler.empty() == master.empty()) {
    return Bad("give exactly one of --scheduler=http://host:port and --master=host:port|zk://...");
  }
  // A certificate without its key (or the reverse) is a typo, not a choice; a client certificate
  // without --cacert would leave the members' certificates checked against nothing we know of
  // (the cluster's CA is in no system store).
  if (f.cert.empty() != f.key.empty()) {
    return (f.cert.empty() ? key : cert).Bad("--cert and --key go together");
  }
  if (!f.cert.empty() && f.cacert.empty()) {
    return cert.Bad(
        "needs --cacert, the cluster's CA bundle that the members' certificates "
        "chain to");
  }
  if (f.listen_cert_file.empty() != f.listen_key_file.empty()) {
    return (f.listen_cert_file.empty() ? listen_key : listen_cert)
        .Bad("--listen-cert-file and --listen-key-file go together");
  }
  if (!scheduler.empty()) {
    auto u = ParseHttpUrl(scheduler.find("://") == std::string::npos ? "http://" + scheduler
                                                                     : scheduler);
    if (!u.ok()) return scheduler_flag.Bad(u.error().message);
    if (u->scheme != "http" && u->scheme != "https") {
      return scheduler_flag.Bad("only http:// and https:// are supported");
    }
    if (u->scheme == "https" && f.cacert.empty()) {
      return scheduler_flag.Bad(
          "https needs --cacert, the CA bundle the scheduler's certificate "
          "chains to");
    }
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
