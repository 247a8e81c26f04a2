// Overloaded: one callable made of several lambdas, for std::visit over a std::variant
// (`std::visit(Overloaded{[](const A&) {...}, [](const B&) {...}}, v)`). Each lambda handles
// the alternatives its parameter accepts; overload resolution picks one per alternative.
//
// Threading: a plain aggregate of the lambdas it holds; it is as thread-safe as they are.
#pragma once

namespace etcd_mesos {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace etcd_mesos
