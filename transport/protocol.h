// DeepCut wire protocol, version 2 (docs/protocol.md): one msgpack array per
// ZeroMQ frame, the version first, positional fields so headers stay small
// (about 20 bytes: every header byte is paid for on every offload).
//
// Decode validates every field (types, ranges, sizes) before anything uses it
// and never throws: a malformed message becomes a Status naming the field.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace deepcut::transport {

// 2: a context-coded payload (coding 2) ends with a check byte.
inline constexpr int kProtocolVersion = 2;
inline constexpr int kKindRequest = 1;
inline constexpr int kKindReply = 2;
// Harvested frames for retraining (docs/harvest.md): an item's bytes in chunks,
// each acknowledged by the cloud.
inline constexpr int kKindHarvestChunk = 3;
inline constexpr int kKindHarvestAck = 4;
inline constexpr size_t kMaxHarvestChunks = 4096;
// Larger messages are refused before they are parsed.
inline constexpr size_t kMaxMessageBytes = 1 << 20;
inline constexpr size_t kMaxTopScores = 16;
inline constexpr std::uint32_t kMaxDeadlineMs = 600'000;
// A reply's message is cut to this many bytes when encoded (the decoder's
// string limit), so a long error text cannot make a reply undecodable.
inline constexpr size_t kMaxReplyMessageBytes = 1024;

struct Request {
  std::uint16_t seq = 0;          // per edge, increasing modulo 2^16; echoed in the reply
  std::uint16_t model = 0;        // ModelTag(manifest fingerprint)
  int rate_index = 0;             // index into the manifest's rates
  std::uint32_t deadline_ms = 0;  // time left to the frame's deadline when sent
  int coding = 1;                 // splitnet::Coding
  std::vector<std::uint8_t> payload;
};

enum class ReplyStatus : int {
  kOk = 0,
  kError = 1,  // malformed or unanswerable request; `message` says why
  kBusy = 2,   // shed (queue full or deadline passed in the queue): answer locally
  // The cloud is shutting down (SIGTERM) and admits nothing new; what it had
  // queued is still answered. Send this request to another replica at once.
  kDraining = 3,
};

struct ScoredClass {
  int class_id = 0;
  float score = 0.0f;
};

struct Reply {
  std::uint16_t seq = 0;  // 0 when the request was too malformed to read one
  ReplyStatus status = ReplyStatus::kOk;
  std::string message;
  int class_id = -1;
  std::vector<ScoredClass> top;                           // best first
  std::int64_t queue_us = 0, decode_us = 0, tail_us = 0;  // the cloud's own timings
  int batch_size = 0;
};

// The 16 bits of a model's 32-bit fingerprint that travel in each request.
inline std::uint16_t ModelTag(std::uint32_t fingerprint) {
  return static_cast<std::uint16_t>((fingerprint >> 16) ^ (fingerprint & 0xFFFFu));
}

// One chunk of a harvested item (harvest::EncodeRecord's bytes). The cloud
// keeps chunks by (edge, item, index), so a chunk sent twice (after a lost ack
// or a reconnect) is stored once, and an item is complete when all `count`
// chunks are in.
struct HarvestChunk {
  std::uint64_t edge = 0;  // the edge store's id
  std::uint64_t item = 0;  // the item's id in that store
  std::uint32_t index = 0;
  std::uint32_t count = 1;
  std::uint16_t model = 0;  // ModelTag of the edge's package
  std::vector<std::uint8_t> payload;
};

struct HarvestAck {
  std::uint64_t edge = 0;
  std::uint64_t item = 0;
  std::uint32_t index = 0;
  bool ok = true;       // false: refused for good (`message` says why); do not resend
  std::string message;  // why it was refused
};

// The kind of a message (its second field) read from its first bytes, or
// empty when they are not a DeepCut message's.
std::optional<int> PeekKind(std::span<const std::uint8_t> bytes);

std::vector<std::uint8_t> EncodeRequest(const Request& request);
// The seq of a request read from its first bytes alone (array header, version,
// kind, seq), so that the error reply to a message refused for anything after
// the seq (a bad field, a bad payload, too many bytes) still carries it. Empty
// when those first fields are not a request's.
std::optional<std::uint16_t> PeekRequestSeq(std::span<const std::uint8_t> bytes);
Result<Request> DecodeRequest(std::span<const std::uint8_t> bytes);
std::vector<std::uint8_t> EncodeReply(const Reply& reply);
Result<Reply> DecodeReply(std::span<const std::uint8_t> bytes);
std::vector<std::uint8_t> EncodeHarvestChunk(const HarvestChunk& chunk);
Result<HarvestChunk> DecodeHarvestChunk(std::span<const std::uint8_t> bytes);
std::vector<std::uint8_t> EncodeHarvestAck(const HarvestAck& ack);
Result<HarvestAck> DecodeHarvestAck(std::span<const std::uint8_t> bytes);

}  // namespace deepcut::transport
