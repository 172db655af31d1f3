// CloudLink over a ZeroMQ DEALER socket connected to a deepcut-cloud ROUTER.
//
// ZMQ_IMMEDIATE makes a send fail at once while no cloud is connected (instead
// of queueing towards a peer that may never come), so the edge answers locally
// meanwhile; ZeroMQ reconnects by itself when the cloud comes back. Reconnect()
// is the "Lazy Pirate" step: close with linger 0 and open a fresh socket, which
// drops requests stuck on a dead connection.
#pragma once

#include <memory>
#include <string>
#include <zmq.hpp>

#include "transport/cloud_link.h"

namespace deepcut::transport {

struct ZmqLinkOptions {
  std::string endpoint;             // e.g. tcp://127.0.0.1:5555
  int send_high_water_mark = 256;   // messages queued towards the cloud before Send refuses
  int reconnect_interval_ms = 100;  // ZeroMQ's first reconnect delay
  int reconnect_interval_max_ms = 1000;
};

class ZmqLink final : public CloudLink {
 public:
  // Fails if the endpoint is malformed.
  static Result<std::unique_ptr<ZmqLink>> Create(ZmqLinkOptions options, Clock& clock);
  ~ZmqLink() override;

  Status Send(std::span<const std::uint8_t> message) override;
  std::optional<std::vector<std::uint8_t>> Receive(TimeUs until_us) override;
  void Reconnect() override;
  std::size_t WireBytes(std::size_t message_bytes) const override {
    return ZmtpFrameBytes(message_bytes);
  }

 private:
  ZmqLink(ZmqLinkOptions options, Clock& clock);
  Status Open();
  ZmqLinkOptions options_;
  Clock& clock_;
  zmq::context_t context_{1};
  std::unique_ptr<zmq::socket_t> socket_;
};

}  // namespace deepcut::transport
