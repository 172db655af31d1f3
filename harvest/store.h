// The harvest store: an embedded SQLite database of harvested frames
// (docs/harvest.md, "The store"). The edge keeps what its harvester chose
// until the cloud has acknowledged it; the cloud keeps what arrived.
//
// Every change is one transaction in WAL mode with synchronous=FULL: a crash
// or kill -9 loses no committed record and leaves no torn row (SQLite's
// journal rolls an unfinished transaction back when the file is next opened).
// Open() checks everything it can before any work: that the file is an SQLite
// database and passes quick_check, that it is a harvest store of the same role
// and model, and that it can be written (a read-only path fails here, not at
// the first kept frame). Errors name the file and what is wrong.
//
// Thread-safety: none; one thread uses a store (the harvester's writer thread
// on the edge, the socket thread on the cloud).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "harvest/record.h"
#include "splitnet/manifest.h"
#include "transport/protocol.h"

struct sqlite3;

namespace deepcut::harvest {

inline constexpr const char* kStoreFormat = "deepcut-harvest/1";

enum class StoreRole { kEdge, kCloud };

// What a store is tied to: records from a package with another name, shape or
// entropy model (another fingerprint) are not comparable, so such a store is
// refused. A new version of the same package (fine-tuned weights) is accepted;
// each record says which version made it.
struct StoreIdentity {
  std::string model_name;
  std::uint32_t fingerprint = 0;
  std::uint16_t model_tag = 0;
  int classes = 0;
  int feature_count = 0;
};
StoreIdentity IdentityOf(const splitnet::Manifest& manifest);
// A version id of a package's weights: FNV-1a over its three ONNX files, 16
// hex digits. Read once at start.
Result<std::string> PackageVersion(const splitnet::Manifest& manifest);

struct StoreTotals {
  std::int64_t frames = 0;
  std::int64_t bytes = 0;   // StoredBytes of the records
  std::int64_t unsent = 0;  // edge: not yet acknowledged in full (refused ones excluded)
};

// A record the edge has not finished sending, and how many of its chunks the
// cloud has acknowledged.
struct Unsent {
  HarvestRecord record;
  int sent_chunks = 0;
};

class HarvestStore {
 public:
  static Result<std::unique_ptr<HarvestStore>> Open(const std::string& path, StoreRole role,
                                                    const StoreIdentity& identity);
  ~HarvestStore();
  HarvestStore(const HarvestStore&) = delete;
  HarvestStore& operator=(const HarvestStore&) = delete;

  const std::string& path() const { return path_; }
  // Edge: the store's own id, made when it was created (the cloud keys
  // uploads by it). Cloud: 0.
  std::uint64_t edge_id() const { return edge_id_; }

  // Caps the database file (SQLite's max_page_count): a write past it fails
  // as a full disk would.
  Status SetMaxBytes(double bytes);
  // Edge: adds a kept record; its edge and item are set here. Returns the item.
  Result<std::uint64_t> Add(HarvestRecord record);
  Result<StoreTotals> Totals();
  // Edge: the oldest record after `after_item` not yet acknowledged in full.
  Result<std::optional<Unsent>> NextUnsent(std::uint64_t after_item);
  Status MarkSent(std::uint64_t item, int chunks);
  // Edge: the cloud has it all; the record goes.
  Status Remove(std::uint64_t item);
  // Edge: the cloud refused it for good; kept, never sent again.
  Status MarkRefused(std::uint64_t item);

  // Cloud: one chunk of an upload. When it completes the item (all `count`
  // chunks in), returns the item's bytes; the chunks stay until Complete.
  Result<std::optional<std::vector<std::uint8_t>>> PutChunk(std::uint64_t edge, std::uint64_t item,
                                                            int index, int count,
                                                            const std::vector<std::uint8_t>& data);
  // Cloud: stores a completed item and drops its chunks, in one transaction;
  // false if it was already there (a resent item is kept once).
  Result<bool> Complete(const HarvestRecord& record);
  // Cloud: whether an item is stored.
  Result<bool> Has(std::uint64_t edge, std::uint64_t item);

  // Every record, oldest first (tools and tests).
  Result<std::vector<HarvestRecord>> All();

 private:
  HarvestStore(std::string path, StoreRole role) : path_(std::move(path)), role_(role) {}
  Status Init(const StoreIdentity& identity);
  Status Exec(const std::string& sql);
  Status Error(const std::string& what) const;
  std::string path_;
  StoreRole role_;
  sqlite3* db_ = nullptr;
  std::uint64_t edge_id_ = 0;
};

}  // namespace deepcut::harvest
