#include "trace/frame_source.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>

namespace deepcut::trace {
namespace {

namespace fs = std::filesystem;

class FrameSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           (std::string("deepcut-source-") +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Writes a small IDX pair (3 images of 4x5 and 3 labels), gzip-compressed.
  void WriteIdx(const std::string& prefix, int n_labels = 3) {
    auto gz = [](const fs::path& p, const std::vector<std::uint8_t>& bytes) {
      gzFile f = gzopen(p.c_str(), "wb");
      gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
      gzclose(f);
    };
    std::vector<std::uint8_t> images{0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5};
    for (int i = 0; i < 3 * 20; ++i) images.push_back(static_cast<std::uint8_t>(i));
    std::vector<std::uint8_t> labels{0, 0, 8, 1, 0, 0, 0, static_cast<std::uint8_t>(n_labels)};
    for (int i = 0; i < n_labels; ++i) labels.push_back(static_cast<std::uint8_t>(9 - i));
    gz(dir_ / (prefix + "-images-idx3-ubyte.gz"), images);
    gz(dir_ / (prefix + "-labels-idx1-ubyte.gz"), labels);
  }
  fs::path dir_;
};

TEST_F(FrameSourceTest, ReadsFashionMnistIdx) {
  WriteIdx("t10k");
  auto source = OpenSource({.spec = "fashion-mnist:test", .fashion_mnist_dir = dir_.string()});
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ((*source)->Remaining(), 3);
  for (int i = 0; i < 3; ++i) {
    auto f = (*source)->Next();
    ASSERT_TRUE(f.ok() && f->has_value());
    EXPECT_EQ((*f)->index, i);
    EXPECT_EQ((*f)->label, 9 - i);
    EXPECT_EQ((*f)->image.rows, 4);
    EXPECT_EQ((*f)->image.cols, 5);
    EXPECT_EQ((*f)->image.at<std::uint8_t>(0, 0), i * 20);
  }
  auto end = (*source)->Next();
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(end->has_value());
}

TEST_F(FrameSourceTest, RefusesMismatchedOrCorruptIdx) {
  WriteIdx("t10k", 2);
  auto source = OpenSource({.spec = "fashion-mnist:test", .fashion_mnist_dir = dir_.string()});
  ASSERT_FALSE(source.ok());
  EXPECT_NE(source.status().message().find("disagree"), std::string::npos);
  std::ofstream(dir_ / "bad.idx") << "hello world";
  EXPECT_FALSE(ReadIdx((dir_ / "bad.idx").string()).ok());
  std::ofstream(dir_ / "short.idx", std::ios::binary)
      << std::string("\0\0\x08\x01\0\0\0\x09\x01", 9);  // says 9 items, holds 1
  auto s = ReadIdx((dir_ / "short.idx").string());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("header says"), std::string::npos);
  EXPECT_FALSE(ReadIdx((dir_ / "missing.gz").string()).ok());
}

TEST_F(FrameSourceTest, ReadsImageFolderSortedAndSkipsUnreadable) {
  cv::imwrite((dir_ / "b.png").string(), cv::Mat(10, 12, CV_8UC3, cv::Scalar(1, 2, 3)));
  cv::imwrite((dir_ / "a.png").string(), cv::Mat(6, 7, CV_8UC1, cv::Scalar(9)));
  std::ofstream(dir_ / "c.jpg") << "not a jpeg";
  std::ofstream(dir_ / "notes.txt") << "ignored";
  auto source = OpenSource({.spec = "images:" + dir_.string()});
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_EQ((*source)->Remaining(), 3);
  auto a = (*source)->Next();
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->image.cols, 7);
  auto b = (*source)->Next();
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->image.cols, 12);
  auto c = (*source)->Next();
  EXPECT_FALSE(c.ok());  // the caller logs and skips it
  auto end = (*source)->Next();
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(end->has_value());
}

TEST_F(FrameSourceTest, RefusesBadSpecs) {
  for (const char* spec : {"", "fashion-mnist", "fashion-mnist:val", "images:/no/such/dir",
                           "video:/no/such.avi", "camera:x", "camera:-1", "ftp:foo"}) {
    auto s = OpenSource({.spec = spec, .fashion_mnist_dir = dir_.string()});
    EXPECT_FALSE(s.ok()) << spec;
  }
  auto empty = OpenSource({.spec = "images:" + dir_.string()});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("no image files"), std::string::npos);
}

TEST_F(FrameSourceTest, ReadsARealVideoWhenOpencvDocIsInstalled) {
  const char* path = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";
  if (!fs::exists(path)) GTEST_SKIP() << "opencv-doc not installed";
  auto source = OpenSource({.spec = std::string("video:") + path});
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  auto f = (*source)->Next();
  ASSERT_TRUE(f.ok() && f->has_value());
  EXPECT_EQ((*f)->image.cols, 768);
  EXPECT_EQ((*f)->label, -1);
}

}  // namespace
}  // namespace deepcut::trace
