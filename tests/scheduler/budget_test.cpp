// BudgetController: the token bucket and the price, on simulated frame streams.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <utility>
#include <vector>

#include "scheduler/budget_controller.h"

namespace deepcut::scheduler {
namespace {

struct Spent {
  TimeUs at_us;
  std::int64_t bytes;
};

struct StreamResult {
  std::vector<Spent> spent;
  int frames = 0;
  int above_price = 0;  // frames whose score cleared the price
};

// A stream of frames at `fps` for `seconds`; each frame's best candidate has
// `score()` and `bytes`; it goes when it clears the price and the bucket
// allows it (what a policy does). `before_frame(t)` runs first at each frame.
StreamResult RunStream(BudgetController& controller, double seconds, double fps, std::int64_t bytes,
                       const std::function<double()>& score,
                       const std::function<void(TimeUs)>& before_frame = {}) {
  StreamResult result;
  const int frames = static_cast<int>(std::lround(seconds * fps));
  for (int k = 0; k < frames; ++k) {
    const TimeUs now = static_cast<TimeUs>(std::llround(k * 1e6 / fps));
    if (before_frame) before_frame(now);
    const double s = score();
    controller.ObserveScore(s, now);
    const bool clears = s >= controller.Price();
    result.above_price += clears;
    if (s > 0.0 && clears && controller.CanSpend(bytes, now)) {
      controller.Spend(bytes, now);
      result.spent.push_back({now, bytes});
    }
    ++result.frames;
  }
  return result;
}

std::int64_t BytesBetween(const std::vector<Spent>& spent, TimeUs from_us, TimeUs to_us) {
  std::int64_t total = 0;
  for (const Spent& s : spent)
    if (s.at_us >= from_us && s.at_us < to_us) total += s.bytes;
  return total;
}

// The most bytes in any window of `window_us` (windows starting at a spend
// are the worst ones).
std::int64_t MaxWindowBytes(const std::vector<Spent>& spent, TimeUs window_us) {
  std::int64_t best = 0, sum = 0;
  size_t tail = 0;
  for (size_t head = 0; head < spent.size(); ++head) {
    sum += spent[head].bytes;
    while (spent[head].at_us - spent[tail].at_us >= window_us) sum -= spent[tail++].bytes;
    best = std::max(best, sum);
  }
  return best;
}

std::function<double()> UniformScores(std::uint64_t seed) {
  auto rng = std::make_shared<std::mt19937_64>(seed);
  return [rng] { return std::uniform_real_distribution<double>(0.0, 1.0)(*rng); };
}

BudgetOptions WithBudget(double bps, double bucket_s = 2.0) {
  BudgetOptions o;
  o.budget_bps = bps;
  o.bucket_s = bucket_s;
  return o;
}

// 30 frames/s each wanting 100 B; the budget affords 20 % of them.
constexpr double kFps = 30.0;
constexpr std::int64_t kBytes = 100;
constexpr double kBudgetBps = 0.2 * kFps * kBytes * 8.0;  // 4800 bit/s = 600 B/s

TEST(BudgetController, SpendsTheBudgetAndNeverBurstsOverIt) {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    BudgetController controller(WithBudget(kBudgetBps));
    const StreamResult run = RunStream(controller, 60.0, kFps, kBytes, UniformScores(seed));
    const double budget_bytes = kBudgetBps / 8.0 * 60.0;
    const double total = static_cast<double>(BytesBetween(run.spent, 0, 61'000'000));
    EXPECT_NEAR(total, budget_bytes, 0.05 * budget_bytes) << "seed " << seed;
    EXPECT_LE(static_cast<double>(MaxWindowBytes(run.spent, 10'000'000)),
              1.05 * kBudgetBps / 8.0 * 10.0)
        << "seed " << seed;
  }
}

TEST(BudgetController, EveryFrameWantingToGoStillRespectsTheBucket) {
  // Scores all equal: the price never filters, the bucket alone limits.
  BudgetController controller(WithBudget(kBudgetBps));
  const StreamResult run = RunStream(controller, 60.0, kFps, kBytes, [] { return 1.0; });
  const double budget_bytes = kBudgetBps / 8.0 * 60.0;
  EXPECT_NEAR(static_cast<double>(BytesBetween(run.spent, 0, 61'000'000)), budget_bytes,
              0.05 * budget_bytes);
  EXPECT_LE(static_cast<double>(MaxWindowBytes(run.spent, 10'000'000)),
            1.05 * kBudgetBps / 8.0 * 10.0);
}

TEST(BudgetController, SetBudgetChangesTheRateInTheFollowingWindow) {
  BudgetController controller(WithBudget(kBudgetBps));
  const StreamResult run =
      RunStream(controller, 60.0, kFps, kBytes, UniformScores(7), [&](TimeUs now) {
        if (now >= 30'000'000 && controller.budget_bps() == kBudgetBps)
          controller.SetBudget(kBudgetBps / 4.0, now);
      });
  EXPECT_DOUBLE_EQ(controller.budget_bps(), kBudgetBps / 4.0);
  const double before = static_cast<double>(BytesBetween(run.spent, 5'000'000, 30'000'000));
  const double after = static_cast<double>(BytesBetween(run.spent, 35'000'000, 60'000'000));
  EXPECT_NEAR(before, kBudgetBps / 8.0 * 25.0, 0.07 * kBudgetBps / 8.0 * 25.0);
  EXPECT_NEAR(after, kBudgetBps / 32.0 * 25.0, 0.1 * kBudgetBps / 32.0 * 25.0);
}

TEST(BudgetController, RaisingTheBudgetSpendsMore) {
  BudgetController controller(WithBudget(kBudgetBps / 4.0));
  const StreamResult run =
      RunStream(controller, 40.0, kFps, kBytes, UniformScores(8), [&](TimeUs now) {
        if (now >= 20'000'000 && controller.budget_bps() < kBudgetBps)
          controller.SetBudget(kBudgetBps, now);
      });
  const double after = static_cast<double>(BytesBetween(run.spent, 25'000'000, 40'000'000));
  EXPECT_NEAR(after, kBudgetBps / 8.0 * 15.0, 0.07 * kBudgetBps / 8.0 * 15.0);
}

TEST(BudgetController, UnlimitedBudget) {
  BudgetController controller;  // budget_bps = 0
  EXPECT_TRUE(controller.Unlimited());
  for (int k = 0; k < 100; ++k) {
    const TimeUs now = k * 1'000;
    controller.ObserveScore(k % 3 == 0 ? -1.0 : 0.5, now);
    EXPECT_EQ(controller.Price(), 0.0);
    EXPECT_TRUE(controller.CanSpend(1'000'000'000, now));
    controller.Spend(1'000'000'000, now);
    EXPECT_EQ(controller.Fill(now), 1.0);
  }
  // Negative means unlimited too, and a live switch to unlimited drops the price.
  BudgetController limited(WithBudget(1000.0));
  limited.ObserveScore(0.5, 0);
  limited.ObserveScore(0.7, 1000);
  EXPECT_GT(limited.Price(), 0.0);
  limited.SetBudget(-1.0, 2000);
  EXPECT_TRUE(limited.Unlimited());
  EXPECT_EQ(limited.Price(), 0.0);
  EXPECT_TRUE(limited.CanSpend(1'000'000, 2000));
  EXPECT_EQ(limited.Fill(2000), 1.0);
}

TEST(BudgetController, ScoresAtOrBelowZeroNeverClearThePrice) {
  // A budget far above what the stream wants: the price is as low as it gets.
  BudgetController controller(WithBudget(1e9));
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int> pick(0, 4);
  for (int k = 0; k < 2000; ++k) {
    const TimeUs now = k * 33'333;
    const double scores[] = {0.0, -0.0, -1.0, -1e-300, 1e-9};
    const double s = scores[pick(rng)];
    controller.ObserveScore(s, now);
    EXPECT_GT(controller.Price(), 0.0);
    if (s <= 0.0) {
      EXPECT_LT(s, controller.Price());
    }
  }
  // Only non-positive scores ever seen, and a tiny budget: still never.
  BudgetController tight(WithBudget(10.0));
  for (int k = 0; k < 500; ++k) {
    tight.ObserveScore(k % 2 ? 0.0 : -5.0, k * 33'333);
    EXPECT_GT(tight.Price(), 0.0);
  }
}

TEST(BudgetController, FractionAbovePriceApproachesTheAffordableFraction) {
  // A bucket big enough to smooth the fill, so the nudge stays near 1.
  for (double affordable : {0.1, 0.2, 0.5}) {
    const double budget_bps = affordable * kFps * kBytes * 8.0;
    BudgetController controller(WithBudget(budget_bps, 2.0));
    const StreamResult run = RunStream(controller, 300.0, kFps, kBytes, UniformScores(11));
    const double fraction = static_cast<double>(run.above_price) / run.frames;
    // (A little above: frames that clear the price but meet an empty bucket or
    // a full window do not go, and the feedback lowers the price for them.)
    EXPECT_NEAR(fraction, affordable, 0.35 * affordable) << "affordable " << affordable;
  }
}

TEST(BudgetController, PriceFollowsTheScoresQuantile) {
  // Scores uniform on [0, 10), 20 % affordable, spending exactly on budget
  // (balance 0, nudge 1): the price is near the 80th percentile, 8.
  BudgetController controller(WithBudget(kBudgetBps, 2.0));
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> uniform(0.0, 10.0);
  for (int k = 0; k < 300; ++k) {
    const TimeUs now = k * 33'333;
    // 100 B every 5th frame at 30 fps = 600 B/s, the budget.
    if (k % 5 == 4) controller.Spend(100, now);
    controller.ObserveScore(uniform(rng), now);
  }
  EXPECT_NEAR(controller.Price(), 8.0, 0.6);
}

TEST(BudgetController, BucketStartsEmptyAndCapsAtItsSize) {
  BudgetController controller(WithBudget(8000.0, 0.25));  // 1000 B/s, bucket 250 B
  EXPECT_FALSE(controller.CanSpend(100, 0));
  EXPECT_EQ(controller.Fill(0), 0.0);
  EXPECT_FALSE(controller.CanSpend(100, 99'000));
  EXPECT_TRUE(controller.CanSpend(100, 100'000));
  EXPECT_NEAR(controller.Fill(100'000), 0.4, 1e-9);
  // An hour idle still holds only 250 B.
  EXPECT_EQ(controller.Fill(3'600'000'000LL), 1.0);
  controller.Spend(250, 3'600'000'000LL);
  EXPECT_FALSE(controller.CanSpend(1, 3'600'000'000LL));
  EXPECT_EQ(controller.Fill(3'600'000'000LL), 0.0);
}

TEST(BudgetController, AnOffloadBiggerThanTheBucketGoesWhenFullAndIsRepaid) {
  BudgetController controller(WithBudget(8000.0, 0.25));  // 1000 B/s, bucket 250 B
  EXPECT_EQ(controller.Fill(0), 0.0);                     // tokens accrue from the first call
  EXPECT_FALSE(controller.CanSpend(1000, 200'000));
  EXPECT_TRUE(controller.CanSpend(1000, 250'000));
  controller.Spend(1000, 250'000);  // 750 B of debt
  EXPECT_FALSE(controller.CanSpend(1, 900'000));
  EXPECT_TRUE(controller.CanSpend(1, 1'001'000));
  EXPECT_FALSE(controller.CanSpend(1000, 1'240'000));
  EXPECT_TRUE(controller.CanSpend(1000, 1'250'000));
}

TEST(BudgetController, SetBudgetKeepsTokensCappedAtTheNewBucket) {
  BudgetController controller(WithBudget(8000.0, 0.25));  // bucket 250 B
  EXPECT_EQ(controller.Fill(0), 0.0);
  EXPECT_EQ(controller.Fill(10'000'000), 1.0);
  controller.SetBudget(800.0, 10'000'000);  // bucket 25 B
  EXPECT_EQ(controller.Fill(10'000'000), 1.0);
  EXPECT_TRUE(controller.CanSpend(25, 10'000'000));
  controller.Spend(25, 10'000'000);
  EXPECT_FALSE(controller.CanSpend(25, 10'100'000));  // 10 B back after 0.1 s
  EXPECT_TRUE(controller.CanSpend(25, 10'250'000));
  // From unlimited to a budget the bucket starts empty again.
  controller.SetBudget(0.0, 11'000'000);
  controller.SetBudget(8000.0, 12'000'000);
  EXPECT_EQ(controller.Fill(12'000'000), 0.0);
  EXPECT_NEAR(controller.Fill(12'125'000), 0.5, 1e-9);
}

TEST(BudgetController, BiggerOffloadsRaiseThePrice) {
  // The same budget buys fewer 400 B offloads than 100 B ones.
  auto run = [](std::int64_t bytes) {
    BudgetController controller(WithBudget(kBudgetBps, 2.0));
    const StreamResult r = RunStream(controller, 60.0, kFps, bytes, UniformScores(9));
    return static_cast<double>(r.spent.size());
  };
  const double small = run(100);
  const double big = run(400);
  EXPECT_NEAR(big, small / 4.0, 0.15 * small / 4.0);
}

}  // namespace
}  // namespace deepcut::scheduler
