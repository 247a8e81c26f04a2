// Proxy: the running part of etcd-mesos-proxy. It asks where the members are (the scheduler's
// /members, or the Mesos master's /master/state, the leading master found through ZooKeeper for
// zk:// addresses), runs one `etcd grpc-proxy start` child on the listen address pointed at them,
// and keeps asking: when the set of client URLs changes (a member replaced, a reseed), the child
// is stopped and started again on the new set. etcd 3.4's grpc-proxy has no way to follow
// membership itself (no auto-sync flag), and after a reseed most old endpoints are gone, so a
// restart is the only way to follow; it costs clients one reconnect.
//
// Looking is bounded: polls every --poll-interval (jittered), failures back off with jitter up to
// six intervals; at start, --wait bounds the search, after which the proxy gives up with the last
// reason. Once running, a failed look keeps the child on the last known members (they likely
// still serve) and logs why. A child that keeps dying right after start (a busy listen address,
// a wrong etcd binary) ends the proxy with its last log lines.
//
// TLS: members whose URLs are https are dialed only with --cacert (the proxy refuses to start on
// them otherwise, rather than fall back to plain http). Before the grpc-proxy is pointed at a new
// set of https members, the proxy asks each for /health with the same CA bundle and client
// certificate the grpc-proxy will use: the grpc-proxy itself would start and then only fail its
// clients' calls, with the reason buried in its log, so this is where a wrong CA or a client
// certificate the members refuse is found and said. At start such a refusal is retried until
// --wait like any other failure to find the cluster; later it is logged and the grpc-proxy
// follows the members anyway (the scheduler knows better than one failed handshake).
//
// Threading: lives on one io_context thread, the one that called Start() (the child gets a
// parent-death signal tied to that thread). `on_done` is posted, never run inside a call.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/result.h"
#include "executor/shell/etcd_process.h"
#include "mesos/master_detector.h"
#include "net/http.h"
#include "proxy/discovery.h"
#include "proxy/flags.h"

namespace etcd_mesos::proxy {

// One asynchronous look at the members, from the source the flags name.
class Discoverer {
 public:
  using Callback = std::function<void(Result<ClientUrls>)>;
  Discoverer(boost::asio::io_context& io, const ProxyFlags& flags);
  // Starts ZooKeeper master detection for a zk:// --master; nothing otherwise. `tls` (null
  // without --cacert) is used for an https --scheduler.
  Status Start(std::shared_ptr<const net::TlsClientConfig> tls);
  void Fetch(Callback done);
  // "scheduler http://h:p" or "master zk://..." for messages.
  std::string source() const;

 private:
  void FetchMasterState(HttpUrl url, int redirects_left, Callback done);
  void FetchFromLeader(Callback done);
  void OnFirstVerdict();

  boost::asio::io_context& io_;
  ProxyFlags flags_;
  std::unique_ptr<mesos_client::MasterDetector> detector_;
  // Until ZooKeeper has answered once, "no leading master" means "not asked yet": a look waits
  // for the first answer (at most --request-timeout) instead of failing, so that the proxy does
  // not warn about a master it finds milliseconds later.
  bool detector_answered_ = false;
  std::shared_ptr<const net::TlsClientConfig> tls_;
  std::shared_ptr<const net::TlsClientConfig> scheduler_tls_;  // an https --scheduler
  std::vector<Callback> waiting_for_detector_;
  std::unique_ptr<boost::asio::steady_timer> detector_deadline_;
};

class Proxy {
 public:
  // exit_code 0 (done or stopped) or 1 (gave up), and why.
  using DoneCallback = std::function<void(int exit_code, std::string why)>;

  Proxy(boost::asio::io_context& io, ProxyFlags flags, DoneCallback on_done);
  ~Proxy();  // kills the child if it still runs; removes a temporary data dir
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Checks the etcd binary, the data dir and the listen address (not with --once), then starts
  // looking. Errors here are the operator's to fix; nothing is running afterwards.
  Status Start();
  // Stops looking, stops the child (SIGTERM, SIGKILL after 5 s), then on_done(0); with --once,
  // on_done(1) at once (nothing was printed).
  void Stop();

 private:
  void Poll();
  void OnDiscovered(Result<ClientUrls> urls);
  // Asks every https member of `urls` for /health over TLS, then Accept()s them or says why not.
  void CheckMembers(const ClientUrls& urls);
  void OnMembersChecked(const ClientUrls& urls, bool any_answered, std::vector<Error> errors);
  void Accept(const ClientUrls& urls);
  // Loads --cacert/--cert/--key into member_tls_ and checks the listener's files.
  Status LoadTls();
  void Retry(const Error& error);
  void ScheduleNextPoll(std::chrono::milliseconds delay);
  void PointAt(const ClientUrls& urls);
  void StartChild();
  void OnChildExit(int wait_status);
  void Finish(int code, std::string why);

  boost::asio::io_context& io_;
  ProxyFlags flags_;
  DoneCallback on_done_;
  Discoverer discoverer_;
  executor::shell::EtcdProcess child_;
  boost::asio::steady_timer poll_timer_;
  boost::asio::steady_timer child_timer_;  // SIGKILL deadline, or restart after a crash
  std::filesystem::path data_dir_;
  bool remove_data_dir_ = false;
  std::filesystem::path log_file_;
  std::mt19937 random_{std::random_device{}()};
  std::shared_ptr<const net::TlsClientConfig> member_tls_;  // null without --cacert

  std::chrono::steady_clock::time_point give_up_at_;
  ClientUrls current_;  // what the child is (or is being) pointed at; empty before the first
  bool found_ = false;
  int failures_ = 0;
  std::string last_error_;
  bool restarting_ = false;  // the child was told to stop so that it starts on current_
  bool stopping_ = false;
  bool done_ = false;
  std::chrono::steady_clock::time_point child_started_;
  int quick_deaths_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace etcd_mesos::proxy
