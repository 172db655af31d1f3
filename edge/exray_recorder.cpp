#include "edge/exray_recorder.h"

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include <zlib.h>

#include "core/files.h"

namespace deepcut::edge {
namespace fs = std::filesystem;
namespace {

// NumPy's .npy v1.0: magic, header length, a Python dict literal padded with
// spaces to a multiple of 64 bytes and ended by a newline, then the data.
std::string Npy(const char* descr, const std::vector<int>& shape, const void* data, size_t bytes) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += std::to_string(shape[i]) + ", ";
  if (shape.size() > 1) dims.resize(dims.size() - 2);
  if (shape.size() == 1) dims.resize(dims.size() - 1);
  std::string header =
      std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(static_cast<const char*>(data), bytes);
  return out;
}

// A NumPy .npz: a ZIP archive of .npy members, stored (no compression), so one
// record is one file (on some filesystems a file costs far more than its bytes).
class Npz {
 public:
  void Add(const std::string& name, const std::string& npy) {
    const std::string file = name + ".npy";
    const std::uint32_t crc = static_cast<std::uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(npy.data()), static_cast<uInt>(npy.size())));
    const std::uint32_t offset = static_cast<std::uint32_t>(body_.size());
    // Local file header: version 2.0, no flags, stored, no time, CRC, sizes, name.
    U32(body_, 0x04034b50);
    U16(body_, 20), U16(body_, 0), U16(body_, 0), U16(body_, 0), U16(body_, 0x21);
    U32(body_, crc), U32(body_, npy.size()), U32(body_, npy.size());
    U16(body_, file.size()), U16(body_, 0);
    body_ += file;
    body_ += npy;
    // Its central directory entry.
    U32(central_, 0x02014b50);
    U16(central_, 20), U16(central_, 20), U16(central_, 0), U16(central_, 0), U16(central_, 0),
        U16(central_, 0x21);
    U32(central_, crc), U32(central_, npy.size()), U32(central_, npy.size());
    U16(central_, file.size()), U16(central_, 0), U16(central_, 0), U16(central_, 0),
        U16(central_, 0);
    U32(central_, 0), U32(central_, offset);
    central_ += file;
    ++entries_;
  }
  std::string Finish() const {
    std::string out = body_ + central_;
    U32(out, 0x06054b50);
    U16(out, 0), U16(out, 0), U16(out, entries_), U16(out, entries_);
    U32(out, central_.size()), U32(out, body_.size());
    U16(out, 0);
    return out;
  }

 private:
  static void U16(std::string& s, size_t v) {
    s += static_cast<char>(v & 0xff);
    s += static_cast<char>((v >> 8) & 0xff);
  }
  static void U32(std::string& s, size_t v) {
    for (int i = 0; i < 4; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  }
  std::string body_, central_;
  size_t entries_ = 0;
};

std::string Floats(const std::vector<int>& shape, const std::vector<float>& v) {
  return Npy("<f4", shape, v.data(), v.size() * sizeof(float));
}

std::string Now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

ExrayRecorder::ExrayRecorder(ExrayOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<ExrayRecorder>> ExrayRecorder::Create(ExrayOptions options,
                                                             const splitnet::Manifest& manifest) {
  if (options.dir.empty()) return InvalidArgument("exray: no directory given");
  if (options.every < 1) return InvalidArgument("exray: every must be >= 1");
  if (options.max_bytes < 1) return InvalidArgument("exray: the size cap must be >= 1 byte");
  if (options.queue < 1) return InvalidArgument("exray: the queue must hold >= 1 record");
  const fs::path dir(options.dir);
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) return InvalidArgument(options.dir + " is not a directory");
    if (!fs::is_empty(dir, ec))
      return InvalidArgument(options.dir + " is not empty: give a new or empty directory");
  } else {
    const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
    if (!fs::is_directory(parent, ec))
      return InvalidArgument(options.dir + ": its parent directory does not exist");
    if (!fs::create_directory(dir, ec) || ec)
      return InvalidArgument(options.dir + ": cannot create it: " + ec.message());
  }
  fs::create_directory(dir / "records", ec);
  if (ec) return InvalidArgument(options.dir + "/records: cannot create it: " + ec.message());
  nlohmann::json manifest_json;
  {
    std::ifstream in(manifest.dir / "manifest.json");
    manifest_json = nlohmann::json::parse(in, nullptr, false);
    if (manifest_json.is_discarded()) manifest_json = nullptr;
  }
  nlohmann::json log{{"format", "deepcut-exray/1"},
                     {"created", Now()},
                     {"model",
                      {{"name", manifest.name},
                       {"fingerprint", manifest.fingerprint},
                       {"dir", fs::absolute(manifest.dir).lexically_normal().string()}}},
                     {"manifest", manifest_json},
                     {"every", options.every},
                     {"max_bytes", options.max_bytes}};
  RETURN_IF_ERROR(WriteFileAtomically((dir / "log.json").string(), log.dump(2) + "\n"));
  RETURN_IF_ERROR(WriteFileAtomically((dir / "index.jsonl").string(), ""));
  std::unique_ptr<ExrayRecorder> r(new ExrayRecorder(std::move(options)));
  r->writer_ = std::thread([p = r.get()] { p->Run(); });
  return r;
}

ExrayRecorder::~ExrayRecorder() { Close(); }

void ExrayRecorder::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

bool ExrayRecorder::Due() { return frames_seen_++ % options_.every == 0; }

void ExrayRecorder::Submit(ExrayRecord record) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || static_cast<int>(queue_.size()) >= options_.queue) {
      ++counters_.skipped;
      return;
    }
    queue_.push_back(std::move(record));
  }
  cv_.notify_one();
}

void ExrayRecorder::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return queue_.empty() && !writing_; });
}

ExrayCounters ExrayRecorder::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

void ExrayRecorder::Run() {
  for (;;) {
    ExrayRecord record;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is written
      record = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
    }
    const Status s = Write(record);
    if (!s.ok()) spdlog::warn("exray: frame {} not recorded: {}", record.frame_id, s.message());
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!s.ok()) ++counters_.failed;
      writing_ = false;
    }
    cv_.notify_all();
  }
}

Status ExrayRecorder::Write(const ExrayRecord& r) {
  const fs::path dir(options_.dir);
  std::int64_t number;
  {
    std::lock_guard<std::mutex> lock(mu_);
    number = counters_.recorded + counters_.failed;
  }
  char name[32];
  std::snprintf(name, sizeof name, "%08lld", static_cast<long long>(number));
  const fs::path rel = fs::path("records") / (std::string(name) + ".npz");

  cv::Mat raw = r.raw.isContinuous() ? r.raw : r.raw.clone();
  if (raw.depth() != CV_8U) return InvalidArgument("the raw frame is not 8-bit");
  std::vector<int> raw_shape{raw.rows, raw.cols};
  if (raw.channels() > 1) raw_shape.push_back(raw.channels());
  Npz npz;
  npz.Add("raw", Npy("|u1", raw_shape, raw.data, raw.total() * raw.elemSize()));
  npz.Add("input", Floats(r.input_shape, r.input));
  npz.Add("features", Floats(r.feature_shape, r.features));
  npz.Add("quantized", Floats(r.feature_shape, r.quantized));
  npz.Add("scores", Floats({1, static_cast<int>(r.scores.size())}, r.scores));
  auto layers = [&](const char* part, const std::vector<splitnet::LayerOutput>& list) {
    nlohmann::json out = nlohmann::json::array();
    for (size_t i = 0; i < list.size(); ++i) {
      char array[32];
      std::snprintf(array, sizeof array, "%s_%02zu", part, i);
      npz.Add(array, Floats(list[i].shape, list[i].values));
      out.push_back({{"layer", list[i].name},
                     {"array", array},
                     {"shape", list[i].shape},
                     {"ms", list[i].ms}});
    }
    return out;
  };
  const nlohmann::json head_layers = layers("head", r.head), exit_layers = layers("exit", r.exit);
  const std::string bytes_text = npz.Finish();
  const std::int64_t bytes = static_cast<std::int64_t>(bytes_text.size());
  // Not synced: a record is evidence to look at, not data to survive a power
  // cut, and a sync per record would cost more than the record.
  RETURN_IF_ERROR(WriteFileAtomically((dir / rel).string(), bytes_text, /*sync=*/false));
  const nlohmann::json files{{"raw", "raw"},
                             {"input", "input"},
                             {"features", "features"},
                             {"quantized", "quantized"},
                             {"scores", "scores"}};
  std::error_code ec;

  double head_ms = 0, exit_ms = 0;
  for (const auto& l : r.head) head_ms += l.ms;
  for (const auto& l : r.exit) exit_ms += l.ms;
  nlohmann::json line{{"record", number},
                      {"frame_id", r.frame_id},
                      {"label", r.label},
                      {"capture_us", r.capture_us},
                      {"rate", r.rate},
                      {"offloaded", r.offloaded},
                      {"route", r.route},
                      {"exit_class", r.exit_class},
                      {"exit_confidence", r.exit_confidence},
                      {"times_ms",
                       {{"preprocess", r.preprocess_ms},
                        {"head", head_ms},
                        {"exit", exit_ms},
                        {"quantize", r.quantize_ms}}},
                      {"file", rel.string()},
                      {"arrays", files},
                      {"head", head_layers},
                      {"exit", exit_layers},
                      {"bytes", bytes}};
  std::lock_guard<std::mutex> lock(mu_);
  kept_.emplace_back(line.dump(), bytes);
  kept_files_.push_back((dir / rel).string());
  counters_.bytes += bytes;
  ++counters_.recorded;
  // The cap: the oldest records go, but the newest always stays.
  bool dropped = false;
  while (counters_.bytes > options_.max_bytes && kept_.size() > 1) {
    fs::remove(kept_files_.front(), ec);
    counters_.bytes -= kept_.front().second;
    kept_.pop_front();
    kept_files_.pop_front();
    ++counters_.dropped;
    dropped = true;
  }
  if (!dropped) {
    // One line appended in one write: a reader sees it whole or not at all
    // (an unfinished last line has no newline yet).
    const std::string text = kept_.back().first + "\n";
    const int fd = ::open((dir / "index.jsonl").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return Internal((dir / "index.jsonl").string() + ": cannot append");
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    if (::close(fd) != 0 || !ok) return Internal((dir / "index.jsonl").string() + ": write failed");
    return Status::Ok();
  }
  std::string index;
  for (const auto& [text, _] : kept_) index += text + "\n";
  return WriteFileAtomically((dir / "index.jsonl").string(), index, /*sync=*/false);
}

}  // namespace deepcut::edge
