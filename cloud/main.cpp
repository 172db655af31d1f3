// deepcut-cloud: serves the tail of a split model to any number of edges.
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include <spdlog/spdlog.h>

#include "cli/cli.h"
#include "cloud/cloud_server.h"
#include "core/files.h"
#include "splitnet/manifest.h"
#include "transport/curve_keys.h"

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

}  // namespace

int main(int argc, char** argv) {
  using namespace deepcut;
  CLI::App app{"DeepCut cloud: runs the tail of a split model for the edges"};
  cloud::CloudOptions options;
  std::string model_dir, ready_file, log_level = "info";
  app.add_option("--listen", options.listen,
                 "endpoint(s) to bind; tcp://127.0.0.1:* picks a free port")
      ->capture_default_str();
  app.add_option("--model", model_dir, "model package directory")->required();
  app.add_option("--threads", options.threads, "worker threads")
      ->capture_default_str()
      ->check(cli::Between(1, 256));
  app.add_option("--max-batch", options.max_batch, "requests per tail run")
      ->capture_default_str()
      ->check(cli::Between(1, 1024));
  app.add_option("--max-queue", options.max_queue, "queued requests before replying busy")
      ->capture_default_str()
      ->check(cli::Between(1, 1 << 20));
  app.add_option("--top-k", options.top_k, "scores returned per answer")
      ->capture_default_str()
      ->check(cli::Between(1, 16));
  app.add_option("--stats-interval-s", options.stats_interval_s,
                 "period of the stats log line (0: never)")
      ->capture_default_str()
      ->check(cli::NonNegative());
  app.add_option("--ready-file", ready_file,
                 "once listening, write the bound endpoints here (one per line)")
      ->check(cli::OutputFile());
  cli::AddLogLevel(app, log_level);
  std::string curve_key_file, accept_keys_path;
  auto* curve_key_option = app.add_option(
      "--curve-key", curve_key_file,
      "this cloud's CURVE key pair (a .key file from deepcut-keys): encrypt the link; edges "
      "need the matching .pub as --cloud-key (default: plaintext)");
  app.add_option("--accept-keys", accept_keys_path,
                 "let in only the edges whose public keys are here (a .pub file or a directory "
                 "of them); without it any edge that knows this cloud's public key gets in")
      ->needs(curve_key_option);
  app.footer(
      "Exit codes: 0 ok, 2 bad option, 3 bad model package, 5 the ready file could not be "
      "written.");
  if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
  cli::SetUpLogging("cloud", log_level);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  if (!curve_key_file.empty()) {
    auto pair = transport::ReadSecretKeyFile(curve_key_file);
    Status curve = pair.ok() ? transport::RequireCurve() : pair.status();
    if (!curve.ok()) {
      spdlog::error("--curve-key: {}", curve.message());
      return cli::kExitBadOption;
    }
    options.curve_public_key = pair->public_key;
    options.curve_secret_key = pair->secret_key;
    if (!accept_keys_path.empty()) {
      auto accepted = transport::ReadPublicKeys(accept_keys_path);
      if (!accepted.ok()) {
        spdlog::error("--accept-keys: {}", accepted.status().message());
        return cli::kExitBadOption;
      }
      options.curve_accepted_keys = std::move(accepted).value();
    }
    spdlog::info(
        "CURVE on: public key {}, {}", options.curve_public_key,
        options.curve_accepted_keys.empty()
            ? std::string("any edge that knows it gets in")
            : std::to_string(options.curve_accepted_keys.size()) + " edge key(s) accepted");
  }
  auto manifest = splitnet::LoadManifest(model_dir);
  if (!manifest.ok()) {
    spdlog::error("{}", manifest.status().message());
    return cli::kExitBadModel;
  }
  // The package is checked here, so that what Create can still refuse is an option.
  if (auto tail = splitnet::SplitModel::Load(*manifest, {.head = false, .exit = false});
      !tail.ok()) {
    spdlog::error("{}", tail.status().message());
    return cli::kExitBadModel;
  }
  auto server = cloud::CloudServer::Create(options, *manifest);
  if (!server.ok()) {
    spdlog::error("{}", server.status().message());
    return server.status().code() == StatusCode::kInternal ? cli::kExitFailed : cli::kExitBadOption;
  }
  std::string endpoints;
  for (const auto& e : (*server)->endpoints()) endpoints += e + "\n";
  spdlog::info("serving model {} on {} with {} threads", manifest->name,
               (*server)->endpoints().front(), options.threads);
  if (!ready_file.empty())
    if (Status written = WriteFileAtomically(ready_file, endpoints); !written.ok()) {
      spdlog::error("--ready-file: {}", written.message());
      return cli::kExitFailed;
    }
  (*server)->Run(g_stop);
  auto s = (*server)->stats();
  spdlog::info(
      "stopped: received {}, answered {}, errors {}, busy {}, expired {}, refused keys {}, "
      "busy as hopeless {}",
      s.received, s.answered, s.rejected, s.busy, s.expired, s.refused_keys, s.hopeless);
  return 0;
}
