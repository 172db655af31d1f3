// Network traces and the link model: parsing (and refusing) mahimahi files,
// looping, FIFO timing at the delivery opportunities, drops, outages.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "network/link_model.h"
#include "network/net_trace.h"

namespace deepcut::network {
namespace {

TEST(NetTrace, ParsesAndLoops) {
  auto t = ParseMahimahi("5\n5\n10\n20\n", "t");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->period_us, 20'000);
  ASSERT_EQ(t->opportunities_us.size(), 4u);
  EXPECT_EQ(t->OpportunityUs(0), 5'000);
  EXPECT_EQ(t->OpportunityUs(1), 5'000);
  EXPECT_EQ(t->OpportunityUs(4), 25'000);  // second loop
  EXPECT_EQ(t->OpportunityUs(7), 40'000);
  EXPECT_EQ(t->FirstAtOrAfter(0), 0);
  EXPECT_EQ(t->FirstAtOrAfter(5'001), 2);
  EXPECT_EQ(t->FirstAtOrAfter(20'001), 4);  // wraps into the next loop
  EXPECT_EQ(t->FirstAtOrAfter(45'000), 8);  // past the last of loop 1: loop 2
  // 4 packets per 20 ms = 200 packets/s * 12000 bit = 2.4 Mbit/s
  EXPECT_NEAR(t->MeanBps(), 2.4e6, 1.0);
}

TEST(NetTrace, RefusesMalformedFiles) {
  struct Case {
    const char* text;
    const char* expect;
  } cases[] = {
      {"", "empty"},
      {"\n\n", "empty"},
      {"1\nabc\n", ":2:"},
      {"1\n-4\n", ":2:"},
      {"10\n5\n", "backwards"},
      {"1.5\n", "whole number"},
      {"0\n0\n", "must be > 0"},
      {"99999999999999999999\n", "too large"},
  };
  for (const auto& c : cases) {
    auto t = ParseMahimahi(c.text, "bad.up");
    ASSERT_FALSE(t.ok()) << c.text;
    EXPECT_NE(t.status().message().find(c.expect), std::string::npos) << t.status().message();
    EXPECT_NE(t.status().message().find("bad.up"), std::string::npos);
  }
  EXPECT_FALSE(LoadMahimahi("/nonexistent/trace.up").ok());
}

TEST(NetTrace, FixedRateAndLinkSpecs) {
  auto t = FixedRate(12e6);  // one 1500-byte packet per ms
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->period_us, 1000);
  EXPECT_NEAR(t->MeanBps(), 12e6, 1.0);
  EXPECT_FALSE(FixedRate(0).ok());
  EXPECT_FALSE(FixedRate(-1).ok());
  auto spec = OpenLink("2M");
  ASSERT_TRUE(spec.ok());
  EXPECT_NEAR(spec->MeanBps(), 2e6, 2e6 * 0.01);
  auto bad = OpenLink("no-such-file-or-rate");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("neither"), std::string::npos);
  // A real file is read as a trace.
  const auto path = std::filesystem::temp_directory_path() / "deepcut_link_spec_test.up";
  { std::ofstream(path) << "1\n2\n3\n"; }
  auto file = OpenLink(path.string());
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->opportunities_us.size(), 3u);
  std::filesystem::remove(path);
}

TEST(LinkModel, SmallMessagesShareAnOpportunity) {
  auto trace = *ParseMahimahi("10\n20\n30\n40\n", "t");  // one opportunity each 10 ms
  LinkModel link(trace, {.delay_ms = 5, .queue_bytes = 100'000});
  // Three 500-byte messages at t=0 fit in the first opportunity (1500 B).
  EXPECT_EQ(*link.Send(0, 500), 15'000);
  EXPECT_EQ(*link.Send(0, 500), 15'000);
  EXPECT_EQ(*link.Send(0, 500), 15'000);
  // The fourth needs the next one.
  EXPECT_EQ(*link.Send(0, 500), 25'000);
}

TEST(LinkModel, LargeMessagesSpanOpportunitiesAndQueue) {
  auto trace = *ParseMahimahi("10\n20\n30\n40\n", "t");
  LinkModel link(trace, {.delay_ms = 0, .queue_bytes = 100'000});
  EXPECT_EQ(*link.Send(0, 4000), 30'000);  // 1500 + 1500 + 1000
  EXPECT_EQ(*link.Send(0, 500), 30'000);   // the rest of the third opportunity
  EXPECT_EQ(*link.Send(0, 1), 40'000);
  EXPECT_EQ(link.QueuedBytes(0), 4501);
  EXPECT_EQ(link.QueuedBytes(30'000), 1);
  EXPECT_EQ(link.QueuedBytes(40'000), 0);
}

TEST(LinkModel, IdleLinkWastesOpportunities) {
  auto trace = *ParseMahimahi("10\n20\n30\n40\n", "t");
  LinkModel link(trace, {.delay_ms = 0, .queue_bytes = 100'000});
  // Nothing queued until 25 ms: the opportunities at 10 and 20 ms are gone.
  EXPECT_EQ(*link.Send(25'000, 100), 30'000);
  // After the loop (period 40 ms) the trace starts over: 50 ms is the next.
  EXPECT_EQ(*link.Send(41'000, 100), 50'000);
}

TEST(LinkModel, OutageHoldsMessagesUntilCapacityReturns) {
  // Opportunities at 1..3 ms, then nothing until 1000 ms: a ~1 s outage.
  auto trace = *ParseMahimahi("1\n2\n3\n1000\n", "t");
  LinkModel link(trace, {.delay_ms = 10, .queue_bytes = 100'000});
  EXPECT_EQ(*link.Send(5'000, 100), 1'010'000);
}

TEST(LinkModel, DropTailWhenTheQueueIsFull) {
  auto trace = *ParseMahimahi("1000\n", "t");  // one packet per second
  LinkModel link(trace, {.delay_ms = 0, .queue_bytes = 3000});
  EXPECT_TRUE(link.Send(0, 1500).has_value());
  EXPECT_TRUE(link.Send(0, 1500).has_value());
  EXPECT_FALSE(link.Send(0, 100).has_value());
  EXPECT_EQ(link.dropped(), 1);
  // Once the first is delivered there is room again.
  EXPECT_TRUE(link.Send(1'000'000, 100).has_value());
}

TEST(LinkModel, ThroughputMatchesTheTrace) {
  auto trace = *FixedRate(1e6);
  LinkModel link(trace, {.delay_ms = 0, .queue_bytes = 1 << 30});
  TimeUs last = 0;
  for (int i = 0; i < 1000; ++i) last = *link.Send(0, 1000);  // 1 MB at t=0
  EXPECT_NEAR(last / 1e6, 8.0, 0.05);                         // 8 Mbit at 1 Mbit/s
}

}  // namespace
}  // namespace deepcut::network
