#include "harvest/sink.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace deepcut::harvest {

Result<std::unique_ptr<HarvestSink>> HarvestSink::Open(const std::string& path,
                                                       const splitnet::Manifest& manifest) {
  ASSIGN_OR_RETURN(auto store, HarvestStore::Open(path, StoreRole::kCloud, IdentityOf(manifest)));
  return std::unique_ptr<HarvestSink>(
      new HarvestSink(std::move(store), transport::ModelTag(manifest.fingerprint)));
}

std::optional<transport::HarvestAck> HarvestSink::Receive(std::span<const std::uint8_t> message) {
  counters_.bytes += static_cast<std::int64_t>(message.size());
  auto chunk = transport::DecodeHarvestChunk(message);
  if (!chunk.ok()) {
    // Nothing to name in an ack: the edge's message was not readable.
    ++counters_.refused;
    spdlog::warn("harvest: ignoring a malformed chunk: {}", chunk.status().message());
    return std::nullopt;
  }
  ++counters_.chunks;
  transport::HarvestAck ack{.edge = chunk->edge, .item = chunk->item, .index = chunk->index};
  auto refuse = [&](const std::string& why) {
    ++counters_.refused;
    ack.ok = false;
    ack.message = why;
    return ack;
  };
  if (chunk->model != tag_)
    return refuse("model tag " + std::to_string(chunk->model) + " is not this cloud's (" +
                  std::to_string(tag_) + ")");
  auto fail = [&](const Status& s) -> std::optional<transport::HarvestAck> {
    ++counters_.store_errors;
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::steady_clock::now().time_since_epoch())
                         .count();
    if (now - last_error_log_ >= 60) {
      spdlog::error("harvest: {} (uploads are not acknowledged until it can be written)",
                    s.message());
      last_error_log_ = now;
    }
    return std::nullopt;
  };
  auto have = store_->Has(chunk->edge, chunk->item);
  if (!have.ok()) return fail(have.status());
  if (*have) {
    ++counters_.duplicates;
    return ack;
  }
  auto bytes = store_->PutChunk(chunk->edge, chunk->item, static_cast<int>(chunk->index),
                                static_cast<int>(chunk->count), chunk->payload);
  if (!bytes.ok()) return fail(bytes.status());
  if (!*bytes) return ack;  // more chunks to come
  auto record = DecodeRecord(**bytes);
  if (!record.ok()) return refuse(record.status().message());
  if (record->edge != chunk->edge || record->item != chunk->item)
    return refuse("the item's record names another edge or item");
  auto added = store_->Complete(*record);
  if (!added.ok()) return fail(added.status());
  if (*added)
    ++counters_.items;
  else
    ++counters_.duplicates;
  return ack;
}

}  // namespace deepcut::harvest
