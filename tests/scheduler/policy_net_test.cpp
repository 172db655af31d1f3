// The learned policy's network: hand-computed scores, and bad weight files
// refused with a message naming what is wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scheduler/policy.h"
#include "scheduler/policy_net.h"

namespace deepcut::scheduler {
namespace {

// A 12 -> 2 -> 1 network with known weights.
nlohmann::json GoodJson() {
  nlohmann::json j;
  j["format"] = "deepcut-policy/1";
  j["inputs"] = nlohmann::json::array();
  for (const char* n : kLearnedInputNames) j["inputs"].push_back(n);
  std::vector<double> row0(kLearnedInputs, 0.0), row1(kLearnedInputs, 0.0);
  row0[0] = 2.0;   // exit_error
  row1[1] = -1.0;  // expected_cloud
  row1[11] = 0.5;  // bias_one
  j["layers"] = {{{"weights", {row0, row1}}, {"bias", {0.1, -0.2}}},
                 {{"weights", {{1.5, -0.5}}}, {"bias", {0.25}}}};
  j["provenance"] = {{"command", "test"}};
  return j;
}

std::string Error(const nlohmann::json& j) {
  auto net = PolicyNet::Parse(j.dump(), "w.json");
  return net.ok() ? "" : net.status().message();
}

TEST(PolicyNet, ScoresAsTheFormulaSays) {
  auto net = PolicyNet::Parse(GoodJson().dump(), "w.json");
  ASSERT_TRUE(net.ok()) << net.status().ToString();
  LearnedState s;
  s.exit_error = 0.3;
  s.expected_cloud = 0.8;
  const double h0 = std::tanh(2.0 * 0.3 + 0.1), h1 = std::tanh(-0.8 + 0.5 - 0.2);
  EXPECT_NEAR(net->Score(s.Values()), 1.5 * h0 - 0.5 * h1 + 0.25, 1e-12);
  EXPECT_EQ(net->Sizes(), (std::vector<int>{kLearnedInputs, 2, 1}));
}

TEST(PolicyNet, FlatRoundTripsAndSurvivesItsOwnJson) {
  auto net = PolicyNet::Parse(GoodJson().dump(), "w.json");
  ASSERT_TRUE(net.ok());
  auto again = PolicyNet::FromFlat(net->Sizes(), net->Flat());
  ASSERT_TRUE(again.ok());
  auto reread = PolicyNet::Parse(again->ToJson(R"({"command": "x"})"), "again.json");
  ASSERT_TRUE(reread.ok()) << reread.status().ToString();
  LearnedState s;
  s.exit_error = 0.7;
  s.fused_confidence = 0.4;
  EXPECT_DOUBLE_EQ(reread->Score(s.Values()), net->Score(s.Values()));
  EXPECT_FALSE(PolicyNet::FromFlat({kLearnedInputs, 2, 1}, {1.0, 2.0}).ok());
}

TEST(PolicyNet, RefusesBadFilesNamingTheProblem) {
  EXPECT_NE(PolicyNet::Parse("{not json", "w.json").status().message().find("not valid JSON"),
            std::string::npos);
  auto j = GoodJson();
  j["format"] = "deepcut-policy/2";
  EXPECT_NE(Error(j).find("format"), std::string::npos);
  j = GoodJson();
  j["inputs"][3] = "something_else";
  EXPECT_NE(Error(j).find("inputs[3]"), std::string::npos);
  j = GoodJson();
  j["inputs"].erase(0);
  EXPECT_NE(Error(j).find("inputs"), std::string::npos);
  j = GoodJson();
  j["layers"][0]["weights"][1].erase(0);
  EXPECT_NE(Error(j).find("layers[0].weights[1]"), std::string::npos);
  j = GoodJson();
  j["layers"][1]["bias"] = {0.1, 0.2};
  EXPECT_NE(Error(j).find("layers[1].bias"), std::string::npos);
  j = GoodJson();
  j["layers"][0]["weights"][0][4] = "1.0";
  EXPECT_NE(Error(j).find("layers[0].weights[0][4] is not a finite number"), std::string::npos);
  j = GoodJson();
  j["layers"][1]["weights"] = {{1.0, 1.0}, {1.0, 1.0}};
  j["layers"][1]["bias"] = {0.0, 0.0};
  EXPECT_NE(Error(j).find("one output"), std::string::npos);
  j = GoodJson();
  j["layers"] = nlohmann::json::array();
  EXPECT_NE(Error(j).find("layers"), std::string::npos);
  // NaN cannot be spelled in JSON, and the parser refuses a number that overflows.
  std::string text = GoodJson().dump();
  text.replace(text.find("0.25"), 4, "1e999");
  auto inf = PolicyNet::Parse(text, "w.json");
  ASSERT_FALSE(inf.ok());
  EXPECT_NE(inf.status().message().find("w.json"), std::string::npos);
}

TEST(PolicyNet, AMissingFileSaysWhatMakesOne) {
  auto net = PolicyNet::Load("/nonexistent/policy.json");
  ASSERT_FALSE(net.ok());
  EXPECT_EQ(net.status().code(), StatusCode::kNotFound);
  EXPECT_NE(net.status().message().find("deepcut-train-policy"), std::string::npos);
}

TEST(LearnedPolicy, NeedsItsNetwork) {
  PolicyOptions o;
  o.name = "learned";
  auto p = MakePolicy(o);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("weights"), std::string::npos);
  auto net = PolicyNet::Parse(GoodJson().dump(), "w.json");
  ASSERT_TRUE(net.ok());
  o.learned = std::make_shared<const PolicyNet>(*net);
  auto q = MakePolicy(o);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_STREQ((*q)->name(), "learned");
}

TEST(LearnedPolicy, OffloadsWhatItScoresPositiveAndNothingElse) {
  // A network that scores exit_error - 0.5: offload exactly the frames whose
  // exit is more likely wrong than right (no budget, a free link).
  std::vector<double> flat(kLearnedInputs * 1 + 1 + 1 + 1, 0.0);
  flat[0] = 1.0;                   // hidden = tanh(exit_error - 0.5)
  flat[kLearnedInputs] = -0.5;     // hidden bias
  flat[kLearnedInputs + 1] = 1.0;  // output weight
  flat[kLearnedInputs + 2] = 0.0;  // output bias
  auto net = PolicyNet::FromFlat({kLearnedInputs, 1, 1}, flat);
  ASSERT_TRUE(net.ok()) << net.status().ToString();
  PolicyOptions o;
  o.name = "learned";
  o.learned = std::make_shared<const PolicyNet>(*net);
  auto p = MakePolicy(o);
  ASSERT_TRUE(p.ok());
  std::vector<RateInfo> rates = {{40.0, 0.93}};
  DecisionContext c;
  c.rates = rates;
  c.max_in_flight = 4;
  c.deadline_us = 200'000;
  for (float e : {0.1f, 0.45f, 0.55f, 0.9f}) {
    c.now_us += 100'000;
    c.deadline_us = c.now_us + 200'000;
    c.exit_error_rate = e;
    const Decision d = (*p)->Decide(c);
    EXPECT_EQ(d.action == Action::kOffload, e > 0.5f) << "exit error " << e;
  }
}

}  // namespace
}  // namespace deepcut::scheduler
