#include "eval/instability.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include <opencv2/imgproc.hpp>

#include "eval/camera_profile.h"
#include "splitnet/feature_codec.h"
#include "splitnet/manifest.h"
#include "splitnet/split_model.h"

namespace deepcut::eval {
namespace {

// Top-1 answers: [path][variant][image]; variant 0 is the clean image.
using Answers = std::vector<std::vector<std::vector<int>>>;

nlohmann::json PathReport(const std::vector<std::vector<int>>& answers,
                          const std::vector<int>& labels, const std::vector<std::string>& names) {
  const size_t v = answers.size(), n = labels.size();
  nlohmann::json acc = nlohmann::json::object(), vs_clean = nlohmann::json::object();
  for (size_t k = 0; k < v; ++k) {
    size_t right = 0, differ = 0;
    for (size_t i = 0; i < n; ++i) {
      right += answers[k][i] == labels[i];
      differ += answers[k][i] != answers[0][i];
    }
    acc[names[k]] = static_cast<double>(right) / n;
    if (k > 0) vs_clean[names[k]] = static_cast<double>(differ) / n;
  }
  size_t any = 0, any_clean = 0;
  for (size_t i = 0; i < n; ++i) {
    bool differs = false;
    for (size_t k = 2; k < v && !differs; ++k) differs = answers[k][i] != answers[1][i];
    any += differs;
    any_clean += differs || (v > 1 && answers[1][i] != answers[0][i]);
  }
  nlohmann::json pairwise = nlohmann::json::object();
  for (size_t a = 1; a < v; ++a)
    for (size_t b = a + 1; b < v; ++b) {
      size_t d = 0;
      for (size_t i = 0; i < n; ++i) d += answers[a][i] != answers[b][i];
      pairwise[names[a] + " | " + names[b]] = static_cast<double>(d) / n;
    }
  double mean_acc = 0, min_acc = 1, mean_vs = 0, max_vs = 0;
  for (size_t k = 1; k < v; ++k) {
    const double a = acc[names[k]].get<double>(), d = vs_clean[names[k]].get<double>();
    mean_acc += a / (v - 1);
    min_acc = std::min(min_acc, a);
    mean_vs += d / (v - 1);
    max_vs = std::max(max_vs, d);
  }
  return {{"accuracy", acc},
          {"clean_accuracy", acc[names[0]]},
          {"mean_profile_accuracy", mean_acc},
          {"min_profile_accuracy", min_acc},
          {"instability", v > 2 ? static_cast<double>(any) / n : 0.0},
          {"instability_with_clean", static_cast<double>(any_clean) / n},
          {"vs_clean", vs_clean},
          {"mean_vs_clean", mean_vs},
          {"max_vs_clean", max_vs},
          {"pairwise", pairwise}};
}

}  // namespace

double OffloadThreshold(const std::vector<float>& bin_max, const std::vector<int>& bin_count,
                        double fraction) {
  double total = 0;
  for (int c : bin_count) total += c;
  if (total <= 0 || bin_max.empty()) return 0.0;
  double below = 0, lo = 0;
  for (size_t b = 0; b < bin_max.size(); ++b) {
    const double share = bin_count[b] / total;
    if (below + share >= fraction)
      return lo + (bin_max[b] - lo) * (share > 0 ? (fraction - below) / share : 0.0);
    below += share;
    lo = bin_max[b];
  }
  return bin_max.back();
}

Result<nlohmann::json> RunInstability(const InstabilityOptions& options, const Progress& progress) {
  if (options.offload_fraction < 0 || options.offload_fraction > 1)
    return InvalidArgument("the offload fraction must be in [0, 1]");
  if (options.batch < 1) return InvalidArgument("the batch must be >= 1");
  if (options.capture_scale < 1 || options.capture_scale > 16)
    return InvalidArgument("the capture scale must be 1..16");
  ASSIGN_OR_RETURN(auto profiles, LoadProfiles(options.profiles_path));
  ASSIGN_OR_RETURN(auto manifest, splitnet::LoadManifest(options.model_dir));
  ASSIGN_OR_RETURN(auto model, splitnet::SplitModel::Load(manifest));
  ASSIGN_OR_RETURN(auto test, trace::LoadFashionMnist(options.fashion_mnist_dir, "test"));
  const int total = options.frames < 0 ? static_cast<int>(test.count())
                                       : std::min<int>(options.frames, test.count());
  if (total < 1) return InvalidArgument("no test images to evaluate");

  std::vector<float> bin_max;
  std::vector<int> bin_count;
  for (const auto& b : manifest.calibration) {
    bin_max.push_back(b.confidence_max);
    bin_count.push_back(b.count);
  }
  const double threshold = OffloadThreshold(bin_max, bin_count, options.offload_fraction);

  std::vector<std::string> variants{"clean"};
  for (const auto& p : profiles) variants.push_back(p.name);
  std::vector<std::string> paths{"exit"};
  for (const auto& r : manifest.rates) paths.push_back("cloud:" + r.name);
  paths.push_back("delivered");
  const size_t cloud_default = 1 + manifest.default_rate_index;
  const size_t delivered = paths.size() - 1;
  Answers answers(paths.size(), std::vector<std::vector<int>>(variants.size()));
  std::vector<std::int64_t> offloaded(variants.size(), 0);
  std::vector<int> labels;
  splitnet::FeatureCodec codec;

  for (int start = 0; start < total; start += options.batch) {
    const int n = std::min(options.batch, total - start);
    for (int i = 0; i < n; ++i) labels.push_back(test.labels[start + i]);
    for (size_t v = 0; v < variants.size(); ++v) {
      std::vector<std::vector<float>> inputs;
      for (int i = 0; i < n; ++i) {
        cv::Mat image = test.Image(start + i);
        if (v > 0) {
          if (options.capture_scale > 1)
            cv::resize(
                image, image,
                cv::Size(image.cols * options.capture_scale, image.rows * options.capture_scale), 0,
                0, cv::INTER_CUBIC);
          // The seed differs per profile and image and not between runs.
          ASSIGN_OR_RETURN(image, ApplyProfile(profiles[v - 1], image,
                                               options.seed * 1000003u + v * 7919u + start + i));
        }
        ASSIGN_OR_RETURN(auto in, model->Preprocess(image));
        inputs.push_back(std::move(in));
      }
      ASSIGN_OR_RETURN(auto z, model->RunHeads(inputs));
      std::vector<splitnet::Prediction> exits;
      for (int i = 0; i < n; ++i) {
        ASSIGN_OR_RETURN(auto p, model->RunExit(z[i]));
        answers[0][v].push_back(p.class_id);
        exits.push_back(std::move(p));
      }
      for (size_t r = 0; r < manifest.rates.size(); ++r) {
        std::vector<std::vector<float>> received;
        for (int i = 0; i < n; ++i) {
          ASSIGN_OR_RETURN(auto enc, codec.Encode(z[i], manifest.bottleneck, manifest.rates[r]));
          ASSIGN_OR_RETURN(auto dec, codec.Decode(enc.coding, enc.payload, manifest.bottleneck,
                                                  manifest.rates[r]));
          received.push_back(std::move(dec));
        }
        ASSIGN_OR_RETURN(auto preds, model->RunTail(received));
        for (const auto& p : preds) answers[1 + r][v].push_back(p.class_id);
      }
      for (int i = 0; i < n; ++i) {
        const bool ask = exits[i].confidence < threshold;
        offloaded[v] += ask;
        const size_t k = answers[0][v].size() - n + i;
        answers[delivered][v].push_back(ask ? answers[cloud_default][v][k] : exits[i].class_id);
      }
    }
    if (progress) progress(start + n, total);
  }

  nlohmann::json results = nlohmann::json::object();
  for (size_t p = 0; p < paths.size(); ++p)
    results[paths[p]] = PathReport(answers[p], labels, variants);
  nlohmann::json fractions = nlohmann::json::object();
  for (size_t v = 0; v < variants.size(); ++v)
    fractions[variants[v]] = static_cast<double>(offloaded[v]) / total;
  results["delivered"]["offload_fraction"] = fractions;
  nlohmann::json profile_list = nlohmann::json::array();
  for (const auto& p : profiles)
    profile_list.push_back({{"name", p.name}, {"description", p.description}});
  return nlohmann::json{{"format", "deepcut-instability/1"},
                        {"model", options.model_dir},
                        {"model_name", manifest.name},
                        {"fingerprint", manifest.fingerprint},
                        {"profiles_file", options.profiles_path},
                        {"profiles", profile_list},
                        {"frames", total},
                        {"seed", options.seed},
                        {"capture_scale", options.capture_scale},
                        {"offload_fraction", options.offload_fraction},
                        {"confidence_threshold", threshold},
                        {"default_rate", manifest.rates[manifest.default_rate_index].name},
                        {"paths", paths},
                        {"results", results}};
}

std::string InstabilityMarkdown(const nlohmann::json& report) {
  std::ostringstream out;
  auto pct = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * v);
    return std::string(buf);
  };
  out << "Instability of `" << report["model"].get<std::string>() << "` over "
      << report["profiles"].size() << " profiles (`" << report["profiles_file"].get<std::string>()
      << "`, captured at " << report["capture_scale"].get<int>() << "x the model's resolution), "
      << report["frames"].get<int>() << " test images; delivered: offload below "
      << "confidence " << report["confidence_threshold"].get<double>() << " ("
      << pct(report["offload_fraction"].get<double>()) << " of validation frames) at "
      << report["default_rate"].get<std::string>() << ".\n\n"
      << "| answer | clean acc. | mean profile acc. | worst profile acc. | instability "
         "(profiles) | with clean | mean vs clean | worst vs clean |\n"
      << "|---|---|---|---|---|---|---|---|\n";
  for (const auto& path : report["paths"]) {
    const auto& r = report["results"][path.get<std::string>()];
    out << "| " << path.get<std::string>() << " | " << pct(r["clean_accuracy"]) << " | "
        << pct(r["mean_profile_accuracy"]) << " | " << pct(r["min_profile_accuracy"]) << " | "
        << pct(r["instability"]) << " | " << pct(r["instability_with_clean"]) << " | "
        << pct(r["mean_vs_clean"]) << " | " << pct(r["max_vs_clean"]) << " |\n";
  }
  const auto& d = report["results"]["delivered"];
  out << "\nPer profile (delivered answer):\n\n| profile | accuracy | differs from clean | "
         "offloaded |\n|---|---|---|---|\n";
  for (const auto& p : report["profiles"]) {
    const std::string name = p["name"];
    out << "| " << name << " | " << pct(d["accuracy"][name]) << " | " << pct(d["vs_clean"][name])
        << " | " << pct(d["offload_fraction"][name]) << " |\n";
  }
  return out.str();
}

}  // namespace deepcut::eval
