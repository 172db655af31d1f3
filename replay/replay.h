// Virtual-time replay: a recorded frame trace through the real edge runtime,
// a policy, an emulated link (network trace) and an in-process cloud running
// the real tail. Deterministic: the clock is virtual, the link a FIFO over the
// trace, the cloud a fixed service time, the policies seeded.
//
// Also the offline oracle: every frame's exit answer, cloud answer and bytes
// at every rate are computed once, and SolveOracle picks, with hindsight, the
// frames to offload within the same byte budget under the runtime's fallback
// rule. Its plan is then also played through the link ("oracle-replayed").
//
// Thread-safety: one replay per thread (it owns its models).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/answer.h"
#include "core/run_summary.h"
#include "core/status.h"
#include "harvest/harvester.h"
#include "harvest/sink.h"
#include "network/net_trace.h"
#include "replay/sim_link.h"
#include "scheduler/oracle.h"
#include "scheduler/policy.h"
#include "scheduler/scene_fusion.h"
#include "splitnet/manifest.h"

namespace deepcut::replay {

struct ReplayOptions {
  std::string source;         // frames: trace:FILE (deepcut-trace make|record) or any file source
  std::string uplink = "2M";  // mahimahi file or fixed rate
  std::string downlink = "12M";  // replies: fixed fast link (or a trace)
  double budget_bps = 0.0;       // the knob; <= 0 unlimited
  double deadline_ms = 200.0;
  double guard_ms = 2.0;
  int max_in_flight = 8;
  std::string rate;  // default codec rate; empty: the model's
  std::uint64_t seed = 1;
  std::int64_t max_frames = -1;  // -1: the whole trace
  SimLinkOptions link;
  // The live knob, scripted: (virtual seconds from the start, new budget bit/s),
  // applied between frames once the clock has passed that time, as a command
  // from deepcut-ctl would be.
  std::vector<std::pair<double, double>> budget_changes;
  // The answer rule of policies run with fusion; unset: the package's settings.
  std::optional<scheduler::FusionOptions> fusion;
  // The learned policy's network; unset: the package's policy.json if it has one.
  std::shared_ptr<const scheduler::PolicyNet> learned;
  bool progress = false;  // a line per policy on stderr
};

// One policy's replay: the run's summary (core/run_summary.h, the same
// metrics as deepcut-edge's --summary) and what only a replay knows.
struct Metrics {
  std::string policy;
  RunSummary summary;
  double wall_s = 0.0;     // real time the replay took
  bool hindsight = false;  // the oracle's plan evaluated offline (no latencies)
  nlohmann::json ToJson() const;
};

class Replayer {
 public:
  static Result<std::unique_ptr<Replayer>> Create(const splitnet::Manifest& manifest,
                                                  ReplayOptions options);
  ~Replayer();
  // One policy over the whole trace. `answers` receives every answer if given.
  // `fuse`: the scene-fusion answer rule (ReplayOptions::fusion).
  Result<Metrics> Run(scheduler::OffloadPolicy& policy, std::vector<Answer>* answers = nullptr,
                      bool fuse = false);
  // The oracle within `byte_budget`, with the fallback rule under `scene`'s
  // calibration: its offline metrics and the plan (rate per frame, -1 none).
  Result<std::pair<Metrics, std::vector<int>>> Oracle(std::int64_t byte_budget,
                                                      const scheduler::SceneDetector& scene);
  // The expected oracle's plan (scheduler/oracle.h): the same DP, clairvoyant
  // about the items in view (the trace's scene marks) and the link, valuing
  // answers by the package's calibration (exit error and the tail's accuracy
  // per exit-confidence bin and rate) instead of by the labels. Its metrics
  // are the plan's own expected values; the report plays the plan and scores
  // it on the real answers.
  Result<std::vector<int>> ExpectedOraclePlan(std::int64_t byte_budget);
  // Harvesting in the next runs (docs/harvest.md): every answered frame is
  // offered to `harvester`, its uploads reach `sink` through the simulated
  // link, and after the trace the edge keeps uploading for up to `finish_s`
  // virtual seconds. Borrowed; nullptr: none.
  void SetHarvest(harvest::Harvester* harvester, harvest::HarvestSink* sink, double finish_s) {
    harvester_ = harvester;
    sink_ = sink;
    harvest_finish_s_ = finish_s;
  }
  // Trace duration in seconds (needs one Run or Oracle first, or reads the trace).
  Result<double> DurationS();
  scheduler::PolicyOptions PolicyOptionsFor(const std::string& name) const;
  const ReplayOptions& options() const { return options_; }
  const network::NetTrace& uplink() const { return uplink_; }

 private:
  struct FrameFacts {
    TimeUs capture_us = 0;
    int label = -1;
    int exit_class = -1;
    float exit_error = 1.0f;
    float exit_confidence = 0.0f;
    int item = 0;  // counts the trace's scene starts
    std::vector<float> features;
    std::vector<int> cloud_class;           // per rate
    std::vector<std::int64_t> cloud_bytes;  // per rate, on the wire
  };
  Replayer(const splitnet::Manifest& manifest, ReplayOptions options)
      : manifest_(manifest), options_(std::move(options)) {}
  Status Precompute();
  // What both oracles solve over: labels, exit and cloud answers, bytes per rate.
  scheduler::OracleInput OracleFacts() const;
  int DefaultRateIndex() const;  // --rate, else the package's
  const splitnet::Manifest& manifest_;
  ReplayOptions options_;
  network::NetTrace uplink_, downlink_;
  std::unique_ptr<splitnet::SplitModel> edge_model_;
  std::unique_ptr<InProcessCloud> cloud_;
  std::vector<FrameFacts> facts_;
  double duration_s_ = -1.0;
  harvest::Harvester* harvester_ = nullptr;
  harvest::HarvestSink* sink_ = nullptr;
  double harvest_finish_s_ = 0.0;
};

}  // namespace deepcut::replay
