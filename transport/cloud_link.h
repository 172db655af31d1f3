// The edge's view of the path to the cloud: send one request message, receive
// reply messages. The real link is ZmqLink (a ZeroMQ DEALER); replay swaps in a
// simulated link with an in-process cloud, and the edge runtime cannot tell.
//
// Thread-safety: a CloudLink belongs to the one thread that drives the edge.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace deepcut::transport {

class CloudLink {
 public:
  virtual ~CloudLink() = default;
  // Queues one message without blocking. Unavailable when no cloud is
  // connected or the send queue is full: the caller answers locally.
  virtual Status Send(std::span<const std::uint8_t> message) = 0;
  // Waits until a message arrives or the clock reaches `until_us`; returns
  // early, with nothing, when requests were lost (TakeLost has some).
  virtual std::optional<std::vector<std::uint8_t>> Receive(TimeUs until_us) = 0;
  // Drops the connection and everything queued on it, then connects anew.
  virtual void Reconnect() = 0;
  // Bytes one message of `message_bytes` occupies on the wire, framing included.
  virtual std::size_t WireBytes(std::size_t message_bytes) const = 0;
  // The seqs of requests that went to a cloud replica which has since gone
  // (its connection dropped, or the link replaced it): no reply will come on
  // that way, so the caller may send them again. Each is reported once.
  virtual std::vector<std::uint16_t> TakeLost() { return {}; }
};

// ZMTP 3 frame header: 1 flag byte plus a 1-byte size (short frames) or an
// 8-byte size (long frames).
inline std::size_t ZmtpFrameBytes(std::size_t message_bytes) {
  return message_bytes + (message_bytes <= 255 ? 2 : 9);
}

}  // namespace deepcut::transport
