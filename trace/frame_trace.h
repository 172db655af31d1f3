// Frame traces: a recorded sequence of frames with capture times and optional
// labels, in one versioned file (`deepcut-frames/1`, docs/frame-trace.md).
// `deepcut-trace make|record` write them; the edge (`--source trace:FILE`) and
// `deepcut-replay` read them.
//
//   ASSIGN_OR_RETURN(auto writer, FrameTraceWriter::Create("day.dcft", header));
//   RETURN_IF_ERROR(writer->Append(image, capture_us, label));   // many times
//   RETURN_IF_ERROR(writer->Finish());                           // renames into place
//
//   ASSIGN_OR_RETURN(auto reader, FrameTraceReader::Open("day.dcft"));
//   while (true) {
//     ASSIGN_OR_RETURN(auto record, reader->Next());
//     if (!record) break;   // the end
//     ...
//   }
//
// The reader treats the file as hostile: every size and count is checked
// against the file's length and fixed limits before anything is allocated, and
// an error names the file, the record and what is wrong.
//
// Thread-safety: a writer or a reader belongs to one thread.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace deepcut::trace {

inline constexpr const char* kFrameTraceFormat = "deepcut-frames/1";

// Limits a reader enforces (and a writer respects).
inline constexpr std::uint32_t kMaxHeaderBytes = 1u << 20;  // the JSON header
inline constexpr std::uint32_t kMaxImageBytes = 64u << 20;  // one record's PNG
inline constexpr int kMaxImageSide = 16384;                 // pixels, width or height
inline constexpr std::int64_t kMaxImagePixels = 1ll << 26;  // width * height
inline constexpr std::size_t kMaxClasses = 100000;

// The JSON header. Fields marked (writer) are filled in by Finish from the frames.
struct FrameTraceHeader {
  std::int64_t frames = 0;  // (writer) number of records
  // (writer) the size every frame has, 0 when the frames differ.
  int width = 0, height = 0, channels = 0;
  std::int64_t duration_us = 0;      // (writer) capture time of the last frame
  double fps = 0.0;                  // nominal frame rate, 0: unknown
  std::string source;                // where the frames came from, e.g. "scene:fashion-mnist:test"
  std::int64_t seed = -1;            // the generator's seed, -1: none
  std::string created;               // ISO 8601 UTC; the writer fills it in when empty
  bool scene_starts_marked = false;  // records flag where a new item enters view
  std::vector<std::string> classes;  // label -> name, may be empty
  nlohmann::json params = nlohmann::json::object();  // the generator's parameters

  nlohmann::json ToJson() const;
  // Checks types and ranges; `where` prefixes error messages.
  static Result<FrameTraceHeader> FromJson(const nlohmann::json& j, const std::string& where);
};

struct FrameRecord {
  std::int64_t index = 0;       // position in the trace, from 0
  std::int64_t capture_us = 0;  // from the start of the trace, non-decreasing
  int label = -1;               // -1: unknown
  bool scene_start = false;     // a new item entered view (if the header says they are marked)
  cv::Mat image;                // 8-bit, 1 (gray), 3 (BGR) or 4 (BGRA) channels
};

// Writes a trace to a temporary sibling file and renames it into place in
// Finish; destroyed before Finish (an error, Ctrl-C), it removes the temporary
// file, so no partial trace is ever left under `path`.
class FrameTraceWriter {
 public:
  // `header`'s (writer) fields are ignored; the rest is written as given.
  static Result<std::unique_ptr<FrameTraceWriter>> Create(const std::string& path,
                                                          FrameTraceHeader header);
  ~FrameTraceWriter();
  FrameTraceWriter(const FrameTraceWriter&) = delete;
  FrameTraceWriter& operator=(const FrameTraceWriter&) = delete;

  // `image` 8-bit with 1, 3 or 4 channels; `capture_us` >= the previous one;
  // `label` -1 or a valid label (below classes.size() when classes are given).
  Status Append(const cv::Mat& image, std::int64_t capture_us, int label, bool scene_start = false);
  // Completes the header, flushes and renames the file into place.
  Status Finish();

  // The nominal frame rate, when it is known only at the end (a live source).
  void set_fps(double fps) {
    if (fps >= 0 && fps < 1e9) header_.fps = fps;
  }

  std::int64_t frames() const { return header_.frames; }
  std::int64_t bytes_written() const { return bytes_written_; }
  const std::string& path() const { return path_; }

 private:
  FrameTraceWriter(std::string path, FrameTraceHeader header);
  Status Fail(Status status);

  std::string path_, tmp_path_;
  FrameTraceHeader header_;
  std::ofstream out_;
  std::uint32_t header_bytes_ = 0;  // reserved for the JSON header (patched in Finish)
  std::int64_t bytes_written_ = 0;
  std::int64_t last_capture_us_ = 0;
  bool sizes_differ_ = false;  // two frames differ in size or channels
  bool finished_ = false, failed_ = false;
};

// Reads a trace record by record. Open checks the header and walks the record
// headers (no pixels), so a truncated or inconsistent file fails there;
// checksums and images are checked as each record is read.
class FrameTraceReader {
 public:
  static Result<std::unique_ptr<FrameTraceReader>> Open(const std::string& path);
  FrameTraceReader(const FrameTraceReader&) = delete;
  FrameTraceReader& operator=(const FrameTraceReader&) = delete;

  const FrameTraceHeader& header() const { return header_; }
  const std::string& path() const { return path_; }
  // The next record, std::nullopt after the last. A record with a bad checksum
  // or image is an error and is skipped (the next call reads the one after); a
  // file that no longer reads (changed since Open) fails every call.
  Result<std::optional<FrameRecord>> Next();
  // Records not yet read.
  std::int64_t Remaining() const { return header_.frames - next_index_; }

 private:
  explicit FrameTraceReader(std::string path) : path_(std::move(path)) {}
  std::string Where(std::int64_t index) const;

  std::string path_;
  FrameTraceHeader header_;
  std::ifstream in_;
  std::int64_t file_bytes_ = 0;
  std::int64_t offset_ = 0;  // of the next record
  std::int64_t next_index_ = 0;
  std::int64_t last_capture_us_ = 0;
  std::optional<Status> broken_;  // sticky framing error
};

}  // namespace deepcut::trace
