// The offload policies as pure functions of their context, in virtual time:
// what each one offloads, how it answers the rest, how it keeps the budget.
#include "scheduler/policy.h"

#include "scheduler/oracle.h"

#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <functional>
#include <random>

namespace deepcut::scheduler {
namespace {

constexpr int kFeatures = 16;

struct Stream {
  std::vector<RateInfo> rates{{100.0, 0.93}};  // one rate: 100 B, 93% accurate
  double fps = 10.0;
  TimeUs reply_delay_us = 40'000;  // cloud replies after this long (<0: never)
  double deadline_ms = 200.0;
  std::function<float(int)> error_rate = [](int) { return 0.2f; };
  std::function<std::vector<float>(int)> features = [](int i) {
    return std::vector<float>(kFeatures, static_cast<float>(i % 100) / 100.0f);
  };
  std::function<std::vector<float>(int)> pixels = [](int) { return std::vector<float>(); };
  std::function<int(int)> cloud_class = [](int i) { return i % 10; };
};

struct Tally {
  int frames = 0, offloaded = 0, reused = 0, local = 0;
  std::int64_t bytes = 0;
  std::vector<int> offloaded_frames;
  std::vector<std::pair<TimeUs, std::int64_t>> sends;
  double Bps(double seconds) const { return bytes * 8.0 / seconds; }
};

// Drives `policy` through `n` frames; offloads are answered after the
// stream's reply delay (class = frame id % 10).
Tally Drive(OffloadPolicy& policy, const Stream& s, int n) {
  Tally t;
  struct Out {
    TimeUs at;
    std::uint64_t id;
    int frame;
    std::vector<float> features;
  };
  std::deque<Out> outstanding;
  bool has_answer = false;
  std::uint64_t next_id = 1;
  const TimeUs period = static_cast<TimeUs>(1e6 / s.fps);
  for (int i = 0; i < n; ++i) {
    const TimeUs now = i * period;
    while (!outstanding.empty() && outstanding.front().at <= now) {
      Out o = outstanding.front();
      outstanding.pop_front();
      Feedback f;
      f.request_id = o.id;
      f.frame_id = o.frame;
      f.now_us = o.at;
      f.class_id = s.cloud_class(o.frame);
      f.features = o.features;
      f.outcome = Outcome::kAnswered;
      policy.OnOutcome(f);
      has_answer = true;
    }
    auto features = s.features(i);
    auto pixels = s.pixels(i);
    DecisionContext c;
    c.frame_id = i;
    c.now_us = now;
    c.deadline_us = now + static_cast<TimeUs>(s.deadline_ms * 1000);
    c.exit_error_rate = s.error_rate(i);
    c.exit_confidence = 1.0f - c.exit_error_rate;
    c.features = features;
    c.pixels = pixels;
    c.has_cloud_answer = has_answer;
    c.in_flight = static_cast<int>(outstanding.size());
    c.max_in_flight = 8;
    c.default_rate_index = 0;
    c.rates = s.rates;
    Decision d = policy.Decide(c);
    ++t.frames;
    if (d.action == Action::kOffload) {
      EXPECT_GE(d.rate_index, 0);
      EXPECT_LT(d.rate_index, static_cast<int>(s.rates.size()));
      const auto bytes = static_cast<std::int64_t>(s.rates[d.rate_index].wire_bytes);
      const std::uint64_t id = next_id++;
      policy.OnSent(id, now, bytes);
      ++t.offloaded;
      t.bytes += bytes;
      t.offloaded_frames.push_back(i);
      t.sends.emplace_back(now, bytes);
      if (s.reply_delay_us >= 0) outstanding.push_back({now + s.reply_delay_us, id, i, features});
    } else if (d.action == Action::kReuse) {
      EXPECT_TRUE(has_answer) << "reuse without a cloud answer, frame " << i;
      ++t.reused;
    } else {
      ++t.local;
    }
  }
  return t;
}

// For the learned policy in the loops over every policy: a network scoring
// exit_error - 0.3 (it offloads the doubtful frames).
std::shared_ptr<const PolicyNet> TestNet() {
  std::vector<double> flat(kLearnedInputs + 3, 0.0);
  flat[0] = 1.0;
  flat[kLearnedInputs] = -0.3;
  flat[kLearnedInputs + 1] = 1.0;
  auto net = PolicyNet::FromFlat({kLearnedInputs, 1, 1}, flat);
  EXPECT_TRUE(net.ok());
  return std::make_shared<const PolicyNet>(*net);
}

std::unique_ptr<OffloadPolicy> Make(PolicyOptions o) {
  o.model.exit_accuracy = 0.89;
  auto p = MakePolicy(o);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return std::move(p).value();
}

double MaxWindowBps(const Tally& t, TimeUs window_us) {
  double best = 0;
  size_t lo = 0;
  std::int64_t in = 0;
  for (size_t hi = 0; hi < t.sends.size(); ++hi) {
    in += t.sends[hi].second;
    while (t.sends[hi].first - t.sends[lo].first >= window_us) in -= t.sends[lo++].second;
    best = std::max(best, in * 8.0 / (window_us / 1e6));
  }
  return best;
}

TEST(MakePolicy, NamesAndErrors) {
  for (const auto& name : PolicyNames()) {
    auto p = MakePolicy({.name = name, .learned = TestNet()});
    ASSERT_TRUE(p.ok()) << name;
    EXPECT_EQ((*p)->name(), name);
  }
  EXPECT_STREQ((*MakePolicy({.name = "never"}))->name(), "edge-only");
  auto bogus = MakePolicy({.name = "bogus"});
  ASSERT_FALSE(bogus.ok());
  EXPECT_NE(bogus.status().message().find("deepcut"), std::string::npos);
  auto oracle = MakePolicy({.name = "oracle"});
  ASSERT_FALSE(oracle.ok());
  EXPECT_NE(oracle.status().message().find("deepcut-replay"), std::string::npos);
  EXPECT_FALSE(MakePolicy({.name = "periodic", .period_frames = 0}).ok());
  EXPECT_FALSE(MakePolicy({.name = "random", .random_probability = 1.5}).ok());
}

TEST(PreferReuse, ComparesExpectedAccuracy) {
  EXPECT_TRUE(PreferReuse(0.3, 0.9, 0.93));    // 0.84 > 0.70
  EXPECT_FALSE(PreferReuse(0.05, 0.9, 0.93));  // 0.84 < 0.95
  EXPECT_FALSE(PreferReuse(0.3, 0.0, 0.93));
}

TEST(Policies, AlwaysAndEdgeOnly) {
  Stream s;
  auto always = Make({.name = "always"});
  Tally a = Drive(*always, s, 100);
  EXPECT_EQ(a.offloaded, 100);
  auto edge = Make({.name = "edge-only"});
  Tally e = Drive(*edge, s, 100);
  EXPECT_EQ(e.offloaded, 0);
  EXPECT_EQ(e.local, 100);
}

TEST(Policies, PeriodicEveryKthFrameWithoutBudget) {
  Stream s;
  auto p = Make({.name = "periodic", .period_frames = 10});
  Tally t = Drive(*p, s, 100);
  EXPECT_EQ(t.offloaded, 10);
  for (size_t k = 1; k < t.offloaded_frames.size(); ++k)
    EXPECT_EQ(t.offloaded_frames[k] - t.offloaded_frames[k - 1], 10);
}

TEST(Policies, RandomFixedProbability) {
  Stream s;
  auto p = Make({.name = "random", .seed = 7, .random_probability = 0.3});
  Tally t = Drive(*p, s, 5000);
  EXPECT_NEAR(t.offloaded / 5000.0, 0.3, 0.03);
  auto q = Make({.name = "random", .seed = 7, .random_probability = 0.3});
  EXPECT_EQ(Drive(*q, s, 500).offloaded_frames,
            Drive(*Make({.name = "random", .seed = 7, .random_probability = 0.3}), s, 500)
                .offloaded_frames);
}

// Every budgeted policy spends about the budget when it has frames worth
// sending, and no 10 s window goes more than 5% over it.
TEST(Policies, BudgetedPoliciesKeepTheBudget) {
  Stream s;
  s.fps = 30.0;
  std::mt19937 rng(3);
  std::vector<float> errors(1800);
  for (auto& e : errors) e = std::uniform_real_distribution<float>(0.05f, 0.6f)(rng);
  s.error_rate = [&](int i) { return errors[i]; };
  // Frames change all the time, so reuse is never worth more than a new answer.
  s.features = [](int i) {
    std::vector<float> f(kFeatures);
    for (int k = 0; k < kFeatures; ++k) f[k] = static_cast<float>((i * 7 + k * 13) % 17) / 17.0f;
    return f;
  };
  s.pixels = [](int i) {
    return std::vector<float>(64, static_cast<float>((i * 37) % 101) / 100.0f);
  };
  const double always_bps = 100 * 8 * s.fps;
  for (const char* name : {"periodic", "random", "confidence", "framediff", "deepcut"}) {
    for (double fraction : {0.1, 0.25, 0.5}) {
      const double budget = fraction * always_bps;
      auto p = Make({.name = name, .budget_bps = budget});
      Tally t = Drive(*p, s, 1800);  // 60 s
      // After the first seconds (the bucket starts empty), spending follows the budget.
      std::int64_t steady = 0;
      for (const auto& [at, bytes] : t.sends) steady += at >= 10'000'000 ? bytes : 0;
      EXPECT_NEAR(steady * 8.0 / 50.0 / budget, 1.0, 0.05) << name << " at " << fraction;
      if (std::abs(steady * 8.0 / 50.0 / budget - 1.0) > 0.05) ADD_FAILURE() << name;
      EXPECT_LE(MaxWindowBps(t, 10'000'000), 1.05 * budget) << name << " at " << fraction;
    }
  }
}

TEST(Policies, ConfidenceSendsTheLeastSureFrames) {
  Stream s;
  s.error_rate = [](int i) { return i % 4 == 0 ? 0.5f : 0.02f; };
  auto p = Make({.name = "confidence", .budget_bps = 0.25 * 100 * 8 * 10});
  Tally t = Drive(*p, s, 1200);
  int unsure = 0;
  for (int f : t.offloaded_frames) unsure += f % 4 == 0;
  ASSERT_GT(t.offloaded, 100);
  EXPECT_GT(unsure, 0.9 * t.offloaded);
}

TEST(Policies, FrameDiffSendsOnPixelChange) {
  Stream s;
  // Pixels change every 20 frames.
  s.pixels = [](int i) { return std::vector<float>(64, (i / 20) % 2 ? 0.8f : 0.2f); };
  auto p = Make({.name = "framediff", .framediff_threshold = 0.05});
  Tally t = Drive(*p, s, 100);
  EXPECT_EQ(t.offloaded_frames, (std::vector<int>{0, 20, 40, 60, 80}));
}

TEST(Policies, DeepCutSkipsConfidentFramesAndSendsUnsureOnes) {
  Stream s;
  s.error_rate = [](int i) { return i % 2 ? 0.4f : 0.001f; };
  // A budget for a quarter of the frames: half of them are unsure.
  auto p = Make({.name = "deepcut", .budget_bps = 0.25 * 100 * 8 * 10});
  Tally t = Drive(*p, s, 1200);
  ASSERT_GT(t.offloaded, 200);
  for (int f : t.offloaded_frames) EXPECT_EQ(f % 2, 1) << "confident frame " << f << " offloaded";
}

TEST(Policies, DeepCutReusesTheCloudAnswerForAStillScene) {
  Stream s;
  s.error_rate = [](int) { return 0.3f; };
  s.features = [](int) { return std::vector<float>(kFeatures, 0.5f); };  // nothing moves
  s.cloud_class = [](int) { return 3; };  // and the cloud keeps saying so
  auto p = Make({.name = "deepcut"});
  Tally t = Drive(*p, s, 300);
  // Until the detector has seen that an unchanged scene keeps its answer it
  // re-checks; then it reuses.
  EXPECT_LE(t.offloaded, 80);
  EXPECT_GE(t.reused, 220);
  Tally later = Drive(*p, s, 100);  // (a new stream: its first frame has nothing to reuse)
  EXPECT_LE(later.offloaded, 1);
}

TEST(Policies, DeepCutStopsOffloadingWhenRepliesStop) {
  Stream s;
  s.error_rate = [](int) { return 0.4f; };
  s.reply_delay_us = -1;  // the link is down: nothing comes back
  auto p = Make({.name = "deepcut"});
  Tally t = Drive(*p, s, 100);  // 10 s at 10 fps
  // Once the oldest request is older than the deadline allows, no new one
  // goes but a probe a second.
  EXPECT_GE(t.offloaded, 2);
  EXPECT_LE(t.offloaded, 12);
  for (size_t k = 2; k < t.offloaded_frames.size(); ++k)
    EXPECT_GE(t.offloaded_frames[k] - t.offloaded_frames[k - 1], 10) << k;
}

// A tight budget is no reason to send a worse answer: the DeepCut policy
// waits for the tokens of its default rate rather than stepping down.
TEST(Policies, DeepCutKeepsTheDefaultRateUnderATightBudget) {
  Stream s;
  s.rates = {{400.0, 0.935}, {80.0, 0.90}};
  s.error_rate = [](int i) { return i % 3 == 0 ? 0.4f : 0.2f; };
  auto p = Make({.name = "deepcut", .budget_bps = 800});  // one 400 B offload per 4 s
  Tally t = Drive(*p, s, 600);
  ASSERT_GT(t.offloaded, 5);
  EXPECT_EQ(t.bytes, t.offloaded * 400);
}

// A hand-made trace whose answer is known: 8 scenes of 12 frames; the exit
// is wrong on the second half of every other scene, the cloud is right
// except on one scene. Every policy's offloads, judged under the oracle's
// fallback rule (reuse within a scene), are never better than the oracle's
// plan at the same bytes.
TEST(Oracle, BeatsEveryPolicyOnAHandMadeTrace) {
  constexpr int kScenes = 8, kPer = 12, kFrames = kScenes * kPer;
  std::vector<int> label(kFrames), exit_class(kFrames), cloud(kFrames);
  for (int i = 0; i < kFrames; ++i) {
    const int scene = i / kPer;
    label[i] = scene % 10;
    exit_class[i] = (scene % 2 == 1 && i % kPer >= kPer / 2) ? (label[i] + 1) % 10 : label[i];
    cloud[i] = scene == 5 ? (label[i] + 2) % 10 : label[i];
  }
  Stream s;
  s.error_rate = [&](int i) { return exit_class[i] == label[i] ? 0.05f : 0.45f; };
  s.features = [](int i) {
    return std::vector<float>(kFeatures, static_cast<float>(i / kPer) / kScenes);
  };
  s.pixels = [](int i) { return std::vector<float>(16, static_cast<float>(i / kPer) / kScenes); };
  s.cloud_class = [&](int i) { return cloud[i]; };
  OracleInput in;
  in.frames = kFrames;
  in.rates = 1;
  in.labels = label;
  in.local_class = exit_class;
  in.cloud_class = cloud;
  in.bytes.assign(kFrames, 100);
  in.reuse = [](int i, int j) { return i / kPer == j / kPer; };
  // The accuracy of a set of offloads under the oracle's fallback rule.
  auto judge = [&](const std::vector<int>& offloaded) {
    std::vector<bool> sent(kFrames, false);
    for (int f : offloaded) sent[f] = true;
    int correct = 0, last = -1;
    for (int i = 0; i < kFrames; ++i) {
      const int answer =
          sent[i] ? cloud[i] : (last >= 0 && in.reuse(i, last) ? cloud[last] : exit_class[i]);
      if (sent[i]) last = i;
      correct += answer == label[i];
    }
    return correct;
  };
  for (const auto& name : PolicyNames()) {
    for (double budget : {0.0, 400.0, 1600.0}) {
      auto p = Make({.name = name, .budget_bps = budget, .learned = TestNet()});
      Tally t = Drive(*p, s, kFrames);
      auto plan = SolveOracle(in, t.bytes);
      ASSERT_TRUE(plan.ok()) << plan.status().ToString();
      EXPECT_LE(plan->bytes, t.bytes);
      EXPECT_GE(plan->correct, judge(t.offloaded_frames)) << name << " at " << budget;
    }
  }
  // The answer known by hand: one offload in each scene where the exit errs
  // and the cloud is right (scenes 1, 3, 7; scene 5's cloud is wrong) fixes
  // their 6 wrong frames each: 300 bytes buy every frame but scene 5's six.
  auto plan = SolveOracle(in, 300);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->correct, kFrames - kPer / 2);
}

}  // namespace
}  // namespace deepcut::scheduler
