// The --ready-file of the long-running processes (cloud, link): once a process
// listens, it writes its bound endpoints there, so a script can wait for it and
// learn a `*` port.
#pragma once

#include <string>

#include "core/status.h"

namespace deepcut {

// Writes `text` to `path` atomically (a temporary file, then a rename), so a
// watcher never reads half a line.
Status WriteReadyFile(const std::string& path, const std::string& text);

}  // namespace deepcut
