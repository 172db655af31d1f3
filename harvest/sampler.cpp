#include "harvest/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace deepcut::harvest {

const char* SamplerName(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::kHarvest:
      return "harvest";
    case SamplerKind::kRandom:
      return "random";
    case SamplerKind::kPeriodic:
      return "periodic";
    case SamplerKind::kUncertainty:
      return "uncertainty";
  }
  return "?";
}

Result<SamplerKind> ParseSampler(const std::string& name) {
  for (auto k : {SamplerKind::kHarvest, SamplerKind::kRandom, SamplerKind::kPeriodic,
                 SamplerKind::kUncertainty})
    if (name == SamplerName(k)) return k;
  return InvalidArgument("sampler '" + name +
                         "' is not one of harvest, random, periodic, uncertainty");
}

Status ParseHarvestBudget(const std::string& text, HarvestBudget& budget) {
  const auto bad = [&](const std::string& why) {
    return InvalidArgument("harvest budget '" + text + "': " + why +
                           " (e.g. 120/h, 30/min, 2/s frames, or 5MB/h bytes)");
  };
  std::string amount = text, per = "h";
  if (const auto slash = text.find('/'); slash != std::string::npos) {
    amount = text.substr(0, slash);
    per = text.substr(slash + 1);
  }
  const double seconds = per == "h" ? 3600.0 : per == "min" ? 60.0 : per == "s" ? 1.0 : -1.0;
  if (seconds < 0) return bad("the period must be h, min or s");
  const bool bytes = !amount.empty() && amount.back() == 'B';
  if (bytes) amount.pop_back();
  double scale = 1.0;
  if (bytes && !amount.empty()) {
    const char unit = amount.back();
    scale = unit == 'k' ? 1e3 : unit == 'M' ? 1e6 : unit == 'G' ? 1e9 : 1.0;
    if (scale != 1.0) amount.pop_back();
  }
  double value = 0.0;
  std::size_t used = 0;
  try {
    value = std::stod(amount, &used) * scale;
  } catch (const std::exception&) {
    return bad("not a number");
  }
  if (used != amount.size()) return bad("not a number");
  if (!std::isfinite(value) || value < 0) return bad("must be a number >= 0");
  if (bytes)
    budget.bytes_per_hour = value * 3600.0 / seconds;
  else
    budget.frames_per_hour = value * 3600.0 / seconds;
  return Status::Ok();
}

Result<Sampler> Sampler::Create(SamplerOptions options, int classes) {
  const auto& b = options.budget;
  if (!(b.frames_per_hour >= 0) || !(b.bytes_per_hour >= 0) || !(b.burst_s > 0) ||
      b.max_frames < 0 || b.max_bytes < 0)
    return InvalidArgument("harvest budget: rates and limits must be >= 0, the burst > 0 s");
  if (classes < 1) return InvalidArgument("a sampler needs at least one class");
  if (options.memory < 1) return InvalidArgument("sampler memory must be >= 1");
  const auto& w = options.weights;
  if (w.uncertainty < 0 || w.disagreement < 0 || w.novelty < 0 || w.rarity < 0 ||
      w.uncertainty + w.disagreement + w.novelty + w.rarity <= 0)
    return InvalidArgument("sampler weights must be >= 0 and not all 0");
  return Sampler(std::move(options), classes);
}

Sampler::Sampler(SamplerOptions options, int classes)
    : options_(std::move(options)),
      classes_(classes),
      rng_(options_.seed),
      kept_per_class_(classes, 0) {}

void Sampler::SetBudget(const HarvestBudget& budget, TimeUs now_us) {
  Accrue(now_us);
  options_.budget = budget;
  Accrue(now_us);  // caps the tokens at the new bucket
}

void Sampler::SetStored(std::int64_t frames, std::int64_t bytes) {
  stored_frames_ = frames;
  stored_bytes_ = bytes;
}

void Sampler::Accrue(TimeUs now_us) {
  const auto& b = options_.budget;
  if (last_us_ >= 0 && now_us > last_us_) {
    const double dt = (now_us - last_us_) / 1e6;
    frame_tokens_ += b.frames_per_hour / 3600.0 * dt;
    byte_tokens_ += b.bytes_per_hour / 3600.0 * dt;
    frame_interval_s_ =
        frame_interval_s_ < 0 ? dt : frame_interval_s_ + 0.05 * (dt - frame_interval_s_);
  }
  if (last_us_ < 0 || now_us > last_us_) last_us_ = now_us;
  frame_tokens_ = std::min(frame_tokens_, std::max(1.0, b.frames_per_hour * b.burst_s / 3600.0));
  byte_tokens_ = std::min(byte_tokens_, b.bytes_per_hour * b.burst_s / 3600.0);
  const double per_s = b.frames_per_hour / 3600.0;
  fraction_ = frame_interval_s_ > 0 ? std::clamp(per_s * frame_interval_s_, 0.0, 1.0) : 0.0;
}

std::vector<float> Sampler::Pool(const Candidate& c) {
  const int h2 = std::max(1, c.height / 2), w2 = std::max(1, c.width / 2);
  std::vector<float> out(4 * c.channels, 0.0f);
  std::vector<int> n(4, 0);
  const std::size_t plane = static_cast<std::size_t>(c.height) * c.width;
  if (c.features.size() < plane * c.channels) return out;
  for (int ch = 0; ch < c.channels; ++ch) {
    std::fill(n.begin(), n.end(), 0);
    for (int y = 0; y < c.height; ++y)
      for (int x = 0; x < c.width; ++x) {
        const int q = (y >= h2 ? 2 : 0) + (x >= w2 ? 1 : 0);
        out[4 * ch + q] += c.features[ch * plane + y * c.width + x];
        ++n[q];
      }
    for (int q = 0; q < 4; ++q)
      if (n[q]) out[4 * ch + q] /= static_cast<float>(n[q]);
  }
  return out;
}

double Sampler::Uncertainty(const Candidate& c) const {
  return std::clamp(c.exit_error_rate, 0.0, 1.0);
}

double Sampler::Disagreement(const Candidate& c) const {
  if (c.cloud_class < 0) return Uncertainty(c);
  // A confident cloud that disagrees: the exit is likely wrong and the label
  // likely right; an unsure one may be wrong itself.
  return c.cloud_class != c.exit_class ? std::clamp(c.cloud_confidence, 0.0, 1.0) : 0.0;
}

double Sampler::NearestDistance(const std::vector<float>& pooled) const {
  const std::size_t dims = pooled.size();
  const std::size_t count = kept_.size() / std::max<std::size_t>(1, dims);
  if (count == 0) return -1.0;
  double best = std::numeric_limits<double>::max();
  // One flat buffer of the kept descriptors: this runs on every frame.
  const float* k = kept_.data();
  for (std::size_t j = 0; j < count; ++j, k += dims) {
    // Single precision: this runs on every frame, and the nearest distance
    // needs no more.
    float d = 0.0f;
    for (std::size_t i = 0; i < dims; ++i) {
      const float e = pooled[i] - k[i];
      d += e * e;
    }
    best = std::min(best, static_cast<double>(d));
  }
  return std::sqrt(best);
}

double Sampler::Novelty(const std::vector<float>& pooled) const {
  return NoveltyOf(NearestDistance(pooled));
}

double Sampler::NoveltyOf(double nearest) const {
  if (nearest < 0 || typical_distance_ <= 0) return 1.0;
  return std::min(1.0, nearest / (2.0 * typical_distance_));
}

double Sampler::Rarity(const Candidate& c) const {
  const int cls = c.cloud_class >= 0 ? c.cloud_class : c.exit_class;
  if (cls < 0 || cls >= classes_) return 0.5;
  const double share = (kept_per_class_[cls] + 1.0) / (kept_total_ + classes_);
  return std::clamp(1.0 - share * classes_ / 2.0, 0.0, 1.0);
}

double Sampler::Score(const Candidate& c, double novelty) const {
  const auto& w = options_.weights;
  double s = (w.uncertainty * Uncertainty(c) + w.disagreement * Disagreement(c) +
              w.novelty * novelty + w.rarity * Rarity(c)) /
             (w.uncertainty + w.disagreement + w.novelty + w.rarity);
  if (novelty < options_.duplicate_novelty) s *= options_.duplicate_factor;
  return s;
}

Verdict Sampler::Offer(const Candidate& c) {
  Accrue(c.now_us);
  const auto& b = options_.budget;
  Verdict v;
  std::vector<float> pooled;
  double novelty = 1.0;
  if (options_.kind == SamplerKind::kHarvest) {
    pooled = Pool(c);
    const double nearest = NearestDistance(pooled);
    novelty = NoveltyOf(nearest);
    // The typical distance to the nearest kept frame, over all frames seen:
    // novelty is relative to it, so it needs no scale from the model.
    if (nearest >= 0)
      typical_distance_ = typical_distance_ < 0
                              ? nearest
                              : typical_distance_ + 0.02 * (nearest - typical_distance_);
    v.score = Score(c, novelty);
  } else if (options_.kind == SamplerKind::kUncertainty) {
    v.score = Uncertainty(c);
  }
  const double bucket = std::max(1.0, b.frames_per_hour * b.burst_s / 3600.0);
  const double fill = std::clamp(frame_tokens_ / bucket, 0.0, 1.0);
  bool wanted = false;
  switch (options_.kind) {
    case SamplerKind::kHarvest:
    case SamplerKind::kUncertainty: {
      const double explore = options_.kind == SamplerKind::kHarvest ? options_.explore : 0.0;
      const double ranked = fraction_ * (1.0 - explore);
      wanted = v.score >= threshold_ - 0.2 * (fill - 0.5);
      threshold_ += options_.threshold_step * ((v.score >= threshold_ ? 1.0 : 0.0) - ranked);
      threshold_ = std::clamp(threshold_, 0.0, 1.5);
      if (!wanted && explore > 0 && novelty >= options_.duplicate_novelty)
        wanted = std::uniform_real_distribution<double>(0.0, 1.0)(rng_) <
                 std::min(1.0, fraction_ * explore * (0.5 + fill));
      break;
    }
    case SamplerKind::kRandom:
      wanted = std::uniform_real_distribution<double>(0.0, 1.0)(rng_) <
               std::min(1.0, fraction_ * (0.5 + fill));
      break;
    case SamplerKind::kPeriodic:
      wanted = fraction_ > 0 && static_cast<double>(since_kept_ + 1) >= 1.0 / fraction_;
      break;
  }
  const bool store_full = (b.max_frames > 0 && stored_frames_ >= b.max_frames) ||
                          (b.max_bytes > 0 && stored_bytes_ + c.expected_bytes > b.max_bytes);
  const bool tokens =
      frame_tokens_ >= 1.0 &&
      (b.bytes_per_hour <= 0 || byte_tokens_ >= static_cast<double>(c.expected_bytes));
  if (!wanted) {
    v.why = options_.kind == SamplerKind::kPeriodic ? "not-due" : "below-threshold";
  } else if (store_full) {
    v.why = "store-full";
  } else if (!tokens) {
    v.why = "no-budget";
  } else {
    v.keep = true;
    v.why = "kept";
  }
  if (!v.keep) {
    ++since_kept_;
    return v;
  }
  since_kept_ = 0;
  frame_tokens_ -= 1.0;
  if (b.bytes_per_hour > 0) byte_tokens_ -= static_cast<double>(c.expected_bytes);
  ++stored_frames_;
  stored_bytes_ += c.expected_bytes;
  if (options_.kind == SamplerKind::kHarvest) {
    if (static_cast<int>(kept_.size() / pooled.size()) >= options_.memory)
      kept_.erase(kept_.begin(), kept_.begin() + static_cast<std::ptrdiff_t>(pooled.size()));
    kept_.insert(kept_.end(), pooled.begin(), pooled.end());
    const int cls = c.cloud_class >= 0 ? c.cloud_class : c.exit_class;
    if (cls >= 0 && cls < classes_) {
      ++kept_per_class_[cls];
      ++kept_total_;
    }
  }
  return v;
}

}  // namespace deepcut::harvest
