// Rate-accuracy evaluation: what each way of sending a frame to the cloud costs
// on the wire and what accuracy the cloud's answer then has.
//
// For every test image it measures, side by side:
//   features     our head's bottleneck at each codec rate of the package (the real
//                request message, header and ZMTP framing included), tail answer;
//   exit         the edge's own answer (0 bytes);
//   png/jpeg/webp the image coded by OpenCV's imgcodecs, sent in the same request
//                envelope, decoded and classified by the baseline package (same model
//                family trained on full-precision images);
//   float-split  the baseline's float32 features at the same split point,
//                zstd-coded ("Neurosurgeon-style": split, but no learned bottleneck).
// Bytes are the mean real message size per frame; nothing is an entropy estimate.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "trace/fashion_mnist.h"

namespace deepcut::eval {

struct RateAccuracyOptions {
  std::string model_dir = "models/fmnist";
  std::string baseline_dir;  // empty: features and exit only
  std::string fashion_mnist_dir = trace::kDefaultFashionMnistDir;
  int frames = -1;  // test images to use; -1: all 10,000
  int batch = 250;  // images per inference batch
  std::vector<int> jpeg_qualities{10, 20, 30, 40, 50, 60, 70, 80, 90, 95};
  std::vector<int> webp_qualities{10, 20, 30, 40, 50, 60, 70, 80, 90, 95};
  int float_zstd_level = 19;
};

// Called with (images done, images total).
using Progress = std::function<void(int, int)>;

// {"rows": [{"method", "setting", "bytes_per_frame", "payload_bytes_per_frame",
// "accuracy"}...], "goal": {...}, "frames": N, ...}
Result<nlohmann::json> RunRateAccuracy(const RateAccuracyOptions& options,
                                       const Progress& progress);

// The goal check of issue 3: at accuracy within `tolerance` of the best input
// codec, the cheapest features row vs the cheapest input-codec row.
nlohmann::json GoalCheck(const nlohmann::json& rows, double tolerance = 0.005);

std::string MarkdownTable(const nlohmann::json& report);

}  // namespace deepcut::eval
