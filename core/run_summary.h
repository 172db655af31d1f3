// The metrics of a run, computed one way from its Answers: deepcut-edge's
// --summary, deepcut-replay's report and the benches all use this, so a p99 or
// a bit rate means the same thing in each (docs/architecture.md, "Metrics").
//
//   RunSummaryBuilder b;
//   for (const Answer& a : answers) b.Add(a);
//   RunSummary s = b.Build();
//   nlohmann::json j = s.ToJson();
//
// Definitions:
//   duration_s           the capture span (first to last capture) plus one mean
//                        frame interval: the time the frames cover
//   uplink_bps           uplink_bytes * 8 / duration_s
//   max_10s_window_bps   the highest uplink bit/s over any 10 s window of
//                        capture times (an offload is sent at its capture)
//   deadline_hit_ratio   offloaded frames answered by the cloud by their deadline
//   answered_by_deadline all frames answered by their deadline
//   latency percentiles  nearest rank: the smallest latency with at least p% of
//                        the frames at or below it
//
// Thread-safety: a builder belongs to one thread.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/answer.h"

namespace deepcut {

// Nearest-rank percentile of `values` (p in [0, 100]); 0 for none.
double NearestRankPercentile(std::vector<double> values, double p);

struct RunSummary {
  std::int64_t frames = 0;  // answers, one per frame (duplicates counted apart)
  std::int64_t duplicate_answers = 0;
  std::int64_t labelled_frames = 0, correct = 0;
  std::int64_t uplink_bytes = 0, offloaded = 0;
  std::int64_t cloud_in_time = 0, reused = 0, local = 0;  // routes
  std::int64_t on_time = 0;                               // answered by the deadline
  double duration_s = 0.0;
  double max_window_bps = 0.0;
  double p50_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0, mean_ms = 0;
  std::map<std::string, std::int64_t> reasons, rates;

  double Accuracy() const {
    return labelled_frames > 0 ? static_cast<double>(correct) / labelled_frames : 0.0;
  }
  double UplinkBps() const { return duration_s > 0 ? uplink_bytes * 8.0 / duration_s : 0.0; }
  double OffloadFraction() const {
    return frames > 0 ? static_cast<double>(offloaded) / frames : 0.0;
  }
  double DeadlineHitRatio() const {
    return offloaded > 0 ? static_cast<double>(cloud_in_time) / offloaded : 1.0;
  }
  double AnsweredByDeadline() const {
    return frames > 0 ? static_cast<double>(on_time) / frames : 1.0;
  }
  // The keys every tool writes; `latency` false for a hindsight plan (its
  // answers have no latency).
  nlohmann::json ToJson(bool latency = true) const;
};

class RunSummaryBuilder {
 public:
  void Add(const Answer& answer);
  RunSummary Build() const;
  // The counts so far (no duration, window or latencies: Build() makes those).
  const RunSummary& counts() const { return s_; }

 private:
  RunSummary s_;
  std::vector<double> latencies_ms_;
  std::vector<std::pair<TimeUs, std::int64_t>> sends_;  // capture time, uplink bytes
  std::unordered_set<std::int64_t> seen_;
  TimeUs first_capture_us_ = 0, last_capture_us_ = 0;
};

}  // namespace deepcut
