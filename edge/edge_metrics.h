// The edge's Prometheus metrics (docs/operations.md lists them): frames,
// answers by route and by reason, deadline hits, a latency histogram and
// uplink bytes, from each Answer as it is delivered; the runtime's counters,
// the budget, the link estimate (bandwidth, RTT) and the cloud replicas, from
// a snapshot the driving thread takes between frames (Update). Collect() runs
// on the metrics server's threads, hence the lock.
#pragma once

#include <prometheus/collectable.h>

#include <array>
#include <mutex>

#include "core/answer.h"
#include "edge/edge_runtime.h"
#include "metrics/families.h"
#include "transport/multi_link.h"

namespace deepcut::edge {

// What the driving thread reports between frames.
struct EdgeSnapshot {
  EdgeCounters counters;
  int in_flight = 0;
  double budget_bps = 0.0;     // the knob (0: unlimited)
  double bandwidth_bps = 0.0;  // the policy's estimate (0: none)
  double rtt_s = 0.0;          // smoothed RTT (0: none)
  std::vector<transport::ReplicaState> replicas;
  transport::MultiLinkCounters link;
};

class EdgeMetrics final : public prometheus::Collectable {
 public:
  EdgeMetrics();
  void OnAnswer(const Answer& answer);
  void Update(EdgeSnapshot snapshot);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  mutable std::mutex mutex_;
  std::int64_t frames_ = 0, offloaded_ = 0, uplink_bytes_ = 0, deadline_met_ = 0;
  std::array<std::int64_t, 3> routes_{};   // by Route
  std::array<std::int64_t, 6> reasons_{};  // by Reason
  metrics::Histogram latency_seconds_;
  EdgeSnapshot snapshot_;
};

}  // namespace deepcut::edge
