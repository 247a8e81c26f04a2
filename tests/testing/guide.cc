#include "testing/guide.h"

#include <fstream>
#include <string_view>

namespace etcd_mesos::test {

std::map<std::string, std::string> GuideCommands(const std::string& guide_path) {
  std::ifstream in(guide_path);
  std::map<std::string, std::string> out;
  std::string line, name, body;
  size_t indent = 0;
  bool in_block = false;
  while (std::getline(in, line)) {
    size_t first = line.find_first_not_of(' ');
    std::string_view text = first == std::string::npos ? "" : std::string_view(line).substr(first);
    if (text.starts_with("```")) {
      if (in_block && !name.empty()) out[name] = body;
      in_block = !in_block;
      indent = first;
      name.clear();
      body.clear();
      continue;
    }
    if (!in_block) continue;
    if (body.empty() && name.empty() && text.starts_with("# guide: ")) {
      name = std::string(text.substr(9));
      continue;
    }
    body += (line.size() >= indent ? line.substr(indent) : std::string()) + "\n";
  }
  return out;
}

}  // namespace etcd_mesos::test
