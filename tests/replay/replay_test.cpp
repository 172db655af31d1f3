// The replay in virtual time: the simulated link and in-process cloud, the
// replayer's determinism, and the behaviours the real-time tests used to time
// on the wall clock — the live knob's budget keeping and a 10 s link outage —
// asserted here, where time is exact.
#include "replay/replay.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "edge/edge_runtime.h"
#include "support/scripted.h"
#include "trace/fashion_mnist.h"
#include "trace/frame_trace.h"
#include "trace/scene_maker.h"
#include "transport/protocol.h"

namespace deepcut::replay {
namespace {

namespace fs = std::filesystem;

// A scene trace of Fashion-MNIST test items (trace/scene_maker.h), made once per
// (frames, fps) in the temporary directory.
std::string SceneTrace(std::int64_t frames, double fps) {
  const fs::path path =
      fs::temp_directory_path() / ("deepcut-replay-test-" + std::to_string(frames) + "-" +
                                   std::to_string(static_cast<int>(fps)) + ".dctrace");
  if (fs::exists(path)) return path.string();
  auto items = trace::LoadFashionMnist(trace::kDefaultFashionMnistDir, "test");
  EXPECT_TRUE(items.ok()) << items.status().ToString();
  auto maker =
      trace::SceneMaker::Create(std::move(*items), {.frames = frames, .fps = fps, .seed = 7});
  EXPECT_TRUE(maker.ok());
  trace::FrameTraceHeader header;
  header.fps = fps;
  header.classes = (*maker)->items().classes;
  const std::string tmp = path.string() + ".part";
  auto writer = trace::FrameTraceWriter::Create(tmp, header);
  EXPECT_TRUE(writer.ok()) << writer.status().ToString();
  while (auto f = (*maker)->Next())
    EXPECT_TRUE((*writer)->Append(f->image, f->capture_us, f->label, f->scene_start).ok());
  EXPECT_TRUE((*writer)->Finish().ok());
  fs::rename(tmp, path);
  return path.string();
}

// A mahimahi trace: one 1500-byte opportunity every millisecond (12 Mbit/s),
// except for [gap_start_s, gap_end_s), over `length_s`.
std::string TraceWithGap(double length_s, double gap_start_s, double gap_end_s) {
  const fs::path path = fs::temp_directory_path() / "deepcut-replay-test-gap.up";
  std::ofstream out(path);
  for (int ms = 1; ms <= static_cast<int>(length_s * 1000); ++ms)
    if (ms < gap_start_s * 1000 || ms >= gap_end_s * 1000) out << ms << "\n";
  return path.string();
}

class ReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = splitnet::LoadManifest(test_support::ModelDir());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manifest_ = *m;
  }
  std::unique_ptr<Replayer> Make(ReplayOptions o) {
    auto r = Replayer::Create(manifest_, std::move(o));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  splitnet::Manifest manifest_;
};

// Same inputs, same answers: the clock is virtual, the link a model, the cloud
// a fixed service time and the policies seeded.
TEST_F(ReplayTest, TwoRunsOfOnePolicyGiveTheSameAnswers) {
  auto replayer =
      Make({.source = "trace:" + SceneTrace(600, 10), .uplink = "200k", .budget_bps = 4000});
  ASSERT_TRUE(replayer);
  for (const char* name : {"deepcut", "random", "framediff"}) {
    std::vector<Answer> first, second;
    auto p1 = scheduler::MakePolicy(replayer->PolicyOptionsFor(name));
    auto p2 = scheduler::MakePolicy(replayer->PolicyOptionsFor(name));
    ASSERT_TRUE(replayer->Run(**p1, &first).ok());
    ASSERT_TRUE(replayer->Run(**p2, &second).ok());
    ASSERT_EQ(first.size(), 600u) << name;
    ASSERT_EQ(first.size(), second.size()) << name;
    int offloaded = 0;
    for (size_t i = 0; i < first.size(); ++i) {
      const Answer &a = first[i], &b = second[i];
      EXPECT_TRUE(a.frame_id == b.frame_id && a.class_id == b.class_id && a.route == b.route &&
                  a.reason == b.reason && a.uplink_bytes == b.uplink_bytes &&
                  a.capture_us == b.capture_us && a.answer_us == b.answer_us)
          << name << " differs at frame " << a.frame_id;
      offloaded += a.offloaded;
    }
    EXPECT_GT(offloaded, 0) << name << " never offloaded: the test shows nothing";
  }
}

// The simulated link counts the real message bytes, both ways, and the
// in-process cloud answers through the real tail service.
TEST_F(ReplayTest, SimulatedLinkCountsWireBytesAndTheCloudAnswersAsTheRealOne) {
  auto cloud = InProcessCloud::Create(manifest_, 2.0);
  ASSERT_TRUE(cloud.ok());
  VirtualClock clock(0);
  // 12 Mbit/s: a 1500-byte opportunity every millisecond.
  auto up = network::FixedRate(12e6), down = network::FixedRate(12e6);
  SimulatedCloudLink link(clock, **cloud, *up, *down,
                          {.uplink = {.delay_ms = 10}, .downlink = {.delay_ms = 10}});
  splitnet::FeatureCodec codec;
  std::vector<float> z(manifest_.bottleneck.Elements(), 0.5f);
  auto encoded = codec.Encode(z, manifest_.bottleneck, manifest_.rates[0]);
  auto request = edge::OffloadRequest(manifest_, 0, *encoded, 1000);
  request.seq = 7;
  const auto bytes = transport::EncodeRequest(request);
  ASSERT_TRUE(link.Send(bytes).ok());
  EXPECT_EQ(link.uplink_bytes(),
            static_cast<std::int64_t>(transport::ZmtpFrameBytes(bytes.size())));
  auto reply_bytes = link.Receive(1'000'000);
  ASSERT_TRUE(reply_bytes.has_value());
  // 10 ms up, 2 ms in the cloud, 10 ms down, and up to 1 ms each way for an opportunity.
  EXPECT_GE(clock.NowUs(), 22'000);
  EXPECT_LE(clock.NowUs(), 24'000);
  auto reply = transport::DecodeReply(*reply_bytes);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->seq, 7);
  EXPECT_EQ(reply->status, transport::ReplyStatus::kOk);
  EXPECT_EQ(reply->tail_us, 2000);
  EXPECT_GT(link.downlink_bytes(), 0);
  // A bad request gets the real cloud's error, with its seq.
  auto bad = request;
  bad.model ^= 1;
  bad.seq = 8;
  ASSERT_TRUE(link.Send(transport::EncodeRequest(bad)).ok());
  auto error = transport::DecodeReply(*link.Receive(2'000'000));
  ASSERT_TRUE(error.ok());
  EXPECT_EQ(error->seq, 8);
  EXPECT_EQ(error->status, transport::ReplyStatus::kError);
  // A reconnect drops what is on its way.
  ASSERT_TRUE(link.Send(bytes).ok());
  link.Reconnect();
  EXPECT_FALSE(link.Receive(3'000'000).has_value());
}

// The knob, as e2e_knob used to check in real time: in the 10 s after each
// change, the random policy's uplink stays within 10% of the new budget.
TEST_F(ReplayTest, TheKnobsBudgetIsKeptInTheTenSecondsAfterEachChange) {
  const std::vector<std::pair<double, double>> changes = {{30.0, 2000.0}, {60.0, 5000.0}};
  auto replayer = Make({.source = "trace:" + SceneTrace(2700, 30),
                        .uplink = "2M",
                        .budget_bps = 4000,
                        .budget_changes = changes});
  ASSERT_TRUE(replayer);
  std::vector<Answer> answers;
  auto policy = scheduler::MakePolicy(replayer->PolicyOptionsFor("random"));
  ASSERT_TRUE(replayer->Run(**policy, &answers).ok());
  ASSERT_EQ(answers.size(), 2700u);
  for (const auto& [at_s, budget_bps] : changes) {
    std::int64_t bytes = 0;
    for (const Answer& a : answers)
      if (a.capture_us >= at_s * 1e6 && a.capture_us < (at_s + 10) * 1e6) bytes += a.uplink_bytes;
    const double ratio = bytes * 8.0 / 10.0 / budget_bps;
    EXPECT_GE(ratio, 0.9) << "after the change to " << budget_bps << " bit/s at " << at_s << " s";
    EXPECT_LE(ratio, 1.1) << "after the change to " << budget_bps << " bit/s at " << at_s << " s";
  }
}

// 10 s of zero capacity, as e2e_link_outage used to check in real time: every
// frame is answered once, no cloud answer comes for a frame captured in the
// outage, and the cloud answers again after it, for always-offload and DeepCut.
TEST_F(ReplayTest, ALinkOutageIsAnsweredLocallyAndTheCloudComesBack) {
  auto replayer = Make({.source = "trace:" + SceneTrace(600, 10),
                        .uplink = TraceWithGap(60.0, 20.0, 30.0),
                        .budget_bps = 0});
  ASSERT_TRUE(replayer);
  for (const char* name : {"always", "deepcut"}) {
    std::vector<Answer> answers;
    auto options = replayer->PolicyOptionsFor(name);
    if (std::string(name) == "deepcut") options.budget_bps = 20'000;
    auto policy = scheduler::MakePolicy(options);
    ASSERT_TRUE(replayer->Run(**policy, &answers).ok());
    ASSERT_EQ(answers.size(), 600u);
    std::set<std::int64_t> ids;
    int during = 0, cloud_during = 0, after = 0, cloud_after = 0;
    for (const Answer& a : answers) {
      ids.insert(a.frame_id);
      EXPECT_LE(a.answer_us, a.deadline_us) << name << " frame " << a.frame_id;
      const double t = a.capture_us / 1e6;
      if (t >= 20.0 && t < 30.0) {
        ++during;
        cloud_during += a.route == Route::kCloud;
      } else if (t >= 32.0) {
        ++after;
        cloud_after += a.route == Route::kCloud;
      }
    }
    EXPECT_EQ(ids.size(), 600u) << name << ": a frame was answered twice or never";
    EXPECT_EQ(cloud_during, 0) << name;
    EXPECT_GT(during, 90) << name;
    if (std::string(name) == "always")
      EXPECT_GE(cloud_after, after * 0.95) << name << " did not go back to the cloud";
    else
      EXPECT_GT(cloud_after, 0) << name << " never went back to the cloud";
  }
}

}  // namespace
}  // namespace deepcut::replay
