// The cloud's work without its sockets: checking a message, admitting it to
// the queue, and serving a batch with the tail. deepcut-cloud (CloudServer:
// ROUTER, queue, worker threads) and the replay's in-process cloud both call
// these, so the two answer alike, with the same messages.
//
//   TailService service(manifest, {.top_k = 3, .max_queue = 256, .workers = 2});
//   auto checked = service.Check(bytes);            // the request, or an error reply
//   auto busy = service.Admit(request, now_us, queued, service_us);   // or nullopt
//   auto worker = TailWorker::Create(manifest);     // one per thread
//   auto served = (*worker)->Serve(jobs, clock, service.options().top_k);
//
// Thread-safety: TailService is immutable after construction (any thread); a
// TailWorker belongs to one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "splitnet/feature_codec.h"
#include "splitnet/manifest.h"
#include "splitnet/split_model.h"
#include "transport/protocol.h"

namespace deepcut::cloud {

// Checks a decoded request against the served model (tag, rate, and the
// payload size its coding allows: docs/protocol.md).
Status CheckAgainstModel(const transport::Request& request, const splitnet::Manifest& manifest);
// The k best classes of a prediction, best first.
std::vector<transport::ScoredClass> TopScores(const splitnet::Prediction& prediction, int k);

// A message the cloud answers at once: an error or busy reply, and for the log
// the kind of refusal ("malformed", "oversize", "multipart", "model",
// "payload", "busy") and its reason.
struct Refusal {
  const char* kind = "";
  transport::Reply reply;
};

struct TailServiceOptions {
  int top_k = 3;        // scores returned per answer
  int max_queue = 256;  // queued requests beyond which new ones get "busy"
  int workers = 1;      // serving in parallel: the queue's wait is shared by them
};

class TailService {
 public:
  TailService(const splitnet::Manifest& manifest, TailServiceOptions options)
      : manifest_(manifest), options_(options) {}

  // Decodes one single-frame message and checks it against the model: the
  // request, or the error reply (with the seq whenever its first bytes hold one).
  std::variant<transport::Request, Refusal> Check(std::span<const std::uint8_t> message) const;
  // The error reply to a message of `frames` frames (not 1); `first` is its
  // first frame, for the seq.
  Refusal RefuseFrames(std::span<const std::uint8_t> first, size_t frames) const;
  // Admission: "busy" when `queued` requests already wait (the queue is full),
  // or when the wait they foresee at `service_us` per request (0: not known
  // yet) would outlast the request's deadline. Nullopt: admitted.
  std::optional<Refusal> Admit(const transport::Request& request, TimeUs now_us, size_t queued,
                               double service_us) const;
  // When an admitted request's deadline passes, on the clock that saw it arrive.
  static TimeUs ExpiresUs(const transport::Request& request, TimeUs received_us) {
    return received_us + TimeUs{request.deadline_ms} * 1000;
  }

  const TailServiceOptions& options() const { return options_; }
  const splitnet::Manifest& manifest() const { return manifest_; }

 private:
  const splitnet::Manifest& manifest_;
  TailServiceOptions options_;
};

// One request admitted to the queue.
struct TailJob {
  transport::Request request;
  TimeUs received_us = 0;
  TimeUs expires_us = 0;
};

// What serving did to one job.
enum class Served { kAnswered, kExpired, kRejected };

struct ServedBatch {
  std::vector<transport::Reply> replies;  // one per job, in the jobs' order
  std::vector<Served> outcomes;           // likewise
  int answered = 0;                       // jobs that ran through the tail
  TimeUs busy_us = 0;                     // the worker's time on the batch
};

// A tail network and a codec: serves batches of admitted requests.
class TailWorker {
 public:
  // `memoize`: keep each distinct payload's answer (replay, where many
  // policies send the same frames); the server does not.
  static Result<std::unique_ptr<TailWorker>> Create(const splitnet::Manifest& manifest,
                                                    bool memoize = false);
  // Jobs past their deadline at `clock`'s now get "busy" (the edge has already
  // answered those frames) and cost nothing; payloads that do not decode get an
  // error; the rest run through the tail as one batch. Timings in the replies
  // are measured on `clock`.
  ServedBatch Serve(std::span<const TailJob> jobs, const Clock& clock, int top_k);
  std::int64_t tail_runs() const { return tail_runs_; }

 private:
  TailWorker(const splitnet::Manifest& manifest, std::unique_ptr<splitnet::SplitModel> model,
             bool memoize)
      : manifest_(manifest), model_(std::move(model)), memoize_(memoize) {}

  const splitnet::Manifest& manifest_;
  std::unique_ptr<splitnet::SplitModel> model_;
  splitnet::FeatureCodec codec_;
  bool memoize_;
  std::unordered_map<std::string, std::vector<transport::ScoredClass>> memo_;
  std::int64_t tail_runs_ = 0;
};

}  // namespace deepcut::cloud
