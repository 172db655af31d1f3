// The scene-fusion answer rule on hand-made scenes whose pooled answer is known.
#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "scheduler/scene_fusion.h"

namespace deepcut::scheduler {
namespace {

constexpr int kClasses = 3;

FusionOptions Options() {
  FusionOptions f;
  f.exit_weight = 1.0;
  f.cloud_weight = 4.0;
  f.change_distance = 0.2;
  f.decay_scale = 0.0;  // no fading unless a test asks for it
  f.channels = 0;       // the whole vector
  return f;
}

// Features of "item" k: a vector far from every other item's.
std::vector<float> Item(int k, float wobble = 0.0f) {
  std::vector<float> f(8, 0.1f);
  f[k % 8] = 0.9f;
  f[(k + 3) % 8] += wobble;
  return f;
}

TEST(SceneFusion, PoolsTheExitPosteriorsOfOneScene) {
  SceneFusion fusion(Options(), kClasses);
  // Frame 1 leans to class 1, frames 2 and 3 (a little) to class 0: the
  // product of the three posteriors favours class 0.
  fusion.AddFrame(1, Item(0), std::vector<float>{0.3f, 0.6f, 0.1f});
  EXPECT_EQ(fusion.Current().class_id, 1);
  fusion.AddFrame(2, Item(0, 0.01f), std::vector<float>{0.5f, 0.4f, 0.1f});
  fusion.AddFrame(3, Item(0), std::vector<float>{0.5f, 0.4f, 0.1f});
  const FusedAnswer a = fusion.Current();
  // log p0 = log .3 + 2 log .5 = -2.590; log p1 = log .6 + 2 log .4 = -2.343: class 1 still.
  EXPECT_EQ(a.class_id, 1);
  EXPECT_EQ(a.exit_frames, 3);
  EXPECT_EQ(a.cloud_frames, 0);
  fusion.AddFrame(4, Item(0), std::vector<float>{0.6f, 0.3f, 0.1f});
  // Now log p0 = -3.101, log p1 = -3.547: class 0, with probability
  // 1 / (1 + e^(-0.446) + ...).
  const FusedAnswer b = fusion.Current();
  EXPECT_EQ(b.class_id, 0);
  const double p0 = 0.3 * 0.5 * 0.5 * 0.6, p1 = 0.6 * 0.4 * 0.4 * 0.3, p2 = 0.1 * 0.1 * 0.1 * 0.1;
  EXPECT_NEAR(b.confidence, p0 / (p0 + p1 + p2), 1e-5);
}

TEST(SceneFusion, ANewSceneDropsTheOldEvidence) {
  SceneFusion fusion(Options(), kClasses);
  for (int i = 1; i <= 5; ++i) fusion.AddFrame(i, Item(0), std::vector<float>{0.9f, 0.05f, 0.05f});
  EXPECT_EQ(fusion.Current().class_id, 0);
  // Item 1 enters: its one weak frame decides alone.
  fusion.AddFrame(6, Item(1), std::vector<float>{0.3f, 0.4f, 0.3f});
  const FusedAnswer a = fusion.Current();
  EXPECT_EQ(a.class_id, 1);
  EXPECT_EQ(a.exit_frames, 1);
  EXPECT_FALSE(fusion.InCurrentScene(5));
  EXPECT_TRUE(fusion.InCurrentScene(6));
}

TEST(SceneFusion, TheCloudOutweighsTheExits) {
  SceneFusion fusion(Options(), kClasses);
  for (int i = 1; i <= 3; ++i) fusion.AddFrame(i, Item(2), std::vector<float>{0.6f, 0.3f, 0.1f});
  // The cloud says class 1 for frame 2, top-2 listed, the rest spread evenly.
  const std::vector<std::pair<int, float>> top = {{1, 0.9f}, {0, 0.08f}};
  ASSERT_TRUE(fusion.AddCloud(2, top));
  const FusedAnswer a = fusion.Current();
  // log p1 = 3 log .3 + 4 log .9 < log p0 = 3 log .6 + 4 log .08? -4.03 vs -11.6: class 1.
  EXPECT_EQ(a.class_id, 1);
  EXPECT_EQ(a.cloud_frames, 1);
  // Later frames of the same scene keep the cloud's answer.
  fusion.AddFrame(4, Item(2), std::vector<float>{0.7f, 0.2f, 0.1f});
  EXPECT_EQ(fusion.Current().class_id, 1);
}

TEST(SceneFusion, ALateCloudAnswerForAnEarlierSceneIsNotPooled) {
  SceneFusion fusion(Options(), kClasses);
  fusion.AddFrame(1, Item(0), std::vector<float>{0.8f, 0.1f, 0.1f});
  fusion.AddFrame(2, Item(4), std::vector<float>{0.1f, 0.1f, 0.8f});
  const std::vector<std::pair<int, float>> top = {{0, 0.99f}};
  EXPECT_FALSE(fusion.AddCloud(1, top));
  EXPECT_EQ(fusion.Current().class_id, 2);
  EXPECT_EQ(fusion.Current().cloud_frames, 0);
  EXPECT_FALSE(fusion.AddCloud(99, top));  // a frame never seen
}

TEST(SceneFusion, EvidenceFadesAsTheViewMoves) {
  FusionOptions o = Options();
  o.decay_scale = 0.01;  // strong fading: a small move nearly forgets
  SceneFusion fusion(o, kClasses);
  fusion.AddFrame(1, Item(0), std::vector<float>{0.9f, 0.05f, 0.05f});
  // Moved by 0.1 / sqrt(8) in RMS (below the change distance): the old frame's
  // weight is exp(-3.5) ~ 0.03, so the new weak frame wins.
  fusion.AddFrame(2, Item(0, 0.1f), std::vector<float>{0.3f, 0.4f, 0.3f});
  EXPECT_TRUE(fusion.InCurrentScene(1));
  EXPECT_EQ(fusion.Current().class_id, 1);
  // Without fading the first frame's strong vote would hold.
  SceneFusion steady(Options(), kClasses);
  steady.AddFrame(1, Item(0), std::vector<float>{0.9f, 0.05f, 0.05f});
  steady.AddFrame(2, Item(0, 0.1f), std::vector<float>{0.3f, 0.4f, 0.3f});
  EXPECT_EQ(steady.Current().class_id, 0);
}

TEST(SceneFusion, AZeroProbabilityDoesNotVeto) {
  SceneFusion fusion(Options(), kClasses);
  fusion.AddFrame(1, Item(0), std::vector<float>{0.0f, 1.0f, 0.0f});
  for (int i = 2; i <= 8; ++i) fusion.AddFrame(i, Item(0), std::vector<float>{0.95f, 0.0f, 0.05f});
  EXPECT_EQ(fusion.Current().class_id, 0);
  EXPECT_TRUE(std::isfinite(fusion.Current().confidence));
}

TEST(SceneFusion, NothingBeforeTheFirstFrame) {
  SceneFusion fusion(Options(), kClasses);
  EXPECT_EQ(fusion.Current().class_id, -1);
  EXPECT_FALSE(fusion.InCurrentScene(0));
}

}  // namespace
}  // namespace deepcut::scheduler
