#include "splitnet/manifest.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "splitnet/feature_codec.h"
#include "splitnet/split_model.h"

namespace deepcut::splitnet {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json ValidManifest() {
  return json::parse(R"({
    "format": "deepcut-model/1", "name": "t",
    "files": {"head": "head.onnx", "exit": "exit.onnx", "tail": "tail.onnx"},
    "input": {"channels": 1, "height": 28, "width": 28, "layout": "NCHW",
              "scale": 0.00392156862745098, "mean": [0.286], "std": [0.353]},
    "bottleneck": {"channels": 8, "height": 7, "width": 7, "min": 0.0, "max": 1.0, "fill": 0.0},
    "rates": [{"name": "8b", "bits": 8, "channels": 8}, {"name": "2b-4c", "bits": 2, "channels": 4}],
    "default_rate": "2b-4c",
    "classes": ["a", "b", "c"],
    "exit_calibration": {"bins": [
      {"confidence_min": 0.0, "confidence_max": 0.6, "error_rate": 0.4, "count": 10},
      {"confidence_min": 0.6, "confidence_max": 1.0, "error_rate": 0.05, "count": 90}]},
    "provenance": {"command": "train.py"}
  })");
}

class ManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() /
        ("deepcut-manifest-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    for (const char* f : {"head.onnx", "exit.onnx", "tail.onnx"}) std::ofstream(dir_ / f) << "x";
  }
  void TearDown() override { fs::remove_all(dir_); }
  Result<Manifest> Parse(const json& j) { return ParseManifest(j.dump(), dir_); }
  void ExpectRefused(const json& j, const std::string& mention) {
    auto m = Parse(j);
    ASSERT_FALSE(m.ok()) << "accepted; expected an error mentioning " << mention;
    EXPECT_NE(m.status().message().find(mention), std::string::npos) << m.status().message();
  }
  fs::path dir_;
};

TEST_F(ManifestTest, ParsesAValidManifest) {
  auto m = Parse(ValidManifest());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->name, "t");
  EXPECT_EQ(m->bottleneck.Elements(), 8 * 7 * 7);
  ASSERT_EQ(m->rates.size(), 2u);
  EXPECT_EQ(m->rates[1].channels, 4);
  EXPECT_EQ(m->default_rate_index, 1);
  EXPECT_EQ(m->classes.size(), 3u);
  EXPECT_FLOAT_EQ(m->ExitErrorRate(0.3f), 0.4f);
  EXPECT_FLOAT_EQ(m->ExitErrorRate(0.9f), 0.05f);
  EXPECT_FLOAT_EQ(m->ExitErrorRate(1.0f), 0.05f);
  EXPECT_EQ(m->head_file, dir_ / "head.onnx");
}

TEST_F(ManifestTest, RefusesEachInconsistency) {
  ExpectRefused(json::parse("[1]"), "object");
  auto j = ValidManifest();
  j["format"] = "deepcut-model/9";
  ExpectRefused(j, "format");
  j = ValidManifest();
  j.erase("name");
  ExpectRefused(j, "name");
  j = ValidManifest();
  j["input"]["std"] = {0.0};
  ExpectRefused(j, "input.std");
  j = ValidManifest();
  j["input"]["mean"] = {0.1, 0.2};
  ExpectRefused(j, "input.mean");
  j = ValidManifest();
  j["input"]["layout"] = "NHWC";
  ExpectRefused(j, "layout");
  j = ValidManifest();
  j["bottleneck"]["max"] = 0.0;
  ExpectRefused(j, "bottleneck.max");
  j = ValidManifest();
  j["bottleneck"]["channels"] = "8";
  ExpectRefused(j, "bottleneck.channels");
  j = ValidManifest();
  j["rates"][0]["bits"] = 9;
  ExpectRefused(j, "rates[0].bits");
  j = ValidManifest();
  j["rates"][1]["channels"] = 9;
  ExpectRefused(j, "rates[1].channels");
  j = ValidManifest();
  j["rates"][1]["name"] = "8b";
  ExpectRefused(j, "duplicate");
  j = ValidManifest();
  j["rates"] = json::array();
  ExpectRefused(j, "rates");
  j = ValidManifest();
  j["default_rate"] = "nope";
  ExpectRefused(j, "default_rate");
  j = ValidManifest();
  j.erase("default_rate");  // issue 10: refused, not silently the first rate
  ExpectRefused(j, "default_rate is missing");
  j = ValidManifest();
  j["classes"] = {"only-one"};
  ExpectRefused(j, "classes");
  j = ValidManifest();
  j["exit_calibration"]["bins"][1]["confidence_min"] = 0.7;
  ExpectRefused(j, "does not start");
  j = ValidManifest();
  j["exit_calibration"]["bins"][1]["confidence_max"] = 0.9;
  ExpectRefused(j, "cover");
  j = ValidManifest();
  j["exit_calibration"]["bins"][0]["error_rate"] = 1.5;
  ExpectRefused(j, "error_rate");
  j = ValidManifest();
  j["files"]["tail"] = "missing.onnx";
  ExpectRefused(j, "missing.onnx");
  j = ValidManifest();
  j["files"]["head"] = "../etc/passwd";
  ExpectRefused(j, "files.head");
}

TEST_F(ManifestTest, ReadsAndChecksTheEntropyModel) {
  auto j = ValidManifest();
  // 2b-4c: 4 channels x 25 contexts x 4 symbols.
  json table = json::array();
  for (int c = 0; c < 4; ++c) {
    json contexts = json::array();
    for (int k = 0; k < 25; ++k) contexts.push_back({4000, 32, 32, 32});
    table.push_back(contexts);
  }
  j["entropy_model"] = {
      {"kind", "left-up-context/1"}, {"total_bits", 12}, {"rates", {{"2b-4c", table}}}};
  auto m = Parse(j);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->rates[1].context_frequencies.size(), 4u * 25 * 4);
  EXPECT_TRUE(m->rates[0].context_frequencies.empty());
  // The tables are part of the fingerprint.
  auto plain = Parse(ValidManifest());
  EXPECT_NE(m->fingerprint, plain->fingerprint);

  auto bad = j;
  bad["entropy_model"]["rates"]["2b-4c"][0][3] = {4000, 32, 32, 31};
  ExpectRefused(bad, "sum to 4096");
  bad = j;
  bad["entropy_model"]["rates"]["2b-4c"][1][0] = {4096, 0, 0, 0};
  ExpectRefused(bad, "[1, 4096]");
  bad = j;
  bad["entropy_model"]["rates"]["2b-4c"].erase(3);
  ExpectRefused(bad, "one table per channel");
  bad = j;
  bad["entropy_model"]["rates"]["8b"] = table;
  ExpectRefused(bad, "at most 4 bits");
  bad = j;
  bad["entropy_model"]["rates"]["nope"] = table;
  ExpectRefused(bad, "no such rate");
  bad = j;
  bad["entropy_model"]["kind"] = "magic";
  ExpectRefused(bad, "entropy_model.kind");
}

TEST_F(ManifestTest, RefusesInvalidJsonAndMissingFile) {
  auto m = ParseManifest("{ not json", dir_);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("not valid JSON"), std::string::npos);
  auto missing = LoadManifest(dir_ / "nowhere");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

// The committed package loads, and SplitModel refuses graphs whose shapes
// disagree with the manifest, naming the file.
TEST(ModelPackage, CommittedPackageLoadsAndRuns) {
  auto m = LoadManifest(DEEPCUT_MODEL_DIR);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto model = SplitModel::Load(*m);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  cv::Mat image(m->input.height, m->input.width, CV_8UC1, cv::Scalar(128));
  auto input = (*model)->Preprocess(image);
  ASSERT_TRUE(input.ok());
  auto z = (*model)->RunHead(*input);
  ASSERT_TRUE(z.ok()) << z.status().ToString();
  for (float v : *z) {
    EXPECT_GE(v, m->bottleneck.min - 1e-5f);
    EXPECT_LE(v, m->bottleneck.max + 1e-5f);
  }
  auto exit = (*model)->RunExit(*z);
  ASSERT_TRUE(exit.ok());
  EXPECT_GE(exit->class_id, 0);
  auto tail = (*model)->RunTail({*z, *z, *z});
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail->size(), 3u);
  EXPECT_EQ((*tail)[0].class_id, (*tail)[2].class_id);
  // The committed package has a learned context model: real features code
  // smaller with it than as raw bits, and decode exactly.
  FeatureCodec codec;
  const int r2 = m->RateIndex("2b");
  ASSERT_GE(r2, 0);
  ASSERT_FALSE(m->rates[r2].context_frequencies.empty());
  cv::Mat shirt(28, 28, CV_8UC1, cv::Scalar(0));
  cv::rectangle(shirt, cv::Rect(6, 4, 16, 20), cv::Scalar(200), cv::FILLED);
  auto zs = (*model)->RunHead(*(*model)->Preprocess(shirt));
  auto e = codec.Encode(*zs, m->bottleneck, m->rates[r2]);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->coding, Coding::kContext);
  EXPECT_LT(e->payload.size(), FeatureCodec::PackedBytes(m->bottleneck, m->rates[r2]));
  auto d = codec.Decode(e->coding, e->payload, m->bottleneck, m->rates[r2]);
  ASSERT_TRUE(d.ok());
  // A color image of another size is converted and resized.
  cv::Mat color(50, 40, CV_8UC3, cv::Scalar(10, 200, 30));
  EXPECT_TRUE((*model)->Preprocess(color).ok());
  EXPECT_FALSE((*model)->Preprocess(cv::Mat()).ok());
}

TEST_F(ManifestTest, SplitModelRefusesGraphsThatDisagree) {
  const fs::path real = DEEPCUT_MODEL_DIR;
  fs::copy_file(real / "manifest.json", dir_ / "manifest.json",
                fs::copy_options::overwrite_existing);
  // head.onnx where the tail should be: its input is an image, not features.
  fs::copy_file(real / "head.onnx", dir_ / "head.onnx", fs::copy_options::overwrite_existing);
  fs::copy_file(real / "exit.onnx", dir_ / "exit.onnx", fs::copy_options::overwrite_existing);
  fs::copy_file(real / "head.onnx", dir_ / "tail.onnx", fs::copy_options::overwrite_existing);
  auto m = LoadManifest(dir_);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto model = SplitModel::Load(*m);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("tail.onnx"), std::string::npos)
      << model.status().message();
  // A garbage ONNX file.
  std::ofstream(dir_ / "exit.onnx", std::ios::trunc) << "not a protobuf";
  auto bad = SplitModel::Load(*m);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("exit.onnx"), std::string::npos) << bad.status().message();
  // A manifest whose bottleneck disagrees with the head's output.
  auto text = nlohmann::json::parse(std::ifstream(real / "manifest.json"));
  text["bottleneck"]["height"] = 5;
  auto wrong = ParseManifest(text.dump(), real);
  ASSERT_TRUE(wrong.ok());
  auto refused = SplitModel::Load(*wrong, {.head = true, .exit = false, .tail = false});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("head.onnx"), std::string::npos)
      << refused.status().message();
}

}  // namespace
}  // namespace deepcut::splitnet
