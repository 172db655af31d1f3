// Choices not fixed by the header:
//
// Each bin's estimate is the Beta posterior mean
//   (same + prior_count * prior(center)) / (total + prior_count),
// prior(d) = exp(-d / prior_scale). The bins are then made non-increasing by
// pool-adjacent-violators weighted by (total + prior_count): a violating pair
// is replaced by its weighted mean, so one unlucky bin near zero does not drag
// every farther bin down as a running minimum would. The probability is the
// distance's bin's (a step function: interpolating between bin centers blurred
// a sharp edge in the data into a half-way value).
#include "scheduler/scene_detector.h"

#include <algorithm>
#include <cmath>

namespace deepcut::scheduler {

namespace {

SceneOptions Sanitized(SceneOptions o) {
  o.bins = std::max(1, o.bins);
  if (!(o.max_distance > 0.0)) o.max_distance = 0.2;
  if (!(o.prior_scale > 0.0)) o.prior_scale = 0.05;
  o.channels = std::max(0, o.channels);
  o.prior_count = std::max(0.0, o.prior_count);
  return o;
}

}  // namespace

SceneDetector::SceneDetector(SceneOptions options)
    : options_(Sanitized(options)),
      same_(options_.bins, 0.0),
      total_(options_.bins, 0.0),
      probability_(options_.bins, 0.0) {
  UpdateProbabilities();
}

std::vector<float> SceneDescriptor(std::span<const float> features, int channels) {
  if (channels <= 0 || features.size() % static_cast<size_t>(channels) != 0)
    return std::vector<float>(features.begin(), features.end());
  const size_t per = features.size() / static_cast<size_t>(channels);
  std::vector<float> out(static_cast<size_t>(channels), 0.0f);
  for (int c = 0; c < channels; ++c) {
    double sum = 0.0;
    for (size_t i = 0; i < per; ++i) sum += features[c * per + i];
    out[c] = static_cast<float>(sum / static_cast<double>(per));
  }
  return out;
}

double SceneDistance(std::span<const float> a, std::span<const float> b, double range) {
  if (a.empty() || a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    sum += d * d;
  }
  const double rms = std::sqrt(sum / static_cast<double>(a.size()));
  return range > 0.0 ? rms / range : rms;
}

double SceneDetector::Distance(std::span<const float> features) const {
  if (reference_.empty()) return std::numeric_limits<double>::infinity();
  const std::vector<float> d = SceneDescriptor(features, options_.channels);
  return SceneDistance(d, reference_, static_cast<double>(options_.value_max) - options_.value_min);
}

void SceneDetector::ObserveCloudAnswer(std::span<const float> features, int class_id) {
  if (features.empty()) return;
  if (HasReference()) {
    const int bin = Bin(Distance(features));
    total_[bin] += 1.0;
    if (class_id == reference_class_) same_[bin] += 1.0;
    UpdateProbabilities();
  }
  SetReference(features, class_id);
}

void SceneDetector::SetReference(std::span<const float> features, int class_id) {
  if (features.empty()) return;
  reference_ = SceneDescriptor(features, options_.channels);
  reference_class_ = class_id;
}

double SceneDetector::ReuseProbability(double distance) const {
  return HasReference() ? probability_[Bin(distance)] : 0.0;
}

int SceneDetector::Bin(double distance) const {
  if (!(distance < options_.max_distance)) return options_.bins - 1;  // also NaN, +inf
  const int bin = static_cast<int>(std::floor(distance / options_.max_distance * options_.bins));
  return std::clamp(bin, 0, options_.bins - 1);
}

double SceneDetector::BinCenter(int bin) const {
  return (bin + 0.5) * options_.max_distance / options_.bins;
}

void SceneDetector::UpdateProbabilities() {
  // Pool-adjacent-violators for a non-increasing fit: blocks of (mean, weight, bins).
  struct Block {
    double mean, weight;
    int count;
  };
  std::vector<Block> blocks;
  for (int b = 0; b < options_.bins; ++b) {
    const double prior = std::exp(-BinCenter(b) / options_.prior_scale);
    const double weight = total_[b] + options_.prior_count;
    const double mean = weight > 0.0 ? (same_[b] + options_.prior_count * prior) / weight : prior;
    blocks.push_back({mean, std::max(weight, 1e-12), 1});
    while (blocks.size() >= 2 && blocks[blocks.size() - 2].mean < blocks.back().mean) {
      const Block last = blocks.back();
      blocks.pop_back();
      Block& merged = blocks.back();
      merged.mean =
          (merged.mean * merged.weight + last.mean * last.weight) / (merged.weight + last.weight);
      merged.weight += last.weight;
      merged.count += last.count;
    }
  }
  int b = 0;
  for (const Block& block : blocks)
    for (int k = 0; k < block.count; ++k) probability_[b++] = std::clamp(block.mean, 0.0, 1.0);
}

}  // namespace deepcut::scheduler
