#include "cloud/cloud_metrics.h"

#include "metrics/families.h"

namespace deepcut::cloud {

std::vector<prometheus::MetricFamily> CloudMetrics::Collect() const {
  using metrics::AddCounter;
  using metrics::AddGauge;
  const CloudStats s = server_.stats();
  const Phase phase = server_.phase();
  std::vector<prometheus::MetricFamily> out;
  auto d = [](std::int64_t v) { return static_cast<double>(v); };
  AddCounter(out, "deepcut_cloud_requests_received_total",
             "Requests received (every request, whatever became of it)", {{{}, d(s.received)}});
  AddCounter(out, "deepcut_cloud_requests_answered_total", "Requests answered by the tail",
             {{{}, d(s.answered)}});
  AddCounter(out, "deepcut_cloud_requests_shed_total",
             "Requests shed, by reason: the queue was full (busy), the queue ahead would outlast "
             "the deadline (hopeless), the deadline passed in the queue (expired), the cloud was "
             "shutting down (draining)",
             {{{{"reason", "busy"}}, d(s.busy - s.hopeless)},
              {{{"reason", "hopeless"}}, d(s.hopeless)},
              {{{"reason", "expired"}}, d(s.expired)},
              {{{"reason", "draining"}}, d(s.draining)}});
  AddCounter(out, "deepcut_cloud_request_errors_total",
             "Requests refused with an error reply (malformed, wrong model, bad payload)",
             {{{}, d(s.rejected)}});
  AddCounter(out, "deepcut_cloud_refused_keys_total", "CURVE handshakes refused (unknown key)",
             {{{}, d(s.refused_keys)}});
  AddCounter(out, "deepcut_cloud_batches_total", "Tail runs", {{{}, d(s.batches)}});
  AddGauge(out, "deepcut_cloud_queue_depth", "Requests waiting for a worker now",
           {{{}, d(s.queue_depth)}});
  AddCounter(out, "deepcut_cloud_received_bytes_total", "Message bytes received",
             {{{}, d(s.bytes_in)}});
  AddCounter(out, "deepcut_cloud_sent_bytes_total", "Message bytes sent", {{{}, d(s.bytes_out)}});
  metrics::Samples edges;
  for (const auto& [edge, n] : s.by_edge) edges.push_back({{{"edge", edge}}, d(n)});
  AddCounter(out, "deepcut_cloud_edge_requests_total",
             "Requests received by edge address (at most 32 addresses, the rest as 'other')",
             edges);
  metrics::AddHistogram(out, "deepcut_cloud_batch_size", "Requests per tail run", {}, s.batch_size);
  metrics::AddHistogram(out, "deepcut_cloud_service_seconds",
                        "Time a tail run took (decode, tail, encode), per batch", {},
                        s.service_seconds);
  AddGauge(out, "deepcut_cloud_ready", "1 while serving and ready for new edges",
           {{{}, phase == Phase::kServing ? 1.0 : 0.0}});
  AddGauge(out, "deepcut_cloud_draining", "1 after SIGTERM, while the cloud drains",
           {{{}, phase == Phase::kDraining ? 1.0 : 0.0}});
  AddCounter(out, "deepcut_cloud_harvest_items_total", "Harvested frames stored",
             {{{}, d(s.harvest.items)}});
  return out;
}

}  // namespace deepcut::cloud
