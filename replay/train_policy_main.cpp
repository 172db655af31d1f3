// deepcut-train-policy: trains the learned policy in the virtual-time replay
// (replay/policy_trainer.h does the work; this file declares its flags). With
// --score-inputs it only evaluates a weights file on rows of inputs (the test
// that checks the C++ network against numpy uses it).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/cli.h"
#include "replay/policy_trainer.h"
#include "scheduler/policy_net.h"

namespace {

// Rows of comma-separated inputs -> one score per line (%.17g).
int ScoreInputs(const std::string& weights, const std::string& inputs) {
  using namespace deepcut;
  auto net = scheduler::PolicyNet::Load(weights);
  if (!net.ok()) {
    std::fprintf(stderr, "error: %s\n", net.status().message().c_str());
    return cli::kExitBadOption;
  }
  std::ifstream in(inputs);
  if (!in) {
    std::fprintf(stderr, "error: cannot read %s\n", inputs.c_str());
    return cli::kExitBadInput;
  }
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    std::vector<double> row;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) row.push_back(std::stod(cell));
    if (static_cast<int>(row.size()) != net->inputs()) {
      std::fprintf(stderr, "error: %s line %d has %zu values, the network takes %d\n",
                   inputs.c_str(), line_no, row.size(), net->inputs());
      return cli::kExitBadInput;
    }
    std::printf("%.17g\n", net->Score(row));
  }
  return cli::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace deepcut;
  CLI::App app{"DeepCut learned policy: trained by the cross-entropy method in the replay"};
  replay::TrainerOptions o;
  std::string budgets = "5,10,25,50", log_level = "error", score_inputs, weights;
  app.add_option("--model", o.model_dir, "model package directory");
  app.add_option("--source", o.sources, "training frames: trace:FILE (repeatable; train split)");
  app.add_option("--uplink", o.uplinks, "network trace files or rates (repeatable)");
  app.add_option("--budgets", budgets, "budgets, percent of always-offload's bit/s")
      ->capture_default_str();
  app.add_option("--frames", o.max_frames, "frames per trace (-1: all)")->capture_default_str();
  app.add_option("--hidden", o.hidden, "hidden units")
      ->capture_default_str()
      ->check(cli::Between(1, 64));
  app.add_option("--iterations", o.iterations, "CEM iterations")
      ->capture_default_str()
      ->check(cli::Positive());
  app.add_option("--population", o.population, "candidates per iteration")
      ->capture_default_str()
      ->check(cli::AtLeast(2));
  app.add_option("--elite", o.elite, "candidates kept per iteration")
      ->capture_default_str()
      ->check(cli::Positive());
  app.add_option("--episodes", o.episodes_per_iteration, "episodes per candidate per iteration")
      ->capture_default_str()
      ->check(cli::Positive());
  app.add_option("--initial-std", o.initial_std, "initial search spread")->capture_default_str();
  app.add_option("--seed", o.seed, "search seed")->capture_default_str();
  app.add_option("--deadline-ms", o.replay.deadline_ms, "capture-to-answer deadline")
      ->capture_default_str();
  app.add_option("--out", o.out, "weights file to write (JSON)")->check(cli::OutputFile());
  app.add_option("--score-inputs", score_inputs, "only score these CSV rows with --weights")
      ->group("Testing");
  app.add_option("--weights", weights, "weights file for --score-inputs")->group("Testing");
  cli::AddLogLevel(app, log_level);
  app.footer(cli::ExitCodesFooter(
      {cli::kExitBadOption, cli::kExitBadModel, cli::kExitBadInput, cli::kExitFailed}));
  if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
  cli::SetUpLogging("train-policy", log_level);
  if (!score_inputs.empty()) return ScoreInputs(weights, score_inputs);
  o.budget_percents.clear();
  std::stringstream ss(budgets);
  for (std::string b; std::getline(ss, b, ',');) {
    try {
      o.budget_percents.push_back(std::stod(b));
    } catch (const std::exception&) {
      std::fprintf(stderr, "error: --budgets: '%s' is not a number\n", b.c_str());
      return cli::kExitBadOption;
    }
  }
  for (int i = 0; i < argc; ++i) o.command += (i ? " " : "") + std::string(argv[i]);
  auto summary = replay::TrainPolicy(o);
  if (!summary.ok()) {
    std::fprintf(stderr, "error: %s\n", summary.status().message().c_str());
    return summary.status().code() == StatusCode::kInvalidArgument ? cli::kExitBadOption
                                                                   : cli::kExitFailed;
  }
  std::printf(
      "learned policy: %s, %.1f s; mean accuracy over %d training episodes %.2f%% "
      "(deepcut %.2f%%)\n",
      o.out.c_str(), summary->seconds, summary->episodes, 100 * summary->learned_accuracy,
      100 * summary->deepcut_accuracy);
  return cli::kExitOk;
}
