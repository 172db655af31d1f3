// deepcut-cloud's run: the model package checked, CURVE keys read, the server
// bound, its endpoints written to the ready file, then served until `stop`.
// Its main.cpp only declares the flags that fill CloudAppOptions.
//
// With `metrics_listen`, the metrics and health endpoint (metrics/) starts
// first, so that a bad address or a port in use fails before the model loads,
// and liveness answers while it does; /ready turns 200 once the server
// listens, and 503 again when SIGTERM starts the drain.
//
// Failures come back with their exit code: a bad option or key file, a bad or
// busy metrics address (2), a bad model package (3), a ready file that cannot
// be written (5).
#pragma once

#include <atomic>
#include <string>

#include "cli/cli.h"
#include "cloud/cloud_server.h"

namespace deepcut::cloud {

struct CloudAppOptions {
  CloudOptions server;
  std::string model_dir;
  std::string ready_file;        // the bound endpoints, one per line; empty: none
  std::string metrics_listen;    // HOST:PORT of /metrics, /healthz, /ready; empty: none
  std::string curve_key_file;    // this cloud's CURVE .key; empty: plaintext
  std::string accept_keys_path;  // edge .pub file or folder; empty: any edge
};

cli::Outcome RunCloudApp(CloudAppOptions options, const std::atomic<bool>& stop);

}  // namespace deepcut::cloud
