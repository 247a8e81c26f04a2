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
#include "proxy/discovery.h"
#include "proxy/flags.h"

namespace etcd_mesos::proxy {

// One asynchronous look at the members, from the source the flags name.
class Discoverer {
 public:
  using Callback = std::function<void(Result<ClientUrls>)>;
  Discoverer(boost::asio::io_context& io, const ProxyFlags& flags);
  // Starts ZooKeeper master detection for a zk:// --master; nothing otherwise.
  Status Start();
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
