// The cloud's Prometheus metrics (docs/operations.md lists them), read from
// CloudServer::stats() at scrape time, so serving a request pays nothing for
// them: requests received, answered, shed by reason, errors, refused keys,
// queue depth, batch size and service time histograms, bytes in and out,
// requests by edge address (bounded, kMaxEdgesCounted) and the drain phase.
#pragma once

#include <prometheus/collectable.h>

#include "cloud/cloud_server.h"

namespace deepcut::cloud {

class CloudMetrics final : public prometheus::Collectable {
 public:
  // `server` is borrowed and must outlive every Collect().
  explicit CloudMetrics(const CloudServer& server) : server_(server) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const CloudServer& server_;
};

}  // namespace deepcut::cloud
