// SceneDetector: the feature distance and the learned reuse probability.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "scheduler/scene_detector.h"

namespace deepcut::scheduler {
namespace {

// Features at RMS distance `distance` (in units of the value range) from `from`.
std::vector<float> Moved(const std::vector<float>& from, double distance,
                         const SceneOptions& options) {
  const float step = static_cast<float>(distance * (options.value_max - options.value_min));
  std::vector<float> to = from;
  for (float& v : to) v += (v > 0.5f * (options.value_min + options.value_max)) ? -step : step;
  return to;
}

TEST(SceneDetector, DistanceIsZeroForIdenticalFeatures) {
  SceneDetector detector;
  const std::vector<float> features = {0.1f, 0.5f, 0.9f, 0.3f};
  detector.ObserveCloudAnswer(features, 3);
  EXPECT_TRUE(detector.HasReference());
  EXPECT_EQ(detector.reference_class(), 3);
  EXPECT_EQ(detector.Distance(features), 0.0);
}

TEST(SceneDetector, DistanceIsRmsOverTheValueRange) {
  const std::vector<float> a = {0.0f, 0.0f, 0.0f, 0.0f};
  const std::vector<float> b = {0.3f, -0.3f, 0.3f, -0.3f};  // RMS 0.3
  const std::vector<float> c = {0.6f, 0.0f, 0.0f, 0.0f};    // RMS 0.3 too
  SceneOptions unit;
  SceneDetector d1(unit);
  d1.ObserveCloudAnswer(a, 0);
  EXPECT_NEAR(d1.Distance(b), 0.3, 1e-6);
  EXPECT_NEAR(d1.Distance(c), 0.3, 1e-6);

  SceneOptions wide;
  wide.value_min = -1.0f;
  wide.value_max = 2.0f;  // range 3
  SceneDetector d3(wide);
  d3.ObserveCloudAnswer(a, 0);
  EXPECT_NEAR(d3.Distance(b), 0.1, 1e-6);
}

TEST(SceneDetector, DistanceIsInfiniteWithoutAComparableReference) {
  SceneDetector detector;
  EXPECT_FALSE(detector.HasReference());
  EXPECT_EQ(detector.reference_class(), -1);
  const std::vector<float> features = {0.1f, 0.2f};
  EXPECT_EQ(detector.Distance(features), std::numeric_limits<double>::infinity());
  EXPECT_EQ(detector.ReuseProbability(0.0), 0.0);
  detector.ObserveCloudAnswer(features, 1);
  const std::vector<float> longer = {0.1f, 0.2f, 0.3f};
  EXPECT_EQ(detector.Distance(longer), std::numeric_limits<double>::infinity());
  EXPECT_GT(detector.ReuseProbability(0.0), 0.0);
}

TEST(SceneDetector, PriorFavoursReuseAtSmallDistances) {
  SceneDetector detector;
  detector.ObserveCloudAnswer(std::vector<float>{0.5f, 0.5f}, 2);
  EXPECT_GT(detector.ReuseProbability(0.0), 0.6);
  EXPECT_LT(detector.ReuseProbability(0.3), 0.1);  // exp(-0.3 / 0.1) ~ 0.05 at the prior
  EXPECT_EQ(detector.ReuseProbability(std::numeric_limits<double>::infinity()),
            detector.ReuseProbability(10.0));
}

TEST(SceneDetector, LearnsSameAtSmallAndDifferentAtLargeDistances) {
  SceneOptions options;
  options.prior_scale = 100.0;  // a flat prior: everything must be learned
  SceneDetector detector(options);
  std::vector<float> features(8, 0.3f);
  int cls = 0;
  detector.ObserveCloudAnswer(features, cls);
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> small(0.0, 0.04), large(0.25, 0.4);
  for (int k = 0; k < 600; ++k) {
    if (k % 2 == 0) {
      features = Moved(features, small(rng), options);  // same scene, same answer
    } else {
      features = Moved(features, large(rng), options);  // new scene, new answer
      cls = (cls + 1) % 10;
    }
    detector.ObserveCloudAnswer(features, cls);
  }
  EXPECT_GT(detector.ReuseProbability(0.01), 0.9);
  EXPECT_GT(detector.ReuseProbability(0.03), 0.9);
  EXPECT_LT(detector.ReuseProbability(0.3), 0.1);
  EXPECT_LT(detector.ReuseProbability(1.0), 0.1);
}

TEST(SceneDetector, DataOverridesThePrior) {
  // At distance 0.19 the prior says exp(-3.8) ~ 2 %; the cloud keeps agreeing.
  SceneDetector detector;
  std::vector<float> features(8, 0.2f);
  detector.ObserveCloudAnswer(features, 5);
  const SceneOptions options;
  for (int k = 0; k < 200; ++k) {
    features = Moved(features, 0.19, options);
    detector.ObserveCloudAnswer(features, 5);
  }
  EXPECT_GT(detector.ReuseProbability(0.19), 0.8);
  EXPECT_GT(detector.ReuseProbability(0.01), 0.8);  // non-increasing
}

TEST(SceneDetector, ReuseProbabilityIsNonIncreasingAndInRange) {
  for (unsigned seed : {1u, 2u, 3u, 4u}) {
    SceneOptions options;
    options.bins = 10 + static_cast<int>(seed);
    SceneDetector detector(options);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> distance(0.0, 0.6);
    std::bernoulli_distribution same(0.5);
    std::vector<float> features(16, 0.5f);
    int cls = 0;
    detector.ObserveCloudAnswer(features, cls);
    for (int k = 0; k < 400; ++k) {
      features = Moved(features, distance(rng), options);
      if (!same(rng)) cls = (cls + 1) % 10;
      detector.ObserveCloudAnswer(features, cls);
      if (k % 50 != 49) continue;
      double previous = detector.ReuseProbability(0.0);
      for (double d = 0.0; d <= 0.8; d += 0.0005) {
        const double p = detector.ReuseProbability(d);
        EXPECT_GE(p, 0.0);
        EXPECT_LE(p, 1.0);
        EXPECT_LE(p, previous + 1e-12) << "seed " << seed << " at distance " << d;
        previous = p;
      }
    }
  }
}

TEST(SceneDetector, SetReferenceDoesNotLearn) {
  SceneDetector detector;
  std::vector<float> features(4, 0.5f);
  detector.ObserveCloudAnswer(features, 1);
  const double before_small = detector.ReuseProbability(0.01);
  const double before_large = detector.ReuseProbability(0.3);
  const SceneOptions options;
  for (int k = 0; k < 100; ++k) {
    features = Moved(features, 0.01, options);
    detector.SetReference(features, k % 10);  // "different" at a small distance
  }
  EXPECT_EQ(detector.reference_class(), 9);
  EXPECT_EQ(detector.Distance(features), 0.0);
  EXPECT_EQ(detector.ReuseProbability(0.01), before_small);
  EXPECT_EQ(detector.ReuseProbability(0.3), before_large);
}

TEST(SceneDetector, DisagreementAtSmallDistancesLowersReuse) {
  SceneDetector detector;
  std::vector<float> features(4, 0.5f);
  detector.ObserveCloudAnswer(features, 0);
  const double before = detector.ReuseProbability(0.01);
  const SceneOptions options;
  for (int k = 1; k <= 100; ++k) {
    features = Moved(features, 0.01, options);
    detector.ObserveCloudAnswer(features, k % 10);  // answer changes every time
  }
  EXPECT_LT(detector.ReuseProbability(0.01), 0.15);
  EXPECT_LT(detector.ReuseProbability(0.01), before);
}

}  // namespace
}  // namespace deepcut::scheduler
