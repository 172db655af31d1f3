#include "replay/sim_link.h"

#include <algorithm>

namespace deepcut::replay {

Result<std::unique_ptr<InProcessCloud>> InProcessCloud::Create(const splitnet::Manifest& manifest,
                                                               double cloud_ms) {
  if (!(cloud_ms >= 0)) return InvalidArgument("cloud time must be >= 0 ms");
  ASSIGN_OR_RETURN(auto worker, cloud::TailWorker::Create(manifest, /*memoize=*/true));
  return std::unique_ptr<InProcessCloud>(new InProcessCloud(manifest, std::move(worker), cloud_ms));
}

std::pair<std::vector<std::uint8_t>, TimeUs> InProcessCloud::Answer(
    std::span<const std::uint8_t> message, TimeUs arrived_us) {
  if (transport::PeekKind(message) == transport::kKindHarvestChunk) {
    if (!sink_) return {{}, arrived_us};
    const auto ack = sink_->Receive(message);
    if (!ack) return {{}, arrived_us};
    return {transport::EncodeHarvestAck(*ack), arrived_us};
  }
  // Refusals leave at once, as from the real cloud's socket thread.
  auto checked = service_.Check(message);
  if (auto* refusal = std::get_if<cloud::Refusal>(&checked))
    return {transport::EncodeReply(refusal->reply), arrived_us};
  auto& request = std::get<transport::Request>(checked);
  // One server: the requests ahead are its backlog, at cloud_us each.
  const TimeUs backlog_us = std::max<TimeUs>(0, server_free_us_ - arrived_us);
  const size_t queued =
      cloud_us_ > 0 ? static_cast<size_t>(static_cast<double>(backlog_us) / cloud_us_) : 0;
  if (auto busy = service_.Admit(request, arrived_us, queued, cloud_us_))
    return {transport::EncodeReply(busy->reply), arrived_us};
  const TimeUs start_us = arrived_us + backlog_us;
  const TimeUs expires_us = cloud::TailService::ExpiresUs(request, arrived_us);
  const cloud::TailJob job{std::move(request), arrived_us, expires_us};
  VirtualClock at_start(start_us);
  auto served = worker_->Serve(std::span(&job, 1), at_start, service_.options().top_k);
  transport::Reply& reply = served.replies.front();
  const bool answered = served.outcomes.front() == cloud::Served::kAnswered;
  // The virtual server's own timing: the real tail's wall time would make the
  // replay depend on the machine.
  const TimeUs cloud_us = answered ? static_cast<TimeUs>(cloud_us_) : 0;
  if (answered) {
    reply.queue_us = start_us - arrived_us;
    reply.decode_us = 0;
    reply.tail_us = cloud_us;
  }
  server_free_us_ = start_us + cloud_us;
  return {transport::EncodeReply(reply), server_free_us_};
}

SimulatedCloudLink::SimulatedCloudLink(VirtualClock& clock, InProcessCloud& cloud,
                                       network::NetTrace uplink, network::NetTrace downlink,
                                       SimLinkOptions options)
    : clock_(clock),
      cloud_(cloud),
      uplink_(std::move(uplink), options.uplink),
      downlink_(std::move(downlink), options.downlink),
      options_(options) {
  cloud_.Reset();
}

Status SimulatedCloudLink::Send(std::span<const std::uint8_t> message) {
  const TimeUs now = clock_.NowUs();
  const auto wire = static_cast<std::int64_t>(WireBytes(message.size()));
  uplink_bytes_ += wire;
  // A message the uplink queue drops is gone, as on a real network: the edge
  // learns it only by the missing reply.
  auto at_cloud = uplink_.Send(now, wire);
  if (!at_cloud) return Status::Ok();
  auto [reply, sent_us] = cloud_.Answer(message, *at_cloud);
  if (reply.empty()) return Status::Ok();  // nothing comes back
  const auto reply_wire = static_cast<std::int64_t>(WireBytes(reply.size()));
  downlink_bytes_ += reply_wire;
  auto at_edge = downlink_.Send(sent_us, reply_wire);
  if (!at_edge) return Status::Ok();
  replies_.push(InFlight{*at_edge, order_++, std::move(reply)});
  return Status::Ok();
}

std::optional<std::vector<std::uint8_t>> SimulatedCloudLink::Receive(TimeUs until_us) {
  if (!replies_.empty() && replies_.top().arrives_us <= until_us) {
    clock_.SleepUntilUs(replies_.top().arrives_us);
    auto bytes = replies_.top().bytes;
    replies_.pop();
    return bytes;
  }
  clock_.SleepUntilUs(until_us);
  return std::nullopt;
}

// A reconnect drops what the old connection still held (replies on their way).
void SimulatedCloudLink::Reconnect() {
  while (!replies_.empty()) replies_.pop();
}

}  // namespace deepcut::replay
