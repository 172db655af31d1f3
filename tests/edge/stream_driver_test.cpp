// The run loop (edge/stream_driver.h) on a virtual clock: each pacing, frame
// counts, unreadable items, and one answer per frame that enters.
#include "edge/stream_driver.h"

#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <set>

#include "support/scripted.h"

namespace deepcut::edge {
namespace {

using test_support::OkReply;
using test_support::ScriptedLink;

// Frames with the given capture offsets (-1: none); an empty Mat is unreadable.
class ListSource final : public trace::FrameSource {
 public:
  explicit ListSource(std::vector<TimeUs> offsets, std::set<int> unreadable = {})
      : offsets_(std::move(offsets)), unreadable_(std::move(unreadable)) {}
  Result<std::optional<trace::SourceFrame>> Next() override {
    if (next_ >= offsets_.size()) return std::optional<trace::SourceFrame>();
    const int i = static_cast<int>(next_++);
    if (unreadable_.count(i)) return DataLoss("item " + std::to_string(i) + " is corrupt");
    trace::SourceFrame f;
    f.index = i;
    f.label = i % 10;
    f.capture_offset_us = offsets_[i];
    f.image = cv::Mat(28, 28, CV_8UC1, cv::Scalar(i * 13 % 255));
    return std::optional<trace::SourceFrame>(std::move(f));
  }
  std::int64_t Remaining() const override {
    return static_cast<std::int64_t>(offsets_.size() - next_);
  }

 private:
  std::vector<TimeUs> offsets_;
  std::set<int> unreadable_;
  size_t next_ = 0;
};

class StreamDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = splitnet::LoadManifest(test_support::ModelDir());
    ASSERT_TRUE(m.ok());
    manifest_ = *m;
    model_ = std::move(splitnet::SplitModel::Load(manifest_, {.tail = false})).value();
    policy_ = std::move(scheduler::MakePolicy({.name = "always"})).value();
  }
  // Runs `source` through a runtime whose cloud answers after 5 ms.
  Result<StreamResult> Run(trace::FrameSource& source, StreamOptions options) {
    ScriptedLink link(clock_, 5'000, [](const transport::Request& r) { return OkReply(r, 1); });
    ASSIGN_OR_RETURN(auto runtime,
                     EdgeRuntime::Create({.deadline_ms = 100}, *model_, *policy_, link, clock_,
                                         [&](const Answer& a) { answers_.push_back(a); }));
    return RunStream(source, *runtime, clock_, options, nullptr);
  }
  splitnet::Manifest manifest_;
  std::unique_ptr<splitnet::SplitModel> model_;
  std::unique_ptr<scheduler::OffloadPolicy> policy_;
  VirtualClock clock_{1'000'000};
  std::vector<Answer> answers_;
};

TEST_F(StreamDriverTest, CaptureTimesPaceFramesFromTheRunsStart) {
  // Recorded at 5, 5.25, 5.5, 7 s: processed 0, 0.25, 0.5 and 2 s after the start.
  ListSource source({5'000'000, 5'250'000, 5'500'000, 7'000'000});
  auto run = Run(source, {.capture_times = true});
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->frames_in, 4);
  ASSERT_EQ(answers_.size(), 4u);
  const TimeUs start = 1'000'000;
  EXPECT_EQ(answers_[0].capture_us, start);
  EXPECT_EQ(answers_[1].capture_us, start + 250'000);
  EXPECT_EQ(answers_[2].capture_us, start + 500'000);
  EXPECT_EQ(answers_[3].capture_us, start + 2'000'000);
  for (const Answer& a : answers_) {
    EXPECT_EQ(a.route, Route::kCloud);
    EXPECT_EQ(a.LatencyUs(), 5'000);  // the scripted cloud's delay, exactly
  }
}

TEST_F(StreamDriverTest, FramesWithoutCaptureTimesComeAtTenPerSecond) {
  ListSource source({-1, -1, -1});
  ASSERT_TRUE(Run(source, {.capture_times = true}).ok());
  ASSERT_EQ(answers_.size(), 3u);
  EXPECT_EQ(answers_[2].capture_us - answers_[0].capture_us, 200'000);
}

TEST_F(StreamDriverTest, FixedRatePacingAndFrameCount) {
  ListSource source(std::vector<TimeUs>(50, -1));
  auto run = Run(source, {.fps = 20, .max_frames = 10});
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->frames_in, 10);
  ASSERT_EQ(answers_.size(), 10u);
  for (size_t i = 1; i < answers_.size(); ++i)
    EXPECT_EQ(answers_[i].capture_us - answers_[i - 1].capture_us, 50'000);
}

TEST_F(StreamDriverTest, AsFastAsPossibleWaitsForTheWindowAndAnswersEveryFrame) {
  ListSource source(std::vector<TimeUs>(40, -1));
  auto run = Run(source, {});
  ASSERT_TRUE(run.ok());
  ASSERT_EQ(answers_.size(), 40u);
  std::set<std::int64_t> ids;
  for (const Answer& a : answers_) {
    ids.insert(a.frame_id);
    EXPECT_EQ(a.route, Route::kCloud) << "the window was full: the loop did not wait";
  }
  EXPECT_EQ(ids.size(), 40u);
}

TEST_F(StreamDriverTest, UnreadableItemsAreSkippedOrEndTheRun) {
  ListSource skipping({0, 100'000, 200'000, 300'000}, {1});
  auto run = Run(skipping, {.capture_times = true});
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->frames_in, 3);
  EXPECT_EQ(run->frames_skipped, 1);
  EXPECT_EQ(answers_.size(), 3u);

  answers_.clear();
  ListSource strict({0, 100'000, 200'000}, {1});
  auto failed = Run(strict, {.capture_times = true, .skip_unreadable = false});
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("item 1 is corrupt"), std::string::npos);
  EXPECT_EQ(answers_.size(), 1u);  // the frame before was answered, nothing is left pending
}

}  // namespace
}  // namespace deepcut::edge
