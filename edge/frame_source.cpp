#include "edge/frame_source.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>

namespace deepcut::edge {
namespace {

class FashionMnistSource final : public FrameSource {
 public:
  FashionMnistSource(IdxData images, IdxData labels)
      : images_(std::move(images)), labels_(std::move(labels)) {}
  Result<std::optional<SourceFrame>> Next() override {
    if (next_ >= images_.dims[0]) return std::optional<SourceFrame>();
    const int h = images_.dims[1], w = images_.dims[2];
    SourceFrame f;
    f.index = next_;
    // Copy: frames outlive the source's buffer in the runtime's records.
    f.image =
        cv::Mat(h, w, CV_8UC1, images_.values.data() + static_cast<size_t>(next_) * h * w).clone();
    f.label = labels_.values[next_];
    ++next_;
    return std::optional<SourceFrame>(std::move(f));
  }
  std::int64_t Remaining() const override { return images_.dims[0] - next_; }

 private:
  IdxData images_, labels_;
  int next_ = 0;
};

class ImageDirSource final : public FrameSource {
 public:
  explicit ImageDirSource(std::vector<std::filesystem::path> files) : files_(std::move(files)) {}
  Result<std::optional<SourceFrame>> Next() override {
    if (next_ >= files_.size()) return std::optional<SourceFrame>();
    // Advance first: an unreadable file is skipped, not retried forever.
    const size_t index = next_++;
    const auto& path = files_[index];
    cv::Mat image = cv::imread(path.string(), cv::IMREAD_COLOR);
    if (image.empty()) return InvalidArgument("cannot decode image " + path.string());
    SourceFrame f;
    f.index = static_cast<std::int64_t>(index);
    f.image = std::move(image);
    return std::optional<SourceFrame>(std::move(f));
  }
  std::int64_t Remaining() const override {
    return static_cast<std::int64_t>(files_.size() - next_);
  }

 private:
  std::vector<std::filesystem::path> files_;
  size_t next_ = 0;
};

class CaptureSource final : public FrameSource {
 public:
  CaptureSource(cv::VideoCapture capture, bool live) : capture_(std::move(capture)), live_(live) {
    if (!live_) {
      double n = capture_.get(cv::CAP_PROP_FRAME_COUNT);
      total_ = n > 0 ? static_cast<std::int64_t>(n) : -1;
    }
  }
  Result<std::optional<SourceFrame>> Next() override {
    cv::Mat image;
    try {
      if (!capture_.read(image) || image.empty()) return std::optional<SourceFrame>();
    } catch (const cv::Exception& e) {
      return InvalidArgument(std::string("video read failed: ") + e.what());
    }
    if (image.depth() != CV_8U) return InvalidArgument("video frames must be 8-bit");
    SourceFrame f;
    f.index = next_++;
    f.image = std::move(image);
    return std::optional<SourceFrame>(std::move(f));
  }
  std::int64_t Remaining() const override {
    return total_ < 0 ? -1 : std::max<std::int64_t>(0, total_ - next_);
  }
  bool IsLive() const override { return live_; }

 private:
  cv::VideoCapture capture_;
  bool live_;
  std::int64_t total_ = -1;
  std::int64_t next_ = 0;
};

std::uint32_t BigEndian32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

}  // namespace

Result<IdxData> ReadIdx(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");  // also reads uncompressed files
  if (!file) return NotFound("cannot open IDX file " + path);
  std::vector<std::uint8_t> bytes;
  std::uint8_t buffer[1 << 16];
  int n;
  while ((n = gzread(file, buffer, sizeof(buffer))) > 0)
    bytes.insert(bytes.end(), buffer, buffer + n);
  bool failed = n < 0;
  gzclose(file);
  if (failed) return DataLoss(path + ": corrupt gzip stream");
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08)
    return InvalidArgument(path + ": not an unsigned-byte IDX file");
  const int ndims = bytes[3];
  if (ndims < 1 || ndims > 3 || bytes.size() < 4u + 4u * ndims)
    return InvalidArgument(path + ": bad IDX header");
  IdxData out;
  size_t total = 1;
  for (int i = 0; i < ndims; ++i) {
    std::uint32_t d = BigEndian32(&bytes[4 + 4 * i]);
    if (d == 0 || d > (1u << 24)) return InvalidArgument(path + ": bad IDX dimension");
    out.dims.push_back(static_cast<int>(d));
    total *= d;
  }
  size_t offset = 4u + 4u * ndims;
  if (bytes.size() - offset != total)
    return InvalidArgument(path + ": IDX payload has " + std::to_string(bytes.size() - offset) +
                           " bytes, header says " + std::to_string(total));
  out.values.assign(bytes.begin() + offset, bytes.end());
  return out;
}

Result<std::unique_ptr<FrameSource>> OpenSource(const SourceOptions& options) {
  const std::string& spec = options.spec;
  auto colon = spec.find(':');
  if (colon == std::string::npos || colon + 1 >= spec.size())
    return InvalidArgument(
        "source '" + spec +
        "' must look like fashion-mnist:test, images:DIR, video:PATH or camera:N");
  const std::string kind = spec.substr(0, colon), arg = spec.substr(colon + 1);
  if (kind == "fashion-mnist") {
    std::string prefix;
    if (arg == "test")
      prefix = "t10k";
    else if (arg == "train")
      prefix = "train";
    else
      return InvalidArgument("fashion-mnist split must be 'test' or 'train', got '" + arg + "'");
    const std::string dir = options.fashion_mnist_dir + "/";
    ASSIGN_OR_RETURN(IdxData images, ReadIdx(dir + prefix + "-images-idx3-ubyte.gz"));
    ASSIGN_OR_RETURN(IdxData labels, ReadIdx(dir + prefix + "-labels-idx1-ubyte.gz"));
    if (images.dims.size() != 3 || labels.dims.size() != 1 || images.dims[0] != labels.dims[0])
      return InvalidArgument("fashion-mnist files in " + dir + " disagree on the number of items");
    return std::unique_ptr<FrameSource>(
        new FashionMnistSource(std::move(images), std::move(labels)));
  }
  if (kind == "images") {
    std::error_code ec;
    if (!std::filesystem::is_directory(arg, ec))
      return NotFound("image folder " + arg + " does not exist");
    static const std::vector<std::string> kExts{".png", ".jpg",  ".jpeg", ".bmp", ".pgm",
                                                ".ppm", ".webp", ".tif",  ".tiff"};
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(arg, ec)) {
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
      if (e.is_regular_file() && std::find(kExts.begin(), kExts.end(), ext) != kExts.end())
        files.push_back(e.path());
    }
    if (files.empty()) return NotFound("image folder " + arg + " holds no image files");
    std::sort(files.begin(), files.end());
    return std::unique_ptr<FrameSource>(new ImageDirSource(std::move(files)));
  }
  if (kind == "video" || kind == "camera") {
    cv::VideoCapture capture;
    try {
      if (kind == "video") {
        if (!std::filesystem::is_regular_file(arg))
          return NotFound("video file " + arg + " does not exist");
        capture.open(arg);
      } else {
        size_t used = 0;
        int index = -1;
        try {
          index = std::stoi(arg, &used);
        } catch (const std::exception&) {
        }
        if (index < 0 || used != arg.size())
          return InvalidArgument("camera index must be a number >= 0, got '" + arg + "'");
        capture.open(index);
      }
    } catch (const cv::Exception& e) {
      return InvalidArgument("cannot open " + spec + ": " + e.what());
    }
    if (!capture.isOpened()) return Unavailable("cannot open " + spec);
    return std::unique_ptr<FrameSource>(new CaptureSource(std::move(capture), kind == "camera"));
  }
  return InvalidArgument("unknown source kind '" + kind +
                         "' (known: fashion-mnist, images, video, camera)");
}

}  // namespace deepcut::edge
