#include "trace/frame_source.h"

#include <algorithm>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>

#include "trace/frame_trace.h"

namespace deepcut::trace {
namespace {

class FashionMnistSource final : public FrameSource {
 public:
  explicit FashionMnistSource(trace::LabelledImages items) : items_(std::move(items)) {}
  Result<std::optional<SourceFrame>> Next() override {
    if (next_ >= items_.count()) return std::optional<SourceFrame>();
    SourceFrame f;
    f.index = next_;
    // A copy: frames outlive the source's buffer in the runtime's records.
    f.image = items_.Image(next_);
    f.label = items_.labels[static_cast<size_t>(next_)];
    ++next_;
    return std::optional<SourceFrame>(std::move(f));
  }
  std::int64_t Remaining() const override { return items_.count() - next_; }

 private:
  trace::LabelledImages items_;
  std::int64_t next_ = 0;
};

// A recorded frame trace: its capture times and labels come along.
class TraceSource final : public FrameSource {
 public:
  explicit TraceSource(std::unique_ptr<trace::FrameTraceReader> reader)
      : reader_(std::move(reader)) {}
  Result<std::optional<SourceFrame>> Next() override {
    ASSIGN_OR_RETURN(auto record, reader_->Next());
    if (!record) return std::optional<SourceFrame>();
    SourceFrame f;
    f.index = record->index;
    f.image = std::move(record->image);
    f.label = record->label;
    f.capture_offset_us = record->capture_us;
    f.scene_start = record->scene_start;
    return std::optional<SourceFrame>(std::move(f));
  }
  std::int64_t Remaining() const override { return reader_->Remaining(); }

 private:
  std::unique_ptr<trace::FrameTraceReader> reader_;
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

}  // namespace

Result<std::unique_ptr<FrameSource>> OpenSource(const SourceOptions& options) {
  const std::string& spec = options.spec;
  auto colon = spec.find(':');
  if (colon == std::string::npos || colon + 1 >= spec.size())
    return InvalidArgument(
        "source '" + spec +
        "' must look like fashion-mnist:test, images:DIR, video:PATH, camera:N or trace:FILE");
  const std::string kind = spec.substr(0, colon), arg = spec.substr(colon + 1);
  if (kind == "fashion-mnist") {
    ASSIGN_OR_RETURN(trace::LabelledImages items,
                     trace::LoadFashionMnist(options.fashion_mnist_dir, arg));
    return std::unique_ptr<FrameSource>(new FashionMnistSource(std::move(items)));
  }
  if (kind == "trace") {
    ASSIGN_OR_RETURN(auto reader, trace::FrameTraceReader::Open(arg));
    return std::unique_ptr<FrameSource>(new TraceSource(std::move(reader)));
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
      if (e.is_regular_file(ec) && std::find(kExts.begin(), kExts.end(), ext) != kExts.end())
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
        std::error_code ec;
        if (!std::filesystem::is_regular_file(arg, ec))
          return NotFound("video file " + arg + (ec ? ": " + ec.message() : " does not exist"));
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
                         "' (known: fashion-mnist, images, video, camera, trace)");
}

}  // namespace deepcut::trace
