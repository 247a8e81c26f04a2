// The operator's console of etcd-mesos-local, served at `/`: one self-contained HTML page (inline
// CSS and JS, no external assets, works offline and on a phone) that polls `/master/state` and
// `/faults/state` every 2 s and re-renders in place. It shows the master, the frameworks with
// their tasks and sandbox links, and the agents with their fault state and buttons that inject
// faults (POST /faults/...) after an in-page confirmation. It also routes the real Mesos web UI's
// sandbox address, `/#/agents/<agent>/frameworks/<framework>/executors/<executor>/browse`, to
// `/sandbox?path=<the executor's directory>`, so links made for a real Mesos work here too.
#pragma once

#include <string_view>

namespace etcd_mesos::local {

// The page, as served (text/html; charset=utf-8). A constant: nothing in it comes from data.
std::string_view LocalConsolePage();

}  // namespace etcd_mesos::local
