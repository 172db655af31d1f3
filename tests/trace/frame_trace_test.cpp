// Frame traces: the file format (round trip, hostile files), the scene maker
// and the edge's `trace:` source.
#include "trace/frame_trace.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <opencv2/imgcodecs.hpp>
#include <random>

#include "trace/fashion_mnist.h"
#include "trace/frame_source.h"
#include "trace/scene_maker.h"
#include "trace/trace_stats.h"

namespace deepcut::trace {
namespace {

namespace fs = std::filesystem;

using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t kPreamble = 21;  // magic line + header length
constexpr std::size_t kRecordHeader = 24;

cv::Mat RandomImage(int rows, int cols, int type, std::uint64_t seed) {
  cv::Mat m(rows, cols, type);
  cv::RNG rng(seed);
  rng.fill(m, cv::RNG::UNIFORM, 0, 256);
  return m;
}

bool SameImage(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

class FrameTraceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           (std::string("deepcut-trace-") +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // Three 8x6 gray frames at 0, 100, 200 ms with labels 2, 2, -1.
  std::string WriteSample(const std::string& name = "sample.dcft") {
    const std::string path = Path(name);
    FrameTraceHeader h;
    h.fps = 10;
    h.source = "test";
    h.classes = {"a", "b", "c"};
    auto w = FrameTraceWriter::Create(path, h);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    const int labels[3] = {2, 2, -1};
    for (int i = 0; i < 3; ++i)
      EXPECT_TRUE((*w)->Append(RandomImage(6, 8, CV_8UC1, i), i * 100000, labels[i]).ok());
    EXPECT_TRUE((*w)->Finish().ok());
    return path;
  }
  static Bytes Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), {});
  }
  static void Write(const std::string& path, const Bytes& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  }
  static std::uint32_t HeaderBytes(const Bytes& b) {
    std::uint32_t v;
    std::memcpy(&v, &b[17], 4);  // little-endian machine
    return v;
  }
  // Offset of record `i` in a well-formed trace.
  static std::size_t RecordOffset(const Bytes& b, int i) {
    std::size_t off = kPreamble + HeaderBytes(b);
    for (int k = 0; k < i; ++k) {
      std::uint32_t n;
      std::memcpy(&n, &b[off + 16], 4);
      off += kRecordHeader + n;
    }
    return off;
  }
  // Rewrites the JSON header in place (same reserved length).
  static void EditHeader(Bytes& b, const std::function<void(nlohmann::json&)>& edit) {
    const std::uint32_t n = HeaderBytes(b);
    auto j = nlohmann::json::parse(b.begin() + kPreamble, b.begin() + kPreamble + n);
    edit(j);
    std::string text = j.dump();
    ASSERT_LE(text.size(), n);
    text.resize(n, ' ');
    std::memcpy(&b[kPreamble], text.data(), n);
  }
  // Recomputes record i's checksum after an edit.
  static void FixCrc(Bytes& b, int i) {
    const std::size_t off = RecordOffset(b, i);
    std::uint32_t n;
    std::memcpy(&n, &b[off + 16], 4);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, &b[off], 20);
    crc = crc32(crc, &b[off + kRecordHeader], n);
    const std::uint32_t c = static_cast<std::uint32_t>(crc);
    std::memcpy(&b[off + 20], &c, 4);
  }
  // Open must fail with a message naming the file and containing `what`.
  void ExpectOpenFails(const Bytes& bytes, const std::string& what) {
    const std::string path = Path("bad.dcft");
    Write(path, bytes);
    auto r = FrameTraceReader::Open(path);
    ASSERT_FALSE(r.ok()) << "opened a file that should fail with: " << what;
    EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
  }

  fs::path dir_;
};

TEST_F(FrameTraceTest, RoundTripsFramesOfDifferentSizesAndChannels) {
  const std::string path = Path("mixed.dcft");
  FrameTraceHeader h;
  h.fps = 25;
  h.source = "unit-test";
  h.seed = 42;
  h.classes = {"zero", "one", "two"};
  h.params = {{"note", "hello"}};
  struct Want {
    cv::Mat image;
    std::int64_t us;
    int label;
    bool start;
  };
  std::vector<Want> want{{RandomImage(28, 28, CV_8UC1, 1), 0, 0, true},
                         {RandomImage(7, 10, CV_8UC3, 2), 40000, 1, false},
                         {RandomImage(7, 10, CV_8UC3, 3), 40000, -1, false},  // same time
                         {RandomImage(3, 5, CV_8UC4, 4), 120000, 2, true},
                         {cv::Mat(1, 1, CV_8UC1, cv::Scalar(255)), 5000000000, 1, false}};
  {
    auto w = FrameTraceWriter::Create(path, h);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    for (const auto& f : want) ASSERT_TRUE((*w)->Append(f.image, f.us, f.label, f.start).ok());
    EXPECT_EQ((*w)->frames(), 5);
    ASSERT_TRUE((*w)->Finish().ok());
    EXPECT_EQ((*w)->bytes_written(), static_cast<std::int64_t>(fs::file_size(path)));
  }
  auto r = FrameTraceReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const FrameTraceHeader& got = (*r)->header();
  EXPECT_EQ(got.frames, 5);
  EXPECT_EQ(got.width, 0);  // the frames differ
  EXPECT_EQ(got.channels, 0);
  EXPECT_EQ(got.duration_us, 5000000000);
  EXPECT_EQ(got.fps, 25);
  EXPECT_EQ(got.source, "unit-test");
  EXPECT_EQ(got.seed, 42);
  EXPECT_EQ(got.classes, h.classes);
  EXPECT_EQ(got.params["note"], "hello");
  EXPECT_FALSE(got.created.empty());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ((*r)->Remaining(), static_cast<std::int64_t>(want.size() - i));
    auto rec = (*r)->Next();
    ASSERT_TRUE(rec.ok()) << rec.status().ToString();
    ASSERT_TRUE(rec->has_value());
    EXPECT_EQ((*rec)->index, static_cast<std::int64_t>(i));
    EXPECT_EQ((*rec)->capture_us, want[i].us);
    EXPECT_EQ((*rec)->label, want[i].label);
    EXPECT_EQ((*rec)->scene_start, want[i].start);
    EXPECT_TRUE(SameImage((*rec)->image, want[i].image)) << "frame " << i;
  }
  auto end = (*r)->Next();
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(end->has_value());
  EXPECT_EQ((*r)->Remaining(), 0);
}

TEST_F(FrameTraceTest, HeaderRecordsTheCommonSizeAndAnEmptyTraceReads) {
  const std::string path = WriteSample();
  auto r = FrameTraceReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->header().width, 8);
  EXPECT_EQ((*r)->header().height, 6);
  EXPECT_EQ((*r)->header().channels, 1);
  EXPECT_EQ((*r)->header().duration_us, 200000);

  const std::string empty = Path("empty.dcft");
  auto w = FrameTraceWriter::Create(empty, {});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Finish().ok());
  auto e = FrameTraceReader::Open(empty);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ((*e)->Remaining(), 0);
  auto next = (*e)->Next();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
}

TEST_F(FrameTraceTest, WriterRefusesBadFramesAndKeepsGoing) {
  FrameTraceHeader h;
  h.classes = {"a", "b"};
  auto w = FrameTraceWriter::Create(Path("w.dcft"), h);
  ASSERT_TRUE(w.ok());
  const cv::Mat ok = RandomImage(4, 4, CV_8UC1, 1);
  ASSERT_TRUE((*w)->Append(ok, 1000, 1).ok());
  EXPECT_FALSE((*w)->Append(ok, 999, 1).ok());   // time goes back
  EXPECT_FALSE((*w)->Append(ok, 2000, 2).ok());  // no class 2
  EXPECT_FALSE((*w)->Append(ok, 2000, -2).ok());
  EXPECT_FALSE((*w)->Append(cv::Mat(), 2000, 0).ok());
  EXPECT_FALSE((*w)->Append(cv::Mat(4, 4, CV_16UC1, cv::Scalar(1)), 2000, 0).ok());
  EXPECT_FALSE((*w)->Append(cv::Mat(4, 4, CV_8UC2, cv::Scalar(1)), 2000, 0).ok());
  auto bad = (*w)->Append(ok, 999, 0);
  EXPECT_NE(bad.message().find("frame 1"), std::string::npos) << bad.message();
  ASSERT_TRUE((*w)->Append(ok, 2000, 0).ok());
  ASSERT_TRUE((*w)->Finish().ok());
  EXPECT_FALSE((*w)->Append(ok, 3000, 0).ok());  // finished
  EXPECT_FALSE((*w)->Finish().ok());
  auto r = FrameTraceReader::Open(Path("w.dcft"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->Remaining(), 2);
}

TEST_F(FrameTraceTest, WriterLeavesNoFileWhenNotFinished) {
  const std::string path = Path("partial.dcft");
  {
    auto w = FrameTraceWriter::Create(path, {});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append(RandomImage(4, 4, CV_8UC1, 1), 0, -1).ok());
    EXPECT_FALSE(fs::exists(path));  // written under a temporary name
  }
  EXPECT_TRUE(fs::is_empty(dir_)) << "a partial or temporary file was left behind";
  // Nor when it cannot write at all.
  auto w = FrameTraceWriter::Create((dir_ / "no-such-dir" / "x.dcft").string(), {});
  EXPECT_FALSE(w.ok());
  EXPECT_TRUE(fs::is_empty(dir_));
  // An existing file stays as it was until Finish replaces it.
  const std::string sample = WriteSample();
  const Bytes before = Read(sample);
  {
    auto again = FrameTraceWriter::Create(sample, {});
    ASSERT_TRUE(again.ok());
    ASSERT_TRUE((*again)->Append(RandomImage(4, 4, CV_8UC1, 1), 0, -1).ok());
  }
  EXPECT_EQ(Read(sample), before);
}

TEST_F(FrameTraceTest, RefusesTruncatedFilesAtEveryLength) {
  const Bytes good = Read(WriteSample());
  for (std::size_t n = 0; n < good.size(); ++n) {
    const std::string path = Path("cut.dcft");
    Write(path, Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)));
    auto r = FrameTraceReader::Open(path);
    ASSERT_FALSE(r.ok()) << "a file cut to " << n << " of " << good.size() << " bytes opened";
    EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
  }
  // Cut inside the last image: the error names the record.
  ExpectOpenFails(Bytes(good.begin(), good.end() - 10), "record 2: image length");
  ExpectOpenFails(Bytes(good.begin(), good.end() - 10), "exceeds");
}

TEST_F(FrameTraceTest, RefusesCorruptHeaders) {
  const Bytes good = Read(WriteSample());
  ExpectOpenFails(Bytes{}, "not a frame trace");
  Bytes b = good;
  b[0] = 'D';
  ExpectOpenFails(b, "not a frame trace");
  b = good;
  b[15] = '7';
  ExpectOpenFails(b, "version '7' is not supported");
  b = good;
  b[kPreamble] = '#';  // not JSON
  ExpectOpenFails(b, "header is not valid JSON");
  b = good;
  std::memset(&b[17], 0xff, 4);  // header length 4 GiB
  ExpectOpenFails(b, "header length");
  b = good;
  const std::uint32_t past_end = static_cast<std::uint32_t>(good.size());
  std::memcpy(&b[17], &past_end, 4);
  ExpectOpenFails(b, "runs past the end");

  using J = nlohmann::json;
  struct Case {
    std::function<void(J&)> edit;
    std::string what;
  };
  std::vector<Case> cases{
      {[](J& j) { j["format"] = "deepcut-frames/9"; }, "'format'"},
      {[](J& j) { j.erase("format"); }, "'format' is missing"},
      {[](J& j) { j.erase("frames"); }, "'frames' is missing"},
      {[](J& j) { j["frames"] = -1; }, "'frames'"},
      {[](J& j) { j["frames"] = "3"; }, "'frames' must be an integer"},
      {[](J& j) { j["frames"] = 1e300; }, "'frames' must be an integer"},
      {[](J& j) { j["frames"] = 18446744073709551615ull; }, "'frames' must be at most"},
      {[](J& j) { j["width"] = 1 << 30; }, "'width'"},
      {[](J& j) { j["channels"] = 2; }, "'channels'"},
      {[](J& j) { j["fps"] = -3; }, "'fps'"},
      {[](J& j) {
         j["classes"] = {1, 2};
       },
       "'classes'"},
      {[](J& j) { j["params"] = 5; }, "'params'"},
      {[](J& j) { j["duration_us"] = 5; }, "duration_us"},
      {[](J& j) { j["classes"] = {"a"}; }, "record 0: label 2 is not below the 1 classes"},
      {[](J& j) {
         J deep = J::array();
         for (int i = 0; i < 100; ++i) deep = J::array({deep});
         j["params"] = {{"deep", deep}};
       },
       "nests deeper"},
  };
  for (const auto& c : cases) {
    // The header is rebuilt at its new length (the nested one outgrows the old).
    const std::uint32_t n = HeaderBytes(good);
    auto j = J::parse(good.begin() + kPreamble, good.begin() + kPreamble + n);
    c.edit(j);
    const std::string text = j.dump();
    const std::uint32_t len = static_cast<std::uint32_t>(text.size());
    std::string file(reinterpret_cast<const char*>(good.data()), 17);
    file.append(reinterpret_cast<const char*>(&len), 4);  // little-endian machine
    file += text;
    file.append(reinterpret_cast<const char*>(good.data()) + kPreamble + n,
                good.size() - kPreamble - n);
    const Bytes rebuilt(file.begin(), file.end());
    ExpectOpenFails(rebuilt, c.what);
  }
}

TEST_F(FrameTraceTest, RefusesHugeCountsAndLengthsBeforeAllocating) {
  const Bytes good = Read(WriteSample());
  for (std::int64_t frames : {std::int64_t{1} << 40, std::numeric_limits<std::int64_t>::max()}) {
    Bytes b = good;
    EditHeader(b, [&](nlohmann::json& j) { j["frames"] = frames; });
    ExpectOpenFails(b, "header says " + std::to_string(frames) + " frames");
  }
  Bytes b = good;
  EditHeader(b, [](nlohmann::json& j) { j["frames"] = 4; });  // few enough to walk
  ExpectOpenFails(b, "record 3: truncated");
  EditHeader(b, [](nlohmann::json& j) { j["frames"] = 2; });
  ExpectOpenFails(b, "bytes follow the last of the 2 declared frames");
  // A record whose length exceeds the file.
  b = good;
  const std::uint32_t huge = 0xfffffff0u;
  std::memcpy(&b[RecordOffset(good, 1) + 16], &huge, 4);
  ExpectOpenFails(b, "record 1: image length 4294967280");
  const std::uint32_t big = 20000;  // within the limits, beyond the file
  std::memcpy(&b[RecordOffset(good, 1) + 16], &big, 4);
  ExpectOpenFails(b, "exceeds the");
  // Trailing bytes, time going back, a label below -1.
  b = good;
  b.push_back(0);
  ExpectOpenFails(b, "1 bytes follow");
  b = good;
  const std::int64_t back = 50000;
  std::memcpy(&b[RecordOffset(good, 2)], &back, 8);
  ExpectOpenFails(b, "record 2: capture time 50000 us is before the previous frame's");
  b = good;
  const std::int32_t minus_five = -5;
  std::memcpy(&b[RecordOffset(good, 0) + 8], &minus_five, 4);
  ExpectOpenFails(b, "record 0: label -5");
}

TEST_F(FrameTraceTest, BadRecordContentIsAnErrorAndTheNextRecordStillReads) {
  const Bytes good = Read(WriteSample());
  const std::string path = Path("flipped.dcft");
  Bytes b = good;
  b[RecordOffset(good, 1) + kRecordHeader + 40] ^= 0x55;  // inside the PNG
  Write(path, b);
  auto r = FrameTraceReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE((*r)->Next().ok());
  auto bad = (*r)->Next();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("record 1: checksum mismatch"), std::string::npos)
      << bad.status().message();
  auto third = (*r)->Next();
  ASSERT_TRUE(third.ok() && third->has_value()) << third.status().ToString();
  EXPECT_EQ((*third)->index, 2);

  // A PNG that claims a huge image (checksum fixed up): refused before decoding.
  b = good;
  const std::size_t ihdr_width = RecordOffset(good, 0) + kRecordHeader + 16;
  b[ihdr_width] = 0x7f;
  FixCrc(b, 0);
  Write(path, b);
  r = FrameTraceReader::Open(path);
  ASSERT_TRUE(r.ok());
  auto huge = (*r)->Next();
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("record 0: PNG of"), std::string::npos)
      << huge.status().message();
  // Not a PNG at all.
  b = good;
  b[RecordOffset(good, 2) + kRecordHeader + 1] = 'X';
  FixCrc(b, 2);
  Write(path, b);
  auto stats = InspectTrace(path);
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find("record 2: image is not a PNG"), std::string::npos)
      << stats.status().message();
}

TEST_F(FrameTraceTest, SurvivesRandomCorruption) {
  const Bytes good = Read(WriteSample());
  const std::string path = Path("fuzz.dcft");
  std::mt19937_64 rng(7);
  int opened = 0;
  for (int round = 0; round < 400; ++round) {
    Bytes b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<std::uint8_t>(rng());
    Write(path, b);
    auto r = FrameTraceReader::Open(path);
    if (!r.ok()) continue;
    ++opened;
    for (int k = 0; k < 5; ++k) {
      auto next = (*r)->Next();
      if (next.ok() && !next->has_value()) break;
    }
  }
  EXPECT_GT(opened, 0);  // some flips land in images or padding
}

// ---- scene maker -----------------------------------------------------------

// 12 items of 16x16, each a bright block at its own place; label = item % 4.
LabelledImages SyntheticItems() {
  LabelledImages s;
  s.rows = s.cols = 16;
  for (int i = 0; i < 12; ++i) {
    cv::Mat m(16, 16, CV_8UC1, cv::Scalar(0));
    m(cv::Rect(i % 4 * 3 + 1, i / 4 * 4 + 1, 5, 5)).setTo(200);
    s.pixels.insert(s.pixels.end(), m.data, m.data + 256);
    s.labels.push_back(i % 4);
  }
  s.classes = {"a", "b", "c", "d"};
  return s;
}

std::vector<SceneFrame> Make(SceneOptions o) {
  auto maker = SceneMaker::Create(SyntheticItems(), o);
  EXPECT_TRUE(maker.ok()) << maker.status().ToString();
  std::vector<SceneFrame> frames;
  while (auto f = (*maker)->Next()) frames.push_back(std::move(*f));
  return frames;
}

TEST(SceneMakerTest, IsDeterministicForASeed) {
  SceneOptions o{.frames = 300, .fps = 10, .seed = 5};
  auto a = Make(o), b = Make(o);
  o.seed = 6;
  auto c = Make(o);
  ASSERT_EQ(a.size(), 300u);
  ASSERT_EQ(b.size(), 300u);
  bool differs = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].label, b[i].label);
    EXPECT_EQ(a[i].item, b[i].item);
    EXPECT_EQ(a[i].scene_start, b[i].scene_start);
    EXPECT_TRUE(SameImage(a[i].image, b[i].image)) << "frame " << i;
    differs = differs || !SameImage(a[i].image, c[i].image);
  }
  EXPECT_TRUE(differs) << "another seed gave the same frames";
}

TEST(SceneMakerTest, ItemsChangeOnlyAtDwellBoundaries) {
  auto frames = Make({.frames = 3000, .fps = 10, .seed = 1, .mean_dwell_s = 2.0});
  ASSERT_EQ(frames.size(), 3000u);
  EXPECT_TRUE(frames[0].scene_start);
  std::int64_t scenes = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const SceneFrame& f = frames[i];
    EXPECT_EQ(f.index, static_cast<std::int64_t>(i));
    EXPECT_EQ(f.capture_us, static_cast<std::int64_t>(i) * 100000);
    EXPECT_EQ(f.label, static_cast<int>(f.item % 4));
    if (i == 0) continue;
    const SceneFrame& prev = frames[i - 1];
    if (f.scene_start) {
      ++scenes;
      EXPECT_EQ(f.scene, prev.scene + 1);
      EXPECT_NE(f.item, prev.item) << "frame " << i;
    } else {
      EXPECT_EQ(f.scene, prev.scene);
      EXPECT_EQ(f.item, prev.item);
      EXPECT_EQ(f.label, prev.label);  // labels constant within a dwell run
    }
  }
  // Mean dwell 2 s at 10 fps: about 20 frames per item.
  const double mean_frames = 3000.0 / static_cast<double>(scenes + 1);
  EXPECT_GT(mean_frames, 14.0);
  EXPECT_LT(mean_frames, 28.0);
}

TEST(SceneMakerTest, FramesWithinADwellAreSimilarButNotIdentical) {
  auto frames = Make({.frames = 600, .fps = 10, .seed = 3});
  int within = 0, across = 0;
  double within_diff = 0, across_diff = 0;
  for (std::size_t i = 1; i < frames.size(); ++i) {
    const double diff = cv::norm(frames[i].image, frames[i - 1].image, cv::NORM_L1) / 256.0;
    if (frames[i].scene_start) {
      across_diff += diff;
      ++across;
    } else {
      EXPECT_GT(diff, 0.0) << "frame " << i << " repeats the previous one exactly";
      within_diff += diff;
      ++within;
    }
  }
  ASSERT_GT(within, 0);
  ASSERT_GT(across, 0);
  within_diff /= within;
  across_diff /= across;
  EXPECT_LT(within_diff, 25.0);  // noise and a pixel of motion
  EXPECT_LT(within_diff, across_diff / 2) << within_diff << " vs " << across_diff;
}

TEST(SceneMakerTest, RefusesBadOptions) {
  for (SceneOptions o : {SceneOptions{.frames = 0}, SceneOptions{.fps = 0},
                         SceneOptions{.mean_dwell_s = -1}, SceneOptions{.max_shift_px = -1},
                         SceneOptions{.noise_sigma = -2}, SceneOptions{.brightness_min = 1.2}}) {
    EXPECT_FALSE(SceneMaker::Create(SyntheticItems(), o).ok());
  }
  EXPECT_FALSE(SceneMaker::Create(LabelledImages{}, {}).ok());
}

TEST(SceneMakerTest, UsesTheRealFashionMnistWhenInstalled) {
  if (!fs::exists(std::string(kDefaultFashionMnistDir) + "/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  auto items = LoadFashionMnist(kDefaultFashionMnistDir, "test");
  ASSERT_TRUE(items.ok()) << items.status().ToString();
  EXPECT_EQ(items->count(), 10000);
  auto maker = SceneMaker::Create(std::move(*items), {.frames = 5});
  ASSERT_TRUE(maker.ok());
  auto f = (*maker)->Next();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->image.rows, 28);
  EXPECT_GE(f->label, 0);
  EXPECT_LT(f->label, 10);
}

// ---- the edge's trace: source -----------------------------------------------

TEST_F(FrameTraceTest, EdgeTraceSourceYieldsFramesLabelsAndCaptureOffsets) {
  const std::string path = Path("scenes.dcft");
  auto maker = SceneMaker::Create(SyntheticItems(), {.frames = 40, .fps = 20, .seed = 9});
  ASSERT_TRUE(maker.ok());
  std::vector<SceneFrame> made;
  {
    auto w = FrameTraceWriter::Create(path, {.fps = 20, .source = "scene:synthetic"});
    ASSERT_TRUE(w.ok());
    while (auto f = (*maker)->Next()) {
      ASSERT_TRUE((*w)->Append(f->image, f->capture_us, f->label, f->scene_start).ok());
      made.push_back(std::move(*f));
    }
    ASSERT_TRUE((*w)->Finish().ok());
  }
  auto source = trace::OpenSource({.spec = "trace:" + path});
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  EXPECT_FALSE((*source)->IsLive());
  EXPECT_EQ((*source)->Remaining(), 40);
  for (const SceneFrame& want : made) {
    auto f = (*source)->Next();
    ASSERT_TRUE(f.ok() && f->has_value()) << f.status().ToString();
    EXPECT_EQ((*f)->index, want.index);
    EXPECT_EQ((*f)->label, want.label);
    EXPECT_EQ((*f)->capture_offset_us, want.index * 50000);
    EXPECT_TRUE(SameImage((*f)->image, want.image));
  }
  auto end = (*source)->Next();
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(end->has_value());

  auto missing = trace::OpenSource({.spec = "trace:" + Path("missing.dcft")});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing.dcft"), std::string::npos);
  // Other sources do not know capture offsets.
  cv::imwrite(Path("a.png"), RandomImage(4, 4, CV_8UC1, 1));
  auto images = trace::OpenSource({.spec = "images:" + dir_.string()});
  ASSERT_TRUE(images.ok());
  auto image = (*images)->Next();
  ASSERT_TRUE(image.ok() && image->has_value());
  EXPECT_EQ((*image)->capture_offset_us, -1);
}

TEST_F(FrameTraceTest, InspectSumsUpLabelsRunsAndScenes) {
  const std::string path = Path("scenes.dcft");
  auto w = FrameTraceWriter::Create(path, {.fps = 10, .scene_starts_marked = true});
  ASSERT_TRUE(w.ok());
  const int labels[6] = {1, 1, 1, 2, 2, -1};
  const bool starts[6] = {true, false, false, true, false, true};
  for (int i = 0; i < 6; ++i)
    ASSERT_TRUE((*w)->Append(RandomImage(3, 3, CV_8UC1, i), i * 100000, labels[i], starts[i]).ok());
  ASSERT_TRUE((*w)->Finish().ok());
  auto s = InspectTrace(path);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->frames, 6);
  EXPECT_DOUBLE_EQ(s->duration_s, 0.6);
  EXPECT_DOUBLE_EQ(s->measured_fps, 10.0);
  EXPECT_EQ(s->labels.at(1), 3);
  EXPECT_EQ(s->labels.at(-1), 1);
  EXPECT_EQ(s->label_runs.count, 2);
  EXPECT_EQ(s->label_runs.max_frames, 3);
  EXPECT_EQ(s->scenes.count, 3);
  EXPECT_EQ(s->ToJson()["sizes"]["3x3x1"], 6);
  EXPECT_NE(s->ToText().find("label runs"), std::string::npos);
}

}  // namespace
}  // namespace deepcut::trace
