// deepcut-trace: makes, records and inspects frame traces (docs/frame-trace.md).
//
//   deepcut-trace make --frames 3000 --fps 10 --seed 1 --out scenes.dcft
//   deepcut-trace record --source video:clip.avi --frames 600 --out clip.dcft
//   deepcut-trace inspect scenes.dcft [--json]
#include <CLI/CLI.hpp>

#include "cli/cli.h"
#include "trace/trace_tool.h"

int main(int argc, char** argv) {
  using namespace deepcut;
  using namespace deepcut::trace;
  CLI::App app{"DeepCut frame traces: make scene streams, record sources, inspect trace files"};
  app.require_subcommand(1);
  std::string log_level = "info";
  cli::AddLogLevel(app, log_level);

  MakeOptions make;
  auto* make_cmd = app.add_subcommand(
      "make", "a scene stream from a dataset: items that stay in view for a while, then change");
  make_cmd->add_option("--dataset", make.dataset, "image set")
      ->capture_default_str()
      ->check(CLI::IsMember({"fashion-mnist"}));
  make_cmd->add_option("--split", make.split, "test|train")
      ->capture_default_str()
      ->check(CLI::IsMember({"test", "train"}));
  make_cmd
      ->add_option("--fashion-mnist-dir", make.fashion_mnist_dir,
                   "where the Fashion-MNIST IDX files are")
      ->capture_default_str();
  make_cmd->add_option("--frames", make.scene.frames, "frames to make")
      ->capture_default_str()
      ->check(cli::Between(std::int64_t{1}, std::int64_t{100000000}));
  make_cmd->add_option("--fps", make.scene.fps, "frame rate; frame k is captured at k / fps s")
      ->capture_default_str()
      ->check(cli::Between(1e-3, 1e6));
  make_cmd->add_option("--seed", make.scene.seed, "random seed")->capture_default_str();
  make_cmd
      ->add_option("--mean-dwell-s", make.scene.mean_dwell_s,
                   "mean time an item stays in view (exponential), seconds")
      ->capture_default_str()
      ->check(cli::Between(1e-6, 1e6));
  make_cmd
      ->add_option("--max-shift-px", make.scene.max_shift_px,
                   "the item wanders within +-this many pixels")
      ->capture_default_str()
      ->check(cli::Between(0, 64));
  make_cmd->add_option("--noise-sigma", make.scene.noise_sigma, "pixel noise, grey levels")
      ->capture_default_str()
      ->check(cli::Between(0.0, 128.0));
  make_cmd->add_option("--out", make.out, "trace file to write")
      ->required()
      ->check(cli::OutputFile());

  RecordOptions record;
  auto* record_cmd = app.add_subcommand("record", "a trace of any edge source");
  record_cmd
      ->add_option("--source", record.source.spec,
                   "fashion-mnist:test|train, images:DIR, video:PATH, camera:N or trace:FILE")
      ->required();
  record_cmd
      ->add_option("--fashion-mnist-dir", record.source.fashion_mnist_dir,
                   "where the Fashion-MNIST IDX files are")
      ->capture_default_str();
  record_cmd->add_option("--frames", record.frames, "frames to record (-1: the whole source)")
      ->capture_default_str()
      ->check(cli::Between(std::int64_t{-1}, std::int64_t{100000000}));
  auto* record_fps =
      record_cmd
          ->add_option("--fps", record.fps,
                       "file sources: frame k is captured at k / fps s (default: a video's own "
                       "rate; live sources keep their real capture times)")
          ->capture_default_str()
          ->check(cli::Between(1e-3, 1e6));
  record_cmd->add_option("--out", record.out, "trace file to write")
      ->required()
      ->check(cli::OutputFile());

  InspectOptions inspect;
  auto* inspect_cmd = app.add_subcommand("inspect", "check a trace file and print what it holds");
  inspect_cmd->add_option("file", inspect.path, "trace file")->required();
  inspect_cmd->add_flag("--json", inspect.json, "print JSON instead of text");

  app.footer(cli::ExitCodesFooter(
      {cli::kExitBadOption, cli::kExitBadInput, cli::kExitFailed, cli::kExitInterrupted}));
  if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
  cli::SetUpLogging("trace", log_level);
  const std::atomic<bool>& stop = cli::StopOnSignals();
  if (make_cmd->parsed()) return cli::Finish(MakeTrace(make, stop));
  record.fps_given = record_fps->count() > 0;
  if (record_cmd->parsed()) return cli::Finish(RecordTrace(record, stop));
  return cli::Finish(InspectTraceFile(inspect));
}
