#include "metrics/metrics_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <charconv>
#include <cstring>
#include <sstream>

namespace deepcut::metrics {
namespace {

void Send(mg_connection* connection, int code, const char* reason, const char* type,
          const std::string& body) {
  mg_printf(connection,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            code, reason, type, body.size());
  mg_write(connection, body.data(), body.size());
}

// civetweb logs through this callback; its errors come back from Start instead.
int QuietLog(const mg_connection*, const char*) { return 1; }

}  // namespace

Result<ListenAddress> ParseListenAddress(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return InvalidArgument("'" + text + "' is not HOST:PORT (e.g. 127.0.0.1:9100)");
  ListenAddress address{text.substr(0, colon), 0};
  const std::string port = text.substr(colon + 1);
  auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), address.port);
  if (error != std::errc() || end != port.data() + port.size() || address.port < 0 ||
      address.port > 65535)
    return InvalidArgument("'" + text + "': the port must be a number 0..65535");
  if (address.host == "localhost") address.host = "127.0.0.1";
  in_addr parsed{};
  if (inet_pton(AF_INET, address.host.c_str(), &parsed) != 1)
    return InvalidArgument("'" + text + "': the host must be an IPv4 address such as 0.0.0.0");
  return address;
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(MetricsServerOptions options) {
  ASSIGN_OR_RETURN(ListenAddress address, ParseListenAddress(options.listen));
  if (options.threads < 1) return InvalidArgument("metrics server threads must be >= 1");
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  const std::string ports = address.host + ":" + std::to_string(address.port);
  const std::string threads = std::to_string(options.threads);
  const char* config[] = {"listening_ports",    ports.c_str(), "num_threads", threads.c_str(),
                          "request_timeout_ms", "5000",        nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = QuietLog;
  mg_init_data init{&callbacks, server.get(), config};
  char text[256] = {};
  unsigned code = 0;
  mg_error_data error{&code, text, sizeof text};
  mg_init_library(0);
  server->context_ = mg_start2(&init, &error);
  if (!server->context_)
    return InvalidArgument("cannot serve metrics on " + options.listen + ": " +
                           (text[0] ? text : "civetweb failed to start"));
  mg_set_request_handler(server->context_, "/", &MetricsServer::Handle, server.get());
  mg_server_port bound[4] = {};
  const int n = mg_get_server_ports(server->context_, 4, bound);
  server->address_ = address.host + ":" + std::to_string(n > 0 ? bound[0].port : address.port);
  return server;
}

MetricsServer::~MetricsServer() {
  if (context_) mg_stop(context_);
}

void MetricsServer::Add(std::shared_ptr<const prometheus::Collectable> collectable) {
  std::lock_guard<std::mutex> lock(mutex_);
  collectables_.push_back(std::move(collectable));
}

void MetricsServer::SetReadiness(std::function<bool()> ready) {
  std::lock_guard<std::mutex> lock(mutex_);
  ready_ = std::move(ready);
}

bool MetricsServer::ready() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return ready_ && ready_();
}

std::string MetricsServer::Render() const {
  std::vector<prometheus::MetricFamily> families;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& c : collectables_)
      for (auto& f : c->Collect()) families.push_back(std::move(f));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

int MetricsServer::Handle(mg_connection* connection, void* self) {
  auto* server = static_cast<MetricsServer*>(self);
  const mg_request_info* request = mg_get_request_info(connection);
  const std::string uri = request->local_uri ? request->local_uri : "";
  if (std::strcmp(request->request_method, "GET") != 0 &&
      std::strcmp(request->request_method, "HEAD") != 0) {
    Send(connection, 405, "Method Not Allowed", "text/plain", "only GET\n");
  } else if (uri == "/metrics") {
    Send(connection, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", server->Render());
  } else if (uri == "/healthz") {
    Send(connection, 200, "OK", "text/plain", "ok\n");
  } else if (uri == "/ready") {
    if (server->ready())
      Send(connection, 200, "OK", "text/plain", "ready\n");
    else
      Send(connection, 503, "Service Unavailable", "text/plain", "not ready\n");
  } else {
    Send(connection, 404, "Not Found", "text/plain", "/metrics, /healthz or /ready\n");
  }
  return 1;  // handled
}

}  // namespace deepcut::metrics
