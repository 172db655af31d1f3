#include "netem/link_emulator.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "transport/cloud_link.h"

namespace deepcut::netem {

namespace {

// A new connection to the cloud gets this long to come up (loopback: well
// under a millisecond) before what waits for it counts as unreachable.
constexpr TimeUs kConnectGraceUs = 1'000'000;

std::string ToString(const zmq::message_t& m) { return {m.data<char>(), m.size()}; }

}  // namespace

LinkEmulator::LinkEmulator(LinkEmulatorOptions options, network::NetTrace uplink,
                           network::NetTrace downlink, Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      uplink_(std::move(uplink), options_.uplink),
      downlink_(std::move(downlink), options_.downlink) {}

LinkEmulator::~LinkEmulator() {
  for (auto& [id, b] : backends_) b.dealer->close();
  if (router_) router_->close();
}

Result<std::unique_ptr<LinkEmulator>> LinkEmulator::Create(LinkEmulatorOptions options,
                                                           network::NetTrace uplink,
                                                           network::NetTrace downlink,
                                                           Clock& clock) {
  if (options.max_edges < 1) return InvalidArgument("max_edges must be at least 1");
  if (options.uplink.delay_ms < 0 || options.downlink.delay_ms < 0)
    return InvalidArgument("the one-way delay must not be negative");
  if (options.uplink.queue_bytes < network::kPacketBytes ||
      options.downlink.queue_bytes < network::kPacketBytes)
    return InvalidArgument("the queue must hold at least one 1500-byte packet");
  std::unique_ptr<LinkEmulator> link(
      new LinkEmulator(std::move(options), std::move(uplink), std::move(downlink), clock));
  RETURN_IF_ERROR(link->Bind());
  if (!link->options_.start_at_first_message) link->start_us_ = clock.NowUs();
  return link;
}

Status LinkEmulator::Bind() {
  try {
    // The cloud endpoint is checked now, not at the first message.
    zmq::socket_t probe(context_, zmq::socket_type::dealer);
    probe.set(zmq::sockopt::linger, 0);
    probe.connect(options_.connect);
  } catch (const zmq::error_t& e) {
    return InvalidArgument("cannot connect to '" + options_.connect + "': " + e.what());
  }
  try {
    router_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::router);
    router_->set(zmq::sockopt::linger, 0);
    router_->bind(options_.listen);
    endpoint_ = router_->get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return InvalidArgument("cannot listen on '" + options_.listen + "': " + e.what());
  }
  return Status::Ok();
}

zmq::socket_t* LinkEmulator::CloudSocketFor(const std::string& identity, TimeUs now_us) {
  if (auto it = backends_.find(identity); it != backends_.end()) {
    it->second.last_active_us = now_us;
    return it->second.dealer.get();
  }
  if (static_cast<int>(backends_.size()) >= options_.max_edges) return nullptr;
  auto dealer = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
  dealer->set(zmq::sockopt::linger, 0);
  // While no cloud is connected a send fails at once, and the message is lost
  // here as it would be on the way to a dead server.
  dealer->set(zmq::sockopt::immediate, 1);
  dealer->set(zmq::sockopt::reconnect_ivl, 100);
  dealer->set(zmq::sockopt::reconnect_ivl_max, 1000);
  dealer->connect(options_.connect);
  auto& b = backends_[identity];
  b.dealer = std::move(dealer);
  b.last_active_us = now_us;
  b.opened_us = now_us;
  return b.dealer.get();
}

void LinkEmulator::CloseIdle(TimeUs now_us) {
  const auto idle_us = static_cast<TimeUs>(options_.idle_close_s * 1e6);
  for (auto it = backends_.begin(); it != backends_.end();) {
    if (it->second.in_transit == 0 && it->second.waiting.empty() &&
        now_us - it->second.last_active_us > idle_us) {
      it->second.dealer->close();
      it = backends_.erase(it);
      ++stats_.edges_closed;
    } else {
      ++it;
    }
  }
}

void LinkEmulator::ReadFromEdges() {
  while (true) {
    zmq::message_t identity, body;
    if (!router_->recv(identity, zmq::recv_flags::dontwait)) return;
    // A DEALER sends one frame; anything after it is not ours to forward.
    bool more = router_->get(zmq::sockopt::rcvmore);
    if (!more) continue;
    (void)router_->recv(body, zmq::recv_flags::none);
    while (router_->get(zmq::sockopt::rcvmore)) {
      zmq::message_t extra;
      (void)router_->recv(extra, zmq::recv_flags::none);
    }
    const std::string id = ToString(identity);
    const TimeUs now = clock_.NowUs();
    // Connect towards the cloud at once, so the connection is up by the time
    // the message has crossed the emulated link.
    if (!CloudSocketFor(id, now)) {
      ++stats_.edges_refused;
      continue;
    }
    if (start_us_ < 0) start_us_ = now;
    if (auto wire = Carry(uplink_, up_, id, std::move(body), now)) {
      ++stats_.up_messages;
      stats_.up_bytes += *wire;
    } else {
      ++stats_.up_dropped;
    }
  }
}

void LinkEmulator::ReadFromCloud(const std::string& identity, zmq::socket_t& dealer) {
  while (true) {
    zmq::message_t body;
    if (!dealer.recv(body, zmq::recv_flags::dontwait)) return;
    if (auto wire = Carry(downlink_, down_, identity, std::move(body), clock_.NowUs())) {
      ++stats_.down_messages;
      stats_.down_bytes += *wire;
    } else {
      ++stats_.down_dropped;
    }
  }
}

std::optional<std::int64_t> LinkEmulator::Carry(network::LinkModel& model,
                                                std::deque<InTransit>& queue,
                                                const std::string& identity, zmq::message_t body,
                                                TimeUs now_us) {
  const auto wire = static_cast<std::int64_t>(transport::ZmtpFrameBytes(body.size()));
  auto arrives = model.Send(TraceTime(now_us), wire);
  if (!arrives) return std::nullopt;
  ++backends_[identity].in_transit;
  queue.push_back({*arrives + start_us_, identity, std::move(body)});
  return wire;
}

void LinkEmulator::DeliverDue(TimeUs now_us) {
  while (!up_.empty() && up_.front().arrives_us <= now_us) {
    InTransit m = std::move(up_.front());
    up_.pop_front();
    auto& b = backends_.at(m.identity);  // kept while it has messages in transit
    --b.in_transit;
    b.last_active_us = now_us;
    if (!b.waiting.empty() || !b.dealer->send(m.message, zmq::send_flags::dontwait)) {
      // ZMQ_IMMEDIATE refuses while the connection is not up: normal for a
      // moment after a new edge appears, a dead cloud after that.
      if (now_us - b.opened_us < kConnectGraceUs)
        b.waiting.push_back(std::move(m.message));
      else
        ++stats_.cloud_unreachable;
    }
  }
  while (!down_.empty() && down_.front().arrives_us <= now_us) {
    InTransit m = std::move(down_.front());
    down_.pop_front();
    if (auto it = backends_.find(m.identity); it != backends_.end()) --it->second.in_transit;
    // A ROUTER drops a message for an edge that has gone: nothing to do.
    (void)router_->send(zmq::buffer(m.identity), zmq::send_flags::sndmore);
    (void)router_->send(m.message, zmq::send_flags::dontwait);
  }
}

void LinkEmulator::FlushWaiting(TimeUs now_us) {
  for (auto& [id, b] : backends_) {
    while (!b.waiting.empty() && b.dealer->send(b.waiting.front(), zmq::send_flags::dontwait))
      b.waiting.pop_front();
    if (!b.waiting.empty() && now_us - b.opened_us >= kConnectGraceUs) {
      stats_.cloud_unreachable += static_cast<std::int64_t>(b.waiting.size());
      b.waiting.clear();
    }
  }
}

void LinkEmulator::LogStats() {
  const auto& s = stats_;
  spdlog::info(
      "uplink {} msgs {} B ({} lost in the queue), downlink {} msgs {} B ({} lost), {} with no "
      "cloud, {} edges",
      s.up_messages, s.up_bytes, s.up_dropped, s.down_messages, s.down_bytes, s.down_dropped,
      s.cloud_unreachable, backends_.size());
}

void LinkEmulator::Run(const std::atomic<bool>& stop) {
  const TimeUs stats_every =
      options_.stats_interval_s > 0 ? static_cast<TimeUs>(options_.stats_interval_s * 1e6) : 0;
  TimeUs next_stats = clock_.NowUs() + stats_every;
  TimeUs next_idle_check = clock_.NowUs() + 1'000'000;
  std::vector<zmq::pollitem_t> items;
  std::vector<std::pair<const std::string*, zmq::socket_t*>> polled;
  while (!stop.load()) {
    items.clear();
    polled.clear();
    items.push_back({static_cast<void*>(*router_), 0, ZMQ_POLLIN, 0});
    for (auto& [id, b] : backends_) {
      items.push_back({static_cast<void*>(*b.dealer), 0, ZMQ_POLLIN, 0});
      polled.emplace_back(&id, b.dealer.get());
    }
    TimeUs now = clock_.NowUs();
    // Wake for the next delivery, but at least every 100 ms to see `stop`.
    TimeUs wake = now + 100'000;
    // Poll again soon while messages wait for a fresh connection.
    for (const auto& [id, b] : backends_)
      if (!b.waiting.empty()) wake = std::min(wake, now + 1'000);
    if (!up_.empty()) wake = std::min(wake, up_.front().arrives_us);
    if (!down_.empty()) wake = std::min(wake, down_.front().arrives_us);
    const auto timeout_us = std::max<TimeUs>(0, wake - now);
    // zmq_poll has millisecond resolution; sleep the sub-millisecond rest
    // rather than spin, and deliver within a millisecond of the due time.
    try {
      zmq::poll(items, std::chrono::milliseconds((timeout_us + 999) / 1000));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      throw;
    }
    // Replies first: reading the edges may open backends (not erase any).
    for (std::size_t i = 1; i < items.size(); ++i)
      if (items[i].revents & ZMQ_POLLIN) ReadFromCloud(*polled[i - 1].first, *polled[i - 1].second);
    if (items[0].revents & ZMQ_POLLIN) ReadFromEdges();
    now = clock_.NowUs();
    FlushWaiting(now);
    DeliverDue(now);
    if (now >= next_idle_check) {
      CloseIdle(now);
      next_idle_check = now + 1'000'000;
    }
    if (stats_every && now >= next_stats) {
      LogStats();
      next_stats = now + stats_every;
    }
  }
  LogStats();
}

}  // namespace deepcut::netem
