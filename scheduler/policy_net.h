// The learned policy's network: a small MLP that scores one frame's offload
// from what the edge knows (LearnedState, below), evaluated with Eigen (in the .cpp only). Its
// weights live in a JSON file with their provenance (format
// "deepcut-policy/1", written by deepcut-train-policy):
//
//   {"format": "deepcut-policy/1", "inputs": [names...],
//    "layers": [{"weights": [[...] x out] , "bias": [...]}, ...],   // tanh between
//    "provenance": {...}}
//
// Layer k maps n_k values to n_{k+1} = weights.size(); hidden layers use tanh,
// the last layer is linear with one output, the offload score (> 0: worth
// sending; the budget controller ranks the positive scores against its price).
//
// Thread-safety: immutable once loaded; Score is const and may be shared.
#pragma once

#include <array>
#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"

namespace deepcut::scheduler {

// What the learned policy sees of one frame, in the order of the network's
// inputs (kLearnedInputNames). Each is scaled to about [0, 1] or [-1, 1].
constexpr int kLearnedInputs = 12;
extern const std::array<const char*, kLearnedInputs> kLearnedInputNames;

struct LearnedState {
  double exit_error = 1.0;          // the exit's calibrated error at this confidence
  double expected_cloud = 0.0;      // P(the cloud is right) on this frame
  double fused_confidence = 0.0;    // the scene's pooled posterior's top probability
  double scene_exit_frames = 0.0;   // log1p(exit posteriors pooled) / log(64)
  double scene_cloud_frames = 0.0;  // cloud answers pooled in this scene, capped at 4, / 4
  double reuse_probability = 0.0;   // the scene detector's P(last cloud answer holds)
  double since_offload = 1.0;       // seconds since the last offload, capped at 5, / 5
  double bucket_fill = 0.0;         // the budget's token bucket, [0, 1]
  double budget_share = 1.0;        // the budget as a share of always-offload, capped at 1
  double latency_share = 0.0;       // predicted round trip / time left, capped at 2, / 2
  double in_flight_share = 0.0;     // in flight / window
  double bias_one = 1.0;            // a constant input
  std::array<double, kLearnedInputs> Values() const;
};

class PolicyNet {
 public:
  // Reads and validates a weights file: a clear error naming what is wrong.
  static Result<PolicyNet> Load(const std::filesystem::path& file);
  static Result<PolicyNet> Parse(const std::string& json_text, const std::string& where);
  // From parameters in the trainer's flat order (per layer: the weights row by
  // row, then the bias), for layer sizes {inputs, hidden..., 1}.
  static Result<PolicyNet> FromFlat(const std::vector<int>& sizes, const std::vector<double>& flat);

  double Score(const std::array<double, kLearnedInputs>& inputs) const;
  double Score(const std::vector<double>& inputs) const;  // size must be inputs()
  int inputs() const { return layers_.front().in; }
  std::vector<int> Sizes() const;
  std::vector<double> Flat() const;
  // The file's JSON (format, input names, layers) with `provenance` attached.
  std::string ToJson(const std::string& provenance_json) const;

 private:
  // Eigen stays in policy_net.cpp (it maps these): users of the header need not see it.
  struct Layer {
    int out = 0, in = 0;
    std::vector<double> weights;  // out x in, row-major
    std::vector<double> bias;     // out
  };
  std::vector<Layer> layers_;
};

}  // namespace deepcut::scheduler
