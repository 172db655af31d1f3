// The replay's path to the cloud: a CloudLink over two LinkModels (uplink for
// requests, downlink for replies) and an in-process cloud that runs the real
// tail on the real request bytes, all in virtual time.
//
// The cloud is one server taking requests in arrival order; each takes a
// fixed `cloud_ms` of virtual time (the real tail's wall time would make the
// replay depend on the machine). It is the real cloud's TailService: the same
// checks, admission ("busy" when its backlog would outlast a deadline) and
// replies. Tail answers are memoised by (rate, payload): the same features give
// the same answer, and a replay of several policies sends the same frames often.
//
// Thread-safety: one thread; the clock is the replay's VirtualClock.
#pragma once

#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "cloud/tail_service.h"
#include "core/clock.h"
#include "harvest/sink.h"
#include "network/link_model.h"
#include "transport/cloud_link.h"

namespace deepcut::replay {

// The cloud's own TailService and a TailWorker, behind a function call: one
// server in virtual time, answering exactly as deepcut-cloud would.
class InProcessCloud {
 public:
  // `cloud_ms`: virtual time the server spends per request.
  static Result<std::unique_ptr<InProcessCloud>> Create(const splitnet::Manifest& manifest,
                                                        double cloud_ms);
  // The reply to one message that reached the cloud at `arrived_us`, and when
  // the cloud sends it.
  std::pair<std::vector<std::uint8_t>, TimeUs> Answer(std::span<const std::uint8_t> message,
                                                      TimeUs arrived_us);
  // Harvest chunks go to `sink` (acknowledged at once, on arrival); nullptr:
  // they get no ack, as from a cloud without a harvest store. Borrowed.
  void SetHarvestSink(harvest::HarvestSink* sink) { sink_ = sink; }
  // Forgets the server's backlog (a new replay run).
  void Reset() { server_free_us_ = 0; }
  std::int64_t tail_runs() const { return worker_->tail_runs(); }

 private:
  InProcessCloud(const splitnet::Manifest& manifest, std::unique_ptr<cloud::TailWorker> worker,
                 double cloud_ms)
      : service_(manifest, {}), worker_(std::move(worker)), cloud_us_(cloud_ms * 1000.0) {}
  cloud::TailService service_;
  std::unique_ptr<cloud::TailWorker> worker_;
  double cloud_us_;
  TimeUs server_free_us_ = 0;
  harvest::HarvestSink* sink_ = nullptr;
};

struct SimLinkOptions {
  double cloud_ms = 2.0;  // virtual time the cloud spends per request
  network::LinkOptions uplink;
  network::LinkOptions downlink;
};

class SimulatedCloudLink final : public transport::CloudLink {
 public:
  SimulatedCloudLink(VirtualClock& clock, InProcessCloud& cloud, network::NetTrace uplink,
                     network::NetTrace downlink, SimLinkOptions options);
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
  network::LinkModel uplink_, downlink_;
  SimLinkOptions options_;
  std::uint64_t order_ = 0;
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<>> replies_;
  std::int64_t uplink_bytes_ = 0, downlink_bytes_ = 0;
};

}  // namespace deepcut::replay
