// The on-call guide's runnable blocks (docs/response.md), as the fault suite and the end-to-end
// tests run them: a fenced block (possibly indented in a list item) whose first line is
// `# guide: <name>`, with the block's indentation taken off its lines.
//
// Threading: a pure function of the file it reads.
#pragma once

#include <map>
#include <string>

namespace etcd_mesos::test {

// Block name -> its commands; empty when the file cannot be read.
std::map<std::string, std::string> GuideCommands(const std::string& guide_path);

}  // namespace etcd_mesos::test
