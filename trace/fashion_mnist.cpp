#include "trace/fashion_mnist.h"

#include <zlib.h>

namespace deepcut::trace {
namespace {

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
  while ((n = gzread(file, buffer, sizeof(buffer))) > 0) {
    bytes.insert(bytes.end(), buffer, buffer + n);
    // The largest real IDX file (train images) is 47 MB; stop a gzip bomb early.
    if (bytes.size() > (std::size_t{1} << 30)) {
      gzclose(file);
      return InvalidArgument(path + ": IDX file larger than 1 GiB");
    }
  }
  bool failed = n < 0;
  gzclose(file);
  if (failed) return DataLoss(path + ": corrupt gzip stream");
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08)
    return InvalidArgument(path + ": not an unsigned-byte IDX file");
  const int ndims = bytes[3];
  if (ndims < 1 || ndims > 3 || bytes.size() < 4u + 4u * ndims)
    return InvalidArgument(path + ": bad IDX header");
  IdxData out;
  std::size_t total = 1;
  for (int i = 0; i < ndims; ++i) {
    std::uint32_t d = BigEndian32(&bytes[4 + 4 * i]);
    if (d == 0 || d > (1u << 24)) return InvalidArgument(path + ": bad IDX dimension");
    out.dims.push_back(static_cast<int>(d));
    total *= d;
  }
  std::size_t offset = 4u + 4u * ndims;
  if (bytes.size() - offset != total)
    return InvalidArgument(path + ": IDX payload has " + std::to_string(bytes.size() - offset) +
                           " bytes, header says " + std::to_string(total));
  out.values.assign(bytes.begin() + offset, bytes.end());
  return out;
}

cv::Mat LabelledImages::Image(std::int64_t i) const {
  const std::size_t size = static_cast<std::size_t>(rows) * cols;
  cv::Mat image(rows, cols, CV_8UC1);
  std::copy_n(pixels.data() + static_cast<std::size_t>(i) * size, size, image.data);
  return image;
}

const std::vector<std::string>& FashionMnistClasses() {
  static const std::vector<std::string> kClasses{"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return kClasses;
}

Result<LabelledImages> LoadFashionMnist(const std::string& dir, const std::string& split) {
  std::string prefix;
  if (split == "test")
    prefix = "t10k";
  else if (split == "train")
    prefix = "train";
  else
    return InvalidArgument("fashion-mnist split must be 'test' or 'train', got '" + split + "'");
  const std::string base = dir + "/" + prefix;
  ASSIGN_OR_RETURN(IdxData images, ReadIdx(base + "-images-idx3-ubyte.gz"));
  ASSIGN_OR_RETURN(IdxData labels, ReadIdx(base + "-labels-idx1-ubyte.gz"));
  if (images.dims.size() != 3 || labels.dims.size() != 1 || images.dims[0] != labels.dims[0])
    return InvalidArgument("fashion-mnist files in " + dir + "/ disagree on the number of items");
  LabelledImages out;
  out.rows = images.dims[1];
  out.cols = images.dims[2];
  out.pixels = std::move(images.values);
  out.labels.assign(labels.values.begin(), labels.values.end());
  out.classes = FashionMnistClasses();
  for (std::size_t i = 0; i < out.labels.size(); ++i)
    if (out.labels[i] >= static_cast<int>(out.classes.size()))
      return InvalidArgument(base + "-labels-idx1-ubyte.gz: item " + std::to_string(i) +
                             " has label " + std::to_string(out.labels[i]) + ", expected 0..9");
  return out;
}

}  // namespace deepcut::trace
