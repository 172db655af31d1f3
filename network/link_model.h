// One direction of an emulated link, in virtual time: a drop-tail FIFO of
// bytes drained at a NetTrace's delivery opportunities (each carries up to
// 1500 bytes; an opportunity that finds the queue empty is lost, as in
// mahimahi), then a fixed one-way delay.
//
// Because the queue is FIFO, a message's arrival time is known when it is
// queued; Send returns it (or that the message was dropped).
//
// Thread-safety: one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>

#include "core/clock.h"
#include "network/net_trace.h"

namespace deepcut::network {

struct LinkOptions {
  double delay_ms = 20.0;              // one-way propagation delay
  std::int64_t queue_bytes = 150'000;  // drop-tail limit of the FIFO (100 packets)
};

class LinkModel {
 public:
  LinkModel(NetTrace trace, LinkOptions options);
  // Queues `bytes` at `now_us`; the time they have all arrived at the far end,
  // or nullopt if the queue had no room (the message is lost).
  std::optional<TimeUs> Send(TimeUs now_us, std::int64_t bytes);
  // Bytes queued and not yet delivered at `now_us`.
  std::int64_t QueuedBytes(TimeUs now_us);
  std::int64_t dropped() const { return dropped_; }
  const NetTrace& trace() const { return trace_; }

 private:
  NetTrace trace_;
  LinkOptions options_;
  std::int64_t next_opportunity_ = -1;  // opportunity the queue's tail is being drained by
  std::int64_t credit_ = 0;             // bytes left in that opportunity
  std::deque<std::pair<TimeUs, std::int64_t>> queued_;  // (delivered at, bytes)
  std::int64_t queued_bytes_ = 0;
  std::int64_t dropped_ = 0;
};

}  // namespace deepcut::network
