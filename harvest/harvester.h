// The edge's harvester (docs/harvest.md): per answered frame, the sampler
// decides whether to keep it for retraining; kept frames are written to the
// edge's harvest store by a writer thread (PNG encoding and the durable commit
// stay off the frame path) and uploaded to the cloud in chunks over the same
// link as the offloads.
//
// Upload is stop-and-wait, one chunk in flight: the runtime asks for the next
// chunk only when no offload is pending and the policy has spare budget
// (OffloadPolicy::SpareBytes), so an offload never queues behind more than
// one chunk. A chunk unacknowledged after `ack_timeout_ms` (or when the link
// reconnects) is sent again; the cloud keeps chunks by (edge, item, index), so
// a resend is stored once. The store counts acknowledged chunks per record,
// so a restarted edge resumes an item where the cloud's acks left it; a record
// is deleted from the edge only when the cloud has acknowledged all of it.
//
// Store failures (a full disk, the store's size cap) are counted and logged,
// at most once a minute; the frame's answer never waits on them.
//
// Thread-safety: Offer, the upload calls and SetBudget from the one thread
// that drives the runtime; the writer thread is internal.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <opencv2/core.hpp>

#include "core/clock.h"
#include "core/status.h"
#include "harvest/sampler.h"
#include "harvest/store.h"
#include "splitnet/manifest.h"
#include "transport/protocol.h"

namespace deepcut::harvest {

struct HarvesterOptions {
  std::string store_path;          // the edge's SQLite store (created if absent)
  SamplerOptions sampler;          // which sampler, its budget
  std::size_t chunk_bytes = 8192;  // upload chunk payload
  double ack_timeout_ms = 3000.0;  // an unacknowledged chunk is sent again after this
  bool upload = true;              // false: keep frames, send nothing
  int queue = 64;                  // kept frames waiting for the writer; beyond, dropped
  double store_max_mb = 0.0;       // the database file's cap (SQLite max_page_count); 0: none
};

// What the edge knows of one answered frame.
struct HarvestFrame {
  std::int64_t frame_id = 0;
  TimeUs capture_us = 0;
  int label = -1;
  cv::Mat image;  // as captured
  std::vector<float> features;
  std::vector<float> exit_scores;
  int exit_class = -1;
  float exit_confidence = 0.0f;
  double exit_error_rate = 0.0;
  int cloud_class = -1;
  float cloud_confidence = 0.0f;
};

struct HarvestCounters {
  std::int64_t offered = 0;
  std::int64_t kept = 0;          // chosen by the sampler
  std::int64_t dropped = 0;       // chosen, but the writer's queue was full
  std::int64_t committed = 0;     // in the store
  std::int64_t store_errors = 0;  // writes that failed (disk full, cap, I/O)
  std::int64_t chunks_sent = 0;   // includes resends
  std::int64_t chunks_resent = 0;
  std::int64_t chunks_acked = 0;
  std::int64_t items_uploaded = 0;  // acknowledged in full and removed
  std::int64_t items_refused = 0;
  std::int64_t upload_bytes = 0;                 // on the wire, framing included
  std::map<std::string, std::int64_t> verdicts;  // why frames were or were not kept
};

class Harvester {
 public:
  // Opens the store (every check of HarvestStore::Open) and starts the writer.
  static Result<std::unique_ptr<Harvester>> Create(HarvesterOptions options,
                                                   const splitnet::Manifest& manifest);
  ~Harvester();

  // One frame answered at `now_us` (the runtime's clock); true if kept.
  bool Offer(HarvestFrame frame, TimeUs now_us);

  // The next chunk message to send now, if one is due (none in flight, or the
  // one in flight timed out). Sent() once it went out with `wire_bytes`.
  const std::vector<std::uint8_t>* NextMessage(TimeUs now_us);
  void Sent(TimeUs now_us, std::int64_t wire_bytes);
  void OnAck(const transport::HarvestAck& ack);
  // The link dropped what was queued: the chunk in flight is due again.
  void OnReconnect();
  // True while kept frames are still to be uploaded (or one is on its way).
  bool UploadPending() const;

  void SetBudget(const HarvestBudget& budget, TimeUs now_us);
  const HarvestBudget& budget() const { return sampler_.options().budget; }
  // Writes everything queued, then stops the writer. Idempotent.
  void Close();
  // Waits until the writer has done everything queued so far.
  void Flush();

  HarvestCounters counters() const;
  StoreTotals totals() const;
  std::uint64_t edge_id() const { return edge_id_; }
  const std::string& package_version() const { return package_; }
  const HarvesterOptions& options() const { return options_; }

 private:
  struct Op {
    enum Kind { kInsert, kMarkSent, kRemove, kRefuse } kind = kInsert;
    HarvestRecord record;  // kInsert (image still to encode)
    cv::Mat image;
    std::uint64_t item = 0;
    int chunks = 0;
  };
  struct Upload {
    std::uint64_t item = 0;
    std::vector<std::vector<std::uint8_t>> messages;  // one per chunk
    std::size_t next = 0;                             // first chunk not acknowledged
    bool in_flight = false;
    TimeUs sent_us = 0;
    bool resend = false;
    int resends = 0;  // in a row, without an ack
  };
  Harvester(HarvesterOptions options, Sampler sampler, std::unique_ptr<HarvestStore> store,
            const splitnet::Manifest& manifest, std::string package);
  void Push(Op op);
  void WriterLoop();
  void Apply(Op& op);
  void Prefetch();
  bool PrefetchDue() const;
  void StoreFailed(const Status& status);

  HarvesterOptions options_;
  Sampler sampler_;
  std::unique_ptr<HarvestStore> store_;  // the writer thread's alone once started
  const splitnet::Manifest& manifest_;
  std::string package_;
  std::uint64_t edge_id_;
  int feature_channels_, feature_height_, feature_width_;

  // Edge thread.
  std::optional<Upload> upload_;
  double expected_bytes_ = 0.0;

  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<Op> ops_;
  bool busy_ = false, stop_ = false, closed_ = false;
  bool want_prefetch_ = true;
  bool prefetch_idle_ = false;          // the last prefetch found nothing
  std::uint64_t cursor_ = 0;            // the last item handed to the uploader
  std::optional<Upload> ready_;         // the writer's prefetched next item
  HarvestCounters counters_;            // under mu_
  StoreTotals totals_;                  // under mu_
  double record_bytes_ = 0.0;           // EWMA of stored record sizes, under mu_
  std::int64_t last_error_log_s_ = -1;  // steady clock
  std::thread writer_;
};

}  // namespace deepcut::harvest
