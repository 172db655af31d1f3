// The edge's harvester: kept frames are committed by the writer thread; the
// upload is chunked, stop-and-wait, resent after a lost ack and resumed by a
// restarted edge where the acks left it, stored once at the cloud; through the
// replay (the real runtime in virtual time), every committed frame reaches the
// cloud's store once and the edge's store is emptied by the acks.
#include "harvest/harvester.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "harvest/sink.h"
#include "replay/replay.h"
#include "scheduler/policy.h"
#include "support/scripted.h"

namespace deepcut::harvest {
namespace {
namespace fs = std::filesystem;

class HarvesterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("deepcut-harvester-test-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto m = splitnet::LoadManifest(test_support::ModelDir());
    ASSERT_TRUE(m.ok());
    manifest_ = *m;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) { return (dir_ / name).string(); }
  HarvestFrame Frame(int i) {
    HarvestFrame f;
    f.frame_id = i;
    f.capture_us = i * 100'000;
    f.label = i % 10;
    f.image = cv::Mat(28, 28, CV_8UC1, cv::Scalar(i * 7 % 255));
    f.image.at<std::uint8_t>(i % 28, 3) = 255;
    f.features.assign(8 * 7 * 7, 0.01f * (i % 50));
    f.exit_scores.assign(10, 0.1f);
    f.exit_class = i % 10;
    f.exit_confidence = 0.1f;
    f.exit_error_rate = 0.9;
    return f;
  }
  HarvesterOptions Options(const std::string& db) {
    HarvesterOptions o;
    o.store_path = Path(db);
    o.sampler.kind = SamplerKind::kRandom;
    o.sampler.budget.frames_per_hour = 36000 * 10;  // everything the bucket allows
    o.sampler.budget.burst_s = 3600;
    o.chunk_bytes = 256;  // several chunks per item
    o.ack_timeout_ms = 1000;
    return o;
  }
  splitnet::Manifest manifest_;
  fs::path dir_;
};

// Sends every chunk the harvester hands out to `sink` and its ack back,
// `rounds` times at most; returns the chunks sent.
int Pump(Harvester& h, HarvestSink& sink, TimeUs& now, int rounds) {
  int sent = 0;
  for (int i = 0; i < rounds; ++i) {
    h.Flush();
    const auto* m = h.NextMessage(now);
    if (!m) {
      if (!h.UploadPending()) break;
      continue;
    }
    const std::vector<std::uint8_t> bytes = *m;
    h.Sent(now, static_cast<std::int64_t>(bytes.size()));
    ++sent;
    auto ack = sink.Receive(bytes);
    if (ack) h.OnAck(*ack);
    now += 1000;
  }
  return sent;
}

TEST_F(HarvesterTest, UploadsEveryCommittedFrameOnceThroughLostAcksAndARestart) {
  auto sink = HarvestSink::Open(Path("cloud.db"), manifest_);
  ASSERT_TRUE(sink.ok()) << sink.status().message();
  TimeUs now = 0;
  std::uint64_t edge = 0;
  {
    auto h = Harvester::Create(Options("edge.db"), manifest_);
    ASSERT_TRUE(h.ok()) << h.status().message();
    edge = (*h)->edge_id();
    int kept = 0;
    for (int i = 0; i < 40; ++i) kept += (*h)->Offer(Frame(i), now += 100'000);
    (*h)->Flush();
    ASSERT_GT(kept, 3);
    EXPECT_EQ((*h)->counters().committed, kept);
    // The first chunk goes out; its ack is lost. Nothing is due before the timeout...
    const auto* first = (*h)->NextMessage(now);
    ASSERT_NE(first, nullptr);
    const std::vector<std::uint8_t> lost = *first;
    (*h)->Sent(now, static_cast<std::int64_t>(lost.size()));
    ASSERT_TRUE((*sink)->Receive(lost).has_value());  // it arrived; the ack did not
    EXPECT_EQ((*h)->NextMessage(now + 500'000), nullptr);
    // ... then the same chunk again.
    const auto* again = (*h)->NextMessage(now + 1'100'000);
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(*again, lost);
    now += 1'100'000;
    // A few more chunks, then the edge stops mid-upload.
    Pump(**h, **sink, now, 7);
    (*h)->Close();
  }
  auto partial = (*sink)->store().All();
  const std::size_t stored_before_restart = partial->size();
  // Restarted on the same store: it resumes, and everything arrives once.
  auto h = Harvester::Create(Options("edge.db"), manifest_);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ((*h)->edge_id(), edge);
  const std::int64_t left = (*h)->totals().unsent;
  EXPECT_GT(left, 0);
  Pump(**h, **sink, now, 10000);
  EXPECT_FALSE((*h)->UploadPending());
  (*h)->Flush();
  EXPECT_EQ((*h)->totals().frames, 0);  // all acknowledged, all removed
  auto all = (*sink)->store().All();
  EXPECT_EQ(all->size(), stored_before_restart + left);
  std::set<std::uint64_t> items;
  for (const auto& r : *all) {
    EXPECT_EQ(r.edge, edge);
    EXPECT_TRUE(items.insert(r.item).second) << "item " << r.item << " twice";
    EXPECT_FALSE(r.image_png.empty());
    EXPECT_EQ(r.sampler, "random");
  }
}

TEST_F(HarvesterTest, WithoutUploadNothingIsSentAndAFullStoreCostsNoFrame) {
  auto o = Options("edge.db");
  o.upload = false;
  o.store_max_mb = 0.05;
  auto h = Harvester::Create(o, manifest_);
  ASSERT_TRUE(h.ok());
  for (int i = 0; i < 400; ++i) (*h)->Offer(Frame(i), i * 100'000);
  (*h)->Flush();
  EXPECT_EQ((*h)->NextMessage(1'000'000'000), nullptr);
  EXPECT_FALSE((*h)->UploadPending());
  const auto c = (*h)->counters();
  EXPECT_GT(c.committed, 0);
  EXPECT_GT(c.store_errors, 0);  // the cap acts as a full disk
  EXPECT_EQ(c.committed + c.store_errors + c.dropped, c.kept);
}

TEST_F(HarvesterTest, ThroughTheReplayEveryCommittedFrameReachesTheCloudOnce) {
  replay::ReplayOptions ro;
  ro.source = "fashion-mnist:test";
  ro.max_frames = 300;
  ro.uplink = "300k";
  ro.budget_bps = 100e3;
  auto replayer = replay::Replayer::Create(manifest_, ro);
  ASSERT_TRUE(replayer.ok()) << replayer.status().message();
  auto o = Options("edge.db");
  o.sampler.kind = SamplerKind::kHarvest;
  o.sampler.budget.frames_per_hour = 360;  // ~3 frames in 30 s, plus the bucket
  o.sampler.budget.burst_s = 100;
  o.chunk_bytes = 1024;
  auto h = Harvester::Create(o, manifest_);
  auto sink = HarvestSink::Open(Path("cloud.db"), manifest_);
  ASSERT_TRUE(h.ok() && sink.ok());
  (*replayer)->SetHarvest(h->get(), sink->get(), 600.0);
  auto policy = scheduler::MakePolicy((*replayer)->PolicyOptionsFor("deepcut"));
  ASSERT_TRUE(policy.ok());
  auto m = (*replayer)->Run(**policy, nullptr, true);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->summary.frames, 300);
  (*h)->Close();
  const auto c = (*h)->counters();
  EXPECT_GT(c.committed, 0);
  EXPECT_LE(c.committed, 3 + 10 + 1);
  EXPECT_EQ(c.items_uploaded, c.committed);
  EXPECT_EQ((*sink)->store().All()->size(), static_cast<std::size_t>(c.committed));
  EXPECT_EQ((*h)->totals().frames, 0);
  EXPECT_GT(c.upload_bytes, 0);
  // The knob holds offloads and uploads together: within the budget over the
  // run (plus one bucket), counting both.
  const double seconds = m->summary.duration_s;
  EXPECT_LE((m->summary.uplink_bytes + c.upload_bytes) * 8.0, 100e3 * (seconds + 2.0) * 1.05);
}

}  // namespace
}  // namespace deepcut::harvest
