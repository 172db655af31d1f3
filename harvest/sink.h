// The cloud's end of harvesting (docs/harvest.md): takes harvest chunks from
// any number of edges, keeps them in the cloud's store, and acknowledges each
// one once it is committed. An item is stored when its last chunk is in; a
// chunk or an item sent again (after a lost ack, a reconnect or an edge
// restart) is acknowledged again and stored once.
//
// Refused for good (an ack with ok=false, so the edge stops sending it): a
// chunk from a package with another model tag, and an item whose bytes do not
// decode. A store that cannot be written gets no ack at all: the edge sends
// again later.
//
// Thread-safety: one thread (the cloud's socket thread, or the replay's).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "core/status.h"
#include "harvest/store.h"
#include "transport/protocol.h"

namespace deepcut::harvest {

struct SinkCounters {
  std::int64_t chunks = 0;
  std::int64_t items = 0;       // stored
  std::int64_t duplicates = 0;  // chunks of items stored already
  std::int64_t refused = 0;
  std::int64_t store_errors = 0;
  std::int64_t bytes = 0;  // chunk messages received
};

class HarvestSink {
 public:
  static Result<std::unique_ptr<HarvestSink>> Open(const std::string& path,
                                                   const splitnet::Manifest& manifest);
  // The ack to send back for one chunk message; empty when none should go
  // (the store failed: the edge will resend).
  std::optional<transport::HarvestAck> Receive(std::span<const std::uint8_t> message);
  const SinkCounters& counters() const { return counters_; }
  HarvestStore& store() { return *store_; }

 private:
  HarvestSink(std::unique_ptr<HarvestStore> store, std::uint16_t tag)
      : store_(std::move(store)), tag_(tag) {}
  std::unique_ptr<HarvestStore> store_;
  std::uint16_t tag_;
  SinkCounters counters_;
  std::int64_t last_error_log_ = 0;
};

}  // namespace deepcut::harvest
