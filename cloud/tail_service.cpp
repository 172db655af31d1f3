#include "cloud/tail_service.h"

#include <algorithm>

namespace deepcut::cloud {
namespace {

transport::Reply ErrorReply(std::uint16_t seq, transport::ReplyStatus status, std::string message) {
  transport::Reply r;
  r.seq = seq;
  r.status = status;
  r.message = std::move(message);
  return r;
}

Refusal Refuse(const char* kind, std::optional<std::uint16_t> seq, std::string message) {
  return {kind, ErrorReply(seq.value_or(0), transport::ReplyStatus::kError, std::move(message))};
}

// The memo key of a payload: rate, coding and bytes.
std::string MemoKey(const transport::Request& r) {
  std::string key(1, static_cast<char>(r.rate_index));
  key += static_cast<char>(r.coding);
  key.append(r.payload.begin(), r.payload.end());
  return key;
}

}  // namespace

Status CheckAgainstModel(const transport::Request& r, const splitnet::Manifest& m) {
  if (r.model != transport::ModelTag(m.fingerprint))
    return InvalidArgument("model tag " + std::to_string(r.model) +
                           " is not served here (serving '" + m.name + "', tag " +
                           std::to_string(transport::ModelTag(m.fingerprint)) + ")");
  if (r.rate_index < 0 || r.rate_index >= static_cast<int>(m.rates.size()))
    return InvalidArgument("rate index " + std::to_string(r.rate_index) +
                           " is not a rate of model " + m.name);
  const auto& rate = m.rates[r.rate_index];
  const size_t packed = splitnet::FeatureCodec::PackedBytes(m.bottleneck, rate);
  const size_t size = r.payload.size();
  const auto coding = static_cast<splitnet::Coding>(r.coding);
  if (coding == splitnet::Coding::kRaw && size != packed)
    return InvalidArgument("raw payload of " + std::to_string(size) + " bytes: rate " + rate.name +
                           " packs into exactly " + std::to_string(packed));
  const size_t limit = splitnet::FeatureCodec::MaxPayloadBytes(m.bottleneck, rate, coding);
  if (size > limit)
    return InvalidArgument("payload of " + std::to_string(size) + " bytes is too large for rate " +
                           rate.name + " with coding " + std::to_string(r.coding) + " (at most " +
                           std::to_string(limit) + ")");
  return Status::Ok();
}

std::vector<transport::ScoredClass> TopScores(const splitnet::Prediction& p, int k) {
  std::vector<int> order(p.probabilities.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  const size_t top = std::min<size_t>(std::max(k, 0), order.size());
  std::partial_sort(order.begin(), order.begin() + top, order.end(),
                    [&](int a, int b) { return p.probabilities[a] > p.probabilities[b]; });
  std::vector<transport::ScoredClass> out;
  for (size_t i = 0; i < top; ++i) out.push_back({order[i], p.probabilities[order[i]]});
  return out;
}

std::variant<transport::Request, Refusal> TailService::Check(
    std::span<const std::uint8_t> message) const {
  auto request = transport::DecodeRequest(message);
  if (!request.ok())
    return Refuse(message.size() > transport::kMaxMessageBytes ? "oversize" : "malformed",
                  transport::PeekRequestSeq(message), request.status().message());
  if (Status valid = CheckAgainstModel(*request, manifest_); !valid.ok())
    return Refuse("model", request->seq, valid.message());
  return std::move(request).value();
}

Refusal TailService::RefuseFrames(std::span<const std::uint8_t> first, size_t frames) const {
  return Refuse("multipart", transport::PeekRequestSeq(first),
                "a request must be one message frame; this message had " + std::to_string(frames));
}

std::optional<Refusal> TailService::Admit(const transport::Request& request, TimeUs now_us,
                                          size_t queued, double service_us) const {
  // The wait this request would see: the queue ahead of it (and itself),
  // shared by the workers. Refused now, the edge answers locally at once
  // instead of at its deadline, and no worker time goes to a lost cause.
  const double expected_us = service_us * static_cast<double>(queued + 1) /
                             static_cast<double>(std::max(1, options_.workers));
  const bool full = static_cast<int>(queued) >= options_.max_queue;
  const bool hopeless = now_us + static_cast<TimeUs>(expected_us) > ExpiresUs(request, now_us);
  if (!full && !hopeless) return std::nullopt;
  return Refusal{"busy", ErrorReply(request.seq, transport::ReplyStatus::kBusy,
                                    full ? "queue full" : "the queue would outlast the deadline")};
}

Result<std::unique_ptr<TailWorker>> TailWorker::Create(const splitnet::Manifest& manifest,
                                                       bool memoize) {
  ASSIGN_OR_RETURN(auto model, splitnet::SplitModel::Load(
                                   manifest, {.head = false, .exit = false, .tail = true}));
  return std::unique_ptr<TailWorker>(new TailWorker(manifest, std::move(model), memoize));
}

ServedBatch TailWorker::Serve(std::span<const TailJob> jobs, const Clock& clock, int top_k) {
  ServedBatch out;
  out.replies.resize(jobs.size());
  out.outcomes.assign(jobs.size(), Served::kRejected);
  const TimeUs start_us = clock.NowUs();
  std::vector<std::vector<float>> features;
  std::vector<size_t> to_run;  // job indices, in the order of `features`
  for (size_t i = 0; i < jobs.size(); ++i) {
    const transport::Request& request = jobs[i].request;
    transport::Reply& reply = out.replies[i];
    reply.seq = request.seq;
    if (start_us > jobs[i].expires_us) {
      reply =
          ErrorReply(request.seq, transport::ReplyStatus::kBusy, "deadline passed while queued");
      out.outcomes[i] = Served::kExpired;
      continue;
    }
    if (memoize_) {
      if (auto it = memo_.find(MemoKey(request)); it != memo_.end()) {
        reply.top = it->second;
        out.outcomes[i] = Served::kAnswered;
        continue;
      }
    }
    auto decoded = codec_.Decode(static_cast<splitnet::Coding>(request.coding), request.payload,
                                 manifest_.bottleneck, manifest_.rates[request.rate_index]);
    if (!decoded.ok()) {
      reply = ErrorReply(request.seq, transport::ReplyStatus::kError,
                         "payload: " + decoded.status().message());
      continue;
    }
    features.push_back(std::move(decoded).value());
    to_run.push_back(i);
  }
  const TimeUs decoded_us = clock.NowUs();
  if (!features.empty()) {
    auto predictions = model_->RunTail(features);
    ++tail_runs_;
    for (size_t k = 0; k < to_run.size(); ++k) {
      const size_t i = to_run[k];
      if (!predictions.ok()) {
        out.replies[i] = ErrorReply(jobs[i].request.seq, transport::ReplyStatus::kError,
                                    predictions.status().message());
        continue;
      }
      out.replies[i].top = TopScores((*predictions)[k], top_k);
      out.outcomes[i] = Served::kAnswered;
      if (memoize_) memo_.emplace(MemoKey(jobs[i].request), out.replies[i].top);
    }
  }
  const TimeUs done_us = clock.NowUs();
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (out.outcomes[i] != Served::kAnswered) continue;
    transport::Reply& reply = out.replies[i];
    ++out.answered;
    reply.status = transport::ReplyStatus::kOk;
    reply.class_id = reply.top.empty() ? -1 : reply.top.front().class_id;
    reply.queue_us = std::max<TimeUs>(0, start_us - jobs[i].received_us);
    reply.decode_us = std::max<TimeUs>(0, decoded_us - start_us);
    reply.tail_us = std::max<TimeUs>(0, done_us - decoded_us);
    reply.batch_size = static_cast<int>(std::max<size_t>(1, to_run.size()));
  }
  out.busy_us = done_us - start_us;
  return out;
}

}  // namespace deepcut::cloud
