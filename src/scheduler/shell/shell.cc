#include "scheduler/shell/shell.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "common/duration.h"
#include "common/encoding.h"
#include "common/member_health.h"
#include "common/overloaded.h"
#include "common/wait_status.h"
#include "etcd/client.h"
#include "etcd/hashkv.h"
#include "net/http.h"
#include "scheduler/core/backup_retention.h"
#include "scheduler/core/rules.h"
#include "scheduler/shell/admin_token.h"
#include "scheduler/shell/backups.h"
#include "scheduler/shell/launch_config.h"
#include "scheduler/shell/member_certificates.h"
#include "scheduler/shell/membership_route.h"
#include "scheduler/shell/state_codec.h"
#include "tls/pki.h"

namespace etcd_mesos::scheduler::shell {
namespace fs = std::filesystem;

namespace {

using mesos::scheduler::Call;
using MesosEvent = mesos::scheduler::Event;
using json = nlohmann::json;

constexpr std::chrono::milliseconds kMembershipTimeout{5000};
// How often, and how long, to ask for a settled etcd leader before a membership change.
constexpr std::chrono::milliseconds kLeaderPoll{50};
constexpr std::chrono::milliseconds kLeaderWait{5000};
constexpr std::chrono::seconds kReseedTimeout{150};  // the executor answers when it is done
constexpr const char* kProbeKey = "etcd-mesos/health-probe";

Error HttpError(const net::HttpResponse& r, std::string_view what) {
  std::string message;
  json j = json::parse(r.body, nullptr, false);
  if (j.is_object()) {
    for (const char* key : {"message", "error", "outcome"}) {
      if (j.contains(key) && j[key].is_string()) {
        message = j[key].get<std::string>();
        break;
      }
    }
  }
  if (message.empty()) message = r.body.substr(0, 200);
  ErrorCode code = ErrorCode::kInternal;
  if (r.status == 401 || r.status == 403) code = ErrorCode::kUnauthenticated;
  if (r.status == 409) code = ErrorCode::kRefused;
  if (r.status == 404) code = ErrorCode::kNotFound;
  if (r.status == 503) code = ErrorCode::kUnavailable;
  return MakeError(code, "{}: HTTP {}: {}", what, r.status, message);
}

Result<uint64_t> JsonUnsigned(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    uint64_t out = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (!s.empty() && ec == std::errc() && p == s.data() + s.size()) return out;
  }
  return MakeError(ErrorCode::kInvalidArgument, "not an unsigned integer");
}

}  // namespace

// ---- Executor answers -----------------------------------------------------------------------

Result<uint64_t> ParseReseedAnswer(unsigned status, std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("outcome") && j["outcome"] == "busy") {
    // kConflict: it is standing alone already (the core asks it again, not the next survivor).
    return MakeError(ErrorCode::kConflict, "the executor's reseed outcome is busy: {}",
                     j.value("message", "a reseed is already running"));
  }
  if (status != 200) {
    net::HttpResponse r;
    r.status = status;
    r.body = std::string(body);
    return HttpError(r, "the executor refused the reseed");
  }
  if (!j.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "the executor's reseed answer is not JSON: {}",
                     body.substr(0, 200));
  }
  if (j.contains("outcome") && j["outcome"].is_string() && j["outcome"] != "reseeded") {
    return MakeError(ErrorCode::kRefused, "the executor's reseed outcome is {}",
                     j["outcome"].get<std::string>());
  }
  // {"facts":{"raft_index":"42",...}} today; a flat {"raft_index":...} is taken too.
  for (const json* where : {j.contains("facts") ? &j["facts"] : nullptr, &j}) {
    if (where == nullptr || !where->is_object() || !where->contains("raft_index")) continue;
    auto index = JsonUnsigned((*where)["raft_index"]);
    if (index.ok()) return index;
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "the executor's reseed answer has no raft_index: {}", body.substr(0, 200));
}

// ---- The shell ------------------------------------------------------------------------------

namespace {

// With --tls=files, what the core records of the CA files (types.h CaFiles): the fingerprints of
// the issuer (the first certificate) and of every CA trusted. Empty otherwise, or when the files
// do not parse (LoadTls then stops the scheduler, naming the problem).
CaFiles CaFilesOf(const ShellConfig& shell) {
  if (shell.tls != "files") return {};
  auto bundle = tls::ReadBundle(shell.tls_ca_cert);
  if (!bundle.ok()) return {};
  CaFiles files{bundle->front().sha256_fingerprint, {}, 0};
  for (const auto& ca : *bundle) files.trusted.push_back(ca.sha256_fingerprint);
  std::sort(files.trusted.begin(), files.trusted.end());
  files.trusted.erase(std::unique(files.trusted.begin(), files.trusted.end()), files.trusted.end());
  return files;
}

// The core's config with what members are launched with (see launch_config.h), which needs the
// served etcd's version: asked of the binary once, at start.
CoreConfig WithLaunchConfig(SchedulerFlags& flags) {
  auto version = EtcdBinaryVersion(flags.shell.etcd_bin);
  if (!version.ok()) {
    spdlog::warn("{}: etcd version rules are off for rollouts", version.error().message);
  }
  LaunchConfig launch =
      DescribeLaunch(flags.core, EtcdUpkeepFlags(flags.shell.upkeep), version.ok() ? *version : "");
  flags.core.launch_config = launch.fingerprint;
  flags.core.ca_files = CaFilesOf(flags.shell);
  flags.core.launch_summary = launch.summary;
  flags.core.etcd_version = version.ok() ? *version : "";
  spdlog::info("members are launched with {} ({})", launch.summary, launch.fingerprint);
  if (flags.core.durable()) {
    spdlog::info(
        "durable members (role '{}'): each member's resources are reserved and its data dir is a "
        "persistent volume; a member whose task ends is restarted in place on it, and replaced "
        "only if that has not happened within {} (--replace-after)",
        flags.core.role, ShowDuration(flags.core.replace_after));
  } else {
    spdlog::info(
        "members are not durable: with --role=* nothing can be reserved, so a member's data "
        "lives in its task's sandbox and a member whose task ends is replaced by a new one "
        "(give --role another role for reserved resources and persistent volumes)");
  }
  return flags.core;
}

}  // namespace

SchedulerShell::SchedulerShell(boost::asio::io_context& io, SchedulerFlags flags, Options options)
    : io_(io),
      flags_(std::move(flags)),
      options_(std::move(options)),
      core_(WithLaunchConfig(flags_)),
      console_timer_(io),
      standby_timer_(io),
      tick_timer_(io),
      retry_timer_(io) {}

SchedulerShell::~SchedulerShell() { Stop(); }

HostPort SchedulerShell::admin_address() const { return admin_ ? admin_->address() : HostPort{}; }

Status SchedulerShell::Start() {
  auto store = store::OpenStateStore(io_, flags_.shell.store_spec);
  if (!store.ok()) return store.error().Context("opening the state store");
  store_ = std::move(*store);
  writer_.set_where(store_->Describe());

  AdminServer::Options admin;
  admin.listen = HostPort{flags_.shell.admin_bind_all ? "0.0.0.0" : flags_.shell.address,
                          flags_.shell.admin_port};
  if (Status s = PrepareAdminToken(admin); !s.ok()) return s;
  admin.backup_dir = flags_.shell.backup_dir;
  admin.healthz_max_backup_age = flags_.shell.healthz_max_backup_age;
  artifacts_ = {{"etcd-mesos-executor", flags_.shell.executor_bin},
                {"etcd", flags_.shell.etcd_bin},
                {"etcdctl", flags_.shell.etcdctl_bin}};
  admin.artifacts = artifacts_;
  if (!flags_.shell.backup_dir.empty() && flags_.shell.backup_verify) {
    BackupVerifier::Options verify;
    verify.backup_dir = flags_.shell.backup_dir;
    verify.etcd_bin = flags_.shell.etcd_bin;
    verify.etcdctl_bin = flags_.shell.etcdctl_bin;
    verify.timeout = flags_.shell.backup_verify_timeout;
    verifier_ = std::make_unique<BackupVerifier>(
        io_, verify, [this] { return LiveHashEndpoints(); },
        [this](const std::string& name, const RestoreCheck& check) {
          OnBackupVerified(name, check);
        });
    verifier_->Recover();
    admin.verify_backup = [this](const std::string& name) -> Status {
      if (!verifier_) return MakeError(ErrorCode::kRefused, "the scheduler is stopping");
      return verifier_->Enqueue(name);
    };
  }
  admin.tls_mode = flags_.shell.tls;
  admin.cluster_name = flags_.shell.cluster_name;
  if (!flags_.shell.admin_tls_cert.empty()) {
    auto https =
        net::TlsServerConfig::Create(flags_.shell.admin_tls_cert, flags_.shell.admin_tls_key);
    if (!https.ok()) return https.error().Context("--admin-tls-cert and --admin-tls-key");
    admin.https = *https;
  }
  if (flags_.shell.tls != "off") {
    admin.issue_certificates = [this](const std::string& body, const std::string& authorization) {
      return IssueCertificates(body, authorization);
    };
    admin.trust_bundle = [this]() -> std::string {
      if (!tls_record_) return "";
      auto ca = CaForRotation(*tls_record_, core_.state().ca);
      return ca.ok() ? ca->client_trust : tls_record_->ca_cert;
    };
    admin.client_certificate = [this](const std::string& name) -> Result<std::string> {
      if (!tls_record_) return MakeError(ErrorCode::kUnavailable, "TLS is not loaded yet");
      return IssueClientCertificate(name);
    };
  }
  admin_ = std::make_unique<AdminServer>(io_, admin, core_, notes_, [this](Event e) {
    auto* rollout = std::get_if<AdminRollout>(&e);
    if (rollout && rollout->command == RolloutCommand::kRotateCa) {
      return PrepareCaRotation(*rollout);
    }
    Feed(std::move(e));
  });
  admin_->SetHistory(&history_);
  if (verifier_) admin_->SetVerification(&verifier_->status());
  auto bound = admin_->Start();
  if (!bound.ok()) return bound.error();
  ArmConsole();
  artifact_base_ = fmt::format("{}://{}:{}/artifacts/", flags_.shell.AdminScheme(),
                               flags_.shell.address, bound->port);
  if (admin.insecure) {
    spdlog::warn(
        "--admin-insecure: every admin command (reseed, start-fresh, backup, restore, resize, "
        "rollouts) is open to anyone who can reach {}",
        bound->ToString());
  }
  spdlog::info("admin server on {}://{}/ ; state in {}", flags_.shell.AdminScheme(),
               bound->ToString(), store_->Describe());
  if (flags_.shell.backup_dir.empty()) {
    spdlog::warn("no --backup-dir: backups are off (no periodic snapshots, none before reseeds)");
  } else {
    spdlog::info("backups in {}: every {} (0: none periodic), keep last {}",
                 flags_.shell.backup_dir, flags_.core.backup_interval.count() / 1000.0,
                 flags_.shell.retention.keep_last);
  }
  if (!flags_.shell.restore_from.empty()) {
    // Verified and copied before anything starts: a corrupt file stops the scheduler here.
    auto imported = ImportSnapshot(
        flags_.shell.backup_dir, flags_.shell.restore_from, flags_.shell.cluster_name,
        std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
    if (!imported.ok()) {
      return imported.error().Context("--restore-from " + flags_.shell.restore_from +
                                      ": refusing to restore from it; nothing was launched");
    }
    restore_from_name_ = imported->name;
    spdlog::warn("--restore-from: {} verified (sha256 {}) and kept as backup {}",
                 flags_.shell.restore_from, imported->sha256, imported->name);
  }
  if (flags_.shell.store_spec.starts_with("zk://")) {
    StartElection();
  } else {
    LoadState(0);
  }
  return OkStatus();
}

void SchedulerShell::StartElection() {
  auto url = ParseZkUrl(flags_.shell.store_spec);
  if (!url.ok()) return Fatal(url.error().Context("--zk-framework-persist"));
  url->path += "/" + flags_.core.framework_name + "/leader";
  std::string me = fmt::format("{}://{}:{}/", flags_.shell.AdminScheme(), flags_.shell.address,
                               admin_->address().port);
  admin_->SetStandby("");  // until the election says
  election_ = std::make_unique<store::ZkElection>(
      io_, *url, me, store::ZkElection::Options{},
      Guarded([this](const store::ZkElection::View& view) { OnElection(view); }),
      Guarded([this](const std::string& why) { LoseLeadership(why); }));
  if (auto started = election_->Start(); !started.ok()) {
    return Fatal(started.error().Context("joining the leader election"));
  }
  spdlog::info("contending for the leadership of {} under {} as {}", flags_.core.framework_name,
               url->ToString(), me);
}

void SchedulerShell::LoseLeadership(const std::string& why) {
  Stop();  // not one more action: another instance may lead by now
  Error lost = MakeError(ErrorCode::kUnavailable,
                         "lost the leadership of {}: {}; stopped so that only the new leader acts",
                         flags_.core.framework_name, why);
  spdlog::critical("{}", lost.message);
  notes_.Add(Note{"error", lost.message, "election"});
  if (options_.on_lost_leadership) return options_.on_lost_leadership(lost);
  Fatal(lost);
}

void SchedulerShell::OnElection(const store::ZkElection::View& view) {
  if (view.leading && leading_) return HoldWhileInDoubt(view.suspended);
  if (!view.leading && leading_) {
    // Our node went while our session lives (deleted by hand): another may lead now.
    return LoseLeadership("the election no longer names this instance (its node is gone)");
  }
  if (view.leading) {
    leading_ = true;
    standby_timer_.cancel();
    admin_->SetStandby(std::nullopt);
    core_ = SchedulerCore(flags_.core);  // the standby's mirror of the stored state goes
    // Every write from now on lands only while our election node exists: once our session has
    // expired, nothing we write can overwrite what the next leader stores.
    store_->SetFence(fmt::format("/{}/leader/{}", flags_.core.framework_name, view.node));
    notes_.Add(
        Note{"warn", "elected: this instance leads " + flags_.core.framework_name, "election"});
    spdlog::warn("elected: this instance leads {} ({}); loading the state and subscribing",
                 flags_.core.framework_name, view.node);
    return LoadState(0);
  }
  std::string leader = view.leader_data.value_or("");
  admin_->SetStandby(leader);
  spdlog::info("standby: {}; serving the stored state and sending commands to the leader",
               leader.empty() ? std::string("no leader known yet") : leader + " leads");
  RefreshStandby();
}

// Cut off from ZooKeeper, a leader cannot know whether it still leads: its session may expire
// and another instance be elected. It holds every action (the core goes on deciding) until the
// election hears ZooKeeper again, well before any other instance could lead.
void SchedulerShell::HoldWhileInDoubt(bool in_doubt) {
  if (in_doubt == pipeline_.suspended()) return;
  if (admin_) admin_->SetHolding(in_doubt);
  if (in_doubt) {
    pipeline_.Suspend();
    std::string why =
        "lost the connection to ZooKeeper while leading: every action is held until it is back "
        "(or the session expires and another instance leads)";
    spdlog::warn("{}", why);
    notes_.Add(Note{"warn", why, "election"});
    return;
  }
  pipeline_.Resume();
  spdlog::info("ZooKeeper is back within the session: still the leader; carrying on");
  notes_.Add(Note{"info", "ZooKeeper is back within the session: still the leader", "election"});
  Drain();
}

// A standby's views are the state the leader last stored, read again every few seconds.
void SchedulerShell::RefreshStandby() {
  standby_timer_.cancel();
  if (leading_) return;
  store_->Get(StatePath(flags_.core.framework_name), Guarded([this](Result<store::Record> r) {
                if (leading_) return;
                // Rebuilt only when the leader has written since (most reads find nothing new).
                if (r.ok() && r->version != standby_version_) {
                  if (auto state = DecodeState(r->data); state.ok()) {
                    standby_version_ = r->version;
                    saw_teardown_ |= state->tearing_down;
                    core_ = SchedulerCore(flags_.core);
                    (void)core_.Handle(Started{std::move(*state), Clock::now()});  // views only
                  }
                }
                standby_timer_.expires_after(std::chrono::seconds(2));
                standby_timer_.async_wait(Guarded([this](boost::system::error_code ec) {
                  if (!ec) RefreshStandby();
                }));
              }));
}

void SchedulerShell::Stop() {
  if (stopped_) return;
  stopped_ = true;
  tick_timer_.cancel();
  console_timer_.cancel();
  retry_timer_.cancel();
  standby_timer_.cancel();
  election_.reset();             // withdraws: the next instance in line leads at once
  detector_.reset();             // closes its ZooKeeper session; no callback afterwards
  if (client_) client_->Stop();  // no TEARDOWN: the tasks keep running for the failover timeout
  if (admin_) {
    admin_->Stop();
    admin_->SetVerification(nullptr);
  }
  verifier_.reset();  // its scratch etcd stopped, its scratch directory removed
  alive_.reset();
}

void SchedulerShell::Fatal(const Error& error) {
  spdlog::critical("{}", error.ToString());
  notes_.Add(Note{"error", error.ToString(), "session"});
  if (options_.on_fatal) options_.on_fatal(error);
}

void SchedulerShell::LoadState(int attempt) {
  if (flags_.shell.tls != "off" && !tls_record_) {
    // The members' CA first: no member is launched, probed or asked before the scheduler can
    // speak TLS to it.
    return LoadTls(0, [this, attempt] { LoadState(attempt); });
  }
  std::string path = StatePath(flags_.core.framework_name);
  store_->Get(
      path, Guarded([this, path, attempt](Result<store::Record> r) {
        if (r.ok()) {
          auto state = DecodeState(r->data);
          if (!state.ok()) {
            return Fatal(state.error().Context(fmt::format(
                "the stored state at {}{} is unreadable; fix or remove it (the "
                "framework id is also at {})",
                store_->Describe(), path, FrameworkIdPath(flags_.core.framework_name))));
          }
          writer_.Loaded(r->version);
          return OnLoaded(std::move(*state));
        }
        if (r.error().code == ErrorCode::kNotFound && saw_teardown_) {
          // Elected after the leader it stood by for tore the cluster down: starting a
          // new cluster is the operator's call (a new start of the scheduler), not ours.
          return TornDown(
              fmt::format("the cluster {} was torn down by the leader this instance stood by for; "
                          "not starting a new one (start the scheduler again for a new cluster)",
                          flags_.core.framework_name));
        }
        if (r.error().code == ErrorCode::kNotFound) {
          // First start, or state written by the original etcd-mesos: take its framework
          // id.
          std::string id_path = FrameworkIdPath(flags_.core.framework_name);
          store_->Get(
              id_path, Guarded([this](Result<store::Record> id) {
                PersistentState state;
                if (id.ok() && !id->data.empty()) {
                  state.framework_id = id->data;
                  written_framework_id_ = id->data;
                  spdlog::info("no stored state; re-using the stored framework id {}", id->data);
                } else if (options_.teardown) {
                  // Nothing ran under this name: only records a start left.
                  return RemoveRecords(
                      {TlsPath(flags_.core.framework_name)}, {}, [this](std::vector<std::string>) {
                        TornDown(fmt::format("nothing to tear down: no state of cluster {} in {}",
                                             flags_.core.framework_name, store_->Describe()));
                      });
                }
                OnLoaded(std::move(state));
              }));
          return;
        }
        auto delay = StateWriter::LoadRetryDelay(attempt);
        spdlog::warn("reading the state from {} failed ({}); retrying in {} ms", store_->Describe(),
                     r.error().ToString(), delay.count());
        retry_timer_.expires_after(delay);
        retry_timer_.async_wait(Guarded([this, attempt](boost::system::error_code ec) {
          if (!ec) LoadState(attempt + 1);
        }));
      }));
}

// Mesos says only "Failed to fetch all URIs ... exited with status 1" when its fetcher could not
// download the executor or etcd from our artifact server; the reason is in the agent's sandbox.
// Name where to look, and the usual cause with an HTTPS admin server.
void SchedulerShell::ExplainFetchFailure(const mesos::TaskStatus& status) {
  if (status.reason() != mesos::TaskStatus::REASON_CONTAINER_LAUNCH_FAILED ||
      status.message().find("fetch") == std::string::npos) {
    return;
  }
  spdlog::warn(
      "task {}: the agent could not fetch its artifacts from {} (the fetcher's own error is in "
      "the task's sandbox on agent {}, file stderr){}",
      status.task_id().value(), artifact_base_, status.agent_id().value(),
      flags_.shell.AdminScheme() == "https"
          ? "; with --admin-tls-cert the agents' hosts must trust the CA of that certificate "
            "(their system trust store, which the Mesos fetcher uses)"
          : "");
}

// ---- TLS (member_certificates.h) ----------------------------------------------------------

void SchedulerShell::LoadTls(int attempt, std::function<void()> then) {
  auto now = std::chrono::system_clock::now();
  if (flags_.shell.tls == "files") {
    auto ca = tls::LoadAuthority(flags_.shell.tls_ca_cert, flags_.shell.tls_ca_key);
    if (!ca.ok()) return Fatal(ca.error().Context("--tls-ca-cert and --tls-ca-key"));
    // The first certificate issues (it is --tls-ca-key's); every one of them is trusted.
    auto bundle = tls::ReadBundle(flags_.shell.tls_ca_cert);
    if (!bundle.ok()) return Fatal(bundle.error().Context("--tls-ca-cert"));
    for (const auto& trusted : *bundle) {
      if (!trusted.is_ca) {
        return Fatal(MakeError(ErrorCode::kInvalidArgument,
                               "--tls-ca-cert: '{}' is not a CA certificate (basicConstraints "
                               "CA:TRUE); the file holds the CAs that issue and are trusted",
                               trusted.subject_common_name));
      }
    }
    // Every instance with the same key derives the same secret for the task tokens.
    TlsRecord record{ca->certificate_pem, ca->key_pem,
                     TaskCertificateToken(ca->key_pem, "etcd-mesos task certificates")};
    record.trust = flags_.shell.tls_ca_cert;
    if (Status s = UseTls(std::move(record), now); !s.ok()) return Fatal(s.error());
    return then();
  }
  std::string path = TlsPath(flags_.core.framework_name);
  auto retry = [this, attempt, then](const Error& e) {
    auto delay = StateWriter::LoadRetryDelay(attempt);
    spdlog::warn("reading the TLS record at {}{} failed ({}); retrying in {} ms",
                 store_->Describe(), TlsPath(flags_.core.framework_name), e.ToString(),
                 delay.count());
    retry_timer_.expires_after(delay);
    retry_timer_.async_wait(Guarded([this, attempt, then](boost::system::error_code ec) {
      if (!ec) LoadTls(attempt + 1, then);
    }));
  };
  store_->Get(
      path, Guarded([this, path, now, then, retry](Result<store::Record> r) {
        if (r.ok()) {
          auto record = DecodeTlsRecord(r->data);
          if (!record.ok()) {
            return Fatal(record.error().Context(fmt::format(
                "the TLS record at {}{} is unreadable; the members' certificates come from it",
                store_->Describe(), path)));
          }
          tls_version_ = r->version;
          if (Status s = UseTls(std::move(*record), now); !s.ok()) return Fatal(s.error());
          return then();
        }
        if (r.error().code != ErrorCode::kNotFound) return retry(r.error());
        auto record = NewTlsRecord(flags_.core.framework_name, now);
        if (!record.ok()) return Fatal(record.error().Context("making the cluster's CA"));
        // Created only if absent: of two instances starting at once, both use the first one's.
        store_->Create(path, EncodeTlsRecord(*record),
                       Guarded([this, path, then, retry](Result<store::Record> created) {
                         if (!created.ok() && created.error().code == ErrorCode::kAlreadyExists) {
                           return LoadTls(0, then);  // another instance made it first
                         }
                         if (!created.ok()) return retry(created.error());
                         spdlog::info("made the cluster's CA; it is kept at {}{}",
                                      store_->Describe(), path);
                         LoadTls(0, then);
                       }));
      }));
}

etcd::TlsFiles SchedulerTlsFiles(const std::string& state_dir) {
  fs::path dir = fs::path(state_dir) / "tls";
  return {(dir / "ca.crt").string(), (dir / "scheduler.crt").string(),
          (dir / "scheduler.key").string()};
}

Status SchedulerShell::UseTls(TlsRecord record, std::chrono::system_clock::time_point now) {
  auto ca = tls::LoadAuthority(record.ca_cert, record.ca_key);
  if (!ca.ok()) return ca.error();
  auto in_use = CaForRotation(record, core_.state().ca);
  if (!in_use.ok()) return in_use.error();
  if (Status s = IssueSchedulerCertificate(*in_use, now); !s.ok()) return s;
  tls_record_ = std::move(record);
  spdlog::info(
      "TLS ({}): members get certificates of CA '{}'; this scheduler's client "
      "certificate is in {}",
      flags_.shell.tls, tls::ReadCertificate(in_use->issuer.certificate_pem)->subject_common_name,
      fs::path(SchedulerTlsFiles(flags_.shell.state_dir).cert_file).parent_path().string());
  return OkStatus();
}

Status SchedulerShell::IssueSchedulerCertificate(const CaInUse& ca,
                                                 std::chrono::system_clock::time_point now) {
  // Probes, membership changes, backups, hash checks. No subject alternative name: etcd matches
  // those against the connection's source address, and a client certificate names its holder.
  tls::CertificateRequest me{.common_name = "etcd-mesos-scheduler",
                             .ip_addresses = {},
                             .dns_names = {},
                             .usage = tls::Usage::kClient,
                             .not_before = now - std::chrono::hours(1),
                             .not_after = now + flags_.shell.cert_lifetime};
  auto client = tls::Issue(ca.client_issuer, me);
  if (!client.ok()) return client.error().Context("the scheduler's client certificate");
  auto config =
      net::TlsClientConfig::Create(ca.client_trust, client->certificate_pem, client->key_pem);
  if (!config.ok()) return config.error().Context("the scheduler's client certificate");
  // The same, as files, for the etcdctl the scheduler runs (hash checks, backup verification).
  etcd::TlsFiles files = SchedulerTlsFiles(flags_.shell.state_dir);
  for (auto [path, text] : {std::pair{files.ca_file, ca.client_trust},
                            std::pair{files.cert_file, client->certificate_pem},
                            std::pair{files.key_file, client->key_pem}}) {
    if (Status s = WritePrivateFile(path, text); !s.ok()) {
      return s.error().Context("writing the scheduler's TLS files");
    }
  }
  etcd_tls_ = *config;
  etcdctl_tls_ = files;
  if (verifier_) verifier_->SetLiveTls(files);
  client_ca_in_use_ = ca.client_issuer.certificate_pem + ca.client_trust;
  auto info = tls::ReadCertificate(client->certificate_pem);
  client_cert_not_after_ =
      info.ok()
          ? std::chrono::duration_cast<std::chrono::seconds>(info->not_after.time_since_epoch())
                .count()
          : 0;
  return OkStatus();
}

void SchedulerShell::RefreshTls(std::chrono::system_clock::time_point now) {
  if (!tls_record_) return;
  auto ca = CaForRotation(*tls_record_, core_.state().ca);
  if (!ca.ok()) {
    if (ca.error().message != ca_error_) spdlog::error("TLS: {}", ca.error().message);
    ca_error_ = ca.error().message;
    return;
  }
  ca_error_.clear();
  int64_t unix_now =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  bool changed = ca->client_issuer.certificate_pem + ca->client_trust != client_ca_in_use_;
  if (changed || RenewalDue(client_cert_not_after_, unix_now, flags_.core.cert_renew_before)) {
    if (Status s = IssueSchedulerCertificate(*ca, now); !s.ok()) {
      spdlog::error("TLS: could not re-issue this scheduler's client certificate: {}",
                    s.error().ToString());
    } else {
      spdlog::info("TLS: this scheduler's client certificate re-issued ({}): of CA '{}'",
                   changed ? "the CA rotation moved on" : "renewal due",
                   tls::ReadCertificate(ca->client_issuer.certificate_pem)->subject_common_name);
    }
  }
  if (ca->finished) RecordFinishedRotation();
}

void SchedulerShell::RecordFinishedRotation() {
  if (recording_rotation_ || flags_.shell.tls != "auto") return;
  recording_rotation_ = true;
  TlsRecord finished = FinishedRotation(*tls_record_);
  std::string path = TlsPath(flags_.core.framework_name);
  store_->Set(
      path, EncodeTlsRecord(finished), tls_version_,
      Guarded([this, finished, path](Result<store::Record> r) {
        if (!r.ok()) {
          // Tried again at the next tick; the CAs in use do not depend on it. Written
          // by someone else meanwhile: read again first.
          spdlog::warn("TLS: recording the finished CA rotation at {}{} failed: {}",
                       store_->Describe(), path, r.error().ToString());
          if (r.error().code != ErrorCode::kConflict) {
            // Not at every tick while the store is away: again in 5 s.
            auto wait = std::make_shared<boost::asio::steady_timer>(io_, std::chrono::seconds(5));
            wait->async_wait(
                Guarded([this, wait](boost::system::error_code) { recording_rotation_ = false; }));
            return;
          }
          ReloadTlsRecord();
          return;
        }
        recording_rotation_ = false;
        tls_record_ = finished;
        tls_version_ = r->version;
        spdlog::info(
            "TLS: CA rotation recorded: CA {} ('{}') is the cluster's CA; the "
            "old CA is forgotten",
            finished.generation, tls::ReadCertificate(finished.ca_cert)->subject_common_name);
      }));
}

// After a conflicting write: the record as another writer left it (the rotation's next CA, or
// the finished rotation), so that the next attempt starts from it.
void SchedulerShell::ReloadTlsRecord() {
  std::string path = TlsPath(flags_.core.framework_name);
  store_->Get(path, Guarded([this, path](Result<store::Record> r) {
                recording_rotation_ = false;
                auto record = r.ok() ? DecodeTlsRecord(r->data) : Result<TlsRecord>(r.error());
                if (!record.ok()) {
                  spdlog::warn("TLS: reading the TLS record at {}{} again failed: {}",
                               store_->Describe(), path, record.error().ToString());
                  return;
                }
                tls_record_ = std::move(*record);
                tls_version_ = r->version;
              }));
}

void SchedulerShell::PrepareCaRotation(AdminRollout request) {
  auto refuse = [this, &request](int code, std::string why) {
    spdlog::warn("admin: POST /rotate-ca refused: {}", why);
    if (admin_) admin_->Answer(AnswerAdmin{request.request, code, std::move(why)});
  };
  if (flags_.shell.tls == "off") return Feed(request);  // the core says why
  if (flags_.shell.tls == "files") {
    return refuse(409,
                  "refused: with --tls=files the CA is the operator's (--tls-ca-cert); "
                  "rotations are for --tls=auto");
  }
  if (!tls_record_ || tls_version_ < 0) {
    return refuse(503, "the cluster's CA is not loaded yet; try again shortly");
  }
  if (core_.state().ca.phase != CaPhase::kNone) return Feed(request);  // the core says which
  auto current = CaForRotation(*tls_record_, core_.state().ca);
  if (current.ok() && current->finished) {
    return refuse(409, "refused: the last CA rotation is still being recorded; try again");
  }
  if (!tls_record_->next_ca_cert.empty()) return Feed(request);  // made by a refused request
  TlsRecord next = *tls_record_;
  if (Status s = PrepareNextCa(next, flags_.core.framework_name, std::chrono::system_clock::now());
      !s.ok()) {
    return refuse(500, "making the new CA failed: " + s.error().message);
  }
  std::string path = TlsPath(flags_.core.framework_name);
  store_->Set(path, EncodeTlsRecord(next), tls_version_,
              Guarded([this, request, next, path, refuse](Result<store::Record> r) mutable {
                if (!r.ok()) {
                  if (r.error().code == ErrorCode::kConflict) ReloadTlsRecord();
                  return refuse(503, fmt::format("storing the new CA at {}{} failed: {}; try "
                                                 "again",
                                                 store_->Describe(), path, r.error().ToString()));
                }
                tls_record_ = next;
                tls_version_ = r->version;
                spdlog::info("TLS: made CA {} ('{}') for the rotation; stored at {}{}",
                             next.generation + 1,
                             tls::ReadCertificate(next.next_ca_cert)->subject_common_name,
                             store_->Describe(), path);
                Feed(request);
              }));
}

etcd::Client::Options SchedulerShell::EtcdOptions(std::chrono::milliseconds timeout,
                                                  std::string_view url) const {
  etcd::Client::Options options;
  options.request_timeout = timeout;
  if (url.starts_with("https://")) options.tls = etcd_tls_;
  return options;
}

Result<std::string> SchedulerShell::IssueClientCertificate(const std::string& name) {
  if (name.size() > 64 || name.find_first_of("\r\n\t/\\\"") != std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "name must be up to 64 characters without slashes, quotes or controls");
  }
  auto now = std::chrono::system_clock::now();
  // A client certificate names its holder, not a host: no subject alternative name, which etcd
  // would match against the address the client connects from.
  auto ca = CaForRotation(*tls_record_, core_.state().ca);
  if (!ca.ok()) return ca.error();
  auto issued = tls::Issue(ca->client_issuer, {.common_name = name,
                                               .ip_addresses = {},
                                               .dns_names = {},
                                               .usage = tls::Usage::kClient,
                                               .not_before = now - std::chrono::hours(1),
                                               .not_after = now + flags_.shell.cert_lifetime});
  if (!issued.ok()) return issued.error();
  return issued->certificate_pem + issued->key_pem;
}

CertificateAnswer SchedulerShell::IssueCertificates(const std::string& body,
                                                    const std::string& authorization) {
  if (!tls_record_) return {503, "503 TLS is not loaded yet; try again\n", std::nullopt};
  auto find = [this](const std::string& task_id) -> std::optional<CertificateSubject> {
    for (const auto& [name, m] : core_.state().members) {
      if (m.task_id != task_id || !m.tls) continue;
      return CertificateSubject{
          m.task_id, m.name, m.host, m.hostname, MaybeAlive(m.task_state), m.cert_not_after != 0};
    }
    return std::nullopt;
  };
  auto ca = CaForRotation(*tls_record_, core_.state().ca);
  if (!ca.ok()) return {503, "503 " + ca.error().message + "\n", std::nullopt};
  auto lifetime = std::chrono::duration_cast<std::chrono::seconds>(flags_.shell.cert_lifetime);
  CertificateAnswer answer =
      AnswerCertificateRequest(ca->issuer, ca->member_trust, tls_record_->secret, body,
                               authorization, find, std::chrono::system_clock::now(), lifetime);
  if (answer.status == 200) {
    auto task = nlohmann::json::parse(body)["task_id"].get<std::string>();
    spdlog::info("issued certificates for task '{}', valid until {}", task,
                 FormatWallTime(WallTime(std::chrono::seconds(*answer.not_after))));
    Feed(CertificateIssued{task, *answer.not_after});
  } else {
    std::string_view why = std::string_view(answer.body).substr(0, 200);
    while (why.ends_with('\n')) why.remove_suffix(1);
    spdlog::warn("refused a certificate request: {}", why);
  }
  return answer;
}

Status SchedulerShell::PrepareAdminToken(AdminServer::Options& admin) {
  admin.insecure = flags_.shell.admin_insecure;
  if (admin.insecure) return OkStatus();
  if (!flags_.shell.admin_token.empty()) {
    admin.token = flags_.shell.admin_token;
    admin.token_hint = flags_.shell.reseed_token_file;
    return OkStatus();
  }
  // This host's file until the state says otherwise: commands work from the first moment.
  admin_token_path_ = AdminTokenPath(flags_.shell.state_dir);
  admin.token_hint = admin_token_path_.string();
  auto held = ReadAdminTokenFile(admin_token_path_);
  if (!held.ok()) return held.error();
  admin.token = *held;
  return OkStatus();
}

Status SchedulerShell::SettleAdminToken(PersistentState& state) {
  if (flags_.shell.admin_insecure || !flags_.shell.admin_token.empty()) return OkStatus();
  auto held = ReadAdminTokenFile(admin_token_path_);
  auto choice = ChooseAdminToken(state.admin_token, held.ok() ? *held : "", NewSecretToken);
  if (Status s = WriteAdminTokenFile(admin_token_path_, choice.token); !s.ok()) {
    return s.error().Context("keeping the admin token (or give --admin-token-file)");
  }
  using Source = AdminTokenChoice::Source;
  if (choice.source == Source::kGenerated) {
    spdlog::info("admin token generated: it is in {} (mode 0600) and in the state store",
                 admin_token_path_.string());
  } else if (choice.source == Source::kStored && held.ok() && *held != choice.token) {
    spdlog::warn(
        "admin token: {} held another token than the state store; it now holds the "
        "store's, which guards the commands",
        admin_token_path_.string());
  } else {
    spdlog::info("admin token: in {}", admin_token_path_.string());
  }
  state.admin_token = choice.token;
  if (admin_) admin_->SetToken(choice.token);
  return OkStatus();
}

void SchedulerShell::OnLoaded(PersistentState state) {
  if (state.reseed_token.empty()) {
    // The executors' reseed token: a secret between this framework and its executors, kept with
    // the state so that a restarted scheduler can still reseed the members it launched.
    state.reseed_token = NewSecretToken();
  }
  if (Status s = SettleAdminToken(state); !s.ok()) return Fatal(s.error());
  if (auto why = CaFilesChangeRefused(state, flags_.core.ca_files)) {
    return Fatal(MakeError(ErrorCode::kInvalidArgument, "refusing the CA files: {}", *why));
  }
  loaded_ = true;
  Started started{std::move(state), Clock::now()};
  if (!flags_.shell.backup_dir.empty()) {
    auto backups = ListBackups(flags_.shell.backup_dir);
    for (const auto& b : backups) {
      if (!b.verified) continue;
      BackupDone done{b.name,   b.size,   b.revision,
                      b.member, b.sha256, b.time.time_since_epoch().count()};
      auto age = std::chrono::system_clock::now() - b.time;
      started.newest_backup = done;
      started.newest_backup_age = std::max(Millis(0), std::chrono::duration_cast<Millis>(age));
      break;
    }
  }
  Feed(std::move(started));
  if (options_.teardown) {
    spdlog::warn("tearing down {} as asked (etcd-mesos-scheduler teardown)",
                 flags_.core.framework_name);
    Feed(AdminTeardown{kCommandLineTeardown, Clock::now()});
    if (!core_.state().tearing_down) {
      // Refused (the note says why): this process must not go on as the cluster's scheduler.
      return Fatal(MakeError(ErrorCode::kRefused, "the teardown was refused; nothing was done"));
    }
  }
  if (!restore_from_name_.empty()) {
    Feed(AdminRestore{0, restore_from_name_, Clock::now()});
  }
  ArmTick();
  StartMaster();
}

void SchedulerShell::ArmTick() {
  auto period = std::max<std::chrono::milliseconds>(flags_.core.probe_interval / 2,
                                                    std::chrono::milliseconds(50));
  tick_timer_.expires_after(period);
  tick_timer_.async_wait(Guarded([this](boost::system::error_code ec) {
    if (ec) return;
    auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::system_clock::now().time_since_epoch());
    Feed(Tick{Clock::now(), unix_now.count()});
    if (loaded_) RefreshTls(std::chrono::system_clock::now());
    ArmTick();
  }));
}

void SchedulerShell::ArmConsole() {
  console_timer_.expires_after(std::chrono::seconds(1));
  console_timer_.async_wait(Guarded([this](boost::system::error_code ec) {
    if (ec) return;
    ObserveConsole();
    ArmConsole();
  }));
}

void SchedulerShell::ObserveConsole() {
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  bool standby = !leading();
  history_.Observe(core_, standby, now);
  if (now - last_sample_ms_ < ClusterHistory::kSampleIntervalMs) return;
  last_sample_ms_ = now;
  uint64_t leader_id = CountLeaderVotes(core_.state().members).leader;
  const Member* leader = nullptr;
  for (const auto& [name, m] : core_.state().members) {
    if (leader_id != 0 && m.member_id == leader_id && m.reachable) leader = &m;
  }
  // A standby does not talk to etcd; without a leader there is no write latency to read.
  if (standby || leader == nullptr) {
    fsync_totals_.reset();
    return history_.Sample(core_, standby, now, std::nullopt);
  }
  auto client =
      std::make_shared<etcd::Client>(io_, HostPort{leader->host, leader->client_port},
                                     EtcdOptions(flags_.shell.probe_timeout, leader->ClientUrl()));
  client->DiskLatency(
      Guarded([this, client, name = leader->name, now](Result<etcd::DiskLatencyTotals> totals) {
        std::optional<double> mean;
        if (totals.ok()) {
          if (fsync_totals_ && fsync_from_ == name) {
            mean = ClusterHistory::MeanFsyncMs(*fsync_totals_, *totals);
          }
          fsync_totals_ = *totals;
          fsync_from_ = name;
        } else {
          spdlog::debug("console: reading {}'s disk latency: {}", name, totals.error().ToString());
          fsync_totals_.reset();
        }
        history_.Sample(core_, !leading(), now, mean);
      }));
}

void SchedulerShell::StartMaster() {
  mesos_client::SchedulerClient::Options client_options = options_.client;
  if (flags_.shell.principal && !flags_.shell.secret.empty()) {
    client_options.credential =
        mesos_client::Credential{*flags_.shell.principal, flags_.shell.secret};
  }
  client_ = std::make_unique<mesos_client::SchedulerClient>(
      io_, client_options,
      mesos_client::SchedulerClient::Callbacks{
          Guarded([this](const MesosEvent::Subscribed& s) {
            spdlog::info("subscribed to {} as framework {}", client_->master().ToString(),
                         s.framework_id().value());
            if (admin_) admin_->SetMasterUrl("http://" + client_->master().ToString());
            Feed(Subscribed{s.framework_id().value(), Clock::now()});
          }),
          Guarded([this](const MesosEvent& e) { OnMesosEvent(e); }),
          Guarded([this](const Error& error) {
            offers_.clear();
            if (core_.connected()) {
              Feed(Disconnected{error.ToString(), Clock::now()});
            } else {
              spdlog::debug("subscription attempt failed: {}", error.ToString());
            }
          })});
  detector_ = std::make_unique<mesos_client::MasterDetector>(
      io_, flags_.shell.master, mesos_client::MasterDetector::Options{},
      Guarded([this](const std::optional<HostPort>& leader) { OnLeader(leader); }));
  if (auto s = detector_->Start(); !s.ok()) {
    Fatal(s.error().Context("detecting the Mesos master " + flags_.shell.master_spec));
  }
}

void SchedulerShell::OnLeader(const std::optional<HostPort>& leader) {
  if (!leader) {
    spdlog::warn("no leading Mesos master at {} right now", flags_.shell.master_spec);
    return;
  }
  if (!client_started_) {
    client_started_ = true;
    spdlog::info("leading Mesos master: {}; subscribing as {}", leader->ToString(),
                 flags_.core.framework_name);
    client_->Start(*leader, BuildFrameworkInfo(flags_, core_.state().framework_id));
  } else {
    spdlog::info("the leading Mesos master is now {}", leader->ToString());
    client_->SetMaster(*leader);
  }
}

void SchedulerShell::OnMesosEvent(const MesosEvent& e) {
  Time now = Clock::now();
  switch (e.type()) {
    case MesosEvent::OFFERS: {
      OffersReceived event;
      event.now = now;
      for (const auto& o : e.offers().offers()) {
        offers_[o.id().value()] = o;
        event.offers.push_back(o);
      }
      Feed(std::move(event));
      break;
    }
    case MesosEvent::RESCIND:
      offers_.erase(e.rescind().offer_id().value());
      Feed(OfferRescinded{e.rescind().offer_id().value(), now});
      break;
    case MesosEvent::UPDATE: {
      const auto& status = e.update().status();
      ExplainFetchFailure(status);
      // The core asks for its acknowledgement (AcknowledgeUpdate) once its change is on record.
      Feed(TaskUpdate{status, now});
      break;
    }
    case MesosEvent::FAILURE:
      // With an executor: it ended (`status` is its raw wait status). Without one: the agent
      // was removed or is unreachable; its tasks' own updates say what became of them.
      if (e.failure().has_executor_id()) {
        spdlog::warn("executor {} on agent {} ended: {}", e.failure().executor_id().value(),
                     e.failure().agent_id().value(),
                     e.failure().has_status() ? DescribeWaitStatus(e.failure().status())
                                              : "the master does not say how");
      } else {
        spdlog::warn("the master reports agent {} lost (removed or unreachable)",
                     e.failure().agent_id().value());
      }
      break;
    case MesosEvent::ERROR:
      if (core_.state().tearing_down || options_.teardown) return FrameworkGoneInTeardown(e);
      // Mesos is done with this subscription and the client has stopped. Either another
      // scheduler took the framework over (then two must not fight over it), or the framework
      // was removed. Stop, so that a supervisor can restart us or the operator can look.
      return Fatal(MakeError(
          ErrorCode::kRefused,
          "the master ended this scheduler's subscription: \"{}\". If another "
          "etcd-mesos-scheduler took framework {} over, this one must stay down; if the "
          "framework was removed (failover timeout passed, or TEARDOWN), its members are gone: "
          "delete {} and the state to start afresh, then restore from a backup",
          e.error().message(), flags_.core.framework_name,
          FrameworkIdPath(flags_.core.framework_name)));
    case MesosEvent::MESSAGE:
      spdlog::debug("message from executor {} on {}", e.message().executor_id().value(),
                    e.message().agent_id().value());
      break;
    default:
      break;
  }
}

// ---- Events in, actions out -----------------------------------------------------------------

void SchedulerShell::Feed(Event event) {
  if (stopped_ || finishing_teardown_) return;
  pipeline_.Add(core_.Handle(event));
  Drain();
}

void SchedulerShell::Drain() {
  if (draining_) return;  // the outer loop goes on with what was added
  draining_ = true;
  while (!stopped_) {
    std::optional<Effect> effect = pipeline_.Next();
    if (!effect) break;
    Execute(std::move(*effect));
  }
  draining_ = false;
}

void SchedulerShell::Execute(Effect effect) {
  std::visit(Overloaded{
                 [&](Action& a) { Carry(a); },
                 [&](WriteState& w) { DoPersist(w.state); },
                 [&](FollowUp& f) { Feed(std::move(f.event)); },
             },
             effect);
}

void SchedulerShell::Carry(Action& action) {
  std::visit(Overloaded{
                 [&](LaunchMember& a) { DoLaunch(a); },
                 [&](DeclineOffer& a) { DoDecline(a.offer_id, a.refuse_seconds); },
                 [&](KillTask& a) { DoKill(a); },
                 [&](ReconcileTasks& a) { DoReconcile(a); },
                 [&](Revive&) { DoReviveOrSuppress(true); },
                 [&](Suppress&) { DoReviveOrSuppress(false); },
                 [&](ProbeMember& a) { DoProbe(a); },
                 [&](ProbeCluster& a) { DoProbeCluster(a); },
                 [&](ProbePeers& a) { DoProbePeers(a); },
                 [&](AcknowledgeUpdate& a) { DoAcknowledge(a); },
                 [&](ChangeMembership& a) { DoMembership(a); },
                 [&](TriggerReseed& a) { DoReseed(a); },
                 // The pipeline hands every Persist out as a WriteState; one here would bypass
                 // write-ahead, so it is refused loudly rather than written.
                 [&](Persist&) {
                   DoNote(Note{"error",
                               "internal: a state write reached the shell outside the "
                               "action pipeline; not written",
                               "store"});
                 },
                 [&](AnswerAdmin& a) {
                   if (admin_) admin_->Answer(a);
                 },
                 [&](Note& a) { DoNote(a); },
                 [&](TakeBackup& a) { DoBackup(a); },
                 [&](Maintain& a) { DoMaintain(a); },
                 [&](CheckHashes& a) { DoCheckHashes(a); },
                 [&](ReleaseResources& a) { DoRelease(a); },
                 [&](FinishTeardown& a) { DoFinishTeardown(a); },
             },
             action);
}

void SchedulerShell::Send(Call call, std::string what) {
  if (!client_) return;
  client_->Send(std::move(call), Guarded([what = std::move(what)](Status s) {
                  if (!s.ok()) spdlog::warn("{} failed: {}", what, s.error().ToString());
                }));
}

void SchedulerShell::DoLaunch(const LaunchMember& launch) {
  auto it = offers_.find(launch.offer_id);
  const mesos::Offer* offer = it == offers_.end() ? nullptr : &it->second;
  if (offer == nullptr) {
    spdlog::warn("launching {} on offer {} that is no longer outstanding; the master will say",
                 launch.member.name, launch.offer_id);
  }
  LaunchContext context{&flags_.core, client_ ? client_->framework_id().value_or("") : "",
                        artifact_base_, core_.state().reseed_token};
  context.executor_shutdown_grace = flags_.shell.executor_shutdown_grace;
  context.principal = flags_.shell.principal;
  context.etcd_flags = EtcdUpkeepFlags(flags_.shell.upkeep);
  auto ca = tls_record_ ? CaForRotation(*tls_record_, core_.state().ca) : Result<CaInUse>(Error{});
  if (launch.member.tls && tls_record_ && ca.ok()) {
    context.tls_ca = ca->member_trust;
    context.cert_url = fmt::format("{}://{}:{}/certificates", flags_.shell.AdminScheme(),
                                   flags_.shell.address, admin_->address().port);
    context.cert_token = TaskCertificateToken(tls_record_->secret, launch.member.task_id);
  } else if (launch.member.tls) {
    spdlog::error("launching TLS member {} without the CA {}: it cannot get certificates",
                  launch.member.name, tls_record_ ? ca.error().message : "loaded");
  }
  for (const auto& [name, path] : artifacts_) {
    // Stat'ed at each launch: a binary replaced under a running scheduler gets a new URL.
    if (auto version = ArtifactVersion(path); version.ok()) {
      context.artifact_versions[name] = *version;
    } else {
      spdlog::warn("{}; launching {} with an unversioned (uncached) URL", version.error().message,
                   launch.member.name);
    }
  }
  if (!launch.restore_snapshot.empty()) {
    // Checked again right before the launch: nothing starts from a file that went bad.
    auto verified = VerifyBackup(flags_.shell.backup_dir, launch.restore_snapshot);
    if (!verified.ok()) {
      DoNote(Note{"error",
                  "not launching " + launch.member.name + " from backup " +
                      launch.restore_snapshot + ": " + verified.error().ToString(),
                  "restore", launch.member.name});
      DoDecline(launch.offer_id, ActionPipeline::kSkippedLaunchRefuseSeconds);
      return;
    }
    context.restore_sha256 = verified->sha256;
  }
  mesos::TaskInfo task = BuildTaskInfo(launch, offer, context);
  Call call;
  call.set_type(Call::ACCEPT);
  auto* accept = call.mutable_accept();
  accept->add_offer_ids()->set_value(launch.offer_id);
  if (launch.reserve) {
    // A durable member's first launch: its resources reserved and its volume created in the
    // same ACCEPT, then launched on them (Mesos applies the operations in order).
    auto* reserve = accept->add_operations();
    reserve->set_type(mesos::Offer::Operation::RESERVE);
    auto* create = accept->add_operations();
    create->set_type(mesos::Offer::Operation::CREATE);
    for (const auto& r : task.resources()) {
      mesos::Resource plain = r;
      if (r.has_disk() && r.disk().has_persistence()) {
        *create->mutable_create()->add_volumes() = r;
        plain.clear_disk();
      }
      *reserve->mutable_reserve()->add_resources() = plain;
    }
  }
  auto* op = accept->add_operations();
  op->set_type(mesos::Offer::Operation::LAUNCH);
  *op->mutable_launch()->add_task_infos() = std::move(task);
  accept->mutable_filters()->set_refuse_seconds(ActionPipeline::kSkippedLaunchRefuseSeconds);
  if (it != offers_.end()) offers_.erase(it);
  spdlog::info("launching {} ({}) on agent {}", launch.member.name, FormatTaskId(launch.member),
               launch.member.agent_id);
  Send(std::move(call), "launching " + launch.member.name);
}

void SchedulerShell::DoRelease(const ReleaseResources& release) {
  offers_.erase(release.offer_id);
  Call call;
  call.set_type(Call::ACCEPT);
  auto* accept = call.mutable_accept();
  accept->add_offer_ids()->set_value(release.offer_id);
  if (!release.destroy.empty()) {
    auto* destroy = accept->add_operations();
    destroy->set_type(mesos::Offer::Operation::DESTROY);
    for (const auto& v : release.destroy) *destroy->mutable_destroy()->add_volumes() = v;
  }
  auto* unreserve = accept->add_operations();
  unreserve->set_type(mesos::Offer::Operation::UNRESERVE);
  for (const auto& r : release.unreserve) *unreserve->mutable_unreserve()->add_resources() = r;
  // What is released comes back unreserved at once, for this framework as for any other.
  accept->mutable_filters()->set_refuse_seconds(0);
  spdlog::info("releasing {} volume(s) and {} reserved resource(s) on agent {}: {}",
               release.destroy.size(), release.unreserve.size(), release.agent_id, release.why);
  Send(std::move(call), "releasing reserved resources on agent " + release.agent_id);
}

void SchedulerShell::DoAcknowledge(const AcknowledgeUpdate& a) {
  Call call;
  call.set_type(Call::ACKNOWLEDGE);
  auto* ack = call.mutable_acknowledge();
  ack->mutable_agent_id()->set_value(a.agent_id);
  ack->mutable_task_id()->set_value(a.task_id);
  ack->set_uuid(a.uuid);
  Send(std::move(call), "acknowledging " + a.task_id);
}

namespace {
constexpr std::chrono::milliseconds kPeerViewTimeout{5'000};
}  // namespace

void SchedulerShell::DoProbePeers(const ProbePeers& probe) {
  auto url = ParseHttpUrl(probe.client_url);
  if (!url.ok() || probing_peers_) return;  // one at a time; the next probe round asks again
  probing_peers_ = true;
  // The whole of /metrics (a few hundred KB over TLS) takes longer than a probe: under load and
  // a sanitizer it ran past the probe's 1 s every time, and no member was ever seen cut off.
  auto client = std::make_shared<etcd::Client>(
      io_, url->endpoint,
      EtcdOptions(std::max<std::chrono::milliseconds>(flags_.shell.probe_timeout, kPeerViewTimeout),
                  probe.client_url));
  client->PeerConnections(
      Guarded([this, client, name = probe.name](Result<etcd::PeerConnections> peers) {
        probing_peers_ = false;
        if (!peers.ok()) {
          spdlog::debug("reading {}'s peer connections: {}", name, peers.error().ToString());
        }
        Feed(PeerView{name, std::move(peers), Clock::now()});
      }));
}

void SchedulerShell::DoFinishTeardown(const FinishTeardown& finish) {
  finishing_teardown_ = true;  // the core's note has said what it did
  // The records first: a scheduler started after a TEARDOWN that then failed to delete them
  // would subscribe with the id of a framework Mesos has removed.
  std::string name = flags_.core.framework_name;
  RemoveRecords(
      {StatePath(name), TlsPath(name), FrameworkIdPath(name)}, {},
      [this, summary = finish.summary](std::vector<std::string> failed) {
        std::string records =
            failed.empty() ? fmt::format("its records in {} removed", store_->Describe())
                           : fmt::format(
                                 "its records in {} NOT all removed ({}): delete them before the "
                                 "next start, or it takes this cluster's state back",
                                 store_->Describe(), fmt::join(failed, ", "));
        Call call;
        call.set_type(Call::TEARDOWN);
        if (!client_) return TornDown(summary + "; " + records);
        client_->Send(
            std::move(call), Guarded([this, summary, records](Status s) {
              TornDown(fmt::format("{}; {}; {}", summary, records,
                                   s.ok() ? "framework torn down at the master"
                                          : "TEARDOWN failed (" + s.error().ToString() +
                                                "): Mesos removes the framework after its failover "
                                                "timeout"));
            }));
      });
}

// The framework is gone already (its failover timeout passed, or someone tore it down): its tasks
// went with it, but a durable member's volume and reservations belong to the role and stay, and
// no offer will bring them to this framework again. Say which, and remove the records.
void SchedulerShell::FrameworkGoneInTeardown(const MesosEvent& e) {
  finishing_teardown_ = true;
  std::vector<std::string> volumes;
  for (const auto& [name, m] : core_.state().members) {
    if (!m.volume.empty()) volumes.push_back(fmt::format("{} on agent {}", m.volume, m.agent_id));
  }
  std::string name = flags_.core.framework_name;
  std::string said = fmt::format(
      "teardown of {}: the master ended the subscription (\"{}\"): the framework is gone, and "
      "its tasks with it; {}",
      name, e.error().message(),
      volumes.empty() ? std::string("no volume was on record")
                      : fmt::format("volumes that may still be reserved: {} (release them with "
                                    "the master's DESTROY_VOLUMES and UNRESERVE_RESOURCES, "
                                    "docs/administration.md)",
                                    fmt::join(volumes, ", ")));
  RemoveRecords({StatePath(name), TlsPath(name), FrameworkIdPath(name)}, {},
                [this, said](std::vector<std::string> failed) {
                  TornDown(failed.empty() ? said + "; records removed"
                                          : fmt::format("{}; records NOT removed: {}", said,
                                                        fmt::join(failed, ", ")));
                });
}

void SchedulerShell::RemoveRecords(std::vector<std::string> paths, std::vector<std::string> failed,
                                   std::function<void(std::vector<std::string> failed)> then) {
  if (paths.empty()) return then(std::move(failed));
  std::string path = paths.front();
  paths.erase(paths.begin());
  store_->Delete(path, store::kAnyVersion,
                 Guarded([this, path, paths = std::move(paths), failed = std::move(failed),
                          then = std::move(then)](Status s) mutable {
                   if (!s.ok() && s.error().code != ErrorCode::kNotFound) {
                     spdlog::error("removing {} from {}: {}", path, store_->Describe(),
                                   s.error().ToString());
                     failed.push_back(path);
                   } else if (s.ok()) {
                     spdlog::info("removed {} from {}", path, store_->Describe());
                   }
                   RemoveRecords(std::move(paths), std::move(failed), std::move(then));
                 }));
}

void SchedulerShell::TornDown(const std::string& summary) {
  spdlog::warn("{}", summary);
  notes_.Add(Note{"warn", summary, "admin"});
  if (options_.on_torn_down) {
    options_.on_torn_down(summary);
  } else {
    Stop();
  }
}

void SchedulerShell::DoDecline(const std::string& offer_id, double refuse_seconds) {
  offers_.erase(offer_id);
  Call call;
  call.set_type(Call::DECLINE);
  call.mutable_decline()->add_offer_ids()->set_value(offer_id);
  call.mutable_decline()->mutable_filters()->set_refuse_seconds(refuse_seconds);
  Send(std::move(call), "declining offer " + offer_id);
}

void SchedulerShell::DoKill(const KillTask& kill) {
  spdlog::info("killing {}: {}", kill.task_id, kill.why);
  Call call;
  call.set_type(Call::KILL);
  call.mutable_kill()->mutable_task_id()->set_value(kill.task_id);
  if (!kill.agent_id.empty()) call.mutable_kill()->mutable_agent_id()->set_value(kill.agent_id);
  Send(std::move(call), "killing " + kill.task_id);
}

void SchedulerShell::DoReconcile(const ReconcileTasks& reconcile) {
  Call call;
  call.set_type(Call::RECONCILE);
  auto* r = call.mutable_reconcile();
  for (const auto& [task, agent] : reconcile.tasks) {
    auto* t = r->add_tasks();
    t->mutable_task_id()->set_value(task);
    if (!agent.empty()) t->mutable_agent_id()->set_value(agent);
  }
  Send(std::move(call), fmt::format("reconciling {} tasks", reconcile.tasks.size()));
}

void SchedulerShell::DoReviveOrSuppress(bool revive) {
  Call call;
  if (revive) {
    call.set_type(Call::REVIVE);
    call.mutable_revive()->add_roles(flags_.core.role);
  } else {
    call.set_type(Call::SUPPRESS);
    call.mutable_suppress()->add_roles(flags_.core.role);
  }
  Send(std::move(call), revive ? "reviving offers" : "suppressing offers");
}

void SchedulerShell::DoProbe(const ProbeMember& probe) {
  if (probing_.count(probe.name)) return;  // the previous probe is still out
  auto url = ParseHttpUrl(probe.client_url);
  if (!url.ok()) {
    boost::asio::post(io_, Guarded([this, name = probe.name, error = url.error()] {
                        Feed(ProbeResult{name, error, Clock::now()});
                      }));
    return;
  }
  probing_.insert(probe.name);
  auto client = std::make_shared<etcd::Client>(
      io_, url->endpoint, EtcdOptions(flags_.shell.probe_timeout, probe.client_url));
  struct Join {
    std::optional<Result<etcd::StatusResponse>> status;
    std::optional<Result<etcd::HealthResponse>> health;
  };
  auto join = std::make_shared<Join>();
  auto finish = Guarded([this, name = probe.name, join, client]() {
    if (!join->status || !join->health) return;
    probing_.erase(name);
    if (!join->status->ok()) {
      // Said once, when a member that answered stops answering: why it counts as unreachable.
      auto it = core_.state().members.find(name);
      if (it != core_.state().members.end() && it->second.reachable) {
        spdlog::info("{} does not answer its probe: {}", name, join->status->error().ToString());
      }
      return Feed(ProbeResult{name, join->status->error(), Clock::now()});
    }
    const etcd::StatusResponse& s = **join->status;
    MemberProbe p;
    p.member_id = s.header.member_id;
    p.leader = s.leader;
    p.raft_index = s.raft_index;
    p.raft_term = s.raft_term;
    p.revision = s.header.revision;
    p.is_learner = s.is_learner;
    p.db_size = s.db_size;
    p.db_size_in_use = s.db_size_in_use;
    p.version = s.version;
    // etcd names an active alarm in the status errors: "memberID:<id> alarm:NOSPACE ".
    for (const std::string& error : s.errors) {
      p.nospace_alarm = p.nospace_alarm || error.find("alarm:NOSPACE") != std::string::npos;
      p.corrupt_alarm = p.corrupt_alarm || error.find("alarm:CORRUPT") != std::string::npos;
    }
    std::optional<bool> health;
    if (join->health->ok()) health = (*join->health)->healthy;
    p.healthy = MemberHealthy(s.leader, !s.errors.empty(), health, s.is_learner);
    Feed(ProbeResult{name, p, Clock::now()});
  });
  client->Status([join, finish](Result<etcd::StatusResponse> r) mutable {
    join->status = std::move(r);
    finish();
  });
  client->Health([join, finish](Result<etcd::HealthResponse> r) mutable {
    join->health = std::move(r);
    finish();
  });
}

void SchedulerShell::DoProbeCluster(const ProbeCluster& probe) {
  if (probing_cluster_) return;
  probing_cluster_ = true;
  auto urls = std::make_shared<std::vector<std::string>>(probe.client_urls);
  auto attempt = std::make_shared<std::function<void(size_t, Error)>>();
  // Tries the members in order; the first that answers the member list also does the read.
  *attempt = [this, urls, epoch = probe.epoch,
              weak = std::weak_ptr<std::function<void(size_t, Error)>>(attempt)](size_t i,
                                                                                 Error last) {
    auto self = weak.lock();
    if (!self) return;
    if (i >= urls->size()) {
      probing_cluster_ = false;
      return Feed(ClusterProbeResult{last.Context("no member answered the member list"),
                                     Clock::now(), epoch});
    }
    auto url = ParseHttpUrl((*urls)[i]);
    if (!url.ok()) return (*self)(i + 1, url.error());
    auto client = std::make_shared<etcd::Client>(
        io_, url->endpoint, EtcdOptions(flags_.shell.probe_timeout, (*urls)[i]));
    client->MemberList(Guarded([this, self, client, i,
                                epoch](Result<etcd::MemberListResponse> list) {
      if (!list.ok()) return (*self)(i + 1, list.error());
      ClusterView view;
      for (const auto& m : list->members) {
        view.members.push_back(EtcdMember{m.id, m.name, m.peer_urls, m.is_learner});
      }
      client->Get(kProbeKey, /*serializable=*/false,
                  Guarded([this, client, view, epoch](Result<etcd::RangeResponse> read) mutable {
                    view.linearizable_read_ok = read.ok();
                    probing_cluster_ = false;
                    Feed(ClusterProbeResult{std::move(view), Clock::now(), epoch});
                  }));
    }));
  };
  // The chain keeps itself alive through the callbacks that hold `self`; it starts from the
  // loop, never inside Execute.
  boost::asio::post(io_, Guarded([attempt] {
                      (*attempt)(0, MakeError(ErrorCode::kUnavailable, "no member to ask"));
                    }));
}

void SchedulerShell::DoMembership(const ChangeMembership& change) {
  RouteMembership(change, Clock::now(), Clock::now() + kLeaderWait, 0);
}

// Asks the members who leads and sends `change` once a leader is settled (membership_route.h says
// why), asking again every kLeaderPoll while there is none; past `deadline`, sends it anyway in
// the order given (etcd then holds it until a leader exists).
void SchedulerShell::RouteMembership(ChangeMembership change, Clock::time_point started,
                                     Clock::time_point deadline, uint64_t previous_leader) {
  auto answers = std::make_shared<std::vector<StatusAnswer>>();
  auto pending = std::make_shared<size_t>(change.client_urls.size());
  auto decided = std::make_shared<bool>(false);
  auto decide = [this, change, started, deadline, previous_leader, answers,
                 decided](bool all_in) mutable {
    if (*decided) return;
    MembershipRoute route = RouteMembershipChange(*answers, previous_leader);
    if (!route.settled && !all_in) return;
    *decided = true;
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    if (route.settled || Clock::now() >= deadline) {
      if (!route.settled) {
        spdlog::warn("no settled etcd leader after {} ms; sending the change anyway",
                     waited.count());
      } else if (waited > kLeaderPoll) {
        spdlog::info("etcd leader {:x} settled after {} ms", route.leader, waited.count());
      }
      // Members that did not answer stay last, in case they can take it after all.
      for (const auto& url : change.client_urls) {
        if (std::find(route.urls.begin(), route.urls.end(), url) == route.urls.end()) {
          route.urls.push_back(url);
        }
      }
      change.client_urls = std::move(route.urls);
      return SendMembership(change);
    }
    auto timer = std::make_shared<boost::asio::steady_timer>(io_, kLeaderPoll);
    timer->async_wait(Guarded([this, timer, change, started, deadline,
                               leader = route.leader](const boost::system::error_code&) {
      RouteMembership(change, started, deadline, leader);
    }));
  };
  if (change.client_urls.empty()) {
    return boost::asio::post(io_, Guarded([decide]() mutable { decide(true); }));
  }
  for (const auto& url_text : change.client_urls) {
    etcd::Client::Options options = EtcdOptions(flags_.shell.probe_timeout, url_text);
    auto url = ParseHttpUrl(url_text);
    if (!url.ok()) {
      boost::asio::post(io_, Guarded([decide, pending]() mutable { decide(--*pending == 0); }));
      continue;
    }
    auto client = std::make_shared<etcd::Client>(io_, url->endpoint, options);
    client->Status(Guarded(
        [client, url_text, answers, pending, decide](Result<etcd::StatusResponse> r) mutable {
          answers->push_back(StatusAnswer{url_text, r.ok() ? std::optional(*r) : std::nullopt});
          decide(--*pending == 0);
        }));
  }
}

void SchedulerShell::SendMembership(const ChangeMembership& change) {
  auto urls = std::make_shared<std::vector<std::string>>(change.client_urls);
  auto attempt = std::make_shared<std::function<void(size_t, Error)>>();
  auto weak = std::weak_ptr<std::function<void(size_t, Error)>>(attempt);
  *attempt = [this, urls, change, weak](size_t i, Error last) {
    auto self = weak.lock();
    if (!self) return;
    auto deliver = [this, change](Status status, uint64_t id) {
      Feed(MembershipResult{change.op, change.name, id, std::move(status), Clock::now()});
    };
    if (i >= urls->size()) {
      return deliver(last.Context("no member accepted the membership change"), change.member_id);
    }
    auto url = ParseHttpUrl((*urls)[i]);
    if (!url.ok()) return (*self)(i + 1, url.error());
    auto client = std::make_shared<etcd::Client>(io_, url->endpoint,
                                                 EtcdOptions(kMembershipTimeout, (*urls)[i]));
    // kUnavailable: try the next member; anything else (done, refused, not found) is the answer.
    auto next_or = [self, i, deliver](const Error& e, uint64_t id) {
      if (e.code == ErrorCode::kUnavailable) return (*self)(i + 1, e);
      deliver(e, id);
    };
    switch (change.op) {
      case MembershipOp::kAddLearner:
        client->MemberAdd({change.peer_url}, /*as_learner=*/true,
                          Guarded([client, next_or, deliver](Result<etcd::MemberAddResponse> r) {
                            if (!r.ok()) return next_or(r.error(), 0);
                            deliver(OkStatus(), r->member.id);
                          }));
        break;
      case MembershipOp::kPromote:
        client->MemberPromote(change.member_id,
                              Guarded([client, next_or, deliver,
                                       id = change.member_id](Result<etcd::MemberListResponse> r) {
                                if (!r.ok()) return next_or(r.error(), id);
                                deliver(OkStatus(), id);
                              }));
        break;
      case MembershipOp::kMoveLeader:
        client->MoveLeader(change.member_id,
                           Guarded([client, next_or, deliver,
                                    id = change.member_id](Result<etcd::ResponseHeader> r) {
                             if (!r.ok()) return next_or(r.error(), id);
                             deliver(OkStatus(), id);
                           }));
        break;
      case MembershipOp::kRemove:
        client->MemberRemove(change.member_id,
                             Guarded([client, next_or, deliver,
                                      id = change.member_id](Result<etcd::MemberListResponse> r) {
                               if (!r.ok()) return next_or(r.error(), id);
                               deliver(OkStatus(), id);
                             }));
        break;
    }
  };
  // Each member in turn while they answer "unavailable": the error names the last one asked.
  spdlog::info("membership change {} {} ({:x}) through {}",
               change.op == MembershipOp::kAddLearner   ? "add learner"
               : change.op == MembershipOp::kPromote    ? "promote"
               : change.op == MembershipOp::kMoveLeader ? "move leadership to"
                                                        : "remove",
               change.name, change.member_id,
               change.client_urls.empty()
                   ? "nobody"
                   : fmt::format("{} (in turn)", fmt::join(change.client_urls, ", ")));
  // Delivered from the loop, never inside Execute (the core must not be re-entered mid-batch).
  boost::asio::post(io_, Guarded([attempt] {
                      (*attempt)(0, MakeError(ErrorCode::kUnavailable, "no member to ask"));
                    }));
}

void SchedulerShell::DoReseed(const TriggerReseed& reseed) {
  auto url = ParseHttpUrl(reseed.reseed_url);
  if (!url.ok()) {
    boost::asio::post(io_, Guarded([this, name = reseed.name, error = url.error()] {
                        Feed(ReseedResult{name, error, Clock::now()});
                      }));
    return;
  }
  net::HttpRequest request;
  request.method = net::Verb::post;
  request.endpoint = url->endpoint;
  request.target = "/reseed";
  request.headers.emplace_back("Authorization", "Bearer " + reseed.token);
  request.headers.emplace_back("Content-Type", "application/json");
  request.timeout = kReseedTimeout;
  // A TLS member's listener serves its certificate and asks for one of its CAs: the scheduler's
  // client certificate for etcd.
  if (reseed.reseed_url.starts_with("https://")) request.tls = etcd_tls_;
  spdlog::warn("asking {} to reseed the cluster alone ({})", reseed.name, reseed.reseed_url);
  net::HttpFetch(io_, std::move(request),
                 Guarded([this, name = reseed.name](Result<net::HttpResponse> r) {
                   Result<uint64_t> index =
                       r.ok() ? ParseReseedAnswer(r->status, r->body) : Result<uint64_t>(r.error());
                   Feed(ReseedResult{name, std::move(index), Clock::now()});
                 }));
}

void SchedulerShell::DoPersist(const PersistentState& state) {
  std::optional<std::string> framework_id = state.framework_id;
  auto data = std::make_shared<const std::string>(EncodeState(state));
  WriteStep(data, writer_.Begin(*data), Guarded([this, framework_id](Status s) {
              if (s.ok() && framework_id && *framework_id != written_framework_id_) {
                WriteFrameworkId(*framework_id);
              }
              if (!s.ok() && s.error().code == ErrorCode::kRefused && election_) {
                return LoseLeadership(s.error().message);  // fenced: our node is gone
              }
              if (!s.ok() && s.error().code == ErrorCode::kConflict) {
                // Someone else owns the stored state now: going on would overwrite what it
                // recorded. Stop; a restarted scheduler starts from what is stored.
                return Fatal(s.error());
              }
              Feed(pipeline_.StateWritten(std::move(s), Clock::now()));
              Drain();
            }));
}

// Carries out one step of the StateWriter, and feeds it the answer.
void SchedulerShell::WriteStep(std::shared_ptr<const std::string> data, StateWriter::Step step,
                               std::function<void(Status)> done) {
  std::string path = StatePath(flags_.core.framework_name);
  auto version = [](const Result<store::Record>& r) -> Result<int64_t> {
    if (!r.ok()) return r.error();
    return r->version;
  };
  auto written = Guarded([this, data, done, version](Result<store::Record> r) {
    WriteStep(data, writer_.Written(version(r)), done);
  });
  std::visit(Overloaded{
                 [&](StateWriter::Create&) { store_->Create(path, *data, written); },
                 [&](StateWriter::Set& set) { store_->Set(path, *data, set.version, written); },
                 [&](StateWriter::Reread& reread) {
                   spdlog::warn(
                       "writing the state at {} met {}; reading it back to see whether our own "
                       "write landed or another scheduler running as {} wrote it",
                       path, reread.why.ToString(), flags_.core.framework_name);
                   store_->Get(path, Guarded([this, data, done](Result<store::Record> r) {
                                 Result<StateWriter::Stored> stored =
                                     r.ok() ? Result<StateWriter::Stored>(
                                                  StateWriter::Stored{r->version, r->data})
                                            : Result<StateWriter::Stored>(r.error());
                                 WriteStep(data, writer_.StoredRead(std::move(stored)), done);
                               }));
                 },
                 [&](StateWriter::Wait& wait) {
                   spdlog::warn("writing the state failed ({}); retrying in {} ms",
                                wait.why.ToString(), wait.delay.count());
                   auto timer = std::make_shared<boost::asio::steady_timer>(io_, wait.delay);
                   timer->async_wait(Guarded([this, timer, data, done](boost::system::error_code) {
                     WriteStep(data, writer_.Waited(), done);
                   }));
                 },
                 [&](StateWriter::Done& d) { done(std::move(d.status)); },
             },
             step);
}

void SchedulerShell::WriteFrameworkId(const std::string& id) {
  std::string path = FrameworkIdPath(flags_.core.framework_name);
  written_framework_id_ = id;
  store_->Set(path, id, store::kAnyVersion, Guarded([this, path, id](Result<store::Record> r) {
                if (r.ok()) return;
                if (r.error().code != ErrorCode::kNotFound) {
                  spdlog::warn("writing {} failed: {}", path, r.error().ToString());
                  written_framework_id_.clear();
                  return;
                }
                store_->Create(path, id, Guarded([this, path](Result<store::Record> c) {
                                 if (!c.ok()) {
                                   spdlog::warn("creating {} failed: {}", path,
                                                c.error().ToString());
                                   written_framework_id_.clear();
                                 }
                               }));
              }));
}

void SchedulerShell::DoMaintain(const Maintain& step) {
  auto url = ParseHttpUrl(step.client_url);
  std::function<void(Status)> done = Guarded([this, step](Status status) {
    if (!status.ok()) {
      spdlog::warn("maintenance: {} on {} failed: {}", MaintenanceOpName(step.op), step.member,
                   status.error().ToString());
    }
    Feed(MaintenanceResult{step.id, step.op, step.member, status, Clock::now()});
  });
  if (!url.ok()) {
    return boost::asio::post(io_, [done, e = url.error()] { done(e); });
  }
  // A defragmentation rewrites the whole database file: seconds per GiB, far past a probe.
  auto client = std::make_shared<etcd::Client>(
      io_, url->endpoint, EtcdOptions(flags_.shell.maintenance_timeout, step.client_url));
  auto header_done = [client, done](Result<etcd::ResponseHeader> r) {
    done(r.ok() ? Status() : Status(r.error()));
  };
  spdlog::info("maintenance: {} on {}", MaintenanceOpName(step.op), step.member);
  switch (step.op) {
    case MaintenanceOp::kCompact:
      return client->Compact(step.revision, header_done);
    case MaintenanceOp::kDefragment:
      return client->Defragment(header_done);
    case MaintenanceOp::kDisarmNoSpace:
      // As etcdctl alarm disarm does: each active NOSPACE alarm, by the member that raised it.
      return client->AlarmList([client, done](Result<etcd::AlarmResponse> list) {
        if (!list.ok()) return done(list.error());
        auto pending = std::make_shared<int>(0);
        auto first_error = std::make_shared<std::optional<Error>>();
        for (const auto& alarm : list->alarms) {
          if (alarm.type != etcd::AlarmType::kNoSpace) continue;
          ++*pending;
          client->AlarmDisarm(alarm.member_id, alarm.type,
                              [client, done, pending, first_error](Result<etcd::AlarmResponse> r) {
                                if (!r.ok() && !*first_error) *first_error = r.error();
                                if (--*pending == 0) {
                                  done(*first_error ? Status(**first_error) : Status());
                                }
                              });
        }
        if (*pending == 0) done(Status());  // cleared meanwhile
      });
  }
}

void SchedulerShell::DoCheckHashes(const CheckHashes& check) {
  struct Gathered {
    HashCheckResult result;
    size_t pending = 0;
  };
  auto gathered = std::make_shared<Gathered>();
  gathered->result.id = check.id;
  gathered->result.revision = check.revision;
  gathered->pending = check.members.size();
  auto answered = Guarded([this, gathered](size_t i, Result<KvHash> hash) {
    gathered->result.hashes[i].hash = std::move(hash);
    if (--gathered->pending > 0) return;
    gathered->result.now = Clock::now();
    Feed(std::move(gathered->result));
  });
  // etcdctl dials and answers within this; a member that does not counts as unanswered.
  auto timeout =
      std::max<std::chrono::milliseconds>(flags_.shell.probe_timeout, std::chrono::seconds(3));
  spdlog::debug("hash check {}: HashKV at revision {} of {} members", check.id, check.revision,
                check.members.size());
  for (size_t i = 0; i < check.members.size(); ++i) {
    const auto& [name, client_url] = check.members[i];
    gathered->result.hashes.push_back({name, Error{ErrorCode::kInternal, "hashkv: not answered"}});
    auto url = ParseHttpUrl(client_url);
    if (!url.ok()) {
      boost::asio::post(io_, [answered, i, e = url.error()]() mutable { answered(i, e); });
      continue;
    }
    std::optional<etcd::TlsFiles> tls;
    if (url->scheme == "https") tls = etcdctl_tls_;
    etcd::HashKv(io_, flags_.shell.etcdctl_bin, url->endpoint, tls, check.revision, timeout,
                 [answered, i](Result<etcd::HashKvResponse> r) mutable {
                   if (!r.ok()) return answered(i, r.error());
                   answered(i, KvHash{r->hash, r->compact_revision});
                 });
  }
  if (check.members.empty()) {
    boost::asio::post(io_, Guarded([this, gathered] {
                        gathered->result.now = Clock::now();
                        Feed(std::move(gathered->result));
                      }));
  }
}

void SchedulerShell::DoBackup(const TakeBackup& backup) {
  auto url = ParseHttpUrl(backup.client_url);
  auto fail = [this, id = backup.id](Error e) {
    boost::asio::post(io_, Guarded([this, id, e] { Feed(BackupResult{id, e, Clock::now()}); }));
  };
  if (!url.ok()) return fail(url.error());
  std::filesystem::path dir = flags_.shell.backup_dir;
  std::filesystem::path partial = dir / fmt::format(".backup-{}-{}.partial", ::getpid(), backup.id);
  // For the snapshot, the timeout is the longest silence.
  auto client = std::make_shared<etcd::Client>(
      io_, url->endpoint, EtcdOptions(std::chrono::seconds(30), backup.client_url));
  auto t0 = std::make_shared<Clock::time_point>(Clock::now());
  spdlog::info("backup {}: streaming a snapshot from {} ({}) into {}", backup.id, backup.member,
               backup.client_url, dir.string());
  // The revision first: the snapshot holds at least it (the name says "rev<R>").
  client->Status(Guarded([this, client, backup, dir, partial,
                          t0](Result<etcd::StatusResponse> status) {
    if (!status.ok()) {
      return Feed(BackupResult{
          backup.id, status.error().Context("backup: status of " + backup.member), Clock::now()});
    }
    BackupName name{flags_.shell.cluster_name,
                    std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()),
                    status->header.revision, status->header.cluster_id};
    client->Snapshot(
        partial,
        Guarded([this, client, backup, dir, partial, name, t0](Result<etcd::SnapshotInfo> info) {
          if (!info.ok()) {
            std::error_code ec;
            std::filesystem::remove(partial, ec);
            return Feed(BackupResult{backup.id, info.error(), Clock::now()});
          }
          auto done = FinishBackup(dir, partial, info->sha256_hex, name, backup.member);
          std::error_code ec;
          std::filesystem::remove(partial, ec);
          if (done.ok()) {
            spdlog::info(
                "backup {}: {} ({} bytes, revision {}, sha256 {}) in {} ms", backup.id, done->name,
                done->size, done->revision, done->sha256,
                std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - *t0).count());
          }
          Feed(BackupResult{backup.id, done, Clock::now()});
          if (!done.ok()) return;
          auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
          for (const auto& pruned : PruneBackups(dir, flags_.shell.retention, now)) {
            spdlog::info("retention: deleted backup {}", pruned);
          }
          if (!verifier_) return;
          if (auto queued = verifier_->Enqueue(done->name); !queued.ok()) {
            DoNote(Note{"warn",
                        fmt::format("backup {} will not be verified: {}", done->name,
                                    queued.error().message),
                        "backup"});
          }
        }));
  }));
}

std::vector<std::string> SchedulerShell::LiveHashEndpoints() const {
  uint64_t leader_id = CountLeaderVotes(core_.state().members).leader;
  std::vector<std::string> out;
  for (const auto& [name, m] : core_.state().members) {
    if (!m.reachable || m.learner) continue;
    if (leader_id != 0 && m.member_id == leader_id) {
      out.insert(out.begin(), m.ClientUrl());
    } else {
      out.push_back(m.ClientUrl());
    }
  }
  return out;
}

void SchedulerShell::OnBackupVerified(const std::string& name, const RestoreCheck& check) {
  if (!check.restored) {
    return DoNote(Note{"warn",
                       fmt::format("backup {} FAILED verification after {:.1f} s: {}; do not "
                                   "count on it (docs/response.md: a backup failed verification)",
                                   name, check.seconds, check.error),
                       "backup"});
  }
  if (!check.hash_compared) {
    return DoNote(Note{"info",
                       fmt::format("backup {} verified: restored and served by a scratch etcd at "
                                   "revision {} in {:.1f} s; {}",
                                   name, check.hash_revision, check.seconds, check.error),
                       "backup"});
  }
  DoNote(Note{"info",
              fmt::format("backup {} verified: restored into a scratch etcd in {:.1f} s; its "
                          "HashKV at revision {} is the live cluster's ({})",
                          name, check.seconds, check.hash_revision, check.hash.value_or(0)),
              "backup"});
}

void SchedulerShell::DoNote(const Note& note) {
  if (note.level == "error") {
    spdlog::error("{}", note.message);
  } else if (note.level == "warn") {
    spdlog::warn("{}", note.message);
  } else if (note.level == "debug") {
    spdlog::debug("{}", note.message);
  } else {
    spdlog::info("{}", note.message);
  }
  notes_.Add(note);
}

}  // namespace etcd_mesos::scheduler::shell
