// What a frame trace holds: reads every record (so it also validates the
// whole file, pixels included) and sums it up for `deepcut-trace inspect`.
//
// Thread-safety: a free function on its own data.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"
#include "trace/frame_trace.h"

namespace deepcut::trace {

struct RunStats {
  std::int64_t count = 0;  // runs
  std::int64_t min_frames = 0, max_frames = 0;
  double mean_frames = 0.0;
};

struct TraceStats {
  std::string path;
  std::int64_t file_bytes = 0;
  FrameTraceHeader header;
  std::int64_t frames = 0;
  std::int64_t first_capture_us = 0, last_capture_us = 0;
  std::int64_t min_interval_us = 0, max_interval_us = 0;  // between consecutive frames
  double measured_fps = 0.0;  // (frames - 1) / capture span, 0 with fewer than two frames
  double duration_s = 0.0;    // capture span plus one frame interval
  std::map<std::string, std::int64_t> sizes;  // "WxHxC" -> frames
  std::map<int, std::int64_t> labels;         // label (-1 unknown) -> frames
  RunStats label_runs;  // maximal runs of consecutive frames with the same known label
  RunStats scenes;      // runs between marked scene starts (when the header marks them)

  nlohmann::json ToJson() const;
  std::string ToText() const;  // a few readable lines
};

// `progress(done, total)` is called now and then while reading.
Result<TraceStats> InspectTrace(
    const std::string& path,
    const std::function<void(std::int64_t, std::int64_t)>& progress = nullptr);

}  // namespace deepcut::trace
