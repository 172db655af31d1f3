// Records every Answer: one JSON line per frame, a progress bar on a terminal,
// and the run's summary (core/run_summary.h, JSON and a readable table).
//
// The per-frame file is written to FILE.tmp and renamed over FILE by Finish(),
// so a failed run leaves no partial output.
//
// Thread-safety: one recorder, called from the thread that drives the edge.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/answer.h"
#include "core/progress.h"
#include "core/run_summary.h"
#include "core/status.h"

namespace deepcut::edge {

struct AnswerLogOptions {
  std::string jsonl_path;             // per-frame records; empty: none
  std::string summary_path;           // summary JSON; empty: none
  bool progress = false;              // draw a progress bar on stderr
  std::int64_t expected_frames = -1;  // for the bar; -1 unknown
};

class AnswerLog {
 public:
  static Result<std::unique_ptr<AnswerLog>> Create(AnswerLogOptions options,
                                                   std::vector<std::string> class_names);
  ~AnswerLog();

  void Record(const Answer& answer);
  std::int64_t answered() const { return summary_.counts().frames; }
  std::int64_t uplink_bytes() const { return summary_.counts().uplink_bytes; }
  // Duplicate answers for one frame id (must stay 0).
  std::int64_t duplicates() const { return summary_.counts().duplicate_answers; }

  // The run's summary (RunSummary::ToJson) with "frames" = `frames_in` (frames
  // handed to the runtime), the wall time, and `extra` fields (run settings,
  // counters) merged in.
  nlohmann::json Summary(std::int64_t frames_in, double wall_seconds,
                         const nlohmann::json& extra) const;
  // Closes the bar, writes the files (atomically), returns the first error.
  Status Finish(const nlohmann::json& summary);
  static std::string SummaryTable(const nlohmann::json& summary);

 private:
  explicit AnswerLog(AnswerLogOptions options, std::vector<std::string> class_names);
  void DrawProgress(bool final);

  AnswerLogOptions options_;
  std::vector<std::string> class_names_;
  std::ofstream jsonl_;
  std::string jsonl_tmp_;
  RunSummaryBuilder summary_;
  ProgressLine progress_;
};

}  // namespace deepcut::edge
