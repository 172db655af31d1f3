// Answers from the whole scene. A frame's own evidence is one exit posterior
// (and, if it was offloaded, one cloud posterior), but its scene — the frames
// since the view last changed — holds many: errors are largely frame-specific
// (a blurred frame, an odd pose), so what the other frames of the same item say
// answers the hard one. SceneFusion pools the evidence of the current scene:
//
//   log p(c) = sum over the scene's frames s of  w_s * b(s) * log q_s(c)
//
// where q_s is a frame's exit posterior (weight exit_weight) or the cloud's
// posterior for it (weight cloud_weight, its top-k scores with the rest of the
// mass spread evenly), and b(s) is the belief that the scene has not changed
// since frame s: it fades by exp(-d / decay_scale) per frame, d the
// scene-descriptor distance between consecutive frames (SceneDescriptor; the
// edge uses the whole feature vector), and
// the scene restarts (all evidence dropped) when d exceeds change_distance.
// The answer is the pooled posterior's argmax. A cloud posterior that arrives
// for a frame of an earlier scene is not pooled (that frame's own answer uses
// it alone).
//
// Thread-safety: one per edge stream, one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <utility>
#include <vector>

namespace deepcut::scheduler {

struct FusionOptions {
  double exit_weight = 1.0;         // one exit posterior's weight
  double cloud_weight = 8.0;        // one cloud posterior's weight
  double change_distance = 0.2;     // consecutive descriptor distance: a new scene above it
  double decay_scale = 0.3;         // evidence fades by exp(-d / decay_scale) per frame
  double probability_floor = 1e-4;  // before the log, so one zero cannot veto a class
  // The features are [channels][positions] and the descriptor is the channel
  // means; 0: the descriptor is the whole feature vector (the edge's choice).
  int channels = 0;
  float value_min = 0.0f, value_max = 1.0f;  // the bottleneck's range
};

// What one answer was made of.
struct FusedAnswer {
  int class_id = -1;
  float confidence = 0.0f;  // the pooled posterior's probability of class_id
  int exit_frames = 0;      // exit posteriors pooled (this scene's frames so far)
  int cloud_frames = 0;     // cloud posteriors pooled
};

class SceneFusion {
 public:
  SceneFusion(FusionOptions options, int classes);

  // A new frame (ids increase from frame to frame): its features and the
  // exit's posterior (`classes` values).
  void AddFrame(std::int64_t frame_id, std::span<const float> features,
                std::span<const float> exit_probabilities);
  // The cloud's posterior for `frame_id`: (class, score) pairs, best first.
  // False (and nothing pooled) if that frame is not in the current scene.
  bool AddCloud(std::int64_t frame_id, std::span<const std::pair<int, float>> top);
  // The pooled answer of the current scene; class -1 before any frame.
  FusedAnswer Current() const;
  // Whether `frame_id` belongs to the current scene.
  bool InCurrentScene(std::int64_t frame_id) const;

 private:
  void Pool(std::span<const float> probabilities, double weight);
  std::deque<std::pair<std::int64_t, double>>::const_iterator Find(std::int64_t frame_id) const;
  FusionOptions options_;
  int classes_;
  std::vector<double> log_score_;  // the pooled sum, current belief weights applied
  std::vector<float> last_descriptor_;
  std::int64_t scene_first_frame_ = -1;
  double log_belief_ = 0.0;  // sum of the log decays since the scene began
  // Recent frames of this scene: (frame id, log_belief_ when it entered).
  std::deque<std::pair<std::int64_t, double>> frames_;
  int exit_frames_ = 0, cloud_frames_ = 0;
};

}  // namespace deepcut::scheduler
