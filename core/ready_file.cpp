#include "core/ready_file.h"

#include <filesystem>
#include <fstream>

namespace deepcut {

Status WriteReadyFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << text;
    if (!out.flush()) return Internal("cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return Internal("cannot write " + path + ": " + ec.message());
  }
  return Status::Ok();
}

}  // namespace deepcut
