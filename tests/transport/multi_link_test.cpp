// MultiLink against bare ROUTERs standing in for cloud replicas: endpoint
// lists are checked, a name stands for every address it resolves to, sends
// spread round robin, a "draining" reply takes a replica out of the rotation,
// and a replica that drops its connection reports its unanswered requests lost.
#include "transport/multi_link.h"

#include <gtest/gtest.h>

#include <thread>

#include "transport/protocol.h"

namespace deepcut::transport {
namespace {

// A ROUTER that answers requests with a reply of a given status.
class Replica {
 public:
  explicit Replica(zmq::context_t& context) : socket_(context, zmq::socket_type::router) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind("tcp://127.0.0.1:*");
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
  }
  const std::string& endpoint() const { return endpoint_; }
  int port() const { return std::stoi(endpoint_.substr(endpoint_.rfind(':') + 1)); }
  // Receives one request (waits up to `wait`); answers it with `status` unless nullopt.
  std::optional<Request> Serve(std::optional<ReplyStatus> status,
                               std::chrono::milliseconds wait = std::chrono::milliseconds(2000)) {
    zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, wait);
    zmq::message_t identity, body;
    if (!socket_.recv(identity, zmq::recv_flags::dontwait)) return std::nullopt;
    (void)socket_.recv(body);
    auto request = DecodeRequest({body.data<std::uint8_t>(), body.size()});
    if (!request.ok()) return std::nullopt;
    if (status) {
      Reply reply{.seq = request->seq, .status = *status, .message = "x", .class_id = 1};
      if (*status == ReplyStatus::kOk) reply.message.clear();
      socket_.send(identity, zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(EncodeReply(reply)), zmq::send_flags::none);
    }
    return *request;
  }
  void Close() { socket_.close(); }

 private:
  zmq::socket_t socket_;
  std::string endpoint_;
};

std::vector<std::uint8_t> RequestBytes(std::uint16_t seq) {
  return EncodeRequest(Request{.seq = seq, .deadline_ms = 100, .payload = {1, 2, 3}});
}

// Sends until the link takes it (connections come up in the background).
bool SendSoon(MultiLink& link, std::uint16_t seq) {
  for (int i = 0; i < 500; ++i) {
    if (link.Send(RequestBytes(seq)).ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Until every replica is connected.
bool AllConnected(MultiLink& link, RealClock& clock) {
  for (int i = 0; i < 500; ++i) {
    (void)link.Receive(clock.NowUs() + 10'000);
    const auto replicas = link.replicas();
    if (std::all_of(replicas.begin(), replicas.end(), [](auto& r) { return r.connected; }))
      return true;
  }
  return false;
}

TEST(EndpointList, AcceptsListsAndNamesWhatIsWrong) {
  auto ok = ParseEndpointList("tcp://127.0.0.1:5555, tcp://cloud.local:6000,ipc:///tmp/c");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->size(), 3u);
  EXPECT_EQ((*ok)[1], "tcp://cloud.local:6000");
  for (const std::string bad :
       {"", "tcp://a:1,,tcp://b:2", "tcp://a", "tcp://a:0", "tcp://a:70000", "tcp://a:5x",
        "tcp://:5", "tcp://*:5", "udp://a:5", "tcp://a:1,tcp://a:1"}) {
    auto parsed = ParseEndpointList(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_NE(parsed.status().message().find("endpoint"), std::string::npos);
    }
  }
  auto second = ParseEndpointList("tcp://a:1,tcp://b");
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("endpoint 2 'tcp://b'"), std::string::npos)
      << second.status().message();
}

TEST(Resolve, LocalhostAndNumericAndUnknown) {
  auto local = ResolveWithGetaddrinfo("localhost");
  ASSERT_TRUE(local.ok()) << local.status().message();
  EXPECT_NE(std::find(local->begin(), local->end(), "127.0.0.1"), local->end());
  auto numeric = ResolveWithGetaddrinfo("10.1.2.3");
  ASSERT_TRUE(numeric.ok());
  EXPECT_EQ(*numeric, std::vector<std::string>{"10.1.2.3"});
  EXPECT_FALSE(ResolveWithGetaddrinfo("no-such-host.invalid").ok());
}

TEST(MultiLink, ANameStandsForEveryAddressAndIsResolvedAgain) {
  zmq::context_t context;
  Replica a(context);
  RealClock clock;
  // The name resolves to one address, later to two.
  std::vector<std::string> addresses{"127.0.0.1"};
  int resolutions = 0;
  MultiLinkOptions o{.endpoints = {"tcp://clouds.test:" + std::to_string(a.port())},
                     .resolve = [&](const std::string& host) -> Result<std::vector<std::string>> {
                       ++resolutions;
                       EXPECT_EQ(host, "clouds.test");
                       return addresses;
                     }};
  auto link = MultiLink::Create(o, clock);
  ASSERT_TRUE(link.ok()) << link.status().message();
  ASSERT_EQ((*link)->replicas().size(), 1u);
  addresses = {"127.0.0.1", "127.0.0.2"};
  (*link)->Reconnect();  // resolves again, on a thread of its own
  for (int i = 0; i < 200 && (*link)->replicas().size() < 2; ++i)
    (void)(*link)->Receive(clock.NowUs() + 10'000);
  const auto replicas = (*link)->replicas();
  ASSERT_EQ(replicas.size(), 2u);
  EXPECT_EQ(replicas[1].endpoint, "tcp://127.0.0.2:" + std::to_string(a.port()));
  EXPECT_EQ(resolutions, 2);
  // Later, the name stands for the second address only: the first is dropped.
  addresses = {"127.0.0.2"};
  (*link)->Reconnect();
  for (int i = 0; i < 200 && (*link)->replicas().size() > 1; ++i)
    (void)(*link)->Receive(clock.NowUs() + 10'000);
  ASSERT_EQ((*link)->replicas().size(), 1u);
  EXPECT_EQ((*link)->replicas()[0].endpoint, "tcp://127.0.0.2:" + std::to_string(a.port()));
  // A name that fails to resolve later keeps the replicas there are.
  addresses.clear();
  (*link)->Reconnect();
  for (int i = 0; i < 20; ++i) (void)(*link)->Receive(clock.NowUs() + 10'000);
  EXPECT_EQ((*link)->replicas().size(), 1u);
  // A name that stops resolving at start is an error naming the endpoint.
  o.resolve = [](const std::string&) -> Result<std::vector<std::string>> {
    return Unavailable("cannot resolve");
  };
  auto failed = MultiLink::Create(o, clock);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("tcp://clouds.test"), std::string::npos);
}

TEST(MultiLink, SpreadsRoundRobinAndSkipsADrainingReplica) {
  zmq::context_t context;
  Replica a(context), b(context);
  RealClock clock;
  auto link = MultiLink::Create({.endpoints = {a.endpoint(), b.endpoint()}}, clock);
  ASSERT_TRUE(link.ok()) << link.status().message();
  ASSERT_TRUE(AllConnected(**link, clock));
  for (std::uint16_t seq = 1; seq <= 4; ++seq) ASSERT_TRUE((*link)->Send(RequestBytes(seq)).ok());
  int at_a = 0, at_b = 0;
  while (a.Serve(ReplyStatus::kOk, std::chrono::milliseconds(200))) ++at_a;
  while (b.Serve(ReplyStatus::kOk, std::chrono::milliseconds(200))) ++at_b;
  EXPECT_EQ(at_a, 2);
  EXPECT_EQ(at_b, 2);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE((*link)->Receive(clock.NowUs() + 1'000'000));
  // a says "draining": everything goes to b from then on.
  ASSERT_TRUE((*link)->Send(RequestBytes(5)).ok());
  ASSERT_TRUE((*link)->Send(RequestBytes(6)).ok());
  Replica* first = a.Serve(ReplyStatus::kDraining, std::chrono::milliseconds(300)) ? &a : &b;
  if (first == &b) {
    ASSERT_TRUE(b.Serve(ReplyStatus::kDraining));
  }
  Replica& drained = *first;
  Replica& other = first == &a ? b : a;
  ASSERT_TRUE(other.Serve(ReplyStatus::kOk));
  int draining = 0;
  for (int i = 0; i < 2; ++i) {
    auto reply = (*link)->Receive(clock.NowUs() + 1'000'000);
    ASSERT_TRUE(reply);
    draining += DecodeReply(*reply)->status == ReplyStatus::kDraining;
  }
  EXPECT_EQ(draining, 1);
  EXPECT_EQ((*link)->counters().draining, 1);
  for (std::uint16_t seq = 7; seq <= 10; ++seq) ASSERT_TRUE((*link)->Send(RequestBytes(seq)).ok());
  int at_other = 0;
  while (other.Serve(ReplyStatus::kOk, std::chrono::milliseconds(200))) ++at_other;
  EXPECT_EQ(at_other, 4);
  EXPECT_FALSE(drained.Serve(ReplyStatus::kOk, std::chrono::milliseconds(100)));
  // Nothing was lost: every request was answered on its way.
  EXPECT_TRUE((*link)->TakeLost().empty());
}

TEST(MultiLink, AReplicaThatDropsTheConnectionReportsItsRequestsLost) {
  zmq::context_t context;
  auto a = std::make_unique<Replica>(context);
  Replica b(context);
  RealClock clock;
  auto link = MultiLink::Create({.endpoints = {a->endpoint(), b.endpoint()}}, clock);
  ASSERT_TRUE(link.ok());
  ASSERT_TRUE(AllConnected(**link, clock));
  ASSERT_TRUE((*link)->Send(RequestBytes(21)).ok());
  ASSERT_TRUE((*link)->Send(RequestBytes(22)).ok());
  // Each replica got one; a keeps its request unanswered and goes away.
  auto kept = a->Serve(std::nullopt);
  ASSERT_TRUE(kept);
  ASSERT_TRUE(b.Serve(ReplyStatus::kOk));
  a->Close();
  std::vector<std::uint16_t> lost;
  for (int i = 0; i < 300 && lost.empty(); ++i) {
    (void)(*link)->Receive(clock.NowUs() + 10'000);
    lost = (*link)->TakeLost();
  }
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0], kept->seq);
  // Sent again, it goes to the replica that is left.
  ASSERT_TRUE(SendSoon(**link, lost[0]));
  auto again = b.Serve(ReplyStatus::kOk);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->seq, kept->seq);
}

TEST(MultiLink, ALoneDrainingAddressIsReopened) {
  zmq::context_t context;
  Replica a(context);
  RealClock clock;
  auto link = MultiLink::Create({.endpoints = {a.endpoint()}}, clock);
  ASSERT_TRUE(link.ok());
  ASSERT_TRUE(SendSoon(**link, 31));
  ASSERT_TRUE(SendSoon(**link, 32));
  ASSERT_TRUE(a.Serve(std::nullopt));            // 31: admitted, not answered yet
  ASSERT_TRUE(a.Serve(ReplyStatus::kDraining));  // 32: draining
  auto reply = (*link)->Receive(clock.NowUs() + 1'000'000);
  ASSERT_TRUE(reply);
  EXPECT_EQ(DecodeReply(*reply)->status, ReplyStatus::kDraining);
  // With no other replica the socket is reopened (behind a load balancer, a new
  // connection reaches another replica): 31 will not be answered on it.
  EXPECT_EQ((*link)->counters().reopened, 1);
  EXPECT_EQ((*link)->TakeLost(), std::vector<std::uint16_t>{31});
  ASSERT_TRUE(SendSoon(**link, 31));
  ASSERT_TRUE(a.Serve(ReplyStatus::kOk));
}

}  // namespace
}  // namespace deepcut::transport

namespace deepcut::transport {
namespace {

// With rebalance_s, a connection that old is replaced by a new one (which a
// load balancer would place anew) once that is up and the old one is idle.
TEST(MultiLink, RebalancesAnOldIdleConnection) {
  zmq::context_t context;
  Replica a(context);
  RealClock clock;
  auto link = MultiLink::Create({.endpoints = {a.endpoint()}, .rebalance_s = 0.2}, clock);
  ASSERT_TRUE(link.ok());
  ASSERT_TRUE(SendSoon(**link, 41));
  ASSERT_TRUE(a.Serve(std::nullopt));  // 41 stays out
  const TimeUs until = clock.NowUs() + 600'000;
  while (clock.NowUs() < until) (void)(*link)->Receive(clock.NowUs() + 20'000);
  EXPECT_EQ((*link)->counters().rebalanced, 0);  // never while a request is out
  EXPECT_TRUE((*link)->TakeLost().empty());
  // Idle from here: replaced after 0.15-0.25 s, and it works again.
  (*link)->Reconnect();  // forgets 41
  const TimeUs later = clock.NowUs() + 1'000'000;
  while (clock.NowUs() < later && (*link)->counters().rebalanced == 0)
    (void)(*link)->Receive(clock.NowUs() + 20'000);
  EXPECT_GE((*link)->counters().rebalanced, 1);
  ASSERT_TRUE(SendSoon(**link, 42));
  auto again = a.Serve(ReplyStatus::kOk);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->seq, 42);
}

}  // namespace
}  // namespace deepcut::transport
