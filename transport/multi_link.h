// CloudLink over several cloud replicas: one ZmqLink (DEALER) per address.
//
// Endpoints are given as a list; a `tcp://NAME:PORT` whose name resolves to
// several IPv4 addresses (a Kubernetes headless Service) becomes one replica
// per address, because ZeroMQ's own connect() would take only the first. Names
// are resolved again every `resolve_interval_s`, on Reconnect(), and when no
// replica is usable: replicas that appeared are added, those that vanished are
// dropped. Only the first resolution blocks (Create); the later ones run on
// a thread of their own, so a slow name server never holds up a frame.
//
// Each request goes to the next usable replica, round robin (a send a replica
// refuses, being unconnected, moves on to the next), so offloads spread over
// the replicas and skip a dead one at once. The link remembers which replica
// each request went to (by seq) until its reply comes:
//  - a replica whose connection drops (kill -9, a node gone) reports its
//    unanswered requests through TakeLost(), for the runtime to send again;
//  - a "draining" reply (the replica got SIGTERM) marks that replica unusable
//    until it has reconnected (a new process behind the address); when no
//    other replica is usable, as behind a single load-balancer address, its
//    socket is reopened at once so that the balancer picks another replica
//    (its unanswered requests are then reported lost).
//
// Behind a load balancer an edge's one connection stays on the replica it
// was given; with `rebalance_s` set, a connection that old (give or take a
// quarter, so that edges do not move together) is replaced, and the balancer
// places the new one anew: replicas added or restarted since get their share.
// The new connection is opened first and takes over once it is up and the old
// one has nothing out, so that no send finds the link without a connection.
//
// Thread-safety: none; one thread uses the link.
#pragma once

#include <functional>
#include <future>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "transport/cloud_link.h"
#include "transport/zmq_link.h"

namespace deepcut::transport {

// The IPv4 addresses a host name stands for (numeric hosts come back as they are).
using Resolver = std::function<Result<std::vector<std::string>>(const std::string& host)>;
Result<std::vector<std::string>> ResolveWithGetaddrinfo(const std::string& host);

// "tcp://a:1,tcp://b:2" split and checked: each entry tcp://HOST:PORT (port
// 1..65535), ipc://PATH or inproc://NAME; an empty or malformed entry is an
// error naming it.
Result<std::vector<std::string>> ParseEndpointList(const std::string& text);

struct MultiLinkOptions {
  std::vector<std::string> endpoints;  // ParseEndpointList's
  ZmqLinkOptions link;                 // every replica's options (endpoint ignored)
  double resolve_interval_s = 10.0;
  // A draining reply reopens a lone replica's socket at most this often.
  double reopen_interval_s = 0.1;
  double rebalance_s = 0.0;  // > 0: reopen connections about this old (above); 0: never
  Resolver resolve = ResolveWithGetaddrinfo;  // injected by tests
};

struct ReplicaState {
  std::string endpoint;  // tcp://ADDRESS:PORT
  bool connected = false;
  bool draining = false;
  int outstanding = 0;  // requests sent, no reply yet
  std::int64_t sent = 0;
};

struct MultiLinkCounters {
  std::int64_t lost = 0;        // requests reported by TakeLost
  std::int64_t draining = 0;    // draining replies seen
  std::int64_t reopened = 0;    // sockets reopened after a draining reply
  std::int64_t resolved = 0;    // name resolutions
  std::int64_t rebalanced = 0;  // connections reopened for their age
};

class MultiLink final : public CloudLink {
 public:
  // Fails with a message naming the entry when an endpoint is malformed or a
  // name does not resolve.
  static Result<std::unique_ptr<MultiLink>> Create(MultiLinkOptions options, Clock& clock);

  Status Send(std::span<const std::uint8_t> message) override;
  std::optional<std::vector<std::uint8_t>> Receive(TimeUs until_us) override;
  // Re-resolves and reopens every replica; what was out is dropped (not
  // reported lost: the caller reconnects because it goes unanswered).
  void Reconnect() override;
  std::size_t WireBytes(std::size_t message_bytes) const override;
  std::vector<std::uint16_t> TakeLost() override;

  std::vector<ReplicaState> replicas() const;
  const MultiLinkCounters& counters() const { return counters_; }

 private:
  struct Replica {
    std::string endpoint;
    std::unique_ptr<ZmqLink> link;
    int disconnects_seen = 0;
    bool draining = false;
    int drained_at_connection = 0;  // connections() when it said "draining"
    TimeUs reopened_us = -1;
    TimeUs rebalance_at_us = -1;         // with rebalance_s
    std::unique_ptr<ZmqLink> successor;  // the connection that takes over
    TimeUs successor_since_us = 0;
    std::map<std::uint16_t, TimeUs> outstanding;  // seq -> sent
    std::int64_t sent = 0;
  };
  MultiLink(MultiLinkOptions options, Clock& clock) : options_(std::move(options)), clock_(clock) {}
  // The replicas' endpoints: every name resolved (thread-safe: no member is touched).
  static Result<std::vector<std::string>> Addresses(const std::vector<std::string>& endpoints,
                                                    const Resolver& resolve);
  // Adds and drops replicas to match `wanted`.
  Status Apply(const std::vector<std::string>& wanted);
  // Starts resolving on a thread of its own (none if one is under way, or no
  // endpoint is a name); Update applies the result.
  void ResolveInBackground();
  Status AddReplica(const std::string& endpoint);
  bool Usable(Replica& r);
  // Reads each replica's monitor: a dropped connection loses its requests.
  void Update();
  void Lose(Replica& r);
  // When `r`'s connection is next due to be replaced for its age.
  void ScheduleRebalance(Replica& r);
  // Opens a successor when due; hands over to it once it is up and `r` is idle.
  void Rebalance(Replica& r);
  // Looks at a message from `r` before the runtime does.
  void Observe(Replica& r, const std::vector<std::uint8_t>& message);

  MultiLinkOptions options_;
  Clock& clock_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  size_t next_ = 0;  // round robin
  TimeUs next_resolve_us_ = 0;
  bool has_names_ = false;  // some endpoint is a name, not an address
  std::future<Result<std::vector<std::string>>> resolving_;
  std::vector<std::uint16_t> lost_;
  std::minstd_rand jitter_{std::random_device{}()};  // each edge its own
  MultiLinkCounters counters_;
};

}  // namespace deepcut::transport
