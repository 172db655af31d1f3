// The link emulator with real ZeroMQ sockets in one process: replies find
// their edge, and the drop-tail queue loses what does not fit. (Its timing
// follows network::LinkModel, which replay_test checks in virtual time; nothing
// here asserts how long anything took.)
#include "netem/link_emulator.h"

#include <gtest/gtest.h>

#include <thread>

namespace deepcut::netem {
namespace {

// A cloud stand-in: a ROUTER that answers each message with "re:" + message.
class EchoCloud {
 public:
  EchoCloud() : router_(context_, zmq::socket_type::router) {
    router_.set(zmq::sockopt::linger, 0);
    router_.bind("tcp://127.0.0.1:*");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
  }
  // Answers until `n` messages were seen or 20 s passed.
  void Serve(int n) {
    zmq::pollitem_t item{static_cast<void*>(router_), 0, ZMQ_POLLIN, 0};
    for (int waited_ms = 0; seen_ < n && waited_ms < 20'000; waited_ms += 10) {
      zmq::poll(&item, 1, std::chrono::milliseconds(10));
      zmq::message_t id, body;
      while (router_.recv(id, zmq::recv_flags::dontwait)) {
        (void)router_.recv(body, zmq::recv_flags::none);
        ++seen_;
        router_.send(id, zmq::send_flags::sndmore);
        router_.send(zmq::buffer("re:" + body.to_string()), zmq::send_flags::none);
      }
    }
  }
  const std::string& endpoint() const { return endpoint_; }
  int seen() const { return seen_; }

 private:
  zmq::context_t context_;
  zmq::socket_t router_;
  std::string endpoint_;
  int seen_ = 0;
};

std::string Receive(zmq::socket_t& s) {
  zmq::pollitem_t item{static_cast<void*>(s), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, std::chrono::seconds(20)) == 0) return "(nothing)";
  zmq::message_t m;
  (void)s.recv(m, zmq::recv_flags::none);
  return m.to_string();
}

struct Running {
  std::unique_ptr<LinkEmulator> link;
  std::atomic<bool> stop{false};
  std::thread thread;
  void Start() {
    thread = std::thread([this] { link->Run(stop); });
  }
  ~Running() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
};

TEST(LinkEmulatorTest, RepliesReachTheEdgeThatAsked) {
  EchoCloud cloud;
  RealClock clock;
  Running r;
  auto up = network::FixedRate(10e6);
  auto down = network::FixedRate(10e6);
  ASSERT_TRUE(up.ok() && down.ok());
  LinkEmulatorOptions options{.listen = "tcp://127.0.0.1:*", .connect = cloud.endpoint()};
  options.uplink.delay_ms = options.downlink.delay_ms = 1;
  auto link = LinkEmulator::Create(options, *up, *down, clock);
  ASSERT_TRUE(link.ok()) << link.status().ToString();
  r.link = std::move(*link);
  r.Start();

  zmq::context_t context;
  zmq::socket_t a(context, zmq::socket_type::dealer), b(context, zmq::socket_type::dealer);
  for (auto* s : {&a, &b}) {
    s->set(zmq::sockopt::linger, 0);
    s->connect(r.link->endpoint());
  }
  a.send(zmq::buffer(std::string("from a")), zmq::send_flags::none);
  b.send(zmq::buffer(std::string("from b")), zmq::send_flags::none);
  cloud.Serve(2);
  EXPECT_EQ(Receive(a), "re:from a");
  EXPECT_EQ(Receive(b), "re:from b");
  r.stop = true;
  r.thread.join();
  const LinkStats& s = r.link->stats();
  EXPECT_EQ(s.up_messages, 2);
  EXPECT_EQ(s.down_messages, 2);
  // Wire bytes: the ZMTP frame header (2 bytes for short frames) plus the body.
  EXPECT_EQ(s.up_bytes, 2 * (6 + 2));
  EXPECT_EQ(s.down_bytes, 2 * (9 + 2));
  EXPECT_EQ(s.up_dropped + s.down_dropped + s.cloud_unreachable, 0);
}

TEST(LinkEmulatorTest, TheDropTailQueueLosesWhatDoesNotFit) {
  EchoCloud cloud;
  RealClock clock;
  Running r;
  // The first delivery opportunity comes 1.5 s after the first message, so
  // the second and third find the one-packet queue still holding the first.
  auto up = network::ParseMahimahi("1500\n3000\n", "test");
  auto down = network::FixedRate(10e6);
  ASSERT_TRUE(up.ok() && down.ok());
  LinkEmulatorOptions options{.listen = "tcp://127.0.0.1:*", .connect = cloud.endpoint()};
  options.uplink.queue_bytes = 1500;
  auto link = LinkEmulator::Create(options, *up, *down, clock);
  ASSERT_TRUE(link.ok()) << link.status().ToString();
  r.link = std::move(*link);
  r.Start();

  zmq::context_t context;
  zmq::socket_t edge(context, zmq::socket_type::dealer);
  edge.set(zmq::sockopt::linger, 0);
  edge.connect(r.link->endpoint());
  for (int i = 0; i < 3; ++i)
    edge.send(zmq::buffer(std::string(1000, static_cast<char>('a' + i))), zmq::send_flags::none);
  cloud.Serve(1);
  EXPECT_EQ(Receive(edge), "re:" + std::string(1000, 'a'));
  r.stop = true;
  r.thread.join();
  EXPECT_EQ(cloud.seen(), 1);
  EXPECT_EQ(r.link->stats().up_messages, 1);
  EXPECT_EQ(r.link->stats().up_dropped, 2);
}

TEST(LinkEmulatorTest, RefusesBadOptions) {
  RealClock clock;
  auto up = network::FixedRate(1e6);
  ASSERT_TRUE(up.ok());
  LinkEmulatorOptions bad_listen{.listen = "nonsense://x"};
  auto a = LinkEmulator::Create(bad_listen, *up, *up, clock);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("nonsense://x"), std::string::npos);
  LinkEmulatorOptions bad_connect{.listen = "tcp://127.0.0.1:*", .connect = "tcp://"};
  EXPECT_FALSE(LinkEmulator::Create(bad_connect, *up, *up, clock).ok());
  LinkEmulatorOptions tiny_queue{.listen = "tcp://127.0.0.1:*"};
  tiny_queue.uplink.queue_bytes = 100;
  EXPECT_FALSE(LinkEmulator::Create(tiny_queue, *up, *up, clock).ok());
}

}  // namespace
}  // namespace deepcut::netem
