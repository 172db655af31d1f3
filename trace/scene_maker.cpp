#include "trace/scene_maker.h"

#include <algorithm>
#include <cmath>

namespace deepcut::trace {

SceneMaker::SceneMaker(LabelledImages items, SceneOptions options)
    : items_(std::move(items)), options_(options), rng_(options.seed) {}

Result<std::unique_ptr<SceneMaker>> SceneMaker::Create(LabelledImages items, SceneOptions options) {
  const SceneOptions& o = options;
  auto finite_positive = [](double v) { return std::isfinite(v) && v > 0; };
  if (o.frames < 1) return InvalidArgument("scene: frames must be >= 1");
  if (!finite_positive(o.fps) || o.fps > 1e6)
    return InvalidArgument("scene: fps must be in (0, 1e6]");
  if (!finite_positive(o.mean_dwell_s)) return InvalidArgument("scene: mean dwell must be > 0 s");
  if (o.max_shift_px < 0 || o.max_shift_px > 64)
    return InvalidArgument("scene: max shift must be in 0..64 pixels");
  if (!std::isfinite(o.noise_sigma) || o.noise_sigma < 0 || o.noise_sigma > 128)
    return InvalidArgument("scene: noise sigma must be in 0..128 grey levels");
  if (!finite_positive(o.brightness_min) || !std::isfinite(o.brightness_max) ||
      o.brightness_min > 1.0 || o.brightness_max < 1.0 || o.brightness_max > 16)
    return InvalidArgument("scene: brightness range must satisfy 0 < min <= 1 <= max <= 16");
  if (!std::isfinite(o.brightness_step) || o.brightness_step < 0)
    return InvalidArgument("scene: brightness step must be >= 0");
  if (items.count() < 1 || items.rows < 1 || items.cols < 1 ||
      items.pixels.size() != static_cast<std::size_t>(items.count()) * items.rows * items.cols)
    return InvalidArgument("scene: the image set is empty or inconsistent");
  return std::unique_ptr<SceneMaker>(new SceneMaker(std::move(items), options));
}

double SceneMaker::Uniform01() {
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;  // [0, 1)
}

double SceneMaker::Gaussian() {
  // Sum of 8 uniform 16-bit values (two draws), standardised: close to a
  // unit gaussian (tails cut at 4.9 sigma) and integer arithmetic throughout.
  std::int64_t sum = 0;
  for (int draw = 0; draw < 2; ++draw) {
    std::uint64_t bits = rng_();
    for (int k = 0; k < 4; ++k, bits >>= 16) sum += static_cast<std::int64_t>(bits & 0xffff);
  }
  // Each value has mean 32767.5 and variance (65536^2 - 1) / 12.
  constexpr double kMean = 8 * 32767.5;
  const double kSd = std::sqrt(8 * (65536.0 * 65536.0 - 1) / 12);
  return (static_cast<double>(sum) - kMean) / kSd;
}

void SceneMaker::StartItem() {
  ++scene_;
  // A different item each time (the same label may come again).
  const auto n = static_cast<std::uint64_t>(items_.count());
  std::int64_t next = static_cast<std::int64_t>(rng_() % n);
  if (n > 1)
    while (next == item_) next = static_cast<std::int64_t>(rng_() % n);
  item_ = next;
  // Exponential dwell, at least one frame.
  const double dwell_s = -options_.mean_dwell_s * std::log(1.0 - Uniform01());
  dwell_left_ = std::max<std::int64_t>(1, std::llround(std::min(dwell_s * options_.fps, 1e15)));
  // The item lands somewhere within the shift bounds.
  const int span = 2 * options_.max_shift_px + 1;
  shift_x_ = static_cast<int>(rng_() % span) - options_.max_shift_px;
  shift_y_ = static_cast<int>(rng_() % span) - options_.max_shift_px;
}

std::optional<SceneFrame> SceneMaker::Next() {
  if (next_index_ >= options_.frames) return std::nullopt;
  SceneFrame f;
  f.index = next_index_++;
  f.capture_us = std::llround(static_cast<double>(f.index) * 1e6 / options_.fps);
  if (dwell_left_ == 0) {
    StartItem();
    f.scene_start = true;
  } else {
    // Wander by at most a pixel per axis: -1, 0, 0 or +1, within the bounds.
    static constexpr int kStep[4] = {-1, 0, 0, 1};
    const std::uint64_t bits = rng_();
    const int m = options_.max_shift_px;
    shift_x_ = std::clamp(shift_x_ + kStep[bits & 3], -m, m);
    shift_y_ = std::clamp(shift_y_ + kStep[(bits >> 2) & 3], -m, m);
  }
  --dwell_left_;
  gain_ = std::clamp(gain_ + options_.brightness_step * (2 * Uniform01() - 1),
                     options_.brightness_min, options_.brightness_max);
  f.scene = scene_;
  f.item = item_;
  f.label = items_.labels[static_cast<std::size_t>(item_)];

  // Shifted item (black where it moved away), gain, noise, rounded and clipped.
  const int rows = items_.rows, cols = items_.cols;
  const std::uint8_t* src = items_.pixels.data() +
                            static_cast<std::size_t>(item_) * static_cast<std::size_t>(rows) * cols;
  f.image.create(rows, cols, CV_8UC1);
  for (int y = 0; y < rows; ++y) {
    std::uint8_t* out = f.image.ptr<std::uint8_t>(y);
    const int sy = y - shift_y_;
    for (int x = 0; x < cols; ++x) {
      const int sx = x - shift_x_;
      const double v = (sy >= 0 && sy < rows && sx >= 0 && sx < cols) ? src[sy * cols + sx] : 0.0;
      const double noisy = v * gain_ + options_.noise_sigma * Gaussian();
      out[x] = static_cast<std::uint8_t>(std::clamp(std::floor(noisy + 0.5), 0.0, 255.0));
    }
  }
  return f;
}

nlohmann::json SceneMaker::Params() const {
  return {{"generator", "scene"},
          {"mean_dwell_s", options_.mean_dwell_s},
          {"max_shift_px", options_.max_shift_px},
          {"noise_sigma", options_.noise_sigma},
          {"brightness", {options_.brightness_min, options_.brightness_max}},
          {"brightness_step", options_.brightness_step}};
}

}  // namespace deepcut::trace
