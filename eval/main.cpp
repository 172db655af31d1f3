// deepcut-eval: offline measurements of a model package.
//   deepcut-eval rate-accuracy --model DIR [--baseline DIR] --out FILE.json
//                              [--markdown FILE.md] [--plot FILE.png]
//   deepcut-eval instability --model DIR --profiles FILE.json --out FILE.json
//                            [--markdown FILE.md] [--plot FILE.png]
//   deepcut-eval harvest --model DIR --shift PROFILE.json --seed S --storage-frames K
//                        --samplers harvest,random,periodic,uncertainty --out FILE.json
//                        [--markdown FILE.md] [--plot FILE.png]
//   deepcut-eval apply-profile --profiles FILE.json --profile NAME --image IN --out OUT.png
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include "cli/cli.h"
#include "core/files.h"
#include "core/progress.h"
#include "trace/fashion_mnist.h"

#include "eval/camera_profile.h"
#include "eval/harvest_eval.h"
#include "eval/instability.h"
#include "eval/rate_accuracy.h"

namespace {

using deepcut::cli::kExitBadOption;
using deepcut::cli::kExitFailed;

// Writes the report, the table and the plot; the exit code.
int Finish(const char* what, const deepcut::Result<nlohmann::json>& report,
           const std::string& table, const std::string& out_path, const std::string& markdown_path,
           const std::string& plot_path, const std::string& plot_script) {
  using namespace deepcut;
  if (!report.ok()) {
    std::cerr << what << ": " << report.status().message() << "\n";
    return report.status().code() == StatusCode::kInvalidArgument ||
                   report.status().code() == StatusCode::kNotFound
               ? kExitBadOption
               : kExitFailed;
  }
  std::cout << table;
  Status written = WriteFileAtomically(out_path, report->dump(2) + "\n");
  if (written.ok() && !markdown_path.empty()) written = WriteFileAtomically(markdown_path, table);
  if (!written.ok()) {
    std::cerr << what << ": " << written.message() << "\n";
    return kExitFailed;
  }
  if (!plot_path.empty()) {
    const std::string cmd =
        "/usr/bin/python3 '" + plot_script + "' '" + out_path + "' '" + plot_path + "'";
    if (std::system(cmd.c_str()) != 0) {
      std::cerr << "plotting failed (" << cmd << ")\n";
      return kExitFailed;
    }
  }
  return 0;
}

int ApplyOne(const std::string& profiles_path, const std::string& name, const std::string& image,
             std::uint64_t seed, const std::string& out) {
  using namespace deepcut;
  auto profiles = eval::LoadProfiles(profiles_path);
  if (!profiles.ok()) {
    std::cerr << "apply-profile: " << profiles.status().message() << "\n";
    return kExitBadOption;
  }
  const eval::Profile* profile = nullptr;
  for (const auto& p : *profiles)
    if (p.name == name) profile = &p;
  if (!profile) {
    std::cerr << "apply-profile: " << profiles_path << " has no profile \"" << name << "\"\n";
    return kExitBadOption;
  }
  cv::Mat in = cv::imread(image, cv::IMREAD_UNCHANGED);
  if (in.empty()) {
    std::cerr << "apply-profile: " << image << ": not an image OpenCV can read\n";
    return kExitBadOption;
  }
  auto result = eval::ApplyProfile(*profile, in, seed);
  std::vector<std::uint8_t> png;
  if (!result.ok() || !cv::imencode(".png", *result, png)) {
    std::cerr << "apply-profile: "
              << (result.ok() ? std::string("PNG encoding failed") : result.status().message())
              << "\n";
    return kExitFailed;
  }
  Status written = WriteFileAtomically(out, std::string(png.begin(), png.end()));
  if (!written.ok()) {
    std::cerr << "apply-profile: " << written.message() << "\n";
    return kExitFailed;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace deepcut;
  CLI::App app{"DeepCut offline evaluation"};
  app.require_subcommand(1);
  auto* ra = app.add_subcommand("rate-accuracy",
                                "accuracy vs real bytes per frame: our codec rates, the exit, "
                                "PNG/JPEG/WebP and float32 split features");
  eval::RateAccuracyOptions options;
  std::string out_path, markdown_path, plot_path;
  std::string plot_script = std::string(DEEPCUT_SOURCE_DIR) + "/scripts/plot_rate_accuracy.py";
  ra->add_option("--model", options.model_dir, "model package")->capture_default_str();
  ra->add_option("--baseline", options.baseline_dir,
                 "baseline package (same family, full-precision input, no bottleneck)");
  ra->add_option("--frames", options.frames, "test images (-1: all)")
      ->capture_default_str()
      ->check(cli::AtLeast(-1));
  ra->add_option("--batch", options.batch, "images per inference batch")
      ->capture_default_str()
      ->check(cli::Between(1, 10000));
  ra->add_option("--fashion-mnist-dir", options.fashion_mnist_dir)->capture_default_str();
  ra->add_option("--out", out_path, "JSON report")->required()->check(cli::OutputFile());
  ra->add_option("--markdown", markdown_path, "markdown table")->check(cli::OutputFile());
  ra->add_option("--plot", plot_path, "PNG plot of accuracy vs bytes per frame")
      ->check(cli::OutputFile());
  ra->add_option("--plot-script", plot_script, "the plotting script")->capture_default_str();
  auto* ins = app.add_subcommand(
      "instability",
      "accuracy per camera profile and instability (the share of test images whose answer "
      "differs between profiles) of the exit, the cloud at every rate and the delivered answer");
  eval::InstabilityOptions ioptions;
  std::string i_out, i_markdown, i_plot;
  std::string i_script = std::string(DEEPCUT_SOURCE_DIR) + "/scripts/plot_instability.py";
  ins->add_option("--model", ioptions.model_dir, "model package")->capture_default_str();
  ins->add_option("--profiles", ioptions.profiles_path,
                  "camera profiles (deepcut-profiles/1; eval/profiles/ has the shipped sets)")
      ->required();
  ins->add_option("--frames", ioptions.frames, "test images (-1: all)")
      ->capture_default_str()
      ->check(cli::AtLeast(-1));
  ins->add_option("--batch", ioptions.batch, "images per inference batch")
      ->capture_default_str()
      ->check(cli::Between(1, 10000));
  ins->add_option("--offload-fraction", ioptions.offload_fraction,
                  "the delivered answer offloads the frames below the exit confidence that "
                  "this share of validation frames falls under")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  ins->add_option("--seed", ioptions.seed, "seed of the noise steps")->capture_default_str();
  ins->add_option("--capture-scale", ioptions.capture_scale,
                  "profiles act on the image upscaled this much (the camera's resolution); the "
                  "edge's pre-processing brings it back. 1: on the model-sized image")
      ->capture_default_str()
      ->check(cli::Between(1, 16));
  ins->add_option("--fashion-mnist-dir", ioptions.fashion_mnist_dir)->capture_default_str();
  ins->add_option("--out", i_out, "JSON report")->required()->check(cli::OutputFile());
  ins->add_option("--markdown", i_markdown, "markdown tables")->check(cli::OutputFile());
  ins->add_option("--plot", i_plot, "PNG: instability and accuracy per answer and profile")
      ->check(cli::OutputFile());
  ins->add_option("--plot-script", i_script, "the plotting script")->capture_default_str();
  auto* ap = app.add_subcommand("apply-profile",
                                "one image through one camera profile (to see what it does)");
  std::string ap_profiles, ap_name, ap_image, ap_out;
  std::uint64_t ap_seed = 1;
  ap->add_option("--profiles", ap_profiles, "camera profiles (deepcut-profiles/1)")->required();
  ap->add_option("--profile", ap_name, "the profile's name")->required();
  ap->add_option("--image", ap_image, "input image (any format OpenCV reads)")->required();
  ap->add_option("--seed", ap_seed, "seed of the noise steps")->capture_default_str();
  ap->add_option("--out", ap_out, "output PNG")->required()->check(cli::OutputFile());
  auto* hv = app.add_subcommand(
      "harvest",
      "harvesting closes the loop: stream a shifted deployment through the edge with each "
      "sampler, fine-tune from each store, measure before and after (docs/harvest.md)");
  eval::HarvestEvalOptions hoptions;
  hoptions.trainer = std::string(DEEPCUT_SOURCE_DIR) + "/splitnet/training/finetune_harvest.py";
  hoptions.fashion_mnist_dir = trace::kDefaultFashionMnistDir;
  std::string h_out, h_markdown, h_plot, h_samplers = "harvest,random,periodic,uncertainty";
  std::string h_script = std::string(DEEPCUT_SOURCE_DIR) + "/scripts/plot_harvest.py";
  hv->add_option("--model", hoptions.model_dir, "model package (required unless --from-report)");
  hv->add_option("--shift", hoptions.shift,
                 "the deployment's camera: a deepcut-profiles/1 file with one profile, or "
                 "FILE.json#NAME (eval/profiles/shifts.json has two)");
  hv->add_option("--seed", hoptions.seeds, "seeds (comma-separated): class mix, streams, noise")
      ->delimiter(',')
      ->capture_default_str();
  hv->add_option("--storage-frames", hoptions.storage_frames,
                 "storage budgets in frames over the stream (comma-separated: the curve)")
      ->delimiter(',')
      ->capture_default_str();
  hv->add_option("--samplers", h_samplers, "comma-separated: harvest,random,periodic,uncertainty")
      ->capture_default_str();
  hv->add_option("--train-frames", hoptions.train_frames, "frames of the deployment stream")
      ->capture_default_str();
  hv->add_option("--test-frames", hoptions.test_frames, "frames of the test stream")
      ->capture_default_str();
  hv->add_option("--fps", hoptions.fps, "frame rate of both streams")->capture_default_str();
  hv->add_option("--capture-scale", hoptions.capture_scale,
                 "the camera's resolution, times the model's")
      ->capture_default_str()
      ->check(cli::Between(1, 16));
  hv->add_option("--class-skew", hoptions.class_skew,
                 "class mix: the k-th most common class is skew^k as common as the first")
      ->capture_default_str();
  hv->add_option("--policy", hoptions.policy, "the edge's offload policy")->capture_default_str();
  hv->add_option("--uplink", hoptions.uplink, "uplink trace or rate")->capture_default_str();
  hv->add_option("--budget", hoptions.budget_bps, "bandwidth knob, bit/s (offloads and uploads)")
      ->capture_default_str();
  hv->add_option("--explore", hoptions.explore,
                 "the harvest sampler's share of its budget drawn at random")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  hv->add_option("--harvest-weights", hoptions.weights,
                 "the harvest score's weights: uncertainty,disagreement,novelty,rarity (default: "
                 "the sampler's)")
      ->delimiter(',');
  hv->add_option("--labels", hoptions.labels, "fine-tuning labels: cloud | true")
      ->capture_default_str();
  hv->add_option("--part", hoptions.part, "what is fine-tuned: exit | head")->capture_default_str();
  hv->add_option("--trainer", hoptions.trainer, "the fine-tuning script")->capture_default_str();
  hv->add_option("--work-dir", hoptions.work_dir,
                 "keep the streams, stores and packages here (default: a temporary folder)");
  hv->add_option("--fashion-mnist-dir", hoptions.fashion_mnist_dir)->capture_default_str();
  hv->add_option("--out", h_out, "JSON report")->required()->check(cli::OutputFile());
  hv->add_option("--markdown", h_markdown, "markdown tables")->check(cli::OutputFile());
  hv->add_option("--plot", h_plot, "PNG: accuracy after fine-tuning against stored frames")
      ->check(cli::OutputFile());
  hv->add_option("--plot-script", h_script, "the plotting script")->capture_default_str();
  std::string h_from;
  hv->add_option("--from-report", h_from,
                 "re-render --markdown/--plot from this earlier report (no run; --model and "
                 "--shift are not read)")
      ->check(CLI::ExistingFile);
  app.footer("Exit codes: 0 ok, 2 bad option (a package it names included), 5 the run failed.");
  if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
  const bool tty = ProgressLine::StderrIsTerminal();
  if (ap->parsed()) return ApplyOne(ap_profiles, ap_name, ap_image, ap_seed, ap_out);
  if (hv->parsed() && !h_from.empty()) {
    std::ifstream in(h_from);
    auto doc = nlohmann::json::parse(in, nullptr, false);
    if (doc.is_discarded() || !doc.contains("samplers")) {
      std::cerr << "harvest: --from-report " << h_from << " is not a harvest report\n";
      return kExitBadOption;
    }
    const deepcut::Result<nlohmann::json> report(doc);
    return Finish("harvest", report, eval::HarvestMarkdown(doc), h_out, h_markdown, h_plot,
                  h_script);
  }
  if (hv->parsed()) {
    if (hoptions.model_dir.empty() || hoptions.shift.empty()) {
      std::cerr << "harvest: --model and --shift are required\n";
      return kExitBadOption;
    }
    hoptions.samplers.clear();
    std::stringstream list(h_samplers);
    for (std::string name; std::getline(list, name, ',');)
      if (!name.empty()) hoptions.samplers.push_back(name);
    auto report = eval::RunHarvestEval(hoptions);
    return Finish("harvest", report, report.ok() ? eval::HarvestMarkdown(*report) : "", h_out,
                  h_markdown, h_plot, h_script);
  }
  if (ins->parsed()) {
    ProgressLine progress("instability", "images");
    auto report = eval::RunInstability(ioptions, [&](int done, int total) {
      progress.Update(done, total);
      if (!tty && (done == total || done % 2000 < ioptions.batch))
        std::fprintf(stderr, "instability: %d/%d images\n", done, total);
    });
    progress.Done();
    return Finish("instability", report, report.ok() ? eval::InstabilityMarkdown(*report) : "",
                  i_out, i_markdown, i_plot, i_script);
  }
  // A progress line on a terminal; milestones in a log.
  ProgressLine progress("rate-accuracy", "images");
  auto report = eval::RunRateAccuracy(options, [&](int done, int total) {
    progress.Update(done, total);
    if (!tty && (done == total || done % 2000 < options.batch))
      std::fprintf(stderr, "rate-accuracy: %d/%d images\n", done, total);
  });
  progress.Done();
  return Finish("rate-accuracy", report, report.ok() ? eval::MarkdownTable(*report) : "", out_path,
                markdown_path, plot_path, plot_script);
}
