#include "scheduler/scene_fusion.h"

#include <algorithm>
#include <cmath>

#include "scheduler/scene_detector.h"

namespace deepcut::scheduler {

namespace {
constexpr size_t kRememberedFrames = 512;  // for cloud posteriors that come back late
}

SceneFusion::SceneFusion(FusionOptions options, int classes)
    : options_(options), classes_(classes), log_score_(classes, 0.0) {}

void SceneFusion::Pool(std::span<const float> p, double weight) {
  for (int c = 0; c < classes_; ++c)
    log_score_[c] +=
        weight * std::log(std::max(static_cast<double>(p[c]), options_.probability_floor));
}

void SceneFusion::AddFrame(std::int64_t frame_id, std::span<const float> features,
                           std::span<const float> exit_probabilities) {
  auto descriptor = SceneDescriptor(features, options_.channels);
  const double range = options_.value_max - options_.value_min;
  const double d = last_descriptor_.empty()
                       ? INFINITY
                       : SceneDistance(descriptor, last_descriptor_, range > 0 ? range : 1.0);
  last_descriptor_ = std::move(descriptor);
  if (!(d <= options_.change_distance)) {
    std::fill(log_score_.begin(), log_score_.end(), 0.0);
    frames_.clear();
    scene_first_frame_ = frame_id;
    log_belief_ = 0.0;
    exit_frames_ = cloud_frames_ = 0;
  } else {
    // The earlier evidence holds a little less: the view moved by d.
    const double decay = options_.decay_scale > 0 ? std::exp(-d / options_.decay_scale) : 1.0;
    for (double& s : log_score_) s *= decay;
    log_belief_ += std::log(decay);
  }
  frames_.emplace_back(frame_id, log_belief_);
  if (frames_.size() > kRememberedFrames) frames_.pop_front();
  if (static_cast<int>(exit_probabilities.size()) == classes_) {
    Pool(exit_probabilities, options_.exit_weight);
    ++exit_frames_;
  }
}

// Frame ids arrive in increasing order, so frames_ is sorted by id.
std::deque<std::pair<std::int64_t, double>>::const_iterator SceneFusion::Find(
    std::int64_t frame_id) const {
  auto it = std::lower_bound(frames_.begin(), frames_.end(), frame_id,
                             [](const auto& f, std::int64_t id) { return f.first < id; });
  return it != frames_.end() && it->first == frame_id ? it : frames_.end();
}

bool SceneFusion::InCurrentScene(std::int64_t frame_id) const {
  return scene_first_frame_ >= 0 && frame_id >= scene_first_frame_ &&
         Find(frame_id) != frames_.end();
}

bool SceneFusion::AddCloud(std::int64_t frame_id, std::span<const std::pair<int, float>> top) {
  const auto it = Find(frame_id);
  if (it == frames_.end() || frame_id < scene_first_frame_ || top.empty()) return false;
  std::vector<float> p(classes_, 0.0f);
  double listed = 0.0;
  for (const auto& [c, score] : top)
    if (c >= 0 && c < classes_) {
      p[c] = std::max(score, 0.0f);
      listed += p[c];
    }
  const int others = classes_ - static_cast<int>(top.size());
  const float rest = others > 0 ? static_cast<float>(std::max(0.0, 1.0 - listed) / others) : 0.0f;
  for (int c = 0; c < classes_; ++c)
    if (p[c] == 0.0f) p[c] = rest;
  // Weighted by the belief that the scene has held since that frame.
  Pool(p, options_.cloud_weight * std::exp(log_belief_ - it->second));
  ++cloud_frames_;
  return true;
}

FusedAnswer SceneFusion::Current() const {
  FusedAnswer a;
  if (exit_frames_ == 0 && cloud_frames_ == 0) return a;
  const auto best = std::max_element(log_score_.begin(), log_score_.end());
  a.class_id = static_cast<int>(best - log_score_.begin());
  double sum = 0.0;
  for (double s : log_score_) sum += std::exp(s - *best);
  a.confidence = static_cast<float>(1.0 / sum);
  a.exit_frames = exit_frames_;
  a.cloud_frames = cloud_frames_;
  return a;
}

}  // namespace deepcut::scheduler
