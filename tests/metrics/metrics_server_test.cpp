// The metrics and health endpoint over real HTTP on loopback: /metrics renders
// what was added in Prometheus' text format, /healthz is 200, /ready follows
// the readiness function, and bad or busy addresses are refused with a message.
#include "metrics/metrics_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <prometheus/collectable.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include "metrics/families.h"

namespace deepcut::metrics {
namespace {

// GET `path` from 127.0.0.1:`port`: the status code and the body.
std::pair<int, std::string> Get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return {-1, ""};
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  (void)::write(fd, request.data(), request.size());
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) response.append(buffer, n);
  ::close(fd);
  if (response.size() < 12) return {-1, response};
  const auto body = response.find("\r\n\r\n");
  return {std::stoi(response.substr(9, 3)),
          body == std::string::npos ? "" : response.substr(body + 4)};
}

int PortOf(const MetricsServer& server) {
  return std::stoi(server.address().substr(server.address().rfind(':') + 1));
}

class Counting final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    AddCounter(out, "deepcut_test_things_total", "Things", {{{{"kind", "a"}}, double(++calls_)}});
    Histogram h(ExponentialBounds(1, 2, 3));  // 1, 2, 4
    for (double v : {0.5, 3.0, 9.0}) h.Observe(v);
    AddHistogram(out, "deepcut_test_size", "Sizes", {}, h);
    return out;
  }
  mutable std::atomic<int> calls_{0};
};

TEST(ListenAddress, ChecksHostAndPort) {
  auto ok = ParseListenAddress("0.0.0.0:9100");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->host, "0.0.0.0");
  EXPECT_EQ(ok->port, 9100);
  EXPECT_EQ(ParseListenAddress("localhost:0")->host, "127.0.0.1");
  for (const std::string bad : {"", "9100", ":9100", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:x",
                                "300.1.1.1:80", "host.example:80"}) {
    auto parsed = ParseListenAddress(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_FALSE(parsed.status().message().empty());
    }
  }
}

TEST(MetricsServer, ServesMetricsHealthAndReadiness) {
  auto server = MetricsServer::Start({.listen = "127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.status().message();
  const int port = PortOf(**server);
  ASSERT_GT(port, 0);
  auto counting = std::make_shared<Counting>();
  (*server)->Add(counting);
  auto [code, body] = Get(port, "/metrics");
  EXPECT_EQ(code, 200);
  EXPECT_NE(body.find("# TYPE deepcut_test_things_total counter"), std::string::npos) << body;
  EXPECT_NE(body.find("deepcut_test_things_total{kind=\"a\"} 1"), std::string::npos) << body;
  // Buckets are cumulative, with +Inf, count and sum.
  EXPECT_NE(body.find("deepcut_test_size_bucket{le=\"1\"} 1"), std::string::npos) << body;
  EXPECT_NE(body.find("deepcut_test_size_bucket{le=\"4\"} 2"), std::string::npos) << body;
  EXPECT_NE(body.find("deepcut_test_size_bucket{le=\"+Inf\"} 3"), std::string::npos) << body;
  EXPECT_NE(body.find("deepcut_test_size_count 3"), std::string::npos) << body;
  EXPECT_NE(body.find("deepcut_test_size_sum 12.5"), std::string::npos) << body;
  // Collected anew at each scrape.
  EXPECT_NE(Get(port, "/metrics").second.find("deepcut_test_things_total{kind=\"a\"} 2"),
            std::string::npos);
  EXPECT_EQ(Get(port, "/healthz").first, 200);
  EXPECT_EQ(Get(port, "/ready").first, 503);  // no readiness function yet
  std::atomic<bool> ready{true};
  (*server)->SetReadiness([&] { return ready.load(); });
  EXPECT_EQ(Get(port, "/ready").first, 200);
  ready = false;
  EXPECT_EQ(Get(port, "/ready").first, 503);
  EXPECT_EQ(Get(port, "/other").first, 404);
}

TEST(MetricsServer, APortInUseIsRefusedWithTheAddress) {
  auto first = MetricsServer::Start({.listen = "127.0.0.1:0"});
  ASSERT_TRUE(first.ok());
  const std::string taken = (*first)->address();
  auto second = MetricsServer::Start({.listen = taken});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(taken), std::string::npos) << second.status().message();
  auto bad = MetricsServer::Start({.listen = "nonsense"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("HOST:PORT"), std::string::npos);
}

}  // namespace
}  // namespace deepcut::metrics
