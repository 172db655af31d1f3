#include "network/link_model.h"

#include <algorithm>

namespace deepcut::network {

LinkModel::LinkModel(NetTrace trace, LinkOptions options)
    : trace_(std::move(trace)), options_(options) {}

std::int64_t LinkModel::QueuedBytes(TimeUs now_us) {
  while (!queued_.empty() && queued_.front().first <= now_us) {
    queued_bytes_ -= queued_.front().second;
    queued_.pop_front();
  }
  return queued_bytes_;
}

std::optional<TimeUs> LinkModel::Send(TimeUs now_us, std::int64_t bytes) {
  bytes = std::max<std::int64_t>(bytes, 1);
  if (QueuedBytes(now_us) + bytes > options_.queue_bytes) {
    ++dropped_;
    return std::nullopt;
  }
  // An idle link wasted the opportunities that passed while nothing was queued.
  // (An opportunity partly used by the previous message keeps its credit.)
  const std::int64_t first = trace_.FirstAtOrAfter(now_us);
  if (next_opportunity_ < first) {
    next_opportunity_ = first;
    credit_ = kPacketBytes;
  }
  std::int64_t left = bytes;
  while (left > credit_) {
    left -= credit_;
    ++next_opportunity_;
    credit_ = kPacketBytes;
  }
  credit_ -= left;
  const TimeUs delivered = trace_.OpportunityUs(next_opportunity_);
  if (credit_ == 0) {
    ++next_opportunity_;
    credit_ = kPacketBytes;
  }
  queued_.emplace_back(delivered, bytes);
  queued_bytes_ += bytes;
  return delivered + static_cast<TimeUs>(options_.delay_ms * 1000.0);
}

}  // namespace deepcut::network
