// CloudLink over a ZeroMQ DEALER socket connected to a deepcut-cloud ROUTER.
//
// ZMQ_IMMEDIATE makes a send fail at once while no cloud is connected (instead
// of queueing towards a peer that may never come), so the edge answers locally
// meanwhile; ZeroMQ reconnects by itself when the cloud comes back. Reconnect()
// is the "Lazy Pirate" step: close with linger 0 and open a fresh socket, which
// drops requests stuck on a dead connection.
//
// With CURVE keys (docs/protocol.md, "Encryption and authentication") the
// socket is a CURVE client: the connection counts as up only once the cloud
// has accepted the handshake, so an edge whose key the cloud refuses (or a
// plaintext edge against a CURVE cloud, or the reverse) sees "no cloud
// connected" and answers locally. Reconnect() keeps the keys.
//
// libzmq does not retry a handshake that failed on authentication or on a
// mechanism mismatch (only a dropped connection), so a socket monitor watches
// for that; the link then logs it (at most once a minute) and opens a fresh
// socket `handshake_retry_interval_ms` later, so that the edge gets in once the
// cloud accepts its key, without a restart.
//
// The same monitor counts the connections made and lost (connections(),
// disconnects()), which is how MultiLink (transport/multi_link.h) learns that
// a replica went away with requests on it, or came back as a new process.
//
// Thread-safety: none; one thread uses the link (it owns the sockets).
#pragma once

#include <memory>
#include <string>
#include <zmq.hpp>

#include "transport/cloud_link.h"

namespace deepcut::transport {

struct ZmqLinkOptions {
  std::string endpoint;            // e.g. tcp://127.0.0.1:5555
  int send_high_water_mark = 256;  // messages queued towards the cloud before Send refuses
  // ZeroMQ's first reconnect delay: short, so that a connection a load
  // balancer closed (its replica gone) is replaced before the next frame.
  int reconnect_interval_ms = 10;
  int reconnect_interval_max_ms = 1000;
  // After a refused handshake, wait this long before trying again.
  int handshake_retry_interval_ms = 2000;
  // CURVE, all Z85 (40 characters): the cloud's public key and this edge's key
  // pair. All empty: plaintext. All three or none.
  std::string curve_server_key;
  std::string curve_public_key;
  std::string curve_secret_key;
};

class ZmqLink final : public CloudLink {
 public:
  // Fails if the endpoint or a CURVE key is malformed, or if CURVE keys are
  // given and libzmq lacks CURVE.
  static Result<std::unique_ptr<ZmqLink>> Create(ZmqLinkOptions options, Clock& clock);
  ~ZmqLink() override;

  Status Send(std::span<const std::uint8_t> message) override;
  std::optional<std::vector<std::uint8_t>> Receive(TimeUs until_us) override;
  void Reconnect() override;
  // Without waiting: a message if one is there (MultiLink polls several links).
  std::optional<std::vector<std::uint8_t>> TryReceive();
  // The socket, for zmq::poll over several links (changes on Reconnect).
  zmq::pollitem_t PollItem();
  // Reads the socket monitor now (else at most every few ms in Send/Receive).
  void Update() { CheckHandshake(); }
  // Handshakes completed, and connections lost, since Create (not reset by Reconnect).
  int connections() const { return connections_; }
  int disconnects() const { return disconnects_; }
  bool connected() const { return connected_; }
  const std::string& endpoint() const { return options_.endpoint; }
  std::size_t WireBytes(std::size_t message_bytes) const override {
    return ZmtpFrameBytes(message_bytes +
                          (options_.curve_server_key.empty() ? 0 : kCurveMessageOverheadBytes));
  }
  // CURVE sends each message as a MESSAGE command: name (8 bytes), nonce (8),
  // the encrypted flags byte (1) and the MAC (16) around the message.
  static constexpr std::size_t kCurveMessageOverheadBytes = 33;

 private:
  ZmqLink(ZmqLinkOptions options, Clock& clock);
  Status Open();
  // Reads the monitor (at most every few ms); replaces the socket when a
  // refused handshake's retry is due.
  void CheckHandshake();
  ZmqLinkOptions options_;
  Clock& clock_;
  zmq::context_t context_{1};
  std::unique_ptr<zmq::socket_t> socket_;
  std::unique_ptr<zmq::socket_t> monitor_;  // PAIR: socket_'s failed handshakes
  int monitor_serial_ = 0;                  // one inproc endpoint per monitored socket
  TimeUs next_monitor_check_us_ = 0;
  TimeUs retry_at_us_ = -1;  // when to open a fresh socket; -1: no refused handshake
  bool failure_logged_ = false;
  int connections_ = 0, disconnects_ = 0;
  bool connected_ = false;
  TimeUs failure_logged_us_ = 0;
};

}  // namespace deepcut::transport
