// Camera profiles: the parser refuses what is wrong by name; the steps do what
// they say on small images; the shipped profile sets parse; the delivered
// answer's threshold interpolates the calibration bins.
#include "eval/camera_profile.h"

#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include "eval/instability.h"

namespace deepcut::eval {
namespace {

nlohmann::json Doc(nlohmann::json steps) {
  return {{"format", "deepcut-profiles/1"},
          {"profiles", {{{"name", "p"}, {"steps", std::move(steps)}}}}};
}

Status ParseError(nlohmann::json steps) {
  auto r = ParseProfiles(Doc(std::move(steps)), "test.json");
  return r.ok() ? Status::Ok() : r.status();
}

TEST(CameraProfile, ParsesEveryStep) {
  auto r =
      ParseProfiles(Doc({{{"op", "gain"}, {"value", 1.2}},
                         {{"op", "channel_gain"}, {"b", 0.9}, {"g", 1.0}, {"r", 1.1}},
                         {{"op", "gamma"}, {"value", 0.8}},
                         {{"op", "gaussian_noise"}, {"sigma", 3}},
                         {{"op", "shot_noise"}, {"scale", 1}},
                         {{"op", "blur"}, {"sigma", 0.7}},
                         {{"op", "sharpen"}, {"amount", 0.5}, {"sigma", 1}},
                         {{"op", "resize"}, {"scale", 0.5}, {"down", "nearest"}, {"up", "cubic"}},
                         {{"op", "jpeg"}, {"quality", 80}},
                         {{"op", "webp"}, {"quality", 70}}}),
                    "t");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].steps.size(), 10u);
  EXPECT_EQ((*r)[0].steps[7].down, "nearest");
  EXPECT_EQ((*r)[0].steps[2].values, std::vector<double>{0.8});
}

TEST(CameraProfile, RefusesWhatIsWrongByName) {
  Status s = ParseError({{{"op", "vignette"}, {"value", 1}}});
  EXPECT_NE(s.message().find("unknown step \"vignette\""), std::string::npos) << s.message();
  s = ParseError({{{"op", "jpeg"}, {"quality", 101}}});
  EXPECT_NE(s.message().find("quality = 101 is out of range [1, 100]"), std::string::npos)
      << s.message();
  s = ParseError({{{"op", "gain"}, {"value", 0}}});
  EXPECT_NE(s.message().find("out of range (0, 8]"), std::string::npos) << s.message();
  s = ParseError({{{"op", "gamma"}}});
  EXPECT_NE(s.message().find("needs a number \"value\""), std::string::npos) << s.message();
  s = ParseError({{{"op", "blur"}, {"sigma", 1}, {"radius", 2}}});
  EXPECT_NE(s.message().find("unknown parameter \"radius\""), std::string::npos) << s.message();
  s = ParseError({{{"op", "jpeg"}, {"quality", 50.5}}});
  EXPECT_NE(s.message().find("must be an integer"), std::string::npos) << s.message();
  s = ParseError({{{"op", "resize"}, {"scale", 0.5}, {"down", "bilinear"}}});
  EXPECT_NE(s.message().find("is not one of"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("test.json: profile 0 (p), step 0"), std::string::npos);

  auto r = ParseProfiles({{"format", "other"}}, "x.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("deepcut-profiles/1"), std::string::npos);
  nlohmann::json twice = {{"format", "deepcut-profiles/1"},
                          {"profiles",
                           {{{"name", "a"}, {"steps", nlohmann::json::array()}},
                            {{"name", "a"}, {"steps", nlohmann::json::array()}}}}};
  r = ParseProfiles(twice, "x.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("used twice"), std::string::npos);
  EXPECT_EQ(LoadProfiles("/no/such/file.json").status().code(), StatusCode::kNotFound);
}

Profile One(nlohmann::json step) { return (*ParseProfiles(Doc({std::move(step)}), "t"))[0]; }

TEST(CameraProfile, StepsDoWhatTheySay) {
  cv::Mat gray(8, 8, CV_8UC1, cv::Scalar(100));
  auto out = ApplyProfile(One({{"op", "gain"}, {"value", 2.0}}), gray, 1);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->type(), CV_8UC3);
  EXPECT_EQ(out->at<cv::Vec3b>(3, 3), cv::Vec3b(200, 200, 200));
  out = ApplyProfile(One({{"op", "gain"}, {"value", 3.0}}), gray, 1);
  EXPECT_EQ(out->at<cv::Vec3b>(0, 0), cv::Vec3b(255, 255, 255));  // saturates
  out = ApplyProfile(One({{"op", "channel_gain"}, {"b", 0.5}, {"g", 1.0}, {"r", 1.5}}), gray, 1);
  EXPECT_EQ(out->at<cv::Vec3b>(1, 1), cv::Vec3b(50, 100, 150));
  out = ApplyProfile(One({{"op", "gamma"}, {"value", 2.0}}), gray, 1);
  EXPECT_EQ(out->at<cv::Vec3b>(1, 1)[0], 39);  // 255 * (100/255)^2 = 39.2
  out = ApplyProfile(One({{"op", "resize"}, {"scale", 0.5}}), gray, 1);
  EXPECT_EQ(out->size(), gray.size());
  EXPECT_EQ(out->at<cv::Vec3b>(4, 4)[1], 100);  // a flat image stays flat

  // Noise is reproducible per seed, and another seed draws other noise.
  const Profile noisy = One({{"op", "gaussian_noise"}, {"sigma", 10}});
  auto a = ApplyProfile(noisy, gray, 7), b = ApplyProfile(noisy, gray, 7),
       c = ApplyProfile(noisy, gray, 8);
  EXPECT_EQ(cv::norm(*a, *b, cv::NORM_L1), 0.0);
  EXPECT_GT(cv::norm(*a, *c, cv::NORM_L1), 0.0);
  EXPECT_GT(cv::norm(*a, cv::Mat(8, 8, CV_8UC3, cv::Scalar::all(100)), cv::NORM_L1), 0.0);
  // Shot noise grows with the signal: none on black.
  cv::Mat black(8, 8, CV_8UC1, cv::Scalar(0));
  out = ApplyProfile(One({{"op", "shot_noise"}, {"scale", 4}}), black, 3);
  EXPECT_EQ(cv::countNonZero(out->reshape(1)), 0);
  // JPEG changes a textured image, deterministically.
  cv::Mat tex(16, 16, CV_8UC1);
  cv::randu(tex, 0, 255);
  auto j1 = ApplyProfile(One({{"op", "jpeg"}, {"quality", 30}}), tex, 1);
  auto j2 = ApplyProfile(One({{"op", "jpeg"}, {"quality", 30}}), tex, 2);
  EXPECT_EQ(cv::norm(*j1, *j2, cv::NORM_L1), 0.0);
  cv::Mat tex3;
  cv::cvtColor(tex, tex3, cv::COLOR_GRAY2BGR);
  EXPECT_GT(cv::norm(*j1, tex3, cv::NORM_L1), 0.0);
  EXPECT_FALSE(ApplyProfile(noisy, cv::Mat(), 1).ok());
}

TEST(CameraProfile, ShippedSetsParse) {
  for (const char* file : {"phones.json", "heldout.json"}) {
    auto r = LoadProfiles(std::string(DEEPCUT_SOURCE_DIR) + "/eval/profiles/" + file);
    ASSERT_TRUE(r.ok()) << file << ": " << r.status().ToString();
    EXPECT_GE(r->size(), 6u) << file;
  }
}

TEST(Instability, OffloadThresholdInterpolatesTheBins) {
  const std::vector<float> max{0.5f, 0.8f, 1.0f};
  const std::vector<int> count{100, 100, 200};
  EXPECT_DOUBLE_EQ(OffloadThreshold(max, count, 0.0), 0.0);
  EXPECT_DOUBLE_EQ(OffloadThreshold(max, count, 0.25), 0.5);
  EXPECT_NEAR(OffloadThreshold(max, count, 0.375), 0.65, 1e-6);  // float bin edges
  EXPECT_DOUBLE_EQ(OffloadThreshold(max, count, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(OffloadThreshold({}, {}, 0.5), 0.0);
}

}  // namespace
}  // namespace deepcut::eval
