// Which frames to keep for retraining, under a storage budget (docs/harvest.md,
// "Samplers"). Pure: plain data in, a verdict out, time from the caller.
//
// The budget is a token bucket of frames (and, optionally, of bytes): tokens
// accrue at `frames_per_hour` and are capped at `burst_s` seconds of it, and
// the bucket starts empty, so over any T seconds at most rate * (T + burst_s)
// frames are kept. `max_frames` / `max_bytes` bound the store itself (what the
// edge holds, uploaded or not). Within the budget each sampler keeps the
// fraction of frames the rate affords at the observed frame rate:
//   harvest      the frames with the highest usefulness score (below);
//   uncertainty  the frames whose exit is least sure (its calibrated error rate);
//   random       each frame with that probability;
//   periodic     every n-th frame.
// The score thresholds track the (1 - fraction) quantile of recent scores, so
// the samplers that rank keep about as many frames as the others, and a full
// bucket lowers the threshold (spare budget is spent) while an empty one
// raises it.
//
// The harvester's usefulness (HarvestNet: a frame is worth keeping when the
// model is wrong or unsure on it and it is unlike what was kept) is a weighted
// sum of four parts in [0, 1]:
//   uncertainty   the exit's calibrated error rate at its confidence;
//   disagreement  the cloud's confidence when its answer for the frame (its
//                 reply, or the scene's pooled answer) differs from the exit's,
//                 0 when they agree, the uncertainty when it was not asked;
//   novelty       the distance of the frame's pooled features to the nearest
//                 kept one, over the typical nearest distance (capped at 1);
//                 frames of a scene already kept score low;
//   rarity        how under-represented the frame's class (the cloud's answer,
//                 else the exit's) is among the kept frames.
//
// Thread-safety: none; one sampler per stream, one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace deepcut::harvest {

enum class SamplerKind { kHarvest, kRandom, kPeriodic, kUncertainty };
const char* SamplerName(SamplerKind kind);
Result<SamplerKind> ParseSampler(const std::string& name);

struct HarvestBudget {
  double frames_per_hour = 120.0;  // the live knob; 0: keep nothing
  double bytes_per_hour = 0.0;     // 0: no byte limit
  double burst_s = 600.0;          // the bucket holds this many seconds of budget
  std::int64_t max_frames = 0;     // frames the store may hold; 0: no limit
  std::int64_t max_bytes = 0;      // bytes the store may hold; 0: no limit
};
// "120" or "120/h" (frames per hour), "30/min", "2/s"; bytes: "5M/h" with a
// byte suffix B (e.g. "512kB/h"). Refused with a message naming the problem.
Status ParseHarvestBudget(const std::string& text, HarvestBudget& budget);

// The disagreement term is small: the frames the cloud and the exit disagree on
// carry the noisiest labels (measured: 63% of such labels right against 80% of
// a random frame's, docs/harvest.md), and a set of them alone taught less than
// random frames.
struct SamplerWeights {
  double uncertainty = 0.45;
  double disagreement = 0.10;
  double novelty = 0.35;
  double rarity = 0.10;
};

struct SamplerOptions {
  SamplerKind kind = SamplerKind::kHarvest;
  HarvestBudget budget;
  SamplerWeights weights;
  std::uint64_t seed = 1;
  int memory = 256;  // kept frames whose pooled features novelty compares against
  // harvest: this share of its budget goes to frames drawn at random (near-copies
  // of kept frames still skipped), the rest to the highest scores: an all-hard
  // set carries the noisiest labels and none of the typical frames.
  double explore = 0.0;
  double threshold_step = 0.01;  // the quantile tracker's step (scores are in [0, 1])
  // Frames whose novelty is below this are near-copies of a kept frame: their
  // score is scaled by `duplicate_factor`.
  double duplicate_novelty = 0.15;
  double duplicate_factor = 0.25;
};

// What the edge knows about one frame when its answer is out.
struct Candidate {
  TimeUs now_us = 0;
  std::span<const float> features;  // the head's output, channels x height x width
  int channels = 1, height = 1, width = 1;
  std::span<const float> exit_scores;  // probabilities per class
  int exit_class = -1;
  double exit_error_rate = 0.0;     // calibrated, at the exit's confidence
  int cloud_class = -1;             // -1: the cloud was not asked or did not answer
  double cloud_confidence = 0.0;    // of that answer
  std::int64_t expected_bytes = 0;  // what keeping it would add to the store
};

struct Verdict {
  bool keep = false;
  double score = 0.0;  // the sampler's own score (random, periodic: 0)
  std::string why;     // kept, below-threshold, no-budget, store-full, not-due
};

class Sampler {
 public:
  static Result<Sampler> Create(SamplerOptions options, int classes);
  // Decides on one frame; a kept frame takes a token and joins the memory.
  Verdict Offer(const Candidate& candidate);
  // The live knob: tokens earned so far are kept, capped at the new bucket.
  void SetBudget(const HarvestBudget& budget, TimeUs now_us);
  // The store shrank (records uploaded and removed) or holds this much.
  void SetStored(std::int64_t frames, std::int64_t bytes);
  const SamplerOptions& options() const { return options_; }
  double threshold() const { return threshold_; }
  double fraction() const { return fraction_; }

  // The harvester's score parts, for tests and the record.
  double Uncertainty(const Candidate& c) const;
  double Disagreement(const Candidate& c) const;
  double Novelty(const std::vector<float>& pooled) const;
  double NearestDistance(const std::vector<float>& pooled) const;  // -1: nothing kept
  double Rarity(const Candidate& c) const;

 private:
  Sampler(SamplerOptions options, int classes);
  void Accrue(TimeUs now_us);
  // Quadrant means per channel: a small descriptor, cheap to compare.
  static std::vector<float> Pool(const Candidate& c);
  double Score(const Candidate& c, double novelty) const;
  double NoveltyOf(double nearest) const;

  SamplerOptions options_;
  int classes_;
  std::mt19937_64 rng_;
  double frame_tokens_ = 0.0, byte_tokens_ = 0.0;
  TimeUs last_us_ = -1;
  double frame_interval_s_ = -1.0;  // EWMA of the time between frames
  double fraction_ = 0.0;           // of frames the budget affords
  double threshold_ = 0.5;
  std::int64_t since_kept_ = 0;  // frames since the last kept one (periodic)
  std::int64_t stored_frames_ = 0, stored_bytes_ = 0;
  std::vector<float> kept_;         // pooled features of recent kept frames, one after another
  double typical_distance_ = -1.0;  // EWMA of nearest distances
  std::vector<int> kept_per_class_;
  int kept_total_ = 0;
};

}  // namespace deepcut::harvest
