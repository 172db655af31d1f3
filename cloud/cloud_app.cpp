#include "cloud/cloud_app.h"

#include <spdlog/spdlog.h>

#include "cloud/cloud_metrics.h"
#include "core/files.h"
#include "metrics/metrics_server.h"
#include "splitnet/manifest.h"
#include "transport/curve_keys.h"

namespace deepcut::cloud {

cli::Outcome RunCloudApp(CloudAppOptions o, const std::atomic<bool>& stop) {
  std::unique_ptr<metrics::MetricsServer> metrics;
  if (!o.metrics_listen.empty()) {
    auto started = metrics::MetricsServer::Start({.listen = o.metrics_listen});
    if (!started.ok())
      return cli::Fail(
          cli::kExitBadOption,
          Status(started.status().code(), "--metrics-listen: " + started.status().message()));
    metrics = std::move(*started);
    spdlog::info("metrics and health on http://{} (/metrics, /healthz, /ready)",
                 metrics->address());
  }
  if (!o.curve_key_file.empty()) {
    auto keys = transport::LoadServerCurveKeys(o.curve_key_file, o.accept_keys_path);
    if (!keys.ok()) return cli::Fail(cli::kExitBadOption, keys.status());
    o.server.curve_public_key = keys->own.public_key;
    o.server.curve_secret_key = keys->own.secret_key;
    o.server.curve_accepted_keys = std::move(keys->accepted);
    spdlog::info(
        "CURVE on: public key {}, {}", o.server.curve_public_key,
        o.server.curve_accepted_keys.empty()
            ? std::string("any edge that knows it gets in")
            : std::to_string(o.server.curve_accepted_keys.size()) + " edge key(s) accepted");
  }
  auto manifest = splitnet::LoadManifest(o.model_dir);
  if (!manifest.ok()) return cli::Fail(cli::kExitBadModel, manifest.status());
  // The package is checked here, so that what Create can still refuse is an option.
  if (auto tail = TailWorker::Create(*manifest); !tail.ok())
    return cli::Fail(cli::kExitBadModel, tail.status());
  auto server = CloudServer::Create(o.server, *manifest);
  if (!server.ok())
    return cli::Fail(
        server.status().code() == StatusCode::kInternal ? cli::kExitFailed : cli::kExitBadOption,
        server.status());
  std::string endpoints;
  for (const auto& e : (*server)->endpoints()) endpoints += e + "\n";
  if (metrics) {
    // The collectable borrows the server: it goes before the server does.
    metrics->Add(std::make_shared<CloudMetrics>(**server));
    const CloudServer* serving = server->get();
    metrics->SetReadiness([serving] { return serving->phase() == Phase::kServing; });
    endpoints += "http://" + metrics->address() + "\n";
  }
  spdlog::info("serving model {} on {} with {} threads{}", manifest->name,
               (*server)->endpoints().front(), o.server.threads,
               o.server.harvest_db.empty() ? "" : ", harvest store " + o.server.harvest_db);
  if (!o.ready_file.empty())
    if (Status written = WriteFileAtomically(o.ready_file, endpoints); !written.ok())
      return cli::Fail(cli::kExitFailed,
                       Status(written.code(), "--ready-file: " + written.message()));
  (*server)->Run(stop);
  const CloudStats s = (*server)->stats();
  metrics.reset();  // before the server it reads
  spdlog::info(
      "stopped: received {}, answered {}, errors {}, busy {}, expired {}, refused keys {}, "
      "busy as hopeless {}",
      s.received, s.answered, s.rejected, s.busy, s.expired, s.refused_keys, s.hopeless);
  if (!o.server.harvest_db.empty())
    spdlog::info("harvest: {} chunks, {} frames stored, {} duplicates, {} refused, {} store errors",
                 s.harvest.chunks, s.harvest.items, s.harvest.duplicates, s.harvest.refused,
                 s.harvest.store_errors);
  return std::nullopt;
}

}  // namespace deepcut::cloud
