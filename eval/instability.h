// Instability across cameras (Cidon et al., 2020): the same test images seen
// through several device profiles (eval/camera_profile.h); for each way the
// edge can answer, the accuracy per profile and the share of images whose
// top-1 answer differs between profiles.
//
// The ways of answering, all through the runtime's own code (preprocess, head,
// exit; the codec's encode and decode; the tail):
//   exit        the edge's own answer;
//   cloud:RATE  the tail's answer on the features coded at that rate;
//   delivered   what the edge answers when it offloads the frames it is least
//               sure of: the cloud's answer at the default rate where the exit's
//               confidence is below the threshold that offloads
//               `offload_fraction` of the package's validation frames (its
//               calibration bins), the exit's answer elsewhere.
// A profile's view of an image is what a camera with that profile captures
// (at `capture_scale` times the model's resolution, then pre-processed by the
// runtime); the clean view is the test image itself.
// Instability is reported between any two profiles (an image counts if not all
// profiles agree), with the clean image included, and per profile against the
// clean image, and as a pairwise matrix.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"
#include "trace/fashion_mnist.h"

namespace deepcut::eval {

struct InstabilityOptions {
  std::string model_dir = "models/fmnist";
  std::string profiles_path;  // a deepcut-profiles/1 file
  std::string fashion_mnist_dir = trace::kDefaultFashionMnistDir;
  int frames = -1;                 // test images; -1: all 10,000
  int batch = 250;                 // images per inference batch
  double offload_fraction = 0.25;  // the delivered answer's operating point
  std::uint64_t seed = 1;          // the noise steps' seed
  // Profiles act on the image upscaled this much (cubic): a camera captures far
  // above the model's resolution and its pipeline works there; the edge's own
  // pre-processing then brings the frame to the model's size. 1: the profiles
  // act on the model-sized image itself (a much harsher test).
  int capture_scale = 4;
};

using Progress = std::function<void(int, int)>;

// The report (docs/instability.md, "Report").
Result<nlohmann::json> RunInstability(const InstabilityOptions& options, const Progress& progress);

// The confidence below which `fraction` of the calibration frames lie
// (interpolated within a bin); 0 with no calibration.
double OffloadThreshold(const std::vector<float>& bin_max, const std::vector<int>& bin_count,
                        double fraction);

std::string InstabilityMarkdown(const nlohmann::json& report);

}  // namespace deepcut::eval
