// deepcut-cloud: serves the tail of a split model to any number of edges
// (cloud/cloud_app.h does the work; this file declares its flags).
#include <CLI/CLI.hpp>

#include "cli/cli.h"
#include "cloud/cloud_app.h"

int main(int argc, char** argv) {
  using namespace deepcut;
  CLI::App app{"DeepCut cloud: runs the tail of a split model for the edges"};
  cloud::CloudAppOptions o;
  cloud::CloudOptions& options = o.server;
  std::string log_level = "info";
  app.add_option("--listen", options.listen,
                 "endpoint(s) to bind; tcp://127.0.0.1:* picks a free port")
      ->capture_default_str();
  app.add_option("--model", o.model_dir, "model package directory")->required();
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
  app.add_option("--ready-file", o.ready_file,
                 "once listening, write the bound endpoints here (one per line)")
      ->check(cli::OutputFile());
  app.add_option("--harvest-db", options.harvest_db,
                 "keep the frames edges harvest for retraining in this SQLite store (created if "
                 "absent; docs/harvest.md); default: none, uploads are not acknowledged");
  app.add_option("--metrics-listen", o.metrics_listen,
                 "serve Prometheus metrics (/metrics) and liveness and readiness probes (/healthz, "
                 "/ready) over HTTP at HOST:PORT, e.g. 0.0.0.0:9100 (port 0: a free one; "
                 "docs/operations.md); default: off");
  app.add_option("--drain-delay-s", options.drain_delay_s,
                 "on SIGTERM: serve on this long while /ready says 503, so that load balancers "
                 "see the replica leave")
      ->capture_default_str()
      ->check(cli::Between(0, 3600));
  app.add_option("--drain-timeout-s", options.drain_timeout_s,
                 "on SIGTERM, after the delay: answer new requests 'draining' and finish the "
                 "queue within this long, then exit 0")
      ->capture_default_str()
      ->check(cli::Between(0, 3600));
  cli::AddLogLevel(app, log_level);
  auto* curve_key_option = app.add_option(
      "--curve-key", o.curve_key_file,
      "this cloud's CURVE key pair (a .key file from deepcut-keys): encrypt the link; edges "
      "need the matching .pub as --cloud-key (default: plaintext)");
  app.add_option("--accept-keys", o.accept_keys_path,
                 "let in only the edges whose public keys are here (a .pub file or a directory "
                 "of them); without it any edge that knows this cloud's public key gets in")
      ->needs(curve_key_option);
  app.footer(cli::ExitCodesFooter({cli::kExitBadOption, cli::kExitBadModel, cli::kExitFailed}));
  if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
  cli::SetUpLogging("cloud", log_level);
  return cli::Finish(cloud::RunCloudApp(std::move(o), cli::StopOnSignals()));
}
