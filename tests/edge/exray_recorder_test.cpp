// The ExrayRecorder through the real EdgeRuntime: every N-th frame is recorded,
// what is on disk is what the runtime computed (features, the exit's answer,
// the codec's quantisation at the rate the frame was sent at), the .npy files
// follow NumPy's .npz format (a stored ZIP of .npy), the size cap drops the oldest records, and a
// directory in use is refused.
#include "edge/exray_recorder.h"

#include <gtest/gtest.h>

#include <zlib.h>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "edge/edge_runtime.h"
#include "support/scripted.h"

namespace deepcut::edge {
namespace {
namespace fs = std::filesystem;

// A .npy member's type, shape and data (the recorder's own format, read back).
struct Npy {
  std::string descr;
  std::vector<int> shape;
  std::vector<char> data;
};
Npy ParseNpy(const std::string& bytes) {
  Npy n;
  EXPECT_GE(bytes.size(), 10u);
  EXPECT_EQ(std::memcmp(bytes.data(), "\x93NUMPY\x01\x00", 8), 0);
  const size_t len = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9])
                                                                << 8;
  EXPECT_EQ((10 + len) % 64, 0u) << "header not aligned";
  const std::string header = bytes.substr(10, len);
  EXPECT_EQ(header.back(), '\n');
  n.descr = header.substr(header.find("'descr': '") + 10, 3);
  const auto open = header.find("'shape': (") + 10;
  std::string dims = header.substr(open, header.find(')', open) - open);
  for (size_t p = 0; p < dims.size();) {
    const size_t q = dims.find(',', p);
    const std::string d = dims.substr(p, q == std::string::npos ? std::string::npos : q - p);
    if (d.find_first_not_of(' ') != std::string::npos) n.shape.push_back(std::stoi(d));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  n.data.assign(bytes.begin() + 10 + len, bytes.end());
  return n;
}
std::uint32_t Le(const std::string& s, size_t at, int n) {
  std::uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(s[at + i]);
  return v;
}
// The members of a stored (uncompressed) .npz, by name without ".npy".
std::map<std::string, Npy> ReadNpz(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string z((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::map<std::string, Npy> out;
  size_t at = 0;
  while (at + 30 <= z.size() && Le(z, at, 4) == 0x04034b50) {
    EXPECT_EQ(Le(z, at + 8, 2), 0u) << "stored";
    const size_t size = Le(z, at + 18, 4), name_len = Le(z, at + 26, 2);
    std::string name = z.substr(at + 30, name_len);
    const std::string data = z.substr(at + 30 + name_len, size);
    EXPECT_EQ(Le(z, at + 14, 4),
              static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(data.data()),
                                               static_cast<uInt>(data.size()))));
    out[name.substr(0, name.size() - 4)] = ParseNpy(data);
    at += 30 + name_len + size;
  }
  EXPECT_EQ(Le(z, z.size() - 22, 4), 0x06054b50u) << "end of central directory";
  EXPECT_EQ(Le(z, z.size() - 12, 2), out.size());
  return out;
}
std::vector<float> Floats(const Npy& n) {
  std::vector<float> v(n.data.size() / 4);
  std::memcpy(v.data(), n.data.data(), v.size() * 4);
  return v;
}

class ExrayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("deepcut-exray-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto m = splitnet::LoadManifest(test_support::ModelDir());
    ASSERT_TRUE(m.ok());
    manifest_ = *m;
    auto model = splitnet::SplitModel::Load(manifest_, {.head = true, .exit = true, .tail = false});
    ASSERT_TRUE(model.ok());
    model_ = std::move(*model);
  }
  void TearDown() override { fs::remove_all(dir_); }
  static trace::SourceFrame Frame(std::int64_t i) {
    trace::SourceFrame f;
    f.index = i;
    f.label = static_cast<int>(i % 10);
    f.image = cv::Mat(40, 30, CV_8UC3);
    cv::randu(f.image, 0, 255);
    return f;
  }
  // n frames through a runtime recording every `every`; returns the frames.
  std::vector<trace::SourceFrame> Run(int n, ExrayOptions o, const std::string& policy_name) {
    auto recorder = ExrayRecorder::Create(o, manifest_);
    EXPECT_TRUE(recorder.ok()) << recorder.status().ToString();
    test_support::ScriptedLink link(clock_, 1000, [](const transport::Request& r) {
      return std::optional<std::vector<std::uint8_t>>(test_support::OkReply(r, 1));
    });
    auto policy = scheduler::MakePolicy({.name = policy_name});
    std::vector<Answer> answers;
    auto runtime = EdgeRuntime::Create({}, *model_, **policy, link, clock_,
                                       [&](const Answer& a) { answers.push_back(a); });
    EXPECT_TRUE(runtime.ok());
    (*runtime)->SetRecorder(recorder->get());
    std::vector<trace::SourceFrame> frames;
    for (int i = 0; i < n; ++i) {
      frames.push_back(Frame(i));
      EXPECT_TRUE((*runtime)->ProcessFrame(frames.back(), clock_.NowUs()).ok());
      (*runtime)->PumpUntil(clock_.NowUs() + 10'000);
    }
    (*runtime)->Drain();
    EXPECT_EQ(answers.size(), static_cast<size_t>(n));  // recording takes no answer away
    (*recorder)->Close();
    counters_ = (*recorder)->counters();
    return frames;
  }
  std::vector<nlohmann::json> Index() {
    std::ifstream in(dir_ / "index.jsonl");
    std::vector<nlohmann::json> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    return lines;
  }

  fs::path dir_;
  VirtualClock clock_{1'000'000};
  splitnet::Manifest manifest_;
  std::unique_ptr<splitnet::SplitModel> model_;
  ExrayCounters counters_;
};

TEST_F(ExrayTest, RecordsWhatTheRuntimeComputed) {
  const auto frames = Run(10, {.dir = dir_.string(), .every = 3}, "always");
  EXPECT_EQ(counters_.recorded, 4);  // frames 0, 3, 6, 9
  EXPECT_EQ(counters_.skipped + counters_.failed + counters_.dropped, 0);
  const auto index = Index();
  ASSERT_EQ(index.size(), 4u);
  splitnet::FeatureCodec codec;
  for (size_t k = 0; k < index.size(); ++k) {
    const auto& rec = index[k];
    const auto& frame = frames.at(rec["frame_id"].get<int>());
    EXPECT_EQ(rec["frame_id"].get<int>(), static_cast<int>(3 * k));
    EXPECT_TRUE(rec["offloaded"].get<bool>());
    const auto npz = ReadNpz(dir_ / rec["file"].get<std::string>());
    const Npy& raw = npz.at(rec["arrays"]["raw"].get<std::string>());
    EXPECT_EQ(raw.descr, "|u1");
    EXPECT_EQ(raw.shape, (std::vector<int>{40, 30, 3}));
    EXPECT_EQ(std::memcmp(raw.data.data(), frame.image.data, raw.data.size()), 0);

    auto input = model_->Preprocess(frame.image);
    auto features = model_->RunHead(*input);
    auto local = model_->RunExit(*features);
    const Npy& in = npz.at("input");
    EXPECT_EQ(in.shape, (std::vector<int>{1, 1, 28, 28}));
    EXPECT_EQ(Floats(in), *input);
    const auto f = Floats(npz.at("features"));
    ASSERT_EQ(f.size(), features->size());
    for (size_t i = 0; i < f.size(); ++i) EXPECT_NEAR(f[i], (*features)[i], 1e-5);
    EXPECT_EQ(rec["exit_class"].get<int>(), local->class_id);
    const auto& rate = manifest_.rates[manifest_.RateIndex(rec["rate"].get<std::string>())];
    auto enc = codec.Encode(f, manifest_.bottleneck, rate);
    auto dec = codec.Decode(enc->coding, enc->payload, manifest_.bottleneck, rate);
    EXPECT_EQ(Floats(npz.at("quantized")), *dec);
    // Every head layer, in graph order, the last one the features.
    ASSERT_GE(rec["head"].size(), 5u);
    EXPECT_EQ(Floats(npz.at(rec["head"].back()["array"].get<std::string>())), f);
    for (const auto& l : rec["head"]) {
      EXPECT_EQ(npz.at(l["array"].get<std::string>()).shape, l["shape"].get<std::vector<int>>());
      EXPECT_GE(l["ms"].get<double>(), 0.0);
    }
    EXPECT_EQ(rec["bytes"].get<std::int64_t>(),
              static_cast<std::int64_t>(fs::file_size(dir_ / rec["file"].get<std::string>())));
  }
  nlohmann::json log;
  std::ifstream(dir_ / "log.json") >> log;
  EXPECT_EQ(log["format"], "deepcut-exray/1");
  EXPECT_EQ(log["model"]["fingerprint"].get<std::uint32_t>(), manifest_.fingerprint);
  EXPECT_EQ(log["manifest"]["name"], manifest_.name);
  for (const auto& e : fs::directory_iterator(dir_ / "records"))
    EXPECT_EQ(e.path().extension(), ".npz") << "a temporary was left: " << e.path();
}

TEST_F(ExrayTest, SizeCapDropsTheOldest) {
  Run(12, {.dir = dir_.string(), .every = 2, .max_bytes = 600'000}, "edge-only");
  EXPECT_EQ(counters_.recorded, 6);
  EXPECT_GT(counters_.dropped, 0);
  const auto index = Index();
  ASSERT_EQ(static_cast<std::int64_t>(index.size()), 6 - counters_.dropped);
  EXPECT_EQ(index.back()["frame_id"].get<int>(), 10);  // the newest stays
  std::int64_t bytes = 0;
  for (const auto& r : index) bytes += r["bytes"].get<std::int64_t>();
  EXPECT_LE(bytes, 600'000);
  EXPECT_EQ(bytes, counters_.bytes);
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_ / "records")) ++files;
  EXPECT_EQ(files, static_cast<int>(index.size()));
  EXPECT_EQ(index.front()["route"], "local");
}

TEST_F(ExrayTest, RefusesADirectoryInUseAndBadOptions) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "something") << "x";
  auto r = ExrayRecorder::Create({.dir = dir_.string()}, manifest_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not empty"), std::string::npos);
  EXPECT_FALSE(ExrayRecorder::Create({.dir = (dir_ / "a" / "b").string()}, manifest_).ok());
  EXPECT_FALSE(ExrayRecorder::Create({.dir = (dir_ / "n").string(), .every = 0}, manifest_).ok());
}

}  // namespace
}  // namespace deepcut::edge
