// The offline oracle: with hindsight over a whole trace, which frames to
// offload (and at which rate) to get the most correct answers within a byte
// budget, when every frame that is not offloaded is answered by the same
// fallback rule as the runtime (reuse the last offloaded frame's cloud answer,
// or the exit's own answer).
//
// Exact for a given Lagrange multiplier lambda: a DP over "the last offloaded
// frame" maximising correct - lambda * bytes (ties: fewer bytes),
// O(frames^2 * rates). The sweep finds the smallest lambda whose plan fits the
// budget: the breakpoint of the Lagrangian's convex hull that straddles the
// budget, reached exactly by chord steps between the plans either side of it
// (integer arithmetic; ~15 DPs for 3000 frames), then, among the plans tied at
// that lambda, one with as many bytes as fit. The plan is the most correct
// among all plans with at most its own bytes; it stops short of the budget
// only where the hull has no plan in between (rarely more than an offload or
// two on a long trace).
//
// Thread-safety: a pure function.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/status.h"

namespace deepcut::scheduler {

struct OracleInput {
  int frames = 0;
  int rates = 0;
  std::vector<int> labels;          // [frame]
  std::vector<int> local_class;     // [frame] the exit's answer
  std::vector<int> cloud_class;     // [frame * rates + r] the tail's answer at rate r
  std::vector<std::int64_t> bytes;  // [frame * rates + r] wire bytes of that offload
  // The runtime's fallback for frame i when the last offloaded frame is j < i
  // (j's cloud answer is known by then): true = reuse j's cloud answer, false =
  // the exit's answer. Frames before any offload are answered by the exit.
  std::function<bool(int i, int j)> reuse;
  // Offloads allowed only at these rates (empty: all).
  std::vector<int> allowed_rates;
  // The expected oracle (oracle-expected): clairvoyant about which item is in
  // view and about the link, but valuing answers by calibrated probabilities
  // instead of by the labels: each frame's exit answer is worth local_value,
  // an offload cloud_value [frame * rates + r], and reusing offload (j, r) at
  // frame i is worth cloud_value[j, r] if item[i] == item[j], else nothing.
  // Values are probabilities in 1 / kValueScale units. Empty: the hindsight
  // oracle (an answer is worth 1 if it is right).
  std::vector<int> local_value;  // [frame]
  std::vector<int> cloud_value;  // [frame * rates + r]
  std::vector<int> item;         // [frame]
};

// The unit of OracleInput's values (and of OraclePlan::correct for them).
inline constexpr int kValueScale = 1000;

struct OraclePlan {
  std::vector<int> rate;    // [frame] rate index offloaded at, or -1
  std::vector<int> answer;  // [frame] the class the plan answers
  std::int64_t bytes = 0;
  std::int64_t correct = 0;  // right answers; for the expected oracle, value in kValueScale units
  double lambda = 0.0;
  double Accuracy(int frames) const { return frames > 0 ? double(correct) / frames : 0.0; }
};

// The best plan with bytes <= byte_budget. Errors on inconsistent input sizes.
Result<OraclePlan> SolveOracle(const OracleInput& input, std::int64_t byte_budget);

// The plan that maximises correct - lambda * bytes exactly (ties: fewer
// bytes), the DP SolveOracle sweeps. Errors as SolveOracle, or on lambda < 0.
Result<OraclePlan> SolveOracleForLambda(const OracleInput& input, double lambda);

}  // namespace deepcut::scheduler
