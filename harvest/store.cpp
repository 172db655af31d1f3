#include "harvest/store.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

namespace deepcut::harvest {
namespace {

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS frames(
  id INTEGER PRIMARY KEY,
  edge_id TEXT NOT NULL,
  item INTEGER NOT NULL,
  frame_id INTEGER NOT NULL,
  capture_us INTEGER NOT NULL,
  stored_us INTEGER NOT NULL,
  label INTEGER NOT NULL,
  image BLOB NOT NULL,
  features BLOB NOT NULL,
  exit_class INTEGER NOT NULL,
  exit_confidence REAL NOT NULL,
  exit_scores BLOB NOT NULL,
  cloud_class INTEGER NOT NULL,
  cloud_confidence REAL NOT NULL,
  sampler TEXT NOT NULL,
  score REAL NOT NULL,
  package TEXT NOT NULL,
  model_tag INTEGER NOT NULL,
  sent_chunks INTEGER NOT NULL DEFAULT 0,
  UNIQUE(edge_id, item));
CREATE TABLE IF NOT EXISTS chunks(
  edge_id TEXT NOT NULL, item INTEGER NOT NULL, idx INTEGER NOT NULL, count INTEGER NOT NULL,
  data BLOB NOT NULL, PRIMARY KEY(edge_id, item, idx));
)sql";

// One prepared statement, finalised when it goes out of scope.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& Int(int i, std::int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& Real(int i, double v) {
    sqlite3_bind_double(s_, i, v);
    return *this;
  }
  Stmt& Text(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Blob(int i, const void* p, std::size_t n) {
    sqlite3_bind_blob(s_, i, n ? p : "", static_cast<int>(n), SQLITE_TRANSIENT);
    return *this;
  }
  int Step() { return sqlite3_step(s_); }
  std::int64_t ColInt(int i) const { return sqlite3_column_int64(s_, i); }
  double ColReal(int i) const { return sqlite3_column_double(s_, i); }
  std::string ColText(int i) const {
    const auto* p = sqlite3_column_text(s_, i);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, i)) : "";
  }
  std::vector<std::uint8_t> ColBlob(int i) const {
    const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(s_, i));
    return p ? std::vector<std::uint8_t>(p, p + sqlite3_column_bytes(s_, i))
             : std::vector<std::uint8_t>();
  }
  std::vector<float> ColFloats(int i) const {
    const auto b = ColBlob(i);
    std::vector<float> v(b.size() / 4);
    if (!v.empty()) std::memcpy(v.data(), b.data(), 4 * v.size());
    return v;
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_OK;
};

constexpr const char* kFrameColumns =
    "edge_id, item, frame_id, capture_us, stored_us, label, image, features, exit_class, "
    "exit_confidence, exit_scores, cloud_class, cloud_confidence, sampler, score, package, "
    "model_tag";

void BindRecord(Stmt& s, const HarvestRecord& r) {
  s.Text(1, EdgeIdText(r.edge))
      .Int(2, static_cast<std::int64_t>(r.item))
      .Int(3, r.frame_id)
      .Int(4, r.capture_us)
      .Int(5, r.stored_us)
      .Int(6, r.label)
      .Blob(7, r.image_png.data(), r.image_png.size())
      .Blob(8, r.features.data(), 4 * r.features.size())
      .Int(9, r.exit_class)
      .Real(10, r.exit_confidence)
      .Blob(11, r.exit_scores.data(), 4 * r.exit_scores.size())
      .Int(12, r.cloud_class)
      .Real(13, r.cloud_confidence)
      .Text(14, r.sampler)
      .Real(15, r.score)
      .Text(16, r.package)
      .Int(17, r.model_tag);
}

HarvestRecord ReadRecord(const Stmt& s, int first) {
  HarvestRecord r;
  r.edge = std::strtoull(s.ColText(first).c_str(), nullptr, 16);
  r.item = static_cast<std::uint64_t>(s.ColInt(first + 1));
  r.frame_id = s.ColInt(first + 2);
  r.capture_us = s.ColInt(first + 3);
  r.stored_us = s.ColInt(first + 4);
  r.label = static_cast<int>(s.ColInt(first + 5));
  r.image_png = s.ColBlob(first + 6);
  r.features = s.ColFloats(first + 7);
  r.exit_class = static_cast<int>(s.ColInt(first + 8));
  r.exit_confidence = static_cast<float>(s.ColReal(first + 9));
  r.exit_scores = s.ColFloats(first + 10);
  r.cloud_class = static_cast<int>(s.ColInt(first + 11));
  r.cloud_confidence = static_cast<float>(s.ColReal(first + 12));
  r.sampler = s.ColText(first + 13);
  r.score = s.ColReal(first + 14);
  r.package = s.ColText(first + 15);
  r.model_tag = static_cast<std::uint16_t>(s.ColInt(first + 16));
  return r;
}

const char* RoleName(StoreRole role) { return role == StoreRole::kEdge ? "edge" : "cloud"; }

}  // namespace

StoreIdentity IdentityOf(const splitnet::Manifest& m) {
  return StoreIdentity{
      .model_name = m.name,
      .fingerprint = m.fingerprint,
      .model_tag = transport::ModelTag(m.fingerprint),
      .classes = static_cast<int>(m.classes.size()),
      .feature_count = m.bottleneck.channels * m.bottleneck.height * m.bottleneck.width};
}

Result<std::string> PackageVersion(const splitnet::Manifest& m) {
  std::uint64_t hash = 1469598103934665603ull;
  for (const auto& file : {m.head_file, m.exit_file, m.tail_file}) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return NotFound("cannot read " + file.string());
    char buffer[1 << 16];
    while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
      for (std::streamsize i = 0; i < in.gcount(); ++i)
        hash = (hash ^ static_cast<unsigned char>(buffer[i])) * 1099511628211ull;
      if (!in) break;
    }
  }
  return EdgeIdText(hash);
}

HarvestStore::~HarvestStore() {
  if (db_) sqlite3_close_v2(db_);
}

Status HarvestStore::Error(const std::string& what) const {
  const int code = db_ ? sqlite3_extended_errcode(db_) : SQLITE_ERROR;
  std::string message =
      "harvest store " + path_ + ": " + what + ": " + (db_ ? sqlite3_errmsg(db_) : "cannot open");
  if ((code & 0xff) == SQLITE_FULL) message += " (the disk is full)";
  if ((code & 0xff) == SQLITE_READONLY) message += " (the store is read-only)";
  if ((code & 0xff) == SQLITE_NOTADB || (code & 0xff) == SQLITE_CORRUPT)
    return InvalidArgument(message + " (not a harvest store, or a corrupt one)");
  return Unavailable(message);
}

Status HarvestStore::Exec(const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);
  return rc == SQLITE_OK ? Status::Ok() : Error(sql.substr(0, sql.find_first_of("(;\n")));
}

Result<std::unique_ptr<HarvestStore>> HarvestStore::Open(const std::string& path, StoreRole role,
                                                         const StoreIdentity& identity) {
  if (path.empty()) return InvalidArgument("harvest store path is empty");
  const auto parent = std::filesystem::absolute(path).parent_path();
  std::error_code ec;
  if (!std::filesystem::is_directory(parent, ec))
    return InvalidArgument("harvest store " + path + ": folder " + parent.string() +
                           " does not exist");
  std::unique_ptr<HarvestStore> store(new HarvestStore(path, role));
  if (sqlite3_open_v2(path.c_str(), &store->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK)
    return store->Error("cannot open");
  sqlite3_busy_timeout(store->db_, 5000);
  RETURN_IF_ERROR(store->Init(identity));
  return store;
}

Status HarvestStore::Init(const StoreIdentity& id) {
  {
    Stmt check(db_, "PRAGMA quick_check");
    if (!check.ok()) return Error("cannot read");
    const int rc = check.Step();
    if (rc != SQLITE_ROW) return Error("cannot read");
    if (check.ColText(0) != "ok")
      return InvalidArgument("harvest store " + path_ + " is corrupt: " + check.ColText(0));
  }
  // WAL: a writer never blocks the readers; FULL: a commit is on disk when it returns.
  RETURN_IF_ERROR(Exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(Exec("PRAGMA synchronous=FULL"));
  // Creating the tables (or an empty transaction) is also the check that the
  // store can be written.
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  Status made = Exec(kSchema);
  std::map<std::string, std::string> meta;
  if (made.ok()) {
    Stmt s(db_, "SELECT key, value FROM meta");
    while (s.Step() == SQLITE_ROW) meta[s.ColText(0)] = s.ColText(1);
  }
  const std::map<std::string, std::string> want = {
      {"format", kStoreFormat},
      {"role", RoleName(role_)},
      {"model_name", id.model_name},
      {"model_fingerprint", std::to_string(id.fingerprint)},
      {"model_tag", std::to_string(id.model_tag)},
      {"classes", std::to_string(id.classes)},
      {"feature_count", std::to_string(id.feature_count)}};
  if (made.ok() && meta.empty()) {
    std::random_device rd;
    edge_id_ = role_ == StoreRole::kEdge ? (std::uint64_t{rd()} << 32 | rd()) : 0;
    auto all = want;
    all["created_us"] = std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
    if (role_ == StoreRole::kEdge) all["edge_id"] = EdgeIdText(edge_id_);
    for (const auto& [k, v] : all) {
      Stmt s(db_, "INSERT INTO meta(key, value) VALUES(?, ?)");
      s.Text(1, k).Text(2, v);
      if (s.Step() != SQLITE_DONE) {
        made = Error("cannot write");
        break;
      }
    }
  } else if (made.ok()) {
    for (const auto& key : {"format", "role", "model_name", "model_fingerprint"}) {
      const auto it = meta.find(key);
      const std::string have = it == meta.end() ? "(none)" : it->second;
      if (have == want.at(key)) continue;
      Exec("ROLLBACK");
      if (std::string(key) == "format" || std::string(key) == "role")
        return InvalidArgument("harvest store " + path_ + ": " + key + " is '" + have +
                               "', expected '" + want.at(key) + "'");
      return InvalidArgument("harvest store " + path_ + " was made for model '" +
                             meta["model_name"] + "' (fingerprint " + meta["model_fingerprint"] +
                             "), this package is '" + id.model_name + "' (fingerprint " +
                             std::to_string(id.fingerprint) + "): use a new store for this model");
    }
    if (role_ == StoreRole::kEdge) {
      auto edge = ParseEdgeId(meta["edge_id"]);
      if (!edge.ok()) {
        Exec("ROLLBACK");
        return InvalidArgument("harvest store " + path_ + ": " + edge.status().message());
      }
      edge_id_ = *edge;
    }
  }
  if (!made.ok()) {
    Exec("ROLLBACK");
    return made;
  }
  return Exec("COMMIT");
}

Result<std::uint64_t> HarvestStore::Add(HarvestRecord r) {
  r.edge = edge_id_;
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  // Items come from a counter in meta, never from the row id: SQLite may reuse
  // a deleted row's id, and the cloud would take a reused item for a resend.
  Status failed;
  {
    Stmt next(db_, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'next_item'");
    r.item = next.Step() == SQLITE_ROW ? static_cast<std::uint64_t>(next.ColInt(0)) : 1;
  }
  Stmt bump(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES('next_item', ?)");
  bump.Text(1, std::to_string(r.item + 1));
  Stmt s(db_, (std::string("INSERT INTO frames(") + kFrameColumns +
               ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
                  .c_str());
  BindRecord(s, r);
  if (bump.Step() != SQLITE_DONE || s.Step() != SQLITE_DONE) failed = Error("cannot add a frame");
  if (!failed.ok()) {
    Exec("ROLLBACK");
    return failed;
  }
  RETURN_IF_ERROR(Exec("COMMIT"));
  return r.item;
}

Status HarvestStore::SetMaxBytes(double bytes) {
  Stmt s(db_, "PRAGMA page_size");
  if (s.Step() != SQLITE_ROW) return Error("cannot read the page size");
  const auto pages = static_cast<std::int64_t>(bytes / std::max<std::int64_t>(1, s.ColInt(0)));
  return Exec("PRAGMA max_page_count = " + std::to_string(std::max<std::int64_t>(1, pages)));
}

Result<StoreTotals> HarvestStore::Totals() {
  Stmt s(db_,
         "SELECT COUNT(*), COALESCE(SUM(length(image) + length(features) + length(exit_scores) + "
         "length(sampler) + length(package) + 96), 0), COALESCE(SUM(sent_chunks >= 0), 0) FROM "
         "frames");
  if (s.Step() != SQLITE_ROW) return Error("cannot count");
  return StoreTotals{s.ColInt(0), s.ColInt(1), role_ == StoreRole::kEdge ? s.ColInt(2) : 0};
}

Result<std::optional<Unsent>> HarvestStore::NextUnsent(std::uint64_t after_item) {
  Stmt s(db_, (std::string("SELECT ") + kFrameColumns +
               ", sent_chunks FROM frames WHERE sent_chunks >= 0 AND item > ? ORDER BY item "
               "LIMIT 1")
                  .c_str());
  s.Int(1, static_cast<std::int64_t>(after_item));
  const int rc = s.Step();
  if (rc == SQLITE_DONE) return std::optional<Unsent>();
  if (rc != SQLITE_ROW) return Error("cannot read");
  return std::optional<Unsent>(Unsent{ReadRecord(s, 0), static_cast<int>(s.ColInt(17))});
}

Status HarvestStore::MarkSent(std::uint64_t item, int chunks) {
  Stmt s(db_, "UPDATE frames SET sent_chunks = ? WHERE item = ? AND sent_chunks >= 0");
  s.Int(1, chunks).Int(2, static_cast<std::int64_t>(item));
  return s.Step() == SQLITE_DONE ? Status::Ok() : Error("cannot update");
}

Status HarvestStore::Remove(std::uint64_t item) {
  Stmt s(db_, "DELETE FROM frames WHERE item = ?");
  s.Int(1, static_cast<std::int64_t>(item));
  return s.Step() == SQLITE_DONE ? Status::Ok() : Error("cannot delete");
}

Status HarvestStore::MarkRefused(std::uint64_t item) { return MarkSent(item, -1); }

Result<std::optional<std::vector<std::uint8_t>>> HarvestStore::PutChunk(
    std::uint64_t edge, std::uint64_t item, int index, int count,
    const std::vector<std::uint8_t>& data) {
  const std::string edge_text = EdgeIdText(edge);
  {
    Stmt s(db_, "INSERT OR IGNORE INTO chunks(edge_id, item, idx, count, data) VALUES(?,?,?,?,?)");
    s.Text(1, edge_text)
        .Int(2, static_cast<std::int64_t>(item))
        .Int(3, index)
        .Int(4, count)
        .Blob(5, data.data(), data.size());
    if (s.Step() != SQLITE_DONE) return Error("cannot store a chunk");
  }
  Stmt s(db_, "SELECT idx, count, data FROM chunks WHERE edge_id = ? AND item = ? ORDER BY idx");
  s.Text(1, edge_text).Int(2, static_cast<std::int64_t>(item));
  std::vector<std::uint8_t> bytes;
  int have = 0;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    // Chunks that disagree on the count are not one item.
    if (s.ColInt(1) != count || s.ColInt(0) != have)
      return std::optional<std::vector<std::uint8_t>>();
    const auto part = s.ColBlob(2);
    bytes.insert(bytes.end(), part.begin(), part.end());
    ++have;
  }
  if (rc != SQLITE_DONE) return Error("cannot read chunks");
  if (have != count) return std::optional<std::vector<std::uint8_t>>();
  return std::optional<std::vector<std::uint8_t>>(std::move(bytes));
}

Result<bool> HarvestStore::Complete(const HarvestRecord& r) {
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  Stmt s(db_, (std::string("INSERT OR IGNORE INTO frames(") + kFrameColumns +
               ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
                  .c_str());
  BindRecord(s, r);
  bool added = false;
  Status failed;
  if (s.Step() != SQLITE_DONE) {
    failed = Error("cannot store a frame");
  } else {
    added = sqlite3_changes(db_) > 0;
    Stmt d(db_, "DELETE FROM chunks WHERE edge_id = ? AND item = ?");
    d.Text(1, EdgeIdText(r.edge)).Int(2, static_cast<std::int64_t>(r.item));
    if (d.Step() != SQLITE_DONE) failed = Error("cannot drop chunks");
  }
  if (!failed.ok()) {
    Exec("ROLLBACK");
    return failed;
  }
  RETURN_IF_ERROR(Exec("COMMIT"));
  return added;
}

Result<bool> HarvestStore::Has(std::uint64_t edge, std::uint64_t item) {
  Stmt s(db_, "SELECT 1 FROM frames WHERE edge_id = ? AND item = ?");
  s.Text(1, EdgeIdText(edge)).Int(2, static_cast<std::int64_t>(item));
  const int rc = s.Step();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error("cannot read");
  return rc == SQLITE_ROW;
}

Result<std::vector<HarvestRecord>> HarvestStore::All() {
  Stmt s(db_, (std::string("SELECT ") + kFrameColumns + " FROM frames ORDER BY id").c_str());
  std::vector<HarvestRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadRecord(s, 0));
  if (rc != SQLITE_DONE) return Error("cannot read");
  return out;
}

}  // namespace deepcut::harvest
