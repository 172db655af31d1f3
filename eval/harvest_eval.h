// deepcut-eval harvest: does harvesting close the loop? (docs/harvest.md,
// "Evaluation"). A deployment the package handles poorly — a camera shift (a
// deepcut-profiles/1 profile) and a class mix unlike the training set's — is
// streamed from the train split through the real edge runtime in virtual time
// (the replay's simulated link and in-process cloud), once per sampler and
// storage budget, with a harvester keeping frames into an edge store and
// uploading them to a cloud store. Each cloud store then fine-tunes the
// package (splitnet/training/finetune_harvest.py, labels from the cloud), and
// the new package is measured on a test-split stream under the same shift:
// the exit's accuracy, and the delivered accuracy of the policy's answers.
//
// Every seed draws its own class mix, streams and noise; the report gives
// means over seeds with 95% intervals, the curve of accuracy against stored
// frames, and how many frames the harvester needs to reach random's accuracy.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace deepcut::eval {

struct HarvestEvalOptions {
  std::string model_dir;
  std::string shift;  // FILE.json (one profile) or FILE.json#NAME
  std::vector<std::uint64_t> seeds{1};
  std::vector<std::int64_t> storage_frames{100};  // per run, the storage budget
  std::vector<std::string> samplers{"harvest", "random", "periodic", "uncertainty"};
  std::int64_t train_frames = 4000;  // the deployment stream the samplers see
  std::int64_t test_frames = 2000;   // the stream the packages are measured on
  double fps = 10.0;
  double mean_dwell_s = 1.0;  // time an item stays in view
  int capture_scale = 2;      // the camera's resolution, times the model's
  double class_skew = 0.6;    // the k-th most common class is skew^k as common as the first
  std::string policy = "deepcut";
  std::string uplink = "1M";
  double budget_bps = 50e3;      // the bandwidth knob (offloads and harvest uploads)
  double explore = 0.0;          // the harvest sampler's share drawn at random
  std::vector<double> weights;   // the harvest score's weights (u, d, n, r); empty: defaults
  std::string labels = "cloud";  // finetune_harvest.py --labels
  std::string part = "exit";     // finetune_harvest.py --part
  std::string trainer;           // finetune_harvest.py
  std::string python = "/usr/bin/python3";
  std::string work_dir;  // empty: a fresh folder under the system's temp, removed after
  std::string fashion_mnist_dir;
  bool progress = true;
};

Result<nlohmann::json> RunHarvestEval(const HarvestEvalOptions& options);
std::string HarvestMarkdown(const nlohmann::json& report);

}  // namespace deepcut::eval
