// The offline oracle against hand-solved traces and brute force.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "scheduler/oracle.h"

namespace deepcut::scheduler {
namespace {

struct Outcome {
  std::int64_t correct = 0;
  std::int64_t bytes = 0;
  std::vector<int> answer;
};

// Plays `rate` (per frame, -1 = not offloaded) with the fallback rule.
Outcome Play(const OracleInput& in, const std::vector<int>& rate) {
  Outcome out;
  int last = -1;
  for (int i = 0; i < in.frames; ++i) {
    int answer;
    if (rate[i] >= 0) {
      answer = in.cloud_class[i * in.rates + rate[i]];
      out.bytes += in.bytes[i * in.rates + rate[i]];
      last = i;
    } else if (last >= 0 && in.reuse(i, last)) {
      answer = in.cloud_class[last * in.rates + rate[last]];
    } else {
      answer = in.local_class[i];
    }
    out.answer.push_back(answer);
    out.correct += answer == in.labels[i];
  }
  return out;
}

// Every plan: each frame local or offloaded at one of the allowed rates.
template <typename Visit>
void ForEachPlan(const OracleInput& in, Visit visit) {
  std::vector<int> choices = {-1};
  if (in.allowed_rates.empty()) {
    for (int r = 0; r < in.rates; ++r) choices.push_back(r);
  } else {
    choices.insert(choices.end(), in.allowed_rates.begin(), in.allowed_rates.end());
  }
  std::vector<int> digit(in.frames, 0), rate(in.frames, -1);
  while (true) {
    for (int i = 0; i < in.frames; ++i) rate[i] = choices[digit[i]];
    visit(rate, Play(in, rate));
    int i = 0;
    while (i < in.frames && ++digit[i] == static_cast<int>(choices.size())) digit[i++] = 0;
    if (i == in.frames) break;
  }
}

// The most correct answers with bytes <= budget.
std::int64_t BruteBest(const OracleInput& in, std::int64_t budget) {
  std::int64_t best = -1;
  ForEachPlan(in, [&](const std::vector<int>&, const Outcome& o) {
    if (o.bytes <= budget) best = std::max(best, o.correct);
  });
  return best;
}

OracleInput RandomInput(std::mt19937& rng) {
  OracleInput in;
  in.frames = std::uniform_int_distribution<int>(1, 7)(rng);
  in.rates = std::uniform_int_distribution<int>(1, 3)(rng);
  if (in.frames >= 6 && in.rates == 3) in.rates = 2;  // keeps brute force small
  const int classes = 3;
  std::uniform_int_distribution<int> cls(0, classes - 1);
  std::bernoulli_distribution cloud_right(0.75), zero_bytes(0.05);
  for (int i = 0; i < in.frames; ++i) {
    in.labels.push_back(cls(rng));
    in.local_class.push_back(cls(rng));
    for (int r = 0; r < in.rates; ++r) {
      in.cloud_class.push_back(cloud_right(rng) ? in.labels[i] : cls(rng));
      in.bytes.push_back(zero_bytes(rng) ? 0 : std::uniform_int_distribution<int>(1, 9)(rng));
    }
  }
  // A random reuse table, also checking it is only asked about j < i.
  auto table = std::make_shared<std::vector<char>>(in.frames * in.frames);
  std::bernoulli_distribution coin(0.5);
  for (char& c : *table) c = coin(rng);
  const int frames = in.frames;
  in.reuse = [table, frames](int i, int j) {
    EXPECT_LT(j, i);
    EXPECT_GE(j, 0);
    EXPECT_LT(i, frames);
    return (*table)[i * frames + j] != 0;
  };
  if (in.rates > 1 && coin(rng)) in.allowed_rates = {in.rates - 1};
  return in;
}

void ExpectConsistent(const OracleInput& in, const OraclePlan& plan) {
  ASSERT_EQ(static_cast<int>(plan.rate.size()), in.frames);
  ASSERT_EQ(static_cast<int>(plan.answer.size()), in.frames);
  for (int r : plan.rate) {
    EXPECT_GE(r, -1);
    EXPECT_LT(r, in.rates);
    if (r >= 0 && !in.allowed_rates.empty()) {
      EXPECT_NE(std::find(in.allowed_rates.begin(), in.allowed_rates.end(), r),
                in.allowed_rates.end());
    }
  }
  const Outcome played = Play(in, plan.rate);
  EXPECT_EQ(plan.correct, played.correct);
  EXPECT_EQ(plan.bytes, played.bytes);
  EXPECT_EQ(plan.answer, played.answer);
}

TEST(Oracle, MatchesBruteForceForAFixedLambda) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 300; ++trial) {
    const OracleInput in = RandomInput(rng);
    for (double lambda : {0.0, 0.05, 0.25, 0.5, 1.0, 0.137, 3.0}) {
      auto plan = SolveOracleForLambda(in, lambda);
      ASSERT_TRUE(plan.ok()) << plan.status().ToString();
      ExpectConsistent(in, *plan);
      double best_value = -std::numeric_limits<double>::infinity();
      ForEachPlan(in, [&](const std::vector<int>&, const Outcome& o) {
        best_value = std::max(best_value, o.correct - lambda * o.bytes);
      });
      std::int64_t fewest_bytes = std::numeric_limits<std::int64_t>::max();
      ForEachPlan(in, [&](const std::vector<int>&, const Outcome& o) {
        if (o.correct - lambda * o.bytes >= best_value - 1e-9)
          fewest_bytes = std::min(fewest_bytes, o.bytes);
      });
      EXPECT_NEAR(plan->correct - lambda * plan->bytes, best_value, 1e-9)
          << "trial " << trial << " lambda " << lambda;
      EXPECT_EQ(plan->bytes, fewest_bytes) << "trial " << trial << " lambda " << lambda;
    }
  }
}

TEST(Oracle, BudgetedPlanFitsAndIsOptimalForItsBytes) {
  std::mt19937 rng(7);
  int matches_budget_optimum = 0, cases = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const OracleInput in = RandomInput(rng);
    for (std::int64_t budget : {0, 1, 3, 5, 8, 13, 20, 40, 1000}) {
      auto plan = SolveOracle(in, budget);
      ASSERT_TRUE(plan.ok()) << plan.status().ToString();
      ExpectConsistent(in, *plan);
      EXPECT_LE(plan->bytes, budget);
      // Nothing with as few bytes does better, and nothing within budget is
      // beaten (the Lagrangian may stop short of the budget, never above).
      EXPECT_EQ(plan->correct, BruteBest(in, plan->bytes)) << "trial " << trial;
      const std::int64_t optimum = BruteBest(in, budget);
      EXPECT_LE(plan->correct, optimum);
      matches_budget_optimum += plan->correct == optimum;
      ++cases;
    }
  }
  // The convex-hull gap is real but rare.
  EXPECT_GT(matches_budget_optimum, cases * 19 / 20);
}

TEST(Oracle, EnoughBudgetFindsTheBestPlanWithTheFewestBytes) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const OracleInput in = RandomInput(rng);
    auto plan = SolveOracle(in, std::numeric_limits<std::int64_t>::max());
    ASSERT_TRUE(plan.ok());
    std::int64_t best = -1, fewest = std::numeric_limits<std::int64_t>::max();
    ForEachPlan(
        in, [&](const std::vector<int>&, const Outcome& o) { best = std::max(best, o.correct); });
    ForEachPlan(in, [&](const std::vector<int>&, const Outcome& o) {
      if (o.correct == best) fewest = std::min(fewest, o.bytes);
    });
    EXPECT_EQ(plan->correct, best);
    EXPECT_EQ(plan->bytes, fewest);
    EXPECT_EQ(plan->lambda, 0.0);
    // At least as good as offloading every frame at any one allowed rate.
    for (int r = 0; r < in.rates; ++r) {
      if (!in.allowed_rates.empty() && in.allowed_rates[0] != r) continue;
      EXPECT_GE(plan->correct, Play(in, std::vector<int>(in.frames, r)).correct);
    }
  }
}

// Two scenes of three frames; the exit is always wrong, the cloud always
// right, and reuse holds within a scene.
OracleInput TwoScenes() {
  OracleInput in;
  in.frames = 6;
  in.rates = 1;
  in.labels = {0, 0, 0, 1, 1, 1};
  in.local_class = {9, 9, 9, 9, 9, 9};
  in.cloud_class = {0, 0, 0, 1, 1, 1};
  in.bytes = {10, 10, 10, 10, 10, 10};
  in.reuse = [](int i, int j) { return (i < 3) == (j < 3); };
  return in;
}

TEST(Oracle, HandSolvedTwoScenes) {
  const OracleInput in = TwoScenes();
  auto two = SolveOracle(in, 20);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->correct, 6);
  EXPECT_EQ(two->bytes, 20);
  EXPECT_EQ(two->rate, (std::vector<int>{0, -1, -1, 0, -1, -1}));
  EXPECT_EQ(two->answer, in.labels);

  auto one = SolveOracle(in, 19);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->correct, 3);
  EXPECT_EQ(one->bytes, 10);
  EXPECT_TRUE(one->rate[0] == 0 || one->rate[3] == 0);

  auto plenty = SolveOracle(in, 1'000'000);
  ASSERT_TRUE(plenty.ok());
  EXPECT_EQ(plenty->correct, 6);
  EXPECT_EQ(plenty->bytes, 20);  // no offload it does not need
  EXPECT_DOUBLE_EQ(plenty->Accuracy(in.frames), 1.0);
}

TEST(Oracle, HandSolvedRateChoice) {
  // Rate 0 is cheap and wrong on frame 1; rate 1 dear and always right.
  OracleInput in;
  in.frames = 3;
  in.rates = 2;
  in.labels = {4, 5, 6};
  in.local_class = {4, 0, 0};
  in.cloud_class = {4, 4, 7, 5, 6, 6};
  in.bytes = {5, 20, 5, 20, 5, 20};
  in.reuse = [](int, int) { return false; };
  auto plan = SolveOracle(in, 10);  // frame 0 is right locally; 2 cheap offloads fit
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->rate, (std::vector<int>{-1, -1, 0}));
  EXPECT_EQ(plan->correct, 2);
  EXPECT_EQ(plan->bytes, 5);
  plan = SolveOracle(in, 25);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->rate, (std::vector<int>{-1, 1, 0}));
  EXPECT_EQ(plan->correct, 3);
  EXPECT_EQ(plan->bytes, 25);
  // Only rate 0 allowed: frame 1 cannot be fixed.
  in.allowed_rates = {0};
  plan = SolveOracle(in, 1000);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->rate, (std::vector<int>{-1, -1, 0}));
  EXPECT_EQ(plan->correct, 2);
}

TEST(Oracle, ZeroBudgetMeansTheExitAlone) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 50; ++trial) {
    OracleInput in = RandomInput(rng);
    for (auto& b : in.bytes) b = std::max<std::int64_t>(b, 1);
    auto plan = SolveOracle(in, 0);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->bytes, 0);
    EXPECT_EQ(plan->rate, std::vector<int>(in.frames, -1));
    EXPECT_EQ(plan->answer, in.local_class);
    std::int64_t exit_correct = 0;
    for (int i = 0; i < in.frames; ++i) exit_correct += in.local_class[i] == in.labels[i];
    EXPECT_EQ(plan->correct, exit_correct);
  }
}

TEST(Oracle, BytesNeverExceedTheBudgetOnALongerTrace) {
  // 300 frames in scenes of random length; the exit is right 70 % of the time.
  std::mt19937 rng(5);
  OracleInput in;
  in.frames = 300;
  in.rates = 3;
  std::vector<int> scene(in.frames);
  int current = 0;
  for (int i = 0; i < in.frames; ++i) {
    if (std::bernoulli_distribution(0.1)(rng)) ++current;
    scene[i] = current;
    in.labels.push_back(current % 10);
    in.local_class.push_back(std::bernoulli_distribution(0.7)(rng) ? current % 10 : 10);
    for (int r = 0; r < in.rates; ++r) {
      in.cloud_class.push_back(std::bernoulli_distribution(0.8 + 0.05 * r)(rng) ? current % 10
                                                                                : 11);
      in.bytes.push_back(50 + 100 * r + std::uniform_int_distribution<int>(0, 20)(rng));
    }
  }
  in.reuse = [scene](int i, int j) { return scene[i] == scene[j]; };
  std::int64_t previous_correct = -1;
  for (std::int64_t budget : {0, 100, 500, 1000, 2000, 5000, 10000, 100000}) {
    auto plan = SolveOracle(in, budget);
    ASSERT_TRUE(plan.ok());
    ExpectConsistent(in, *plan);
    EXPECT_LE(plan->bytes, budget);
    EXPECT_GE(plan->correct, previous_correct);  // more budget never hurts
    previous_correct = plan->correct;
  }
}

TEST(Oracle, EmptyTrace) {
  OracleInput in;
  in.rates = 2;
  auto plan = SolveOracle(in, 100);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->rate.empty());
  EXPECT_EQ(plan->correct, 0);
  EXPECT_EQ(plan->Accuracy(0), 0.0);
}

TEST(Oracle, RejectsInconsistentInput) {
  auto expect_error = [](OracleInput in, const char* field, std::int64_t budget = 10) {
    auto plan = SolveOracle(in, budget);
    ASSERT_FALSE(plan.ok()) << field;
    EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(plan.status().message().find(field), std::string::npos) << plan.status().message();
  };
  const OracleInput good = TwoScenes();
  ASSERT_TRUE(SolveOracle(good, 10).ok());
  OracleInput in = good;
  in.labels.pop_back();
  expect_error(in, "labels");
  in = good;
  in.local_class.push_back(0);
  expect_error(in, "local_class");
  in = good;
  in.cloud_class.pop_back();
  expect_error(in, "cloud_class");
  in = good;
  in.bytes.push_back(1);
  expect_error(in, "bytes");
  in = good;
  in.bytes[2] = -1;
  expect_error(in, "bytes");
  in = good;
  in.rates = 0;
  expect_error(in, "rates");
  in = good;
  in.frames = -1;
  expect_error(in, "frames");
  in = good;
  in.allowed_rates = {1};
  expect_error(in, "allowed_rates");
  in = good;
  in.reuse = nullptr;
  expect_error(in, "reuse");
  expect_error(good, "byte_budget", -1);
  auto negative_lambda = SolveOracleForLambda(good, -0.5);
  ASSERT_FALSE(negative_lambda.ok());
  EXPECT_NE(negative_lambda.status().message().find("lambda"), std::string::npos);
}

// The expected oracle: values instead of labels. Plays a plan as its own DP
// values it: an offload is worth cloud_value, reusing offload (j, r) at i is
// worth cloud_value[j, r] if the same item is in view, the exit local_value.
std::int64_t ExpectedValue(const OracleInput& in, const std::vector<int>& rate,
                           std::int64_t* bytes) {
  std::int64_t value = 0;
  *bytes = 0;
  int last = -1;
  for (int i = 0; i < in.frames; ++i) {
    if (rate[i] >= 0) {
      value += in.cloud_value[i * in.rates + rate[i]];
      *bytes += in.bytes[i * in.rates + rate[i]];
      last = i;
    } else if (last >= 0 && in.reuse(i, last)) {
      value += in.item[i] == in.item[last] ? in.cloud_value[last * in.rates + rate[last]] : 0;
    } else {
      value += in.local_value[i];
    }
  }
  return value;
}

OracleInput RandomExpectedInput(std::mt19937& rng) {
  OracleInput in = RandomInput(rng);
  std::uniform_int_distribution<int> v(0, kValueScale);
  std::bernoulli_distribution same(0.7);
  int item = 0;
  for (int i = 0; i < in.frames; ++i) {
    if (i > 0 && !same(rng)) ++item;
    in.item.push_back(item);
    in.local_value.push_back(v(rng));
    for (int r = 0; r < in.rates; ++r) in.cloud_value.push_back(v(rng));
  }
  // The runtime's rule for the expected oracle: reuse within an item when the
  // offload is worth more than the exit (so reuse across items is never asked for).
  const OracleInput copy = in;
  in.reuse = [copy](int i, int j) {
    EXPECT_LT(j, i);
    return copy.item[i] == copy.item[j] && copy.cloud_value[j * copy.rates] > copy.local_value[i];
  };
  return in;
}

TEST(ExpectedOracle, MatchesBruteForceOnSmallInstances) {
  std::mt19937 rng(2027);
  int cases = 0, at_optimum = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const OracleInput in = RandomExpectedInput(rng);
    for (std::int64_t budget : {0, 2, 5, 9, 15, 1000}) {
      auto plan = SolveOracle(in, budget);
      ASSERT_TRUE(plan.ok()) << plan.status().ToString();
      std::int64_t bytes = 0;
      EXPECT_EQ(plan->correct, ExpectedValue(in, plan->rate, &bytes)) << "trial " << trial;
      EXPECT_EQ(plan->bytes, bytes);
      EXPECT_LE(plan->bytes, budget);
      // Nothing with at most the plan's bytes is worth more; within the budget,
      // at most the hull's rare gap.
      std::int64_t best_at_bytes = -1, best_in_budget = -1;
      ForEachPlan(in, [&](const std::vector<int>& rate, const Outcome&) {
        std::int64_t b = 0;
        const std::int64_t v = ExpectedValue(in, rate, &b);
        if (b <= plan->bytes) best_at_bytes = std::max(best_at_bytes, v);
        if (b <= budget) best_in_budget = std::max(best_in_budget, v);
      });
      EXPECT_EQ(plan->correct, best_at_bytes) << "trial " << trial << " budget " << budget;
      at_optimum += plan->correct == best_in_budget;
      ++cases;
    }
  }
  // Random values leave more hull gaps than 0/1 answers do (measured: 93% of
  // the cases reach the budget's optimum; the plan is optimal for its bytes always).
  EXPECT_GT(at_optimum, cases * 9 / 10);
}

TEST(ExpectedOracle, ValuesAnOffloadByItsItemNotByTheLabel) {
  // Two items of two frames; the cloud is worth 0.9 and the exit 0.5 on each;
  // the labels say the cloud is wrong, which the expected oracle must ignore.
  OracleInput in;
  in.frames = 4;
  in.rates = 1;
  in.labels = {0, 0, 1, 1};
  in.local_class = {0, 0, 1, 1};
  in.cloud_class = {2, 2, 2, 2};
  in.bytes = {10, 10, 10, 10};
  in.item = {0, 0, 1, 1};
  in.local_value = {500, 500, 500, 500};
  in.cloud_value = {900, 900, 900, 900};
  in.reuse = [&](int i, int j) { return in.item[i] == in.item[j]; };
  auto plan = SolveOracle(in, 20);
  ASSERT_TRUE(plan.ok());
  // One offload per item, each reused by its other frame: 4 x 0.9.
  EXPECT_EQ(plan->bytes, 20);
  EXPECT_EQ(plan->correct, 3600);
  EXPECT_GE(plan->rate[0], 0);
  EXPECT_GE(plan->rate[2], 0);
  auto one = SolveOracle(in, 10);  // one offload: one item at 2 x 0.9, the other by the exit
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->correct, 1800 + 1000);
}

TEST(ExpectedOracle, RefusesValuesOutsideAProbability) {
  OracleInput in;
  in.frames = 1;
  in.rates = 1;
  in.labels = {0};
  in.local_class = {0};
  in.cloud_class = {0};
  in.bytes = {1};
  in.item = {0};
  in.local_value = {kValueScale + 1};
  in.cloud_value = {0};
  auto plan = SolveOracle(in, 1);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("local value"), std::string::npos);
  in.local_value = {0};
  in.item.clear();
  plan = SolveOracle(in, 1);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("item"), std::string::npos);
}

}  // namespace
}  // namespace deepcut::scheduler
