// Benchmark: the scheduler core at scale. 10,000 agents offer every allocation interval; how many
// offers per second does the scheduler handle, against the floor of merely decoding the OFFERS
// events off the wire? (issue 8, item 4). Run with --benchmark_format=json for the table.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "mesos/codec.h"
#include "mesos/v1.h"
#include "scheduler/core/scheduler_core.h"

namespace etcd_mesos::scheduler {
namespace {

using namespace std::chrono_literals;

std::string OffersEvent(int agents, mesos_codec::ContentType type) {
  mesos::scheduler::Event event;
  event.set_type(mesos::scheduler::Event::OFFERS);
  for (int i = 0; i < agents; ++i) {
    auto* o = event.mutable_offers()->add_offers();
    o->mutable_id()->set_value("M-O" + std::to_string(i));
    o->mutable_framework_id()->set_value("M-0000");
    o->mutable_agent_id()->set_value("M-S" + std::to_string(i));
    o->set_hostname("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250));
    o->mutable_url()->set_scheme("http");
    o->mutable_url()->mutable_address()->set_ip(o->hostname());
    o->mutable_url()->mutable_address()->set_port(5051);
    for (auto [name, v] : {std::pair{"cpus", 8.0}, {"mem", 16384.0}, {"disk", 65536.0}}) {
      auto* r = o->add_resources();
      r->set_name(name);
      r->set_type(mesos::Value::SCALAR);
      r->mutable_scalar()->set_value(v);
      r->mutable_allocation_info()->set_role("etcd");
    }
    auto* ports = o->add_resources();
    ports->set_name("ports");
    ports->set_type(mesos::Value::RANGES);
    auto* range = ports->mutable_ranges()->add_range();
    range->set_begin(31000);
    range->set_end(32000);
  }
  return mesos_codec::Encode(event, type);
}

// A core with a healthy, full three-member cluster: what it does with most offers in production.
SchedulerCore FullCluster(Time now) {
  CoreConfig config;
  config.cluster_size = 3;
  SchedulerCore core(config);
  PersistentState state;
  state.framework_id = "M-0000";
  state.bootstrapped = true;
  state.reseed_token = "t";
  for (int i = 1; i <= 3; ++i) {
    Member m;
    m.name = "etcd-" + std::to_string(i);
    m.host = "10.1.0." + std::to_string(i);
    m.agent_id = "X" + std::to_string(i);
    m.peer_port = 1;
    m.client_port = 2;
    m.reseed_port = 3;
    m.task_id = FormatTaskId(m);
    m.task_state = mesos::TASK_RUNNING;
    state.members[m.name] = m;
  }
  core.Handle(Started{state, now});
  core.Handle(Subscribed{"M-0000", now});
  for (const auto& [name, m] : state.members) {
    mesos::TaskStatus s;
    s.mutable_task_id()->set_value(m.task_id);
    s.set_state(mesos::TASK_RUNNING);
    core.Handle(TaskUpdate{s, now});
  }
  return core;
}

void BM_DecodeOffersFloor(benchmark::State& state) {
  auto type = static_cast<mesos_codec::ContentType>(state.range(1));
  std::string wire = OffersEvent(static_cast<int>(state.range(0)), type);
  for (auto _ : state) {
    mesos::scheduler::Event event;
    benchmark::DoNotOptimize(mesos_codec::Decode(wire, type, &event).ok());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_DecodeAndHandleOffers(benchmark::State& state) {
  auto type = static_cast<mesos_codec::ContentType>(state.range(1));
  std::string wire = OffersEvent(static_cast<int>(state.range(0)), type);
  Time now = Time() + 1000s;
  SchedulerCore core = FullCluster(now);
  for (auto _ : state) {
    mesos::scheduler::Event event;
    (void)mesos_codec::Decode(wire, type, &event);
    std::vector<mesos::Offer> offers(event.offers().offers().begin(),
                                     event.offers().offers().end());
    Actions actions = core.Handle(OffersReceived{std::move(offers), now});
    benchmark::DoNotOptimize(actions.size());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

BENCHMARK(BM_DecodeOffersFloor)
    ->Args({10000, static_cast<int>(mesos_codec::ContentType::kProtobuf)})
    ->Args({10000, static_cast<int>(mesos_codec::ContentType::kJson)})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeAndHandleOffers)
    ->Args({10000, static_cast<int>(mesos_codec::ContentType::kProtobuf)})
    ->Args({10000, static_cast<int>(mesos_codec::ContentType::kJson)})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace etcd_mesos::scheduler

BENCHMARK_MAIN();
