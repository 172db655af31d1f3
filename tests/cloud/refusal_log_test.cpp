// Issue 10, G: refusals are visible at the default log level (warn), rate-limited
// per kind, on a virtual clock.
#include "cloud/refusal_log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

namespace deepcut::cloud {
namespace {

class RefusalLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sink_ = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100);
    previous_ = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink_));
    spdlog::set_level(spdlog::level::info);  // the tools' default
  }
  void TearDown() override { spdlog::set_default_logger(previous_); }
  std::vector<std::string> Lines() { return sink_->last_formatted(); }

  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
  VirtualClock clock_;
};

TEST_F(RefusalLogTest, FirstRefusalOfEachKindIsLoggedAtWarnAtOnce) {
  RefusalLog log(clock_, 10.0);
  log.Note("multipart", "10.0.0.7", "a request must be one message frame; this message had 9");
  log.Note("oversize", "10.0.0.8", "request of 2097152 bytes exceeds the limit");
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("[warning]"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("10.0.0.7"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("had 9"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("oversize"), std::string::npos) << lines[1];
}

TEST_F(RefusalLogTest, ABurstIsOneLinePerPeriodWithItsCount) {
  RefusalLog log(clock_, 10.0);
  for (int i = 0; i < 1000; ++i) {
    log.Note("malformed", "10.0.0.9", "request is not valid msgpack: #" + std::to_string(i));
    clock_.AdvanceUs(1'000);  // 1000 refusals in 1 s
  }
  EXPECT_EQ(Lines().size(), 1u);  // the first; the rest wait for the period
  log.Flush();
  EXPECT_EQ(Lines().size(), 1u);
  clock_.AdvanceUs(10'000'000);
  log.Flush();  // the server's tick, after the burst stopped
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[1].find("999 more"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("#999"), std::string::npos) << lines[1];  // the latest reason
  EXPECT_EQ(log.total("malformed"), 1000);
  log.Flush();
  EXPECT_EQ(Lines().size(), 2u);  // nothing pending, nothing logged
}

}  // namespace
}  // namespace deepcut::cloud
