// The fuzz targets' inputs in the ordinary unit suite (docs/fuzzing.md): every
// seed in fuzz/corpus/<target>/ and every input that once crashed a target,
// kept in tests/fuzz_regressions/<target>/, goes through the same body as the
// libFuzzer target (fuzz/fuzz_bodies.h). A crash or a violated property aborts
// this test; besides, each seed must be accepted, and each crash input must get
// the verdict that its folder's expectations.txt gives it:
//
//   # file        verdict    what the bug was
//   crash-<sha1>  refused    a top score of 1e300 overflowed the float cast
//
// ("refused": the decoder returns an error; "accepted": it returns a value).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz/fuzz_bodies.h"

namespace deepcut::fuzz {
namespace {

namespace fs = std::filesystem;

constexpr const char* kExpectations = "expectations.txt";

struct Target {
  std::string name;
  Status (*run)(const std::uint8_t*, std::size_t);
};

std::ostream& operator<<(std::ostream& os, const Target& t) { return os << t.name; }

std::vector<std::uint8_t> ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// The inputs in `dir`, sorted; the expectations file is not one.
std::vector<fs::path> InputsIn(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().filename() != kExpectations)
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// file name -> "refused" or "accepted", from `dir`/expectations.txt.
std::map<std::string, std::string> ReadExpectations(const fs::path& dir) {
  std::map<std::string, std::string> verdicts;
  std::ifstream in(dir / kExpectations);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string file, verdict;
    if (!(fields >> file >> verdict) || file[0] == '#') continue;
    verdicts[file] = verdict;
  }
  return verdicts;
}

class FuzzRegression : public ::testing::TestWithParam<Target> {};

TEST_P(FuzzRegression, SeedsAreAccepted) {
  const fs::path dir = fs::path(DEEPCUT_SOURCE_DIR) / "fuzz" / "corpus" / GetParam().name;
  const auto files = InputsIn(dir);
  ASSERT_FALSE(files.empty()) << "no seeds in " << dir;
  for (const auto& file : files) {
    const auto bytes = ReadBytes(file);
    const Status verdict = GetParam().run(bytes.data(), bytes.size());
    EXPECT_TRUE(verdict.ok()) << file << ": " << verdict.ToString();
  }
}

TEST_P(FuzzRegression, CrashInputsGetTheirVerdict) {
  const fs::path dir =
      fs::path(DEEPCUT_SOURCE_DIR) / "tests" / "fuzz_regressions" / GetParam().name;
  const auto files = InputsIn(dir);
  if (files.empty()) GTEST_SKIP() << "no crash inputs kept for " << GetParam().name;
  const auto expected = ReadExpectations(dir);
  for (const auto& file : files) {
    const auto bytes = ReadBytes(file);
    const Status verdict = GetParam().run(bytes.data(), bytes.size());
    auto it = expected.find(file.filename().string());
    if (it == expected.end()) {
      ADD_FAILURE() << file << " has no line in " << dir / kExpectations;
      continue;
    }
    if (it->second == "refused")
      EXPECT_FALSE(verdict.ok()) << file << " was accepted";
    else if (it->second == "accepted")
      EXPECT_TRUE(verdict.ok()) << file << ": " << verdict.ToString();
    else
      ADD_FAILURE() << file << ": verdict '" << it->second << "' is not refused or accepted";
  }
  for (const auto& [file, verdict] : expected)
    EXPECT_TRUE(fs::is_regular_file(dir / file)) << kExpectations << " names a missing " << file;
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzRegression,
                         ::testing::Values(Target{"protocol", RunProtocol},
                                           Target{"mahimahi", RunMahimahi},
                                           Target{"frame_trace", RunFrameTrace},
                                           Target{"manifest", RunManifest},
                                           Target{"cloud", RunCloud}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace deepcut::fuzz
