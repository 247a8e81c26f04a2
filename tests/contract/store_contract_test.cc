// The StateStore contract, run against both implementations, the directory store and the
// ZooKeeper store on a real ZooKeeper server, and against the simulator's in-memory store
// (sim/store_model.h), which the simulator may trust only because it passes the same cases. Then
// the cases only one of them has: damaged record files and the state-dir lock; a ZooKeeper server
// that goes away and comes back, an expired session, chroots and credentials.
//
// The io_context runs on a thread of its own and the test thread issues the operations, so a
// callback run inline or from a foreign thread shows up as a wrong thread id.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "store/directory_store.h"
#include "store/state_store.h"
#include "store/zk_store.h"
#include "testing/ports.h"
#include "testing/process.h"
#include "testing/sim_state_store.h"
#include "testing/tempdir.h"
#include "testing/zookeeper_server.h"

namespace etcd_mesos::store {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

#define ASSERT_OK(expr)                                             \
  do {                                                              \
    const auto& _r = (expr);                                        \
    ASSERT_TRUE(_r.ok()) << #expr << ": " << _r.error().ToString(); \
  } while (0)

#define EXPECT_CODE(expr, want)                                                   \
  do {                                                                            \
    const auto& _r = (expr);                                                      \
    if (_r.ok()) {                                                                \
      ADD_FAILURE() << #expr << " succeeded; want " << ErrorCodeName(want);       \
    } else {                                                                      \
      EXPECT_EQ(_r.error().code, want) << #expr << ": " << _r.error().ToString(); \
    }                                                                             \
  } while (0)

// One ZooKeeper server for the whole test binary (ctest runs each case in its own process, so in
// practice one per case); cases keep apart by chroot.
test::ZooKeeperServer& SharedZooKeeper() {
  // Destroyed at exit, which stops the server and removes its data directory.
  static std::unique_ptr<test::ZooKeeperServer> server = [] {
    auto s = std::make_unique<test::ZooKeeperServer>();
    auto started = s->Start();
    if (!started.ok()) {
      ADD_FAILURE() << started.error().ToString();
    }
    return s;
  }();
  return *server;
}

std::string UniqueChroot() {
  static int counter = 0;
  return fmt::format("/contract/case{}/store", ++counter);
}

// Runs an io_context on its own thread and turns asynchronous calls into waits.
class StoreTestBase : public ::testing::Test {
 protected:
  StoreTestBase() : guard_(io_.get_executor()) {
    io_thread_ = std::thread([this] { io_.run(); });
  }
  ~StoreTestBase() override {
    CloseStore();
    guard_.reset();
    io_.stop();
    io_thread_.join();
  }

  // Starts an operation with a callback and waits for the callback (on the io_context thread).
  template <typename T>
  T Await(const std::function<void(std::function<void(T)>)>& start,
          std::chrono::milliseconds timeout = 30s) {
    auto promise = std::make_shared<std::promise<T>>();
    auto future = promise->get_future();
    start([this, promise](T value) {
      EXPECT_EQ(std::this_thread::get_id(), io_thread_.get_id())
          << "callback ran outside the io_context thread";
      promise->set_value(std::move(value));
    });
    if (future.wait_for(timeout) != std::future_status::ready) {
      ADD_FAILURE() << "no answer within " << timeout.count() << " ms";
      return T(MakeError(ErrorCode::kInternal, "test: no answer"));
    }
    return future.get();
  }

  // Runs `fn` on the io_context thread and waits for it.
  void OnIo(const std::function<void()>& fn) {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  void CloseStore() {
    if (store_) OnIo([this] { store_.reset(); });
  }

  Result<Record> Get(StateStore& s, const std::string& path) {
    return Await<Result<Record>>([&](auto done) { s.Get(path, done); });
  }
  Result<Record> Create(StateStore& s, const std::string& path, const std::string& data) {
    return Await<Result<Record>>([&](auto done) { s.Create(path, data, done); });
  }
  Result<Record> Set(StateStore& s, const std::string& path, const std::string& data,
                     int64_t version) {
    return Await<Result<Record>>([&](auto done) { s.Set(path, data, version, done); });
  }
  Status Delete(StateStore& s, const std::string& path, int64_t version) {
    return Await<Status>([&](auto done) { s.Delete(path, version, done); });
  }
  Result<std::vector<std::string>> List(StateStore& s, const std::string& path) {
    return Await<Result<std::vector<std::string>>>([&](auto done) { s.List(path, done); });
  }

  Result<Record> Get(const std::string& path) { return Get(*store_, path); }
  Result<Record> Create(const std::string& path, const std::string& data) {
    return Create(*store_, path, data);
  }
  Result<Record> Set(const std::string& path, const std::string& data, int64_t version) {
    return Set(*store_, path, data, version);
  }
  Status Delete(const std::string& path, int64_t version) { return Delete(*store_, path, version); }
  Result<std::vector<std::string>> List(const std::string& path) { return List(*store_, path); }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread io_thread_;
  std::unique_ptr<StateStore> store_;
};

// --- the contract ------------------------------------------------------------------------------

// Where an implementation keeps its data; every Open() opens the same data.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual Status Prepare() { return OkStatus(); }
  virtual Result<std::unique_ptr<StateStore>> Open(boost::asio::io_context& io) {
    return OpenStateStore(io, Spec());
  }
  virtual std::string Spec() const = 0;
};

class DirectoryBackend : public Backend {
 public:
  // A subdirectory that does not exist yet: opening must create it.
  std::string Spec() const override { return (dir_.path() / "state").string(); }

 private:
  test::TempDir dir_{"em-store"};
};

class ZooKeeperBackend : public Backend {
 public:
  Status Prepare() override {
    if (!SharedZooKeeper().running()) {
      return MakeError(ErrorCode::kUnavailable, "the ZooKeeper server did not start");
    }
    url_ = SharedZooKeeper().Url(UniqueChroot());
    return OkStatus();
  }
  std::string Spec() const override { return url_; }

 private:
  std::string url_;
};

// The simulator's store: one model that outlives every adapter opened on it.
class SimulatorBackend : public Backend {
 public:
  Result<std::unique_ptr<StateStore>> Open(boost::asio::io_context& io) override {
    return std::unique_ptr<StateStore>(std::make_unique<test::SimStateStore>(io, model_));
  }
  std::string Spec() const override { return "sim:memory"; }

 private:
  std::shared_ptr<sim::StoreModel> model_ = std::make_shared<sim::StoreModel>();
};

struct Implementation {
  std::string name;
  std::function<std::unique_ptr<Backend>()> make;
};

std::ostream& operator<<(std::ostream& os, const Implementation& impl) { return os << impl.name; }

class StoreContract : public StoreTestBase, public ::testing::WithParamInterface<Implementation> {
 protected:
  void SetUp() override {
    backend_ = GetParam().make();
    ASSERT_OK(backend_->Prepare());
    ASSERT_NO_FATAL_FAILURE(Open());
  }

  void Open() {
    auto opened = backend_->Open(io_);
    ASSERT_OK(opened);
    store_ = std::move(*opened);
  }

  std::unique_ptr<Backend> backend_;
};

TEST_P(StoreContract, GetOfMissingNodeIsNotFound) {
  EXPECT_CODE(Get("/missing"), ErrorCode::kNotFound);
  EXPECT_CODE(Get("/missing/child"), ErrorCode::kNotFound);
}

TEST_P(StoreContract, CreateThenGetAnswersDataAtVersionZero) {
  auto created = Create("/framework-id", "abc-123");
  ASSERT_OK(created);
  EXPECT_EQ(created->data, "abc-123");
  EXPECT_EQ(created->version, 0);
  auto got = Get("/framework-id");
  ASSERT_OK(got);
  EXPECT_EQ(got->data, "abc-123");
  EXPECT_EQ(got->version, 0);
}

TEST_P(StoreContract, CreateOfExistingNodeIsAlreadyExistsAndKeepsData) {
  ASSERT_OK(Create("/n", "first"));
  EXPECT_CODE(Create("/n", "second"), ErrorCode::kAlreadyExists);
  auto got = Get("/n");
  ASSERT_OK(got);
  EXPECT_EQ(got->data, "first");
  EXPECT_EQ(got->version, 0);
}

TEST_P(StoreContract, SetIncrementsVersionByOne) {
  ASSERT_OK(Create("/n", "v0"));
  auto one = Set("/n", "v1", 0);
  ASSERT_OK(one);
  EXPECT_EQ(one->version, 1);
  EXPECT_EQ(one->data, "v1");
  auto two = Set("/n", "v2", 1);
  ASSERT_OK(two);
  EXPECT_EQ(two->version, 2);
  auto got = Get("/n");
  ASSERT_OK(got);
  EXPECT_EQ(got->data, "v2");
  EXPECT_EQ(got->version, 2);
}

TEST_P(StoreContract, SetWithWrongVersionIsConflictAndChangesNothing) {
  ASSERT_OK(Create("/n", "v0"));
  ASSERT_OK(Set("/n", "v1", 0));
  EXPECT_CODE(Set("/n", "stale", 0), ErrorCode::kConflict);
  EXPECT_CODE(Set("/n", "future", 7), ErrorCode::kConflict);
  auto got = Get("/n");
  ASSERT_OK(got);
  EXPECT_EQ(got->data, "v1");
  EXPECT_EQ(got->version, 1);
}

TEST_P(StoreContract, SetWithAnyVersionIsUnconditional) {
  ASSERT_OK(Create("/n", "v0"));
  ASSERT_OK(Set("/n", "v1", 0));
  auto any = Set("/n", "forced", kAnyVersion);
  ASSERT_OK(any);
  EXPECT_EQ(any->version, 2);
  auto got = Get("/n");
  ASSERT_OK(got);
  EXPECT_EQ(got->data, "forced");
  EXPECT_EQ(got->version, 2);
}

TEST_P(StoreContract, SetOfMissingNodeIsNotFound) {
  EXPECT_CODE(Set("/missing", "x", kAnyVersion), ErrorCode::kNotFound);
  EXPECT_CODE(Set("/missing", "x", 0), ErrorCode::kNotFound);
  EXPECT_CODE(Get("/missing"), ErrorCode::kNotFound);  // Set does not create
}

TEST_P(StoreContract, NegativeExpectedVersionOtherThanAnyIsInvalid) {
  ASSERT_OK(Create("/n", "v0"));
  EXPECT_CODE(Set("/n", "x", -2), ErrorCode::kInvalidArgument);
  EXPECT_CODE(Delete("/n", -5), ErrorCode::kInvalidArgument);
}

TEST_P(StoreContract, DeleteChecksVersion) {
  ASSERT_OK(Create("/n", "v0"));
  ASSERT_OK(Set("/n", "v1", 0));
  EXPECT_CODE(Delete("/n", 0), ErrorCode::kConflict);
  ASSERT_OK(Get("/n"));  // still there
  ASSERT_OK(Delete("/n", 1));
  EXPECT_CODE(Get("/n"), ErrorCode::kNotFound);
  EXPECT_CODE(Delete("/n", 1), ErrorCode::kNotFound);
  EXPECT_CODE(Delete("/n", kAnyVersion), ErrorCode::kNotFound);
}

TEST_P(StoreContract, DeleteWithAnyVersionIsUnconditionalAndNodeCanBeRecreated) {
  ASSERT_OK(Create("/n", "v0"));
  ASSERT_OK(Set("/n", "v1", kAnyVersion));
  ASSERT_OK(Delete("/n", kAnyVersion));
  EXPECT_CODE(Get("/n"), ErrorCode::kNotFound);
  auto again = Create("/n", "new");
  ASSERT_OK(again);
  EXPECT_EQ(again->version, 0);  // a new node starts over
}

TEST_P(StoreContract, DeleteOfNodeWithChildrenIsRefused) {
  ASSERT_OK(Create("/parent/child", "x"));
  EXPECT_CODE(Delete("/parent", kAnyVersion), ErrorCode::kRefused);
  ASSERT_OK(Get("/parent/child"));
  ASSERT_OK(Delete("/parent/child", 0));
  ASSERT_OK(Delete("/parent", 0));
  auto root = List("/");
  ASSERT_OK(root);
  EXPECT_TRUE(root->empty());
}

TEST_P(StoreContract, CreateMakesMissingParentsEmptyAtVersionZero) {
  ASSERT_OK(Create("/a/b/c", "leaf"));
  for (const char* parent : {"/a", "/a/b"}) {
    auto got = Get(parent);
    ASSERT_OK(got);
    EXPECT_EQ(got->data, "") << parent;
    EXPECT_EQ(got->version, 0) << parent;
  }
  auto leaf = Get("/a/b/c");
  ASSERT_OK(leaf);
  EXPECT_EQ(leaf->data, "leaf");
  // Existing parents are left alone.
  ASSERT_OK(Set("/a", "parent data", 0));
  ASSERT_OK(Create("/a/b/d", "sibling"));
  auto a = Get("/a");
  ASSERT_OK(a);
  EXPECT_EQ(a->data, "parent data");
  EXPECT_EQ(a->version, 1);
}

TEST_P(StoreContract, ListAnswersSortedChildNames) {
  ASSERT_OK(Create("/tasks/charlie", "3"));
  ASSERT_OK(Create("/tasks/alpha", "1"));
  ASSERT_OK(Create("/tasks/bravo", "2"));
  ASSERT_OK(Create("/tasks/alpha/deeper", "x"));
  ASSERT_OK(Create("/other", ""));
  auto tasks = List("/tasks");
  ASSERT_OK(tasks);
  EXPECT_EQ(*tasks, (std::vector<std::string>{"alpha", "bravo", "charlie"}));
  auto root = List("/");
  ASSERT_OK(root);
  EXPECT_EQ(*root, (std::vector<std::string>{"other", "tasks"}));
  auto leaf = List("/tasks/bravo");
  ASSERT_OK(leaf);
  EXPECT_TRUE(leaf->empty());
  EXPECT_CODE(List("/missing"), ErrorCode::kNotFound);
}

TEST_P(StoreContract, RootOfEmptyStoreListsEmpty) {
  auto root = List("/");
  ASSERT_OK(root);
  EXPECT_TRUE(root->empty());
}

TEST_P(StoreContract, InvalidPathsAreRefusedNamingThePath) {
  std::vector<std::string> bad = {"",
                                  "relative",
                                  "/trailing/",
                                  "//double",
                                  "/a//b",
                                  "/a/./b",
                                  "/a/..",
                                  "/.",
                                  "/..",
                                  "/ctl\x01x",
                                  "/tab\tx",
                                  std::string("/nul\0x", 6),
                                  "/" + std::string(kMaxComponentSize + 1, 'x'),
                                  std::string(kMaxPathSize / 2, '/') + "x"};
  for (const auto& path : bad) {
    SCOPED_TRACE(::testing::PrintToString(path));
    auto got = Get(path);
    EXPECT_CODE(got, ErrorCode::kInvalidArgument);
    if (!got.ok() && path.size() < 40 && path.find('\0') == std::string::npos && !path.empty()) {
      EXPECT_NE(got.error().message.find(path), std::string::npos) << got.error();
    }
    EXPECT_CODE(Create(path, "x"), ErrorCode::kInvalidArgument);
    EXPECT_CODE(Set(path, "x", kAnyVersion), ErrorCode::kInvalidArgument);
    EXPECT_CODE(Delete(path, kAnyVersion), ErrorCode::kInvalidArgument);
    EXPECT_CODE(List(path), ErrorCode::kInvalidArgument);
  }
  // The root can be listed but holds no data.
  EXPECT_CODE(Get("/"), ErrorCode::kInvalidArgument);
  EXPECT_CODE(Create("/", "x"), ErrorCode::kInvalidArgument);
  EXPECT_CODE(Set("/", "x", kAnyVersion), ErrorCode::kInvalidArgument);
  EXPECT_CODE(Delete("/", kAnyVersion), ErrorCode::kInvalidArgument);
  ASSERT_OK(List("/"));
  // Nothing was created by any of that.
  auto root = List("/");
  ASSERT_OK(root);
  EXPECT_TRUE(root->empty()) << ::testing::PrintToString(*root);
  // Names that look odd but are fine.
  for (const std::string path :
       {"/.hidden", "/a..b", "/record", "/lock", "/tmp", "/c.x", "/sp ace", "/ünïcode"}) {
    ASSERT_OK(Create(path, path));
    auto got = Get(path);
    ASSERT_OK(got);
    EXPECT_EQ(got->data, path);
  }
}

TEST_P(StoreContract, DataUpToTheLimitIsKeptLargerIsRefused) {
  std::string big(kMaxDataSize, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) % 251);
  auto created = Create("/big", big);
  ASSERT_OK(created);
  auto got = Get("/big");
  ASSERT_OK(got);
  EXPECT_TRUE(got->data == big) << "data of " << got->data.size() << " bytes differs";
  std::string too_big(kMaxDataSize + 1, 'x');
  auto refused = Create("/too-big", too_big);
  EXPECT_CODE(refused, ErrorCode::kInvalidArgument);
  if (!refused.ok()) {
    EXPECT_NE(refused.error().message.find("/too-big"), std::string::npos);
  }
  EXPECT_CODE(Get("/too-big"), ErrorCode::kNotFound);
  EXPECT_CODE(Set("/big", too_big, kAnyVersion), ErrorCode::kInvalidArgument);
  auto still = Get("/big");
  ASSERT_OK(still);
  EXPECT_EQ(still->version, 0);
}

TEST_P(StoreContract, BinaryAndEmptyDataRoundTrip) {
  std::string binary("\0\x01\xff\n\r EMREC1 0 0 00000000\n\0", 28);
  ASSERT_OK(Create("/binary", binary));
  ASSERT_OK(Create("/empty", ""));
  auto b = Get("/binary");
  ASSERT_OK(b);
  EXPECT_EQ(b->data, binary);
  auto e = Get("/empty");
  ASSERT_OK(e);
  EXPECT_EQ(e->data, "");
  ASSERT_OK(Set("/binary", "", 0));
  auto cleared = Get("/binary");
  ASSERT_OK(cleared);
  EXPECT_EQ(cleared->data, "");
  EXPECT_EQ(cleared->version, 1);
}

TEST_P(StoreContract, CallbacksArePostedNeverRunInsideTheCall) {
  // Issued from the io_context thread itself, where an inline call would go unnoticed by the
  // thread check: the callback must not have run by the time the call returns.
  std::promise<void> all_done;
  int answered = 0;
  bool returned = false;  // outlives the OnIo call: the callbacks run after it
  OnIo([&] {
    auto check = [&, this](bool ok_expected, bool ok) {
      EXPECT_TRUE(returned) << "callback ran inside the call";
      EXPECT_EQ(std::this_thread::get_id(), io_thread_.get_id());
      EXPECT_EQ(ok, ok_expected);
      if (++answered == 3) all_done.set_value();
    };
    store_->Get("bad path", [&, check](Result<Record> r) { check(false, r.ok()); });
    store_->Create("/posted", "x", [&, check](Result<Record> r) { check(true, r.ok()); });
    store_->List("/", [&, check](Result<std::vector<std::string>> r) { check(true, r.ok()); });
    returned = true;
  });
  ASSERT_EQ(all_done.get_future().wait_for(30s), std::future_status::ready);
}

TEST_P(StoreContract, OperationsTakeEffectInSubmissionOrder) {
  std::vector<std::string> order;
  std::promise<void> done;
  auto note = [&](std::string what) {
    order.push_back(std::move(what));
    if (order.size() == 5) done.set_value();
  };
  store_->Create("/seq", "0", [&](Result<Record> r) { note(r.ok() ? "create" : "create failed"); });
  store_->Set("/seq", "1", 0, [&](Result<Record> r) { note(r.ok() ? "set1" : "set1 failed"); });
  store_->Set("/seq", "2", 1, [&](Result<Record> r) { note(r.ok() ? "set2" : "set2 failed"); });
  store_->Get("/seq", [&](Result<Record> r) {
    note(r.ok() ? fmt::format("get {} v{}", r->data, r->version) : "get failed");
  });
  store_->Delete("/seq", 2, [&](Status s) { note(s.ok() ? "delete" : "delete failed"); });
  ASSERT_EQ(done.get_future().wait_for(30s), std::future_status::ready);
  EXPECT_EQ(order, (std::vector<std::string>{"create", "set1", "set2", "get 2 v2", "delete"}));
}

TEST_P(StoreContract, DataSurvivesReopeningTheStore) {
  ASSERT_OK(Create("/framework-id", "fw-1"));
  ASSERT_OK(Set("/framework-id", "fw-2", 0));
  ASSERT_OK(Create("/tasks/t1", "slave-1"));
  std::string described = store_->Describe();
  CloseStore();
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(store_->Describe(), described);
  auto got = Get("/framework-id");
  ASSERT_OK(got);
  EXPECT_EQ(got->data, "fw-2");
  EXPECT_EQ(got->version, 1);
  auto tasks = List("/tasks");
  ASSERT_OK(tasks);
  EXPECT_EQ(*tasks, std::vector<std::string>{"t1"});
  // And the versions keep counting from where they were.
  auto next = Set("/framework-id", "fw-3", 1);
  ASSERT_OK(next);
  EXPECT_EQ(next->version, 2);
}

// Scheduler HA: a leader fences its writes on its election node. While the node exists every
// write behaves as unfenced; once it is gone (its session expired) every write is refused with
// kRefused naming the fence, and changes nothing. Reads are never fenced.
TEST_P(StoreContract, FencedWritesTakeEffectOnlyWhileTheFenceNodeExists) {
  ASSERT_OK(Create("/fw/leader/candidate_0000000001", "http://10.0.0.1:12300/"));
  ASSERT_OK(Create("/fw/state", "v0"));
  store_->SetFence("/fw/leader/candidate_0000000001");
  ASSERT_OK(Set("/fw/state", "v1", 0));
  ASSERT_OK(Create("/fw/other", "x"));
  ASSERT_OK(Delete("/fw/other", kAnyVersion));
  EXPECT_CODE(Set("/fw/state", "stale", 0), ErrorCode::kConflict);  // the version still counts
  // The fence goes (here deleted by the fenced writer itself: the delete is allowed while it
  // exists); from then on nothing is written.
  ASSERT_OK(Delete("/fw/leader/candidate_0000000001", kAnyVersion));
  auto refused = Set("/fw/state", "v2", 1);
  EXPECT_CODE(refused, ErrorCode::kRefused);
  if (!refused.ok()) {
    EXPECT_NE(refused.error().message.find("candidate_0000000001"), std::string::npos)
        << refused.error();
  }
  EXPECT_CODE(Create("/fw/new", "x"), ErrorCode::kRefused);
  EXPECT_CODE(Delete("/fw/state", kAnyVersion), ErrorCode::kRefused);
  auto state = Get("/fw/state");
  ASSERT_OK(state);
  EXPECT_EQ(state->data, "v1");
  EXPECT_EQ(state->version, 1);
  EXPECT_CODE(Get("/fw/new"), ErrorCode::kNotFound);
  // Unfenced again: writes go through.
  store_->SetFence("");
  ASSERT_OK(Set("/fw/state", "v2", 1));
}

TEST_P(StoreContract, RacingCompareAndSetWritersExactlyOneWins) {
  ASSERT_OK(Create("/leader", "nobody"));
  for (int round = 0; round < 10; ++round) {
    auto current = Get("/leader");
    ASSERT_OK(current);
    std::promise<Result<Record>> a;
    std::promise<Result<Record>> b;
    std::thread writer_a([&] {
      store_->Set("/leader", fmt::format("a{}", round), current->version,
                  [&](Result<Record> r) { a.set_value(std::move(r)); });
    });
    std::thread writer_b([&] {
      store_->Set("/leader", fmt::format("b{}", round), current->version,
                  [&](Result<Record> r) { b.set_value(std::move(r)); });
    });
    writer_a.join();
    writer_b.join();
    auto fa = a.get_future();
    auto fb = b.get_future();
    ASSERT_EQ(fa.wait_for(30s), std::future_status::ready);
    ASSERT_EQ(fb.wait_for(30s), std::future_status::ready);
    auto ra = fa.get();
    auto rb = fb.get();
    ASSERT_NE(ra.ok(), rb.ok()) << "round " << round << ": exactly one writer must win";
    const auto& loser = ra.ok() ? rb : ra;
    const auto& winner = ra.ok() ? ra : rb;
    EXPECT_EQ(loser.error().code, ErrorCode::kConflict) << loser.error();
    EXPECT_EQ(winner->version, current->version + 1);
    auto after = Get("/leader");
    ASSERT_OK(after);
    EXPECT_EQ(after->data, winner->data);
    EXPECT_EQ(after->version, current->version + 1);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Store, StoreContract,
    ::testing::Values(
        Implementation{"Directory", [] { return std::make_unique<DirectoryBackend>(); }},
        Implementation{"ZooKeeper", [] { return std::make_unique<ZooKeeperBackend>(); }},
        Implementation{"Simulator", [] { return std::make_unique<SimulatorBackend>(); }}),
    [](const ::testing::TestParamInfo<Implementation>& info) { return info.param.name; });

// --- OpenStateStore -----------------------------------------------------------------------------

TEST(OpenStateStore, RefusesSpecsThatAreNeitherZooKeeperNorADirectory) {
  boost::asio::io_context io;
  for (const char* spec : {"", "dir:", "http://example.com/x", "zk://", "zk://h:2181",
                           "zk://h:2181/", "zk://h:2181/a//b"}) {
    auto opened = OpenStateStore(io, spec);
    EXPECT_CODE(opened, ErrorCode::kInvalidArgument);
  }
}

TEST(OpenStateStore, AcceptsDirPrefixAndPlainPaths) {
  test::TempDir dir("em-store");
  boost::asio::io_context io;
  auto prefixed = OpenStateStore(io, "dir:" + (dir.path() / "a").string());
  ASSERT_OK(prefixed);
  EXPECT_EQ((*prefixed)->Describe(), "dir:" + (dir.path() / "a").string());
  auto plain = OpenStateStore(io, (dir.path() / "b" / "c").string());
  ASSERT_OK(plain);
  EXPECT_EQ((*plain)->Describe(), "dir:" + (dir.path() / "b" / "c").string());
  EXPECT_TRUE(fs::is_directory(dir.path() / "b" / "c"));
}

// --- the directory store ------------------------------------------------------------------------

class DirectoryStoreTest : public StoreTestBase {
 protected:
  void SetUp() override {
    auto opened = DirectoryStore::Open(io_, dir_.path());
    ASSERT_OK(opened);
    dir_store_ = opened->get();
    store_ = std::move(*opened);
  }

  void Damage(const std::string& path, const std::function<void(std::string&)>& edit) {
    fs::path file = dir_store_->RecordFileForTesting(path);
    std::string bytes;
    {
      std::ifstream in(file, std::ios::binary);
      ASSERT_TRUE(in) << file;
      bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    edit(bytes);
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << bytes;
  }

  void ExpectDataLossNamingFile(const std::string& path) {
    auto got = Get(path);
    EXPECT_CODE(got, ErrorCode::kDataLoss);
    if (!got.ok()) {
      EXPECT_NE(got.error().message.find(dir_store_->RecordFileForTesting(path).string()),
                std::string::npos)
          << got.error();
    }
  }

  test::TempDir dir_{"em-store"};
  DirectoryStore* dir_store_ = nullptr;
};

TEST_F(DirectoryStoreTest, TruncatedRecordIsDataLossNamingTheFile) {
  ASSERT_OK(Create("/n", "some data that will be cut short"));
  Damage("/n", [](std::string& b) { b.resize(b.size() - 5); });
  ExpectDataLossNamingFile("/n");
  EXPECT_CODE(Set("/n", "x", 0), ErrorCode::kDataLoss);
  // Other nodes are unaffected, and a damaged node can still be deleted unconditionally.
  ASSERT_OK(Create("/other", "fine"));
  ASSERT_OK(Get("/other"));
  ASSERT_OK(Delete("/n", kAnyVersion));
  EXPECT_CODE(Get("/n"), ErrorCode::kNotFound);
}

TEST_F(DirectoryStoreTest, BadHeaderIsDataLoss) {
  ASSERT_OK(Create("/garbage", "x"));
  Damage("/garbage", [](std::string& b) { b = "this is not a record at all\n"; });
  ExpectDataLossNamingFile("/garbage");
  ASSERT_OK(Create("/empty-file", "x"));
  Damage("/empty-file", [](std::string& b) { b.clear(); });
  ExpectDataLossNamingFile("/empty-file");
  ASSERT_OK(Create("/bad-version", "x"));
  Damage("/bad-version", [](std::string& b) { b[7] = '-'; });
  ExpectDataLossNamingFile("/bad-version");
}

TEST_F(DirectoryStoreTest, FlippedDataByteIsDataLoss) {
  ASSERT_OK(Create("/n", "0123456789"));
  Damage("/n", [](std::string& b) { b[b.size() - 3] ^= 0x20; });
  ExpectDataLossNamingFile("/n");
}

TEST_F(DirectoryStoreTest, MissingRecordFileIsDataLoss) {
  ASSERT_OK(Create("/n", "x"));
  fs::remove(dir_store_->RecordFileForTesting("/n"));
  auto got = Get("/n");
  EXPECT_CODE(got, ErrorCode::kDataLoss);
}

TEST_F(DirectoryStoreTest, SecondOpenerOfTheSameDirectoryIsRefused) {
  auto second = DirectoryStore::Open(io_, dir_.path());
  EXPECT_CODE(second, ErrorCode::kRefused);
  if (!second.ok()) {
    EXPECT_NE(second.error().message.find(dir_.path().string()), std::string::npos)
        << second.error();
    EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error();
  }
  // Also through the flag parser, and also from another process.
  EXPECT_CODE(OpenStateStore(io_, dir_.path().string()), ErrorCode::kRefused);
  pid_t child = ::fork();
  if (child == 0) {
    boost::asio::io_context io;
    auto other = DirectoryStore::Open(io, dir_.path());
    ::_exit(!other.ok() && other.error().code == ErrorCode::kRefused ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "another process opened it";
  // Once the first store is gone, the directory can be opened again.
  ASSERT_OK(Create("/kept", "yes"));
  CloseStore();
  auto third = DirectoryStore::Open(io_, dir_.path());
  ASSERT_OK(third);
  store_ = std::move(*third);
  auto kept = Get("/kept");
  ASSERT_OK(kept);
  EXPECT_EQ(kept->data, "yes");
}

TEST_F(DirectoryStoreTest, LeftoversOfInterruptedWritesAreIgnored) {
  ASSERT_OK(Create("/n", "x"));
  CloseStore();
  // What a crash between writing and renaming leaves behind.
  std::ofstream(dir_.path() / "tmp" / "r99") << "half a record";
  fs::create_directories(dir_.path() / "tmp" / "n98");
  auto reopened = DirectoryStore::Open(io_, dir_.path());
  ASSERT_OK(reopened);
  store_ = std::move(*reopened);
  EXPECT_TRUE(fs::is_empty(dir_.path() / "tmp"));
  auto root = List("/");
  ASSERT_OK(root);
  EXPECT_EQ(*root, std::vector<std::string>{"n"});
}

// --- the ZooKeeper store ------------------------------------------------------------------------

class ZkStoreTest : public StoreTestBase {
 protected:
  Result<std::unique_ptr<ZkStore>> OpenZk(const std::string& url, ZkStoreOptions options = {}) {
    auto parsed = ParseZkUrl(url);
    if (!parsed.ok()) return parsed.error();
    return ZkStore::Open(io_, *parsed, options);
  }

  // Retries `op` while it answers kUnavailable, up to `timeout`; answers the last result.
  template <typename T>
  T RetryWhileUnavailable(const std::function<T()>& op, std::chrono::milliseconds timeout) {
    std::optional<T> r;
    test::WaitFor(
        [&] {
          r = op();
          return r->ok() || r->error().code != ErrorCode::kUnavailable;
        },
        timeout);
    return std::move(*r);
  }
};

TEST_F(ZkStoreTest, DescribeNamesServersAndChrootButNoCredentials) {
  auto& zk = SharedZooKeeper();
  ASSERT_TRUE(zk.running());
  auto opened = OpenStateStore(io_, "zk://user:secret@" + zk.servers() + "/a/b");
  ASSERT_OK(opened);
  store_ = std::move(*opened);
  EXPECT_EQ(store_->Describe(), "zk://" + zk.servers() + "/a/b");
}

TEST_F(ZkStoreTest, DeepChrootIsCreatedAndHoldsTheStore) {
  auto& zk = SharedZooKeeper();
  ASSERT_TRUE(zk.running());
  auto deep = OpenStateStore(io_, zk.Url("/deep/x/y/z"));
  ASSERT_OK(deep);
  store_ = std::move(*deep);
  ASSERT_OK(Create("/node", "in the chroot"));
  // Seen from a store rooted higher up, the chroot's nodes are there.
  auto upper = OpenStateStore(io_, zk.Url("/deep"));
  ASSERT_OK(upper);
  auto listed = List(**upper, "/x/y");
  ASSERT_OK(listed);
  EXPECT_EQ(*listed, std::vector<std::string>{"z"});
  auto got = Get(**upper, "/x/y/z/node");
  ASSERT_OK(got);
  EXPECT_EQ(got->data, "in the chroot");
  // The chroot itself is not visible from inside it.
  auto root = List("/");
  ASSERT_OK(root);
  EXPECT_EQ(*root, std::vector<std::string>{"node"});
  OnIo([&] { upper->reset(); });
}

TEST_F(ZkStoreTest, CredentialsProtectTheNodes) {
  auto& zk = SharedZooKeeper();
  ASSERT_TRUE(zk.running());
  auto with = OpenStateStore(io_, "zk://etcd:s3cret@" + zk.servers() + "/secured");
  ASSERT_OK(with);
  store_ = std::move(*with);
  ASSERT_OK(Create("/framework-id", "private"));
  auto got = Get("/framework-id");
  ASSERT_OK(got);
  EXPECT_EQ(got->data, "private");
  auto without = OpenStateStore(io_, zk.Url("/secured"));
  ASSERT_OK(without);
  EXPECT_CODE(Get(**without, "/framework-id"), ErrorCode::kUnauthenticated);
  auto wrong = OpenStateStore(io_, "zk://etcd:wrong@" + zk.servers() + "/secured");
  ASSERT_OK(wrong);
  EXPECT_CODE(Set(**wrong, "/framework-id", "stolen", kAnyVersion), ErrorCode::kUnauthenticated);
  OnIo([&] {
    without->reset();
    wrong->reset();
  });
}

TEST_F(ZkStoreTest, NoServerIsUnavailableWithinTheOperationTimeout) {
  uint16_t port = test::FreePort();
  ZkStoreOptions options;
  options.operation_timeout = 2s;
  auto opened = OpenZk(fmt::format("zk://127.0.0.1:{}/nobody", port), options);
  ASSERT_OK(opened);
  store_ = std::move(*opened);
  auto start = std::chrono::steady_clock::now();
  EXPECT_CODE(Get("/x"), ErrorCode::kUnavailable);
  EXPECT_CODE(Create("/x", "y"), ErrorCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST_F(ZkStoreTest, ServerStoppedIsUnavailableAndRestartedWorksAgain) {
  test::ZooKeeperServer zk;
  ASSERT_OK(zk.Start());
  ZkStoreOptions options;
  options.session_timeout = 4s;
  options.operation_timeout = 3s;
  auto opened = OpenZk(zk.Url("/restart"), options);
  ASSERT_OK(opened);
  store_ = std::move(*opened);
  ASSERT_OK(Create("/n", "before"));

  zk.Stop();
  auto start = std::chrono::steady_clock::now();
  auto during = Get("/n");
  EXPECT_CODE(during, ErrorCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 8s);
  EXPECT_CODE(Set("/n", "while down", kAnyVersion), ErrorCode::kUnavailable);

  ASSERT_OK(zk.Start());
  // The same store object, no reopening by the test.
  auto after = RetryWhileUnavailable<Result<Record>>([&] { return Get("/n"); }, 30s);
  ASSERT_OK(after);
  EXPECT_EQ(after->data, "before");
  EXPECT_EQ(after->version, 0);
  ASSERT_OK(Set("/n", "after", 0));
}

TEST_F(ZkStoreTest, ServerDownLongerThanTheSessionTimeoutStillRecovers) {
  test::ZooKeeperServer zk;
  ASSERT_OK(zk.Start());
  ZkStoreOptions options;
  options.session_timeout = 2s;
  options.operation_timeout = 2s;
  auto opened = OpenZk(zk.Url("/long-outage"), options);
  ASSERT_OK(opened);
  store_ = std::move(*opened);
  ASSERT_OK(Create("/n", "before"));
  // The server keeps sessions across its restart (it may or may not expire this one, depending on
  // when the client gets back); either way the same store object must serve again.
  zk.Stop();
  // The outage itself, not a wait for something to happen: the server must stay down for longer
  // than the session timeout (2s), which only the passing of time can show.
  std::this_thread::sleep_for(5s);
  ASSERT_OK(zk.Start());
  auto after = RetryWhileUnavailable<Result<Record>>([&] { return Get("/n"); }, 40s);
  ASSERT_OK(after);
  EXPECT_EQ(after->data, "before");
  ASSERT_OK(Set("/n", "after", 0));
}

TEST_F(ZkStoreTest, ExpiredSessionIsReplacedTransparently) {
  auto& zk = SharedZooKeeper();
  ASSERT_TRUE(zk.running());
  auto opened = OpenZk(zk.Url("/expiry"));
  ASSERT_OK(opened);
  auto* zk_store = opened->get();
  store_ = std::move(*opened);
  ASSERT_OK(Create("/n", "before"));
  std::optional<ZkStore::SessionId> session;
  int sessions_before = 0;
  OnIo([&] {
    session = zk_store->SessionForTesting();
    sessions_before = zk_store->SessionsOpenedForTesting();
  });
  ASSERT_TRUE(session.has_value());
  EXPECT_EQ(sessions_before, 1);
  ASSERT_OK(test::ExpireZooKeeperSession(zk.servers(), session->id, session->password));

  // The store notices, opens a new session, and works again without being recreated.
  int sessions_after = 0;
  EXPECT_TRUE(test::WaitFor(
      [&] {
        OnIo([&] { sessions_after = zk_store->SessionsOpenedForTesting(); });
        return sessions_after == 2;
      },
      30s))
      << "sessions opened: " << sessions_after;
  auto after = RetryWhileUnavailable<Result<Record>>([&] { return Get("/n"); }, 30s);
  ASSERT_OK(after);
  EXPECT_EQ(after->data, "before");
  ASSERT_OK(Set("/n", "after", 0));
  std::optional<ZkStore::SessionId> new_session;
  OnIo([&] { new_session = zk_store->SessionForTesting(); });
  ASSERT_TRUE(new_session.has_value());
  EXPECT_NE(new_session->id, session->id);
}

TEST_F(ZkStoreTest, DestroyingTheStoreWithOperationsInFlightIsSafe) {
  auto& zk = SharedZooKeeper();
  ASSERT_TRUE(zk.running());
  auto opened = OpenStateStore(io_, zk.Url("/in-flight"));
  ASSERT_OK(opened);
  store_ = std::move(*opened);
  ASSERT_OK(Create("/n", "x"));
  std::atomic<int> answered{0};
  OnIo([&] {
    for (int i = 0; i < 50; ++i) {
      store_->Set("/n", std::string(1000, 'y'), kAnyVersion, [&](Result<Record>) { ++answered; });
    }
    store_.reset();
  });
  // A marker behind them on the io thread. The answers of the Sets can only run there, and all of
  // them are queued before the marker: the Sets themselves were posted before the store was
  // destroyed, and destroying it joined the ZooKeeper client's threads, so whatever those threads
  // posted is queued too. Once the marker has run, every callback that was going to run has.
  OnIo([] {});
  EXPECT_EQ(answered.load(), 0) << "callbacks ran after the store was destroyed";
}

}  // namespace
}  // namespace etcd_mesos::store
