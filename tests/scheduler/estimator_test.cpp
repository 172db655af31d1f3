// BandwidthEstimator against a simulated FIFO uplink, in virtual time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <queue>
#include <random>
#include <vector>

#include "scheduler/bandwidth_estimator.h"

namespace deepcut::scheduler {
namespace {

// A FIFO uplink of `bps` with a fixed propagation delay each way and a cloud
// that takes `server_us` per request (in parallel, so it never queues).
struct FifoLink {
  double bps;
  TimeUs one_way_us;
  TimeUs server_us;
  double busy_until_us = 0.0;

  // When the reply to a request of `bytes` sent at `sent_us` arrives.
  TimeUs ReplyAt(TimeUs sent_us, std::int64_t bytes) {
    const double start = std::max<double>(static_cast<double>(sent_us), busy_until_us);
    busy_until_us = start + static_cast<double>(bytes) * 8.0 * 1e6 / bps;
    return static_cast<TimeUs>(std::llround(busy_until_us)) + 2 * one_way_us + server_us;
  }
};

struct Reply {
  TimeUs at_us;
  std::uint64_t id;
  bool operator>(const Reply& o) const { return at_us > o.at_us; }
};
using ReplyQueue = std::priority_queue<Reply, std::vector<Reply>, std::greater<>>;

// Sends `count` requests every `interval_us` from `start_us` and delivers the
// replies in time order; returns the time of the last event.
TimeUs Drive(BandwidthEstimator& estimator, FifoLink& link, int count, TimeUs start_us,
             TimeUs interval_us, const std::vector<std::int64_t>& sizes,
             std::uint64_t first_id = 0) {
  ReplyQueue replies;
  TimeUs now = start_us;
  for (int k = 0; k < count; ++k) {
    const TimeUs sent = start_us + k * interval_us;
    while (!replies.empty() && replies.top().at_us <= sent) {
      estimator.OnReply(replies.top().id, replies.top().at_us, link.server_us);
      replies.pop();
    }
    const std::int64_t bytes = sizes[k % sizes.size()];
    const std::uint64_t id = first_id + k;
    estimator.OnSent(id, sent, bytes);
    replies.push({link.ReplyAt(sent, bytes), id});
    now = sent;
  }
  while (!replies.empty()) {
    estimator.OnReply(replies.top().id, replies.top().at_us, link.server_us);
    now = replies.top().at_us;
    replies.pop();
  }
  return now;
}

EstimatorOptions NoMargin() {
  EstimatorOptions o;
  o.margin = 0.0;
  return o;
}

TEST(BandwidthEstimator, ConvergesToFifoLinkRateWithBackToBackRequests) {
  for (double bps : {200e3, 1e6, 8e6}) {
    BandwidthEstimator estimator(NoMargin());
    FifoLink link{bps, 15'000, 2'000};
    // 1000 B every 0.5 ms: faster than any of these links, so requests queue.
    Drive(estimator, link, 200, 0, 500, {1000});
    ASSERT_TRUE(estimator.HasSamples());
    EXPECT_NEAR(estimator.EstimateBps(), bps, 0.25 * bps) << "link " << bps;
  }
}

TEST(BandwidthEstimator, ConvergesWithMixedRequestSizes) {
  BandwidthEstimator estimator(NoMargin());
  FifoLink link{500e3, 10'000, 1'000};
  Drive(estimator, link, 300, 0, 2'000, {117, 419, 215, 44, 166, 68});
  EXPECT_NEAR(estimator.EstimateBps(), 500e3, 0.25 * 500e3);
}

TEST(BandwidthEstimator, MarginMakesTheEstimateConservative) {
  EstimatorOptions options;  // margin 0.2
  BandwidthEstimator estimator(options);
  FifoLink link{1e6, 5'000, 0};
  Drive(estimator, link, 100, 0, 1'000, {1000});
  EXPECT_NEAR(estimator.EstimateBps(), 0.8e6, 0.05e6);
  EXPECT_LT(estimator.EstimateBps(), 1e6);
}

TEST(BandwidthEstimator, LoneRequestsOnALongFastLinkDoNotLookSlow) {
  // 100 B at 30 frames/s over a 10 Mbit/s link with a 40 ms RTT: each request
  // goes alone, though the previous reply is often still on its way back.
  BandwidthEstimator estimator;
  FifoLink link{10e6, 20'000, 0};
  const TimeUs end = Drive(estimator, link, 300, 0, 33'333, {100});
  EXPECT_GT(estimator.EstimateBps(), 300e3);
  // A new lone request is predicted close to the real 40 ms, not many times it.
  const TimeUs predicted = estimator.PredictLatencyUs(100, end);
  EXPECT_GE(predicted, 40'000);
  EXPECT_LT(predicted, 60'000);
}

TEST(BandwidthEstimator, InitialValuesBeforeAnySample) {
  EstimatorOptions options;
  options.initial_bps = 2e6;
  options.initial_rtt_us = 30'000;
  BandwidthEstimator estimator(options);
  EXPECT_FALSE(estimator.HasSamples());
  EXPECT_DOUBLE_EQ(estimator.EstimateBps(), 2e6);
  EXPECT_EQ(estimator.SmoothedRttUs(), 30'000);
  EXPECT_EQ(estimator.RttVarUs(), 15'000);
  EXPECT_EQ(estimator.MinRttUs(), 30'000);
  EXPECT_EQ(estimator.InFlight(), 0);
  EXPECT_EQ(estimator.OldestInFlightAgeUs(1'000'000), 0);
}

TEST(BandwidthEstimator, EstimateDropsAfterLossesAndRecoversWithReplies) {
  BandwidthEstimator estimator(NoMargin());
  FifoLink link{1e6, 5'000, 0};
  TimeUs now = Drive(estimator, link, 100, 0, 1'000, {1000});
  const double before = estimator.EstimateBps();
  for (std::uint64_t id = 1000; id < 1003; ++id) {
    estimator.OnSent(id, now, 1000);
    estimator.OnLost(id, now + 100'000);
  }
  EXPECT_EQ(estimator.InFlight(), 0);
  EXPECT_EQ(estimator.InFlightBytes(), 0);
  EXPECT_NEAR(estimator.EstimateBps(), before * 0.125, 1e-6 * before);  // 0.5^3

  // Replies bring it back gradually: after one it is between the two.
  now += 200'000;
  link.busy_until_us = static_cast<double>(now);
  Drive(estimator, link, 1, now, 1'000, {1000}, 2000);
  const double after_one = estimator.EstimateBps();
  EXPECT_GT(after_one, before * 0.125);
  EXPECT_LT(after_one, before);
  Drive(estimator, link, 30, now + 100'000, 1'000, {1000}, 3000);
  EXPECT_NEAR(estimator.EstimateBps(), before, 0.05 * before);
}

TEST(BandwidthEstimator, ManyLossesKeepTheEstimatePositive) {
  BandwidthEstimator estimator;
  for (std::uint64_t id = 0; id < 5000; ++id) {
    estimator.OnSent(id, static_cast<TimeUs>(id) * 1000, 100);
    estimator.OnLost(id, static_cast<TimeUs>(id) * 1000 + 500);
  }
  EXPECT_GT(estimator.EstimateBps(), 0.0);
  // Cut to its floor (min_loss_factor of the initial estimate), no further.
  EXPECT_NEAR(estimator.EstimateBps(), 1e6 * EstimatorOptions{}.min_loss_factor, 1.0);
}

TEST(BandwidthEstimator, PredictionGrowsWithInFlightBytes) {
  BandwidthEstimator estimator(NoMargin());
  FifoLink link{1e6, 5'000, 0};
  TimeUs now = Drive(estimator, link, 50, 0, 1'000, {1000});
  const TimeUs idle = estimator.PredictLatencyUs(1000, now);
  EXPECT_GE(idle, estimator.MinRttUs());
  estimator.OnSent(900, now, 10'000);
  const TimeUs loaded = estimator.PredictLatencyUs(1000, now);
  // 10 kB at ~1 Mbit/s is ~80 ms more.
  EXPECT_GT(loaded, idle + 60'000);
  estimator.OnSent(901, now, 10'000);
  EXPECT_GT(estimator.PredictLatencyUs(1000, now), loaded + 60'000);
  EXPECT_EQ(estimator.InFlight(), 2);
  EXPECT_EQ(estimator.InFlightBytes(), 20'000);
  // And with the size of the request itself.
  EXPECT_GT(estimator.PredictLatencyUs(20'000, now), estimator.PredictLatencyUs(100, now));
}

TEST(BandwidthEstimator, PredictionIsAtLeastTheOldestInFlightAgeWhenRepliesStop) {
  BandwidthEstimator estimator;
  FifoLink link{1e6, 5'000, 0};
  const TimeUs now = Drive(estimator, link, 20, 0, 10'000, {500});
  estimator.OnSent(100, now + 1'000, 500);
  estimator.OnSent(101, now + 2'000, 500);
  for (TimeUs later : {TimeUs{1'000'000}, TimeUs{5'000'000}, TimeUs{60'000'000}}) {
    EXPECT_EQ(estimator.OldestInFlightAgeUs(now + later), later - 1'000);
    EXPECT_GE(estimator.PredictLatencyUs(500, now + later), later - 1'000);
  }
  // Once the oldest leaves, the next one's age counts.
  estimator.OnLost(100, now + 5'000'000);
  EXPECT_EQ(estimator.OldestInFlightAgeUs(now + 5'000'000), 5'000'000 - 2'000);
}

TEST(BandwidthEstimator, RttFollowsRfc6298AndTakesOutServerTime) {
  BandwidthEstimator estimator;
  estimator.OnSent(1, 0, 100);
  estimator.OnReply(1, 25'000, 5'000);  // 20 ms on the network
  EXPECT_EQ(estimator.SmoothedRttUs(), 20'000);
  EXPECT_EQ(estimator.RttVarUs(), 10'000);
  EXPECT_EQ(estimator.MinRttUs(), 20'000);

  estimator.OnSent(2, 100'000, 100);
  estimator.OnReply(2, 140'000, 0);  // 40 ms
  // rttvar = 0.75 * 10000 + 0.25 * |20000 - 40000|; srtt = 0.875 * 20000 + 0.125 * 40000
  EXPECT_EQ(estimator.RttVarUs(), 12'500);
  EXPECT_EQ(estimator.SmoothedRttUs(), 22'500);
  EXPECT_EQ(estimator.MinRttUs(), 20'000);

  // A server time larger than the whole round trip gives an RTT of 0, not less.
  estimator.OnSent(3, 200'000, 100);
  estimator.OnReply(3, 210'000, 50'000);
  EXPECT_EQ(estimator.MinRttUs(), 0);
  EXPECT_GE(estimator.SmoothedRttUs(), 0);
}

TEST(BandwidthEstimator, SmoothedRttConvergesToASteadyRtt) {
  BandwidthEstimator estimator;
  for (std::uint64_t id = 0; id < 200; ++id) {
    const TimeUs sent = static_cast<TimeUs>(id) * 100'000;
    estimator.OnSent(id, sent, 100);
    estimator.OnReply(id, sent + 30'000 + (id % 2 ? 2'000 : -2'000), 0);
  }
  EXPECT_NEAR(estimator.SmoothedRttUs(), 30'000, 1'000);
  EXPECT_GT(estimator.RttVarUs(), 1'000);
  EXPECT_LT(estimator.RttVarUs(), 5'000);
  EXPECT_EQ(estimator.MinRttUs(), 28'000);
}

TEST(BandwidthEstimator, MinRttForgetsSamplesOlderThanItsWindow) {
  EstimatorOptions options;
  options.min_rtt_window_us = 10'000'000;
  BandwidthEstimator estimator(options);
  estimator.OnSent(1, 0, 100);
  estimator.OnReply(1, 10'000, 0);  // 10 ms
  for (std::uint64_t id = 2; id < 40; ++id) {
    const TimeUs sent = static_cast<TimeUs>(id) * 500'000;
    estimator.OnSent(id, sent, 100);
    estimator.OnReply(id, sent + 50'000, 0);  // 50 ms from now on
    const TimeUs received = sent + 50'000;
    if (received <= 10'010'000) {
      EXPECT_EQ(estimator.MinRttUs(), 10'000) << "at " << received;
    } else {
      EXPECT_EQ(estimator.MinRttUs(), 50'000) << "at " << received;
    }
  }
}

TEST(BandwidthEstimator, UnknownIdsAreIgnored) {
  BandwidthEstimator estimator(NoMargin());
  FifoLink link{1e6, 5'000, 0};
  const TimeUs now = Drive(estimator, link, 50, 0, 1'000, {1000});
  estimator.OnSent(7777, now, 300);
  const double bps = estimator.EstimateBps();
  const TimeUs srtt = estimator.SmoothedRttUs();
  const TimeUs rttvar = estimator.RttVarUs();
  const TimeUs min_rtt = estimator.MinRttUs();

  estimator.OnReply(123456, now + 1'000, 0);
  estimator.OnLost(654321, now + 2'000);
  estimator.OnReply(3, now + 3'000, 0);  // answered long ago
  estimator.OnLost(4, now + 4'000);

  EXPECT_DOUBLE_EQ(estimator.EstimateBps(), bps);
  EXPECT_EQ(estimator.SmoothedRttUs(), srtt);
  EXPECT_EQ(estimator.RttVarUs(), rttvar);
  EXPECT_EQ(estimator.MinRttUs(), min_rtt);
  EXPECT_EQ(estimator.InFlight(), 1);
  EXPECT_EQ(estimator.InFlightBytes(), 300);
}

TEST(BandwidthEstimator, ALostRequestsLateReplyIsIgnored) {
  BandwidthEstimator estimator;
  estimator.OnSent(1, 0, 100);
  estimator.OnLost(1, 100'000);
  const TimeUs srtt = estimator.SmoothedRttUs();
  estimator.OnReply(1, 150'000, 0);
  EXPECT_EQ(estimator.SmoothedRttUs(), srtt);
  EXPECT_FALSE(estimator.HasSamples());
}

TEST(BandwidthEstimator, HarmonicMeanResistsAFastOutlier) {
  BandwidthEstimator estimator(NoMargin());
  FifoLink link{1e6, 5'000, 0};
  Drive(estimator, link, 60, 0, 1'000, {1000});
  const double steady = estimator.EstimateBps();
  // Two replies 10 us apart look like a 800 Mbit/s link for one sample.
  TimeUs t = 10'000'000;
  estimator.OnSent(500, t, 1000);
  estimator.OnSent(501, t, 1000);
  estimator.OnReply(500, t + 26'000, 0);  // 8 ms over the 18 ms minimum: 1 Mbit/s
  estimator.OnReply(501, t + 26'010, 0);
  EXPECT_LT(estimator.EstimateBps(), steady * 1.2);
}

}  // namespace
}  // namespace deepcut::scheduler

namespace deepcut::scheduler {
namespace {

// After an outage nothing comes back, so only time can heal the loss cut:
// otherwise a policy that trusts the prediction would never send again.
TEST(BandwidthEstimatorRecovery, LossCutHealsWithTimeWithoutReplies) {
  BandwidthEstimator e;
  for (std::uint64_t id = 1; id <= 12; ++id) {
    e.OnSent(id, 0, 100);
    e.OnLost(id, 1'000'000);
  }
  const TimeUs right_after = e.PredictLatencyUs(100, 1'000'000);
  const TimeUs later = e.PredictLatencyUs(100, 11'000'000);                  // 10 s on
  EXPECT_LT(later, right_after);                                             // healed
  EXPECT_NEAR(later, BandwidthEstimator().PredictLatencyUs(100, 0), 2'000);  // almost all the way
}

}  // namespace
}  // namespace deepcut::scheduler
