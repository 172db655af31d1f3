// deepcut-edge: runs the head and the exit on frames from a source, offloads
// to a deepcut-cloud per the policy, and records one answer per frame.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/cli.h"
#include "core/units.h"
#include "edge/answer_log.h"
#include "edge/control.h"
#include "edge/edge_runtime.h"
#include "edge/stream_driver.h"
#include "splitnet/manifest.h"
#include "transport/curve_keys.h"
#include "transport/zmq_link.h"

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

}  // namespace

int main(int argc, char** argv) {
  using namespace deepcut;
  CLI::App app{"DeepCut edge: split inference on the device, offload to deepcut-cloud"};
  std::string cloud_endpoint, model_dir, out_path, summary_path, policy_name = "deepcut",
                                                                 log_level = "info";
  edge::EdgeOptions edge_options;
  trace::SourceOptions source_options;
  edge::StreamOptions stream_options;
  std::string progress = "auto";
  app.add_option("--cloud", cloud_endpoint, "cloud endpoint, e.g. tcp://127.0.0.1:5555")
      ->required();
  std::string cloud_key_file, curve_key_file;
  auto* cloud_key_option = app.add_option(
      "--cloud-key", cloud_key_file,
      "the cloud's CURVE public key (its .pub file): encrypt the link (needs --curve-key; "
      "default: plaintext)");
  app.add_option("--curve-key", curve_key_file,
                 "this edge's CURVE key pair (a .key file from deepcut-keys; needs --cloud-key)")
      ->needs(cloud_key_option);
  cloud_key_option->needs("--curve-key");
  app.add_option("--model", model_dir, "model package directory")->required();
  app.add_option("--source", source_options.spec,
                 "fashion-mnist:test|train, images:DIR, video:PATH, camera:N or trace:FILE")
      ->required();
  app.add_option("--fashion-mnist-dir", source_options.fashion_mnist_dir,
                 "where the Fashion-MNIST IDX files are")
      ->capture_default_str();
  app.add_option("--frames", stream_options.max_frames, "stop after N frames (-1: all)")
      ->capture_default_str()
      ->check(cli::AtLeast(-1));
  app.add_option("--fps", stream_options.fps,
                 "capture in real time at F frames/s (0: as fast as the pipeline allows)")
      ->capture_default_str()
      ->check(cli::Between(0, 1000));
  std::string budget_text = "0";
  scheduler::PolicyOptions policy_options;
  std::string policy_help = "offload policy:";
  for (const auto& n : scheduler::PolicyNames()) policy_help += " " + n;
  app.add_option("--policy", policy_name, policy_help)->capture_default_str();
  app.add_option("--budget", budget_text, "uplink budget in bit/s, e.g. 20k, 1.5M (0: unlimited)")
      ->capture_default_str();
  app.add_option("--seed", policy_options.seed, "seed of the random policy")->capture_default_str();
  app.add_option("--period", policy_options.period_frames,
                 "periodic: offload every N frames (without a budget)")
      ->capture_default_str()
      ->check(cli::AtLeast(1));
  app.add_option("--confidence-threshold", policy_options.confidence_threshold,
                 "confidence: offload below this exit confidence (without a budget)")
      ->capture_default_str()
      ->check(cli::Between(0, 1));
  std::string control_endpoint;
  app.add_option("--control", control_endpoint,
                 "listen for live commands (budget RATE | status) here, e.g. "
                 "tcp://127.0.0.1:5601; see deepcut-ctl");
  app.add_option("--rate", edge_options.rate, "codec rate name (default: the model's default)");
  app.add_option("--deadline-ms", edge_options.deadline_ms, "capture-to-answer deadline")
      ->capture_default_str()
      ->check(cli::Between(0.001, 600'000));
  app.add_option("--max-in-flight", edge_options.max_in_flight, "offloads awaiting a reply")
      ->capture_default_str()
      ->check(cli::Between(1, 1024));
  app.add_option("--out", out_path, "per-frame answers, one JSON line each")
      ->check(cli::OutputFile());
  app.add_option("--summary", summary_path, "run summary JSON")->check(cli::OutputFile());
  app.add_option("--progress", progress, "progress bar: auto (if stderr is a terminal)|on|off")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cli::AddLogLevel(app, log_level);
  app.footer(
      "Exit codes: 0 ok, 2 bad option, 3 bad model package, 4 bad source, 5 the run failed.");
  if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
  if (!out_path.empty() && out_path == summary_path) {
    std::cerr << "--out and --summary name the same file: " << out_path << "\n";
    return cli::kExitBadOption;
  }
  cli::SetUpLogging("edge", log_level);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  auto manifest = splitnet::LoadManifest(model_dir);
  if (!manifest.ok()) {
    spdlog::error("{}", manifest.status().message());
    return cli::kExitBadModel;
  }
  auto model = splitnet::SplitModel::Load(*manifest, {.head = true, .exit = true, .tail = false});
  if (!model.ok()) {
    spdlog::error("{}", model.status().message());
    return cli::kExitBadModel;
  }
  auto budget = ParseBitRate(budget_text);
  if (!budget.ok()) {
    spdlog::error("--budget: {}", budget.status().message());
    return cli::kExitBadOption;
  }
  policy_options.name = policy_name;
  policy_options.budget_bps = *budget;
  policy_options.model = edge::ModelFactsOf(*manifest);
  auto policy = scheduler::MakePolicy(policy_options);
  if (!policy.ok()) {
    spdlog::error("--policy: {}", policy.status().message());
    return cli::kExitBadOption;
  }
  RealClock clock;
  transport::ZmqLinkOptions link_options{.endpoint = cloud_endpoint};
  if (!cloud_key_file.empty()) {
    auto cloud_key = transport::ReadPublicKeyFile(cloud_key_file);
    if (!cloud_key.ok()) {
      spdlog::error("--cloud-key: {}", cloud_key.status().message());
      return cli::kExitBadOption;
    }
    auto pair = transport::ReadSecretKeyFile(curve_key_file);
    Status curve = pair.ok() ? transport::RequireCurve() : pair.status();
    if (!curve.ok()) {
      spdlog::error("--curve-key: {}", curve.message());
      return cli::kExitBadOption;
    }
    link_options.curve_server_key = *cloud_key;
    link_options.curve_public_key = pair->public_key;
    link_options.curve_secret_key = pair->secret_key;
    spdlog::info("CURVE on: cloud key {}, edge key {}", *cloud_key, pair->public_key);
  }
  auto link = transport::ZmqLink::Create(link_options, clock);
  if (!link.ok()) {
    spdlog::error("--cloud: {}", link.status().message());
    return cli::kExitBadOption;
  }
  auto source = trace::OpenSource(source_options);
  if (!source.ok()) {
    spdlog::error("--source: {}", source.status().message());
    return cli::kExitBadInput;
  }
  std::int64_t expected = (*source)->Remaining();
  if (stream_options.max_frames >= 0 && (expected < 0 || expected > stream_options.max_frames))
    expected = stream_options.max_frames;
  auto log = edge::AnswerLog::Create(
      {.jsonl_path = out_path,
       .summary_path = summary_path,
       .progress = progress == "on" || (progress == "auto" && ::isatty(STDERR_FILENO)),
       .expected_frames = expected},
      manifest->classes);
  if (!log.ok()) {
    spdlog::error("{}", log.status().message());
    return cli::kExitBadOption;
  }
  edge::EdgeRuntime runtime(edge_options, **model, **policy, **link, clock,
                            [&](const Answer& a) { (*log)->Record(a); });
  if (Status valid = runtime.Validate(); !valid.ok()) {
    spdlog::error("{}", valid.message());
    return cli::kExitBadOption;
  }
  spdlog::info("model {} ({}), policy {}, budget {}, rate {}, cloud {}", manifest->name, model_dir,
               policy_name, *budget > 0 ? budget_text + " bit/s" : "unlimited",
               edge_options.rate.empty() ? manifest->rates[manifest->default_rate_index].name
                                         : edge_options.rate,
               cloud_endpoint);
  std::unique_ptr<edge::ControlServer> control;
  if (!control_endpoint.empty()) {
    auto server =
        edge::ControlServer::Create({.endpoint = control_endpoint}, runtime, clock, *budget, [&] {
          const auto& l = **log;
          return nlohmann::json{{"answered", l.answered()}, {"uplink_bytes", l.uplink_bytes()}}
              .dump();
        });
    if (!server.ok()) {
      spdlog::error("--control: {}", server.status().message());
      return cli::kExitBadOption;
    }
    control = std::move(*server);
    spdlog::info("control endpoint {}", control->endpoint());
  }
  auto run = edge::RunStream(**source, runtime, clock, stream_options, &g_stop, [&] {
    if (control) control->Poll();
  });
  if (!run.ok()) {
    spdlog::error("run failed: {}", run.status().message());
    return cli::kExitFailed;
  }
  const auto& c = runtime.counters();
  nlohmann::json extra{{"policy", policy_name},
                       {"budget_bps", *budget},
                       {"model", manifest->name},
                       {"source", source_options.spec},
                       {"deadline_ms", edge_options.deadline_ms},
                       {"fps", stream_options.fps},
                       {"frames_skipped", run->frames_skipped},
                       {"counters",
                        {{"offloads_sent", c.offloads_sent},
                         {"replies_in_time", c.replies_in_time},
                         {"replies_late", c.replies_late},
                         {"replies_malformed", c.replies_malformed},
                         {"replies_error", c.replies_error},
                         {"replies_busy", c.replies_busy},
                         {"reconnects", c.reconnects}}}};
  if (control) {
    nlohmann::json changes = nlohmann::json::array();
    for (const auto& ch : control->changes())
      changes.push_back({{"capture_s", ch.at_us / 1e6}, {"budget_bps", ch.budget_bps}});
    extra["budget_changes"] = changes;
  }
  const double seconds = (run->finished_us - run->started_us) / 1e6;
  auto summary = (*log)->Summary(run->frames_in, seconds, extra);
  if (Status finished = (*log)->Finish(summary); !finished.ok()) {
    spdlog::error("{}", finished.message());
    return cli::kExitFailed;
  }
  std::cout << edge::AnswerLog::SummaryTable(summary) << std::flush;
  if ((*log)->answered() != run->frames_in || (*log)->duplicates() != 0) {
    spdlog::error("answer accounting broken: {} frames in, {} answers, {} duplicates",
                  run->frames_in, (*log)->answered(), (*log)->duplicates());
    return cli::kExitFailed;
  }
  return 0;
}
