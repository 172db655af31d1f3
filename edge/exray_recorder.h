// Deployment visibility (ML-EXray): what the edge computed on every N-th frame,
// kept on disk for `deepcut-exray validate` (docs/exray.md) or any reader.
//
// A log directory holds:
//   log.json        format "deepcut-exray/1", the model (name, fingerprint, the
//                   edge's manifest as it was loaded) and the recording settings;
//   index.jsonl     one line per record kept, oldest first (frame, label, rate,
//                   route, the exit's answer, timings, and which array is what);
//   records/N.npz   one NumPy .npz per record (a ZIP of .npy v1.0 members,
//                   stored): raw (the frame as the source gave it, uint8
//                   H x W [x C]), input (the pre-processed tensor), head_KK and
//                   exit_KK (every layer's output, in graph order), features
//                   (the bottleneck before quantisation), quantized (after
//                   quantisation and dequantisation at the rate used: what the
//                   cloud's tail gets) and scores (the exit's softmax). One file
//                   per record: creating files is what costs on slow filesystems.
// Every file appears whole: a record is written beside its name and renamed
// into place, its index line appended in one write after that; when the
// records pass the size cap the oldest are deleted and the index is replaced
// without them.
//
// Recording is off the frame's path: Submit hands the record to a writer
// thread and returns; a record that finds the queue full is skipped and
// counted, never waited for.
//
// Thread-safety: Due and Submit from the runtime's thread; counters() from any.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <opencv2/core.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "splitnet/manifest.h"
#include "splitnet/split_model.h"

namespace deepcut::edge {

struct ExrayOptions {
  std::string dir;                     // the log directory; empty: no recording
  int every = 30;                      // record every N-th frame (the first one included)
  std::int64_t max_bytes = 256 << 20;  // size cap of the records; the oldest are dropped
  int queue = 16;                      // records waiting for the writer; beyond, skipped
};

// One recorded frame: what EdgeRuntime fills on a frame that is Due.
struct ExrayRecord {
  std::int64_t frame_id = -1;
  int label = -1;
  std::int64_t capture_us = 0;
  cv::Mat raw;
  std::vector<float> input;
  std::vector<int> input_shape, feature_shape;  // 1 x C x H x W each
  std::vector<splitnet::LayerOutput> head, exit;
  std::vector<float> features, quantized, scores;
  std::string rate;  // the rate `quantized` is at: the offload's, else the default
  bool offloaded = false;
  std::string route;
  int exit_class = -1;
  float exit_confidence = 0.0f;
  double preprocess_ms = 0.0, quantize_ms = 0.0;
};

struct ExrayCounters {
  std::int64_t recorded = 0;  // records written
  std::int64_t skipped = 0;   // due but the writer was behind
  std::int64_t dropped = 0;   // deleted for the size cap
  std::int64_t failed = 0;    // could not be written (logged)
  std::int64_t bytes = 0;     // on disk now
};

class ExrayRecorder {
 public:
  // Creates `options.dir` (its parent must exist; an existing one must be
  // empty, so no two runs mix) and writes log.json.
  static Result<std::unique_ptr<ExrayRecorder>> Create(ExrayOptions options,
                                                       const splitnet::Manifest& manifest);
  ~ExrayRecorder();  // Close()
  // Writes what is queued and stops the writer; Submit after it skips.
  void Close();
  // Waits until what is queued is written (the benchmark's fair share).
  void Flush();

  // Whether the next frame is to be recorded (counts the frame).
  bool Due();
  void Submit(ExrayRecord record);
  ExrayCounters counters() const;
  const ExrayOptions& options() const { return options_; }

 private:
  explicit ExrayRecorder(ExrayOptions options);
  void Run();
  Status Write(const ExrayRecord& record);

  ExrayOptions options_;
  std::int64_t frames_seen_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ExrayRecord> queue_;
  bool stopping_ = false;
  bool writing_ = false;
  ExrayCounters counters_;
  std::deque<std::pair<std::string, std::int64_t>> kept_;  // index lines and their bytes
  std::deque<std::string> kept_files_;
  std::thread writer_;
};

}  // namespace deepcut::edge
