#include "replay/replay.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "edge/edge_runtime.h"
#include "scheduler/oracle.h"
#include "trace/frame_source.h"

namespace deepcut::replay {

namespace {

constexpr TimeUs kDefaultFrameIntervalUs = 100'000;  // traces without capture times: 10 fps
constexpr double kWindowS = 10.0;

// A frame's capture time from the trace's first frame (`first_us` starts
// at -1); traces without capture times are taken at 10 fps.
TimeUs CaptureOffsetUs(const trace::SourceFrame& frame, TimeUs* first_us) {
  const TimeUs t = frame.capture_offset_us >= 0 ? frame.capture_offset_us
                                                : frame.index * kDefaultFrameIntervalUs;
  if (*first_us < 0) *first_us = t;
  return t - *first_us;
}

// A trace's length: the capture span plus one mean frame interval.
double TraceDurationS(TimeUs last_us, std::int64_t frames) {
  const double interval_s =
      frames > 1 ? (last_us / 1e6) / (frames - 1) : kDefaultFrameIntervalUs / 1e6;
  return last_us / 1e6 + interval_s;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

// The highest uplink bit/s over any window of kWindowS seconds (sliding over
// the send times; shorter traces use their whole length).
double MaxWindowBps(const std::vector<std::pair<TimeUs, std::int64_t>>& sends, double duration_s) {
  const double window_s = std::min(kWindowS, duration_s);
  if (window_s <= 0.0) return 0.0;
  const TimeUs window_us = static_cast<TimeUs>(window_s * 1e6);
  std::int64_t in_window = 0, best = 0;
  size_t lo = 0;
  for (size_t hi = 0; hi < sends.size(); ++hi) {
    in_window += sends[hi].second;
    while (sends[hi].first - sends[lo].first >= window_us) in_window -= sends[lo++].second;
    best = std::max(best, in_window);
  }
  return best * 8.0 / window_s;
}

}  // namespace

nlohmann::json Metrics::ToJson() const {
  nlohmann::json j{{"frames", frames},
                   {"labelled_frames", labelled},
                   {"accuracy", labelled > 0 ? nlohmann::json(accuracy) : nlohmann::json()},
                   {"uplink_bytes", uplink_bytes},
                   {"uplink_bps", uplink_bps},
                   {"max_10s_window_bps", max_window_bps},
                   {"offload_fraction", offload_fraction},
                   {"routes", {{"cloud", cloud_in_time}, {"reuse", reused}, {"local", local}}},
                   {"deadline_hit_ratio", deadline_hit_ratio},
                   {"answered_by_deadline", answered_by_deadline},
                   {"duration_s", duration_s},
                   {"replay_wall_s", wall_s},
                   {"hindsight", hindsight}};
  if (!hindsight)
    j["latency_ms"] = {{"p50", p50_ms}, {"p95", p95_ms}, {"p99", p99_ms}, {"mean", mean_ms}};
  nlohmann::json r = nlohmann::json::object();
  for (const auto& [k, v] : reasons) r[k] = v;
  j["reasons"] = r;
  return j;
}

Replayer::~Replayer() = default;

Result<std::unique_ptr<Replayer>> Replayer::Create(const splitnet::Manifest& manifest,
                                                   ReplayOptions options) {
  if (options.frames.empty()) return InvalidArgument("no frame trace given");
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
  // Open the trace once now, so a bad file fails before any work.
  ASSIGN_OR_RETURN(auto source, trace::OpenSource({.spec = "trace:" + r->options_.frames}));
  return r;
}

scheduler::PolicyOptions Replayer::PolicyOptionsFor(const std::string& name) const {
  scheduler::PolicyOptions p;
  p.name = name;
  p.budget_bps = options_.budget_bps;
  p.seed = options_.seed;
  p.model = edge::ModelFactsOf(manifest_);
  return p;
}

Result<Metrics> Replayer::Run(scheduler::OffloadPolicy& policy, std::vector<Answer>* out) {
  const auto wall_start = std::chrono::steady_clock::now();
  VirtualClock clock(0);
  SimulatedCloudLink link(clock, *cloud_, uplink_, downlink_, options_.link);
  std::vector<Answer> answers;
  std::vector<std::pair<TimeUs, std::int64_t>> sends;
  edge::EdgeOptions eo;
  eo.deadline_ms = options_.deadline_ms;
  eo.guard_ms = options_.guard_ms;
  eo.max_in_flight = options_.max_in_flight;
  eo.rate = options_.rate;
  edge::EdgeRuntime runtime(eo, *edge_model_, policy, link, clock,
                            [&](const Answer& a) { answers.push_back(a); });
  RETURN_IF_ERROR(runtime.Validate());
  ASSIGN_OR_RETURN(auto source, trace::OpenSource({.spec = "trace:" + options_.frames}));
  TimeUs first_us = -1, last_us = 0;
  std::int64_t n = 0;
  while (options_.max_frames < 0 || n < options_.max_frames) {
    ASSIGN_OR_RETURN(auto next, source->Next());
    if (!next) break;
    const TimeUs t = std::max(CaptureOffsetUs(*next, &first_us), clock.NowUs());
    runtime.PumpUntil(t);
    const std::int64_t bytes_before = link.uplink_bytes();
    RETURN_IF_ERROR(runtime.ProcessFrame(*next, t));
    if (link.uplink_bytes() != bytes_before)
      sends.emplace_back(clock.NowUs(), link.uplink_bytes() - bytes_before);
    last_us = t;
    ++n;
  }
  runtime.Drain();

  Metrics m;
  m.policy = policy.name();
  m.frames = n;
  m.duration_s = TraceDurationS(last_us, n);
  duration_s_ = m.duration_s;
  std::vector<double> latencies;
  std::int64_t by_deadline = 0;
  for (const Answer& a : answers) {
    if (a.label >= 0) {
      ++m.labelled;
      m.correct += a.Correct();
    }
    m.offloaded += a.offloaded;
    m.cloud_in_time += a.route == Route::kCloud;
    m.reused += a.route == Route::kReuse;
    m.local += a.route == Route::kLocal;
    m.uplink_bytes += a.uplink_bytes;
    m.reasons[ReasonName(a.reason)]++;
    latencies.push_back(a.LatencyUs() / 1000.0);
    by_deadline += a.answer_us <= a.deadline_us;
  }
  if (static_cast<std::int64_t>(answers.size()) != n)
    return Internal("replay lost answers: " + std::to_string(n) + " frames, " +
                    std::to_string(answers.size()) + " answers");
  m.accuracy = m.labelled > 0 ? static_cast<double>(m.correct) / m.labelled : 0.0;
  m.uplink_bps = m.duration_s > 0 ? m.uplink_bytes * 8.0 / m.duration_s : 0.0;
  m.max_window_bps = MaxWindowBps(sends, m.duration_s);
  m.offload_fraction = n > 0 ? static_cast<double>(m.offloaded) / n : 0.0;
  m.deadline_hit_ratio = m.offloaded > 0 ? static_cast<double>(m.cloud_in_time) / m.offloaded : 1.0;
  m.answered_by_deadline = n > 0 ? static_cast<double>(by_deadline) / n : 1.0;
  m.p50_ms = Percentile(latencies, 0.50);
  m.p95_ms = Percentile(latencies, 0.95);
  m.p99_ms = Percentile(latencies, 0.99);
  double sum = 0;
  for (double l : latencies) sum += l;
  m.mean_ms = latencies.empty() ? 0.0 : sum / latencies.size();
  m.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  if (out) *out = std::move(answers);
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
  ASSIGN_OR_RETURN(auto source, trace::OpenSource({.spec = "trace:" + options_.frames}));
  splitnet::FeatureCodec codec;
  TimeUs first_us = -1, last_us = 0;
  std::int64_t n = 0;
  while (options_.max_frames < 0 || n < options_.max_frames) {
    ASSIGN_OR_RETURN(auto next, source->Next());
    if (!next) break;
    FrameFacts f;
    f.capture_us = CaptureOffsetUs(*next, &first_us);
    f.label = next->label;
    ASSIGN_OR_RETURN(auto input, edge_model_->Preprocess(next->image));
    ASSIGN_OR_RETURN(f.features, edge_model_->RunHead(input));
    ASSIGN_OR_RETURN(auto exit, edge_model_->RunExit(f.features));
    f.exit_class = exit.class_id;
    f.exit_error = manifest_.ExitErrorRate(exit.confidence);
    std::vector<std::vector<float>> decoded;
    for (size_t r = 0; r < manifest_.rates.size(); ++r) {
      const auto& rate = manifest_.rates[r];
      ASSIGN_OR_RETURN(auto enc, codec.Encode(f.features, manifest_.bottleneck, rate));
      const auto req = edge::OffloadRequest(manifest_, static_cast<int>(r), enc,
                                            static_cast<std::uint32_t>(options_.deadline_ms));
      f.cloud_bytes.push_back(static_cast<std::int64_t>(
          transport::ZmtpFrameBytes(transport::EncodeRequest(req).size())));
      ASSIGN_OR_RETURN(auto back,
                       codec.Decode(enc.coding, enc.payload, manifest_.bottleneck, rate));
      decoded.push_back(std::move(back));
    }
    ASSIGN_OR_RETURN(auto preds, tail->RunTail(decoded));
    for (const auto& p : preds) f.cloud_class.push_back(p.class_id);
    last_us = f.capture_us;
    facts_.push_back(std::move(f));
    ++n;
  }
  if (facts_.empty()) return InvalidArgument(options_.frames + ": the trace has no frames");
  duration_s_ = TraceDurationS(last_us, n);
  return Status::Ok();
}

Result<std::pair<Metrics, std::vector<int>>> Replayer::Oracle(
    std::int64_t byte_budget, const scheduler::SceneDetector& scene) {
  const auto wall_start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(Precompute());
  const int n = static_cast<int>(facts_.size());
  const int rates = static_cast<int>(manifest_.rates.size());
  for (const auto& f : facts_)
    if (f.label < 0)
      return InvalidArgument("the oracle needs labelled frames; " + options_.frames +
                             " has unlabelled ones");
  scheduler::OracleInput in;
  in.frames = n;
  in.rates = rates;
  for (const auto& f : facts_) {
    in.labels.push_back(f.label);
    in.local_class.push_back(f.exit_class);
    for (int r = 0; r < rates; ++r) {
      in.cloud_class.push_back(f.cloud_class[r]);
      in.bytes.push_back(f.cloud_bytes[r]);
    }
  }
  const int default_rate =
      options_.rate.empty() ? manifest_.default_rate_index : manifest_.RateIndex(options_.rate);
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
  Metrics m;
  m.policy = "oracle";
  m.hindsight = true;
  m.frames = n;
  m.labelled = n;
  m.correct = plan.correct;
  m.uplink_bytes = plan.bytes;
  m.duration_s = duration_s_;
  m.accuracy = static_cast<double>(plan.correct) / n;
  m.uplink_bps = plan.bytes * 8.0 / duration_s_;
  int last = -1;
  std::vector<std::pair<TimeUs, std::int64_t>> sends;
  for (int i = 0; i < n; ++i) {
    if (plan.rate[i] >= 0) {
      ++m.offloaded;
      ++m.cloud_in_time;
      sends.emplace_back(facts_[i].capture_us, facts_[i].cloud_bytes[plan.rate[i]]);
      last = i;
    } else if (last >= 0 && in.reuse(i, last)) {
      ++m.reused;
    } else {
      ++m.local;
    }
  }
  m.max_window_bps = MaxWindowBps(sends, m.duration_s);
  m.offload_fraction = static_cast<double>(m.offloaded) / n;
  m.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return std::make_pair(m, plan.rate);
}

}  // namespace deepcut::replay
