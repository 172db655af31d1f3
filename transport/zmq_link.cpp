#include "transport/zmq_link.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "transport/curve_keys.h"

namespace deepcut::transport {
namespace {

constexpr int kHandshakeFailedEvents = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                       ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                       ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
constexpr int kMonitoredEvents =
    kHandshakeFailedEvents | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED;
constexpr TimeUs kMonitorCheckPeriodUs = 20'000;
constexpr TimeUs kFailureLogPeriodUs = 60'000'000;

}  // namespace

ZmqLink::ZmqLink(ZmqLinkOptions options, Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

ZmqLink::~ZmqLink() {
  if (monitor_) monitor_->close();
  if (socket_) socket_->close();
}

Result<std::unique_ptr<ZmqLink>> ZmqLink::Create(ZmqLinkOptions options, Clock& clock) {
  const bool any_curve = !options.curve_server_key.empty() || !options.curve_public_key.empty() ||
                         !options.curve_secret_key.empty();
  if (any_curve) {
    if (options.curve_server_key.empty() || options.curve_public_key.empty() ||
        options.curve_secret_key.empty())
      return InvalidArgument("CURVE needs the cloud's public key and this edge's key pair");
    RETURN_IF_ERROR(RequireCurve());
    for (const auto* key :
         {&options.curve_server_key, &options.curve_public_key, &options.curve_secret_key})
      RETURN_IF_ERROR(CheckZ85Key(*key));
  }
  std::unique_ptr<ZmqLink> link(new ZmqLink(std::move(options), clock));
  RETURN_IF_ERROR(link->Open());
  return link;
}

Status ZmqLink::Open() {
  try {
    auto socket = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
    socket->set(zmq::sockopt::linger, 0);
    socket->set(zmq::sockopt::immediate, 1);
    socket->set(zmq::sockopt::sndhwm, options_.send_high_water_mark);
    socket->set(zmq::sockopt::reconnect_ivl, options_.reconnect_interval_ms);
    socket->set(zmq::sockopt::reconnect_ivl_max, options_.reconnect_interval_max_ms);
    if (!options_.curve_server_key.empty()) {
      socket->set(zmq::sockopt::curve_serverkey, options_.curve_server_key);
      socket->set(zmq::sockopt::curve_publickey, options_.curve_public_key);
      socket->set(zmq::sockopt::curve_secretkey, options_.curve_secret_key);
    }
    // Watch for refused handshakes before the first connection attempt.
    const std::string monitor_endpoint =
        "inproc://deepcut-link-monitor-" + std::to_string(monitor_serial_++);
    if (zmq_socket_monitor(socket->handle(), monitor_endpoint.c_str(), kMonitoredEvents) != 0)
      throw zmq::error_t();
    auto monitor = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::pair);
    monitor->set(zmq::sockopt::linger, 0);
    monitor->connect(monitor_endpoint);
    socket->connect(options_.endpoint);
    socket_ = std::move(socket);
    monitor_ = std::move(monitor);
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    return InvalidArgument("cannot connect to cloud endpoint '" + options_.endpoint +
                           "': " + e.what());
  }
}

void ZmqLink::CheckHandshake() {
  const TimeUs now = clock_.NowUs();
  if (retry_at_us_ >= 0 && now >= retry_at_us_) {
    Reconnect();
    return;
  }
  if (!monitor_ || now < next_monitor_check_us_) return;
  next_monitor_check_us_ = now + kMonitorCheckPeriodUs;
  try {
    zmq::message_t event, address;
    while (monitor_->recv(event, zmq::recv_flags::dontwait)) {
      // Two frames: event id (uint16) and value (uint32), then the endpoint.
      if (event.more()) (void)monitor_->recv(address);
      if (event.size() < 6) continue;
      std::uint16_t id;
      std::uint32_t value;
      std::memcpy(&id, event.data(), sizeof id);
      std::memcpy(&value, event.data<std::uint8_t>() + 2, sizeof value);
      if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        ++connections_;
        connected_ = true;
        continue;
      }
      if (id == ZMQ_EVENT_DISCONNECTED) {
        ++disconnects_;
        connected_ = false;
        continue;
      }
      if (retry_at_us_ < 0)
        retry_at_us_ = now + TimeUs{options_.handshake_retry_interval_ms} * 1000;
      if (failure_logged_ && now - failure_logged_us_ < kFailureLogPeriodUs) continue;
      failure_logged_ = true;
      failure_logged_us_ = now;
      std::string why;
      if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        why = "the cloud refused this edge's CURVE key (ZAP status " + std::to_string(value) + ")";
      else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)  // the value is an errno
        why = std::string("handshake failed: ") + std::strerror(static_cast<int>(value)) +
              (options_.curve_server_key.empty() ? "" : " (is --cloud-key the cloud's key?)");
      else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        why = "security mechanism mismatch (CURVE on one side only)";
      else
        why = fmt::format("handshake protocol error 0x{:x}", value);
      spdlog::warn("cloud {}: {}; answering locally, retrying every {} ms", options_.endpoint, why,
                   options_.handshake_retry_interval_ms);
    }
  } catch (const zmq::error_t&) {
    // A broken monitor only costs the retry; the link itself is unaffected.
  }
}

Status ZmqLink::Send(std::span<const std::uint8_t> message) {
  CheckHandshake();
  if (!socket_) return Unavailable("no socket");
  try {
    auto sent =
        socket_->send(zmq::const_buffer(message.data(), message.size()), zmq::send_flags::dontwait);
    if (!sent) return Unavailable("no cloud connected (or send queue full)");
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    return Unavailable(std::string("send failed: ") + e.what());
  }
}

std::optional<std::vector<std::uint8_t>> ZmqLink::TryReceive() {
  CheckHandshake();
  if (!socket_) return std::nullopt;
  try {
    zmq::message_t msg;
    if (socket_->recv(msg, zmq::recv_flags::dontwait))
      return std::vector<std::uint8_t>(msg.data<std::uint8_t>(),
                                       msg.data<std::uint8_t>() + msg.size());
  } catch (const zmq::error_t&) {
  }
  return std::nullopt;
}

zmq::pollitem_t ZmqLink::PollItem() {
  return {socket_ ? static_cast<void*>(*socket_) : nullptr, 0, ZMQ_POLLIN, 0};
}

std::optional<std::vector<std::uint8_t>> ZmqLink::Receive(TimeUs until_us) {
  if (auto message = TryReceive()) return message;
  const TimeUs wait_us = until_us - clock_.NowUs();
  if (!socket_ || wait_us <= 0) return std::nullopt;
  try {
    zmq::pollitem_t item = PollItem();
    // Round up so a sub-millisecond wait still waits instead of spinning.
    zmq::poll(&item, 1, std::chrono::milliseconds((wait_us + 999) / 1000));
  } catch (const zmq::error_t&) {
    // A broken socket reads as "nothing arrived"; the runtime's deadlines
    // handle it and Reconnect() replaces the socket.
    return std::nullopt;
  }
  return TryReceive();
}

void ZmqLink::Reconnect() {
  retry_at_us_ = -1;
  if (monitor_) monitor_->close();
  monitor_.reset();
  if (socket_) socket_->close();
  socket_.reset();
  if (connected_) ++disconnects_;  // the old socket's connection is gone with it
  connected_ = false;
  (void)Open();  // the endpoint was valid at Create, so this only fails if ZeroMQ is shutting down
}

}  // namespace deepcut::transport
