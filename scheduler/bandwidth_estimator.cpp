// Choices not fixed by the header:
//
// Delivery-rate samples. Let t = received - server_us (when the reply would
// have come back from an instant server) and base = sent + min RTT seen so far
// (when it would have come back over an idle link). If the previous reply came
// at or after `base`, this request queued behind it and the link spent
// t - previous on its bytes (BBR's ack interval). Otherwise it went alone and
// the link spent about t - base = rtt - min_rtt on it; that difference is
// mostly jitter for small requests, so it is floored at 1 ms: a lone sample
// says "at least this fast", never absurdly fast. The first reply only gives
// an RTT (no minimum to compare with yet).
//
// Losses multiply a loss factor by loss_decrease; each reply then halves the
// distance back to 1 instead of resetting it, so on a link that loses some
// and delivers some the cut survives the next lucky reply.
//
// Prediction: min_rtt + rttvar + (in-flight + own bytes) * 8 / estimate, at
// least the oldest in-flight age. min_rtt already holds one small request's
// transfer; counting its bytes again errs on the safe side.
#include "scheduler/bandwidth_estimator.h"

#include <algorithm>
#include <cmath>

namespace deepcut::scheduler {

namespace {

constexpr TimeUs kLoneTransferFloorUs = 1'000;
constexpr TimeUs kQueuedTransferFloorUs = 10;
constexpr double kMinLossFactor = 1e-3;
constexpr double kMaxPredictionUs = 1e15;

EstimatorOptions Sanitized(EstimatorOptions o) {
  o.window = std::max(1, o.window);
  o.margin = std::clamp(o.margin, 0.0, 0.99);
  o.rtt_alpha = std::clamp(o.rtt_alpha, 0.0, 1.0);
  o.rttvar_beta = std::clamp(o.rttvar_beta, 0.0, 1.0);
  o.loss_decrease = std::clamp(o.loss_decrease, kMinLossFactor, 1.0);
  o.min_loss_factor = std::clamp(o.min_loss_factor, kMinLossFactor, 1.0);
  if (!(o.initial_bps > 0.0) || !std::isfinite(o.initial_bps)) o.initial_bps = 1e6;
  o.initial_rtt_us = std::max<TimeUs>(0, o.initial_rtt_us);
  o.min_rtt_window_us = std::max<TimeUs>(0, o.min_rtt_window_us);
  return o;
}

}  // namespace

BandwidthEstimator::BandwidthEstimator(EstimatorOptions options)
    : options_(Sanitized(options)),
      srtt_us_(options_.initial_rtt_us),
      rttvar_us_(options_.initial_rtt_us / 2) {}

void BandwidthEstimator::OnSent(std::uint64_t id, TimeUs sent_us, std::int64_t wire_bytes) {
  wire_bytes = std::max<std::int64_t>(0, wire_bytes);
  auto [it, inserted] = in_flight_.try_emplace(id, Flight{sent_us, wire_bytes});
  if (!inserted) {  // a reused id replaces the old request
    in_flight_bytes_ -= it->second.bytes;
    it->second = Flight{sent_us, wire_bytes};
  }
  in_flight_bytes_ += wire_bytes;
}

void BandwidthEstimator::OnReply(std::uint64_t id, TimeUs received_us, TimeUs server_us) {
  const auto it = in_flight_.find(id);
  if (it == in_flight_.end()) return;
  const Flight flight = it->second;
  in_flight_.erase(it);
  in_flight_bytes_ -= flight.bytes;

  server_us = std::max<TimeUs>(0, server_us);
  const TimeUs delivered_us = received_us - server_us;
  const TimeUs rtt = std::max<TimeUs>(0, delivered_us - flight.sent_us);

  // Throughput, against the minimum RTT before this sample.
  if (!rtts_.empty() && flight.bytes > 0) {
    const TimeUs idle_link_reply_us = flight.sent_us + rtts_.front().second;
    const bool queued = last_reply_us_ >= idle_link_reply_us;
    const TimeUs interval = queued
                                ? std::max(kQueuedTransferFloorUs, delivered_us - last_reply_us_)
                                : std::max(kLoneTransferFloorUs, delivered_us - idle_link_reply_us);
    throughput_bps_.push_back(flight.bytes * 8.0 * 1e6 / static_cast<double>(interval));
    while (static_cast<int>(throughput_bps_.size()) > options_.window) throughput_bps_.pop_front();
    ++samples_;
  }
  last_reply_us_ = std::max(last_reply_us_, delivered_us);
  loss_factor_ = 1.0 - (1.0 - LossFactorAt(received_us)) / 2.0;
  last_loss_us_ = std::max(last_loss_us_, received_us);

  // RTT: RFC 6298 smoothing; the first sample sets both.
  if (rtts_.empty()) {
    srtt_us_ = rtt;
    rttvar_us_ = rtt / 2;
  } else {
    const double deviation = std::abs(static_cast<double>(srtt_us_ - rtt));
    rttvar_us_ =
        std::llround((1.0 - options_.rttvar_beta) * rttvar_us_ + options_.rttvar_beta * deviation);
    srtt_us_ = std::llround((1.0 - options_.rtt_alpha) * srtt_us_ + options_.rtt_alpha * rtt);
  }
  // Windowed minimum: a deque of increasing RTTs whose front is the minimum.
  while (!rtts_.empty() && rtts_.back().second >= rtt) rtts_.pop_back();
  rtts_.emplace_back(received_us, rtt);
  while (rtts_.front().first < received_us - options_.min_rtt_window_us) rtts_.pop_front();
}

void BandwidthEstimator::OnLost(std::uint64_t id, TimeUs now_us) {
  const auto it = in_flight_.find(id);
  if (it == in_flight_.end()) return;
  in_flight_bytes_ -= it->second.bytes;
  in_flight_.erase(it);
  loss_factor_ = std::max(options_.min_loss_factor, LossFactorAt(now_us) * options_.loss_decrease);
  last_loss_us_ = now_us;
}

double BandwidthEstimator::LossFactorAt(TimeUs now_us) const {
  if (options_.loss_recovery_us <= 0 || now_us <= last_loss_us_) return loss_factor_;
  const double halvings =
      static_cast<double>(now_us - last_loss_us_) / static_cast<double>(options_.loss_recovery_us);
  return 1.0 - (1.0 - loss_factor_) * std::exp2(-halvings);
}

double BandwidthEstimator::EstimateBps() const {
  double bps = options_.initial_bps;
  if (!throughput_bps_.empty()) {
    double inverse_sum = 0.0;
    for (double sample : throughput_bps_) inverse_sum += 1.0 / sample;
    bps = static_cast<double>(throughput_bps_.size()) / inverse_sum * (1.0 - options_.margin);
  }
  return std::max(1.0, bps * loss_factor_);
}

TimeUs BandwidthEstimator::MinRttUs() const {
  return rtts_.empty() ? options_.initial_rtt_us : rtts_.front().second;
}

TimeUs BandwidthEstimator::OldestInFlightAgeUs(TimeUs now_us) const {
  if (in_flight_.empty()) return 0;
  TimeUs oldest = in_flight_.begin()->second.sent_us;
  for (const auto& [id, flight] : in_flight_) oldest = std::min(oldest, flight.sent_us);
  return std::max<TimeUs>(0, now_us - oldest);
}

TimeUs BandwidthEstimator::PredictLatencyUs(std::int64_t wire_bytes, TimeUs now_us) const {
  const double bytes =
      static_cast<double>(in_flight_bytes_ + std::max<std::int64_t>(0, wire_bytes));
  // The loss cut as healed by now (EstimateBps reports the cut as it stands).
  const double healed = LossFactorAt(now_us) / loss_factor_;
  const double transfer_us =
      std::min(kMaxPredictionUs, bytes * 8.0 * 1e6 / (EstimateBps() * healed));
  // Stale RTT statistics fade: the minimum forgets samples older than its
  // window (also between replies), the deviation halves every second without
  // a sample, so one bad spell does not weigh on the prediction for ever.
  // (rtts_ holds increasing RTTs in time order: the first one still in the
  // window is the minimum; with none left, the newest sample.)
  TimeUs min_rtt = MinRttUs();
  if (!rtts_.empty()) {
    auto it = std::find_if(rtts_.begin(), rtts_.end(), [&](const auto& sample) {
      return sample.first >= now_us - options_.min_rtt_window_us;
    });
    min_rtt = it != rtts_.end() ? it->second : rtts_.back().second;
  }
  const double since_sample_s =
      last_reply_us_ >= 0 ? std::max<double>(0.0, (now_us - last_reply_us_) / 1e6) : 0.0;
  const auto rttvar = static_cast<TimeUs>(rttvar_us_ * std::exp2(-since_sample_s));
  const TimeUs predicted = min_rtt + rttvar + static_cast<TimeUs>(std::ceil(transfer_us));
  return std::max(predicted, OldestInFlightAgeUs(now_us));
}

}  // namespace deepcut::scheduler
