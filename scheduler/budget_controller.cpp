// Choices not fixed by the header:
//
// The bucket starts empty (and empties again when a budget replaces
// "unlimited"): the first window then stays under budget * T too, at the cost
// of a first offload delayed by one offload's worth of budget. An offload
// larger than the whole bucket may go when the bucket is full and leaves a
// debt that is repaid before the next one, so a tiny bucket still passes
// traffic at the budget's rate.
//
// Price: q = f * g is the fraction of frames to let through, where
//   f = budget_bps / (8 * bytes_per_offload * frames_per_s)   what the budget affords
//   g = exp(4 * balance / (feedback_s of budget)), in [1/4, 4]  the feedback
// and the price is the (1 - q) quantile of the recent scores. The balance is
// what was earned minus what was spent, leaking with time constant
// feedback_s: budget left unspent lowers the price until it is spent. (A nudge
// from the bucket's fill alone fails when the bucket holds less than one
// offload, as it does at low budgets: the bucket is then full most of the time
// and the price fell to the floor, so the first frame after a refill went,
// worthy or not.) The price is never below the smallest positive double: a
// score <= 0 never pays.
#include "scheduler/budget_controller.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace deepcut::scheduler {

namespace {

constexpr double kOffloadBytesWeight = 0.05;  // EWMA weight of one Spend's bytes
constexpr double kMinPrice = std::numeric_limits<double>::min();

BudgetOptions Sanitized(BudgetOptions o) {
  if (!std::isfinite(o.budget_bps)) o.budget_bps = 0.0;
  if (!(o.bucket_s >= 0.0) || !std::isfinite(o.bucket_s)) o.bucket_s = 2.0;
  if (!(o.window_s >= 0.0) || !std::isfinite(o.window_s)) o.window_s = 10.0;
  if (!(o.window_slack >= 0.0) || !std::isfinite(o.window_slack)) o.window_slack = 0.02;
  o.score_window = std::max(1, o.score_window);
  if (!(o.initial_offload_bytes >= 1.0) || !std::isfinite(o.initial_offload_bytes))
    o.initial_offload_bytes = 100.0;
  return o;
}

double CapacityBytes(const BudgetOptions& o) { return o.bucket_s * o.budget_bps / 8.0; }

// Linear interpolation between order statistics (p in [0, 1]); `values` is reordered.
double Quantile(std::vector<double>& values, double p) {
  const double h = p * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(h));
  std::nth_element(values.begin(), values.begin() + lo, values.end());
  const double low = values[lo];
  if (lo + 1 >= values.size()) return low;
  const double high = *std::min_element(values.begin() + lo + 1, values.end());
  const double t = h - static_cast<double>(lo);
  return low * (1.0 - t) + high * t;  // finite inputs: no overflow
}

}  // namespace

BudgetController::BudgetController(BudgetOptions options)
    : options_(Sanitized(options)), offload_bytes_(options_.initial_offload_bytes) {}

void BudgetController::Accrue(TimeUs now_us) {
  if (last_us_ >= 0 && now_us > last_us_ && !Unlimited()) {
    const double dt_s = static_cast<double>(now_us - last_us_) / 1e6;
    const double earned = options_.budget_bps / 8.0 * dt_s;
    tokens_ = std::min(CapacityBytes(options_), tokens_ + earned);
    const double leak = options_.feedback_s > 0 ? std::exp(-dt_s / options_.feedback_s) : 0.0;
    balance_ = balance_ * leak + earned;
  }
  last_us_ = std::max(last_us_, now_us);
}

void BudgetController::SetBudget(double budget_bps, TimeUs now_us) {
  Accrue(now_us);
  const bool was_unlimited = Unlimited();
  options_.budget_bps = std::isfinite(budget_bps) ? budget_bps : 0.0;
  if (Unlimited()) {
    price_ = 0.0;
    return;
  }
  if (was_unlimited) {
    tokens_ = 0.0;
    balance_ = 0.0;
  }
  // The window promise is per budget: what went out under the old one does
  // not hold the new one back (the bucket still prevents a burst).
  sent_.clear();
  sent_in_window_ = 0;
  balance_ = 0.0;
  tokens_ = std::min(tokens_, CapacityBytes(options_));
  UpdatePrice(now_us);
}

std::int64_t BudgetController::WindowBytes(TimeUs now_us) {
  const TimeUs window_us = static_cast<TimeUs>(options_.window_s * 1e6);
  while (!sent_.empty() && now_us - sent_.front().first >= window_us) {
    sent_in_window_ -= sent_.front().second;
    sent_.pop_front();
  }
  return sent_in_window_;
}

bool BudgetController::CanSpend(std::int64_t bytes, TimeUs now_us) {
  if (Unlimited()) return true;
  Accrue(now_us);
  const double window_limit =
      (1.0 + options_.window_slack) * options_.budget_bps / 8.0 * options_.window_s;
  if (options_.window_s > 0 && static_cast<double>(WindowBytes(now_us) + bytes) > window_limit)
    return false;
  return tokens_ >= std::min(static_cast<double>(bytes), CapacityBytes(options_));
}

void BudgetController::SpendOther(std::int64_t bytes, TimeUs now_us) {
  if (bytes <= 0 || Unlimited()) return;
  Accrue(now_us);
  tokens_ -= static_cast<double>(bytes);
  WindowBytes(now_us);
  sent_.emplace_back(now_us, bytes);
  sent_in_window_ += bytes;
}

void BudgetController::Spend(std::int64_t bytes, TimeUs now_us) {
  if (bytes <= 0) return;
  offload_bytes_ += kOffloadBytesWeight * (static_cast<double>(bytes) - offload_bytes_);
  if (Unlimited()) return;
  Accrue(now_us);
  tokens_ -= static_cast<double>(bytes);
  balance_ -= static_cast<double>(bytes);
  WindowBytes(now_us);
  sent_.emplace_back(now_us, bytes);
  sent_in_window_ += bytes;
}

double BudgetController::Fill(TimeUs now_us) {
  if (Unlimited()) return 1.0;
  Accrue(now_us);
  const double capacity = CapacityBytes(options_);
  if (capacity <= 0.0) return tokens_ >= 0.0 ? 1.0 : 0.0;
  return std::clamp(tokens_ / capacity, 0.0, 1.0);
}

void BudgetController::ObserveScore(double score, TimeUs now_us) {
  if (std::isnan(score)) score = std::numeric_limits<double>::lowest();
  score =
      std::clamp(score, std::numeric_limits<double>::lowest(), std::numeric_limits<double>::max());
  scores_.push_back(score);
  frame_times_.push_back(now_us);
  while (static_cast<int>(scores_.size()) > options_.score_window) {
    scores_.pop_front();
    frame_times_.pop_front();
  }
  UpdatePrice(now_us);
}

void BudgetController::UpdatePrice(TimeUs now_us) {
  if (Unlimited()) {
    price_ = 0.0;
    return;
  }
  if (scores_.empty()) {
    price_ = kMinPrice;
    return;
  }
  // Until a frame rate is known, the bucket alone decides.
  double pass_fraction = 1.0;
  if (frame_times_.size() >= 2) {
    const TimeUs span_us = std::max<TimeUs>(1, frame_times_.back() - frame_times_.front());
    const double frames_per_s = static_cast<double>(frame_times_.size() - 1) * 1e6 / span_us;
    const double affordable = options_.budget_bps / (8.0 * offload_bytes_ * frames_per_s);
    Accrue(now_us);
    const double scale = std::max(options_.budget_bps / 8.0 * options_.feedback_s, 1.0);
    const double nudge = std::clamp(std::exp(4.0 * balance_ / scale), 0.25, 4.0);
    pass_fraction = std::clamp(affordable * nudge, 0.0, 1.0);
  }
  std::vector<double> sorted(scores_.begin(), scores_.end());
  price_ = std::max(kMinPrice, Quantile(sorted, 1.0 - pass_fraction));
}

}  // namespace deepcut::scheduler
