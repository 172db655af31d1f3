// What the edge knows about its uplink, learned only from its own transfers:
// when each request was sent, how many bytes it took on the wire, and when
// its reply came back (or that none came). Nothing here reads a trace file.
//
// Throughput: each reply gives a delivery-rate sample (bytes delivered over
// the time the link spent delivering them, BBR-style when requests queue
// behind each other); the estimate is the harmonic mean of the recent samples
// (robust to a few fast outliers) times (1 - margin). Losses cut it
// multiplicatively; each reply then wins back half of the cut. RTT: RFC 6298
// smoothing plus the windowed minimum. Latency prediction joins both with what
// is in flight, and never predicts less than the age of the oldest unanswered
// request (a stalled link is visible before any reply says so).
//
// Thread-safety: one estimator per edge stream, one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>

#include "core/clock.h"

namespace deepcut::scheduler {

struct EstimatorOptions {
  int window = 10;             // throughput samples in the harmonic mean
  double margin = 0.2;         // the estimate is the mean times (1 - margin)
  double rtt_alpha = 0.125;    // EWMA weight of a new RTT sample (RFC 6298)
  double rttvar_beta = 0.25;   // EWMA weight of a new RTT deviation sample
  double loss_decrease = 0.5;  // the estimate is multiplied by this per loss
  // ... down to this fraction at most: an outage shows in the age of what is
  // in flight; a deeper cut after a long one only kept the edge from probing.
  double min_loss_factor = 0.05;
  double initial_bps = 1e6;               // before the first sample
  TimeUs initial_rtt_us = 50'000;         // before the first sample
  TimeUs min_rtt_window_us = 10'000'000;  // the minimum RTT is taken over this long
  // Without replies a loss cut would never heal and a policy that trusts the
  // prediction would never probe again: the cut also halves its distance to
  // 1 every this long since the last loss.
  TimeUs loss_recovery_us = 1'000'000;
};

class BandwidthEstimator {
 public:
  explicit BandwidthEstimator(EstimatorOptions options = {});

  // Request `id` left at `sent_us` and occupies `wire_bytes` on the wire.
  void OnSent(std::uint64_t id, TimeUs sent_us, std::int64_t wire_bytes);
  // Its reply arrived at `received_us`; `server_us` is what the cloud says it
  // spent on it (0 if unknown), taken out of the RTT sample. Unknown ids are ignored.
  void OnReply(std::uint64_t id, TimeUs received_us, TimeUs server_us);
  // No reply will come (deadline passed, cloud busy or failing): it leaves the
  // in-flight set and counts as a loss. Unknown ids are ignored.
  void OnLost(std::uint64_t id, TimeUs now_us);

  // Conservative uplink estimate in bit/s (> 0).
  double EstimateBps() const;
  bool HasSamples() const { return samples_ > 0; }
  TimeUs SmoothedRttUs() const { return srtt_us_; }
  TimeUs RttVarUs() const { return rttvar_us_; }
  TimeUs MinRttUs() const;
  int InFlight() const { return static_cast<int>(in_flight_.size()); }
  std::int64_t InFlightBytes() const { return in_flight_bytes_; }
  // How long the oldest unanswered request has been out (0 when none).
  TimeUs OldestInFlightAgeUs(TimeUs now_us) const;
  // Expected send -> reply time of a new request of `wire_bytes` sent now:
  // base RTT + its deviation + queued and own bytes at the estimated rate,
  // and at least the oldest in-flight age.
  TimeUs PredictLatencyUs(std::int64_t wire_bytes, TimeUs now_us) const;

 private:
  struct Flight {
    TimeUs sent_us;
    std::int64_t bytes;
  };
  EstimatorOptions options_;
  std::map<std::uint64_t, Flight> in_flight_;
  std::int64_t in_flight_bytes_ = 0;
  std::deque<double> throughput_bps_;           // recent samples
  std::deque<std::pair<TimeUs, TimeUs>> rtts_;  // (at, rtt) for the windowed minimum
  TimeUs srtt_us_;
  TimeUs rttvar_us_;
  TimeUs last_reply_us_ = -1;  // for delivery-rate samples of back-to-back replies
  double loss_factor_ = 1.0;
  TimeUs last_loss_us_ = 0;
  double LossFactorAt(TimeUs now_us) const;
  std::int64_t samples_ = 0;
};

}  // namespace deepcut::scheduler
