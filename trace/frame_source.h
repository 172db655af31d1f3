// Where frames come from. A source spec is `kind:argument`:
//   fashion-mnist:test | fashion-mnist:train   the dataset's IDX files (labels known)
//   images:DIR                                  image files in DIR, sorted by name
//   video:PATH                                  a video file (OpenCV VideoCapture)
//   camera:N                                    camera N (OpenCV VideoCapture)
//   trace:FILE                                  a frame trace (docs/frame-trace.md): the
//                                               recorded capture times and labels
//
// Thread-safety: one source per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <opencv2/core.hpp>
#include <optional>
#include <string>

#include "core/status.h"
#include "trace/fashion_mnist.h"

namespace deepcut::trace {

struct SourceFrame {
  std::int64_t index = 0;  // position in the source, from 0
  cv::Mat image;           // 8-bit, gray or BGR
  int label = -1;          // ground truth when the source knows it
  // Capture time from the start of the source if recorded (traces), else -1.
  std::int64_t capture_offset_us = -1;
  // A new item entered view here (scene traces mark it; evaluation only: the
  // runtime never looks).
  bool scene_start = false;
};

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // The next frame, std::nullopt at the end, or an error (a corrupt file).
  virtual Result<std::optional<SourceFrame>> Next() = 0;
  // Frames left if known (files), else -1 (camera, some videos).
  virtual std::int64_t Remaining() const = 0;
  // True for live sources, which always run in real time.
  virtual bool IsLive() const { return false; }
};

struct SourceOptions {
  std::string spec;
  // Where Debian's dataset-fashion-mnist puts the IDX files.
  std::string fashion_mnist_dir = kDefaultFashionMnistDir;
};

Result<std::unique_ptr<FrameSource>> OpenSource(const SourceOptions& options);

// The IDX reader lives with the datasets in trace/; these names stay for tests and tools.
using trace::IdxData;
using trace::ReadIdx;

}  // namespace deepcut::trace
