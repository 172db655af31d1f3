#include "edge/edge_runtime.h"

#include <chrono>

#include <filesystem>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <opencv2/imgproc.hpp>

#include "transport/protocol.h"

namespace deepcut::edge {

transport::Request OffloadRequest(const splitnet::Manifest& m, int rate_index,
                                  splitnet::EncodedFeatures encoded, std::uint32_t deadline_ms) {
  transport::Request request;
  request.model = transport::ModelTag(m.fingerprint);
  request.rate_index = rate_index;
  request.deadline_ms = deadline_ms;
  request.coding = static_cast<int>(encoded.coding);
  request.payload = std::move(encoded.payload);
  return request;
}

Result<std::vector<OffloadAtRate>> CodeEveryRate(
    const splitnet::Manifest& m, splitnet::FeatureCodec& codec, std::span<const float> features,
    std::uint32_t deadline_ms, const std::function<std::size_t(std::size_t)>& wire_bytes) {
  std::vector<OffloadAtRate> out;
  for (size_t r = 0; r < m.rates.size(); ++r) {
    ASSIGN_OR_RETURN(auto encoded, codec.Encode(features, m.bottleneck, m.rates[r]));
    const auto request = OffloadRequest(m, static_cast<int>(r), encoded, deadline_ms);
    const auto bytes = wire_bytes(transport::EncodeRequest(request).size());
    out.push_back({std::move(encoded), static_cast<std::int64_t>(bytes)});
  }
  return out;
}

scheduler::ModelFacts ModelFactsOf(const splitnet::Manifest& m) {
  return scheduler::ModelFacts{.value_min = m.bottleneck.min,
                               .value_max = m.bottleneck.max,
                               .channels = m.bottleneck.channels,
                               .exit_accuracy = m.exit_accuracy};
}

Result<std::shared_ptr<const scheduler::PolicyNet>> LoadPolicyNet(
    const splitnet::Manifest& manifest, const std::string& weights_file) {
  const std::filesystem::path file =
      weights_file.empty() ? manifest.dir / "policy.json" : std::filesystem::path(weights_file);
  ASSIGN_OR_RETURN(auto net, scheduler::PolicyNet::Load(file));
  return std::make_shared<const scheduler::PolicyNet>(std::move(net));
}

scheduler::FusionOptions FusionFor(const splitnet::Manifest& manifest) {
  scheduler::FusionOptions f;
  if (manifest.fusion.present) {
    f.change_distance = manifest.fusion.change_distance;
    f.decay_scale = manifest.fusion.decay_scale;
    f.exit_weight = manifest.fusion.exit_weight;
    f.cloud_weight = manifest.fusion.cloud_weight;
  }
  return f;
}

EdgeRuntime::EdgeRuntime(EdgeOptions options, splitnet::SplitModel& model,
                         scheduler::OffloadPolicy& policy, transport::CloudLink& link, Clock& clock,
                         AnswerCallback on_answer)
    : options_(std::move(options)),
      model_(model),
      policy_(policy),
      link_(link),
      clock_(clock),
      on_answer_(std::move(on_answer)) {
  const auto& m = model_.manifest();
  rate_index_ = options_.rate.empty() ? m.default_rate_index : m.RateIndex(options_.rate);
  next_seq_ = options_.first_sequence_number;
  last_heard_us_ = clock_.NowUs();
  if (options_.fuse_scene) {
    scheduler::FusionOptions f = options_.fusion ? *options_.fusion : FusionFor(m);
    // The whole feature vector tells one item from the next far better than
    // its channel means (docs/replay.md, "Answers from the whole scene").
    f.channels = 0;
    f.value_min = m.bottleneck.min;
    f.value_max = m.bottleneck.max;
    fusion_.emplace(f, static_cast<int>(m.classes.size()));
  }
  rates_.resize(m.rates.size());
  for (size_t r = 0; r < m.rates.size(); ++r)
    rates_[r].cloud_accuracy = r < m.rate_accuracy.size() ? m.rate_accuracy[r] : 0.0;
}

// The policy weighs an offload by its bytes before any is sent: the first
// frame is coded at every rate once to learn them; afterwards each send
// updates its rate's average.
Status EdgeRuntime::MeasureRates(std::span<const float> features) {
  ASSIGN_OR_RETURN(auto offloads, CodeEveryRate(model_.manifest(), codec_, features,
                                                static_cast<std::uint32_t>(options_.deadline_ms),
                                                [&](std::size_t n) { return link_.WireBytes(n); }));
  for (size_t r = 0; r < offloads.size(); ++r)
    rates_[r].wire_bytes = static_cast<double>(offloads[r].wire_bytes);
  rates_measured_ = true;
  return Status::Ok();
}

Result<std::unique_ptr<EdgeRuntime>> EdgeRuntime::Create(EdgeOptions options,
                                                         splitnet::SplitModel& model,
                                                         scheduler::OffloadPolicy& policy,
                                                         transport::CloudLink& link, Clock& clock,
                                                         AnswerCallback on_answer) {
  std::unique_ptr<EdgeRuntime> runtime(
      new EdgeRuntime(std::move(options), model, policy, link, clock, std::move(on_answer)));
  RETURN_IF_ERROR(runtime->Validate());
  return runtime;
}

Status EdgeRuntime::Validate() const {
  const auto& m = model_.manifest();
  if (rate_index_ < 0) {
    std::string names;
    for (const auto& r : m.rates) names += (names.empty() ? "" : ", ") + r.name;
    return InvalidArgument("rate '" + options_.rate + "' is not in the model (rates: " + names +
                           ")");
  }
  if (!(options_.deadline_ms > 0)) return InvalidArgument("deadline must be > 0 ms");
  if (options_.guard_ms < 0 || options_.guard_ms >= options_.deadline_ms)
    return InvalidArgument("guard must be >= 0 and smaller than the deadline");
  if (options_.max_in_flight < 1) return InvalidArgument("max in flight must be >= 1");
  if (options_.max_resends < 0) return InvalidArgument("max resends must be >= 0");
  if (options_.thumbnail_size < 1 || options_.thumbnail_size > 256)
    return InvalidArgument("thumbnail size must be 1..256");
  return Status::Ok();
}

Status EdgeRuntime::ProcessFrame(const trace::SourceFrame& frame, TimeUs capture_us) {
  if (recorder_ && recorder_->Due()) {
    // Recording never costs a frame its answer: a traced run that fails falls
    // back to the plain one.
    Status recorded = ProcessRecorded(frame, capture_us);
    if (recorded.code() != StatusCode::kUnavailable) return recorded;
    spdlog::warn("frame {}: not recorded: {}", frame.index, recorded.message());
  }
  ASSIGN_OR_RETURN(auto input, model_.Preprocess(frame.image));
  ASSIGN_OR_RETURN(auto features, model_.RunHead(input));
  ASSIGN_OR_RETURN(auto local, model_.RunExit(features));
  return Route(frame, capture_us, std::move(features), local).status();
}

Status EdgeRuntime::ProcessRecorded(const trace::SourceFrame& frame, TimeUs capture_us) {
  using Ms = std::chrono::duration<double, std::milli>;
  const auto& m = model_.manifest();
  ExrayRecord rec;
  rec.frame_id = frame.index;
  rec.label = frame.label;
  rec.capture_us = capture_us;
  rec.raw = frame.image;
  const auto t0 = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(rec.input, model_.Preprocess(frame.image));
  rec.preprocess_ms = Ms(std::chrono::steady_clock::now() - t0).count();
  rec.input_shape = {1, m.input.channels, m.input.height, m.input.width};
  rec.feature_shape = {1, m.bottleneck.channels, m.bottleneck.height, m.bottleneck.width};
  auto head = model_.TraceHead(rec.input);
  if (!head.ok()) return Unavailable(head.status().message());
  rec.head = std::move(*head);
  rec.features = rec.head.back().values;
  auto exit = model_.TraceExit(rec.features);
  if (!exit.ok()) return Unavailable(exit.status().message());
  rec.exit = std::move(*exit);
  const splitnet::Prediction local = splitnet::PredictionFromLogits(rec.exit.back().values);
  rec.scores = local.probabilities;
  rec.exit_class = local.class_id;
  rec.exit_confidence = local.confidence;
  ASSIGN_OR_RETURN(auto routed, Route(frame, capture_us, rec.features, local));
  // What the cloud's tail gets at the rate used (the default one if nothing was sent).
  // The frame is answered (or pending) by now: from here a failure only loses the record.
  const auto t1 = std::chrono::steady_clock::now();
  const auto& rate = m.rates[routed.rate_index >= 0 ? routed.rate_index : rate_index_];
  auto encoded = codec_.Encode(rec.features, m.bottleneck, rate);
  auto decoded = encoded.ok() ? codec_.Decode(encoded->coding, encoded->payload, m.bottleneck, rate)
                              : Result<std::vector<float>>(encoded.status());
  if (!decoded.ok()) {
    spdlog::warn("frame {}: not recorded: {}", frame.index, decoded.status().message());
    return Status::Ok();
  }
  rec.quantized = std::move(*decoded);
  rec.quantize_ms = Ms(std::chrono::steady_clock::now() - t1).count();
  rec.rate = rate.name;
  rec.offloaded = routed.rate_index >= 0;
  rec.route = routed.route;
  recorder_->Submit(std::move(rec));
  return Status::Ok();
}

Result<EdgeRuntime::Routed> EdgeRuntime::Route(const trace::SourceFrame& frame, TimeUs capture_us,
                                               std::vector<float> features,
                                               const splitnet::Prediction& local) {
  const auto& m = model_.manifest();
  Answer answer;
  answer.frame_id = frame.index;
  answer.label = frame.label;
  answer.class_id = local.class_id;
  answer.confidence = local.confidence;
  answer.capture_us = capture_us;
  answer.deadline_us = capture_us + static_cast<TimeUs>(options_.deadline_ms * 1000.0);

  if (!rates_measured_) RETURN_IF_ERROR(MeasureRates(features));
  if (fusion_) fusion_->AddFrame(frame.index, features, local.probabilities);
  auto harvest = HarvestCandidate(frame, capture_us, features, local);
  if (policy_.WantsPixels()) {
    cv::Mat gray, small;
    if (frame.image.channels() == 1)
      gray = frame.image;
    else
      cv::cvtColor(frame.image, gray,
                   frame.image.channels() == 4 ? cv::COLOR_BGRA2GRAY : cv::COLOR_BGR2GRAY);
    cv::resize(gray, small, cv::Size(options_.thumbnail_size, options_.thumbnail_size), 0, 0,
               cv::INTER_AREA);
    small.convertTo(small, CV_32F, 1.0 / 255.0);
    thumbnail_.assign(small.ptr<float>(), small.ptr<float>() + small.total());
  }

  scheduler::DecisionContext context;
  context.frame_id = frame.index;
  context.now_us = clock_.NowUs();
  context.deadline_us = answer.deadline_us;
  context.exit_confidence = local.confidence;
  context.exit_error_rate = m.ExitErrorRate(local.confidence);
  context.features = features;
  context.pixels = thumbnail_;
  context.has_cloud_answer = last_cloud_.class_id >= 0;
  context.in_flight = in_flight();
  context.max_in_flight = options_.max_in_flight;
  context.default_rate_index = rate_index_;
  context.rates = rates_;
  if (fusion_) {
    const scheduler::FusedAnswer f = fusion_->Current();
    context.fused = true;
    context.fused_confidence = f.confidence;
    context.fused_cloud_frames = f.cloud_frames;
    context.fused_exit_frames = f.exit_frames;
  }
  scheduler::Decision decision = policy_.Decide(context);

  if (decision.action == scheduler::Action::kReuse && last_cloud_.class_id >= 0) {
    answer.route = Route::kReuse;
    answer.class_id = last_cloud_.class_id;
    answer.confidence = last_cloud_.confidence;
    Fuse(answer);
    Deliver(answer);
    OfferHarvest(std::move(harvest), answer);
    return Routed{-1, "reuse"};
  }
  if (decision.action != scheduler::Action::kOffload) {
    Fuse(answer);
    Deliver(answer);
    OfferHarvest(std::move(harvest), answer);
    return Routed{-1, "local"};
  }
  if (in_flight() >= options_.max_in_flight) {
    answer.reason = Reason::kWindowFull;
    Fuse(answer);
    Deliver(answer);
    OfferHarvest(std::move(harvest), answer);
    return Routed{-1, "local"};
  }
  const int rate_index =
      decision.rate_index >= 0 && decision.rate_index < static_cast<int>(m.rates.size())
          ? decision.rate_index
          : rate_index_;
  const auto& rate = m.rates[rate_index];
  ASSIGN_OR_RETURN(auto encoded, codec_.Encode(features, m.bottleneck, rate));

  const TimeUs left_us = std::max<TimeUs>(0, answer.deadline_us - clock_.NowUs());
  transport::Request request = OffloadRequest(
      m, rate_index, std::move(encoded),
      static_cast<std::uint32_t>(std::min<TimeUs>(left_us / 1000, transport::kMaxDeadlineMs)));
  const std::uint64_t seq = next_seq_++;
  // On the wire the sequence number is taken modulo 2^16: the pending window
  // spans far fewer requests, so the low bits identify the request.
  request.seq = static_cast<std::uint16_t>(seq);
  const auto message = transport::EncodeRequest(request);

  if (Status sent = link_.Send(message); !sent.ok()) {
    spdlog::debug("frame {}: offload refused: {}", frame.index, sent.message());
    answer.reason = Reason::kCloudUnavailable;
    Fuse(answer);
    Deliver(answer);
    OfferHarvest(std::move(harvest), answer);
    return Routed{-1, "local"};
  }
  ++counters_.offloads_sent;
  answer.offloaded = true;
  answer.rate = rate.name;
  answer.uplink_bytes = static_cast<std::int64_t>(link_.WireBytes(message.size()));
  // A running average: the bytes of a rate vary with the content.
  rates_[rate_index].wire_bytes += 0.1 * (answer.uplink_bytes - rates_[rate_index].wire_bytes);
  const TimeUs guard_us = static_cast<TimeUs>(options_.guard_ms * 1000.0);
  // The frame may be a view of the source's buffer: a pending one is kept whole.
  if (harvest) harvest->image = harvest->image.clone();
  pending_[seq] = Pending{answer, answer.deadline_us - guard_us, std::move(features),
                          std::move(harvest), std::move(request)};
  policy_.OnSent(seq, clock_.NowUs(), answer.uplink_bytes);
  return Routed{rate_index, "offload"};
}

void EdgeRuntime::Fuse(Answer& answer) const {
  if (!fusion_ || !fusion_->InCurrentScene(answer.frame_id)) return;
  const scheduler::FusedAnswer f = fusion_->Current();
  if (f.class_id < 0) return;
  answer.class_id = f.class_id;
  answer.confidence = f.confidence;
  answer.evidence_exit = f.exit_frames;
  answer.evidence_cloud = f.cloud_frames;
  if (answer.route != Route::kCloud)
    answer.route = f.cloud_frames > 0 ? Route::kReuse : Route::kLocal;
}

void EdgeRuntime::Deliver(Answer answer) {
  answer.answer_us = clock_.NowUs();
  on_answer_(answer);
}

TimeUs EdgeRuntime::NextFireUs() const {
  TimeUs next = std::numeric_limits<TimeUs>::max();
  for (const auto& [seq, p] : pending_) next = std::min(next, p.fire_us);
  return next;
}

void EdgeRuntime::ExpireDue() {
  const TimeUs now = clock_.NowUs();
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.fire_us > now) {
      ++it;
      continue;
    }
    Answer answer = it->second.fallback;
    answer.reason = Reason::kDeadlineMissed;
    Fuse(answer);  // the scene's evidence by now, not just at capture
    Notify(it->first, it->second, scheduler::Outcome::kLost, nullptr);
    auto harvest = std::move(it->second.harvest);
    expired_.emplace_back(it->first, std::move(it->second));
    if (static_cast<int>(expired_.size()) > options_.late_reply_memory) expired_.pop_front();
    it = pending_.erase(it);
    Deliver(answer);
    OfferHarvest(std::move(harvest), answer);
    // Several offloads in a row with no reply at all: the connection is likely
    // dead (a restarted cloud can leave requests queued on a stale pipe).
    ++consecutive_misses_;
    if (consecutive_misses_ >= options_.reconnect_after_misses &&
        clock_.NowUs() - last_heard_us_ >=
            static_cast<TimeUs>(options_.reconnect_quiet_ms * 1000)) {
      spdlog::warn("{} offloads unanswered in a row; reconnecting to the cloud",
                   consecutive_misses_);
      link_.Reconnect();
      if (harvester_) harvester_->OnReconnect();
      ++counters_.reconnects;
      consecutive_misses_ = 0;
      last_heard_us_ = clock_.NowUs();
    }
  }
}

void EdgeRuntime::HandleReply(const std::vector<std::uint8_t>& bytes) {
  if (transport::PeekKind(bytes) == transport::kKindHarvestAck) {
    auto ack = transport::DecodeHarvestAck(bytes);
    if (!ack.ok()) {
      ++counters_.replies_malformed;
      spdlog::warn("ignoring malformed harvest ack: {}", ack.status().message());
      return;
    }
    consecutive_misses_ = 0;
    last_heard_us_ = clock_.NowUs();
    if (harvester_) harvester_->OnAck(*ack);
    return;
  }
  auto decoded = transport::DecodeReply(bytes);
  if (!decoded.ok()) {
    ++counters_.replies_malformed;
    spdlog::warn("ignoring malformed reply: {}", decoded.status().message());
    return;
  }
  consecutive_misses_ = 0;
  last_heard_us_ = clock_.NowUs();
  const transport::Reply& reply = *decoded;
  auto it = FindPending(reply.seq);
  if (it == pending_.end()) {
    ++counters_.replies_late;
    HandleLateReply(reply);
    return;
  }
  if (reply.status == transport::ReplyStatus::kDraining) {
    // That replica takes nothing new: the same request goes to another one
    // (the link no longer picks this one) while the deadline allows; at the
    // deadline the fallback answers, as for any request left unanswered.
    ++counters_.replies_draining;
    resend_.push_back(it->first);
    Resend();
    return;
  }
  Answer answer = it->second.fallback;
  const std::uint64_t seq = it->first;
  Pending pending = std::move(it->second);
  pending_.erase(it);
  scheduler::Outcome outcome = scheduler::Outcome::kAnswered;
  switch (reply.status) {
    case transport::ReplyStatus::kOk:
      if (reply.class_id >= static_cast<int>(model_.manifest().classes.size())) {
        ++counters_.replies_malformed;
        answer.reason = Reason::kCloudError;
        outcome = scheduler::Outcome::kError;
        break;
      }
      ++counters_.replies_in_time;
      answer.route = Route::kCloud;
      answer.class_id = reply.class_id;
      answer.confidence = reply.top.empty() ? 0.0f : reply.top.front().score;
      if (fusion_ && PoolCloud(answer.frame_id, reply)) Fuse(answer);
      if (answer.frame_id > last_cloud_.frame_id)
        last_cloud_ = CloudAnswer{answer.frame_id, answer.class_id, answer.confidence};
      break;
    case transport::ReplyStatus::kDraining:  // handled above
    case transport::ReplyStatus::kBusy:
      ++counters_.replies_busy;
      answer.reason = Reason::kCloudBusy;
      outcome = scheduler::Outcome::kBusy;
      break;
    case transport::ReplyStatus::kError:
      ++counters_.replies_error;
      spdlog::warn("cloud refused frame {}: {}", answer.frame_id, reply.message);
      answer.reason = Reason::kCloudError;
      outcome = scheduler::Outcome::kError;
      break;
  }
  if (outcome != scheduler::Outcome::kAnswered) Fuse(answer);  // busy, error: the fallback
  Notify(seq, pending, outcome, &reply);
  Deliver(answer);
  OfferHarvest(std::move(pending.harvest), answer);
}

bool EdgeRuntime::PoolCloud(std::int64_t frame_id, const transport::Reply& reply) {
  std::vector<std::pair<int, float>> top;
  for (const auto& t : reply.top) top.emplace_back(t.class_id, t.score);
  return fusion_->AddCloud(frame_id, top);
}

// A reply after its frame's fallback: the frame is answered already, but the
// answer still refreshes the reuse cache and tells the policy about the link.
void EdgeRuntime::HandleLateReply(const transport::Reply& reply) {
  for (auto it = expired_.rbegin(); it != expired_.rend(); ++it) {
    if (static_cast<std::uint16_t>(it->first) != reply.seq) continue;
    if (reply.status == transport::ReplyStatus::kOk &&
        reply.class_id < static_cast<int>(model_.manifest().classes.size())) {
      const Pending& p = it->second;
      if (p.fallback.frame_id > last_cloud_.frame_id)
        last_cloud_ = CloudAnswer{p.fallback.frame_id, reply.class_id,
                                  reply.top.empty() ? 0.0f : reply.top.front().score};
      if (fusion_) PoolCloud(p.fallback.frame_id, reply);  // later frames of its scene gain
      Notify(it->first, p, scheduler::Outcome::kLate, &reply);
    }
    expired_.erase(std::next(it).base());
    return;
  }
}

void EdgeRuntime::Notify(std::uint64_t seq, const Pending& p, scheduler::Outcome outcome,
                         const transport::Reply* reply) {
  scheduler::Feedback f;
  f.request_id = seq;
  f.frame_id = p.fallback.frame_id;
  f.outcome = outcome;
  f.now_us = clock_.NowUs();
  if (reply) {
    f.server_us = reply->queue_us + reply->decode_us + reply->tail_us;
    f.class_id = reply->class_id;
  }
  f.features = p.features;
  policy_.OnOutcome(f);
}

std::map<std::uint64_t, EdgeRuntime::Pending>::iterator EdgeRuntime::FindPending(
    std::uint16_t seq) {
  // The oldest pending request whose low 16 bits match (pending_ is ordered).
  auto it = pending_.begin();
  while (it != pending_.end() && static_cast<std::uint16_t>(it->first) != seq) ++it;
  return it;
}

void EdgeRuntime::Resend() {
  for (std::uint16_t lost : link_.TakeLost())
    if (auto it = FindPending(lost); it != pending_.end()) resend_.push_back(it->first);
  if (resend_.empty()) return;
  const TimeUs now = clock_.NowUs();
  std::vector<std::uint64_t> waiting;
  for (std::uint64_t seq : resend_) {
    auto it = pending_.find(seq);
    // Answered, too late, or sent again often enough (a replica that keeps
    // dropping it): the deadline's fallback answers it.
    if (it == pending_.end() || it->second.fire_us <= now ||
        it->second.resends >= options_.max_resends)
      continue;
    if (std::find(waiting.begin(), waiting.end(), seq) != waiting.end()) continue;
    Pending& p = it->second;
    p.request.deadline_ms = static_cast<std::uint32_t>(std::min<TimeUs>(
        std::max<TimeUs>(0, p.fallback.deadline_us - now) / 1000, transport::kMaxDeadlineMs));
    const auto message = transport::EncodeRequest(p.request);
    if (!link_.Send(message).ok()) {
      waiting.push_back(seq);  // no replica takes it now: tried again shortly
      continue;
    }
    ++counters_.resent;
    ++p.resends;
    const auto bytes = static_cast<std::int64_t>(link_.WireBytes(message.size()));
    p.fallback.uplink_bytes += bytes;
    policy_.OnOtherSent(bytes, now);
  }
  resend_ = std::move(waiting);
}

bool EdgeRuntime::PumpOnce(TimeUs until_us) {
  MaybeUpload();
  Resend();
  TimeUs wake_us = std::min(until_us, NextFireUs());
  // Requests waiting to be sent again: look again soon for a replica that takes them.
  if (!resend_.empty()) wake_us = std::min(wake_us, clock_.NowUs() + 5'000);
  if (auto message = link_.Receive(wake_us)) {
    HandleReply(*message);
    ExpireDue();
    return true;
  }
  const std::size_t before = pending_.size();
  ExpireDue();
  return pending_.size() != before;
}

void EdgeRuntime::PumpUntil(TimeUs until_us) {
  while (clock_.NowUs() < until_us) PumpOnce(until_us);
  // Replies already queued are handled even when the time is up.
  while (auto message = link_.Receive(clock_.NowUs())) HandleReply(*message);
  ExpireDue();
}

void EdgeRuntime::WaitForSlot() {
  while (in_flight() >= options_.max_in_flight) PumpOnce(NextFireUs());
}

void EdgeRuntime::Drain() {
  while (!pending_.empty()) PumpOnce(NextFireUs());
}

std::optional<harvest::HarvestFrame> EdgeRuntime::HarvestCandidate(
    const trace::SourceFrame& frame, TimeUs capture_us, const std::vector<float>& features,
    const splitnet::Prediction& local) const {
  if (!harvester_) return std::nullopt;
  harvest::HarvestFrame h;
  h.frame_id = frame.index;
  h.capture_us = capture_us;
  h.label = frame.label;
  h.image = frame.image;
  h.features = features;
  h.exit_scores = local.probabilities;
  h.exit_class = local.class_id;
  h.exit_confidence = local.confidence;
  h.exit_error_rate = model_.manifest().ExitErrorRate(local.confidence);
  return h;
}

void EdgeRuntime::OfferHarvest(std::optional<harvest::HarvestFrame> candidate,
                               const Answer& answer) {
  if (!harvester_ || !candidate) return;
  // What the cloud said about the frame, as delivered: its reply, the scene's
  // pooled answer with cloud evidence in it (fusion), or the cloud's answer
  // reused for the unchanged scene. Pooled over the scene it is a better label
  // than one reply on a hard frame.
  if (answer.route != Route::kLocal) {
    candidate->cloud_class = answer.class_id;
    candidate->cloud_confidence = answer.confidence;
  }
  harvester_->Offer(std::move(*candidate), clock_.NowUs());
}

void EdgeRuntime::MaybeUpload() {
  if (!harvester_ || !pending_.empty()) return;
  const TimeUs now = clock_.NowUs();
  const auto* message = harvester_->NextMessage(now);
  if (!message) return;
  const auto wire = static_cast<std::int64_t>(link_.WireBytes(message->size()));
  if (!policy_.SpareBytes(wire, now)) return;
  if (!link_.Send(*message).ok()) return;  // no cloud: tried again later
  harvester_->Sent(now, wire);
  policy_.OnOtherSent(wire, now);
}

bool EdgeRuntime::FinishUploads(TimeUs until_us) {
  if (!harvester_) return true;
  Drain();
  harvester_->Flush();
  while (harvester_->UploadPending() && clock_.NowUs() < until_us) {
    // Short steps: an ack is followed at once by the next chunk.
    PumpUntil(std::min(until_us, clock_.NowUs() + 20'000));
  }
  return !harvester_->UploadPending();
}

}  // namespace deepcut::edge
