// deepcut-edge: runs the head and the exit on frames from a source, offloads
// to a deepcut-cloud per the policy, and records one answer per frame
// (edge/edge_app.h does the work; this file declares its flags).
#include <CLI/CLI.hpp>

#include "cli/cli.h"
#include "edge/edge_app.h"

int main(int argc, char** argv) {
  using namespace deepcut;
  CLI::App app{"DeepCut edge: split inference on the device, offload to deepcut-cloud"};
  edge::EdgeAppOptions o;
  std::string log_level = "info";
  app.add_option("--cloud", o.cloud_endpoint,
                 "cloud endpoint(s), comma-separated, e.g. tcp://127.0.0.1:5555; offloads are "
                 "spread over them, and a name that resolves to several addresses (a headless "
                 "Service) stands for all of them (docs/operations.md)")
      ->required();
  app.add_option("--resolve-interval-s", o.resolve_interval_s,
                 "resolve the names in --cloud again this often (and when no replica answers)")
      ->capture_default_str()
      ->check(cli::Between(0.1, 86400));
  app.add_option(
         "--rebalance-s", o.rebalance_s,
         "behind a load balancer: reopen a connection about this old (+-25%) when it has "
         "nothing in flight, so that added or restarted replicas get their share (0: never)")
      ->capture_default_str()
      ->check(cli::NonNegative());
  app.add_option("--metrics-listen", o.metrics_listen,
                 "serve Prometheus metrics (/metrics) and health probes (/healthz, /ready) over "
                 "HTTP at HOST:PORT (port 0: a free one); default: off");
  auto* cloud_key = app.add_option("--cloud-key", o.cloud_key_file,
                                   "the cloud's CURVE public key (its .pub file): encrypt the "
                                   "link (needs --curve-key; default: plaintext)");
  app.add_option("--curve-key", o.curve_key_file,
                 "this edge's CURVE key pair (a .key file from deepcut-keys; needs --cloud-key)")
      ->needs(cloud_key);
  cloud_key->needs("--curve-key");
  app.add_option("--model", o.model_dir, "model package directory")->required();
  app.add_option("--source", o.source.spec,
                 "fashion-mnist:test|train, images:DIR, video:PATH, camera:N or trace:FILE")
      ->required();
  app.add_option("--fashion-mnist-dir", o.source.fashion_mnist_dir,
                 "where the Fashion-MNIST IDX files are")
      ->capture_default_str();
  app.add_option("--frames", o.stream.max_frames, "stop after N frames (-1: all)")
      ->capture_default_str()
      ->check(cli::AtLeast(-1));
  app.add_option("--fps", o.stream.fps,
                 "capture in real time at F frames/s (0: as fast as the pipeline allows)")
      ->capture_default_str()
      ->check(cli::Between(0, 1000));
  app.add_flag("--capture-times", o.stream.capture_times,
               "pace a trace's frames at their recorded capture times, in real time");
  std::string policy_help = "offload policy (NAME+fusion: with the scene-fusion answer rule):";
  for (const auto& n : scheduler::PolicyNames()) policy_help += " " + n;
  app.add_option("--policy", o.policy_name, policy_help)->capture_default_str();
  app.add_option("--budget", o.budget_text, "uplink budget in bit/s, e.g. 20k, 1.5M (0: unlimited)")
      ->capture_default_str();
  app.add_option("--fusion", o.fusion,
                 "answer from the whole scene's evidence: on, off, or auto (on for deepcut, "
                 "learned and NAME+fusion)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  app.add_option("--policy-weights", o.policy_weights,
                 "the learned policy's network (default: the package's policy.json)");
  app.add_option("--seed", o.policy.seed, "seed of the random policy")->capture_default_str();
  app.add_option("--period", o.policy.period_frames,
                 "periodic: offload every N frames (without a budget)")
      ->capture_default_str()
      ->check(cli::AtLeast(1));
  app.add_option("--confidence-threshold", o.policy.confidence_threshold,
                 "confidence: offload below this exit confidence (without a budget)")
      ->capture_default_str()
      ->check(cli::Between(0, 1));
  app.add_option("--control", o.control_endpoint,
                 "listen for live commands (budget RATE | status) here, e.g. "
                 "tcp://127.0.0.1:5601; see deepcut-ctl");
  app.add_option("--rate", o.runtime.rate, "codec rate name (default: the model's default)");
  app.add_option("--deadline-ms", o.runtime.deadline_ms, "capture-to-answer deadline")
      ->capture_default_str()
      ->check(cli::Between(0.001, 600'000));
  app.add_option("--max-in-flight", o.runtime.max_in_flight, "offloads awaiting a reply")
      ->capture_default_str()
      ->check(cli::Between(1, 1024));
  app.add_option("--exray-out", o.exray.dir,
                 "record every N-th frame's layers, tensors and timings into this new or empty "
                 "directory (deployment visibility; docs/exray.md)");
  app.add_option("--exray-every", o.exray.every, "record every N-th frame")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  double exray_max_mb = static_cast<double>(o.exray.max_bytes) / (1 << 20);
  app.add_option("--exray-max-mb", exray_max_mb,
                 "size cap of the records in MiB; the oldest records are deleted past it")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--harvest-db", o.harvest.store_path,
                 "keep rare, useful frames for retraining in this SQLite store (created if "
                 "absent) and upload them to the cloud (docs/harvest.md); default: off");
  app.add_option("--harvest-sampler", o.harvest_sampler,
                 "which frames to keep: harvest|random|periodic|uncertainty")
      ->capture_default_str();
  app.add_option("--harvest-budget", o.harvest_budget,
                 "storage budget: frames per hour (120/h, 2/min) or bytes (5MB/h); live: "
                 "deepcut-ctl harvest RATE")
      ->capture_default_str();
  app.add_option("--harvest-max-frames", o.harvest.sampler.budget.max_frames,
                 "frames the store may hold, uploaded or not (0: no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--harvest-store-mb", o.harvest.store_max_mb,
                 "cap on the store's file (0: none); past it, keeping fails as on a full disk")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--harvest-chunk-bytes", o.harvest.chunk_bytes, "upload chunk size")
      ->capture_default_str()
      ->check(CLI::Range(256, 1 << 19));
  bool harvest_no_upload = false;
  app.add_flag("--harvest-no-upload", harvest_no_upload, "keep frames on the edge, send none");
  app.add_option("--harvest-finish-s", o.harvest_finish_s,
                 "after the source ends, keep uploading harvested frames up to this long")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--out", o.out_path, "per-frame answers, one JSON line each")
      ->check(cli::OutputFile());
  app.add_option("--summary", o.summary_path, "run summary JSON")->check(cli::OutputFile());
  app.add_option("--progress", o.progress, "progress bar: auto (if stderr is a terminal)|on|off")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cli::AddLogLevel(app, log_level);
  app.footer(cli::ExitCodesFooter(
      {cli::kExitBadOption, cli::kExitBadModel, cli::kExitBadInput, cli::kExitFailed}));
  if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
  o.exray.max_bytes = static_cast<std::int64_t>(exray_max_mb * (1 << 20));
  o.harvest.upload = !harvest_no_upload;
  if (!o.out_path.empty() && o.out_path == o.summary_path) {
    std::fprintf(stderr, "--out and --summary name the same file: %s\n", o.out_path.c_str());
    return cli::kExitBadOption;
  }
  cli::SetUpLogging("edge", log_level);
  return cli::Finish(edge::RunEdgeApp(std::move(o), cli::StopOnSignals()));
}
