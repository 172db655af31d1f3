// The edge runtime: one frame's way from image to answer.
//
// ProcessFrame runs the head and the exit, asks the policy, and either answers
// at once (the exit's answer, or the cloud's last answer reused for an
// unchanged scene) or sends the encoded features to the cloud and keeps the
// frame pending. Pump handles what comes back and the deadlines: a cloud reply
// by the deadline answers the frame; otherwise the exit's answer is delivered
// at the deadline (minus a small guard so it is on time). A late reply still
// refreshes the answer kept for reuse. Every frame handed to ProcessFrame gets
// exactly one Answer through the callback. The policy hears what became of
// each offload (sent, answered, late, lost, busy, error).
//
// Failover (docs/operations.md): a "draining" reply (the replica is shutting
// down) and a request the link reports lost (its replica's connection
// dropped) are sent again at once, with the same seq and the time left, while
// the frame's deadline allows; the link routes them to another replica. Only
// one reply per frame is ever used, so a frame is neither lost nor answered
// twice; the bytes sent again count in the frame's uplink bytes.
//
// The same code runs in real time (RealClock, ZmqLink) and in virtual-time
// replay (VirtualClock, simulated link): it reads time only from the Clock and
// talks to the cloud only through the CloudLink.
//
// Thread-safety: one runtime per stream, driven from one thread. The model,
// policy, link and clock are borrowed and must outlive it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/answer.h"
#include "core/clock.h"
#include "core/status.h"
#include "edge/exray_recorder.h"
#include "harvest/harvester.h"
#include "scheduler/policy.h"
#include "scheduler/scene_fusion.h"
#include "splitnet/feature_codec.h"
#include "splitnet/split_model.h"
#include "trace/frame_source.h"
#include "transport/cloud_link.h"
#include "transport/protocol.h"

namespace deepcut::edge {

struct EdgeOptions {
  double deadline_ms = 200.0;      // capture -> answer
  int max_in_flight = 8;           // offloads awaiting a reply
  std::string rate;                // codec rate name; empty: the manifest's default
  double guard_ms = 2.0;           // the fallback is delivered this long before the deadline
  int max_resends = 3;             // a frame's request sent again at most this often (failover)
  int reconnect_after_misses = 3;  // consecutive unanswered offloads before reopening the socket
  // ... and only after this long without a word from the cloud: a cloud that is
  // alive but slow still sends (late) replies, and reopening would waste them.
  double reconnect_quiet_ms = 1000.0;
  std::uint64_t first_sequence_number = 1;  // (tests start near 2^16 to cross the wrap)
  int thumbnail_size = 16;      // side of the gray thumbnail pixel-difference policies see
  int late_reply_memory = 256;  // expired requests remembered for their late replies
  // The answer rule: false, a frame's own answer (the exit's, or the cloud's last
  // one when the policy reuses it); true, the scene's pooled evidence
  // (scheduler/scene_fusion.h). `fusion` unset: the package's tuned settings
  // (manifest "fusion"), else FusionOptions' defaults. The value range comes
  // from the model.
  bool fuse_scene = false;
  std::optional<scheduler::FusionOptions> fusion;
};

struct EdgeCounters {
  std::int64_t offloads_sent = 0;
  std::int64_t replies_in_time = 0;
  std::int64_t replies_late = 0;  // arrived after the fallback was delivered
  std::int64_t replies_malformed = 0;
  std::int64_t replies_error = 0;
  std::int64_t replies_busy = 0;
  std::int64_t reconnects = 0;
  std::int64_t replies_draining = 0;
  std::int64_t resent = 0;  // requests sent again (after "draining", or lost with a replica)
};

// The request that offloads `encoded` features at rate `rate_index` (the
// sequence number is the caller's).
transport::Request OffloadRequest(const splitnet::Manifest& manifest, int rate_index,
                                  splitnet::EncodedFeatures encoded, std::uint32_t deadline_ms);

// One frame's features coded at one rate, and the bytes that request takes on
// the wire (`wire_bytes` of the encoded message's size: the link's framing).
struct OffloadAtRate {
  splitnet::EncodedFeatures encoded;
  std::int64_t wire_bytes = 0;
};
// `features` at every rate of the model, in the manifest's order: what the
// runtime learns the rates' costs from, and what the replay's oracle weighs.
Result<std::vector<OffloadAtRate>> CodeEveryRate(
    const splitnet::Manifest& manifest, splitnet::FeatureCodec& codec,
    std::span<const float> features, std::uint32_t deadline_ms,
    const std::function<std::size_t(std::size_t)>& wire_bytes);

// What the scheduler may know of a model, from its manifest.
scheduler::ModelFacts ModelFactsOf(const splitnet::Manifest& manifest);
// The learned policy's network: `weights_file`, or the package's policy.json
// when empty. NotFound if there is none; InvalidArgument naming what is wrong.
Result<std::shared_ptr<const scheduler::PolicyNet>> LoadPolicyNet(
    const splitnet::Manifest& manifest, const std::string& weights_file);

// The fusion settings for `manifest`: its tuned ones, else the defaults.
scheduler::FusionOptions FusionFor(const splitnet::Manifest& manifest);

class EdgeRuntime {
 public:
  using AnswerCallback = std::function<void(const Answer&)>;

  // Checks the options against the model (e.g. the rate exists) before anything
  // runs. The model, policy, link and clock are borrowed: they must outlive it.
  static Result<std::unique_ptr<EdgeRuntime>> Create(EdgeOptions options,
                                                     splitnet::SplitModel& model,
                                                     scheduler::OffloadPolicy& policy,
                                                     transport::CloudLink& link, Clock& clock,
                                                     AnswerCallback on_answer);
  // One frame captured at `capture_us`. An error means the model failed on it.
  Status ProcessFrame(const trace::SourceFrame& frame, TimeUs capture_us);
  // Handles replies and deadlines until the clock reaches `until_us`.
  void PumpUntil(TimeUs until_us);
  // Handles replies and deadlines until fewer than max_in_flight are pending.
  void WaitForSlot();
  // Resolves everything pending (by reply or by deadline).
  void Drain();

  // Records every N-th frame for deployment visibility (edge/exray_recorder.h);
  // nullptr: none. Borrowed: it must outlive the runtime's use of it.
  void SetRecorder(ExrayRecorder* recorder) { recorder_ = recorder; }

  // Offers every answered frame to a harvester (docs/harvest.md) and uploads
  // what it keeps while the link is idle; nullptr: none. Borrowed.
  void SetHarvester(harvest::Harvester* harvester) { harvester_ = harvester; }
  // Keeps uploading harvested frames (and handling replies) until none is
  // left to send or the clock reaches `until_us`; false if some are left.
  bool FinishUploads(TimeUs until_us);

  int in_flight() const { return static_cast<int>(pending_.size()); }
  // The live bandwidth knob, passed to the policy.
  void SetBudget(double budget_bps) { policy_.SetBudget(budget_bps, clock_.NowUs()); }
  // What the policy is told about each rate (expected wire bytes, accuracy).
  const std::vector<scheduler::RateInfo>& rate_info() const { return rates_; }
  const EdgeCounters& counters() const { return counters_; }
  const EdgeOptions& options() const { return options_; }

 private:
  struct Pending {
    Answer fallback;              // the exit's answer, delivered if the cloud is not in time
    TimeUs fire_us;               // when the fallback is delivered
    std::vector<float> features;  // for the policy's scene reference
    std::optional<harvest::HarvestFrame> harvest;  // offered once the frame is answered
    transport::Request request;                    // as sent, for sending again
    int resends = 0;
  };
  // The cloud's newest answer, reused for unchanged scenes.
  struct CloudAnswer {
    std::int64_t frame_id = -1;
    int class_id = -1;
    float confidence = 0.0f;
  };
  EdgeRuntime(EdgeOptions options, splitnet::SplitModel& model, scheduler::OffloadPolicy& policy,
              transport::CloudLink& link, Clock& clock, AnswerCallback on_answer);
  Status Validate() const;
  // How a frame was routed: the rate index it was offloaded at (-1: not sent)
  // and "offload", "reuse" or "local".
  struct Routed {
    int rate_index = -1;
    std::string route;
  };
  // A frame that is due for recording: traced head and exit, then Route.
  // Unavailable: the traced run failed before anything was answered.
  Status ProcessRecorded(const trace::SourceFrame& frame, TimeUs capture_us);
  // The decision and what follows it, for a frame whose head and exit have run.
  Result<Routed> Route(const trace::SourceFrame& frame, TimeUs capture_us,
                       std::vector<float> features, const splitnet::Prediction& local);
  // Waits for one reply or the next fallback time, whichever is first, but not
  // past `until_us`; returns false if nothing happened before `until_us`.
  bool PumpOnce(TimeUs until_us);
  void HandleReply(const std::vector<std::uint8_t>& bytes);
  // Sends the requests in resend_ again (those the link takes); the rest wait.
  void Resend();
  // The pending request whose low 16 bits are `seq`.
  std::map<std::uint64_t, Pending>::iterator FindPending(std::uint16_t seq);
  void HandleLateReply(const transport::Reply& reply);
  void Notify(std::uint64_t seq, const Pending& p, scheduler::Outcome outcome,
              const transport::Reply* reply);
  Status MeasureRates(std::span<const float> features);
  void ExpireDue();
  void Deliver(Answer answer);
  // With fuse_scene, `answer` takes the scene's pooled answer (route reuse when
  // cloud evidence is in it, else local); without, it is left as it is.
  void Fuse(Answer& answer) const;
  // Pools a cloud reply's posterior into the scene; false if its frame's scene is over.
  bool PoolCloud(std::int64_t frame_id, const transport::Reply& reply);
  TimeUs NextFireUs() const;
  // What the harvester is offered of a frame (with a harvester).
  std::optional<harvest::HarvestFrame> HarvestCandidate(const trace::SourceFrame& frame,
                                                        TimeUs capture_us,
                                                        const std::vector<float>& features,
                                                        const splitnet::Prediction& local) const;
  void OfferHarvest(std::optional<harvest::HarvestFrame> candidate, const Answer& answer);
  // One harvest chunk, if the link is idle (no offload pending) and the
  // policy has bytes to spare.
  void MaybeUpload();

  EdgeOptions options_;
  splitnet::SplitModel& model_;
  scheduler::OffloadPolicy& policy_;
  transport::CloudLink& link_;
  Clock& clock_;
  AnswerCallback on_answer_;
  splitnet::FeatureCodec codec_;
  int rate_index_ = 0;
  std::uint64_t next_seq_ = 1;
  std::map<std::uint64_t, Pending> pending_;  // by sequence number
  std::vector<std::uint64_t> resend_;         // pending requests to send again
  // Requests whose fallback was delivered, kept a while for late replies.
  std::deque<std::pair<std::uint64_t, Pending>> expired_;
  CloudAnswer last_cloud_;
  std::vector<scheduler::RateInfo> rates_;
  bool rates_measured_ = false;
  std::vector<float> thumbnail_;
  int consecutive_misses_ = 0;
  TimeUs last_heard_us_ = 0;  // last reply of any kind, the last reconnect, or the start
  EdgeCounters counters_;
  std::optional<scheduler::SceneFusion> fusion_;  // with fuse_scene
  ExrayRecorder* recorder_ = nullptr;
  harvest::Harvester* harvester_ = nullptr;
};

}  // namespace deepcut::edge
