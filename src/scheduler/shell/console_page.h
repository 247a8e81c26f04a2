// The operator's console: the static parts of the status page (its style, its markup and the
// script that polls GET /console.json and redraws the page in place). Self-contained: no external
// asset, so it works on an isolated network; readable on a phone; keyboard reachable; state is
// always said in words, never by colour alone. status_page.h puts it around a server-rendered
// snapshot, which is what a client without scripts (or curl) sees.
//
// Threading: constants; safe from any thread.
#pragma once

#include <string_view>

namespace etcd_mesos::scheduler::shell {

std::string_view ConsoleStyle();
std::string_view ConsoleScript();
std::string_view ConsoleBody();  // the live page, hidden until the first poll answers

}  // namespace etcd_mesos::scheduler::shell
