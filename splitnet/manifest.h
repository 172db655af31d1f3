// A model package's manifest (docs/model-package.md): what the head takes, what
// the bottleneck looks like, which codec rates exist, the classes, the exit's
// calibration and where the package came from.
//
// LoadManifest refuses an inconsistent package with a message naming the field
// or file at fault; it does not open the ONNX graphs (SplitModel checks their
// shapes against the manifest when it loads them).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"

namespace deepcut::splitnet {

struct InputSpec {
  int channels = 1;
  int height = 28;
  int width = 28;
  float scale = 1.0f / 255.0f;  // pixel (0..255) -> scale * pixel
  std::vector<float> mean;      // per channel, subtracted after scaling
  std::vector<float> std;       // per channel, divides after the mean
  // How a frame of another size is resized (OpenCV's INTER_*): area, linear,
  // nearest, cubic or lanczos.
  std::string interpolation = "area";
  // The order of the colour channels in the frames the edge is given: bgr
  // (OpenCV's sources) or rgb (e.g. a camera API that delivers RGB).
  std::string channel_order = "bgr";
};

struct BottleneckSpec {
  int channels = 0;
  int height = 0;
  int width = 0;
  float min = 0.0f;  // closed value range of the head's output
  float max = 1.0f;
  float fill = 0.0f;  // value of the channels a rate does not send
  int Elements() const { return channels * height * width; }
  int ChannelElements() const { return height * width; }
};

struct Rate {
  std::string name;
  int bits = 8;      // 1..8 bits per value
  int channels = 0;  // the first `channels` channels are sent
  // Optional learned entropy model (docs/model-package.md): per channel, per
  // context (left and upper neighbour symbols, S = 2^bits meaning "none"), the
  // frequencies of the S symbols, each >= 1, summing to 4096. Flattened as
  // [channel][context][symbol]; empty when the rate has none.
  std::vector<std::uint16_t> context_frequencies;
  int Symbols() const { return 1 << bits; }
  int Contexts() const { return (Symbols() + 1) * (Symbols() + 1); }
};

struct CalibrationBin {
  float confidence_min = 0.0f;
  float confidence_max = 1.0f;
  float error_rate = 0.0f;
  int count = 0;
  // The tail's accuracy at each rate (manifest order) on the validation frames
  // of this bin; empty if the package does not say (older packages).
  std::vector<float> cloud_accuracy;
};

// The scene-fusion answer rule's settings tuned for this package's features
// (scripts/tune_fusion.py on training-split traces); `present` false: the
// runtime's defaults (scheduler::FusionOptions).
struct FusionSettings {
  bool present = false;
  double change_distance = 0.0, decay_scale = 0.0, exit_weight = 0.0, cloud_weight = 0.0;
};

struct Manifest {
  std::filesystem::path dir;
  std::string name;
  std::filesystem::path head_file, exit_file, tail_file;  // absolute
  InputSpec input;
  BottleneckSpec bottleneck;
  std::vector<Rate> rates;
  int default_rate_index = 0;
  std::vector<std::string> classes;
  std::vector<CalibrationBin> calibration;
  std::string provenance_command;
  // Measured accuracies from provenance.metrics (validation set when present,
  // else test); 0 where the manifest does not say. One per rate.
  std::vector<double> rate_accuracy;
  double exit_accuracy = 0.0;
  FusionSettings fusion;
  // Identifies what the codec and the tail must agree on (name, bottleneck,
  // rates, classes); requests carry it instead of shapes and ranges.
  std::uint32_t fingerprint = 0;

  // Index of the rate with this name, or -1.
  int RateIndex(const std::string& name) const;
  // The exit's measured error rate at this confidence (calibration lookup).
  float ExitErrorRate(float confidence) const;
  // The tail's measured accuracy at `rate_index` on frames with this exit
  // confidence; negative if the package has no per-bin accuracies.
  float CloudAccuracy(float confidence, int rate_index) const;
};

// Reads and validates `dir`/manifest.json and checks that the listed files exist.
Result<Manifest> LoadManifest(const std::filesystem::path& dir);
// FNV-1a (32 bit) over the fields that define the wire format of a model's
// features: the bytes of FingerprintText, then every rate's context-model
// frequencies as little-endian uint16 (docs/protocol.md, "Model tag").
std::uint32_t ComputeFingerprint(const Manifest& manifest);
// "name|CxHxW|min,max,fill|classes|rate:bits:channels|...", the numbers as C++
// streams print them (floats like printf's %g).
std::string FingerprintText(const Manifest& manifest);
// Same, from JSON text; `dir` resolves the file names.
Result<Manifest> ParseManifest(const std::string& json_text, const std::filesystem::path& dir);

}  // namespace deepcut::splitnet
