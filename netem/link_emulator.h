// deepcut-link's core: a ZeroMQ hop between edges and a cloud that delivers
// each message with the timing an emulated link allows, in real time.
//
// Edges' DEALERs connect to a ROUTER bound at `listen`; for each edge the
// emulator opens its own DEALER to the cloud, so the cloud still sees one peer
// per edge and its replies find their way back. A request is charged its ZMTP
// wire bytes (as the replay charges them) on the uplink LinkModel: a drop-tail
// FIFO drained at the trace's 1500-byte delivery opportunities, looped, plus a
// one-way delay. It is forwarded when the model says it has arrived, or lost
// if the queue had no room. Replies take the downlink model the same way.
// The trace's time zero is the first message from an edge (so a run lines up
// with a virtual-time replay of the same trace, whatever the start-up time),
// or the moment Create() returns.
//
// The emulator never answers anything itself: what the link loses, the edge
// must notice by its own deadlines, as it would on a real network.
//
// Thread-safety: Run() and stats() belong to one thread; Create() binds.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "core/clock.h"
#include "core/status.h"
#include "network/link_model.h"
#include "network/net_trace.h"

namespace deepcut::netem {

struct LinkEmulatorOptions {
  std::string listen = "tcp://127.0.0.1:5556";   // where edges connect
  std::string connect = "tcp://127.0.0.1:5555";  // the cloud
  network::LinkOptions uplink;                   // one-way delay and queue limit
  network::LinkOptions downlink;
  int max_edges = 1024;        // distinct edge identities served at once
  double idle_close_s = 30.0;  // a quiet edge's connection to the cloud is closed after this
  bool start_at_first_message = true;  // else the trace starts when Create() returns
  double stats_interval_s = 10.0;      // period of the info log line; 0: never
};

struct LinkStats {
  std::int64_t up_messages = 0, up_bytes = 0, up_dropped = 0;  // bytes: wire bytes accepted
  std::int64_t down_messages = 0, down_bytes = 0, down_dropped = 0;
  std::int64_t cloud_unreachable = 0;  // arrived at the far end while no cloud was connected
  std::int64_t edges_refused = 0;      // messages from identities beyond max_edges
  std::int64_t edges_closed = 0;       // connections closed after idle_close_s
};

class LinkEmulator {
 public:
  static Result<std::unique_ptr<LinkEmulator>> Create(LinkEmulatorOptions options,
                                                      network::NetTrace uplink,
                                                      network::NetTrace downlink, Clock& clock);
  ~LinkEmulator();
  LinkEmulator(const LinkEmulator&) = delete;
  LinkEmulator& operator=(const LinkEmulator&) = delete;

  // The endpoint edges connect to (a `*` port resolved).
  const std::string& endpoint() const { return endpoint_; }
  // Forwards until `stop` becomes true.
  void Run(const std::atomic<bool>& stop);
  const LinkStats& stats() const { return stats_; }

 private:
  struct InTransit {
    TimeUs arrives_us;  // on the emulator's clock
    std::string identity;
    zmq::message_t message;
  };
  LinkEmulator(LinkEmulatorOptions options, network::NetTrace uplink, network::NetTrace downlink,
               Clock& clock);
  Status Bind();
  // The DEALER that speaks to the cloud for `identity`, opened on first use.
  zmq::socket_t* CloudSocketFor(const std::string& identity, TimeUs now_us);
  void ReadFromEdges();
  void ReadFromCloud(const std::string& identity, zmq::socket_t& dealer);
  // Puts `body` into one direction of the emulated link; its wire bytes, or
  // nullopt if the queue had no room (the message is lost).
  std::optional<std::int64_t> Carry(network::LinkModel& model, std::deque<InTransit>& queue,
                                    const std::string& identity, zmq::message_t body,
                                    TimeUs now_us);
  // An edge that reconnects comes back with a new identity; the old one's
  // connection would otherwise stay open for ever.
  void CloseIdle(TimeUs now_us);
  void DeliverDue(TimeUs now_us);
  TimeUs TraceTime(TimeUs now_us) const { return now_us - start_us_; }
  void LogStats();

  LinkEmulatorOptions options_;
  Clock& clock_;
  network::LinkModel uplink_, downlink_;
  TimeUs start_us_ = -1;  // the trace's time zero on `clock_`; -1: not started
  zmq::context_t context_{1};
  std::unique_ptr<zmq::socket_t> router_;
  std::string endpoint_;
  struct Backend {
    std::unique_ptr<zmq::socket_t> dealer;  // towards the cloud, for one edge
    TimeUs last_active_us = 0;
    std::int64_t in_transit = 0;  // messages of this edge's inside the emulated link
    TimeUs opened_us = 0;
    // Arrived at the far end before this new connection to the cloud was up;
    // sent, in order, once it is (or lost after kConnectGraceUs).
    std::deque<zmq::message_t> waiting;
  };
  // Sends what waits for a fresh connection; counts what waited too long.
  void FlushWaiting(TimeUs now_us);
  std::map<std::string, Backend> backends_;  // by edge identity
  // FIFO links with a fixed delay deliver in sending order, so plain queues.
  std::deque<InTransit> up_, down_;
  LinkStats stats_;
};

}  // namespace deepcut::netem
