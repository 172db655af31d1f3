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
// `sync` false skips the fsync: readers still see all or nothing, but a power
// cut may lose the file (for evidence written often, such as recordings).
Status WriteFileAtomically(const std::string& path, const std::string& text, bool sync = true);

// The two halves of WriteFileAtomically, for writing several files as a set
// (a key pair): `text` in a new temporary file beside `path` with `mode`
// (umask applied), synced; its name. Then PlaceFile moves it to `path`:
// replacing what is there, or with `replace` false failing if `path` exists
// (a hard link, so nothing appearing meanwhile is overwritten). The temporary
// file is gone afterwards either way.
Result<std::string> WriteTemporaryFile(const std::string& path, const std::string& text,
                                       unsigned mode = 0666, bool sync = true);
Status PlaceFile(const std::string& temporary, const std::string& path, bool replace = true);

// Whether `path` can be written as an output: its directory exists and a file
// can be created in it (tried, then removed: permissions alone do not tell, for
// root or on a read-only mount), and `path` itself is not a directory. Writes
// nothing that stays. The error names the path and what is wrong.
Status CheckWritableOutput(const std::string& path);

}  // namespace deepcut
