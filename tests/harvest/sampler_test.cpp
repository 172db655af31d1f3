// The samplers under one budget: none keeps more than the token bucket allows,
// each keeps about the fraction the rate affords, the harvester prefers the
// frames the exit is unsure or wrong on and skips near-copies of kept ones;
// budgets parse from what users type.
#include "harvest/sampler.h"

#include <gtest/gtest.h>

#include <random>

namespace deepcut::harvest {
namespace {

constexpr int kClasses = 4;

struct Stream {
  std::mt19937_64 rng{5};
  std::vector<float> features = std::vector<float>(2 * 4 * 4);
  std::vector<float> scores = std::vector<float>(kClasses, 0.25f);
  // Frame i at 10 fps; a new random scene every 10 frames.
  Candidate Next(std::int64_t i, double error_rate, int cloud_class = -1) {
    if (i % 10 == 0)
      for (auto& f : features) f = std::uniform_real_distribution<float>(0, 1)(rng);
    Candidate c;
    c.now_us = i * 100'000;
    c.features = features;
    c.channels = 2;
    c.height = 4;
    c.width = 4;
    c.exit_scores = scores;
    c.exit_class = static_cast<int>(i / 10 % kClasses);
    c.exit_error_rate = error_rate;
    c.cloud_class = cloud_class;
    c.cloud_confidence = 0.9;
    c.expected_bytes = 1000;
    return c;
  }
};

SamplerOptions Options(SamplerKind kind, double per_hour) {
  SamplerOptions o;
  o.kind = kind;
  o.budget.frames_per_hour = per_hour;
  o.budget.burst_s = 60;
  return o;
}

TEST(Sampler, EveryKindStaysWithinTheBudgetAndUsesMostOfIt) {
  // 36000 frames (an hour at 10 fps), 360 frames an hour: 1%.
  for (auto kind : {SamplerKind::kHarvest, SamplerKind::kRandom, SamplerKind::kPeriodic,
                    SamplerKind::kUncertainty}) {
    auto s = Sampler::Create(Options(kind, 360), kClasses);
    ASSERT_TRUE(s.ok());
    Stream stream;
    std::mt19937_64 rng(3);
    int kept = 0;
    for (std::int64_t i = 0; i < 36000; ++i) {
      const double err = std::uniform_real_distribution<double>(0, 1)(rng);
      kept += s->Offer(stream.Next(i, err)).keep;
    }
    // Tokens: 360 over the hour, plus at most the bucket (60 s = 6 frames).
    EXPECT_LE(kept, 366) << SamplerName(kind);
    EXPECT_GE(kept, 250) << SamplerName(kind);
  }
}

TEST(Sampler, StoreCapStopsKeeping) {
  auto o = Options(SamplerKind::kRandom, 36000);
  o.budget.max_frames = 5;
  auto s = Sampler::Create(o, kClasses);
  Stream stream;
  int kept = 0;
  for (std::int64_t i = 0; i < 2000; ++i) kept += s->Offer(stream.Next(i, 0.5)).keep;
  EXPECT_EQ(kept, 5);
  s->SetStored(0, 0);  // uploaded and removed: room again
  for (std::int64_t i = 2000; i < 4000; ++i) kept += s->Offer(stream.Next(i, 0.5)).keep;
  EXPECT_EQ(kept, 10);
}

TEST(Sampler, HarvesterPrefersUnsureAndWrongFramesAndSkipsCopies) {
  auto s = Sampler::Create(Options(SamplerKind::kHarvest, 1800), kClasses);
  Stream stream;
  std::mt19937_64 rng(9);
  int kept_unsure = 0, kept_sure = 0, frames_unsure = 0;
  for (std::int64_t i = 0; i < 36000; ++i) {
    const bool unsure = std::uniform_real_distribution<double>(0, 1)(rng) < 0.2;
    frames_unsure += unsure;
    // Unsure frames: the exit's error rate is high and the cloud disagrees.
    const auto v = s->Offer(stream.Next(i, unsure ? 0.7 : 0.05, unsure ? 3 : -1));
    (unsure ? kept_unsure : kept_sure) += v.keep;
  }
  EXPECT_GT(kept_unsure, 3 * kept_sure);
  // The same features as a kept frame: novelty near 0.
  Candidate c = stream.Next(36001, 0.5);
  std::vector<float> pooled(8, 0.0f);
  EXPECT_GT(s->Novelty(pooled), 0.0);
  EXPECT_DOUBLE_EQ(s->Disagreement(stream.Next(36002, 0.3, 1)), 0.9 * (1 != c.exit_class));
  EXPECT_DOUBLE_EQ(s->Disagreement(stream.Next(36003, 0.3)), 0.3);  // not asked: the uncertainty
}

TEST(Sampler, PeriodicKeepsEveryNthFrame) {
  auto s = Sampler::Create(Options(SamplerKind::kPeriodic, 3600), kClasses);  // 1/s at 10 fps
  Stream stream;
  std::vector<std::int64_t> kept;
  for (std::int64_t i = 0; i < 3000; ++i)
    if (s->Offer(stream.Next(i, 0.5)).keep) kept.push_back(i);
  ASSERT_GT(kept.size(), 250u);
  for (std::size_t k = 10; k < kept.size(); ++k) EXPECT_NEAR(kept[k] - kept[k - 1], 10, 1);
}

TEST(Sampler, LiveKnobChangesTheRate) {
  auto s = Sampler::Create(Options(SamplerKind::kRandom, 360), kClasses);
  Stream stream;
  int before = 0, after = 0;
  for (std::int64_t i = 0; i < 18000; ++i) before += s->Offer(stream.Next(i, 0.5)).keep;
  s->SetBudget({.frames_per_hour = 3600, .burst_s = 60}, 18000 * 100'000);
  for (std::int64_t i = 18000; i < 36000; ++i) after += s->Offer(stream.Next(i, 0.5)).keep;
  EXPECT_GT(after, 5 * before);
  s->SetBudget({.frames_per_hour = 0, .burst_s = 60}, 36000 * 100'000);
  int off = 0;
  for (std::int64_t i = 36000 + 700; i < 40000; ++i) off += s->Offer(stream.Next(i, 0.5)).keep;
  EXPECT_EQ(off, 0);
}

TEST(HarvestBudget, ParsesFramesAndBytesAndRefusesNonsense) {
  HarvestBudget b;
  ASSERT_TRUE(ParseHarvestBudget("120", b).ok());
  EXPECT_DOUBLE_EQ(b.frames_per_hour, 120);
  ASSERT_TRUE(ParseHarvestBudget("2/min", b).ok());
  EXPECT_DOUBLE_EQ(b.frames_per_hour, 120);
  ASSERT_TRUE(ParseHarvestBudget("1/s", b).ok());
  EXPECT_DOUBLE_EQ(b.frames_per_hour, 3600);
  ASSERT_TRUE(ParseHarvestBudget("5MB/h", b).ok());
  EXPECT_DOUBLE_EQ(b.bytes_per_hour, 5e6);
  for (const char* bad : {"abc", "", "-3/h", "10/week", "1.5x", "kB/h"}) {
    const Status s = ParseHarvestBudget(bad, b);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.message().find(std::string("'") + bad + "'"), std::string::npos) << s.message();
  }
  EXPECT_TRUE(ParseSampler("uncertainty").ok());
  EXPECT_FALSE(ParseSampler("best").ok());
}

}  // namespace
}  // namespace deepcut::harvest
