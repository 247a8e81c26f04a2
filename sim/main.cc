// sim: runs the scheduler core in the simulated world for one seed or many, and prints the seed,
// the broken invariant and the last events of every failure. `sim --seed=S` replays a failure
// exactly. Exit status 1 if any run failed.
#include <chrono>
#include <cstdio>
#include <map>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "sim/world.h"

int main(int argc, char** argv) {
  using etcd_mesos::sim::RunSeed;
  using etcd_mesos::sim::SimOptions;
  CLI::App app{"Deterministic simulation of the etcd-mesos scheduler core"};
  uint64_t seed = 1;
  uint64_t runs = 1;
  int64_t chaos_ms = 300'000;
  int64_t calm_budget_ms = 900'000;
  uint64_t steps = 5'000'000;
  bool coverage = false;
  bool trace = false;
  app.add_option("--seed", seed, "the first seed; one seed replays one run exactly");
  app.add_option("--runs", runs, "how many seeds to run, from --seed on");
  app.add_option("--steps", steps, "at most this many steps per run");
  app.add_option("--chaos-ms", chaos_ms, "simulated time of the chaos phase");
  app.add_option("--calm-budget-ms", calm_budget_ms,
                 "simulated time the calm phase may take to heal the cluster");
  app.add_flag("--coverage", coverage, "print how often each fault and path was hit");
  app.add_flag("--trace", trace, "print the whole trace of each run");
  CLI11_PARSE(app, argc, argv);

  SimOptions options;
  options.max_steps = steps;
  options.chaos = std::chrono::milliseconds(chaos_ms);
  options.calm_budget = std::chrono::milliseconds(calm_budget_ms);
  options.keep_trace = trace;
  std::map<std::string, uint64_t> hits;
  uint64_t failures = 0, total_loss = 0, steps_total = 0;
  auto began = std::chrono::steady_clock::now();
  for (uint64_t s = seed; s < seed + runs; ++s) {
    auto r = RunSeed(options, s);
    steps_total += r.steps;
    total_loss += r.total_loss ? 1 : 0;
    for (const auto& [k, v] : r.coverage) hits[k] += v;
    if (trace) {
      for (const auto& line : r.trace) fmt::print("{}\n", line);
    }
    if (r.ok) continue;
    ++failures;
    fmt::print("FAIL seed {}: {}: {}\n  last events:\n", s, r.violation->invariant,
               r.violation->detail);
    for (const auto& line : r.last_events) fmt::print("    {}\n", line);
    fmt::print("  replay: sim --seed={} --chaos-ms={} --calm-budget-ms={}\n", s, chaos_ms,
               calm_budget_ms);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  if (coverage) {
    for (const auto& [k, v] : hits) fmt::print("  {:<45} {}\n", k, v);
  }
  fmt::print(
      "{} runs, {} failed, {} ended in reported total loss; {} steps in {:.1f} s ({:.1f} "
      "runs/s)\n",
      runs, failures, total_loss, steps_total, secs, runs / std::max(secs, 1e-9));
  return failures == 0 ? 0 : 1;
}
