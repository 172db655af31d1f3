// Fashion-MNIST on disk: the IDX file reader and the labelled image set the
// `fashion-mnist:` source and the scene maker are built from.
//
// IDX is the MNIST family's format: a magic (0, 0, 0x08 = unsigned byte, number
// of dimensions), the dimensions as big-endian uint32, then the values.
// Debian's dataset-fashion-mnist ships them gzip-compressed.
//
// Thread-safety: free functions on their own data.
#pragma once

#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace deepcut::trace {

// Reads an IDX file (optionally gzip-compressed): images (3 dims, uint8) or
// labels (1 dim, uint8).
struct IdxData {
  std::vector<int> dims;
  std::vector<std::uint8_t> values;
};
Result<IdxData> ReadIdx(const std::string& path);

// Gray 8-bit images of one size with a label each.
struct LabelledImages {
  int rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // count() * rows * cols, image after image, row-major
  std::vector<int> labels;           // one per image
  std::vector<std::string> classes;  // label -> name (may be empty)

  std::int64_t count() const { return static_cast<std::int64_t>(labels.size()); }
  // A copy of image `i` (CV_8UC1, rows x cols); 0 <= i < count().
  cv::Mat Image(std::int64_t i) const;
};

// Where Debian's dataset-fashion-mnist puts the IDX files.
inline constexpr const char* kDefaultFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// The ten class names, in label order.
const std::vector<std::string>& FashionMnistClasses();

// `split` is "test" (t10k-*, 10,000 items) or "train" (60,000 items).
Result<LabelledImages> LoadFashionMnist(const std::string& dir, const std::string& split);

}  // namespace deepcut::trace
