#include "harvest/harvester.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <opencv2/imgcodecs.hpp>

namespace deepcut::harvest {

Result<std::unique_ptr<Harvester>> Harvester::Create(HarvesterOptions options,
                                                     const splitnet::Manifest& manifest) {
  if (options.chunk_bytes < 256 || options.chunk_bytes > transport::kMaxMessageBytes / 2)
    return InvalidArgument("harvest chunk size must be 256 B .. 512 KiB");
  if (!(options.ack_timeout_ms > 0)) return InvalidArgument("harvest ack timeout must be > 0 ms");
  if (options.queue < 1) return InvalidArgument("harvest queue must be >= 1");
  if (options.store_max_mb < 0) return InvalidArgument("harvest store cap must be >= 0 MB");
  ASSIGN_OR_RETURN(auto sampler,
                   Sampler::Create(options.sampler, static_cast<int>(manifest.classes.size())));
  ASSIGN_OR_RETURN(auto package, PackageVersion(manifest));
  ASSIGN_OR_RETURN(auto store,
                   HarvestStore::Open(options.store_path, StoreRole::kEdge, IdentityOf(manifest)));
  if (options.store_max_mb > 0) RETURN_IF_ERROR(store->SetMaxBytes(options.store_max_mb * 1e6));
  ASSIGN_OR_RETURN(auto totals, store->Totals());
  std::unique_ptr<Harvester> h(new Harvester(std::move(options), std::move(sampler),
                                             std::move(store), manifest, std::move(package)));
  h->totals_ = totals;
  h->sampler_.SetStored(totals.frames, totals.bytes);
  h->writer_ = std::thread([p = h.get()] { p->WriterLoop(); });
  return h;
}

Harvester::Harvester(HarvesterOptions options, Sampler sampler, std::unique_ptr<HarvestStore> store,
                     const splitnet::Manifest& manifest, std::string package)
    : options_(std::move(options)),
      sampler_(std::move(sampler)),
      store_(std::move(store)),
      manifest_(manifest),
      package_(std::move(package)),
      edge_id_(store_->edge_id()),
      feature_channels_(manifest.bottleneck.channels),
      feature_height_(manifest.bottleneck.height),
      feature_width_(manifest.bottleneck.width) {
  // A first guess of a record's size until the writer has measured some: a
  // PNG of the model's input at half its raw size, the features and scores.
  expected_bytes_ = 0.5 * manifest.input.height * manifest.input.width * manifest.input.channels +
                    4.0 * feature_channels_ * feature_height_ * feature_width_ +
                    4.0 * manifest.classes.size() + 120;
}

Harvester::~Harvester() { Close(); }

bool Harvester::Offer(HarvestFrame f, TimeUs now_us) {
  {
    std::lock_guard lock(mu_);
    ++counters_.offered;
    sampler_.SetStored(totals_.frames + static_cast<std::int64_t>(ops_.size()), totals_.bytes);
    if (record_bytes_ > 0) expected_bytes_ = record_bytes_;
  }
  Candidate c;
  c.now_us = now_us;
  c.features = f.features;
  c.channels = feature_channels_;
  c.height = feature_height_;
  c.width = feature_width_;
  c.exit_scores = f.exit_scores;
  c.exit_class = f.exit_class;
  c.exit_error_rate = f.exit_error_rate;
  c.cloud_class = f.cloud_class;
  c.cloud_confidence = f.cloud_confidence;
  c.expected_bytes = static_cast<std::int64_t>(expected_bytes_);
  const Verdict v = sampler_.Offer(c);
  {
    std::lock_guard lock(mu_);
    ++counters_.verdicts[v.why];
    if (v.keep) ++counters_.kept;
  }
  if (!v.keep) return false;
  Op op;
  op.kind = Op::kInsert;
  HarvestRecord& r = op.record;
  r.frame_id = f.frame_id;
  r.capture_us = f.capture_us;
  r.stored_us = c.now_us;
  r.label = f.label;
  r.features = std::move(f.features);
  r.exit_class = f.exit_class;
  r.exit_confidence = f.exit_confidence;
  r.exit_scores = std::move(f.exit_scores);
  r.cloud_class = f.cloud_class;
  r.cloud_confidence = f.cloud_confidence;
  r.sampler = SamplerName(sampler_.options().kind);
  r.score = v.score;
  r.package = package_;
  r.model_tag = transport::ModelTag(manifest_.fingerprint);
  op.image = f.image;  // shared, not copied: the writer encodes it
  {
    std::lock_guard lock(mu_);
    if (closed_ || static_cast<int>(ops_.size()) >= options_.queue) {
      ++counters_.dropped;
      return false;
    }
  }
  Push(std::move(op));
  return true;
}

void Harvester::Push(Op op) {
  {
    std::lock_guard lock(mu_);
    ops_.push_back(std::move(op));
  }
  cv_.notify_one();
}

void Harvester::StoreFailed(const Status& status) {
  // Called with mu_ held.
  ++counters_.store_errors;
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  if (last_error_log_s_ < 0 || now - last_error_log_s_ >= 60) {
    spdlog::error(
        "harvest: {} (frames keep being answered; harvesting resumes when the store "
        "can be written)",
        status.message());
    last_error_log_s_ = now;
  }
}

void Harvester::Apply(Op& op) {
  Status done;
  switch (op.kind) {
    case Op::kInsert: {
      if (!cv::imencode(".png", op.image, op.record.image_png)) {
        done = Internal("cannot encode frame " + std::to_string(op.record.frame_id) + " as PNG");
        break;
      }
      const std::int64_t bytes = op.record.StoredBytes();
      auto item = store_->Add(std::move(op.record));
      if (!item.ok()) {
        done = item.status();
        break;
      }
      spdlog::debug("harvest: committed frame {} as item {}", op.record.frame_id, *item);
      std::lock_guard lock(mu_);
      ++counters_.committed;
      ++totals_.frames;
      ++totals_.unsent;
      totals_.bytes += bytes;
      record_bytes_ = record_bytes_ <= 0 ? bytes : record_bytes_ + 0.1 * (bytes - record_bytes_);
      break;
    }
    case Op::kMarkSent:
      done = store_->MarkSent(op.item, op.chunks);
      break;
    case Op::kRemove:
    case Op::kRefuse: {
      done = op.kind == Op::kRemove ? store_->Remove(op.item) : store_->MarkRefused(op.item);
      if (done.ok()) {
        auto totals = store_->Totals();
        std::lock_guard lock(mu_);
        if (totals.ok()) totals_ = *totals;
      }
      break;
    }
  }
  if (!done.ok()) {
    std::lock_guard lock(mu_);
    StoreFailed(done);
  }
}

// Reads the next unsent record and cuts its bytes into chunk messages (the
// writer thread: the store is its alone).
void Harvester::Prefetch() {
  std::uint64_t after;
  {
    std::lock_guard lock(mu_);
    if (!want_prefetch_ || ready_ || !options_.upload) return;
    after = cursor_;
  }
  auto next = store_->NextUnsent(after);
  std::lock_guard lock(mu_);
  if (!next.ok()) {
    StoreFailed(next.status());
    return;
  }
  if (!*next) return;  // nothing yet: tried again after the next insert
  const Unsent& u = **next;
  const auto bytes = EncodeRecord(u.record);
  const std::size_t count =
      std::max<std::size_t>(1, (bytes.size() + options_.chunk_bytes - 1) / options_.chunk_bytes);
  Upload up;
  up.item = u.record.item;
  up.next = std::min<std::size_t>(std::max(0, u.sent_chunks), count);
  for (std::size_t i = 0; i < count; ++i) {
    transport::HarvestChunk c;
    c.edge = edge_id_;
    c.item = u.record.item;
    c.index = static_cast<std::uint32_t>(i);
    c.count = static_cast<std::uint32_t>(count);
    c.model = u.record.model_tag;
    const std::size_t from = i * options_.chunk_bytes;
    c.payload.assign(bytes.begin() + from,
                     bytes.begin() + std::min(bytes.size(), from + options_.chunk_bytes));
    up.messages.push_back(transport::EncodeHarvestChunk(c));
  }
  cursor_ = up.item;
  want_prefetch_ = false;
  ready_ = std::move(up);
}

// A prefetch that found nothing is not tried again until an insert commits or
// the uploader finishes an item. With mu_ held.
bool Harvester::PrefetchDue() const {
  return options_.upload && want_prefetch_ && !ready_ && !prefetch_idle_;
}

void Harvester::WriterLoop() {
  std::unique_lock lock(mu_);
  const auto prefetch_due = [&] { return PrefetchDue(); };
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !ops_.empty() || prefetch_due(); });
    if (!ops_.empty()) {
      Op op = std::move(ops_.front());
      ops_.pop_front();
      busy_ = true;
      lock.unlock();
      Apply(op);
      lock.lock();
      if (op.kind == Op::kInsert || op.kind == Op::kRemove || op.kind == Op::kRefuse)
        prefetch_idle_ = false;
      busy_ = false;
      idle_cv_.notify_all();
      continue;
    }
    if (stop_) break;
    busy_ = true;
    lock.unlock();
    Prefetch();
    lock.lock();
    if (!ready_) prefetch_idle_ = true;
    busy_ = false;
    idle_cv_.notify_all();
  }
}

const std::vector<std::uint8_t>* Harvester::NextMessage(TimeUs now_us) {
  if (!options_.upload) return nullptr;
  if (!upload_) {
    std::lock_guard lock(mu_);
    if (!ready_) return nullptr;
    upload_ = std::move(ready_);
    ready_.reset();
  }
  Upload& u = *upload_;
  if (u.next >= u.messages.size()) return nullptr;
  if (u.in_flight) {
    // Backs off while no ack comes (a cloud without a harvest store never
    // acknowledges): the timeout doubles per resend in a row, up to 32x.
    const double timeout_ms = options_.ack_timeout_ms * (1 << std::min(u.resends, 5));
    if (now_us - u.sent_us < static_cast<TimeUs>(timeout_ms * 1000)) return nullptr;
    u.resend = true;
  }
  return &u.messages[u.next];
}

void Harvester::Sent(TimeUs now_us, std::int64_t wire_bytes) {
  if (!upload_) return;
  std::lock_guard lock(mu_);
  ++counters_.chunks_sent;
  if (upload_->resend) {
    ++counters_.chunks_resent;
    ++upload_->resends;
  }
  counters_.upload_bytes += wire_bytes;
  upload_->in_flight = true;
  upload_->resend = false;
  upload_->sent_us = now_us;
}

void Harvester::OnAck(const transport::HarvestAck& ack) {
  if (!upload_ || ack.edge != edge_id_ || ack.item != upload_->item || ack.index != upload_->next ||
      !upload_->in_flight)
    return;  // a duplicate ack (of a resent chunk) or one for an item already done
  Upload& u = *upload_;
  u.in_flight = false;
  u.resends = 0;
  if (!ack.ok) {
    spdlog::warn("harvest: the cloud refused item {}: {}; it stays in the store, unsent", u.item,
                 ack.message);
    {
      std::lock_guard lock(mu_);
      ++counters_.items_refused;
      want_prefetch_ = true;
    }
    Push(Op{.kind = Op::kRefuse, .item = u.item});
    upload_.reset();
    return;
  }
  ++u.next;
  {
    std::lock_guard lock(mu_);
    ++counters_.chunks_acked;
  }
  if (u.next < u.messages.size()) {
    Push(Op{.kind = Op::kMarkSent, .item = u.item, .chunks = static_cast<int>(u.next)});
    return;
  }
  {
    std::lock_guard lock(mu_);
    ++counters_.items_uploaded;
    want_prefetch_ = true;
  }
  Push(Op{.kind = Op::kRemove, .item = u.item});
  upload_.reset();
}

void Harvester::OnReconnect() {
  if (upload_ && upload_->in_flight) {
    upload_->sent_us = -(1ll << 60);  // due at once
    upload_->resends = 0;
  }
}

bool Harvester::UploadPending() const {
  if (!options_.upload) return false;
  std::lock_guard lock(mu_);
  return upload_.has_value() || ready_.has_value() || totals_.unsent > 0 || !ops_.empty();
}

void Harvester::SetBudget(const HarvestBudget& budget, TimeUs now_us) {
  sampler_.SetBudget(budget, now_us);
}

void Harvester::Flush() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return stop_ || (ops_.empty() && !busy_ && !PrefetchDue()); });
}

void Harvester::Close() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

HarvestCounters Harvester::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

StoreTotals Harvester::totals() const {
  std::lock_guard lock(mu_);
  return totals_;
}

}  // namespace deepcut::harvest
