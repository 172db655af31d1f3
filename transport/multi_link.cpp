#include "transport/multi_link.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "transport/protocol.h"

namespace deepcut::transport {
namespace {

// A request unanswered this long is forgotten (its frame was answered locally long ago).
constexpr TimeUs kForgetAfterUs = 60'000'000;
constexpr TimeUs kPollSliceUs = 20'000;  // monitors are read at least this often while waiting

struct TcpEndpoint {
  std::string host;
  std::string port;
};

std::optional<TcpEndpoint> SplitTcp(const std::string& endpoint) {
  if (endpoint.rfind("tcp://", 0) != 0) return std::nullopt;
  const std::string rest = endpoint.substr(6);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  return TcpEndpoint{rest.substr(0, colon), rest.substr(colon + 1)};
}

bool IsIpv4(const std::string& host) {
  in_addr parsed{};
  return inet_pton(AF_INET, host.c_str(), &parsed) == 1;
}

}  // namespace

Result<std::vector<std::string>> ResolveWithGetaddrinfo(const std::string& host) {
  if (IsIpv4(host)) return std::vector<std::string>{host};
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0)
    return Unavailable("cannot resolve '" + host + "': " + gai_strerror(rc));
  std::set<std::string> addresses;
  for (addrinfo* a = found; a; a = a->ai_next) {
    char text[INET_ADDRSTRLEN] = {};
    const auto* in = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
    if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof text)) addresses.insert(text);
  }
  freeaddrinfo(found);
  if (addresses.empty()) return Unavailable("'" + host + "' has no IPv4 address");
  return std::vector<std::string>(addresses.begin(), addresses.end());
}

Result<std::vector<std::string>> ParseEndpointList(const std::string& text) {
  std::vector<std::string> endpoints;
  size_t start = 0;
  for (int entry = 1;; ++entry) {
    const size_t comma = text.find(',', start);
    std::string e =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    e.erase(0, e.find_first_not_of(" \t"));
    e.erase(e.find_last_not_of(" \t") + 1);
    const std::string where = "endpoint " + std::to_string(entry) + " '" + e + "'";
    if (e.empty()) return InvalidArgument(where + " is empty");
    if (auto tcp = SplitTcp(e)) {
      int port = 0;
      auto [end, error] =
          std::from_chars(tcp->port.data(), tcp->port.data() + tcp->port.size(), port);
      if (tcp->host.empty() || tcp->host == "*")
        return InvalidArgument(where + ": no host to connect to");
      if (error != std::errc() || end != tcp->port.data() + tcp->port.size() || port < 1 ||
          port > 65535)
        return InvalidArgument(where + ": the port must be a number 1..65535");
    } else if (!((e.rfind("ipc://", 0) == 0 && e.size() > 6) ||
                 (e.rfind("inproc://", 0) == 0 && e.size() > 9))) {
      return InvalidArgument(where + ": expected tcp://HOST:PORT, ipc://PATH or inproc://NAME");
    }
    if (std::find(endpoints.begin(), endpoints.end(), e) != endpoints.end())
      return InvalidArgument(where + " is given twice");
    endpoints.push_back(e);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return endpoints;
}

Result<std::unique_ptr<MultiLink>> MultiLink::Create(MultiLinkOptions options, Clock& clock) {
  if (options.endpoints.empty()) return InvalidArgument("no cloud endpoint");
  if (!options.resolve) return InvalidArgument("no resolver");
  std::unique_ptr<MultiLink> link(new MultiLink(std::move(options), clock));
  for (const auto& e : link->options_.endpoints)
    if (auto tcp = SplitTcp(e); tcp && !IsIpv4(tcp->host)) link->has_names_ = true;
  ASSIGN_OR_RETURN(auto wanted, Addresses(link->options_.endpoints, link->options_.resolve));
  RETURN_IF_ERROR(link->Apply(wanted));
  link->next_resolve_us_ =
      clock.NowUs() + static_cast<TimeUs>(link->options_.resolve_interval_s * 1e6);
  return link;
}

Status MultiLink::AddReplica(const std::string& endpoint) {
  ZmqLinkOptions o = options_.link;
  o.endpoint = endpoint;
  ASSIGN_OR_RETURN(auto zmq_link, ZmqLink::Create(o, clock_));
  auto r = std::make_unique<Replica>();
  r->endpoint = endpoint;
  r->link = std::move(zmq_link);
  ScheduleRebalance(*r);
  replicas_.push_back(std::move(r));
  return Status::Ok();
}

Result<std::vector<std::string>> MultiLink::Addresses(const std::vector<std::string>& endpoints,
                                                      const Resolver& resolve) {
  std::vector<std::string> wanted;
  for (const auto& e : endpoints) {
    const auto tcp = SplitTcp(e);
    if (!tcp || IsIpv4(tcp->host)) {
      wanted.push_back(e);
      continue;
    }
    auto addresses = resolve(tcp->host);
    if (!addresses.ok())
      return Status(addresses.status().code(), e + ": " + addresses.status().message());
    for (const auto& a : *addresses) wanted.push_back("tcp://" + a + ":" + tcp->port);
  }
  if (wanted.empty()) return Unavailable("no cloud replica: every endpoint resolved to nothing");
  return wanted;
}

Status MultiLink::Apply(const std::vector<std::string>& wanted) {
  ++counters_.resolved;
  // Replicas whose address is gone are dropped (their requests lost), new ones added.
  for (auto it = replicas_.begin(); it != replicas_.end();) {
    if (std::find(wanted.begin(), wanted.end(), (*it)->endpoint) != wanted.end()) {
      ++it;
      continue;
    }
    spdlog::info("cloud replica {} is gone from the name's addresses", (*it)->endpoint);
    Lose(**it);
    it = replicas_.erase(it);
  }
  for (const auto& e : wanted) {
    const bool known = std::any_of(replicas_.begin(), replicas_.end(),
                                   [&](const auto& r) { return r->endpoint == e; });
    if (known) continue;
    RETURN_IF_ERROR(AddReplica(e));
    if (counters_.resolved > 1) spdlog::info("cloud replica {} added", e);
  }
  next_ = 0;
  return Status::Ok();
}

void MultiLink::ResolveInBackground() {
  next_resolve_us_ = clock_.NowUs() + static_cast<TimeUs>(options_.resolve_interval_s * 1e6);
  if (!has_names_ || resolving_.valid()) return;
  resolving_ =
      std::async(std::launch::async, [endpoints = options_.endpoints, resolve = options_.resolve] {
        return Addresses(endpoints, resolve);
      });
}

bool MultiLink::Usable(Replica& r) {
  // A replica that said "draining" is used again once it has reconnected: that
  // is a new process behind its address.
  if (r.draining && r.link->connections() != r.drained_at_connection) r.draining = false;
  return !r.draining;
}

void MultiLink::Lose(Replica& r) {
  for (const auto& [seq, sent_us] : r.outstanding) lost_.push_back(seq);
  r.outstanding.clear();
}

void MultiLink::ScheduleRebalance(Replica& r) {
  if (options_.rebalance_s <= 0) return;
  const double factor = std::uniform_real_distribution<double>(0.75, 1.25)(jitter_);
  r.rebalance_at_us = clock_.NowUs() + static_cast<TimeUs>(options_.rebalance_s * factor * 1e6);
}

void MultiLink::Rebalance(Replica& r) {
  if (r.rebalance_at_us < 0) return;
  const TimeUs now = clock_.NowUs();
  if (!r.successor) {
    if (now < r.rebalance_at_us || !r.link->connected()) return;
    ZmqLinkOptions o = options_.link;
    o.endpoint = r.endpoint;
    auto successor = ZmqLink::Create(o, clock_);
    if (!successor.ok()) return ScheduleRebalance(r);
    r.successor = std::move(*successor);
    r.successor_since_us = now;
    return;
  }
  r.successor->Update();
  if (r.successor->connected() && r.outstanding.empty()) {
    r.link = std::move(r.successor);
    r.disconnects_seen = r.link->disconnects();
    r.draining = false;
    ScheduleRebalance(r);
    ++counters_.rebalanced;
  } else if (now - r.successor_since_us > 5'000'000) {
    r.successor.reset();  // it did not come up (or the old one never went idle): later
    ScheduleRebalance(r);
  }
}

void MultiLink::Update() {
  const TimeUs now = clock_.NowUs();
  for (auto& r : replicas_) {
    r->link->Update();
    Rebalance(*r);
    if (r->link->disconnects() != r->disconnects_seen) {
      r->disconnects_seen = r->link->disconnects();
      if (!r->outstanding.empty())
        spdlog::info("cloud replica {} dropped the connection with {} request(s) out", r->endpoint,
                     r->outstanding.size());
      Lose(*r);
    }
    while (!r->outstanding.empty() && now - r->outstanding.begin()->second > kForgetAfterUs)
      r->outstanding.erase(r->outstanding.begin());
  }
  if (resolving_.valid() &&
      resolving_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    auto wanted = resolving_.get();
    const Status applied = wanted.ok() ? Apply(*wanted) : wanted.status();
    if (!applied.ok())
      spdlog::warn("re-resolving the cloud: {}; keeping {} replica(s)", applied.message(),
                   replicas_.size());
  }
  if (now >= next_resolve_us_) ResolveInBackground();
}

void MultiLink::Observe(Replica& r, const std::vector<std::uint8_t>& message) {
  if (PeekKind(message) != kKindReply) return;
  auto reply = DecodeReply(message);
  if (!reply.ok()) return;  // the runtime counts it
  r.outstanding.erase(reply->seq);
  if (reply->status != ReplyStatus::kDraining) return;
  ++counters_.draining;
  if (!r.draining) spdlog::info("cloud replica {} is draining; sending elsewhere", r.endpoint);
  r.draining = true;
  r.drained_at_connection = r.link->connections();
  const bool other = std::any_of(replicas_.begin(), replicas_.end(), [&](auto& o) {
    return o.get() != &r && Usable(*o) && o->link->connected();
  });
  const TimeUs now = clock_.NowUs();
  if (other || (r.reopened_us >= 0 &&
                now - r.reopened_us < static_cast<TimeUs>(options_.reopen_interval_s * 1e6)))
    return;
  // A lone address (a load balancer): a new connection reaches another replica.
  Lose(r);
  r.link->Reconnect();
  r.disconnects_seen = r.link->disconnects();
  r.draining = false;
  r.reopened_us = now;
  ++counters_.reopened;
}

Status MultiLink::Send(std::span<const std::uint8_t> message) {
  Update();
  int seq = -1;  // requests are tracked by seq; harvest chunks are not
  if (PeekKind(message) == kKindRequest)
    if (auto peeked = PeekRequestSeq(message)) seq = *peeked;
  const size_t n = replicas_.size();
  for (size_t i = 0; i < n; ++i) {
    const size_t at = (next_ + i) % n;
    Replica& r = *replicas_[at];
    if (!Usable(r) || !r.link->Send(message).ok()) continue;
    if (seq >= 0) r.outstanding[static_cast<std::uint16_t>(seq)] = clock_.NowUs();
    ++r.sent;
    next_ = (at + 1) % n;
    return Status::Ok();
  }
  // Nowhere to send: perhaps the name stands for other addresses by now.
  next_resolve_us_ = std::min(next_resolve_us_, clock_.NowUs() + 1'000'000);
  return Unavailable("no cloud replica connected and ready (" + std::to_string(n) + " known)");
}

std::optional<std::vector<std::uint8_t>> MultiLink::Receive(TimeUs until_us) {
  for (;;) {
    Update();
    const size_t n = replicas_.size();
    for (size_t i = 0; i < n; ++i) {
      Replica& r = *replicas_[i];
      if (auto message = r.link->TryReceive()) {
        Observe(r, *message);
        return message;
      }
    }
    const TimeUs now = clock_.NowUs();
    if (now >= until_us || !lost_.empty()) return std::nullopt;  // lost: to send again now
    std::vector<zmq::pollitem_t> items;
    for (auto& r : replicas_)
      if (auto item = r->link->PollItem(); item.socket) items.push_back(item);
    const TimeUs wait_us = std::min(until_us - now, kPollSliceUs);
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds((wait_us + 999) / 1000));
    } catch (const zmq::error_t&) {
      return std::nullopt;
    }
  }
}

void MultiLink::Reconnect() {
  ResolveInBackground();
  for (auto& r : replicas_) {
    // The caller reconnects because requests go unanswered: sending them again
    // the same way would be no better, so they are forgotten, not reported lost.
    r->outstanding.clear();
    r->link->Reconnect();
    r->disconnects_seen = r->link->disconnects();
    r->draining = false;
  }
}

std::size_t MultiLink::WireBytes(std::size_t message_bytes) const {
  return ZmtpFrameBytes(message_bytes + (options_.link.curve_server_key.empty()
                                             ? 0
                                             : ZmqLink::kCurveMessageOverheadBytes));
}

std::vector<std::uint16_t> MultiLink::TakeLost() {
  std::vector<std::uint16_t> lost;
  lost.swap(lost_);
  counters_.lost += static_cast<std::int64_t>(lost.size());
  return lost;
}

std::vector<ReplicaState> MultiLink::replicas() const {
  std::vector<ReplicaState> out;
  for (const auto& r : replicas_)
    out.push_back({r->endpoint, r->link->connected(), r->draining,
                   static_cast<int>(r->outstanding.size()), r->sent});
  return out;
}

}  // namespace deepcut::transport
