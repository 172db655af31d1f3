#include "replay/policy_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "core/files.h"
#include "scheduler/policy_net.h"
#include "splitnet/manifest.h"

namespace deepcut::replay {

namespace {

struct Environment {
  std::string source, uplink;
  std::unique_ptr<Replayer> replayer;
  double always_bps = 0.0;
};

struct Episode {
  int env = 0;
  double percent = 0.0;
};

// One run of `name` (with `net` for learned) on an episode: its accuracy.
Result<double> RunEpisode(Environment& env, const Episode& ep, const std::string& name,
                          std::shared_ptr<const scheduler::PolicyNet> net) {
  auto p = env.replayer->PolicyOptionsFor(name);
  p.budget_bps = env.always_bps * ep.percent / 100.0;
  p.learned = std::move(net);
  ASSIGN_OR_RETURN(auto policy, scheduler::MakePolicy(p));
  ASSIGN_OR_RETURN(Metrics m, env.replayer->Run(*policy, nullptr, /*fuse=*/true));
  return m.summary.Accuracy();
}

Result<std::shared_ptr<const scheduler::PolicyNet>> SharedNet(const std::vector<int>& sizes,
                                                              const std::vector<double>& flat) {
  ASSIGN_OR_RETURN(auto net, scheduler::PolicyNet::FromFlat(sizes, flat));
  return std::make_shared<const scheduler::PolicyNet>(std::move(net));
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

Result<TrainerSummary> TrainPolicy(const TrainerOptions& o) {
  if (o.sources.empty() || o.uplinks.empty())
    return InvalidArgument("training needs at least one frame trace and one network trace");
  if (o.budget_percents.empty()) return InvalidArgument("training needs at least one budget");
  for (double b : o.budget_percents)
    if (!(b > 0 && b <= 100)) return InvalidArgument("budgets must be percentages in (0, 100]");
  if (o.hidden < 1 || o.hidden > 64) return InvalidArgument("--hidden must be in [1, 64]");
  if (o.population < 2 || o.elite < 1 || o.elite >= o.population)
    return InvalidArgument("need 1 <= elite < population");
  if (o.iterations < 1 || o.episodes_per_iteration < 1)
    return InvalidArgument("iterations and episodes per iteration must be >= 1");
  if (o.out.empty()) return InvalidArgument("--out is required");
  RETURN_IF_ERROR(CheckWritableOutput(o.out));
  const auto started = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };

  ASSIGN_OR_RETURN(auto manifest, splitnet::LoadManifest(o.model_dir));
  std::vector<Environment> envs;
  for (const auto& source : o.sources)
    for (const auto& uplink : o.uplinks) {
      ReplayOptions ro = o.replay;
      ro.source = source;
      ro.uplink = uplink;
      ro.max_frames = o.max_frames;
      ro.progress = false;
      Environment env{source, uplink, nullptr, 0.0};
      ASSIGN_OR_RETURN(env.replayer, Replayer::Create(manifest, ro));
      auto p = env.replayer->PolicyOptionsFor("always");
      p.budget_bps = 0;
      ASSIGN_OR_RETURN(auto always, scheduler::MakePolicy(p));
      ASSIGN_OR_RETURN(Metrics m, env.replayer->Run(*always));
      env.always_bps = m.summary.UplinkBps();
      if (o.progress)
        std::cerr << "train-policy: environment " << envs.size() + 1 << "/"
                  << o.sources.size() * o.uplinks.size() << ": " << source << " over " << uplink
                  << " (always-offload " << Fixed(env.always_bps / 1e3, 1) << " kbit/s, "
                  << Fixed(elapsed(), 0) << " s)\n";
      envs.push_back(std::move(env));
    }
  std::vector<Episode> all;
  for (int e = 0; e < static_cast<int>(envs.size()); ++e)
    for (double b : o.budget_percents) all.push_back({e, b});

  const std::vector<int> sizes = {scheduler::kLearnedInputs, o.hidden, 1};
  const int dims = scheduler::kLearnedInputs * o.hidden + o.hidden + o.hidden + 1;
  std::vector<double> mean(dims, 0.0), stdev(dims, o.initial_std);
  std::mt19937_64 rng(o.seed);
  nlohmann::json history = nlohmann::json::array();
  for (int it = 1; it <= o.iterations; ++it) {
    // The same episodes for every candidate of this iteration.
    std::vector<Episode> sample = all;
    std::shuffle(sample.begin(), sample.end(), rng);
    sample.resize(std::min<size_t>(sample.size(), o.episodes_per_iteration));
    std::vector<std::pair<double, std::vector<double>>> scored;
    for (int k = 0; k < o.population; ++k) {
      std::vector<double> theta(dims);
      std::normal_distribution<double> n01(0.0, 1.0);
      // Candidate 0 is the current mean, so the elite never forgets it.
      for (int d = 0; d < dims; ++d) theta[d] = mean[d] + (k == 0 ? 0.0 : stdev[d] * n01(rng));
      ASSIGN_OR_RETURN(auto shared, SharedNet(sizes, theta));
      double sum = 0.0;
      for (const auto& ep : sample) {
        ASSIGN_OR_RETURN(double acc, RunEpisode(envs[ep.env], ep, "learned", shared));
        sum += acc;
      }
      scored.emplace_back(sum / sample.size(), std::move(theta));
    }
    std::sort(scored.begin(), scored.end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
    for (int d = 0; d < dims; ++d) {
      double m = 0.0, v = 0.0;
      for (int k = 0; k < o.elite; ++k) m += scored[k].second[d];
      m /= o.elite;
      for (int k = 0; k < o.elite; ++k) v += (scored[k].second[d] - m) * (scored[k].second[d] - m);
      mean[d] = m;
      stdev[d] = std::sqrt(v / o.elite) + o.min_std;
    }
    double population_mean = 0.0;
    for (const auto& s : scored) population_mean += s.first;
    population_mean /= scored.size();
    history.push_back({{"iteration", it},
                       {"best", scored.front().first},
                       {"population_mean", population_mean},
                       {"seconds", elapsed()}});
    if (o.progress)
      std::cerr << "train-policy: iteration " << it << "/" << o.iterations << ": best "
                << Fixed(100 * scored.front().first, 2) << "%, population mean "
                << Fixed(100 * population_mean, 2) << "% on " << sample.size() << " episodes ("
                << Fixed(elapsed(), 0) << " s)\n";
  }

  // The final network: the elite mean, scored on every episode beside DeepCut's
  // policy (the numbers in the provenance and the summary).
  TrainerSummary summary;
  ASSIGN_OR_RETURN(auto shared, SharedNet(sizes, mean));
  nlohmann::json per_episode = nlohmann::json::array();
  for (const auto& ep : all) {
    ASSIGN_OR_RETURN(double learned, RunEpisode(envs[ep.env], ep, "learned", shared));
    ASSIGN_OR_RETURN(double deepcut, RunEpisode(envs[ep.env], ep, "deepcut", nullptr));
    summary.learned_accuracy += learned / all.size();
    summary.deepcut_accuracy += deepcut / all.size();
    per_episode.push_back({{"source", envs[ep.env].source},
                           {"uplink", envs[ep.env].uplink},
                           {"budget_percent", ep.percent},
                           {"learned_accuracy", learned},
                           {"deepcut_accuracy", deepcut}});
  }
  summary.episodes = static_cast<int>(all.size());
  summary.seconds = elapsed();
  nlohmann::json provenance = {
      {"command", o.command},
      {"trainer", "cross-entropy method (diagonal Gaussian) in the virtual-time replay"},
      {"model", manifest.name},
      {"model_fingerprint", manifest.fingerprint},
      {"sources", o.sources},
      {"uplinks", o.uplinks},
      {"budget_percents", o.budget_percents},
      {"hidden", o.hidden},
      {"iterations", o.iterations},
      {"population", o.population},
      {"elite", o.elite},
      {"episodes_per_iteration", o.episodes_per_iteration},
      {"seed", o.seed},
      {"max_frames", o.max_frames},
      {"training_seconds", summary.seconds},
      {"history", history},
      {"final",
       {{"learned_mean_accuracy", summary.learned_accuracy},
        {"deepcut_mean_accuracy", summary.deepcut_accuracy},
        {"episodes", per_episode}}}};
  RETURN_IF_ERROR(WriteFileAtomically(o.out, shared->ToJson(provenance.dump())));
  return summary;
}

}  // namespace deepcut::replay
