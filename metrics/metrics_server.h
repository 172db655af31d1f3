// The HTTP endpoint a cloud or an edge serves its metrics and health on
// (`--metrics-listen HOST:PORT`, docs/operations.md):
//   GET /metrics  the Prometheus text exposition of every collectable added
//   GET /healthz  liveness: 200 while the process serves HTTP at all
//   GET /ready    readiness: 200 while the readiness function says so (model
//                 loaded, accepting), else 503 (starting, or draining after
//                 SIGTERM); without one, not ready
// Anything else is 404. The server is civetweb's (Debian's libcivetweb), on its
// own threads; the metrics are rendered by prometheus-cpp's TextSerializer from
// the collectables' Collect(), which must therefore be thread-safe.
//
// Port 0 picks a free port; address() says which. Start fails with a message
// naming the address when it is malformed or cannot be bound (port in use).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"

struct mg_context;
struct mg_connection;
namespace prometheus {
class Collectable;
}

namespace deepcut::metrics {

struct MetricsServerOptions {
  std::string listen;  // HOST:PORT, e.g. 127.0.0.1:9100 or 0.0.0.0:0
  int threads = 2;     // HTTP worker threads
};

// HOST:PORT split and checked (a numeric IPv4 host, or "localhost"; port 0..65535).
struct ListenAddress {
  std::string host;
  int port = 0;
};
Result<ListenAddress> ParseListenAddress(const std::string& text);

class MetricsServer {
 public:
  static Result<std::unique_ptr<MetricsServer>> Start(MetricsServerOptions options);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Adds what /metrics reports; kept alive by the server.
  void Add(std::shared_ptr<const prometheus::Collectable> collectable);
  // What /ready asks, on the server's threads (so it must be thread-safe).
  void SetReadiness(std::function<bool()> ready);
  bool ready() const;
  // HOST:PORT actually bound (port 0 resolved).
  const std::string& address() const { return address_; }
  // The text /metrics returns (public for tests and benchmarks).
  std::string Render() const;

 private:
  MetricsServer() = default;
  static int Handle(mg_connection* connection, void* self);

  mg_context* context_ = nullptr;
  std::string address_;
  mutable std::mutex mutex_;  // guards collectables_ and ready_
  std::function<bool()> ready_;
  std::vector<std::shared_ptr<const prometheus::Collectable>> collectables_;
};

}  // namespace deepcut::metrics
