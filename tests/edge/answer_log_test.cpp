#include "edge/answer_log.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace deepcut::edge {
namespace {

namespace fs = std::filesystem;

Answer Make(std::int64_t id, int label, int cls, Route route, bool offloaded, TimeUs latency,
            std::int64_t bytes) {
  Answer a;
  a.frame_id = id;
  a.label = label;
  a.class_id = cls;
  a.route = route;
  a.offloaded = offloaded;
  a.rate = offloaded ? "4b" : "";
  a.uplink_bytes = bytes;
  a.capture_us = 1000 + id * 500'000;  // 2 frames/s
  a.answer_us = a.capture_us + latency;
  a.deadline_us = a.capture_us + 100'000;
  if (offloaded && route == Route::kLocal) a.reason = Reason::kDeadlineMissed;
  return a;
}

TEST(AnswerLog, SummaryCountsWhatWasRecorded) {
  const fs::path dir = fs::temp_directory_path() / "deepcut-answer-log-test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string jsonl = (dir / "answers.jsonl").string(), summary = (dir / "s.json").string();
  {
    auto log = AnswerLog::Create({.jsonl_path = jsonl, .summary_path = summary}, {"a", "b", "c"});
    ASSERT_TRUE(log.ok());
    (*log)->Record(Make(0, 1, 1, Route::kCloud, true, 10'000, 100));   // correct
    (*log)->Record(Make(1, 1, 2, Route::kLocal, false, 1'000, 0));     // wrong
    (*log)->Record(Make(2, 0, 0, Route::kLocal, true, 100'000, 120));  // fallback, correct
    (*log)->Record(Make(3, 2, 2, Route::kCloud, true, 20'000, 80));    // correct
    EXPECT_EQ((*log)->answered(), 4);
    EXPECT_EQ((*log)->duplicates(), 0);
    auto s = (*log)->Summary(4, 2.0, {{"policy", "always"}});
    EXPECT_EQ(s["frames"], 4);
    EXPECT_EQ(s["answered"], 4);
    EXPECT_DOUBLE_EQ(s["accuracy"].get<double>(), 0.75);
    EXPECT_EQ(s["uplink_bytes"], 300);
    EXPECT_DOUBLE_EQ(s["offload_fraction"].get<double>(), 0.75);
    EXPECT_DOUBLE_EQ(s["deadline_hit_ratio"].get<double>(), 2.0 / 3.0);
    // Four frames 0.5 s apart cover 2 s (core/run_summary.h).
    EXPECT_DOUBLE_EQ(s["duration_s"].get<double>(), 2.0);
    EXPECT_DOUBLE_EQ(s["uplink_bps"].get<double>(), 8.0 * 300 / 2.0);
    EXPECT_DOUBLE_EQ(s["latency_ms"]["p50"].get<double>(), 10.0);  // nearest rank
    EXPECT_DOUBLE_EQ(s["latency_ms"]["p99"].get<double>(), 100.0);
    EXPECT_EQ(s["routes"]["cloud"], 2);
    EXPECT_EQ(s["reasons"]["deadline-missed"], 1);
    EXPECT_EQ(s["policy"], "always");
    // Nothing final is visible before Finish.
    EXPECT_FALSE(fs::exists(jsonl));
    ASSERT_TRUE((*log)->Finish(s).ok());
    EXPECT_NE(AnswerLog::SummaryTable(s).find("75.00 %"), std::string::npos);
  }
  std::ifstream in(jsonl);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("frame") && j.contains("route") && j.contains("bytes_sent") &&
                j.contains("latency_ms") && j.contains("answer"));
    ++lines;
  }
  EXPECT_EQ(lines, 4);
  EXPECT_TRUE(fs::exists(summary));
  EXPECT_FALSE(fs::exists(jsonl + ".tmp"));
  fs::remove_all(dir);
}

TEST(AnswerLog, DuplicateAnswersAreCountedAndAbandonedRunsLeaveNoFile) {
  const fs::path dir = fs::temp_directory_path() / "deepcut-answer-log-test2";
  fs::create_directories(dir);
  const std::string jsonl = (dir / "a.jsonl").string();
  {
    auto log = AnswerLog::Create({.jsonl_path = jsonl}, {"a", "b"});
    ASSERT_TRUE(log.ok());
    (*log)->Record(Make(5, -1, 1, Route::kLocal, false, 1, 0));
    (*log)->Record(Make(5, -1, 1, Route::kLocal, false, 1, 0));
    EXPECT_EQ((*log)->duplicates(), 1);
    auto s = (*log)->Summary(1, 1.0, {});
    EXPECT_TRUE(s["accuracy"].is_null());  // no labels
  }                                        // no Finish: the run failed
  EXPECT_FALSE(fs::exists(jsonl));
  EXPECT_FALSE(fs::exists(jsonl + ".tmp"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace deepcut::edge
