// deepcut-replay: a recorded frame trace through the edge runtime, a policy,
// an emulated link and the real tail, in virtual time; with --policies all,
// every policy side by side plus the offline oracle, as one table, one JSON
// and one plot (replay/report.h does the work; this file declares its flags).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/cli.h"
#include "core/progress.h"
#include "replay/report.h"

int main(int argc, char** argv) {
  using namespace deepcut;
  CLI::App app{"DeepCut replay: policies over a frame trace and a network trace, in virtual time"};
  replay::ReportOptions o;
  o.replay.uplink.clear();  // required here: --uplink (or its old spellings)
  std::string frames_text = "-1", link_file, link_rate, log_level = "error";
  app.add_option("--model", o.model_dir, "model package directory")->required();
  app.add_option("--source", o.replay.source,
                 "frames: trace:FILE (deepcut-trace make|record), or another file source");
  app.add_option("--frames", frames_text,
                 "replay only the first N frames (-1: all); a file name here is the trace, as "
                 "before --source")
      ->capture_default_str();
  app.add_option("--uplink", o.replay.uplink, "uplink: a mahimahi trace file or a rate like 2M");
  // The spellings before --uplink, kept for scripts.
  app.add_option("--link", link_file, "same as --uplink FILE")->group("");
  app.add_option("--link-rate", link_rate, "same as --uplink RATE")->group("");
  app.add_option("--frames-max", o.replay.max_frames, "same as --frames N")->group("");
  app.add_option("--downlink", o.replay.downlink, "downlink: mahimahi trace or rate")
      ->capture_default_str();
  app.add_option("--budget", o.budget_text,
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
      ->check(cli::Between(0.001, 600'000));
  app.add_option("--delay-ms", o.replay.link.uplink.delay_ms, "one-way delay of the uplink")
      ->capture_default_str()
      ->check(cli::NonNegative());
  app.add_option("--downlink-delay-ms", o.replay.link.downlink.delay_ms,
                 "one-way delay of the downlink")
      ->capture_default_str()
      ->check(cli::NonNegative());
  app.add_option("--queue-bytes", o.replay.link.uplink.queue_bytes, "uplink drop-tail queue")
      ->capture_default_str()
      ->check(cli::Between(1500, 1e12));
  app.add_option("--cloud-ms", o.replay.link.cloud_ms, "cloud service time per request")
      ->capture_default_str()
      ->check(cli::NonNegative());
  app.add_option("--max-in-flight", o.replay.max_in_flight, "offloads awaiting a reply")
      ->capture_default_str()
      ->check(cli::Between(1, 1024));
  app.add_option("--policy-weights", o.policy_weights,
                 "the learned policy's network (default: the package's policy.json)");
  app.add_option("--fusion", o.fusion_text,
                 "scene-fusion settings over the package's: change=D,decay=S,exit=W,cloud=W "
                 "(any of them; for tuning)");
  app.add_option("--rate", o.replay.rate, "default codec rate (default: the model's)");
  app.add_option("--seed", o.replay.seed, "seed of the random policy")->capture_default_str();
  app.add_option("--out", o.json_path, "report JSON")->check(cli::OutputFile());
  app.add_option("--markdown", o.markdown_path, "report table (markdown)")
      ->check(cli::OutputFile());
  app.add_option("--plot", o.plot_path, "PNG plot of accuracy vs uplink bit/s")
      ->check(cli::OutputFile());
  app.add_option("--plot-script", o.plot_script,
                 "the plotting script (default: scripts/plot_replay.py)");
  cli::AddLogLevel(app, log_level);
  app.footer(cli::ExitCodesFooter(
      {cli::kExitBadOption, cli::kExitBadModel, cli::kExitBadInput, cli::kExitFailed}));
  if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
  cli::SetUpLogging("replay", log_level);
  if (Status flags = replay::ApplyFrameAndLinkFlags(o, frames_text, link_file, link_rate);
      !flags.ok()) {
    std::fprintf(stderr, "error: %s\n", flags.message().c_str());
    return cli::kExitBadOption;
  }
  o.replay.progress = ProgressLine::StderrIsTerminal();
  o.progress = true;
  return cli::Finish(replay::RunReplayApp(o));
}
