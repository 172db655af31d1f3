#include "replay/replay.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "edge/edge_runtime.h"
#include "edge/stream_driver.h"
#include "scheduler/oracle.h"
#include "trace/frame_source.h"

namespace deepcut::replay {

nlohmann::json Metrics::ToJson() const {
  nlohmann::json j = summary.ToJson(!hindsight);
  j["replay_wall_s"] = wall_s;
  j["hindsight"] = hindsight;
  return j;
}

Replayer::~Replayer() = default;

Result<std::unique_ptr<Replayer>> Replayer::Create(const splitnet::Manifest& manifest,
                                                   ReplayOptions options) {
  if (options.source.empty()) return InvalidArgument("no frames given (--source trace:FILE)");
  if (!(options.deadline_ms > 0)) return InvalidArgument("deadline must be > 0 ms");
  if (options.link.uplink.delay_ms < 0 || options.link.downlink.delay_ms < 0)
    return InvalidArgument("link delay must be >= 0 ms");
  if (options.link.uplink.queue_bytes < network::kPacketBytes)
    return InvalidArgument("link queue must hold at least one 1500-byte packet");
  std::unique_ptr<Replayer> r(new Replayer(manifest, std::move(options)));
  {
    auto up = network::OpenLink(r->options_.uplink);
    if (!up.ok()) return Status(up.status().code(), "uplink: " + up.status().message());
    r->uplink_ = std::move(up).value();
    auto down = network::OpenLink(r->options_.downlink);
    if (!down.ok()) return Status(down.status().code(), "downlink: " + down.status().message());
    r->downlink_ = std::move(down).value();
  }
  ASSIGN_OR_RETURN(r->edge_model_, splitnet::SplitModel::Load(
                                       manifest, {.head = true, .exit = true, .tail = false}));
  ASSIGN_OR_RETURN(r->cloud_, InProcessCloud::Create(manifest, r->options_.link.cloud_ms));
  if (!r->options_.learned) {
    // The package's network, if it has one; a broken file is an error.
    auto net = edge::LoadPolicyNet(manifest, "");
    if (net.ok())
      r->options_.learned = *net;
    else if (net.status().code() != StatusCode::kNotFound)
      return net.status();
  }
  // Open the source once now, so a bad file fails before any work.
  ASSIGN_OR_RETURN(auto source, trace::OpenSource({.spec = r->options_.source}));
  if (source->IsLive())
    return InvalidArgument(r->options_.source + " is live; a replay needs recorded frames");
  return r;
}

scheduler::PolicyOptions Replayer::PolicyOptionsFor(const std::string& name) const {
  scheduler::PolicyOptions p;
  p.name = name;
  p.budget_bps = options_.budget_bps;
  p.seed = options_.seed;
  p.model = edge::ModelFactsOf(manifest_);
  p.learned = options_.learned;
  return p;
}

Result<Metrics> Replayer::Run(scheduler::OffloadPolicy& policy, std::vector<Answer>* out,
                              bool fuse) {
  const auto wall_start = std::chrono::steady_clock::now();
  VirtualClock clock(0);
  SimulatedCloudLink link(clock, *cloud_, uplink_, downlink_, options_.link);
  RunSummaryBuilder summary;
  if (out) out->clear();
  edge::EdgeOptions eo;
  eo.deadline_ms = options_.deadline_ms;
  eo.guard_ms = options_.guard_ms;
  eo.max_in_flight = options_.max_in_flight;
  eo.rate = options_.rate;
  eo.fuse_scene = fuse;
  eo.fusion = options_.fusion;
  ASSIGN_OR_RETURN(auto runtime, edge::EdgeRuntime::Create(eo, *edge_model_, policy, link, clock,
                                                           [&](const Answer& a) {
                                                             summary.Add(a);
                                                             if (out) out->push_back(a);
                                                           }));
  ASSIGN_OR_RETURN(auto source, trace::OpenSource({.spec = options_.source}));
  runtime->SetHarvester(harvester_);
  cloud_->SetHarvestSink(sink_);
  // The same run loop as deepcut-edge, paced by the trace's capture times.
  size_t next_change = 0;
  auto knob = [&] {
    const auto& changes = options_.budget_changes;
    while (next_change < changes.size() &&
           clock.NowUs() >= static_cast<TimeUs>(changes[next_change].first * 1e6))
      runtime->SetBudget(changes[next_change++].second);
  };
  ASSIGN_OR_RETURN(auto run, edge::RunStream(*source, *runtime, clock,
                                             {.capture_times = true,
                                              .max_frames = options_.max_frames,
                                              .skip_unreadable = false},
                                             nullptr, knob));
  if (harvester_)
    runtime->FinishUploads(clock.NowUs() + static_cast<TimeUs>(harvest_finish_s_ * 1e6));
  cloud_->SetHarvestSink(nullptr);
  Metrics m;
  m.policy = policy.name();
  m.summary = summary.Build();
  if (m.summary.frames != run.frames_in || m.summary.duplicate_answers != 0)
    return Internal("replay lost answers: " + std::to_string(run.frames_in) + " frames, " +
                    std::to_string(m.summary.frames) + " answers, " +
                    std::to_string(m.summary.duplicate_answers) + " duplicates");
  duration_s_ = m.summary.duration_s;
  m.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return m;
}

Result<double> Replayer::DurationS() {
  if (duration_s_ >= 0) return duration_s_;
  RETURN_IF_ERROR(Precompute());
  return duration_s_;
}

// Every frame's exit answer, and the tail's answer and wire bytes at every
// rate, as the runtime would produce them (same codec, same messages).
Status Replayer::Precompute() {
  if (!facts_.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(auto tail, splitnet::SplitModel::Load(
                                  manifest_, {.head = false, .exit = false, .tail = true}));
  ASSIGN_OR_RETURN(auto source, trace::OpenSource({.spec = options_.source}));
  splitnet::FeatureCodec codec;
  TimeUs first_us = -1;
  std::int64_t n = 0;
  while (options_.max_frames < 0 || n < options_.max_frames) {
    ASSIGN_OR_RETURN(auto next, source->Next());
    if (!next) break;
    FrameFacts f;
    // As RunStream paces them: from the first frame's capture time, 10 fps without.
    const TimeUs offset_us =
        next->capture_offset_us >= 0 ? next->capture_offset_us : next->index * 100'000;
    if (first_us < 0) first_us = offset_us;
    f.capture_us = offset_us - first_us;
    f.label = next->label;
    ASSIGN_OR_RETURN(auto input, edge_model_->Preprocess(next->image));
    ASSIGN_OR_RETURN(f.features, edge_model_->RunHead(input));
    ASSIGN_OR_RETURN(auto exit, edge_model_->RunExit(f.features));
    f.exit_class = exit.class_id;
    f.exit_error = manifest_.ExitErrorRate(exit.confidence);
    f.exit_confidence = exit.confidence;
    f.item = facts_.empty() ? 0 : facts_.back().item + (next->scene_start ? 1 : 0);
    std::vector<std::vector<float>> decoded;
    ASSIGN_OR_RETURN(auto offloads,
                     edge::CodeEveryRate(manifest_, codec, f.features,
                                         static_cast<std::uint32_t>(options_.deadline_ms),
                                         transport::ZmtpFrameBytes));
    for (size_t r = 0; r < offloads.size(); ++r) {
      f.cloud_bytes.push_back(offloads[r].wire_bytes);
      const auto& enc = offloads[r].encoded;
      ASSIGN_OR_RETURN(auto back, codec.Decode(enc.coding, enc.payload, manifest_.bottleneck,
                                               manifest_.rates[r]));
      decoded.push_back(std::move(back));
    }
    ASSIGN_OR_RETURN(auto preds, tail->RunTail(decoded));
    for (const auto& p : preds) f.cloud_class.push_back(p.class_id);
    facts_.push_back(std::move(f));
    ++n;
  }
  if (facts_.empty()) return InvalidArgument(options_.source + ": no frames");
  RunSummaryBuilder span;
  for (const FrameFacts& f : facts_)
    span.Add(Answer{.frame_id = span.counts().frames, .capture_us = f.capture_us});
  duration_s_ = span.Build().duration_s;
  return Status::Ok();
}

int Replayer::DefaultRateIndex() const {
  return options_.rate.empty() ? manifest_.default_rate_index : manifest_.RateIndex(options_.rate);
}

scheduler::OracleInput Replayer::OracleFacts() const {
  scheduler::OracleInput in;
  in.frames = static_cast<int>(facts_.size());
  in.rates = static_cast<int>(manifest_.rates.size());
  for (const auto& f : facts_) {
    in.labels.push_back(f.label);
    in.local_class.push_back(f.exit_class);
    for (int r = 0; r < in.rates; ++r) {
      in.cloud_class.push_back(f.cloud_class[r]);
      in.bytes.push_back(f.cloud_bytes[r]);
    }
  }
  return in;
}

Result<std::pair<Metrics, std::vector<int>>> Replayer::Oracle(
    std::int64_t byte_budget, const scheduler::SceneDetector& scene) {
  const auto wall_start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(Precompute());
  const int n = static_cast<int>(facts_.size());
  for (const auto& f : facts_)
    if (f.label < 0)
      return InvalidArgument("the oracle needs labelled frames; " + options_.source +
                             " has unlabelled ones");
  scheduler::OracleInput in = OracleFacts();
  const int default_rate = DefaultRateIndex();
  const double cloud_accuracy =
      default_rate >= 0 && default_rate < static_cast<int>(manifest_.rate_accuracy.size())
          ? manifest_.rate_accuracy[default_rate]
          : 0.0;
  const double range = manifest_.bottleneck.max - manifest_.bottleneck.min;
  // The runtime's fallback rule, with the calibration the policy learned.
  std::vector<std::vector<float>> descriptors;
  for (const auto& f : facts_)
    descriptors.push_back(scheduler::SceneDescriptor(f.features, manifest_.bottleneck.channels));
  in.reuse = [&](int i, int j) {
    const double d = scheduler::SceneDistance(descriptors[i], descriptors[j], range);
    return scheduler::PreferReuse(
        facts_[i].exit_error, scene.ReuseProbability(d),
        scheduler::ExpectedCloudAccuracy(facts_[j].exit_error, cloud_accuracy,
                                         manifest_.exit_accuracy));
  };
  ASSIGN_OR_RETURN(auto plan, scheduler::SolveOracle(in, byte_budget));
  // The plan's answers, one per frame, through the same summary as a replay:
  // offloaded frames get the cloud's answer, the others the fallback rule's.
  RunSummaryBuilder summary;
  int last = -1;
  for (int i = 0; i < n; ++i) {
    const FrameFacts& f = facts_[i];
    Answer a{.frame_id = i, .label = f.label, .class_id = f.exit_class};
    a.capture_us = a.answer_us = a.deadline_us = f.capture_us;
    if (plan.rate[i] >= 0) {
      a.route = Route::kCloud;
      a.class_id = f.cloud_class[plan.rate[i]];
      a.offloaded = true;
      a.rate = manifest_.rates[plan.rate[i]].name;
      a.uplink_bytes = f.cloud_bytes[plan.rate[i]];
      last = i;
    } else if (last >= 0 && in.reuse(i, last)) {
      a.route = Route::kReuse;
      a.class_id = facts_[last].cloud_class[plan.rate[last]];
    }
    summary.Add(a);
  }
  Metrics m;
  m.policy = "oracle";
  m.hindsight = true;
  m.summary = summary.Build();
  if (m.summary.correct != plan.correct || m.summary.uplink_bytes != plan.bytes)
    return Internal("the oracle's plan does not add up to its own count");
  m.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return std::make_pair(m, plan.rate);
}

Result<std::vector<int>> Replayer::ExpectedOraclePlan(std::int64_t byte_budget) {
  RETURN_IF_ERROR(Precompute());
  const int n = static_cast<int>(facts_.size());
  const int rates = static_cast<int>(manifest_.rates.size());
  if (facts_.back().item == 0 && n > 1)
    return InvalidArgument("oracle-expected needs the items in view: " + options_.source +
                           " marks no scene starts (deepcut-trace make writes them)");
  const int default_rate = DefaultRateIndex();
  auto value = [](double p) {
    return static_cast<int>(std::lround(std::clamp(p, 0.0, 1.0) * scheduler::kValueScale));
  };
  scheduler::OracleInput in = OracleFacts();
  for (const auto& f : facts_) {
    in.local_value.push_back(value(1.0 - f.exit_error));
    in.item.push_back(f.item);
    for (int r = 0; r < rates; ++r) {
      // The tail's accuracy on frames like this one (its exit-confidence bin);
      // packages without it: the calibrated guess the policies use.
      double p = manifest_.CloudAccuracy(f.exit_confidence, r);
      if (p < 0)
        p = scheduler::ExpectedCloudAccuracy(
            f.exit_error,
            r < static_cast<int>(manifest_.rate_accuracy.size()) ? manifest_.rate_accuracy[r] : 0.0,
            manifest_.exit_accuracy);
      in.cloud_value.push_back(value(p));
    }
  }
  // Reuse an answer while the same item is in view and it is worth more than the exit's.
  in.reuse = [&](int i, int j) {
    return in.item[i] == in.item[j] && in.cloud_value[j * rates + default_rate] > in.local_value[i];
  };
  ASSIGN_OR_RETURN(auto plan, scheduler::SolveOracle(in, byte_budget));
  return plan.rate;
}

}  // namespace deepcut::replay
