#include "scheduler/shell/task_info.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "executor/task_config.h"

namespace etcd_mesos::scheduler::shell {

namespace {

// ---- Resources carved from an offer ----------------------------------------------------------

using Pool = google::protobuf::RepeatedPtrField<mesos::Resource>;

// A resource's identity without its value: name, role, reservations, allocation.
std::string Metadata(const mesos::Resource& r) {
  mesos::Resource copy = r;
  copy.clear_scalar();
  copy.clear_ranges();
  copy.clear_set();
  return copy.SerializeAsString();
}

void AddTo(std::vector<mesos::Resource>& out, const mesos::Resource& piece) {
  for (auto& r : out) {
    if (Metadata(r) != Metadata(piece)) continue;
    if (piece.type() == mesos::Value::SCALAR) {
      r.mutable_scalar()->set_value(r.scalar().value() + piece.scalar().value());
    } else {
      for (const auto& range : piece.ranges().range()) *r.mutable_ranges()->add_range() = range;
    }
    return;
  }
  out.push_back(piece);
}

// Takes `amount` of scalar `name` from the pool, piece by piece, keeping each piece's metadata.
// Falls back to an unreserved resource for the role when the pool runs short (the master then
// refuses the launch, which reports the truth).
void TakeScalar(Pool& pool, const std::string& name, double amount, const std::string& role,
                std::vector<mesos::Resource>& out) {
  for (auto& r : pool) {
    if (amount <= 1e-9) return;
    if (r.name() != name || r.type() != mesos::Value::SCALAR || r.scalar().value() <= 1e-9) {
      continue;
    }
    double take = std::min(amount, r.scalar().value());
    mesos::Resource piece = r;
    piece.mutable_scalar()->set_value(take);
    r.mutable_scalar()->set_value(r.scalar().value() - take);
    amount -= take;
    AddTo(out, piece);
  }
  if (amount > 1e-9) {
    mesos::Resource piece;
    piece.set_name(name);
    piece.set_type(mesos::Value::SCALAR);
    piece.mutable_scalar()->set_value(amount);
    piece.mutable_allocation_info()->set_role(role);
    AddTo(out, piece);
  }
}

void TakePort(const Pool& pool, uint16_t port, const std::string& role,
              std::vector<mesos::Resource>& out) {
  mesos::Resource piece;
  bool found = false;
  for (const auto& r : pool) {
    if (r.name() != "ports" || r.type() != mesos::Value::RANGES) continue;
    for (const auto& range : r.ranges().range()) {
      if (range.begin() <= port && port <= range.end()) {
        piece = r;
        found = true;
        break;
      }
    }
    if (found) break;
  }
  if (!found) {
    piece.set_name("ports");
    piece.set_type(mesos::Value::RANGES);
    piece.mutable_allocation_info()->set_role(role);
  }
  piece.clear_ranges();
  auto* range = piece.mutable_ranges()->add_range();
  range->set_begin(port);
  range->set_end(port);
  AddTo(out, piece);
}

void AddTaskResources(const std::vector<mesos::Resource>& pieces, Pool* out) {
  for (const auto& p : pieces) *out->Add() = p;
}

}  // namespace

std::string ExecutorIdOf(const Member& member) {
  std::string id = fmt::format("{}.{}", member.name, member.generation);
  if (member.restarts > 0) id += fmt::format(".r{}", member.restarts);
  return id;
}

std::vector<mesos::Resource> DurableResources(const CoreConfig& config, const Member& m,
                                              const std::string& role,
                                              const std::optional<std::string>& principal) {
  auto reserved = [&](mesos::Resource r) {
    r.mutable_allocation_info()->set_role(role);
    auto* reservation = r.add_reservations();
    reservation->set_type(mesos::Resource::ReservationInfo::DYNAMIC);
    reservation->set_role(role);
    if (principal) reservation->set_principal(*principal);
    auto* labels = reservation->mutable_labels();
    for (const auto& [key, value] :
         {std::pair<const char*, std::string>{kLabelCluster, config.framework_name},
          {kLabelGeneration, std::to_string(m.generation)},
          {kLabelMember, m.name},
          {kLabelVolume, m.volume}}) {
      auto* label = labels->add_labels();
      label->set_key(key);
      label->set_value(value);
    }
    return r;
  };
  auto scalar = [&](const char* name, double value) {
    mesos::Resource r;
    r.set_name(name);
    r.set_type(mesos::Value::SCALAR);
    r.mutable_scalar()->set_value(value);
    return reserved(r);
  };
  std::vector<mesos::Resource> out = {scalar("cpus", config.task_cpus),
                                      scalar("mem", config.task_mem)};
  mesos::Resource disk = scalar("disk", config.task_disk);
  auto* volume = disk.mutable_disk();
  volume->mutable_persistence()->set_id(m.volume);
  if (principal) volume->mutable_persistence()->set_principal(*principal);
  // The executor's data dir is <sandbox>/data: the volume appears there.
  volume->mutable_volume()->set_container_path("data");
  volume->mutable_volume()->set_mode(mesos::Volume::RW);
  out.push_back(disk);
  mesos::Resource ports;
  ports.set_name("ports");
  ports.set_type(mesos::Value::RANGES);
  for (uint16_t port : {m.peer_port, m.client_port, m.reseed_port}) {
    auto* range = ports.mutable_ranges()->add_range();
    range->set_begin(port);
    range->set_end(port);
  }
  out.push_back(reserved(ports));
  return out;
}

mesos::TaskInfo BuildTaskInfo(const LaunchMember& launch, const mesos::Offer* offer,
                              const LaunchContext& context) {
  const CoreConfig& config = *context.core;
  const Member& m = launch.member;
  mesos::TaskInfo task;
  std::string id = FormatTaskId(m);
  task.mutable_task_id()->set_value(id);
  task.set_name(id);
  task.mutable_agent_id()->set_value(offer ? offer->agent_id().value() : m.agent_id);

  Pool pool;
  std::string role = config.role;
  if (offer) {
    pool = offer->resources();
    for (const auto& r : pool) {
      if (r.has_allocation_info() && r.allocation_info().has_role()) {
        role = r.allocation_info().role();
        break;
      }
    }
  }
  std::vector<mesos::Resource> task_resources;
  if (!m.volume.empty()) {
    // Its own reservation and volume, exactly as reserved (Mesos matches them whole); the
    // executor takes unreserved resources only.
    task_resources = DurableResources(config, m, role, context.principal);
    pool.erase(std::remove_if(pool.begin(), pool.end(),
                              [](const mesos::Resource& r) { return r.reservations_size() > 0; }),
               pool.end());
  } else {
    TakeScalar(pool, "cpus", config.task_cpus, role, task_resources);
    TakeScalar(pool, "mem", config.task_mem, role, task_resources);
    TakeScalar(pool, "disk", config.task_disk, role, task_resources);
    for (uint16_t port : {m.peer_port, m.client_port, m.reseed_port}) {
      TakePort(pool, port, role, task_resources);
    }
  }
  AddTaskResources(task_resources, task.mutable_resources());

  auto* exec = task.mutable_executor();
  exec->set_type(mesos::ExecutorInfo::CUSTOM);
  exec->mutable_executor_id()->set_value(ExecutorIdOf(m));
  if (!context.framework_id.empty()) {
    exec->mutable_framework_id()->set_value(context.framework_id);
  }
  exec->set_name("etcd");
  if (context.executor_shutdown_grace.count() > 0) {
    exec->mutable_shutdown_grace_period()->set_nanoseconds(
        std::chrono::duration_cast<std::chrono::nanoseconds>(context.executor_shutdown_grace)
            .count());
  }
  auto* command = exec->mutable_command();
  command->set_value("./etcd-mesos-executor");
  for (const char* artifact : {"etcd-mesos-executor", "etcd", "etcdctl"}) {
    auto* uri = command->add_uris();
    auto version = context.artifact_versions.find(artifact);
    bool versioned = version != context.artifact_versions.end();
    // A versioned URL names one content for ever: the agent's fetcher cache may keep it, and a
    // replacement launched on the same agent starts without downloading tens of MB again.
    uri->set_value(context.artifact_base + (versioned ? version->second + "/" : "") + artifact);
    uri->set_executable(true);
    uri->set_extract(false);
    uri->set_cache(versioned);
    if (versioned) uri->set_output_file(artifact);
  }
  if (!launch.restore_snapshot.empty()) {
    auto* uri = command->add_uris();
    uri->set_value(context.artifact_base + "backups/" + launch.restore_snapshot);
    uri->set_executable(false);
    uri->set_extract(false);
    uri->set_cache(false);
  }
  std::vector<mesos::Resource> exec_resources;
  TakeScalar(pool, "cpus", config.executor_cpus, role, exec_resources);
  TakeScalar(pool, "mem", config.executor_mem, role, exec_resources);
  AddTaskResources(exec_resources, exec->mutable_resources());

  // For DNS built on master state (mesos-dns): ports named with etcd's own SRV service labels,
  // protocol tcp, so clients outside the framework (EXTERNAL) find `_etcd-client._..._tcp`
  // records instead of the original's `_etcd-server._client` hack (its issue #126).
  auto* discovery = task.mutable_discovery();
  discovery->set_visibility(mesos::DiscoveryInfo::EXTERNAL);
  discovery->set_name(config.framework_name);
  auto* peer = discovery->mutable_ports()->add_ports();
  peer->set_number(m.peer_port);
  peer->set_name("etcd-server");
  peer->set_protocol("tcp");
  auto* client = discovery->mutable_ports()->add_ports();
  client->set_number(m.client_port);
  client->set_name("etcd-client");
  client->set_protocol("tcp");

  executor::TaskConfig tc;
  tc.name = m.name;
  tc.address = m.host;
  tc.peer_port = m.peer_port;
  tc.client_port = m.client_port;
  tc.reseed_port = m.reseed_port;
  tc.initial_cluster = launch.initial_cluster;
  tc.initial_cluster_state = launch.new_cluster ? executor::InitialClusterState::kNew
                                                : executor::InitialClusterState::kExisting;
  tc.cluster_token = launch.cluster_token;
  tc.reseed_token = context.reseed_token;
  tc.extra_flags = context.etcd_flags;
  if (!launch.restore_snapshot.empty()) {
    tc.restore_snapshot = launch.restore_snapshot;
    tc.restore_sha256 = context.restore_sha256;
  }
  if (m.tls)
    tc.tls = executor::TaskConfig::Tls{context.tls_ca, context.cert_url, context.cert_token};
  task.set_data(executor::EncodeTaskConfig(tc));
  return task;
}

mesos::FrameworkInfo BuildFrameworkInfo(const SchedulerFlags& flags,
                                        const std::optional<std::string>& framework_id) {
  mesos::FrameworkInfo info;
  info.set_user(flags.shell.user);
  info.set_name(flags.core.framework_name);
  info.add_roles(flags.core.role);
  info.set_checkpoint(true);
  info.set_failover_timeout(flags.shell.failover_timeout_s);
  info.set_webui_url(flags.shell.webui_url);
  info.set_hostname(flags.shell.address);
  if (flags.shell.principal) info.set_principal(*flags.shell.principal);
  // RESERVATION_REFINEMENT: offers name reservations in `reservations`, whose labels say which
  // member's they are (durable members).
  for (auto type : {mesos::FrameworkInfo::Capability::MULTI_ROLE,
                    mesos::FrameworkInfo::Capability::PARTITION_AWARE,
                    mesos::FrameworkInfo::Capability::TASK_KILLING_STATE,
                    mesos::FrameworkInfo::Capability::RESERVATION_REFINEMENT}) {
    info.add_capabilities()->set_type(type);
  }
  if (framework_id) info.mutable_id()->set_value(*framework_id);
  return info;
}

}  // namespace etcd_mesos::scheduler::shell
