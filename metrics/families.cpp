#include "metrics/families.h"

#include <algorithm>
#include <limits>

namespace deepcut::metrics {
namespace {

prometheus::MetricFamily Family(const std::string& name, const std::string& help,
                                prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  return family;
}

std::vector<prometheus::ClientMetric::Label> LabelsOf(const Labels& labels) {
  std::vector<prometheus::ClientMetric::Label> out;
  for (const auto& [name, value] : labels) out.push_back({name, value});
  return out;
}

// A counter or gauge family, one metric per sample.
prometheus::MetricFamily Values(const std::string& name, const std::string& help,
                                prometheus::MetricType type, const Samples& samples) {
  auto family = Family(name, help, type);
  for (const auto& [labels, value] : samples) {
    prometheus::ClientMetric metric;
    metric.label = LabelsOf(labels);
    (type == prometheus::MetricType::Counter ? metric.counter.value : metric.gauge.value) = value;
    family.metric.push_back(std::move(metric));
  }
  return family;
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::Observe(double value) {
  const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[at]++;
  sum_ += value;
  count_++;
}

std::vector<double> ExponentialBounds(double start, double factor, int n) {
  std::vector<double> bounds;
  for (double b = start; static_cast<int>(bounds.size()) < n; b *= factor) bounds.push_back(b);
  return bounds;
}

void AddCounter(std::vector<prometheus::MetricFamily>& out, const std::string& name,
                const std::string& help, const Samples& samples) {
  out.push_back(Values(name, help, prometheus::MetricType::Counter, samples));
}

void AddGauge(std::vector<prometheus::MetricFamily>& out, const std::string& name,
              const std::string& help, const Samples& samples) {
  out.push_back(Values(name, help, prometheus::MetricType::Gauge, samples));
}

void AddHistogram(std::vector<prometheus::MetricFamily>& out, const std::string& name,
                  const std::string& help, const Labels& labels, const Histogram& histogram) {
  auto family = Family(name, help, prometheus::MetricType::Histogram);
  prometheus::ClientMetric metric;
  metric.label = LabelsOf(labels);
  metric.histogram.sample_count = histogram.count();
  metric.histogram.sample_sum = histogram.sum();
  std::uint64_t cumulative = 0;
  for (size_t i = 0; i <= histogram.bounds().size(); ++i) {
    cumulative += histogram.counts()[i];
    prometheus::ClientMetric::Bucket bucket;
    bucket.cumulative_count = cumulative;
    bucket.upper_bound = i < histogram.bounds().size() ? histogram.bounds()[i]
                                                       : std::numeric_limits<double>::infinity();
    metric.histogram.bucket.push_back(bucket);
  }
  family.metric.push_back(std::move(metric));
  out.push_back(std::move(family));
}

}  // namespace deepcut::metrics
