// Building Prometheus metric families from plain numbers, for collectables
// that read a component's own counters at scrape time (so that serving a
// request or a frame costs nothing extra). Names follow Prometheus' rules:
// the deepcut_ prefix, _total on counters, base units (_seconds, _bytes).
//
//   std::vector<prometheus::MetricFamily> out;
//   AddCounter(out, "deepcut_cloud_requests_answered_total", "Requests answered", {{{}, 42}});
//   AddHistogram(out, "deepcut_cloud_batch_size", "Requests per tail run", {}, histogram);
#pragma once

#include <prometheus/metric_family.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace deepcut::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;
using Samples = std::vector<std::pair<Labels, double>>;

// A histogram's counts, kept by its owner (who locks around it).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // counts()[i]: observations <= bounds()[i] and > bounds()[i-1]; one more for +Inf.
  const std::vector<std::uint64_t>& counts() const { return counts_; }
  double sum() const { return sum_; }
  std::uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;
  double sum_ = 0.0;
  std::uint64_t count_ = 0;
};

// Upper bounds start, start*factor, ... (`n` of them).
std::vector<double> ExponentialBounds(double start, double factor, int n);

void AddCounter(std::vector<prometheus::MetricFamily>& out, const std::string& name,
                const std::string& help, const Samples& samples);
void AddGauge(std::vector<prometheus::MetricFamily>& out, const std::string& name,
              const std::string& help, const Samples& samples);
void AddHistogram(std::vector<prometheus::MetricFamily>& out, const std::string& name,
                  const std::string& help, const Labels& labels, const Histogram& histogram);

}  // namespace deepcut::metrics
