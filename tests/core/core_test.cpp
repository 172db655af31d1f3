// core: the run summary (the one definition of the metrics), atomic file
// writes and output checks, bit rates.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/files.h"
#include "core/run_summary.h"
#include "core/units.h"

namespace deepcut {
namespace {

namespace fs = std::filesystem;

Answer At(std::int64_t id, TimeUs capture_us, TimeUs latency_us, Route route,
          std::int64_t bytes = 0) {
  Answer a;
  a.frame_id = id;
  a.label = 1;
  a.class_id = route == Route::kLocal ? 0 : 1;
  a.route = route;
  a.offloaded = bytes > 0;
  a.rate = a.offloaded ? "2b" : "";
  a.uplink_bytes = bytes;
  a.capture_us = capture_us;
  a.answer_us = capture_us + latency_us;
  a.deadline_us = capture_us + 100'000;
  return a;
}

TEST(NearestRankPercentile, IsTheSmallestValueWithPPercentAtOrBelow) {
  std::vector<double> v{5, 1, 4, 2, 3};
  EXPECT_EQ(NearestRankPercentile(v, 50), 3);
  EXPECT_EQ(NearestRankPercentile(v, 20), 1);
  EXPECT_EQ(NearestRankPercentile(v, 21), 2);
  EXPECT_EQ(NearestRankPercentile(v, 99), 5);
  EXPECT_EQ(NearestRankPercentile(v, 0), 1);
  EXPECT_EQ(NearestRankPercentile({}, 50), 0);
}

TEST(RunSummary, CountsRoutesBytesDeadlinesAndDuration) {
  RunSummaryBuilder b;
  // 10 frames at 10 frames/s: 1 s; two offloads of 100 B, one late.
  for (int i = 0; i < 10; ++i) {
    const TimeUs t = i * 100'000;
    if (i == 2)
      b.Add(At(i, t, 20'000, Route::kCloud, 100));
    else if (i == 5)
      b.Add(At(i, t, 150'000, Route::kLocal, 100));  // its fallback came after the deadline
    else
      b.Add(At(i, t, 1'000, i % 2 ? Route::kReuse : Route::kLocal));
  }
  b.Add(At(3, 300'000, 1'000, Route::kLocal));  // a second answer for frame 3
  const RunSummary s = b.Build();
  EXPECT_EQ(s.frames, 10);
  EXPECT_EQ(s.duplicate_answers, 1);
  EXPECT_DOUBLE_EQ(s.duration_s, 1.0);
  EXPECT_EQ(s.uplink_bytes, 200);
  EXPECT_DOUBLE_EQ(s.UplinkBps(), 1600.0);
  EXPECT_DOUBLE_EQ(s.max_window_bps, 1600.0);  // a run shorter than 10 s: its whole length
  EXPECT_DOUBLE_EQ(s.OffloadFraction(), 0.2);
  EXPECT_DOUBLE_EQ(s.DeadlineHitRatio(), 0.5);
  EXPECT_DOUBLE_EQ(s.AnsweredByDeadline(), 0.9);
  EXPECT_EQ(s.cloud_in_time + s.reused + s.local, 10);
  EXPECT_EQ(s.p50_ms, 1.0);
  EXPECT_EQ(s.max_ms, 150.0);
  const auto j = s.ToJson();
  EXPECT_EQ(j["routes"]["cloud"], 1);
  EXPECT_EQ(j["rates"]["2b"], 2);
  EXPECT_TRUE(j.contains("latency_ms"));
  EXPECT_FALSE(s.ToJson(/*latency=*/false).contains("latency_ms"));
}

TEST(RunSummary, TheBusiestTenSecondsAreFound) {
  RunSummaryBuilder b;
  // 60 s at 1 frame/s; 1000 B a second for the first 10 s, then nothing.
  for (int i = 0; i < 60; ++i)
    b.Add(At(i, i * 1'000'000LL, 1'000, Route::kLocal, i < 10 ? 1000 : 0));
  const RunSummary s = b.Build();
  EXPECT_DOUBLE_EQ(s.duration_s, 60.0);
  EXPECT_DOUBLE_EQ(s.max_window_bps, 8000.0);
  EXPECT_NEAR(s.UplinkBps(), 10'000 * 8.0 / 60.0, 1e-9);
}

TEST(Files, WritesAtomicallyAndChecksOutputsBeforeWork) {
  const fs::path dir = fs::temp_directory_path() / "deepcut-core-files-test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "out.json").string();
  ASSERT_TRUE(WriteFileAtomically(path, "one\n").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "two\n").ok());
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "two\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1)
      << "a temporary file was left behind";
  EXPECT_TRUE(CheckWritableOutput(path).ok());
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  const Status missing = CheckWritableOutput((dir / "no" / "x.json").string());
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("does not exist"), std::string::npos) << missing.message();
  EXPECT_NE(CheckWritableOutput(dir.string()).message().find("is a directory"), std::string::npos);
  // /proc refuses new files even to root, whose permissions cannot be relied on.
  EXPECT_FALSE(CheckWritableOutput("/proc/deepcut-test").ok());
  EXPECT_FALSE(WriteFileAtomically("/proc/deepcut-test", "x").ok());
  fs::remove_all(dir);
}

TEST(ParseBitRate, Suffixes) {
  EXPECT_DOUBLE_EQ(*ParseBitRate("64000"), 64000.0);
  EXPECT_DOUBLE_EQ(*ParseBitRate("200k"), 200e3);
  EXPECT_DOUBLE_EQ(*ParseBitRate("1.5M"), 1.5e6);
  EXPECT_DOUBLE_EQ(*ParseBitRate("2G"), 2e9);
  EXPECT_DOUBLE_EQ(*ParseBitRate("500kbps"), 500e3);
  EXPECT_DOUBLE_EQ(*ParseBitRate("1.5Mbit/s"), 1.5e6);
  EXPECT_DOUBLE_EQ(*ParseBitRate("0"), 0.0);
  for (const char* bad : {"", "k", "abc", "1.5x", "-3", "1..5M", "nan", "inf"}) {
    auto r = ParseBitRate(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("not a bit rate"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace deepcut
