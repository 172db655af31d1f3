// Scene streams: a synthetic camera looking at a sequence of items.
//
// An item (a random image of the set) stays in view for a random dwell time,
// exponential with mean `mean_dwell_s` and at least one frame; then the next
// (different) item arrives. While it is in view the frames change a little:
// the item wanders by a pixel at a time within +-max_shift_px, the gain drifts
// within [brightness_min, brightness_max], and every pixel gets fresh noise.
// Labels are the item's label; frame k is captured at k / fps.
//
// This is what the scheduler's scene detector and reuse policies are for:
// consecutive frames that hold the same item look alike but are not identical.
//
// Deterministic for a seed: std::mt19937_64 and the distributions' arithmetic
// are our own (the dwell time uses std::log, exact on glibc), so the same seed
// gives the same frames.
//
//   deepcut-trace make --frames 3000 --fps 10 --mean-dwell-s 2 --seed 1 --out test.dcft
//
// Thread-safety: one maker per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "core/status.h"
#include "trace/fashion_mnist.h"

namespace deepcut::trace {

struct SceneOptions {
  std::int64_t frames = 3000;  // frames to make
  double fps = 10.0;           // frame k is captured at k / fps seconds
  std::uint64_t seed = 1;
  double mean_dwell_s = 2.0;     // mean time an item stays in view (exponential)
  int max_shift_px = 2;          // bound of the random-walk shift, each axis
  double noise_sigma = 3.0;      // per-pixel noise, grey levels (0..255 scale)
  double brightness_min = 0.85;  // the gain drifts within [min, max] ...
  double brightness_max = 1.15;
  double brightness_step = 0.02;  // ... by at most this much per frame
};

struct SceneFrame {
  std::int64_t index = 0;       // 0 .. frames-1
  std::int64_t capture_us = 0;  // round(index * 1e6 / fps)
  int label = -1;               // the item's label
  bool scene_start = false;     // the first frame of a new item
  std::int64_t scene = 0;       // how many items came before this one
  std::int64_t item = 0;        // the item's index in the image set
  cv::Mat image;                // CV_8UC1, the set's size
};

class SceneMaker {
 public:
  // Fails on options out of range or an empty image set.
  static Result<std::unique_ptr<SceneMaker>> Create(LabelledImages items, SceneOptions options);

  // The next frame, std::nullopt after `frames` frames.
  std::optional<SceneFrame> Next();
  std::int64_t Remaining() const { return options_.frames - next_index_; }
  const SceneOptions& options() const { return options_; }
  const LabelledImages& items() const { return items_; }
  // The generator's parameters, for a trace header's `params`.
  nlohmann::json Params() const;

 private:
  SceneMaker(LabelledImages items, SceneOptions options);
  double Uniform01();
  double Gaussian();
  void StartItem();

  LabelledImages items_;
  SceneOptions options_;
  std::mt19937_64 rng_;
  std::int64_t next_index_ = 0;
  std::int64_t scene_ = -1, item_ = -1;
  std::int64_t dwell_left_ = 0;  // frames the current item still stays
  int shift_x_ = 0, shift_y_ = 0;
  double gain_ = 1.0;
};

}  // namespace deepcut::trace
