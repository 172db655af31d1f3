// Micro benchmarks: the per-frame pieces of the pipeline, each alone.
// Run: build/bench/deepcut_micro_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <opencv2/imgproc.hpp>
#include <random>

#include "scheduler/policy.h"
#include "splitnet/feature_codec.h"
#include "splitnet/split_model.h"
#include "transport/protocol.h"

namespace {

using namespace deepcut;

const splitnet::Manifest& Manifest() {
  static splitnet::Manifest m = [] {
    auto r = splitnet::LoadManifest(DEEPCUT_MODEL_DIR);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      std::exit(1);
    }
    return *r;
  }();
  return m;
}

splitnet::SplitModel& Model() {
  static auto model = std::move(splitnet::SplitModel::Load(Manifest())).value();
  return *model;
}

// Real features of a real-looking input, so zstd sees realistic statistics.
std::vector<float> Features() {
  static std::vector<float> z = [] {
    cv::Mat image(28, 28, CV_8UC1);
    cv::randu(image, 0, 255);
    cv::GaussianBlur(image, image, cv::Size(5, 5), 2.0);
    return *Model().RunHead(*Model().Preprocess(image));
  }();
  return z;
}

void BM_CodecEncode(benchmark::State& state) {
  const auto& rate = Manifest().rates[state.range(0)];
  splitnet::FeatureCodec codec;
  auto z = Features();
  size_t bytes = 0;
  for (auto _ : state) {
    auto e = codec.Encode(z, Manifest().bottleneck, rate);
    bytes = e->payload.size();
    benchmark::DoNotOptimize(e);
  }
  state.SetLabel(rate.name + " " + std::to_string(bytes) + " B");
}

void BM_CodecDecode(benchmark::State& state) {
  const auto& rate = Manifest().rates[state.range(0)];
  splitnet::FeatureCodec codec;
  auto e = *codec.Encode(Features(), Manifest().bottleneck, rate);
  for (auto _ : state)
    benchmark::DoNotOptimize(codec.Decode(e.coding, e.payload, Manifest().bottleneck, rate));
  state.SetLabel(rate.name);
}

void RateArgs(benchmark::internal::Benchmark* b) {
  for (size_t i = 0; i < Manifest().rates.size(); ++i) b->Arg(static_cast<int>(i));
}
BENCHMARK(BM_CodecEncode)->Apply(RateArgs);
BENCHMARK(BM_CodecDecode)->Apply(RateArgs);

transport::Request SampleRequest() {
  splitnet::FeatureCodec codec;
  auto e = *codec.Encode(Features(), Manifest().bottleneck,
                         Manifest().rates[Manifest().default_rate_index]);
  transport::Request r;
  r.seq = 12345;
  r.model = transport::ModelTag(Manifest().fingerprint);
  r.rate_index = Manifest().default_rate_index;
  r.deadline_ms = 200;
  r.coding = static_cast<int>(e.coding);
  r.payload = e.payload;
  return r;
}

void BM_MsgpackEncodeRequest(benchmark::State& state) {
  auto r = SampleRequest();
  for (auto _ : state) benchmark::DoNotOptimize(transport::EncodeRequest(r));
}
void BM_MsgpackDecodeRequest(benchmark::State& state) {
  auto bytes = transport::EncodeRequest(SampleRequest());
  for (auto _ : state) benchmark::DoNotOptimize(transport::DecodeRequest(bytes));
}
void BM_MsgpackEncodeDecodeReply(benchmark::State& state) {
  transport::Reply reply;
  reply.seq = 99;
  reply.class_id = 3;
  reply.top = {{3, 0.9f}, {1, 0.05f}, {2, 0.01f}};
  for (auto _ : state)
    benchmark::DoNotOptimize(transport::DecodeReply(transport::EncodeReply(reply)));
}
BENCHMARK(BM_MsgpackEncodeRequest);
BENCHMARK(BM_MsgpackDecodeRequest);
BENCHMARK(BM_MsgpackEncodeDecodeReply);

void BM_Preprocess(benchmark::State& state) {
  cv::Mat image(28, 28, CV_8UC1, cv::Scalar(100));
  for (auto _ : state) benchmark::DoNotOptimize(Model().Preprocess(image));
}
void BM_Head(benchmark::State& state) {
  cv::Mat image(28, 28, CV_8UC1, cv::Scalar(100));
  auto in = *Model().Preprocess(image);
  for (auto _ : state) benchmark::DoNotOptimize(Model().RunHead(in));
}
void BM_Exit(benchmark::State& state) {
  auto z = Features();
  for (auto _ : state) benchmark::DoNotOptimize(Model().RunExit(z));
}
void BM_Tail(benchmark::State& state) {
  std::vector<std::vector<float>> batch(state.range(0), Features());
  for (auto _ : state) benchmark::DoNotOptimize(Model().RunTail(batch));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Preprocess);
BENCHMARK(BM_Head);
BENCHMARK(BM_Exit);
BENCHMARK(BM_Tail)->Arg(1)->Arg(4)->Arg(16)->Arg(64);

// One decision with the real model's feature size and rates; the deepcut
// policy also learns from an answer every 10th frame (the scene detector and
// the estimator do their work).
void BM_SchedulerDecision(benchmark::State& state) {
  static const char* kNames[] = {"edge-only", "always", "confidence", "framediff", "deepcut"};
  scheduler::PolicyOptions o;
  o.name = kNames[state.range(0)];
  o.budget_bps = 20'000;
  o.model.exit_accuracy = 0.88;
  auto policy = std::move(scheduler::MakePolicy(o)).value();
  const std::vector<float> features = Features();
  const std::vector<float> pixels(256, 0.5f);
  const std::vector<scheduler::RateInfo> rates(6, scheduler::RateInfo{90.0, 0.93});
  scheduler::DecisionContext c;
  c.max_in_flight = 8;
  c.features = features;
  c.pixels = pixels;
  c.rates = rates;
  c.default_rate_index = 3;
  std::uint64_t id = 0;
  for (auto _ : state) {
    c.frame_id++;
    c.now_us += 33'000;
    c.deadline_us = c.now_us + 200'000;
    c.exit_confidence = 0.5f + 0.5f * static_cast<float>(c.frame_id % 7) / 7.0f;
    c.exit_error_rate = 1.0f - c.exit_confidence;
    auto d = policy->Decide(c);
    benchmark::DoNotOptimize(d);
    if (d.action == scheduler::Action::kOffload) {
      policy->OnSent(++id, c.now_us, 90);
      scheduler::Feedback f{.request_id = id,
                            .frame_id = c.frame_id,
                            .now_us = c.now_us + 20'000,
                            .class_id = 1,
                            .features = features};
      policy->OnOutcome(f);
      c.has_cloud_answer = true;
    }
  }
  state.SetLabel(policy->name());
}
BENCHMARK(BM_SchedulerDecision)->DenseRange(0, 4);

}  // namespace

BENCHMARK_MAIN();
