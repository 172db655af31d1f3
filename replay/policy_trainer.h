// Trains the learned policy (scheduler/policy_net.h) by the cross-entropy
// method in the virtual-time replay: the replay is the environment, an
// episode is one (frame trace, network trace, budget) run with the scene-fusion
// answer rule, and a candidate's fitness is its mean accuracy over a sample
// of episodes (the same sample for every candidate of an iteration). The
// budget is an input (as a share of always-offload), so one network serves
// every knob setting; the budget controller keeps the knob whatever it says.
//
// Thread-safety: one thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "replay/replay.h"

namespace deepcut::replay {

struct TrainerOptions {
  std::string model_dir;
  std::vector<std::string> sources;                       // trace:FILE, training-split scenes
  std::vector<std::string> uplinks;                       // network traces (or rates)
  std::vector<double> budget_percents = {5, 10, 25, 50};  // of always-offload's bit/s
  int hidden = 8;                                         // one tanh hidden layer of this width
  int iterations = 30;
  int population = 16;
  int elite = 4;
  int episodes_per_iteration = 4;
  double initial_std = 0.5;
  double min_std = 0.02;  // added to the elite's spread, so the search does not freeze
  std::uint64_t seed = 1;
  std::int64_t max_frames = -1;  // per frame trace
  std::string out;               // the weights file, written whole
  std::string command;           // for the provenance
  ReplayOptions replay;          // deadline, link settings (source/uplink/budget set per episode)
  bool progress = true;          // a line per iteration on stderr
};

struct TrainerSummary {
  double seconds = 0.0;
  double learned_accuracy = 0.0;  // mean over every episode, the final network
  double deepcut_accuracy = 0.0;  // the DeepCut policy on the same episodes
  int episodes = 0;
};

Result<TrainerSummary> TrainPolicy(const TrainerOptions& options);

}  // namespace deepcut::replay
