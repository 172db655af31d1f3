#include "core/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>

namespace deepcut {
namespace {

namespace fs = std::filesystem;

std::string DirectoryOf(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// A new temporary file beside `path`, opened for writing (mode 0666 less the
// umask, as any output); its name in `tmp`. The name is unique per process and
// call, and O_EXCL makes sure nothing else is overwritten.
int OpenTemporary(const std::string& path, std::string& tmp, unsigned mode = 0666) {
  static std::atomic<std::uint64_t> counter{0};
  const fs::path p(path);
  for (int attempt = 0; attempt < 100; ++attempt) {
    tmp = (p.parent_path() / ("." + p.filename().string() + ".tmp-" + std::to_string(::getpid()) +
                              "-" + std::to_string(counter++)))
              .string();
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  return -1;
}

}  // namespace

Result<std::string> WriteTemporaryFile(const std::string& path, const std::string& text,
                                       unsigned mode, bool sync) {
  if (path.empty()) return InvalidArgument("no output path given");
  std::string tmp;
  const int fd = OpenTemporary(path, tmp, mode);
  if (fd < 0)
    return Internal("cannot write " + path + ": cannot create a file in " + DirectoryOf(path) +
                    ": " + std::strerror(errno));
  size_t done = 0;
  int error = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n < 0 ? errno : EIO;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (error == 0 && sync && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) {
    ::unlink(tmp.c_str());
    return Internal("cannot write " + path + ": " + std::strerror(error));
  }
  return tmp;
}

Status PlaceFile(const std::string& temporary, const std::string& path, bool replace) {
  const int rc =
      replace ? ::rename(temporary.c_str(), path.c_str()) : ::link(temporary.c_str(), path.c_str());
  const int error = errno;
  if (!replace || rc != 0) ::unlink(temporary.c_str());
  if (rc == 0) return Status::Ok();
  if (!replace && error == EEXIST) return InvalidArgument(path + " exists");
  return Internal("cannot write " + path + ": " + std::strerror(error));
}

Status WriteFileAtomically(const std::string& path, const std::string& text, bool sync) {
  ASSIGN_OR_RETURN(std::string tmp, WriteTemporaryFile(path, text, 0666, sync));
  return PlaceFile(tmp, path);
}

Status CheckWritableOutput(const std::string& path) {
  if (path.empty()) return InvalidArgument("no output path given");
  std::error_code ec;
  if (fs::is_directory(path, ec)) return InvalidArgument(path + " is a directory, not a file");
  const std::string dir = DirectoryOf(path);
  if (!fs::exists(dir, ec)) return InvalidArgument(path + ": directory " + dir + " does not exist");
  if (!fs::is_directory(dir, ec)) return InvalidArgument(path + ": " + dir + " is not a directory");
  std::string tmp;
  const int fd = OpenTemporary(path, tmp);
  if (fd < 0)
    return InvalidArgument(path + ": cannot create a file in " + dir + ": " + std::strerror(errno));
  ::close(fd);
  ::unlink(tmp.c_str());
  return Status::Ok();
}

}  // namespace deepcut
