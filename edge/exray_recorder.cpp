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

#include "core/files.h"

namespace deepcut::edge {
namespace fs = std::filesystem;
namespace {

// NumPy's .npy v1.0: magic, header length, a Python dict literal padded with
// spaces to a multiple of 64 bytes and ended by a newline, then the data.
Result<std::int64_t> WriteNpy(const fs::path& path, const char* descr,
                              const std::vector<int>& shape, const void* data, size_t bytes) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += std::to_string(shape[i]) + ", ";
  if (shape.size() > 1) dims.resize(dims.size() - 2);
  if (shape.size() == 1) dims.resize(dims.size() - 1);
  std::string header =
      std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  const std::uint16_t len = static_cast<std::uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  const char le[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(le, 2);
  out << header;
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  out.close();
  if (!out) return Internal(path.string() + ": write failed");
  return static_cast<std::int64_t>(10 + header.size() + bytes);
}

Result<std::int64_t> WriteFloats(const fs::path& path, const std::vector<int>& shape,
                                 const std::vector<float>& v) {
  return WriteNpy(path, "<f4", shape, v.data(), v.size() * sizeof(float));
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
  const fs::path rel = fs::path("records") / name;
  const fs::path tmp = dir / "records" / (std::string(".tmp-") + name);
  std::error_code ec;
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec)) return Internal(tmp.string() + ": " + ec.message());

  std::int64_t bytes = 0;
  nlohmann::json files = nlohmann::json::object();
  auto put = [&](const std::string& key, const std::string& file,
                 Result<std::int64_t> written) -> Status {
    if (!written.ok()) return written.status();
    bytes += *written;
    files[key] = (rel / file).string();
    return Status::Ok();
  };
  Status s;
  auto fail = [&](const Status& st) {
    fs::remove_all(tmp, ec);
    return st;
  };
  {
    cv::Mat raw = r.raw.isContinuous() ? r.raw : r.raw.clone();
    std::vector<int> shape{raw.rows, raw.cols};
    if (raw.channels() > 1) shape.push_back(raw.channels());
    if (raw.depth() != CV_8U) return fail(InvalidArgument("the raw frame is not 8-bit"));
    s = put("raw", "raw.npy",
            WriteNpy(tmp / "raw.npy", "|u1", shape, raw.data, raw.total() * raw.elemSize()));
    if (!s.ok()) return fail(s);
  }
  if (Status st = put("input", "input.npy", WriteFloats(tmp / "input.npy", r.input_shape, r.input));
      !st.ok())
    return fail(st);
  if (Status st = put("features", "features.npy",
                      WriteFloats(tmp / "features.npy", r.feature_shape, r.features));
      !st.ok())
    return fail(st);
  if (Status st = put("quantized", "quantized.npy",
                      WriteFloats(tmp / "quantized.npy", r.feature_shape, r.quantized));
      !st.ok())
    return fail(st);
  if (Status st =
          put("scores", "scores.npy",
              WriteFloats(tmp / "scores.npy", {1, static_cast<int>(r.scores.size())}, r.scores));
      !st.ok())
    return fail(st);
  auto layers = [&](const char* part, const std::vector<splitnet::LayerOutput>& list,
                    nlohmann::json& out) -> Status {
    out = nlohmann::json::array();
    for (size_t i = 0; i < list.size(); ++i) {
      char file[32];
      std::snprintf(file, sizeof file, "%s_%02zu.npy", part, i);
      auto written = WriteFloats(tmp / file, list[i].shape, list[i].values);
      if (!written.ok()) return written.status();
      bytes += *written;
      out.push_back({{"layer", list[i].name},
                     {"file", (rel / file).string()},
                     {"shape", list[i].shape},
                     {"ms", list[i].ms}});
    }
    return Status::Ok();
  };
  nlohmann::json head_layers, exit_layers;
  if (Status st = layers("head", r.head, head_layers); !st.ok()) return fail(st);
  if (Status st = layers("exit", r.exit, exit_layers); !st.ok()) return fail(st);
  fs::rename(tmp, dir / rel, ec);
  if (ec) return fail(Internal((dir / rel).string() + ": " + ec.message()));

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
                      {"files", files},
                      {"head", head_layers},
                      {"exit", exit_layers},
                      {"bytes", bytes}};
  std::lock_guard<std::mutex> lock(mu_);
  kept_.emplace_back(line.dump(), bytes);
  kept_dirs_.push_back((dir / rel).string());
  counters_.bytes += bytes;
  ++counters_.recorded;
  // The cap: the oldest records go, but the newest always stays.
  bool dropped = false;
  while (counters_.bytes > options_.max_bytes && kept_.size() > 1) {
    fs::remove_all(kept_dirs_.front(), ec);
    counters_.bytes -= kept_.front().second;
    kept_.pop_front();
    kept_dirs_.pop_front();
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
  return WriteFileAtomically((dir / "index.jsonl").string(), index);
}

}  // namespace deepcut::edge
