// Offload policies: per frame, answer locally, reuse the cloud's last answer,
// or offload at some codec rate.
//
// A policy is a pure function of the DecisionContext plus its own state: no
// sockets, no models, no wall clock (time comes in the context), so it runs the
// same in the real edge, in virtual-time replay and in unit tests. It learns
// what became of its offloads through OnSent / OnOutcome.
//
// Policies (PolicyNames()):
//   edge-only   never offloads (alias: never)
//   always      offloads every frame at the default rate, ignoring the budget
//   periodic    every k-th frame; k from the budget (or --period)
//   random      each frame with probability p; p from the budget (or fixed)
//   confidence  the frames whose calibrated exit error is highest, within budget
//   framediff   the frames whose pixels changed most since the last offload
//               (Glimpse/Reducto-like), within budget
//   deepcut     expected accuracy gain per byte (calibrated exit error, scene
//               distance to what the cloud last answered) against a price the
//               budget controller adapts; never when the link cannot bring the answer
//               back by the deadline; the default rate, or the most accurate
//               cheaper one that the link can carry in time
// Every policy but edge-only and always answers a frame it does not offload
// by the same fallback rule (PreferReuse): the cloud's last answer when the
// scene has not changed enough to doubt it, else the exit's answer.
//
// Thread-safety: one policy object per edge stream, used from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "scheduler/bandwidth_estimator.h"
#include "scheduler/budget_controller.h"
#include "scheduler/policy_net.h"
#include "scheduler/scene_detector.h"

namespace deepcut::scheduler {

enum class Action { kLocal, kReuse, kOffload };

struct Decision {
  Action action = Action::kLocal;
  int rate_index = -1;  // which codec rate, when offloading
};

// One codec rate as the policy sees it.
struct RateInfo {
  double wire_bytes = 0.0;      // expected bytes on the wire for one offload (measured)
  double cloud_accuracy = 0.0;  // the tail's measured accuracy at this rate
};

// What the edge knows when it decides about one frame.
struct DecisionContext {
  std::int64_t frame_id = 0;
  TimeUs now_us = 0;
  TimeUs deadline_us = 0;
  float exit_confidence = 0.0f;     // max softmax of the exit
  float exit_error_rate = 1.0f;     // calibrated: measured error rate at that confidence
  std::span<const float> features;  // the bottleneck features of this frame
  std::span<const float> pixels;    // a small gray thumbnail in [0,1], if WantsPixels()
  bool has_cloud_answer = false;    // there is a cloud answer to reuse
  int in_flight = 0;                // requests sent and not yet answered
  int max_in_flight = 0;
  int default_rate_index = 0;       // the rate the user asked for
  std::span<const RateInfo> rates;  // per codec rate
  // With scene fusion (the edge's answer rule): the scene's pooled answer so far.
  bool fused = false;
  float fused_confidence = 0.0f;
  int fused_exit_frames = 0, fused_cloud_frames = 0;
};

// What became of one offload.
enum class Outcome {
  kAnswered,  // the cloud's answer arrived by the deadline
  kLate,      // it arrived after the fallback was delivered
  kLost,      // no reply by the deadline (none came yet)
  kBusy,      // the cloud shed it
  kError,     // the cloud refused it
};

struct Feedback {
  std::uint64_t request_id = 0;  // as given to OnSent
  std::int64_t frame_id = 0;
  Outcome outcome = Outcome::kAnswered;
  TimeUs now_us = 0;
  TimeUs server_us = 0;             // the cloud's own time, when it replied
  int class_id = -1;                // the cloud's answer (kAnswered, kLate)
  std::span<const float> features;  // of the offloaded frame
};

class OffloadPolicy {
 public:
  virtual ~OffloadPolicy() = default;
  virtual const char* name() const = 0;
  virtual Decision Decide(const DecisionContext& context) = 0;
  // The offload Decide asked for went out as request `request_id`.
  virtual void OnSent(std::uint64_t /*request_id*/, TimeUs /*now_us*/,
                      std::int64_t /*wire_bytes*/) {}
  // A late reply may follow a kLost for the same request.
  virtual void OnOutcome(const Feedback& /*feedback*/) {}
  // Bytes that are not offloads (harvested frames, docs/harvest.md) come out of
  // the same budget, and only from what the offloads leave: true if `bytes`
  // may go now without taking what an offload would want.
  virtual bool SpareBytes(std::int64_t /*bytes*/, TimeUs /*now_us*/) { return true; }
  // Such bytes went out.
  virtual void OnOtherSent(std::int64_t /*bytes*/, TimeUs /*now_us*/) {}
  // True if the context must carry a pixel thumbnail (framediff).
  virtual bool WantsPixels() const { return false; }
  // The live bandwidth knob (bit/s, <= 0: unlimited).
  virtual void SetBudget(double /*budget_bps*/, TimeUs /*now_us*/) {}
  // The scene detector, for policies that keep one (the oracle reuses its calibration).
  virtual const SceneDetector* scene() const { return nullptr; }
  // The link estimate, for policies that keep one (what the metrics report).
  virtual const BandwidthEstimator* estimator() const { return nullptr; }
};

// What a policy may know about the model (from its manifest).
struct ModelFacts {
  float value_min = 0.0f;  // the bottleneck's value range
  float value_max = 1.0f;
  int channels = 0;            // the bottleneck's channels (features are [C][H*W])
  double exit_accuracy = 0.0;  // measured (validation); 0: unknown
};

struct PolicyOptions {
  std::string name = "deepcut";
  double budget_bps = 0.0;  // the bandwidth knob; <= 0: unlimited
  std::uint64_t seed = 1;   // random policy
  // Settings of the baselines when the budget is unlimited; with a budget,
  // the budget sets how often they offload.
  int period_frames = 10;             // periodic
  double random_probability = 0.0;    // random: > 0 fixes p even with a budget
  double confidence_threshold = 0.9;  // confidence: offload below this exit confidence
  double framediff_threshold = 0.05;  // framediff: mean absolute pixel change in [0,1]
  // deepcut: offload only if the predicted round trip fits in this fraction of
  // the time left before the deadline.
  double deadline_fraction = 0.9;
  // deepcut: with nothing in flight for this long, one offload goes even if
  // the latency prediction says no (it learns only from replies).
  TimeUs probe_interval_us = 1'000'000;
  // deepcut: an offload must be expected to gain at least this much accuracy
  // (a probability), however cheap, so an unchanged scene is not resent.
  double min_gain = 0.01;
  // deepcut: when the default rate cannot come back by the deadline, send at
  // the most accurate cheaper rate that can (false: the default rate only).
  bool choose_rate = true;
  // deepcut with scene fusion: how far the pooled answer's confidence is taken
  // as its chance of being right (0: the exit's calibration alone; 1: fully).
  double fusion_trust = 0.5;
  int thumbnail_size = 16;  // framediff's thumbnail side, pixels
  // learned: the network (PolicyNet::Load); required for that policy.
  std::shared_ptr<const PolicyNet> learned;
  ModelFacts model;
  EstimatorOptions estimator;
  BudgetOptions budget;  // budget.budget_bps is set from budget_bps
  SceneOptions scene;    // value range is set from model
};

// The fallback rule: reuse the cloud's last answer (right with probability
// `reuse_probability` * `cloud_accuracy`, the latter the expected accuracy of
// that answer on its own frame) rather than the exit's (right with
// 1 - `exit_error_rate`)?
bool PreferReuse(double exit_error_rate, double reuse_probability, double cloud_accuracy);

// The expected accuracy of the tail on a frame whose calibrated exit error is
// `exit_error`: the tail errs on the same hard frames as the exit, less often,
// so its error is exit_error * (1 - rate_accuracy) / (1 - exit_accuracy) (the
// ratio of the measured overall error rates, at most 1). Without a measured
// exit accuracy it is the rate's overall accuracy.
double ExpectedCloudAccuracy(double exit_error, double rate_accuracy, double exit_accuracy);

// The policy names this build offers, for --help and error messages.
std::vector<std::string> PolicyNames();
// "NAME+fusion" is policy NAME with the scene-fusion answer rule: the base name
// and whether fusion is asked for. DeepCut's own policies (deepcut, learned)
// fuse by default; the baselines, in their published form, do not.
struct PolicyChoice {
  std::string name;
  bool fusion = false;
};
PolicyChoice ParsePolicyChoice(const std::string& spelled);
Result<std::unique_ptr<OffloadPolicy>> MakePolicy(const PolicyOptions& options);

// A fixed plan: offload frame i at plan[i] (>= 0) or answer by plan's fallback
// (-1: the shared fallback rule with `scene`'s calibration). Used by replay to
// run the offline oracle's plan through the same runtime and link.
std::unique_ptr<OffloadPolicy> MakePlanPolicy(std::vector<int> plan, const SceneDetector& scene,
                                              const ModelFacts& model);

}  // namespace deepcut::scheduler
