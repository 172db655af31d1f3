// Writing output files so that nothing half-written is ever seen, and checking
// before a run starts that its outputs can be written at all.
//
// Every tool's reports, summaries, ready files and keys go through these, so an
// output path means the same thing everywhere: a file in an existing directory,
// replaced atomically (a temporary file beside it, then a rename).
#pragma once

#include <string>

#include "core/status.h"

namespace deepcut {

// Writes `text` to `path`: a temporary file in the same directory, flushed,
// then renamed over `path`, so a reader sees the old file or the whole new one.
// On failure the temporary file is removed and `path` is untouched.
Status WriteFileAtomically(const std::string& path, const std::string& text);

// Whether `path` can be written as an output: its directory exists and a file
// can be created in it (tried, then removed: permissions alone do not tell, for
// root or on a read-only mount), and `path` itself is not a directory. Writes
// nothing that stays. The error names the path and what is wrong.
Status CheckWritableOutput(const std::string& path);

}  // namespace deepcut
