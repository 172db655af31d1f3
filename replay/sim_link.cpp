#include "replay/sim_link.h"

#include <algorithm>

#include "cloud/cloud_server.h"

namespace deepcut::replay {

constexpr int kTopK = 3;

Result<std::unique_ptr<InProcessCloud>> InProcessCloud::Create(const splitnet::Manifest& manifest) {
  ASSIGN_OR_RETURN(auto model, splitnet::SplitModel::Load(
                                   manifest, {.head = false, .exit = false, .tail = true}));
  return std::unique_ptr<InProcessCloud>(new InProcessCloud(manifest, std::move(model)));
}

std::vector<std::uint8_t> InProcessCloud::Answer(const Result<transport::Request>& request,
                                                 TimeUs queue_us, TimeUs tail_us, bool expired) {
  transport::Reply reply;
  Status valid = request.ok() ? cloud::CheckAgainstModel(*request, manifest_) : request.status();
  reply.seq = request.ok() ? request->seq : 0;
  if (!valid.ok()) {
    reply.status = transport::ReplyStatus::kError;
    reply.message = valid.message();
    return transport::EncodeReply(reply);
  }
  if (expired) {
    reply.status = transport::ReplyStatus::kBusy;
    reply.message = "deadline passed while queued";
    return transport::EncodeReply(reply);
  }
  std::string key(1, static_cast<char>(request->rate_index));
  key += static_cast<char>(request->coding);
  key.append(request->payload.begin(), request->payload.end());
  auto it = memo_.find(key);
  if (it == memo_.end()) {
    const auto& rate = manifest_.rates[request->rate_index];
    auto features = codec_.Decode(static_cast<splitnet::Coding>(request->coding), request->payload,
                                  manifest_.bottleneck, rate);
    if (!features.ok()) {
      reply.status = transport::ReplyStatus::kError;
      reply.message = "payload: " + features.status().message();
      return transport::EncodeReply(reply);
    }
    auto predictions = model_->RunTail({*features});
    ++tail_runs_;
    if (!predictions.ok()) {
      reply.status = transport::ReplyStatus::kError;
      reply.message = predictions.status().message();
      return transport::EncodeReply(reply);
    }
    it = memo_.emplace(std::move(key), cloud::TopScores((*predictions)[0], kTopK)).first;
  }
  reply.status = transport::ReplyStatus::kOk;
  reply.top = it->second;
  reply.class_id = reply.top.empty() ? -1 : reply.top.front().class_id;
  reply.queue_us = queue_us;
  reply.tail_us = tail_us;
  reply.batch_size = 1;
  return transport::EncodeReply(reply);
}

SimulatedCloudLink::SimulatedCloudLink(VirtualClock& clock, InProcessCloud& cloud, NetTrace uplink,
                                       NetTrace downlink, SimLinkOptions options)
    : clock_(clock),
      cloud_(cloud),
      uplink_(std::move(uplink), options.uplink),
      downlink_(std::move(downlink), options.downlink),
      options_(options) {}

Status SimulatedCloudLink::Send(std::span<const std::uint8_t> message) {
  const TimeUs now = clock_.NowUs();
  const auto wire = static_cast<std::int64_t>(WireBytes(message.size()));
  uplink_bytes_ += wire;
  // A message the uplink queue drops is gone, as on a real network: the edge
  // learns it only by the missing reply.
  auto at_cloud = uplink_.Send(now, wire);
  if (!at_cloud) return Status::Ok();
  const TimeUs start = std::max(*at_cloud, server_free_us_);
  auto request = transport::DecodeRequest(message);
  const TimeUs expires = request.ok() ? *at_cloud + TimeUs{request->deadline_ms} * 1000 : *at_cloud;
  const bool expired = request.ok() && start > expires;
  const TimeUs cloud_us = expired ? 0 : static_cast<TimeUs>(options_.cloud_ms * 1000.0);
  server_free_us_ = start + cloud_us;
  auto reply = cloud_.Answer(request, start - *at_cloud, cloud_us, expired);
  const auto reply_wire = static_cast<std::int64_t>(WireBytes(reply.size()));
  downlink_bytes_ += reply_wire;
  auto at_edge = downlink_.Send(server_free_us_, reply_wire);
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
