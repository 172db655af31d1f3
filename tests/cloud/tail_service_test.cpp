// The tail service without sockets (cloud/tail_service.h): what deepcut-cloud
// and the replay's in-process cloud both decide.
#include "cloud/tail_service.h"

#include <gtest/gtest.h>

#include "support/scripted.h"

namespace deepcut::cloud {
namespace {

class TailServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = splitnet::LoadManifest(test_support::ModelDir());
    ASSERT_TRUE(m.ok());
    manifest_ = *m;
  }
  transport::Request Request(std::uint16_t seq, float value = 0.5f) {
    std::vector<float> z(manifest_.bottleneck.Elements(), value);
    const int r = manifest_.default_rate_index;
    auto encoded = codec_.Encode(z, manifest_.bottleneck, manifest_.rates[r]);
    return {.seq = seq,
            .model = transport::ModelTag(manifest_.fingerprint),
            .rate_index = r,
            .deadline_ms = 100,
            .coding = static_cast<int>(encoded->coding),
            .payload = encoded->payload};
  }
  splitnet::Manifest manifest_;
  splitnet::FeatureCodec codec_;
};

TEST_F(TailServiceTest, CheckRefusesWithTheKindAndTheSeq) {
  TailService service(manifest_, {});
  auto good = service.Check(transport::EncodeRequest(Request(5)));
  ASSERT_TRUE(std::holds_alternative<transport::Request>(good));
  auto wrong_model = Request(6);
  wrong_model.model ^= 1;
  auto refused = std::get<Refusal>(service.Check(transport::EncodeRequest(wrong_model)));
  EXPECT_STREQ(refused.kind, "model");
  EXPECT_EQ(refused.reply.seq, 6);
  EXPECT_EQ(refused.reply.status, transport::ReplyStatus::kError);
  auto garbage = std::get<Refusal>(service.Check(std::vector<std::uint8_t>{0xc1}));
  EXPECT_STREQ(garbage.kind, "malformed");
  EXPECT_EQ(garbage.reply.seq, 0);
  auto frames = service.RefuseFrames(transport::EncodeRequest(Request(9)), 3);
  EXPECT_STREQ(frames.kind, "multipart");
  EXPECT_EQ(frames.reply.seq, 9);
  EXPECT_NE(frames.reply.message.find("had 3"), std::string::npos);
}

TEST_F(TailServiceTest, AdmissionShedsAFullQueueAndAHopelessWait) {
  TailService service(manifest_, {.max_queue = 4, .workers = 2});
  const auto r = Request(1);                                   // 100 ms to its deadline
  EXPECT_FALSE(service.Admit(r, 0, 0, 0.0).has_value());       // nothing known yet: admitted
  EXPECT_FALSE(service.Admit(r, 0, 3, 10'000.0).has_value());  // 4 x 10 ms / 2 workers = 20 ms
  auto full = service.Admit(r, 0, 4, 0.0);
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->reply.status, transport::ReplyStatus::kBusy);
  EXPECT_EQ(full->reply.message, "queue full");
  auto hopeless = service.Admit(r, 0, 3, 60'000.0);  // 4 x 60 ms / 2 = 120 ms > 100 ms
  ASSERT_TRUE(hopeless.has_value());
  EXPECT_EQ(hopeless->reply.seq, 1);
  EXPECT_NE(hopeless->reply.message.find("outlast"), std::string::npos);
}

TEST_F(TailServiceTest, AWorkerServesABatchAndSkipsTheExpiredAndTheUndecodable) {
  auto worker = TailWorker::Create(manifest_);
  ASSERT_TRUE(worker.ok());
  std::vector<TailJob> jobs;
  jobs.push_back({Request(1, 0.2f), 0, 1'000'000});
  jobs.push_back({Request(2), 0, 10});  // due long ago
  auto broken = Request(3);
  broken.payload.back() ^= 0xff;  // fails its check byte (or its zstd frame)
  jobs.push_back({broken, 0, 1'000'000});
  jobs.push_back({Request(4, 0.8f), 0, 1'000'000});
  VirtualClock clock(1000);
  auto served = (*worker)->Serve(jobs, clock, 3);
  ASSERT_EQ(served.replies.size(), 4u);
  EXPECT_EQ(served.answered, 2);
  EXPECT_EQ(served.outcomes[0], Served::kAnswered);
  EXPECT_EQ(served.outcomes[1], Served::kExpired);
  EXPECT_EQ(served.outcomes[2], Served::kRejected);
  EXPECT_EQ(served.outcomes[3], Served::kAnswered);
  EXPECT_EQ(served.replies[1].status, transport::ReplyStatus::kBusy);
  EXPECT_EQ(served.replies[2].status, transport::ReplyStatus::kError);
  EXPECT_NE(served.replies[2].message.find("payload"), std::string::npos);
  for (int i : {0, 3}) {
    EXPECT_EQ(served.replies[i].seq, jobs[i].request.seq);
    EXPECT_EQ(served.replies[i].status, transport::ReplyStatus::kOk);
    EXPECT_EQ(served.replies[i].top.size(), 3u);
    EXPECT_EQ(served.replies[i].class_id, served.replies[i].top[0].class_id);
    EXPECT_EQ(served.replies[i].batch_size, 2);
  }
  EXPECT_EQ((*worker)->tail_runs(), 1);  // one tail run for the batch
}

TEST_F(TailServiceTest, AMemoisingWorkerRunsTheTailOncePerPayload) {
  auto worker = TailWorker::Create(manifest_, /*memoize=*/true);
  ASSERT_TRUE(worker.ok());
  VirtualClock clock(0);
  const TailJob job{Request(1), 0, 1'000'000};
  auto first = (*worker)->Serve(std::span(&job, 1), clock, 3);
  auto second = (*worker)->Serve(std::span(&job, 1), clock, 3);
  EXPECT_EQ((*worker)->tail_runs(), 1);
  EXPECT_EQ(first.replies[0].class_id, second.replies[0].class_id);
  EXPECT_EQ(second.outcomes[0], Served::kAnswered);
}

}  // namespace
}  // namespace deepcut::cloud
