// deepcut-eval: offline measurements of a model package.
//   deepcut-eval rate-accuracy --model DIR [--baseline DIR] --out FILE.json
//                              [--markdown FILE.md] [--plot FILE.png]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/cli.h"
#include "core/files.h"
#include "core/progress.h"
#include "eval/rate_accuracy.h"

namespace {

using deepcut::cli::kExitBadOption;
using deepcut::cli::kExitFailed;

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
  app.footer("Exit codes: 0 ok, 2 bad option (a package it names included), 5 the run failed.");
  if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
  // A progress line on a terminal; milestones in a log.
  ProgressLine progress("rate-accuracy", "images");
  const bool tty = ProgressLine::StderrIsTerminal();
  auto report = eval::RunRateAccuracy(options, [&](int done, int total) {
    progress.Update(done, total);
    if (!tty && (done == total || done % 2000 < options.batch))
      std::fprintf(stderr, "rate-accuracy: %d/%d images\n", done, total);
  });
  progress.Done();
  if (!report.ok()) {
    std::cerr << "rate-accuracy: " << report.status().message() << "\n";
    return report.status().code() == StatusCode::kInvalidArgument ||
                   report.status().code() == StatusCode::kNotFound
               ? kExitBadOption
               : kExitFailed;
  }
  const std::string table = eval::MarkdownTable(*report);
  std::cout << table;
  Status written = WriteFileAtomically(out_path, report->dump(2) + "\n");
  if (written.ok() && !markdown_path.empty()) written = WriteFileAtomically(markdown_path, table);
  if (!written.ok()) {
    std::cerr << "rate-accuracy: " << written.message() << "\n";
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
