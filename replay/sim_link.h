// The replay's path to the cloud: a CloudLink over two LinkModels (uplink for
// requests, downlink for replies) and an in-process cloud that runs the real
// tail on the real request bytes, all in virtual time.
//
// The cloud is one server taking requests in arrival order; each takes a
// fixed `cloud_ms` of virtual time (the real tail's wall time would make the
// replay depend on the machine). As the real cloud, it answers "busy" to a
// request whose deadline passed while it waited, and an error reply to a bad
// one. Tail answers are memoised by (rate, payload): the same features give
// the same answer, and a replay of several policies sends the same frames often.
//
// Thread-safety: one thread; the clock is the replay's VirtualClock.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "replay/link_model.h"
#include "splitnet/feature_codec.h"
#include "splitnet/split_model.h"
#include "transport/cloud_link.h"
#include "transport/protocol.h"

namespace deepcut::replay {

// The real tail behind a function call.
class InProcessCloud {
 public:
  static Result<std::unique_ptr<InProcessCloud>> Create(const splitnet::Manifest& manifest);
  // The reply to one request message (as decoded, or the decoder's error), as
  // the real cloud would send it, with `queue_us` and `tail_us` as its timings.
  std::vector<std::uint8_t> Answer(const Result<transport::Request>& request, TimeUs queue_us,
                                   TimeUs tail_us, bool expired);
  std::int64_t tail_runs() const { return tail_runs_; }

 private:
  InProcessCloud(const splitnet::Manifest& manifest, std::unique_ptr<splitnet::SplitModel> model)
      : manifest_(manifest), model_(std::move(model)) {}
  const splitnet::Manifest& manifest_;
  std::unique_ptr<splitnet::SplitModel> model_;
  splitnet::FeatureCodec codec_;
  std::unordered_map<std::string, std::vector<transport::ScoredClass>> memo_;
  std::int64_t tail_runs_ = 0;
};

struct SimLinkOptions {
  double cloud_ms = 2.0;  // virtual time the cloud spends per request
  LinkOptions uplink;
  LinkOptions downlink;
};

class SimulatedCloudLink final : public transport::CloudLink {
 public:
  SimulatedCloudLink(VirtualClock& clock, InProcessCloud& cloud, NetTrace uplink, NetTrace downlink,
                     SimLinkOptions options);
  Status Send(std::span<const std::uint8_t> message) override;
  std::optional<std::vector<std::uint8_t>> Receive(TimeUs until_us) override;
  void Reconnect() override;
  std::size_t WireBytes(std::size_t message_bytes) const override {
    return transport::ZmtpFrameBytes(message_bytes);
  }

  std::int64_t uplink_bytes() const { return uplink_bytes_; }
  std::int64_t downlink_bytes() const { return downlink_bytes_; }
  std::int64_t dropped() const { return uplink_.dropped() + downlink_.dropped(); }

 private:
  struct InFlight {
    TimeUs arrives_us;
    std::uint64_t order;  // ties keep sending order
    std::vector<std::uint8_t> bytes;
    bool operator>(const InFlight& o) const {
      return arrives_us != o.arrives_us ? arrives_us > o.arrives_us : order > o.order;
    }
  };
  VirtualClock& clock_;
  InProcessCloud& cloud_;
  LinkModel uplink_, downlink_;
  SimLinkOptions options_;
  TimeUs server_free_us_ = 0;
  std::uint64_t order_ = 0;
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<>> replies_;
  std::int64_t uplink_bytes_ = 0, downlink_bytes_ = 0;
};

}  // namespace deepcut::replay
