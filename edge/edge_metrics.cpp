#include "edge/edge_metrics.h"

namespace deepcut::edge {

EdgeMetrics::EdgeMetrics() : latency_seconds_(metrics::ExponentialBounds(0.001, 2, 14)) {}

void EdgeMetrics::OnAnswer(const Answer& a) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++frames_;
  offloaded_ += a.offloaded;
  uplink_bytes_ += a.uplink_bytes;
  deadline_met_ += a.answer_us <= a.deadline_us;
  routes_[static_cast<size_t>(a.route)]++;
  reasons_[static_cast<size_t>(a.reason)]++;
  latency_seconds_.Observe(a.LatencyUs() / 1e6);
}

void EdgeMetrics::Update(EdgeSnapshot snapshot) {
  std::lock_guard<std::mutex> lock(mutex_);
  snapshot_ = std::move(snapshot);
}

std::vector<prometheus::MetricFamily> EdgeMetrics::Collect() const {
  using metrics::AddCounter;
  using metrics::AddGauge;
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<prometheus::MetricFamily> out;
  auto d = [](std::int64_t v) { return static_cast<double>(v); };
  AddCounter(out, "deepcut_edge_frames_total", "Frames answered", {{{}, d(frames_)}});
  metrics::Samples routes, reasons;
  for (Route r : {Route::kLocal, Route::kReuse, Route::kCloud})
    routes.push_back({{{"route", RouteName(r)}}, d(routes_[static_cast<size_t>(r)])});
  for (size_t i = 0; i < reasons_.size(); ++i)
    reasons.push_back({{{"reason", ReasonName(static_cast<Reason>(i))}}, d(reasons_[i])});
  AddCounter(out, "deepcut_edge_answers_total", "Answers by route (local, reuse, cloud)", routes);
  AddCounter(out, "deepcut_edge_answer_reasons_total", "Answers by why they got their route",
             reasons);
  AddCounter(out, "deepcut_edge_offloaded_frames_total", "Frames whose features were sent",
             {{{}, d(offloaded_)}});
  AddGauge(out, "deepcut_edge_offload_fraction", "Offloaded frames / frames, since the start",
           {{{}, frames_ ? d(offloaded_) / d(frames_) : 0.0}});
  AddCounter(out, "deepcut_edge_uplink_bytes_total",
             "Bytes sent for frames, message and frame headers included", {{{}, d(uplink_bytes_)}});
  AddGauge(out, "deepcut_edge_budget_bytes_per_second",
           "The bandwidth knob (0: unlimited); compare with rate(deepcut_edge_uplink_bytes_total)",
           {{{}, snapshot_.budget_bps / 8.0}});
  AddGauge(out, "deepcut_edge_bandwidth_estimate_bytes_per_second",
           "The policy's uplink estimate (0: no estimate)", {{{}, snapshot_.bandwidth_bps / 8.0}});
  AddGauge(out, "deepcut_edge_rtt_estimate_seconds", "Smoothed round-trip time (0: no sample)",
           {{{}, snapshot_.rtt_s}});
  AddCounter(out, "deepcut_edge_deadline_met_total", "Frames answered by their deadline",
             {{{}, d(deadline_met_)}});
  metrics::AddHistogram(out, "deepcut_edge_latency_seconds", "Capture to answer", {},
                        latency_seconds_);
  const EdgeCounters& c = snapshot_.counters;
  AddCounter(out, "deepcut_edge_offloads_sent_total", "Requests sent to the cloud",
             {{{}, d(c.offloads_sent)}});
  AddCounter(out, "deepcut_edge_replies_total", "Cloud replies by what they were",
             {{{{"kind", "in_time"}}, d(c.replies_in_time)},
              {{{"kind", "late"}}, d(c.replies_late)},
              {{{"kind", "busy"}}, d(c.replies_busy)},
              {{{"kind", "error"}}, d(c.replies_error)},
              {{{"kind", "malformed"}}, d(c.replies_malformed)},
              {{{"kind", "draining"}}, d(c.replies_draining)}});
  AddCounter(out, "deepcut_edge_resent_total",
             "Requests sent again to another replica (after draining, or lost with a replica)",
             {{{}, d(c.resent)}});
  AddCounter(out, "deepcut_edge_reconnects_total", "Sockets reopened after unanswered offloads",
             {{{}, d(c.reconnects)}});
  AddGauge(out, "deepcut_edge_in_flight", "Offloads awaiting a reply",
           {{{}, d(snapshot_.in_flight)}});
  metrics::Samples replicas;
  int connected = 0, draining = 0;
  for (const auto& r : snapshot_.replicas) {
    connected += r.connected;
    draining += r.draining;
  }
  AddGauge(out, "deepcut_edge_cloud_replicas", "Cloud replicas known, connected, draining",
           {{{{"state", "known"}}, d(static_cast<std::int64_t>(snapshot_.replicas.size()))},
            {{{"state", "connected"}}, d(connected)},
            {{{"state", "draining"}}, d(draining)}});
  AddCounter(out, "deepcut_edge_requests_lost_with_replica_total",
             "Requests whose replica dropped the connection before replying",
             {{{}, d(snapshot_.link.lost)}});
  return out;
}

}  // namespace deepcut::edge
