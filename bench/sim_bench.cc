// sim_bench: how fast the deterministic simulator runs, in simulated scenarios per second and
// simulated seconds per wall-clock second, so that the CI seed budget (sim/CMakeLists.txt) can be
// sized from a measurement rather than a guess.
//
// The floor, measured in the same run as every figure in bench/: the same seeds with no faults
// (a bootstrap, then the same length of healthy routine), which is the cost of the world and the
// cores doing nothing but their routine. The ratio says what the faults, and the healing they
// cause, cost on top of it.
//
// Prints one JSON line (for bench/run and for machines) and a table (for people). Never fails on
// a timing; exits 1 only if a run broke an invariant, since then the figures mean nothing.
//
// Threading: one thread, like the simulator.
#include <chrono>
#include <cstdio>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "sim/world.h"

namespace {

using etcd_mesos::sim::RunSeed;
using etcd_mesos::sim::SimOptions;

struct Figures {
  uint64_t runs = 0;
  uint64_t failed = 0;
  uint64_t steps = 0;
  double simulated_s = 0;
  double wall_s = 0;
  double ScenariosPerSecond() const { return runs / std::max(wall_s, 1e-9); }
  double SimulatedPerWall() const { return simulated_s / std::max(wall_s, 1e-9); }
  double StepsPerSecond() const { return steps / std::max(wall_s, 1e-9); }
};

Figures Measure(const SimOptions& options, uint64_t first_seed, uint64_t runs) {
  Figures f;
  auto began = std::chrono::steady_clock::now();
  for (uint64_t seed = first_seed; seed < first_seed + runs; ++seed) {
    auto r = RunSeed(options, seed);
    ++f.runs;
    f.failed += r.ok ? 0 : 1;
    f.steps += r.steps;
    f.simulated_s += std::chrono::duration<double>(r.simulated).count();
    if (!r.ok) {
      fmt::print(stderr, "seed {} failed: {}: {}\n", seed, r.violation->invariant,
                 r.violation->detail);
    }
  }
  f.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Simulated scenarios per second of the deterministic simulator"};
  uint64_t seed = 1;
  uint64_t runs = 20;
  app.add_option("--seed", seed, "the first seed");
  app.add_option("--runs", runs, "how many scenarios (seeds) to run, and as many for the floor");
  CLI11_PARSE(app, argc, argv);

  SimOptions chaos;  // the defaults SimSeeds runs with
  SimOptions floor = chaos;
  floor.faults = false;
  Figures c = Measure(chaos, seed, runs);
  Figures f = Measure(floor, seed, runs);
  double ratio = f.ScenariosPerSecond() / std::max(c.ScenariosPerSecond(), 1e-9);

  fmt::print(
      "{{\"bench\":\"sim\",\"runs\":{},\"failed\":{},\"wall_s\":{:.3f},"
      "\"scenarios_per_s\":{:.3f},\"simulated_s_per_wall_s\":{:.1f},\"steps_per_s\":{:.0f},"
      "\"floor_scenarios_per_s\":{:.3f},\"ratio\":{:.2f}}}\n",
      c.runs, c.failed, c.wall_s, c.ScenariosPerSecond(), c.SimulatedPerWall(), c.StepsPerSecond(),
      f.ScenariosPerSecond(), ratio);
  fmt::print("{:46} {:>12} {:>14} {:>12}\n", "figure", "scenarios/s", "sim s/wall s", "steps/s");
  fmt::print("{:46} {:12.2f} {:14.0f} {:12.0f}\n",
             fmt::format("chaos+calm scenarios ({} seeds)", c.runs), c.ScenariosPerSecond(),
             c.SimulatedPerWall(), c.StepsPerSecond());
  fmt::print("{:46} {:12.2f} {:14.0f} {:12.0f}\n", "floor: same seeds without faults",
             f.ScenariosPerSecond(), f.SimulatedPerWall(), f.StepsPerSecond());
  fmt::print("{:46} {:12.2f}\n", "ratio: chaos scenario time / floor time", ratio);
  return c.failed + f.failed == 0 ? 0 : 1;
}
