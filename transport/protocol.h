// DeepCut wire protocol, version 1 (docs/protocol.md): one msgpack array per
// ZeroMQ frame, the version first, positional fields so headers stay small.
//
// Decode validates every field (types, ranges, sizes) before anything uses it
// and never throws: a malformed message becomes a Status naming the field.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace deepcut::transport {

inline constexpr int kProtocolVersion = 1;
inline constexpr int kKindRequest = 1;
inline constexpr int kKindReply = 2;
// Larger messages are refused before they are parsed.
inline constexpr size_t kMaxMessageBytes = 1 << 20;
inline constexpr size_t kMaxNameBytes = 64;
inline constexpr size_t kMaxTopScores = 16;

struct Request {
  std::string edge_id;
  std::uint64_t seq = 0;
  std::string model;                   // manifest name
  std::string rate;                    // codec rate name
  int bits = 0;                        // must match the rate in the cloud's manifest
  int channels = 0;                    // idem
  std::int64_t capture_us = 0;         // edge clock; echoed back, never compared across machines
  std::int64_t deadline_us = 0;        // edge clock
  std::uint32_t shape[3] = {0, 0, 0};  // bottleneck C, H, W
  float min = 0.0f, max = 1.0f;        // quantisation range
  int coding = 1;                      // splitnet::Coding
  std::vector<std::uint8_t> payload;
};

enum class ReplyStatus : int {
  kOk = 0,
  kError = 1,  // malformed or unanswerable request; `message` says why
  kBusy = 2,   // the cloud is shedding load; try later or answer locally
};

struct ScoredClass {
  int class_id = 0;
  float score = 0.0f;
};

struct Reply {
  std::uint64_t seq = 0;  // 0 when the request was too malformed to read one
  ReplyStatus status = ReplyStatus::kOk;
  std::string message;
  int class_id = -1;
  std::vector<ScoredClass> top;                           // best first
  std::int64_t capture_us = 0;                            // echoed from the request
  std::int64_t queue_us = 0, decode_us = 0, tail_us = 0;  // the cloud's own timings
  int batch_size = 0;
};

std::vector<std::uint8_t> EncodeRequest(const Request& request);
Result<Request> DecodeRequest(std::span<const std::uint8_t> bytes);
std::vector<std::uint8_t> EncodeReply(const Reply& reply);
Result<Reply> DecodeReply(std::span<const std::uint8_t> bytes);

}  // namespace deepcut::transport
