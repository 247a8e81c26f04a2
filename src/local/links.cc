#include "local/links.h"

#include <boost/asio/post.hpp>

namespace etcd_mesos::local {

void Link::ToAgent(std::function<void(AgentApi&)> call) {
  if (partitioned_ || agent_ == nullptr) return;
  boost::asio::post(io_, [this, alive = alive_, call = std::move(call)] {
    if (*alive && !partitioned_ && agent_ != nullptr) call(*agent_);
  });
}

void Link::ToMaster(std::function<void(MasterApi&)> call) {
  if (partitioned_ || master_ == nullptr) return;
  boost::asio::post(io_, [this, alive = alive_, call = std::move(call)] {
    if (*alive && !partitioned_ && master_ != nullptr) call(*master_);
  });
}

}  // namespace etcd_mesos::local
