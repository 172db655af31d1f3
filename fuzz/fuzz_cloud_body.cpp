// FuzzCloud: the cloud's whole receive path, over a real socket. One
// CloudServer (the committed model package, one worker) runs for the life of
// the process; each input becomes one ZeroMQ message sent to it by a DEALER:
//
//   byte 0     bits 0-3: frames - 1 (1..16); bits 4-7: 14 pads the last frame
//              past the protocol's 1 MiB limit, 15 past what ZeroMQ reads
//              (kMaxFrameBytesRead); anything else sends the frames as given
//   bytes 1..  one length byte per frame but the last, then the frames' bytes
//              (the last frame takes what is left)
//
// Properties: the message gets exactly one reply (none past what ZeroMQ reads:
// it drops the connection), and it decodes; it carries the seq whenever the first
// frame's first bytes hold one; an ok reply answers only a one-frame message
// that decodes, fits the model and whose payload the codec takes; and after
// every input a valid request is still answered (the cloud serves on).
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <thread>
#include <zmq.hpp>

#include "cloud/cloud_server.h"
#include "fuzz/fuzz_bodies.h"
#include "splitnet/feature_codec.h"
#include "splitnet/manifest.h"
#include "transport/protocol.h"

namespace deepcut::fuzz {
namespace {

constexpr auto kReplyTimeout = std::chrono::seconds(10);

class CloudUnderTest {
 public:
  CloudUnderTest() {
    spdlog::set_level(spdlog::level::off);  // refusals are the point; no log lines
    auto manifest = splitnet::LoadManifest(std::string(DEEPCUT_SOURCE_DIR) + "/models/fmnist");
    Require(manifest.ok(), "cannot load the model package: " + manifest.status().ToString());
    manifest_ = *manifest;
    auto server = cloud::CloudServer::Create(
        {.listen = {"tcp://127.0.0.1:*"}, .threads = 1, .stats_interval_s = 0}, manifest_);
    Require(server.ok(), "cannot start the cloud: " + server.status().ToString());
    server_ = std::move(server).value();
    thread_ = std::thread([this] { server_->Run(stop_); });
    Connect();
    // The probe: an all-zero feature map at the default rate.
    const auto& rate = manifest_.rates[manifest_.default_rate_index];
    std::vector<float> zeros(manifest_.bottleneck.Elements(), 0.0f);
    auto encoded = codec_.Encode(zeros, manifest_.bottleneck, rate);
    Require(encoded.ok(), "cannot encode the probe");
    probe_ = {.seq = 4242,
              .model = transport::ModelTag(manifest_.fingerprint),
              .rate_index = manifest_.default_rate_index,
              .deadline_ms = 60'000,
              .coding = static_cast<int>(encoded->coding),
              .payload = encoded->payload};
  }
  ~CloudUnderTest() {
    dealer_.reset();
    stop_ = true;
    thread_.join();
  }

  Status Run(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return InvalidArgument("empty input");
    const int frames = 1 + (data[0] & 0x0f);
    const int size_mode = data[0] >> 4 == 14 ? 1 : data[0] >> 4 == 15 ? 2 : 0;
    std::vector<std::vector<std::uint8_t>> parts;
    std::size_t pos = 1 + static_cast<std::size_t>(frames - 1);
    for (int f = 0; f < frames; ++f) {
      const std::size_t want =
          f + 1 < frames && static_cast<std::size_t>(1 + f) < size ? data[1 + f] : size;
      const std::size_t start = std::min(pos, size), end = std::min(size, start + want);
      parts.emplace_back(data + start, data + end);
      pos = end;
    }
    if (size_mode == 1) parts.back().resize(transport::kMaxMessageBytes + 1 + parts.back().size());
    if (size_mode == 2) parts.back().resize(cloud::kMaxFrameBytesRead + 1 + parts.back().size());
    for (int f = 0; f < frames; ++f) Send(parts[f], f + 1 < frames);

    Status verdict = InvalidArgument("no reply");
    if (size_mode == 2) {
      // ZeroMQ drops the connection unread: no reply comes, and serving goes on.
      Require(!Receive(std::chrono::milliseconds(50)).has_value(),
              "a frame over what ZeroMQ reads got a reply");
    } else {
      auto reply = Receive(kReplyTimeout);
      Require(reply.has_value(),
              "no reply within 10 s to a message of " + std::to_string(frames) + " frame(s)");
      verdict = Check(parts, *reply);
    }
    ProbeServing(size_mode == 2);
    return verdict;
  }

 private:
  void Connect() {
    dealer_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
    dealer_->set(zmq::sockopt::linger, 0);
    dealer_->connect(server_->endpoints().front());
  }

  void Send(const std::vector<std::uint8_t>& bytes, bool more) {
    for (;;) {
      try {
        dealer_->send(zmq::buffer(bytes), more ? zmq::send_flags::sndmore : zmq::send_flags::none);
        return;
      } catch (const zmq::error_t& e) {
        Require(e.num() == EINTR, std::string("send: ") + e.what());
      }
    }
  }

  std::optional<transport::Reply> Receive(std::chrono::milliseconds timeout) {
    zmq::pollitem_t item{static_cast<void*>(*dealer_), 0, ZMQ_POLLIN, 0};
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      // libFuzzer's timers interrupt system calls: EINTR is not an answer.
      try {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        zmq::poll(&item, 1, std::max(left, std::chrono::milliseconds(0)));
        break;
      } catch (const zmq::error_t& e) {
        Require(e.num() == EINTR, std::string("poll: ") + e.what());
      }
    }
    zmq::message_t message;
    if (!dealer_->recv(message, zmq::recv_flags::dontwait)) return std::nullopt;
    Require(!message.more(), "a reply of more than one frame");
    auto reply = transport::DecodeReply(std::span(message.data<std::uint8_t>(), message.size()));
    Require(reply.ok(), "a reply that does not decode: " + reply.status().ToString());
    return *reply;
  }

  Status Check(const std::vector<std::vector<std::uint8_t>>& parts, const transport::Reply& reply) {
    const auto& first = parts.front();
    const auto seq = transport::PeekRequestSeq(first);
    if (seq) Require(reply.seq == *seq, "the reply lost the request's seq");
    if (reply.status != transport::ReplyStatus::kOk)
      return InvalidArgument("refused: " + reply.message);
    Require(parts.size() == 1, "an ok reply to a message of several frames");
    auto request = transport::DecodeRequest(first);
    Require(request.ok(), "an ok reply to a request that does not decode");
    Require(cloud::CheckAgainstModel(*request, manifest_).ok(),
            "an ok reply to a request the model cannot serve");
    auto decoded = codec_.Decode(static_cast<splitnet::Coding>(request->coding), request->payload,
                                 manifest_.bottleneck, manifest_.rates[request->rate_index]);
    Require(decoded.ok(), "an ok reply to a payload the codec refuses");
    Require(reply.class_id >= 0 && reply.class_id < static_cast<int>(manifest_.classes.size()),
            "an answer outside the classes");
    return Status::Ok();
  }

  // A valid request is answered. After a dropped connection the probe goes on
  // a fresh DEALER, as a client would reconnect: on the old one, replies to
  // probes sent before it noticed the drop could still trickle in.
  void ProbeServing(bool connection_dropped) {
    if (connection_dropped) Connect();
    Send(transport::EncodeRequest(probe_), false);
    auto reply = Receive(kReplyTimeout);
    Require(reply.has_value(), "the cloud stopped answering");
    Require(reply->seq == probe_.seq, "a reply to the probe with another seq");
    // An ok reply, or busy if the queue is briefly full; an error is a bug.
    Require(reply->status != transport::ReplyStatus::kError,
            "the probe got an error: " + reply->message);
  }

  splitnet::Manifest manifest_;
  splitnet::FeatureCodec codec_;
  std::unique_ptr<cloud::CloudServer> server_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  zmq::context_t context_{1};
  std::unique_ptr<zmq::socket_t> dealer_;
  transport::Request probe_;
};

}  // namespace

Status RunCloud(const std::uint8_t* data, std::size_t size) {
  static CloudUnderTest cloud;
  return cloud.Run(data, size);
}

int FuzzCloud(const std::uint8_t* data, std::size_t size) {
  RunCloud(data, size);
  return 0;
}

}  // namespace deepcut::fuzz
