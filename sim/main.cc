// sim: runs the scheduler core in the simulated world for one seed or many, and prints the seed,
// the broken invariant and the last events of every failure. `sim --seed=S` replays a failure
// exactly. Exit status 1 if any run failed.
//
// CI runs a fixed range of seeds (--seed, --runs) plus --random-runs seeds drawn from
// /dev/urandom (std::random_device), which are printed, so that each run explores new schedules
// and every failure can still be replayed. --jobs runs seeds on that many threads (each run is
// its own world; results are printed in seed order either way).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "sim/world.h"

int main(int argc, char** argv) {
  using etcd_mesos::sim::RunResult;
  using etcd_mesos::sim::RunSeed;
  using etcd_mesos::sim::SimOptions;
  CLI::App app{"Deterministic simulation of the etcd-mesos scheduler core"};
  uint64_t seed = 1;
  uint64_t runs = 1;
  uint64_t random_runs = 0;
  int jobs = 1;
  int64_t chaos_ms = 300'000;
  int64_t calm_budget_ms = 900'000;
  uint64_t steps = 5'000'000;
  int schedulers = 0;
  std::string durable = "seed";
  bool coverage = false;
  bool trace = false;
  app.add_option("--seed", seed, "the first seed; one seed replays one run exactly");
  app.add_option("--runs", runs, "how many seeds to run, from --seed on");
  app.add_option("--random-runs", random_runs,
                 "how many more seeds to draw at random (printed, so each can be replayed)");
  app.add_option("--jobs", jobs, "run seeds on this many threads")->check(CLI::Range(1, 64));
  app.add_option("--steps", steps, "at most this many steps per run");
  app.add_option("--chaos-ms", chaos_ms, "simulated time of the chaos phase");
  app.add_option("--calm-budget-ms", calm_budget_ms,
                 "simulated time the calm phase may take to heal the cluster");
  app.add_option("--schedulers", schedulers,
                 "scheduler instances in every run (2 or 3: elected through a model of "
                 "ZooKeeper); 0: as each seed says (one, or two or three in 30% of seeds)")
      ->check(CLI::Range(0, 3));
  app.add_option("--durable", durable,
                 "durable members (role etcd: reservations and persistent volumes): on, off, or "
                 "seed (as each seed says: 40% of seeds)")
      ->check(CLI::IsMember({"seed", "on", "off"}));
  app.add_flag("--coverage", coverage, "print how often each fault and path was hit");
  app.add_flag("--trace", trace, "print the whole trace of each run");
  CLI11_PARSE(app, argc, argv);

  SimOptions options;
  options.max_steps = steps;
  options.chaos = std::chrono::milliseconds(chaos_ms);
  options.calm_budget = std::chrono::milliseconds(calm_budget_ms);
  options.keep_trace = trace;
  options.schedulers = schedulers;
  if (durable != "seed") options.durable = durable == "on";

  std::vector<uint64_t> seeds;
  for (uint64_t s = seed; s < seed + runs; ++s) seeds.push_back(s);
  if (random_runs > 0) {
    std::random_device urandom;
    std::set<uint64_t> drawn(seeds.begin(), seeds.end());
    std::vector<uint64_t> extra;
    while (extra.size() < random_runs) {
      uint64_t s = (uint64_t{urandom()} << 32 | urandom()) >> 1;  // positive as int64 too
      if (drawn.insert(s).second) extra.push_back(s);
    }
    fmt::print("random seeds ({}):", extra.size());
    for (uint64_t s : extra) fmt::print(" {}", s);
    fmt::print("\n");
    std::fflush(stdout);
    seeds.insert(seeds.end(), extra.begin(), extra.end());
  }

  std::vector<RunResult> results(seeds.size());
  std::atomic<size_t> next{0};
  auto began = std::chrono::steady_clock::now();
  auto worker = [&] {
    for (size_t i = next++; i < seeds.size(); i = next++) results[i] = RunSeed(options, seeds[i]);
  };
  std::vector<std::thread> threads;
  for (int j = 1; j < jobs; ++j) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();

  std::map<std::string, uint64_t> hits;
  uint64_t failures = 0, total_loss = 0, steps_total = 0;
  std::vector<uint64_t> failed_seeds;
  for (size_t i = 0; i < seeds.size(); ++i) {
    const RunResult& r = results[i];
    steps_total += r.steps;
    total_loss += r.total_loss ? 1 : 0;
    for (const auto& [k, v] : r.coverage) hits[k] += v;
    if (trace) {
      for (const auto& line : r.trace) fmt::print("{}\n", line);
    }
    if (r.ok) continue;
    ++failures;
    failed_seeds.push_back(seeds[i]);
    fmt::print("FAIL seed {}: {}: {}\n  last events:\n", seeds[i], r.violation->invariant,
               r.violation->detail);
    for (const auto& line : r.last_events) fmt::print("    {}\n", line);
    fmt::print("  replay: sim --seed={} --chaos-ms={} --calm-budget-ms={}{}\n", seeds[i], chaos_ms,
               calm_budget_ms, durable == "seed" ? "" : " --durable=" + durable);
  }
  if (coverage) {
    for (const auto& [k, v] : hits) fmt::print("  {:<45} {}\n", k, v);
  }
  fmt::print(
      "{} runs, {} failed, {} ended in reported total loss; {} steps in {:.1f} s ({:.1f} "
      "runs/s)\n",
      seeds.size(), failures, total_loss, steps_total, secs, seeds.size() / std::max(secs, 1e-9));
  if (!failed_seeds.empty()) {
    fmt::print("failed seeds:");
    for (uint64_t s : failed_seeds) fmt::print(" {}", s);
    fmt::print("\n");
  }
  return failures == 0 ? 0 : 1;
}
