// StoreModel: the simulator's stand-in for the scheduler's StateStore (ZooKeeper in production, a
// directory on one machine). It holds ZooKeeper's data model in memory: nodes named by
// '/'-separated paths, each with bytes and a version that starts at 0 on Create and grows by one
// per successful Set; compare-and-set on that version; missing parents created empty; children
// listed by name, sorted; the limits and path rules of store/record.h.
//
// It answers at once and never fails on its own: latency, connection loss (a write whose outcome
// the writer cannot know), session expiry and writers racing on a version are faults that the
// world (world.cc) puts between the scheduler and this model. What the model answers is what the
// real stores answer: tests/contract/store_contract_test.cc runs the same StateStore contract
// against it (through an adapter that posts its answers, tests/testing/sim_state_store.h) as
// against ZooKeeper and the directory store, which is why the simulator may trust it.
//
// Threading: a plain value; one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "store/record.h"

namespace etcd_mesos::sim {

class StoreModel {
 public:
  // kNotFound if absent.
  Result<store::Record> Get(std::string_view path) const;
  // kAlreadyExists if present; missing parents are created (empty, version 0).
  Result<store::Record> Create(std::string_view path, std::string data);
  // kConflict on a version mismatch, kNotFound if absent; store::kAnyVersion is unconditional.
  Result<store::Record> Set(std::string_view path, std::string data, int64_t expected_version);
  // kConflict on a version mismatch, kNotFound if absent, kRefused if the node has children.
  Status Delete(std::string_view path, int64_t expected_version);
  // Sorted names of the children; "/" is never absent.
  Result<std::vector<std::string>> List(std::string_view path) const;
  // A write fenced on `fence` (store::StateStore::SetFence): its error if the fence is gone.
  Status CheckFence(std::string_view fence, std::string_view path) const;

 private:
  bool HasChildren(const std::string& path) const;

  std::map<std::string, store::Record> nodes_;  // by full path; "/" is implicit
};

}  // namespace etcd_mesos::sim
