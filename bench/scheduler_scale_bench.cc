// Benchmark: the scheduler core at scale. 10,000 agents offer every allocation interval; how many
// offers per second does the scheduler handle, against the floor of merely decoding the OFFERS
// events off the wire? And how much heap does it take, against the floor of holding the decoded
// event? (issue 8, item 4). Run with --benchmark_format=json for the table.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "mesos/codec.h"
#include "mesos/v1.h"
#include "scheduler/core/scheduler_core.h"

// ---- A heap counter for this benchmark binary only ---------------------------------------------
// The scheduler's memory is measured as heap bytes: every global operator new/delete of this
// binary (and only this binary: it is not linked into anything else) goes to malloc/free and
// counts the bytes malloc actually reserved (malloc_usable_size, glibc), with the bytes currently
// allocated and a resettable peak. The counters are relaxed atomics: the benchmarks are
// single-threaded and only need each figure, not ordering. Counting costs one atomic add per
// allocation and per free, paid by the floor and the figure alike.
namespace {

std::atomic<std::int64_t> g_heap_live{0};
std::atomic<std::int64_t> g_heap_peak{0};

void CountAllocated(void* p) {
  auto n = static_cast<std::int64_t>(malloc_usable_size(p));
  std::int64_t live = g_heap_live.fetch_add(n, std::memory_order_relaxed) + n;
  std::int64_t peak = g_heap_peak.load(std::memory_order_relaxed);
  while (live > peak && !g_heap_peak.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
}

void* Allocate(std::size_t size, std::size_t align, bool nothrow) {
  if (size == 0) size = 1;
  for (;;) {
    void* p = nullptr;
    if (align <= __STDCPP_DEFAULT_NEW_ALIGNMENT__) {
      p = std::malloc(size);
    } else if (posix_memalign(&p, align, size) != 0) {
      p = nullptr;
    }
    if (p != nullptr) {
      CountAllocated(p);
      return p;
    }
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    handler();
  }
}

void Free(void* p) noexcept {
  if (p == nullptr) return;
  g_heap_live.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)),
                        std::memory_order_relaxed);
  std::free(p);
}

constexpr std::size_t kDefaultAlign = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

}  // namespace

void* operator new(std::size_t n) { return Allocate(n, kDefaultAlign, false); }
void* operator new[](std::size_t n) { return Allocate(n, kDefaultAlign, false); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return Allocate(n, kDefaultAlign, true);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return Allocate(n, kDefaultAlign, true);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return Allocate(n, static_cast<std::size_t>(a), false);
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return Allocate(n, static_cast<std::size_t>(a), false);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return Allocate(n, static_cast<std::size_t>(a), true);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return Allocate(n, static_cast<std::size_t>(a), true);
}
void operator delete(void* p) noexcept { Free(p); }
void operator delete[](void* p) noexcept { Free(p); }
void operator delete(void* p, std::size_t) noexcept { Free(p); }
void operator delete[](void* p, std::size_t) noexcept { Free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { Free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { Free(p); }
void operator delete(void* p, std::align_val_t) noexcept { Free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { Free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { Free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { Free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { Free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { Free(p); }

namespace etcd_mesos::scheduler {
namespace {

using namespace std::chrono_literals;

// Heap bytes from the moment it is made: the peak above the bytes live then, and the bytes still
// live above them now. Only one window is open at a time (it resets the global peak).
class HeapWindow {
 public:
  HeapWindow() : base_(g_heap_live.load(std::memory_order_relaxed)) {
    g_heap_peak.store(base_, std::memory_order_relaxed);
  }
  double Peak() const {
    return static_cast<double>(g_heap_peak.load(std::memory_order_relaxed) - base_);
  }
  double Live() const {
    return static_cast<double>(g_heap_live.load(std::memory_order_relaxed) - base_);
  }

 private:
  std::int64_t base_;
};

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
  const int agents = static_cast<int>(state.range(0));
  auto type = static_cast<mesos_codec::ContentType>(state.range(1));
  std::string wire = OffersEvent(agents, type);
  // Memory, once and outside the timed loop: the peak while decoding one event, and what the
  // decoded event holds.
  double peak = 0, event_bytes = 0;
  {
    HeapWindow heap;
    mesos::scheduler::Event event;
    (void)mesos_codec::Decode(wire, type, &event);
    peak = heap.Peak();
    event_bytes = heap.Live();
  }
  for (auto _ : state) {
    mesos::scheduler::Event event;
    benchmark::DoNotOptimize(mesos_codec::Decode(wire, type, &event).ok());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["peak_bytes"] = peak;
  state.counters["event_bytes"] = event_bytes;
  state.counters["bytes_per_agent"] = peak / agents;
}

void BM_DecodeAndHandleOffers(benchmark::State& state) {
  const int agents = static_cast<int>(state.range(0));
  auto type = static_cast<mesos_codec::ContentType>(state.range(1));
  std::string wire = OffersEvent(agents, type);
  Time now = Time() + 1000s;
  SchedulerCore core = FullCluster(now);
  // Memory, once and outside the timed loop: the peak while decoding one event and handling it
  // (the event, the offers handed to the core and its actions all held), and what the core still
  // holds once they are gone.
  double peak = 0, retained = 0;
  {
    HeapWindow heap;
    {
      mesos::scheduler::Event event;
      (void)mesos_codec::Decode(wire, type, &event);
      std::vector<mesos::Offer> offers(event.offers().offers().begin(),
                                       event.offers().offers().end());
      Actions actions = core.Handle(OffersReceived{std::move(offers), now});
      benchmark::DoNotOptimize(actions.size());
      peak = heap.Peak();
    }
    retained = heap.Live();
  }
  for (auto _ : state) {
    mesos::scheduler::Event event;
    (void)mesos_codec::Decode(wire, type, &event);
    std::vector<mesos::Offer> offers(event.offers().offers().begin(),
                                     event.offers().offers().end());
    Actions actions = core.Handle(OffersReceived{std::move(offers), now});
    benchmark::DoNotOptimize(actions.size());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["peak_bytes"] = peak;
  state.counters["retained_bytes"] = retained;
  state.counters["bytes_per_agent"] = peak / agents;
}

// Several agent counts, so that linearity in agents can be read off the table.
void AgentCounts(benchmark::internal::Benchmark* b) {
  for (int agents : {1000, 2500, 5000, 10000}) {
    for (auto type : {mesos_codec::ContentType::kProtobuf, mesos_codec::ContentType::kJson}) {
      b->Args({agents, static_cast<int>(type)});
    }
  }
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_DecodeOffersFloor)->Apply(AgentCounts);
BENCHMARK(BM_DecodeAndHandleOffers)->Apply(AgentCounts);

}  // namespace
}  // namespace etcd_mesos::scheduler

BENCHMARK_MAIN();
