// Scene change on the bottleneck features: how far this frame's features are
// from those of the frame the cloud last answered, and how likely the cloud's
// last answer still holds at that distance.
//
// The distance is the RMS difference of the two frames' scene descriptors
// divided by the bottleneck's value range, so it lies in [0, 1] for any model.
// The descriptor is the per-channel spatial mean of the features when their
// channel count is known: the bottleneck is spatial, and an object that moves
// by a pixel or two changes every position but hardly the channel means
// (measured on Fashion-MNIST scenes: same item under +-2 px shifts, noise and
// brightness, 95th percentile 0.048; different classes, 5th percentile 0.064;
// on the raw features the two overlapped: 0.26 vs 0.27). The
// reuse probability is learned online from the cloud's own answers: each time
// a cloud answer arrives, the distance from its frame to the previous
// reference and whether the two answers agree is one sample in a distance bin
// (a Beta prior per bin that favours "same" at small distances); the
// probability is made non-increasing in distance. No labels are needed.
//
// Thread-safety: one detector per edge stream, one thread.
#pragma once

#include <limits>
#include <span>
#include <vector>

namespace deepcut::scheduler {

struct SceneOptions {
  float value_min = 0.0f;  // the bottleneck's value range (manifest)
  float value_max = 1.0f;
  int channels = 0;  // the features are [channels][positions]; 0: compare them whole
  // `bins` equal distance bins over [0, max_distance]; farther falls in the last.
  int bins = 16;
  double max_distance = 0.2;
  // Prior P(same answer | distance d) = exp(-d / prior_scale), weight prior_count.
  double prior_scale = 0.05;
  double prior_count = 4.0;
};

// The scene descriptor of a feature vector (see above).
std::vector<float> SceneDescriptor(std::span<const float> features, int channels);
// The distance between two descriptors over a value range.
double SceneDistance(std::span<const float> a, std::span<const float> b, double range);

class SceneDetector {
 public:
  explicit SceneDetector(SceneOptions options = {});

  bool HasReference() const { return !reference_.empty(); }
  int reference_class() const { return reference_class_; }
  // Distance from `features` to the reference; +infinity without a reference
  // (or when the sizes differ).
  double Distance(std::span<const float> features) const;
  // The cloud answered `class_id` for a frame with these features: learn from
  // it (if there was a reference) and make it the new reference.
  void ObserveCloudAnswer(std::span<const float> features, int class_id);
  // Makes these features the reference without learning (a frozen calibration).
  void SetReference(std::span<const float> features, int class_id);
  // P(the reference's answer is still right | distance); 0 without a reference.
  double ReuseProbability(double distance) const;

 private:
  int Bin(double distance) const;
  double BinCenter(int bin) const;
  void UpdateProbabilities();
  SceneOptions options_;
  std::vector<float> reference_;
  int reference_class_ = -1;
  std::vector<double> same_, total_;  // per bin, observed
  std::vector<double> probability_;   // per bin, posterior made non-increasing
};

}  // namespace deepcut::scheduler
