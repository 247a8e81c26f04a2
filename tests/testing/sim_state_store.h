// SimStateStore: the simulator's in-memory store (sim/store_model.h) behind the StateStore
// interface, so that the StateStore contract suite (tests/contract/store_contract_test.cc) runs
// against it exactly as it runs against ZooKeeper and the directory store. The model decides
// every answer; this adapter only adds what the interface promises about delivery.
//
// Threading: as StateStore: methods may be called from any thread; each operation is posted to
// the io_context and applied there in the order of posting, and its callback runs there, never
// inside the call. After the adapter is destroyed (on the io_context's thread), no callback of it
// runs. The model is shared
// (reopening the "same store" is a new adapter over the same model) and is only touched on the
// io_context's thread.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "sim/store_model.h"
#include "store/state_store.h"

namespace etcd_mesos::test {

class SimStateStore : public store::StateStore {
 public:
  SimStateStore(boost::asio::io_context& io, std::shared_ptr<sim::StoreModel> model)
      : io_(io), model_(std::move(model)), alive_(std::make_shared<bool>(true)) {}
  ~SimStateStore() override { *alive_ = false; }

  void Get(std::string path, std::function<void(Result<store::Record>)> done) override {
    Apply([m = model_, path] { return m->Get(path); }, std::move(done));
  }
  void Create(std::string path, std::string data,
              std::function<void(Result<store::Record>)> done) override {
    Apply(
        [m = model_, path, data, f = fence_]() -> Result<store::Record> {
          if (auto s = m->CheckFence(f, path); !s.ok()) return s.error();
          return m->Create(path, data);
        },
        std::move(done));
  }
  void Set(std::string path, std::string data, int64_t expected_version,
           std::function<void(Result<store::Record>)> done) override {
    Apply(
        [m = model_, path, data, expected_version, f = fence_]() -> Result<store::Record> {
          if (auto s = m->CheckFence(f, path); !s.ok()) return s.error();
          return m->Set(path, data, expected_version);
        },
        std::move(done));
  }
  void Delete(std::string path, int64_t expected_version,
              std::function<void(Status)> done) override {
    Apply(
        [m = model_, path, expected_version, f = fence_]() -> Status {
          if (auto s = m->CheckFence(f, path); !s.ok()) return s;
          return m->Delete(path, expected_version);
        },
        std::move(done));
  }
  void SetFence(std::string fence) override { fence_ = std::move(fence); }
  void List(std::string path, std::function<void(Result<std::vector<std::string>>)> done) override {
    Apply([m = model_, path] { return m->List(path); }, std::move(done));
  }
  std::string Describe() const override { return "sim:memory"; }

 private:
  // Posts the operation; it takes effect on the io_context's thread, in posting order, unless the
  // adapter is gone by then (then it takes no effect at all, and nothing is answered).
  template <typename Op, typename Done>
  void Apply(Op op, Done done) {
    boost::asio::post(io_, [alive = alive_, op = std::move(op), done = std::move(done)] {
      if (*alive) done(op());
    });
  }

  boost::asio::io_context& io_;
  std::shared_ptr<sim::StoreModel> model_;
  std::shared_ptr<bool> alive_;
  std::string fence_;
};

}  // namespace etcd_mesos::test
