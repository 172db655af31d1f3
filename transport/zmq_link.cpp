#include "transport/zmq_link.h"

#include <algorithm>

namespace deepcut::transport {

ZmqLink::ZmqLink(ZmqLinkOptions options, Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

ZmqLink::~ZmqLink() {
  if (socket_) socket_->close();
}

Result<std::unique_ptr<ZmqLink>> ZmqLink::Create(ZmqLinkOptions options, Clock& clock) {
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
    socket->connect(options_.endpoint);
    socket_ = std::move(socket);
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    return InvalidArgument("cannot connect to cloud endpoint '" + options_.endpoint +
                           "': " + e.what());
  }
}

Status ZmqLink::Send(std::span<const std::uint8_t> message) {
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

std::optional<std::vector<std::uint8_t>> ZmqLink::Receive(TimeUs until_us) {
  if (!socket_) return std::nullopt;
  try {
    zmq::message_t msg;
    if (socket_->recv(msg, zmq::recv_flags::dontwait))
      return std::vector<std::uint8_t>(msg.data<std::uint8_t>(),
                                       msg.data<std::uint8_t>() + msg.size());
    TimeUs wait_us = until_us - clock_.NowUs();
    if (wait_us <= 0) return std::nullopt;
    zmq::pollitem_t item{static_cast<void*>(*socket_), 0, ZMQ_POLLIN, 0};
    // Round up so a sub-millisecond wait still waits instead of spinning.
    long timeout_ms = static_cast<long>((wait_us + 999) / 1000);
    zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms));
    if (socket_->recv(msg, zmq::recv_flags::dontwait))
      return std::vector<std::uint8_t>(msg.data<std::uint8_t>(),
                                       msg.data<std::uint8_t>() + msg.size());
  } catch (const zmq::error_t&) {
    // A broken socket reads as "nothing arrived"; the runtime's deadlines
    // handle it and Reconnect() replaces the socket.
  }
  return std::nullopt;
}

void ZmqLink::Reconnect() {
  if (socket_) socket_->close();
  socket_.reset();
  (void)Open();  // the endpoint was valid at Create, so this only fails if ZeroMQ is shutting down
}

}  // namespace deepcut::transport
