#include "core/run_summary.h"

#include <algorithm>
#include <cmath>

namespace deepcut {
namespace {

constexpr double kWindowS = 10.0;

// The highest uplink bit/s over any window of kWindowS seconds (sliding over
// the send times; shorter runs use their whole length).
double MaxWindowBps(std::vector<std::pair<TimeUs, std::int64_t>> sends, double duration_s) {
  const double window_s = std::min(kWindowS, duration_s);
  if (window_s <= 0.0) return 0.0;
  std::sort(sends.begin(), sends.end());
  const TimeUs window_us = static_cast<TimeUs>(window_s * 1e6);
  std::int64_t in_window = 0, best = 0;
  size_t lo = 0;
  for (size_t hi = 0; hi < sends.size(); ++hi) {
    in_window += sends[hi].second;
    while (sends[hi].first - sends[lo].first >= window_us) in_window -= sends[lo++].second;
    best = std::max(best, in_window);
  }
  return best * 8.0 / window_s;
}

}  // namespace

double NearestRankPercentile(std::vector<double> values, double p) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  rank = std::clamp<size_t>(rank, 1, values.size());
  return values[rank - 1];
}

void RunSummaryBuilder::Add(const Answer& a) {
  if (!seen_.insert(a.frame_id).second) {
    ++s_.duplicate_answers;
    return;
  }
  if (s_.frames == 0 || a.capture_us < first_capture_us_) first_capture_us_ = a.capture_us;
  if (s_.frames == 0 || a.capture_us > last_capture_us_) last_capture_us_ = a.capture_us;
  ++s_.frames;
  if (a.label >= 0) {
    ++s_.labelled_frames;
    s_.correct += a.Correct();
  }
  s_.uplink_bytes += a.uplink_bytes;
  if (a.offloaded) {
    ++s_.offloaded;
    s_.rates[a.rate]++;
    sends_.emplace_back(a.capture_us, a.uplink_bytes);
  }
  s_.cloud_in_time += a.route == Route::kCloud;
  s_.reused += a.route == Route::kReuse;
  s_.local += a.route == Route::kLocal;
  s_.on_time += a.answer_us <= a.deadline_us;
  s_.reasons[ReasonName(a.reason)]++;
  latencies_ms_.push_back(static_cast<double>(a.LatencyUs()) / 1000.0);
}

RunSummary RunSummaryBuilder::Build() const {
  RunSummary s = s_;
  const double span_s = static_cast<double>(last_capture_us_ - first_capture_us_) / 1e6;
  // One mean frame interval beyond the last capture; a single frame covers none.
  s.duration_s = s.frames > 1 ? span_s * static_cast<double>(s.frames) / (s.frames - 1) : 0.0;
  s.max_window_bps = MaxWindowBps(sends_, s.duration_s);
  s.p50_ms = NearestRankPercentile(latencies_ms_, 50);
  s.p95_ms = NearestRankPercentile(latencies_ms_, 95);
  s.p99_ms = NearestRankPercentile(latencies_ms_, 99);
  s.max_ms = NearestRankPercentile(latencies_ms_, 100);
  double sum = 0.0;
  for (double l : latencies_ms_) sum += l;
  s.mean_ms = latencies_ms_.empty() ? 0.0 : sum / static_cast<double>(latencies_ms_.size());
  return s;
}

nlohmann::json RunSummary::ToJson(bool latency) const {
  using nlohmann::json;
  json j{{"frames", frames},
         {"answered", frames},
         {"duplicate_answers", duplicate_answers},
         {"labelled_frames", labelled_frames},
         {"accuracy", labelled_frames > 0 ? json(Accuracy()) : json()},
         {"uplink_bytes", uplink_bytes},
         {"uplink_bytes_per_frame", frames > 0 ? static_cast<double>(uplink_bytes) / frames : 0.0},
         {"uplink_bytes_per_offload",
          offloaded > 0 ? static_cast<double>(uplink_bytes) / offloaded : 0.0},
         {"uplink_bps", UplinkBps()},
         {"max_10s_window_bps", max_window_bps},
         {"offloaded", offloaded},
         {"offload_fraction", OffloadFraction()},
         {"routes", {{"cloud", cloud_in_time}, {"reuse", reused}, {"local", local}}},
         {"reasons", reasons},
         {"rates", rates},
         {"deadline_hit_ratio", offloaded > 0 ? json(DeadlineHitRatio()) : json()},
         {"answered_by_deadline", AnsweredByDeadline()},
         {"duration_s", duration_s}};
  if (latency)
    j["latency_ms"] = {
        {"p50", p50_ms}, {"p95", p95_ms}, {"p99", p99_ms}, {"max", max_ms}, {"mean", mean_ms}};
  return j;
}

}  // namespace deepcut
