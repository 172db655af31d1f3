// ZmqLink (the edge's DEALER) against a bare ROUTER in the test: sending while
// no cloud is there is refused at once, replies arrive, and Reconnect() drops a
// stale connection's replies and works again, also after the cloud restarts.
#include "transport/zmq_link.h"

#include <gtest/gtest.h>

#include <thread>

namespace deepcut::transport {
namespace {

// A ROUTER that echoes each message back to its sender when told to.
class Router {
 public:
  explicit Router(zmq::context_t& context, const std::string& endpoint = "tcp://127.0.0.1:*")
      : socket_(context, zmq::socket_type::router) {
    socket_.set(zmq::sockopt::linger, 0);
    // A port just released by another socket is freed by ZeroMQ's I/O thread
    // a moment later: retry for a while.
    for (int attempt = 0;; ++attempt) {
      try {
        socket_.bind(endpoint);
        break;
      } catch (const zmq::error_t& e) {
        if (e.num() != EADDRINUSE || attempt >= 200) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
  }
  const std::string& endpoint() const { return endpoint_; }
  // Receives one message (waits up to `wait`) and, if `echo`, sends it back.
  std::optional<std::string> Serve(bool echo,
                                   std::chrono::milliseconds wait = std::chrono::seconds(5)) {
    zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, wait);
    zmq::message_t identity, body;
    if (!socket_.recv(identity, zmq::recv_flags::dontwait)) return std::nullopt;
    (void)socket_.recv(body);
    if (echo) {
      socket_.send(identity, zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(body.to_string()), zmq::send_flags::none);
    }
    return body.to_string();
  }

 private:
  zmq::socket_t socket_;
  std::string endpoint_;
};

std::vector<std::uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::string Text(const std::optional<std::vector<std::uint8_t>>& b) {
  return b ? std::string(b->begin(), b->end()) : std::string("(none)");
}

// Sends until the link takes the message (the connection comes up in the
// background); false after 5 s.
bool SendWhenConnected(ZmqLink& link, const std::string& text) {
  for (int i = 0; i < 500; ++i) {
    if (link.Send(Bytes(text)).ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(ZmqLink, RefusesWithoutACloudThenDeliversAndReconnects) {
  RealClock clock;
  zmq::context_t context;
  // Nothing listens yet on this port: sends are refused at once (ZMQ_IMMEDIATE).
  std::string endpoint;
  {
    Router probe(context);
    endpoint = probe.endpoint();
  }
  auto link = ZmqLink::Create({.endpoint = endpoint}, clock);
  ASSERT_TRUE(link.ok()) << link.status().ToString();
  EXPECT_FALSE((*link)->Send(Bytes("early")).ok());

  auto router = std::make_unique<Router>(context, endpoint);
  ASSERT_TRUE(SendWhenConnected(**link, "one"));
  EXPECT_EQ(router->Serve(/*echo=*/true).value_or(""), "one");
  EXPECT_EQ(Text((*link)->Receive(clock.NowUs() + 5'000'000)), "one");

  // A request whose reply is still on its way when the edge gives up on the
  // connection: after Reconnect() that reply never arrives, new ones do.
  ASSERT_TRUE((*link)->Send(Bytes("stale")).ok());
  EXPECT_EQ(router->Serve(/*echo=*/false).value_or(""), "stale");
  (*link)->Reconnect();
  ASSERT_TRUE(SendWhenConnected(**link, "fresh"));
  EXPECT_EQ(router->Serve(/*echo=*/true).value_or(""), "fresh");
  EXPECT_EQ(Text((*link)->Receive(clock.NowUs() + 5'000'000)), "fresh");

  // The cloud restarts on the same port: ZeroMQ reconnects by itself. A send
  // in the moment before the DEALER notices the old connection is gone is lost
  // (the edge answers that frame at its deadline), so it is sent again until
  // the new cloud has it.
  router.reset();
  router = std::make_unique<Router>(context, endpoint);
  bool delivered = false;
  for (int attempt = 0; attempt < 50 && !delivered; ++attempt) {
    if (!(*link)->Send(Bytes("after restart")).ok()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    delivered = router->Serve(/*echo=*/true, std::chrono::milliseconds(100)).has_value();
  }
  ASSERT_TRUE(delivered) << "nothing reached the restarted cloud in 5 s";
  EXPECT_EQ(Text((*link)->Receive(clock.NowUs() + 5'000'000)), "after restart");
  EXPECT_EQ((*link)->WireBytes(10), 12u);  // ZMTP: flags and a 1-byte size
}

TEST(ZmqLink, RefusesAMalformedEndpoint) {
  RealClock clock;
  auto link = ZmqLink::Create({.endpoint = "bogus://x"}, clock);
  ASSERT_FALSE(link.ok());
  EXPECT_NE(link.status().message().find("bogus"), std::string::npos);
}

}  // namespace
}  // namespace deepcut::transport
