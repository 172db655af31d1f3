// deepcut-replay: a recorded frame trace through the edge runtime, a policy,
// an emulated link and the real tail, in virtual time; with --policies all,
// every policy side by side plus the offline oracle, as one table, one JSON
// and one plot.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/cli.h"
#include "replay/report.h"

int main(int argc, char** argv) {
  using namespace deepcut;
  CLI::App app{"DeepCut replay: policies over a frame trace and a network trace, in virtual time"};
  replay::ReportOptions o;
  std::string link_file, link_rate, budget_text = "0", log_level = "error";
  app.add_option("--model", o.model_dir, "model package directory")->required();
  app.add_option("--frames", o.replay.frames, "frame trace (deepcut-trace make|record)")
      ->required();
  auto* lf = app.add_option("--link", link_file, "uplink: mahimahi trace file");
  auto* lr = app.add_option("--link-rate", link_rate, "uplink: fixed rate, e.g. 2M");
  lf->excludes(lr);
  app.add_option("--downlink", o.replay.downlink, "downlink: mahimahi trace or rate")
      ->capture_default_str();
  app.add_option("--budget", budget_text,
                 "uplink budget: bit/s (20k, 1.5M), a percentage of always-offload's "
                 "bit/s (25%), or 0 for unlimited")
      ->capture_default_str();
  app.add_option("--policy", o.policies,
                 "policy to run (repeatable): deepcut, edge-only, "
                 "always, periodic, random, confidence, framediff, oracle");
  app.add_option("--policies", o.policies_spec,
                 "'all' (every policy and the oracle, side by side) or a comma-separated list");
  app.add_option("--deadline-ms", o.replay.deadline_ms, "capture-to-answer deadline")
      ->capture_default_str()
      ->check(cli::Positive());
  app.add_option("--delay-ms", o.replay.link.uplink.delay_ms, "one-way delay of the uplink")
      ->capture_default_str()
      ->check(cli::NonNegative());
  app.add_option("--downlink-delay-ms", o.replay.link.downlink.delay_ms,
                 "one-way delay of the downlink")
      ->capture_default_str()
      ->check(cli::NonNegative());
  app.add_option("--queue-bytes", o.replay.link.uplink.queue_bytes, "uplink drop-tail queue")
      ->capture_default_str()
      ->check(cli::Between(std::int64_t{1500}, std::int64_t{1} << 40));
  app.add_option("--cloud-ms", o.replay.link.cloud_ms, "cloud service time per request")
      ->capture_default_str()
      ->check(cli::NonNegative());
  app.add_option("--max-in-flight", o.replay.max_in_flight, "offloads awaiting a reply")
      ->capture_default_str()
      ->check(cli::Between(1, 1024));
  app.add_option("--rate", o.replay.rate, "default codec rate (default: the model's)");
  app.add_option("--seed", o.replay.seed, "seed of the random policy")->capture_default_str();
  app.add_option("--frames-max", o.replay.max_frames, "replay only the first N frames (-1: all)")
      ->capture_default_str()
      ->check(cli::AtLeast(-1));
  app.add_option("--out", o.json_path, "report JSON")->check(cli::OutputFile());
  app.add_option("--markdown", o.markdown_path, "report table (markdown)")
      ->check(cli::OutputFile());
  app.add_option("--plot", o.plot_path, "PNG plot of accuracy vs uplink bit/s")
      ->check(cli::OutputFile());
  app.add_option("--plot-script", o.plot_script,
                 "the plotting script (default: scripts/plot_replay.py)");
  cli::AddLogLevel(app, log_level);
  app.footer(
      "Exit codes: 0 ok, 2 bad option (a model package or trace it names included), 5 the run "
      "failed.");
  if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
  cli::SetUpLogging("replay", log_level);
  if (link_file.empty() && link_rate.empty()) {
    std::cerr << "error: give the uplink with --link FILE or --link-rate RATE\n";
    return cli::kExitBadOption;
  }
  o.replay.uplink = link_file.empty() ? link_rate : link_file;
  std::error_code ec;
  if (!link_file.empty() && !std::filesystem::is_regular_file(link_file, ec)) {
    std::cerr << "error: --link: " << link_file << " is not a file\n";
    return cli::kExitBadOption;
  }
  o.budget_text = budget_text;
  o.replay.progress = ::isatty(STDERR_FILENO);
  o.progress = true;
  auto report = replay::RunReport(o);
  if (!report.ok()) {
    std::cerr << "error: " << report.status().message() << "\n";
    return report.status().code() == StatusCode::kInvalidArgument ||
                   report.status().code() == StatusCode::kNotFound
               ? cli::kExitBadOption
               : cli::kExitFailed;
  }
  std::cout << *report << std::flush;
  return 0;
}
