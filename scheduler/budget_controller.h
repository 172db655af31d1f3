// The bandwidth knob: keeps the uplink's bit/s at (never above) the user's
// budget, and sets the price a frame's offload must be worth.
//
// Two parts. The hard limit: a token bucket (tokens accrue at the budget and
// are capped at `bucket_s` seconds of it, so over any T seconds at most
// budget * (T + bucket_s) goes out: no bursts) and a sliding window (at most
// (1 + window_slack) * budget * window_s bytes in any window_s seconds: the
// promise to the user, at most 5% over in any 10 s). The price is the soft part: each
// frame a policy reports its candidate's score (expected gain per byte, higher
// is more worth sending); the controller keeps the recent scores and sets the
// price at the quantile that lets through the fraction of frames the budget
// affords at the recent bytes per offload, nudged by the bucket's fill (a full
// bucket lowers the price, an empty one raises it). So a policy that offloads
// when score >= price and the bucket allows spends the budget when it has
// frames worth sending, and no more.
//
// Thread-safety: one controller per edge stream, one thread. SetBudget may be
// called between frames (the live knob).
#pragma once

#include <cstdint>
#include <deque>

#include "core/clock.h"

namespace deepcut::scheduler {

struct BudgetOptions {
  double budget_bps = 0.0;  // <= 0: unlimited (no bucket, price 0)
  double bucket_s = 2.0;    // bucket size in seconds of budget (bursts)
  double window_s = 10.0;   // the sliding window of the hard limit
  // Excess allowed over budget * window_s in any window: a little, so that a
  // window at exactly the budget does not block every jitter; not more, since
  // the bytes a policy asks about are an estimate and the message may be larger.
  double window_slack = 0.02;
  int score_window = 300;                // recent scores the price quantile is taken over
  double initial_offload_bytes = 100.0;  // bytes per offload before any is seen
  // The price's feedback: budget left unspent (or overspent) decays with this
  // time constant; a positive balance lowers the price, a negative one raises it.
  double feedback_s = 3.0;
};

class BudgetController {
 public:
  explicit BudgetController(BudgetOptions options = {});

  // The live knob: takes effect from `now_us` (tokens earned so far are kept,
  // capped at the new bucket size).
  void SetBudget(double budget_bps, TimeUs now_us);
  double budget_bps() const { return options_.budget_bps; }
  bool Unlimited() const { return options_.budget_bps <= 0.0; }

  // Tokens accrue up to `now_us` (from the first call on: the bucket starts
  // empty); true if `bytes` may be sent now. An offload bigger than the whole
  // bucket may go when the bucket is full.
  bool CanSpend(std::int64_t bytes, TimeUs now_us);
  // `bytes` went out at `now_us` (takes tokens; below zero, a debt repaid
  // before the next offload, only after an offload bigger than the bucket or
  // if the caller ignored CanSpend).
  void Spend(std::int64_t bytes, TimeUs now_us);
  // Bytes that are not offloads (harvest uploads) went out: they take tokens
  // and count in the window, but neither the bytes per offload nor the price's
  // balance (they only ever take what the offloads left).
  void SpendOther(std::int64_t bytes, TimeUs now_us);
  // Bucket fill in [0, 1] at `now_us` (1 when unlimited).
  double Fill(TimeUs now_us);

  // One frame was seen at `now_us` whose best offload candidate has `score`
  // (any real; <= 0 means not worth sending at any price). Updates the price.
  void ObserveScore(double score, TimeUs now_us);
  // The current price: offload when score >= Price() (0 when unlimited).
  double Price() const { return price_; }

 private:
  void Accrue(TimeUs now_us);
  void UpdatePrice(TimeUs now_us);
  BudgetOptions options_;
  double tokens_ = 0.0;  // bytes
  TimeUs last_us_ = -1;
  std::deque<double> scores_;
  std::deque<TimeUs> frame_times_;  // for the frame rate
  double offload_bytes_;            // EWMA of bytes per offload
  double balance_ = 0.0;            // leaky (earned - spent) bytes, for the price's feedback
  std::deque<std::pair<TimeUs, std::int64_t>> sent_;  // sends in the last window_s
  std::int64_t sent_in_window_ = 0;
  std::int64_t WindowBytes(TimeUs now_us);
  double price_ = 0.0;
};

}  // namespace deepcut::scheduler
