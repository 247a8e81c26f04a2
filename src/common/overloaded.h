// Overloaded: a visitor made of lambdas, one per alternative, for std::visit.
//
// Threading: a type; no state of its own.
#pragma once

namespace etcd_mesos {

template <typename... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <typename... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace etcd_mesos
