#include "transport/protocol.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <msgpack.hpp>

namespace deepcut::transport {
namespace {

constexpr size_t kRequestFields = 8;
constexpr size_t kReplyFields = 11;
constexpr size_t kChunkFields = 8;
constexpr size_t kAckFields = 7;

// Limits given to the msgpack parser so a hostile header cannot make it
// allocate: no maps, no ext, short arrays, shallow nesting.
msgpack::unpack_limit Limits() {
  return msgpack::unpack_limit(/*array=*/64, /*map=*/0, /*str=*/kMaxReplyMessageBytes,
                               /*bin=*/kMaxMessageBytes, /*ext=*/0, /*depth=*/4);
}

// Reads typed fields out of a msgpack array; the first failure is kept with
// the field's name.
class FieldReader {
 public:
  FieldReader(const msgpack::object& array, const char* what) : a_(array.via.array), what_(what) {}

  std::int64_t Int(size_t i, const char* name, std::int64_t lo, std::int64_t hi) {
    if (!status_.ok()) return 0;
    const auto& o = a_.ptr[i];
    std::int64_t v;
    if (o.type == msgpack::type::POSITIVE_INTEGER) {
      if (o.via.u64 > static_cast<std::uint64_t>(hi)) return Fail(name, "is out of range"), 0;
      v = static_cast<std::int64_t>(o.via.u64);
    } else if (o.type == msgpack::type::NEGATIVE_INTEGER) {
      v = o.via.i64;
    } else {
      return Fail(name, "must be an integer"), 0;
    }
    if (v < lo || v > hi) return Fail(name, "is out of range"), 0;
    return v;
  }
  std::uint64_t UInt(size_t i, const char* name) {
    if (!status_.ok()) return 0;
    const auto& o = a_.ptr[i];
    if (o.type != msgpack::type::POSITIVE_INTEGER)
      return Fail(name, "must be an unsigned integer"), 0;
    return o.via.u64;
  }
  float Float(size_t i, const char* name) {
    if (!status_.ok()) return 0;
    const auto& o = a_.ptr[i];
    double v;
    if (o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64)
      v = o.via.f64;
    else if (o.type == msgpack::type::POSITIVE_INTEGER)
      v = static_cast<double>(o.via.u64);
    else if (o.type == msgpack::type::NEGATIVE_INTEGER)
      v = static_cast<double>(o.via.i64);
    else
      return Fail(name, "must be a number"), 0;
    if (!std::isfinite(v)) return Fail(name, "must be finite"), 0;
    // A double beyond float's range would become an infinity.
    if (std::abs(v) > std::numeric_limits<float>::max()) return Fail(name, "is out of range"), 0;
    return static_cast<float>(v);
  }
  std::string Str(size_t i, const char* name, size_t max_len, bool allow_empty) {
    if (!status_.ok()) return {};
    const auto& o = a_.ptr[i];
    if (o.type != msgpack::type::STR) return Fail(name, "must be a string"), std::string();
    if (o.via.str.size > max_len) return Fail(name, "is too long"), std::string();
    if (!allow_empty && o.via.str.size == 0) return Fail(name, "must not be empty"), std::string();
    return std::string(o.via.str.ptr, o.via.str.size);
  }
  const msgpack::object* Array(size_t i, const char* name, size_t min_n, size_t max_n) {
    if (!status_.ok()) return nullptr;
    const auto& o = a_.ptr[i];
    if (o.type != msgpack::type::ARRAY || o.via.array.size < min_n || o.via.array.size > max_n)
      return Fail(name, "must be an array of the right length"), nullptr;
    return &o;
  }
  std::vector<std::uint8_t> Bin(size_t i, const char* name) {
    if (!status_.ok()) return {};
    const auto& o = a_.ptr[i];
    if (o.type != msgpack::type::BIN)
      return Fail(name, "must be binary"), std::vector<std::uint8_t>();
    const auto* p = reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr);
    return std::vector<std::uint8_t>(p, p + o.via.bin.size);
  }
  void Fail(const char* name, const char* problem) {
    if (status_.ok())
      status_ = InvalidArgument(std::string(what_) + " field '" + name + "' " + problem);
  }
  const Status& status() const { return status_; }

 private:
  const msgpack::object_array& a_;
  const char* what_;
  Status status_;
};

// Parses `bytes` as one msgpack array of exactly `fields` elements whose first
// two are the protocol version and the message kind.
Status ParseEnvelope(std::span<const std::uint8_t> bytes, size_t fields, int kind, const char* what,
                     msgpack::object_handle& handle) {
  if (bytes.empty()) return InvalidArgument(std::string("empty ") + what);
  if (bytes.size() > kMaxMessageBytes)
    return InvalidArgument(std::string(what) + " of " + std::to_string(bytes.size()) +
                           " bytes exceeds the limit of " + std::to_string(kMaxMessageBytes));
  try {
    size_t offset = 0;
    handle = msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size(), offset,
                             nullptr, nullptr, Limits());
    if (offset != bytes.size())
      return InvalidArgument(std::string(what) + " has trailing bytes after the message");
  } catch (const std::exception& e) {
    return InvalidArgument(std::string(what) + " is not valid msgpack: " + e.what());
  }
  const msgpack::object& o = handle.get();
  if (o.type != msgpack::type::ARRAY || o.via.array.size < 2)
    return InvalidArgument(std::string(what) + " must be a msgpack array");
  const auto& v = o.via.array.ptr[0];
  if (v.type != msgpack::type::POSITIVE_INTEGER || v.via.u64 != kProtocolVersion)
    return InvalidArgument(std::string(what) + ": unsupported protocol version (this side speaks " +
                           std::to_string(kProtocolVersion) + ")");
  const auto& k = o.via.array.ptr[1];
  if (k.type != msgpack::type::POSITIVE_INTEGER || k.via.u64 != static_cast<std::uint64_t>(kind))
    return InvalidArgument(std::string(what) + ": wrong message kind");
  if (o.via.array.size != fields)
    return InvalidArgument(std::string(what) + " has " + std::to_string(o.via.array.size) +
                           " fields, expected " + std::to_string(fields));
  return Status::Ok();
}

// msgpack-c (4.1) packs an integral float as an integer and, for 2^64, converts
// it to uint64_t, which is undefined; a score that large is written as a float32
// itself (any finite score decodes, so any must encode).
void PackScore(msgpack::sbuffer& buffer, msgpack::packer<msgpack::sbuffer>& pk, float score) {
  if (std::abs(score) < 0x1p63f) {
    pk.pack(score);
    return;
  }
  std::uint32_t bits;
  std::memcpy(&bits, &score, sizeof(bits));
  const char bytes[5] = {static_cast<char>(0xca), static_cast<char>(bits >> 24),
                         static_cast<char>(bits >> 16), static_cast<char>(bits >> 8),
                         static_cast<char>(bits)};
  buffer.write(bytes, sizeof(bytes));
}

void PackBin(msgpack::packer<msgpack::sbuffer>& pk, const std::vector<std::uint8_t>& bytes) {
  pk.pack_bin(static_cast<std::uint32_t>(bytes.size()));
  pk.pack_bin_body(reinterpret_cast<const char*>(bytes.data()),
                   static_cast<std::uint32_t>(bytes.size()));
}

}  // namespace

std::vector<std::uint8_t> EncodeRequest(const Request& r) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_array(kRequestFields);
  pk.pack(kProtocolVersion);
  pk.pack(kKindRequest);
  pk.pack(r.seq);
  pk.pack(r.model);
  pk.pack(r.rate_index);
  pk.pack(r.deadline_ms);
  pk.pack(r.coding);
  PackBin(pk, r.payload);
  return std::vector<std::uint8_t>(buffer.data(), buffer.data() + buffer.size());
}

namespace {

// The first unsigned fields of a message's array (at most `want`), read from
// its first bytes alone; empty when they are not a msgpack array of them.
std::optional<std::vector<std::uint64_t>> PeekFields(std::span<const std::uint8_t> bytes,
                                                     size_t want) {
  size_t pos = 0;
  // One msgpack unsigned integer in any of its formats, or nothing.
  auto uint = [&]() -> std::optional<std::uint64_t> {
    if (pos >= bytes.size()) return std::nullopt;
    const std::uint8_t tag = bytes[pos++];
    if (tag <= 0x7f) return tag;
    const int width = tag == 0xcc ? 1 : tag == 0xcd ? 2 : tag == 0xce ? 4 : tag == 0xcf ? 8 : 0;
    if (width == 0 || pos + width > bytes.size()) return std::nullopt;
    std::uint64_t v = 0;
    for (int i = 0; i < width; ++i) v = (v << 8) | bytes[pos++];
    return v;
  };
  if (bytes.empty()) return std::nullopt;
  const std::uint8_t tag = bytes[pos++];
  std::uint64_t fields = 0;
  if ((tag & 0xf0) == 0x90) {
    fields = tag & 0x0f;
  } else if (tag == 0xdc || tag == 0xdd) {
    const size_t width = tag == 0xdc ? 2 : 4;
    if (pos + width > bytes.size()) return std::nullopt;
    for (size_t i = 0; i < width; ++i) fields = (fields << 8) | bytes[pos++];
  } else {
    return std::nullopt;
  }
  if (fields < want) return std::nullopt;
  std::vector<std::uint64_t> out;
  for (size_t i = 0; i < want; ++i) {
    const auto v = uint();
    if (!v) return std::nullopt;
    out.push_back(*v);
  }
  return out;
}

}  // namespace

std::optional<int> PeekKind(std::span<const std::uint8_t> bytes) {
  const auto f = PeekFields(bytes, 2);
  if (!f || (*f)[1] > 255) return std::nullopt;
  return static_cast<int>((*f)[1]);
}

std::optional<std::uint16_t> PeekRequestSeq(std::span<const std::uint8_t> bytes) {
  // The seq has been the third field in every version, so any version is read.
  const auto f = PeekFields(bytes, 3);
  if (!f || (*f)[1] != std::uint64_t{kKindRequest} || (*f)[2] > UINT16_MAX) return std::nullopt;
  return static_cast<std::uint16_t>((*f)[2]);
}

Result<Request> DecodeRequest(std::span<const std::uint8_t> bytes) {
  msgpack::object_handle handle;
  RETURN_IF_ERROR(ParseEnvelope(bytes, kRequestFields, kKindRequest, "request", handle));
  FieldReader f(handle.get(), "request");
  Request r;
  r.seq = static_cast<std::uint16_t>(f.Int(2, "seq", 0, UINT16_MAX));
  r.model = static_cast<std::uint16_t>(f.Int(3, "model", 0, UINT16_MAX));
  r.rate_index = static_cast<int>(f.Int(4, "rate", 0, 255));
  r.deadline_ms = static_cast<std::uint32_t>(f.Int(5, "deadline_ms", 0, kMaxDeadlineMs));
  r.coding = static_cast<int>(f.Int(6, "coding", 0, 2));
  r.payload = f.Bin(7, "payload");
  if (!f.status().ok()) return f.status();
  if (r.payload.empty()) return InvalidArgument("request field 'payload' is empty");
  return r;
}

std::vector<std::uint8_t> EncodeReply(const Reply& r) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_array(kReplyFields);
  pk.pack(kProtocolVersion);
  pk.pack(kKindReply);
  pk.pack(r.seq);
  pk.pack(static_cast<int>(r.status));
  pk.pack(r.message.size() <= kMaxReplyMessageBytes ? r.message
                                                    : r.message.substr(0, kMaxReplyMessageBytes));
  pk.pack(r.class_id);
  pk.pack_array(static_cast<std::uint32_t>(r.top.size()));
  for (const auto& t : r.top) {
    pk.pack_array(2);
    pk.pack(t.class_id);
    PackScore(buffer, pk, t.score);
  }
  pk.pack(r.queue_us);
  pk.pack(r.decode_us);
  pk.pack(r.tail_us);
  pk.pack(r.batch_size);
  return std::vector<std::uint8_t>(buffer.data(), buffer.data() + buffer.size());
}

Result<Reply> DecodeReply(std::span<const std::uint8_t> bytes) {
  msgpack::object_handle handle;
  RETURN_IF_ERROR(ParseEnvelope(bytes, kReplyFields, kKindReply, "reply", handle));
  FieldReader f(handle.get(), "reply");
  Reply r;
  r.seq = static_cast<std::uint16_t>(f.Int(2, "seq", 0, UINT16_MAX));
  r.status = static_cast<ReplyStatus>(f.Int(3, "status", 0, 3));
  r.message = f.Str(4, "message", kMaxReplyMessageBytes, true);
  r.class_id = static_cast<int>(f.Int(5, "class_id", -1, 1 << 20));
  if (const auto* top = f.Array(6, "top", 0, kMaxTopScores)) {
    for (size_t i = 0; i < top->via.array.size; ++i) {
      const auto& pair = top->via.array.ptr[i];
      if (pair.type != msgpack::type::ARRAY || pair.via.array.size != 2)
        return InvalidArgument("reply field 'top' must hold [class, score] pairs");
      FieldReader p(pair, "reply top");
      ScoredClass sc{static_cast<int>(p.Int(0, "class", 0, 1 << 20)), p.Float(1, "score")};
      if (!p.status().ok()) return p.status();
      r.top.push_back(sc);
    }
  }
  r.queue_us = f.Int(7, "queue_us", 0, INT64_MAX);
  r.decode_us = f.Int(8, "decode_us", 0, INT64_MAX);
  r.tail_us = f.Int(9, "tail_us", 0, INT64_MAX);
  r.batch_size = static_cast<int>(f.Int(10, "batch_size", 0, 1 << 20));
  if (!f.status().ok()) return f.status();
  if (r.status == ReplyStatus::kOk && r.class_id < 0)
    return InvalidArgument("reply field 'class_id' is missing in an ok reply");
  return r;
}

std::vector<std::uint8_t> EncodeHarvestChunk(const HarvestChunk& c) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_array(kChunkFields);
  pk.pack(kProtocolVersion);
  pk.pack(kKindHarvestChunk);
  pk.pack(c.edge);
  pk.pack(c.item);
  pk.pack(c.index);
  pk.pack(c.count);
  pk.pack(c.model);
  PackBin(pk, c.payload);
  return std::vector<std::uint8_t>(buffer.data(), buffer.data() + buffer.size());
}

Result<HarvestChunk> DecodeHarvestChunk(std::span<const std::uint8_t> bytes) {
  msgpack::object_handle handle;
  RETURN_IF_ERROR(ParseEnvelope(bytes, kChunkFields, kKindHarvestChunk, "harvest chunk", handle));
  FieldReader f(handle.get(), "harvest chunk");
  HarvestChunk c;
  c.edge = f.UInt(2, "edge");
  c.item = f.UInt(3, "item");
  c.index = static_cast<std::uint32_t>(f.Int(4, "index", 0, kMaxHarvestChunks - 1));
  c.count = static_cast<std::uint32_t>(f.Int(5, "count", 1, kMaxHarvestChunks));
  c.model = static_cast<std::uint16_t>(f.Int(6, "model", 0, UINT16_MAX));
  c.payload = f.Bin(7, "payload");
  if (!f.status().ok()) return f.status();
  if (c.index >= c.count)
    return InvalidArgument("harvest chunk field 'index' is not below 'count'");
  if (c.payload.empty()) return InvalidArgument("harvest chunk field 'payload' is empty");
  return c;
}

std::vector<std::uint8_t> EncodeHarvestAck(const HarvestAck& a) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_array(kAckFields);
  pk.pack(kProtocolVersion);
  pk.pack(kKindHarvestAck);
  pk.pack(a.edge);
  pk.pack(a.item);
  pk.pack(a.index);
  pk.pack(a.ok ? 0 : 1);
  pk.pack(a.message.size() <= kMaxReplyMessageBytes ? a.message
                                                    : a.message.substr(0, kMaxReplyMessageBytes));
  return std::vector<std::uint8_t>(buffer.data(), buffer.data() + buffer.size());
}

Result<HarvestAck> DecodeHarvestAck(std::span<const std::uint8_t> bytes) {
  msgpack::object_handle handle;
  RETURN_IF_ERROR(ParseEnvelope(bytes, kAckFields, kKindHarvestAck, "harvest ack", handle));
  FieldReader f(handle.get(), "harvest ack");
  HarvestAck a;
  a.edge = f.UInt(2, "edge");
  a.item = f.UInt(3, "item");
  a.index = static_cast<std::uint32_t>(f.Int(4, "index", 0, kMaxHarvestChunks - 1));
  a.ok = f.Int(5, "status", 0, 1) == 0;
  a.message = f.Str(6, "message", kMaxReplyMessageBytes, true);
  if (!f.status().ok()) return f.status();
  return a;
}

}  // namespace deepcut::transport
